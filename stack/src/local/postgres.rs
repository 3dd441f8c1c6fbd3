//! PostgreSQL on the local backend: its OS user, data directories and command line.
//!
//! PostgreSQL refuses to run as root, so when the harness is root the server runs as
//! the `postgres` OS user (uid and gid set on the command; data directories owned by
//! that user, mode 0700). A stack's data directory is a copy of a cached template
//! ([`super::template`]); copying (~tens of ms) is far cheaper than initdb (~0.6 s).
//!
//! Settings favour speed over durability — a stack is disposable: `fsync`,
//! `synchronous_commit` and `full_page_writes` off. No Unix socket is created
//! (`unix_socket_directories=''`), only TCP on loopback, authenticated by trust
//! (initdb's `-A trust` writes trust lines for 127.0.0.1/32 and ::1/128).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{User, geteuid};
use sqlx::postgres::PgConnectOptions;

use super::binaries::Binaries;
use super::process::LaunchSpec;
use super::supervisor::{Readiness, SlotConfig, StopPolicy};
use crate::StackError;
use crate::pg_clock::PgClock;

/// The superuser initdb creates.
pub const SUPERUSER: &str = "postgres";
/// The role the runbooks and the twin connect as.
pub const APP_USER: &str = "musicdb_user";
/// The database of the runbooks.
pub const DATABASE: &str = "musicdb";

/// The uid and gid PostgreSQL must run as: the `postgres` user when we are root,
/// ourselves (no change) otherwise.
pub fn run_as() -> Result<Option<(u32, u32)>, StackError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        _ => Err(StackError::NoPostgresUser),
    }
}

/// Creates an empty data directory owned by the server's user, mode 0700.
pub(crate) fn create_data_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), StackError> {
    fs::create_dir(dir).map_err(StackError::io(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(StackError::io(format!("restricting {}", dir.display())))?;
    if let Some((uid, gid)) = owner {
        chown(dir, Some(uid), Some(gid)).map_err(StackError::io(format!(
            "handing {} to postgres",
            dir.display()
        )))?;
    }
    Ok(())
}

/// Runs initdb into `dir` (which must exist, empty, owned by the server's user).
pub(crate) fn initdb(
    bins: &Binaries,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), StackError> {
    let mut command = Command::new(&bins.initdb);
    command
        .arg("-D")
        .arg(dir)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        // 1 MiB WAL segments instead of 16 keep the template (and every copy of it) small.
        .args(["--no-sync", "--no-instructions", "--wal-segsize=1"])
        .stdin(Stdio::null())
        .current_dir(dir);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    let output = command
        .output()
        .map_err(StackError::io(format!("running {}", bins.initdb.display())))?;
    if !output.status.success() {
        return Err(StackError::Io {
            action: format!(
                "initdb into {} failed ({}): {}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            source: std::io::Error::other("initdb failed"),
        });
    }
    Ok(())
}

/// Copies a data directory, keeping modes and handing every file to `owner`.
///
/// Directories are created first, then the files are copied by a few threads: the
/// copy is on the boot's critical path and is dominated by per-file system calls,
/// which overlap well.
pub(crate) fn copy_data_dir(
    from: &Path,
    to: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), StackError> {
    let mut files = Vec::new();
    copy_tree_skeleton(from, to, owner, &mut files)?;
    // Largest first, dealt round-robin, so the threads finish together.
    files.sort_by_key(|(_, _, size)| std::cmp::Reverse(*size));
    const THREADS: usize = 4;
    let results: Vec<Result<(), StackError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let files = &files;
                scope.spawn(move || {
                    for (source, target, _) in files.iter().skip(worker).step_by(THREADS) {
                        copy_file(source, target, owner)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(StackError::InvalidOptions("a copy thread panicked".into()))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Creates the directories (and symlinks) of `from` under `to`; lists the files to copy.
fn copy_tree_skeleton(
    from: &Path,
    to: &Path,
    owner: Option<(u32, u32)>,
    files: &mut Vec<(PathBuf, PathBuf, u64)>,
) -> Result<(), StackError> {
    let io = |what: &str, path: &Path| StackError::io(format!("{what} {}", path.display()));
    fs::create_dir(to).map_err(io("creating", to))?;
    let mode = fs::metadata(from)
        .map_err(io("reading", from))?
        .permissions();
    fs::set_permissions(to, mode).map_err(io("setting the mode of", to))?;
    if let Some((uid, gid)) = owner {
        chown(to, Some(uid), Some(gid)).map_err(io("changing the owner of", to))?;
    }
    for entry in fs::read_dir(from).map_err(io("listing", from))? {
        let entry = entry.map_err(io("listing", from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = entry.metadata().map_err(io("reading", &source))?;
        if meta.is_dir() {
            copy_tree_skeleton(&source, &target, owner, files)?;
        } else if meta.is_symlink() {
            let link = fs::read_link(&source).map_err(io("reading the link", &source))?;
            std::os::unix::fs::symlink(link, &target).map_err(io("linking", &target))?;
        } else {
            files.push((source, target, meta.len()));
        }
    }
    Ok(())
}

fn copy_file(source: &Path, target: &Path, owner: Option<(u32, u32)>) -> Result<(), StackError> {
    fs::copy(source, target).map_err(StackError::io(format!("copying {}", source.display())))?;
    if let Some((uid, gid)) = owner {
        chown(target, Some(uid), Some(gid)).map_err(StackError::io(format!(
            "changing the owner of {}",
            target.display()
        )))?;
    }
    Ok(())
}

/// Where and how one PostgreSQL server listens.
#[derive(Clone, Debug)]
pub(crate) struct Listen {
    pub port: u16,
    /// `listen_addresses`, e.g. `127.0.0.1` or `127.0.0.1,::1`.
    pub addresses: String,
}

/// The slot of a PostgreSQL server on `data_dir`; readiness connects as the superuser
/// to `ready_db`.
pub(crate) fn slot(
    bins: &Binaries,
    data_dir: &Path,
    listen: &Listen,
    run_as: Option<(u32, u32)>,
    log: &Path,
    ready_db: &str,
    clock: Option<&PgClock>,
) -> SlotConfig {
    let setting = |s: String| [OsString::from("-c"), OsString::from(s)];
    let mut args: Vec<OsString> = vec!["-D".into(), data_dir.into()];
    args.extend(["-p".into(), listen.port.to_string().into()]);
    for s in [
        format!("listen_addresses={}", listen.addresses),
        "unix_socket_directories=".to_owned(),
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "max_connections=200".to_owned(),
        // Old WAL segments are removed at checkpoints rather than kept for reuse: they
        // would be copied with every data directory made from a template.
        "wal_recycle=off".to_owned(),
        "min_wal_size=2MB".to_owned(),
        // Stderr goes to the stack's log file; timestamps make it readable there.
        "log_line_prefix=%m [%p] %q%a ".to_owned(),
    ]
    .into_iter()
    .chain(PgClock::settings(clock.map_or(1.0, PgClock::scale)))
    {
        args.extend(setting(s));
    }
    SlotConfig {
        spec: LaunchSpec {
            program: bins.postgres.clone(),
            args,
            env: Default::default(),
            env_remove: vec!["PGDATA", "PGPORT", "PGHOST"],
            run_as,
            cwd: data_dir.to_owned(),
            log: log.to_owned(),
            // The postmaster's command line names its data directory: that is its identity.
            identity: data_dir.to_string_lossy().into_owned(),
            faked_clock: clock.cloned(),
            cgroup_procs: None,
        },
        readiness: Readiness::Postgres(Box::new(connect_options(listen.port, SUPERUSER, ready_db))),
        policy: StopPolicy {
            // Fast shutdown, as the official image's STOPSIGNAL; immediate at teardown.
            stop: Signal::SIGINT,
            grace: Duration::from_secs(10),
            teardown: Signal::SIGQUIT,
        },
        // Crash recovery after a kill takes longer than a clean start.
        ready_timeout: Duration::from_secs(30),
    }
}

pub(crate) fn connect_options(port: u16, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(user)
        .database(database)
        .application_name("runbook-drill-harness")
}

/// `postgres://user@127.0.0.1:port/database`.
pub(crate) fn url(port: u16, user: &str, database: &str) -> String {
    format!("postgres://{user}@127.0.0.1:{port}/{database}")
}
