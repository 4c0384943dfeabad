//! The orchestrator: the run's event loop. It resumes jobs left in `processing/`, admits ready
//! inbox files (bad input fails at once, before any slot is taken), claims them lazily — only when
//! a slot is about to free up, and not while the budget holds submission or for a model the budget
//! cannot price — starts a task per job, follows the backend's holds, and stops gracefully (a
//! `run` the budget holds ends once nothing is in flight). What happens to one file on its way is
//! in [`crate::run::admit`] (checks and claim), [`crate::run::jobs`] (the job's task, delivery, the route to
//! `failed/`) and [`crate::run::recover`].

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
use crate::observe::events::Event;
use crate::observe::live::Live;
use crate::observe::notify::{Notifier, Outbox};
use crate::run::admit::{self, Checked, NotYet};
use crate::run::follow::ConfigFile;
use crate::run::jobs::{End, Ended, Jobs};
use crate::run::recover;
use crate::studio::instance;
use crate::studio::lease::{Owner, Renewal};
use crate::studio::spool::{JobRecord, Spool};

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
    /// cannot price) and nothing else in flight: why.
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
    /// Why the budget kept a job (or a file) of this run from being sent, if it did: a `run`
    /// then exits 4.
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
        for rec in recover::resume(&self.spool, &self.settings, name, limits, &self.active) {
            self.start_job(rec, None);
        }
    }

    fn start_job(&mut self, rec: JobRecord, ticket: Option<crate::backend::Ticket>) {
        let token = self.cancel.child_token();
        self.active.insert(rec.id.clone(), token.clone());
        self.jobs
            .start(&self.backend, &self.spool, rec, ticket, token);
    }

    /// Admits a batch of ready files: the checks that need no slot. Good ones queue for a claim,
    /// bad ones become jobs failed from the start, ones not whole wait in inbox/ (said once, and
    /// shown in `status` and the dashboard) until whole, or until they stayed unchanged for
    /// `watch.truncated_after` counted from their mtime.
    fn check_ready(&mut self) {
        self.unchecked.extend(self.inbox.take_ready());
        let limits = self.backend.limits();
        let truncated_after = self.settings.config.watch.truncated_after;
        // The file system's clock, read once a batch and only for a file found not whole.
        let mut fs_now: Option<Option<std::time::SystemTime>> = None;
        for _ in 0..CHECK_BATCH {
            let Some(ready) = self.unchecked.pop_front() else {
                break;
            };
            let verdict = match admit::check(&self.spool, &self.settings, limits, &ready) {
                Err(NotYet::Wait(why)) => {
                    let unchanged = self.inbox.unchanged_for(&ready, || {
                        *fs_now.get_or_insert_with(|| self.spool.fs_now())
                    });
                    if unchanged >= truncated_after {
                        Err(NotYet::Fail(admit::truncated(&ready, &why, unchanged)))
                    } else {
                        self.wait_whole(&ready, &why, unchanged, truncated_after);
                        continue;
                    }
                }
                v => v,
            };
            match verdict {
                Ok(c) => self.checked.push_back(c),
                Err(NotYet::Wait(_)) => {}
                Err(NotYet::Fail(failure)) => {
                    let name = self.backend.name();
                    if let Some(rec) = admit::claim_to_fail(&self.spool, &ready, failure, name) {
                        self.start_job(rec, None);
                    }
                    forget(&mut self.inbox, &ready);
                }
            }
        }
        if self.inbox.not_whole_version() != self.not_whole_shown {
            self.show_not_whole();
        }
    }

    /// Puts a file that is not whole back into the inbox to be looked at again soon; the first
    /// time, says which, why, and when it is given up.
    fn wait_whole(&mut self, ready: &Ready, why: &str, unchanged: Duration, after: Duration) {
        let rel = ready.source.rel();
        let settle = self.settings.config.watch.settle;
        let again = RECHECK_INCOMPLETE.min(settle.max(Duration::from_millis(100)));
        if self
            .inbox
            .wait_whole(&rel, why, unchanged, Instant::now() + again)
        {
            let at = std::time::SystemTime::now() + after.saturating_sub(unchanged);
            let gives_up_at = crate::studio::ledger::spend::local_text(at);
            tracing::warn!(
                file = %rel, why, gives_up_at,
                "not whole yet: {why}. It waits in inbox/ for the rest of it; if it stays unchanged until {gives_up_at} (watch.truncated_after: {} after its last change) it goes to failed/ as truncated",
                humantime::format_duration(after)
            );
        } else {
            tracing::debug!(file = %rel, why, "still not whole; waiting for the rest of it");
        }
    }

    /// Shows the files that are not whole in `status` and the dashboard, with when each is given
    /// up.
    fn show_not_whole(&mut self) {
        self.not_whole_shown = self.inbox.not_whole_version();
        let after = self.settings.config.watch.truncated_after;
        let now = std::time::SystemTime::now();
        let files: Vec<(intake::NotWholeFile, std::time::SystemTime)> = self
            .inbox
            .not_whole()
            .into_iter()
            .map(|f| {
                let at = now + after.saturating_sub(f.unchanged_for);
                (f, at)
            })
            .collect();
        self.live.set_not_whole(
            files
                .iter()
                .map(|(f, at)| crate::observe::live::NotWholeView {
                    file: f.name.clone(),
                    why: f.why.clone(),
                    gives_up_at: crate::studio::ledger::spend::local_text(*at),
                })
                .collect(),
        );
        self.status.set_not_whole(
            files
                .iter()
                .map(|(f, at)| instance::NotWholeShown {
                    file: f.name.clone(),
                    why: f.why.clone(),
                    gives_up_at: humantime::format_rfc3339_seconds(*at).to_string(),
                })
                .collect(),
        );
        self.write_status();
    }

    /// Claims checked files while the backend's slots (plus a small lookahead) have room. While
    /// the budget holds submission nothing is claimed (what waits for it waits in inbox/), and a
    /// file whose model the budget cannot price waits there on its own.
    fn claim_ready(&mut self) {
        if self.claim_pause.is_some_and(|t| Instant::now() >= t) {
            self.claim_pause = None;
        }
        if self.budget_blocks_claims() {
            return;
        }
        let slots = self.backend.slots().clone();
        while self.claim_pause.is_none() && slots.demand() < slots.max() + LOOKAHEAD {
            let Some(c) = self.checked.pop_front() else {
                break;
            };
            if !self.inbox.unchanged(&c.ready) {
                self.inbox.release(&c.ready.source.rel());
                continue;
            }
            if self.waits_for_a_price(&c) {
                continue;
            }
            let share = self.inbox.shares_sidecar(&c.ready.source.rel());
            match admit::claim(&self.spool, &c, share, self.backend.name()) {
                Ok(Some(rec)) => {
                    self.claim_faults = 0;
                    forget(&mut self.inbox, &c.ready);
                    self.start_job(rec, Some(slots.ticket()));
                }
                Ok(None) => forget(&mut self.inbox, &c.ready),
                Err(e) => {
                    // processing/ refuses the move (permissions, a full disk): the file waits in
                    // inbox/ and the claim is tried again in a moment, not in a tight loop.
                    self.claim_faults += 1;
                    if self.claim_faults == 1 {
                        tracing::error!(file = %c.ready.source.rel(), error = %e, "cannot move the file into processing/ (disk full or not writable?); files wait in inbox/ and are tried again every 2 s");
                    } else {
                        tracing::debug!(file = %c.ready.source.rel(), error = %e, "still cannot move the file into processing/");
                    }
                    self.checked.push_front(c);
                    self.claim_pause = Some(Instant::now() + CLAIM_RETRY);
                }
            }
        }
    }

    /// Whether the budget holds submission until a time not come yet: nothing is claimed before
    /// it (a `watch` claims again then, and the first job sent is the probe).
    fn budget_blocks_claims(&self) -> bool {
        self.backend
            .gate()
            .and_then(|g| g.budget_until())
            .is_some_and(|until| Instant::now() < until)
    }

    /// A checked file whose model the budget cannot price: not claimed — it waits in inbox/ on its
    /// own (said once), and the others go on. `true` when it was kept back.
    fn waits_for_a_price(&mut self, c: &Checked) -> bool {
        if self.backend.limits().catalog.renders_locally() {
            return false;
        }
        let budget = &self.settings.config.budget;
        let Some(refusal) = crate::studio::ledger::spend::unpriced(&c.admitted.spec, budget) else {
            return false;
        };
        let rel = c.ready.source.rel();
        let why = refusal.detail();
        if self.told_unpriced.insert(rel.clone()) {
            tracing::warn!(file = %rel, "waits in inbox/ while the other files go on: {why}");
        }
        // Looked at again by the next rescan (`watch`); a restart with the rate claims it.
        forget(&mut self.inbox, &c.ready);
        self.held_by_budget.get_or_insert(why);
        true
    }

    /// A `run` is done when nothing runs and nothing waits or is left to look at — or nothing runs
    /// and the budget holds submission (what is left waits for the next run).
    fn drained(&self) -> bool {
        self.mode == Mode::Run
            && self.active.is_empty()
            && ((self.checked.is_empty() && self.unchecked.is_empty() && self.inbox.waiting() == 0)
                || self.budget_blocks_claims())
    }

    /// Why the budget kept work of this run from being sent, if it did: its hold in force, or a
    /// job or file it held.
    fn held_by_budget(&self) -> Option<String> {
        let hold = self.backend.gate().and_then(|g| g.current());
        hold.filter(|h| h.cause == HoldCause::Budget)
            .map(|h| h.detail)
            .or_else(|| self.held_by_budget.clone())
    }

    /// A drained `run` that left work to the budget says so once, and exits 4.
    fn end_run(&mut self) {
        if self.mode != Mode::Run {
            return;
        }
        let Some(why) = self.held_by_budget() else {
            return;
        };
        tracing::warn!(
            "the budget holds submission and nothing else is in flight: {why}. What is left waits in inbox/ for the next run"
        );
        self.summary.budget_held = Some(why);
    }

    /// When the loop must look again with no event: the next settle deadline, lease renewal,
    /// config look, rescan or claim retry.
    fn next_wake(&self) -> Instant {
        let mut wake = self.next_renew.min(self.config_file.next_look);
        if let Some(t) = self.inbox.next_deadline() {
            wake = wake.min(t);
        }
        if self.mode == Mode::Watch {
            wake = wake.min(self.next_rescan);
        }
        if let Some(t) = self.claim_pause {
            wake = wake.min(t);
        }
        // Claims go on when a hold for the budget lets its probe through.
        if let Some(t) = self.backend.gate().and_then(|g| g.budget_until())
            && t > Instant::now()
        {
            wake = wake.min(t);
        }
        wake
    }

    /// A job task ended.
    fn on_job_end(&mut self, Ended { id, end }: Ended) -> Flow {
        self.active.remove(&id);
        // A job left in processing/ is free for the next look (this instance's rescan, another
        // instance, or the next start).
        self.spool.release(&id);
        self.summary.count(&end);
        if let End::Held(why) = end {
            self.held_by_budget.get_or_insert(why);
        }
        Flow::Continue
    }

    /// A file-system event in inbox/, with the others already waiting (a busy folder sends them
    /// by the thousand: each turn of the loop takes all that are there, up to a batch).
    fn on_fs_event(
        &mut self,
        name: std::ffi::OsString,
        more: &mut mpsc::UnboundedReceiver<std::ffi::OsString>,
    ) -> Flow {
        let mut next = Some(name);
        let mut taken = 0;
        while let Some(name) = next.take() {
            tracing::trace!(file = %name.to_string_lossy(), "file-system event");
            match name.into_string() {
                Ok(name) => self.inbox.observe(&name),
                Err(raw) => self.inbox.report_unreadable_name(&raw),
            }
            taken += 1;
            if taken < EVENT_BATCH {
                next = more.try_recv().ok();
            }
        }
        Flow::Continue
    }

    /// A hold started, changed cause or lifted. It shows in `status` at once; a refused key ends
    /// a `run` (every job stays where it is; exit 3), while `watch` waits for a fixed key.
    fn on_hold_change(&mut self) -> Flow {
        self.write_status();
        let hold = self.backend.gate().and_then(|g| g.current());
        self.tell_hold(hold.as_ref());
        if let Some(h) = &hold
            && h.cause == HoldCause::Key
            && self.mode == Mode::Run
        {
            let why = format!("{} ({})", h.describe(), h.detail);
            tracing::error!("{why}. Every job stays where it is; fix the key and run again");
            self.summary.key_refused = Some(why);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// The names of the first files waiting for a claim, for the dashboard.
    fn waiting_names(&self) -> Vec<String> {
        let checked = self.checked.iter().map(|c| &c.ready);
        checked
            .chain(self.unchecked.iter())
            .take(crate::observe::live::WAITING_NAMES)
            .map(|r| r.source.rel())
            .collect()
    }

    /// Shows the hold in force, and tells the outbox that a hold began (or changed cause) or
    /// lifted.
    fn tell_hold(&mut self, hold: Option<&crate::backend::Hold>) {
        self.live.set_hold(hold.map(hold_view));
        let now = hold.map(|h| h.cause);
        if now == self.told_hold {
            return;
        }
        if let Some(h) = hold {
            crate::observe::metrics::get().hold(h.cause.name());
        }
        if let Some(outbox) = &self.outbox {
            let event = match (hold, self.told_hold) {
                (Some(h), _) => {
                    Event::hold(h.cause.name(), &format!("{} ({})", h.describe(), h.detail))
                }
                (None, Some(was)) => Event::resumed(was.name()),
                (None, None) => return,
            };
            outbox.emit(&event);
        }
        self.told_hold = now;
    }

    /// Time-driven work: config edits, lease renewal, the periodic rescan.
    fn on_tick(&mut self) -> Flow {
        let now = Instant::now();
        if now >= self.config_file.next_look
            && let Some(new) = self.config_file.look(&self.settings)
        {
            let w = &new.config.watch;
            self.inbox.set_timing(w.settle, w.sidecar_wait);
            self.settings = new;
            self.status.settings_changed(self.config_file.version, None);
            self.write_status();
        } else if self.config_file.error_changed {
            self.config_file.error_changed = false;
            let error = self.config_file.error.clone();
            self.status
                .settings_changed(self.config_file.version, error);
            self.write_status();
        }
        if now >= self.next_renew {
            self.next_renew = now + self.settings.config.watch.lease / 4;
            renew_leases(&self.spool, &self.active);
            self.write_status();
        }
        if self.mode == Mode::Watch && now >= self.next_rescan {
            self.next_rescan = now + self.settings.config.watch.rescan;
            if let Err(e) = self.inbox.scan(self.spool.fs_now()) {
                tracing::warn!(error = %e, "cannot read inbox/; trying again at the next rescan");
            }
            // Jobs left by an instance that died (its lease expired) continue here.
            self.resume();
        }
        Flow::Continue
    }

    fn write_status(&mut self) {
        let hold = self.backend.gate().and_then(|g| g.current());
        // A hold extended (same cause, later next try) shows its new time too.
        if hold.as_ref().map(|h| h.cause) == self.told_hold {
            self.live.set_hold(hold.as_ref().map(hold_view));
        }
        self.status.write(hold.as_ref(), self.active.len());
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

/// A hold as the dashboard shows it.
fn hold_view(h: &crate::backend::Hold) -> crate::observe::live::HoldView {
    crate::observe::live::HoldView {
        cause: h.cause.name(),
        text: h.describe(),
        detail: h.detail.clone(),
        next_try: crate::studio::ledger::spend::local_text(h.until_wall),
    }
}

/// Renews this instance's lease on every job it drives; a job whose lease another instance took
/// over (this one was frozen past the lease, e.g. a laptop asleep) is stopped here at once.
fn renew_leases(spool: &Spool, active: &HashMap<String, CancellationToken>) {
    for (id, token) in active {
        match spool.renew(id) {
            Ok(Renewal::Renewed) => {}
            // It ended a moment ago; its task's end is on its way to the loop.
            Ok(Renewal::Gone) => {
                tracing::trace!(job = %id, "the job's folder is gone: it has just ended")
            }
            Ok(Renewal::Lost) => {
                tracing::warn!(job = %id, "another dropreel instance took this job over (this one did not renew its lease in time); leaving it to that instance");
                token.cancel();
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot renew the job's lease; trying again")
            }
        }
    }
}

fn forget(inbox: &mut Inbox, r: &Ready) {
    inbox.forget(&r.source.rel());
    for companion in [&r.sidecar, &r.last_frame].into_iter().flatten() {
        inbox.forget(companion);
    }
}
