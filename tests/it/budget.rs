//! The budget: spend counted in `ROOT/.dropreel/spend/` just before each create request, summed
//! across instances; the next job that would pass a limit holds submission for all (nothing goes to
//! `failed/`), a `run` then exits 4; a kill -9 around a submit never under-counts.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Every spend line written so far: (job, credits, uncertain).
fn spend_lines(root: &Path) -> Vec<(String, u64, bool)> {
    let dir = root.join(".dropreel/spend");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_name().to_string_lossy().ends_with(".jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push((
                v["job"].as_str().unwrap().to_string(),
                v["credits"].as_u64().unwrap(),
                v["uncertain"].as_bool().unwrap_or(false),
            ));
        }
    }
    out
}

// See: issue 12, item 5 — 60 credits a day, 25-credit jobs (gen4_turbo, 5 s): two run, the rest
// hold, `run` exits 4, nothing in failed/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_lets_two_jobs_run_then_holds_the_rest_and_run_exits_4() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .runway("max_in_flight", "1")
            .extra("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
            .yaml(),
    );
    for i in 0..5 {
        studio.put(&format!("inbox/b{i}.png"), &png_bytes(8 + i, 8));
    }
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(4), "{logs}");
    assert_eq!(fake.tasks_created(), 2, "two jobs fit 60 credits");
    assert_eq!(studio.list("done").len(), 6, "two jobs delivered");
    assert!(
        studio.list("failed").is_empty(),
        "a budget never fails a job"
    );
    let held = logs
        .lines()
        .filter(|l| l.contains("Submission paused") && l.contains("Budget"))
        .count();
    assert_eq!(held, 1, "one line for the hold: {logs}");
    assert!(
        logs.contains("50 of 60 credits spent today"),
        "the hold names the spend and the limit: {logs}"
    );
    // The other three wait for the next run: in inbox/, or claimed and never sent.
    let waiting = studio.list("inbox").len() + studio.job_states().len();
    assert_eq!(waiting, 3, "{:?}", all_files(studio.root()));
    assert!(
        studio.job_states().iter().all(|s| s == "claimed"),
        "{:?}",
        studio.job_states()
    );
    let lines = spend_lines(studio.root());
    assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), 50, "{lines:?}");
    let shown = status(studio.root());
    assert!(
        shown.contains("today 50 of 60 credits"),
        "status shows the spend: {shown}"
    );
    // A second run the same day submits nothing more.
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(4), "{logs}");
    assert_eq!(fake.tasks_created(), 2);
}

// See: issue 12, item 5 — spend is written before the create request: a kill -9 with the request
// on the wire leaves it counted, and its uncertain resubmission counts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_budgeted_submit_never_under_counts() {
    let fake = FakeRunway::start(Switches {
        create_latency: Duration::from_millis(400),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .runway("max_in_flight", "1")
            .watch("lease", "600ms")
            .extra("budget:\n  daily_credits: 100000\n")
            .yaml(),
    );
    for i in 0..2 {
        studio.put(&format!("inbox/k{i}.png"), &png_bytes(8 + i, 8));
    }
    let mut child = spawn_watch(studio.root());
    until(
        "a create request on the wire",
        Duration::from_secs(10),
        || studio.job_states().iter().any(|s| s == "submitting"),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = spend_lines(studio.root());
    assert_eq!(
        after_kill.len(),
        1,
        "counted before it was sent: {after_kill:?}"
    );
    let child = spawn_watch(studio.root());
    until("both videos", Duration::from_secs(20), || {
        studio.list("done").len() == 6
    })
    .await;
    sigterm(&child);
    let (_, logs) = wait_exit(child, Duration::from_secs(10)).await;
    let lines = spend_lines(studio.root());
    let creates = fake.count("POST", "/v1/image_to_video");
    assert!(
        lines.len() >= creates,
        "{} spend lines for {creates} create requests: {lines:?}\n{logs}",
        lines.len()
    );
    assert!(
        lines.iter().any(|l| l.2),
        "the resubmission after the kill is marked uncertain: {lines:?}"
    );
    let total: u64 = lines.iter().map(|l| l.1).sum();
    assert!(total >= 25 * fake.tasks_created() as u64, "{lines:?}");
}
