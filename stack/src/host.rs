//! The machine a stack runs on, as `df -h` and `free -h` show it to the runbooks.
//!
//! `DiskSpaceHigh` and `MemoryUsageHigh` read these. Disk is the stack's own disk
//! ([`crate::disk`]): on docker the size-limited tmpfs volume its containers write logs
//! and backups to, on the local backend the tmpfs mounted under its run directory (or,
//! without root, the plain directory there, which is not size-limited). Memory is the
//! host's, as `free -h` on it shows (used = total - available).

use async_trait::async_trait;
use runbooks::ops::{DiskDir, DiskFile, Host, HostError, Usage};

use crate::disk::{DiskError, StackDisk};

/// Disk and memory of one stack's host.
pub(crate) struct StackHost {
    pub disk: StackDisk,
}

fn failed(what: &'static str) -> impl FnOnce(DiskError) -> HostError {
    move |e| HostError {
        what,
        reason: e.to_string(),
    }
}

#[async_trait]
impl Host for StackHost {
    async fn disk(&self) -> Result<Usage, HostError> {
        self.disk.usage().await.map_err(failed("df"))
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

    fn dir(&self, dir: DiskDir) -> String {
        self.disk.dir(dir)
    }

    async fn files(&self, dir: DiskDir) -> Result<Vec<DiskFile>, HostError> {
        self.disk.files(dir).await.map_err(failed("find"))
    }

    async fn truncate(&self, paths: &[String], bytes: u64) -> Result<(), HostError> {
        self.disk
            .truncate(paths, bytes)
            .await
            .map_err(failed("truncate"))
    }

    async fn remove(&self, paths: &[String]) -> Result<(), HostError> {
        self.disk.remove(paths).await.map_err(failed("rm"))
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
        let host = StackHost {
            disk: StackDisk::Local(crate::local::disk::LocalDisk {
                root: dir.path().to_owned(),
                limited: Err("a test directory".into()),
            }),
        };
        let disk = host.disk().await.unwrap();
        assert!(disk.total > 0 && disk.used <= disk.total);
        let memory = host.memory().await.unwrap();
        assert!(memory.total > 0 && memory.used <= memory.total);
    }
}
