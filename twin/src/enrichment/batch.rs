//! `POST /enrich/batch`: re-enrich tracks that are already enriched.
//!
//! The Data Quality runbook's Scenario A ends in "Trigger re-enrichment via API
//! (Requires batch enrichment endpoint)": tracks enriched while a provider left fields
//! out keep those gaps, since the workers only claim pending tracks. This is that
//! endpoint: `{"track_ids": [...]}` (at most [`MAX_TRACKS`], the runbook's
//! `LIMIT 100`), each enriched again with every provider asked afresh
//! ([`CacheUse::Refresh`]: the cached answer is the incomplete one, for as long as its
//! TTL), and written as a worker writes it: new values fill the track, values a provider
//! did not give this time are kept, a new `data_quality_scores` row and an
//! `enrichment_audit` row (`worker = 'enrich-batch'`). A track that is not `enriched`
//! (pending, in progress, failed) belongs to the workers and the DLQ and is skipped; a
//! re-enrichment that fails leaves the track as it was (its earlier result stands) and
//! is reported, never sent to the DLQ.

use std::collections::HashMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::contract::EnrichOutcome;
use super::pipeline::{CacheUse, Enricher};
use crate::worker::record::{self, CallFacts, Written};

/// Tracks one request may name: the runbook selects `LIMIT 100`.
pub const MAX_TRACKS: usize = 100;
/// Tracks enriched at once: as many as one worker's batch holds in flight (the
/// providers see no more than a worker sends), so that a hundred tracks take a few
/// of the providers' round trips, not a hundred.
const CONCURRENCY: usize = 25;

#[derive(Clone, Debug, Deserialize)]
pub struct BatchRequest {
    pub track_ids: Vec<i64>,
}

/// Why a request was refused before anything was enriched.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("track_ids is empty: name the tracks to re-enrich")]
    Empty,
    #[error("{0} track_ids in one batch; at most {MAX_TRACKS} (send several batches)")]
    TooMany(usize),
    #[error("reading the tracks: {0}")]
    Database(#[from] sqlx::Error),
}

/// What became of one track.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrackResult {
    Reenriched {
        track_id: i64,
        quality_score: f64,
        validation_errors: Option<Vec<String>>,
    },
    /// The providers could not be asked; the track keeps its earlier fields.
    Failed {
        track_id: i64,
        error: String,
    },
    Skipped {
        track_id: i64,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchReport {
    pub requested: usize,
    pub reenriched: usize,
    pub failed: usize,
    pub skipped: usize,
    pub tracks: Vec<TrackResult>,
}

impl BatchReport {
    fn of(requested: usize, tracks: Vec<TrackResult>) -> Self {
        let count = |pick: fn(&TrackResult) -> bool| tracks.iter().filter(|t| pick(t)).count();
        Self {
            requested,
            reenriched: count(|t| matches!(t, TrackResult::Reenriched { .. })),
            failed: count(|t| matches!(t, TrackResult::Failed { .. })),
            skipped: count(|t| matches!(t, TrackResult::Skipped { .. })),
            tracks,
        }
    }
}

crate::pg_row! {
    struct Named {
        track_id: i64,
        artist_name: Option<String>,
        track_name: Option<String>,
        enrichment_status: String,
    }
}

/// Re-enriches the named tracks; results in the order the ids were given.
pub async fn reenrich(
    enricher: &Enricher,
    pool: &PgPool,
    request: BatchRequest,
) -> Result<BatchReport, BatchError> {
    let mut ids = request.track_ids;
    ids.dedup();
    if ids.is_empty() {
        return Err(BatchError::Empty);
    }
    if ids.len() > MAX_TRACKS {
        return Err(BatchError::TooMany(ids.len()));
    }
    let named: Vec<Named> = sqlx::query_as(
        "SELECT track_id, artist_name, track_name, enrichment_status FROM tracks \
         WHERE track_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_id: HashMap<i64, Named> = named.into_iter().map(|n| (n.track_id, n)).collect();
    let requested = ids.len();
    let jobs: Vec<(i64, Option<Named>)> =
        ids.into_iter().map(|id| (id, by_id.remove(&id))).collect();
    let tracks = futures::stream::iter(jobs)
        .map(|(track_id, named)| async move {
            match named {
                None => TrackResult::Skipped {
                    track_id,
                    reason: "no such track".into(),
                },
                Some(named) if named.enrichment_status != "enriched" => TrackResult::Skipped {
                    track_id,
                    reason: format!(
                        "enrichment_status is '{}': the workers and the DLQ own it",
                        named.enrichment_status
                    ),
                },
                Some(named) => reenrich_one(enricher, pool, named).await,
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    Ok(BatchReport::of(requested, tracks))
}

async fn reenrich_one(enricher: &Enricher, pool: &PgPool, track: Named) -> TrackResult {
    let track_id = track.track_id;
    let started = enricher.clock.now();
    let (outcome, lookups) = enricher
        .enrich_with(
            track.artist_name.as_deref(),
            track.track_name.as_deref(),
            CacheUse::Refresh,
        )
        .await;
    let finished_at = enricher.clock.now();
    let success = matches!(outcome, EnrichOutcome::Enriched(_));
    enricher
        .stats
        .record_enrichment(finished_at, success, lookups.hits, lookups.misses);
    let result = match outcome {
        EnrichOutcome::Enriched(result) => result,
        EnrichOutcome::Failed(failed) => {
            tracing::warn!(
                "re-enrichment failed track_id={track_id} error={}: {}",
                failed.error,
                failed.error_message
            );
            return TrackResult::Failed {
                track_id,
                error: failed.error_message,
            };
        }
    };
    let facts = CallFacts {
        finished_at,
        duration_ms: i32::try_from((finished_at - started).num_milliseconds().max(0))
            .unwrap_or(i32::MAX),
    };
    match record::enriched(pool, record::Writer::Batch, track_id, &result, facts).await {
        Ok(Written::Enriched {
            quality_score,
            validation_errors,
        }) => {
            tracing::info!(
                "re-enrichment completed track_id={track_id} quality_score={quality_score}"
            );
            TrackResult::Reenriched {
                track_id,
                quality_score,
                validation_errors,
            }
        }
        Ok(_) => TrackResult::Skipped {
            track_id,
            reason: "a worker claimed it meanwhile".into(),
        },
        Err(error) => TrackResult::Failed {
            track_id,
            error: format!("writing the result: {error}"),
        },
    }
}
