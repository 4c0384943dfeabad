//! Turns the inbox into a stream of *ready* files: the ignore rules, the stability check (size and
//! mtime unchanged for `settle`, file openable), pairing an image with its sidecar (waiting
//! `sidecar_wait` for a late one), and the file-system watcher (OS events, or polling for network
//! shares) whose events are hints that trigger a look at one file.
//!
//! Stems pair after Unicode normalisation (NFC: macOS writes names decomposed, other systems
//! composed), and a sidecar applies to every image of its stem. Nothing is skipped silently: a
//! file that is neither ignored nor part of a job, a name that is not UTF-8, and a sidecar that
//! will never pair each get one warning saying why. A file the checks found not whole is
//! remembered (why, and how long it has been unchanged, from its mtime) until it leaves.
//!
//! Here: the one index of what inbox/ holds ([`Inbox`]), settling and handing out ready files;
//! `scan` (the full look and one file's event), `pairing` (sidecars, last keyframes, lone
//! companions), `whole` (files found not whole), [`names`] (the name rules) and [`watcher`].

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::studio::source::Source;

mod names;
mod pairing;
mod scan;
mod watcher;
mod whole;

use names::stem_of;
pub use names::{
    Kind, held_by_writer, ignored_path, is_ignored, kind_of, last_frame_key, stem_key,
};
pub use watcher::{Watcher, watch};

/// A file's identity for the stability check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    stamp: Stamp,
    /// When the stamp last changed (or the file was first seen).
    since: Instant,
    /// How long it had already been quiet when first seen, by the file system's clock (a scan's
    /// credit; see [`Inbox::scan`]). Kept apart from `since`: an `Instant` cannot reach back
    /// before the machine booted.
    head_start: Duration,
    kind: Kind,
    /// Not before this, even if settled: it was looked at and found not whole yet.
    hold_until: Option<Instant>,
    /// Found not whole (it stays so while it is in inbox/, so it is said once).
    not_whole: Option<NotWhole>,
}

/// Why a file was found not whole, and since when it has been unchanged.
#[derive(Debug, Clone)]
struct NotWhole {
    why: String,
    /// When it was found not whole since its last change, and how long it had been unchanged
    /// then (by the file system's clock, from its mtime); `None` once it changed again.
    clock: Option<(Instant, Duration)>,
}

/// A file waiting in inbox/ that is not whole, as `status` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWholeFile {
    /// Its path under inbox/.
    pub name: String,
    /// Where it stops (`the JPEG ends inside a segment`).
    pub why: String,
    /// How long it has been unchanged.
    pub unchanged_for: Duration,
}

/// An image that has settled, with its sidecar (if any), ready to be checked and claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub source: Source,
    pub image_stamp: Stamp,
    pub sidecar: Option<String>,
    pub sidecar_stamp: Option<Stamp>,
    /// Its last keyframe (`<stem>.last.<ext>`), if one is beside it.
    pub last_frame: Option<String>,
    pub last_frame_stamp: Option<Stamp>,
    /// How long the image has been unchanged, as watched here (a file found not whole is judged
    /// by [`Inbox::unchanged_for`], which also counts from its mtime).
    pub unchanged_for: Duration,
}

/// The inbox as dropreel sees it: every relevant file with its last stamp.
#[derive(Debug)]
pub struct Inbox {
    dir: PathBuf,
    settle: Duration,
    sidecar_wait: Duration,
    files: HashMap<String, Seen>,
    /// Sidecar names by stem key ([`stem_key`]), so pairing an image costs a lookup, not a pass
    /// over the inbox.
    sidecars: HashMap<String, Vec<String>>,
    /// Job file names (images, texts) by stem key: a sidecar shared by several is copied to all but
    /// the last.
    images: HashMap<String, Vec<String>>,
    /// Last keyframes by the stem key of the image they belong to.
    lasts: HashMap<String, Vec<String>>,
    /// Sidecar names by lower-cased stem key, to explain a sidecar that differs from its image
    /// in letter case only without a pass over all sidecars.
    sidecars_folded: HashMap<String, Vec<String>>,
    /// Images handed out as ready and not yet gone from the inbox.
    handed: HashSet<String>,
    /// Odd entries already reported once (symlinks, folders named like images, FIFOs).
    reported: HashSet<String>,
    /// The file system's own clock during a scan (see [`Inbox::scan`]).
    clock: Option<SystemTime>,
    /// (next deadline, images waiting), until something changes.
    cache: Cell<Option<(Option<Instant>, usize)>>,
    /// Counts changes of what [`Inbox::not_whole`] lists (so it is shown again only then).
    not_whole_version: u64,
}

impl Inbox {
    pub fn new(dir: &Path, settle: Duration, sidecar_wait: Duration) -> Inbox {
        Inbox {
            dir: dir.to_path_buf(),
            settle,
            sidecar_wait,
            files: HashMap::new(),
            sidecars: HashMap::new(),
            images: HashMap::new(),
            sidecars_folded: HashMap::new(),
            lasts: HashMap::new(),
            handed: HashSet::new(),
            reported: HashSet::new(),
            clock: None,
            cache: Cell::new(None),
            not_whole_version: 0,
        }
    }

    fn insert(&mut self, name: &str, seen: Seen) {
        if seen.kind == Kind::Sidecar {
            self.sidecars_folded
                .entry(stem_key(name).to_lowercase())
                .or_default()
                .push(name.to_string());
        }
        let index = match seen.kind {
            Kind::Sidecar => Some((&mut self.sidecars, stem_key(name))),
            Kind::Image | Kind::Text | Kind::Video => Some((&mut self.images, stem_key(name))),
            Kind::LastFrame => Some((&mut self.lasts, last_frame_key(name))),
            Kind::Other => None,
        };
        if let Some((index, key)) = index {
            index.entry(key).or_default().push(name.to_string());
        }
        self.files.insert(name.to_string(), seen);
        self.cache.set(None);
    }

    fn remove(&mut self, name: &str) {
        if let Some(seen) = self.files.remove(name) {
            if seen.not_whole.is_some() {
                self.not_whole_version += 1;
            }
            let key = stem_key(name);
            let indexes = match seen.kind {
                Kind::Sidecar => vec![
                    (&mut self.sidecars, key.clone()),
                    (&mut self.sidecars_folded, key.to_lowercase()),
                ],
                Kind::Image | Kind::Text | Kind::Video => vec![(&mut self.images, key)],
                Kind::LastFrame => vec![(&mut self.lasts, last_frame_key(name))],
                Kind::Other => Vec::new(),
            };
            for (index, key) in indexes {
                if let Some(v) = index.get_mut(&key) {
                    v.retain(|n| n != name);
                    if v.is_empty() {
                        index.remove(&key);
                    }
                }
            }
        }
        self.handed.remove(name);
        // Said again if it comes back.
        self.reported.remove(name);
        self.cache.set(None);
    }

    /// New settle and sidecar waits (dropreel.yaml was edited); files already waiting follow them.
    pub fn set_timing(&mut self, settle: Duration, sidecar_wait: Duration) {
        self.settle = settle;
        self.sidecar_wait = sidecar_wait;
        self.cache.set(None);
    }

    /// (next deadline, images waiting), from the cache or one pass over the files.
    fn summary(&self) -> (Option<Instant>, usize) {
        if let Some(c) = self.cache.get() {
            return c;
        }
        let mut next: Option<Instant> = None;
        let mut waiting = 0;
        for (n, s) in &self.files {
            if s.kind.is_job() && !self.handed.contains(n) {
                waiting += 1;
                let at = self.ready_at(n, s);
                next = Some(next.map_or(at, |x| x.min(at)));
            }
        }
        // A lone sidecar or last keyframe is not waited for (it never holds up `run`), but is
        // said once its pairing wait passed.
        for (_, s) in self.lone() {
            let at = self.lone_due(s);
            next = Some(next.map_or(at, |x| x.min(at)));
        }
        self.cache.set(Some((next, waiting)));
        (next, waiting)
    }

    /// Images that are ready now, oldest first. Each is handed out once (until it changes).
    pub fn take_ready(&mut self) -> Vec<Ready> {
        let now = Instant::now();
        match self.summary().0 {
            Some(at) if at <= now => {}
            _ => return Vec::new(),
        }
        // Events are hints: before handing an image out, look at it (and its sidecar) again, so a
        // writer that went on without an event (network shares, `run`) restarts the wait.
        let due: Vec<String> = self
            .files
            .iter()
            .filter(|(n, s)| {
                s.kind.is_job() && !self.handed.contains(*n) && self.ready_at(n, s) <= now
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in &due {
            self.observe_file(name);
            let stem = stem_of(name).to_string();
            let known = self
                .sidecars
                .get(&stem_key(name))
                .cloned()
                .unwrap_or_default();
            let lasts = self.lasts.get(&stem_key(name)).cloned().unwrap_or_default();
            for sc in known
                .into_iter()
                .chain(lasts)
                .chain([format!("{stem}.yaml"), format!("{stem}.yml")])
            {
                self.observe_file(&sc);
            }
        }
        let now = Instant::now();
        let mut ready: Vec<(Instant, Ready)> = Vec::new();
        for name in due {
            let Some(seen) = self.files.get(&name) else {
                continue;
            };
            if self.handed.contains(&name) || self.ready_at(&name, seen) > now {
                continue;
            }
            // Still held open exclusively by its writer (Windows, SMB): not ready yet. Any other
            // open error is permanent and is reported by the content check.
            if let Err(e) = fs::File::open(self.dir.join(&name))
                && held_by_writer(&e)
            {
                continue;
            }
            let sc = self.sidecar_for(&name);
            let last = self.last_for(&name);
            ready.push((
                seen.since
                    .checked_sub(seen.head_start)
                    .unwrap_or(seen.since),
                Ready {
                    source: Source::at(&name),
                    image_stamp: seen.stamp,
                    sidecar: sc.map(|(n, _)| n.clone()),
                    sidecar_stamp: sc.map(|(_, s)| s.stamp),
                    last_frame: last.map(|(n, _)| n.clone()),
                    last_frame_stamp: last.map(|(_, s)| s.stamp),
                    unchanged_for: now.saturating_duration_since(seen.since) + seen.head_start,
                },
            ));
        }
        for (_, r) in &ready {
            self.explain_unpaired(r);
        }
        self.tell_lone(now);
        ready.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.source.name.cmp(&b.1.source.name))
        });
        for (_, r) in &ready {
            tracing::debug!(
                file = %r.source.name,
                sidecar = r.sidecar.as_deref().unwrap_or("-"),
                unchanged_for = ?r.unchanged_for,
                "settled: ready to be checked"
            );
            self.handed.insert(r.source.rel());
        }
        self.cache.set(None);
        ready.into_iter().map(|(_, r)| r).collect()
    }

    /// Forgets that `image` was handed out, so it is judged again (it changed, or its claim failed).
    pub fn release(&mut self, image: &str) {
        self.handed.remove(image);
        self.cache.set(None);
        self.observe_file(image);
    }

    /// Whether the files of `r` are still exactly as they were when it was handed out (and no sidecar
    /// appeared since).
    pub fn unchanged(&self, r: &Ready) -> bool {
        let stamp = |n: &str| {
            fs::symlink_metadata(self.dir.join(n))
                .ok()
                .map(|m| Stamp::of(&m))
        };
        if stamp(&r.source.rel()) != Some(r.image_stamp) {
            return false;
        }
        let last_same = match &r.last_frame {
            Some(l) => stamp(l) == r.last_frame_stamp,
            None => self.last_for(&r.source.rel()).is_none(),
        };
        last_same
            && match &r.sidecar {
                Some(sc) => stamp(sc) == r.sidecar_stamp,
                None => self.sidecar_for(&r.source.rel()).is_none(),
            }
    }

    /// The next moment an image may become ready, if any waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.summary().0
    }

    /// Images seen and not yet handed out.
    pub fn waiting(&self) -> usize {
        self.summary().1
    }

    /// Stops tracking `name` (it was claimed or failed, so it left the inbox).
    pub fn forget(&mut self, name: &str) {
        self.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_already_quiet_on_the_file_systems_clock_is_taken_at_once() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("old.png"), b"x").unwrap();
        let mtime = fs::metadata(d.path().join("old.png"))
            .unwrap()
            .modified()
            .unwrap();
        let mut inbox = Inbox::new(d.path(), Duration::from_secs(30), Duration::from_secs(30));
        // The file system says the file has been quiet for a minute.
        inbox.scan(Some(mtime + Duration::from_secs(61))).unwrap();
        assert_eq!(inbox.take_ready().len(), 1);
        // Quiet for only a second: it waits like any new file.
        fs::write(d.path().join("new.png"), b"x").unwrap();
        let mtime = fs::metadata(d.path().join("new.png"))
            .unwrap()
            .modified()
            .unwrap();
        inbox.scan(Some(mtime + Duration::from_secs(1))).unwrap();
        assert!(inbox.take_ready().is_empty());
        assert_eq!(inbox.waiting(), 1);
    }

    // On a paused clock: the deadlines are exact, and no test time is spent waiting for them.
    #[tokio::test(start_paused = true)]
    async fn image_waits_for_settle_and_sidecar_wait() {
        let ms = Duration::from_millis;
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cat.png"), b"x").unwrap();
        let mut inbox = Inbox::new(d.path(), Duration::from_secs(2), Duration::from_secs(1));
        inbox.scan(None).unwrap();
        assert_eq!(inbox.next_deadline(), Some(Instant::now() + ms(3000)));
        tokio::time::advance(ms(1999)).await;
        assert!(inbox.take_ready().is_empty(), "not settled yet");
        tokio::time::advance(ms(2)).await;
        assert!(
            inbox.take_ready().is_empty(),
            "settled, still waiting for a sidecar"
        );
        // The sidecar arrives: both must settle; the image already has.
        fs::write(d.path().join("cat.yaml"), b"hi").unwrap();
        inbox.observe("cat.yaml");
        tokio::time::advance(ms(1999)).await;
        assert!(inbox.take_ready().is_empty(), "the sidecar has not settled");
        tokio::time::advance(ms(2)).await;
        let r = inbox.take_ready();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sidecar.as_deref(), Some("cat.yaml"));
        assert!(inbox.take_ready().is_empty(), "handed out once");
        assert!(inbox.unchanged(&r[0]));
        fs::write(d.path().join("cat.yaml"), b"changed!").unwrap();
        assert!(!inbox.unchanged(&r[0]));
    }

    // See: issue 12 — a file in a folder was handed out again at every look (its name, not its
    // path, was noted), so a backlog in folders was checked over and over: 1.1 GB and 3× the CPU
    // for 10 000 files in 100 folders.
    #[tokio::test(start_paused = true)]
    async fn a_file_in_a_folder_is_handed_out_once() {
        let ms = Duration::from_millis;
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/cat.png"), b"x").unwrap();
        let mut inbox = Inbox::new(d.path(), ms(10), ms(10));
        inbox.scan(None).unwrap();
        tokio::time::advance(ms(100)).await;
        let r = inbox.take_ready();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].source.rel(), "sub/cat.png");
        tokio::time::advance(ms(100)).await;
        assert!(inbox.take_ready().is_empty(), "handed out once");
    }

    // A lone sidecar or last keyframe is told once its pairing wait passed: its moment wakes the
    // loop, but it is not waited for (a `run` does not wait for it).
    #[tokio::test(start_paused = true)]
    async fn a_lone_companion_wakes_the_loop_once_and_is_never_waited_for() {
        let ms = Duration::from_millis;
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("y.yaml"), b"a prompt").unwrap();
        fs::write(d.path().join("x.last.png"), b"x").unwrap();
        let mut inbox = Inbox::new(d.path(), ms(200), ms(100));
        inbox.scan(None).unwrap();
        assert_eq!(inbox.waiting(), 0);
        assert_eq!(inbox.next_deadline(), Some(Instant::now() + ms(300)));
        tokio::time::advance(ms(300)).await;
        assert!(inbox.take_ready().is_empty());
        assert_eq!(
            inbox.next_deadline(),
            None,
            "told once: nothing more to wake for"
        );
        assert!(inbox.reported.contains("y.yaml") && inbox.reported.contains("x.last.png"));
        // Its image arrives: it pairs as usual.
        fs::write(d.path().join("y.png"), b"x").unwrap();
        inbox.observe("y.png");
        tokio::time::advance(ms(300)).await;
        let r = inbox.take_ready();
        assert_eq!(r[0].sidecar.as_deref(), Some("y.yaml"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_image_is_taken_after_settle_plus_sidecar_wait() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("dog.png"), b"x").unwrap();
        let mut inbox = Inbox::new(d.path(), Duration::from_secs(2), Duration::from_secs(1));
        inbox.scan(None).unwrap();
        tokio::time::advance(Duration::from_millis(2999)).await;
        assert!(inbox.take_ready().is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let r = inbox.take_ready();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].source.name, "dog.png");
        assert_eq!(r[0].sidecar, None);
    }
}
