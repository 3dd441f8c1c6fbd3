//! Environment variables through which the harness configures a twin service.
//!
//! A twin service is configured the way a compose service is: by its environment.
//! The same names work for a child process (local backend) and a container (docker).

/// The modeled clock, `"<epoch_unix_ms>x<scale>"` (see [`crate::Clock`]).
pub const CLOCK: &str = "DRILL_CLOCK";
/// PostgreSQL URL of `musicdb` for the service's role (`musicdb_user`).
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Redis URL of the enrichment cache.
pub const REDIS_URL: &str = "REDIS_URL";
/// Address the service's API listens on, e.g. `127.0.0.1:8020`.
pub const LISTEN: &str = "LISTEN_ADDR";
/// Address of the service's chaos control surface; unset means no chaos surface.
pub const CHAOS_LISTEN: &str = "DRILL_CHAOS_ADDR";
/// `1` when the service runs in a container of the stack's own network: its chaos
/// surface may then listen on the container's address (published on the host's
/// loopback only), since the container's loopback cannot be reached from outside.
pub const CHAOS_IN_CONTAINER: &str = "DRILL_CHAOS_IN_CONTAINER";
/// Base URL of metadata-enrichment, for the workers.
pub const ENRICHMENT_URL: &str = "ENRICHMENT_URL";
/// Base URL of api-gateway-internal, for metadata-enrichment.
pub const GATEWAY_URL: &str = "GATEWAY_URL";
/// Base URLs of the providers, for api-gateway-internal.
pub const SPOTIFY_URL: &str = "SPOTIFY_URL";
pub const MUSICBRAINZ_URL: &str = "MUSICBRAINZ_URL";
pub const LASTFM_URL: &str = "LASTFM_URL";
/// Base URL of the scraper's source site.
pub const SOURCE_URL: &str = "SOURCE_URL";
/// Pool sizing of rest-api and graph-api, as in SQLAlchemy: persistent size plus overflow.
pub const POOL_SIZE: &str = "POSTGRES_POOL_SIZE";
pub const MAX_OVERFLOW: &str = "POSTGRES_MAX_OVERFLOW";
/// How many tracks a worker claims per batch.
pub const BATCH_SIZE: &str = "WORKER_BATCH_SIZE";
/// Modeled seconds between scraper polls of the source site.
pub const SCRAPE_INTERVAL_SECS: &str = "SCRAPE_INTERVAL_SECONDS";
/// PID of the process that owns the stack; a twin service exits when it is gone.
pub const PARENT_PID: &str = "DRILL_PARENT_PID";
/// Identifies the stack a process belongs to, for reaping leftovers.
pub const RUN_ID: &str = "DRILL_RUN_ID";
/// Directory a twin service also writes its log lines to, as `<dir>/<service>.log`;
/// unset means stdout only. The docker backend sets it to its disk volume.
pub const LOG_DIR: &str = "DRILL_LOG_DIR";
/// Rotation of that log file, in the terms of docker's `json-file` log options: the
/// size at which it rotates (`10m`; units `k`, `m`, `g`) and how many files are kept
/// in all (`3`: the current one and two rotated ones, `<service>.log.1`, `.2`). Unset
/// means the file grows without bound, as a container's log does without options.
pub const LOG_MAX_SIZE: &str = "DRILL_LOG_MAX_SIZE";
pub const LOG_MAX_FILE: &str = "DRILL_LOG_MAX_FILE";
/// Chaos switches that are on from the moment the service starts, as a JSON object
/// (`{"connection_leak": {"every": 20}}`): a defect shipped in the service's build,
/// which a restart does not cure. Unset means none.
pub const CHAOS_AT_START: &str = "DRILL_CHAOS_AT_START";
/// Modeled seconds of database time each data request of rest-api and graph-api
/// spends holding its connection: the cost of its query at production volume, which
/// the twin's small tables do not have. Unset means none.
pub const QUERY_SECONDS: &str = "TRACK_API_QUERY_SECONDS";

/// Docker's size strings (`10m`): a number with an optional unit `b`, `k`, `m`, `g`
/// or `t` (powers of 1024, either case), in bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_are_read_as_docker_reads_them() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("1t"), Some(1 << 40));
        assert_eq!(parse_size("10x"), None);
        assert_eq!(parse_size("-1"), None);
    }
}
