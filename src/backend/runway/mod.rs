//! The Runway API backend as resumable steps: submit (the image inline as a data URI, or through
//! the upload endpoint when too big), poll the task on the clock of [`schedule`], stream the MP4 into
//! the job folder. Each step saves the job's state before the next depends on it.
//!
//! [`api`] speaks HTTP and types the answers; [`faults`] sorts what goes wrong into the shared
//! [`Fault`] classes; [`queue`] holds what is learnt across jobs (task times, Runway's queue order);
//! [`organization`] asks for the organisation's balance and limits, which bound each model's slots
//! and hold a model's creates before Runway would refuse them.
//! Here: the create request with the spend counted before it (at the price [`spend::rate`]
//! gives, which Runway's estimate in each create answer teaches), and the spend reconciled with
//! what each task cost once it ended; `inputs` (what each kind of job sends — an image or two, a
//! text, an uploaded video) and `poll` (polling, downloading).

pub mod api;
mod faults;
mod inputs;
pub mod organization;
mod poll;
mod queue;
pub mod schedule;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api::Api;
pub use api::{
    ApiError, DATA_URI_MAX, DownloadError, Media, Task, TaskStatus, UPLOAD_MAX, request_body,
    retry_after,
};
use faults::TaskFailure;
use inputs::video_to_send;
use organization::{Asking, OrgHold, Organization};
use queue::Queue;
use schedule::PollClock;

use super::{
    Backend, Fault, Gate, HoldCause, JobCtx, Limits, Passage, Service, SlotGuard, Slots, Stop,
};
use crate::config::{BudgetSection, RunwaySection, Settings};
use crate::job::JobKind;
use crate::job::models::{Catalog, Models};
use crate::studio::ledger::prices::Book;
use crate::studio::ledger::spend::{self, Refusal, Settle, SpendLog};
use crate::studio::record::{Counted, TaskCost};
use crate::studio::spool::State;

/// An upload URI is valid for 24 h; reuse it only well within that.
const UPLOAD_REUSE_SECS: u64 = 23 * 3600;
/// The service, as the gate's messages name it.
const SERVICE: Service = Service {
    name: "the Runway API",
    key_variable: "RUNWAYML_API_SECRET",
};
/// Time a create request may still take to answer after a stop was asked for.
const SUBMIT_GRACE: Duration = Duration::from_millis(1500);
/// What the Runway backend takes, with the catalog of `models` (known without a key: `estimate`
/// prices against it).
pub fn limits(models: Arc<Models>) -> Limits {
    Limits {
        catalog: Catalog::Runway(models),
        max_bytes: Some(UPLOAD_MAX),
        max_pixels: crate::media::MAX_DECODE_PIXELS,
    }
}

/// The Runway backend.
#[derive(Debug)]
pub struct Runway {
    api: Arc<Api>,
    cfg: RunwaySection,
    /// What Runway last said of the organisation's balance and limits.
    org: Arc<Organization>,
    /// The task asking for it; stops with the backend.
    _asking: Option<Asking>,
    slots: Arc<Slots>,
    gate: Gate,
    queue: Queue,
    /// The studio's spend, counted before each create request.
    spend: Arc<SpendLog>,
    /// The prices Runway reported, learnt from each create answer.
    prices: Book,
    budget: BudgetSection,
    /// The catalog jobs are checked, sent and priced by.
    models: Arc<Models>,
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
        let api = Arc::new(Api::new(&cfg, key)?);
        let slots = Slots::new(cfg.max_in_flight);
        let org = Arc::new(Organization::default());
        let asking = organization::start(
            api.clone(),
            org.clone(),
            slots.clone(),
            cfg.in_flight,
            cfg.organization_every,
            settings.root.clone(),
        );
        Ok(Runway {
            api,
            org,
            _asking: asking,
            slots,
            gate: Gate::new(SERVICE, cfg.retry_min, cfg.retry_max),
            queue: Queue::default(),
            spend: Arc::new(SpendLog::new(&settings.root)),
            prices: Book::new(&settings.root),
            budget: settings.config.budget.clone(),
            models: settings.models.clone(),
            cfg,
        })
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
        let model = job.rec.spec.model.clone();
        loop {
            // A model whose daily generations are used up waits here, holding no slot.
            self.daily(job).await?;
            let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
            let slot = ticket
                .acquire_for(&model, &job.cancel)
                .await
                .ok_or(Stop::Cancelled)?;
            if let Some(slot) = self.create_step(job, &to_send, slot).await? {
                return Ok(slot);
            }
        }
    }

    /// Waits while the organisation's daily limit for the job's model is used up (a `run`'s job
    /// does not wait: [`Stop::Held`]). It gives up its place in the queue for a slot meanwhile,
    /// so the files of other models are claimed and go on.
    async fn daily(&self, job: &mut JobCtx) -> Result<(), Stop> {
        loop {
            let changed = self.org.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let Some(detail) = self.org.daily_hold(&job.rec.spec.model) else {
                return Ok(());
            };
            if !job.waits_for_budget {
                return Err(Stop::Held(detail));
            }
            drop(job.ticket.take());
            tokio::select! {
                () = changed => {}
                () = job.cancel.cancelled() => return Err(Stop::Cancelled),
            }
        }
    }

    /// With a slot: through the gate, the organisation's limits and the budget, then the create
    /// request. The slot back with the task submitted, or `None` when the model's daily limit
    /// was reached meanwhile (the slot is given up and the job waits again).
    async fn create_step(
        &self,
        job: &mut JobCtx,
        to_send: &[inputs::ToSend],
        slot: SlotGuard,
    ) -> Result<Option<SlotGuard>, Stop> {
        loop {
            let stamp = match self.gate.passage(&job.cancel, job.waits_for_budget).await {
                Passage::Go(stamp) => stamp,
                Passage::Cancelled => return Err(Stop::Cancelled),
                Passage::Budget(detail) => return Err(Stop::Held(detail)),
            };
            let input = match self.media(job, to_send).await? {
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
            // The organisation's own limits, as Runway last told them (nothing known: no hold).
            let price = spend::cost(&job.rec.spec, &self.budget.rates, &self.prices.prices());
            // Counted until its answer came (dropped then, or on any way out before the create).
            let admitted = match self.org.admit(&job.rec.spec.model, price) {
                Ok(admitted) => admitted,
                Err(OrgHold::Daily(_)) => {
                    self.gate.release_probe();
                    return Ok(None);
                }
                Err(OrgHold::Balance(detail)) => {
                    let wait = self.cfg.organization_every;
                    self.gate.trip(HoldCause::Balance, &detail, Some(wait));
                    if !job.waits_for_budget {
                        return Err(Stop::Held(detail));
                    }
                    continue;
                }
            };
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
                    let learnt = self.prices.prices();
                    let f = spend::never_fits(
                        spec,
                        endpoint,
                        budget,
                        (&self.models, &learnt),
                        (period, limit),
                        cost,
                    );
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
            let rules = self
                .models
                .find(&job.rec.spec.model)
                .and_then(|m| m.rules(job.rec.kind.endpoint()));
            let body = request_body(&job.rec.spec, &job.rec.kind, input, rules);
            let endpoint = job.rec.kind.endpoint().path();
            let result = tokio::select! {
                r = self.api.create(endpoint, &body) => Some(r),
                () = async { cancel.cancelled().await; tokio::time::sleep(SUBMIT_GRACE).await } => None,
            };
            drop(admitted);
            match result {
                // Stopped with the request unanswered: leave `submitting`; resume says so loudly.
                None => return Err(Stop::Cancelled),
                Some(Ok(created)) => {
                    let task_id = created.id;
                    self.gate.ok(stamp);
                    let counted = job.rec.counting.take();
                    job.rec.tasks.push(TaskCost {
                        task_id: task_id.clone(),
                        counted_credits: counted.as_ref().and_then(|c| c.credits),
                        counted_day: counted.map(|c| c.day).unwrap_or_default(),
                        estimated_credits: created.estimated,
                        cost_credits: None,
                        finished: false,
                        settled: false,
                    });
                    job.rec.state = State::Submitted;
                    job.rec.task_id = Some(task_id.clone());
                    job.rec.task_status = Some(TaskStatus::Pending.as_str().into());
                    job.rec.progress = None;
                    job.rec.submitted_at = Some(crate::studio::clock::now_rfc3339());
                    job.save().await?;
                    // A hint for the next request's price, after the record that matters.
                    if let Some(estimated) = created.estimated {
                        self.learn(job, estimated);
                    }
                    tracing::info!(job = %job.rec.id, file = %job.rec.source.name, kind = job.rec.kind.name(), task = %task_id, model = %job.rec.spec.model, "submitted");
                    return Ok(Some(slot));
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
        let Some(refusal) = spend::unpriced(&job.rec.spec, &self.budget, || self.prices.prices())
        else {
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
        let credits = spend::cost(&job.rec.spec, &self.budget.rates, &self.prices.prices());
        loop {
            let now = jiff::Zoned::now();
            let uncertain = job.rec.uncertain_submissions > 0;
            let entry = spend::entry(&job.rec.id, &job.rec.spec.model, credits, uncertain, &now);
            let day = entry.day.clone();
            // A small append under a lock held for microseconds, done in place like a save.
            match self.spend.charge(entry, &self.budget, &now) {
                Ok(Ok(_)) => {
                    // Saved with the `submitting` state that follows, before the request.
                    job.rec.counting = Some(Counted { credits, day });
                    return Ok(Ok(()));
                }
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

    /// Learns the model's price from a create answer's estimate (a failure to write it costs only
    /// the hint: a debug line).
    fn learn(&self, job: &JobCtx, estimated: f64) {
        let spec = &job.rec.spec;
        let today = spend::day_of(&jiff::Zoned::now());
        if let Err(e) = self
            .prices
            .learn(&spec.model, estimated, spec.duration, &today)
        {
            tracing::debug!(job = %job.rec.id, error = %e, "cannot write the learnt prices in .dropreel/");
        }
    }

    /// Records what an ended task cost (`task`: its last answer) in the job's record, saved, then
    /// reconciles the spend log with it ([`Runway::settle`]). A task whose answer has no usable
    /// `cost` keeps its estimate, with one warning.
    pub(super) async fn task_ended(
        &self,
        job: &mut JobCtx,
        task_id: &str,
        task: &Task,
    ) -> Result<(), Stop> {
        let at = match job.rec.tasks.iter().position(|t| t.task_id == task_id) {
            Some(at) => at,
            None => {
                // Sent by a version that kept no prices: what its line counted is not known, so
                // there is nothing to reconcile it with.
                job.rec.tasks.push(TaskCost {
                    task_id: task_id.to_string(),
                    counted_credits: None,
                    counted_day: String::new(),
                    estimated_credits: None,
                    cost_credits: None,
                    finished: false,
                    settled: true,
                });
                job.rec.tasks.len() - 1
            }
        };
        let t = &mut job.rec.tasks[at];
        t.finished = true;
        t.cost_credits = task.cost;
        t.estimated_credits = t.estimated_credits.or(task.estimated);
        if task.cost.is_none() {
            let stands = t
                .charged()
                .map_or_else(|| "no price".to_string(), |c| format!("{c} credits"));
            tracing::warn!(job = %job.rec.id, file = %job.rec.source.name, task = %task_id,
                "Runway's answer for the ended task has no usable cost (cost.credits missing or not a number); its estimate stands: {stands}");
        }
        // The record first: it is the truth the reconciliation follows.
        job.save().await?;
        self.settle(job).await
    }

    /// Writes the reconciling line of every ended task of the job the spend log does not agree
    /// with yet, then records that it did. A line written before a crash is not written again.
    pub(super) async fn settle(&self, job: &mut JobCtx) -> Result<(), Stop> {
        let mut changed = false;
        for i in 0..job.rec.tasks.len() {
            let t = &job.rec.tasks[i];
            if !t.finished || t.settled {
                continue;
            }
            if let Some(charged) = t.charged() {
                loop {
                    let t = &job.rec.tasks[i];
                    let s = Settle {
                        job: &job.rec.id,
                        model: &job.rec.spec.model,
                        task: &t.task_id,
                        counted: t.counted_credits,
                        day: &t.counted_day,
                        charged,
                    };
                    match self.spend.settle(&s, &self.budget, &jiff::Zoned::now()) {
                        Ok(written) => {
                            if written {
                                tracing::debug!(job = %job.rec.id, task = %s.task, charged, counted = ?s.counted, "spend reconciled with what Runway charged");
                            }
                            break;
                        }
                        Err(e) => {
                            let d = job.on_fault(
                                Fault::Disk(e),
                                "reconciling the spend in .dropreel/spend/",
                                None,
                            )?;
                            job.pause(d).await?;
                        }
                    }
                }
            }
            job.rec.tasks[i].settled = true;
            changed = true;
        }
        if changed {
            job.save().await?;
        }
        Ok(())
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
        limits(self.models.clone())
    }

    fn holds(&self, model: &str) -> Option<String> {
        self.org.daily_hold(model)
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        // A resumed task is already running on the server: it occupies a slot at once.
        let mut slot =
            (job.rec.state == State::Submitted).then(|| self.slots.take_now(&job.rec.spec.model));
        let mut fresh = false;
        loop {
            // A task whose end was recorded but not yet reconciled (a stop or a crash between).
            if job.rec.tasks.iter().any(|t| t.finished && !t.settled) {
                self.settle(job).await?;
            }
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
