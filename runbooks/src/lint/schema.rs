//! What the stack has, for the rules that check a runbook's endpoints and tables: the
//! HTTP routes of each service at its documented port, and the tables of the
//! `musicdb` schema the stack loads (read from its migration, so the two cannot
//! drift apart).

/// `(method, path)` of a route: `{x}` is one path segment, `{*x}` the rest of the path.
pub type Route = (&'static str, &'static str);

/// The documented port of each HTTP service, its name, and its routes.
pub const ROUTES: [(u16, &str, &[Route]); 5] = [
    (
        8020,
        "metadata-enrichment",
        &[
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/stats"),
            ("GET", "/stats/by-provider"),
            ("POST", "/enrich"),
            ("POST", "/admin/config/reload"),
            ("POST", "/admin/circuit-breakers/reset-all"),
            ("POST", "/admin/cache/warm"),
        ],
    ),
    (
        8022,
        "api-gateway-internal",
        &[
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/{provider}/{*path}"),
        ],
    ),
    (
        8024,
        "dlq-manager",
        &[
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/dlq/stats"),
            ("GET", "/dlq/errors/grouped"),
            ("GET", "/dlq/messages"),
            ("DELETE", "/dlq/messages/before/{date}"),
            ("POST", "/dlq/replay/batch"),
        ],
    ),
    (
        8082,
        "rest-api",
        &[
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/tracks"),
            ("GET", "/api/v1/tracks/search"),
            ("GET", "/api/v1/tracks/{id}"),
        ],
    ),
    (
        8084,
        "graph-api",
        &[
            ("GET", "/health"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/graph/stats"),
            ("GET", "/api/v1/graph/tracks/{id}/neighbors"),
        ],
    ),
];

/// The schema the stack loads.
const MIGRATION: &str = include_str!("../../../fixtures/migrations/0001_musicdb.sql");

/// The service listening on `port` in drill mode.
pub fn service_at(port: u16) -> Option<&'static str> {
    ROUTES.iter().find(|(p, ..)| *p == port).map(|(_, s, _)| *s)
}

/// Whether the service at `port` answers `method path`.
pub fn serves(port: u16, method: &str, path: &str) -> bool {
    let Some((_, _, routes)) = ROUTES.iter().find(|(p, ..)| *p == port) else {
        return false;
    };
    let path = path.trim_end_matches('/');
    routes
        .iter()
        .any(|(m, pattern)| m.eq_ignore_ascii_case(method) && matches(pattern, path))
}

/// The route of `service` (named as in compose) that answers `method path`, e.g.
/// `/dlq/messages/before/{date}`: two requests to one route are one step.
pub fn route(service: &str, method: &str, path: &str) -> Option<&'static str> {
    let (_, _, routes) = ROUTES.iter().find(|(_, s, _)| *s == service)?;
    let path = path.trim_end_matches('/');
    routes
        .iter()
        .find(|(m, pattern)| m.eq_ignore_ascii_case(method) && matches(pattern, path))
        .map(|(_, pattern)| *pattern)
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.trim_start_matches('/').split('/');
    let mut have = path.trim_start_matches('/').split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w.starts_with("{*") => return !h.is_empty(),
            (Some(w), Some(h)) if w.starts_with('{') => {
                if h.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

/// Whether `table` is in the stack's schema or PostgreSQL's catalog (`pg_…`).
pub fn has_table(table: &str) -> bool {
    let table = table.to_ascii_lowercase();
    table.starts_with("pg_") || tables().contains(&table)
}

fn tables() -> Vec<String> {
    MIGRATION
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split([' ', '(']).next())
        .map(|name| {
            name.trim_start_matches("IF NOT EXISTS ")
                .to_ascii_lowercase()
        })
        .collect()
}

/// The tables a SQL text names after FROM, JOIN, UPDATE or INTO.
pub fn tables_named(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut found = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].to_ascii_uppercase();
        if !matches!(keyword.as_str(), "FROM" | "JOIN" | "UPDATE" | "INTO") {
            continue;
        }
        let name: String = pair[1]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_read_from_the_migration() {
        for table in [
            "tracks",
            "dlq_messages",
            "data_quality_scores",
            "pg_stat_activity",
        ] {
            assert!(has_table(table), "{table}");
        }
        assert!(!has_table("track"));
    }

    #[test]
    fn routes_match_segments_and_the_rest_of_a_path() {
        assert!(serves(8024, "DELETE", "/dlq/messages/before/2025-10-09"));
        assert!(!serves(8024, "GET", "/dlq/messages/before/2025-10-09"));
        assert!(serves(8022, "GET", "/spotify/v1/search"));
        assert!(serves(8020, "GET", "/health/"));
        assert!(!serves(8020, "GET", "/healthz"));
        assert!(!serves(8020, "GET", "/stats/by-provider/extra"));
    }

    #[test]
    fn tables_are_found_after_their_keywords() {
        let sql = "SELECT t.x FROM tracks t JOIN data_quality_scores dq ON 1=1; \
                   UPDATE metadata_enrichment_config SET a = 1; \
                   SELECT COUNT(*) FROM (SELECT 1) s";
        assert_eq!(
            tables_named(sql),
            [
                "tracks",
                "data_quality_scores",
                "metadata_enrichment_config"
            ]
        );
    }
}
