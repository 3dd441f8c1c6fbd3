//! Starting and signalling one child process.
//!
//! Every child leads its own process group, so that a signal reaches the whole service
//! (PostgreSQL's backends with their postmaster, as `docker kill` reaches every process
//! of a container) and a Ctrl-C in the terminal reaches only the harness, which then
//! stops the stack in order. Children that must not run as root (PostgreSQL) get their
//! uid and gid set on the command itself, so the PID we hold *is* the server's PID (a
//! wrapper such as `runuser` would fork and hide it).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::logs;
use super::procfs::{self, Identity};
use crate::pg_clock::PgClock;

/// Joins the memory cgroup whose `cgroup.procs` is `$1`, then becomes the program
/// (`$2…`) under the same PID, so that everything the program forks is in the cgroup
/// from its first instant (moving the PID after the start would miss PostgreSQL's
/// first children). The preload the program needs is set only at its `exec`, so the
/// shell itself never loads it.
const JOIN_CGROUP_THEN_EXEC: &str = r#"echo 0 > "$1" || exit 126
shift
if [ -n "$DRILL_SHIM_PRELOAD" ]; then
  export LD_PRELOAD="$DRILL_SHIM_PRELOAD"
  unset DRILL_SHIM_PRELOAD
fi
exec "$@""#;

/// The variable that carries `LD_PRELOAD` through [`JOIN_CGROUP_THEN_EXEC`].
const SHIM_PRELOAD: &str = "DRILL_SHIM_PRELOAD";

/// How to start a service's process.
#[derive(Clone, Debug)]
pub(crate) struct LaunchSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Variables set for the child, on top of the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Inherited variables removed first (so a stray one in the harness's environment
    /// cannot configure a service behind our back).
    pub env_remove: Vec<&'static str>,
    /// uid and gid to run as, when the harness runs as root.
    pub run_as: Option<(u32, u32)>,
    pub cwd: PathBuf,
    /// Standard output and error are appended here.
    pub log: PathBuf,
    /// A word the command line contains while it runs, for the reaper's identity check.
    pub identity: String,
    /// The modeled clock the process runs on through libfaketime (PostgreSQL), whose
    /// spec is written for each start.
    pub faked_clock: Option<PgClock>,
    /// The `cgroup.procs` file of the service's memory cgroup ([`crate::memory`]),
    /// which the process joins before the program starts.
    pub cgroup_procs: Option<PathBuf>,
}

impl LaunchSpec {
    /// Starts the process with `overrides` applied over [`LaunchSpec::env`].
    pub(crate) fn spawn(&self, overrides: &BTreeMap<String, String>) -> io::Result<Child> {
        let log = logs::open_for_append(&self.log)?;
        if let Some(clock) = &self.faked_clock {
            clock.prepare_start().map_err(io::Error::other)?;
        }
        let mut command = match &self.cgroup_procs {
            Some(procs) => {
                let mut shim = Command::new("/bin/sh");
                shim.arg("-c")
                    .arg(JOIN_CGROUP_THEN_EXEC)
                    .arg("drill-join-cgroup")
                    .arg(procs)
                    .arg(&self.program)
                    .args(&self.args);
                shim
            }
            None => {
                let mut command = Command::new(&self.program);
                command.args(&self.args);
                command
            }
        };
        command
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        for var in &self.env_remove {
            command.env_remove(var);
        }
        command.envs(&self.env).envs(overrides);
        if let Some(clock) = &self.faked_clock {
            for (name, value) in PgClock::env(clock.spec_file(), clock.library()) {
                // Through the shim, the library is preloaded into the program only.
                let name = match name.as_str() {
                    "LD_PRELOAD" if self.cgroup_procs.is_some() => SHIM_PRELOAD.to_owned(),
                    _ => name,
                };
                command.env(name, value);
            }
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command.spawn()
    }
}

/// Sends `signal` to the process group `pid` leads, or to `pid` alone if that fails.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(pid as i32);
    if killpg(pid, signal).is_err() {
        let _ = kill(pid, signal);
    }
}

/// Sends `signal` to every process of a service ([`procfs::family`]): its group and its
/// descendants, for signals that must reach each process (SIGKILL, SIGSTOP, SIGCONT).
/// Returns the processes signalled.
pub(crate) fn signal_family(leader: u32, signal: Signal) -> Vec<Identity> {
    let family = family_of(leader);
    signal_group(leader, signal);
    for member in &family {
        let _ = kill(Pid::from_raw(member.pid), signal);
    }
    family
}

/// The processes of a service now, recognisable later.
pub(crate) fn family_of(leader: u32) -> Vec<Identity> {
    procfs::family(leader as i32)
        .into_iter()
        .filter_map(Identity::of)
        .collect()
}

/// SIGKILL to each member still alive (and still the same process).
pub(crate) fn kill_remaining(family: &[Identity]) {
    for member in family.iter().filter(|m| m.is_alive()) {
        let _ = kill(Pid::from_raw(member.pid), Signal::SIGKILL);
    }
}

/// The exit code `docker` would report: the code, or 128 + the signal that ended it.
pub(crate) fn exit_code(status: ExitStatus) -> Option<i32> {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
}

/// A human description of an exit, for error messages.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!(
            "killed by {}",
            Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {signal}"))
        ),
        _ => status.to_string(),
    }
}
