//! The dlq-manager API on :8024, route by route as the runbook calls it.
//!
//! Handlers only translate: they validate input ([`super::params`], [`super::cutoff`]),
//! read the modeled clock, call [`DlqStore`] and shape the answer
//! ([`super::report`]). Every refusal is JSON `{"error": "..."}` saying what is wrong,
//! because the runbook pipes every answer through `jq`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use wire::Clock;
use wire::api::{DlqErrorsGrouped, DlqMessage, PurgeOutcome, ReplayOutcome, ReplayRequest};

use super::params::{self, BadParam, MessagesQuery, RawMessagesQuery};
use super::store::{DlqStore, StoreError};
use super::{cutoff, report};

#[derive(Clone)]
pub struct AppState {
    pub store: DlqStore,
    pub clock: Clock,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/dlq/stats", get(stats))
        .route("/dlq/errors/grouped", get(errors_grouped))
        .route(
            crate::drift::MOVED_ERRORS_GROUPED,
            get(errors_grouped_moved),
        )
        .route("/dlq/messages", get(messages))
        .route("/dlq/messages/before/{date}", delete(purge))
        .route("/dlq/replay/batch", post(replay))
        .fallback(not_found)
        .with_state(state)
}

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<BadParam> for ApiError {
    fn from(bad: BadParam) -> Self {
        ApiError::BadRequest(bad.to_string())
    }
}

impl From<cutoff::BadCutoff> for ApiError {
    fn from(bad: cutoff::BadCutoff) -> Self {
        ApiError::BadRequest(bad.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(error) if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let ApiError::Store(error) = &self {
            tracing::error!("{error}");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "healthy", "database": "ok" })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "database": error.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let figures = state.store.depth(now).await?;
    let counts = state.store.counts_by_error().await?;
    let text = report::prometheus(&figures, &counts, now);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn stats(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.clock.now();
    let figures = state.store.depth(now).await?;
    // A plain struct of numbers: it always serialises.
    let mut stats = serde_json::to_value(report::stats(&figures, now)).unwrap_or_default();
    if crate::drift::field_renamed()
        && let Some(object) = stats.as_object_mut()
        && let Some(total) = object.remove("total_messages")
    {
        object.insert(crate::drift::RENAMED_TOTAL_MESSAGES.to_owned(), total);
    }
    Ok(Json(stats))
}

async fn errors_grouped(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<DlqErrorsGrouped>, ApiError> {
    if crate::drift::endpoint_moved() {
        return Err(not_found(uri).await);
    }
    grouped(&state).await
}

/// Where `/dlq/errors/grouped` is when the twin drifts (`crate::drift`).
async fn errors_grouped_moved(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<DlqErrorsGrouped>, ApiError> {
    if !crate::drift::endpoint_moved() {
        return Err(not_found(uri).await);
    }
    grouped(&state).await
}

async fn grouped(state: &AppState) -> Result<Json<DlqErrorsGrouped>, ApiError> {
    let counts = state.store.counts_by_error().await?;
    Ok(Json(report::grouped(&counts)))
}

async fn messages(
    State(state): State<AppState>,
    query: Result<Query<RawMessagesQuery>, QueryRejection>,
) -> Result<Json<Vec<DlqMessage>>, ApiError> {
    let Query(raw) = query.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let query = MessagesQuery::parse(&raw)?;
    let messages = state.store.messages(query.limit, query.error).await?;
    Ok(Json(messages))
}

/// The body is read as JSON whatever its `Content-Type`: an operator who forgets
/// `-H "Content-Type: application/json"` mid-incident still means the same thing.
async fn replay(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ReplayOutcome>, ApiError> {
    let request: ReplayRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "expected a JSON body like {{\"batch_size\": 100}}: {error}"
        ))
    })?;
    let batch_size = params::batch_size(request.batch_size)?;
    let now = state.clock.now();
    let batch_id = batch_id(now);
    let outcome = state.store.replay(batch_size, &batch_id, now).await?;
    tracing::info!(
        "replayed {} messages (batch {batch_id}, requested {batch_size}, {} remaining)",
        outcome.replayed,
        outcome.remaining
    );
    Ok(Json(outcome))
}

async fn purge(
    State(state): State<AppState>,
    Path(date): Path<String>,
) -> Result<Json<PurgeOutcome>, ApiError> {
    let cutoff = cutoff::parse(&date)?;
    let reason = format!("purged: created before {date}");
    let purged = state
        .store
        .purge(cutoff, &reason, state.clock.now())
        .await?;
    tracing::info!(
        "purged {} messages created before {date} ({} archived)",
        purged.deleted,
        purged.archived
    );
    Ok(Json(PurgeOutcome {
        purged: purged.deleted,
        archived: purged.archived,
        before: date,
    }))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {uri}"))
}

/// A fresh batch id: the modeled instant, readable in logs, plus randomness so two
/// batches in the same millisecond differ.
fn batch_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "replay-{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u32>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_fresh_and_carry_the_modeled_instant() {
        let now = "2025-10-09T12:00:00Z".parse().unwrap();
        let (a, b) = (batch_id(now), batch_id(now));
        assert!(a.starts_with("replay-20251009T120000.000Z-"), "{a}");
        assert_ne!(a, b);
    }
}
