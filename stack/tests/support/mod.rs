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
    StackOptions::for_tests(stub_twin())
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
