//! `drill check`: the runbooks' reads against a real deployment, read-only.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use runbooks::check::{self, Target, redact};
use runbooks::ops::read_only::NoOrchestrator;
use runbooks::ops::{Ops, Timeline};
use wire::Clock;

/// Runs every runbook's investigation, every alert rule's probe and every verification
/// probe once against a deployment named by a target file, read-only: HTTP other than
/// GET and HEAD is refused before it is sent, PostgreSQL sessions are read-only with a
/// statement timeout, service actions and destructive steps are refused. Reports each
/// command as working, broken (with the error), refused or not checked.
///
/// Exit status: 0 when every command checked works, 1 when one is broken, 2 when the
/// target cannot be checked (a bad target file, a missing secret, an unreachable
/// service, refused credentials).
#[derive(Args)]
pub struct CheckArgs {
    /// The target file (TOML): the deployment's service URLs, PostgreSQL and Redis,
    /// and where their passwords are kept (password_env or password_file, never in
    /// the file). See docs/check.md.
    #[arg(long)]
    target: PathBuf,
    /// Only these runbooks (ids, as `drill list` names them); all by default.
    #[arg(long = "runbook")]
    runbooks: Vec<String>,
    /// How to report: `text`, `json` or `junit`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

/// Exit status for a target that cannot be checked.
const UNUSABLE_TARGET: i32 = 2;

pub async fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let loaded = match Target::load(&args.target) {
        Ok(loaded) => loaded,
        Err(error) => unusable(&error.to_string(), &[]),
    };
    let secrets = loaded.secrets.clone();
    let runbooks = if args.runbooks.is_empty() {
        runbooks::all()
    } else {
        let mut chosen = Vec::new();
        for id in &args.runbooks {
            match runbooks::by_id(id) {
                Ok(runbook) => chosen.push(runbook),
                Err(error) => unusable(&error.to_string(), &secrets),
            }
        }
        chosen
    };
    let ops = match Ops::connect_read_only(
        loaded.endpoints.clone(),
        Arc::new(NoOrchestrator),
        Clock::real_time(),
        Timeline::new(Clock::real_time()),
    ) {
        Ok(ops) => ops,
        Err(error) => unusable(&error.to_string(), &secrets),
    };
    if let Err(error) = check::preflight(&ops).await {
        unusable(&error.to_string(), &secrets);
    }
    eprintln!(
        "checking {} runbook(s) against {}, read-only…",
        runbooks.len(),
        loaded.target.name
    );
    let report = check::check(&loaded.target.name, &ops, &runbooks).await;
    let text = match args.format {
        Format::Text => report.render(),
        Format::Json => serde_json::to_string_pretty(&report)?,
        Format::Junit => report.junit(),
    };
    println!("{}", redact(&text, &secrets));
    Ok(report.broken().is_empty())
}

/// Says why the target cannot be checked, and exits 2.
fn unusable(reason: &str, secrets: &[String]) -> ! {
    eprintln!("drill check: {}", redact(reason, secrets));
    std::process::exit(UNUSABLE_TARGET)
}
