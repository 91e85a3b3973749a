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

/// An instant the way a person reads it: to the second, in UTC, with how far
/// it is from `now`: `22:38:13 UTC (in 14m)`. Another day than today's also
/// names the date: `2026-11-26 09:00:00 UTC (in 10h 21m)`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let clock = if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S UTC")
    } else {
        t.format("%Y-%m-%d %H:%M:%S UTC")
    };
    format!("{clock} ({})", relative(t - now))
}

/// How far an instant is from now, coarsely: `in 14m`, `2h 5m ago`, `now`.
pub fn relative(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s == 0 {
        return "now".into();
    }
    let span = coarse(s.unsigned_abs());
    if s > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Two units at most, truncated: `45s`, `14m`, `2h 5m`, `3d 4h`.
fn coarse(s: u64) -> String {
    let (d, h, m) = (s / 86400, (s / 3600) % 24, (s / 60) % 60);
    let pair = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu} {small}{su}")
        }
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{m}m"),
        3600..=86399 => pair(s / 3600, "h", m, "m"),
        _ => pair(d, "d", h, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_instant_today_reads_as_a_clock_time_to_the_second_with_how_far_it_is() {
        let now = at("2026-11-25T22:24:13.5Z");
        assert_eq!(
            when(at("2026-11-25T22:38:13.990989463Z"), now),
            "22:38:13 UTC (in 14m)"
        );
        assert_eq!(
            when(at("2026-11-25T20:19:00Z"), now),
            "20:19:00 UTC (2h 5m ago)"
        );
        assert_eq!(when(at("2026-11-25T22:24:13Z"), now), "22:24:13 UTC (now)");
        assert_eq!(
            when(at("2026-11-25T22:25:00Z"), now),
            "22:25:00 UTC (in 46s)"
        );
    }

    #[test]
    fn an_instant_on_another_day_names_the_date() {
        let now = at("2026-11-25T22:24:13Z");
        assert_eq!(
            when(at("2026-11-26T09:00:00Z"), now),
            "2026-11-26 09:00:00 UTC (in 10h 35m)"
        );
        assert_eq!(
            when(at("2026-11-20T22:24:13Z"), now),
            "2026-11-20 22:24:13 UTC (5d ago)"
        );
        assert_eq!(
            when(at("2027-02-01T00:00:00Z"), now),
            "2027-02-01 00:00:00 UTC (in 67d 1h)"
        );
    }
}
