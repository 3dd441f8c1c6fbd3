//! Stand-ins for the external providers and the scraped sites, as wiremock servers.
//!
//! The gateway calls Spotify, MusicBrainz and Last.fm; the scrapers read mixesdb and
//! 1001tracklists. Each is a [`MockServer`] on a loopback port with a *baseline* mounted
//! at a low priority ([`BASELINE_PRIORITY`]): realistic answers computed from the
//! [`Catalogue`] by custom [`wiremock::Respond`] impls that fill the recorded payload
//! samples (`fixtures/providers/*.json`) with the track's facts. A fault mounts its own
//! mock on the same server at a higher priority (wiremock's default, 5, is higher) and
//! overrides the baseline for as long as its guard lives; [`Providers::reset`] drops
//! every such mock and mounts the baseline again.
//!
//! Routes (the contract with the twin's gateway and scrapers):
//! - Spotify `GET /v1/search?q=artist:{artist} track:{title}&type=track&limit=1`,
//!   `GET /v1/audio-features/{id}`;
//! - MusicBrainz `GET /ws/2/recording?query=artist:"{artist}" AND recording:"{title}"&fmt=json&limit=1`;
//! - Last.fm `GET /2.0/?method=track.getInfo&artist=…&track=…&api_key=…&format=json`;
//! - mixesdb `GET /api/tracklists?page=N`, 1001tracklists `GET /api/tracklist?page=N`.
//!
//! Request recording is off: under a flood the journal would keep every request.

mod lastfm;
mod musicbrainz;
mod sources;
mod spotify;

pub use spotify::{Degradation, Degraded};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use url::Url;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use wire::api::{Provider, SourceSite};

use crate::catalogue::Catalogue;
use crate::workload::Workload;

/// The priority of baseline mocks. Lower numbers win in wiremock; a fault mock mounted
/// at the default priority (5) or anything below 10 overrides the baseline.
pub const BASELINE_PRIORITY: u8 = 10;

/// One mocked external party: an enrichment provider or a scraped site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StandIn {
    Provider(Provider),
    Site(SourceSite),
}

impl From<Provider> for StandIn {
    fn from(provider: Provider) -> Self {
        StandIn::Provider(provider)
    }
}

impl From<SourceSite> for StandIn {
    fn from(site: SourceSite) -> Self {
        StandIn::Site(site)
    }
}

impl StandIn {
    pub const ALL: [StandIn; 5] = [
        StandIn::Provider(Provider::Spotify),
        StandIn::Provider(Provider::Musicbrainz),
        StandIn::Provider(Provider::Lastfm),
        StandIn::Site(SourceSite::Mixesdb),
        StandIn::Site(SourceSite::Tracklists1001),
    ];

    /// The party's name as the config rows and `tracks.source` spell it.
    pub fn name(self) -> &'static str {
        match self {
            StandIn::Provider(provider) => provider.name(),
            StandIn::Site(site) => site.name(),
        }
    }
}

impl fmt::Display for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The running provider stand-ins.
pub struct Providers {
    catalogue: Arc<Catalogue>,
    servers: Vec<(StandIn, MockServer)>,
    /// The sites' mean page size: the stack's workload.
    page_size: Arc<AtomicU32>,
}

impl Providers {
    /// Starts one server per provider on a loopback port, each with its baseline.
    pub async fn start(catalogue: Arc<Catalogue>) -> Self {
        Listening::start().await.mount(catalogue).await
    }

    /// The server standing in for `provider`, to mount fault mocks on.
    pub fn server(&self, party: impl Into<StandIn>) -> &MockServer {
        let provider = party.into();
        &self
            .servers
            .iter()
            .find(|(p, _)| *p == provider)
            .expect("every provider has a server")
            .1
    }

    /// Base URL of the provider's server, e.g. `http://127.0.0.1:41234/`.
    pub fn url(&self, party: impl Into<StandIn>) -> Url {
        let provider = party.into();
        Url::parse(&self.server(provider).uri()).expect("wiremock serves a valid URI")
    }

    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// Tracks arrive at `workload` from now on (both sites' page sizes).
    pub fn set_workload(&self, workload: Workload) {
        self.page_size
            .store(workload.page_size(), Ordering::Relaxed);
    }

    /// The workload the sites serve now.
    pub fn workload(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed)
    }

    /// `site`'s pages as a spider reads them after a markup change: each carries
    /// `garbage` entries without an artist or a title among its tracks. Mounted by a
    /// fault above the site's baseline.
    pub fn garbled_site(&self, site: SourceSite, garbage: u32) -> impl wiremock::Respond + 'static {
        sources::Tracklists::new(site, self.catalogue.clone(), self.page_size.clone())
            .garbled(garbage)
    }

    /// Removes every mock (fault mocks included), mounts the baselines again and puts
    /// the workload back to its default.
    ///
    /// A scoped mock's guard (`mount_as_scoped`) must not outlive a reset: wiremock
    /// panics when such a guard is dropped after the server it was mounted on was reset.
    /// Faults that must heal independently of resets mount plainly behind a switch.
    pub async fn reset(&self) {
        self.set_workload(Workload::default());
        futures::future::join_all(StandIn::ALL.map(|provider| async move {
            self.server(provider).reset().await;
            self.mount_baseline(provider).await;
        }))
        .await;
    }

    /// The provider's normal answers as one responder, for faults that serve them
    /// changed (late, for a latency fault) rather than replacing them.
    /// Spotify's API answering with `degraded` for part of the catalogue, to mount
    /// over the baseline.
    pub fn degraded_spotify(
        &self,
        degraded: spotify::Degraded,
    ) -> impl wiremock::Respond + 'static {
        spotify::DegradedApi::new(self.catalogue.clone(), degraded)
    }

    pub fn baseline_responder(&self, party: impl Into<StandIn>) -> Box<dyn wiremock::Respond> {
        Box::new(self.baseline(party.into()))
    }

    fn baseline(&self, party: StandIn) -> Baseline {
        Baseline::new(party, self.catalogue.clone(), self.page_size.clone())
    }

    async fn mount_baseline(&self, provider: StandIn) {
        let server = self.server(provider);
        let catalogue = self.catalogue.clone();
        let mocks = match provider {
            StandIn::Provider(Provider::Spotify) => vec![
                Mock::given(method("GET"))
                    .and(path("/v1/search"))
                    .respond_with(spotify::Search::new(catalogue.clone())),
                Mock::given(method("GET"))
                    .and(path_regex(r"^/v1/audio-features/[^/]+$"))
                    .respond_with(spotify::AudioFeatures::new(catalogue)),
            ],
            StandIn::Provider(Provider::Musicbrainz) => vec![
                Mock::given(method("GET"))
                    .and(path_regex(r"^/ws/2/recording/?$"))
                    .respond_with(musicbrainz::Recording::new(catalogue)),
            ],
            StandIn::Provider(Provider::Lastfm) => vec![
                Mock::given(method("GET"))
                    .and(path_regex(r"^/2\.0/?$"))
                    .respond_with(lastfm::TrackInfo::new(catalogue)),
            ],
            StandIn::Site(SourceSite::Mixesdb) => vec![
                Mock::given(method("GET"))
                    .and(path("/api/tracklists"))
                    .respond_with(sources::Tracklists::new(
                        SourceSite::Mixesdb,
                        catalogue,
                        self.page_size.clone(),
                    )),
            ],
            StandIn::Site(SourceSite::Tracklists1001) => vec![
                Mock::given(method("GET"))
                    .and(path("/api/tracklist"))
                    .respond_with(sources::Tracklists::new(
                        SourceSite::Tracklists1001,
                        catalogue,
                        self.page_size.clone(),
                    )),
            ],
        };
        for mock in mocks {
            mock.with_priority(BASELINE_PRIORITY)
                .named(format!("{provider} baseline"))
                .mount(server)
                .await;
        }
    }
}

/// The provider servers, listening but without mocks: their URLs are known before the
/// catalogue they answer from is generated (which takes a while in debug builds), so a
/// stack can wire its services while the catalogue is being made.
pub(crate) struct Listening(Vec<(StandIn, MockServer)>);

impl Listening {
    pub(crate) async fn start() -> Self {
        let mut servers = Vec::with_capacity(StandIn::ALL.len());
        for provider in StandIn::ALL {
            let server = MockServer::builder()
                .disable_request_recording()
                .start()
                .await;
            servers.push((provider, server));
        }
        Self(servers)
    }

    pub(crate) fn url(&self, party: impl Into<StandIn>) -> Url {
        let provider = party.into();
        let server = &self
            .0
            .iter()
            .find(|(p, _)| *p == provider)
            .expect("every provider has a server")
            .1;
        Url::parse(&server.uri()).expect("wiremock serves a valid URI")
    }

    /// The enrichment providers' addresses as an engineer at the stack's host reaches
    /// them (`curl -I` of "check external API status").
    pub(crate) fn public_site_urls(&self) -> std::collections::BTreeMap<SourceSite, Url> {
        SourceSite::ALL
            .into_iter()
            .map(|site| (site, self.url(site)))
            .collect()
    }

    pub(crate) fn public_urls(&self) -> std::collections::BTreeMap<Provider, Url> {
        Provider::ALL
            .into_iter()
            .map(|provider| (provider, self.url(provider)))
            .collect()
    }

    /// Mounts the baselines, answering from `catalogue`.
    pub(crate) async fn mount(self, catalogue: Arc<Catalogue>) -> Providers {
        let providers = Providers {
            catalogue,
            servers: self.0,
            page_size: Arc::new(AtomicU32::new(Workload::default().page_size())),
        };
        for provider in StandIn::ALL {
            providers.mount_baseline(provider).await;
        }
        providers
    }
}

/// The first value of a query parameter.
pub(crate) fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A JSON response with status `status`.
pub(crate) fn json(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// Parses a recorded payload sample; they are part of the build (`include_str!`).
pub(crate) fn template(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("the provider fixtures are valid JSON")
}

/// A provider's normal answers behind one responder, routed by path like the mounted
/// baseline (built once: the fixture templates are parsed here, not per request).
enum Baseline {
    Spotify {
        search: spotify::Search,
        features: spotify::AudioFeatures,
    },
    MusicBrainz(musicbrainz::Recording),
    LastFm(Flaky<lastfm::TrackInfo>),
    Source(sources::Tracklists),
}

impl Baseline {
    fn new(provider: StandIn, catalogue: Arc<Catalogue>, page_size: Arc<AtomicU32>) -> Self {
        match provider {
            StandIn::Provider(Provider::Spotify) => Baseline::Spotify {
                search: spotify::Search::new(catalogue.clone()),
                features: spotify::AudioFeatures::new(catalogue),
            },
            StandIn::Provider(Provider::Musicbrainz) => {
                Baseline::MusicBrainz(musicbrainz::Recording::new(catalogue))
            }
            StandIn::Provider(Provider::Lastfm) => {
                Baseline::LastFm(Flaky::lastfm(lastfm::TrackInfo::new(catalogue)))
            }
            StandIn::Site(site) => {
                Baseline::Source(sources::Tracklists::new(site, catalogue, page_size))
            }
        }
    }
}

impl wiremock::Respond for Baseline {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match self {
            Baseline::Spotify { features, .. }
                if request.url.path().starts_with("/v1/audio-features/") =>
            {
                features.respond(request)
            }
            Baseline::Spotify { search, .. } => search.respond(request),
            Baseline::MusicBrainz(recording) => recording.respond(request),
            Baseline::LastFm(info) => info.respond(request),
            Baseline::Source(tracklists) => tracklists.respond(request),
        }
    }
}

/// A provider that fails a small share of its API calls with a 503 and a moment later
/// answers again, as real ones do: the stack's live background noise. Last.fm is it
/// ([`LASTFM_TRANSIENT_FAILURES`]): its share of `/stats/by-provider` reads a little
/// below the others and its failure count is rarely zero, yet its breaker stays closed
/// (five failures in a row are vanishingly rare) and no track fails for it (MusicBrainz
/// backs it up), so a runbook that takes the weakest provider for the broken one, or
/// any failure count for an open breaker, picks the wrong culprit.
///
/// Which calls fail follows from a counter and a fixed mixing function, so a run sees
/// the same sequence whatever the timing; only `GET` calls fail (an engineer's
/// `curl -I` reaches the status page, not the API).
struct Flaky<R> {
    inner: R,
    per_thousand: u64,
    calls: AtomicU64,
}

/// The share of Last.fm's calls that fail transiently (per thousand).
pub const LASTFM_TRANSIENT_FAILURES: u64 = 50;

impl<R: wiremock::Respond> Flaky<R> {
    fn lastfm(inner: R) -> Self {
        Self {
            inner,
            per_thousand: LASTFM_TRANSIENT_FAILURES,
            calls: AtomicU64::new(0),
        }
    }
}

impl<R: wiremock::Respond> wiremock::Respond for Flaky<R> {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.method == wiremock::http::Method::GET {
            let call = self.calls.fetch_add(1, Ordering::Relaxed);
            if mix(call) % 1000 < self.per_thousand {
                return json(
                    503,
                    serde_json::json!({"error": 16, "message": "There was a temporary error processing your request. Please try again"}),
                );
            }
        }
        self.inner.respond(request)
    }
}

/// splitmix64's finaliser: spreads a counter over all 64 bits, so that "call `n` is
/// among the failing share" is a fixed, well-mixed function of `n`.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flaky_share_is_what_it_says() {
        let failures = (0..100_000).filter(|i| mix(*i) % 1000 < 50).count();
        assert!((4_700..5_300).contains(&failures), "{failures}");
        // Never five in a row in a long run: the breaker (five in a row) stays closed.
        let longest = (0..100_000u64)
            .map(|i| mix(i) % 1000 < 50)
            .fold((0, 0), |(run, best), failed| {
                let run = if failed { run + 1 } else { 0 };
                (run, best.max(run))
            })
            .1;
        assert!(longest < 5, "{longest} failures in a row");
    }
}
