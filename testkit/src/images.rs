//! Image files for tests: real PNGs and JPEG headers of any size, a camera-style JPEG whose size
//! comes late, a decompression bomb's header, and a PNG whose image data is damaged.

/// A PNG of `w × h` pixels (a gradient, so it compresses like a real image would not).
pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    png_seeded(w, h, 0)
}

/// A `w`×`h` PNG whose pixels differ from every other call's in this process: a distinct image
/// (the dedupe ledger reuses a video made from the same bytes and settings).
pub fn png_distinct(w: u32, h: u32) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    png_seeded(
        w,
        h,
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    )
}

/// A `w`×`h` PNG of noise drawn from `seed`.
pub fn png_seeded(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        // xorshift noise: incompressible, like a photo's worst case.
        let mut x: u32 = (0x9E37_79B9 ^ w ^ (h << 16)).wrapping_add(seed.wrapping_mul(0x85EB_CA6B));
        if x == 0 {
            x = 1;
        }
        let data: Vec<u8> = (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// The smallest JPEG header that names its size (enough for a content check).
pub fn jpeg_bytes(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    v.resize(600, 0);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// A JPEG whose size header (SOF) comes after a 60 KB metadata segment, as in camera files with
/// EXIF thumbnails: a partial copy of it has no readable size.
pub fn jpeg_with_metadata(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    let len: u16 = 60_000;
    v.extend_from_slice(&len.to_be_bytes());
    v.extend((0..len - 2).map(|i| (i % 200) as u8));
    v.extend_from_slice(&jpeg_bytes(w, h)[2..]);
    v
}

/// A PNG whose header claims `w × h` pixels, with nothing behind it (a decompression bomb's shape).
pub fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    v.resize(1024, 0);
    v
}

/// A `w`×`h` PNG whose every chunk is whole and checksummed, but whose compressed image data
/// (the zlib stream in IDAT) is broken: its first block has the reserved type. It reads as whole;
/// only decoding it finds the damage.
pub fn png_with_broken_data(w: u32, h: u32) -> Vec<u8> {
    let mut v = png_bytes(w, h);
    let idat = v
        .windows(4)
        .position(|c| c == b"IDAT")
        .expect("an IDAT chunk");
    let len = u32::from_be_bytes(v[idat - 4..idat].try_into().unwrap()) as usize;
    // After the 2-byte zlib header: BFINAL 1, BTYPE 11 (reserved).
    v[idat + 4 + 2] = 0xFF;
    let crc = crc32(&v[idat..idat + 4 + len]);
    v[idat + 4 + len..idat + 8 + len].copy_from_slice(&crc.to_be_bytes());
    v
}

/// PNG's CRC-32 of `bytes` (a chunk's type and data).
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |mut crc, &b| {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
        crc
    })
}
