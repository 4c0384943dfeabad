//! What a dropped video is, read from its bytes: the container (MP4 or QuickTime by their `ftyp`
//! box, WebM by its EBML header), whether it is whole and finished, and its length — an MP4/MOV's
//! boxes must tile the file and hold an index (`moov`) with a movie header (`mvhd`, the length);
//! a WebM's EBML structure must run to its Segment's end ([`webm`]; the length from its Info or
//! its last frame). A video that is not whole yet waits like an image; one that cannot be read
//! fails.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::media::{Whole, iso_whole, read_up_to};

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

/// An MP4 or MOV: whole, indexed, and its length from the movie header (or, for a fragmented
/// file whose header leaves it open, from its fragments).
fn iso_probe(r: &mut (impl Read + Seek), len: u64) -> io::Result<Probe> {
    if let Whole::No(why) = iso_whole(r, len)? {
        return Ok(Probe::NotYet(why));
    }
    let top = children(r, 0, len)?;
    let Some(moov) = find(&top, b"moov") else {
        return Ok(Probe::NotYet(
            "it has no index (moov box) yet — a recording or an export writes it last".into(),
        ));
    };
    let index = children(r, moov.start, moov.end)?;
    let Some(mvhd) = find(&index, b"mvhd") else {
        return Ok(Probe::Broken(
            "its index (moov box) holds no movie header (mvhd)".into(),
        ));
    };
    let h = payload(r, mvhd, 32)?;
    let (timescale, duration, unset) = match h.first() {
        Some(1) if h.len() >= 32 => (be32(&h[20..]), be64(&h[24..]), u64::MAX),
        Some(0) if h.len() >= 20 => (
            be32(&h[12..]),
            u64::from(be32(&h[16..])),
            u64::from(u32::MAX),
        ),
        _ => {
            return Ok(Probe::Broken(
                "its movie header (mvhd) is cut short or of an unknown version".into(),
            ));
        }
    };
    if timescale == 0 {
        return Ok(Probe::Broken(
            "its movie header (mvhd) gives no time scale".into(),
        ));
    }
    // A fragmented MP4 may leave the header's duration open (0 or all ones): then the
    // fragments' own header (mehd), or the fragments themselves, say how long it is.
    let ticks = if duration != 0 && duration != unset {
        Some(duration)
    } else {
        fragment_header_duration(r, &index)?
    };
    let seconds = match ticks {
        Some(t) => t as f64 / f64::from(timescale),
        None => match fragments_seconds(r, &top, &index)? {
            Some(s) => s,
            None => {
                return Ok(Probe::Broken(
                    "its length is written nowhere (no duration in its movie header, no fragments)"
                        .into(),
                ));
            }
        },
    };
    // Every box whole, but the media data the index points at may not have arrived yet (a
    // "fast start" file cut where its media data begins).
    if last_chunk(r, &index)?.is_some_and(|at| at >= len) {
        return Ok(Probe::NotYet(
            "it ends before the media data its index points at".into(),
        ));
    }
    Ok(Probe::Whole { seconds })
}

/// A box's payload: where it starts and ends in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

/// The boxes directly inside `from..to`, by name; a box that does not fit ends the list.
fn children(r: &mut (impl Read + Seek), from: u64, to: u64) -> io::Result<Vec<([u8; 4], Span)>> {
    let mut out = Vec::new();
    let mut pos = from;
    while to.saturating_sub(pos) >= 8 {
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        let want = (to - pos).min(16) as usize;
        let n = read_up_to(r, &mut h[..want])?;
        if n < 8 {
            break;
        }
        let (size, header) = match be32(&h) {
            0 => (to - pos, 8),
            1 if n == 16 => (be64(&h[8..]), 16),
            1 => break,
            s => (u64::from(s), 8),
        };
        if size < header || size > to - pos {
            break;
        }
        let name: [u8; 4] = h[4..8].try_into().expect("4 bytes");
        out.push((
            name,
            Span {
                start: pos + header,
                end: pos + size,
            },
        ));
        pos += size;
    }
    Ok(out)
}

fn find(boxes: &[([u8; 4], Span)], name: &[u8; 4]) -> Option<Span> {
    boxes.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
}

/// The box at `path` (names, one level each) below `boxes`.
fn descend(
    r: &mut (impl Read + Seek),
    boxes: &[([u8; 4], Span)],
    path: &[&[u8; 4]],
) -> io::Result<Option<Span>> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(mut at) = find(boxes, first) else {
        return Ok(None);
    };
    for name in rest {
        let inside = children(r, at.start, at.end)?;
        match find(&inside, name) {
            Some(s) => at = s,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// Up to `max` bytes of a box's payload.
fn payload(r: &mut (impl Read + Seek), at: Span, max: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at.start))?;
    let mut v = vec![0u8; max.min((at.end - at.start) as usize)];
    let n = read_up_to(r, &mut v)?;
    v.truncate(n);
    Ok(v)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// A full box's version-dependent field: the `u32` at `v0` in version 0, the `u64` at `v1`
/// otherwise.
fn versioned(p: &[u8], v0: usize, v1: usize) -> Option<u64> {
    match p.first()? {
        0 => p.get(v0..v0 + 4).map(|b| u64::from(be32(b))),
        _ => p.get(v1..v1 + 8).map(be64),
    }
}

/// The `u32` after a full box's creation and modification times (a track header's track ID, a
/// media header's time scale): at 12 in version 0, at 20 in version 1.
fn after_times(p: &[u8]) -> Option<u32> {
    let at = if *p.first()? == 0 { 12 } else { 20 };
    p.get(at..at + 4).map(be32)
}

/// The duration in the movie extends header (`moov/mvex/mehd`), in the movie's time scale.
fn fragment_header_duration(
    r: &mut (impl Read + Seek),
    index: &[([u8; 4], Span)],
) -> io::Result<Option<u64>> {
    let Some(mehd) = descend(r, index, &[b"mvex", b"mehd"])? else {
        return Ok(None);
    };
    let p = payload(r, mehd, 12)?;
    Ok(versioned(&p, 4, 4).filter(|&d| d > 0))
}

/// A fragmented MP4's length: for each track, the end of its last fragment (its decode time,
/// `tfdt`, plus its samples' durations, `trun`, with the defaults of `tfhd` and `trex`) in the
/// track's time scale (`mdhd`); the longest track's.
fn fragments_seconds(
    r: &mut (impl Read + Seek),
    top: &[([u8; 4], Span)],
    index: &[([u8; 4], Span)],
) -> io::Result<Option<f64>> {
    use std::collections::HashMap;
    let mut scales: HashMap<u32, u32> = HashMap::new();
    for (_, trak) in index.iter().filter(|(n, _)| n == b"trak") {
        let inside = children(r, trak.start, trak.end)?;
        let (Some(tkhd), Some(mdhd)) = (
            find(&inside, b"tkhd"),
            descend(r, &inside, &[b"mdia", b"mdhd"])?,
        ) else {
            continue;
        };
        let id = after_times(&payload(r, tkhd, 24)?);
        let scale = after_times(&payload(r, mdhd, 24)?).filter(|&s| s > 0);
        if let (Some(id), Some(scale)) = (id, scale) {
            scales.insert(id, scale);
        }
    }
    let mut trex: HashMap<u32, u32> = HashMap::new();
    if let Some(mvex) = find(index, b"mvex") {
        for (_, t) in children(r, mvex.start, mvex.end)?
            .iter()
            .filter(|(n, _)| n == b"trex")
        {
            let p = payload(r, *t, 16)?;
            if p.len() >= 16 {
                trex.insert(be32(&p[4..]), be32(&p[12..]));
            }
        }
    }
    let mut ends: HashMap<u32, u64> = HashMap::new();
    for (_, moof) in top.iter().filter(|(n, _)| n == b"moof") {
        for (_, traf) in children(r, moof.start, moof.end)?
            .iter()
            .filter(|(n, _)| n == b"traf")
        {
            let inside = children(r, traf.start, traf.end)?;
            let Some(tfhd) = find(&inside, b"tfhd") else {
                continue;
            };
            let p = payload(r, tfhd, 32)?;
            if p.len() < 8 {
                continue;
            }
            let flags = be32(&p) & 0x00FF_FFFF;
            let track = be32(&p[4..]);
            // Optional fields in order: base data offset (8), sample description index (4),
            // default sample duration (4).
            let mut at = 8 + if flags & 0x01 != 0 { 8 } else { 0 };
            at += if flags & 0x02 != 0 { 4 } else { 0 };
            let default = if flags & 0x08 != 0 {
                p.get(at..at + 4).map(be32)
            } else {
                None
            }
            .or_else(|| trex.get(&track).copied())
            .unwrap_or(0);
            let start = match find(&inside, b"tfdt") {
                Some(tfdt) => versioned(&payload(r, tfdt, 12)?, 4, 4).unwrap_or(0),
                None => ends.get(&track).copied().unwrap_or(0),
            };
            let mut sum = 0u64;
            for (_, trun) in inside.iter().filter(|(n, _)| n == b"trun") {
                match trun_duration(r, *trun, default)? {
                    Some(d) => sum = sum.saturating_add(d),
                    None => return Ok(None),
                }
            }
            let end = ends.entry(track).or_insert(0);
            *end = (*end).max(start.saturating_add(sum));
        }
    }
    Ok(ends
        .iter()
        .filter_map(|(track, &end)| {
            let scale = scales.get(track)?;
            Some(end as f64 / f64::from(*scale))
        })
        .reduce(f64::max))
}

/// The summed sample durations of a track run (`trun`); `None` when its samples do not fit it.
fn trun_duration(r: &mut (impl Read + Seek), trun: Span, default: u32) -> io::Result<Option<u64>> {
    let p = payload(r, trun, 16)?;
    if p.len() < 8 {
        return Ok(None);
    }
    let flags = be32(&p) & 0x00FF_FFFF;
    let count = u64::from(be32(&p[4..]));
    if flags & 0x100 == 0 {
        return Ok(Some(count * u64::from(default)));
    }
    let head = 8 + if flags & 0x01 != 0 { 4 } else { 0 } + if flags & 0x04 != 0 { 4 } else { 0 };
    // Each sample's record: duration, size, flags, composition offset, as the flags say.
    let record = 4 * u64::from((flags & 0xF00).count_ones());
    if trun.start + head + count * record > trun.end {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(trun.start + head))?;
    let mut sum = 0u64;
    let mut rec = [0u8; 16];
    for _ in 0..count {
        r.read_exact(&mut rec[..record as usize])?;
        sum = sum.saturating_add(u64::from(be32(&rec)));
    }
    Ok(Some(sum))
}

/// Where the last chunk of media data the index points at begins (`stco`/`co64` of every
/// track); `None` when the index points at none (a fragmented file).
fn last_chunk(r: &mut (impl Read + Seek), index: &[([u8; 4], Span)]) -> io::Result<Option<u64>> {
    let mut last: Option<u64> = None;
    for (_, trak) in index.iter().filter(|(n, _)| n == b"trak") {
        let inside = children(r, trak.start, trak.end)?;
        let Some(stbl) = descend(r, &inside, &[b"mdia", b"minf", b"stbl"])? else {
            continue;
        };
        for (name, table) in children(r, stbl.start, stbl.end)? {
            let width = match &name {
                b"stco" => 4,
                b"co64" => 8,
                _ => continue,
            };
            let p = payload(r, table, 8)?;
            if p.len() < 8 {
                continue;
            }
            let count = u64::from(be32(&p[4..])).min((table.end - table.start - 8) / width);
            r.seek(SeekFrom::Start(table.start + 8))?;
            let mut b = [0u8; 8];
            for _ in 0..count {
                r.read_exact(&mut b[..width as usize])?;
                let at = if width == 4 {
                    u64::from(be32(&b))
                } else {
                    be64(&b)
                };
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
    }
    Ok(last)
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
