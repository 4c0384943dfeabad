//! Test support: a fake Runway API (a real HTTP server on 127.0.0.1 that validates requests as
//! strictly as the real one and has switches for every fault), studios in temp folders, and image
//! makers.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dropreel::config::{Env, Settings};
use dropreel::pipeline::{self, Mode, Summary};
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
    /// Delay before the create request is handled (widens the submit window).
    pub create_latency: Duration,
    /// Delay before an output download starts sending (widens the download window).
    pub download_latency: Duration,
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
            create_latency: Duration::ZERO,
            download_latency: Duration::ZERO,
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
            .route("/v1/image_to_video", post(create))
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

/// Validates a create body as the real API does; the error message on failure.
fn validate(body: &Value, uploads: &HashMap<String, usize>) -> Result<(), String> {
    let model = body["model"].as_str().ok_or("model is required")?;
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
    let img = body["promptImage"]
        .as_str()
        .ok_or("promptImage is required")?;
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
    } else if let Some(id) = img.strip_prefix("runway://") {
        if !uploads.contains_key(id) {
            return Err("promptImage: unknown upload".into());
        }
    } else {
        return Err("promptImage must be an https URL, a runway:// URI or a data URI".into());
    }
    if let Some(seed) = body.get("seed") {
        let s = seed.as_u64().ok_or("seed must be an integer")?;
        if s > 4_294_967_295 {
            return Err("seed out of range".into());
        }
    }
    Ok(())
}

async fn create(State(f): State<FakeRunway>, headers: HeaderMap, body: String) -> Response {
    f.latency().await;
    let extra = f.inner.lock().unwrap().sw.create_latency;
    if !extra.is_zero() {
        tokio::time::sleep(extra).await;
    }
    let json: Option<Value> = serde_json::from_str(&body).ok();
    let path = "/v1/image_to_video";
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
    if let Err(msg) = validate(&json, &uploads) {
        f.record(&Method::POST, path, &headers, 400, Some(json));
        return err(StatusCode::BAD_REQUEST, &msg);
    }
    let (id, drop_answer) = {
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
        (id, drop_answer)
    };
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
    let (expired, cut) = {
        let mut inner = f.inner.lock().unwrap();
        let expired = inner.sw.expired_downloads > 0;
        inner.sw.expired_downloads = inner.sw.expired_downloads.saturating_sub(1);
        let cut = !expired && inner.sw.cut_downloads > 0;
        if cut {
            inner.sw.cut_downloads -= 1;
        }
        (expired, cut)
    };
    if expired {
        f.record(&Method::GET, &path, &headers, 403, None);
        return (StatusCode::FORBIDDEN, "Request has expired").into_response();
    }
    let bytes = mp4_bytes();
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

/// A PNG of `w × h` pixels (a gradient, so it compresses like a real image would not).
pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        // xorshift noise: incompressible, like a photo's worst case.
        let mut x: u32 = 0x9E37_79B9 ^ w ^ (h << 16);
        let data: Vec<u8> = (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// The smallest JPEG header that names its size (enough for a content check).
pub fn jpeg_bytes(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    v.resize(600, 0);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// A JPEG whose size header (SOF) comes after a 60 KB metadata segment, as in camera files with
/// EXIF thumbnails: a partial copy of it has no readable size.
pub fn jpeg_with_metadata(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    let len: u16 = 60_000;
    v.extend_from_slice(&len.to_be_bytes());
    v.extend((0..len - 2).map(|i| (i % 200) as u8));
    v.extend_from_slice(&jpeg_bytes(w, h)[2..]);
    v
}

/// A PNG whose header claims `w × h` pixels, with nothing behind it (a decompression bomb's shape).
pub fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    let crc = ihdr.iter().fold(!0u32, |mut crc, &b| {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
        crc
    });
    v.extend_from_slice(&(!crc).to_be_bytes());
    v.resize(1024, 0);
    v
}

/// A studio in a temp folder.
pub struct Studio {
    pub dir: tempfile::TempDir,
}

/// Short intervals for tests; `extra` is appended to the YAML.
pub fn test_config(base_url: &str, extra: &str) -> String {
    format!(
        "runway:\n  base_url: {base_url}\n  poll_interval: 30ms\n  retry_min: 20ms\n  retry_max: 300ms\n  request_timeout: 5s\n  max_in_flight: 2\n\
         watch:\n  settle: 60ms\n  sidecar_wait: 40ms\n  rescan: 1s\n{extra}"
    )
}

impl Studio {
    pub fn new(config: &str) -> Studio {
        logs();
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

    pub fn put(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.path(rel), bytes).unwrap();
    }

    /// Sorted names in a studio folder.
    pub fn list(&self, folder: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    pub fn settings(&self, key: &str) -> Settings {
        let env = Env::from_pairs([("RUNWAYML_API_SECRET", key)]);
        Settings::load(self.root(), None, &env).unwrap()
    }

    /// `dropreel run` in process, with the given key; fails the test after `limit`.
    pub async fn run_with_key(&self, key: &str, limit: Duration) -> Summary {
        let settings = self.settings(key);
        let backend = dropreel::backend::Chosen::build(&settings).unwrap();
        tokio::time::timeout(
            limit,
            pipeline::run(&settings, backend, Mode::Run, std::future::pending()),
        )
        .await
        .expect("run did not finish in time")
        .unwrap()
    }

    pub async fn run(&self) -> Summary {
        self.run_with_key(KEY, Duration::from_secs(30)).await
    }

    /// `dropreel run` in process with the local renderer (no key).
    pub async fn run_local(&self) -> Summary {
        let env = Env::from_pairs([]);
        let settings = Settings::load(self.root(), None, &env).unwrap();
        let backend = dropreel::backend::local::Local::new(&settings);
        tokio::time::timeout(
            Duration::from_secs(120),
            pipeline::run(&settings, backend, Mode::Run, std::future::pending()),
        )
        .await
        .expect("run did not finish in time")
        .unwrap()
    }
}

/// A decoded MP4: its size, duration, frame rate and every frame's luma plane (tightly packed).
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub seconds: f64,
    pub timescale_fps: f64,
    pub lumas: Vec<Vec<u8>>,
}

/// Demuxes `path` with the `mp4` crate and decodes its H.264 with OpenH264's decoder.
pub fn decode_mp4(path: &Path) -> Decoded {
    use openh264::formats::YUVSource;
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut mp4 = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    let (track_id, track) = mp4
        .tracks()
        .iter()
        .find(|(_, t)| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
        .map(|(id, t)| (*id, t))
        .expect("a video track");
    let (width, height) = (usize::from(track.width()), usize::from(track.height()));
    let fps = track.frame_rate();
    let mut annexb = Vec::new();
    for ps in [
        track.sequence_parameter_set().unwrap(),
        track.picture_parameter_set().unwrap(),
    ] {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(ps);
    }
    let seconds = mp4.duration().as_secs_f64();
    let count = mp4.sample_count(track_id).unwrap();
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut lumas = Vec::new();
    let take = |yuv: &openh264::decoder::DecodedYUV<'_>, lumas: &mut Vec<Vec<u8>>| {
        let (w, h) = yuv.dimensions();
        assert_eq!((w, h), (width, height), "decoded size matches the track");
        let stride = yuv.strides().0;
        let mut y = Vec::with_capacity(w * h);
        for row in 0..h {
            y.extend_from_slice(&yuv.y()[row * stride..row * stride + w]);
        }
        lumas.push(y);
    };
    for i in 1..=count {
        let sample = mp4.read_sample(track_id, i).unwrap().unwrap();
        let mut data = &sample.bytes[..];
        while data.len() >= 4 {
            let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&data[4..4 + n]);
            data = &data[4 + n..];
        }
        if let Some(yuv) = decoder.decode(&annexb).unwrap() {
            take(&yuv, &mut lumas);
        }
        annexb.clear();
    }
    for yuv in decoder.flush_remaining().unwrap() {
        take(&yuv, &mut lumas);
    }
    Decoded {
        width,
        height,
        seconds,
        timescale_fps: fps,
        lumas,
    }
}

/// PSNR in dB of two equally sized 8-bit planes.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Initialises test logging once (RUST_LOG-style filter in DROPREEL_TEST_LOG).
pub fn logs() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("DROPREEL_TEST_LOG").unwrap_or_else(|_| "off".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

// ---- the real binary, as a service ----

/// The binary under test (integration tests) or beside the running example (benchmarks).
pub fn dropreel_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_dropreel") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("dropreel")
        }
    }
}

pub fn spawn_watch(root: &Path) -> Child {
    Command::new(dropreel_bin())
        .args(["watch", root.to_str().unwrap(), "--log-format", "json"])
        .env("RUNWAYML_API_SECRET", KEY)
        .env_remove("RUNWAY_API_KEY")
        .env_remove("RUNWAYML_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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
    let t0 = Instant::now();
    loop {
        let files = all_files(root);
        let started = files.iter().any(|f| {
            f.starts_with("processing/.instance-")
                && std::fs::read_to_string(root.join(f))
                    .is_ok_and(|t| t.contains(&format!("\"pid\": {}", child.id())))
        });
        if started {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "dropreel did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- the pipeline in process, as a service ----

/// A running `watch`; `stop()` ends it and returns its summary.
pub struct Watching {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Summary>,
}

impl Watching {
    pub fn start(studio: &Studio) -> Watching {
        let settings = studio.settings(KEY);
        let backend = dropreel::backend::Chosen::build(&settings).unwrap();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pipeline::run(&settings, backend, Mode::Watch, async {
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
