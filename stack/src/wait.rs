//! Bounded, named waits on a condition.
//!
//! Every wait in the harness polls a condition with a short interval and a deadline, and
//! when the deadline passes it says what it was waiting for, for how long, and the last
//! reason the condition did not hold (plus the tail of the relevant log, when there is
//! one). Fixed sleeps are never used where a condition can be checked instead.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::StackError;
use crate::local::logs;

/// The outcome of one check of a condition.
pub(crate) enum Check<T> {
    Ready(T),
    /// Not yet; the reason is reported if the wait times out.
    Pending(String),
}

/// Polls `check` every `interval` until it is ready, fails, or `timeout` passes.
pub(crate) async fn until<T, F, Fut>(
    what: impl Display,
    timeout: Duration,
    interval: Duration,
    log: Option<&Path>,
    mut check: F,
) -> Result<T, StackError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, StackError>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await? {
            Check::Ready(value) => return Ok(value),
            Check::Pending(reason) => reason,
        };
        if started.elapsed() >= timeout {
            return Err(StackError::Timeout {
                what: what.to_string(),
                waited: started.elapsed(),
                last_error: last,
                log_tail: log.map(log_tail_suffix).unwrap_or_default(),
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// The synchronous form, for `Drop`: true when `done` held before `timeout`.
pub(crate) fn until_blocking(
    timeout: Duration,
    interval: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(interval);
    }
}

fn log_tail_suffix(log: &Path) -> String {
    let lines = logs::tail(log, 20).unwrap_or_default();
    if lines.is_empty() {
        format!("\n({} is empty)", log.display())
    } else {
        format!("\nlast lines of {}:\n{}", log.display(), lines.join("\n"))
    }
}
