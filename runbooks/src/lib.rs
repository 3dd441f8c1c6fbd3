//! The SongNodes runbooks as code.
//!
//! A runbook implementation talks to the stack only over the wire (HTTP, SQL,
//! Redis, the service orchestrator), through the [`ops`] facade, so that the same
//! code can be pointed at a real deployment.
#![forbid(unsafe_code)]

pub mod ops;
