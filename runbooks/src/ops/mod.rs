//! The `Ops` facade: everything a runbook step may act through, over the wire.
//!
//! A runbook implementation never reaches into the twin. It has what an on-call
//! engineer has: HTTP endpoints, `psql`, `redis-cli`, `docker compose`, a clock and
//! someone to ask for approval. Each action is recorded on the [`Timeline`] with the
//! command a human would have typed, so a drill report doubles as a worked example.

pub mod api;
pub mod approval;
pub mod engine_time;
pub mod host;
pub mod orchestrator;
pub mod read_only;
pub mod timeline;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use url::Url;
use wire::api::{Provider, SourceSite};
use wire::{Clock, Endpoints};

pub use api::{
    ApiError, DlqApi, EnrichmentApi, GatewayApi, HttpApi, Reenriched, ReenrichedTrack, TrackApi,
};
pub use approval::{ApprovalRequest, Approver, AutoApprove, RefuseAll};
pub use engine_time::{EngineCall, EngineLog, TimedOrchestrator};
pub use host::{DiskDir, DiskFile, Host, HostError, Usage};
pub use orchestrator::{
    LogConfig, Orchestrator, OrchestratorError, PruneReport, ServiceStats, ServiceStatus,
};
pub use timeline::{Entry, Outcome, Phase, Timeline};

/// A step that did not achieve what it set out to do.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: {source}")]
    Api {
        step: String,
        #[source]
        source: ApiError,
    },
    #[error("{step}: {source}")]
    Sql {
        step: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{step}: {source}")]
    Orchestrator {
        step: String,
        #[source]
        source: OrchestratorError,
    },
    #[error("{step}: {source}")]
    Redis {
        step: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{step}: {source}")]
    Host {
        step: String,
        #[source]
        source: HostError,
    },
    #[error("{step}: refused at the approval gate by {approver}")]
    NotApproved { step: String, approver: String },
    #[error("{step}: still not true after {waited:?} (modeled); last seen: {last_seen}")]
    WaitedTooLong {
        step: String,
        waited: Duration,
        last_seen: String,
    },
    #[error("{step}: {reason}")]
    Escalate { step: String, reason: String },
}

/// Why the `Ops` facade could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("the database URL {url} is not usable: {source}")]
    Database {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the Redis URL {url} is not usable: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
}

/// Whether the facade may change what it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// A read-only session's longest statement: a check reads, it never waits on locks.
const READ_ONLY_STATEMENT_TIMEOUT: &str = "10s";

/// Attaches the step's title to an underlying error.
pub trait StepContext<T> {
    fn step(self, title: &str) -> Result<T, StepError>;
}

macro_rules! step_context {
    ($error:ty, $variant:ident) => {
        impl<T> StepContext<T> for Result<T, $error> {
            fn step(self, title: &str) -> Result<T, StepError> {
                self.map_err(|source| StepError::$variant {
                    step: title.to_owned(),
                    source,
                })
            }
        }
    };
}
step_context!(ApiError, Api);
step_context!(sqlx::Error, Sql);
step_context!(OrchestratorError, Orchestrator);
step_context!(redis::RedisError, Redis);
step_context!(HostError, Host);

/// Everything a runbook step acts through.
#[derive(Clone)]
pub struct Ops {
    pub enrichment: EnrichmentApi,
    pub gateway: GatewayApi,
    pub dlq: DlqApi,
    pub rest_api: TrackApi,
    pub graph_api: TrackApi,
    pub db: PgPool,
    pub redis: redis::Client,
    pub orchestrator: Arc<dyn Orchestrator>,
    /// The orchestrator's changes to services, timed (see [`engine_time`]): a drill
    /// counts them at the engine's real duration.
    pub engine: EngineLog,
    /// Disk and memory of where the stack runs, when the backend can tell.
    pub host: Option<Arc<dyn Host>>,
    pub clock: Clock,
    pub approver: Arc<dyn Approver>,
    pub timeline: Timeline,
    http: reqwest::Client,
    endpoints: Endpoints,
}

/// The `application_name` of the runbooks' sessions: a person's psql.
const PSQL: &str = "psql";

/// The `application_name` of a game day's observer ([`Ops::connect_observer`]).
pub const OBSERVER: &str = "runbook-drill-observer";

impl Ops {
    /// Connects to the stack at `endpoints`. The database pool is small: a runbook
    /// is one engineer with one psql session, not a load generator.
    pub async fn connect(
        endpoints: Endpoints,
        orchestrator: Arc<dyn Orchestrator>,
        clock: Clock,
        approver: Arc<dyn Approver>,
        timeline: Timeline,
    ) -> Result<Self, ConnectError> {
        Self::connect_with(
            endpoints,
            orchestrator,
            clock,
            approver,
            timeline,
            Access::ReadWrite,
            PSQL,
        )
    }

    /// Connects read-only under the name [`OBSERVER`], for what watches a game day
    /// (alert evaluation, the board, the ledger): its SQL and HTTP are told apart
    /// from the responder's, whose `psql` and `curl` the game day records.
    pub fn connect_observer(
        endpoints: Endpoints,
        orchestrator: Arc<dyn Orchestrator>,
        clock: Clock,
        timeline: Timeline,
    ) -> Result<Self, ConnectError> {
        Self::connect_read_only_as(endpoints, orchestrator, clock, timeline, OBSERVER)
    }

    /// Connects read-only, for `drill check` against a real deployment (see
    /// [`read_only`]): HTTP refuses all but GET and HEAD, PostgreSQL sessions are
    /// read-only with a statement timeout, the orchestrator refuses every change and
    /// the approval gate refuses every destructive step.
    pub fn connect_read_only(
        endpoints: Endpoints,
        orchestrator: Arc<dyn Orchestrator>,
        clock: Clock,
        timeline: Timeline,
    ) -> Result<Self, ConnectError> {
        Self::connect_read_only_as(endpoints, orchestrator, clock, timeline, PSQL)
    }

    /// Read-only at every layer, its sessions named `application_name`.
    fn connect_read_only_as(
        endpoints: Endpoints,
        orchestrator: Arc<dyn Orchestrator>,
        clock: Clock,
        timeline: Timeline,
        application_name: &str,
    ) -> Result<Self, ConnectError> {
        Self::connect_with(
            endpoints,
            Arc::new(read_only::ReadOnlyOrchestrator(orchestrator)),
            clock,
            Arc::new(RefuseAll),
            timeline,
            Access::ReadOnly,
            application_name,
        )
    }

    fn connect_with(
        endpoints: Endpoints,
        orchestrator: Arc<dyn Orchestrator>,
        clock: Clock,
        approver: Arc<dyn Approver>,
        timeline: Timeline,
        access: Access,
        application_name: &str,
    ) -> Result<Self, ConnectError> {
        let http = reqwest::Client::builder()
            .user_agent(wire::agents::HARNESS)
            .pool_max_idle_per_host(4)
            .build()
            .map_err(ConnectError::Http)?;
        let api = |url: &Url| {
            let api = HttpApi::new(http.clone(), url.clone());
            match access {
                Access::ReadWrite => api,
                Access::ReadOnly => api.read_only(),
            }
        };
        let mut connect_options: sqlx::postgres::PgConnectOptions = endpoints
            .database_url
            .parse()
            .map_err(|source| ConnectError::Database {
                url: endpoints.database_url.clone(),
                source,
            })?;
        if access == Access::ReadOnly {
            connect_options = connect_options.options([
                ("default_transaction_read_only", "on"),
                ("statement_timeout", READ_ONLY_STATEMENT_TIMEOUT),
            ]);
        }
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect_options.application_name(application_name));
        let engine = EngineLog::default();
        let orchestrator = Arc::new(TimedOrchestrator::new(orchestrator, clock, engine.clone()));
        Ok(Self {
            enrichment: EnrichmentApi(api(&endpoints.enrichment)),
            gateway: GatewayApi(api(&endpoints.gateway)),
            dlq: DlqApi(api(&endpoints.dlq)),
            rest_api: TrackApi(api(&endpoints.rest_api)),
            graph_api: TrackApi(api(&endpoints.graph_api)),
            db,
            redis: redis::Client::open(endpoints.redis_url.as_str()).map_err(|source| {
                ConnectError::Redis {
                    url: endpoints.redis_url.clone(),
                    source,
                }
            })?,
            orchestrator,
            engine,
            host: None,
            clock,
            approver,
            timeline,
            http,
            endpoints,
        })
    }

    /// Gives the runbooks a view of the host's disk and memory.
    pub fn with_host(mut self, host: Arc<dyn Host>) -> Self {
        self.host = Some(host);
        self
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// `psql -h … -p … -U musicdb_user -d musicdb << EOF … EOF`, as the runbook writes it.
    pub fn psql(&self, sql: &str) -> String {
        format!(
            "psql -h {} -p {} -U musicdb_user -d musicdb << EOF\n{}\nEOF",
            self.endpoints.postgres_host,
            self.endpoints.postgres_port,
            sql.trim()
        )
    }

    /// Runs one action and records it with its command and what it showed.
    pub async fn act<T, E, F>(
        &self,
        phase: Phase,
        title: &str,
        command: impl Into<String>,
        action: F,
        observe: impl FnOnce(&T) -> String,
    ) -> Result<T, StepError>
    where
        F: Future<Output = Result<T, E>>,
        Result<T, E>: StepContext<T>,
    {
        let command = command.into();
        match action.await.step(title) {
            Ok(value) => {
                let observed = observe(&value);
                self.timeline
                    .record(phase, title, Some(command), observed, Outcome::Ok);
                Ok(value)
            }
            Err(error) => {
                self.timeline.record(
                    phase,
                    title,
                    Some(command),
                    error.to_string(),
                    Outcome::Failed,
                );
                Err(error)
            }
        }
    }

    /// Like [`Ops::act`], for an action the runbook says needs approval first.
    pub async fn destructive<T, E, F>(
        &self,
        phase: Phase,
        title: &str,
        command: impl Into<String>,
        impact: &str,
        action: F,
        observe: impl FnOnce(&T) -> String,
    ) -> Result<T, StepError>
    where
        F: Future<Output = Result<T, E>>,
        Result<T, E>: StepContext<T>,
    {
        let command = command.into();
        let request = ApprovalRequest {
            title: title.to_owned(),
            command: command.clone(),
            impact: impact.to_owned(),
        };
        let approver = self.approver.name().to_owned();
        if !self.approver.approve(&request).await {
            self.timeline.record(
                phase,
                title,
                Some(command),
                format!("refused by {approver}"),
                Outcome::Refused,
            );
            return Err(StepError::NotApproved {
                step: title.to_owned(),
                approver,
            });
        }
        self.timeline.note(
            phase,
            format!("Approval: {title}"),
            format!("approved by {approver} ({impact})"),
        );
        self.act(phase, title, command, action, observe).await
    }

    /// Polls `check` every `every` (modeled) until it yields a value, for at most
    /// `bound` (modeled): the automation's reading of "wait N minutes, then check".
    ///
    /// `check` returns `Ok(Some(v))` when the condition holds, `Ok(None)` with the
    /// last seen state described by `describe` otherwise.
    pub async fn wait_until<T, F, Fut>(
        &self,
        phase: Phase,
        title: &str,
        bound: Duration,
        every: Duration,
        mut check: F,
    ) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T, String>, StepError>>,
        T: Display,
    {
        let outcome = wire::wait::until(self.clock, bound, every, || {
            let checked = check();
            async move {
                match checked.await {
                    Ok(Ok(value)) => wire::wait::Poll::Ready(value),
                    Ok(Err(seen)) => wire::wait::Poll::Pending(seen),
                    Err(error) => wire::wait::Poll::Pending(error.to_string()),
                }
            }
        })
        .await;
        match outcome {
            Ok(done) => {
                self.timeline.record_wait(
                    phase,
                    title,
                    None,
                    format!(
                        "{} after {}",
                        done.value,
                        timeline::format_modeled(done.waited)
                    ),
                    Outcome::Ok,
                    done.waited,
                );
                Ok(done.value)
            }
            Err(timeout) => {
                let error = StepError::WaitedTooLong {
                    step: title.to_owned(),
                    waited: timeout.waited,
                    last_seen: timeout.last_seen,
                };
                self.timeline.record_wait(
                    phase,
                    title,
                    None,
                    error.to_string(),
                    Outcome::Failed,
                    timeout.waited,
                );
                Err(error)
            }
        }
    }

    /// Waits a fixed (modeled) time where the runbook says so and there is nothing
    /// to poll: `sleep 60` before reading a log.
    pub async fn pause(&self, phase: Phase, title: &str, modeled: Duration) {
        self.clock.sleep(modeled).await;
        self.timeline.record_wait(
            phase,
            title,
            Some(format!("sleep {}", modeled.as_secs())),
            "",
            Outcome::Ok,
            modeled,
        );
    }

    /// `curl -I <provider>`: the status a provider's public endpoint answers with,
    /// seen from where the engineer sits (not through the gateway). `None` when the
    /// connection itself fails.
    pub async fn external_status(&self, provider: Provider) -> Option<u16> {
        let url = self.endpoints.providers.get(&provider)?;
        let probe = match provider {
            Provider::Spotify => url.join("v1/search").ok()?,
            Provider::Musicbrainz => url.join("ws/2/").ok()?,
            Provider::Lastfm => url.join("2.0/").ok()?,
        };
        let response = self
            .http
            .head(probe)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// `curl -I <site>`: the status a scraped site's front page answers with; `None`
    /// when the connection fails.
    pub async fn site_status(&self, site: SourceSite) -> Option<u16> {
        let url = self.endpoints.sites.get(&site)?;
        let response = self
            .http
            .head(url.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// The `curl -I` command for a scraped site.
    pub fn site_command(&self, site: SourceSite) -> String {
        match self.endpoints.sites.get(&site) {
            Some(url) => format!("curl -I {url}"),
            None => format!("curl -I <{site} site>"),
        }
    }

    /// The `curl -I` command for a provider's public endpoint.
    pub fn external_command(&self, provider: Provider) -> String {
        let path = match provider {
            Provider::Spotify => "v1/search",
            Provider::Musicbrainz => "ws/2/",
            Provider::Lastfm => "2.0/",
        };
        match self.endpoints.providers.get(&provider) {
            Some(url) => format!("curl -I {}{path}", url),
            None => format!("curl -I <{provider} endpoint>"),
        }
    }
}
