//! "Turn this job into an MP4", in resumable steps, and what the steps share: the slots that bound
//! concurrency, the gate that pauses submission on a systemic fault, retry delays.
//!
//! Implementations: [`runway`] (the Runway API, polled on the clock of [`schedule`]) and [`local`]
//! (the local motion renderer). A backend reads and advances the job's persisted state
//! (`job.json`), so a stop at any step resumes at that step.

pub mod local;
pub mod runway;
pub mod schedule;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::spool::{Failure, JobRecord, Spool};

/// How a backend's work on one job ended, short of success.
#[derive(Debug)]
pub enum Stop {
    /// The job ends in `failed/` for this reason.
    Failed(Failure),
    /// Shutdown: the state is persisted; the next start resumes.
    Cancelled,
    /// The API refused the key and this is a `run`: stop everything, leave the job in place.
    KeyRefused(String),
}

/// Everything a backend needs to drive one job.
pub struct JobCtx {
    pub spool: Spool,
    pub rec: JobRecord,
    pub cancel: CancellationToken,
    /// The job's place in the queue for a slot, taken when it was claimed.
    pub ticket: Option<Ticket>,
}

impl JobCtx {
    /// Persists the job's state. A failure here is fatal for the step (the next start resumes from
    /// the last state that was written).
    pub fn save(&self) -> std::io::Result<()> {
        self.spool.save(&self.rec)
    }
}

/// One way of turning images into video.
pub trait Backend: Send + Sync + 'static {
    /// `runway` or `local`, as written in `result.json`.
    fn name(&self) -> &'static str;
    /// Drives the job from its current state until its MP4 is in the job folder
    /// ([`crate::spool::OUTPUT_FILE`], state `Downloaded`).
    fn produce(&self, job: &mut JobCtx) -> impl Future<Output = Result<(), Stop>> + Send;
    /// How many jobs may hold a slot at once.
    fn slots(&self) -> &Arc<Slots>;
    /// The systemic-fault gate, for `status` and logs.
    fn gate(&self) -> &Gate;
}

/// Bounds the jobs that occupy the backend (for Runway: tasks submitted and not finished), and counts
/// the jobs claimed and waiting for a slot, so the pipeline claims only a small lookahead.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    held: AtomicUsize,
    waiting: AtomicUsize,
    /// Signalled whenever the demand changes (a slot frees up, a waiter takes one or leaves).
    pub changed: Notify,
    freed: Notify,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            freed: Notify::new(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Jobs holding a slot plus jobs claimed and waiting for one.
    pub fn demand(&self) -> usize {
        self.held.load(Ordering::SeqCst) + self.waiting.load(Ordering::SeqCst)
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// A place in the queue for a slot: counted in [`Slots::demand`] from now on, so the pipeline
    /// sees a job the moment it claims it.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Ticket {
            slots: Some(self.clone()),
        }
    }

    /// Takes a slot even when all are held: a resumed task is already running on the server.
    pub fn take_now(self: &Arc<Self>) -> SlotGuard {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        SlotGuard {
            slots: self.clone(),
        }
    }
}

/// A job's place in the queue for a slot. Dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    slots: Option<Arc<Slots>>,
}

impl Ticket {
    /// Waits for a free slot; `None` when cancelled (the ticket is then given up).
    pub async fn acquire(mut self, cancel: &CancellationToken) -> Option<SlotGuard> {
        let slots = self.slots.clone().expect("a live ticket");
        loop {
            let freed = slots.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let cur = slots.held.load(Ordering::SeqCst);
            if cur < slots.max
                && slots
                    .held
                    .compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                self.slots = None;
                slots.changed.notify_one();
                return Some(SlotGuard {
                    slots: slots.clone(),
                });
            }
            tokio::select! {
                () = freed => {}
                () = cancel.cancelled() => return None,
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(s) = self.slots.take() {
            s.waiting.fetch_sub(1, Ordering::SeqCst);
            s.changed.notify_one();
        }
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<Slots>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.held.fetch_sub(1, Ordering::SeqCst);
        self.slots.freed.notify_one();
        self.slots.changed.notify_one();
    }
}

/// Why submission is paused for every job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCause {
    /// 401/403: the key is wrong, revoked or lacks permission.
    Key,
    /// 429: the organisation's quota or rate limit.
    Quota,
    /// The API cannot be reached.
    Unreachable,
    /// A run of server errors.
    Outage,
}

impl HoldCause {
    pub fn describe(self) -> &'static str {
        match self {
            HoldCause::Key => "the Runway API refused the API key (check RUNWAYML_API_SECRET)",
            HoldCause::Quota => "Runway's rate limit or daily quota was reached (HTTP 429)",
            HoldCause::Unreachable => {
                "the Runway API cannot be reached (network down or host unreachable)"
            }
            HoldCause::Outage => "the Runway API keeps failing with server errors",
        }
    }
}

/// A pause of all submitting.
#[derive(Debug, Clone)]
pub struct Hold {
    pub cause: HoldCause,
    pub detail: String,
    pub until: Instant,
    pub until_wall: SystemTime,
    /// Failed probes so far (drives the backoff).
    pub strikes: u32,
    /// The [`Gate::stamp`] at which this hold (or its last extension) began: only an answer to a
    /// request sent at this stamp or later says anything about the API since the fault.
    epoch: u64,
    /// One job is trying the API after `until`; the others keep waiting.
    probing: bool,
}

/// Pauses submission for every job while a systemic fault lasts. After the pause, one job probes;
/// its success lifts the hold, its failure extends it with a longer backoff. Logs once per hold.
///
/// Requests carry the gate's *stamp* from when they were sent. An answer to a request sent before
/// the hold began (a create that was already on the wire when another got a 429) says nothing about
/// the fault and never lifts the hold: only the probe, or any request sent after the pause began,
/// may. And nothing passes before the time the server asked for, whatever else answers.
#[derive(Debug)]
pub struct Gate {
    hold: Mutex<Option<Hold>>,
    /// Counts trips; a request's stamp is its value when the request was sent.
    epoch: AtomicU64,
    server_errors: AtomicUsize,
    changed: Notify,
    retry_min: Duration,
    retry_max: Duration,
}

/// Server errors in a row (across jobs) that make an outage systemic.
pub const OUTAGE_STREAK: usize = 3;

impl Gate {
    pub fn new(retry_min: Duration, retry_max: Duration) -> Gate {
        Gate {
            hold: Mutex::new(None),
            epoch: AtomicU64::new(0),
            server_errors: AtomicUsize::new(0),
            changed: Notify::new(),
            retry_min,
            retry_max,
        }
    }

    /// The current hold, if any.
    pub fn current(&self) -> Option<Hold> {
        self.hold.lock().expect("gate lock").clone()
    }

    /// The stamp to note when sending a request that did not go through [`Gate::pass`] (polls,
    /// downloads), for [`Gate::ok`].
    pub fn stamp(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Waits until submitting is allowed; the stamp of the request about to be sent, or `None`
    /// when cancelled.
    pub async fn pass(&self, cancel: &CancellationToken) -> Option<u64> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut guard = self.hold.lock().expect("gate lock");
                match guard.as_mut() {
                    None => return Some(self.stamp()),
                    Some(h) if !h.probing && Instant::now() >= h.until => {
                        h.probing = true;
                        return Some(h.epoch);
                    }
                    Some(h) if h.probing => None,
                    Some(h) => Some(h.until),
                }
            };
            let sleep = async {
                match wait {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = notified => {}
                () = sleep => {}
            }
        }
    }

    /// Whether a request that passed with `stamp` may still go out: no hold began since it passed.
    pub fn open_for(&self, stamp: u64) -> bool {
        self.hold
            .lock()
            .expect("gate lock")
            .as_ref()
            .is_none_or(|h| h.epoch <= stamp)
    }

    /// A request sent with `stamp` reached the API and was not refused systemically: lift the hold,
    /// if the request was sent after the hold began (see [`Gate`]).
    pub fn ok(&self, stamp: u64) {
        let mut guard = self.hold.lock().expect("gate lock");
        if guard.as_ref().is_some_and(|h| h.epoch > stamp) {
            tracing::debug!(
                stamp,
                "an answer to a request sent before the pause; the pause stays"
            );
            return;
        }
        self.server_errors.store(0, Ordering::SeqCst);
        let lifted = guard.take();
        drop(guard);
        if let Some(h) = lifted {
            tracing::info!(cause = ?h.cause, "Runway API answers again; submission resumes");
            self.changed.notify_waiters();
        }
    }

    /// A probe ended in a fault that says nothing about the API as a whole (one server error, a lost
    /// answer): let the next job try without waiting for this one.
    pub fn release_probe(&self) {
        if let Some(h) = self.hold.lock().expect("gate lock").as_mut() {
            h.probing = false;
        }
        self.changed.notify_waiters();
    }

    /// Records a server error; `true` when it completes a run that makes the outage systemic.
    pub fn server_error(&self) -> bool {
        self.server_errors.fetch_add(1, Ordering::SeqCst) + 1 >= OUTAGE_STREAK
    }

    /// Pauses submission for `cause`: until `retry_after` when the server named a time, else for a
    /// growing backoff. Logs one line for a new hold; a failed probe only extends it (debug log).
    pub fn trip(&self, cause: HoldCause, detail: &str, retry_after: Option<Duration>) {
        let mut guard = self.hold.lock().expect("gate lock");
        let strikes = guard.as_ref().map_or(0, |h| h.strikes + 1);
        let wait = retry_after.unwrap_or_else(|| backoff(strikes, self.retry_min, self.retry_max));
        let until = Instant::now() + wait;
        let new_cause = guard.as_ref().map(|h| h.cause) != Some(cause);
        // Never earlier than a time the server already asked for.
        let until = guard.as_ref().map_or(until, |h| h.until.max(until));
        let until_wall = SystemTime::now() + until.saturating_duration_since(Instant::now());
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let next = humantime::format_rfc3339_seconds(until_wall);
        if new_cause {
            tracing::warn!(
                cause = ?cause,
                detail,
                next_try = %next,
                "Submission paused for all jobs: {}. Files wait; work resumes by itself when this clears.",
                cause.describe()
            );
        } else {
            tracing::debug!(cause = ?cause, detail, next_try = %next, strikes, "still paused");
        }
        *guard = Some(Hold {
            cause,
            detail: detail.to_string(),
            until,
            until_wall,
            strikes,
            epoch,
            probing: false,
        });
        drop(guard);
        self.changed.notify_waiters();
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

/// Builds the configured backend.
pub fn build(settings: &Settings, stop_on_key_refusal: bool) -> anyhow::Result<runway::Runway> {
    runway::Runway::new(settings, stop_on_key_refusal)
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

    #[tokio::test]
    async fn slots_bound_and_count_waiters() {
        let slots = Slots::new(1);
        let cancel = CancellationToken::new();
        let t1 = slots.ticket();
        let t2 = slots.ticket();
        assert_eq!(slots.demand(), 2, "claimed jobs count before they ask");
        let g = t1.acquire(&cancel).await.unwrap();
        let second =
            tokio::time::timeout(Duration::from_millis(50), slots.ticket().acquire(&cancel)).await;
        assert!(second.is_err(), "second slot must wait");
        assert_eq!(slots.demand(), 2, "a dropped waiter is not counted");
        drop(g);
        let g2 = t2.acquire(&cancel).await.unwrap();
        assert_eq!(slots.held(), 1);
        drop(g2);
        assert_eq!(slots.demand(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn gate_holds_until_the_time_then_lets_one_probe() {
        let gate = Gate::new(Duration::from_millis(10), Duration::from_millis(100));
        let cancel = CancellationToken::new();
        gate.trip(HoldCause::Quota, "429", Some(Duration::from_secs(3)));
        let t0 = Instant::now();
        let probe = gate.pass(&cancel).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        // The probe is out: a second caller waits until it reports.
        let second = tokio::time::timeout(Duration::from_secs(30), gate.pass(&cancel)).await;
        assert!(second.is_err());
        gate.ok(probe);
        assert!(gate.current().is_none());
        assert!(gate.pass(&cancel).await.is_some());
    }

    // See: issue 9, item 1 — a create sent before a 429, answered after it, lifted the pause.
    #[tokio::test(start_paused = true)]
    async fn an_answer_to_a_request_sent_before_the_pause_does_not_lift_it() {
        let gate = Gate::new(Duration::from_millis(10), Duration::from_millis(100));
        let cancel = CancellationToken::new();
        let early = gate.pass(&cancel).await.unwrap();
        let other = gate.pass(&cancel).await.unwrap();
        gate.trip(HoldCause::Quota, "429", Some(Duration::from_secs(3)));
        // The request sent before the 429 succeeds 40 ms later: the pause stays.
        tokio::time::advance(Duration::from_millis(40)).await;
        gate.ok(early);
        assert!(gate.current().is_some(), "an old answer lifted the pause");
        assert!(
            !gate.open_for(other),
            "a job that passed before the pause must ask again"
        );
        let t0 = Instant::now();
        let probe = gate.pass(&cancel).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(2960),
            "passed before the server's time"
        );
        assert!(gate.open_for(probe));
        gate.ok(probe);
        assert!(gate.current().is_none());
    }
}
