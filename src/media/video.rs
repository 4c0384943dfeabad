//! What a dropped video is, read from its bytes: the container (MP4 or QuickTime by their `ftyp`
//! box, WebM by its EBML header), whether it is whole and finished, and its length — an MP4/MOV's
//! boxes must tile the file and hold an index (`moov`) with a movie header (`mvhd`, the length;
//! read in `iso`); a WebM's EBML structure must run to its Segment's end ([`webm`]; the length
//! from its Info or its last frame). A video that is not whole yet waits like an image; one that
//! cannot be read fails.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use crate::media::read_up_to;

mod iso;
use iso::iso_probe;
mod webm;

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

    /// The name with its article, for a sentence ("cannot be read as an MP4").
    pub fn a_name(self) -> &'static str {
        match self {
            Container::Mp4 => "an MP4",
            Container::QuickTime => "a QuickTime movie",
            Container::WebM => "a WebM",
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

/// What a video file is, read from its structure.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// All there and readable, this many seconds long.
    Whole { seconds: f64 },
    /// Not finished: a copy still running or broken off, or a recording that has not written its
    /// index yet. Says where it stops. (Such a file waits; see `watch.truncated_after`.)
    NotYet(String),
    /// It can never be read as a video: why, for `error.txt`.
    Broken(String),
}

/// Whether the video at `path` is whole, and its length. An MP4 or MOV must have its top-level
/// boxes tile the file, an index (`moov`) with a movie header (`mvhd`), and the media data that
/// index points at; a WebM must have its EBML header, and a Segment whose elements reach its size
/// (or tile the file, for a Segment of unknown size). Reads headers and seeks past data.
pub fn probe(path: &Path, container: Container) -> io::Result<Probe> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    match container {
        // Small: a recording's frames are walked one after the other, a few KB apart.
        Container::WebM => webm::probe(&mut BufReader::with_capacity(4 * 1024, file), len),
        Container::Mp4 | Container::QuickTime => {
            iso_probe(&mut BufReader::with_capacity(16 * 1024, file), len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropreel_testkit::{
        mp4_index_last, mp4_of, mp4_recording, mp4_without_movie_header, webm_garbled, webm_of,
        webm_recorded,
    };
    use proptest::prelude::*;

    /// The probe of `bytes` as a file of `container`.
    fn probe_bytes(bytes: &[u8], container: Container) -> Probe {
        let mut r = io::Cursor::new(bytes);
        let len = bytes.len() as u64;
        match container {
            Container::WebM => webm::probe(&mut r, len),
            Container::Mp4 | Container::QuickTime => iso_probe(&mut r, len),
        }
        .unwrap()
    }

    fn seconds(p: &Probe) -> f64 {
        match p {
            Probe::Whole { seconds } => *seconds,
            other => panic!("not whole: {other:?}"),
        }
    }

    fn iso_box(name: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        [&(8 + payload.len() as u32).to_be_bytes()[..], name, payload].concat()
    }

    /// A full box's header: version and flags.
    fn full(version: u8, flags: u32) -> Vec<u8> {
        let mut v = flags.to_be_bytes();
        v[0] = version;
        v.to_vec()
    }

    /// A fragmented MP4 (index first, length left open) with two one-second fragments of 25
    /// samples at 1000 ticks a second: the first by the fragment's default duration, the second
    /// by per-sample durations. `mehd`: a fragment header duration in the movie's time scale.
    fn fragmented(mehd: Option<u32>) -> Vec<u8> {
        let mut mvhd = full(0, 0);
        mvhd.extend_from_slice(&[0; 8]);
        mvhd.extend_from_slice(&600u32.to_be_bytes());
        mvhd.extend_from_slice(&0u32.to_be_bytes());
        mvhd.resize(100, 0);
        let mut tkhd = full(0, 3);
        tkhd.extend_from_slice(&[0; 8]);
        tkhd.extend_from_slice(&7u32.to_be_bytes());
        tkhd.resize(84, 0);
        let mut mdhd = full(0, 0);
        mdhd.extend_from_slice(&[0; 8]);
        mdhd.extend_from_slice(&1000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let trak = iso_box(
            b"trak",
            &[
                iso_box(b"tkhd", &tkhd),
                iso_box(b"mdia", &iso_box(b"mdhd", &mdhd)),
            ]
            .concat(),
        );
        let mut trex = full(0, 0);
        for n in [7u32, 1, 40, 0, 0] {
            trex.extend_from_slice(&n.to_be_bytes());
        }
        let mut mvex = iso_box(b"trex", &trex);
        if let Some(d) = mehd {
            mvex.extend(iso_box(
                b"mehd",
                &[full(0, 0), d.to_be_bytes().to_vec()].concat(),
            ));
        }
        let moov = iso_box(
            b"moov",
            &[iso_box(b"mvhd", &mvhd), trak, iso_box(b"mvex", &mvex)].concat(),
        );
        let fragment = |start: u32, per_sample: bool| {
            let tfhd = [full(0, 0x02_0000), 7u32.to_be_bytes().to_vec()].concat();
            let tfdt = [full(0, 0), start.to_be_bytes().to_vec()].concat();
            let mut trun = full(0, if per_sample { 0x100 } else { 0 });
            trun.extend_from_slice(&25u32.to_be_bytes());
            if per_sample {
                for _ in 0..25 {
                    trun.extend_from_slice(&40u32.to_be_bytes());
                }
            }
            let traf = iso_box(
                b"traf",
                &[
                    iso_box(b"tfhd", &tfhd),
                    iso_box(b"tfdt", &tfdt),
                    iso_box(b"trun", &trun),
                ]
                .concat(),
            );
            [
                iso_box(b"moof", &[iso_box(b"mfhd", &[0; 8]), traf].concat()),
                iso_box(b"mdat", &[9; 500]),
            ]
            .concat()
        };
        [
            iso_box(b"ftyp", b"iso5\0\0\0\0iso5dash"),
            moov,
            fragment(0, false),
            fragment(1000, true),
        ]
        .concat()
    }

    #[test]
    fn containers_are_known_by_content_and_lengths_read_from_their_headers() {
        assert_eq!(sniff(&mp4_of(3)), Some(Container::Mp4));
        let mut mov = mp4_of(3);
        mov[8..12].copy_from_slice(b"qt  ");
        assert_eq!(sniff(&mov), Some(Container::QuickTime));
        assert_eq!(sniff(&webm_of(2)), Some(Container::WebM));
        assert_eq!(sniff(b"not a video at all"), None);
        assert_eq!(seconds(&probe_bytes(&mp4_of(12), Container::Mp4)), 12.0);
        assert_eq!(
            seconds(&probe_bytes(&mp4_index_last(7), Container::Mp4)),
            7.0
        );
        assert_eq!(seconds(&probe_bytes(&webm_of(9), Container::WebM)), 9.0);
        // No Duration in its Info: the last frame's timestamp (sizes unknown: every Cluster
        // walked; sizes known: the last one read).
        assert_eq!(
            seconds(&probe_bytes(&webm_recorded(5), Container::WebM)),
            5.0
        );
        let mut sized = webm_of(6);
        let at = sized
            .windows(3)
            .position(|w| w == [0x44, 0x89, 0x88])
            .unwrap();
        sized[at..at + 11].copy_from_slice(&[0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(seconds(&probe_bytes(&sized, Container::WebM)), 6.0);
        assert_eq!(
            seconds(&probe_bytes(&fragmented(None), Container::Mp4)),
            2.0
        );
        assert_eq!(
            seconds(&probe_bytes(&fragmented(Some(1500)), Container::Mp4)),
            2.5
        );
        // And from a file on disk, read in place.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a.webm");
        std::fs::write(&path, webm_of(4)).unwrap();
        assert_eq!(container_of(&path).unwrap(), Some(Container::WebM));
        assert_eq!(
            probe(&path, Container::WebM).unwrap(),
            Probe::Whole { seconds: 4.0 }
        );
    }

    // See: issue 21, item 1 — a WebM cut at 60 % and an MP4 without its moov box were taken.
    #[test]
    fn a_video_without_its_index_waits_and_one_that_cannot_be_read_is_broken() {
        assert!(matches!(
            probe_bytes(&mp4_recording(), Container::Mp4),
            Probe::NotYet(why) if why.contains("no index (moov box)")
        ));
        assert!(matches!(
            probe_bytes(&mp4_without_movie_header(), Container::Mp4),
            Probe::Broken(why) if why.contains("no movie header (mvhd)")
        ));
        assert!(matches!(
            probe_bytes(&webm_garbled(), Container::WebM),
            Probe::Broken(_)
        ));
        let mut matroska = webm_of(2);
        let at = matroska.windows(4).position(|w| w == b"webm").unwrap();
        matroska[at..at + 4].copy_from_slice(b"mkvx");
        assert!(matches!(
            probe_bytes(&matroska, Container::WebM),
            Probe::Broken(why) if why.contains("\"mkvx\"")
        ));
    }

    /// Every prefix of `bytes` (but the whole) is not whole; the whole is.
    fn every_prefix_waits(bytes: &[u8], container: Container) {
        assert!(matches!(probe_bytes(bytes, container), Probe::Whole { .. }));
        for cut in 0..bytes.len() {
            let p = probe_bytes(&bytes[..cut], container);
            assert!(
                matches!(p, Probe::NotYet(_)),
                "{container:?} cut at {cut} of {}: {p:?}",
                bytes.len()
            );
        }
    }

    #[test]
    fn every_prefix_of_a_finished_video_waits() {
        every_prefix_waits(&mp4_of(3), Container::Mp4);
        every_prefix_waits(&mp4_index_last(3), Container::Mp4);
        every_prefix_waits(&webm_of(3), Container::WebM);
    }

    proptest! {
        // A truncation anywhere in a finished MP4 or WebM of any length is never whole.
        #[test]
        fn a_truncated_video_is_never_whole(secs in 1u32..8, cut in 0.0f64..1.0, webm in any::<bool>()) {
            let (bytes, container) = if webm {
                (webm_of(secs), Container::WebM)
            } else {
                (mp4_index_last(secs), Container::Mp4)
            };
            let cut = (bytes.len() as f64 * cut) as usize;
            let p = probe_bytes(&bytes[..cut], container);
            prop_assert!(matches!(p, Probe::NotYet(_)), "cut at {} of {}: {:?}", cut, bytes.len(), p);
        }

        // Damaged bytes anywhere are judged (whole, not yet, broken) without a panic.
        #[test]
        fn damaged_videos_never_panic(
            secs in 1u32..4,
            hits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            kind in 0usize..4,
        ) {
            let (mut bytes, container) = match kind {
                0 => (webm_of(secs), Container::WebM),
                1 => (webm_recorded(secs), Container::WebM),
                2 => (mp4_of(secs), Container::Mp4),
                _ => (fragmented(Some(secs * 600)), Container::Mp4),
            };
            for (at, b) in hits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let _ = probe_bytes(&bytes, container);
        }
    }
}
