//! Video files for tests, written byte by byte: MP4s whose movie header gives their length (the
//! index first, as exports with "fast start" write it, or last, as recorders do), and WebMs as an
//! editor exports them (every size known, a Duration in the Segment Info) or as a browser records
//! them (the Segment and its Clusters of unknown size, no Duration).

/// An ISO box: its size, its name, its payload.
fn iso_box(name: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
    v.extend_from_slice(name);
    v.extend_from_slice(payload);
    v
}

/// Bytes that look like media data.
fn media(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

const FTYP: &[u8] = b"isom\0\0\x02\0isomiso2mp41";

/// A `moov` holding a movie header of `seconds` (timescale 600) and one track whose only chunk
/// starts at `chunk_at` (the media data's first byte).
fn moov(seconds: u32, chunk_at: u32) -> Vec<u8> {
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&600u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&(seconds * 600).to_be_bytes());
    let mut tkhd = vec![0u8; 84];
    tkhd[12..16].copy_from_slice(&1u32.to_be_bytes());
    let mut mdhd = vec![0u8; 24];
    mdhd[12..16].copy_from_slice(&600u32.to_be_bytes());
    mdhd[16..20].copy_from_slice(&(seconds * 600).to_be_bytes());
    let mut stco = vec![0u8; 8];
    stco[4..8].copy_from_slice(&1u32.to_be_bytes());
    stco.extend_from_slice(&chunk_at.to_be_bytes());
    let stbl = iso_box(b"stbl", &iso_box(b"stco", &stco));
    let minf = iso_box(b"minf", &stbl);
    let mdia = iso_box(b"mdia", &[iso_box(b"mdhd", &mdhd), minf].concat());
    let trak = iso_box(b"trak", &[iso_box(b"tkhd", &tkhd), mdia].concat());
    iso_box(b"moov", &[iso_box(b"mvhd", &mvhd), trak].concat())
}

/// A finished MP4 of `seconds`, index first: `ftyp`, `moov`, then 4 KB of media data.
pub fn mp4_of(seconds: u32) -> Vec<u8> {
    let ftyp = iso_box(b"ftyp", FTYP);
    let moov_len = moov(seconds, 0).len();
    let chunk_at = (ftyp.len() + moov_len + 8) as u32;
    [
        ftyp,
        moov(seconds, chunk_at),
        iso_box(b"mdat", &media(4096)),
    ]
    .concat()
}

/// A finished MP4 of `seconds` as a recorder writes it: the media data first, the index last.
pub fn mp4_index_last(seconds: u32) -> Vec<u8> {
    let ftyp = iso_box(b"ftyp", FTYP);
    let chunk_at = (ftyp.len() + 8) as u32;
    [
        ftyp,
        iso_box(b"mdat", &media(4096)),
        moov(seconds, chunk_at),
    ]
    .concat()
}

/// An MP4 still being recorded: `ftyp`, then media data whose box runs to the end of the file
/// (size 0), and no index yet.
pub fn mp4_recording() -> Vec<u8> {
    let mut v = iso_box(b"ftyp", FTYP);
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(b"mdat");
    v.extend(media(4096));
    v
}

/// An EBML element: its ID (as written, marker bits included), its size, its body.
fn el(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = id_bytes(id);
    v.extend(size_vint(body.len() as u64));
    v.extend_from_slice(body);
    v
}

/// An element of unknown size (all ones), as live recorders write the Segment and its Clusters.
fn el_unsized(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = id_bytes(id);
    v.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    v.extend_from_slice(body);
    v
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b[skip..].to_vec()
}

/// The shortest EBML size for `n`.
fn size_vint(n: u64) -> Vec<u8> {
    let len = (1..=8u32).find(|&l| n < (1u64 << (7 * l)) - 1).unwrap_or(8);
    let marked = n | (1u64 << (7 * len));
    marked.to_be_bytes()[8 - len as usize..].to_vec()
}

fn uint(id: u32, n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    el(id, &b[skip..])
}

/// The EBML header of a WebM.
fn ebml_header() -> Vec<u8> {
    el(
        0x1A45_DFA3,
        &[
            uint(0x4286, 1),
            uint(0x42F7, 1),
            uint(0x42F2, 4),
            uint(0x42F3, 8),
            el(0x4282, b"webm"),
            uint(0x4287, 4),
            uint(0x4285, 2),
        ]
        .concat(),
    )
}

/// A WebM of `seconds`: two 1 KB frames a second and one at `seconds`. `exported`: every size
/// known and a Duration in its Info (an editor's export); otherwise the Segment and Clusters are
/// of unknown size and there is no Duration (a browser's MediaRecorder).
fn webm(seconds: u32, exported: bool) -> Vec<u8> {
    let mut info = vec![uint(0x2A_D7B1, 1_000_000), el(0x4D80, b"dropreel-testkit")];
    if exported {
        info.push(el(0x4489, &(f64::from(seconds) * 1000.0).to_be_bytes()));
    }
    let video = el(0xE0, &[uint(0xB0, 16), uint(0xBA, 16)].concat());
    let track = el(
        0xAE,
        &[
            uint(0xD7, 1),
            uint(0x73C5, 1),
            uint(0x83, 1),
            el(0x86, b"V_VP8"),
            video,
        ]
        .concat(),
    );
    let mut segment = vec![el(0x1549_A966, &info.concat()), el(0x1654_AE6B, &track)];
    for s in 0..=seconds {
        let mut cluster = vec![uint(0xE7, u64::from(s) * 1000)];
        let frames: &[i16] = if s == seconds { &[0] } else { &[0, 500] };
        for &rel in frames {
            let mut block = vec![0x81];
            block.extend_from_slice(&rel.to_be_bytes());
            block.push(0x80);
            block.extend(media(1024));
            cluster.push(el(0xA3, &block));
        }
        segment.push(if exported {
            el(0x1F43_B675, &cluster.concat())
        } else {
            el_unsized(0x1F43_B675, &cluster.concat())
        });
    }
    let segment = segment.concat();
    let mut v = ebml_header();
    v.extend(if exported {
        el(0x1853_8067, &segment)
    } else {
        el_unsized(0x1853_8067, &segment)
    });
    v
}

/// A WebM of `seconds` as an editor exports it: every size known, a Duration in its Info.
pub fn webm_of(seconds: u32) -> Vec<u8> {
    webm(seconds, true)
}

/// A WebM of `seconds` as a browser records it: Segment and Clusters of unknown size, no
/// Duration (its length is that of its frames).
pub fn webm_recorded(seconds: u32) -> Vec<u8> {
    webm(seconds, false)
}

/// A WebM's EBML header followed by bytes that are no EBML element.
pub fn webm_garbled() -> Vec<u8> {
    let mut v = ebml_header();
    v.extend_from_slice(&[0x00; 64]);
    v
}

/// An MP4 whose index (`moov`) holds no movie header (`mvhd`): whole, but broken.
pub fn mp4_without_movie_header() -> Vec<u8> {
    [
        iso_box(b"ftyp", FTYP),
        iso_box(b"moov", &iso_box(b"free", &[0; 16])),
        iso_box(b"mdat", &media(4096)),
    ]
    .concat()
}
