//! The local renderer's title card for a text job: the prompt typeset in DejaVu Sans Bold (an
//! open-licence font embedded in the binary, licence in `assets/fonts/`), wrapped and centred over
//! a soft two-colour gradient with a vignette. The card is drawn once at the working size; the move
//! (a slow push-in by default) is the renderer's, as for a still.
//!
//! A character the font lacks (emoji, most CJK) never panics and never vanishes silently: it is set
//! as a white square `□`, and the job's log line names the characters that were replaced.

use ab_glyph::{Font, FontRef, Glyph, GlyphId, PxScale, ScaleFont, point};

/// DejaVu Sans Bold (Bitstream Vera licence; see `assets/fonts/DejaVu-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

/// Shown for a character the font has no glyph for.
const MISSING: char = '□';

/// Background gradients (top, bottom), dark enough for white text; the seed picks one.
const PALETTES: &[([u8; 3], [u8; 3])] = &[
    ([32, 45, 84], [112, 58, 102]),
    ([20, 62, 74], [36, 110, 96]),
    ([64, 34, 52], [150, 74, 56]),
    ([28, 28, 36], [74, 74, 96]),
    ([40, 52, 30], [98, 110, 56]),
];

/// A drawn title card: packed RGB, `width × height`, and the characters set as [`MISSING`].
pub struct Card {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub missing: Vec<char>,
}

/// Draws `text` as a card of `width × height` pixels; `seed` picks the gradient.
pub fn draw(text: &str, width: u32, height: u32, seed: u64) -> Card {
    let font = FontRef::try_from_slice(FONT).expect("the embedded font is valid");
    let (w, h) = (width.max(1), height.max(1));
    let mut rgb = background(w, h, seed);
    let (text, missing) = printable(&font, text);
    // The largest size at which the wrapped text fits 80 % of the width and 70 % of the height.
    let max_w = w as f32 * 0.8;
    let max_h = h as f32 * 0.7;
    let mut size = (h as f32 / 7.0).max(8.0);
    let lines = loop {
        let scaled = font.as_scaled(PxScale::from(size));
        let lines = wrap(&scaled, &text, max_w);
        let line_h = scaled.height() + scaled.line_gap();
        if lines.len() as f32 * line_h <= max_h || size <= 8.0 {
            break lines;
        }
        size = (size * 0.92).max(8.0);
    };
    let scaled = font.as_scaled(PxScale::from(size));
    let line_h = scaled.height() + scaled.line_gap();
    let block_h = lines.len() as f32 * line_h;
    let mut y = (h as f32 - block_h) / 2.0 + scaled.ascent();
    for line in &lines {
        let line_w = width_of(&scaled, line);
        let mut x = (w as f32 - line_w) / 2.0;
        let mut prev: Option<GlyphId> = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            let glyph: Glyph = id.with_scale_and_position(size, point(x, y));
            x += scaled.h_advance(id);
            prev = Some(id);
            let Some(outlined) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px < 0 || py < 0 || px >= i64::from(w) || py >= i64::from(h) {
                    return;
                }
                let i = (py as usize * w as usize + px as usize) * 3;
                let a = coverage.clamp(0.0, 1.0);
                for c in &mut rgb[i..i + 3] {
                    *c = (f32::from(*c) * (1.0 - a) + 250.0 * a).round() as u8;
                }
            });
        }
        y += line_h;
    }
    Card {
        width: w,
        height: h,
        rgb,
        missing,
    }
}

/// The text as it can be set: characters the font lacks become [`MISSING`] (once per cluster:
/// joiners and variation selectors are dropped), other control characters are dropped, runs of
/// blank lines shrink to one paragraph break.
fn printable(font: &FontRef<'_>, text: &str) -> (String, Vec<char>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for c in text.trim().chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            // Zero-width joiner, variation selectors: parts of an emoji cluster already replaced.
            '\u{200d}' | '\u{fe00}'..='\u{fe0f}' => {}
            c if c.is_control() => {}
            c if c.is_whitespace() => out.push(' '),
            c if font.glyph_id(c).0 == 0 => {
                // One square per cluster (a skin-tone modifier or a second emoji after a joiner
                // adds none).
                let modifier = ('\u{1f3fb}'..='\u{1f3ff}').contains(&c);
                if !modifier && !out.ends_with(MISSING) {
                    out.push(MISSING);
                }
                if !missing.contains(&c) {
                    missing.push(c);
                }
            }
            c => out.push(c),
        }
    }
    (out, missing)
}

/// Lines no wider than `max_w`: words wrap at spaces; a word wider than a line breaks anywhere.
fn wrap<F: Font, SF: ScaleFont<F>>(font: &SF, text: &str, max_w: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n').filter(|p| !p.trim().is_empty()) {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if width_of(font, &candidate) <= max_w {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: break it where it must.
            for c in word.chars() {
                line.push(c);
                if width_of(font, &line) > max_w && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                }
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

fn width_of<F: Font, SF: ScaleFont<F>>(font: &SF, line: &str) -> f32 {
    let mut w = 0.0;
    let mut prev: Option<GlyphId> = None;
    for c in line.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            w += font.kern(p, id);
        }
        w += font.h_advance(id);
        prev = Some(id);
    }
    w
}

/// A vertical gradient between the palette's colours, darker toward the edges.
fn background(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let (top, bottom) = PALETTES[(seed % PALETTES.len() as u64) as usize];
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let reach = (cx * cx + cy * cy).sqrt();
    for y in 0..h {
        let t = y as f32 / (h.max(2) - 1) as f32;
        let base: Vec<f32> = (0..3)
            .map(|c| f32::from(top[c]) * (1.0 - t) + f32::from(bottom[c]) * t)
            .collect();
        for x in 0..w {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let d = (dx * dx + dy * dy).sqrt() / reach;
            let shade = 1.0 - 0.35 * d * d;
            for b in &base {
                rgb.push((b * shade).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Share of pixels noticeably brighter than the background: the text.
    fn ink(card: &Card) -> f64 {
        let lit = card
            .rgb
            .chunks(3)
            .filter(|p| p.iter().all(|&c| c > 200))
            .count();
        lit as f64 / (card.width * card.height) as f64
    }

    #[test]
    fn a_title_is_set_centred_and_fits() {
        let card = draw("A quiet harbour at dawn", 640, 360, 1);
        assert_eq!(card.rgb.len(), 640 * 360 * 3);
        assert!(card.missing.is_empty());
        let ink = ink(&card);
        assert!(ink > 0.01 && ink < 0.5, "ink {ink}");
        // Nothing drawn in the outer tenth: centred with margins.
        for y in 0..360 {
            for x in (0..64).chain(576..640) {
                let i = (y * 640 + x) * 3;
                assert!(card.rgb[i] < 200, "text at ({x}, {y})");
            }
        }
    }

    #[test]
    fn long_text_wraps_and_shrinks_but_stays_inside() {
        let text =
            "word ".repeat(60) + "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichen";
        let card = draw(&text, 320, 180, 2);
        assert!(ink(&card) > 0.01);
    }

    // Emoji, CJK and scripts the font lacks: never a panic, a square instead, and named.
    #[test]
    fn characters_the_font_lacks_become_squares() {
        let card = draw("Sunrise 🌅 👩🏽‍🚀 東京 ok", 320, 180, 3);
        assert!(card.missing.contains(&'🌅'), "{:?}", card.missing);
        assert!(card.missing.contains(&'東'), "{:?}", card.missing);
        let font = FontRef::try_from_slice(FONT).unwrap();
        let (text, _) = printable(&font, "a 👩🏽‍🚀 b\u{7}\n\n\nc");
        assert_eq!(text, "a □ b\n\n\nc");
        assert!(ink(&card) > 0.005);
        for empty in ["", "   ", "\u{200d}\u{fe0f}"] {
            let card = draw(empty, 64, 36, 4);
            assert_eq!(card.rgb.len(), 64 * 36 * 3);
        }
    }
}
