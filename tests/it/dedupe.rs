//! Never pay twice: the dedupe ledger in `ROOT/.dropreel/ledger/`. The same inputs with the same
//! settings, dropped again after delivery, while the first is in flight, or into two instances at
//! once, are generated once; `dedupe: false` forces a fresh video; moved-away outputs are made again.

use std::time::Duration;

use crate::support::*;

// See: issue 12, item 4 — the same image dropped again after it was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_dropped_again_after_delivery_is_delivered_from_the_first_video() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let cat = png_distinct(16, 9);
    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the rain");
    assert_eq!(studio.run().await.succeeded, 1);
    assert_eq!(fake.tasks_created(), 1);
    let first = studio.json("done/cat.result.json");

    studio.put("inbox/cat.png", &cat);
    studio.put("inbox/cat.yaml", b"a cat in the rain");
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (1, 0));
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
    let fake = FakeRunway::start(Switches {
        task_time: Duration::from_millis(400),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let img = png_distinct(12, 12);
    for name in ["a.png", "b.png", "c.png"] {
        studio.put(&format!("inbox/{name}"), &img);
    }
    studio.put("inbox/other.png", &png_distinct(12, 12));
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (4, 0));
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
    let fake = FakeRunway::start(Switches {
        task_time: Duration::from_millis(300),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .watch("settle", "30ms")
            .watch("sidecar_wait", "10ms")
            .yaml(),
    );
    let one = spawn_watch(studio.root());
    let two = spawn_watch(studio.root());
    tokio::time::sleep(Duration::from_millis(300)).await;
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
