//! The container engine's time, told apart from the runbook's.
//!
//! A drill compresses time: at a scale of 480 one real second is eight modeled
//! minutes. The twin's services, PostgreSQL and the workload all run on that clock,
//! but the container engine does not: `docker stop` and `docker start` take the real
//! second or two they take anywhere, and compressed that is a quarter of an hour of
//! modeled time for one `docker compose restart` — longer than the same restart takes
//! in production, and longer on a busy CI machine than on an idle one. Counted as the
//! runbook's own time, it would measure the engine at a scale it never runs at, and a
//! budget check would pass or fail on the machine's load.
//!
//! So the runbook's orchestrator is wrapped in a [`TimedOrchestrator`], which records
//! every call that changes a service (stop, start, restart, kill, pause, unpause,
//! prune, environment and log option edits): when it began and ended in modeled time,
//! and how long it took in real time. A drill counts each such call at its real
//! duration and reports the rest as *the engine's compressed time*, beside waiting on
//! the world. Reads (status, logs, stats) are not recorded: they take milliseconds,
//! and the alert evaluator and the signal sampler make them concurrently with the
//! runbook, whose time they must not take away.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use wire::{Clock, Service};

use super::orchestrator::{
    LogConfig, Orchestrator, OrchestratorError, PruneReport, ServiceStats, ServiceStatus,
};

/// One call to the engine that changed a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineCall {
    /// `restart`, `stop`, …
    pub action: &'static str,
    /// The services it acted on (none for a prune).
    pub services: Vec<Service>,
    /// Modeled instants the call began and ended.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// How long the call took in real time.
    pub real: Duration,
}

impl EngineCall {
    /// Whether the call interrupts its services: stops, restarts, kills, pauses, and
    /// the edits that recreate a container (environment, log options).
    pub fn interrupts(&self) -> bool {
        matches!(
            self.action,
            "stop" | "restart" | "kill" | "pause" | "set_env" | "set_log_config"
        )
    }

    /// Modeled time the call took beyond its real duration: what compression added.
    pub fn compressed(&self) -> Duration {
        (self.to - self.from)
            .to_std()
            .unwrap_or_default()
            .saturating_sub(self.real)
    }
}

/// The calls a [`TimedOrchestrator`] recorded, shared with whoever reads them.
#[derive(Clone, Default)]
pub struct EngineLog(Arc<Mutex<Vec<EngineCall>>>);

impl EngineLog {
    pub fn calls(&self) -> Vec<EngineCall> {
        self.0.lock().map(|calls| calls.clone()).unwrap_or_default()
    }

    fn push(&self, call: EngineCall) {
        if let Ok(mut calls) = self.0.lock() {
            calls.push(call);
        }
    }
}

/// An orchestrator whose changes to services are timed into an [`EngineLog`].
pub struct TimedOrchestrator {
    inner: Arc<dyn Orchestrator>,
    clock: Clock,
    log: EngineLog,
}

impl TimedOrchestrator {
    pub fn new(inner: Arc<dyn Orchestrator>, clock: Clock, log: EngineLog) -> Self {
        Self { inner, clock, log }
    }

    async fn timed<T>(
        &self,
        action: &'static str,
        services: &[Service],
        call: impl Future<Output = Result<T, OrchestratorError>>,
    ) -> Result<T, OrchestratorError> {
        let from = self.clock.now();
        let started = Instant::now();
        let result = call.await;
        self.log.push(EngineCall {
            action,
            services: services.to_vec(),
            from,
            to: self.clock.now(),
            real: started.elapsed(),
        });
        result
    }
}

#[async_trait]
impl Orchestrator for TimedOrchestrator {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn stop(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        self.timed("stop", services, self.inner.stop(services))
            .await
    }
    async fn start(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        self.timed("start", services, self.inner.start(services))
            .await
    }
    async fn restart(&self, services: &[Service]) -> Result<(), OrchestratorError> {
        self.timed("restart", services, self.inner.restart(services))
            .await
    }
    async fn kill(&self, service: Service) -> Result<(), OrchestratorError> {
        self.timed("kill", &[service], self.inner.kill(service))
            .await
    }
    async fn pause(&self, service: Service) -> Result<(), OrchestratorError> {
        self.timed("pause", &[service], self.inner.pause(service))
            .await
    }
    async fn unpause(&self, service: Service) -> Result<(), OrchestratorError> {
        self.timed("unpause", &[service], self.inner.unpause(service))
            .await
    }
    async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError> {
        self.inner.status(service).await
    }
    async fn logs(&self, service: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
        self.inner.logs(service, tail).await
    }
    async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
        self.inner.stats().await
    }
    async fn set_env(
        &self,
        service: Service,
        vars: BTreeMap<String, String>,
    ) -> Result<(), OrchestratorError> {
        self.timed("set_env", &[service], self.inner.set_env(service, vars))
            .await
    }
    async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
        self.timed("prune", &[], self.inner.prune()).await
    }
    async fn log_config(&self, service: Service) -> Result<LogConfig, OrchestratorError> {
        self.inner.log_config(service).await
    }
    async fn set_log_config(
        &self,
        service: Service,
        config: &LogConfig,
    ) -> Result<(), OrchestratorError> {
        self.timed(
            "set_log_config",
            &[service],
            self.inner.set_log_config(service, config),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::read_only::NoOrchestrator;

    /// Takes `real` of real time for every call, and reads nothing.
    struct Slow {
        real: Duration,
    }

    #[async_trait]
    impl Orchestrator for Slow {
        fn backend(&self) -> &'static str {
            "slow"
        }
        async fn stop(&self, _: &[Service]) -> Result<(), OrchestratorError> {
            tokio::time::sleep(self.real).await;
            Ok(())
        }
        async fn start(&self, _: &[Service]) -> Result<(), OrchestratorError> {
            tokio::time::sleep(self.real).await;
            Ok(())
        }
        async fn restart(&self, _: &[Service]) -> Result<(), OrchestratorError> {
            tokio::time::sleep(self.real).await;
            Err(OrchestratorError::Other("the engine said no".into()))
        }
        async fn kill(&self, _: Service) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn pause(&self, _: Service) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn unpause(&self, _: Service) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn status(&self, service: Service) -> Result<ServiceStatus, OrchestratorError> {
            NoOrchestrator.status(service).await
        }
        async fn logs(&self, s: Service, tail: usize) -> Result<Vec<String>, OrchestratorError> {
            tokio::time::sleep(self.real).await;
            NoOrchestrator.logs(s, tail).await
        }
        async fn stats(&self) -> Result<Vec<ServiceStats>, OrchestratorError> {
            NoOrchestrator.stats().await
        }
        async fn set_env(
            &self,
            _: Service,
            _: BTreeMap<String, String>,
        ) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn prune(&self) -> Result<PruneReport, OrchestratorError> {
            NoOrchestrator.prune().await
        }
        async fn log_config(&self, s: Service) -> Result<LogConfig, OrchestratorError> {
            NoOrchestrator.log_config(s).await
        }
    }

    fn timed(scale: f64) -> (TimedOrchestrator, EngineLog) {
        let log = EngineLog::default();
        let slow = Arc::new(Slow {
            real: Duration::from_millis(50),
        });
        let clock = Clock::starting_now(scale).unwrap();
        (TimedOrchestrator::new(slow, clock, log.clone()), log)
    }

    #[tokio::test]
    async fn a_change_is_recorded_with_its_modeled_and_real_time() {
        let (orchestrator, log) = timed(480.0);
        orchestrator.stop(&[Service::ScraperMixesdb]).await.unwrap();
        let calls = log.calls();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.action, "stop");
        assert!(call.real >= Duration::from_millis(50), "{call:?}");
        // Fifty real milliseconds at a scale of 480 are 24 modeled seconds, almost all
        // of them compression.
        let modeled = (call.to - call.from).to_std().unwrap();
        assert!(modeled >= Duration::from_secs(23), "{call:?}");
        assert_eq!(call.compressed(), modeled - call.real);
    }

    #[tokio::test]
    async fn a_failed_change_is_recorded_and_its_error_passed_on() {
        let (orchestrator, log) = timed(480.0);
        let error = orchestrator.restart(&[Service::ScraperMixesdb]).await;
        assert!(matches!(error, Err(OrchestratorError::Other(_))));
        assert_eq!(log.calls()[0].action, "restart");
    }

    #[tokio::test]
    async fn reads_are_not_recorded() {
        let (orchestrator, log) = timed(480.0);
        let _ = orchestrator.logs(Service::ScraperMixesdb, 10).await;
        let _ = orchestrator.status(Service::ScraperMixesdb).await;
        assert!(log.calls().is_empty());
    }

    #[tokio::test]
    async fn at_real_time_nothing_is_compressed() {
        let (orchestrator, log) = timed(1.0);
        orchestrator
            .start(&[Service::ScraperMixesdb])
            .await
            .unwrap();
        assert!(log.calls()[0].compressed() < Duration::from_millis(20));
    }
}
