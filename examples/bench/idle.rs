//! Sections 5 and 6: an idle `watch` (with and without the dashboard, a page open or not), and
//! one big file through the Runway path (an upload, a TIFF converted).

use super::*;

/// Section 5, idle: CPU seconds over `secs` of `watch` on an inbox with `ignored` ignored files.
pub(super) async fn idle(ignored: usize, secs: u64) -> (f64, f64) {
    let studio = Studio::new("runway:\n  base_url: http://127.0.0.1:9\n");
    for i in 0..ignored {
        studio.put(&format!("inbox/.sync-{i:05}.tmp"), b"x");
    }
    let child = spawn("watch", studio.root(), true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, cpu0) = usage(child.id());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (rss, cpu1) = usage(child.id());
    stop(child);
    (cpu1 - cpu0, rss)
}

/// Section 5 with the dashboard on (`ui.listen`): CPU seconds over `secs` of an idle `watch`, with
/// no page open, or with one (the page's assets fetched, its event stream held open and read).
pub(super) async fn idle_ui(page: bool, secs: u64) -> (f64, f64) {
    let port = dropreel_testkit::free_port();
    let studio = Studio::new(&format!(
        "runway:\n  base_url: http://127.0.0.1:9\nui:\n  listen: 127.0.0.1:{port}\n"
    ));
    let child = spawn("watch", studio.root(), true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = format!("http://127.0.0.1:{port}");
    let reader = page.then(|| {
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for asset in ["/", "/app.js", "/app.css", "/icon.svg"] {
                client
                    .get(format!("{base}{asset}"))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
            }
            let mut events = client.get(format!("{base}/events")).send().await.unwrap();
            let mut got = 0usize;
            while let Ok(Some(chunk)) = events.chunk().await {
                got += chunk.len();
            }
            got
        })
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, cpu0) = usage(child.id());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (rss, cpu1) = usage(child.id());
    stop(child);
    if let Some(r) = reader {
        assert!(r.await.unwrap() > 0, "the page got the state");
    }
    (cpu1 - cpu0, rss)
}

/// Section 6: one big image (`name` in inbox/) through the Runway path with `watch`: size in MB,
/// peak RSS in MiB and seconds until its video is in done/.
pub(super) async fn one_big_file(name: &str, bytes: Vec<u8>) -> (f64, f64, f64) {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&config(&fake.url, 1, ""));
    let mb = bytes.len() as f64 / 1e6;
    studio.put(&format!("inbox/{name}"), &bytes);
    drop(bytes);
    let video = studio.path(&format!("done/{}.mp4", name.rsplit_once('.').unwrap().0));
    tokio::time::sleep(QUIET).await;
    let t0 = Instant::now();
    let child = spawn("watch", studio.root(), true);
    let pid = child.id();
    let mut peak: f64 = 0.0;
    while !video.exists() {
        peak = peak.max(usage(pid).0);
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{name} was not done"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed().as_secs_f64();
    peak = peak.max(usage(pid).0);
    stop(child);
    (mb, peak, took)
}

/// A 24 MP (6000×4000) 8-bit RGB TIFF, photo-like (gradients, waves, grain): a format the API
/// does not take, so dropreel converts it to PNG before the upload.
pub(super) fn big_tiff() -> Vec<u8> {
    let (w, h) = (6000u32, 4000u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let t = ((x as f32 * 0.05).sin() * (y as f32 * 0.04).cos() * 40.0) as i32;
        let g = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 28) as i32;
        let v = |b: i32| (b + t + g).clamp(0, 255) as u8;
        image::Rgb([
            v((x * 200 / w) as i32),
            v((y * 200 / h) as i32 + 30),
            v(120),
        ])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut bytes, image::ImageFormat::Tiff)
        .unwrap();
    bytes.into_inner()
}
