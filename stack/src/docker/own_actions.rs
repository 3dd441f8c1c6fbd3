//! What the harness itself does to a stack's containers, told apart from what a
//! person does to them.
//!
//! A game day observes its responder from the stack: a `docker-compose restart
//! rest-api` typed in another shell shows only in the engine's events (`kill`, `die`,
//! `stop`, `start`, `restart`), as does the harness's own `drill compose restart`
//! through the orchestrator or an exec a fault runs. Events carry no caller, so the
//! harness notes what it does as it does it: each container it stops, starts,
//! restarts, kills, pauses or recreates, for how long ([`acting`]), and each exec it
//! creates ([`exec_created`]). A reader of the events leaves those out
//! ([`is_own`], [`is_own_exec`]). The record is the process's own: the harness and
//! whoever reads its events run in one process.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Events arrive a little after the call returns; so long after it, they are still
/// the harness's.
const AFTERGLOW: Duration = Duration::from_secs(3);
/// Spans that ended this long ago are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(120);

struct Span {
    container: String,
    from: SystemTime,
    to: Option<SystemTime>,
    id: u64,
}

static SPANS: Mutex<Vec<Span>> = Mutex::new(Vec::new());
static EXECS: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The harness acting on containers, until dropped.
pub(crate) struct Acting(Vec<u64>);

impl Drop for Acting {
    fn drop(&mut self) {
        let now = SystemTime::now();
        let mut spans = SPANS.lock().unwrap_or_else(|p| p.into_inner());
        for span in spans.iter_mut().filter(|s| self.0.contains(&s.id)) {
            span.to = Some(now);
        }
    }
}

/// Notes that the harness acts on `containers` from now until the guard drops.
pub(crate) fn acting<'a>(containers: impl IntoIterator<Item = &'a str>) -> Acting {
    let now = SystemTime::now();
    let mut spans = SPANS.lock().unwrap_or_else(|p| p.into_inner());
    spans.retain(|span| {
        span.to
            .is_none_or(|to| now.duration_since(to).unwrap_or_default() < FORGET_AFTER)
    });
    let mut ids = Vec::new();
    for container in containers {
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        spans.push(Span {
            container: container.to_owned(),
            from: now,
            to: None,
            id,
        });
        ids.push(id);
    }
    Acting(ids)
}

/// Whether an event on `container` at `at` came from the harness's own action.
pub fn is_own(container: &str, at: SystemTime) -> bool {
    let spans = SPANS.lock().unwrap_or_else(|p| p.into_inner());
    spans.iter().any(|span| {
        span.container == container
            && at + AFTERGLOW >= span.from
            && span.to.is_none_or(|to| at <= to + AFTERGLOW)
    })
}

/// Notes an exec the harness created.
pub(crate) fn exec_created(id: &str) {
    EXECS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(id.to_owned());
}

/// Whether the exec `id` is the harness's own.
pub fn is_own_exec(id: &str) -> bool {
    EXECS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|execs| execs.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_the_harnesss_while_it_lasts_and_shortly_after() {
        let before = SystemTime::now() - Duration::from_secs(60);
        let guard = acting(["drill-t-rest-api-1"]);
        let during = SystemTime::now();
        assert!(is_own("drill-t-rest-api-1", during));
        assert!(!is_own("drill-t-graph-api-1", during), "another container");
        drop(guard);
        assert!(is_own(
            "drill-t-rest-api-1",
            SystemTime::now() + Duration::from_secs(1)
        ));
        assert!(!is_own("drill-t-rest-api-1", before), "before it began");
        assert!(
            !is_own(
                "drill-t-rest-api-1",
                SystemTime::now() + Duration::from_secs(10)
            ),
            "long after it ended: a person's"
        );
        exec_created("abc");
        assert!(is_own_exec("abc"));
        assert!(!is_own_exec("abd"));
    }
}
