//! `POST /admin/cache/warm`: fill the cache with the tracks most likely to recur.
//!
//! The Low Success Rate runbook warms the cache "with popular tracks". Popular here is
//! the most frequent (artist_name, track_name) pairs among scraped tracks: the same
//! track shows up in many tracklists. Each pair goes through the normal enrichment
//! path, breakers included, so a warm during an outage fails instead of hammering
//! the provider; valid answers land in Redis as a side effect.

use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;

use super::contract::EnrichOutcome;
use super::pipeline::Enricher;

/// How many pairs one warm fetches.
pub const TOP_PAIRS: i64 = 200;
/// Pairs fetched at once: enough to be quick, few enough not to trip a rate limit alone.
const CONCURRENCY: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    pub warmed: u64,
    pub failed: u64,
}

/// The most frequent non-blank pairs, most frequent first.
pub async fn popular_pairs(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT artist_name, track_name FROM tracks \
         WHERE btrim(coalesce(artist_name, '')) <> '' AND btrim(coalesce(track_name, '')) <> '' \
         GROUP BY artist_name, track_name \
         ORDER BY count(*) DESC, artist_name, track_name \
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Enriches each pair (not counted in `/stats`: no track was enriched).
pub async fn warm(enricher: &Enricher, pairs: Vec<(String, String)>) -> WarmReport {
    let outcomes: Vec<bool> = futures::stream::iter(pairs)
        .map(|(artist, title)| async move {
            let (outcome, _) = enricher.enrich(Some(&artist), Some(&title)).await;
            matches!(outcome, EnrichOutcome::Enriched(_))
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let warmed = outcomes.iter().filter(|ok| **ok).count() as u64;
    WarmReport {
        warmed,
        failed: outcomes.len() as u64 - warmed,
    }
}
