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

/// The stretches of `waits` during which one of `world` was active.
fn world_waits(waits: Vec<Interval>, world: Vec<Interval>) -> Vec<Interval> {
    let world = union(world);
    let mut both = Vec::new();
    for wait in union(waits) {
        both.extend(world.iter().filter_map(|broken| wait.intersect(*broken)));
    }
    union(both)
}

/// How long `interval` lasts outside `covered` (disjoint and sorted, as from [`union`]).
fn uncovered(interval: Interval, covered: &[Interval]) -> chrono::TimeDelta {
    let overlap: chrono::TimeDelta = covered
        .iter()
        .filter_map(|c| c.intersect(interval))
        .map(|both| both.to - both.from)
        .sum();
    (interval.to - interval.from) - overlap
}

/// How much of `window` was spent in one of `waits` while one of `world` was active.
pub fn waiting_on_world(
    window: Interval,
    waits: Vec<Interval>,
    world: Vec<Interval>,
) -> chrono::TimeDelta {
    world_waits(waits, world)
        .into_iter()
        .filter_map(|w| w.intersect(window))
        .map(|w| w.to - w.from)
        .sum()
}

/// One call to the container engine: when it ran in modeled time, and how long it
/// took in real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineSpan {
    pub modeled: Interval,
    pub real: chrono::TimeDelta,
}

/// How much of `window` compression added to the engine's calls (see
/// `runbooks::ops::engine_time`): each call counts at its real duration, and the rest
/// of its modeled span is the engine's, not the runbook's — except where it is already
/// waiting on the world, which is not counted twice. Calls that overlap are merged,
/// their real durations added (the smaller share to take away).
pub fn engine_compressed(
    window: Interval,
    calls: Vec<EngineSpan>,
    waits: Vec<Interval>,
    world: Vec<Interval>,
) -> chrono::TimeDelta {
    let covered = world_waits(waits, world);
    let mut calls = calls;
    calls.sort_by_key(|c| c.modeled.from);
    let mut merged: Vec<EngineSpan> = Vec::with_capacity(calls.len());
    for call in calls {
        match merged.last_mut() {
            Some(last) if call.modeled.from < last.modeled.to => {
                last.modeled.to = last.modeled.to.max(call.modeled.to);
                last.real += call.real;
            }
            _ => merged.push(call),
        }
    }
    merged
        .into_iter()
        .filter_map(|call| {
            let inside = call.modeled.intersect(window)?;
            let modeled = uncovered(inside, &covered);
            Some((modeled - call.real).max(chrono::TimeDelta::zero()))
        })
        .sum()
}

/// How much of `window` the drill spent on its own readings (`spans`: the criteria
/// read before the resolution, the cache's live answers counted as it starts and
/// ends), which no runbook does and which take their real time, multiplied by the
/// scale (a Redis scan's half second is four modeled minutes at 480), except where it
/// is already waiting on the world.
pub fn own_readings(
    window: Interval,
    spans: Vec<Interval>,
    waits: Vec<Interval>,
    world: Vec<Interval>,
) -> chrono::TimeDelta {
    let covered = world_waits(waits, world);
    union(spans)
        .into_iter()
        .filter_map(|span| span.intersect(window))
        .map(|span| uncovered(span, &covered))
        .sum()
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

    fn call(from: i64, to: i64, real_seconds: i64) -> EngineSpan {
        EngineSpan {
            modeled: span(from, to),
            real: chrono::TimeDelta::seconds(real_seconds),
        }
    }

    #[test]
    fn an_engine_call_counts_at_its_real_duration() {
        // A restart from 20 to 32 that took 90 real seconds: 10:30 of compression.
        let compressed = engine_compressed(span(10, 60), vec![call(20, 32, 90)], vec![], vec![]);
        assert_eq!(compressed, chrono::TimeDelta::seconds(12 * 60 - 90));
    }

    #[test]
    fn engine_time_outside_the_window_or_waiting_on_the_world_is_not_taken_twice() {
        let compressed = engine_compressed(
            span(10, 60),
            // Half before the alert fired; and one during a wait on a broken world.
            vec![call(5, 15, 0), call(30, 40, 0)],
            vec![span(28, 36)],
            vec![span(0, 100)],
        );
        assert_eq!(compressed, chrono::TimeDelta::minutes(5 + 4));
    }

    #[test]
    fn the_drills_own_readings_count_inside_the_window_and_not_twice() {
        let own = own_readings(
            span(10, 60),
            vec![span(5, 12), span(30, 33), span(31, 34)],
            vec![span(32, 40)],
            vec![span(0, 100)],
        );
        // 10-12 inside the window, and 30-32 of 30-34: 32-34 is waiting on the world.
        assert_eq!(own, chrono::TimeDelta::minutes(4));
    }

    #[test]
    fn overlapping_engine_calls_are_merged() {
        let compressed = engine_compressed(
            span(0, 60),
            vec![call(10, 20, 60), call(15, 25, 60)],
            vec![],
            vec![],
        );
        assert_eq!(compressed, chrono::TimeDelta::minutes(15 - 2));
    }
}
