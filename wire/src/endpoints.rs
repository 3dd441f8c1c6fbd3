//! Where a running SongNodes answers: one type for everything that addresses it.
//!
//! The stack hands these out when it boots; the runbooks' `Ops` facade connects with
//! them; a check of a real deployment (later) fills them from a target file. In drill
//! mode they are the runbooks' own addresses (`http://localhost:8020`, port 5433, …).

use std::collections::BTreeMap;

use url::Url;

use crate::api::{Provider, SourceSite};

/// The addresses of one SongNodes deployment, as a runbook reaches them.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoints {
    /// metadata-enrichment (`localhost:8020` in drill mode).
    pub enrichment: Url,
    /// api-gateway-internal (8022).
    pub gateway: Url,
    /// dlq-manager (8024).
    pub dlq: Url,
    /// rest-api (8082).
    pub rest_api: Url,
    /// graph-api (8084).
    pub graph_api: Url,
    /// `postgres://musicdb_user@host:port/musicdb`, as the runbooks connect.
    pub database_url: String,
    /// The host name the runbook's `psql -h …` uses.
    pub postgres_host: String,
    pub postgres_port: u16,
    pub redis_url: String,
    pub redis_port: u16,
    /// Each provider's public endpoint, for "check external API status" (`curl -I`).
    pub providers: BTreeMap<Provider, Url>,
    /// Each scraped site's public address, for "check target site" (`curl -I`).
    pub sites: BTreeMap<SourceSite, Url>,
}
