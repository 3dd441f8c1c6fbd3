//! `drill check`: the runbooks' reads against a real deployment, read-only.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use runbooks::check::{self, Target, redact, shape};
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
    /// Also starts a fresh twin and reports where the target's answers differ from the
    /// twin's in shape: JSON keys and types of the endpoints the runbooks read, the
    /// columns and their types, the metric names (exit status 1 when they do).
    #[arg(long)]
    compare_twin: bool,
    /// The backend of the twin that --compare-twin starts.
    #[command(flatten)]
    backend: crate::backend_arg::BackendArg,
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
    let orchestrator: Arc<dyn runbooks::ops::Orchestrator> = match &loaded.target.services {
        Some(services) => match stack::docker::compose_target::ComposeTarget::connect(
            services.docker_host.as_deref(),
            &services.compose_project,
        )
        .await
        {
            Ok(target) => Arc::new(target),
            Err(error) => unusable(
                &format!(
                    "the target's compose project {}: {error}",
                    services.compose_project
                ),
                &secrets,
            ),
        },
        None => Arc::new(NoOrchestrator),
    };
    let ops = match Ops::connect_read_only(
        loaded.endpoints.clone(),
        orchestrator,
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
    let differences = if args.compare_twin {
        Some(compare_with_twin(&ops, &args.backend).await?)
    } else {
        None
    };
    let text = match args.format {
        Format::Text => {
            let mut text = report.render();
            if let Some(differences) = &differences {
                text.push_str(&render_differences(differences));
            }
            text
        }
        Format::Json => match &differences {
            Some(differences) => serde_json::to_string_pretty(&serde_json::json!({
                "check": report,
                "twin_differences": differences,
            }))?,
            None => serde_json::to_string_pretty(&report)?,
        },
        Format::Junit => match &differences {
            Some(differences) => report.junit_with_fidelity(differences),
            None => report.junit(),
        },
    };
    println!("{}", redact(&text, &secrets));
    Ok(report.broken().is_empty() && differences.is_none_or(|d| d.is_empty()))
}

/// The target's shape against a fresh twin's (`check::shape`).
async fn compare_with_twin(
    target: &Ops,
    backend: &crate::backend_arg::BackendArg,
) -> anyhow::Result<Vec<shape::Difference>> {
    use anyhow::Context;
    let selected = backend.select().await?;
    eprintln!(
        "starting a fresh twin to compare with ({} backend)…",
        selected.backend
    );
    let mut options = stack::StackOptions::for_tests(
        std::env::current_exe().context("finding the drill binary")?,
    );
    options.label = "drill-check twin".into();
    options.turn = stack::TurnKind::None;
    let twin = stack::Stack::start(options, selected.backend)
        .await
        .context("starting the twin to compare with")?;
    let compared = async {
        let ops = Ops::connect_read_only(
            twin.endpoints().clone(),
            Arc::new(NoOrchestrator),
            twin.clock(),
            Timeline::new(twin.clock()),
        )?;
        let (target_shape, twin_shape) = (shape::take(target).await, shape::take(&ops).await);
        anyhow::Ok(shape::compare(&target_shape, &twin_shape))
    }
    .await;
    twin.shutdown().await.context("stopping the twin")?;
    compared
}

fn render_differences(differences: &[shape::Difference]) -> String {
    let mut text = String::from("\ntwin fidelity (the target against a fresh twin):\n");
    if differences.is_empty() {
        text.push_str("  the same shape: every endpoint, column and metric the twin has\n");
    }
    for difference in differences {
        text.push_str(&format!("  ≠ {difference}\n"));
    }
    text
}

/// Says why the target cannot be checked, and exits 2.
fn unusable(reason: &str, secrets: &[String]) -> ! {
    eprintln!("drill check: {}", redact(reason, secrets));
    std::process::exit(UNUSABLE_TARGET)
}
