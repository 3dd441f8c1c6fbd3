//! TODO: scraper service.

use crate::{TwinConfig, chaos::Chaos};

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    let _ = (config, chaos);
    anyhow::bail!("not yet implemented")
}
