//! Taking files in: the pipeline's admission of ready files in batches (bad ones fail at once, ones
//! not whole wait and are shown), the lazy claim as slots are about to free, what the budget (or
//! the service, for a model it holds) keeps back, and when a `run` is drained.

use std::time::Duration;

use tokio::time::Instant;

use super::{CHECK_BATCH, CLAIM_RETRY, LOOKAHEAD, Mode, Pipeline, RECHECK_INCOMPLETE};
use crate::backend::Backend;
use crate::intake::{self, Inbox, Ready};
use crate::run::admit::{self, Checked, NotYet};
use crate::studio::instance;

impl<B: Backend> Pipeline<B> {
    /// Admits a batch of ready files: the checks that need no slot. Good ones queue for a claim,
    /// bad ones become jobs failed from the start, ones not whole wait in inbox/ (said once, and
    /// shown in `status` and the dashboard) until whole, or until they stayed unchanged for
    /// `watch.truncated_after` counted from their mtime.
    pub(super) fn check_ready(&mut self) {
        self.unchecked.extend(self.inbox.take_ready());
        let limits = self.backend.limits();
        let truncated_after = self.settings.config.watch.truncated_after;
        // The file system's clock, read once a batch and only for a file found not whole.
        let mut fs_now: Option<Option<std::time::SystemTime>> = None;
        for _ in 0..CHECK_BATCH {
            let Some(ready) = self.unchecked.pop_front() else {
                break;
            };
            let verdict = match admit::check(&self.spool, &self.settings, &limits, &ready) {
                Err(NotYet::Wait(why)) => {
                    let unchanged = self.inbox.unchanged_for(&ready, || {
                        *fs_now.get_or_insert_with(|| self.spool.fs_now())
                    });
                    if unchanged >= truncated_after {
                        Err(NotYet::Fail(admit::truncated(&ready, &why, unchanged)))
                    } else {
                        self.wait_whole(&ready, &why, unchanged, truncated_after);
                        continue;
                    }
                }
                v => v,
            };
            match verdict {
                Ok(c) => self.checked.push_back(c),
                Err(NotYet::Wait(_)) => {}
                Err(NotYet::Fail(failure)) => {
                    let name = self.backend.name();
                    if let Some(rec) = admit::claim_to_fail(&self.spool, &ready, failure, name) {
                        self.start_job(rec, None);
                    }
                    forget(&mut self.inbox, &ready);
                }
            }
        }
        if self.inbox.not_whole_version() != self.not_whole_shown {
            self.show_not_whole();
        }
    }

    /// Puts a file that is not whole back into the inbox to be looked at again soon; the first
    /// time, says which, why, and when it is given up.
    pub(super) fn wait_whole(
        &mut self,
        ready: &Ready,
        why: &str,
        unchanged: Duration,
        after: Duration,
    ) {
        let rel = ready.source.rel();
        let settle = self.settings.config.watch.settle;
        let again = RECHECK_INCOMPLETE.min(settle.max(Duration::from_millis(100)));
        if self
            .inbox
            .wait_whole(&rel, why, unchanged, Instant::now() + again)
        {
            let at = std::time::SystemTime::now() + after.saturating_sub(unchanged);
            let gives_up_at = crate::studio::clock::local_text(at);
            tracing::warn!(
                file = %rel, why, gives_up_at,
                "not whole yet: {why}. It waits in inbox/ for the rest of it; if it stays unchanged until {gives_up_at} (watch.truncated_after: {} after its last change) it goes to failed/ as truncated",
                humantime::format_duration(after)
            );
        } else {
            tracing::debug!(file = %rel, why, "still not whole; waiting for the rest of it");
        }
    }

    /// Shows the files that are not whole in `status` and the dashboard, with when each is given
    /// up.
    pub(super) fn show_not_whole(&mut self) {
        self.not_whole_shown = self.inbox.not_whole_version();
        let after = self.settings.config.watch.truncated_after;
        let now = std::time::SystemTime::now();
        let files: Vec<(intake::NotWholeFile, std::time::SystemTime)> = self
            .inbox
            .not_whole()
            .into_iter()
            .map(|f| {
                let at = now + after.saturating_sub(f.unchanged_for);
                (f, at)
            })
            .collect();
        self.live.set_not_whole(
            files
                .iter()
                .map(|(f, at)| crate::observe::live::NotWholeView {
                    file: f.name.clone(),
                    why: f.why.clone(),
                    gives_up_at: crate::studio::clock::local_text(*at),
                })
                .collect(),
        );
        self.status.set_not_whole(
            files
                .iter()
                .map(|(f, at)| instance::NotWholeShown {
                    file: f.name.clone(),
                    why: f.why.clone(),
                    gives_up_at: crate::studio::clock::rfc3339(*at),
                })
                .collect(),
        );
        self.write_status();
    }

    /// Claims checked files while the backend's slots (plus a small lookahead) have room. While
    /// the budget holds submission nothing is claimed (what waits for it waits in inbox/), and a
    /// file whose model the budget cannot price waits there on its own.
    pub(super) fn claim_ready(&mut self) {
        if self.claim_pause.is_some_and(|t| Instant::now() >= t) {
            self.claim_pause = None;
        }
        if self.budget_blocks_claims() {
            return;
        }
        let slots = self.backend.slots().clone();
        // Files of a model the service holds for now (its daily limit) stay in inbox/, in order.
        let mut kept = Vec::new();
        while self.claim_pause.is_none() && slots.demand() < slots.max() + LOOKAHEAD {
            let Some(c) = self.checked.pop_front() else {
                break;
            };
            if let Some(why) = self.backend.holds(&c.admitted.spec.model) {
                self.held_by_budget.get_or_insert(why);
                kept.push(c);
                continue;
            }
            if !self.inbox.unchanged(&c.ready) {
                self.inbox.release(&c.ready.source.rel());
                continue;
            }
            if self.waits_for_a_price(&c) {
                continue;
            }
            let share = self.inbox.shares_sidecar(&c.ready.source.rel());
            match admit::claim(&self.spool, &c, share, self.backend.name()) {
                Ok(Some(rec)) => {
                    self.claim_faults = 0;
                    forget(&mut self.inbox, &c.ready);
                    self.start_job(rec, Some(slots.ticket()));
                }
                Ok(None) => forget(&mut self.inbox, &c.ready),
                Err(e) => {
                    // processing/ refuses the move (permissions, a full disk): the file waits in
                    // inbox/ and the claim is tried again in a moment, not in a tight loop.
                    self.claim_faults += 1;
                    if self.claim_faults == 1 {
                        tracing::error!(file = %c.ready.source.rel(), error = %e, "cannot move the file into processing/ (disk full or not writable?); files wait in inbox/ and are tried again every 2 s");
                    } else {
                        tracing::debug!(file = %c.ready.source.rel(), error = %e, "still cannot move the file into processing/");
                    }
                    self.checked.push_front(c);
                    self.claim_pause = Some(Instant::now() + CLAIM_RETRY);
                }
            }
        }
        for c in kept.into_iter().rev() {
            self.checked.push_front(c);
        }
    }

    /// Whether the budget holds submission until a time not come yet: nothing is claimed before
    /// it (a `watch` claims again then, and the first job sent is the probe).
    pub(super) fn budget_blocks_claims(&self) -> bool {
        self.backend
            .gate()
            .and_then(|g| g.budget_until())
            .is_some_and(|until| Instant::now() < until)
    }

    /// A checked file whose model the budget cannot price: not claimed — it waits in inbox/ on its
    /// own (said once), and the others go on. `true` when it was kept back.
    pub(super) fn waits_for_a_price(&mut self, c: &Checked) -> bool {
        if self.backend.limits().catalog.renders_locally() {
            return false;
        }
        let budget = &self.settings.config.budget;
        let learnt = || crate::studio::ledger::prices::Prices::read(&self.settings.root);
        let Some(refusal) =
            crate::studio::ledger::spend::unpriced(&c.admitted.spec, budget, learnt)
        else {
            return false;
        };
        let rel = c.ready.source.rel();
        let why = refusal.detail();
        if self.told_unpriced.insert(rel.clone()) {
            tracing::warn!(file = %rel, "waits in inbox/ while the other files go on: {why}");
        }
        // Looked at again by the next rescan (`watch`); a restart with the rate claims it.
        forget(&mut self.inbox, &c.ready);
        self.held_by_budget.get_or_insert(why);
        true
    }

    /// A `run` is done when nothing runs and nothing waits or is left to look at but files of a
    /// model the service holds for now — or nothing runs and the budget holds submission (what is
    /// left waits for the next run).
    pub(super) fn drained(&self) -> bool {
        let held = |c: &Checked| self.backend.holds(&c.admitted.spec.model).is_some();
        self.mode == Mode::Run
            && self.active.is_empty()
            && ((self.checked.iter().all(held)
                && self.unchecked.is_empty()
                && self.inbox.waiting() == 0)
                || self.budget_blocks_claims())
    }

    /// Why the budget kept work of this run from being sent, if it did: its hold in force, or a
    /// job or file it held.
    pub(super) fn held_by_budget(&self) -> Option<String> {
        let hold = self.backend.gate().and_then(|g| g.current());
        hold.filter(|h| h.cause.is_money())
            .map(|h| h.detail)
            .or_else(|| self.held_by_budget.clone())
    }

    /// A drained `run` that left work to the budget (or to the organisation's limits at the
    /// service) says so once, and exits 4.
    pub(super) fn end_run(&mut self) {
        if self.mode != Mode::Run {
            return;
        }
        let Some(why) = self.held_by_budget() else {
            return;
        };
        tracing::warn!(
            "submission is held and nothing else is in flight: {why}. What is left waits in inbox/ for the next run"
        );
        self.summary.budget_held = Some(why);
    }
}

pub(super) fn forget(inbox: &mut Inbox, r: &Ready) {
    inbox.forget(&r.source.rel());
    for companion in [&r.sidecar, &r.last_frame].into_iter().flatten() {
        inbox.forget(companion);
    }
}
