//! Per-provider circuit breakers, as docs/twin.md specifies them.
//!
//! CLOSED → OPEN after [`FAILURE_THRESHOLD`] consecutive counted failures → HALF_OPEN
//! once [`RECOVERY`] of modeled time has passed since opening (computed when read, so
//! no timer task) → one trial call at a time: success → CLOSED, counted failure → OPEN
//! again. The machine ([`Breaker`]) is pure and takes the modeled instant as an
//! argument, so tests drive it without sleeping; [`Breakers`] shares one per provider
//! between requests, applies the `stuck_breaker` chaos switch and logs transitions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use wire::api::{ApiClientHealth, BreakerState, Provider};

use crate::chaos::Chaos;

/// Consecutive counted failures that open a breaker.
pub const FAILURE_THRESHOLD: u32 = 5;
/// Modeled time an OPEN breaker waits before letting a trial call through.
pub const RECOVERY: TimeDelta = TimeDelta::seconds(60);
/// The chaos switch that pins a breaker OPEN: `{"provider": "spotify"}`.
pub const STUCK_SWITCH: &str = "stuck_breaker";

/// How a call the breaker let through ended, from the breaker's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// A failure that counts (timeout, rate limit, provider error).
    Failure,
    /// An answer that says nothing about the provider's health (invalid payload).
    Neutral,
}

/// What kind of call a breaker admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// CLOSED: calls flow freely.
    Normal,
    /// HALF_OPEN: the single trial call.
    Trial,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Closed,
    Open { since: DateTime<Utc> },
    HalfOpen { trial_in_flight: bool },
}

/// One provider's breaker.
#[derive(Clone, Debug, PartialEq)]
pub struct Breaker {
    phase: Phase,
    failure_count: u32,
    /// Bumped by [`Breaker::reset`], so a call admitted before a reset cannot move
    /// the breaker after it.
    generation: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            phase: Phase::Closed,
            failure_count: 0,
            generation: 0,
        }
    }
}

impl Breaker {
    /// The state at `now`, moving OPEN → HALF_OPEN if the recovery time has passed.
    /// A `stuck` breaker is forced OPEN and never half-opens.
    pub fn state(&mut self, now: DateTime<Utc>, stuck: bool) -> BreakerState {
        self.settle(now, stuck);
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn failure_count(&self) -> u32 {
        self.failure_count
    }

    /// Modeled seconds until an OPEN breaker half-opens; `None` when not OPEN or stuck.
    pub fn seconds_until_half_open(&mut self, now: DateTime<Utc>, stuck: bool) -> Option<f64> {
        self.settle(now, stuck);
        match self.phase {
            Phase::Open { since } if !stuck => {
                let left = (since + RECOVERY - now).num_milliseconds().max(0);
                Some(left as f64 / 1000.0)
            }
            _ => None,
        }
    }

    /// Asks to make a call at `now`. `None` means the breaker refuses it
    /// (`circuit_breaker_open`): OPEN, or HALF_OPEN with its trial already in flight.
    pub fn admit(&mut self, now: DateTime<Utc>, stuck: bool) -> Option<(Admission, u64)> {
        self.settle(now, stuck);
        match &mut self.phase {
            Phase::Closed => Some((Admission::Normal, self.generation)),
            Phase::Open { .. } => None,
            Phase::HalfOpen { trial_in_flight } => {
                if *trial_in_flight {
                    None
                } else {
                    *trial_in_flight = true;
                    Some((Admission::Trial, self.generation))
                }
            }
        }
    }

    /// Records how an admitted call ended; returns the new state if it changed.
    pub fn record(
        &mut self,
        admission: Admission,
        generation: u64,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> Option<BreakerState> {
        if generation != self.generation {
            return None;
        }
        match (admission, self.phase) {
            (Admission::Normal, Phase::Closed) => match verdict {
                Verdict::Success => {
                    self.failure_count = 0;
                    None
                }
                Verdict::Neutral => None,
                Verdict::Failure => {
                    self.failure_count += 1;
                    (self.failure_count >= FAILURE_THRESHOLD).then(|| self.open(now))
                }
            },
            (
                Admission::Trial,
                Phase::HalfOpen {
                    trial_in_flight: true,
                },
            ) => match verdict {
                Verdict::Success => {
                    self.phase = Phase::Closed;
                    self.failure_count = 0;
                    Some(BreakerState::Closed)
                }
                Verdict::Failure => {
                    self.failure_count += 1;
                    Some(self.open(now))
                }
                Verdict::Neutral => {
                    self.phase = Phase::HalfOpen {
                        trial_in_flight: false,
                    };
                    None
                }
            },
            // Calls admitted while CLOSED that end after the breaker opened say nothing new.
            _ => None,
        }
    }

    /// A trial call that never finished (its request was dropped): let another try.
    pub fn abandon(&mut self, admission: Admission, generation: u64) {
        if admission == Admission::Trial
            && generation == self.generation
            && self.phase
                == (Phase::HalfOpen {
                    trial_in_flight: true,
                })
        {
            self.phase = Phase::HalfOpen {
                trial_in_flight: false,
            };
        }
    }

    /// CLOSED with no failures (`reset-all`).
    pub fn reset(&mut self) {
        self.phase = Phase::Closed;
        self.failure_count = 0;
        self.generation += 1;
    }

    fn open(&mut self, now: DateTime<Utc>) -> BreakerState {
        self.phase = Phase::Open { since: now };
        BreakerState::Open
    }

    fn settle(&mut self, now: DateTime<Utc>, stuck: bool) {
        if stuck {
            if !matches!(self.phase, Phase::Open { .. }) {
                self.phase = Phase::Open { since: now };
                self.failure_count = self.failure_count.max(FAILURE_THRESHOLD);
            }
            return;
        }
        if let Phase::Open { since } = self.phase
            && now - since >= RECOVERY
        {
            self.phase = Phase::HalfOpen {
                trial_in_flight: false,
            };
        }
    }
}

/// The breakers of all providers, shared by the service's requests.
#[derive(Clone)]
pub struct Breakers {
    inner: Arc<Mutex<BTreeMap<Provider, Breaker>>>,
    chaos: Chaos,
}

/// Permission for one provider call; report how it ended with [`Permit::finish`].
/// A permit dropped unfinished (the request was cancelled) frees a HALF_OPEN trial.
pub struct Permit {
    breakers: Breakers,
    provider: Provider,
    admission: Admission,
    generation: u64,
    finished: bool,
}

impl Permit {
    pub fn finish(mut self, verdict: Verdict, now: DateTime<Utc>) {
        self.finished = true;
        self.breakers.with(self.provider, now, |breaker, _| {
            breaker.record(self.admission, self.generation, verdict, now)
        });
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            let mut map = self.breakers.lock();
            if let Some(breaker) = map.get_mut(&self.provider) {
                breaker.abandon(self.admission, self.generation);
            }
        }
    }
}

impl Breakers {
    pub fn new(chaos: Chaos) -> Self {
        let map = Provider::ALL
            .into_iter()
            .map(|p| (p, Breaker::default()))
            .collect();
        Self {
            inner: Arc::new(Mutex::new(map)),
            chaos,
        }
    }

    /// A permit to call `provider` now, or `None` when its breaker refuses.
    pub fn admit(&self, provider: Provider, now: DateTime<Utc>) -> Option<Permit> {
        let (admission, generation) =
            self.with(provider, now, |breaker, stuck| breaker.admit(now, stuck))?;
        Some(Permit {
            breakers: self.clone(),
            provider,
            admission,
            generation,
            finished: false,
        })
    }

    /// `/health` → `.api_clients[provider]` (without `enabled`, which config knows).
    pub fn health(&self, provider: Provider, now: DateTime<Utc>, enabled: bool) -> ApiClientHealth {
        self.with(provider, now, |breaker, stuck| ApiClientHealth {
            state: breaker.state(now, stuck),
            failure_count: breaker.failure_count(),
            enabled,
            seconds_until_half_open: breaker.seconds_until_half_open(now, stuck),
        })
    }

    /// `reset-all`: every breaker CLOSED with no failures, and the stuck switch off.
    pub fn reset_all(&self) {
        self.chaos.clear(STUCK_SWITCH);
        for breaker in self.lock().values_mut() {
            breaker.reset();
        }
        tracing::info!("all circuit breakers reset to CLOSED");
    }

    /// The provider the `stuck_breaker` switch pins, if it is on.
    fn stuck_provider(&self) -> Option<Provider> {
        let params = self.chaos.get(STUCK_SWITCH)?;
        let name = params.get("provider").and_then(|p| p.as_str());
        match name.map(str::parse::<Provider>) {
            Some(Ok(provider)) => Some(provider),
            _ => {
                tracing::warn!(%params, "stuck_breaker switch needs {{\"provider\": \"spotify|musicbrainz|lastfm\"}}");
                None
            }
        }
    }

    /// Runs `f` on the provider's breaker, brought up to date at `now`, and logs the
    /// transition if its state changed.
    fn with<T>(
        &self,
        provider: Provider,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut Breaker, bool) -> T,
    ) -> T {
        let stuck = self.stuck_provider() == Some(provider);
        let (result, before, after) = {
            let mut map = self.lock();
            let breaker = map.entry(provider).or_default();
            let before = peek(breaker);
            breaker.settle(now, stuck);
            let result = f(breaker, stuck);
            (result, before, peek(breaker))
        };
        if before != after {
            log_transition(provider, after);
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Provider, Breaker>> {
        // A panic while holding the lock cannot leave a breaker half-written (every
        // update is a plain assignment), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn peek(breaker: &Breaker) -> BreakerState {
    match breaker.phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open { .. } => BreakerState::Open,
        Phase::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

fn log_transition(provider: Provider, state: BreakerState) {
    match state {
        BreakerState::Open => tracing::warn!("circuit breaker for {provider} is OPEN"),
        BreakerState::HalfOpen => {
            tracing::info!("circuit breaker for {provider} is HALF_OPEN (one trial call allowed)")
        }
        BreakerState::Closed => tracing::info!("circuit breaker for {provider} is CLOSED"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_300_000, 0).unwrap()
    }

    fn secs(s: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(s)
    }

    fn fail(b: &mut Breaker, at: DateTime<Utc>) -> Option<BreakerState> {
        let (admission, generation) = b.admit(at, false).expect("admitted");
        b.record(admission, generation, Verdict::Failure, at)
    }

    fn opened() -> Breaker {
        let mut b = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD {
            fail(&mut b, t0());
        }
        b
    }

    #[test]
    fn five_consecutive_failures_open_it() {
        let mut b = Breaker::default();
        for i in 1..FAILURE_THRESHOLD {
            assert_eq!(fail(&mut b, t0()), None, "failure {i} keeps it closed");
        }
        assert_eq!(fail(&mut b, t0()), Some(BreakerState::Open));
        assert_eq!(b.failure_count(), 5);
        assert_eq!(b.state(t0(), false), BreakerState::Open);
        assert_eq!(b.admit(t0(), false), None);
    }

    #[test]
    fn a_success_resets_the_count_and_neutral_answers_do_not_count() {
        let mut b = Breaker::default();
        for _ in 0..4 {
            fail(&mut b, t0());
        }
        let (a, g) = b.admit(t0(), false).unwrap();
        b.record(a, g, Verdict::Neutral, t0());
        assert_eq!(b.failure_count(), 4);
        let (a, g) = b.admit(t0(), false).unwrap();
        b.record(a, g, Verdict::Success, t0());
        assert_eq!(b.failure_count(), 0);
        assert_eq!(b.state(t0(), false), BreakerState::Closed);
    }

    #[test]
    fn it_half_opens_after_sixty_modeled_seconds_when_read() {
        let mut b = opened();
        assert_eq!(b.seconds_until_half_open(secs(15), false), Some(45.0));
        assert_eq!(b.state(secs(59), false), BreakerState::Open);
        assert_eq!(b.state(secs(60), false), BreakerState::HalfOpen);
        assert_eq!(b.seconds_until_half_open(secs(60), false), None);
    }

    #[test]
    fn half_open_lets_one_trial_through_at_a_time() {
        let mut b = opened();
        let (a, g) = b.admit(secs(61), false).expect("trial");
        assert_eq!(a, Admission::Trial);
        assert_eq!(b.admit(secs(61), false), None, "second caller refused");
        assert_eq!(
            b.record(a, g, Verdict::Success, secs(62)),
            Some(BreakerState::Closed)
        );
        assert_eq!(b.failure_count(), 0);
        assert_eq!(
            b.admit(secs(62), false).map(|x| x.0),
            Some(Admission::Normal)
        );
    }

    #[test]
    fn a_failed_trial_reopens_and_restarts_the_timer() {
        let mut b = opened();
        let (a, g) = b.admit(secs(70), false).unwrap();
        assert_eq!(
            b.record(a, g, Verdict::Failure, secs(70)),
            Some(BreakerState::Open)
        );
        assert_eq!(b.state(secs(129), false), BreakerState::Open);
        assert_eq!(b.state(secs(130), false), BreakerState::HalfOpen);
    }

    #[test]
    fn an_abandoned_or_neutral_trial_frees_the_slot() {
        let mut b = opened();
        let (a, g) = b.admit(secs(61), false).unwrap();
        b.abandon(a, g);
        let (a, g) = b.admit(secs(61), false).expect("slot freed");
        b.record(a, g, Verdict::Neutral, secs(61));
        assert_eq!(b.state(secs(61), false), BreakerState::HalfOpen);
        assert!(b.admit(secs(61), false).is_some());
    }

    #[test]
    fn calls_admitted_before_a_reset_do_not_move_it_after() {
        let mut b = Breaker::default();
        let stale: Vec<_> = (0..5).map(|_| b.admit(t0(), false).unwrap()).collect();
        b.reset();
        for (a, g) in stale {
            assert_eq!(b.record(a, g, Verdict::Failure, t0()), None);
        }
        assert_eq!(b.failure_count(), 0);
    }

    #[test]
    fn late_results_of_normal_calls_do_not_touch_an_open_breaker() {
        let mut b = Breaker::default();
        let late = b.admit(t0(), false).unwrap();
        for _ in 0..FAILURE_THRESHOLD {
            fail(&mut b, t0());
        }
        assert_eq!(b.record(late.0, late.1, Verdict::Success, secs(1)), None);
        assert_eq!(b.state(secs(1), false), BreakerState::Open);
    }

    #[test]
    fn a_stuck_breaker_is_open_and_never_half_opens() {
        let mut b = Breaker::default();
        assert_eq!(b.state(t0(), true), BreakerState::Open);
        assert_eq!(b.failure_count(), FAILURE_THRESHOLD);
        assert_eq!(b.state(secs(3600), true), BreakerState::Open);
        assert_eq!(b.seconds_until_half_open(secs(3600), true), None);
        assert_eq!(b.admit(secs(3600), true), None);
    }

    #[test]
    fn reset_all_clears_the_stuck_switch() {
        let chaos = Chaos::default();
        chaos
            .set(STUCK_SWITCH, json!({"provider": "spotify"}))
            .unwrap();
        let breakers = Breakers::new(chaos.clone());
        assert!(breakers.admit(Provider::Spotify, t0()).is_none());
        assert!(breakers.admit(Provider::Lastfm, t0()).is_some());
        let health = breakers.health(Provider::Spotify, secs(600), true);
        assert_eq!(health.state, BreakerState::Open);
        assert_eq!(health.seconds_until_half_open, None);

        breakers.reset_all();
        assert!(!chaos.is_on(STUCK_SWITCH));
        let health = breakers.health(Provider::Spotify, secs(600), true);
        assert_eq!(health.state, BreakerState::Closed);
        assert_eq!(health.failure_count, 0);
    }

    #[test]
    fn a_dropped_trial_permit_frees_the_slot() {
        let breakers = Breakers::new(Chaos::default());
        for _ in 0..FAILURE_THRESHOLD {
            breakers
                .admit(Provider::Musicbrainz, t0())
                .unwrap()
                .finish(Verdict::Failure, t0());
        }
        let trial = breakers
            .admit(Provider::Musicbrainz, secs(60))
            .expect("trial");
        assert!(breakers.admit(Provider::Musicbrainz, secs(60)).is_none());
        drop(trial);
        assert!(breakers.admit(Provider::Musicbrainz, secs(60)).is_some());
    }
}

/// The breaker against a model of docs/twin.md's words, under random call results,
/// overlapping calls, dropped requests, resets and clock steps.
#[cfg(test)]
mod model {
    use super::*;
    use proptest::prelude::*;

    /// The breaker as the docs state it, kept as plain as it can be said: CLOSED counts
    /// failures in a row (a success clears them, a neutral answer does neither); the
    /// fifth opens it; OPEN refuses everything for a minute, then one trial at a time
    /// decides; a reset closes it and disowns every call admitted before it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Spec {
        Closed { in_a_row: u32 },
        Open { since: i64 },
        HalfOpen { trial_out: bool },
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        /// Modeled milliseconds pass.
        Wait(i64),
        /// A call that is admitted (or refused) and ends at once.
        Call(Verdict),
        /// A call that is admitted now and ends later.
        Begin,
        /// The `n`-th call still out ends (modulo how many are out).
        End(usize, Verdict),
        /// The `n`-th call still out is dropped unfinished.
        Drop(usize),
        Reset,
    }

    fn verdict() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::Success),
            Just(Verdict::Failure),
            Just(Verdict::Failure),
            Just(Verdict::Neutral),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0i64..90_000).prop_map(Op::Wait),
            6 => verdict().prop_map(Op::Call),
            2 => Just(Op::Begin),
            2 => (any::<usize>(), verdict()).prop_map(|(n, v)| Op::End(n, v)),
            1 => any::<usize>().prop_map(Op::Drop),
            1 => Just(Op::Reset),
        ]
    }

    /// A call out: its admission as the machine gave it, and as the model sees it.
    struct Out {
        admission: Admission,
        generation: u64,
        spec_epoch: u64,
    }

    struct Both {
        machine: Breaker,
        spec: Spec,
        /// Resets so far, as the model counts them.
        epoch: u64,
        now_ms: i64,
        out: Vec<Out>,
    }

    impl Both {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(1_764_300_000, 0).unwrap()
                + TimeDelta::milliseconds(self.now_ms)
        }

        /// The model brought up to now: a minute after opening, it half-opens.
        fn settle_spec(&mut self) {
            if let Spec::Open { since } = self.spec
                && self.now_ms - since >= RECOVERY.num_milliseconds()
            {
                self.spec = Spec::HalfOpen { trial_out: false };
            }
        }

        fn spec_state(&self) -> BreakerState {
            match self.spec {
                Spec::Closed { .. } => BreakerState::Closed,
                Spec::Open { .. } => BreakerState::Open,
                Spec::HalfOpen { .. } => BreakerState::HalfOpen,
            }
        }

        /// Asks both for a call; they must agree whether and how it is admitted.
        fn admit(&mut self) -> Option<Out> {
            self.settle_spec();
            let now = self.now();
            let machine = self.machine.admit(now, false);
            let spec = match &mut self.spec {
                Spec::Closed { .. } => Some(Admission::Normal),
                Spec::Open { .. } | Spec::HalfOpen { trial_out: true } => None,
                Spec::HalfOpen { trial_out } => {
                    *trial_out = true;
                    Some(Admission::Trial)
                }
            };
            assert_eq!(machine.map(|(a, _)| a), spec, "admission at {now}");
            machine.map(|(admission, generation)| Out {
                admission,
                generation,
                spec_epoch: self.epoch,
            })
        }

        fn end(&mut self, call: Out, verdict: Verdict) {
            self.settle_spec();
            let now = self.now();
            self.machine
                .record(call.admission, call.generation, verdict, now);
            if call.spec_epoch != self.epoch {
                return; // admitted before a reset: it says nothing now
            }
            self.spec = match (call.admission, self.spec, verdict) {
                (Admission::Normal, Spec::Closed { in_a_row }, Verdict::Failure) => {
                    if in_a_row + 1 >= FAILURE_THRESHOLD {
                        Spec::Open { since: self.now_ms }
                    } else {
                        Spec::Closed {
                            in_a_row: in_a_row + 1,
                        }
                    }
                }
                (Admission::Normal, Spec::Closed { .. }, Verdict::Success) => {
                    Spec::Closed { in_a_row: 0 }
                }
                (Admission::Trial, Spec::HalfOpen { trial_out: true }, Verdict::Success) => {
                    Spec::Closed { in_a_row: 0 }
                }
                (Admission::Trial, Spec::HalfOpen { trial_out: true }, Verdict::Failure) => {
                    Spec::Open { since: self.now_ms }
                }
                (Admission::Trial, Spec::HalfOpen { trial_out: true }, Verdict::Neutral) => {
                    Spec::HalfOpen { trial_out: false }
                }
                // Neutral answers, and calls that end after the breaker moved on.
                (_, unchanged, _) => unchanged,
            };
        }

        fn drop_call(&mut self, call: Out) {
            self.machine.abandon(call.admission, call.generation);
            if call.admission == Admission::Trial
                && call.spec_epoch == self.epoch
                && self.spec == (Spec::HalfOpen { trial_out: true })
            {
                self.spec = Spec::HalfOpen { trial_out: false };
            }
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Wait(ms) => self.now_ms += ms,
                Op::Call(verdict) => {
                    if let Some(call) = self.admit() {
                        self.end(call, verdict);
                    }
                }
                Op::Begin => {
                    if let Some(call) = self.admit() {
                        self.out.push(call);
                    }
                }
                Op::End(n, verdict) if !self.out.is_empty() => {
                    let call = self.out.remove(n % self.out.len());
                    self.end(call, verdict);
                }
                Op::Drop(n) if !self.out.is_empty() => {
                    let call = self.out.remove(n % self.out.len());
                    self.drop_call(call);
                }
                Op::End(..) | Op::Drop(_) => {}
                Op::Reset => {
                    self.machine.reset();
                    self.spec = Spec::Closed { in_a_row: 0 };
                    self.epoch += 1;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_breaker_follows_its_specification(ops in proptest::collection::vec(op(), 1..120)) {
            let mut both = Both {
                machine: Breaker::default(),
                spec: Spec::Closed { in_a_row: 0 },
                epoch: 0,
                now_ms: 0,
                out: Vec::new(),
            };
            for op in ops {
                both.apply(op);
                both.settle_spec();
                let now = both.now();
                prop_assert_eq!(both.machine.state(now, false), both.spec_state(), "after {:?}", op);
                let trials_out = both
                    .out
                    .iter()
                    .filter(|c| c.admission == Admission::Trial && c.spec_epoch == both.epoch)
                    .count();
                prop_assert!(trials_out <= 1, "one trial at a time, {} out", trials_out);
            }
        }
    }
}
