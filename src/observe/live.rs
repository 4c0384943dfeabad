//! What is going on now, for the live views (the terminal's progress lines and the dashboard):
//! the jobs this instance drives — name, kind, step, Runway's progress, since when — and the run's
//! totals (done, failed, waiting) with the time jobs have taken, for an ETA; for the dashboard also
//! the hold in force, the files waiting (and those not whole yet), and the latest results and
//! failures. The pipeline and the
//! job tasks write it (in memory, under a short lock); a view reads a [`Snapshot`] (and the
//! dashboard a [`Board`]) when it redraws, and may wait for the next change with [`Live::changes`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::studio::record::JobRecord;
use crate::studio::spool::State;

/// One job in flight, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// The file, as a path under `inbox/`.
    pub name: String,
    /// `image`, `text`, `video`.
    pub kind: &'static str,
    /// The step, in words (`waiting for a slot`, `running`, `queued at Runway`, …).
    pub step: String,
    /// Runway's progress, 0–1, while the task runs.
    pub progress: Option<f64>,
    /// When this instance took the job up.
    pub since: Instant,
    /// The same, by the wall clock (for a page that shows elapsed time).
    pub since_wall: SystemTime,
}

/// The whole view at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Jobs in flight, by job id (ids sort by claim time).
    pub jobs: Vec<(String, JobView)>,
    pub done: usize,
    pub failed: usize,
    /// Files checked and waiting for a claim.
    pub waiting: usize,
    /// The estimated time until what is in flight and waiting is done, once a job has ended.
    pub eta: Option<Duration>,
}

/// A delivered job, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultView {
    /// The job's id: the dashboard serves its files by it.
    pub job: String,
    /// The file it was made from, as a path under `inbox/`.
    pub file: String,
    pub kind: String,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub credits: Option<f64>,
    /// Its videos (one per take), as paths under the studio (`done/cat.mp4`).
    pub videos: Vec<String>,
    /// The poster of each video (same order; `None` where it has none).
    pub posters: Vec<Option<String>>,
    /// When it was delivered (RFC 3339).
    pub at: String,
}

/// A job in `failed/`, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedView {
    /// The job's id (or, for one found on disk, its error file's path).
    pub job: String,
    /// The file it was made from, as a path under `inbox/`.
    pub file: String,
    /// What went wrong and what to do.
    pub error: String,
    /// Its `error.txt`, as a path under the studio: a job no longer has one once it is retried.
    pub error_file: String,
    pub at: String,
}

impl FailedView {
    /// The name `dropreel retry` knows it by: its `error.txt`'s path under `failed/`, without
    /// `.error.txt` (`clientA/cat`).
    pub fn retry_name(&self) -> &str {
        let rel = self.error_file.split_once('/').map_or("", |(_, rel)| rel);
        crate::studio::layout::error_stem(rel).unwrap_or(rel)
    }
}

/// The pause of submission in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldView {
    /// `key`, `quota`, `outage`, `unreachable`, `budget`.
    pub cause: &'static str,
    /// The cause in a designer's words.
    pub text: String,
    /// What the service said, or the budget's figures.
    pub detail: String,
    /// When submission is tried again: this machine's local time with its offset and zone (see
    /// [`crate::studio::clock::local_text`]), so a page opened elsewhere reads it right.
    pub next_try: String,
}

/// A file waiting in `inbox/` that is not whole yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotWholeView {
    /// Its path under `inbox/`.
    pub file: String,
    /// Where it stops.
    pub why: String,
    /// When it goes to `failed/` as truncated if it stays unchanged (local time).
    pub gives_up_at: String,
}

/// What only the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    pub hold: Option<HoldView>,
    /// The first files waiting for a claim (of [`Snapshot::waiting`]).
    pub waiting: Vec<String>,
    /// The files waiting in `inbox/` that are not whole yet.
    pub not_whole: Vec<NotWholeView>,
    /// The latest deliveries, newest first.
    pub results: Vec<ResultView>,
    /// The latest failures still in `failed/`, newest first.
    pub failed: Vec<FailedView>,
}

/// Results and failures the dashboard keeps.
pub const KEPT: usize = 48;
/// Waiting files the dashboard lists by name.
pub const WAITING_NAMES: usize = 30;

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<String, JobView>,
    done: usize,
    failed: usize,
    waiting: usize,
    /// Time from take-up to end of the jobs ended in this run: (sum, count).
    took: (Duration, u32),
    /// The most jobs seen in flight at once (how many run side by side).
    widest: usize,
    hold: Option<HoldView>,
    waiting_names: Vec<String>,
    not_whole: Vec<NotWholeView>,
    results: VecDeque<ResultView>,
    failures: VecDeque<FailedView>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Counts changes, for views that wait for the next one.
    changed: watch::Sender<u64>,
    /// A dashboard reads the board: results, failures and waiting names are kept.
    watched: AtomicBool,
}

/// The shared live state. Cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<Shared>);

impl Default for Live {
    fn default() -> Self {
        Live(Arc::new(Shared {
            inner: Mutex::default(),
            changed: watch::Sender::new(0),
            watched: AtomicBool::new(false),
        }))
    }
}

impl Live {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.inner.lock().expect("live lock"))
    }

    /// Runs `f`, and tells the views when it says it changed something.
    fn change(&self, f: impl FnOnce(&mut Inner) -> bool) {
        if self.with(f) {
            self.0.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver that wakes at each change (for a view that redraws on change).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.0.changed.subscribe()
    }

    /// From now on, keep what the dashboard shows (results, failures, waiting names).
    pub fn watch_board(&self) {
        self.0.watched.store(true, Ordering::Relaxed);
    }

    /// Whether a dashboard reads the board.
    pub fn board_watched(&self) -> bool {
        self.0.watched.load(Ordering::Relaxed)
    }

    /// Job `rec` is taken up (claimed, or resumed) or moved on a step.
    pub fn update(&self, rec: &JobRecord) {
        self.change(|i| {
            let (since, since_wall) = i.jobs.get(&rec.id).map_or_else(
                || (Instant::now(), SystemTime::now()),
                |j| (j.since, j.since_wall),
            );
            let view = JobView {
                name: rec.source.rel(),
                kind: rec.kind.name(),
                step: step(rec),
                progress: rec.progress.filter(|_| rec.state == State::Submitted),
                since,
                since_wall,
            };
            let old = i.jobs.insert(rec.id.clone(), view.clone());
            i.widest = i.widest.max(i.jobs.len());
            old.as_ref() != Some(&view)
        });
    }

    /// Job `id` is at a step its record does not show (a local render running).
    pub fn set_step(&self, id: &str, step: &str) {
        self.change(|i| match i.jobs.get_mut(id) {
            Some(j) if j.step != step => {
                j.step = step.to_string();
                true
            }
            _ => false,
        });
    }

    /// Job `id` ended: delivered (`Some(true)`), failed (`Some(false)`), or left for later.
    pub fn end(&self, id: &str, delivered: Option<bool>) {
        self.change(|i| {
            let Some(job) = i.jobs.remove(id) else {
                return false;
            };
            match delivered {
                Some(true) => i.done += 1,
                Some(false) => i.failed += 1,
                None => return true,
            }
            i.took.0 += job.since.elapsed();
            i.took.1 += 1;
            true
        });
    }

    /// Files checked and waiting for a claim: how many, and (when a dashboard reads the board)
    /// the names of the first ones.
    pub fn set_waiting(&self, n: usize, names: impl FnOnce() -> Vec<String>) {
        let names = if self.board_watched() {
            names()
        } else {
            Vec::new()
        };
        self.change(|i| {
            if i.waiting == n && i.waiting_names == names {
                return false;
            }
            i.waiting = n;
            i.waiting_names = names;
            true
        });
    }

    /// The files waiting in `inbox/` that are not whole yet.
    pub fn set_not_whole(&self, files: Vec<NotWholeView>) {
        self.change(|i| {
            if i.not_whole == files {
                return false;
            }
            i.not_whole = files;
            true
        });
    }

    /// The pause of submission in force (or none).
    pub fn set_hold(&self, hold: Option<HoldView>) {
        self.change(|i| {
            if i.hold == hold {
                return false;
            }
            i.hold = hold;
            true
        });
    }

    /// A job was delivered (kept when a dashboard reads the board).
    pub fn delivered(&self, result: ResultView) {
        if !self.board_watched() {
            return;
        }
        self.change(|i| {
            i.results.retain(|r| r.job != result.job);
            i.results.push_front(result);
            i.results.truncate(KEPT);
            true
        });
    }

    /// A job went to `failed/` (kept when a dashboard reads the board).
    pub fn failed(&self, failed: FailedView) {
        if !self.board_watched() {
            return;
        }
        self.change(|i| {
            i.failures
                .retain(|f| f.job != failed.job && f.error_file != failed.error_file);
            i.failures.push_front(failed);
            i.failures.truncate(KEPT);
            true
        });
    }

    /// Results and failures found on disk at start (oldest first), below any already kept.
    pub fn preload(&self, results: Vec<ResultView>, failed: Vec<FailedView>) {
        self.change(|i| {
            for r in results.into_iter().rev() {
                if i.results.len() < KEPT && !i.results.iter().any(|k| k.job == r.job) {
                    i.results.push_back(r);
                }
            }
            for f in failed.into_iter().rev() {
                if i.failures.len() < KEPT
                    && !i.failures.iter().any(|k| k.error_file == f.error_file)
                {
                    i.failures.push_back(f);
                }
            }
            true
        });
    }

    /// Forgets the failure whose `error.txt` is `error_file` (put back into inbox/, or gone).
    pub fn forget_failed(&self, error_file: &str) {
        self.change(|i| {
            let before = i.failures.len();
            i.failures.retain(|f| f.error_file != error_file);
            i.failures.len() != before
        });
    }

    /// The file named `name` that result `job` delivered (a video or a poster), as a path under
    /// the studio.
    pub fn result_file(&self, job: &str, name: &str) -> Option<String> {
        self.with(|i| {
            let r = i.results.iter().find(|r| r.job == job)?;
            r.videos
                .iter()
                .chain(r.posters.iter().flatten())
                .find(|p| p.rsplit('/').next() == Some(name))
                .cloned()
        })
    }

    /// The failure of job `job`, while it is shown.
    pub fn failure(&self, job: &str) -> Option<FailedView> {
        self.with(|i| i.failures.iter().find(|f| f.job == job).cloned())
    }

    /// What only the dashboard shows.
    pub fn board(&self) -> Board {
        self.with(|i| Board {
            hold: i.hold.clone(),
            waiting: i.waiting_names.clone(),
            not_whole: i.not_whole.clone(),
            results: i.results.iter().cloned().collect(),
            failed: i.failures.iter().cloned().collect(),
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with(|i| {
            let left = i.jobs.len() + i.waiting;
            let eta = (i.took.1 > 0 && left > 0).then(|| {
                let each = i.took.0 / i.took.1;
                let side_by_side = i.widest.max(1) as u32;
                let rounds = (left as u32).div_ceil(side_by_side);
                each * rounds
            });
            Snapshot {
                jobs: i.jobs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                done: i.done,
                failed: i.failed,
                waiting: i.waiting,
                eta,
            }
        })
    }
}

/// The job's step in a few words.
fn step(rec: &JobRecord) -> String {
    match rec.state {
        State::Claimed if rec.backend == "local" => "waiting to render".into(),
        State::Claimed => "waiting for a slot".into(),
        State::Submitting => "sending".into(),
        State::Submitted => match rec.task_status.as_deref() {
            Some("THROTTLED") => "queued at Runway".into(),
            Some("RUNNING") => "running".into(),
            Some("SUCCEEDED") => "downloading".into(),
            _ => "submitted".into(),
        },
        State::Succeeded => "downloading".into(),
        State::Downloaded => "delivering".into(),
        State::Failed => "failing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn totals_and_the_eta_follow_the_jobs() {
        let live = Live::default();
        let rec = |name: &str| {
            JobRecord::new(
                format!("20261126T000000Z-{name}"),
                crate::studio::source::Source::in_inbox(name),
                None,
                crate::job::ImageInfo::UNKNOWN,
                crate::job::JobSpec::default(),
                "runway",
            )
        };
        let (mut a, b) = (rec("a.png"), rec("b.png"));
        live.update(&a);
        live.update(&b);
        live.set_waiting(4, Vec::new);
        assert_eq!(live.snapshot().eta, None, "no job has ended yet");
        a.state = State::Submitted;
        a.task_status = Some("RUNNING".into());
        a.progress = Some(0.5);
        tokio::time::advance(Duration::from_secs(10)).await;
        live.update(&a);
        let s = live.snapshot();
        let view = &s.jobs.iter().find(|(id, _)| *id == a.id).unwrap().1;
        assert_eq!((view.step.as_str(), view.progress), ("running", Some(0.5)));
        assert_eq!(
            view.since.elapsed(),
            Duration::from_secs(10),
            "since the take-up"
        );
        live.end(&a.id, Some(true));
        let s = live.snapshot();
        assert_eq!((s.done, s.failed, s.waiting, s.jobs.len()), (1, 0, 4, 1));
        // 5 left, two at a time, 10 s each: three rounds.
        assert_eq!(s.eta, Some(Duration::from_secs(30)));
        live.end(&b.id, None);
        assert_eq!(
            live.snapshot().done,
            1,
            "a job left for later is not counted"
        );
    }

    #[test]
    fn the_board_is_kept_once_watched_and_views_wake_only_on_a_change() {
        let live = Live::default();
        let mut changes = live.changes();
        let result = |job: &str| ResultView {
            job: job.into(),
            file: format!("{job}.png"),
            kind: "image".into(),
            model: Some("gen4_turbo".into()),
            prompt: None,
            credits: Some(25.0),
            videos: vec![format!("done/{job}.mp4")],
            posters: vec![None],
            at: "2026-11-26T00:00:00Z".into(),
        };
        let failed = |job: &str| FailedView {
            job: job.into(),
            file: format!("{job}.png"),
            error: "bad — fix it".into(),
            error_file: format!("failed/{job}.error.txt"),
            at: "2026-11-26T00:00:00Z".into(),
        };
        live.delivered(result("a"));
        live.set_waiting(3, || vec!["x.png".into()]);
        let b = live.board();
        assert!(
            b.results.is_empty(),
            "nothing kept while no dashboard reads it"
        );
        assert!(b.waiting.is_empty(), "names are not even made");
        assert!(changes.has_changed().unwrap(), "the count changed");
        changes.borrow_and_update();
        live.set_waiting(3, Vec::new);
        assert!(
            !changes.has_changed().unwrap(),
            "the same count is no change"
        );

        live.watch_board();
        live.preload(vec![result("old")], vec![failed("f0")]);
        live.delivered(result("b"));
        live.delivered(result("c"));
        live.failed(failed("f1"));
        live.set_waiting(3, || vec!["x.png".into()]);
        let b = live.board();
        let jobs: Vec<&str> = b.results.iter().map(|r| r.job.as_str()).collect();
        assert_eq!(
            jobs,
            ["c", "b", "old"],
            "newest first, what was on disk below"
        );
        assert_eq!(b.failed.len(), 2);
        assert_eq!(b.waiting, ["x.png"]);
        live.forget_failed("failed/f0.error.txt");
        assert_eq!(live.board().failed.len(), 1);
        for i in 0..KEPT + 5 {
            live.delivered(result(&format!("n{i}")));
        }
        assert_eq!(live.board().results.len(), KEPT, "a bounded list");

        changes.borrow_and_update();
        let hold = HoldView {
            cause: "key",
            text: "refused".into(),
            detail: "401".into(),
            next_try: "soon".into(),
        };
        live.set_hold(Some(hold.clone()));
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        live.set_hold(Some(hold));
        assert!(
            !changes.has_changed().unwrap(),
            "the same hold is no change"
        );
    }
}
