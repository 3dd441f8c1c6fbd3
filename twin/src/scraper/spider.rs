//! The spider loop: one page per interval, resumed from the checkpoint, never dying
//! of a bad page, and able to hang the way a real spider does.
//!
//! A source error is logged and retried at the next interval, because a scraper that
//! exits on a flaky site is worse than one that waits. The `hang` chaos switch stalls
//! the loop forever on a pending future, with the process alive and silent: the
//! "Scraper Stalled" incident. Turning the switch off does not unstick it (a hung
//! spider does not notice); only a restart of the process does, which is what the
//! runbook prescribes.

use std::time::Duration;

use wire::Clock;

use super::site::Site;
use super::store::ScraperStore;
use crate::chaos::Chaos;

/// The chaos switch that hangs the spider.
pub const HANG: &str = "hang";

pub struct Spider {
    pub site: Site,
    pub store: ScraperStore,
    pub clock: Clock,
    pub interval: Duration,
    pub chaos: Chaos,
}

impl Spider {
    /// Polls right away, then every interval, forever.
    pub async fn run(self) -> anyhow::Result<()> {
        let mut tick = self.clock.interval(self.interval);
        loop {
            tick.tick().await;
            self.hang_if_switched().await;
            self.scrape_one_page().await;
        }
    }

    async fn scrape_one_page(&self) {
        let page_number = match self.store.next_page().await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!("{error}; retrying in {}", self.interval_text());
                return;
            }
        };
        let page = match self.site.fetch(page_number).await {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(
                    "scraping page {page_number} failed: {error}; retrying in {}",
                    self.interval_text()
                );
                return;
            }
        };
        // A spider may hang mid-page too; then nothing of the page is written.
        self.hang_if_switched().await;
        let incomplete = page.incomplete_positions();
        if !incomplete.is_empty() {
            tracing::warn!(
                "page {page_number}: entries {incomplete:?} of {} lack an artist or title; \
                 inserted as-is for enrichment to classify",
                page.title
            );
        }
        let next = next_checkpoint(page_number, page.next_page);
        match self.store.save_page(&page, next, self.clock.now()).await {
            Ok(inserted) => tracing::info!(
                "scraped page {page_number}: {inserted} tracks from {}",
                page.title
            ),
            Err(error) => tracing::error!(
                "scraped page {page_number} but could not save it: {error}; retrying in {}",
                self.interval_text()
            ),
        }
    }

    /// Blocks while the `hang` switch is on: no more pages, no more log lines. Only a
    /// restart (a new process, without the switch) or the harness turning the switch
    /// off ends it; nothing the spider itself does.
    async fn hang_if_switched(&self) {
        if self.chaos.is_on(HANG) {
            tracing::debug!("spider hung");
            while self.chaos.is_on(HANG) {
                self.clock.sleep(Duration::from_secs(1)).await;
            }
        }
    }

    fn interval_text(&self) -> String {
        format!("{} s (modeled)", self.interval.as_secs())
    }
}

/// The page after `current`: the one the site advertises when it lies ahead, else the
/// following one, so the checkpoint always moves forward and never re-inserts a page.
pub fn next_checkpoint(current: i32, advertised: Option<i32>) -> i32 {
    advertised
        .filter(|&next| next > current)
        .unwrap_or_else(|| current.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_follows_the_site_forward_only() {
        assert_eq!(next_checkpoint(1, Some(2)), 2);
        assert_eq!(next_checkpoint(3, Some(7)), 7);
        // A site that always says "next: 2", or says nothing, still moves us on.
        assert_eq!(next_checkpoint(5, Some(2)), 6);
        assert_eq!(next_checkpoint(5, Some(5)), 6);
        assert_eq!(next_checkpoint(5, None), 6);
    }
}
