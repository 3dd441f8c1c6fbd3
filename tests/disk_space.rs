//! Drills of the Disk Space Critical runbook: backups piled up and a DEBUG log fill the
//! stack's size-limited disk; the cleanup must keep the last seven days' backups, and
//! log rotation must keep the disk down while the log goes on growing. With its control
//! run. On the local backend the disk is a tmpfs that needs root to mount; without it
//! the drills are skipped, and say why.

mod common;

use common::{assert_control_needs_the_runbook, assert_drill_passed, drill};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_a_old_backups_go_large_logs_are_emptied_and_logs_rotate() {
    if let Err(reason) = common::size_limited_disk().await {
        eprintln!("skipped: {reason}");
        return;
    }
    let report = drill("disk-space/a-logs-and-backups").await;
    assert_drill_passed(&report);
    for step in ["truncate -s 0", "-mtime +7", "max-size"] {
        assert!(
            report.timeline_text.contains(step),
            "the timeline shows `{step}`:\n{}",
            report.render()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runbook_the_disk_stays_full() {
    if let Err(reason) = common::size_limited_disk().await {
        eprintln!("skipped: {reason}");
        return;
    }
    assert_control_needs_the_runbook("disk-space/a-logs-and-backups").await;
}
