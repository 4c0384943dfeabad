//! The dashboard (`watch --ui`): in a real headless Chromium against the real binary and the fake
//! API — a job moving with its progress bar, a result whose poster loads and whose video plays, a
//! failure and its Retry, an upload from the page, a hold and its cause, no console error, and a
//! screenshot; the page on a phone's width with long names, by keyboard alone, with a plain-text
//! refusal; then its security from outside a browser (traversal, links and crafted `result.json`
//! in `done/`, ranges, forged hosts and origins, a TLS proxy's origin, the token, upload limits)
//! and `/metrics`. The security tests are in [`security`], the phone-width page in [`phone`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;

use crate::support::*;

mod phone;
mod security;

const TOKEN: &str = "0123456789abcdef-test-token";

/// A landscape: a sky, a sun and two hills.
fn scene(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (f64::from(x) / f64::from(w), f64::from(y) / f64::from(h));
        let hill = |c: f64, a: f64| 0.62 + a * (fx * 6.0 + c).sin() * 0.5;
        let sun = ((fx - 0.7).powi(2) + (fy - 0.3).powi(2) * 0.3).sqrt() < 0.08;
        let rgb = if fy > hill(1.0, 0.12) + 0.1 {
            [40.0, 92.0 + 60.0 * fy, 60.0]
        } else if fy > hill(2.5, 0.18) {
            [70.0, 120.0, 80.0 + 40.0 * fx]
        } else if sun {
            [255.0, 214.0, 120.0]
        } else {
            [250.0 - 120.0 * fy, 150.0 + 60.0 * fy, 130.0 + 110.0 * fy]
        };
        image::Rgb(rgb.map(|v: f64| v.clamp(0.0, 255.0) as u8))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A short real H.264 clip (a local render), for the fake API to serve as every task's output.
async fn real_clip() -> Vec<u8> {
    let studio = Studio::new(
        "backend: local\nlocal:\n  fps: 12\nwatch:\n  settle: 50ms\n  sidecar_wait: 20ms\n",
    );
    studio.put("inbox/clip.png", &scene(640, 360));
    studio.put("inbox/clip.yaml", b"duration: 2\n");
    let summary = studio.run_local().await;
    assert_eq!(summary.succeeded, 1);
    std::fs::read(studio.path("done/clip.mp4")).unwrap()
}

/// Waits until the dashboard at `addr` answers.
async fn until_listening(addr: SocketAddr, child: &mut Child) {
    let what = format!("the dashboard listening on {addr}");
    until_async(&what, Duration::from_secs(20), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("dropreel exited ({status}) before its dashboard listened");
        }
        async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
    })
    .await;
}

/// The script that finds the element of `section` (`results`, `failed`, `inflight`) whose name
/// is `name`, then runs `then` on it (as `e`), or returns null.
fn on_item(section: &str, name: &str, then: &str) -> String {
    format!(
        "const e = [...document.querySelectorAll('#{section} > *')].find(x => x.querySelector('.name').textContent === {name:?});
         if (!e) return null; {then}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_jobs_move_results_play_failures_retry_uploads_land_and_holds_show() {
    let Some(b) = browser("dashboard in a browser").await else {
        return;
    };
    let fake = FakeRunway::start(Switches {
        video: Some(Arc::new(real_clip().await)),
        task_time: Duration::from_millis(2500),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .runway("poll_interval", "100ms")
            .yaml(),
    );
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_watch_with(studio.root(), &[&format!("--ui=127.0.0.1:{port}")]);
    until_listening(addr, &mut child).await;
    let minute = Duration::from_secs(60);

    // The page's weight and how soon it shows the studio (printed for BENCHMARKS.md; not asserted).
    let mut paints = Vec::new();
    let mut states = Vec::new();
    let mut weight = 0.0;
    for _ in 0..5 {
        b.client.goto(&format!("http://{addr}/")).await.unwrap();
        b.until(
            "the live link",
            minute,
            "return document.getElementById('link').textContent === 'live'",
        )
        .await;
        let m = b
            .js(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];
                 const s = performance.getEntriesByName('dropreel-first-state')[0];
                 const n = performance.getEntriesByType('navigation')[0];
                 const bytes = performance.getEntriesByType('resource')
                     .filter(r => !r.name.endsWith('/events'))
                     .reduce((sum, r) => sum + r.decodedBodySize, n.decodedBodySize);
                 return [p ? p.startTime : -1, s.startTime, bytes]",
            )
            .await;
        paints.push(m[0].as_f64().unwrap());
        states.push(m[1].as_f64().unwrap());
        weight = m[2].as_f64().unwrap();
    }
    paints.sort_by(f64::total_cmp);
    states.sort_by(f64::total_cmp);
    eprintln!(
        "dashboard page: {:.1} KiB (HTML, script, style, icon); first contentful paint {:.0} ms, first state drawn {:.0} ms (medians of 5 loads)",
        weight / 1024.0,
        paints[2],
        states[2]
    );

    // A job in flight, its progress bar moving.
    studio.put(
        "inbox/cat.yaml",
        b"prompt: the camera drifts over the hills as the sun sets\n",
    );
    studio.put("inbox/cat.png", &scene(320, 240));
    let bar = on_item(
        "inflight",
        "cat.png",
        "return e.querySelector('.bar').dataset.progress || null",
    );
    let seen = std::cell::RefCell::new(Vec::new());
    until_async("the progress bar of cat.png moving", minute, || async {
        let shown = b.js(&bar).await;
        let mut seen = seen.borrow_mut();
        if let Some(p) = shown.as_str()
            && !seen.contains(&p.to_string())
        {
            seen.push(p.to_string());
        }
        seen.len() >= 2
    })
    .await;

    // Its result: the poster loaded, and a click plays the video.
    let job = b
        .until(
            "cat.png's result with its poster loaded",
            minute,
            &on_item(
                "results",
                "cat.png",
                "const i = e.querySelector('img.poster'); return i && i.complete && i.naturalWidth > 0 ? e.dataset.job : null",
            ),
        )
        .await;
    let job = job.as_str().unwrap().to_string();
    assert_eq!(studio.json("done/cat.result.json")["job_id"], job.as_str());
    b.client
        .find(Locator::Css(&format!("#results [data-job='{job}'] .frame")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.until(
        "cat.png's video playing",
        minute,
        &on_item(
            "results",
            "cat.png",
            "const v = e.querySelector('video'); return !!v && !v.error && v.readyState >= 2 && v.videoWidth > 0 && (v.currentTime > 0 || v.ended)",
        ),
    )
    .await;
    let info = b
        .js(&on_item(
            "results",
            "cat.png",
            "return e.querySelector('.info').textContent",
        ))
        .await;
    let info = info.as_str().unwrap();
    assert!(
        info.contains("image") && info.contains("gen4_turbo") && info.contains("credits"),
        "kind, model and credits on the card: {info}"
    );
    let prompt = b
        .js(&on_item(
            "results",
            "cat.png",
            "return e.querySelector('.prompt').textContent",
        ))
        .await;
    assert_eq!(prompt, "the camera drifts over the hills as the sun sets");

    // A failure shows its error; Retry puts it back into inbox/, and it is made. (A failure a retry
    // can escape: the output failing Runway's checks twice. A moderation refusal is remembered, and
    // the same file retried unchanged would fail at once: see tests/it/dedupe.rs.)
    fake.set(|s| {
        for _ in 0..2 {
            s.failure_codes
                .push_back("INTERNAL.BAD_OUTPUT.CODE01".into());
        }
    });
    studio.put("inbox/bad.png", &png_distinct(320, 240));
    let shown = b
        .until(
            "bad.png's failure",
            minute,
            &on_item(
                "failed",
                "bad.png",
                "return e.querySelector('.error').textContent",
            ),
        )
        .await;
    let error_txt = studio.read("failed/bad.error.txt");
    let wrong = error_txt
        .lines()
        .find_map(|l| l.strip_prefix("What went wrong: "))
        .unwrap();
    assert!(
        shown
            .as_str()
            .unwrap()
            .contains(wrong.trim_end_matches('.')),
        "the page shows the error.txt's words: {shown} vs {wrong}"
    );
    let failed_job = b
        .js(&on_item("failed", "bad.png", "return e.dataset.job"))
        .await;
    b.client
        .find(Locator::Css(&format!(
            "#failed [data-job='{}'] button.retry",
            failed_job.as_str().unwrap()
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    studio.appears("done/bad.mp4", minute).await;
    assert!(!studio.path("failed/bad.png").exists());
    assert!(!studio.path("failed/bad.error.txt").exists());
    let moved = format!(
        "return (() => {{ {} }})() === true && (() => {{ {} }})() === null",
        on_item("results", "bad.png", "return true"),
        on_item("failed", "bad.png", "return true"),
    );
    b.until(
        "bad.png among the results and no longer failed",
        minute,
        &moved,
    )
    .await;
    let still_failed = b.js(&on_item("failed", "bad.png", "return true")).await;
    assert!(still_failed.is_null(), "bad.png left the failed list");

    // An upload through the page's file input lands in inbox/ and is made.
    let files = tempfile::tempdir().unwrap();
    let up = files.path().join("up.png");
    std::fs::write(&up, png_distinct(320, 240)).unwrap();
    b.client
        .find(Locator::Id("upload-input"))
        .await
        .unwrap()
        .send_keys(up.to_str().unwrap())
        .await
        .unwrap();
    b.until(
        "the upload's success",
        minute,
        "return [...document.querySelectorAll('#uploads li.ok')].some(l => l.textContent.startsWith('up.png'))",
    )
    .await;
    studio.appears("done/up.mp4", minute).await;
    assert_eq!(
        std::fs::read(studio.path("done/up.png")).unwrap(),
        std::fs::read(&up).unwrap(),
        "the uploaded bytes, whole"
    );
    let leftovers: Vec<String> = studio
        .list("inbox")
        .into_iter()
        .filter(|n| n.starts_with(".dropreel-upload"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");

    // A bad input that stays failed, for the screenshot.
    studio.put("inbox/notes.txt", b"   \n");
    b.until(
        "notes.txt's failure",
        minute,
        &on_item("failed", "notes.txt", "return true"),
    )
    .await;

    // A refused key: the hold and its cause at the top; fixed, it goes.
    fake.set(|s| s.key = "a key that changed".into());
    studio.put("inbox/held.png", &png_distinct(320, 240));
    let cause = b
        .until(
            "the hold",
            minute,
            "const h = document.getElementById('hold'); return h.hidden ? null : h.textContent",
        )
        .await;
    assert!(
        cause.as_str().unwrap().contains("refused the API key"),
        "the cause: {cause}"
    );
    let shot = b.client.screenshot().await.unwrap();
    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &shot).unwrap();
    if let Some(to) = std::env::var_os("DROPREEL_SCREENSHOT") {
        std::fs::write(to, &shot).unwrap();
    }
    eprintln!("dashboard screenshot: {}", path.display());
    fake.set(|s| s.key = KEY.into());
    studio.appears("done/held.mp4", minute).await;
    b.until(
        "the hold gone",
        minute,
        "return document.getElementById('hold').hidden",
    )
    .await;

    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    sigterm(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

// See: issue 21, item 1 — a file that is not whole waited without a word; the page now lists
// it among the waiting files, with why and until when, until it is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_file_that_is_not_whole_shows_among_the_waiting_until_it_is() {
    let Some(b) = browser("a file not whole on the page").await else {
        return;
    };
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .watch("truncated_after", "1h")
            .yaml(),
    );
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_watch_with(studio.root(), &[&format!("--ui=127.0.0.1:{port}")]);
    until_listening(addr, &mut child).await;
    let child = Reaped::new(child);
    let minute = Duration::from_secs(60);
    b.client.goto(&format!("http://{addr}/")).await.unwrap();
    let whole = jpeg_bytes(64, 48);
    let (head, rest) = whole.split_at(whole.len() / 2);
    studio.put("inbox/cut.jpg", head);
    let item = "const e = [...document.querySelectorAll('#waiting > li.not-whole')]
                    .find(x => x.querySelector('.name').textContent === 'cut.jpg');";
    let shown = b
        .until(
            "cut.jpg waiting as not whole",
            minute,
            &format!("{item} return e ? e.textContent : null"),
        )
        .await;
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("not whole") && shown.contains("JPEG") && shown.contains("failed/ at"),
        "why, and when it is given up: {shown}"
    );
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(studio.path("inbox/cut.jpg"))
        .unwrap();
    f.write_all(rest).unwrap();
    drop(f);
    studio.appears("done/cut.mp4", minute).await;
    b.until(
        "cut.jpg no longer waiting",
        minute,
        &format!("{item} return !e"),
    )
    .await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
    sigterm(child.child());
    let (code, _) = wait_exit(child.take(), Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

/// `watch --ui` on a free loopback port of a studio with `extra` settings.
async fn dashboard_of(fake: &FakeRunway, extra: &str) -> (Studio, SocketAddr, Child) {
    let studio = Studio::new(&test_config(&fake.url, extra));
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = spawn_watch_with(studio.root(), &[&format!("--ui=127.0.0.1:{port}")]);
    until_listening(addr, &mut child).await;
    (studio, addr, child)
}
