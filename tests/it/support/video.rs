//! Reading back what dropreel made: an MP4 demuxed and decoded frame by frame, and PSNR.

use std::path::Path;

/// A decoded MP4: its size, duration, frame rate and every frame's luma plane (tightly packed).
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub seconds: f64,
    pub timescale_fps: f64,
    pub lumas: Vec<Vec<u8>>,
}

/// Demuxes `path` with the `mp4` crate and decodes its H.264 with OpenH264's decoder.
pub fn decode_mp4(path: &Path) -> Decoded {
    use openh264::formats::YUVSource;
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut mp4 = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    let (track_id, track) = mp4
        .tracks()
        .iter()
        .find(|(_, t)| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|(id, t)| (*id, t))
        .expect("a video track");
    let (width, height) = (usize::from(track.width()), usize::from(track.height()));
    let fps = track.frame_rate();
    let mut annexb = Vec::new();
    for ps in [
        track.sequence_parameter_set().unwrap(),
        track.picture_parameter_set().unwrap(),
    ] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(ps);
    }
    let seconds = mp4.duration().as_secs_f64();
    let count = mp4.sample_count(track_id).unwrap();
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut lumas = Vec::new();
    let take = |yuv: &openh264::decoder::DecodedYUV<'_>, lumas: &mut Vec<Vec<u8>>| {
        let (w, h) = yuv.dimensions();
        assert_eq!((w, h), (width, height), "decoded size matches the track");
        let stride = yuv.strides().0;
        let mut y = Vec::with_capacity(w * h);
        for row in 0..h {
            y.extend_from_slice(&yuv.y()[row * stride..row * stride + w]);
        }
        lumas.push(y);
    };
    for i in 1..=count {
        let sample = mp4.read_sample(track_id, i).unwrap().unwrap();
        let mut data = &sample.bytes[..];
        while data.len() >= 4 {
            let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&data[4..4 + n]);
            data = &data[4 + n..];
        }
        if let Some(yuv) = decoder.decode(&annexb).unwrap() {
            take(&yuv, &mut lumas);
        }
        annexb.clear();
    }
    for yuv in decoder.flush_remaining().unwrap() {
        take(&yuv, &mut lumas);
    }
    Decoded {
        width,
        height,
        seconds,
        timescale_fps: fps,
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
