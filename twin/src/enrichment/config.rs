//! `metadata_enrichment_config`: which field groups enrichment fills, and from whom.
//!
//! Read at start and on `POST /admin/config/reload` only, never per call: the
//! runbooks' "UPDATE … then reload" only takes effect after the reload, so a
//! forgotten reload is visible, as it is in SongNodes.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use wire::api::Provider;

use super::contract::EnrichedFields;

/// The field groups enrichment knows how to fill, by `config_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// spotify_id, isrc
    Identifiers,
    /// bpm, key
    AudioFeatures,
    /// musicbrainz_id, duration_ms
    RecordingDetails,
    /// genre, popularity, lastfm_listeners
    PopularityTags,
}

impl GroupKind {
    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "identifiers" => Some(GroupKind::Identifiers),
            "audio_features" => Some(GroupKind::AudioFeatures),
            "recording_details" => Some(GroupKind::RecordingDetails),
            "popularity_tags" => Some(GroupKind::PopularityTags),
            _ => None,
        }
    }

    /// Whether serving this group from Spotify needs its audio-features call.
    pub fn needs_audio_features(self) -> bool {
        self == GroupKind::AudioFeatures
    }

    /// Keeps only the fields this group fills: a provider answers with all it knows,
    /// a group takes its share.
    pub fn project(self, all: &EnrichedFields) -> EnrichedFields {
        let mut mine = EnrichedFields::default();
        match self {
            GroupKind::Identifiers => {
                mine.spotify_id = all.spotify_id.clone();
                mine.isrc = all.isrc.clone();
            }
            GroupKind::AudioFeatures => {
                mine.bpm = all.bpm;
                mine.key = all.key.clone();
            }
            GroupKind::RecordingDetails => {
                mine.musicbrainz_id = all.musicbrainz_id.clone();
                mine.duration_ms = all.duration_ms;
            }
            GroupKind::PopularityTags => {
                mine.genre = all.genre.clone();
                mine.popularity = all.popularity;
                mine.lastfm_listeners = all.lastfm_listeners;
            }
        }
        mine
    }
}

/// One row of `metadata_enrichment_config`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldGroup {
    pub config_key: String,
    /// `None` for a key this twin does not know: such a row is reported, never run.
    #[serde(skip)]
    pub kind: Option<GroupKind>,
    pub enabled: bool,
    /// Priority order, each provider once.
    pub providers: Vec<Provider>,
    pub timeout_seconds: u32,
    pub cache_ttl_hours: u32,
}

impl FieldGroup {
    /// Modeled time a provider call of this group may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_seconds))
    }

    /// Modeled lifetime of a cached answer fetched for this group.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.cache_ttl_hours) * 3600)
    }
}

/// The whole table as last loaded.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EnrichmentConfig {
    pub groups: Vec<FieldGroup>,
}

impl EnrichmentConfig {
    /// Enabled rows this twin can run, in table order.
    pub fn runnable(&self) -> impl Iterator<Item = (&FieldGroup, GroupKind)> {
        self.groups
            .iter()
            .filter(|g| g.enabled)
            .filter_map(|g| g.kind.map(|kind| (g, kind)))
    }

    /// Providers named by at least one enabled row (`/health` → `enabled`).
    pub fn enabled_providers(&self) -> BTreeSet<Provider> {
        self.groups
            .iter()
            .filter(|g| g.enabled)
            .flat_map(|g| g.providers.iter().copied())
            .collect()
    }

    /// The answer of `POST /admin/config/reload`.
    pub fn summary(&self) -> serde_json::Value {
        let unknown: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| g.kind.is_none())
            .map(|g| g.config_key.as_str())
            .collect();
        serde_json::json!({
            "status": "reloaded",
            "field_groups": self.groups,
            "enabled_field_groups": self.groups.iter().filter(|g| g.enabled).count(),
            "enabled_providers": self.enabled_providers(),
            "ignored_unknown_config_keys": unknown,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading metadata_enrichment_config: {0}")]
    Query(#[from] sqlx::Error),
    #[error("metadata_enrichment_config row '{key}': {reason}")]
    BadRow { key: String, reason: String },
}

crate::pg_row! {
    struct Row {
        config_key: String,
        enabled: bool,
        priority_1_provider: String,
        priority_2_provider: Option<String>,
        priority_3_provider: Option<String>,
        timeout_seconds: i32,
        cache_ttl_hours: i32,
    }
}

/// Reads the table.
pub async fn load(pool: &PgPool) -> Result<EnrichmentConfig, ConfigError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT config_key, enabled, priority_1_provider, priority_2_provider, \
                priority_3_provider, timeout_seconds, cache_ttl_hours \
         FROM metadata_enrichment_config ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let groups = rows
        .into_iter()
        .map(group_of_row)
        .collect::<Result<_, _>>()?;
    Ok(EnrichmentConfig { groups })
}

fn group_of_row(row: Row) -> Result<FieldGroup, ConfigError> {
    let bad = |reason: String| ConfigError::BadRow {
        key: row.config_key.clone(),
        reason,
    };
    let named = [
        Some(row.priority_1_provider.as_str()),
        row.priority_2_provider.as_deref(),
        row.priority_3_provider.as_deref(),
    ];
    let mut providers = Vec::new();
    for name in named.into_iter().flatten() {
        let provider: Provider = name.parse().map_err(|e| bad(format!("{e}")))?;
        // "A provider that appears twice in a row's list is tried once."
        if !providers.contains(&provider) {
            providers.push(provider);
        }
    }
    let positive = |value: i32, column: &str| {
        u32::try_from(value)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| bad(format!("{column} must be positive, is {value}")))
    };
    Ok(FieldGroup {
        kind: GroupKind::from_key(&row.config_key),
        enabled: row.enabled,
        providers,
        timeout_seconds: positive(row.timeout_seconds, "timeout_seconds")?,
        cache_ttl_hours: positive(row.cache_ttl_hours, "cache_ttl_hours")?,
        config_key: row.config_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, p: [Option<&str>; 3]) -> Row {
        Row {
            config_key: key.into(),
            enabled: true,
            priority_1_provider: p[0].unwrap_or("spotify").into(),
            priority_2_provider: p[1].map(Into::into),
            priority_3_provider: p[2].map(Into::into),
            timeout_seconds: 30,
            cache_ttl_hours: 168,
        }
    }

    #[test]
    fn a_provider_named_twice_is_tried_once() {
        // The runbook's un-WHERE'd priority update does this to `recording_details`.
        let group = group_of_row(row(
            "recording_details",
            [Some("musicbrainz"), Some("lastfm"), Some("musicbrainz")],
        ))
        .unwrap();
        assert_eq!(group.providers, [Provider::Musicbrainz, Provider::Lastfm]);
        assert_eq!(group.kind, Some(GroupKind::RecordingDetails));
    }

    #[test]
    fn unknown_keys_are_kept_but_not_run() {
        let config = EnrichmentConfig {
            groups: vec![
                group_of_row(row("lyrics", [Some("lastfm"), None, None])).unwrap(),
                group_of_row(row("identifiers", [Some("spotify"), None, None])).unwrap(),
            ],
        };
        let runnable: Vec<_> = config.runnable().map(|(g, _)| &g.config_key).collect();
        assert_eq!(runnable, ["identifiers"]);
        assert_eq!(config.summary()["ignored_unknown_config_keys"][0], "lyrics");
    }

    #[test]
    fn enabled_providers_ignore_disabled_rows() {
        let mut spotify =
            group_of_row(row("audio_features", [Some("spotify"), None, None])).unwrap();
        spotify.enabled = false;
        let mb = group_of_row(row("recording_details", [Some("musicbrainz"), None, None])).unwrap();
        let config = EnrichmentConfig {
            groups: vec![spotify, mb],
        };
        assert_eq!(
            config.enabled_providers().into_iter().collect::<Vec<_>>(),
            [Provider::Musicbrainz]
        );
    }

    #[test]
    fn groups_take_only_their_fields() {
        let all = EnrichedFields {
            spotify_id: Some("x".into()),
            duration_ms: Some(1),
            genre: Some("house".into()),
            ..Default::default()
        };
        let ids = GroupKind::Identifiers.project(&all);
        assert_eq!(ids.present(), ["spotify_id"]);
        let rec = GroupKind::RecordingDetails.project(&all);
        assert_eq!(rec.present(), ["duration_ms"]);
    }

    #[test]
    fn an_unknown_provider_is_refused_with_the_row() {
        let err = group_of_row(row("identifiers", [Some("deezer"), None, None])).unwrap_err();
        assert!(err.to_string().contains("identifiers"), "{err}");
    }
}
