//! The copies in `done/` of what the ledger recorded: what a video file is ([`Identity`]: size,
//! SHA-256 and a fingerprint that tells a file from another without reading it), which recorded
//! copies are still that video, what the `result.json` beside a copy says (for entries of earlier
//! versions, which name paths only, and for repairing an entry from a delivery), and putting a
//! copy into a job's folder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Entry, Found, Ledger, Placed, Video};
use crate::studio::layout;
use crate::studio::report::ResultFile;

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

/// Whether `found` holds every take from 1 to `takes`.
pub(super) fn covers(found: &[Found], takes: u32) -> bool {
    (1..=takes).all(|n| found.iter().any(|f| f.video.take == n))
}

/// A video a `result.json` says its job delivered beside it.
#[derive(Debug)]
pub(super) struct Beside {
    take: u32,
    name: String,
    seed: Option<u64>,
    task_id: Option<String>,
}

/// The job a `result.json` names and the videos it says that job delivered beside it.
pub(super) fn read_result(path: &Path) -> Option<(String, Vec<Beside>)> {
    let r = ResultFile::read(path)?;
    let stem = layout::result_stem(path.file_name()?.to_str()?)?;
    let videos = match &r.variants {
        Some(takes) => takes
            .iter()
            .filter(|t| t.n > 0)
            .filter_map(|t| {
                Some(Beside {
                    take: t.n,
                    name: t.file.clone()?,
                    seed: t.seed,
                    task_id: t.task_id.clone(),
                })
            })
            .collect(),
        None => vec![Beside {
            take: 1,
            name: format!(
                "{stem}{}",
                layout::video_suffix(r.output(), None, r.video_ext())
            ),
            seed: r.seed,
            task_id: r.task_id.clone(),
        }],
    };
    Some((r.job_id, videos))
}

impl Ledger {
    /// The takes of `entry` (up to `takes`) still in `done/`: for each, the first copy that is
    /// still the video recorded. Copies found to be something else are left out of its list.
    pub(super) fn still_there(&self, entry: &Entry, takes: u32) -> Vec<Found> {
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
    pub(super) fn verify(&self, p: &Placed, video: &Video) -> Option<Placed> {
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
    pub(super) fn legacy_there(&self, entry: &Entry, takes: u32) -> Vec<Found> {
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
    pub(super) fn legacy_take(&self, file: &str, job: &str) -> Option<Beside> {
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
    pub(super) fn delivered_by(&self, job: &str, takes: u32) -> Option<Entry> {
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
