//! The orchestrator: resumes jobs left in `processing/`, turns ready inbox files into checked jobs
//! (bad input fails at once, before any slot is taken), claims them lazily — only when a slot is about
//! to free up — drives each through the backend, delivers or fails it, and stops gracefully.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::local::render;
use crate::backend::{Backend, JobCtx, Stop};
use crate::config::Settings;
use crate::intake::{self, Inbox, Ready};
use crate::job::{self, ImageInfo, JobSpec, Sidecar};
use crate::lease::Owner;
use crate::report;
use crate::spool::{self, Failure, JobRecord, Spool, State};

/// Jobs claimed beyond the slots, so the next one is ready the moment a slot frees.
pub const LOOKAHEAD: usize = 1;
/// Wait before claiming again after processing/ refused a claim.
const CLAIM_RETRY: Duration = Duration::from_secs(2);
/// Ready files checked per turn of the loop.
const CHECK_BATCH: usize = 64;
/// Time a stop waits for jobs to reach a safe point.
const STOP_GRACE: Duration = Duration::from_millis(1700);

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
    /// Jobs that ended but could not be moved into `done/` or `failed/` (they wait in
    /// `processing/`).
    pub undelivered: usize,
    /// Set when the API refused the key during a `run`.
    pub key_refused: Option<String>,
    /// The shutdown signal ended the pipeline before its work was done.
    pub stopped: bool,
}

impl Summary {
    /// The process's exit code (the contract's complete list): 3 the key was refused; a `run`
    /// stopped by `signal` 128 + signal; 1 some job failed or could not be delivered; else 0.
    /// A stopped `watch` exits 0.
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
        if self.failed > 0 || self.undelivered > 0 {
            1
        } else {
            0
        }
    }

    fn count(&mut self, end: &End) {
        match end {
            End::Delivered => self.succeeded += 1,
            End::Failed => self.failed += 1,
            End::Undelivered => self.undelivered += 1,
            End::Left(_) => {}
        }
    }
}

enum End {
    Delivered,
    Failed,
    /// Finished, but `done/` or `failed/` refused the files: it waits in `processing/`, and is
    /// delivered at the next rescan or start.
    Undelivered,
    /// Left in `processing/` (stop, key refused, lease lost); resumed later.
    Left(Option<String>),
}

/// A job task's last word.
struct Ended {
    id: String,
    end: End,
}

/// A ready image that passed every check that needs no slot.
struct Checked {
    ready: Ready,
    info: ImageInfo,
    spec: JobSpec,
}

/// Why a ready image is not checked out.
enum NotYet {
    /// Bad input: it goes to `failed/`.
    Fail(Failure),
    /// Not whole yet (still being written): it waits in `inbox/`. Says where it stops.
    Wait(String),
}

impl From<Failure> for NotYet {
    fn from(f: Failure) -> NotYet {
        NotYet::Fail(f)
    }
}

/// How often a settled image that is not whole yet is looked at again.
const RECHECK_INCOMPLETE: Duration = Duration::from_secs(2);

/// Runs the pipeline on `settings.root` with `backend` until the inbox is drained (`Run`) or
/// `shutdown` completes.
pub async fn run<B: Backend>(
    settings: &Settings,
    backend: B,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    // The settings in force: `defaults` and the intake timings follow edits of dropreel.yaml.
    let mut settings = settings.clone();
    let mut config_file = ConfigFile::new(&settings, mode);
    let cfg = settings.config.clone();
    let spool = Spool::open_as(&settings.root, Owner::new(cfg.watch.lease))?;
    spool.check_one_file_system()?;
    let backend = Arc::new(backend);
    let cancel = CancellationToken::new();
    let mut jobs = Jobs::default();
    let mut summary = Summary::default();
    // Jobs this instance drives, each with its own stop token (a lost lease stops just that job).
    let mut active: HashMap<String, CancellationToken> = HashMap::new();
    let mode_name = match mode {
        Mode::Watch => "watch",
        Mode::Run => "run",
    };
    let mut status = crate::instance::Writer::new(&spool, mode_name, backend.name());

    for rec in resume(&spool, &settings, backend.name(), &active) {
        let token = cancel.child_token();
        active.insert(rec.id.clone(), token.clone());
        spawn_job(&mut jobs, &backend, &spool, rec, None, token);
    }

    let mut inbox = Inbox::new(&spool.inbox(), cfg.watch.settle, cfg.watch.sidecar_wait);
    let (fs_tx, mut fs_rx) = mpsc::unbounded_channel::<std::ffi::OsString>();
    let _watcher = match mode {
        Mode::Watch => Some(intake::watch(&spool.inbox(), cfg.watch.poll, fs_tx)?),
        Mode::Run => {
            drop(fs_tx);
            None
        }
    };
    inbox.scan(spool.fs_now())?;
    let mut next_rescan = Instant::now() + cfg.watch.rescan;
    let renew_every = cfg.watch.lease / 4;
    let mut next_renew = Instant::now() + renew_every;
    status.write(None, active.len());
    let mut last_hold = None;
    let mut queue: VecDeque<Checked> = VecDeque::new();
    let mut unchecked: VecDeque<Ready> = VecDeque::new();
    let mut claim_pause: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        // Checks that need no slot, then lazy claims. A big backlog is checked in batches, the
        // first ones before any other, so the first submit does not wait for the whole inbox.
        unchecked.extend(inbox.take_ready());
        let mut budget = CHECK_BATCH;
        while budget > 0 {
            let Some(ready) = unchecked.pop_front() else {
                break;
            };
            budget -= 1;
            let truncated_after = settings.config.watch.truncated_after;
            let verdict = match check(&spool, &settings, &ready) {
                Err(NotYet::Wait(why)) if ready.unchanged_for >= truncated_after => {
                    Err(NotYet::Fail(truncated(&ready, &why, truncated_after)))
                }
                v => v,
            };
            match verdict {
                Ok(c) => queue.push_back(c),
                Err(NotYet::Wait(why)) => {
                    tracing::debug!(file = %ready.image, why, "not whole yet; waiting for the rest of it");
                    inbox.defer(
                        &ready.image,
                        Instant::now()
                            + RECHECK_INCOMPLETE
                                .min(settings.config.watch.settle.max(Duration::from_millis(100))),
                    );
                }
                Err(NotYet::Fail(failure)) => {
                    if let Some(end) = fail_unclaimed(&spool, &ready, &failure, backend.name()) {
                        summary.count(&end);
                    }
                    forget(&mut inbox, &ready);
                }
            }
        }
        let slots = backend.slots();
        if claim_pause.is_some_and(|t| Instant::now() >= t) {
            claim_pause = None;
        }
        while claim_pause.is_none() && slots.demand() < slots.max() + LOOKAHEAD {
            let Some(c) = queue.pop_front() else { break };
            if !inbox.unchanged(&c.ready) {
                inbox.release(&c.ready.image);
                continue;
            }
            let share = inbox.shares_sidecar(&c.ready.image);
            match claim(&spool, &c, share, backend.name()) {
                Ok(Some(rec)) => {
                    forget(&mut inbox, &c.ready);
                    let token = cancel.child_token();
                    active.insert(rec.id.clone(), token.clone());
                    let ticket = slots.ticket();
                    spawn_job(&mut jobs, &backend, &spool, rec, Some(ticket), token);
                }
                Ok(None) => forget(&mut inbox, &c.ready),
                Err(e) => {
                    // processing/ refuses the move (permissions, a full disk): try again in a
                    // moment rather than in a tight loop.
                    tracing::error!(file = %c.ready.image, error = %e, "cannot move the file into processing/; trying again shortly");
                    queue.push_front(c);
                    claim_pause = Some(Instant::now() + CLAIM_RETRY);
                }
            }
        }

        if mode == Mode::Run
            && active.is_empty()
            && queue.is_empty()
            && unchecked.is_empty()
            && inbox.waiting() == 0
        {
            break;
        }

        let mut wake = Some(
            inbox
                .next_deadline()
                .map_or(next_renew, |w| w.min(next_renew))
                .min(config_file.next_look),
        );
        if mode == Mode::Watch {
            wake = wake.map(|w| w.min(next_rescan));
        }
        if let Some(t) = claim_pause {
            wake = wake.map(|w| w.min(t));
        }
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("stopping: no new files are taken; jobs in flight keep their state for the next start");
                summary.stopped = true;
                break;
            }
            Some(Ended { id, end }) = jobs.next(&spool, backend.name()) => {
                active.remove(&id);
                // A job left in processing/ is free for the next look (this instance's rescan,
                // another instance, or the next start).
                spool.release(&id);
                if let End::Left(Some(why)) = &end
                    && mode == Mode::Run
                {
                    tracing::error!("{why}. Every job stays where it is; fix the key and run again");
                    summary.key_refused = Some(why.clone());
                    break;
                }
                summary.count(&end);
            }
            Some(name) = fs_rx.recv() => {
                tracing::trace!(file = %name.to_string_lossy(), "file-system event");
                match name.into_string() {
                    Ok(name) => inbox.observe(&name),
                    Err(raw) => inbox.report_unreadable_name(&raw),
                }
            }
            () = slots.changed.notified() => {}
            // More of the backlog to check: go round again at once, after other events.
            () = std::future::ready(()), if !unchecked.is_empty() => {}
            () = sleep => {
                let now = Instant::now();
                if now >= config_file.next_look
                    && let Some(new) = config_file.look(&settings)
                {
                    inbox.set_timing(new.config.watch.settle, new.config.watch.sidecar_wait);
                    settings = new;
                    status.settings_changed(config_file.version, None);
                    status.write(backend.gate().current().as_ref(), active.len());
                } else if config_file.error_changed {
                    config_file.error_changed = false;
                    status.settings_changed(config_file.version, config_file.error.clone());
                    status.write(backend.gate().current().as_ref(), active.len());
                }
                if now >= next_renew {
                    next_renew = now + renew_every;
                    renew_leases(&spool, &active);
                    status.write(backend.gate().current().as_ref(), active.len());
                }
                if mode == Mode::Watch && now >= next_rescan {
                    next_rescan = now + settings.config.watch.rescan;
                    if let Err(e) = inbox.scan(spool.fs_now()) {
                        tracing::warn!(error = %e, "cannot read inbox/; trying again at the next rescan");
                    }
                    // Jobs left by an instance that died (its lease expired) continue here.
                    for rec in resume(&spool, &settings, backend.name(), &active) {
                        let token = cancel.child_token();
                        active.insert(rec.id.clone(), token.clone());
                        spawn_job(&mut jobs, &backend, &spool, rec, None, token);
                    }
                }
            }
        }
        // A hold that starts or ends shows in `status` at once.
        let hold = backend.gate().current();
        if hold.as_ref().map(|h| h.cause) != last_hold {
            last_hold = hold.as_ref().map(|h| h.cause);
            status.write(hold.as_ref(), active.len());
        }
    }

    // Stop: every job persists its state at each step; give them a moment to reach one.
    cancel.cancel();
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while !active.is_empty() {
        match tokio::time::timeout_at(deadline, jobs.next(&spool, backend.name())).await {
            Ok(Some(Ended { id, end })) => {
                active.remove(&id);
                spool.release(&id);
                summary.count(&end);
            }
            _ => break,
        }
    }
    for id in active.keys() {
        spool.release(id);
    }
    // Jobs still finishing a step are stopped here; their state is on disk.
    jobs.set.abort_all();
    status.remove();
    Ok(summary)
}

/// The job tasks this instance drives. A task that panics comes back as its job's end (the job
/// goes to `failed/` with an error.txt saying so), so no panic can leave `run` waiting forever.
#[derive(Default)]
struct Jobs {
    set: JoinSet<Ended>,
    /// Which job each task drives, to name the job of a task that panicked.
    ids: HashMap<tokio::task::Id, String>,
}

impl Jobs {
    fn spawn(&mut self, id: String, task: impl Future<Output = Ended> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.ids.insert(handle.id(), id);
    }

    /// The next job to end; `None` when none runs.
    async fn next(&mut self, spool: &Spool, backend: &str) -> Option<Ended> {
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
                        return Some(Ended {
                            id,
                            end: End::Left(None),
                        });
                    }
                    let why = panic_message(e.into_panic());
                    tracing::error!(job = %id, panic = %why, "dropreel hit an internal error while working on this job; it goes to failed/");
                    let end = match spool.load(&id) {
                        Ok(mut rec) => fail_job(
                            spool,
                            &mut rec,
                            Failure {
                                message: format!("dropreel hit an internal error while working on this job ({why})"),
                                advice: "move the image back into inbox/ to try again; if it happens again, report it (this is a bug in dropreel) with the job's log lines".into(),
                                api: None,
                            },
                        ),
                        Err(load) => {
                            tracing::error!(job = %id, error = %load, backend, "the job's state cannot be read either; it stays in processing/");
                            End::Undelivered
                        }
                    };
                    return Some(Ended { id, end });
                }
            }
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

/// How often the config file's stamp is looked at (one `stat`).
const CONFIG_LOOK: Duration = Duration::from_secs(1);

/// `dropreel.yaml` as the running pipeline follows it: edits to `defaults` and to the intake's
/// timings (`watch.settle`, `sidecar_wait`, `rescan`, `truncated_after`) apply to the next files;
/// the rest (backend, `runway:`, `local:`, `watch.poll`, `watch.lease`) needs a restart, which is
/// said once. A bad edit keeps the running settings, with one warning.
struct ConfigFile {
    /// The file's (length, mtime) when last looked at.
    stamp: Option<(u64, Option<std::time::SystemTime>)>,
    next_look: Instant,
    /// Settings loaded so far (1 = at start).
    version: u32,
    /// Why the file as it is now cannot be used, if it cannot.
    error: Option<String>,
    error_changed: bool,
}

impl ConfigFile {
    fn new(settings: &Settings, mode: Mode) -> ConfigFile {
        // A `run` is short: it keeps the settings it started with.
        let first = match mode {
            Mode::Watch => CONFIG_LOOK,
            Mode::Run => Duration::from_secs(365 * 24 * 3600),
        };
        ConfigFile {
            stamp: Self::stamp_of(&settings.watched_path),
            next_look: Instant::now() + first,
            version: 1,
            error: None,
            error_changed: false,
        }
    }

    fn stamp_of(path: &std::path::Path) -> Option<(u64, Option<std::time::SystemTime>)> {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    }

    /// Looks at the file; the settings to run with from now on when it changed and is good.
    fn look(&mut self, running: &Settings) -> Option<Settings> {
        self.next_look = Instant::now() + CONFIG_LOOK;
        let stamp = Self::stamp_of(&running.watched_path);
        if stamp == self.stamp {
            return None;
        }
        self.stamp = stamp;
        let file = running.watched_path.display().to_string();
        let mut new = match running.reload() {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(
                    "{file} changed but cannot be used, so the running settings stay: {e}"
                );
                self.error = Some(e.to_string());
                self.error_changed = true;
                return None;
            }
        };
        let (old, next) = (&running.config, &mut new.config);
        let mut restart = Vec::new();
        if next.backend != old.backend {
            restart.push("backend");
        }
        if next.runway != old.runway {
            restart.push("runway:");
        }
        if next.local != old.local {
            restart.push("local:");
        }
        if next.watch.poll != old.watch.poll || next.watch.lease != old.watch.lease {
            restart.push("watch.poll / watch.lease");
        }
        // What needs a restart keeps its running value until then.
        next.backend = old.backend;
        next.runway = old.runway.clone();
        next.local = old.local.clone();
        next.watch.poll = old.watch.poll;
        next.watch.lease = old.watch.lease;
        if !restart.is_empty() {
            tracing::warn!(
                "{file} changed: {} take effect only when dropreel is restarted",
                restart.join(", ")
            );
        }
        if *next == *old {
            if self.error.take().is_some() {
                self.error_changed = true;
            }
            return None;
        }
        tracing::info!("{file} changed: the next files use the new defaults and watch timings");
        self.version += 1;
        self.error = None;
        Some(new)
    }
}

/// Renews this instance's lease on every job it drives; a job whose lease another instance took
/// over (this one was frozen past the lease, e.g. a laptop asleep) is stopped here at once.
fn renew_leases(spool: &Spool, active: &HashMap<String, CancellationToken>) {
    for (id, token) in active {
        match spool.renew(id) {
            Ok(true) => {}
            Ok(false) => {
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
    inbox.forget(&r.image);
    if let Some(sc) = &r.sidecar {
        inbox.forget(sc);
    }
}

/// A file that stayed incomplete and unchanged for `after`: a copy that broke off.
fn truncated(r: &Ready, why: &str, after: Duration) -> Failure {
    Failure {
        message: format!(
            "{} is truncated: {why}, and it has not changed for {}",
            r.image,
            humantime::format_duration(Duration::from_secs(after.as_secs()))
        ),
        advice: "the copy probably broke off: copy the image into inbox/ again (or re-export it). \
                 A slow share may need a longer watch.truncated_after"
            .into(),
        api: None,
    }
}

/// The checks that need no slot: image content, sidecar, spec against the catalog.
fn check(spool: &Spool, settings: &Settings, r: &Ready) -> Result<Checked, NotYet> {
    let (info, spec) = check_files(&spool.inbox(), settings, &r.image, r.sidecar.as_deref())?;
    Ok(Checked {
        ready: r.clone(),
        info,
        spec,
    })
}

/// Probes the image (format, size, wholeness), reads the sidecar and builds the spec, for files
/// in `dir`.
fn check_files(
    dir: &std::path::Path,
    settings: &Settings,
    image: &str,
    sidecar: Option<&str>,
) -> Result<(ImageInfo, JobSpec), NotYet> {
    let path = dir.join(image);
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    let unusable = |why: String| Failure {
        message: format!("{image} cannot be used: {why}"),
        advice: "export it as a PNG, JPEG or WebP image".into(),
        api: None,
    };
    let format = match crate::media::format_of(&path) {
        Ok(format) => format,
        // Still held open by its writer (a sharing violation on Windows or SMB): not ready yet.
        Err(e) if intake::held_by_writer(&e) => {
            return Err(NotYet::Wait("another program still has it open".into()));
        }
        Err(e) => return Err(unusable(format!("the file cannot be read: {e}")).into()),
    };
    // What is sent is the file itself, or (other formats) a PNG made of it, checked when made.
    if format.is_none_or(|f| f.sent_as_is()) && len > crate::backend::runway::UPLOAD_MAX {
        return Err(Failure {
            message: format!(
                "{image} is {} MB; Runway takes images of at most {} MB",
                len >> 20,
                crate::backend::runway::UPLOAD_MAX >> 20
            ),
            advice: "export a smaller version (a 4K JPEG is a few MB)".into(),
            api: None,
        }
        .into());
    }
    let format = format.ok_or_else(|| unusable(crate::media::not_an_image(len)))?;
    let whole = crate::media::wholeness(&path, format);
    if !format.decodable() {
        if let Ok(crate::media::Whole::No(stop)) = whole {
            return Err(NotYet::Wait(stop));
        }
        return Err(Failure {
            message: format!(
                "{image} is a {} image, which this build of dropreel cannot decode",
                format.name()
            ),
            advice: crate::media::undecodable_advice(format),
            api: None,
        }
        .into());
    }
    let info = match crate::media::dimensions(&path, format) {
        Ok(info) => info,
        // A partial copy may not even hold its size yet (camera JPEGs carry it after the
        // thumbnail): wait for the rest before judging.
        Err(why) => match whole {
            Ok(crate::media::Whole::No(stop)) => return Err(NotYet::Wait(stop)),
            _ => return Err(unusable(why).into()),
        },
    };
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > render::MAX_SOURCE_PIXELS {
        return Err(Failure {
            message: format!(
                "{image} claims to be {}×{} pixels; dropreel takes images of at most {} megapixels \
                 (a small file claiming that much is usually a decompression bomb)",
                info.width,
                info.height,
                render::MAX_SOURCE_PIXELS / 1_000_000
            ),
            advice: "use a smaller image".into(),
            api: None,
        }
        .into());
    }
    match whole {
        Ok(crate::media::Whole::Yes) => {}
        Ok(crate::media::Whole::No(why)) => return Err(NotYet::Wait(why)),
        // Still held open by its writer (Windows, SMB): not ready yet.
        Err(e) if intake::held_by_writer(&e) => {
            return Err(NotYet::Wait("another program still has it open".into()));
        }
        Err(e) => {
            return Err(Failure {
                message: format!("{image} cannot be read: {e}"),
                advice: "check the file's permissions, or copy it into inbox/ again".into(),
                api: None,
            }
            .into());
        }
    }
    let (sc, mut problems) = match sidecar {
        Some(sc) => job::read_sidecar(&dir.join(sc)).map_err(|why| Failure {
            message: format!("the sidecar {sc} cannot be used: {why}"),
            advice: format!("fix {sc} (or delete it to use the defaults)"),
            api: None,
        })?,
        None => (Sidecar::default(), Vec::new()),
    };
    let local = settings.backend() == crate::config::BackendChoice::Local;
    let built = JobSpec::build_all(&settings.config.defaults, &sc, &info, local);
    let spec = match built {
        Ok(spec) if problems.is_empty() => spec,
        Ok(_) => JobSpec::default(),
        Err(more) => {
            problems.extend(more);
            JobSpec::default()
        }
    };
    if !problems.is_empty() {
        return Err(Failure {
            message: job::join_problems(&problems),
            advice: match sidecar {
                Some(sc) => format!("change {sc} (or the defaults in dropreel.yaml)"),
                None => {
                    "add a sidecar YAML beside the image, or change the defaults in dropreel.yaml"
                        .into()
                }
            },
            api: None,
        }
        .into());
    }
    Ok((info, spec))
}

fn new_record(
    id: String,
    image: &str,
    sidecar: Option<String>,
    info: ImageInfo,
    spec: JobSpec,
    backend: &str,
) -> JobRecord {
    JobRecord {
        id,
        image: image.to_string(),
        sidecar,
        info,
        spec,
        backend: backend.to_string(),
        state: State::Claimed,
        claimed_at: spool::now_rfc3339(),
        submitted_at: None,
        finished_at: None,
        task_id: None,
        task_status: None,
        progress: None,
        output_urls: Vec::new(),
        output_bytes: None,
        upload_uri: None,
        upload_at: None,
        submissions: 0,
        uncertain_submissions: 0,
        transient_faults: 0,
        failure: None,
        delivery: None,
        render: None,
        source_sha256: None,
        source_changed: false,
    }
}

/// Claims a checked image (copying its sidecar when other images of its stem still wait:
/// `share`). `Ok(None)`: it was gone (another instance, or the user).
fn claim(
    spool: &Spool,
    c: &Checked,
    share: bool,
    backend: &str,
) -> std::io::Result<Option<JobRecord>> {
    let Some((id, sidecar)) = spool.claim(&c.ready.image, c.ready.sidecar.as_deref(), share)?
    else {
        return Ok(None);
    };
    let rec = new_record(id, &c.ready.image, sidecar, c.info, c.spec.clone(), backend);
    spool.save(&rec)?;
    tracing::info!(
        job = %rec.id,
        file = %rec.image,
        sidecar = rec.sidecar.as_deref().unwrap_or("-"),
        model = %rec.spec.model,
        ratio = rec.spec.ratio.as_deref().unwrap_or("-"),
        duration = rec.spec.duration,
        "claimed"
    );
    Ok(Some(rec))
}

/// Claims a bad input and moves it to `failed/` with its explanation. `None` when it was not ours
/// (gone, or inbox/ refused the move).
fn fail_unclaimed(spool: &Spool, r: &Ready, failure: &Failure, backend: &str) -> Option<End> {
    let claimed = match spool.claim(&r.image, r.sidecar.as_deref(), false) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(file = %r.image, error = %e, "cannot move a bad input out of inbox/");
            return None;
        }
    };
    let mut rec = new_record(
        claimed.0,
        &r.image,
        claimed.1,
        ImageInfo::UNKNOWN,
        JobSpec::default(),
        backend,
    );
    Some(fail_job(spool, &mut rec, failure.clone()))
}

/// Records the failure and moves the job to `failed/`.
fn fail_job(spool: &Spool, rec: &mut JobRecord, failure: Failure) -> End {
    let text = report::error_text(&rec.image, rec.sidecar.as_deref(), &rec.id, &failure);
    rec.state = State::Failed;
    rec.failure = Some(failure);
    if let Err(e) = spool.save(rec) {
        tracing::error!(job = %rec.id, error = %e, "cannot save the job state");
    }
    match spool.fail(rec, &text) {
        Ok(stem) => {
            tracing::warn!(
                job = %rec.id,
                file = %rec.image,
                to = %format!("failed/{stem}.error.txt"),
                reason = %rec.failure.as_ref().map_or("", |f| f.message.as_str()),
                "failed"
            );
            End::Failed
        }
        Err(e) => {
            tracing::error!(job = %rec.id, file = %rec.image, error = %e, "cannot move the failed job into failed/ (disk full or permissions?); it stays in processing/ and is tried again at the next rescan (watch.rescan) or the next start");
            End::Undelivered
        }
    }
}

fn spawn_job<B: Backend>(
    jobs: &mut Jobs,
    backend: &Arc<B>,
    spool: &Spool,
    rec: JobRecord,
    ticket: Option<crate::backend::Ticket>,
    cancel: CancellationToken,
) {
    let backend = backend.clone();
    let mut ctx = JobCtx {
        spool: spool.clone(),
        rec,
        cancel,
        ticket,
    };
    let id = ctx.rec.id.clone();
    jobs.spawn(id, async move {
        // The bytes this job works from, noted before anything is sent (and compared at
        // delivery). It reaches job.json with the next step's save; a crash before that leaves the
        // job `claimed`, and the hash is taken again.
        if ctx.rec.state == State::Claimed && ctx.rec.source_sha256.is_none() {
            ctx.rec.source_sha256 = hash_source(&ctx.spool, &ctx.rec).await;
        }
        // A job that failed before a stop is moved to failed/, whatever the backend.
        let outcome = match ctx.rec.state {
            State::Failed => Err(Stop::Failed(ctx.rec.failure_or_default())),
            _ => backend.produce(&mut ctx).await,
        };
        drop(ctx.ticket.take());
        let end = match outcome {
            Ok(()) => {
                check_source_unchanged(&ctx.spool, &mut ctx.rec).await;
                deliver(&ctx.spool, &mut ctx.rec, backend.name())
            }
            Err(Stop::Failed(f)) => fail_job(&ctx.spool, &mut ctx.rec, f),
            Err(Stop::Cancelled) => End::Left(None),
            Err(Stop::KeyRefused(why)) => End::Left(Some(why)),
        };
        Ended {
            id: ctx.rec.id.clone(),
            end,
        }
    });
}

/// The SHA-256 of the job's image, off the runtime's threads.
async fn hash_source(spool: &Spool, rec: &JobRecord) -> Option<String> {
    let path = spool.job_dir(&rec.id).join(&rec.image);
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
            file = %rec.image,
            "THE SOURCE CHANGED AFTER IT WAS SENT: another program kept writing into the image after \
             dropreel took it, so the video was made from different bytes than the file now in done/. \
             Check the video; to make it from the finished file, move the file back into inbox/"
        );
        rec.source_changed = true;
    }
}

fn deliver(spool: &Spool, rec: &mut JobRecord, backend: &str) -> End {
    let json = report::result_json(rec, backend);
    match spool.deliver(rec, &json) {
        Ok(stem) => {
            tracing::info!(job = %rec.id, file = %rec.image, to = %format!("done/{stem}.mp4"), "delivered");
            End::Delivered
        }
        Err(e) => {
            tracing::error!(job = %rec.id, file = %rec.image, error = %e,
                "cannot move the finished job into done/ (disk full or permissions?); it stays in processing/ and is tried again at the next rescan (watch.rescan) or the next start");
            End::Undelivered
        }
    }
}

/// Jobs left in `processing/` by a stop or crash, ready to continue where they were.
fn resume(
    spool: &Spool,
    settings: &Settings,
    backend: &str,
    active: &HashMap<String, CancellationToken>,
) -> Vec<JobRecord> {
    let ids = match spool.job_ids() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot list processing/");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for id in ids {
        if active.contains_key(&id) {
            continue;
        }
        let dir = spool.job_dir(&id);
        if !dir.join(spool::STATE_FILE).exists() && !holds_image(&dir) {
            // A claim in progress (another instance between creating the folder and moving the
            // image in), or what a crash left of one.
            remove_if_abandoned(spool, &dir);
            continue;
        }
        match spool.adopt(&id) {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(job = %id, "held by another live instance");
                continue;
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot take over this job's lease");
                continue;
            }
        }
        match spool.load(&id) {
            Ok(rec) => {
                match rec.state {
                    State::Submitting => tracing::warn!(
                        job = %id, file = %rec.image,
                        "this job was stopped while its create request was on the wire: Runway may or may not have \
                         created a task. It is submitted again; result.json will note a possible double charge"
                    ),
                    State::Submitted => {
                        tracing::info!(job = %id, file = %rec.image, task = ?rec.task_id, "resuming: polling the task already submitted")
                    }
                    s => tracing::info!(job = %id, file = %rec.image, state = ?s, "resuming"),
                }
                out.push(rec);
            }
            Err(e) => match rebuild(spool, settings, backend, &id, &e) {
                Some(rec) => out.push(rec),
                None => continue,
            },
        }
    }
    out
}

fn holds_image(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            intake::kind_of(&name) == intake::Kind::Image && !intake::is_ignored(&name)
        })
    })
}

/// Removes a job folder with nothing but a lease in it once nobody can still be claiming into it
/// (see [`crate::lease::Owner::claim_abandoned`]).
fn remove_if_abandoned(spool: &Spool, dir: &std::path::Path) {
    let abandoned = spool.owner().claim_abandoned(dir);
    if !abandoned {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_name()
                .to_string_lossy()
                .starts_with(crate::lease::LEASE_FILE)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if std::fs::remove_dir(dir).is_ok() {
        tracing::debug!(dir = %dir.display(), "removed what a stopped claim left in processing/");
    }
}

/// A job folder without a readable `job.json` (a crash right after the claim, or a damaged file):
/// rebuilt from the image and sidecar it holds.
fn rebuild(
    spool: &Spool,
    settings: &Settings,
    backend: &str,
    id: &str,
    err: &std::io::Error,
) -> Option<JobRecord> {
    let dir = spool.job_dir(id);
    let state_path = dir.join(spool::STATE_FILE);
    if state_path.exists() {
        let aside = dir.join(format!("job.json.corrupt-{}", spool::new_job_id()));
        tracing::error!(job = %id, error = %err, "job.json is damaged; moved aside as {}; the job restarts from its image", aside.display());
        let _ = std::fs::rename(&state_path, &aside);
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let image = names
        .iter()
        .find(|n| intake::kind_of(n) == intake::Kind::Image && !intake::is_ignored(n));
    let Some(image) = image else {
        tracing::error!(job = %id, "the job folder holds no image and no readable state; left alone in processing/");
        return None;
    };
    let stem = spool::split_name(image).0;
    let sidecar = names
        .iter()
        .find(|n| intake::kind_of(n) == intake::Kind::Sidecar && spool::split_name(n).0 == stem)
        .cloned();
    match check_files(&dir, settings, image, sidecar.as_deref()) {
        Ok((info, spec)) => {
            let rec = new_record(id.to_string(), image, sidecar, info, spec, backend);
            if spool.save(&rec).is_err() {
                return None;
            }
            tracing::info!(job = %id, file = %image, "resuming a job claimed just before a stop");
            Some(rec)
        }
        Err(not_yet) => {
            let f = match not_yet {
                NotYet::Fail(f) => f,
                // Claimed, so its writer had stopped long enough: what is there is all there is.
                NotYet::Wait(why) => Failure {
                    message: format!("{image} is truncated: {why}"),
                    advice: "copy the image into inbox/ again (or re-export it)".into(),
                    api: None,
                },
            };
            let mut rec = new_record(
                id.to_string(),
                image,
                sidecar,
                ImageInfo::UNKNOWN,
                JobSpec::default(),
                backend,
            );
            // Failed from the start: the job task moves it to failed/ like any other.
            rec.state = State::Failed;
            rec.failure = Some(f);
            spool.save(&rec).ok()?;
            Some(rec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 10 — a job task that panicked never reported, so `run` waited forever.
    #[tokio::test]
    async fn a_job_task_that_panics_ends_as_that_jobs_failure() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        std::fs::write(spool.inbox().join("x.png"), b"image").unwrap();
        let (id, _) = spool.claim("x.png", None, false).unwrap().unwrap();
        let rec = new_record(
            id.clone(),
            "x.png",
            None,
            ImageInfo::UNKNOWN,
            JobSpec::default(),
            "local",
        );
        spool.save(&rec).unwrap();
        let mut jobs = Jobs::default();
        jobs.spawn(id.clone(), async { panic!("boom") });
        let ended = jobs.next(&spool, "local").await.unwrap();
        assert_eq!(ended.id, id);
        assert!(matches!(ended.end, End::Failed));
        let text = std::fs::read_to_string(d.path().join("failed/x.error.txt")).unwrap();
        assert!(
            text.contains("internal error") && text.contains("(boom)"),
            "{text}"
        );
        assert!(d.path().join("failed/x.png").exists());
        assert!(
            jobs.next(&spool, "local").await.is_none(),
            "nothing else runs"
        );
    }
}
