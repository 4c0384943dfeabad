//! A fake Runway API: a real HTTP server on 127.0.0.1 that validates requests as strictly as the
//! real one (auth, version header, every field of a create body per model, uploads), runs tasks
//! with a server-side concurrency limit and THROTTLED queueing, and has a switch for every fault
//! (429s, 5xx, task failures, expired or cut downloads, a wrong key, lost answers).
//!
//! (Over 600 lines: one handler per endpoint and the per-model request validation, which must stay
//! as strict as the real API's for the tests to mean anything.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

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
    /// Starts the fake on 127.0.0.1 with these switches.
    pub async fn start(sw: Switches) -> FakeRunway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            sw,
            ..Inner::default()
        }));
        let fake = FakeRunway {
            inner,
            url,
            server: Arc::new(Mutex::new(None)),
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/v1/image_to_video", post(create_image))
            .route("/v1/text_to_video", post(create_text))
            .route("/v1/video_to_video", post(create_video))
            .route("/v1/tasks/{id}", get(task).delete(delete_task))
            .route("/v1/uploads", post(uploads))
            .route("/upload-target/{n}", post(upload_target))
            .route("/files/{id}", get(file))
            .fallback(fallback)
            .layer(axum::extract::DefaultBodyLimit::max(210 * 1024 * 1024))
            .with_state(self.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        *self.server.lock().unwrap() = Some((tx, handle));
    }

    /// Stops serving: connections are closed and new ones refused (the host is unreachable).
    pub async fn stop(&self) {
        let Some((tx, handle)) = self.server.lock().unwrap().take() else {
            return;
        };
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    }

    /// Serves again on the same port, with the same tasks and switches.
    pub async fn restart(&self) {
        let addr = self.url.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        self.serve(listener);
    }

    /// Changes the switches.
    pub fn set(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.inner.lock().unwrap().sw);
    }

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

    fn record(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        status: u16,
        body: Option<Value>,
    ) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.inner.lock().unwrap().seen.push(Seen {
            method: method.to_string(),
            path: path.to_string(),
            at: Instant::now(),
            status,
            body,
            auth,
        });
    }

    #[allow(clippy::result_large_err)] // a test server; the error is the response itself
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), Response> {
        let key = self.inner.lock().unwrap().sw.key.clone();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {key}")) {
            return Err(err(StatusCode::UNAUTHORIZED, "Invalid API key"));
        }
        if headers
            .get("x-runway-version")
            .and_then(|v| v.to_str().ok())
            != Some(VERSION)
        {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "X-Runway-Version header is missing or invalid",
            ));
        }
        Ok(())
    }

    async fn latency(&self) {
        let l = self.inner.lock().unwrap().sw.latency;
        if !l.is_zero() {
            tokio::time::sleep(l).await;
        }
    }

    /// Starts queued tasks at the exact moment a slot freed (first in, first out), as a server
    /// with `concurrency` workers would; called on every request, it backdates the starts.
    fn advance(inner: &mut Inner) {
        let now = Instant::now();
        let run_for = inner.sw.pending_time + inner.sw.task_time;
        while inner.cursor < inner.order.len() {
            let id = inner.order[inner.cursor].clone();
            let task = &inner.tasks[&id];
            if task.cancelled {
                inner.cursor += 1;
                continue;
            }
            let m = inner.finishes.len();
            let conc = inner.sw.concurrency.max(1);
            // The moment fewer than `conc` started tasks are unfinished.
            let mut t = task.created;
            if m >= conc {
                t = t.max(inner.finishes[m - conc]);
            }
            if let Some(last) = inner.last_start {
                t = t.max(last);
            }
            if t > now {
                break;
            }
            let running = inner.finishes.len() - inner.finishes.partition_point(|f| *f <= t);
            inner.max_running = inner.max_running.max(running + 1);
            let jitter = inner
                .sw
                .task_jitter
                .mul_f64(fastrand::Rng::with_seed(inner.cursor as u64).f64());
            let f = t + run_for + jitter;
            let task = inner.tasks.get_mut(&id).unwrap();
            task.started = Some(t);
            task.finish = Some(f);
            let at = inner.finishes.partition_point(|x| *x <= f);
            inner.finishes.insert(at, f);
            inner.last_start = Some(t);
            inner.cursor += 1;
        }
    }
}

fn err(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

const MODELS: &[(&str, &[&str], &[u32], bool)] = &[
    (
        "gen4_turbo",
        &[
            "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
        ],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
        false,
    ),
    (
        "gen4.5",
        &[
            "1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672",
        ],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
        true,
    ),
    (
        "veo3",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[8],
        false,
    ),
    (
        "veo3.1",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[4, 6, 8],
        false,
    ),
];

/// Image-to-video models that take a last frame (`promptImage` positions first and last).
const LAST_FRAME_MODELS: &[&str] = &["veo3.1"];

/// A `promptImage` URI: a data URI of a PNG, JPEG or WebP under 5 MB, or a known upload.
fn check_image_uri(img: &str, uploads: &HashMap<String, usize>) -> Result<(), String> {
    if let Some(rest) = img.strip_prefix("data:") {
        if img.len() >= 5 * 1024 * 1024 {
            return Err("promptImage: data URI exceeds 5MB".into());
        }
        let (mime, data) = rest
            .split_once(";base64,")
            .ok_or("promptImage: malformed data URI")?;
        if !["image/png", "image/jpeg", "image/webp"].contains(&mime) {
            return Err(format!("promptImage: unsupported type {mime}"));
        }
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| "promptImage: invalid base64")?;
        Ok(())
    } else if let Some(id) = img.strip_prefix("runway://") {
        if uploads.contains_key(id) {
            Ok(())
        } else {
            Err("promptImage: unknown upload".into())
        }
    } else {
        Err("promptImage must be an https URL, a runway:// URI or a data URI".into())
    }
}

/// Text to video: (model, ratios, durations); the prompt is always required.
const TEXT_MODELS: &[(&str, &[&str], &[u32])] = &[
    (
        "gen4.5",
        &["1280:720", "720:1280"],
        &[2, 3, 4, 5, 6, 7, 8, 9, 10],
    ),
    (
        "veo3",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[8],
    ),
    (
        "veo3.1",
        &["1280:720", "720:1280", "1080:1920", "1920:1080"],
        &[4, 6, 8],
    ),
];

/// Video to video: (model, the field that carries the video, the fields it takes).
const VIDEO_MODELS: &[(&str, &str, &[&str])] = &[
    (
        "aleph2",
        "videoUri",
        &[
            "model",
            "videoUri",
            "promptText",
            "ratio",
            "seed",
            "contentModeration",
        ],
    ),
    (
        "seedance2",
        "promptVideo",
        &["model", "promptVideo", "promptText", "ratio", "duration"],
    ),
];

/// The fields each create endpoint takes; any other is a 400, as with the real API.
fn fields_of(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/video_to_video" => &[
            "model",
            "videoUri",
            "promptVideo",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
        "/v1/text_to_video" => &[
            "model",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
        _ => &[
            "model",
            "promptImage",
            "promptText",
            "ratio",
            "duration",
            "seed",
            "contentModeration",
        ],
    }
}

/// Validates a create body for the endpoint at `path` as the real API does; the error message on
/// failure.
fn validate(path: &str, body: &Value, uploads: &HashMap<String, usize>) -> Result<(), String> {
    if let Some(obj) = body.as_object() {
        let fields = fields_of(path);
        if let Some(k) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(format!("{k} is not a field of {}", &path[4..]));
        }
    }
    let model = body["model"].as_str().ok_or("model is required")?;
    if path == "/v1/text_to_video" {
        return validate_text(model, body);
    }
    if path == "/v1/video_to_video" {
        return validate_video(model, body, uploads);
    }
    let (_, ratios, durations, prompt_required) = MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model: {model}"))?;
    let ratio = body["ratio"].as_str().ok_or("ratio is required")?;
    if !ratios.contains(&ratio) {
        return Err(format!("Invalid ratio {ratio} for {model}"));
    }
    if let Some(d) = body.get("duration") {
        let d = d.as_u64().ok_or("duration must be an integer")? as u32;
        if !durations.contains(&d) {
            return Err(format!("Invalid duration {d} for {model}"));
        }
    }
    match body.get("promptText") {
        Some(Value::String(p)) if p.is_empty() => return Err("promptText must not be empty".into()),
        Some(Value::String(p)) if p.encode_utf16().count() > 1000 => {
            return Err("promptText is too long".into());
        }
        Some(Value::String(_)) => {}
        None if *prompt_required => return Err("promptText is required".into()),
        None => {}
        Some(_) => return Err("promptText must be a string".into()),
    }
    // The plain string form, or the array form with positions (first, and last where the model
    // takes a last frame).
    let images: Vec<(&str, &str)> = match &body["promptImage"] {
        Value::String(uri) => vec![(uri.as_str(), "first")],
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let uri = item["uri"]
                    .as_str()
                    .ok_or("promptImage[].uri is required")?;
                let position = item["position"]
                    .as_str()
                    .ok_or("promptImage[].position is required")?;
                Ok((uri, position))
            })
            .collect::<Result<_, String>>()?,
        Value::Null => return Err("promptImage is required".into()),
        _ => return Err("promptImage must be a string or an array".into()),
    };
    for (i, (_, position)) in images.iter().enumerate() {
        match (*position, i) {
            ("first", 0) => {}
            ("last", 1) if LAST_FRAME_MODELS.contains(&model) => {}
            ("last", 1) => return Err(format!("{model} does not take a last frame")),
            (p, _) => return Err(format!("Invalid promptImage position {p} at {i}")),
        }
    }
    for (img, _) in images {
        check_image_uri(img, uploads)?;
    }
    if let Some(seed) = body.get("seed") {
        let s = seed.as_u64().ok_or("seed must be an integer")?;
        if s > 4_294_967_295 {
            return Err("seed out of range".into());
        }
    }
    Ok(())
}

/// The text-to-video body: a prompt, a ratio and a duration the model offers; no image.
fn validate_text(model: &str, body: &Value) -> Result<(), String> {
    let (_, ratios, durations) = TEXT_MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model for text_to_video: {model}"))?;
    let ratio = body["ratio"].as_str().ok_or("ratio is required")?;
    if !ratios.contains(&ratio) {
        return Err(format!("Invalid ratio {ratio} for {model}"));
    }
    let d = body["duration"].as_u64().ok_or("duration is required")? as u32;
    if !durations.contains(&d) {
        return Err(format!("Invalid duration {d} for {model}"));
    }
    match body.get("promptText") {
        Some(Value::String(p)) if p.trim().is_empty() => Err("promptText must not be empty".into()),
        Some(Value::String(p)) if p.encode_utf16().count() > 1000 => {
            Err("promptText is too long".into())
        }
        Some(Value::String(_)) => Ok(()),
        _ => Err("promptText is required".into()),
    }
}

/// The video-to-video body: the video, in the field the model names, as a known upload; only the
/// fields the model takes.
fn validate_video(
    model: &str,
    body: &Value,
    uploads: &HashMap<String, usize>,
) -> Result<(), String> {
    let (_, field, fields) = VIDEO_MODELS
        .iter()
        .find(|m| m.0 == model)
        .ok_or_else(|| format!("Invalid model for video_to_video: {model}"))?;
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| !fields.contains(&k.as_str())))
    {
        return Err(format!("{k} is not a field of video_to_video for {model}"));
    }
    let uri = body[*field]
        .as_str()
        .ok_or_else(|| format!("{field} is required"))?;
    let id = uri
        .strip_prefix("runway://")
        .ok_or_else(|| format!("{field} must be a runway:// upload here"))?;
    if !uploads.contains_key(id) {
        return Err(format!("{field}: unknown upload"));
    }
    Ok(())
}

async fn create_video(f: State<FakeRunway>, headers: HeaderMap, body: String) -> Response {
    create(f, "/v1/video_to_video", headers, body).await
}

async fn create_image(f: State<FakeRunway>, headers: HeaderMap, body: String) -> Response {
    create(f, "/v1/image_to_video", headers, body).await
}

async fn create_text(f: State<FakeRunway>, headers: HeaderMap, body: String) -> Response {
    create(f, "/v1/text_to_video", headers, body).await
}

async fn create(
    State(f): State<FakeRunway>,
    path: &'static str,
    headers: HeaderMap,
    body: String,
) -> Response {
    f.latency().await;
    let extra = f.inner.lock().unwrap().sw.create_latency;
    if !extra.is_zero() {
        tokio::time::sleep(extra).await;
    }
    let json: Option<Value> = serde_json::from_str(&body).ok();
    if let Err(r) = f.check_auth(&headers) {
        f.record(&Method::POST, path, &headers, r.status().as_u16(), json);
        return r;
    }
    let (resp, status) = {
        let mut inner = f.inner.lock().unwrap();
        inner.creates += 1;
        let nth = inner.sw.rate_limit_nth == Some(inner.creates);
        if inner.sw.rate_limited > 0 || nth {
            inner.sw.rate_limited = inner.sw.rate_limited.saturating_sub(u32::from(!nth));
            let mut r = err(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded your daily generation quota",
            );
            if let Some(ra) = &inner.sw.retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            (Some(r), 429)
        } else if inner.sw.outage || inner.sw.server_errors > 0 {
            inner.sw.server_errors = inner.sw.server_errors.saturating_sub(1);
            (
                Some(err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable",
                )),
                503,
            )
        } else {
            (None, 0)
        }
    };
    if let Some(r) = resp {
        f.record(&Method::POST, path, &headers, status, json);
        return r;
    }
    let Some(json) = json else {
        f.record(&Method::POST, path, &headers, 400, None);
        return err(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let uploads = f.inner.lock().unwrap().uploads.clone();
    if let Err(msg) = validate(path, &json, &uploads) {
        f.record(&Method::POST, path, &headers, 400, Some(json));
        return err(StatusCode::BAD_REQUEST, &msg);
    }
    let (id, drop_answer, gateway_error) = {
        let mut inner = f.inner.lock().unwrap();
        inner.next += 1;
        let id = format!("task-{:04}", inner.next);
        let failure = inner.sw.failure_codes.pop_front();
        inner.tasks.insert(
            id.clone(),
            Task {
                created: Instant::now(),
                started: None,
                finish: None,
                failure,
                cancelled: false,
            },
        );
        inner.order.push(id.clone());
        FakeRunway::advance(&mut inner);
        let drop_answer = inner.sw.drop_create_answers > 0;
        inner.sw.drop_create_answers = inner.sw.drop_create_answers.saturating_sub(1);
        let gateway_error = !drop_answer && inner.sw.gateway_errors_after_create > 0;
        if gateway_error {
            inner.sw.gateway_errors_after_create -= 1;
        }
        (id, drop_answer, gateway_error)
    };
    if gateway_error {
        f.record(&Method::POST, path, &headers, 502, Some(json));
        return err(StatusCode::BAD_GATEWAY, "Bad gateway");
    }
    if drop_answer {
        f.record(&Method::POST, path, &headers, 0, Some(json));
        // The task exists, but the client never hears of it: a body that breaks off.
        let stream = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"id\":")),
            Err(std::io::Error::other("connection dropped")),
        ]);
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("content-length", "64")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    f.record(&Method::POST, path, &headers, 200, Some(json));
    axum::Json(json!({ "id": id })).into_response()
}

async fn task(
    State(f): State<FakeRunway>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    f.latency().await;
    let path = format!("/v1/tasks/{id}");
    if let Err(r) = f.check_auth(&headers) {
        f.record(&Method::GET, &path, &headers, r.status().as_u16(), None);
        return r;
    }
    let mut inner = f.inner.lock().unwrap();
    FakeRunway::advance(&mut inner);
    let Some(t) = inner.tasks.get(&id).cloned() else {
        drop(inner);
        f.record(&Method::GET, &path, &headers, 404, None);
        return err(StatusCode::NOT_FOUND, "Task not found");
    };
    let (pending, run) = (inner.sw.pending_time, inner.sw.task_time);
    drop(inner);
    let now = Instant::now();
    let created = format!("{:?}", t.created);
    let body = if t.cancelled {
        json!({"id": id, "status": "CANCELLED", "createdAt": created})
    } else {
        match t.started {
            None => json!({"id": id, "status": "THROTTLED", "createdAt": created}),
            Some(s) if now < s + pending => {
                json!({"id": id, "status": "PENDING", "createdAt": created})
            }
            Some(s) if now < t.finish.unwrap_or(s + pending + run) => {
                let run = t.finish.unwrap_or(s + pending + run) - s - pending;
                let p = (now - s - pending).as_secs_f64() / run.as_secs_f64();
                json!({"id": id, "status": "RUNNING", "createdAt": created, "progress": p})
            }
            Some(_) => match &t.failure {
                Some(code) if code == "CANCELLED" => {
                    json!({"id": id, "status": "CANCELLED", "createdAt": created})
                }
                Some(code) => json!({"id": id, "status": "FAILED", "createdAt": created,
                    "failure": "The task failed", "failureCode": code}),
                None => {
                    let token = fastrand_token();
                    json!({"id": id, "status": "SUCCEEDED", "createdAt": created,
                        "output": [format!("{}/files/{id}.mp4?token={token}", f.url)]})
                }
            },
        }
    };
    f.record(&Method::GET, &path, &headers, 200, None);
    axum::Json(body).into_response()
}

fn fastrand_token() -> String {
    format!("{:x}", Instant::now().elapsed().as_nanos() ^ 0x5eed)
}

async fn delete_task(
    State(f): State<FakeRunway>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let path = format!("/v1/tasks/{id}");
    if let Err(r) = f.check_auth(&headers) {
        return r;
    }
    if let Some(t) = f.inner.lock().unwrap().tasks.get_mut(&id) {
        t.cancelled = true;
    }
    f.record(&Method::DELETE, &path, &headers, 204, None);
    StatusCode::NO_CONTENT.into_response()
}

async fn uploads(State(f): State<FakeRunway>, headers: HeaderMap, body: String) -> Response {
    let json: Option<Value> = serde_json::from_str(&body).ok();
    if let Err(r) = f.check_auth(&headers) {
        f.record(
            &Method::POST,
            "/v1/uploads",
            &headers,
            r.status().as_u16(),
            json,
        );
        return r;
    }
    let ok = json
        .as_ref()
        .is_some_and(|j| j["filename"].is_string() && j["type"] == "ephemeral");
    f.record(
        &Method::POST,
        "/v1/uploads",
        &headers,
        if ok { 200 } else { 400 },
        json,
    );
    if !ok {
        return err(
            StatusCode::BAD_REQUEST,
            "filename and type: ephemeral are required",
        );
    }
    let n = {
        let mut inner = f.inner.lock().unwrap();
        inner.next += 1;
        inner.next
    };
    axum::Json(json!({
        "uploadUrl": format!("{}/upload-target/{n}", f.url),
        "fields": {"key": format!("uploads/{n}"), "policy": "p0l1cy"},
        "runwayUri": format!("runway://up-{n}"),
    }))
    .into_response()
}

async fn upload_target(
    State(f): State<FakeRunway>,
    headers: HeaderMap,
    UrlPath(n): UrlPath<String>,
    mut mp: Multipart,
) -> Response {
    let path = format!("/upload-target/{n}");
    let mut fields = Vec::new();
    let mut size = None;
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if field.file_name().is_none() {
                return err(StatusCode::BAD_REQUEST, "file part needs a filename");
            }
            size = Some(field.bytes().await.map(|b| b.len()).unwrap_or(0));
        } else {
            if size.is_some() {
                return err(StatusCode::BAD_REQUEST, "fields must come before the file");
            }
            fields.push(name);
        }
    }
    let ok = headers.get("authorization").is_none()
        && fields.contains(&"key".to_string())
        && fields.contains(&"policy".to_string())
        && size.is_some_and(|s| s >= 512);
    f.record(
        &Method::POST,
        &path,
        &headers,
        if ok { 204 } else { 400 },
        None,
    );
    if !ok {
        return err(StatusCode::BAD_REQUEST, "bad upload");
    }
    f.inner
        .lock()
        .unwrap()
        .uploads
        .insert(format!("up-{n}"), size.unwrap());
    StatusCode::NO_CONTENT.into_response()
}

async fn file(
    State(f): State<FakeRunway>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let path = format!("/files/{name}");
    let delay = f.inner.lock().unwrap().sw.download_latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (expired, cut, video) = {
        let mut inner = f.inner.lock().unwrap();
        let expired = inner.sw.expired_downloads > 0;
        inner.sw.expired_downloads = inner.sw.expired_downloads.saturating_sub(1);
        let cut = !expired && inner.sw.cut_downloads > 0;
        if cut {
            inner.sw.cut_downloads -= 1;
        }
        (expired, cut, inner.sw.video.clone())
    };
    if expired {
        f.record(&Method::GET, &path, &headers, 403, None);
        return (StatusCode::FORBIDDEN, "Request has expired").into_response();
    }
    let bytes = video.map_or_else(mp4_bytes, |v| v.to_vec());
    if cut {
        f.record(&Method::GET, &path, &headers, 200, None);
        let half = bytes::Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let stream = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(half),
            Err(std::io::Error::other("cut")),
        ]);
        return Response::builder()
            .status(200)
            .header("content-type", "video/mp4")
            .header("content-length", bytes.len().to_string())
            .body(Body::from_stream(stream))
            .unwrap();
    }
    f.record(&Method::GET, &path, &headers, 200, None);
    ([("content-type", "video/mp4")], bytes).into_response()
}

async fn fallback(
    State(f): State<FakeRunway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    f.record(&method, uri.path(), &headers, 404, None);
    err(StatusCode::NOT_FOUND, "no such endpoint")
}
