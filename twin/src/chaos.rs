//! The chaos control surface: switches for faults that live inside a program.
//!
//! Some faults cannot be injected from outside a process: a memory leak, a
//! connection leak, a scraper whose spider hangs, a breaker that never leaves OPEN.
//! Each twin service therefore carries a set of named switches, served on a
//! separate, loopback-only address when (and only when) the harness passes
//! [`wire::env::CHAOS_LISTEN`] (in a container of the stack's own network, the
//! container's address: see [`Scope`]). The runbooks never see this surface; the twin's own
//! code reads the switches at the points where the fault would strike.
//!
//! Routes (all JSON):
//! - `GET /chaos` → the switches that are on, with their parameters;
//! - `PUT /chaos/{switch}` with a JSON body of parameters → turns a switch on;
//! - `DELETE /chaos/{switch}` → turns it off (idempotent);
//! - `POST /chaos/reset` → turns every switch off and asks the service to drop
//!   its in-memory state (breakers, windows, leaked resources), for a fast reset
//!   between test cases;
//! - `GET /chaos/log_file` → how writing the service's log file goes
//!   ([`crate::log_file::LogFileStatus`], `null` without one);
//! - `GET /chaos/requests?after=SEQ` → the service's recent requests to its public
//!   API ([`crate::access`]), which a game day reads to see what the responder did.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::watch;

use crate::access::AccessLog;

/// Switch names the twin understands. A switch name outside this list is refused,
/// so a typo in a scenario cannot silently inject nothing.
pub const SWITCHES: &[&str] = &[
    // metadata-enrichment: {"provider": "spotify"}; the breaker stays OPEN until reset-all.
    "stuck_breaker",
    // any service: {"mib_per_minute": 64}; allocates and keeps memory at that modeled rate.
    "memory_leak",
    // rest-api / graph-api: {"every": 20}; every 20th request (every one without
    // "every") keeps its connection checked out, idle in its open transaction.
    "connection_leak",
    // rest-api / graph-api: {"count": 20, "minutes": 90, "every": 60}; one data
    // request in `every`, `count` in all, runs a query that takes `minutes` (a report).
    "slow_queries",
    // scrapers: {}; the spider loop blocks forever while the process stays up.
    "hang",
    // api-gateway-internal: {"provider": "spotify"}; calls to it fail to connect.
    "partition",
    // any service with a log file: {"mib_per_minute": 6}; DEBUG lines of every request
    // go to the log file (not to stdout) at that modeled rate.
    "debug_file_log",
    // metadata-enrichment: {"held_mib": 800, "entry_kib": 256}; what a build that cached
    // whole provider payloads left in Redis (`enrichment::bloat`).
    "cache_bloat",
    // metadata-enrichment, its workers, dlq-manager: {"column": true, "endpoint": true,
    // "field": true}; the twin drifts from the runbook text (`crate::drift`).
    "drift",
];

/// The switches of one service, shared between its tasks and the control surface.
#[derive(Clone)]
pub struct Chaos {
    switches: Arc<RwLock<BTreeMap<String, Value>>>,
    resets: Arc<watch::Sender<u64>>,
    access: AccessLog,
}

impl Default for Chaos {
    fn default() -> Self {
        Self {
            switches: Arc::default(),
            resets: Arc::new(watch::channel(0).0),
            access: AccessLog::default(),
        }
    }
}

impl Chaos {
    /// The service's recent requests ([`crate::access`]).
    pub fn access(&self) -> &AccessLog {
        &self.access
    }

    /// Wraps a public router so that its requests are recorded ([`crate::access`]).
    pub fn observed(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.access.clone(),
            crate::access::record,
        ))
    }

    /// The parameters of a switch that is on, or `None` when it is off.
    pub fn get(&self, switch: &str) -> Option<Value> {
        self.switches.read().ok()?.get(switch).cloned()
    }

    pub fn is_on(&self, switch: &str) -> bool {
        self.get(switch).is_some()
    }

    pub fn set(&self, switch: &str, params: Value) -> Result<(), UnknownSwitch> {
        if !SWITCHES.contains(&switch) {
            return Err(UnknownSwitch(switch.to_owned()));
        }
        if switch == "drift" {
            crate::drift::apply(Some(&params));
        }
        if let Ok(mut switches) = self.switches.write() {
            switches.insert(switch.to_owned(), params);
        }
        Ok(())
    }

    pub fn clear(&self, switch: &str) {
        if switch == "drift" {
            crate::drift::apply(None);
        }
        if let Ok(mut switches) = self.switches.write() {
            switches.remove(switch);
        }
    }

    /// Turns every switch off and signals [`Chaos::resets`] subscribers.
    pub fn reset(&self) {
        crate::drift::apply(None);
        if let Ok(mut switches) = self.switches.write() {
            switches.clear();
        }
        self.resets.send_modify(|generation| *generation += 1);
    }

    /// A receiver that changes each time the harness resets the service's state.
    pub fn resets(&self) -> watch::Receiver<u64> {
        self.resets.subscribe()
    }

    fn snapshot(&self) -> BTreeMap<String, Value> {
        self.switches.read().map(|s| s.clone()).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown chaos switch '{0}' (known: {known})", known = SWITCHES.join(", "))]
pub struct UnknownSwitch(pub String);

/// Where the control surface may listen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On this machine's loopback only: a process of the local backend.
    Loopback,
    /// In a container of the stack's own network, whose loopback the harness cannot
    /// reach: any address of the container, which the docker backend publishes on the
    /// host's loopback only.
    Container,
}

/// Serves the control surface on `addr` in the background. Outside a container,
/// refuses non-loopback addresses.
pub async fn serve(addr: SocketAddr, scope: Scope, chaos: Chaos) -> anyhow::Result<()> {
    anyhow::ensure!(
        scope == Scope::Container || addr.ip().is_loopback(),
        "the chaos control surface only listens on loopback, not {addr}"
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/chaos", get(list))
        .route("/chaos/reset", post(reset))
        .route("/chaos/log_file", get(crate::log_file::serve_status))
        .route(
            "/chaos/requests",
            get(crate::access::serve).with_state(chaos.access.clone()),
        )
        .route("/chaos/{switch}", put(set).delete(clear))
        .with_state(chaos);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "chaos control surface stopped");
        }
    });
    Ok(())
}

async fn list(State(chaos): State<Chaos>) -> Json<BTreeMap<String, Value>> {
    Json(chaos.snapshot())
}

async fn set(
    State(chaos): State<Chaos>,
    Path(switch): Path<String>,
    body: Option<Json<Value>>,
) -> Result<StatusCode, (StatusCode, String)> {
    let params = body
        .map(|Json(v)| v)
        .unwrap_or(Value::Object(Default::default()));
    chaos
        .set(&switch, params)
        .map_err(|e| (StatusCode::NOT_FOUND, e.to_string()))?;
    tracing::warn!(switch, "chaos switch on");
    Ok(StatusCode::NO_CONTENT)
}

async fn clear(State(chaos): State<Chaos>, Path(switch): Path<String>) -> StatusCode {
    chaos.clear(&switch);
    StatusCode::NO_CONTENT
}

async fn reset(State(chaos): State<Chaos>) -> StatusCode {
    chaos.reset();
    StatusCode::NO_CONTENT
}
