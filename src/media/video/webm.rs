//! A WebM (Matroska) read by its EBML structure, element headers only: the EBML header and its
//! DocType, the Segment, and the Segment's top-level elements, which must reach the Segment's
//! size (or, for a Segment of unknown size, as a live recording writes it, tile the file). Its
//! length comes from the Segment Info (Duration × TimecodeScale) or, when the Info has no
//! Duration (browser recordings), from the last frame's timestamp.
//!
//! Data is skipped by seeking: only the element headers, the Info and, without a Duration, the
//! last Cluster's frame headers are read (a Segment of unknown size has every frame header read,
//! to find where its Clusters end). Every size is checked against its parent and the file before
//! it is used.

use std::io::{self, Read, Seek, SeekFrom};

use super::Probe;
use crate::media::read_up_to;

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const BLOCK_DURATION: u32 = 0x9B;
/// Elements allowed anywhere.
const VOID: u32 = 0xEC;
const CRC32: u32 = 0xBF;
/// What a Cluster holds (an element of unknown size ends at the first element that is none of
/// its children: the next Cluster, the Cues…).
const CLUSTER_CHILDREN: &[u32] = &[
    CLUSTER_TIMECODE,
    0x5854, // SilentTracks
    0xA7,   // Position
    0xAB,   // PrevSize
    SIMPLE_BLOCK,
    BLOCK_GROUP,
    0xAF, // EncryptedBlock
    VOID,
    CRC32,
];

/// The longest EBML header and Info read into memory (both are a few dozen bytes in practice).
const SMALL_ELEMENT_MAX: u64 = 64 * 1024;

/// An element's header: its ID, its body's first byte, and its body's size (`None`: unknown, the
/// all-ones size live recorders write).
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    body: u64,
    size: Option<u64>,
}

/// Reading an element header at a position.
enum At {
    Header(Header),
    /// The file ends inside it.
    Short,
    /// No valid ID or size: the bytes are no EBML.
    Invalid,
}

/// The length and wholeness of the WebM `r` of `len` bytes.
pub(super) fn probe(r: &mut (impl Read + Seek), len: u64) -> io::Result<Probe> {
    let not_yet = |why: &str| Ok(Probe::NotYet(format!("the WebM ends {why}")));
    let broken = |why: &str| Ok(Probe::Broken(why.to_string()));
    let head = match header_at(r, 0)? {
        At::Header(h) if h.id == EBML => h,
        At::Short => return not_yet("inside its EBML header"),
        _ => return broken("it does not start with an EBML header"),
    };
    let Some(size) = head.size.filter(|&s| s <= SMALL_ELEMENT_MAX) else {
        return broken("its EBML header has an impossible size");
    };
    let head_end = head.body + size;
    if head_end > len {
        return not_yet("inside its EBML header");
    }
    let doc_type = read_children(r, head.body, size)?
        .into_iter()
        .find(|(id, _)| *id == DOC_TYPE)
        .map(|(_, v)| {
            String::from_utf8_lossy(&v)
                .trim_end_matches('\0')
                .to_string()
        });
    match doc_type.as_deref() {
        Some("webm" | "matroska") => {}
        Some(other) => {
            return Ok(Probe::Broken(format!(
                "its EBML header says it is a {other:?} file, not a WebM"
            )));
        }
        None => return broken("its EBML header names no document type"),
    }
    let seg = match header_at(r, head_end)? {
        At::Header(h) if h.id == SEGMENT => h,
        At::Header(_) | At::Invalid => {
            return broken("no Segment follows its EBML header");
        }
        At::Short => return not_yet("before its Segment (the video itself)"),
    };
    let end = match seg.size {
        Some(size) => {
            let end = seg.body.saturating_add(size);
            if end > len {
                return not_yet("before its Segment does (its size says it is longer)");
            }
            Some(end)
        }
        None => None,
    };
    let mut walk = Walk {
        len,
        scale: 1_000_000,
        duration: None,
        last_frame: None,
    };
    match walk.segment(r, seg.body, end)? {
        Ok(()) => {}
        Err(stop) => return Ok(stop),
    }
    let ticks = match walk.duration {
        Some(d) if d > 0.0 && d.is_finite() => d,
        _ => match walk.last_frame {
            Some(t) => t.max(0) as f64,
            None => return broken("it holds no frames"),
        },
    };
    Ok(Probe::Whole {
        seconds: ticks * walk.scale as f64 / 1e9,
    })
}

/// What the walk through a Segment found.
struct Walk {
    len: u64,
    /// Nanoseconds per tick.
    scale: u64,
    /// The Info's Duration, in ticks.
    duration: Option<f64>,
    /// The latest frame's end, in ticks.
    last_frame: Option<i64>,
}

impl Walk {
    /// The Segment's top-level elements from `from` to `end` (the file's end when the Segment's
    /// size is unknown). `Err` holds the verdict when it is not whole or broken.
    fn segment(
        &mut self,
        r: &mut (impl Read + Seek),
        from: u64,
        end: Option<u64>,
    ) -> io::Result<Result<(), Probe>> {
        let limit = end.unwrap_or(self.len);
        // A child that runs past a Segment of known size is a broken file; past the end of a
        // Segment still being written, it is a copy or a recording in progress.
        let overrun = |what: &str| match end {
            Some(_) => Probe::Broken(format!(
                "its structure is broken: {what} runs past its Segment"
            )),
            None => Probe::NotYet(format!("the WebM ends inside {what}")),
        };
        let mut pos = from;
        let mut last_cluster = None;
        while pos < limit {
            let h = match header_at(r, pos)? {
                At::Header(h) => h,
                At::Short => return Ok(Err(overrun("an element header"))),
                At::Invalid => {
                    return Ok(Err(Probe::Broken(format!(
                        "its structure is broken at byte {pos}: no element starts there"
                    ))));
                }
            };
            pos = match (h.id, h.size) {
                (CLUSTER, None) => match self.cluster(r, h.body, limit, false, end.is_none())? {
                    Ok(next) => next,
                    Err(stop) => return Ok(Err(stop)),
                },
                (_, None) => {
                    return Ok(Err(Probe::Broken(format!(
                        "its structure is broken: an element of unknown size (ID {:X}) where only a \
                         Cluster may have one",
                        h.id
                    ))));
                }
                (id, Some(size)) => {
                    let next = h.body.saturating_add(size);
                    if next > limit {
                        let what = if id == CLUSTER {
                            "a Cluster"
                        } else {
                            "an element"
                        };
                        return Ok(Err(overrun(what)));
                    }
                    match id {
                        INFO => self.info(r, h.body, size)?,
                        CLUSTER => last_cluster = Some((h.body, next)),
                        _ => {}
                    }
                    next
                }
            };
        }
        // Without a Duration in the Info, the length is the last frame's time: in the last
        // Cluster (Clusters are in time order), read only when needed.
        if self.duration.is_none()
            && let Some((body, end)) = last_cluster
            && let Err(stop) = self.cluster(r, body, end, true, false)?
        {
            return Ok(Err(stop));
        }
        Ok(Ok(()))
    }

    /// The Segment Info: its TimecodeScale and Duration.
    fn info(&mut self, r: &mut (impl Read + Seek), body: u64, size: u64) -> io::Result<()> {
        if size > SMALL_ELEMENT_MAX {
            return Ok(());
        }
        for (id, v) in read_children(r, body, size)? {
            match id {
                TIMECODE_SCALE if (1..=8).contains(&v.len()) => {
                    let scale = v.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
                    if scale > 0 {
                        self.scale = scale;
                    }
                }
                DURATION => {
                    self.duration = match v.len() {
                        4 => Some(f64::from(f32::from_be_bytes(v[..4].try_into().expect("4")))),
                        8 => Some(f64::from_be_bytes(v[..8].try_into().expect("8"))),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Walks a Cluster's children from `body` to `limit` — a Cluster of unknown size (`sized`
    /// false) ends earlier, at the first element that is none of its children — noting each
    /// frame's timestamp. `open`: the file may still grow past `limit` (a Cluster of unknown size
    /// in a Segment of unknown size), so what runs past it is not there *yet*. Returns where the
    /// Cluster ends.
    fn cluster(
        &mut self,
        r: &mut (impl Read + Seek),
        body: u64,
        limit: u64,
        sized: bool,
        open: bool,
    ) -> io::Result<Result<u64, Probe>> {
        let cut_or_broken = |what: &str| {
            if open {
                Probe::NotYet(format!("the WebM ends inside {what}"))
            } else {
                Probe::Broken(format!(
                    "its structure is broken: {what} runs past its Cluster"
                ))
            }
        };
        let mut pos = body;
        let mut timecode: i64 = 0;
        while pos < limit {
            let h = match header_at(r, pos)? {
                At::Header(h) => h,
                At::Short => return Ok(Err(cut_or_broken("a frame's header"))),
                At::Invalid => {
                    return Ok(Err(Probe::Broken(format!(
                        "its structure is broken at byte {pos}, inside a Cluster"
                    ))));
                }
            };
            if !sized && !CLUSTER_CHILDREN.contains(&h.id) {
                // Where a Cluster of unknown size ends.
                return Ok(Ok(pos));
            }
            let Some(size) = h.size else {
                return Ok(Err(Probe::Broken(
                    "its structure is broken: an element of unknown size inside a Cluster".into(),
                )));
            };
            let next = h.body.saturating_add(size);
            if next > limit {
                return Ok(Err(cut_or_broken("a frame")));
            }
            match h.id {
                CLUSTER_TIMECODE if (1..=8).contains(&size) => {
                    let v = read_body(r, h.body, size)?;
                    timecode = v.iter().fold(0i64, |n, &b| n << 8 | i64::from(b));
                }
                SIMPLE_BLOCK => self.frame(timecode, r, h.body, size, 0)?,
                BLOCK_GROUP if size <= SMALL_ELEMENT_MAX => {
                    let children = read_children_spans(r, h.body, size)?;
                    let duration = children
                        .iter()
                        .find(|c| c.0 == BLOCK_DURATION && (1..=8).contains(&c.2))
                        .map(|c| read_body(r, c.1, c.2))
                        .transpose()?
                        .map_or(0, |v| v.iter().fold(0i64, |n, &b| n << 8 | i64::from(b)));
                    if let Some(block) = children.iter().find(|c| c.0 == BLOCK) {
                        self.frame(timecode, r, block.1, block.2, duration)?;
                    }
                }
                _ => {}
            }
            pos = next;
        }
        Ok(Ok(pos))
    }

    /// A frame (SimpleBlock or Block): its track number, then its timestamp relative to its
    /// Cluster's.
    fn frame(
        &mut self,
        cluster: i64,
        r: &mut (impl Read + Seek),
        body: u64,
        size: u64,
        duration: i64,
    ) -> io::Result<()> {
        let head = read_body(r, body, size.min(11))?;
        let Some(track_len) = head.first().map(|b| b.leading_zeros() as usize + 1) else {
            return Ok(());
        };
        if let Some(t) = head.get(track_len..track_len + 2) {
            let at = cluster
                .saturating_add(i64::from(i16::from_be_bytes([t[0], t[1]])))
                .saturating_add(duration);
            self.last_frame = Some(self.last_frame.map_or(at, |l| l.max(at)));
        }
        Ok(())
    }
}

/// Moves `r` to `pos`, keeping what it has buffered when `pos` is near: the frames of a
/// Cluster of unknown size are read one after the other, most of them smaller than the buffer.
fn goto(r: &mut (impl Read + Seek), pos: u64) -> io::Result<()> {
    let here = r.stream_position()?;
    match i64::try_from(pos).ok().zip(i64::try_from(here).ok()) {
        Some((to, from)) => r.seek_relative(to - from),
        None => r.seek(SeekFrom::Start(pos)).map(drop),
    }
}

/// The element header at `pos`.
fn header_at(r: &mut (impl Read + Seek), pos: u64) -> io::Result<At> {
    goto(r, pos)?;
    let mut b = [0u8; 12];
    let n = read_up_to(r, &mut b)?;
    let b = &b[..n];
    let Some(&first) = b.first() else {
        return Ok(At::Short);
    };
    // An ID is 1 to 4 bytes, its length marked by the first set bit (marker kept in the value).
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Ok(At::Invalid);
    }
    let Some(id_bytes) = b.get(..id_len) else {
        return Ok(At::Short);
    };
    let id = id_bytes.iter().fold(0u32, |n, &x| n << 8 | u32::from(x));
    let Some(&s0) = b.get(id_len) else {
        return Ok(At::Short);
    };
    // A size is 1 to 8 bytes, its length marked the same way (marker removed); all ones: unknown.
    let size_len = s0.leading_zeros() as usize + 1;
    if size_len > 8 {
        return Ok(At::Invalid);
    }
    let Some(size_bytes) = b.get(id_len..id_len + size_len) else {
        return Ok(At::Short);
    };
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let value = size_bytes[1..]
        .iter()
        .fold(u64::from(s0 & mask), |n, &x| n << 8 | u64::from(x));
    let all_ones = (1u64 << (7 * size_len)) - 1;
    Ok(At::Header(Header {
        id,
        body: pos + (id_len + size_len) as u64,
        size: (value != all_ones).then_some(value),
    }))
}

/// The body of an element (at most [`SMALL_ELEMENT_MAX`] bytes are asked for).
fn read_body(r: &mut (impl Read + Seek), body: u64, size: u64) -> io::Result<Vec<u8>> {
    goto(r, body)?;
    let mut v = vec![0u8; size.min(SMALL_ELEMENT_MAX) as usize];
    let n = read_up_to(r, &mut v)?;
    v.truncate(n);
    Ok(v)
}

/// The children (ID, body offset, size) of a small element of known size; those that do not
/// fit are left out.
fn read_children_spans(
    r: &mut (impl Read + Seek),
    body: u64,
    size: u64,
) -> io::Result<Vec<(u32, u64, u64)>> {
    let end = body + size;
    let mut pos = body;
    let mut out = Vec::new();
    while pos < end {
        let At::Header(h) = header_at(r, pos)? else {
            break;
        };
        let Some(size) = h.size.filter(|&s| h.body.saturating_add(s) <= end) else {
            break;
        };
        out.push((h.id, h.body, size));
        pos = h.body + size;
    }
    Ok(out)
}

/// The children (ID, body) of a small element of known size, bodies read; none when the element
/// is too big to be one dropreel reads whole.
fn read_children(
    r: &mut (impl Read + Seek),
    body: u64,
    size: u64,
) -> io::Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    if size > SMALL_ELEMENT_MAX {
        return Ok(out);
    }
    for (id, at, len) in read_children_spans(r, body, size)? {
        out.push((id, read_body(r, at, len)?));
    }
    Ok(out)
}
