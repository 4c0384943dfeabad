//! What happened that someone may want to hear about: one [`Event`] per job delivered or failed,
//! and per pause of submission begun or lifted. The job tasks and the pipeline emit them into the
//! outbox ([`crate::observe::notify`]), which writes them down before anyone is told.

use serde::{Deserialize, Serialize};

/// The kinds of event, as named in `notify.events` and in each event's `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A job's video (each take's) is in `done/`.
    Delivered,
    /// A job went to `failed/`.
    Failed,
    /// Submission paused for every job (bad key, quota, outage, budget).
    Hold,
    /// Submission resumed after a hold.
    Resumed,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Delivered,
        EventKind::Failed,
        EventKind::Hold,
        EventKind::Resumed,
    ];

    /// Its name in the config and in the event.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Delivered => "delivered",
            EventKind::Failed => "failed",
            EventKind::Hold => "hold",
            EventKind::Resumed => "resumed",
        }
    }
}

/// One event, as sent: every field is present (`null` when it does not apply), so a receiver
/// reads them without guessing. Never holds the API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event: a receiver that gets one twice (delivery is at least once) can tell.
    pub id: String,
    pub event: EventKind,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// The job's id (its folder name in `processing/` while it ran).
    pub job: Option<String>,
    /// The job's file, as a path under `inbox/`.
    pub file: Option<String>,
    /// What the job delivered, as paths under the studio (`done/cat.mp4`, …).
    pub outputs: Vec<String>,
    /// Why the job failed, with what to do.
    pub error: Option<String>,
    /// Why submission paused (`key`, `quota`, `outage`, `unreachable`, `budget`) and what it
    /// said; for `resumed`, the cause that cleared.
    pub cause: Option<String>,
    /// Credits the job's videos cost (0 when reused; `null` for the local renderer).
    pub credits: Option<f64>,
}

impl Event {
    fn new(event: EventKind) -> Event {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros();
        Event {
            // Time first, so ids sort in the order events happened.
            id: format!("{micros:016x}-{:08x}", fastrand::u32(..)),
            event,
            at: crate::studio::clock::now_rfc3339(),
            job: None,
            file: None,
            outputs: Vec::new(),
            error: None,
            cause: None,
            credits: None,
        }
    }

    /// Job `job`, made from `file` (a path under `inbox/`), delivered `outputs` (paths under the
    /// studio) for `credits`.
    pub fn delivered(job: &str, file: String, outputs: Vec<String>, credits: Option<f64>) -> Event {
        Event {
            job: Some(job.to_string()),
            file: Some(file),
            outputs,
            credits,
            ..Event::new(EventKind::Delivered)
        }
    }

    /// Job `job`, made from `file` (a path under `inbox/`), went to `failed/` (`error_file`: its
    /// `error.txt`, a path under the studio).
    pub fn failed(job: &str, file: String, error: String, error_file: String) -> Event {
        Event {
            job: Some(job.to_string()),
            file: Some(file),
            outputs: vec![error_file],
            error: Some(error),
            ..Event::new(EventKind::Failed)
        }
    }

    /// Submission paused: `cause` in a word, then what it is.
    pub fn hold(cause: &str, detail: &str) -> Event {
        Event {
            cause: Some(format!("{cause}: {detail}")),
            ..Event::new(EventKind::Hold)
        }
    }

    /// Submission resumed after a hold for `cause`.
    pub fn resumed(cause: &str) -> Event {
        Event {
            cause: Some(cause.to_string()),
            ..Event::new(EventKind::Resumed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_written_and_ids_differ_and_sort_by_time() {
        let a = Event::hold("quota", "Runway answered 429");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Event::resumed("quota");
        assert!(a.id < b.id, "{} < {}", a.id, b.id);
        let v = serde_json::to_value(&a).unwrap();
        for key in [
            "id", "event", "at", "job", "file", "outputs", "error", "cause", "credits",
        ] {
            assert!(v.get(key).is_some(), "{key} is present");
        }
        assert_eq!(v["event"], "hold");
        assert!(v["job"].is_null());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
