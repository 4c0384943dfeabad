//! The slots that bound how many jobs occupy a backend at once, and the queue of claimed jobs
//! waiting for one: the pipeline claims only a small lookahead beyond what the slots can take.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Bounds the jobs that occupy the backend (for Runway: tasks submitted and not finished), and counts
/// the jobs claimed and waiting for a slot, so the pipeline claims only a small lookahead.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    held: AtomicUsize,
    waiting: AtomicUsize,
    /// Signalled whenever the demand changes (a slot frees up, a waiter takes one or leaves).
    pub changed: Notify,
    freed: Notify,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            freed: Notify::new(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Jobs holding a slot plus jobs claimed and waiting for one.
    pub fn demand(&self) -> usize {
        self.held.load(Ordering::SeqCst) + self.waiting.load(Ordering::SeqCst)
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// A place in the queue for a slot: counted in [`Slots::demand`] from now on, so the pipeline
    /// sees a job the moment it claims it.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Ticket {
            slots: Some(self.clone()),
        }
    }

    /// Takes a slot even when all are held: a resumed task is already running on the server.
    pub fn take_now(self: &Arc<Self>) -> SlotGuard {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        SlotGuard {
            slots: self.clone(),
        }
    }
}

/// A job's place in the queue for a slot. Dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    slots: Option<Arc<Slots>>,
}

impl Ticket {
    /// Waits for a free slot; `None` when cancelled (the ticket is then given up).
    pub async fn acquire(mut self, cancel: &CancellationToken) -> Option<SlotGuard> {
        let slots = self.slots.clone().expect("a live ticket");
        loop {
            let freed = slots.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let cur = slots.held.load(Ordering::SeqCst);
            if cur < slots.max
                && slots
                    .held
                    .compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                self.slots = None;
                slots.changed.notify_one();
                return Some(SlotGuard {
                    slots: slots.clone(),
                });
            }
            tokio::select! {
                () = freed => {}
                () = cancel.cancelled() => return None,
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(s) = self.slots.take() {
            s.waiting.fetch_sub(1, Ordering::SeqCst);
            s.changed.notify_one();
        }
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<Slots>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.held.fetch_sub(1, Ordering::SeqCst);
        self.slots.freed.notify_one();
        self.slots.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn slots_bound_and_count_waiters() {
        let slots = Slots::new(1);
        let cancel = CancellationToken::new();
        let t1 = slots.ticket();
        let t2 = slots.ticket();
        assert_eq!(slots.demand(), 2, "claimed jobs count before they ask");
        let g = t1.acquire(&cancel).await.unwrap();
        let second =
            tokio::time::timeout(Duration::from_millis(50), slots.ticket().acquire(&cancel)).await;
        assert!(second.is_err(), "second slot must wait");
        assert_eq!(slots.demand(), 2, "a dropped waiter is not counted");
        drop(g);
        let g2 = t2.acquire(&cancel).await.unwrap();
        assert_eq!(slots.held(), 1);
        drop(g2);
        assert_eq!(slots.demand(), 0);
    }
}
