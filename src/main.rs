//! `drill`: the command line of runbook-drill.
//!
//! - `drill up` brings the SongNodes twin up at the ports the runbooks name, with
//!   seed data loaded and the pipeline running, until Ctrl-C: a game-day stack.
//! - `drill list` lists the runbooks and their scenarios; `drill run` drills them
//!   (`--control`: without their resolution); `drill matrix` measures how well each
//!   runbook's investigation chooses among its scenarios; `drill bench` measures time
//!   to resolution over seeds against a saved baseline; `drill lint` reads runbooks'
//!   Markdown for what drilling showed to be wrong or risky; `drill check` runs the
//!   runbooks' reads against a real deployment, read-only.
//! - `drill gameday` runs a game day: an incident on a stack at the documented ports, a
//!   page, a live board, the responder observed, a report; `drill compose` carries out
//!   the runbooks' `docker compose` lines against it.
//! - `drill backend` says which backend `auto` takes here; `drill reap` lists or
//!   removes what killed runs left behind.
//! - `drill twin <service>` runs one twin service; the backends start these.
#![forbid(unsafe_code)]

mod approve;
mod backend_arg;
mod bench;
mod check;
mod gameday;
mod lint;
mod matrix;
mod reap;
mod run;
mod stacks;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "drill",
    version,
    about = "Proves operations runbooks work: brings up a twin of the stack, injects a fault, runs the runbook, checks its verification",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Up(up::UpArgs),
    Run(run::RunArgs),
    Matrix(matrix::MatrixArgs),
    Bench(bench::BenchArgs),
    Lint(lint::LintArgs),
    Check(check::CheckArgs),
    Gameday(gameday::GamedayArgs),
    /// Carries out the runbooks' `docker compose` lines against a running game day.
    Compose(gameday::compose::ComposeArgs),
    /// Lists the runbooks and their scenarios.
    List {
        /// Directory of scenario files.
        #[arg(long, env = "DRILL_SCENARIOS")]
        scenarios: Option<std::path::PathBuf>,
    },
    /// Says which backend `auto` takes on this machine, and why.
    Backend(backend_arg::BackendCommand),
    /// Lists or removes what killed runs left behind (processes, containers, …).
    Reap(reap::ReapArgs),
    /// Runs one SongNodes service of the twin (started by the backends, not by hand).
    #[command(hide = true)]
    Twin {
        /// The service's compose name, e.g. metadata-enrichment.
        service: wire::Service,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Twin { service } => runtime.block_on(twin::run(service)),
        Command::Up(args) => {
            init_logging();
            runtime.block_on(up::run(args))
        }
        Command::List { scenarios } => run::list(scenarios),
        Command::Backend(command) => exit_unless(runtime.block_on(command.run())?),
        Command::Reap(args) => {
            init_logging();
            exit_unless(runtime.block_on(reap::run(args))?)
        }
        Command::Run(args) => {
            init_logging();
            exit_unless(runtime.block_on(run::run(args))?)
        }
        Command::Matrix(args) => {
            init_logging();
            exit_unless(runtime.block_on(matrix::run(args))?)
        }
        Command::Lint(args) => exit_unless(lint::run(args)?),
        Command::Check(args) => {
            init_logging();
            exit_unless(runtime.block_on(check::run(args))?)
        }
        Command::Bench(args) => {
            init_logging();
            exit_unless(runtime.block_on(bench::run(args))?)
        }
        Command::Gameday(args) => {
            init_logging();
            exit_unless(runtime.block_on(gameday::run(args))?)
        }
        Command::Compose(args) => exit_unless(runtime.block_on(gameday::compose::run(args))?),
    }
}

/// Exit status 1 when a command's check failed.
fn exit_unless(ok: bool) -> anyhow::Result<()> {
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
