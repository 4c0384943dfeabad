//! RGB → I420 in BT.709, limited range: our own conversion, rounded (OpenH264's is BT.601 and
//! truncates). The renderer's frames go through it on their way to the encoder.

/// Packed RGB (`w × h`, both even) to I420, BT.709 limited range, rounded.
pub fn rgb_to_i420(rgb: &[u8], w: usize, h: usize, out: &mut Vec<u8>) {
    debug_assert!(w.is_multiple_of(2) && h.is_multiple_of(2));
    out.resize(w * h * 3 / 2, 0);
    let (y_plane, chroma) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut(w * h / 4);
    // 16.16 fixed point of 219/255·(Kr, Kg, Kb) and 224/255·(Cb, Cr rows), BT.709.
    const YR: i32 = 11966;
    const YG: i32 = 40254;
    const YB: i32 = 4064;
    const UR: i32 = -6596;
    const UG: i32 = -22189;
    const UB: i32 = 28785;
    const VR: i32 = 28785;
    const VG: i32 = -26145;
    const VB: i32 = -2640;
    for (row, yrow) in y_plane.chunks_exact_mut(w).enumerate() {
        let src = &rgb[row * w * 3..(row + 1) * w * 3];
        for (px, y) in src.chunks_exact(3).zip(yrow.iter_mut()) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            *y = ((YR * r + YG * g + YB * b + (16 << 16) + (1 << 15)) >> 16) as u8;
        }
    }
    let cw = w / 2;
    for cy in 0..h / 2 {
        let r0 = &rgb[(2 * cy) * w * 3..(2 * cy + 1) * w * 3];
        let r1 = &rgb[(2 * cy + 1) * w * 3..(2 * cy + 2) * w * 3];
        for cx in 0..cw {
            let i = cx * 6;
            let sum = |c: usize| {
                i32::from(r0[i + c])
                    + i32::from(r0[i + 3 + c])
                    + i32::from(r1[i + c])
                    + i32::from(r1[i + 3 + c])
            };
            let (r, g, b) = (sum(0), sum(1), sum(2));
            // Sums of four pixels: divide by 4 within the shift (18 = 16 + 2).
            let u = (UR * r + UG * g + UB * b + (128 << 18) + (1 << 17)) >> 18;
            let v = (VR * r + VG * g + VB * b + (128 << 18) + (1 << 17)) >> 18;
            u_plane[cy * cw + cx] = u.clamp(0, 255) as u8;
            v_plane[cy * cw + cx] = v.clamp(0, 255) as u8;
        }
    }
}
