//! The budget: spend counted in `ROOT/.dropreel/spend/` just before each create request, summed
//! across instances; the next job that would pass a limit holds submission for all (nothing goes to
//! `failed/`), a `run` then exits 4 with what was never sent back in `inbox/`; nothing is claimed
//! while it holds; a job dearer than a whole limit fails at once; a model of unknown price waits
//! alone; a kill -9 around a submit, or on the way back to `inbox/`, never under-counts or loses a
//! file.

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
    let Scene { fake, studio } = Scenario::new()
        .runway("max_in_flight", "1")
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
        .start()
        .await;
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
    // See: issue 21, item 5 — the run's end under the budget was said once per job left.
    let ended = logs
        .lines()
        .filter(|l| l.contains("nothing else is in flight"))
        .count();
    assert_eq!(ended, 1, "one line for the run's end: {logs}");
    assert!(
        logs.contains("50 of 60 credits spent today"),
        "the hold names the spend and the limit: {logs}"
    );
    // The other three wait for the next run, in inbox/.
    assert_eq!(
        studio.list("inbox").len(),
        3,
        "{:?}",
        all_files(studio.root())
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
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.create_latency = Duration::from_millis(400))
        .runway("max_in_flight", "1")
        .watch("lease", "600ms")
        .yaml("budget:\n  daily_credits: 100000\n")
        .start()
        .await;
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

/// The job folders in `processing/` (dropreel's own dot files aside).
fn job_folders(studio: &Studio) -> Vec<String> {
    studio
        .list("processing")
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect()
}

// See: issue 21, item 4 — a run ended by the budget left never-sent jobs in processing/, which
// status called "in flight", some claimed after the hold began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ended_by_the_budget_puts_every_job_never_sent_back_into_inbox() {
    let fake = FakeRunway::start(Switches::default()).await;
    let config = |daily: u32| {
        TestConfig::new(&fake.url)
            .extra(&format!(
                "defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: {daily}\n"
            ))
            .yaml()
    };
    let studio = Studio::new(&config(60));
    std::fs::create_dir_all(studio.path("inbox/client")).unwrap();
    for i in 0..3 {
        studio.put(&format!("inbox/b{i}.png"), &png_bytes(8 + i, 8));
    }
    for i in 3..6 {
        studio.put(&format!("inbox/client/b{i}.png"), &png_bytes(8 + i, 8));
        studio.put(
            &format!("inbox/client/b{i}.yaml"),
            b"prompt: slow push-in\n",
        );
    }
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(4), "{logs}");
    assert_eq!(fake.tasks_created(), 2);
    assert!(
        job_folders(&studio).is_empty(),
        "nothing never sent stays in processing/: {:?}",
        all_files(studio.root())
    );
    // Each file back under its own name in its own folder, with its sidecar.
    let waiting: Vec<String> = all_files(studio.root())
        .into_iter()
        .filter(|f| f.starts_with("inbox/"))
        .collect();
    let images: Vec<&String> = waiting.iter().filter(|f| f.ends_with(".png")).collect();
    assert_eq!(images.len(), 4, "{waiting:?}");
    for f in images {
        let n: usize = f[f.len() - 5..f.len() - 4].parse().unwrap();
        let folder = if n >= 3 { "inbox/client/" } else { "inbox/" };
        assert!(f.starts_with(folder), "{f} is not in its own folder");
        if n >= 3 {
            let sidecar = f.replace(".png", ".yaml");
            assert!(waiting.contains(&sidecar), "{sidecar} is not beside it");
        }
    }
    let shown = status(studio.root());
    assert!(shown.contains("0 jobs in flight"), "{shown}");
    // The next run with the limit raised makes them all (their dedupe keys were given up).
    studio.put("dropreel.yaml", config(1000).as_bytes());
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(fake.tasks_created(), 6);
    assert_eq!(studio.list("inbox"), ["client"]);
    assert!(studio.list("inbox/client").is_empty());
    assert!(studio.path("done/client/b5.yaml").exists());
}

// See: issue 21, item 4 — under watch, files were claimed while the budget held (slots freed by
// the tasks in flight were filled with jobs that could not be sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_watch_nothing_is_claimed_while_the_budget_holds() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.concurrency = 3)
        .fake(|s| s.task_time = Duration::from_millis(500))
        .runway("max_in_flight", "3")
        .watch("lease", "400ms")
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
        .start()
        .await;
    for i in 0..6 {
        studio.put(&format!("inbox/w{i}.png"), &png_bytes(8 + i, 8));
    }
    let child = spawn_watch(studio.root());
    until("the budget's hold", Duration::from_secs(10), || {
        std::panic::catch_unwind(|| instance_file(&studio)).is_ok_and(|v| v["hold"].is_object())
    })
    .await;
    until("the two jobs sent", Duration::from_secs(10), || {
        studio.list("done").len() == 6
    })
    .await;
    // Two slots freed while the budget holds: nothing fills them (the instance drives no more
    // than the jobs claimed before the hold, less the two delivered).
    until(
        "the instance to drive at most the jobs claimed before the hold",
        Duration::from_secs(10),
        || {
            std::panic::catch_unwind(|| instance_file(&studio))
                .is_ok_and(|v| v["jobs"].as_u64() <= Some(2))
        },
    )
    .await;
    sigterm(&child);
    let (code, logs) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(fake.tasks_created(), 2);
    assert!(
        job_folders(&studio).len() <= 2,
        "{:?}",
        all_files(studio.root())
    );
    assert!(
        studio.list("inbox").len() >= 2,
        "{:?}",
        all_files(studio.root())
    );
    assert!(studio.list("failed").is_empty());
}

// See: issue 21, item 4 — a kill on the way back to inbox/ must lose nothing: the next start
// finishes the return (here the sidecar was back, the image not yet) and the pair is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_caught_half_way_back_to_inbox_is_put_back_whole_by_the_next_start() {
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put("inbox/half.png", &png_bytes(12, 8));
    studio.put("inbox/half.yaml", b"prompt: from the sidecar\n");
    let settings = studio.settings(KEY);
    let limits =
        dropreel::backend::Backend::limits(&dropreel::backend::Chosen::build(&settings).unwrap());
    let admitted = dropreel::run::admit::check_files(
        &studio.path("inbox"),
        &settings,
        &limits,
        "half.png",
        Some("half.yaml"),
        None,
    )
    .unwrap_or_else(|_| panic!("a good job"));
    let spool = dropreel::studio::spool::Spool::open(studio.root()).unwrap();
    let source = dropreel::studio::source::Source::in_inbox("half.png");
    let claimed = spool
        .claim(&source, Some("half.yaml"), None, false)
        .unwrap()
        .unwrap();
    let mut rec = dropreel::studio::spool::JobRecord::new(
        claimed.id.clone(),
        source,
        claimed.sidecar,
        admitted.info,
        admitted.spec,
        "runway",
    );
    rec.kind = admitted.kind;
    spool.save(&rec).unwrap();
    // What a kill leaves after the first move back: job.json says so, the sidecar is back.
    let state = studio.path(&format!("processing/{}/job.json", claimed.id));
    let mut json: serde_json::Value =
        serde_json::from_str(&studio.read(&format!("processing/{}/job.json", claimed.id))).unwrap();
    json["returning"] = serde_json::Value::Bool(true);
    std::fs::write(&state, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    std::fs::rename(
        studio.path(&format!("processing/{}/half.yaml", claimed.id)),
        studio.path("inbox/half.yaml"),
    )
    .unwrap();
    // The instance that was killed holds no lease any more.
    spool.release(&claimed.id);
    studio.run().await.outcome(1, 0);
    assert_eq!(fake.tasks_created(), 1);
    assert_eq!(
        fake.prompts(),
        ["from the sidecar"],
        "made with its sidecar"
    );
    assert!(studio.list("inbox").is_empty());
    assert!(job_folders(&studio).is_empty());
    studio.assert_listing(
        "done",
        &["half.mp4", "half.png", "half.result.json", "half.yaml"],
    );
}

// See: issue 21, item 2 — a job priced above the whole daily limit held every job forever with 0
// credits spent, saying the budget was reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_dearer_than_the_whole_daily_budget_fails_at_once_and_the_rest_flow() {
    let Scene { fake, studio } = Scenario::new()
        .runway("max_in_flight", "1")
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
        .start()
        .await;
    studio.put("inbox/a-dear.png", &png_bytes(16, 9));
    studio.put("inbox/a-dear.yaml", b"model: veo3.1_fast\nduration: 8\n");
    for i in 0..2 {
        studio.put(&format!("inbox/c{i}.png"), &png_bytes(8 + i, 8));
    }
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(1), "a job failed: {logs}");
    assert_eq!(fake.tasks_created(), 2, "the others were made");
    assert!(fake.created().iter().all(|b| b["model"] == "gen4_turbo"));
    let e = studio.read("failed/a-dear.error.txt");
    for part in [
        "80 credits",
        "60",
        "budget.daily_credits",
        "duration",
        "cheaper model",
    ] {
        assert!(e.contains(part), "{part} missing from: {e}");
    }
    assert!(!logs.contains("Submission paused"), "no hold: {logs}");
    // `estimate` says the same before anything is sent.
    studio.put("inbox/b-dear.png", &png_bytes(16, 9));
    studio.put("inbox/b-dear.yaml", b"model: veo3.1_fast\nduration: 8\n");
    let out = std::process::Command::new(dropreel_bin())
        .args(["estimate", studio.root().to_str().unwrap(), "--json"])
        .env("RUNWAYML_API_SECRET", KEY)
        .output()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["failing"][0]["file"], "b-dear.png", "{e}");
    let reason = e["failing"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("80 credits"), "{reason}");
}

// See: issue 21, item 2 — under a budget, a model with no known price held the priced jobs too.
// It waits alone in inbox/ (said once, naming budget.rates); the others are made; the run exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_budget_a_model_of_unknown_price_waits_alone_and_the_rest_flow() {
    let Scene { fake, studio } = Scenario::new()
        .runway("max_in_flight", "1")
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 100\n")
        .start()
        .await;
    studio.put("inbox/a-odd.png", &png_bytes(16, 9));
    studio.put("inbox/a-odd.yaml", b"model: seedance2_fast\n");
    for i in 0..2 {
        studio.put(&format!("inbox/p{i}.png"), &png_bytes(8 + i, 8));
    }
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(4), "work waits for the budget: {logs}");
    assert_eq!(fake.tasks_created(), 2, "the priced jobs were made: {logs}");
    assert_eq!(studio.list("inbox"), ["a-odd.png", "a-odd.yaml"]);
    assert!(job_folders(&studio).is_empty());
    let told: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("budget.rates") && l.contains("a-odd.png"))
        .collect();
    assert_eq!(told.len(), 1, "said once: {logs}");
    assert!(told[0].contains("seedance2_fast"), "{}", told[0]);
    assert!(
        !logs.contains("Submission paused"),
        "nothing else held: {logs}"
    );
}
