//! Where the harness keeps things: a runtime root for running stacks, a cache for templates.
//!
//! The runtime root holds one directory per running stack (`runs/<run-id>/`) and the
//! port claims (`ports/`). It is shared by every process on the machine, so that the
//! next start can reap what a killed run left and concurrent runs do not take each
//! other's ports; every process must therefore pick the same root. It is, in order:
//! 1. `$DRILL_RUNTIME_DIR`, when set (set it for every process, or for none);
//! 2. `/dev/shm/runbook-drill` when `/dev/shm` is a tmpfs of at least 1 GiB: copying a
//!    PostgreSQL data directory there takes ~0.07 s against 0.2–0.4 s on this
//!    machine's disk (ext4 mounted with `discard`), which decides whether a stack boots
//!    in half a second; a stack's files are small (~40 MB) and live only as long as it;
//! 3. `<temp>/runbook-drill`.
//!
//! The cache holds PostgreSQL data-dir templates, which are expensive to build (initdb,
//! migrations, seed) and cheap to copy; it lives on disk and survives reboots.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::StackError;

/// The smallest tmpfs worth using for running stacks.
const MIN_TMPFS_BYTES: u64 = 1 << 30;

/// The runtime root (see the module docs), created world-traversable: PostgreSQL runs
/// as another user and must reach its data directory below it.
pub fn runtime_root() -> Result<PathBuf, StackError> {
    let root = match std::env::var_os("DRILL_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None if is_large_tmpfs(Path::new("/dev/shm")) => PathBuf::from("/dev/shm/runbook-drill"),
        None => std::env::temp_dir().join("runbook-drill"),
    };
    ensure_traversable_dir(&root)?;
    Ok(root)
}

fn is_large_tmpfs(path: &Path) -> bool {
    use nix::sys::statfs::{TMPFS_MAGIC, statfs};
    statfs(path).is_ok_and(|fs| {
        fs.filesystem_type() == TMPFS_MAGIC
            && fs.blocks().saturating_mul(fs.block_size() as u64) >= MIN_TMPFS_BYTES
    })
}

/// `$DRILL_CACHE_DIR`, else `$XDG_CACHE_HOME/runbook-drill`, else `~/.cache/runbook-drill`,
/// else `<temp>/runbook-drill-cache`.
pub fn cache_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("DRILL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("runbook-drill");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".cache").join("runbook-drill");
    }
    std::env::temp_dir().join("runbook-drill-cache")
}

/// Creates `dir` (and parents) and makes it 0755 if this process owns it, so that the
/// `postgres` user can reach data dirs below it.
pub(crate) fn ensure_traversable_dir(dir: &Path) -> Result<(), StackError> {
    fs::create_dir_all(dir).map_err(StackError::io(format!("creating {}", dir.display())))?;
    let meta = fs::metadata(dir).map_err(StackError::io(format!("reading {}", dir.display())))?;
    if meta.permissions().mode() & 0o755 != 0o755 {
        // Only the owner may chmod; a directory made by another user is theirs to fix.
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    }
    Ok(())
}
