//! Redis on the local backend: a foreground `redis-server` without persistence.
//!
//! The enrichment cache is disposable, so nothing is saved (`--save ''`, no AOF): a
//! restart starts empty, as a cache container without a volume does. The server runs
//! in the foreground as a child (not `--daemonize`), so it can be signalled and reaped.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::binaries::Binaries;
use super::process::LaunchSpec;
use super::supervisor::{Readiness, SlotConfig, StopPolicy};

/// The slot of a Redis server on `port`, bound to `bind` (space-separated addresses).
pub(crate) fn slot(bins: &Binaries, port: u16, bind: &str, dir: &Path, log: &Path) -> SlotConfig {
    let mut args: Vec<OsString> = vec!["--port".into(), port.to_string().into()];
    args.push("--bind".into());
    args.extend(bind.split_whitespace().map(OsString::from));
    args.extend(
        [
            "--save",
            "",
            "--appendonly",
            "no",
            // Logs go to standard output, which the harness sends to the service's log file.
            "--logfile",
            "",
        ]
        .map(OsString::from),
    );
    args.extend(["--dir".into(), dir.into()]);
    SlotConfig {
        spec: LaunchSpec {
            program: bins.redis_server.clone(),
            args,
            env: Default::default(),
            env_remove: Vec::new(),
            run_as: None,
            cwd: dir.to_owned(),
            log: log.to_owned(),
            identity: "redis-server".into(),
            faked_clock: None,
            cgroup_procs: None,
        },
        readiness: Readiness::Redis { port },
        policy: StopPolicy {
            stop: Signal::SIGTERM,
            grace: Duration::from_secs(10),
            teardown: Signal::SIGTERM,
        },
        ready_timeout: Duration::from_secs(10),
    }
}

/// `redis://127.0.0.1:port`.
pub(crate) fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}
