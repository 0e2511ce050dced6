//! The control socket: statistics, ports, consumers, filters, patches,
//! the classifier table, log levels and shutdown of a running engine, one
//! JSON object per line (see `docs/control.md`). [`server`] does the I/O on its own thread;
//! [`Handler::handle`] applies requests on the engine's main thread, one at
//! a time and in arrival order, so state changes are serialized.

pub mod protocol;
pub mod server;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use self::{
    protocol::{Command, ControlError, Request, Response},
    server::{ClientRef, Incoming, Peer},
};
use crate::{config::ConsumerKind, live::ChangeError, stats::Snapshot, Engine};

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

/// A log filter (`RUST_LOG` syntax: `info`, `ringwire_engine=debug,warn`)
/// parsed as tracing-subscriber parses it, each comma-separated directive
/// trimmed first: its parser slices a directive by the offsets of the
/// trimmed text, and panicked on one with leading spaces and a multi-byte
/// character (found by fuzzing `log.level`).
///
/// # Errors
/// Why the filter is not one.
pub fn parse_log_filter(text: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let directives: Vec<&str> = text.split(',').map(str::trim).collect();
    let text = directives.join(",");
    // A parser panic that remains is a refusal, not the engine's end.
    std::panic::catch_unwind(|| tracing_subscriber::EnvFilter::try_new(&text))
        .map_err(|_| format!("`{text}` is not a log filter"))?
        .map_err(|e| e.to_string())
}

/// The shortest interval a client's first `stats` read takes its rates
/// over, when an earlier read that old is there.
const MIN_FIRST_INTERVAL: Duration = Duration::from_secs(1);
/// How often a read is kept in the rates' history.
const HISTORY_STEP: Duration = Duration::from_millis(250);

/// Applies requests to an engine; keeps what rates need between reads.
pub struct Handler {
    started: Instant,
    /// Each client's last `stats` read: its rates are since its own last
    /// read, whoever else reads between; a client's first read has rates
    /// since the latest of them (a script that runs `ringctl stats` every
    /// second sees rates).
    last_stats: Vec<(ClientRef, Instant, Snapshot)>,
    /// Reads by any client, at most one per [`HISTORY_STEP`]: the latest at
    /// least [`MIN_FIRST_INTERVAL`] old and those since. A client's first
    /// read takes its rates from there.
    history: Vec<(Instant, Snapshot)>,
    /// Counters at the last `stats.reset`: `stats` reports what came since.
    base: Option<Snapshot>,
    set_log: SetLog,
}

impl Handler {
    /// A handler; `set_log` replaces the process's log filter.
    #[must_use]
    pub fn new(set_log: SetLog) -> Self {
        Self { started: Instant::now(), last_stats: Vec::new(), history: Vec::new(), base: None, set_log }
    }

    /// Apply one request and build its answer.
    pub fn handle(&mut self, engine: &Engine, inc: &Incoming) -> (Response, After) {
        self.handle_request(engine, &inc.request, inc.peer, inc.client)
    }

    /// Apply one parsed request from `peer`, on connection `client`, and
    /// build its answer.
    pub fn handle_request(
        &mut self,
        engine: &Engine,
        request: &Request,
        peer: Peer,
        client: ClientRef,
    ) -> (Response, After) {
        let cmd = &request.cmd;
        let mut after = After::Continue;
        let outcome = match cmd {
            Command::Status => Ok(self.status(engine)),
            Command::Stats => Ok(self.stats(engine, client)),
            Command::ClassifierList => classifier_list(engine),
            Command::ClassifierAdd { vlan, mac, pass } => {
                let action = if *pass { ringwire_bpf::Action::Pass } else { ringwire_bpf::Action::Drop };
                need_classifier(engine).and_then(|()| {
                    engine
                        .classifier_set(ringwire_bpf::ClassKey { vlan: *vlan, mac: *mac }, action)
                        // An entry of that key changes its action (its hits go on): the answer says which it had.
                        .map(|(ports, before)| match before {
                            Some(b) => json!({ "ports": ports, "replaced": b }),
                            None => json!({ "ports": ports }),
                        })
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
            Command::StatsReset => {
                self.base = Some(engine.snapshot());
                self.last_stats.clear();
                self.history.clear();
                Ok(json!({ "reset": true }))
            }
            Command::PortsList => Ok(ports_list(engine)),
            Command::ConfigShow => toml::to_string(&engine.current_config())
                .map(|text| json!({ "toml": text }))
                .map_err(|e| ControlError::internal(format!("the configuration cannot be written as TOML: {e}"))),
            Command::PortsAdd(p) => {
                let name = p.display_name().to_owned();
                engine.add_port(p.clone()).map(|notes| json!({ "added": name, "notes": notes })).map_err(change_error)
            }
            Command::PortsDel { name } => {
                engine.remove_port(name).map(|notes| json!({ "removed": name, "notes": notes })).map_err(change_error)
            }
            Command::ConsumersList => Ok(consumers_list(engine, |_| true)),
            Command::ConsumersAdd(c) | Command::PatchesAdd(c) => engine
                .add_consumer(c.clone())
                .map(|notes| json!({ "added": c.name, "notes": notes }))
                .map_err(change_error),
            Command::ConsumersDel { name } => remove_consumer(engine, name),
            Command::PatchesDel { name } => {
                let config = engine.current_config();
                match config.consumers.iter().find(|c| c.name == *name) {
                    Some(c) if c.kind == ConsumerKind::Forward => remove_consumer(engine, name),
                    Some(_) => Err(ControlError::conflict(format!(
                        "name: `{name}` is not a patch (a forward consumer); use consumers.del"
                    ))),
                    None => Err(ControlError::not_found(format!("name: no patch named `{name}`"))),
                }
            }
            Command::PatchesReset => {
                let names: Vec<String> = engine
                    .current_config()
                    .consumers
                    .into_iter()
                    .filter(|c| c.kind == ConsumerKind::Forward)
                    .map(|c| c.name)
                    .collect();
                names
                    .iter()
                    .try_for_each(|n| remove_consumer(engine, n).map(drop))
                    .map(|()| json!({ "removed": names }))
            }
            Command::PatchesList => Ok(json!({
                "forwarding": engine.forwarding(),
                "patches": consumers_list(engine, |k| k == ConsumerKind::Forward)["consumers"],
            })),
            Command::Forwarding(on) => {
                engine.set_forwarding(*on).map(|was| json!({ "forwarding": on, "was": was })).map_err(change_error)
            }
            Command::FiltersList => Ok(filters_list(engine)),
            Command::FiltersLoad { name, filter } => {
                engine.filter_load(name, filter).map(|()| json!({ "loaded": name })).map_err(change_error)
            }
            Command::FiltersUnload { name } => {
                engine.filter_unload(name).map(|()| json!({ "unloaded": name })).map_err(change_error)
            }
            Command::FiltersAttach { name, target } => {
                engine.filter_attach(name, target).map(|note| json!({ "note": note })).map_err(change_error)
            }
            Command::FiltersDetach { target } => {
                engine.filter_detach(target).map(|note| json!({ "note": note })).map_err(change_error)
            }
            Command::FiltersSwap { name, filter } => {
                engine.filter_swap(name, filter).map(|notes| json!({ "notes": notes })).map_err(change_error)
            }
        };
        // Logged with its outcome, so that the log tells changes made from
        // changes asked for and refused.
        if cmd.changes_state() {
            match &outcome {
                Ok(_) => {
                    tracing::info!(uid = peer.uid, pid = peer.pid, command = %logged(cmd), "control: state changed")
                }
                Err(e) => tracing::info!(
                    uid = peer.uid,
                    pid = peer.pid,
                    command = %logged(cmd),
                    class = %e.class,
                    error = %e.message,
                    "control: state change refused"
                ),
            }
        }
        (Response::new(Some(request.id), outcome), after)
    }

    fn status(&self, engine: &Engine) -> Value {
        let config = engine.current_config();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "workers": engine.worker_cores().iter().enumerate().map(|(index, core)| json!({ "index": index, "core": core })).collect::<Vec<_>>(),
            "ports": config.ports.iter().map(|p| json!({
                "name": p.display_name(), "uri": p.uri, "filter": p.filter,
            })).collect::<Vec<_>>(),
            "consumers": config.consumers.iter().map(|c| json!({
                "name": c.name, "kind": c.kind, "filter": c.filter.as_ref().map(crate::config::FilterList::display),
            })).collect::<Vec<_>>(),
            "fanout": config.engine.fanout,
            "forwarding": engine.forwarding(),
            "filters": engine.named_filters(),
        })
    }

    fn stats(&mut self, engine: &Engine, client: ClientRef) -> Value {
        let now = Instant::now();
        let mut snap = engine.snapshot();
        if let Some(base) = &self.base {
            snap = snap.since(base);
        }
        // This client's last read; on its first, the latest of anyone's at
        // least a second old (else the oldest kept): one-shot reads a
        // moment apart would give rates over milliseconds, which are noise.
        // (A slot's earlier client is gone: its read is only history.)
        let at = self.last_stats.iter().position(|(c, ..)| c.same_slot(&client));
        let own =
            at.filter(|&i| self.last_stats[i].0 == client).map(|i| (&self.last_stats[i].1, &self.last_stats[i].2));
        let first = || {
            let old = self.history.iter().rev().find(|(t, _)| now.duration_since(*t) >= MIN_FIRST_INTERVAL);
            old.or_else(|| self.history.first()).map(|(t, s)| (t, s))
        };
        let rates = own.or_else(first).map(|(t, prev)| {
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
                    "delivered_bits_per_s": rate(c.delivered_bytes, d.delivered_bytes) * 8.0,
                    "queue_dropped_per_s": rate(c.queue_dropped, d.queue_dropped),
                })).collect::<Vec<_>>(),
            })
        });
        let v = json!({ "counters": snap, "rates": rates });
        if self.history.last().is_none_or(|(t, _)| now.duration_since(*t) >= HISTORY_STEP) {
            self.history.push((now, snap.clone()));
        }
        if let Some(k) = self.history.iter().rposition(|(t, _)| now.duration_since(*t) >= MIN_FIRST_INTERVAL) {
            self.history.drain(..k);
        }
        if let Some(i) = at {
            self.last_stats.swap_remove(i);
        }
        self.last_stats.push((client, now, snap));
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

/// The control class of a failed change: a bad request is `invalid`, a
/// missing name `not_found`, a clash `conflict`, a failure to do it `internal`.
fn change_error(e: ChangeError) -> ControlError {
    use crate::{pcapio::PcapIoError, ring::RingError, EngineError};
    let message = crate::consumer::error_chain(&e);
    match &e {
        ChangeError::NotFound(_)
        | ChangeError::Engine(EngineError::Port { source: RingError::NoSuchInterface(_), .. }) => {
            ControlError::not_found(message)
        }
        ChangeError::Conflict(_) => ControlError::conflict(message),
        // Another consumer or process writes the file, or a port reads it.
        ChangeError::Engine(EngineError::Output { source, .. })
            if matches!(
                **source,
                PcapIoError::OutputInUse { .. } | PcapIoError::OutputLocked { .. } | PcapIoError::OverSource { .. }
            ) =>
        {
            ControlError::conflict(message)
        }
        // What the request asked for cannot be: the same class wherever it is asked (a filter
        // given to `consumers.add` as to `filters.load`).
        ChangeError::Engine(
            EngineError::Config(_)
            | EngineError::Filter(_)
            | EngineError::ConsumerFilter { .. }
            | EngineError::BpfFilter { .. }
            | EngineError::Bpf { .. }
            | EngineError::Pcap(_)
            | EngineError::Output { .. }
            | EngineError::NoSuchCore { .. }
            | EngineError::TooManyWorkers { .. },
        ) => ControlError::invalid(message),
        _ => ControlError::internal(message),
    }
}

fn remove_consumer(engine: &Engine, name: &str) -> Result<Value, ControlError> {
    let removed = engine.remove_consumer(name).map_err(change_error)?;
    let snap = engine.snapshot();
    let counters = snap.consumers.iter().rev().find(|c| c.name == name && c.removed);
    // Removed either way: a failed write, or a thread still writing, is said
    // beside the result, not as a refusal.
    Ok(json!({
        "removed": name, "files": removed.files, "counters": counters, "error": removed.error,
        "finished": removed.still_writing.is_none(), "notes": removed.still_writing.into_iter().collect::<Vec<_>>(),
    }))
}

fn ports_list(engine: &Engine) -> Value {
    let config = engine.current_config();
    let snap = engine.snapshot();
    let ports: Vec<Value> = config
        .ports
        .iter()
        .map(|p| {
            let counters = snap.ports.iter().find(|s| s.name == p.display_name() && !s.removed);
            json!({
                "name": p.display_name(), "uri": p.uri, "filter": p.filter, "rx": p.rx,
                "received": counters.map(|c| c.received), "kernel_drops": counters.map(|c| c.kernel_drops),
                "link": counters.and_then(|c| c.link), "link_downs": counters.filter(|c| c.link.is_some()).map(|c| c.link_downs),
                "error": counters.and_then(|c| c.error.clone()),
            })
        })
        .collect();
    json!({ "ports": ports })
}

/// A command as the log names it: its fields, a MAC written as a MAC.
fn logged(cmd: &Command) -> String {
    let vlan = |v: &Option<u16>| v.map_or_else(|| "untagged".to_owned(), |v| v.to_string());
    match cmd {
        Command::ClassifierAdd { vlan: v, mac, pass } => format!(
            "classifier.add {{ vlan: {}, mac: {}, action: {} }}",
            vlan(v),
            crate::stats::format_mac(*mac),
            if *pass { "pass" } else { "drop" }
        ),
        Command::ClassifierDel { vlan: v, mac } => {
            format!("classifier.del {{ vlan: {}, mac: {} }}", vlan(v), crate::stats::format_mac(*mac))
        }
        other => format!("{other:?}"),
    }
}

fn consumers_list(engine: &Engine, which: impl Fn(ConsumerKind) -> bool) -> Value {
    let config = engine.current_config();
    let snap = engine.snapshot();
    let consumers: Vec<Value> = config
        .consumers
        .iter()
        .filter(|c| which(c.kind))
        .map(|c| {
            let counters = snap.consumers.iter().find(|s| s.name == c.name && !s.removed);
            let mut entry = json!({
                "name": c.name, "kind": c.kind, "ports": c.ports, "to": c.to, "path": c.path,
                "filter": c.filter.as_ref().map(crate::config::FilterList::display),
                "seen": counters.map(|s| s.seen), "delivered": counters.map(|s| s.delivered),
                "paused": counters.map(|s| s.paused),
            });
            // A patch's frames are delivered to its target's TX ring: whether
            // they left depends on that interface.
            if let Some(to) = c.to.as_deref().and_then(|t| snap.ports.iter().find(|p| p.name == t && !p.removed)) {
                entry["to_link"] = json!(to.link);
                entry["to_unsent"] = json!(to.tx_unsent);
            }
            entry
        })
        .collect();
    json!({ "consumers": consumers })
}

fn filters_list(engine: &Engine) -> Value {
    let config = engine.current_config();
    let snap = engine.snapshot();
    let named = engine.named_filters();
    let name_of = |t: &crate::live::Target| named.iter().find(|(_, f)| f.attached.contains(t)).map(|(n, _)| n.clone());
    let mut in_force = Vec::new();
    for p in config.ports.iter().filter(|p| p.filter.is_some()) {
        let s = snap.ports.iter().find(|s| s.name == p.display_name() && !s.removed);
        // A file port's filter runs in userspace and counts every record; a
        // kernel filter counts only if it is an eBPF program with counters.
        let userspace = s.filter(|s| !s.interface);
        in_force.push(json!({
            "port": p.display_name(), "filter": p.filter,
            "name": name_of(&crate::live::Target::Port(p.display_name().to_owned())),
            // A program that counts nothing in its map: its counts are not known.
            "ebpf": s.filter(|s| !s.ebpf_silent).and_then(|s| s.ebpf),
            "ebpf_silent": s.is_some_and(|s| s.ebpf_silent),
            "seen": userspace.map(|s| s.received),
            "passed": userspace.map(|s| s.received.saturating_sub(s.filtered)),
            "filtered": userspace.map(|s| s.filtered),
        }));
    }
    for c in config.consumers.iter().filter(|c| c.filter.is_some()) {
        let s = snap.consumers.iter().find(|s| s.name == c.name && !s.removed);
        in_force.push(json!({
            "consumer": c.name, "filter": c.filter.as_ref().map(crate::config::FilterList::display),
            "name": name_of(&crate::live::Target::Consumer(c.name.clone())),
            "seen": s.map(|s| s.seen), "passed": s.map(|s| s.passed), "filtered": s.map(|s| s.filtered),
            "stages": s.map(|s| &s.filter_stages),
        }));
    }
    json!({ "loaded": named, "in_force": in_force })
}
