//! The studio folders as a durable queue: `claim` (an atomic rename from `inbox/` into
//! `processing/<job-id>/`) and its reverse `unclaim` (a job never sent back into `inbox/`), the job
//! state file `job.json` (written atomically at every change), `deliver`
//! to `done/` and `fail` to `failed/` (into the file's folder there, with collision-safe names), the
//! job folders' listing for [`crate::run::recover`]. What `job.json` holds is [`crate::studio::record`];
//! the names are [`crate::studio::layout`]'s. Also what a studio root is ([`root`]) and how many jobs
//! each folder holds ([`counts`], for `status`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::studio::durable::{copy_durably, move_no_clobber, same_file, sync_dir, write_atomic};
use crate::studio::layout::{
    self, DONE, FAILED, INBOX, PROCESSING, STATE_FILE, fit_stem, split_name,
};
use crate::studio::lease::{LEASE_FILE, Owner};
use crate::studio::source::Source;

mod counts;
pub mod root;

pub use root::{RootError, RootKind, check_root};

pub use crate::studio::record::{Delivery, Failure, JobRecord, RenderInfo, State};

/// A fresh job id: sortable by time, unique across processes and machines.
pub fn new_job_id() -> String {
    let t: String = crate::studio::clock::now_rfc3339()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("{t}-{:08x}", fastrand::u32(..))
}

/// A job folder just made by [`Spool::claim`], with the companions that came along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub sidecar: Option<String>,
    pub last_frame: Option<String>,
}

/// The four folders of a studio root.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    owner: Owner,
    /// The stems present in `done/` and `failed/`, so choosing a collision-free name does not
    /// read a folder of thousands of files per delivery.
    stems: Arc<Mutex<HashMap<String, StemIndex>>>,
}

/// The stems of one output folder, valid while the folder's mtime is the one recorded.
#[derive(Debug, Default)]
struct StemIndex {
    mtime: Option<SystemTime>,
    stems: HashSet<String>,
}

/// Every stem a file name answers to for the suffix rule: `cat.result.json` is a `cat.*` and a
/// `cat.result.*` file.
fn stems_of(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.')
        .map(move |(i, _)| &name[..i])
        .filter(|s| !s.is_empty())
        .chain(std::iter::once(name))
}

impl Spool {
    /// Creates a studio at `root` (parents included) with its four folders (`dropreel init`).
    pub fn create(root: &Path) -> io::Result<Spool> {
        // Made first, so the folder is a studio whatever else it holds.
        fs::create_dir_all(root.join(INBOX))?;
        Spool::open(root)
    }

    /// Opens the existing studio at `root`, creating missing folders inside it. A `root` that does
    /// not exist, or a folder that holds other things and no studio, is an error (see
    /// [`check_root`]); an empty folder becomes a studio.
    pub fn open(root: &Path) -> io::Result<Spool> {
        Spool::open_as(root, Owner::new(Duration::from_secs(60)))
    }

    /// Opens the existing studio with this process's lease identity.
    pub fn open_as(root: &Path, owner: Owner) -> io::Result<Spool> {
        check_root(root)?;
        for dir in [INBOX, PROCESSING, DONE, FAILED] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(Spool {
            root: root.to_path_buf(),
            owner,
            stems: Arc::default(),
        })
    }

    /// Refuses a studio whose folders are not all on one file system: moves between them would
    /// be copies, not atomic renames (and fail with "Invalid cross-device link").
    pub fn check_one_file_system(&self) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let dev = |d: &str| fs::metadata(self.root.join(d)).map(|m| m.dev());
            let processing = dev(PROCESSING)?;
            for d in [INBOX, DONE, FAILED] {
                if dev(d)? != processing {
                    return Err(io::Error::other(format!(
                        "{d}/ in {} is on another file system than processing/ (a mount or a \
                         symlinked folder): moving files between them is not an atomic rename, so \
                         dropreel does not start. Keep inbox/, processing/, done/ and failed/ on one \
                         file system",
                        self.root.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The studio file system's current time: the mtime of a file written just now in
    /// `processing/` (a NAS's clock may differ from this machine's).
    pub fn fs_now(&self) -> Option<SystemTime> {
        let probe = self
            .root
            .join(PROCESSING)
            .join(format!(".clock-{}", self.owner.instance));
        let now = fs::write(&probe, b"t")
            .and_then(|()| fs::metadata(&probe)?.modified())
            .ok();
        // Also when the write failed (a full disk can leave an empty file).
        let _ = fs::remove_file(&probe);
        now
    }

    /// This process as a lease holder.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Takes over the job `id` if nobody live holds it (see [`crate::studio::lease`]).
    pub fn adopt(&self, id: &str) -> io::Result<bool> {
        self.owner.adopt(&self.job_dir(id))
    }

    /// Renews this process's lease on job `id`, saying whether the job is still ours.
    pub fn renew(&self, id: &str) -> io::Result<crate::studio::lease::Renewal> {
        self.owner.renew(&self.job_dir(id))
    }

    /// Gives up the lease on job `id` (clean stop).
    pub fn release(&self, id: &str) {
        self.owner.release(&self.job_dir(id));
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn inbox(&self) -> PathBuf {
        self.root.join(INBOX)
    }
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(PROCESSING).join(id)
    }

    /// Takes a job file and its companions (sidecar, last keyframe; named by their path relative to
    /// inbox/, in the source's folder) out of the inbox into a new job folder. `Ok(None)` when the file is gone: another instance took it, or the user pulled it
    /// back — both normal. With `copy_shared`, the companions are copied rather than moved (other
    /// files of their stem still need them). A claim that fails midway (a full disk) leaves nothing
    /// behind: the files are back in the inbox and the job folder is gone.
    pub fn claim(
        &self,
        source: &Source,
        sidecar: Option<&str>,
        last_frame: Option<&str>,
        copy_shared: bool,
    ) -> io::Result<Option<Claimed>> {
        let image = source.name.as_str();
        // The file and its companions sit in the source's folder under inbox/.
        let from = self.inbox().join(source.rel_path());
        let folder = from
            .parent()
            .map_or_else(|| self.inbox(), Path::to_path_buf);
        let id = new_job_id();
        let dir = self.job_dir(&id);
        fs::create_dir(&dir)?;
        // The lease exists before the image arrives, so no other instance ever sees the job
        // without an owner.
        if let Err(e) = self.owner.take_new(&dir) {
            abandon_claim(&dir);
            return Err(e);
        }
        match fs::rename(&from, dir.join(image)) {
            Ok(()) => {}
            Err(e) => {
                abandon_claim(&dir);
                return if e.kind() == io::ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        }
        let mut taken: Vec<Option<String>> = Vec::new();
        for companion in [sidecar, last_frame] {
            // Named relative to inbox/ (beside the file); in the job folder by its own name.
            let name = companion.map(|c| c.rsplit('/').next().unwrap_or(c));
            let result = match (companion, name) {
                (Some(c), Some(n)) if copy_shared => {
                    copy_durably(&self.inbox().join(c), &dir, n).map(|()| true)
                }
                (Some(c), Some(n)) => fs::rename(self.inbox().join(c), dir.join(n)).map(|()| true),
                _ => Ok(false),
            };
            match result {
                Ok(true) => taken.push(name.map(str::to_string)),
                Ok(false) => taken.push(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => taken.push(None),
                Err(e) => {
                    // Put back what was moved: the claim is retried as a whole.
                    if !copy_shared {
                        for c in taken.iter().flatten() {
                            let _ = fs::rename(dir.join(c), folder.join(c));
                        }
                    }
                    let _ = fs::rename(dir.join(image), &from);
                    abandon_claim(&dir);
                    return Err(e);
                }
            }
        }
        sync_dir(&dir)?;
        sync_dir(&self.inbox())?;
        let mut taken = taken.into_iter();
        Ok(Some(Claimed {
            id,
            sidecar: taken.next().flatten(),
            last_frame: taken.next().flatten(),
        }))
    }

    /// Puts a job back into `inbox/` — its file, sidecar and last keyframe, each under its own
    /// name in the folder it came from — and removes its job folder; the names, as in `inbox/`
    /// (companions first, the job file last). Nothing there is ever overwritten: when a name is
    /// taken (a new file dropped meanwhile), the job stays where it is and the error names the file.
    /// A sidecar that is a copy (other files of its stem kept the original) is dropped when the
    /// original is still there. Crash-safe: `job.json` says `returning` before the first file moves,
    /// a file already back is skipped, and [`crate::run::recover`] calls this again for a return a kill
    /// interrupted.
    pub fn unclaim(&self, rec: &mut JobRecord) -> io::Result<Vec<String>> {
        let dir = self.job_dir(&rec.id);
        let folder = rec.source.folder.clone();
        let inbox = match folder.as_str() {
            "" => self.inbox(),
            f => self.inbox().join(f),
        };
        let mut files: Vec<String> = rec.sidecar.iter().cloned().collect();
        files.extend(rec.kind.last_frame().map(str::to_string));
        files.push(rec.source.name.clone());
        let taken = |name: &str| {
            let (from, to) = (dir.join(name), inbox.join(name));
            from.exists() && to.exists() && !same_file(&from, &to)
        };
        if let Some(name) = files.iter().find(|n| taken(n)) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists already (dropped since the job was claimed)",
                    Path::new(INBOX).join(&folder).join(name).display()
                ),
            ));
        }
        if !rec.returning {
            rec.returning = true;
            self.save(rec)?;
        }
        fs::create_dir_all(&inbox)?;
        for name in &files {
            let (from, to) = (dir.join(name), inbox.join(name));
            if !from.exists() {
                // Back before a crash (or never claimed with the job).
                continue;
            }
            match move_no_clobber(&from, &to) {
                Ok(()) => {}
                // The same file: a shared sidecar's copy, or a move a crash cut between its link
                // and the removal.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && same_file(&from, &to) => {
                    fs::remove_file(&from)?
                }
                Err(e) => return Err(e),
            }
        }
        sync_dir(&inbox)?;
        self.remove_job_dir(&rec.id)?;
        Ok(files
            .into_iter()
            .map(|n| match folder.as_str() {
                "" => n,
                f => format!("{f}/{n}"),
            })
            .collect())
    }

    /// Writes `job.json` (or a take's `variant-<n>.json`) atomically: temp file, fsync, rename,
    /// fsync of the folder.
    pub fn save(&self, rec: &JobRecord) -> io::Result<()> {
        let dir = self.job_dir(&rec.id);
        let json = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        write_atomic(&dir, &rec.state_file(), &json)
    }

    /// Reads take `n`'s state file of job `id`; `Ok(None)` when the take has not started.
    pub fn load_variant(&self, id: &str, n: u32) -> io::Result<Option<JobRecord>> {
        match fs::read(self.job_dir(id).join(layout::variant_state_file(n))) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a job's state file.
    pub fn load(&self, id: &str) -> io::Result<JobRecord> {
        let bytes = fs::read(self.job_dir(id).join(STATE_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Whether job folder `id` holds a job: its state file, or a job file (a claim that stopped
    /// before writing the state). A folder with neither — a claim in progress, or what one left:
    /// a lease, other programs' files such as `.DS_Store` — is no job (yet).
    pub fn holds_job(&self, id: &str) -> bool {
        let dir = self.job_dir(id);
        dir.join(STATE_FILE).exists()
            || fs::read_dir(&dir).is_ok_and(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    crate::intake::kind_of(&name).is_job() && !crate::intake::is_ignored(&name)
                })
            })
    }

    /// Job folders in `processing/`, oldest first.
    pub fn job_ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.root.join(PROCESSING))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.file_type()?.is_dir() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Moves the job's files into `done/` with its `result.json` (made by `result_json` once the
    /// name in `done/` is chosen) and its poster beside them, tells `delivered` (the job and its
    /// stem) once they are all there, and removes its folder. Until the folder is gone its
    /// `job.json` says where the files went, so a stop anywhere before that is delivered again by
    /// recovery, `delivered` included. A job with variants delivers each take's video that was
    /// made as `<stem>-v<n>.mp4` (poster `<stem>-v<n>.poster.jpg`).
    pub fn deliver(
        &self,
        rec: &mut JobRecord,
        result_json: impl FnOnce(&JobRecord, &str) -> Vec<u8>,
        delivered: impl FnOnce(&JobRecord, &str),
    ) -> io::Result<String> {
        let mut extra: Vec<(String, String)> = Vec::new();
        // A poster that was not made is not there to move (a missing file is skipped).
        let output = rec.output();
        if rec.takes.is_empty() {
            extra.push((
                rec.output_file(),
                layout::video_suffix(output, None, rec.video_ext()),
            ));
            extra.push((rec.poster_file(), layout::poster_suffix(None)));
        }
        for t in rec.takes.iter().filter(|t| t.output_bytes.is_some()) {
            extra.push((
                rec.take_output(t.n),
                layout::video_suffix(output, Some(t.n), rec.video_ext()),
            ));
            extra.push((rec.take_poster(t.n), layout::poster_suffix(Some(t.n))));
        }
        extra.push((rec.result_file(), layout::result_suffix().to_string()));
        let report = |rec: &JobRecord, dir: &Path, stem: &str| {
            if rec.delivery.as_ref().is_some_and(|d| {
                self.root
                    .join(&d.folder)
                    .join(layout::result_name(stem))
                    .exists()
            }) {
                return Ok(());
            }
            write_atomic(dir, &rec.result_file(), &result_json(rec, stem))
        };
        self.finish(rec, DONE, &extra, report, delivered)
    }

    /// Moves the job's files into `failed/` with `error_text(rec, stem)` as `<stem>.error.txt`
    /// (told the stem chosen in `failed/`).
    pub fn fail(
        &self,
        rec: &mut JobRecord,
        error_text: impl FnOnce(&JobRecord, &str) -> String,
    ) -> io::Result<String> {
        let extra = [(rec.error_file(), layout::error_suffix().to_string())];
        let report = |rec: &JobRecord, dir: &Path, stem: &str| {
            let moved = rec.delivery.as_ref().is_some_and(|d| {
                self.root
                    .join(&d.folder)
                    .join(layout::error_name(stem))
                    .exists()
            });
            if moved {
                Ok(())
            } else {
                write_atomic(dir, &rec.error_file(), error_text(rec, stem).as_bytes())
            }
        };
        self.finish(rec, FAILED, &extra, report, |_, _| {})
    }

    /// The shared second half of deliver and fail: pick (or reuse) the collision-free stem, move
    /// every file of the job under it (`extra`: a file of the job folder and the suffix it takes
    /// after the stem), remove the job folder. Returns the stem used.
    /// `report` writes the job's report into its folder once the stem is chosen (it is told
    /// the stem; a delivery resumed after a crash may find the report moved already); `moved` is
    /// told once every file is in place, before the folder is removed.
    fn finish(
        &self,
        rec: &mut JobRecord,
        folder: &str,
        extra: &[(String, String)],
        report: impl FnOnce(&JobRecord, &Path, &str) -> io::Result<()>,
        moved: impl FnOnce(&JobRecord, &str),
    ) -> io::Result<String> {
        let dir = self.job_dir(&rec.id);
        // The file's folder under inbox/ is mirrored: inbox/a/b/cat.png ends in done/a/b/.
        let folder = &match rec.source.folder.as_str() {
            "" => folder.to_string(),
            sub => format!("{folder}/{sub}"),
        };
        let folder = folder.as_str();
        let target = self.root.join(folder);
        fs::create_dir_all(&target)?;
        let stem = match &rec.delivery {
            Some(d) if d.folder == folder => d.stem.clone(),
            _ => {
                // Every name of the job must fit the file system's 255-byte limit, with room for
                // the longest suffix (`.result.json`, the sidecar's extension) and a `-N`.
                let longest = extra
                    .iter()
                    .map(|(_, suffix)| suffix.len().saturating_sub(1))
                    .chain([split_name(&rec.source.name).1.len()])
                    .chain(rec.sidecar.iter().map(|s| split_name(s).1.len()))
                    .chain(
                        rec.kind
                            .last_frame()
                            .map(|l| "last.".len() + split_name(l).1.len()),
                    )
                    .max()
                    .unwrap_or(0);
                let base = fit_stem(rec.stem(), 255 - (longest + 1) - 4);
                let stem = self.reserve_stem(folder, base)?;
                rec.delivery = Some(Delivery {
                    folder: folder.to_string(),
                    stem: stem.clone(),
                });
                self.save(rec)?;
                stem
            }
        };
        report(rec, &dir, &stem)?;
        let mut moves: Vec<(String, String)> = Vec::new();
        moves.push((
            rec.source.name.clone(),
            layout::input_name(&stem, &rec.source.name),
        ));
        if let Some(sc) = &rec.sidecar {
            moves.push((sc.clone(), layout::input_name(&stem, sc)));
        }
        if let Some(last) = rec.kind.last_frame() {
            moves.push((last.to_string(), layout::last_frame_name(&stem, last)));
        }
        for (from, suffix) in extra {
            moves.push((from.clone(), format!("{stem}{suffix}")));
        }
        for (from, to) in &moves {
            match fs::rename(dir.join(from), target.join(to)) {
                Ok(()) => {}
                // Already moved before a crash.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&target)?;
        self.note_own_change(folder);
        moved(rec, &stem);
        self.remove_job_dir(&rec.id)?;
        Ok(stem)
    }

    /// Picks the first free stem of `stem`, `stem-2`, … in `folder` and reserves it (two jobs of
    /// this process never pick the same). The index is re-read whenever the folder changed
    /// behind our back (its mtime moved).
    fn reserve_stem(&self, folder: &str, stem: &str) -> io::Result<String> {
        let dir = self.root.join(folder);
        let mtime = fs::metadata(&dir)?.modified().ok();
        let mut all = self.stems.lock().expect("stem index lock");
        let index = all.entry(folder.to_string()).or_default();
        if index.mtime.is_none() || index.mtime != mtime {
            index.stems.clear();
            for entry in fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                index.stems.extend(stems_of(&name).map(str::to_string));
            }
            index.mtime = mtime;
        }
        let chosen = if index.stems.contains(stem) {
            (2u32..)
                .map(|n| format!("{stem}-{n}"))
                .find(|s| !index.stems.contains(s))
                .ok_or_else(|| io::Error::other("no free name"))?
        } else {
            stem.to_string()
        };
        index.stems.insert(chosen.clone());
        Ok(chosen)
    }

    /// Our own moves into `folder` changed its mtime: the index stays valid.
    fn note_own_change(&self, folder: &str) {
        let mtime = fs::metadata(self.root.join(folder))
            .and_then(|m| m.modified())
            .ok();
        if let Some(index) = self.stems.lock().expect("stem index lock").get_mut(folder) {
            index.mtime = mtime;
        }
    }

    /// Removes a finished job's folder: dropreel's own files in it (state, lease, partial or
    /// leftover outputs) and other programs' (`.DS_Store`, `Thumbs.db`: a file manager looked
    /// in), then the folder. Anything else found there is left, with a warning.
    pub fn remove_job_dir(&self, id: &str) -> io::Result<()> {
        let dir = self.job_dir(id);
        let ours = |n: &str| {
            layout::is_own_job_file(n)
                || n == LEASE_FILE
                || n.starts_with("lease.")
                || crate::intake::is_ignored(n)
        };
        // A lease renewal may race the removal and put a file back: go round a few times.
        for round in 0..5 {
            for entry in fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if ours(&name) {
                    match fs::remove_file(dir.join(&name)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(_) if round < 4 => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "the finished job's folder holds files dropreel did not make; left in processing/");
                    return Ok(());
                }
            }
        }
        sync_dir(&self.root.join(PROCESSING))
    }
}

/// Removes what a failed claim made in its job folder (leases, temp files), then the folder.
fn abandon_claim(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(LEASE_FILE) || name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests;
