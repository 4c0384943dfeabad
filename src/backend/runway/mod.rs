//! The Runway API backend as resumable steps: submit (the image inline as a data URI, or through
//! the upload endpoint when too big), poll the task on the clock of [`schedule`], stream the MP4 into
//! the job folder. Each step saves the job's state before the next depends on it.
//!
//! [`api`] speaks HTTP and types the answers; [`faults`] sorts what goes wrong into the shared
//! [`Fault`] classes; [`queue`] holds what is learnt across jobs (task times, Runway's queue order).
//! (About 700 lines: the three steps, the spend counted before each create, and what each kind of
//! job sends — an image or two, a text, an uploaded video.)

pub mod api;
mod faults;
mod queue;
pub mod schedule;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use tokio::time::Instant;

use api::Api;
pub use api::{
    ApiError, DATA_URI_MAX, DownloadError, Media, Task, TaskStatus, UPLOAD_MAX, request_body,
    retry_after,
};
use faults::TaskFailure;
use queue::Queue;
use schedule::PollClock;

use super::{
    Backend, Fault, Gate, HoldCause, JobCtx, Limits, Passage, Service, SlotGuard, Slots, Stop,
};
use crate::config::{BudgetSection, RunwaySection, Settings};
use crate::job::JobKind;
use crate::job::models::Catalog;
use crate::studio::ledger::spend::{self, Refusal, SpendLog};
use crate::studio::record::Upload;
use crate::studio::spool::{Failure, State};

/// An upload URI is valid for 24 h; reuse it only well within that.
const UPLOAD_REUSE_SECS: u64 = 23 * 3600;
/// The service, as the gate's messages name it.
const SERVICE: Service = Service {
    name: "the Runway API",
    key_variable: "RUNWAYML_API_SECRET",
};
/// Time a create request may still take to answer after a stop was asked for.
const SUBMIT_GRACE: Duration = Duration::from_millis(1500);
/// What the Runway backend takes (known without a key: `estimate` prices against it).
pub const LIMITS: Limits = Limits {
    catalog: Catalog::Runway,
    max_bytes: Some(UPLOAD_MAX),
    max_pixels: crate::media::MAX_DECODE_PIXELS,
};

/// The Runway backend.
#[derive(Debug)]
pub struct Runway {
    api: Api,
    cfg: RunwaySection,
    slots: Arc<Slots>,
    gate: Gate,
    queue: Queue,
    /// The studio's spend, counted before each create request.
    spend: Arc<SpendLog>,
    budget: BudgetSection,
}

/// A file as it is sent: its path, the name it is uploaded under, its type, and whether it may go
/// inline as a data URI (small images only).
struct ToSend {
    path: PathBuf,
    name: String,
    mime: &'static str,
    inline: bool,
}

/// The video of a video job, always uploaded.
fn video_to_send(job: &JobCtx) -> Result<ToSend, Stop> {
    let name = job.rec.source.name.clone();
    let path = job.spool.job_dir(&job.rec.id).join(&name);
    match crate::media::video::container_of(&path) {
        Ok(Some(c)) => Ok(ToSend {
            path,
            name,
            mime: c.mime(),
            inline: false,
        }),
        _ => Err(Stop::Failed(Failure {
            message: format!("{name} is no longer a readable video"),
            advice: "export it again as an MP4 and move it back into inbox/".into(),
            api: None,
        })),
    }
}

/// How the image reaches the create request.
enum PromptImage {
    /// Inline as a data URI, or an upload made earlier and still valid.
    Ready(String),
    /// Uploaded just now (to note in `job.json`, so a resume reuses it).
    Uploaded(String),
}

impl Runway {
    /// A client for the configured API. Fails when no key is set.
    pub fn new(settings: &Settings) -> anyhow::Result<Runway> {
        let key = settings.api_key.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no Runway API key: set RUNWAYML_API_SECRET in the environment or in ROOT/.env"
            )
        })?;
        let cfg = settings.config.runway.clone();
        Ok(Runway {
            api: Api::new(&cfg, key)?,
            slots: Slots::new(cfg.max_in_flight),
            gate: Gate::new(SERVICE, cfg.retry_min, cfg.retry_max),
            queue: Queue::default(),
            spend: Arc::new(SpendLog::new(&settings.root)),
            budget: settings.config.budget.clone(),
            cfg,
        })
    }

    /// The file to send for the job's image `name` (its first or last keyframe) and its type: the
    /// image itself, or — for formats the API does not take (GIF, BMP, TIFF) — a PNG made from it
    /// once and kept in the job folder as `converted`.
    async fn image_to_send(
        &self,
        job: &JobCtx,
        name: &str,
        converted: &str,
    ) -> Result<ToSend, Stop> {
        let dir = job.spool.job_dir(&job.rec.id);
        let format = if name == job.rec.source.name {
            job.rec.info.format
        } else {
            match crate::media::format_of(&dir.join(name)) {
                Ok(Some(f)) => f,
                _ => {
                    return Err(Stop::Failed(Failure {
                        message: format!("{name} is no longer a readable image"),
                        advice: "export it again as a PNG or JPEG and move it back into inbox/"
                            .into(),
                        api: None,
                    }));
                }
            }
        };
        if format.sent_as_is() {
            return Ok(ToSend {
                path: dir.join(name),
                name: name.to_string(),
                mime: format.mime(),
                inline: true,
            });
        }
        let png = dir.join(converted);
        let png_name = format!("{}.png", crate::studio::layout::split_name(name).0);
        if !png.exists() {
            let (src, dst) = (dir.join(name), png.clone());
            let done =
                tokio::task::spawn_blocking(move || crate::media::convert::to_png(&src, &dst))
                    .await
                    .unwrap_or_else(|e| Err(format!("the converter crashed: {e}")));
            if let Err(why) = done {
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "{name} ({}) could not be converted to PNG for Runway: {why}",
                        format.name()
                    ),
                    advice: "export it as a PNG or JPEG and move that into inbox/".into(),
                    api: None,
                }));
            }
            tracing::info!(job = %job.rec.id, file = %name, from = format.name(), "converted to PNG for Runway");
        }
        let len = std::fs::metadata(&png).map_or(0, |m| m.len());
        if len > UPLOAD_MAX {
            return Err(Stop::Failed(Failure {
                message: format!(
                    "{name} converted to PNG is {} MB; Runway takes images of at most {} MB",
                    len >> 20,
                    UPLOAD_MAX >> 20
                ),
                advice: "export a smaller JPEG of it and move that into inbox/".into(),
                api: None,
            }));
        }
        Ok(ToSend {
            path: png,
            name: png_name,
            mime: "image/png",
            inline: true,
        })
    }

    /// How an image reaches the create request: a data URI when it fits the inline limit, else an
    /// upload (`earlier`, an upload made before, is reused while valid).
    async fn prompt_image(
        &self,
        job: &JobCtx,
        file: &ToSend,
        earlier: Option<&Upload>,
    ) -> Result<PromptImage, ApiError> {
        let len = tokio::fs::metadata(&file.path)
            .await
            .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?
            .len();
        let prefix = format!("data:{};base64,", file.mime);
        let encoded_len = prefix.len() as u64 + len.div_ceil(3) * 4;
        // Videos always go through the upload endpoint, streamed from disk.
        if file.inline && encoded_len < DATA_URI_MAX as u64 {
            let bytes = tokio::fs::read(&file.path)
                .await
                .map_err(|e| ApiError::Lost(format!("cannot read the image: {e}")))?;
            let mut uri = prefix;
            base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut uri);
            return Ok(PromptImage::Ready(uri));
        }
        if let Some(up) = earlier
            && unix_now().saturating_sub(up.at) < UPLOAD_REUSE_SECS
        {
            return Ok(PromptImage::Ready(up.uri.clone()));
        }
        let uri = self
            .api
            .upload(&file.path, &file.name, file.mime, len)
            .await?;
        tracing::info!(job = %job.rec.id, file = %file.name, bytes = len, "uploaded");
        Ok(PromptImage::Uploaded(uri))
    }

    /// The job's images as the create request names them (uploading where needed, and noting
    /// uploads in `job.json` so a resume reuses them). `Ok(Err)`: an API error to handle.
    async fn media(
        &self,
        job: &mut JobCtx,
        files: &[ToSend],
    ) -> Result<Result<Media, ApiError>, Stop> {
        let mut uris = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let earlier = if i == 0 {
                job.rec.upload()
            } else {
                job.rec.last_upload.clone()
            };
            match self.prompt_image(job, file, earlier.as_ref()).await {
                Ok(PromptImage::Ready(uri)) => uris.push(uri),
                Ok(PromptImage::Uploaded(uri)) => {
                    let up = Upload {
                        uri: uri.clone(),
                        at: unix_now(),
                    };
                    if i == 0 {
                        job.rec.upload_uri = Some(up.uri);
                        job.rec.upload_at = Some(up.at);
                    } else {
                        job.rec.last_upload = Some(up);
                    }
                    job.save().await?;
                    uris.push(uri);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        let mut uris = uris.into_iter();
        Ok(Ok(match (uris.next(), uris.next()) {
            (None, _) => Media::None,
            (Some(first), None) => Media::One(first),
            (Some(first), Some(last)) => Media::Keyframes { first, last },
        }))
    }

    /// Claimed → Submitted. Holds the slot it returns; the caller keeps it until the task ends.
    async fn submit_step(&self, job: &mut JobCtx) -> Result<SlotGuard, Stop> {
        if job.rec.state == State::Submitting {
            job.rec.uncertain_submissions += 1;
            crate::observe::metrics::get().uncertain_submit();
            self.uncertain(
                job,
                "dropreel stopped while this job's create request was on the wire",
            )?;
            job.rec.state = State::Claimed;
            job.save().await?;
        }
        // A model the budget cannot price waits on its own, holding no slot and no one else up.
        self.unpriced(job).await?;
        // A conversion needs no slot: done before waiting for one. A text job sends no file.
        let mut to_send = Vec::new();
        match job.rec.kind.clone() {
            JobKind::Image { last_frame } => {
                let first = job.rec.source.name.clone();
                let converted = job.rec.converted_file(false);
                let file = self.image_to_send(job, &first, &converted);
                to_send.push(file.await?);
                if let Some(last) = last_frame {
                    let converted = job.rec.converted_file(true);
                    let file = self.image_to_send(job, &last, &converted);
                    to_send.push(file.await?);
                }
            }
            JobKind::Video => to_send.push(video_to_send(job)?),
            JobKind::Text => {}
        }
        let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
        let slot = ticket.acquire(&job.cancel).await.ok_or(Stop::Cancelled)?;
        loop {
            let stamp = match self.gate.passage(&job.cancel, job.waits_for_budget).await {
                Passage::Go(stamp) => stamp,
                Passage::Cancelled => return Err(Stop::Cancelled),
                Passage::Budget(detail) => return Err(Stop::Held(detail)),
            };
            let input = match self.media(job, &to_send).await? {
                Ok(media) => media,
                Err(e) => {
                    let delay = self.on_error(job, &e, "uploading the image", stamp)?;
                    job.save().await?;
                    job.pause(delay).await?;
                    continue;
                }
            };
            // A pause that began while the image was prepared (another job's 429) holds this
            // create too: nothing is sent before the server's time.
            if !self.gate.open_for(stamp) {
                continue;
            }
            // Counted before the request goes out (a crash can over-count, never under-count).
            match self.charge(job).await? {
                Ok(()) => {}
                Err(Refusal::NeverFits {
                    period,
                    limit,
                    cost,
                }) => {
                    // Not a hold: no day or month to come would let it through.
                    self.gate.release_probe();
                    let budget = &self.budget;
                    let endpoint = job.rec.kind.endpoint();
                    let spec = &job.rec.spec;
                    let f = spend::never_fits(spec, endpoint, budget, period, limit, cost);
                    return Err(Stop::Failed(f));
                }
                Err(refusal @ Refusal::UnknownRate { .. }) => {
                    self.gate.release_probe();
                    return Err(Stop::Held(refusal.detail()));
                }
                Err(refusal @ Refusal::Over { .. }) => {
                    let detail = refusal.detail();
                    self.gate
                        .trip(HoldCause::Budget, &detail, Some(refusal.wait()));
                    if !job.waits_for_budget {
                        return Err(Stop::Held(detail));
                    }
                    continue;
                }
            }
            job.rec.state = State::Submitting;
            job.rec.submissions += 1;
            crate::observe::metrics::get().submitted();
            job.save().await?;
            let cancel = job.cancel.clone();
            let body = request_body(&job.rec.spec, &job.rec.kind, input);
            let endpoint = job.rec.kind.endpoint().path();
            let result = tokio::select! {
                r = self.api.create(endpoint, &body) => Some(r),
                () = async { cancel.cancelled().await; tokio::time::sleep(SUBMIT_GRACE).await } => None,
            };
            match result {
                // Stopped with the request unanswered: leave `submitting`; resume says so loudly.
                None => return Err(Stop::Cancelled),
                Some(Ok(task_id)) => {
                    self.gate.ok(stamp);
                    job.rec.state = State::Submitted;
                    job.rec.task_id = Some(task_id.clone());
                    job.rec.task_status = Some(TaskStatus::Pending.as_str().into());
                    job.rec.progress = None;
                    job.rec.submitted_at = Some(crate::studio::clock::now_rfc3339());
                    job.save().await?;
                    tracing::info!(job = %job.rec.id, file = %job.rec.source.name, kind = job.rec.kind.name(), task = %task_id, model = %job.rec.spec.model, "submitted");
                    return Ok(slot);
                }
                Some(Err(e)) => {
                    job.rec.state = State::Claimed;
                    // Sorted first (a probe's gate is released or tripped), then the policy for a
                    // create whose outcome is unknown decides, over the retry budget.
                    let delay = self.on_error(job, &e, "submitting the task", stamp);
                    if let Some(what) = faults::unknown_outcome(&e) {
                        job.rec.uncertain_submissions += 1;
                        crate::observe::metrics::get().uncertain_submit();
                        job.save().await?;
                        self.uncertain(job, &what)?;
                    }
                    job.save().await?;
                    job.pause(delay?).await?;
                }
            }
        }
    }

    /// Under a budget, a model with no known price cannot be counted: its job waits on its own.
    /// One never sent goes back to `inbox/` ([`Stop::Held`]), where it waits unclaimed; one sent
    /// before waits here under `watch` (holding no slot) until dropreel stops, and ends a `run`'s
    /// work on it for now.
    async fn unpriced(&self, job: &mut JobCtx) -> Result<(), Stop> {
        let Some(refusal) = spend::unpriced(&job.rec.spec, &self.budget) else {
            return Ok(());
        };
        if !job.waits_for_budget || job.rec.never_sent() {
            return Err(Stop::Held(refusal.detail()));
        }
        tracing::warn!(job = %job.rec.id, file = %job.rec.source.name, "this job waits until dropreel restarts: {}", refusal.detail());
        drop(job.ticket.take());
        job.cancel.cancelled().await;
        Err(Stop::Cancelled)
    }

    /// Writes this create request into the studio's spend log, unless the budget refuses it.
    async fn charge(&self, job: &mut JobCtx) -> Result<Result<(), Refusal>, Stop> {
        let credits = spend::cost(&job.rec.spec, &self.budget.rates);
        loop {
            let now = jiff::Zoned::now();
            let uncertain = job.rec.uncertain_submissions > 0;
            let entry = spend::entry(&job.rec.id, &job.rec.spec.model, credits, uncertain, &now);
            // A small append under a lock held for microseconds, done in place like a save.
            match self.spend.charge(entry, &self.budget, &now) {
                Ok(Ok(_)) => return Ok(Ok(())),
                Ok(Err(refusal)) => return Ok(Err(refusal)),
                Err(e) => {
                    // A probe that cannot count lets another job try; this one waits for the disk.
                    self.gate.release_probe();
                    let d = job.on_fault(
                        Fault::Disk(e),
                        "counting the spend in .dropreel/spend/",
                        None,
                    )?;
                    job.pause(d).await?;
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
                         the file back into inbox/ to submit it again"
                    .into(),
                api: None,
            }));
        };
        // Wall-clock: the submission time is persisted and outlives this process.
        let submitted = job
            .rec
            .submitted_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339(s).ok())
            .unwrap_or_else(SystemTime::now);
        let mut errors = 0u32;
        let started = Instant::now();
        let mut clock = PollClock::new(started, self.cfg.poll_interval, self.queue.expected())
            .with_queued(self.queue.expected_queued());
        let mut ever_queued = false;
        let mut delay = clock.first();
        let mut place = self.queue.place(started, task_id.clone());
        let mut queued = false;
        loop {
            // A task queued by Runway starts when one ahead of it ends: when one of ours ends, the
            // longest-waiting queued one looks again at once instead of at the interval.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = place.moved(), if queued => clock.queue_moved(Instant::now()),
                () = job.cancel.cancelled() => return Err(Stop::Cancelled),
            }
            let task = match self.api.task(&task_id).await {
                Ok(t) => t,
                Err(ApiError::Http { status: 404, .. }) => {
                    return Err(Stop::Failed(Failure {
                        message: format!(
                            "Runway no longer knows task {task_id}: it was deleted or cancelled on the server"
                        ),
                        advice: "move the file back into inbox/ to submit it again".into(),
                        api: None,
                    }));
                }
                Err(e) => {
                    errors += 1;
                    delay = self.on_poll_error(&e, errors);
                    tracing::debug!(job = %job.rec.id, error = %e, ?delay, "poll failed; asking again later");
                    continue;
                }
            };
            errors = 0;
            let status = task.status;
            delay = clock.next(Instant::now(), status, task.progress);
            tracing::debug!(job = %job.rec.id, task = %task_id, status = %status, progress = ?task.progress, next_poll = ?delay, "polled");
            queued = status == TaskStatus::Throttled;
            ever_queued |= queued;
            place.set(queued);
            if status.is_final() {
                self.queue.task_ended();
            }
            if job.rec.task_status.as_deref() != Some(status.as_str()) {
                tracing::info!(job = %job.rec.id, file = %job.rec.source.name, task = %task_id, status = %status, "task status");
                job.rec.task_status = Some(status.as_str().into());
                job.rec.progress = task.progress;
                // A final status is written with what follows from it (below).
                if !status.is_final() {
                    job.note().await?;
                }
            } else if task.progress != job.rec.progress {
                job.rec.progress = task.progress;
                job.note().await?;
            }
            match status {
                TaskStatus::Succeeded => {
                    if task.output.is_empty() {
                        return Err(Stop::Failed(Failure {
                            message: format!("task {task_id} succeeded but returned no video"),
                            advice: "move the file back into inbox/ to try again".into(),
                            api: None,
                        }));
                    }
                    job.rec.state = State::Succeeded;
                    job.rec.output_urls = task.output;
                    job.rec.finished_at = Some(crate::studio::clock::now_rfc3339());
                    // The download does not depend on it: a job stopped now polls its task again.
                    job.note().await?;
                    if fresh && ever_queued {
                        self.queue.took_queued(started.elapsed());
                    } else if fresh && !clock.was_queued() {
                        self.queue.took(started.elapsed());
                    }
                    return Ok(());
                }
                TaskStatus::Failed => {
                    return match faults::task_failure(&task, job.rec.submissions) {
                        TaskFailure::PerJob(f) => {
                            if faults::refused_for_good(&task.failure_code) {
                                job.rec.refused_for_good = Some(task.failure_code.clone());
                            }
                            Err(Stop::Failed(f))
                        }
                        TaskFailure::Retry(error) => {
                            let fault = Fault::Transient {
                                error,
                                retry_after: None,
                            };
                            job.on_fault(fault, "generating the video", None)?;
                            job.rec.state = State::Claimed;
                            job.rec.task_id = None;
                            job.rec.task_status = None;
                            job.save().await
                        }
                    };
                }
                TaskStatus::Cancelled => {
                    return Err(Stop::Failed(Failure {
                        message: format!(
                            "task {task_id} was cancelled on Runway's side (from the dashboard or the API)"
                        ),
                        advice: "move the file back into inbox/ to submit it again".into(),
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
                let _ = self.api.cancel(&task_id).await;
                return Err(Stop::Failed(Failure {
                    message: format!(
                        "task {task_id} was still {status} after {} (runway.task_timeout); it was cancelled",
                        humantime::format_duration(self.cfg.task_timeout)
                    ),
                    advice: "Runway may be busy: move the file back into inbox/ to try again, or raise runway.task_timeout".into(),
                    api: None,
                }));
            }
        }
    }

    /// Succeeded → Downloaded: streams the MP4 to `<output>.part`, checks it, fsyncs, renames.
    async fn download_step(&self, job: &mut JobCtx) -> Result<(), Stop> {
        loop {
            let url = job.rec.output_urls.first().cloned().unwrap_or_default();
            let dir = job.spool.job_dir(&job.rec.id);
            let cancel = job.cancel.clone();
            let output = job.rec.output_file();
            let result = tokio::select! {
                r = self.api.download(&url, &dir, &output) => r,
                () = cancel.cancelled() => return Err(Stop::Cancelled),
            };
            match result {
                Ok(bytes) => {
                    job.rec.state = State::Downloaded;
                    job.rec.output_bytes = Some(bytes);
                    if job.rec.variant.is_some() {
                        // A take may wait for the others: its video is kept across a stop.
                        job.save().await?;
                    } else {
                        // Delivery follows at once and writes the record before it moves a file.
                        job.note().await?;
                    }
                    tracing::info!(job = %job.rec.id, file = %job.rec.source.name, bytes, "downloaded");
                    return Ok(());
                }
                Err(DownloadError::Expired(status)) => {
                    tracing::info!(job = %job.rec.id, status, "output URL expired; asking the task for fresh URLs");
                    let fault = Fault::Transient {
                        error: format!("output URL answered HTTP {status}"),
                        retry_after: None,
                    };
                    let delay = job.on_fault(fault, "downloading the video", None)?;
                    self.refresh_output(job, delay).await?;
                }
                Err(DownloadError::Disk(e)) => {
                    // Not the job's fault and not Runway's: the paid-for video waits (on
                    // Runway's side, its URL refreshed when needed) until the disk takes it.
                    let _ = std::fs::remove_file(
                        job.spool.job_dir(&job.rec.id).join(job.rec.output_part()),
                    );
                    let delay = job.on_fault(Fault::Disk(e), "downloading the video", None)?;
                    job.pause(delay).await?;
                }
                Err(e @ DownloadError::Cut(_)) => {
                    let fault = Fault::Transient {
                        error: e.to_string(),
                        retry_after: None,
                    };
                    let delay = job.on_fault(fault, "downloading the video", None)?;
                    job.save().await?;
                    job.pause(delay).await?;
                }
            }
        }
    }

    /// Asks the task for fresh output URLs after the old ones expired.
    async fn refresh_output(&self, job: &mut JobCtx, delay: Duration) -> Result<(), Stop> {
        let task_id = job.rec.task_id.clone().unwrap_or_default();
        let stamp = self.gate.stamp();
        match self.api.task(&task_id).await {
            Ok(task) if task.status == TaskStatus::Succeeded => {
                job.rec.output_urls = task.output;
                job.save().await
            }
            Ok(_) | Err(ApiError::Http { status: 404, .. }) => Err(Stop::Failed(Failure {
                message: format!("the video of task {task_id} is no longer available on Runway"),
                advice: "move the file back into inbox/ to generate it again".into(),
                api: None,
            })),
            Err(e) => {
                let d = self.on_error(job, &e, "refreshing the output URL", stamp)?;
                job.pause(d.max(delay)).await
            }
        }
    }
}

impl Backend for Runway {
    fn name(&self) -> &'static str {
        "runway"
    }

    fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    fn gate(&self) -> Option<&Gate> {
        Some(&self.gate)
    }

    fn limits(&self) -> Limits {
        LIMITS
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
