//! The slots that bound how many jobs occupy a backend at once — in all, and per model when the
//! service says how many tasks of each model it runs at once (Runway's `max_in_flight: auto`) —
//! and the queue of claimed jobs waiting for one: the pipeline claims only a small lookahead
//! beyond what the slots can take.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Bounds the jobs that occupy the backend (for Runway: tasks submitted and not finished), and counts
/// the jobs claimed and waiting for a slot, so the pipeline claims only a small lookahead. The
/// bounds may change while jobs hold slots ([`Slots::set_limits`]): a lower one lets no one new in
/// until enough slots free, a higher one lets waiters in at once.
#[derive(Debug)]
pub struct Slots {
    max: AtomicUsize,
    /// Per key (a model): its own bound, below `max`; a key not listed has only `max`.
    per_key: Mutex<PerKey>,
    held: AtomicUsize,
    waiting: AtomicUsize,
    /// Signalled whenever the demand changes (a slot frees up, a waiter takes one or leaves).
    pub changed: Notify,
    freed: Notify,
}

/// The per-key bounds and the slots each key holds.
#[derive(Debug, Default)]
struct PerKey {
    caps: HashMap<String, usize>,
    held: HashMap<String, usize>,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: AtomicUsize::new(max),
            per_key: Mutex::new(PerKey::default()),
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            freed: Notify::new(),
        })
    }

    /// The bound of all slots together.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// The bound of `key`'s slots (`max` when it has none of its own).
    pub fn max_for(&self, key: &str) -> usize {
        let per = self.per_key.lock().expect("slots lock");
        per.caps
            .get(key)
            .map_or(self.max(), |c| (*c).min(self.max()))
    }

    /// New bounds: `max` in all, and `caps` per key (replacing the earlier ones). Waiters look
    /// again at once.
    pub fn set_limits(&self, max: usize, caps: HashMap<String, usize>) {
        self.max.store(max.max(1), Ordering::SeqCst);
        self.per_key.lock().expect("slots lock").caps = caps;
        self.freed.notify_waiters();
        self.changed.notify_one();
    }

    /// Takes a slot for `key` if both bounds have room.
    fn try_take(&self, key: &str) -> bool {
        let mut per = self.per_key.lock().expect("slots lock");
        let cur = self.held.load(Ordering::SeqCst);
        let cap = per.caps.get(key).copied().unwrap_or(usize::MAX);
        let mine = per.held.get(key).copied().unwrap_or(0);
        if cur >= self.max() || mine >= cap {
            return false;
        }
        self.held.store(cur + 1, Ordering::SeqCst);
        *per.held.entry(key.to_string()).or_default() += 1;
        true
    }

    fn give_back(&self, key: &str) {
        let mut per = self.per_key.lock().expect("slots lock");
        self.held.fetch_sub(1, Ordering::SeqCst);
        if let Some(n) = per.held.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                per.held.remove(key);
            }
        }
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

    /// Takes a slot for `key` even when all are held: a resumed task is already running on the
    /// server.
    pub fn take_now(self: &Arc<Self>, key: &str) -> SlotGuard {
        {
            let mut per = self.per_key.lock().expect("slots lock");
            self.held.fetch_add(1, Ordering::SeqCst);
            *per.held.entry(key.to_string()).or_default() += 1;
        }
        self.changed.notify_one();
        SlotGuard {
            slots: self.clone(),
            key: key.to_string(),
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
    pub async fn acquire(self, cancel: &CancellationToken) -> Option<SlotGuard> {
        self.acquire_for("", cancel).await
    }

    /// Waits for a free slot under both bounds: all slots, and `key`'s own (a model's); `None`
    /// when cancelled (the ticket is then given up).
    pub async fn acquire_for(mut self, key: &str, cancel: &CancellationToken) -> Option<SlotGuard> {
        let slots = self.slots.clone().expect("a live ticket");
        loop {
            let freed = slots.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if slots.try_take(key) {
                slots.waiting.fetch_sub(1, Ordering::SeqCst);
                self.slots = None;
                slots.changed.notify_one();
                return Some(SlotGuard {
                    slots: slots.clone(),
                    key: key.to_string(),
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
    key: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.give_back(&self.key);
        // Every waiter looks: the one that may take this slot may wait for another key's.
        self.slots.freed.notify_waiters();
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

    #[tokio::test]
    async fn a_key_with_its_own_bound_waits_while_others_go_on() {
        let slots = Slots::new(3);
        slots.set_limits(3, HashMap::from([("a".to_string(), 1)]));
        let cancel = CancellationToken::new();
        let a1 = slots.ticket().acquire_for("a", &cancel).await.unwrap();
        let a2 = tokio::time::timeout(
            Duration::from_millis(50),
            slots.ticket().acquire_for("a", &cancel),
        )
        .await;
        assert!(a2.is_err(), "a's second slot must wait");
        let b = slots.ticket().acquire_for("b", &cancel).await.unwrap();
        assert_eq!(slots.max_for("a"), 1);
        assert_eq!(slots.max_for("b"), 3);
        // A higher bound lets a waiter in at once.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            let cancel = cancel.clone();
            async move { slots.ticket().acquire_for("a", &cancel).await.is_some() }
        });
        tokio::task::yield_now().await;
        slots.set_limits(3, HashMap::from([("a".to_string(), 2)]));
        assert!(waiter.await.unwrap());
        drop((a1, b));
    }
}
