//! Drifting a stack from the runbook text, for `drill check`'s own tests: a column
//! renamed, an endpoint moved, a JSON field renamed (see `twin::drift`). A drifted
//! stack stands in for a production system that changed under its runbooks; it is
//! for checking, not for drills (a chaos reset undoes the services' part, not the
//! column's).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use wire::Service;

use crate::{Stack, StackError};

/// One way the stack differs from what the runbooks were written against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drift {
    /// `data_quality_scores.created_at` is `scored_at`.
    Column,
    /// `/dlq/errors/grouped` moved to `/dlq/errors/by-type`.
    Endpoint,
    /// `/dlq/stats` says `message_count` for `total_messages`.
    Field,
}

/// The services that write the column or serve the endpoint and the field.
const DRIFTING: [Service; 4] = [
    Service::MetadataEnrichment,
    Service::MetadataEnrichmentWorker1,
    Service::MetadataEnrichmentWorker2,
    Service::DlqManager,
];

/// Makes `stack` drift in the given ways: the services first (their writers then use
/// the new column name), then the column itself.
pub async fn apply(stack: &Stack, drifts: &[Drift]) -> Result<(), StackError> {
    let drifts: BTreeSet<Drift> = drifts.iter().copied().collect();
    let params = json!({
        "column": drifts.contains(&Drift::Column),
        "endpoint": drifts.contains(&Drift::Endpoint),
        "field": drifts.contains(&Drift::Field),
    });
    let handles = stack.handles();
    for service in DRIFTING {
        let Some(base) = handles.chaos.get(&service) else {
            continue;
        };
        let url = base.join("chaos/drift").expect("a relative path joins");
        let failed = |reason: String| StackError::Chaos {
            service,
            action: "turning drift on",
            url: url.to_string(),
            reason,
        };
        let response = handles
            .http
            .put(url.clone())
            .json(&params)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(response.status().to_string()));
        }
    }
    if drifts.contains(&Drift::Column) {
        sqlx::query("ALTER TABLE data_quality_scores RENAME COLUMN created_at TO scored_at")
            .execute(&handles.admin)
            .await
            .map_err(|source| StackError::Database {
                action: "renaming data_quality_scores.created_at".into(),
                source,
            })?;
    }
    Ok(())
}
