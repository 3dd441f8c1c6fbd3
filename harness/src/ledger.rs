//! The ledger: after a drill, every track is accounted for.
//!
//! A remediation that "works" by dropping data is not a remediation, and one that
//! archives work that could have been done has lost it just the same. After each drill
//! the ledger follows every track, in the database, to one of: enriched; still queued
//! (pending, or claimed by a worker); failed with exactly one live DLQ message; or
//! failed, its message archived by a purge, and *unfixable* (a scraped entry without
//! an artist or a title: no provider can enrich it). A failed track whose message was
//! archived although it names an artist and a title is **lost work**; one with neither
//! a live message nor an archive record is **lost**. It also checks that no live
//! message belongs to a track that is not failed (a duplicate in flight) and that no
//! replayed message is still in the queue.
//!
//! What a remediation cost without losing anything is counted too: claims that were
//! interrupted and done again (a worker stopped, or metadata-enrichment restarted,
//! while a track was in flight), which a restart or a smaller worker pool trades for
//! the memory or the connections it frees.

use serde::Serialize;
use sqlx::PgPool;

/// The counts and the problems found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ledger {
    pub tracks: i64,
    pub enriched: i64,
    pub queued: i64,
    pub dead_lettered: i64,
    /// Failed, archived, and without an artist or a title: discarded on purpose.
    pub discarded_unfixable: i64,
    /// Failed and archived, though a provider could have enriched them.
    pub lost_work: i64,
    /// Failed tracks with neither a live message nor an archive record.
    pub lost: i64,
    /// Live messages whose track is not failed.
    pub duplicated: i64,
    /// Replayed messages still present in the queue.
    pub replayed_but_queued: i64,
    /// Claims beyond the first of tracks that never failed: in-flight work interrupted
    /// (its claim given back, or its lease run out) and claimed again. Tracks that failed
    /// or were replayed are left out: their attempts include the seeded history of
    /// failing (the DLQ drills' replayed backlog read as 700 interrupted claims).
    pub interrupted_claims: i64,
}

impl Ledger {
    pub fn balanced(&self) -> bool {
        self.problems().is_empty()
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lost_work > 0 {
            problems.push(format!(
                "{} tracks that could have been enriched were archived by a purge (lost work)",
                self.lost_work
            ));
        }
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
        let sum = self.accounted_for();
        if sum + self.lost_work + self.lost != self.tracks {
            problems.push(format!(
                "{} tracks, but enriched {} + queued {} + dead-lettered {} + discarded {} + \
                 lost work {} + lost {} = {}",
                self.tracks,
                self.enriched,
                self.queued,
                self.dead_lettered,
                self.discarded_unfixable,
                self.lost_work,
                self.lost,
                sum + self.lost_work + self.lost
            ));
        }
        problems
    }

    /// Tracks in a state the drill accepts.
    fn accounted_for(&self) -> i64 {
        self.enriched + self.queued + self.dead_lettered + self.discarded_unfixable
    }

    /// One line for the report and the timeline.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} tracks = {} enriched + {} queued + {} dead-lettered + {} discarded as unfixable",
            self.tracks, self.enriched, self.queued, self.dead_lettered, self.discarded_unfixable
        );
        if self.lost_work > 0 {
            text.push_str(&format!(" + {} LOST WORK", self.lost_work));
        }
        if self.lost > 0 {
            text.push_str(&format!(" + {} LOST", self.lost));
        }
        if self.interrupted_claims > 0 {
            text.push_str(&format!(
                "; {} claims interrupted in flight and claimed again",
                self.interrupted_claims
            ));
        }
        text
    }
}

/// Whether a track names both an artist and a title (SQL, over `tracks t`).
const ENRICHABLE: &str =
    "COALESCE(BTRIM(t.artist_name), '') <> '' AND COALESCE(BTRIM(t.track_name), '') <> ''";

/// Counts the ledger in one snapshot (one REPEATABLE READ transaction).
pub async fn take(db: &PgPool) -> Result<Ledger, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let sql = format!(
        "WITH failed AS (
            SELECT t.track_id, ({ENRICHABLE}) AS enrichable,
                   EXISTS (SELECT 1 FROM dlq_messages m WHERE m.track_id = t.track_id) AS live,
                   EXISTS (SELECT 1 FROM dlq_archive a WHERE a.track_id = t.track_id) AS archived
            FROM tracks t WHERE t.enrichment_status = 'failed'
        )
        SELECT
            (SELECT COUNT(*) FROM tracks),
            (SELECT COUNT(*) FROM tracks WHERE enrichment_status = 'enriched'),
            (SELECT COUNT(*) FROM tracks WHERE enrichment_status IN ('pending', 'in_progress')),
            (SELECT COUNT(*) FROM failed WHERE live),
            (SELECT COUNT(*) FROM failed WHERE NOT live AND archived AND NOT enrichable),
            (SELECT COUNT(*) FROM failed WHERE NOT live AND archived AND enrichable),
            (SELECT COUNT(*) FROM failed WHERE NOT live AND NOT archived),
            (SELECT COUNT(*) FROM dlq_messages m JOIN tracks t USING (track_id)
                WHERE t.enrichment_status <> 'failed'),
            (SELECT COUNT(*) FROM dlq_messages m JOIN dlq_replay_log r USING (message_id)),
            (SELECT COALESCE(SUM(t.enrichment_attempts - 1), 0)::int8
                FROM tracks t
                WHERE t.enrichment_attempts > 1 AND t.enrichment_status <> 'failed'
                  AND NOT EXISTS (SELECT 1 FROM dlq_replay_log r WHERE r.track_id = t.track_id))"
    );
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let (
        tracks,
        enriched,
        queued,
        dead_lettered,
        discarded_unfixable,
        lost_work,
        lost,
        duplicated,
        replayed_but_queued,
        interrupted_claims,
    ) = row;
    Ok(Ledger {
        tracks,
        enriched,
        queued,
        dead_lettered,
        discarded_unfixable,
        lost_work,
        lost,
        duplicated,
        replayed_but_queued,
        interrupted_claims,
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
            lost: 1,
            ..Ledger::default()
        };
        assert!(!ledger.balanced());
        let problems = ledger.problems().join("; ");
        assert!(
            problems.contains("1 failed tracks have neither"),
            "{problems}"
        );
    }

    #[test]
    fn archived_work_that_could_have_been_done_is_lost_work() {
        let ledger = Ledger {
            tracks: 10,
            enriched: 5,
            discarded_unfixable: 2,
            lost_work: 3,
            ..Ledger::default()
        };
        assert!(!ledger.balanced());
        let problems = ledger.problems().join("; ");
        assert!(
            problems.contains("3 tracks that could have been enriched were archived"),
            "{problems}"
        );
        assert!(
            ledger.summary().ends_with("+ 3 LOST WORK"),
            "{}",
            ledger.summary()
        );
    }

    #[test]
    fn every_track_in_an_accepted_state_balances() {
        let ledger = Ledger {
            tracks: 10,
            enriched: 6,
            queued: 2,
            dead_lettered: 1,
            discarded_unfixable: 1,
            ..Ledger::default()
        };
        assert!(ledger.balanced(), "{:?}", ledger.problems());
    }
}
