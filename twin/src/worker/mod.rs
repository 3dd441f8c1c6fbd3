//! metadata-enrichment-worker-1/-2: drain the enrichment queue into the database.
//!
//! Each worker claims a batch of pending tracks ([`queue`]), asks metadata-enrichment
//! to enrich each one (a few at a time, [`client`]) and writes the outcome in one
//! transaction per track ([`record`]): fields, quality score and audit on success;
//! status `failed` and a DLQ message on failure. The runbooks stop and restart workers
//! freely ("Temporarily pause enrichment"), so a worker holds nothing that a restart
//! could lose: claims are leases, and a worker that cannot reach metadata-enrichment
//! gives its claims back and backs off instead of failing tracks.

pub mod client;
pub mod queue;
pub mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use wire::{Clock, env};

use crate::chaos::Chaos;
use crate::enrichment::contract::{EnrichOutcome, EnrichRequest};
use crate::{TwinConfig, db};

use self::client::EnrichmentClient;
use self::queue::{Claim, Claimed};
use self::record::{CallFacts, Written};

/// Tracks of a batch enriched at once (a batch is at most `WORKER_BATCH_SIZE`, 50 by
/// default). Provider calls are mostly waiting: with a provider answering in 40 s (the
/// timeout drills, once the timeout is raised past it) each track takes over a minute,
/// and fifty in flight per worker keep the two workers ahead of the workload.
const CONCURRENCY: usize = 50;
/// Database connections per worker: each holds one only to claim a batch or to write
/// one track's result, briefly.
const POOL_CONNECTIONS: u32 = 8;
/// Modeled wait between polls of an empty queue.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// No wait is shorter than this in real time, however fast the clock.
const MIN_REAL_PAUSE: Duration = Duration::from_millis(10);
/// Modeled time between claims that also look for expired leases.
const RECLAIM_EVERY: TimeDelta = TimeDelta::seconds(30);
/// Backoff (modeled) after metadata-enrichment or the database could not be reached.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    // No chaos switch strikes inside a worker: its faults (stopped, killed, starved
    // of enrichment) are made from outside.
    drop(chaos);
    let database_url = config.require(&config.database_url, env::DATABASE_URL)?;
    let enrichment_url = config.require(&config.enrichment_url, env::ENRICHMENT_URL)?;
    let pool = db::connect(&database_url, config.service, POOL_CONNECTIONS).await?;
    let client = EnrichmentClient::new(&enrichment_url, config.clock)
        .context("setting up the metadata-enrichment client")?;
    let worker = Worker {
        name: config.service.name().to_owned(),
        pool,
        client,
        clock: config.clock,
        batch_size: config.batch_size,
    };
    tracing::info!(
        "{} polling the enrichment queue (batch size {}, {} at a time)",
        worker.name,
        worker.batch_size,
        CONCURRENCY
    );
    worker.run().await;
    Ok(())
}

struct Worker {
    name: String,
    pool: PgPool,
    client: EnrichmentClient,
    clock: Clock,
    batch_size: u32,
}

/// How one claimed track ended up.
enum TrackResult {
    Written(Written),
    /// metadata-enrichment could not be reached: back to the queue.
    Released(i64),
    /// The result could not be written; the lease will return the track to the queue.
    NotWritten,
}

impl Worker {
    async fn run(&self) {
        let mut backoff = Backoff::default();
        let mut last_reclaim: Option<DateTime<Utc>> = None;
        loop {
            let now = self.clock.now();
            let reclaim = last_reclaim.is_none_or(|at| now - at >= RECLAIM_EVERY);
            let claim = Claim {
                worker: self.name.clone(),
                at: now,
            };
            let batch = match queue::claim(&self.pool, &claim, self.batch_size, reclaim).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!("claiming tracks failed, retrying: {error}");
                    self.pause(backoff.next()).await;
                    continue;
                }
            };
            if reclaim {
                last_reclaim = Some(now);
            }
            if batch.is_empty() {
                self.pause(POLL_INTERVAL).await;
                continue;
            }
            if self.process(&claim, batch).await {
                backoff = Backoff::default();
            } else {
                self.pause(backoff.next()).await;
            }
        }
    }

    /// Enriches a claimed batch; false if metadata-enrichment or the database failed us.
    async fn process(&self, claim: &Claim, batch: Vec<Claimed>) -> bool {
        let unreachable = AtomicBool::new(false);
        let claimed = batch.len();
        let results: Vec<TrackResult> = futures::stream::iter(&batch)
            .map(|track| self.process_one(claim, track, &unreachable))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let (mut enriched, mut failed, mut lost, mut unwritten) = (0, 0, 0, 0);
        let mut released = Vec::new();
        for result in results {
            match result {
                TrackResult::Written(Written::Enriched { .. }) => enriched += 1,
                TrackResult::Written(Written::Failed) => failed += 1,
                TrackResult::Written(Written::LostClaim) => lost += 1,
                TrackResult::Released(id) => released.push(id),
                TrackResult::NotWritten => unwritten += 1,
            }
        }
        if !released.is_empty() {
            match queue::release(&self.pool, claim, &released, self.clock.now()).await {
                Ok(n) => tracing::info!("gave {n} claimed tracks back to the queue"),
                Err(error) => tracing::warn!(
                    "giving {} tracks back failed; their lease will expire instead: {error}",
                    released.len()
                ),
            }
        }
        tracing::info!(
            "batch done claimed={claimed} enriched={enriched} failed={failed} released={} lost_claim={lost} not_written={unwritten}",
            released.len()
        );
        released.is_empty() && unwritten == 0
    }

    async fn process_one(
        &self,
        claim: &Claim,
        track: &Claimed,
        unreachable: &AtomicBool,
    ) -> TrackResult {
        if unreachable.load(Ordering::Relaxed) {
            return TrackResult::Released(track.track_id);
        }
        let request = EnrichRequest {
            track_id: track.track_id,
            artist_name: track.artist_name.clone(),
            track_name: track.track_name.clone(),
        };
        let started = self.clock.now();
        let outcome = match self.client.enrich(&request).await {
            Ok(outcome) => outcome,
            Err(error) => {
                if !unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{error}; giving claimed tracks back and backing off");
                }
                return TrackResult::Released(track.track_id);
            }
        };
        let finished_at = self.clock.now();
        let facts = CallFacts {
            finished_at,
            duration_ms: i32::try_from((finished_at - started).num_milliseconds().max(0))
                .unwrap_or(i32::MAX),
        };
        let written = match &outcome {
            EnrichOutcome::Enriched(result) => {
                record::enriched(
                    &self.pool,
                    record::Writer::Worker(claim),
                    track.track_id,
                    result,
                    facts,
                )
                .await
            }
            EnrichOutcome::Failed(result) => {
                record::failed(&self.pool, claim, track, result, facts).await
            }
        };
        match written {
            Ok(Written::LostClaim) => {
                tracing::warn!(
                    "track {} was reclaimed by another worker after its lease expired; result dropped",
                    track.track_id
                );
                TrackResult::Written(Written::LostClaim)
            }
            Ok(written) => TrackResult::Written(written),
            Err(error) => {
                tracing::error!(
                    "recording the result of track {} failed; its lease will return it to the queue: {error}",
                    track.track_id
                );
                TrackResult::NotWritten
            }
        }
    }

    async fn pause(&self, modeled: Duration) {
        tokio::time::sleep(self.clock.to_real(modeled).max(MIN_REAL_PAUSE)).await;
    }
}

/// Doubling modeled waits, from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`].
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = BACKOFF_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| backoff.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
