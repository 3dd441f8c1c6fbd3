//! Drills of the Memory Exhaustion runbook: a leak in rest-api that a restart cures;
//! the same leak in the running build, which the restart only postpones (a correct
//! escalation); the enrichment workers holding the memory, which one worker fewer
//! frees; Redis holding it, which a flush frees at the price of the cache's live
//! answers (the report's hit rate before and after). With control runs. The stack's memory is a cgroup limited to its budget,
//! which needs root and cgroup v1; without it the drills are skipped, and say why
//! (CI requires it).

mod common;

use common::{
    assert_drill_passed, try_assert_control_needs_the_runbook, try_drill, unless_skipped,
};
use harness::DrillReport;

/// The drill of `id`, asserted passed; `None` when this machine cannot drill it.
async fn passed(id: &str) -> Option<DrillReport> {
    let report = unless_skipped(try_drill(id).await)?;
    assert_drill_passed(&report);
    Some(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_restarting_the_leaking_service_frees_the_memory() {
    let Some(report) = passed("memory/a-heavy-service").await else {
        return;
    };
    assert!(
        report
            .timeline_text
            .contains("docker compose restart rest-api metadata-enrichment"),
        "{}",
        report.render()
    );
    assert!(
        !report.timeline_text.contains("FLUSHDB"),
        "Redis is small: the cache is not flushed\n{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_a_leak_in_the_build_is_escalated_after_the_restart() {
    let Some(report) = passed("memory/a-leak-persists").await else {
        return;
    };
    let escalated = report.escalated.as_deref().unwrap_or_default();
    assert!(
        escalated.contains("memory climbs again after the restart"),
        "{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_the_leak_holds_the_memory() {
    unless_skipped(try_assert_control_needs_the_runbook("memory/a-heavy-service").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_a_leak_in_the_build_is_not_escalated() {
    unless_skipped(try_assert_control_needs_the_runbook("memory/a-leak-persists").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_one_worker_fewer_frees_the_memory_at_half_the_throughput() {
    let Some(report) = passed("memory/b-enrichment-workers").await else {
        return;
    };
    let text = report.render();
    assert!(
        report
            .timeline_text
            .contains("docker compose stop metadata-enrichment-worker-2"),
        "{text}"
    );
    assert!(
        !report.timeline_text.contains("docker compose restart"),
        "the workers hold the memory: rest-api is not restarted\n{text}"
    );
    assert!(report.timeline_text.contains("replicas 2 → 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_the_workers_hold_the_memory() {
    unless_skipped(try_assert_control_needs_the_runbook("memory/b-enrichment-workers").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_c_flushing_a_large_redis_frees_the_memory_and_costs_the_cache() {
    let Some(report) = passed("memory/c-large-redis").await else {
        return;
    };
    let text = report.render();
    assert!(
        report
            .timeline_text
            .contains("docker compose exec redis redis-cli FLUSHDB"),
        "{text}"
    );
    assert!(
        !report.timeline_text.contains("docker compose restart")
            && !report.timeline_text.contains("docker compose stop"),
        "Redis holds the memory: no service is restarted or stopped\n{text}"
    );
    // What the flush cost is counted, not inferred from hit rates: the twin's cache
    // warms from empty with its stack, so a window before the flush and one after it
    // are both a cache warming up (harness::cache_cost).
    let cache = report.cache.as_ref().expect("the cache's cost is reported");
    let (Some(live), Some(gone)) = (cache.live_entries_before, cache.entries_thrown_away()) else {
        panic!("the cache's live answers were counted before and after: {cache}\n{text}");
    };
    assert!(
        live >= 50 && gone * 10 >= live * 9,
        "the flush throws away the live answers the workload's repeats hit: {cache}\n{text}"
    );
    assert!(
        cache.hit_rate_after().is_some(),
        "the hit rate after the flush is reported: {cache}\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_redis_holds_the_memory() {
    unless_skipped(try_assert_control_needs_the_runbook("memory/c-large-redis").await);
}
