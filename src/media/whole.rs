//! Whether an image file is *whole*: its structure runs to the end (JPEG's EOI, PNG's IEND, the
//! RIFF length, GIF's trailer, every TIFF strip, every ISO box), so a file a sync client is still
//! writing is never taken for a finished one.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::ImageFormat;

pub fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether a file's structure runs to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whole {
    Yes,
    /// It ends before its structure does: still being written, or a copy that broke off. Says
    /// where it stops.
    No(String),
}

/// Checks that the image at `path` is structurally complete. Reads headers and seeks past data
/// (a JPEG without its EOI at the very end is scanned once). An I/O error is returned as such.
pub fn wholeness(path: &Path, format: ImageFormat) -> io::Result<Whole> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let short = |what: &str| Ok(Whole::No(what.to_string()));
    match format {
        ImageFormat::Png => {
            let mut pos = 8u64;
            loop {
                r.seek(SeekFrom::Start(pos))?;
                let mut h = [0u8; 8];
                if read_up_to(&mut r, &mut h)? < 8 {
                    return short("the PNG ends before its IEND chunk");
                }
                let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
                let end = pos + 8 + size + 4;
                if end > len {
                    return short("the PNG ends inside a chunk");
                }
                if &h[4..8] == b"IEND" {
                    return Ok(Whole::Yes);
                }
                pos = end;
            }
        }
        ImageFormat::Jpeg => jpeg_whole(&mut r, len),
        ImageFormat::Webp => {
            let mut h = [0u8; 8];
            read_up_to(&mut r, &mut h)?;
            let size = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
            if len >= size + 8 {
                Ok(Whole::Yes)
            } else {
                short("the WebP is shorter than its RIFF header says")
            }
        }
        ImageFormat::Gif => gif_whole(&mut r),
        ImageFormat::Bmp => {
            let mut h = [0u8; 38];
            if read_up_to(&mut r, &mut h)? < 30 {
                return short("the BMP ends inside its header");
            }
            let u32le =
                |i: usize| u64::from(u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
            let declared = u32le(2);
            let need = if declared > 0 {
                declared
            } else {
                let width =
                    u64::from(i32::from_le_bytes([h[18], h[19], h[20], h[21]]).unsigned_abs());
                let height =
                    u64::from(i32::from_le_bytes([h[22], h[23], h[24], h[25]]).unsigned_abs());
                let bpp = u64::from(u16::from_le_bytes([h[28], h[29]]));
                u32le(10) + (width * bpp).div_ceil(32) * 4 * height
            };
            if len >= need {
                Ok(Whole::Yes)
            } else {
                short("the BMP is shorter than its header says")
            }
        }
        ImageFormat::Tiff => tiff_whole(r, len),
        ImageFormat::Heif | ImageFormat::Avif => iso_whole(&mut r, len),
    }
}

/// ISO base media (HEIF, AVIF, MP4, MOV): the top-level boxes must tile the file exactly.
pub fn iso_whole(r: &mut (impl Read + Seek), len: u64) -> io::Result<Whole> {
    let short = |what: &str| Ok(Whole::No(what.to_string()));
    let mut pos = 0u64;
    while pos < len {
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        let n = read_up_to(r, &mut h)?;
        if n < 8 {
            return short("the file ends inside a box header");
        }
        let size = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            0 => return Ok(Whole::Yes), // the last box runs to the end
            1 if n == 16 => u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")),
            1 => return short("the file ends inside a box header"),
            s => u64::from(s),
        };
        if size < 8 {
            return short("a box has an impossible size");
        }
        pos += size;
    }
    if pos == len {
        Ok(Whole::Yes)
    } else {
        short("the file ends inside a box")
    }
}

/// JPEG: walk the marker segments to the first scan (their lengths must fit the file), then find
/// the EOI marker after it (at the very end, or — for files with data appended, such as motion
/// photos — anywhere after the scan).
pub(super) fn jpeg_whole(r: &mut BufReader<File>, len: u64) -> io::Result<Whole> {
    let mut pos = 2u64;
    loop {
        r.seek(SeekFrom::Start(pos))?;
        let mut m = [0u8; 4];
        if read_up_to(r, &mut m[..2])? < 2 {
            return Ok(Whole::No("the JPEG ends before its image data".into()));
        }
        if m[0] != 0xFF {
            // Not a marker where one belongs: the structure cannot be followed, so judge by
            // the end marker alone (the decoder will judge the rest).
            break;
        }
        match m[1] {
            0xFF => pos += 1, // fill byte
            0xD9 => return Ok(Whole::Yes),
            0x01 | 0xD0..=0xD7 => pos += 2,
            marker => {
                if read_up_to(r, &mut m[2..])? < 2 {
                    return Ok(Whole::No("the JPEG ends inside a segment header".into()));
                }
                let seg = u64::from(u16::from_be_bytes([m[2], m[3]]));
                pos += 2 + seg;
                if pos > len {
                    return Ok(Whole::No("the JPEG ends inside a segment".into()));
                }
                if marker == 0xDA {
                    break;
                }
            }
        }
    }
    // The scan data: FF is always followed by 00 or a marker, so FF D9 is the real EOI.
    if len >= 2 {
        r.seek(SeekFrom::Start(len - 2))?;
        let mut tail = [0u8; 2];
        read_up_to(r, &mut tail)?;
        if tail == [0xFF, 0xD9] {
            return Ok(Whole::Yes);
        }
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_ff = false;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(Whole::No(
                "the JPEG ends inside its image data (no end marker)".into(),
            ));
        }
        for &b in &buf[..n] {
            if last_ff && b == 0xD9 {
                return Ok(Whole::Yes);
            }
            last_ff = b == 0xFF;
        }
    }
}

/// GIF: header, screen descriptor and colour table, then blocks up to the trailer (0x3B).
pub(super) fn gif_whole(r: &mut BufReader<File>) -> io::Result<Whole> {
    let no = |what: &str| Ok(Whole::No(format!("the GIF ends {what}")));
    let mut h = [0u8; 13];
    if read_up_to(r, &mut h)? < 13 {
        return no("inside its header");
    }
    let table = |flags: u8| -> i64 {
        if flags & 0x80 != 0 {
            3 << ((flags & 0x07) + 1)
        } else {
            0
        }
    };
    let mut byte = [0u8; 1];
    // A seek past the end succeeds; the next read finds out.
    r.seek_relative(table(h[10]))?;
    // Sub-blocks: a length byte, that many bytes, until a 0 length.
    let sub_blocks = |r: &mut BufReader<File>| -> io::Result<bool> {
        let mut b = [0u8; 1];
        loop {
            if r.read(&mut b)? == 0 {
                return Ok(false);
            }
            if b[0] == 0 {
                return Ok(true);
            }
            r.seek_relative(i64::from(b[0]))?;
        }
    };
    loop {
        if r.read(&mut byte)? == 0 {
            return no("before its trailer");
        }
        match byte[0] {
            0x3B => return Ok(Whole::Yes),
            0x21 => {
                if r.read(&mut byte)? == 0 || !sub_blocks(r)? {
                    return no("inside an extension");
                }
            }
            0x2C => {
                let mut d = [0u8; 9];
                if read_up_to(r, &mut d)? < 9 {
                    return no("inside an image descriptor");
                }
                r.seek_relative(table(d[8]))?;
                if r.read(&mut byte)? == 0 || !sub_blocks(r)? {
                    return no("inside its image data");
                }
            }
            _ => return Ok(Whole::No("the GIF's structure is broken".into())),
        }
    }
}

/// TIFF: the first image's strips (or tiles) must all lie inside the file.
pub(super) fn tiff_whole(r: BufReader<File>, len: u64) -> io::Result<Whole> {
    use tiff::tags::Tag;
    let no = |what: &str| Ok(Whole::No(what.to_string()));
    let Ok(mut d) = tiff::decoder::Decoder::new(r) else {
        return no("the TIFF ends inside its header or first directory");
    };
    let pairs = [
        (Tag::StripOffsets, Tag::StripByteCounts),
        (Tag::TileOffsets, Tag::TileByteCounts),
    ];
    for (offsets, counts) in pairs {
        let (Ok(Some(o)), Ok(Some(c))) = (
            d.find_tag_unsigned_vec::<u64>(offsets),
            d.find_tag_unsigned_vec::<u64>(counts),
        ) else {
            continue;
        };
        let end = o
            .iter()
            .zip(&c)
            .map(|(o, c)| o.saturating_add(*c))
            .max()
            .unwrap_or(0);
        return if end <= len {
            Ok(Whole::Yes)
        } else {
            no("the TIFF ends before its image data does")
        };
    }
    no("the TIFF's first image has no data")
}
