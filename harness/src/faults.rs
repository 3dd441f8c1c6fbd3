//! Faults as values: built, injected, and healed by dropping their guard.
//!
//! `Fault::provider(Spotify).status(503)` is a value; `fault.inject(&stack)` makes
//! it true and returns a [`FaultGuard`]; dropping the guard (or awaiting
//! [`FaultGuard::heal`]) makes it false again. Faults that live at a provider are
//! scoped wiremock mocks mounted above the baseline; faults that live inside a
//! program flip a switch on that service's chaos control surface; a DLQ flood is
//! rows in PostgreSQL; container faults (a full disk, the gateway disconnected from
//! the providers' network) are facts of the docker engine
//! ([`stack::docker::faults`]) and need the docker backend. Every kind passes one
//! conformance suite: inactive is passthrough, heal restores the baseline, healing
//! twice is a no-op.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use url::Url;
use wire::api::{ErrorKind, Provider};
use wire::{Clock, Service};

use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use super::scenario::FaultSpec;
use stack::docker::DockerStack;
use stack::docker::faults::{ContainerFaultError, ContainerHeal};

/// What a fault needs of a running stack.
pub trait FaultTarget: Send + Sync {
    fn clock(&self) -> Clock;
    /// The wiremock server standing in for a provider.
    fn provider_server(&self, provider: Provider) -> &MockServer;
    /// The provider's normal behaviour, to serve late (latency faults).
    fn provider_baseline(&self, provider: Provider) -> Box<dyn Respond>;
    fn chaos_url(&self, service: Service) -> Option<Url>;
    /// A pool on `musicdb` for bulk faults.
    fn admin_db(&self) -> &PgPool;
    /// Artist and title of the `index`-th track a flood reuses: real catalogue
    /// tracks, so that replayed messages enrich like any other track.
    fn track_name(&self, index: usize) -> (String, String);
    /// The docker stack, for container faults; `None` on other backends.
    fn docker(&self) -> Option<&DockerStack> {
        None
    }
}

/// A fault, before it is injected.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    ProviderStatus {
        provider: Provider,
        status: u16,
    },
    ProviderLatency {
        provider: Provider,
        delay: Duration,
    },
    RateLimit {
        provider: Provider,
        retry_after: Duration,
    },
    BadPayload {
        provider: Provider,
    },
    NetworkPartition {
        provider: Provider,
    },
    StuckBreaker {
        provider: Provider,
    },
    DlqFlood {
        messages: usize,
        mix: Vec<(ErrorKind, u32)>,
    },
    /// The stack's disk (logs, backups) is full: writes there fail with ENOSPC.
    /// Docker backend only.
    DiskFill,
    /// api-gateway-internal's container is disconnected from the network through which
    /// it reaches the providers. Docker backend only; [`Fault::NetworkPartition`] is
    /// the same symptom from a switch inside the gateway, on both backends.
    GatewayDisconnect,
}

/// Builds provider faults: `Fault::provider(Spotify).status(503)`.
pub struct ProviderFault(Provider);

impl ProviderFault {
    /// Every call answers `status` (an outage: 503, 500, …).
    pub fn status(self, status: u16) -> Fault {
        Fault::ProviderStatus {
            provider: self.0,
            status,
        }
    }
    /// Every call answers normally, but only after `delay` (modeled).
    pub fn latency(self, delay: Duration) -> Fault {
        Fault::ProviderLatency {
            provider: self.0,
            delay,
        }
    }
    /// Every call answers 429 with `Retry-After` (modeled seconds).
    pub fn rate_limit(self, retry_after: Duration) -> Fault {
        Fault::RateLimit {
            provider: self.0,
            retry_after,
        }
    }
    /// Every call answers 200 with a body that is not the provider's format.
    pub fn bad_payload(self) -> Fault {
        Fault::BadPayload { provider: self.0 }
    }
}

impl Fault {
    pub fn provider(provider: Provider) -> ProviderFault {
        ProviderFault(provider)
    }

    /// The gateway cannot reach `provider`; the provider itself is fine.
    pub fn network_partition(provider: Provider) -> Fault {
        Fault::NetworkPartition { provider }
    }

    /// `provider`'s breaker stays OPEN until reset-all.
    pub fn stuck_breaker(provider: Provider) -> Fault {
        Fault::StuckBreaker { provider }
    }

    /// `messages` failed tracks with DLQ messages, all `circuit_breaker_open` unless
    /// [`Fault::with_mix`] says otherwise.
    pub fn dlq_flood(messages: usize) -> Fault {
        Fault::DlqFlood {
            messages,
            mix: vec![(ErrorKind::CircuitBreakerOpen, 1)],
        }
    }

    /// Fills the stack's disk volume to the last byte (a filler file written from
    /// inside a container); healing removes the filler.
    pub fn disk_fill() -> Fault {
        Fault::DiskFill
    }

    /// `docker network disconnect` of api-gateway-internal from the providers'
    /// network; healing connects it again.
    pub fn gateway_disconnect() -> Fault {
        Fault::GatewayDisconnect
    }

    /// Why the fault needs the docker backend, when it does.
    pub fn needs_docker(&self) -> Option<&'static str> {
        match self {
            Fault::DiskFill => Some(
                "it fills the stack's size-limited tmpfs volume, which only containers                  have; the local backend writes to the host's own disk, which a drill must                  not fill",
            ),
            Fault::GatewayDisconnect => Some(
                "it disconnects the gateway's container from a docker network; local                  processes share the host's loopback, which has no such link to cut                  (Fault::network_partition is the local equivalent)",
            ),
            _ => None,
        }
    }

    /// The error mix of a DLQ flood, by weight.
    pub fn with_mix(self, mix: impl IntoIterator<Item = (ErrorKind, u32)>) -> Fault {
        match self {
            Fault::DlqFlood { messages, .. } => Fault::DlqFlood {
                messages,
                mix: mix.into_iter().collect(),
            },
            other => other,
        }
    }

    /// The fault a scenario file describes.
    pub fn from_spec(spec: &FaultSpec) -> Fault {
        match spec {
            FaultSpec::ProviderOutage {
                provider, status, ..
            } => Fault::provider(*provider).status(*status),
            FaultSpec::ProviderLatency {
                provider,
                delay_seconds,
                ..
            } => Fault::provider(*provider).latency(Duration::from_secs_f64(*delay_seconds)),
            FaultSpec::RateLimit {
                provider,
                retry_after_seconds,
                ..
            } => Fault::provider(*provider).rate_limit(Duration::from_secs(*retry_after_seconds)),
            FaultSpec::BadPayload { provider, .. } => Fault::provider(*provider).bad_payload(),
            FaultSpec::NetworkPartition { provider, .. } => Fault::network_partition(*provider),
            FaultSpec::StuckBreaker { provider, .. } => Fault::stuck_breaker(*provider),
            FaultSpec::DlqFlood { messages, mix, .. } => {
                Fault::dlq_flood(*messages).with_mix(mix.iter().map(|(k, w)| (*k, *w)))
            }
            FaultSpec::DiskFill { .. } => Fault::disk_fill(),
            FaultSpec::GatewayDisconnect { .. } => Fault::gateway_disconnect(),
        }
    }

    /// Makes the fault true on `target`.
    pub async fn inject(&self, target: &dyn FaultTarget) -> Result<FaultGuard, FaultError> {
        let healer = match self {
            Fault::ProviderStatus { provider, status } => {
                let body = json!({"error": {"status": status, "message": "Service unavailable"}});
                Healer::Mock(
                    mount(
                        target,
                        *provider,
                        ResponseTemplate::new(*status).set_body_json(body),
                    )
                    .await,
                )
            }
            Fault::ProviderLatency { provider, delay } => {
                let real = target.clock().to_real(*delay);
                let responder = Delayed {
                    inner: target.provider_baseline(*provider),
                    delay: real,
                };
                Healer::Mock(mount(target, *provider, responder).await)
            }
            Fault::RateLimit {
                provider,
                retry_after,
            } => {
                let response = ResponseTemplate::new(429)
                    .insert_header("Retry-After", retry_after.as_secs().to_string().as_str())
                    .set_body_json(
                        json!({"error": {"status": 429, "message": "API rate limit exceeded"}}),
                    );
                Healer::Mock(mount(target, *provider, response).await)
            }
            Fault::BadPayload { provider } => {
                let response = ResponseTemplate::new(200)
                    .set_body_json(json!({"unexpected": "format", "items": null}));
                Healer::Mock(mount(target, *provider, response).await)
            }
            Fault::NetworkPartition { provider } => {
                chaos_switch(
                    target,
                    Service::ApiGatewayInternal,
                    "partition",
                    json!({"provider": provider}),
                )
                .await?
            }
            Fault::StuckBreaker { provider } => {
                chaos_switch(
                    target,
                    Service::MetadataEnrichment,
                    "stuck_breaker",
                    json!({"provider": provider}),
                )
                .await?
            }
            Fault::DlqFlood { messages, mix } => {
                flood(target, *messages, mix).await?;
                Healer::Flood(target.admin_db().clone())
            }
            Fault::DiskFill => {
                let docker = self.docker_stack(target)?;
                Healer::Container(docker.fill_disk().await.map_err(self.container_error())?)
            }
            Fault::GatewayDisconnect => {
                let docker = self.docker_stack(target)?;
                Healer::Container(
                    docker
                        .disconnect_gateway()
                        .await
                        .map_err(self.container_error())?,
                )
            }
        };
        Ok(FaultGuard {
            description: self.to_string(),
            healer: Some(healer),
        })
    }
}

impl Fault {
    fn docker_stack<'a>(&self, target: &'a dyn FaultTarget) -> Result<&'a DockerStack, FaultError> {
        target.docker().ok_or_else(|| FaultError::NeedsDocker {
            fault: self.to_string(),
            why: self.needs_docker().unwrap_or("it acts on containers"),
        })
    }

    fn container_error(&self) -> impl FnOnce(ContainerFaultError) -> FaultError {
        let fault = self.to_string();
        move |source| FaultError::Container {
            fault,
            source: Box::new(source),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ProviderStatus { provider, status } => write!(f, "{provider} answers {status}"),
            Fault::ProviderLatency { provider, delay } => {
                write!(f, "{provider} answers after {} s", delay.as_secs_f64())
            }
            Fault::RateLimit {
                provider,
                retry_after,
            } => {
                write!(
                    f,
                    "{provider} answers 429 (Retry-After {} s)",
                    retry_after.as_secs()
                )
            }
            Fault::BadPayload { provider } => {
                write!(f, "{provider} answers with an invalid payload")
            }
            Fault::NetworkPartition { provider } => {
                write!(f, "api-gateway-internal cannot reach {provider}")
            }
            Fault::StuckBreaker { provider } => write!(f, "{provider} breaker stuck OPEN"),
            Fault::DlqFlood { messages, mix } => {
                let mix: Vec<String> = mix.iter().map(|(k, w)| format!("{k} {w}")).collect();
                write!(f, "DLQ flood of {messages} messages ({})", mix.join(", "))
            }
            Fault::DiskFill => write!(f, "the stack's disk is full"),
            Fault::GatewayDisconnect => {
                write!(
                    f,
                    "api-gateway-internal disconnected from the providers' network"
                )
            }
        }
    }
}

/// A fault that could not be injected or healed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{service} has no chaos control surface in this stack")]
    NoChaosSurface { service: Service },
    #[error("chaos switch '{switch}' on {service}: {reason}")]
    Chaos {
        service: Service,
        switch: &'static str,
        reason: String,
    },
    #[error("DLQ flood: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "'{fault}' needs the docker backend (`--backend docker` or DRILL_BACKEND=docker): {why}"
    )]
    NeedsDocker { fault: String, why: &'static str },
    #[error("'{fault}': {source}")]
    Container {
        fault: String,
        /// Boxed: the engine's errors are large, and every fault's result carries this.
        #[source]
        source: Box<ContainerFaultError>,
    },
}

enum Healer {
    Mock(Arc<AtomicBool>),
    Chaos {
        url: Url,
        service: Service,
        switch: &'static str,
    },
    Flood(PgPool),
    Container(ContainerHeal),
}

/// An injected fault. Dropping it heals the fault; [`FaultGuard::heal`] does the
/// same and reports errors; [`FaultGuard::forget`] leaves it in place for good.
#[must_use = "dropping the guard heals the fault at once"]
pub struct FaultGuard {
    description: String,
    healer: Option<Healer>,
}

impl FaultGuard {
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Heals the fault and waits until it is healed.
    pub async fn heal(mut self) -> Result<(), FaultError> {
        match self.healer.take() {
            None => Ok(()),
            Some(Healer::Mock(active)) => {
                active.store(false, Ordering::SeqCst);
                Ok(())
            }
            Some(Healer::Chaos {
                url,
                service,
                switch,
            }) => {
                let client = reqwest::Client::new();
                let response = client
                    .delete(url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map_err(|e| FaultError::Chaos {
                        service,
                        switch,
                        reason: e.to_string(),
                    })?;
                if !response.status().is_success() {
                    return Err(FaultError::Chaos {
                        service,
                        switch,
                        reason: format!("answered {}", response.status()),
                    });
                }
                Ok(())
            }
            Some(Healer::Flood(db)) => {
                remove_flood(&db).await?;
                Ok(())
            }
            Some(Healer::Container(heal)) => {
                heal.heal().await.map_err(|source| FaultError::Container {
                    fault: self.description.clone(),
                    source: Box::new(source),
                })
            }
        }
    }

    /// Leaves the fault in place after the guard is gone.
    pub fn forget(mut self) {
        self.healer = None;
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        match self.healer.take() {
            None => {}
            Some(Healer::Mock(active)) => active.store(false, Ordering::SeqCst),
            // Drop cannot await; a blocking DELETE on loopback is short and bounded.
            Some(Healer::Chaos { url, .. }) => {
                let _ = blocking_delete(&url);
            }
            // Rows are gone with the next reset; deleting them needs an async pool.
            Some(Healer::Flood(db)) => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let _ = remove_flood(&db).await;
                    });
                }
            }
            // Healed before drop returns, as a chaos switch is: one or two engine calls.
            Some(Healer::Container(heal)) => {
                if let Err(e) = heal.heal_blocking() {
                    eprintln!("{}: healing on drop failed: {e}", self.description);
                }
            }
        }
    }
}

/// Mounts `response` above the provider's baseline for every request, behind a
/// switch: once the switch is off, the mock stops matching and requests fall through
/// to whatever is below it (the baseline, or a fault injected later). A switch rather
/// than an unmount: healing must work from any task, at once, even from `Drop`.
async fn mount(
    target: &dyn FaultTarget,
    provider: Provider,
    response: impl Respond + 'static,
) -> Arc<AtomicBool> {
    let active = Arc::new(AtomicBool::new(true));
    Mock::given(WhileActive(active.clone()))
        .respond_with(response)
        // The baseline mocks sit at a lower priority (a higher number).
        .with_priority(1)
        .mount(target.provider_server(provider))
        .await;
    active
}

/// Matches every request while its fault is active, none once it is healed.
struct WhileActive(Arc<AtomicBool>);

impl wiremock::Match for WhileActive {
    fn matches(&self, _request: &wiremock::Request) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serves another responder's answer after a delay.
struct Delayed {
    inner: Box<dyn Respond>,
    delay: Duration,
}

impl Respond for Delayed {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.inner.respond(request).set_delay(self.delay)
    }
}

async fn chaos_switch(
    target: &dyn FaultTarget,
    service: Service,
    switch: &'static str,
    params: serde_json::Value,
) -> Result<Healer, FaultError> {
    let base = target
        .chaos_url(service)
        .ok_or(FaultError::NoChaosSurface { service })?;
    let url = base
        .join(&format!("chaos/{switch}"))
        .map_err(|e| FaultError::Chaos {
            service,
            switch,
            reason: e.to_string(),
        })?;
    let response = reqwest::Client::new()
        .put(url.clone())
        .json(&params)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| FaultError::Chaos {
            service,
            switch,
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(FaultError::Chaos {
            service,
            switch,
            reason: format!("answered {status}: {body}"),
        });
    }
    Ok(Healer::Chaos {
        url,
        service,
        switch,
    })
}

/// `DELETE url` over a plain TCP connection, for use where nothing can be awaited.
fn blocking_delete(url: &Url) -> std::io::Result<()> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let mut stream = TcpStream::connect((host, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        url.path()
    )?;
    let mut answer = [0u8; 64];
    let _ = stream.read(&mut answer)?;
    Ok(())
}

/// The error kind of the `index`-th flood message, spreading `mix` evenly.
fn kind_for(index: usize, mix: &[(ErrorKind, u32)]) -> ErrorKind {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return ErrorKind::CircuitBreakerOpen;
    }
    let mut slot = (index as u64 * 7919 % total as u64) as u32;
    for (kind, weight) in mix {
        if slot < *weight {
            return *kind;
        }
        slot -= weight;
    }
    mix[0].0
}

/// Inserts `messages` failed tracks and their DLQ messages in one set-based statement.
///
/// Foreign-key triggers are off for this transaction (`session_replication_role =
/// replica`, which the superuser pool may set): every message references a track the
/// same statement inserts, so the row-by-row checks (each locking its track row again)
/// would prove nothing, and they cost about a fifth of a 100k flood.
async fn flood(
    target: &dyn FaultTarget,
    messages: usize,
    mix: &[(ErrorKind, u32)],
) -> Result<(), sqlx::Error> {
    let db = target.admin_db();
    let now: DateTime<Utc> = target.clock().now();
    let mut artists = Vec::with_capacity(messages);
    let mut titles = Vec::with_capacity(messages);
    let mut kinds = Vec::with_capacity(messages);
    let mut created = Vec::with_capacity(messages);
    for i in 0..messages {
        let kind = kind_for(i, mix);
        // Invalid data is what the name says: a scraped entry without an artist or title.
        let (artist, title) = if kind == ErrorKind::InvalidData {
            if i % 2 == 0 {
                (String::new(), format!("Untitled ID {}", i % 211))
            } else {
                (format!("Unknown Artist {}", i % 89), String::new())
            }
        } else {
            target.track_name(i)
        };
        artists.push(artist);
        titles.push(title);
        kinds.push(kind.name().to_owned());
        // Spread over the last 90 modeled minutes, oldest first.
        created.push(
            now - chrono::Duration::seconds(((messages - i) * 5400 / messages.max(1)) as i64),
        );
    }
    let mut tx = db.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                 WITH ORDINALITY AS u(artist, title, kind, created, ord)
         ),
         new_tracks AS (
             INSERT INTO tracks (artist_name, track_name, source, source_url, enrichment_status,
                                 enrichment_attempts, created_at, updated_at)
             SELECT artist, title, 'dlq-flood', 'dlq-flood://' || ord, 'failed', 1, created, created
             FROM input
             RETURNING track_id, artist_name, track_name, source_url, created_at
         )
         INSERT INTO dlq_messages (track_id, artist_name, track_name, error, error_message, provider, payload, created_at)
         SELECT t.track_id, t.artist_name, t.track_name, i.kind,
                CASE i.kind
                    WHEN 'circuit_breaker_open' THEN 'circuit breaker for spotify is OPEN'
                    WHEN 'timeout' THEN 'spotify did not answer within 30 s'
                    WHEN 'api_rate_limit' THEN 'spotify answered 429 Too Many Requests'
                    WHEN 'invalid_data' THEN 'artist_name or track_name is empty'
                    ELSE 'spotify answered 503'
                END,
                CASE WHEN i.kind = 'invalid_data' THEN NULL ELSE 'spotify' END,
                '{\"flood\": true}'::jsonb,
                t.created_at
         FROM new_tracks t
         -- Joined on the ordinal as a number, which sorts faster than the URL text;
         -- with the constant payload above, that saves about a tenth of a 100k flood.
         JOIN input i ON replace(t.source_url, 'dlq-flood://', '')::bigint = i.ord",
    )
    .bind(&artists)
    .bind(&titles)
    .bind(&kinds)
    .bind(&created)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Removes what is left of a flood: its tracks, and every row that references one
/// (live, archived and replayed messages, and whatever enrichment wrote after a replay).
///
/// Deleting the tracks the ordinary way fires a foreign-key trigger per track and per
/// referencing table, and `enrichment_audit` and `dlq_archive` have no index on
/// `track_id`: each firing scans the whole table, which took minutes for 100k tracks on
/// a stack that had run a while. So the triggers are off for this transaction
/// (`session_replication_role = replica`) and the references go set-based instead.
/// The tracks go first: from then on a twin transaction that references one waits for
/// this one and then fails its own foreign-key check. Then each referencing table (read
/// from the catalogue, so a new one cannot be missed) loses the rows whose track is
/// gone, in statements that see whatever was committed before the tracks went.
async fn remove_flood(db: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM tracks WHERE source = 'dlq-flood'")
        .execute(&mut *tx)
        .await?;
    let orphan_deletes: Vec<String> = sqlx::query_scalar(
        "SELECT format('DELETE FROM %s r WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.track_id = r.%I)',
                       c.conrelid::regclass, a.attname)
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.confrelid = 'tracks'::regclass
         ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    for sql in orphan_deletes {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_mix_is_spread_by_weight() {
        let mix = [
            (ErrorKind::CircuitBreakerOpen, 80),
            (ErrorKind::Timeout, 20),
        ];
        let breaker = (0..1000)
            .filter(|i| kind_for(*i, &mix) == ErrorKind::CircuitBreakerOpen)
            .count();
        assert_eq!(breaker, 800);
    }

    #[test]
    fn faults_describe_themselves_for_the_timeline() {
        assert_eq!(
            Fault::provider(Provider::Spotify).status(503).to_string(),
            "spotify answers 503"
        );
        assert_eq!(
            Fault::dlq_flood(5000)
                .with_mix([(ErrorKind::Timeout, 1)])
                .to_string(),
            "DLQ flood of 5000 messages (timeout 1)"
        );
    }

    #[test]
    fn only_container_faults_need_docker() {
        assert!(Fault::disk_fill().needs_docker().is_some());
        assert!(Fault::gateway_disconnect().needs_docker().is_some());
        assert!(
            Fault::network_partition(Provider::Spotify)
                .needs_docker()
                .is_none()
        );
        let error = FaultError::NeedsDocker {
            fault: Fault::disk_fill().to_string(),
            why: Fault::disk_fill().needs_docker().unwrap(),
        }
        .to_string();
        assert!(
            error.starts_with(
                "'the stack's disk is full' needs the docker backend (`--backend docker`"
            ),
            "{error}"
        );
    }
}
