//! How instants and durations are written: for people (`human`, `format_hms`)
//! and for the store and the audit chain (`ts`, fixed precision so stored
//! instants compare as text and hash stably). Pure functions, no clock.

use chrono::{DateTime, Utc};

/// Fixed-precision RFC 3339 so stored instants compare as text and hash stably.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A duration in seconds the way people say it: `15m`, `1h 30m`.
pub fn human(secs: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// A countdown: `HH:MM:SS`, never negative.
pub fn format_hms(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}
