//! Helpers shared by the harness's integration tests.
#![allow(dead_code)] // each test target uses a different subset

use std::path::PathBuf;
use std::time::Duration;

use harness::StackOptions;

/// The stand-in twin (`src/bin/stub-twin.rs`): /health and the chaos surface only.
pub fn stub_twin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_harness-stub-twin"))
}

/// Test options with the stand-in twin.
pub fn stub_options() -> StackOptions {
    StackOptions::for_tests(stub_twin())
}

/// The real twin: `$DRILL_TWIN_BIN`, else `target/debug/drill` of this workspace.
pub fn drill_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DRILL_TWIN_BIN") {
        return PathBuf::from(path);
    }
    let target = option_env!("CARGO_TARGET_DIR")
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
        .unwrap()
}

/// Whether a process with this PID exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    harness::local::procfs::is_alive(pid as i32)
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
pub async fn start_local(options: StackOptions) -> Result<harness::Stack, harness::StackError> {
    harness::Stack::start(options, harness::Backend::Local).await
}

/// The local backend's own handle of a stack [`start_local`] started.
pub fn local(stack: &harness::Stack) -> &harness::LocalStack {
    stack.as_local().expect("a local stack")
}

/// Why docker tests cannot run here, if they cannot: what `--backend docker` would
/// say (no engine, or the images of `scripts/images` are missing).
pub async fn docker_skip_reason() -> Option<String> {
    harness::BackendChoice::Docker
        .select()
        .await
        .err()
        .map(|e| e.to_string())
}

/// Whether this run promised docker (`CI=true` or `DRILL_BACKEND=docker`): then a
/// docker test must fail rather than skip.
pub fn docker_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || matches!(
            harness::BackendChoice::from_env(),
            Ok(harness::BackendChoice::Docker)
        )
}

/// Returns from the test (printing why) when docker cannot run here, unless docker
/// was promised.
#[allow(unused_macros)] // each test target uses a different subset
macro_rules! skip_without_docker {
    () => {
        if let Some(reason) = $crate::support::docker_skip_reason().await {
            assert!(
                !$crate::support::docker_required(),
                "docker is required here: {reason}"
            );
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use skip_without_docker;
