//! The SongNodes runbooks as code.
//!
//! A runbook implementation talks to the stack only over the wire (HTTP, SQL,
//! Redis, the service orchestrator), through the [`ops`] facade, so that the same
//! code can be pointed at a real deployment. Each runbook is a module: its header and
//! alert rule (`META`), its scenarios as an enum, its investigation, resolution and
//! verification; [`steps`] holds the steps several runbooks share.
#![forbid(unsafe_code)]
// Step errors carry the URL, status and body excerpt a failed drill must report;
// they are rare and off the hot path, so their size is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod alert;
pub mod api_gateway_errors;
pub mod check;
pub mod circuit_breaker_storm;
pub mod criteria;
pub mod data_quality;
pub mod db_connection_pool;
pub mod disk_space;
pub mod dlq_overflow;
pub mod enrichment_success_rate;
pub mod lint;
pub mod memory;
pub mod ops;
pub mod playbook;
pub mod probe;
pub mod runbook;
pub mod scraper_stalled;
pub mod steps;

pub use alert::{AlertRule, Severity};
pub use runbook::{
    Diagnosis, DiagnosisReport, DynRunbook, Evidence, Runbook, RunbookMeta, Scenario, ScenarioId,
};

/// Every runbook this build can drill, by id.
pub fn all() -> Vec<Box<dyn DynRunbook>> {
    vec![
        Box::new(dlq_overflow::DlqOverflow),
        Box::new(circuit_breaker_storm::CircuitBreakerStorm),
        Box::new(db_connection_pool::DbConnectionPool),
        Box::new(disk_space::DiskSpace),
        Box::new(memory::Memory),
        Box::new(scraper_stalled::ScraperStalled),
        Box::new(enrichment_success_rate::EnrichmentSuccessRate),
        Box::new(data_quality::DataQuality),
        Box::new(api_gateway_errors::ApiGatewayErrors),
    ]
}

/// The alert rules of the Quick Alert Index, one per runbook.
pub fn alert_rules() -> Vec<&'static AlertRule> {
    all().iter().map(|r| &r.meta().rule).collect()
}

/// The runbook with this id (`dlq-overflow`), or an error listing the known ids.
pub fn by_id(id: &str) -> Result<Box<dyn DynRunbook>, UnknownRunbook> {
    all()
        .into_iter()
        .find(|r| r.meta().id() == id)
        .ok_or_else(|| UnknownRunbook {
            id: id.to_owned(),
            known: all()
                .iter()
                .map(|r| r.meta().id())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[derive(Debug, thiserror::Error)]
#[error("unknown runbook '{id}'; known runbooks: {known}")]
pub struct UnknownRunbook {
    pub id: String,
    pub known: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_has_nine_rules_with_distinct_names_and_runbooks() {
        let rules = alert_rules();
        assert_eq!(rules.len(), 9);
        let names: std::collections::BTreeSet<_> = rules.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 9);
        let runbooks: std::collections::BTreeSet<_> = rules.iter().map(|r| r.runbook).collect();
        assert_eq!(runbooks.len(), 9);
    }

    #[test]
    fn an_unknown_runbook_lists_the_known_ones() {
        let Err(error) = by_id("dlq-overflw") else {
            panic!("no such runbook")
        };
        assert_eq!(
            error.to_string(),
            "unknown runbook 'dlq-overflw'; known runbooks: dlq-overflow, circuit-breaker-storm, db-connection-pool, disk-space, memory, scraper-stalled, enrichment-success-rate, data-quality, api-gateway-errors"
        );
    }
}
