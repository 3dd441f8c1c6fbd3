//! `drill`: the command line of runbook-drill.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "drill", version, about = "Proves operations runbooks work")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one SongNodes service of the twin (used by the backends, not by hand).
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
    }
}
