//! `dropreel run` as a script sees it: its exit codes, a studio it refuses, a signal, an undelivered
//! job, its logs, the warnings for files left alone, a full disk at claim time.

use super::*;

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
