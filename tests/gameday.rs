//! Game days, as a person runs them: `drill gameday` as a program, a responder that
//! types the runbook's commands into a shell, the board in a real terminal (tmux),
//! and the HTML report in a real browser (headless chromium).
//!
//! Each test starts `drill gameday` on free ports at scale 30 (a modeled minute every
//! two seconds) with its board off, reads where the stack is from its state file, and
//! waits for the page on its output.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DRILL: &str = env!("CARGO_BIN_EXE_drill");
const POOL_A: &str = "db-connection-pool/a-long-running-queries";
const POOL_B: &str = "db-connection-pool/b-connection-leak";

/// A running `drill gameday` and its files.
struct GameDay {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl GameDay {
    /// Starts a game day with `args` (a selector, `--blind`, `--time-limit`, …).
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, "off", &[])
    }

    fn start_with(args: &[&str], board: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = std::fs::File::create(dir.path().join("out.log")).expect("a log file");
        let mut command = Command::new(DRILL);
        command
            .arg("gameday")
            .args(args)
            .args([
                "--free-ports",
                "--take-turn",
                "--scale",
                "30",
                "--board",
                board,
            ])
            .arg("--state-file")
            .arg(dir.path().join("state.json"))
            .arg("--json")
            .arg(dir.path().join("report.json"))
            .arg("--html")
            .arg(dir.path().join("report.html"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, twice"))
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("drill gameday starts");
        Self {
            child: Some(child),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.path("out.log")).unwrap_or_default()
    }

    /// Waits until the game day's output contains `needle`.
    fn wait_for(&self, needle: &str, within: Duration) {
        let began = Instant::now();
        while began.elapsed() < within {
            if self.output().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the game day did not say {needle:?} within {within:?}; it said:\n{}",
            self.output()
        );
    }

    /// Where the stack is, from the state file.
    fn state(&self) -> Value {
        self.wait_for("export DRILL_GAMEDAY=", Duration::from_secs(240));
        let text = std::fs::read_to_string(self.path("state.json")).expect("the state file");
        serde_json::from_str(&text).expect("the state file is JSON")
    }

    /// Runs `script` in bash as the responder, with the stack's addresses in the
    /// environment and `drill` on the PATH; returns its output.
    fn respond(&self, script: &str) -> String {
        let state = self.state();
        let text = |key: &str| state[key].as_str().unwrap_or_default().to_owned();
        let bin = Path::new(DRILL).parent().expect("the binary's directory");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("bash")
            .args(["-c", script])
            .env("PATH", path)
            .env("DRILL_GAMEDAY", text("control"))
            .env("ENRICHMENT", text("enrichment"))
            .env("DLQ", text("dlq"))
            .env("REST_API", text("rest_api"))
            .env("PGPORT", state["postgres_port"].to_string())
            .env("REDIS_PORT", state["redis_port"].to_string())
            .envs(
                state["compose"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default())),
            )
            .output()
            .expect("bash runs");
        let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
        all.push_str(&String::from_utf8_lossy(&output.stderr));
        assert!(
            output.status.success(),
            "the responder's script failed:\n{all}"
        );
        all
    }

    /// Runs `script` as the responder and asserts the game day ended resolved, with
    /// exit status 0; its JSON report, HTML report and what the responder printed.
    fn resolved_by(self, script: &str) -> (Value, String, String) {
        let said = self.respond(script);
        let (status, report, html) = self.finish(Duration::from_secs(240));
        assert_eq!(
            report["outcome"]["outcome"], "resolved",
            "{report:#}\nthe responder said:\n{said}"
        );
        assert!(status.success());
        (report, html, said)
    }

    /// Waits for the game day to end; its exit status, JSON report and HTML report.
    fn finish(mut self, within: Duration) -> (ExitStatus, Value, String) {
        let mut child = self.child.take().expect("running");
        let began = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for drill") {
                break status;
            }
            if began.elapsed() > within {
                give_up(&mut child);
                panic!(
                    "the game day did not end within {within:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let report = std::fs::read_to_string(self.path("report.json")).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); the game day said:\n{}",
                self.output()
            )
        });
        let html = std::fs::read_to_string(self.path("report.html")).expect("the HTML report");
        (
            status,
            serde_json::from_str(&report).expect("the report is JSON"),
            html,
        )
    }
}

/// Ctrl-C, as a person would; SIGKILL if it does not end within a minute.
fn give_up(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for GameDay {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            give_up(child);
        }
    }
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["what"].as_str().unwrap_or_default().to_owned(),
                a["judged"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The responder: the runbook's investigation as written (its ports this stack's),
/// then the resolution the evidence points to. Queries running for over 30 seconds on
/// the services' connections (step 4 of the investigation) are scenario A: the
/// runbook's kill, every modeled minute until none is left, amended to spare the
/// nightly backup. Otherwise (connections idle in their transactions) scenario B:
/// restart the services, as written.
const RESPONDER: &str = r#"
set -euo pipefail
docker() { if [ "$1" = compose ]; then shift; drill compose "$@"; else command docker "$@"; fi; }
drill gameday ack

# 1. Check current pool usage
docker compose logs rest-api --tail=50 | grep -i "pool" | tail -3 || true

# 3. Count connections by service
psql -h localhost -p $PGPORT -U musicdb_user -d musicdb << EOF
SELECT
    application_name,
    state,
    COUNT(*) as connection_count
FROM pg_stat_activity
WHERE datname = 'musicdb'
GROUP BY application_name, state
ORDER BY connection_count DESC;
EOF

# 4. Check for long-running queries
psql -h localhost -p $PGPORT -U musicdb_user -d musicdb << EOF
SELECT
    pid,
    NOW() - query_start AS duration,
    query
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '30 seconds'
ORDER BY duration DESC;
EOF

runaway() {
  psql -h localhost -p $PGPORT -U musicdb_user -d musicdb -tA -c \
    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name IN ('rest-api', 'graph-api') AND state = 'active' AND NOW() - query_start > INTERVAL '30 seconds'"
}
if [ "$(runaway)" -gt 0 ]; then
  echo "diagnosis: long-running queries"
  for i in $(seq 1 40); do
    psql -h localhost -p $PGPORT -U musicdb_user -d musicdb -tA << EOF
SELECT pg_terminate_backend(pid)
FROM pg_stat_activity
WHERE state != 'idle'
  AND NOW() - query_start > INTERVAL '10 minutes'
  AND application_name <> 'pg_dump';
EOF
    [ "$(runaway)" -eq 0 ] && [ "$i" -gt 3 ] && break
    sleep 2
  done
else
  echo "diagnosis: connection leak"
  docker compose restart rest-api graph-api
fi
curl -s "$REST_API/health" | jq .pool.usage
"#;

#[test]
fn a_scripted_responder_resolves_a_blind_game_day_and_the_report_names_what_it_did() {
    // Seed 7 draws scenario A from the two (the draw is tested in the harness).
    let pool = format!("{POOL_A},{POOL_B}");
    let game = GameDay::start(&[
        "--blind",
        "--pool",
        &pool,
        "--seed",
        "7",
        "--time-limit",
        "60",
        "--stable-for",
        "3",
    ]);
    game.wait_for(
        "PAGE P1 DatabaseConnectionPoolHigh",
        Duration::from_secs(300),
    );
    assert!(
        !game.output().contains("long-running")
            && game.output().contains("drawn from seed 7 and not shown"),
        "a blind game day does not show its scenario"
    );
    let (report, html, said) = game.resolved_by(RESPONDER);
    assert_eq!(
        report["scenario"], POOL_A,
        "the report reveals the drawn scenario"
    );
    assert_eq!(report["blind"], true);
    assert!(said.contains("diagnosis: long-running queries"), "{said}");
    let actions = actions(&report);
    let kill = actions
        .iter()
        .find(|(what, _)| what.contains("pg_terminate_backend"))
        .unwrap_or_else(|| panic!("the kill is among the actions: {actions:#?}"));
    assert!(
        kill.1.starts_with("step, amended"),
        "sparing the backup amends the kill: {kill:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(what, judged)| what.starts_with("compose logs rest-api")
                && judged.starts_with("step")),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|(what, judged)| what.starts_with("GET rest-api/health") && judged == "extra"),
        "a command the runbook does not have is extra: {actions:#?}"
    );
    assert!(
        !actions
            .iter()
            .any(|(what, _)| what.contains("compose restart")),
        "scenario A needs no restart: {actions:#?}"
    );
    assert!(report["time_to_acknowledge_minutes"].as_f64().is_some());
    assert!(report["time_to_resolve_minutes"].as_f64().is_some());
    assert!(
        report["ledger_problems"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{report:#}"
    );

    check_html(&html, &actions);
}

/// The responder of a connection leak on docker, with the runbook's compose lines run
/// through the real docker-compose on the stack's project (the banner's exports).
const COMPOSE_RESPONDER: &str = r#"
set -euo pipefail
docker() { if [ "$1" = compose ]; then shift; docker-compose "$@"; else command docker "$@"; fi; }
drill gameday ack
docker compose ps | grep rest-api
docker compose logs rest-api --tail=50 | grep -i "pool" | tail -3 || true
docker compose restart rest-api graph-api
"#;

#[test]
fn on_docker_the_runbooks_compose_lines_run_through_docker_compose_and_are_observed() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    if let Some(reason) = runtime.block_on(stack::testing::docker_skip_reason()) {
        assert!(
            !stack::testing::docker_required(),
            "docker is required here: {reason}"
        );
        eprintln!("SKIPPED: {reason}");
        return;
    }
    if runtime
        .block_on(stack::docker::compose_project::compose_v1())
        .is_none()
    {
        assert!(
            !stack::testing::docker_required(),
            "docker-compose is required here (scripts/setup installs it)"
        );
        eprintln!("SKIPPED: no docker-compose on this machine");
        return;
    }
    let game = GameDay::start_with(
        &[
            POOL_B,
            "--seed",
            "7",
            "--time-limit",
            "60",
            "--stable-for",
            "3",
        ],
        "off",
        &[("DRILL_BACKEND", "docker")],
    );
    game.wait_for(
        "PAGE P1 DatabaseConnectionPoolHigh",
        Duration::from_secs(300),
    );
    assert!(
        game.output().contains("export COMPOSE_FILE="),
        "the banner points the real tool at the stack:\n{}",
        game.output()
    );
    let (report, _, _) = game.resolved_by(COMPOSE_RESPONDER);
    let actions = actions(&report);
    for service in ["rest-api", "graph-api"] {
        assert!(
            actions.iter().any(|(what, judged)| what
                == &format!("compose restart {service}: done (seen by the engine)")
                && judged.starts_with("step")),
            "docker-compose's restart of {service} is seen by the engine and is the runbook's step: {actions:#?}"
        );
    }
}

/// The HTML report holds its title, a chart per sampled signal and every action, and a
/// real browser renders it.
fn check_html(html: &str, actions: &[(String, String)]) {
    assert!(html.contains("<title>Game day: db-connection-pool/a-long-running-queries"));
    for signal in [
        "pool-usage",
        "dlq-depth",
        "success-rate",
        "cache-hit-rate",
        "gateway-error-rate",
    ] {
        assert!(
            html.contains(&format!("data-signal=\"{signal}\"><svg")),
            "the report charts {signal}"
        );
    }
    for (what, _) in actions {
        let escaped = what
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        assert!(html.contains(&escaped), "the report lists {what}");
    }
    for fetch in ["src=\"http", "href=\"http", "url(http", "<script", "<link"] {
        assert!(
            !html.contains(fetch),
            "the report opens offline: it has {fetch}"
        );
    }

    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!(
            "NOT RENDERED: no headless browser here (chromium is not installed; scripts/setup \
             installs it); the HTML report was checked for its content only"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = dir.path().join("report.html");
    std::fs::File::create(&page)
        .and_then(|mut f| f.write_all(html.as_bytes()))
        .expect("the page is written");
    let shot = dir.path().join("report.png");
    let rendered = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1050,3000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("the browser runs");
    let dom = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        dom.contains("Game day: Database Connection Pool Exhaustion")
            && dom.matches("<svg").count() >= 5,
        "the browser's DOM lacks the title or the charts:\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let png = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        png > 20_000,
        "the screenshot is {png} bytes: the page did not render"
    );
}

#[test]
fn a_responder_who_does_nothing_ends_at_the_time_limit_and_the_report_says_so() {
    let game = GameDay::start(&[POOL_B, "--seed", "3", "--time-limit", "8"]);
    let (status, report, html) = game.finish(Duration::from_secs(300));
    assert!(!status.success(), "an unresolved game day exits non-zero");
    assert_eq!(report["outcome"]["outcome"], "time-limit", "{report:#}");
    assert_eq!(
        report["outcome"]["paged"], true,
        "the alert fired: {report:#}"
    );
    assert!(report["time_to_acknowledge_minutes"].is_null());
    assert!(report["time_to_resolve_minutes"].is_null());
    assert!(actions(&report).is_empty(), "{report:#}");
    let restart = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["text"] == "docker compose restart rest-api graph-api")
        .expect("the restart is a step of scenario B");
    assert_eq!(restart["status"], "skipped");
    assert!(html.contains("The stack saw no action of the responder."));
    assert!(html.contains("time limit: not resolved within 08:00"));
}

#[test]
fn a_halt_condition_ends_the_game_day_when_the_responder_loses_work() {
    let game = GameDay::start(&[
        POOL_B,
        "--seed",
        "3",
        "--time-limit",
        "40",
        "--halt-on",
        "lost-work",
    ]);
    game.wait_for("PAGE P1", Duration::from_secs(300));
    // The wrong runbook's purge, by date, as DLQ Overflow writes it: it archives the
    // backlog of tracks a replay could still enrich.
    game.respond(
        r#"curl -sf -X DELETE "$DLQ/dlq/messages/before/$(date -u -d tomorrow +%Y-%m-%d)""#,
    );
    let (status, report, _) = game.finish(Duration::from_secs(240));
    assert!(!status.success());
    assert_eq!(report["outcome"]["outcome"], "halted", "{report:#}");
    assert_eq!(report["outcome"]["halt"], "lost-work");
    assert!(
        report["outcome"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("lost work")),
        "{report:#}"
    );
    let purge = actions(&report);
    assert!(
        purge.iter().any(|(what, judged)| what
            .starts_with("DELETE dlq-manager/dlq/messages/before/")
            && judged == "extra"),
        "the purge is an action, and not a step of this runbook: {purge:#?}"
    );
}

/// tmux, for a real terminal: one server of the test's own, removed when dropped.
struct Tmux(String);

impl Tmux {
    fn new() -> Option<Self> {
        Command::new("tmux")
            .arg("-V")
            .output()
            .ok()?
            .status
            .success()
            .then(|| Self(format!("drill-test-{}", std::process::id())))
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    fn wait_for(&self, target: &str, needle: &str, within: Duration) -> String {
        let began = Instant::now();
        loop {
            let screen = self.screen(target);
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                began.elapsed() < within,
                "{target} never showed {needle:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

#[test]
fn the_board_draws_in_a_real_terminal_and_takes_its_keys() {
    let Some(tmux) = Tmux::new() else {
        panic!("tmux is not installed (scripts/setup installs it): the board cannot be checked");
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("state.json");
    let report = dir.path().join("report.json");
    let game = format!(
        "{DRILL} gameday {POOL_B} --seed 3 --free-ports --take-turn --scale 30 --board on \
         --time-limit 30 --state-file {} --json {} --html {}; echo GAME-DAY-EXITED $?; sleep 600",
        state.display(),
        report.display(),
        dir.path().join("report.html").display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "gd",
        "-x",
        "150",
        "-y",
        "45",
        &game,
    ]);
    let board = tmux.wait_for("gd:0", "DB pool usage", Duration::from_secs(240));
    for part in [" alerts ", " signals ", "DB pool usage", "breakers", "T+"] {
        assert!(board.contains(part), "the board lacks {part:?}:\n{board}");
    }
    // The facilitator's board in another terminal, without colour.
    let remote = format!(
        "NO_COLOR=1 {DRILL} gameday board --state-file {}; sleep 600",
        state.display()
    );
    tmux.run(&["new-window", "-t", "gd", &remote]);
    tmux.wait_for("gd:1", "DB pool usage", Duration::from_secs(30));
    tmux.wait_for("gd:0", " PAGE ", Duration::from_secs(180));
    let coloured = tmux.run(&["capture-pane", "-e", "-p", "-t", "gd:1"]);
    assert!(
        !coloured.contains("\u{1b}[31m") && !coloured.contains("\u{1b}[33m"),
        "NO_COLOR: no red or yellow on the facilitator's board"
    );
    // Acknowledged from the facilitator's board; the responder's board drops the page.
    tmux.run(&["send-keys", "-t", "gd:1", "a"]);
    let began = Instant::now();
    while tmux.screen("gd:0").contains("press a to acknowledge") {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the page stayed up after `a`"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // `q` on the game day's own board gives up: it reports and cleans up.
    tmux.run(&["send-keys", "-t", "gd:0", "q"]);
    let end = tmux.wait_for("gd:0", "GAME-DAY-EXITED", Duration::from_secs(120));
    assert!(end.contains("the responder gave up"), "{end}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the JSON report"))
            .expect("JSON");
    assert_eq!(report["outcome"]["outcome"], "gave-up");
    assert!(
        report["time_to_acknowledge_minutes"].as_f64().is_some(),
        "{report:#}"
    );
}
