//! The file-system watcher: OS events, or polling for network shares (and when the OS refuses
//! more watches), on `inbox/` and every folder inside it (links to folders are never followed).
//! Its events are only hints: each triggers a look at one path.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

/// Keeps the file-system watcher alive; events arrive on the channel as paths relative to the
/// watched folder (`sub/dir/cat.png`).
pub struct Watcher {
    _inner: Box<dyn notify::Watcher + Send>,
}

/// Starts watching `dir`: OS events, or a polling watcher every `poll`. When the OS refuses more
/// watches (inotify's limit, reported as "No space left on device"), says so and polls instead.
pub fn watch(
    dir: &Path,
    poll: Option<Duration>,
    tx: mpsc::UnboundedSender<std::ffi::OsString>,
) -> anyhow::Result<Watcher> {
    use notify::{RecursiveMode, Watcher as _};
    // The watcher reports absolute paths (it makes a relative one absolute itself): watch and
    // strip by the same absolute path, or a file in a subfolder of a relative ROOT (`dropreel
    // watch` in the studio) is not found under inbox/.
    let root = std::path::absolute(dir)?;
    let dir = root.as_path();
    let handler = {
        let root = root.clone();
        move |res: notify::Result<notify::Event>| match res {
            // A file opened or read (by dropreel itself, checking and hashing what it takes)
            // changed nothing; a writer closing a file did.
            Ok(ev) if is_read_only(&ev.kind) => {}
            Ok(ev) => {
                for p in ev.paths {
                    if let Some(rel) = relative(&root, &p) {
                        // The receiver is gone only at shutdown.
                        let _ = tx.send(rel);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "watcher error"),
        }
    };
    let poll_watcher = |every: Duration, handler| -> anyhow::Result<Watcher> {
        let cfg = notify::Config::default()
            .with_poll_interval(every)
            .with_compare_contents(false)
            .with_follow_symlinks(false);
        let mut w = notify::PollWatcher::new(handler, cfg)?;
        w.watch(dir, RecursiveMode::Recursive)?;
        Ok(Watcher {
            _inner: Box::new(w),
        })
    };
    if let Some(every) = poll {
        tracing::info!(every = ?every, "watching inbox/ by polling (watch.poll)");
        return poll_watcher(every, handler);
    }
    // Subfolders too, and those made later; a symlinked folder is never followed.
    let cfg = notify::Config::default().with_follow_symlinks(false);
    let native = notify::RecommendedWatcher::new(handler.clone(), cfg).and_then(|mut w| {
        w.watch(dir, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match native {
        Ok(w) => Ok(Watcher {
            _inner: Box::new(w),
        }),
        Err(e) => {
            let why = match &e.kind {
                notify::ErrorKind::MaxFilesWatch => "the system's limit on watched folders is reached \
                    (on Linux raise fs.inotify.max_user_watches, e.g. `sysctl fs.inotify.max_user_watches=524288`)"
                    .to_string(),
                notify::ErrorKind::Io(io) if matches!(io.raw_os_error(), Some(28 | 24)) => {
                    "the system's limit on watched folders or open files is reached (the OS reports it as \
                     \"no space left on device\"; on Linux raise fs.inotify.max_user_watches)"
                        .to_string()
                }
                _ => e.to_string(),
            };
            tracing::warn!(
                "cannot watch inbox/ for events: {why}. Falling back to polling every 2s"
            );
            poll_watcher(Duration::from_secs(2), handler)
        }
    }
}

/// `path` relative to `root` (`sub/dir/cat.png`); `None` for `root` itself or a path outside it.
fn relative(root: &Path, path: &Path) -> Option<std::ffi::OsString> {
    let rel = path.strip_prefix(root).ok()?;
    (!rel.as_os_str().is_empty()).then(|| rel.as_os_str().to_os_string())
}

/// An event that says a file was opened or read, not changed.
fn is_read_only(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

#[cfg(test)]
mod tests {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, CreateKind};

    #[test]
    fn reads_are_not_changes_but_a_writer_closing_is() {
        assert!(super::is_read_only(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(super::is_read_only(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!super::is_read_only(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!super::is_read_only(&EventKind::Create(CreateKind::File)));
    }
}
