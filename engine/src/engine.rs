//! Building, running and stopping the engine from a [`Config`].

use std::{
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_queue::ArrayQueue;
use ringwire_filters::{compile_expression, CompileTarget, FilterError, FilterFactory, QuarantinePolicy};

use crate::{
    config::{Config, ConfigError, ConsumerConfig, ConsumerKind, Pace, PortConfig, PortKind},
    consumer::{chunk_size, error_chain, run_sink, Channel, PcapOutput, Producer, SinkOutput, SinkTask, SinkWaker},
    ifstats::{IfDropTracker, LinkStats},
    pcapio::{PcapIoError, PcapReader, SharedPcapReader},
    ring::{Link, RingError, RxRing, RxRingOptions, TxRing, TxRingOptions},
    stats::{consumer as cc, port as pc, sink, Cells, ConsumerSnap, PortSnap, Snapshot, StageSnap, WorkerSnap},
    sys,
    worker::{
        Command, ConsumerInst, Delivery, Dispatch, FileReader, Source, Worker, WorkerFailure, WorkerResult, SEGMENT,
    },
};

/// Set by [`abort_start`]: rings not yet opened are not.
static START_ABORTED: AtomicBool = AtomicBool::new(false);

/// A signal ends the run before the engine has started: the rings not yet
/// opened are not opened (each is a system call that may take seconds
/// and gigabytes), and [`Engine::start`] returns [`EngineError::Interrupted`].
pub fn abort_start() {
    START_ABORTED.store(true, Ordering::SeqCst);
}

/// Why the engine could not start (or stopped badly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A signal ended the start ([`abort_start`]).
    #[error("interrupted by a signal while starting")]
    Interrupted,
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
    /// An eBPF filter, checked before it is attached anywhere, did not load.
    #[error("filter `{filter}`")]
    BpfFilter {
        /// The filter as given (`ebpf:FILE.o[:PROGRAM]`).
        filter: String,
        /// Why.
        #[source]
        source: Box<ringwire_bpf::BpfError>,
    },
    /// A filter did not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A consumer's filter did not compile.
    #[error("consumer `{consumer}`")]
    ConsumerFilter {
        /// The consumer's name.
        consumer: String,
        /// Why.
        #[source]
        source: Box<FilterError>,
    },
    /// A consumer's output file could not be created.
    #[error("consumer `{consumer}`")]
    Output {
        /// The consumer's name.
        consumer: String,
        /// Why.
        #[source]
        source: Box<PcapIoError>,
    },
    /// A pcap file could not be opened, read or created.
    #[error(transparent)]
    Pcap(#[from] PcapIoError),
    /// Several changes failed at once (a reload with more than one bad
    /// filter): each with its causes.
    #[error("{} changes failed: {}", .0.len(), .0.iter().enumerate().map(|(i, e)| format!("({}) {}", i + 1, crate::consumer::error_chain(e))).collect::<Vec<_>>().join("; "))]
    Several(Vec<EngineError>),
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
    /// Every source is a pcap file and all were read to the end (or removed).
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
    /// Accounting identities that do not hold (should be empty), among
    /// them an interface port's `kernel_packets != received + kernel_drops`.
    pub unreconciled: Vec<String>,
}

/// A port: configured at start or added at run time. A slot is never
/// reused: a removed port keeps its final counters under its index.
pub(crate) struct PortSlot {
    pub(crate) config: PortConfig,
    pub(crate) kind: PortKind,
    pub(crate) removed: bool,
    /// Its counters, one set per worker.
    pub(crate) cells: Vec<Arc<Cells<{ pc::N }>>>,
    /// Its kernel filter (afpacket ports with a filter).
    pub(crate) filter: Option<Arc<PortFilter>>,
    /// Whether every worker has a TX ring on it (a forwarding target).
    pub(crate) has_tx: bool,
    /// Why its interface, gone and back, could not be re-opened last time
    /// (logged once per distinct error).
    pub(crate) reattach_error: Option<String>,
    /// Receiving interface ports: the interface's receive drops since the
    /// port opened (see [`crate::ifstats`]).
    pub(crate) if_drops: Option<IfDropTracker>,
    /// Why its interface's counters could not be read last time (logged
    /// once per distinct error).
    pub(crate) if_drops_error: Option<String>,
    /// A removed port's kernel filter counts as they were when it was
    /// removed (its program and maps are gone).
    pub(crate) final_filter_counts: FilterCounts,
    /// An interface port: what its kernel filters no longer in force
    /// filtered (eBPF programs replaced or detached: their own counts), and
    /// whether one of them did not count (a pcap-filter expression, a
    /// program without a `ringwire_stats` map), which leaves the port's
    /// `filtered` for the run unknown.
    pub(crate) past_filtered: u64,
    pub(crate) past_uncounted: bool,
    /// When its kernel filter was last replaced (`None`: in force since
    /// the port opened), and the frames its socket had taken once that
    /// filter had settled ([`FILTER_SETTLED`] later; `u64::MAX` until read):
    /// what a silent program is told by.
    pub(crate) filter_since: Option<Instant>,
    pub(crate) taken_at_filter: AtomicU64,
    /// A pcap port's filter's plugins' health (its errors and quarantine).
    pub(crate) filter_health: Option<ringwire_filters::HealthHandle>,
    /// A pcap port: why its file ended badly (truncated, corrupt), once it has.
    pub(crate) failed: Arc<std::sync::OnceLock<String>>,
    /// What the log last said of its kernel drops.
    pub(crate) drops_said: DropsSaid,
}

/// A kernel port filter's own counts: an eBPF program's, or the
/// classifier's entries with their hits.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterCounts {
    pub(crate) ebpf: Option<crate::stats::EbpfSnap>,
    pub(crate) classifier: Vec<crate::stats::ClassSnap>,
}

impl FilterCounts {
    /// Read port `port`'s filter `f`'s counts now.
    pub(crate) fn read(f: &PortFilter, port: &str) -> Self {
        let mut out = Self::default();
        if let Some(prog) = f.ebpf() {
            out.ebpf = prog.counters().map(|(seen, passed)| crate::stats::EbpfSnap {
                program: prog.serial(),
                seen,
                passed,
                filtered: seen.saturating_sub(passed),
            });
        }
        if let PortFilter::Classifier(c) = f {
            match c.entries() {
                Ok(entries) => out.classifier = entries.iter().map(crate::stats::ClassSnap::from).collect(),
                Err(e) => tracing::warn!(port, error = %error_chain(&e), "cannot read the classifier table"),
            }
        }
        out
    }
}

impl PortSlot {
    /// The kernel filter in force is about to be replaced (a swap, an
    /// attach or detach, a reload, a re-open): keep what it filtered.
    pub(crate) fn retire_filter(&mut self) {
        if !matches!(self.kind, PortKind::AfPacket(_)) {
            return;
        }
        let name = self.config.display_name().to_owned();
        let taken = self.cells.iter().map(|c| taken(&c.load())).sum::<u64>();
        match self.filter.as_deref().and_then(|f| FilterCounts::read(f, &name).ebpf) {
            Some(e) if self.ebpf_silent(&e, taken).is_some() => self.past_uncounted = true,
            Some(e) => self.past_filtered += e.filtered,
            None if self.config.filter.as_deref().is_some_and(|f| !f.is_empty()) => self.past_uncounted = true,
            None => {}
        }
        self.filter_since = Some(Instant::now());
        self.taken_at_filter.store(u64::MAX, Ordering::Relaxed);
    }

    /// Once its replaced kernel filter has settled, note the frames its
    /// socket had taken (see [`PortSlot::ebpf_silent`]).
    fn settle_filter(&self) {
        if self.filter_since.is_some_and(|since| since.elapsed() >= FILTER_SETTLED)
            && self.taken_at_filter.load(Ordering::Relaxed) == u64::MAX
        {
            let taken = self.cells.iter().map(|c| taken(&c.load())).sum::<u64>();
            self.taken_at_filter.store(taken, Ordering::Relaxed);
        }
    }

    /// Whether the eBPF program in force, whose counts are `e`, counts
    /// nothing in its map though the port's socket took frames through it
    /// (`taken` in all; it returns without `ringwire_verdict()`): how many
    /// it took. A program put
    /// in force later is judged on the frames taken once it had settled:
    /// the workers' counts of the socket's frames are up to a tick old, and
    /// the first reads after it came in force may still count frames its
    /// predecessor passed.
    fn ebpf_silent(&self, e: &crate::stats::EbpfSnap, taken: u64) -> Option<u64> {
        let before = match self.filter_since {
            None => 0,
            // (Noted by the supervisor once the program has settled: `settle_filters`.)
            Some(_) => match self.taken_at_filter.load(Ordering::Relaxed) {
                u64::MAX => return None,
                before => before,
            },
        };
        (e.seen == 0 && taken > before).then(|| taken - before)
    }

    /// Its interface's state: the worst any worker's socket saw (up for a
    /// port on no interface).
    pub(crate) fn link(&self) -> Link {
        Link::from_code(self.cells.iter().map(|c| c.load()[pc::LINK]).max().unwrap_or(0))
    }
}

/// How long after an eBPF program is put in force the frames its port's
/// socket takes are surely its own in the workers' counts (a tick of 100
/// ms, and one more for the read that started before it).
const FILTER_SETTLED: Duration = Duration::from_millis(300);

/// The frames a port's socket took, from one worker's cells `v`: the
/// kernel's count, read every 100 ms, but never below the frames the
/// worker took and those the kernel dropped, which it counts as it goes.
fn taken(v: &[u64; pc::N]) -> u64 {
    v[pc::KERNEL_PACKETS].max(v[pc::RECEIVED] + v[pc::KERNEL_DROPS])
}

/// A queued consumer's thread and what the engine keeps of it.
pub(crate) struct SinkHandle {
    pub(crate) cells: Arc<Cells<{ sink::N }>>,
    pub(crate) waker: Arc<SinkWaker>,
    /// Raised once no worker will produce for it again: drain, flush, stop.
    pub(crate) done: Arc<AtomicBool>,
    pub(crate) limit_hit: Arc<AtomicBool>,
    /// The thread's `SCHED_FIFO` priority, which it follows (see [`consumer_rt_priority`]).
    pub(crate) rt_priority: Arc<AtomicU8>,
    pub(crate) thread: Option<SinkThread>,
}

/// A queued consumer's thread: it returns the files it wrote.
pub(crate) type SinkThread = JoinHandle<Result<Vec<PathBuf>, String>>;

impl SinkHandle {
    /// Tell the thread no more frames come, and wait for it to flush.
    pub(crate) fn finish(&mut self, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
        self.finish_within(None, files, errors);
    }

    /// Like [`SinkHandle::finish`], but wait at most `limit` (`None`: as
    /// long as it takes); `false` if the thread is still writing (it is
    /// joined by a later `finish`).
    pub(crate) fn finish_within(
        &mut self,
        limit: Option<Duration>,
        files: &mut Vec<PathBuf>,
        errors: &mut Vec<String>,
    ) -> bool {
        self.done.store(true, Ordering::Release);
        self.waker.unpark();
        if let Some(limit) = limit {
            let deadline = Instant::now() + limit;
            while self.thread.as_ref().is_some_and(|h| !h.is_finished()) {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.join(files, errors);
        true
    }

    fn join(&mut self, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
        if let Some(h) = self.thread.take() {
            match h.join() {
                Ok(Ok(f)) => files.extend(f),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("a consumer thread panicked".into()),
            }
        }
    }
}

/// A consumer: configured at start or added at run time; never reused.
pub(crate) struct ConsumerSlot {
    pub(crate) config: ConsumerConfig,
    pub(crate) removed: bool,
    /// The port slots it takes frames from.
    pub(crate) ports: Vec<usize>,
    /// Its counters, one set per worker.
    pub(crate) cells: Vec<Arc<Cells<{ cc::N }>>>,
    /// Its filter in force.
    pub(crate) factory: Option<Arc<FilterFactory>>,
    /// The plugins' health of the filters it had before (replaced or
    /// detached) that a worker may still run (the swap was not confirmed):
    /// their errors and quarantines stay counted.
    pub(crate) past_filters: Vec<ringwire_filters::HealthHandle>,
    /// The errors and quarantines of earlier filters no worker runs any
    /// more, summed when they were replaced (so a filter swapped every
    /// second holds no memory per swap).
    pub(crate) past_health: ringwire_filters::FilterHealthSum,
    /// What its filter had counted when it was dropped with the consumer
    /// (its code, a plugin's, is unloaded): the counters go on saying which
    /// filter made `passed` and `filtered`.
    pub(crate) final_filter: Option<FilterReport>,
    pub(crate) sink: Option<SinkHandle>,
    /// A latency probe's published histograms and counters.
    pub(crate) probe: Option<Arc<crate::probe::ProbeShared>>,
    /// A queued consumer's drops on a full queue, as last logged.
    pub(crate) drops_said: DropsSaid,
}

/// What the log last said of frames dropped: a queued consumer's on a full
/// queue, a port's by the kernel on a full RX ring (see [`Engine::warn_drops`]).
#[derive(Debug, Default)]
pub(crate) struct DropsSaid {
    /// Its `queue_dropped` then.
    count: u64,
    /// When.
    at: Option<Instant>,
}

impl DropsSaid {
    /// With `dropped` frames dropped so far: the frames the log has not
    /// told of and, after a first telling, over how long (`" in the last
    /// N s"`), when it is time to tell them.
    fn news(&mut self, dropped: u64) -> Option<(u64, String)> {
        // (Counters reset by `stats reset`.)
        self.count = self.count.min(dropped);
        if dropped == self.count || self.at.is_some_and(|t| t.elapsed() < DROPS_SAID_EVERY) {
            return None;
        }
        let since = self.at.map_or_else(String::new, |t| format!(" in the last {:.0} s", t.elapsed().as_secs_f64()));
        let n = dropped - self.count;
        *self = Self { count: dropped, at: Some(Instant::now()) };
        Some((n, since))
    }
}

/// How long a stop waits for a consumer's thread before saying that it waits.
const STOP_PATIENCE: Duration = Duration::from_secs(2);

/// How often the log says at most that a consumer goes on dropping frames.
const DROPS_SAID_EVERY: Duration = Duration::from_secs(10);

/// A consumer filter's text and counters, as a snapshot shows them.
#[derive(Clone, Debug)]
pub(crate) struct FilterReport {
    text: String,
    serial: u64,
    stages: Vec<StageSnap>,
    errors: u64,
    quarantined: Option<String>,
}

impl FilterReport {
    /// What filter `f` has counted so far.
    pub(crate) fn of(f: &FilterFactory) -> Self {
        let stages = f
            .stage_stats()
            .into_iter()
            .map(|t| StageSnap {
                filter: t.filter,
                evaluated: t.evaluated,
                passed: t.passed,
                dropped: t.evaluated.saturating_sub(t.passed),
            })
            .collect();
        let (errors, quarantined) = f.health().map_or((0, None), |h| (h.errors, h.quarantined));
        Self { text: f.text().to_owned(), serial: f.serial(), stages, errors, quarantined }
    }

    fn fill(self, s: &mut ConsumerSnap) {
        s.filter = Some(self.text);
        s.filter_serial = self.serial;
        s.filter_stages = self.stages;
        s.filter_errors += self.errors;
        s.filter_quarantines += u64::from(self.quarantined.is_some());
        s.filter_quarantined = self.quarantined;
    }
}

impl ConsumerSlot {
    /// Whether its queues or probe tables may still hold memory: it is in
    /// force, or it was removed but its thread has not been joined (a worker
    /// did not confirm the removal in time, or the thread was still writing).
    pub(crate) fn holds_memory(&self) -> bool {
        !self.removed || self.sink.as_ref().is_some_and(|s| s.thread.is_some())
    }
}

/// Everything that changes while the engine runs. Changes are serialized
/// by the lock; the workers learn of them through their command queues.
pub(crate) struct State {
    pub(crate) ports: Vec<PortSlot>,
    pub(crate) consumers: Vec<ConsumerSlot>,
    /// The settings in force (engine, rings, control, classifier); its
    /// ports and consumers lists are unused: the slots are the truth.
    pub(crate) base: Config,
    /// Commands sent to each worker so far.
    pub(crate) sent: Vec<u64>,
    /// Whether forward consumers send (`forwarding.start` / `stop`).
    pub(crate) forwarding: bool,
    /// Filters loaded by name from the control socket.
    pub(crate) named: std::collections::BTreeMap<String, crate::live::NamedFilter>,
    /// Files written and errors met by consumers removed at run time.
    pub(crate) files: Vec<PathBuf>,
    pub(crate) errors: Vec<String>,
    /// Every worker reads every file a segment at a time (see `Engine::start`).
    pub(crate) share_files: bool,
    /// The rtnetlink socket interface drops are read through, opened on
    /// first use (`Err`: it could not be, said once).
    pub(crate) link_stats: Option<Result<LinkStats, ()>>,
}

impl State {
    /// The ports running the classifier: (port index, its classifier).
    pub(crate) fn classifiers(&self) -> impl Iterator<Item = (usize, &ringwire_bpf::Classifier)> {
        self.ports.iter().enumerate().filter(|(_, p)| !p.removed).filter_map(|(pi, p)| match p.filter.as_deref() {
            Some(PortFilter::Classifier(c)) => Some((pi, c)),
            _ => None,
        })
    }

    /// Read the receive drops of every active receiving interface port's
    /// interface (see [`crate::ifstats`]). Not on a worker: once per
    /// snapshot, and when a port opens or is removed.
    pub(crate) fn read_if_drops(&mut self) {
        if !self.ports.iter().any(|p| !p.removed && p.if_drops.is_some()) {
            return;
        }
        let stats = self.link_stats.get_or_insert_with(|| {
            LinkStats::new().map_err(|e| {
                tracing::warn!(
                    error = %error_chain(&e),
                    "cannot read interfaces' receive drops; ports report none (if_dropped, if_missed)"
                );
            })
        });
        let Ok(stats) = stats else { return };
        for p in self.ports.iter_mut().filter(|p| !p.removed) {
            let (Some(tracker), PortKind::AfPacket(iface)) = (p.if_drops.as_mut(), &p.kind) else { continue };
            match stats.drops(iface) {
                Ok(now) => {
                    tracker.update(now);
                    p.if_drops_error = None;
                }
                Err(e) => {
                    let e = error_chain(&e);
                    if p.if_drops_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(port = p.config.display_name(), error = %e, "cannot read the interface's receive drops");
                        p.if_drops_error = Some(e);
                    }
                }
            }
        }
    }

    /// The active port named `name`.
    pub(crate) fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| !p.removed && p.config.display_name() == name)
    }

    /// The active consumer named `name`.
    pub(crate) fn consumer_index(&self, name: &str) -> Option<usize> {
        self.consumers.iter().position(|c| !c.removed && c.config.name == name)
    }

    /// The configuration in force: the settings and the active ports and consumers.
    pub(crate) fn config(&self) -> Config {
        let mut c = self.base.clone();
        c.ports = self.ports.iter().filter(|p| !p.removed).map(|p| p.config.clone()).collect();
        c.consumers = self.consumers.iter().filter(|c| !c.removed).map(|c| c.config.clone()).collect();
        c
    }
}

/// Places in a worker's command queue.
const COMMAND_QUEUE: usize = 1024;

/// A running engine.
pub struct Engine {
    cores: Vec<usize>,
    stop: Arc<AtomicBool>,
    wakes: Vec<OwnedFd>,
    workers: Vec<JoinHandle<WorkerResult>>,
    exhausted: Vec<Arc<AtomicBool>>,
    /// Per worker: changes applied between batches, and how many it applied.
    commands: Vec<Arc<ArrayQueue<Command>>>,
    applied: Vec<Arc<AtomicU64>>,
    /// Per worker: how its thread was scheduled (see [`crate::stats::worker`]).
    sched_cells: Vec<Arc<Cells<{ crate::stats::worker::N }>>>,
    /// Ports, consumers and filters in force (see [`State`]).
    pub(crate) state: Mutex<State>,
    started: Instant,
    finite: bool,
    /// The fanout groups' steering program, if `ebpf-symmetric`.
    pub(crate) steer: Option<ringwire_bpf::SymmetricSteer>,
    /// `engine.cpu_latency_us`, held until the engine is dropped.
    _cpu_latency: Option<sys::CpuLatencyRequest>,
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
    pub(crate) fn build(
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
pub(crate) fn update_classifier(
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
pub(crate) fn ebpf_spec(filter: &Option<String>) -> Option<(&str, Option<&str>)> {
    let spec = filter.as_deref()?.trim().strip_prefix("ebpf:")?;
    // A program name never holds a `/` or a `.`; a path may hold `:`. An
    // empty name after the last `:` is the default program.
    Some(match spec.rsplit_once(':') {
        Some((path, "")) => (path, None),
        Some((path, prog)) if !prog.contains(['/', '.']) => (path, Some(prog)),
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
        let cores = sys::usable_cores();
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
        if config.engine.wait == crate::config::WaitMode::BusyPoll {
            let isolated = sys::isolated_cores();
            let shared: Vec<usize> = config.engine.workers.iter().copied().filter(|c| !isolated.contains(c)).collect();
            if !shared.is_empty() {
                tracing::info!(
                    cores = ?shared,
                    "busy-poll workers on cores not isolated from the scheduler: other tasks run there in turn \
                     and delay frames by their time slices (isolcpus= or an isolated cpuset partition keeps \
                     them off)"
                );
            }
        }
        let cpu_latency = config
            .engine
            .cpu_latency_us
            .map(|us| {
                let held = sys::CpuLatencyRequest::hold(us).map_err(|e| {
                    setup(format!(
                        "engine.cpu_latency_us: cannot hold a CPU latency request (/dev/cpu_dma_latency): {e}"
                    ))
                })?;
                tracing::info!(us, "holding a CPU latency request: idle cores stay within it");
                Ok::<_, EngineError>(held)
            })
            .transpose()?;
        let ports = &config.ports;
        let class_table = config.classifier.table().map_err(ConfigError::Invalid)?;
        if !class_table.is_empty() && !ports.iter().any(PortConfig::uses_classifier) {
            tracing::warn!(
                entries = class_table.len(),
                "[classifier] has entries but no port has filter = \"classifier\"; the table is not used"
            );
        }
        if config.engine.fanout_defrag
            && nworkers > 1
            && config.consumers.iter().any(|c| c.kind == crate::config::ConsumerKind::Forward)
        {
            tracing::warn!(
                "engine.fanout_defrag: consumers get each fragmented IP datagram reassembled, as one frame \
                 longer than the MTU, which forwarding cannot send (counted unfit): patches drop fragmented traffic"
            );
        }
        if config.engine.fanout_defrag && nworkers == 1 {
            tracing::warn!(
                "engine.fanout_defrag: with one worker there is no fanout group, and the kernel reassembles \
                 fragments only for one: consumers get the fragments as they were on the wire"
            );
        }
        // Symmetric steering: one program for every port's fanout group.
        let steer = (nworkers > 1 && config.engine.fanout == crate::config::FanoutMode::EbpfSymmetric)
            .then(ringwire_bpf::SymmetricSteer::load)
            .transpose()
            .map_err(|e| setup(format!("loading the ebpf-symmetric steering program: {}", error_chain(&e))))?;
        let kinds: Vec<PortKind> =
            ports.iter().map(|p| p.kind().map_err(ConfigError::Invalid)).collect::<Result<_, _>>()?;
        // With several workers and only files replayed as fast as possible,
        // every worker reads every file, a segment at a time; the sinks put
        // the segments back in file order. Forwarding keeps one worker per
        // file: a TX ring has no way to restore the order; and so does a
        // latency probe: a flow's frames split over workers' tables would
        // read as gaps.
        let share_files = nworkers > 1
            && ports.iter().zip(&kinds).all(|(p, k)| !p.rx || matches!(k, PortKind::Pcap(_)) && p.pace == Pace::Fast)
            && !config.consumers.iter().any(|c| matches!(c.kind, ConsumerKind::Forward | ConsumerKind::Latency));
        let finite = !ports.iter().zip(&kinds).any(|(p, k)| receives_live(p.rx, k));

        let mut st = State {
            ports: Vec::new(),
            consumers: Vec::new(),
            base: Config { ports: Vec::new(), consumers: Vec::new(), ..config.clone() },
            sent: vec![0; nworkers],
            forwarding: true,
            named: std::collections::BTreeMap::new(),
            files: Vec::new(),
            errors: Vec::new(),
            share_files,
            link_stats: None,
        };
        // Per worker: its sources, TX rings, consumer instances.
        let mut sources: Vec<Vec<Source>> = (0..nworkers).map(|_| Vec::new()).collect();
        let mut txs: Vec<Vec<Option<TxRing>>> =
            (0..nworkers).map(|_| (0..ports.len()).map(|_| None).collect()).collect();
        let mut insts: Vec<Vec<Option<ConsumerInst>>> = (0..nworkers).map(|_| Vec::new()).collect();
        // Every RX ring's share of memory, decided before the first is allocated.
        let rings = ports.iter().zip(&kinds).filter(|(p, k)| receives_live(p.rx, k)).count();
        let budget = crate::ring::ring_budget(rings * nworkers);
        for (i, p) in ports.iter().enumerate() {
            let opened = open_port(&st, p, i, nworkers, steer.as_ref(), share_files, budget)?;
            st.ports.push(opened.slot);
            for (w, s) in opened.sources.into_iter().enumerate() {
                sources[w].extend(s);
            }
        }
        st.read_if_drops();
        for c in &config.consumers {
            if let Some(to) = c.to.as_deref().and_then(|n| st.port_index(n)) {
                if !st.ports[to].has_tx {
                    for (w, tx) in open_tx(&st, to)?.0.into_iter().enumerate() {
                        txs[w][to] = Some(tx);
                    }
                    st.ports[to].has_tx = true;
                }
            }
        }
        let mut sink_tasks = Vec::new();
        for c in &config.consumers {
            let built = build_consumer(&st, c, nworkers)?;
            for (w, inst) in built.insts.into_iter().enumerate() {
                insts[w].push(Some(inst));
            }
            sink_tasks.extend(built.task);
            st.consumers.push(built.slot);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(nworkers);
        let (mut exhausted, mut wakes, mut commands, mut applied) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut sched_cells = Vec::with_capacity(nworkers);
        let mut subs = vec![Vec::new(); ports.len()];
        for (ci, c) in st.consumers.iter().enumerate() {
            for &p in &c.ports {
                subs[p].push(ci);
            }
        }
        for (w, ((&core, sources), (tx, consumers))) in
            config.engine.workers.iter().zip(sources).zip(txs.into_iter().zip(insts)).enumerate()
        {
            let ex = Arc::new(AtomicBool::new(false));
            exhausted.push(ex.clone());
            let wake = sys::eventfd().map_err(|e| setup(error_chain(&e)))?;
            let wake_dup = wake.try_clone().map_err(|e| setup(format!("dup eventfd: {e}")))?;
            wakes.push(wake);
            commands.push(Arc::new(ArrayQueue::new(COMMAND_QUEUE)));
            applied.push(Arc::new(AtomicU64::new(0)));
            sched_cells.push(Arc::new(Cells::default()));
            workers.push(Worker {
                links: None,
                longest_seen: std::collections::HashMap::new(),
                core,
                sources,
                dispatch: Dispatch::new(w as u16, consumers, subs.clone(), tx, stop.clone()),
                port_cells: st.ports.iter().map(|p| Some(p.cells[w].clone())).collect(),
                cons_cells: st.consumers.iter().map(|c| Some(c.cells[w].clone())).collect(),
                armed: Vec::new(),
                cancels: Vec::new(),
                polls: 0,
                commands: commands.last().expect("pushed above").clone(),
                applied: applied.last().expect("pushed above").clone(),
                sched_cells: sched_cells.last().expect("pushed above").clone(),
                merging: false,
                wait: config.engine.wait,
                rt_priority: config.engine.worker_rt_priority,
                sched: sys::RtSched::default(),
                wake: wake_dup,
                stop: stop.clone(),
                exhausted: ex,
                retire_timeout: Duration::from_millis(u64::from(config.ring.retire_timeout_ms)),
            });
        }
        let (nports, nconsumers) = (st.ports.len(), st.consumers.len());

        // Built before any thread starts: if a spawn fails, dropping it stops
        // and joins whatever did start.
        let mut engine = Self {
            cores: config.engine.workers.clone(),
            stop,
            wakes,
            workers: Vec::new(),
            exhausted,
            commands,
            applied,
            sched_cells,
            state: Mutex::new(st),
            started: Instant::now(),
            finite,
            steer,
            _cpu_latency: cpu_latency,
        };
        for t in sink_tasks {
            let (ci, h) = spawn_sink(t)?;
            engine.lock().consumers[ci].sink.as_mut().expect("queued consumers have a sink").thread = Some(h);
        }
        for (i, w) in workers.into_iter().enumerate() {
            engine.workers.push(
                std::thread::Builder::new()
                    .name(format!("rw-worker-{i}"))
                    .spawn(move || w.run())
                    .map_err(|e| setup(format!("spawn worker: {e}")))?,
            );
        }
        tracing::info!(workers = nworkers, ports = nports, consumers = nconsumers, "engine started");
        engine.started = Instant::now();
        Ok(engine)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of workers.
    pub(crate) fn nworkers(&self) -> usize {
        self.commands.len()
    }

    /// Send each worker its commands and wait (at most 10 s) until every
    /// worker has applied them. All or nothing: if a queue lacks room for
    /// its commands, nothing is sent.
    ///
    /// Returns `false` if a worker did not confirm in time (the commands
    /// stay queued and apply when it gets to them).
    ///
    /// # Errors
    /// A queue is full: nothing was sent.
    pub(crate) fn send_and_wait(&self, st: &mut State, per_worker: Vec<Vec<Command>>) -> Result<bool, EngineError> {
        if let Some(w) = self.commands.iter().zip(&per_worker).position(|(q, c)| q.capacity() - q.len() < c.len()) {
            return Err(setup(format!("worker {w} has not applied earlier changes yet; nothing changed, try again")));
        }
        for (w, cmds) in per_worker.into_iter().enumerate() {
            for cmd in cmds {
                if self.commands[w].push(cmd).is_ok() {
                    st.sent[w] += 1;
                } else {
                    tracing::error!(worker = w, "command queue full despite the room check; change not sent");
                }
            }
            sys::eventfd_signal(self.wakes[w].as_raw_fd());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.applied.iter().zip(&st.sent).any(|(a, s)| a.load(Ordering::Acquire) < *s) {
            if Instant::now() > deadline || self.workers.iter().any(JoinHandle::is_finished) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(true)
    }

    /// The configuration in force: ports, consumers, filters and the
    /// classifier table as last changed by a reload or the control socket.
    #[must_use]
    pub fn current_config(&self) -> Config {
        self.lock().config()
    }

    /// The cores of the workers, in worker order.
    #[must_use]
    pub fn worker_cores(&self) -> &[usize] {
        &self.cores
    }

    /// Whether every source is a file (the engine ends by itself).
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.finite
    }

    /// Whether the engine receives from interfaces and every one of them is
    /// gone (deleted, or moved to another network namespace), with every
    /// file source read: nothing can arrive any more. `ringwire capture`
    /// then ends, as tcpdump does; `ringwire run` keeps serving its control
    /// socket, where the port can be removed and added again.
    #[must_use]
    pub fn interfaces_gone(&self) -> bool {
        !self.finite
            && self.exhausted.iter().all(|e| e.load(Ordering::Acquire))
            && self.lock().ports.iter().any(|p| !p.removed && p.link() == Link::Gone)
    }

    /// Whether the engine should be stopped now, and why.
    #[must_use]
    pub fn should_stop(&self) -> Option<StopReason> {
        let limit =
            self.lock().consumers.iter().filter_map(|c| c.sink.as_ref()).any(|s| s.limit_hit.load(Ordering::Relaxed));
        if limit {
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

    /// For each port whose kernel filter was replaced and has since
    /// settled, note the frames its socket had taken then: a silent eBPF
    /// program put in force at run time is known by the frames after it.
    /// The supervisor calls this every tick (a first snapshot may come
    /// much later).
    pub fn settle_filters(&self) {
        let st = self.lock();
        for slot in &st.ports {
            slot.settle_filter();
        }
    }

    /// Log that frames are dropped: by a queued consumer (a file or
    /// standard output) on a full queue, by the kernel on a port's full RX
    /// ring; when it begins, then at most every 10 s while it goes on, with
    /// the count since. The supervisor calls this every tick.
    pub fn warn_drops(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        for slot in st.consumers.iter_mut().filter(|c| !c.removed && c.config.kind.is_queued()) {
            let dropped: u64 = slot.cells.iter().map(|cells| cells.load()[cc::QUEUE_DROPPED]).sum();
            if let Some((n, since)) = slot.drops_said.news(dropped) {
                tracing::warn!(
                    "consumer `{}`: {n} frames dropped on a full queue{since}: its output takes frames more slowly \
                     than they come (queue_mb = {} MiB per worker); counted in queue_dropped",
                    slot.config.name,
                    slot.config.queue_mb
                );
            }
        }
        let ring = &st.base.ring;
        for slot in st.ports.iter_mut().filter(|p| !p.removed) {
            let dropped: u64 = slot.cells.iter().map(|cells| cells.load()[pc::KERNEL_DROPS]).sum();
            if let Some((n, since)) = slot.drops_said.news(dropped) {
                let geometry = if slot.config.low_latency {
                    String::new()
                } else {
                    format!(
                        ". A ring holds {} blocks of {} KiB, each handed over once full or after {} ms",
                        ring.block_count,
                        ring.block_size >> 10,
                        ring.retire_timeout_ms
                    )
                };
                tracing::warn!(
                    "port `{}`: {n} frames dropped by the kernel{since}: its RX ring was full, the engine fell \
                     behind (stalled, or more traffic than its workers take); counted in kernel_drops{geometry}",
                    slot.config.display_name(),
                );
            }
        }
    }

    fn snapshot_with(&self, drained: bool) -> Snapshot {
        let mut st = self.lock();
        st.read_if_drops();
        // Busy-poll workers' time off the core is reported.
        let busy_poll = st.base.engine.wait == crate::config::WaitMode::BusyPoll;
        // Consumers' counts first: a worker publishes its ports' counts before
        // its consumers', so the ports read after are at least as new, and no
        // consumer is seen to have taken more frames than its ports received.
        let consumer_counts: Vec<Vec<[u64; cc::N]>> =
            st.consumers.iter().map(|c| c.cells.iter().map(|cells| cells.load()).collect()).collect();
        let mut workers: Vec<WorkerSnap> = self
            .cores
            .iter()
            .enumerate()
            .map(|(index, &core)| {
                use crate::stats::worker as wk;
                let v = self.sched_cells[index].load();
                WorkerSnap {
                    index,
                    core,
                    cpu_ns: v[wk::CPU_NS],
                    waited_ns: v[wk::WAITED_NS],
                    off_core_ns: busy_poll.then_some(v[wk::OFF_NS]),
                    ..Default::default()
                }
            })
            .collect();
        let mut ports = Vec::with_capacity(st.ports.len());
        for slot in &st.ports {
            let mut s =
                PortSnap { name: slot.config.display_name().to_owned(), removed: slot.removed, ..Default::default() };
            let afpacket = matches!(slot.kind, PortKind::AfPacket(_));
            s.interface = afpacket;
            for (ws, cells) in workers.iter_mut().zip(&slot.cells) {
                let v = cells.load();
                // A worker reads the kernel's count every 100 ms but counts
                // frames as it takes them: mid-run, the kernel had accepted
                // at least the frames taken and those it dropped, so its
                // count is never shown below that (exact once drained).
                let kernel_packets = if afpacket && !drained { taken(&v) } else { v[pc::KERNEL_PACKETS] };
                s.received += v[pc::RECEIVED];
                s.bytes += v[pc::BYTES];
                s.vlan_restored += v[pc::VLAN_RESTORED];
                s.filtered += v[pc::FILTERED];
                s.kernel_packets += kernel_packets;
                s.kernel_drops += v[pc::KERNEL_DROPS];
                s.kernel_freezes += v[pc::KERNEL_FREEZES];
                s.tx_frames += v[pc::TX_FRAMES];
                s.tx_busy += v[pc::TX_BUSY];
                s.tx_unsent += v[pc::TX_UNSENT];
                // Each worker's socket sees the same interface: one count.
                s.link_downs = s.link_downs.max(v[pc::LINK_DOWNS]);
                ws.received += v[pc::RECEIVED];
                ws.bytes += v[pc::BYTES];
                ws.kernel_drops += v[pc::KERNEL_DROPS];
                ws.kernel_packets += kernel_packets;
            }
            s.if_drops = slot.if_drops.as_ref().map(IfDropTracker::total);
            // Watched where the engine has a socket on the interface: to
            // receive, or to forward to (a removed port has none any more).
            if matches!(slot.kind, PortKind::AfPacket(_)) && (slot.config.rx || slot.has_tx) && !slot.removed {
                s.link = Some(slot.link());
            }
            let counts = match slot.filter.as_deref() {
                Some(f) => FilterCounts::read(f, &s.name),
                None => slot.final_filter_counts.clone(),
            };
            (s.ebpf, s.classifier) = (counts.ebpf, counts.classifier);
            s.past_filtered = slot.past_filtered;
            // A program with a `ringwire_stats` map that does not count in it
            // (it returns without `ringwire_verdict()`): it saw none of the
            // frames the socket took. (The map is read now, the socket's
            // count up to 100 ms ago: a program that counts is never behind.)
            s.ebpf_silent_taken = s.ebpf.and_then(|e| slot.ebpf_silent(&e, s.kernel_packets)).unwrap_or(0);
            s.ebpf_silent = s.ebpf_silent_taken > 0;
            s.filtered_uncounted = s.ebpf_silent
                || slot.past_uncounted
                || afpacket && slot.config.filter.as_deref().is_some_and(|f| !f.is_empty()) && s.ebpf.is_none();
            s.error = slot.failed.get().cloned();
            if let Some(h) = slot.filter_health.as_ref().and_then(ringwire_filters::HealthHandle::read) {
                (s.filter_errors, s.filter_quarantined) = (h.errors, h.quarantined);
            }
            ports.push(s);
        }
        let mut consumers = Vec::with_capacity(st.consumers.len());
        for (ci, slot) in st.consumers.iter().enumerate() {
            let mut s = ConsumerSnap {
                name: slot.config.name.clone(),
                kind: kind_name(slot.config.kind).into(),
                removed: slot.removed,
                port_indices: slot.ports.clone(),
                ..Default::default()
            };
            for v in &consumer_counts[ci] {
                s.seen += v[cc::SEEN];
                s.passed += v[cc::PASSED];
                s.filtered += v[cc::FILTERED];
                s.delivered += v[cc::DELIVERED];
                s.delivered_bytes += v[cc::DELIVERED_BYTES];
                s.queue_dropped += v[cc::QUEUE_DROPPED];
                s.unfit += v[cc::UNFIT];
                s.egress_down += v[cc::EGRESS_DOWN];
                s.paused += v[cc::PAUSED];
                s.before_added += v[cc::JOINED];
                s.per_worker.push(v[cc::DELIVERED]);
            }
            let mut past = slot.past_health;
            slot.past_filters.iter().for_each(|h| past.add(h));
            s.filter_errors += past.errors;
            s.filter_quarantines += past.quarantines;
            match (&slot.factory, &slot.final_filter) {
                (Some(f), _) => FilterReport::of(f).fill(&mut s),
                (None, Some(r)) => r.clone().fill(&mut s),
                (None, None) => {}
            }
            if let Some(sink) = &slot.sink {
                let v = sink.cells.load();
                s.written = v[sink::WRITTEN];
                s.written_bytes = v[sink::BYTES];
                s.over_limit = v[sink::OVER_LIMIT];
                s.write_errors = v[sink::WRITE_ERRORS];
                s.output_closed = v[sink::OUTPUT_CLOSED];
                s.files = v[sink::FILES];
                if !drained {
                    s.bound_written_by_delivered();
                }
            }
            s.latency = slot.probe.as_ref().map(|p| {
                p.snapshot(|i| ports.get(usize::from(i)).map_or_else(|| format!("port {i}"), |p| p.name.clone()))
            });
            consumers.push(s);
        }
        Snapshot { elapsed_s: self.started.elapsed().as_secs_f64(), ports, workers, consumers, drained }
    }

    /// Frames each consumer should have seen: those its ports passed on
    /// while it was subscribed (from when it was added, until it was removed).
    #[must_use]
    pub fn expected_seen(&self, snap: &Snapshot) -> Vec<u64> {
        let st = self.lock();
        st.consumers
            .iter()
            .map(|c| {
                let sum = |i: usize| c.cells.iter().map(|cells| cells.load()[i]).sum::<u64>();
                let until = if c.removed {
                    sum(cc::LEFT)
                } else {
                    c.ports.iter().map(|&p| snap.ports[p].received.saturating_sub(snap.ports[p].filtered)).sum()
                };
                until.saturating_sub(sum(cc::JOINED))
            })
            .collect()
    }

    /// Stop: workers drain their rings and exit, consumers drain their
    /// queues and flush their files, and the final counters are taken.
    #[must_use]
    pub fn stop(mut self) -> Report {
        self.signal_stop();
        let (mut errors, mut unread) = (Vec::new(), Vec::new());
        for (i, h) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(WorkerFailure::Source(e))) => unread.push(format!("worker {i}: {e}")),
                Ok(Err(e)) => errors.push(format!("worker {i}: {e}")),
                Err(_) => errors.push(format!("worker {i} panicked")),
            }
        }
        let mut files = Vec::new();
        let mut st = self.lock();
        files.append(&mut st.files);
        errors.append(&mut st.errors);
        for c in &mut st.consumers {
            if let Some(s) = &mut c.sink {
                // A writer that takes long (a slow disk, a pipe's reader that
                // does not read): said, as the stop waits for it.
                if !s.finish_within(Some(STOP_PATIENCE), &mut files, &mut errors) {
                    tracing::warn!(
                        consumer = c.config.name,
                        "stopping: its thread is still writing what it was given after {STOP_PATIENCE:?} (a slow \
                         disk, a pipe's reader that does not read); the stop waits for it (a Ctrl-C or SIGTERM \
                         from now on exits at once, without it)"
                    );
                    s.finish(&mut files, &mut errors);
                }
            }
        }
        // Every consumer had what it asked for once its queue was drained
        // (its count, `-c`, or its reader gone): a file that cannot be read
        // past some record lost nothing any of them would have written, as
        // `tcpdump -c` never sees what follows its count.
        let mut live = st.consumers.iter().filter(|c| !c.removed).peekable();
        let satisfied =
            live.peek().is_some() && live.all(|c| c.sink.as_ref().is_some_and(|s| s.limit_hit.load(Ordering::Acquire)));
        drop(st);
        for e in unread {
            if satisfied {
                tracing::warn!("{e} (after every consumer had its count: no frame it would take is lost)");
            } else {
                errors.push(e);
            }
        }
        let snapshot = self.snapshot_with(true);
        for p in snapshot.ports.iter().filter(|p| !p.removed && p.link == Some(Link::Gone)) {
            errors.push(format!(
                "port `{}`: the interface disappeared (deleted, or moved to another network namespace)",
                p.name
            ));
        }
        let unreconciled = snapshot.reconcile(&self.expected_seen(&snapshot));
        Report { snapshot, errors, files, unreconciled }
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
        let mut st = self.lock();
        let (mut files, mut errors) = (Vec::new(), Vec::new());
        for c in &mut st.consumers {
            if let Some(s) = &mut c.sink {
                s.finish(&mut files, &mut errors);
            }
        }
    }
}

/// What opening a port gives: its slot and, per worker, its source there.
pub(crate) struct OpenedPort {
    pub(crate) slot: PortSlot,
    pub(crate) sources: Vec<Option<Source>>,
    /// Warnings given while opening it (also logged), for a control answer.
    pub(crate) notes: Vec<String>,
}

/// Open port `p` as slot `index`: build its kernel filter, open one RX ring
/// per worker in a fanout group of their own (afpacket), each within
/// `ring_budget` bytes, or give the file to one worker (or, `share_files`,
/// to all in turn).
pub(crate) fn open_port(
    st: &State,
    p: &PortConfig,
    index: usize,
    nworkers: usize,
    steer: Option<&ringwire_bpf::SymmetricSteer>,
    share_files: bool,
    ring_budget: Option<u64>,
) -> Result<OpenedPort, EngineError> {
    let kind = p.kind().map_err(ConfigError::Invalid)?;
    let config = &st.base;
    let mut sources: Vec<Option<Source>> = (0..nworkers).map(|_| None).collect();
    let mut filter = None;
    let mut filter_health = None;
    let mut notes = Vec::new();
    let failed = Arc::new(std::sync::OnceLock::new());
    match &kind {
        PortKind::AfPacket(iface) => {
            if sys::if_index(iface).is_none() {
                return Err(EngineError::Port {
                    port: p.display_name().into(),
                    source: RingError::NoSuchInterface(iface.clone()),
                });
            }
            // (Before its filter is built for the interface's link type; its rings check it again.)
            crate::ring::check_ethernet(iface)
                .map_err(|source| EngineError::Port { port: p.display_name().into(), source })?;
            if p.filter.is_some() {
                filter = Some(Arc::new(PortFilter::build(p, iface, &config.classifier)?));
            }
            if p.rx {
                let port_err = |source| EngineError::Port { port: p.display_name().into(), source };
                let mut fanout_id: Option<u16> = None;
                let mut first = true;
                for source in &mut sources {
                    let fanout = (nworkers > 1).then(|| {
                        let mut flags = config.engine.fanout.kernel_mode();
                        if !p.outgoing {
                            flags |= sys::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
                        }
                        if config.engine.fanout_defrag {
                            flags |= sys::PACKET_FANOUT_FLAG_DEFRAG;
                        }
                        match fanout_id {
                            Some(id) => u32::from(id) | (flags << 16),
                            None => (flags | sys::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
                        }
                    });
                    if START_ABORTED.load(Ordering::SeqCst) {
                        return Err(EngineError::Interrupted);
                    }
                    let ring = RxRing::open(&RxRingOptions {
                        iface,
                        geometry: config.ring.rx_geometry(),
                        promisc: p.promisc,
                        filter: filter.as_deref().map(PortFilter::kernel),
                        fanout_program: steer.map(ringwire_bpf::SymmetricSteer::fd),
                        fanout,
                        low_latency: p.low_latency,
                        rxhash: config.ring.rxhash,
                        outgoing: p.outgoing,
                        memory_budget: ring_budget,
                    })
                    .map_err(port_err)?;
                    if fanout.is_some() && fanout_id.is_none() {
                        let id = ring
                            .fanout_id()
                            .map_err(|source| port_err(RingError::Sys { iface: iface.clone(), source }))?;
                        fanout_id = Some(id);
                    }
                    if ring.geometry() != config.ring.rx_geometry() {
                        let g = ring.geometry();
                        tracing::warn!(
                            port = p.display_name(),
                            blocks = g.block_count,
                            block_size = g.block_size,
                            "RX ring shrunk"
                        );
                    }
                    if std::mem::take(&mut first) {
                        notes.extend(warn_if_cut(p, &ring, config));
                    }
                    *source = Some(Source::Ring {
                        port: index,
                        ring,
                        closing: None,
                        link: Link::Up,
                        order: Default::default(),
                    });
                }
                // Every member has joined: each flow goes to one worker from the first frame.
                if nworkers > 1 {
                    for source in sources.iter().flatten() {
                        if let Source::Ring { ring, .. } = source {
                            ring.open_gate(filter.as_deref().map(PortFilter::kernel))
                                .map_err(|source| port_err(RingError::Sys { iface: iface.clone(), source }))?;
                        }
                    }
                }
            }
        }
        PortKind::Pcap(path) if p.rx => {
            let source_error = Arc::clone(&failed);
            let pcap_filter =
                p.filter.as_deref().map(|f| FilterFactory::new(f, QuarantinePolicy::DropAll)).transpose()?;
            filter_health = pcap_filter.as_ref().map(FilterFactory::health_handle);
            let source = |reader| -> Result<Source, EngineError> {
                Ok(Source::Pcap {
                    port: index,
                    reader,
                    filter: pcap_filter.as_ref().map(FilterFactory::instance).transpose()?,
                    pace: p.pace,
                    clock: None,
                    held: None,
                    done: false,
                    failed: Arc::clone(&source_error),
                })
            };
            if share_files {
                let shared = Arc::new(SharedPcapReader::new(PcapReader::open(path)?));
                for s in &mut sources {
                    *s = Some(source(FileReader::Shared {
                        reader: Arc::clone(&shared),
                        refs: Vec::with_capacity(SEGMENT),
                    })?);
                }
            } else {
                sources[index % nworkers] = Some(source(FileReader::Own(PcapReader::open(path)?))?);
            }
        }
        PortKind::Pcap(_) => {}
    }
    let if_drops = (matches!(kind, PortKind::AfPacket(_)) && p.rx).then(IfDropTracker::default);
    Ok(OpenedPort {
        slot: PortSlot {
            config: p.clone(),
            kind,
            removed: false,
            cells: (0..nworkers).map(|_| Arc::default()).collect(),
            filter,
            has_tx: false,
            reattach_error: None,
            if_drops,
            if_drops_error: None,
            final_filter_counts: FilterCounts::default(),
            past_filtered: 0,
            past_uncounted: false,
            filter_since: None,
            taken_at_filter: AtomicU64::new(0),
            filter_health,
            failed,
            drops_said: DropsSaid::default(),
        },
        sources,
        notes,
    })
}

/// One TX ring per worker on port `port` (an afpacket port), and the
/// warning it logged if the rings' slots hold less than the interface's
/// MTU lets through.
pub(crate) fn open_tx(st: &State, port: usize) -> Result<(Vec<TxRing>, Option<String>), EngineError> {
    let p = &st.ports[port];
    let PortKind::AfPacket(iface) = &p.kind else {
        return Err(ConfigError::Invalid(format!("port `{}` is not an afpacket port", p.config.display_name())).into());
    };
    let ring = &st.base.ring;
    let rings = (0..st.sent.len())
        .map(|_| {
            TxRing::open(&TxRingOptions {
                iface,
                block_size: ring.tx_block_size,
                block_count: ring.tx_block_count,
                frame_size: ring.tx_frame_size,
                pad_runts: true,
                sndbuf: 16 << 20,
                copy_max: ring.tx_copy_max as usize,
                skip_refused: true,
            })
            .map_err(|source| EngineError::Port { port: p.config.display_name().into(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let warning = rings.first().filter(|t| t.max_frame() < t.max_len()).map(|t| {
        format!(
            "port `{}`: its interface's MTU lets frames of up to {} bytes through, its TX ring's slots hold {} \
             (ring.tx_frame_size {}): longer frames forwarded to it are dropped (queue_dropped); \
             raise ring.tx_frame_size to send them",
            p.config.display_name(),
            t.max_len(),
            t.max_frame(),
            ring.tx_frame_size
        )
    });
    if let Some(w) = &warning {
        tracing::warn!("{w}");
    }
    Ok((rings, warning))
}

/// Say so (logged, and returned) when `ring` (port `p`'s first) cuts
/// frames its interface lets through: longer than its blocks (or,
/// low-latency, its slots) hold.
fn warn_if_cut(p: &PortConfig, ring: &RxRing, config: &Config) -> Option<String> {
    let kept = ring.geometry().kept_whole(p.low_latency);
    let longest = ring.longest_frame().ok()?;
    if longest <= kept {
        return None;
    }
    let what = if p.low_latency { "ring.frame_size (its slots)" } else { "ring.block_size" };
    let w = format!(
        "port `{}`: its interface's MTU lets frames of up to {longest} bytes through, but its RX ring keeps {kept} bytes \
         of a frame (ring.block_size {}, ring.frame_size {}): longer frames are cut to {kept} bytes ({} with a VLAN tag \
         put back), and cannot be forwarded; raise {what}",
        p.display_name(),
        config.ring.block_size,
        config.ring.frame_size,
        kept + 4
    );
    tracing::warn!("{w}");
    Some(w)
}

/// Chunks in each of a queued consumer's queues (one per worker).
fn queue_chunks(c: &ConsumerConfig, chunk: usize) -> usize {
    ((c.queue_mb as usize) << 20).div_ceil(chunk).max(4)
}

/// Bytes a consumer's queues hold once full, over all workers (0: not
/// queued). All queued consumers' together may be at most half the memory
/// available when they are built.
#[must_use]
pub fn queue_bytes(c: &ConsumerConfig, nworkers: usize) -> u64 {
    if !c.kind.is_queued() {
        return 0;
    }
    let chunk = chunk_size(c.snaplen);
    (queue_chunks(c, chunk) * chunk) as u64 * nworkers as u64
}

/// Bytes a consumer allocates up front over all workers: its queues, or a
/// latency probe's tables and histograms.
fn held_bytes(c: &ConsumerConfig, nworkers: usize) -> u64 {
    if c.kind == ConsumerKind::Latency {
        crate::probe::ProbeShared::bytes(nworkers)
    } else {
        queue_bytes(c, nworkers)
    }
}

/// What building a consumer gives: its slot, an instance per worker, and
/// the task of its thread (queued consumers).
pub(crate) struct BuiltConsumer {
    pub(crate) slot: ConsumerSlot,
    pub(crate) insts: Vec<ConsumerInst>,
    pub(crate) task: Option<(usize, SinkTask)>,
}

/// Build consumer `c` as the next slot: its filter (compiled for the live
/// ports it takes frames from), its subscriptions, its queues and output.
/// Forward targets must already have their TX rings.
pub(crate) fn build_consumer(st: &State, c: &ConsumerConfig, nworkers: usize) -> Result<BuiltConsumer, EngineError> {
    let index = st.consumers.len();
    let live = st.config().live_iface_for(c);
    let factory = c
        .filter
        .as_ref()
        .map(|f| FilterFactory::chain(&f.stages(), c.on_filter_failure.into(), live.as_deref()))
        .transpose()
        .map_err(|e| EngineError::ConsumerFilter { consumer: c.name.clone(), source: Box::new(e) })?
        .map(Arc::new);
    let ports: Vec<usize> = if c.ports.is_empty() {
        (0..st.ports.len()).filter(|&i| !st.ports[i].removed && st.ports[i].config.rx).collect()
    } else {
        c.ports.iter().filter_map(|n| st.port_index(n)).collect()
    };
    let port_names: Vec<String> = st.ports.iter().map(|p| p.config.display_name().to_owned()).collect();
    let mut sink_handle = None;
    let mut task = None;
    let mut channels = Vec::new();
    // Queues and probe tables are allocated up front, and queues filled as
    // traffic comes: refuse what would exhaust memory (all consumers'
    // together over half of what is available) rather than abort on
    // allocation or meet the OOM killer.
    let mine = held_bytes(c, nworkers);
    let others: u64 = st.consumers.iter().filter(|s| s.holds_memory()).map(|s| held_bytes(&s.config, nworkers)).sum();
    if let Some(avail) = sys::mem_available().filter(|&a| mine > 0 && mine + others > a / 2) {
        let with =
            if others > 0 { format!(", with the other consumers' {} MiB,", others >> 20) } else { String::new() };
        let what = if c.kind == ConsumerKind::Latency {
            format!("a latency probe's tables, {} MiB per worker", crate::probe::ProbeShared::bytes(1) >> 20)
        } else {
            format!("queue_mb: {} MiB per worker", c.queue_mb)
        };
        return Err(ConfigError::Invalid(format!(
            "consumer `{}`: {what} x {nworkers} workers{with} is more than half the memory available ({} MiB)",
            c.name,
            avail >> 20
        ))
        .into());
    }
    if c.kind.is_queued() {
        let chunk = chunk_size(c.snaplen);
        let chunks = queue_chunks(c, chunk);
        let output = match c.kind {
            ConsumerKind::Pcap => {
                let path = c.path.clone().ok_or_else(|| {
                    ConfigError::Invalid(format!("consumer `{}`: path is required for kind = \"pcap\"", c.name))
                })?;
                SinkOutput::Pcap(
                    PcapOutput::create(
                        path,
                        c.snaplen,
                        c.rotate_mb,
                        c.rotate_files,
                        c.split_by_worker.then_some(nworkers),
                        c.rotate_s,
                    )
                    .map_err(|e| EngineError::Output { consumer: c.name.clone(), source: Box::new(e) })?,
                )
            }
            _ => SinkOutput::Print {
                port_names,
                printer: crate::print::Printer::new(crate::print::PrintOptions {
                    link: c.print_link,
                    hex: c.print_hex,
                    time: c.print_time,
                    precision: c.print_precision,
                    port: c.print_port.unwrap_or(ports.len() > 1),
                    absolute_seq: c.print_absolute_seq,
                    quick: c.print_quick,
                }),
                lines: crate::consumer::Lines::stdout()
                    .map_err(|e| EngineError::Output { consumer: c.name.clone(), source: Box::new(e) })?,
            },
        };
        let waker = Arc::new(SinkWaker::default());
        // Several workers, or several interfaces, into one order: the sink
        // merges them by time; and with a file per worker, each worker's
        // several interfaces into its file.
        let interfaces = ports.iter().filter(|&&i| matches!(st.ports[i].kind, PortKind::AfPacket(_))).count();
        let merged = if output.one_order() { nworkers > 1 || interfaces > 1 } else { interfaces > 1 };
        channels = (0..nworkers).map(|_| Arc::new(Channel::new(chunks, chunk, waker.clone()).merged(merged))).collect();
        let handle = SinkHandle {
            cells: Arc::default(),
            waker: waker.clone(),
            done: Arc::new(AtomicBool::new(false)),
            limit_hit: Arc::new(AtomicBool::new(false)),
            rt_priority: Arc::new(AtomicU8::new(consumer_rt_priority(st))),
            thread: None,
        };
        task = Some((
            index,
            SinkTask {
                name: c.name.clone(),
                output,
                channels: channels.clone(),
                counters: handle.cells.clone(),
                producers_done: handle.done.clone(),
                waker,
                limit: c.limit,
                limit_hit: handle.limit_hit.clone(),
                on_write_error: c.on_write_error,
                nice: st.base.engine.consumer_nice,
                rt_priority: handle.rt_priority.clone(),
            },
        ));
        sink_handle = Some(handle);
    }
    let probe = (c.kind == ConsumerKind::Latency).then(|| crate::probe::ProbeShared::new(nworkers));
    let mut insts = Vec::with_capacity(nworkers);
    for w in 0..nworkers {
        let channel = channels.get(w).cloned();
        insts.push(ConsumerInst {
            filter: factory.as_deref().map(FilterFactory::instance).transpose()?,
            delivery: match c.kind {
                ConsumerKind::Counter => Delivery::Counter,
                ConsumerKind::Latency => Delivery::Latency(Box::new(crate::probe::Probe::new(
                    probe.clone().expect("built above for latency consumers"),
                    w,
                ))),
                ConsumerKind::Forward => Delivery::Forward {
                    to_port: c.to.as_deref().and_then(|n| st.port_index(n)).ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "consumer `{}`: to: no port named `{}`",
                            c.name,
                            c.to.as_deref().unwrap_or_default()
                        ))
                    })?,
                },
                ConsumerKind::Pcap | ConsumerKind::Print => Delivery::Queued(Producer::new(
                    channel.expect("queued consumers have a channel per worker"),
                    c.snaplen as usize,
                )),
            },
        });
    }
    Ok(BuiltConsumer {
        slot: ConsumerSlot {
            config: c.clone(),
            removed: false,
            ports,
            cells: (0..nworkers).map(|_| Arc::default()).collect(),
            factory,
            past_filters: Vec::new(),
            past_health: ringwire_filters::FilterHealthSum::default(),
            final_filter: None,
            sink: sink_handle,
            probe,
            drops_said: DropsSaid::default(),
        },
        insts,
        task,
    })
}

/// Whether a port receives from an interface (rather than a file, or only
/// sending): a run with one never ends on its own.
fn receives_live(rx: bool, kind: &PortKind) -> bool {
    rx && matches!(kind, PortKind::AfPacket(_))
}

/// The real-time priority for the queued consumers' threads: the
/// configured one while the engine receives from an interface, else 0 (a
/// file source waits for a full queue instead of dropping: nothing to gain).
fn consumer_rt_priority(st: &State) -> u8 {
    let live = st.ports.iter().any(|p| !p.removed && receives_live(p.config.rx, &p.kind));
    if live {
        st.base.engine.consumer_rt_priority
    } else {
        0
    }
}

/// Re-decide the queued consumers' real-time priority after ports came or
/// went (a first interface port, or the last one removed), and wake their
/// threads so they apply it now rather than with their next frames.
pub(crate) fn update_consumer_sched(st: &State) {
    let want = consumer_rt_priority(st);
    for sink in st.consumers.iter().filter(|c| !c.removed).filter_map(|c| c.sink.as_ref()) {
        if sink.rt_priority.swap(want, Ordering::Relaxed) != want {
            sink.waker.unpark();
        }
    }
}

/// Start a queued consumer's thread; returns its slot and handle.
pub(crate) fn spawn_sink((index, mut t): (usize, SinkTask)) -> Result<(usize, SinkThread), EngineError> {
    t.output.begin().map_err(|e| EngineError::Output { consumer: t.name.clone(), source: Box::new(e) })?;
    let name = format!("rw-sink-{}", t.name);
    let h = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if t.nice != 0 {
                if let Err(e) = sys::set_thread_nice(t.nice.into()) {
                    tracing::warn!(
                        consumer = t.name,
                        nice = t.nice,
                        error = %error_chain(&e),
                        "could not set the consumer thread's nice value (engine.consumer_nice; going below the \
                         current value needs CAP_SYS_NICE)"
                    );
                }
            }
            run_sink(t)
        })
        .map_err(|e| setup(format!("spawn consumer thread: {e}")))?;
    Ok((index, h))
}

pub(crate) fn kind_name(k: ConsumerKind) -> &'static str {
    match k {
        ConsumerKind::Counter => "counter",
        ConsumerKind::Forward => "forward",
        ConsumerKind::Pcap => "pcap",
        ConsumerKind::Print => "print",
        ConsumerKind::Latency => "latency",
    }
}

#[cfg(test)]
mod tests {
    use super::ebpf_spec;

    #[test]
    fn an_ebpf_filter_names_its_file_and_maybe_a_program() {
        let spec = |s: &str| ebpf_spec(&Some(s.to_owned())).map(|(f, p)| (f.to_owned(), p.map(str::to_owned)));
        let pair = |f: &str, p: Option<&str>| Some((f.to_owned(), p.map(str::to_owned)));
        assert_eq!(spec("ebpf:/x/keep.bpf.o"), pair("/x/keep.bpf.o", None));
        assert_eq!(spec("ebpf:/x/keep.bpf.o:keep_udp"), pair("/x/keep.bpf.o", Some("keep_udp")));
        assert_eq!(spec(" ebpf:/x/keep.bpf.o: "), pair("/x/keep.bpf.o", None), "an empty program: the default");
        assert_eq!(spec("ebpf:/a:b/keep.bpf.o"), pair("/a:b/keep.bpf.o", None), "a `:` in the path");
        assert_eq!(spec("udp"), None);
    }
}
