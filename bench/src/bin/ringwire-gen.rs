//! `ringwire-gen`: send a mix of flows from a PACKET_TX_RING with qdisc bypass.
//!
//! Each frame carries a stamp (flow id, its own sequence number within the
//! flow, CLOCK_MONOTONIC send time). Rate pacing is by batch against the
//! monotonic clock; `--rate 0` sends flat out. With several threads each
//! sends its own flows from its own TX ring, so a flow's sequence numbers
//! stay in order.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use ringwire_bench::frames::{
    self, FlowSpec, Ip, MixSpec, Stamp, Template, L4, MAX_FRAME_SIZE, MIX_SIZES, SHORT_STAMP_LEN,
};
use ringwire_engine::{out, say};
use ringwire_engine::{
    pcapio::PcapWriter,
    ring::{TxRing, TxRingOptions, MIN_FRAME, SLOT_HEADROOM},
    sys,
};

/// Send generated traffic out of an interface.
#[derive(Parser)]
#[command(version, about = "ringwire's traffic generator: stamped flows sent from a PACKET_TX_RING")]
struct Args {
    /// Interface to send on.
    #[arg(short = 'i', long, required_unless_present = "pcap_out")]
    interface: Option<String>,
    /// Write the frames to this pcap file instead of sending them (needs --count).
    /// (Sending options do not apply: the frames are stamped 1 µs apart.)
    #[arg(long, conflicts_with_all = [
        "interface", "rate", "bitrate", "duration", "record", "cores", "threads", "ring_kib", "copy_max", "burst", "progress",
    ])]
    pcap_out: Option<PathBuf>,
    /// Frames to send, at least 1 (default: unlimited, bounded by --duration).
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Seconds to send for (default 10 when no --count is given). With a
    /// rate, exactly the frames due in that time are sent (rate × seconds);
    /// a run that falls behind its pace stops at most 50 ms late.
    #[arg(short = 'd', long)]
    duration: Option<f64>,
    /// Frames per second; 0 sends flat out.
    #[arg(short = 'r', long, default_value_t = 0, conflicts_with = "bitrate")]
    rate: u64,
    /// Rate in bits per second of frame bytes (as sent, without preamble, gap
    /// and FCS), e.g. `500M`, `2.5G`: turned into frames/s for the size mix.
    #[arg(long, value_parser = parse_bitrate)]
    bitrate: Option<f64>,
    /// Frame size: `mix` (60-1514), `imix` (60, 590 and 1514 bytes 7:4:1:
    /// IMIX's IP packets of 40, 576, 1500, the first as a minimum frame; each
    /// flow goes through the sizes in turn), a number, or MIN-MAX (eight sizes across the
    /// range). A flow's frames are never shorter than its headers, nor than
    /// 60 bytes without --runts; a number or range that is shorter for some
    /// flows, or leaves them no room for the 18-byte stamp, is warned about.
    /// (The presets' 60 and 64-byte entries leave IPv6 and TCP flows no room
    /// for it: the report counts the frames sent without a stamp.)
    #[arg(short = 's', long, default_value = "mix")]
    size: String,
    /// Number of flows.
    #[arg(long, default_value_t = 64)]
    flows: u32,
    /// The first flow's id: the flows are N .. N + --flows - 1 (their
    /// addresses and ports follow the id). Generators sending into one
    /// latency probe need ids of their own: the probe tells streams apart
    /// by port and flow id only.
    #[arg(long, default_value_t = 0)]
    first_flow: u32,
    /// Tag with 802.1Q one group in N of four flows (IPv4/IPv6 x UDP/TCP,
    /// so tags cover each kind): the last group of every N, so with fewer
    /// than 4 x N flows none is tagged (0: none) [default: 8]
    #[arg(long)]
    vlan_every: Option<u32>,
    /// Only IPv4 or only IPv6 (default: both).
    #[arg(long, value_parser = ["4", "6"])]
    ip: Option<String>,
    /// Only udp or only tcp (default: both).
    #[arg(long, value_parser = ["udp", "tcp"])]
    l4: Option<String>,
    /// Send every flow in both directions, alternating (addresses, ports and
    /// MACs swapped; IPv6 flow labels differ each way, as Linux's do).
    #[arg(long)]
    bidirectional: bool,
    /// Spread the flows over this many destination MACs (flow i goes to --dst-mac + i mod N, counted in
    /// its last three bytes, which must not run past ff:ff:ff).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    dst_macs: u32,
    /// Destination MAC.
    #[arg(long, default_value = "02:00:00:00:00:02", value_parser = ringwire_filters::parse_mac)]
    dst_mac: [u8; 6],
    /// Source MAC (a unicast one: no frame comes from a group address).
    #[arg(long, default_value = "02:00:00:00:00:01", value_parser = unicast_mac)]
    src_mac: [u8; 6],
    /// Send frames shorter than 60 bytes as they are (no padding).
    #[arg(long)]
    runts: bool,
    /// Cores to pin the sending threads to, one per thread (`--cores 0,1`
    /// sends from two threads). `--core` is the same.
    #[arg(long, alias = "core", value_delimiter = ',')]
    cores: Vec<usize>,
    /// Sending threads, each with its own TX ring and its share of the
    /// flows, frames and rate (default: one per core in --cores, else 1).
    #[arg(long)]
    threads: Option<usize>,
    /// TX ring size per thread in KiB: small rings stay in the CPU's cache
    /// (the kernel reads each frame right after it is written).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=1048576))]
    ring_kib: u32,
    /// Frames up to this many bytes are copied into the kernel's socket
    /// buffer rather than lent to it as TX ring pages, which the kernel would
    /// otherwise copy into fresh pages on a veth, bridge or tap (0: lend all).
    #[arg(long, default_value_t = 65535)]
    copy_max: usize,
    /// Most frames per kick of the TX ring. Smaller bursts hand each frame to
    /// the kernel sooner after its send stamp (a latency measurement at a
    /// high paced rate), at the cost of more system calls per frame.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    burst: u32,
    /// Record every frame sent (as sent) into this pcap file. Frames the
    /// kernel never took from the TX ring (the interface went down) are
    /// taken out of it again, as they are out of the report. One thread
    /// only (several threads' frames have no one order).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Print the final report as JSON on stdout (with --pcap-out: the file,
    /// the frames and bytes written, the streams).
    #[arg(long)]
    json: bool,
    /// Progress line every second on stderr (the default when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

/// How late past `--duration` a paced run that fell behind its pace may go
/// on catching up.
const PACED_LATE: Duration = Duration::from_millis(50);

/// The frames a pace of `rate` frames/s makes due within `d`: frame `i` is
/// due at `i / rate` s, so those with `i / rate < d`.
fn frames_due(d: Duration, rate: u64) -> u64 {
    u64::try_from((d.as_nanos() * u128::from(rate)).div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// The frames a run sends at most: `count`, and when paced for a duration,
/// the frames due in it at the whole run's rate. Split over threads as
/// such, so that threads with shares of the rate do not each round their
/// own due frames up.
fn paced_total(count: u64, duration: Option<Duration>, rate: u64) -> u64 {
    match duration {
        Some(d) if rate > 0 => count.min(frames_due(d, rate)),
        _ => count,
    }
}

/// How often a sending thread reads its interface's MTU again.
const MTU_CHECK: Duration = Duration::from_millis(10);

/// Simple IMIX, interleaved so no size comes in a burst: 7 × 60, 4 × 590, 1 × 1514.
const IMIX: [usize; 12] = [60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 60, 590];

/// `500M`, `2.5G`, `10k`, `1e9`: bits per second.
fn parse_bitrate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        Some((i, 't' | 'T')) => (&t[..i], 1e12),
        _ => (t, 1.0),
    };
    let v = num.parse::<f64>().map_err(|_| format!("`{s}` is not a rate (e.g. 500M, 2.5G)"))? * mult;
    if !(1.0..=1e12).contains(&v) {
        return Err(format!("`{s}` is out of range (1 bit/s to 1 Tbit/s)"));
    }
    Ok(v)
}

/// Frames per second that carry `bits_per_s` of frames of the `sizes` mix
/// (sent in turn), at least 1.
fn frames_per_s(bits_per_s: f64, sizes: &[usize]) -> u64 {
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    ((bits_per_s / (mean * 8.0)).round() as u64).max(1)
}

/// Whether `--size` names a preset mix (its entries are raised to a flow's
/// headers without a warning) rather than sizes of the user's.
fn is_preset(spec: &str) -> bool {
    spec == "mix" || spec == "imix"
}

/// The sizes `--size` asks for (not yet checked against the flows: see [`fit_sizes`]).
fn sizes(spec: &str) -> Result<Vec<usize>> {
    let v: Vec<usize> = if spec == "mix" {
        MIX_SIZES.to_vec()
    } else if spec == "imix" {
        IMIX.to_vec()
    } else if let Some((a, b)) = spec.split_once('-') {
        let (a, b): (usize, usize) = (a.trim().parse().context("--size MIN")?, b.trim().parse().context("--size MAX")?);
        if b > MAX_FRAME_SIZE {
            bail!("--size {spec}: MAX {b} bytes is out of range (at most {MAX_FRAME_SIZE})");
        }
        if a > b {
            bail!("--size {spec}: MIN is larger than MAX");
        }
        (0..8).map(|k| a + (b - a) * k / 7).collect()
    } else {
        vec![spec.parse().with_context(|| format!("--size `{spec}`: expected mix, imix, N or MIN-MAX"))?]
    };
    if let Some(bad) = v.iter().find(|&&s| s > MAX_FRAME_SIZE) {
        bail!("--size: {bad} bytes is out of range (at most {MAX_FRAME_SIZE})");
    }
    Ok(v)
}

/// The sizes to build the flows' frames with, and a warning line for the
/// flows whose frames are not as asked or carry no stamp.
///
/// A size shorter than every kind of flow's headers (`kinds`, from
/// [`MixSpec::header_kinds`]) is refused: no frame fits. One shorter than
/// some flows' headers, or without room for the 18-byte stamp after them,
/// is warned about with the size those flows get; without `runts`, sizes
/// below 60 become 60, which is what is sent. Presets warn about nothing.
fn fit_sizes(spec: &str, asked: &[usize], kinds: &[FlowSpec], runts: bool) -> Result<(Vec<usize>, Option<String>)> {
    let Some(smallest) = kinds.iter().min_by_key(|f| frames::header_len(f)) else {
        bail!("no flows");
    };
    let lo = frames::header_len(smallest);
    let used: Vec<usize> = asked.iter().map(|&s| if runts { s } else { s.max(MIN_FRAME) }).collect();
    if is_preset(spec) {
        return Ok((used, None));
    }
    if let Some(bad) = asked.iter().find(|&&s| s < lo) {
        bail!(
            "--size: {bad} bytes is out of range for these flows ({lo} to {MAX_FRAME_SIZE} bytes: {} headers take {lo})",
            smallest.kind()
        );
    }
    let mut notes = Vec::new();
    let mut seen = Vec::new();
    for (&s, &u) in asked.iter().zip(&used) {
        if seen.contains(&s) {
            continue;
        }
        seen.push(s);
        let odd: Vec<String> = kinds
            .iter()
            .filter_map(|f| {
                let len = frames::frame_len(f, u);
                let stamped = len >= frames::min_stamped_len(f);
                if len == s && stamped {
                    return None;
                }
                let why = if len == s {
                    ""
                } else if len == frames::header_len(f) {
                    " (its headers)"
                } else {
                    " (padded; --runts sends runts)"
                };
                Some(format!("{} {len} B{why}{}", f.kind(), if stamped { "" } else { " unstamped" }))
            })
            .collect();
        if !odd.is_empty() {
            let at = if asked.len() > 1 { format!("at {s} B: ") } else { String::new() };
            notes.push(format!("{at}{}", odd.join(", ")));
        }
    }
    let warning = (!notes.is_empty()).then(|| {
        format!(
            "--size {spec} is too short for some flows (their headers and the {SHORT_STAMP_LEN}-byte stamp{}); they send {}",
            if runts { String::new() } else { format!(", or {MIN_FRAME} bytes without --runts") },
            notes.join("; ")
        )
    });
    Ok((used, warning))
}

#[derive(serde::Serialize)]
struct Report {
    interface: String,
    sent: u64,
    bytes: u64,
    /// Frames too short for the stamp (see `--size`): sent without one.
    unstamped: u64,
    elapsed_s: f64,
    /// Frames per second over the intervals between frames (the frames
    /// less one over the longest thread's time); `null` with fewer than two frames.
    rate_pps: Option<f64>,
    rate_gbps: Option<f64>,
    ring_full_waits: u64,
    /// Kicks of the TX ring that handed the kernel new frames (at most
    /// `--burst` frames each).
    kicks: u64,
    /// Kicks the device answered "busy" (backpressure; the frames waited and were sent).
    busy_kicks: u64,
    /// Frames not sent because they exceed the interface's MTU.
    oversize: u64,
    /// Directed flows (each has its own sequence numbers, from 0).
    streams: u32,
    /// Paced runs: the frames due at the pace in the run's count and
    /// duration (`sent` falls short when the TX path could not keep up).
    due: Option<u64>,
    /// SIGINT or SIGTERM ended the run before its count or duration.
    interrupted: bool,
    /// Per sending thread.
    threads: Vec<ThreadReport>,
}

/// What one sending thread did.
#[derive(serde::Serialize, Default)]
struct ThreadReport {
    core: Option<usize>,
    sent: u64,
    bytes: u64,
    unstamped: u64,
    ring_full_waits: u64,
    kicks: u64,
    busy_kicks: u64,
    oversize: u64,
    /// Frames still in the TX ring at exit (not counted as sent).
    left: u64,
    /// Seconds from this thread's first frame to the kernel taking its last.
    elapsed_s: f64,
    /// Why it stopped early, if it did (the report is printed, then this).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One sending thread's share: its streams, frames, rate and core.
struct Plan {
    streams: Vec<u32>,
    count: u64,
    /// Paced runs: the run's rate (all threads'), frames/s; 0 flat out.
    rate: u64,
    /// Paced runs: the threads' frames interleave evenly, as one schedule
    /// at the run's rate: thread `offset` of `stride` sends the run's
    /// frames `offset`, `offset + stride`, ... (due at `g / rate` s each).
    offset: u64,
    stride: u64,
    core: Option<usize>,
}

impl Plan {
    /// Frame `j` of this thread: its template, the position of its stream
    /// among this thread's streams, and its number within that stream.
    fn frame(&self, mix: &MixSpec, j: u64) -> (usize, usize, u64) {
        let n = self.streams.len() as u64;
        let pos = (j % n) as usize;
        let k = j / n;
        (mix.stream_template(self.streams[pos], k), pos, k)
    }

    /// Paced: when this thread's frame `i` is due, from the common start.
    fn due_at(&self, i: u64) -> Duration {
        let g = u128::from(self.offset) + u128::from(self.stride) * u128::from(i);
        // (Rounded up: the frame is due by then, as `due_by` counts it.)
        Duration::from_nanos(u64::try_from((g * 1_000_000_000).div_ceil(u128::from(self.rate))).unwrap_or(u64::MAX))
    }

    /// Paced: how many of this thread's frames are due `elapsed` after the
    /// common start (frame `i` is once `elapsed >= due_at(i)`).
    fn due_by(&self, elapsed: Duration) -> u64 {
        // The run's last frame due by then, of every thread.
        let last = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        match last.checked_sub(u128::from(self.offset)) {
            Some(after) => u64::try_from(after / u128::from(self.stride) + 1).unwrap_or(u64::MAX),
            None => 0,
        }
    }

    /// A stamp sequence counter for each of this thread's streams.
    fn stamp_seqs(&self) -> StampSeqs {
        StampSeqs { next: vec![0; self.streams.len()], tcp: vec![1; self.streams.len()], unstamped: 0 }
    }
}

/// The next stamp sequence number of each of a thread's streams. Only the
/// frames that carry a stamp take a number (a frame too short for one
/// carries none), so a receiver counting gaps in a flow's numbers counts
/// frames lost, not frames sent without a stamp; those are counted.
struct StampSeqs {
    next: Vec<u64>,
    /// The TCP sequence number of each stream's next frame: a TCP stream's
    /// frames follow each other in sequence space, as a real sender's do
    /// (a receiver reassembling it sees no retransmission or overlap).
    tcp: Vec<u32>,
    unstamped: u64,
}

impl StampSeqs {
    /// The number the next frame of the stream at `pos` carries.
    #[inline]
    fn next(&self, pos: usize) -> Numbers {
        Numbers { seq: self.next[pos], tcp_seq: self.tcp[pos] }
    }

    /// Frame `t` of the stream at `pos` was sent: if it carried its number,
    /// the next frame carries the one after; if not, it is counted. Its
    /// payload moves the stream on in TCP sequence space.
    #[inline]
    fn sent(&mut self, pos: usize, t: &Template) {
        let stamped = t.stamp.is_some();
        self.next[pos] += u64::from(stamped);
        self.unstamped += u64::from(!stamped);
        self.tcp[pos] = self.tcp[pos].wrapping_add(t.payload_len);
    }
}

/// The numbers a stream's next frame carries.
#[derive(Clone, Copy)]
struct Numbers {
    /// In its stamp.
    seq: u64,
    /// In its TCP header (TCP frames only).
    tcp_seq: u32,
}

/// A MAC address that is not a group (multicast or broadcast) address.
/// `--dst-mac` with `--dst-macs` and `--bidirectional`: the destinations
/// count up in the address's last three bytes without wrapping (a wrap
/// would send to addresses nobody asked for, past ff:ff:ff: broadcast among
/// them), and frames sent back come from the destinations, which must then
/// be unicast addresses, as `--src-mac` must.
fn check_dst_macs(dst: [u8; 6], n: u32, bidirectional: bool) -> Result<()> {
    let hex = ringwire_engine::stats::format_mac;
    let low = u32::from_be_bytes([0, dst[3], dst[4], dst[5]]);
    if u64::from(low) + u64::from(n) - 1 > 0x00ff_ffff {
        bail!(
            "--dst-mac {} with --dst-macs {n}: the addresses count up in the last three bytes and would run \
             past ff:ff:ff; start lower",
            hex(dst)
        );
    }
    if bidirectional && dst[0] & 1 != 0 {
        bail!(
            "--dst-mac {} is a group (multicast) address: with --bidirectional the frames sent back come from it, \
             and a source MAC is a unicast one",
            hex(dst)
        );
    }
    Ok(())
}

fn unicast_mac(s: &str) -> Result<[u8; 6], String> {
    let mac = ringwire_filters::parse_mac(s)?;
    if mac[0] & 1 != 0 {
        return Err(format!("`{s}` is a group (multicast) address; a source MAC is a unicast one"));
    }
    Ok(mac)
}

/// Split `total` into `parts` shares that differ by at most one.
fn share(total: u64, parts: usize, i: usize) -> u64 {
    let p = parts as u64;
    total / p + u64::from((i as u64) < total % p)
}

/// Split the work over threads: thread `t` sends streams `t, t + T, ...`.
fn plans(streams: u32, threads: usize, cores: &[usize], count: u64, rate: u64) -> Result<Vec<Plan>> {
    if threads == 0 || threads > 64 {
        bail!("--threads must be between 1 and 64");
    }
    if !cores.is_empty() && cores.len() != threads {
        bail!("--threads {threads} with {} cores in --cores: give one core per thread", cores.len());
    }
    if streams < threads as u32 {
        bail!("{threads} threads need at least as many flows (have {streams} directed flows)");
    }
    if rate > 0 && rate < threads as u64 {
        bail!("--rate {rate} is lower than the number of threads ({threads})");
    }
    // Paced, the threads send the run's frames in turn, on one schedule at
    // the run's rate: each takes the same time, whatever the rate's remainder.
    Ok((0..threads)
        .map(|t| Plan {
            streams: (t as u32..streams).step_by(threads).collect(),
            count: if count == u64::MAX { u64::MAX } else { share(count, threads, t) },
            rate,
            offset: t as u64,
            stride: threads as u64,
            core: cores.get(t).copied(),
        })
        .collect())
}

/// How long a sending thread waits, after its last frame is queued, for the
/// kernel to take what is still in its ring.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// How long a full TX ring may go without the kernel taking a frame
/// before the run ends with an error (a device refusing every kick).
const TX_STALL: Duration = Duration::from_secs(1);

/// A paced thread spins through waits this short rather than sleep.
const SPIN_WAIT: Duration = Duration::from_micros(100);

/// Why an interface may not take frames, as its sysfs entries tell.
fn link_state(iface: &str) -> String {
    link_problem(iface)
        .unwrap_or_else(|op| format!("{iface} (operstate {op}) did not send them: is its queue stopped?"))
}

/// What is wrong with `iface`'s link (gone, no carrier, not up), or, as
/// the error, its operational state when nothing is.
fn link_problem(iface: &str) -> Result<String, String> {
    let read = |f: &str| std::fs::read_to_string(format!("/sys/class/net/{iface}/{f}")).map(|s| s.trim().to_owned());
    match (read("operstate"), read("carrier")) {
        (Err(_), _) => Ok(format!("{iface} is gone")),
        (Ok(op), Ok(c)) if c == "0" => Ok(format!("{iface} has no carrier (operstate {op}): is its peer down?")),
        (Ok(op), _) if op != "up" && op != "unknown" => Ok(format!("{iface} is {op}")),
        (Ok(op), _) => Err(op),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say!("ringwire-gen: error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Flow ids a stamp tells apart: the short stamp's.
const FLOW_IDS: u64 = 1 << ringwire_engine::probe::SHORT_FLOW_BITS;

fn run() -> Result<()> {
    let mut a = Args::parse();
    if a.flows == 0 || a.flows > 1_000_000 {
        bail!("--flows must be between 1 and 1000000");
    }
    if u64::from(a.first_flow) + u64::from(a.flows) > FLOW_IDS {
        bail!(
            "--first-flow {} with --flows {}: flow ids must stay below {FLOW_IDS} (a short stamp holds {} bits of them)",
            a.first_flow,
            a.flows,
            ringwire_engine::probe::SHORT_FLOW_BITS
        );
    }
    if let Some(d) = a.duration {
        if !(d > 0.0 && d <= 86_400.0) {
            bail!("--duration {d}: must be more than 0 and at most 86400 seconds");
        }
    }
    let ncores = sys::online_cores();
    if let Some(c) = a.cores.iter().find(|&&c| c >= ncores) {
        bail!("--cores: core {c} does not exist (this machine has {ncores})");
    }
    if let Some(c) = ringwire_engine::config::first_repeat(&a.cores) {
        bail!("--cores: core {c} is listed twice (one sending thread per core)");
    }
    if a.count == Some(0) {
        bail!("--count 0: must be at least 1 (leave --count out to send until --duration ends)");
    }
    check_dst_macs(a.dst_mac, a.dst_macs, a.bidirectional)?;
    let duration = match (a.count, a.duration) {
        (None, None) => Some(Duration::from_secs(10)),
        (_, d) => d.map(Duration::from_secs_f64),
    };
    let count = a.count.unwrap_or(u64::MAX);
    let mut mix = MixSpec {
        flows: a.flows,
        first_flow: a.first_flow,
        vlan_every: a.vlan_every.unwrap_or(8),
        ip: a.ip.as_deref().map(|v| if v == "4" { Ip::V4 } else { Ip::V6 }),
        l4: a.l4.as_deref().map(|v| if v == "udp" { L4::Udp } else { L4::Tcp }),
        sizes: Vec::new(),
        src_mac: a.src_mac,
        dst_mac: a.dst_mac,
        bidirectional: a.bidirectional,
        dst_macs: a.dst_macs,
    };
    let (used, warning) = fit_sizes(&a.size, &sizes(&a.size)?, &mix.header_kinds(), a.runts)?;
    mix.sizes = used;
    let templates: Vec<Template> = mix.templates()?;
    if let Some(w) = warning {
        say!("ringwire-gen: warning: {w}");
    }
    // Said when asked for: with the default, few flows and no tags is usual.
    if let Some(n) = a.vlan_every.filter(|&n| n > 0 && u64::from(a.flows) < 4 * u64::from(n)) {
        say!(
            "ringwire-gen: warning: --vlan-every {n} tags one group of four flows in {n}: {f} flows have no tagged group (give at least {} flows)",
            4 * u64::from(n),
            f = a.flows
        );
    }
    if let Some(bps) = a.bitrate {
        // The mean of the frames as sent: every stream goes through every size.
        let lens: Vec<usize> = templates.iter().map(|t| t.bytes.len()).collect();
        let mean = lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64;
        let fps = bps / (mean * 8.0);
        if fps < 1.0 {
            bail!("--bitrate {bps} bit/s is {fps:.3} frames/s of {mean:.0}-byte frames: below 1 frame/s, the slowest pace sent");
        }
        if fps > 100_000_000.0 {
            bail!("--bitrate {bps} bit/s is {fps:.0} frames/s of {mean:.0}-byte frames: beyond anything a TX ring sends (max 100000000)");
        }
        a.rate = frames_per_s(bps, &lens);
    }
    if a.rate > 100_000_000 {
        bail!("--rate {} is beyond anything a TX ring sends (max 100000000)", a.rate);
    }
    let threads = a.threads.unwrap_or(a.cores.len().max(1));
    if let Some(path) = &a.pcap_out {
        let Some(n) = a.count else { bail!("--pcap-out needs --count") };
        let plan = &plans(mix.streams(), 1, &[], n, 0)?[0];
        let mut w = PcapWriter::create(path, 65535)?;
        let mut frame = Vec::with_capacity(9000);
        // Records carry wall-clock times, stamps CLOCK_MONOTONIC ones (as
        // sent frames' do: a short stamp keeps only the low 56 bits).
        let (t0, m0) = (sys::realtime_ns(), sys::monotonic_ns());
        let mut seqs = plan.stamp_seqs();
        let mut bytes = 0u64;
        for j in 0..n {
            let (ti, pos, _) = plan.frame(&mix, j);
            let t = &templates[ti];
            let n = seqs.next(pos);
            seqs.sent(pos, t);
            frame.clear();
            // Never shorter than 60 bytes without --runts: fit_sizes raised the sizes.
            frame.extend_from_slice(&t.bytes);
            let stamp = Stamp { flow: t.flow.stream(), seq: n.seq, ts_ns: m0 + j * 1000 };
            frames::stamp(t, &mut frame, &stamp, n.tcp_seq);
            w.write(t0 + j * 1000, frame.len() as u32, &frame)?;
            bytes += frame.len() as u64;
        }
        w.flush()?;
        say!("ringwire-gen: wrote {n} frames to {}", path.display());
        if a.json {
            out!(
                "{}",
                serde_json::json!({
                    "pcap_out": path, "written": n, "bytes": bytes, "unstamped": seqs.unstamped, "streams": mix.streams()
                })
            );
        }
        return Ok(());
    }
    let iface = a.interface.clone().expect("clap requires --interface without --pcap-out");
    let total = paced_total(count, duration, a.rate);
    let plans = plans(mix.streams(), threads, &a.cores, total, a.rate)?;
    if a.record.is_some() && threads > 1 {
        bail!("--record needs a single thread (frames of several threads have no one order)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let progress: Vec<AtomicU64> = plans.iter().map(|_| AtomicU64::new(0)).collect();
    let show_progress = a.progress || std::io::IsTerminal::is_terminal(&std::io::stderr());
    let ready = std::sync::Barrier::new(plans.len() + 1);
    let results: Vec<Result<ThreadReport>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .zip(&progress)
            .map(|(plan, sent)| {
                let job = Job {
                    plan,
                    mix: &mix,
                    templates: &templates,
                    iface: &iface,
                    runts: a.runts,
                    ring_kib: a.ring_kib,
                    copy_max: a.copy_max,
                    burst: a.burst,
                    record: a.record.as_deref(),
                    stop: &stop,
                    ready: &ready,
                    duration,
                    sent,
                };
                scope.spawn(move || {
                    let r = job.send();
                    if r.is_err() {
                        // One thread failing ends the run for all.
                        job.stop.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let mut next_progress = Duration::from_secs(1);
        while !handles.iter().all(std::thread::ScopedJoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(20));
            let elapsed = start.elapsed();
            if show_progress && elapsed >= next_progress {
                let sent: u64 = progress.iter().map(|p| p.load(Ordering::Relaxed)).sum();
                say!(
                    "[{:5.1}s] sent {sent} ({:.1} kpps)",
                    elapsed.as_secs_f64(),
                    sent as f64 / elapsed.as_secs_f64() / 1e3
                );
                next_progress += Duration::from_secs(1);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a sending thread panicked"))))
            .collect()
    });
    let threads: Vec<ThreadReport> = results.into_iter().collect::<Result<_>>()?;
    // The longest thread's sending time (the main thread notices the end
    // only at its next progress tick).
    let elapsed = threads.iter().map(|t| t.elapsed_s).fold(f64::MIN_POSITIVE, f64::max);
    let sum = |f: fn(&ThreadReport) -> u64| threads.iter().map(f).sum::<u64>();
    let (sent, bytes) = (sum(|t| t.sent), sum(|t| t.bytes));
    // The first thread's failure ends the run with it (after the report).
    let failure = threads.iter().find_map(|t| t.error.clone());
    // N frames sent at a pace span N - 1 intervals: `--rate 1 -n 3` takes
    // 2 s. The threads' frames interleave from the common start to the
    // longest thread's end.
    let rate_pps = (sent >= 2).then(|| (sent - 1) as f64 / elapsed);
    let report = Report {
        interface: iface.clone(),
        sent,
        bytes,
        unstamped: sum(|t| t.unstamped),
        elapsed_s: elapsed,
        rate_pps,
        rate_gbps: rate_pps.map(|r| r * bytes as f64 * 8.0 / sent as f64 / 1e9),
        ring_full_waits: sum(|t| t.ring_full_waits),
        kicks: sum(|t| t.kicks),
        busy_kicks: sum(|t| t.busy_kicks),
        oversize: sum(|t| t.oversize),
        streams: mix.streams(),
        due: (a.rate > 0).then_some(total),
        interrupted: stop.load(Ordering::Relaxed) && failure.is_none(),
        threads,
    };
    say!(
        "ringwire-gen: sent {} frames ({} bytes) on {} in {:.3} s with {} thread(s): {}; kicks {}, ring-full waits {}, busy kicks {}{}",
        report.sent,
        report.bytes,
        report.interface,
        elapsed,
        report.threads.len(),
        match (report.rate_pps, report.rate_gbps) {
            (Some(pps), Some(gbps)) if pps < 10_000.0 => format!("{pps:.1} frames/s, {gbps:.6} Gbit/s"),
            (Some(pps), Some(gbps)) => format!("{:.1} kpps, {gbps:.3} Gbit/s", pps / 1e3),
            _ => "no rate (fewer than two frames)".to_owned(),
        },
        report.kicks,
        report.ring_full_waits,
        report.busy_kicks,
        if report.unstamped > 0 {
            format!("; {} frames too short for the {SHORT_STAMP_LEN}-byte stamp sent without one", report.unstamped)
        } else {
            String::new()
        }
    );
    if report.interrupted {
        say!("ringwire-gen: interrupted: the figures above are up to the signal");
    } else if let Some(due) = report.due.filter(|&d| report.sent < d && failure.is_none()) {
        say!(
            "ringwire-gen: warning: fell behind the pace of {} frames/s: sent {} of the {due} frames due ({:.1} %); the TX path did not keep up",
            a.rate,
            report.sent,
            report.sent as f64 * 100.0 / due as f64
        );
    }
    if a.json {
        out!("{}", serde_json::to_string(&report)?);
    }
    match failure {
        Some(e) => bail!("{e}"),
        None => Ok(()),
    }
}

/// What a sending thread needs.
#[derive(Clone, Copy)]
struct Job<'a> {
    plan: &'a Plan,
    mix: &'a MixSpec,
    templates: &'a [Template],
    iface: &'a str,
    runts: bool,
    ring_kib: u32,
    copy_max: usize,
    burst: u32,
    record: Option<&'a std::path::Path>,
    stop: &'a AtomicBool,
    /// Passed by every sending thread and the main thread once the rings are set up.
    ready: &'a std::sync::Barrier,
    duration: Option<Duration>,
    /// Frames sent so far, for the progress line (updated once per batch).
    sent: &'a AtomicU64,
}

impl Job<'_> {
    /// Pin this thread, open its TX ring, check the mix against the MTU and
    /// open the recording.
    fn prepare(&self) -> Result<(TxRing, Option<PcapWriter>)> {
        let Job { plan, mix, templates, iface, .. } = *self;
        if let Some(c) = plan.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                bail!("--cores {c}: cannot pin to that core");
            }
        }
        let tx = TxRing::open(&TxRingOptions {
            iface,
            block_size: (self.ring_kib * 1024).min(1 << 20).next_power_of_two(),
            block_count: (self.ring_kib * 1024).div_ceil(1 << 20).max(1),
            frame_size: u32::try_from(
                2048.max(mix.sizes.iter().max().copied().unwrap_or(0) + SLOT_HEADROOM).next_power_of_two(),
            )
            .unwrap_or(16384),
            pad_runts: !self.runts,
            sndbuf: 64 << 20,
            copy_max: self.copy_max,
            skip_refused: false,
        })
        .with_context(|| format!("opening a TX ring on {iface}"))?;
        // Every frame of the mix is checked now, not when its turn comes
        // after thousands of frames.
        if let Some(t) = templates.iter().find(|t| !tx.takes(&t.bytes)) {
            bail!("{}-byte frames exceed the MTU of {iface}", t.bytes.len());
        }
        let recorder = self.record.map(|p| PcapWriter::create(p, 65535)).transpose()?;
        Ok((tx, recorder))
    }

    /// Send this thread's share from its own TX ring; pacing is by batch
    /// against the time the threads were all ready.
    fn send(self) -> Result<ThreadReport> {
        // Every thread sets up its ring before any sends: the pace starts
        // then, so the time a ring takes to map is not made up in a burst.
        let ready = self.prepare();
        self.ready.wait();
        let (mut tx, mut recorder) = ready?;
        let Job { plan, mix, templates, iface, .. } = self;
        let start = Instant::now();
        let rate = plan.rate;
        if rate > 0 {
            // Sleeps end when asked, not up to the default 50 µs later
            // (frames then leave in bursts).
            // SAFETY: prctl(2) with an integer argument; it changes this thread's timer slack only.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        }
        // Its share of the run's count, paced runs' already capped at what is
        // due in the duration (`paced_total`).
        let count = plan.count;
        // Flat out, the duration ends the run; paced, the count does, and
        // the duration only bounds a run that fell behind its pace.
        let stop_at = self.duration.map(|d| if rate > 0 { d + PACED_LATE } else { d });
        let (mut sent, mut bytes, mut full_waits, mut kicks) = (0u64, 0u64, 0u64, 0u64);
        let mut record_err = None;
        let mut seqs = plan.stamp_seqs();
        // A failure while sending (the interface went down, a disk filled
        // under --record) ends this thread with what it sent so far counted:
        // the report is printed, then the error.
        let mut failure: Option<anyhow::Error> = None;
        // The interface's MTU is read again every 10 ms: a frame over a
        // lowered MTU is dropped by the kernel without a word once it is in
        // the ring (PACKET_LOSS), so it must be refused before.
        let mut next_mtu_check = MTU_CHECK;
        // When a frame last found a slot (the kernel frees them as it takes
        // frames), and the busy kicks then.
        let mut pushed_at = (Instant::now(), 0u64);
        'send: while sent < count && !self.stop.load(Ordering::Relaxed) {
            let elapsed = start.elapsed();
            if stop_at.is_some_and(|d| elapsed >= d) {
                break;
            }
            if elapsed >= next_mtu_check {
                next_mtu_check = elapsed + MTU_CHECK;
                if let Err(e) = tx.refresh(None) {
                    failure = Some(anyhow::anyhow!("reading the MTU of {iface}: {e}"));
                    break;
                }
            }
            let due = if rate == 0 { count } else { plan.due_by(elapsed) };
            let mut batch = 0;
            while sent < due.min(count) && batch < self.burst {
                let (ti, pos, _) = plan.frame(mix, sent);
                let t = &templates[ti];
                let n = seqs.next(pos);
                let st = Stamp { flow: t.flow.stream(), seq: n.seq, ts_ns: sys::monotonic_ns() };
                let mut len = 0;
                let pushed = tx.push_with(&t.bytes, |slot| {
                    frames::stamp(t, slot, &st, n.tcp_seq);
                    len = slot.len();
                    if let Some(r) = recorder.as_mut() {
                        if let Err(e) = r.write(sys::realtime_ns(), slot.len() as u32, slot) {
                            record_err.get_or_insert(e);
                        }
                    }
                });
                if !pushed {
                    if tx.oversize() > 0 {
                        // The MTU was lowered while sending (checked at the start).
                        failure = Some(anyhow::anyhow!(
                            "{}-byte frames exceed the MTU of {iface}, lowered while sending (frames queued in the {} ms before may have been dropped by the kernel, uncounted)",
                            t.bytes.len(),
                            MTU_CHECK.as_millis()
                        ));
                        break 'send;
                    }
                    full_waits += 1;
                    break;
                }
                seqs.sent(pos, t);
                sent += 1;
                bytes += len as u64;
                batch += 1;
            }
            if let Some(e) = record_err.take() {
                failure = Some(anyhow::Error::new(e).context("recording sent frames"));
                break;
            }
            // Nothing queued, and nothing due yet: wait for the pace; else kick.
            let ahead = batch == 0 && sent >= due && rate > 0;
            if !ahead {
                if let Err(e) = tx.flush() {
                    failure = Some(anyhow::Error::new(e).context("kicking the TX ring"));
                    break;
                }
            }
            if batch > 0 {
                pushed_at = (Instant::now(), tx.busy());
                kicks += 1;
                self.sent.store(sent, Ordering::Relaxed);
            } else if ahead {
                // Ahead of schedule: wait until the next frame is due. A
                // sleep ends some µs late, so a short wait spins instead
                // (frames would leave in twos and threes); a long one
                // sleeps at most 1 ms at a time, to see a stop.
                let next = plan.due_at(sent);
                if let Some(wait) = next.checked_sub(start.elapsed()) {
                    if wait <= SPIN_WAIT {
                        while start.elapsed() < next {
                            std::hint::spin_loop();
                        }
                    } else {
                        std::thread::sleep((wait - SPIN_WAIT / 2).min(Duration::from_millis(1)));
                    }
                }
            } else {
                // Ring full: the kernel is still sending (kicked above). If no
                // slot has come free for a while, wait a little rather than
                // kick again at once (a receiver that does not take frames
                // holds the veth's slots). If meanwhile every kick was refused
                // (ENOBUFS: the device refuses the frame at the head, a far
                // end with a smaller MTU), give up after a second.
                let idle = pushed_at.0.elapsed();
                if idle < Duration::from_millis(1) {
                    std::thread::yield_now();
                } else if idle >= TX_STALL && tx.busy() > pushed_at.1 + 100 {
                    let largest = templates.iter().map(|t| t.bytes.len()).max().unwrap_or(0);
                    failure = Some(match link_problem(iface) {
                        Ok(problem) => anyhow::anyhow!(
                            "the kernel took no frame from the full TX ring for {} s: {problem}",
                            TX_STALL.as_secs()
                        ),
                        Err(_) => anyhow::anyhow!(
                            "the kernel took no frame from the full TX ring for {} s: {iface}'s device refuses them \
                             (is the far end's MTU smaller than these frames of up to {largest} bytes?)",
                            TX_STALL.as_secs()
                        ),
                    });
                    break;
                } else {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
        // Wait for the kernel to take everything (bounded). The sending
        // time ends when it took the last frame, not when the wait gives up.
        let until = Instant::now() + DRAIN_WAIT;
        let mut in_flight = tx.in_flight();
        let mut done_at = start.elapsed();
        while failure.is_none() && in_flight > 0 && Instant::now() < until {
            if let Err(e) = tx.flush() {
                failure = Some(anyhow::Error::new(e).context("kicking the TX ring"));
            }
            std::thread::sleep(Duration::from_millis(1));
            let now = tx.in_flight();
            if now < in_flight {
                done_at = start.elapsed();
            }
            in_flight = now;
        }
        // The frames the kernel did not take are the last ones queued: they
        // count in none of the figures, and are taken out of the recording.
        let left = tx.in_flight() as u64;
        if left > 0 && failure.is_none() {
            failure = Some(anyhow::anyhow!(
                "{left} frames were still in the TX ring {} s after the last was queued: {}",
                DRAIN_WAIT.as_secs(),
                link_state(iface)
            ));
        }
        let unsent: Vec<_> = (sent - left..sent).map(|j| &templates[plan.frame(mix, j).0]).collect();
        let mut unstamped = seqs.unstamped;
        for t in &unsent {
            // Never shorter than 60 bytes without --runts: fit_sizes raised the sizes.
            bytes -= t.bytes.len() as u64;
            unstamped -= u64::from(t.stamp.is_none());
        }
        if let Some(mut r) = recorder {
            if let Err(e) = r.take_back(unsent.iter().map(|t| t.bytes.len())).and_then(|()| r.flush()) {
                failure.get_or_insert(anyhow::Error::new(e).context("recording sent frames"));
            }
        }
        Ok(ThreadReport {
            elapsed_s: done_at.as_secs_f64(),
            core: plan.core,
            sent: sent - left,
            bytes,
            unstamped,
            ring_full_waits: full_waits,
            kicks,
            busy_kicks: tx.busy(),
            oversize: tx.oversize(),
            left,
            error: failure.map(|e| format!("{e:#}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_makes_due_the_frames_before_the_end() {
        let ms = Duration::from_millis;
        assert_eq!(frames_due(ms(2000), 20_000), 40_000);
        assert_eq!(frames_due(ms(1), 1500), 2, "frames 0 at 0 ms and 1 at 0.67 ms");
        assert_eq!(frames_due(ms(1), 1000), 1, "frame 1 is due at the end, not before");
        assert_eq!(frames_due(Duration::from_secs(86_400), 100_000_000), 8_640_000_000_000);
    }

    #[test]
    fn a_source_mac_is_a_unicast_one() {
        assert_eq!(unicast_mac("02:00:00:00:00:01"), Ok([2, 0, 0, 0, 0, 1]));
        let e = unicast_mac("01:00:00:00:00:01").unwrap_err();
        assert!(e.contains("is a group (multicast) address"), "{e}");
        assert!(unicast_mac("ff:ff:ff:ff:ff:ff").is_err(), "broadcast");
        assert!(Args::try_parse_from(["ringwire-gen", "-i", "x", "--src-mac", "03:00:00:00:00:00"]).is_err());
    }

    #[test]
    fn destination_macs_neither_wrap_nor_send_back_from_a_group_address() {
        check_dst_macs([2, 0, 0, 0, 0, 2], 65536, true).unwrap();
        check_dst_macs([2, 0, 0, 0xff, 0xff, 0xfe], 2, false).unwrap();
        check_dst_macs([0xff; 6], 1, false).unwrap();
        check_dst_macs([1, 0, 0x5e, 0, 0, 1], 16, false).unwrap();
        let e = check_dst_macs([0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], 4, false).unwrap_err().to_string();
        assert!(e.contains("--dst-mac ff:ff:ff:ff:ff:fe with --dst-macs 4: the addresses count up"), "{e}");
        let e = check_dst_macs([1, 0, 0x5e, 0, 0, 1], 1, true).unwrap_err().to_string();
        assert!(e.contains("--dst-mac 01:00:5e:00:00:01 is a group (multicast) address: with --bidirectional"), "{e}");
    }

    #[test]
    fn imix_is_seven_four_one_and_interleaved() {
        let v = sizes("imix").unwrap();
        let n = |s: usize| v.iter().filter(|&&x| x == s).count();
        assert_eq!((n(60), n(590), n(1514)), (7, 4, 1));
        assert!(v.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])), "no size three times in a row: {v:?}");
    }

    fn kinds(ip: Option<Ip>, l4: Option<L4>, vlan_every: u32) -> Vec<FlowSpec> {
        MixSpec {
            flows: 64,
            first_flow: 0,
            vlan_every,
            ip,
            l4,
            sizes: vec![60],
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            bidirectional: false,
            dst_macs: 1,
        }
        .header_kinds()
    }

    #[test]
    fn a_size_range_past_the_largest_frame_names_its_max() {
        let e = sizes("60-18446744073709551615").unwrap_err().to_string();
        assert_eq!(e, "--size 60-18446744073709551615: MAX 18446744073709551615 bytes is out of range (at most 9018)");
        assert_eq!(sizes("60-74").unwrap(), [60, 62, 64, 66, 68, 70, 72, 74]);
    }

    #[test]
    fn writing_a_file_refuses_the_options_of_sending() {
        let base = ["ringwire-gen", "--pcap-out", "/tmp/x.pcap", "-n", "3"];
        for extra in [
            &["--bitrate", "1M"][..],
            &["--threads", "2"],
            &["--duration", "1"],
            &["--cores", "0"],
            &["--ring-kib", "512"],
            &["--copy-max", "0"],
            &["--burst", "8"],
            &["--progress"],
        ] {
            let e =
                Args::try_parse_from(base.iter().chain(extra)).err().unwrap_or_else(|| panic!("{extra:?} accepted"));
            assert!(e.to_string().contains("cannot be used with"), "{extra:?}: {e}");
        }
        assert!(Args::try_parse_from(base).is_ok());
    }

    #[test]
    fn sizes_too_short_for_some_flows_are_named_and_for_all_refused() {
        let all = kinds(None, None, 8);
        // 64 bytes: IPv4/UDP carries the stamp; IPv6/TCP is raised to its 74 bytes of headers.
        let (used, w) = fit_sizes("64", &[64], &all, false).unwrap();
        assert_eq!(used, [64]);
        let w = w.expect("a warning");
        assert!(w.contains("IPv6/TCP 74 B (its headers) unstamped"), "{w}");
        assert!(w.contains("802.1Q IPv6/TCP 78 B (its headers) unstamped"), "{w}");
        assert!(w.contains("IPv6/UDP 64 B unstamped"), "{w}");
        assert!(!w.contains(", IPv4/UDP") && !w.contains("send IPv4/UDP"), "IPv4/UDP is as asked: {w}");
        assert!(!w.contains('\n'), "one line: {w}");
        // 59 without --runts: padded to 60, which holds IPv4/UDP's headers and short stamp.
        let v4 = kinds(Some(Ip::V4), Some(L4::Udp), 0);
        let (used, w) = fit_sizes("59", &[59], &v4, false).unwrap();
        assert_eq!(used, [60]);
        assert!(w.unwrap().contains("IPv4/UDP 60 B (padded; --runts sends runts)"));
        // With --runts it is sent as asked, without a stamp.
        let (used, w) = fit_sizes("59", &[59], &v4, true).unwrap();
        assert_eq!(used, [59]);
        assert!(w.unwrap().contains("IPv4/UDP 59 B unstamped"));
        // Room for the stamp everywhere: no warning.
        assert!(fit_sizes("128", &[128], &all, false).unwrap().1.is_none());
        // Shorter than every flow's headers: refused, naming the real range.
        let e = fit_sizes("20", &[20], &all, true).unwrap_err().to_string();
        assert!(e.contains("(42 to 9018 bytes"), "{e}");
        let v6 = kinds(Some(Ip::V6), None, 0);
        let e = fit_sizes("40-60", &sizes("40-60").unwrap(), &v6, true).unwrap_err().to_string();
        assert!(e.contains("(62 to 9018 bytes: IPv6/UDP headers take 62)"), "{e}");
        // A range names each size it warns about; presets never warn.
        let (_, w) = fit_sizes("62-69", &sizes("62-69").unwrap(), &v6, true).unwrap();
        assert!(w.unwrap().contains("at 62 B: IPv6/UDP 62 B unstamped"));
        assert_eq!(fit_sizes("mix", &MIX_SIZES, &all, false).unwrap(), (MIX_SIZES.to_vec(), None));
        assert!(sizes("9019").is_err() && sizes("9018").is_ok());
    }

    #[test]
    fn bitrates_parse_and_turn_into_frames_per_second() {
        assert_eq!(parse_bitrate("500M").unwrap(), 500e6);
        assert_eq!(parse_bitrate("2.5G").unwrap(), 2.5e9);
        assert_eq!(parse_bitrate("10k").unwrap(), 10e3);
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("0").is_err());
        assert!(parse_bitrate("-1G").is_err());
        assert!(parse_bitrate("NaN").is_err());
        // 1 Gbit/s of 1000-byte frames: 125 000 frames/s; of IMIX (mean 4294 / 12 = 357.8 B): 349 325.
        assert_eq!(frames_per_s(1e9, &[1000]), 125_000);
        assert_eq!(frames_per_s(1e9, &IMIX), 349_325);
        assert_eq!(frames_per_s(1.0, &[1514]), 1);
    }

    /// Only stamped frames take a sequence number: a flow whose short
    /// frames carry no stamp still numbers its stamped ones 0, 1, 2, ...
    /// (they were numbered by frame, so a receiver counted every unstamped
    /// frame as a lost one).
    #[test]
    fn stamp_numbers_skip_the_frames_too_short_for_a_stamp() {
        // IPv6/TCP: 74 bytes of headers, so 60 (raised to 74) has no room; 200 has.
        let mix = MixSpec {
            flows: 3,
            first_flow: 0,
            vlan_every: 0,
            ip: Some(Ip::V6),
            l4: Some(L4::Tcp),
            sizes: vec![60, 200, 200],
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            bidirectional: false,
            dst_macs: 1,
        };
        let templates = mix.templates().unwrap();
        let plan = &plans(3, 1, &[], 90, 0).unwrap()[0];
        let mut seqs = plan.stamp_seqs();
        let mut numbers = vec![Vec::new(); 3];
        let mut unstamped = 0;
        // Each TCP stream's frames follow each other in sequence space, the
        // frames without a stamp included.
        let mut tcp_next = [1u32; 3];
        for j in 0..90 {
            let (ti, pos, _) = plan.frame(&mix, j);
            let stamped = templates[ti].stamp.is_some();
            if stamped {
                numbers[pos].push(seqs.next(pos).seq);
            } else {
                unstamped += 1;
            }
            assert_eq!(seqs.next(pos).tcp_seq, tcp_next[pos], "frame {j}");
            tcp_next[pos] += templates[ti].bytes.len() as u32 - 74;
            seqs.sent(pos, &templates[ti]);
        }
        assert_eq!(unstamped, 30, "a third of the frames are too short for a stamp");
        for n in &numbers {
            assert_eq!(*n, (0..20).collect::<Vec<u64>>(), "every flow's stamped frames, without gaps");
        }
    }

    #[test]
    fn threads_split_flows_frames_and_rate_and_keep_each_flow_in_sequence() {
        let p = plans(10, 3, &[], 100, 1000).unwrap();
        assert_eq!(
            p.iter().map(|p| p.streams.clone()).collect::<Vec<_>>(),
            [vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]
        );
        assert_eq!(p.iter().map(|p| p.count).sum::<u64>(), 100);
        // At 1000 frames/s in all, the threads' frames are 1 ms apart, not sent in threes.
        let due = |p: &Plan, i: u64| p.due_at(i).as_micros();
        assert_eq!(p.iter().map(|p| due(p, 0)).collect::<Vec<_>>(), [0, 1000, 2000]);
        assert_eq!(p.iter().map(|p| due(p, 1)).collect::<Vec<_>>(), [3000, 4000, 5000]);
        let mix = MixSpec {
            flows: 10,
            first_flow: 0,
            vlan_every: 0,
            ip: None,
            l4: None,
            sizes: vec![60, 100],
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            bidirectional: false,
            dst_macs: 1,
        };
        // Every thread counts the frames of each of its flows 0, 1, 2, ... and goes through the sizes per flow.
        for plan in &p {
            let mut next = std::collections::HashMap::new();
            for j in 0..40 {
                let (ti, pos, k) = plan.frame(&mix, j);
                let want = next.entry(pos).or_insert(0u64);
                assert_eq!(k, *want);
                *want += 1;
                assert_eq!(ti, mix.stream_template(plan.streams[pos], k));
            }
        }
        // Paced for 0.3 s at 50 000 frames/s, three threads send 15 000 in all,
        // not 5 001 + 5 001 + 5 000 (each thread's own due frames rounded up).
        let d = Duration::from_millis(300);
        let p = plans(10, 3, &[], paced_total(u64::MAX, Some(d), 50_000), 50_000).unwrap();
        assert_eq!(p.iter().map(|p| p.count).sum::<u64>(), 15_000);
        assert_eq!(paced_total(100, Some(d), 50_000), 100, "a count below what is due");
        assert_eq!(paced_total(u64::MAX, Some(d), 0), u64::MAX, "flat out: the duration ends the run");
        // One thread is the single sender of before.
        let one = &plans(10, 1, &[], u64::MAX, 0).unwrap()[0];
        assert!((0..50).all(|k| one.frame(&mix, k).0 == mix.template_index(k)));
        assert!(plans(2, 3, &[], 10, 0).is_err(), "more threads than flows");
        assert!(plans(10, 2, &[0], 10, 0).is_err(), "a core per thread");
        assert!(plans(10, 2, &[], 10, 1).is_err(), "a rate below one frame/s per thread");
        // Paced, the threads send the run's frames in turn on one schedule,
        // whatever the rate's remainder: the run's frame g is due at g / rate,
        // and every thread is done by the run's end (at 5 frames/s over two
        // threads one sent 10 frames at 3/s and the other 10 at 2/s, past the end).
        for (count, rate, threads) in [(20, 5, 2), (9, 3, 2), (14, 7, 3), (100, 1000, 3), (1_000_003, 999, 7)] {
            let p = plans(10, threads, &[], count, rate).unwrap();
            assert_eq!(p.iter().map(|p| p.count).sum::<u64>(), count, "{count} at {rate}/s");
            let mut due: Vec<u128> =
                p.iter().flat_map(|plan| (0..plan.count.min(50)).map(|i| plan.due_at(i).as_nanos())).collect();
            due.sort_unstable();
            let n = due.len().min(50);
            assert!(
                (0..n).all(|g| due[g] == (g as u128 * 1_000_000_000).div_ceil(u128::from(rate))),
                "{count} at {rate}/s: {:?}",
                &due[..n]
            );
            for plan in &p {
                let last = plan.due_at(plan.count - 1);
                assert!(last.as_nanos() < u128::from(count) * 1_000_000_000 / u128::from(rate), "{count} at {rate}/s");
                // What is due by a time counts the frames due at or before it.
                assert_eq!(plan.due_by(last), plan.count, "{count} at {rate}/s");
                assert_eq!(plan.due_by(Duration::ZERO), u64::from(plan.offset == 0));
            }
        }
    }
}
