//! Exits the service when the process that owns its stack is gone.
//!
//! Dropping a stack stops its services, but a harness killed with SIGKILL runs no
//! destructor. Each twin service therefore watches its owner's PID and exits on its
//! own; the servers it cannot watch for (PostgreSQL, Redis) are reaped by label at
//! the next start.

use std::time::Duration;

use nix::unistd::getppid;

pub fn exit_when_parent_dies(parent: i32) {
    tokio::spawn(async move {
        // Half a second bounds how long an orphan outlives its harness.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            // Re-parenting, not the parent's PID, tells us it died: a killed parent may
            // linger as a zombie (still answering kill(pid, 0)) until reaped.
            if getppid().as_raw() != parent {
                tracing::warn!(parent, "owner process is gone; exiting");
                std::process::exit(0);
            }
        }
    });
}
