//! Reading back what dropreel made: an MP4 demuxed and decoded frame by frame, and PSNR.

use std::path::Path;

use dropreel::media::frames::Mp4Video;

/// A decoded MP4: its size, duration, frame rate and every frame's luma plane (tightly packed).
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub seconds: f64,
    pub timescale_fps: f64,
    pub lumas: Vec<Vec<u8>>,
}

/// Decodes every frame of `path` with the library's reader ([`dropreel::media::frames`]).
pub fn decode_mp4(path: &Path) -> Decoded {
    let mut video = Mp4Video::open(path).unwrap();
    let (width, height) = video.size();
    let mut lumas = Vec::new();
    video
        .decode(1..=video.frame_count(), |frame| {
            assert_eq!(
                frame.size(),
                (width, height),
                "decoded size matches the track"
            );
            lumas.push(frame.luma());
        })
        .unwrap();
    Decoded {
        width,
        height,
        seconds: video.seconds(),
        timescale_fps: video.frame_rate(),
        lumas,
    }
}

/// PSNR in dB of two equally sized 8-bit planes.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
