//! The drill engine: what turns a running twin into evidence that a runbook works.
//!
//! A drill resets a [`stack::Stack`], injects a scenario's root-cause [`faults`],
//! evaluates the runbooks' [`alerts`] over probes of the stack, times the runbook from
//! the alert firing to its verified resolution ([`runner`]), and then checks that
//! nothing was lost ([`ledger`]). [`scenario`] reads the scenario files; [`report`]
//! renders what happened for people and for CI.
#![forbid(unsafe_code)]

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
