//! The Redis cache of provider answers.
//!
//! A hit saves a provider call; that is why the Low Success Rate runbook warms it
//! and raises its TTL. Redis being slow or down must never fail an enrichment (the
//! Memory runbook even `FLUSHDB`s it), so every operation is bounded by a short real
//! deadline and any error is a miss, logged as a warning at most every few seconds.
//! TTLs are modeled: `cache_ttl_hours` shrinks by the clock's scale (`PX`, ≥ 1 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use wire::Clock;

/// Real time a single Redis operation may take before it counts as a miss.
const OP_DEADLINE: Duration = Duration::from_millis(300);
/// Real time between two "Redis unavailable" warnings.
const WARN_EVERY_MS: i64 = 5_000;

/// The cache; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    redis: Option<ConnectionManager>,
    clock: Clock,
    last_warning_ms: Arc<AtomicI64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("REDIS_URL '{url}' is not a Redis URL: {source}")]
    BadUrl {
        url: String,
        source: redis::RedisError,
    },
}

impl Cache {
    /// A cache on `url`, connected lazily (Redis may start after us or be down), or a
    /// cache that always misses when no URL is given.
    pub fn new(url: Option<&str>, clock: Clock) -> Result<Self, CacheError> {
        let redis = match url {
            None => {
                tracing::warn!("REDIS_URL not set: enrichment runs without a cache");
                None
            }
            Some(url) => {
                let bad = |source| CacheError::BadUrl {
                    url: url.to_owned(),
                    source,
                };
                let client = redis::Client::open(url).map_err(bad)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(OP_DEADLINE))
                    .set_response_timeout(Some(OP_DEADLINE))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Some(ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?)
            }
        };
        Ok(Self {
            redis,
            clock,
            last_warning_ms: Arc::new(AtomicI64::new(i64::MIN)),
        })
    }

    /// The cached answer under `key`; `None` on a miss or any Redis trouble.
    pub async fn get(&self, key: &str) -> Option<String> {
        let mut redis = self.redis.clone()?;
        match tokio::time::timeout(OP_DEADLINE, redis.get::<_, Option<String>>(key)).await {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                self.warn(&format!("cache read failed, treating as a miss: {error}"));
                None
            }
            Err(_) => {
                self.warn("cache read timed out, treating as a miss");
                None
            }
        }
    }

    /// Stores `value` under `key` for a modeled `ttl`.
    pub async fn put(&self, key: &str, value: &str, ttl: Duration) {
        let Some(mut redis) = self.redis.clone() else {
            return;
        };
        let px = px_millis(self.clock.to_real(ttl));
        match tokio::time::timeout(OP_DEADLINE, redis.pset_ex::<_, _, ()>(key, value, px)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.warn(&format!("cache write failed: {error}")),
            Err(_) => self.warn("cache write timed out"),
        }
    }

    /// Deletes every key matching `pattern` (`SCAN`, then `UNLINK`), returning how
    /// many; 0 without Redis. Not bounded by the per-operation deadline: a chaos
    /// switch's clean-up, never on an enrichment's path.
    pub async fn unlink_matching(&self, pattern: &str) -> u64 {
        let Some(mut redis) = self.redis.clone() else {
            return 0;
        };
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let scanned: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut redis)
                .await;
            let (next, keys) = match scanned {
                Ok(page) => page,
                Err(error) => {
                    self.warn(&format!("scanning for {pattern}: {error}"));
                    return removed;
                }
            };
            if !keys.is_empty() {
                match redis.unlink::<_, u64>(&keys).await {
                    Ok(n) => removed += n,
                    Err(error) => self.warn(&format!("deleting {pattern}: {error}")),
                }
            }
            if next == 0 {
                return removed;
            }
            cursor = next;
        }
    }

    fn warn(&self, what: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("redis unavailable: {what}");
        }
    }
}

/// A real TTL in whole milliseconds, at least 1 (Redis refuses `PX 0`).
pub fn px_millis(real: Duration) -> u64 {
    u64::try_from(real.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_shrink_by_the_scale_but_never_to_zero() {
        let clock = Clock::new(0, 3600.0).unwrap();
        // 168 modeled hours at 3600× is 168 real seconds.
        assert_eq!(
            px_millis(clock.to_real(Duration::from_secs(168 * 3600))),
            168_000
        );
        assert_eq!(px_millis(Duration::from_micros(10)), 1);
    }

    #[tokio::test]
    async fn a_dead_redis_is_a_miss_not_an_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let cache = Cache::new(
            Some(&format!("redis://127.0.0.1:{port}")),
            Clock::real_time(),
        )
        .unwrap();
        assert_eq!(cache.get("enrich:spotify:search:a|b").await, None);
        cache.put("k", "v", Duration::from_secs(60)).await;
    }

    #[tokio::test]
    async fn no_url_means_no_cache() {
        let cache = Cache::new(None, Clock::real_time()).unwrap();
        assert_eq!(cache.get("k").await, None);
    }
}
