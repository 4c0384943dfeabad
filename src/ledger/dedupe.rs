//! The dedupe ledger, `ROOT/.dropreel/ledger/<key>.json`: one entry per job key (the SHA-256 of
//! the inputs' bytes and the effective settings). A job about to generate first *claims* its key —
//! the entry is created whole or not at all (a hard link of a finished temp file, which fails when
//! the name exists), so of two jobs or two instances exactly one generates — and, once delivered,
//! records where its videos went. A later job with the same key is delivered from those videos
//! (if they are still in `done/`) without a request; one that arrives while the first is in flight
//! waits for it. An entry whose job is gone without a delivery is taken over.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::record::JobRecord;

/// The ledger's folder under `ROOT/.dropreel/`.
pub const SUB: &str = "ledger";
/// An unreadable entry younger than this may be a claim being written (where hard links fail):
/// a job waits for it rather than setting it aside.
const BEING_WRITTEN: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the job with the key is still being made, or where its videos went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Pending,
    Done,
}

/// One key's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub state: EntryState,
    /// The job that makes (or made) it.
    pub job: String,
    pub at: String,
    #[serde(default)]
    pub task_ids: Vec<String>,
    /// Its videos, relative to the studio root (`done/clientA/cat.mp4`).
    #[serde(default)]
    pub files: Vec<String>,
}

/// What a job is to do about its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The key is this job's (claimed just now, or before a restart): generate.
    Generate,
    /// Delivered before, and its videos are still there: deliver copies of them.
    Reuse(Entry),
    /// The job named is making the same thing right now: wait for it.
    Wait(String),
}

/// The studio's dedupe ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: PathBuf,
    dir: PathBuf,
}

/// The job key of `rec` made by `backend`: its inputs' SHA-256 and every setting that changes the
/// video (kind, model, prompt, ratio, duration, seed, variants, extra; the local renderer's move and
/// zoom). `None` until the inputs are hashed.
pub fn key(rec: &JobRecord, backend: &str) -> Option<String> {
    let s = &rec.spec;
    let inputs = [
        Some(rec.source_sha256.clone()?),
        rec.last_frame_sha256.clone(),
    ];
    let what = json!({
        "v": 1,
        "backend": backend,
        "endpoint": rec.kind.endpoint().path(),
        "inputs": inputs,
        "model": s.model,
        "prompt": s.prompt,
        "ratio": s.ratio,
        "duration": (!s.no_duration).then_some(s.duration),
        "seed": s.seed,
        "variants": s.takes(),
        "motion": s.motion,
        "zoom": s.zoom,
        "extra": s.extra,
    });
    let bytes = serde_json::to_vec(&what).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl Ledger {
    pub fn new(root: &Path) -> Ledger {
        Ledger {
            root: root.to_path_buf(),
            dir: root.join(super::DIR).join(SUB),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Looks `key` up for job `job`, claiming it when free. `alive(j)`: whether job `j` is still
    /// in `processing/` (its entry is not stale).
    pub fn look(&self, key: &str, job: &str, alive: impl Fn(&str) -> bool) -> io::Result<Look> {
        let path = self.path(key);
        // A few rounds: each either claims, finds a live entry, or clears a stale one.
        for _ in 0..8 {
            let mine = Entry {
                state: EntryState::Pending,
                job: job.to_string(),
                at: crate::spool::now_rfc3339(),
                task_ids: Vec::new(),
                files: Vec::new(),
            };
            if self.create_whole(&path, &mine)? {
                return Ok(Look::Generate);
            }
            let entry = match fs::read(&path) {
                Ok(bytes) => serde_json::from_slice::<Entry>(&bytes).ok(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Some(entry) = entry else {
                // Where hard links fail, an entry is created, then written: one this young may be
                // another job's claim being written, so this job waits for it to be readable.
                let young = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < BEING_WRITTEN));
                if young {
                    return Ok(Look::Wait("(an entry being written)".into()));
                }
                tracing::warn!(entry = %path.display(), "a dedupe ledger entry cannot be read; it is set aside");
                self.set_aside(&path, job)?;
                continue;
            };
            if entry.job == job {
                return Ok(Look::Generate);
            }
            match entry.state {
                EntryState::Done if self.files_exist(&entry) => return Ok(Look::Reuse(entry)),
                EntryState::Pending if alive(&entry.job) => return Ok(Look::Wait(entry.job)),
                // Its videos were moved away, or its job ended without a delivery (a crash):
                // this job makes it again.
                _ => self.set_aside(&path, job)?,
            }
        }
        Err(io::Error::other(
            "the dedupe ledger entry keeps changing under this job",
        ))
    }

    /// The delivered entry of `key` whose videos are still there, without claiming anything (for
    /// `estimate`).
    pub fn peek(&self, key: &str) -> Option<Entry> {
        let bytes = fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        (entry.state == EntryState::Done && self.files_exist(&entry)).then_some(entry)
    }

    /// Records where the videos of the job holding `key` went (replacing its pending entry, by a
    /// rename: a reader sees the old entry or the new one). Not fsynced: an entry a power cut
    /// loses or leaves unreadable only means that job is made again the next time.
    pub fn record_done(&self, key: &str, entry: &Entry) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", entry.job, fastrand::u32(..)));
        if fs::write(&tmp, &json).is_err() {
            fs::create_dir_all(&self.dir)?;
            fs::write(&tmp, &json)?;
        }
        fs::rename(&tmp, self.path(key)).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Gives `key` up after job `job` failed: the next job with the key generates.
    pub fn release(&self, key: &str, job: &str) -> io::Result<()> {
        let path = self.path(key);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(());
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) if e.job == job && e.state == EntryState::Pending => self.set_aside(&path, job),
            _ => Ok(()),
        }
    }

    /// Whether every video of `entry` is still where it was delivered.
    fn files_exist(&self, entry: &Entry) -> bool {
        !entry.files.is_empty() && entry.files.iter().all(|f| self.root.join(f).is_file())
    }

    /// Creates `path` holding `entry`, whole, unless it exists: `false` when it did.
    fn create_whole(&self, path: &Path, entry: &Entry) -> io::Result<bool> {
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", entry.job, fastrand::u32(..)));
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        // Not fsynced: what matters is that exactly one job creates the entry, which the link
        // decides. A pending entry lost to a power cut is made again when its job resumes.
        if let Err(e) = fs::write(&tmp, &json) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
            // The ledger folder does not exist yet (or was removed): made once, as needed.
            fs::create_dir_all(&self.dir)?;
            fs::write(&tmp, &json)?;
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links: create-new, then write. (A reader that looks in
            // the moment between finds it unreadable but young, and waits: see `look`.)
            Err(_) => match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    io::Write::write_all(&mut f, &json)?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Moves a stale or unreadable entry out of the way (an atomic rename: of two instances doing
    /// it at once, one does, the other finds nothing to move).
    fn set_aside(&self, path: &Path, job: &str) -> io::Result<()> {
        let aside = self.dir.join(format!(".stale-{job}-{}", fastrand::u32(..)));
        match fs::rename(path, &aside) {
            Ok(()) => {
                let _ = fs::remove_file(&aside);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Puts copies of `entry`'s videos into `dir` as `names` (hard links where the file system
    /// allows, else copies). Their total size.
    pub fn copy_videos(&self, entry: &Entry, dir: &Path, names: &[String]) -> io::Result<u64> {
        let mut bytes = 0;
        for (from, to) in entry.files.iter().zip(names) {
            let (src, dst) = (self.root.join(from), dir.join(to));
            let _ = fs::remove_file(&dst);
            if fs::hard_link(&src, &dst).is_err() {
                let tmp = dir.join(format!("{to}.part"));
                fs::copy(&src, &tmp)?;
                fs::File::open(&tmp)?.sync_all()?;
                fs::rename(&tmp, &dst)?;
            }
            bytes += fs::metadata(&dst)?.len();
        }
        crate::spool::sync_dir(dir)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_entry_is_waited_for_while_young_and_set_aside_once_old() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        fs::create_dir_all(&l.dir).unwrap();
        // Created but not yet written (a claim in progress where hard links fail).
        let path = l.path("k");
        fs::write(&path, b"").unwrap();
        assert!(matches!(l.look("k", "b", |_| true).unwrap(), Look::Wait(_)));
        assert!(path.exists(), "a young entry is left to its writer");
        // Still unreadable long after: damaged, so it is set aside and this job claims the key.
        let old = std::time::SystemTime::now() - 2 * BEING_WRITTEN;
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Generate);
        let e: Entry = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(e.job, "b");
    }

    #[test]
    fn one_job_claims_a_key_the_other_waits_then_reuses() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        assert_eq!(l.look("k", "a", |_| true).unwrap(), Look::Generate);
        assert_eq!(
            l.look("k", "a", |_| true).unwrap(),
            Look::Generate,
            "a resumed owner"
        );
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Wait("a".into()));
        fs::create_dir_all(d.path().join("done")).unwrap();
        fs::write(d.path().join("done/cat.mp4"), b"video").unwrap();
        let done = Entry {
            state: EntryState::Done,
            job: "a".into(),
            at: "t".into(),
            task_ids: vec!["task".into()],
            files: vec!["done/cat.mp4".into()],
        };
        l.record_done("k", &done).unwrap();
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Reuse(done));
        // The videos moved away: made again, by the one who looks first.
        fs::remove_file(d.path().join("done/cat.mp4")).unwrap();
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Generate);
        assert_eq!(l.look("k", "c", |_| true).unwrap(), Look::Wait("b".into()));
    }

    #[test]
    fn a_failed_or_vanished_owner_gives_the_key_up() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        assert_eq!(l.look("k", "a", |_| true).unwrap(), Look::Generate);
        l.release("k", "b").unwrap();
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Wait("a".into()));
        l.release("k", "a").unwrap();
        assert_eq!(l.look("k", "b", |_| true).unwrap(), Look::Generate);
        // b's job folder is gone without a delivery (a crash midway): c takes over.
        assert_eq!(l.look("k", "c", |j| j != "b").unwrap(), Look::Generate);
    }

    #[test]
    fn of_many_threads_claiming_one_key_exactly_one_generates() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let winners: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..16)
                .map(|i| {
                    let l = l.clone();
                    s.spawn(move || l.look("k", &format!("j{i}"), |_| true).unwrap())
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|l| *l == Look::Generate)
                .count()
        });
        assert_eq!(winners, 1);
    }
}
