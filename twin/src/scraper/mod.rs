//! scraper-mixesdb and scraper-1001tracklists: one program that feeds new tracks into
//! the enrichment queue from either site.
//!
//! Which site is read follows from the compose name ([`source::Source::scraped_by`]); the rest
//! (checkpointing, the polling loop, failure handling, the `hang` fault) is shared.
//! A scraper serves no API: the runbook watches it through its logs, `docker compose
//! ps`, and `MAX(created_at)` of `tracks`.

mod site;
mod source;
mod spider;
mod store;

use std::time::Duration;

use anyhow::Context;
use wire::env;

use crate::chaos::Chaos;
use crate::{TwinConfig, db};

/// Modeled seconds between polls when `SCRAPE_INTERVAL_SECONDS` is unset.
const DEFAULT_INTERVAL_SECS: u64 = 300;
/// A scraper writes one page at a time; two connections cover a checkpoint read
/// overlapping a slow commit.
const POOL_CONNECTIONS: u32 = 2;

pub async fn run(config: TwinConfig, chaos: Chaos) -> anyhow::Result<()> {
    let source = source::Source::scraped_by(config.service)
        .with_context(|| format!("{} is not a scraper", config.service))?;
    let database_url = config.require(&config.database_url, env::DATABASE_URL)?;
    let source_url = config.require(&config.source_url, env::SOURCE_URL)?;
    let interval = scrape_interval(&config);
    let site = site::Site::new(source, &source_url, config.clock)?;
    tracing::info!(
        "{} scraping {} every {} s (modeled)",
        config.service,
        site.endpoint(),
        interval.as_secs()
    );

    // The database may come up after us; a scraper waits for it rather than exiting.
    let pool = loop {
        match db::connect(&database_url, config.service, POOL_CONNECTIONS).await {
            Ok(pool) => break pool,
            Err(error) => {
                tracing::error!(
                    "cannot reach the database: {error:#}; retrying in {} s (modeled)",
                    interval.as_secs()
                );
                config.clock.sleep(interval).await;
            }
        }
    };
    let store = store::ScraperStore::new(pool, config.service.name(), source);
    match store.next_page().await {
        Ok(page) => tracing::info!("resuming from page {page}"),
        Err(error) => tracing::warn!("{error}; will retry at the first poll"),
    }
    spider::Spider {
        site,
        store,
        clock: config.clock,
        interval,
        chaos,
    }
    .run()
    .await
}

/// The poll interval. `TwinConfig` falls back to 60 s when the variable is unset;
/// the SongNodes scrapers poll every 5 minutes, so an unset variable means that here.
fn scrape_interval(config: &TwinConfig) -> Duration {
    let set = std::env::var(env::SCRAPE_INTERVAL_SECS).is_ok_and(|value| !value.is_empty());
    if set {
        config.scrape_interval
    } else {
        Duration::from_secs(DEFAULT_INTERVAL_SECS)
    }
}
