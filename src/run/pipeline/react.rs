//! Reacting: what the pipeline does on each event of its loop — a job's end, file-system events, a
//! hold's change, the timer (config edits, lease renewal, the rescan) — and what it shows of it
//! (`status`, the live views, the outbox).

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{EVENT_BATCH, Flow, Mode, Pipeline};
use crate::backend::{Backend, HoldCause};
use crate::observe::events::Event;
use crate::run::jobs::{End, Ended};
use crate::studio::lease::Renewal;
use crate::studio::spool::Spool;

impl<B: Backend> Pipeline<B> {
    /// When the loop must look again with no event: the next settle deadline, lease renewal,
    /// config look, rescan or claim retry.
    pub(super) fn next_wake(&self) -> Instant {
        let mut wake = self.next_renew.min(self.config_file.next_look);
        if let Some(t) = self.inbox.next_deadline() {
            wake = wake.min(t);
        }
        if self.mode == Mode::Watch {
            wake = wake.min(self.next_rescan);
        }
        if let Some(t) = self.claim_pause {
            wake = wake.min(t);
        }
        // Claims go on when a hold for the budget lets its probe through.
        if let Some(t) = self.backend.gate().and_then(|g| g.budget_until())
            && t > Instant::now()
        {
            wake = wake.min(t);
        }
        wake
    }

    /// A job task ended.
    pub(super) fn on_job_end(&mut self, Ended { id, end }: Ended) -> Flow {
        self.active.remove(&id);
        // A job left in processing/ is free for the next look (this instance's rescan, another
        // instance, or the next start).
        self.spool.release(&id);
        self.summary.count(&end);
        if let End::Held(why) = end {
            self.held_by_budget.get_or_insert(why);
        }
        Flow::Continue
    }

    /// A file-system event in inbox/, with the others already waiting (a busy folder sends them
    /// by the thousand: each turn of the loop takes all that are there, up to a batch).
    pub(super) fn on_fs_event(
        &mut self,
        name: std::ffi::OsString,
        more: &mut mpsc::UnboundedReceiver<std::ffi::OsString>,
    ) -> Flow {
        let mut next = Some(name);
        let mut taken = 0;
        while let Some(name) = next.take() {
            tracing::trace!(file = %name.to_string_lossy(), "file-system event");
            match name.into_string() {
                Ok(name) => self.inbox.observe(&name),
                Err(raw) => self.inbox.report_unreadable_name(&raw),
            }
            taken += 1;
            if taken < EVENT_BATCH {
                next = more.try_recv().ok();
            }
        }
        Flow::Continue
    }

    /// A hold started, changed cause or lifted. It shows in `status` at once; a refused key ends
    /// a `run` (every job stays where it is; exit 3), while `watch` waits for a fixed key.
    pub(super) fn on_hold_change(&mut self) -> Flow {
        self.write_status();
        let hold = self.backend.gate().and_then(|g| g.current());
        self.tell_hold(hold.as_ref());
        if let Some(h) = &hold
            && h.cause == HoldCause::Key
            && self.mode == Mode::Run
        {
            let why = format!("{} ({})", h.describe(), h.detail);
            tracing::error!("{why}. Every job stays where it is; fix the key and run again");
            self.summary.key_refused = Some(why);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// The names of the first files waiting for a claim, for the dashboard.
    pub(super) fn waiting_names(&self) -> Vec<String> {
        let checked = self.checked.iter().map(|c| &c.ready);
        checked
            .chain(self.unchecked.iter())
            .take(crate::observe::live::WAITING_NAMES)
            .map(|r| r.source.rel())
            .collect()
    }

    /// Shows the hold in force, and tells the outbox that a hold began (or changed cause) or
    /// lifted.
    pub(super) fn tell_hold(&mut self, hold: Option<&crate::backend::Hold>) {
        self.live.set_hold(hold.map(hold_view));
        let now = hold.map(|h| h.cause);
        if now == self.told_hold {
            return;
        }
        if let Some(h) = hold {
            crate::observe::metrics::get().hold(h.cause.name());
        }
        if let Some(outbox) = &self.outbox {
            let event = match (hold, self.told_hold) {
                (Some(h), _) => {
                    Event::hold(h.cause.name(), &format!("{} ({})", h.describe(), h.detail))
                }
                (None, Some(was)) => Event::resumed(was.name()),
                (None, None) => return,
            };
            outbox.emit(&event);
        }
        self.told_hold = now;
    }

    /// Time-driven work: config edits, lease renewal, the periodic rescan.
    pub(super) fn on_tick(&mut self) -> Flow {
        let now = Instant::now();
        if now >= self.config_file.next_look
            && let Some(new) = self.config_file.look(&self.settings)
        {
            let w = &new.config.watch;
            self.inbox.set_timing(w.settle, w.sidecar_wait);
            self.settings = new;
            self.status.settings_changed(self.config_file.version, None);
            self.write_status();
        } else if self.config_file.error_changed {
            self.config_file.error_changed = false;
            let error = self.config_file.error.clone();
            self.status
                .settings_changed(self.config_file.version, error);
            self.write_status();
        }
        if now >= self.next_renew {
            self.next_renew = now + self.settings.config.watch.lease / 4;
            renew_leases(&self.spool, &self.active);
            self.write_status();
        }
        if self.mode == Mode::Watch && now >= self.next_rescan {
            self.next_rescan = now + self.settings.config.watch.rescan;
            if let Err(e) = self.inbox.scan(self.spool.fs_now()) {
                tracing::warn!(error = %e, "cannot read inbox/; trying again at the next rescan");
            }
            // Jobs left by an instance that died (its lease expired) continue here.
            self.resume();
        }
        Flow::Continue
    }

    pub(super) fn write_status(&mut self) {
        let hold = self.backend.gate().and_then(|g| g.current());
        // A hold extended (same cause, later next try) shows its new time too.
        if hold.as_ref().map(|h| h.cause) == self.told_hold {
            self.live.set_hold(hold.as_ref().map(hold_view));
        }
        self.status.write(hold.as_ref(), self.active.len());
    }
}

/// A hold as the dashboard shows it.
pub(super) fn hold_view(h: &crate::backend::Hold) -> crate::observe::live::HoldView {
    crate::observe::live::HoldView {
        cause: h.cause.name(),
        text: h.describe(),
        detail: h.detail.clone(),
        next_try: crate::studio::clock::local_text(h.until_wall),
    }
}

/// Renews this instance's lease on every job it drives; a job whose lease another instance took
/// over (this one was frozen past the lease, e.g. a laptop asleep) is stopped here at once.
pub(super) fn renew_leases(spool: &Spool, active: &HashMap<String, CancellationToken>) {
    for (id, token) in active {
        match spool.renew(id) {
            Ok(Renewal::Renewed) => {}
            // It ended a moment ago; its task's end is on its way to the loop.
            Ok(Renewal::Gone) => {
                tracing::trace!(job = %id, "the job's folder is gone: it has just ended")
            }
            Ok(Renewal::Lost) => {
                tracing::warn!(job = %id, "another dropreel instance took this job over (this one did not renew its lease in time); leaving it to that instance");
                token.cancel();
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot renew the job's lease; trying again")
            }
        }
    }
}
