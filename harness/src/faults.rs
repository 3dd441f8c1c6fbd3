//! Faults as values: built, injected, and healed by dropping their guard.
//!
//! `Fault::provider(Spotify).status(503)` is a value; `fault.inject(&stack)` makes
//! it true and returns a [`FaultGuard`]; dropping the guard (or awaiting
//! [`FaultGuard::heal`]) makes it false again. Each strikes where the failure strikes
//! in production: faults that live at a provider or a scraped site are wiremock mocks
//! mounted above the stand-in's baseline; faults that live inside a program flip a
//! switch on that service's chaos control surface; container faults (a full disk, the
//! gateway disconnected from the providers' network) are facts of the docker engine,
//! which the stack's interface offers where its backend has them. A DLQ flood (rows in
//! PostgreSQL) is no root cause and no scenario may use it: it serves the DLQ
//! benchmarks. Every kind passes one conformance suite: inactive is passthrough, heal
//! restores the baseline, healing twice is a no-op.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use runbooks::ops::timeline::format_modeled;
use serde_json::json;
use sqlx::PgPool;
use stack::docker::faults::{ContainerFaultError, ContainerHeal};
use stack::providers::{Degradation, Degraded};
use stack::{CapabilityError, Stack, StandIn};
use url::Url;
use wire::api::{ErrorKind, Provider, SourceSite};
use wire::wait::Poll;
use wire::{Clock, Service};
use wiremock::{Mock, Respond, ResponseTemplate};

/// A fault, before it is injected.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    ProviderStatus {
        provider: Provider,
        status: u16,
    },
    /// The provider answers normally, but only after `delay`, on `share` of its calls
    /// (all of them, or a tail: the slow lookups of an overloaded index).
    ProviderLatency {
        provider: Provider,
        delay: Duration,
        share: Share,
    },
    /// The provider refuses every API call with 429 until it has seen none for
    /// `quiet` (modeled); its Retry-After says so. A call within the window restarts
    /// it, as real rate limiters do: the limit lifts only once the caller stops.
    RateLimit {
        provider: Provider,
        quiet: Duration,
    },
    /// The provider answers 200 with a body that is not its format, on `share` of its
    /// calls. A payload that fails validation says nothing about the provider's
    /// health, so its breaker does not count it: a partial share degrades the provider
    /// without ever opening the breaker.
    BadPayload {
        provider: Provider,
        share: Share,
    },
    /// Spotify's answers change for `share` of the catalogue's tracks (chosen by
    /// their Spotify ID): analyses not done yet, or a new format whose values fail
    /// validation. Every answer is a 200 in Spotify's format, so no breaker, DLQ or
    /// success rate notices: only the stored data's quality shows it.
    SpotifyDegraded {
        degradation: Degradation,
        share: Share,
    },
    /// A scraped site's pages carry `garbage` entries without artist or title each.
    GarbledTracklists {
        site: SourceSite,
        garbage: u32,
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
    /// `count` requests to a track API run a report query that takes `runs_for`
    /// (modeled) each, holding their pooled connections all that time.
    RunawayQueries {
        service: Service,
        count: u32,
        /// One request in `every` is a report's, until `count` have started.
        every: u32,
        runs_for: Duration,
    },
    /// One request in `every` to a track API leaves its transaction open and never
    /// hands its connection back. With `persists`, the defect is in the service's
    /// build: a restart brings it back (the switch is on from the start).
    ConnectionLeak {
        service: Service,
        every: u32,
        persists: bool,
    },
    /// The API users' reads rise to `requests_per_minute` on each track API.
    TrafficSurge {
        requests_per_minute: u32,
    },
    /// The spider of `site`'s scraper blocks for good while its process stays up.
    SpiderHang {
        site: SourceSite,
    },
    /// Not a fault: the world's own work that a careless remedy breaks. A nightly
    /// `pg_dump` runs through the incident for `runs_for`, a long query under its own
    /// application name; a remediation that terminates it fails the drill (its guard's
    /// heal reports it).
    BackupRunning {
        runs_for: Duration,
    },
    /// A scraped site answers every request with `status` (it is down).
    SiteDown {
        site: SourceSite,
        status: u16,
    },
    /// `service`'s file log level is left at DEBUG in its environment: its log file on
    /// the stack's disk grows by `mib_per_minute` (modeled) of request and response
    /// bodies, and a restart keeps it so.
    DebugLogging {
        service: Service,
        mib_per_minute: f64,
    },
    /// `service` leaks memory: `mib_per_minute` (modeled) that it never gives back, up
    /// to `max_mib`, and already holds `held_mib` of it (the leak ran before the drill).
    /// A leak in the service's build (`persists`) is also in its environment, so a
    /// restart gives the memory back and the leak starts again, from nothing.
    MemoryLeak {
        service: Service,
        mib_per_minute: f64,
        max_mib: u64,
        persists: bool,
        held_mib: u64,
    },
    /// Redis holds `held_mib` of audio analyses, `entry_kib` each, that a build of
    /// metadata-enrichment cached and nothing reads back (`cache_bloat` switch).
    CacheBloat {
        held_mib: u64,
        entry_kib: u64,
    },
    /// The backup job's retention stopped: one `musicdb-<date>.sql.gz` per night is
    /// still on the stack's disk, `sizes[0]` bytes last night's, `sizes[1]` the night
    /// before, and so on. Healing checks that the backups of the last seven days are
    /// all still there, unchanged: deleting one loses the only copy, and fails the drill.
    BackupsPiledUp {
        sizes: Vec<u64>,
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
            share: Share::ALL,
        }
    }
    /// API calls answer 429 until none came for `quiet` (modeled).
    pub fn rate_limit(self, quiet: Duration) -> Fault {
        Fault::RateLimit {
            provider: self.0,
            quiet,
        }
    }
    /// Every call answers 200 with a body that is not the provider's format.
    pub fn bad_payload(self) -> Fault {
        Fault::BadPayload {
            provider: self.0,
            share: Share::ALL,
        }
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

    /// `site`'s spider reads `garbage` cue lines per page as entries without an artist
    /// or a title, which enrichment refuses as `invalid_data`.
    pub fn garbled_tracklists(site: SourceSite, garbage: u32) -> Fault {
        Fault::GarbledTracklists { site, garbage }
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

    /// The fault strikes only `share` of the provider's API calls (latency and bad
    /// payloads; other faults are unchanged).
    pub fn on_share(self, share: Share) -> Fault {
        match self {
            Fault::ProviderLatency {
                provider, delay, ..
            } => Fault::ProviderLatency {
                provider,
                delay,
                share,
            },
            Fault::BadPayload { provider, .. } => Fault::BadPayload { provider, share },
            other => other,
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

    /// Makes the fault true on `stack`.
    pub async fn inject(&self, stack: &Stack) -> Result<FaultGuard, FaultError> {
        let mut retry_after = None;
        let healer = match self {
            Fault::ProviderStatus { provider, status } => {
                let body = json!({"error": {"status": status, "message": "Service unavailable"}});
                Healer::Mock(
                    mount(
                        stack,
                        *provider,
                        ResponseTemplate::new(*status).set_body_json(body),
                    )
                    .await,
                )
            }
            Fault::ProviderLatency {
                provider,
                delay,
                share,
            } => {
                let real = stack.clock().to_real(*delay);
                let responder = Delayed {
                    inner: stack.providers().baseline_responder(*provider),
                    delay: real,
                };
                Healer::Mock(mount_on_share(stack, *provider, responder, *share).await)
            }
            Fault::RateLimit { provider, quiet } => {
                let active = Arc::new(AtomicBool::new(true));
                let window = RateLimitWindow::new(stack.clock(), *quiet, active.clone());
                let response = ResponseTemplate::new(429)
                    .insert_header("Retry-After", quiet.as_secs().to_string().as_str())
                    .set_body_json(
                        json!({"error": {"status": 429, "message": "API rate limit exceeded"}}),
                    );
                retry_after = Some(window.retry_after());
                Mock::given(window)
                    .respond_with(response)
                    .with_priority(1)
                    .mount(stack.providers().server(*provider))
                    .await;
                Healer::Mock(active)
            }
            Fault::BadPayload { provider, share } => {
                let response = ResponseTemplate::new(200)
                    .set_body_json(json!({"unexpected": "format", "items": null}));
                Healer::Mock(mount_on_share(stack, *provider, response, *share).await)
            }
            Fault::SpotifyDegraded { degradation, share } => {
                let degraded = stack.providers().degraded_spotify(Degraded {
                    degradation: *degradation,
                    per_thousand: share.per_thousand(),
                });
                Healer::Mock(mount(stack, Provider::Spotify, degraded).await)
            }
            Fault::GarbledTracklists { site, garbage } => {
                let garbled = stack.providers().garbled_site(*site, *garbage);
                Healer::Mock(mount(stack, *site, garbled).await)
            }
            Fault::NetworkPartition { provider } => {
                chaos_switch(
                    stack,
                    Service::ApiGatewayInternal,
                    "partition",
                    json!({"provider": provider}),
                )
                .await?
            }
            Fault::StuckBreaker { provider } => {
                chaos_switch(
                    stack,
                    Service::MetadataEnrichment,
                    "stuck_breaker",
                    json!({"provider": provider}),
                )
                .await?
            }
            Fault::RunawayQueries {
                service,
                count,
                every,
                runs_for,
            } => {
                chaos_switch(
                    stack,
                    *service,
                    "slow_queries",
                    json!({
                        "count": count,
                        "every": every,
                        "minutes": runs_for.as_secs_f64() / 60.0,
                    }),
                )
                .await?
            }
            Fault::ConnectionLeak {
                service,
                every,
                persists,
            } => {
                let params = json!({"every": every});
                if *persists {
                    chaos_switch_in_build(stack, *service, "connection_leak", params).await?
                } else {
                    chaos_switch(stack, *service, "connection_leak", params).await?
                }
            }
            Fault::SpiderHang { site } => {
                chaos_switch(stack, site.scraper(), "hang", json!({})).await?
            }
            Fault::DebugLogging {
                service,
                mib_per_minute,
            } => {
                // The level is in the service's environment: a restart keeps it.
                let params = json!({ "mib_per_minute": mib_per_minute });
                chaos_switch_in_build(stack, *service, "debug_file_log", params).await?
            }
            Fault::MemoryLeak {
                service,
                mib_per_minute,
                max_mib,
                persists,
                held_mib,
            } => {
                let build = json!({ "mib_per_minute": mib_per_minute, "max_mib": max_mib });
                // What the leak holds already is of this process, not of its build.
                let mut running = build.clone();
                running["held_mib"] = json!(held_mib);
                if *persists {
                    build_into(stack, *service, "memory_leak", &build).await?;
                    chaos_switch(stack, *service, "memory_leak", running)
                        .await?
                        .built_in()
                } else {
                    chaos_switch(stack, *service, "memory_leak", running).await?
                }
            }
            Fault::CacheBloat {
                held_mib,
                entry_kib,
            } => {
                let params = json!({ "held_mib": held_mib, "entry_kib": entry_kib });
                chaos_switch(stack, Service::MetadataEnrichment, "cache_bloat", params).await?
            }
            Fault::BackupsPiledUp { sizes } => Healer::Backups(write_backups(stack, sizes).await?),
            Fault::BackupRunning { runs_for } => {
                let (pid, task) = start_backup(stack, *runs_for).await?;
                Healer::Backup {
                    task,
                    pid,
                    admin: stack.admin_pool().clone(),
                }
            }
            Fault::SiteDown { site, status } => {
                let response = ResponseTemplate::new(*status).set_body_string(
                    "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                );
                Healer::Mock(mount(stack, *site, response).await)
            }
            Fault::TrafficSurge {
                requests_per_minute,
            } => {
                let traffic = stack.traffic().rate_handle();
                traffic.surge(*requests_per_minute);
                Healer::Traffic(traffic)
            }
            Fault::DlqFlood { messages, mix } => {
                flood(stack, *messages, mix).await?;
                Healer::Flood(stack.admin_pool().clone())
            }
            Fault::DiskFill => {
                Healer::Container(stack.fill_disk().await.map_err(self.capability_error())?)
            }
            Fault::GatewayDisconnect => Healer::Container(
                stack
                    .disconnect_gateway()
                    .await
                    .map_err(self.capability_error())?,
            ),
        };
        Ok(FaultGuard {
            description: self.to_string(),
            healer: Some(healer),
            retry_after,
        })
    }
}

impl Fault {
    fn capability_error(&self) -> impl FnOnce(CapabilityError) -> FaultError {
        let fault = self.to_string();
        move |source| FaultError::Stack {
            fault,
            source: Box::new(source),
        }
    }

    /// Whether this is the world's own work beside the faults, not a fault.
    pub fn is_decoy(&self) -> bool {
        matches!(self, Fault::BackupRunning { .. })
    }

    /// Whether the world may end this fault by itself (a provider that comes back, a
    /// site that is fixed), as opposed to one only a remedy removes.
    pub fn world_may_end_it(&self) -> bool {
        matches!(
            self,
            Fault::ProviderStatus { .. }
                | Fault::ProviderLatency { .. }
                | Fault::BadPayload { .. }
                | Fault::SpotifyDegraded { .. }
                | Fault::GarbledTracklists { .. }
                | Fault::ConnectionLeak { .. }
                | Fault::TrafficSurge { .. }
                | Fault::SiteDown { .. }
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ProviderStatus { provider, status } => write!(f, "{provider} answers {status}"),
            Fault::ProviderLatency {
                provider,
                delay,
                share,
            } => {
                write!(
                    f,
                    "{provider} answers {share}after {:.0} s",
                    delay.as_secs_f64()
                )
            }
            Fault::RateLimit { provider, quiet } => {
                write!(
                    f,
                    "{provider} rate-limits the stack until {} without a call",
                    format_modeled(*quiet)
                )
            }
            Fault::BadPayload { provider, share } => {
                write!(f, "{provider} answers {share}with an invalid payload")
            }
            Fault::SpotifyDegraded { degradation, share } => {
                let of = if *share == Share::ALL {
                    "every track".to_owned()
                } else {
                    format!("{}% of the tracks", f64::from(share.per_thousand()) / 10.0)
                };
                match degradation {
                    Degradation::Unanalysed => write!(
                        f,
                        "Spotify has no analysis for {of} (tempo 0, key -1) nor their ISRC"
                    ),
                    Degradation::Reformatted => write!(
                        f,
                        "Spotify answers for {of} in a new format (IDs as URIs, ISRCs \
                         with hyphens, tempos in double time)"
                    ),
                }
            }
            Fault::GarbledTracklists { site, garbage } => {
                write!(
                    f,
                    "{site}'s pages read with {garbage} entries without artist or title each"
                )
            }
            Fault::NetworkPartition { provider } => {
                write!(f, "api-gateway-internal cannot reach {provider}")
            }
            Fault::StuckBreaker { provider } => write!(f, "{provider} breaker stuck OPEN"),
            Fault::RunawayQueries {
                service,
                count,
                every,
                runs_for,
            } => write!(
                f,
                "one request in {every} to {service} runs a {} report query, {count} in all",
                format_modeled(*runs_for)
            ),
            Fault::ConnectionLeak {
                service,
                every,
                persists,
            } => write!(
                f,
                "{service} leaks the connection of one request in {every}{}",
                if *persists {
                    " (in its build: a restart brings it back)"
                } else {
                    ""
                }
            ),
            Fault::SpiderHang { site } => {
                write!(f, "{}'s spider hangs with its process up", site.scraper())
            }
            Fault::SiteDown { site, status } => write!(f, "{site} is down (answers {status})"),
            Fault::BackupRunning { runs_for } => write!(
                f,
                "the nightly backup (pg_dump) runs for {}",
                format_modeled(*runs_for)
            ),
            Fault::TrafficSurge {
                requests_per_minute,
            } => write!(
                f,
                "API reads rise to {requests_per_minute} a minute on each track API"
            ),
            Fault::DlqFlood { messages, mix } => {
                let mix: Vec<String> = mix.iter().map(|(k, w)| format!("{k} {w}")).collect();
                write!(f, "DLQ flood of {messages} messages ({})", mix.join(", "))
            }
            Fault::DebugLogging {
                service,
                mib_per_minute,
            } => write!(
                f,
                "{service} logs at DEBUG to its log file ({mib_per_minute:.1} MiB a minute)"
            ),
            Fault::MemoryLeak {
                service,
                mib_per_minute,
                max_mib,
                persists,
                held_mib,
            } => write!(
                f,
                "{service} leaks {mib_per_minute:.0} MiB a minute (holds {held_mib}, up to {max_mib} MiB){}",
                if *persists { ", in its build" } else { "" }
            ),
            Fault::CacheBloat {
                held_mib,
                entry_kib,
            } => write!(
                f,
                "Redis holds {held_mib} MiB of audio analyses ({entry_kib} KiB each) that \
                 metadata-enrichment cached and never reads"
            ),
            Fault::BackupsPiledUp { sizes } => write!(
                f,
                "the backups of the last {} nights were never removed ({:.0} MiB)",
                sizes.len(),
                sizes.iter().sum::<u64>() as f64 / f64::from(1 << 20)
            ),
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
    #[error("'{fault}': {source}")]
    Stack {
        fault: String,
        /// Boxed: the engine's errors are large, and every fault's result carries this.
        #[source]
        source: Box<CapabilityError>,
    },
    #[error("'{fault}': healing: {source}")]
    Heal {
        fault: String,
        #[source]
        source: Box<ContainerFaultError>,
    },
    #[error("the nightly backup (pg_dump) was ended before it finished: {0}")]
    BackupKilled(String),
    #[error("starting the nightly backup's session: {0}")]
    BackupStart(String),
    #[error("{action} the stack's backups: {reason}")]
    Backups {
        action: &'static str,
        reason: String,
    },
    #[error(
        "backups of the last seven days were deleted or changed: {0} (they were the only \
         copies; `-mtime +7` keeps them)"
    )]
    BackupsLost(String),
}

enum Healer {
    Mock(Arc<AtomicBool>),
    Chaos {
        url: Url,
        service: Service,
        switch: &'static str,
        /// Also in the service's environment, so that a new process starts with it.
        built_in: bool,
        /// Asked, when no process answers, whether the service was stopped.
        orchestrator: Arc<dyn runbooks::ops::Orchestrator>,
    },
    Flood(PgPool),
    Container(ContainerHeal),
    /// Ends the users' surge.
    Traffic(stack::traffic::TrafficRate),
    /// The backup's session; healing checks it was not ended by someone else, then
    /// ends it (that session only: two backups heal independently).
    Backup {
        task: tokio::task::JoinHandle<Result<(), sqlx::Error>>,
        pid: i32,
        admin: PgPool,
    },
    /// The recent backups that must survive, and the disk they are on.
    Backups(RecentBackups),
}

impl Healer {
    /// A chaos switch that is also in the service's build: healing it knows a new
    /// process starts with it.
    fn built_in(mut self) -> Self {
        if let Healer::Chaos { built_in, .. } = &mut self {
            *built_in = true;
        }
        self
    }
}

/// The backups of the last seven days, as written, to check at heal.
struct RecentBackups {
    disk: stack::disk::StackDisk,
    kept: Vec<(String, u64)>,
}

/// An injected fault. Dropping it heals the fault; [`FaultGuard::heal`] does the
/// same and reports errors; [`FaultGuard::forget`] leaves it in place for good.
#[must_use = "dropping the guard heals the fault at once"]
pub struct FaultGuard {
    description: String,
    healer: Option<Healer>,
    retry_after: Option<RetryAfter>,
}

impl FaultGuard {
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The wait a rate limit imposes once its caller stops (see [`RetryAfter`]).
    pub fn retry_after(&self) -> Option<RetryAfter> {
        self.retry_after.clone()
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
                built_in,
                orchestrator,
            }) => heal_chaos_switch(url, service, switch, built_in, orchestrator).await,
            Some(Healer::Flood(db)) => {
                remove_flood(&db).await?;
                Ok(())
            }
            Some(Healer::Traffic(traffic)) => {
                traffic.end_surge();
                Ok(())
            }
            Some(Healer::Backups(recent)) => recent.check().await,
            Some(Healer::Backup { task, pid, admin }) => {
                if task.is_finished() {
                    if let Ok(Err(error)) = task.await {
                        return Err(FaultError::BackupKilled(error.to_string()));
                    }
                    return Ok(());
                }
                // Still running, as it should: the drill is over, so it is ended here.
                task.abort();
                end_backup(&admin, pid).await?;
                Ok(())
            }
            Some(Healer::Container(heal)) => heal.heal().await.map_err(|source| FaultError::Heal {
                fault: self.description.clone(),
                source: Box::new(source),
            }),
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
            Some(Healer::Traffic(traffic)) => traffic.end_surge(),
            // Nothing to undo: the stack's reset empties the disk.
            Some(Healer::Backups(_)) => {}
            Some(Healer::Backup { task, pid, admin }) => {
                task.abort();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let _ = end_backup(&admin, pid).await;
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
    stack: &Stack,
    party: impl Into<StandIn>,
    response: impl Respond + 'static,
) -> Arc<AtomicBool> {
    let active = Arc::new(AtomicBool::new(true));
    Mock::given(WhileActive(active.clone()))
        .respond_with(response)
        // The baseline mocks sit at a lower priority (a higher number).
        .with_priority(1)
        .mount(stack.providers().server(party))
        .await;
    active
}

/// Like [`mount`], for a fault that strikes only `share` of the API calls: the
/// others fall through to the provider's baseline answers.
async fn mount_on_share(
    stack: &Stack,
    party: impl Into<StandIn>,
    response: impl Respond + 'static,
    share: Share,
) -> Arc<AtomicBool> {
    if share == Share::ALL {
        return mount(stack, party, response).await;
    }
    let active = Arc::new(AtomicBool::new(true));
    Mock::given(WhileActive(active.clone()))
        .and(OnShare::new(share))
        .respond_with(response)
        .with_priority(1)
        .mount(stack.providers().server(party))
        .await;
    active
}

/// The part of a provider's API calls a fault strikes, in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share(u16);

impl Share {
    pub const ALL: Share = Share(1000);

    /// `percent` of the calls, rounded to a thousandth and clamped to 0–100%.
    pub fn percent(percent: f64) -> Share {
        Share((percent * 10.0).round().clamp(0.0, 1000.0) as u16)
    }

    pub fn per_thousand(self) -> u16 {
        self.0
    }
}

/// "45% of calls " before what happens to them; nothing when it is all of them.
impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Share::ALL {
            return Ok(());
        }
        write!(f, "{}% of calls ", f64::from(self.0) / 10.0)
    }
}

/// Matches a fixed share of the API calls (`GET`s; an engineer's `curl -I` reaches the
/// status page): which calls, follows from a counter and a fixed mixing function, so a
/// run sees the same sequence whatever the timing, and the struck calls are spread
/// through it rather than bunched.
struct OnShare {
    share: Share,
    calls: std::sync::atomic::AtomicU64,
}

impl OnShare {
    fn new(share: Share) -> Self {
        Self {
            share,
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl wiremock::Match for OnShare {
    fn matches(&self, request: &wiremock::Request) -> bool {
        if request.method != wiremock::http::Method::GET {
            return false;
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        stack::providers::mix(call) % 1000 < u64::from(self.share.per_thousand())
    }
}

/// Matches every request while its fault is active, none once it is healed.
struct WhileActive(Arc<AtomicBool>);

impl wiremock::Match for WhileActive {
    fn matches(&self, _request: &wiremock::Request) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The window of a rate limit: matches (refuses) every API call while calls keep
/// coming, and stops matching for good once `quiet` (modeled) has passed since the last
/// refused one. `curl -I` from an engineer's terminal is not an API call against the
/// stack's quota (an anonymous HEAD reaches the status page) and passes.
struct RateLimitWindow {
    clock: Clock,
    quiet: chrono::TimeDelta,
    active: Arc<AtomicBool>,
    last_refused: Arc<Mutex<Option<DateTime<Utc>>>>,
    lifted: AtomicBool,
}

impl RateLimitWindow {
    fn new(clock: Clock, quiet: Duration, active: Arc<AtomicBool>) -> Self {
        Self {
            clock,
            quiet: chrono::TimeDelta::from_std(quiet).unwrap_or(chrono::TimeDelta::MAX),
            active,
            last_refused: Arc::new(Mutex::new(None)),
            lifted: AtomicBool::new(false),
        }
    }

    fn retry_after(&self) -> RetryAfter {
        RetryAfter {
            quiet: self.quiet,
            last_refused: self.last_refused.clone(),
        }
    }
}

/// The wait a rate limit's Retry-After imposes: from the last refused call until the
/// quiet period has passed. Calls before it are the caller's doing (each one restarted
/// the wait), so only this last stretch is the provider's, and a runbook waiting in
/// it is waiting on the world.
#[derive(Clone, Debug)]
pub struct RetryAfter {
    quiet: chrono::TimeDelta,
    last_refused: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl RetryAfter {
    /// The last refused call and the instant its Retry-After runs out; `None` before
    /// any call was refused.
    pub fn span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let last = *self.last_refused.lock().unwrap_or_else(|p| p.into_inner());
        last.map(|at| (at, at + self.quiet))
    }
}

impl wiremock::Match for RateLimitWindow {
    fn matches(&self, request: &wiremock::Request) -> bool {
        if !self.active.load(Ordering::SeqCst)
            || self.lifted.load(Ordering::SeqCst)
            || request.method != wiremock::http::Method::GET
        {
            return false;
        }
        let now = self.clock.now();
        let mut last = self.last_refused.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| now - at >= self.quiet) {
            self.lifted.store(true, Ordering::SeqCst);
            return false;
        }
        *last = Some(now);
        true
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
    stack: &Stack,
    service: Service,
    switch: &'static str,
    params: serde_json::Value,
) -> Result<Healer, FaultError> {
    let base = stack
        .chaos_url(service)
        .ok_or(FaultError::NoChaosSurface { service })?;
    let url = base
        .join(&format!("chaos/{switch}"))
        .map_err(|e| FaultError::Chaos {
            service,
            switch,
            reason: e.to_string(),
        })?;
    let response = harness_http()
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
        built_in: false,
        orchestrator: stack.orchestrator(),
    })
}

/// How long (real time) healing a chaos switch waits for its service to answer again
/// while the runbook restarts it. A restart takes a second locally and some seconds on
/// docker, where the engine's port proxy accepts connections and drops them meanwhile.
const SWITCH_HEAL_GRACE: Duration = Duration::from_secs(30);

/// Turns a chaos switch off, whether the world ends the fault or the drill does.
///
/// The service may be between two processes (the runbook restarting it): the request
/// is then repeated until a process answers, for at most [`SWITCH_HEAL_GRACE`]. A
/// process that answers holds the switch only if it is built into the service (a new
/// process starts without any other), and turning it off there is what healing means.
async fn heal_chaos_switch(
    url: Url,
    service: Service,
    switch: &'static str,
    built_in: bool,
    orchestrator: Arc<dyn runbooks::ops::Orchestrator>,
) -> Result<(), FaultError> {
    let failed = |reason: String| FaultError::Chaos {
        service,
        switch,
        reason,
    };
    let client = harness_http();
    let turned_off = wire::wait::until(
        Clock::real_time(),
        SWITCH_HEAL_GRACE,
        Duration::from_millis(250),
        || {
            let (client, url, orchestrator) = (client.clone(), url.clone(), orchestrator.clone());
            async move {
                let error = match client
                    .delete(url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                {
                    Ok(response) if response.status().is_success() => {
                        return Poll::Ready(Ok(()));
                    }
                    Ok(response) => {
                        return Poll::Ready(Err(format!("answered {}", response.status())));
                    }
                    Err(error) => error,
                };
                // No process listens: the one that held the switch is gone (restarted
                // or stopped by the runbook), and a switch that is not built into the
                // service lives only in its process.
                if error.is_connect() && !built_in {
                    return Poll::Ready(Ok(()));
                }
                // A switch in the build with its service stopped (the runbook ran one
                // worker fewer): no process holds it, and the stack's reset starts the
                // service again from its original environment.
                if error.is_connect()
                    && matches!(
                        orchestrator.status(service).await,
                        Ok(runbooks::ops::ServiceStatus::Stopped)
                    )
                {
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending(error.to_string())
            }
        },
    )
    .await
    .map_err(|timed_out| failed(timed_out.to_string()))?;
    turned_off.value.map_err(failed)
}

/// The backup's query: `pg_dump`'s COPY of the largest table, whose duration at
/// production volume (`runs_for`, on PostgreSQL's modeled clock) the twin's tables
/// cannot have.
const BACKUP_QUERY: &str =
    "SELECT pg_sleep($1) /* COPY public.tracks TO stdout (nightly backup) */";

/// Opens the backup's session as `musicdb_user` under `pg_dump`'s application name and
/// starts its long query; returns the session's backend pid and the task, which ends
/// with the query's result.
async fn start_backup(
    stack: &Stack,
    runs_for: Duration,
) -> Result<(i32, tokio::task::JoinHandle<Result<(), sqlx::Error>>), FaultError> {
    use sqlx::Connection as _;
    let start_error = |e: sqlx::Error| FaultError::BackupStart(e.to_string());
    let options: sqlx::postgres::PgConnectOptions = stack
        .endpoints()
        .database_url
        .parse()
        .map_err(start_error)?;
    let mut conn = sqlx::postgres::PgConnection::connect_with(&options.application_name("pg_dump"))
        .await
        .map_err(start_error)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(start_error)?;
    let task = tokio::spawn(async move {
        sqlx::query(BACKUP_QUERY)
            .bind(runs_for.as_secs_f64())
            .execute(&mut conn)
            .await?;
        conn.close().await
    });
    Ok((pid, task))
}

/// A chaos switch that is also in the service's build (its environment, see
/// [`build_into`]): a restart brings it back, and healing it knows so.
async fn chaos_switch_in_build(
    stack: &Stack,
    service: Service,
    switch: &'static str,
    params: serde_json::Value,
) -> Result<Healer, FaultError> {
    build_into(stack, service, switch, &params).await?;
    Ok(chaos_switch(stack, service, switch, params)
        .await?
        .built_in())
}

/// Puts a switch into the service's environment for its next start
/// ([`wire::env::CHAOS_AT_START`]), so that a restart does not cure it.
async fn build_into(
    stack: &Stack,
    service: Service,
    switch: &'static str,
    params: &serde_json::Value,
) -> Result<(), FaultError> {
    let at_start = json!({ switch: params }).to_string();
    stack
        .orchestrator()
        .set_env(
            service,
            [(wire::env::CHAOS_AT_START.to_owned(), at_start)].into(),
        )
        .await
        .map_err(|e| FaultError::Chaos {
            service,
            switch,
            reason: format!("building it into the service: {e}"),
        })
}

/// The nights' backups, last night's first, each dated 02:00 of its night by the
/// stack's clock.
async fn write_backups(stack: &Stack, sizes: &[u64]) -> Result<RecentBackups, FaultError> {
    let disk = stack.disk();
    let now = stack.clock().now();
    let mut kept = Vec::new();
    for (nights_ago, &bytes) in sizes.iter().enumerate() {
        let at = nightly_backup(now, nights_ago as u64);
        let name = format!("musicdb-{}.sql.gz", at.format("%Y%m%d"));
        disk.write(runbooks::ops::DiskDir::Backups, &name, bytes, at)
            .await
            .map_err(|e| FaultError::Backups {
                action: "writing",
                reason: e.to_string(),
            })?;
        if (now - at).num_days() <= 7 {
            kept.push((name, bytes));
        }
    }
    Ok(RecentBackups { disk, kept })
}

/// When the nightly backup ran `nights_ago` nights before the last one (02:00): the
/// last one is today's if 02:00 has passed, else yesterday's, and each night before it
/// a day earlier, so that `n` nights are `n` distinct files whatever the time of day.
fn nightly_backup(now: DateTime<Utc>, nights_ago: u64) -> DateTime<Utc> {
    let today = now
        .date_naive()
        .and_hms_opt(2, 0, 0)
        .expect("02:00 is a time")
        .and_utc();
    let last = if today > now {
        today - chrono::TimeDelta::days(1)
    } else {
        today
    };
    last - chrono::TimeDelta::days(nights_ago as i64)
}

impl RecentBackups {
    async fn check(&self) -> Result<(), FaultError> {
        let present = self
            .disk
            .files(runbooks::ops::DiskDir::Backups)
            .await
            .map_err(|e| FaultError::Backups {
                action: "listing",
                reason: e.to_string(),
            })?;
        let lost: Vec<String> = self
            .kept
            .iter()
            .filter(|(name, bytes)| {
                !present
                    .iter()
                    .any(|f| f.name() == name && f.bytes == *bytes)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if lost.is_empty() {
            Ok(())
        } else {
            Err(FaultError::BackupsLost(lost.join(", ")))
        }
    }
}

/// Ends the backup session `pid` if it is still running.
async fn end_backup(admin: &PgPool, pid: i32) -> Result<(), FaultError> {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid = $1 AND application_name = 'pg_dump'",
    )
    .bind(pid)
    .execute(admin)
    .await
    .map_err(|e| FaultError::BackupStart(format!("ending it after the drill: {e}")))?;
    Ok(())
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
    stack: &Stack,
    messages: usize,
    mix: &[(ErrorKind, u32)],
) -> Result<(), sqlx::Error> {
    let db = stack.admin_pool();
    let now: DateTime<Utc> = stack.clock().now();
    let catalogue = stack.catalogue();
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
            let track = &catalogue.tracks()[i % catalogue.len().max(1)];
            (track.artist.clone(), track.title.clone())
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

/// An HTTP client that names itself as the harness (see [`wire::agents`]), so that a
/// game day's observer does not take a fault switch for the responder.
fn harness_http() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(wire::agents::HARNESS)
        .build()
        .unwrap_or_default()
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
    fn only_what_the_world_ends_may_end_on_a_schedule() {
        assert!(
            Fault::provider(Provider::Spotify)
                .status(503)
                .world_may_end_it()
        );
        assert!(Fault::garbled_tracklists(SourceSite::Mixesdb, 10).world_may_end_it());
        for removed_by_the_runbook in [
            Fault::provider(Provider::Spotify).rate_limit(Duration::from_secs(600)),
            Fault::stuck_breaker(Provider::Spotify),
            Fault::network_partition(Provider::Spotify),
            Fault::disk_fill(),
        ] {
            assert!(
                !removed_by_the_runbook.world_may_end_it(),
                "{removed_by_the_runbook}"
            );
        }
    }

    #[test]
    fn nightly_backups_are_one_a_night_whatever_the_time_of_day() {
        for hour in [0, 1, 2, 3, 23] {
            let now = DateTime::parse_from_rfc3339(&format!("2026-11-30T{hour:02}:30:00Z"))
                .unwrap()
                .with_timezone(&Utc);
            let nights: Vec<DateTime<Utc>> = (0..10).map(|n| nightly_backup(now, n)).collect();
            assert!(nights.iter().all(|at| *at <= now), "{now}: {nights:?}");
            let days: std::collections::BTreeSet<_> =
                nights.iter().map(|at| at.date_naive()).collect();
            assert_eq!(days.len(), 10, "ten distinct nights at {now}: {nights:?}");
            assert!(now - nights[0] < chrono::TimeDelta::days(1));
        }
    }

    #[test]
    fn a_share_strikes_that_part_of_the_api_calls_and_no_status_check() {
        use wiremock::Match;
        let share = OnShare::new(Share::percent(45.0));
        let call = |method: &str| wiremock::Request {
            url: "http://provider/ws/2/recording".parse().unwrap(),
            method: method.parse().unwrap(),
            headers: Default::default(),
            body: Vec::new(),
        };
        let struck = (0..2_000).filter(|_| share.matches(&call("GET"))).count();
        assert!((800..1_000).contains(&struck), "{struck} of 2000 struck");
        assert!((0..50).all(|_| !share.matches(&call("HEAD"))));
        assert_eq!(Share::percent(45.0).to_string(), "45% of calls ");
        assert_eq!(Share::ALL.to_string(), "");
        assert_eq!(Share::percent(140.0), Share::ALL);
    }

    #[test]
    fn a_rate_limit_window_lifts_only_after_a_quiet_period() {
        use wiremock::Match;
        let clock = Clock::starting_now(600.0).unwrap();
        let active = Arc::new(AtomicBool::new(true));
        // Ten minutes of quiet are a real second at this scale; calls a millisecond
        // apart come well within it, even with a loaded machine's pauses between them.
        let window = RateLimitWindow::new(clock, Duration::from_secs(600), active.clone());
        let call = |method: &str| wiremock::Request {
            url: "http://provider/v1/search".parse().unwrap(),
            method: method.parse().unwrap(),
            headers: Default::default(),
            body: Vec::new(),
        };
        assert!(window.matches(&call("GET")), "the first call is refused");
        assert!(!window.matches(&call("HEAD")), "curl -I is no API call");
        // Calls keep coming, faster than the quiet period: the limit holds.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(1));
            assert!(window.matches(&call("GET")));
        }
        let (last_refused, lifts) = window.retry_after().span().expect("calls were refused");
        assert_eq!(
            lifts - last_refused,
            chrono::TimeDelta::minutes(10),
            "the provider's own wait runs from the last refused call"
        );
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(
            !window.matches(&call("GET")),
            "lifted after ten quiet minutes"
        );
        assert_eq!(
            window.retry_after().span().map(|(at, _)| at),
            Some(last_refused),
            "a call let through after the wait does not restart it"
        );
        assert!(!window.matches(&call("GET")), "and stays lifted");
    }
}
