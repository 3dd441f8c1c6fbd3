//! The DLQ in PostgreSQL: reads, and the two ways a message may leave the queue.
//!
//! A message leaves `dlq_messages` only together with what accounts for it: on replay
//! its track goes back to `pending` and a `dlq_replay_log` row records it; on purge it
//! is copied to `dlq_archive`. Each is one set-based statement (data-modifying CTEs)
//! inside one transaction, so a crash, a conflict or a concurrent replay can neither
//! lose a message nor replay it twice, and a 10 000-message batch costs one round
//! trip rather than ten thousand.
//!
//! Every timestamp written or compared is the modeled instant, passed as a parameter:
//! `NOW()` would be wall time, which a scaled clock disagrees with.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wire::api::{DlqMessage, ErrorKind, Provider, ReplayOutcome};

use super::report::{self, DepthFigures};

/// A DLQ operation that failed, saying which.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("dlq_messages holds an unknown error type '{0}'")]
    UnknownErrorKind(String),
    #[error(
        "replay would not be atomic ({deleted} deleted, {requeued} re-enqueued, {logged} logged); rolled back"
    )]
    ReplayMismatch {
        deleted: i64,
        requeued: i64,
        logged: i64,
    },
    #[error("purge would not be atomic ({deleted} deleted, {archived} archived); rolled back")]
    PurgeMismatch { deleted: i64, archived: i64 },
}

impl StoreError {
    /// Whether the database could not be reached at all (as opposed to refusing a query).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                source: sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
                ..
            }
        )
    }
}

fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { action, source }
}

/// What a purge did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Purged {
    pub deleted: i64,
    pub archived: i64,
}

#[derive(Clone)]
pub struct DlqStore {
    pool: PgPool,
}

crate::pg_row! {
    struct MessageRow {
        message_id: i64,
        track_id: i64,
        artist_name: Option<String>,
        track_name: Option<String>,
        error: String,
        error_message: String,
        provider: Option<String>,
        replay_count: i32,
        created_at: DateTime<Utc>,
    }
}

impl MessageRow {
    fn into_message(self) -> Result<DlqMessage, StoreError> {
        let error = self
            .error
            .parse::<ErrorKind>()
            .map_err(|_| StoreError::UnknownErrorKind(self.error.clone()))?;
        // `provider` is free text in the schema; an unexpected name is reported, not fatal
        // to the whole listing an operator is reading.
        let provider = self.provider.as_deref().and_then(|name| {
            name.parse::<Provider>()
                .inspect_err(|error| {
                    tracing::warn!(message_id = self.message_id, "{error}; shown as null")
                })
                .ok()
        });
        Ok(DlqMessage {
            message_id: self.message_id,
            track_id: self.track_id,
            artist_name: self.artist_name,
            track_name: self.track_name,
            error,
            error_message: self.error_message,
            provider,
            replay_count: self.replay_count,
            created_at: self.created_at,
        })
    }
}

const DEPTH: &str = "
    SELECT COUNT(*), MIN(created_at), COUNT(*) FILTER (WHERE created_at >= $1)
    FROM dlq_messages";

const COUNTS_BY_ERROR: &str = "SELECT error, COUNT(*) FROM dlq_messages GROUP BY error";

/// The newest messages first: a sample is read to see what is failing now (replay,
/// by contrast, takes the oldest first).
const MESSAGES: &str = "
    SELECT message_id, track_id, artist_name, track_name, error, error_message,
           provider, replay_count, created_at
    FROM dlq_messages
    WHERE $2::text IS NULL OR error = $2
    ORDER BY created_at DESC, message_id DESC
    LIMIT $1";

/// Takes the oldest `$1` messages no one else holds, re-enqueues their tracks, logs
/// them under batch `$2` at modeled instant `$3`, and deletes them: all or nothing.
const REPLAY: &str = "
    WITH picked AS MATERIALIZED (
        SELECT message_id, track_id, error
        FROM dlq_messages
        ORDER BY created_at, message_id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ), requeued AS (
        UPDATE tracks AS t
        SET enrichment_status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = $3
        FROM picked
        WHERE t.track_id = picked.track_id
        RETURNING t.track_id
    ), logged AS (
        INSERT INTO dlq_replay_log (message_id, track_id, error, batch_id, replayed_at)
        SELECT message_id, track_id, error, $2, $3 FROM picked
        RETURNING message_id
    ), deleted AS (
        DELETE FROM dlq_messages AS m
        USING picked
        WHERE m.message_id = picked.message_id
        RETURNING m.message_id
    )
    SELECT (SELECT COUNT(*) FROM deleted),
           (SELECT COUNT(*) FROM requeued),
           (SELECT COUNT(*) FROM logged)";

/// Moves every message created before `$1` to the archive with reason `$3` at `$2`.
const PURGE: &str = "
    WITH moved AS (
        DELETE FROM dlq_messages
        WHERE created_at < $1
        RETURNING message_id, track_id, artist_name, track_name, error, error_message,
                  provider, payload, replay_count, created_at
    ), archived AS (
        INSERT INTO dlq_archive (message_id, track_id, artist_name, track_name, error,
                                 error_message, provider, payload, replay_count, created_at,
                                 archived_at, archive_reason)
        SELECT message_id, track_id, artist_name, track_name, error, error_message,
               provider, payload, replay_count, created_at, $2, $3
        FROM moved
        RETURNING message_id
    )
    SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM archived)";

const TOTAL: &str = "SELECT COUNT(*) FROM dlq_messages";

impl DlqStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db("checking the database"))
    }

    /// Depth, oldest message and recent arrivals, as of modeled instant `now`.
    pub async fn depth(&self, now: DateTime<Utc>) -> Result<DepthFigures, StoreError> {
        let (total, oldest_created_at, recent) =
            sqlx::query_as::<_, (i64, Option<DateTime<Utc>>, i64)>(DEPTH)
                .bind(report::rate_window_start(now))
                .fetch_one(&self.pool)
                .await
                .map_err(db("measuring the DLQ depth"))?;
        Ok(DepthFigures {
            total,
            oldest_created_at,
            recent,
        })
    }

    pub async fn counts_by_error(&self) -> Result<BTreeMap<ErrorKind, i64>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64)>(COUNTS_BY_ERROR)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting DLQ messages by error type"))?;
        rows.into_iter()
            .map(|(error, count)| {
                error
                    .parse::<ErrorKind>()
                    .map(|kind| (kind, count))
                    .map_err(|_| StoreError::UnknownErrorKind(error))
            })
            .collect()
    }

    /// The oldest `limit` messages, optionally of one error type.
    pub async fn messages(
        &self,
        limit: i64,
        error: Option<ErrorKind>,
    ) -> Result<Vec<DlqMessage>, StoreError> {
        let rows = sqlx::query_as::<_, MessageRow>(MESSAGES)
            .bind(limit)
            .bind(error.map(ErrorKind::name))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing DLQ messages"))?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }

    /// Replays up to `batch_size` of the oldest messages as batch `batch_id`.
    pub async fn replay(
        &self,
        batch_size: i64,
        batch_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ReplayOutcome, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the replay transaction"))?;
        let (deleted, requeued, logged) = sqlx::query_as::<_, (i64, i64, i64)>(REPLAY)
            .bind(batch_size)
            .bind(batch_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("replaying a DLQ batch"))?;
        if deleted != requeued || deleted != logged {
            // Dropping `tx` rolls the batch back.
            return Err(StoreError::ReplayMismatch {
                deleted,
                requeued,
                logged,
            });
        }
        let remaining = sqlx::query_scalar::<_, i64>(TOTAL)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("counting the messages left after replay"))?;
        tx.commit()
            .await
            .map_err(db("committing the replay transaction"))?;
        Ok(ReplayOutcome {
            replayed: deleted,
            remaining,
        })
    }

    /// Archives and deletes every message created before `cutoff`.
    pub async fn purge(
        &self,
        cutoff: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Purged, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the purge transaction"))?;
        let (deleted, archived) = sqlx::query_as::<_, (i64, i64)>(PURGE)
            .bind(cutoff)
            .bind(now)
            .bind(reason)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("purging DLQ messages to the archive"))?;
        if deleted != archived {
            return Err(StoreError::PurgeMismatch { deleted, archived });
        }
        tx.commit()
            .await
            .map_err(db("committing the purge transaction"))?;
        Ok(Purged { deleted, archived })
    }
}
