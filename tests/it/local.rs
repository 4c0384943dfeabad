//! The local renderer, judged by what it wrote: each MP4 is demuxed (`mp4` crate) and its H.264
//! decoded (OpenH264's decoder), then checked for frame count, size, duration, content, direction
//! and smoothness of the move.

use crate::support::*;

/// A PNG from a pixel function.
fn png_from_fn(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(x, y));
            }
        }
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// Smooth, position-telling colours: a misplaced window shows as a low PSNR.
fn waves(x: u32, y: u32) -> [u8; 3] {
    let (x, y) = (f64::from(x), f64::from(y));
    let c = |v: f64| (128.0 + 100.0 * v.sin()) as u8;
    [c(x / 47.0), c(y / 31.0 + 1.0), c((x + y) / 83.0 + 2.0)]
}

/// BT.709 limited-range luma, as the renderer converts.
fn luma(rgb: [f64; 3]) -> f64 {
    16.0 + 219.0 / 255.0 * (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])
}

/// The expected luma of a `w × h` frame showing the source window `(left, top, width, height)`
/// (source pixels), sampled bilinearly from the `waves` function itself.
fn expected(w: usize, h: usize, win: (f64, f64, f64, f64)) -> Vec<u8> {
    expected_of(waves, w, h, win)
}

/// [`expected`] for any source function `f`.
fn expected_of(
    f: impl Fn(u32, u32) -> [u8; 3],
    w: usize,
    h: usize,
    win: (f64, f64, f64, f64),
) -> Vec<u8> {
    let sample = |u: f64, v: f64| {
        let (x0, y0) = (u.floor().max(0.0), v.floor().max(0.0));
        let (fx, fy) = (u - x0, v - y0);
        let p = |x: f64, y: f64| f(x as u32, y as u32).map(f64::from);
        let mix = |a: [f64; 3], b: [f64; 3], t: f64| [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t);
        let top = mix(p(x0, y0), p(x0 + 1.0, y0), fx);
        let bottom = mix(p(x0, y0 + 1.0), p(x0 + 1.0, y0 + 1.0), fx);
        mix(top, bottom, fy)
    };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let u = win.0 + (x as f64 + 0.5) * win.2 / w as f64 - 0.5;
            let v = win.1 + (y as f64 + 0.5) * win.3 / h as f64 - 0.5;
            out.push(luma(sample(u, v)).round() as u8);
        }
    }
    out
}

fn local_studio(fps: u32, extra: &str) -> Studio {
    Studio::new(&format!(
        "backend: local\nlocal:\n  fps: {fps}\nwatch:\n  settle: 50ms\n  sidecar_wait: 20ms\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pan_is_decoded_with_the_right_frames_size_duration_and_content() {
    let studio = local_studio(12, "");
    studio.put("inbox/waves.png", &png_from_fn(1920, 1080, waves));
    studio.put("inbox/waves.yaml", b"motion: pan_right\nduration: 2\n");
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    let d = decode_mp4(&studio.path("done/waves.mp4"));
    assert_eq!((d.width, d.height), (1280, 720));
    assert_eq!(
        top_level_boxes(&studio.path("done/waves.mp4"))[..3],
        ["ftyp", "moov", "mdat"],
        "fast start"
    );
    assert_eq!(d.lumas.len(), 24, "duration × fps frames");
    assert!((d.seconds - 2.0).abs() < 1e-6, "duration {}", d.seconds);
    assert!(
        (d.timescale_fps - 12.0).abs() < 0.01,
        "fps {}",
        d.timescale_fps
    );
    // zoom 1.25 leaves 20 % of the width to pan across: the window starts at the left edge and
    // ends at the right one, vertically centred.
    let (ww, wh) = (1920.0 / 1.25, 1080.0 / 1.25);
    let first = expected(1280, 720, (0.0, 108.0, ww, wh));
    let last = expected(1280, 720, (1920.0 - ww, 108.0, ww, wh));
    let p_first = psnr(&d.lumas[0], &first);
    let p_last = psnr(&d.lumas[23], &last);
    assert!(p_first > 32.0, "first frame PSNR {p_first:.1} dB");
    assert!(p_last > 32.0, "last frame PSNR {p_last:.1} dB");
    // And it is not just any frame of it: the last frame is not where the first one was.
    assert!(psnr(&d.lumas[23], &first) < 25.0);
    let r = studio.json("done/waves.result.json");
    assert_eq!(
        (
            r["motion"].as_str(),
            r["fps"].as_u64(),
            r["frames"].as_u64()
        ),
        (Some("pan_right"), Some(12), Some(24))
    );
    assert!(r["encode_seconds"].as_f64().unwrap() > 0.0);
    // See: issue 21, item 5 — a local render named an API endpoint, and reported the encoder's
    // target as its bitrate (3× what it wrote). The real one: the file's bits over its length,
    // less what the container adds.
    assert!(r["endpoint"].is_null(), "no API was called: {r}");
    let file_bps = r["output_bytes"].as_f64().unwrap() * 8.0 / 2.0;
    let bitrate = r["bitrate"].as_f64().unwrap();
    assert!(
        bitrate <= file_bps && bitrate > 0.9 * file_bps,
        "bitrate {bitrate} for a file of {file_bps} bit/s"
    );
    assert!(r["target_bitrate"].as_f64().unwrap() >= bitrate, "{r}");
}

/// The four-character types of the file's top-level boxes, in order.
fn top_level_boxes(path: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        assert!(size >= 8, "box sizes are real");
        at += size;
    }
    out
}

/// Luma-weighted centroid of the bright pixels along one axis.
fn centroid(y: &[u8], w: usize, horizontal: bool) -> f64 {
    let (mut sum, mut weight) = (0.0, 0.0);
    for (i, &v) in y.iter().enumerate() {
        let wgt = f64::from(v.saturating_sub(60));
        let pos = if horizontal { i % w } else { i / w } as f64;
        sum += wgt * pos;
        weight += wgt;
    }
    sum / weight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pans_and_tilts_move_smoothly_in_the_named_direction() {
    let studio = local_studio(24, "");
    // A bright vertical bar for the pan, a horizontal one for the tilt, both centred.
    let vbar = png_from_fn(1920, 1080, |x, _| {
        if (940..980).contains(&x) {
            [230; 3]
        } else {
            [20; 3]
        }
    });
    let hbar = png_from_fn(1920, 1080, |_, y| {
        if (520..560).contains(&y) {
            [230; 3]
        } else {
            [20; 3]
        }
    });
    studio.put("inbox/pan.png", &vbar);
    studio.put(
        "inbox/pan.yaml",
        b"prompt: pan right, slowly\nduration: 2\n",
    );
    studio.put("inbox/tilt.png", &hbar);
    studio.put(
        "inbox/tilt.yaml",
        b"prompt: tilt down to the road\nduration: 2\n",
    );
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (2, 0));

    for (name, horizontal) in [("pan", true), ("tilt", false)] {
        let d = decode_mp4(&studio.path(&format!("done/{name}.mp4")));
        assert_eq!(d.lumas.len(), 48);
        let pos: Vec<f64> = d
            .lumas
            .iter()
            .map(|y| centroid(y, d.width, horizontal))
            .collect();
        // The window slides by 20 % of the source toward the named side, so the bar slides the
        // other way across the frame: pan right → the bar moves left (800 → 480 px); tilt down →
        // it moves up (450 → 270 px). Along a smoothstep: p = t²(3 − 2t).
        let (start, travel) = if horizontal {
            (800.0, 320.0)
        } else {
            (450.0, 180.0)
        };
        let mut worst: f64 = 0.0;
        for (i, &x) in pos.iter().enumerate() {
            let t = i as f64 / 47.0;
            let want = start - travel * t * t * (3.0 - 2.0 * t);
            worst = worst.max((x - want).abs());
        }
        assert!(
            worst < 0.6,
            "{name}: off the eased path by {worst:.2} px (judder or a wrong path): {pos:?}"
        );
        let steps: Vec<f64> = pos.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            steps.iter().all(|&s| s < 0.05),
            "{name} moves one way only: {steps:?}"
        );
        let max = steps.iter().fold(0.0f64, |m, s| m.max(s.abs()));
        for pair in steps.windows(2) {
            assert!(
                (pair[1] - pair[0]).abs() < 0.2 * max + 0.3,
                "{name}: a jump in speed: {steps:?}"
            );
        }
        assert!(
            steps[0].abs() < 0.15 * max && steps[46].abs() < 0.15 * max,
            "{name} eases in and out"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ratio_renders_at_its_size() {
    let studio = local_studio(4, "");
    let img = png_from_fn(600, 600, waves);
    let ratios = [
        "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
    ];
    for (i, r) in ratios.iter().enumerate() {
        studio.put(&format!("inbox/r{i}.png"), &img);
        studio.put(
            &format!("inbox/r{i}.yaml"),
            format!("ratio: \"{r}\"\nduration: 1\nmotion: static\n").as_bytes(),
        );
    }
    let summary = studio.run_local().await;
    assert_eq!(summary.succeeded, ratios.len());
    for (i, r) in ratios.iter().enumerate() {
        let (w, h) = r.split_once(':').unwrap();
        let d = decode_mp4(&studio.path(&format!("done/r{i}.mp4")));
        assert_eq!(
            (d.width.to_string(), d.height.to_string()),
            (w.to_string(), h.to_string()),
            "{r}"
        );
        assert_eq!(d.lumas.len(), 4, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_truncated_and_bomb_images_fail_with_clear_messages() {
    let studio = local_studio(4, "  truncated_after: 300ms\ndefaults:\n  duration: 1\n");
    let good = png_from_fn(320, 180, waves);
    studio.put("inbox/truncated.png", &good[..good.len() / 2]);
    let mut corrupt = good.clone();
    for b in corrupt.iter_mut().skip(100).step_by(7) {
        *b ^= 0x5a;
    }
    studio.put("inbox/corrupt.png", &corrupt);
    studio.put("inbox/bomb.png", &png_header_claiming(100_000, 100_000));
    studio.put("inbox/fine.png", &good);
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 3));
    // A file whose structure ends early waits (it may still be arriving), then fails as
    // truncated; a damaged one fails as undecodable (or, when the damage hits its structure,
    // as truncated too).
    studio.error_says(
        "truncated",
        &["is truncated", "copy the image into inbox/ again"],
    );
    let t = studio.read("failed/corrupt.error.txt");
    assert!(
        (t.contains("cannot be decoded") || t.contains("is truncated"))
            && t.contains("What to do:"),
        "{t}"
    );
    studio.error_says("bomb", &["100000×100000", "megapixels"]);
    assert!(studio.list("processing").is_empty());
}

/// An RGBA PNG from a pixel function.
fn rgba_png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let data: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| f(x, y))
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

// See: issue 9, item 8 — colour under transparent pixels showed through; and (item 2) a TIFF
// renders locally like any image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparency_is_flattened_onto_white_and_other_formats_render() {
    let studio = local_studio(4, "defaults:\n  duration: 1\n  ratio: \"960:960\"\n");
    // Left half: pure red hidden under alpha 0. Right half: black at half opacity.
    studio.put(
        "inbox/logo.png",
        &rgba_png(400, 400, |x, _| {
            if x < 200 {
                [255, 0, 0, 0]
            } else {
                [0, 0, 0, 128]
            }
        }),
    );
    studio.put("inbox/logo.yaml", b"motion: static\n");
    let tiff = {
        let img = image::RgbImage::from_pixel(300, 300, image::Rgb([40, 160, 80]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Tiff)
            .unwrap();
        out.into_inner()
    };
    studio.put("inbox/scan.tif", &tiff);
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (2, 0));
    let d = decode_mp4(&studio.path("done/logo.mp4"));
    let frame = &d.lumas[0];
    let mean = |x0: usize, x1: usize| {
        let mut sum = 0.0;
        let mut n = 0.0;
        for y in 100..d.height - 100 {
            for x in x0..x1 {
                sum += f64::from(frame[y * d.width + x]);
                n += 1.0;
            }
        }
        sum / n
    };
    let white = luma([255.0; 3]);
    let grey = luma([127.5; 3]);
    let (left, right) = (mean(100, 380), mean(580, 860));
    assert!(
        (left - white).abs() < 4.0,
        "hidden red shows: luma {left:.1}, white is {white:.1}"
    );
    assert!(
        (right - grey).abs() < 4.0,
        "half-transparent black: luma {right:.1}, want {grey:.1}"
    );
    let d = decode_mp4(&studio.path("done/scan.mp4"));
    assert_eq!(d.lumas.len(), 4);
}

// See: issue 11 — text on the local backend: a title card, typeset and pushed in slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_becomes_a_title_card_that_is_not_blank() {
    let studio = local_studio(12, "");
    studio.put(
        "inbox/card.txt",
        "Chapter One 🌅\nThe lighthouse keeper's last night".as_bytes(),
    );
    studio.put("inbox/card.yaml", b"duration: 2\nratio: \"960:960\"\n");
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    let d = decode_mp4(&studio.path("done/card.mp4"));
    assert_eq!((d.width, d.height), (960, 960));
    assert_eq!(d.lumas.len(), 24, "duration × fps frames");
    for (i, frame) in [(0, &d.lumas[0]), (23, &d.lumas[23])] {
        // White type on a dark gradient: some pixels near white, most dark.
        let bright = frame.iter().filter(|&&y| y > 200).count() as f64 / frame.len() as f64;
        let dark = frame.iter().filter(|&&y| y < 120).count() as f64 / frame.len() as f64;
        assert!(
            bright > 0.01 && bright < 0.4,
            "frame {i}: {bright:.3} bright"
        );
        assert!(dark > 0.5, "frame {i}: {dark:.3} dark");
    }
    // A slow push-in: the last frame is the first one, enlarged, not the same picture.
    assert!(psnr(&d.lumas[0], &d.lumas[23]) < 30.0);
    let r = studio.json("done/card.result.json");
    assert_eq!(
        (r["kind"].as_str(), r["motion"].as_str()),
        (Some("text"), Some("push_in"))
    );
    studio.assert_listing(
        "done",
        &[
            "card.mp4",
            "card.poster.jpg",
            "card.result.json",
            "card.txt",
            "card.yaml",
        ],
    );
}

// See: issue 11 — two stills on the local backend: the move dissolves from the first to the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_of_stills_dissolves_from_the_first_into_the_last() {
    let studio = local_studio(12, "");
    let dark = |x: u32, y: u32| [(20 + x / 16) as u8, 30, (40 + y / 12) as u8];
    let bright = |x: u32, y: u32| [230, (200 + x / 16) as u8, (190 + y / 8) as u8];
    studio.put("inbox/fade.png", &png_from_fn(640, 360, dark));
    studio.put("inbox/fade.last.png", &png_from_fn(640, 360, bright));
    studio.put("inbox/fade.yaml", b"duration: 2\nmotion: static\n");
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    let d = decode_mp4(&studio.path("done/fade.mp4"));
    assert_eq!((d.width, d.height, d.lumas.len()), (1280, 720, 24));
    let first = expected_of(dark, 1280, 720, (0.0, 0.0, 640.0, 360.0));
    let last = expected_of(bright, 1280, 720, (0.0, 0.0, 640.0, 360.0));
    let (p0, p1) = (psnr(&d.lumas[0], &first), psnr(&d.lumas[23], &last));
    assert!(p0 > 30.0, "the first frame is the first still: {p0:.1} dB");
    assert!(p1 > 30.0, "the last frame is the last still: {p1:.1} dB");
    // Halfway, neither: a blend.
    let mean = |f: &[u8]| f.iter().map(|&y| f64::from(y)).sum::<f64>() / f.len() as f64;
    let (m0, m12, m23) = (mean(&d.lumas[0]), mean(&d.lumas[12]), mean(&d.lumas[23]));
    assert!(m0 < m12 && m12 < m23, "{m0:.0} < {m12:.0} < {m23:.0}");
    studio.assert_listing(
        "done",
        &[
            "fade.last.png",
            "fade.mp4",
            "fade.png",
            "fade.poster.jpg",
            "fade.result.json",
            "fade.yaml",
        ],
    );
}

// See: issue 12, item 3 — variants on the local renderer: no seed to vary, so each take moves the
// camera its own way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_variants_each_move_the_camera_differently() {
    let studio = local_studio(6, "");
    studio.put("inbox/hill.png", &png_distinct(64, 36));
    studio.put(
        "inbox/hill.yaml",
        b"duration: 1\nvariants: 3\nmotion: pan_left\n",
    );
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    let r = studio.json("done/hill.result.json");
    let motions: Vec<&str> = r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["motion"].as_str().unwrap())
        .collect();
    assert_eq!(motions, ["pan_left", "pan_right", "tilt_up"]);
    for n in 1..=3 {
        let d = decode_mp4(&studio.path(&format!("done/hill-v{n}.mp4")));
        assert_eq!(d.lumas.len(), 6, "take {n}: one second at 6 fps");
    }
}
