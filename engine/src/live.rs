//! Changes to a running engine: filters (a SIGHUP reload, named filters
//! from the control socket), the classifier table, ports, consumers and
//! forwarding. Each change is built off the hot path (a failure changes
//! nothing), then handed to every worker, which applies it between two
//! batches; the caller waits until every worker has.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
};

use ringwire_filters::{FilterFactory, QuarantinePolicy};

use crate::{
    config::{
        ConfigError, ConsumerConfig, ConsumerKind, FilterList, OnFilterFailure, PortConfig, PortKind, CLASSIFIER_FILTER,
    },
    engine::{
        build_consumer, ebpf_spec, open_port, open_tx, spawn_sink, update_classifier, Engine, EngineError, PortFilter,
        State,
    },
    worker::Command,
    Config,
};

/// Ports (and consumers, and named filters) an engine takes over its life:
/// slots are never reused, so this bounds what a control client can make it keep.
pub const MAX_SLOTS: usize = 4096;

/// `[table]`'s fields that differ between `old` and `new`, by name
/// (`[engine] workers`).
fn changed_fields<T: serde::Serialize + PartialEq>(table: &str, old: &T, new: &T) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    let json = |t: &T| serde_json::to_value(t).unwrap_or_default();
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (json(old), json(new)) else {
        return vec![format!("[{table}]")];
    };
    let keys: std::collections::BTreeSet<&String> =
        a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).collect();
    keys.iter().map(|k| format!("[{table}] {k}")).collect()
}

/// The entries of `kind` (ports, consumers) that `new` adds, removes, or
/// changes in more than what `unfiltered` clears, by `name`.
fn named_changes<T: PartialEq>(
    kind: &str,
    old: &[T],
    new: &[T],
    name: fn(&T) -> &str,
    unfiltered: impl Fn(&T) -> T,
) -> Vec<String> {
    let mut out = Vec::new();
    for o in old {
        match new.iter().find(|n| name(n) == name(o)) {
            None => out.push(format!("{kind} `{}` removed", name(o))),
            Some(n) if unfiltered(n) != unfiltered(o) => out.push(format!("{kind} `{}` changed", name(o))),
            Some(_) => {}
        }
    }
    out.extend(
        new.iter().filter(|n| !old.iter().any(|o| name(o) == name(n))).map(|n| format!("{kind} `{}` added", name(n))),
    );
    out
}

/// A consumer's name.
fn consumer_name(c: &ConsumerConfig) -> &str {
    &c.name
}

/// How a reload's note about the file's changes it did not apply (ports,
/// consumers, workers, rings) begins: the file and the engine now differ.
pub const NOT_APPLIED: &str = "changes in the file not applied";

/// How long removing a consumer waits for its thread to write out its queue.
const SINK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a change to a running engine was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// It names a port, consumer or filter that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the state (a name in use, a port still used).
    #[error("{0}")]
    Conflict(String),
    /// Building or applying it failed (a bad filter, a missing interface).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<ConfigError> for ChangeError {
    fn from(e: ConfigError) -> Self {
        Self::Engine(e.into())
    }
}

/// Where a filter is attached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Target {
    /// A port (its kernel filter).
    Port(String),
    /// A consumer (its userspace filter).
    Consumer(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Port(n) => write!(f, "port `{n}`"),
            Self::Consumer(n) => write!(f, "consumer `{n}`"),
        }
    }
}

/// A filter loaded by name (`filters.load`), and where it is attached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedFilter {
    /// The filter as written.
    pub text: String,
    /// Ports and consumers running it.
    pub attached: BTreeSet<Target>,
}

/// A filter to put in force.
enum FilterChange {
    Consumer { slot: usize, filter: Option<FilterList>, on_failure: OnFilterFailure },
    Port { slot: usize, filter: Option<String> },
}

/// A consumer's new filter: (slot, built filter, text, failure policy).
type ConsumerFilter = (usize, Option<Arc<FilterFactory>>, Option<FilterList>, OnFilterFailure);

/// Filter changes built and ready to send.
struct BuiltChanges {
    per_worker: Vec<Vec<Command>>,
    consumers: Vec<ConsumerFilter>,
    ports: Vec<(usize, Arc<PortFilter>, Option<String>)>,
}

/// Check that `text` loads as a filter of some kind: an eBPF object (loaded
/// and verified), the classifier, or a userspace filter or chain stage.
fn check_filter(text: &str) -> Result<(), ChangeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ConfigError::Invalid("filter: empty".into()).into());
    }
    let owned = Some(text.to_owned());
    if let Some((path, program)) = ebpf_spec(&owned) {
        ringwire_bpf::SocketFilter::load_file(std::path::Path::new(path), program)
            .map_err(|e| EngineError::BpfFilter { filter: text.to_owned(), source: Box::new(e) })?;
    } else if text != CLASSIFIER_FILTER {
        FilterFactory::chain(&[text], QuarantinePolicy::DropAll, None).map_err(EngineError::from)?;
    }
    Ok(())
}

/// What [`Engine::remove_consumer`] did.
#[derive(Debug)]
pub struct Removed {
    /// The files its thread wrote and closed.
    pub files: Vec<PathBuf>,
    /// Its thread's error (a failed write), if any.
    pub error: Option<String>,
    /// Why its thread has not finished yet, if it has not (its files then
    /// close later, and its counters still change).
    pub still_writing: Option<String>,
}

impl Engine {
    /// Build filter changes: everything compiled, loaded and instantiated
    /// for every worker, nothing sent; a consumer's pcap-filter for the
    /// interfaces it takes frames from in `config` (the one in force, or
    /// one about to be). A port that is given the classifier gets
    /// `classifier`'s table.
    fn build_filter_changes(
        &self,
        st: &State,
        config: &Config,
        changes: Vec<FilterChange>,
        classifier: &crate::config::ClassifierConfig,
    ) -> Result<BuiltChanges, EngineError> {
        let mut b = BuiltChanges {
            per_worker: (0..self.nworkers()).map(|_| Vec::new()).collect(),
            consumers: Vec::new(),
            ports: Vec::new(),
        };
        // Every change is built, so that one reload names every filter that
        // does not load, not only the first.
        let mut errors: Vec<EngineError> =
            changes.into_iter().filter_map(|c| Self::build_change(st, config, classifier, c, &mut b).err()).collect();
        match errors.len() {
            0 => Ok(b),
            1 => Err(errors.remove(0)),
            _ => Err(EngineError::Several(errors)),
        }
    }

    /// Build one filter change into `b` (see [`Engine::build_filter_changes`]).
    fn build_change(
        st: &State,
        config: &Config,
        classifier: &crate::config::ClassifierConfig,
        change: FilterChange,
        b: &mut BuiltChanges,
    ) -> Result<(), EngineError> {
        match change {
            FilterChange::Consumer { slot, filter, on_failure } => {
                let mut c = st.consumers[slot].config.clone();
                c.filter.clone_from(&filter);
                let live = config.live_iface_for(&c);
                let named = |e| EngineError::ConsumerFilter { consumer: c.name.clone(), source: Box::new(e) };
                let factory = filter
                    .as_ref()
                    .map(|f| FilterFactory::chain(&f.stages(), on_failure.into(), live.as_deref()))
                    .transpose()
                    .map_err(named)?
                    .map(Arc::new);
                // An instance per worker, all built before any is queued.
                let cmds = (0..b.per_worker.len())
                    .map(|_| {
                        let filter = factory.as_deref().map(FilterFactory::instance).transpose().map_err(named)?;
                        Ok(Command::SetFilter { consumer: slot, filter })
                    })
                    .collect::<Result<Vec<_>, EngineError>>()?;
                for (w, cmd) in b.per_worker.iter_mut().zip(cmds) {
                    w.push(cmd);
                }
                b.consumers.push((slot, factory, filter, on_failure));
            }
            FilterChange::Port { slot, filter } => {
                let p = &st.ports[slot];
                let PortKind::AfPacket(iface) = &p.kind else {
                    return Err(ConfigError::Invalid(format!(
                        "port `{}`: a pcap port's filter changes on restart",
                        p.config.display_name()
                    ))
                    .into());
                };
                let mut cfg = p.config.clone();
                cfg.filter.clone_from(&filter);
                // Loaded (or compiled) here, off the hot path: an error leaves the filter in force.
                let built = Arc::new(PortFilter::build(&cfg, iface, classifier)?);
                for cmds in &mut b.per_worker {
                    cmds.push(Command::SetPortFilter { port: slot, filter: built.clone() });
                }
                b.ports.push((slot, built, filter));
            }
        }
        Ok(())
    }

    /// Send built filter changes and record them; returns a line per change.
    fn commit_filter_changes(&self, st: &mut State, b: BuiltChanges) -> Result<Vec<String>, EngineError> {
        let mut notes = Vec::new();
        if b.per_worker.iter().all(Vec::is_empty) {
            return Ok(notes);
        }
        let confirmed = self.send_and_wait(st, b.per_worker)?;
        if !confirmed {
            notes.push("not every worker confirmed the swap within 10 s; it applies when they do".into());
        }
        notes.extend(Self::record_filter_changes(st, b.consumers, b.ports, confirmed));
        Ok(notes)
    }

    /// Record filter changes the workers were sent (and `confirmed`, have
    /// all applied): the factories and texts in force, named filters'
    /// attachments; returns a line per change.
    fn record_filter_changes(
        st: &mut State,
        consumers: Vec<ConsumerFilter>,
        ports: Vec<(usize, Arc<PortFilter>, Option<String>)>,
        confirmed: bool,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        for (slot, factory, text, on_failure) in consumers {
            let c = &mut st.consumers[slot];
            notes.push(format!(
                "consumer `{}`: filter now {}",
                c.config.name,
                text.as_ref().map_or_else(|| "(none)".to_owned(), FilterList::display)
            ));
            if let Some(old) = c.factory.take() {
                let h = old.health_handle();
                if confirmed {
                    c.past_health.add(&h);
                } else {
                    c.past_filters.push(h);
                }
            }
            c.factory = factory;
            c.config.filter = text;
            c.config.on_filter_failure = on_failure;
        }
        for (slot, filter, text) in ports {
            let p = &mut st.ports[slot];
            notes.push(format!(
                "port `{}`: kernel filter now {}",
                p.config.display_name(),
                text.as_deref().unwrap_or("(none)")
            ));
            p.retire_filter();
            p.filter = Some(filter);
            p.config.filter = text;
        }
        // A named filter stays attached where its text is still in force.
        let current: Vec<(crate::live::Target, Option<String>)> =
            st.ports
                .iter()
                .filter(|p| !p.removed)
                .map(|p| (Target::Port(p.config.display_name().to_owned()), p.config.filter.clone()))
                .chain(st.consumers.iter().filter(|c| !c.removed).map(|c| {
                    (Target::Consumer(c.config.name.clone()), c.config.filter.as_ref().map(FilterList::display))
                }))
                .collect();
        for nf in st.named.values_mut() {
            nf.attached.retain(|t| current.iter().any(|(u, text)| u == t && text.as_deref() == Some(nf.text.as_str())));
        }
        notes
    }

    /// Swap filters to those in `new` while traffic flows: every changed
    /// consumer filter and afpacket port filter is built first, off the hot
    /// path (a failure changes nothing and returns the error); then each
    /// worker applies the changes between two batches, so every frame meets
    /// either the old or the new filter, never a half-built one and never
    /// none. Ports and consumers are matched by name. Returns a line per
    /// change; other differences in `new` (ports, consumers, workers) are
    /// reported as needing a restart.
    ///
    /// # Errors
    /// The filter that does not compile / parse / load, unchanged state.
    pub fn reload_filters(&self, new: &Config) -> Result<Vec<String>, EngineError> {
        let mut st = self.lock();
        let old = st.config();
        let mut notes = Vec::new();
        // What differs in the file but filters: named, not applied.
        let mut differ = changed_fields("engine", &old.engine, &new.engine);
        differ.extend(changed_fields("ring", &old.ring, &new.ring));
        differ.extend(named_changes("port", &old.ports, &new.ports, PortConfig::display_name, |p| PortConfig {
            filter: None,
            ..p.clone()
        }));
        differ.extend(named_changes("consumer", &old.consumers, &new.consumers, consumer_name, |c| ConsumerConfig {
            filter: None,
            on_filter_failure: OnFilterFailure::default(),
            ..c.clone()
        }));
        if !differ.is_empty() {
            notes.push(format!(
                "{NOT_APPLIED}: {} (they need a restart, or the control socket); only filters were reloaded",
                differ.join(", ")
            ));
        }
        new.validate()?;
        let mut changes = Vec::new();
        for c in &new.consumers {
            let Some(slot) = st.consumer_index(&c.name) else { continue };
            let o = &st.consumers[slot].config;
            if o.filter != c.filter || o.on_filter_failure != c.on_filter_failure {
                changes.push(FilterChange::Consumer {
                    slot,
                    filter: c.filter.clone(),
                    on_failure: c.on_filter_failure,
                });
            }
        }
        for p in &new.ports {
            let Some(slot) = st.port_index(p.display_name()) else { continue };
            let o = &st.ports[slot];
            if o.config.uri != p.uri || o.config.filter == p.filter {
                continue;
            }
            if matches!(o.kind, PortKind::AfPacket(_)) {
                changes.push(FilterChange::Port { slot, filter: p.filter.clone() });
            } else {
                notes.push(format!("port `{}`: a pcap port's filter changes on restart", p.display_name()));
            }
        }
        // A port given the classifier here gets the new table.
        let built = self.build_filter_changes(&st, &st.config(), changes, &new.classifier)?;
        // The classifier's table changes in the maps the attached programs
        // read: the next frame meets the new entries, nothing is reattached.
        if st.base.classifier != new.classifier {
            let (old_table, new_table) =
                (st.base.classifier.table().unwrap_or_default(), new.classifier.table().map_err(ConfigError::Invalid)?);
            let default = new.classifier.default.into();
            let mut used = false;
            for (pi, c) in st.classifiers() {
                used = true;
                let name = st.ports[pi].config.display_name();
                let (added, changed, removed) = update_classifier(c, default, &old_table, &new_table)
                    .map_err(|source| EngineError::Bpf { port: name.to_owned(), source })?;
                notes.push(format!(
                    "port `{name}`: classifier table updated in place: {added} added, {changed} changed, {removed} removed, default {}",
                    new.classifier.default
                ));
            }
            if !used && !new.ports.iter().any(PortConfig::uses_classifier) {
                notes.push("classifier table stored; no port has filter = \"classifier\"".into());
            }
            st.base.classifier = new.classifier.clone();
        }
        notes.extend(self.commit_filter_changes(&mut st, built)?);
        Ok(notes)
    }

    /// Add or change a classifier entry on every port running the
    /// classifier, in place. Returns the ports changed (none: no port runs it).
    ///
    /// # Errors
    /// A map update failed (the port named); ports before it were changed.
    pub fn classifier_set(
        &self,
        key: ringwire_bpf::ClassKey,
        action: ringwire_bpf::Action,
    ) -> Result<(Vec<String>, Option<crate::config::ClassAction>), EngineError> {
        let mut st = self.lock();
        let mut ports = Vec::new();
        for (pi, c) in st.classifiers() {
            let name = st.ports[pi].config.display_name().to_owned();
            c.insert(key, action).map_err(|source| EngineError::Bpf { port: name.clone(), source })?;
            ports.push(name);
        }
        let before = st.base.classifier.set(key, action);
        Ok((ports, before))
    }

    /// Remove a classifier entry from every port running the classifier.
    /// Returns the ports it was removed from.
    ///
    /// # Errors
    /// A map operation failed (the port named).
    pub fn classifier_remove(&self, key: ringwire_bpf::ClassKey) -> Result<Vec<String>, EngineError> {
        let mut st = self.lock();
        let mut ports = Vec::new();
        for (pi, c) in st.classifiers() {
            let name = st.ports[pi].config.display_name().to_owned();
            if c.remove(key).map_err(|source| EngineError::Bpf { port: name.clone(), source })? {
                ports.push(name);
            }
        }
        st.base.classifier.remove(key);
        Ok(ports)
    }

    /// Whether any port runs the classifier.
    #[must_use]
    pub fn runs_classifier(&self) -> bool {
        self.lock().classifiers().next().is_some()
    }

    /// Add a port while traffic flows: its rings (one per worker, in a
    /// fanout group of their own) or its file are opened here, then every
    /// worker starts reading it; consumers that take frames from every port
    /// (no `ports` list) take its frames too.
    ///
    /// # Errors
    /// The name is taken, the config is invalid, or it cannot be opened; nothing changed.
    /// On success, warnings for the caller (its rings cut frames its interface lets through).
    pub fn add_port(&self, p: PortConfig) -> Result<Vec<String>, ChangeError> {
        let mut st = self.lock();
        if st.port_index(p.display_name()).is_some() {
            return Err(ChangeError::Conflict(format!("name: a port named `{}` exists", p.display_name())));
        }
        let mut candidate = st.config();
        candidate.ports.push(p.clone());
        candidate.validate()?;
        let index = st.ports.len();
        if index >= MAX_SLOTS {
            return Err(ChangeError::Conflict(format!(
                "ports: {MAX_SLOTS} ports were added over this engine's life; restart it to add more"
            )));
        }
        // The added port's rings share half of what is available now.
        let budget = crate::ring::ring_budget(self.nworkers());
        let opened = open_port(&st, &p, index, self.nworkers(), self.steer.as_ref(), false, budget)?;
        let mut opened_notes = opened.notes;
        let subscribers: Vec<usize> = if p.rx {
            (0..st.consumers.len())
                .filter(|&c| !st.consumers[c].removed && st.consumers[c].config.ports.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        // A subscriber's pcap-filter compiled with no interface port to take
        // frames from reads a frame as a file holds it (`udp` misses tagged
        // UDP); with this interface port it is compiled for the interface,
        // as it would have been in the config (tcpdump -i's meaning), and
        // swapped in with the port.
        let old = st.config();
        let recompiled = subscribers
            .iter()
            .map(|&c| (c, &st.consumers[c].config))
            .filter(|(_, cc)| {
                let pcap_stage = cc.filter.as_ref().is_some_and(|f| {
                    f.stages().iter().any(|s| matches!(ringwire_filters::FilterSpec::parse(s), ringwire_filters::FilterSpec::Pcap(e) if !e.is_empty()))
                });
                pcap_stage && old.live_iface_for(cc).is_none() && candidate.live_iface_for(cc).is_some()
            })
            .map(|(slot, cc)| FilterChange::Consumer { slot, filter: cc.filter.clone(), on_failure: cc.on_filter_failure })
            .collect();
        let b = self.build_filter_changes(&st, &candidate, recompiled, &st.base.classifier)?;
        let per_worker = opened
            .sources
            .into_iter()
            .zip(&opened.slot.cells)
            .zip(b.per_worker)
            .map(|((source, cells), mut cmds)| {
                cmds.push(Command::AddPort {
                    port: index,
                    source,
                    cells: cells.clone(),
                    subscribers: subscribers.clone(),
                });
                cmds
            })
            .collect();
        // Recorded once sent (a full queue sends nothing and changes nothing).
        let confirmed = self.send_and_wait(&mut st, per_worker)?;
        opened_notes.extend(
            Self::record_filter_changes(&mut st, b.consumers, b.ports, confirmed)
                .into_iter()
                .map(|n| format!("{n}, compiled for the interface of port `{}`", p.display_name())),
        );
        st.ports.push(opened.slot);
        st.read_if_drops();
        for &c in &subscribers {
            st.consumers[c].ports.push(index);
        }
        crate::engine::update_consumer_sched(&st);
        if !confirmed {
            tracing::warn!(port = p.display_name(), "not every worker confirmed the new port within 10 s");
        }
        tracing::info!(port = p.display_name(), uri = %p.uri, "port added");
        Ok(opened_notes)
    }

    /// Remove a port while traffic flows: its rings stop taking frames, are
    /// read empty (so its counters reconcile) and closed. Refused while a
    /// consumer names it in `ports` or forwards to it.
    ///
    /// # Errors
    /// No such port, or it is still used.
    pub fn remove_port(&self, name: &str) -> Result<Vec<String>, ChangeError> {
        let mut st = self.lock();
        let slot = st.port_index(name).ok_or_else(|| ChangeError::NotFound(format!("name: no port named `{name}`")))?;
        if let Some(c) = st
            .consumers
            .iter()
            .find(|c| !c.removed && (c.config.ports.iter().any(|p| p == name) || c.config.to.as_deref() == Some(name)))
        {
            return Err(ChangeError::Conflict(format!(
                "name: consumer `{}` uses port `{name}`; remove it first",
                c.config.name
            )));
        }
        // An engine runs with a port, as a config needs one (`config show` saves it).
        if st.ports.iter().enumerate().all(|(i, p)| i == slot || p.removed) {
            return Err(ChangeError::Conflict(format!(
                "name: `{name}` is the engine's last port, and an engine needs one: add another first"
            )));
        }
        let per_worker = (0..self.nworkers()).map(|_| vec![Command::RemovePort { port: slot }]).collect();
        let confirmed = self.send_and_wait(&mut st, per_worker)?;
        // Its interface's drops up to now are its last.
        st.read_if_drops();
        st.ports[slot].removed = true;
        crate::engine::update_consumer_sched(&st);
        // Its program and maps (file descriptors) go once the workers let go
        // of the rings; their counts stay, final.
        if let Some(f) = st.ports[slot].filter.take() {
            st.ports[slot].final_filter_counts = crate::engine::FilterCounts::read(&f, name);
        }
        st.named.values_mut().for_each(|nf| {
            nf.attached.remove(&Target::Port(name.to_owned()));
        });
        if !confirmed {
            tracing::warn!(port = name, "not every worker confirmed the removal within 10 s");
        }
        tracing::info!(port = name, "port removed");
        // Its rings are read out by the workers from now on: said when that takes a while.
        let mut notes = Vec::new();
        let retire = std::time::Duration::from_millis(u64::from(st.base.ring.retire_timeout_ms));
        let window = crate::worker::drain_window(retire);
        if st.ports[slot].config.rx
            && matches!(st.ports[slot].kind, PortKind::AfPacket(_))
            && window > std::time::Duration::from_secs(1)
        {
            let note = format!(
                "port `{name}`: its rings are read out until their last blocks are handed over (retire_timeout_ms {}: \
                 up to {:.1} s); its counters are final then",
                st.base.ring.retire_timeout_ms,
                window.as_secs_f64()
            );
            tracing::info!("{note}");
            notes.push(note);
        }
        Ok(notes)
    }

    /// Re-open the rings of every interface port whose interface was gone
    /// (deleted, or moved to another network namespace) and is back under
    /// the same name (a link recreated, a container restarted). The port
    /// keeps its slot, counters, consumers and filter; its workers get new
    /// sockets in a new fanout group, and new TX rings if it is a
    /// forwarding target. `ringwire run` calls this every second. Returns
    /// the names of the ports re-opened; a port that cannot be re-opened
    /// yet is logged once per distinct error and tried again next time.
    pub fn reattach_ports(&self) -> Vec<String> {
        let mut st = self.lock();
        let mut done = Vec::new();
        for i in 0..st.ports.len() {
            let slot = &st.ports[i];
            if slot.removed || slot.link() != crate::ring::Link::Gone {
                continue;
            }
            let PortKind::AfPacket(iface) = &slot.kind else { continue };
            if crate::sys::if_index(iface).is_none() {
                continue;
            }
            let config = st.ports[i].config.clone();
            let name = config.display_name().to_owned();
            let budget = crate::ring::ring_budget(self.nworkers());
            let opened = open_port(&st, &config, i, self.nworkers(), self.steer.as_ref(), false, budget)
                .and_then(|o| Ok((o, if st.ports[i].has_tx { Some(open_tx(&st, i)?.0) } else { None })));
            let (opened, tx) = match opened {
                Ok(o) => o,
                Err(e) => {
                    let e = crate::consumer::error_chain(&e);
                    if st.ports[i].reattach_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(port = %name, error = %e, "the interface is back but the port cannot be re-opened yet");
                        st.ports[i].reattach_error = Some(e);
                    }
                    continue;
                }
            };
            let mut tx = tx.map(Vec::into_iter);
            let per_worker = opened
                .sources
                .into_iter()
                .map(|source| {
                    let ring = match source {
                        Some(crate::worker::Source::Ring { ring, .. }) => Some(ring),
                        _ => None,
                    };
                    vec![Command::Reattach { port: i, ring, tx: tx.as_mut().and_then(Iterator::next) }]
                })
                .collect();
            match self.send_and_wait(&mut st, per_worker) {
                Ok(confirmed) => {
                    if !confirmed {
                        tracing::warn!(port = %name, "not every worker confirmed the re-opened port within 10 s");
                    }
                    // The filter the new sockets run (an eBPF program loaded anew).
                    st.ports[i].retire_filter();
                    st.ports[i].filter = opened.slot.filter;
                    st.ports[i].reattach_error = None;
                    tracing::warn!(port = %name, "the interface is back: the port is open on it again");
                    done.push(name);
                }
                Err(e) => {
                    tracing::warn!(port = %name, error = %crate::consumer::error_chain(&e), "could not re-open the port; trying again")
                }
            }
        }
        done
    }

    /// Add a consumer while traffic flows: its filter, queues, output file
    /// and thread are set up here, then every worker starts handing it the
    /// frames of its ports from the next batch on.
    ///
    /// # Errors
    /// The name is taken, the config is invalid, or its output cannot be created.
    pub fn add_consumer(&self, c: ConsumerConfig) -> Result<Vec<String>, ChangeError> {
        let mut st = self.lock();
        if st.consumer_index(&c.name).is_some() {
            return Err(ChangeError::Conflict(format!("name: a consumer named `{}` exists", c.name)));
        }
        if st.consumers.len() >= MAX_SLOTS {
            return Err(ChangeError::Conflict(format!(
                "consumers: {MAX_SLOTS} consumers were added over this engine's life; restart it to add more"
            )));
        }
        let ordered = c.kind == ConsumerKind::Print || c.kind == ConsumerKind::Pcap && !c.split_by_worker;
        if st.share_files && ordered {
            return Err(ChangeError::Conflict(format!(
                "kind: the workers replay files a segment at a time; a {} consumer added now would wait for segments it never saw (set split_by_worker, or add it in the config)",
                c.kind
            )));
        }
        if st.share_files && matches!(c.kind, ConsumerKind::Forward | ConsumerKind::Latency) {
            let why = if c.kind == ConsumerKind::Forward {
                "a forward added now would send each file's frames out of order, as the segments come"
            } else {
                "a latency probe added now would count every change of segment as lost frames"
            };
            return Err(ChangeError::Conflict(format!(
                "kind: the workers replay files a segment at a time; {why} (add it in the config: the files are then read by one worker each)"
            )));
        }
        let mut candidate = st.config();
        candidate.consumers.push(c.clone());
        candidate.validate()?;
        let nworkers = self.nworkers();
        let mut per_worker: Vec<Vec<Command>> = (0..nworkers).map(|_| Vec::new()).collect();
        let mut new_tx = None;
        let mut notes = Vec::new();
        if let Some(to) = c.to.as_deref().and_then(|n| st.port_index(n)) {
            if !st.ports[to].has_tx {
                let (rings, warning) = open_tx(&st, to)?;
                notes.extend(warning);
                for (cmds, tx) in per_worker.iter_mut().zip(rings) {
                    cmds.push(Command::AddTx { port: to, tx });
                }
                new_tx = Some(to);
            }
        }
        // A patch that sends a port's frames back out of that port is allowed
        // (a hairpin), but rarely meant: said in the answer.
        if let Some(to) = c.to.as_deref().filter(|to| c.kind == ConsumerKind::Forward && c.takes_from(&candidate, to)) {
            notes.push(format!(
                "port `{to}` is among the ports it takes from: its frames go back out of the port they came in on"
            ));
        }
        let built = build_consumer(&st, &c, nworkers)?;
        let index = st.consumers.len();
        for ((cmds, inst), cells) in per_worker.iter_mut().zip(built.insts).zip(&built.slot.cells) {
            cmds.push(Command::AddConsumer {
                consumer: index,
                inst,
                cells: cells.clone(),
                ports: built.slot.ports.clone(),
            });
        }
        let mut slot = built.slot;
        if let Some(task) = built.task {
            let (_, h) = spawn_sink(task)?;
            slot.sink.as_mut().expect("queued consumers have a sink").thread = Some(h);
        }
        // Recorded once sent, as ports are; a full queue sends nothing, and the thread ends now.
        if let Err(e) = self.send_and_wait(&mut st, per_worker) {
            if let Some(sink) = &mut slot.sink {
                sink.finish(&mut Vec::new(), &mut Vec::new());
            }
            return Err(e.into());
        }
        st.consumers.push(slot);
        if let Some(to) = new_tx {
            st.ports[to].has_tx = true;
        }
        tracing::info!(consumer = %c.name, kind = %c.kind, "consumer added");
        Ok(notes)
    }

    /// Remove a consumer while traffic flows: every worker stops handing it
    /// frames between two batches and hands over what it holds; its thread
    /// then writes everything queued, flushes and closes its files. Returns
    /// the files it wrote, and the error its thread reported if it had one
    /// (a failed write: the removal is done all the same, and the error is
    /// also in the engine's final report).
    ///
    /// # Errors
    /// No such consumer, or the workers' change queues are full (nothing changed).
    pub fn remove_consumer(&self, name: &str) -> Result<Removed, ChangeError> {
        let mut st = self.lock();
        let slot = st
            .consumer_index(name)
            .ok_or_else(|| ChangeError::NotFound(format!("name: no consumer named `{name}`")))?;
        let ports = st.consumers[slot].ports.clone();
        let per_worker = (0..self.nworkers())
            .map(|_| vec![Command::RemoveConsumer { consumer: slot, ports: ports.clone() }])
            .collect();
        let confirmed = self.send_and_wait(&mut st, per_worker)?;
        st.consumers[slot].removed = true;
        st.named.values_mut().for_each(|nf| {
            nf.attached.remove(&Target::Consumer(name.to_owned()));
        });
        let (mut files, mut errors) = (Vec::new(), Vec::new());
        let mut still_writing = None;
        if confirmed {
            if let Some(sink) = &mut st.consumers[slot].sink {
                // Bounded: a sink stuck on a slow disk or a full pipe is left to finish by `stop`.
                if !sink.finish_within(Some(SINK_PATIENCE), &mut files, &mut errors) {
                    let note = format!(
                        "its thread is still writing after {SINK_PATIENCE:?} (a slow disk, a pipe's reader that \
                         does not read): its counters are not final, and its files close when it has written \
                         what it holds (a stop waits for that too, as for any writer; a second Ctrl-C or \
                         SIGTERM ends such a stop)"
                    );
                    tracing::warn!(consumer = name, "{note}");
                    still_writing = Some(note);
                }
            }
            // Its filter (a plugin's code) goes with it; what it counted stays.
            let c = &mut st.consumers[slot];
            c.final_filter = c.factory.take().map(|f| crate::engine::FilterReport::of(&f));
            // The workers dropped their probe tables; what they recorded stays, merged once.
            c.probe = c.probe.as_ref().map(|p| p.frozen());
        } else {
            // A worker still holds its producer: the thread is finished at stop.
            let note = "not every worker confirmed the removal within 10 s: its counters are not final, and its \
                        files close at stop";
            tracing::warn!(consumer = name, "{note}");
            still_writing = Some(note.to_owned());
        }
        st.files.extend(files.iter().cloned());
        tracing::info!(consumer = name, "consumer removed");
        let error = errors.pop();
        st.errors.extend(error.iter().cloned());
        Ok(Removed { files, error, still_writing })
    }

    /// Start (`true`) or stop forwarding: forward consumers keep counting
    /// what they pass, as `paused` while stopped. Returns the previous state.
    ///
    /// # Errors
    /// A worker's queue is full (nothing changed).
    pub fn set_forwarding(&self, on: bool) -> Result<bool, ChangeError> {
        let mut st = self.lock();
        let was = st.forwarding;
        let per_worker = (0..self.nworkers()).map(|_| vec![Command::SetForwarding(on)]).collect();
        self.send_and_wait(&mut st, per_worker)?;
        st.forwarding = on;
        Ok(was)
    }

    /// Whether forward consumers send.
    #[must_use]
    pub fn forwarding(&self) -> bool {
        self.lock().forwarding
    }

    /// Load a filter under `name` (checked: an eBPF object is loaded and
    /// verified, anything else compiled), to attach later.
    ///
    /// # Errors
    /// The name is taken, or the filter does not load.
    pub fn filter_load(&self, name: &str, text: &str) -> Result<(), ChangeError> {
        let mut st = self.lock();
        if st.named.contains_key(name) {
            return Err(ChangeError::Conflict(format!("name: a filter named `{name}` is loaded")));
        }
        if st.named.len() >= MAX_SLOTS {
            return Err(ChangeError::Conflict(format!("name: {MAX_SLOTS} filters are loaded; unload some first")));
        }
        check_filter(text)?;
        st.named.insert(name.to_owned(), NamedFilter { text: text.trim().to_owned(), attached: BTreeSet::new() });
        Ok(())
    }

    /// Unload a named filter that is attached nowhere.
    ///
    /// # Errors
    /// No such filter, or it is still attached.
    pub fn filter_unload(&self, name: &str) -> Result<(), ChangeError> {
        let mut st = self.lock();
        let nf = st.named.get(name).ok_or_else(|| ChangeError::NotFound(format!("name: no filter named `{name}`")))?;
        if let Some(t) = nf.attached.first() {
            return Err(ChangeError::Conflict(format!("name: filter `{name}` is attached to {t}; detach it first")));
        }
        st.named.remove(name);
        Ok(())
    }

    /// The named filters.
    #[must_use]
    pub fn named_filters(&self) -> BTreeMap<String, NamedFilter> {
        self.lock().named.clone()
    }

    /// Put named filter `name` in force on `target`, atomically between batches.
    ///
    /// # Errors
    /// No such filter or target, or the filter does not fit the target (an
    /// eBPF program on a consumer, a userspace filter on an afpacket port).
    pub fn filter_attach(&self, name: &str, target: &Target) -> Result<String, ChangeError> {
        let mut st = self.lock();
        let text = st
            .named
            .get(name)
            .ok_or_else(|| ChangeError::NotFound(format!("name: no filter named `{name}`")))?
            .text
            .clone();
        let change = self.target_change(&st, target, Some(text))?;
        let built = self.build_filter_changes(&st, &st.config(), vec![change], &st.base.classifier)?;
        let notes = self.commit_filter_changes(&mut st, built)?;
        for nf in st.named.values_mut() {
            nf.attached.remove(target);
        }
        st.named.get_mut(name).expect("checked above").attached.insert(target.clone());
        Ok(notes.join("; "))
    }

    /// Take `target`'s filter away (a port then takes every frame, a
    /// consumer passes every frame).
    ///
    /// # Errors
    /// No such target.
    pub fn filter_detach(&self, target: &Target) -> Result<String, ChangeError> {
        let mut st = self.lock();
        let change = self.target_change(&st, target, None)?;
        let built = self.build_filter_changes(&st, &st.config(), vec![change], &st.base.classifier)?;
        let notes = self.commit_filter_changes(&mut st, built)?;
        for nf in st.named.values_mut() {
            nf.attached.remove(target);
        }
        Ok(notes.join("; "))
    }

    /// Replace named filter `name` by a new version everywhere it is
    /// attached: all built first, then swapped between batches.
    ///
    /// # Errors
    /// No such filter, or the new version does not load (the old stays).
    pub fn filter_swap(&self, name: &str, text: &str) -> Result<Vec<String>, ChangeError> {
        let mut st = self.lock();
        let nf =
            st.named.get(name).ok_or_else(|| ChangeError::NotFound(format!("name: no filter named `{name}`")))?.clone();
        check_filter(text)?;
        let text = text.trim().to_owned();
        let changes = nf
            .attached
            .iter()
            .map(|t| self.target_change(&st, t, Some(text.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let built = self.build_filter_changes(&st, &st.config(), changes, &st.base.classifier)?;
        let mut notes = self.commit_filter_changes(&mut st, built)?;
        if nf.attached.is_empty() {
            notes.push(format!("filter `{name}` is now `{text}` (attached nowhere)"));
        }
        // Every attachment now runs the new text: keep them all.
        let entry = st.named.get_mut(name).expect("checked above");
        entry.text = text;
        entry.attached = nf.attached;
        Ok(notes)
    }

    /// The change that puts `text` in force on `target`, checked against the
    /// config rules (what runs where).
    fn target_change(&self, st: &State, target: &Target, text: Option<String>) -> Result<FilterChange, ChangeError> {
        let mut candidate = st.config();
        let change = match target {
            Target::Port(n) => {
                let slot =
                    st.port_index(n).ok_or_else(|| ChangeError::NotFound(format!("port: no port named `{n}`")))?;
                if let Some(p) = candidate.ports.iter_mut().find(|p| p.display_name() == n) {
                    p.filter.clone_from(&text);
                }
                FilterChange::Port { slot, filter: text }
            }
            Target::Consumer(n) => {
                let slot = st
                    .consumer_index(n)
                    .ok_or_else(|| ChangeError::NotFound(format!("consumer: no consumer named `{n}`")))?;
                if text.as_deref().is_some_and(crate::config::runs_in_kernel) {
                    return Err(ConfigError::Invalid(format!(
                        "consumer `{n}`: an eBPF program runs in the kernel: attach it to an afpacket port"
                    ))
                    .into());
                }
                let filter = text.map(FilterList::One);
                if let Some(c) = candidate.consumers.iter_mut().find(|c| c.name == *n) {
                    c.filter.clone_from(&filter);
                }
                FilterChange::Consumer { slot, filter, on_failure: st.consumers[slot].config.on_filter_failure }
            }
        };
        candidate.validate()?;
        Ok(change)
    }
}
