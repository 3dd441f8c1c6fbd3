//! Drills: faults, alert rules, scenarios, the runner, the ledger and reports.

pub mod alerts;
pub mod faults;
pub mod ledger;
pub mod report;
pub mod runner;
pub mod scenario;
mod stack_glue;

pub use faults::{Fault, FaultError, FaultGuard, FaultTarget};
pub use report::{DrillReport, Verdict};
pub use runner::{DrillOptions, DrillStack, run_drill};
pub use scenario::{Scenario, ScenarioError};
