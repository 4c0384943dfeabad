//! `processing/.instance-<id>.json`: what a running dropreel instance tells `dropreel status` — who
//! it is, how many jobs it drives, which load of the config is in force, any pause of
//! submission, and the files in inbox/ it found not whole. Written by the pipeline ([`Writer`]),
//! read by `status` ([`running`]); one typed file for both, so neither can drift from the other.
//! A file whose writer is gone (killed, crashed) is told apart from a running instance: its pid is
//! dead on this host, or it has not been written for longer than its lease (it is rewritten at
//! every lease renewal).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::Hold;
use crate::studio::layout::PROCESSING;
use crate::studio::spool::Spool;

/// The name every instance file starts with.
const PREFIX: &str = ".instance-";

/// One instance's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub instance: String,
    pub host: String,
    pub pid: u32,
    /// `watch` or `run`.
    pub mode: String,
    /// `runway` or `local`.
    pub backend: String,
    pub started: String,
    #[serde(default)]
    pub updated: String,
    /// Its `watch.lease` in milliseconds: it rewrites its file at least four times as often.
    #[serde(default)]
    pub lease_ms: u64,
    /// Jobs it drives now.
    #[serde(default)]
    pub jobs: usize,
    #[serde(default)]
    pub settings: SettingsLoad,
    #[serde(default)]
    pub hold: Option<HoldShown>,
    /// Files waiting in inbox/ that are not whole yet.
    #[serde(default)]
    pub not_whole: Vec<NotWholeShown>,
}

/// A file in inbox/ that is not whole, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotWholeShown {
    /// Its path under inbox/.
    pub file: String,
    /// Where it stops.
    pub why: String,
    /// When it goes to `failed/` as truncated if it stays unchanged (RFC 3339).
    pub gives_up_at: String,
}

/// Which load of the config file is in force.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SettingsLoad {
    /// 1 at start, one more per edit applied.
    pub version: u32,
    pub loaded: String,
    /// Why the file as it is now is not in force (a bad edit), if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// A pause of submission, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldShown {
    pub cause: String,
    pub detail: String,
    pub next_try: String,
}

/// Keeps this instance's file up to date.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: Instance,
}

impl Writer {
    /// This instance's file (not written yet). Files of instances that died without a clean stop
    /// (see [`Liveness::removable`]) are removed.
    pub fn new(spool: &Spool, mode: &str, backend: &str) -> Writer {
        let o = spool.owner();
        let processing = spool.root().join(PROCESSING);
        for (path, found) in files(&processing) {
            if liveness(&path, found.as_ref(), &o.host, o.ttl).removable() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let now = crate::studio::clock::now_rfc3339();
        Writer {
            path: processing.join(format!("{PREFIX}{}.json", o.instance)),
            file: Instance {
                instance: o.instance.clone(),
                host: o.host.clone(),
                pid: o.pid,
                mode: mode.to_string(),
                backend: backend.to_string(),
                started: now.clone(),
                updated: now.clone(),
                lease_ms: u64::try_from(o.ttl.as_millis()).unwrap_or(u64::MAX),
                jobs: 0,
                settings: SettingsLoad {
                    version: 1,
                    loaded: now,
                    error: None,
                },
                hold: None,
                not_whole: Vec::new(),
            },
        }
    }

    /// The files in inbox/ found not whole, for the next write.
    pub fn set_not_whole(&mut self, files: Vec<NotWholeShown>) {
        self.file.not_whole = files;
    }

    /// A new load of the config is in force (`version`), or the file as it is now is not (`error`).
    pub fn settings_changed(&mut self, version: u32, error: Option<String>) {
        if self.file.settings.version != version {
            self.file.settings.version = version;
            self.file.settings.loaded = crate::studio::clock::now_rfc3339();
        }
        self.file.settings.error = error;
    }

    /// Writes the file (atomically) with the current hold and job count.
    pub fn write(&mut self, hold: Option<&Hold>, jobs: usize) {
        self.file.updated = crate::studio::clock::now_rfc3339();
        self.file.jobs = jobs;
        self.file.hold = hold.map(|h| HoldShown {
            cause: h.describe(),
            detail: h.detail.clone(),
            next_try: crate::studio::clock::rfc3339(h.until_wall),
        });
        let (Some(dir), Some(name)) = (
            self.path.parent(),
            self.path.file_name().and_then(|n| n.to_str()),
        ) else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(&self.file)
            && let Err(e) = crate::studio::durable::write_atomic(dir, name, &bytes)
        {
            tracing::debug!(error = %e, "cannot write the instance status file");
        }
    }

    /// Removes the file (clean stop).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The instance files in `processing`, each with its content when readable — temp files of a
/// write in progress (or cut short by a kill) included, so they are cleaned up like the rest.
fn files(processing: &Path) -> Vec<(PathBuf, Option<Instance>)> {
    let Ok(entries) = std::fs::read_dir(processing) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .map(|e| {
            let found = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            (e.path(), found)
        })
        .collect()
}

/// Whether the writer of an instance file is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// Its process is gone (on this host): it stopped without cleaning up.
    Dead,
    /// Not written for `age`, longer than its `lease`: it stopped without cleaning up, or it is
    /// cut off (another machine that lost the share, or asleep).
    Silent {
        age: Duration,
        lease: Duration,
    },
}

impl Liveness {
    /// Whether its file may go: its process is gone, or it has been silent for three leases
    /// (an instance that comes back writes its file again).
    pub fn removable(self) -> bool {
        match self {
            Liveness::Running => false,
            Liveness::Dead => true,
            Liveness::Silent { age, lease } => age > lease * 3,
        }
    }
}

/// Judges the instance file at `path` (content `found`, if readable) from this `host`; `lease`
/// when the file does not say its own.
fn liveness(path: &Path, found: Option<&Instance>, host: &str, lease: Duration) -> Liveness {
    if found
        .is_some_and(|i| i.host == host && crate::studio::lease::pid_alive(i.pid) == Some(false))
    {
        return Liveness::Dead;
    }
    let lease = found
        .map(|i| Duration::from_millis(i.lease_ms))
        .filter(|l| !l.is_zero())
        .unwrap_or(lease);
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    if age > lease {
        Liveness::Silent { age, lease }
    } else {
        Liveness::Running
    }
}

/// The instances on the studio at `root`, oldest first, each with whether it still runs (a torn
/// or unreadable file is left out). `lease` judges a file that does not say its own. Files of
/// instances gone for good are removed (see [`Liveness::removable`]).
pub fn running(root: &Path, lease: Duration) -> Vec<(Instance, Liveness)> {
    let host = crate::studio::lease::host_name();
    let mut out: Vec<(Instance, Liveness)> = files(&root.join(PROCESSING))
        .into_iter()
        .filter_map(|(path, found)| {
            let live = liveness(&path, found.as_ref(), &host, lease);
            if live.removable() {
                let _ = std::fs::remove_file(&path);
            }
            let json = path.extension().is_some_and(|e| e == "json");
            Some((found.filter(|_| json)?, live))
        })
        .collect();
    out.sort_by(|a, b| a.0.started.cmp(&b.0.started));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // A SIGKILL during the atomic write leaves `.instance-<id>.json.tmp`: it is a dead instance's
    // file like any other, and the next start removes it (the reliability test found one left).
    #[test]
    fn a_dead_instances_files_are_removed_temp_files_included() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut dead = Writer::new(&spool, "watch", "local");
        dead.file.pid = u32::MAX; // no such process on this host
        let json = serde_json::to_vec(&dead.file).unwrap();
        let processing = d.path().join(PROCESSING);
        std::fs::write(processing.join(".instance-dead.json"), &json).unwrap();
        std::fs::write(processing.join(".instance-dead.json.tmp"), &json).unwrap();
        let mut live = Writer::new(&spool, "run", "local");
        live.write(None, 0);
        let left: Vec<String> = std::fs::read_dir(&processing)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let found = running(d.path(), Duration::from_secs(60));
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].0.mode.as_str(), found[0].1),
            ("run", Liveness::Running)
        );
    }
}
