//! The stack a sequence of drills runs on: one at a time, rebooted only when a drill
//! needs another scale or seed.
//!
//! `drill run` and `drill matrix` drill many scenarios in a row. A boot costs a
//! fraction of a second locally and a few on docker, a reset tens of milliseconds; so
//! consecutive drills share a stack, reset between them, and a new one is booted only
//! when the clock's scale or the seed (which drives the catalogue and the history)
//! changes, or when the last one was kept for inspection.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use harness::bench::Partition;
use harness::scenario::{self, Scenario};
use stack::{Backend, PortMode, Stack, StackOptions, TurnKind};

use crate::backend_arg::BackendArg;

/// What `drill run`, `drill matrix` and `drill bench` drill on: which scenario files,
/// how much history, at which scale, on which backend.
#[derive(Args)]
pub struct StackArgs {
    /// Modeled seconds per real second; defaults to each scenario's own scale.
    #[arg(long)]
    scale: Option<f64>,
    /// Directory of scenario files.
    #[arg(long, env = "DRILL_SCENARIOS")]
    scenarios: Option<PathBuf>,
    /// How many tracks of history to load.
    #[arg(long, default_value_t = 2000)]
    tracks: usize,
    #[command(flatten)]
    backend: BackendArg,
}

impl StackArgs {
    /// Every scenario file of the chosen directory.
    pub fn load_scenarios(&self) -> anyhow::Result<Vec<Scenario>> {
        let dir = self.scenarios.clone().unwrap_or_else(scenario::default_dir);
        Ok(scenario::load_all(&dir)?)
    }

    /// The scale given on the command line, if one was.
    pub fn scale(&self) -> Option<f64> {
        self.scale
    }

    pub fn tracks(&self) -> usize {
        self.tracks
    }

    pub fn backend(&self) -> &BackendArg {
        &self.backend
    }

    /// The scale `scenario` is drilled at.
    pub fn scale_for(&self, scenario: &Scenario) -> f64 {
        self.scale.unwrap_or(scenario.scale)
    }

    /// Chooses the backend (and says which) and a stack sequence on it.
    pub async fn stacks(&self, label: String) -> anyhow::Result<Stacks> {
        let backend = self.backend.select().await?.backend;
        Stacks::new(backend, self.tracks, label)
    }
}

/// Which seeds `drill matrix` and `drill bench` drill under, and which shard of the run.
#[derive(Args)]
pub struct SeedArgs {
    /// How many seeds per scenario.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// The first seed; the others follow it.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Only this shard of the drills: `count:I/N` (as nextest's `--partition`).
    #[arg(long)]
    pub partition: Option<Partition>,
}

impl SeedArgs {
    pub fn seeds(&self) -> std::ops::Range<u64> {
        self.first_seed..self.first_seed + self.seeds
    }

    /// Whether the drill numbered `index` in the run's fixed order is this shard's.
    pub fn takes(&self, index: usize) -> bool {
        self.partition.is_none_or(|p| p.takes(index))
    }
}

/// One stack at a time, for drills that run one after another.
pub struct Stacks {
    backend: Backend,
    twin_binary: PathBuf,
    tracks: usize,
    label: String,
    current: Option<((u64, u64), Stack)>,
}

impl Stacks {
    pub fn new(backend: Backend, tracks: usize, label: String) -> anyhow::Result<Self> {
        let twin_binary = std::env::current_exe().context("finding the drill binary")?;
        Ok(Self {
            backend,
            twin_binary,
            tracks,
            label,
            current: None,
        })
    }

    /// A running stack at `scale` with data from `seed`.
    pub async fn get(&mut self, scale: f64, seed: u64) -> anyhow::Result<&Stack> {
        let key = (scale.to_bits(), seed);
        if self.current.as_ref().is_none_or(|(k, _)| *k != key) {
            self.shutdown().await?;
            eprintln!(
                "starting a {} stack (scale {scale}, seed {seed}, {} tracks)…",
                self.backend, self.tracks
            );
            let started = Instant::now();
            let stack = Stack::start(
                StackOptions {
                    ports: PortMode::Free,
                    scale,
                    seed,
                    tracks: self.tracks,
                    twin_binary: self.twin_binary.clone(),
                    label: self.label.clone(),
                    // The figures `drill` reports are measured with nothing beside
                    // them, whatever DRILL_TURNS allows the test suite.
                    turn: TurnKind::Alone,
                    compose_hashes: false,
                },
                self.backend,
            )
            .await
            .context("starting the stack")?;
            eprintln!("stack up in {:.2} s", started.elapsed().as_secs_f64());
            self.current = Some((key, stack));
        }
        Ok(&self.current.as_ref().expect("a stack was just started").1)
    }

    /// Leaves the current stack up for inspection and says how to reach it; the next
    /// drill gets a stack of its own.
    pub fn keep_current(&mut self) -> anyhow::Result<()> {
        if let Some((_, stack)) = self.current.take() {
            eprintln!("{}", stack.keep()?);
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some((_, stack)) = self.current.take() {
            stack.shutdown().await.context("stopping the stack")?;
        }
        Ok(())
    }
}
