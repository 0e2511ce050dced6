//! Queued consumers: frames copied into pooled slots, handed over bounded
//! lock-free queues (one pair per worker, so each is single-producer), and
//! written by the consumer's own thread.
//!
//! ```text
//! worker:   free.pop() ─ copy frame ─ full.push()      (no slot: count queue-dropped)
//! consumer: full.pop() ─ write ─ free.push()
//! ```
//! Every slot is allocated up front; a frame longer than a slot's initial
//! capacity (jumbo / GRO frames) grows that slot once and it stays grown.

use std::{
    io::Write as _,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crossbeam_queue::ArrayQueue;

use crate::{
    pcapio::{output_name, PcapIoError, PcapWriter},
    stats::{sink, Cells},
};

/// A copied frame.
#[derive(Debug)]
pub struct Slot {
    /// Receive timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub wire_len: u32,
    /// Port index.
    pub port: u16,
    /// Worker index.
    pub worker: u16,
    /// Captured bytes (up to the consumer's snaplen).
    pub data: Vec<u8>,
}

/// One worker's queue to one consumer, with its pool of free slots.
#[derive(Debug)]
pub struct Channel {
    full: ArrayQueue<Box<Slot>>,
    free: ArrayQueue<Box<Slot>>,
}

impl Channel {
    /// A channel of `depth` slots, each with `slot_capacity` bytes reserved.
    #[must_use]
    pub fn new(depth: usize, slot_capacity: usize) -> Self {
        let free = ArrayQueue::new(depth);
        for _ in 0..depth {
            let slot =
                Box::new(Slot { ts_ns: 0, wire_len: 0, port: 0, worker: 0, data: Vec::with_capacity(slot_capacity) });
            let _ = free.push(slot);
        }
        Self { full: ArrayQueue::new(depth), free }
    }

    /// Copy a frame into a free slot and queue it; `false` when no slot is free.
    #[inline]
    pub fn offer(&self, data: &[u8], snaplen: usize, wire_len: u32, ts_ns: u64, port: u16, worker: u16) -> bool {
        let Some(mut slot) = self.free.pop() else { return false };
        slot.data.clear();
        slot.data.extend_from_slice(&data[..data.len().min(snaplen)]);
        slot.ts_ns = ts_ns;
        slot.wire_len = wire_len;
        slot.port = port;
        slot.worker = worker;
        // Cannot fail: there are as many slots as queue places.
        self.full.push(slot).is_ok()
    }

    fn take(&self) -> Option<Box<Slot>> {
        self.full.pop()
    }

    fn give_back(&self, slot: Box<Slot>) {
        let _ = self.free.push(slot);
    }
}

/// Where a queued consumer's frames go.
pub enum SinkOutput {
    /// pcap file(s).
    Pcap(PcapOutput),
    /// One summary line per frame on stdout.
    Print {
        /// Port names, for the lines.
        port_names: Vec<String>,
    },
}

/// pcap output with optional rotation and per-worker split.
pub struct PcapOutput {
    base: PathBuf,
    snaplen: u32,
    rotate_bytes: u64,
    split: bool,
    writers: Vec<PcapWriter>,
    rotations: Vec<u32>,
    files: Vec<PathBuf>,
}

impl PcapOutput {
    /// Create the output file(s) now, so an unwritable path fails at start-up.
    ///
    /// # Errors
    /// The file that could not be created.
    pub fn create(
        base: PathBuf,
        snaplen: u32,
        rotate_mb: u64,
        split_workers: Option<usize>,
    ) -> Result<Self, PcapIoError> {
        let n = split_workers.unwrap_or(1);
        let mut writers = Vec::with_capacity(n);
        let mut files = Vec::new();
        for w in 0..n {
            let path = output_name(&base, split_workers.map(|_| w), 0);
            writers.push(PcapWriter::create(&path, snaplen)?);
            files.push(path);
        }
        Ok(Self {
            base,
            snaplen,
            rotate_bytes: rotate_mb.saturating_mul(1 << 20),
            split: split_workers.is_some(),
            rotations: vec![0; n],
            writers,
            files,
        })
    }

    /// Every file written so far.
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn write(&mut self, slot: &Slot) -> Result<(), PcapIoError> {
        let i = if self.split { usize::from(slot.worker).min(self.writers.len() - 1) } else { 0 };
        if self.rotate_bytes > 0 && self.writers[i].bytes() >= self.rotate_bytes {
            self.writers[i].flush()?;
            self.rotations[i] += 1;
            let path = output_name(&self.base, self.split.then_some(i), self.rotations[i]);
            self.writers[i] = PcapWriter::create(&path, self.snaplen)?;
            self.files.push(path);
        }
        self.writers[i].write(slot.ts_ns, slot.wire_len, &slot.data)
    }

    fn flush(&mut self) -> Result<(), PcapIoError> {
        self.writers.iter_mut().try_for_each(PcapWriter::flush)
    }
}

/// What a sink thread needs.
pub struct SinkTask {
    /// Consumer name.
    pub name: String,
    /// The output.
    pub output: SinkOutput,
    /// One channel per worker.
    pub channels: Vec<Arc<Channel>>,
    /// Counters this thread writes.
    pub counters: Arc<Cells<{ sink::N }>>,
    /// Set once every worker has exited: drain, flush and stop.
    pub producers_done: Arc<AtomicBool>,
    /// Stop writing after this many frames.
    pub limit: Option<u64>,
    /// Raised when the limit is reached or the output is gone (stdout closed).
    pub limit_hit: Arc<AtomicBool>,
}

/// Run a sink until the producers are done and the queues are empty.
///
/// # Errors
/// A description of the first write error (later ones are counted).
pub fn run_sink(mut t: SinkTask) -> Result<Vec<PathBuf>, String> {
    let mut local = [0u64; sink::N];
    local[sink::FILES] = match &t.output {
        SinkOutput::Pcap(p) => p.files.len() as u64,
        SinkOutput::Print { .. } => 0,
    };
    // Not locked: BufWriter takes the lock once per 64 KiB flush, so the main
    // thread can still print between flushes.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let mut line = String::with_capacity(256);
    let mut first_error: Option<String> = None;
    let mut dirty = false;
    loop {
        // Read the flag before draining: if it was set, everything the workers
        // will ever queue is already visible to this drain.
        let done = t.producers_done.load(Ordering::Acquire);
        let mut got = 0u64;
        for ch in &t.channels {
            while let Some(slot) = ch.take() {
                got += 1;
                if t.limit.is_some_and(|l| local[sink::WRITTEN] >= l)
                    || t.limit_hit.load(Ordering::Relaxed) && matches!(t.output, SinkOutput::Print { .. })
                {
                    local[sink::OVER_LIMIT] += 1;
                } else {
                    let res = match &mut t.output {
                        SinkOutput::Pcap(p) => {
                            let files = p.files.len();
                            let r = p.write(&slot).map_err(|e| error_chain(&e));
                            local[sink::FILES] += (p.files.len() - files) as u64;
                            r
                        }
                        SinkOutput::Print { port_names } => {
                            line.clear();
                            summary_line(&mut line, &slot, port_names);
                            out.write_all(line.as_bytes()).map_err(|e| {
                                if e.kind() == std::io::ErrorKind::BrokenPipe {
                                    // The reader went away (`| head`): stop quietly.
                                    t.limit_hit.store(true, Ordering::Relaxed);
                                    String::new()
                                } else {
                                    format!("stdout: {e}")
                                }
                            })
                        }
                    };
                    match res {
                        Ok(()) => {
                            local[sink::WRITTEN] += 1;
                            local[sink::BYTES] += slot.data.len() as u64;
                            dirty = true;
                        }
                        Err(e) => {
                            local[sink::WRITE_ERRORS] += 1;
                            if first_error.is_none() && !e.is_empty() {
                                tracing::error!(consumer = %t.name, error = %e, "write failed; further failures are counted");
                                first_error = Some(e);
                            }
                        }
                    }
                    if t.limit.is_some_and(|l| local[sink::WRITTEN] >= l) {
                        t.limit_hit.store(true, Ordering::Relaxed);
                    }
                }
                ch.give_back(slot);
                if got % 1024 == 0 {
                    t.counters.publish(&local);
                }
            }
        }
        t.counters.publish(&local);
        if got == 0 {
            if dirty {
                // Idle: make what was written visible (a tail -f, a pipe reader).
                let r = match &mut t.output {
                    SinkOutput::Pcap(p) => p.flush().map_err(|e| error_chain(&e)),
                    SinkOutput::Print { .. } => out.flush().map_err(|e| e.to_string()),
                };
                if let Err(e) = r {
                    if first_error.is_none() && !t.limit_hit.load(Ordering::Relaxed) {
                        first_error = Some(e);
                    }
                }
                dirty = false;
            }
            if done {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let flushed = match &mut t.output {
        SinkOutput::Pcap(p) => p.flush().map_err(|e| error_chain(&e)),
        SinkOutput::Print { .. } => out
            .flush()
            .or_else(|e| if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })
            .map_err(|e| e.to_string()),
    };
    t.counters.publish(&local);
    if let Some(e) = first_error.or(flushed.err()) {
        return Err(format!("consumer `{}`: {e}", t.name));
    }
    Ok(match t.output {
        SinkOutput::Pcap(p) => p.files,
        SinkOutput::Print { .. } => Vec::new(),
    })
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A tcpdump-like one-line summary of a frame (UTC time of day).
pub fn summary_line(out: &mut String, slot: &Slot, port_names: &[String]) {
    use std::fmt::Write as _;
    let secs = slot.ts_ns / 1_000_000_000;
    let day = secs % 86_400;
    let port = port_names.get(usize::from(slot.port)).map_or("?", String::as_str);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:09} {port} ",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        slot.ts_ns % 1_000_000_000
    );
    describe(out, &slot.data);
    let _ = writeln!(out, ", length {}", slot.wire_len);
}

/// A short decode of an Ethernet frame.
pub fn describe(out: &mut String, frame: &[u8]) {
    use std::fmt::Write as _;

    use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice, VlanSlice};
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        if frame.len() >= 14 {
            let _ = write!(out, "ethertype {:#06x} (undecodable)", u16::from_be_bytes([frame[12], frame[13]]));
        } else {
            let _ = write!(out, "runt ({} bytes)", frame.len());
        }
        return;
    };
    match &p.vlan {
        Some(VlanSlice::SingleVlan(v)) => {
            let _ = write!(out, "vlan {}, ", v.vlan_identifier().value());
        }
        Some(VlanSlice::DoubleVlan(d)) => {
            let _ = write!(
                out,
                "vlan {}, vlan {}, ",
                d.outer().vlan_identifier().value(),
                d.inner().vlan_identifier().value()
            );
        }
        None => {}
    }
    let (src, dst, proto) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (h.source_addr().to_string(), h.destination_addr().to_string(), "IP")
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (h.source_addr().to_string(), h.destination_addr().to_string(), "IP6")
        }
        _ => {
            let et = match &p.link {
                Some(LinkSlice::Ethernet2(e)) => e.ether_type().0,
                _ => 0,
            };
            let et = match &p.vlan {
                Some(VlanSlice::SingleVlan(v)) => v.ether_type().0,
                Some(VlanSlice::DoubleVlan(d)) => d.inner().ether_type().0,
                None => et,
            };
            match et {
                0x0806 => {
                    let _ = write!(out, "ARP");
                }
                _ => {
                    let _ = write!(out, "ethertype {et:#06x}");
                }
            }
            return;
        }
    };
    match &p.transport {
        Some(TransportSlice::Udp(u)) => {
            let _ = write!(out, "{proto} {src}.{} > {dst}.{}: UDP", u.source_port(), u.destination_port());
        }
        Some(TransportSlice::Tcp(t)) => {
            let mut flags = String::new();
            for (set, c) in [(t.syn(), 'S'), (t.fin(), 'F'), (t.rst(), 'R'), (t.psh(), 'P'), (t.ack(), '.')] {
                if set {
                    flags.push(c);
                }
            }
            let _ = write!(out, "{proto} {src}.{} > {dst}.{}: TCP [{flags}]", t.source_port(), t.destination_port());
        }
        Some(TransportSlice::Icmpv4(_)) => {
            let _ = write!(out, "{proto} {src} > {dst}: ICMP");
        }
        Some(TransportSlice::Icmpv6(_)) => {
            let _ = write!(out, "{proto} {src} > {dst}: ICMP6");
        }
        None => {
            let _ = write!(out, "{proto} {src} > {dst}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_drops_when_full_and_recycles_slots() {
        let ch = Channel::new(2, 64);
        assert!(ch.offer(&[1; 10], 100, 10, 1, 0, 0));
        assert!(ch.offer(&[2; 10], 100, 10, 2, 0, 0));
        assert!(!ch.offer(&[3; 10], 100, 10, 3, 0, 0), "no free slot");
        let s = ch.take().unwrap();
        assert_eq!(s.data, vec![1; 10]);
        ch.give_back(s);
        assert!(ch.offer(&[4; 200], 100, 200, 4, 0, 0));
        assert_eq!(ch.take().unwrap().data.len(), 10);
        assert_eq!(ch.take().unwrap().data.len(), 100, "snaplen applies");
    }

    #[test]
    fn describes_udp_and_vlan() {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .single_vlan(10.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53)
            .write(&mut f, &[0; 8])
            .unwrap();
        let mut s = String::new();
        describe(&mut s, &f);
        assert_eq!(s, "vlan 10, IP 10.0.0.1.1000 > 10.0.0.2.53: UDP");
        s.clear();
        describe(&mut s, &[0u8; 5]);
        assert_eq!(s, "runt (5 bytes)");
    }
}
