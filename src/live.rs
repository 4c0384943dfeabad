//! What is going on now, for the live views (the terminal's progress lines): the jobs this
//! instance drives — name, kind, step, Runway's progress, since when — and the run's totals (done,
//! failed, waiting) with the time jobs have taken, for an ETA. The pipeline and the job tasks write
//! it (in memory, under a short lock); a view reads a [`Snapshot`] when it redraws.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::record::JobRecord;
use crate::spool::State;

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
}

/// The shared live state. Cheap to clone.
#[derive(Clone, Default)]
pub struct Live(Arc<Mutex<Inner>>);

impl Live {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().expect("live lock"))
    }

    /// Job `rec` is taken up (claimed, or resumed) or moved on a step.
    pub fn update(&self, rec: &JobRecord) {
        self.with(|i| {
            let since = i.jobs.get(&rec.id).map_or_else(Instant::now, |j| j.since);
            i.jobs.insert(
                rec.id.clone(),
                JobView {
                    name: rec.source.rel(),
                    kind: rec.kind.name(),
                    step: step(rec),
                    progress: rec.progress.filter(|_| rec.state == State::Submitted),
                    since,
                },
            );
            i.widest = i.widest.max(i.jobs.len());
        });
    }

    /// Job `id` is at a step its record does not show (a local render running).
    pub fn set_step(&self, id: &str, step: &str) {
        self.with(|i| {
            if let Some(j) = i.jobs.get_mut(id) {
                j.step = step.to_string();
            }
        });
    }

    /// Job `id` ended: delivered (`Some(true)`), failed (`Some(false)`), or left for later.
    pub fn end(&self, id: &str, delivered: Option<bool>) {
        self.with(|i| {
            let Some(job) = i.jobs.remove(id) else {
                return;
            };
            match delivered {
                Some(true) => i.done += 1,
                Some(false) => i.failed += 1,
                None => return,
            }
            i.took.0 += job.since.elapsed();
            i.took.1 += 1;
        });
    }

    /// Files checked and waiting for a claim.
    pub fn set_waiting(&self, n: usize) {
        self.with(|i| i.waiting = n);
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
                crate::source::Source::in_inbox(name),
                None,
                crate::job::ImageInfo::UNKNOWN,
                crate::job::JobSpec::default(),
                "runway",
            )
        };
        let (mut a, b) = (rec("a.png"), rec("b.png"));
        live.update(&a);
        live.update(&b);
        live.set_waiting(4);
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
}
