//! The machine a stack runs on, as `df -h` and `free -h` show it to the runbooks.
//!
//! `DiskSpaceHigh` and `MemoryUsageHigh` read these. Disk is the stack's own volume:
//! on docker the size-limited tmpfs its containers write logs and backups to, on the
//! local backend the file system of its run directory (where its services write).
//! Memory is the host's, as `free -h` on it shows (used = total - available).

use std::path::PathBuf;

use async_trait::async_trait;
use runbooks::ops::{Host, HostError, Usage};

use crate::docker::faults::DiskGauge;

/// Disk and memory of one stack's host.
pub(crate) enum StackHost {
    /// The file system that holds this directory.
    Local {
        run_dir: PathBuf,
    },
    Docker {
        disk: DiskGauge,
    },
}

#[async_trait]
impl Host for StackHost {
    async fn disk(&self) -> Result<Usage, HostError> {
        match self {
            StackHost::Local { run_dir } => {
                let stats = nix::sys::statvfs::statvfs(run_dir).map_err(|e| HostError {
                    what: "df",
                    reason: format!("{}: {e}", run_dir.display()),
                })?;
                let block = stats.fragment_size();
                let total = stats.blocks() * block;
                Ok(Usage {
                    used: total.saturating_sub(stats.blocks_available() * block),
                    total,
                })
            }
            StackHost::Docker { disk } => {
                let usage = disk.usage().await.map_err(|e| HostError {
                    what: "df",
                    reason: e.to_string(),
                })?;
                Ok(Usage {
                    used: usage.total_bytes.saturating_sub(usage.available_bytes),
                    total: usage.total_bytes,
                })
            }
        }
    }

    async fn memory(&self) -> Result<Usage, HostError> {
        let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| HostError {
            what: "free",
            reason: format!("/proc/meminfo: {e}"),
        })?;
        parse_meminfo(&text).ok_or_else(|| HostError {
            what: "free",
            reason: "/proc/meminfo has no MemTotal or MemAvailable".into(),
        })
    }
}

/// Used (total less available) and total bytes of `/proc/meminfo`.
fn parse_meminfo(text: &str) -> Option<Usage> {
    let kib = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    let total = kib("MemTotal")?;
    let available = kib("MemAvailable")?;
    Some(Usage {
        used: total.saturating_sub(available),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_in_use_is_total_less_available() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   18000000 kB\n";
        let usage = parse_meminfo(text).unwrap();
        assert_eq!(usage.total, 24_000_000 * 1024);
        assert_eq!(usage.used, 6_000_000 * 1024);
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_none());
    }

    #[tokio::test]
    async fn the_local_disk_and_memory_read_as_shares() {
        let dir = tempfile::tempdir().unwrap();
        let host = StackHost::Local {
            run_dir: dir.path().to_owned(),
        };
        let disk = host.disk().await.unwrap();
        assert!(disk.total > 0 && disk.used <= disk.total);
        let memory = host.memory().await.unwrap();
        assert!(memory.total > 0 && memory.used <= memory.total);
    }
}
