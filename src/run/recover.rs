//! Recovery: the jobs a stop, a crash or a dead instance left in `processing/`, taken over (their
//! lease adopted) and handed back to the pipeline at the step they reached. A job folder without a
//! readable `job.json` is rebuilt from the files it holds; what a claim in progress left behind is
//! removed once nobody can still be claiming into it; a job a crash caught on its way back to
//! `inbox/` (the budget held it) is put back there, never resumed.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::backend::Limits;
use crate::config::Settings;
use crate::intake;
use crate::run::admit::{NotYet, check_files};
use crate::studio::source::Source;
use crate::studio::spool::{self, Failure, JobRecord, Spool, State};

/// Jobs left in `processing/` by a stop or crash, ready to continue where they were.
pub fn resume(
    spool: &Spool,
    settings: &Settings,
    backend: &str,
    limits: &Limits,
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
        if !spool.holds_job(&id) {
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
            Ok(mut rec) if rec.returning => finish_return(spool, settings, &mut rec),
            Ok(rec) => {
                match rec.state {
                    State::Submitting => tracing::warn!(
                        job = %id, file = %rec.source.name,
                        "this job was stopped while its create request was on the wire: Runway may or may not have \
                         created a task. It is submitted again; result.json will note a possible double charge"
                    ),
                    State::Submitted => {
                        tracing::info!(job = %id, file = %rec.source.name, task = ?rec.task_id, "resuming: polling the task already submitted")
                    }
                    s => tracing::info!(job = %id, file = %rec.source.name, state = ?s, "resuming"),
                }
                out.push(rec);
            }
            Err(e) => match rebuild(spool, settings, backend, limits, &id, &e) {
                Some(rec) => out.push(rec),
                None => continue,
            },
        }
    }
    out
}

/// Finishes putting a job back into `inbox/` that a stop or a crash interrupted (some of its files
/// may be there already). One that still cannot go back stays in `processing/`, saying why.
fn finish_return(spool: &Spool, settings: &Settings, rec: &mut JobRecord) {
    let ledger = crate::studio::ledger::dedupe::Ledger::new(&settings.root);
    match crate::run::admit::unclaim(spool, &ledger, rec) {
        Ok(files) => {
            tracing::info!(job = %rec.id, file = %rec.source.name, back = %files.join(", "), "finished putting a job held by the budget back into inbox/");
        }
        Err(e) => {
            tracing::warn!(job = %rec.id, file = %rec.source.name, error = %e, "a job held by the budget was on its way back into inbox/ and cannot get there; it stays in processing/ until its files can go back");
            spool.release(&rec.id);
        }
    }
}

/// Removes a job folder with no job in it — a lease at most, and other programs' files such as
/// `.DS_Store` or `Thumbs.db` (Finder or Explorer looked into it) — once nobody can still be
/// claiming into it (see [`crate::studio::lease::Owner::claim_abandoned`]). Anything else keeps it.
fn remove_if_abandoned(spool: &Spool, dir: &std::path::Path) {
    let abandoned = spool.owner().claim_abandoned(dir);
    if !abandoned {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let file = e.file_type().is_ok_and(|t| t.is_file());
            if file
                && (name.starts_with(crate::studio::lease::LEASE_FILE) || intake::is_ignored(&name))
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
    limits: &Limits,
    id: &str,
    err: &std::io::Error,
) -> Option<JobRecord> {
    let dir = spool.job_dir(id);
    let state_path = dir.join(crate::studio::layout::STATE_FILE);
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
        .find(|n| intake::kind_of(n).is_job() && !intake::is_ignored(n));
    let Some(image) = image else {
        tracing::error!(job = %id, "the job folder holds no image and no readable state; left alone in processing/");
        return None;
    };
    let stem = crate::studio::layout::split_name(image).0;
    let sidecar = names
        .iter()
        .find(|n| {
            intake::kind_of(n) == intake::Kind::Sidecar
                && crate::studio::layout::split_name(n).0 == stem
        })
        .cloned();
    let last_frame = names
        .iter()
        .find(|n| {
            intake::kind_of(n) == intake::Kind::LastFrame
                && intake::last_frame_key(n) == intake::stem_key(image)
        })
        .cloned();
    match check_files(
        &dir,
        settings,
        limits,
        image,
        sidecar.as_deref(),
        last_frame.as_deref(),
    ) {
        Ok(a) => {
            let mut rec = JobRecord::new(
                id.to_string(),
                Source::in_inbox(image),
                sidecar,
                a.info,
                a.spec,
                backend,
            );
            rec.kind = a.kind;
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
            // Failed from the start: the job task moves it to failed/ like any other.
            let mut rec = JobRecord::failed_at_once(
                id.to_string(),
                Source::in_inbox(image),
                sidecar,
                backend,
                f,
            );
            // Its last keyframe goes to failed/ with it.
            if intake::kind_of(image) == intake::Kind::Text {
                rec.kind = crate::job::JobKind::Text;
            } else {
                rec.kind = crate::job::JobKind::Image { last_frame };
            }
            spool.save(&rec).ok()?;
            Some(rec)
        }
    }
}
