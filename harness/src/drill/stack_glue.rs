//! The local [`Stack`] as a drill target: what faults and the runner need of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use runbooks::ops::{Endpoints, Host, Orchestrator};
use sqlx::PgPool;
use url::Url;
use wire::api::Provider;
use wire::{Clock, Service};
use wiremock::{MockServer, Respond};

use super::faults::FaultTarget;
use super::runner::DrillStack;
use crate::providers::Provider as Mocked;
use crate::stack::Stack;

fn mocked(provider: Provider) -> Mocked {
    match provider {
        Provider::Spotify => Mocked::Spotify,
        Provider::Musicbrainz => Mocked::MusicBrainz,
        Provider::Lastfm => Mocked::LastFm,
    }
}

impl FaultTarget for Stack {
    fn clock(&self) -> Clock {
        Stack::clock(self)
    }

    fn provider_server(&self, provider: Provider) -> &MockServer {
        self.providers().server(mocked(provider))
    }

    fn provider_baseline(&self, provider: Provider) -> Box<dyn Respond> {
        self.providers().baseline_responder(mocked(provider))
    }

    fn chaos_url(&self, service: Service) -> Option<Url> {
        Stack::chaos_url(self, service)
    }

    fn admin_db(&self) -> &PgPool {
        self.admin_pool()
    }

    fn track_name(&self, index: usize) -> (String, String) {
        let catalogue = self.catalogue();
        let track = catalogue
            .get(index % catalogue.len().max(1))
            .expect("the catalogue is not empty");
        (track.artist.clone(), track.title.clone())
    }
}

#[async_trait]
impl DrillStack for Stack {
    fn ops_endpoints(&self) -> Endpoints {
        let ep = self.endpoints();
        let providers: BTreeMap<Provider, Url> = Provider::ALL
            .into_iter()
            .map(|p| (p, self.providers().url(mocked(p))))
            .collect();
        Endpoints {
            enrichment: ep.enrichment.clone(),
            gateway: ep.gateway.clone(),
            dlq: ep.dlq.clone(),
            rest_api: ep.rest_api.clone(),
            graph_api: ep.graph_api.clone(),
            database_url: ep.database_url.clone(),
            postgres_host: "localhost".to_owned(),
            postgres_port: ep.postgres_port,
            redis_url: ep.redis_url.clone(),
            providers,
        }
    }

    fn ops_orchestrator(&self) -> Arc<dyn Orchestrator> {
        self.orchestrator()
    }

    fn ops_host(&self) -> Option<Arc<dyn Host>> {
        None
    }

    async fn reset_for_drill(&self) -> anyhow::Result<()> {
        Ok(self.reset().await?)
    }
}
