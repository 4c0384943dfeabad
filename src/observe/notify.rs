//! Telling others what happened: every event `notify.events` asks for is written into the outbox —
//! one file per event and receiver under `ROOT/.dropreel/outbox/<webhook|command>/`, synced —
//! before anyone is told. A sender per receiver then delivers them oldest first and removes each
//! once delivered; a failure is retried with backoff (`notify.retry_min` doubling up to
//! `retry_max`: 1 s to 10 min) until the event is
//! 24 h old. So a receiver that is down for hours, or a dropreel stopped meanwhile, loses nothing
//! (delivery is at least once; each event carries a unique `id`). An event the webhook rejects
//! for good (a 4xx but 408 and 429) is set aside into `rejected/` of its outbox with the reason
//! (listed by `status`), and the next ones go on.
//!
//! Jobs only write the file: a slow, stuck or absent receiver never delays one. One instance
//! sends a studio's outbox at a time (a file lock), so instances sharing a studio do not send an
//! event twice.
//!
//! Receivers: a webhook (POST of the event's JSON; signed with `X-Dropreel-Signature:
//! sha256=<HMAC-SHA256 of the body>` when `notify.webhook_secret_env` names the secret), and a
//! command (run without a shell, `{event}` `{file}` `{job}` `{outputs}` replaced in its arguments —
//! a file starting with `-` as `./-…` —, the event in `DROPREEL_*` variables, the API key's and
//! the webhook secret's variables removed, killed after 60 s, its output logged).
//!
//! Here: the outbox and its sender loop; `send` holds the receivers and one delivery to each.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NotifySection;
use crate::observe::events::{Event, EventKind};

mod send;

pub use send::signature;
use send::{NotSent, Receiver};

/// How long an event is retried before it is given up (with a log line).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// One webhook request.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// One run of the command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A look at the outbox even without news (another instance's events, a lock let go).
const LOOK_AGAIN: Duration = Duration::from_secs(30);
/// The most of a command's output that is logged.
const OUTPUT_LOGGED: usize = 2000;
/// The most of a refusing webhook's answer that is kept with the event set aside.
const ANSWER_KEPT: usize = 300;
/// Where events a receiver refused for good are kept, inside its outbox.
const SET_ASIDE: &str = "rejected";

/// Where events wait, per receiver.
fn outbox_dir(root: &Path, receiver: &str) -> PathBuf {
    root.join(".dropreel").join("outbox").join(receiver)
}

/// Where jobs and the pipeline put events: writes each one the config asks for into every
/// receiver's outbox and wakes its sender. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    dirs: Arc<Vec<PathBuf>>,
    wanted: Arc<Vec<EventKind>>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// Writes `event` (if wanted) into each receiver's outbox, synced. A disk that refuses loses
    /// the event, with an error line: a notification never holds up a job.
    pub fn emit(&self, event: &Event) {
        if !self.wanted.contains(&event.event) {
            return;
        }
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "an event cannot be written");
                return;
            }
        };
        for dir in self.dirs.iter() {
            let written = std::fs::create_dir_all(dir).and_then(|()| {
                crate::studio::durable::write_atomic(dir, &format!("{}.json", event.id), &body)
            });
            if let Err(e) = written {
                tracing::error!(event = %event.id, kind = event.event.name(), dir = %dir.display(), error = %e,
                    "cannot write the event into the outbox (disk full?); it will not be sent");
            }
        }
        self.wake.notify_waiters();
    }
}

/// The senders of one studio's outbox, and its entry point for events.
pub struct Notifier {
    outbox: Outbox,
    senders: JoinSet<()>,
    cancel: CancellationToken,
}

impl Notifier {
    /// Starts a sender per receiver `notify:` names; `None` when it names none. An error when the
    /// webhook's secret variable is missing (the run cannot sign what it sends).
    pub fn start(root: &Path, cfg: &NotifySection) -> anyhow::Result<Option<Notifier>> {
        let mut receivers = Vec::new();
        if let Some(url) = &cfg.webhook {
            let secret = match &cfg.webhook_secret_env {
                Some(var) => {
                    let value = std::env::var(var).ok().filter(|v| !v.is_empty());
                    let value = value.with_context(|| {
                        format!(
                            "notify.webhook_secret_env names {var}, which is not set in dropreel's environment; \
                             set it (for a service: in its unit or agent) or remove the line"
                        )
                    })?;
                    Some(Arc::new(value.into_bytes()))
                }
                None => None,
            };
            let http = reqwest::Client::builder()
                .user_agent(concat!("dropreel/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("cannot set up the webhook's HTTP client")?;
            receivers.push(Receiver::Webhook {
                url: url.clone(),
                secret,
                http,
            });
        }
        if let Some(argv) = &cfg.command {
            let hidden = crate::config::API_KEY_VARS
                .iter()
                .map(|v| v.to_string())
                .chain(cfg.webhook_secret_env.clone())
                .collect();
            receivers.push(Receiver::Command {
                argv: argv.clone(),
                hidden: Arc::new(hidden),
            });
        }
        if receivers.is_empty() {
            return Ok(None);
        }
        let wake = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let mut senders = JoinSet::new();
        let mut dirs = Vec::new();
        for r in receivers {
            let dir = outbox_dir(root, r.name());
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dirs.push(dir.clone());
            let pace = (cfg.retry_min, cfg.retry_max);
            senders.spawn(send_loop(r, dir, pace, wake.clone(), cancel.clone()));
        }
        Ok(Some(Notifier {
            outbox: Outbox {
                dirs: Arc::new(dirs),
                wanted: Arc::new(cfg.events.clone()),
                wake,
            },
            senders,
            cancel,
        }))
    }

    /// The entry point for events.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Lets the senders deliver what waits for up to `grace` (a `run` ending), then stops them.
    /// What is left stays in the outbox for the next start.
    pub async fn finish(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.outbox.dirs.iter().all(|d| pending(d).is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: usize = self.outbox.dirs.iter().map(|d| pending(d).len()).sum();
        if left > 0 {
            tracing::info!(
                left,
                "notifications not delivered yet stay in .dropreel/outbox/ and are sent at the next start"
            );
        }
        self.cancel.cancel();
        while self.senders.join_next().await.is_some() {}
    }
}

/// Notifications not delivered yet, for `status`: `None` when none waits.
pub fn waiting_line(root: &Path) -> Option<String> {
    let mut parts = Vec::new();
    let mut oldest: Option<Event> = None;
    for receiver in ["webhook", "command"] {
        let files = pending(&outbox_dir(root, receiver));
        if files.is_empty() {
            continue;
        }
        parts.push(format!("{} for the {receiver}", files.len()));
        // Read only: `status` sets nothing aside.
        let first = files.first().and_then(|f| std::fs::read(f).ok());
        if let Some(e) = first.and_then(|b| serde_json::from_slice::<Event>(&b).ok())
            && oldest.as_ref().is_none_or(|o| e.id < o.id)
        {
            oldest = Some(e);
        }
    }
    if parts.is_empty() {
        return None;
    }
    let since = oldest.map_or(String::new(), |e| format!(", the oldest from {}", e.at));
    Some(format!(
        "notifications not delivered yet: {}{since} (kept in .dropreel/outbox/, retried for 24 h)",
        parts.join(", ")
    ))
}

/// The events waiting in `dir`, oldest first.
fn pending(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Tries of one event so far, and when the next may be.
struct Tries {
    count: u32,
    next: Instant,
}

/// Delivers `dir`'s events to `receiver`, oldest first, until cancelled; a failed try waits
/// `retry_min` doubling up to `retry_max`.
async fn send_loop(
    receiver: Receiver,
    dir: PathBuf,
    (retry_min, retry_max): (Duration, Duration),
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut tries: HashMap<PathBuf, Tries> = HashMap::new();
    // Held while this instance sends this outbox.
    let mut lock: Option<File> = None;
    loop {
        // Registered before looking, so an event written meanwhile still wakes us.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let mut wait = LOOK_AGAIN;
        if lock.is_none() {
            lock = take_lock(&dir);
        }
        if lock.is_some() {
            for path in pending(&dir) {
                let now = Instant::now();
                if let Some(t) = tries.get(&path)
                    && t.next > now
                {
                    // The oldest waits its turn; the rest wait behind it (events stay in order).
                    wait = wait.min(t.next - now);
                    break;
                }
                let Some((event, body)) = read_event(&path) else {
                    continue;
                };
                if age(&event) > GIVE_UP_AFTER {
                    tracing::warn!(event = %event.id, kind = event.event.name(), receiver = receiver.name(),
                        "a notification could not be delivered for 24 hours and is given up");
                    let _ = std::fs::remove_file(&path);
                    tries.remove(&path);
                    continue;
                }
                let sent = tokio::select! {
                    r = receiver.send(&event, &body) => r,
                    () = cancel.cancelled() => return,
                };
                match sent {
                    Err(NotSent::Refused(why)) if set_aside(&dir, &path, &why).is_ok() => {
                        tries.remove(&path);
                        tracing::warn!(event = %event.id, kind = event.event.name(), receiver = receiver.name(), reason = %why,
                            folder = %format!(".dropreel/outbox/{}/{SET_ASIDE}/", receiver.name()),
                            "the receiver refused a notification; it is kept aside (not sent again) and the next ones go on; move it back into its outbox to send it again");
                    }
                    Ok(()) => {
                        let _ = std::fs::remove_file(&path);
                        tries.remove(&path);
                        tracing::debug!(event = %event.id, receiver = receiver.name(), "notification delivered");
                    }
                    Err(NotSent::Retry(why) | NotSent::Refused(why)) => {
                        let t = tries.entry(path).or_insert(Tries {
                            count: 0,
                            next: now,
                        });
                        t.count += 1;
                        let d = crate::backend::backoff(t.count - 1, retry_min, retry_max);
                        t.next = Instant::now() + d;
                        if t.count == 1 {
                            tracing::warn!(event = %event.id, kind = event.event.name(), receiver = receiver.name(), reason = %why, next_try = ?d,
                                "a notification could not be delivered; it waits in .dropreel/outbox/ and is tried again");
                        } else {
                            tracing::debug!(event = %event.id, reason = %why, tries = t.count, next_try = ?d, "notification still not delivered");
                        }
                        wait = wait.min(d);
                        break;
                    }
                }
            }
        } else {
            // Another instance sends this outbox; look again later.
            wait = Duration::from_secs(5);
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// The outbox's lock, if no other instance holds it.
fn take_lock(dir: &Path) -> Option<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .ok()?;
    f.try_lock().ok()?;
    Some(f)
}

/// The event in `path` and its bytes; a damaged file is set aside (`.bad`) with a warning.
fn read_event(path: &Path) -> Option<(Event, Vec<u8>)> {
    let body = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Event>(&body) {
        Ok(e) => Some((e, body)),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "a damaged event in the outbox is set aside (.bad)");
            let _ = std::fs::rename(path, path.with_extension("bad"));
            None
        }
    }
}

/// Moves the event file `path` into the outbox's [`SET_ASIDE`] folder, with `why` beside it
/// (`<id>.txt`). Moved back into the outbox, it is sent again.
fn set_aside(dir: &Path, path: &Path, why: &str) -> std::io::Result<()> {
    let aside = dir.join(SET_ASIDE);
    std::fs::create_dir_all(&aside)?;
    let name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::rename(path, aside.join(name))?;
    let stem = Path::new(name)
        .file_stem()
        .unwrap_or(name)
        .to_string_lossy();
    let note = format!("{} {why}\n", crate::studio::clock::now_rfc3339());
    if let Err(e) =
        crate::studio::durable::write_atomic(&aside, &format!("{stem}.txt"), note.as_bytes())
    {
        tracing::warn!(error = %e, "cannot write why a notification was set aside");
    }
    Ok(())
}

/// Notifications a receiver refused for good and that are kept aside, for `status`: `None` when
/// there are none.
pub fn set_aside_line(root: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for receiver in ["webhook", "command"] {
        let aside = outbox_dir(root, receiver).join(SET_ASIDE);
        let files = pending(&aside);
        let Some(last) = files.last() else {
            continue;
        };
        let why = std::fs::read_to_string(last.with_extension("txt"))
            .ok()
            .and_then(|t| t.split_once(' ').map(|(_, why)| why.trim().to_string()))
            .unwrap_or_else(|| "no reason kept".into());
        let (n, them) = match files.len() {
            1 => ("1 notification".to_string(), "it"),
            n => (format!("{n} notifications"), "one"),
        };
        let verb = if files.len() == 1 { "is" } else { "are" };
        parts.push(format!(
            "{n} the {receiver} refused {verb} set aside in .dropreel/outbox/{receiver}/{SET_ASIDE}/ \
             (the latest: {why}); move {them} back into .dropreel/outbox/{receiver}/ to send it again"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// How long ago `event` happened.
fn age(event: &Event) -> Duration {
    humantime::parse_rfc3339_weak(&event.at)
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::send::{fill, refuses_for_good};
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_4xx_but_408_and_429_refuses_for_good_and_is_set_aside_and_listed() {
        for code in [400, 401, 403, 404, 410, 413, 422] {
            assert!(refuses_for_good(code), "{code}");
        }
        for code in [200, 301, 408, 429, 500, 502, 503] {
            assert!(!refuses_for_good(code), "{code}");
        }
        let d = tempfile::tempdir().unwrap();
        assert_eq!(set_aside_line(d.path()), None);
        let dir = outbox_dir(d.path(), "webhook");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0001-a.json");
        std::fs::write(&path, b"{}").unwrap();
        set_aside(&dir, &path, "the webhook answered HTTP 422: no such job").unwrap();
        assert!(pending(&dir).is_empty(), "no longer sent");
        assert!(dir.join("rejected/0001-a.json").is_file());
        let line = set_aside_line(d.path()).unwrap();
        assert_eq!(
            line,
            "1 notification the webhook refused is set aside in .dropreel/outbox/webhook/rejected/ \
             (the latest: the webhook answered HTTP 422: no such job); move it back into \
             .dropreel/outbox/webhook/ to send it again"
        );
    }

    #[test]
    fn placeholders_fill_one_argument_each() {
        let mut e = Event::hold("quota", "429");
        e.file = Some("a b/it's; rm -rf x.png".into());
        e.outputs = vec!["done/a.mp4".into(), "done/a.poster.jpg".into()];
        assert_eq!(fill("{file}", &e), "a b/it's; rm -rf x.png");
        assert_eq!(fill("--{event}={job}", &e), "--hold=");
        assert_eq!(fill("{outputs}", &e), "done/a.mp4 done/a.poster.jpg");
        e.file = Some("-rf x.png".into());
        assert_eq!(fill("{file}", &e), "./-rf x.png", "never an option");
        e.file = Some("-client/-a.png".into());
        assert_eq!(fill("--in={file}", &e), "--in=./-client/-a.png");
    }
}
