//! The twin's own services on the local backend: `<twin binary> twin <name>` per service.
//!
//! A twin service is configured only by its environment ([`wire::env`]), as a compose
//! service is. Every variable the twin reads is first removed from the inherited
//! environment, so a stray `DATABASE_URL` in the harness's shell cannot point a service
//! elsewhere, and then set from the stack's wiring.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use url::Url;
use wire::{Clock, Service, env};

use super::binaries::Binaries;
use super::process::LaunchSpec;
use super::supervisor::{Readiness, SlotConfig, StopPolicy};

/// Every variable the twin reads; removed from the inherited environment.
const TWIN_VARS: &[&str] = &[
    env::CLOCK,
    env::DATABASE_URL,
    env::REDIS_URL,
    env::LISTEN,
    env::CHAOS_LISTEN,
    env::ENRICHMENT_URL,
    env::GATEWAY_URL,
    env::SPOTIFY_URL,
    env::MUSICBRAINZ_URL,
    env::LASTFM_URL,
    env::SOURCE_URL,
    env::LOG_DIR,
    env::LOG_MAX_SIZE,
    env::LOG_MAX_FILE,
    env::POOL_SIZE,
    env::MAX_OVERFLOW,
    env::BATCH_SIZE,
    env::SCRAPE_INTERVAL_SECS,
    env::PARENT_PID,
    env::RUN_ID,
    env::CHAOS_AT_START,
    env::QUERY_SECONDS,
];

/// How the services of one stack find each other.
#[derive(Clone, Debug)]
pub(crate) struct Wiring {
    pub clock: Clock,
    pub database_url: String,
    pub redis_url: String,
    pub enrichment_url: Url,
    pub gateway_url: Url,
    pub spotify_url: Url,
    pub musicbrainz_url: Url,
    pub lastfm_url: Url,
    pub mixesdb_url: Url,
    pub tracklists1001_url: Url,
    pub run_id: String,
    /// The stack's disk, where each service also writes `<service>.log`.
    pub log_dir: PathBuf,
}

/// The slot of twin service `service`.
pub(crate) fn slot(
    bins: &Binaries,
    service: Service,
    listen: Option<SocketAddr>,
    chaos: SocketAddr,
    wiring: &Wiring,
    log: &Path,
    cwd: &Path,
) -> SlotConfig {
    let mut vars: BTreeMap<&str, String> = BTreeMap::from([
        (env::CLOCK, wiring.clock.to_env()),
        (env::DATABASE_URL, wiring.database_url.clone()),
        (env::REDIS_URL, wiring.redis_url.clone()),
        (env::CHAOS_LISTEN, chaos.to_string()),
        (env::ENRICHMENT_URL, wiring.enrichment_url.to_string()),
        (env::GATEWAY_URL, wiring.gateway_url.to_string()),
        (env::SPOTIFY_URL, wiring.spotify_url.to_string()),
        (env::MUSICBRAINZ_URL, wiring.musicbrainz_url.to_string()),
        (env::LASTFM_URL, wiring.lastfm_url.to_string()),
        // The SongNodes defaults; the pool-exhaustion runbook raises them with set_env.
        (env::POOL_SIZE, "10".to_owned()),
        (env::MAX_OVERFLOW, "20".to_owned()),
        (env::PARENT_PID, std::process::id().to_string()),
        (env::RUN_ID, wiring.run_id.clone()),
        (env::LOG_DIR, wiring.log_dir.display().to_string()),
    ]);
    if let Some(listen) = listen {
        vars.insert(env::LISTEN, listen.to_string());
    }
    let scrape_interval = crate::workload::SCRAPE_INTERVAL.as_secs().to_string();
    match service {
        Service::ScraperMixesdb => {
            vars.insert(env::SOURCE_URL, wiring.mixesdb_url.to_string());
            vars.insert(env::SCRAPE_INTERVAL_SECS, scrape_interval);
        }
        Service::Scraper1001Tracklists => {
            vars.insert(env::SOURCE_URL, wiring.tracklists1001_url.to_string());
            vars.insert(env::SCRAPE_INTERVAL_SECS, scrape_interval);
        }
        Service::RestApi | Service::GraphApi => {
            vars.insert(
                env::QUERY_SECONDS,
                crate::workload::QUERY_TIME.as_secs_f64().to_string(),
            );
        }
        _ => {}
    }
    let chaos_url =
        Url::parse(&format!("http://{chaos}/chaos")).expect("a socket address makes a URL");
    let health = listen.map(|addr| {
        Url::parse(&format!("http://{addr}/health")).expect("a socket address makes a URL")
    });
    SlotConfig {
        spec: LaunchSpec {
            program: bins.twin.clone(),
            args: vec![OsString::from("twin"), OsString::from(service.name())],
            env: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            env_remove: TWIN_VARS.to_vec(),
            run_as: None,
            cwd: cwd.to_owned(),
            log: log.to_owned(),
            identity: service.name().to_owned(),
            faked_clock: None,
            cgroup_procs: None,
        },
        readiness: Readiness::Twin {
            chaos: chaos_url,
            health,
        },
        policy: StopPolicy {
            stop: Signal::SIGTERM,
            grace: Duration::from_secs(5),
            teardown: Signal::SIGTERM,
        },
        // Nine debug binaries start together on two cores, each connecting to PostgreSQL.
        ready_timeout: Duration::from_secs(30),
    }
}
