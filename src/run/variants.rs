//! Several takes of one input (`variants: N`): each take is driven by the backend like a job of
//! its own — its own record (`processing/<id>/variant-<n>.json`, saved at every step, so a stop or
//! a kill resumes each take where it was and never submits one twice), its own seed (S, S+1, … from
//! `seed: S`, else a random one, recorded before anything is sent), its own slot and video
//! (`.out-v<n>.mp4`). The job is made when at least one take is: a paid video is never thrown away,
//! and the takes that failed are listed with their reason. Only when every take failed does the
//! job fail. A take the budget holds waits for it under `watch`; in a `run` it is listed as held
//! (not failed) and the takes made are delivered — or, when none was, the job waits as a whole. A
//! take an identical earlier job delivered, still in `done/`, is put in place before (see
//! [`reused_take`]) and not made again.

use std::sync::Arc;

use crate::backend::{Backend, JobCtx, Stop};
use crate::job::Motion;
use crate::job::models::SEED_MAX;
use crate::studio::record::{JobRecord, ReusedFrom, Take};
use crate::studio::spool::{Failure, State};

/// Makes every take of the job in `ctx` (resuming those begun before a stop); `Ok` when at least
/// one made a video (`ctx.rec.takes` then says how each ended).
pub async fn make<B: Backend>(backend: &Arc<B>, ctx: &mut JobCtx) -> Result<(), Stop> {
    if ctx.rec.state == State::Downloaded {
        return Ok(());
    }
    let n = ctx.rec.spec.takes();
    let mut takes = Vec::new();
    for i in 1..=n {
        let rec = match ctx.spool.load_variant(&ctx.rec.id, i) {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                let rec = new_take(&ctx.rec, i, backend.limits().catalog);
                // The seed is on disk before the take can be sent.
                let mut c = take_ctx(ctx, rec.clone());
                c.save().await?;
                rec
            }
            Err(e) => {
                // Damaged: whether it was sent cannot be known, so it is not sent again.
                let mut rec = new_take(&ctx.rec, i, backend.limits().catalog);
                rec.state = State::Failed;
                rec.failure = Some(Failure {
                    message: format!("its state file variant-{i}.json cannot be read ({e})"),
                    advice: "check Runway's dashboard for its task; move the file back into inbox/ to make it again".into(),
                    api: None,
                });
                rec
            }
        };
        takes.push(rec);
    }
    let mut ctxs: Vec<JobCtx> = takes.into_iter().map(|r| take_ctx(ctx, r)).collect();
    // The job's place in the queue goes to its first take still to make (a reused take has its
    // video already).
    if let Some(c) = ctxs.iter_mut().find(|c| c.rec.state != State::Downloaded) {
        c.ticket = ctx.ticket.take();
    }
    let runs = ctxs.iter_mut().map(|c| {
        let backend = backend.clone();
        async move {
            let outcome = match c.rec.state {
                State::Failed => Err(Stop::Failed(c.rec.failure_or_default())),
                _ => backend.produce(c).await,
            };
            if let Err(Stop::Failed(f)) = &outcome
                && c.rec.state != State::Failed
            {
                // Persisted, so a resume never makes a failed take again.
                c.rec.state = State::Failed;
                c.rec.failure = Some(f.clone());
                c.save().await?;
                tracing::warn!(job = %c.rec.id, file = %c.rec.source.name, take = c.rec.variant, reason = %f.message, "take failed");
            }
            match outcome {
                Err(Stop::Cancelled) => Err(Stop::Cancelled),
                // Held by the budget, not failed: its record stays as it was (never sent again
                // by this job once it is delivered).
                Err(Stop::Held(why)) => Ok(Some(why)),
                _ => Ok(None),
            }
        }
    });
    let ended = futures_util::future::join_all(runs).await;
    if ended.iter().any(Result::is_err) {
        return Err(Stop::Cancelled);
    }
    let held: Vec<Option<String>> = ended.into_iter().map(|e| e.ok().flatten()).collect();
    ctx.rec.takes = ctxs
        .iter()
        .zip(held)
        .map(|(c, held)| Take {
            held,
            ..take_of(&c.rec)
        })
        .collect();
    let made: u64 = ctx.rec.takes.iter().filter_map(|t| t.output_bytes).sum();
    let r = &mut ctx.rec;
    r.submissions = r.takes.iter().map(|t| t.submissions).sum();
    r.uncertain_submissions = r.takes.iter().map(|t| t.uncertain_submissions).sum();
    if r.takes.iter().all(|t| t.output_bytes.is_none()) {
        let held = r.takes.iter().find_map(|t| t.held.clone());
        let failure = all_failed(&r.takes);
        r.takes.clear();
        // Refused for good when every take was (the dedupe ledger remembers it).
        r.refused_for_good = ctxs
            .iter()
            .map(|c| c.rec.refused_for_good.clone())
            .collect::<Option<Vec<String>>>()
            .and_then(|codes| codes.into_iter().next());
        // Nothing made and some take held: the job waits for the budget as a whole.
        return Err(held.map_or(Stop::Failed(failure), Stop::Held));
    }
    r.output_bytes = Some(made);
    r.finished_at = Some(crate::studio::clock::now_rfc3339());
    r.state = State::Downloaded;
    ctx.save().await
}

/// A context driving take `rec` of the job in `ctx` (the same spool, stop token, retry policy and
/// way with the budget).
fn take_ctx(ctx: &JobCtx, rec: JobRecord) -> JobCtx {
    let mut take = JobCtx::new(ctx.spool.clone(), rec, ctx.cancel.clone(), None, ctx.retry);
    take.waits_for_budget = ctx.waits_for_budget;
    take
}

/// Take `n` of `job`: the job's record as one task's.
fn take_of_job(job: &JobRecord, n: u32) -> JobRecord {
    let mut rec = job.clone();
    rec.variant = Some(n);
    rec.takes.clear();
    rec.dedupe_key = None;
    rec.delivery = None;
    rec.spec.variants = 1;
    rec
}

/// Take `n` of `job` delivered from an earlier identical job's take (its video already in the job
/// folder as the take's output, `bytes` long): made, with that take's seed and task, at no cost.
pub fn reused_take(
    job: &JobRecord,
    n: u32,
    seed: Option<u64>,
    bytes: u64,
    from: ReusedFrom,
) -> JobRecord {
    let mut rec = take_of_job(job, n);
    rec.spec.seed = seed;
    rec.task_id = from.task_ids.first().cloned();
    rec.reused_from = Some(from);
    rec.output_bytes = Some(bytes);
    rec.finished_at = Some(crate::studio::clock::now_rfc3339());
    rec.state = State::Downloaded;
    rec
}

/// Take `n` of `job`, not begun: one task's settings, with its own seed (and, for the local
/// renderer, which has no seed to vary, its own camera move).
fn new_take(job: &JobRecord, n: u32, catalog: crate::job::models::Catalog) -> JobRecord {
    let mut rec = take_of_job(job, n);
    let takes_seed = catalog
        .find(&job.spec.model)
        .and_then(|m| m.rules(job.kind.endpoint()))
        .is_some_and(|r| r.seed);
    rec.spec.seed = match job.spec.seed {
        Some(s) => Some((s + u64::from(n) - 1) % (SEED_MAX + 1)),
        None if takes_seed => Some(fastrand::u64(0..=SEED_MAX)),
        None => None,
    };
    if catalog.renders_locally()
        && let Some(base) = job.spec.motion.as_deref().and_then(Motion::parse)
    {
        let at = Motion::ALL.iter().position(|m| *m == base).unwrap_or(0);
        let m = Motion::ALL[(at + n as usize - 1) % Motion::ALL.len()];
        rec.spec.motion = Some(m.name().to_string());
    }
    rec
}

/// How a take ended, for the job's record and `result.json`.
fn take_of(rec: &JobRecord) -> Take {
    let made = rec.state == State::Downloaded;
    Take {
        n: rec.variant.unwrap_or(1),
        seed: rec.spec.seed,
        task_id: rec.task_id.clone(),
        output_bytes: if made { rec.output_bytes } else { None },
        submissions: rec.submissions,
        uncertain_submissions: rec.uncertain_submissions,
        failure: if made { None } else { rec.failure.clone() },
        held: None,
        render: rec.render.clone(),
        reused_from: rec.reused_from.clone(),
        tasks: rec.tasks.clone(),
    }
}

/// The failure of a job whose every take failed: each take's reason.
fn all_failed(takes: &[Take]) -> Failure {
    let reasons: Vec<String> = takes
        .iter()
        .map(|t| {
            let why = t
                .failure
                .as_ref()
                .map_or("no reason recorded", |f| f.message.as_str());
            format!("take {}: {why}", t.n)
        })
        .collect();
    let first = takes.iter().find_map(|t| t.failure.clone());
    Failure {
        message: format!(
            "all {} variants failed ({})",
            takes.len(),
            reasons.join("; ")
        ),
        advice: first.as_ref().map_or_else(
            || "move the file back into inbox/ to try again".into(),
            |f| f.advice.clone(),
        ),
        api: first.and_then(|f| f.api),
    }
}
