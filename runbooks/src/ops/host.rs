//! The host the stack runs on, as `df -h` and `free -h` show it.
//!
//! Disk and memory are properties of where the stack runs, not of one service: on
//! the local backend they are the stack's data volume and its processes against a
//! modeled capacity, on docker the containers' tmpfs volumes and memory limits.

use async_trait::async_trait;

/// Used and total bytes of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub total: u64,
}

impl Usage {
    /// Used share, 0..=1 (0 when the total is unknown).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 / self.total as f64
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct HostError {
    pub what: &'static str,
    pub reason: String,
}

#[async_trait]
pub trait Host: Send + Sync {
    /// `df -h` of the volume the stack writes to.
    async fn disk(&self) -> Result<Usage, HostError>;
    /// `free -h` as the stack sees it.
    async fn memory(&self) -> Result<Usage, HostError>;
}
