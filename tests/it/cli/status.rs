//! The commands beside `run`: `status` (jobs per folder, files not whole, killed instances, job
//! folders that only hold OS files), `retry` and `service`.

use super::*;

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
