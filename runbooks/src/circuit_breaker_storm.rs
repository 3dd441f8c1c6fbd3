//! Runbook: Circuit Breaker Storm (`CircuitBreakerOpen`, P1, open for > 5 minutes).
//!
//! Investigation reads breaker states and failure counts, asks each provider's
//! public endpoint whether it is up (from where the engineer sits, not through the
//! gateway) and reads the gateway's recent log. The scenario follows from where the
//! failure is:
//!
//! | seen | scenario |
//! |---|---|
//! | the affected provider is down from outside too | A: external API outage |
//! | the provider or the gateway log says 429 / rate limit | C: rate limiting |
//! | the provider is up from outside, the gateway log has errors or timeouts for it | B: network issue |
//! | the provider is up and nothing fails, yet the breaker stays OPEN | D: breaker stuck |

use std::time::Duration;

use async_trait::async_trait;
use wire::Service;
use wire::api::{BreakerState, Provider};

use crate::criteria::{Check, Criterion};
use crate::ops::{Ops, Phase, StepError};
use crate::probe::{Api, Probe};
use crate::runbook::{Diagnosis, Evidence, Runbook, RunbookMeta, ScenarioMeta, Severity};
use crate::steps::{self, Compose, ExternalState, RowsNaming};

pub static META: RunbookMeta = RunbookMeta {
    id: "circuit-breaker-storm",
    title: "Circuit Breaker Storm",
    alert: "CircuitBreakerOpen",
    severity: Severity::P1,
    threshold: "Circuit breaker open for > 5 minutes",
    typical_resolution: Duration::from_secs(15 * 60),
    scenarios: &[
        ScenarioMeta {
            letter: 'A',
            name: "External API Outage",
        },
        ScenarioMeta {
            letter: 'B',
            name: "Network Issue",
        },
        ScenarioMeta {
            letter: 'C',
            name: "Rate Limiting",
        },
        ScenarioMeta {
            letter: 'D',
            name: "Circuit Breaker Stuck",
        },
    ],
    doc: include_str!("../docs/circuit-breaker-storm.md"),
};

/// A deliberately wrong way to run this runbook, to prove a drill can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// Scenario A: disable the provider and walk away, never re-enabling it.
    NeverReEnable,
}

#[derive(Default)]
pub struct CircuitBreakerStorm {
    flaw: Option<Flaw>,
}

impl CircuitBreakerStorm {
    pub fn with_flaw(flaw: Flaw) -> Self {
        Self { flaw: Some(flaw) }
    }
}

#[derive(Debug)]
pub struct StormDiagnosis {
    pub scenario: char,
    /// The providers whose breakers are not CLOSED.
    pub affected: Vec<Provider>,
    pub evidence: Vec<Evidence>,
}

impl Diagnosis for StormDiagnosis {
    fn scenario(&self) -> char {
        self.scenario
    }
    fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
}

/// How long the automation waits for a provider to come back before escalating:
/// twice the runbook's typical resolution time.
const RECOVERY_BOUND: Duration = Duration::from_secs(30 * 60);

#[async_trait]
impl Runbook for CircuitBreakerStorm {
    type Diagnosis = StormDiagnosis;

    fn meta(&self) -> &'static RunbookMeta {
        &META
    }

    async fn investigate(&self, ops: &Ops) -> Result<StormDiagnosis, StepError> {
        let phase = Phase::Investigate;
        let health = steps::check_breakers(ops, phase, "Check all circuit breaker states").await?;
        let counts = steps::breaker_failure_counts(ops, phase).await?;
        let mut affected = steps::unhealthy_breakers(&health);
        if affected.is_empty() {
            affected = counts
                .iter()
                .filter(|(_, n)| **n > 0.0)
                .map(|(p, _)| *p)
                .collect();
        }
        let mut external = Vec::new();
        for provider in Provider::ALL {
            external.push((provider, steps::check_external(ops, phase, provider).await));
        }
        let errors = steps::grep_logs(
            ops,
            phase,
            Service::ApiGatewayInternal,
            100,
            &["error", "timeout"],
        )
        .await?;
        let rate_limits = steps::grep_logs(
            ops,
            phase,
            Service::ApiGatewayInternal,
            100,
            &["429", "rate limit"],
        )
        .await?;

        let mentions = |lines: &[String], provider: Provider| {
            lines.iter().any(|l| l.contains(provider.name()))
        };
        let state_of = |provider: Provider| {
            external
                .iter()
                .find(|(p, _)| *p == provider)
                .map(|(_, s)| *s)
                .unwrap_or(ExternalState::Up)
        };
        let scenario = if affected
            .iter()
            .any(|p| matches!(state_of(*p), ExternalState::Down(_)))
        {
            'A'
        } else if affected
            .iter()
            .any(|p| state_of(*p) == ExternalState::RateLimited || mentions(&rate_limits, *p))
        {
            'C'
        } else if affected.iter().any(|p| {
            // A network issue shows as connection errors or timeouts reaching the
            // provider, not as errors the provider itself answered.
            errors.iter().any(|l| {
                let l = l.to_lowercase();
                l.contains(p.name()) && (l.contains("connect") || l.contains("timeout"))
            })
        }) {
            'B'
        } else {
            'D'
        };
        let evidence = vec![
            Evidence::new("breakers", steps::describe_breakers(&health)),
            Evidence::new(
                "external status",
                external
                    .iter()
                    .map(|(p, s)| format!("{p}: {s:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Evidence::new("gateway error/timeout lines", errors.len()),
            Evidence::new("gateway 429/rate-limit lines", rate_limits.len()),
        ];
        ops.timeline.note(
            phase,
            format!("Diagnosis: scenario {scenario}"),
            format!(
                "affected: {}",
                affected
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if affected.is_empty() {
            return Err(StepError::Escalate {
                step: "Check all circuit breaker states".into(),
                reason: "no breaker is open and none has failures; the alert does not match what is seen".into(),
            });
        }
        Ok(StormDiagnosis {
            scenario,
            affected,
            evidence,
        })
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &StormDiagnosis) -> Result<(), StepError> {
        match diagnosis.scenario {
            'A' => self.external_outage(ops, &diagnosis.affected).await,
            'B' => network_issue(ops).await,
            'C' => rate_limiting(ops).await,
            _ => breaker_stuck(ops).await,
        }
    }

    fn criteria(&self) -> Vec<Criterion> {
        vec![
            Criterion::new(
                "All circuit breakers CLOSED or HALF_OPEN",
                Probe::Breakers,
                Check::BreakersIn(vec![BreakerState::Closed, BreakerState::HalfOpen]),
            )
            .eventually_within(Duration::from_secs(5 * 60)),
            Criterion::new(
                "Enrichment success rate recovering",
                Probe::Json {
                    api: Api::Enrichment,
                    path: "/stats",
                    field: ".success_rate",
                },
                Check::RecoveringTowards {
                    threshold: 0.70,
                    samples: 3,
                },
            )
            .eventually_within(Duration::from_secs(15 * 60)),
            Criterion::new(
                "DLQ not growing",
                Probe::Json {
                    api: Api::Dlq,
                    path: "/dlq/stats",
                    field: ".total_messages",
                },
                Check::NotIncreasing { samples: 3 },
            )
            .eventually_within(Duration::from_secs(10 * 60)),
        ]
    }
}

impl CircuitBreakerStorm {
    /// Scenario A: disable the dead provider, keep enriching with the others, and
    /// re-enable it once it answers again.
    async fn external_outage(&self, ops: &Ops, affected: &[Provider]) -> Result<(), StepError> {
        let phase = Phase::Resolve;
        let mut down = Vec::new();
        for provider in affected {
            if let ExternalState::Down(_) = steps::check_external(ops, phase, *provider).await {
                down.push(*provider);
            }
        }
        for provider in &down {
            steps::set_provider_enabled(ops, phase, *provider, RowsNaming::AnyPriority, false)
                .await?;
        }
        steps::reload_config(ops, phase).await?;
        steps::enrichment_stats(
            ops,
            phase,
            "Verify enrichment continues with other providers",
        )
        .await?;
        if self.flaw == Some(Flaw::NeverReEnable) {
            ops.timeline
                .note(phase, "Flaw", "not re-enabling the provider");
            return Ok(());
        }
        for provider in &down {
            let provider = *provider;
            ops.wait_until(
                phase,
                &format!("Monitor for {provider} API recovery"),
                RECOVERY_BOUND,
                Duration::from_secs(30),
                || async move {
                    Ok(match ops.external_status(provider).await {
                        Some(code) if code < 500 && code != 429 => {
                            Ok(format!("{provider} answers {code}"))
                        }
                        Some(code) => Err(format!("{provider} answers {code}")),
                        None => Err(format!("{provider}: no connection")),
                    })
                },
            )
            .await?;
            steps::set_provider_enabled(ops, phase, provider, RowsNaming::AnyPriority, true)
                .await?;
        }
        steps::reload_config(ops, phase).await
    }
}

/// Scenario B: test the gateway's own view of the provider, restart it, watch the breaker.
async fn network_issue(ops: &Ops) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    for provider in Provider::ALL {
        let status = ops.gateway.probe_provider(provider).await;
        ops.timeline.record(
            phase,
            format!("Test connectivity from the gateway ({provider})"),
            Some(format!(
                "docker compose exec api-gateway-internal curl -I {}",
                ops.external_command(provider)
                    .trim_start_matches("curl -I ")
            )),
            match &status {
                Ok(code) => format!("HTTP {code}"),
                Err(error) => error.to_string(),
            },
            crate::ops::Outcome::Ok,
        );
    }
    steps::compose(
        ops,
        phase,
        "Restart networking",
        Compose::Restart,
        &[Service::ApiGatewayInternal],
    )
    .await?;
    steps::wait_for_breakers(
        ops,
        phase,
        "Verify circuit breaker recovers",
        Duration::from_secs(5 * 60),
    )
    .await?;
    Ok(())
}

/// Scenario C: pause the workers until the provider's rate limit lifts, then resume
/// with a smaller batch size.
async fn rate_limiting(ops: &Ops) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    let workers = [
        Service::MetadataEnrichmentWorker1,
        Service::MetadataEnrichmentWorker2,
    ];
    steps::compose(
        ops,
        phase,
        "Temporarily pause enrichment",
        Compose::Stop,
        &workers,
    )
    .await?;
    steps::wait_for_rate_limits_to_lift(
        ops,
        phase,
        "Wait for the rate limit to lift (up to 15 minutes)",
        Duration::from_secs(15 * 60),
    )
    .await?;
    for worker in workers {
        ops.act(
            phase,
            &format!("Reduce batch_size of {worker}"),
            "# Edit docker-compose.enrichment-workers.yml: WORKER_BATCH_SIZE=5",
            ops.orchestrator.set_env(
                worker,
                [("WORKER_BATCH_SIZE".to_owned(), "5".to_owned())].into(),
            ),
            |_| "WORKER_BATCH_SIZE=5".to_owned(),
        )
        .await?;
    }
    steps::compose(
        ops,
        phase,
        "Restart with reduced concurrency",
        Compose::Start,
        &workers,
    )
    .await?;
    steps::wait_for_breakers(
        ops,
        phase,
        "Verify circuit breakers recover",
        Duration::from_secs(5 * 60),
    )
    .await?;
    Ok(())
}

/// Scenario D: reset, then make sure the breaker stays closed.
async fn breaker_stuck(ops: &Ops) -> Result<(), StepError> {
    let phase = Phase::Resolve;
    steps::reset_breakers(ops, phase).await?;
    steps::check_breakers(ops, phase, "Verify state change").await?;
    // "Monitor for re-opening": three checks over 90 modeled seconds.
    for _ in 0..3 {
        ops.clock.sleep(Duration::from_secs(30)).await;
        let health = steps::check_breakers(ops, phase, "Monitor for re-opening").await?;
        if !steps::open_breakers(&health).is_empty() {
            return Err(StepError::Escalate {
                step: "Monitor for re-opening".into(),
                reason: "the breaker keeps re-opening: there is an underlying issue".into(),
            });
        }
    }
    Ok(())
}
