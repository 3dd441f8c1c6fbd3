//! The runbook interface: investigate → resolve → verify.
//!
//! A runbook implementation investigates from what it observes (never from what a
//! drill injected), returns a typed diagnosis naming the resolution scenario it
//! chose and the evidence for it, resolves with that scenario's steps, and names the
//! criteria that prove the incident over. [`DynRunbook`] erases the diagnosis type
//! so the harness can hold every runbook in one list.

use std::any::Any;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::criteria::Criterion;
use crate::ops::{Ops, StepError};

/// The severity column of the Quick Alert Index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Severity {
    P1,
    P2,
}

/// One resolution scenario of a runbook ("Scenario A: Circuit Breaker Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioMeta {
    pub letter: char,
    pub name: &'static str,
}

/// What the runbook's header and the Quick Alert Index say about it.
#[derive(Debug, Serialize)]
pub struct RunbookMeta {
    /// The name used on the command line and for scenario files: `dlq-overflow`.
    pub id: &'static str,
    pub title: &'static str,
    pub alert: &'static str,
    pub severity: Severity,
    /// The threshold as the runbook words it.
    pub threshold: &'static str,
    #[serde(serialize_with = "minutes")]
    pub typical_resolution: Duration,
    pub scenarios: &'static [ScenarioMeta],
    /// The runbook's text (`runbooks/docs/<id>.md`).
    #[serde(skip)]
    pub doc: &'static str,
}

fn minutes<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() / 60.0)
}

impl RunbookMeta {
    pub fn scenario(&self, letter: char) -> Option<&ScenarioMeta> {
        self.scenarios.iter().find(|s| s.letter == letter)
    }
}

/// One thing the investigation saw that led to its choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub what: String,
    pub seen: String,
}

impl Evidence {
    pub fn new(what: impl Into<String>, seen: impl ToString) -> Self {
        Self {
            what: what.into(),
            seen: seen.to_string(),
        }
    }
}

/// A runbook's conclusion: which scenario applies, and why.
pub trait Diagnosis: Debug + Send + Sync + 'static {
    /// The scenario letter, as in the runbook ('A', 'B', …).
    fn scenario(&self) -> char;
    fn evidence(&self) -> &[Evidence];
}

#[async_trait]
pub trait Runbook: Send + Sync {
    type Diagnosis: Diagnosis;

    fn meta(&self) -> &'static RunbookMeta;
    async fn investigate(&self, ops: &Ops) -> Result<Self::Diagnosis, StepError>;
    async fn resolve(&self, ops: &Ops, diagnosis: &Self::Diagnosis) -> Result<(), StepError>;
    /// The runbook's verification section as criteria.
    fn criteria(&self) -> Vec<Criterion>;
}

/// A diagnosis with its type erased, as the harness holds it.
#[derive(Debug, Serialize)]
pub struct DiagnosisReport {
    pub scenario: char,
    pub scenario_name: String,
    pub evidence: Vec<Evidence>,
    pub detail: String,
}

/// A [`Runbook`] of any diagnosis type.
#[async_trait]
pub trait DynRunbook: Send + Sync {
    fn meta(&self) -> &'static RunbookMeta;
    async fn investigate(&self, ops: &Ops) -> Result<Box<dyn ErasedDiagnosis>, StepError>;
    async fn resolve(&self, ops: &Ops, diagnosis: &dyn ErasedDiagnosis) -> Result<(), StepError>;
    fn criteria(&self) -> Vec<Criterion>;
}

/// A boxed diagnosis that remembers its concrete type.
pub trait ErasedDiagnosis: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn report(&self, meta: &RunbookMeta) -> DiagnosisReport;
}

impl<D: Diagnosis> ErasedDiagnosis for D {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn report(&self, meta: &RunbookMeta) -> DiagnosisReport {
        DiagnosisReport {
            scenario: self.scenario(),
            scenario_name: meta
                .scenario(self.scenario())
                .map(|s| s.name.to_owned())
                .unwrap_or_default(),
            evidence: self.evidence().to_vec(),
            detail: format!("{self:?}"),
        }
    }
}

#[async_trait]
impl<R: Runbook> DynRunbook for R {
    fn meta(&self) -> &'static RunbookMeta {
        Runbook::meta(self)
    }

    async fn investigate(&self, ops: &Ops) -> Result<Box<dyn ErasedDiagnosis>, StepError> {
        let diagnosis = Runbook::investigate(self, ops).await?;
        Ok(Box::new(diagnosis))
    }

    async fn resolve(&self, ops: &Ops, diagnosis: &dyn ErasedDiagnosis) -> Result<(), StepError> {
        let Some(diagnosis) = diagnosis.as_any().downcast_ref::<R::Diagnosis>() else {
            return Err(StepError::Escalate {
                step: "resolve".into(),
                reason: format!(
                    "the diagnosis handed to {} is not one of its own",
                    Runbook::meta(self).id
                ),
            });
        };
        Runbook::resolve(self, ops, diagnosis).await
    }

    fn criteria(&self) -> Vec<Criterion> {
        Runbook::criteria(self)
    }
}
