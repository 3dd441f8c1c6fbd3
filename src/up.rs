//! `drill up`: the twin at the documented ports, until Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use harness::alerts::AlertEvaluator;
use runbooks::ops::{Ops, RefuseAll, Timeline};
use stack::{PortMode, Stack, StackOptions};

use crate::backend_arg::BackendArg;

/// Runs the SongNodes twin at the ports the runbooks name, until Ctrl-C.
///
/// PostgreSQL listens on localhost:5433 (database `musicdb`, user `musicdb_user`, no
/// password: trust authentication on loopback), Redis on 6379, metadata-enrichment on
/// 8020, api-gateway-internal on 8022, dlq-manager on 8024, rest-api on 8082 and
/// graph-api on 8084. Every curl, jq path and SQL statement of the runbooks works
/// against it as written. Ctrl-C stops everything and removes the stack's files.
#[derive(Args)]
pub struct UpArgs {
    /// Modeled seconds per real second. 1 is real time (game days); 60 makes a
    /// modeled minute pass every second (breakers recover in 1 s).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the generated data (catalogue, history, scraped pages).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How many tracks of history to load.
    #[arg(long, default_value_t = 3000)]
    tracks: usize,
    /// Bind free ports instead of the documented ones (to run beside another stack).
    #[arg(long)]
    free_ports: bool,
    /// New tracks per modeled minute, arriving through the two scrapers.
    #[arg(long, default_value_t = stack::workload::DEFAULT_TRACKS_PER_MINUTE)]
    workload: u32,
    /// Reads per modeled minute on each of rest-api and graph-api, by the stack's API
    /// users (their connections are what a pool holds; 0 for none)
    #[arg(long, default_value_t = 0)]
    api_requests: u32,
    #[command(flatten)]
    backend: BackendArg,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let twin_binary = current_binary()?;
    let options = StackOptions {
        ports: if args.free_ports {
            PortMode::Free
        } else {
            PortMode::Documented
        },
        scale: args.scale,
        seed: args.seed,
        tracks: args.tracks,
        twin_binary,
        label: "drill-up".to_owned(),
        // A game-day stack runs for hours; it does not hold up drills and tests.
        turn: stack::TurnKind::None,
        compose_hashes: true,
    };
    let selected = args.backend.select().await?;
    eprintln!(
        "starting the SongNodes twin ({} backend, scale {}, seed {}, {} tracks)…",
        selected.backend, args.scale, args.seed, args.tracks
    );
    let started = Instant::now();
    let stack = Stack::start(options, selected.backend)
        .await
        .context("starting the stack")?;
    println!("stack up in {:.2} s", started.elapsed().as_secs_f64());
    print_stack(&stack);
    stack.set_workload(stack::Workload {
        tracks_per_minute: args.workload,
        api_requests_per_minute: args.api_requests,
    });
    println!(
        "  workload              {} tracks per modeled minute, {} API reads per modeled minute on each track API",
        args.workload, args.api_requests
    );
    let alerts = watch_alerts(&stack).await?;
    println!("alerts are evaluated every 15 modeled seconds; their changes show here");
    println!("press Ctrl-C to stop");
    wait_for_stop().await;
    alerts.abort();
    eprintln!("stopping…");
    stack.shutdown().await.context("stopping the stack")?;
    eprintln!("stopped; nothing left running");
    Ok(())
}

/// How to reach everything of a running stack, as `drill up` and `drill gameday`
/// print it: the services, PostgreSQL and Redis, the disk and the memory.
pub fn print_stack(stack: &Stack) {
    let ep = stack.endpoints();
    match stack {
        Stack::Local(local) => {
            println!("  data and logs         {}", local.data_dir().display());
        }
        Stack::Docker(docker) => {
            println!(
                "  containers            docker ps --filter label=runbook-drill.run-id={} (network {})",
                docker.run_id(),
                docker.network()
            );
            if let Some(banner) = crate::gameday::compose::real_compose_banner(stack) {
                println!("  docker compose        {banner}");
            }
        }
    }
    println!("  metadata-enrichment   {}", ep.enrichment);
    println!("  api-gateway-internal  {}", ep.gateway);
    println!("  dlq-manager           {}", ep.dlq);
    println!("  rest-api              {}", ep.rest_api);
    println!("  graph-api             {}", ep.graph_api);
    println!(
        "  postgres              psql -h localhost -p {} -U musicdb_user -d musicdb",
        ep.postgres_port
    );
    println!("  redis                 redis-cli -p {}", ep.redis_port);
    let disk = stack.disk();
    let logs = disk.dir(runbooks::ops::DiskDir::Logs);
    let backups = disk.dir(runbooks::ops::DiskDir::Backups);
    let whose = if stack.as_docker().is_some() {
        " (in the containers)"
    } else {
        ""
    };
    let size = match disk.limited() {
        Ok(()) => format!("{} MiB", stack::disk::DEFAULT_DISK_SIZE >> 20),
        Err(reason) => format!("not size-limited: {reason}"),
    };
    println!("  disk                  {size}: logs {logs}/<service>.log, backups {backups}{whose}");
    match stack.memory() {
        Ok(cgroup) => println!(
            "  memory                {} MiB, the cgroup {}",
            stack::memory::DEFAULT_MEMORY_BUDGET >> 20,
            cgroup.path().display()
        ),
        Err(reason) if stack.as_local().is_some() => println!(
            "  memory                not limited ({reason}): free -h sums the services' \
             memory against a budget of {} MiB",
            stack::memory::DEFAULT_MEMORY_BUDGET >> 20
        ),
        Err(reason) => println!(
            "  memory                not limited ({reason}): free -h cannot be read, and \
             MemoryUsageHigh says so"
        ),
    }
}

/// Evaluates every runbook's alert rule in the background and prints each change of
/// state, as an alert board would; a rule whose probe cannot be read is reported (by
/// the evaluator's log) with the probe and the reason.
async fn watch_alerts(stack: &Stack) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let clock = stack.clock();
    let ops = Ops::connect(
        stack.endpoints().clone(),
        stack.orchestrator(),
        clock,
        Arc::new(RefuseAll),
        Timeline::new(clock),
    )
    .await
    .context("connecting the alert evaluator to the stack")?
    .with_host(stack.host());
    Ok(tokio::spawn(async move {
        let mut evaluator = AlertEvaluator::for_all_runbooks();
        let mut tick = clock.interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            for change in evaluator.evaluate(&ops).await {
                println!(
                    "{} {} {:?} → {:?}: {}",
                    change.at.format("%H:%M:%S"),
                    change.alert,
                    change.from,
                    change.to,
                    change.reading
                );
            }
        }
    }))
}

/// The binary that runs the twin's services: this very program (`drill twin …`).
fn current_binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the drill binary to run the twin's services")
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
