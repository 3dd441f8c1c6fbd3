//! A person's actions on a stack's containers, read from the engine's events.
//!
//! A responder on a game day runs the runbooks' `docker compose stop|start|restart|
//! exec …` lines through the real compose tool (`super::compose_project`), which
//! talks to the engine directly; the engine's events are where the stack sees them.
//! [`watch`] follows the events of one run's containers and turns them into actions:
//! a `restart` (the engine reports kill, die, stop, start, restart in a burst) is one
//! restart; a stop or a start on its own is itself; an exec is an exec with its
//! command. Events of the harness's own actions are left out
//! (`super::own_actions`); pauses, kills and OOM kills are the faults' and are not
//! compose verbs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::EventMessage;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::engine::{LABEL_RUN, LABEL_SERVICE};
use super::own_actions;

/// A burst of one container's events ends after this long without another.
const BURST_GAP: Duration = Duration::from_secs(2);

/// One action a person took on a service's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenAction {
    /// The compose service (`rest-api`).
    pub service: String,
    /// `stop`, `start`, `restart` or `exec`.
    pub verb: &'static str,
    /// For an exec: its command line.
    pub command: Option<String>,
    pub at: SystemTime,
}

/// Follows the engine's events of run `run_id`'s containers from now on, sending each
/// action a person took; ends when the receiver is dropped or the engine's stream ends.
pub fn watch(docker: Docker, run_id: String) -> mpsc::UnboundedReceiver<SeenAction> {
    let (send, receive) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let options = bollard::query_parameters::EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(HashMap::from([
                ("type".to_owned(), vec!["container".to_owned()]),
                ("label".to_owned(), vec![format!("{LABEL_RUN}={run_id}")]),
            ])),
        };
        let mut events = docker.events(Some(options));
        let mut bursts = Bursts::default();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let seen = tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => bursts.add(&event),
                    _ => break,
                },
                _ = tick.tick() => bursts.ended(Instant::now()),
            };
            for action in seen {
                if send.send(action).is_err() {
                    return;
                }
            }
        }
    });
    receive
}

/// Lifecycle events per container until their burst ends.
#[derive(Default)]
struct Bursts {
    open: BTreeMap<String, Burst>,
}

struct Burst {
    service: String,
    verbs: Vec<(&'static str, SystemTime)>,
    last: Instant,
}

impl Bursts {
    /// Takes one event in; an exec is an action at once.
    fn add(&mut self, event: &EventMessage) -> Vec<SeenAction> {
        let Some(actor) = &event.actor else {
            return Vec::new();
        };
        let attributes = actor.attributes.clone().unwrap_or_default();
        let (Some(container), Some(service)) =
            (attributes.get("name"), attributes.get(LABEL_SERVICE))
        else {
            return Vec::new();
        };
        let at = event_time(event);
        let action = event.action.as_deref().unwrap_or_default();
        if let Some(command) = action.strip_prefix("exec_start: ") {
            let own = attributes
                .get("execID")
                .is_some_and(|id| own_actions::is_own_exec(id));
            return if own {
                Vec::new()
            } else {
                vec![SeenAction {
                    service: service.clone(),
                    verb: "exec",
                    command: Some(command.trim().to_owned()),
                    at,
                }]
            };
        }
        let verb = match action {
            "stop" => "stop",
            "start" => "start",
            "restart" => "restart",
            _ => return Vec::new(),
        };
        if own_actions::is_own(container, at) {
            return Vec::new();
        }
        let burst = self.open.entry(container.clone()).or_insert_with(|| Burst {
            service: service.clone(),
            verbs: Vec::new(),
            last: Instant::now(),
        });
        burst.verbs.push((verb, at));
        burst.last = Instant::now();
        Vec::new()
    }

    /// The actions of the bursts that have ended by `now`.
    fn ended(&mut self, now: Instant) -> Vec<SeenAction> {
        let done: Vec<String> = self
            .open
            .iter()
            .filter(|(_, burst)| now.duration_since(burst.last) >= BURST_GAP)
            .map(|(container, _)| container.clone())
            .collect();
        let mut actions = Vec::new();
        for container in done {
            let Some(burst) = self.open.remove(&container) else {
                continue;
            };
            actions.extend(burst.actions());
        }
        actions
    }
}

impl Burst {
    fn actions(self) -> Vec<SeenAction> {
        let action = |verb, at| SeenAction {
            service: self.service.clone(),
            verb,
            command: None,
            at,
        };
        if let Some(&(_, at)) = self.verbs.iter().find(|(verb, _)| *verb == "restart") {
            return vec![action("restart", at)];
        }
        self.verbs
            .iter()
            .map(|&(verb, at)| action(verb, at))
            .collect()
    }
}

fn event_time(event: &EventMessage) -> SystemTime {
    match (event.time_nano, event.time) {
        (Some(nanos), _) => UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64),
        (None, Some(seconds)) => UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64),
        (None, None) => SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(action: &str, container: &str) -> EventMessage {
        EventMessage {
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("0".into()),
                attributes: Some(HashMap::from([
                    ("name".to_owned(), container.to_owned()),
                    (LABEL_SERVICE.to_owned(), "rest-api".to_owned()),
                    ("execID".to_owned(), "e1".to_owned()),
                ])),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_restarts_burst_is_one_restart_and_a_lone_stop_is_a_stop() {
        let mut bursts = Bursts::default();
        for action in ["kill", "die", "stop", "start", "restart"] {
            assert!(bursts.add(&event(action, "c-rest-api-1")).is_empty());
        }
        assert!(bursts.ended(Instant::now()).is_empty(), "the burst goes on");
        let later = Instant::now() + BURST_GAP;
        let actions = bursts.ended(later);
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0].verb, "restart");
        assert_eq!(actions[0].service, "rest-api");

        for action in ["kill", "die", "stop"] {
            bursts.add(&event(action, "c-rest-api-1"));
        }
        let actions = bursts.ended(Instant::now() + BURST_GAP);
        assert_eq!(actions.iter().map(|a| a.verb).collect::<Vec<_>>(), ["stop"]);
    }

    #[test]
    fn an_exec_is_seen_at_once_with_its_command() {
        let mut bursts = Bursts::default();
        let seen = bursts.add(&event("exec_start: redis-cli INFO stats", "c-redis-1"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].verb, "exec");
        assert_eq!(seen[0].command.as_deref(), Some("redis-cli INFO stats"));
    }
}
