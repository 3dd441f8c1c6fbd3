//! Verification criteria: probes with tolerances, checked "eventually within T".
//!
//! The runbooks end with checks like "DLQ depth decreasing", "Should be > 70%",
//! "All circuit breakers CLOSED or HALF_OPEN". Each becomes a [`Criterion`]: a
//! probe, a [`Check`], and how long (modeled) the check may take to come true. A
//! failed criterion reports what was expected, what was last observed, and the
//! samples it saw, so the reader can tell "never true" from "almost".

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use wire::api::BreakerState;

use wire::wait::Poll;

use crate::ops::Ops;
use crate::probe::{Probe, Reading, state_name};

/// What a probe's readings must show.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    Above(f64),
    Below(f64),
    AtMost(f64),
    /// The last `samples` readings never rise and end lower than they began
    /// (or at zero): "DLQ depth decreasing".
    Decreasing {
        samples: usize,
    },
    /// The last `samples` readings end no higher than they began: "DLQ not growing",
    /// "no new errors".
    NotIncreasing {
        samples: usize,
    },
    /// Rising over the last `samples` readings, or already above the threshold:
    /// "success rate recovering".
    RecoveringTowards {
        threshold: f64,
        samples: usize,
    },
    /// The last `samples` readings are all below `threshold`: "pool usage < 80%"
    /// that holds, not one lucky reading between two spikes.
    StaysBelow {
        threshold: f64,
        samples: usize,
    },
    /// Every breaker is in one of these states.
    BreakersIn(&'static [BreakerState]),
    /// At least one breaker is in one of these states.
    AnyBreakerIn(&'static [BreakerState]),
}

impl Check {
    /// How many readings the check needs before it can pass.
    pub fn samples(&self) -> usize {
        match self {
            Check::Decreasing { samples }
            | Check::NotIncreasing { samples }
            | Check::RecoveringTowards { samples, .. }
            | Check::StaysBelow { samples, .. } => (*samples).max(2),
            _ => 1,
        }
    }

    /// Whether `series` (oldest first, at least [`Check::samples`] long) passes.
    /// Like [`Check::holds`], knowing the reading from when the response began.
    ///
    /// For [`Check::Decreasing`] a queue that has been drained to at most half of
    /// what it held then, and is not rising, is decreasing even if it now holds
    /// steady (a few unfixable messages remain); one that was drained and refilled
    /// to near where it was is not.
    pub fn holds_since(&self, before: Option<&Reading>, series: &[Reading]) -> bool {
        if let (Check::Decreasing { .. }, Some(before)) = (self, before.and_then(Reading::number)) {
            let numbers: Vec<f64> = series.iter().filter_map(Reading::number).collect();
            let never_rises = numbers.windows(2).all(|w| w[1] <= w[0]);
            let halved = numbers.last().is_some_and(|last| *last <= before / 2.0);
            if numbers.len() >= self.samples() && never_rises && halved {
                return true;
            }
        }
        self.holds(series)
    }

    pub fn holds(&self, series: &[Reading]) -> bool {
        // A series is evidence only if every reading in it is: a rate over too few
        // events in between is a gap, not a value to skip over.
        let numbers: Vec<f64> = series.iter().filter_map(Reading::number).collect();
        if numbers.len() != series.len()
            && !matches!(self, Check::BreakersIn(_) | Check::AnyBreakerIn(_))
        {
            return false;
        }
        let last = numbers.last().copied();
        match self {
            Check::Above(x) => last.is_some_and(|v| v > *x),
            Check::Below(x) => last.is_some_and(|v| v < *x),
            Check::AtMost(x) => last.is_some_and(|v| v <= *x),
            Check::Decreasing { .. } => {
                let never_rises = numbers.windows(2).all(|w| w[1] <= w[0]);
                let (Some(first), Some(last)) = (numbers.first(), last) else {
                    return false;
                };
                numbers.len() >= self.samples() && never_rises && (last < *first || last == 0.0)
            }
            Check::NotIncreasing { .. } => match (numbers.first(), last) {
                (Some(first), Some(last)) => numbers.len() >= self.samples() && last <= *first,
                _ => false,
            },
            Check::RecoveringTowards { threshold, .. } => {
                let Some(last) = last else { return false };
                if last > *threshold {
                    return true;
                }
                numbers.len() >= self.samples()
                    && numbers.windows(2).all(|w| w[1] >= w[0])
                    && numbers.first().is_some_and(|first| last > *first)
            }
            Check::StaysBelow { threshold, .. } => {
                numbers.len() >= self.samples() && numbers.iter().all(|v| v < threshold)
            }
            Check::BreakersIn(allowed) => match series.last() {
                Some(Reading::Breakers(states)) => {
                    states.values().all(|state| allowed.contains(state))
                }
                _ => false,
            },
            Check::AnyBreakerIn(states) => match series.last() {
                Some(Reading::Breakers(seen)) => seen.values().any(|state| states.contains(state)),
                _ => false,
            },
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Above(x) => write!(f, "> {x}"),
            Check::Below(x) => write!(f, "< {x}"),
            Check::AtMost(x) => write!(f, "≤ {x}"),
            Check::Decreasing { samples } => {
                write!(f, "decreasing over {samples} samples (or 0)")
            }
            Check::NotIncreasing { samples } => write!(f, "not increasing over {samples} samples"),
            Check::RecoveringTowards { threshold, samples } => {
                write!(f, "rising over {samples} samples, or > {threshold}")
            }
            Check::StaysBelow { threshold, samples } => {
                write!(f, "< {threshold} over {samples} samples")
            }
            Check::BreakersIn(states) => {
                let names: Vec<&str> = states.iter().map(|s| state_name(*s)).collect();
                write!(f, "all {}", names.join(" or "))
            }
            Check::AnyBreakerIn(states) => {
                let names: Vec<&str> = states.iter().map(|s| state_name(*s)).collect();
                write!(f, "any {}", names.join(" or "))
            }
        }
    }
}

/// One verification criterion of a runbook.
#[derive(Clone, Debug)]
pub struct Criterion {
    pub name: &'static str,
    pub probe: Probe,
    pub check: Check,
    /// How long (modeled) the criterion may take to come true.
    pub within: Duration,
    /// Time (modeled) between two readings.
    pub every: Duration,
}

impl Criterion {
    pub fn new(name: &'static str, probe: Probe, check: Check) -> Self {
        Self {
            name,
            probe,
            check,
            within: Duration::from_secs(5 * 60),
            every: Duration::from_secs(30),
        }
    }

    /// Allows the check up to `within` (modeled) to come true.
    pub fn eventually_within(mut self, within: Duration) -> Self {
        self.within = within;
        self
    }

    pub fn sampled_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Reads the probe until the check holds or `within` has passed.
    pub async fn evaluate(&self, ops: &Ops) -> CriterionOutcome {
        self.evaluate_since(ops, None).await
    }

    /// Like [`Criterion::evaluate`], with the reading taken when the response
    /// began: "decreasing" then means lower than it was then, and still falling
    /// (or flat) over the last samples — a drained queue that holds its last few
    /// unfixable messages is decreasing; one that was never touched is not.
    pub async fn evaluate_since(&self, ops: &Ops, before: Option<Reading>) -> CriterionOutcome {
        let started = ops.clock.now();
        let window = self.check.samples();
        let before = before.filter(|_| matches!(self.check, Check::Decreasing { .. }));
        // Every reading so far (for the report) and the last `window` (for the check).
        let readings = std::sync::Mutex::new((Vec::<Reading>::new(), Vec::<String>::new()));
        let readings = &readings;
        let before = before.as_ref();
        let held = wire::wait::until(ops.clock, self.within, self.every, || async move {
            let reading = self.probe.read(ops).await;
            let mut guard = readings.lock().unwrap_or_else(|p| p.into_inner());
            let (series, seen) = &mut *guard;
            match reading {
                Ok(reading) => {
                    seen.push(reading.to_string());
                    series.push(reading);
                    if series.len() > window {
                        series.remove(0);
                    }
                    if series.len() >= window && self.check.holds_since(before, series) {
                        return Poll::Ready(());
                    }
                }
                Err(error) => seen.push(format!("error: {error}")),
            }
            Poll::Pending(seen.last().cloned().unwrap_or_default())
        })
        .await
        .is_ok();
        let seen = readings.lock().unwrap_or_else(|p| p.into_inner()).1.clone();
        self.outcome(ops, held, &seen, started)
    }

    fn outcome(
        &self,
        ops: &Ops,
        passed: bool,
        seen: &[String],
        started: chrono::DateTime<chrono::Utc>,
    ) -> CriterionOutcome {
        // The last few readings are enough to tell "never" from "almost".
        let recent: Vec<String> = seen.iter().rev().take(6).rev().cloned().collect();
        CriterionOutcome {
            name: self.name.to_owned(),
            expected: self.check.to_string(),
            observed: recent
                .last()
                .cloned()
                .unwrap_or_else(|| "no reading".into()),
            samples: recent,
            command: self.probe.command(ops),
            passed,
            took: (ops.clock.now() - started).to_std().unwrap_or_default(),
        }
    }
}

/// How one criterion came out.
#[derive(Clone, Debug, Serialize)]
pub struct CriterionOutcome {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub samples: Vec<String>,
    pub command: String,
    pub passed: bool,
    /// How long (modeled) the check took to come true, or to give up.
    #[serde(skip)]
    pub took: Duration,
}

impl fmt::Display for CriterionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(
            f,
            "{mark} {}: expected {}, observed {} (samples: {})",
            self.name,
            self.expected,
            self.observed,
            self.samples.join(", ")
        )
    }
}

/// Reads every criterion's probe once, before the response begins, for
/// [`verify_all`]'s "decreasing since then" checks.
pub async fn readings_before(ops: &Ops, criteria: &[Criterion]) -> Vec<Option<Reading>> {
    let mut readings = Vec::with_capacity(criteria.len());
    for criterion in criteria {
        readings.push(criterion.probe.read(ops).await.ok());
    }
    readings
}

/// Evaluates criteria one after another and collects their outcomes; `before`
/// holds the readings of [`readings_before`] (or nothing). With `stop_at_first_failure`
/// the criteria after a failed one are not evaluated.
pub async fn verify_all(
    ops: &Ops,
    criteria: &[Criterion],
    before: &[Option<Reading>],
    stop_at_first_failure: bool,
) -> Vec<CriterionOutcome> {
    let mut outcomes = Vec::with_capacity(criteria.len());
    for (i, criterion) in criteria.iter().enumerate() {
        let outcome = criterion
            .evaluate_since(ops, before.get(i).cloned().flatten())
            .await;
        ops.timeline.record_wait(
            crate::ops::Phase::Verify,
            criterion.name,
            Some(criterion.probe.command(ops)),
            format!(
                "expected {}, observed {}",
                outcome.expected, outcome.observed
            ),
            if outcome.passed {
                crate::ops::Outcome::Ok
            } else {
                crate::ops::Outcome::Failed
            },
            outcome.took,
        );
        let failed = !outcome.passed;
        outcomes.push(outcome);
        if failed && stop_at_first_failure {
            break;
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wire::api::Provider;

    fn numbers(values: &[f64]) -> Vec<Reading> {
        values.iter().map(|v| Reading::Number(*v)).collect()
    }

    #[test]
    fn thresholds_compare_the_last_reading() {
        assert!(Check::Above(0.7).holds(&numbers(&[0.2, 0.71])));
        assert!(!Check::Above(0.7).holds(&numbers(&[0.9, 0.7])));
        assert!(Check::Below(80.0).holds(&numbers(&[79.9])));
    }

    #[test]
    fn decreasing_needs_a_fall_and_no_rise() {
        let check = Check::Decreasing { samples: 3 };
        assert!(check.holds(&numbers(&[2500.0, 2400.0, 2300.0])));
        assert!(
            !check.holds(&numbers(&[2500.0, 2600.0, 2300.0])),
            "a rise in between"
        );
        assert!(
            !check.holds(&numbers(&[2500.0, 2500.0, 2500.0])),
            "flat is not decreasing"
        );
        assert!(
            check.holds(&numbers(&[0.0, 0.0, 0.0])),
            "a drained queue counts"
        );
        assert!(!check.holds(&numbers(&[2500.0, 2400.0])), "too few samples");
        let before = Reading::Number(1524.0);
        assert!(
            check.holds_since(Some(&before), &numbers(&[75.0, 75.0, 75.0])),
            "drained to a residue since the response began, and holding"
        );
        assert!(
            !check.holds_since(Some(&before), &numbers(&[1273.0, 1273.0, 1273.0])),
            "drained and refilled is not decreasing"
        );
    }

    #[test]
    fn not_increasing_allows_flat() {
        let check = Check::NotIncreasing { samples: 3 };
        assert!(check.holds(&numbers(&[40.0, 40.0, 40.0])));
        assert!(!check.holds(&numbers(&[40.0, 40.0, 41.0])));
    }

    #[test]
    fn recovering_is_rising_or_already_good() {
        let check = Check::RecoveringTowards {
            threshold: 0.7,
            samples: 3,
        };
        assert!(check.holds(&numbers(&[0.3, 0.4, 0.5])));
        assert!(check.holds(&numbers(&[0.9])));
        assert!(!check.holds(&numbers(&[0.5, 0.4, 0.45])));
    }

    #[test]
    fn a_rate_over_too_few_events_is_no_evidence() {
        let too_few = Reading::TooFew {
            events: 3.0,
            needed: 20,
        };
        assert!(!Check::Above(0.7).holds(std::slice::from_ref(&too_few)));
        assert!(
            !Check::Above(0.7).holds(&[Reading::Number(0.9), too_few.clone()]),
            "an earlier figure does not stand in for the last"
        );
        assert!(!Check::Below(0.7).holds(&[too_few]));
    }

    #[test]
    fn breaker_checks_accept_only_the_listed_states() {
        let check = Check::BreakersIn(&[BreakerState::Closed, BreakerState::HalfOpen]);
        let states = |s| {
            vec![Reading::Breakers(BTreeMap::from([
                (Provider::Spotify, s),
                (Provider::Lastfm, BreakerState::Closed),
            ]))]
        };
        assert!(check.holds(&states(BreakerState::HalfOpen)));
        assert!(!check.holds(&states(BreakerState::Open)));
        assert_eq!(check.to_string(), "all CLOSED or HALF_OPEN");
    }
}
