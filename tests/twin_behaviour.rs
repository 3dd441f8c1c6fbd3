//! The twin behaves as docs/twin.md and the runbooks say it does: one behaviour per
//! test, each checked through what an operator sees (the documented endpoints and the
//! runbooks' tables), each able to fail.
//!
//! Every wait is a poll with a deadline that names what it awaited and what it saw
//! last; no sleep stands in for an assertion. Timing claims are checked against the
//! modeled clock the twin shares with the test (`Stack::clock`).
//!
//! Needs the `drill` binary (`cargo build --bin drill`), which the stack runs as the
//! twin's services.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Fault;
use harness::alerts::{AlertEvaluator, AlertState};
use runbooks::ops::{AutoApprove, DlqApi, EnrichmentApi, HttpApi, Ops, Timeline};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use sqlx::types::chrono::{DateTime, Utc};
use stack::Stack;
use wire::Service;
use wire::api::{ApiClientHealth, BreakerState, ErrorKind, Provider};

/// Modeled seconds per real second: a breaker recovers in one real second.
const SCALE: f64 = 60.0;
/// How long (real time) any awaited condition may take before the test fails. Generous:
/// the suite shares two cores with other stacks.
const PATIENCE: Duration = Duration::from_secs(90);
/// Real time between two polls.
const POLL: Duration = Duration::from_millis(20);
/// The breaker's recovery timeout (docs/twin.md), in modeled seconds.
const RECOVERY_SECONDS: f64 = 60.0;
/// Consecutive counted failures that open a breaker (docs/twin.md).
const FAILURE_THRESHOLD: i64 = 5;

/// A stack and the clients an operator would use on it.
struct Twin {
    stack: Stack,
    enrichment: EnrichmentApi,
    dlq: DlqApi,
    /// musicdb as `musicdb_user`, as the runbooks connect.
    db: PgPool,
}

impl Twin {
    async fn start(label: &str) -> Twin {
        let stack = common::stack(label, SCALE).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let ep = stack.endpoints().clone();
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect(&ep.database_url)
            .await
            .expect("musicdb_user connects to musicdb");
        Twin {
            enrichment: EnrichmentApi(HttpApi::new(http.clone(), ep.enrichment)),
            dlq: DlqApi(HttpApi::new(http, ep.dlq)),
            db,
            stack,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.stack.clock().now()
    }

    /// `curl :8020/health | jq '.api_clients.<provider>'`.
    async fn breaker(&self, provider: Provider) -> ApiClientHealth {
        let health = self.enrichment.health().await.expect("GET :8020/health");
        health
            .api_clients
            .get(&provider)
            .cloned()
            .unwrap_or_else(|| panic!("/health .api_clients has no {provider}: {health:?}"))
    }

    /// `curl :8024/dlq/errors/grouped`.
    async fn grouped(&self) -> BTreeMap<String, i64> {
        self.dlq
            .errors_grouped()
            .await
            .expect("GET :8024/dlq/errors/grouped")
    }

    /// Inserts pending tracks as a scraper would, created at modeled now; their ids in order.
    async fn add_tracks(&self, names: &[(String, String)]) -> Vec<i64> {
        let (artists, titles): (Vec<String>, Vec<String>) = names.iter().cloned().unzip();
        sqlx::query_scalar(
            "INSERT INTO tracks (artist_name, track_name, source, source_url, enrichment_status,
                                 created_at, updated_at)
             SELECT a, t, 'twin-behaviour', 'test://twin-behaviour/' || ord, 'pending', $3, $3
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(a, t, ord)
             ORDER BY ord
             RETURNING track_id",
        )
        .bind(&artists)
        .bind(&titles)
        .bind(self.now())
        .fetch_all(self.stack.admin_pool())
        .await
        .expect("inserting pending tracks")
    }

    /// Gives every provider call 120 modeled seconds (2 s real) instead of 20-30 (a third
    /// to half a real second), the knob the DLQ runbook turns for timeouts: tests whose
    /// subject is not timeouts must not see one because a loaded CI machine stalled a
    /// debug build for half a second.
    async fn relax_timeouts(&self) {
        sqlx::query("UPDATE metadata_enrichment_config SET timeout_seconds = 120")
            .execute(&self.db)
            .await
            .expect("raising timeout_seconds");
        self.enrichment
            .reload_config()
            .await
            .expect("POST :8020/admin/config/reload");
    }

    /// `n` catalogue tracks every provider knows and no track of the stack is named
    /// after yet, so nothing about them is cached. Taken from the least popular end, which
    /// the scrapers (drawing by popularity) rarely reach.
    async fn fresh_names(&self, n: usize) -> Vec<(String, String)> {
        let existing: BTreeSet<(String, String)> = sqlx::query_as::<_, (String, String)>(
            "SELECT lower(artist_name), lower(track_name) FROM tracks
             WHERE artist_name IS NOT NULL AND track_name IS NOT NULL",
        )
        .fetch_all(&self.db)
        .await
        .expect("reading track names")
        .into_iter()
        .collect();
        let names: Vec<(String, String)> = self
            .stack
            .catalogue()
            .tracks()
            .iter()
            .rev()
            .filter(|t| t.on_spotify && t.on_musicbrainz && t.on_lastfm)
            .filter(|t| !existing.contains(&(t.artist.to_lowercase(), t.title.to_lowercase())))
            .take(n)
            .map(|t| (t.artist.clone(), t.title.clone()))
            .collect();
        assert_eq!(
            names.len(),
            n,
            "the catalogue has {n} fresh, fully known tracks"
        );
        names
    }

    /// `enrichment_status` of each track.
    async fn statuses(&self, ids: &[i64]) -> BTreeMap<i64, String> {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT track_id, enrichment_status FROM tracks WHERE track_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.db)
        .await
        .expect("reading track statuses")
        .into_iter()
        .collect()
    }

    /// Waits until the workers have finished with every one of `ids` (none pending or
    /// in progress) and returns their statuses.
    async fn settled(&self, ids: &[i64], what: &str) -> BTreeMap<i64, String> {
        wait_for(
            &format!("the workers to finish {what} ({} tracks)", ids.len()),
            || self.statuses(ids),
            |statuses| {
                statuses.len() == ids.len()
                    && statuses
                        .values()
                        .all(|s| s != "pending" && s != "in_progress")
            },
        )
        .await
    }

    /// Tracks waiting for or under enrichment, stack-wide.
    async fn queue_depth(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM tracks WHERE enrichment_status IN ('pending', 'in_progress')",
        )
        .fetch_one(&self.db)
        .await
        .expect("counting the enrichment queue")
    }

    /// Stops both scrapers and waits until the workers have drained the queue, so that
    /// from now on only the tracks a test adds reach the providers.
    async fn quiesce(&self) {
        self.stack
            .orchestrator()
            .stop(&[Service::ScraperMixesdb, Service::Scraper1001Tracklists])
            .await
            .expect("stopping the scrapers");
        wait_for(
            "the enrichment queue to drain after stopping the scrapers",
            || self.queue_depth(),
            |depth| *depth == 0,
        )
        .await;
    }

    /// The live DLQ message of each of `ids` that has one: (error, provider).
    async fn dlq_of(&self, ids: &[i64]) -> BTreeMap<i64, (String, Option<String>)> {
        sqlx::query_as::<_, (i64, String, Option<String>)>(
            "SELECT track_id, error, provider FROM dlq_messages WHERE track_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.db)
        .await
        .expect("reading DLQ messages")
        .into_iter()
        .map(|(id, error, provider)| (id, (error, provider)))
        .collect()
    }
}

/// Polls `probe` until `done` holds; fails after [`PATIENCE`] naming what was awaited
/// and the last value seen.
async fn wait_for<T, F, Fut>(what: &str, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let started = Instant::now();
    loop {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}; last seen: {value:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn count_errors<'a>(
    messages: impl IntoIterator<Item = &'a (String, Option<String>)>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (error, _) in messages {
        *counts.entry(error.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spotify_outage_opens_its_breaker_and_fills_the_dlq_with_circuit_breaker_errors() {
    let twin = Twin::start("spotify-outage-opens-breaker").await;
    twin.relax_timeouts().await;
    let before = twin.grouped().await;
    assert_eq!(
        twin.breaker(Provider::Spotify).await.state,
        BreakerState::Closed,
        "a fresh stack starts with Spotify's breaker CLOSED"
    );

    let _outage = Fault::provider(Provider::Spotify)
        .status(503)
        .inject(&twin.stack)
        .await
        .expect("injecting the outage");
    // A first few tracks make the failing calls that open the breaker (calls already
    // in flight when it opens all reach Spotify); the rest arrive once it is open.
    let names = twin.fresh_names(40).await;
    let opening = twin.add_tracks(&names[..10]).await;

    let spotify = wait_for(
        "Spotify's breaker to read OPEN in /health .api_clients",
        || twin.breaker(Provider::Spotify),
        |b| b.state == BreakerState::Open,
    )
    .await;
    assert!(
        spotify.failure_count >= FAILURE_THRESHOLD as u32,
        "an OPEN breaker counted at least {FAILURE_THRESHOLD} failures: {spotify:?}"
    );
    let health = twin.enrichment.health().await.expect("GET :8020/health");
    assert_eq!(health.status, "degraded", "{health:?}");
    for other in [Provider::Musicbrainz, Provider::Lastfm] {
        assert_eq!(
            health.api_clients[&other].state,
            BreakerState::Closed,
            "only Spotify is down: {health:?}"
        );
    }

    let later = twin.add_tracks(&names[10..]).await;
    let tracks: Vec<_> = opening.iter().chain(&later).cloned().collect();
    let statuses = twin
        .settled(&tracks, "the tracks added during the outage")
        .await;
    assert!(
        statuses.values().all(|s| s == "failed"),
        "audio_features has no fallback, so every track fails while Spotify is down: {statuses:?}"
    );
    let messages = twin.dlq_of(&tracks).await;
    assert_eq!(
        messages.len(),
        tracks.len(),
        "every failed track has one DLQ message"
    );
    assert!(
        messages
            .values()
            .all(|(error, provider)| provider.as_deref() == Some("spotify")
                && (error == "circuit_breaker_open" || error == "provider_error")),
        "Spotify is named, and a 503 is a provider error until the breaker opens: {messages:?}"
    );
    let by_error = count_errors(messages.values());
    eprintln!("DLQ messages of the tracks added during the outage: {by_error:?}");
    let later_errors = count_errors(
        messages
            .iter()
            .filter(|(track, _)| later.contains(track))
            .map(|(_, message)| message),
    );
    let refused = later_errors
        .get("circuit_breaker_open")
        .copied()
        .unwrap_or(0);
    assert!(
        refused >= later.len() / 2,
        "once OPEN, the breaker refuses most calls: {later_errors:?}"
    );
    let after = twin.grouped().await;
    let grew = after.get("circuit_breaker_open").copied().unwrap_or(0)
        - before.get("circuit_breaker_open").copied().unwrap_or(0);
    assert!(
        grew >= refused as i64,
        "/dlq/errors/grouped counts the new circuit_breaker_open messages \
         (+{grew}, expected at least +{refused}): before {before:?}, after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_half_opens_after_sixty_modeled_seconds_and_closes_on_the_next_success() {
    let twin = Twin::start("breaker-half-opens-then-closes").await;
    twin.relax_timeouts().await;
    // Only the tracks added here reach Spotify: no trial call can sneak in.
    twin.quiesce().await;
    // Spotify's breaker cannot open before the outage begins.
    let injected_at = twin.now();
    let outage = Fault::provider(Provider::Spotify)
        .status(503)
        .inject(&twin.stack)
        .await
        .expect("injecting the outage");
    let failing = twin.add_tracks(&twin.fresh_names(10).await).await;
    twin.settled(&failing, "the tracks added during the outage")
        .await;

    // An OPEN reading with its countdown. Nothing calls Spotify now, so the breaker stays
    // OPEN until it half-opens by itself; should the test have been too slow to see it
    // OPEN, one more failing track makes the HALF_OPEN trial fail and reopens it.
    let mut extra = 0;
    let (seen_at, answered_at, countdown) = loop {
        let seen_at = twin.now();
        let spotify = twin.breaker(Provider::Spotify).await;
        let answered_at = twin.now();
        match spotify.state {
            BreakerState::Open => {
                let countdown = spotify.seconds_until_half_open.unwrap_or_else(|| {
                    panic!("an OPEN breaker tells when it half-opens: {spotify:?}")
                });
                break (seen_at, answered_at, countdown);
            }
            BreakerState::HalfOpen if extra < 3 => {
                extra += 1;
                let one = twin.add_tracks(&twin.fresh_names(1).await).await;
                twin.settled(&one, "a track that makes the trial call fail")
                    .await;
            }
            state => panic!(
                "after {} failed tracks Spotify's breaker reads {state:?}, not OPEN: {spotify:?}",
                failing.len() + extra
            ),
        }
    };
    assert!(
        countdown > 0.0 && countdown <= RECOVERY_SECONDS,
        "the countdown is within the 60 s recovery timeout: {countdown}"
    );

    // Healing the provider does not close the breaker: only a successful call does.
    outage.heal().await.expect("healing the outage");

    // The breaker half-opens at (opened + 60 s). It opened after the outage began and
    // before it was seen OPEN, so it half-opens neither before `injected_at + 60 s` nor
    // after `answered_at + 60 s`; its countdown narrows that window. Every reading is
    // checked against it.
    let slack = Duration::from_millis(100);
    let recovery = Duration::from_secs_f64(RECOVERY_SECONDS);
    let countdown = Duration::from_secs_f64(countdown);
    assert!(
        seen_at + countdown + slack >= injected_at + recovery,
        "the countdown ({countdown:?} at {seen_at}) is that of a {RECOVERY_SECONDS} s recovery \
         timeout for a breaker that opened after {injected_at}"
    );
    let earliest = (seen_at + countdown).max(injected_at + recovery) - slack;
    let latest = (answered_at + countdown).min(answered_at + recovery) + slack;
    let mut readings = Vec::new();
    let started = Instant::now();
    loop {
        let asked_at = twin.now();
        let spotify = twin.breaker(Provider::Spotify).await;
        let answered_at = twin.now();
        readings.push((asked_at, spotify.state));
        if answered_at < earliest {
            assert_eq!(
                spotify.state,
                BreakerState::Open,
                "before 60 modeled seconds have passed since it opened, the breaker stays \
                 OPEN, even though the outage is healed (reading at {asked_at}, half-open due \
                 at {earliest} at the earliest): {spotify:?}"
            );
        }
        if asked_at > latest {
            assert_eq!(
                spotify.state,
                BreakerState::HalfOpen,
                "60 modeled seconds after it opened, with no call since, the breaker reads \
                 HALF_OPEN (reading at {asked_at}, due by {latest}): {spotify:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the modeled clock did not reach {latest}; readings: {readings:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        readings.iter().all(|(_, s)| *s != BreakerState::Closed),
        "without a successful call the breaker never closed: {readings:?}"
    );
    eprintln!(
        "OPEN with {countdown:?} to go at {seen_at} (after {extra} extra failing tracks); \
         readings after healing: {readings:?}"
    );

    // The next call is the trial: it succeeds, and the breaker closes.
    let healthy = twin.add_tracks(&twin.fresh_names(1).await).await;
    let statuses = twin
        .settled(&healthy, "the track whose call is the trial")
        .await;
    assert_eq!(
        statuses.values().collect::<Vec<_>>(),
        ["enriched"],
        "the trial call succeeds once Spotify is back"
    );
    let sources: String =
        sqlx::query_scalar("SELECT sources_used FROM enrichment_audit WHERE track_id = $1")
            .bind(healthy[0])
            .fetch_one(&twin.db)
            .await
            .expect("the trial track's audit row");
    assert!(
        sources.split(',').any(|s| s == "spotify"),
        "the trial track was served by Spotify: sources_used '{sources}'"
    );
    let spotify = twin.breaker(Provider::Spotify).await;
    assert_eq!(
        (spotify.state, spotify.failure_count),
        (BreakerState::Closed, 0),
        "a successful trial closes the breaker and clears its count: {spotify:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_provider_calls_are_classified_api_rate_limit_in_the_dlq() {
    let twin = Twin::start("rate-limit-classified").await;
    twin.relax_timeouts().await;
    let before = twin.grouped().await;
    let injected_at = twin.now();
    let _limit = Fault::provider(Provider::Spotify)
        .rate_limit(Duration::from_secs(60))
        .inject(&twin.stack)
        .await
        .expect("injecting the rate limit");
    let tracks = twin.add_tracks(&twin.fresh_names(20).await).await;
    twin.settled(&tracks, "the tracks added under the rate limit")
        .await;

    // Every Spotify failure since the 429s began, whichever track it hit (scraped ones too).
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT error, error_message FROM dlq_messages
         WHERE provider = 'spotify' AND created_at >= $1",
    )
    .bind(injected_at)
    .fetch_all(&twin.db)
    .await
    .expect("reading the new Spotify failures");
    let mut by_error: BTreeMap<&str, usize> = BTreeMap::new();
    for (error, _) in &rows {
        *by_error.entry(error.as_str()).or_default() += 1;
    }
    assert!(
        by_error
            .keys()
            .all(|e| *e == "api_rate_limit" || *e == "circuit_breaker_open"),
        "a 429 is api_rate_limit (or refused by the breaker it opened), never another kind: \
         {by_error:?}"
    );
    let limited = by_error.get("api_rate_limit").copied().unwrap_or(0);
    assert!(
        limited as i64 >= FAILURE_THRESHOLD,
        "each of the {FAILURE_THRESHOLD} calls that opened the breaker left an \
         api_rate_limit message: {by_error:?}"
    );
    assert!(
        rows.iter()
            .filter(|(e, _)| e == "api_rate_limit")
            .all(|(_, m)| m.contains("429")),
        "the message says what Spotify answered: {rows:?}"
    );
    let after = twin.grouped().await;
    let grew = after.get("api_rate_limit").copied().unwrap_or(0)
        - before.get("api_rate_limit").copied().unwrap_or(0);
    assert!(
        grew >= limited as i64,
        "/dlq/errors/grouped shows them under api_rate_limit (+{grew}, expected +{limited}): \
         before {before:?}, after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_spotify_rows_and_reloading_lets_new_tracks_enrich_without_spotify() {
    let twin = Twin::start("disable-spotify-and-reload").await;
    twin.relax_timeouts().await;
    let _outage = Fault::provider(Provider::Spotify)
        .status(503)
        .inject(&twin.stack)
        .await
        .expect("injecting the outage");

    // Circuit Breaker Storm, scenario A, steps 2 and 3, as written.
    let disabled = sqlx::query(
        "UPDATE metadata_enrichment_config
         SET enabled = false
         WHERE priority_1_provider = 'spotify'
            OR priority_2_provider = 'spotify'
            OR priority_3_provider = 'spotify'",
    )
    .execute(&twin.db)
    .await
    .expect("musicdb_user disables the rows naming spotify");
    assert_eq!(
        disabled.rows_affected(),
        2,
        "identifiers and audio_features name spotify"
    );
    twin.enrichment
        .reload_config()
        .await
        .expect("POST :8020/admin/config/reload");
    let spotify = twin.breaker(Provider::Spotify).await;
    assert!(
        !spotify.enabled,
        "/health shows Spotify no longer in use after the reload: {spotify:?}"
    );

    let tracks = twin.add_tracks(&twin.fresh_names(12).await).await;
    let statuses = twin
        .settled(&tracks, "the tracks added after the reload")
        .await;
    assert!(
        statuses.values().all(|s| s == "enriched"),
        "with Spotify's rows disabled, the outage no longer fails tracks: {statuses:?}"
    );
    let audits: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT track_id, sources_used, status FROM enrichment_audit WHERE track_id = ANY($1)",
    )
    .bind(&tracks)
    .fetch_all(&twin.db)
    .await
    .expect("reading the audit rows");
    assert_eq!(
        audits.len(),
        tracks.len(),
        "one audit row per track: {audits:?}"
    );
    for (track, sources, status) in &audits {
        assert_eq!(status, "success", "track {track}: {audits:?}");
        let sources: Vec<&str> = sources.split(',').filter(|s| !s.is_empty()).collect();
        assert!(
            !sources.is_empty() && !sources.contains(&"spotify"),
            "track {track} was enriched by the other providers only: {sources:?}"
        );
    }
    let with_spotify_id: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tracks WHERE track_id = ANY($1) AND spotify_id IS NOT NULL",
    )
    .bind(&tracks)
    .fetch_one(&twin.db)
    .await
    .expect("counting spotify ids");
    assert_eq!(with_spotify_id, 0, "nothing came from Spotify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_drains_the_dlq_without_losing_or_duplicating_a_message() {
    let twin = Twin::start("replay-drains-dlq").await;
    twin.relax_timeouts().await;
    let orchestrator = twin.stack.orchestrator();
    let workers = [
        Service::MetadataEnrichmentWorker1,
        Service::MetadataEnrichmentWorker2,
    ];
    // With the workers stopped, nothing re-fails a replayed track while the DLQ drains,
    // so the drain can be accounted for exactly.
    orchestrator
        .stop(&workers)
        .await
        .expect("stopping the workers");
    Fault::dlq_flood(600)
        .with_mix([
            (ErrorKind::CircuitBreakerOpen, 6),
            (ErrorKind::Timeout, 2),
            (ErrorKind::ApiRateLimit, 1),
            (ErrorKind::InvalidData, 1),
        ])
        .inject(&twin.stack)
        .await
        .expect("flooding the DLQ")
        .forget();
    let started_at = twin.now();
    let queued: BTreeSet<(i64, i64, String)> =
        sqlx::query_as("SELECT message_id, track_id, error FROM dlq_messages")
            .fetch_all(&twin.db)
            .await
            .expect("reading the DLQ")
            .into_iter()
            .collect();
    let stats = twin.dlq.stats().await.expect("GET :8024/dlq/stats");
    assert_eq!(stats.total_messages, queued.len() as i64, "{stats:?}");
    assert!(queued.len() >= 600, "the flood is queued: {}", queued.len());

    let mut replayed = 0;
    let mut batches = 0;
    loop {
        let outcome = twin
            .dlq
            .replay_batch(100)
            .await
            .expect("POST :8024/dlq/replay/batch {\"batch_size\": 100}");
        replayed += outcome.replayed;
        batches += 1;
        assert!(
            outcome.replayed <= 100,
            "a batch replays at most batch_size messages: {outcome:?}"
        );
        if outcome.remaining == 0 {
            break;
        }
        assert!(
            batches <= queued.len() / 100 + 2,
            "the DLQ does not drain: {batches} batches, {outcome:?}"
        );
    }
    assert_eq!(
        replayed,
        queued.len() as i64,
        "the batches replayed every queued message exactly once"
    );
    let stats = twin.dlq.stats().await.expect("GET :8024/dlq/stats");
    assert_eq!(stats.total_messages, 0, "the DLQ is empty: {stats:?}");

    let logged: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT message_id, track_id, error FROM dlq_replay_log WHERE replayed_at >= $1",
    )
    .bind(started_at)
    .fetch_all(&twin.db)
    .await
    .expect("reading dlq_replay_log");
    assert_eq!(
        logged.len(),
        queued.len(),
        "one dlq_replay_log row per replayed message"
    );
    let logged: BTreeSet<(i64, i64, String)> = logged.into_iter().collect();
    let unlogged: Vec<_> = queued.difference(&logged).take(10).collect();
    let unknown: Vec<_> = logged.difference(&queued).take(10).collect();
    assert!(
        unlogged.is_empty() && unknown.is_empty(),
        "dlq_replay_log records exactly the messages that were queued (message, track, \
         error); queued but not logged: {unlogged:?}; logged but never queued: {unknown:?}"
    );
    let tracks: Vec<i64> = queued.iter().map(|(_, track, _)| *track).collect();
    let statuses = twin.statuses(&tracks).await;
    assert!(
        statuses.values().all(|s| s == "pending"),
        "every replayed track is back in the enrichment queue: {:?}",
        count_statuses(&statuses)
    );

    // The workers take the replayed tracks: each ends enriched, or failed again with
    // exactly one new message; none is dropped and none is queued twice.
    orchestrator
        .start(&workers)
        .await
        .expect("starting the workers");
    let statuses = twin.settled(&tracks, "the replayed tracks").await;
    let live = twin.dlq_of(&tracks).await;
    let old_ids: BTreeSet<i64> = queued.iter().map(|(id, _, _)| *id).collect();
    let live_ids: BTreeSet<i64> = sqlx::query_scalar::<_, i64>(
        "SELECT message_id FROM dlq_messages WHERE track_id = ANY($1)",
    )
    .bind(&tracks)
    .fetch_all(&twin.db)
    .await
    .expect("reading live message ids")
    .into_iter()
    .collect();
    assert!(
        live_ids.is_disjoint(&old_ids),
        "no replayed message is queued again"
    );
    for (track, status) in &statuses {
        match status.as_str() {
            "enriched" => assert!(
                !live.contains_key(track),
                "enriched track {track} has no DLQ message"
            ),
            "failed" => assert!(
                live.contains_key(track),
                "failed track {track} is back in the DLQ, not lost"
            ),
            other => panic!("track {track} ended {other}"),
        }
    }

    // The flood's tracks: those with both names enrich now; those missing a name cannot
    // be fixed by a replay and are back as invalid_data.
    let flood: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT track_id, artist_name, track_name FROM tracks WHERE source = 'dlq-flood'",
    )
    .fetch_all(&twin.db)
    .await
    .expect("reading the flood's tracks");
    assert_eq!(flood.len(), 600);
    for (track, artist, title) in &flood {
        let named = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
        if named(artist) && named(title) {
            assert_eq!(
                statuses[track], "enriched",
                "flood track {track} has both names and enriches after replay"
            );
        } else {
            assert_eq!(
                live.get(track).map(|(e, _)| e.as_str()),
                Some("invalid_data"),
                "flood track {track} lacks a name and is back as invalid_data"
            );
        }
    }
}

fn count_statuses(statuses: &BTreeMap<i64, String>) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses.values() {
        *counts.entry(status.as_str()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_before_a_date_moves_those_messages_to_the_archive() {
    let twin = Twin::start("purge-archives").await;
    // Recent messages (the last 90 modeled minutes) beside the seeded ones (3-6 days old).
    Fault::dlq_flood(40)
        .inject(&twin.stack)
        .await
        .expect("flooding the DLQ")
        .forget();
    let day = (twin.now() - Duration::from_secs(24 * 3600))
        .format("%Y-%m-%d")
        .to_string();
    let cutoff: DateTime<Utc> = format!("{day}T00:00:00Z").parse().expect("a UTC midnight");

    type Row = (
        i64,
        i64,
        String,
        String,
        Option<String>,
        serde_json::Value,
        i32,
        DateTime<Utc>,
    );
    let columns =
        "message_id, track_id, error, error_message, provider, payload, replay_count, created_at";
    let old: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM dlq_messages WHERE created_at < $1 ORDER BY message_id"
    )))
    .bind(cutoff)
    .fetch_all(&twin.db)
    .await
    .expect("reading the old messages");
    let recent: Vec<i64> =
        sqlx::query_scalar("SELECT message_id FROM dlq_messages WHERE created_at >= $1")
            .bind(cutoff)
            .fetch_all(&twin.db)
            .await
            .expect("reading the recent messages");
    assert!(
        !old.is_empty(),
        "the seeded DLQ holds messages from before {day}"
    );
    assert!(recent.len() >= 40, "the flood is recent: {}", recent.len());

    let purged_at = twin.now();
    let outcome = twin
        .dlq
        .purge_before(&day)
        .await
        .unwrap_or_else(|e| panic!("DELETE :8024/dlq/messages/before/{day}: {e}"));
    assert_eq!(
        (outcome.purged, outcome.archived),
        (old.len() as i64, old.len() as i64),
        "every message before {day} is purged and archived: {outcome:?}"
    );

    let ids: Vec<i64> = old.iter().map(|r| r.0).collect();
    let archived: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM dlq_archive WHERE message_id = ANY($1) ORDER BY message_id"
    )))
    .bind(&ids)
    .fetch_all(&twin.db)
    .await
    .expect("reading the archive");
    let changed: Vec<(&Row, Option<&Row>)> = old
        .iter()
        .filter(|row| !archived.contains(row))
        .map(|row| (row, archived.iter().find(|a| a.0 == row.0)))
        .collect();
    assert!(
        changed.is_empty() && archived.len() == old.len(),
        "the archive holds each purged message as it was; (queued, archived) that differ: \
         {changed:?}"
    );
    let (reasons, earliest): (Vec<String>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT array_agg(DISTINCT archive_reason), MIN(archived_at) FROM dlq_archive
         WHERE message_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&twin.db)
    .await
    .expect("reading archive reasons");
    assert!(
        reasons.iter().all(|r| r.contains(&day)),
        "the archive says why: {reasons:?}"
    );
    assert!(
        earliest.is_some_and(|at| at >= purged_at - Duration::from_secs(1)),
        "archived at the purge's modeled instant ({purged_at}): {earliest:?}"
    );
    let still_queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM dlq_messages WHERE message_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&twin.db)
            .await
            .expect("counting purged messages still queued");
    assert_eq!(still_queued, 0, "purged messages left the queue");
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM dlq_messages WHERE message_id = ANY($1)")
            .bind(&recent)
            .fetch_one(&twin.db)
            .await
            .expect("counting recent messages");
    assert_eq!(
        kept,
        recent.len() as i64,
        "messages from {day} on stay queued"
    );
    let stats = twin.dlq.stats().await.expect("GET :8024/dlq/stats");
    // In fractional minutes, read after the stats: a message from the cutoff's own
    // minute is a fraction of a minute older than whole minutes since the cutoff.
    let max_age = (twin.now() - cutoff).num_milliseconds() as f64 / 60_000.0;
    assert!(
        stats.oldest_message_age_minutes <= max_age,
        "/dlq/stats no longer shows a message older than the cutoff ({max_age} min): {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_raise_the_cache_hit_rate() {
    let twin = Twin::start("cache-hits-raise-rate").await;
    twin.relax_timeouts().await;
    twin.quiesce().await;
    // Names no track of the stack has: nothing of them is cached yet.
    let names = twin.fresh_names(12).await;

    // A clean statistics window: drop metadata-enrichment's in-memory state (what a
    // restart would do) now that nothing else is enriching.
    let chaos = twin
        .stack
        .chaos_url(Service::MetadataEnrichment)
        .expect("metadata-enrichment has a chaos surface")
        .join("chaos/reset")
        .expect("a relative URL");
    let reset = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
        .post(chaos)
        .send()
        .await
        .expect("POST /chaos/reset");
    assert!(reset.status().is_success(), "{reset:?}");
    wait_for(
        "/stats to start an empty window",
        || async { twin.enrichment.stats().await.expect("GET :8020/stats") },
        |s| s.total_enrichments == 0,
    )
    .await;

    // First time: every provider answer is a miss.
    let first = twin.add_tracks(&names).await;
    let statuses = twin
        .settled(&first, "the first enrichment of the names")
        .await;
    assert!(statuses.values().all(|s| s == "enriched"), "{statuses:?}");
    let cold = twin.enrichment.stats().await.expect("GET :8020/stats");
    assert_eq!(
        (cold.cache_hits, cold.cache_hit_rate),
        (0, 0.0),
        "nothing was cached before: {cold:?}"
    );
    assert!(cold.cache_misses >= names.len() as u64, "{cold:?}");

    // The answers land in Redis (written in the background): search, audio features,
    // recording and track info for each name.
    let keys: Vec<String> = names
        .iter()
        .zip(&first)
        .flat_map(|((artist, title), _)| {
            let pair = format!(
                "{}|{}",
                artist.trim().to_lowercase(),
                title.trim().to_lowercase()
            );
            let id = &twin
                .stack
                .catalogue()
                .find(artist, title)
                .expect("a catalogue track")
                .spotify_id;
            [
                format!("enrich:spotify:search:{pair}"),
                format!("enrich:spotify:audio-features:{id}"),
                format!("enrich:musicbrainz:recording:{pair}"),
                format!("enrich:lastfm:track.getinfo:{pair}"),
            ]
        })
        .collect();
    let redis =
        redis::Client::open(twin.stack.endpoints().redis_url.as_str()).expect("a Redis URL");
    let conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    wait_for(
        "the provider answers of the first enrichment to be cached in Redis",
        || {
            let mut conn = conn.clone();
            let keys = keys.clone();
            async move {
                redis::cmd("EXISTS")
                    .arg(&keys)
                    .query_async::<usize>(&mut conn)
                    .await
                    .expect("EXISTS")
            }
        },
        |n| *n == keys.len(),
    )
    .await;

    // Second time, as new tracks with the same names: served from the cache.
    let second = twin.add_tracks(&names).await;
    let statuses = twin
        .settled(&second, "the second enrichment of the names")
        .await;
    assert!(statuses.values().all(|s| s == "enriched"), "{statuses:?}");
    let warm = twin.enrichment.stats().await.expect("GET :8020/stats");
    assert!(
        warm.cache_hit_rate > cold.cache_hit_rate && warm.cache_hit_rate >= 0.4,
        "re-enriching cached names raises /stats .cache_hit_rate: before {cold:?}, after {warm:?}"
    );
    let hits: Vec<(i64, i32)> = sqlx::query_as(
        "SELECT track_id, cache_hits FROM enrichment_audit WHERE track_id = ANY($1)",
    )
    .bind(&second)
    .fetch_all(&twin.db)
    .await
    .expect("reading the audit rows");
    assert_eq!(hits.len(), second.len(), "{hits:?}");
    assert!(
        hits.iter().all(|(_, h)| *h > 0),
        "every re-enriched track used the cache: {hits:?}"
    );
    let audited: i64 = hits.iter().map(|(_, h)| i64::from(*h)).sum();
    assert_eq!(
        warm.cache_hits as i64, audited,
        "/stats counts exactly the hits the audit rows record: {warm:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_in_flight_at_a_restart_is_claimed_again_counted_and_not_lost() {
    // What a runbook's restart costs the pipeline: the workers' claims in flight are
    // claimed again by the workers' next processes. The ledger counts them as
    // interrupted claims, and every track still ends enriched.
    let twin = Twin::start("interrupted-claims").await;
    twin.quiesce().await;
    twin.relax_timeouts().await;
    // Each Spotify call takes a modeled minute (a real second): claims stay in flight.
    let slow = Fault::provider(Provider::Spotify)
        .latency(Duration::from_secs(60))
        .inject(&twin.stack)
        .await
        .expect("Spotify slows down");
    let before = harness::ledger::take(&twin.db).await.expect("the ledger");
    let ids = twin.add_tracks(&twin.fresh_names(12).await).await;
    wait_for(
        "the workers to claim the new tracks",
        || twin.statuses(&ids),
        |statuses| statuses.values().filter(|s| *s == "in_progress").count() >= 2,
    )
    .await;
    twin.stack
        .orchestrator()
        .restart(&[
            Service::MetadataEnrichmentWorker1,
            Service::MetadataEnrichmentWorker2,
        ])
        .await
        .expect("the workers restart");
    slow.heal().await.expect("Spotify answers at once again");
    let settled = twin.settled(&ids, "the tracks of before the restart").await;
    let after = harness::ledger::take(&twin.db).await.expect("the ledger");
    assert!(
        settled.values().all(|s| s == "enriched"),
        "every track is enriched in the end: {settled:?}"
    );
    assert!(
        after.interrupted_claims > before.interrupted_claims,
        "the restart interrupted claims in flight: {before:?} then {after:?}"
    );
    assert!(after.balanced(), "{:?}: {after:?}", after.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stack_leaves_no_process_behind() {
    let twin = Twin::start("drop-leaves-nothing").await;
    let cgroup = twin.stack.memory().ok().map(|c| c.path().to_owned());
    match &twin.stack {
        Stack::Local(_) => drop_leaves_no_process(twin).await,
        Stack::Docker(_) => drop_leaves_no_container(twin).await,
    }
    if let Some(cgroup) = cgroup {
        assert!(
            !cgroup.exists(),
            "the stack's memory cgroup {} survived dropping the stack",
            cgroup.display()
        );
    }
}

/// Turns rest-api's `memory_leak` switch on: 64 modeled MiB a minute, up to `max_mib`.
async fn leak_in_rest_api(stack: &Stack, max_mib: u64) {
    let switch = stack
        .chaos_url(Service::RestApi)
        .expect("rest-api has a chaos surface")
        .join("chaos/memory_leak")
        .expect("a URL");
    let response = reqwest::Client::new()
        .put(switch)
        .json(&serde_json::json!({"mib_per_minute": 64, "max_mib": max_mib}))
        .send()
        .await
        .expect("PUT /chaos/memory_leak");
    assert!(response.status().is_success(), "{response:?}");
}

/// The stack's memory is a cgroup limited to its budget (`free -h` reads it): a leak
/// in rest-api raises it until `MemoryUsageHigh` fires, `docker stats` names rest-api
/// the largest, and at the budget the kernel's OOM killer ends rest-api, which the
/// stack's OOM record (`dmesg | grep -i oom`) counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_fills_the_stacks_memory_until_the_oom_killer_ends_the_leaker() {
    let twin = Twin::start("memory-budget").await;
    let stack = &twin.stack;
    if let Err(reason) = common::limited_memory(stack) {
        eprintln!("skipped: {reason}");
        return;
    }
    let host = stack.host();
    let at_rest = host.memory().await.expect("free -h");
    assert_eq!(at_rest.total, stack::memory::DEFAULT_MEMORY_BUDGET);
    assert!(
        at_rest.fraction() < 0.5,
        "a stack at rest uses {} of {} MiB",
        at_rest.used >> 20,
        at_rest.total >> 20
    );

    // First a leak that stops at 94% of the budget: MemoryUsageHigh (> 90%) fires from
    // that reading, and nothing is killed. 64 modeled MiB a minute is 64 MiB a real
    // second at scale 60: slow enough for `docker stats`, which samples for a second
    // or two, to see rest-api while it runs.
    let capped = (at_rest.total as f64 * 0.94 - at_rest.used as f64) / f64::from(1 << 20);
    leak_in_rest_api(stack, capped as u64).await;
    let ops = Ops::connect(
        stack.endpoints().clone(),
        stack.orchestrator(),
        stack.clock(),
        Arc::new(AutoApprove),
        Timeline::new(stack.clock()),
    )
    .await
    .expect("the runbooks' clients connect")
    .with_host(host.clone());
    let mut alerts = AlertEvaluator::new(vec![&runbooks::memory::META.rule]);
    let started = Instant::now();
    while !matches!(alerts.state("MemoryUsageHigh"), AlertState::Firing { .. }) {
        assert!(
            started.elapsed() < PATIENCE,
            "MemoryUsageHigh never fired; free -h read {:?}",
            host.memory().await
        );
        alerts.evaluate(&ops).await;
        tokio::time::sleep(POLL).await;
    }
    let grown = host.memory().await.expect("free -h");
    assert!(grown.fraction() > 0.9, "{grown:?}");
    let stats = stack.orchestrator().stats().await.expect("docker stats");
    let hog = stats
        .iter()
        .max_by_key(|s| s.memory_bytes)
        .expect("docker stats lists the services");
    assert_eq!(hog.service, Service::RestApi, "{stats:?} ({grown:?})");

    // Then the leak goes on, bounded above the budget so that only the budget stops it.
    leak_in_rest_api(stack, 2048).await;
    let orchestrator = stack.orchestrator();
    let ended = wait_for(
        "rest-api to be ended at the stack's budget",
        || async {
            orchestrator
                .status(Service::RestApi)
                .await
                .expect("docker compose ps")
        },
        |status| *status != runbooks::ops::ServiceStatus::Running,
    )
    .await;
    let kills = host.oom_kills().await.expect("dmesg | grep -i oom");
    assert!(
        kills >= 1,
        "rest-api ended ({ended:?}) but no OOM kill is recorded"
    );
    let after = host.memory().await.expect("free -h");
    assert!(
        after.used < grown.used,
        "the killed leaker's memory is given back: {after:?} after {grown:?}"
    );
}

async fn drop_leaves_no_process(twin: Twin) {
    let local = twin.stack.as_local().expect("a local stack");
    let mut processes = Vec::new();
    for service in Service::ALL {
        let leader = local
            .pid(service)
            .unwrap_or_else(|| panic!("{service:?} runs"));
        for pid in stack::local::procfs::family(leader as i32) {
            let started = stack::local::procfs::start_time(pid)
                .unwrap_or_else(|| panic!("{service:?} process {pid} is alive"));
            processes.push((service, pid, started));
        }
    }
    assert!(
        processes.len() > Service::ALL.len(),
        "PostgreSQL runs backends beside its postmaster: {processes:?}"
    );
    let Twin { stack, db, .. } = twin;
    db.close().await;
    drop(stack);
    // A PID still alive after the drop is a survivor only if it is the same process
    // (same start time): another test's process may have been given a freed PID.
    let survivors: Vec<_> = processes
        .iter()
        .filter(|(_, pid, started)| {
            stack::local::procfs::is_alive(*pid)
                && stack::local::procfs::start_time(*pid) == Some(*started)
        })
        .collect();
    assert!(
        survivors.is_empty(),
        "processes survived dropping the stack: {survivors:?}"
    );
}

async fn drop_leaves_no_container(twin: Twin) {
    let docker_stack = twin.stack.as_docker().expect("a docker stack");
    let (run_id, docker) = (
        docker_stack.run_id().to_owned(),
        docker_stack.docker().clone(),
    );
    let before = stack::docker::engine::count_run(&docker, &run_id)
        .await
        .expect("counting the run's resources");
    assert!(
        before > Service::ALL.len(),
        "every service is a container, beside the network: {before}"
    );
    let Twin { stack, db, .. } = twin;
    db.close().await;
    drop(stack);
    assert_eq!(
        stack::docker::engine::count_run(&docker, &run_id)
            .await
            .expect("counting the run's resources"),
        0,
        "no container, network or volume of run {run_id} survived dropping the stack"
    );
}

/// One step of a DLQ's life, as the model test drives it.
#[derive(Clone, Debug)]
enum DlqStep {
    /// A worker dead-letters a fresh track: `error`, created `age_minutes` ago.
    Enqueue { error: ErrorKind, age_minutes: i64 },
    /// `POST :8024/dlq/replay/batch {"batch_size": n}`.
    Replay { batch_size: i64 },
    /// `DELETE :8024/dlq/messages/before/{now - minutes_ago}`.
    Purge { minutes_ago: i64 },
}

fn dlq_step() -> impl proptest::strategy::Strategy<Value = DlqStep> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (proptest::sample::select(ErrorKind::ALL.to_vec()), 0i64..600)
            .prop_map(|(error, age_minutes)| DlqStep::Enqueue { error, age_minutes }),
        2 => (1i64..8).prop_map(|batch_size| DlqStep::Replay { batch_size }),
        1 => (0i64..600).prop_map(|minutes_ago| DlqStep::Purge { minutes_ago }),
    ]
}

/// What the DLQ should hold, kept beside the real one: every message in exactly one
/// of live, replayed (in `dlq_replay_log`) or archived.
#[derive(Default)]
struct DlqModel {
    /// message id → (created at, error).
    live: BTreeMap<i64, (DateTime<Utc>, ErrorKind)>,
    replayed: BTreeSet<i64>,
    archived: BTreeSet<i64>,
}

impl DlqModel {
    /// The oldest `n`, as replay takes them (created_at, then message id).
    fn oldest(&self, n: i64) -> Vec<i64> {
        let mut by_age: Vec<(DateTime<Utc>, i64)> =
            self.live.iter().map(|(id, (at, _))| (*at, *id)).collect();
        by_age.sort();
        by_age
            .into_iter()
            .take(n as usize)
            .map(|(_, id)| id)
            .collect()
    }
}

/// Runs `steps` against the real dlq-manager and PostgreSQL from an empty DLQ, and
/// checks each answer and the tables against the model.
async fn drive_dlq_model(
    twin: &Twin,
    case: usize,
    steps: &[DlqStep],
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert_eq;
    sqlx::query("TRUNCATE dlq_messages, dlq_archive, dlq_replay_log")
        .execute(twin.stack.admin_pool())
        .await
        .expect("emptying the DLQ tables");
    let mut model = DlqModel::default();
    let mut enqueued = BTreeSet::new();
    for (n, step) in steps.iter().enumerate() {
        let now = twin.now();
        match *step {
            DlqStep::Enqueue { error, age_minutes } => {
                let created_at = now - chrono::TimeDelta::minutes(age_minutes);
                let id: i64 = sqlx::query_scalar(
                    "WITH track AS (
                         INSERT INTO tracks (artist_name, track_name, source, source_url,
                                             enrichment_status, created_at, updated_at)
                         VALUES ('DLQ Model', $1, 'dlq-model', 'test://dlq-model/' || $1,
                                 'failed', $2, $2)
                         RETURNING track_id, artist_name, track_name)
                     INSERT INTO dlq_messages (track_id, artist_name, track_name, error,
                                               error_message, provider, created_at)
                     SELECT track_id, artist_name, track_name, $3, 'model', 'spotify', $2
                     FROM track
                     RETURNING message_id",
                )
                .bind(format!("case {case} step {n} {}", now.timestamp_micros()))
                .bind(created_at)
                .bind(error.name())
                .fetch_one(twin.stack.admin_pool())
                .await
                .expect("dead-lettering a track");
                model.live.insert(id, (created_at, error));
                enqueued.insert(id);
            }
            DlqStep::Replay { batch_size } => {
                let expected = model.oldest(batch_size);
                let outcome = twin
                    .dlq
                    .replay_batch(batch_size)
                    .await
                    .expect("POST :8024/dlq/replay/batch");
                prop_assert_eq!(outcome.replayed, expected.len() as i64, "{:?}", step);
                for id in &expected {
                    model.live.remove(id);
                    model.replayed.insert(*id);
                }
                prop_assert_eq!(outcome.remaining, model.live.len() as i64, "{:?}", step);
            }
            DlqStep::Purge { minutes_ago } => {
                let cutoff = now - chrono::TimeDelta::minutes(minutes_ago);
                let expected: Vec<i64> = model
                    .live
                    .iter()
                    .filter(|(_, (at, _))| *at < cutoff)
                    .map(|(id, _)| *id)
                    .collect();
                let outcome = twin
                    .dlq
                    .purge_before(&cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .await
                    .expect("DELETE :8024/dlq/messages/before/{instant}");
                prop_assert_eq!(outcome.purged, expected.len() as i64, "{:?}", step);
                prop_assert_eq!(outcome.archived, expected.len() as i64, "{:?}", step);
                for id in expected {
                    model.live.remove(&id);
                    model.archived.insert(id);
                }
            }
        }
    }
    let ids = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_all(twin.stack.admin_pool())
            .await
            .expect("reading a DLQ table")
            .into_iter()
            .collect::<BTreeSet<i64>>()
    };
    let live = ids("SELECT message_id FROM dlq_messages").await;
    let replayed = ids("SELECT message_id FROM dlq_replay_log").await;
    let archived = ids("SELECT message_id FROM dlq_archive").await;
    prop_assert_eq!(
        &live,
        &model.live.keys().copied().collect(),
        "live messages"
    );
    prop_assert_eq!(&replayed, &model.replayed, "dlq_replay_log");
    prop_assert_eq!(&archived, &model.archived, "dlq_archive");
    // Nothing lost, nothing duplicated: every message is in exactly one place.
    let placed = live.len() + replayed.len() + archived.len();
    let union: BTreeSet<i64> = live
        .iter()
        .chain(&replayed)
        .chain(&archived)
        .copied()
        .collect();
    prop_assert_eq!(placed, union.len(), "a message is in two places");
    prop_assert_eq!(union, enqueued, "every message enqueued, and no other");
    let mut by_error: BTreeMap<String, i64> = BTreeMap::new();
    for (_, error) in model.live.values() {
        *by_error.entry(error.name().to_owned()).or_default() += 1;
    }
    // The runbook's error types are listed even at zero.
    let mut grouped = twin.grouped().await;
    grouped.retain(|_, count| *count > 0);
    prop_assert_eq!(grouped, by_error, "GET :8024/dlq/errors/grouped");
    let stats = twin.dlq.stats().await.expect("GET :8024/dlq/stats");
    prop_assert_eq!(stats.total_messages, model.live.len() as i64, "{:?}", stats);
    let replayed_tracks: Vec<i64> = sqlx::query_scalar(
        "SELECT t.enrichment_status = 'pending' FROM dlq_replay_log l
         JOIN tracks t USING (track_id)",
    )
    .fetch_all(twin.stack.admin_pool())
    .await
    .map(|pending: Vec<bool>| pending.into_iter().filter(|p| !p).map(|_| 1).collect())
    .expect("reading the replayed tracks");
    prop_assert_eq!(
        replayed_tracks.len(),
        0,
        "a replayed track is not back in the queue"
    );
    Ok(())
}

/// Enqueue, replay and purge against a model multiset, over generated sequences: the
/// dlq-manager's answers and its three tables match the model after every sequence
/// (replay takes the oldest first, purge exactly those created before its cutoff,
/// nothing lost, nothing duplicated, the archive and replay log exact). `PROPTEST_CASES`
/// sets how many sequences (16 by default); a failure shrinks to a minimal one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_matches_a_model_multiset_under_enqueue_replay_and_purge() {
    use proptest::test_runner::{Config, TestRunner};
    let twin = Twin::start("dlq-model").await;
    // Nothing but the steps may move a message: no worker dead-letters or re-takes a
    // track, no scraper adds one.
    twin.stack
        .orchestrator()
        .stop(&[
            Service::MetadataEnrichmentWorker1,
            Service::MetadataEnrichmentWorker2,
            Service::ScraperMixesdb,
            Service::Scraper1001Tracklists,
        ])
        .await
        .expect("stopping the workers and scrapers");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let case = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&proptest::collection::vec(dlq_step(), 1..16), |steps| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::block_in_place(|| handle.block_on(drive_dlq_model(&twin, n, &steps)))
    });
    twin.stack.shutdown().await.expect("the stack stops");
    if let Err(failure) = result {
        panic!("{failure}");
    }
    println!("{cases} generated sequences matched the model");
}
