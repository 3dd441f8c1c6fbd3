//! The drill engine: what turns a running twin into evidence that a runbook works.
//!
//! A drill resets a [`stack::Stack`], lets a scenario's root-cause [`faults`] strike
//! under the stack's workload, evaluates the runbooks' [`alerts`] over probes of the
//! stack, times the runbook from the alert firing to its verified resolution
//! ([`runner`]), telling its own time from waiting on the world ([`world`]), and then
//! checks that nothing was lost ([`ledger`]) and what the response cost the cache
//! ([`cache_cost`]). [`scenario`] reads the scenario files;
//! [`report`] renders what happened for people and for CI. A [`schedule`] of faults
//! with no runbook named is drilled through whichever alerts fire, and held to the
//! properties every correct set of runbooks keeps.
//!
//! A game day ([`gameday`]) is the same engine with a person in the runbook's place:
//! [`observer`] sees what they do from the stack, [`runbooks::playbook`] sets it beside
//! the runbook's written steps, and [`signals`] feeds the live board and the report's
//! charts, which `drill run --html` draws for drills too.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod bench;
pub mod cache_cost;
pub mod charts;
pub mod faults;
pub mod gameday;
pub mod html;
pub mod ledger;
pub mod matrix;
pub mod observer;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod signals;
pub mod unprompted;
pub mod world;

pub use faults::{Fault, FaultError, FaultGuard, Share};
pub use report::{ControlOutcome, DrillReport, Verdict};
pub use runner::{DrillError, DrillOptions, Response, run_drill};
pub use scenario::{Scenario, ScenarioError};
