//! The real binary as a service: start it, stop it with a signal, wait for it and read its stderr.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dropreel_testkit::{KEY, until};

/// The binary under test.
pub fn dropreel_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dropreel"))
}

pub fn spawn_watch(root: &Path) -> Child {
    spawn_watch_with(root, &[])
}

/// `dropreel watch ROOT` with more arguments (`--ui=…`), JSON logs, the fake API's key.
pub fn spawn_watch_with(root: &Path, args: &[&str]) -> Child {
    Command::new(dropreel_bin())
        .args(["watch", root.to_str().unwrap(), "--log-format", "json"])
        .args(args)
        .env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `dropreel run ROOT` with JSON logs and `env` added: its exit code and logs.
pub async fn run_binary(root: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let child = Command::new(dropreel_bin())
        .args(["run", root.to_str().unwrap(), "--log-format", "json"])
        .env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(child, Duration::from_secs(60)).await
}

/// What `dropreel status ROOT` prints.
pub fn status(root: &Path) -> String {
    let out = Command::new(dropreel_bin())
        .args(["status", root.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the child to exit; its exit code and stderr.
pub async fn wait_exit(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("dropreel did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every file under the studio, as paths relative to it.
pub fn all_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["inbox", "processing", "done", "failed"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(
                        e.path()
                            .strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
    }
    out.sort();
    out
}

/// Waits until the instance has started (its status file is in `processing/`).
pub async fn wait_started(root: &Path, child: &Child) {
    let pid = format!("\"pid\": {}", child.id());
    until("dropreel to start", Duration::from_secs(10), || {
        all_files(root).iter().any(|f| {
            f.starts_with("processing/.instance-")
                && std::fs::read_to_string(root.join(f)).is_ok_and(|t| t.contains(&pid))
        })
    })
    .await;
}

/// A child process that is killed when dropped, so a failing test leaves no dropreel running.
pub struct Reaped(Option<Child>);

impl Reaped {
    pub fn new(child: Child) -> Reaped {
        Reaped(Some(child))
    }

    pub fn child(&self) -> &Child {
        self.0.as_ref().expect("a child")
    }

    /// The child, no longer killed at drop (to wait for its exit).
    pub fn take(mut self) -> Child {
        self.0.take().expect("a child")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
