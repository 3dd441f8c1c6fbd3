//! rest-api (:8082) and graph-api (:8084): read APIs over `tracks`, and the services
//! whose connection pools the Connection Pool Exhaustion runbook is about.
//!
//! One program serves both: the compose name picks the route set ([`Variant`]); the
//! pool ([`pool`]), health, metrics and periodic `pool status:` log line are shared.
//! The pool is sized as SongNodes' SQLAlchemy pool (`POSTGRES_POOL_SIZE` +
//! `POSTGRES_MAX_OVERFLOW`), so the runbook's "increase the pool" fix changes what
//! the service can hold.

mod http;
mod params;
mod pool;
mod tracks;

use std::time::Duration;

use anyhow::Context;
use wire::{Clock, Service, env};

use crate::chaos::Chaos;
use crate::{TwinConfig, db};

/// Which route set a track API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Rest,
    Graph,
}

impl Variant {
    pub fn of(service: Service) -> Option<Self> {
        match service {
            Service::RestApi => Some(Variant::Rest),
            Service::GraphApi => Some(Variant::Graph),
            _ => None,
        }
    }
}

/// Modeled time between two `pool status:` log lines.
const STATUS_EVERY: Duration = Duration::from_secs(30);

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    let variant = Variant::of(config.service)
        .with_context(|| format!("{} is not a track API", config.service))?;
    let database_url = config.require(&config.database_url, env::DATABASE_URL)?;
    let listen = config.require(&config.listen, env::LISTEN)?;
    let sizing = pool::Sizing {
        size: config.pool_size,
        max_overflow: config.max_overflow,
    };
    anyhow::ensure!(
        sizing.capacity() > 0,
        "{} + {} must allow at least one connection",
        env::POOL_SIZE,
        env::MAX_OVERFLOW
    );
    let pg = db::connect(&database_url, config.service, sizing.capacity()).await?;
    let pool = pool::TrackedPool::new(pg, sizing, config.clock, chaos.clone());
    tokio::spawn(log_pool_status(pool.clone(), config.clock));

    let app = chaos.observed(http::router(
        variant,
        http::AppState {
            pool,
            query_time: config.query_time,
            clock: config.clock,
        },
    ));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {} to {listen}", config.service))?;
    tracing::info!(
        "{} listening on {listen} (pool size={} max_overflow={})",
        config.service,
        sizing.size,
        sizing.max_overflow
    );
    axum::serve(listener, app)
        .await
        .with_context(|| format!("serving {}", config.service))
}

/// Logs the pool's figures every 30 modeled seconds, as a warning above 80 % usage,
/// and trims idle connections beyond `pool_size`.
async fn log_pool_status(pool: pool::TrackedPool, clock: Clock) {
    let mut tick = clock.interval(STATUS_EVERY);
    loop {
        tick.tick().await;
        pool.trim_idle().await;
        let usage = pool.usage();
        let line = pool::status_line(&usage);
        if pool::is_degraded(&usage) {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
    }
}
