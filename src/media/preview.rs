//! Posters: a still of every delivered video, `<stem>.poster.jpg` beside it in `done/` (one per take,
//! `<stem>-v<n>.poster.jpg`) — the frame at the middle of the clip, at most [`MAX_WIDTH`] pixels
//! wide, as a JPEG. Made in the job folder before delivery and moved with the video: from the MP4
//! (decoded by [`crate::media::frames`] from the key frame before the middle), or, for a local
//! render, from the rendered frame itself. A video this build cannot decode (not H.264, damaged)
//! gets no poster and nothing fails for it.

use std::path::Path;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::media::frames::{FrameError, Mp4Video};

/// The widest a poster is; a narrower video keeps its own width.
pub const MAX_WIDTH: u32 = 640;
/// JPEG quality of a poster: small files, no visible blocking at card size.
const QUALITY: u8 = 85;

/// A poster (JPEG bytes) from a `w`×`h` frame of packed RGB.
pub fn jpeg_from_rgb(w: u32, h: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    use image::ImageEncoder as _;
    let (pw, ph) = poster_size(w, h);
    let src = ImageRef::new(w, h, rgb, PixelType::U8x3)
        .map_err(|e| format!("the frame cannot be used: {e}"))?;
    let mut small = Image::new(pw, ph, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut small,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| format!("the frame cannot be scaled: {e}"))?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .write_image(small.buffer(), pw, ph, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("the poster cannot be encoded: {e}"))?;
    Ok(out)
}

/// The poster's size for a `w`×`h` frame: at most [`MAX_WIDTH`] wide, the frame's shape kept.
fn poster_size(w: u32, h: u32) -> (u32, u32) {
    if w <= MAX_WIDTH {
        return (w, h);
    }
    let ph = (f64::from(h) * f64::from(MAX_WIDTH) / f64::from(w)).round() as u32;
    (MAX_WIDTH, ph.max(1))
}

/// A poster (JPEG bytes) of the middle frame of the H.264 MP4 at `path`. The error says why there
/// is none (for a debug line).
pub fn jpeg_from_mp4(path: &Path) -> Result<Vec<u8>, String> {
    let (w, h, rgb) = middle_frame(path).map_err(|e| e.to_string())?;
    jpeg_from_rgb(w, h, &rgb)
}

/// The frame at the middle of the MP4's video track, as (width, height, packed RGB).
fn middle_frame(path: &Path) -> Result<(u32, u32, Vec<u8>), FrameError> {
    let mut video = Mp4Video::open(path)?;
    // The frame at index count / 2, as the local renderer takes it (frames count from 1), decoded
    // from the last key frame at or before it.
    let middle = video.frame_count() / 2 + 1;
    let start = video.key_frame_before(middle);
    let mut last: Option<(u32, u32, Vec<u8>)> = None;
    // Frames the decoder still holds (reordered streams) come out last; the latest is the middle.
    video.decode(start..=middle, |frame| {
        let (w, h) = frame.size();
        last = Some((w as u32, h as u32, frame.to_rgb()));
    })?;
    last.ok_or(FrameError::NoOutput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poster_is_at_most_640_wide_and_keeps_the_shape() {
        assert_eq!(poster_size(1280, 720), (640, 360));
        assert_eq!(poster_size(720, 1280), (640, 1138));
        assert_eq!(poster_size(320, 240), (320, 240));
        let rgb = vec![200u8; 1280 * 720 * 3];
        let jpeg = jpeg_from_rgb(1280, 720, &rgb).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (640, 360));
        let p = img.to_rgb8().get_pixel(320, 180).0;
        assert!(p.iter().all(|&c| c.abs_diff(200) <= 2), "{p:?}");
    }

    #[test]
    fn what_is_not_an_h264_mp4_has_no_poster() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v.mp4");
        std::fs::write(&p, b"\0\0\0\x18ftypisom\0\0\x02\0isommp41 and then nothing").unwrap();
        assert!(jpeg_from_mp4(&p).is_err());
        assert!(jpeg_from_mp4(&d.path().join("missing.mp4")).is_err());
    }
}
