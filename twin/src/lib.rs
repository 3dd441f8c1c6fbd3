//! The SongNodes twin: the services the runbooks operate, as real programs.
//!
//! Each service is its own process (`drill twin <service>`), so that the runbook's
//! `docker compose stop/start/restart` and a `kill -9` mean what they mean in
//! production. Services have real state: breakers that open and half-open, a DLQ
//! persisted in PostgreSQL, a Redis cache with TTLs, connection pools that can run
//! dry. They are configured only by environment variables ([`wire::env`]), read a
//! modeled clock ([`wire::Clock`]) for every timer, and log to standard output,
//! which the harness sends to a file it can tail and grep.
//!
//! Every service also serves a *chaos control surface* ([`chaos`]) on a separate,
//! loopback-only address when the harness asks for one; faults that live inside a
//! program (a memory leak, a connection leak, a hung scraper, a stuck breaker) are
//! switched there, never through the API the runbooks use.
#![forbid(unsafe_code)]

pub mod access;
pub mod chaos;
pub mod config;
pub mod db;
pub mod debug_log;
pub mod dlq;
pub mod drift;
pub mod enrichment;
pub mod gateway;
pub mod leak;
pub mod log_file;
pub mod logging;
pub mod quality;
pub mod scraper;
pub mod track_api;
pub mod watchdog;
pub mod worker;

use anyhow::Context;
use wire::service::{Role, Service};

pub use config::TwinConfig;

/// Runs one twin service until it is told to stop (SIGTERM, SIGINT) or its parent dies.
pub async fn run(service: Service) -> anyhow::Result<()> {
    let config = TwinConfig::from_env(service).context("reading the service's environment")?;
    logging::init(service, config.clock);
    tracing::info!(service = %service, "starting");

    let chaos = chaos::Chaos::default();
    for (switch, params) in &config.chaos_at_start {
        chaos
            .set(switch, params.clone())
            .with_context(|| format!("{} names a switch", wire::env::CHAOS_AT_START))?;
        tracing::debug!(switch, "chaos switch on from the start");
    }
    if let Some(addr) = config.chaos_listen {
        let scope = if config.chaos_in_container {
            chaos::Scope::Container
        } else {
            chaos::Scope::Loopback
        };
        chaos::serve(addr, scope, chaos.clone())
            .await
            .with_context(|| format!("starting the chaos control surface on {addr}"))?;
    }
    leak::spawn(chaos.clone(), config.clock);
    debug_log::spawn(chaos.clone(), config.clock, service);
    if let Some(parent) = config.parent_pid {
        watchdog::exit_when_parent_dies(parent);
    }

    let work = async {
        match service.role() {
            Role::Enrichment => enrichment::run(config, chaos).await,
            Role::EnrichmentWorker => worker::run(config, chaos).await,
            Role::Gateway => gateway::run(config, chaos).await,
            Role::DlqManager => dlq::run(config, chaos).await,
            Role::Scraper => scraper::run(config, chaos).await,
            Role::TrackApi => track_api::run(config, chaos).await,
            Role::Database | Role::Cache => anyhow::bail!(
                "{service} is not a twin program: the backend runs the real server for it"
            ),
        }
    };
    tokio::select! {
        result = work => result,
        signal = shutdown_signal() => {
            tracing::info!(service = %service, signal, "stopping");
            Ok(())
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives, naming it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
