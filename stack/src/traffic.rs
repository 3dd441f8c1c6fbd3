//! The stack's API users: reads of rest-api and graph-api arriving at a set rate.
//!
//! The Connection Pool Exhaustion runbook is about connections that requests hold, so
//! a drill of it needs requests: users reading tracks and walking the graph. Each
//! request arrives on its own (a Poisson stream on the modeled clock, from the stack's
//! seed), whatever the services answer: users do not slow down because a pool is
//! full, they get 503s. A request holds one pooled connection for its query's
//! database time ([`crate::workload::QUERY_TIME`]), so `r` requests a modeled second
//! keep about `r × QUERY_TIME` connections busy on each service.
//!
//! Requests have no client timeout: a report that runs for an hour keeps its
//! connection for an hour, as it does in production (cutting the HTTP request would not
//! stop the query). In-flight requests are bounded ([`MAX_IN_FLIGHT`]); arrivals beyond
//! it are counted as turned away, never queued without bound. Rate 0 sends nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;
use wire::Clock;

/// Requests of one stack that may be in flight at once, over both APIs.
pub const MAX_IN_FLIGHT: usize = 400;

/// How far, in modeled time, arrivals may fall behind their schedule and still be sent
/// (late, one after another) rather than skipped over.
const MAX_LAG: Duration = Duration::from_secs(5);

/// What the users have seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    pub sent: u64,
    pub succeeded: u64,
    /// Answered with a status of 500 or above (a full pool answers 503).
    pub failed: u64,
    /// Not sent: [`MAX_IN_FLIGHT`] requests were already waiting.
    pub turned_away: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    turned_away: AtomicU64,
}

/// API traffic of one stack. Dropping it stops the arrivals and abandons what is in
/// flight.
pub struct ApiTraffic {
    rate: TrafficRate,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiTraffic {
    /// Users of rest-api and graph-api at `rest_api` and `graph_api`, reading tracks
    /// `1..=tracks`; silent until [`ApiTraffic::set_rate`].
    pub fn start(
        rest_api: Url,
        graph_api: Url,
        clock: Clock,
        seed: u64,
        tracks: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(wire::agents::API_USERS)
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()?;
        let rate = TrafficRate(Arc::new(watch::channel(Rate::default()).0));
        let counters = Arc::new(Counters::default());
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let tracks = tracks.max(1) as u64;
        let tasks = [(rest_api, Api::Rest, 0), (graph_api, Api::Graph, 1)]
            .into_iter()
            .map(|(base, api, stream)| {
                let users = Users {
                    base,
                    api,
                    http: http.clone(),
                    clock,
                    tracks,
                    counters: counters.clone(),
                    in_flight: in_flight.clone(),
                };
                let rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7261_6666_6963 ^ stream);
                tokio::spawn(users.arrive(rate.0.subscribe(), rng))
            })
            .collect();
        Ok(Self {
            rate,
            counters,
            tasks,
        })
    }

    /// The workload's requests per modeled minute on each API (0 stops the arrivals);
    /// ends any surge.
    pub fn set_rate(&self, requests_per_minute: u32) {
        self.rate.0.send_replace(Rate {
            workload: requests_per_minute,
            surge: None,
        });
    }

    /// Requests per modeled minute on each API now.
    pub fn rate(&self) -> u32 {
        self.rate.0.borrow().now()
    }

    /// A handle that starts and ends surges from elsewhere (a fault's guard).
    pub fn rate_handle(&self) -> TrafficRate {
        self.rate.clone()
    }

    pub fn counts(&self) -> TrafficCounts {
        let c = &self.counters;
        TrafficCounts {
            sent: c.sent.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            turned_away: c.turned_away.load(Ordering::Relaxed),
        }
    }
}

/// The workload's rate, and a surge above it while one lasts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rate {
    workload: u32,
    surge: Option<u32>,
}

impl Rate {
    fn now(self) -> u32 {
        self.surge.unwrap_or(self.workload)
    }
}

/// Starts and ends surges of the users' rate; cheap to clone.
#[derive(Clone)]
pub struct TrafficRate(Arc<watch::Sender<Rate>>);

impl TrafficRate {
    /// Requests per modeled minute on each API until [`TrafficRate::end_surge`].
    pub fn surge(&self, requests_per_minute: u32) {
        self.0
            .send_modify(|rate| rate.surge = Some(requests_per_minute));
    }

    /// Back to the workload's rate (a no-op when no surge lasts).
    pub fn end_surge(&self) {
        self.0.send_modify(|rate| rate.surge = None);
    }
}

impl Drop for ApiTraffic {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone, Copy)]
enum Api {
    Rest,
    Graph,
}

/// When the users of one API arrive: a Poisson stream kept to its schedule.
///
/// Each arrival is due at the previous one's time plus an exponential gap, not at "now
/// plus the gap": the timer's rounding and a busy machine make every wake-up a little
/// late, and gaps counted from the late wake-ups would lower the rate (by some 15% at
/// 450 a minute on a scale of 30, where gaps last a few milliseconds). A stall longer
/// than [`MAX_LAG`] is not made up in a burst.
struct Schedule {
    clock: Clock,
    rng: ChaCha8Rng,
    next: Instant,
}

impl Schedule {
    fn new(clock: Clock, rng: ChaCha8Rng) -> Self {
        Self {
            clock,
            rng,
            next: Instant::now(),
        }
    }

    /// Counts the next gap from `now` (after a pause, or at a new rate).
    fn restart(&mut self, now: Instant) {
        self.next = now;
    }

    /// When the next user arrives at `per_minute` requests a modeled minute.
    fn next_arrival(&mut self, per_minute: u32, now: Instant) -> Instant {
        let mean = 60.0 / f64::from(per_minute.max(1));
        let gap = -mean * (1.0 - self.rng.random::<f64>()).ln();
        self.next += self.clock.to_real(Duration::from_secs_f64(gap));
        if now > self.next + self.clock.to_real(MAX_LAG) {
            self.next = now;
        }
        self.next
    }
}

/// The users of one API.
struct Users {
    base: Url,
    api: Api,
    http: reqwest::Client,
    clock: Clock,
    tracks: u64,
    counters: Arc<Counters>,
    in_flight: Arc<Semaphore>,
}

impl Users {
    async fn arrive(self, mut rate: watch::Receiver<Rate>, rng: ChaCha8Rng) {
        let users = Arc::new(self);
        let mut requests = tokio::task::JoinSet::new();
        let mut schedule = Schedule::new(users.clock, rng);
        loop {
            let per_minute = rate.borrow_and_update().now();
            if per_minute == 0 {
                if rate.changed().await.is_err() {
                    return;
                }
                schedule.restart(Instant::now());
                continue;
            }
            let next = schedule.next_arrival(per_minute, Instant::now());
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                changed = rate.changed() => {
                    if changed.is_err() { return; }
                    schedule.restart(Instant::now());
                    continue;
                }
            }
            while requests.try_join_next().is_some() {}
            let Ok(permit) = users.in_flight.clone().try_acquire_owned() else {
                users.counters.turned_away.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let path = users.path(&mut schedule.rng);
            let request = users.clone();
            requests.spawn(async move {
                request.send(&path).await;
                drop(permit);
            });
        }
    }

    /// A read a user of this API makes: mostly single tracks and their neighbours.
    fn path(&self, rng: &mut ChaCha8Rng) -> String {
        let id = rng.random_range(1..=self.tracks);
        match (self.api, rng.random_range(0..10)) {
            (Api::Rest, 0..=6) => format!("api/v1/tracks/{id}"),
            (Api::Rest, _) => format!("api/v1/tracks?limit=20&offset={}", id % 500),
            (Api::Graph, 0..=8) => format!("api/v1/graph/tracks/{id}/neighbors"),
            (Api::Graph, _) => "api/v1/graph/stats".to_owned(),
        }
    }

    async fn send(&self, path: &str) {
        let Ok(url) = self.base.join(path) else {
            return;
        };
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let counter = match self.http.get(url).send().await {
            Ok(response) if response.status().is_server_error() => &self.counters.failed,
            Ok(_) => &self.counters.succeeded,
            Err(_) => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nowhere() -> Url {
        // Port 9 (discard) refuses on loopback: requests fail at once.
        Url::parse("http://127.0.0.1:9/").unwrap()
    }

    #[tokio::test]
    async fn a_surge_rises_above_the_workload_and_ends_back_at_it() {
        let clock = Clock::starting_now(600.0).unwrap();
        let traffic = ApiTraffic::start(nowhere(), nowhere(), clock, 1, 100).unwrap();
        assert_eq!(traffic.rate(), 0, "silent until a workload asks");
        traffic.set_rate(120);
        let surge = traffic.rate_handle();
        surge.surge(400);
        assert_eq!(traffic.rate(), 400);
        surge.end_surge();
        surge.end_surge();
        assert_eq!(
            traffic.rate(),
            120,
            "ending a surge twice is the workload's rate"
        );
        surge.surge(400);
        traffic.set_rate(0);
        assert_eq!(traffic.rate(), 0, "a new workload ends the surge");
    }

    #[test]
    fn late_wake_ups_do_not_lower_the_rate() {
        // 450 a minute on a scale of 30: a gap of 4.4 ms on average; every wake-up a
        // millisecond late, as the timer's rounding makes it.
        let clock = Clock::starting_now(30.0).unwrap();
        let mut schedule = Schedule::new(clock, ChaCha8Rng::seed_from_u64(7));
        let start = schedule.next;
        let end = start + clock.to_real(Duration::from_secs(600));
        let (mut now, mut arrivals) = (start, 0);
        while now < end {
            let due = schedule.next_arrival(450, now);
            now = due.max(now) + Duration::from_millis(1);
            arrivals += 1;
        }
        // 4,500 expected in 10 modeled minutes; a Poisson count's spread is about 67.
        assert!(
            (4_300..=4_700).contains(&arrivals),
            "{arrivals} arrivals in 10 modeled minutes at 450 a minute"
        );
    }

    #[test]
    fn a_stall_is_not_made_up_in_a_burst() {
        let clock = Clock::starting_now(30.0).unwrap();
        let mut schedule = Schedule::new(clock, ChaCha8Rng::seed_from_u64(7));
        let stalled_until = schedule.next + Duration::from_secs(2);
        let due = schedule.next_arrival(450, stalled_until);
        assert_eq!(
            due, stalled_until,
            "a minute behind: the schedule starts again"
        );
        let after = schedule.next_arrival(450, stalled_until);
        assert!(after > stalled_until);
    }

    #[tokio::test]
    async fn users_arrive_at_the_rate_and_count_what_they_got() {
        // A real second of traffic: long enough that a pause of the machine does not
        // decide the count.
        let clock = Clock::starting_now(120.0).unwrap();
        let traffic = ApiTraffic::start(nowhere(), nowhere(), clock, 1, 100).unwrap();
        let started = clock.now();
        traffic.set_rate(60);
        tokio::time::sleep(clock.to_real(Duration::from_secs(120))).await;
        traffic.set_rate(0);
        let minutes = (clock.now() - started).num_milliseconds() as f64 / 60_000.0;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counts = traffic.counts();
        // 60 a minute on each of two APIs, over however long the sleep really took.
        let expected = 2.0 * 60.0 * minutes;
        assert!(
            (counts.sent as f64 - expected).abs() <= expected / 2.0,
            "about {expected:.0} requests in {minutes:.1} modeled minutes: {counts:?}"
        );
        assert_eq!(counts.succeeded, 0, "nothing answers there: {counts:?}");
        assert_eq!(counts.failed, counts.sent, "{counts:?}");
    }
}
