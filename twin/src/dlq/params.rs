//! Validation of what callers send the DLQ: list queries and replay batch sizes.
//!
//! An operator typing `?limit=1O` mid-incident must learn what is wrong, not get an
//! empty list or a default; so every parameter is checked here and a refusal names
//! the parameter, the accepted range and what was given.

use serde::Deserialize;
use wire::api::ErrorKind;

/// `GET /dlq/messages` without `limit`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most messages one `GET /dlq/messages` returns.
pub const MAX_LIMIT: i64 = 1000;
/// The largest replay batch: one transaction, bounded so it cannot hold locks for long.
pub const MAX_BATCH_SIZE: i64 = 10_000;

/// The query string of `GET /dlq/messages` as sent: strings, so that a bad value is
/// reported by [`MessagesQuery::parse`] rather than by a generic deserializer.
#[derive(Debug, Default, Deserialize)]
pub struct RawMessagesQuery {
    pub limit: Option<String>,
    pub error: Option<String>,
}

/// A validated `GET /dlq/messages` query.
#[derive(Debug, PartialEq)]
pub struct MessagesQuery {
    pub limit: i64,
    pub error: Option<ErrorKind>,
}

/// A parameter the DLQ cannot accept.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadParam {
    #[error("limit must be an integer from 1 to {MAX_LIMIT}, got '{0}'")]
    Limit(String),
    #[error(
        "error must be one of circuit_breaker_open, timeout, invalid_data, api_rate_limit, provider_error; got '{0}'"
    )]
    Error(String),
    #[error("batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {0}")]
    BatchSize(i64),
}

impl MessagesQuery {
    pub fn parse(raw: &RawMessagesQuery) -> Result<Self, BadParam> {
        let limit = match raw.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| BadParam::Limit(text.to_owned()))?,
        };
        let error = raw
            .error
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse::<ErrorKind>()
                    .map_err(|_| BadParam::Error(text.to_owned()))
            })
            .transpose()?;
        Ok(Self { limit, error })
    }
}

/// Checks the `batch_size` of `POST /dlq/replay/batch`.
pub fn batch_size(requested: i64) -> Result<i64, BadParam> {
    if (1..=MAX_BATCH_SIZE).contains(&requested) {
        Ok(requested)
    } else {
        Err(BadParam::BatchSize(requested))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(limit: Option<&str>, error: Option<&str>) -> RawMessagesQuery {
        RawMessagesQuery {
            limit: limit.map(str::to_owned),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn defaults_to_a_hundred_of_any_error() {
        assert_eq!(
            MessagesQuery::parse(&raw(None, None)),
            Ok(MessagesQuery {
                limit: 100,
                error: None
            })
        );
    }

    #[test]
    fn takes_the_runbooks_limits_and_an_error_filter() {
        assert_eq!(
            MessagesQuery::parse(&raw(Some("20"), Some("invalid_data"))),
            Ok(MessagesQuery {
                limit: 20,
                error: Some(ErrorKind::InvalidData)
            })
        );
        assert_eq!(
            MessagesQuery::parse(&raw(Some("1000"), None))
                .unwrap()
                .limit,
            1000
        );
    }

    #[test]
    fn refuses_limits_out_of_range_or_not_numbers() {
        for bad in ["0", "-5", "1001", "ten", "1O", ""] {
            let err = MessagesQuery::parse(&raw(Some(bad), None)).unwrap_err();
            assert_eq!(err, BadParam::Limit(bad.to_owned()));
            assert!(err.to_string().contains("from 1 to 1000"), "{err}");
        }
    }

    #[test]
    fn refuses_an_unknown_error_type_listing_the_known_ones() {
        let err = MessagesQuery::parse(&raw(None, Some("oops"))).unwrap_err();
        assert!(err.to_string().contains("circuit_breaker_open"), "{err}");
        assert!(err.to_string().contains("'oops'"), "{err}");
    }

    #[test]
    fn batch_sizes_are_bounded() {
        assert_eq!(batch_size(100), Ok(100));
        assert_eq!(batch_size(10_000), Ok(10_000));
        assert_eq!(batch_size(0), Err(BadParam::BatchSize(0)));
        assert_eq!(batch_size(10_001), Err(BadParam::BatchSize(10_001)));
    }
}
