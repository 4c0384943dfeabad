//! The pipeline benchmark: the real `dropreel` binary against the fake Runway API (the one the tests
//! use, on 127.0.0.1, with a server-side concurrency limit and a task time), beside the naive
//! strategy a user would otherwise script (one image at a time, polling every 5 s).
//!
//! `cargo run --release --example bench [RUNS]` builds nothing itself: it runs
//! `target/release/dropreel`, so build it first (`cargo build --release`). Prints a markdown table.
//! Sections 1–3 and the helpers are here; [`backlog`] holds sections 4 and 7, [`idle`] 5 and 6.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dropreel_testkit::{FakeRunway, KEY, Studio, Switches, png_bytes, png_seeded};

mod backlog;
mod idle;

use backlog::{backlog, fast_backlog, plain_loop};
use idle::{big_tiff, idle, idle_ui, one_big_file};

/// How long a backlog has been sitting in the inbox before dropreel starts: past the default
/// `settle` + `sidecar_wait` (2 s + 2 s), as files left there while it was stopped are.
const QUIET: Duration = Duration::from_millis(4200);

fn bin() -> PathBuf {
    // A wrapper (a profiler) may stand in for the binary.
    if let Some(p) = std::env::var_os("DROPREEL_BIN") {
        return PathBuf::from(p);
    }
    // target/release/examples/bench → target/release/dropreel
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the bench runs from target/<profile>/examples")
        .join("dropreel")
}

fn config(url: &str, max_in_flight: usize, extra: &str) -> String {
    format!("runway:\n  base_url: {url}\n  max_in_flight: {max_in_flight}\n{extra}")
}

fn spawn(cmd: &str, root: &Path, quiet: bool) -> Child {
    let mut c = Command::new(bin());
    c.args([cmd, root.to_str().unwrap()])
        .env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAYML_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if quiet {
        c.arg("-q");
    }
    c.spawn().unwrap()
}

/// (peak RSS in MiB, CPU seconds) of a live process.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the name).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (hwm, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `n` distinct images (the dedupe ledger would reuse repeats) in `inbox/`, or spread over
/// `folders` subfolders of it.
fn put_images(studio: &Studio, n: usize, folders: usize) {
    for i in 0..n {
        let rel = match folders {
            0 => format!("inbox/img{i:05}.png"),
            f => {
                std::fs::create_dir_all(studio.path(&format!("inbox/f{:03}", i % f))).unwrap();
                format!("inbox/f{:03}/img{i:05}.png", i % f)
            }
        };
        studio.put(&rel, &png_seeded(4 + (i % 50) as u32, 4, i as u32 + 1));
    }
}

/// Jobs delivered under `done/` (its folders included): three files each. Counted as cheaply as
/// the directory listing allows (no path built, no name read), since it runs every 200 ms over up
/// to 30 000 files on the same two cores as dropreel and the fake server: a walk that built a path
/// per entry cost section 4 ten points of efficiency, whatever binary it measured.
fn delivered(done: &Path) -> usize {
    let mut files = 0;
    for e in std::fs::read_dir(done).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files += std::fs::read_dir(e.path()).map_or(0, Iterator::count);
        } else {
            files += 1;
        }
    }
    files / 3
}

/// Waits for `run` to exit; its wall time.
fn wait(mut child: Child, t0: Instant) -> f64 {
    let status = child.wait().unwrap();
    assert!(status.success(), "dropreel run failed: {status}");
    t0.elapsed().as_secs_f64()
}

/// A fake API running `conc` tasks at once, each `task` long, with no pending time.
async fn server(conc: usize, task: Duration) -> FakeRunway {
    FakeRunway::start(Switches {
        concurrency: conc,
        pending_time: Duration::ZERO,
        task_time: task,
        ..Switches::default()
    })
    .await
}

/// Section 1, makespan: N images, server concurrency `conc`, task time 2 s; ideal ÷ measured.
async fn makespan(runs: usize, n: usize, conc: usize) -> (f64, f64) {
    let mut effs = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..runs {
        let fake = server(conc, Duration::from_secs(2)).await;
        let studio = Studio::new(&config(&fake.url, conc, ""));
        put_images(&studio, n, 0);
        // Files are quiet before the start, as a backlog is.
        tokio::time::sleep(QUIET).await;
        let t0 = Instant::now();
        let child = spawn("run", studio.root(), true);
        let took = tokio::task::spawn_blocking(move || wait(child, t0))
            .await
            .unwrap();
        let ideal = n as f64 / conc as f64 * 2.0;
        effs.push(ideal / took);
        calls.push(fake.seen().len() as f64 / n as f64);
    }
    (median(effs), median(calls))
}

/// An API request with the key and version headers; its JSON answer.
async fn api_json(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.bearer_auth(KEY)
        .header("X-Runway-Version", "2024-11-06")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a user's script does for one image: send it as a data URI, poll the task every `poll`,
/// download the video. The video and the requests it took.
async fn script_one(
    http: &reqwest::Client,
    api: &str,
    image: &[u8],
    poll: Duration,
) -> (Vec<u8>, usize) {
    let uri = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(image)
    );
    let body = serde_json::json!({"model": "gen4_turbo", "promptImage": uri, "ratio": "1280:720", "duration": 5});
    let r = api_json(http.post(format!("{api}/v1/image_to_video")).json(&body)).await;
    let mut calls = 1;
    let id = r["id"].as_str().unwrap().to_string();
    let url = loop {
        tokio::time::sleep(poll).await;
        let t = api_json(http.get(format!("{api}/v1/tasks/{id}"))).await;
        calls += 1;
        if t["status"] == "SUCCEEDED" {
            break t["output"][0].as_str().unwrap().to_string();
        }
    };
    let video = http.get(&url).send().await.unwrap().bytes().await.unwrap();
    (video.to_vec(), calls + 1)
}

/// The naive strategy: one image at a time, sleep 5 s, poll every 5 s, download, next.
async fn naive(fake: &FakeRunway, images: &[Vec<u8>], dir: &Path) -> (f64, usize) {
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let mut calls = 0;
    for (i, img) in images.iter().enumerate() {
        let (video, n) = script_one(&http, &fake.url, img, Duration::from_secs(5)).await;
        calls += n;
        std::fs::write(dir.join(format!("{i}.mp4")), &video).unwrap();
    }
    (t0.elapsed().as_secs_f64(), calls)
}

/// Section 2: calls per task and completion-detection delay on 30 s tasks (30–33 s: real tasks
/// vary). The fixed poller's figures are measured once and kept in `fixed`.
async fn detection(
    n: usize,
    poll_interval: &str,
    fixed: &mut Option<(f64, f64)>,
) -> (f64, f64, f64, f64) {
    let switches = || Switches {
        concurrency: n,
        pending_time: Duration::ZERO,
        task_time: Duration::from_secs(30),
        task_jitter: Duration::from_secs(3),
        ..Switches::default()
    };
    let fake = FakeRunway::start(switches()).await;
    let studio = Studio::new(&config(
        &fake.url,
        n,
        &format!("  poll_interval: {poll_interval}\n"),
    ));
    put_images(&studio, n, 0);
    tokio::time::sleep(QUIET).await;
    let child = spawn("run", studio.root(), true);
    tokio::task::spawn_blocking(move || wait(child, Instant::now()))
        .await
        .unwrap();
    let ours_calls = fake.seen().len() as f64 / n as f64;
    let delays = fake.detection_delays();
    let ours_delay = median(delays);

    if fixed.is_none() {
        let fake2 = FakeRunway::start(switches()).await;
        // The fixed 5 s poller, all n at once (the SDK's async loop).
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<Vec<u8>> = (0..n).map(|i| png_bytes(5 + i as u32, 5)).collect();
        let mut handles = Vec::new();
        for img in images {
            let f = fake2.clone();
            let d = dir.path().to_path_buf();
            handles.push(tokio::spawn(async move { naive(&f, &[img], &d).await }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let naive_calls = fake2.seen().len() as f64 / n as f64;
        let naive_delay = median(fake2.detection_delays());
        *fixed = Some((naive_calls, naive_delay));
    }
    let (naive_calls, naive_delay) = fixed.expect("measured above");
    (ours_calls, ours_delay, naive_calls, naive_delay)
}

/// Section 3, intake latency: file complete → claimed (its create request), beyond `settle`.
async fn intake(n: usize) -> (f64, f64) {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&config(
        &fake.url,
        8,
        "watch:\n  settle: 500ms\n  sidecar_wait: 0s\n",
    ));
    let child = spawn("watch", studio.root(), true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut written = Vec::new();
    for i in 0..n {
        let name = format!("inbox/l{i:03}.png");
        let bytes = png_bytes(6 + i as u32, 6);
        studio.put(&name, &bytes);
        written.push((Instant::now(), bytes));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let creates = fake.seen();
    let mut lat = Vec::new();
    for (at, bytes) in &written {
        let uri = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        if let Some(c) = creates.iter().find(|s| {
            s.body
                .as_ref()
                .is_some_and(|b| b["promptImage"] == uri.as_str())
        }) {
            lat.push((c.at - *at).as_secs_f64() * 1000.0 - 500.0);
        }
    }
    stop(child);
    (median(lat.clone()), percentile(lat, 0.99))
}

fn stop(child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut c = child;
    let _ = c.wait();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    // An optional section number runs that section alone; BACKLOG overrides its size.
    let only = std::env::args().nth(2);
    let on = |n: &str| only.as_deref().is_none_or(|o| o == n);
    let backlog_n: usize = std::env::var("BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    assert!(
        bin().exists(),
        "build the binary first: cargo build --release"
    );
    println!("| figure | dropreel | naive / baseline | target |");
    println!("|---|---|---|---|");
    for conc in [2, 5].into_iter().filter(|_| on("1")) {
        let (eff, calls) = makespan(runs, 40, conc).await;
        let naive_eff = if conc == 2 {
            // The sequential script on 12 of the images (its efficiency does not depend on N).
            let fake = server(conc, Duration::from_secs(2)).await;
            let dir = tempfile::tempdir().unwrap();
            let imgs: Vec<Vec<u8>> = (0..12).map(|i| png_bytes(5 + i, 5)).collect();
            let (took, _) = naive(&fake, &imgs, dir.path()).await;
            format!("{:.2}", 12.0 / conc as f64 * 2.0 / took)
        } else {
            "–".into()
        };
        println!(
            "| 1. makespan efficiency, 40 images, concurrency {conc}, 2 s tasks (median of {runs}) | {eff:.3} ({calls:.1} calls/task) | {naive_eff} | ≥ 0.97 |"
        );
    }
    let mut fixed: Option<(f64, f64)> = None;
    for interval in ["5s", "10s"].into_iter().filter(|_| on("2")) {
        let (oc, od, nc, nd) = detection(5, interval, &mut fixed).await;
        println!(
            "| 2. HTTP requests per task, 30–33 s tasks, `poll_interval: {interval}` | {oc:.1} | {nc:.1} (fixed 5 s poller) | fewer than the fixed poller |"
        );
        println!(
            "| 2. completion-detection delay, median, `poll_interval: {interval}` | {:.0} ms | {:.0} ms | < 1 s |",
            od * 1000.0,
            nd * 1000.0
        );
    }
    if on("3") {
        let (med, p99) = intake(20).await;
        println!(
            "| 3. intake latency beyond settle, median / p99 | {med:.0} / {p99:.0} ms | – | < 50 ms |"
        );
    }
    if on("4") {
        let task_ms: u64 = std::env::var("TASK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        // FOLDERS=100 runs the spread-out backlog alone.
        let cases: Vec<usize> = std::env::var("FOLDERS").map_or(vec![0, 100], |v| {
            v.split(',').filter_map(|f| f.trim().parse().ok()).collect()
        });
        for folders in cases {
            let label = match folders {
                0 => String::new(),
                f => format!(" over {f} folders"),
            };
            let (first, all, eff, peak, quarter) = backlog(backlog_n, folders, 5, task_ms).await;
            println!(
                "| 4. backlog of {backlog_n}{label}: first submit after start | {first:.2} s | – | ≤ 1 s |"
            );
            println!(
                "| 4. backlog of {backlog_n}{label}: all done / efficiency (concurrency 5, {task_ms} ms tasks) | {all:.1} s / {eff:.3} | – | ≥ 0.97 |"
            );
            println!(
                "| 4. backlog of {backlog_n}{label}: peak RSS (at 25 % done) | {peak:.1} MiB ({quarter:.1} MiB) | – | < 60 MB, flat |"
            );
        }
    }
    if on("5") {
        let (cpu, rss) = idle(0, 30).await;
        println!(
            "| 5. idle, empty inbox: CPU over 30 s / RSS | {cpu:.2} s / {rss:.1} MiB | – | < 0.1 s |"
        );
        let (cpu, rss) = idle(10_000, 30).await;
        println!(
            "| 5. idle, 10 000 ignored files: CPU over 30 s / RSS | {cpu:.2} s / {rss:.1} MiB | – | < 0.1 s |"
        );
        let (cpu, rss) = idle_ui(false, 30).await;
        println!(
            "| 5. idle with the dashboard on, no page open: CPU over 30 s / RSS | {cpu:.2} s / {rss:.1} MiB | – | < 0.1 s |"
        );
        let (cpu, rss) = idle_ui(true, 30).await;
        println!(
            "| 5. idle with the dashboard on, one page open: CPU over 30 s / RSS | {cpu:.2} s / {rss:.1} MiB | – | < 0.1 s |"
        );
    }
    if on("7") {
        let mut effs = Vec::new();
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut plains = Vec::new();
        for _ in 0..runs {
            let (took, eff, cpu) = fast_backlog(300, 5, 200).await;
            walls.push(took);
            effs.push(eff);
            cpus.push(cpu);
            plains.push(plain_loop(300, 5, 200).await);
        }
        println!(
            "| 7. 300 tiny PNGs, concurrency 5, 200 ms tasks, `max_in_flight: 5`, `poll_interval: 100ms`, `run`: wall / efficiency / CPU (median of {runs}) | {:.1} s / {:.3} / {:.2} s | {:.3} (plain concurrent loop, 200 ms polls) | ≥ 0.85 |",
            median(walls),
            median(effs),
            median(cpus),
            median(plains)
        );
    }
    if on("6") {
        let (mb, peak, took) = one_big_file("big.png", png_bytes(2600, 2600)).await;
        println!(
            "| 6. {mb:.0} MB PNG via upload: peak RSS / time | {peak:.1} MiB / {took:.2} s | – | < 3× file size |"
        );
        let (mb, peak, took) = one_big_file("scan.tif", big_tiff()).await;
        println!(
            "| 6. 24 MP TIFF ({mb:.0} MB) converted to PNG and uploaded: peak RSS / time | {peak:.1} MiB / {took:.2} s | – | < 64 MiB |"
        );
    }
}
