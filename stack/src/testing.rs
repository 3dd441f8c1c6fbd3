//! What the test suites of every crate need to find and judge the stack's parts.
//!
//! Tests that boot the real twin need the `drill` binary, and tests that need the
//! docker backend must skip where docker cannot run, except where it was promised
//! (CI, `DRILL_BACKEND=docker`): then they fail instead. Both rules live here once.

use std::path::PathBuf;
use std::time::Duration;

use crate::BackendChoice;

/// The real twin: `$DRILL_TWIN_BIN`, else `target/debug/drill` of this workspace.
///
/// # Panics
/// When neither exists, saying how to build it.
pub fn twin_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DRILL_TWIN_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let drill = target.join("debug").join("drill");
    assert!(
        drill.is_file(),
        "the twin binary {} is missing: run `cargo build --bin drill` first \
         (or point DRILL_TWIN_BIN at a drill binary)",
        drill.display()
    );
    drill
}

/// An HTTP client that never uses a proxy (tests only talk to loopback).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a plain HTTP client builds")
}

/// Polls `check` until it holds or `within` has passed ([`wire::wait`] on wall time);
/// the error says what was awaited, for how long, and why the last check did not hold.
pub async fn eventually<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    wire::wait::until(wire::Clock::real_time(), within, every, || {
        let checked = check();
        async move {
            match checked.await {
                Ok(value) => wire::wait::Poll::Ready(value),
                Err(last) => wire::wait::Poll::Pending(last),
            }
        }
    })
    .await
    .map(|done| done.value)
    .map_err(|timed_out| format!("{what}: {timed_out}"))
}

/// Why docker tests cannot run here, if they cannot: what `--backend docker` would
/// say (no engine, or the images of `scripts/images` are missing).
pub async fn docker_skip_reason() -> Option<String> {
    BackendChoice::Docker
        .select()
        .await
        .err()
        .map(|e| e.to_string())
}

/// Whether this run promised docker (`CI=true` or `DRILL_BACKEND=docker`): then a
/// docker test must fail rather than skip.
pub fn docker_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || matches!(BackendChoice::from_env(), Ok(BackendChoice::Docker))
}

/// Returns from the test (printing why) when docker cannot run here, unless docker
/// was promised ([`docker_required`]): then the test fails with the reason.
#[macro_export]
macro_rules! skip_without_docker {
    () => {
        if let Some(reason) = $crate::testing::docker_skip_reason().await {
            assert!(
                !$crate::testing::docker_required(),
                "docker is required here: {reason}"
            );
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}
