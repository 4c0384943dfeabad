//! The live view: on a terminal (a pseudo-terminal made by `script`), `run` draws a line per job in
//! flight and a total line; redirected to a file, or with `NO_COLOR`, its output is plain log lines
//! with no escape codes.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A studio with three images and a fake API whose tasks take long enough to be drawn.
async fn studio_with_slow_tasks() -> (FakeRunway, Studio) {
    let fake = FakeRunway::start(Switches {
        task_time: Duration::from_millis(900),
        ..Switches::default()
    })
    .await;
    let studio = Studio::new(&test_config(&fake.url, ""));
    for name in ["alpha", "beta", "gamma"] {
        studio.put(&format!("inbox/{name}.png"), &png_distinct(12, 8));
    }
    (fake, studio)
}

/// `dropreel run` on `studio` with `env`; under a pseudo-terminal when `tty`. Its output (stdout
/// and stderr; one stream under `script`) and whether it exited 0.
async fn run(studio: &Studio, tty: bool, env: &[(&str, &str)]) -> (String, bool) {
    let bin = dropreel_bin();
    let root = studio.root().to_str().unwrap().to_string();
    let mut cmd = if tty {
        // util-linux's `script` runs the command on a pseudo-terminal and copies what it shows.
        let mut c = Command::new("script");
        c.args([
            "-q",
            "-e",
            "-c",
            &format!("'{}' run '{root}'", bin.display()),
            "/dev/null",
        ]);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(["run", &root]);
        c
    };
    cmd.env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAYML_BASE_URL")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || {
        cmd.output()
            .expect("`script` (util-linux, Debian's bsdutils) runs the command on a terminal")
    })
    .await
    .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (text, out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_run_draws_each_job_and_the_totals() {
    let (_fake, studio) = studio_with_slow_tasks().await;
    let (out, ok) = run(&studio, true, &[]).await;
    assert!(ok, "{out}");
    assert_eq!(studio.list("done").len(), 9);
    assert!(out.contains('\u{1b}'), "drawn with escape codes");
    // A job's line: its file (padded to 32), its kind and step; the total line under it.
    let job_line = ["alpha.png", "beta.png", "gamma.png"]
        .iter()
        .any(|n| out.contains(&format!("  {n:<32} image ")));
    assert!(job_line, "a line per job in flight: {out}");
    assert!(
        ["waiting for a slot", "sending", "submitted", "running"]
            .iter()
            .any(|step| out.contains(&format!(" image {step}"))),
        "the job's step: {out}"
    );
    assert!(out.contains("· in flight"), "{out}");
    assert!(
        out.contains("done 2 · failed 0") || out.contains("done 3 · failed 0"),
        "{out}"
    );
    // Log lines still come through, above the view.
    assert!(out.contains("delivered"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_or_with_no_color_the_output_is_plain_lines() {
    let (_fake, studio) = studio_with_slow_tasks().await;
    let (out, ok) = run(&studio, false, &[]).await;
    assert!(ok, "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no escape codes in a file: {out:?}"
    );
    assert!(!out.contains("· in flight"), "no live view in a file");
    assert!(out.lines().any(|l| l.contains("delivered")), "{out}");

    for name in ["delta", "epsilon"] {
        studio.put(&format!("inbox/{name}.png"), &png_distinct(12, 8));
    }
    let (out, ok) = run(&studio, true, &[("NO_COLOR", "1")]).await;
    assert!(ok, "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "NO_COLOR: no escape codes: {out:?}"
    );
    assert!(!out.contains("· in flight"), "NO_COLOR: no live view");
    assert!(out.lines().any(|l| l.contains("delivered")), "{out}");
}
