//! Posters: `<stem>.poster.jpg` beside every delivered video — the middle frame, at most 640 px wide —
//! from the local renderer's own frame and from a downloaded MP4 (decoded); one per take; none for a
//! video that cannot be decoded, and nothing fails for it.

use std::sync::Arc;

use crate::support::*;

/// Colours that tell position: the frames of a pan differ from one another.
fn waves_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (f64::from(x), f64::from(y));
        let c = |v: f64| (128.0 + 100.0 * v.sin()) as u8;
        image::Rgb([c(x / 47.0), c(y / 31.0 + 1.0), c((x + y) / 83.0 + 2.0)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Mean luma of each cell of a 16 × 9 grid over a `w × h` luma plane.
fn grid(luma: &[u8], w: usize, h: usize) -> Vec<f64> {
    let mut cells = vec![0.0; 16 * 9];
    let mut counts = vec![0.0; 16 * 9];
    for y in 0..h {
        for x in 0..w {
            let c = (y * 9 / h) * 16 + x * 16 / w;
            cells[c] += f64::from(luma[y * w + x]);
            counts[c] += 1.0;
        }
    }
    cells.iter().zip(&counts).map(|(s, n)| s / n).collect()
}

/// The largest difference between two grids.
fn apart(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The poster at `rel`: its size and its luma grid (BT.709, limited range, as the video's).
fn poster(studio: &Studio, rel: &str) -> ((u32, u32), Vec<f64>) {
    let img = image::open(studio.path(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let luma: Vec<u8> = img
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            (16.0 + 219.0 / 255.0 * (0.2126 * r + 0.7152 * g + 0.0722 * b)).round() as u8
        })
        .collect();
    ((w, h), grid(&luma, w as usize, h as usize))
}

/// A local render of a 2 s pan at 12 fps from a 1920×1080 picture: its studio.
async fn rendered_pan() -> Studio {
    let studio = Studio::new(
        "backend: local\nlocal:\n  fps: 12\nwatch:\n  settle: 50ms\n  sidecar_wait: 20ms\n",
    );
    studio.put("inbox/waves.png", &waves_png(1920, 1080));
    studio.put("inbox/waves.yaml", b"motion: pan_right\nduration: 2\n");
    let summary = studio.run_local().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    studio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_render_gets_a_poster_of_its_middle_frame() {
    let studio = rendered_pan().await;
    let d = decode_mp4(&studio.path("done/waves.mp4"));
    let ((w, h), got) = poster(&studio, "done/waves.poster.jpg");
    assert_eq!((w, h), (640, 360), "at most 640 wide, the video's shape");
    let frame = |i: usize| grid(&d.lumas[i], d.width, d.height);
    let middle = apart(&got, &frame(d.lumas.len() / 2));
    assert!(
        middle < 6.0,
        "the poster is the middle frame (off by {middle:.1})"
    );
    assert!(
        apart(&got, &frame(0)) > 3.0 * middle,
        "and not the first frame of the pan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_video_gets_a_poster_each_take_one_and_an_undecodable_one_none() {
    // A real H.264 MP4 (made by the local renderer) as every task's output.
    let local = rendered_pan().await;
    let video = std::fs::read(local.path("done/waves.mp4")).unwrap();
    let d = decode_mp4(&local.path("done/waves.mp4"));
    let middle = grid(&d.lumas[d.lumas.len() / 2], d.width, d.height);
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.video = Some(Arc::new(video)))
        .start()
        .await;
    studio.put("inbox/one.png", &png_distinct(16, 9));
    studio.put("inbox/two.png", &png_distinct(16, 9));
    studio.put("inbox/two.yaml", b"variants: 2\n");
    studio.run().await.outcome(2, 0);
    for rel in [
        "done/one.poster.jpg",
        "done/two-v1.poster.jpg",
        "done/two-v2.poster.jpg",
    ] {
        let ((w, h), got) = poster(&studio, rel);
        assert_eq!((w, h), (640, 360), "{rel}");
        let off = apart(&got, &middle);
        assert!(
            off < 6.0,
            "{rel} is the video's middle frame (off by {off:.1})"
        );
    }

    // The stand-in the fake serves by default is no H.264: delivered, without a poster.
    fake.set(|s| s.video = None);
    studio.put("inbox/three.png", &png_distinct(16, 9));
    studio.run().await.outcome(1, 0);
    assert!(studio.path("done/three.mp4").exists());
    assert!(!studio.path("done/three.poster.jpg").exists());
    assert!(studio.list("failed").is_empty());
}
