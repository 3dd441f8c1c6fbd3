//! Bounded waits on a condition, in modeled time: the one way anything here polls.
//!
//! A runbook waits minutes for a breaker to close, a drill waits for an alert to fire,
//! a stack waits seconds for a service to answer. Each is the same loop: check, and if
//! the condition does not hold yet, remember why, sleep, and give up once the bound has
//! passed, saying how long it waited and what it saw last. Fixed sleeps are never used
//! where a condition can be checked instead. A wall-clock wait is a wait on
//! [`Clock::real_time`].

use std::future::Future;
use std::time::Duration;

use crate::Clock;

/// The outcome of one check of a condition.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; what was seen instead, reported if the wait times out.
    Pending(String),
}

/// A condition that came true, and how long (modeled) it took.
#[derive(Debug)]
pub struct Done<T> {
    pub value: T,
    pub waited: Duration,
}

/// A condition that did not come true within its bound.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("still not true after {} (modeled); last seen: {last_seen}", crate::clock::format_duration(*waited))]
pub struct TimedOut {
    pub waited: Duration,
    pub last_seen: String,
}

/// Checks `check` every `every` (modeled) until it is ready, for at most `bound`
/// (modeled). The first check is immediate; the last is at or after the bound.
pub async fn until<T, F, Fut>(
    clock: Clock,
    bound: Duration,
    every: Duration,
    mut check: F,
) -> Result<Done<T>, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let started = clock.now();
    let waited = || (clock.now() - started).to_std().unwrap_or_default();
    loop {
        let last_seen = match check().await {
            Poll::Ready(value) => {
                return Ok(Done {
                    value,
                    waited: waited(),
                });
            }
            Poll::Pending(seen) => seen,
        };
        if waited() >= bound {
            return Err(TimedOut {
                waited: waited(),
                last_seen,
            });
        }
        clock.sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_comes_true_returns_its_value_and_the_time_it_took() {
        let clock = Clock::starting_now(600.0).unwrap();
        let mut checks = 0;
        let done = until(
            clock,
            Duration::from_secs(60),
            Duration::from_secs(6),
            || {
                checks += 1;
                let checks = checks;
                async move {
                    if checks == 3 {
                        Poll::Ready("ready")
                    } else {
                        Poll::Pending(format!("check {checks}"))
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(done.value, "ready");
        assert!(done.waited >= Duration::from_secs(12), "{:?}", done.waited);
    }

    #[tokio::test]
    async fn a_condition_that_never_holds_says_how_long_and_what_was_seen_last() {
        let clock = Clock::starting_now(600.0).unwrap();
        let error = until(
            clock,
            Duration::from_secs(30),
            Duration::from_secs(10),
            || async { Poll::<()>::Pending("still 429".into()) },
        )
        .await
        .unwrap_err();
        assert!(error.waited >= Duration::from_secs(30));
        assert_eq!(error.last_seen, "still 429");
        assert!(
            error.to_string().starts_with("still not true after 00:3"),
            "{error}"
        );
    }
}
