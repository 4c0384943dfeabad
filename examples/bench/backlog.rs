//! Sections 4 and 7: backlogs of fast tasks — 10 000 images (first submit, all done, efficiency,
//! peak RSS) and 300 with `max_in_flight` at the server's concurrency, beside the plain concurrent
//! loop a user would script.

use super::*;

/// Section 4: a 10 000-image backlog with fast tasks (in `inbox/`, or over `folders` subfolders):
/// first submit, all done, efficiency, peak RSS.
pub(super) async fn backlog(
    n: usize,
    folders: usize,
    conc: usize,
    task_ms: u64,
) -> (f64, f64, f64, f64, f64) {
    let fake = server(conc, Duration::from_millis(task_ms)).await;
    // Fast tasks: keep Runway's queue fed (submitted tasks wait there as THROTTLED, at no cost)
    // so its slots never idle while dropreel notices a finish.
    // EXTRA_YAML adds settings (e.g. `dedupe: false`) for an A/B comparison.
    let extra = std::env::var("EXTRA_YAML").unwrap_or_default();
    let studio = Studio::new(&config(&fake.url, conc * 10, &extra));
    put_images(&studio, n, folders);
    tokio::time::sleep(QUIET).await;
    let t0 = Instant::now();
    let child = spawn("watch", studio.root(), true);
    let pid = child.id();
    let mut peak: f64 = 0.0;
    let mut samples = Vec::new();
    let done_dir = studio.path("done");
    loop {
        let (rss, _) = usage(pid);
        peak = peak.max(rss);
        let done = delivered(&done_dir);
        samples.push((t0.elapsed().as_secs_f64(), done, rss));
        if done >= n {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "backlog did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = t0.elapsed().as_secs_f64();
    // Where the time went: every second of the run, how many jobs were done.
    if std::env::var_os("TIMELINE").is_some() {
        let mut next = 0.0;
        for (t, done, _) in &samples {
            if *t >= next {
                eprint!("{t:.0}s:{done} ");
                next += 1.0;
            }
        }
        eprintln!();
    }
    let first = fake
        .seen()
        .iter()
        .find(|s| s.path == "/v1/image_to_video")
        .map(|s| (s.at - t0).as_secs_f64())
        .unwrap_or(f64::NAN);
    let ideal = n as f64 / conc as f64 * task_ms as f64 / 1000.0;
    // Flatness: RSS at 25 % done vs at the end.
    let quarter = samples.iter().find(|s| s.1 >= n / 4).map_or(0.0, |s| s.2);
    eprintln!(
        "backlog: dropreel used {:.2} s of CPU; the fake server saw {} requests",
        usage(pid).1,
        fake.seen().len()
    );
    stop(child);
    (first, all, ideal / all, peak, quarter)
}

/// Section 7: a short backlog of fast tasks with `max_in_flight` equal to the server's concurrency
/// (as most users set it), driven by `run`: per-job overhead shows as the gap to the ideal.
pub(super) async fn fast_backlog(n: usize, conc: usize, task_ms: u64) -> (f64, f64, f64) {
    let fake = server(conc, Duration::from_millis(task_ms)).await;
    let extra = std::env::var("EXTRA_YAML").unwrap_or_default();
    let studio = Studio::new(&config(
        &fake.url,
        conc,
        &format!("  poll_interval: 100ms\n{extra}"),
    ));
    put_images(&studio, n, 0);
    tokio::time::sleep(QUIET).await;
    let t0 = Instant::now();
    let child = spawn("run", studio.root(), true);
    let pid = child.id();
    let cpu = std::sync::Arc::new(std::sync::Mutex::new(0.0));
    let cpu2 = cpu.clone();
    let took = tokio::task::spawn_blocking(move || {
        // The CPU figure has to be read before the process is reaped.
        let mut child = child;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "dropreel run failed: {status}");
                return t0.elapsed().as_secs_f64();
            }
            *cpu2.lock().unwrap() = usage(pid).1;
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let ideal = n as f64 / conc as f64 * task_ms as f64 / 1000.0;
    let cpu = *cpu.lock().unwrap();
    if std::env::var_os("TIMELINE").is_some() {
        // Where the gap to the ideal went: before the first create, between a task's finish and
        // the create that took its slot, between the finish and the output's download, after the
        // last finish.
        let seen = fake.seen();
        let creates: Vec<Instant> = seen
            .iter()
            .filter(|s| s.path == "/v1/image_to_video")
            .map(|s| s.at)
            .collect();
        let finishes = fake.finishes();
        let refill: Vec<f64> = creates
            .iter()
            .skip(conc)
            .zip(&finishes)
            .map(|(c, f)| c.saturating_duration_since(*f).as_secs_f64() * 1000.0)
            .collect();
        let detect: Vec<f64> = fake.detection_delays().iter().map(|d| d * 1000.0).collect();
        eprintln!(
            "first create {:.0} ms; finish → next create median {:.0} ms p90 {:.0} ms; finish → download median {:.0} ms p90 {:.0} ms; last finish → exit {:.0} ms",
            (creates[0] - t0).as_secs_f64() * 1000.0,
            median(refill.clone()),
            percentile(refill, 0.9),
            median(detect.clone()),
            percentile(detect, 0.9),
            (t0 + Duration::from_secs_f64(took))
                .saturating_duration_since(*finishes.last().unwrap())
                .as_secs_f64()
                * 1000.0,
        );
    }
    (took, ideal / took, cpu)
}

/// Section 7's baseline: the plain concurrent loop a user would script — `conc` workers, each
/// claims the next image (a rename), sends it as a data URI, polls every 200 ms, downloads the
/// video and moves the image to done/.
pub(super) async fn plain_loop(n: usize, conc: usize, task_ms: u64) -> f64 {
    let fake = server(conc, Duration::from_millis(task_ms)).await;
    let studio = Studio::new("");
    put_images(&studio, n, 0);
    for d in ["processing", "done"] {
        std::fs::create_dir_all(studio.path(d)).unwrap();
    }
    let names: Vec<String> = (0..n).map(|i| format!("img{i:05}.png")).collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(names));
    let root = studio.root().to_path_buf();
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (queue, root, http, url) =
            (queue.clone(), root.clone(), http.clone(), fake.url.clone());
        workers.spawn(async move {
            loop {
                let Some(name) = queue.lock().unwrap().pop() else {
                    return;
                };
                let claimed = root.join("processing").join(&name);
                std::fs::rename(root.join("inbox").join(&name), &claimed).unwrap();
                let image = std::fs::read(&claimed).unwrap();
                let (bytes, _) = script_one(&http, &url, &image, Duration::from_millis(200)).await;
                let stem = name.trim_end_matches(".png");
                std::fs::write(root.join("done").join(format!("{stem}.mp4")), &bytes).unwrap();
                std::fs::rename(&claimed, root.join("done").join(&name)).unwrap();
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let ideal = n as f64 / conc as f64 * task_ms as f64 / 1000.0;
    ideal / t0.elapsed().as_secs_f64()
}
