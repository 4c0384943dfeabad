//! The job tasks: one per job this instance drives, from the state it is in to `done/` or
//! `failed/`. A task hashes its source before anything is sent, looks its key up in the dedupe
//! ledger (reusing an earlier delivery — whole, or the takes of it still in `done/` —, waiting for
//! an identical job in flight, or failing at once when an identical job was refused lately for
//! good), lets the backend produce the MP4 (or each take of a job with [`crate::run::variants`]), then
//! delivers and records in the ledger what each delivered video is — or fails the job by the one
//! route every failure takes (bad input found at admission, a backend's refusal, a job whose task
//! panicked) — or, when the budget holds a job that does not wait for it, puts it back into
//! `inbox/` if nothing was ever sent for it. The tasks live in a [`JoinSet`], so none can outlive a
//! stop, and a panic comes back as that job's failure, never a hang.
//!
//! The task's steps are here; the dedupe ledger's part before anything is made is [`mod@reuse`], and
//! the end — posters, delivery or failure, what is told — is [`finish`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, JobCtx, RetryPolicy, Stop, Ticket};
use crate::observe::live::Live;
use crate::observe::notify::Outbox;
use crate::studio::ledger::dedupe::{Found, Ledger};
use crate::studio::spool::{Failure, JobRecord, Spool, State};

mod finish;
mod reuse;

use finish::{check_source_unchanged, deliver, fail, identify_videos, make_posters, tell};
use reuse::{Earlier, place_takes, reuse};

/// How a job task ended.
#[derive(Debug)]
pub enum End {
    Delivered,
    /// Delivered with the videos of some takes, while others failed (listed in its result.json).
    PartlyDelivered,
    Failed,
    /// Finished, but `done/` or `failed/` refused its files: it waits in `processing/`, and is
    /// delivered at the next rescan or start.
    Undelivered,
    /// Left in `processing/` (stop, lease lost); resumed later.
    Left,
    /// The budget holds it (the detail): back in `inbox/` when it was never sent, else left in
    /// `processing/` for the next run.
    Held(String),
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
    /// The studio's dedupe ledger.
    ledger: Ledger,
    /// Where a job's end is told (`notify:`), if anyone listens.
    outbox: Option<Outbox>,
    /// The live view of the jobs in flight.
    live: Live,
    /// Whether a job waits out a hold for the budget (`watch`) or ends for now (`run`).
    waits_for_budget: bool,
}

impl Jobs {
    pub fn new(retry: RetryPolicy, ledger: Ledger, outbox: Option<Outbox>, live: Live) -> Jobs {
        Jobs {
            set: JoinSet::new(),
            ids: HashMap::new(),
            retry,
            ledger,
            outbox,
            live,
            waits_for_budget: true,
        }
    }

    /// A `run`'s jobs do not wait for the budget: what the budget holds ends for now.
    pub fn not_waiting_for_budget(mut self) -> Jobs {
        self.waits_for_budget = false;
        self
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
        let mut ctx =
            JobCtx::new(spool.clone(), rec, cancel, ticket, self.retry).shown_in(self.live.clone());
        ctx.waits_for_budget = self.waits_for_budget;
        let task = drive(
            backend,
            self.ledger.clone(),
            self.outbox.clone(),
            self.live.clone(),
            ctx,
        );
        self.spawn(id, task);
    }

    fn spawn(&mut self, id: String, task: impl Future<Output = Ended> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.ids.insert(handle.id(), id);
    }

    /// The next job to end; `None` when none runs.
    pub async fn next(&mut self, spool: &Spool) -> Option<Ended> {
        let ended = self.next_task(spool).await?;
        let delivered = match ended.end {
            End::Delivered | End::PartlyDelivered => Some(true),
            End::Failed => Some(false),
            End::Undelivered | End::Left | End::Held(_) => None,
        };
        self.live.end(&ended.id, delivered);
        Some(ended)
    }

    async fn next_task(&mut self, spool: &Spool) -> Option<Ended> {
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
                            release_key(&self.ledger, &ctx.rec);
                            let end = fail(&mut ctx, failure);
                            tell(self.outbox.as_ref(), &self.live, spool, &ctx.rec, &end);
                            end
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
async fn drive<B: Backend>(
    backend: Arc<B>,
    ledger: Ledger,
    outbox: Option<Outbox>,
    live: Live,
    mut ctx: JobCtx,
) -> Ended {
    // The bytes this job works from, noted before anything is sent (and compared at delivery). It
    // reaches job.json with the next step's save; a crash before that leaves the job `claimed`,
    // and the hash is taken again.
    if ctx.rec.state == State::Claimed && ctx.rec.source_sha256.is_none() {
        ctx.rec.source_sha256 = hash_source(&ctx.spool, &ctx.rec).await;
        if let Some(last) = ctx.rec.kind.last_frame() {
            ctx.rec.last_frame_sha256 = hash_file(&ctx.spool, &ctx.rec.id, last).await;
        }
    }
    // What of an identical earlier delivery this job delivers copies of.
    let mut reused = Vec::new();
    // A job that failed before a stop (or at admission) is moved to failed/, whatever the backend.
    let outcome = match ctx.rec.state {
        State::Failed => Err(Stop::Failed(ctx.rec.failure_or_default())),
        _ => make(&backend, &ledger, &mut ctx, &mut reused).await,
    };
    drop(ctx.ticket.take());
    let end = match outcome {
        Ok(()) => {
            check_source_unchanged(&ctx.spool, &mut ctx.rec).await;
            make_posters(&ctx).await;
            let videos = identify_videos(&ctx, &reused).await;
            deliver(&mut ctx, backend.name(), &ledger, &reused, &videos)
        }
        Err(Stop::Failed(f)) => {
            settle_key(&ledger, &ctx.rec, &f);
            let end = fail(&mut ctx, f);
            // A refusal holds while the refused job is in failed/: tell it where its error.txt went.
            if let (Some(key), Some(_), Some(d)) = (
                &ctx.rec.dedupe_key,
                &ctx.rec.refused_for_good,
                &ctx.rec.delivery,
            ) && matches!(end, End::Failed)
            {
                let error_file = ctx.rec.delivered(&d.folder, &d.stem).error_txt();
                if let Err(e) = ledger.refusal_kept_by(key, &ctx.rec.id, &error_file) {
                    tracing::warn!(job = %ctx.rec.id, error = %e, "cannot update the dedupe ledger");
                }
            }
            end
        }
        Err(Stop::Cancelled) => End::Left,
        Err(Stop::Held(why)) => held(&mut ctx, &ledger, why),
    };
    tell(outbox.as_ref(), &live, &ctx.spool, &ctx.rec, &end);
    Ended {
        id: ctx.rec.id.clone(),
        end,
    }
}

/// Makes the job's video: delivered again from an identical earlier job (the dedupe ledger), or
/// produced by the backend — each take of a job with variants, less the takes an earlier delivery
/// still has in `done/`. `reused`: what of an earlier delivery this job delivers copies of.
async fn make<B: Backend>(
    backend: &Arc<B>,
    ledger: &Ledger,
    ctx: &mut JobCtx,
    reused: &mut Vec<Found>,
) -> Result<(), Stop> {
    if ctx.rec.state == State::Claimed && ctx.rec.delivery.is_none() && !ctx.rec.spec.fresh {
        match reuse(ledger, backend.name(), ctx).await? {
            Earlier::All(found) => {
                *reused = found;
                return Ok(());
            }
            Earlier::Some(found) => {
                place_takes(ledger, ctx, &found).await?;
                *reused = found;
            }
            Earlier::None => {}
        }
    }
    if ctx.rec.spec.takes() > 1 {
        return crate::run::variants::make(backend, ctx).await;
    }
    backend.produce(ctx).await
}

/// Gives the failed job's ledger key up, so the next identical job is made — or, when Runway
/// refused it for good, remembers that, so the next identical job is not sent.
fn settle_key(ledger: &Ledger, rec: &JobRecord, failure: &Failure) {
    let Some(key) = &rec.dedupe_key else {
        return;
    };
    let settled = match &rec.refused_for_good {
        Some(_) => ledger.record_refused(key, &rec.id, failure),
        None => ledger.release(key, &rec.id),
    };
    if let Err(e) = settled {
        tracing::warn!(job = %rec.id, error = %e, "cannot update the dedupe ledger");
    }
}

/// A job the budget holds and that does not wait for it: back into `inbox/` when nothing was ever
/// sent for it (what waits for the budget waits there), else left in `processing/`, where the next
/// run resumes it with its record.
fn held(ctx: &mut JobCtx, ledger: &Ledger, why: String) -> End {
    let rec = &mut ctx.rec;
    if !rec.never_sent() {
        tracing::info!(job = %rec.id, file = %rec.source.name, "held by the budget; it was sent before, so it waits in processing/ for the next run: {why}");
        return End::Held(why);
    }
    match crate::run::admit::unclaim(&ctx.spool, ledger, rec) {
        Ok(files) => {
            tracing::info!(job = %rec.id, file = %rec.source.name, back = %files.join(", "), "held by the budget: back in inbox/, nothing was sent");
        }
        Err(e) => {
            tracing::warn!(job = %rec.id, file = %rec.source.name, error = %e, "held by the budget, but cannot go back into inbox/: it waits in processing/ for the next run");
        }
    }
    End::Held(why)
}

/// Gives the failed job's ledger key up, so the next identical job is made.
fn release_key(ledger: &Ledger, rec: &JobRecord) {
    if let Some(key) = &rec.dedupe_key
        && let Err(e) = ledger.release(key, &rec.id)
    {
        tracing::warn!(job = %rec.id, error = %e, "cannot update the dedupe ledger");
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

/// A panic's payload as text.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests;
