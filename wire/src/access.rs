//! The shape of a service's record of who asked it what (`GET /chaos/requests`),
//! shared by the twin that keeps it and the game day's observer that reads it.

use serde::{Deserialize, Serialize};

/// One request to a service's public API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Increases by one per request, from 1.
    pub seq: u64,
    pub unix_ms: i64,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The client's `User-Agent`, empty when it sent none.
    pub user_agent: String,
    pub status: u16,
}

/// An answer of `GET /chaos/requests`: the number of the newest request (lower than
/// what a reader last saw when the service has restarted since) and those asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    pub last_seq: u64,
    pub requests: Vec<AccessRecord>,
}
