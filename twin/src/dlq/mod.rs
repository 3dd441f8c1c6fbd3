//! dlq-manager (:8024): the dead letter queue of failed enrichments, persisted in
//! PostgreSQL and operated over HTTP exactly as the DLQ Overflow runbook does.
//!
//! The queue itself is the `dlq_messages` table, written by metadata-enrichment when a
//! track fails. This service reads it (stats, grouping, samples) and empties it in the
//! two ways the runbook knows: replay (re-enqueue the tracks) and purge (archive).
//! It keeps no state of its own, so a restart loses nothing.

mod cutoff;
mod http;
mod params;
mod report;
mod store;

use anyhow::Context;
use wire::env;

use crate::chaos::Chaos;
use crate::{TwinConfig, db};

/// Connections the DLQ needs: a replay, a purge and a few readers at once.
const POOL_CONNECTIONS: u32 = 8;

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    // No chaos switch strikes inside the DLQ: its faults (a full queue, a dead
    // database) are made from outside. Its surface still records who asked what.
    let database_url = config.require(&config.database_url, env::DATABASE_URL)?;
    let listen = config.require(&config.listen, env::LISTEN)?;
    let pool = db::connect(&database_url, config.service, POOL_CONNECTIONS).await?;
    let app = chaos.observed(http::router(http::AppState {
        store: store::DlqStore::new(pool),
        clock: config.clock,
    }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the DLQ API to {listen}"))?;
    tracing::info!("dlq-manager listening on {listen}");
    axum::serve(listener, app)
        .await
        .context("serving the DLQ API")
}
