//! Images the API does not take (GIF, BMP, TIFF) turned into a PNG for it, written beside the job's
//! file and kept there until the job ends.
//!
//! A TIFF stored the common way — strips, samples interleaved, 8 or 16 bits of grey, RGB or RGBA,
//! shown as stored — is streamed strip by strip into the PNG encoder: memory is one strip and the
//! encoder's window, not the picture (a 24 MP scan is 72 MB decoded, 144 MB at 16 bits). Any
//! other layout (tiles, planes, palettes, CMYK, a rotation tag) and the other formats are decoded
//! whole by `image`, orientation applied.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};
use tiff::tags::{PhotometricInterpretation, Tag};

/// Writes `src` as a PNG at `dst` (atomically: a temp file, synced, renamed). The error says
/// what went wrong, for the job's `error.txt`.
pub fn to_png(src: &Path, dst: &Path) -> Result<(), String> {
    let tmp = dst.with_extension("png.tmp");
    let written = match stream_tiff(src, &tmp) {
        Ok(true) => Ok(()),
        Ok(false) => decode_whole(src, &tmp),
        Err(e) => Err(e),
    };
    written
        .and_then(|()| {
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, dst))
                .map_err(|e| format!("the converted image cannot be written ({e})"))
        })
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Decodes `src` whole (any decodable format; a GIF's first frame; EXIF/TIFF orientation applied)
/// and writes it as a PNG at `out`. Memory: the decoded image once.
fn decode_whole(src: &Path, out: &Path) -> Result<(), String> {
    use image::ImageDecoder as _;
    let reader = image::ImageReader::open(src)
        .and_then(image::ImageReader::with_guessed_format)
        .map_err(|e| format!("the file cannot be read: {e}"))?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("the image cannot be decoded ({e})"))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("the image cannot be decoded ({e})"))?;
    img.apply_orientation(orientation);
    // 16-bit and float scans become 8-bit RGB(A): what the API and every viewer take.
    let img = if img.color().has_alpha() {
        image::DynamicImage::ImageRgba8(img.into_rgba8())
    } else {
        image::DynamicImage::ImageRgb8(img.into_rgb8())
    };
    img.save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("the converted image cannot be written ({e})"))
}

/// Streams a TIFF of the common layout into a PNG at `out`, strip by strip. `Ok(false)` when
/// `src` is not a TIFF of that layout (nothing written); an error when it is one but a strip
/// cannot be read or the PNG written.
fn stream_tiff(src: &Path, out: &Path) -> Result<bool, String> {
    let file = File::open(src).map_err(|e| format!("the file cannot be read: {e}"))?;
    let Ok(mut tiff) = TiffDecoder::new(BufReader::new(file)) else {
        return Ok(false);
    };
    let Some(layout) = streamable(&mut tiff) else {
        return Ok(false);
    };
    let bad = |e: tiff::TiffError| format!("the image cannot be decoded ({e})");
    let unwritable = |e: png::EncodingError| format!("the converted image cannot be written ({e})");
    let file =
        File::create(out).map_err(|e| format!("the converted image cannot be written ({e})"))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), layout.width, layout.height);
    encoder.set_color(layout.color);
    encoder.set_depth(png::BitDepth::Eight);
    // The compression `image` uses by default, so both paths make files of the same kind.
    encoder.set_compression(png::Compression::Fast);
    let mut header = encoder.write_header().map_err(unwritable)?;
    let mut stream = header.stream_writer().map_err(unwritable)?;
    let row = layout.width as usize * layout.color.samples();
    let mut rows_left = layout.height as usize;
    let strips = tiff.strip_count().map_err(bad)?;
    let mut bytes = Vec::new();
    for i in 0..strips {
        if rows_left == 0 {
            break;
        }
        let samples = match tiff.read_chunk(i).map_err(bad)? {
            DecodingResult::U8(v) => v,
            // 16-bit samples to 8, rounded as `image` rounds them (65535 → 255).
            DecodingResult::U16(v) => {
                bytes.clear();
                bytes.extend(v.iter().map(|&s| ((u32::from(s) + 128) / 257) as u8));
                std::mem::take(&mut bytes)
            }
            _ => return Err("the TIFF's samples changed type between strips".into()),
        };
        let rows = (samples.len() / row).min(rows_left);
        if rows == 0 {
            return Err(format!("strip {i} of the TIFF holds no whole row"));
        }
        stream
            .write_all(&samples[..rows * row])
            .map_err(|e| format!("the converted image cannot be written ({e})"))?;
        rows_left -= rows;
        bytes = samples;
    }
    if rows_left > 0 {
        return Err(format!(
            "the TIFF's strips end {rows_left} rows short of its height"
        ));
    }
    stream.finish().map_err(unwritable)?;
    Ok(true)
}

/// What a streamable TIFF is.
struct Layout {
    width: u32,
    height: u32,
    color: png::ColorType,
}

/// The layout of `tiff`'s first image when it can be streamed as it is stored: strips, samples
/// interleaved, 8 or 16 bits of grey (black is zero), RGB or RGBA, no rotation or mirroring.
fn streamable<R: io::Read + io::Seek>(tiff: &mut TiffDecoder<R>) -> Option<Layout> {
    if tiff.get_chunk_type() != tiff::decoder::ChunkType::Strip {
        return None;
    }
    let tag = |tiff: &mut TiffDecoder<R>, t: Tag| tiff.find_tag_unsigned::<u16>(t).ok();
    // Absent tags take their TIFF defaults: chunky samples, shown as stored.
    if !matches!(tag(tiff, Tag::PlanarConfiguration)?, None | Some(1))
        || !matches!(tag(tiff, Tag::Orientation)?, None | Some(1))
    {
        return None;
    }
    let photometric = tag(tiff, Tag::PhotometricInterpretation)??;
    let color = match (
        PhotometricInterpretation::from_u16(photometric)?,
        tiff.colortype().ok()?,
    ) {
        (PhotometricInterpretation::BlackIsZero, tiff::ColorType::Gray(8 | 16)) => {
            png::ColorType::Grayscale
        }
        (PhotometricInterpretation::RGB, tiff::ColorType::RGB(8 | 16)) => png::ColorType::Rgb,
        (PhotometricInterpretation::RGB, tiff::ColorType::RGBA(8 | 16)) => png::ColorType::Rgba,
        _ => return None,
    };
    let (width, height) = tiff.dimensions().ok()?;
    Some(Layout {
        width,
        height,
        color,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photo-like 8-bit RGB test picture.
    fn picture(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x ^ y) * 7) as u8])
        })
    }

    fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn gif_bmp_and_tiff_convert_to_png() {
        let d = tempfile::tempdir().unwrap();
        let img = image::DynamicImage::ImageRgb8(picture(64, 48));
        for fmt in [
            image::ImageFormat::Gif,
            image::ImageFormat::Bmp,
            image::ImageFormat::Tiff,
        ] {
            let src = d.path().join("src");
            std::fs::write(&src, encoded(&img, fmt)).unwrap();
            let dst = d.path().join("out.png");
            to_png(&src, &dst).unwrap();
            let png = image::open(&dst).unwrap();
            assert_eq!((png.width(), png.height()), (64, 48), "{fmt:?}");
            assert!(!d.path().join("out.png.tmp").exists());
        }
    }

    /// A TIFF of `samples` as colour type `C`, 16 rows per strip, with an Orientation tag when
    /// given.
    fn striped<C: tiff::encoder::colortype::ColorType>(
        w: u32,
        h: u32,
        samples: &[C::Inner],
        orientation: Option<u16>,
    ) -> Vec<u8>
    where
        [C::Inner]: tiff::encoder::TiffValue,
    {
        let mut out = io::Cursor::new(Vec::new());
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).unwrap();
        let mut image = enc.new_image::<C>(w, h).unwrap();
        image.rows_per_strip(16).unwrap();
        if let Some(o) = orientation {
            image.encoder().write_tag(Tag::Orientation, o).unwrap();
        }
        image.write_data(samples).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_striped_tiff_streams_to_the_pixels_a_whole_decode_gives() {
        use tiff::encoder::colortype::{Gray8, RGB8, RGB16, RGBA8};
        let d = tempfile::tempdir().unwrap();
        let (w, h) = (301, 203);
        let rgb = picture(w, h);
        let rgba: Vec<u8> = rgb
            .enumerate_pixels()
            .flat_map(|(x, y, p)| [p[0], p[1], p[2], (x + y) as u8])
            .collect();
        let grey: Vec<u8> = rgb.pixels().map(|p| p[1]).collect();
        let rgb16: Vec<u16> = rgb
            .as_raw()
            .iter()
            .map(|&v| (u16::from(v) * 257).saturating_add(100))
            .collect();
        let cases = [
            ("rgb8", striped::<RGB8>(w, h, rgb.as_raw(), None)),
            ("rgba8", striped::<RGBA8>(w, h, &rgba, None)),
            ("grey8", striped::<Gray8>(w, h, &grey, None)),
            ("rgb16", striped::<RGB16>(w, h, &rgb16, Some(1))),
        ];
        for (name, bytes) in cases {
            let src = d.path().join(format!("{name}.tif"));
            std::fs::write(&src, bytes).unwrap();
            let streamed = d.path().join(format!("{name}.streamed.png"));
            assert!(stream_tiff(&src, &streamed).unwrap(), "{name} streams");
            let whole = d.path().join(format!("{name}.whole.png"));
            decode_whole(&src, &whole).unwrap();
            let a = image::open(&streamed).unwrap();
            let b = image::open(&whole).unwrap();
            assert_eq!((a.width(), a.height()), (w, h), "{name}");
            // Grey stays grey in the stream (the API takes it); the whole decode made it RGB.
            assert_eq!(a.to_rgba8().as_raw(), b.to_rgba8().as_raw(), "{name}");
        }
    }

    #[test]
    fn a_tiff_not_stored_as_shown_is_decoded_whole_and_turned() {
        use tiff::encoder::colortype::RGB8;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("p.tif");
        // Orientation 6: the stored rows are shown turned a quarter clockwise.
        std::fs::write(
            &src,
            striped::<RGB8>(40, 30, picture(40, 30).as_raw(), Some(6)),
        )
        .unwrap();
        let out = d.path().join("s.png");
        assert!(!stream_tiff(&src, &out).unwrap());
        assert!(!out.exists(), "the stream wrote nothing");
        to_png(&src, &d.path().join("w.png")).unwrap();
        let png = image::open(d.path().join("w.png")).unwrap();
        assert_eq!((png.width(), png.height()), (30, 40));
    }
}
