//! The game day's control surface: how other shells reach a running game day.
//!
//! `drill gameday ack`, `drill gameday board` and `drill compose` run in the
//! responder's or the facilitator's shells, not in the game day's process. The game
//! day serves a small HTTP API on loopback (`GET /board`, `POST /ack`,
//! `POST /give-up`, `POST /compose`) and writes where it listens, with the stack's
//! addresses, to a state file (`<runtime root>/gameday.json`, or `--state-file`);
//! clients find it through `--gameday URL`, `$DRILL_GAMEDAY`, or that file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use harness::gameday::{Board, BoardState, Controls};
use serde::{Deserialize, Serialize};
use stack::Stack;

use super::compose::{ComposeRequest, ComposeResponse, Composer};

/// What the state file says about a running game day.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GameDayState {
    /// The control surface, e.g. `http://127.0.0.1:40123`.
    pub control: String,
    pub pid: u32,
    pub backend: String,
    pub enrichment: String,
    pub gateway: String,
    pub dlq: String,
    pub rest_api: String,
    pub graph_api: String,
    pub postgres_port: u16,
    pub redis_port: u16,
    /// `COMPOSE_FILE` and `COMPOSE_PROJECT_NAME` for the real compose tool, where the
    /// stack is a compose project it can act on (docker, with docker-compose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<BTreeMap<String, String>>,
}

impl GameDayState {
    pub fn of(stack: &Stack, control: SocketAddr) -> Self {
        let ep = stack.endpoints();
        let base = |url: &reqwest::Url| url.as_str().trim_end_matches('/').to_owned();
        Self {
            control: format!("http://{control}"),
            pid: std::process::id(),
            backend: stack.backend().to_string(),
            enrichment: base(&ep.enrichment),
            gateway: base(&ep.gateway),
            dlq: base(&ep.dlq),
            rest_api: base(&ep.rest_api),
            graph_api: base(&ep.graph_api),
            postgres_port: ep.postgres_port,
            redis_port: ep.redis_port,
            compose: stack
                .as_docker()
                .map(|docker| docker.compose_project())
                .filter(|project| project.hashed_by.is_some())
                .map(|project| {
                    project
                        .env()
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect()
                }),
        }
    }
}

/// `<runtime root>/gameday.json`: where a game day says where it is.
pub fn default_state_file() -> anyhow::Result<PathBuf> {
    Ok(stack::dirs::runtime_root()
        .context("finding the runtime directory")?
        .join("gameday.json"))
}

#[derive(Clone)]
struct ControlState {
    board: Board,
    controls: Controls,
    composer: Arc<Composer>,
}

/// Serves the control surface on a free loopback port until the task is aborted.
pub async fn serve(
    board: Board,
    controls: Controls,
    composer: Arc<Composer>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding the game day's control surface on loopback")?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/board", get(board_state))
        .route("/ack", post(acknowledge))
        .route("/give-up", post(give_up))
        .route("/compose", post(compose))
        .with_state(ControlState {
            board,
            controls,
            composer,
        });
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the game day's control surface stopped");
        }
    });
    Ok((addr, task))
}

async fn board_state(State(state): State<ControlState>) -> Json<BoardState> {
    Json(
        state
            .board
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
}

#[derive(Serialize, Deserialize)]
pub struct AckResponse {
    pub first: bool,
    pub paged: bool,
}

async fn acknowledge(State(state): State<ControlState>) -> Json<AckResponse> {
    let paged = state
        .board
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .page
        .is_some();
    let first = paged && state.controls.acknowledge();
    Json(AckResponse { first, paged })
}

async fn give_up(State(state): State<ControlState>) -> StatusCode {
    state.controls.give_up();
    StatusCode::NO_CONTENT
}

async fn compose(
    State(state): State<ControlState>,
    Json(request): Json<ComposeRequest>,
) -> (StatusCode, Json<ComposeResponse>) {
    let response = state.composer.run(&request, &state.controls).await;
    let status = if response.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(response))
}

/// A client of a running game day's control surface.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Finds the game day: `url`, else `$DRILL_GAMEDAY`, else the state file.
    pub fn find(url: Option<&str>, state_file: Option<&Path>) -> anyhow::Result<Self> {
        let base = match url {
            Some(url) => url.to_owned(),
            None => {
                let path = match state_file {
                    Some(path) => path.to_owned(),
                    None => default_state_file()?,
                };
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "no game day is running here: {} cannot be read (start one with \
                         `drill gameday`, or name it with --gameday URL or $DRILL_GAMEDAY)",
                        path.display()
                    )
                })?;
                let state: GameDayState = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a game day's state file", path.display())
                })?;
                state.control
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(wire::agents::HARNESS)
            .build()
            .context("building an HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "the game day at {} does not answer ({error}): has it ended?",
            self.base
        )
    }

    pub async fn board(&self) -> anyhow::Result<BoardState> {
        let response = self
            .http
            .get(format!("{}/board", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(response.json().await?)
    }

    pub async fn acknowledge(&self) -> anyhow::Result<AckResponse> {
        let response = self
            .http
            .post(format!("{}/ack", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(response.json().await?)
    }

    pub async fn compose(&self, request: &ComposeRequest) -> anyhow::Result<ComposeResponse> {
        let response = self
            .http
            .post(format!("{}/compose", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(response.json().await?)
    }
}
