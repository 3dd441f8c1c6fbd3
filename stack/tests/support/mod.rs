//! Helpers shared by the stack's integration tests.
#![allow(dead_code)] // each test target uses a different subset

use std::path::PathBuf;
use std::time::Duration;

use stack::StackOptions;

/// The stand-in twin (`src/bin/stub-twin.rs`): /health and the chaos surface only.
pub fn stub_twin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stack-stub-twin"))
}

/// Test options with the stand-in twin.
pub fn stub_options() -> StackOptions {
    StackOptions {
        // Stand-in stacks measure nothing, and some tests hold two at once.
        turn: stack::TurnKind::None,
        compose_hashes: false,
        ..StackOptions::for_tests(stub_twin())
    }
}

#[allow(unused_imports)] // each test target uses a different subset
pub use stack::testing::twin_binary as drill_binary;

pub use stack::testing::http;

/// Whether a process with this PID exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stack::local::procfs::is_alive(pid as i32)
}

/// Whether anything accepts TCP connections on 127.0.0.1:port.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A stack on the local backend: these targets test processes, PIDs and run directories.
pub async fn start_local(options: StackOptions) -> Result<stack::Stack, stack::StackError> {
    stack::Stack::start(options, stack::Backend::Local).await
}

/// The local backend's own handle of a stack [`start_local`] started.
pub fn local(stack: &stack::Stack) -> &stack::LocalStack {
    stack.as_local().expect("a local stack")
}

#[allow(unused_imports)]
pub use stack::skip_without_docker;

/// PostgreSQL's `NOW()` minus the stack's clock, in modeled seconds.
async fn pg_skew(conn: &mut sqlx::PgConnection, stack: &stack::Stack) -> f64 {
    let before = stack.clock().now();
    let theirs: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let after = stack.clock().now();
    (theirs - (before + (after - before) / 2)).num_milliseconds() as f64 / 1000.0
}

/// The runbooks' SQL sees the stack's modeled time (the stack must run at scale 60):
/// `NOW()` agrees with the stack's clock and keeps agreeing, `pg_sleep` sleeps
/// modeled seconds, and `NOW() - query_start` ages a query in modeled time.
pub async fn assert_postgres_keeps_the_stack_clock(stack: &stack::Stack) {
    use sqlx::Connection;
    assert_eq!(stack.clock().scale(), 60.0);
    let connect = || sqlx::PgConnection::connect(&stack.endpoints().database_url);
    let mut conn = connect().await.unwrap();
    let skew = pg_skew(&mut conn, stack).await;
    // Two modeled seconds: 33 real milliseconds at scale 60, what a round trip on a
    // loaded machine can take.
    assert!(
        skew.abs() <= 2.0,
        "NOW() is {skew:+.2} s off the stack's clock"
    );

    // Two modeled minutes are two real seconds.
    let started = std::time::Instant::now();
    sqlx::query("SELECT pg_sleep(120)")
        .execute(&mut conn)
        .await
        .unwrap();
    let real = started.elapsed();
    assert!(
        (Duration::from_millis(1800)..Duration::from_millis(4000)).contains(&real),
        "pg_sleep(120) took {real:?}"
    );
    // A clock at another speed would drift by a minute every real second.
    let skew = pg_skew(&mut conn, stack).await;
    assert!(skew.abs() <= 2.0, "NOW() drifted to {skew:+.2} s");

    // The runbook's long-running query check finds a query by its modeled age.
    let mut sleeper = connect().await.unwrap();
    let sleeping = tokio::spawn(async move {
        let _ = sqlx::query("SELECT pg_sleep(900)")
            .execute(&mut sleeper)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old_enough: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity
         WHERE state != 'idle' AND query LIKE 'SELECT pg_sleep(900)%'
           AND NOW() - query_start > INTERVAL '1 minute'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        old_enough, 1,
        "a query 1.5 real seconds old is 90 modeled seconds old"
    );
    sleeping.abort();
}
