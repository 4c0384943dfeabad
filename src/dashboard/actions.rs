//! What the page can do: fetch a result's video or poster (by job id and a name the job
//! delivered — the path comes from the live state, never from the request), put a failed job back
//! into `inbox/` (as `dropreel retry` does), and upload a file into `inbox/` (streamed under a dot
//! name the intake ignores, size-capped, then linked to its name only if that name is free).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;

use super::Shared;
use crate::spool::{DONE, INBOX};

/// Uploads in progress are written under this prefix (a dot name: the intake never looks at it).
const UPLOAD_PREFIX: &str = ".dropreel-upload-";
/// An upload's temp file older than this was left by a stop: removed at the next start.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `GET /media/{job}/{name}`: a video or poster of a result the dashboard shows.
pub(super) async fn media(
    State(app): State<Shared>,
    UrlPath((job, name)): UrlPath<(String, String)>,
    request: Request,
) -> Response {
    let path = app
        .live
        .result_file(&job, &name)
        .filter(|p| p.starts_with(&format!("{DONE}/")));
    let Some(path) = path else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    // ServeFile answers range requests (seeking in the video) and sets the type.
    match tower_http::services::ServeFile::new(app.root.join(path))
        .oneshot(request)
        .await
    {
        Ok(r) => r.into_response(),
        Err(e) => match e {},
    }
}

/// `POST /api/retry/{job}`: the failed job back into `inbox/`.
pub(super) async fn retry(State(app): State<Shared>, UrlPath(job): UrlPath<String>) -> Response {
    let Some(failed) = app.live.failure(&job) else {
        return answer(StatusCode::NOT_FOUND, "no such failed job");
    };
    let root = app.root.clone();
    let name = failed.retry_name().to_string();
    let done = tokio::task::spawn_blocking(move || crate::retry::retry(&root, &[name])).await;
    let out = match done {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot put {} back: {e}", failed.file),
            );
        }
        Err(e) => return answer(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(files) = out.moved.first() {
        app.live.forget_failed(&failed.error_file);
        tracing::info!(file = %failed.file, "put back into inbox/ from the dashboard");
        return Json(json!({ "moved": files })).into_response();
    }
    if let Some((_, why)) = out.skipped.first() {
        return answer(StatusCode::CONFLICT, why.clone());
    }
    app.live.forget_failed(&failed.error_file);
    answer(
        StatusCode::NOT_FOUND,
        format!("{} is no longer in failed/", failed.file),
    )
}

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    name: String,
}

/// `POST /api/upload?name=…`: the body becomes `inbox/<name>`.
pub(super) async fn upload(
    State(app): State<Shared>,
    Query(q): Query<UploadQuery>,
    request: Request,
) -> Response {
    // A name that points elsewhere (a folder, `..`, an absolute path) names no place in inbox/.
    if q.name.contains(['/', '\\']) || q.name == ".." || q.name == "." {
        return answer(
            StatusCode::NOT_FOUND,
            "uploads go into inbox/ itself: give a plain file name",
        );
    }
    if let Err(why) = check_name(&q.name) {
        return answer(StatusCode::BAD_REQUEST, why);
    }
    let cap = app.max_upload;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} is larger than the {} MiB the dashboard takes (ui.max_upload_mb); copy it into inbox/ instead",
                q.name,
                cap / (1024 * 1024)
            ),
        )
    };
    if declared.is_some_and(|n| n > cap) {
        return too_big();
    }
    let inbox = app.root.join(INBOX);
    let target = inbox.join(&q.name);
    if target.exists() {
        return taken(&q.name);
    }
    let temp = inbox.join(format!("{UPLOAD_PREFIX}{:016x}.part", fastrand::u64(..)));
    match receive(request.into_body(), &temp, cap).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return too_big();
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return answer(
                StatusCode::BAD_REQUEST,
                format!(
                    "the upload of {} did not arrive whole ({e}); try again",
                    q.name
                ),
            );
        }
    }
    let placed = tokio::task::spawn_blocking({
        let (temp, target) = (temp.clone(), target.clone());
        move || place(&temp, &target)
    })
    .await
    .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
    let _ = tokio::fs::remove_file(&temp).await;
    match placed {
        Ok(()) => {
            tracing::info!(file = %q.name, "uploaded into inbox/ from the dashboard");
            (StatusCode::CREATED, Json(json!({ "file": q.name }))).into_response()
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => taken(&q.name),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write {} into inbox/: {e}", q.name),
        ),
    }
}

fn taken(name: &str) -> Response {
    answer(
        StatusCode::CONFLICT,
        format!("inbox/ already holds a file named {name}; rename yours and drop it again"),
    )
}

/// A name the upload may take: a plain file name of a kind dropreel reads.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 200
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || name == ".."
    {
        return Err(format!(
            "{} is not a file name the dashboard takes (no folders, at most 200 bytes)",
            crate::shown(name)
        ));
    }
    if crate::intake::is_ignored(name) {
        return Err(format!(
            "{} is a name dropreel ignores (hidden or temporary); rename it",
            crate::shown(name)
        ));
    }
    if crate::intake::kind_of(name) == crate::intake::Kind::Other {
        return Err(format!(
            "{} is not an image, a .txt, a video or a sidecar .yaml",
            crate::shown(name)
        ));
    }
    Ok(())
}

/// Streams `body` into `temp`, synced; `false` when it passes `cap` bytes.
async fn receive(body: Body, temp: &Path, cap: u64) -> io::Result<bool> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .await?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(io::Error::other)?;
        written += chunk.len() as u64;
        if written > cap {
            return Ok(false);
        }
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    Ok(true)
}

/// Gives `temp` the name `target`, never replacing a file: a hard link fails when the name is
/// taken; where links are not supported, a rename after a look (a file appearing between the
/// two is the only race left).
fn place(temp: &Path, target: &Path) -> io::Result<()> {
    match std::fs::hard_link(temp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if target.exists() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => std::fs::rename(temp, target),
    }
}

/// Removes upload temp files a stop left in `inbox/`.
pub(super) fn clear_stale_uploads(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(INBOX)) else {
        return;
    };
    let stale: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_UPLOAD)
        })
        .map(|e| e.path())
        .collect();
    for path in stale {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names() {
        for ok in ["cat.png", "my clip.mp4", "idée.txt", "cat.yaml"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x.png",
            "a/b.png",
            "a\\b.png",
            ".hidden.png",
            "x.png.part",
            "evil\n.png",
            "notes.pdf",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placing_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let (temp, target) = (d.path().join(".t"), d.path().join("cat.png"));
        std::fs::write(&temp, b"new").unwrap();
        std::fs::write(&target, b"old").unwrap();
        assert_eq!(
            place(&temp, &target).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        std::fs::remove_file(&target).unwrap();
        place(&temp, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }
}
