//! metadata-enrichment (:8020): fills tracks' metadata from Spotify, MusicBrainz and
//! Last.fm, through api-gateway-internal, for the enrichment workers.
//!
//! It owns what the runbooks operate on: per-provider circuit breakers
//! ([`breaker`]), the field-group config read from `metadata_enrichment_config`
//! ([`config`]), the Redis cache of provider answers ([`cache`]) and the recent
//! statistics ([`stats`]). Workers post tracks to `/enrich` ([`contract`]) and write
//! the results to the database themselves. All of its timers read the modeled clock.

pub mod batch;
pub mod bloat;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod contract;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod prom;
pub mod providers;
pub mod stats;
pub mod upstream;
pub mod warm;
pub mod window;

use std::sync::Arc;

use anyhow::Context;
use wire::env;

use crate::chaos::Chaos;
use crate::{TwinConfig, db};

use self::breaker::Breakers;
use self::cache::Cache;
use self::pipeline::Enricher;
use self::upstream::Upstream;

/// Connections for config reloads and cache warms; enrichment itself needs none.
const POOL_CONNECTIONS: u32 = 4;

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    let database_url = config.require(&config.database_url, env::DATABASE_URL)?;
    let listen = config.require(&config.listen, env::LISTEN)?;
    let gateway = config.require(&config.gateway_url, env::GATEWAY_URL)?;
    let clock = config.clock;

    let pool = db::connect(&database_url, config.service, POOL_CONNECTIONS).await?;
    let loaded = config::load(&pool)
        .await
        .context("loading metadata_enrichment_config at start")?;
    let in_use: Vec<&str> = loaded
        .enabled_providers()
        .iter()
        .map(|p| p.name())
        .collect();
    tracing::info!(
        "configuration loaded: {} field groups, providers in use: {}",
        loaded.groups.len(),
        in_use.join(",")
    );
    let cache = Cache::new(config.redis_url.as_deref(), clock)?;
    bloat::spawn(chaos.clone(), cache.clone(), pool.clone());
    let upstream = Upstream::new(gateway, clock)?;
    let enricher = Arc::new(Enricher::new(
        clock,
        loaded,
        Breakers::new(chaos.clone()),
        cache,
        upstream,
    ));
    spawn_reset_listener(&chaos, Arc::clone(&enricher), pool.clone());

    let app = chaos.observed(http::router(http::AppState { enricher, pool }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the enrichment API to {listen}"))?;
    tracing::info!("metadata-enrichment listening on {listen}");
    axum::serve(listener, app)
        .await
        .context("serving the enrichment API")
}

/// A chaos reset drops the in-memory state: breakers, statistics, and the config
/// (re-read from the database, as a restart would).
fn spawn_reset_listener(chaos: &Chaos, enricher: Arc<Enricher>, pool: sqlx::PgPool) {
    let mut resets = chaos.resets();
    tokio::spawn(async move {
        while resets.changed().await.is_ok() {
            enricher.breakers.reset_all();
            enricher.stats.clear();
            match config::load(&pool).await {
                Ok(loaded) => enricher.set_config(loaded),
                Err(error) => tracing::error!("reloading config after a chaos reset: {error}"),
            }
            tracing::info!("state reset: breakers, statistics and config");
        }
    });
}
