//! The fake's handlers, one per endpoint (creates, tasks, uploads, files), each recording the
//! request, checking auth and the version header, and applying the switches' faults; with the
//! task queue that starts tasks as a server with `concurrency` workers would.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::validate::validate;
use super::{FakeRunway, Inner, Seen, Task, VERSION, mp4_bytes};

impl FakeRunway {
    pub(super) fn record(
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
    pub(super) fn check_auth(&self, headers: &HeaderMap) -> Result<(), Response> {
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

    pub(super) async fn latency(&self) {
        let l = self.inner.lock().unwrap().sw.latency;
        if !l.is_zero() {
            tokio::time::sleep(l).await;
        }
    }

    /// Starts queued tasks at the exact moment a slot freed (first in, first out), as a server
    /// with `concurrency` workers would; called on every request, it backdates the starts.
    pub(super) fn advance(inner: &mut Inner) {
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

pub(super) fn err(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

pub(super) async fn create_video(
    f: State<FakeRunway>,
    headers: HeaderMap,
    body: String,
) -> Response {
    create(f, "/v1/video_to_video", headers, body).await
}

pub(super) async fn create_image(
    f: State<FakeRunway>,
    headers: HeaderMap,
    body: String,
) -> Response {
    create(f, "/v1/image_to_video", headers, body).await
}

pub(super) async fn create_text(
    f: State<FakeRunway>,
    headers: HeaderMap,
    body: String,
) -> Response {
    create(f, "/v1/text_to_video", headers, body).await
}

pub(super) async fn create(
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
    let model = json
        .as_ref()
        .and_then(|j| j["model"].as_str())
        .unwrap_or_default()
        .to_string();
    let (resp, status) = {
        let mut inner = f.inner.lock().unwrap();
        inner.creates += 1;
        let nth = inner.sw.rate_limit_nth == Some(inner.creates);
        if inner.over_daily(&model) {
            (
                Some(err(
                    StatusCode::TOO_MANY_REQUESTS,
                    "You have exceeded your daily generation quota for this model",
                )),
                429,
            )
        } else if inner.sw.rate_limited > 0 || nth {
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
    let (id, drop_answer, gateway_error, estimated) = {
        let mut inner = f.inner.lock().unwrap();
        inner.next += 1;
        let id = format!("task-{:04}", inner.next);
        let failure = inner.sw.failure_codes.pop_front();
        let refunded = inner.sw.refunds > 0;
        inner.sw.refunds = inner.sw.refunds.saturating_sub(1);
        let estimated = estimate(&inner.sw, &json);
        inner.tasks.insert(
            id.clone(),
            Task {
                created: Instant::now(),
                started: None,
                finish: None,
                failure,
                cancelled: false,
                estimated,
                refunded,
            },
        );
        inner.order.push(id.clone());
        FakeRunway::advance(&mut inner);
        inner.made_one(&model);
        let drop_answer = inner.sw.drop_create_answers > 0;
        inner.sw.drop_create_answers = inner.sw.drop_create_answers.saturating_sub(1);
        let gateway_error = !drop_answer && inner.sw.gateway_errors_after_create > 0;
        if gateway_error {
            inner.sw.gateway_errors_after_create -= 1;
        }
        (id, drop_answer, gateway_error, estimated)
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
    axum::Json(json!({ "id": id, "estimatedCost": {"credits": estimated} })).into_response()
}

/// `estimatedCost.credits` of a task made from `body`: its model's price per second times its
/// seconds.
fn estimate(sw: &super::Switches, body: &Value) -> f64 {
    let model = body["model"].as_str().unwrap_or_default();
    let per_second = sw.prices.get(model).copied().unwrap_or(10.0);
    let seconds = body["duration"]
        .as_u64()
        .unwrap_or(u64::from(sw.seconds_without_duration));
    per_second * seconds as f64
}

pub(super) async fn task(
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
    let cost_field = inner.sw.cost_field;
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
    let body = priced(body, &t, cost_field);
    f.record(&Method::GET, &path, &headers, 200, None);
    axum::Json(body).into_response()
}

/// A task's answer with its price: `estimatedCost` while it runs, `cost` once it ended (0 when
/// refunded, sent as `cost_field` says).
fn priced(mut body: Value, t: &Task, cost_field: super::CostField) -> Value {
    let status = body["status"].as_str().unwrap_or_default();
    if matches!(status, "PENDING" | "THROTTLED" | "RUNNING") {
        body["estimatedCost"] = json!({"credits": t.estimated});
        return body;
    }
    let charged = if t.refunded {
        0
    } else {
        t.estimated.round() as u64
    };
    match cost_field {
        super::CostField::Number => body["cost"] = json!({"credits": charged}),
        super::CostField::Missing => {}
        super::CostField::NotANumber => body["cost"] = json!({"credits": "lots"}),
    }
    body
}

pub(super) fn fastrand_token() -> String {
    format!("{:x}", Instant::now().elapsed().as_nanos() ^ 0x5eed)
}

pub(super) async fn delete_task(
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

pub(super) async fn uploads(
    State(f): State<FakeRunway>,
    headers: HeaderMap,
    body: String,
) -> Response {
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

pub(super) async fn upload_target(
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

pub(super) async fn file(
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

pub(super) async fn fallback(
    State(f): State<FakeRunway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    f.record(&method, uri.path(), &headers, 404, None);
    err(StatusCode::NOT_FOUND, "no such endpoint")
}
