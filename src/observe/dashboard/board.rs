//! What the page is sent: one JSON state (hold, budget, the organisation's balance and limits at
//! Runway, totals, jobs in flight, waiting files and
//! those not whole yet, results, failures), at `/api/state` and as a server-sent event each time the live state changes
//! (at most a few times a second; nothing is sent while nothing changes). Also the results and
//! failures found in `done/` and `failed/` when the dashboard starts (a result only with videos
//! that are regular files beside its `result.json`, named as dropreel names them).

use std::convert::Infallible;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};

use super::Shared;
use crate::observe::live::{FailedView, KEPT, ResultView};
use crate::studio::clock;
use crate::studio::layout::{self, DONE, FAILED};
use crate::studio::report::{ErrorText, ResultFile};

/// Changes closer together than this are sent as one.
const COALESCE: Duration = Duration::from_millis(150);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

pub(super) async fn state(State(app): State<Shared>) -> Json<Value> {
    Json(build(&app).await)
}

/// The state now, with the budget read from the spend log and failures no longer in `failed/`
/// (retried by hand, say) dropped.
async fn build(app: &Shared) -> Value {
    let app = app.clone();
    tokio::task::spawn_blocking(move || build_blocking(&app))
        .await
        .unwrap_or(Value::Null)
}

fn build_blocking(app: &super::App) -> Value {
    let snap = app.live.snapshot();
    let mut board = app.live.board();
    board.failed.retain(|f| {
        let there = app.root.join(&f.error_file).exists();
        if !there {
            app.live.forget_failed(&f.error_file);
        }
        there
    });
    let spend = app.spend.totals(&jiff::Zoned::now()).ok();
    let epoch_ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let jobs: Vec<Value> = snap
        .jobs
        .iter()
        .map(|(id, j)| {
            json!({
                "id": id, "name": j.name, "kind": j.kind, "step": j.step,
                "progress": j.progress, "started_ms": epoch_ms(j.since_wall),
            })
        })
        .collect();
    let results: Vec<Value> = board.results.iter().map(result_json).collect();
    json!({
        "backend": app.backend,
        "hold": board.hold,
        "budget": {
            "today": spend.map(|s| s.today),
            "month": spend.map(|s| s.month),
            "daily_limit": app.budget.daily_credits,
            "monthly_limit": app.budget.monthly_credits,
        },
        "organization": crate::backend::runway::organization::Snapshot::read(&app.root)
            .map(|(o, at)| o.to_board(&at, &app.models)),
        "totals": {
            "done": snap.done, "failed": snap.failed, "waiting": snap.waiting,
            "eta_s": snap.eta.map(|d| d.as_secs()),
        },
        "jobs": jobs,
        "waiting": board.waiting,
        "not_whole": board.not_whole,
        "results": results,
        "failed": board.failed,
        "max_upload": app.max_upload,
        "now_ms": epoch_ms(SystemTime::now()),
    })
}

/// A result as the page gets it: its videos and posters by URL (by job id and file name).
fn result_json(r: &ResultView) -> Value {
    let url = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path);
        format!("/media/{}/{}", encode(&r.job), encode(name))
    };
    let takes: Vec<Value> = r
        .videos
        .iter()
        .zip(&r.posters)
        .map(|(v, p)| {
            json!({
                "name": v.rsplit('/').next().unwrap_or(v),
                "video": url(v),
                "poster": p.as_deref().map(url),
            })
        })
        .collect();
    json!({
        "job": r.job, "file": r.file, "kind": r.kind, "model": r.model, "prompt": r.prompt,
        "credits": r.credits, "at": r.at, "takes": takes,
    })
}

/// Percent-encodes everything but unreserved characters (a path segment).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The event stream: the state at once, then after each change.
pub(super) async fn events(
    State(app): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = app.live.changes();
    let stream = futures_util::stream::unfold(
        (app, changes, None::<String>),
        |(app, mut changes, last)| async move {
            loop {
                if last.is_some() {
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() { return None },
                        () = app.stop.cancelled() => return None,
                    }
                    // Let a burst of changes settle into one message.
                    tokio::select! {
                        () = tokio::time::sleep(COALESCE) => {}
                        () = app.stop.cancelled() => return None,
                    }
                }
                changes.borrow_and_update();
                let text = build(&app).await.to_string();
                if last.as_ref() == Some(&text) {
                    continue;
                }
                let event = Event::default().event("state").data(text.clone());
                return Some((Ok(event), (app, changes, Some(text))));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The latest results in `done/` and failures in `failed/`, newest first (read at start).
pub(super) fn found_on_disk(root: &Path) -> (Vec<ResultView>, Vec<FailedView>) {
    let results = newest(root, DONE, |n| layout::result_stem(n).is_some())
        .into_iter()
        .filter_map(|(rel, at)| result_from_disk(root, &rel, at))
        .collect();
    let failed = newest(root, FAILED, |n| layout::error_stem(n).is_some())
        .into_iter()
        .filter_map(|(rel, at)| failed_from_disk(root, &rel, at))
        .collect();
    (results, failed)
}

/// The newest [`KEPT`] files under `root/top` whose name is `wanted` (paths under the studio,
/// with their time), newest first; dot folders and symlinks are not followed.
fn newest(root: &Path, top: &str, wanted: fn(&str) -> bool) -> Vec<(String, SystemTime)> {
    let mut found: Vec<(String, SystemTime)> = walkdir::WalkDir::new(root.join(top))
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_str()?;
            if !wanted(name) {
                return None;
            }
            let rel = e
                .path()
                .strip_prefix(root)
                .ok()?
                .to_str()?
                .replace('\\', "/");
            let at = e.metadata().ok()?.modified().ok()?;
            Some((rel, at))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    found.truncate(KEPT);
    found
}

/// A result from its `result.json` (`rel`, a path under the studio). What it says is not
/// trusted: a take's file must be a plain `.mp4` name in its folder, and a regular file.
fn result_from_disk(root: &Path, rel: &str, at: SystemTime) -> Option<ResultView> {
    let r = ResultFile::read(&root.join(rel))?;
    let (dir, name) = rel.rsplit_once('/')?;
    let stem = layout::result_stem(name)?;
    let names = layout::Delivered {
        folder: dir.to_string(),
        stem: stem.to_string(),
        output: r.output(),
        ext: r.video_ext(),
        takes: None,
    };
    let mut videos = Vec::new();
    let mut posters = Vec::new();
    match &r.variants {
        Some(takes) => {
            for t in takes {
                // Whatever result.json says: only a plain name of a video beside it.
                let Some(file) = t.file.as_deref().filter(|_| t.n > 0) else {
                    continue;
                };
                if !layout::is_video_name(file) || !super::actions::servable_name(file) {
                    continue;
                }
                videos.push(format!("{dir}/{file}"));
                posters.push(format!("{dir}/{}", names.poster_name(Some(t.n))));
            }
        }
        None => {
            videos.extend(names.videos());
            posters.extend(names.posters());
        }
    }
    // Regular files only, never through a link (what media serves).
    let regular = |rel: &str| {
        rel.rsplit('/')
            .next()
            .is_some_and(super::actions::servable_name)
            && std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.is_file())
    };
    let keep: Vec<usize> = (0..videos.len()).filter(|&i| regular(&videos[i])).collect();
    if keep.is_empty() {
        return None;
    }
    Some(ResultView {
        file: if r.folder.is_empty() {
            r.source.clone()
        } else {
            format!("{}/{}", r.folder, r.source)
        },
        kind: if r.kind.is_empty() {
            "image".into()
        } else {
            r.kind.clone()
        },
        model: Some(r.model.clone()).filter(|m| !m.is_empty() && r.backend != "local"),
        prompt: Some(r.prompt.clone()).filter(|p| !p.is_empty()),
        credits: r.credits.as_ref().and_then(serde_json::Number::as_f64),
        videos: keep.iter().map(|&i| videos[i].clone()).collect(),
        posters: keep
            .iter()
            .map(|&i| Some(posters[i].clone()).filter(|p| regular(p)))
            .collect(),
        at: r.delivered_at.unwrap_or_else(|| clock::rfc3339(at)),
        job: r.job_id,
    })
}

/// A failure from its `error.txt` (`rel`, a path under the studio).
fn failed_from_disk(root: &Path, rel: &str, at: SystemTime) -> Option<FailedView> {
    let text = std::fs::read_to_string(root.join(rel)).ok()?;
    let (dir, name) = rel.rsplit_once('/')?;
    let stem = layout::error_stem(name)?;
    let said = ErrorText::read(&text);
    let error = said.summary();
    let job = said.job.unwrap_or_else(|| rel.to_string());
    let folder = dir.split_once('/').map_or("", |(_, f)| f);
    let failed = FailedView {
        job,
        file: String::new(),
        error,
        error_file: rel.to_string(),
        at: clock::rfc3339(at),
    };
    // The job's own file beside it, when there is one.
    let file = std::fs::read_dir(root.join(dir))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| layout::split_name(n).0 == stem && crate::intake::kind_of(n).is_job())
        .map_or_else(
            || failed.retry_name().to_string(),
            |n| match folder {
                "" => n,
                f => format!("{f}/{n}"),
            },
        );
    Some(FailedView { file, ..failed })
}
