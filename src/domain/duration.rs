//! The one reading of a duration a person wrote: a TTL, an extension, a timeout.
//! The console, the CLI and the config all use it, so "0" means the same thing
//! everywhere: no duration (a TTL of nothing grants nothing).

/// Anything longer is a typo, and would overflow what is computed from it
/// (`max_total` defaults to 2 x max_ttl; expiries are now + ttl).
pub const MAX_SECS: u64 = 100 * 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadDuration {
    /// Not humantime's syntax ("15m", "1h 30m", "90s"), or under a second.
    NotADuration,
    /// Over 100 years.
    TooLong,
}

/// Whole seconds, at least one and at most `MAX_SECS`.
pub fn parse_secs(s: &str) -> Result<i64, BadDuration> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.as_secs() > MAX_SECS => Err(BadDuration::TooLong),
        Ok(d) if d.as_secs() > 0 => Ok(d.as_secs() as i64),
        _ => Err(BadDuration::NotADuration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_positive_seconds() {
        assert_eq!(parse_secs("15m"), Ok(900));
        assert_eq!(parse_secs(" 1h 30m "), Ok(5400));
        assert_eq!(parse_secs("90s"), Ok(90));
        assert_eq!(parse_secs("100years"), Ok(MAX_SECS as i64));
        for zero in ["0", "0s", "0m", "500ms", "", "  "] {
            assert_eq!(parse_secs(zero), Err(BadDuration::NotADuration), "{zero:?}");
        }
        for junk in ["soon", "-5m", "15", "1h!"] {
            assert_eq!(parse_secs(junk), Err(BadDuration::NotADuration), "{junk:?}");
        }
        assert_eq!(parse_secs("101years"), Err(BadDuration::TooLong));
    }
}
