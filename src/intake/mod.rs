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
//! (Near 1000 lines with its paused-clock tests: settling, pairing, lone companions, files not
//! whole and the folder walk share the one index of what inbox/ holds; the name rules are in
//! [`names`], the watcher in [`watcher`].)

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use unicode_normalization::UnicodeNormalization as _;

use crate::studio::source::Source;

mod names;
mod watcher;

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

    /// Says once why `name` is left alone.
    fn report(&mut self, name: &str, why: &str) {
        if self.reported.insert(name.to_string()) {
            tracing::warn!(file = %name, "left alone in inbox/: {why}");
        }
    }

    /// A name that is not valid UTF-8 cannot be paired, sent or reported in `result.json`: said
    /// once, and left alone.
    pub fn report_unreadable_name(&mut self, name: &std::ffi::OsStr) {
        let shown = name.to_string_lossy().into_owned();
        self.report(
            &shown,
            "its name is not valid UTF-8 (a file copied from an old system?); rename it and it is taken",
        );
    }

    /// Whether other images of `image`'s stem still wait in the inbox, so its sidecar must be
    /// copied into the job rather than moved (it applies to each of them).
    pub fn shares_sidecar(&self, image: &str) -> bool {
        self.images
            .get(&stem_key(image))
            .is_some_and(|v| v.iter().any(|n| n != image))
    }

    /// How long the files of `r` — found not whole — have been unchanged: counted from their
    /// newest mtime on the file system's own clock (`fs_now`, asked only when the file is found
    /// not whole for the first time since its last change), or as watched here if that is longer.
    /// So a copy that broke off hours before dropreel saw it is given up at once.
    pub fn unchanged_for(
        &self,
        r: &Ready,
        fs_now: impl FnOnce() -> Option<SystemTime>,
    ) -> Duration {
        let clock = self
            .files
            .get(&r.source.rel())
            .and_then(|s| s.not_whole.as_ref())
            .and_then(|n| n.clock);
        let by_mtime = match clock {
            Some((found, then)) => then + found.elapsed(),
            None => {
                let newest = [Some(r.image_stamp), r.last_frame_stamp]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.mtime)
                    .max();
                match (newest, fs_now()) {
                    (Some(m), Some(now)) => now.duration_since(m).unwrap_or_default(),
                    _ => Duration::ZERO,
                }
            }
        };
        r.unchanged_for.max(by_mtime)
    }

    /// Puts a handed-out file back to wait until `until`: it is not whole (`why`), and has been
    /// unchanged for `unchanged_for`. `true` the first time it is found not whole (to say it once).
    pub fn wait_whole(
        &mut self,
        image: &str,
        why: &str,
        unchanged_for: Duration,
        until: Instant,
    ) -> bool {
        self.handed.remove(image);
        self.cache.set(None);
        let Some(seen) = self.files.get_mut(image) else {
            return false;
        };
        seen.hold_until = Some(until);
        let first = seen.not_whole.is_none();
        let n = seen.not_whole.get_or_insert_with(|| NotWhole {
            why: String::new(),
            clock: None,
        });
        if first || n.why != why || n.clock.is_none() {
            self.not_whole_version += 1;
        }
        n.why = why.to_string();
        if n.clock.is_none() {
            n.clock = Some((Instant::now(), unchanged_for));
        }
        first
    }

    /// The files waiting in inbox/ that were found not whole, by name.
    pub fn not_whole(&self) -> Vec<NotWholeFile> {
        let mut out: Vec<NotWholeFile> = self
            .files
            .iter()
            .filter_map(|(name, seen)| {
                let n = seen.not_whole.as_ref()?;
                let unchanged_for = match n.clock {
                    Some((found, then)) => then + found.elapsed(),
                    None => seen.since.elapsed(),
                };
                Some(NotWholeFile {
                    name: name.clone(),
                    why: n.why.clone(),
                    unchanged_for,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Changes each time what [`Inbox::not_whole`] lists changes (a file found not whole, gone,
    /// changed, or whole at last).
    pub fn not_whole_version(&self) -> u64 {
        self.not_whole_version
    }

    /// Looks at every entry of the inbox (startup and the periodic safety-net rescan).
    ///
    /// `fs_now` is the file system's own clock (the mtime of a file just written to the studio).
    /// A file first seen here whose mtime is already `settle` old has been unchanged that long —
    /// measured on the file system's clock, so a NAS whose clock differs from ours cannot fool it —
    /// and is not made to wait again: a backlog starts at once.
    pub fn scan(&mut self, fs_now: Option<SystemTime>) -> std::io::Result<()> {
        self.clock = fs_now;
        // Fails when inbox/ itself cannot be read; a subfolder that cannot is said and skipped.
        fs::read_dir(&self.dir)?;
        let mut present = HashSet::new();
        let mut seen_names = HashSet::new();
        for rel in self.walk("") {
            let rel = match rel {
                Ok(rel) => rel,
                Err(raw) => {
                    self.report_unreadable_name(&raw);
                    seen_names.insert(raw.to_string_lossy().into_owned());
                    continue;
                }
            };
            seen_names.insert(rel.clone());
            self.observe_file(&rel);
            if kind_of(&rel) != Kind::Other {
                present.insert(rel);
            }
        }
        self.clock = None;
        // A name that comes back after it was gone is reported again.
        self.reported.retain(|n| seen_names.contains(n));
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            self.remove(&n);
        }
        self.handed.retain(|n| present.contains(n));
        Ok(())
    }

    /// Every entry that is not a folder under the folder `rel` of inbox/ (`""`: all of inbox/), as
    /// paths relative to inbox/; dot folders skipped, links never followed. `Err`: a name that is
    /// not UTF-8.
    fn walk(&mut self, rel: &str) -> Vec<Result<String, std::ffi::OsString>> {
        let start = self.dir.join(rel);
        let mut out = Vec::new();
        let walker = walkdir::WalkDir::new(&start)
            .follow_links(false)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir() && e.file_name().to_string_lossy().starts_with('.'))
            });
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a folder in inbox/; trying again at the next rescan");
                    continue;
                }
            };
            if entry.file_type().is_dir() {
                continue;
            }
            let Ok(path) = entry.path().strip_prefix(&self.dir) else {
                continue;
            };
            match path.to_str() {
                Some(p) => out.push(Ok(p.replace(std::path::MAIN_SEPARATOR, "/"))),
                None => out.push(Err(path.as_os_str().to_os_string())),
            }
        }
        out
    }

    /// Looks at one path under inbox/ (after an event for it): a file, or a folder (a new one, or
    /// one moved in), whose files are all looked at.
    pub fn observe(&mut self, rel: &str) {
        if ignored_path(rel) || !self.in_real_folders(rel) {
            return;
        }
        let is_dir = fs::symlink_metadata(self.dir.join(rel)).is_ok_and(|m| m.is_dir());
        if !is_dir {
            self.observe_file(rel);
            return;
        }
        for found in self.walk(rel) {
            match found {
                Ok(f) => self.observe_file(&f),
                Err(raw) => self.report_unreadable_name(&raw),
            }
        }
    }

    /// Whether every folder on the way to `rel` is a real folder (a path through a link to a
    /// folder is never looked at).
    fn in_real_folders(&self, rel: &str) -> bool {
        let mut at = self.dir.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            at.push(part);
            if !fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                return false;
            }
        }
        true
    }

    /// Looks at one file (a path relative to inbox/).
    fn observe_file(&mut self, name: &str) {
        if ignored_path(name) {
            return;
        }
        let kind = kind_of(name);
        if kind == Kind::Other {
            self.report_other(name);
            return;
        }
        let meta = match fs::symlink_metadata(self.dir.join(name)) {
            Ok(m) => m,
            Err(_) => {
                if self.files.contains_key(name) || self.handed.contains(name) {
                    self.remove(name);
                }
                return;
            }
        };
        let ft = meta.file_type();
        if !ft.is_file() {
            if self.files.contains_key(name) {
                self.remove(name);
            }
            self.report(name, not_a_file(ft));
            return;
        }
        let stamp = Stamp::of(&meta);
        let now = Instant::now();
        match self.files.get_mut(name) {
            Some(seen) if seen.stamp == stamp => {}
            Some(seen) => {
                tracing::trace!(
                    file = name,
                    len = stamp.len,
                    "changed; its settle time starts again"
                );
                seen.stamp = stamp;
                seen.since = now;
                seen.head_start = Duration::ZERO;
                // Not whole before: its clock starts again (it is still not whole until found so).
                if let Some(n) = &mut seen.not_whole {
                    n.clock = None;
                    self.not_whole_version += 1;
                }
                // Changed after it was handed out: look at it afresh.
                self.handed.remove(name);
                self.cache.set(None);
            }
            None => {
                // Already quiet for a while by the file system's clock (during a scan only).
                let quiet = match (self.clock, stamp.mtime) {
                    (Some(fs_now), Some(m)) => fs_now.duration_since(m).unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let credit = if quiet >= self.settle + self.sidecar_wait {
                    self.settle + self.sidecar_wait
                } else if quiet >= self.settle {
                    self.settle
                } else {
                    Duration::ZERO
                };
                self.insert(
                    name,
                    Seen {
                        stamp,
                        since: now,
                        head_start: credit,
                        kind,
                        hold_until: None,
                        not_whole: None,
                    },
                );
            }
        }
    }

    /// The sidecar for `image`, if one is known: `<stem>.yaml` first, then `<stem>.yml`.
    fn sidecar_for(&self, image: &str) -> Option<(&String, &Seen)> {
        let names = self.sidecars.get(&stem_key(image))?;
        let pick = names
            .iter()
            .find(|n| n.to_lowercase().ends_with(".yaml"))
            .or_else(|| names.first())?;
        self.files.get_key_value(pick)
    }

    /// The last keyframe of `image`, if one is known (only images have one).
    fn last_for(&self, image: &str) -> Option<(&String, &Seen)> {
        if kind_of(image) != Kind::Image {
            return None;
        }
        let names = self.lasts.get(&stem_key(image))?;
        self.files.get_key_value(names.first()?)
    }

    /// When `image` becomes ready if nothing changes: settled, and so are its companions (sidecar,
    /// last keyframe); without any, it also gives a late one `sidecar_wait` to arrive.
    fn ready_at(&self, image: &str, seen: &Seen) -> Instant {
        let settled = |s: &Seen| s.since + self.settle.saturating_sub(s.head_start);
        let companions: Vec<&Seen> = [self.sidecar_for(image), self.last_for(image)]
            .into_iter()
            .flatten()
            .map(|(_, s)| s)
            .collect();
        let at = if companions.is_empty() {
            seen.since + (self.settle + self.sidecar_wait).saturating_sub(seen.head_start)
        } else {
            companions
                .into_iter()
                .map(settled)
                .fold(settled(seen), Instant::max)
        };
        seen.hold_until.map_or(at, |h| at.max(h))
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

    /// The sidecars and last keyframes not told yet that have no file of their stem in their
    /// folder to pair with, and no near miss either (`dog.png.yaml`, `cat.yaml` beside `Cat.png`:
    /// [`Inbox::explain_unpaired`] says why that one does not pair).
    fn lone(&self) -> Vec<(&String, &Seen)> {
        let mut out: Vec<(&String, &Seen)> = self
            .files
            .iter()
            .filter(|(n, _)| !self.reported.contains(*n))
            .filter(|(n, s)| match s.kind {
                Kind::Sidecar => {
                    !self.images.contains_key(&stem_key(n)) && !self.files.contains_key(stem_of(n))
                }
                Kind::LastFrame => !self
                    .images
                    .get(&last_frame_key(n))
                    .is_some_and(|v| v.iter().any(|i| kind_of(i) == Kind::Image)),
                _ => false,
            })
            .collect();
        if out.iter().any(|(_, s)| s.kind == Kind::Sidecar) {
            let folded: HashSet<String> = self.images.keys().map(|k| k.to_lowercase()).collect();
            out.retain(|(n, s)| {
                s.kind != Kind::Sidecar || !folded.contains(&stem_key(n).to_lowercase())
            });
        }
        out
    }

    /// When a lone sidecar or last keyframe is told: once it settled and the pairing wait passed.
    fn lone_due(&self, seen: &Seen) -> Instant {
        seen.since + (self.settle + self.sidecar_wait).saturating_sub(seen.head_start)
    }

    /// Says once of each lone sidecar and last keyframe whose pairing wait passed that it waits,
    /// and for what. It stays in inbox/ untouched.
    fn tell_lone(&mut self, now: Instant) {
        let due: Vec<(String, Kind)> = self
            .lone()
            .into_iter()
            .filter(|(_, s)| self.lone_due(s) <= now)
            .map(|(n, s)| (n.clone(), s.kind))
            .collect();
        if due.is_empty() {
            return;
        }
        for (name, kind) in due {
            let file = name.rsplit('/').next().unwrap_or(&name);
            let why = if kind == Kind::LastFrame {
                let stem = last_frame_key(file);
                format!(
                    "it is a last keyframe and waits for {stem}.<image ext> beside it (e.g. {stem}.png); \
                     it is never a job of its own"
                )
            } else {
                let stem = stem_of(file);
                format!(
                    "it is a sidecar and waits for {stem}.<image ext> beside it (e.g. {stem}.png), or for \
                     {stem}.txt or a video of that name; it is never a job of its own"
                )
            };
            self.report(&name, &why);
        }
        self.cache.set(None);
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

    /// One warning for a file that is neither ignored nor part of a job.
    fn report_other(&mut self, name: &str) {
        if self.reported.contains(name) {
            return;
        }
        let Ok(meta) = fs::symlink_metadata(self.dir.join(name)) else {
            return;
        };
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_lowercase());
        let why = if !meta.is_file() {
            not_a_file(meta.file_type()).to_string()
        } else {
            format!(
                "dropreel does not make videos from {} files; it takes images ({}), text files \
                 (.txt: the text is the prompt) and videos (.mp4, .mov, .webm), each with an \
                 optional <name>.yaml sidecar",
                ext.map_or_else(|| "extension-less".to_string(), |e| format!(".{e}")),
                crate::media::readable_formats()
            )
        };
        self.report(name, &why);
    }

    /// Warns once about sidecars that look meant for `r`'s image but will not apply to it.
    fn explain_unpaired(&mut self, r: &Ready) {
        // Indexes are by path under inbox/ (a sidecar pairs within its folder).
        let rel = r.source.rel();
        let key = stem_key(&rel);
        let mut notes: Vec<(String, String)> = Vec::new();
        if let (Some(used), Some(names)) = (&r.sidecar, self.sidecars.get(&key)) {
            for other in names.iter().filter(|n| *n != used) {
                notes.push((
                    other.clone(),
                    format!(
                        "{used} is the sidecar of {}; delete one of the two",
                        r.source.name
                    ),
                ));
            }
        }
        // `dog.png.yaml`: named after the whole file name.
        if let Some(names) = self.sidecars.get(&rel.nfc().collect::<String>()) {
            for n in names {
                notes.push((
                    n.clone(),
                    format!(
                        "a sidecar is named after the image without its extension: rename it to {}.{}",
                        stem_of(&r.source.name),
                        n.rsplit_once('.').map_or("yaml", |(_, e)| e)
                    ),
                ));
            }
        }
        // `Cat.png` + `cat.yaml`: the same stem but for letter case.
        if r.sidecar.is_none()
            && let Some(names) = self.sidecars_folded.get(&key.to_lowercase())
        {
            for n in names.iter().filter(|n| stem_key(n) != key) {
                notes.push((
                    n.clone(),
                    format!(
                        "it differs from {} in letter case only, so it does not pair; rename it to {}.{}",
                        r.source.name,
                        stem_of(&r.source.name),
                        n.rsplit_once('.').map_or("yaml", |(_, e)| e)
                    ),
                ));
            }
        }
        for (name, why) in notes {
            self.report(&name, &why);
        }
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

/// Why an entry that is not a regular file is left alone.
fn not_a_file(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "it is a symbolic link (links are never followed; put the file itself into inbox/)"
    } else if ft.is_dir() {
        "it is a folder (put the images themselves into inbox/)"
    } else {
        "it is not a regular file"
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
