//! Twin fidelity: the shape of what a deployment answers, against a fresh twin's.
//!
//! `drill check --compare-twin` reads, from the target and from a twin started for
//! the purpose, the same things: every JSON endpoint the runbook text reads with GET
//! (each key path and the type of its value), the columns of the `public` schema
//! (and their types), and the metric names of every service's `/metrics`. Where the
//! two differ, the twin no longer copies the system (or the system has drifted from
//! its runbooks): a renamed field, a moved endpoint, a renamed column.
//!
//! Values are not compared, only shapes. Objects keyed by data (error kinds,
//! providers) are compared by their keys like any other object, so a twin and a
//! target whose data differ can differ there too; the report says which side has what.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::ops::{HttpApi, Ops};
use crate::playbook::{self, Matcher};

/// What one side answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// `GET <service> <path>` → key path → JSON type, or `(answer)` → the error.
    pub json: BTreeMap<String, BTreeMap<String, String>>,
    /// `table.column` → type.
    pub columns: BTreeMap<String, String>,
    /// service → metric names.
    pub metrics: BTreeMap<String, BTreeSet<String>>,
}

/// The key under which an endpoint that did not answer with JSON records why.
const ANSWER: &str = "(answer)";

/// The GET endpoints the runbook text reads, as `(service, path)`, without paths that
/// take parameters.
pub fn endpoints_read() -> BTreeSet<(String, String)> {
    crate::all()
        .iter()
        .flat_map(|r| playbook::steps_for(r.meta().title, None))
        .filter_map(|step| match step.matcher {
            Matcher::Http {
                service,
                method,
                path,
            } if method == "GET" && path != "/metrics" && !path.contains('{') => {
                Some((service, path))
            }
            _ => None,
        })
        .collect()
}

fn api<'a>(ops: &'a Ops, service: &str) -> Option<&'a HttpApi> {
    Some(match service {
        "metadata-enrichment" => &ops.enrichment.0,
        "api-gateway-internal" => &ops.gateway.0,
        "dlq-manager" => &ops.dlq.0,
        "rest-api" => &ops.rest_api.0,
        "graph-api" => &ops.graph_api.0,
        _ => return None,
    })
}

/// Reads the shape of what `ops` reaches.
pub async fn take(ops: &Ops) -> Shape {
    let mut shape = Shape::default();
    for (service, path) in endpoints_read() {
        let Some(api) = api(ops, &service) else {
            continue;
        };
        let mut keys = BTreeMap::new();
        match api.get_json::<Value>(&path).await {
            Ok(value) => flatten(&value, String::new(), &mut keys),
            Err(error) => {
                keys.insert(ANSWER.to_owned(), error.to_string());
            }
        }
        shape.json.insert(format!("GET {service} {path}"), keys);
    }
    for service in [
        "metadata-enrichment",
        "api-gateway-internal",
        "dlq-manager",
        "rest-api",
        "graph-api",
    ] {
        let Some(api) = api(ops, service) else {
            continue;
        };
        if let Ok(text) = api.get_text("/metrics").await {
            shape
                .metrics
                .insert(service.to_owned(), metric_names(&text));
        }
    }
    let columns: Result<Vec<(String, String, String)>, _> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY table_name, column_name",
    )
    .fetch_all(&ops.db)
    .await;
    for (table, column, kind) in columns.unwrap_or_default() {
        shape.columns.insert(format!("{table}.{column}"), kind);
    }
    shape
}

/// Every key path of `value` with the JSON type at it; an array's elements are one
/// path, `[]`.
fn flatten(value: &Value, at: String, out: &mut BTreeMap<String, String>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(items) => {
            for item in items.iter().take(1) {
                flatten(item, format!("{at}[]"), out);
            }
            "array"
        }
        Value::Object(map) => {
            for (key, item) in map {
                flatten(item, format!("{at}.{key}"), out);
            }
            "object"
        }
    };
    out.insert(
        if at.is_empty() { ".".to_owned() } else { at },
        kind.to_owned(),
    );
}

fn metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// One way the target differs from the twin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// `json`, `column` or `metric`.
    pub kind: &'static str,
    /// The endpoint, table or service.
    pub place: String,
    /// What differs, in a line.
    pub what: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.place, self.what)
    }
}

/// Where `target` differs from `twin`.
pub fn compare(target: &Shape, twin: &Shape) -> Vec<Difference> {
    let mut differences = Vec::new();
    for (endpoint, twin_keys) in &twin.json {
        let empty = BTreeMap::new();
        let target_keys = target.json.get(endpoint).unwrap_or(&empty);
        match (target_keys.get(ANSWER), twin_keys.get(ANSWER)) {
            (Some(error), None) => {
                differences.push(Difference {
                    kind: "json",
                    place: endpoint.clone(),
                    what: format!("answers in the twin, not in the target: {error}"),
                });
                continue;
            }
            (None, Some(error)) => {
                differences.push(Difference {
                    kind: "json",
                    place: endpoint.clone(),
                    what: format!("answers in the target, not in the twin: {error}"),
                });
                continue;
            }
            (Some(_), Some(_)) => continue,
            (None, None) => {}
        }
        compare_maps("json", endpoint, target_keys, twin_keys, &mut differences);
    }
    let by_table = |columns: &BTreeMap<String, String>| {
        let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (name, kind) in columns {
            let (table, column) = name.split_once('.').unwrap_or((name, ""));
            tables
                .entry(table.to_owned())
                .or_default()
                .insert(column.to_owned(), kind.clone());
        }
        tables
    };
    let (target_tables, twin_tables) = (by_table(&target.columns), by_table(&twin.columns));
    for (table, twin_columns) in &twin_tables {
        match target_tables.get(table) {
            Some(target_columns) => {
                compare_maps(
                    "column",
                    table,
                    target_columns,
                    twin_columns,
                    &mut differences,
                );
            }
            None => differences.push(Difference {
                kind: "column",
                place: table.clone(),
                what: "table in the twin, missing in the target".to_owned(),
            }),
        }
    }
    for (service, twin_names) in &twin.metrics {
        let empty = BTreeSet::new();
        let target_names = target.metrics.get(service).unwrap_or(&empty);
        for name in twin_names.difference(target_names) {
            differences.push(Difference {
                kind: "metric",
                place: service.clone(),
                what: format!("{name} in the twin, missing in the target"),
            });
        }
        for name in target_names.difference(twin_names) {
            differences.push(Difference {
                kind: "metric",
                place: service.clone(),
                what: format!("{name} in the target, not in the twin"),
            });
        }
    }
    differences
}

fn compare_maps(
    kind: &'static str,
    place: &str,
    target: &BTreeMap<String, String>,
    twin: &BTreeMap<String, String>,
    out: &mut Vec<Difference>,
) {
    for (key, twin_type) in twin {
        let what = match target.get(key) {
            None => format!("{key} ({twin_type}) in the twin, missing in the target"),
            Some(target_type) if target_type != twin_type => {
                format!("{key} is {target_type} in the target, {twin_type} in the twin")
            }
            Some(_) => continue,
        };
        out.push(Difference {
            kind,
            place: place.to_owned(),
            what,
        });
    }
    for (key, target_type) in target {
        if !twin.contains_key(key) {
            out.push(Difference {
                kind,
                place: place.to_owned(),
                what: format!("{key} ({target_type}) in the target, not in the twin"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_field_a_moved_endpoint_and_a_renamed_column_show_as_differences() {
        let mut twin = Shape::default();
        let mut target = Shape::default();
        let keys = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        twin.json.insert(
            "GET dlq-manager /dlq/stats".into(),
            keys(&[(".", "object"), (".total_messages", "number")]),
        );
        target.json.insert(
            "GET dlq-manager /dlq/stats".into(),
            keys(&[(".", "object"), (".message_count", "number")]),
        );
        twin.json.insert(
            "GET dlq-manager /dlq/errors/grouped".into(),
            keys(&[(".", "object")]),
        );
        target.json.insert(
            "GET dlq-manager /dlq/errors/grouped".into(),
            keys(&[(ANSWER, "404 Not Found")]),
        );
        twin.columns.insert(
            "data_quality_scores.created_at".into(),
            "timestamp with time zone".into(),
        );
        target.columns.insert(
            "data_quality_scores.scored_at".into(),
            "timestamp with time zone".into(),
        );
        let found: Vec<String> = compare(&target, &twin)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "json GET dlq-manager /dlq/errors/grouped: answers in the twin, not in the target: 404 Not Found",
                "json GET dlq-manager /dlq/stats: .total_messages (number) in the twin, missing in the target",
                "json GET dlq-manager /dlq/stats: .message_count (number) in the target, not in the twin",
                "column data_quality_scores: created_at (timestamp with time zone) in the twin, missing in the target",
                "column data_quality_scores: scored_at (timestamp with time zone) in the target, not in the twin",
            ]
        );
        assert!(compare(&twin, &twin).is_empty());
    }

    #[test]
    fn the_endpoints_read_are_the_runbook_texts_gets() {
        let read = endpoints_read();
        assert!(read.contains(&("dlq-manager".to_owned(), "/dlq/stats".to_owned())));
        assert!(read.contains(&("dlq-manager".to_owned(), "/dlq/errors/grouped".to_owned())));
        assert!(read.contains(&("metadata-enrichment".to_owned(), "/health".to_owned())));
        assert!(!read.iter().any(|(_, path)| path == "/metrics"));
    }

    #[test]
    fn metric_names_leave_out_help_and_labels() {
        let names = metric_names("# HELP x y\n# TYPE x gauge\nx 1\ny{a=\"b\"} 2\n\n");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["x", "y"]);
    }
}
