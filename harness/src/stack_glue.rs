//! A [`Stack`] of either backend as a drill target: what faults and the runner need.

use std::sync::Arc;

use async_trait::async_trait;
use runbooks::ops::{Host, Orchestrator};
use sqlx::PgPool;
use url::Url;
use wire::Endpoints;
use wire::api::Provider;
use wire::{Clock, Service};
use wiremock::{MockServer, Respond};

use super::faults::FaultTarget;
use super::runner::DrillStack;
use stack::Stack;
use stack::docker::DockerStack;

impl FaultTarget for Stack {
    fn clock(&self) -> Clock {
        Stack::clock(self)
    }

    fn provider_server(&self, provider: Provider) -> &MockServer {
        self.providers().server(provider)
    }

    fn provider_baseline(&self, provider: Provider) -> Box<dyn Respond> {
        self.providers().baseline_responder(provider)
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

    fn docker(&self) -> Option<&DockerStack> {
        self.as_docker()
    }
}

#[async_trait]
impl DrillStack for Stack {
    fn ops_endpoints(&self) -> Endpoints {
        self.endpoints().clone()
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
