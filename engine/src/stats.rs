//! Frame accounting: per-worker counters on their own cache lines, written
//! only by their worker (once per batch), summed when read.
//!
//! The identities every snapshot must satisfy are in [`Snapshot::reconcile`].

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use serde::Serialize;

use crate::{ifstats::IfDrops, ring::Link};

/// A fixed set of counters owned by one writer thread.
#[derive(Debug)]
pub struct Cells<const N: usize>(CachePadded<[AtomicU64; N]>);

impl<const N: usize> Default for Cells<N> {
    fn default() -> Self {
        Self(CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl<const N: usize> Cells<N> {
    /// Publish the writer's local totals (one writer per cell). Release
    /// stores (plain stores on x86): a reader that loads these sees every
    /// count the writer published before them.
    #[inline]
    pub fn publish(&self, local: &[u64; N]) {
        for (cell, v) in self.0.iter().zip(local) {
            cell.store(*v, Ordering::Release);
        }
    }

    /// Read all cells, the last first: a count read this way is never older
    /// than a count after it (the writer publishes in index order), so a
    /// total kept before its parts (`received` before `filtered`, `seen`
    /// before `passed` and `filtered`) is never read below their sum.
    #[must_use]
    pub fn load(&self) -> [u64; N] {
        let mut out = [0; N];
        for (o, cell) in out.iter_mut().zip(self.0.iter()).rev() {
            *o = cell.load(Ordering::Acquire);
        }
        out
    }
}

/// Indexes of per-port counters.
pub mod port {
    /// Frames taken from the ring or file.
    pub const RECEIVED: usize = 0;
    /// Bytes of those frames (wire length).
    pub const BYTES: usize = 1;
    /// Frames whose stripped VLAN tag was put back.
    pub const VLAN_RESTORED: usize = 2;
    /// Frames the kernel accepted into the socket (`tp_packets`).
    pub const KERNEL_PACKETS: usize = 3;
    /// Frames the kernel dropped because the ring was full (`tp_drops`).
    pub const KERNEL_DROPS: usize = 4;
    /// Times the ring was frozen (`tp_freeze_q_cnt`).
    pub const KERNEL_FREEZES: usize = 5;
    /// pcap ports: records skipped by the port filter.
    pub const FILTERED: usize = 6;
    /// Frames forwarded out of this port (handed to its TX rings).
    pub const TX_FRAMES: usize = 7;
    /// TX kicks answered "busy" (the device pushed back; frames waited in the ring).
    pub const TX_BUSY: usize = 8;
    /// Times this worker found the interface down (at start, or going down).
    pub const LINK_DOWNS: usize = 9;
    /// The interface's state as this worker's socket last saw it
    /// ([`crate::ring::Link::code`]; up when not an interface).
    pub const LINK: usize = 10;
    /// Of `TX_FRAMES`, those the kernel never sent: still in a TX ring
    /// closed or replaced with its interface down or gone.
    pub const TX_UNSENT: usize = 11;
    /// Number of port counters.
    pub const N: usize = 12;
}

/// Indexes of per-consumer counters kept by workers.
pub mod consumer {
    /// Frames from the consumer's ports.
    pub const SEEN: usize = 0;
    /// Frames its filter passed.
    pub const PASSED: usize = 1;
    /// Frames its filter dropped.
    pub const FILTERED: usize = 2;
    /// Frames delivered (counted, sent, or queued to its thread).
    pub const DELIVERED: usize = 3;
    /// Frames dropped because its queue / TX ring was full or the frame did not fit.
    pub const QUEUE_DROPPED: usize = 4;
    /// `forward`: frames passed while forwarding was stopped (not sent).
    pub const PAUSED: usize = 5;
    /// Frames its ports had passed on before it was added (not seen by it).
    pub const JOINED: usize = 6;
    /// Frames its ports had passed on when it was removed (0 while it runs).
    pub const LEFT: usize = 7;
    /// Wire bytes of the frames delivered.
    pub const DELIVERED_BYTES: usize = 8;
    /// `forward`: of `QUEUE_DROPPED`, frames that could not be sent as they
    /// are (cut short, or longer than the port forwarded to takes).
    pub const UNFIT: usize = 9;
    /// `forward`: of `QUEUE_DROPPED`, frames not sent because the port
    /// forwarded to was down (no carrier, set down, or gone).
    pub const EGRESS_DOWN: usize = 10;
    /// Number of consumer counters.
    pub const N: usize = 11;
}

/// Indexes of counters kept by a queued consumer's own thread.
pub mod sink {
    /// Frames written out.
    pub const WRITTEN: usize = 0;
    /// Bytes written out (record data).
    pub const BYTES: usize = 1;
    /// Frames taken off the queue after the consumer's limit was reached.
    pub const OVER_LIMIT: usize = 2;
    /// Frames lost to write errors.
    pub const WRITE_ERRORS: usize = 3;
    /// Files opened (rotation, per-worker split).
    pub const FILES: usize = 4;
    /// Frames not written because the output's reader had gone (`| head`).
    pub const OUTPUT_CLOSED: usize = 5;
    /// Number of sink counters.
    pub const N: usize = 6;
}

/// Indexes of a worker's own counters: how it was scheduled, from the
/// kernel's accounting of its thread (`/proc/thread-self/schedstat`),
/// published every statistics tick and at exit.
pub mod worker {
    /// Nanoseconds it ran.
    pub const CPU_NS: usize = 0;
    /// Nanoseconds it was ready to run while another task had its core.
    pub const WAITED_NS: usize = 1;
    /// Nanoseconds since it started that it did not run (wall time less
    /// CPU time, both read at the same publication).
    pub const OFF_NS: usize = 2;
    /// Number of worker counters.
    pub const N: usize = 3;
}

/// Counters of one port, summed over workers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct PortSnap {
    /// Port name.
    pub name: String,
    /// Removed at run time (its counters are final).
    pub removed: bool,
    /// An interface port (`afpacket`), whose kernel counts are checked
    /// against what was read once its rings are drained.
    #[serde(skip)]
    pub interface: bool,
    /// Frames taken from the rings / file.
    pub received: u64,
    /// Wire bytes of those frames.
    pub bytes: u64,
    /// Frames with a VLAN tag put back.
    pub vlan_restored: u64,
    /// pcap ports: records the port filter skipped.
    pub filtered: u64,
    /// Interface ports: what their eBPF programs no longer in force
    /// (replaced, detached, loaded anew at a re-open) dropped in the kernel;
    /// the program in force counts in `ebpf`. Never received, so apart
    /// from `filtered`, which counts records a port received and skipped.
    pub past_filtered: u64,
    /// A pcap port whose file ended badly (truncated, corrupt): why. Its
    /// frames up to there were read and counted; the rest are not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Interface ports whose kernel filter drops frames without counting
    /// them (a pcap-filter expression, an eBPF program without a
    /// `ringwire_stats` map): how many it filtered is not known, and the
    /// tables show `-` for it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub filtered_uncounted: bool,
    /// An interface port whose eBPF program has a `ringwire_stats` map but
    /// counts nothing in it (it returns without `ringwire_verdict()`): its
    /// `ebpf` counts are not the frames it saw and passed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ebpf_silent: bool,
    /// With `ebpf_silent`: the frames the socket took through the program
    /// (since it settled in force, for one put in force at run time).
    #[serde(skip)]
    pub ebpf_silent_taken: u64,
    /// pcap ports with a plugin in their filter: its failed calls.
    pub filter_errors: u64,
    /// pcap ports: why the plugin in their filter is quarantined (it then
    /// drops every record, counted in `filtered`).
    pub filter_quarantined: Option<String>,
    /// Frames the kernel accepted into the sockets.
    pub kernel_packets: u64,
    /// Frames the kernel dropped (ring full).
    pub kernel_drops: u64,
    /// Ring freezes.
    pub kernel_freezes: u64,
    /// Frames forwarded out of this port.
    pub tx_frames: u64,
    /// TX kicks the device answered "busy" (frames waited in the ring, none lost).
    pub tx_busy: u64,
    /// Of `tx_frames`, those the kernel never sent (left in a TX ring closed
    /// or replaced while its interface was down or gone).
    pub tx_unsent: u64,
    /// Interface ports that receive or are forwarded to: `up`, `down` (administratively: no frames until it
    /// is up again) or `gone` (deleted, or moved to another network
    /// namespace: the port receives nothing more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// Times the interface was found down (down at start, or going down).
    pub link_downs: u64,
    /// Receiving interface ports: frames the interface lost on receive since
    /// the port opened, before any socket saw them, counted for all its
    /// traffic (`if_dropped`, `if_missed` in the JSON).
    #[serde(flatten)]
    pub if_drops: Option<IfDrops>,
    /// An eBPF port filter's own counters, if it keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf: Option<EbpfSnap>,
    /// The classifier's entries, if the port runs it, with their hits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classifier: Vec<ClassSnap>,
}

/// One classifier entry and the frames that matched it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ClassSnap {
    /// VLAN id; `None`: untagged frames.
    pub vlan: Option<u16>,
    /// Destination MAC.
    pub mac: String,
    /// `pass` or `drop`.
    pub action: String,
    /// Frames that matched the entry since it was added.
    pub hits: u64,
}

/// `aa:bb:cc:dd:ee:ff`.
#[must_use]
pub fn format_mac(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

impl From<&ringwire_bpf::ClassEntry> for ClassSnap {
    fn from(e: &ringwire_bpf::ClassEntry) -> Self {
        Self {
            vlan: e.key.vlan,
            mac: format_mac(e.key.mac),
            action: match e.action {
                ringwire_bpf::Action::Pass => "pass",
                ringwire_bpf::Action::Drop => "drop",
            }
            .into(),
            hits: e.hits,
        }
    }
}

/// Frames an eBPF port filter counted in its `ringwire_stats` map. Frames
/// it dropped (`seen - passed`) never reached the sockets: they are filtered
/// in the kernel, not lost, and `passed` is what the kernel then accepted
/// into the sockets (`kernel_packets`) once traffic has stopped.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct EbpfSnap {
    /// Which program counted them ([`ringwire_bpf::SocketFilter::serial`]):
    /// a program swapped in counts from zero.
    #[serde(skip)]
    pub program: u64,
    /// Frames the program ran on.
    pub seen: u64,
    /// Frames it passed.
    pub passed: u64,
    /// Frames it dropped in the kernel.
    pub filtered: u64,
}

/// Counters of one worker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct WorkerSnap {
    /// Worker index.
    pub index: usize,
    /// Core it is pinned to.
    pub core: usize,
    /// Frames it received, all ports.
    pub received: u64,
    /// Wire bytes it received.
    pub bytes: u64,
    /// Frames the kernel accepted into its sockets.
    pub kernel_packets: u64,
    /// Kernel drops on its sockets.
    pub kernel_drops: u64,
    /// Nanoseconds its thread ran.
    pub cpu_ns: u64,
    /// Nanoseconds its thread was ready to run while another task of this
    /// machine had its core (the scheduler's `run_delay`).
    pub waited_ns: u64,
    /// Busy-poll workers, which should run all the time: nanoseconds their
    /// thread did not run (`waited_ns`, plus what the hypervisor or
    /// interrupts took, a stop such as SIGSTOP, and the worker's own short
    /// waits: for its last frames to be sent at exit, for a ring to be read
    /// out when its interface comes back). `None` for workers that sleep
    /// when idle.
    pub off_core_ns: Option<u64>,
}

/// Counters of one consumer.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ConsumerSnap {
    /// Consumer name.
    pub name: String,
    /// Kind (`counter`, `forward`, `pcap`, `print`).
    pub kind: String,
    /// Removed at run time (its counters are final).
    pub removed: bool,
    /// Frames from its ports.
    pub seen: u64,
    /// Frames its filter passed.
    pub passed: u64,
    /// Frames its filter dropped.
    pub filtered: u64,
    /// Frames delivered (counted / sent / queued).
    pub delivered: u64,
    /// Wire bytes of the frames delivered (their length on the wire, also
    /// for frames a snaplen cuts).
    pub delivered_bytes: u64,
    /// Frames dropped on a full queue or TX ring, or (`forward`) that did
    /// not fit it ([`ConsumerSnap::unfit`]).
    pub queue_dropped: u64,
    /// `forward`: of `queue_dropped`, frames that could not be sent as they
    /// are: cut short (captured shorter than on the wire), or longer than the
    /// port forwarded to takes (its MTU, its TX slot, or a length its device
    /// has just refused).
    pub unfit: u64,
    /// `forward`: of `queue_dropped`, frames not sent because the port
    /// forwarded to was down: no carrier (a cable out, a veth whose peer is
    /// down), set down, or gone. What `queue_dropped` holds besides `unfit`
    /// and this found the TX ring full.
    pub egress_down: u64,
    /// `forward`: frames passed while forwarding was stopped (not sent).
    pub paused: u64,
    /// Added at run time: frames its ports had passed on before it was
    /// added, which it never saw.
    pub before_added: u64,
    /// The indices of the ports it takes frames from (for [`Snapshot::since`]).
    #[serde(skip)]
    pub port_indices: Vec<usize>,
    /// Queued consumers: frames written by its thread.
    pub written: u64,
    /// Queued consumers: bytes written.
    pub written_bytes: u64,
    /// Queued consumers: frames past its limit (`-c`), not written.
    pub over_limit: u64,
    /// Queued consumers: frames lost to write errors.
    pub write_errors: u64,
    /// Queued consumers writing to standard output or a FIFO: frames not
    /// written because its reader had gone (`| head`), which ends the run.
    pub output_closed: u64,
    /// `pcap` consumers: files opened (rotation and per-worker split
    /// included; removed ones too, with `rotate_files`).
    pub files: u64,
    /// Frames delivered per worker.
    pub per_worker: Vec<u64>,
    /// The filter in force, as written.
    pub filter: Option<String>,
    /// Plugin filters: failed calls, of every filter the consumer has had
    /// (those replaced or detached since included).
    pub filter_errors: u64,
    /// Plugin filters: why the filter in force is quarantined.
    pub filter_quarantined: Option<String>,
    /// Filters of the consumer quarantined, those replaced or detached since
    /// included: frames a quarantined filter dropped (or passed) are in
    /// `filtered` (or `passed`) for good.
    pub filter_quarantines: u64,
    /// A chain's stages, each with what it evaluated, passed and dropped.
    pub filter_stages: Vec<StageSnap>,
    /// Which build of the filter counted `filter_stages` (a filter attached
    /// again, even with the same text, counts from zero).
    #[serde(skip)]
    pub filter_serial: u64,
    /// `latency`: one-way latency percentiles and per-flow sequence counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<crate::probe::LatencySnap>,
}

/// One stage of a consumer's filter chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct StageSnap {
    /// The stage's filter, as written.
    pub filter: String,
    /// Frames it decided (those the stages before it passed).
    pub evaluated: u64,
    /// Frames it passed.
    pub passed: u64,
    /// Frames it dropped.
    pub dropped: u64,
}

/// A name, marked when its port or consumer was removed.
#[must_use]
pub fn removed_mark(name: &str, removed: bool) -> String {
    if removed {
        format!("{name} (removed)")
    } else {
        name.to_owned()
    }
}

/// What a table says of a forwarding consumer's frames not sent because the
/// port it forwards to was down, when it had any: `what` is ``consumer `name` ``.
#[must_use]
pub fn egress_down_line(what: &str, egress_down: u64) -> Option<String> {
    (egress_down > 0).then(|| {
        format!(
            "{what}: {egress_down} of its queue_dropped frames were not sent because the port it forwards to was \
             down (no carrier, set down, or gone)"
        )
    })
}

/// What a table says of a forwarding consumer's frames that did not fit,
/// when it had any: `what` is ``consumer `name` ``.
#[must_use]
pub fn unfit_line(what: &str, unfit: u64) -> Option<String> {
    (unfit > 0).then(|| {
        format!(
            "{what}: {unfit} of its queue_dropped frames could not be sent as they are: cut short, longer than \
             the MTU or TX slot of the port it forwards to, or as long as a frame its device refused in the \
             second before (its far end down, or with a smaller MTU: see tx_unsent and the log)"
        )
    })
}

/// What a table says of a filter's plugins, when it has anything to say:
/// `what` is ``consumer `name` `` or ``port `name` ``; `errors` the failed
/// calls of every filter it had, `quarantined` why the one in force is
/// quarantined, `quarantines` how many it had were (the one in force
/// included).
#[must_use]
pub fn quarantine_line(what: &str, errors: u64, quarantined: Option<&str>, quarantines: u64) -> Option<String> {
    // (After a `stats reset`, counts are those since: the filter in force
    // may be quarantined with no error nor quarantine counted since.)
    let calls = if errors > 0 { format!(" ({errors} failed plugin call(s) in all)") } else { String::new() };
    match quarantined {
        Some(why) if quarantines > 1 => Some(format!(
            "{what}: filter quarantined: {why}{calls} ({} filter(s) it had before were quarantined too)",
            quarantines - 1
        )),
        Some(why) => Some(format!("{what}: filter quarantined: {why}{calls}")),
        None if quarantines > 0 => Some(format!(
            "{what}: {quarantines} filter(s) it had before were quarantined ({errors} error(s)); \
             the frames they dropped or passed stay counted"
        )),
        None if errors > 0 => Some(format!("{what}: {errors} failed plugin call(s)")),
        None => None,
    }
}

/// A port's name, with its interface's state when that is not `up`.
fn port_mark(p: &PortSnap) -> String {
    match p.link {
        Some(link) if link != Link::Up && !p.removed => format!("{} ({})", p.name, link.name()),
        _ => removed_mark(&p.name, p.removed),
    }
}

/// Every counter at one moment.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Snapshot {
    /// Seconds since the engine started (in counts since a reset,
    /// [`Snapshot::since`]: since the reset, the time those counts took).
    pub elapsed_s: f64,
    /// Per port.
    pub ports: Vec<PortSnap>,
    /// Per worker.
    pub workers: Vec<WorkerSnap>,
    /// Per consumer.
    pub consumers: Vec<ConsumerSnap>,
    /// Whether queues were drained (a final snapshot): queued consumers must
    /// then have written or accounted for every frame delivered to them.
    pub drained: bool,
}

impl ConsumerSnap {
    /// A live snapshot's queued consumer: `written` (and the frames past its
    /// limit or lost to errors) at most what it counts as `delivered`. A
    /// worker publishes its counts once a batch, but hands over each chunk
    /// as it fills, so its writer may have written frames of a batch whose
    /// delivery is not counted yet; those count as written once it is
    /// (the counts are as of the worker's last batch). A drained (final)
    /// snapshot is exact and never bounded: it must reconcile as it is.
    pub fn bound_written_by_delivered(&mut self) {
        let other = self.over_limit + self.write_errors + self.output_closed;
        self.written = self.written.min(self.delivered.saturating_sub(other));
    }
}

impl Snapshot {
    /// The counts since `base` (an earlier snapshot of the same engine):
    /// each counter minus its value then, and a latency probe's histograms
    /// and sequence counters those of the frames recorded since; ports and
    /// consumers added since count from zero. Identities that hold for both
    /// hold for the difference.
    #[must_use]
    pub fn since(&self, base: &Self) -> Self {
        let d = |a: &mut u64, b: u64| *a = a.saturating_sub(b);
        let mut s = self.clone();
        s.elapsed_s = (self.elapsed_s - base.elapsed_s).max(0.0);
        for (p, b) in s.ports.iter_mut().zip(&base.ports) {
            d(&mut p.received, b.received);
            d(&mut p.bytes, b.bytes);
            d(&mut p.vlan_restored, b.vlan_restored);
            d(&mut p.filtered, b.filtered);
            d(&mut p.filter_errors, b.filter_errors);
            d(&mut p.kernel_packets, b.kernel_packets);
            d(&mut p.kernel_drops, b.kernel_drops);
            d(&mut p.kernel_freezes, b.kernel_freezes);
            d(&mut p.tx_frames, b.tx_frames);
            d(&mut p.tx_busy, b.tx_busy);
            d(&mut p.tx_unsent, b.tx_unsent);
            d(&mut p.link_downs, b.link_downs);
            if let (Some(x), Some(y)) = (&mut p.if_drops, b.if_drops) {
                *x = x.saturating_sub(y);
            }
            // A program swapped in since counts from when it came.
            if let (Some(e), Some(f)) = (&mut p.ebpf, &b.ebpf) {
                if e.program == f.program {
                    d(&mut e.seen, f.seen);
                    d(&mut e.passed, f.passed);
                    d(&mut e.filtered, f.filtered);
                }
            }
            for c in &mut p.classifier {
                if let Some(o) = b.classifier.iter().find(|o| o.vlan == c.vlan && o.mac == c.mac) {
                    d(&mut c.hits, o.hits);
                }
            }
        }
        for (w, b) in s.workers.iter_mut().zip(&base.workers) {
            d(&mut w.received, b.received);
            d(&mut w.bytes, b.bytes);
            d(&mut w.kernel_packets, b.kernel_packets);
            d(&mut w.kernel_drops, b.kernel_drops);
            d(&mut w.cpu_ns, b.cpu_ns);
            d(&mut w.waited_ns, b.waited_ns);
            if let (Some(o), Some(ob)) = (w.off_core_ns.as_mut(), b.off_core_ns) {
                d(o, ob);
            }
        }
        // A consumer added since `base` missed what its ports passed on
        // before it came, of which what they had passed by `base` is not
        // counted any more (those that were there then missed nothing since).
        for c in s.consumers.iter_mut().skip(base.consumers.len()) {
            let then: u64 = c
                .port_indices
                .iter()
                .filter_map(|&p| base.ports.get(p))
                .map(|p| p.received.saturating_sub(p.filtered))
                .sum();
            d(&mut c.before_added, then);
        }
        for (c, b) in s.consumers.iter_mut().zip(&base.consumers) {
            d(&mut c.before_added, b.before_added);
            d(&mut c.seen, b.seen);
            d(&mut c.passed, b.passed);
            d(&mut c.filtered, b.filtered);
            d(&mut c.delivered, b.delivered);
            d(&mut c.delivered_bytes, b.delivered_bytes);
            d(&mut c.queue_dropped, b.queue_dropped);
            d(&mut c.unfit, b.unfit);
            d(&mut c.egress_down, b.egress_down);
            d(&mut c.paused, b.paused);
            // Frames in a queue at `base` were delivered before it: written
            // since, they count as written before (else a queued consumer
            // showed more written than delivered since a reset, for good).
            let in_flight = b.delivered.saturating_sub(b.written + b.over_limit + b.write_errors + b.output_closed);
            d(&mut c.written, b.written + in_flight);
            d(&mut c.written_bytes, b.written_bytes);
            d(&mut c.over_limit, b.over_limit);
            d(&mut c.write_errors, b.write_errors);
            d(&mut c.output_closed, b.output_closed);
            d(&mut c.files, b.files);
            d(&mut c.filter_errors, b.filter_errors);
            d(&mut c.filter_quarantines, b.filter_quarantines);
            for (x, y) in c.per_worker.iter_mut().zip(&b.per_worker) {
                d(x, *y);
            }
            if let (Some(now), Some(then)) = (&c.latency, &b.latency) {
                c.latency = Some(now.since(then));
            }
            if c.filter_serial == b.filter_serial {
                for (x, y) in c.filter_stages.iter_mut().zip(&b.filter_stages) {
                    d(&mut x.evaluated, y.evaluated);
                    d(&mut x.passed, y.passed);
                    d(&mut x.dropped, y.dropped);
                }
            }
        }
        s
    }

    /// Check the accounting identities; each broken one is returned as a sentence.
    ///
    /// - consumer: seen = passed + filtered; passed = delivered + queue_dropped + paused;
    /// - drained queued consumer: delivered = written + over_limit + write_errors + output_closed;
    /// - consumer: seen = the sum of its ports' received frames (checked by the caller
    ///   through `expected_seen`, since only it knows the subscriptions);
    /// - drained interface port (removed ones too): kernel_packets = received +
    ///   kernel_drops, every ring having been read to its end (a mismatch is
    ///   frames still in a ring when it closed, or frames read that the kernel
    ///   did not count).
    #[must_use]
    pub fn reconcile(&self, expected_seen: &[u64]) -> Vec<String> {
        let mut errs = Vec::new();
        for p in self.ports.iter().filter(|p| self.drained && (p.interface || p.link.is_some())) {
            let read = p.received + p.kernel_drops;
            let why = match p.kernel_packets.cmp(&read) {
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Greater => {
                    format!("{} frames the kernel accepted were still in the ring at close", p.kernel_packets - read)
                }
                std::cmp::Ordering::Less => {
                    format!("{} frames read or dropped that the kernel did not count", read - p.kernel_packets)
                }
            };
            errs.push(format!(
                "port `{}`: kernel_packets {} != received {} + kernel_drops {} ({why})",
                p.name, p.kernel_packets, p.received, p.kernel_drops
            ));
        }
        for (i, c) in self.consumers.iter().enumerate() {
            if c.seen != c.passed + c.filtered {
                errs.push(format!("{}: seen {} != passed {} + filtered {}", c.name, c.seen, c.passed, c.filtered));
            }
            if c.passed != c.delivered + c.queue_dropped + c.paused {
                errs.push(format!(
                    "{}: passed {} != delivered {} + queue_dropped {} + paused {}",
                    c.name, c.passed, c.delivered, c.queue_dropped, c.paused
                ));
            }
            if self.drained
                && (c.kind == "pcap" || c.kind == "print")
                && c.delivered != c.written + c.over_limit + c.write_errors + c.output_closed
            {
                errs.push(format!(
                    "{}: delivered {} != written {} + over_limit {} + write_errors {} + output_closed {}",
                    c.name, c.delivered, c.written, c.over_limit, c.write_errors, c.output_closed
                ));
            }
            if let Some(&want) = expected_seen.get(i) {
                if c.seen != want {
                    errs.push(format!("{}: seen {} != frames received on its ports {}", c.name, c.seen, want));
                }
            }
        }
        errs
    }

    /// A human-readable table of every counter.
    #[must_use]
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "ports:");
        let _ = writeln!(
            s,
            "  {:<24} {:>12} {:>14} {:>10} {:>10} {:>12} {:>10} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10}",
            "name",
            "received",
            "bytes",
            "vlan_rest",
            "filtered",
            "kernel_pkts",
            "k_drops",
            "freezes",
            "tx",
            "tx_busy",
            "tx_unsent",
            "if_dropped",
            "if_missed"
        );
        let or_dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        for p in &self.ports {
            let _ = writeln!(
                s,
                "  {:<24} {:>12} {:>14} {:>10} {:>10} {:>12} {:>10} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10}",
                port_mark(p),
                p.received,
                p.bytes,
                p.vlan_restored,
                // With an eBPF filter's own count of what it dropped, as `ringctl stats` shows it.
                if p.filtered_uncounted {
                    "-".to_owned()
                } else {
                    (p.filtered + p.past_filtered + p.ebpf.map_or(0, |e| e.filtered)).to_string()
                },
                p.kernel_packets,
                p.kernel_drops,
                p.kernel_freezes,
                p.tx_frames,
                p.tx_busy,
                p.tx_unsent,
                or_dash(p.if_drops.map(|d| d.dropped)),
                or_dash(p.if_drops.map(|d| d.missed))
            );
        }
        if self.ports.iter().any(|p| p.ebpf.is_some()) {
            let _ = writeln!(s, "eBPF port filters (the program's own counts; dropped frames are filtered, not lost):");
            let _ = writeln!(s, "  {:<24} {:>12} {:>12} {:>12}", "port", "seen", "passed", "filtered");
            for p in &self.ports {
                if let Some(e) = &p.ebpf {
                    let _ = writeln!(s, "  {:<24} {:>12} {:>12} {:>12}", p.name, e.seen, e.passed, e.filtered);
                }
            }
            for p in self.ports.iter().filter(|p| p.ebpf_silent) {
                let _ = writeln!(
                    s,
                    "  {}: its program's ringwire_stats map counted none of the {} frames the socket took: it does \
                     not return through ringwire_verdict(), so what it filtered is not known",
                    p.name, p.ebpf_silent_taken
                );
            }
        }
        if self.ports.iter().any(|p| !p.classifier.is_empty()) {
            let _ = writeln!(s, "classifier entries:");
            let _ = writeln!(s, "  {:<24} {:>9} {:<17} {:<6} {:>12}", "port", "vlan", "mac", "action", "hits");
            for p in &self.ports {
                for c in &p.classifier {
                    let vlan = c.vlan.map_or_else(|| "untagged".to_owned(), |v| v.to_string());
                    let _ = writeln!(s, "  {:<24} {:>9} {:<17} {:<6} {:>12}", p.name, vlan, c.mac, c.action, c.hits);
                }
            }
        }
        let _ = writeln!(s, "workers:");
        let _ = writeln!(
            s,
            "  {:<8} {:>6} {:>12} {:>14} {:>10} {:>10} {:>10} {:>11}",
            "worker", "core", "received", "bytes", "k_drops", "cpu_ms", "waited_ms", "off_core_ms"
        );
        let ms = |ns: u64| format!("{:.1}", ns as f64 / 1e6);
        for w in &self.workers {
            let _ = writeln!(
                s,
                "  {:<8} {:>6} {:>12} {:>14} {:>10} {:>10} {:>10} {:>11}",
                w.index,
                w.core,
                w.received,
                w.bytes,
                w.kernel_drops,
                ms(w.cpu_ns),
                ms(w.waited_ns),
                w.off_core_ns.map_or_else(|| "-".to_owned(), ms)
            );
        }
        let _ = writeln!(s, "consumers:");
        let _ = writeln!(
            s,
            "  {:<16} {:<8} {:>11} {:>11} {:>11} {:>11} {:>14} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9}",
            "name",
            "kind",
            "seen",
            "passed",
            "filtered",
            "delivered",
            "bytes",
            "q_dropped",
            "paused",
            "written",
            "over_lim",
            "write_err",
            "closed"
        );
        for c in &self.consumers {
            let _ = writeln!(
                s,
                "  {:<16} {:<8} {:>11} {:>11} {:>11} {:>11} {:>14} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9}",
                removed_mark(&c.name, c.removed),
                c.kind,
                c.seen,
                c.passed,
                c.filtered,
                c.delivered,
                c.delivered_bytes,
                c.queue_dropped,
                c.paused,
                c.written,
                c.over_limit,
                c.write_errors,
                c.output_closed
            );
        }
        let probes: Vec<_> = self.consumers.iter().filter_map(|c| c.latency.as_ref().map(|l| (c, l))).collect();
        if !probes.is_empty() {
            let _ = writeln!(s, "latency (one-way from the generator's stamp, microseconds):");
            let _ = writeln!(
                s,
                "  {:<16} {:<9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "consumer", "to", "frames", "p50", "p90", "p99", "p99.9", "p99.99", "max"
            );
            for (c, l) in &probes {
                let name = removed_mark(&c.name, c.removed);
                for (to, h) in [("kernel", l.kernel), ("consumer", l.consumer)] {
                    // No frame timed (a file's, unstamped ones): no percentile, not 0.
                    let us = |ns: u64| if h.count == 0 { "-".to_owned() } else { format!("{:.1}", ns as f64 / 1e3) };
                    let _ = writeln!(
                        s,
                        "  {:<16} {:<9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                        name,
                        to,
                        h.count,
                        us(h.p50),
                        us(h.p90),
                        us(h.p99),
                        us(h.p999),
                        us(h.p9999),
                        us(h.max)
                    );
                }
                let n = l.counters;
                let _ = writeln!(
                    s,
                    "  {:<16} flows {}, lost {}, duplicates {}, reordered {}, too old {}, restarts {}, unstamped {}, untracked {}, negative {}",
                    name, n.flows, n.lost, n.duplicates, n.reordered, n.too_old, n.restarts, n.unstamped, n.untracked, n.negative
                );
                if let Some(hint) = crate::probe::restart_hint(n.restarts, n.flows, n.stamped) {
                    let _ = writeln!(s, "  {name:<16} {hint}");
                }
                if n.irregular > 0 {
                    let _ = writeln!(
                        s,
                        "  {:<16} {} flow(s) lost, repeated or reordered frames; most lost first:",
                        name, n.irregular
                    );
                    for st in &l.streams {
                        let _ = writeln!(
                            s,
                            "  {:<16}   port {} flow {}{}: lost {}, duplicates {}, reordered {}, too old {}",
                            "",
                            st.port_name,
                            st.flow,
                            if st.reverse { " (reverse)" } else { "" },
                            st.lost,
                            st.duplicates,
                            st.reordered,
                            st.too_old
                        );
                    }
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters read while their worker publishes never show more filtered
    /// frames than received ones (a torn read would, and `passed` would wrap).
    #[test]
    fn a_read_under_publishing_never_shows_more_parts_than_the_total() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        let cells = Cells::<{ port::N }>::default();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut local = [0u64; port::N];
                let t = Instant::now();
                while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(10) {
                    // Every frame filtered: received == filtered in each publish.
                    local[port::RECEIVED] += 256;
                    local[port::FILTERED] += 256;
                    cells.publish(&local);
                }
            });
            let t = Instant::now();
            let mut reads = 0u32;
            let mut bad = None;
            while reads < 200_000 && t.elapsed() < Duration::from_secs(3) && bad.is_none() {
                let c = cells.load();
                if c[port::FILTERED] > c[port::RECEIVED] {
                    bad = Some(c);
                }
                reads += 1;
            }
            stop.store(true, Ordering::Relaxed);
            assert!(bad.is_none(), "after {reads} reads: {bad:?}");
        });
    }

    /// A script reading the stats JSON finds every counter, zero or not.
    #[test]
    fn the_json_has_every_counter_also_at_zero() {
        let json = serde_json::to_value(ConsumerSnap::default()).unwrap();
        for key in ["removed", "before_added", "written", "over_limit", "write_errors", "output_closed", "files"] {
            assert!(json.get(key).is_some_and(|v| v == 0 || v == false), "{key}: {json}");
        }
        let json = serde_json::to_value(PortSnap::default()).unwrap();
        for key in ["removed", "tx_unsent", "link_downs", "kernel_packets"] {
            assert!(json.get(key).is_some_and(|v| v == 0 || v == false), "{key}: {json}");
        }
    }

    /// The final table shows what a port never sent, and names a removed
    /// consumer's latency figures as removed.
    #[test]
    fn the_table_shows_unsent_frames_and_marks_removed_probes() {
        let mut lat = crate::probe::LatencySnap::default();
        lat.counters.restarts = 4;
        // Two generators on the same flow ids into one port: the streams keep starting over.
        let mut mixed = crate::probe::LatencySnap::default();
        (mixed.counters.flows, mixed.counters.restarts, mixed.counters.irregular, mixed.counters.stamped) =
            (2, 100, 1, 210);
        mixed.streams.push(crate::probe::StreamCounters {
            port_name: "a".into(),
            flow: 3,
            lost: 9,
            too_old: 2,
            ..Default::default()
        });
        let s = Snapshot {
            ports: vec![PortSnap {
                name: "b".into(),
                tx_frames: 2048,
                tx_unsent: 2000,
                link: Some(Link::Down),
                ..Default::default()
            }],
            consumers: vec![
                ConsumerSnap {
                    name: "lat".into(),
                    kind: "latency".into(),
                    removed: true,
                    latency: Some(lat),
                    ..Default::default()
                },
                ConsumerSnap {
                    name: "mixed".into(),
                    kind: "latency".into(),
                    latency: Some(mixed),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let t = s.table();
        let cells = |start: &str| -> Vec<String> {
            let line = t.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("{start}:\n{t}"));
            line.split_whitespace().map(str::to_owned).collect()
        };
        let header = cells("name");
        let at = header.iter().position(|h| h == "tx_unsent").expect("a tx_unsent column");
        // "b (down)" takes two cells.
        assert_eq!(cells("b (down)")[at + 1], "2000", "{t}");
        assert!(t.lines().any(|l| l.trim_start().starts_with("lat (removed)") && l.contains("kernel")), "{t}");
        assert!(
            t.contains("lat (removed)    flows 0, lost 0, duplicates 0, reordered 0, too old 0, restarts 4"),
            "{t}"
        );
        assert!(!t.lines().any(|l| l.starts_with("  lat (removed)") && l.contains("--first-flow")), "{t}");
        assert!(t.contains("mixed            streams started over 100 times in 210 frames"), "{t}");
        // No frame timed: no percentiles (they read 0.0).
        let kernel = t.lines().find(|l| l.trim_start().starts_with("mixed") && l.contains("kernel")).unwrap();
        assert_eq!(kernel.split_whitespace().skip(3).collect::<Vec<_>>(), ["-"; 6], "{t}");
        assert!(t.contains("port a flow 3: lost 9, duplicates 0, reordered 0, too old 2"), "{t}");
    }

    #[test]
    fn cells_publish_and_load() {
        let c = Cells::<3>::default();
        c.publish(&[1, 2, 3]);
        assert_eq!(c.load(), [1, 2, 3]);
    }

    #[test]
    fn reconcile_catches_each_broken_identity() {
        let good = ConsumerSnap {
            name: "c".into(),
            kind: "pcap".into(),
            seen: 10,
            passed: 7,
            filtered: 3,
            delivered: 6,
            queue_dropped: 1,
            written: 5,
            over_limit: 1,
            ..Default::default()
        };
        let mut s = Snapshot { consumers: vec![good.clone()], drained: true, ..Default::default() };
        assert!(s.reconcile(&[10]).is_empty());
        assert_eq!(s.reconcile(&[11]).len(), 1);
        s.consumers[0].filtered = 2;
        assert_eq!(s.reconcile(&[10]).len(), 1);
        s.consumers[0] = ConsumerSnap { queue_dropped: 0, ..good.clone() };
        assert_eq!(s.reconcile(&[10]).len(), 1);
        s.consumers[0] = ConsumerSnap { written: 4, ..good };
        assert_eq!(s.reconcile(&[10]).len(), 1);
        s.drained = false;
        assert!(s.reconcile(&[10]).is_empty());
    }

    /// After a reset, a consumer added since counts as missed only what its
    /// ports passed on after the reset and before it came: its frames and
    /// those add up to its ports' frames since the reset. One that was there
    /// at the reset missed nothing since.
    /// An eBPF program swapped in after a reset counts from zero: its
    /// counts are not reduced by the old program's at the reset (they were
    /// floored at 0, hiding what it dropped).
    #[test]
    fn counts_since_a_reset_keep_a_new_ebpf_programs_own() {
        let port = |program, seen, passed| PortSnap {
            ebpf: Some(EbpfSnap { program, seen, passed, filtered: seen - passed }),
            ..Default::default()
        };
        let base = Snapshot { ports: vec![port(1, 4000, 2000), port(3, 100, 100)], ..Default::default() };
        let now = Snapshot { ports: vec![port(2, 4000, 2000), port(3, 150, 120)], ..Default::default() };
        let d = now.since(&base);
        let e = |i: usize| d.ports[i].ebpf.map(|e| (e.seen, e.passed, e.filtered));
        assert_eq!(e(0), Some((4000, 2000, 2000)), "swapped in: all its own");
        assert_eq!(e(1), Some((50, 20, 30)), "the same program: since the reset");
    }

    /// A chain attached again after a reset, with the same text, counts
    /// from zero: its stages are not reduced by the old build's counts.
    #[test]
    fn counts_since_a_reset_keep_a_new_filter_builds_own() {
        let stage =
            |evaluated, passed| StageSnap { filter: "udp".into(), evaluated, passed, dropped: evaluated - passed };
        let cons = |serial, st: StageSnap| ConsumerSnap {
            filter: Some("udp | sample 2".into()),
            filter_serial: serial,
            filter_stages: vec![st],
            ..Default::default()
        };
        let base =
            Snapshot { consumers: vec![cons(1, stage(5000, 4000)), cons(3, stage(100, 50))], ..Default::default() };
        let now = Snapshot { consumers: vec![cons(2, stage(300, 200)), cons(3, stage(160, 80))], ..Default::default() };
        let d = now.since(&base);
        let s = |i: usize| (d.consumers[i].filter_stages[0].evaluated, d.consumers[i].filter_stages[0].passed);
        assert_eq!(s(0), (300, 200), "attached again: all its own");
        assert_eq!(s(1), (60, 30), "the same build: since the reset");
    }

    /// A reset while frames sit in a queued consumer's queue: once written,
    /// they count as written before the reset (they were delivered before
    /// it), so written since never exceeds delivered since.
    #[test]
    fn frames_queued_at_a_reset_count_as_written_before_it() {
        let cap = |delivered, written| ConsumerSnap { delivered, written, ..Default::default() };
        let base = Snapshot { consumers: vec![cap(1000, 968)], ..Default::default() };
        let now = Snapshot { consumers: vec![cap(31_130, 31_130)], drained: true, ..Default::default() };
        let d = now.since(&base);
        assert_eq!((d.consumers[0].delivered, d.consumers[0].written), (30_130, 30_130));
        assert!(d.reconcile(&[d.consumers[0].seen]).iter().all(|e| !e.contains("written")), "{:?}", d.reconcile(&[0]));
    }

    /// A writer that wrote a chunk of a batch its worker has not counted
    /// yet: a live snapshot shows it written once delivered is counted, so
    /// `written` never exceeds `delivered`, before a reset or after it.
    #[test]
    fn a_live_snapshot_never_shows_more_written_than_delivered() {
        let cap =
            |delivered, written, over_limit| ConsumerSnap { delivered, written, over_limit, ..Default::default() };
        let mut c = cap(1000, 1085, 0);
        c.bound_written_by_delivered();
        assert_eq!(c.written, 1000);
        let mut c = cap(1000, 990, 20);
        c.bound_written_by_delivered();
        assert_eq!(c.written, 980);
        let mut c = cap(1000, 700, 0);
        c.bound_written_by_delivered();
        assert_eq!(c.written, 700, "a writer behind keeps its count");
        // Since a reset taken with 40 frames queued: bounded now, never more written than delivered since.
        let base = Snapshot { consumers: vec![cap(1000, 960, 0)], ..Default::default() };
        let mut now = cap(1500, 1585, 0);
        now.bound_written_by_delivered();
        let d = Snapshot { consumers: vec![now], ..Default::default() }.since(&base);
        assert_eq!((d.consumers[0].delivered, d.consumers[0].written), (500, 500));
    }

    #[test]
    fn counts_since_a_reset_rebase_what_a_later_consumer_missed() {
        let port = |received, filtered| PortSnap { received, filtered, ..Default::default() };
        let consumer = |name: &str, seen, before_added| ConsumerSnap {
            name: name.into(),
            seen,
            passed: seen,
            delivered: seen,
            before_added,
            port_indices: vec![0, 1],
            ..Default::default()
        };
        // At the reset: 1000 + 500 frames passed on (100 filtered at port 1), "early" there since 200.
        let base = Snapshot {
            ports: vec![port(1000, 0), port(600, 100)],
            consumers: vec![consumer("early", 1300, 200)],
            ..Default::default()
        };
        // Then 500 more, "late" added after 200 of them: it missed 1500 + 200.
        let now = Snapshot {
            ports: vec![port(1300, 0), port(800, 100)],
            consumers: vec![consumer("early", 1800, 200), consumer("late", 300, 1700)],
            ..Default::default()
        };
        let d = now.since(&base);
        let out: u64 = d.ports.iter().map(|p| p.received.saturating_sub(p.filtered)).sum();
        assert_eq!(out, 500);
        assert_eq!((d.consumers[0].seen, d.consumers[0].before_added), (500, 0));
        assert_eq!((d.consumers[1].seen, d.consumers[1].before_added), (300, 200));
    }

    /// A drained interface port whose kernel accepted more than was read
    /// and dropped, or fewer, is a mismatch; a file port is not checked.
    #[test]
    fn an_interface_port_s_kernel_count_reconciles_with_what_was_read() {
        let port = |name: &str, kernel_packets, received, kernel_drops, link| PortSnap {
            name: name.into(),
            kernel_packets,
            received,
            kernel_drops,
            link,
            ..Default::default()
        };
        let up = Some(Link::Up);
        let snap = Snapshot {
            ports: vec![
                port("ok", 100, 90, 10, up),
                port("unread", 100, 80, 10, up),
                port("over", 100, 95, 10, up),
                port("file", 0, 50, 0, None),
            ],
            drained: true,
            ..Default::default()
        };
        let found = snap.reconcile(&[]);
        assert_eq!(
            found,
            [
                "port `unread`: kernel_packets 100 != received 80 + kernel_drops 10 (10 frames the kernel accepted were still in the ring at close)",
                "port `over`: kernel_packets 100 != received 95 + kernel_drops 10 (5 frames read or dropped that the kernel did not count)",
            ]
        );
    }

    /// A worker's scheduling times count from a reset too, as the elapsed
    /// time does, and the table shows them in milliseconds (off the core only for busy-poll workers).
    #[test]
    fn worker_times_since_a_reset_and_in_the_table() {
        let w = |cpu_ns, waited_ns, off_core_ns| WorkerSnap { cpu_ns, waited_ns, off_core_ns, ..Default::default() };
        let base = Snapshot {
            elapsed_s: 6.0,
            workers: vec![w(1_000_000, 100_000, Some(2_000_000)), w(5, 5, None)],
            ..Default::default()
        };
        let now = Snapshot {
            elapsed_s: 8.5,
            workers: vec![w(3_500_000, 600_000, Some(14_500_000)), w(2_000_000, 1_000_000, None)],
            ..Default::default()
        };
        let d = now.since(&base);
        assert_eq!(d.elapsed_s, 2.5, "the seconds since the reset");
        assert_eq!(
            (d.workers[0].cpu_ns, d.workers[0].waited_ns, d.workers[0].off_core_ns),
            (2_500_000, 500_000, Some(12_500_000))
        );
        assert_eq!(d.workers[1].off_core_ns, None);
        let t = d.table();
        let header = t.lines().find(|l| l.contains("off_core_ms")).expect("a worker header");
        assert!(header.contains("cpu_ms") && header.contains("waited_ms"), "{t}");
        assert!(t.contains("2.5        0.5        12.5"), "{t}");
        assert!(t.lines().any(|l| l.trim_end().ends_with("1.0           -")), "{t}");
    }
}
