//! `dropreel status`: counts per folder (and per folder inside them), the spend today and this
//! month against the budget, the organisation's balance and limits at Runway (as it last said),
//! notifications not delivered yet and those a receiver refused (set
//! aside), each running instance (with its pause of submission and the files it found not whole),
//! and the jobs in flight (state, task, progress, age), read from the studio's files only, so it
//! works while `watch` runs or after it stopped.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::studio::instance::Liveness;

use crate::studio::spool::Spool;

/// Spend today and this month, against the budget of the studio's `dropreel.yaml`.
fn spend_line(root: &Path) -> String {
    let budget = crate::config::parse_file(&root.join(crate::config::FILE_NAME))
        .map(|c| c.budget)
        .unwrap_or_default();
    let log = crate::studio::ledger::spend::SpendLog::new(root);
    let t = match log.totals(&jiff::Zoned::now()) {
        Ok(t) => t,
        Err(e) => return format!("spend: cannot read .dropreel/spend/ ({e})"),
    };
    let of = |spent: u64, limit: u64| match limit {
        0 => format!("{spent} credits (US${:.2}; no limit)", spent as f64 / 100.0),
        l => format!(
            "{spent} of {l} credits (US${:.2}; {} left)",
            spent as f64 / 100.0,
            l.saturating_sub(spent)
        ),
    };
    let mut line = format!(
        "spend: today {}; this month {}",
        of(t.today, budget.daily_credits),
        of(t.month, budget.monthly_credits)
    );
    if t.unpriced > 0 {
        let _ = write!(line, "; {} requests of unknown price", t.unpriced);
    }
    line
}

/// The status report as text.
pub fn report(root: &Path) -> std::io::Result<String> {
    let spool = Spool::open(root)?;
    let mut out = String::new();
    let _ = writeln!(out, "studio {}", root.display());
    for (name, n) in spool.counts()? {
        let what = match name {
            crate::studio::layout::INBOX => "waiting",
            crate::studio::layout::PROCESSING => "in flight",
            crate::studio::layout::DONE => "delivered",
            _ => "failed",
        };
        let jobs = if n == 1 { "job" } else { "jobs" };
        let _ = writeln!(out, "  {:<11}{n:>6} {jobs} {what}", format!("{name}/"));
    }
    let folders = spool.folder_counts()?;
    if !folders.is_empty() {
        let _ = writeln!(out, "by folder:        waiting  delivered  failed");
        for (folder, [waiting, done, failed]) in &folders {
            let _ = writeln!(
                out,
                "  {:<16}{waiting:>7}  {done:>9}  {failed:>6}",
                crate::shown(folder)
            );
        }
    }
    let _ = writeln!(out, "{}", spend_line(root));
    let config =
        crate::config::parse_file(&root.join(crate::config::FILE_NAME)).unwrap_or_default();
    for line in crate::backend::runway::organization::status_lines(root, &config)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "{line}");
    }
    if let Some(line) = crate::observe::notify::waiting_line(root) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(lines) = crate::observe::notify::set_aside_line(root) {
        let _ = writeln!(out, "{lines}");
    }
    // For an instance file that does not say its own lease.
    let lease = crate::config::parse_file(&root.join(crate::config::FILE_NAME))
        .unwrap_or_default()
        .watch
        .lease;
    for (inst, live) in crate::studio::instance::running(root, lease) {
        let gone = match live {
            Liveness::Running => None,
            Liveness::Dead => Some("its process is gone".to_string()),
            Liveness::Silent { age, .. } => Some(format!(
                "not heard from for {}",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )),
        };
        if let Some(why) = gone {
            let _ = writeln!(
                out,
                "instance {} pid {} ({}) stopped without cleaning up: {why}; last seen {}",
                inst.host, inst.pid, inst.mode, inst.updated,
            );
            continue;
        }
        let _ = writeln!(
            out,
            "instance {} pid {} ({} with {}, {} jobs, seen {})",
            inst.host, inst.pid, inst.mode, inst.backend, inst.jobs, inst.updated,
        );
        if let Some(e) = &inst.settings.error {
            let _ = writeln!(
                out,
                "  SETTINGS NOT APPLIED: the config file changed but cannot be used ({e}); the running settings stay"
            );
        }
        if let Some(hold) = &inst.hold {
            let _ = writeln!(
                out,
                "  SUBMISSION PAUSED: {} ({}); next try {}",
                hold.cause, hold.detail, hold.next_try,
            );
        }
        for f in &inst.not_whole {
            let at = humantime::parse_rfc3339(&f.gives_up_at)
                .map_or_else(|_| f.gives_up_at.clone(), crate::studio::clock::local_text);
            let _ = writeln!(
                out,
                "  not whole yet, waiting in inbox/: {} ({}); goes to failed/ at {at} unless the rest of it arrives",
                crate::shown(&f.file),
                crate::shown(&f.why),
            );
        }
    }
    // A folder with no job in it (a claim in progress, or what one left) is not in flight.
    let ids: Vec<String> = spool
        .job_ids()?
        .into_iter()
        .filter(|id| spool.holds_job(id))
        .collect();
    if ids.is_empty() {
        let _ = writeln!(out, "no jobs in flight");
        return Ok(out);
    }
    let _ = writeln!(out, "jobs in flight:");
    for id in ids {
        match spool.load(&id) {
            Ok(rec) => {
                let age = humantime::parse_rfc3339(&rec.claimed_at)
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .map(|d| {
                        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
                    })
                    .unwrap_or_else(|| "?".into());
                let state = serde_json::to_value(rec.state).ok();
                let state = state.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
                let mut line = format!(
                    "  {}  {}  {}  {state}",
                    rec.id,
                    rec.source.name,
                    rec.kind.name()
                );
                if let Some(t) = &rec.task_id {
                    let _ = write!(line, "  task {t}");
                }
                if let Some(s) = &rec.task_status {
                    let _ = write!(line, "  {s}");
                }
                if let Some(p) = rec.progress {
                    let _ = write!(line, " {:.0}%", p * 100.0);
                }
                let takes: Vec<String> = (1..=rec.spec.takes())
                    .filter(|_| rec.spec.takes() > 1)
                    .map(|n| match spool.load_variant(&rec.id, n) {
                        Ok(Some(t)) => {
                            let state = serde_json::to_value(t.state).ok();
                            let state = state.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
                            match (t.task_status.as_deref(), t.progress) {
                                (Some(s), Some(p)) => format!("v{n} {s} {:.0}%", p * 100.0),
                                (Some(s), None) => format!("v{n} {s}"),
                                _ => format!("v{n} {state}"),
                            }
                        }
                        _ => format!("v{n} waiting"),
                    })
                    .collect();
                if !takes.is_empty() {
                    let _ = write!(line, "  takes: {}", takes.join(", "));
                }
                if let Some(l) = crate::studio::lease::read(&spool.job_dir(&rec.id)) {
                    let _ = write!(line, "  held by {} pid {}", l.host, l.pid);
                }
                let _ = writeln!(out, "{line}  age {age}");
            }
            Err(e) => {
                let _ = writeln!(out, "  {id}  (no readable job.json: {e})");
            }
        }
    }
    Ok(out)
}
