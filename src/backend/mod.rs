//! "Turn this job into an MP4", in resumable steps, and what the steps share: the [`slots`] that
//! bound concurrency, the [`gate`] that pauses submission on a systemic fault, retry delays.
//!
//! Implementations: [`runway`] (the Runway API) and [`local`]
//! (the local motion renderer). A backend reads and advances the job's persisted state
//! (`job.json`), so a stop at any step resumes at that step.

mod gate;
pub mod local;
pub mod runway;
#[cfg(test)]
pub mod scripted;
mod slots;

pub use gate::{Gate, Hold, HoldCause, OUTAGE_STREAK, Passage, Service};
pub use slots::{SlotGuard, Slots, Ticket};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{BackendChoice, Settings};
use crate::studio::spool::{Failure, JobRecord, Spool};

/// How a backend's work on one job ended, short of success.
#[derive(Debug)]
pub enum Stop {
    /// The job ends in `failed/` for this reason.
    Failed(Failure),
    /// Shutdown (or a lost lease): the state is persisted; the next start resumes.
    Cancelled,
    /// The budget holds this job and it does not wait (a `run`; or a model with no known price,
    /// which waits in `inbox/`): nothing was sent for it since the state persisted. Says why.
    Held(String),
}

/// What went wrong in a step, sorted by its consequence. Every backend sorts its errors into these,
/// and [`JobCtx::on_fault`] applies the one policy: a job's own fault fails it, a passing fault is
/// retried within the budget, a systemic fault holds every job at the gate and spends nothing, and
/// a disk that refuses a write makes the job wait.
#[derive(Debug)]
pub enum Fault {
    /// This job's own problem (its input, or a refusal of its request): it goes to `failed/`.
    Job(Failure),
    /// A passing fault (a lost answer, one server error): retried, spending the retry budget.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The service or the account is at fault (key, quota, outage, unreachable): submission pauses
    /// for every job; nothing is spent. What a `run` does about a refused key is the pipeline's
    /// decision (it watches the gate).
    Systemic {
        cause: HoldCause,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The disk refused a write (full, read-only, permissions): nobody's input error. The job waits
    /// and tries again, with one log line when it starts waiting; nothing is spent.
    Disk(std::io::Error),
}

/// How long transient faults and disk waits back off, and how many transient faults a job may
/// spend (`runway.retries`, `retry_min`, `retry_max`; the same for every backend).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub min: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &Settings) -> RetryPolicy {
        let r = &settings.config.runway;
        RetryPolicy {
            retries: r.retries,
            min: r.retry_min,
            max: r.retry_max,
        }
    }
}

/// Everything a backend needs to drive one job.
pub struct JobCtx {
    pub spool: Spool,
    pub rec: JobRecord,
    pub cancel: CancellationToken,
    /// The job's place in the queue for a slot, taken when it was claimed.
    pub ticket: Option<Ticket>,
    pub retry: RetryPolicy,
    /// Whether a hold for the budget is waited out (`watch`), or ends the job's work for now
    /// ([`Stop::Held`]: a `run` delivers what was made and leaves the rest for the next run).
    pub waits_for_budget: bool,
    /// Disk faults in a row (drives the disk wait; reset by a good write).
    disk_faults: u32,
    /// When the record was last written (see [`JobCtx::note`]).
    last_write: Option<tokio::time::Instant>,
    /// The live view each step is shown in, if any.
    live: Option<crate::observe::live::Live>,
}

/// The shortest gap between two writes of a change that only shows how a job is doing (Runway's
/// status and progress): a backlog of short tasks is not slowed by writes nobody reads in time.
pub const SHOW_GAP: Duration = Duration::from_secs(2);

impl JobCtx {
    pub fn new(
        spool: Spool,
        rec: JobRecord,
        cancel: CancellationToken,
        ticket: Option<Ticket>,
        retry: RetryPolicy,
    ) -> JobCtx {
        JobCtx {
            spool,
            rec,
            cancel,
            ticket,
            retry,
            waits_for_budget: true,
            disk_faults: 0,
            last_write: None,
            live: None,
        }
    }

    /// Shows each step of the job in `live`.
    pub fn shown_in(mut self, live: crate::observe::live::Live) -> JobCtx {
        live.update(&self.rec);
        self.live = Some(live);
        self
    }

    /// Shows the job at `step`, a step its record does not tell (a render running).
    pub fn show_step(&self, step: &str) {
        if let Some(live) = &self.live {
            live.set_step(&self.rec.id, step);
        }
    }

    fn show(&self) {
        if let Some(live) = &self.live {
            live.update(&self.rec);
        }
    }

    /// Persists the job's state before the step that depends on it. A disk that refuses the write
    /// makes the job wait (see [`Fault::Disk`]); only a stop ends the wait.
    pub async fn save(&mut self) -> Result<(), Stop> {
        self.show();
        loop {
            match self.spool.save(&self.rec) {
                Ok(()) => {
                    self.disk_faults = 0;
                    self.last_write = Some(tokio::time::Instant::now());
                    return Ok(());
                }
                Err(e) => {
                    let wait = self.on_fault(Fault::Disk(e), "saving the job's state", None)?;
                    self.pause(wait).await?;
                }
            }
        }
    }

    /// Records a change that no later step depends on (Runway's status and progress, a task that
    /// succeeded but whose video is not downloaded yet): written for `status` to show, unless the
    /// record was written less than [`SHOW_GAP`] ago. A stop before the next write resumes from
    /// the last state written, which is always one the job can go on from (a submitted task is
    /// polled again).
    pub async fn note(&mut self) -> Result<(), Stop> {
        self.show();
        match self.last_write {
            Some(at) if at.elapsed() < SHOW_GAP => Ok(()),
            _ => self.save().await,
        }
    }

    /// Runs `step` (an I/O action on the job's files) until the disk takes it, waiting on disk
    /// faults like [`JobCtx::save`].
    pub async fn on_disk<T>(
        &mut self,
        what: &str,
        mut step: impl FnMut(&Self) -> std::io::Result<T>,
    ) -> Result<T, Stop> {
        loop {
            match step(self) {
                Ok(v) => {
                    self.disk_faults = 0;
                    return Ok(v);
                }
                Err(e) => {
                    let wait = self.on_fault(Fault::Disk(e), what, None)?;
                    self.pause(wait).await?;
                }
            }
        }
    }

    /// The one policy for a fault met while `step`: the wait before trying again, or the stop.
    pub fn on_fault(
        &mut self,
        fault: Fault,
        step: &str,
        gate: Option<&Gate>,
    ) -> Result<Duration, Stop> {
        match fault {
            Fault::Job(f) => Err(Stop::Failed(f)),
            Fault::Transient { error, retry_after } => {
                self.rec.transient_faults += 1;
                crate::observe::metrics::get().retried();
                let n = self.rec.transient_faults;
                if n > self.retry.retries {
                    return Err(Stop::Failed(Failure {
                        message: format!("{step} kept failing: {error}"),
                        advice: format!(
                            "dropreel retried {} times, then gave up. The API may be having trouble: move the image \
                             back into inbox/ to try again later",
                            self.retry.retries
                        ),
                        api: Some(error),
                    }));
                }
                let d = backoff(n - 1, self.retry.min, self.retry.max);
                let d = retry_after.map_or(d, |ra| ra.max(d));
                tracing::info!(job = %self.rec.id, file = %self.rec.source.name, error = %error, retry = n, delay = ?d, "{step} failed; retrying");
                Ok(d)
            }
            Fault::Systemic {
                cause,
                detail,
                retry_after,
            } => {
                if let Some(gate) = gate {
                    gate.trip(cause, &detail, retry_after);
                }
                Ok(Duration::ZERO)
            }
            Fault::Disk(e) => {
                self.disk_faults += 1;
                let d = backoff(self.disk_faults.min(12), self.retry.min, self.retry.max);
                if self.disk_faults == 1 {
                    tracing::error!(job = %self.rec.id, file = %self.rec.source.name, error = %e, next_try = ?d,
                        "cannot write into processing/ while {step} (disk full or not writable?); the job waits and retries");
                } else {
                    tracing::debug!(job = %self.rec.id, error = %e, ?d, "still cannot write while {step}");
                }
                Ok(d)
            }
        }
    }

    /// Waits `d` unless the job is stopped first.
    pub async fn pause(&self, d: Duration) -> Result<(), Stop> {
        if d.is_zero() {
            return if self.cancel.is_cancelled() {
                Err(Stop::Cancelled)
            } else {
                Ok(())
            };
        }
        if sleep_or_cancel(d, &self.cancel).await {
            Ok(())
        } else {
            Err(Stop::Cancelled)
        }
    }
}

/// What a backend takes, checked before a job is claimed: its input limits and the catalog its
/// jobs are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub catalog: crate::job::models::Catalog,
    /// The largest source file sent as it is; `None` when any size is fine.
    pub max_bytes: Option<u64>,
    /// The largest image, in pixels, that is decoded (a guard against decompression bombs).
    pub max_pixels: u64,
}

/// One way of turning images into video.
pub trait Backend: Send + Sync + 'static {
    /// `runway` or `local`, as written in `result.json`.
    fn name(&self) -> &'static str;
    /// Drives the job from its current state until its MP4 is in the job folder
    /// ([`JobRecord::output_file`], state `Downloaded`).
    fn produce(&self, job: &mut JobCtx) -> impl Future<Output = Result<(), Stop>> + Send;
    /// How many jobs may hold a slot at once.
    fn slots(&self) -> &Arc<Slots>;
    /// The systemic-fault gate, for backends that talk to a service.
    fn gate(&self) -> Option<&Gate>;
    /// What the backend takes as a source.
    fn limits(&self) -> Limits;
    /// Why the service holds `model`'s jobs for now (Runway: the organisation's daily limit is
    /// used up), if it does: its files are not claimed meanwhile, and other models' go on.
    fn holds(&self, _model: &str) -> Option<String> {
        None
    }
}

/// Exponential backoff with up to +50 % jitter: `min × 2^n`, capped at `max` before jitter.
pub fn backoff(n: u32, min: Duration, max: Duration) -> Duration {
    let base = min.saturating_mul(1u32 << n.min(20)).min(max);
    base.mul_f64(1.0 + fastrand::f64() * 0.5)
}

/// Sleeps `d` unless cancelled first; `false` when cancelled.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = cancel.cancelled() => false,
    }
}

/// The backend this run uses, chosen from the settings: the one type the pipeline and `main` start,
/// whatever the backend.
#[derive(Debug)]
pub enum Chosen {
    Runway(Box<runway::Runway>),
    Local(local::Local),
}

impl Chosen {
    /// The configured backend: Runway with a key, else the local renderer (saying so once when
    /// Runway was asked for but no key is set).
    pub fn build(settings: &Settings) -> anyhow::Result<Chosen> {
        let choice = settings.backend();
        Ok(match choice {
            BackendChoice::Runway => Chosen::Runway(Box::new(runway::Runway::new(settings)?)),
            BackendChoice::Local | BackendChoice::Auto => {
                if choice != settings.config.backend {
                    tracing::warn!(
                        "No Runway API key is set (RUNWAYML_API_SECRET): using the LOCAL motion renderer, which animates \
                         each image with a camera move, without AI. Set the key to generate with Runway."
                    );
                }
                Chosen::Local(local::Local::new(settings))
            }
        })
    }

    /// The name and limits of the backend `settings` choose, without building it (no key is
    /// needed): what `estimate` prices against.
    pub fn planned(settings: &Settings) -> (&'static str, Limits) {
        match settings.backend() {
            BackendChoice::Runway => ("runway", runway::limits(settings.models.clone())),
            BackendChoice::Local | BackendChoice::Auto => ("local", local::LIMITS),
        }
    }

    /// What the start-up line says about the backend's set-up.
    pub fn setup(&self, settings: &Settings) -> String {
        match self {
            Chosen::Runway(_) => match settings.config.runway.in_flight {
                crate::config::InFlight::Auto => format!(
                    "model {}, in flight per model as Runway allows the organisation ({} until it answers)",
                    settings.config.defaults.model, settings.config.runway.max_in_flight
                ),
                crate::config::InFlight::Fixed(n) => {
                    format!("model {}, {n} in flight", settings.config.defaults.model)
                }
            },
            Chosen::Local(_) => format!("{} fps", settings.config.local.fps),
        }
    }
}

impl Backend for Chosen {
    fn name(&self) -> &'static str {
        match self {
            Chosen::Runway(b) => b.name(),
            Chosen::Local(b) => b.name(),
        }
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        match self {
            Chosen::Runway(b) => b.produce(job).await,
            Chosen::Local(b) => b.produce(job).await,
        }
    }

    fn slots(&self) -> &Arc<Slots> {
        match self {
            Chosen::Runway(b) => b.slots(),
            Chosen::Local(b) => b.slots(),
        }
    }

    fn gate(&self) -> Option<&Gate> {
        match self {
            Chosen::Runway(b) => b.gate(),
            Chosen::Local(b) => b.gate(),
        }
    }

    fn limits(&self) -> Limits {
        match self {
            Chosen::Runway(b) => b.limits(),
            Chosen::Local(b) => b.limits(),
        }
    }

    fn holds(&self, model: &str) -> Option<String> {
        match self {
            Chosen::Runway(b) => b.holds(model),
            Chosen::Local(b) => b.holds(model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let b0 = backoff(0, min, max);
        assert!(b0 >= min && b0 <= min.mul_f64(1.5));
        let b10 = backoff(10, min, max);
        assert!(b10 >= max && b10 <= max.mul_f64(1.5));
    }
}
