//! What the Runway backend learns across its jobs to poll no more than needed: how long tasks
//! take (for the poll clock's first look), and which of our tasks wait in Runway's queue, oldest
//! first — when one of our tasks ends, the oldest waiting one has most likely just started, and is
//! told to look at once instead of at the interval.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shared by every job of one backend.
#[derive(Debug, Default)]
pub struct Queue {
    /// How long recent tasks took from submission to done (a moving average).
    expected: Mutex<Option<Duration>>,
    /// The same for tasks that waited in Runway's queue (submission to done).
    waited: Mutex<Option<Duration>>,
    /// Our tasks waiting in Runway's queue (THROTTLED), by (first poll, task id).
    queued: Mutex<BTreeMap<(Instant, String), Arc<Notify>>>,
}

impl Queue {
    /// The typical task time, once one task was seen from submission to its end.
    /// How long recent tasks that waited in Runway's queue took from submission to done.
    pub fn expected_queued(&self) -> Option<Duration> {
        *self.waited.lock().expect("expected lock")
    }

    /// A task that waited in Runway's queue was done `took` after its submission.
    pub fn took_queued(&self, took: Duration) {
        average_in(&self.waited, took);
    }

    pub fn expected(&self) -> Option<Duration> {
        *self.expected.lock().expect("expected lock")
    }

    /// Learns from a task that ran without waiting in the queue.
    pub fn took(&self, took: Duration) {
        average_in(&self.expected, took);
    }

    /// A slot freed at Runway: the oldest of our queued tasks takes it.
    pub fn task_ended(&self) {
        let oldest = self.queued.lock().expect("queue lock").pop_first();
        if let Some((_, notify)) = oldest {
            notify.notify_one();
        }
    }

    /// A task's place in the queue, empty until [`Place::set`] says it is queued.
    pub fn place(&self, started: Instant, task: String) -> Place<'_> {
        Place {
            queue: self,
            key: (started, task),
            listed: false,
            notify: Arc::new(Notify::new()),
        }
    }
}

/// One task's place in [`Queue`]; leaving the queue (or dropping the place) removes it.
pub struct Place<'a> {
    queue: &'a Queue,
    key: (Instant, String),
    listed: bool,
    notify: Arc<Notify>,
}

impl Place<'_> {
    /// Whether the task is waiting in Runway's queue now.
    pub fn set(&mut self, queued: bool) {
        let mut map = self.queue.queued.lock().expect("queue lock");
        if queued {
            // (Again, if a finish elsewhere took it out of the queue and it is still waiting.)
            map.entry(self.key.clone())
                .or_insert_with(|| self.notify.clone());
            self.listed = true;
        } else if std::mem::take(&mut self.listed) {
            map.remove(&self.key);
        }
    }

    /// Completes when another task's end makes this one the likely next to start.
    pub fn moved(&self) -> impl Future<Output = ()> + use<'_> {
        self.notify.notified()
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.listed {
            self.queue
                .queued
                .lock()
                .expect("queue lock")
                .remove(&self.key);
        }
    }
}

/// Moves the average in `slot` 30 % toward `took` (or starts it there).
fn average_in(slot: &Mutex<Option<Duration>>, took: Duration) {
    let mut e = slot.lock().expect("expected lock");
    *e = Some(e.map_or(took, |old| old.mul_f64(0.7) + took.mul_f64(0.3)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_oldest_queued_task_is_woken_when_one_ends() {
        let q = Queue::default();
        let t0 = Instant::now();
        let mut old = q.place(t0, "a".into());
        let mut young = q.place(t0 + Duration::from_secs(1), "b".into());
        old.set(true);
        young.set(true);
        q.task_ended();
        tokio::time::timeout(Duration::from_millis(10), old.moved())
            .await
            .expect("the oldest is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(10), young.moved())
                .await
                .is_err(),
            "only one"
        );
        drop(young);
        q.task_ended();
        assert!(q.queued.lock().unwrap().is_empty());
    }

    #[test]
    fn the_expected_time_is_a_moving_average() {
        let q = Queue::default();
        assert_eq!(q.expected(), None);
        q.took(Duration::from_secs(10));
        q.took(Duration::from_secs(20));
        assert_eq!(q.expected(), Some(Duration::from_secs(13)));
    }
}
