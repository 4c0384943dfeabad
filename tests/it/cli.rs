//! The real `dropreel` binary: `init`, `status`, `retry`, `service`, its logs and the exit codes of
//! `run`. (Over 600 lines: one test file per binary surface, so a command's behaviour is found in one
//! place.)

use std::process::{Command, Output};

use crate::support::*;

fn dropreel(args: &[&str], env: &[(&str, &str)]) -> Output {
    dropreel_in(None, args, env)
}

/// The installed binary as a user runs it, in `cwd` (else the test's own): no key, and none of
/// the variables `cargo run` sets (an installed `dropreel` does not see them).
fn dropreel_in(cwd: Option<&std::path::Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropreel"));
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.args(args)
        .env_remove("CARGO")
        .env_remove("CARGO_PKG_NAME")
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
    // Short clips keep the test quick; everything else is as a user runs it. The examples are
    // whole when written, so even an hour's settle does not make `run --examples` wait for them.
    // See: issue 9, item 12.
    std::fs::write(
        root.join("dropreel.yaml"),
        "defaults:\n  duration: 1\nlocal:\n  fps: 6\nwatch:\n  settle: 1h\n  sidecar_wait: 1h\n",
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
            "harbour.poster.jpg",
            "harbour.result.json",
            "harbour.yaml",
            "mountains.jpg",
            "mountains.mp4",
            "mountains.poster.jpg",
            "mountains.result.json",
            "tiles.mp4",
            "tiles.png",
            "tiles.poster.jpg",
            "tiles.result.json",
            "title.mp4",
            "title.poster.jpg",
            "title.result.json",
            "title.txt"
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
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("done/title.result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (r["kind"].as_str(), r["prompt"].as_str()),
        (Some("text"), Some("Morning light\nover the old harbour"))
    );
}

// See: issue 21, item 1 — the README's first command exited 2 with "no studio at demo-studio":
// the test above made the folder first, which a newcomer never does.
#[test]
fn the_readme_first_command_makes_its_studio_in_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Short clips keep the test quick (the settings file lives outside the studio, which does not
    // exist yet); everything else is the README's command, run from an empty folder.
    let fast = dir.path().join("fast.yaml");
    std::fs::write(&fast, "defaults:\n  duration: 1\nlocal:\n  fps: 6\n").unwrap();
    let cwd = dir.path().join("newcomer");
    std::fs::create_dir(&cwd).unwrap();
    let out = dropreel_in(
        Some(&cwd),
        &[
            "run",
            "--examples",
            "demo-studio",
            "--config",
            fast.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let root = cwd.join("demo-studio");
    assert!(
        root.join("dropreel.yaml").is_file(),
        "made like `init`: {}",
        text(&out)
    );
    let clips: Vec<String> = std::fs::read_dir(root.join("done"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    assert_eq!(clips.len(), 4, "{clips:?}");
    // Plain `run` and `watch` still make nothing.
    for cmd in ["run", "watch"] {
        let out = dropreel_in(Some(&cwd), &[cmd, "other-studio"], &[]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out));
        assert!(!cwd.join("other-studio").exists(), "{cmd} made a studio");
    }
}

// See: issue 21, item 1 — `dropreel run` in a folder of photos made four folders there and ignored
// the photos beside them.
#[test]
fn a_folder_that_holds_other_things_is_no_studio_but_an_empty_one_becomes_one() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("cat.png"), png_bytes(8, 8)).unwrap();
    let r = photos.to_str().unwrap();
    for args in [
        vec!["run", r],
        vec!["watch", r],
        vec!["status", r],
        vec!["run", "--examples", r],
    ] {
        let out = dropreel(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("is not a dropreel studio") && t.contains(&format!("dropreel init {r}")),
            "{args:?}: {t}"
        );
        let mut left: Vec<String> = std::fs::read_dir(&photos)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["cat.png"], "{args:?} touched the folder");
    }
    // A folder holding only what an OS leaves is empty: it becomes a studio.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join(".DS_Store"), b"finder").unwrap();
    let out = dropreel(&["run", empty.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(empty.join("inbox").is_dir());
}

// See: issue 21, item 1 — from a checkout the advice named a `dropreel` a newcomer has not
// installed.
#[test]
fn run_through_cargo_the_advice_names_cargo_run() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("typo");
    let r = r.to_str().unwrap();
    let out = dropreel(
        &["run", r],
        &[("CARGO", "cargo"), ("CARGO_PKG_NAME", "dropreel")],
    );
    assert_eq!(out.status.code(), Some(2));
    // As the binary under test was built: `cargo run --release --` or `cargo run --`.
    let release = env!("CARGO_BIN_EXE_dropreel").contains("/release/");
    let cargo = if release {
        "cargo run --release --"
    } else {
        "cargo run --"
    };
    assert!(
        text(&out).contains(&format!("run `{cargo} init {r}` to create one")),
        "{}",
        text(&out)
    );
}

// See: issue 21, item 1 — `run --help` left exit code 4 out.
#[test]
fn run_help_lists_every_exit_code() {
    let out = dropreel(&["run", "--help"], &[]);
    let t = text(&out);
    for code in [
        "0 all succeeded",
        "1 some",
        "2 cannot",
        "3 the API",
        "4 the budget",
        "128",
    ] {
        assert!(t.contains(code), "{code}: {t}");
    }
}

#[test]
fn init_examples_fills_the_inbox_without_replacing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("inbox/tiles.png"), b"mine").unwrap();
    let out = dropreel(&["init", "--examples", root.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for f in ["harbour.jpg", "harbour.yaml", "mountains.jpg", "title.txt"] {
        assert!(root.join("inbox").join(f).exists(), "{f}");
    }
    assert_eq!(
        std::fs::read(root.join("inbox/tiles.png")).unwrap(),
        b"mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exit_codes_0_1_and_3() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new().start().await;
    let root = studio.root().to_str().unwrap().to_string();
    let env = vec![("RUNWAYML_API_SECRET".to_string(), KEY.to_string())];

    studio.put("inbox/ok.png", &png_bytes(8, 8));
    let out = dropreel_async(vec!["run".into(), root.clone()], env.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(studio.path("done/ok.mp4").exists());

    studio.put("inbox/bad.png", b"not an image");
    studio.put("inbox/ok2.png", &png_distinct(8, 8));
    let out = dropreel_async(vec!["run".into(), root.clone()], env.clone()).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(studio.path("failed/bad.error.txt").exists());
    assert!(studio.path("done/ok2.mp4").exists());

    // A refused key: exit 3 at once, nothing in failed/, the job waits in processing/.
    studio.put("inbox/later.png", &png_distinct(8, 8));
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

/// Starts the binary with `args` against the in-process fake, stderr captured.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropreel"));
    cmd.args(args)
        .env_remove("RUNWAYML_API_SECRET")
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .env_remove("DROPREEL_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits until a job in `processing/` has reached `state`.
async fn wait_for_state(root: &std::path::Path, state: &str) {
    let needle = format!("\"state\": \"{state}\"");
    let what = format!("a job in {state}");
    until(&what, std::time::Duration::from_secs(20), || {
        all_files(root).iter().any(|f| {
            f.ends_with("/job.json")
                && std::fs::read_to_string(root.join(f)).is_ok_and(|t| t.contains(&needle))
        })
    })
    .await;
}

// See: issue 9, item 6 — a wrong path became a new, empty studio.
#[test]
fn a_missing_root_is_no_studio_and_is_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nas/studio");
    let r = root.to_str().unwrap();
    for cmd in ["status", "run", "watch"] {
        let out = dropreel(&[cmd, r], &[]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains(&format!("no studio at {r}")) && t.contains(&format!("dropreel init {r}")),
            "{cmd}: {t}"
        );
        assert!(!dir.path().join("nas").exists(), "{cmd} created the root");
    }
    // JSON logs: the start-up error is JSON too.
    let out = dropreel(&["run", r, "--log-format", "json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let line = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    assert!(
        v["message"].as_str().unwrap().contains("no studio at"),
        "{v}"
    );
    // An existing root with a missing folder is fine: the folder is made.
    let out = dropreel(&["init", r], &[]);
    assert!(out.status.success());
    std::fs::remove_dir(root.join("failed")).unwrap();
    let out = dropreel(&["status", r], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(root.join("failed").is_dir());
}

// See: issue 9, item 6 — moves across file systems failed every 2 s forever.
#[test]
fn an_inbox_on_another_file_system_is_refused_at_start() {
    use std::os::unix::fs::MetadataExt as _;
    let elsewhere = std::path::Path::new("/dev/shm");
    let studio = Studio::new("backend: local\n");
    if !elsewhere.is_dir()
        || std::fs::metadata(elsewhere).unwrap().dev()
            == std::fs::metadata(studio.root()).unwrap().dev()
    {
        eprintln!("SKIPPED: no second file system at /dev/shm to put inbox/ on");
        return;
    }
    let other = tempfile::tempdir_in(elsewhere).unwrap();
    std::fs::remove_dir(studio.path("inbox")).unwrap();
    std::os::unix::fs::symlink(other.path(), studio.path("inbox")).unwrap();
    std::fs::write(other.path().join("a.png"), png_bytes(8, 8)).unwrap();
    let out = dropreel(&["run", studio.root().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("another file system"), "{}", text(&out));
    assert!(other.path().join("a.png").exists());
}

// See: issue 9, item 5 — a stopped run exited 0 with its jobs unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_a_signal_exits_128_plus_the_signal() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = std::time::Duration::from_secs(30))
        .start()
        .await;
    let root = studio.root().to_str().unwrap().to_string();
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        studio.put("inbox/long.png", &png_bytes(8, 8));
        let child = spawn(
            &["run", &root],
            &[
                ("RUNWAYML_API_SECRET", KEY),
                ("RUNWAYML_BASE_URL", &fake.url),
            ],
        );
        wait_for_state(studio.root(), "submitted").await;
        let ok = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let (got, err) = wait_exit(child, std::time::Duration::from_secs(10)).await;
        assert_eq!(got, Some(code), "{signal}: {err}");
        // The job waits in processing/ for the next start; clear it for the next round.
        std::fs::remove_dir_all(studio.path("processing")).unwrap();
        std::fs::create_dir(studio.path("processing")).unwrap();
    }
}

// See: issue 9, item 5 — run said "every job succeeded" while a job sat in processing/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_be_delivered_makes_run_exit_1_and_waits_in_processing() {
    let Scene { fake, studio } = Scenario::new()
        .fake(|s| s.task_time = std::time::Duration::from_millis(1500))
        .start()
        .await;
    let root = studio.root().to_str().unwrap().to_string();
    let env = [
        ("RUNWAYML_API_SECRET", KEY),
        ("RUNWAYML_BASE_URL", &fake.url),
    ];
    studio.put("inbox/stuck.png", &png_bytes(8, 8));
    let child = spawn(&["run", &root], &env);
    wait_for_state(studio.root(), "submitted").await;
    // done/ goes away under the running instance (an unmounted share, a mistaken delete).
    std::fs::remove_dir(studio.path("done")).unwrap();
    std::fs::write(studio.path("done"), b"not a folder").unwrap();
    let (code, err) = wait_exit(child, std::time::Duration::from_secs(20)).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot move the finished job into done/"),
        "{err}"
    );
    assert_eq!(studio.list("processing").len(), 1, "the job waits");
    // done/ is back: the next run delivers without a new task.
    std::fs::remove_file(studio.path("done")).unwrap();
    std::fs::create_dir(studio.path("done")).unwrap();
    let out = dropreel_async(
        vec!["run".into(), root],
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(studio.path("done/stuck.mp4").exists());
    assert_eq!(fake.tasks_created(), 1);
}

// See: issue 9, item 7 — colour codes in log files, forged lines, -q hiding failures, env over flags.
#[test]
fn text_logs_are_plain_off_a_terminal_and_flags_win_over_dropreel_log() {
    let studio = Studio::new(
        "backend: local\ndefaults:\n  duration: 1\nwatch:\n  settle: 20ms\n  sidecar_wait: 10ms\n",
    );
    studio.put(
        "inbox/evil\nINFO delivered to=FORGED.png",
        &png_bytes(32, 18),
    );
    studio.put("inbox/broken.png", b"this is text, not a PNG");
    let root = studio.root().to_str().unwrap();
    let out = dropreel(&["run", root], &[("TERM", "xterm-256color")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b'), "colour codes off a terminal: {err}");
    assert!(
        err.lines().all(|l| !l.starts_with("INFO delivered")),
        "a file name forged a log line: {err}"
    );
    assert!(err.contains("evil\\nINFO"), "{err}");
    assert!(
        studio
            .path("done/evil\nINFO delivered to=FORGED.mp4")
            .exists()
    );

    // -q still shows the failed job; DROPREEL_LOG does not override -q.
    studio.put("inbox/broken2.png", b"still not a PNG");
    let out = dropreel(&["run", root, "-q"], &[("DROPREEL_LOG", "trace")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken2.png") && err.contains("failed"),
        "{err}"
    );
    assert!(
        !err.contains("INFO") && !err.contains("DEBUG") && !err.contains("TRACE"),
        "-q must win over DROPREEL_LOG: {err}"
    );
    // -v adds detail (settle decisions).
    studio.put("inbox/fine.png", &png_bytes(32, 18));
    let out = dropreel(&["run", root, "-v"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG"), "-v adds debug lines: {err}");
}

// See: issue 9, item 12 — status counted files, not jobs.
#[test]
fn status_counts_jobs_per_folder() {
    let studio = Studio::new("backend: local\n");
    studio.put("inbox/a.png", &png_bytes(8, 8));
    studio.put("inbox/a.yaml", b"hi");
    studio.put("inbox/notes.tmp", b"x");
    studio.put("done/b.png", b"x");
    studio.put("done/b.mp4", b"x");
    studio.put("done/b.result.json", b"{}");
    studio.put("failed/c.png", b"x");
    studio.put("failed/c.error.txt", b"x");
    let out = dropreel(&["status", studio.root().to_str().unwrap()], &[]);
    let t = text(&out);
    for want in [
        "1 job waiting",
        "0 jobs in flight",
        "1 job delivered",
        "1 job failed",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
}

// See: issue 9, items 2, 4 and 7 — files that were never processed and never mentioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_left_alone_gets_one_warning_saying_why() {
    use std::os::unix::ffi::OsStrExt as _;
    let Scene { fake, studio } = Scenario::new().start().await;
    studio.put("inbox/notes.pdf", b"%PDF-1.7");
    // A link to a folder elsewhere: never followed.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("far.png"), png_bytes(8, 8)).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), studio.path("inbox/linked")).unwrap();
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::write(studio.path("inbox").join(raw), png_bytes(8, 8)).unwrap();
    studio.put("inbox/Cat.png", &png_bytes(8, 8));
    studio.put("inbox/cat.yaml", b"a cat");
    studio.put("inbox/dog.png", &png_bytes(8, 8));
    studio.put("inbox/dog.png.yaml", b"a dog");
    studio.put("inbox/fox.png", &png_bytes(8, 8));
    studio.put("inbox/fox.yaml", b"a fox");
    studio.put("inbox/fox.yml", b"another fox");
    let out = dropreel_async(
        vec!["run".into(), studio.root().to_str().unwrap().into()],
        vec![
            ("RUNWAYML_API_SECRET".into(), KEY.into()),
            ("RUNWAYML_BASE_URL".into(), fake.url.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let once = |needle: &str, why: &str| {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(needle) && l.contains("left alone"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{needle}: one warning, got {lines:#?}\n{err}"
        );
        assert!(lines[0].contains(why), "{needle}: {}", lines[0]);
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    };
    once("notes.pdf", "does not make videos from .pdf files");
    // See: issue 21, item 5 — it named HEIC and AVIF, which this build cannot read.
    once(
        "notes.pdf",
        "takes images (PNG, JPEG, WebP, TIFF, BMP or GIF)",
    );
    once("file=linked", "symbolic link");
    assert!(
        elsewhere.path().join("far.png").exists(),
        "the link was not followed"
    );
    once("caf\u{fffd}.png", "not valid UTF-8");
    once("cat.yaml", "letter case only");
    once("dog.png.yaml", "rename it to dog.yaml");
    once("fox.yml", "fox.yaml is the sidecar of fox.png");
    let prompts = fake.prompts();
    assert!(prompts.contains(&"a fox".to_string()), "{prompts:?}");
}

// See: issue 9, item 9 — a full disk at claim time left an empty job folder per attempt and
// 0-byte `.clock-*` and `.instance-*.json.tmp` files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_claim_time_leaves_nothing_behind() {
    let studio = Studio::new("backend: local\nwatch:\n  settle: 20ms\n  sidecar_wait: 10ms\n");
    studio.put("inbox/a.png", &png_bytes(16, 16));
    // No byte can be written (as on a full disk); creating names still works.
    let child = Command::new("bash")
        .args([
            "-c",
            r#"ulimit -f 0; trap "" XFSZ; exec "$0" -v run "$1""#,
            env!("CARGO_BIN_EXE_dropreel"),
            studio.root().to_str().unwrap(),
        ])
        .env_remove("RUNWAYML_API_SECRET")
        .env_remove("RUNWAY_API_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child = Tailed::new(child);
    // Two claim attempts made (one every 2 s): the first one's error, then the retry's.
    child
        .logged(
            "still cannot move the file into processing/",
            1,
            std::time::Duration::from_secs(10),
        )
        .await;
    let left: Vec<String> = std::fs::read_dir(studio.path("processing"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "left in processing/ while running: {left:?}"
    );
    sigterm(child.child());
    let (code, err) = child.wait_exit(std::time::Duration::from_secs(10)).await;
    assert_eq!(code, Some(143), "{err}");
    assert!(
        err.contains("cannot move the file into processing/"),
        "{err}"
    );
    assert_eq!(studio.list("inbox"), ["a.png"]);
    assert!(
        studio.list("processing").is_empty(),
        "{:?}",
        studio.list("processing")
    );
}

// See: issue 12, item 7 — failed jobs back into inbox/ with one command.
#[test]
fn retry_puts_a_failed_job_back_and_the_next_run_makes_it() {
    let studio = Studio::new(
        "backend: local\ndefaults:\n  duration: 1\nlocal:\n  fps: 6\nwatch:\n  settle: 20ms\n  sidecar_wait: 10ms\n",
    );
    let root = studio.root().to_str().unwrap();
    // Too long for a title card: it fails.
    studio.put("inbox/card.txt", "a very long title ".repeat(20).as_bytes());
    studio.put("inbox/card.yaml", b"duration: 1\n");
    let out = dropreel(&["run", root], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    studio.assert_listing("failed", &["card.error.txt", "card.txt", "card.yaml"]);
    // Fixed where it failed, then put back.
    studio.put("failed/card.txt", b"A short title");
    let out = dropreel(&["retry", root, "card", "nothing-of-that-name"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a name matched nothing: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("back in inbox/: card.yaml, card.txt"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("no failed job named nothing-of-that-name"));
    studio.assert_listing("failed", &[]);
    studio.assert_listing("inbox", &["card.txt", "card.yaml"]);
    let out = dropreel(&["run", root], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(studio.path("done/card.mp4").exists());
    let out = dropreel(&["retry", root], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("failed/ holds no failed job"));
}

// See: issue 21, item 1 — `cd studio; dropreel retry notes` took `notes` for the studio.
#[test]
fn inside_a_studio_retry_takes_its_first_argument_as_a_name() {
    let studio = Studio::new("backend: local\n");
    studio.put("failed/notes.txt", b"A short title");
    studio.put("failed/notes.error.txt", b"the text was too long");
    let out = dropreel_in(Some(studio.root()), &["retry", "notes", "ghost"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "ghost matched nothing: {t}");
    assert!(t.contains("back in inbox/: notes.txt"), "{t}");
    assert!(t.contains("no failed job named ghost"), "{t}");
    studio.assert_listing("inbox", &["notes.txt"]);
}

// See: issue 12, item 9 — a user service that runs `watch` on the studio.
#[test]
fn service_install_writes_a_unit_with_absolute_paths_and_uninstall_removes_it() {
    let studio = Studio::new("backend: local\n");
    let home = tempfile::tempdir().unwrap();
    let root = studio.root().canonicalize().unwrap();
    let config = home.path().join("cfg");
    let env = [
        ("HOME", home.path().to_str().unwrap()),
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
    ];
    let out = dropreel(&["service", "install", root.to_str().unwrap()], &env);
    let has_systemd = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .any(|d| d.join("systemctl").is_file());
    if !cfg!(target_os = "linux") || !has_systemd {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("has neither"), "{}", text(&out));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let units = home.path().join("cfg/systemd/user");
    let unit_name = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .next()
        .expect("a unit was written");
    assert!(unit_name.starts_with("dropreel-") && unit_name.ends_with(".service"));
    let unit = std::fs::read_to_string(units.join(&unit_name)).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_dropreel"));
    assert!(
        unit.contains(&format!(
            "ExecStart=\"{}\" watch \"{}\"",
            exe.display(),
            root.display()
        )),
        "{unit}"
    );
    assert!(unit.contains("Restart=on-failure"), "{unit}");
    assert!(
        text(&out).contains("journalctl --user -u"),
        "{}",
        text(&out)
    );
    let out = dropreel(&["service", "uninstall", root.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!units.join(&unit_name).exists());
    let out = dropreel(&["service", "install", "/no/such/studio"], &env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no studio there: {}",
        text(&out)
    );
}

// See: issue 21, item 1 — a file that is not whole waited in inbox/ without a word; `status`
// now lists it, with why and when it is given up, until it is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_a_file_that_is_not_whole_until_it_is() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new()
        .watch("truncated_after", "1h")
        .watch("rescan", "1h")
        .start()
        .await;
    std::fs::create_dir_all(studio.path("inbox/shoot")).unwrap();
    let whole = jpeg_bytes(64, 48);
    let (head, rest) = whole.split_at(whole.len() / 2);
    studio.put("inbox/shoot/cut.jpg", head);
    let w = Watching::start(&studio);
    let mut shown = String::new();
    until(
        "status to list shoot/cut.jpg as not whole",
        std::time::Duration::from_secs(10),
        || {
            shown = status(studio.root());
            shown.contains("shoot/cut.jpg") && shown.contains("not whole")
        },
    )
    .await;
    let line = shown.lines().find(|l| l.contains("shoot/cut.jpg")).unwrap();
    assert!(line.contains("JPEG"), "why: {shown}");
    assert!(line.contains("failed/ at"), "when it is given up: {shown}");
    // The rest of it arrives: it is taken, and no longer listed.
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(studio.path("inbox/shoot/cut.jpg"))
        .unwrap();
    f.write_all(rest).unwrap();
    drop(f);
    studio
        .appears("done/shoot/cut.mp4", std::time::Duration::from_secs(10))
        .await;
    until(
        "status to no longer list it",
        std::time::Duration::from_secs(10),
        || {
            shown = status(studio.root());
            !shown.contains("not whole")
        },
    )
    .await;
    w.stop().await;
}

// See: issue 21, item 5 — `status` listed an instance killed with kill -9 as running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_does_not_show_a_killed_instance_as_running() {
    let studio = Studio::new("backend: local\n");
    let root = studio.root();
    let child = Reaped::new(spawn_watch(root));
    wait_started(root, child.child()).await;
    let pid = child.child().id();
    let running = format!("pid {pid} (watch with local");
    until(
        "status to show it running",
        std::time::Duration::from_secs(10),
        || status(root).contains(&running),
    )
    .await;
    let mut child = child.take();
    child.kill().unwrap(); // SIGKILL: no clean stop, its status file stays
    child.wait().unwrap();
    let shown = status(root);
    assert!(!shown.contains(&running), "not running: {shown}");
    assert!(
        shown.contains(&format!("pid {pid}")) && shown.contains("stopped without cleaning up"),
        "{shown}"
    );
    // Its process is gone on this host: its file is removed, and the next status is quiet.
    assert!(
        !studio
            .list("processing")
            .iter()
            .any(|n| n.starts_with(".instance-")),
        "{:?}",
        studio.list("processing")
    );
    assert!(!status(root).contains(&format!("pid {pid}")));

    // An instance of another machine that has not written its file for longer than its lease.
    let file = studio.path("processing/.instance-0123456789abcdef.json");
    std::fs::write(
        &file,
        r#"{"instance":"0123456789abcdef","host":"another-host","pid":4242,"mode":"watch",
            "backend":"runway","started":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:10:00Z"}"#,
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
    let shown = status(root);
    assert!(
        !shown.contains("pid 4242 (watch with"),
        "not running: {shown}"
    );
    assert!(
        shown.contains("another-host pid 4242") && shown.contains("not heard from"),
        "{shown}"
    );
}

/// Sets the mtime of the file or folder at `path` to `ago` in the past.
fn age(path: &std::path::Path, ago: std::time::Duration) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - ago)
        .unwrap();
}

// See: issue 21, item 5 — a job folder holding only .DS_Store (Finder browsing processing/) showed
// "in flight" in status forever, and recovery could not remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_folder_holding_only_os_files_is_not_in_flight_and_is_removed() {
    let Scene {
        fake: _fake,
        studio,
    } = Scenario::new()
        .fake(|s| s.task_time = std::time::Duration::from_millis(600))
        .start()
        .await;
    let old = studio.path("processing/20260101T000000Z-0badf00d");
    let young = studio.path("processing/20260101T000001Z-0badf00e");
    for dir in [&old, &young] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    }
    std::fs::write(old.join("Thumbs.db"), b"x").unwrap();
    age(&old, std::time::Duration::from_secs(120));
    let shown = status(studio.root());
    assert!(
        shown.contains("0 jobs in flight") && shown.contains("no jobs in flight"),
        "a folder with no job in it is no job: {shown}"
    );
    // A job that Finder looks into while it runs: its folder goes with it at delivery.
    studio.put("inbox/cat.png", &png_bytes(16, 9));
    let run = tokio::spawn({
        let settings = studio.settings(KEY);
        async move {
            let backend = dropreel::backend::Chosen::build(&settings).unwrap();
            dropreel::run::pipeline::run(
                &settings,
                backend,
                dropreel::run::pipeline::Mode::Run,
                std::future::pending(),
            )
            .await
            .unwrap()
        }
    });
    let mut job = None;
    until(
        "cat.png submitted",
        std::time::Duration::from_secs(10),
        || {
            job = studio.list("processing").into_iter().find(|id| {
                std::fs::read_to_string(studio.path(&format!("processing/{id}/job.json")))
                    .is_ok_and(|t| t.contains("\"submitted\""))
            });
            job.is_some()
        },
    )
    .await;
    let job = job.unwrap();
    studio.put(&format!("processing/{job}/.DS_Store"), b"\0\0\0\x01Bud1");
    let summary = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.succeeded, 1);
    // The old leftover is removed; the young one might still be a claim in progress: it stays
    // until nobody can be claiming into it.
    let left: Vec<String> = studio
        .list("processing")
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(left, ["20260101T000001Z-0badf00e"], "{left:?}");
}
