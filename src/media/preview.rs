//! Posters: a still of every delivered video, `<stem>.poster.jpg` beside it in `done/` (one per take,
//! `<stem>-v<n>.poster.jpg`) — the frame at the middle of the clip, at most [`MAX_WIDTH`] pixels
//! wide, as a JPEG. Made in the job folder before delivery and moved with the video: from the MP4
//! (demuxed with `mp4`, decoded with OpenH264's decoder from the key frame before the middle), or,
//! for a local render, from the rendered frame itself. A video this build cannot decode (not H.264,
//! damaged) gets no poster and nothing fails for it.

use std::io::BufReader;
use std::path::Path;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

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
    let (w, h, rgb) = middle_frame(path)?;
    jpeg_from_rgb(w, h, &rgb)
}

/// The frame at the middle of the MP4's video track, as (width, height, packed RGB).
fn middle_frame(path: &Path) -> Result<(u32, u32, Vec<u8>), String> {
    use openh264::formats::YUVSource as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the video: {e}"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut mp4 = mp4::Mp4Reader::read_header(BufReader::new(file), size)
        .map_err(|e| format!("not a readable MP4 ({e})"))?;
    let (track_id, track) = mp4
        .tracks()
        .iter()
        .find(|(_, t)| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|(id, t)| (*id, t))
        .ok_or("the MP4 has no video track")?;
    if !matches!(track.media_type(), Ok(mp4::MediaType::H264)) {
        return Err("the video is not H.264".into());
    }
    let count = track.sample_count();
    if count == 0 {
        return Err("the video track has no frames".into());
    }
    // The frame at index count / 2, as the local renderer takes it (samples count from 1).
    let middle = count / 2 + 1;
    // Decoding starts at the last key frame at or before the middle (every frame is one when the
    // track lists none).
    let start = match &track.trak.mdia.minf.stbl.stss {
        Some(stss) => stss
            .entries
            .iter()
            .copied()
            .filter(|&n| n <= middle)
            .max()
            .unwrap_or(1),
        None => middle,
    };
    let mut annexb = Vec::new();
    for ps in [
        track.sequence_parameter_set(),
        track.picture_parameter_set(),
    ] {
        let ps = ps.map_err(|e| format!("the video has no parameter sets ({e})"))?;
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(ps);
    }
    let mut decoder =
        openh264::decoder::Decoder::new().map_err(|e| format!("no H.264 decoder ({e})"))?;
    let mut last: Option<(u32, u32, Vec<u8>)> = None;
    let mut keep = |yuv: &openh264::decoder::DecodedYUV<'_>| {
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        last = Some((
            w as u32,
            h as u32,
            i420_to_rgb(w, h, (yuv.y(), ys), (yuv.u(), us), (yuv.v(), vs)),
        ));
    };
    for i in start..=middle {
        let sample = mp4
            .read_sample(track_id, i)
            .map_err(|e| format!("frame {i} cannot be read ({e})"))?
            .ok_or_else(|| format!("frame {i} is missing"))?;
        let mut data = &sample.bytes[..];
        // Length-prefixed NAL units (AVCC) into start codes (Annex B), which the decoder takes.
        while data.len() >= 4 {
            let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            let nal = data
                .get(4..4 + n)
                .ok_or_else(|| format!("frame {i} is cut short"))?;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(nal);
            data = &data[4 + n..];
        }
        let decoded = decoder
            .decode(&annexb)
            .map_err(|e| format!("frame {i} cannot be decoded ({e})"))?;
        if let Some(yuv) = decoded {
            keep(&yuv);
        }
        annexb.clear();
    }
    // Frames the decoder still holds (reordered streams) come out last; the latest is the middle.
    if let Ok(rest) = decoder.flush_remaining()
        && let Some(yuv) = rest.last()
    {
        keep(yuv);
    }
    last.ok_or_else(|| "no frame came out of the decoder".into())
}

/// I420 (BT.709, limited range — what H.264 video is tagged with) to packed RGB.
fn i420_to_rgb(
    w: usize,
    h: usize,
    (y, ys): (&[u8], usize),
    (u, us): (&[u8], usize),
    (v, vs): (&[u8], usize),
) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    for row in 0..h {
        for col in 0..w {
            let luma = (f32::from(y[row * ys + col]) - 16.0) * 1.164_383;
            let cb = f32::from(u[(row / 2) * us + col / 2]) - 128.0;
            let cr = f32::from(v[(row / 2) * vs + col / 2]) - 128.0;
            rgb.push(clamp(luma + 1.792_741 * cr));
            rgb.push(clamp(luma - 0.213_249 * cb - 0.532_909 * cr));
            rgb.push(clamp(luma + 2.112_402 * cb));
        }
    }
    rgb
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
    fn bt709_colours_come_back() {
        // Limited-range BT.709 of pure red (R'G'B' 255, 0, 0): Y 63, Cb 102, Cr 240.
        let rgb = i420_to_rgb(2, 2, (&[63; 4], 2), (&[102], 1), (&[240], 1));
        assert!(
            rgb[0] >= 253 && rgb[1] <= 2 && rgb[2] <= 2,
            "{:?}",
            &rgb[..3]
        );
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
