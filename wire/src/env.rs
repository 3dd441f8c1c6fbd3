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
/// Chaos switches that are on from the moment the service starts, as a JSON object
/// (`{"connection_leak": {"every": 20}}`): a defect shipped in the service's build,
/// which a restart does not cure. Unset means none.
pub const CHAOS_AT_START: &str = "DRILL_CHAOS_AT_START";
/// Modeled seconds of database time each data request of rest-api and graph-api
/// spends holding its connection: the cost of its query at production volume, which
/// the twin's small tables do not have. Unset means none.
pub const QUERY_SECONDS: &str = "TRACK_API_QUERY_SECONDS";
