//! How the stack's own HTTP clients name themselves.
//!
//! Every client inside the stack (the twin's services calling each other, the
//! simulated API users, the harness's probes and fault switches) sends a
//! `User-Agent` that [`is_stack_own`] recognises. What is left is a person: the
//! responder's `curl` on a game day, which the observer records.

/// The harness: probes, alert evaluation, fault switches, readiness checks.
pub const HARNESS: &str = concat!("runbook-drill/", env!("CARGO_PKG_VERSION"));

/// The stack's simulated API users (reads on rest-api and graph-api).
pub const API_USERS: &str = concat!("songnodes-api-user/", env!("CARGO_PKG_VERSION"));

/// A twin service calling another, e.g. `songnodes-metadata-enrichment/0.1.0`.
pub fn twin(service: &str) -> String {
    format!("songnodes-{service}/{}", env!("CARGO_PKG_VERSION"))
}

/// Whether a request with this `User-Agent` came from the stack itself.
pub fn is_stack_own(user_agent: &str) -> bool {
    user_agent.starts_with("runbook-drill") || user_agent.starts_with("songnodes-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stacks_agents_are_its_own_and_a_persons_tools_are_not() {
        assert!(is_stack_own(HARNESS));
        assert!(is_stack_own(API_USERS));
        assert!(is_stack_own(&twin("metadata-enrichment")));
        assert!(!is_stack_own("curl/7.88.1"));
        assert!(!is_stack_own(""));
        assert!(!is_stack_own("Mozilla/5.0"));
    }
}
