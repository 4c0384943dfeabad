//! A job's use of the dedupe ledger before it makes anything: reused whole from an identical
//! earlier delivery still in `done/` (no request, no cost), its takes that an earlier delivery
//! still has put in place as its own, a wait for an identical job in flight, or a failure at once
//! when an identical job was refused lately for good.

use std::time::Duration;

use crate::backend::{Fault, JobCtx, Stop};
use crate::studio::ledger::dedupe::{self, Found, Ledger, Look};
use crate::studio::record::ReusedFrom;
use crate::studio::spool::{Failure, State};

/// How often a job waiting for an identical one in flight looks at the ledger again.
const LEDGER_WAIT: Duration = Duration::from_millis(500);

/// What the dedupe ledger gave a job.
pub(super) enum Earlier {
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
pub(super) async fn reuse(
    ledger: &Ledger,
    backend: &str,
    ctx: &mut JobCtx,
) -> Result<Earlier, Stop> {
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
                tasks: Vec::new(),
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
pub(super) async fn place_takes(
    ledger: &Ledger,
    ctx: &mut JobCtx,
    found: &[Found],
) -> Result<(), Stop> {
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
