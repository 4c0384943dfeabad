//! A scenario builder, so a test reads like its spec: the fake Runway API with its switches, a
//! studio configured against it, the files dropped, then a run in process, and expectations on
//! the outcome, the studio's folders and the requests. Each expectation is `#[track_caller]`: a
//! failure names the test's line.
//!
//! ```ignore
//! let r = Scenario::new()
//!     .fake(|s| s.concurrency = 1)
//!     .runway("retries", "1")
//!     .yaml("defaults:\n  model: veo3.1\n")
//!     .put("inbox/a.png", png_bytes(8, 8))
//!     .run()
//!     .await;
//! r.outcome(1, 0).done(&["a.mp4", "a.png", "a.result.json"]).sent("POST", "/v1/", 1);
//! ```

use dropreel::run::pipeline::Summary;
use dropreel_testkit::{FakeRunway, Studio, Switches, TestConfig};

use crate::support::InProcess as _;

/// What a test sets up: the fake API's switches, the configuration, the files dropped.
pub struct Scenario {
    switches: Switches,
    config: TestConfig,
    files: Vec<(String, Vec<u8>)>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    /// The fake API with its defaults; [`TestConfig`]'s short intervals.
    pub fn new() -> Scenario {
        Scenario {
            switches: Switches::default(),
            // The fake's address is set at the start.
            config: TestConfig::new(""),
            files: Vec::new(),
        }
    }

    /// Sets the fake API's switches (`|s| s.concurrency = 1`).
    pub fn fake(mut self, f: impl FnOnce(&mut Switches)) -> Scenario {
        f(&mut self.switches);
        self
    }

    /// Sets `runway.<key>`.
    pub fn runway(mut self, key: &'static str, value: &str) -> Scenario {
        self.config = self.config.runway(key, value);
        self
    }

    /// Sets `watch.<key>`.
    pub fn watch(mut self, key: &'static str, value: &str) -> Scenario {
        self.config = self.config.watch(key, value);
        self
    }

    /// Appends YAML to the configuration (`defaults:`, `presets:`…).
    pub fn yaml(mut self, extra: &str) -> Scenario {
        self.config = self.config.extra(extra);
        self
    }

    /// A file dropped before the run (`rel` from the studio's root, e.g. `inbox/a.png`).
    pub fn put(mut self, rel: &str, bytes: impl AsRef<[u8]>) -> Scenario {
        self.files.push((rel.to_string(), bytes.as_ref().to_vec()));
        self
    }

    /// The fake API started and the studio made, with the files in it; nothing runs yet.
    pub async fn start(self) -> Scene {
        let fake = FakeRunway::start(self.switches).await;
        let studio = Studio::new(&self.config.runway("base_url", &fake.url).yaml());
        for (rel, bytes) in &self.files {
            if let Some(dir) = studio.path(rel).parent() {
                std::fs::create_dir_all(dir).unwrap();
            }
            studio.put(rel, bytes);
        }
        Scene { fake, studio }
    }

    /// `dropreel run` in process on the scenario: what it ended with.
    pub async fn run(self) -> Ran {
        self.start().await.run().await
    }
}

/// The fake API and the studio, set up.
pub struct Scene {
    pub fake: FakeRunway,
    pub studio: Studio,
}

impl Scene {
    /// `dropreel run` in process with the test key.
    pub async fn run(self) -> Ran {
        let summary = self.studio.run().await;
        Ran {
            fake: self.fake,
            studio: self.studio,
            summary,
        }
    }
}

/// A scenario after its run: the fake API (its requests), the studio, the run's summary.
pub struct Ran {
    pub fake: FakeRunway,
    pub studio: Studio,
    pub summary: Summary,
}

impl Ran {
    /// The jobs delivered and failed.
    #[track_caller]
    pub fn outcome(&self, succeeded: usize, failed: usize) -> &Ran {
        self.summary.outcome(succeeded, failed);
        self
    }

    /// What `done/` holds (sorted names).
    #[track_caller]
    pub fn done(&self, names: &[&str]) -> &Ran {
        self.studio.assert_listing("done", names);
        self
    }

    /// What `failed/` holds (sorted names).
    #[track_caller]
    pub fn failed(&self, names: &[&str]) -> &Ran {
        self.studio.assert_listing("failed", names);
        self
    }

    /// What `inbox/` holds (sorted names).
    #[track_caller]
    pub fn inbox(&self, names: &[&str]) -> &Ran {
        self.studio.assert_listing("inbox", names);
        self
    }

    /// How many requests the fake API saw with `method` on a path starting with `path_prefix`.
    #[track_caller]
    pub fn sent(&self, method: &str, path_prefix: &str, n: usize) -> &Ran {
        let got = self.fake.count(method, path_prefix);
        assert_eq!(got, n, "{method} {path_prefix}… requests");
        self
    }

    /// `failed/<stem>.error.txt` holds every one of `parts`; its text.
    #[track_caller]
    pub fn error_says(&self, stem: &str, parts: &[&str]) -> String {
        self.studio.error_says(stem, parts)
    }
}

/// Expectations on a run's summary.
pub trait Outcome {
    /// The jobs delivered and failed.
    fn outcome(&self, succeeded: usize, failed: usize) -> &Self;
}

impl Outcome for Summary {
    #[track_caller]
    fn outcome(&self, succeeded: usize, failed: usize) -> &Summary {
        assert_eq!(
            (self.succeeded, self.failed),
            (succeeded, failed),
            "{self:?}"
        );
        self
    }
}

/// Expectations on a studio.
pub trait StudioExpect {
    /// `failed/<stem>.error.txt` holds every one of `parts`; its text.
    fn error_says(&self, stem: &str, parts: &[&str]) -> String;
}

impl StudioExpect for Studio {
    #[track_caller]
    fn error_says(&self, stem: &str, parts: &[&str]) -> String {
        let t = self.read(&format!("failed/{stem}.error.txt"));
        for p in parts {
            assert!(t.contains(p), "{p:?} not in {stem}.error.txt:\n{t}");
        }
        t
    }
}
