//! The file-system watcher: OS events, or polling for network shares (and when the OS refuses
//! more watches). Its events are only hints: each triggers a look at one name.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

/// Keeps the file-system watcher alive; events arrive as file names on the channel.
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
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            for p in ev.paths {
                if let Some(name) = p.file_name() {
                    // The receiver is gone only at shutdown.
                    let _ = tx.send(name.to_os_string());
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "watcher error"),
    };
    let poll_watcher = |every: Duration, handler| -> anyhow::Result<Watcher> {
        let cfg = notify::Config::default()
            .with_poll_interval(every)
            .with_compare_contents(false);
        let mut w = notify::PollWatcher::new(handler, cfg)?;
        w.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Watcher {
            _inner: Box::new(w),
        })
    };
    if let Some(every) = poll {
        tracing::info!(every = ?every, "watching inbox/ by polling (watch.poll)");
        return poll_watcher(every, handler);
    }
    let native = notify::recommended_watcher(handler.clone()).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
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
