//! Telling waiting on the world from the runbook's own time.
//!
//! An outage ends when the provider comes back, whatever the runbook does; a runbook
//! that waits for it well has not been slow. So a drill splits its time to resolve in
//! two: the time the runbook (or its verification, or the alert's clearing) spent
//! waiting while a fault the world ends by itself was still active is *waiting on the
//! world*; the rest is *runbook time*, the part a runbook change can make longer or
//! shorter and the part budgets apply to.

use chrono::{DateTime, Utc};

/// A stretch of modeled time, `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Interval {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            from,
            to: to.max(from),
        }
    }

    fn intersect(self, other: Interval) -> Option<Interval> {
        let from = self.from.max(other.from);
        let to = self.to.min(other.to);
        (from < to).then_some(Interval { from, to })
    }
}

/// Disjoint, sorted intervals covering the same time as `intervals`.
fn union(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by_key(|i| i.from);
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for interval in intervals.into_iter().filter(|i| i.from < i.to) {
        match merged.last_mut() {
            Some(last) if interval.from <= last.to => last.to = last.to.max(interval.to),
            _ => merged.push(interval),
        }
    }
    merged
}

/// How much of `window` was spent in one of `waits` while one of `world` was active.
pub fn waiting_on_world(
    window: Interval,
    waits: Vec<Interval>,
    world: Vec<Interval>,
) -> chrono::TimeDelta {
    let waits = union(waits);
    let world = union(world);
    let mut total = chrono::TimeDelta::zero();
    for wait in waits.iter().filter_map(|w| w.intersect(window)) {
        for broken in &world {
            if let Some(both) = wait.intersect(*broken) {
                total += both.to - both.from;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_300_000 + minute * 60, 0).unwrap()
    }

    fn span(from: i64, to: i64) -> Interval {
        Interval::new(at(from), at(to))
    }

    #[test]
    fn only_waits_while_the_world_is_broken_count() {
        // The alert fires at 10 and clears at 30; the outage lasts from 0 to 20; the
        // runbook waits from 12 to 18 (for the provider) and from 22 to 25 (its
        // verification, after the outage ended).
        let waited = waiting_on_world(
            span(10, 30),
            vec![span(12, 18), span(22, 25)],
            vec![span(0, 20)],
        );
        assert_eq!(waited, chrono::TimeDelta::minutes(6));
    }

    #[test]
    fn overlapping_waits_and_faults_are_counted_once() {
        let waited = waiting_on_world(
            span(0, 60),
            vec![span(5, 15), span(10, 20)],
            vec![span(0, 12), span(8, 40)],
        );
        assert_eq!(waited, chrono::TimeDelta::minutes(15));
    }

    #[test]
    fn nothing_counts_outside_the_window_or_without_a_broken_world() {
        assert_eq!(
            waiting_on_world(span(10, 20), vec![span(0, 30)], vec![]),
            chrono::TimeDelta::zero()
        );
        assert_eq!(
            waiting_on_world(span(10, 20), vec![span(0, 9)], vec![span(0, 30)]),
            chrono::TimeDelta::zero()
        );
    }
}
