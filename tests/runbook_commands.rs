//! Conformance of the twin to its specification: every command of the runbooks that
//! talks to the stack works against it, as written.
//!
//! The specification is `fixtures/RUNBOOKS.md` (a copy of the SongNodes operations
//! runbooks, the project's input; CI does not need the steering repository). From its
//! ```` ```bash ```` blocks this test extracts
//!
//! - every `psql -h localhost -p 5433 -U musicdb_user -d musicdb << EOF … EOF` statement,
//!   and runs it as the user and database the command names, on the stack's port, inside
//!   a transaction that is rolled back (the `UPDATE`s must not disturb the stack). The
//!   `pg_terminate_backend` statement selects backends by how long they have run; it runs
//!   for real, but only after the same query without the call returned no row;
//! - every `curl` against `localhost:8020`, `:8022` or `:8024` (also inside `watch '…'`),
//!   with its method, path, headers and body, and sends it to the stack's service: it must
//!   answer 2xx; piped to `jq`, the answer must be JSON and the filter's path must exist
//!   (`.`, `.field`, `'.[] | {a, b}'`: every element has those keys); piped to `grep X`,
//!   the text must contain X.
//!
//! Commands are run in the order the text gives them, on one stack whose DLQ is flooded
//! (as during the DLQ Overflow incident), so that listings have something to list even
//! after the runbook's own replays.
//!
//! Skipped, because they are not HTTP or SQL against the stack (the orchestrator and host
//! facades, and the drills, cover them):
//! - `docker …` / `docker compose …` (stop, start, restart, logs, ps, stats, exec, inspect,
//!   system df/prune, network inspect, `-f … up -d`): service orchestration;
//! - `df -h`, `du -sh …`, `free -h`, `dmesg`: host inspection;
//! - `truncate …`, `find /backups … -delete`, `cat > /etc/docker/daemon.json << EOF`,
//!   `systemctl restart docker`: host maintenance;
//! - `sleep N`, `echo …`, and `watch` around anything but a stack `curl`: pacing;
//! - `curl -I https://api.spotify.com/…`, `https://musicbrainz.org/…`,
//!   `https://ws.audioscrobbler.com/…`, `https://www.1001tracklists.com`: external sites,
//!   which the twin replaces with provider stand-ins behind the gateway.
//!
//! Any other command fails the test as unclassified, so a command added to the text is
//! either checked or consciously skipped. The counts of what was found are asserted
//! against a count made by hand, so a parsing regression cannot make the test vacuous.

mod common;

use std::fmt;
use std::time::Duration;

use harness::Fault;
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wire::api::ErrorKind;

const SPEC: &str = include_str!("../fixtures/RUNBOOKS.md");

/// Counted by hand in fixtures/RUNBOOKS.md: `psql … << EOF` blocks (DLQ Overflow 2,
/// Circuit Breaker Storm 2, Low Success Rate 3, Data Quality 8, Connection Pool 6,
/// Scraper Stalled 1).
const EXPECTED_SQL: usize = 22;
/// Counted by hand: `curl` commands against :8020/:8022/:8024, `watch '…'` included
/// (DLQ Overflow 18, Circuit Breaker Storm 12, Low Success Rate 16, API Gateway 2).
const EXPECTED_HTTP: usize = 48;
/// Counted by hand: `curl` commands to external sites (DLQ Overflow 2, Circuit Breaker
/// Storm 3, Scraper Stalled 1, API Gateway 2).
const EXPECTED_EXTERNAL: usize = 8;

/// The documented ports of the services the runbooks `curl`.
const ENRICHMENT_PORT: u16 = 8020;
const GATEWAY_PORT: u16 = 8022;
const DLQ_PORT: u16 = 8024;
/// The documented PostgreSQL port.
const POSTGRES_PORT: u16 = 5433;

/// One command of the runbook text, where it stands.
#[derive(Clone, Debug, PartialEq)]
struct Command {
    runbook: String,
    /// 1-based line in fixtures/RUNBOOKS.md where the command starts.
    line: usize,
    /// The command as written (continuation lines joined).
    text: String,
    kind: Kind,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runbook '{}', fixtures/RUNBOOKS.md:{}: `{}`",
            self.runbook, self.line, self.text
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Sql(Psql),
    Http(Curl),
    Skipped(&'static str),
}

/// `psql -h HOST -p PORT -U USER -d DB << EOF … EOF`.
#[derive(Clone, Debug, PartialEq)]
struct Psql {
    host: String,
    port: u16,
    user: String,
    database: String,
    sql: String,
}

/// `curl [-s] [-X METHOD] [-H HEADER]… [-d BODY] http://localhost:PORT/PATH [| jq F | grep X]`.
#[derive(Clone, Debug, PartialEq)]
struct Curl {
    method: String,
    port: u16,
    /// Path and query, e.g. `/dlq/messages?limit=10`.
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    check: Check,
}

/// What the command's pipeline expects of the answer.
#[derive(Clone, Debug, PartialEq)]
enum Check {
    /// No pipe: the answer only has to be 2xx.
    Status,
    /// `| jq [FILTER]`; an absent filter is `.`.
    Jq(String),
    /// `| grep PATTERN`.
    Grep(String),
}

/// A shell word or a pipe.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Pipe,
}

/// Splits a command line like a POSIX shell does, as far as the runbooks need: words,
/// single and double quotes, backslash escapes, and `|` outside quotes.
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in {line}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in {line}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            '|' => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
                tokens.push(Token::Pipe);
            }
            c if c.is_whitespace() => {
                if in_word {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        tokens.push(Token::Word(word));
    }
    Ok(tokens)
}

/// The stages of a pipeline, each a list of words.
fn pipeline(line: &str) -> Result<Vec<Vec<String>>, String> {
    let mut stages = vec![Vec::new()];
    for token in tokenize(line)? {
        match token {
            Token::Word(w) => stages.last_mut().expect("one stage").push(w),
            Token::Pipe => stages.push(Vec::new()),
        }
    }
    if stages.iter().any(Vec::is_empty) {
        return Err(format!("empty pipeline stage in {line}"));
    }
    Ok(stages)
}

/// Classifies one logical command line (heredocs are handled by [`extract`]).
fn classify(line: &str) -> Result<Kind, String> {
    let stages = pipeline(line)?;
    let first = &stages[0];
    match first[0].as_str() {
        "curl" => curl(&stages),
        "watch" => {
            // `watch -n 30 'COMMAND'`: the command is the last word.
            let inner = first.last().expect("a word");
            if first.len() < 2 || stages.len() > 1 {
                return Err(format!("unexpected watch form: {line}"));
            }
            match pipeline(inner)?[0][0].as_str() {
                "curl" => classify(inner),
                _ => Ok(Kind::Skipped(
                    "pacing: watch around a host or container command",
                )),
            }
        }
        "docker" => Ok(Kind::Skipped("service orchestration")),
        "df" | "du" | "free" | "dmesg" => Ok(Kind::Skipped("host inspection")),
        "truncate" | "find" | "systemctl" | "cat" => Ok(Kind::Skipped("host maintenance")),
        "sleep" | "echo" => Ok(Kind::Skipped("pacing")),
        other => Err(format!("unclassified command '{other}'")),
    }
}

fn curl(stages: &[Vec<String>]) -> Result<Kind, String> {
    let mut method = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut url = None;
    let mut head = false;
    let mut words = stages[0][1..].iter();
    while let Some(word) = words.next() {
        let mut value = |flag: &str| {
            words
                .next()
                .cloned()
                .ok_or_else(|| format!("curl {flag} without a value"))
        };
        match word.as_str() {
            "-s" | "--silent" => {}
            "-I" | "--head" => head = true,
            "-X" | "--request" => method = Some(value(word)?),
            "-H" | "--header" => {
                let header = value(word)?;
                let (name, val) = header
                    .split_once(':')
                    .ok_or_else(|| format!("header without a colon: {header}"))?;
                headers.push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "-d" | "--data" => body = Some(value(word)?),
            w if w.starts_with("http://") || w.starts_with("https://") => {
                url = Some(w.to_owned());
            }
            other => return Err(format!("unsupported curl option '{other}'")),
        }
    }
    let url = url.ok_or("curl without a URL")?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("bad URL {url}: {e}"))?;
    let port = parsed.port_or_known_default().unwrap_or(0);
    if parsed.host_str() != Some("localhost")
        || ![ENRICHMENT_PORT, GATEWAY_PORT, DLQ_PORT].contains(&port)
    {
        return Ok(Kind::Skipped("external site"));
    }
    let check = match stages.get(1).map(|s| (s[0].as_str(), &s[1..])) {
        None => Check::Status,
        Some(("jq", [])) => Check::Jq(".".to_owned()),
        Some(("jq", [filter])) => Check::Jq(filter.clone()),
        Some(("grep", [pattern])) => Check::Grep(pattern.clone()),
        Some((program, args)) => {
            return Err(format!("unsupported pipe into {program} {args:?}"));
        }
    };
    if stages.len() > 2 {
        return Err("more than one pipe after curl".to_owned());
    }
    let method = match (method, head, &body) {
        (Some(m), _, _) => m,
        (None, true, _) => "HEAD".to_owned(),
        (None, false, Some(_)) => "POST".to_owned(),
        (None, false, None) => "GET".to_owned(),
    };
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    Ok(Kind::Http(Curl {
        method,
        port,
        path,
        headers,
        body,
        check,
    }))
}

fn psql(line: &str, sql: String) -> Result<Kind, String> {
    let stages = pipeline(line)?;
    let words = &stages[0];
    let mut flags = std::collections::BTreeMap::new();
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            flag @ ("-h" | "-p" | "-U" | "-d") => {
                let value = words
                    .get(i + 1)
                    .ok_or(format!("psql {flag} without a value"))?;
                flags.insert(flag.to_owned(), value.clone());
                i += 2;
            }
            w if w.starts_with("<<") => break,
            other => return Err(format!("unsupported psql option '{other}'")),
        }
    }
    let flag = |f: &str| flags.get(f).cloned().ok_or(format!("psql without {f}"));
    Ok(Kind::Sql(Psql {
        host: flag("-h")?,
        port: flag("-p")?
            .parse()
            .map_err(|e| format!("psql -p is not a port: {e}"))?,
        user: flag("-U")?,
        database: flag("-d")?,
        sql,
    }))
}

/// The heredoc delimiter of a line (`… << EOF`), if it has one.
fn heredoc(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("<<")?;
    let word = rest
        .trim()
        .trim_start_matches('-')
        .split_whitespace()
        .next()?;
    Some(word.trim_matches(|c| c == '\'' || c == '"').to_owned())
}

/// Every command of the ```bash blocks of `text`, or the reasons some could not be read.
fn extract(text: &str) -> (Vec<Command>, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    let mut runbook = String::from("(before the first runbook)");
    let mut in_bash = false;
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let trimmed = raw.trim();
        i += 1;
        if !in_bash {
            if let Some(name) = trimmed.strip_prefix("## Runbook: ") {
                runbook = name.to_owned();
            } else if trimmed.starts_with("## ") {
                runbook = trimmed.trim_start_matches("## ").to_owned();
            }
            if trimmed == "```bash" {
                in_bash = true;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            in_bash = false;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let start = i; // 1-based line of `raw`
        // Join continuation lines.
        let mut logical = trimmed.to_owned();
        while logical.ends_with('\\') && i < lines.len() {
            logical.pop();
            logical = format!("{} {}", logical.trim_end(), lines[i].trim());
            i += 1;
        }
        let mut body = None;
        if let Some(delimiter) = heredoc(&logical) {
            let mut sql = Vec::new();
            loop {
                match lines.get(i) {
                    Some(l) if l.trim() == delimiter => {
                        i += 1;
                        break;
                    }
                    Some(l) => {
                        sql.push(*l);
                        i += 1;
                    }
                    None => {
                        problems.push(format!(
                            "fixtures/RUNBOOKS.md:{start}: heredoc {delimiter} never ends"
                        ));
                        break;
                    }
                }
            }
            body = Some(sql.join("\n"));
        }
        let kind = match (logical.split_whitespace().next(), body) {
            (Some("psql"), Some(sql)) => psql(&logical, sql),
            (Some("psql"), None) => Err("psql without a heredoc".to_owned()),
            (_, _) => classify(&logical),
        };
        let text = logical.clone();
        match kind {
            Ok(kind) => commands.push(Command {
                runbook: runbook.clone(),
                line: start,
                text,
                kind,
            }),
            Err(why) => problems.push(format!(
                "runbook '{runbook}', fixtures/RUNBOOKS.md:{start}: `{text}`: {why}"
            )),
        }
    }
    (commands, problems)
}

/// Checks `value` against the jq filters the runbooks use.
fn check_jq(filter: &str, value: &Value) -> Result<(), String> {
    let filter = filter.trim();
    if filter == "." {
        return Ok(());
    }
    if let Some(rest) = filter.strip_prefix(".[]") {
        let keys = rest
            .trim()
            .strip_prefix('|')
            .map(str::trim)
            .and_then(|r| r.strip_prefix('{'))
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("unsupported jq filter '{filter}'"))?;
        let keys: Vec<&str> = keys.split(',').map(str::trim).collect();
        let items = value
            .as_array()
            .ok_or_else(|| format!("'{filter}' needs an array, got {}", excerpt(value)))?;
        if items.is_empty() {
            return Err(format!(
                "'{filter}' iterates an empty array: nothing to check"
            ));
        }
        for (n, item) in items.iter().enumerate() {
            for key in &keys {
                if item.get(key).is_none() {
                    return Err(format!("element {n} has no '{key}': {}", excerpt(item)));
                }
            }
        }
        return Ok(());
    }
    let path = filter
        .strip_prefix('.')
        .ok_or_else(|| format!("unsupported jq filter '{filter}'"))?;
    let mut here = value;
    for key in path.split('.') {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("unsupported jq filter '{filter}'"));
        }
        here = here
            .as_object()
            .and_then(|o| o.get(key))
            .ok_or_else(|| format!("no '{key}' in {}", excerpt(here)))?;
    }
    Ok(())
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// Runs one `psql` heredoc against the stack: as the user and database the command
/// names, on the stack's PostgreSQL, in a transaction that is rolled back.
async fn run_sql(psql: &Psql, postgres_port: u16) -> Result<(), String> {
    if psql.port != POSTGRES_PORT {
        return Err(format!(
            "connects to port {}, not the documented {POSTGRES_PORT}",
            psql.port
        ));
    }
    if psql.host != "localhost" {
        return Err(format!("connects to {}, not localhost", psql.host));
    }
    let url = format!(
        "postgres://{}@{}:{postgres_port}/{}",
        psql.user, psql.host, psql.database
    );
    let mut conn = PgConnection::connect(&url)
        .await
        .map_err(|e| format!("connecting as {} to {}: {e}", psql.user, psql.database))?;
    if psql.sql.contains("pg_terminate_backend(pid)") {
        // Terminates what it selects: make sure it selects nothing.
        let dry = psql.sql.replace("pg_terminate_backend(pid)", "pid");
        let dry = dry.trim().trim_end_matches(';');
        let selected: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(dry.to_owned()))
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("the selection of backends to terminate failed: {e}"))?;
        if !selected.is_empty() {
            return Err(format!(
                "would terminate backends {selected:?} of the stack; not run"
            ));
        }
    }
    let mut tx = conn.begin().await.map_err(|e| format!("BEGIN: {e}"))?;
    let outcome = sqlx::raw_sql(sqlx::AssertSqlSafe(psql.sql.clone()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await.map_err(|e| format!("ROLLBACK: {e}"))?;
    outcome
        .map(drop)
        .map_err(|e| format!("as {}: {e}", psql.user))
}

/// Sends one `curl` to the stack's service on the documented port's stand-in.
async fn run_http(
    curl: &Curl,
    http: &reqwest::Client,
    endpoints: &stack::Endpoints,
) -> Result<(), String> {
    let base = match curl.port {
        ENRICHMENT_PORT => &endpoints.enrichment,
        GATEWAY_PORT => &endpoints.gateway,
        DLQ_PORT => &endpoints.dlq,
        other => return Err(format!("no stack service for port {other}")),
    };
    let url = base
        .join(curl.path.trim_start_matches('/'))
        .map_err(|e| format!("joining {} onto {base}: {e}", curl.path))?;
    let method = reqwest::Method::from_bytes(curl.method.as_bytes())
        .map_err(|e| format!("method {}: {e}", curl.method))?;
    let mut request = http.request(method, url.clone());
    for (name, value) in &curl.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &curl.body {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{} {url}: {e}", curl.method))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{} {url}: reading the answer: {e}", curl.method))?;
    if !status.is_success() {
        return Err(format!(
            "{} {url} answered {status}: {}",
            curl.method,
            text.chars().take(300).collect::<String>()
        ));
    }
    match &curl.check {
        Check::Status => Ok(()),
        Check::Grep(pattern) => {
            if text.contains(pattern.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "the answer does not contain '{pattern}': {}",
                    text.chars().take(300).collect::<String>()
                ))
            }
        }
        Check::Jq(filter) => {
            let value: Value = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "jq needs JSON: {e}: {}",
                    text.chars().take(300).collect::<String>()
                )
            })?;
            check_jq(filter, &value).map_err(|e| format!("jq '{filter}': {e}"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stack_command_of_the_runbooks_works_against_the_twin() {
    let (commands, problems) = extract(SPEC);
    assert!(
        problems.is_empty(),
        "commands of fixtures/RUNBOOKS.md that could not be read or classified:\n{}",
        problems.join("\n")
    );
    let count = |f: fn(&Kind) -> bool| commands.iter().filter(|c| f(&c.kind)).count();
    let sql = count(|k| matches!(k, Kind::Sql(_)));
    let http = count(|k| matches!(k, Kind::Http(_)));
    let external = count(|k| matches!(k, Kind::Skipped("external site")));
    assert_eq!(
        (sql, http, external),
        (EXPECTED_SQL, EXPECTED_HTTP, EXPECTED_EXTERNAL),
        "(SQL statements, stack curls, external curls) found in fixtures/RUNBOOKS.md \
         differ from the count made by hand"
    );

    let stack = common::stack("runbook-commands", 60.0).await;
    // The DLQ Overflow incident: well over the 1000-message threshold, with every error
    // type, so that listings stay non-empty after the runbook's own replays (150).
    Fault::dlq_flood(1500)
        .with_mix([
            (ErrorKind::CircuitBreakerOpen, 10),
            (ErrorKind::Timeout, 4),
            (ErrorKind::InvalidData, 2),
            (ErrorKind::ApiRateLimit, 1),
        ])
        .inject(&stack)
        .await
        .expect("flooding the DLQ")
        .forget();
    let http_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let endpoints = stack.endpoints().clone();
    let config_before = config(stack.admin_pool()).await;

    let mut failures = Vec::new();
    for command in &commands {
        let outcome = match &command.kind {
            Kind::Sql(psql) => run_sql(psql, endpoints.postgres_port).await,
            Kind::Http(curl) => run_http(curl, &http_client, &endpoints).await,
            Kind::Skipped(_) => continue,
        };
        match (outcome, &command.kind) {
            (Ok(()), _) => eprintln!("ok: {command}"),
            (Err(why), Kind::Sql(psql)) => failures.push(format!(
                "{command}\n    SQL: {}\n    {why}",
                psql.sql.split_whitespace().collect::<Vec<_>>().join(" ")
            )),
            (Err(why), _) => failures.push(format!("{command}\n    {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runbook commands failed against the twin:\n{}",
        failures.len(),
        sql + http,
        failures.join("\n")
    );
    assert_eq!(
        config(stack.admin_pool()).await,
        config_before,
        "the runbooks' UPDATEs were rolled back: metadata_enrichment_config is as it was"
    );
    the_linters_routes_are_the_twins(&http_client, &endpoints).await;
}

/// `drill lint` checks endpoints against a table of the stack's routes; each of them
/// must be one the twin serves (it answers anything but its "no such endpoint" 404 or
/// a 405). Bodies are left out, so the POSTs that would act are refused with a 400;
/// the purge is of messages older than 1970.
async fn the_linters_routes_are_the_twins(client: &reqwest::Client, endpoints: &stack::Endpoints) {
    let mut unserved = Vec::new();
    for (port, service, routes) in runbooks::lint::schema::ROUTES {
        let base = match port {
            8020 => &endpoints.enrichment,
            8022 => &endpoints.gateway,
            8024 => &endpoints.dlq,
            8082 => &endpoints.rest_api,
            8084 => &endpoints.graph_api,
            other => panic!("the linter names port {other}, which the stack does not document"),
        };
        for (method, pattern) in routes {
            let path = pattern
                .replace("{provider}/{*path}", "spotify/v1/search?q=x&type=track")
                .replace("{date}", "1970-01-01")
                .replace("{id}", "1");
            let url = base
                .join(path.trim_start_matches('/'))
                .expect("a route joins");
            let method: reqwest::Method = method.parse().expect("an HTTP method");
            let response = client
                .request(method.clone(), url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{service} {method} {pattern}: {e}"));
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::METHOD_NOT_ALLOWED
                || body.contains("no such endpoint")
            {
                unserved.push(format!("{service} {method} {pattern}: {status} {body}"));
            }
        }
    }
    assert!(
        unserved.is_empty(),
        "routes of the linter's table that the twin does not serve:\n{}",
        unserved.join("\n")
    );
}

/// `metadata_enrichment_config` as text, row by row.
async fn config(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT c::text FROM metadata_enrichment_config AS c ORDER BY config_key")
        .fetch_all(pool)
        .await
        .expect("reading metadata_enrichment_config")
}

#[test]
fn commands_are_split_like_a_shell_splits_them() {
    let stages = pipeline(
        r#"curl http://localhost:8024/dlq/messages?limit=20 | jq '.[] | {track_id, error}'"#,
    )
    .unwrap();
    assert_eq!(
        stages,
        vec![
            vec!["curl", "http://localhost:8024/dlq/messages?limit=20"],
            vec!["jq", ".[] | {track_id, error}"],
        ]
    );
    let stages =
        pipeline(r#"watch -n 60 'curl -s http://localhost:8020/stats | jq ".cache_hit_rate"'"#)
            .unwrap();
    assert_eq!(
        stages[0][3],
        r#"curl -s http://localhost:8020/stats | jq ".cache_hit_rate""#
    );
    assert_eq!(
        tokenize(r#"a "b \"c\"" d\ e"#).unwrap(),
        vec![
            Token::Word("a".into()),
            Token::Word("b \"c\"".into()),
            Token::Word("d e".into()),
        ]
    );
    assert!(tokenize("echo 'open").is_err());
}

#[test]
fn curls_are_read_with_method_headers_body_and_check() {
    let kind = classify(
        r#"curl -X POST http://localhost:8024/dlq/replay/batch -H "Content-Type: application/json" -d '{"batch_size": 100}'"#,
    )
    .unwrap();
    assert_eq!(
        kind,
        Kind::Http(Curl {
            method: "POST".into(),
            port: 8024,
            path: "/dlq/replay/batch".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(r#"{"batch_size": 100}"#.into()),
            check: Check::Status,
        })
    );
    let Kind::Http(watched) =
        classify(r#"watch -n 30 'curl -s http://localhost:8024/dlq/stats | jq .total_messages'"#)
            .unwrap()
    else {
        panic!("a watched curl is a stack request");
    };
    assert_eq!(
        (watched.method.as_str(), watched.check),
        ("GET", Check::Jq(".total_messages".into()))
    );
    assert_eq!(
        classify("curl http://localhost:8022/metrics | grep error_rate").unwrap(),
        Kind::Http(Curl {
            method: "GET".into(),
            port: 8022,
            path: "/metrics".into(),
            headers: vec![],
            body: None,
            check: Check::Grep("error_rate".into()),
        })
    );
    assert_eq!(
        classify("curl -I https://api.spotify.com/v1/search").unwrap(),
        Kind::Skipped("external site")
    );
    assert!(
        classify("kubectl get pods").is_err(),
        "unknown commands are not skipped silently"
    );
    assert!(classify("curl http://localhost:8024/dlq/stats | jq . | less").is_err());
}

#[test]
fn heredocs_are_read_as_one_statement_and_other_heredocs_are_skipped() {
    let text = "## Runbook: Example\n\n```bash\n# comment\npsql -h localhost -p 5433 -U musicdb_user -d musicdb << EOF\nSELECT 1\nFROM tracks;\nEOF\n\ncat > /etc/x.json << EOF\n{\n  \"a\": 1\n}\nEOF\ncurl -X POST http://localhost:8020/admin/config/reload\n```\n";
    let (commands, problems) = extract(text);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(commands.len(), 3, "{commands:#?}");
    assert_eq!(commands[0].runbook, "Example");
    assert_eq!(commands[0].line, 5);
    assert_eq!(
        commands[0].kind,
        Kind::Sql(Psql {
            host: "localhost".into(),
            port: 5433,
            user: "musicdb_user".into(),
            database: "musicdb".into(),
            sql: "SELECT 1\nFROM tracks;".into(),
        })
    );
    assert_eq!(commands[1].kind, Kind::Skipped("host maintenance"));
    assert!(matches!(&commands[2].kind, Kind::Http(c) if c.method == "POST"));
}

#[test]
fn jq_paths_must_exist() {
    let health: Value = serde_json::json!({"status": "healthy", "api_clients": {"spotify": {}}});
    assert!(check_jq(".", &health).is_ok());
    assert!(check_jq(".api_clients", &health).is_ok());
    assert!(check_jq(".api_clients.spotify", &health).is_ok());
    assert!(check_jq(".cache_hit_rate", &health).is_err());
    let messages = serde_json::json!([{"track_id": 1, "error": "timeout"}, {"track_id": 2}]);
    assert!(check_jq(".[] | {track_id}", &messages).is_ok());
    assert!(check_jq(".[] | {track_id, error}", &messages).is_err());
    assert!(check_jq(".[] | {track_id}", &serde_json::json!([])).is_err());
    assert!(check_jq(".[] | {track_id}", &health).is_err());
    assert!(
        check_jq("map(.x)", &messages).is_err(),
        "unknown forms fail"
    );
}
