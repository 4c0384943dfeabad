//! A running binary whose stderr is read as it comes, so a test can wait for the log line that
//! proves an attempt happened (instead of sleeping), then for its exit.

use std::io::BufRead as _;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dropreel_testkit::until;

/// A child process with its stderr read line by line into memory.
pub struct Tailed {
    child: Child,
    err: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tailed {
    pub fn new(mut child: Child) -> Tailed {
        let stderr = child.stderr.take().expect("stderr piped");
        let err = Arc::new(Mutex::new(String::new()));
        let reader = std::thread::spawn({
            let err = err.clone();
            move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut e = err.lock().unwrap();
                    e.push_str(&line);
                    e.push('\n');
                }
            }
        });
        Tailed {
            child,
            err,
            reader: Some(reader),
        }
    }

    pub fn child(&self) -> &Child {
        &self.child
    }

    /// The lines that contain `needle`, so far.
    pub fn count(&self, needle: &str) -> usize {
        self.err
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Completes when `n` lines contain `needle`; fails the test after `limit`.
    #[track_caller]
    pub fn logged(&self, needle: &str, n: usize, limit: Duration) -> impl Future<Output = ()> {
        let what = format!("{n} line(s) with {needle:?} in the logs");
        until(&what, limit, move || self.count(needle) >= n)
    }

    /// Waits for the child to exit; its exit code and all of its stderr.
    pub async fn wait_exit(mut self, limit: Duration) -> (Option<i32>, String) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if t0.elapsed() > limit {
                self.child.kill().unwrap();
                panic!("dropreel did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let err = self.err.lock().unwrap().clone();
        (status.code(), err)
    }
}

impl Drop for Tailed {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
