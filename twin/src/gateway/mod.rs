//! api-gateway-internal (:8022): the one way out to the metadata providers.
//!
//! metadata-enrichment calls `GET /{spotify|musicbrainz|lastfm}/{path}?{query}`; the
//! gateway forwards it to that provider's base URL ([`proxy`]), passes the answer
//! back, and keeps what the API Gateway runbook reads: per-provider request counts and
//! the recent error rate on `/metrics` ([`traffic`]), and log lines naming timeouts,
//! connection errors and rate limits. It holds no other state, so a restart (the
//! runbook's "restart networking") costs only the error-rate window.

pub mod proxy;
pub mod traffic;

use std::collections::BTreeMap;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use wire::api::Provider;
use wire::{Clock, env};

use crate::TwinConfig;
use crate::chaos::Chaos;
use crate::enrichment::prom;

use self::proxy::{Outcome, Proxy};
use self::traffic::Traffic;

#[derive(Clone)]
struct AppState {
    proxy: Proxy,
    traffic: Traffic,
    clock: Clock,
    chaos: Chaos,
}

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    let listen = config.require(&config.listen, env::LISTEN)?;
    let bases = BTreeMap::from([
        (
            Provider::Spotify,
            config.require(&config.spotify_url, env::SPOTIFY_URL)?,
        ),
        (
            Provider::Musicbrainz,
            config.require(&config.musicbrainz_url, env::MUSICBRAINZ_URL)?,
        ),
        (
            Provider::Lastfm,
            config.require(&config.lastfm_url, env::LASTFM_URL)?,
        ),
    ]);
    let proxy = Proxy::new(bases, config.clock).context("building the gateway's HTTP client")?;
    let traffic = Traffic::default();

    let mut resets = chaos.resets();
    let window = traffic.clone();
    tokio::spawn(async move {
        while resets.changed().await.is_ok() {
            window.clear();
            tracing::info!("state reset: request counters and error-rate window");
        }
    });

    let app = chaos.observed(
        Router::new()
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .route("/{provider}/{*path}", get(forward))
            .fallback(not_found)
            .with_state(AppState {
                proxy,
                traffic,
                clock: config.clock,
                chaos: chaos.clone(),
            }),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the gateway to {listen}"))?;
    tracing::info!("api-gateway-internal listening on {listen}");
    axum::serve(listener, app)
        .await
        .context("serving the gateway")
}

/// Whether the `partition` chaos switch cuts this gateway off from `provider`.
/// The switch lives in this process's memory, so a restart clears it, as a
/// restart clears a broken route or a stale DNS cache.
fn is_partitioned(chaos: &Chaos, provider: Provider) -> bool {
    chaos
        .get("partition")
        .and_then(|params| params.get("provider")?.as_str().map(str::to_owned))
        .is_some_and(|cut| cut == provider.name())
}

async fn health(State(state): State<AppState>) -> Response {
    let providers: BTreeMap<&str, String> = Provider::ALL
        .into_iter()
        .filter_map(|p| Some((p.name(), state.proxy.base(p)?.to_string())))
        .collect();
    let recent = state.traffic.recent(state.clock.now());
    Json(json!({
        "status": "healthy",
        "providers": providers,
        "error_rate": recent.overall_error_rate(),
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.traffic.render(state.clock.now());
    ([(header::CONTENT_TYPE, prom::CONTENT_TYPE)], text).into_response()
}

async fn forward(
    State(state): State<AppState>,
    Path((provider, _path)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(provider) = provider.parse::<Provider>() else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("unknown provider '{provider}' (expected spotify, musicbrainz or lastfm)"),
        );
    };
    let Some(base) = state.proxy.base(provider) else {
        return refuse(
            StatusCode::BAD_GATEWAY,
            format!("{provider} is not configured"),
        );
    };
    // The raw (still percent-encoded) path after `/{provider}/`, forwarded verbatim.
    let raw_path = uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, rest)| rest);
    let target = match proxy::target_url(base, raw_path, uri.query()) {
        Ok(target) => target,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let budget = state.proxy.budget(&headers);
    let outcome = if is_partitioned(&state.chaos, provider) {
        state.proxy.partitioned(provider, &target)
    } else {
        state.proxy.forward(provider, target, budget).await
    };
    state
        .traffic
        .record(state.clock.now(), provider, outcome.status());
    respond(provider, outcome)
}

fn respond(provider: Provider, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Answered {
            status,
            content_type,
            retry_after,
            body,
        } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let headers = response.headers_mut();
            if let Some(value) = content_type {
                headers.insert(header::CONTENT_TYPE, value);
            }
            if let Some(value) = retry_after {
                headers.insert(header::RETRY_AFTER, value);
            }
            response
        }
        Outcome::TimedOut { modeled } => refuse(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "upstream timeout: {provider} did not answer within {}s (modeled)",
                modeled.as_secs()
            ),
        ),
        Outcome::Unreachable { error } => refuse(
            StatusCode::BAD_GATEWAY,
            format!("upstream connection error: {provider}: {error}"),
        ),
    }
}

async fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "no such endpoint".into())
}

fn refuse(status: StatusCode, error: String) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}
