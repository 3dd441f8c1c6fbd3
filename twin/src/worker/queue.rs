//! The enrichment queue: pending rows of `tracks`, claimed with a lease.
//!
//! Two workers share the queue, so a claim is one statement with `FOR UPDATE SKIP
//! LOCKED`: each track goes to exactly one of them. A claim is a lease: a worker that
//! dies (`kill -9`, `docker compose stop`) leaves its tracks `in_progress`, and once
//! `claimed_at` is older than [`LEASE`] any worker may claim them again. A worker
//! that cannot reach metadata-enrichment gives its claims back at once. Every
//! timestamp is modeled time passed as a parameter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How long a claim holds, in modeled time.
pub const LEASE: Duration = Duration::from_secs(5 * 60);

crate::pg_row! {
    /// A claimed track.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Claimed {
        pub track_id: i64,
        pub artist_name: Option<String>,
        pub track_name: Option<String>,
        /// Including this claim.
        pub enrichment_attempts: i32,
        pub created_at: DateTime<Utc>,
    }
}

/// Who holds a claim, and since when: a write is only valid while both still match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub worker: String,
    pub at: DateTime<Utc>,
}

/// Claims pending tracks only (cheap: the `tracks_queue` partial index).
const CLAIM_PENDING: &str = "\
WITH picked AS (
    SELECT track_id FROM tracks
    WHERE enrichment_status = 'pending'
    ORDER BY created_at, track_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE tracks AS t
SET enrichment_status = 'in_progress', claimed_by = $1, claimed_at = $2::timestamptz,
    enrichment_attempts = t.enrichment_attempts + 1, updated_at = $2::timestamptz
FROM picked
WHERE t.track_id = picked.track_id
RETURNING t.track_id, t.artist_name, t.track_name, t.enrichment_attempts, t.created_at";

/// Claims pending tracks and tracks whose lease expired before `$4`.
const CLAIM_PENDING_OR_EXPIRED: &str = "\
WITH picked AS (
    SELECT track_id FROM tracks
    WHERE enrichment_status = 'pending'
       OR (enrichment_status = 'in_progress' AND claimed_at < $4::timestamptz)
    ORDER BY created_at, track_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE tracks AS t
SET enrichment_status = 'in_progress', claimed_by = $1, claimed_at = $2::timestamptz,
    enrichment_attempts = t.enrichment_attempts + 1, updated_at = $2::timestamptz
FROM picked
WHERE t.track_id = picked.track_id
RETURNING t.track_id, t.artist_name, t.track_name, t.enrichment_attempts, t.created_at";

/// Claims up to `limit` tracks for `claim`, oldest first. With `reclaim_expired`,
/// tracks whose lease ran out are claimed too (that scan is not indexed, so the
/// worker asks for it only every so often).
pub async fn claim(
    pool: &PgPool,
    claim: &Claim,
    limit: u32,
    reclaim_expired: bool,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let limit = i64::from(limit.max(1));
    let mut claimed: Vec<Claimed> = if reclaim_expired {
        let expired_before = claim.at - chrono::Duration::from_std(LEASE).unwrap_or_default();
        sqlx::query_as(CLAIM_PENDING_OR_EXPIRED)
            .bind(&claim.worker)
            .bind(claim.at)
            .bind(limit)
            .bind(expired_before)
            .fetch_all(pool)
            .await?
    } else {
        sqlx::query_as(CLAIM_PENDING)
            .bind(&claim.worker)
            .bind(claim.at)
            .bind(limit)
            .fetch_all(pool)
            .await?
    };
    // RETURNING has no order; work oldest first as claimed.
    claimed.sort_by_key(|t| (t.created_at, t.track_id));
    Ok(claimed)
}

/// Gives claimed tracks back to the queue, as if never claimed.
pub async fn release(
    pool: &PgPool,
    claim: &Claim,
    track_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if track_ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE tracks \
         SET enrichment_status = 'pending', claimed_by = NULL, claimed_at = NULL, \
             enrichment_attempts = GREATEST(enrichment_attempts - 1, 0), updated_at = $4::timestamptz \
         WHERE track_id = ANY($1) AND enrichment_status = 'in_progress' \
           AND claimed_by = $2 AND claimed_at = $3::timestamptz",
    )
    .bind(track_ids)
    .bind(&claim.worker)
    .bind(claim.at)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
