//! The steps after the create request: poll the task on the clock of [`super::schedule`] until it
//! ends (its failure sorted into the shared fault classes), then stream its output into the job
//! folder, asking for a fresh link when the one held has expired.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{ApiError, DownloadError, PollClock, Runway, TaskFailure, TaskStatus, faults};
use crate::backend::{Fault, JobCtx, Stop};
use crate::studio::spool::{Failure, State};

impl Runway {
    /// Submitted → Succeeded (or back to Claimed for a retryable task failure).
    /// `fresh`: the task was submitted just now by this process (its timing teaches the clock).
    pub(super) async fn poll_step(&self, job: &mut JobCtx, fresh: bool) -> Result<(), Stop> {
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
                self.task_ended(job, &task_id, &task).await?;
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
    pub(super) async fn download_step(&self, job: &mut JobCtx) -> Result<(), Stop> {
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
    pub(super) async fn refresh_output(
        &self,
        job: &mut JobCtx,
        delay: Duration,
    ) -> Result<(), Stop> {
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
