//! Files found not whole: how long each has been unchanged (from its mtime, on the file system's
//! clock), when it is looked at again, and the list `status` and the dashboard show.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Inbox, NotWhole, NotWholeFile, Ready};

impl Inbox {
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
}
