//! The enrichment pipeline against a fake api-gateway-internal (wiremock), without a
//! database: field-group fallback, one call per provider request per track, breakers
//! opening, and the config's effect, as docs/twin.md describes them.

use twin::chaos::Chaos;
use twin::enrichment::breaker::Breakers;
use twin::enrichment::cache::Cache;
use twin::enrichment::config::{EnrichmentConfig, FieldGroup, GroupKind};
use twin::enrichment::contract::EnrichOutcome;
use twin::enrichment::pipeline::Enricher;
use twin::enrichment::upstream::Upstream;
use wire::Clock;
use wire::api::{BreakerState, ErrorKind, Provider};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SPOTIFY_SEARCH: &str = include_str!("../../fixtures/providers/spotify_search.json");
const SPOTIFY_FEATURES: &str = include_str!("../../fixtures/providers/spotify_audio_features.json");
const MUSICBRAINZ: &str = include_str!("../../fixtures/providers/musicbrainz_recording.json");
const LASTFM: &str = include_str!("../../fixtures/providers/lastfm_track_getinfo.json");

fn group(key: &str, providers: &[Provider], enabled: bool) -> FieldGroup {
    FieldGroup {
        config_key: key.into(),
        kind: GroupKind::from_key(key),
        enabled,
        providers: providers.to_vec(),
        timeout_seconds: 30,
        cache_ttl_hours: 168,
    }
}

/// The seeded `metadata_enrichment_config`.
fn seeded() -> EnrichmentConfig {
    use Provider::*;
    EnrichmentConfig {
        groups: vec![
            group("identifiers", &[Spotify, Musicbrainz], true),
            group("audio_features", &[Spotify], true),
            group("recording_details", &[Musicbrainz], true),
            group("popularity_tags", &[Lastfm, Musicbrainz], true),
        ],
    }
}

fn json(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json")
}

async fn mount_ok(gateway: &MockServer, provider: &str, expected_calls: Option<u64>) {
    let mocks = match provider {
        "spotify" => vec![
            Mock::given(method("GET"))
                .and(path("/spotify/v1/search"))
                .and(query_param("type", "track"))
                .and(query_param("limit", "1"))
                .respond_with(json(SPOTIFY_SEARCH)),
            Mock::given(method("GET"))
                .and(path("/spotify/v1/audio-features/2aJDlirz6v2a4HREki98cP"))
                .respond_with(json(SPOTIFY_FEATURES)),
        ],
        "musicbrainz" => vec![
            Mock::given(method("GET"))
                .and(path("/musicbrainz/ws/2/recording"))
                .and(query_param("fmt", "json"))
                .respond_with(json(MUSICBRAINZ)),
        ],
        _ => vec![
            Mock::given(method("GET"))
                .and(path("/lastfm/2.0/"))
                .and(query_param("method", "track.getInfo"))
                .and(query_param("api_key", "drill"))
                .respond_with(json(LASTFM)),
        ],
    };
    for mock in mocks {
        let mock = match expected_calls {
            Some(n) => mock.expect(n),
            None => mock,
        };
        mock.mount(gateway).await;
    }
}

fn enricher(gateway: &MockServer, config: EnrichmentConfig) -> Enricher {
    let clock = Clock::new(chrono::Utc::now().timestamp_millis(), 60.0).unwrap();
    Enricher::new(
        clock,
        config,
        Breakers::new(Chaos::default()),
        Cache::new(None, clock).unwrap(),
        Upstream::new(gateway.uri().parse().unwrap(), clock).unwrap(),
    )
}

#[tokio::test]
async fn a_healthy_stack_fills_every_field_with_one_call_per_request() {
    let gateway = MockServer::start().await;
    // Spotify's search serves identifiers and audio_features; MusicBrainz serves
    // recording_details only (popularity_tags is served by Last.fm first).
    mount_ok(&gateway, "spotify", Some(1)).await;
    mount_ok(&gateway, "musicbrainz", Some(1)).await;
    mount_ok(&gateway, "lastfm", Some(1)).await;
    let enricher = enricher(&gateway, seeded());

    let (outcome, lookups) = enricher.enrich(Some("Bicep"), Some("Glue")).await;
    let EnrichOutcome::Enriched(done) = outcome else {
        panic!("expected enriched, got {outcome:?}");
    };
    assert_eq!(
        done.sources_used,
        [Provider::Spotify, Provider::Musicbrainz, Provider::Lastfm]
    );
    assert_eq!(
        done.fields.spotify_id.as_deref(),
        Some("2aJDlirz6v2a4HREki98cP")
    );
    assert_eq!(done.fields.key.as_deref(), Some("A#m"));
    assert_eq!(done.fields.bpm, Some(129.997));
    assert_eq!(
        done.fields.musicbrainz_id.as_deref(),
        Some("b1a9c0e9-d987-4042-ae91-78d6a3267d69")
    );
    assert_eq!(
        done.fields.duration_ms,
        Some(269_000),
        "from MusicBrainz, not Spotify"
    );
    assert_eq!(done.fields.lastfm_listeners, Some(412_093));
    assert!(
        done.validation_errors.is_empty(),
        "{:?}",
        done.validation_errors
    );
    // No cache configured: every request is a miss.
    assert_eq!((lookups.hits, lookups.misses), (0, 4));
    let by = enricher.stats.recent(enricher.clock.now()).to_by_provider();
    assert_eq!(by[&Provider::Spotify].calls, 2);
}

#[tokio::test]
async fn a_spotify_outage_falls_back_where_it_can_and_then_opens_the_breaker() {
    let gateway = MockServer::start().await;
    Mock::given(path_regex("^/spotify/"))
        .respond_with(ResponseTemplate::new(503))
        .expect(5)
        .mount(&gateway)
        .await;
    mount_ok(&gateway, "musicbrainz", None).await;
    mount_ok(&gateway, "lastfm", None).await;
    let enricher = enricher(&gateway, seeded());

    for i in 0..5 {
        let (outcome, _) = enricher
            .enrich(Some("Bicep"), Some(&format!("Glue {i}")))
            .await;
        let EnrichOutcome::Failed(failed) = outcome else {
            panic!("expected failed, got {outcome:?}");
        };
        // identifiers fell back to MusicBrainz; audio_features has no fallback.
        assert_eq!(failed.field_group.as_deref(), Some("audio_features"));
        assert_eq!(failed.error, ErrorKind::ProviderError);
        assert_eq!(failed.provider, Some(Provider::Spotify));
    }
    let health = enricher
        .breakers
        .health(Provider::Spotify, enricher.clock.now(), true);
    assert_eq!(health.state, BreakerState::Open);
    assert_eq!(health.failure_count, 5);

    // The sixth track is refused without a call (the mock expects exactly five).
    let (outcome, _) = enricher.enrich(Some("Bicep"), Some("Glue 6")).await;
    let EnrichOutcome::Failed(failed) = outcome else {
        panic!("expected failed");
    };
    assert_eq!(failed.error, ErrorKind::CircuitBreakerOpen);
    assert_eq!(failed.error_message, "circuit breaker for spotify is OPEN");
}

#[tokio::test]
async fn disabling_the_spotify_rows_lets_enrichment_continue_with_lower_quality() {
    let gateway = MockServer::start().await;
    Mock::given(path_regex("^/spotify/"))
        .respond_with(ResponseTemplate::new(503))
        .expect(0)
        .mount(&gateway)
        .await;
    mount_ok(&gateway, "musicbrainz", None).await;
    mount_ok(&gateway, "lastfm", None).await;
    let mut config = seeded();
    for g in &mut config.groups {
        if g.providers.contains(&Provider::Spotify) {
            g.enabled = false;
        }
    }
    let enricher = enricher(&gateway, config);
    let (outcome, _) = enricher.enrich(Some("Bicep"), Some("Glue")).await;
    let EnrichOutcome::Enriched(done) = outcome else {
        panic!("expected enriched, got {outcome:?}");
    };
    assert_eq!(done.sources_used, [Provider::Musicbrainz, Provider::Lastfm]);
    assert_eq!(done.fields.spotify_id, None);
    assert_eq!(
        done.validation_errors,
        [
            "missing_spotify_id",
            "missing_isrc",
            "missing_bpm",
            "missing_key"
        ]
    );
}

#[tokio::test]
async fn an_invalid_payload_falls_through_without_touching_the_breaker() {
    let gateway = MockServer::start().await;
    mount_ok(&gateway, "spotify", None).await;
    mount_ok(&gateway, "musicbrainz", None).await;
    Mock::given(path("/lastfm/2.0/"))
        .respond_with(json(r#"{"track": {"listeners": "12"}}"#))
        .mount(&gateway)
        .await;
    let enricher = enricher(&gateway, seeded());
    for i in 0..6 {
        let (outcome, _) = enricher
            .enrich(Some("Bicep"), Some(&format!("Glue {i}")))
            .await;
        let EnrichOutcome::Enriched(done) = outcome else {
            panic!("expected enriched, got {outcome:?}");
        };
        // popularity_tags was served by MusicBrainz's tags instead.
        assert_eq!(done.fields.genre.as_deref(), Some("electronic"));
        assert_eq!(done.fields.lastfm_listeners, None);
        assert!(
            done.validation_errors
                .contains(&"lastfm_payload_invalid".to_owned())
        );
    }
    let health = enricher
        .breakers
        .health(Provider::Lastfm, enricher.clock.now(), true);
    assert_eq!(
        (health.state, health.failure_count),
        (BreakerState::Closed, 0)
    );
}

#[tokio::test]
async fn a_track_without_a_title_is_invalid_data_without_any_call() {
    let gateway = MockServer::start().await;
    Mock::given(path_regex(".*"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&gateway)
        .await;
    let enricher = enricher(&gateway, seeded());
    let (outcome, _) = enricher.enrich(Some("Bicep"), Some("   ")).await;
    let EnrichOutcome::Failed(failed) = outcome else {
        panic!("expected failed");
    };
    assert_eq!(failed.error, ErrorKind::InvalidData);
    assert_eq!(failed.provider, None);
}

#[tokio::test]
async fn a_slow_provider_is_a_timeout() {
    let gateway = MockServer::start().await;
    mount_ok(&gateway, "spotify", None).await;
    mount_ok(&gateway, "lastfm", None).await;
    // 30 modeled seconds at 60× is 500 ms; the fake gateway answers after 2 s.
    Mock::given(path("/musicbrainz/ws/2/recording"))
        .respond_with(json(MUSICBRAINZ).set_delay(std::time::Duration::from_secs(2)))
        .mount(&gateway)
        .await;
    let enricher = enricher(&gateway, seeded());
    let (outcome, _) = enricher.enrich(Some("Bicep"), Some("Glue")).await;
    let EnrichOutcome::Failed(failed) = outcome else {
        panic!("expected failed, got {outcome:?}");
    };
    assert_eq!(failed.error, ErrorKind::Timeout);
    assert_eq!(failed.field_group.as_deref(), Some("recording_details"));
    assert_eq!(failed.provider, Some(Provider::Musicbrainz));
}
