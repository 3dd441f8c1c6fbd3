//! `--backend`: which backend runs the stack, shared by `drill up` and `drill run`.

use anyhow::Context;
use clap::Args;
use stack::{BackendChoice, Selected};

#[derive(Args, Clone, Debug)]
pub struct BackendArg {
    /// Which backend runs the stack: `local` (processes of this machine), `docker`
    /// (containers from the images `scripts/images` builds), or `auto`: docker when an
    /// engine answers and the images are there, else local. The choice is printed.
    #[arg(long, env = stack::backend::BACKEND_ENV, default_value = "auto", value_parser = parse_choice)]
    backend: BackendChoice,
}

fn parse_choice(text: &str) -> Result<BackendChoice, String> {
    text.parse().map_err(|e: stack::StackError| e.to_string())
}

impl BackendArg {
    /// Decides, and says which backend it took and why.
    pub async fn select(&self) -> anyhow::Result<Selected> {
        let selected = self
            .backend
            .select()
            .await
            .context("choosing the backend")?;
        eprintln!("{selected}");
        Ok(selected)
    }
}

/// `drill backend`: which backend `auto` takes on this machine, and why.
#[derive(Args)]
pub struct BackendCommand {
    /// Exit 1 unless this backend can run here (`local`, `docker` or `auto`).
    #[arg(long, value_parser = parse_choice)]
    check: Option<BackendChoice>,
}

impl BackendCommand {
    pub async fn run(self) -> anyhow::Result<bool> {
        let choice = self.check.unwrap_or_default();
        match choice.select().await {
            Ok(selected) => {
                println!("{selected}");
                Ok(true)
            }
            Err(why) => {
                println!("{choice:?} cannot run here: {why}");
                Ok(false)
            }
        }
    }
}
