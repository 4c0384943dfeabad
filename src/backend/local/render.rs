//! Frames of a camera move over a still image: decode (with EXIF orientation; a JPEG at the smallest
//! DCT scale — 1/8, 1/4, 1/2 — that still covers the working size, so a 24 MP photo never lands in
//! memory at full size), cover-crop to the output ratio, pre-scale once to a working size that
//! keeps full detail at the move's deepest zoom,
//! then resample every frame from a fractional crop window moving along an eased path — sub-pixel
//! accurate, so slow moves glide instead of stepping (no `zoompan` judder).

use std::io::BufReader;
use std::path::Path;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageDecoder, ImageReader};

use super::yuv::rgb_to_i420;
use crate::job::Motion;

/// Sources beyond this many pixels are refused before decoding.
pub use crate::media::MAX_DECODE_PIXELS as MAX_SOURCE_PIXELS;

/// A render that cannot be done. The message is for `error.txt`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Input(String),
    #[error("cannot write the video: {0}")]
    Io(#[from] std::io::Error),
    #[error("the video encoder failed: {0}")]
    Encoder(String),
    #[error("stopped")]
    Cancelled,
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
    pub motion: Motion,
    pub zoom: f64,
    /// Where a push-in ends (and a pull-out starts), as an offset from the centre in units of the
    /// room the zoom leaves (−1..1); chosen from the seed.
    pub focus: (f64, f64),
}

impl Plan {
    /// A plan for `seconds` of `motion`; `seed` picks the push-in's focus point reproducibly.
    pub fn new(
        width: u32,
        height: u32,
        fps: u32,
        seconds: u32,
        motion: Motion,
        zoom: f64,
        seed: u64,
    ) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let focus = (rng.f64() * 0.6 - 0.3, rng.f64() * 0.6 - 0.3);
        Plan {
            width,
            height,
            fps,
            frames: fps * seconds,
            motion,
            zoom: zoom.clamp(1.0, 2.0),
            focus,
        }
    }

    /// The deepest zoom of the move (the working image is pre-scaled for it).
    pub fn max_zoom(&self) -> f64 {
        if self.motion == Motion::Static {
            1.0
        } else {
            self.zoom
        }
    }

    /// The working image's size: output × deepest zoom, so the tightest window still maps 1:1.
    pub fn working_size(&self) -> (u32, u32) {
        let z = self.max_zoom();
        let ww = (f64::from(self.width) * z).round().max(1.0) as u32;
        let wh = (f64::from(self.height) * z).round().max(1.0) as u32;
        (ww, wh)
    }

    /// The crop window of frame `i` as (centre x, centre y, zoom): centre in fractions of the
    /// working image, zoom ≥ 1 (window = working size / zoom).
    pub fn window(&self, i: u32) -> (f64, f64, f64) {
        let t = if self.frames <= 1 {
            0.0
        } else {
            f64::from(i.min(self.frames - 1)) / f64::from(self.frames - 1)
        };
        // smoothstep: zero speed at both ends, no jolt at start or end.
        let p = t * t * (3.0 - 2.0 * t);
        let z = self.zoom;
        // The farthest the window centre may sit from the middle at zoom `z`.
        let room = |z: f64| 0.5 - 0.5 / z;
        match self.motion {
            Motion::Static => (0.5, 0.5, 1.0),
            Motion::PushIn | Motion::PullOut => {
                let q = if self.motion == Motion::PushIn {
                    p
                } else {
                    1.0 - p
                };
                // Zoom moves on a log scale (constant perceived speed); the centre drifts toward
                // the focus as the room for it opens up.
                let zq = z.powf(q);
                let r = room(zq);
                (0.5 + self.focus.0 * r, 0.5 + self.focus.1 * r, zq)
            }
            Motion::PanLeft => (0.5 + room(z) * (1.0 - 2.0 * p), 0.5, z),
            Motion::PanRight => (0.5 - room(z) * (1.0 - 2.0 * p), 0.5, z),
            Motion::TiltUp => (0.5, 0.5 + room(z) * (1.0 - 2.0 * p), z),
            Motion::TiltDown => (0.5, 0.5 - room(z) * (1.0 - 2.0 * p), z),
        }
    }
}

/// RGBA pixels composited over white (as an editor flattens a layer onto a white background), in
/// place: colour under fully transparent pixels never shows, half-transparent pixels blend.
pub fn over_white(mut rgba: Vec<u8>) -> Vec<u8> {
    let n = rgba.len() / 4;
    for i in 0..n {
        let a = u32::from(rgba[i * 4 + 3]);
        for c in 0..3 {
            let v = u32::from(rgba[i * 4 + c]);
            // The write index (3i + c) never passes the read index (4i + c).
            rgba[i * 3 + c] = ((v * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    rgba.truncate(n * 3);
    rgba
}

/// Renders the frames of a [`Plan`] from one source image.
pub struct Renderer {
    plan: Plan,
    work: Image<'static>,
    frame: Image<'static>,
    resizer: Resizer,
    /// A last keyframe to dissolve into, moving the same way.
    last: Option<Box<Renderer>>,
}

impl Renderer {
    /// Decodes `path` and prepares the working image. Memory: the decoded source once, briefly
    /// (a JPEG at the scale the working image needs, see [`scaled_jpeg`]).
    pub fn open(path: &Path, plan: Plan) -> Result<Renderer, RenderError> {
        let bad = |e: image::ImageError| {
            RenderError::Input(format!(
                "the image cannot be decoded ({e}); it may be truncated or corrupt — re-export it"
            ))
        };
        let reader = ImageReader::open(path)?.with_guessed_format()?;
        if reader.format() == Some(image::ImageFormat::Jpeg)
            && let Some((sw, sh, rgb)) = scaled_jpeg(path, plan)?
        {
            return Renderer::from_rgb(sw, sh, rgb, plan);
        }
        let (w, h) = reader.into_dimensions().map_err(bad)?;
        too_big(w, h)?;
        let mut reader = ImageReader::open(path)?.with_guessed_format()?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(1 << 30);
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(bad)?;
        let orientation = decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
        img.apply_orientation(orientation);
        let (sw, sh) = (img.width(), img.height());
        let rgb = if img.color().has_alpha() {
            over_white(img.into_rgba8().into_raw())
        } else {
            img.into_rgb8().into_raw()
        };
        Renderer::from_rgb(sw, sh, rgb, plan)
    }

    /// Prepares the working image from packed RGB pixels (a decoded still, or a drawn title card).
    pub fn from_rgb(sw: u32, sh: u32, rgb: Vec<u8>, plan: Plan) -> Result<Renderer, RenderError> {
        let src = Image::from_vec_u8(sw, sh, rgb, PixelType::U8x3)
            .map_err(|e| RenderError::Input(format!("the image cannot be used: {e}")))?;

        // Cover crop: the largest centred region of the output's shape.
        let aspect = f64::from(plan.width) / f64::from(plan.height);
        let (cl, ct, cw, ch) = cover_crop(sw, sh, aspect);

        let (ww, wh) = plan.working_size();
        let mut work = Image::new(ww, wh, PixelType::U8x3);
        let mut resizer = Resizer::new();
        let opts = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(cl, ct, cw, ch);
        resizer
            .resize(&src, &mut work, &opts)
            .map_err(|e| RenderError::Input(format!("the image cannot be scaled: {e}")))?;
        drop(src);
        Ok(Renderer {
            plan,
            work,
            frame: Image::new(plan.width, plan.height, PixelType::U8x3),
            resizer,
            last: None,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Frame `i` as packed RGB, into `self.frame`.
    fn render_rgb(&mut self, i: u32) {
        let (cx, cy, z) = self.plan.window(i);
        let (ww, wh) = (f64::from(self.work.width()), f64::from(self.work.height()));
        let (w, h) = (ww / z, wh / z);
        let left = (cx * ww - w / 2.0).clamp(0.0, ww - w);
        let top = (cy * wh - h / 2.0).clamp(0.0, wh - h);
        // Bicubic (Catmull-Rom) on a fractional window: the move is continuous, never snapped
        // to whole pixels.
        let opts = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
            .crop(left, top, w, h);
        self.resizer
            .resize(&self.work, &mut self.frame, &opts)
            .expect("the working image and frame have the same pixel type and valid sizes");
    }

    /// Dissolves from this still into `last` over the clip (both under the same move): the first
    /// frame is this one's, the last frame `last`'s, with an eased blend between.
    pub fn dissolving_into(mut self, last: Renderer) -> Renderer {
        self.last = Some(Box::new(last));
        self
    }

    /// The last frame rendered (as [`Renderer::render_i420`] made it, dissolve included), packed RGB.
    pub fn frame_rgb(&self) -> &[u8] {
        self.frame.buffer()
    }

    /// Frame `i` as I420 (BT.709, limited range) into `out`.
    pub fn render_i420(&mut self, i: u32, out: &mut Vec<u8>) {
        let (w, h) = (self.plan.width as usize, self.plan.height as usize);
        self.render_rgb(i);
        if let Some(last) = self.last.as_mut() {
            last.render_rgb(i);
            let t = dissolve_weight(i, self.plan.frames);
            let into = last.frame.buffer();
            for (a, b) in self.frame.buffer_mut().iter_mut().zip(into) {
                *a = (f64::from(*a) * (1.0 - t) + f64::from(*b) * t).round() as u8;
            }
        }
        rgb_to_i420(self.frame.buffer(), w, h, out);
    }
}

/// Refuses a source beyond [`MAX_SOURCE_PIXELS`] before it is decoded.
fn too_big(w: u32, h: u32) -> Result<(), RenderError> {
    if u64::from(w) * u64::from(h) > MAX_SOURCE_PIXELS {
        return Err(RenderError::Input(format!(
            "the image is {w}×{h} pixels; the local renderer takes at most {} megapixels",
            MAX_SOURCE_PIXELS / 1_000_000
        )));
    }
    Ok(())
}

/// The cover crop of a `sw`×`sh` image for an output of `aspect` (width ÷ height): the largest
/// centred region of that shape, as (left, top, width, height).
fn cover_crop(sw: u32, sh: u32, aspect: f64) -> (f64, f64, f64, f64) {
    let (sw, sh) = (f64::from(sw), f64::from(sh));
    let (cw, ch) = if sw / sh > aspect {
        (sh * aspect, sh)
    } else {
        (sw, sw / aspect)
    };
    ((sw - cw) / 2.0, (sh - ch) / 2.0, cw, ch)
}

/// The smallest JPEG DCT scale (in eighths: 1, 2, 4 or 8) at which the cover crop of a
/// `w`×`h` image (as displayed) still has at least the working size's pixels, so pre-scaling
/// only ever shrinks it: no detail the move shows is lost.
fn dct_eighths(w: u32, h: u32, plan: &Plan) -> u32 {
    let (ww, wh) = plan.working_size();
    let (_, _, cw, ch) = cover_crop(w, h, f64::from(plan.width) / f64::from(plan.height));
    [1, 2, 4]
        .into_iter()
        .find(|&k| {
            cw * f64::from(k) / 8.0 >= f64::from(ww) && ch * f64::from(k) / 8.0 >= f64::from(wh)
        })
        .unwrap_or(8)
}

/// A JPEG decoded at the smallest DCT scale that covers the move ([`dct_eighths`]), oriented by
/// its EXIF tag, as (width, height, packed RGB). Decoding at 1/2 holds a quarter of the pixels, at
/// 1/4 a sixteenth: a 6000×4000 photo for a 720p move is decoded at 3000×2000 or less. `None`
/// when the image needs its full size or is a kind this path leaves to the general decoder
/// (CMYK, 16-bit grey); an undecodable file is the job's error, as in the general path.
fn scaled_jpeg(path: &Path, plan: Plan) -> Result<Option<(u32, u32, Vec<u8>)>, RenderError> {
    use image::metadata::Orientation;
    let bad = |e: jpeg_decoder::Error| {
        RenderError::Input(format!(
            "the image cannot be decoded ({e}); it may be truncated or corrupt — re-export it"
        ))
    };
    let mut decoder = jpeg_decoder::Decoder::new(BufReader::new(std::fs::File::open(path)?));
    decoder.read_info().map_err(bad)?;
    let info = decoder.info().expect("read_info succeeded");
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    too_big(w, h)?;
    if !matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return Ok(None);
    }
    // The Exif block comes before the frame header, so it is known now.
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let turned = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let (dw, dh) = if turned { (h, w) } else { (w, h) };
    let k = dct_eighths(dw, dh, &plan);
    if k == 8 {
        return Ok(None);
    }
    let eighths = |len: u32| ((len * k).div_ceil(8)) as u16;
    let (sw, sh) = decoder.scale(eighths(w), eighths(h)).map_err(bad)?;
    let pixels = decoder.decode().map_err(bad)?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let img = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(sw, sh, pixels).map(image::DynamicImage::ImageLuma8)
        }
        _ => image::RgbImage::from_raw(sw, sh, pixels).map(image::DynamicImage::ImageRgb8),
    };
    let Some(mut img) = img else {
        return Err(RenderError::Input(
            "the image cannot be decoded (its pixel data is short); re-export it".into(),
        ));
    };
    img.apply_orientation(orientation);
    let (ow, oh) = (img.width(), img.height());
    Ok(Some((ow, oh, img.into_rgb8().into_raw())))
}

/// How far frame `i` of `frames` has dissolved into the last keyframe: 0 at the first frame, 1 at
/// the last, eased (smoothstep) between.
pub fn dissolve_weight(i: u32, frames: u32) -> f64 {
    if frames <= 1 {
        return 1.0;
    }
    let t = f64::from(i.min(frames - 1)) / f64::from(frames - 1);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(motion: Motion) -> Plan {
        Plan::new(1280, 720, 24, 5, motion, 1.25, 7)
    }

    /// A photo-like test image: smooth light, edges and fine texture (not noise, which no
    /// downscaler keeps and no camera makes).
    fn photo(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (f64::from(x) / f64::from(w), f64::from(y) / f64::from(h));
            let texture = ((f64::from(x) * 0.21).sin() * (f64::from(y) * 0.17).cos()) * 18.0;
            let edge = if (fx - 0.6).powi(2) + (fy - 0.4).powi(2) < 0.04 {
                70.0
            } else {
                0.0
            };
            let v = |base: f64| (base + texture + edge).clamp(0.0, 255.0) as u8;
            image::Rgb([
                v(40.0 + 150.0 * fx),
                v(60.0 + 120.0 * fy),
                v(170.0 - 90.0 * fx * fy),
            ])
        })
    }

    /// `img` saved as a quality-92 JPEG at `path`, with an Exif orientation tag when given.
    fn save_jpeg(img: &image::RgbImage, path: &Path, orientation: Option<u16>) {
        use image::ImageEncoder as _;
        let mut bytes = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92);
        if let Some(o) = orientation {
            // A big-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT, 1, `o`.
            let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
            exif.extend_from_slice(&o.to_be_bytes());
            exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            enc.set_exif_metadata(exif).unwrap();
        }
        enc.write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// PSNR over packed bytes (every channel of every pixel).
    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
    }

    #[test]
    fn the_dct_scale_is_the_smallest_that_still_covers_the_move() {
        let p = Plan::new(1280, 720, 24, 5, Motion::PushIn, 1.5, 1);
        // Working size 1920×1080; a 6000×4000 photo's 16:9 crop is 6000×3375: half is enough.
        assert_eq!(dct_eighths(6000, 4000, &p), 4);
        // A quarter (1500 wide) would not be; a 3000×2000 photo needs its full size.
        assert_eq!(dct_eighths(3000, 2000, &p), 8);
        // A still at 720p needs only 1280×720: an eighth of a 12000×8000 scan is 1500×1000.
        let still = Plan::new(1280, 720, 24, 5, Motion::Static, 1.5, 1);
        assert_eq!(dct_eighths(12000, 8000, &still), 1);
        // Portrait output from a landscape photo: the crop is as tall as the photo.
        let portrait = Plan::new(720, 1280, 24, 5, Motion::Static, 1.0, 1);
        assert_eq!(dct_eighths(6000, 4000, &portrait), 4);
        assert_eq!(dct_eighths(6000, 2000, &portrait), 8);
    }

    #[test]
    fn a_big_jpeg_decoded_scaled_makes_the_working_image_of_a_full_decode() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::new(640, 360, 24, 2, Motion::Static, 1.0, 1);
        let img = photo(2400, 1600);
        for (orientation, shown) in [(None, (2400, 1600)), (Some(6), (1600, 2400))] {
            let path = dir.path().join("big.jpg");
            save_jpeg(&img, &path, orientation);
            // Decoded at half size (a 640×360 crop needs 640 of the 2400 or 1600 columns).
            let (sw, sh, _) = scaled_jpeg(&path, plan).unwrap().expect("a scaled decode");
            assert_eq!(
                (sw, sh),
                (shown.0 / 2, shown.1 / 2),
                "orientation {orientation:?}"
            );
            let scaled = Renderer::open(&path, plan).unwrap();
            // The general decoder at full size, turned the same way.
            let mut decoder = ImageReader::open(&path).unwrap().into_decoder().unwrap();
            let o = decoder.orientation().unwrap();
            let mut full = image::DynamicImage::from_decoder(decoder).unwrap();
            full.apply_orientation(o);
            assert_eq!((full.width(), full.height()), shown);
            let full = Renderer::from_rgb(
                full.width(),
                full.height(),
                full.into_rgb8().into_raw(),
                plan,
            )
            .unwrap();
            let db = psnr(scaled.work.buffer(), full.work.buffer());
            eprintln!("orientation {orientation:?}: scaled vs full decode {db:.1} dB");
            assert!(db > 45.0, "orientation {orientation:?}: {db:.1} dB");
        }
    }

    #[test]
    fn moves_start_and_end_at_rest_and_stay_inside() {
        for m in Motion::ALL {
            let p = plan(m);
            let mut prev = p.window(0);
            let mut steps = Vec::new();
            for i in 1..p.frames {
                let w = p.window(i);
                let half = 0.5 / w.2;
                assert!(
                    w.0 - half >= -1e-9 && w.0 + half <= 1.0 + 1e-9,
                    "{m:?} frame {i} leaves the image"
                );
                assert!(
                    w.1 - half >= -1e-9 && w.1 + half <= 1.0 + 1e-9,
                    "{m:?} frame {i} leaves the image"
                );
                steps.push((
                    (w.0 - prev.0).abs() + (w.1 - prev.1).abs() + (w.2 - prev.2).abs(),
                    w,
                ));
                prev = w;
            }
            if m == Motion::Static {
                assert!(steps.iter().all(|s| s.0 == 0.0));
                continue;
            }
            let max = steps.iter().map(|s| s.0).fold(0.0, f64::max);
            assert!(steps[0].0 < max * 0.1, "{m:?} starts gently");
            assert!(steps.last().unwrap().0 < max * 0.1, "{m:?} ends gently");
        }
    }

    #[test]
    fn pans_go_the_named_way() {
        let p = plan(Motion::PanLeft);
        assert!(
            p.window(0).0 > p.window(p.frames - 1).0,
            "pan left: the view moves left"
        );
        let p = plan(Motion::TiltUp);
        assert!(
            p.window(0).1 > p.window(p.frames - 1).1,
            "tilt up: the view moves up"
        );
        let p = plan(Motion::PushIn);
        assert_eq!(p.window(0).2, 1.0);
        assert!((p.window(p.frames - 1).2 - 1.25).abs() < 1e-9);
    }

    // See: issue 9, item 8 — hidden colour showed through, half-transparent pixels came out opaque.
    #[test]
    fn transparency_is_flattened_onto_white() {
        let px = over_white(vec![
            255, 0, 0, 0, // red, fully transparent: white
            0, 0, 0, 128, // black, half transparent: mid grey
            10, 200, 30, 255, // opaque: unchanged
        ]);
        assert_eq!(px, vec![255, 255, 255, 127, 127, 127, 10, 200, 30]);
    }

    #[test]
    fn the_seed_picks_the_focus_reproducibly() {
        let a = Plan::new(1280, 720, 24, 5, Motion::PushIn, 1.25, 1);
        let b = Plan::new(1280, 720, 24, 5, Motion::PushIn, 1.25, 1);
        let c = Plan::new(1280, 720, 24, 5, Motion::PushIn, 1.25, 2);
        assert_eq!(a.focus, b.focus);
        assert_ne!(a.focus, c.focus);
    }
}
