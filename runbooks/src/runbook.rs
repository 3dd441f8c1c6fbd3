//! The runbook interface: investigate → resolve → verify.
//!
//! A runbook implementation investigates from what it observes (never from what a
//! drill injected), returns a typed diagnosis naming the resolution scenario it
//! chose and the evidence for it, resolves with that scenario's steps, and names the
//! criteria that prove the incident over. Each runbook's scenarios are an enum
//! ([`Scenario`]) its resolution matches exhaustively: no catch-all arm can reach a
//! destructive step. [`DynRunbook`] erases the diagnosis type so the harness can hold
//! every runbook in one list.

use std::any::Any;
use std::fmt::{self, Debug};

use async_trait::async_trait;
use serde::Serialize;

use crate::alert::AlertRule;
use crate::criteria::Criterion;
use crate::ops::{Ops, StepError};

/// What the runbook's header says about it, with its alert rule.
#[derive(Debug, Serialize)]
pub struct RunbookMeta {
    pub title: &'static str,
    /// The alert that sends an engineer to this runbook (the Quick Alert Index row).
    pub rule: AlertRule,
    /// The runbook's text (`runbooks/docs/<id>.md`).
    #[serde(skip)]
    pub doc: &'static str,
}

impl RunbookMeta {
    /// The name used on the command line and for scenario files: `dlq-overflow`.
    pub fn id(&self) -> &'static str {
        self.rule.runbook
    }
}

/// One resolution scenario of a runbook ("Scenario A: Circuit Breaker Errors"), as the
/// variant of an enum that the runbook's resolution matches.
pub trait Scenario: Copy + Debug + PartialEq + Send + Sync + 'static {
    /// Every scenario of the runbook, in the text's order.
    const ALL: &'static [Self];
    /// The scenario's letter in the runbook text.
    fn letter(self) -> char;
    /// Its name in the runbook text: "Circuit Breaker Errors".
    fn name(self) -> &'static str;
    /// How scenario files name it: `circuit-breaker-errors`.
    fn slug(self) -> &'static str;

    fn id(self) -> ScenarioId {
        ScenarioId {
            letter: self.letter(),
            name: self.name(),
            slug: self.slug(),
        }
    }
}

/// A scenario of any runbook, as reports and scenario files name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ScenarioId {
    pub letter: char,
    pub name: &'static str,
    pub slug: &'static str,
}

impl fmt::Display for ScenarioId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}: {})", self.slug, self.letter, self.name)
    }
}

/// Declares a runbook's scenario enum and its [`Scenario`] impl from one table:
/// variant, letter, name in the runbook text, slug in scenario files.
#[macro_export]
macro_rules! scenarios {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = ($letter:literal, $title:literal, $slug:literal)),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $crate::runbook::Scenario for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn letter(self) -> char {
                match self { $($name::$variant => $letter),+ }
            }
            fn name(self) -> &'static str {
                match self { $($name::$variant => $title),+ }
            }
            fn slug(self) -> &'static str {
                match self { $($name::$variant => $slug),+ }
            }
        }
    };
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
    type Scenario: Scenario;
    fn scenario(&self) -> Self::Scenario;
    fn evidence(&self) -> &[Evidence];
}

#[async_trait]
pub trait Runbook: Send + Sync {
    type Diagnosis: Diagnosis;

    fn meta(&self) -> &'static RunbookMeta;
    /// Reads what an engineer would read and decides which scenario applies; an
    /// investigation that cannot decide escalates ([`StepError::Escalate`]).
    async fn investigate(&self, ops: &Ops) -> Result<Self::Diagnosis, StepError>;
    async fn resolve(&self, ops: &Ops, diagnosis: &Self::Diagnosis) -> Result<(), StepError>;
    /// The runbook's verification section as criteria.
    fn criteria(&self) -> Vec<Criterion>;
}

/// A diagnosis with its type erased, as the harness holds it.
#[derive(Clone, Debug, Serialize)]
pub struct DiagnosisReport {
    pub scenario: ScenarioId,
    pub evidence: Vec<Evidence>,
    pub detail: String,
}

/// A [`Runbook`] of any diagnosis type.
#[async_trait]
pub trait DynRunbook: Send + Sync {
    fn meta(&self) -> &'static RunbookMeta;
    /// The scenarios the runbook's resolution knows.
    fn scenarios(&self) -> Vec<ScenarioId>;
    async fn investigate(&self, ops: &Ops) -> Result<Box<dyn ErasedDiagnosis>, StepError>;
    async fn resolve(&self, ops: &Ops, diagnosis: &dyn ErasedDiagnosis) -> Result<(), StepError>;
    fn criteria(&self) -> Vec<Criterion>;
}

/// A boxed diagnosis that remembers its concrete type.
pub trait ErasedDiagnosis: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn report(&self) -> DiagnosisReport;
}

impl<D: Diagnosis> ErasedDiagnosis for D {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn report(&self) -> DiagnosisReport {
        DiagnosisReport {
            scenario: self.scenario().id(),
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

    fn scenarios(&self) -> Vec<ScenarioId> {
        <R::Diagnosis as Diagnosis>::Scenario::ALL
            .iter()
            .map(|s| s.id())
            .collect()
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
                    Runbook::meta(self).id()
                ),
            });
        };
        Runbook::resolve(self, ops, diagnosis).await
    }

    fn criteria(&self) -> Vec<Criterion> {
        Runbook::criteria(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    scenarios! {
        enum Example {
            First = ('A', "First Thing", "first-thing"),
            Second = ('B', "Second Thing", "second-thing"),
        }
    }

    #[test]
    fn a_scenario_table_gives_letters_names_and_slugs() {
        assert_eq!(Example::ALL, &[Example::First, Example::Second]);
        assert_eq!(Example::Second.letter(), 'B');
        assert_eq!(Example::Second.slug(), "second-thing");
        assert_eq!(
            Example::First.id().to_string(),
            "first-thing (A: First Thing)"
        );
    }
}
