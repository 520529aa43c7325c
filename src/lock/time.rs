//! RFC 3339 timestamps for the lock, as pure functions of seconds since the Unix epoch. Only the command line
//! reads the clock; everything here takes the time it is given.

use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat};

/// `1795756213` → `2026-11-27T05:10:13Z` (UTC, whole seconds).
pub fn rfc3339(secs: i64) -> String {
    DateTime::from_secs(secs)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}

/// An RFC 3339 timestamp → seconds since the epoch (fractions dropped); `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::from_str(s, DateTimeFormat::DateTime)
        .ok()
        .map(|d| d.secs())
}

/// The date part of a timestamp, for people: `2026-11-27T05:10:13Z` → `2026-11-27`.
pub fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

/// The date of a Unix timestamp (nix's `lastModified`).
pub fn date_of_secs(secs: i64) -> String {
    date(&rfc3339(secs)).to_owned()
}

/// Whole days from `then` to `now` (0 when `then` is in the future).
pub fn age_days(then: i64, now: i64) -> i64 {
    (now - then).max(0) / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(rfc3339(1_795_756_213), "2026-11-27T05:10:13Z");
        assert_eq!(parse_rfc3339("2026-11-27T05:10:13Z"), Some(1_795_756_213));
        assert_eq!(
            parse_rfc3339("2026-09-30T23:28:25.726Z"),
            Some(1_790_810_905)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(date_of_secs(1_795_756_213), "2026-11-27");
        assert_eq!(age_days(0, 86_400 * 3 + 5), 3);
        assert_eq!(age_days(10, 0), 0);
    }
}
