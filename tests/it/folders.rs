//! Folders inside `inbox/`: read recursively (dot folders skipped, links to folders never
//! followed), each file's folder mirrored in `done/` and `failed/`, and a folder that appears while
//! `watch` runs is seen at once.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_folders_are_processed_and_mirrored_in_done_and_failed() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    std::fs::create_dir_all(studio.path("inbox/clientA/shoot 1")).unwrap();
    std::fs::create_dir_all(studio.path("inbox/clientB")).unwrap();
    std::fs::create_dir_all(studio.path("inbox/.cache")).unwrap();
    studio.put("inbox/clientA/shoot 1/cat.png", &png_bytes(16, 9));
    studio.put("inbox/clientA/shoot 1/cat.yaml", b"a cat in the rain");
    // The same name in another folder is another job, and keeps its name.
    studio.put("inbox/clientB/cat.png", &png_bytes(9, 16));
    studio.put("inbox/clientB/broken.png", b"not an image");
    studio.put("inbox/.cache/hidden.png", &png_bytes(8, 8));
    // A sidecar pairs within its own folder only.
    studio.put("inbox/cat.yaml", b"the top-level cat prompt");
    let summary = studio.run().await;
    assert_eq!((summary.succeeded, summary.failed), (2, 1));
    studio.assert_listing(
        "done/clientA/shoot 1",
        &["cat.mp4", "cat.png", "cat.result.json", "cat.yaml"],
    );
    studio.assert_listing("done/clientB", &["cat.mp4", "cat.png", "cat.result.json"]);
    studio.assert_listing("failed/clientB", &["broken.error.txt", "broken.png"]);
    let prompts = fake.prompts();
    assert!(
        prompts.contains(&"a cat in the rain".to_string()),
        "{prompts:?}"
    );
    assert!(
        !prompts.iter().any(|p| p.contains("top-level")),
        "a sidecar in inbox/ does not apply to a file in a folder: {prompts:?}"
    );
    let r = studio.json("done/clientA/shoot 1/cat.result.json");
    assert_eq!(r["folder"], "clientA/shoot 1");
    // Left alone: the dot folder, the lone sidecar; the emptied folders stay.
    assert!(studio.path("inbox/.cache/hidden.png").exists());
    assert!(studio.path("inbox/cat.yaml").exists());
    assert!(studio.path("inbox/clientA/shoot 1").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_dropped_into_a_running_watch_is_processed() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(
        &TestConfig::new(&fake.url)
            .watch("settle", "60ms")
            .watch("sidecar_wait", "20ms")
            .watch("rescan", "1h")
            .yaml(),
    );
    let watching = Watching::start(&studio);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Made elsewhere, then moved in whole (as a file manager does): only the watcher can see it.
    let outside = tempfile::tempdir_in(studio.root()).unwrap();
    std::fs::create_dir_all(outside.path().join("batch/day 2")).unwrap();
    std::fs::write(outside.path().join("batch/one.png"), png_bytes(8, 8)).unwrap();
    std::fs::write(outside.path().join("batch/day 2/two.png"), png_bytes(9, 9)).unwrap();
    std::fs::rename(outside.path().join("batch"), studio.path("inbox/batch")).unwrap();
    studio
        .appears("done/batch/one.mp4", Duration::from_secs(10))
        .await;
    studio
        .appears("done/batch/day 2/two.mp4", Duration::from_secs(10))
        .await;
    // And a folder made inside inbox/, filled afterwards.
    std::fs::create_dir(studio.path("inbox/later")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    studio.put("inbox/later/three.png", &png_bytes(10, 10));
    studio
        .appears("done/later/three.mp4", Duration::from_secs(10))
        .await;
    let summary = watching.stop().await;
    assert_eq!(summary.succeeded, 3);
}
