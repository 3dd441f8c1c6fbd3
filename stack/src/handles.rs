//! What every running twin hands out, whichever backend built it.
//!
//! Both backends end a boot with the same handles: the addresses of the services, the
//! modeled clock, the provider stand-ins, a superuser pool, a Redis client and each
//! twin service's chaos surface. The parts of a reset that act through those handles
//! (seeded rows back, cache flushed, provider baselines, chaos switches off) live here
//! once; only bringing services back to their original state is the backend's own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use url::Url;
use wire::{Clock, Service};

use crate::catalogue::Catalogue;
use crate::providers::Providers;
use crate::traffic::ApiTraffic;
use crate::{StackError, seed};
use wire::Endpoints;

/// The handles of one running twin.
pub(crate) struct StackHandles {
    pub endpoints: Endpoints,
    pub clock: Clock,
    pub providers: Providers,
    /// A superuser pool on `musicdb`.
    pub admin: PgPool,
    pub redis: ::redis::Client,
    pub http: reqwest::Client,
    /// Base URL of each twin service's chaos surface.
    pub chaos: BTreeMap<Service, Url>,
    /// The users of rest-api and graph-api.
    pub traffic: ApiTraffic,
}

/// The API users of a stack at `endpoints`, silent until a workload asks for them.
pub(crate) fn traffic(
    endpoints: &Endpoints,
    clock: Clock,
    options: &crate::StackOptions,
) -> Result<ApiTraffic, StackError> {
    ApiTraffic::start(
        endpoints.rest_api.clone(),
        endpoints.graph_api.clone(),
        clock,
        options.seed,
        options.tracks,
    )
    .map_err(|e| StackError::InvalidOptions(format!("building the API users' client: {e}")))
}

/// The client a stack reaches its services with: straight to them (no proxy from the
/// environment), quick to give up on one that does not answer.
pub(crate) fn http_client() -> Result<reqwest::Client, StackError> {
    reqwest::Client::builder()
        .user_agent(wire::agents::HARNESS)
        .no_proxy()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| StackError::InvalidOptions(format!("building an HTTP client: {e}")))
}

impl StackHandles {
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        self.providers.catalogue()
    }

    /// Seeded rows restored at modeled now, Redis empty, provider baselines only.
    /// PostgreSQL and Redis must be running.
    pub async fn restore_data(&self) -> Result<(), StackError> {
        let database = seed::snapshot::restore(&self.admin, self.clock.now());
        let cache = async {
            let mut conn = self
                .redis
                .get_multiplexed_async_connection()
                .await
                .map_err(StackError::redis("connecting to Redis"))?;
            ::redis::cmd("FLUSHALL")
                .query_async::<()>(&mut conn)
                .await
                .map_err(StackError::redis("FLUSHALL"))
        };
        let (database, cache, ()) = tokio::join!(database, cache, self.providers.reset());
        database?;
        cache
    }

    /// Every twin service's chaos switches off and its in-memory state reset. The
    /// services must be running.
    pub async fn reset_chaos(&self) -> Result<(), StackError> {
        let resets = self.chaos.iter().map(|(&service, base)| async move {
            let url = base.join("chaos/reset").expect("a relative path joins");
            let result = self.http.post(url.clone()).send().await;
            match result {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
            .map_err(|reason| StackError::Chaos {
                service,
                action: "POST /chaos/reset",
                url: url.to_string(),
                reason,
            })
        });
        futures::future::join_all(resets)
            .await
            .into_iter()
            .collect::<Result<(), _>>()
    }
}
