//! When to ask about a task next: no more often than needed, never less often than `poll_interval`.
//!
//! A RUNNING task reports its progress; from two observations (or one, and the time since the task
//! was last seen waiting) its finish time is estimated, and the next poll lands just after it rather
//! than on a fixed beat. So a finished task is noticed within a few tens of milliseconds, and a long
//! task costs fewer polls than a fixed 5 s poller. A THROTTLED task (queued by Runway behind the
//! organisation's concurrency limit) is looked at again around when queued tasks have lately been
//! done (at the interval while nothing is known); a task past its estimate, briskly.

use std::time::Duration;

use tokio::time::Instant;

use super::api::TaskStatus;

/// Shortest gap between two polls of one task.
pub const MIN_GAP: Duration = Duration::from_millis(100);
/// First look after submitting, when nothing is known yet.
pub const FIRST_LOOK: Duration = Duration::from_secs(1);
/// Added to an estimate so the poll lands after the finish, not just before it.
const MARGIN: Duration = Duration::from_millis(30);

/// The polling plan of one task.
#[derive(Debug, Clone)]
pub struct PollClock {
    interval: Duration,
    /// How long recent tasks took from submission to done, when known.
    expected: Option<Duration>,
    /// When the task was last seen not running (submitted, PENDING or THROTTLED).
    waiting_seen: Instant,
    /// It was seen waiting in Runway's queue, so when it started running is unknown.
    queued: bool,
    /// The last RUNNING observation with a progress.
    last_running: Option<(Instant, f64)>,
    /// Polls since the estimate ran out (the task is late): the gap grows again.
    late: u32,
    /// When the task was submitted (or resumed).
    born: Instant,
    /// How long recent tasks that waited in Runway's queue took from submission to done, when
    /// known: a queued task is looked at again around then, not a whole interval later.
    expected_queued: Option<Duration>,
}

impl PollClock {
    /// A clock for a task submitted (or resumed) at `now`, with `interval` as the longest gap and
    /// `expected` the typical time recent tasks took.
    pub fn new(now: Instant, interval: Duration, expected: Option<Duration>) -> PollClock {
        PollClock {
            interval,
            expected,
            waiting_seen: now,
            queued: false,
            last_running: None,
            late: 0,
            born: now,
            expected_queued: None,
        }
    }

    /// With the typical submission-to-done time of tasks that waited in Runway's queue.
    pub fn with_queued(mut self, expected_queued: Option<Duration>) -> PollClock {
        self.expected_queued = expected_queued;
        self
    }

    fn clamp(&self, d: Duration) -> Duration {
        d.clamp(MIN_GAP.min(self.interval), self.interval)
    }

    /// A task ahead in Runway's queue just ended: a queued task starts about now, so its
    /// running time counts from here.
    pub fn queue_moved(&mut self, now: Instant) {
        if self.queued {
            self.waiting_seen = now;
            self.queued = false;
        }
    }

    /// Whether the task was seen waiting in Runway's queue.
    pub fn was_queued(&self) -> bool {
        self.queued
    }

    /// The wait before the first poll: half the typical task time (the progress seen then
    /// places the next poll at the finish), or a quick first look when nothing is known yet.
    pub fn first(&self) -> Duration {
        self.clamp(self.expected.map_or(FIRST_LOOK, |e| e / 2))
    }

    /// Records what a poll at `now` saw and returns the wait before the next one.
    pub fn next(&mut self, now: Instant, status: TaskStatus, progress: Option<f64>) -> Duration {
        match (status, progress) {
            (TaskStatus::Throttled, _) => {
                self.waiting_seen = now;
                self.queued = true;
                // Around when queued tasks like it were done (a backlog of short tasks drains in
                // seconds); past that, briskly and then less so; without a figure, the interval.
                match self.expected_queued {
                    Some(total) => match total.checked_sub(now - self.born) {
                        Some(left) if left > MIN_GAP => {
                            self.late = 0;
                            self.clamp(left + MARGIN)
                        }
                        _ => self.late_gap(),
                    },
                    None => self.interval,
                }
            }
            (TaskStatus::Pending, _) => {
                self.waiting_seen = now;
                self.queued = true;
                self.clamp(FIRST_LOOK)
            }
            (TaskStatus::Running, Some(p)) if p > 0.0 && p < 1.0 => {
                let estimate = match self.last_running {
                    // Two observations: the measured rate.
                    Some((t, q)) if p > q && now > t => {
                        let rate = (p - q) / (now - t).as_secs_f64();
                        Some((1.0 - p) / rate)
                    }
                    // One, after a wait in the queue: it started at some unknown moment since it
                    // was last seen waiting; a second look soon measures its pace.
                    None if self.queued && now - self.waiting_seen > FIRST_LOOK => {
                        let running = (now - self.waiting_seen).as_secs_f64();
                        Some((running * (1.0 - p) / p).min(FIRST_LOOK.as_secs_f64()))
                    }
                    // One, and it ran since it was submitted (or since a recent look).
                    None => {
                        let running = (now - self.waiting_seen).as_secs_f64();
                        Some(running * (1.0 - p) / p)
                    }
                    _ => None,
                };
                self.last_running = Some((now, p));
                match estimate {
                    Some(secs) if secs.is_finite() => {
                        self.late = 0;
                        self.clamp(Duration::from_secs_f64(secs.min(86_400.0)) + MARGIN)
                    }
                    _ => self.late_gap(),
                }
            }
            (TaskStatus::Running, _) => self.late_gap(),
            _ => self.clamp(FIRST_LOOK),
        }
    }

    /// Past the estimate (or without one): start brisk, back off toward the interval.
    fn late_gap(&mut self) -> Duration {
        self.late += 1;
        self.clamp(MIN_GAP.mul_f64(1.5f64.powi(self.late.min(20) as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a task that runs `run` seconds (after `queued` seconds waiting) against the clock,
    /// after earlier tasks took `expected`; returns the polls made and how late the finish was seen.
    fn simulate(queued: f64, run: f64, interval: Duration, expected: Option<f64>) -> (u32, f64) {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut clock = PollClock::new(t0, interval, expected.map(Duration::from_secs_f64));
        let mut now = clock.first().as_secs_f64();
        let mut polls = 0;
        loop {
            polls += 1;
            let (status, p) = if now < queued {
                (TaskStatus::Throttled, None)
            } else if now < queued + run {
                (TaskStatus::Running, Some((now - queued) / run))
            } else {
                return (polls, now - queued - run);
            };
            now += clock.next(at(now), status, p).as_secs_f64();
        }
    }

    #[test]
    fn a_30_second_task_costs_fewer_polls_than_a_5_second_beat_and_is_seen_at_once() {
        let (polls, delay) = simulate(0.0, 30.0, Duration::from_secs(5), Some(30.0));
        // A fixed 5 s poller needs 6 polls if the task is done at 30.0 s sharp, 7 if it is a
        // moment later, and notices it up to 5 s late.
        assert!(polls <= 6, "{polls} polls");
        assert!(delay < 0.1, "noticed {delay:.3} s late");
        // The very first task, with nothing known, costs one quick look more.
        let (polls, delay) = simulate(0.0, 30.0, Duration::from_secs(5), None);
        assert!(
            polls <= 7 && delay < 0.1,
            "{polls} polls, {delay:.3} s late"
        );
    }

    #[test]
    fn a_2_second_task_is_noticed_within_a_tenth_of_a_second() {
        for expected in [None, Some(2.0)] {
            let (polls, delay) = simulate(0.0, 2.0, Duration::from_secs(5), expected);
            assert!(delay < 0.1, "noticed {delay:.3} s late");
            assert!(polls <= 2, "{polls} polls");
        }
    }

    // See: issue 12 — in a backlog of short tasks a task still queued at its first look waited a
    // whole interval (10 s) after Runway had run it, and section 4 of the bench swung by 10 %.
    #[test]
    fn a_queued_task_is_looked_at_again_when_queued_tasks_are_usually_done() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clock = PollClock::new(t0, Duration::from_secs(10), None)
            .with_queued(Some(Duration::from_millis(900)));
        let gap = clock.next(at(400), TaskStatus::Throttled, None);
        assert_eq!(
            gap,
            Duration::from_millis(530),
            "the rest of 0.9 s, and the margin"
        );
        // Still queued past that: brisk, then backing off toward the interval.
        let late: Vec<Duration> = (0..12)
            .map(|i| clock.next(at(1000 + i * 100), TaskStatus::Throttled, None))
            .collect();
        assert!(late[0] <= Duration::from_millis(200), "{late:?}");
        assert!(late.windows(2).all(|w| w[1] >= w[0]), "{late:?}");
        assert_eq!(late[11], Duration::from_secs(10), "{late:?}");
    }

    #[test]
    fn throttled_tasks_are_polled_slowly_and_never_beyond_the_interval() {
        let mut clock = PollClock::new(Instant::now(), Duration::from_secs(5), None);
        assert_eq!(
            clock.next(Instant::now(), TaskStatus::Throttled, None),
            Duration::from_secs(5)
        );
        let fresh = PollClock::new(Instant::now(), Duration::from_secs(5), None).next(
            Instant::now() + Duration::from_secs(1),
            TaskStatus::Running,
            Some(0.001),
        );
        assert_eq!(
            fresh,
            Duration::from_secs(5),
            "never slower than the interval"
        );
        let far = clock.next(
            Instant::now() + Duration::from_secs(1),
            TaskStatus::Running,
            Some(0.001),
        );
        assert!(far <= Duration::from_secs(5));
        // Queued for 7 s, then 3 s of work: seen within one interval, and once running, at once.
        let (_, delay) = simulate(7.0, 3.0, Duration::from_secs(5), None);
        assert!(delay <= 5.0, "noticed {delay:.3} s late");
        let (_, delay) = simulate(4.5, 3.0, Duration::from_secs(5), None);
        assert!(delay < 0.1, "noticed {delay:.3} s late");
    }
}
