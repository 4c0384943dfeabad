//! The Runway HTTP API as typed calls: authenticated JSON requests, the create request's body, the
//! task and its status as types, the presigned upload and the streamed download. Every failure comes
//! back as an [`ApiError`] saying whether anything may have reached the server; what to do about it
//! is decided in [`super::faults`].

use std::path::Path;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::config::{RunwaySection, Secret};
use crate::job::models::Rules;
use crate::job::{JobKind, JobSpec};

/// The API's limit on an inline image: the encoded data URI must stay below 5 MiB.
pub const DATA_URI_MAX: usize = 5 * 1024 * 1024;
/// The API's limit on an uploaded image.
pub const UPLOAD_MAX: u64 = 200 * 1024 * 1024;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No connection could be made: nothing was sent.
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The request may have been sent but its answer was lost (timeout, reset, garbled body).
    #[error("no answer: {0}")]
    Lost(String),
}

impl ApiError {
    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A failed download of the output.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The presigned URL is no longer valid: the task gives fresh ones.
    #[error("the output URL answered HTTP {0}")]
    Expired(u16),
    #[error("the download was cut: {0}")]
    Cut(String),
    #[error("cannot write the video to disk: {0}")]
    Disk(std::io::Error),
}

/// A task's status, as `GET /v1/tasks/{id}` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    /// Waiting in the organisation's queue at Runway (over its concurrency).
    Throttled,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A status this build does not know: polled on, never taken as an end.
    Unknown,
}

impl TaskStatus {
    pub fn parse(s: &str) -> TaskStatus {
        match s {
            "PENDING" => TaskStatus::Pending,
            "THROTTLED" => TaskStatus::Throttled,
            "RUNNING" => TaskStatus::Running,
            "SUCCEEDED" => TaskStatus::Succeeded,
            "FAILED" => TaskStatus::Failed,
            "CANCELLED" => TaskStatus::Cancelled,
            _ => TaskStatus::Unknown,
        }
    }

    /// The API's spelling (as kept in `job.json` and shown by `status`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Throttled => "THROTTLED",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Succeeded => "SUCCEEDED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Cancelled => "CANCELLED",
            TaskStatus::Unknown => "UNKNOWN",
        }
    }

    /// The task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a poll tells about a task. Read leniently: a missing or odd member is absent, never a crash.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub status: TaskStatus,
    /// 0.0–1.0 while running, when the API says.
    pub progress: Option<f64>,
    /// The output URLs of a succeeded task.
    pub output: Vec<String>,
    /// The failure code of a failed task (`""` when none).
    pub failure_code: String,
    /// The failure text of a failed task (`""` when none).
    pub failure: String,
    /// `estimatedCost.credits` of a task still running: the most it may charge.
    pub estimated: Option<f64>,
    /// `cost.credits` of a finished task: what Runway charged (0 when refunded). `None` when it
    /// is missing or not a number (or the task has not ended).
    pub cost: Option<u64>,
}

/// What a create request's answer says: the task's id and `estimatedCost.credits`, the most it
/// may charge (`None` when missing or not a number).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub estimated: Option<f64>,
}

/// `v.credits` as a number of credits (finite, not negative); `None` otherwise.
fn credits_of(v: &Value) -> Option<f64> {
    v["credits"].as_f64().filter(|c| c.is_finite() && *c >= 0.0)
}

impl Task {
    pub fn from_json(v: &Value) -> Task {
        let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
        Task {
            status: TaskStatus::parse(v["status"].as_str().unwrap_or_default()),
            progress: v["progress"].as_f64().map(|p| p.clamp(0.0, 1.0)),
            output: v["output"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            failure_code: text("failureCode"),
            failure: text("failure"),
            estimated: credits_of(&v["estimatedCost"]),
            // An integer in the API's types; a whole float is taken too.
            cost: v["cost"]["credits"].as_u64().or_else(|| {
                credits_of(&v["cost"])
                    .filter(|c| c.fract() == 0.0)
                    .map(|c| c as u64)
            }),
        }
    }
}

/// The API client: one for JSON calls (with a total timeout) and one for file transfers (which may
/// be long but must keep moving).
#[derive(Debug)]
pub struct Api {
    api: reqwest::Client,
    files: reqwest::Client,
    base: String,
    key: Secret,
    version: String,
}

impl Api {
    pub fn new(cfg: &RunwaySection, key: Secret) -> anyhow::Result<Api> {
        let ua = concat!("dropreel/", env!("CARGO_PKG_VERSION"));
        let api = reqwest::Client::builder()
            .user_agent(ua)
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .build()?;
        let files = reqwest::Client::builder()
            .user_agent(ua)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(cfg.request_timeout)
            .build()?;
        Ok(Api {
            api,
            files,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            key,
            version: cfg.api_version.clone(),
        })
    }

    /// One API call with auth and version headers; the JSON answer or a classified error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut req = self
            .api
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header("X-Runway-Version", &self.version);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(classify_send_error)?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Lost(format!("the answer was cut: {e}")))?;
        if !status.is_success() {
            return Err(ApiError::Http {
                status: status.as_u16(),
                message: error_message(&bytes),
                retry_after,
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Lost(format!("the answer is not JSON: {e}")))
    }

    /// `POST {endpoint}`: creates a task. Returns its id and estimated cost.
    pub async fn create(&self, endpoint: &str, body: &Value) -> Result<Created, ApiError> {
        let answer = self.call(Method::POST, endpoint, Some(body)).await?;
        let id = answer["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::Lost("the create answer has no task id".into()))?;
        Ok(Created {
            id,
            estimated: credits_of(&answer["estimatedCost"]),
        })
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn task(&self, id: &str) -> Result<Task, ApiError> {
        let v = self
            .call(Method::GET, &format!("/v1/tasks/{id}"), None)
            .await?;
        Ok(Task::from_json(&v))
    }

    /// `GET /v1/organization`: the organisation's balance, its tier's limits and today's usage, as
    /// the API answered (read by [`super::organization`]).
    pub async fn organization(&self) -> Result<Value, ApiError> {
        self.call(Method::GET, "/v1/organization", None).await
    }

    /// `DELETE /v1/tasks/{id}`: cancels a running task (or deletes a finished one).
    pub async fn cancel(&self, id: &str) -> Result<(), ApiError> {
        self.call(Method::DELETE, &format!("/v1/tasks/{id}"), None)
            .await
            .map(drop)
    }

    /// `POST /v1/uploads`, then the presigned multipart upload, streaming the file. Returns the
    /// `runway://` URI to use in a request.
    pub async fn upload(
        &self,
        path: &Path,
        name: &str,
        mime: &str,
        len: u64,
    ) -> Result<String, ApiError> {
        let answer = self
            .call(
                Method::POST,
                "/v1/uploads",
                Some(&json!({"filename": name, "type": "ephemeral"})),
            )
            .await?;
        let (Some(url), Some(uri)) = (answer["uploadUrl"].as_str(), answer["runwayUri"].as_str())
        else {
            return Err(ApiError::Lost(
                "the upload answer lacks uploadUrl or runwayUri".into(),
            ));
        };
        let mut form = reqwest::multipart::Form::new();
        if let Some(fields) = answer["fields"].as_object() {
            for (k, v) in fields {
                form = form.text(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(name.to_string())
            .mime_str(mime)
            .map_err(|e| ApiError::Lost(e.to_string()))?;
        form = form.part("file", part);
        let resp = self
            .files
            .post(url)
            .multipart(form)
            .send()
            .await
            .map_err(classify_send_error)?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(ApiError::Http {
                // The presigned upload is not an API endpoint: its refusals are never key problems.
                status: if matches!(status.as_u16(), 401 | 403) {
                    502
                } else {
                    status.as_u16()
                },
                message: format!("upload refused: {}", error_message(&bytes)),
                retry_after,
            });
        }
        Ok(uri.to_string())
    }

    /// Streams the output at `url` to `dir/<name>.part`, checks it (length; an MP4's `ftyp`, a
    /// `.mov`'s first atom), fsyncs and renames it to `dir/<name>`. Returns its size.
    pub async fn download(&self, url: &str, dir: &Path, name: &str) -> Result<u64, DownloadError> {
        let resp = self
            .files
            .get(url)
            .send()
            .await
            .map_err(|e| DownloadError::Cut(e.without_url().to_string()))?;
        let status = resp.status();
        if matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE
        ) {
            return Err(DownloadError::Expired(status.as_u16()));
        }
        if !status.is_success() {
            return Err(DownloadError::Cut(format!("HTTP {status}")));
        }
        let expected = resp.content_length();
        let part = dir.join(format!("{name}.part"));
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(DownloadError::Disk)?;
        let mut stream = resp.bytes_stream();
        let mut written: u64 = 0;
        let mut head = Vec::with_capacity(12);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                DownloadError::Cut(format!("after {written} bytes: {}", e.without_url()))
            })?;
            if head.len() < 12 {
                let take = (12 - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            file.write_all(&chunk).await.map_err(DownloadError::Disk)?;
            written += chunk.len() as u64;
        }
        if let Some(n) = expected
            && n != written
        {
            return Err(DownloadError::Cut(format!("got {written} of {n} bytes")));
        }
        // An MP4 opens with its `ftyp` box; a QuickTime file (ProRes) may open with one of the
        // older top-level atoms instead.
        let quicktime = name.ends_with(".mov");
        let atom = head.get(4..8).unwrap_or_default();
        let known = atom == b"ftyp"
            || (quicktime
                && [b"moov", b"wide", b"mdat", b"free", b"skip"]
                    .iter()
                    .any(|a| atom == *a));
        if head.len() < 12 || !known {
            return Err(DownloadError::Cut(if quicktime {
                "the download is not a QuickTime movie (no ftyp, moov or mdat atom)".into()
            } else {
                "the download is not an MP4 (no ftyp box)".into()
            }));
        }
        file.sync_all().await.map_err(DownloadError::Disk)?;
        drop(file);
        tokio::fs::rename(&part, dir.join(name))
            .await
            .map_err(DownloadError::Disk)?;
        crate::studio::durable::sync_dir(dir).map_err(DownloadError::Disk)?;
        Ok(written)
    }
}

/// The files a create request names, as URIs (data URIs, `runway://` uploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A text job: the prompt is the input.
    None,
    /// The image (or video).
    One(String),
    /// A first and a last keyframe.
    Keyframes { first: String, last: String },
}

/// The create body for a job of `kind` whose model takes `rules` on the kind's endpoint: the
/// model, the input as the endpoint names it (`promptImage` for an image; `videoUri` or
/// `promptVideo` for a video, as the model names it; a text job's input is its prompt), the
/// settings the (model, endpoint) takes, then `extra:` merged in verbatim.
pub fn request_body(spec: &JobSpec, kind: &JobKind, media: Media, rules: Option<&Rules>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(spec.model));
    match (kind, media) {
        (JobKind::Image { .. }, Media::One(uri)) => {
            body.insert("promptImage".into(), json!(uri));
        }
        // The array form, with positions.
        (JobKind::Image { .. }, Media::Keyframes { first, last }) => {
            body.insert(
                "promptImage".into(),
                json!([
                    { "uri": first, "position": "first" },
                    { "uri": last, "position": "last" }
                ]),
            );
        }
        // `videoUri` or `promptVideo`, as the model names it.
        (JobKind::Video, Media::One(uri)) => {
            let field = rules
                .and_then(|r| r.video.as_ref())
                .map_or("videoUri", |v| v.field.as_str());
            body.insert(field.into(), json!(uri));
        }
        _ => {}
    }
    if !spec.prompt.is_empty() {
        body.insert("promptText".into(), json!(spec.prompt));
    }
    if let Some(r) = &spec.ratio {
        body.insert("ratio".into(), json!(r));
    }
    if let Some(r) = &spec.resolution {
        body.insert("resolution".into(), json!(r));
    }
    // Left out where the endpoint takes none for this model (aleph2 follows the input video).
    let takes_duration = !spec.no_duration && rules.is_none_or(|r| r.durations.is_some());
    if spec.duration_auto {
        body.insert("duration".into(), json!("auto"));
    } else if takes_duration {
        body.insert("duration".into(), json!(spec.duration));
    }
    if let Some(s) = spec.seed {
        body.insert("seed".into(), json!(s));
    }
    if let Some(f) = &spec.output_format {
        body.insert("outputFormat".into(), json!(f));
    }
    for (k, v) in &spec.extra {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

fn classify_send_error(e: reqwest::Error) -> ApiError {
    // Strip the URL: it may carry a presigned token.
    let e = e.without_url();
    if e.is_connect() {
        ApiError::Unreachable(e.to_string())
    } else {
        ApiError::Lost(e.to_string())
    }
}

/// The `error` member of an API error body, or the body's start.
fn error_message(bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        match &v["error"] {
            Value::String(s) => return s.clone(),
            Value::Null => {}
            other => return other.to_string(),
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text.chars().take(300).collect()
    }
}

/// `retry-after-ms` (milliseconds), else `Retry-After` as seconds or an HTTP date. Honoured however
/// long it is.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let ra = get("retry-after")?;
    if let Ok(s) = ra.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = httpdate::parse_http_date(ra).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::models::Endpoint;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        h.insert("retry-after", HeaderValue::from_str(&at).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(3590) && d <= Duration::from_secs(3600),
            "{d:?}"
        );
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(error_message(br#"{"error":"bad ratio"}"#), "bad ratio");
        assert_eq!(error_message(b""), "(no message)");
        assert_eq!(error_message(b"oops"), "oops");
    }

    #[test]
    fn the_body_is_built_per_kind() {
        let models = crate::job::models::Models::built_in();
        let rules = |id: &str, e| models.find(id).and_then(|m| m.rules(e));
        let spec = JobSpec {
            model: "gen4_turbo".into(),
            prompt: "slow push-in".into(),
            ratio: Some("1280:720".into()),
            duration: 5,
            ..JobSpec::default()
        };
        let image = JobKind::Image { last_frame: None };
        let i2v = rules("gen4_turbo", Endpoint::ImageToVideo);
        let body = request_body(
            &spec,
            &image,
            Media::One("data:image/png;base64,AA".into()),
            i2v,
        );
        assert_eq!(body["promptImage"], "data:image/png;base64,AA");
        assert_eq!(body["duration"], 5);
        let keyframes = request_body(
            &spec,
            &image,
            Media::Keyframes {
                first: "runway://a".into(),
                last: "runway://b".into(),
            },
            i2v,
        );
        assert_eq!(
            keyframes["promptImage"],
            json!([{"uri": "runway://a", "position": "first"}, {"uri": "runway://b", "position": "last"}])
        );
        let restyle = JobSpec {
            model: "aleph2".into(),
            ratio: None,
            ..spec
        };
        let body = request_body(
            &restyle,
            &JobKind::Video,
            Media::One("runway://v".into()),
            rules("aleph2", Endpoint::VideoToVideo),
        );
        assert_eq!(body["videoUri"], "runway://v");
        assert!(body.get("promptImage").is_none());
        assert!(
            body.get("duration").is_none(),
            "aleph2 takes no duration: {body}"
        );
    }

    #[test]
    fn a_task_is_read_leniently() {
        let t = Task::from_json(&json!({
            "status": "RUNNING", "progress": 1.7, "output": ["a", 3, "b"], "failureCode": null
        }));
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.progress, Some(1.0));
        assert_eq!(t.output, vec!["a", "b"]);
        assert_eq!(t.failure_code, "");
        let odd = Task::from_json(&json!({"status": "PAUSED"}));
        assert_eq!(odd.status, TaskStatus::Unknown);
        assert!(!odd.status.is_final());
        assert_eq!(Task::from_json(&Value::Null).status, TaskStatus::Unknown);
    }

    #[test]
    fn a_task_price_is_read_leniently() {
        let running =
            Task::from_json(&json!({"status": "RUNNING", "estimatedCost": {"credits": 37.5}}));
        assert_eq!((running.estimated, running.cost), (Some(37.5), None));
        let done = Task::from_json(&json!({"status": "SUCCEEDED", "cost": {"credits": 0}}));
        assert_eq!(done.cost, Some(0));
        for odd in [
            json!({"credits": "lots"}),
            json!({"credits": -3}),
            json!(12),
            json!({"credits": 2.5}),
        ] {
            assert_eq!(
                Task::from_json(&json!({"status": "SUCCEEDED", "cost": odd})).cost,
                None,
                "{odd}"
            );
        }
    }
}
