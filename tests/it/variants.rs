//! Variants: `variants: N` makes N takes of one input, seeds S, S+1, … (or random, recorded),
//! `<stem>-v1.mp4` …; done/ when any take succeeded (failures listed, `run` exits 1), failed/ only
//! when all failed; a kill -9 never resubmits a take that was submitted.

use std::time::Duration;

use dropreel::run::pipeline::Mode;

use crate::support::*;

// See: issue 12, item 3 — seeds S, S+1, S+2; one result.json listing each; reused when dropped again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_variants_with_a_seed_send_consecutive_seeds_and_deliver_three_videos() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let img = png_distinct(16, 9);
    studio.put("inbox/cat.png", &img);
    studio.put(
        "inbox/cat.yaml",
        b"prompt: three takes\nvariants: 3\nseed: 100\n",
    );
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    assert_eq!(summary.exit_code(Mode::Run, None), 0);
    let mut seeds: Vec<u64> = fake
        .created()
        .iter()
        .map(|b| b["seed"].as_u64().unwrap())
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, [100, 101, 102]);
    studio.assert_listing(
        "done",
        &[
            "cat-v1.mp4",
            "cat-v2.mp4",
            "cat-v3.mp4",
            "cat.png",
            "cat.result.json",
            "cat.yaml",
        ],
    );
    let r = studio.json("done/cat.result.json");
    let takes = r["variants"].as_array().unwrap();
    assert_eq!(takes.len(), 3);
    for (i, t) in takes.iter().enumerate() {
        assert_eq!(t["n"], i + 1);
        assert_eq!(t["seed"], 100 + i);
        assert_eq!(t["file"], format!("cat-v{}.mp4", i + 1));
        assert!(t["task_id"].is_string() && t["failed"].is_null(), "{t}");
    }
    assert_eq!(r["credits"], 75, "3 × gen4_turbo 5 s");

    // Dropped again: all three reused, no request.
    studio.put("inbox/cat.png", &img);
    studio.put(
        "inbox/cat.yaml",
        b"prompt: three takes\nvariants: 3\nseed: 100\n",
    );
    studio.run().await;
    assert_eq!(fake.tasks_created(), 3);
    for n in 1..=3 {
        assert!(studio.path(&format!("done/cat-2-v{n}.mp4")).exists());
    }
    assert_eq!(studio.json("done/cat-2.result.json")["credits"], 0);
}

// See: issue 12, item 3 — without a seed each take gets its own, recorded; variants from a preset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_without_a_seed_get_random_recorded_seeds() {
    let Scene { fake, studio } = Scenario::new()
        .yaml("presets:\n  takes:\n    variants: 2\n")
        .start()
        .await;
    std::fs::create_dir_all(studio.path("inbox/takes")).unwrap();
    studio.put("inbox/takes/dog.png", &png_distinct(16, 9));
    studio.run().await;
    let sent: Vec<u64> = fake
        .created()
        .iter()
        .map(|b| b["seed"].as_u64().expect("a seed is sent"))
        .collect();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1]);
    let r = studio.json("done/takes/dog.result.json");
    let mut recorded: Vec<u64> = r["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seed"].as_u64().unwrap())
        .collect();
    recorded.sort_unstable();
    let mut sent = sent;
    sent.sort_unstable();
    assert_eq!(recorded, sent);
}

// See: issue 12, item 3 — one take failing: done/ with the failure listed, exit 1; all failing: failed/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_take_is_listed_and_only_all_failing_fails_the_job() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.failure_codes = ["SAFETY.INPUT.IMAGE".to_string()].into())
        .start()
        .await;
    studio.put("inbox/fox.png", &png_distinct(16, 9));
    studio.put("inbox/fox.yaml", b"variants: 3\n");
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    assert_eq!(
        summary.exit_code(Mode::Run, None),
        1,
        "a failed take makes run exit 1"
    );
    let r = studio.json("done/fox.result.json");
    let takes = r["variants"].as_array().unwrap();
    let failed: Vec<_> = takes.iter().filter(|t| !t["failed"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{r}");
    assert!(failed[0]["file"].is_null());
    assert!(
        failed[0]["failed"]["reason"]
            .as_str()
            .unwrap()
            .contains("moderation"),
        "{r}"
    );
    let videos = studio
        .list("done")
        .into_iter()
        .filter(|f| f.ends_with(".mp4"))
        .count();
    assert_eq!(videos, 2);
    // What Runway charged (issue 23): the two videos made, and the take refused by moderation,
    // whose credits Runway does not refund.
    assert_eq!(r["credits"], 75, "what Runway charged for the three tasks");

    fake.set(|s| s.failure_codes = vec!["SAFETY.INPUT.IMAGE".to_string(); 2].into());
    studio.put("inbox/owl.png", &png_distinct(16, 9));
    studio.put("inbox/owl.yaml", b"variants: 2\n");
    studio.run().await.outcome(0, 1);
    let text = studio.read("failed/owl.error.txt");
    assert!(
        text.contains("all 2 variants failed")
            && text.contains("take 1")
            && text.contains("take 2"),
        "{text}"
    );
}

// See: issue 12, item 3 — every take is crash-safe like a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_with_takes_in_flight_never_resubmits_a_take() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(1500))
        .fake(|s| s.concurrency = 4)
        .runway("max_in_flight", "4")
        .watch("lease", "600ms")
        .start()
        .await;
    studio.put("inbox/owl.png", &png_distinct(16, 9));
    studio.put("inbox/owl.yaml", b"variants: 3\nseed: 7\n");
    let mut child = spawn_watch(studio.root());
    // Submitted on the server and written so (a kill between the two is the create request's
    // window, where a take is rightly sent again).
    let takes_written = || {
        studio.list("processing").iter().any(|id| {
            (1..=3).all(|n| {
                std::fs::read_to_string(studio.path(&format!("processing/{id}/variant-{n}.json")))
                    .is_ok_and(|t| t.contains("\"state\": \"submitted\""))
            })
        })
    };
    until("all three takes submitted", Duration::from_secs(10), || {
        fake.tasks_created() == 3 && takes_written()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let shown = status(studio.root());
    assert!(
        shown.contains("takes: v1 ") && shown.contains("v3 "),
        "status shows each take: {shown}"
    );
    let child = spawn_watch(studio.root());
    studio
        .appears("done/owl.result.json", Duration::from_secs(20))
        .await;
    sigterm(&child);
    let (_, logs) = wait_exit(child, Duration::from_secs(10)).await;
    assert_eq!(
        fake.count("POST", "/v1/image_to_video"),
        3,
        "no take was sent again: {logs}"
    );
    for n in 1..=3 {
        assert!(studio.path(&format!("done/owl-v{n}.mp4")).exists());
    }
}

// See: issue 21, item 3 — variants under a budget: two takes sent, the third held, and the run
// never ended (the paid takes sat undelivered). The takes made are delivered, the held one is
// listed as held (not failed), nothing stays in processing/, and the run exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_under_a_budget_deliver_the_paid_takes_and_the_run_exits_4() {
    let Scene { fake, studio } = Scenario::new()
        .yaml("defaults:\n  model: gen4_turbo\n  duration: 5\nbudget:\n  daily_credits: 60\n")
        .start()
        .await;
    studio.put("inbox/cat.png", &png_distinct(16, 9));
    studio.put("inbox/cat.yaml", b"variants: 3\nseed: 10\n");
    let summary = studio.run_with_key(KEY, Duration::from_secs(20)).await;
    assert_eq!(summary.exit_code(Mode::Run, None), 4, "{summary:?}");
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    assert_eq!(fake.tasks_created(), 2);
    let videos: Vec<String> = studio
        .list("done")
        .into_iter()
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    assert_eq!(videos.len(), 2, "the paid takes: {videos:?}");
    let r = studio.json("done/cat.result.json");
    assert_eq!(r["credits"], 50);
    let takes = r["variants"].as_array().unwrap();
    let held: Vec<&serde_json::Value> = takes.iter().filter(|t| t["held"].is_object()).collect();
    assert_eq!(held.len(), 1, "{r}");
    assert!(
        held[0]["failed"].is_null() && held[0]["file"].is_null(),
        "{r}"
    );
    assert!(
        held[0]["held"]["reason"]
            .as_str()
            .unwrap()
            .contains("50 of 60 credits"),
        "{r}"
    );
    assert!(studio.list("failed").is_empty());
    assert!(
        studio.list("processing").iter().all(|n| n.starts_with('.')),
        "{:?}",
        studio.list("processing")
    );
}
