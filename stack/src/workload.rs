//! The stack's steady workload: new tracks arriving through the two scrapers.
//!
//! Every symptom a drill reads must come from the twin working: failures fill the DLQ
//! because tracks keep arriving and failing, breakers open because calls keep being
//! made. The workload is how many tracks arrive per modeled minute. Each scraper polls
//! its site every [`SCRAPE_INTERVAL`] and inserts one listing page, so the rate is set
//! by the sites' page sizes, which the stand-ins change at run time
//! ([`crate::Providers::set_workload`]): no service restarts, and a scraper that
//! re-reads a page after a restart sees the same page.

use std::time::Duration;

use wire::api::SourceSite;

/// Modeled time between two scrapes of one site. The twin's own default is five
/// minutes; a stack scrapes every minute so that providers see steady traffic (a
/// HALF_OPEN breaker closes on the next call, rather than on the scraper's phase).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(60);

/// Database time of one data request of rest-api or graph-api (modeled): what a
/// query over SongNodes' production tables costs, which the stack's few thousand
/// tracks cannot. It is what makes API traffic need connections: at `r` requests a
/// modeled second a service holds about `r × QUERY_TIME` of its 10 + 20.
pub const QUERY_TIME: Duration = Duration::from_secs(4);

/// Tracks per modeled minute when nothing else is asked for.
pub const DEFAULT_TRACKS_PER_MINUTE: u32 = 20;

/// How many tracks arrive, on average, per modeled minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub tracks_per_minute: u32,
    /// Reads per modeled minute on each of rest-api and graph-api (see
    /// [`crate::traffic`]); none unless a scenario asks for them.
    pub api_requests_per_minute: u32,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            tracks_per_minute: DEFAULT_TRACKS_PER_MINUTE,
            api_requests_per_minute: 0,
        }
    }
}

impl Workload {
    /// The mean page size of each site that gives this rate (at least one track).
    pub fn page_size(self) -> u32 {
        let scrapes_per_minute =
            60.0 / SCRAPE_INTERVAL.as_secs_f64() * SourceSite::ALL.len() as f64;
        ((f64::from(self.tracks_per_minute) / scrapes_per_minute).round() as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_shared_by_both_sites_at_one_page_a_minute() {
        assert_eq!(Workload::default().page_size(), 10);
        assert_eq!(
            Workload {
                tracks_per_minute: 30,
                ..Workload::default()
            }
            .page_size(),
            15
        );
        assert_eq!(
            Workload {
                tracks_per_minute: 0,
                ..Workload::default()
            }
            .page_size(),
            1
        );
    }
}
