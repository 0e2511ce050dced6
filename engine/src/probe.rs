//! The latency probe: an inline consumer that reads the stamp `ringwire-gen`
//! puts in each payload and measures one-way latency and per-flow loss.
//!
//! ```text
//! frame ─ find_stamp ─┬─ kernel:   kernel RX time (CLOCK_REALTIME - offset) - send time ─> histogram
//!                     ├─ consumer: CLOCK_MONOTONIC at the batch            - send time ─> histogram
//!                     └─ flow table[port, stream]: highest sequence + a 64-bit window ─> lost / duplicate / reordered
//! ```
//! A stream is one direction of one generator flow arriving on one port: the
//! same flow id on two ports is two streams. Two generators sending the same
//! flow ids into one port cannot be told apart (their frames are identical
//! but for the stamp): each should have its own ids (`ringwire-gen
//! --first-flow`); when they do not, the streams keep starting over, and the
//! tables say so ([`SeqCounters::restarts`] outnumbering the streams).
//! Besides the totals, the first [`LISTED_STREAMS`] streams per worker to
//! lose, repeat or reorder a frame are listed with their own counters
//! (statistics show the [`SHOWN_STREAMS`] that lost most): which flow
//! suffers, not only how much.
//! Each worker keeps its own [`ProbeData`] (histograms and flow table are
//! allocated when the consumer is built, nothing is allocated per frame)
//! and copies it into its shared slot on the statistics tick; a snapshot
//! merges the slots. A flow is expected to stay on one worker (hash or
//! `ebpf-symmetric` fanout): with `lb` or `rollover` fanout the per-flow
//! counters of a flow split over workers are not meaningful.

use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Payload magic of a stamped frame: "RWG1".
pub const MAGIC: [u8; 4] = *b"RWG1";
/// Bytes of the stamp at the start of the L4 payload.
pub const STAMP_LEN: usize = 24;
/// Payload magic of a short stamp: "RWg".
pub const SHORT_MAGIC: [u8; 3] = *b"RWg";
/// Bytes of the short stamp, for payloads too small for the full one: the
/// 18 bytes a minimum (60-byte) IPv4 UDP frame carries. It holds the flow
/// index in 23 bits (plus the direction), the sequence number in 40 bits
/// (wrapping after 2^40 frames of a flow) and the low 56 bits of the send
/// time (2.3 years of CLOCK_MONOTONIC), widened again on receipt from the
/// receiver's clock, which is the sender's.
pub const SHORT_STAMP_LEN: usize = 18;
/// Send-time bits a short stamp keeps.
const SHORT_TS_BITS: u32 = 56;
/// Flow-index bits a short stamp keeps: a generator's flow ids must stay
/// below 2^23 for every frame's stamp to name its flow.
pub const SHORT_FLOW_BITS: u32 = 23;
const SHORT_FLOW_MASK: u32 = (1 << SHORT_FLOW_BITS) - 1;
/// Streams (directed flows per port) tracked per worker; frames of streams
/// beyond are timed but not sequence-checked (counted as `untracked`).
pub const MAX_STREAMS: usize = 1 << 16;
/// A worker's stream table, in two parts. First, [`MAX_STREAMS`] slots a
/// stream takes by its id alone (flow * 2 + direction, modulo the slots):
/// the streams of one generator's flows on one port lie side by side, in
/// the order it sends them, as memory is best read. Then, for a stream
/// whose slot there another holds (the same flow id on another port, ids
/// [`MAX_STREAMS`] / 2 apart), twice [`MAX_STREAMS`] slots taken by a hash
/// of its port and id, so that at most half full a stream's slot is near
/// its hash.
const DIRECT_SLOTS: usize = MAX_STREAMS;
const HASHED_BITS: u32 = 17;
const HASHED_SLOTS: usize = 1 << HASHED_BITS;
const TABLE_SLOTS: usize = DIRECT_SLOTS + HASHED_SLOTS;
/// Slots looked at for a stream, from its hash on, before it is untracked
/// (at most half full, not reached in practice).
const STREAM_PROBES: usize = 64;
/// Irregular streams (lost, repeated or reordered a frame) listed with
/// their own counters, per worker; more are counted, not listed.
pub const LISTED_STREAMS: usize = 256;
/// Irregular streams in a snapshot: those that lost most.
pub const SHOWN_STREAMS: usize = 16;
/// Highest latency recorded; larger values are clamped to it.
const MAX_NS: u64 = 100_000_000_000;
/// Sequence numbers behind the highest seen for which a duplicate is told
/// from a late (reordered) frame.
const WINDOW: u64 = 64;

/// The stamp in a generated frame's payload (big-endian on the wire):
/// magic, flow id, sequence number, send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Stream id: the flow index, with the top bit set for the reverse direction.
    pub flow: u32,
    /// Sequence number within the stream, from 0.
    pub seq: u64,
    /// Send time, CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
}

impl Stamp {
    /// The stamp's bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; STAMP_LEN] {
        let mut s = [0u8; STAMP_LEN];
        s[0..4].copy_from_slice(&MAGIC);
        s[4..8].copy_from_slice(&self.flow.to_be_bytes());
        s[8..16].copy_from_slice(&self.seq.to_be_bytes());
        s[16..24].copy_from_slice(&self.ts_ns.to_be_bytes());
        s
    }

    /// The short stamp's bytes ([`SHORT_STAMP_LEN`]): flow index modulo
    /// 2^23, sequence number modulo 2^40, send time modulo 2^56 ns.
    #[must_use]
    pub fn to_short_bytes(&self) -> [u8; SHORT_STAMP_LEN] {
        let mut s = [0u8; SHORT_STAMP_LEN];
        s[0..3].copy_from_slice(&SHORT_MAGIC);
        let flow = (self.flow & SHORT_FLOW_MASK) | (self.flow >> 31) << SHORT_FLOW_BITS;
        s[3..6].copy_from_slice(&flow.to_be_bytes()[1..]);
        s[6..11].copy_from_slice(&self.seq.to_be_bytes()[3..]);
        s[11..18].copy_from_slice(&self.ts_ns.to_be_bytes()[1..]);
        s
    }

    /// Read a short stamp; its send time is widened to the 2^56 ns period
    /// nearest `near_ns` (a time of the same clock, taken near the send).
    fn from_short_bytes(s: &[u8], near_ns: u64) -> Self {
        let be = |b: &[u8]| b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x));
        let flow = be(&s[3..6]) as u32;
        let low = be(&s[11..18]);
        let period = 1u64 << SHORT_TS_BITS;
        let mut ts = (near_ns & !(period - 1)) | low;
        if ts > near_ns.saturating_add(period / 2) && ts >= period {
            ts -= period;
        } else if near_ns > ts.saturating_add(period / 2) {
            ts = ts.saturating_add(period);
        }
        Self { flow: (flow & SHORT_FLOW_MASK) | (flow >> SHORT_FLOW_BITS) << 31, seq: be(&s[6..11]), ts_ns: ts }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Like [`find_stamp`], with the time a short stamp's send time is widened
/// against ([`SHORT_STAMP_LEN`]); `near_ns` is only read for a short stamp.
#[inline]
pub fn find_stamp_near(frame: &[u8], near_ns: impl FnOnce() -> u64) -> Option<Stamp> {
    let at = stamp_offset(frame)?;
    let s = frame.get(at..)?;
    if s.len() >= STAMP_LEN && s[0..4] == MAGIC {
        return Some(Stamp {
            flow: u32::from_be_bytes(s[4..8].try_into().ok()?),
            seq: u64::from_be_bytes(s[8..16].try_into().ok()?),
            ts_ns: u64::from_be_bytes(s[16..24].try_into().ok()?),
        });
    }
    (s.len() >= SHORT_STAMP_LEN && s[0..3] == SHORT_MAGIC).then(|| Stamp::from_short_bytes(s, near_ns()))
}

/// Find the stamp of a frame sent by `ringwire-gen`: Ethernet, up to two
/// VLAN tags, IPv4 (any header length, first fragment) or IPv6 (no
/// extension headers), UDP or TCP, then the magic of a full stamp or of a
/// short one ([`SHORT_STAMP_LEN`], widened against CLOCK_MONOTONIC now).
/// `None` for anything else.
#[must_use]
pub fn find_stamp(frame: &[u8]) -> Option<Stamp> {
    find_stamp_near(frame, crate::sys::monotonic_ns)
}

/// Where the L4 payload of a frame `find_stamp` reads begins.
fn stamp_offset(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    let mut ethertype = be16(frame, at)?;
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        at += 4;
        ethertype = be16(frame, at)?;
    }
    at += 2;
    let proto = match ethertype {
        0x0800 => {
            let vihl = *frame.get(at)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || be16(frame, at + 6)? & 0x1fff != 0 {
                return None;
            }
            let p = *frame.get(at + 9)?;
            at += ihl;
            p
        }
        0x86dd => {
            let p = *frame.get(at + 6)?;
            at += 40;
            p
        }
        _ => return None,
    };
    at += match proto {
        17 => 8,
        6 => usize::from(*frame.get(at + 12)? >> 4) * 4,
        _ => return None,
    };
    Some(at)
}

/// A jump ahead of this many sequence numbers starts a stream over (a
/// number that is not one) instead of counting them lost.
const RESTART: u64 = 1 << 32;

/// A stream's sequence state: its key (port + 1 and stream id, 0 for a
/// free slot), the next sequence expected (highest + 1; 0
/// before its first frame), which of the [`WINDOW`] sequences below it have
/// arrived (bit `d`: `next - 1 - d`), the first one seen, its own count of
/// missing ones (since it last started over, which late frames may fill),
/// those it lost before it last started over, and the send time of its
/// highest. Aligned to 64, so a stream's state is one cache line however
/// large the table (its own duplicate and late counts, needed only for
/// listed streams, are kept beside the list: [`Listed`]).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct FlowTrack {
    key: u64,
    next: u64,
    window: u64,
    first: u64,
    lost: u64,
    lost_before: u64,
    head_ts: u64,
}

/// What [`track`] made of a frame's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    /// The next one, the stream's first, or a restart.
    InOrder,
    /// After a gap (the numbers between are counted lost).
    Gap,
    /// One that had already arrived.
    Duplicate,
    /// One that arrived after a higher number.
    Late,
    /// [`WINDOW`] or more behind the highest (the window holds the highest
    /// and the 63 below it): too old to tell a late frame from a repeat.
    TooOld,
}

/// A listed irregular stream: its index in the flow table and its own
/// duplicate and late counts (its loss is in the table).
#[derive(Debug, Clone, Copy)]
struct Listed {
    index: u32,
    duplicates: u32,
    reordered: u32,
    too_old: u32,
}

/// A stream's entry in [`Probe::listing`]: not irregular so far.
const REGULAR: u16 = u16::MAX;
/// A stream's entry in [`Probe::listing`]: irregular, not listed (the list was full).
const UNLISTED: u16 = u16::MAX - 1;
const _: () = assert!(LISTED_STREAMS < UNLISTED as usize);

/// One stream's own sequence counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    /// The engine's index of the port the stream arrived on.
    #[serde(skip)]
    pub port: u16,
    /// That port's name (filled in statistics; empty before).
    #[serde(rename = "port")]
    pub port_name: String,
    /// The generator's flow number.
    pub flow: u32,
    /// The flow's reverse direction.
    pub reverse: bool,
    /// Sequence numbers skipped and not (yet) arrived, since the stream
    /// (last) started.
    pub lost: u64,
    /// Frames whose sequence number had already arrived.
    pub duplicates: u64,
    /// Frames that arrived after a higher sequence number.
    pub reordered: u64,
    /// Frames more than 64 sequence numbers behind the highest.
    pub too_old: u64,
}

impl StreamCounters {
    /// Its key among a probe's streams.
    fn key(&self) -> (u16, u32, bool) {
        (self.port, self.flow, self.reverse)
    }
}

/// Per-flow counters, summed over flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqCounters {
    /// Frames with a stamp.
    pub stamped: u64,
    /// Frames without one (not from ringwire-gen): not timed.
    pub unstamped: u64,
    /// Sequence numbers skipped and not (yet) arrived, counted from each
    /// stream's first frame seen (frames lost before it, or after the last,
    /// are not visible here: compare with the generator's count).
    pub lost: u64,
    /// Frames whose sequence number had already arrived.
    pub duplicates: u64,
    /// Frames that arrived after a higher sequence number of their stream
    /// (at most 64 behind it: [`SeqCounters::too_old`]).
    pub reordered: u64,
    /// Frames more than 64 sequence numbers behind their stream's highest:
    /// too old to tell a late frame from a repeat, so counted neither as
    /// reordered nor as duplicates, and not taken off `lost`.
    pub too_old: u64,
    /// Streams seen (a stream: one direction of one flow on one port).
    pub flows: u64,
    /// Frames of streams the table had no room for ([`MAX_STREAMS`]):
    /// timed, not sequence-checked.
    pub untracked: u64,
    /// Frames stamped later than they were seen (clocks disagree): their
    /// latency is recorded as 0. Counted once per frame.
    pub negative: u64,
    /// Streams started over: a new generator run (a sequence number lower
    /// than one seen, sent after it), or a jump ahead by 2^32 or more.
    pub restarts: u64,
    /// Streams that lost, repeated or reordered a frame.
    pub irregular: u64,
}

impl SeqCounters {
    /// Each counter of `self` and `o` combined by `f`.
    fn zip(&self, o: &Self, f: impl Fn(u64, u64) -> u64) -> Self {
        Self {
            stamped: f(self.stamped, o.stamped),
            unstamped: f(self.unstamped, o.unstamped),
            lost: f(self.lost, o.lost),
            duplicates: f(self.duplicates, o.duplicates),
            reordered: f(self.reordered, o.reordered),
            too_old: f(self.too_old, o.too_old),
            flows: f(self.flows, o.flows),
            untracked: f(self.untracked, o.untracked),
            negative: f(self.negative, o.negative),
            restarts: f(self.restarts, o.restarts),
            irregular: f(self.irregular, o.irregular),
        }
    }

    /// The counts since `base`, an earlier reading of the same counters
    /// (`lost` may have shrunk since, as late frames filled gaps: at least 0).
    fn since(&self, base: &Self) -> Self {
        self.zip(base, u64::saturating_sub)
    }

    fn add(&mut self, o: &Self) {
        *self = self.zip(o, |a, b| a + b);
    }
}

/// What one worker measured for one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeData {
    /// Send → kernel receive timestamp, ns.
    pub kernel: Histogram<u64>,
    /// Send → the consumer, ns.
    pub consumer: Histogram<u64>,
    /// Sequence counters.
    pub seq: SeqCounters,
    /// Irregular streams' own counters (filled in the shared slots when published).
    pub streams: Vec<StreamCounters>,
}

/// An empty latency histogram: 1 ns to [`MAX_NS`], 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid")
}

impl ProbeData {
    /// Empty data with room for `streams` irregular streams.
    fn new(streams: usize) -> Self {
        Self {
            kernel: histogram(),
            consumer: histogram(),
            seq: SeqCounters::default(),
            streams: Vec::with_capacity(streams),
        }
    }

    /// What was recorded since `base`, an earlier merge of the same probe:
    /// histograms and counters only grow, so each is the difference.
    fn since(&self, base: &Self) -> Self {
        let hist = |now: &Histogram<u64>, then: &Histogram<u64>| {
            let mut h = now.clone();
            // Same bounds, and every count of `then` is in `now`: it cannot
            // fail; if it did, the figures stay whole rather than half-subtracted.
            if h.subtract(then).is_err() {
                tracing::debug!("a latency histogram shrank since the reset; shown whole");
                return now.clone();
            }
            h
        };
        let streams = self
            .streams
            .iter()
            .map(|s| {
                // Both merged: sorted by key, one entry each.
                let then = base.streams.binary_search_by_key(&s.key(), StreamCounters::key);
                then.map_or_else(
                    |_| s.clone(),
                    |i| {
                        let b = &base.streams[i];
                        StreamCounters {
                            lost: s.lost.saturating_sub(b.lost),
                            duplicates: s.duplicates.saturating_sub(b.duplicates),
                            reordered: s.reordered.saturating_sub(b.reordered),
                            too_old: s.too_old.saturating_sub(b.too_old),
                            ..s.clone()
                        }
                    },
                )
            })
            .filter(|s| s.lost + s.duplicates + s.reordered + s.too_old > 0)
            .collect::<Vec<_>>();
        let mut seq = self.seq.since(&base.seq);
        // A stream irregular before and again since was counted once, before:
        // those listed as irregular since count too.
        seq.irregular = seq.irregular.max(streams.len() as u64);
        Self { kernel: hist(&self.kernel, &base.kernel), consumer: hist(&self.consumer, &base.consumer), seq, streams }
    }

    fn copy_from(&mut self, o: &Self) {
        self.kernel.reset();
        self.consumer.reset();
        // Same bounds on both sides: adding cannot fail nor grow.
        let _ = self.kernel.add(&o.kernel);
        let _ = self.consumer.add(&o.consumer);
        self.seq = o.seq;
    }
}

/// The workers' published data of one probe.
#[derive(Debug)]
pub struct ProbeShared {
    slots: Vec<Mutex<ProbeData>>,
}

impl ProbeShared {
    /// Slots for `workers` workers.
    #[must_use]
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self { slots: (0..workers).map(|_| Mutex::new(ProbeData::new(LISTED_STREAMS))).collect() })
    }

    /// The probe of a consumer that was removed: its workers' data merged
    /// into one slot, what it recorded kept for statistics at a worker's
    /// share of the memory.
    #[must_use]
    pub fn frozen(&self) -> Arc<Self> {
        Arc::new(Self { slots: vec![Mutex::new(self.merged())] })
    }

    /// Bytes a probe takes over `workers` workers: each worker's flow
    /// table and histograms, and the histograms it publishes into.
    #[must_use]
    pub fn bytes(workers: usize) -> u64 {
        let hists = 2 * histogram().distinct_values() * std::mem::size_of::<u64>();
        let table = TABLE_SLOTS * (std::mem::size_of::<FlowTrack>() + std::mem::size_of::<u16>());
        ((table + 2 * hists) * workers) as u64
    }

    /// Every worker's data, merged.
    #[must_use]
    pub fn merged(&self) -> ProbeData {
        let mut all = ProbeData::new(LISTED_STREAMS);
        for s in &self.slots {
            let d = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = all.kernel.add(&d.kernel);
            let _ = all.consumer.add(&d.consumer);
            all.seq.add(&d.seq);
            all.streams.extend_from_slice(&d.streams);
        }
        // A stream split over workers (lb fanout) is summed.
        all.streams.sort_unstable_by_key(StreamCounters::key);
        all.streams.dedup_by(|later, kept| {
            let same = later.key() == kept.key();
            if same {
                kept.lost += later.lost;
                kept.duplicates += later.duplicates;
                kept.reordered += later.reordered;
                kept.too_old += later.too_old;
            }
            same
        });
        all
    }

    /// The merged data as it appears in statistics (see [`LatencySnap::of`]),
    /// each listed stream's port named by `port_name` (from its index).
    #[must_use]
    pub fn snapshot(&self, port_name: impl Fn(u16) -> String) -> LatencySnap {
        let mut data = self.merged();
        for s in &mut data.streams {
            s.port_name = port_name(s.port);
        }
        LatencySnap::of(Arc::new(data))
    }
}

/// A worker's instance of a probe: its own data and flow table.
#[derive(Debug)]
pub struct Probe {
    data: ProbeData,
    flows: Vec<FlowTrack>,
    /// Per stream: its place in `listed`, or [`REGULAR`] / [`UNLISTED`].
    /// Read only for irregular frames.
    listing: Vec<u16>,
    /// The irregular streams listed, in the order they turned irregular.
    listed: Vec<Listed>,
    shared: Arc<ProbeShared>,
    worker: usize,
    /// Frames recorded when the data was last copied out.
    published: u64,
}

impl Probe {
    /// Worker `worker`'s instance of the probe publishing into `shared`.
    #[must_use]
    pub fn new(shared: Arc<ProbeShared>, worker: usize) -> Self {
        Self {
            // Its streams are published from `listed`, not kept here.
            data: ProbeData::new(0),
            flows: vec![FlowTrack::default(); TABLE_SLOTS],
            listing: vec![REGULAR; TABLE_SLOTS],
            listed: Vec::with_capacity(LISTED_STREAMS),
            shared,
            worker,
            published: 0,
        }
    }

    /// Record one frame, arrived on port `port` (the engine's index).
    /// `times`: for a frame from an interface, its kernel receive time
    /// turned into CLOCK_MONOTONIC and CLOCK_MONOTONIC when its batch
    /// reached the consumer; `None` for a frame read from a file, whose
    /// sequence is checked but which is not timed.
    #[inline]
    pub fn record(&mut self, frame: &[u8], port: u16, times: Option<(u64, u64)>) {
        // A short stamp's send time is widened against the consumer's time.
        // A file's frames are not timed: no clock to read for them.
        let Some(st) = find_stamp_near(frame, || times.map_or(0, |t| t.1)) else {
            self.data.seq.unstamped += 1;
            return;
        };
        let d = &mut self.data;
        d.seq.stamped += 1;
        if let Some((kernel_ns, now_ns)) = times {
            let (k, c) = (kernel_ns.checked_sub(st.ts_ns), now_ns.checked_sub(st.ts_ns));
            d.seq.negative += u64::from(k.is_none() || c.is_none());
            d.kernel.saturating_record(k.unwrap_or(0).clamp(1, MAX_NS));
            d.consumer.saturating_record(c.unwrap_or(0).clamp(1, MAX_NS));
        }
        // Every stream given a slot is counted in `flows` by its first frame.
        match find_slot(&mut self.flows, d.seq.flows, stream_key(port, st.flow)) {
            Some(idx) => match track(&mut self.flows[idx], st.seq, st.ts_ns, &mut d.seq) {
                Seq::InOrder => {}
                seen => self.irregular(idx, seen),
            },
            None => d.seq.untracked += 1,
        }
    }

    /// Stream `idx` had an irregular frame: count the stream as irregular
    /// the first time (and list it while the list has room), and count a
    /// duplicate or late frame against a listed stream.
    #[cold]
    fn irregular(&mut self, idx: usize, seen: Seq) {
        let place = &mut self.listing[idx];
        if *place == REGULAR {
            self.data.seq.irregular += 1;
            *place = if self.listed.len() < LISTED_STREAMS {
                self.listed.push(Listed { index: idx as u32, duplicates: 0, reordered: 0, too_old: 0 });
                (self.listed.len() - 1) as u16
            } else {
                UNLISTED
            };
        }
        if let Some(l) = self.listed.get_mut(usize::from(*place)) {
            match seen {
                Seq::Duplicate => l.duplicates = l.duplicates.saturating_add(1),
                Seq::Late => l.reordered = l.reordered.saturating_add(1),
                Seq::TooOld => l.too_old = l.too_old.saturating_add(1),
                Seq::InOrder | Seq::Gap => {}
            }
        }
    }

    /// Copy what this worker measured into its shared slot, if it recorded
    /// anything since the last copy (the histograms are a few hundred KiB).
    /// On the statistics tick (`wait` false) a slot a reader holds is
    /// skipped, so a snapshot never stalls the worker; the final copy
    /// (`wait` true) waits.
    pub fn publish(&mut self, wait: bool) {
        let frames = self.data.seq.stamped + self.data.seq.unstamped;
        let Some(slot) = self.shared.slots.get(self.worker).filter(|_| frames != self.published) else { return };
        let mut guard = match slot.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if wait => {
                slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        guard.copy_from(&self.data);
        // Both hold at most LISTED_STREAMS: no reallocation.
        guard.streams.clear();
        guard.streams.extend(self.listed.iter().map(|l| {
            let f = &self.flows[l.index as usize];
            let (port, flow, reverse) = key_parts(f.key);
            StreamCounters {
                port,
                port_name: String::new(),
                flow,
                reverse,
                lost: f.lost + f.lost_before,
                duplicates: u64::from(l.duplicates),
                reordered: u64::from(l.reordered),
                too_old: u64::from(l.too_old),
            }
        }));
        self.published = frames;
    }
}

/// A stream's key in a probe's table: port + 1 above its stream id (the
/// flow index, bit 31 the direction), so never 0 (a free slot's).
fn stream_key(port: u16, stream: u32) -> u64 {
    (u64::from(port) + 1) << 32 | u64::from(stream)
}

/// The (port, flow index, reverse direction) of a [`stream_key`].
fn key_parts(key: u64) -> (u16, u32, bool) {
    (((key >> 32) - 1) as u16, key as u32 & 0x7fff_ffff, key as u32 >> 31 == 1)
}

/// The slot of the stream `key` ([`stream_key`]) in `table`
/// ([`TABLE_SLOTS`] slots, `tracked` of them taken): the one holding it, or
/// a free one claimed for it while fewer than [`MAX_STREAMS`] are taken,
/// its direct slot first, then from its hash on; `None` for a new stream
/// beyond those, or (not seen in practice) when the [`STREAM_PROBES`]
/// slots from its hash are all others'.
#[inline]
fn find_slot(table: &mut [FlowTrack], tracked: u64, key: u64) -> Option<usize> {
    let claim = |slot: &mut FlowTrack| {
        let free = slot.key == 0 && tracked < MAX_STREAMS as u64;
        if free {
            slot.key = key;
        }
        free
    };
    // Flow * 2 + direction, modulo the direct slots.
    let (_, flow, reverse) = key_parts(key);
    let direct = ((flow as usize) << 1 | usize::from(reverse)) & (DIRECT_SLOTS - 1);
    let slot = table.get_mut(direct)?;
    if slot.key == key || claim(slot) {
        return Some(direct);
    }
    // Fibonacci hashing: consecutive ids land far apart.
    let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - HASHED_BITS)) as usize;
    for _ in 0..STREAM_PROBES {
        let slot = table.get_mut(DIRECT_SLOTS + i)?;
        if slot.key == key || claim(slot) {
            return Some(DIRECT_SLOTS + i);
        }
        if slot.key == 0 {
            // Free, but no stream more may be tracked.
            return None;
        }
        i = (i + 1) & (HASHED_SLOTS - 1);
    }
    None
}

/// Account sequence number `seq`, sent at `ts_ns`, of a stream in the
/// totals `c` and the stream's state `f`, and say what it was.
///
/// A number below the highest seen is a duplicate or a late frame if it was
/// sent before that highest one, as one sender's frames are: its number was
/// taken before (more than [`WINDOW`] below, which of the two is not known:
/// too old). Sent after it, it comes from a sender that started
/// counting again (`ringwire-gen` run again on the same flows), and the
/// stream starts over: its earlier loss stays counted, and the new run's
/// frames are neither repeats nor late.
fn track(f: &mut FlowTrack, seq: u64, ts_ns: u64, c: &mut SeqCounters) -> Seq {
    let start = |f: &mut FlowTrack| {
        f.lost_before += f.lost;
        (f.next, f.window, f.first, f.lost, f.head_ts) = (seq.saturating_add(1), 1, seq, 0, ts_ns);
    };
    if f.next == 0 {
        c.flows += 1;
        start(f);
        return Seq::InOrder;
    }
    if seq >= f.next {
        let gap = seq - f.next;
        if gap >= RESTART {
            // Its earlier gaps stay counted; the new run starts clean.
            c.restarts += 1;
            start(f);
            return Seq::InOrder;
        }
        c.lost += gap;
        f.lost += gap;
        let shift = gap + 1;
        f.window = if shift >= WINDOW { 0 } else { f.window << shift };
        f.window |= 1;
        f.next = seq.saturating_add(1);
        f.head_ts = ts_ns;
        return if gap > 0 { Seq::Gap } else { Seq::InOrder };
    }
    if ts_ns > f.head_ts {
        c.restarts += 1;
        start(f);
        return Seq::InOrder;
    }
    let d = f.next - 1 - seq;
    if d >= WINDOW {
        // A repeat of an old frame or a very late one: which, is not known,
        // so it fills no gap (a repeat would hide a real loss).
        c.too_old += 1;
        return Seq::TooOld;
    }
    if f.window & (1 << d) != 0 {
        c.duplicates += 1;
        return Seq::Duplicate;
    }
    f.window |= 1 << d;
    c.reordered += 1;
    // A late frame fills a gap this stream counted as lost (not one from
    // before its first frame seen, which was never counted).
    if seq > f.first && f.lost > 0 {
        f.lost -= 1;
        c.lost -= 1;
    }
    Seq::Late
}

/// What the tables say when streams started over more than 16 times each
/// and at least once in 8 frames: not generator runs, but two senders on
/// the same flow ids into one port, whose interleaved sequences read as
/// restarts and gaps. (`streams`: those seen, which after a reset are only
/// those first seen since; the frames keep a rerun from passing for it.)
#[must_use]
pub fn restart_hint(restarts: u64, streams: u64, stamped: u64) -> Option<String> {
    (restarts > streams.max(1) * 16 && restarts.saturating_mul(8) > stamped).then(|| {
        format!(
            "streams started over {restarts} times in {stamped} frames: are two generators sending the same flow ids? \
             give each its own (ringwire-gen --first-flow); until then lost, duplicates and reordered mean nothing"
        )
    })
}

/// Percentiles of a latency histogram, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistSnap {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
    /// Mean, rounded.
    pub mean: u64,
}

impl HistSnap {
    /// The percentiles of `h` (all zero when it is empty).
    #[must_use]
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |p: f64| h.value_at_quantile(p);
        Self {
            count: h.len(),
            min: h.min(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max(),
            mean: h.mean().round() as u64,
        }
    }
}

/// A latency probe's figures in statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySnap {
    /// Send → kernel receive timestamp.
    pub kernel: HistSnap,
    /// Send → consumer.
    pub consumer: HistSnap,
    /// Sequence counters, over every stream.
    pub counters: SeqCounters,
    /// The irregular streams that lost most (at most [`SHOWN_STREAMS`]),
    /// with their own counters; `counters.irregular` says how many there are.
    pub streams: Vec<StreamCounters>,
    /// The merged data these figures were made from, for [`Self::since`].
    #[serde(skip)]
    data: Option<Arc<ProbeData>>,
}

impl LatencySnap {
    /// The figures of `data`: the irregular streams that lost most (then
    /// repeated or reordered most) first.
    fn of(data: Arc<ProbeData>) -> Self {
        let mut streams = data.streams.clone();
        streams.sort_by_key(|s| {
            (std::cmp::Reverse(s.lost), std::cmp::Reverse(s.duplicates + s.reordered + s.too_old), s.key())
        });
        streams.truncate(SHOWN_STREAMS);
        Self {
            kernel: HistSnap::of(&data.kernel),
            consumer: HistSnap::of(&data.consumer),
            counters: data.seq,
            streams,
            data: Some(data),
        }
    }

    /// The figures for what was recorded since `base`, an earlier snapshot
    /// of the same probe (`stats.reset`): latencies, counters and streams of
    /// that time only. Without the data behind either, these figures.
    #[must_use]
    pub fn since(&self, base: &Self) -> Self {
        match (&self.data, &base.data) {
            (Some(now), Some(then)) => Self::of(Arc::new(now.since(then))),
            _ => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(payload: &[u8], vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn stamps_are_found_behind_tags_and_refused_elsewhere() {
        let st = Stamp { flow: 0x8000_0003, seq: 42, ts_ns: 1_000 };
        assert_eq!(find_stamp(&udp4(&st.to_bytes(), false)), Some(st));
        assert_eq!(find_stamp(&udp4(&st.to_bytes(), true)), Some(st));
        let mut bad = st.to_bytes();
        bad[0] = b'X';
        assert_eq!(find_stamp(&udp4(&bad, false)), None);
        assert_eq!(find_stamp(&udp4(&st.to_bytes()[..20], false)), None, "a short payload");
        let mut frag = udp4(&st.to_bytes(), false);
        frag[14 + 7] = 1; // a non-first fragment: its payload is not an L4 header
        assert_eq!(find_stamp(&frag), None);
        for n in 0..40 {
            assert_eq!(find_stamp(&udp4(&st.to_bytes(), false)[..n]), None);
        }
    }

    #[test]
    fn short_stamps_fit_a_minimum_frame_and_widen_their_send_time() {
        let now = 5u64 << 56 | 123_456_789;
        let st = Stamp { flow: 0x8000_0003, seq: (1 << 40) - 1, ts_ns: now - 1_000 };
        let frame = udp4(&st.to_short_bytes(), false);
        assert_eq!(frame.len(), 60, "a minimum Ethernet frame (without FCS) holds it");
        assert_eq!(find_stamp_near(&frame, || now), Some(st));
        assert_eq!(find_stamp_near(&udp4(&st.to_short_bytes(), true), || now), Some(st), "behind a tag");
        // Fields beyond their widths wrap: flow modulo 2^23, sequence modulo 2^40.
        let big = Stamp { flow: (1 << 23) + 9, seq: (1 << 40) + 7, ts_ns: now };
        assert_eq!(
            find_stamp_near(&udp4(&big.to_short_bytes(), false), || now),
            Some(Stamp { flow: 9, seq: 7, ts_ns: now })
        );
        // The send time is taken from the 2^56 ns period nearest the receiver's clock,
        // across a period boundary either way.
        let p = 1u64 << 56;
        for (sent, near) in [(3 * p - 10, 3 * p + 10), (3 * p + 10, 3 * p - 10), (42, 100), (p / 2 - 1, 0)] {
            let st = Stamp { flow: 1, seq: 1, ts_ns: sent };
            assert_eq!(
                find_stamp_near(&udp4(&st.to_short_bytes(), false), || near).unwrap().ts_ns,
                sent,
                "{sent} near {near}"
            );
        }
        // A full stamp is read as such, never widened; a wrong short magic is refused.
        let full = Stamp { flow: 1, seq: 2, ts_ns: 3 };
        assert_eq!(find_stamp_near(&udp4(&full.to_bytes(), false), || unreachable!()), Some(full));
        let mut bad = st.to_short_bytes();
        bad[2] = b'G';
        assert_eq!(find_stamp(&udp4(&bad, false)), None);
        assert_eq!(find_stamp(&udp4(&st.to_short_bytes()[..17], false)), None, "one byte short");
    }

    #[test]
    fn sequence_tracking_counts_loss_duplicates_and_reordering() {
        let mut f = FlowTrack::default();
        let mut c = SeqCounters::default();
        let seen: Vec<Seq> =
            [0, 1, 2, 5, 3, 3, 6, 6, 200, 4].into_iter().map(|s| track(&mut f, s, 0, &mut c)).collect();
        use Seq::{Duplicate as D, Gap as G, InOrder as I, Late as L, TooOld as O};
        assert_eq!(seen, [I, I, I, G, L, D, I, D, G, O]);
        // 3 and 4 skipped at 5 (then 3 came late; 4 came 196 behind 200,
        // where a repeat cannot be told from a late frame: it fills no gap),
        // 7..=199 skipped at 200.
        assert_eq!(c.flows, 1);
        assert_eq!(c.duplicates, 2, "3 and 6 twice");
        assert_eq!(c.reordered, 1, "3 after a higher number");
        assert_eq!(c.too_old, 1, "4");
        assert_eq!(c.lost, 2 + 193 - 1);
        // A repeat of an old frame does not hide a loss: 0..=100 but 99,
        // then 5 again, loses 1.
        let (mut g, mut c) = (FlowTrack::default(), SeqCounters::default());
        for s in (0..=100).filter(|&s| s != 99).chain([5]) {
            track(&mut g, s, 0, &mut c);
        }
        assert_eq!((c.lost, c.reordered, c.duplicates, c.too_old), (1, 0, 0, 1), "{c:?}");
        // The window's edge, as the README puts it: 63 behind the highest is
        // in it (a repeat), 64 behind is too old.
        let (mut g, mut c) = (FlowTrack::default(), SeqCounters::default());
        for s in 0..=100 {
            track(&mut g, s, 0, &mut c);
        }
        assert_eq!(track(&mut g, 100 - 63, 0, &mut c), Seq::Duplicate);
        assert_eq!(track(&mut g, 100 - 64, 0, &mut c), Seq::TooOld);

        // A stream first seen at 5: 3 is late but was never counted lost; a
        // jump of 2^40 starts it over, and so does u64::MAX (no overflow),
        // after which 0 is too old.
        let (mut g, mut c) = (FlowTrack::default(), SeqCounters::default());
        for s in [5, 3, 6, 8, 1 << 40, (1 << 40) + 1, u64::MAX, 0] {
            track(&mut g, s, 0, &mut c);
        }
        assert_eq!((c.lost, c.reordered, c.too_old, c.restarts, c.flows), (1, 1, 1, 2, 1), "{c:?}");
    }

    #[test]
    fn a_generator_run_again_starts_its_streams_over() {
        // Run 1 sends 0..10 a frame per ms and loses 4; run 2, later, sends
        // 0..6 and a late 3 after 4, then repeats 5.
        let mut f = FlowTrack::default();
        let mut c = SeqCounters::default();
        let ms = 1_000_000;
        for seq in (0..10u64).filter(|&s| s != 4) {
            track(&mut f, seq, 100 * ms + seq * ms, &mut c);
        }
        assert_eq!((c.lost, c.restarts), (1, 0));
        let run2 = [(0, 500), (1, 501), (2, 502), (4, 504), (3, 503), (5, 505), (5, 505)];
        let seen: Vec<Seq> = run2.into_iter().map(|(seq, t)| track(&mut f, seq, t * ms, &mut c)).collect();
        use Seq::{Duplicate as D, Gap as G, InOrder as I, Late as L};
        assert_eq!(seen, [I, I, I, G, L, I, D]);
        assert_eq!(c.restarts, 1, "{c:?}");
        // Run 1's loss stays counted; run 2's late 3 filled its own gap.
        assert_eq!((c.lost, c.duplicates, c.reordered, c.flows), (1, 1, 1, 1), "{c:?}");
        // A frame of run 2 that comes back after run 2's highest, sent before
        // it, is a duplicate, not another restart.
        assert_eq!(track(&mut f, 0, 500 * ms, &mut c), D);
        assert_eq!(c.restarts, 1);
    }

    #[test]
    fn irregular_streams_are_listed_up_to_a_bound_merged_and_shown_most_lost_first() {
        let shared = ProbeShared::new(2);
        let (mut a, mut b) = (Probe::new(shared.clone(), 0), Probe::new(shared.clone(), 1));
        let frame = |flow: u32, seq: u64| udp4(&Stamp { flow, seq, ts_ns: 1 }.to_bytes(), false);
        // Flows 0..300 on worker 0, each losing `flow % 7` frames (after a
        // first frame): more irregular streams than are listed.
        for flow in 0..300u32 {
            a.record(&frame(flow, 0), 0, None);
            a.record(&frame(flow, 1 + u64::from(flow % 7)), 0, None);
        }
        // The reverse direction of flow 1 on worker 1 repeats a frame, and
        // flow 6 (which lost 6 on worker 0) loses 10 more there: summed.
        for seq in [0, 1, 1] {
            b.record(&frame(0x8000_0001, seq), 0, None);
        }
        b.record(&frame(6, 0), 0, None);
        b.record(&frame(6, 11), 0, None);
        // Flow 9 (which lost 2 on worker 0) skips 1 and then receives it late there.
        for seq in [0, 2, 1] {
            b.record(&frame(9, seq), 0, None);
        }
        a.publish(true);
        b.publish(true);
        let s = shared.snapshot(|i| format!("p{i}"));
        let irregular = (0..300).filter(|f| f % 7 != 0).count() as u64;
        assert_eq!(s.counters.irregular, irregular + 3, "{:?}", s.counters);
        assert_eq!(s.streams.len(), SHOWN_STREAMS);
        let top = &s.streams[0];
        assert_eq!((top.flow, top.reverse, top.lost), (6, false, 16), "{:?}", s.streams);
        assert!(s.streams.windows(2).all(|w| w[0].lost >= w[1].lost), "{:?}", s.streams);
        // Listed per worker: at most LISTED_STREAMS from worker 0.
        let merged = shared.merged();
        assert_eq!(merged.streams.len(), LISTED_STREAMS + 1, "worker 0's first 256, and worker 1's reverse flow 1");
        let rev = merged.streams.iter().find(|s| s.reverse).expect("the reverse stream");
        assert_eq!((rev.flow, rev.lost, rev.duplicates), (1, 0, 1));
        let nine = merged.streams.iter().find(|s| s.flow == 9).expect("flow 9");
        assert_eq!((nine.lost, nine.duplicates, nine.reordered), (2, 0, 1), "{nine:?}");
        // Streams beyond the list are counted irregular, not listed.
        assert!(a.listed.len() == LISTED_STREAMS && a.listing.iter().filter(|&&p| p == UNLISTED).count() > 0);
    }

    /// Figures since an earlier snapshot (`stats.reset`) hold only what was
    /// recorded after it: the latencies of that time (the large ones before
    /// are gone from the percentiles and the maximum), the frames, flows and
    /// losses counted since, and only the streams irregular since.
    #[test]
    fn figures_since_a_snapshot_hold_only_what_came_after_it() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        let frame = |flow: u32, seq: u64| udp4(&Stamp { flow, seq, ts_ns: 1_000_000 }.to_bytes(), false);
        // Before: flow 1, 50 frames at 1 ms, losing sequence 10.
        for seq in (0..51).filter(|&s| s != 10) {
            p.record(&frame(1, seq), 0, Some((2_000_000, 2_000_000)));
        }
        p.publish(true);
        let base = shared.snapshot(|i| format!("p{i}"));
        assert_eq!((base.consumer.count, base.counters.lost, base.streams.len()), (50, 1, 1));
        // After: flow 1 goes on in order and flow 2 starts, losing 3 of its
        // own, all at 20 µs.
        for seq in 51..81 {
            p.record(&frame(1, seq), 0, Some((1_020_000, 1_020_000)));
        }
        for seq in [0, 1, 5] {
            p.record(&frame(2, seq), 0, Some((1_020_000, 1_020_000)));
        }
        p.publish(true);
        let all = shared.snapshot(|i| format!("p{i}"));
        assert!(all.consumer.max >= 999_000, "{:?}", all.consumer);
        let s = all.since(&base);
        assert_eq!((s.consumer.count, s.kernel.count), (33, 33), "{s:?}");
        assert!((19_900..=20_100).contains(&s.consumer.max), "{:?}", s.consumer);
        assert!((19_900..=20_100).contains(&s.kernel.p99), "{:?}", s.kernel);
        assert_eq!((s.counters.stamped, s.counters.flows, s.counters.lost, s.counters.irregular), (33, 1, 3, 1));
        assert_eq!(s.streams.len(), 1, "flow 1 was regular since: {:?}", s.streams);
        assert_eq!((s.streams[0].flow, s.streams[0].lost), (2, 3));
        // Serialized, the figures carry no trace of the data behind them.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 4, "{json}");
        // Without the data (built by hand), the figures as they are.
        let bare = LatencySnap { data: None, ..all.clone() };
        assert_eq!(bare.since(&base), bare);
    }

    /// A stream is one direction of a flow on one port: the same flow ids
    /// arriving on two ports (two generators, one per link) are counted
    /// apart, named by port, and not taken for one stream starting over.
    #[test]
    fn the_same_flow_on_two_ports_is_two_streams() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        let frame = |seq: u64, ts_ns: u64| udp4(&Stamp { flow: 7, seq, ts_ns }.to_bytes(), false);
        // Port 3 runs 100 ahead of port 0, and lost its 150th; both send flow 7.
        for k in 0..200u64 {
            p.record(&frame(k, 1_000 + k), 0, None);
            if k != 50 {
                p.record(&frame(k + 100, 1_000 + k), 3, None);
            }
        }
        p.publish(true);
        let s = shared.snapshot(|i| ["a", "b", "c", "d"][usize::from(i)].to_owned());
        let c = s.counters;
        assert_eq!((c.flows, c.lost, c.restarts, c.duplicates, c.reordered, c.irregular), (2, 1, 0, 0, 0, 1), "{c:?}");
        assert_eq!(s.streams.len(), 1);
        assert_eq!((s.streams[0].port_name.as_str(), s.streams[0].flow, s.streams[0].lost), ("d", 7, 1));
        let json = serde_json::to_value(&s.streams[0]).unwrap();
        assert_eq!(json["port"], "d", "{json}");
    }

    /// The table holds [`MAX_STREAMS`] streams, however their ids and
    /// ports fall; frames of streams beyond are counted untracked (and timed).
    #[test]
    fn streams_beyond_the_table_are_untracked() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        // Both directions of flows 0.. on two ports, then more on a third.
        let stream = |k: u32| (k >> 2 | (k & 1) << 31, (k >> 1 & 1) as u16);
        let frame = |flow: u32, seq: u64| udp4(&Stamp { flow, seq, ts_ns: 1 }.to_bytes(), false);
        for k in 0..MAX_STREAMS as u32 {
            let (flow, port) = stream(k);
            p.record(&frame(flow, 0), port, None);
        }
        assert_eq!((p.data.seq.flows, p.data.seq.untracked), (MAX_STREAMS as u64, 0), "all placed");
        for flow in 0..1000 {
            p.record(&frame(flow, 0), 2, None);
        }
        // The tracked ones go on being tracked: a gap in each is counted.
        for k in 0..MAX_STREAMS as u32 {
            let (flow, port) = stream(k);
            p.record(&frame(flow, 2), port, None);
        }
        let c = p.data.seq;
        assert_eq!((c.flows, c.untracked, c.lost), (MAX_STREAMS as u64, 1000, MAX_STREAMS as u64), "{c:?}");
    }

    /// A stream that lost a frame and then started over (its generator run
    /// again) keeps that loss in its own row, as in the totals.
    #[test]
    fn a_streams_loss_stays_listed_after_it_starts_over() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        let frame = |seq: u64, ts_ns: u64| udp4(&Stamp { flow: 0, seq, ts_ns }.to_bytes(), false);
        for seq in (0..10).filter(|&s| s != 5) {
            p.record(&frame(seq, 100 + seq), 0, None);
        }
        for seq in 0..10 {
            p.record(&frame(seq, 1_000 + seq), 0, None);
        }
        p.publish(true);
        let s = shared.snapshot(|i| format!("p{i}"));
        assert_eq!((s.counters.lost, s.counters.restarts), (1, 1), "{:?}", s.counters);
        assert_eq!((s.streams.len(), s.streams[0].lost), (1, 1), "{:?}", s.streams);
    }

    /// The two-generators hint: restarts far beyond the streams and
    /// frequent among the frames; not one generator run again (also after a
    /// reset, when the streams seen since are none).
    #[test]
    fn only_restarts_among_the_frames_read_as_two_generators() {
        assert!(restart_hint(1_000, 10, 2_000).is_some());
        assert!(restart_hint(32, 0, 640).is_none(), "a rerun after a reset");
        assert!(restart_hint(64, 32, 1_280).is_none(), "two reruns");
        assert!(restart_hint(100, 10, 1_000).is_none(), "ten restarts per stream, but rare among the frames");
    }

    /// A frame whose stamp is later than both its kernel and its consumer
    /// time is one frame the clocks disagree on, not two.
    #[test]
    fn a_frame_stamped_in_the_future_is_counted_once() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        p.record(&udp4(&Stamp { flow: 1, seq: 0, ts_ns: 9_000 }.to_bytes(), false), 0, Some((5_000, 6_000)));
        p.publish(true);
        let s = shared.snapshot(|i| format!("p{i}"));
        assert_eq!((s.counters.negative, s.kernel.count, s.consumer.count), (1, 1, 1));
    }

    /// A stream irregular before a reset and again after it counts as
    /// irregular in the figures since, as it is listed there.
    #[test]
    fn a_stream_irregular_again_after_a_reset_counts_as_irregular_since() {
        let shared = ProbeShared::new(1);
        let mut p = Probe::new(shared.clone(), 0);
        let frame = |seq: u64| udp4(&Stamp { flow: 4, seq, ts_ns: 1 }.to_bytes(), false);
        for seq in [0, 2, 3] {
            p.record(&frame(seq), 0, None);
        }
        p.publish(true);
        let base = shared.snapshot(|i| format!("p{i}"));
        assert_eq!(base.counters.irregular, 1);
        for seq in [5, 6] {
            p.record(&frame(seq), 0, None);
        }
        p.publish(true);
        let s = shared.snapshot(|i| format!("p{i}")).since(&base);
        assert_eq!((s.counters.lost, s.counters.irregular, s.streams.len()), (1, 1, 1), "{s:?}");
    }

    #[test]
    fn probes_time_frames_and_merge_over_workers() {
        let shared = ProbeShared::new(2);
        let mut a = Probe::new(shared.clone(), 0);
        let mut b = Probe::new(shared.clone(), 1);
        for seq in 0..100u64 {
            let st = Stamp { flow: 1, seq, ts_ns: 1_000_000 };
            a.record(&udp4(&st.to_bytes(), false), 0, Some((1_010_000, 1_000_000 + 20_000 + seq * 100)));
        }
        b.record(&udp4(&Stamp { flow: 2, seq: 7, ts_ns: 5_000 }.to_bytes(), false), 0, Some((6_000, 4_000)));
        b.record(&udp4(&Stamp { flow: 3, seq: 0, ts_ns: 5_000 }.to_bytes(), false), 0, None);
        b.record(&[0u8; 60], 0, None);
        a.publish(true);
        b.publish(false);
        let s = shared.snapshot(|i| format!("p{i}"));
        assert_eq!(s.kernel.count, 101);
        assert!((9_990..=10_010).contains(&s.kernel.p50), "{:?}", s.kernel);
        assert_eq!(s.consumer.count, 101);
        assert!((24_900..=25_100).contains(&s.consumer.p50), "{:?}", s.consumer);
        assert!((29_800..=30_000).contains(&s.consumer.max), "{:?}", s.consumer);
        assert_eq!(s.counters.stamped, 102, "the file frame counts, untimed");
        assert_eq!(s.counters.unstamped, 1);
        assert_eq!(s.counters.negative, 1, "seen 1 µs before it was sent: recorded as 0");
        assert_eq!((s.counters.flows, s.counters.lost), (3, 0));

        // Removed, the probe keeps its figures in one slot.
        let frozen = shared.frozen();
        assert_eq!(frozen.slots.len(), 1);
        let f = frozen.snapshot(|i| format!("p{i}"));
        assert_eq!(
            (f.kernel, f.consumer, f.counters, f.streams.clone()),
            (s.kernel, s.consumer, s.counters, s.streams)
        );
    }

    /// The memory a probe is charged for covers what a worker's instance allocates.
    #[test]
    fn a_probes_charge_covers_its_tables() {
        let p = Probe::new(ProbeShared::new(1), 0);
        let table = p.flows.capacity() * std::mem::size_of::<FlowTrack>() + p.listing.capacity() * 2;
        let hists = 2 * p.data.kernel.distinct_values() * 8;
        let charged = ProbeShared::bytes(1);
        assert!(charged as usize >= table + 2 * hists, "{charged} < {table} + 2 x {hists}");
        assert!(charged > 12 << 20, "{charged}");
        assert_eq!(ProbeShared::bytes(3), 3 * charged);
    }
}
