//! A PostgreSQL pool that behaves, and reports itself, like SongNodes' SQLAlchemy
//! `QueuePool`: `pool_size` persistent connections plus `max_overflow` extra ones,
//! a bounded wait for a connection, and a `connection_leak` fault.
//!
//! The Connection Pool Exhaustion runbook diagnoses from two things this module
//! produces: the pool figures (`/health`, `/metrics`, the periodic `pool status:` log
//! line) and SQLAlchemy's timeout message in the logs. Both are computed from the
//! sqlx pool itself (`size − idle` connections are checked out), so a leak is a real
//! leak: connections held in memory, visible in `pg_stat_activity` under the
//! service's `application_name`, freed only by a restart or a chaos reset.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use wire::Clock;
use wire::api::PoolUsage;

use crate::chaos::Chaos;

/// The chaos switch that keeps requests' connections checked out, in an open
/// transaction (`{"every": N}`: one request in N; every request without it).
pub const LEAK: &str = "connection_leak";
/// The chaos switch that makes requests run a runaway query
/// (`{"count": N, "minutes": M, "every": K}`: one request in K, N of them in all).
pub const SLOW_QUERIES: &str = "slow_queries";
/// Modeled time a request waits for a connection before giving up (503).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The least real time a request waits, however fast the clock: opening a fresh
/// connection takes milliseconds, and a busy CI machine must not see a healthy pool
/// as exhausted.
const MIN_REAL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// Above this usage the service reports itself degraded (the alert's threshold).
pub const DEGRADED_ABOVE: f64 = 0.8;

/// Why a request got no connection.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// SQLAlchemy's wording, which the runbook greps for.
    #[error(
        "QueuePool limit of size {size} overflow {max_overflow} reached, connection timed out, timeout {timeout_secs:.2}"
    )]
    Exhausted {
        size: u32,
        max_overflow: u32,
        timeout_secs: f64,
    },
    #[error("cannot get a database connection: {0}")]
    Database(#[source] sqlx::Error),
}

/// The sizing a service was started with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizing {
    pub size: u32,
    pub max_overflow: u32,
}

impl Sizing {
    /// How many connections may be open at once.
    pub fn capacity(self) -> u32 {
        self.size.saturating_add(self.max_overflow)
    }
}

/// Pool usage from the pool's counts: `open` connections of which `idle` are unused.
pub fn usage(sizing: Sizing, open: u32, idle: u32) -> PoolUsage {
    let checked_out = open.saturating_sub(idle);
    let capacity = sizing.capacity();
    let usage = if capacity == 0 {
        0.0
    } else {
        (f64::from(checked_out) / f64::from(capacity)).min(1.0)
    };
    PoolUsage {
        size: sizing.size,
        max_overflow: sizing.max_overflow,
        checked_out,
        idle,
        usage,
    }
}

/// Whether a service at this usage reports itself degraded.
pub fn is_degraded(usage: &PoolUsage) -> bool {
    usage.usage > DEGRADED_ABOVE
}

/// The periodic log line: `pool status: size=10 max_overflow=20 checked_out=3 idle=2 usage=10%`.
pub fn status_line(usage: &PoolUsage) -> String {
    format!(
        "pool status: size={} max_overflow={} checked_out={} idle={} usage={:.0}%",
        usage.size,
        usage.max_overflow,
        usage.checked_out,
        usage.idle,
        usage.usage * 100.0
    )
}

struct Inner {
    pool: PgPool,
    sizing: Sizing,
    /// Real time to wait for a connection, and the modeled figure it stands for.
    acquire_timeout: Duration,
    acquire_timeout_modeled: Duration,
    chaos: Chaos,
    leaked: Mutex<Vec<PoolConnection<Postgres>>>,
    timeouts: AtomicU64,
    /// Requests taken while the leak switch was on, to leak one in `every`.
    leak_candidates: AtomicU64,
    /// Requests seen while the slow-query switch was on, since the last reset.
    runaways: AtomicU64,
}

#[derive(serde::Deserialize)]
struct LeakParams {
    #[serde(default = "one")]
    every: u64,
}

fn one() -> u64 {
    1
}

#[derive(serde::Deserialize)]
struct SlowQueryParams {
    count: u64,
    minutes: f64,
    /// One request in `every` (every request without it).
    #[serde(default = "one")]
    every: u64,
}

/// The service's pool. Cheap to clone.
#[derive(Clone)]
pub struct TrackedPool(Arc<Inner>);

impl TrackedPool {
    /// Wraps `pool` (opened with `sizing.capacity()` connections at most).
    pub fn new(pool: PgPool, sizing: Sizing, clock: Clock, chaos: Chaos) -> Self {
        let pool = TrackedPool(Arc::new(Inner {
            pool,
            sizing,
            acquire_timeout: clock.to_real(ACQUIRE_TIMEOUT).max(MIN_REAL_ACQUIRE_TIMEOUT),
            acquire_timeout_modeled: ACQUIRE_TIMEOUT,
            chaos: chaos.clone(),
            leaked: Mutex::default(),
            timeouts: AtomicU64::new(0),
            leak_candidates: AtomicU64::new(0),
            runaways: AtomicU64::new(0),
        }));
        pool.release_leaks_on_reset(chaos);
        pool
    }

    /// A connection for one request, or [`PoolError::Exhausted`] once the wait runs out.
    pub async fn acquire(&self) -> Result<Lease, PoolError> {
        let inner = &self.0;
        let acquired = tokio::time::timeout(inner.acquire_timeout, inner.pool.acquire()).await;
        match acquired {
            Ok(Ok(conn)) => Ok(Lease {
                conn,
                leak: self.leaks_this_one(),
            }),
            Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => {
                inner.timeouts.fetch_add(1, Ordering::Relaxed);
                let error = PoolError::Exhausted {
                    size: inner.sizing.size,
                    max_overflow: inner.sizing.max_overflow,
                    timeout_secs: inner.acquire_timeout_modeled.as_secs_f64(),
                };
                let usage = self.usage();
                tracing::error!(
                    "{error} (db pool checked_out={} of {})",
                    usage.checked_out,
                    inner.sizing.capacity()
                );
                Err(error)
            }
            Ok(Err(error)) => Err(PoolError::Database(error)),
        }
    }

    /// Whether the request being served now leaks its connection.
    fn leaks_this_one(&self) -> bool {
        let Some(params) = self.0.chaos.get(LEAK) else {
            return false;
        };
        let every = serde_json::from_value::<LeakParams>(params)
            .map(|p| p.every.max(1))
            .unwrap_or(1);
        self.0.leak_candidates.fetch_add(1, Ordering::Relaxed) % every == every - 1
    }

    /// How long this request's query runs away for, if it is one of the runaway
    /// queries the `slow_queries` switch asks for.
    pub fn runaway_query(&self) -> Option<Duration> {
        let params: SlowQueryParams = serde_json::from_value(self.0.chaos.get(SLOW_QUERIES)?)
            .inspect_err(|e| tracing::error!("slow_queries switch has bad parameters: {e}"))
            .ok()?;
        let every = params.every.max(1);
        let seen = self.0.runaways.fetch_add(1, Ordering::Relaxed);
        (seen % every == every - 1 && seen / every < params.count && params.minutes > 0.0)
            .then(|| Duration::from_secs_f64(params.minutes * 60.0))
    }

    pub fn usage(&self) -> PoolUsage {
        let pool = &self.0.pool;
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        usage(self.0.sizing, pool.size(), idle)
    }

    /// Requests that found no connection since the start.
    pub fn timeouts(&self) -> u64 {
        self.0.timeouts.load(Ordering::Relaxed)
    }

    /// Ends a request's use of its connection: back to the pool, or, under the
    /// `connection_leak` fault, into a stash it never leaves.
    pub fn release(&self, lease: Lease) {
        if lease.leak {
            self.stash(lease.conn);
        } else {
            drop(lease.conn);
            self.trim_soon();
        }
    }

    /// Closes idle connections beyond `pool_size`, as QueuePool closes an overflow
    /// connection when it is checked in: the overflow does not outlive the burst.
    /// Runs in the background because sqlx returns a connection to its idle queue
    /// asynchronously; the periodic status tick trims too, to catch any it missed.
    pub fn trim_soon(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.clone();
            runtime.spawn(async move { pool.trim_idle().await });
        }
    }

    /// Closes idle connections until at most `pool_size` remain.
    pub async fn trim_idle(&self) {
        let pool = &self.0.pool;
        while pool.num_idle() > self.0.sizing.size as usize {
            // `try_acquire` never takes a connection a waiting request is owed.
            let Some(conn) = pool.try_acquire() else {
                break;
            };
            if let Err(error) = conn.close().await {
                tracing::debug!("closing an overflow connection: {error}");
            }
        }
    }

    fn stash(&self, conn: PoolConnection<Postgres>) {
        match self.0.leaked.lock() {
            Ok(mut leaked) => leaked.push(conn),
            // A poisoned stash cannot hold more; the connection simply goes back.
            Err(_) => drop(conn),
        }
    }

    /// A chaos reset closes the leaked connections (their transactions roll back), as
    /// a restart would.
    fn release_leaks_on_reset(&self, chaos: Chaos) {
        let pool = self.clone();
        let mut resets = chaos.resets();
        tokio::spawn(async move {
            while resets.changed().await.is_ok() {
                pool.0.runaways.store(0, Ordering::Relaxed);
                pool.0.leak_candidates.store(0, Ordering::Relaxed);
                let leaked = match pool.0.leaked.lock() {
                    Ok(mut leaked) => std::mem::take(&mut *leaked),
                    Err(_) => continue,
                };
                if !leaked.is_empty() {
                    tracing::info!("chaos reset: releasing {} leaked connections", leaked.len());
                }
                for conn in leaked {
                    if let Err(error) = conn.close().await {
                        tracing::debug!("closing a leaked connection: {error}");
                    }
                }
                // Let sqlx put them back in its idle queue before trimming it.
                tokio::task::yield_now().await;
                pool.trim_soon();
            }
        });
    }
}

/// One request's connection, to be handed back with [`TrackedPool::release`]. One
/// dropped without release (a cancelled request) simply returns to the pool.
pub struct Lease {
    conn: PoolConnection<Postgres>,
    /// Whether this request leaks its connection (the `connection_leak` switch).
    leak: bool,
}

impl Lease {
    /// Whether the request will never hand its connection back.
    pub fn leaks(&self) -> bool {
        self.leak
    }
}

impl Deref for Lease {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONGNODES: Sizing = Sizing {
        size: 10,
        max_overflow: 20,
    };

    #[test]
    fn checked_out_is_open_minus_idle_over_size_plus_overflow() {
        let usage = usage(SONGNODES, 5, 2);
        assert_eq!(usage.checked_out, 3);
        assert_eq!(usage.idle, 2);
        assert!((usage.usage - 0.1).abs() < 1e-9);
        assert!(!is_degraded(&usage));
    }

    #[test]
    fn a_full_pool_is_degraded_and_never_above_one() {
        let full = usage(SONGNODES, 30, 0);
        assert_eq!(full.usage, 1.0);
        assert!(is_degraded(&full));
        // 24 of 30 is exactly the threshold: not yet degraded; 25 is.
        assert!(!is_degraded(&usage(SONGNODES, 24, 0)));
        assert!(is_degraded(&usage(SONGNODES, 25, 0)));
    }

    #[test]
    fn counts_that_race_do_not_underflow() {
        let usage = usage(SONGNODES, 2, 3);
        assert_eq!(usage.checked_out, 0);
        assert_eq!(usage.usage, 0.0);
    }

    #[test]
    fn the_status_line_is_what_the_runbook_greps() {
        let line = status_line(&usage(SONGNODES, 5, 2));
        assert_eq!(
            line,
            "pool status: size=10 max_overflow=20 checked_out=3 idle=2 usage=10%"
        );
    }

    #[test]
    fn the_timeout_message_is_sqlalchemys() {
        let error = PoolError::Exhausted {
            size: 10,
            max_overflow: 20,
            timeout_secs: 5.0,
        };
        assert!(
            error.to_string().starts_with(
                "QueuePool limit of size 10 overflow 20 reached, connection timed out"
            )
        );
    }
}
