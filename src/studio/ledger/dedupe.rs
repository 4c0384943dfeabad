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
//! (Over 600 lines with its tests: the claim, the identity checks and the repair share one file
//! format and its rules.)

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::studio::layout;
use crate::studio::record::{Failure, JobRecord};

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

/// What tells a file from another without reading it: its device, inode and modification time
/// (on Unix; elsewhere there is none, and a copy is checked by its hash). A rename keeps it and a
/// hard link shares it; a rewrite, or another file put in its place, changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub mtime: i64,
    pub mtime_ns: u32,
}

impl FileId {
    pub fn of(meta: &fs::Metadata) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Some(FileId {
                dev: meta.dev(),
                ino: meta.ino(),
                mtime: meta.mtime(),
                mtime_ns: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// A video file as read just now: its size, SHA-256 and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub bytes: u64,
    pub sha256: String,
    pub id: Option<FileId>,
}

/// Reads `path` whole and says what it is; an error when it is not a regular file (a symlink is
/// not one) or changed while it was read. Blocking: call it off the runtime's threads.
pub fn identify(path: &Path) -> io::Result<Identity> {
    let before = fs::symlink_metadata(path)?;
    if !before.file_type().is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let sha256 = crate::media::sha256_file(path)?;
    let after = fs::symlink_metadata(path)?;
    if !after.file_type().is_file()
        || after.len() != before.len()
        || FileId::of(&after) != FileId::of(&before)
    {
        return Err(io::Error::other(format!(
            "{} changed while it was read",
            path.display()
        )));
    }
    Ok(Identity {
        bytes: after.len(),
        sha256,
        id: FileId::of(&after),
    })
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

/// Whether `found` holds every take from 1 to `takes`.
fn covers(found: &[Found], takes: u32) -> bool {
    (1..=takes).all(|n| found.iter().any(|f| f.video.take == n))
}

/// A video a `result.json` says its job delivered beside it.
#[derive(Debug)]
struct Beside {
    take: u32,
    name: String,
    seed: Option<u64>,
    task_id: Option<String>,
}

/// The job a `result.json` names and the videos it says that job delivered beside it.
fn read_result(path: &Path) -> Option<(String, Vec<Beside>)> {
    use crate::job::JobKind;
    let v: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let job = v["job_id"].as_str()?.to_string();
    let stem = layout::result_stem(path.file_name()?.to_str()?)?;
    let text = |x: &Value| x.as_str().map(str::to_string);
    let videos = match v["variants"].as_array() {
        Some(takes) => takes
            .iter()
            .filter_map(|t| {
                Some(Beside {
                    take: u32::try_from(t["n"].as_u64()?).ok()?,
                    name: t["file"].as_str()?.to_string(),
                    seed: t["seed"].as_u64(),
                    task_id: text(&t["task_id"]),
                })
            })
            .collect(),
        None => {
            let output = if v["kind"] == JobKind::Video.name() {
                layout::Output::Restyled
            } else {
                layout::Output::Clip
            };
            vec![Beside {
                take: 1,
                name: format!("{stem}{}", layout::video_suffix(output, None)),
                seed: v["seed"].as_u64(),
                task_id: text(&v["task_id"]),
            }]
        }
    };
    Some((job, videos))
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

    /// The takes of `entry` (up to `takes`) still in `done/`: for each, the first copy that is
    /// still the video recorded. Copies found to be something else are left out of its list.
    fn still_there(&self, entry: &Entry, takes: u32) -> Vec<Found> {
        if entry.videos.is_empty() {
            return self.legacy_there(entry, takes);
        }
        let mut out: Vec<Found> = Vec::new();
        for v in &entry.videos {
            if v.take == 0 || v.take > takes || out.iter().any(|f| f.video.take == v.take) {
                continue;
            }
            let mut copy = None;
            let mut copies = Vec::new();
            let mut stale = Vec::new();
            for p in &v.copies {
                if copy.is_some() {
                    copies.push(p.clone());
                    continue;
                }
                match self.verify(p, v) {
                    Some(now) => {
                        copy = Some(now.clone());
                        copies.push(now);
                    }
                    None => {
                        tracing::debug!(file = %p.file, "no longer the video the dedupe ledger recorded there");
                        stale.push(p.file.clone());
                    }
                }
            }
            if let Some(copy) = copy {
                out.push(Found {
                    job: entry.job.clone(),
                    video: Video {
                        copies,
                        ..v.clone()
                    },
                    copy,
                    stale,
                });
            }
        }
        out.sort_by_key(|f| f.video.take);
        out
    }

    /// Whether the copy `p` is still `video`: a regular file of its size whose fingerprint is the
    /// one recorded, or whose bytes hash to it. The copy as seen now when it is.
    fn verify(&self, p: &Placed, video: &Video) -> Option<Placed> {
        let path = self.root.join(&p.file);
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_file() || meta.len() != video.bytes {
            return None;
        }
        let now = FileId::of(&meta);
        if now.is_some() && now == p.id {
            return Some(p.clone());
        }
        // Another fingerprint (a sync client rewrote it, a copy where hard links fail, an entry
        // from another OS): the bytes decide.
        let seen = identify(&path).ok()?;
        (seen.bytes == video.bytes && seen.sha256 == video.sha256).then(|| Placed {
            file: p.file.clone(),
            id: seen.id,
        })
    }

    /// The takes still there of an entry written by an earlier version (paths only): a path counts
    /// while the `result.json` beside it names the entry's job (then it is hashed, to be recorded).
    fn legacy_there(&self, entry: &Entry, takes: u32) -> Vec<Found> {
        let mut out: Vec<Found> = Vec::new();
        for (i, file) in entry.files.iter().enumerate() {
            let Some(b) = self.legacy_take(file, &entry.job) else {
                continue;
            };
            if b.take > takes || out.iter().any(|f| f.video.take == b.take) {
                continue;
            }
            let Ok(seen) = identify(&self.root.join(file)) else {
                continue;
            };
            let copy = Placed {
                file: file.clone(),
                id: seen.id,
            };
            out.push(Found {
                job: entry.job.clone(),
                video: Video {
                    take: b.take,
                    task_id: b.task_id.or_else(|| entry.task_ids.get(i).cloned()),
                    seed: b.seed,
                    bytes: seen.bytes,
                    sha256: seen.sha256,
                    copies: vec![copy.clone()],
                },
                copy,
                stale: Vec::new(),
            });
        }
        out.sort_by_key(|f| f.video.take);
        out
    }

    /// What the `result.json` beside `file` (`cat.mp4`, `cat.result.mp4`, `cat-v2.mp4`) says of
    /// it, when that `result.json` names `job`.
    fn legacy_take(&self, file: &str, job: &str) -> Option<Beside> {
        let path = self.root.join(file);
        let dir = path.parent()?;
        let name = path.file_name()?.to_str()?;
        layout::video_stems(name).into_iter().find_map(|stem| {
            let (named, videos) = read_result(&dir.join(layout::result_name(stem)))?;
            if named != job {
                return None;
            }
            videos.into_iter().find(|b| b.name == name)
        })
    }

    /// The entry job `job` would have recorded, rebuilt from the `result.json` in `done/` that
    /// names it (its videos hashed now); `None` when no delivery of it is there.
    fn delivered_by(&self, job: &str, takes: u32) -> Option<Entry> {
        let done = self.root.join(layout::DONE);
        let (dir, beside) = walkdir::WalkDir::new(&done)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type().is_file()
                    && layout::result_stem(&e.file_name().to_string_lossy()).is_some()
            })
            .find_map(|e| {
                let (named, videos) = read_result(e.path())?;
                (named == job).then(|| (e.path().parent().map(Path::to_path_buf), videos))
            })?;
        let dir = dir?;
        let mut videos = Vec::new();
        for b in beside.into_iter().filter(|b| b.take <= takes) {
            let path = dir.join(&b.name);
            let Ok(seen) = identify(&path) else {
                continue;
            };
            let Ok(rel) = path.strip_prefix(&self.root) else {
                continue;
            };
            videos.push(Video {
                take: b.take,
                task_id: b.task_id,
                seed: b.seed,
                bytes: seen.bytes,
                sha256: seen.sha256,
                copies: vec![Placed {
                    file: rel.to_string_lossy().replace('\\', "/"),
                    id: seen.id,
                }],
            });
        }
        (!videos.is_empty()).then(|| Entry::done(job, takes, videos))
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

    /// Puts a copy of `found`'s video at `dst` (a hard link where the file system allows, else a
    /// copy), checked to be that video once there: `Ok(false)` when the file changed since it was
    /// found (then nothing is left at `dst`). The caller syncs the folder.
    pub fn copy_video(&self, found: &Found, dst: &Path) -> io::Result<bool> {
        let src = self.root.join(&found.copy.file);
        let _ = fs::remove_file(dst);
        let linked = fs::hard_link(&src, dst).is_ok();
        if !linked {
            let mut tmp = dst.as_os_str().to_owned();
            tmp.push(".part");
            let tmp = PathBuf::from(tmp);
            fs::copy(&src, &tmp)?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, dst)?;
        }
        let meta = fs::symlink_metadata(dst)?;
        // A link shares the fingerprint of the file it links (unless that file changed since);
        // a copy is read.
        let same = meta.file_type().is_file()
            && meta.len() == found.video.bytes
            && ((linked && found.copy.id.is_some() && FileId::of(&meta) == found.copy.id)
                || identify(dst).is_ok_and(|s| s.sha256 == found.video.sha256));
        if !same {
            let _ = fs::remove_file(dst);
        }
        Ok(same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rel` (under the studio `root`) written with `bytes`, as a recorded video of take `take`.
    fn video_at(root: &Path, rel: &str, bytes: &[u8], take: u32) -> Video {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        let seen = identify(&path).unwrap();
        Video {
            take,
            task_id: Some(format!("task-{take}")),
            seed: None,
            bytes: seen.bytes,
            sha256: seen.sha256,
            copies: vec![Placed {
                file: rel.into(),
                id: seen.id,
            }],
        }
    }

    fn generates(look: Look) -> Vec<Found> {
        match look {
            Look::Generate(found) => found,
            other => panic!("expected Generate, got {other:?}"),
        }
    }

    fn reuses(look: Look) -> Vec<Found> {
        match look {
            Look::Reuse(found) => found,
            other => panic!("expected Reuse, got {other:?}"),
        }
    }

    #[test]
    fn an_unreadable_entry_is_waited_for_while_young_and_set_aside_once_old() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        fs::create_dir_all(&l.dir).unwrap();
        // Created but not yet written (a claim in progress where hard links fail).
        let path = l.path("k");
        fs::write(&path, b"").unwrap();
        assert!(matches!(
            l.look("k", "b", 1, |_| true).unwrap(),
            Look::Wait(_)
        ));
        assert!(path.exists(), "a young entry is left to its writer");
        // Still unreadable long after: damaged, so it is set aside and this job claims the key.
        let old = SystemTime::now() - 2 * BEING_WRITTEN;
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
        let e: Entry = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(e.job, "b");
    }

    #[test]
    fn one_job_claims_a_key_the_other_waits_then_reuses() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        generates(l.look("k", "a", 1, |_| true).unwrap());
        assert!(
            generates(l.look("k", "a", 1, |_| true).unwrap()).is_empty(),
            "a resumed owner"
        );
        assert_eq!(
            l.look("k", "b", 1, |_| true).unwrap(),
            Look::Wait("a".into())
        );
        let v = video_at(d.path(), "done/cat.mp4", b"video", 1);
        l.record_done("k", &Entry::done("a", 1, vec![v.clone()]))
            .unwrap();
        let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].job.as_str(), &found[0].video), ("a", &v));
        assert_eq!(found[0].copy.file, "done/cat.mp4");
        // The videos moved away: made again, by the one who looks first.
        fs::remove_file(d.path().join("done/cat.mp4")).unwrap();
        assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
        assert_eq!(
            l.look("k", "c", 1, |_| true).unwrap(),
            Look::Wait("b".into())
        );
    }

    #[test]
    fn a_failed_or_vanished_owner_gives_the_key_up() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        generates(l.look("k", "a", 1, |_| true).unwrap());
        l.release("k", "b").unwrap();
        assert_eq!(
            l.look("k", "b", 1, |_| true).unwrap(),
            Look::Wait("a".into())
        );
        l.release("k", "a").unwrap();
        generates(l.look("k", "b", 1, |_| true).unwrap());
        // b's job folder is gone without a delivery (a crash midway): c takes over.
        generates(l.look("k", "c", 1, |j| j != "b").unwrap());
    }

    #[test]
    fn of_many_threads_claiming_one_key_exactly_one_generates() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let winners: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..16)
                .map(|i| {
                    let l = l.clone();
                    s.spawn(move || l.look("k", &format!("j{i}"), 1, |_| true).unwrap())
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|l| matches!(l, Look::Generate(_)))
                .count()
        });
        assert_eq!(winners, 1);
    }

    // See: issue 21, item 1 — a path is not a video: what is there now must be what was recorded.
    #[test]
    fn only_a_copy_that_is_still_the_recorded_video_is_reused() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let v = video_at(d.path(), "done/cat.mp4", b"the first video", 1);
        l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
        let cat = d.path().join("done/cat.mp4");

        // Another video of the same size in its place: not it.
        fs::remove_file(&cat).unwrap();
        fs::write(&cat, b"the other video").unwrap();
        assert!(l.peek("k").is_none());
        // The same bytes written anew (another inode, another mtime): it, by its hash.
        fs::remove_file(&cat).unwrap();
        fs::write(&cat, b"the first video").unwrap();
        assert_eq!(l.peek("k").unwrap().files, ["done/cat.mp4"]);
        // A symlink to the same bytes: not a delivered file.
        #[cfg(unix)]
        {
            let elsewhere = d.path().join("elsewhere.mp4");
            fs::rename(&cat, &elsewhere).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &cat).unwrap();
            assert!(l.peek("k").is_none());
            assert!(generates(l.look("k", "b", 1, |_| true).unwrap()).is_empty());
        }
    }

    // See: issue 21, item 1 — an entry of an earlier version names paths only: trusted while the
    // result.json beside the path names the entry's job.
    #[test]
    fn an_entry_of_an_earlier_version_is_trusted_only_while_its_result_json_names_its_job() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        fs::create_dir_all(d.path().join("done")).unwrap();
        fs::create_dir_all(&l.dir).unwrap();
        let old = json!({"state": "done", "job": "a", "at": "t", "task_ids": ["task-a"],
            "files": ["done/cat.mp4"]});
        fs::write(l.path("k"), old.to_string()).unwrap();
        fs::write(d.path().join("done/cat.mp4"), b"a video").unwrap();
        let result = |job: &str| json!({"job_id": job, "kind": "image", "seed": 7}).to_string();
        fs::write(d.path().join("done/cat.result.json"), result("b")).unwrap();
        assert!(l.peek("k").is_none(), "another job's delivery");
        fs::write(d.path().join("done/cat.result.json"), result("a")).unwrap();
        let found = reuses(l.look("k", "c", 1, |_| true).unwrap());
        assert_eq!(found[0].video.task_id.as_deref(), Some("task-a"));
        assert_eq!(found[0].video.seed, Some(7));
        assert_eq!(found[0].video.bytes, 7);
    }

    // See: issue 21, item 2 — a kill after the move into done/ and before the entry's last write.
    #[test]
    fn a_pending_entry_whose_job_delivered_is_completed_from_its_result_json() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        generates(l.look("k", "a", 2, |_| true).unwrap());
        fs::create_dir_all(d.path().join("done/client")).unwrap();
        for n in [1, 2] {
            fs::write(d.path().join(format!("done/client/cat-v{n}.mp4")), [n; 9]).unwrap();
        }
        let result = json!({"job_id": "a", "kind": "image", "variants": [
            {"n": 1, "file": "cat-v1.mp4", "seed": 5, "task_id": "t1"},
            {"n": 2, "file": "cat-v2.mp4", "seed": 6, "task_id": "t2"}]});
        fs::write(
            d.path().join("done/client/cat.result.json"),
            result.to_string(),
        )
        .unwrap();
        // While a's folder holds a job, it is in flight; once it holds none, it delivered.
        assert_eq!(
            l.look("k", "b", 2, |_| true).unwrap(),
            Look::Wait("a".into())
        );
        let found = reuses(l.look("k", "b", 2, |_| false).unwrap());
        let files: Vec<&str> = found.iter().map(|f| f.copy.file.as_str()).collect();
        assert_eq!(files, ["done/client/cat-v1.mp4", "done/client/cat-v2.mp4"]);
        assert_eq!(found[1].video.seed, Some(6));
        assert_eq!(l.read_entry("k").unwrap().state, EntryState::Done);
        // A job that delivered nothing: taken over.
        fs::remove_file(l.path("k")).unwrap();
        generates(l.look("k", "z", 1, |_| true).unwrap());
        generates(l.look("k", "y", 1, |_| false).unwrap());
    }

    // See: issue 21, item 3.
    #[test]
    fn a_refusal_is_remembered_for_a_day_then_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        generates(l.look("k", "a", 1, |_| true).unwrap());
        let why = Failure {
            message: "moderation".into(),
            advice: "change it".into(),
            api: Some("failureCode SAFETY.INPUT.IMAGE: no".into()),
        };
        let error_file = Some("failed/cat.error.txt".to_string());
        fs::create_dir_all(d.path().join("failed")).unwrap();
        fs::write(d.path().join("failed/cat.error.txt"), "refused").unwrap();
        l.record_refused("k", "b", &why).unwrap();
        assert_eq!(
            l.read_entry("k").unwrap().state,
            EntryState::Pending,
            "not b's"
        );
        l.record_refused("k", "a", &why).unwrap();
        l.refusal_kept_by("k", "a", error_file.as_deref().unwrap())
            .unwrap();
        let Look::Refused(e) = l.look("k", "b", 1, |_| true).unwrap() else {
            panic!("refused");
        };
        assert_eq!(e.refusal, Some(why));
        assert!(l.peek("k").is_none());
        // A day later: sent again.
        let mut e = l.read_entry("k").unwrap();
        let fresh = e.clone();
        e.at = humantime::format_rfc3339_seconds(SystemTime::now() - REFUSAL_MEMORY).to_string();
        l.write("k", &e).unwrap();
        generates(l.look("k", "c", 1, |_| true).unwrap());
        // Or at once, once the refused job left failed/ (`dropreel retry`, the dashboard's Retry):
        // someone chose to try it again.
        l.write("k", &fresh).unwrap();
        assert!(matches!(
            l.look("k", "d", 1, |_| true).unwrap(),
            Look::Refused(_)
        ));
        fs::remove_file(d.path().join("failed/cat.error.txt")).unwrap();
        generates(l.look("k", "d", 1, |_| true).unwrap());
    }

    // See: issue 21, items 4 and 5 — takes still there are reused, from any copy recorded.
    #[test]
    fn the_takes_still_there_are_found_from_any_copy() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let v1 = video_at(d.path(), "done/cat-v1.mp4", b"one", 1);
        let v2 = video_at(d.path(), "done/cat-v2.mp4", b"two", 2);
        l.record_done("k", &Entry::done("a", 2, vec![v1, v2]))
            .unwrap();
        // A reuse delivers a copy of each take; recorded, they serve when the first is gone.
        let found = reuses(l.look("k", "b", 2, |_| true).unwrap());
        let mut copies = Vec::new();
        for f in &found {
            let dst = d.path().join(format!("done/b-v{}.mp4", f.video.take));
            assert!(l.copy_video(f, &dst).unwrap());
            copies.push((
                f.video.take,
                identify(&dst).unwrap(),
                format!("done/b-v{}.mp4", f.video.take),
            ));
        }
        l.add_copies("k", "a", &found, &copies).unwrap();
        fs::remove_file(d.path().join("done/cat-v1.mp4")).unwrap();
        let found = reuses(l.look("k", "c", 2, |_| true).unwrap());
        assert_eq!(found[0].copy.file, "done/b-v1.mp4");
        assert_eq!(found[1].copy.file, "done/cat-v2.mp4");
        // Take 2 gone in every copy: take 1 is found, and c makes take 2.
        fs::remove_file(d.path().join("done/cat-v2.mp4")).unwrap();
        fs::write(d.path().join("done/b-v2.mp4"), b"owt").unwrap();
        let found = generates(l.look("k", "c", 2, |_| true).unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].video.take, 1);
        assert_eq!(l.read_entry("k").unwrap().job, "c", "claimed by c");
    }

    // See: issue 21, item 5 — twins delivered at once each record their copy; none is lost.
    #[test]
    fn copies_recorded_by_many_jobs_at_once_are_all_kept() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let v = video_at(d.path(), "done/x.mp4", b"video", 1);
        l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
        let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
        let root = d.path();
        std::thread::scope(|s| {
            for i in 0..12 {
                let (l, found) = (l.clone(), found.clone());
                s.spawn(move || {
                    let rel = format!("done/copy{i}.mp4");
                    assert!(l.copy_video(&found[0], &root.join(&rel)).unwrap());
                    let seen = identify(&root.join(&rel)).unwrap();
                    l.add_copies("k", "a", &found, &[(1, seen, rel)]).unwrap();
                });
            }
        });
        let copies = &l.read_entry("k").unwrap().videos[0].copies;
        assert_eq!(copies.len(), 13, "{copies:?}");
    }

    #[test]
    fn a_copy_that_changed_after_it_was_found_is_not_delivered() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(d.path());
        let v = video_at(d.path(), "done/cat.mp4", b"video", 1);
        l.record_done("k", &Entry::done("a", 1, vec![v])).unwrap();
        let found = reuses(l.look("k", "b", 1, |_| true).unwrap());
        fs::remove_file(d.path().join("done/cat.mp4")).unwrap();
        fs::write(d.path().join("done/cat.mp4"), b"VIDEO").unwrap();
        let dst = d.path().join("out.mp4");
        assert!(!l.copy_video(&found[0], &dst).unwrap());
        assert!(!dst.exists());
    }
}
