//! The spend log: one line per create request, written just before the request goes out, in
//! `ROOT/.dropreel/spend/<YYYY-MM>.jsonl` (a file per calendar month, local time). Every instance
//! on the studio appends to the same file under a file lock and reads what the others appended, so
//! the budget holds for the studio, not per process. A line is written (and, under a limit,
//! fsynced) before its request: a crash can over-count a request that never left, never under-count one that did; an
//! uncertain resubmission is written again, so it counts twice. When a task ends and Runway charged
//! other than what was counted (a refund included), a reconciling line adds the signed difference
//! ([`SpendLog::settle`]), once per task: the job's record says whether it was written, and the
//! log itself is looked at before writing, so a crash between the two neither loses nor doubles
//! it. Also the price of a request before it goes out ([`rate`]: `budget.rates`, the price Runway
//! reported lately, the catalog), and what it means under the budget before anything is counted: a
//! task dearer than a whole limit can never be sent ([`beyond_limit`]), and a model with no known
//! price cannot be kept within one ([`unpriced`]).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use jiff::Zoned;
use serde::{Deserialize, Serialize};

use crate::config::BudgetSection;
use crate::job::JobSpec;
use crate::job::models::{Endpoint, Models};
use crate::studio::ledger::prices::Prices;
use crate::studio::record::{Failure, whole_credits};

/// The spend log's folder under `ROOT/.dropreel/`.
pub const SUB: &str = "spend";
const LOCK_FILE: &str = ".lock";

/// One create request, as the log keeps it — or a task's reconciliation (`settles`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was written (RFC 3339, UTC).
    pub at: String,
    /// The calendar day it counts for, in local time (`2026-11-26`).
    pub day: String,
    /// Its price; `None` for a model whose price is not known (counted apart). A reconciling
    /// line's is the difference, signed: what Runway charged less what was counted.
    pub credits: Option<i64>,
    pub job: String,
    pub model: String,
    /// A resubmission after an unknown outcome (the first may have been paid too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncertain: bool,
    /// A reconciling line: the task whose final cost it accounts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settles: Option<String>,
    /// A reconciling line's: what the request's line counted (`None`: it was of unknown price,
    /// counted apart, and is priced now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<u64>,
}

/// What the studio spent, in credits (1 credit = US$0.01).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub today: u64,
    pub month: u64,
    /// Requests this month for models of unknown price (not in the figures above).
    pub unpriced: u64,
}

/// The limit a refused request would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

/// Why a request may not go out under the budget.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// It would pass a limit: submission waits until `resumes` (the next day or month).
    Over {
        period: Period,
        spent: u64,
        limit: u64,
        cost: u64,
        resumes: SystemTime,
    },
    /// Its model has no known price, so the budget cannot be kept.
    UnknownRate { model: String },
    /// It costs more than the whole limit: it could never be sent, whatever was spent.
    NeverFits {
        period: Period,
        limit: u64,
        cost: u64,
    },
}

/// How long a hold for a model of unknown price lasts before it is looked at again.
const UNKNOWN_RATE_RECHECK: Duration = Duration::from_secs(3600);

impl Refusal {
    /// What `status` and the log say about it.
    pub fn detail(&self) -> String {
        match self {
            Refusal::Over {
                period,
                spent,
                limit,
                cost,
                resumes,
            } => {
                let (key, when) = match period {
                    Period::Day => ("budget.daily_credits", "today"),
                    Period::Month => ("budget.monthly_credits", "this month"),
                };
                format!(
                    "{spent} of {limit} credits spent {when} ({key}); the next job costs {cost}. \
                     Submission resumes at {} (or raise {key} and restart dropreel)",
                    crate::studio::clock::local_text(*resumes)
                )
            }
            Refusal::UnknownRate { model } => format!(
                "model {model} has no known price, so the budget cannot be kept: set its credits per second \
                 under budget.rates in dropreel.yaml (e.g. `rates: {{{model}: 12}}`) and restart dropreel"
            ),
            Refusal::NeverFits {
                period,
                limit,
                cost,
            } => format!(
                "one task costs {cost} credits, more than the whole {} budget of {limit} ({})",
                period.adjective(),
                period.key()
            ),
        }
    }

    /// How long submission waits before it is tried again.
    pub fn wait(&self) -> Duration {
        match self {
            Refusal::Over { resumes, .. } => resumes
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .max(Duration::from_secs(1)),
            Refusal::UnknownRate { .. } | Refusal::NeverFits { .. } => UNKNOWN_RATE_RECHECK,
        }
    }
}

impl Period {
    /// Its limit's key in dropreel.yaml.
    pub fn key(self) -> &'static str {
        match self {
            Period::Day => "budget.daily_credits",
            Period::Month => "budget.monthly_credits",
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Period::Day => "daily",
            Period::Month => "monthly",
        }
    }
}

/// Where a price came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum PriceSource {
    /// `budget.rates` in `dropreel.yaml`.
    Rates,
    /// Runway's own estimate of an earlier task of the model, reported on the day `on`.
    Learnt { on: String },
    /// dropreel's catalog.
    Catalog,
    /// The local renderer: free.
    Local,
    /// No price known.
    Unknown,
}

impl std::fmt::Display for PriceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriceSource::Rates => f.write_str("budget.rates"),
            PriceSource::Learnt { on } => write!(f, "learnt from Runway on {on}"),
            PriceSource::Catalog => f.write_str("catalog"),
            PriceSource::Local => f.write_str("local renderer"),
            PriceSource::Unknown => f.write_str("unknown"),
        }
    }
}

/// The catalog's price of a job of `spec`, credits per second: the one the job was checked with
/// (its model's rate, with audio and format surcharges), or for a record written before jobs
/// carried it, its model's rate in the catalog as shipped.
pub fn catalog_rate(spec: &JobSpec) -> Option<u32> {
    spec.catalog_rate
        .or_else(|| Models::built_in().find(&spec.model)?.rate(false, None))
}

/// `model`'s price in credits per second, and where it came from: `budget.rates` first, then
/// the price Runway reported for it lately (`learnt`), then the catalog; else unknown.
pub fn rate(
    model: &str,
    rates: &BTreeMap<String, u32>,
    learnt: &Prices,
    catalog: Option<u32>,
) -> (Option<f64>, PriceSource) {
    if let Some(r) = rates.get(model) {
        return (Some(f64::from(*r)), PriceSource::Rates);
    }
    if let Some(l) = learnt.get(model) {
        let on = l.on.clone();
        return (Some(l.credits_per_second), PriceSource::Learnt { on });
    }
    match catalog {
        Some(r) => (Some(f64::from(r)), PriceSource::Catalog),
        None => (None, PriceSource::Unknown),
    }
}

/// The price of one task of `spec` (its model's [`rate`] times its duration, in whole credits) and
/// where it came from. `None` when the price is not known.
pub fn priced(
    spec: &JobSpec,
    rates: &BTreeMap<String, u32>,
    learnt: &Prices,
) -> (Option<u64>, PriceSource) {
    let (rate, from) = rate(&spec.model, rates, learnt, catalog_rate(spec));
    (
        rate.map(|r| whole_credits(r * f64::from(spec.duration))),
        from,
    )
}

/// Under a limit, why a job of `spec` cannot be priced (its model has no known price): it waits,
/// holding no one else up, until `budget.rates` or Runway (see [`rate`]) prices it. `None` when it
/// has a price or no limit is set. `learnt`: read only under a limit.
pub fn unpriced(
    spec: &JobSpec,
    budget: &BudgetSection,
    learnt: impl FnOnce() -> Prices,
) -> Option<Refusal> {
    (budget.limited() && cost(spec, &budget.rates, &learnt()).is_none()).then(|| {
        Refusal::UnknownRate {
            model: spec.model.clone(),
        }
    })
}

/// The failure of a job one task of which (a job with variants makes several) costs more than a
/// whole limit of `budget`: it could never be sent, so it is not held for it. Says its price, the
/// limit, and what would fit. `endpoint`: what the job makes (for a cheaper model that makes it).
/// `learnt`: read only under a limit.
pub fn beyond_limit(
    spec: &JobSpec,
    endpoint: Endpoint,
    budget: &BudgetSection,
    models: &Models,
    learnt: impl FnOnce() -> Prices,
) -> Option<Failure> {
    if !budget.limited() {
        return None;
    }
    let learnt = learnt();
    let cost = cost(spec, &budget.rates, &learnt)?;
    let (period, limit) = [
        (Period::Day, budget.daily_credits),
        (Period::Month, budget.monthly_credits),
    ]
    .into_iter()
    .find(|(_, limit)| *limit > 0 && cost > *limit)?;
    Some(never_fits(
        spec,
        endpoint,
        budget,
        (models, &learnt),
        (period, limit),
        cost,
    ))
}

/// The failure of a job that costs `cost` credits a task, over `period`'s whole `limit`; a cheaper
/// model is looked for among `models`, each priced as the budget prices it (`learnt` too).
pub fn never_fits(
    spec: &JobSpec,
    endpoint: Endpoint,
    budget: &BudgetSection,
    (models, learnt): (&Models, &Prices),
    (period, limit): (Period, u64),
    cost: u64,
) -> Failure {
    let each = if spec.takes() > 1 { " each take" } else { "" };
    let mut ways = vec![format!("raise {} to at least {cost}", period.key())];
    let rate = cost / u64::from(spec.duration.max(1));
    if rate > 0 && limit / rate >= 1 {
        ways.push(format!(
            "set a shorter duration (at {rate} credits a second, at most {} s fit)",
            limit / rate
        ));
    }
    let cheaper = models
        .iter()
        .filter(|m| !m.legacy && m.id != spec.model && m.rules(endpoint).is_some())
        .filter_map(|m| {
            let r =
                whole_credits(self::rate(&m.id, &budget.rates, learnt, m.credits_per_second).0?);
            (r < rate).then_some((r, m.id.as_str()))
        })
        .min();
    if let Some((r, id)) = cheaper {
        ways.push(format!(
            "use a cheaper model (model: {id}, {r} credits a second)"
        ));
    }
    Failure {
        message: format!(
            "{} for {} s costs {cost} credits{each} (US${:.2}), more than the whole {} budget of {limit} \
             credits ({}), so it could never be sent",
            spec.model,
            spec.duration,
            cost as f64 / 100.0,
            period.adjective(),
            period.key()
        ),
        advice: format!(
            "{}; then move the file back into inbox/ (or run `dropreel retry`)",
            crate::job::models::join_or(&ways)
        ),
        api: None,
    }
}

/// The price of one task of `spec` ([`priced`] without its source). `None` when it is not known.
pub fn cost(spec: &JobSpec, rates: &BTreeMap<String, u32>, learnt: &Prices) -> Option<u64> {
    priced(spec, rates, learnt).0
}

/// The studio's spend log, with what this process has read of it so far.
#[derive(Debug)]
pub struct SpendLog {
    dir: PathBuf,
    seen: Mutex<Seen>,
}

/// What has been read of the current month's file: its totals up to `offset`; and the lock file,
/// opened once.
#[derive(Debug, Default)]
struct Seen {
    month: String,
    offset: u64,
    /// Signed: a day's refunds may outweigh its requests read so far.
    by_day: BTreeMap<String, i64>,
    unpriced: u64,
    /// The tasks this month's reconciling lines settle.
    settled: HashSet<String>,
    lock_file: Option<File>,
}

impl Seen {
    /// Counts one line of this month's file.
    fn count(&mut self, e: Entry) {
        match (e.credits, &e.settles) {
            (Some(c), _) => *self.by_day.entry(e.day).or_default() += c,
            (None, None) => self.unpriced += 1,
            (None, Some(_)) => {}
        }
        if let Some(task) = e.settles {
            // A request of unknown price, priced now.
            if e.counted.is_none() {
                self.unpriced = self.unpriced.saturating_sub(1);
            }
            self.settled.insert(task);
        }
    }

    fn totals(&self, now: &Zoned) -> Totals {
        let today = self.by_day.get(&day_of(now)).copied().unwrap_or(0);
        Totals {
            today: today.max(0) as u64,
            month: self.by_day.values().sum::<i64>().max(0) as u64,
            unpriced: self.unpriced,
        }
    }
}

/// A reconciliation to write: task `task` of job `job` on `model` charged `charged` credits,
/// where its request's line counted `counted` for `day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle<'a> {
    pub job: &'a str,
    pub model: &'a str,
    pub task: &'a str,
    pub counted: Option<u64>,
    pub day: &'a str,
    pub charged: u64,
}

impl SpendLog {
    /// The spend log of the studio at `root` (nothing is created until a request is counted).
    pub fn new(root: &Path) -> SpendLog {
        SpendLog {
            dir: root.join(super::DIR).join(SUB),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// What was spent today and this month (as of `now`), by every instance.
    pub fn totals(&self, now: &Zoned) -> io::Result<Totals> {
        let mut seen = self.seen.lock().expect("spend lock");
        self.catch_up(&mut seen, now)
    }

    /// Counts one create request about to go out, unless it would pass a limit of `budget`: the
    /// totals after it, or why it must wait. Atomic across instances (a file lock).
    pub fn charge(
        &self,
        entry: Entry,
        budget: &BudgetSection,
        now: &Zoned,
    ) -> io::Result<Result<Totals, Refusal>> {
        self.locked(|log, seen| log.charge_locked(seen, entry, budget, now))
    }

    /// Writes the reconciling line of a task that ended, `charged` credits where `counted` were
    /// counted: the difference, counted for the day its request was (in that month's file). Once
    /// per task: `false` when the log has it already (written before a crash, say) or when there
    /// is no difference. Fsynced under a limit, like a request's line.
    pub fn settle(&self, s: &Settle<'_>, budget: &BudgetSection, now: &Zoned) -> io::Result<bool> {
        if s.counted == Some(s.charged) {
            return Ok(false);
        }
        self.locked(|log, seen| log.settle_locked(seen, s, budget, now))
    }

    /// Runs `f` with the studio-wide lock held.
    fn locked<T>(&self, f: impl FnOnce(&SpendLog, &mut Seen) -> io::Result<T>) -> io::Result<T> {
        let mut seen = self.seen.lock().expect("spend lock");
        let lock = match seen.lock_file.take() {
            Some(f) => f,
            None => {
                fs::create_dir_all(&self.dir)?;
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.dir.join(LOCK_FILE))?
            }
        };
        lock.lock()?;
        let counted = f(self, &mut seen);
        // Explicitly: the file stays open for the next request, so closing cannot release it.
        let unlocked = lock.unlock();
        seen.lock_file = Some(lock);
        unlocked?;
        counted
    }

    /// [`SpendLog::charge`] with the studio-wide lock held.
    fn charge_locked(
        &self,
        seen: &mut Seen,
        entry: Entry,
        budget: &BudgetSection,
        now: &Zoned,
    ) -> io::Result<Result<Totals, Refusal>> {
        let before = self.catch_up(seen, now)?;
        if budget.limited() {
            let Some(cost) = entry.credits else {
                return Ok(Err(Refusal::UnknownRate { model: entry.model }));
            };
            let cost = cost.max(0) as u64;
            for (period, spent, limit) in [
                (Period::Day, before.today, budget.daily_credits),
                (Period::Month, before.month, budget.monthly_credits),
            ] {
                if limit > 0 && cost > limit {
                    return Ok(Err(Refusal::NeverFits {
                        period,
                        limit,
                        cost,
                    }));
                }
                if limit > 0 && spent + cost > limit {
                    return Ok(Err(Refusal::Over {
                        period,
                        spent,
                        limit,
                        cost,
                        resumes: rollover(now, period),
                    }));
                }
            }
        }
        let written = self.append(&month_file(now), &entry, budget)?;
        // Our own line, counted without reading it back (nobody else appends while we hold the
        // lock).
        seen.offset += written;
        seen.count(entry);
        Ok(Ok(seen.totals(now)))
    }

    /// [`SpendLog::settle`] with the studio-wide lock held.
    fn settle_locked(
        &self,
        seen: &mut Seen,
        s: &Settle<'_>,
        budget: &BudgetSection,
        now: &Zoned,
    ) -> io::Result<bool> {
        self.catch_up(seen, now)?;
        // Its request's month: this one's, or (a task across a month's end) an earlier one's.
        let month = s
            .day
            .get(..7)
            .filter(|_| s.day.len() == 10)
            .map_or_else(|| month_file(now), |m| format!("{m}.jsonl"));
        let current = month == seen.month;
        let already = if current {
            seen.settled.contains(s.task)
        } else {
            self.settles_in(&month, s.task)?
        };
        if already {
            return Ok(false);
        }
        let entry = Entry {
            at: crate::studio::clock::now_rfc3339(),
            day: if s.day.is_empty() {
                day_of(now)
            } else {
                s.day.to_string()
            },
            credits: Some(s.charged as i64 - s.counted.unwrap_or(0) as i64),
            job: s.job.to_string(),
            model: s.model.to_string(),
            uncertain: false,
            settles: Some(s.task.to_string()),
            counted: s.counted,
        };
        let written = self.append(&month, &entry, budget)?;
        if current {
            seen.offset += written;
            seen.count(entry);
        }
        Ok(true)
    }

    /// Whether the month file `month` has a line settling `task`.
    fn settles_in(&self, month: &str, task: &str) -> io::Result<bool> {
        let text = match fs::read(self.dir.join(month)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(text.split(|b| *b == b'\n').any(|line| {
            serde_json::from_slice::<Entry>(line).is_ok_and(|e| e.settles.as_deref() == Some(task))
        }))
    }

    /// Appends `entry` as a line to the file `month`: its length in bytes.
    fn append(&self, month: &str, entry: &Entry, budget: &BudgetSection) -> io::Result<u64> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        fs::create_dir_all(&self.dir)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(month))?;
        file.write_all(&line)?;
        // Under a limit the line must survive a power cut too (the budget depends on it); without
        // one it is information for `status`, and a crash of dropreel alone never loses it.
        if budget.limited() {
            file.sync_data()?;
        }
        Ok(line.len() as u64)
    }

    /// Reads what was appended to this month's file since the last look (by any instance).
    fn catch_up(&self, seen: &mut Seen, now: &Zoned) -> io::Result<Totals> {
        let month = month_file(now);
        if seen.month != month {
            *seen = Seen {
                month: month.clone(),
                lock_file: seen.lock_file.take(),
                ..Seen::default()
            };
        }
        match File::open(self.dir.join(&month)) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(seen.offset))?;
                let mut text = Vec::new();
                f.read_to_end(&mut text)?;
                // Only whole lines: one being appended right now is read at the next look.
                let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                for line in text[..whole].split(|b| *b == b'\n') {
                    match serde_json::from_slice::<Entry>(line) {
                        Ok(e) => seen.count(e),
                        Err(_) if line.is_empty() => {}
                        Err(e) => {
                            tracing::warn!(file = %self.dir.join(&month).display(), error = %e, "a line of the spend log cannot be read; it is not counted")
                        }
                    }
                }
                seen.offset += whole as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(seen.totals(now))
    }
}

/// `2026-11-26`: the calendar day `now` falls in, in its own time zone.
pub fn day_of(now: &Zoned) -> String {
    now.strftime("%Y-%m-%d").to_string()
}

/// `2026-11.jsonl`: the file of `now`'s month.
fn month_file(now: &Zoned) -> String {
    format!("{}.jsonl", now.strftime("%Y-%m"))
}

/// When the day or month `now` falls in ends (local midnight).
fn rollover(now: &Zoned, period: Period) -> SystemTime {
    let next = match period {
        Period::Day => now.tomorrow().and_then(|z| z.start_of_day()),
        Period::Month => now
            .last_of_month()
            .and_then(|z| z.tomorrow())
            .and_then(|z| z.start_of_day()),
    };
    next.map_or_else(
        |_| SystemTime::now() + Duration::from_secs(3600),
        SystemTime::from,
    )
}

/// An entry for job `job` on `model` costing `credits`, counted for `now`'s day.
pub fn entry(job: &str, model: &str, credits: Option<u64>, uncertain: bool, now: &Zoned) -> Entry {
    Entry {
        at: crate::studio::clock::now_rfc3339(),
        day: day_of(now),
        credits: credits.map(|c| c as i64),
        job: job.to_string(),
        model: model.to_string(),
        uncertain,
        settles: None,
        counted: None,
    }
}

#[cfg(test)]
mod tests;
