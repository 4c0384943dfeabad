//! What a file is, read from its bytes and never from its name alone. Here, for an image: the
//! format (magic bytes), its shown size, whether its image data decodes (in bounded memory) and its
//! hash; `whole` says whether the file is *whole* (its structure runs to the end). [`video`] does
//! the same for videos, [`convert`] turns a format the API does not take into PNG, and [`preview`]
//! makes the posters.
//!
//! Wholeness matters because sync clients and slow shares stall mid-copy for longer than any
//! settle time: a file that has stopped changing may still be half a file, and half a photo must
//! never be sent (and paid for).

pub mod convert;
pub mod frames;
pub mod preview;
pub mod video;
mod whole;

pub use whole::{Whole, iso_whole, read_up_to, wholeness};

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Images beyond this many pixels are refused before decoding (decompression bombs; a 100 MP
/// medium-format photo still passes). Both backends decode: the local renderer to render, the
/// Runway backend to convert a format the API does not take.
pub const MAX_DECODE_PIXELS: u64 = 120_000_000;

/// Image formats dropreel recognises by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    Gif,
    Bmp,
    Tiff,
    /// HEIC/HEIF (iPhone photos).
    Heif,
    Avif,
}

impl ImageFormat {
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Bmp => "image/bmp",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::Heif => "image/heic",
            ImageFormat::Avif => "image/avif",
        }
    }

    /// The name designers know it by.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Png => "PNG",
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Webp => "WebP",
            ImageFormat::Gif => "GIF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Heif => "HEIC/HEIF",
            ImageFormat::Avif => "AVIF",
        }
    }

    /// Whether the Runway API takes it as it is; the others are converted to PNG first.
    pub fn sent_as_is(self) -> bool {
        matches!(
            self,
            ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Webp
        )
    }

    /// Whether this build can decode it (to render it locally, or to convert it for the API).
    pub fn decodable(self) -> bool {
        !matches!(self, ImageFormat::Heif | ImageFormat::Avif)
    }
}

/// What the image's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl ImageInfo {
    /// For a record of an input that failed before its header could be read.
    pub const UNKNOWN: ImageInfo = ImageInfo {
        format: ImageFormat::Png,
        width: 0,
        height: 0,
    };
}

/// File name extensions of the image formats (lower case). The content decides the format; the
/// extension only says that a file is meant to be an image.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "jfif", "jpe", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif",
    "avif",
];

/// The format by magic bytes, from the first 64 bytes of a file.
pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if head.starts_with(b"BM") && head.len() >= 26 {
        Some(ImageFormat::Bmp)
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if head.len() >= 16 && &head[4..8] == b"ftyp" {
        // ISO base media: the brands say HEIF or AVIF (or a video, which is not an image).
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = size.clamp(16, head.len());
        let brands: Vec<&[u8]> = std::iter::once(&head[8..12])
            .chain(head[16..end].chunks_exact(4))
            .collect();
        if brands.iter().any(|b| matches!(*b, b"avif" | b"avis")) {
            Some(ImageFormat::Avif)
        } else if brands.iter().any(|b| {
            matches!(
                *b,
                b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
            )
        }) {
            Some(ImageFormat::Heif)
        } else {
            None
        }
    } else {
        None
    }
}

/// The image's format by its magic bytes: `Ok(None)` when the content is no image dropreel
/// knows (see [`not_an_image`] for the sentence). An I/O error is returned as such, so a caller
/// can tell a file still held open by its writer from a bad one.
pub fn format_of(path: &Path) -> io::Result<Option<ImageFormat>> {
    let mut head = [0u8; 64];
    let n = read_up_to(&mut File::open(path)?, &mut head)?;
    Ok(sniff(&head[..n]))
}

/// Why a file of `len` bytes whose content [`format_of`] did not recognise is no image: a sentence
/// for `error.txt`.
pub fn not_an_image(len: u64) -> String {
    if len == 0 {
        "the file is empty".into()
    } else {
        format!(
            "the file is not an image dropreel knows ({}): its content matches none of them",
            readable_formats()
        )
    }
}

/// The image formats this build reads, as designers name them: "PNG, JPEG, WebP, TIFF, BMP or
/// GIF". (HEIC and AVIF are recognised, only to say how to export them as JPEG.)
pub fn readable_formats() -> String {
    let names: Vec<&str> = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Webp,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
        ImageFormat::Gif,
        ImageFormat::Heif,
        ImageFormat::Avif,
    ]
    .into_iter()
    .filter(|f| f.decodable())
    .map(ImageFormat::name)
    .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The shown dimensions of an image of `format` (EXIF rotation applied), read from its header
/// only. The error is a sentence for `error.txt`.
pub fn dimensions(path: &Path, format: ImageFormat) -> Result<ImageInfo, String> {
    let size = imagesize::size(path).map_err(|e| {
        format!("the image header cannot be read ({e}); the file may be truncated or corrupt")
    })?;
    let (width, height) = (
        u32::try_from(size.width).unwrap_or(u32::MAX),
        u32::try_from(size.height).unwrap_or(u32::MAX),
    );
    if width == 0 || height == 0 {
        return Err(format!(
            "the image claims a size of {width}×{height} pixels"
        ));
    }
    // Phones store portraits as landscape pixels plus an EXIF rotation: report the shown shape.
    let (width, height) = if exif_rotated(path, format) {
        (height, width)
    } else {
        (width, height)
    };
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// Whether the image's EXIF orientation turns it by 90° (orientations 5–8). Reads the header only.
fn exif_rotated(path: &Path, format: ImageFormat) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut reader = BufReader::new(file);
    if format == ImageFormat::Tiff {
        // A TIFF is its own Exif block: `exif` would read the whole file (72 MB for a 24 MP
        // scan) to find one tag of the first directory.
        return tiff::decoder::Decoder::new(reader)
            .ok()
            .and_then(|mut d| {
                d.find_tag_unsigned::<u16>(tiff::tags::Tag::Orientation)
                    .ok()
                    .flatten()
            })
            .is_some_and(|o| (5..=8).contains(&o));
    }
    let Ok(exif) = exif::Reader::new().read_from_container(&mut reader) else {
        return false;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .is_some_and(|o| (5..=8).contains(&o))
}

/// Decodes the image's pixel data to its end, keeping little of it, to find an image that is
/// whole but damaged inside (a broken compressed stream) before it is sent: a PNG row by row
/// through one row buffer (its zlib checksum checked too), a JPEG at 1/8 of its size (every
/// entropy-coded block is still read), other formats whole (at most [`MAX_DECODE_PIXELS`]). The
/// error is a sentence for `error.txt`.
pub fn decodes(path: &Path, format: ImageFormat) -> Result<(), String> {
    let damaged = |e: &dyn std::fmt::Display| format!("its image data is broken ({e})");
    let file = File::open(path).map_err(|e| format!("it cannot be read: {e}"))?;
    let reader = BufReader::with_capacity(64 * 1024, file);
    match format {
        ImageFormat::Png => {
            let mut decoder = png::Decoder::new(reader);
            decoder.ignore_checksums(false);
            let mut png = decoder.read_info().map_err(|e| damaged(&e))?;
            while png.next_row().map_err(|e| damaged(&e))?.is_some() {}
            png.finish().map_err(|e| damaged(&e))
        }
        ImageFormat::Jpeg => {
            let mut decoder = jpeg_decoder::Decoder::new(reader);
            decoder.read_info().map_err(|e| damaged(&e))?;
            // The smallest scale the decoder offers (1/8): the DC of each block.
            decoder.scale(1, 1).map_err(|e| damaged(&e))?;
            decoder.decode().map(drop).map_err(|e| damaged(&e))
        }
        other if other.decodable() => {
            let mut image = image::ImageReader::new(reader)
                .with_guessed_format()
                .map_err(|e| damaged(&e))?;
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(MAX_DECODE_PIXELS * 4);
            image.limits(limits);
            image.decode().map(drop).map_err(|e| damaged(&e))
        }
        // HEIC and AVIF are refused before (this build has no decoder for them).
        _ => Ok(()),
    }
}

/// The SHA-256 of a file's bytes, in hex, read in 64 KiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::Digest as _;
    let mut f = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What to tell a designer whose image this build cannot decode.
pub fn undecodable_advice(format: ImageFormat) -> String {
    match format {
        ImageFormat::Heif => "this build of dropreel cannot decode HEIC/HEIF photos. Export the photo as \
            JPEG (macOS Preview: File → Export → JPEG; Windows Photos: Save as → JPG), or set the \
            iPhone to take JPEGs (Settings → Camera → Formats → Most Compatible), then drop the JPEG \
            into inbox/"
            .into(),
        ImageFormat::Avif => "this build of dropreel cannot decode AVIF images. Export the image as PNG \
            or JPEG (any image editor, or a browser's \"Save image as\" after opening it), then drop \
            that into inbox/"
            .into(),
        other => format!("re-export the {} image as PNG or JPEG", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], format: ImageFormat) -> Whole {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        std::fs::write(&p, bytes).unwrap();
        wholeness(&p, format).unwrap()
    }

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
        });
        let mut out = io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn a_tiff_turned_by_its_orientation_tag_reports_its_shown_size() {
        use tiff::encoder::{TiffEncoder, colortype::RGB8};
        let d = tempfile::tempdir().unwrap();
        for (orientation, shown) in [(1u16, (40, 30)), (6, (30, 40)), (8, (30, 40))] {
            let mut out = io::Cursor::new(Vec::new());
            let mut enc = TiffEncoder::new(&mut out).unwrap();
            let mut image = enc.new_image::<RGB8>(40, 30).unwrap();
            image
                .encoder()
                .write_tag(tiff::tags::Tag::Orientation, orientation)
                .unwrap();
            image.write_data(&[90u8; 40 * 30 * 3]).unwrap();
            let path = d.path().join("t.tif");
            std::fs::write(&path, out.into_inner()).unwrap();
            let info = dimensions(&path, ImageFormat::Tiff).unwrap();
            assert_eq!(
                (info.width, info.height),
                shown,
                "orientation {orientation}"
            );
        }
    }

    // See: issue 9, item 3 — a copy that stalled past the settle time was sent half-written.
    #[test]
    fn every_prefix_of_an_image_is_incomplete_and_the_whole_file_is_complete() {
        for (fmt, ours) in [
            (image::ImageFormat::Png, ImageFormat::Png),
            (image::ImageFormat::Jpeg, ImageFormat::Jpeg),
            (image::ImageFormat::WebP, ImageFormat::Webp),
            (image::ImageFormat::Gif, ImageFormat::Gif),
            (image::ImageFormat::Bmp, ImageFormat::Bmp),
            (image::ImageFormat::Tiff, ImageFormat::Tiff),
        ] {
            let bytes = encoded(fmt);
            assert_eq!(sniff(&bytes[..64]), Some(ours), "{fmt:?}");
            assert_eq!(check(&bytes, ours), Whole::Yes, "{fmt:?} whole");
            let step = (bytes.len() / 97).max(1);
            for cut in (16..bytes.len()).step_by(step) {
                assert!(
                    matches!(check(&bytes[..cut], ours), Whole::No(_)),
                    "{fmt:?} cut at {cut} of {} passed as whole",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn a_jpeg_with_data_after_its_end_marker_is_whole() {
        let mut bytes = encoded(image::ImageFormat::Jpeg);
        bytes.extend_from_slice(b"\0\0\0\x18ftypmp42 appended motion-photo video");
        assert_eq!(check(&bytes, ImageFormat::Jpeg), Whole::Yes);
    }

    #[test]
    fn iso_boxes_must_tile_the_file() {
        let mut heic = Vec::new();
        heic.extend_from_slice(&24u32.to_be_bytes());
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        heic.extend_from_slice(&16u32.to_be_bytes());
        heic.extend_from_slice(b"mdat01234567");
        assert_eq!(sniff(&heic), Some(ImageFormat::Heif));
        assert_eq!(check(&heic, ImageFormat::Heif), Whole::Yes);
        assert!(matches!(
            check(&heic[..heic.len() - 3], ImageFormat::Heif),
            Whole::No(_)
        ));
        let mut avif = heic.clone();
        avif[8..12].copy_from_slice(b"avif");
        assert_eq!(sniff(&avif), Some(ImageFormat::Avif));
        let mut video = heic;
        video[8..12].copy_from_slice(b"isom");
        video[16..24].copy_from_slice(b"isommp42");
        assert_eq!(sniff(&video), None, "an MP4 is not an image");
    }

    // See: issue 21, item 2 — a whole PNG whose zlib stream is broken passed every check and was
    // sent as a keyframe.
    #[test]
    fn damaged_image_data_is_found_by_decoding_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x");
        let decodes_as = |bytes: &[u8], format: ImageFormat| {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(
                wholeness(&path, format).unwrap(),
                Whole::Yes,
                "{format:?} is whole"
            );
            decodes(&path, format)
        };
        for (fmt, ours) in [
            (image::ImageFormat::Png, ImageFormat::Png),
            (image::ImageFormat::Jpeg, ImageFormat::Jpeg),
            (image::ImageFormat::WebP, ImageFormat::Webp),
            (image::ImageFormat::Gif, ImageFormat::Gif),
            (image::ImageFormat::Bmp, ImageFormat::Bmp),
            (image::ImageFormat::Tiff, ImageFormat::Tiff),
        ] {
            assert_eq!(decodes_as(&encoded(fmt), ours), Ok(()), "{fmt:?}");
        }
        let png = dropreel_testkit::png_with_broken_data(64, 36);
        let e = decodes_as(&png, ImageFormat::Png).unwrap_err();
        assert!(e.starts_with("its image data is broken"), "{e}");
        // A JPEG whose entropy-coded data turns into a code no Huffman table has (all ones;
        // each 0xFF stuffed with a 0x00, as in a real scan).
        let mut jpeg = encoded(image::ImageFormat::Jpeg);
        let sos = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let scan = sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
        for i in (scan + 8..scan + 48).step_by(2) {
            jpeg[i] = 0xFF;
            jpeg[i + 1] = 0x00;
        }
        let e = decodes_as(&jpeg, ImageFormat::Jpeg).unwrap_err();
        assert!(e.starts_with("its image data is broken"), "{e}");
    }

    // See: issue 21, item 3 — the message listing the formats dropreel knows named HEIC and AVIF,
    // which this build cannot read.
    #[test]
    fn the_formats_named_as_known_are_the_ones_this_build_reads() {
        let e = not_an_image(10);
        assert!(e.contains("(PNG, JPEG, WebP, TIFF, BMP or GIF)"), "{e}");
        assert!(!e.contains("HEIC") && !e.contains("AVIF"), "{e}");
    }
}
