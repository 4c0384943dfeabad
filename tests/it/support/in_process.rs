//! The service in this process, composed as `dropreel` composes it ([`dropreel::run::serve()`]):
//! `run` to completion on a studio, or a `watch` to stop later.

use std::time::{Duration, Instant};

use dropreel::config::{Env, Settings};
use dropreel::run::pipeline::{Mode, Summary};
use dropreel_testkit::{KEY, Studio};

/// Runs the real pipeline on a studio.
pub trait InProcess {
    fn settings(&self, key: &str) -> Settings;
    /// `dropreel run` in process, with the given key; fails the test after `limit`.
    fn run_with_key(&self, key: &str, limit: Duration) -> impl Future<Output = Summary>;
    /// `dropreel run` in process with the test key.
    fn run(&self) -> impl Future<Output = Summary>;
    /// `dropreel run` in process with the local renderer (no key).
    fn run_local(&self) -> impl Future<Output = Summary>;
}

impl InProcess for Studio {
    fn settings(&self, key: &str) -> Settings {
        let env = Env::from_pairs([("RUNWAYML_API_SECRET", key)]);
        Settings::load(self.root(), None, &env).unwrap()
    }

    async fn run_with_key(&self, key: &str, limit: Duration) -> Summary {
        let settings = self.settings(key);
        tokio::time::timeout(
            limit,
            dropreel::run::serve(&settings, Mode::Run, None, None, std::future::pending()),
        )
        .await
        .expect("run did not finish in time")
        .unwrap()
    }

    async fn run(&self) -> Summary {
        self.run_with_key(KEY, Duration::from_secs(30)).await
    }

    async fn run_local(&self) -> Summary {
        let env = Env::from_pairs([]);
        let settings = Settings::load(self.root(), None, &env).unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            dropreel::run::serve(&settings, Mode::Run, None, None, std::future::pending()),
        )
        .await
        .expect("run did not finish in time")
        .unwrap()
    }
}

/// A running `watch`; `stop()` ends it and returns its summary.
pub struct Watching {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Summary>,
}

impl Watching {
    pub fn start(studio: &Studio) -> Watching {
        let settings = studio.settings(KEY);
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dropreel::run::serve(&settings, Mode::Watch, None, None, async {
                let _ = rx.await;
            })
            .await
            .unwrap()
        });
        Watching { stop, task }
    }

    pub async fn stop(self) -> Summary {
        self.stop.send(()).unwrap();
        self.task.await.unwrap()
    }
}

/// The running instance's status file.
pub fn instance_file(studio: &Studio) -> serde_json::Value {
    let name = studio
        .list("processing")
        .into_iter()
        .find(|n| n.starts_with(".instance-"))
        .expect("an instance file");
    studio.json(&format!("processing/{name}"))
}

/// Waits until the instance file satisfies `ok`.
pub async fn until_instance(studio: &Studio, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let t0 = Instant::now();
    loop {
        if std::panic::catch_unwind(|| instance_file(studio)).is_ok_and(|v| ok(&v)) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
