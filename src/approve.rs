//! Approval at the terminal: destructive steps of a drill ask the operator first.

use std::io::{BufRead, IsTerminal, Write};

use async_trait::async_trait;
use runbooks::ops::{ApprovalRequest, Approver};

/// Asks on the terminal; anything but "y" or "yes" refuses.
pub struct AskOperator;

#[async_trait]
impl Approver for AskOperator {
    fn name(&self) -> &str {
        "operator"
    }

    async fn approve(&self, request: &ApprovalRequest) -> bool {
        let prompt = format!(
            "\napproval needed: {}\n  impact: {}\n  command:\n    {}\napprove? [y/N] ",
            request.title,
            request.impact,
            request.command.replace('\n', "\n    ")
        );
        tokio::task::spawn_blocking(move || {
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(prompt.as_bytes());
            let _ = stderr.flush();
            let mut answer = String::new();
            if std::io::stdin().lock().read_line(&mut answer).is_err() {
                return false;
            }
            matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
        })
        .await
        .unwrap_or(false)
    }
}

/// Whether a person can answer: standard input is a terminal.
pub fn operator_present() -> bool {
    std::io::stdin().is_terminal()
}
