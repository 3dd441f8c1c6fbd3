//! A stand-in for `drill twin <service>`: serves `/health` and the chaos surface only.
//!
//! The harness's own tests boot stacks with this program as the twin binary, so the
//! process machinery (boot, readiness, orchestration, reset, teardown, reaping) is
//! tested on its own, whatever state the real twin services are in. It honours the
//! same contract as the real ones: configured by `wire::env` variables, ready when
//! `GET /chaos` answers, stops on SIGTERM, exits when `DRILL_PARENT_PID` is gone.
//!
//! Extra, for tests: `GET /stub` returns the service name, how many chaos resets it has
//! received, and the twin variables of its environment.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone)]
struct Stub {
    service: String,
    resets: Arc<AtomicU64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let service = match args.as_slice() {
        [_, twin, service] if twin == "twin" => service.clone(),
        _ => {
            eprintln!("usage: stack-stub-twin twin <service>");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(error) = runtime.block_on(run(service)) {
        eprintln!("stub-twin: {error}");
        std::process::exit(1);
    }
}

async fn run(service: String) -> Result<(), String> {
    let addr = |name: &str| -> Result<Option<SocketAddr>, String> {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().map_err(|e| format!("{name}={v}: {e}")))
            .transpose()
    };
    let chaos = addr("DRILL_CHAOS_ADDR")?.ok_or("DRILL_CHAOS_ADDR is not set")?;
    let listen = addr("LISTEN_ADDR")?;
    let stub = Stub {
        service: service.clone(),
        resets: Arc::default(),
    };
    let chaos_app = Router::new()
        .route("/chaos", get(|| async { Json(json!({})) }))
        .route("/chaos/reset", post(reset))
        .route("/stub", get(info))
        .with_state(stub.clone());
    serve(chaos, chaos_app).await?;
    if let Some(listen) = listen {
        let api = Router::new()
            .route(
                "/health",
                get(|State(s): State<Stub>| async move {
                    Json(json!({"status": "healthy", "service": s.service, "stub": true}))
                }),
            )
            .route("/stub", get(info))
            .with_state(stub);
        serve(listen, api).await?;
    }
    println!("stub-twin {service}: ready (chaos {chaos}, api {listen:?})");
    if let Some(parent) = std::env::var("DRILL_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                if nix::sys::signal::kill(nix::unistd::Pid::from_raw(parent), None).is_err() {
                    println!("stub-twin: parent {parent} is gone; exiting");
                    std::process::exit(0);
                }
            }
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    term.recv().await;
    println!("stub-twin {service}: SIGTERM, stopping");
    Ok(())
}

async fn serve(addr: SocketAddr, app: Router) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

async fn reset(State(stub): State<Stub>) -> StatusCode {
    stub.resets.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn info(State(stub): State<Stub>) -> Json<Value> {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("DRILL_")
                || k.starts_with("POSTGRES_")
                || k.ends_with("_URL")
                || k == "LISTEN_ADDR"
        })
        .collect();
    Json(json!({
        "service": stub.service,
        "resets": stub.resets.load(Ordering::SeqCst),
        "env": env,
    }))
}
