//! Frames to a playable MP4: the renderer's I420 frames (BT.709, converted by [`super::yuv`]) into
//! H.264 with OpenH264 (bundled C source, Baseline profile, the stream tagged BT.709), muxed with
//! `muxide` into an MP4 with `moov` before `mdat` (fast start).
//!
//! Rendering overlaps encoding: a second thread resamples and converts the next frames while this
//! one encodes, so both cores work; frames are streamed through two recycled buffers, so memory
//! does not grow with the clip's length.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use muxide::api::{MuxerBuilder, VideoCodec};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, UsageType,
    VuiConfig,
};
use openh264::formats::YUVSource;

use super::render::{RenderError, Renderer};

/// Bits per pixel per frame: about 5.3 Mbit/s at 1280×720, 24 fps — clean for smooth 720p motion
/// from OpenH264's Baseline profile (which needs more than x264's High profile for the same look).
pub const BITS_PER_PIXEL: f64 = 0.24;

/// What a finished render measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderStats {
    pub frames: u32,
    pub bytes: u64,
    /// The H.264 stream's average bitrate, bits per second, as encoded.
    pub bitrate: u32,
    /// The bitrate the encoder aimed at (it spends less on calm pictures).
    pub target_bitrate: u32,
    pub seconds: f64,
    /// The poster (JPEG) made from the middle frame as it was rendered; `None` if it could not be.
    pub poster: Option<Vec<u8>>,
}

/// The encoder's target bitrate for a size and frame rate.
pub fn bitrate_for(width: u32, height: u32, fps: u32) -> u32 {
    (f64::from(width) * f64::from(height) * f64::from(fps) * BITS_PER_PIXEL) as u32
}

fn encoder_for(width: u32, height: u32, fps: u32) -> Result<Encoder, RenderError> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(bitrate_for(width, height, fps)))
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        // "Non-real-time" usage is refused by this build; real-time camera usage with frame
        // skipping off keeps every frame.
        .usage_type(UsageType::CameraVideoRealTime)
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 2))
        // Its own threads are slower on two cores than overlapping render and encode.
        .num_threads(1)
        .vui(VuiConfig::bt709());
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| RenderError::Encoder(e.to_string()))?;
    // At initialisation OpenH264 warns on stderr that skipping is off (as we want); stderr carries
    // our logs (one JSON object per line with --log-format json), so it must stay quiet.
    let mut level = openh264_sys2::WELS_LOG_QUIET as std::ffi::c_int;
    // SAFETY: the encoder exists and is not yet initialised, when OpenH264 accepts a trace level;
    // the pointer is to a live c_int for the duration of the call, as this option expects.
    #[allow(unsafe_code)]
    unsafe {
        encoder.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
            (&raw mut level).cast(),
        );
    }
    Ok(encoder)
}

/// Renders every frame of `renderer`'s plan into an MP4 at `out`. Stops early (with
/// [`RenderError::Cancelled`]) when `cancel` is set.
pub fn write_mp4(
    renderer: Renderer,
    out: &Path,
    cancel: &AtomicBool,
) -> Result<RenderStats, RenderError> {
    let started = Instant::now();
    let plan = *renderer.plan();
    let (w, h) = (plan.width as usize, plan.height as usize);
    let mut encoder = encoder_for(plan.width, plan.height, plan.fps)?;
    let file = File::create(out)?;
    let mut muxer = MuxerBuilder::new(BufWriter::new(file))
        .video(
            VideoCodec::H264,
            plan.width,
            plan.height,
            f64::from(plan.fps),
        )
        .with_fast_start(true)
        .build()
        .map_err(|e| RenderError::Encoder(e.to_string()))?;

    // Two buffers circulate: one being rendered, one being encoded.
    let (full_tx, full_rx) = mpsc::sync_channel::<(u32, Vec<u8>)>(1);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        empty_tx
            .send(Vec::with_capacity(w * h * 3 / 2))
            .expect("receiver alive");
    }
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let stop = &stop;
        let producer = scope.spawn(move || {
            let mut renderer = renderer;
            let mut poster = None;
            for i in 0..plan.frames {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut buf) = empty_rx.recv() else { break };
                renderer.render_i420(i, &mut buf);
                if i == plan.frames / 2 {
                    poster = crate::media::preview::jpeg_from_rgb(
                        plan.width,
                        plan.height,
                        renderer.frame_rgb(),
                    )
                    .ok();
                }
                if full_tx.send((i, buf)).is_err() {
                    break;
                }
            }
            poster
        });
        let mut annexb = Vec::new();
        let mut stream_bytes = 0u64;
        let mut encode = || -> Result<(), RenderError> {
            for (i, buf) in full_rx.iter() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(RenderError::Cancelled);
                }
                let yuv = I420 {
                    data: &buf,
                    width: w,
                    height: h,
                };
                let bitstream = encoder
                    .encode(&yuv)
                    .map_err(|e| RenderError::Encoder(e.to_string()))?;
                let keyframe = matches!(
                    bitstream.frame_type(),
                    openh264::encoder::FrameType::IDR | openh264::encoder::FrameType::I
                );
                annexb.clear();
                bitstream.write_vec(&mut annexb);
                if annexb.is_empty() {
                    return Err(RenderError::Encoder(format!("frame {i} came out empty")));
                }
                stream_bytes += annexb.len() as u64;
                muxer
                    .write_video(f64::from(i) / f64::from(plan.fps), &annexb, keyframe)
                    .map_err(|e| RenderError::Encoder(e.to_string()))?;
                // Hand the buffer back for the next frame (the producer may have finished).
                let _ = empty_tx.send(buf);
            }
            Ok(())
        };
        let r = encode();
        stop.store(true, Ordering::Relaxed);
        let r = r.map(|()| stream_bytes);
        drop(full_rx);
        let poster = producer
            .join()
            .map_err(|_| RenderError::Encoder("the render thread panicked".into()))?;
        r.map(|stream_bytes| (poster, stream_bytes))
    });
    let (poster, stream_bytes) = result?;
    muxer
        .finish_in_place()
        .map_err(|e| RenderError::Encoder(e.to_string()))?;
    let mut writer = muxer.into_writer();
    use std::io::Write as _;
    writer.flush()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    let clip_seconds = f64::from(plan.frames) / f64::from(plan.fps);
    Ok(RenderStats {
        frames: plan.frames,
        bytes,
        bitrate: (stream_bytes as f64 * 8.0 / clip_seconds).round() as u32,
        target_bitrate: bitrate_for(plan.width, plan.height, plan.fps),
        seconds: started.elapsed().as_secs_f64(),
        poster,
    })
}

/// A borrowed I420 frame, so buffers are recycled instead of reallocated per frame.
struct I420<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

impl YUVSource for I420<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }
    fn u(&self) -> &[u8] {
        let y = self.width * self.height;
        &self.data[y..y + y / 4]
    }
    fn v(&self) -> &[u8] {
        let y = self.width * self.height;
        &self.data[y + y / 4..]
    }
}
