//! What a runbook step may act through. Each part is an interface over the wire.
pub mod orchestrator;

pub use orchestrator::{Orchestrator, OrchestratorError, ServiceStats, ServiceStatus};
