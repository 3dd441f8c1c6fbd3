//! Scenario files: one TOML file per runbook scenario under `scenarios/`.
//!
//! A scenario says which root-cause faults strike and when, what workload the stack
//! carries meanwhile, which alert must fire, which diagnosis the runbook must reach and
//! how much of the runbook's own time its resolution may take. It never says what the
//! symptoms will be: those emerge from the twin working under the faults.
//!
//! Times are ranges the seed draws from (`at_minutes = [2, 5]`), or single numbers: an
//! outage's onset and its end are facts of the world, which differ from one incident
//! to the next. Only faults the world ends by itself may recover on a schedule
//! (`recovers_after_minutes`); faults the runbook must remove (a rate limit, a stuck
//! breaker, a lost route) stay until it does. A mistake in a file is reported with the
//! file, the line and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use stack::providers::Degradation;
use stack::{TurnKind, Workload};
use wire::Service;
use wire::api::{Provider, SourceSite};

use crate::faults::{Fault, Share};

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `dlq-overflow/a-breaker-errors`, from the file's place under `scenarios/`.
    pub id: String,
    pub runbook: String,
    pub title: String,
    /// Modeled seconds per real second for this drill.
    pub scale: f64,
    pub workload: Workload,
    pub faults: Vec<FaultSpec>,
    pub expect: Expectation,
    pub path: PathBuf,
}

/// What the drill must show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The alert that must fire.
    pub alert: String,
    /// The scenario the runbook's investigation must choose, as the runbook's
    /// scenario files name it (`circuit-breaker-errors`).
    pub diagnosis: String,
    /// Modeled minutes of runbook time (from the alert firing to verified resolution,
    /// less the time it spent waiting on the world) the resolution may take.
    pub budget_minutes: f64,
    /// Modeled minutes the alert may take to fire after the first fault strikes.
    #[serde(default = "default_detect_minutes")]
    pub detect_within_minutes: f64,
    /// Other alerts that may fire during this drill without failing it.
    #[serde(default)]
    pub tolerated_alerts: Vec<String>,
    /// Whether the runbook's remediation changes `metadata_enrichment_config` on
    /// purpose and leaves it so (e.g. "increase timeout temporarily").
    #[serde(default)]
    pub config_may_change: bool,
    /// Whether the world ends the incident by itself (an outage that ends): then a
    /// control run that does nothing may resolve too, and the report says how much of
    /// the resolution was waiting on the world.
    #[serde(default)]
    pub world_heals: bool,
    /// Whether the right response is an escalation: the fault is beyond the runbook
    /// (a defect in a service's code, a source site that is down), so the drill passes
    /// when the resolution escalates with its evidence while the alert still fires.
    #[serde(default)]
    pub escalates: bool,
    /// Why `budget_minutes` is above DESIGN.md's target of half the runbook's typical
    /// resolution time: what in the runbook's own text sets the floor (a threshold it
    /// must wait out, a watch it prescribes). A budget above the target without a
    /// reason is refused by the docs test.
    #[serde(default)]
    pub over_target: Option<String>,
}

fn default_detect_minutes() -> f64 {
    40.0
}

impl Expectation {
    pub fn budget(&self) -> Duration {
        minutes(self.budget_minutes)
    }
    pub fn detect_within(&self) -> Duration {
        minutes(self.detect_within_minutes)
    }
}

fn minutes(m: f64) -> Duration {
    Duration::from_secs_f64(m * 60.0)
}

/// `fault` on the drawn share of its calls, when the scenario gives one.
fn on_share(fault: Fault, share_percent: &Option<Span>, rng: &mut ChaCha8Rng) -> Fault {
    match share_percent {
        Some(percent) => fault.on_share(Share::percent(percent.draw(rng))),
        None => fault,
    }
}

/// A modeled quantity a scenario gives as a number or as a range `[low, high]` the
/// seed draws from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub low: f64,
    pub high: f64,
}

impl Span {
    pub fn exactly(value: f64) -> Self {
        Self {
            low: value,
            high: value,
        }
    }

    /// A value drawn uniformly from the span.
    pub fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        if self.low == self.high {
            self.low
        } else {
            rng.random_range(self.low..=self.high)
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}–{}", self.low, self.high)
        }
    }
}

/// As a file writes it: a number, or `[low, high]`.
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.low == self.high {
            serializer.serialize_f64(self.low)
        } else {
            [self.low, self.high].serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpanVisitor;
        impl<'de> Visitor<'de> for SpanVisitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or a range [low, high] to draw from")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Span, E> {
                checked(value, value)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Span, E> {
                checked(value as f64, value as f64)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Span, E> {
                checked(value as f64, value as f64)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Span, A::Error> {
                let low: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let high: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<f64>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                checked(low, high)
            }
        }
        fn checked<E: de::Error>(low: f64, high: f64) -> Result<Span, E> {
            if !(low.is_finite() && high.is_finite()) || low < 0.0 {
                return Err(E::custom(format!(
                    "a time or amount must be a finite number ≥ 0, got [{low}, {high}]"
                )));
            }
            if low > high {
                return Err(E::custom(format!(
                    "a range's low end ({low}) exceeds its high end ({high})"
                )));
            }
            Ok(Span { low, high })
        }
        deserializer.deserialize_any(SpanVisitor)
    }
}

/// The stack's workload during a drill.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkloadSpec {
    tracks_per_minute: u32,
    /// Reads per modeled minute on each of rest-api and graph-api.
    #[serde(default)]
    api_requests_per_minute: u32,
}

impl From<WorkloadSpec> for Workload {
    fn from(spec: WorkloadSpec) -> Self {
        Workload {
            tracks_per_minute: spec.tracks_per_minute,
            api_requests_per_minute: spec.api_requests_per_minute,
        }
    }
}

impl From<Workload> for WorkloadSpec {
    fn from(workload: Workload) -> Self {
        WorkloadSpec {
            tracks_per_minute: workload.tracks_per_minute,
            api_requests_per_minute: workload.api_requests_per_minute,
        }
    }
}

/// One root-cause fault of a scenario, as written in its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// A provider answers every call with this status (an outage).
    ProviderOutage {
        provider: Provider,
        #[serde(default = "default_outage_status")]
        status: u16,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// A provider answers, but only after `delay_seconds` (modeled), on
    /// `share_percent` of its calls (all of them if not given).
    ProviderLatency {
        provider: Provider,
        delay_seconds: Span,
        share_percent: Option<Span>,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// A provider rate-limits the stack: it answers 429 while calls keep coming, and
    /// lifts the limit after `quiet_minutes` without one (its Retry-After).
    RateLimit {
        provider: Provider,
        quiet_minutes: Span,
        at_minutes: Option<Span>,
    },
    /// A provider answers 200 with a payload that fails validation, on
    /// `share_percent` of its calls (all of them if not given).
    BadPayload {
        provider: Provider,
        share_percent: Option<Span>,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// Spotify's answers change for `share_percent` of the catalogue's tracks:
    /// `unanalysed` (no analysis yet: tempo 0, key -1, no ISRC) or `reformatted`
    /// (ISRCs with hyphens, tempos in double time). Every answer is still a 200.
    SpotifyDegraded {
        degradation: Degradation,
        share_percent: Span,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// The gateway loses its route to a provider (everyone else reaches it).
    NetworkPartition {
        provider: Provider,
        at_minutes: Option<Span>,
    },
    /// A provider's breaker stays OPEN until it is reset.
    StuckBreaker {
        provider: Provider,
        at_minutes: Option<Span>,
    },
    /// A scraped site's markup changes: its spider reads `garbage_per_page` cue lines
    /// per page as entries without an artist or a title.
    GarbledTracklists {
        site: SourceSite,
        garbage_per_page: Span,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// A report job's requests to a track API (one in `every`, `count` in all) run a
    /// query that takes `minutes` (modeled) each, holding their connections all that
    /// time.
    RunawayQueries {
        service: TrackApi,
        count: Span,
        every: Span,
        minutes: Span,
        at_minutes: Option<Span>,
    },
    /// A track API leaks the connection of one request in `every`, left idle in its
    /// open transaction. `persists`: the defect is in the service's build, so a
    /// restart brings it back; otherwise what triggered it may pass
    /// (`recovers_after_minutes`), leaving what leaked.
    ConnectionLeak {
        service: TrackApi,
        every: Span,
        #[serde(default)]
        persists: bool,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// The API users' reads rise to `requests_per_minute` on each track API (a
    /// launch, a link on a popular page), until `recovers_after_minutes` if given.
    TrafficSurge {
        requests_per_minute: Span,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// A scraper's spider blocks for good while its process stays up (a restart cures
    /// it).
    SpiderHang {
        site: SourceSite,
        at_minutes: Option<Span>,
    },
    /// A scraped site is down: it answers every request with `status`.
    SiteDown {
        site: SourceSite,
        #[serde(default = "default_outage_status")]
        status: u16,
        at_minutes: Option<Span>,
        recovers_after_minutes: Option<Span>,
    },
    /// Not a fault but the world's own work, as a decoy: a nightly `pg_dump` runs for
    /// `minutes` (a long query under its own application name). A remediation that
    /// terminates it fails the drill.
    BackupRunning {
        minutes: Span,
        at_minutes: Option<Span>,
    },
    /// A service's file log level is left at DEBUG: its log file on the stack's disk
    /// grows by every request and response body, `mib_per_minute` (modeled).
    DebugLogging {
        service: ServiceName,
        mib_per_minute: Span,
        at_minutes: Option<Span>,
    },
    /// A service leaks `mib_per_minute` (modeled) of memory it never gives back, up to
    /// `max_mib`; with `persists` the leak is in its build, so a restart frees the
    /// memory and the leak starts again. A leak of production runs for hours before
    /// it pages: `held_mib` is what it already holds when the drill picks it up (up to
    /// the bound), so that a drill need not wait those hours out.
    MemoryLeak {
        service: ServiceName,
        mib_per_minute: Span,
        max_mib: u64,
        #[serde(default)]
        persists: bool,
        held_mib: Option<Span>,
        at_minutes: Option<Span>,
    },
    /// A build of metadata-enrichment cached each provider's whole payload (audio
    /// analyses of `entry_kib`) for the popular tracks, which no build reads back:
    /// Redis holds `held_mib` of them, beside the live answers, for the cache's TTL.
    CacheBloat {
        held_mib: Span,
        entry_kib: Span,
        at_minutes: Option<Span>,
    },
    /// The backup job's retention stopped `nights` nights ago: one `*.sql.gz` of
    /// `mib` per night is still on the stack's disk. A remediation that deletes one
    /// of the last seven days' fails the drill (they are the only copies).
    BackupsPiledUp {
        nights: Span,
        mib: Span,
        at_minutes: Option<Span>,
    },
    /// The stack's disk (logs, backups) fills up. Docker backend only.
    DiskFill { at_minutes: Option<Span> },
    /// api-gateway-internal is disconnected from the providers' network. Docker
    /// backend only.
    GatewayDisconnect { at_minutes: Option<Span> },
}

fn default_outage_status() -> u16 {
    503
}

/// A twin service by its compose name (`rest-api`), as scenario files name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ServiceName(Service);

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let service: Service = name.parse().map_err(|e| format!("{e}"))?;
        if Service::TWIN.contains(&service) {
            Ok(ServiceName(service))
        } else {
            Err(format!(
                "{service} is not one of the twin's services (it writes no log file)"
            ))
        }
    }
}

impl Serialize for ServiceName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl ServiceName {
    pub fn service(self) -> Service {
        self.0
    }
}

/// A service with a connection pool, as scenario files name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrackApi {
    RestApi,
    GraphApi,
}

impl TrackApi {
    pub fn service(self) -> Service {
        match self {
            TrackApi::RestApi => Service::RestApi,
            TrackApi::GraphApi => Service::GraphApi,
        }
    }
}

/// One fault of a drill, with its times drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledFault {
    pub fault: Fault,
    /// When (modeled, after the drill begins) it strikes.
    pub at: Duration,
    /// When (modeled, after it struck) the world ends it, if it does.
    pub recovers_after: Option<Duration>,
}

impl FaultSpec {
    fn at(&self) -> Option<Span> {
        match self {
            FaultSpec::ProviderOutage { at_minutes, .. }
            | FaultSpec::ProviderLatency { at_minutes, .. }
            | FaultSpec::RateLimit { at_minutes, .. }
            | FaultSpec::BadPayload { at_minutes, .. }
            | FaultSpec::SpotifyDegraded { at_minutes, .. }
            | FaultSpec::NetworkPartition { at_minutes, .. }
            | FaultSpec::StuckBreaker { at_minutes, .. }
            | FaultSpec::GarbledTracklists { at_minutes, .. }
            | FaultSpec::RunawayQueries { at_minutes, .. }
            | FaultSpec::ConnectionLeak { at_minutes, .. }
            | FaultSpec::TrafficSurge { at_minutes, .. }
            | FaultSpec::SpiderHang { at_minutes, .. }
            | FaultSpec::SiteDown { at_minutes, .. }
            | FaultSpec::BackupRunning { at_minutes, .. }
            | FaultSpec::DebugLogging { at_minutes, .. }
            | FaultSpec::MemoryLeak { at_minutes, .. }
            | FaultSpec::CacheBloat { at_minutes, .. }
            | FaultSpec::BackupsPiledUp { at_minutes, .. }
            | FaultSpec::DiskFill { at_minutes }
            | FaultSpec::GatewayDisconnect { at_minutes } => *at_minutes,
        }
    }

    fn recovers_after(&self) -> Option<Span> {
        match self {
            FaultSpec::ProviderOutage {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::ProviderLatency {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::BadPayload {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::SpotifyDegraded {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::GarbledTracklists {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::ConnectionLeak {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::TrafficSurge {
                recovers_after_minutes,
                ..
            }
            | FaultSpec::SiteDown {
                recovers_after_minutes,
                ..
            } => *recovers_after_minutes,
            FaultSpec::RateLimit { .. }
            | FaultSpec::RunawayQueries { .. }
            | FaultSpec::SpiderHang { .. }
            | FaultSpec::BackupRunning { .. }
            | FaultSpec::DebugLogging { .. }
            | FaultSpec::MemoryLeak { .. }
            | FaultSpec::CacheBloat { .. }
            | FaultSpec::BackupsPiledUp { .. }
            | FaultSpec::NetworkPartition { .. }
            | FaultSpec::StuckBreaker { .. }
            | FaultSpec::DiskFill { .. }
            | FaultSpec::GatewayDisconnect { .. } => None,
        }
    }

    /// The fault with its amounts drawn from `rng`.
    fn fault(&self, rng: &mut ChaCha8Rng) -> Fault {
        match self {
            FaultSpec::ProviderOutage {
                provider, status, ..
            } => Fault::provider(*provider).status(*status),
            FaultSpec::ProviderLatency {
                provider,
                delay_seconds,
                share_percent,
                ..
            } => {
                let delay = Duration::from_secs_f64(delay_seconds.draw(rng));
                let fault = Fault::provider(*provider).latency(delay);
                on_share(fault, share_percent, rng)
            }
            FaultSpec::RateLimit {
                provider,
                quiet_minutes,
                ..
            } => Fault::provider(*provider).rate_limit(minutes(quiet_minutes.draw(rng))),
            FaultSpec::BadPayload {
                provider,
                share_percent,
                ..
            } => on_share(Fault::provider(*provider).bad_payload(), share_percent, rng),
            FaultSpec::SpotifyDegraded {
                degradation,
                share_percent,
                ..
            } => Fault::SpotifyDegraded {
                degradation: *degradation,
                share: Share::percent(share_percent.draw(rng)),
            },
            FaultSpec::NetworkPartition { provider, .. } => Fault::network_partition(*provider),
            FaultSpec::StuckBreaker { provider, .. } => Fault::stuck_breaker(*provider),
            FaultSpec::GarbledTracklists {
                site,
                garbage_per_page,
                ..
            } => Fault::garbled_tracklists(*site, garbage_per_page.draw(rng).round() as u32),
            FaultSpec::RunawayQueries {
                service,
                count,
                every,
                minutes: runs_for,
                ..
            } => Fault::RunawayQueries {
                service: service.service(),
                count: count.draw(rng).round() as u32,
                every: (every.draw(rng).round() as u32).max(1),
                runs_for: minutes(runs_for.draw(rng)),
            },
            FaultSpec::ConnectionLeak {
                service,
                every,
                persists,
                ..
            } => Fault::ConnectionLeak {
                service: service.service(),
                every: (every.draw(rng).round() as u32).max(1),
                persists: *persists,
            },
            FaultSpec::TrafficSurge {
                requests_per_minute,
                ..
            } => Fault::TrafficSurge {
                requests_per_minute: requests_per_minute.draw(rng).round() as u32,
            },
            FaultSpec::SpiderHang { site, .. } => Fault::SpiderHang { site: *site },
            FaultSpec::BackupRunning {
                minutes: runs_for, ..
            } => Fault::BackupRunning {
                runs_for: minutes(runs_for.draw(rng)),
            },
            FaultSpec::SiteDown { site, status, .. } => Fault::SiteDown {
                site: *site,
                status: *status,
            },
            FaultSpec::DebugLogging {
                service,
                mib_per_minute,
                ..
            } => Fault::DebugLogging {
                service: service.service(),
                mib_per_minute: mib_per_minute.draw(rng),
            },
            FaultSpec::MemoryLeak {
                service,
                mib_per_minute,
                max_mib,
                persists,
                held_mib,
                ..
            } => Fault::MemoryLeak {
                service: service.service(),
                mib_per_minute: mib_per_minute.draw(rng),
                max_mib: *max_mib,
                persists: *persists,
                held_mib: (held_mib.map_or(0.0, |span| span.draw(rng)) as u64).min(*max_mib),
            },
            FaultSpec::CacheBloat {
                held_mib,
                entry_kib,
                ..
            } => Fault::CacheBloat {
                held_mib: held_mib.draw(rng).round() as u64,
                entry_kib: entry_kib.draw(rng).round().max(1.0) as u64,
            },
            FaultSpec::BackupsPiledUp { nights, mib, .. } => {
                let nights = nights.draw(rng).round().max(1.0) as u32;
                Fault::BackupsPiledUp {
                    sizes: (0..nights)
                        .map(|_| (mib.draw(rng) * f64::from(1 << 20)) as u64)
                        .collect(),
                }
            }
            FaultSpec::DiskFill { .. } => Fault::disk_fill(),
            FaultSpec::GatewayDisconnect { .. } => Fault::gateway_disconnect(),
        }
    }
}

impl Scenario {
    /// How this scenario's stack shares the machine (see [`stack::turn`]).
    pub fn turn(&self) -> TurnKind {
        turn_for(self.scale, &self.workload, &self.faults)
    }

    /// Whether a fault of this scenario fills the stack's disk, which must then be a
    /// size-limited file system of its own for the drill to mean anything.
    pub fn needs_size_limited_disk(&self) -> bool {
        needs_size_limited_disk(&self.faults)
    }

    /// Whether a fault of this scenario fills the stack's memory, which must then be
    /// limited to its budget for the drill to mean anything.
    pub fn needs_memory_limit(&self) -> bool {
        needs_memory_limit(&self.faults)
    }

    /// The faults with every time and amount drawn for `seed`, in the order they
    /// strike (see [`draw`]).
    pub fn schedule(&self, seed: u64) -> Vec<ScheduledFault> {
        draw(&self.faults, seed)
    }
}

/// Above this many requests a real second (both track APIs together), the API users
/// the harness generates take the machine to themselves: a pool drill's traffic surge
/// (450 a modeled minute on each API at a scale of 30, 450 a real second) kept up with
/// its schedule only alone, and a restart under it took five times as long on a busy
/// machine. The steady reads of the pool drills (120 a modeled minute at 30: 120 a
/// real second) cost some 15% of two cores, and share them.
pub(crate) const ALONE_ABOVE_REQUESTS_PER_SECOND: f64 = 200.0;

/// How a stack with this workload and these faults shares the machine (see
/// [`stack::turn`]): alone when the harness generates more API load against it, in
/// real time, than [`ALONE_ABOVE_REQUESTS_PER_SECOND`] (the generator must keep pace
/// with modeled time for the drill to measure the runbook); otherwise one turn.
pub(crate) fn turn_for(scale: f64, workload: &Workload, faults: &[FaultSpec]) -> TurnKind {
    let peak_per_minute = faults
        .iter()
        .filter_map(|fault| match fault {
            FaultSpec::TrafficSurge {
                requests_per_minute,
                ..
            } => Some(requests_per_minute.high),
            _ => None,
        })
        .fold(f64::from(workload.api_requests_per_minute), f64::max);
    // Each of rest-api and graph-api gets the rate; a modeled minute lasts 60 / scale s.
    let per_real_second = 2.0 * peak_per_minute / 60.0 * scale;
    if per_real_second > ALONE_ABOVE_REQUESTS_PER_SECOND {
        TurnKind::Alone
    } else {
        TurnKind::Shared
    }
}

/// Whether one of `faults` fills the stack's disk.
pub(crate) fn needs_size_limited_disk(faults: &[FaultSpec]) -> bool {
    faults.iter().any(|fault| {
        matches!(
            fault,
            FaultSpec::DebugLogging { .. }
                | FaultSpec::BackupsPiledUp { .. }
                | FaultSpec::DiskFill { .. }
        )
    })
}

/// Whether one of `faults` fills the stack's memory.
pub(crate) fn needs_memory_limit(faults: &[FaultSpec]) -> bool {
    faults.iter().any(|fault| {
        matches!(
            fault,
            FaultSpec::MemoryLeak { .. } | FaultSpec::CacheBloat { .. }
        )
    })
}

/// `faults` with every time and amount drawn for `seed`, in the order they strike.
/// Each fault draws from a stream of its own (by its place in the list), so adding a
/// fault does not move the others.
pub(crate) fn draw(faults: &[FaultSpec], seed: u64) -> Vec<ScheduledFault> {
    let mut scheduled: Vec<ScheduledFault> = faults
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64 + 1);
            let at = spec.at().map_or(0.0, |span| span.draw(&mut rng));
            let recovers_after = spec.recovers_after().map(|span| span.draw(&mut rng));
            ScheduledFault {
                fault: spec.fault(&mut rng),
                at: minutes(at),
                recovers_after: recovers_after.map(minutes),
            }
        })
        .collect();
    scheduled.sort_by_key(|s| s.at);
    scheduled
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    runbook: String,
    title: String,
    #[serde(default = "default_scale")]
    scale: f64,
    workload: Option<WorkloadSpec>,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultSpec>,
    expect: Expectation,
}

pub(crate) fn default_scale() -> f64 {
    60.0
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: PathBuf, message: String },
    #[error("no scenario '{id}'; known scenarios: {known}")]
    Unknown { id: String, known: String },
}

/// Parses one scenario from its text; `id` and `path` name it in errors. The runbook
/// it names must exist and know its expected diagnosis.
pub fn parse(id: &str, path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let file: ScenarioFile = from_toml(path, text)?;
    let semantic = |message: String| ScenarioError::Semantic {
        path: path.to_owned(),
        message,
    };
    if !(1.0..=100_000.0).contains(&file.scale) {
        return Err(semantic(format!(
            "scale must be between 1 and 100000, got {}",
            file.scale
        )));
    }
    if file.faults.is_empty() {
        return Err(semantic("a scenario needs at least one [[fault]]".into()));
    }
    if !(file.expect.budget_minutes > 0.0 && file.expect.budget_minutes.is_finite()) {
        return Err(semantic("expect.budget_minutes must be positive".into()));
    }
    if !(file.expect.detect_within_minutes > 0.0 && file.expect.detect_within_minutes.is_finite()) {
        return Err(semantic(
            "expect.detect_within_minutes must be positive".into(),
        ));
    }
    let runbook = runbooks::by_id(&file.runbook).map_err(|e| semantic(e.to_string()))?;
    let known = runbook.scenarios();
    if !known.iter().any(|s| s.slug == file.expect.diagnosis) {
        return Err(semantic(format!(
            "{} has no scenario '{}'; its scenarios: {}",
            file.runbook,
            file.expect.diagnosis,
            known.iter().map(|s| s.slug).collect::<Vec<_>>().join(", ")
        )));
    }
    if file.expect.alert != runbook.meta().rule.name {
        return Err(semantic(format!(
            "{} is the runbook for {}, not {}",
            file.runbook,
            runbook.meta().rule.name,
            file.expect.alert
        )));
    }
    let workload = file.workload.map_or_else(Workload::default, Workload::from);
    Ok(Scenario {
        id: id.to_owned(),
        runbook: file.runbook,
        title: file.title,
        scale: file.scale,
        workload,
        faults: file.faults,
        expect: file.expect,
        path: path.to_owned(),
    })
}

/// The scenario as a file [`parse`] reads back to the same scenario: how a
/// generated or edited scenario is written out for `drill run --scenario-file`.
pub fn to_toml(scenario: &Scenario) -> Result<String, toml::ser::Error> {
    toml::to_string(&ScenarioFile {
        runbook: scenario.runbook.clone(),
        title: scenario.title.clone(),
        scale: scenario.scale,
        workload: Some(scenario.workload.into()),
        faults: scenario.faults.clone(),
        expect: scenario.expect.clone(),
    })
}

/// `text` read as `T`, a mistake reported with the file, the line and what is wrong.
pub(crate) fn from_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ScenarioError> {
    toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((1, 1));
        ScenarioError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The project's `scenarios/` directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("DRILL_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"))
}

/// Reads and parses one scenario file; its id is `<parent dir>/<file stem>`.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&file_id(path), path, &text)
}

/// The id of a file's scenario or schedule: `<parent dir>/<file stem>`.
pub(crate) fn file_id(path: &Path) -> String {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}/{stem}", name(path.parent()))
}

/// Every scenario under `dir` (`<runbook>/<name>.toml`), sorted by id.
pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut scenarios = Vec::new();
    let read_dir = |path: &Path| {
        std::fs::read_dir(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })
    };
    for runbook_dir in read_dir(dir)? {
        let runbook_dir = runbook_dir
            .map_err(|source| ScenarioError::Read {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if !runbook_dir.is_dir() {
            continue;
        }
        for file in read_dir(&runbook_dir)? {
            let path = file
                .map_err(|source| ScenarioError::Read {
                    path: runbook_dir.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "toml") {
                scenarios.push(load_file(&path)?);
            }
        }
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scenarios)
}

/// The scenarios a selector names: `all`, `dlq-overflow` (all of it) or
/// `dlq-overflow/a-breaker-errors` (one).
pub fn select(all: Vec<Scenario>, selector: &str) -> Result<Vec<Scenario>, ScenarioError> {
    if selector == "all" {
        return Ok(all);
    }
    let known = all
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let chosen: Vec<Scenario> = all
        .iter()
        .filter(|s| s.id == selector || s.runbook == selector)
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(ScenarioError::Unknown {
            id: selector.to_owned(),
            known,
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
runbook = "dlq-overflow"
title = "Spotify outage floods the DLQ"
scale = 60

[workload]
tracks_per_minute = 30

[[fault]]
kind = "provider-outage"
provider = "spotify"
at_minutes = [1, 3]
recovers_after_minutes = [20, 30]

[expect]
alert = "DLQDepthCritical"
diagnosis = "circuit-breaker-errors"
budget_minutes = 15
"#;

    fn good() -> Scenario {
        parse("dlq-overflow/a", Path::new("a.toml"), GOOD).unwrap()
    }

    #[test]
    fn a_scenario_file_parses_into_faults_workload_and_expectations() {
        let scenario = good();
        assert_eq!(scenario.workload.tracks_per_minute, 30);
        assert_eq!(
            scenario.faults[0],
            FaultSpec::ProviderOutage {
                provider: Provider::Spotify,
                status: 503,
                at_minutes: Some(Span {
                    low: 1.0,
                    high: 3.0
                }),
                recovers_after_minutes: Some(Span {
                    low: 20.0,
                    high: 30.0
                }),
            }
        );
        assert_eq!(scenario.expect.diagnosis, "circuit-breaker-errors");
        assert_eq!(scenario.expect.budget(), Duration::from_secs(900));
    }

    #[test]
    fn times_are_drawn_from_their_ranges_by_the_seed() {
        let scenario = good();
        let a = scenario.schedule(7);
        assert_eq!(a, scenario.schedule(7), "the same seed, the same times");
        let at = a[0].at.as_secs_f64() / 60.0;
        assert!((1.0..=3.0).contains(&at), "{at}");
        let recovers = a[0].recovers_after.unwrap().as_secs_f64() / 60.0;
        assert!((20.0..=30.0).contains(&recovers), "{recovers}");
        let onsets: std::collections::BTreeSet<u64> = (0..20)
            .map(|seed| scenario.schedule(seed)[0].at.as_millis() as u64)
            .collect();
        assert!(onsets.len() > 10, "seeds draw different onsets: {onsets:?}");
    }

    #[test]
    fn a_mistyped_field_is_reported_with_file_and_line() {
        let text = GOOD.replace("provider = \"spotify\"", "provder = \"spotify\"");
        let error = parse("x", Path::new("scenarios/dlq-overflow/a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("scenarios/dlq-overflow/a.toml:9:"),
            "{error}"
        );
        assert!(error.contains("provder"), "{error}");
    }

    #[test]
    fn a_backwards_or_negative_range_is_refused_with_its_line() {
        let text = GOOD.replace("[20, 30]", "[30, 20]");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("a.toml:9:"), "{error}");
        assert!(
            error.contains("low end (30) exceeds its high end (20)"),
            "{error}"
        );
        let text = GOOD.replace("[1, 3]", "-2");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("≥ 0"), "{error}");
    }

    #[test]
    fn a_fault_the_runbook_must_remove_cannot_recover_on_a_schedule() {
        let text = GOOD.replace(
            "kind = \"provider-outage\"",
            "kind = \"rate-limit\"\nquiet_minutes = 10",
        );
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown field `recovers_after_minutes`"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_provider_is_named() {
        let text = GOOD.replace("\"spotify\"", "\"deezer\"");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("deezer"), "{error}");
    }

    #[test]
    fn an_unknown_diagnosis_lists_the_runbooks_scenarios() {
        let text = GOOD.replace("circuit-breaker-errors", "A");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("dlq-overflow has no scenario 'A'; its scenarios: circuit-breaker-errors, timeout-errors"),
            "{error}"
        );
    }

    #[test]
    fn a_scenario_without_faults_is_refused() {
        let text = "runbook = \"dlq-overflow\"\ntitle = \"t\"\n[expect]\nalert = \"DLQDepthCritical\"\ndiagnosis = \"invalid-data\"\nbudget_minutes = 1\n";
        let error = parse("x", Path::new("a.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("at least one [[fault]]"), "{error}");
    }

    #[test]
    fn synthetic_dlq_rows_are_not_a_scenario_fault() {
        // A scenario injects causes; a DLQ flood would be its own answer.
        let text = GOOD.replace(
            "kind = \"provider-outage\"\nprovider = \"spotify\"",
            "kind = \"dlq-flood\"\nmessages = 1500",
        );
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown variant `dlq-flood`"), "{error}");
    }

    #[test]
    fn container_faults_parse_with_their_timing_and_no_provider() {
        let head = GOOD.split("[[fault]]").next().unwrap();
        let expect = GOOD.split("[expect]").nth(1).unwrap();
        let text =
            format!("{head}[[fault]]\nkind = \"disk-fill\"\nat_minutes = 2\n\n[expect]{expect}");
        let scenario = parse("x", Path::new("a.toml"), &text).unwrap();
        assert_eq!(scenario.schedule(1)[0].at, Duration::from_secs(120));
        let text = text.replace("at_minutes = 2", "provider = \"spotify\"");
        let error = parse("x", Path::new("a.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `provider`"), "{error}");
    }

    #[test]
    fn a_memory_leak_parses_with_its_bound_and_a_leak_in_the_build() {
        let head = GOOD.split("[[fault]]").next().unwrap();
        let expect = GOOD.split("[expect]").nth(1).unwrap();
        let text = format!(
            "{head}[[fault]]\nkind = \"memory-leak\"\nservice = \"rest-api\"\n\
             mib_per_minute = [40, 60]\nmax_mib = 900\npersists = true\n\
             held_mib = [600, 700]\n\n[expect]{expect}"
        );
        let scenario = parse("x", Path::new("a.toml"), &text).unwrap();
        let Fault::MemoryLeak {
            service,
            mib_per_minute,
            max_mib,
            persists,
            held_mib,
        } = &scenario.schedule(1)[0].fault
        else {
            panic!("a memory leak: {:?}", scenario.faults);
        };
        assert_eq!(*service, wire::Service::RestApi);
        assert!((40.0..=60.0).contains(mib_per_minute), "{mib_per_minute}");
        assert_eq!((*max_mib, *persists), (900, true));
        // What the leak held before the drill picked it up.
        assert!((600..=700).contains(held_mib), "{held_mib}");
        // The bound keeps a forgotten leak from taking the machine: it is required.
        let error = parse(
            "x",
            Path::new("a.toml"),
            &text.replace("max_mib = 900\n", ""),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("missing field `max_mib`"), "{error}");
    }

    #[test]
    fn the_shipped_scenarios_all_parse() {
        let scenarios = load_all(&default_dir()).expect("scenarios/ parses");
        assert!(scenarios.iter().any(|s| s.runbook == "dlq-overflow"));
    }

    #[test]
    fn only_a_traffic_surge_takes_the_machine_to_itself() {
        let turns: std::collections::BTreeMap<String, TurnKind> = shipped()
            .into_iter()
            .filter(|s| s.runbook == "db-connection-pool" || s.runbook == "dlq-overflow")
            .map(|s| (s.id.clone(), s.turn()))
            .collect();
        assert_eq!(
            turns["db-connection-pool/c-need-more-connections"],
            TurnKind::Alone,
            "450 reads a modeled minute on each API at 30: {turns:?}"
        );
        for steady in [
            "db-connection-pool/a-long-running-queries",
            "db-connection-pool/b-connection-leak",
            "db-connection-pool/b-leak-persists",
            "dlq-overflow/a-breaker-errors",
        ] {
            assert_eq!(turns[steady], TurnKind::Shared, "{steady}: {turns:?}");
        }
        // The same steady reads at four times the scale are four times the requests.
        let mut faster = select(shipped(), "db-connection-pool/a-long-running-queries")
            .expect("pool A ships")
            .remove(0);
        faster.scale *= 4.0;
        assert_eq!(faster.turn(), TurnKind::Alone);
    }

    #[test]
    fn selecting_an_unknown_scenario_lists_the_known_ones() {
        let error = select(vec![good()], "dlq-overflow/z")
            .unwrap_err()
            .to_string();
        assert!(error.contains("dlq-overflow/a"), "{error}");
    }

    /// The scenario files of this repository, parsed.
    fn shipped() -> Vec<Scenario> {
        load_all(&default_dir()).expect("the shipped scenario files parse")
    }

    /// `scenario` written out by [`to_toml`] and parsed back.
    fn round_trip(scenario: &Scenario) -> Scenario {
        let text = to_toml(scenario).expect("a scenario serialises");
        parse(&scenario.id, &scenario.path, &text)
            .unwrap_or_else(|e| panic!("{e}; the text written was:\n{text}"))
    }

    #[test]
    fn every_shipped_scenario_round_trips_through_its_file_form() {
        let scenarios = shipped();
        assert!(scenarios.len() >= 20, "{} scenarios", scenarios.len());
        for scenario in &scenarios {
            assert_eq!(&round_trip(scenario), scenario, "{}", scenario.id);
        }
    }

    /// A time a file gives: a number, or a range.
    fn span() -> impl proptest::strategy::Strategy<Value = Span> {
        use proptest::prelude::*;
        prop_oneof![
            (0.0f64..10_000.0).prop_map(Span::exactly),
            (0.0f64..10_000.0, 0.0f64..10_000.0).prop_map(|(a, b)| Span {
                low: a.min(b),
                high: a.max(b),
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 64,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Any shipped scenario with its scale, workload, title, expectations and every
        /// fault's onset and recovery replaced by generated values still round-trips.
        #[test]
        fn generated_scenarios_round_trip_through_the_parser(
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            scale in 1.0f64..100_000.0,
            tracks_per_minute in 0u32..2_000,
            api_requests_per_minute in 0u32..2_000,
            title in "[ -~é—–\t]{1,60}",
            budget in 0.01f64..10_000.0,
            detect in 0.01f64..10_000.0,
            over_target in proptest::option::of("[ -~\n]{0,80}"),
            onsets in proptest::collection::vec(proptest::option::of(span()), 4),
            recoveries in proptest::collection::vec(proptest::option::of(span()), 4),
        ) {
            let scenarios = shipped();
            let mut scenario = scenarios[pick.index(scenarios.len())].clone();
            scenario.scale = scale;
            scenario.title = title;
            scenario.workload = Workload { tracks_per_minute, api_requests_per_minute };
            scenario.expect.budget_minutes = budget;
            scenario.expect.detect_within_minutes = detect;
            scenario.expect.over_target = over_target;
            for (n, fault) in scenario.faults.iter_mut().enumerate() {
                retime(fault, onsets[n % 4], recoveries[n % 4]);
            }
            proptest::prop_assert_eq!(round_trip(&scenario), scenario);
        }
    }

    /// Sets a fault's onset, and its recovery where its kind has one.
    fn retime(fault: &mut FaultSpec, onset: Option<Span>, recovery: Option<Span>) {
        let mut value = toml::Value::try_from(&*fault).expect("a fault serialises");
        let table = value.as_table_mut().expect("a fault is a table");
        for (key, span) in [("at_minutes", onset), ("recovers_after_minutes", recovery)] {
            let has_it = key == "at_minutes" || fault_recovers(table);
            match span {
                Some(span) if has_it => {
                    // Written by hand, not by the serialiser under test.
                    let value = if span.low == span.high {
                        toml::Value::Float(span.low)
                    } else {
                        toml::Value::Array(vec![
                            toml::Value::Float(span.low),
                            toml::Value::Float(span.high),
                        ])
                    };
                    table.insert(key.into(), value);
                }
                _ => {
                    table.remove(key);
                }
            }
        }
        *fault = value.try_into().expect("a retimed fault is a fault");
    }

    /// Whether the fault's kind takes `recovers_after_minutes`.
    fn fault_recovers(table: &toml::Table) -> bool {
        let mut probe = table.clone();
        probe.insert("recovers_after_minutes".into(), toml::Value::Float(1.0));
        toml::Value::Table(probe).try_into::<FaultSpec>().is_ok()
    }
}
