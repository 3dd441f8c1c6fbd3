//! Validation of the track APIs' query strings and path ids, with refusals that say
//! which parameter is wrong and what it may be.

use serde::Deserialize;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BadParam {
    #[error("limit must be an integer from 1 to {MAX_LIMIT}, got '{0}'")]
    Limit(String),
    #[error("offset must be a non-negative integer, got '{0}'")]
    Offset(String),
    #[error("artist is required and must not be empty, e.g. ?artist=Bicep")]
    Artist,
    #[error("track id must be a positive integer, got '{0}'")]
    TrackId(String),
}

/// Query strings as sent: strings, so that bad values get our own message.
#[derive(Debug, Default, Deserialize)]
pub struct RawQuery {
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub artist: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct Paging {
    pub limit: i64,
    pub offset: i64,
}

pub fn paging(raw: &RawQuery) -> Result<Paging, BadParam> {
    let limit = match raw.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| BadParam::Limit(text.to_owned()))?,
    };
    let offset = match raw.offset.as_deref() {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|offset| *offset >= 0)
            .ok_or_else(|| BadParam::Offset(text.to_owned()))?,
    };
    Ok(Paging { limit, offset })
}

/// The `artist` of `/tracks/search`, trimmed.
pub fn artist(raw: &RawQuery) -> Result<String, BadParam> {
    raw.artist
        .as_deref()
        .map(str::trim)
        .filter(|artist| !artist.is_empty())
        .map(str::to_owned)
        .ok_or(BadParam::Artist)
}

pub fn track_id(text: &str) -> Result<i64, BadParam> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| BadParam::TrackId(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(limit: Option<&str>, offset: Option<&str>) -> RawQuery {
        RawQuery {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
            artist: None,
        }
    }

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(
            paging(&raw(None, None)),
            Ok(Paging {
                limit: 50,
                offset: 0
            })
        );
        assert_eq!(
            paging(&raw(Some("500"), Some("1000"))),
            Ok(Paging {
                limit: 500,
                offset: 1000
            })
        );
        assert_eq!(
            paging(&raw(Some("0"), None)),
            Err(BadParam::Limit("0".into()))
        );
        assert_eq!(
            paging(&raw(None, Some("-1"))),
            Err(BadParam::Offset("-1".into()))
        );
    }

    #[test]
    fn search_needs_an_artist() {
        let mut query = RawQuery::default();
        assert_eq!(artist(&query), Err(BadParam::Artist));
        query.artist = Some("  ".into());
        assert_eq!(artist(&query), Err(BadParam::Artist));
        query.artist = Some(" Bicep ".into());
        assert_eq!(artist(&query), Ok("Bicep".into()));
    }

    #[test]
    fn track_ids_are_positive_integers() {
        assert_eq!(track_id("42"), Ok(42));
        assert_eq!(track_id("0"), Err(BadParam::TrackId("0".into())));
        assert_eq!(track_id("abc"), Err(BadParam::TrackId("abc".into())));
    }
}
