//! Runbook: API Gateway High Error Rate (`APIGatewayErrorRateHigh`, P1, > 10%).
//!
//! The text has four investigation steps and one resolution step: "Follow Circuit
//! Breaker Storm runbook". So this runbook is a composition: its own investigation
//! (the gateway's error rate, the breakers, the gateway's errors, the providers from
//! outside), then the storm runbook's investigation, whose diagnosis it adopts, and
//! the storm runbook's resolution for it. No step is copied: both come from
//! [`crate::circuit_breaker_storm`]. The verification is the one the text lacks and
//! the alert implies: the gateway's error rate back under 10%, and the breakers closed.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use wire::Service;
use wire::api::{BreakerState, Provider};

use crate::alert::{AlertRule, Severity, minutes_of};
use crate::circuit_breaker_storm::{CircuitBreakerStorm, StormDiagnosis};
use crate::criteria::{Check, Criterion};
use crate::ops::{Ops, Phase, StepError};
use crate::probe::{Api, Probe};
use crate::runbook::{Runbook, RunbookMeta};
use crate::steps;

pub static META: RunbookMeta = RunbookMeta {
    title: "API Gateway High Error Rate",
    rule: AlertRule {
        name: "APIGatewayErrorRateHigh",
        severity: Severity::P1,
        runbook: "api-gateway-errors",
        threshold: "Error rate > 10%",
        probe: ERROR_RATE,
        condition: Check::Above(0.10),
        for_duration: minutes_of(0),
        typical_resolution: minutes_of(30),
    },
    doc: include_str!("../docs/api-gateway-errors.md"),
};

/// `curl http://localhost:8022/metrics | grep error_rate`, read as a rule over the
/// per-provider series reads it: a gateway that has lost one provider pages even while
/// the breaker in front of it keeps that provider's calls, and so the total, small.
const ERROR_RATE: Probe = Probe::Metric {
    api: Api::Gateway,
    name: "api_gateway_error_rate",
};

/// The API Gateway High Error Rate runbook.
pub struct ApiGatewayErrors;

#[async_trait]
impl Runbook for ApiGatewayErrors {
    /// The storm runbook's: the text resolves by following it.
    type Diagnosis = StormDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<StormDiagnosis, StepError> {
        let phase = Phase::Investigate;
        ops.act(
            phase,
            "Check error rate",
            format!(
                "{} | grep error_rate",
                ops.gateway.0.curl(Method::GET, "/metrics", None)
            ),
            ops.gateway.error_rates(),
            |rates| rates.to_string(),
        )
        .await?;
        steps::check_breakers(ops, phase, "Check circuit breakers").await?;
        steps::grep_logs(ops, phase, Service::ApiGatewayInternal, 200, &["error"]).await?;
        for provider in [Provider::Spotify, Provider::Musicbrainz] {
            steps::check_external(ops, phase, provider).await;
        }
        ops.timeline.note(
            phase,
            "Follow Circuit Breaker Storm runbook",
            "its investigation decides the scenario",
        );
        CircuitBreakerStorm.investigate(ops).await
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &StormDiagnosis) -> Result<(), StepError> {
        CircuitBreakerStorm.resolve(ops, diagnosis).await
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new("Gateway error rate < 10%", ERROR_RATE, Check::Below(0.10))
                .eventually_within(Duration::from_secs(10 * 60)),
            Criterion::new(
                "Circuit breakers closed",
                Probe::Breakers,
                Check::BreakersIn(&[BreakerState::Closed]),
            )
            .eventually_within(Duration::from_secs(5 * 60)),
        ]
    }
}
