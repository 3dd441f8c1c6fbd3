//! The SongNodes runbooks as code.
//!
//! A runbook implementation talks to the stack only over the wire (HTTP, SQL,
//! Redis, the service orchestrator), through the [`ops`] facade, so that the same
//! code can be pointed at a real deployment.
#![forbid(unsafe_code)]
// Step errors carry the URL, status and body excerpt a failed drill must report;
// they are rare and off the hot path, so their size is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod circuit_breaker_storm;
pub mod criteria;
pub mod dlq_overflow;
pub mod ops;
pub mod probe;
pub mod runbook;
pub mod steps;

pub use runbook::{Diagnosis, DynRunbook, Evidence, Runbook, RunbookMeta, ScenarioMeta, Severity};

/// Every runbook this build can drill, by id.
pub fn all() -> Vec<Box<dyn DynRunbook>> {
    vec![
        Box::new(dlq_overflow::DlqOverflow::default()),
        Box::new(circuit_breaker_storm::CircuitBreakerStorm::default()),
    ]
}

/// The runbook with this id (`dlq-overflow`), or an error listing the known ids.
pub fn by_id(id: &str) -> Result<Box<dyn DynRunbook>, UnknownRunbook> {
    all()
        .into_iter()
        .find(|r| r.meta().id == id)
        .ok_or_else(|| UnknownRunbook {
            id: id.to_owned(),
            known: all()
                .iter()
                .map(|r| r.meta().id)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[derive(Debug, thiserror::Error)]
#[error("unknown runbook '{id}'; known runbooks: {known}")]
pub struct UnknownRunbook {
    pub id: String,
    pub known: String,
}
