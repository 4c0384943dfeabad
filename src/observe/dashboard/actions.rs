//! What the page can do: fetch a result's video or poster (by job id and a name the job
//! delivered — the path comes from the live state, never from the request; the file is opened
//! without following links and served only if it is a regular file under `done/`), put a failed job back
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
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::Shared;
use crate::studio::layout::{DONE, INBOX};

/// Uploads in progress are written under this prefix (a dot name: the intake never looks at it).
const UPLOAD_PREFIX: &str = ".dropreel-upload-";
/// An upload's temp file older than this was left by a stop: removed at the next start.
const STALE_UPLOAD: Duration = Duration::from_secs(3600);

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `GET /media/{job}/{name}`: a video or poster of a result the dashboard shows. What `done/`
/// holds is not trusted (a sync peer or another user may write there): the file is opened
/// without following a link, must be a regular file whose folder, resolved, lies under `done/`,
/// and is served from the handle that was checked, with `Range` answered (the player seeks).
pub(super) async fn media(
    State(app): State<Shared>,
    UrlPath((job, name)): UrlPath<(String, String)>,
    request: Request,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(rel) = app.live.result_file(&job, &name) else {
        return not_found();
    };
    let root = app.root.clone();
    let opened = {
        let rel = rel.clone();
        tokio::task::spawn_blocking(move || open_in_done(&root, &rel)).await
    };
    match opened {
        Ok(Ok((file, meta))) => serve_file(file, &meta, media_type(&name), request.headers()),
        Ok(Err(Refused::Io(e))) if e.kind() == io::ErrorKind::NotFound => not_found(),
        Ok(Err(why)) => {
            tracing::warn!(file = %crate::shown(&rel), reason = %why, "the dashboard refused to serve a file of done/");
            not_found()
        }
        Err(e) => answer(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Why a file of `done/` is not served.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    #[error("not a name the dashboard serves (a plain .mp4 or .poster.jpg name)")]
    Name,
    #[error("not a regular file (a link, a folder or a device)")]
    NotRegular,
    #[error("its folder resolves outside done/")]
    Outside,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A name the dashboard serves from `done/`: a plain base name (no folder, no dot name, no
/// control character) of a video (`.mp4`) or a poster (`.poster.jpg`).
pub(super) fn servable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':'])
        && !name.chars().any(char::is_control)
        && crate::studio::layout::is_media_name(name)
}

fn media_type(name: &str) -> &'static str {
    if name.ends_with(".jpg") {
        "image/jpeg"
    } else if name.ends_with(".mov") {
        "video/quicktime"
    } else {
        "video/mp4"
    }
}

/// Opens `rel` (`done/…/<name>`, a path under `root`) for serving: without following a link
/// (`O_NOFOLLOW`; on Windows the reparse point itself is opened, and refused), a regular file, in
/// a folder whose canonical path lies under `done/`'s. On Unix the handle is then checked to be
/// the very file found there, so a folder swapped for a link meanwhile does not get through.
pub(super) fn open_in_done(
    root: &Path,
    rel: &str,
) -> Result<(std::fs::File, std::fs::Metadata), Refused> {
    let (dir, name) = rel.rsplit_once('/').ok_or(Refused::Name)?;
    if !servable_name(name) || !(dir == DONE || dir.starts_with(&format!("{DONE}/"))) {
        return Err(Refused::Name);
    }
    let folder = root.join(dir);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Not through a link; and never blocked by a FIFO named like a video.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt as _;
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let file = options.open(folder.join(name)).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Refused::NotRegular;
        }
        Refused::Io(e)
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Refused::NotRegular);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt as _;
        const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(Refused::NotRegular);
        }
    }
    let done = std::fs::canonicalize(root.join(DONE))?;
    let real = std::fs::canonicalize(&folder)?;
    if !real.starts_with(&done) {
        return Err(Refused::Outside);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let there = std::fs::symlink_metadata(real.join(name))?;
        if !there.is_file() || (there.dev(), there.ino()) != (meta.dev(), meta.ino()) {
            return Err(Refused::Outside);
        }
    }
    Ok((file, meta))
}

/// What a `Range` header asks of a file of `len` bytes: `None` to send it whole (no header, one
/// the server may ignore — several ranges, or one it cannot read), `Some(Err(()))` when
/// nothing of it can be sent (416), else the first and last byte.
fn wanted_range(header: Option<&str>, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header?.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let first: u64 = first.parse().ok()?;
    let last: Option<u64> = match last {
        "" => None,
        l => Some(l.parse().ok()?),
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    if first >= len {
        return Some(Err(()));
    }
    Some(Ok((first, last.map_or(len - 1, |l| l.min(len - 1)))))
}

/// Sends the opened `file` (whole, or the range asked for), streamed from its handle.
fn serve_file(
    file: std::fs::File,
    meta: &std::fs::Metadata,
    content_type: &'static str,
    headers: &axum::http::HeaderMap,
) -> Response {
    let len = meta.len();
    let modified = meta.modified().ok().map(httpdate::fmt_http_date);
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let (Some(since), Some(m)) = (text(header::IF_MODIFIED_SINCE), &modified)
        && since == m
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // If-Range: a range of the same file only (a changed file is sent whole).
    let same_file = text(header::IF_RANGE).is_none_or(|v| Some(v) == modified.as_deref());
    let range = if same_file {
        wanted_range(text(header::RANGE), len)
    } else {
        None
    };
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(m) = &modified {
        response = response.header(header::LAST_MODIFIED, m);
    }
    let (status, start, count) = match range {
        None => (StatusCode::OK, 0, len),
        Some(Err(())) => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Some(Ok((first, last))) => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
    };
    let body = async move {
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(start)).await?;
        Ok::<_, io::Error>(tokio_util::io::ReaderStream::new(file.take(count)))
    };
    let stream = futures_util::stream::once(body).try_flatten();
    response
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /api/retry/{job}`: the failed job back into `inbox/`.
pub(super) async fn retry(State(app): State<Shared>, UrlPath(job): UrlPath<String>) -> Response {
    let Some(failed) = app.live.failure(&job) else {
        return answer(StatusCode::NOT_FOUND, "no such failed job");
    };
    let root = app.root.clone();
    let name = failed.retry_name().to_string();
    let done = tokio::task::spawn_blocking(move || crate::cli::retry::retry(&root, &[name])).await;
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
    fn served_names_and_ranges() {
        for ok in ["cat.mp4", "cat.result.mp4", "cat-v2.mp4", "a b.poster.jpg"] {
            assert!(servable_name(ok), "{ok}");
        }
        for bad in [
            "", ".env", "../.env", "a/b.mp4", "a\\b.mp4", "passwd", "x.jpg", ".x.mp4", "c:x.mp4",
            "x\n.mp4",
        ] {
            assert!(!servable_name(bad), "{bad:?}");
        }
        assert_eq!(media_type("a.poster.jpg"), "image/jpeg");
        assert_eq!(media_type("a.mp4"), "video/mp4");
        assert_eq!(media_type("a.mov"), "video/quicktime");
        let r = |h: &str| wanted_range(Some(h), 1000);
        assert_eq!(wanted_range(None, 1000), None);
        assert_eq!(r("bytes=0-99"), Some(Ok((0, 99))));
        assert_eq!(r("bytes=990-5000"), Some(Ok((990, 999))));
        assert_eq!(r("bytes=100-"), Some(Ok((100, 999))));
        assert_eq!(r("bytes=-10"), Some(Ok((990, 999))));
        assert_eq!(r("bytes=-5000"), Some(Ok((0, 999))));
        assert_eq!(r("bytes=1000-"), Some(Err(())));
        assert_eq!(r("bytes=-0"), Some(Err(())));
        assert_eq!(r("bytes=0-1,5-6"), None, "several ranges: the whole file");
        assert_eq!(r("bytes=9-3"), None);
        assert_eq!(r("items=0-1"), None);
        assert_eq!(r("bytes=x-"), None);
        assert_eq!(wanted_range(Some("bytes=0-"), 0), Some(Err(())));
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_files_in_done_open() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("done/sub")).unwrap();
        std::fs::write(root.join(".env"), b"key").unwrap();
        std::fs::write(root.join("done/sub/ok.mp4"), b"video").unwrap();
        symlink("../.env", root.join("done/link.mp4")).unwrap();
        std::fs::create_dir(root.join("done/dir.mp4")).unwrap();
        let fifo = root.join("done/fifo.mp4");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(open_in_done(root, "done/sub/ok.mp4").is_ok());
        for (rel, want) in [
            ("done/link.mp4", "NotRegular"),
            ("done/dir.mp4", "NotRegular"),
            ("done/../.env", "Name"),
            ("inbox/ok.mp4", "Name"),
            ("done/gone.mp4", "Io"),
        ] {
            let got = format!("{:?}", open_in_done(root, rel).map(|_| ()).unwrap_err());
            assert!(got.starts_with(want), "{rel}: {got}");
        }
        if made.is_ok_and(|s| s.success()) {
            // Opened without blocking on a writer, and refused.
            let got = open_in_done(root, "done/fifo.mp4").map(|_| ()).unwrap_err();
            assert!(matches!(got, Refused::NotRegular), "{got:?}");
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.mp4"), b"elsewhere").unwrap();
        symlink(outside.path(), root.join("done/away")).unwrap();
        let got = open_in_done(root, "done/away/x.mp4")
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(got, Refused::Outside), "{got:?}");
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
