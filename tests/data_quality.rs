//! Drills of the Data Quality Issues runbook: a provider that leaves fields out (the
//! tracks are re-enriched once it has caught up) and a provider whose values fail
//! validation (what cannot be repaired is purged, the validation fix escalated); each
//! with its control run.

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_tracks_left_incomplete_are_re_enriched_once_the_provider_catches_up() {
    let report = drill("data-quality/a-missing-required-fields").await;
    assert_drill_passed(&report);
    let text = report.render();
    assert!(
        text.contains("Re-enrichment complete after pass") && text.contains("0 still incomplete"),
        "the last pass found every re-enriched track complete:\n{text}"
    );
    assert!(
        text.contains("Wait for the provider"),
        "the first pass met a provider still leaving the fields out, and waited:\n{text}"
    );
    assert!(
        report.waiting_on_world.is_some_and(|w| !w.is_zero()),
        "the wait for the provider is the world's time, not the runbook's:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_b_values_that_fail_validation_are_purged_only_where_unrepairable_and_escalated() {
    let report = drill("data-quality/b-incorrect-data").await;
    assert_drill_passed(&report);
    let text = report.render();
    let escalation = report.escalated.as_deref().unwrap_or_default();
    assert!(
        escalation.contains("bpm_out_of_range on")
            && escalation.contains("invalid_isrc on")
            && escalation.contains("invalid_spotify_id on")
            && escalation.contains("ISRCs in display form are kept"),
        "the escalation names the rules and what was kept:\n{text}"
    );
    // The purge removed the implausible tempos: one value on each track that broke the
    // BPM rule. Step 2 reads the ten largest groups only, so a few such tracks in
    // smaller groups are purged beyond its count, and no more.
    let out_of_range = count_after(escalation, "bpm_out_of_range on ");
    let purged = count_after(&report.timeline_text, "✓ Purge bad data — ");
    assert!(
        (out_of_range..=out_of_range + out_of_range / 50 + 2).contains(&purged),
        "the purge's cost ({purged}) is the tracks with an implausible tempo \
         ({out_of_range} in step 2's groups):\n{text}"
    );
    let ledger = report.ledger.as_ref().expect("a ledger");
    assert_eq!(ledger.lost_work, 0, "no track was lost:\n{text}");
}

/// The number right after `marker` in `text`.
fn count_after(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("'{marker}' not in:\n{text}"));
    text[at + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{marker}' in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_tracks_left_incomplete_stay_incomplete() {
    assert_control_needs_the_runbook("data-quality/a-missing-required-fields").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_values_that_fail_validation_are_not_escalated() {
    assert_control_needs_the_runbook("data-quality/b-incorrect-data").await;
}
