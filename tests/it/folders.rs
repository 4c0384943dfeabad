//! Folders inside `inbox/`: read recursively (dot folders skipped, links to folders never
//! followed), each file's folder mirrored in `done/` and `failed/`, and a folder that appears while
//! `watch` runs is seen at once.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_folders_are_processed_and_mirrored_in_done_and_failed() {
    let Scene { fake, studio } = Scenario::new().start().await;
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
    studio.run().await.outcome(2, 1);
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
    // `status` counts per folder: waiting, delivered, failed.
    let shown = dropreel::cli::status::report(studio.root()).unwrap();
    let row = |folder: &str| {
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(folder))
            .map(|l| l.split_whitespace().rev().take(3).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row for {folder}: {shown}"))
    };
    assert_eq!(row("clientB"), ["1", "1", "0"], "{shown}");
    assert_eq!(row("clientA/shoot 1"), ["0", "1", "0"], "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_dropped_into_a_running_watch_is_processed() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new()
        .watch("settle", "60ms")
        .watch("sidecar_wait", "20ms")
        .watch("rescan", "1h")
        .start()
        .await;
    let watching = Watching::start(&studio);
    studio.started().await;
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

const PRESETS: &str = "presets:\n  vertical:\n    model: gen4.5\n    ratio: \"720:1280\"\n    prompt: a tall slow reveal\n  client:\n    duration: 8\n";

// See: issue 12, item 2 — presets by folder: defaults < preset < sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_folder_sets_the_jobs_settings_under_the_sidecar() {
    let Scene { fake, studio } = Scenario::new().yaml(PRESETS).start().await;
    std::fs::create_dir_all(studio.path("inbox/vertical/week 2")).unwrap();
    std::fs::create_dir_all(studio.path("inbox/client")).unwrap();
    std::fs::create_dir_all(studio.path("inbox/misc")).unwrap();
    studio.put("inbox/vertical/a.png", &png_bytes(16, 9));
    studio.put("inbox/vertical/week 2/b.png", &png_bytes(16, 9));
    studio.put(
        "inbox/vertical/week 2/b.yaml",
        b"prompt: the sidecar wins\n",
    );
    studio.put("inbox/client/c.png", &png_bytes(16, 9));
    studio.put("inbox/misc/d.png", &png_bytes(16, 9));
    studio.run().await.outcome(4, 0);
    let bodies = fake.created();
    let a = body_for(&bodies, "a tall slow reveal");
    assert_eq!(
        (a["model"].as_str(), a["ratio"].as_str()),
        (Some("gen4.5"), Some("720:1280")),
        "the preset's settings, at any depth below its folder"
    );
    let b = body_for(&bodies, "the sidecar wins");
    assert_eq!(
        (b["model"].as_str(), b["ratio"].as_str()),
        (Some("gen4.5"), Some("720:1280"))
    );
    let c = bodies
        .iter()
        .find(|b| b["duration"] == 8)
        .expect("the client preset's duration");
    assert_eq!(
        c["model"], "gen4_turbo",
        "defaults fill what the preset leaves out"
    );
    let others: Vec<_> = bodies
        .iter()
        .filter(|b| b["duration"] == 5 && b["model"] == "gen4_turbo")
        .collect();
    assert_eq!(
        others.len(),
        1,
        "a folder that is no preset uses the defaults: {bodies:#?}"
    );
    assert_eq!(
        studio.json("done/vertical/a.result.json")["preset"],
        "vertical"
    );
    assert!(studio.json("done/misc/d.result.json")["preset"].is_null());
}

/// `dropreel run ROOT` without a key.
fn run(root: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dropreel"))
        .args(["run", root.to_str().unwrap()])
        .env_remove("RUNWAYML_API_SECRET")
        .output()
        .unwrap()
}

#[test]
fn a_bad_preset_stops_the_start_naming_it_and_init_makes_the_preset_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("studio");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("dropreel.yaml"), PRESETS).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dropreel"))
        .args(["init", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(root.join("inbox/vertical").is_dir() && root.join("inbox/client").is_dir());
    std::fs::write(
        root.join("dropreel.yaml"),
        "backend: local\npresets:\n  vertical:\n    ratio: \"16:9\"\n",
    )
    .unwrap();
    let out = run(&root);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("presets.vertical.ratio") && err.contains("16:9"),
        "{err}"
    );
    std::fs::write(
        root.join("dropreel.yaml"),
        "presets:\n  vertical:\n    colour: red\n",
    )
    .unwrap();
    let out = run(&root);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("colour"), "an unknown key is named: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_will_not_pair_is_explained_inside_a_folder_too() {
    let Scene { fake, studio } = Scenario::new().start().await;
    std::fs::create_dir_all(studio.path("inbox/shoot")).unwrap();
    studio.put("inbox/shoot/dog.png", &png_bytes(8, 8));
    studio.put("inbox/shoot/dog.png.yaml", b"a dog");
    let root = studio.root().to_str().unwrap().to_string();
    let fake_url = fake.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dropreel"))
            .args(["run", &root])
            .env("RUNWAYML_API_SECRET", KEY)
            .env("RUNWAYML_BASE_URL", fake_url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shoot/dog.png.yaml") && err.contains("rename it to dog.yaml"),
        "{err}"
    );
}

// See: issue 21, item 5 — the log named failed/broken.error.txt for failed/clientB/broken.error.txt,
// and error.txt never said how to try again with `dropreel retry`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_folder_is_logged_and_explained_where_it_is() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new().start().await;
    std::fs::create_dir_all(studio.path("inbox/clientB")).unwrap();
    studio.put("inbox/clientB/broken.png", b"not an image");
    let (code, logs) = run_binary(studio.root(), &[]).await;
    assert_eq!(code, Some(1), "{logs}");
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "failed")
        .unwrap_or_else(|| panic!("no 'failed' line: {logs}"));
    assert_eq!(line["to"], "failed/clientB/broken.error.txt", "{line}");
    assert_eq!(line["file"], "clientB/broken.png", "{line}");
    let text = studio.read("failed/clientB/broken.error.txt");
    assert!(
        text.contains("run `dropreel retry clientB/broken` in the studio folder: it moves broken.png back into inbox/clientB/"),
        "{text}"
    );
}

// See: issue 21, item 2 — a file created in a folder that existed when `watch` started waited
// for the 60 s rescan; only folders moved in whole were seen at once. The cause: `watch` started
// on a relative ROOT (`dropreel watch` in the studio) got the watcher's events as absolute paths,
// which did not start with the relative inbox/, and fell back to the bare file name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_in_a_folder_that_existed_at_start_is_seen_at_once() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new()
        .watch("settle", "60ms")
        .watch("sidecar_wait", "20ms")
        .watch("rescan", "1h")
        .start()
        .await;
    std::fs::create_dir_all(studio.path("inbox/clientA/shoot 1")).unwrap();
    // Something to wait for: once it is delivered, the start scan is long over.
    studio.put("inbox/clientA/first.png", &png_distinct(8, 8));
    // `dropreel watch` in the studio: ROOT is the current folder.
    let child = Reaped::new(
        std::process::Command::new(dropreel_bin())
            .args(["watch", "--log-format", "json"])
            .current_dir(studio.root())
            .env("RUNWAYML_API_SECRET", KEY)
            .env_remove("RUNWAYML_BASE_URL")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    studio
        .appears("done/clientA/first.mp4", Duration::from_secs(10))
        .await;
    // Only the watcher can see these (the rescan is an hour away).
    studio.put("inbox/clientA/shoot 1/deep.png", &png_distinct(9, 9));
    studio.put("inbox/clientA/next.png", &png_distinct(10, 10));
    studio.put("inbox/top.png", &png_distinct(11, 11));
    for done in [
        "done/clientA/shoot 1/deep.mp4",
        "done/clientA/next.mp4",
        "done/top.mp4",
    ] {
        studio.appears(done, Duration::from_secs(10)).await;
    }
    sigterm(child.child());
    let (code, _) = wait_exit(child.take(), Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}
