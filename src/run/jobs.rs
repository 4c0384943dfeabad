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
//! (Over 600 lines: the dedupe ledger's part of a job — reuse, takes put in place, what is recorded
//! at delivery — follows the job's steps, and is read best beside them.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Fault, JobCtx, RetryPolicy, Stop, Ticket};
use crate::observe::events::Event;
use crate::observe::live::Live;
use crate::observe::notify::Outbox;
use crate::studio::ledger::dedupe::{self, Found, Ledger, Look, Placed};
use crate::studio::record::ReusedFrom;
use crate::studio::report;
use crate::studio::spool::{Failure, JobRecord, Spool, State};

/// How often a job waiting for an identical one in flight looks at the ledger again.
const LEDGER_WAIT: Duration = Duration::from_millis(500);

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

/// Tells how the job ended — the metrics, the dashboard (when one reads the board) and the outbox
/// (when anyone listens) — when it ended in `done/` or `failed/`.
fn tell(outbox: Option<&Outbox>, live: &Live, spool: &Spool, rec: &JobRecord, end: &End) {
    let metrics = crate::observe::metrics::get();
    match end {
        End::Delivered => metrics.job_ended("delivered"),
        End::PartlyDelivered => metrics.job_ended("partly_delivered"),
        End::Failed => metrics.job_ended("failed"),
        End::Undelivered => metrics.job_ended("undelivered"),
        End::Left | End::Held(_) => {}
    }
    let Some(d) = &rec.delivery else {
        return;
    };
    let credits = report::credits(rec).map(|c| c as f64);
    if matches!(end, End::Delivered | End::PartlyDelivered)
        && let Some(c) = credits
    {
        metrics.credits(&rec.spec.model, c);
    }
    if outbox.is_none() && !live.board_watched() {
        return;
    }
    let event = match end {
        End::Delivered | End::PartlyDelivered => {
            let names = rec.delivered(&d.folder, &d.stem);
            let videos = names.videos();
            let posters: Vec<Option<String>> = names
                .posters()
                .into_iter()
                .map(|p| spool.root().join(&p).exists().then_some(p))
                .collect();
            live.delivered(crate::observe::live::ResultView {
                job: rec.id.clone(),
                file: rec.source.rel(),
                kind: rec.kind.name().to_string(),
                // A local render used no model.
                model: (rec.backend != "local").then(|| rec.spec.model.clone()),
                prompt: Some(rec.spec.prompt.clone()).filter(|p| !p.is_empty()),
                credits,
                videos: videos.clone(),
                posters: posters.clone(),
                at: crate::studio::clock::now_rfc3339(),
            });
            let mut outputs = videos;
            outputs.extend(posters.into_iter().flatten());
            Event::delivered(&rec.id, rec.source.rel(), outputs, credits)
        }
        End::Failed => {
            let f = rec.failure_or_default();
            let error = format!("{} — {}", f.message, f.advice);
            let error_file = rec.delivered(&d.folder, &d.stem).error_txt();
            live.failed(crate::observe::live::FailedView {
                job: rec.id.clone(),
                file: rec.source.rel(),
                error: error.clone(),
                error_file: error_file.clone(),
                at: crate::studio::clock::now_rfc3339(),
            });
            Event::failed(&rec.id, rec.source.rel(), error, error_file)
        }
        End::Undelivered | End::Left | End::Held(_) => return,
    };
    if let Some(outbox) = outbox {
        outbox.emit(&event);
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

/// What the dedupe ledger gave a job.
enum Earlier {
    /// Nothing: the job makes everything.
    None,
    /// Some takes, put in place as the job's own: the job makes the others.
    Some(Vec<Found>),
    /// Every video, delivered as the job's own: nothing to make.
    All(Vec<Found>),
}

/// Looks the job's key up in the ledger (off the runtime's threads: it may hash videos). Delivers
/// the job from an earlier job's videos when all are still there (no request, no cost); fails it at
/// once when an identical job was refused lately for good. While an identical job is in flight,
/// waits for it (holding no place in the queue).
async fn reuse(ledger: &Ledger, backend: &str, ctx: &mut JobCtx) -> Result<Earlier, Stop> {
    let Some(key) = dedupe::key(&ctx.rec, backend) else {
        return Ok(Earlier::None);
    };
    ctx.rec.dedupe_key = Some(key.clone());
    let takes = ctx.rec.spec.takes();
    let mut told = false;
    loop {
        let (l, k, id, spool) = (
            ledger.clone(),
            key.clone(),
            ctx.rec.id.clone(),
            ctx.spool.clone(),
        );
        let look =
            tokio::task::spawn_blocking(move || l.look(&k, &id, takes, |j| spool.holds_job(j)))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match look {
            Ok(Look::Generate(found)) if found.is_empty() => return Ok(Earlier::None),
            Ok(Look::Generate(found)) => return Ok(Earlier::Some(found)),
            Ok(Look::Wait(other)) => {
                if !told {
                    told = true;
                    tracing::info!(job = %ctx.rec.id, file = %ctx.rec.source.name, same_as = %other,
                        "an identical job (same inputs and settings) is in flight; this one waits for it and reuses its video");
                }
                // Waiting holds no place in the queue for a slot.
                drop(ctx.ticket.take());
                ctx.pause(LEDGER_WAIT).await?;
            }
            Ok(Look::Reuse(found)) => {
                if copy_reused(ledger, ctx, &found).await? {
                    return Ok(Earlier::All(found));
                }
                // A video changed between the look and the copy: looked at again, it no longer
                // counts.
            }
            Ok(Look::Refused(entry)) => return Err(Stop::Failed(refused_twin(&entry))),
            Err(e) => {
                tracing::warn!(job = %ctx.rec.id, error = %e, "cannot use the dedupe ledger in .dropreel/ledger/; this job is made without looking for an identical earlier one");
                ctx.rec.dedupe_key = None;
                return Ok(Earlier::None);
            }
        }
    }
}

/// The failure of a job identical to one Runway refused lately for good: the server's reason, and
/// what to change.
fn refused_twin(entry: &dedupe::Entry) -> Failure {
    let why = entry.refusal.clone().unwrap_or(Failure {
        message: "Runway refused it".into(),
        advice: "change the image or the prompt".into(),
        api: None,
    });
    Failure {
        message: format!(
            "an identical job (the same inputs and settings: job {}) was refused at {}: {}; this one was not sent, so it cost nothing",
            entry.job,
            entry.at,
            why.message.trim_end_matches('.')
        ),
        advice: format!(
            "{}. dropreel remembers such a refusal for {} hours while the refused job is in failed/; to send it unchanged anyway, retry that job (`dropreel retry`) or set `dedupe: false` in this one's sidecar",
            why.advice.trim_end_matches('.'),
            dedupe::REFUSAL_MEMORY.as_secs() / 3600
        ),
        api: why.api,
    }
}

/// Copies `found` (the same job's videos, one per take) into the job folder as `names`, each
/// checked to be the video found, off the runtime's threads; waits while the disk refuses. `false`
/// when one changed since it was found (nothing of it is left).
async fn copy_found(
    ledger: &Ledger,
    ctx: &mut JobCtx,
    found: &[Found],
    names: &[String],
) -> Result<bool, Stop> {
    loop {
        let (l, f, dir, n) = (
            ledger.clone(),
            found.to_vec(),
            ctx.spool.job_dir(&ctx.rec.id),
            names.to_vec(),
        );
        let copied = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            for (found, name) in f.iter().zip(&n) {
                if !l.copy_video(found, &dir.join(name))? {
                    return Ok(false);
                }
            }
            crate::studio::durable::sync_dir(&dir)?;
            Ok(true)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match copied {
            Ok(same) => return Ok(same),
            Err(e) => {
                let wait = ctx.on_fault(Fault::Disk(e), "copying the earlier job's video", None)?;
                ctx.pause(wait).await?;
            }
        }
    }
}

/// Where a reused take came from, for its record and `result.json`.
fn reused_from(found: &Found) -> ReusedFrom {
    ReusedFrom {
        job: found.job.clone(),
        task_ids: found.video.task_id.iter().cloned().collect(),
        files: vec![found.copy.file.clone()],
    }
}

/// Puts copies of an earlier job's videos into this job's folder as its own (state `Downloaded`):
/// `false` when one changed since it was found.
async fn copy_reused(ledger: &Ledger, ctx: &mut JobCtx, found: &[Found]) -> Result<bool, Stop> {
    let takes = ctx.rec.spec.takes() > 1;
    let names: Vec<String> = if takes {
        found
            .iter()
            .map(|f| ctx.rec.take_output(f.video.take))
            .collect()
    } else {
        vec![ctx.rec.output_file()]
    };
    if !copy_found(ledger, ctx, found, &names).await? {
        return Ok(false);
    }
    if takes {
        ctx.rec.takes = found
            .iter()
            .map(|f| crate::studio::record::Take {
                n: f.video.take,
                seed: f.video.seed,
                task_id: f.video.task_id.clone(),
                output_bytes: Some(f.video.bytes),
                submissions: 0,
                uncertain_submissions: 0,
                failure: None,
                held: None,
                render: None,
                reused_from: Some(reused_from(f)),
            })
            .collect();
    }
    let from = ReusedFrom {
        job: found.first().map(|f| f.job.clone()).unwrap_or_default(),
        task_ids: found
            .iter()
            .filter_map(|f| f.video.task_id.clone())
            .collect(),
        files: found.iter().map(|f| f.copy.file.clone()).collect(),
    };
    tracing::info!(job = %ctx.rec.id, file = %ctx.rec.source.name, from = %from.job, videos = ?from.files,
        "reused: the same inputs and settings were delivered before; no request sent, no credits spent");
    ctx.rec.reused_from = Some(from);
    ctx.rec.output_bytes = Some(found.iter().map(|f| f.video.bytes).sum());
    ctx.rec.finished_at = Some(crate::studio::clock::now_rfc3339());
    ctx.rec.state = State::Downloaded;
    ctx.save().await?;
    Ok(true)
}

/// Puts the takes an identical earlier job delivered, still in `done/`, into this job's folder as
/// its own takes (made, at no cost: see [`crate::run::variants::reused_take`]), so that only the others
/// are made. A take begun before a restart is left as it is; one whose video changed since it was
/// found is made.
async fn place_takes(ledger: &Ledger, ctx: &mut JobCtx, found: &[Found]) -> Result<(), Stop> {
    let takes: Vec<u32> = found.iter().map(|f| f.video.take).collect();
    tracing::info!(job = %ctx.rec.id, file = %ctx.rec.source.name, from = %found[0].job, reused = ?takes,
        "takes of an identical earlier job are still in done/: those are reused (no request, no credits), the others are made");
    for f in found {
        let n = f.video.take;
        if matches!(ctx.spool.load_variant(&ctx.rec.id, n), Ok(Some(_))) {
            continue;
        }
        let name = ctx.rec.take_output(n);
        if !copy_found(ledger, ctx, std::slice::from_ref(f), &[name]).await? {
            continue;
        }
        let rec = crate::run::variants::reused_take(
            &ctx.rec,
            n,
            f.video.seed,
            f.video.bytes,
            reused_from(f),
        );
        let spool = ctx.spool.clone();
        ctx.on_disk("saving a reused take's state", |_| spool.save(&rec))
            .await?;
    }
    Ok(())
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

/// Makes the poster of each video of the job that has none yet (a local render brings its own;
/// a reused or downloaded video is decoded), off the runtime's threads. A video that cannot be
/// decoded gets none: one debug line, and the delivery goes on.
async fn make_posters(ctx: &JobCtx) {
    let rec = &ctx.rec;
    if rec.delivery.is_some() {
        // Its files may be in done/ already.
        return;
    }
    let pairs: Vec<(String, String)> = if rec.takes.is_empty() {
        vec![(rec.output_file(), rec.poster_file())]
    } else {
        rec.takes
            .iter()
            .filter(|t| t.output_bytes.is_some())
            .map(|t| (rec.take_output(t.n), rec.take_poster(t.n)))
            .collect()
    };
    let dir = ctx.spool.job_dir(&rec.id);
    let id = rec.id.clone();
    let made = tokio::task::spawn_blocking(move || {
        for (video, poster) in pairs {
            if dir.join(&poster).exists() || !dir.join(&video).exists() {
                continue;
            }
            let written =
                crate::media::preview::jpeg_from_mp4(&dir.join(&video)).and_then(|jpeg| {
                    crate::studio::durable::write_atomic(&dir, &poster, &jpeg)
                        .map_err(|e| e.to_string())
                });
            if let Err(why) = written {
                tracing::debug!(job = %id, video = %video, reason = %why, "no poster for this video");
            }
        }
    });
    let _ = made.await;
}

/// What each video of the finished job is (its take and identity), read off the runtime's threads
/// before delivery, for the dedupe ledger: from the job folder, or from `done/` when a delivery
/// resumed after a stop moved it already. A video reused by a hard link is known without reading
/// it. Nothing for a job the ledger does not keep.
async fn identify_videos(ctx: &JobCtx, reused: &[Found]) -> Vec<(u32, dedupe::Identity)> {
    let rec = &ctx.rec;
    if rec.dedupe_key.is_none() {
        return Vec::new();
    }
    let dir = ctx.spool.job_dir(&rec.id);
    let moved = |take: Option<u32>| {
        rec.delivery.as_ref().map(|d| {
            let names = rec.delivered(&d.folder, &d.stem);
            ctx.spool
                .root()
                .join(&d.folder)
                .join(names.video_name(take))
        })
    };
    let videos: Vec<(u32, std::path::PathBuf, Option<std::path::PathBuf>)> = if rec.takes.is_empty()
    {
        vec![(1, dir.join(rec.output_file()), moved(None))]
    } else {
        rec.takes
            .iter()
            .filter(|t| t.output_bytes.is_some())
            .map(|t| (t.n, dir.join(rec.take_output(t.n)), moved(Some(t.n))))
            .collect()
    };
    let known: Vec<(dedupe::FileId, u64, String)> = reused
        .iter()
        .filter_map(|f| Some((f.copy.id?, f.video.bytes, f.video.sha256.clone())))
        .collect();
    tokio::task::spawn_blocking(move || {
        videos
            .into_iter()
            .filter_map(|(n, here, there)| {
                let path = if here.exists() { here } else { there? };
                let meta = std::fs::symlink_metadata(&path).ok()?;
                let id = dedupe::FileId::of(&meta);
                let link = known
                    .iter()
                    .find(|(k, bytes, _)| Some(*k) == id && *bytes == meta.len());
                if let Some((_, bytes, sha)) = link {
                    let sha256 = sha.clone();
                    return Some((
                        n,
                        dedupe::Identity {
                            bytes: *bytes,
                            sha256,
                            id,
                        },
                    ));
                }
                dedupe::identify(&path).ok().map(|seen| (n, seen))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Moves the finished job into `done/`, recording it in the dedupe ledger once its files are there
/// (before its folder is removed: see [`record_delivery`]). When `done/` refuses (a full disk,
/// permissions, a folder gone), the job waits in `processing/` and is delivered at the next rescan
/// or start — never lost, never generated again — and a `run` says so in its exit code.
fn deliver(
    ctx: &mut JobCtx,
    backend: &str,
    ledger: &Ledger,
    reused: &[Found],
    videos: &[(u32, dedupe::Identity)],
) -> End {
    let json = |rec: &JobRecord, stem: &str| report::result_json(rec, backend, stem);
    let record = |rec: &JobRecord, stem: &str| record_delivery(ledger, rec, stem, reused, videos);
    match ctx.spool.deliver(&mut ctx.rec, json, record) {
        Ok(stem) => {
            let rec = &ctx.rec;
            let folder = rec.delivery.as_ref().map_or("done", |d| d.folder.as_str());
            let videos = rec.delivered(folder, &stem).videos();
            tracing::info!(job = %rec.id, file = %rec.source.name, to = %videos.join(", "), "delivered");
            // A take the budget held is not a failure (the run says so by its exit code).
            if rec
                .takes
                .iter()
                .any(|t| t.output_bytes.is_none() && t.held.is_none())
            {
                End::PartlyDelivered
            } else {
                End::Delivered
            }
        }
        Err(e) => {
            // The video is kept for the next try (best effort: the disk is refusing writes).
            let _ = ctx.spool.save(&ctx.rec);
            tracing::error!(job = %ctx.rec.id, file = %ctx.rec.source.name, error = %e,
                "cannot move the finished job into done/ (disk full or permissions?); it stays in processing/ and is tried again at the next rescan (watch.rescan) or the next start");
            End::Undelivered
        }
    }
}

/// Records the delivery of the job (its videos now in `done/` as `stem`; `videos`: what each is)
/// in the dedupe ledger: as its key's entry — each video it made, and each take it reused with
/// that take's earlier copies — or, for a job delivered whole from an earlier one, its copies as
/// further copies of that entry's videos. Called before the job folder is removed, so a stop
/// before this leaves a job that recovery delivers (and records) again.
fn record_delivery(
    ledger: &Ledger,
    rec: &JobRecord,
    stem: &str,
    reused: &[Found],
    videos: &[(u32, dedupe::Identity)],
) {
    let Some(key) = &rec.dedupe_key else {
        return;
    };
    let folder = rec.delivery.as_ref().map_or("done", |d| d.folder.as_str());
    let names = rec.delivered(folder, stem);
    let path_of = |n: u32| {
        let take = (!rec.takes.is_empty()).then_some(n);
        format!("{folder}/{}", names.video_name(take))
    };
    let copies: Vec<(u32, dedupe::Identity, String)> = videos
        .iter()
        .map(|(n, seen)| (*n, seen.clone(), path_of(*n)))
        .collect();
    let written = match &rec.reused_from {
        Some(from) => ledger.add_copies(key, &from.job, reused, &copies),
        None => {
            let made = copies.into_iter().map(|(n, seen, file)| {
                let take = rec.takes.iter().find(|t| t.n == n);
                // A take reused from an earlier job keeps that job's copies beside this one.
                let earlier = reused
                    .iter()
                    .find(|f| f.video.take == n && f.video.sha256 == seen.sha256)
                    .map(|f| f.video.copies.clone())
                    .or_else(|| {
                        let from = take?.reused_from.as_ref()?;
                        Some(
                            from.files
                                .iter()
                                .map(|f| Placed {
                                    file: f.clone(),
                                    id: None,
                                })
                                .collect(),
                        )
                    });
                let mut placed: Vec<Placed> = earlier.unwrap_or_default();
                placed.retain(|p| p.file != file);
                placed.push(Placed { file, id: seen.id });
                dedupe::Video {
                    take: n,
                    task_id: take.map_or_else(|| rec.task_id.clone(), |t| t.task_id.clone()),
                    seed: take.map_or(rec.spec.seed, |t| t.seed),
                    bytes: seen.bytes,
                    sha256: seen.sha256,
                    copies: placed,
                }
            });
            let entry = dedupe::Entry::done(&rec.id, rec.spec.takes(), made.collect());
            ledger.record_done(key, &entry)
        }
    };
    if let Err(e) = written {
        tracing::warn!(job = %rec.id, error = %e, "cannot record the delivery in the dedupe ledger; an identical job dropped later is made again");
    }
}

/// Records the failure and moves the job into `failed/` with its `error.txt`: the one route to
/// `failed/`. When `failed/` refuses, the job waits in `processing/` like an undelivered one.
fn fail(ctx: &mut JobCtx, failure: Failure) -> End {
    ctx.rec.state = State::Failed;
    ctx.rec.failure = Some(failure.clone());
    if let Err(e) = ctx.spool.save(&ctx.rec) {
        tracing::error!(job = %ctx.rec.id, error = %e, "cannot save the job state");
    }
    let text = |rec: &JobRecord, stem: &str| report::error_text(rec, &failure, stem);
    match ctx.spool.fail(&mut ctx.rec, text) {
        Ok(stem) => {
            let folder = ctx
                .rec
                .delivery
                .as_ref()
                .map_or("failed", |d| d.folder.as_str());
            tracing::warn!(
                job = %ctx.rec.id,
                file = %ctx.rec.source.rel(),
                to = %ctx.rec.delivered(folder, &stem).error_txt(),
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
        let source = crate::studio::source::Source::in_inbox("x.png");
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
        let mut jobs = Jobs::new(
            RetryPolicy {
                retries: 0,
                min: Duration::from_millis(10),
                max: Duration::from_millis(10),
            },
            Ledger::new(d.path()),
            None,
            Live::default(),
        );
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
