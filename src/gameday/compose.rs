//! The runbooks' `docker compose` steps against a game-day stack.
//!
//! The runbooks write `docker compose logs rest-api --tail=50`, `docker compose
//! restart rest-api graph-api`, `docker compose exec redis redis-cli INFO stats`. On the
//! docker backend with the compose tool installed the stack is a compose project
//! (`stack::docker::compose_project`): the banner exports its file and name, the real
//! tool runs the lines as written, and the game day sees what it did in the engine's
//! events ([`observe_real_compose`]). Elsewhere (the local backend, or no compose
//! tool) `drill compose` takes the same arguments and asks the running game day to do
//! it through the stack's orchestrator; the game day records each one as an action of
//! the responder. Verbs: `ps`, `logs [--tail=N] [-f]`, `stop`,
//! `start`, `restart`, `up [-d]`, and `exec` into `redis` (`redis-cli …`) or
//! `postgres` (`psql …`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use harness::gameday::Controls;
use harness::observer::ActionKind;
use runbooks::ops::{Orchestrator, ServiceStatus};
use serde::{Deserialize, Serialize};
use wire::Service;

use super::control::Client;

/// One compose action, as the client sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeRequest {
    pub verb: String,
    pub services: Vec<String>,
    pub tail: Option<usize>,
    /// For `exec`: the command to run in the service.
    pub command: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComposeResponse {
    pub ok: bool,
    pub output: String,
}

impl ComposeResponse {
    fn ok(output: String) -> Self {
        Self { ok: true, output }
    }

    fn failed(output: impl Into<String>) -> Self {
        Self {
            ok: false,
            output: output.into(),
        }
    }
}

/// Carries compose actions out on the game day's stack.
pub struct Composer {
    pub orchestrator: Arc<dyn Orchestrator>,
    pub postgres_port: u16,
    pub redis_port: u16,
}

impl Composer {
    pub async fn run(&self, request: &ComposeRequest, controls: &Controls) -> ComposeResponse {
        let services = match parse_services(&request.services) {
            Ok(services) => services,
            Err(unknown) => return ComposeResponse::failed(unknown),
        };
        if matches!(request.verb.as_str(), "stop" | "restart") {
            // A restarted service forgets the requests it was asked.
            controls.catch_up().await;
        }
        let response = self.act(request, &services).await;
        if request.verb != "ps" || !services.is_empty() || response.ok {
            controls.record(ActionKind::Compose {
                verb: request.verb.clone(),
                services: request.services.clone(),
                outcome: if response.ok {
                    "done".to_owned()
                } else {
                    response
                        .output
                        .lines()
                        .next()
                        .unwrap_or("failed")
                        .to_owned()
                },
            });
        }
        response
    }

    async fn act(&self, request: &ComposeRequest, services: &[Service]) -> ComposeResponse {
        let all_or = |services: &[Service]| -> Vec<Service> {
            if services.is_empty() {
                Service::ALL.to_vec()
            } else {
                services.to_vec()
            }
        };
        let result = match request.verb.as_str() {
            "ps" => Ok(self.ps(&all_or(services)).await),
            "logs" => {
                self.logs(&all_or(services), request.tail.unwrap_or(100))
                    .await
            }
            "stop" | "start" | "restart" if services.is_empty() => Err(format!(
                "name the services to {}, as the runbook does",
                request.verb
            )),
            "stop" => self
                .orchestrator
                .stop(services)
                .await
                .map(|()| stopped(services, "Stopped"))
                .map_err(|e| e.to_string()),
            "start" => self
                .orchestrator
                .start(services)
                .await
                .map(|()| stopped(services, "Started"))
                .map_err(|e| e.to_string()),
            "restart" => self
                .orchestrator
                .restart(services)
                .await
                .map(|()| stopped(services, "Restarted"))
                .map_err(|e| e.to_string()),
            "up" => self.up(&all_or(services)).await,
            "exec" => self.exec(services, &request.command).await,
            other => Err(format!(
                "`{other}` is not a compose verb drill compose carries out (ps, logs, stop, start, restart, up, exec)"
            )),
        };
        match result {
            Ok(output) => ComposeResponse::ok(output),
            Err(error) => ComposeResponse::failed(error),
        }
    }

    async fn ps(&self, services: &[Service]) -> String {
        let mut out = format!("{:<30} {}\n", "SERVICE", "STATUS");
        for &service in services {
            let status = match self.orchestrator.status(service).await {
                Ok(ServiceStatus::Running) => "running".to_owned(),
                Ok(ServiceStatus::Paused) => "paused".to_owned(),
                Ok(ServiceStatus::Stopped) => "exited (stopped)".to_owned(),
                Ok(ServiceStatus::Exited { code, oom_killed }) => format!(
                    "exited ({}){}",
                    code.map_or_else(|| "?".to_owned(), |c| c.to_string()),
                    if oom_killed { ", OOM killed" } else { "" }
                ),
                Err(error) => format!("unknown: {error}"),
            };
            out.push_str(&format!("{:<30} {status}\n", service.name()));
        }
        out
    }

    async fn logs(&self, services: &[Service], tail: usize) -> Result<String, String> {
        let mut out = String::new();
        let width = services.iter().map(|s| s.name().len()).max().unwrap_or(0);
        for &service in services {
            let lines = self
                .orchestrator
                .logs(service, tail)
                .await
                .map_err(|e| e.to_string())?;
            for line in lines {
                out.push_str(&format!("{:<width$}  | {line}\n", service.name()));
            }
        }
        Ok(out)
    }

    async fn up(&self, services: &[Service]) -> Result<String, String> {
        let mut down = Vec::new();
        for &service in services {
            if !matches!(
                self.orchestrator.status(service).await,
                Ok(ServiceStatus::Running)
            ) {
                down.push(service);
            }
        }
        if down.is_empty() {
            return Ok("everything is running\n".to_owned());
        }
        self.orchestrator
            .start(&down)
            .await
            .map_err(|e| e.to_string())?;
        Ok(stopped(&down, "Started"))
    }

    async fn exec(&self, services: &[Service], command: &[String]) -> Result<String, String> {
        let [service] = services else {
            return Err("exec takes one service and its command".to_owned());
        };
        let Some((program, args)) = command.split_first() else {
            return Err(format!("exec {service}: give the command to run"));
        };
        let mut process = match (service, program.as_str()) {
            (Service::Redis, "redis-cli") => {
                let mut p = tokio::process::Command::new("redis-cli");
                p.args(["-h", "127.0.0.1", "-p", &self.redis_port.to_string()]);
                p
            }
            (Service::Postgres, "psql") => {
                let mut p = tokio::process::Command::new("psql");
                p.args(["-h", "127.0.0.1", "-p", &self.postgres_port.to_string()])
                    .args(["-U", "musicdb_user", "-d", "musicdb"]);
                p
            }
            _ => {
                return Err(format!(
                    "exec into {service} is not carried out here: only `exec redis redis-cli …` and \
                     `exec postgres psql …` are (the twin's services are not shells); run the \
                     command from your own shell against the stack's addresses"
                ));
            }
        };
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            process
                .args(args)
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .map_err(|_| format!("{program} did not finish within 60 s"))?
        .map_err(|e| format!("running {program}: {e} (is it installed?)"))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

fn stopped(services: &[Service], done: &str) -> String {
    services
        .iter()
        .map(|s| format!("{done} {}\n", s.name()))
        .collect()
}

fn parse_services(names: &[String]) -> Result<Vec<Service>, String> {
    names
        .iter()
        .map(|name| {
            name.parse::<Service>().map_err(|_| {
                let known: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "no such service: {name} (the stack's services: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// `drill compose`: the runbooks' `docker compose` steps against a running game day.
///
/// Takes what the runbooks give `docker compose`: `ps`, `logs SERVICE… [--tail=N]
/// [-f]`, `stop|start|restart SERVICE…`, `up [-d]`, `exec redis redis-cli …`,
/// `exec postgres psql …`. Paste `docker() { if [ "$1" = compose ]; then shift; drill
/// compose "$@"; else command docker "$@"; fi; }` into a shell to run the runbooks'
/// lines as written. The game day records each action.
#[derive(Args)]
#[command(disable_help_flag = false)]
pub struct ComposeArgs {
    /// The game day's control surface (default: $DRILL_GAMEDAY, else its state file).
    #[arg(long, env = "DRILL_GAMEDAY")]
    gameday: Option<String>,
    /// The game day's state file (default: the runtime directory's gameday.json).
    #[arg(long)]
    state_file: Option<std::path::PathBuf>,
    /// The verb and its arguments, as given to `docker compose`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    words: Vec<String>,
}

/// Parses `docker compose` words into a request, and whether to follow (`-f`).
pub fn parse_words(words: &[String]) -> anyhow::Result<(ComposeRequest, bool)> {
    let mut words = words.iter();
    let mut request = ComposeRequest::default();
    let mut follow = false;
    // Global options before the verb (`-f FILE`, `-p NAME`) name compose files and
    // projects: the game day has one stack.
    let verb = loop {
        match words.next().map(String::as_str) {
            Some("-f" | "--file" | "-p" | "--project-name") => {
                words.next();
            }
            Some(word) if word.starts_with('-') => {}
            Some(word) => break word.to_owned(),
            None => anyhow::bail!("give a compose verb: ps, logs, stop, start, restart, up, exec"),
        }
    };
    request.verb = verb;
    while let Some(word) = words.next() {
        if request.verb == "exec" && !request.services.is_empty() {
            request.command.push(word.clone());
            request.command.extend(words.by_ref().cloned());
            break;
        }
        match word.as_str() {
            "-f" | "--follow" if request.verb == "logs" => follow = true,
            "--tail" | "-n" => {
                let n = words.next().context("--tail needs a number")?;
                request.tail = Some(
                    n.parse()
                        .with_context(|| format!("--tail {n}: not a number"))?,
                );
            }
            w if w.starts_with("--tail=") => {
                let n = &w["--tail=".len()..];
                request.tail = Some(n.parse().with_context(|| format!("{w}: not a number"))?);
            }
            w if w.starts_with('-') => {} // -d, -T, --no-deps: no meaning here
            service => request.services.push(service.to_owned()),
        }
    }
    Ok((request, follow))
}

/// Runs `drill compose`; exit status 1 when the action failed.
pub async fn run(args: ComposeArgs) -> anyhow::Result<bool> {
    let (request, follow) = parse_words(&args.words)?;
    let client = Client::find(args.gameday.as_deref(), args.state_file.as_deref())?;
    let response = client.compose(&request).await?;
    print!("{}", response.output);
    if !response.ok {
        return Ok(false);
    }
    if follow {
        follow_logs(&client, request, response.output).await?;
    }
    Ok(true)
}

/// `logs -f`: prints what is new every second until Ctrl-C.
async fn follow_logs(
    client: &Client,
    mut request: ComposeRequest,
    first: String,
) -> anyhow::Result<()> {
    request.tail = Some(200);
    let mut last: Vec<String> = first.lines().map(str::to_owned).collect();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let response = client.compose(&request).await?;
        let lines: Vec<String> = response.output.lines().map(str::to_owned).collect();
        // Where the previous batch's last line is in this one; what follows is new.
        let start = last
            .last()
            .and_then(|tail| lines.iter().rposition(|l| l == tail))
            .map_or(0, |i| i + 1);
        for line in &lines[start..] {
            println!("{line}");
        }
        last = lines;
    }
}

const INDENT: &str = "\n                        ";

/// Where the stack is a compose project the real tool can act on: how to point the
/// tool at it and run the runbooks' `docker compose …` lines as written.
pub fn real_compose_banner(stack: &stack::Stack) -> Option<String> {
    let project = stack.as_docker()?.compose_project();
    project.hashed_by.as_ref()?;
    let exports: Vec<String> = project
        .env()
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    Some(format!(
        "the stack is the compose project {}; in the responder's shell:{INDENT}\
         export {}{INDENT}\
         docker() {{ if [ \"$1\" = compose ]; then shift; docker-compose \"$@\"; else command docker \"$@\"; fi; }}{INDENT}\
         then the runbooks' `docker compose …` lines run through docker-compose as written",
        project.name,
        exports.join(" ")
    ))
}

/// The game day's line where the real tool cannot act on the stack: `drill compose`.
pub fn drill_compose_banner() -> String {
    format!(
        "no compose project here: `drill compose <verb> <service>` takes the \
         runbooks' arguments; to run their lines as written, paste:{INDENT}\
         docker() {{ if [ \"$1\" = compose ]; then shift; drill compose \"$@\"; else command docker \"$@\"; fi; }}"
    )
}

/// On a docker stack that is a compose project, records what the responder does to
/// its containers through the real compose tool (or plain `docker`), as the engine
/// reports it: stop, start, restart, exec. `None` where there is no such project.
pub fn observe_real_compose(
    stack: &stack::Stack,
    controls: Controls,
) -> Option<tokio::task::JoinHandle<()>> {
    let docker = stack.as_docker()?;
    docker.compose_project().hashed_by.as_ref()?;
    let mut seen =
        stack::docker::seen_actions::watch(docker.docker().clone(), docker.run_id().to_owned());
    Some(tokio::spawn(async move {
        // Unlike `drill compose`, nothing reads a service's recent requests before the
        // tool restarts it: those since the observer's last look (a second or so) are
        // not seen.
        while let Some(action) = seen.recv().await {
            controls.record(ActionKind::Compose {
                verb: action.verb.to_owned(),
                services: vec![action.service],
                outcome: match action.command {
                    Some(command) => format!("ran `{command}` (seen by the engine)"),
                    None => "done (seen by the engine)".to_owned(),
                },
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_runbooks_compose_lines_parse_as_docker_compose_reads_them() {
        let (request, follow) = parse_words(&words("logs rest-api --tail=50")).unwrap();
        assert_eq!(
            (request.verb.as_str(), request.tail, follow),
            ("logs", Some(50), false)
        );
        assert_eq!(request.services, ["rest-api"]);
        let (request, follow) = parse_words(&words("logs scraper-mixesdb -f")).unwrap();
        assert!(follow && request.services == ["scraper-mixesdb"]);
        let (request, _) = parse_words(&words("restart rest-api graph-api")).unwrap();
        assert_eq!(request.services, ["rest-api", "graph-api"]);
        let (request, _) = parse_words(&words("exec redis redis-cli INFO stats")).unwrap();
        assert_eq!(request.services, ["redis"]);
        assert_eq!(request.command, ["redis-cli", "INFO", "stats"]);
        let (request, _) =
            parse_words(&words("-f docker-compose.yml -f workers.yml up -d")).unwrap();
        assert_eq!(request.verb, "up");
        assert!(request.services.is_empty());
        assert!(parse_words(&words("--tail=5")).is_err());
        assert!(
            parse_services(&words("rest-api nosuch"))
                .unwrap_err()
                .contains("no such service: nosuch")
        );
    }
}
