//! The ledger: after a drill, every track and every DLQ message is accounted for.
//!
//! A remediation that "works" by dropping data is not a remediation. After each
//! drill the ledger checks, in the database, that every track is enriched, still
//! queued (pending or claimed), or failed with exactly one live DLQ message or an
//! archive record; that no live message belongs to a track that is not failed (a
//! duplicate in flight); and that no replayed message is still in the queue.

use serde::Serialize;
use sqlx::PgPool;

/// The counts and the problems found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ledger {
    pub tracks: i64,
    pub enriched: i64,
    pub queued: i64,
    pub dead_lettered: i64,
    pub archived: i64,
    /// Failed tracks with neither a live message nor an archive record.
    pub lost: i64,
    /// Live messages whose track is not failed.
    pub duplicated: i64,
    /// Replayed messages still present in the queue.
    pub replayed_but_queued: i64,
}

impl Ledger {
    pub fn balanced(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.replayed_but_queued == 0
            && self.enriched + self.queued + self.dead_lettered + self.archived == self.tracks
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lost > 0 {
            problems.push(format!(
                "{} failed tracks have neither a DLQ message nor an archive record (lost)",
                self.lost
            ));
        }
        if self.duplicated > 0 {
            problems.push(format!(
                "{} DLQ messages belong to tracks that are not failed (duplicated)",
                self.duplicated
            ));
        }
        if self.replayed_but_queued > 0 {
            problems.push(format!(
                "{} replayed messages are still in the DLQ",
                self.replayed_but_queued
            ));
        }
        let sum = self.enriched + self.queued + self.dead_lettered + self.archived;
        if sum != self.tracks {
            problems.push(format!(
                "{} tracks, but enriched {} + queued {} + dead-lettered {} + archived {} = {sum}",
                self.tracks, self.enriched, self.queued, self.dead_lettered, self.archived
            ));
        }
        problems
    }
}

/// Counts the ledger in one snapshot (one REPEATABLE READ transaction).
pub async fn take(db: &PgPool) -> Result<Ledger, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let row: (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM tracks),
            (SELECT COUNT(*) FROM tracks WHERE enrichment_status = 'enriched'),
            (SELECT COUNT(*) FROM tracks WHERE enrichment_status IN ('pending', 'in_progress')),
            (SELECT COUNT(*) FROM tracks t WHERE t.enrichment_status = 'failed'
                AND EXISTS (SELECT 1 FROM dlq_messages m WHERE m.track_id = t.track_id)),
            (SELECT COUNT(*) FROM tracks t WHERE t.enrichment_status = 'failed'
                AND NOT EXISTS (SELECT 1 FROM dlq_messages m WHERE m.track_id = t.track_id)
                AND EXISTS (SELECT 1 FROM dlq_archive a WHERE a.track_id = t.track_id)),
            (SELECT COUNT(*) FROM tracks t WHERE t.enrichment_status = 'failed'
                AND NOT EXISTS (SELECT 1 FROM dlq_messages m WHERE m.track_id = t.track_id)
                AND NOT EXISTS (SELECT 1 FROM dlq_archive a WHERE a.track_id = t.track_id)),
            (SELECT COUNT(*) FROM dlq_messages m JOIN tracks t USING (track_id)
                WHERE t.enrichment_status <> 'failed'),
            (SELECT COUNT(*) FROM dlq_messages m JOIN dlq_replay_log r USING (message_id))",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let (tracks, enriched, queued, dead_lettered, archived, lost, duplicated, replayed_but_queued) =
        row;
    Ok(Ledger {
        tracks,
        enriched,
        queued,
        dead_lettered,
        archived,
        lost,
        duplicated,
        replayed_but_queued,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_track_unbalances_the_ledger_and_says_so() {
        let ledger = Ledger {
            tracks: 10,
            enriched: 8,
            queued: 1,
            dead_lettered: 0,
            archived: 0,
            lost: 1,
            ..Ledger::default()
        };
        assert!(!ledger.balanced());
        let problems = ledger.problems().join("; ");
        assert!(
            problems.contains("1 failed tracks have neither"),
            "{problems}"
        );
        assert!(problems.contains("= 9"), "{problems}");
    }

    #[test]
    fn every_track_in_one_bucket_balances() {
        let ledger = Ledger {
            tracks: 10,
            enriched: 6,
            queued: 2,
            dead_lettered: 1,
            archived: 1,
            ..Ledger::default()
        };
        assert!(ledger.balanced(), "{:?}", ledger.problems());
    }
}
