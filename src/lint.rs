//! `drill lint`: the runbook linter from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use runbooks::lint::{self, Finding};

/// Reads runbooks in Markdown (the seed's format: `## Runbook: …`, an alert header,
/// bash blocks, scenarios) and reports what drilling showed to be wrong or risky:
/// commands that never end, hard-coded dates, destructive commands with no approval
/// note, file operations that grow or overwrite what they mean to shrink or amend,
/// actions at another threshold than the investigation's, endpoints and tables the
/// stack lacks, external URLs, runbooks without verification.
///
/// Exit status 1 when anything is found.
#[derive(Args)]
pub struct LintArgs {
    /// Markdown files; the project's copy of the SongNodes runbooks when none is given.
    files: Vec<PathBuf>,
    /// How to report: `text` (`file:line: warning[rule]: …`), `json` or `sarif`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

/// The project's copy of the seed's runbooks.
fn default_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/RUNBOOKS.md")
}

pub fn run(args: LintArgs) -> anyhow::Result<bool> {
    let files = if args.files.is_empty() {
        vec![default_file()]
    } else {
        args.files
    };
    let mut findings: Vec<Finding> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading runbook {}", file.display()))?;
        findings.extend(lint::lint(&file.display().to_string(), &text));
    }
    match args.format {
        Format::Text => {
            for finding in &findings {
                println!("{finding}");
            }
            eprintln!("{} finding(s) in {} file(s)", findings.len(), files.len());
        }
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&lint::to_json(&findings))?
        ),
        Format::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&lint::to_sarif(&findings))?
        ),
    }
    Ok(findings.is_empty())
}
