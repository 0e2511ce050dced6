//! Building, running and stopping the engine from a [`Config`].

use std::{
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_queue::ArrayQueue;
use ringwire_filters::{compile_expression, CompileTarget, FilterError, FilterFactory, QuarantinePolicy};

use crate::{
    config::{Config, ConfigError, ConsumerKind, FilterList, Pace, PortKind},
    consumer::{error_chain, run_sink, Channel, PcapOutput, Producer, SinkOutput, SinkTask, SinkWaker, MIN_CHUNK},
    pcapio::{PcapIoError, PcapReader, SharedPcapReader},
    ring::{RingError, RxRing, RxRingOptions, TxRing, TxRingOptions},
    stats::{
        consumer as cc, port as pc, sink, Cells, ConsumerSnap, PortSnap, Snapshot, StageSnap, WorkerCounters,
        WorkerSnap,
    },
    sys,
    worker::{Command, ConsumerInst, Delivery, Dispatch, FileReader, Source, Worker, WorkerResult, BATCH, SEGMENT},
};

/// Why the engine could not start (or stopped badly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured core does not exist.
    #[error("engine.workers: core {core} does not exist (this machine has cores {available})")]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// The cores there are.
        available: String,
    },
    /// More workers than cores.
    #[error("engine.workers: {workers} workers but only {cores} cores")]
    TooManyWorkers {
        /// Workers asked for.
        workers: usize,
        /// Cores available.
        cores: usize,
    },
    /// A port could not be opened.
    #[error("port `{port}`")]
    Port {
        /// The port name.
        port: String,
        /// Why.
        #[source]
        source: RingError,
    },
    /// A port's eBPF program could not be loaded.
    #[error("port `{port}`")]
    Bpf {
        /// The port name.
        port: String,
        /// Why.
        #[source]
        source: ringwire_bpf::BpfError,
    },
    /// A filter did not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A pcap file could not be opened, read or created.
    #[error(transparent)]
    Pcap(#[from] PcapIoError),
    /// A thread or kernel facility could not be set up.
    #[error("{what}")]
    Setup {
        /// What failed.
        what: String,
    },
}

/// Why the engine should stop by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every source is a pcap file and all were read to the end.
    SourcesExhausted,
    /// A consumer reached its frame limit (or its output closed).
    LimitReached,
    /// A worker ended on its own (an error).
    WorkerExited,
}

/// What [`Engine::stop`] returns.
#[derive(Debug)]
pub struct Report {
    /// Final counters (queues drained).
    pub snapshot: Snapshot,
    /// Errors met while running (a corrupt pcap source, a write failure).
    pub errors: Vec<String>,
    /// Files written by pcap consumers.
    pub files: Vec<PathBuf>,
    /// Accounting identities that do not hold (should be empty).
    pub unreconciled: Vec<String>,
    /// Per afpacket port: frames the kernel accepted that were still in the
    /// ring when it closed (the drain ran out of time; should be empty).
    pub unread_at_close: Vec<(String, u64)>,
}

/// The filters in force, for swaps and counters.
struct FilterState {
    consumers: Vec<Option<Arc<FilterFactory>>>,
    consumer_text: Vec<Option<FilterList>>,
    port_text: Vec<Option<String>>,
    /// Per port: its kernel filter (an eBPF one is read for its counters,
    /// the classifier's table is updated in place).
    port_filters: Vec<Option<Arc<PortFilter>>>,
    /// Commands sent to each worker so far.
    sent: Vec<u64>,
    config: Config,
}

impl FilterState {
    /// The ports running the classifier: (port index, its classifier).
    fn classifiers(&self) -> impl Iterator<Item = (usize, &ringwire_bpf::Classifier)> {
        self.port_filters.iter().enumerate().filter_map(|(pi, f)| match f.as_deref() {
            Some(PortFilter::Classifier(c)) => Some((pi, c)),
            _ => None,
        })
    }
}

/// Places in a worker's command queue.
const COMMAND_QUEUE: usize = 1024;

struct ConsumerMeta {
    name: String,
    kind: ConsumerKind,
    ports: Vec<usize>,
    sink: Option<Arc<Cells<{ sink::N }>>>,
}

/// A running engine.
pub struct Engine {
    port_names: Vec<String>,
    port_is_afpacket: Vec<bool>,
    consumers: Vec<ConsumerMeta>,
    counters: Vec<Arc<WorkerCounters>>,
    stop: Arc<AtomicBool>,
    wakes: Vec<OwnedFd>,
    workers: Vec<JoinHandle<WorkerResult>>,
    exhausted: Vec<Arc<AtomicBool>>,
    producers_done: Arc<AtomicBool>,
    /// One per queued consumer: raised when its limit is reached or its output closed.
    limit_hits: Vec<Arc<AtomicBool>>,
    sink_wakers: Vec<Arc<SinkWaker>>,
    /// Per worker: changes applied between batches, and how many it applied.
    commands: Vec<Arc<ArrayQueue<Command>>>,
    applied: Vec<Arc<AtomicU64>>,
    /// Filter state, changed only by [`Engine::reload_filters`] (serialized by the lock).
    filters: Mutex<FilterState>,
    sinks: Vec<JoinHandle<Result<Vec<PathBuf>, String>>>,
    started: Instant,
    finite: bool,
    /// The fanout group's steering program, if `ebpf-symmetric`.
    _steer: Option<ringwire_bpf::SymmetricSteer>,
}

/// A port's filter as the kernel runs it.
pub(crate) enum PortFilter {
    /// Compiled pcap-filter.
    Classic(ringwire_filters::CbpfProgram),
    /// A user's eBPF socket filter (`ebpf:FILE.o[:PROGRAM]`).
    Ebpf(ringwire_bpf::SocketFilter),
    /// The eBPF classifier with the `[classifier]` table (`classifier`).
    Classifier(ringwire_bpf::Classifier),
}

impl PortFilter {
    /// Build the filter `p.filter` names for interface `iface`: load an eBPF
    /// object or the classifier (with `classifier`'s table), or compile a
    /// pcap-filter expression for the kernel.
    fn build(
        p: &crate::config::PortConfig,
        iface: &str,
        classifier: &crate::config::ClassifierConfig,
    ) -> Result<Self, EngineError> {
        let bpf_err = |source| EngineError::Bpf { port: p.display_name().into(), source };
        Ok(match ebpf_spec(&p.filter) {
            Some((path, program)) => {
                Self::Ebpf(ringwire_bpf::SocketFilter::load_file(Path::new(path), program).map_err(bpf_err)?)
            }
            None if p.uses_classifier() => {
                let table = classifier.table().map_err(ConfigError::Invalid)?;
                Self::Classifier(load_classifier(classifier.default.into(), &table).map_err(bpf_err)?)
            }
            // No filter: a program that accepts everything.
            None => Self::Classic(compile_expression(
                p.filter.as_deref().unwrap_or_default(),
                CompileTarget::Kernel { iface },
            )?),
        })
    }

    /// What to attach to a socket.
    pub(crate) fn kernel(&self) -> crate::ring::KernelFilter<'_> {
        match self {
            Self::Classic(c) => crate::ring::KernelFilter::Classic(c.instructions()),
            Self::Ebpf(e) => crate::ring::KernelFilter::Ebpf(e.fd()),
            Self::Classifier(c) => crate::ring::KernelFilter::Ebpf(c.filter().fd()),
        }
    }

    /// The eBPF program's own counters, if it is one.
    fn ebpf(&self) -> Option<&ringwire_bpf::SocketFilter> {
        match self {
            Self::Classic(_) => None,
            Self::Ebpf(e) => Some(e),
            Self::Classifier(c) => Some(c.filter()),
        }
    }
}

/// Load the classifier with `table` and `default`.
fn load_classifier(
    default: ringwire_bpf::Action,
    table: &[(ringwire_bpf::ClassKey, ringwire_bpf::Action)],
) -> Result<ringwire_bpf::Classifier, ringwire_bpf::BpfError> {
    let c = ringwire_bpf::Classifier::load(default)?;
    for &(key, action) in table {
        c.insert(key, action)?;
    }
    Ok(c)
}

/// Bring a loaded classifier from table `old` to table `new` in place:
/// entries gone are removed, new or changed ones written, the rest (and
/// their hit counters) left alone. Returns (added, changed, removed).
fn update_classifier(
    c: &ringwire_bpf::Classifier,
    default: ringwire_bpf::Action,
    old: &[(ringwire_bpf::ClassKey, ringwire_bpf::Action)],
    new: &[(ringwire_bpf::ClassKey, ringwire_bpf::Action)],
) -> Result<(usize, usize, usize), ringwire_bpf::BpfError> {
    let old: std::collections::HashMap<_, _> = old.iter().copied().collect();
    let new_keys: std::collections::HashSet<_> = new.iter().map(|(k, _)| *k).collect();
    let (mut added, mut changed, mut removed) = (0, 0, 0);
    for (key, action) in new {
        match old.get(key) {
            Some(a) if a == action => {}
            Some(_) => {
                c.insert(*key, *action)?;
                changed += 1;
            }
            None => {
                c.insert(*key, *action)?;
                added += 1;
            }
        }
    }
    for key in old.keys().filter(|k| !new_keys.contains(k)) {
        c.remove(*key)?;
        removed += 1;
    }
    c.set_default(default)?;
    Ok((added, changed, removed))
}

/// `ebpf:FILE.o[:PROGRAM]` → (file, program).
fn ebpf_spec(filter: &Option<String>) -> Option<(&str, Option<&str>)> {
    let spec = filter.as_deref()?.trim().strip_prefix("ebpf:")?;
    // A program name never holds a `/` or a `.`; a path may hold `:`.
    Some(match spec.rsplit_once(':') {
        Some((path, prog)) if !prog.is_empty() && !prog.contains(['/', '.']) => (path, Some(prog)),
        _ => (spec, None),
    })
}

fn setup(what: impl Into<String>) -> EngineError {
    EngineError::Setup { what: what.into() }
}

impl Engine {
    /// Validate `config`, open every port, file and ring, and start the
    /// workers and consumer threads. Nothing runs if anything fails.
    ///
    /// # Errors
    /// [`EngineError`] naming the port, consumer, core or file at fault.
    pub fn start(config: &Config) -> Result<Self, EngineError> {
        config.validate()?;
        let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
        let available = match (cores.first(), cores.last()) {
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "none".into(),
        };
        for &c in &config.engine.workers {
            if !cores.contains(&c) {
                return Err(EngineError::NoSuchCore { core: c, available });
            }
        }
        if config.engine.workers.len() > cores.len() {
            return Err(EngineError::TooManyWorkers { workers: config.engine.workers.len(), cores: cores.len() });
        }
        let nworkers = config.engine.workers.len();
        let ports = &config.ports;
        let port_names: Vec<String> = ports.iter().map(|p| p.display_name().to_owned()).collect();
        let kinds: Vec<PortKind> =
            ports.iter().map(|p| p.kind().map_err(ConfigError::Invalid)).collect::<Result<_, _>>()?;
        let port_idx = |name: &str| port_names.iter().position(|n| n == name);

        // Port filters: compiled for where they run.
        let class_table = config.classifier.table().map_err(ConfigError::Invalid)?;
        if !class_table.is_empty() && !ports.iter().any(crate::config::PortConfig::uses_classifier) {
            tracing::warn!(
                entries = class_table.len(),
                "[classifier] has entries but no port has filter = \"classifier\"; the table is not used"
            );
        }
        let mut kernel_filters = Vec::with_capacity(ports.len());
        let mut pcap_filters = Vec::with_capacity(ports.len());
        for (p, kind) in ports.iter().zip(&kinds) {
            match (kind, &p.filter) {
                (PortKind::AfPacket(iface), Some(_)) => {
                    if sys::if_index(iface).is_none() {
                        return Err(EngineError::Port {
                            port: p.display_name().into(),
                            source: RingError::NoSuchInterface(iface.clone()),
                        });
                    }
                    kernel_filters.push(Some(Arc::new(PortFilter::build(p, iface, &config.classifier)?)));
                    pcap_filters.push(None);
                }
                (PortKind::Pcap(_), Some(expr)) => {
                    kernel_filters.push(None);
                    pcap_filters.push(Some(FilterFactory::new(expr, QuarantinePolicy::DropAll)?));
                }
                _ => {
                    kernel_filters.push(None);
                    pcap_filters.push(None);
                }
            }
        }

        // Consumers: filters, subscriptions, outputs, channels.
        let rx_ports: Vec<usize> = (0..ports.len()).filter(|&i| ports[i].rx).collect();
        let mut consumer_filters = Vec::new();
        let mut metas = Vec::new();
        let mut sink_tasks = Vec::new();
        let mut channels: Vec<Vec<Option<Arc<Channel>>>> = vec![Vec::new(); nworkers];
        let producers_done = Arc::new(AtomicBool::new(false));
        let mut limit_hits = Vec::new();
        let mut wakers = Vec::new();
        for c in &config.consumers {
            let live = config.live_iface_for(c);
            consumer_filters.push(
                c.filter
                    .as_ref()
                    .map(|f| FilterFactory::chain(&f.stages(), c.on_filter_failure.into(), live.as_deref()))
                    .transpose()?
                    .map(Arc::new),
            );
            let subscribed: Vec<usize> = if c.ports.is_empty() {
                rx_ports.clone()
            } else {
                c.ports.iter().filter_map(|n| port_idx(n)).collect()
            };
            let mut sink_cells = None;
            if c.kind.is_queued() {
                let output = match c.kind {
                    ConsumerKind::Pcap => {
                        let path = c.path.clone().expect("validated: pcap consumers have a path");
                        SinkOutput::Pcap(PcapOutput::create(
                            path,
                            c.snaplen,
                            c.rotate_mb,
                            c.split_by_worker.then_some(nworkers),
                        )?)
                    }
                    _ => SinkOutput::Print { port_names: port_names.clone() },
                };
                let chunk = MIN_CHUNK.max((c.snaplen as usize + 16).next_power_of_two());
                let chunks = ((c.queue_mb as usize) << 20).div_ceil(chunk).max(4);
                let waker = Arc::new(SinkWaker::default());
                wakers.push(waker.clone());
                let chans: Vec<Arc<Channel>> =
                    (0..nworkers).map(|_| Arc::new(Channel::new(chunks, chunk, waker.clone()))).collect();
                for (w, ch) in chans.iter().enumerate() {
                    channels[w].push(Some(ch.clone()));
                }
                let cells = Arc::new(Cells::default());
                sink_cells = Some(cells.clone());
                sink_tasks.push(SinkTask {
                    name: c.name.clone(),
                    output,
                    channels: chans,
                    counters: cells,
                    producers_done: producers_done.clone(),
                    waker,
                    limit: c.limit,
                    limit_hit: {
                        let hit = Arc::new(AtomicBool::new(false));
                        limit_hits.push(hit.clone());
                        hit
                    },
                });
            } else {
                for ch in &mut channels {
                    ch.push(None);
                }
            }
            metas.push(ConsumerMeta { name: c.name.clone(), kind: c.kind, ports: subscribed, sink: sink_cells });
        }
        let forward_targets: Vec<usize> = config
            .consumers
            .iter()
            .filter(|c| c.kind == ConsumerKind::Forward)
            .filter_map(|c| c.to.as_deref().and_then(port_idx))
            .collect();

        // Symmetric steering: one program for every port's fanout group.
        let steer = (nworkers > 1 && config.engine.fanout == crate::config::FanoutMode::EbpfSymmetric)
            .then(ringwire_bpf::SymmetricSteer::load)
            .transpose()
            .map_err(|e| setup(format!("loading the ebpf-symmetric steering program: {}", error_chain(&e))))?;

        // Rings and sources, per worker.
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(nworkers);
        let mut fanout_ids: Vec<Option<u16>> = vec![None; ports.len()];
        let mut counters = Vec::new();
        let mut exhausted = Vec::new();
        let mut wakes = Vec::new();
        let mut commands = Vec::new();
        let mut applied = Vec::new();
        let mut finite = true;
        // With several workers and only files replayed as fast as possible,
        // every worker reads every file, a segment at a time; the sinks put
        // the segments back in file order. Forwarding keeps one worker per
        // file: a TX ring has no way to restore the order.
        let share_files = nworkers > 1
            && ports.iter().zip(&kinds).all(|(p, k)| !p.rx || matches!(k, PortKind::Pcap(_)) && p.pace == Pace::Fast)
            && !config.consumers.iter().any(|c| matches!(c.kind, ConsumerKind::Forward));
        let mut shared_files = Vec::with_capacity(ports.len());
        for (p, kind) in ports.iter().zip(&kinds) {
            shared_files.push(match kind {
                PortKind::Pcap(path) if share_files && p.rx => {
                    Some(Arc::new(SharedPcapReader::new(PcapReader::open(path)?)))
                }
                _ => None,
            });
        }
        for (w, &core) in config.engine.workers.iter().enumerate() {
            let mut sources = Vec::new();
            let mut tx: Vec<Option<TxRing>> = (0..ports.len()).map(|_| None).collect();
            for (i, (p, kind)) in ports.iter().zip(&kinds).enumerate() {
                let port_err = |source| EngineError::Port { port: p.display_name().into(), source };
                match kind {
                    PortKind::AfPacket(iface) => {
                        if p.rx {
                            finite = false;
                            let fanout = (nworkers > 1).then(|| {
                                let mut flags =
                                    config.engine.fanout.kernel_mode() | sys::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
                                if config.engine.fanout_defrag {
                                    flags |= sys::PACKET_FANOUT_FLAG_DEFRAG;
                                }
                                match fanout_ids[i] {
                                    Some(id) => u32::from(id) | (flags << 16),
                                    None => (flags | sys::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
                                }
                            });
                            let ring = RxRing::open(&RxRingOptions {
                                iface,
                                geometry: config.ring.rx_geometry(),
                                promisc: p.promisc,
                                filter: kernel_filters[i].as_deref().map(PortFilter::kernel),
                                fanout_program: steer.as_ref().map(ringwire_bpf::SymmetricSteer::fd),
                                fanout,
                            })
                            .map_err(port_err)?;
                            if fanout.is_some() && fanout_ids[i].is_none() {
                                let id = ring
                                    .fanout_id()
                                    .map_err(|source| port_err(RingError::Sys { iface: iface.clone(), source }))?;
                                fanout_ids[i] = Some(id);
                            }
                            if ring.geometry() != config.ring.rx_geometry() {
                                tracing::warn!(
                                    port = p.display_name(),
                                    blocks = ring.geometry().block_count,
                                    "RX ring shrunk"
                                );
                            }
                            sources.push(Source::Ring { port: i, ring });
                        }
                        if forward_targets.contains(&i) {
                            tx[i] = Some(
                                TxRing::open(&TxRingOptions {
                                    iface,
                                    block_size: config.ring.tx_block_size,
                                    block_count: config.ring.tx_block_count,
                                    frame_size: config.ring.tx_frame_size,
                                    pad_runts: true,
                                    sndbuf: 16 << 20,
                                })
                                .map_err(port_err)?,
                            );
                        }
                    }
                    PortKind::Pcap(path) => {
                        let reader = match &shared_files[i] {
                            Some(shared) => Some(FileReader::Shared {
                                reader: Arc::clone(shared),
                                refs: Vec::with_capacity(SEGMENT),
                            }),
                            None if p.rx && i % nworkers == w => Some(FileReader::Own(PcapReader::open(path)?)),
                            None => None,
                        };
                        if let Some(reader) = reader {
                            sources.push(Source::Pcap {
                                port: i,
                                reader,
                                filter: pcap_filters[i].as_ref().map(FilterFactory::instance).transpose()?,
                                pace: p.pace,
                                clock: None,
                                held: None,
                                done: false,
                            });
                        }
                    }
                }
            }
            let mut subs = vec![Vec::new(); ports.len()];
            for (ci, m) in metas.iter().enumerate() {
                for &p in &m.ports {
                    subs[p].push(ci);
                }
            }
            let mut consumers = Vec::with_capacity(config.consumers.len());
            for (ci, c) in config.consumers.iter().enumerate() {
                consumers.push(ConsumerInst {
                    filter: consumer_filters[ci].as_deref().map(FilterFactory::instance).transpose()?,
                    delivery: match c.kind {
                        ConsumerKind::Counter => Delivery::Counter,
                        ConsumerKind::Forward => Delivery::Forward {
                            to_port: c.to.as_deref().and_then(port_idx).expect("validated: forward target exists"),
                        },
                        ConsumerKind::Pcap | ConsumerKind::Print => Delivery::Queued(Producer::new(
                            channels[w][ci].clone().expect("queued consumers have channels"),
                            c.snaplen as usize,
                        )),
                    },
                });
            }
            let wc = Arc::new(WorkerCounters::new(core, ports.len(), config.consumers.len()));
            counters.push(wc.clone());
            let ex = Arc::new(AtomicBool::new(false));
            exhausted.push(ex.clone());
            let wake = sys::eventfd().map_err(|e| setup(error_chain(&e)))?;
            let wake_dup = wake.try_clone().map_err(|e| setup(format!("dup eventfd: {e}")))?;
            wakes.push(wake);
            commands.push(Arc::new(ArrayQueue::new(COMMAND_QUEUE)));
            applied.push(Arc::new(AtomicU64::new(0)));
            workers.push(Worker {
                core,
                sources,
                dispatch: Dispatch {
                    index: w as u16,
                    consumers,
                    subs,
                    tx,
                    ports: vec![[0; pc::N]; ports.len()],
                    cons: vec![[0; cc::N]; config.consumers.len()],
                    verdicts: [ringwire_filters::Verdict::Pass; BATCH],
                    stop: stop.clone(),
                },
                commands: commands.last().expect("pushed above").clone(),
                applied: applied.last().expect("pushed above").clone(),
                counters: wc,
                wait: config.engine.wait,
                wake: wake_dup,
                stop: stop.clone(),
                exhausted: ex,
                retire_timeout: Duration::from_millis(u64::from(config.ring.retire_timeout_ms)),
            });
        }

        // Built before any thread starts: if a spawn fails, dropping it stops
        // and joins whatever did start.
        let mut engine = Self {
            port_is_afpacket: kinds.iter().map(|k| matches!(k, PortKind::AfPacket(_))).collect(),
            port_names,
            consumers: metas,
            counters,
            stop,
            wakes,
            workers: Vec::new(),
            exhausted,
            producers_done,
            limit_hits,
            sink_wakers: wakers,
            commands,
            applied,
            filters: Mutex::new(FilterState {
                consumers: consumer_filters,
                consumer_text: config.consumers.iter().map(|c| c.filter.clone()).collect(),
                port_text: config.ports.iter().map(|p| p.filter.clone()).collect(),
                port_filters: kernel_filters,
                sent: vec![0; nworkers],
                config: config.clone(),
            }),
            sinks: Vec::new(),
            started: Instant::now(),
            finite,
            _steer: steer,
        };
        for t in sink_tasks {
            let name = format!("rw-sink-{}", t.name);
            engine.sinks.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || run_sink(t))
                    .map_err(|e| setup(format!("spawn consumer thread: {e}")))?,
            );
        }
        for (i, w) in workers.into_iter().enumerate() {
            engine.workers.push(
                std::thread::Builder::new()
                    .name(format!("rw-worker-{i}"))
                    .spawn(move || w.run())
                    .map_err(|e| setup(format!("spawn worker: {e}")))?,
            );
        }
        tracing::info!(workers = nworkers, ports = ports.len(), consumers = engine.consumers.len(), "engine started");
        engine.started = Instant::now();
        Ok(engine)
    }

    /// Swap filters to those in `new` while traffic flows: every changed
    /// consumer filter and afpacket port filter is built first, off the hot
    /// path (a failure changes nothing and returns the error); then each
    /// worker applies the changes between two batches, so every frame meets
    /// either the old or the new filter, never a half-built one and never
    /// none. Returns a line per change; other differences in `new` (ports,
    /// consumers, workers) are reported as needing a restart.
    ///
    /// # Errors
    /// The filter that does not compile / parse / load, unchanged state.
    pub fn reload_filters(&self, new: &Config) -> Result<Vec<String>, EngineError> {
        let mut st = self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = &st.config;
        let mut notes = Vec::new();
        let same_shape = old.engine == new.engine
            && old.ring == new.ring
            && old.ports.len() == new.ports.len()
            && old.consumers.len() == new.consumers.len()
            && old.ports.iter().zip(&new.ports).all(|(a, b)| a.display_name() == b.display_name() && a.uri == b.uri)
            && old.consumers.iter().zip(&new.consumers).all(|(a, b)| {
                let mut b = b.clone();
                b.filter.clone_from(&a.filter);
                b.on_filter_failure = a.on_filter_failure;
                *a == b
            });
        if !same_shape {
            notes.push("changes other than filters (ports, consumers, workers, rings) need a restart; only filters were reloaded".into());
        }
        new.validate()?;
        let nworkers = self.commands.len();
        // Build everything first.
        let mut consumer_changes = Vec::new();
        for (ci, c) in new.consumers.iter().enumerate().take(st.consumer_text.len()) {
            let unchanged = st.consumer_text[ci] == c.filter
                && st.config.consumers.get(ci).is_some_and(|o| o.on_filter_failure == c.on_filter_failure);
            if unchanged || st.config.consumers.get(ci).is_none_or(|o| o.name != c.name) {
                continue;
            }
            let live = new.live_iface_for(c);
            let factory = c
                .filter
                .as_ref()
                .map(|f| FilterFactory::chain(&f.stages(), c.on_filter_failure.into(), live.as_deref()))
                .transpose()?
                .map(Arc::new);
            let instances = (0..nworkers)
                .map(|_| factory.as_deref().map(FilterFactory::instance).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            consumer_changes.push((ci, factory, instances, c.filter.clone()));
        }
        let mut port_changes = Vec::new();
        for (pi, p) in new.ports.iter().enumerate().take(st.port_text.len()) {
            if st.port_text[pi] == p.filter || st.config.ports.get(pi).is_none_or(|o| o.uri != p.uri) {
                continue;
            }
            match p.kind() {
                Ok(PortKind::AfPacket(iface)) => {
                    // Loaded (or compiled) here, off the hot path: an error leaves the filter in force.
                    let filter = Arc::new(PortFilter::build(p, &iface, &new.classifier)?);
                    port_changes.push((pi, filter, p.filter.clone()));
                }
                _ => notes.push(format!("port `{}`: a pcap port's filter changes on restart", p.display_name())),
            }
        }
        // Then hand them to the workers: all or nothing, so first make sure
        // every worker's queue has room for every change.
        let needed = consumer_changes.len() + port_changes.len();
        if let Some(w) = self.commands.iter().position(|q| q.capacity() - q.len() < needed) {
            return Err(setup(format!("worker {w} has not applied earlier changes yet; nothing changed, try again")));
        }
        // The classifier's table changes in the maps the attached programs
        // read: the next frame meets the new entries, nothing is reattached.
        if st.config.classifier != new.classifier {
            let (old_table, new_table) = (
                st.config.classifier.table().unwrap_or_default(),
                new.classifier.table().map_err(ConfigError::Invalid)?,
            );
            let default = new.classifier.default.into();
            let mut used = false;
            for (pi, c) in st.classifiers() {
                used = true;
                let (added, changed, removed) = update_classifier(c, default, &old_table, &new_table)
                    .map_err(|source| EngineError::Bpf { port: self.port_names[pi].clone(), source })?;
                notes.push(format!(
                    "port `{}`: classifier table updated in place: {added} added, {changed} changed, {removed} removed, default {:?}",
                    self.port_names[pi], new.classifier.default
                ));
            }
            if !used {
                notes.push("classifier table stored; no port has filter = \"classifier\"".into());
            }
            st.config.classifier = new.classifier.clone();
        }
        let mut sent = st.sent.clone();
        for (ci, factory, instances, text) in consumer_changes {
            for (w, filter) in instances.into_iter().enumerate() {
                self.send(w, Command::SetFilter { consumer: ci, filter }, &mut sent);
            }
            notes.push(format!(
                "consumer `{}`: filter now {}",
                new.consumers[ci].name,
                text.as_ref().map_or_else(|| "(none)".to_owned(), FilterList::display)
            ));
            st.consumers[ci] = factory;
            st.consumer_text[ci] = text;
        }
        for (pi, filter, text) in port_changes {
            for w in 0..nworkers {
                self.send(w, Command::SetPortFilter { port: pi, filter: filter.clone() }, &mut sent);
            }
            st.port_filters[pi] = Some(filter);
            notes.push(format!(
                "port `{}`: kernel filter now {}",
                new.ports[pi].display_name(),
                text.as_deref().unwrap_or("(none)")
            ));
            st.port_text[pi] = text;
        }
        for w in &self.wakes {
            sys::eventfd_signal(w.as_raw_fd());
        }
        // Wait (bounded) until every worker has applied them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.applied.iter().zip(&sent).any(|(a, s)| a.load(Ordering::Acquire) < *s) {
            if Instant::now() > deadline || self.workers.iter().any(JoinHandle::is_finished) {
                notes.push("not every worker confirmed the swap within 5 s".into());
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        st.sent = sent;
        st.config.consumers.iter_mut().zip(&new.consumers).for_each(|(o, n)| {
            o.filter.clone_from(&n.filter);
            o.on_filter_failure = n.on_filter_failure;
        });
        st.config.ports.iter_mut().zip(&new.ports).for_each(|(o, n)| o.filter.clone_from(&n.filter));
        Ok(notes)
    }

    /// The configuration in force (filters and the classifier table as last
    /// changed by a reload or the control socket).
    #[must_use]
    pub fn current_config(&self) -> Config {
        self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).config.clone()
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
    ) -> Result<Vec<String>, EngineError> {
        let mut st = self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ports = Vec::new();
        for (pi, c) in st.classifiers() {
            c.insert(key, action).map_err(|source| EngineError::Bpf { port: self.port_names[pi].clone(), source })?;
            ports.push(self.port_names[pi].clone());
        }
        st.config.classifier.set(key, action);
        Ok(ports)
    }

    /// Remove a classifier entry from every port running the classifier.
    /// Returns the ports it was removed from.
    ///
    /// # Errors
    /// A map operation failed (the port named).
    pub fn classifier_remove(&self, key: ringwire_bpf::ClassKey) -> Result<Vec<String>, EngineError> {
        let mut st = self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ports = Vec::new();
        for (pi, c) in st.classifiers() {
            if c.remove(key).map_err(|source| EngineError::Bpf { port: self.port_names[pi].clone(), source })? {
                ports.push(self.port_names[pi].clone());
            }
        }
        st.config.classifier.remove(key);
        Ok(ports)
    }

    /// Whether any port runs the classifier.
    #[must_use]
    pub fn runs_classifier(&self) -> bool {
        self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).classifiers().next().is_some()
    }

    /// Queue a command (room was checked for the whole reload first, and
    /// reloads are serialized, so the queue cannot be full here).
    fn send(&self, worker: usize, cmd: Command, sent: &mut [u64]) {
        if self.commands[worker].push(cmd).is_ok() {
            sent[worker] += 1;
        } else {
            tracing::error!(worker, "command queue full despite the room check; change not sent");
        }
    }

    /// Whether every source is a file (the engine ends by itself).
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.finite
    }

    /// Whether the engine should be stopped now, and why.
    #[must_use]
    pub fn should_stop(&self) -> Option<StopReason> {
        if self.limit_hits.iter().any(|h| h.load(Ordering::Relaxed)) {
            Some(StopReason::LimitReached)
        } else if self.finite && self.exhausted.iter().all(|e| e.load(Ordering::Acquire)) {
            Some(StopReason::SourcesExhausted)
        } else if self.workers.iter().any(JoinHandle::is_finished) {
            Some(StopReason::WorkerExited)
        } else {
            None
        }
    }

    /// Current counters (queues not necessarily drained).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(false)
    }

    fn snapshot_with(&self, drained: bool) -> Snapshot {
        let mut ports: Vec<PortSnap> =
            self.port_names.iter().map(|n| PortSnap { name: n.clone(), ..Default::default() }).collect();
        let mut workers = Vec::new();
        let mut consumers: Vec<ConsumerSnap> = self
            .consumers
            .iter()
            .map(|m| ConsumerSnap { name: m.name.clone(), kind: kind_name(m.kind).into(), ..Default::default() })
            .collect();
        for (w, wc) in self.counters.iter().enumerate() {
            let mut ws = WorkerSnap { index: w, core: wc.core, ..Default::default() };
            for (p, cells) in wc.ports.iter().enumerate() {
                let v = cells.load();
                let s = &mut ports[p];
                s.received += v[pc::RECEIVED];
                s.bytes += v[pc::BYTES];
                s.vlan_restored += v[pc::VLAN_RESTORED];
                s.filtered += v[pc::FILTERED];
                s.kernel_packets += v[pc::KERNEL_PACKETS];
                s.kernel_drops += v[pc::KERNEL_DROPS];
                s.kernel_freezes += v[pc::KERNEL_FREEZES];
                s.tx_frames += v[pc::TX_FRAMES];
                s.tx_busy += v[pc::TX_BUSY];
                ws.received += v[pc::RECEIVED];
                ws.bytes += v[pc::BYTES];
                ws.kernel_drops += v[pc::KERNEL_DROPS];
                ws.kernel_packets += v[pc::KERNEL_PACKETS];
            }
            for (c, cells) in wc.consumers.iter().enumerate() {
                let v = cells.load();
                let s = &mut consumers[c];
                s.seen += v[cc::SEEN];
                s.passed += v[cc::PASSED];
                s.filtered += v[cc::FILTERED];
                s.delivered += v[cc::DELIVERED];
                s.queue_dropped += v[cc::QUEUE_DROPPED];
                s.per_worker.push(v[cc::DELIVERED]);
            }
            workers.push(ws);
        }
        let st = self.filters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (s, f) in consumers.iter_mut().zip(&st.consumers) {
            if let Some(f) = f {
                s.filter = Some(f.text().to_owned());
                s.filter_stages = f
                    .stage_stats()
                    .into_iter()
                    .map(|t| StageSnap {
                        filter: t.filter,
                        evaluated: t.evaluated,
                        passed: t.passed,
                        dropped: t.evaluated - t.passed,
                    })
                    .collect();
                if let Some(h) = f.health() {
                    s.filter_errors = h.errors;
                    s.filter_quarantined = h.quarantined;
                }
            }
        }
        for (s, f) in ports.iter_mut().zip(&st.port_filters) {
            let Some(f) = f.as_deref() else { continue };
            if let Some(prog) = f.ebpf() {
                s.ebpf = prog.counters().map(|(seen, passed)| crate::stats::EbpfSnap {
                    seen,
                    passed,
                    filtered: seen.saturating_sub(passed),
                });
            }
            if let PortFilter::Classifier(c) = f {
                match c.entries() {
                    Ok(entries) => s.classifier = entries.iter().map(crate::stats::ClassSnap::from).collect(),
                    Err(e) => {
                        tracing::warn!(port = %s.name, error = %error_chain(&e), "cannot read the classifier table")
                    }
                }
            }
        }
        drop(st);
        for (s, m) in consumers.iter_mut().zip(&self.consumers) {
            if let Some(cells) = &m.sink {
                let v = cells.load();
                s.written = v[sink::WRITTEN];
                s.written_bytes = v[sink::BYTES];
                s.over_limit = v[sink::OVER_LIMIT];
                s.write_errors = v[sink::WRITE_ERRORS];
            }
        }
        Snapshot { elapsed_s: self.started.elapsed().as_secs_f64(), ports, workers, consumers, drained }
    }

    /// Frames each consumer should have seen: the frames its ports passed on.
    #[must_use]
    pub fn expected_seen(&self, snap: &Snapshot) -> Vec<u64> {
        self.consumers
            .iter()
            .map(|m| m.ports.iter().map(|&p| snap.ports[p].received - snap.ports[p].filtered).sum())
            .collect()
    }

    /// Frames each afpacket port's kernel accepted that were never read
    /// (still in the ring when it closed).
    #[must_use]
    pub fn unread_at_close(&self, snap: &Snapshot) -> Vec<(String, u64)> {
        snap.ports
            .iter()
            .zip(&self.port_is_afpacket)
            .filter(|(_, a)| **a)
            .map(|(p, _)| (p.name.clone(), p.kernel_packets.saturating_sub(p.kernel_drops + p.received)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Stop: workers drain their rings and exit, consumers drain their
    /// queues and flush their files, and the final counters are taken.
    #[must_use]
    pub fn stop(mut self) -> Report {
        self.signal_stop();
        let mut errors = Vec::new();
        for (i, h) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("worker {i}: {e}")),
                Err(_) => errors.push(format!("worker {i} panicked")),
            }
        }
        self.producers_done.store(true, Ordering::Release);
        self.sink_wakers.iter().for_each(|w| w.unpark());
        let mut files = Vec::new();
        for h in std::mem::take(&mut self.sinks) {
            match h.join() {
                Ok(Ok(f)) => files.extend(f),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("a consumer thread panicked".into()),
            }
        }
        let snapshot = self.snapshot_with(true);
        let unreconciled = snapshot.reconcile(&self.expected_seen(&snapshot));
        let unread_at_close = self.unread_at_close(&snapshot);
        Report { snapshot, errors, files, unreconciled, unread_at_close }
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.wakes {
            sys::eventfd_signal(w.as_raw_fd());
        }
    }
}

impl Drop for Engine {
    /// An engine dropped without [`Engine::stop`] still stops its threads
    /// (they finish on their own; queued consumers flush once workers exit).
    fn drop(&mut self) {
        self.signal_stop();
        for h in std::mem::take(&mut self.workers) {
            let _ = h.join();
        }
        self.producers_done.store(true, Ordering::Release);
        self.sink_wakers.iter().for_each(|w| w.unpark());
        for h in std::mem::take(&mut self.sinks) {
            let _ = h.join();
        }
    }
}

fn kind_name(k: ConsumerKind) -> &'static str {
    match k {
        ConsumerKind::Counter => "counter",
        ConsumerKind::Forward => "forward",
        ConsumerKind::Pcap => "pcap",
        ConsumerKind::Print => "print",
    }
}
