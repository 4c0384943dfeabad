//! What a dropped video is, read from its bytes: the container (MP4 or QuickTime by their `ftyp`
//! box, WebM by its EBML header), whether an MP4/MOV is whole (its top-level boxes tile the file),
//! and its length from the movie header (`mvhd`) where the container has one.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::media::{Whole, iso_whole, read_up_to};

/// The extensions of video jobs.
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mov", "webm"];

/// A video container dropreel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    QuickTime,
    WebM,
}

impl Container {
    pub fn mime(self) -> &'static str {
        match self {
            Container::Mp4 => "video/mp4",
            Container::QuickTime => "video/quicktime",
            Container::WebM => "video/webm",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "MP4",
            Container::QuickTime => "QuickTime",
            Container::WebM => "WebM",
        }
    }
}

/// The container by its first bytes: an `ftyp` box (QuickTime when its brand is `qt  `), or the
/// EBML magic of Matroska/WebM.
pub fn sniff(head: &[u8]) -> Option<Container> {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(if &head[8..12] == b"qt  " {
            Container::QuickTime
        } else {
            Container::Mp4
        });
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(Container::WebM);
    }
    None
}

/// The container of the file at `path`, `Ok(None)` when its content is no video dropreel knows.
pub fn container_of(path: &Path) -> io::Result<Option<Container>> {
    let mut head = [0u8; 16];
    let n = read_up_to(&mut File::open(path)?, &mut head)?;
    Ok(sniff(&head[..n]))
}

/// Whether the video is all there: an MP4 or MOV's boxes must tile the file. (A WebM carries no
/// length that a live recording must fill, so it is taken once settled.)
pub fn wholeness(path: &Path, container: Container) -> io::Result<Whole> {
    match container {
        Container::WebM => Ok(Whole::Yes),
        Container::Mp4 | Container::QuickTime => {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            iso_whole(&mut BufReader::new(file), len)
        }
    }
}

/// The length in seconds from the movie header (`moov/mvhd`), when the file has one.
pub fn seconds(path: &Path) -> Option<f64> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut r = BufReader::new(file);
    let (moov, moov_len) = find_box(&mut r, 0, len, b"moov")?;
    let (mvhd, _) = find_box(&mut r, moov, moov + moov_len, b"mvhd")?;
    r.seek(SeekFrom::Start(mvhd)).ok()?;
    let mut h = [0u8; 32];
    read_up_to(&mut r, &mut h).ok()?;
    let (timescale, duration) = if h[0] == 1 {
        (
            u32::from_be_bytes(h[20..24].try_into().ok()?),
            u64::from_be_bytes(h[24..32].try_into().ok()?),
        )
    } else {
        (
            u32::from_be_bytes(h[12..16].try_into().ok()?),
            u64::from(u32::from_be_bytes(h[16..20].try_into().ok()?)),
        )
    };
    (timescale > 0).then(|| duration as f64 / f64::from(timescale))
}

/// The payload (offset, length) of the first box named `name` between `from` and `to`.
fn find_box(r: &mut (impl Read + Seek), from: u64, to: u64, name: &[u8; 4]) -> Option<(u64, u64)> {
    let mut pos = from;
    while pos + 8 <= to {
        r.seek(SeekFrom::Start(pos)).ok()?;
        let mut h = [0u8; 16];
        let n = read_up_to(r, &mut h).ok()?;
        if n < 8 {
            return None;
        }
        let (size, header) = match u32::from_be_bytes(h[0..4].try_into().ok()?) {
            0 => (to - pos, 8),
            1 if n == 16 => (u64::from_be_bytes(h[8..16].try_into().ok()?), 16),
            s => (u64::from(s), 8),
        };
        if size < header {
            return None;
        }
        if &h[4..8] == name {
            return Some((pos + header, size - header));
        }
        pos += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal MP4: ftyp, then moov holding an mvhd of `seconds` at timescale 1000.
    pub fn mp4_of(seconds: u32, brand: &[u8; 4]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&20u32.to_be_bytes());
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(brand);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(brand);
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&(seconds * 1000).to_be_bytes());
        let moov_len = 8 + 8 + mvhd.len() as u32;
        v.extend_from_slice(&moov_len.to_be_bytes());
        v.extend_from_slice(b"moov");
        v.extend_from_slice(&(8 + mvhd.len() as u32).to_be_bytes());
        v.extend_from_slice(b"mvhd");
        v.extend_from_slice(&mvhd);
        v
    }

    #[test]
    fn containers_are_known_by_content_and_lengths_read_from_the_header() {
        let d = tempfile::tempdir().unwrap();
        let mp4 = d.path().join("a.mp4");
        std::fs::write(&mp4, mp4_of(12, b"isom")).unwrap();
        assert_eq!(container_of(&mp4).unwrap(), Some(Container::Mp4));
        assert_eq!(seconds(&mp4), Some(12.0));
        assert_eq!(wholeness(&mp4, Container::Mp4).unwrap(), Whole::Yes);
        let bytes = std::fs::read(&mp4).unwrap();
        std::fs::write(&mp4, &bytes[..bytes.len() - 10]).unwrap();
        assert!(matches!(
            wholeness(&mp4, Container::Mp4).unwrap(),
            Whole::No(_)
        ));
        let mov = d.path().join("b.mov");
        std::fs::write(&mov, mp4_of(3, b"qt  ")).unwrap();
        assert_eq!(container_of(&mov).unwrap(), Some(Container::QuickTime));
        let webm = d.path().join("c.webm");
        std::fs::write(&webm, [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81]).unwrap();
        assert_eq!(container_of(&webm).unwrap(), Some(Container::WebM));
        assert_eq!(seconds(&webm), None);
        let text = d.path().join("d.mp4");
        std::fs::write(&text, b"not a video at all").unwrap();
        assert_eq!(container_of(&text).unwrap(), None);
    }
}
