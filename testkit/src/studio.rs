//! A studio in a temp folder, the short intervals tests run with, and what is in it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A studio in a temp folder.
pub struct Studio {
    pub dir: tempfile::TempDir,
}

/// A `dropreel.yaml` for tests: short intervals against the fake API at `base_url`, with any
/// `runway:` or `watch:` key set otherwise, and more YAML appended.
#[derive(Debug, Clone)]
pub struct TestConfig {
    runway: Vec<(&'static str, String)>,
    watch: Vec<(&'static str, String)>,
    extra: String,
}

impl TestConfig {
    pub fn new(base_url: &str) -> TestConfig {
        let pairs =
            |kv: &[(&'static str, &str)]| kv.iter().map(|(k, v)| (*k, v.to_string())).collect();
        TestConfig {
            runway: pairs(&[
                ("base_url", base_url),
                ("poll_interval", "30ms"),
                ("retry_min", "20ms"),
                ("retry_max", "300ms"),
                ("request_timeout", "5s"),
                ("max_in_flight", "2"),
            ]),
            watch: pairs(&[
                ("settle", "60ms"),
                ("sidecar_wait", "40ms"),
                ("rescan", "1s"),
            ]),
            extra: String::new(),
        }
    }

    fn set(list: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => list.push((key, value.to_string())),
        }
    }

    /// Sets `runway.<key>`.
    pub fn runway(mut self, key: &'static str, value: &str) -> TestConfig {
        Self::set(&mut self.runway, key, value);
        self
    }

    /// Sets `watch.<key>`.
    pub fn watch(mut self, key: &'static str, value: &str) -> TestConfig {
        Self::set(&mut self.watch, key, value);
        self
    }

    /// Appends YAML (other sections: `defaults:`, `local:`…).
    pub fn extra(mut self, yaml: &str) -> TestConfig {
        self.extra.push_str(yaml);
        self
    }

    pub fn yaml(&self) -> String {
        let section = |name: &str, kv: &[(&str, String)]| {
            let mut out = format!("{name}:\n");
            for (k, v) in kv {
                out.push_str(&format!("  {k}: {v}\n"));
            }
            out
        };
        section("runway", &self.runway) + &section("watch", &self.watch) + &self.extra
    }
}

/// [`TestConfig`] with its defaults; `extra` is appended to the YAML.
pub fn test_config(base_url: &str, extra: &str) -> String {
    TestConfig::new(base_url).extra(extra).yaml()
}

impl Studio {
    pub fn new(config: &str) -> Studio {
        crate::logs();
        let dir = tempfile::tempdir().unwrap();
        for d in ["inbox", "processing", "done", "failed"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("dropreel.yaml"), config).unwrap();
        Studio { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    #[track_caller]
    pub fn put(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.path(rel), bytes).unwrap();
    }

    /// Sorted names in a studio folder.
    #[track_caller]
    pub fn list(&self, folder: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[track_caller]
    pub fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// The states of the jobs in `processing/` right now (as their `job.json` says).
    pub fn job_states(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.path("processing")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path().join("job.json")).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .filter_map(|v| v["state"].as_str().map(str::to_string))
            .collect()
    }

    /// Asserts the (sorted) names in a studio folder; a failure points at the caller's line.
    #[track_caller]
    pub fn assert_listing(&self, folder: &str, expected: &[&str]) {
        let got = self.list(folder);
        assert_eq!(
            got, expected,
            "{folder}/ holds {got:?}, expected {expected:?}"
        );
    }

    /// Completes when an instance runs on the studio: its status file is in `processing/`, written
    /// after its start scan (a file dropped from then on is seen only by its watcher or rescan).
    #[track_caller]
    pub fn started(&self) -> impl Future<Output = ()> + use<> {
        let processing = self.path("processing");
        crate::until(
            "an instance's status file",
            Duration::from_secs(10),
            move || {
                std::fs::read_dir(&processing).is_ok_and(|d| {
                    d.filter_map(Result::ok)
                        .any(|e| e.file_name().to_string_lossy().starts_with(".instance-"))
                })
            },
        )
    }

    /// Completes when `rel` exists; fails the test after `limit`, naming the caller's line.
    #[track_caller]
    pub fn appears(&self, rel: &str, limit: Duration) -> impl Future<Output = ()> + use<> {
        let at = std::panic::Location::caller();
        let (path, rel) = (self.path(rel), rel.to_string());
        async move {
            let t0 = Instant::now();
            while !path.exists() {
                assert!(
                    t0.elapsed() < limit,
                    "{rel} did not appear within {limit:?} (waited for at {at})"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}
