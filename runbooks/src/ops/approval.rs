//! The approval gate for destructive steps.
//!
//! The runbooks say "get approval first" before terminating backends, purging data
//! or disabling a provider. Every such step asks an [`Approver`]; tests approve
//! automatically, a game-day drill asks the person at the keyboard. The answer is
//! recorded on the timeline either way.

use async_trait::async_trait;

/// What a destructive step is about to do.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    pub title: String,
    pub command: String,
    /// Why it is destructive: what is lost or interrupted.
    pub impact: String,
}

#[async_trait]
pub trait Approver: Send + Sync {
    /// Who or what answers, for the record ("auto", "operator").
    fn name(&self) -> &str;
    async fn approve(&self, request: &ApprovalRequest) -> bool;
}

/// Approves everything: for tests and unattended drills.
pub struct AutoApprove;

#[async_trait]
impl Approver for AutoApprove {
    fn name(&self) -> &str {
        "auto"
    }

    async fn approve(&self, _request: &ApprovalRequest) -> bool {
        true
    }
}

/// Refuses everything: for checking that a runbook stops at its gate.
pub struct RefuseAll;

#[async_trait]
impl Approver for RefuseAll {
    fn name(&self) -> &str {
        "refuse-all"
    }

    async fn approve(&self, _request: &ApprovalRequest) -> bool {
        false
    }
}
