//! Who asked a service what: the last requests to its public API.
//!
//! A game day observes the responder from the stack, not by asking them: every
//! service keeps its most recent requests (method, target, the client's
//! `User-Agent`, the status it answered, the wall time) in a bounded ring, served on
//! the chaos control surface (`GET /chaos/requests?after=SEQ`), never on the API the
//! runbooks use. The stack's own clients name themselves (`songnodes-…`,
//! `runbook-drill…`), so what remains is a person's `curl`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::header::USER_AGENT;
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
pub use wire::access::{AccessRecord, Requests};

/// How many requests a service remembers; a game day's observer reads them every
/// half second, far more often than this many arrive.
const CAPACITY: usize = 4096;

/// The ring of recent requests, shared by a service's router and its chaos surface.
#[derive(Clone, Default)]
pub struct AccessLog {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Default)]
struct Ring {
    next_seq: u64,
    records: VecDeque<AccessRecord>,
}

impl AccessLog {
    fn push(&self, method: String, target: String, user_agent: String, status: u16) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.next_seq += 1;
        let seq = ring.next_seq;
        if ring.records.len() == CAPACITY {
            ring.records.pop_front();
        }
        ring.records.push_back(AccessRecord {
            seq,
            unix_ms,
            method,
            target,
            user_agent,
            status,
        });
    }

    /// The requests after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Requests {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Requests {
            last_seq: ring.next_seq,
            requests: ring
                .records
                .iter()
                .filter(|r| r.seq > seq)
                .cloned()
                .collect(),
        }
    }
}

/// Middleware recording each request of a public router into the service's ring.
pub async fn record(State(log): State<AccessLog>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    log.push(method, target, user_agent, response.status().as_u16());
    response
}

#[derive(Deserialize)]
pub(crate) struct After {
    #[serde(default)]
    after: u64,
}

/// `GET /chaos/requests?after=SEQ`.
pub(crate) async fn serve(
    State(log): State<AccessLog>,
    Query(after): Query<After>,
) -> Json<Requests> {
    Json(log.after(after.after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_and_numbers_them() {
        let log = AccessLog::default();
        for i in 0..(CAPACITY + 10) {
            log.push("GET".into(), format!("/x/{i}"), "curl/8".into(), 200);
        }
        let all = log.after(0).requests;
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 11);
        assert_eq!(all.last().map(|r| r.seq), Some((CAPACITY + 10) as u64));
        let answer = log.after((CAPACITY + 8) as u64);
        assert_eq!(answer.last_seq, (CAPACITY + 10) as u64);
        let tail = answer.requests;
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[0].target, format!("/x/{}", CAPACITY + 8));
    }
}
