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
fn no_key_and_no_local_renderer_exits_2_saying_what_to_set() {
    let studio = Studio::new("");
    let out = dropreel(&["run", studio.root().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("RUNWAYML_API_SECRET"), "{}", text(&out));
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
