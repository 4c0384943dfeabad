//! Looking at inbox/: the full scan and its folder walk, one file observed on an event, and the
//! one warning for what is neither ignored nor part of a job.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Inbox, Kind, Seen, Stamp, ignored_path, kind_of};

impl Inbox {
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
    pub(super) fn walk(&mut self, rel: &str) -> Vec<Result<String, std::ffi::OsString>> {
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
    pub(super) fn in_real_folders(&self, rel: &str) -> bool {
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
    pub(super) fn observe_file(&mut self, name: &str) {
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

    /// Says once why `name` is left alone.
    pub(super) fn report(&mut self, name: &str, why: &str) {
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

    /// One warning for a file that is neither ignored nor part of a job.
    pub(super) fn report_other(&mut self, name: &str) {
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
}

/// Why an entry that is not a regular file is left alone.
pub(super) fn not_a_file(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "it is a symbolic link (links are never followed; put the file itself into inbox/)"
    } else if ft.is_dir() {
        "it is a folder (put the images themselves into inbox/)"
    } else {
        "it is not a regular file"
    }
}
