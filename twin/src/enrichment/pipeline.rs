//! Enriching one track: field groups, provider fallback, cache, breakers.
//!
//! docs/twin.md: every enabled field group runs; within a group providers are tried
//! in priority order and the first valid answer wins; a group whose providers all
//! fail fails the track, classified by the last provider tried. Each provider
//! request is made at most once per track (Spotify's search serves both
//! `identifiers` and `audio_features`), through the cache, then the breaker, then the
//! gateway. Every real call is counted per provider for `/stats/by-provider`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wire::Clock;
use wire::api::{ErrorKind, Provider};

use super::breaker::{Breakers, Verdict};
use super::cache::Cache;
use super::config::{EnrichmentConfig, FieldGroup, GroupKind};
use super::contract::{Attempt, EnrichOutcome, Enriched, EnrichedFields, Failed};
use super::providers::{self, Endpoint, ProviderRequest, Reading};
use super::stats::Stats;
use super::upstream::{Answer, CallFailure, Failure, Upstream};
use crate::quality;

/// What a provider request yields: what the provider knows (`None`: not found).
type Lookup = Result<Option<EnrichedFields>, CallFailure>;

/// The enrichment engine: config, breakers, cache, gateway client and statistics.
pub struct Enricher {
    pub clock: Clock,
    pub breakers: Breakers,
    pub stats: Stats,
    cache: Cache,
    upstream: Upstream,
    config: RwLock<Arc<EnrichmentConfig>>,
}

/// Cache lookups made for one track.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    pub hits: u32,
    pub misses: u32,
}

impl Enricher {
    pub fn new(
        clock: Clock,
        config: EnrichmentConfig,
        breakers: Breakers,
        cache: Cache,
        upstream: Upstream,
    ) -> Self {
        Self {
            clock,
            breakers,
            stats: Stats::default(),
            cache,
            upstream,
            config: RwLock::new(Arc::new(config)),
        }
    }

    /// The config as last loaded.
    pub fn config(&self) -> Arc<EnrichmentConfig> {
        self.config
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    pub fn set_config(&self, config: EnrichmentConfig) {
        let mut slot = self.config.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(config);
    }

    /// Enriches one track by its names (either may be missing in `tracks`).
    pub async fn enrich(
        &self,
        artist: Option<&str>,
        title: Option<&str>,
    ) -> (EnrichOutcome, Lookups) {
        self.enrich_with(artist, title, CacheUse::Read).await
    }

    /// Enriches one track, reading cached answers or asking the providers afresh.
    pub async fn enrich_with(
        &self,
        artist: Option<&str>,
        title: Option<&str>,
        cache_use: CacheUse,
    ) -> (EnrichOutcome, Lookups) {
        let (artist, title) = match (non_blank(artist), non_blank(title)) {
            (Some(artist), Some(title)) => (artist, title),
            (artist, _) => {
                let missing = if artist.is_none() {
                    "artist_name"
                } else {
                    "track_name"
                };
                let failed = Failed {
                    error: ErrorKind::InvalidData,
                    error_message: format!("scraped track has an empty {missing}"),
                    provider: None,
                    field_group: None,
                    attempts: vec![],
                    cache_hits: 0,
                };
                return (EnrichOutcome::Failed(failed), Lookups::default());
            }
        };
        let config = self.config();
        let mut session = Session {
            enricher: self,
            artist,
            title,
            memo: HashMap::new(),
            lookups: Lookups::default(),
            cache_use,
        };
        let mut fields = EnrichedFields::default();
        let mut sources = Vec::new();
        let mut notes = Vec::new();
        for (group, kind) in config.runnable() {
            let mut attempts: Vec<CallFailure> = Vec::new();
            let mut served = group.providers.is_empty();
            for &provider in &group.providers {
                match session.serve(group, kind, provider).await {
                    Ok(found) => {
                        if !found.is_empty() && !sources.contains(&provider) {
                            sources.push(provider);
                        }
                        fields.fill_from(found);
                        served = true;
                        break;
                    }
                    Err(failure) => attempts.push(failure),
                }
            }
            if let (false, Some(last)) = (served, attempts.last()) {
                let failed = Failed {
                    error: last.kind,
                    error_message: last.message.clone(),
                    provider: Some(last.provider),
                    field_group: Some(group.config_key.clone()),
                    attempts: attempts
                        .iter()
                        .map(|f| Attempt {
                            provider: f.provider,
                            error: f.kind,
                            error_message: f.message.clone(),
                        })
                        .collect(),
                    cache_hits: session.lookups.hits,
                };
                return (EnrichOutcome::Failed(failed), session.lookups);
            }
            notes.extend(
                attempts
                    .iter()
                    .filter(|f| f.kind == ErrorKind::InvalidData)
                    .map(|f| format!("{}_payload_invalid", f.provider)),
            );
        }
        let mut validation_errors = quality::assess(&fields).validation_errors;
        for note in notes {
            if !validation_errors.contains(&note) {
                validation_errors.push(note);
            }
        }
        let enriched = Enriched {
            fields,
            sources_used: sources,
            cache_hits: session.lookups.hits,
            validation_errors,
        };
        (EnrichOutcome::Enriched(enriched), session.lookups)
    }
}

/// The provider requests of one track, each made at most once.
struct Session<'a> {
    enricher: &'a Enricher,
    artist: &'a str,
    title: &'a str,
    memo: HashMap<String, Lookup>,
    lookups: Lookups,
    cache_use: CacheUse,
}

/// Whether a track's provider requests may be answered from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// A cached answer saves the call (the workers' enrichment).
    Read,
    /// Every request goes to its provider, and its answer replaces the cached one: a
    /// re-enrichment, whose point is that the cached answer is what was incomplete.
    Refresh,
}

impl Session<'_> {
    /// Serves `group` from `provider`: the group's share of what the provider knows.
    async fn serve(
        &mut self,
        group: &FieldGroup,
        kind: GroupKind,
        provider: Provider,
    ) -> Result<EnrichedFields, CallFailure> {
        let lookup = ProviderRequest::lookup(provider, self.artist, self.title);
        let Some(mut known) = self.fetch(lookup, group).await? else {
            return Ok(EnrichedFields::default());
        };
        if provider == Provider::Spotify
            && kind.needs_audio_features()
            && let Some(id) = known.spotify_id.clone()
        {
            let features = ProviderRequest::spotify_audio_features(&id);
            if let Some(audio) = self.fetch(features, group).await? {
                known.fill_from(audio);
            }
        }
        Ok(kind.project(&known))
    }

    async fn fetch(&mut self, request: ProviderRequest, group: &FieldGroup) -> Lookup {
        if let Some(done) = self.memo.get(&request.cache_key) {
            return done.clone();
        }
        let result = self.fetch_once(&request, group).await;
        self.memo.insert(request.cache_key, result.clone());
        result
    }

    /// Cache, then breaker, then the gateway.
    async fn fetch_once(&mut self, request: &ProviderRequest, group: &FieldGroup) -> Lookup {
        let enricher = self.enricher;
        let cached = match self.cache_use {
            CacheUse::Read => enricher.cache.get(&request.cache_key).await,
            CacheUse::Refresh => None,
        };
        if let Some(body) = cached {
            match providers::read(request.endpoint, &body) {
                Ok(Reading::Found(fields)) => {
                    self.lookups.hits += 1;
                    return Ok(Some(fields));
                }
                Ok(Reading::NotFound) => {
                    self.lookups.hits += 1;
                    return Ok(None);
                }
                // Not something we would have stored: fetch afresh.
                _ => {}
            }
        }
        self.lookups.misses += 1;
        let provider = request.provider();
        let Some(permit) = enricher.breakers.admit(provider, enricher.clock.now()) else {
            return Err(CallFailure::new(
                ErrorKind::CircuitBreakerOpen,
                provider,
                format!("circuit breaker for {provider} is OPEN"),
            ));
        };
        let answer = enricher.upstream.get(request, group.timeout()).await;
        let latency_ms = match &answer {
            Ok(a) => a.latency_ms,
            Err(f) => f.latency_ms,
        };
        let Interpretation {
            lookup,
            verdict,
            cacheable,
        } = interpret(request.endpoint, answer);
        let now = enricher.clock.now();
        permit.finish(verdict, now);
        enricher
            .stats
            .record_call(now, provider, lookup.is_ok(), latency_ms);
        if let Err(failure) = &lookup {
            tracing::warn!(
                "provider call failed provider={provider} error={}: {}",
                failure.kind,
                failure.message
            );
        }
        if let Some(body) = cacheable {
            let cache = enricher.cache.clone();
            let key = request.cache_key.clone();
            let ttl = group.cache_ttl();
            // Writing the cache must not hold up the enrichment.
            tokio::spawn(async move { cache.put(&key, &body, ttl).await });
        }
        lookup
    }
}

/// What a finished gateway call means.
#[derive(Debug)]
struct Interpretation {
    lookup: Lookup,
    /// How the call moves the breaker.
    verdict: Verdict,
    /// The body to cache, when it is a valid answer.
    cacheable: Option<String>,
}

/// Classifies a call's result per docs/twin.md.
fn interpret(endpoint: Endpoint, answer: Result<Answer, Failure>) -> Interpretation {
    let provider = endpoint.provider();
    let body = match answer {
        Ok(answer) => answer.body,
        Err(failure) => {
            // Last.fm may say "Track not found" with a 4xx status: still a valid answer.
            if let (Provider::Lastfm, Some((400..=499, body))) = (provider, &failure.answer)
                && failure.failure.kind == ErrorKind::ProviderError
                && providers::read(endpoint, body) == Ok(Reading::NotFound)
            {
                return Interpretation {
                    lookup: Ok(None),
                    verdict: Verdict::Success,
                    cacheable: None,
                };
            }
            let verdict = if failure.failure.counts_toward_breaker() {
                Verdict::Failure
            } else {
                Verdict::Neutral
            };
            return Interpretation {
                lookup: Err(failure.failure),
                verdict,
                cacheable: None,
            };
        }
    };
    match providers::read(endpoint, &body) {
        Ok(Reading::Found(fields)) => Interpretation {
            lookup: Ok(Some(fields)),
            verdict: Verdict::Success,
            cacheable: Some(body),
        },
        Ok(Reading::NotFound) => Interpretation {
            lookup: Ok(None),
            verdict: Verdict::Success,
            cacheable: Some(body),
        },
        Ok(Reading::Refused(refusal)) => Interpretation {
            lookup: Err(CallFailure::new(refusal.kind, provider, refusal.message)),
            verdict: Verdict::Failure,
            cacheable: None,
        },
        Err(invalid) => Interpretation {
            lookup: Err(CallFailure::new(
                ErrorKind::InvalidData,
                provider,
                format!("{provider} {} answer rejected: {invalid}", endpoint.name()),
            )),
            verdict: Verdict::Neutral,
            cacheable: None,
        },
    }
}

fn non_blank(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Result<Answer, Failure> {
        Ok(Answer {
            body: body.into(),
            latency_ms: 1.0,
        })
    }

    fn failed(
        kind: ErrorKind,
        provider: Provider,
        answer: Option<(u16, &str)>,
    ) -> Result<Answer, Failure> {
        Err(Failure {
            failure: CallFailure::new(kind, provider, "x"),
            latency_ms: 1.0,
            answer: answer.map(|(s, b)| (s, b.to_owned())),
        })
    }

    #[test]
    fn a_valid_answer_is_a_success_and_is_cached() {
        let body = include_str!("../../../fixtures/providers/musicbrainz_recording.json");
        let i = interpret(Endpoint::MusicbrainzRecording, ok(body));
        assert_eq!(i.verdict, Verdict::Success);
        assert!(i.lookup.unwrap().unwrap().musicbrainz_id.is_some());
        assert!(i.cacheable.is_some());
    }

    #[test]
    fn not_found_is_a_success_without_fields() {
        let i = interpret(Endpoint::SpotifySearch, ok(r#"{"tracks":{"items":[]}}"#));
        assert_eq!(i.verdict, Verdict::Success);
        assert_eq!(i.lookup, Ok(None));
    }

    #[test]
    fn an_invalid_payload_is_invalid_data_and_neutral() {
        let i = interpret(
            Endpoint::SpotifySearch,
            ok(r#"{"tracks":{"items":[{"name":"x"}]}}"#),
        );
        assert_eq!(i.verdict, Verdict::Neutral);
        assert_eq!(i.lookup.unwrap_err().kind, ErrorKind::InvalidData);
        assert!(i.cacheable.is_none());
    }

    #[test]
    fn gateway_failures_count() {
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::ApiRateLimit,
            ErrorKind::ProviderError,
        ] {
            let i = interpret(
                Endpoint::SpotifySearch,
                failed(kind, Provider::Spotify, None),
            );
            assert_eq!(i.verdict, Verdict::Failure);
            assert_eq!(i.lookup.unwrap_err().kind, kind);
        }
    }

    #[test]
    fn lastfm_errors_in_a_200_body_count() {
        let i = interpret(
            Endpoint::LastfmTrackInfo,
            ok(r#"{"error": 29, "message": "Rate limit exceeded"}"#),
        );
        assert_eq!(i.verdict, Verdict::Failure);
        assert_eq!(i.lookup.unwrap_err().kind, ErrorKind::ApiRateLimit);
    }

    #[test]
    fn lastfm_not_found_with_a_404_is_still_not_found() {
        let body = r#"{"error": 6, "message": "Track not found"}"#;
        let i = interpret(
            Endpoint::LastfmTrackInfo,
            failed(
                ErrorKind::ProviderError,
                Provider::Lastfm,
                Some((404, body)),
            ),
        );
        assert_eq!(i.lookup, Ok(None));
        assert_eq!(i.verdict, Verdict::Success);
        // The same 404 from Spotify is a provider error.
        let i = interpret(
            Endpoint::SpotifySearch,
            failed(
                ErrorKind::ProviderError,
                Provider::Spotify,
                Some((404, body)),
            ),
        );
        assert_eq!(i.verdict, Verdict::Failure);
    }

    #[test]
    fn blank_names_are_blank() {
        assert_eq!(non_blank(Some("  ")), None);
        assert_eq!(non_blank(None), None);
        assert_eq!(non_blank(Some(" Bicep ")), Some("Bicep"));
    }
}
