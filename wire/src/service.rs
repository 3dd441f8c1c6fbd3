//! The SongNodes services by their compose names, and the ports the runbooks name.
//!
//! The runbook text addresses services the way `docker compose` does
//! (`docker compose restart rest-api graph-api`), and endpoints by fixed ports
//! (`localhost:8020`). Drill mode binds exactly these ports; test mode binds free
//! ones so that stacks run side by side.

use std::fmt;
use std::str::FromStr;

/// One service of the twin: a process on the local backend, a container on docker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Postgres,
    Redis,
    MetadataEnrichment,
    MetadataEnrichmentWorker1,
    MetadataEnrichmentWorker2,
    ApiGatewayInternal,
    DlqManager,
    ScraperMixesdb,
    Scraper1001Tracklists,
    RestApi,
    GraphApi,
}

/// The kind of program a service runs, for the twin's dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Database,
    Cache,
    Enrichment,
    EnrichmentWorker,
    Gateway,
    DlqManager,
    Scraper,
    TrackApi,
}

impl Service {
    pub const ALL: [Service; 11] = [
        Service::Postgres,
        Service::Redis,
        Service::MetadataEnrichment,
        Service::MetadataEnrichmentWorker1,
        Service::MetadataEnrichmentWorker2,
        Service::ApiGatewayInternal,
        Service::DlqManager,
        Service::ScraperMixesdb,
        Service::Scraper1001Tracklists,
        Service::RestApi,
        Service::GraphApi,
    ];

    /// The twin's own programs, in start order: every one of them is `drill twin <name>`.
    pub const TWIN: [Service; 9] = [
        Service::ApiGatewayInternal,
        Service::MetadataEnrichment,
        Service::DlqManager,
        Service::MetadataEnrichmentWorker1,
        Service::MetadataEnrichmentWorker2,
        Service::ScraperMixesdb,
        Service::Scraper1001Tracklists,
        Service::RestApi,
        Service::GraphApi,
    ];

    /// The twin's services in the order a stack starts them, wave by wave, as compose's
    /// `depends_on` with health checks would: everything a worker calls (enrichment,
    /// and the gateway enrichment calls) is ready before a worker takes its first
    /// track. A worker started beside them would count the refused connections of a
    /// slow start as provider failures and open breakers on a fresh stack.
    pub const TWIN_START_ORDER: [&'static [Service]; 2] = [
        &[
            Service::ApiGatewayInternal,
            Service::MetadataEnrichment,
            Service::DlqManager,
            Service::ScraperMixesdb,
            Service::Scraper1001Tracklists,
            Service::RestApi,
            Service::GraphApi,
        ],
        &[
            Service::MetadataEnrichmentWorker1,
            Service::MetadataEnrichmentWorker2,
        ],
    ];

    /// The compose name, as the runbook writes it.
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::MetadataEnrichment => "metadata-enrichment",
            Service::MetadataEnrichmentWorker1 => "metadata-enrichment-worker-1",
            Service::MetadataEnrichmentWorker2 => "metadata-enrichment-worker-2",
            Service::ApiGatewayInternal => "api-gateway-internal",
            Service::DlqManager => "dlq-manager",
            Service::ScraperMixesdb => "scraper-mixesdb",
            Service::Scraper1001Tracklists => "scraper-1001tracklists",
            Service::RestApi => "rest-api",
            Service::GraphApi => "graph-api",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Service::Postgres => Role::Database,
            Service::Redis => Role::Cache,
            Service::MetadataEnrichment => Role::Enrichment,
            Service::MetadataEnrichmentWorker1 | Service::MetadataEnrichmentWorker2 => {
                Role::EnrichmentWorker
            }
            Service::ApiGatewayInternal => Role::Gateway,
            Service::DlqManager => Role::DlqManager,
            Service::ScraperMixesdb | Service::Scraper1001Tracklists => Role::Scraper,
            Service::RestApi | Service::GraphApi => Role::TrackApi,
        }
    }

    /// The port the runbook (or the SongNodes compose file) gives the service, if it serves one.
    pub fn drill_port(self) -> Option<u16> {
        match self {
            Service::Postgres => Some(5433),
            Service::Redis => Some(6379),
            Service::MetadataEnrichment => Some(8020),
            Service::ApiGatewayInternal => Some(8022),
            Service::DlqManager => Some(8024),
            Service::RestApi => Some(8082),
            Service::GraphApi => Some(8084),
            _ => None,
        }
    }

    /// Whether the runbooks count it as non-critical (stopped first when disk runs out).
    pub fn is_scraper(self) -> bool {
        self.role() == Role::Scraper
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the SongNodes services.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown service '{0}'; the services are: {list}", list = Service::ALL.map(Service::name).join(", "))]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == name)
            .ok_or_else(|| UnknownService(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_parses_back_from_its_compose_name() {
        for service in Service::ALL {
            assert_eq!(service.name().parse::<Service>(), Ok(service));
        }
    }

    #[test]
    fn an_unknown_name_lists_the_real_ones() {
        let err = "scraper".parse::<Service>().unwrap_err().to_string();
        assert!(err.contains("scraper-mixesdb"), "{err}");
    }

    #[test]
    fn the_start_order_starts_every_twin_service_once_and_workers_last() {
        let mut ordered: Vec<Service> = Service::TWIN_START_ORDER.concat();
        assert_eq!(ordered.len(), Service::TWIN.len());
        ordered.sort_by_key(|s| s.name());
        ordered.dedup();
        assert_eq!(ordered.len(), Service::TWIN.len());
        let last = Service::TWIN_START_ORDER.last().unwrap();
        assert!(last.iter().all(|s| s.role() == Role::EnrichmentWorker));
    }

    #[test]
    fn the_documented_ports_are_the_runbooks() {
        assert_eq!(Service::MetadataEnrichment.drill_port(), Some(8020));
        assert_eq!(Service::ApiGatewayInternal.drill_port(), Some(8022));
        assert_eq!(Service::DlqManager.drill_port(), Some(8024));
        assert_eq!(Service::Postgres.drill_port(), Some(5433));
    }
}
