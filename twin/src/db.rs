//! PostgreSQL connections for twin services, named so the runbook's
//! `GROUP BY application_name` tells the services apart.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use wire::Service;

/// A pool of at most `max_connections`, tagged with the service's compose name.
///
/// Connecting is retried for a few seconds: on `docker compose restart postgres` or a
/// stack boot the database may come up a moment after the service does.
pub async fn connect(url: &str, service: Service, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let options = options
        .application_name(service.name())
        .log_statements(tracing::log::LevelFilter::Trace)
        // Bulk replays of ten thousand messages take over a second by design; they are
        // not slow queries worth a warning with the whole statement in the log.
        .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(5));
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5));
    // Five seconds: long enough for a PostgreSQL restart, short enough to fail a broken
    // URL fast.
    let connected = wire::wait::until(
        wire::Clock::real_time(),
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => wire::wait::Poll::Ready(pool),
                Err(error) => wire::wait::Poll::Pending(error.to_string()),
            }
        },
    )
    .await;
    connected.map(|done| done.value).map_err(|timed_out| {
        anyhow::anyhow!(
            "could not connect to PostgreSQL for {service} after 5 s: {}",
            timed_out.last_seen
        )
    })
}

/// Declares a struct read from a query's rows by column name, as sqlx's
/// `#[derive(FromRow)]` would, without sqlx's procedural macros: those compile sqlx's
/// PostgreSQL driver a second time, for the compiler, on every clean build (half a
/// minute of CI's two cores), and this is all the twin asks of them.
///
/// ```
/// twin::pg_row! {
///     /// A row of a query that reads two columns.
///     #[derive(Debug)]
///     pub struct Pair { pub track_id: i64, pub track_name: Option<String> }
/// }
/// ```
#[macro_export]
macro_rules! pg_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty ),*
        }

        impl<'r> ::sqlx::FromRow<'r, ::sqlx::postgres::PgRow> for $name {
            fn from_row(row: &'r ::sqlx::postgres::PgRow) -> ::sqlx::Result<Self> {
                use ::sqlx::Row as _;
                Ok(Self {
                    $( $field: row.try_get(stringify!($field))? ),*
                })
            }
        }
    };
}
