//! The Runway API backend: submit `POST /v1/image_to_video` (image inline as a data URI, or through
//! `POST /v1/uploads` when too big), poll `GET /v1/tasks/{id}`, stream the MP4 into the job folder, and
//! sort every failure into the contract's three classes (per-job, transient, systemic).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Notify;

use super::schedule::PollClock;
use super::{Backend, Gate, HoldCause, JobCtx, SlotGuard, Slots, Stop, backoff, sleep_or_cancel};
use crate::config::{RunwaySection, Secret, Settings, UncertainSubmit};
use crate::spool::{self, Failure, OUTPUT_FILE, OUTPUT_PART, State};

/// The API's limit on an inline image: the encoded data URI must stay below 5 MiB.
pub const DATA_URI_MAX: usize = 5 * 1024 * 1024;
/// The API's limit on an uploaded image.
pub const UPLOAD_MAX: u64 = 200 * 1024 * 1024;
/// An upload URI is valid for 24 h; reuse it only well within that.
const UPLOAD_REUSE_SECS: u64 = 23 * 3600;
/// Time a create request may still take to answer after a stop was asked for.
const SUBMIT_GRACE: Duration = Duration::from_millis(1500);

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

/// The Runway backend.
#[derive(Debug)]
pub struct Runway {
    api: reqwest::Client,
    files: reqwest::Client,
    base: String,
    key: Secret,
    cfg: RunwaySection,
    slots: Arc<Slots>,
    gate: Gate,
    /// `run` stops at once when the key is refused; `watch` waits for a fixed key.
    stop_on_key_refusal: bool,
    /// How long recent tasks took from submission to done (an average), for the poll clock.
    expected: Mutex<Option<Duration>>,
    /// Our tasks waiting in Runway's queue (THROTTLED), oldest first: when one of our tasks
    /// ends, the oldest of these has most likely just started, and is told to look at once.
    queued: Mutex<BTreeMap<(Instant, String), Arc<Notify>>>,
}

/// A task's place in [`Runway::queued`]; leaving the queue (or the poll loop) removes it.
struct QueuedGuard<'a> {
    runway: &'a Runway,
    key: Option<(Instant, String)>,
    notify: Arc<Notify>,
}

impl QueuedGuard<'_> {
    fn set(&mut self, key: (Instant, String), queued: bool) {
        let mut map = self.runway.queued.lock().expect("queue lock");
        if queued {
            // (Again, if a finish elsewhere took it out of the queue and it is still waiting.)
            map.entry(key.clone())
                .or_insert_with(|| self.notify.clone());
            self.key = Some(key);
        } else if let Some(k) = self.key.take() {
            map.remove(&k);
        }
    }
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.runway.queued.lock().expect("queue lock").remove(&k);
        }
    }
}

impl Runway {
    /// A client for the configured API. Fails when no key is set.
    pub fn new(settings: &Settings, stop_on_key_refusal: bool) -> anyhow::Result<Runway> {
        let key = settings.api_key.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no Runway API key: set RUNWAYML_API_SECRET in the environment or in ROOT/.env"
            )
        })?;
        let cfg = settings.config.runway.clone();
        let ua = concat!("dropreel/", env!("CARGO_PKG_VERSION"));
        let api = reqwest::Client::builder()
            .user_agent(ua)
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .build()?;
        // Downloads and uploads may be long: no total timeout, but they must keep moving.
        let files = reqwest::Client::builder()
            .user_agent(ua)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(cfg.request_timeout)
            .build()?;
        Ok(Runway {
            api,
            files,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            key,
            slots: Slots::new(cfg.max_in_flight),
            gate: Gate::new(cfg.retry_min, cfg.retry_max),
            cfg,
            stop_on_key_refusal,
            expected: Mutex::new(None),
            queued: Mutex::new(BTreeMap::new()),
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
            .header("X-Runway-Version", &self.cfg.api_version);
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

    /// The file to send and its type: the image itself, or — for formats the API does not take
    /// (GIF, BMP, TIFF) — a PNG made from it once and kept in the job folder.
    async fn image_to_send(&self, job: &JobCtx) -> Result<(PathBuf, String, &'static str), Stop> {
        let dir = job.spool.job_dir(&job.rec.id);
        let format = job.rec.info.format;
        if format.sent_as_is() {
            return Ok((
                dir.join(&job.rec.image),
                job.rec.image.clone(),
                format.mime(),
            ));
        }
        let png = dir.join(spool::CONVERTED_FILE);
        let name = format!("{}.png", job.rec.stem());
        if !png.exists() {
            let (src, dst) = (dir.join(&job.rec.image), png.clone());
            let converted =
                tokio::task::spawn_blocking(move || crate::media::convert_to_png(&src, &dst))
                    .await
                    .unwrap_or_else(|e| Err(format!("the converter crashed: {e}")));
            if let Err(why) = converted {
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "{} ({}) could not be converted to PNG for Runway: {why}",
                        job.rec.image,
                        format.name()
                    ),
                    advice: "export it as a PNG or JPEG and move that into inbox/".into(),
                    api: None,
                }));
            }
            tracing::info!(job = %job.rec.id, file = %job.rec.image, from = format.name(), "converted to PNG for Runway");
        }
        let len = std::fs::metadata(&png).map_or(0, |m| m.len());
        if len > UPLOAD_MAX {
            return Err(Stop::Failed(Failure {
                message: format!(
                    "{} converted to PNG is {} MB; Runway takes images of at most {} MB",
                    job.rec.image,
                    len >> 20,
                    UPLOAD_MAX >> 20
                ),
                advice: "export a smaller JPEG of it and move that into inbox/".into(),
                api: None,
            }));
        }
        Ok((png, name, "image/png"))
    }

    /// The `promptImage` value: a data URI when it fits the inline limit, else an upload.
    async fn prompt_image(
        &self,
        job: &mut JobCtx,
        (path, name, mime): &(PathBuf, String, &'static str),
    ) -> Result<String, ApiError> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?
            .len();
        let prefix = format!("data:{mime};base64,");
        let encoded_len = prefix.len() as u64 + len.div_ceil(3) * 4;
        if encoded_len < DATA_URI_MAX as u64 {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?;
            let mut uri = prefix;
            base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut uri);
            return Ok(uri);
        }
        let now = unix_now();
        if let (Some(uri), Some(at)) = (&job.rec.upload_uri, job.rec.upload_at)
            && now.saturating_sub(at) < UPLOAD_REUSE_SECS
        {
            return Ok(uri.clone());
        }
        let uri = self.upload(path, name, mime, len).await?;
        job.rec.upload_uri = Some(uri.clone());
        job.rec.upload_at = Some(now);
        job.save()
            .map_err(|e| ApiError::Lost(format!("cannot save the job state: {e}")))?;
        tracing::info!(job = %job.rec.id, file = %job.rec.image, bytes = len, "image uploaded");
        Ok(uri)
    }

    /// `POST /v1/uploads`, then the presigned multipart upload, streaming the file.
    async fn upload(
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

    /// Sends the create request. Returns the task id.
    async fn submit(&self, job: &mut JobCtx, prompt_image: String) -> Result<String, ApiError> {
        let body = request_body(&job.rec.spec, prompt_image);
        let answer = self
            .call(Method::POST, "/v1/image_to_video", Some(&body))
            .await?;
        answer["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::Lost("the create answer has no task id".into()))
    }

    /// What to do after a failed API call sent with the gate's `stamp`: `Ok(delay)` to retry after
    /// it, `Err` to stop. Systemic faults pause the gate and spend nothing; transient ones spend
    /// the retry budget.
    fn on_error(
        &self,
        job: &mut JobCtx,
        err: &ApiError,
        step: &str,
        stamp: u64,
    ) -> Result<Duration, Stop> {
        match err {
            ApiError::Http {
                status: 401 | 403,
                message,
                ..
            } => {
                if self.stop_on_key_refusal {
                    return Err(Stop::KeyRefused(format!(
                        "the Runway API refused the API key while {step} ({err})"
                    )));
                }
                self.gate.trip(HoldCause::Key, message, None);
                Ok(Duration::ZERO)
            }
            ApiError::Http {
                status: 429,
                message,
                retry_after,
            } => {
                self.gate.trip(HoldCause::Quota, message, *retry_after);
                Ok(Duration::ZERO)
            }
            ApiError::Http {
                status,
                retry_after,
                ..
            } if *status >= 500 || matches!(status, 408 | 409) => {
                if self.gate.server_error() {
                    self.gate
                        .trip(HoldCause::Outage, &err.to_string(), *retry_after);
                    return Ok(Duration::ZERO);
                }
                self.gate.release_probe();
                self.spend_retry(job, err, step)
                    .map(|d| retry_after.map_or(d, |ra| ra.max(d)))
            }
            ApiError::Http { .. } => {
                // The API answered and judged the request itself: key and service are fine.
                self.gate.ok(stamp);
                Err(Stop::Failed(refusal(step, err)))
            }
            ApiError::Unreachable(detail) => {
                self.gate.trip(HoldCause::Unreachable, detail, None);
                Ok(Duration::ZERO)
            }
            ApiError::Lost(_) => {
                self.gate.release_probe();
                self.spend_retry(job, err, step)
            }
        }
    }

    /// Spends one transient retry; past the budget the job fails, saying so.
    fn spend_retry(
        &self,
        job: &mut JobCtx,
        err: &dyn std::fmt::Display,
        step: &str,
    ) -> Result<Duration, Stop> {
        job.rec.transient_faults += 1;
        let n = job.rec.transient_faults;
        if n > self.cfg.retries {
            return Err(Stop::Failed(Failure {
                message: format!("{step} kept failing: {err}"),
                advice: format!(
                    "dropreel retried {} times, then gave up. Runway may be having trouble: move the image \
                     back into inbox/ to try again later",
                    self.cfg.retries
                ),
                api: Some(err.to_string()),
            }));
        }
        let d = backoff(n - 1, self.cfg.retry_min, self.cfg.retry_max);
        tracing::info!(job = %job.rec.id, file = %job.rec.image, error = %err, retry = n, delay = ?d, "{step} failed; retrying");
        Ok(d)
    }

    /// A create request's outcome is unknown: say so loudly, then resubmit (`Ok`) or park the
    /// job in `failed/` (`Err`), as `runway.uncertain_submit` says.
    fn uncertain(&self, job: &JobCtx, what: &str) -> Result<(), Stop> {
        match self.cfg.uncertain_submit {
            UncertainSubmit::Resubmit => {
                tracing::warn!(
                    job = %job.rec.id,
                    file = %job.rec.image,
                    "{what}: Runway may have created a task that dropreel never heard of. Submitting again \
                     (a possible double charge, recorded in result.json)"
                );
                Ok(())
            }
            UncertainSubmit::Park => {
                tracing::warn!(job = %job.rec.id, file = %job.rec.image, "{what}: parked in failed/ (runway.uncertain_submit: park)");
                Err(Stop::Failed(Failure {
                    message: format!(
                        "{what}, so this job may already be running at Runway; dropreel did not submit it \
                         again, to never pay twice (runway.uncertain_submit: park)"
                    ),
                    advice: "look for the video in Runway's dashboard (Tasks / usage); if it is not there, move the \
                             image back into inbox/ to submit it again"
                        .into(),
                    api: None,
                }))
            }
        }
    }

    /// Claimed → Submitted. Holds the slot it returns; the caller keeps it until the task ends.
    async fn submit_step(&self, job: &mut JobCtx) -> Result<SlotGuard, Stop> {
        if job.rec.state == State::Submitting {
            job.rec.uncertain_submissions += 1;
            self.uncertain(
                job,
                "dropreel stopped while this job's create request was on the wire",
            )?;
            job.rec.state = State::Claimed;
            save(job)?;
        }
        // A conversion needs no slot: done before waiting for one.
        let to_send = self.image_to_send(job).await?;
        let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
        let slot = ticket.acquire(&job.cancel).await.ok_or(Stop::Cancelled)?;
        loop {
            let Some(stamp) = self.gate.pass(&job.cancel).await else {
                return Err(Stop::Cancelled);
            };
            let image = match self.prompt_image(job, &to_send).await {
                Ok(img) => img,
                Err(e) => {
                    let delay = self.on_error(job, &e, "uploading the image", stamp)?;
                    save(job)?;
                    if !sleep_or_cancel(delay, &job.cancel).await {
                        return Err(Stop::Cancelled);
                    }
                    continue;
                }
            };
            // A pause that began while the image was prepared (another job's 429) holds this
            // create too: nothing is sent before the server's time.
            if !self.gate.open_for(stamp) {
                continue;
            }
            job.rec.state = State::Submitting;
            job.rec.submissions += 1;
            save(job)?;
            let cancel = job.cancel.clone();
            let result = tokio::select! {
                r = self.submit(job, image) => Some(r),
                () = async { cancel.cancelled().await; tokio::time::sleep(SUBMIT_GRACE).await } => None,
            };
            match result {
                // Stopped with the request unanswered: leave `submitting`; resume says so loudly.
                None => return Err(Stop::Cancelled),
                Some(Ok(task_id)) => {
                    self.gate.ok(stamp);
                    job.rec.state = State::Submitted;
                    job.rec.task_id = Some(task_id.clone());
                    job.rec.task_status = Some("PENDING".into());
                    job.rec.progress = None;
                    job.rec.submitted_at = Some(spool::now_rfc3339());
                    save(job)?;
                    tracing::info!(job = %job.rec.id, file = %job.rec.image, task = %task_id, model = %job.rec.spec.model, "submitted");
                    return Ok(slot);
                }
                Some(Err(e)) => {
                    job.rec.state = State::Claimed;
                    if matches!(e, ApiError::Lost(_)) {
                        job.rec.uncertain_submissions += 1;
                        save(job)?;
                        self.uncertain(
                            job,
                            &format!("the create request's answer was lost ({e})"),
                        )?;
                    }
                    let delay = self.on_error(job, &e, "submitting the task", stamp);
                    save(job)?;
                    let delay = delay?;
                    if !sleep_or_cancel(delay, &job.cancel).await {
                        return Err(Stop::Cancelled);
                    }
                }
            }
        }
    }

    /// Submitted → Succeeded (or back to Claimed for a retryable task failure).
    /// `fresh`: the task was submitted just now by this process (its timing teaches the clock).
    async fn poll_step(&self, job: &mut JobCtx, fresh: bool) -> Result<(), Stop> {
        let Some(task_id) = job.rec.task_id.clone() else {
            // Only a damaged or hand-edited job.json says `submitted` without a task id.
            return Err(Stop::Failed(Failure {
                message: format!(
                    "processing/{}/job.json says the job was submitted but names no task, so dropreel \
                     cannot follow it (the file was damaged or edited)",
                    job.rec.id
                ),
                advice: "check Runway's dashboard for a task made from this image; if there is none, move \
                         the image back into inbox/ to submit it again"
                    .into(),
                api: None,
            }));
        };
        let submitted = job
            .rec
            .submitted_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339(s).ok())
            .unwrap_or_else(SystemTime::now);
        let mut errors = 0u32;
        let started = Instant::now();
        let expected = *self.expected.lock().expect("expected lock");
        let mut clock = PollClock::new(started, self.cfg.poll_interval, expected);
        let mut delay = clock.first();
        let mut queued = false;
        let mut place = QueuedGuard {
            runway: self,
            key: None,
            notify: Arc::new(Notify::new()),
        };
        let wake = place.notify.clone();
        loop {
            // A task queued by Runway starts when one ahead of it ends: when one of ours ends, the
            // longest-waiting queued one looks again at once instead of at the interval.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = wake.notified(), if queued => clock.queue_moved(Instant::now()),
                () = job.cancel.cancelled() => return Err(Stop::Cancelled),
            }
            let task = match self
                .call(Method::GET, &format!("/v1/tasks/{task_id}"), None)
                .await
            {
                Ok(t) => t,
                Err(ApiError::Http { status: 404, .. }) => {
                    return Err(Stop::Failed(Failure {
                        message: format!(
                            "Runway no longer knows task {task_id}: it was deleted or cancelled on the server"
                        ),
                        advice: "move the image back into inbox/ to submit it again".into(),
                        api: None,
                    }));
                }
                Err(ApiError::Http {
                    status: 401 | 403, ..
                }) if self.stop_on_key_refusal => {
                    return Err(Stop::KeyRefused(format!(
                        "the Runway API refused the API key while checking task {task_id}"
                    )));
                }
                Err(e) => {
                    // Polls never spend the retry budget: the task is paid for; keep asking.
                    if let ApiError::Http {
                        status: 401 | 403,
                        message,
                        ..
                    } = &e
                    {
                        self.gate.trip(HoldCause::Key, message, None);
                    }
                    errors += 1;
                    let hint = match &e {
                        ApiError::Http {
                            retry_after: Some(ra),
                            ..
                        } => Some(*ra),
                        _ => None,
                    };
                    delay = hint.unwrap_or_else(|| {
                        backoff(errors.min(12), self.cfg.retry_min, self.cfg.retry_max)
                    });
                    tracing::debug!(job = %job.rec.id, error = %e, ?delay, "poll failed; asking again later");
                    continue;
                }
            };
            errors = 0;
            let status = task["status"].as_str().unwrap_or("UNKNOWN").to_string();
            let progress = task["progress"].as_f64().map(|p| p.clamp(0.0, 1.0));
            delay = clock.next(Instant::now(), &status, progress);
            tracing::debug!(job = %job.rec.id, task = %task_id, status = %status, progress = ?progress, next_poll = ?delay, "polled");
            queued = status == "THROTTLED";
            place.set((started, task_id.clone()), queued);
            if matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "CANCELLED") {
                // A slot freed at Runway: the oldest of our queued tasks takes it.
                let oldest = self.queued.lock().expect("queue lock").pop_first();
                if let Some((_, notify)) = oldest {
                    notify.notify_one();
                }
            }
            if job.rec.task_status.as_deref() != Some(status.as_str()) {
                tracing::info!(job = %job.rec.id, file = %job.rec.image, task = %task_id, status = %status, "task status");
                job.rec.task_status = Some(status.clone());
                job.rec.progress = progress;
                save(job)?;
            } else if progress != job.rec.progress {
                job.rec.progress = progress;
                save(job)?;
            }
            match status.as_str() {
                "SUCCEEDED" => {
                    let urls: Vec<String> = task["output"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|u| u.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if urls.is_empty() {
                        return Err(Stop::Failed(Failure {
                            message: format!("task {task_id} succeeded but returned no video"),
                            advice: "move the image back into inbox/ to try again".into(),
                            api: None,
                        }));
                    }
                    job.rec.state = State::Succeeded;
                    job.rec.output_urls = urls;
                    job.rec.finished_at = Some(spool::now_rfc3339());
                    save(job)?;
                    if fresh && !clock.was_queued() {
                        let took = started.elapsed();
                        let mut e = self.expected.lock().expect("expected lock");
                        *e = Some(e.map_or(took, |old| old.mul_f64(0.7) + took.mul_f64(0.3)));
                    }
                    return Ok(());
                }
                "FAILED" => return self.task_failed(job, &task),
                "CANCELLED" => {
                    return Err(Stop::Failed(Failure {
                        message: format!(
                            "task {task_id} was cancelled on Runway's side (from the dashboard or the API)"
                        ),
                        advice: "move the image back into inbox/ to submit it again".into(),
                        api: None,
                    }));
                }
                _ => {}
            }
            if SystemTime::now()
                .duration_since(submitted)
                .unwrap_or_default()
                > self.cfg.task_timeout
            {
                // Cancel it so it is not paid for when nobody downloads it; best effort.
                let _ = self
                    .call(Method::DELETE, &format!("/v1/tasks/{task_id}"), None)
                    .await;
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "task {task_id} was still {status} after {} (runway.task_timeout); it was cancelled",
                        humantime::format_duration(self.cfg.task_timeout)
                    ),
                    advice: "Runway may be busy: move the image back into inbox/ to try again, or raise runway.task_timeout".into(),
                    api: None,
                }));
            }
        }
    }

    /// A FAILED task: retry when the failure code says it may pass, else fail the job.
    fn task_failed(&self, job: &mut JobCtx, task: &Value) -> Result<(), Stop> {
        let code = task["failureCode"].as_str().unwrap_or("").to_string();
        let text = task["failure"].as_str().unwrap_or("").to_string();
        let api = Some(format!(
            "failureCode {}: {text}",
            if code.is_empty() { "(none)" } else { &code }
        ));
        let per_job = |message: String, advice: &str| {
            Err(Stop::Failed(Failure {
                message,
                advice: advice.to_string(),
                api: api.clone(),
            }))
        };
        if code.starts_with("SAFETY.INPUT") || code == "INPUT_PREPROCESSING.SAFETY.TEXT" {
            return per_job(
                "Runway's moderation rejected the input (the image or the prompt)".into(),
                "change the image or the prompt; resubmitting it unchanged will be rejected again (and credits are not refunded)",
            );
        }
        if code.starts_with("SAFETY.OUTPUT") {
            return per_job(
                "Runway's moderation rejected the generated video".into(),
                "change the prompt or set a different seed in the sidecar, then move the image back into inbox/",
            );
        }
        if code == "ASSET.INVALID" {
            return per_job(
                "Runway could not use the image (format, dimensions or a corrupt file)".into(),
                "re-export the image as a standard PNG or JPEG and move it back into inbox/",
            );
        }
        let bad_output = code.starts_with("INTERNAL.BAD_OUTPUT");
        let retryable = code.starts_with("INTERNAL")
            || code == "INPUT_PREPROCESSING.INTERNAL"
            || code.is_empty();
        if !retryable || (bad_output && job.rec.submissions >= 2) {
            let advice = if bad_output {
                "the output failed Runway's quality checks twice; this often happens when the image has overlaid text or graphics. Try a cleaner image"
            } else {
                "check the message above, fix the input, and move the image back into inbox/"
            };
            return per_job(
                format!(
                    "the task failed ({})",
                    if code.is_empty() { "no code" } else { &code }
                ),
                advice,
            );
        }
        let err = format!(
            "the task failed on the server ({})",
            if code.is_empty() {
                "no failure code"
            } else {
                &code
            }
        );
        self.spend_retry(job, &err, "generating the video")?;
        job.rec.state = State::Claimed;
        job.rec.task_id = None;
        job.rec.task_status = None;
        save(job)?;
        Ok(())
    }

    /// Succeeded → Downloaded: streams the MP4 to `out.mp4.part`, checks it, fsyncs, renames.
    async fn download_step(&self, job: &mut JobCtx) -> Result<(), Stop> {
        let mut disk_errors = 0u32;
        loop {
            let url = job.rec.output_urls.first().cloned().unwrap_or_default();
            let dir = job.spool.job_dir(&job.rec.id);
            let cancel = job.cancel.clone();
            let result = tokio::select! {
                r = self.fetch_output(&url, &dir) => r,
                () = cancel.cancelled() => return Err(Stop::Cancelled),
            };
            match result {
                Ok(bytes) => {
                    job.rec.state = State::Downloaded;
                    job.rec.output_bytes = Some(bytes);
                    save(job)?;
                    tracing::info!(job = %job.rec.id, file = %job.rec.image, bytes, "downloaded");
                    return Ok(());
                }
                Err(DownloadError::Expired(status)) => {
                    tracing::info!(job = %job.rec.id, status, "output URL expired; asking the task for fresh URLs");
                    let delay = self.spend_retry(
                        job,
                        &format!("output URL answered HTTP {status}"),
                        "downloading the video",
                    )?;
                    let task_id = job.rec.task_id.clone().unwrap_or_default();
                    let stamp = self.gate.stamp();
                    match self
                        .call(Method::GET, &format!("/v1/tasks/{task_id}"), None)
                        .await
                    {
                        Ok(task) if task["status"] == "SUCCEEDED" => {
                            if let Some(urls) = task["output"].as_array() {
                                job.rec.output_urls = urls
                                    .iter()
                                    .filter_map(|u| u.as_str().map(str::to_string))
                                    .collect();
                            }
                            save(job)?;
                        }
                        Ok(_) | Err(ApiError::Http { status: 404, .. }) => {
                            return Err(Stop::Failed(Failure {
                                message: format!(
                                    "the video of task {task_id} is no longer available on Runway"
                                ),
                                advice: "move the image back into inbox/ to generate it again"
                                    .into(),
                                api: None,
                            }));
                        }
                        Err(e) => {
                            let d = self.on_error(job, &e, "refreshing the output URL", stamp)?;
                            if !sleep_or_cancel(d.max(delay), &job.cancel).await {
                                return Err(Stop::Cancelled);
                            }
                        }
                    }
                }
                Err(DownloadError::Disk(e)) => {
                    // Not the job's fault and not Runway's: the paid-for video waits (on
                    // Runway's side, its URL refreshed when needed) until the disk takes it.
                    disk_errors += 1;
                    let delay =
                        backoff(disk_errors.min(12), self.cfg.retry_min, self.cfg.retry_max);
                    if disk_errors == 1 {
                        tracing::error!(job = %job.rec.id, file = %job.rec.image, error = %e, next_try = ?delay,
                            "cannot write the video into processing/ (disk full or not writable?); the job waits and retries");
                    } else {
                        tracing::debug!(job = %job.rec.id, error = %e, ?delay, "still cannot write the video");
                    }
                    let _ = std::fs::remove_file(job.spool.job_dir(&job.rec.id).join(OUTPUT_PART));
                    if !sleep_or_cancel(delay, &job.cancel).await {
                        return Err(Stop::Cancelled);
                    }
                }
                Err(e) => {
                    let delay = self.spend_retry(job, &e, "downloading the video")?;
                    save(job)?;
                    if !sleep_or_cancel(delay, &job.cancel).await {
                        return Err(Stop::Cancelled);
                    }
                }
            }
        }
    }

    async fn fetch_output(&self, url: &str, dir: &Path) -> Result<u64, DownloadError> {
        let resp = self
            .files
            .get(url)
            .send()
            .await
            .map_err(|e| DownloadError::Cut(e.to_string()))?;
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
        let part = dir.join(OUTPUT_PART);
        let mut file = tokio::fs::File::create(&part)
            .await
            .map_err(DownloadError::Disk)?;
        let mut stream = resp.bytes_stream();
        let mut written: u64 = 0;
        let mut head = Vec::with_capacity(12);
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| DownloadError::Cut(format!("after {written} bytes: {e}")))?;
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
        if head.len() < 12 || &head[4..8] != b"ftyp" {
            return Err(DownloadError::Cut(
                "the download is not an MP4 (no ftyp box)".into(),
            ));
        }
        file.sync_all().await.map_err(DownloadError::Disk)?;
        drop(file);
        tokio::fs::rename(&part, dir.join(OUTPUT_FILE))
            .await
            .map_err(DownloadError::Disk)?;
        spool::sync_dir(dir).map_err(DownloadError::Disk)?;
        Ok(written)
    }
}

#[derive(Debug, thiserror::Error)]
enum DownloadError {
    #[error("the output URL answered HTTP {0}")]
    Expired(u16),
    #[error("the download was cut: {0}")]
    Cut(String),
    #[error("cannot write the video to disk: {0}")]
    Disk(std::io::Error),
}

impl Backend for Runway {
    fn name(&self) -> &'static str {
        "runway"
    }

    fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    fn gate(&self) -> &Gate {
        &self.gate
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        // A resumed task is already running on the server: it occupies a slot at once.
        let mut slot = (job.rec.state == State::Submitted).then(|| self.slots.take_now());
        let mut fresh = false;
        loop {
            match job.rec.state {
                State::Claimed | State::Submitting => {
                    slot = Some(self.submit_step(job).await?);
                    fresh = true;
                }
                State::Submitted => {
                    let polled = self.poll_step(job, fresh).await;
                    if !matches!(polled, Err(Stop::Cancelled)) {
                        slot = None;
                    }
                    polled?;
                }
                State::Succeeded => {
                    drop(slot.take());
                    self.download_step(job).await?;
                }
                State::Downloaded => return Ok(()),
                State::Failed => return Err(Stop::Failed(job.rec.failure_or_default())),
            }
        }
    }
}

fn save(job: &JobCtx) -> Result<(), Stop> {
    job.save().map_err(|e| {
        Stop::Failed(Failure {
            message: format!("cannot write the job state in processing/{}: {e}", job.rec.id),
            advice: "check that the disk is not full and the studio folder is writable, then move the image back into inbox/".into(),
            api: None,
        })
    })
}

/// The create body: dropreel's fields, then `extra:` merged in verbatim.
pub fn request_body(spec: &crate::job::JobSpec, prompt_image: String) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(spec.model));
    body.insert("promptImage".into(), json!(prompt_image));
    if !spec.prompt.is_empty() {
        body.insert("promptText".into(), json!(spec.prompt));
    }
    if let Some(r) = &spec.ratio {
        body.insert("ratio".into(), json!(r));
    }
    body.insert("duration".into(), json!(spec.duration));
    if let Some(s) = spec.seed {
        body.insert("seed".into(), json!(s));
    }
    for (k, v) in &spec.extra {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// A per-job failure from an API refusal.
fn refusal(step: &str, err: &ApiError) -> Failure {
    let (status, msg) = match err {
        ApiError::Http {
            status, message, ..
        } => (*status, message.clone()),
        other => (0, other.to_string()),
    };
    Failure {
        message: format!("Runway refused the request while {step} (HTTP {status}): {msg}"),
        advice: "fix what the message names (in the sidecar or the image) and move the image back into inbox/".into(),
        api: Some(format!("HTTP {status}: {msg}")),
    }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
