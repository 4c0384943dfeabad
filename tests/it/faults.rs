//! Faults against the fake Runway API, end to end: rate limits and Retry-After, server errors,
//! task failure codes, expired and cut downloads, a wrong key in `watch` and in `run`, lost create
//! answers, a disk or a folder that refuses, a damaged job state.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_retry_after_is_honoured() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.rate_limited = 1)
        .fake(|s| s.retry_after = Some("1".into()))
        .start()
        .await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    let creates: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/image_to_video")
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[0].status, 429);
    let gap = creates[1].at - creates[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, before Retry-After"
    );
    assert!(studio.list("failed").is_empty());
}

// See: issue 9, item 1 — the success of a create sent before a 429 lifted the pause at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_even_when_creates_sent_before_it_succeed() {
    let fake = FakeRunway::start(Switches {
        rate_limit_nth: Some(3),
        retry_after: Some("2".into()),
        concurrency: 4,
        create_latency: Duration::from_millis(50),
        ..Switches::default()
    })
    .await;
    let studio =
        Studio::new(&test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 4"));
    for i in 0..8 {
        studio.put(&format!("inbox/r{i}.png"), &png_bytes(8 + i, 8));
    }
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (8, 0));
    let creates: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/image_to_video")
        .collect();
    let refused = creates.iter().find(|s| s.status == 429).expect("a 429");
    let t = refused.at;
    let image = refused.body.as_ref().unwrap()["promptImage"].clone();
    let again = creates
        .iter()
        .find(|s| s.at > t && s.body.as_ref().unwrap()["promptImage"] == image)
        .expect("the refused image is submitted again");
    assert!(
        again.at - t >= Duration::from_secs(2),
        "the refused image was resubmitted {:?} after its 429 (Retry-After: 2)",
        again.at - t
    );
    // Creates already on the wire when the 429 came may land just after it; nothing else may
    // arrive before the server's time.
    let early: Vec<Duration> = creates
        .iter()
        .filter(|s| s.at > t + Duration::from_millis(300) && s.at < t + Duration::from_secs(2))
        .map(|s| s.at - t)
        .collect();
    assert!(early.is_empty(), "creates sent during the pause: {early:?}");
    assert_eq!(fake.created().len(), 8, "one task per image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_server_errors_ends_in_done_with_one_task_per_image() {
    let fake = FakeRunway::start(Switches {
        server_errors: 12,
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 2\n  retries: 2"),
    );
    for i in 0..3 {
        studio.put(&format!("inbox/s{i}.png"), &png_distinct(8, 8));
    }
    let summary = studio.run().await;
    assert_eq!(
        (summary.succeeded, summary.failed),
        (3, 0),
        "a run of 5xx is systemic: nothing fails"
    );
    assert_eq!(fake.created().len(), 3, "one successful submit per image");
    assert_eq!(fake.count("POST", "/v1/image_to_video"), 15);
    // A 503 is load shed before the request is handled: no task can exist, no flag.
    for i in 0..3 {
        let r = studio.json(&format!("done/s{i}.result.json"));
        assert!(r["possible_double_charge"].is_null(), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failure_codes_are_sorted() {
    let fake = FakeRunway::start(Switches {
        concurrency: 1,
        failure_codes: [
            "SAFETY.INPUT.IMAGE",
            "INTERNAL.BAD_OUTPUT.CODE01",
            "CANCELLED",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        ..Switches::default()
    })
    .await;
    let mut cfg = test_config(&fake.url, "");
    cfg = cfg.replace("max_in_flight: 2", "max_in_flight: 1");
    let studio = Studio::new(&cfg);
    studio.put("inbox/a1.png", &png_bytes(8, 8));
    studio.put("inbox/a1.yaml", b"unsafe\n");
    studio.put("inbox/a2.png", &png_bytes(8, 8));
    studio.put("inbox/a2.yaml", b"bad output once\n");
    let summary = studio.run().await;
    // a1: SAFETY → failed. a2: BAD_OUTPUT → retried; the retry is CANCELLED → failed with that reason.
    assert_eq!(summary.failed, 2);
    studio.error_says(
        "a1",
        &["moderation rejected the input", "SAFETY.INPUT.IMAGE"],
    );
    studio.error_says("a2", &["was cancelled on Runway's side"]);
    assert_eq!(
        fake.created().len(),
        3,
        "a1 once, a2 twice (BAD_OUTPUT is retried)"
    );

    // A clean retry of BAD_OUTPUT ends in done/.
    fake.set(|s| s.failure_codes = ["INTERNAL.BAD_OUTPUT.CODE01".to_string()].into());
    studio.put("inbox/b.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
    assert_eq!(studio.json("done/b.result.json")["submissions"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_urls_and_cut_downloads_are_retried() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.expired_downloads = 1)
        .fake(|s| s.cut_downloads = 1)
        .start()
        .await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        std::fs::read(studio.path("done/a.mp4")).unwrap(),
        mp4_bytes(),
        "only the complete file"
    );
    assert_eq!(fake.count("GET", "/files/"), 3);
    assert_eq!(fake.created().len(), 1);
}

/// A fake API that knows another key than the one dropreel is given, and a studio on it.
async fn with_a_key_the_api_refuses() -> (FakeRunway, Studio) {
    let fake = FakeRunway::start(Switches {
        key: "key_other".into(),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    (fake, studio)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_watch_pauses_then_resumes_when_fixed() {
    let (fake, studio) = with_a_key_the_api_refuses().await;
    studio.put("inbox/a.png", &png_distinct(8, 8));
    studio.put("inbox/b.png", &png_distinct(8, 8));
    let watching = Watching::start(&studio);
    // Refused, paused, probed again after the pause and refused again (the backoff's pacing is
    // tested on a paused clock in the gate's own tests).
    until("a second attempt", Duration::from_secs(10), || {
        fake.count("POST", "/v1/image_to_video") >= 2
    })
    .await;
    assert!(
        studio.list("failed").is_empty(),
        "a bad key never fails a job"
    );
    assert!(fake.created().is_empty());
    // The key is fixed (on the server side here): work resumes by itself.
    fake.set(|s| s.key = KEY.into());
    until("both videos", Duration::from_secs(10), || {
        studio.list("done").len() == 6
    })
    .await;
    let summary = watching.stop().await;
    assert_eq!(summary.succeeded, 2);
    assert_eq!(fake.created().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_run_stops_at_once_and_leaves_jobs_in_place() {
    let (fake, studio) = with_a_key_the_api_refuses().await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert!(summary.key_refused.is_some());
    assert!(studio.list("failed").is_empty());
    assert!(studio.list("done").is_empty());
    // Fixed key: the next run resumes the job and finishes it.
    fake.set(|s| s.key = KEY.into());
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(studio.list("done").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_is_polled_after_a_restart_not_resubmitted() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(800))
        .start()
        .await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let watching = Watching::start(&studio);
    // Wait until the job is submitted, then stop.
    until("the submission", Duration::from_secs(10), || {
        !fake.created().is_empty()
    })
    .await;
    until(
        "the submitted state written",
        Duration::from_secs(10),
        || studio.job_states() == ["submitted"],
    )
    .await;
    let summary = watching.stop().await;
    assert_eq!(summary.succeeded, 0);
    let jobs = studio.list("processing");
    assert_eq!(jobs.len(), 1);
    let state = studio.json(&format!("processing/{}/job.json", jobs[0]));
    assert_eq!(state["state"], "submitted");

    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        fake.created().len(),
        1,
        "resumed by polling, never submitted again"
    );
    assert!(fake.count("GET", "/v1/tasks/") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_answer_is_resubmitted_and_recorded() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.drop_create_answers = 1)
        .start()
        .await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        fake.tasks_created(),
        2,
        "the lost answer had created a task"
    );
    let r = studio.json("done/a.result.json");
    assert_eq!(r["possible_double_charge"], 1);
    assert!(r["note"].as_str().unwrap().contains("charged"));
}

// See: issue 21, item 1 — a 502 after the task was made cost two tasks with no flag: a server error
// to a create may have come after the task existed, so it is an uncertain submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_error_after_the_task_was_made_is_resubmitted_and_flagged() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.gateway_errors_after_create = 1)
        .yaml("budget:\n  daily_credits: 1000\n")
        .start()
        .await;
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(
        fake.tasks_created(),
        2,
        "the 502 came after a task was made"
    );
    let r = studio.json("done/a.result.json");
    assert_eq!(r["possible_double_charge"], 1, "{r}");
    assert!(r["note"].as_str().unwrap().contains("server"), "{r}");
    // The spend log counts the resubmission as the uncertain one it is.
    let spend = std::fs::read_dir(studio.path(".dropreel/spend"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert_eq!(spend.lines().count(), 2, "{spend}");
    assert!(
        spend.lines().nth(1).unwrap().contains("\"uncertain\":true"),
        "{spend}"
    );
}

// See: issue 21, item 1 — with `park`, a server error after the task was made is never resubmitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_park_a_gateway_error_after_creation_is_never_resubmitted() {
    let r = Scenario::new()
        .fake(|s| s.gateway_errors_after_create = 1)
        .runway("uncertain_submit", "park")
        .put("inbox/a.png", png_bytes(8, 8))
        .run()
        .await;
    r.outcome(0, 1)
        .error_says("a", &["may already be running", "HTTP 502"]);
    assert_eq!(r.fake.tasks_created(), 1, "never paid twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_refuses_the_download_makes_the_job_wait_not_fail() {
    let fake = FakeRunway::start(Switches {
        download_latency: Duration::from_millis(300),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &test_config(&fake.url, "").replace("max_in_flight: 2", "max_in_flight: 2\n  retries: 1"),
    );
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let watching = Watching::start(&studio);
    // Once the task is submitted, the download's file cannot be created (a folder holds its
    // name): an injected write error, as a full disk gives, met when the video is fetched.
    let job = until_found("the submission", Duration::from_secs(10), || async {
        let jobs = studio.list("processing");
        jobs.into_iter().find(|id| {
            std::fs::read_to_string(studio.path(&format!("processing/{id}/job.json")))
                .is_ok_and(|t| t.contains("\"state\": \"submitted\""))
        })
    })
    .await;
    let blocker = studio.path(&format!("processing/{job}/.out.mp4.part"));
    std::fs::create_dir(&blocker).unwrap();
    // A third download begun: the first two met the disk's refusal.
    until("three downloads", Duration::from_secs(10), || {
        fake.count("GET", "/files/") >= 3
    })
    .await;
    assert!(
        studio.list("failed").is_empty(),
        "a disk problem never fails the job"
    );
    assert!(fake.count("GET", "/files/") >= 2, "it kept trying");
    std::fs::remove_dir(&blocker).unwrap();
    // Resumed after the disk recovered.
    studio.appears("done/a.mp4", Duration::from_secs(10)).await;
    watching.stop().await;
    assert_eq!(
        std::fs::read(studio.path("done/a.mp4")).unwrap(),
        mp4_bytes()
    );
    assert_eq!(
        studio.json("done/a.result.json")["retries"],
        0,
        "disk trouble spends no retry budget"
    );
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_job_state_is_moved_aside_and_the_image_is_never_lost() {
    let Scene { fake, studio } = Scenario::new().start().await;
    // A job whose state file was torn (truncated), and one full of garbage around an unusable file.
    std::fs::create_dir_all(studio.path("processing/20260101T000000Z-00000001")).unwrap();
    studio.put(
        "processing/20260101T000000Z-00000001/torn.png",
        &png_bytes(12, 12),
    );
    studio.put(
        "processing/20260101T000000Z-00000001/job.json",
        b"{\"id\": \"20260101T000000Z-0000",
    );
    std::fs::create_dir_all(studio.path("processing/20260101T000000Z-00000002")).unwrap();
    studio.put(
        "processing/20260101T000000Z-00000002/junk.png",
        b"not an image at all",
    );
    studio.put(
        "processing/20260101T000000Z-00000002/job.json",
        &[0xff, 0x00, 0x13, 0x37],
    );
    studio.run().await.outcome(1, 1);
    assert!(studio.path("done/torn.png").exists() && studio.path("done/torn.mp4").exists());
    assert!(
        studio.path("failed/junk.png").exists(),
        "kept, never deleted"
    );
    assert!(
        studio
            .read("failed/junk.error.txt")
            .contains("not an image dropreel knows")
    );
    assert!(
        studio.list("processing").iter().all(|n| n.starts_with('.')),
        "{:?}",
        studio.list("processing")
    );
    assert_eq!(fake.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_park_a_lost_create_answer_is_never_resubmitted() {
    let r = Scenario::new()
        .fake(|s| s.drop_create_answers = 1)
        .runway("uncertain_submit", "park")
        .put("inbox/a.png", png_bytes(8, 8))
        .run()
        .await;
    r.outcome(0, 1)
        .error_says("a", &["may already be running", "dashboard"]);
    assert_eq!(r.fake.tasks_created(), 1, "never paid twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_refused_by_processing_is_retried_and_nothing_is_lost() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let logs = LogWatch::start();
    let watching = Watching::start(&studio);
    studio.started().await;
    // processing/ becomes unusable (a file where the folder was): no claim can succeed. (Removed
    // again if the instance wrote its status file in it meanwhile.)
    until("processing/ removed", Duration::from_secs(10), || {
        std::fs::remove_dir_all(studio.path("processing")).is_ok()
    })
    .await;
    std::fs::write(studio.path("processing"), b"not a folder").unwrap();
    studio.put("inbox/a.png", &png_bytes(8, 8));
    // The claim was tried and refused.
    logs.until(
        &["cannot move the file into processing/", "a.png"],
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        studio.list("inbox"),
        ["a.png"],
        "the file waits where it was"
    );
    assert!(fake.created().is_empty());
    // The folder is back: the claim goes through at the next try.
    std::fs::remove_file(studio.path("processing")).unwrap();
    std::fs::create_dir(studio.path("processing")).unwrap();
    // Claimed after the folder came back.
    studio.appears("done/a.mp4", Duration::from_secs(10)).await;
    let summary = watching.stop().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
}
