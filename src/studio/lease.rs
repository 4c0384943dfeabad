//! Who works on a job: a `lease` file in each job folder names the dropreel instance (host, pid, a
//! random id) and when it last renewed it. Several instances may share a studio (on one machine or
//! over a NAS); a job is driven only by its lease holder. A lease that is not renewed within its
//! time to live — or whose holder is a dead process on this host — is taken over by the next live
//! instance that looks, so a job left by a crashed instance is resumed, and never by two at once.
//!
//! Every step that decides ownership is atomic on a shared file system: a new lease is created
//! exclusively (`O_EXCL`), and an expired one is first renamed aside, which succeeds for exactly one
//! of several instances racing for it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The lease file inside a job folder.
pub const LEASE_FILE: &str = "lease";

/// The content of a lease file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub instance: String,
    pub host: String,
    pub pid: u32,
    /// Unix time of the last renewal, in milliseconds.
    pub renewed_ms: u64,
}

/// What renewing a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours, renewed.
    Renewed,
    /// Another instance took the job over (this one was frozen past the lease, e.g. a laptop asleep).
    Lost,
    /// No lease any more: the job has just ended and its folder is going (or gone).
    Gone,
}

/// This process as a lease holder.
#[derive(Debug, Clone)]
pub struct Owner {
    pub instance: String,
    pub host: String,
    pub pid: u32,
    pub ttl: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The machine's name, for leases and `status`.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process of this host is alive; `None` where that cannot be told (no /proc).
pub fn pid_alive(pid: u32) -> Option<bool> {
    let proc_root = Path::new("/proc/self");
    if !proc_root.exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

/// Reads a job folder's lease; `None` when there is none or it is unreadable.
pub fn read(dir: &Path) -> Option<Lease> {
    let bytes = fs::read(dir.join(LEASE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Owner {
    /// A new identity for this process.
    pub fn new(ttl: Duration) -> Owner {
        Owner {
            instance: format!("{:016x}", fastrand::u64(..)),
            host: host_name(),
            pid: std::process::id(),
            ttl,
        }
    }

    fn lease(&self) -> Lease {
        Lease {
            instance: self.instance.clone(),
            host: self.host.clone(),
            pid: self.pid,
            renewed_ms: now_ms(),
        }
    }

    fn is_mine(&self, l: &Lease) -> bool {
        l.instance == self.instance
    }

    /// Whether `l` may be taken over: expired, or its holder is a dead process on this host.
    pub fn is_stale(&self, l: &Lease) -> bool {
        if self.is_mine(l) {
            return false;
        }
        let age = Duration::from_millis(now_ms().saturating_sub(l.renewed_ms));
        age > self.ttl || (l.host == self.host && pid_alive(l.pid) == Some(false))
    }

    /// Creates this instance's lease in `dir`; `false` when one already exists. The lease appears
    /// whole or not at all (written aside, then hard-linked into place, which fails if one exists),
    /// so a crash never leaves a lease that names nobody.
    pub fn take_new(&self, dir: &Path) -> io::Result<bool> {
        let json = serde_json::to_vec(&self.lease()).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{LEASE_FILE}.new-{}-{}", self.pid, self.instance));
        let written = fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let linked = fs::hard_link(&tmp, dir.join(LEASE_FILE));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // File systems without hard links: an exclusive create, written at once.
            Err(_) => match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(LEASE_FILE))
            {
                Ok(mut f) => {
                    f.write_all(&json)?;
                    f.sync_all()?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Whether a job folder without a usable lease was left by a claim that can no longer finish:
    /// the claimer's half-made lease names a dead process of this host, or it is a minute old.
    pub fn claim_abandoned(&self, dir: &Path) -> bool {
        if let Some(l) = read(dir) {
            return self.is_stale(&l);
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&format!("{LEASE_FILE}.new-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| p != self.pid && pid_alive(p) == Some(false)) {
                return true;
            }
        }
        fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60))
    }

    /// Takes `dir` over when its lease is missing, stale or already ours. `false`: a live
    /// instance holds it (or won the race for it).
    pub fn adopt(&self, dir: &Path) -> io::Result<bool> {
        let stale = match read(dir) {
            Some(l) if self.is_mine(&l) => return Ok(true),
            Some(l) if !self.is_stale(&l) => return Ok(false),
            Some(_) => true,
            // Unreadable (torn by a crash mid-write on a file system without atomic rename):
            // stale too.
            None => dir.join(LEASE_FILE).exists(),
        };
        if stale {
            // Exactly one of several racing instances renames the stale lease away.
            let aside = dir.join(format!("{LEASE_FILE}.stale-{}", self.instance));
            match fs::rename(dir.join(LEASE_FILE), &aside) {
                Ok(()) => {
                    let _ = fs::remove_file(&aside);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.take_new(dir)
    }

    /// Renews this instance's lease on `dir`, saying whether the job is still ours.
    pub fn renew(&self, dir: &Path) -> io::Result<Renewal> {
        match read(dir) {
            Some(l) if self.is_mine(&l) => {}
            // A job that ends removes its lease, then its folder: it ended here (delivered or
            // failed) a moment before the pipeline heard of it. A take-over always leaves a lease.
            None if !dir.join(LEASE_FILE).exists() => return Ok(Renewal::Gone),
            _ => return Ok(Renewal::Lost),
        }
        let json = serde_json::to_vec(&self.lease()).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{LEASE_FILE}.{}.tmp", self.instance));
        fs::write(&tmp, json)?;
        fs::rename(&tmp, dir.join(LEASE_FILE))?;
        Ok(Renewal::Renewed)
    }

    /// Gives the lease up (at a clean stop), so another instance may continue at once.
    pub fn release(&self, dir: &Path) {
        if read(dir).is_some_and(|l| self.is_mine(&l)) {
            let _ = fs::remove_file(dir.join(LEASE_FILE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time_and_stale_leases_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let a = Owner::new(Duration::from_millis(200));
        let b = Owner::new(Duration::from_millis(200));
        assert!(a.take_new(d.path()).unwrap());
        assert!(!b.take_new(d.path()).unwrap());
        assert!(!b.adopt(d.path()).unwrap(), "a fresh lease is respected");
        assert!(a.adopt(d.path()).unwrap(), "our own lease is ours");
        std::thread::sleep(Duration::from_millis(250));
        assert!(b.adopt(d.path()).unwrap(), "an expired lease is taken over");
        assert_eq!(
            a.renew(d.path()).unwrap(),
            Renewal::Lost,
            "the old holder learns it lost the job"
        );
        assert_eq!(b.renew(d.path()).unwrap(), Renewal::Renewed);
        b.release(d.path());
        assert!(read(d.path()).is_none());
    }

    // See: issue 21 — the README's first command warned "another dropreel instance took this job
    // over" when a lease renewal came just after a job was delivered and its folder removed.
    #[test]
    fn a_job_that_just_ended_is_gone_not_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let me = Owner::new(Duration::from_secs(60));
        let job = d.path().join("job");
        fs::create_dir(&job).unwrap();
        assert!(me.take_new(&job).unwrap());
        // Delivery removes the lease, then the folder.
        fs::remove_file(job.join(LEASE_FILE)).unwrap();
        assert_eq!(me.renew(&job).unwrap(), Renewal::Gone);
        fs::remove_dir(&job).unwrap();
        assert_eq!(me.renew(&job).unwrap(), Renewal::Gone);
    }

    #[test]
    fn a_dead_process_on_this_host_loses_its_lease_at_once() {
        let d = tempfile::tempdir().unwrap();
        let me = Owner::new(Duration::from_secs(3600));
        let dead = Lease {
            instance: "gone".into(),
            host: me.host.clone(),
            pid: u32::MAX - 7,
            renewed_ms: now_ms(),
        };
        fs::write(
            d.path().join(LEASE_FILE),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        if pid_alive(1).is_some() {
            assert!(me.adopt(d.path()).unwrap());
            assert_eq!(read(d.path()).unwrap().instance, me.instance);
        }
    }
}
