//! The few things every part of runbook-drill must agree on, and nothing else.
//!
//! The harness, the twin's services and the runbook implementations are separate
//! programs that talk over the wire. They share four contracts, which live here so
//! that none of them depends on another's internals:
//!
//! - [`clock`]: modeled time, handed to every process through one environment variable;
//! - [`service`]: the compose names of the SongNodes services and their documented ports;
//! - [`endpoints`]: where a running SongNodes answers;
//! - [`api`]: the JSON shapes the runbook text shows (`/dlq/stats`, `/health`, `/stats`, …)
//!   and the DLQ error taxonomy.
#![forbid(unsafe_code)]

pub mod access;
pub mod agents;
pub mod api;
pub mod clock;
pub mod endpoints;
pub mod env;
pub mod service;
pub mod wait;

pub use clock::Clock;
pub use endpoints::Endpoints;
pub use service::Service;
