//! The routes of rest-api and graph-api, and the health and metrics both serve.
//!
//! Every data route takes one connection from the [`TrackedPool`] for its queries and
//! hands it back afterwards, so the pool's figures are the requests in flight (or,
//! under the `connection_leak` fault, every request ever made). `/health` and
//! `/metrics` touch no connection: they must answer while the pool is exhausted,
//! which is exactly when an operator reads them.

use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::Variant;
use super::params::{self, BadParam, RawQuery};
use super::pool::{self, PoolError, TrackedPool};
use super::tracks::{self, GraphStats, Track};

#[derive(Clone)]
pub struct AppState {
    pub pool: TrackedPool,
    /// Database time of each data request, modeled ([`wire::env::QUERY_SECONDS`]).
    pub query_time: std::time::Duration,
    /// The modeled clock, to count the request's own queries in its database time.
    pub clock: wire::Clock,
}

pub fn router(variant: Variant, state: AppState) -> Router {
    let common = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    let routes = match variant {
        Variant::Rest => common
            .route("/api/v1/tracks", get(list))
            .route("/api/v1/tracks/search", get(search))
            .route("/api/v1/tracks/{id}", get(one)),
        Variant::Graph => common
            .route("/api/v1/graph/tracks/{id}/neighbors", get(neighbors))
            .route("/api/v1/graph/stats", get(graph_stats)),
    };
    routes.fallback(not_found).with_state(state)
}

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    BadRequest(#[from] BadParam),
    #[error("bad query string: {0}")]
    BadQuery(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("{action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            // The pool already logged SQLAlchemy's line.
            ApiError::Pool(PoolError::Exhausted { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Pool(PoolError::Database(_)) | ApiError::Database { .. } => {
                tracing::error!("{self}");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl AppState {
    /// Runs `work` on one pooled connection, held for exactly as long as it runs: its
    /// queries, then what is left of the request's database time at production volume
    /// (`query_time` in all, modeled). The twin's queries are part of that time, not
    /// added to it: their real latency, multiplied by the clock's scale, would otherwise
    /// make a connection's hold (and a pool's usage) grow with the scale and with how
    /// busy the machine is. A leaking request opens a transaction it never ends
    /// (SQLAlchemy's session left open on an error path), so its connection sits
    /// `idle in transaction`; a runaway one runs its report first.
    async fn with_connection<T>(
        &self,
        action: &'static str,
        work: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, ApiError> {
        let mut lease = self.pool.acquire().await?;
        let result = async {
            if lease.leaks() {
                sqlx::query("BEGIN").execute(&mut *lease).await?;
            }
            if let Some(runaway) = self.pool.runaway_query() {
                sqlx::query(RUNAWAY_REPORT)
                    .bind(runaway.as_secs_f64())
                    .execute(&mut *lease)
                    .await?;
            }
            let started = std::time::Instant::now();
            let answer = work(&mut lease).await?;
            let left = self
                .query_time
                .saturating_sub(self.clock.to_modeled(started.elapsed()));
            if !left.is_zero() {
                sqlx::query("SELECT pg_sleep($1)")
                    .bind(left.as_secs_f64())
                    .execute(&mut *lease)
                    .await?;
            }
            Ok(answer)
        }
        .await;
        self.pool.release(lease);
        result.map_err(|source| ApiError::Database { action, source })
    }
}

/// The runaway query of the `slow_queries` fault: an export that scans the whole
/// history, whose cost (the bound seconds, on PostgreSQL's modeled clock) the twin's
/// small tables cannot have.
const RUNAWAY_REPORT: &str =
    "SELECT pg_sleep($1) /* export: tracks joined to their enrichment history */";

fn query(query: Result<Query<RawQuery>, QueryRejection>) -> Result<RawQuery, ApiError> {
    query
        .map(|Query(raw)| raw)
        .map_err(|rejection| ApiError::BadQuery(rejection.body_text()))
}

async fn list(
    State(state): State<AppState>,
    raw: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let paging = params::paging(&query(raw)?)?;
    let (limit, offset) = (paging.limit, paging.offset);
    let tracks = state
        .with_connection("listing tracks", |conn| {
            tracks::page(conn, limit, offset).boxed()
        })
        .await?;
    Ok(Json(
        json!({ "tracks": tracks, "limit": limit, "offset": offset }),
    ))
}

async fn search(
    State(state): State<AppState>,
    raw: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let raw = query(raw)?;
    let artist = params::artist(&raw)?;
    let limit = params::paging(&raw)?.limit;
    let found = {
        let artist = artist.clone();
        state
            .with_connection("searching tracks by artist", move |conn| {
                async move { tracks::by_artist(conn, &artist, limit).await }.boxed()
            })
            .await?
    };
    Ok(Json(json!({ "artist": artist, "tracks": found })))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Track>, ApiError> {
    let id = params::track_id(&id)?;
    state
        .with_connection("reading a track", |conn| tracks::one(conn, id).boxed())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("track {id} not found")))
}

async fn neighbors(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = params::track_id(&id)?;
    let found = state
        .with_connection("finding a track's neighbours", |conn| {
            async move {
                let Some(track) = tracks::one(&mut *conn, id).await? else {
                    return Ok(None);
                };
                let neighbors = tracks::neighbors(conn, &track).await?;
                Ok(Some((track, neighbors)))
            }
            .boxed()
        })
        .await?;
    let (track, neighbors) =
        found.ok_or_else(|| ApiError::NotFound(format!("track {id} not found")))?;
    Ok(Json(json!({ "track": track, "neighbors": neighbors })))
}

async fn graph_stats(State(state): State<AppState>) -> Result<Json<GraphStats>, ApiError> {
    state
        .with_connection("computing graph stats", |conn| {
            tracks::graph_stats(conn).boxed()
        })
        .await
        .map(Json)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let usage = state.pool.usage();
    let status = if pool::is_degraded(&usage) {
        "degraded"
    } else {
        "healthy"
    };
    Json(json!({ "status": status, "pool": usage }))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let usage = state.pool.usage();
    let mut text = String::new();
    let gauges: [(&str, &str, String); 5] = [
        (
            "db_pool_size",
            "Persistent connections (POSTGRES_POOL_SIZE).",
            usage.size.to_string(),
        ),
        (
            "db_pool_max_overflow",
            "Extra connections allowed (POSTGRES_MAX_OVERFLOW).",
            usage.max_overflow.to_string(),
        ),
        (
            "db_pool_checked_out",
            "Connections in use.",
            usage.checked_out.to_string(),
        ),
        (
            "db_pool_idle",
            "Open connections not in use.",
            usage.idle.to_string(),
        ),
        (
            "db_pool_usage",
            "Checked-out connections over size plus overflow.",
            usage.usage.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        let _ = writeln!(text, "{name} {value}");
    }
    let _ = writeln!(
        text,
        "# HELP db_pool_timeouts_total Requests refused because no connection was free."
    );
    let _ = writeln!(text, "# TYPE db_pool_timeouts_total counter");
    let _ = writeln!(text, "db_pool_timeouts_total {}", state.pool.timeouts());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {uri}"))
}
