//! A sliding window of counters over modeled time, bounded in memory.
//!
//! `/stats` reports the last 15 modeled minutes and the gateway's `error_rate` the
//! last 2. Keeping every event would grow without bound under load, so events are
//! summed into fixed buckets of modeled time and buckets older than the window are
//! dropped: memory is at most `span / bucket + 1` tallies, and the window's edge is
//! precise to one bucket. Time is passed in, so tests need no clock. The gateway
//! uses the same window.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Counters that can be summed bucket by bucket.
pub trait Tally: Default + Clone {
    fn absorb(&mut self, other: &Self);
}

#[derive(Clone, Debug)]
pub struct Window<T> {
    bucket_ms: i64,
    buckets_in_span: i64,
    /// (bucket index = modeled unix ms ÷ bucket_ms, tally), oldest first.
    buckets: VecDeque<(i64, T)>,
}

impl<T: Tally> Window<T> {
    /// A window covering `span` of modeled time in buckets of `bucket` (both ≥ 1 ms).
    pub fn new(span: Duration, bucket: Duration) -> Self {
        let bucket_ms = (bucket.as_millis() as i64).max(1);
        let span_ms = (span.as_millis() as i64).max(bucket_ms);
        Self {
            bucket_ms,
            buckets_in_span: span_ms.div_euclid(bucket_ms),
            buckets: VecDeque::new(),
        }
    }

    /// Adds an event at `at` (which may be slightly older than earlier events).
    pub fn record(&mut self, at: DateTime<Utc>, update: impl FnOnce(&mut T)) {
        let index = self.index(at);
        self.prune(index);
        if index <= self.oldest_kept(self.buckets.back().map_or(index, |b| b.0)) {
            return; // already outside the window
        }
        let position = self.buckets.iter().rposition(|(i, _)| *i <= index);
        match position {
            Some(p) if self.buckets[p].0 == index => update(&mut self.buckets[p].1),
            _ => {
                let mut tally = T::default();
                update(&mut tally);
                let at = position.map_or(0, |p| p + 1);
                self.buckets.insert(at, (index, tally));
            }
        }
    }

    /// The sum of the buckets within the window ending at `now`.
    pub fn total(&self, now: DateTime<Utc>) -> T {
        let oldest = self.oldest_kept(self.index(now));
        let mut sum = T::default();
        for (_, tally) in self.buckets.iter().filter(|(i, _)| *i > oldest) {
            sum.absorb(tally);
        }
        sum
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }

    /// Buckets held now (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn index(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis().div_euclid(self.bucket_ms)
    }

    /// The newest bucket index that is outside a window ending in bucket `newest`.
    fn oldest_kept(&self, newest: i64) -> i64 {
        newest - self.buckets_in_span
    }

    fn prune(&mut self, newest: i64) {
        let newest = self.buckets.back().map_or(newest, |b| b.0.max(newest));
        let limit = self.oldest_kept(newest);
        while self.buckets.front().is_some_and(|(i, _)| *i <= limit) {
            self.buckets.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Count(u64);

    impl Tally for Count {
        fn absorb(&mut self, other: &Self) {
            self.0 += other.0;
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_300_000, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn window() -> Window<Count> {
        Window::new(Duration::from_secs(15 * 60), Duration::from_secs(5))
    }

    #[test]
    fn events_within_the_span_are_summed() {
        let mut w = window();
        w.record(at(0), |c| c.0 += 1);
        w.record(at(1), |c| c.0 += 1);
        w.record(at(600), |c| c.0 += 1);
        assert_eq!(w.total(at(600)), Count(3));
        assert_eq!(w.len(), 2, "two events share a 5 s bucket");
    }

    #[test]
    fn events_older_than_the_span_drop_out() {
        let mut w = window();
        w.record(at(0), |c| c.0 += 1);
        w.record(at(500), |c| c.0 += 1);
        assert_eq!(w.total(at(899)), Count(2));
        assert_eq!(w.total(at(905)), Count(1));
        assert_eq!(w.total(at(2000)), Count(0));
    }

    #[test]
    fn memory_is_bounded_by_the_number_of_buckets() {
        let mut w = window();
        for s in 0..20_000 {
            w.record(at(s), |c| c.0 += 1);
        }
        assert!(w.len() <= 15 * 60 / 5 + 1, "{} buckets", w.len());
        assert_eq!(w.total(at(19_999)), Count(900));
    }

    #[test]
    fn a_late_event_lands_in_its_own_bucket() {
        let mut w = window();
        w.record(at(100), |c| c.0 += 1);
        w.record(at(50), |c| c.0 += 10);
        w.record(at(100), |c| c.0 += 1);
        assert_eq!(w.total(at(100)), Count(12));
        assert_eq!(w.len(), 2);
        w.clear();
        assert!(w.is_empty());
    }

    #[test]
    fn an_event_older_than_the_window_is_ignored() {
        let mut w = window();
        w.record(at(5000), |c| c.0 += 1);
        w.record(at(0), |c| c.0 += 1);
        assert_eq!(w.total(at(5000)), Count(1));
    }
}
