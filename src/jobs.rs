//! The job tasks: one per job this instance drives, from the state it is in to `done/` or
//! `failed/`. A task hashes its source before anything is sent, lets the backend produce the MP4,
//! then delivers — or fails the job by the one route every failure takes (bad input found at
//! admission, a backend's refusal, a job whose task panicked). The tasks live in a [`JoinSet`], so
//! none can outlive a stop, and a panic comes back as that job's failure, never a hang.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, JobCtx, RetryPolicy, Stop, Ticket};
use crate::report;
use crate::spool::{Failure, JobRecord, Spool, State};

/// How a job task ended.
#[derive(Debug)]
pub enum End {
    Delivered,
    Failed,
    /// Finished, but `done/` or `failed/` refused its files: it waits in `processing/`, and is
    /// delivered at the next rescan or start.
    Undelivered,
    /// Left in `processing/` (stop, lease lost); resumed later.
    Left,
}

/// A job task's last word.
#[derive(Debug)]
pub struct Ended {
    pub id: String,
    pub end: End,
}

/// The job tasks this instance drives.
pub struct Jobs {
    set: JoinSet<Ended>,
    /// Which job each task drives, to name the job of a task that panicked.
    ids: HashMap<tokio::task::Id, String>,
    /// Retry and disk-wait pacing for every job.
    retry: RetryPolicy,
}

impl Jobs {
    pub fn new(retry: RetryPolicy) -> Jobs {
        Jobs {
            set: JoinSet::new(),
            ids: HashMap::new(),
            retry,
        }
    }

    /// Starts the task that drives `rec` on `backend`. `ticket`: its place in the queue for a
    /// slot, when it was claimed just now; `cancel` stops it at its next safe point.
    pub fn start<B: Backend>(
        &mut self,
        backend: &Arc<B>,
        spool: &Spool,
        rec: JobRecord,
        ticket: Option<Ticket>,
        cancel: CancellationToken,
    ) {
        let backend = backend.clone();
        let id = rec.id.clone();
        let ctx = JobCtx::new(spool.clone(), rec, cancel, ticket, self.retry);
        self.spawn(id, drive(backend, ctx));
    }

    fn spawn(&mut self, id: String, task: impl Future<Output = Ended> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.ids.insert(handle.id(), id);
    }

    /// The next job to end; `None` when none runs.
    pub async fn next(&mut self, spool: &Spool) -> Option<Ended> {
        loop {
            match self.set.join_next_with_id().await? {
                Ok((task, ended)) => {
                    self.ids.remove(&task);
                    return Some(ended);
                }
                Err(e) => {
                    let Some(id) = self.ids.remove(&e.id()) else {
                        continue;
                    };
                    if !e.is_panic() {
                        return Some(Ended { id, end: End::Left });
                    }
                    let why = panic_message(e.into_panic());
                    tracing::error!(job = %id, panic = %why, "dropreel hit an internal error while working on this job; it goes to failed/");
                    let failure = Failure {
                        message: format!(
                            "dropreel hit an internal error while working on this job ({why})"
                        ),
                        advice: "move the file back into inbox/ to try again; if it happens again, report it (this is a bug in dropreel) with the job's log lines".into(),
                        api: None,
                    };
                    let end = match spool.load(&id) {
                        Ok(rec) => {
                            let token = CancellationToken::new();
                            let mut ctx = JobCtx::new(spool.clone(), rec, token, None, self.retry);
                            fail(&mut ctx, failure)
                        }
                        Err(load) => {
                            tracing::error!(job = %id, error = %load, "the job's state cannot be read either; it stays in processing/");
                            End::Undelivered
                        }
                    };
                    return Some(Ended { id, end });
                }
            }
        }
    }

    /// Stops every task still running (their state is on disk).
    pub fn abort_all(&mut self) {
        self.set.abort_all();
    }
}

/// One job's task.
async fn drive<B: Backend>(backend: Arc<B>, mut ctx: JobCtx) -> Ended {
    // The bytes this job works from, noted before anything is sent (and compared at delivery). It
    // reaches job.json with the next step's save; a crash before that leaves the job `claimed`,
    // and the hash is taken again.
    if ctx.rec.state == State::Claimed && ctx.rec.source_sha256.is_none() {
        ctx.rec.source_sha256 = hash_source(&ctx.spool, &ctx.rec).await;
        if let Some(last) = ctx.rec.kind.last_frame() {
            ctx.rec.last_frame_sha256 = hash_file(&ctx.spool, &ctx.rec.id, last).await;
        }
    }
    // A job that failed before a stop (or at admission) is moved to failed/, whatever the backend.
    let outcome = match ctx.rec.state {
        State::Failed => Err(Stop::Failed(ctx.rec.failure_or_default())),
        _ => backend.produce(&mut ctx).await,
    };
    drop(ctx.ticket.take());
    let end = match outcome {
        Ok(()) => {
            check_source_unchanged(&ctx.spool, &mut ctx.rec).await;
            deliver(&mut ctx, backend.name())
        }
        Err(Stop::Failed(f)) => fail(&mut ctx, f),
        Err(Stop::Cancelled) => End::Left,
    };
    Ended {
        id: ctx.rec.id.clone(),
        end,
    }
}

/// The SHA-256 of the job's image, off the runtime's threads.
async fn hash_source(spool: &Spool, rec: &JobRecord) -> Option<String> {
    hash_file(spool, &rec.id, &rec.source.name).await
}

/// The SHA-256 of the file `name` in job `id`'s folder, off the runtime's threads.
async fn hash_file(spool: &Spool, id: &str, name: &str) -> Option<String> {
    let path = spool.job_dir(id).join(name);
    tokio::task::spawn_blocking(move || crate::media::sha256_file(&path))
        .await
        .ok()?
        .ok()
}

/// Warns loudly when the image changed after the job started (its writer kept writing into the
/// claimed file): the video was made from bytes that `done/` will not hold.
async fn check_source_unchanged(spool: &Spool, rec: &mut JobRecord) {
    let Some(before) = rec.source_sha256.clone() else {
        return;
    };
    if rec.source_changed || rec.delivery.is_some() {
        return;
    }
    if hash_source(spool, rec)
        .await
        .is_some_and(|now| now != before)
    {
        tracing::warn!(
            job = %rec.id,
            file = %rec.source.name,
            "THE SOURCE CHANGED AFTER IT WAS SENT: another program kept writing into the image after \
             dropreel took it, so the video was made from different bytes than the file now in done/. \
             Check the video; to make it from the finished file, move the file back into inbox/"
        );
        rec.source_changed = true;
    }
}

/// Moves the finished job into `done/`. When `done/` refuses (a full disk, permissions, a folder
/// gone), the job waits in `processing/` and is delivered at the next rescan or start — never lost,
/// never generated again — and a `run` says so in its exit code.
fn deliver(ctx: &mut JobCtx, backend: &str) -> End {
    let json = report::result_json(&ctx.rec, backend);
    match ctx.spool.deliver(&mut ctx.rec, &json) {
        Ok(stem) => {
            let output = ctx.rec.kind.output_ext();
            tracing::info!(job = %ctx.rec.id, file = %ctx.rec.source.name, to = %format!("done/{stem}.{output}"), "delivered");
            End::Delivered
        }
        Err(e) => {
            tracing::error!(job = %ctx.rec.id, file = %ctx.rec.source.name, error = %e,
                "cannot move the finished job into done/ (disk full or permissions?); it stays in processing/ and is tried again at the next rescan (watch.rescan) or the next start");
            End::Undelivered
        }
    }
}

/// Records the failure and moves the job into `failed/` with its `error.txt`: the one route to
/// `failed/`. When `failed/` refuses, the job waits in `processing/` like an undelivered one.
fn fail(ctx: &mut JobCtx, failure: Failure) -> End {
    ctx.rec.state = State::Failed;
    ctx.rec.failure = Some(failure.clone());
    let text = report::error_text(
        &ctx.rec.source.name,
        ctx.rec.sidecar.as_deref(),
        &ctx.rec.id,
        &failure,
    );
    if let Err(e) = ctx.spool.save(&ctx.rec) {
        tracing::error!(job = %ctx.rec.id, error = %e, "cannot save the job state");
    }
    match ctx.spool.fail(&mut ctx.rec, &text) {
        Ok(stem) => {
            tracing::warn!(
                job = %ctx.rec.id,
                file = %ctx.rec.source.name,
                to = %format!("failed/{stem}.error.txt"),
                reason = %failure.message,
                "failed"
            );
            End::Failed
        }
        Err(e) => {
            tracing::error!(job = %ctx.rec.id, file = %ctx.rec.source.name, error = %e, "cannot move the failed job into failed/ (disk full or permissions?); it stays in processing/ and is tried again at the next rescan (watch.rescan) or the next start");
            End::Undelivered
        }
    }
}

/// A panic's payload as text.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{ImageInfo, JobSpec};

    // See: issue 10 — a job task that panicked never reported, so `run` waited forever.
    #[tokio::test]
    async fn a_job_task_that_panics_ends_as_that_jobs_failure() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        std::fs::write(spool.inbox().join("x.png"), b"image").unwrap();
        let source = crate::source::Source::in_inbox("x.png");
        let id = spool.claim(&source, None, None, false).unwrap().unwrap().id;
        let rec = JobRecord::new(
            id.clone(),
            source,
            None,
            ImageInfo::UNKNOWN,
            JobSpec::default(),
            "local",
        );
        spool.save(&rec).unwrap();
        let mut jobs = Jobs::new(RetryPolicy {
            retries: 0,
            min: std::time::Duration::from_millis(10),
            max: std::time::Duration::from_millis(10),
        });
        jobs.spawn(id.clone(), async { panic!("boom") });
        let ended = jobs.next(&spool).await.unwrap();
        assert_eq!(ended.id, id);
        assert!(matches!(ended.end, End::Failed));
        let text = std::fs::read_to_string(d.path().join("failed/x.error.txt")).unwrap();
        assert!(
            text.contains("internal error") && text.contains("(boom)"),
            "{text}"
        );
        assert!(d.path().join("failed/x.png").exists());
        assert!(jobs.next(&spool).await.is_none(), "nothing else runs");
    }
}
