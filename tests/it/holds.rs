//! Systemic faults against the real binary: a key revoked mid-run, the quota used up, the API host
//! gone and back on the same port. No job goes to `failed/`; submission pauses with one log line that
//! names the cause and the next try; `dropreel status` shows the hold; work resumes by itself.

use std::time::Duration;

use crate::support::*;

fn config(url: &str) -> String {
    TestConfig::new(url)
        .runway("retry_min", "50ms")
        .runway("retry_max", "250ms")
        .runway("max_in_flight", "1")
        .watch("settle", "30ms")
        .watch("sidecar_wait", "10ms")
        .watch("lease", "800ms")
        .yaml()
}

/// Waits until the three jobs are in done/, stops the instance, and returns its logs.
async fn all_three_done_then_stop(studio: &Studio, child: Tailed) -> String {
    until("all videos", Duration::from_secs(20), || {
        studio.list("done").len() == 9
    })
    .await;
    sigterm(child.child());
    let (code, logs) = child.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{logs}");
    logs
}

/// The log lines (JSON) that announce a pause.
fn pause_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("Submission paused"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_mid_run_pauses_everything_until_it_works_again() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&config(&fake.url));
    for i in 0..4 {
        studio.put(&format!("inbox/k{i}.png"), &png_bytes(8 + i, 8));
    }
    let child = spawn_watch(studio.root());
    until("the first video", Duration::from_secs(10), || {
        studio.list("done").len() >= 3
    })
    .await;
    fake.set(|s| s.key = "key_revoked".into());
    until("several refusals", Duration::from_secs(10), || {
        fake.seen().iter().filter(|s| s.status == 401).count() >= 4
    })
    .await;
    let shown = status(studio.root());
    assert!(
        shown.contains("SUBMISSION PAUSED") && shown.contains("refused the API key"),
        "{shown}"
    );
    assert!(
        studio.list("failed").is_empty(),
        "a revoked key never fails a job"
    );
    fake.set(|s| s.key = KEY.into());
    until("all videos", Duration::from_secs(20), || {
        studio.list("done").len() == 12
    })
    .await;
    until(
        "the hold to clear in status",
        Duration::from_secs(5),
        || !status(studio.root()).contains("PAUSED"),
    )
    .await;
    sigterm(&child);
    let (code, logs) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
    let pauses = pause_lines(&logs);
    assert_eq!(
        pauses.len(),
        1,
        "one line per hold, not one per retry: {pauses:#?}"
    );
    assert!(pauses[0].contains("next_try"), "{}", pauses[0]);
    assert!(logs.contains("submission resumes"), "{logs}");
    assert!(studio.list("failed").is_empty());
    assert_eq!(fake.created().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_is_waited_out_never_earlier_than_retry_after() {
    let fake = FakeRunway::start(Switches {
        rate_limited: 4,
        retry_after: Some("0.4".into()),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&config(&fake.url));
    for i in 0..3 {
        studio.put(&format!("inbox/q{i}.png"), &png_bytes(8 + i, 8));
    }
    let child = Tailed::new(spawn_watch(studio.root()));
    let logs = all_three_done_then_stop(&studio, child).await;
    assert!(studio.list("failed").is_empty());
    assert_eq!(fake.created().len(), 3);
    let creates: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/image_to_video")
        .collect();
    for pair in creates.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(400),
                "a create {gap:?} after a 429 asking for 0.4 s"
            );
        }
    }
    assert_eq!(pause_lines(&logs).len(), 1, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_host_is_waited_for_and_work_resumes_when_it_returns() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&config(&fake.url));
    fake.stop().await;
    for i in 0..3 {
        studio.put(&format!("inbox/u{i}.png"), &png_bytes(8 + i, 8));
    }
    let child = Tailed::new(spawn_watch_with(studio.root(), &["-v"]));
    until("the hold in status", Duration::from_secs(10), || {
        status(studio.root()).contains("cannot be reached")
    })
    .await;
    // Two probes failed since the hold began.
    child
        .logged("still paused", 2, Duration::from_secs(10))
        .await;
    assert!(
        studio.list("failed").is_empty(),
        "an unreachable API never fails a job"
    );
    assert!(studio.list("done").is_empty());
    // The host comes back on the same port.
    fake.restart().await;
    let logs = all_three_done_then_stop(&studio, child).await;
    assert_eq!(pause_lines(&logs).len(), 1, "{logs}");
    assert!(logs.contains("cannot be reached"), "{logs}");
    assert_eq!(fake.created().len(), 3);
}
