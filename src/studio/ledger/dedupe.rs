//! The dedupe ledger, `ROOT/.dropreel/ledger/<key>.json`: one entry per job key (the SHA-256 of
//! the inputs' bytes and the effective settings). A job about to generate first *claims* its key —
//! the entry is created whole or not at all (a hard link of a finished temp file, which fails when
//! the name exists), so of two jobs or two instances exactly one generates — and, once its videos
//! are in `done/` (before its job folder is removed, so a kill in between leaves a job that
//! recovery delivers again and records), records what each video *is*: its size and SHA-256, and
//! every copy of it known in `done/` with a cheap fingerprint (device, inode, mtime).
//!
//! A later job with the same key is delivered from a copy that is still the video recorded — a
//! regular file (never a symlink) of its size whose fingerprint is unchanged or whose bytes hash to
//! it — without a request; copies delivered that way are recorded too, so any of them serves. A job
//! with variants reuses the takes still there and makes only the others. One that arrives while
//! the first is in flight waits for it. A refusal Runway would repeat for the same inputs and
//! settings (moderation, an unusable asset) is remembered for [`REFUSAL_MEMORY`]: an identical job
//! fails at once instead of being sent and paid for again. An entry whose job is gone without a
//! delivery is taken over; one whose job delivered but was stopped before recording it is repaired
//! from the job's `result.json` in `done/`. An entry is changed (read, changed, written back) under
//! the ledger's lock file; claims and set-asides need none.
//!
//! Entries of earlier versions name paths only: such a path is trusted only while the
//! `result.json` beside it names the entry's job (then its bytes are hashed and recorded).
//!
//! The entries and their changes are here; what a copy in `done/` is, and whether it is still the
//! video recorded, is [`copies`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::studio::record::{Failure, JobRecord};

mod copies;

use copies::covers;
pub use copies::{FileId, Identity, identify};

/// The ledger's folder under `ROOT/.dropreel/`.
pub const SUB: &str = "ledger";
/// The ledger's lock file: an entry is read, changed and written back under it, so that two jobs
/// recording copies of one video at once (or a delivery and a refusal) never lose each other's
/// change. Claims and set-asides need none: a link and a rename are atomic.
const LOCK_FILE: &str = ".lock";
/// An unreadable entry younger than this may be a claim being written (where hard links fail):
/// a job waits for it rather than setting it aside.
const BEING_WRITTEN: Duration = Duration::from_secs(5);
/// How long a refusal for good (`JobRecord::refused_for_good`: Runway's moderation, an unusable asset) is
/// remembered: long enough for a twin in flight, a sync client putting the file back or the same
/// export dropped again the same day; short enough that a moderation Runway has since relaxed is
/// tried again the next day. `dedupe: false` bypasses it.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Whether the job with the key is still being made, where its videos went, or why Runway
/// refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Pending,
    Done,
    /// Refused for a reason the same inputs and settings cannot escape (see [`REFUSAL_MEMORY`]).
    Refused,
}

/// One key's entry. Every field added since the first version has a default, so any entry ever
/// written still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub state: EntryState,
    /// The job that makes (or made) it.
    pub job: String,
    pub at: String,
    #[serde(default)]
    pub task_ids: Vec<String>,
    /// Where each video was first delivered, relative to the studio root (`done/clientA/cat.mp4`).
    #[serde(default)]
    pub files: Vec<String>,
    /// The takes each job with the key makes (`variants:`, else 1); `None` in entries of earlier
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes: Option<u32>,
    /// What each delivered video is, with every copy of it known in `done/`; empty in entries of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub videos: Vec<Video>,
    /// Why Runway refused the job (state `refused`), with the server's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Failure>,
    /// The refused job's `error.txt`, relative to the studio root: the refusal holds only while it
    /// is there (`dropreel retry`, the dashboard's Retry, or clearing `failed/` ends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_file: Option<String>,
}

/// One delivered video (one take) of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Video {
    /// Its take, 1-based (1 for a job without variants).
    pub take: u32,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
    /// Its copies in `done/`: the one its job delivered, and those of jobs that reused it.
    pub copies: Vec<Placed>,
}

/// A copy of a video: its path under the studio root and its fingerprint when last seen to be it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FileId>,
}

/// A take of an earlier delivery still in `done/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The job whose entry recorded it.
    pub job: String,
    /// What it is, with its copies (less those found to be something else now).
    pub video: Video,
    /// The copy found to be it just now, with its fingerprint as seen.
    pub copy: Placed,
    /// Copies found to be something else now (or gone): left out of `video`'s list.
    pub stale: Vec<String>,
}

/// What a job is to do about its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The key is this job's (claimed just now, or before a restart): generate — all but the
    /// takes of an earlier delivery still in `done/` (listed; none when nothing is there).
    Generate(Vec<Found>),
    /// Delivered before, and every take is still there: deliver copies of them.
    Reuse(Vec<Found>),
    /// The job named is making the same thing right now: wait for it.
    Wait(String),
    /// An identical job was refused lately for a reason this one would be refused for too.
    Refused(Box<Entry>),
}

/// The studio's dedupe ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: PathBuf,
    dir: PathBuf,
}

/// The job key of `rec` made by `backend`: its inputs' SHA-256 and every setting that changes the
/// video (kind, model, prompt, ratio, resolution, duration, output format, seed, variants, extra;
/// the local renderer's move and zoom). `None` until the inputs are hashed.
pub fn key(rec: &JobRecord, backend: &str) -> Option<String> {
    let s = &rec.spec;
    let inputs = [
        Some(rec.source_sha256.clone()?),
        rec.last_frame_sha256.clone(),
    ];
    let mut what = json!({
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
    // Settings added later join the key only when set, so the keys of earlier jobs stay the same.
    for (name, value) in [
        ("resolution", s.resolution.as_ref().map(|r| json!(r))),
        ("output_format", s.output_format.as_ref().map(|f| json!(f))),
        ("duration_auto", s.duration_auto.then_some(json!(true))),
    ] {
        if let Some(v) = value {
            what[name] = v;
        }
    }
    let bytes = serde_json::to_vec(&what).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl Entry {
    /// The claim of job `job`, whose takes are being made.
    fn pending(job: &str, takes: u32) -> Entry {
        Entry {
            state: EntryState::Pending,
            job: job.to_string(),
            at: crate::studio::clock::now_rfc3339(),
            task_ids: Vec::new(),
            files: Vec::new(),
            takes: Some(takes),
            videos: Vec::new(),
            refusal: None,
            error_file: None,
        }
    }

    /// The entry of job `job`'s delivery of `videos` (of `takes` takes).
    pub fn done(job: &str, takes: u32, mut videos: Vec<Video>) -> Entry {
        videos.sort_by_key(|v| v.take);
        Entry {
            state: EntryState::Done,
            job: job.to_string(),
            at: crate::studio::clock::now_rfc3339(),
            task_ids: videos.iter().filter_map(|v| v.task_id.clone()).collect(),
            files: videos
                .iter()
                .filter_map(|v| v.copies.first().map(|c| c.file.clone()))
                .collect(),
            takes: Some(takes),
            videos,
            refusal: None,
            error_file: None,
        }
    }

    /// Whether a refusal is recent enough to be repeated (one dated in the future, by another
    /// machine's clock, counts as recent) and its job still sits in `failed/` under `root` (a
    /// retry of it is someone's deliberate new try).
    fn refused_lately(&self, root: &Path) -> bool {
        let recent = humantime::parse_rfc3339(&self.at).is_ok_and(|at| {
            SystemTime::now()
                .duration_since(at)
                .map_or(true, |age| age < REFUSAL_MEMORY)
        });
        recent
            && self
                .error_file
                .as_ref()
                .is_none_or(|f| root.join(f).is_file())
    }
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

    fn read_entry(&self, key: &str) -> Option<Entry> {
        serde_json::from_slice(&fs::read(self.path(key)).ok()?).ok()
    }

    /// Looks `key` up for job `job` (whose jobs make `takes` takes), claiming it when nothing
    /// usable is there. `alive(j)`: whether job `j` still holds a job in `processing/` (its
    /// pending entry is not stale). May hash videos: call it off the runtime's threads.
    pub fn look(
        &self,
        key: &str,
        job: &str,
        takes: u32,
        alive: impl Fn(&str) -> bool,
    ) -> io::Result<Look> {
        let path = self.path(key);
        // The takes of an earlier delivery still there when not all are: this job makes the rest.
        let mut found = Vec::new();
        // A few rounds: each either claims, finds a live entry, or clears a stale one.
        for _ in 0..8 {
            if self.create_whole(&path, &Entry::pending(job, takes))? {
                return Ok(Look::Generate(found));
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
                return Ok(Look::Generate(Vec::new()));
            }
            match entry.state {
                EntryState::Done => {
                    let there = self.still_there(&entry, takes);
                    if covers(&there, takes) {
                        return Ok(Look::Reuse(there));
                    }
                    // Videos moved away, or other files in their place now: this job makes what
                    // is missing.
                    found = there;
                    self.set_aside(&path, job)?;
                }
                EntryState::Pending if alive(&entry.job) => return Ok(Look::Wait(entry.job)),
                EntryState::Pending => match self.delivered_by(&entry.job, takes) {
                    // Its job delivered, but was stopped (or its disk refused) before recording
                    // it: the entry is completed from what it delivered, and looked at again.
                    Some(done) => {
                        tracing::info!(job = %entry.job, videos = ?done.files,
                            "the dedupe ledger entry of a delivered job was left unfinished (dropreel was stopped midway); completed from its result.json in done/");
                        self.update(key, |now| (now.as_ref() == Some(&entry)).then_some(done))?;
                    }
                    // Its job ended without a delivery (a crash, its folder removed): this job
                    // makes it again.
                    None => self.set_aside(&path, job)?,
                },
                EntryState::Refused if entry.refused_lately(&self.root) => {
                    return Ok(Look::Refused(Box::new(entry)));
                }
                EntryState::Refused => self.set_aside(&path, job)?,
            }
        }
        Err(io::Error::other(
            "the dedupe ledger entry keeps changing under this job",
        ))
    }

    /// The delivered entry of `key` when every take is still in `done/` (`files`: the copies
    /// found), without claiming anything (for `estimate`). May hash videos.
    pub fn peek(&self, key: &str) -> Option<Entry> {
        let entry = self.read_entry(key)?;
        if entry.state != EntryState::Done {
            return None;
        }
        let there = match entry.takes {
            Some(takes) => Some(self.still_there(&entry, takes)).filter(|t| covers(t, takes)),
            // An entry of an earlier version: every path it names.
            None => Some(self.still_there(&entry, u32::MAX))
                .filter(|t| !t.is_empty() && t.len() == entry.files.len()),
        }?;
        Some(Entry {
            files: there.into_iter().map(|f| f.copy.file).collect(),
            ..entry
        })
    }

    /// Records the delivery of the job holding `key` (replacing its pending entry by a rename: a
    /// reader sees the old entry or the new one). Written once the videos are in `done/` and before
    /// the job's folder is removed, so a kill in between leaves a job that recovery delivers again
    /// and records. Not fsynced: an entry a power cut loses or leaves unreadable only means that
    /// job is made again the next time.
    pub fn record_done(&self, key: &str, entry: &Entry) -> io::Result<()> {
        self.update(key, |_| Some(entry.clone()))
    }

    /// Adds the copies a job delivered from `key`'s entry (made by job `from`; `found`: what it
    /// reused; `copies`: take, what was delivered, where) to that entry, under the ledger's lock,
    /// so that any of them can serve the next job. Copies gone from `done/` or found to be other
    /// files leave its list; an entry of an earlier version gets what its videos are. Nothing
    /// changes when the entry is no longer `from`'s delivery.
    pub fn add_copies(
        &self,
        key: &str,
        from: &str,
        found: &[Found],
        copies: &[(u32, Identity, String)],
    ) -> io::Result<()> {
        self.update(key, |entry| {
            let mut entry = entry?;
            if entry.state != EntryState::Done || entry.job != from {
                return None;
            }
            if entry.videos.is_empty() {
                entry.videos = found.iter().map(|f| f.video.clone()).collect();
            }
            for v in &mut entry.videos {
                // What the look found (another job may have added copies since: they stay).
                if let Some(f) = found
                    .iter()
                    .find(|f| f.video.take == v.take && f.video.sha256 == v.sha256)
                {
                    v.copies.retain(|p| !f.stale.contains(&p.file));
                    for p in v.copies.iter_mut().filter(|p| p.file == f.copy.file) {
                        p.id = f.copy.id;
                    }
                }
                v.copies
                    .retain(|p| fs::symlink_metadata(self.root.join(&p.file)).is_ok());
                for (_, seen, file) in copies
                    .iter()
                    .filter(|(take, seen, _)| *take == v.take && seen.sha256 == v.sha256)
                {
                    v.copies.retain(|p| p.file != *file);
                    v.copies.push(Placed {
                        file: file.clone(),
                        id: seen.id,
                    });
                }
            }
            Some(entry)
        })
    }

    /// Remembers that Runway refused job `job`, which holds `key`, for a reason the same inputs and
    /// settings cannot escape (`why`): identical jobs fail at once for [`REFUSAL_MEMORY`] (once
    /// the job is in `failed/`, only while it is there: see [`Ledger::refusal_kept_by`]).
    pub fn record_refused(&self, key: &str, job: &str, why: &Failure) -> io::Result<()> {
        self.update(key, |entry| match entry {
            Some(e) if e.job == job && e.state == EntryState::Pending => Some(Entry {
                state: EntryState::Refused,
                refusal: Some(why.clone()),
                at: crate::studio::clock::now_rfc3339(),
                ..e
            }),
            _ => None,
        })
    }

    /// The refused job `job` of `key` is in `failed/` with `error_file` (relative to the root):
    /// the refusal holds only while that file is there, so retrying the job (or clearing
    /// `failed/`) sends the next identical one.
    pub fn refusal_kept_by(&self, key: &str, job: &str, error_file: &str) -> io::Result<()> {
        self.update(key, |entry| match entry {
            Some(e) if e.job == job && e.state == EntryState::Refused => Some(Entry {
                error_file: Some(error_file.to_string()),
                ..e
            }),
            _ => None,
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

    /// Changes `key`'s entry under the ledger's lock: `change` is given what is there (`None`:
    /// nothing readable) and returns what to write instead (`None`: leave it).
    fn update(
        &self,
        key: &str,
        change: impl FnOnce(Option<Entry>) -> Option<Entry>,
    ) -> io::Result<()> {
        let open = || {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join(LOCK_FILE))
        };
        let lock = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir)?;
                open()?
            }
            opened => opened?,
        };
        lock.lock()?;
        let written = match change(self.read_entry(key)) {
            Some(entry) => self.write(key, &entry),
            None => Ok(()),
        };
        // Closing the file releases the lock too; said explicitly.
        let _ = lock.unlock();
        written
    }

    /// Replaces `key`'s entry (a rename: a reader sees the old entry or the new one).
    fn write(&self, key: &str, entry: &Entry) -> io::Result<()> {
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
}

#[cfg(test)]
mod tests;
