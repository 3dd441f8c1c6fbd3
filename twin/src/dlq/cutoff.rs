//! The `{date}` of `DELETE /dlq/messages/before/{date}`.
//!
//! The runbook purges with a bare day (`/before/2025-10-09`), which we read as UTC
//! midnight; an operator who needs a finer cut can give a full RFC 3339 instant.
//! Anything else is refused with the accepted forms, because guessing what a purge
//! boundary meant would delete the wrong messages.

use chrono::{DateTime, NaiveDate, Utc};

/// The forms `parse` accepts, quoted in its error.
pub const ACCEPTED_FORMS: &str =
    "YYYY-MM-DD (UTC midnight, e.g. 2025-10-09) or RFC 3339 (e.g. 2025-10-09T12:00:00Z)";

/// A purge boundary that is neither a day nor an RFC 3339 instant.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("'{text}' is not a date: use {ACCEPTED_FORMS}")]
pub struct BadCutoff {
    pub text: String,
}

/// Reads a purge boundary: messages created strictly before it are purged.
pub fn parse(text: &str) -> Result<DateTime<Utc>, BadCutoff> {
    let trimmed = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        // A valid calendar day always has a midnight; the fallback is unreachable.
        return day
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc())
            .ok_or_else(|| BadCutoff {
                text: text.to_owned(),
            });
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| BadCutoff {
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_day_is_utc_midnight() {
        let cutoff = parse("2025-10-09").unwrap();
        assert_eq!(cutoff.to_rfc3339(), "2025-10-09T00:00:00+00:00");
    }

    #[test]
    fn an_rfc3339_instant_is_taken_as_is_and_normalised_to_utc() {
        let cutoff = parse("2025-10-09T12:30:00+02:00").unwrap();
        assert_eq!(cutoff.to_rfc3339(), "2025-10-09T10:30:00+00:00");
        assert_eq!(
            parse("2025-10-09T10:30:00Z").unwrap(),
            parse("2025-10-09T10:30:00.000+00:00").unwrap()
        );
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        for text in [
            "yesterday",
            "2025-13-01",
            "2025-02-30",
            "09/10/2025",
            "",
            "2025-10-09T25:00:00Z",
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.text, text);
            let message = err.to_string();
            assert!(message.contains("YYYY-MM-DD"), "{message}");
            assert!(message.contains("RFC 3339"), "{message}");
        }
    }
}
