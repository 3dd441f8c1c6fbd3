//! `drill reap`: what killed runs left behind, listed or removed.
//!
//! Every stack start reaps on its own; this command is for looking (`--dry-run`,
//! which exits 1 when anything is found: the test command's final leftovers check)
//! and for cleaning up by hand after a run was killed.

use anyhow::Context;
use clap::Args;
use stack::docker::engine;

/// Lists or removes what killed runs left: local run directories and their processes,
/// docker containers, networks and volumes whose owning drill process is gone, and
/// memory cgroups of runs whose directory is gone.
#[derive(Args)]
pub struct ReapArgs {
    /// List only; exit status 1 when anything is left (kept stacks included).
    #[arg(long)]
    dry_run: bool,
    /// Also remove stacks left up on purpose by `DRILL_KEEP=on-failure`.
    #[arg(long)]
    kept: bool,
}

pub async fn run(args: ReapArgs) -> anyhow::Result<bool> {
    let root = stack::dirs::runtime_root().context("finding the runtime directory")?;
    let mut found = 0;
    for run in stack::local::stale_runs(&root) {
        found += 1;
        println!(
            "local run {}{} ({}): {}, live processes {:?}",
            run.run_id,
            if run.kept { " [kept]" } else { "" },
            run.label.as_deref().unwrap_or("unlabelled"),
            run.path.display(),
            run.live_pids
        );
    }
    for orphan in stack::memory::orphaned_cgroups(&root) {
        found += 1;
        println!(
            "cgroup of run {} without its run directory: {} (created {:.0?} ago)",
            orphan.run_id,
            orphan.path.display(),
            orphan.age
        );
    }
    match engine::connect().await {
        Ok(docker) => {
            for resource in engine::stale_resources(&docker).await? {
                found += 1;
                println!(
                    "docker {:?} {} (run {}){}",
                    resource.kind,
                    resource.name,
                    resource.run_id.as_deref().unwrap_or("?"),
                    if resource.kept { " [kept]" } else { "" }
                );
            }
            if !args.dry_run {
                let reaped = engine::reap_runs(&docker, args.kept).await?;
                eprintln!(
                    "removed {} containers, {} networks, {} volumes",
                    reaped.containers, reaped.networks, reaped.volumes
                );
            }
        }
        Err(e) => eprintln!("docker not checked: {e}"),
    }
    if args.dry_run {
        eprintln!("{found} leftovers");
        return Ok(found == 0);
    }
    let report = stack::local::reap_stale_runs(
        &root,
        stack::local::ReapScope {
            kept: args.kept,
            docker: true,
        },
    );
    let cgroups = stack::memory::remove_orphaned_cgroups(&root, std::time::Duration::ZERO);
    eprintln!(
        "removed {} local runs, killed {} processes, removed the cgroups of {} runs",
        report.runs.len(),
        report.killed.len(),
        cgroups.len()
    );
    Ok(true)
}
