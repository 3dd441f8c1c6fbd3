//! `--backend`: which backend runs the stack, shared by `drill up` and `drill run`.

use anyhow::Context;
use clap::Args;
use harness::{BackendChoice, Selected};

#[derive(Args, Clone, Debug)]
pub struct BackendArg {
    /// Which backend runs the stack: `local` (processes of this machine), `docker`
    /// (containers from the images `scripts/images` builds), or `auto`: docker when an
    /// engine answers and the images are there, else local. The choice is printed.
    #[arg(long, env = harness::backend::BACKEND_ENV, default_value = "auto", value_parser = parse_choice)]
    backend: BackendChoice,
}

fn parse_choice(text: &str) -> Result<BackendChoice, String> {
    text.parse().map_err(|e: harness::StackError| e.to_string())
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
