//! The harness: brings up a twin of the SongNodes stack and keeps it in a known state.
//!
//! [`Stack::start`] boots PostgreSQL (from a cached, seeded template), Redis, the
//! provider stand-ins ([`providers`]) and every twin service, on the [`local`] backend
//! (processes) or the [`docker`] one (containers), as [`backend`] chose, and hands out
//! what a drill needs: [`Endpoints`], the modeled [`wire::Clock`], an
//! [`runbooks::ops::Orchestrator`] and each service's chaos address.
//! [`Stack::reset`] puts a running stack back to its seeded state between test cases;
//! dropping a stack stops everything it started, even after a panic, and the next
//! start reaps what a killed run left behind.
//!
//! The data the stack starts with comes from one seed: the [`catalogue`] of tracks the
//! providers know, and the [`seed`] history loaded into musicdb.
#![forbid(unsafe_code)]

pub mod backend;
pub mod catalogue;
pub mod dirs;
pub mod docker;
pub mod drill;
mod error;
mod handles;
pub mod keep;
pub mod local;
pub mod ports;
pub mod providers;
pub mod seed;
mod stack;
mod wait;

pub use backend::{Backend, BackendChoice, Selected};
pub use error::StackError;
pub use keep::KeepPolicy;
pub use local::{BootReport, LocalStack};
pub use providers::{Provider, Providers};
pub use stack::{Endpoints, PortMode, Stack, StackOptions};
