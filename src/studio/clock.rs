//! The one way dropreel writes a moment: RFC 3339, seconds precision, UTC
//! (`2026-12-07T22:34:35Z`), in `job.json`, `result.json`, `error.txt`, the ledgers, the instance
//! files, events and the dashboard; and the one way it shows a moment to a person, in this
//! machine's zone with its offset ([`local_text`]). A leaf.

use std::time::SystemTime;

/// `t` in RFC 3339, seconds precision, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Now in RFC 3339, seconds precision, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time as this machine's clock shows it, with its UTC offset and, where the zone has one, its
/// abbreviation — `2026-11-27 00:00 +01:00 (CET)` — so it reads right wherever it is read (a
/// dashboard opened on another machine, a log shipped elsewhere).
pub fn local_text(t: SystemTime) -> String {
    let Ok(ts) = jiff::Timestamp::try_from(t) else {
        return rfc3339(t);
    };
    let at = ts.to_zoned(jiff::tz::TimeZone::system());
    let text = at.strftime("%Y-%m-%d %H:%M %:z").to_string();
    let zone = at.strftime("%Z").to_string();
    if zone.is_empty() || zone.starts_with(['+', '-']) {
        text
    } else {
        format!("{text} ({zone})")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::local_text;

    #[test]
    fn a_local_time_names_its_offset() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_688_000);
        let text = local_text(t);
        let offset = text.split(' ').nth(2).unwrap_or_default();
        assert!(
            offset.len() == 6 && offset.starts_with(['+', '-']) && offset.as_bytes()[3] == b':',
            "{text}"
        );
    }
}
