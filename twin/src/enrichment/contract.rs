//! The internal `POST /enrich` contract between metadata-enrichment and its workers.
//!
//! The workers own the queue and the database writes; metadata-enrichment owns the
//! providers, the cache and the breakers. This is all they exchange: a track in, and
//! either the fields found or the classified reason the track failed. Both sides are
//! in this crate, so the types live once, here.

use serde::{Deserialize, Serialize};
use wire::api::{ErrorKind, Provider};

/// `POST /enrich` body: the track as the worker claimed it. Names may be NULL in
/// `tracks`; a missing or blank one fails the track as `invalid_data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichRequest {
    pub track_id: i64,
    #[serde(default)]
    pub artist_name: Option<String>,
    #[serde(default)]
    pub track_name: Option<String>,
}

/// The `tracks` columns enrichment fills; `None` means no provider supplied it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrichedFields {
    pub spotify_id: Option<String>,
    pub isrc: Option<String>,
    pub musicbrainz_id: Option<String>,
    pub bpm: Option<f64>,
    pub key: Option<String>,
    pub duration_ms: Option<i32>,
    pub genre: Option<String>,
    pub popularity: Option<i32>,
    pub lastfm_listeners: Option<i64>,
}

impl EnrichedFields {
    /// Column names of the fields that are set, in column order (`enrichment_audit.fields_enriched`).
    pub fn present(&self) -> Vec<&'static str> {
        let flags = [
            ("spotify_id", self.spotify_id.is_some()),
            ("isrc", self.isrc.is_some()),
            ("musicbrainz_id", self.musicbrainz_id.is_some()),
            ("bpm", self.bpm.is_some()),
            ("key", self.key.is_some()),
            ("duration_ms", self.duration_ms.is_some()),
            ("genre", self.genre.is_some()),
            ("popularity", self.popularity.is_some()),
            ("lastfm_listeners", self.lastfm_listeners.is_some()),
        ];
        flags
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }

    /// Fills every field still unset from `other`; set fields are kept.
    pub fn fill_from(&mut self, other: EnrichedFields) {
        fn fill<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        fill(&mut self.spotify_id, other.spotify_id);
        fill(&mut self.isrc, other.isrc);
        fill(&mut self.musicbrainz_id, other.musicbrainz_id);
        fill(&mut self.bpm, other.bpm);
        fill(&mut self.key, other.key);
        fill(&mut self.duration_ms, other.duration_ms);
        fill(&mut self.genre, other.genre);
        fill(&mut self.popularity, other.popularity);
        fill(&mut self.lastfm_listeners, other.lastfm_listeners);
    }

    pub fn is_empty(&self) -> bool {
        self.present().is_empty()
    }
}

/// `POST /enrich` answer (always HTTP 200): `{"status": "enriched", …}` or `{"status": "failed", …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EnrichOutcome {
    Enriched(Enriched),
    Failed(Failed),
}

/// Every enabled field group was served by some provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enriched {
    pub fields: EnrichedFields,
    /// Providers whose data was used, in the order the field groups first used them.
    pub sources_used: Vec<Provider>,
    /// Provider answers served from the Redis cache for this track.
    pub cache_hits: u32,
    /// Quality rules the fields break (see [`crate::quality`]) plus notes on provider
    /// payloads that were rejected before a fallback served the group, e.g.
    /// `spotify_payload_invalid`.
    pub validation_errors: Vec<String>,
}

/// Some enabled field group could not be served: the track goes to the DLQ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    /// Classification of the last provider tried in the first failing field group.
    pub error: ErrorKind,
    pub error_message: String,
    /// That provider; `None` when no provider was tried (an invalid scraped track).
    pub provider: Option<Provider>,
    /// The failing field group (`metadata_enrichment_config.config_key`).
    #[serde(default)]
    pub field_group: Option<String>,
    /// Every provider attempt of the failing group, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default)]
    pub cache_hits: u32,
}

/// One provider's failure within a field group, for the DLQ payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: Provider,
    pub error: ErrorKind,
    pub error_message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_are_tagged_by_status() {
        let failed = EnrichOutcome::Failed(Failed {
            error: ErrorKind::CircuitBreakerOpen,
            error_message: "circuit breaker for spotify is OPEN".into(),
            provider: Some(Provider::Spotify),
            field_group: Some("audio_features".into()),
            attempts: vec![],
            cache_hits: 0,
        });
        let value = serde_json::to_value(&failed).unwrap();
        assert_eq!(value["status"], "failed");
        assert_eq!(value["error"], "circuit_breaker_open");
        assert_eq!(value["provider"], "spotify");
        let back: EnrichOutcome = serde_json::from_value(value).unwrap();
        assert_eq!(back, failed);
    }

    #[test]
    fn an_enriched_answer_reads_back_with_missing_fields_as_none() {
        let answer = json!({
            "status": "enriched",
            "fields": {"spotify_id": "2aJDlirz6v2a4HREki98cP", "bpm": 130.0},
            "sources_used": ["spotify"],
            "cache_hits": 1,
            "validation_errors": []
        });
        let EnrichOutcome::Enriched(enriched) = serde_json::from_value(answer).unwrap() else {
            panic!("expected enriched");
        };
        assert_eq!(enriched.fields.present(), vec!["spotify_id", "bpm"]);
        assert_eq!(enriched.fields.isrc, None);
    }

    #[test]
    fn filling_keeps_what_is_already_set() {
        let mut mine = EnrichedFields {
            isrc: Some("GBCFB1700260".into()),
            ..Default::default()
        };
        mine.fill_from(EnrichedFields {
            isrc: Some("OTHER0000000".into()),
            genre: Some("house".into()),
            ..Default::default()
        });
        assert_eq!(mine.isrc.as_deref(), Some("GBCFB1700260"));
        assert_eq!(mine.genre.as_deref(), Some("house"));
    }
}
