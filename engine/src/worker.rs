//! A worker: one thread pinned to one core, owning its fanout member socket
//! per port, its TX rings and its consumer instances. Nothing on its path is
//! shared with another worker except the queued consumers' single-producer
//! channels; counters are local and published once per batch.

use std::{
    os::fd::{AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use arrayvec::ArrayVec;
use io_uring::{opcode, types, IoUring};
use ringwire_filters::{Filter, Origin, Packet, Verdict};

use crate::{
    config::{Pace, WaitMode},
    consumer::{error_chain, Producer},
    pcapio::{Claim, PcapReader, RecordRef, SharedPcapReader},
    ring::{Link, RxRing, TxRing},
    stats::{consumer as cc, port as pc, Cells},
    sys,
};

/// Blocks taken from one ring per pass before looking at the others.
const BLOCKS_PER_PASS: usize = 8;
/// How often kernel statistics are read.
const KSTATS_EVERY: Duration = Duration::from_millis(100);
const WAKE_TOKEN: u64 = u64::MAX;
/// The completion of a cancelled poll (a removed port's ring).
const CANCEL_TOKEN: u64 = u64::MAX - 1;

pub(crate) enum Source {
    Ring {
        port: usize,
        ring: RxRing,
        /// The port is being removed: its intake is stopped and the ring is
        /// read until it is empty or its drain is over, then closed.
        closing: Option<Drain>,
        /// Its interface's state, as last seen.
        link: Link,
        /// What the ring has shown of its frames' times.
        order: RingOrder,
    },
    Pcap {
        port: usize,
        reader: FileReader,
        filter: Option<Box<dyn Filter>>,
        pace: Pace,
        /// Recorded pace: when each record is due.
        clock: Option<PaceClock>,
        /// Recorded pace: a record read but not yet due.
        held: Option<RecordRef>,
        done: bool,
        /// Why the file ended badly, for the port's counters (shared with its slot).
        failed: Arc<std::sync::OnceLock<String>>,
    },
}

/// What a ring has shown of its frames' times, for the promise a worker
/// makes its merging consumers (see [`Worker::promise`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingOrder {
    /// The latest timestamp of a frame taken from it.
    last_ts: u64,
    /// Its last poll found no block ready (rather than stopping at
    /// [`BLOCKS_PER_PASS`]).
    drained: bool,
}

impl Default for RingOrder {
    /// A new ring: as one just found empty.
    fn default() -> Self {
        Self { last_ts: 0, drained: true }
    }
}

/// How far a ring's frames may be out of time order (frames received on
/// different CPUs), as a promise allows for it.
const ORDER_SLACK: Duration = Duration::from_millis(2);

/// How late the kernel's block retire timer may fire beyond its two
/// timeouts: it counts in jiffies, the timeout rounded up to one (10 ms at
/// the coarsest clock, 100 Hz), and a timer fires a jiffy late or more on a
/// busy machine.
const RETIRE_LATE: Duration = Duration::from_millis(10);

/// How a worker reads a pcap source.
pub(crate) enum FileReader {
    /// The worker reads the whole file.
    Own(PcapReader),
    /// Every worker claims the next segment of the file in turn.
    Shared {
        reader: Arc<SharedPcapReader>,
        /// The segment being read.
        refs: Vec<RecordRef>,
    },
}

/// Records per segment of a shared file: big enough that the claim's lock
/// and the segment's end mark cost nothing per frame, small enough that an
/// ordered sink holds back little while a segment is in progress.
pub(crate) const SEGMENT: usize = 2048;

impl Source {
    /// Whether the source will give no more frames: a file read to the
    /// end, or a ring whose interface is gone.
    fn is_spent(&self) -> bool {
        match self {
            Self::Pcap { done, .. } => *done,
            Self::Ring { link, .. } => *link == Link::Gone,
        }
    }
}

pub(crate) enum Delivery {
    Counter,
    Forward { to_port: usize },
    Queued(Producer),
    Latency(Box<crate::probe::Probe>),
}

pub(crate) struct ConsumerInst {
    pub(crate) filter: Option<Box<dyn Filter>>,
    pub(crate) delivery: Delivery,
}

/// Everything a frame touches, apart from the source it came from.
/// Ports and consumers are indexed by slot: a slot is never reused, so a
/// removed one leaves `None` (or an empty subscription) behind.
pub(crate) struct Dispatch {
    pub(crate) index: u16,
    pub(crate) consumers: Vec<Option<ConsumerInst>>,
    /// By port: consumer indexes subscribed to it.
    pub(crate) subs: Vec<Vec<usize>>,
    /// By port: this worker's TX ring, if the port is a forwarding target.
    pub(crate) tx: Vec<Option<TxRing>>,
    pub(crate) ports: Vec<[u64; pc::N]>,
    pub(crate) cons: Vec<[u64; cc::N]>,
    /// Scratch verdicts for one batch.
    pub(crate) verdicts: [Verdict; BATCH],
    /// The engine's stop flag: a lossless wait is shortened when it is raised.
    pub(crate) stop: Arc<AtomicBool>,
    /// A lossless wait ran out while the engine stopped: a consumer is stuck,
    /// and the rest of the stop does not wait for room again.
    pub(crate) stuck_at_stop: bool,
    /// Forward consumers send only while this is set (`forwarding.stop`
    /// clears it; what they pass meanwhile is counted as `paused`).
    pub(crate) forwarding: bool,
    /// Latency probes: when CLOCK_REALTIME - CLOCK_MONOTONIC was last read
    /// (monotonic ns, 0: never) and what it was.
    pub(crate) clock_offset: (u64, u64),
}

/// A change applied by a worker between two batches.
pub(crate) enum Command {
    /// Replace a consumer's filter (`None`: no filter).
    SetFilter {
        /// Consumer index.
        consumer: usize,
        /// The new filter, built off the hot path.
        filter: Option<Box<dyn Filter>>,
    },
    /// Replace an afpacket port's kernel filter on this worker's socket.
    SetPortFilter {
        /// Port index.
        port: usize,
        /// The filter, built (compiled or loaded) off the hot path.
        filter: Arc<crate::engine::PortFilter>,
    },
    /// A new port: its source on this worker (if it has one), its counters,
    /// and the consumers that take its frames.
    AddPort { port: usize, source: Option<Source>, cells: Arc<Cells<{ pc::N }>>, subscribers: Vec<usize> },
    /// Remove a port: a ring stops taking frames, is read empty and closed.
    RemovePort { port: usize },
    /// A TX ring for a port that became a forwarding target.
    AddTx { port: usize, tx: TxRing },
    /// A port whose interface was gone and is back: its new ring (and TX
    /// ring, if it is a forwarding target) replace the dead ones.
    Reattach { port: usize, ring: Option<RxRing>, tx: Option<TxRing> },
    /// A new consumer on `ports`, with its counters.
    AddConsumer { consumer: usize, inst: ConsumerInst, cells: Arc<Cells<{ cc::N }>>, ports: Vec<usize> },
    /// Remove a consumer: what it holds is handed over, then it is dropped.
    /// `ports`: every port it took frames from (removed ones included).
    RemoveConsumer { consumer: usize, ports: Vec<usize> },
    /// Start or stop forwarding.
    SetForwarding(bool),
}

/// How long a file source waits for a full TX ring before dropping: the
/// kernel may never empty it (the interface went down).
const TX_PATIENCE: Duration = Duration::from_secs(5);

/// How long a file source waits for a queued consumer's free chunk: with no
/// end but the engine's stop. The consumer's thread drains its queue as long
/// as the workers run, whatever its output does, so a full queue only means
/// a slow output (`-w - | slow-reader`): the replay slows down to it, as
/// tcpdump's does, instead of dropping frames.
const QUEUE_PATIENCE: Duration = Duration::MAX;

/// Frames dispatched to consumers per call (one filter call per consumer per batch).
pub(crate) const BATCH: usize = 256;

impl Dispatch {
    /// Dispatch a batch of frames from `port` to every consumer subscribed
    /// to it: each consumer's filter decides the whole batch in one call.
    /// `lossless` (file sources): wait for room in a queue or TX ring rather
    /// than drop; live sources never wait.
    #[inline]
    fn batch(&mut self, port: usize, pkts: &[Packet<'_>], lossless: bool) {
        debug_assert!(pkts.len() <= BATCH);
        let Self { consumers, subs, tx, cons, verdicts, stop, stuck_at_stop, clock_offset, .. } = self;
        let verdicts = &mut verdicts[..pkts.len()];
        let forwarding = self.forwarding;
        // A batch comes from one port: frames from a file are not timed.
        let timed = pkts.first().is_some_and(|p| matches!(p.origin, Origin::Kernel { .. }));
        for &ci in &subs[port] {
            let Some(c) = consumers[ci].as_mut() else { continue };
            let n = &mut cons[ci];
            // A consumer that stayed full for the whole patience is not waited
            // for again in this batch (a stalled consumer costs one wait per batch).
            let mut wait = lossless && !*stuck_at_stop;
            n[cc::SEEN] += pkts.len() as u64;
            match c.filter.as_mut() {
                Some(f) => f.verdict_batch(pkts, verdicts),
                None => verdicts.fill(Verdict::Pass),
            }
            // A queued consumer that may drop takes the batch at once.
            if let (Delivery::Queued(producer), false) = (&mut c.delivery, wait) {
                let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count() as u64;
                let passing = || pkts.iter().zip(verdicts.iter()).filter(|(_, v)| **v == Verdict::Pass).map(|(p, _)| p);
                let delivered = producer.offer_batch(passing().map(|p| (p.data, p.wire_len, p.ts_ns)), port as u16);
                // Those queued are the first `delivered` that passed.
                n[cc::DELIVERED_BYTES] +=
                    passing().take(delivered as usize).map(|p| u64::from(p.wire_len)).sum::<u64>();
                n[cc::FILTERED] += pkts.len() as u64 - passed;
                n[cc::PASSED] += passed;
                n[cc::DELIVERED] += delivered;
                n[cc::QUEUE_DROPPED] += passed - delivered;
                continue;
            }
            // The probe's clocks, read once per batch: the time the batch
            // reached it, and CLOCK_REALTIME - CLOCK_MONOTONIC for turning
            // kernel timestamps into the generator's clock (taken again
            // every 100 ms: it only moves when the wall clock is set).
            let clocks = (timed && matches!(c.delivery, Delivery::Latency(_))).then(|| {
                let now = crate::sys::monotonic_ns();
                if now.saturating_sub(clock_offset.0) > 100_000_000 {
                    *clock_offset = (now, crate::sys::realtime_offset_ns());
                }
                (now, clock_offset.1)
            });
            for (p, v) in pkts.iter().zip(verdicts.iter()) {
                if *v == Verdict::Drop {
                    n[cc::FILTERED] += 1;
                    continue;
                }
                n[cc::PASSED] += 1;
                let delivered = match &mut c.delivery {
                    Delivery::Counter => true,
                    Delivery::Latency(probe) => {
                        let times = clocks.map(|(now, offset)| (p.ts_ns.wrapping_sub(offset), now));
                        probe.record(p.data, port as u16, times);
                        true
                    }
                    Delivery::Forward { .. } if !forwarding => {
                        n[cc::PAUSED] += 1;
                        continue;
                    }
                    // A frame cut short (a snaplen, a low-latency port's
                    // slots, an eBPF filter's length) is not sent cut.
                    Delivery::Forward { .. } if p.data.len() < p.wire_len as usize => {
                        n[cc::UNFIT] += 1;
                        false
                    }
                    Delivery::Forward { to_port } => match tx[*to_port].as_mut() {
                        // The port forwarded to is closed (its interface gone), or
                        // it has no carrier: the kernel would drop the frame (or
                        // hold it at the ring's head, the frames behind it too).
                        None => {
                            n[cc::EGRESS_DOWN] += 1;
                            false
                        }
                        Some(t) if !t.has_carrier() => {
                            n[cc::EGRESS_DOWN] += 1;
                            false
                        }
                        Some(t) => {
                            let sent =
                                if wait { t.push_waiting(p.data, TX_PATIENCE, stop) } else { t.push_or_kick(p.data) };
                            // Not for a full ring: for a frame the port does not take.
                            if !sent && !t.takes(p.data) {
                                n[cc::UNFIT] += 1;
                            }
                            sent
                        }
                    },
                    Delivery::Queued(producer) if wait => {
                        producer.offer_waiting(p.data, p.wire_len, p.ts_ns, port as u16, QUEUE_PATIENCE, stop)
                    }
                    Delivery::Queued(producer) => producer.offer(p.data, p.wire_len, p.ts_ns, port as u16),
                };
                if wait && !delivered {
                    // The wait ran out: not again in this batch, nor, if the
                    // engine is stopping, for the rest of the stop.
                    wait = false;
                    *stuck_at_stop |= stop.load(Ordering::Relaxed);
                }
                if delivered {
                    n[cc::DELIVERED] += 1;
                    n[cc::DELIVERED_BYTES] += u64::from(p.wire_len);
                } else {
                    n[cc::QUEUE_DROPPED] += 1;
                }
            }
        }
    }

    /// The frames dispatched from now on belong to segment `seq` of the
    /// shared file on `port`.
    fn begin_segment(&mut self, port: usize, seq: u64) {
        for &ci in &self.subs[port] {
            if let Some(ConsumerInst { delivery: Delivery::Queued(p), .. }) = &mut self.consumers[ci] {
                p.begin_segment(port as u16, seq);
            }
        }
    }

    /// The segment begun last is complete: tell the queued consumers.
    fn end_segment(&mut self, port: usize) {
        for &ci in &self.subs[port] {
            if let Some(ConsumerInst { delivery: Delivery::Queued(p), .. }) = &mut self.consumers[ci] {
                let patience = if self.stuck_at_stop { Duration::ZERO } else { QUEUE_PATIENCE };
                if !p.end_segment(patience, &self.stop) {
                    tracing::warn!(
                        consumer = ci,
                        "no free chunk for a segment's end mark; later segments are held back until the end of the run"
                    );
                }
            }
        }
    }

    /// End of a batch: hand filled chunks to queued consumers and kick TX rings.
    /// `publish`: hand over partly filled chunks too, to consumers that have
    /// taken what they were given before (see
    /// [`Producer::publish_unless_behind`]). Frames from rings are waited
    /// for, so they go at once; a file replayed as fast as possible has no
    /// such deadline, and handing over nearly empty chunks would only wake
    /// the consumer thread thousands of times for little (full chunks go as
    /// soon as they fill).
    fn end_batch(&mut self, publish: bool, errors: &mut RateLimited) {
        if publish {
            self.publish_queued(false);
        }
        self.flush_tx(errors);
    }

    /// Hand partly filled chunks to queued consumers: to every one (`all`),
    /// or to those not behind.
    fn publish_queued(&mut self, all: bool) {
        for c in self.consumers.iter_mut().flatten() {
            if let Delivery::Queued(p) = &mut c.delivery {
                if all {
                    p.publish();
                } else {
                    p.publish_unless_behind();
                }
            }
        }
    }

    /// Latency probes copy their histograms out: on the statistics tick
    /// (skipped where a reader holds the slot) and, `last`, at exit.
    fn publish_probes(&mut self, last: bool) {
        for c in self.consumers.iter_mut().flatten() {
            if let Delivery::Latency(probe) = &mut c.delivery {
                probe.publish(last);
            }
        }
    }

    fn flush_tx(&mut self, errors: &mut RateLimited) {
        for (port, t) in self.tx.iter_mut().enumerate() {
            let Some(t) = t else { continue };
            if let Err(e) = t.flush() {
                errors
                    .log(|| tracing::warn!(error = %error_chain(&e), "TX kick failed; frames stay queued in the ring"));
            }
            tx_counts(t, &mut self.ports[port]);
        }
    }
}

/// Logs at most once per interval.
struct RateLimited {
    last: Option<Instant>,
}

impl RateLimited {
    fn log(&mut self, f: impl FnOnce()) {
        if self.last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            self.last = Some(Instant::now());
            f();
        }
    }
}

pub(crate) struct Worker {
    pub(crate) core: usize,
    pub(crate) sources: Vec<Source>,
    pub(crate) dispatch: Dispatch,
    /// Where the counters are published, by port and consumer slot (`None`:
    /// removed, its last values published).
    pub(crate) port_cells: Vec<Option<Arc<Cells<{ pc::N }>>>>,
    pub(crate) cons_cells: Vec<Option<Arc<Cells<{ cc::N }>>>>,
    /// io_uring polls in flight, by port slot: the poll's user data (see
    /// [`poll_ud`]); polls to cancel (of removed or replaced sockets).
    pub(crate) armed: Vec<Option<u64>>,
    pub(crate) cancels: Vec<u64>,
    /// Polls submitted so far: each poll's user data is unique, so the
    /// completion of a poll on a socket since replaced is told apart.
    pub(crate) polls: u32,
    pub(crate) wait: WaitMode,
    /// `engine.worker_rt_priority` (0: always normally scheduled).
    pub(crate) rt_priority: u8,
    /// How the thread is scheduled now.
    pub(crate) sched: sys::RtSched,
    pub(crate) wake: OwnedFd,
    pub(crate) stop: Arc<AtomicBool>,
    /// Raised when every source of this worker is finite and exhausted.
    pub(crate) exhausted: Arc<AtomicBool>,
    pub(crate) retire_timeout: Duration,
    /// Changes to apply between batches, and how many were applied.
    pub(crate) commands: Arc<crossbeam_queue::ArrayQueue<Command>>,
    pub(crate) applied: Arc<std::sync::atomic::AtomicU64>,
    /// Where how the thread was scheduled is published (see [`crate::stats::worker`]).
    pub(crate) sched_cells: Arc<Cells<{ crate::stats::worker::N }>>,
    /// A queued consumer merges this worker's records with other workers'
    /// in time order, and so waits for its promise (see [`Self::merges_by_time`]).
    pub(crate) merging: bool,
    /// Reads the veth peers of the ports this worker sends to (opened at
    /// the first tick that has one; `None` until then, or if it cannot be).
    pub(crate) links: Option<crate::ifstats::LinkStats>,
    /// By port: the longest frame its interface lets through, as last seen
    /// by the first worker (which says when its ring starts cutting frames).
    pub(crate) longest_seen: std::collections::HashMap<usize, u32>,
}

/// How a worker ended.
pub(crate) type WorkerResult = Result<(), WorkerFailure>;

/// Why a worker ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerFailure {
    /// A file source could not be read to its end (truncated, corrupt):
    /// the records before the fault were dispatched.
    #[error("{0}")]
    Source(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<String> for WorkerFailure {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

impl Worker {
    pub(crate) fn run(mut self) -> WorkerResult {
        let _span = tracing::info_span!("worker", index = self.dispatch.index, core = self.core).entered();
        if !core_affinity::set_for_current(core_affinity::CoreId { id: self.core }) {
            tracing::warn!("could not pin to core {}", self.core);
        }
        let mut uring = match self.wait {
            WaitMode::IoUring => Some(IoUring::new(64).map_err(|e| format!("io_uring setup: {e}"))?),
            WaitMode::BusyPoll => None,
        };
        let mut wake_armed = false;
        let mut last_kstats = Instant::now();
        // How this thread is scheduled, read every statistics tick.
        let (started, schedstat) = (Instant::now(), sys::SchedStat::open_self().ok());
        self.publish_sched(schedstat.as_ref(), started);
        let mut tx_errors = RateLimited { last: None };
        let mut link_errors = RateLimited { last: None };
        // Polls that reported an error: their ports are not polled again before the next tick.
        let mut parked: Vec<u64> = Vec::new();
        let mut failure: Option<String> = None;
        // Stopping: the rings' drain, once begun.
        let mut drain: Option<Drain> = None;
        tracing::debug!(sources = self.sources.len(), "worker started");
        self.merging = self.merges_by_time();
        self.check_links(&mut link_errors);
        self.check_exhausted();
        self.update_sched();
        loop {
            // Between batches: filter swaps and the like.
            let mut changed = false;
            while let Some(cmd) = self.commands.pop() {
                // Draining: the rings' intake is stopped; a new kernel filter would reopen it.
                if drain.is_none() || !matches!(cmd, Command::SetPortFilter { .. }) {
                    self.apply(cmd);
                    changed = true;
                }
                self.applied.fetch_add(1, Ordering::Release);
            }
            if changed {
                // Consumers come and go only with commands.
                self.merging = self.merges_by_time();
                self.check_links(&mut link_errors);
                self.publish();
                self.check_exhausted();
                self.update_sched();
            }
            let mut work = 0usize;
            let stopping = self.stop.load(Ordering::Acquire);
            // Read only for a promise to a consumer that merges workers by time.
            let pass_start = self.merging.then(sys::realtime_ns);
            for src in &mut self.sources {
                match Self::poll_source(src, &mut self.dispatch, stopping) {
                    Ok(n) => {
                        work += n;
                        // A removed port's ring giving frames: read on.
                        if let (Source::Ring { closing: Some(drain), .. }, 1..) = (&mut *src, n) {
                            drain.progress();
                        }
                    }
                    Err(e) => {
                        // Frames dispatched before the error still end their batch.
                        work += 1;
                        if let Source::Pcap { done, failed, .. } = src {
                            *done = true;
                            let _ = failed.set(e.clone());
                        }
                        // Logged when it happens; it is the run's final error too, so
                        // not an error here (a capture would say it twice).
                        tracing::info!(error = %e, "source failed");
                        failure.get_or_insert(e);
                    }
                }
            }
            if work > 0 {
                let urgent = stopping
                    || self.sources.iter().any(|s| match s {
                        Source::Ring { .. } => true,
                        Source::Pcap { pace, done, .. } => *pace == Pace::Recorded || *done,
                    });
                self.dispatch.end_batch(urgent, &mut tx_errors);
                self.publish();
            }
            if let Some(t) = pass_start {
                self.promise(t);
            }
            if self.sources.iter().any(|s| matches!(s, Source::Pcap { done: true, .. })) {
                // A file ended: say so now, not at the next statistics tick.
                self.check_exhausted();
            }
            let tick = last_kstats.elapsed() >= KSTATS_EVERY;
            if tick {
                self.check_links(&mut link_errors);
                for ud in parked.drain(..) {
                    // Unless the port's socket was replaced (and polled anew) meanwhile.
                    if let Some(a) = self.armed.get_mut(ud_port(ud)).filter(|a| **a == Some(ud)) {
                        *a = None;
                    }
                }
                self.read_kernel_stats();
                // Frames held while a consumer was behind go once it has caught up.
                self.dispatch.publish_queued(false);
                self.dispatch.flush_tx(&mut tx_errors); // retry kicks that hit a full socket buffer
                self.dispatch.publish_probes(false);
                self.publish();
                self.publish_sched(schedstat.as_ref(), started);
                last_kstats = Instant::now();
                self.check_exhausted();
            }
            if stopping {
                let drain = drain.get_or_insert_with(|| {
                    // The kernel stops filling the rings; what it accepted so far is then
                    // exactly received + dropped once the last blocks retire.
                    for src in &self.sources {
                        if let Source::Ring { ring, .. } = src {
                            if let Err(e) = ring.stop_intake() {
                                tracing::warn!(error = %error_chain(&e), "could not stop the ring's intake; the drain may be inexact");
                            }
                        }
                    }
                    let drain = Drain::start(self.retire_timeout);
                    if drain.window > DRAIN_CAP && self.sources.iter().any(|s| matches!(s, Source::Ring { .. })) {
                        tracing::info!(
                            retire_timeout_ms = self.retire_timeout.as_millis() as u64,
                            "reading the rings' last blocks, which the kernel hands over once their retire timeout passes: up to {:.0} s",
                            drain.window.as_secs_f64()
                        );
                    }
                    drain
                });
                if work > 0 {
                    drain.progress();
                }
                let over = drain.over();
                if work == 0 {
                    self.read_kernel_stats();
                    self.publish();
                    if self.rings_drained() {
                        tracing::debug!(ports = ?self.port_totals(), "rings drained");
                        break;
                    }
                }
                if over {
                    tracing::warn!(ports = ?self.port_totals(), "drain deadline passed with frames still in the ring");
                    break;
                }
            }
            // Removed ports' rings: closed once read empty (or out of time), also under load.
            let closing = self.sources.iter().any(|s| matches!(s, Source::Ring { closing: Some(_), .. }));
            if closing && (work == 0 || tick) {
                self.retire_closing();
            }
            if work == 0 {
                let timeout = if stopping || closing { Duration::from_millis(2) } else { self.idle_timeout() };
                match uring.as_mut() {
                    Some(ring) => {
                        let before = parked.len();
                        self.wait_uring(ring, &mut wake_armed, &mut parked, timeout)?;
                        if parked.len() > before {
                            self.check_links(&mut link_errors);
                        }
                    }
                    None => std::hint::spin_loop(),
                }
            }
        }
        // Nothing stays in a half-filled chunk.
        self.dispatch.publish_queued(true);
        self.dispatch.end_batch(true, &mut tx_errors);
        // Let the kernel finish sending what we forwarded (200 ms in all).
        let until = Instant::now() + Duration::from_millis(200);
        for (port, t) in self.dispatch.tx.iter_mut().enumerate() {
            if let Some(t) = t {
                retire_tx(t, &mut self.dispatch.ports[port], until, "at exit");
            }
        }
        self.read_kernel_stats();
        self.dispatch.publish_probes(true);
        self.publish();
        self.publish_sched(schedstat.as_ref(), started);
        // Nothing more comes from this worker.
        self.promise_all(u64::MAX);
        tracing::debug!(ports = ?self.port_totals(), "worker stopped");
        failure.map_or(Ok(()), |e| Err(WorkerFailure::Source(e)))
    }

    /// Publish the thread's CPU and run-queue times, and the time since it
    /// started (without procfs' schedstat: only that time).
    fn publish_sched(&self, schedstat: Option<&sys::SchedStat>, started: Instant) {
        use crate::stats::worker as wk;
        // The thread's CPU clock is up to date (schedstat's CPU time lags
        // by up to a scheduler tick for a running thread), and is there
        // without schedstat; a failed read keeps the last waiting time.
        let wall = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let cpu = sys::thread_cpu_ns();
        let waited = schedstat
            .and_then(sys::SchedStat::read)
            .map_or_else(|| self.sched_cells.load()[wk::WAITED_NS], |t| t.run_delay_ns);
        let mut v = [0u64; wk::N];
        v[wk::CPU_NS] = cpu;
        v[wk::WAITED_NS] = waited;
        v[wk::OFF_NS] = wall.saturating_sub(cpu);
        self.sched_cells.publish(&v);
    }

    /// (received, kernel packets, kernel drops) per port, for logs.
    fn port_totals(&self) -> Vec<(u64, u64, u64)> {
        self.dispatch.ports.iter().map(|p| (p[pc::RECEIVED], p[pc::KERNEL_PACKETS], p[pc::KERNEL_DROPS])).collect()
    }

    /// Whether every ring has handed over every frame the kernel accepted.
    fn rings_drained(&self) -> bool {
        self.sources.iter().all(|s| match s {
            Source::Ring { port, .. } => ring_drained(&self.dispatch.ports[*port]),
            Source::Pcap { .. } => true,
        })
    }

    /// Whether the thread should run under `SCHED_FIFO`: it receives from
    /// an interface, sleeps in io_uring when idle, and has no file source (a
    /// replay flat out never sleeps: a real-time thread would starve the core).
    fn wants_fifo(&self) -> bool {
        self.rt_priority > 0
            && self.wait == WaitMode::IoUring
            && self.sources.iter().any(|s| matches!(s, Source::Ring { .. }))
            && !self.sources.iter().any(|s| matches!(s, Source::Pcap { .. }))
    }

    /// Apply `engine.worker_rt_priority` when the sources call for a change
    /// (at start, and when ports come and go).
    fn update_sched(&mut self) {
        let want = if self.wants_fifo() { self.rt_priority } else { 0 };
        self.sched.update(
            want,
            "worker",
            "engine.worker_rt_priority",
            "it is scheduled as a normal thread and reads blocks when it gets a time slice",
        );
    }

    fn check_exhausted(&self) {
        // A port added at run time can make an exhausted worker busy again.
        self.exhausted.store(self.sources.iter().all(Source::is_spent), Ordering::Release);
    }

    /// Look at each ring's interface: log and count it going down, coming
    /// back up, or going away. Called on every statistics tick, and at once
    /// when a poll reports an error on a ring (reading the socket's error
    /// clears it, so the next poll sleeps again). A ring whose interface is
    /// up costs two getsockopts and an ioctl a tick: going down or away
    /// raises a socket error, losing the carrier does not.
    fn check_links(&mut self, errors: &mut RateLimited) {
        let first = self.dispatch.index == 0;
        let mut gone = false;
        for src in &mut self.sources {
            let Source::Ring { port, ring, link, closing: None, .. } = src else { continue };
            if *link == Link::Gone {
                continue;
            }
            // An interface that stays up raises no error: one getsockopt a tick.
            let error = ring.take_error().unwrap_or(0);
            if error != 0 && error != libc::ENETDOWN {
                let error = std::io::Error::from_raw_os_error(error);
                errors.log(|| tracing::warn!(iface = ring.iface(), %error, "socket error"));
            }
            // An MTU raised past what the ring keeps: said once (at start, by the engine).
            if first {
                if let Ok(longest) = ring.longest_frame() {
                    let kept = ring.kept_whole();
                    let seen = self.longest_seen.insert(*port, longest);
                    if seen.is_some_and(|s| s != longest) && longest > kept {
                        tracing::warn!(
                            iface = ring.iface(),
                            "its MTU now lets frames of up to {longest} bytes through, but its RX ring keeps {kept} \
                             bytes of a frame: longer frames are cut to {kept} bytes ({} with a VLAN tag put back), \
                             and cannot be forwarded; raise ring.frame_size (a low-latency port) or ring.block_size \
                             and restart",
                            kept + 4
                        );
                    }
                }
            }
            // (Asked every tick even when no error came: a carrier lost raises none.)
            let now = match ring.link() {
                Ok(l) => l,
                Err(e) => {
                    errors
                        .log(|| tracing::warn!(iface = ring.iface(), error = %error_chain(&e), "cannot read the interface's state"));
                    continue;
                }
            };
            if now == *link {
                continue;
            }
            note_link(&mut self.dispatch.ports[*port], ring.iface(), now, first);
            gone |= now == Link::Gone;
            *link = now;
        }
        if self.links.is_none() && self.dispatch.tx.iter().any(Option::is_some) {
            self.links = crate::ifstats::LinkStats::new()
                .map_err(|e| errors.log(|| tracing::warn!(error = %error_chain(&e), "cannot read veth peers' MTUs")))
                .ok();
        }
        for (port, tx) in self.dispatch.tx.iter_mut().enumerate() {
            let Some(tx) = tx else { continue };
            // The MTUs and the carrier can change while frames are forwarded
            // (gone: nothing to send anyway).
            if let Err(e) = tx.refresh(self.links.as_mut()) {
                if tx.link().is_ok_and(|l| l != Link::Gone) {
                    errors.log(
                        || tracing::warn!(iface = tx.iface(), error = %e, "cannot read the interface's MTU or state"),
                    );
                }
            }
            // Ports this worker only sends to: a sending socket gets no error
            // when its interface goes, so the interface is asked every tick.
            if receives(&self.sources, port) {
                continue;
            }
            let counts = &mut self.dispatch.ports[port];
            let was = Link::from_code(counts[pc::LINK]);
            if was == Link::Gone {
                continue;
            }
            match tx.link() {
                Ok(now) if now != was => {
                    note_link(counts, tx.iface(), now, first);
                    gone |= now == Link::Gone;
                }
                Ok(_) => {}
                Err(e) => errors
                    .log(|| tracing::warn!(iface = tx.iface(), error = %error_chain(&e), "cannot read the interface's state")),
            }
        }
        if gone {
            self.publish();
            self.check_exhausted();
        }
    }

    /// Apply a command between batches.
    fn apply(&mut self, cmd: Command) {
        let d = &mut self.dispatch;
        match cmd {
            Command::SetFilter { consumer, filter } => {
                if let Some(Some(c)) = d.consumers.get_mut(consumer) {
                    // The old filter (and a plugin's state) is dropped here, off any batch.
                    c.filter = filter;
                }
            }
            Command::SetPortFilter { port, filter } => {
                for s in &self.sources {
                    if let Source::Ring { port: p, ring, closing: None, .. } = s {
                        if *p == port {
                            // SO_ATTACH_FILTER / SO_ATTACH_BPF swap the socket's program
                            // atomically (RCU): every frame meets the old or the new one, never none.
                            if let Err(e) = ring.set_filter(filter.kernel()) {
                                tracing::error!(error = %error_chain(&e), port, "could not swap the port filter; the previous one stays");
                            }
                        }
                    }
                }
            }
            Command::AddPort { port, source, cells, subscribers } => {
                grow(&mut d.ports, port + 1, || [0; pc::N]);
                grow(&mut d.subs, port + 1, Vec::new);
                grow(&mut d.tx, port + 1, || None);
                grow(&mut self.port_cells, port + 1, || None);
                self.port_cells[port] = Some(cells);
                d.subs[port] = subscribers;
                self.sources.extend(source);
            }
            Command::RemovePort { port } => {
                if let Some(mut tx) = d.tx.get_mut(port).and_then(Option::take) {
                    let until = Instant::now() + Duration::from_millis(200);
                    retire_tx(&mut tx, &mut d.ports[port], until, "when the port was removed");
                }
                let drain = Drain::start(self.retire_timeout);
                let mut i = 0;
                while i < self.sources.len() {
                    match &mut self.sources[i] {
                        Source::Ring { port: p, ring, closing, .. } if *p == port => {
                            // The kernel stops filling the ring; what it accepted is read
                            // out (and counted) before the ring closes.
                            if let Err(e) = ring.stop_intake() {
                                tracing::warn!(error = %error_chain(&e), port, "could not stop the ring's intake");
                            }
                            *closing = Some(drain);
                            i += 1;
                        }
                        Source::Pcap { port: p, .. } if *p == port => {
                            self.sources.remove(i);
                            d.subs[port].clear();
                            self.port_cells[port] = None;
                        }
                        _ => i += 1,
                    }
                }
            }
            Command::AddTx { port, tx } => {
                grow(&mut d.ports, port + 1, || [0; pc::N]);
                grow(&mut d.subs, port + 1, Vec::new);
                grow(&mut self.port_cells, port + 1, || None);
                grow(&mut d.tx, port + 1, || None);
                d.tx[port] = Some(tx);
            }
            Command::Reattach { port, ring, tx } => {
                let live = |s: &Source| matches!(s, Source::Ring { port: p, closing: None, .. } if *p == port);
                if let (Some(new), Some(i)) = (ring, self.sources.iter().position(live)) {
                    // Read what the old socket still holds (the block its retire timer handed
                    // over once the interface went), so its counts reconcile before it closes
                    // (the worker's other ports wait meanwhile: at most DRAIN_CAP).
                    let mut drain = Drain::capped(self.retire_timeout, DRAIN_CAP);
                    loop {
                        if Self::poll_source(&mut self.sources[i], d, false).unwrap_or(0) > 0 {
                            drain.progress();
                            continue;
                        }
                        if let Source::Ring { ring: old, .. } = &self.sources[i] {
                            add_kernel_stats(&mut d.ports[port], old);
                        }
                        if ring_drained(&d.ports[port]) || drain.over() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    d.end_batch(true, &mut RateLimited { last: None });
                    if !ring_drained(&d.ports[port]) {
                        tracing::warn!(port, "re-opened port: frames the old socket accepted were never handed over");
                    }
                    if let Source::Ring { ring: old, link, .. } = &mut self.sources[i] {
                        *old = new;
                        *link = Link::Up;
                    }
                    d.ports[port][pc::LINK] = Link::Up.code();
                    // The poll on the old socket would never complete.
                    cancel_poll(&mut self.armed, &mut self.cancels, port);
                }
                if let Some(mut tx) = tx {
                    if let Some(mut old) = d.tx.get_mut(port).and_then(Option::take) {
                        // Its interface went away: nothing to wait for.
                        retire_tx(&mut old, &mut d.ports[port], Instant::now(), "when the interface went");
                        tx.carry_counts(&old);
                    }
                    d.tx[port] = Some(tx);
                    // A port only sent to: its state is its TX ring's (the next tick tells if it is down).
                    if !receives(&self.sources, port) {
                        d.ports[port][pc::LINK] = Link::Up.code();
                    }
                }
            }
            Command::AddConsumer { consumer, inst, cells, ports } => {
                grow(&mut d.consumers, consumer + 1, || None);
                grow(&mut d.cons, consumer + 1, || [0; cc::N]);
                grow(&mut self.cons_cells, consumer + 1, || None);
                // Frames its ports passed on before it joined: it never saw them.
                d.cons[consumer][cc::JOINED] = ports.iter().map(|&p| port_output(&d.ports, p)).sum();
                for &p in &ports {
                    if let Some(s) = d.subs.get_mut(p) {
                        s.push(consumer);
                    }
                }
                d.consumers[consumer] = Some(inst);
                self.cons_cells[consumer] = Some(cells);
            }
            Command::RemoveConsumer { consumer, ports } => {
                let Some(Some(mut inst)) = d.consumers.get_mut(consumer).map(Option::take) else { return };
                for subs in &mut d.subs {
                    subs.retain(|&c| c != consumer);
                }
                // Frames its ports had passed on when it left (a port removed before it
                // counts in full): with `JOINED`, what it should have seen.
                d.cons[consumer][cc::LEFT] = ports.iter().map(|&p| port_output(&d.ports, p)).sum();
                match &mut inst.delivery {
                    Delivery::Queued(p) => p.publish(),
                    Delivery::Latency(probe) => probe.publish(true),
                    Delivery::Counter | Delivery::Forward { .. } => {}
                }
                if let Some(Some(cells)) = self.cons_cells.get_mut(consumer).map(Option::take) {
                    cells.publish(&d.cons[consumer]);
                }
            }
            Command::SetForwarding(on) => d.forwarding = on,
        }
    }

    /// Close the rings of removed ports that are read empty (or out of time).
    fn retire_closing(&mut self) {
        let mut i = 0;
        while i < self.sources.len() {
            let Source::Ring { port, ring, closing: Some(drain), .. } = &self.sources[i] else {
                i += 1;
                continue;
            };
            let (port, over) = (*port, drain.over());
            add_kernel_stats(&mut self.dispatch.ports[port], ring);
            let drained = ring_drained(&self.dispatch.ports[port]);
            if !drained && !over {
                i += 1;
                continue;
            }
            if !drained {
                tracing::warn!(port, "removed port: deadline passed with frames still in the ring");
            }
            self.sources.remove(i);
            self.dispatch.subs[port].clear();
            cancel_poll(&mut self.armed, &mut self.cancels, port);
            if let Some(cells) = self.port_cells[port].take() {
                cells.publish(&self.dispatch.ports[port]);
            }
            tracing::debug!(port, "removed port closed");
        }
    }

    fn idle_timeout(&self) -> Duration {
        // (A held record's due time was set when it was read.)
        // A paced pcap source needs to wake up for its next record: when it
        // is due, if it is read and held, else soon, to read it.
        let paced = self.sources.iter().filter_map(|s| match s {
            Source::Pcap { pace: Pace::Recorded, done: false, held, clock, .. } => Some(match (held, clock) {
                (Some(r), Some(c)) => c.peek(r.ts_ns).saturating_duration_since(Instant::now()),
                _ => Duration::from_micros(200),
            }),
            _ => None,
        });
        let idle = if self.merging && self.sources.iter().any(|s| matches!(s, Source::Ring { .. })) {
            // Often enough that the promise to merging consumers keeps up
            // while this worker has nothing to do (see `promise`).
            (self.retire_timeout * 2).clamp(Duration::from_millis(5), Duration::from_millis(100))
        } else {
            Duration::from_millis(100)
        };
        paced.fold(idle, Duration::min)
    }

    /// Promise every queued consumer, once the frames taken in a pass that
    /// started at `pass_start` (ns since the epoch) are published, the
    /// earliest timestamp a frame from a ring it queues later can have; a
    /// consumer merging several workers in time order waits for it (see
    /// `TimeMerge`). A ring's frames come in the order the kernel took them
    /// (up to [`ORDER_SLACK`] apart across CPUs). A ring that had no block
    /// ready has nothing older to come than the block the kernel is
    /// filling, which it hands over within two block retire timeouts of its
    /// first frame (and [`RETIRE_LATE`]).
    fn promise(&self, pass_start: u64) {
        let retire = u64::try_from((self.retire_timeout * 2 + RETIRE_LATE).as_nanos()).unwrap_or(u64::MAX);
        let slack = u64::try_from(ORDER_SLACK.as_nanos()).unwrap_or(u64::MAX);
        let mut bound = u64::MAX;
        for src in &self.sources {
            if let Source::Ring { order, .. } = src {
                let seen =
                    if order.drained { order.last_ts.max(pass_start.saturating_sub(retire)) } else { order.last_ts };
                bound = bound.min(seen.saturating_sub(slack));
            }
        }
        self.promise_all(bound);
    }

    /// Whether a queued consumer merges this worker's records with other
    /// workers' in time order, and so waits for its promise.
    fn merges_by_time(&self) -> bool {
        self.dispatch.consumers.iter().flatten().any(|c| matches!(&c.delivery, Delivery::Queued(p) if p.merged()))
    }

    fn promise_all(&self, bound: u64) {
        let rings = self.sources.iter().filter(|s| matches!(s, Source::Ring { .. })).count();
        for c in self.dispatch.consumers.iter().flatten() {
            if let Delivery::Queued(p) = &c.delivery {
                p.promise(bound, rings);
            }
        }
    }

    fn publish(&self) {
        for (cells, local) in self.port_cells.iter().zip(&self.dispatch.ports) {
            if let Some(cells) = cells {
                cells.publish(local);
            }
        }
        for (cells, local) in self.cons_cells.iter().zip(&self.dispatch.cons) {
            if let Some(cells) = cells {
                cells.publish(local);
            }
        }
    }

    fn read_kernel_stats(&mut self) {
        for src in &self.sources {
            if let Source::Ring { port, ring, .. } = src {
                add_kernel_stats(&mut self.dispatch.ports[*port], ring);
            }
        }
    }

    /// Process what one source has ready; returns the number of frames.
    fn poll_source(src: &mut Source, d: &mut Dispatch, stopping: bool) -> Result<usize, String> {
        match src {
            Source::Ring { port, ring, order, .. } => {
                let port = *port;
                let mut frames = 0;
                order.drained = false;
                for _ in 0..BLOCKS_PER_PASS {
                    let Some(mut block) = ring.next_block() else {
                        order.drained = true;
                        break;
                    };
                    let (mut n, mut bytes, mut vlan, mut last_ts) = (0u64, 0u64, 0u64, 0u64);
                    // Not zeroed up front: a low-latency run is often a single frame.
                    let mut pkts = ArrayVec::<Packet<'_>, BATCH>::new();
                    for f in block.frames() {
                        n += 1;
                        last_ts = last_ts.max(f.ts_ns);
                        bytes += u64::from(f.wire_len);
                        vlan += u64::from(f.vlan.is_some());
                        pkts.push(Packet {
                            data: f.data,
                            wire_len: f.wire_len,
                            ts_ns: f.ts_ns,
                            origin: Origin::Kernel { stripped: f.vlan },
                        });
                        if pkts.is_full() {
                            d.batch(port, &pkts, false);
                            pkts.clear();
                        }
                    }
                    if !pkts.is_empty() {
                        d.batch(port, &pkts, false);
                    }
                    order.last_ts = order.last_ts.max(last_ts);
                    let p = &mut d.ports[port];
                    p[pc::RECEIVED] += n;
                    p[pc::BYTES] += bytes;
                    p[pc::VLAN_RESTORED] += vlan;
                    frames += n as usize;
                    // `block` drops here: handed back to the kernel.
                }
                Ok(frames)
            }
            Source::Pcap { port, reader: FileReader::Shared { reader, refs }, filter, done, .. } => {
                if *done || stopping {
                    return Ok(0);
                }
                let Claim::Segment { seq, error } = reader.claim(SEGMENT, refs) else {
                    *done = true;
                    return Ok(1);
                };
                let port = *port;
                d.begin_segment(port, seq);
                for batch in refs.chunks(BATCH) {
                    Self::dispatch_records(d, port, filter, batch, |r| reader.data(r));
                }
                d.end_segment(port);
                match error {
                    // The error names the file: the port's index would add nothing.
                    Some(e) => Err(error_chain(&e)),
                    None => Ok(refs.len().max(1)),
                }
            }
            Source::Pcap { port, reader: FileReader::Own(reader), filter, pace, clock, held, done, .. } => {
                if *done || stopping {
                    return Ok(0);
                }
                let port = *port;
                let mut refs = ArrayVec::<RecordRef, BATCH>::new();
                let mut failure = None;
                while !refs.is_full() {
                    let (next, was_held) = match held.take() {
                        Some(r) => (Ok(Some(r)), true),
                        None => (reader.next_ref(), false),
                    };
                    match next {
                        Ok(Some(r)) => {
                            if *pace == Pace::Recorded {
                                // Never sleep here: a record not yet due waits in `held`
                                // and the worker's idle wait brings us back.
                                let due = clock.get_or_insert_with(|| PaceClock::new(r.ts_ns)).due(r.ts_ns);
                                // One reading of the clock: a second could see the record due.
                                if let Some(wait) = due.checked_duration_since(Instant::now()).filter(|w| !w.is_zero())
                                {
                                    if !was_held && wait > LONG_PACE_WAIT {
                                        // Once per record: the run seems to hang otherwise.
                                        tracing::warn!(
                                            file = %reader.path().display(),
                                            record_ns = r.ts_ns,
                                            "recorded pace: the next record is due in {} s; waiting for it (a stop ends the wait)",
                                            wait.as_secs()
                                        );
                                    }
                                    *held = Some(r);
                                    break;
                                }
                            }
                            refs.push(r);
                        }
                        Ok(None) => {
                            *done = true;
                            break;
                        }
                        Err(e) => {
                            failure = Some(error_chain(&e));
                            break;
                        }
                    }
                }
                // Every record of the batch borrows the mapped file at once.
                let reader: &PcapReader = reader;
                Self::dispatch_records(d, port, filter, &refs, |r| reader.data(r));
                if let Some(e) = failure {
                    return Err(e);
                }
                let n = refs.len();
                // A pass that only read filtered records still did work.
                Ok(if *pace == Pace::Fast { n.max(usize::from(!*done)) } else { n })
            }
        }
    }

    /// Count, port-filter and dispatch (losslessly) a batch of file records.
    fn dispatch_records<'a>(
        d: &mut Dispatch,
        port: usize,
        filter: &mut Option<Box<dyn Filter>>,
        refs: &[RecordRef],
        data: impl Fn(&RecordRef) -> &'a [u8],
    ) {
        let mut pkts = ArrayVec::<Packet<'a>, BATCH>::new();
        let counts = &mut d.ports[port];
        for r in refs {
            counts[pc::RECEIVED] += 1;
            counts[pc::BYTES] += u64::from(r.orig_len);
            let pkt = Packet { data: data(r), wire_len: r.orig_len, ts_ns: r.ts_ns, origin: Origin::Wire };
            if let Some(f) = filter.as_mut() {
                if f.verdict(&pkt) == Verdict::Drop {
                    counts[pc::FILTERED] += 1;
                    continue;
                }
            }
            pkts.push(pkt);
        }
        if !pkts.is_empty() {
            d.batch(port, &pkts, true);
        }
    }

    /// Sleep in io_uring until a ring has a block, the wake-up eventfd is
    /// signalled, or `timeout` passes. A ring's poll that completes with an
    /// error condition (`POLLERR`: its interface went down or away) is
    /// added to `parked` and left marked armed, so it is not polled again
    /// before the caller has looked at it and the next tick: a condition
    /// that does not clear can never make the worker spin.
    fn wait_uring(
        &mut self,
        ring: &mut IoUring,
        wake_armed: &mut bool,
        parked: &mut Vec<u64>,
        timeout: Duration,
    ) -> WorkerResult {
        grow(&mut self.armed, self.dispatch.ports.len(), || None);
        {
            let mut sq = ring.submission();
            // Polls on the sockets of removed ports: cancelled, so io_uring lets go of them.
            while let Some(&ud) = self.cancels.last() {
                let e = opcode::AsyncCancel::new(ud).build().user_data(CANCEL_TOKEN);
                // SAFETY: a cancel entry holds no pointer or fd, only the user data to match.
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                self.cancels.pop();
            }
            for src in &self.sources {
                if let Source::Ring { ring: rx, port, .. } = src {
                    if self.armed[*port].is_none() {
                        let ud = poll_ud(*port, self.polls);
                        let e = opcode::PollAdd::new(types::Fd(rx.raw_fd()), libc::POLLIN as u32).build().user_data(ud);
                        // SAFETY: the entry references only an fd the worker owns; io_uring takes its own
                        // reference to the file at submission, so closing a removed port's ring is safe too.
                        if unsafe { sq.push(&e) }.is_ok() {
                            self.armed[*port] = Some(ud);
                            self.polls = self.polls.wrapping_add(1);
                        }
                    }
                }
            }
            if !*wake_armed {
                let e = opcode::PollAdd::new(types::Fd(self.wake.as_raw_fd()), libc::POLLIN as u32)
                    .build()
                    .user_data(WAKE_TOKEN);
                // SAFETY: as above: the eventfd is owned by this worker for its whole life.
                if unsafe { sq.push(&e) }.is_ok() {
                    *wake_armed = true;
                }
            }
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(format!("io_uring wait: {e}").into()),
        }
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            if ud == WAKE_TOKEN {
                *wake_armed = false;
                sys::eventfd_clear(self.wake.as_raw_fd());
            } else if ud == CANCEL_TOKEN {
            } else if let Some(a) = self.armed.get_mut(ud_port(ud)).filter(|a| **a == Some(ud)) {
                // (Any other completion is a cancelled or stale poll on a closed or
                // replaced socket: its port was disarmed when the cancel went in.)
                const ERROR: i32 = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as i32;
                let r = cqe.result();
                if r >= 0 && r & ERROR != 0 {
                    parked.push(ud);
                } else {
                    *a = None;
                }
            }
        }
        Ok(())
    }
}

impl Dispatch {
    /// Worker `index`'s dispatch: `subs` and `tx` by port, `consumers` by
    /// slot, every count at zero, forwarding on.
    pub(crate) fn new(
        index: u16,
        consumers: Vec<Option<ConsumerInst>>,
        subs: Vec<Vec<usize>>,
        tx: Vec<Option<TxRing>>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            index,
            ports: vec![[0; pc::N]; subs.len()],
            cons: vec![[0; cc::N]; consumers.len()],
            consumers,
            subs,
            tx,
            verdicts: [Verdict::Pass; BATCH],
            stop,
            stuck_at_stop: false,
            forwarding: true,
            clock_offset: (0, 0),
        }
    }

    /// A dispatch of one receiving port, without TX rings, to `consumers`.
    fn one_port(consumers: Vec<ConsumerInst>) -> Self {
        let n = consumers.len();
        Self::new(0, consumers.into_iter().map(Some).collect(), vec![(0..n).collect()], vec![None], Arc::default())
    }
}

/// Benchmark support: a worker's dispatch of batches to counting consumers,
/// without rings or threads (`cargo bench -p ringwire-engine`).
#[doc(hidden)]
pub struct BenchDispatch(Dispatch);

impl BenchDispatch {
    /// `consumers` counting consumers on one port, each with `filter()` (if any).
    #[must_use]
    pub fn counters(consumers: usize, mut filter: impl FnMut() -> Option<Box<dyn Filter>>) -> Self {
        Self(Dispatch::one_port(
            (0..consumers).map(|_| ConsumerInst { filter: filter(), delivery: Delivery::Counter }).collect(),
        ))
    }

    /// Dispatch one batch (at most 256 frames), as a worker does per block.
    pub fn batch(&mut self, pkts: &[Packet<'_>]) {
        self.0.batch(0, pkts, false);
    }

    /// Frames consumer `i` passed so far.
    #[must_use]
    pub fn passed(&self, i: usize) -> u64 {
        self.0.cons[i][cc::PASSED]
    }
}

/// The user data of poll number `id` on port `port`'s ring.
fn poll_ud(port: usize, id: u32) -> u64 {
    port as u64 | u64::from(id) << 32
}

/// The port a poll's user data names.
fn ud_port(ud: u64) -> usize {
    (ud & 0xffff_ffff) as usize
}

/// A TX ring is done with (at exit, its port removed, or replaced on
/// re-open): while its interface is up, the kernel may send what waits
/// until `until`; what it never sent is told and counted in `tx_unsent`
/// (see [`TxRing::forget_unsent`]). Its counts go to the port's `counts`.
fn retire_tx(t: &mut TxRing, counts: &mut [u64; pc::N], until: Instant, when: &str) {
    while t.in_flight() > 0 && Instant::now() < until && matches!(t.link(), Ok(Link::Up)) {
        let _ = t.flush();
        std::thread::sleep(Duration::from_millis(1));
    }
    let unsent = t.forget_unsent();
    if unsent > 0 {
        tracing::warn!(iface = t.iface(), unsent, "frames left in the TX ring {when} were never sent (tx_unsent)");
    }
    tx_counts(t, counts);
}

/// Copy a TX ring's own counts into its port's counters.
fn tx_counts(t: &TxRing, counts: &mut [u64; pc::N]) {
    counts[pc::TX_FRAMES] = t.pushed();
    counts[pc::TX_BUSY] = t.busy();
    counts[pc::TX_UNSENT] = t.unsent();
}

/// Whether `sources` receive from `port` (else this worker only sends to it).
fn receives(sources: &[Source], port: usize) -> bool {
    sources.iter().any(|s| matches!(s, Source::Ring { port: p, .. } if *p == port))
}

/// Record (and, on the first worker, log) a port's interface changing to `now`.
fn note_link(counts: &mut [u64; pc::N], iface: &str, now: Link, first: bool) {
    // Every worker has a socket on the interface: the first one tells.
    match now {
        Link::Gone if first => {
            tracing::error!(iface, "the interface is gone (deleted, or moved to another network namespace)");
        }
        Link::Down if first => tracing::warn!(iface, "the interface is down: no frames until it is up again"),
        Link::NoCarrier if first => tracing::warn!(
            iface,
            "the interface has no carrier (a cable out, a veth whose peer is down): no frames in or out until it has"
        ),
        Link::Up if first => tracing::info!(iface, "the interface is up again"),
        _ => {}
    }
    if matches!(now, Link::Down | Link::NoCarrier) {
        counts[pc::LINK_DOWNS] += 1;
    }
    counts[pc::LINK] = now.code();
}

/// Cancel the poll in flight on `port`'s ring, if any (its socket is being
/// closed or replaced): the port counts as not polled from now on.
fn cancel_poll(armed: &mut [Option<u64>], cancels: &mut Vec<u64>, port: usize) {
    if let Some(ud) = armed.get_mut(port).and_then(Option::take) {
        cancels.push(ud);
    }
}

/// When a file's records are due at their recorded pace: each at its
/// recorded time less the first record's, from when the first was replayed.
/// Where the file's times step back (files joined end to end, a clock set
/// back while capturing), the record is due with the one before it, and
/// those after it are timed from it: the recorded intervals are kept on
/// both sides of the step (the records after it were sent in a burst until
/// their times caught up with the one before the step).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaceClock {
    /// The record all others are timed from, and when it was due.
    t0: u64,
    start: Instant,
    /// The last record's time.
    last: u64,
}

impl PaceClock {
    /// A clock whose first record, of time `ts`, is due now.
    pub(crate) fn new(ts: u64) -> Self {
        Self { t0: ts, start: Instant::now(), last: ts }
    }

    /// When the next record, of time `ts`, is due (asked again for a
    /// record held until then, it is the same).
    fn due(&mut self, ts: u64) -> Instant {
        if ts < self.last {
            self.start += Duration::from_nanos(self.last - self.t0);
            self.t0 = ts;
        }
        self.last = ts;
        self.peek(ts)
    }

    /// When the record of time `ts` last given to [`PaceClock::due`] is due.
    fn peek(&self, ts: u64) -> Instant {
        self.start + Duration::from_nanos(ts.saturating_sub(self.t0))
    }
}

/// A wait for a file record's recorded time longer than this is said (a
/// capture paused for long, or a bad timestamp).
const LONG_PACE_WAIT: Duration = Duration::from_secs(10);

/// The longest a ring whose intake is stopped (the engine stopping, its
/// port removed) is read for what its kernel accepted, however much there
/// is, unless its last block takes longer to be retired ([`drain_window`]).
const DRAIN_CAP: Duration = Duration::from_secs(5);

/// How long a ring whose intake is stopped is read before it closes: until
/// it has been quiet for the time its last partly filled block takes to be
/// retired ([`drain_window`]), however long a backlog takes to read (a slow
/// or busy machine's, an engine held by SIGSTOP), up to [`DRAIN_CAP`] or
/// that window if longer (a `retire_timeout_ms` of seconds: its last block
/// is not handed over sooner, and closing the ring earlier would lose it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drain {
    /// How long the ring must be quiet.
    window: Duration,
    quiet_until: Instant,
    cap: Instant,
}

impl Drain {
    fn start(retire_timeout: Duration) -> Self {
        let window = drain_window(retire_timeout);
        Self::capped(retire_timeout, DRAIN_CAP.max(window))
    }

    /// A drain that ends after `cap` whatever the window.
    fn capped(retire_timeout: Duration, cap: Duration) -> Self {
        let (now, window) = (Instant::now(), drain_window(retire_timeout));
        let cap = now + cap;
        Self { window, quiet_until: (now + window).min(cap), cap }
    }

    /// Frames came out of the ring: it is read until quiet that long again.
    fn progress(&mut self) {
        self.quiet_until = (Instant::now() + self.window).min(self.cap);
    }

    /// Whether the ring is read no longer.
    fn over(&self) -> bool {
        Instant::now() >= self.quiet_until
    }
}

/// How long a ring whose intake is stopped must be quiet before it closes:
/// long enough for its last partly filled block to be retired.
pub(crate) fn drain_window(retire_timeout: Duration) -> Duration {
    retire_timeout * 3 + Duration::from_millis(100)
}

/// Make `v` at least `len` long.
fn grow<T>(v: &mut Vec<T>, len: usize, fill: impl FnMut() -> T) {
    if v.len() < len {
        v.resize_with(len, fill);
    }
}

/// Frames port `p` has passed on to its consumers on this worker.
fn port_output(ports: &[[u64; pc::N]], p: usize) -> u64 {
    ports.get(p).map_or(0, |c| c[pc::RECEIVED] - c[pc::FILTERED])
}

/// Add the kernel's counts for `ring` since the last read to `counts`.
fn add_kernel_stats(counts: &mut [u64; pc::N], ring: &RxRing) {
    match ring.take_kernel_stats() {
        Ok((packets, drops, freezes)) => {
            counts[pc::KERNEL_PACKETS] += packets;
            counts[pc::KERNEL_DROPS] += drops;
            counts[pc::KERNEL_FREEZES] += freezes;
        }
        Err(e) => tracing::warn!(error = %error_chain(&e), "PACKET_STATISTICS failed"),
    }
}

/// Whether a ring has handed over every frame its kernel accepted.
fn ring_drained(counts: &[u64; pc::N]) -> bool {
    counts[pc::RECEIVED] >= counts[pc::KERNEL_PACKETS].saturating_sub(counts[pc::KERNEL_DROPS])
}

#[cfg(test)]
mod tests {
    use ringwire_filters::{FilterFactory, QuarantinePolicy};

    use super::*;
    use crate::consumer::Channel;

    /// A drain lasts while frames keep coming out, ends once the ring has
    /// been quiet for its window, and never outlasts its cap.
    #[test]
    fn a_drain_reads_on_while_frames_come_and_ends_when_quiet() {
        let retire = Duration::from_millis(50); // a 250-ms window
        let mut d = Drain::start(retire);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(600) {
            assert!(!d.over(), "over after {:?} with frames still coming", start.elapsed());
            d.progress();
            std::thread::sleep(Duration::from_millis(20));
        }
        let quiet = Instant::now();
        while !d.over() {
            assert!(quiet.elapsed() < Duration::from_secs(2), "never over");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(quiet.elapsed() >= Duration::from_millis(200), "over {:?} after the last frames", quiet.elapsed());
        let mut capped = Drain::start(retire);
        capped.cap = Instant::now() + Duration::from_millis(50);
        capped.progress();
        assert!(capped.quiet_until <= capped.cap, "progress stays within the cap");
        // A retire timeout whose window is longer than the cap: the ring is
        // read for the window (its last block comes no sooner) ...
        let long = Drain::start(Duration::from_secs(6));
        assert!(long.cap >= Instant::now() + Duration::from_secs(18), "the window is the cap");
        assert!(long.quiet_until <= long.cap);
        // ... unless a cap is set (a worker blocked reading an old ring).
        let held = Drain::capped(Duration::from_secs(60), DRAIN_CAP);
        assert!(held.quiet_until <= held.cap && held.cap <= Instant::now() + DRAIN_CAP, "capped at once");
    }

    /// Recorded pace: records are due at their times from the first's; one
    /// whose time steps back is due with the one before it, and the records
    /// after it are timed from it.
    #[test]
    fn a_step_back_in_a_files_times_keeps_the_intervals_on_both_sides() {
        let ms = |n: u64| Duration::from_millis(n);
        let mut c = PaceClock::new(1_000_000_000);
        let s = c.start;
        assert_eq!(c.due(1_000_000_000), s);
        assert_eq!(c.due(1_100_000_000), s + ms(100));
        assert_eq!(c.due(1_200_000_000), s + ms(200));
        assert_eq!(c.due(1_200_000_000), s + ms(200), "a record held, asked again");
        assert_eq!(c.due(1_050_000_000), s + ms(200), "stepped back: with the one before");
        assert_eq!(c.peek(1_050_000_000), s + ms(200));
        assert_eq!(c.due(1_150_000_000), s + ms(300));
        assert_eq!(c.due(1_150_000_000 + 5_000_000_000), s + ms(5300), "a long gap forward is kept");
    }

    #[test]
    fn a_queued_consumer_counts_every_frame_of_a_batch_once() {
        // A UDP frame and an ARP frame, 60 bytes each.
        let mut udp = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        udp.extend_from_slice(&[0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        udp.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 26, 0, 0]);
        udp.resize(60, 0);
        let mut arp = udp.clone();
        arp[12..14].copy_from_slice(&[8, 6]);
        let pkts: Vec<_> = (0..10).map(|i| Packet::whole(if i % 2 == 0 { &udp } else { &arp })).collect();
        // Two chunks of 256 bytes hold three 76-byte records each: six of
        // the ten UDP frames of two batches fit while nothing is written.
        let ch = Arc::new(Channel::new(2, 256, Arc::default()));
        let filter = FilterFactory::new("builtin:proto udp", QuarantinePolicy::DropAll).unwrap().instance().unwrap();
        let delivery = Delivery::Queued(Producer::new(ch.clone(), 1000));
        let mut d = Dispatch::one_port(vec![ConsumerInst { filter: Some(filter), delivery }]);
        d.batch(0, &pkts, false);
        d.batch(0, &pkts, false);
        let n = d.cons[0];
        assert_eq!((n[cc::SEEN], n[cc::FILTERED], n[cc::PASSED]), (20, 10, 10));
        assert_eq!((n[cc::DELIVERED], n[cc::QUEUE_DROPPED]), (6, 4));
        assert_eq!(n[cc::DELIVERED_BYTES], 6 * 60, "the bytes of the frames queued, not of those dropped");
        if let Some(ConsumerInst { delivery: Delivery::Queued(p), .. }) = &mut d.consumers[0] {
            p.publish();
        }
        let mut written = 0;
        while let Some(c) = ch.take() {
            assert!(c.iter().all(|(_, _, len, data)| len == 60 && data == &udp[..]));
            written += c.records();
        }
        assert_eq!(written, 6, "what was counted delivered is what the consumer got");
    }

    /// The counter counts the frames and the wire bytes its filter passes:
    /// a frame cut by a snaplen counts its length on the wire.
    #[test]
    fn the_counter_counts_frames_and_wire_bytes() {
        let frames: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 60 + 10 * i]).collect();
        let mut pkts: Vec<_> = frames.iter().map(|f| Packet::whole(f)).collect();
        pkts[9].wire_len = 1514;
        // The second counter passes frames whose first byte is even.
        let even = FilterFactory::new("ether[0] & 1 = 0", QuarantinePolicy::DropAll).unwrap().instance().unwrap();
        let mut d = Dispatch::one_port(vec![
            ConsumerInst { filter: None, delivery: Delivery::Counter },
            ConsumerInst { filter: Some(even), delivery: Delivery::Counter },
        ]);
        d.batch(0, &pkts, false);
        let all: u64 = (0..9).map(|i| 60 + 10 * i).sum::<u64>() + 1514;
        assert_eq!((d.cons[0][cc::DELIVERED], d.cons[0][cc::DELIVERED_BYTES]), (10, all));
        let even: u64 = [0u64, 2, 4, 6, 8].iter().map(|i| 60 + 10 * i).sum();
        assert_eq!((d.cons[1][cc::DELIVERED], d.cons[1][cc::DELIVERED_BYTES], d.cons[1][cc::FILTERED]), (5, even, 5));
    }
}
