//! The one way dropreel writes a moment: RFC 3339, seconds precision, UTC
//! (`2026-12-07T22:34:35Z`), in `job.json`, `result.json`, `error.txt`, the ledgers, the instance
//! files, events and the dashboard. A leaf. (Times shown in this machine's zone are
//! [`crate::studio::ledger::spend::local_text`]'s.)

use std::time::SystemTime;

/// `t` in RFC 3339, seconds precision, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Now in RFC 3339, seconds precision, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}
