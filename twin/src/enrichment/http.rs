//! metadata-enrichment's API on :8020, route by route as the runbooks and workers call it.
//!
//! Handlers translate only: they read the modeled clock, call the [`Enricher`], record
//! statistics and log the lines the runbooks grep (`enrichment completed|enrichment
//! failed`). Every refusal is JSON `{"error": "..."}`, since the runbooks pipe every
//! answer through `jq`.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use wire::api::{BreakerState, EnrichmentHealth, EnrichmentStats, Provider, StatsByProvider};

use super::batch::{self, BatchError, BatchRequest};
use super::contract::{EnrichOutcome, EnrichRequest};
use super::pipeline::Enricher;
use super::{config, metrics, prom, warm};

#[derive(Clone)]
pub struct AppState {
    pub enricher: Arc<Enricher>,
    pub pool: PgPool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/stats/by-provider", get(stats_by_provider))
        .route("/metrics", get(metrics))
        .route("/enrich", post(enrich))
        .route("/enrich/batch", post(enrich_batch))
        .route("/admin/config/reload", post(reload_config))
        .route("/admin/circuit-breakers/reset-all", post(reset_breakers))
        .route("/admin/cache/warm", post(warm_cache))
        .fallback(not_found)
        .with_state(state)
}

/// `/health`: every provider's breaker, and "healthy" only when all are CLOSED.
pub fn health_at(enricher: &Enricher, now: DateTime<Utc>) -> EnrichmentHealth {
    let enabled = enricher.config().enabled_providers();
    let api_clients: std::collections::BTreeMap<_, _> = Provider::ALL
        .into_iter()
        .map(|p| (p, enricher.breakers.health(p, now, enabled.contains(&p))))
        .collect();
    let all_closed = api_clients
        .values()
        .all(|c| c.state == BreakerState::Closed);
    EnrichmentHealth {
        status: if all_closed { "healthy" } else { "degraded" }.into(),
        api_clients,
    }
}

async fn health(State(state): State<AppState>) -> Json<EnrichmentHealth> {
    let enricher = &state.enricher;
    Json(health_at(enricher, enricher.clock.now()))
}

async fn stats(State(state): State<AppState>) -> Json<EnrichmentStats> {
    let enricher = &state.enricher;
    Json(enricher.stats.recent(enricher.clock.now()).to_stats())
}

async fn stats_by_provider(State(state): State<AppState>) -> Json<StatsByProvider> {
    let enricher = &state.enricher;
    Json(enricher.stats.recent(enricher.clock.now()).to_by_provider())
}

async fn metrics(State(state): State<AppState>) -> Response {
    let enricher = &state.enricher;
    let now = enricher.clock.now();
    let text = metrics::render(
        &health_at(enricher, now),
        &enricher.stats.totals(),
        &enricher.stats.recent(now),
    );
    ([(header::CONTENT_TYPE, prom::CONTENT_TYPE)], text).into_response()
}

async fn enrich(
    State(state): State<AppState>,
    body: Result<Json<EnrichRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return refuse(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let enricher = &state.enricher;
    let (outcome, lookups) = enricher
        .enrich(
            request.artist_name.as_deref(),
            request.track_name.as_deref(),
        )
        .await;
    let success = matches!(outcome, EnrichOutcome::Enriched(_));
    enricher
        .stats
        .record_enrichment(enricher.clock.now(), success, lookups.hits, lookups.misses);
    match &outcome {
        EnrichOutcome::Enriched(done) => {
            let sources: Vec<&str> = done.sources_used.iter().map(|p| p.name()).collect();
            tracing::info!(
                "enrichment completed track_id={} sources={} cache_hits={}",
                request.track_id,
                sources.join(","),
                done.cache_hits
            );
        }
        EnrichOutcome::Failed(failed) => {
            tracing::warn!(
                "enrichment failed track_id={} error={} provider={}: {}",
                request.track_id,
                failed.error,
                failed.provider.map_or("none", |p| p.name()),
                failed.error_message
            );
        }
    }
    Json(outcome).into_response()
}

async fn enrich_batch(
    State(state): State<AppState>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return refuse(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    match batch::reenrich(&state.enricher, &state.pool, request).await {
        Ok(report) => {
            tracing::info!(
                "batch re-enrichment requested={} reenriched={} failed={} skipped={}",
                report.requested,
                report.reenriched,
                report.failed,
                report.skipped
            );
            Json(report).into_response()
        }
        Err(error @ (BatchError::Empty | BatchError::TooMany(_))) => {
            refuse(StatusCode::BAD_REQUEST, error.to_string())
        }
        Err(error @ BatchError::Database(_)) => {
            tracing::error!("batch re-enrichment failed: {error}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}

async fn reload_config(State(state): State<AppState>) -> Response {
    match config::load(&state.pool).await {
        Ok(loaded) => {
            let summary = loaded.summary();
            tracing::info!(
                "configuration reloaded: {} field groups, {} enabled",
                loaded.groups.len(),
                loaded.groups.iter().filter(|g| g.enabled).count()
            );
            state.enricher.set_config(loaded);
            Json(summary).into_response()
        }
        Err(error) => {
            tracing::error!("configuration reload failed, keeping the previous one: {error}");
            refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
    }
}

async fn reset_breakers(State(state): State<AppState>) -> Response {
    let enricher = &state.enricher;
    enricher.breakers.reset_all();
    let health = health_at(enricher, enricher.clock.now());
    Json(json!({"status": "reset", "api_clients": health.api_clients})).into_response()
}

async fn warm_cache(State(state): State<AppState>) -> Response {
    let pairs = match warm::popular_pairs(&state.pool, warm::TOP_PAIRS).await {
        Ok(pairs) => pairs,
        Err(error) => {
            tracing::error!("cache warm failed: reading popular tracks: {error}");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading popular tracks: {error}"),
            );
        }
    };
    tracing::info!("cache warm started for {} popular tracks", pairs.len());
    let report = warm::warm(&state.enricher, pairs).await;
    tracing::info!(
        "cache warm finished warmed={} failed={}",
        report.warmed,
        report.failed
    );
    Json(report).into_response()
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such endpoint".into())
}

fn refuse(status: StatusCode, error: String) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}
