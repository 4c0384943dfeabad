//! Never pay twice: the dedupe ledger in `ROOT/.dropreel/ledger/`. The same inputs with the same
//! settings, dropped again after delivery, while the first is in flight, or into two instances at
//! once, are generated once; `dedupe: false` forces a fresh video; moved-away outputs are made again,
//! and so is a video in `done/` that is no longer the one recorded. Any copy delivered serves; the
//! takes still there are reused one by one; a refusal for good is not sent again; an entry a kill
//! left pending is repaired.

use std::time::Duration;

use crate::support::*;

// See: issue 12, item 4 — the same image dropped again after it was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_dropped_again_after_delivery_is_delivered_from_the_first_video() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let cat = png_distinct(16, 9);
    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the rain");
    assert_eq!(studio.run().await.succeeded, 1);
    assert_eq!(fake.tasks_created(), 1);
    let first = studio.json("done/cat.result.json");

    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the rain");
    studio.run().await.outcome(1, 0);
    assert_eq!(fake.tasks_created(), 1, "no request for the same job");
    let again = studio.json("done/cat-2.result.json");
    assert_eq!(again["reused_from"]["job"], first["job_id"], "{again}");
    assert_eq!(again["reused_from"]["files"][0], "done/cat.mp4");
    assert_eq!(again["reused_from"]["task_ids"][0], first["task_id"]);
    assert_eq!(again["credits"], 0);
    assert_eq!(
        std::fs::read(studio.path("done/cat-2.mp4")).unwrap(),
        std::fs::read(studio.path("done/cat.mp4")).unwrap()
    );

    // Another prompt is another job.
    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the snow");
    studio.run().await;
    assert_eq!(fake.tasks_created(), 2);

    // `dedupe: false` in the sidecar: made afresh.
    studio.put("inbox/cat.png", &cat);
    studio.put(
        "inbox/cat.yaml",
        b"prompt: a cat in the rain\ndedupe: false\n",
    );
    studio.run().await;
    assert_eq!(fake.tasks_created(), 3, "dedupe: false forces a new video");

    // The earlier videos moved away: made again.
    for f in studio.list("done") {
        if f.ends_with(".mp4") {
            std::fs::remove_file(studio.path(&format!("done/{f}"))).unwrap();
        }
    }
    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the rain");
    studio.run().await;
    assert_eq!(fake.tasks_created(), 4, "nothing left to reuse");
}

// See: issue 12, item 4 — two identical jobs in flight at once: the second waits and reuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_image_dropped_twice_at_once_makes_one_request() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(400))
        .start()
        .await;
    let img = png_distinct(12, 12);
    for name in ["a.png", "b.png", "c.png"] {
        studio.put(&format!("inbox/{name}"), &img);
    }
    studio.put("inbox/other.png", &png_distinct(12, 12));
    studio.run().await.outcome(4, 0);
    assert_eq!(
        fake.tasks_created(),
        2,
        "one for the three copies, one for the other image"
    );
    let reused = ["a", "b", "c"]
        .iter()
        .filter(|s| !studio.json(&format!("done/{s}.result.json"))["reused_from"].is_null())
        .count();
    assert_eq!(reused, 2);
}

// See: issue 12, item 4 — two instances, duplicates dropped into both: one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_given_duplicates_make_one_request() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(300))
        .watch("settle", "30ms")
        .watch("sidecar_wait", "10ms")
        .start()
        .await;
    let one = spawn_watch(studio.root());
    let two = spawn_watch(studio.root());
    wait_started(studio.root(), &one).await;
    wait_started(studio.root(), &two).await;
    let img = png_distinct(10, 14);
    for i in 0..6 {
        studio.put(&format!("inbox/dup{i}.png"), &img);
    }
    until("all six delivered", Duration::from_secs(20), || {
        studio
            .list("done")
            .iter()
            .filter(|f| f.ends_with(".result.json"))
            .count()
            == 6
    })
    .await;
    sigterm(&one);
    sigterm(&two);
    let (_, logs_one) = wait_exit(one, Duration::from_secs(10)).await;
    let (_, logs_two) = wait_exit(two, Duration::from_secs(10)).await;
    assert_eq!(
        fake.count("POST", "/v1/image_to_video"),
        1,
        "{logs_one}\n{logs_two}"
    );
    assert!(
        logs_one.contains("submitted") || logs_two.contains("submitted"),
        "one of them made it"
    );
    let ledger: Vec<_> = std::fs::read_dir(studio.path(".dropreel/ledger"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(ledger.len(), 1, "one entry for the one key");
}

/// A stand-in video of the fake's usual size whose bytes differ by `n` (two different takes
/// Runway might return).
fn video(n: u8) -> std::sync::Arc<Vec<u8>> {
    let mut v = mp4_bytes();
    let last = v.len() - 1;
    v[last] ^= n;
    std::sync::Arc::new(v)
}

/// The `reused_from` of a delivered job's result.json.
fn reused_from(studio: &Studio, rel: &str) -> serde_json::Value {
    studio.json(rel)["reused_from"].clone()
}

// See: issue 21, item 1 — camera names repeat: a ledger entry names a path, and the file now at
// that path is another image's video. It must not be delivered as this image's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_in_done_that_is_no_longer_the_one_recorded_is_not_reused() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let a = png_distinct(16, 9);
    fake.set(|s| s.video = Some(video(1)));
    studio.put("inbox/IMG_0001.png", &a);
    assert_eq!(studio.run().await.succeeded, 1);
    let first = studio.json("done/IMG_0001.result.json");

    // done/ emptied (the client took the results); another photo with the same camera name.
    for f in studio.list("done") {
        std::fs::remove_file(studio.path(&format!("done/{f}"))).unwrap();
    }
    fake.set(|s| s.video = Some(video(2)));
    studio.put("inbox/IMG_0001.png", &png_distinct(16, 9));
    assert_eq!(studio.run().await.succeeded, 1);
    assert_eq!(fake.tasks_created(), 2);
    assert_eq!(
        std::fs::read(studio.path("done/IMG_0001.mp4")).unwrap(),
        *video(2)
    );

    // The first photo again, under another name: its entry names done/IMG_0001.mp4, which is the
    // second photo's video now (same size, other bytes). It is made again, not linked.
    fake.set(|s| s.video = Some(video(1)));
    studio.put("inbox/old_again.png", &a);
    studio.run().await.outcome(1, 0);
    assert_eq!(
        fake.tasks_created(),
        3,
        "another image's video is never reused: {}",
        reused_from(&studio, "done/old_again.result.json")
    );
    assert!(reused_from(&studio, "done/old_again.result.json").is_null());
    assert_eq!(
        std::fs::read(studio.path("done/old_again.mp4")).unwrap(),
        *video(1)
    );
    assert_ne!(
        studio.json("done/old_again.result.json")["job_id"],
        first["job_id"]
    );

    // The same bytes put back by a sync client (a new file: another inode, another mtime) are
    // still the video recorded: reused, checked by its SHA-256.
    let bytes = std::fs::read(studio.path("done/old_again.mp4")).unwrap();
    std::fs::remove_file(studio.path("done/old_again.mp4")).unwrap();
    std::fs::write(studio.path("done/old_again.mp4"), &bytes).unwrap();
    studio.put("inbox/third.png", &a);
    studio.run().await;
    assert_eq!(fake.tasks_created(), 3, "the same bytes are reused");
    assert_eq!(
        reused_from(&studio, "done/third.result.json")["files"][0],
        "done/old_again.mp4"
    );

    // A symlink in done/ to the very same bytes is not a delivered file: made again.
    let outside = studio.path("elsewhere.mp4");
    std::fs::write(&outside, &bytes).unwrap();
    for f in ["done/old_again.mp4", "done/third.mp4"] {
        std::fs::remove_file(studio.path(f)).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, studio.path(f)).unwrap();
    }
    studio.put("inbox/fourth.png", &a);
    studio.run().await;
    assert_eq!(fake.tasks_created(), 4, "a symlink is not reused");
}

/// Rewrites the studio's one ledger entry as a kill -9 before its last write left it: pending,
/// owned by `job`.
fn pending_entry(studio: &Studio, job: &str) {
    let dir = studio.path(".dropreel/ledger");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(entries.len(), 1);
    let pending = serde_json::json!({
        "state": "pending", "job": job, "at": "2026-01-01T00:00:00Z", "task_ids": [], "files": []
    });
    std::fs::write(entries[0].path(), pending.to_string()).unwrap();
}

/// `dropreel run ROOT` (the real binary), failing the test after `limit`: its exit code and logs.
async fn run_binary_within(studio: &Studio, limit: Duration) -> (Option<i32>, String) {
    let child = std::process::Command::new(dropreel_bin())
        .args([
            "run",
            studio.root().to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(child, limit).await
}

// See: issue 21, item 2 — a kill -9 between the move into done/ and the ledger's last write left
// the entry pending: the same image dropped again was paid again although done/cat.mp4 was there
// (no job folder), or waited for "an identical job in flight" that was an empty folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_a_kill_left_pending_after_delivery_is_repaired_not_paid_again() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let cat = png_distinct(16, 9);
    studio.put("inbox/cat.png", &cat);
    assert_eq!(studio.run().await.succeeded, 1);
    let job = studio.json("done/cat.result.json")["job_id"]
        .as_str()
        .unwrap()
        .to_string();

    // What the kill left of the job folder: nothing (killed after its removal), an empty folder
    // (killed at its rmdir), or a folder with only an OS file in it.
    let leftovers: [&[&str]; 3] = [&[], &[""], &["", ".DS_Store"]];
    for (round, left) in leftovers.iter().enumerate() {
        pending_entry(&studio, &job);
        let dir = studio.path(&format!("processing/{job}"));
        for name in left.iter() {
            if name.is_empty() {
                std::fs::create_dir_all(&dir).unwrap();
            } else {
                std::fs::write(dir.join(name), b"x").unwrap();
            }
        }
        studio.put(&format!("inbox/again{round}.png"), &cat);
        let (code, logs) = run_binary_within(&studio, Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "{left:?}: {logs}");
        assert_eq!(fake.tasks_created(), 1, "{left:?}: paid again\n{logs}");
        assert_eq!(
            reused_from(&studio, &format!("done/again{round}.result.json"))["job"],
            job.as_str(),
            "{left:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// See: issue 21, item 3 — the twin of an input Runway's moderation just refused was submitted
// anyway (and paid for). It fails at once, saying why; `dedupe: false` sends it regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twin_of_an_input_refused_by_moderation_is_not_sent() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = Duration::from_millis(300))
        .fake(|s| s.failure_codes = ["SAFETY.INPUT.IMAGE".to_string()].into())
        .start()
        .await;
    let img = png_distinct(12, 12);
    studio.put("inbox/a.png", &img);
    studio.put("inbox/b.png", &img);
    studio.run().await.outcome(0, 2);
    assert_eq!(
        fake.tasks_created(),
        1,
        "the twin waited, then was not sent"
    );
    let texts: Vec<String> = ["a", "b"]
        .iter()
        .map(|s| studio.read(&format!("failed/{s}.error.txt")))
        .collect();
    let twin = texts
        .iter()
        .find(|t| t.contains("identical"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(twin.contains("SAFETY.INPUT.IMAGE"), "{twin}");
    assert!(twin.contains("dedupe: false"), "{twin}");

    // Dropped again soon after: refused at once, nothing sent.
    studio.put("inbox/c.png", &img);
    let summary = studio.run().await;
    assert_eq!(summary.failed, 1);
    assert_eq!(fake.tasks_created(), 1);
    assert!(studio.read("failed/c.error.txt").contains("identical"));

    // `dedupe: false` sends it anyway.
    studio.put("inbox/d.png", &img);
    studio.put("inbox/d.yaml", b"dedupe: false\n");
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(fake.tasks_created(), 2);

    // Retrying the refused job itself is someone's deliberate new try: its error.txt leaves
    // failed/, and with it the refusal. It is sent.
    let refused = ["a", "b"]
        .into_iter()
        .find(|s| {
            !studio
                .read(&format!("failed/{s}.error.txt"))
                .contains("identical")
        })
        .unwrap();
    let back = dropreel::cli::retry::retry(studio.root(), &[refused.to_string()]).unwrap();
    assert_eq!(back.moved.len(), 1, "{back:?}");
    studio.run().await.outcome(1, 0);
    assert_eq!(fake.tasks_created(), 3);
}

// See: issue 21, item 4 — moving one take out of done/ remade every take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_one_take_out_of_done_remakes_only_that_take() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let img = png_distinct(16, 9);
    let sidecar = b"prompt: three takes\nvariants: 3\nseed: 100\n";
    studio.put("inbox/cat.png", &img);
    studio.put("inbox/cat.yaml", sidecar);
    assert_eq!(studio.run().await.succeeded, 1);
    assert_eq!(fake.tasks_created(), 3);
    let first = studio.json("done/cat.result.json");

    std::fs::rename(studio.path("done/cat-v2.mp4"), studio.path("taken.mp4")).unwrap();
    studio.put("inbox/cat.png", &img);
    studio.put("inbox/cat.yaml", sidecar);
    studio.run().await.outcome(1, 0);
    assert_eq!(fake.tasks_created(), 4, "only the missing take is made");
    let seeds: Vec<u64> = fake
        .created()
        .iter()
        .map(|b| b["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds[3], 101, "take 2's seed");
    for n in 1..=3 {
        assert!(
            studio.path(&format!("done/cat-2-v{n}.mp4")).exists(),
            "take {n}"
        );
    }
    let r = studio.json("done/cat-2.result.json");
    let takes = r["variants"].as_array().unwrap();
    for (i, t) in takes.iter().enumerate() {
        assert_eq!(t["seed"], 100 + i, "{t}");
        if i == 1 {
            assert!(t["reused_from"].is_null(), "take 2 is made: {t}");
            assert!(t["task_id"].is_string() && t["task_id"] != first["variants"][1]["task_id"]);
        } else {
            assert_eq!(t["reused_from"]["job"], first["job_id"], "{t}");
            assert_eq!(t["task_id"], first["variants"][i]["task_id"], "{t}");
        }
    }
    assert_eq!(r["credits"], 25, "one take paid");
    assert!(r["reused_from"].is_null(), "not reused as a whole: {r}");

    // Now every take is in done/ (twice): dropped again, nothing is made.
    studio.put("inbox/cat.png", &img);
    studio.put("inbox/cat.yaml", sidecar);
    studio.run().await;
    assert_eq!(fake.tasks_created(), 4);
    assert_eq!(studio.json("done/cat-3.result.json")["credits"], 0);
}

// See: issue 21, item 5 — a moved video was remade although identical copies delivered by jobs
// that reused it were still in done/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_is_reused_from_any_copy_still_in_done() {
    let Scene { fake, studio } = Scenario::new().start().await;
    let img = png_distinct(16, 9);
    studio.put("inbox/x.png", &img);
    studio.run().await;
    studio.put("inbox/y.png", &img);
    studio.put("inbox/z.png", &img);
    studio.run().await;
    assert_eq!(fake.tasks_created(), 1);
    let x = studio.json("done/x.result.json")["job_id"].clone();

    // x.mp4 and z.mp4 moved away; y.mp4 (a copy y's job delivered) is still there.
    std::fs::remove_file(studio.path("done/x.mp4")).unwrap();
    std::fs::remove_file(studio.path("done/z.mp4")).unwrap();
    studio.put("inbox/w.png", &img);
    let summary = studio.run().await;
    assert_eq!(summary.succeeded, 1);
    assert_eq!(fake.tasks_created(), 1, "reused from y.mp4");
    let from = reused_from(&studio, "done/w.result.json");
    assert_eq!(from["job"], x, "{from}");
    assert_eq!(from["files"][0], "done/y.mp4", "{from}");
    assert_eq!(
        std::fs::read(studio.path("done/w.mp4")).unwrap(),
        mp4_bytes()
    );
}
