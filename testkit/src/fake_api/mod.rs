//! A fake Runway API: a real HTTP server on 127.0.0.1 that validates requests as strictly as the
//! real one (auth, version header, every field of a create body per model, uploads), runs tasks
//! with a server-side concurrency limit and THROTTLED queueing, and has a switch for every fault
//! (429s, 5xx, task failures, expired or cut downloads, a wrong key, lost answers). It prices
//! every task as Runway does since SDK 5.14.0: `estimatedCost` in the create answer and on a task
//! still running, `cost` on a finished one (0 when refunded), at prices a test can change.
//!
//! Here: its types (switches, what it saw) and what a test asks of it. `lifecycle` starts,
//! stops and restarts it; `validate` holds its model table and checks a create body as strictly
//! as the real API (for the tests to mean anything); `handlers` answers each endpoint;
//! `organization` answers `GET /v1/organization` and keeps each model's daily limit.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod handlers;
mod lifecycle;
mod organization;
mod validate;

pub use organization::Organization;

pub const KEY: &str = "key_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const VERSION: &str = "2024-11-06";

/// A request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub at: Instant,
    pub status: u16,
    pub body: Option<Value>,
    pub auth: Option<String>,
}

#[derive(Debug, Clone)]
struct Task {
    created: Instant,
    started: Option<Instant>,
    finish: Option<Instant>,
    failure: Option<String>,
    cancelled: bool,
    /// `estimatedCost.credits`: the model's price per second times the task's seconds.
    estimated: f64,
    /// Its final `cost.credits` is 0.
    refunded: bool,
}

/// How a finished task's `cost` is sent (to test a client's lenience).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CostField {
    /// `{"credits": <int>}`, as the API documents.
    #[default]
    Number,
    /// No `cost` member at all.
    Missing,
    /// `{"credits": "lots"}`.
    NotANumber,
}

/// The fake's prices, credits per output second: Runway's published ones where our catalog has
/// them too, and made-up ones for the models it prices not (the fake charges every model).
pub fn default_prices() -> BTreeMap<String, f64> {
    [
        ("gen4_turbo", 5.0),
        ("gen4.5", 12.0),
        ("veo3", 40.0),
        ("veo3.1", 20.0),
        ("veo3.1_fast", 10.0),
        ("seedance2", 36.0),
        ("gen3a_turbo", 5.0),
        ("gen4_aleph", 15.0),
        ("aleph2", 15.0),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p))
    .collect()
}

/// Switches: change them while the fake runs.
#[derive(Debug, Clone)]
pub struct Switches {
    /// The key the server accepts.
    pub key: String,
    /// Tasks running at once; the rest are THROTTLED.
    pub concurrency: usize,
    pub pending_time: Duration,
    pub task_time: Duration,
    /// Each task runs `task_time` plus up to this much more (drawn per task, reproducibly).
    pub task_jitter: Duration,
    /// Delay before answering any API request.
    pub latency: Duration,
    /// The next N create requests get 429 with this Retry-After header value.
    pub rate_limited: u32,
    pub retry_after: Option<String>,
    /// The create request with this number (1-based, counting every create) gets 429 with
    /// `retry_after`, while those around it go through.
    pub rate_limit_nth: Option<usize>,
    /// The next N create requests get 503.
    pub server_errors: u32,
    /// Every create request gets 503 while set.
    pub outage: bool,
    /// Failure codes for the next tasks created (one each), e.g. "SAFETY.INPUT.IMAGE".
    pub failure_codes: VecDeque<String>,
    /// The next N output downloads answer 403 (expired URL).
    pub expired_downloads: u32,
    /// The next N output downloads are cut midway.
    pub cut_downloads: u32,
    /// The next N create requests create the task and then drop the connection unanswered.
    pub drop_create_answers: u32,
    /// The next N create requests create the task and then answer 502 (a gateway that gave up on
    /// the service after it had made the task).
    pub gateway_errors_after_create: u32,
    /// Delay before the create request is handled (widens the submit window).
    pub create_latency: Duration,
    /// Delay before an output download starts sending (widens the download window).
    pub download_latency: Duration,
    /// The video every task's output URL serves; `None`: [`mp4_bytes`], a stand-in no decoder reads.
    pub video: Option<Arc<Vec<u8>>>,
    /// Credits per output second, per model ([`default_prices`]; a model not listed costs 10).
    pub prices: BTreeMap<String, f64>,
    /// The seconds a task priced with no `duration` in its body makes (the fake does not read the
    /// input video's length).
    pub seconds_without_duration: u32,
    /// The next N tasks created are refunded: their final `cost.credits` is 0.
    pub refunds: u32,
    /// How a finished task's `cost` is sent.
    pub cost_field: CostField,
    /// What `GET /v1/organization` answers; its daily limits are enforced on create (429).
    pub organization: Organization,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            key: KEY.into(),
            concurrency: 2,
            pending_time: Duration::from_millis(20),
            task_time: Duration::from_millis(100),
            task_jitter: Duration::ZERO,
            latency: Duration::ZERO,
            rate_limited: 0,
            retry_after: None,
            rate_limit_nth: None,
            server_errors: 0,
            outage: false,
            failure_codes: VecDeque::new(),
            expired_downloads: 0,
            cut_downloads: 0,
            drop_create_answers: 0,
            gateway_errors_after_create: 0,
            create_latency: Duration::ZERO,
            download_latency: Duration::ZERO,
            video: None,
            prices: default_prices(),
            seconds_without_duration: 5,
            refunds: 0,
            cost_field: CostField::Number,
            organization: Organization::default(),
        }
    }
}

#[derive(Default)]
struct Inner {
    sw: Switches,
    tasks: HashMap<String, Task>,
    order: Vec<String>,
    uploads: HashMap<String, usize>,
    seen: Vec<Seen>,
    next: u64,
    max_running: usize,
    /// Index in `order` of the first task not yet started.
    cursor: usize,
    /// Finish times of the started tasks, ascending.
    finishes: Vec<Instant>,
    last_start: Option<Instant>,
    /// Create requests received.
    creates: usize,
    /// Tasks made per model (counted in the organisation's daily generations).
    made: HashMap<String, u64>,
    /// `GET /v1/organization` requests received.
    organization_requests: usize,
    /// Creates refused for the organisation's daily limit.
    quota_refusals: usize,
    /// The most tasks made and not finished at once.
    max_in_flight: usize,
}

/// A running server: its stop switch and task.
type Serving = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// The fake Runway API.
#[derive(Clone)]
pub struct FakeRunway {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
    server: Arc<Mutex<Option<Serving>>>,
}

/// A tiny but well-formed MP4 (ftyp + mdat).
pub fn mp4_bytes() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&[0, 0, 0, 0x18]);
    v.extend_from_slice(b"ftypisom");
    v.extend_from_slice(&[0, 0, 2, 0]);
    v.extend_from_slice(b"isommp41");
    let payload = 4000u32;
    v.extend_from_slice(&(payload + 8).to_be_bytes());
    v.extend_from_slice(b"mdat");
    v.extend((0..payload).map(|i| (i % 251) as u8));
    v
}
impl FakeRunway {
    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Bodies of the create requests that created a task.
    pub fn created(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/v1/image_to_video" && s.status == 200)
            .filter_map(|s| s.body)
            .collect()
    }

    /// The bodies of the create requests on `path` (e.g. `/v1/text_to_video`) that made a task.
    pub fn created_on(&self, path: &str) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == path && s.status == 200)
            .filter_map(|s| s.body)
            .collect()
    }

    /// The `promptText` of every create request that made a task, in order ("" when none).
    pub fn prompts(&self) -> Vec<String> {
        self.created()
            .iter()
            .map(|b| b["promptText"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Tasks created, including those whose answer was dropped.
    pub fn tasks_created(&self) -> usize {
        self.inner.lock().unwrap().tasks.len()
    }

    /// The promptImage of every create request that made a task (answered or not).
    pub fn created_images(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/v1/image_to_video" && (s.status == 200 || s.status == 0))
            .filter_map(|s| {
                s.body
                    .and_then(|b| b["promptImage"].as_str().map(str::to_string))
            })
            .collect()
    }

    /// Requests to `path` (prefix) with `method`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(path_prefix))
            .count()
    }

    /// For every finished task, how long after its finish its output was first requested.
    pub fn detection_delays(&self) -> Vec<f64> {
        let inner = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for (id, t) in &inner.tasks {
            let Some(finish) = t.finish else { continue };
            let path = format!("/files/{id}.mp4");
            if let Some(s) = inner.seen.iter().find(|s| s.path == path) {
                out.push(s.at.saturating_duration_since(finish).as_secs_f64());
            }
        }
        out
    }

    /// Whether task `id` has finished (its video is ready, or it failed).
    pub fn task_done(&self, id: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        inner
            .tasks
            .get(id)
            .and_then(|t| t.finish)
            .is_some_and(|f| f <= Instant::now())
    }

    /// When each finished task finished, earliest first.
    pub fn finishes(&self) -> Vec<Instant> {
        let inner = self.inner.lock().unwrap();
        let mut out: Vec<Instant> = inner.tasks.values().filter_map(|t| t.finish).collect();
        out.sort();
        out
    }

    /// The most tasks that were RUNNING at once.
    pub fn max_running(&self) -> usize {
        self.inner.lock().unwrap().max_running
    }

    /// Uploaded files and their sizes.
    pub fn uploads(&self) -> HashMap<String, usize> {
        self.inner.lock().unwrap().uploads.clone()
    }
}
