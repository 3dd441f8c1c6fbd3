//! The local backend: PostgreSQL and Redis from the host's binaries, the twin's services
//! as child processes, everything on loopback and under one run directory.
//!
//! - [`LocalStack`]: the handle of a running local stack;
//! - [`boot`]: the steps of bringing a stack up;
//! - [`binaries`]: finding the programs before anything starts;
//! - [`template`]: the cached, seeded PostgreSQL data directory each stack copies;
//! - `postgres`, `redis`, `twin`: how each kind of service is launched and probed;
//! - `process`, `supervisor`: children, their states, and start/stop/kill/pause;
//! - [`orchestrator`]: `docker compose …` verbs over the supervisor;
//! - [`run_dir`], [`reaper`], [`procfs`]: records that let a later run clean up after a
//!   killed one;
//! - [`logs`]: one log file per service, and reading its tail;
//! - [`disk`]: the stack's size-limited disk for log files and backups.

pub mod binaries;
pub mod boot;
pub mod disk;
pub mod logs;
pub mod orchestrator;
pub(crate) mod postgres;
pub(crate) mod process;
pub mod procfs;
pub mod reaper;
pub(crate) mod redis;
pub mod run_dir;
mod stack;
pub(crate) mod supervisor;
pub mod template;
pub(crate) mod twin;

pub use binaries::Binaries;
pub use orchestrator::{JUNK_DIR, LocalOrchestrator};
pub use reaper::{ReapReport, ReapScope, StaleRun, reap_stale_runs, stale_runs};
pub use stack::{BootReport, LocalStack};
pub use template::{Template, TemplateOutcome};
