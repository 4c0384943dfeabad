//! The orchestrator: the run's event loop. It resumes jobs left in `processing/`, admits ready
//! inbox files (bad input fails at once, before any slot is taken), claims them lazily — only when
//! a slot is about to free up, and not while the budget holds submission, for a model the budget
//! cannot price, or for one the service holds for now (its daily limit) — starts a task per job, follows the backend's holds, and stops gracefully (a
//! `run` the budget holds ends once nothing is in flight). What happens to one file on its way is
//! in [`crate::run::admit`] (checks and claim), [`crate::run::jobs`] (the job's task, delivery, the
//! route to `failed/`) and [`crate::run::recover`]. Here: the run state ([`Pipeline`]), its loop
//! and its stop; `take` admits and claims files, `react` handles each event.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, HoldCause, RetryPolicy};
use crate::config::Settings;
use crate::intake::{self, Inbox, Ready};
use crate::observe::live::Live;
use crate::observe::notify::{Notifier, Outbox};
use crate::run::admit::Checked;
use crate::run::follow::ConfigFile;
use crate::run::jobs::{End, Jobs};
use crate::run::recover;
use crate::studio::instance;
use crate::studio::lease::Owner;
use crate::studio::spool::{JobRecord, Spool};

mod react;
mod take;
#[cfg(test)]
mod tests;

/// Jobs claimed beyond the slots, so the next one is ready the moment a slot frees.
pub const LOOKAHEAD: usize = 1;
/// Wait before claiming again after processing/ refused a claim.
const CLAIM_RETRY: Duration = Duration::from_secs(2);
/// Ready files checked per turn of the loop.
const CHECK_BATCH: usize = 64;
/// Time the end of a run or a stop gives notifications still waiting to be delivered (the rest
/// stays in the outbox for the next start).
const NOTIFY_GRACE: Duration = Duration::from_secs(3);
/// The same for a stop by a signal (which must end within 2 s).
const NOTIFY_STOP_GRACE: Duration = Duration::from_millis(200);
/// Time a stop waits for jobs to reach a safe point.
const STOP_GRACE: Duration = Duration::from_millis(1700);
/// File-system events handled per turn of the loop.
const EVENT_BATCH: usize = 1024;
/// How often a settled image that is not whole yet is looked at again.
const RECHECK_INCOMPLETE: Duration = Duration::from_secs(2);

/// `watch` runs until stopped; `run` ends when the inbox is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Watch,
    Run,
}

/// How a run ended.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub succeeded: usize,
    pub failed: usize,
    /// Delivered jobs some of whose takes (variants) failed.
    pub partly_failed: usize,
    /// Jobs that ended but could not be moved into `done/` or `failed/` (they wait in
    /// `processing/`).
    pub undelivered: usize,
    /// Set when the API refused the key during a `run` (what it said).
    pub key_refused: Option<String>,
    /// Set when a `run` ended with work left for the budget (a hold of submission, or a model it
    /// cannot price) or for the organisation's limits at the service (its balance, a model's daily
    /// generations) and nothing else in flight: why.
    pub budget_held: Option<String>,
    /// The shutdown signal ended the pipeline before its work was done.
    pub stopped: bool,
}

impl Summary {
    /// The process's exit code (the contract's complete list): 3 the key was refused; a `run`
    /// stopped by `signal` 128 + signal; 4 the budget holds what is left (work remains, which
    /// matters more to a script than a failure it can see in `failed/`); 1 some job (or a take of one) failed or
    /// could not be delivered; else 0. A stopped `watch` exits 0.
    pub fn exit_code(&self, mode: Mode, signal: Option<i32>) -> u8 {
        if self.key_refused.is_some() {
            return 3;
        }
        if mode == Mode::Watch {
            return 0;
        }
        if self.stopped {
            return signal.map_or(130, |s| u8::try_from(128 + s).unwrap_or(130));
        }
        if self.budget_held.is_some() {
            return 4;
        }
        if self.failed > 0 || self.partly_failed > 0 || self.undelivered > 0 {
            1
        } else {
            0
        }
    }

    fn count(&mut self, end: &End) {
        match end {
            End::Delivered => self.succeeded += 1,
            End::PartlyDelivered => {
                self.succeeded += 1;
                self.partly_failed += 1;
            }
            End::Failed => self.failed += 1,
            End::Undelivered => self.undelivered += 1,
            End::Left | End::Held(_) => {}
        }
    }
}

/// Whether the loop goes on after an event.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The run state of one pipeline: what it follows, what it drives, and when it next looks.
struct Pipeline<B: Backend> {
    /// `watch` runs until stopped; `run` until the inbox is drained.
    mode: Mode,
    /// The settings in force: `defaults` and the intake's timings follow edits of dropreel.yaml.
    settings: Settings,
    /// Follows dropreel.yaml for those edits (a `run` keeps what it started with).
    config_file: ConfigFile,
    spool: Spool,
    backend: Arc<B>,
    /// The parent of every job's stop token: cancelled at a stop.
    cancel: CancellationToken,
    /// The job tasks.
    jobs: Jobs,
    /// Jobs this instance drives, each with its own stop token (a lost lease stops just that job).
    active: HashMap<String, CancellationToken>,
    /// The inbox's files, waiting to settle or ready.
    inbox: Inbox,
    /// Ready files not checked yet: a big backlog is checked in batches, so the first submit
    /// does not wait for the whole inbox.
    unchecked: VecDeque<Ready>,
    /// Checked files waiting for a claim (claimed lazily, as slots are about to free).
    checked: VecDeque<Checked>,
    /// No claim before this: processing/ refused the last one (a full disk, permissions).
    claim_pause: Option<Instant>,
    /// Claims refused in a row (the first one is logged).
    claim_faults: u32,
    /// The next full look at inbox/ and processing/ (`watch` only).
    next_rescan: Instant,
    /// The next renewal of this instance's leases.
    next_renew: Instant,
    /// This instance's status file, read by `dropreel status`.
    status: instance::Writer,
    /// What the run did so far.
    summary: Summary,
    /// Why the budget (or the organisation's limits) kept a job (or a file) of this run from
    /// being sent, if it did: a `run` then exits 4.
    held_by_budget: Option<String>,
    /// Files waiting in inbox/ for a price (a model the budget cannot price), said once each.
    told_unpriced: HashSet<String>,
    /// Where holds and their end are told (`notify:`), if anyone listens.
    outbox: Option<Outbox>,
    /// The hold last told (so a hold is told once, and its end once).
    told_hold: Option<HoldCause>,
    /// What the live views show.
    live: Live,
    /// The inbox's list of files not whole as last shown ([`Inbox::not_whole_version`]).
    not_whole_shown: u64,
}

/// Runs the pipeline on `settings.root` with `backend` until the inbox is drained (`Run`) or
/// `shutdown` completes.
pub async fn run<B: Backend>(
    settings: &Settings,
    backend: B,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    run_shown(settings, backend, mode, shutdown, Live::default()).await
}

/// [`run`], showing what goes on in `live` (the terminal's progress lines read it).
pub async fn run_shown<B: Backend>(
    settings: &Settings,
    backend: B,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
    live: Live,
) -> anyhow::Result<Summary> {
    let spool = Spool::open_as(&settings.root, Owner::new(settings.config.watch.lease))?;
    spool.check_one_file_system()?;
    let (fs_tx, mut fs_rx) = mpsc::unbounded_channel::<std::ffi::OsString>();
    let _watcher = match mode {
        Mode::Watch => Some(intake::watch(
            &spool.inbox(),
            settings.config.watch.poll,
            fs_tx,
        )?),
        Mode::Run => {
            drop(fs_tx);
            None
        }
    };
    let notifier = Notifier::start(&settings.root, &settings.config.notify)?;
    let outbox = notifier.as_ref().map(Notifier::outbox);
    let mut p = Pipeline::start(settings, backend, spool, mode, outbox, live.clone())?;
    let slots = p.backend.slots().clone();
    let mut holds: Option<watch::Receiver<Option<HoldCause>>> = p.backend.gate().map(|g| g.watch());
    // A job resumed at start may have tripped the gate before this subscription: look once anyway.
    if let Some(h) = holds.as_mut() {
        h.mark_changed();
    }
    tokio::pin!(shutdown);

    loop {
        p.check_ready();
        p.claim_ready();
        live.set_waiting(p.checked.len() + p.unchecked.len(), || p.waiting_names());
        if p.drained() {
            p.end_run();
            break;
        }
        let wake = p.next_wake();
        let hold_changed = async {
            match holds.as_mut() {
                Some(h) => h.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let flow = tokio::select! {
            () = &mut shutdown => {
                tracing::info!("stopping: no new files are taken; jobs in flight keep their state for the next start");
                p.summary.stopped = true;
                Flow::Stop
            }
            Some(ended) = p.jobs.next(&p.spool) => p.on_job_end(ended),
            Some(name) = fs_rx.recv() => p.on_fs_event(name, &mut fs_rx),
            true = hold_changed => p.on_hold_change(),
            () = slots.changed.notified() => Flow::Continue,
            // More of the backlog to check: go round again at once, after other events.
            () = std::future::ready(()), if !p.unchecked.is_empty() => Flow::Continue,
            () = tokio::time::sleep_until(wake) => p.on_tick(),
        };
        if flow == Flow::Stop {
            break;
        }
    }
    let summary = p.stop().await;
    if let Some(n) = notifier {
        // A stopped `watch` keeps its promise to stop within 2 s; the outbox waits for the next start.
        let grace = match mode {
            Mode::Run if !summary.stopped => NOTIFY_GRACE,
            _ => NOTIFY_STOP_GRACE,
        };
        n.finish(grace).await;
    }
    Ok(summary)
}

impl<B: Backend> Pipeline<B> {
    /// The run state at start, with the jobs left in processing/ resumed.
    fn start(
        settings: &Settings,
        backend: B,
        spool: Spool,
        mode: Mode,
        outbox: Option<Outbox>,
        live: Live,
    ) -> anyhow::Result<Self> {
        let cfg = &settings.config;
        let inbox = Inbox::new(&spool.inbox(), cfg.watch.settle, cfg.watch.sidecar_wait);
        let mode_name = match mode {
            Mode::Watch => "watch",
            Mode::Run => "run",
        };
        let status = instance::Writer::new(&spool, mode_name, backend.name());
        let now = Instant::now();
        let jobs = Jobs::new(
            RetryPolicy::from_settings(settings),
            crate::studio::ledger::dedupe::Ledger::new(&settings.root),
            outbox.clone(),
            live.clone(),
        );
        let mut p = Pipeline {
            mode,
            config_file: ConfigFile::new(settings, mode == Mode::Watch),
            jobs: match mode {
                Mode::Watch => jobs,
                Mode::Run => jobs.not_waiting_for_budget(),
            },
            live,
            backend: Arc::new(backend),
            cancel: CancellationToken::new(),
            active: HashMap::new(),
            inbox,
            unchecked: VecDeque::new(),
            checked: VecDeque::new(),
            claim_pause: None,
            claim_faults: 0,
            next_rescan: now + cfg.watch.rescan,
            next_renew: now + cfg.watch.lease / 4,
            status,
            summary: Summary::default(),
            held_by_budget: None,
            told_unpriced: HashSet::new(),
            outbox,
            told_hold: None,
            not_whole_shown: 0,
            settings: settings.clone(),
            spool,
        };
        // Resumed first: a job a crash left half way back to inbox/ is put back there, then seen.
        p.resume();
        p.inbox.scan(p.spool.fs_now())?;
        p.write_status();
        Ok(p)
    }

    /// Starts the jobs left in processing/ by a stop, a crash or a dead instance.
    fn resume(&mut self) {
        let limits = self.backend.limits();
        let name = self.backend.name();
        for rec in recover::resume(&self.spool, &self.settings, name, &limits, &self.active) {
            self.start_job(rec, None);
        }
    }

    fn start_job(&mut self, rec: JobRecord, ticket: Option<crate::backend::Ticket>) {
        let token = self.cancel.child_token();
        self.active.insert(rec.id.clone(), token.clone());
        self.jobs
            .start(&self.backend, &self.spool, rec, ticket, token);
    }

    /// Stop: every job persists its state at each step; give them a moment to reach one.
    async fn stop(mut self) -> Summary {
        self.cancel.cancel();
        let deadline = Instant::now() + STOP_GRACE;
        while !self.active.is_empty() {
            match tokio::time::timeout_at(deadline, self.jobs.next(&self.spool)).await {
                Ok(Some(ended)) => {
                    self.on_job_end(ended);
                }
                _ => break,
            }
        }
        for id in self.active.keys() {
            self.spool.release(id);
        }
        // Jobs still finishing a step are stopped here; their state is on disk.
        self.jobs.abort_all();
        self.status.remove();
        self.summary
    }
}
