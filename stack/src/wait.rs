//! Bounded, named waits on a condition.
//!
//! Every wait of the stack polls a condition with a short interval and a deadline
//! ([`wire::wait`], on wall time), and when the deadline passes it says what it was
//! waiting for, for how long, and the last reason the condition did not hold, plus
//! the tail of the relevant log when there is one.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use wire::Clock;
use wire::wait::{self, Poll};

use crate::StackError;
use crate::local::logs;

/// The outcome of one check of a condition.
pub(crate) enum Check<T> {
    Ready(T),
    /// Not yet; the reason is reported if the wait times out.
    Pending(String),
}

/// Polls `check` every `interval` until it is ready, fails, or `timeout` passes (wall
/// time: [`wire::wait`] on a real-time clock).
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
    let outcome = wait::until(Clock::real_time(), timeout, interval, || {
        let checked = check();
        async move {
            match checked.await {
                Ok(Check::Ready(value)) => Poll::Ready(Ok(value)),
                Ok(Check::Pending(reason)) => Poll::Pending(reason),
                Err(error) => Poll::Ready(Err(error)),
            }
        }
    })
    .await;
    match outcome {
        Ok(done) => done.value,
        Err(timed_out) => Err(StackError::Timeout {
            what: what.to_string(),
            waited: timed_out.waited,
            last_error: timed_out.last_seen,
            log_tail: log.map(log_tail_suffix).unwrap_or_default(),
        }),
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
