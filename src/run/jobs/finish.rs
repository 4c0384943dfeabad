//! The end of a job: its posters made, its videos identified for the dedupe ledger, its files
//! moved into `done/` with `result.json` (and the delivery recorded in the ledger) — or into
//! `failed/` with `error.txt`, the one route every failure takes — and its end told to the
//! metrics, the dashboard and the outbox.

use crate::backend::JobCtx;
use crate::observe::events::Event;
use crate::observe::live::Live;
use crate::observe::notify::Outbox;
use crate::studio::ledger::dedupe::{self, Found, Ledger, Placed};
use crate::studio::report;
use crate::studio::spool::{Failure, JobRecord, Spool, State};

use super::{End, hash_source};

/// Tells how the job ended — the metrics, the dashboard (when one reads the board) and the outbox
/// (when anyone listens) — when it ended in `done/` or `failed/`.
pub(super) fn tell(
    outbox: Option<&Outbox>,
    live: &Live,
    spool: &Spool,
    rec: &JobRecord,
    end: &End,
) {
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

/// Warns loudly when the image changed after the job started (its writer kept writing into the
/// claimed file): the video was made from bytes that `done/` will not hold.
pub(super) async fn check_source_unchanged(spool: &Spool, rec: &mut JobRecord) {
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
pub(super) async fn make_posters(ctx: &JobCtx) {
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
pub(super) async fn identify_videos(
    ctx: &JobCtx,
    reused: &[Found],
) -> Vec<(u32, dedupe::Identity)> {
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
pub(super) fn deliver(
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
pub(super) fn fail(ctx: &mut JobCtx, failure: Failure) -> End {
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
