//! The pipeline on tokio's paused clock, with a scripted backend: the slots kept full, bad input
//! failed without a slot, a stopped run resumed — real folders, real admission and delivery, and
//! time that only passes when every task waits (so the figures below are exact, not timed).

use std::sync::Arc;
use std::time::Duration;

use dropreel_testkit::{Studio, png_distinct};
use tokio::time::Instant;

use super::{Mode, Summary, run};
use crate::backend::scripted::{Plan, Scripted};
use crate::config::{Env, Settings};
use crate::studio::record::State;

const CONFIG: &str = "backend: local\nwatch:\n  settle: 50ms\n  sidecar_wait: 0s\n";

fn studio(images: &[&str]) -> (Studio, Settings) {
    let studio = Studio::new(CONFIG);
    for (i, name) in images.iter().enumerate() {
        let seed = u32::try_from(i).unwrap_or(0) + 1;
        studio.put(
            &format!("inbox/{name}"),
            &png_distinct(32 + seed, 18 + seed),
        );
    }
    let settings = Settings::load(studio.root(), None, &Env::from_pairs([])).unwrap();
    (studio, settings)
}

async fn run_to_end(settings: &Settings, backend: &Arc<Scripted>) -> Summary {
    run(settings, backend.clone(), Mode::Run, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_run_keeps_every_slot_busy_until_the_inbox_is_drained() {
    let names = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"];
    let (studio, settings) = studio(&names);
    let backend = Scripted::new(2, |_| Plan::Deliver(Duration::from_secs(10)));
    let t0 = Instant::now();
    let summary = run_to_end(&settings, &backend).await;
    let took = t0.elapsed();

    assert_eq!(summary.succeeded, 6, "{summary:?}");
    assert_eq!(summary.exit_code(Mode::Run, None), 0);
    assert_eq!(backend.most_busy(), 2);
    // Three rounds of two 10 s jobs: each slot is taken again the moment it frees.
    let calls = backend.calls();
    assert_eq!(calls.len(), 6);
    for pair in calls.windows(3) {
        let freed = pair[0].ended.unwrap().min(pair[1].ended.unwrap());
        assert!(
            pair[2].started - freed < Duration::from_millis(50),
            "a slot stayed empty: {calls:#?}"
        );
    }
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    assert_eq!(studio.list("inbox"), Vec::<String>::new());
    for name in names {
        let stem = name.trim_end_matches(".png");
        assert!(studio.path(&format!("done/{stem}.mp4")).is_file(), "{stem}");
    }
}

#[tokio::test(start_paused = true)]
async fn bad_input_fails_at_once_without_taking_a_slot() {
    let (studio, settings) = studio(&["good.png"]);
    studio.put("inbox/broken.png", b"a text file named like a picture");
    let backend = Scripted::new(1, |_| Plan::Deliver(Duration::from_secs(60)));
    let summary = run_to_end(&settings, &backend).await;

    assert_eq!((summary.succeeded, summary.failed), (1, 1), "{summary:?}");
    assert_eq!(summary.exit_code(Mode::Run, None), 1);
    let calls = backend.calls();
    assert_eq!(
        calls.len(),
        1,
        "only the good file reaches the backend: {calls:#?}"
    );
    assert_eq!(calls[0].file, "good.png");
    let error = studio.read("failed/broken.error.txt");
    assert!(error.contains("broken.png"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fails_goes_to_failed_and_the_others_go_on() {
    let (studio, settings) = studio(&["a.png", "b.png", "c.png"]);
    let backend = Scripted::new(2, |name| match name {
        "b.png" => Plan::Fail(Duration::from_secs(1), "b cannot be made"),
        _ => Plan::Deliver(Duration::from_secs(5)),
    });
    let summary = run_to_end(&settings, &backend).await;

    assert_eq!((summary.succeeded, summary.failed), (2, 1), "{summary:?}");
    assert!(
        studio
            .read("failed/b.error.txt")
            .contains("b cannot be made")
    );
    assert!(studio.path("failed/b.png").is_file());
    assert!(studio.path("done/a.mp4").is_file() && studio.path("done/c.mp4").is_file());
}

#[tokio::test(start_paused = true)]
async fn a_stopped_run_leaves_its_job_in_processing_and_the_next_run_resumes_it() {
    let (studio, settings) = studio(&["slow.png"]);
    let backend = Scripted::new(1, |_| Plan::Deliver(Duration::from_secs(20)));
    // Stopped 5 s into the job: its state stays in processing/ for the next start.
    let stop = tokio::time::sleep(Duration::from_secs(5));
    let summary = run(&settings, backend.clone(), Mode::Run, stop)
        .await
        .unwrap();
    assert!(summary.stopped, "{summary:?}");
    assert_eq!(summary.exit_code(Mode::Run, Some(15)), 143);
    assert_eq!(studio.list("inbox"), Vec::<String>::new());
    assert_eq!(studio.job_states(), ["claimed"]);

    let summary = run_to_end(&settings, &backend).await;
    assert_eq!(summary.succeeded, 1, "{summary:?}");
    let calls = backend.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].job, calls[1].job, "the same job, resumed");
    assert_eq!(calls[1].state, State::Claimed);
    assert!(
        calls[0].ended.is_none(),
        "the first was stopped: {calls:#?}"
    );
    assert!(studio.path("done/slow.mp4").is_file());
    assert_eq!(
        studio
            .list("processing")
            .iter()
            .filter(|n| !n.starts_with('.'))
            .count(),
        0
    );
}
