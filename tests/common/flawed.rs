//! Deliberately wrong runbooks, built from the real runbooks' own steps: the
//! `runbooks` crate holds only the real ones.

use async_trait::async_trait;
use futures::future::BoxFuture;
use runbooks::circuit_breaker_storm::StormDiagnosis;
use runbooks::criteria::Criterion;
use runbooks::ops::{Ops, Phase, StepError};
use runbooks::steps::{self, RowsNaming};
use runbooks::{Runbook, RunbookMeta};

/// A resolution in place of a runbook's own.
pub type Resolution<D> = for<'a> fn(&'a Ops, &'a D) -> BoxFuture<'a, Result<(), StepError>>;

/// A real runbook with its resolution replaced: the same investigation and criteria,
/// another response.
pub struct Resolving<R: Runbook> {
    pub runbook: R,
    pub resolve: Resolution<R::Diagnosis>,
}

#[async_trait]
impl<R: Runbook> Runbook for Resolving<R> {
    type Diagnosis = R::Diagnosis;
    fn meta(&self) -> &'static RunbookMeta {
        self.runbook.meta()
    }
    async fn investigate(&self, ops: &Ops) -> Result<R::Diagnosis, StepError> {
        self.runbook.investigate(ops).await
    }
    async fn resolve(&self, ops: &Ops, diagnosis: &R::Diagnosis) -> Result<(), StepError> {
        (self.resolve)(ops, diagnosis).await
    }
    fn criteria(&self) -> Vec<Criterion> {
        self.runbook.criteria()
    }
}

/// Circuit Breaker Storm, but it disables the affected providers and walks away.
pub fn disable_and_walk_away<'a>(
    ops: &'a Ops,
    diagnosis: &'a StormDiagnosis,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        for provider in &diagnosis.affected {
            steps::set_provider_enabled(
                ops,
                Phase::Resolve,
                *provider,
                RowsNaming::AnyPriority,
                false,
            )
            .await?;
        }
        steps::reload_config(ops, Phase::Resolve).await
    })
}
