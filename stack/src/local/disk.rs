//! The local backend's disk: a size-limited tmpfs under the run directory.
//!
//! The Disk Space runbook needs a disk that really fills: writes that fail with ENOSPC,
//! `df` that reads the file system the services write to. On docker that is a tmpfs
//! volume; here it is a tmpfs mounted at `<run_dir>/disk` with the stack's disk size,
//! which needs root (CAP_SYS_ADMIN). Without it the directory is a plain one on the
//! runtime root's file system: the services still write their log files there, but
//! nothing limits it, and [`LocalDisk::limited`] says so, so that a drill that needs a
//! full disk is skipped with that reason rather than faked.
//!
//! The mount lives exactly as long as the run directory: [`super::run_dir::remove_tree`]
//! unmounts whatever is mounted below a run directory before removing it, so a stack
//! dropped, a panic, or the reaping of a killed run leaves no mount behind.

use std::path::{Path, PathBuf};

use crate::StackError;

/// The disk's directory below a run directory.
pub const DISK_DIR: &str = "disk";

/// The stack's disk on the local backend.
#[derive(Clone, Debug)]
pub struct LocalDisk {
    pub root: PathBuf,
    /// Whether `root` is a file system of its own, of the stack's disk size.
    pub limited: Result<(), String>,
}

impl LocalDisk {
    /// Creates `<run_dir>/disk` and, as root, mounts a tmpfs of `size` bytes there.
    pub(crate) fn create(run_dir: &Path, size: u64) -> Result<Self, StackError> {
        let root = run_dir.join(DISK_DIR);
        std::fs::create_dir_all(&root)
            .map_err(StackError::io(format!("creating {}", root.display())))?;
        let limited = mount_tmpfs(&root, size);
        if let Err(reason) = &limited {
            tracing::debug!(root = %root.display(), reason, "the local disk is not size-limited");
        }
        Ok(Self { root, limited })
    }
}

/// Whether this process may mount the local stack's size-limited disk; if not, why.
pub fn can_mount() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(
            "the local backend needs root to mount the stack's size-limited disk (a tmpfs); \
             run as root, or use the docker backend"
                .into(),
        )
    }
}

fn mount_tmpfs(root: &Path, size: u64) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    can_mount()?;
    // 0777: PostgreSQL's server runs as its own user and writes its backups here.
    let data = format!("size={size},mode=0777");
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| format!("mounting a tmpfs at {}: {e}", root.display()))
}

/// Unmounts every mount at or below `dir` (deepest first), detaching busy ones.
pub(crate) fn unmount_below(dir: &Path) {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %point.display(), error = %e, "could not unmount");
        }
    }
}

/// Mount points in `mountinfo` escape space, tab, newline and backslash as octal.
fn unescape(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape("/a\\040b/disk"), PathBuf::from("/a b/disk"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
    }
}
