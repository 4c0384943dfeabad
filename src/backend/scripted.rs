//! A backend whose every job follows a script the test gives (for unit tests only): how long the
//! job holds its slot, and whether it delivers or fails. It takes slots like the real backends and
//! writes a stand-in MP4 into the job folder, so the pipeline, admission and recovery run for
//! real around it, on tokio's paused clock. What each job did is kept for the test to read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Backend, Gate, JobCtx, Limits, Slots, Stop};
use crate::studio::spool::{Failure, State};

/// What one job does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Holds a slot for this long, then delivers.
    Deliver(Duration),
    /// Holds a slot for this long, then fails with this message.
    Fail(Duration, &'static str),
}

/// One call of [`Backend::produce`], as the test reads it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The job's source file name.
    pub file: String,
    pub job: String,
    /// The state the job was resumed in.
    pub state: State,
    /// When it got its slot, and when it let it go (`None`: it was stopped first).
    pub started: Instant,
    pub ended: Option<Instant>,
}

/// The scripted backend: `plan` says what the job of each file name does.
pub struct Scripted {
    slots: Arc<Slots>,
    plan: Box<dyn Fn(&str) -> Plan + Send + Sync>,
    calls: Mutex<Vec<Call>>,
    busy: AtomicUsize,
    most_busy: AtomicUsize,
}

impl Scripted {
    pub fn new(slots: usize, plan: impl Fn(&str) -> Plan + Send + Sync + 'static) -> Arc<Scripted> {
        Arc::new(Scripted {
            slots: Slots::new(slots),
            plan: Box::new(plan),
            calls: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
            most_busy: AtomicUsize::new(0),
        })
    }

    /// Every call so far, in the order the jobs got their slot.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The most jobs that held a slot at once.
    pub fn most_busy(&self) -> usize {
        self.most_busy.load(Ordering::SeqCst)
    }

    fn note(&self, call: Call) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(call);
        calls.len() - 1
    }

    fn ended(&self, i: usize) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls[i].ended = Some(Instant::now());
    }
}

impl Backend for Arc<Scripted> {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn produce(&self, job: &mut JobCtx) -> Result<(), Stop> {
        if job.rec.state == State::Downloaded {
            return Ok(());
        }
        let ticket = job.ticket.take().unwrap_or_else(|| self.slots.ticket());
        let _slot = ticket.acquire(&job.cancel).await.ok_or(Stop::Cancelled)?;
        let now_busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_busy.fetch_max(now_busy, Ordering::SeqCst);
        let i = self.note(Call {
            file: job.rec.source.name.clone(),
            job: job.rec.id.clone(),
            state: job.rec.state,
            started: Instant::now(),
            ended: None,
        });
        let plan = (self.plan)(&job.rec.source.name);
        let (hold, failure) = match plan {
            Plan::Deliver(d) => (d, None),
            Plan::Fail(d, why) => (d, Some(why)),
        };
        let held = tokio::select! {
            () = tokio::time::sleep(hold) => true,
            () = job.cancel.cancelled() => false,
        };
        self.busy.fetch_sub(1, Ordering::SeqCst);
        if !held {
            return Err(Stop::Cancelled);
        }
        self.ended(i);
        if let Some(why) = failure {
            return Err(Stop::Failed(Failure {
                message: why.to_string(),
                advice: "the script says so".into(),
                api: None,
            }));
        }
        let dir = job.spool.job_dir(&job.rec.id);
        crate::studio::durable::write_atomic(
            &dir,
            &job.rec.output_file(),
            b"a stand-in for an MP4",
        )
        .map_err(|e| {
            Stop::Failed(Failure {
                message: format!("cannot write the video: {e}"),
                advice: "look at the test's temp folder".into(),
                api: None,
            })
        })?;
        job.rec.state = State::Downloaded;
        job.save().await
    }

    fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    fn gate(&self) -> Option<&Gate> {
        None
    }

    fn limits(&self) -> Limits {
        super::local::LIMITS
    }
}
