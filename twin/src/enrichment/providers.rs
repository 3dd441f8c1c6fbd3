//! What enrichment asks each provider, and how it reads the answers.
//!
//! Requests are described as data ([`ProviderRequest`]: gateway path, query, cache
//! key) so the pipeline can cache and memoize them uniformly. Answers are parsed
//! strictly where it matters: a 2xx payload that cannot be read, or lacks what
//! identifies the track (Spotify item without id or name, MusicBrainz recording
//! without id, Last.fm track without name), is `invalid_data`; an empty result is a
//! valid "not found". Each parser returns everything the provider knows as
//! [`EnrichedFields`]; field groups take their share ([`super::config::GroupKind::project`]).

use serde_json::Value;
use wire::api::{ErrorKind, Provider};

use super::contract::EnrichedFields;
use crate::quality::KEY_NAMES;

/// The provider endpoints enrichment uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    SpotifySearch,
    SpotifyAudioFeatures,
    MusicbrainzRecording,
    LastfmTrackInfo,
}

impl Endpoint {
    pub fn provider(self) -> Provider {
        match self {
            Endpoint::SpotifySearch | Endpoint::SpotifyAudioFeatures => Provider::Spotify,
            Endpoint::MusicbrainzRecording => Provider::Musicbrainz,
            Endpoint::LastfmTrackInfo => Provider::Lastfm,
        }
    }

    /// The endpoint's short name in cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::SpotifySearch => "search",
            Endpoint::SpotifyAudioFeatures => "audio-features",
            Endpoint::MusicbrainzRecording => "recording",
            Endpoint::LastfmTrackInfo => "track.getinfo",
        }
    }
}

/// One provider call, described as data.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderRequest {
    pub endpoint: Endpoint,
    /// Path segments after the provider's base URL (percent-encoded when sent).
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    /// Redis key of the cached answer.
    pub cache_key: String,
}

impl ProviderRequest {
    pub fn provider(&self) -> Provider {
        self.endpoint.provider()
    }

    /// `GET /v1/search?q=artist:{artist} track:{title}&type=track&limit=1`
    pub fn spotify_search(artist: &str, title: &str) -> Self {
        Self {
            endpoint: Endpoint::SpotifySearch,
            segments: vec!["v1".into(), "search".into()],
            query: vec![
                ("q", format!("artist:{artist} track:{title}")),
                ("type", "track".into()),
                ("limit", "1".into()),
            ],
            cache_key: track_key(Endpoint::SpotifySearch, artist, title),
        }
    }

    /// `GET /v1/audio-features/{spotify_id}`
    pub fn spotify_audio_features(spotify_id: &str) -> Self {
        Self {
            endpoint: Endpoint::SpotifyAudioFeatures,
            segments: vec!["v1".into(), "audio-features".into(), spotify_id.into()],
            query: vec![],
            // Spotify ids are case-sensitive: not lowercased.
            cache_key: format!("enrich:spotify:audio-features:{spotify_id}"),
        }
    }

    /// `GET /ws/2/recording?query=artist:"{artist}" AND recording:"{title}"&fmt=json&limit=1`
    pub fn musicbrainz_recording(artist: &str, title: &str) -> Self {
        Self {
            endpoint: Endpoint::MusicbrainzRecording,
            segments: vec!["ws".into(), "2".into(), "recording".into()],
            query: vec![
                (
                    "query",
                    format!(
                        "artist:\"{}\" AND recording:\"{}\"",
                        lucene_phrase(artist),
                        lucene_phrase(title)
                    ),
                ),
                ("fmt", "json".into()),
                ("limit", "1".into()),
            ],
            cache_key: track_key(Endpoint::MusicbrainzRecording, artist, title),
        }
    }

    /// `GET /2.0/?method=track.getInfo&artist={artist}&track={title}&api_key=drill&format=json`
    pub fn lastfm_track_info(artist: &str, title: &str) -> Self {
        Self {
            endpoint: Endpoint::LastfmTrackInfo,
            segments: vec!["2.0".into(), String::new()],
            query: vec![
                ("method", "track.getInfo".into()),
                ("artist", artist.into()),
                ("track", title.into()),
                ("api_key", "drill".into()),
                ("format", "json".into()),
            ],
            cache_key: track_key(Endpoint::LastfmTrackInfo, artist, title),
        }
    }

    /// The request that looks a track up at `provider` (the first call for any group).
    pub fn lookup(provider: Provider, artist: &str, title: &str) -> Self {
        match provider {
            Provider::Spotify => Self::spotify_search(artist, title),
            Provider::Musicbrainz => Self::musicbrainz_recording(artist, title),
            Provider::Lastfm => Self::lastfm_track_info(artist, title),
        }
    }
}

/// `enrich:{provider}:{endpoint}:{artist}|{title}`, lowercased and trimmed.
fn track_key(endpoint: Endpoint, artist: &str, title: &str) -> String {
    format!(
        "enrich:{}:{}:{}|{}",
        endpoint.provider(),
        endpoint.name(),
        artist.trim().to_lowercase(),
        title.trim().to_lowercase()
    )
}

/// Escapes a value for a quoted Lucene phrase.
fn lucene_phrase(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Why a 2xx payload was not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload lacks {0}")]
    Missing(&'static str),
}

/// A payload that is well-formed but is the provider saying no (Last.fm reports its
/// errors in the body).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRefusal {
    pub kind: ErrorKind,
    pub message: String,
}

/// How a payload reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The provider knows the track; everything it says about it.
    Found(EnrichedFields),
    /// A valid answer that does not know the track (empty result, Last.fm error 6).
    NotFound,
    /// A valid payload carrying an error.
    Refused(ProviderRefusal),
}

/// Reads a payload of `endpoint`.
pub fn read(endpoint: Endpoint, body: &str) -> Result<Reading, PayloadError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match endpoint {
        Endpoint::SpotifySearch => spotify_search(&value),
        Endpoint::SpotifyAudioFeatures => spotify_audio_features(&value),
        Endpoint::MusicbrainzRecording => musicbrainz_recording(&value),
        Endpoint::LastfmTrackInfo => lastfm_track_info(&value),
    }
}

fn spotify_search(value: &Value) -> Result<Reading, PayloadError> {
    let items = value
        .pointer("/tracks/items")
        .and_then(Value::as_array)
        .ok_or(PayloadError::Missing("tracks.items"))?;
    let Some(item) = items.first() else {
        return Ok(Reading::NotFound);
    };
    let id = text(item, "/id").ok_or(PayloadError::Missing("tracks.items[0].id"))?;
    text(item, "/name").ok_or(PayloadError::Missing("tracks.items[0].name"))?;
    Ok(Reading::Found(EnrichedFields {
        spotify_id: Some(id),
        isrc: text(item, "/external_ids/isrc"),
        duration_ms: integer(item, "/duration_ms").and_then(|ms| i32::try_from(ms).ok()),
        popularity: integer(item, "/popularity").and_then(|p| i32::try_from(p).ok()),
        ..Default::default()
    }))
}

fn spotify_audio_features(value: &Value) -> Result<Reading, PayloadError> {
    let tempo = value
        .get("tempo")
        .and_then(Value::as_f64)
        .ok_or(PayloadError::Missing("tempo"))?;
    let key = integer(value, "/key").ok_or(PayloadError::Missing("key"))?;
    let minor = integer(value, "/mode") == Some(0);
    Ok(Reading::Found(EnrichedFields {
        // Spotify reports tempo 0 when it detected none.
        bpm: (tempo > 0.0).then_some(round_to(tempo, 3)),
        key: key_name(key, minor),
        ..Default::default()
    }))
}

/// Spotify's pitch class (0 = C … 11 = B, -1 = none) and mode (1 major, 0 minor) as
/// the key name enrichment stores: `C`, `C#`, …, `B`, with `m` for minor (`A#m`).
pub fn key_name(pitch_class: i64, minor: bool) -> Option<String> {
    let tonic = KEY_NAMES.get(usize::try_from(pitch_class).ok()?)?;
    Some(if minor {
        format!("{tonic}m")
    } else {
        (*tonic).to_owned()
    })
}

fn musicbrainz_recording(value: &Value) -> Result<Reading, PayloadError> {
    let recordings = value
        .get("recordings")
        .and_then(Value::as_array)
        .ok_or(PayloadError::Missing("recordings"))?;
    let Some(recording) = recordings.first() else {
        return Ok(Reading::NotFound);
    };
    let id = text(recording, "/id").ok_or(PayloadError::Missing("recordings[0].id"))?;
    let isrc = recording
        .get("isrcs")
        .and_then(Value::as_array)
        .and_then(|isrcs| isrcs.iter().find_map(|i| i.as_str()))
        .map(str::to_owned);
    // The most-voted tag, first on ties.
    let genre = recording
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tag| Some((tag.get("count")?.as_i64().unwrap_or(0), text(tag, "/name")?)))
        .fold(None::<(i64, String)>, |best, (count, name)| match best {
            Some((c, _)) if c >= count => best,
            _ => Some((count, name)),
        })
        .map(|(_, name)| name);
    Ok(Reading::Found(EnrichedFields {
        musicbrainz_id: Some(id),
        isrc,
        duration_ms: integer(recording, "/length").and_then(|ms| i32::try_from(ms).ok()),
        genre,
        ..Default::default()
    }))
}

fn lastfm_track_info(value: &Value) -> Result<Reading, PayloadError> {
    if let Some(code) = value.get("error").and_then(Value::as_i64) {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned();
        return Ok(match code {
            // "Track not found"
            6 => Reading::NotFound,
            // "Rate limit exceeded"
            29 => Reading::Refused(ProviderRefusal {
                kind: ErrorKind::ApiRateLimit,
                message: format!("lastfm error 29: {message}"),
            }),
            _ => Reading::Refused(ProviderRefusal {
                kind: ErrorKind::ProviderError,
                message: format!("lastfm error {code}: {message}"),
            }),
        });
    }
    let track = value.get("track").ok_or(PayloadError::Missing("track"))?;
    text(track, "/name").ok_or(PayloadError::Missing("track.name"))?;
    let listeners = integer(track, "/listeners");
    // Last.fm sends a single tag as an object rather than a one-element array.
    let genre = match track.pointer("/toptags/tag") {
        Some(Value::Array(tags)) => tags.first().and_then(|t| text(t, "/name")),
        Some(tag @ Value::Object(_)) => text(tag, "/name"),
        _ => None,
    };
    Ok(Reading::Found(EnrichedFields {
        musicbrainz_id: text(track, "/mbid"),
        duration_ms: integer(track, "/duration")
            .filter(|ms| *ms > 0)
            .and_then(|ms| i32::try_from(ms).ok()),
        genre,
        popularity: listeners.map(popularity_of_listeners),
        lastfm_listeners: listeners,
        ..Default::default()
    }))
}

/// Last.fm has no 0–100 popularity; derive one from listeners on a log scale that
/// reaches 100 at ten million listeners (412 093 listeners → 80).
pub fn popularity_of_listeners(listeners: i64) -> i32 {
    let score = 100.0 * ((listeners.max(0) as f64) + 1.0).log10() / 7.0;
    score.round().clamp(0.0, 100.0) as i32
}

/// A non-empty string at `pointer`.
fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An integer at `pointer`, given as a number or (as Last.fm does) a string.
fn integer(value: &Value, pointer: &str) -> Option<i64> {
    match value.pointer(pointer)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOTIFY_SEARCH: &str = include_str!("../../../fixtures/providers/spotify_search.json");
    const SPOTIFY_FEATURES: &str =
        include_str!("../../../fixtures/providers/spotify_audio_features.json");
    const MUSICBRAINZ: &str =
        include_str!("../../../fixtures/providers/musicbrainz_recording.json");
    const LASTFM: &str = include_str!("../../../fixtures/providers/lastfm_track_getinfo.json");

    fn found(reading: Reading) -> EnrichedFields {
        match reading {
            Reading::Found(fields) => fields,
            other => panic!("expected Found, got {other:?}"),
        }
    }

    #[test]
    fn spotify_search_fixture() {
        let fields = found(read(Endpoint::SpotifySearch, SPOTIFY_SEARCH).unwrap());
        assert_eq!(fields.spotify_id.as_deref(), Some("2aJDlirz6v2a4HREki98cP"));
        assert_eq!(fields.isrc.as_deref(), Some("GBCFB1700260"));
        assert_eq!(fields.duration_ms, Some(269_453));
        assert_eq!(fields.popularity, Some(62));
    }

    #[test]
    fn spotify_audio_features_fixture() {
        let fields = found(read(Endpoint::SpotifyAudioFeatures, SPOTIFY_FEATURES).unwrap());
        assert_eq!(fields.bpm, Some(129.997));
        // key 10, mode 0: A# minor.
        assert_eq!(fields.key.as_deref(), Some("A#m"));
    }

    #[test]
    fn musicbrainz_fixture() {
        let fields = found(read(Endpoint::MusicbrainzRecording, MUSICBRAINZ).unwrap());
        assert_eq!(
            fields.musicbrainz_id.as_deref(),
            Some("b1a9c0e9-d987-4042-ae91-78d6a3267d69")
        );
        assert_eq!(fields.isrc.as_deref(), Some("GBCFB1700260"));
        assert_eq!(fields.duration_ms, Some(269_000));
        assert_eq!(fields.genre.as_deref(), Some("electronic"));
        assert_eq!(fields.spotify_id, None);
    }

    #[test]
    fn lastfm_fixture() {
        let fields = found(read(Endpoint::LastfmTrackInfo, LASTFM).unwrap());
        assert_eq!(fields.lastfm_listeners, Some(412_093));
        assert_eq!(fields.popularity, Some(80));
        assert_eq!(fields.genre.as_deref(), Some("electronic"));
        assert_eq!(fields.duration_ms, Some(269_000));
        assert_eq!(
            fields.musicbrainz_id.as_deref(),
            Some("b1a9c0e9-d987-4042-ae91-78d6a3267d69")
        );
    }

    #[test]
    fn empty_results_are_not_found() {
        let spotify = r#"{"tracks": {"items": [], "total": 0}}"#;
        assert_eq!(
            read(Endpoint::SpotifySearch, spotify),
            Ok(Reading::NotFound)
        );
        let mb = r#"{"count": 0, "recordings": []}"#;
        assert_eq!(
            read(Endpoint::MusicbrainzRecording, mb),
            Ok(Reading::NotFound)
        );
        let lastfm = r#"{"error": 6, "message": "Track not found"}"#;
        assert_eq!(
            read(Endpoint::LastfmTrackInfo, lastfm),
            Ok(Reading::NotFound)
        );
    }

    #[test]
    fn payloads_without_identity_are_invalid() {
        let no_id = SPOTIFY_SEARCH.replace("\"id\": \"2aJDlirz6v2a4HREki98cP\"", "\"idx\": 1");
        assert_eq!(
            read(Endpoint::SpotifySearch, &no_id),
            Err(PayloadError::Missing("tracks.items[0].id"))
        );
        let no_name = SPOTIFY_SEARCH.replace("\"name\": \"Glue\"", "\"title\": \"Glue\"");
        assert_eq!(
            read(Endpoint::SpotifySearch, &no_name),
            Err(PayloadError::Missing("tracks.items[0].name"))
        );
        let mb = r#"{"recordings": [{"title": "Glue"}]}"#;
        assert_eq!(
            read(Endpoint::MusicbrainzRecording, mb),
            Err(PayloadError::Missing("recordings[0].id"))
        );
        let lastfm = r#"{"track": {"listeners": "10"}}"#;
        assert_eq!(
            read(Endpoint::LastfmTrackInfo, lastfm),
            Err(PayloadError::Missing("track.name"))
        );
        assert!(matches!(
            read(Endpoint::SpotifySearch, "<html>oops</html>"),
            Err(PayloadError::NotJson(_))
        ));
        assert_eq!(
            read(Endpoint::SpotifySearch, r#"{"tracks": {}}"#),
            Err(PayloadError::Missing("tracks.items"))
        );
    }

    #[test]
    fn lastfm_errors_in_the_body_are_classified() {
        let limited = r#"{"error": 29, "message": "Rate limit exceeded"}"#;
        let Ok(Reading::Refused(refusal)) = read(Endpoint::LastfmTrackInfo, limited) else {
            panic!("expected a refusal");
        };
        assert_eq!(refusal.kind, ErrorKind::ApiRateLimit);
        let offline = r#"{"error": 11, "message": "Service Offline"}"#;
        let Ok(Reading::Refused(refusal)) = read(Endpoint::LastfmTrackInfo, offline) else {
            panic!("expected a refusal");
        };
        assert_eq!(refusal.kind, ErrorKind::ProviderError);
    }

    #[test]
    fn a_single_lastfm_tag_is_an_object() {
        let one = r#"{"track": {"name": "Glue", "toptags": {"tag": {"name": "house"}}}}"#;
        let fields = found(read(Endpoint::LastfmTrackInfo, one).unwrap());
        assert_eq!(fields.genre.as_deref(), Some("house"));
        assert_eq!(fields.musicbrainz_id, None);
    }

    #[test]
    fn keys_are_named_by_pitch_class_and_mode() {
        assert_eq!(key_name(0, false).as_deref(), Some("C"));
        assert_eq!(key_name(1, true).as_deref(), Some("C#m"));
        assert_eq!(key_name(11, false).as_deref(), Some("B"));
        assert_eq!(key_name(-1, false), None);
        assert_eq!(key_name(12, false), None);
    }

    #[test]
    fn requests_follow_the_provider_contract() {
        let search = ProviderRequest::spotify_search("Bicep", "Glue");
        assert_eq!(search.segments, ["v1", "search"]);
        assert_eq!(search.query[0], ("q", "artist:Bicep track:Glue".into()));
        assert_eq!(search.cache_key, "enrich:spotify:search:bicep|glue");
        let mb = ProviderRequest::musicbrainz_recording("Bicep", "Say \"Hi\"");
        assert_eq!(
            mb.query[0].1,
            "artist:\"Bicep\" AND recording:\"Say \\\"Hi\\\"\""
        );
        let lastfm = ProviderRequest::lastfm_track_info(" Bicep ", "GLUE");
        assert_eq!(lastfm.segments, ["2.0", ""]);
        assert_eq!(lastfm.cache_key, "enrich:lastfm:track.getinfo:bicep|glue");
        let features = ProviderRequest::spotify_audio_features("2aJDlirz6v2a4HREki98cP");
        assert_eq!(
            features.cache_key,
            "enrich:spotify:audio-features:2aJDlirz6v2a4HREki98cP"
        );
    }

    #[test]
    fn popularity_grows_with_listeners_and_is_bounded() {
        assert_eq!(popularity_of_listeners(0), 0);
        assert_eq!(popularity_of_listeners(412_093), 80);
        assert_eq!(popularity_of_listeners(10_000_000), 100);
        assert_eq!(popularity_of_listeners(i64::MAX), 100);
    }
}
