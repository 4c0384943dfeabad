//! The real `dropreel` binary: `init`, `status`, and the exit codes of `run`.

mod common;

use std::process::{Command, Output};

use common::*;

fn dropreel(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropreel"));
    cmd.args(args)
        .env_remove("RUNWAYML_API_SECRET")
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs the binary off the test runtime so the in-process fake keeps serving.
async fn dropreel_async(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        dropreel(&args, &env)
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn init_creates_a_studio_whose_config_passes_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("studio");
    let out = dropreel(&["init", root.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for d in ["inbox", "processing", "done", "failed"] {
        assert!(root.join(d).is_dir());
    }
    let cfg = std::fs::read_to_string(root.join("dropreel.yaml")).unwrap();
    assert!(cfg.contains("max_in_flight"));
    std::fs::write(root.join("dropreel.yaml"), "# mine\n").unwrap();
    let out = dropreel(&["init", root.to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(root.join("dropreel.yaml")).unwrap(),
        "# mine\n"
    );
    let out = dropreel(&["status", root.to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert!(text(&out).contains("inbox/"), "{}", text(&out));
}

#[test]
fn a_bad_config_exits_2_before_touching_any_file() {
    let studio = Studio::new("runway:\n  max_inflight: 3\n");
    studio.put("inbox/a.png", &png_bytes(8, 8));
    let out = dropreel(
        &["run", studio.root().to_str().unwrap()],
        &[("RUNWAYML_API_SECRET", KEY)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("dropreel.yaml") && t.contains("max_inflight"),
        "{t}"
    );
    assert_eq!(studio.list("inbox"), vec!["a.png"]);
}

#[test]
fn without_a_key_run_examples_renders_locally_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo-studio");
    std::fs::create_dir(&root).unwrap();
    // Short clips and short waits keep the test quick; everything else is as a user runs it.
    std::fs::write(
        root.join("dropreel.yaml"),
        "defaults:\n  duration: 1\nlocal:\n  fps: 6\nwatch:\n  settle: 100ms\n  sidecar_wait: 100ms\n",
    )
    .unwrap();
    let out = dropreel(
        &[
            "run",
            "--examples",
            root.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("LOCAL motion renderer"),
        "said loudly: {}",
        text(&out)
    );
    // The encoder prints nothing of its own: every log line stays one JSON object.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    let mut done: Vec<String> = std::fs::read_dir(root.join("done"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    done.sort();
    assert_eq!(
        done,
        [
            "harbour.jpg",
            "harbour.mp4",
            "harbour.result.json",
            "harbour.yaml",
            "mountains.jpg",
            "mountains.mp4",
            "mountains.result.json",
            "tiles.mp4",
            "tiles.png",
            "tiles.result.json"
        ]
    );
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("done/harbour.result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["backend"], "local");
    assert_eq!(
        r["motion"], "pan_right",
        "the sidecar's prompt chose the move"
    );
    assert_eq!(r["frames"], 6);
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("done/mountains.result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["ratio"], "720:1280", "a portrait stays portrait");
    assert_eq!(r["size"], "720x1280");
}

#[test]
fn init_examples_fills_the_inbox_without_replacing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("inbox/tiles.png"), b"mine").unwrap();
    let out = dropreel(&["init", "--examples", root.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for f in ["harbour.jpg", "harbour.yaml", "mountains.jpg"] {
        assert!(root.join("inbox").join(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::read(root.join("inbox/tiles.png")).unwrap(),
        b"mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exit_codes_0_1_and_3() {
    let fake = FakeRunway::start(Switches::default()).await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    let root = studio.root().to_str().unwrap().to_string();
    let env = vec![("RUNWAYML_API_SECRET".to_string(), KEY.to_string())];

    studio.put("inbox/ok.png", &png_bytes(8, 8));
    let out = dropreel_async(vec!["run".into(), root.clone()], env.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(studio.path("done/ok.mp4").exists());

    studio.put("inbox/bad.png", b"not an image");
    studio.put("inbox/ok2.png", &png_bytes(8, 8));
    let out = dropreel_async(vec!["run".into(), root.clone()], env.clone()).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(studio.path("failed/bad.error.txt").exists());
    assert!(studio.path("done/ok2.mp4").exists());

    // A refused key: exit 3 at once, nothing in failed/, the job waits in processing/.
    studio.put("inbox/later.png", &png_bytes(8, 8));
    let wrong = vec![("RUNWAYML_API_SECRET".to_string(), "key_wrong".to_string())];
    let out = dropreel_async(
        vec![
            "run".into(),
            root.clone(),
            "--log-format".into(),
            "json".into(),
        ],
        wrong,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let logs = text(&out);
    assert!(logs.contains("refused"), "{logs}");
    assert!(!logs.contains("key_wrong"), "the key never appears in logs");
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert_eq!(
        studio.list("failed").len(),
        2,
        "only bad.png and its error.txt"
    );
    assert_eq!(studio.list("processing").len(), 1);

    // The key is fixed: the next run finishes the waiting job. Status shows nothing in flight.
    let out = dropreel_async(vec!["run".into(), root.clone(), "-q".into()], env.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(studio.path("done/later.mp4").exists());
    let out = dropreel_async(vec!["status".into(), root], vec![]).await;
    assert!(text(&out).contains("no jobs in flight"), "{}", text(&out));
}
