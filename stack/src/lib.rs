//! A running twin of SongNodes, and everything that keeps it in a known state.
//!
//! [`Stack::start`] boots PostgreSQL (from a cached, seeded template), Redis, the
//! provider stand-ins ([`providers`]) and every twin service, on the [`local`] backend
//! (processes) or the [`docker`] one (containers), as [`backend`] chose, and hands out
//! what a drill needs: [`Endpoints`], the modeled [`wire::Clock`], an
//! [`runbooks::ops::Orchestrator`] and each service's chaos address.
//! [`Stack::reset`] puts a running stack back to its seeded state between drills;
//! dropping a stack stops everything it started, even after a panic, and the next
//! start reaps what a killed run left behind.
//!
//! The data the stack starts with comes from one seed: the [`catalogue`] of tracks the
//! providers know, and the [`seed`] history loaded into musicdb.
//!
//! This crate knows nothing of drills: faults, alerts and the runner live in `harness`,
//! which drives a stack through this crate's interface.
#![forbid(unsafe_code)]

pub mod backend;
pub mod catalogue;
pub mod dirs;
pub mod disk;
pub mod docker;
pub mod drift;
mod error;
mod handles;
mod host;
pub mod keep;
pub mod local;
pub mod memory;
pub mod pg_clock;
pub mod ports;
pub mod providers;
pub mod seed;
mod stack;
pub mod testing;
pub mod traffic;
pub mod turn;
mod wait;
pub mod workload;

pub use backend::{Backend, BackendChoice, Selected};
pub use error::StackError;
pub use keep::KeepPolicy;
pub use local::{BootReport, LocalStack};
pub use providers::{Providers, StandIn};
pub use stack::{CapabilityError, PortMode, Stack, StackOptions};
pub use turn::TurnKind;
pub use wire::Endpoints;
pub use workload::Workload;
