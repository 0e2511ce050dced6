//! The control socket: live statistics, classifier changes, log levels and
//! shutdown for a running engine, one JSON object per line (see
//! `docs/control.md`). [`server`] does the I/O on its own thread;
//! [`Handler::handle`] applies requests on the engine's main thread, one at
//! a time and in arrival order, so state changes are serialized.

pub mod protocol;
pub mod server;

use std::time::Instant;

use serde_json::{json, Value};

use self::{
    protocol::{Command, ControlError, Response},
    server::Incoming,
};
use crate::{stats::Snapshot, Engine};

/// What a handled request asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Keep running.
    Continue,
    /// Stop the engine (the answer has been sent).
    Shutdown,
}

/// Replaces the process's log filter with new `tracing` directives.
pub type SetLog = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// Applies requests to an engine; keeps what rates need between reads.
pub struct Handler {
    started: Instant,
    last_stats: Option<(Instant, Snapshot)>,
    set_log: SetLog,
}

impl Handler {
    /// A handler; `set_log` replaces the process's log filter.
    #[must_use]
    pub fn new(set_log: SetLog) -> Self {
        Self { started: Instant::now(), last_stats: None, set_log }
    }

    /// Apply one request and build its answer.
    pub fn handle(&mut self, engine: &Engine, inc: &Incoming) -> (Response, After) {
        let cmd = &inc.request.cmd;
        if cmd.changes_state() {
            tracing::info!(uid = inc.peer.uid, pid = inc.peer.pid, command = ?cmd, "control: state change");
        }
        let mut after = After::Continue;
        let outcome = match cmd {
            Command::Status => Ok(self.status(engine)),
            Command::Stats => Ok(self.stats(engine)),
            Command::ClassifierList => classifier_list(engine),
            Command::ClassifierAdd { vlan, mac, pass } => {
                let action = if *pass { ringwire_bpf::Action::Pass } else { ringwire_bpf::Action::Drop };
                need_classifier(engine).and_then(|()| {
                    engine
                        .classifier_set(ringwire_bpf::ClassKey { vlan: *vlan, mac: *mac }, action)
                        .map(|ports| json!({ "ports": ports }))
                        .map_err(|e| ControlError::internal(crate::consumer::error_chain(&e)))
                })
            }
            Command::ClassifierDel { vlan, mac } => need_classifier(engine).and_then(|()| {
                match engine.classifier_remove(ringwire_bpf::ClassKey { vlan: *vlan, mac: *mac }) {
                    Ok(ports) if ports.is_empty() => Err(ControlError::not_found(format!(
                        "args: no classifier entry for vlan {}, mac {}",
                        vlan.map_or_else(|| "untagged".into(), |v| v.to_string()),
                        crate::stats::format_mac(*mac)
                    ))),
                    Ok(ports) => Ok(json!({ "ports": ports })),
                    Err(e) => Err(ControlError::internal(crate::consumer::error_chain(&e))),
                }
            }),
            Command::LogLevel { filter } => {
                (self.set_log)(filter).map(|()| json!({ "filter": filter })).map_err(ControlError::internal)
            }
            Command::Shutdown => {
                after = After::Shutdown;
                Ok(json!({ "stopping": true }))
            }
        };
        (Response::new(Some(inc.request.id), outcome), after)
    }

    fn status(&self, engine: &Engine) -> Value {
        let config = engine.current_config();
        let snap = engine.snapshot();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "workers": snap.workers.iter().map(|w| json!({ "index": w.index, "core": w.core })).collect::<Vec<_>>(),
            "ports": config.ports.iter().map(|p| json!({
                "name": p.display_name(), "uri": p.uri, "filter": p.filter,
            })).collect::<Vec<_>>(),
            "consumers": config.consumers.iter().map(|c| json!({
                "name": c.name, "kind": c.kind, "filter": c.filter.as_ref().map(crate::config::FilterList::display),
            })).collect::<Vec<_>>(),
            "fanout": config.engine.fanout,
        })
    }

    fn stats(&mut self, engine: &Engine) -> Value {
        let now = Instant::now();
        let snap = engine.snapshot();
        let rates = self.last_stats.as_ref().map(|(t, prev)| {
            let dt = now.duration_since(*t).as_secs_f64().max(1e-9);
            let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
            json!({
                "interval_s": dt,
                "ports": snap.ports.iter().zip(&prev.ports).map(|(p, q)| json!({
                    "name": p.name,
                    "received_per_s": rate(p.received, q.received),
                    "bits_per_s": rate(p.bytes, q.bytes) * 8.0,
                    "kernel_drops_per_s": rate(p.kernel_drops, q.kernel_drops),
                })).collect::<Vec<_>>(),
                "consumers": snap.consumers.iter().zip(&prev.consumers).map(|(c, d)| json!({
                    "name": c.name,
                    "delivered_per_s": rate(c.delivered, d.delivered),
                    "queue_dropped_per_s": rate(c.queue_dropped, d.queue_dropped),
                })).collect::<Vec<_>>(),
            })
        });
        let v = json!({ "counters": snap, "rates": rates });
        self.last_stats = Some((now, snap));
        v
    }
}

fn need_classifier(engine: &Engine) -> Result<(), ControlError> {
    if engine.runs_classifier() {
        Ok(())
    } else {
        Err(ControlError::conflict("no port runs the classifier (set filter = \"classifier\" on a port)"))
    }
}

fn classifier_list(engine: &Engine) -> Result<Value, ControlError> {
    need_classifier(engine)?;
    let snap = engine.snapshot();
    let config = engine.current_config();
    let runs = |name: &str| config.ports.iter().any(|p| p.display_name() == name && p.uses_classifier());
    Ok(json!({
        "default": config.classifier.default,
        "ports": snap.ports.iter().filter(|p| runs(&p.name))
            .map(|p| json!({ "name": p.name, "entries": p.classifier })).collect::<Vec<_>>(),
    }))
}
