//! Writing an enrichment's result: one transaction per track.
//!
//! Success: the track's fields and status, its `data_quality_scores` row and its
//! `enrichment_audit` row. Failure: status `failed`, one `dlq_messages` row and a
//! failed audit row. Either way all or nothing, and only while the writer still
//! holds the track (a lease that ran out may have gone to another worker, whose
//! result then wins): otherwise nothing is written and [`Written::LostClaim`] says so.
//! A worker holds a track by its claim; `POST /enrich/batch` re-enriches tracks that
//! are enriched, and holds one only while no worker has claimed it since.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use wire::api::Provider;

use super::queue::{Claim, Claimed};
use crate::enrichment::contract::{Enriched, EnrichedFields, Failed};
use crate::quality;

#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    Enriched {
        quality_score: f64,
        /// As stored (`None`: clean).
        validation_errors: Option<Vec<String>>,
    },
    Failed,
    /// The claim had moved on; nothing was written.
    LostClaim,
}

/// How the enrichment call went, for the audit row.
#[derive(Clone, Copy, Debug)]
pub struct CallFacts {
    pub finished_at: DateTime<Utc>,
    /// Modeled milliseconds the `/enrich` call took.
    pub duration_ms: i32,
}

crate::pg_row! {
    struct StoredFields {
        spotify_id: Option<String>,
        isrc: Option<String>,
        musicbrainz_id: Option<String>,
        bpm: Option<f64>,
        key: Option<String>,
        duration_ms: Option<i32>,
        genre: Option<String>,
        popularity: Option<i32>,
        lastfm_listeners: Option<i64>,
    }
}

impl From<StoredFields> for EnrichedFields {
    fn from(s: StoredFields) -> Self {
        EnrichedFields {
            spotify_id: s.spotify_id,
            isrc: s.isrc,
            musicbrainz_id: s.musicbrainz_id,
            bpm: s.bpm,
            key: s.key,
            duration_ms: s.duration_ms,
            genre: s.genre,
            popularity: s.popularity,
            lastfm_listeners: s.lastfm_listeners,
        }
    }
}

/// The validation errors stored for a track: the rules its stored fields break, then
/// enrichment's notes on rejected payloads; `None` (SQL NULL) when clean.
pub fn validation_errors(stored: &EnrichedFields, reported: &[String]) -> Option<Vec<String>> {
    let mut errors = quality::assess(stored).validation_errors;
    for note in reported.iter().filter(|e| !quality::is_field_rule(e)) {
        if !errors.contains(note) {
            errors.push(note.clone());
        }
    }
    (!errors.is_empty()).then_some(errors)
}

/// Comma-joined provider names, as `enrichment_audit.sources_used` holds them.
pub fn sources_text(sources: &[Provider]) -> String {
    sources
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Who writes a track's enrichment, and so under which condition it may.
#[derive(Clone, Copy, Debug)]
pub enum Writer<'a> {
    /// A worker, while the track is in progress under its claim.
    Worker(&'a Claim),
    /// `POST /enrich/batch`, while the track is enriched (no worker has it).
    Batch,
}

impl Writer<'_> {
    /// The name `enrichment_audit.worker` records for the batch endpoint.
    pub const BATCH: &'static str = "enrich-batch";
}

pub async fn enriched(
    pool: &PgPool,
    writer: Writer<'_>,
    track_id: i64,
    result: &Enriched,
    facts: CallFacts,
) -> Result<Written, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let f = &result.fields;
    let (claimed_by, claimed_at) = match writer {
        Writer::Worker(claim) => (Some(claim.worker.as_str()), Some(claim.at)),
        Writer::Batch => (None, None),
    };
    // New values fill the track; values a provider did not give this time are kept.
    let stored: Option<StoredFields> = sqlx::query_as(
        "UPDATE tracks SET \
            spotify_id = COALESCE($2, spotify_id), isrc = COALESCE($3, isrc), \
            musicbrainz_id = COALESCE($4, musicbrainz_id), bpm = COALESCE($5, bpm), \
            key = COALESCE($6, key), duration_ms = COALESCE($7, duration_ms), \
            genre = COALESCE($8, genre), popularity = COALESCE($9, popularity), \
            lastfm_listeners = COALESCE($10, lastfm_listeners), \
            enrichment_status = 'enriched', enriched_at = $11::timestamptz, updated_at = $11::timestamptz \
         WHERE track_id = $1 AND CASE WHEN $12::text IS NULL \
             THEN enrichment_status = 'enriched' \
             ELSE enrichment_status = 'in_progress' \
                  AND claimed_by = $12 AND claimed_at = $13::timestamptz END \
         RETURNING spotify_id, isrc, musicbrainz_id, bpm, key, duration_ms, genre, popularity, lastfm_listeners",
    )
    .bind(track_id)
    .bind(&f.spotify_id)
    .bind(&f.isrc)
    .bind(&f.musicbrainz_id)
    .bind(f.bpm)
    .bind(&f.key)
    .bind(f.duration_ms)
    .bind(&f.genre)
    .bind(f.popularity)
    .bind(f.lastfm_listeners)
    .bind(facts.finished_at)
    .bind(claimed_by)
    .bind(claimed_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(stored) = stored else {
        tx.rollback().await?;
        return Ok(Written::LostClaim);
    };
    let stored = EnrichedFields::from(stored);
    let verdict = quality::assess(&stored);
    let errors = validation_errors(&stored, &result.validation_errors);
    // The time column as it is named, drifted or not (`crate::drift`).
    let insert = if crate::drift::quality_time_column() == "created_at" {
        "INSERT INTO data_quality_scores (track_id, quality_score, quality_tier, validation_errors, created_at) \
         VALUES ($1, ($2::float8)::numeric(5, 2), $3, $4::jsonb, $5::timestamptz)"
    } else {
        "INSERT INTO data_quality_scores (track_id, quality_score, quality_tier, validation_errors, scored_at) \
         VALUES ($1, ($2::float8)::numeric(5, 2), $3, $4::jsonb, $5::timestamptz)"
    };
    sqlx::query(insert)
        .bind(track_id)
        .bind(verdict.score)
        .bind(verdict.tier.name())
        .bind(errors.clone().map(Json))
        .bind(facts.finished_at)
        .execute(&mut *tx)
        .await?;
    let fields_enriched: Vec<String> = f.present().into_iter().map(str::to_owned).collect();
    audit(
        &mut tx,
        track_id,
        &sources_text(&result.sources_used),
        &fields_enriched,
        Some(verdict.score),
        "success",
        claimed_by.unwrap_or(Writer::BATCH),
        result.cache_hits,
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(Written::Enriched {
        quality_score: verdict.score,
        validation_errors: errors,
    })
}

pub async fn failed(
    pool: &PgPool,
    claim: &Claim,
    track: &Claimed,
    result: &Failed,
    facts: CallFacts,
) -> Result<Written, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE tracks SET enrichment_status = 'failed', updated_at = $2::timestamptz \
         WHERE track_id = $1 AND enrichment_status = 'in_progress' \
           AND claimed_by = $3 AND claimed_at = $4::timestamptz",
    )
    .bind(track.track_id)
    .bind(facts.finished_at)
    .bind(&claim.worker)
    .bind(claim.at)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Written::LostClaim);
    }
    let payload = json!({
        "request": {
            "track_id": track.track_id,
            "artist_name": track.artist_name,
            "track_name": track.track_name,
        },
        "attempts": track.enrichment_attempts,
        "field_group": result.field_group,
        "provider_attempts": result.attempts,
        "worker": claim.worker,
    });
    // A track has at most one live message (the DLQ removes it on replay or purge);
    // should one linger anyway, the newest failure replaces it.
    sqlx::query(
        "INSERT INTO dlq_messages \
            (track_id, artist_name, track_name, error, error_message, provider, payload, replay_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 (SELECT count(*) FROM dlq_replay_log WHERE track_id = $1)::int, $8::timestamptz) \
         ON CONFLICT (track_id) DO UPDATE SET \
            artist_name = EXCLUDED.artist_name, track_name = EXCLUDED.track_name, \
            error = EXCLUDED.error, error_message = EXCLUDED.error_message, \
            provider = EXCLUDED.provider, payload = EXCLUDED.payload, \
            replay_count = EXCLUDED.replay_count, created_at = EXCLUDED.created_at",
    )
    .bind(track.track_id)
    .bind(&track.artist_name)
    .bind(&track.track_name)
    .bind(result.error.name())
    .bind(&result.error_message)
    .bind(result.provider.map(Provider::name))
    .bind(Json(payload))
    .bind(facts.finished_at)
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        track.track_id,
        "",
        &[],
        None,
        "failed",
        &claim.worker,
        result.cache_hits,
        facts,
    )
    .await?;
    tx.commit().await?;
    Ok(Written::Failed)
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut Transaction<'_, Postgres>,
    track_id: i64,
    sources_used: &str,
    fields_enriched: &[String],
    quality_score: Option<f64>,
    status: &str,
    worker: &str,
    cache_hits: u32,
    facts: CallFacts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO enrichment_audit \
            (track_id, sources_used, fields_enriched, quality_score, status, worker, cache_hits, duration_ms, created_at) \
         VALUES ($1, $2, $3, ($4::float8)::numeric(5, 2), $5, $6, $7, $8, $9::timestamptz)",
    )
    .bind(track_id)
    .bind(sources_used)
    .bind(fields_enriched)
    .bind(quality_score)
    .bind(status)
    .bind(worker)
    .bind(i32::try_from(cache_hits).unwrap_or(i32::MAX))
    .bind(facts.duration_ms)
    .bind(facts.finished_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_errors_are_the_rules_then_the_payload_notes() {
        let stored = EnrichedFields {
            spotify_id: Some("2aJDlirz6v2a4HREki98cP".into()),
            isrc: Some("GBCFB1700260".into()),
            musicbrainz_id: Some("b1a9c0e9-d987-4042-ae91-78d6a3267d69".into()),
            bpm: Some(128.0),
            key: Some("Am".into()),
            duration_ms: Some(300_000),
            genre: None,
            ..Default::default()
        };
        // Enrichment reported a rule the stored row no longer breaks, and a note.
        let reported = vec![
            "missing_isrc".to_owned(),
            "lastfm_payload_invalid".to_owned(),
        ];
        assert_eq!(
            validation_errors(&stored, &reported),
            Some(vec![
                "missing_genre".to_owned(),
                "lastfm_payload_invalid".to_owned()
            ])
        );
        let clean = EnrichedFields {
            genre: Some("techno".into()),
            ..stored
        };
        assert_eq!(validation_errors(&clean, &[]), None);
    }

    #[test]
    fn sources_are_comma_joined_in_order() {
        assert_eq!(
            sources_text(&[Provider::Spotify, Provider::Musicbrainz]),
            "spotify,musicbrainz"
        );
        assert_eq!(sources_text(&[]), "");
    }
}
