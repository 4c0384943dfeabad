//! An MP4/MOV's boxes, read for [`super::probe`]: they must tile the file and hold an index
//! (`moov`) with a movie header (`mvhd`); the length comes from it, or from the fragments
//! (`moof`/`trun`) or the sample tables where the header leaves it out.

use std::io::{self, Read, Seek, SeekFrom};

use super::Probe;
use crate::media::{Whole, iso_whole, read_up_to};

/// An MP4 or MOV: whole, indexed, and its length from the movie header (or, for a fragmented
/// file whose header leaves it open, from its fragments).
pub(super) fn iso_probe(r: &mut (impl Read + Seek), len: u64) -> io::Result<Probe> {
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
pub(super) struct Span {
    start: u64,
    end: u64,
}

/// The boxes directly inside `from..to`, by name; a box that does not fit ends the list.
pub(super) fn children(
    r: &mut (impl Read + Seek),
    from: u64,
    to: u64,
) -> io::Result<Vec<([u8; 4], Span)>> {
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

pub(super) fn find(boxes: &[([u8; 4], Span)], name: &[u8; 4]) -> Option<Span> {
    boxes.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
}

/// The box at `path` (names, one level each) below `boxes`.
pub(super) fn descend(
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
pub(super) fn payload(r: &mut (impl Read + Seek), at: Span, max: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at.start))?;
    let mut v = vec![0u8; max.min((at.end - at.start) as usize)];
    let n = read_up_to(r, &mut v)?;
    v.truncate(n);
    Ok(v)
}

pub(super) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

pub(super) fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// A full box's version-dependent field: the `u32` at `v0` in version 0, the `u64` at `v1`
/// otherwise.
pub(super) fn versioned(p: &[u8], v0: usize, v1: usize) -> Option<u64> {
    match p.first()? {
        0 => p.get(v0..v0 + 4).map(|b| u64::from(be32(b))),
        _ => p.get(v1..v1 + 8).map(be64),
    }
}

/// The `u32` after a full box's creation and modification times (a track header's track ID, a
/// media header's time scale): at 12 in version 0, at 20 in version 1.
pub(super) fn after_times(p: &[u8]) -> Option<u32> {
    let at = if *p.first()? == 0 { 12 } else { 20 };
    p.get(at..at + 4).map(be32)
}

/// The duration in the movie extends header (`moov/mvex/mehd`), in the movie's time scale.
pub(super) fn fragment_header_duration(
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
pub(super) fn fragments_seconds(
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
pub(super) fn trun_duration(
    r: &mut (impl Read + Seek),
    trun: Span,
    default: u32,
) -> io::Result<Option<u64>> {
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
pub(super) fn last_chunk(
    r: &mut (impl Read + Seek),
    index: &[([u8; 4], Span)],
) -> io::Result<Option<u64>> {
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
