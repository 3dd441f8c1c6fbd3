//! The docker backend: the same twin as the local backend, as containers.
//!
//! PostgreSQL, Redis and every twin service run as containers on a docker network of
//! their own, from images built offline by `scripts/images` (no image can be pulled
//! on our machines): testcontainers starts PostgreSQL and Redis, ready by their log
//! lines, and bollard runs the twin's services, all with compose-style names and
//! labels (see [`stack`] for who does what and why). The harness reaches them through
//! ports published on 127.0.0.1; the containers reach the provider stand-ins
//! (wiremock, on the host's loopback) through small forwarders listening on the
//! network's gateway address, which is the host's side of the stack's own bridge. So
//! no traffic leaves loopback and the stack's network.
//!
//! Memory limits, OOM kills, pauses, container logs and stop/start/restart are the
//! real thing here, which is what the runbooks' `docker compose …` commands assume.
//!
//! - [`engine`]: connecting to the engine, labels, images, reaping what killed runs left;
//! - `spec`: how each container is configured (the twin's environment is the local
//!   backend's, with container addresses);
//! - `pgdata`: PostgreSQL's data directory, a copy of the template on the host;
//! - `sdk`: PostgreSQL and Redis started with testcontainers, from their spec;
//! - [`orchestrator`]: the runbooks' `docker compose …` verbs with bollard;
//! - [`compose_project`]: the stack as a compose project, for the real compose tool;
//! - [`compose_target`]: a real deployment's compose project, read-only (`drill check`);
//! - `container_reads`: a container's state, logs, stats and log options, for both;
//! - `boot`: booting a stack, from the engine check to every service ready;
//! - [`stack`]: [`DockerStack`], resetting and tearing down (on `Drop` too);
//! - [`faults`]: container-level faults (a full disk, the gateway cut off the providers);
//! - [`own_actions`]: what the harness does to containers, told apart from a person's;
//! - [`seen_actions`]: a person's actions on the containers, from the engine's events;
//! - `forward`: the gateway-side forwarders to the provider stand-ins.

mod boot;
pub mod compose_project;
pub mod compose_target;
mod container_reads;
pub mod engine;
pub mod faults;
mod forward;
pub mod orchestrator;
pub mod own_actions;
mod pgdata;
mod sdk;
pub mod seen_actions;
mod spec;
pub mod stack;

pub use engine::{DockerError, Images};
pub use orchestrator::DockerOrchestrator;
pub use stack::{DockerBootReport, DockerStack};
