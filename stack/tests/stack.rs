//! The local backend end to end, with the stand-in twin (`stack-stub-twin`), so these
//! tests exercise the harness's own machinery whatever state the real twin is in.
//! `real_twin.rs` repeats the boot with the real `drill` binary.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runbooks::ops::ServiceStatus;
use sqlx::{Connection, PgConnection};
use stack::local::template::{self, TemplateOutcome};
use stack::local::{Binaries, run_dir};
use stack::{PortMode, Stack, StackError, StackOptions};
use support::{alive, http, listening, stub_options, stub_twin};
use wire::Service;
use wire::api::{Provider, SourceSite};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

async fn app_db(stack: &Stack) -> PgConnection {
    PgConnection::connect(&stack.endpoints().database_url)
        .await
        .expect("musicdb_user connects without a password")
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap()
}

const TABLES: [&str; 8] = [
    "tracks",
    "data_quality_scores",
    "enrichment_audit",
    "dlq_messages",
    "dlq_archive",
    "dlq_replay_log",
    "scraper_checkpoints",
    "metadata_enrichment_config",
];

async fn row_counts(conn: &mut PgConnection) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for table in TABLES {
        counts.insert(table, count(conn, table).await);
    }
    counts
}

async fn stub_info(stack: &Stack, service: Service) -> serde_json::Value {
    let url = stack.chaos_url(service).unwrap().join("stub").unwrap();
    http().get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_stack_boots_and_every_endpoint_answers() {
    let started = Instant::now();
    let stack = support::start_local(stub_options()).await.unwrap();
    eprintln!(
        "boot: {:?} ({:?})",
        started.elapsed(),
        support::local(&stack).boot_report()
    );
    let ep = stack.endpoints().clone();

    for base in [
        &ep.enrichment,
        &ep.gateway,
        &ep.dlq,
        &ep.rest_api,
        &ep.graph_api,
    ] {
        let response = http()
            .get(base.join("health").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{base}health");
    }
    for service in Service::TWIN {
        let chaos = stack
            .chaos_url(service)
            .expect("every twin service has a chaos surface");
        assert_eq!(chaos.host_str(), Some("127.0.0.1"));
        let response = http()
            .get(chaos.join("chaos").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{service}");
    }
    assert!(stack.chaos_url(Service::Postgres).is_none());

    // The runbooks' role and database, seeded.
    let mut db = app_db(&stack).await;
    assert_eq!(count(&mut db, "tracks").await, 2000);
    assert_eq!(
        count(&mut db, "dlq_messages").await,
        stack::seed::backlog_for(2000) as i64
    );
    let can_signal: bool =
        sqlx::query_scalar("SELECT pg_has_role('musicdb_user', 'pg_signal_backend', 'MEMBER') AND pg_has_role('musicdb_user', 'pg_read_all_stats', 'MEMBER')")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(
        can_signal,
        "musicdb_user may read pg_stat_activity and terminate backends"
    );
    // History ends at modeled now.
    let newest: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(created_at) FROM tracks")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let lag = stack.clock().now() - newest;
    assert!(
        lag > chrono::TimeDelta::zero() && lag < chrono::TimeDelta::minutes(10),
        "newest track is {lag} before modeled now"
    );
    let last_hour_quality: f64 = sqlx::query_scalar(
        "SELECT AVG(quality_score)::float8 FROM data_quality_scores WHERE created_at > $1",
    )
    .bind(stack.clock().now() - chrono::TimeDelta::hours(1))
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(last_hour_quality > 70.0, "{last_hour_quality}");

    // Redis.
    let client = redis::Client::open(ep.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    // The providers agree with the seeded rows.
    let (artist, title, spotify_id): (String, String, String) = sqlx::query_as(
        "SELECT artist_name, track_name, spotify_id FROM tracks WHERE spotify_id IS NOT NULL ORDER BY track_id LIMIT 1",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let mut search = stack
        .providers()
        .url(Provider::Spotify)
        .join("v1/search")
        .unwrap();
    search
        .query_pairs_mut()
        .append_pair("q", &format!("artist:{artist} track:{title}"))
        .append_pair("type", "track")
        .append_pair("limit", "1");
    let body: serde_json::Value = http()
        .get(search)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tracks"]["items"][0]["id"], spotify_id.as_str());

    // Each service got its wiring.
    let gateway = stub_info(&stack, Service::ApiGatewayInternal).await;
    let env = &gateway["env"];
    assert_eq!(env["DATABASE_URL"], ep.database_url.as_str());
    assert_eq!(env["REDIS_URL"], ep.redis_url.as_str());
    assert_eq!(
        env["SPOTIFY_URL"],
        stack.providers().url(Provider::Spotify).as_str()
    );
    assert_eq!(env["POSTGRES_POOL_SIZE"], "10");
    assert_eq!(env["DRILL_PARENT_PID"], std::process::id().to_string());
    assert_eq!(env["DRILL_CLOCK"], stack.clock().to_env());
    let scraper = stub_info(&stack, Service::Scraper1001Tracklists).await;
    assert_eq!(
        scraper["env"]["SOURCE_URL"],
        stack.providers().url(SourceSite::Tracklists1001).as_str()
    );
    assert!(
        scraper["env"].get("LISTEN_ADDR").is_none(),
        "a scraper serves no API"
    );

    assert!(
        support::local(&stack)
            .data_dir()
            .join("logs/postgres.log")
            .is_file()
    );
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn reset_restores_the_seeded_state() {
    let stack = support::start_local(stub_options()).await.unwrap();
    let orchestrator = stack.orchestrator();
    let mut db = app_db(&stack).await;
    let baseline = row_counts(&mut db).await;
    let max_id: i64 = sqlx::query_scalar("SELECT max(track_id) FROM tracks")
        .fetch_one(&mut db)
        .await
        .unwrap();

    // Disturb everything reset is responsible for.
    sqlx::raw_sql(
        "DELETE FROM dlq_messages;
         INSERT INTO tracks (artist_name, track_name, source) SELECT 'x', 'y', 'mixesdb' FROM generate_series(1, 50);
         UPDATE metadata_enrichment_config SET enabled = false WHERE priority_1_provider = 'spotify';",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let client = redis::Client::open(stack.endpoints().redis_url.as_str()).unwrap();
    let mut cache = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut cache)
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v1/search"))
        .respond_with(ResponseTemplate::new(503))
        .mount(stack.providers().server(Provider::Spotify))
        .await;
    orchestrator.stop(&[Service::ScraperMixesdb]).await.unwrap();
    orchestrator.kill(Service::GraphApi).await.unwrap();
    orchestrator
        .pause(Service::MetadataEnrichmentWorker1)
        .await
        .unwrap();
    orchestrator
        .set_env(
            Service::RestApi,
            BTreeMap::from([("POSTGRES_POOL_SIZE".into(), "20".into())]),
        )
        .await
        .unwrap();
    orchestrator.restart(&[Service::RestApi]).await.unwrap();
    assert_eq!(
        stub_info(&stack, Service::RestApi).await["env"]["POSTGRES_POOL_SIZE"],
        "20"
    );

    let started = Instant::now();
    stack.reset().await.unwrap();
    eprintln!(
        "reset after disturbance (restarts included): {:?}",
        started.elapsed()
    );

    let mut db = app_db(&stack).await;
    assert_eq!(row_counts(&mut db).await, baseline);
    let disabled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM metadata_enrichment_config WHERE NOT enabled")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(disabled, 0);
    let next_id: i64 = sqlx::query_scalar(
        "INSERT INTO tracks (artist_name, track_name, source) VALUES ('a', 'b', 'mixesdb') RETURNING track_id",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(
        next_id,
        max_id + 1,
        "sequences restart after the seeded ids"
    );
    let mut cache = client.get_multiplexed_async_connection().await.unwrap();
    let keys: i64 = redis::cmd("DBSIZE").query_async(&mut cache).await.unwrap();
    assert_eq!(keys, 0);
    let search = stack
        .providers()
        .url(Provider::Spotify)
        .join("v1/search?q=artist:a%20track:b")
        .unwrap();
    assert_eq!(
        http().get(search).send().await.unwrap().status(),
        200,
        "baseline only"
    );
    for service in Service::ALL {
        assert_eq!(
            orchestrator.status(service).await.unwrap(),
            ServiceStatus::Running,
            "{service}"
        );
    }
    assert_eq!(
        stub_info(&stack, Service::RestApi).await["env"]["POSTGRES_POOL_SIZE"],
        "10"
    );
    assert!(
        stub_info(&stack, Service::DlqManager).await["resets"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // The figure that matters between test cases: reset of a running, undisturbed stack.
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        stack.reset().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!(
        "reset of a running stack: median {:?}, all {times:?}",
        times[2]
    );
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_orchestrator_stops_starts_kills_and_pauses_services() {
    let stack = support::start_local(stub_options()).await.unwrap();
    let o = stack.orchestrator();
    assert_eq!(o.backend(), "local");
    let scraper = Service::ScraperMixesdb;

    let first = support::local(&stack).pid(scraper).unwrap();
    o.stop(&[scraper]).await.unwrap();
    assert_eq!(o.status(scraper).await.unwrap(), ServiceStatus::Stopped);
    assert!(!alive(first));
    o.start(&[scraper]).await.unwrap();
    assert_eq!(o.status(scraper).await.unwrap(), ServiceStatus::Running);
    let second = support::local(&stack).pid(scraper).unwrap();
    assert_ne!(first, second);

    o.kill(scraper).await.unwrap();
    assert_eq!(
        o.status(scraper).await.unwrap(),
        ServiceStatus::Exited {
            code: Some(137),
            oom_killed: false
        }
    );
    assert!(
        o.kill(scraper).await.is_err(),
        "killing what is not running fails, as docker kill does"
    );
    o.start(&[scraper]).await.unwrap();

    o.pause(scraper).await.unwrap();
    assert_eq!(o.status(scraper).await.unwrap(), ServiceStatus::Paused);
    let pid = support::local(&stack).pid(scraper).unwrap() as i32;
    assert_eq!(stack::local::procfs::stat(pid).unwrap().state, 'T');
    o.unpause(scraper).await.unwrap();
    assert_eq!(o.status(scraper).await.unwrap(), ServiceStatus::Running);

    let logs = o.logs(scraper, 10).await.unwrap();
    assert!(logs.iter().any(|l| l.contains("ready")), "{logs:?}");
    assert!(logs.len() <= 10);

    let stats = o.stats().await.unwrap();
    let pg = stats
        .iter()
        .find(|s| s.service == Service::Postgres)
        .unwrap();
    assert!(pg.memory_bytes > 1 << 20, "{pg:?}");
    assert_eq!(stats.len(), Service::ALL.len());

    // PostgreSQL keeps its data across a restart; Redis comes back empty but answers.
    let mut db = app_db(&stack).await;
    sqlx::query(
        "INSERT INTO tracks (artist_name, track_name, source) VALUES ('kept', 'row', 'seed')",
    )
    .execute(&mut db)
    .await
    .unwrap();
    drop(db);
    o.restart(&[Service::Postgres, Service::Redis])
        .await
        .unwrap();
    let mut db = app_db(&stack).await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM tracks WHERE artist_name = 'kept'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(kept, 1);
    o.kill(Service::Postgres).await.unwrap();
    o.start(&[Service::Postgres]).await.unwrap();
    assert_eq!(
        count(&mut app_db(&stack).await, "tracks").await,
        2001,
        "crash recovery keeps committed rows"
    );

    let junk = support::local(&stack)
        .data_dir()
        .join(stack::local::JUNK_DIR);
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("dangling-image.tar"), vec![0u8; 4096]).unwrap();
    let pruned = o.prune().await.unwrap();
    assert_eq!(pruned.reclaimed_bytes, 4096);
}

#[tokio::test]
async fn the_template_is_built_once_and_then_reused() {
    let cache = tempfile::tempdir().unwrap();
    let root = stack::dirs::runtime_root().unwrap();
    let bins = Binaries::locate(&stub_twin()).unwrap();
    let first = template::ensure(&bins, cache.path(), &root, 7, 100)
        .await
        .unwrap();
    assert!(
        matches!(first.outcome, TemplateOutcome::Built(_)),
        "{:?}",
        first.outcome
    );
    let started = Instant::now();
    let second = template::ensure(&bins, cache.path(), &root, 7, 100)
        .await
        .unwrap();
    assert_eq!(second.outcome, TemplateOutcome::Cached);
    assert_eq!(second.pgdata, first.pgdata);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "a cache hit runs no initdb"
    );
    assert!(second.pgdata.join("PG_VERSION").is_file());
    // Another seed is another template.
    let other = template::ensure(&bins, cache.path(), &root, 8, 100)
        .await
        .unwrap();
    assert_ne!(other.pgdata, first.pgdata);
    // Nothing of the builds is left running or lying around.
    let leftovers = std::fs::read_dir(cache.path().join("templates"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0);

    // And a stack's second start finds the template its first start used.
    let stack = support::start_local(stub_options()).await.unwrap();
    drop(stack);
    let stack = support::start_local(stub_options()).await.unwrap();
    assert_eq!(
        support::local(&stack).boot_report().template,
        TemplateOutcome::Cached
    );
}

/// The PIDs of every process of the stack, PostgreSQL's backends included.
fn every_pid(stack: &Stack) -> Vec<u32> {
    let mut pids = Vec::new();
    for service in Service::ALL {
        let leader = support::local(stack)
            .pid(service)
            .expect("every service runs");
        pids.extend(
            stack::local::procfs::family(leader as i32)
                .into_iter()
                .map(|p| p as u32),
        );
    }
    pids
}

#[tokio::test]
async fn dropping_a_stack_stops_every_process_and_removes_its_files() {
    let stack = support::start_local(stub_options()).await.unwrap();
    let pids = every_pid(&stack);
    assert!(
        pids.len() > Service::ALL.len(),
        "PostgreSQL runs backends beside its postmaster"
    );
    let recorded: Vec<u32> = run_dir_records(support::local(&stack).data_dir());
    assert_eq!(recorded.len(), Service::ALL.len());
    let dir = support::local(&stack).data_dir().to_owned();
    let ports = [
        stack.endpoints().postgres_port,
        stack.endpoints().redis_port,
    ];
    drop(stack);
    for pid in pids.iter().chain(&recorded) {
        assert!(!alive(*pid), "pid {pid} survived the drop");
    }
    assert!(!dir.exists());
    for port in ports {
        assert!(!listening(port), "port {port} still listens");
    }
}

fn run_dir_records(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_dir(dir.join("pids"))
        .unwrap()
        .map(|e| {
            let record: run_dir::PidRecord =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            record.pid as u32
        })
        .collect()
}

#[tokio::test]
async fn shutdown_stops_every_process_too() {
    let stack = support::start_local(stub_options()).await.unwrap();
    let pids = every_pid(&stack);
    let dir = support::local(&stack).data_dir().to_owned();
    let started = Instant::now();
    stack.shutdown().await.unwrap();
    eprintln!("shutdown: {:?}", started.elapsed());
    assert!(pids.iter().all(|&p| !alive(p)));
    assert!(!dir.exists());
}

#[test]
fn a_test_that_panics_still_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let stack = support::start_local(stub_options()).await.unwrap();
            tx.send((
                every_pid(&stack),
                support::local(&stack).data_dir().to_owned(),
            ))
            .unwrap();
            panic!("a deliberate failure while the stack is up");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (pids, dir) = rx.recv().unwrap();
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the panic");
    }
    assert!(!dir.exists());
}

/// The documented ports exist once per machine: tests that use them take turns.
static DOCUMENTED_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn stacks_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Stack>();
    send(&support::start_local(stub_options()));
    // Compiled, not run: the futures of a running stack can move between threads too.
    #[allow(dead_code)]
    fn futures_are_send(stack: Stack) {
        send(&stack.reset());
        send(&stack.shutdown());
    }
}

#[tokio::test]
async fn a_drill_mode_stack_binds_the_documented_ports() {
    let _turn = DOCUMENTED_PORTS.lock().await;
    let busy: Vec<u16> = Service::ALL
        .iter()
        .filter_map(|s| s.drill_port())
        .filter(|&p| listening(p))
        .collect();
    if !busy.is_empty() {
        // Another drill-mode stack runs on this machine (a game day, another test run).
        eprintln!("skipped: documented ports {busy:?} are in use on this machine");
        return;
    }
    let mut options = stub_options();
    options.ports = PortMode::Documented;
    let stack = support::start_local(options).await.unwrap();
    let ep = stack.endpoints();
    assert_eq!(ep.postgres_port, 5433);
    assert_eq!(ep.redis_port, 6379);
    assert_eq!(ep.enrichment.as_str(), "http://127.0.0.1:8020/");
    assert_eq!(ep.dlq.as_str(), "http://127.0.0.1:8024/");
    // As the runbooks type it.
    let health = http()
        .get("http://localhost:8020/health")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    if std::path::Path::new("/usr/bin/psql").exists() {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "localhost",
                "-p",
                "5433",
                "-U",
                "musicdb_user",
                "-d",
                "musicdb",
            ])
            .args(["-tAc", "SELECT count(*) FROM tracks"])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2000");
    }
    stack.shutdown().await.unwrap();
    assert!(!listening(5433) && !listening(8020));
}

#[tokio::test]
async fn a_documented_port_in_use_is_reported_before_anything_starts() {
    let _turn = DOCUMENTED_PORTS.lock().await;
    // Hold 8020 (unless something else already does: the error is the same).
    let _held = std::net::TcpListener::bind(("127.0.0.1", 8020));
    let busy_before: Vec<u16> = Service::ALL
        .iter()
        .filter_map(|s| s.drill_port())
        .filter(|&p| p != 8020 && listening(p))
        .collect();
    let mut options = stub_options();
    options.ports = PortMode::Documented;
    options.label = "documented-port-test".into();
    let error = match support::start_local(options).await {
        Err(e) => e,
        Ok(_) => panic!("a stack started although port 8020 is held"),
    };
    match &error {
        StackError::PortInUse { port, service } if busy_before.is_empty() => {
            assert_eq!((*port, *service), (8020, Service::MetadataEnrichment));
            assert_eq!(
                error.to_string(),
                "port 8020 for metadata-enrichment is in use; stop what holds it \
                 (`ss -ltnp 'sport = :8020'`) or run in test mode"
            );
        }
        StackError::PortInUse { .. } => {}
        other => panic!("expected PortInUse, got {other}"),
    }
    let root = stack::dirs::runtime_root().unwrap();
    let ours = std::fs::read_dir(root.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("owner.json"))
                .is_ok_and(|o| o.contains("documented-port-test"))
        })
        .count();
    assert_eq!(ours, 0, "nothing was created");
}

#[tokio::test]
async fn a_missing_twin_binary_is_reported() {
    let error = support::start_local(StackOptions::for_tests("/nonexistent/drill"))
        .await
        .err()
        .expect("no stack without a twin binary");
    assert!(
        matches!(error, StackError::MissingTwinBinary { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("cargo build --bin drill"),
        "{error}"
    );
}

#[tokio::test]
async fn a_service_that_exits_during_boot_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("failing-twin");
    let record = dir.path().join("seen");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$DATABASE_URL $DRILL_RUN_ID\" > {}\necho \"boom: $2 cannot start\" >&2\nexit 3\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let error = support::start_local(StackOptions::for_tests(&script))
        .await
        .err()
        .expect("the twin fails");
    let StackError::ExitedDuringBoot { status, tail, .. } = &error else {
        panic!("expected ExitedDuringBoot, got {error}");
    };
    assert_eq!(status, "exit code 3");
    assert!(
        tail.contains("boom:") && tail.contains("cannot start"),
        "{tail}"
    );
    assert!(error.to_string().contains("exited during boot"), "{error}");

    // Nothing is left: PostgreSQL's port is closed and the run directory is gone.
    let seen = std::fs::read_to_string(&record).unwrap();
    let (url, run_id) = seen.trim().split_once(' ').unwrap();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(!listening(port), "PostgreSQL on {port} was stopped");
    let root = stack::dirs::runtime_root().unwrap();
    assert!(!root.join("runs").join(run_id).exists());
}

#[tokio::test]
async fn a_stale_run_is_reaped_when_the_next_stack_starts() {
    let root = stack::dirs::runtime_root().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    };
    let owner = run_dir::Owner {
        pid: dead,
        start_time: Some(0),
        label: "killed by SIGKILL".into(),
        run_id: format!("stale-{}", std::process::id()),
        started_at: "2025-01-01T00:00:00Z".into(),
    };
    let stale = run_dir::RunDir::create_with_owner(&root, owner).unwrap();
    stale
        .record(
            "sleeper",
            &run_dir::PidRecord::of(sleeper.id() as i32, "sleep"),
        )
        .unwrap();
    let path = stale.path().to_owned();
    std::mem::forget(stale); // its owner "died": no cleanup ran

    let stack = support::start_local(stub_options()).await.unwrap();

    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        sleeper.wait().unwrap().signal(),
        Some(9),
        "the recorded process was killed"
    );
    assert!(!path.exists(), "the stale run directory was removed");
    drop(stack);
}

/// Boot and reset times with the stand-in twin, for the report (run with `--ignored
/// --nocapture`, alone: parallel tests make the figures meaningless). The criterion
/// benches measure the same in release builds.
#[tokio::test]
#[ignore = "timing report; run alone with --ignored --nocapture"]
async fn boot_and_reset_times() {
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut boots = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let stack = support::start_local(stub_options()).await.unwrap();
        boots.push(started.elapsed());
        eprintln!("{:?}", support::local(&stack).boot_report());
        stack.shutdown().await.unwrap();
    }
    let stack = support::start_local(stub_options()).await.unwrap();
    let mut resets = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        stack.reset().await.unwrap();
        resets.push(started.elapsed());
    }
    eprintln!("boot: median {:?} of {boots:?}", median(boots.clone()));
    eprintln!("reset: median {:?} of {resets:?}", median(resets.clone()));
}

#[tokio::test]
async fn postgres_keeps_the_stacks_modeled_clock_for_the_runbooks_sql() {
    let mut options = stub_options();
    options.scale = 60.0;
    let stack = support::start_local(options).await.unwrap();
    support::assert_postgres_keeps_the_stack_clock(&stack).await;
    stack.shutdown().await.unwrap();
}
