//! `ringwire-bench`: capture throughput and latency of ringwire beside
//! tcpdump and netsniff-ng, measured in one run on a veth lab of its own.
//!
//! The lab is made NIC-like (GRO on the receiving end, TSO off on the
//! sending end, threaded NAPI pinned to the capture core), so the receive
//! work lands on the capture core as it would with a real NIC. The
//! generator (`ringwire-gen`, flat out or at each rate of a sweep) is pinned
//! to one core, every receiver to the other; receivers are measured
//! alternately, round after round, and medians are reported as a table, a
//! JSON file and an SVG plot. `--gen-compare` measures ringwire-gen against
//! trafgen instead; `--report FILE.json` renders an earlier run's file.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt as _;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use ringwire_bench::{
    cpusample::CoreSampler,
    frames::{Ip, MixSpec, L4},
    plot::{Chart, Series},
    stream::{self, StreamError, StreamLatency},
};
use ringwire_engine::{
    config::{RingConfig, MAX_CPU_LATENCY_US},
    lab::{self, Lab},
    pcapio::{PcapIoError, PcapReader},
    probe::HistSnap,
    sys,
};
use ringwire_engine::{out, out_raw, say};

/// Measure capture throughput of ringwire, tcpdump and netsniff-ng side by side.
#[derive(Parser)]
#[command(
    version,
    about = "Capture throughput and latency of ringwire beside tcpdump and netsniff-ng, on a veth lab of its own"
)]
struct Args {
    /// Frame sizes to test (bytes without FCS).
    #[arg(long, value_delimiter = ',', default_value = "64,1514")]
    sizes: Vec<usize>,
    /// Seconds of traffic per measurement.
    #[arg(long, default_value_t = 4.0)]
    duration: f64,
    /// Rounds (each receiver is measured once per round and size).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Receivers: none, ringwire-count, ringwire-pcap, tcpdump, netsniff-ng;
    /// ringwire-kclass and ringwire-uclass count the frames to the first
    /// destination MAC, selected by the eBPF classifier in the kernel or by a
    /// pcap-filter in userspace (use with --dst-macs). With latency:
    /// ringwire-latency (block ring, latency probe), ringwire-lowlat
    /// (low-latency frame ring, latency probe), tcpdump-stream (`tcpdump -U
    /// -w -`, its output timed as it is read), netsniff-ng-stream
    /// (`netsniff-ng --out -`, timed the same way; it prints no summary
    /// then, so its drops are not known).
    #[arg(long, value_delimiter = ',', default_value = "none,ringwire-count,ringwire-pcap,tcpdump,netsniff-ng")]
    tools: Vec<String>,
    /// Core for the generator.
    #[arg(long, default_value_t = 0)]
    gen_core: usize,
    /// Core for the receiver (and, unless --napi-core, the veth NAPI thread).
    #[arg(long, default_value_t = 1)]
    cap_core: usize,
    /// Core for the veth's NAPI thread, the receive path a NIC's interrupt
    /// would run (default: the capture core, as a NIC whose interrupts land
    /// there). Moving it to the generator's core models the low-latency
    /// layout where interrupts are kept off the core a capture busy-polls.
    #[arg(long)]
    napi_core: Option<usize>,
    /// Run the veth's NAPI thread under SCHED_FIFO (priority 50), as a NIC's
    /// receive softirq preempts whatever task runs on its core. Under
    /// SCHED_OTHER a busy generator on that core delays it.
    #[arg(long)]
    napi_fifo: bool,
    /// Most frames ringwire-gen hands the kernel per kick (its --burst).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    gen_burst: u32,
    /// ringwire-gen's --copy-max: frames up to this many bytes are copied
    /// into the kernel's socket buffer, longer ones lent to it as TX ring
    /// pages (0: lend all; default: ringwire-gen's, copy all)
    #[arg(long)]
    gen_copy_max: Option<u32>,
    /// Directory for capture files (tmpfs keeps the disk out of the measurement).
    #[arg(long, default_value = "/dev/shm")]
    out_dir: PathBuf,
    /// Write all runs and medians as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Offered rates to sweep: frames/s, `N%` of the generator's maximum
    /// at that size (measured first, with no receiver), or 0 for flat out.
    #[arg(long, alias = "rate", value_delimiter = ',', default_value = "0")]
    rates: Vec<String>,
    /// Write an SVG plot (received vs offered rate; latency percentiles) here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Render the tables (and `--plot`) of an earlier run's JSON file; measure nothing.
    #[arg(long, conflicts_with = "gen_compare")]
    report: Option<PathBuf>,
    /// Measure ringwire-gen against trafgen (netsniff-ng's generator), flat
    /// out on the same core of the same lab, instead of the receivers.
    #[arg(long)]
    gen_compare: bool,
    /// ringwire receivers: a consumer filter (pcap-filter, `builtin:` or
    /// `plugin:`) on the counting, writing and latency consumers.
    #[arg(long)]
    ringwire_filter: Option<String>,
    /// ringwire receivers: the RX block retire timeout in ms (block mode).
    #[arg(long)]
    retire_ms: Option<u32>,
    /// ringwire-lowlat: how its worker waits (io-uring sleeps, busy-poll spins
    /// on the capture core, which it then shares with the veth NAPI thread).
    #[arg(long, default_value = "io-uring", value_parser = ["io-uring", "busy-poll"])]
    lowlat_wait: String,
    /// ringwire-lowlat: the CPU latency request its engine holds while it
    /// runs, in microseconds (`engine.cpu_latency_us`: at 0 idle cores poll
    /// instead of halting), or `off`.
    #[arg(long, default_value = "0", value_parser = parse_cpu_latency)]
    lowlat_cpu_latency: CpuLatency,
    /// Hold a CPU latency request of this many microseconds
    /// (/dev/cpu_dma_latency) during the whole run, for every receiver and
    /// the generator alike: compares peers under the condition ringwire's
    /// low-latency mode sets for itself.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_CPU_LATENCY_US)))]
    cpu_latency_us: Option<u32>,
    /// ringwire: RX block size in KiB (default: the engine's default).
    #[arg(long)]
    block_kib: Option<u32>,
    /// ringwire: RX blocks per ring (default: the engine's default).
    #[arg(long)]
    blocks: Option<u32>,
    /// ringwire-pcap: the pcap consumer's queue in MiB (default: the engine's
    /// default); to compare at the memory a peer holds (netsniff-ng sizes its
    /// ring from the link speed: 2.3 GiB on a 10 Gbit/s veth).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    queue_mb: Option<u32>,
    /// ringwire-pcap: the pcap writer's real-time priority
    /// (`engine.consumer_rt_priority`; 0: normally scheduled, at
    /// `consumer_nice`; default: the engine's default).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=99))]
    consumer_rt_priority: Option<u8>,
    /// ringwire receivers: the workers' real-time priority
    /// (`engine.worker_rt_priority`; 0: normally scheduled; default: the
    /// engine's default).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=99))]
    worker_rt_priority: Option<u8>,
    /// The generator spreads its flows over this many destination MACs
    /// (10: the classifier receivers keep one frame in ten).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    dst_macs: u32,
    /// Measure receivers' CPU time by sampling the capture core every this
    /// many microseconds of CPU (perf's software clock), from the
    /// generator's start until the receiver has exited; 0: from getrusage
    /// alone, which on this kind of kernel is itself sampled, 250 times a
    /// second, over the receiver's whole life. The getrusage figures are
    /// always in the JSON (`rusage_*`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    cpu_sample_us: u32,
}

/// `--lowlat-cpu-latency`: microseconds, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct CpuLatency(Option<u32>);

fn parse_cpu_latency(s: &str) -> Result<CpuLatency, String> {
    if s == "off" {
        return Ok(CpuLatency(None));
    }
    match s.parse::<u32>() {
        Ok(us) if us <= MAX_CPU_LATENCY_US => Ok(CpuLatency(Some(us))),
        _ => Err(format!("`{s}`: microseconds (0..={}) or `off`", MAX_CPU_LATENCY_US)),
    }
}

/// What this tool's lab names start with.
const LAB_PREFIX: &str = "rwb";

/// The generator's first destination MAC: the one the classifier receivers keep.
const KEEP_MAC: &str = "02:00:00:00:00:02";

#[derive(Debug, Clone, Default, serde::Serialize)]
struct Run {
    tool: String,
    size: usize,
    /// The rate asked of the generator (frames/s; 0: flat out).
    rate: u64,
    /// How the rate was given (`0`, `1000`, `50%`).
    rate_spec: String,
    round: usize,
    /// Frames the generator offered: sender veth tx_packets + tx_dropped.
    offered: u64,
    /// Frames that got through veth to the receiving interface.
    delivered_to_iface: u64,
    /// Frames captured: records in the tool's pcap file, or ringwire's counter for count-only.
    captured: u64,
    /// What the tool itself reports it captured.
    claimed: u64,
    /// Drops the tool reports: its kernel socket's ring was full, plus
    /// `engine_drops`.
    tool_drops: u64,
    /// Of `tool_drops`, frames the engine itself dropped after the kernel
    /// gave them over: ringwire's consumer queue was full. Peers have no such
    /// stage (0).
    engine_drops: u64,
    /// Frames the NIC-like veth ring dropped (sender tx_dropped + receiver rx_dropped).
    veth_drops: u64,
    /// Frames that reached the receiving interface and are neither captured
    /// nor in the tool's drop count: lost where the tool does not say (a
    /// ring it never wrote out at its stop, a filter). A few either way are
    /// frames of the lab's own that passed the interface before or after
    /// the counters were read. 0 with no receiver.
    unaccounted: i64,
    /// MiB of packet rings the tool mapped.
    ring_mib: f64,
    /// Tool's user CPU time, ns per captured frame (sampled, see `cpu_source`).
    user_ns_per_frame: f64,
    /// Tool's system CPU time, ns per captured frame (sampled, see `cpu_source`).
    sys_ns_per_frame: f64,
    /// Everything that ran on the capture core (the tool, the kernel's
    /// receive path and anything else there), ns per captured frame; only
    /// when sampled.
    core_ns_per_frame: Option<f64>,
    /// Where the CPU figures come from: `sampled` (the capture core, every
    /// `--cpu-sample-us`, while traffic ran and the tool stopped) or
    /// `rusage` (getrusage over the tool's whole life).
    cpu_source: String,
    /// Samples the kernel could not store: the sampled figures are low by this many periods.
    cpu_samples_lost: u64,
    /// getrusage's user CPU time over the tool's life, ns per captured frame.
    rusage_user_ns_per_frame: f64,
    /// getrusage's system CPU time over the tool's life, ns per captured frame.
    rusage_sys_ns_per_frame: f64,
    /// Captured frames per second.
    captured_pps: f64,
    /// Offered frames per second.
    offered_pps: f64,
    /// Tool's user CPU time, ns per offered frame.
    user_ns_per_offered: f64,
    /// Tool's system CPU time, ns per offered frame.
    sys_ns_per_offered: f64,
    /// One-way latency, for the receivers that measure it.
    latency: Option<Latency>,
    /// A busy-polling ringwire worker: how long it was kept off its core
    /// while the generator ran (other tasks, the hypervisor or interrupts).
    worker_off_core: Option<ringwire_bench::offcore::OffCore>,
    /// Why this measurement failed (the report is then partial).
    error: Option<String>,
}

/// Latency of one measurement, ns.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Latency {
    /// Send → the consumer (ringwire's probe; the bench reading a peer's stream).
    consumer: HistSnap,
    /// Send → the kernel's receive timestamp.
    kernel: HistSnap,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            say!("ringwire-bench: error: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let p = std::env::current_exe()?.with_file_name(name);
    if !p.exists() {
        bail!("{} not found (cargo build --release --workspace --bins)", p.display());
    }
    Ok(p)
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

fn ns_read(ns: &str, path: &str) -> Result<u64> {
    let s = lab::run(&["ip", "netns", "exec", ns, "cat", path])?;
    s.trim().parse().with_context(|| format!("reading {path} in {ns}"))
}

struct Lab2 {
    _lab: Lab,
    ns_g: String,
    ns_c: String,
    vg: String,
    vc: String,
    /// The veth's NAPI threads as the kernel reports them once pinned.
    napi: Vec<NapiThread>,
}

/// A NAPI thread's placement and scheduling, read back from `/proc`.
#[derive(serde::Serialize)]
struct NapiThread {
    name: String,
    /// `Cpus_allowed_list` from /proc/PID/status.
    cpus: String,
    /// `SCHED_OTHER`, `SCHED_FIFO`, ... (from the policy field of /proc/PID/stat).
    policy: &'static str,
    /// The real-time priority (0 under SCHED_OTHER).
    rt_priority: u32,
}

impl NapiThread {
    /// Read thread `pid`'s CPU list and scheduling policy from `/proc`.
    fn read(pid: &str, name: &str) -> Result<Self> {
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading a NAPI thread's status")?;
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_owned())
            .context("no Cpus_allowed_list in a NAPI thread's status")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading a NAPI thread's stat")?;
        let Some(sched) = sys::ThreadSched::parse(&stat) else {
            bail!("unexpected /proc/{pid}/stat: {stat}");
        };
        let (policy, rt_priority) = (sched.policy_name(), sched.rt_priority);
        Ok(Self { name: name.to_owned(), cpus, policy, rt_priority })
    }
}

/// Every process: (pid, command name).
fn processes() -> Result<Vec<(String, String)>> {
    Ok(lab::run(&["ps", "-eo", "pid=,comm="])?
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect())
}

/// The real-time priority `--napi-fifo` gives the veth's NAPI thread (the
/// kernel's default for threaded IRQ handlers).
const NAPI_FIFO_PRIORITY: u32 = 50;

/// The lab: two namespaces joined by a veth pair, NIC-like (its NAPI thread
/// pinned to `napi_core`) unless `plain`.
fn build_lab(napi_core: usize, fifo: bool, plain: bool) -> Result<Lab2> {
    let mut lab = Lab::new(LAB_PREFIX);
    let ns_g = lab.namespace("gen")?;
    let ns_c = lab.namespace("cap")?;
    let (vg, vc) = lab.veth(&ns_g, &ns_c)?;
    if plain {
        return Ok(Lab2 { _lab: lab, ns_g, ns_c, vg, vc, napi: Vec::new() });
    }
    // NIC-like veth (../shared/NOTES.md): NAPI on the receiver, TSO off on the sender.
    lab::run(&["ip", "netns", "exec", &ns_c, "ethtool", "-K", &vc, "gro", "on"])?;
    lab::run(&["ip", "netns", "exec", &ns_g, "ethtool", "-K", &vg, "tso", "off"])?;
    lab::run(&["ip", "netns", "exec", &ns_c, "sh", "-c", &format!("echo 1 > /sys/class/net/{vc}/threaded")])?;
    std::thread::sleep(Duration::from_millis(200));
    let mut napi = Vec::new();
    for (pid, comm) in processes()? {
        if comm.starts_with(&format!("napi/{vc}-")) {
            lab::run(&["taskset", "-pc", &napi_core.to_string(), &pid])?;
            if fifo {
                lab::run(&["chrt", "-f", "-p", &NAPI_FIFO_PRIORITY.to_string(), &pid])?;
            }
            napi.push(NapiThread::read(&pid, &comm)?);
        }
    }
    if napi.is_empty() {
        bail!("no napi/{vc}-* thread found: threaded NAPI did not start");
    }
    Ok(Lab2 { _lab: lab, ns_g, ns_c, vg, vc, napi })
}

/// How long a receiver may take to stop after SIGINT before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(15);

/// Wait for a child that was asked to stop and return (exit ok, user ns, sys
/// ns); after [`STOP_PATIENCE`] it is killed and that is an error.
fn wait_rusage(child: &mut Child) -> Result<(bool, u64, u64)> {
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + STOP_PATIENCE;
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: polls our own child; `status` and `ru` are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("it did not stop within {} s of SIGINT and was killed", STOP_PATIENCE.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    Ok((libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, tv(ru.ru_utime), tv(ru.ru_stime)))
}

/// Every line the receiver printed, once both its output streams ended (2 s at most).
fn all_lines(rx: &std::sync::mpsc::Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break, // disconnected (both readers done) or out of time
        }
    }
    lines
}

struct Receiver {
    child: Option<Child>,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    stats_json: Option<PathBuf>,
    /// The pcap file it writes, if it writes one.
    file: Option<PathBuf>,
    /// The `-stream` peers: the thread reading and timing their output.
    stream: Option<std::thread::JoinHandle<Result<StreamLatency, StreamError>>>,
}

/// MiB of packet rings process `pid` has mapped: its `socket:[...]`
/// mappings (an AF_PACKET RX or TX ring is the only kind of socket a
/// process maps). What a receiver holds in the kernel to ride out a burst:
/// tcpdump's default is 2 MiB, netsniff-ng sizes its ring from the link
/// speed (2.3 GiB for a 10 Gbit/s veth), ringwire's default is 64 MiB per
/// worker (plus, for pcap writing, the consumer's 32 MiB queue).
fn mapped_ring_mib(pid: u32) -> f64 {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { return 0.0 };
    let bytes: u64 = maps
        .lines()
        .filter(|l| l.contains(" socket:["))
        .filter_map(|l| {
            let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
            u64::from_str_radix(hi, 16).ok()?.checked_sub(u64::from_str_radix(lo, 16).ok()?)
        })
        .sum();
    bytes as f64 / f64::from(1u32 << 20)
}

impl Drop for Receiver {
    /// A receiver left running by an error or an interruption is killed, so
    /// no stray process outlives the run (its namespace goes with the lab).
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Count the records of a pcap file with the engine's reader. A record cut
/// off at the end (a tool stopped mid-write) is not a captured frame.
fn count_records(path: &Path) -> Result<u64> {
    let mut r = PcapReader::open(path)?;
    let mut n = 0;
    loop {
        match r.next_ref() {
            Ok(Some(_)) => n += 1,
            Ok(None) | Err(PcapIoError::Truncated { .. }) => return Ok(n),
            Err(e) => return Err(e).with_context(|| format!("counting the records of {}", path.display())),
        }
    }
}

/// Where the frames a receiver captures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Nowhere: nobody captures.
    Nothing,
    /// ringwire's consumer counters (its stats file).
    Counter,
    /// A pcap file, whose records the bench counts.
    File,
    /// A pcap stream on the tool's stdout, read and timed by the bench.
    Stream,
}

/// When a started receiver is ready for traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    /// Nobody to wait for.
    Now,
    /// ringwire writes its ready file.
    File,
    /// The peer prints its "listening" banner.
    Banner,
    /// The peer prints nothing (its stdout is the stream): once its packet
    /// ring is mapped (it binds right after).
    RingMapped,
}

/// What the bench knows of a receiver.
#[derive(Debug, Clone, Copy)]
struct Tool {
    /// Its name on the command line and in the reports.
    name: &'static str,
    /// The program it needs installed (`None`: ringwire's own, or nobody).
    program: Option<&'static str>,
    /// Where its captured frames are counted.
    output: Output,
    /// When it is ready.
    ready: Ready,
    /// The words after the numbers in its summary: (frames it says it
    /// captured, frames it says it dropped). `None`: it prints no summary.
    summary: Option<(&'static str, &'static str)>,
}

const fn ringwire(name: &'static str, output: Output) -> Tool {
    Tool { name, program: None, output, ready: Ready::File, summary: None }
}

const TCPDUMP_SUMMARY: Option<(&str, &str)> = Some(("packets captured", "dropped by kernel"));

/// Every receiver this bench knows.
const TOOLS: [Tool; 11] = [
    Tool { name: "none", program: None, output: Output::Nothing, ready: Ready::Now, summary: None },
    ringwire("ringwire-count", Output::Counter),
    ringwire("ringwire-pcap", Output::File),
    ringwire("ringwire-kclass", Output::Counter),
    ringwire("ringwire-uclass", Output::Counter),
    ringwire("ringwire-latency", Output::Counter),
    ringwire("ringwire-lowlat", Output::Counter),
    Tool {
        name: "tcpdump",
        program: Some("tcpdump"),
        output: Output::File,
        ready: Ready::Banner,
        summary: TCPDUMP_SUMMARY,
    },
    Tool {
        name: "tcpdump-stream",
        program: Some("tcpdump"),
        output: Output::Stream,
        ready: Ready::Banner,
        summary: TCPDUMP_SUMMARY,
    },
    Tool {
        name: "netsniff-ng",
        program: Some("netsniff-ng"),
        output: Output::File,
        ready: Ready::Banner,
        summary: Some(("packets passed filter", "packets failed filter")),
    },
    Tool {
        name: "netsniff-ng-stream",
        program: Some("netsniff-ng"),
        output: Output::Stream,
        ready: Ready::RingMapped,
        summary: None,
    },
];

/// The receiver named `name`.
fn tool(name: &str) -> Result<&'static Tool> {
    TOOLS
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("unknown receiver `{name}` (one of: {})", TOOLS.map(|t| t.name).join(", ")))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The engine's config for ringwire receiver `tool` on interface `iface`.
fn ringwire_config(tool: &str, iface: &str, a: &Args, file: &Path, stats: &Path) -> String {
    let core = a.cap_core;
    let counter = "[[consumers]]\nname = \"count\"\nkind = \"counter\"\n";
    let latency = "[[consumers]]\nname = \"lat\"\nkind = \"latency\"\n";
    let (port_extra, consumer) = match tool {
        "ringwire-count" => (String::new(), counter.to_owned()),
        "ringwire-kclass" => (
            "filter = \"classifier\"\n".to_owned(),
            format!(
                "{counter}[classifier]\ndefault = \"drop\"\n\
                 [[classifier.entries]]\nmac = \"{KEEP_MAC}\"\naction = \"pass\"\n"
            ),
        ),
        "ringwire-uclass" => (String::new(), format!("{counter}filter = \"ether dst {KEEP_MAC}\"\n")),
        "ringwire-latency" => (String::new(), latency.to_owned()),
        "ringwire-lowlat" => ("low_latency = true\n".to_owned(), latency.to_owned()),
        _ => {
            let queue = a.queue_mb.map(|q| format!("queue_mb = {q}\n")).unwrap_or_default();
            (
                String::new(),
                format!(
                    "[[consumers]]\nname = \"pcap\"\nkind = \"pcap\"\npath = {}\n{queue}",
                    toml_string(&file.to_string_lossy())
                ),
            )
        }
    };
    let consumer = match (&a.ringwire_filter, tool) {
        (Some(f), "ringwire-count" | "ringwire-pcap" | "ringwire-latency" | "ringwire-lowlat") => {
            format!("{consumer}filter = {}\n", toml_string(f))
        }
        _ => consumer,
    };
    let lowlat = tool == "ringwire-lowlat";
    let wait = if lowlat { a.lowlat_wait.as_str() } else { "io-uring" };
    let mut qos =
        a.lowlat_cpu_latency.0.filter(|_| lowlat).map(|us| format!("cpu_latency_us = {us}\n")).unwrap_or_default();
    for (key, prio) in [("consumer_rt_priority", a.consumer_rt_priority), ("worker_rt_priority", a.worker_rt_priority)]
    {
        if let Some(p) = prio {
            qos.push_str(&format!("{key} = {p}\n"));
        }
    }
    let mut ring = String::from("[ring]\n");
    if let Some(k) = a.block_kib {
        ring.push_str(&format!("block_size = {}\n", k * 1024));
    }
    if let Some(n) = a.blocks {
        ring.push_str(&format!("block_count = {n}\n"));
    }
    if let Some(ms) = a.retire_ms {
        ring.push_str(&format!("retire_timeout_ms = {ms}\n"));
    }
    format!(
        "[engine]\nworkers = [{core}]\nwait = \"{wait}\"\n{qos}stats_json = {}\n{ring}[[ports]]\nuri = {}\n{port_extra}{consumer}",
        toml_string(&stats.to_string_lossy()),
        toml_string(&format!("afpacket:{iface}"))
    )
}

fn start_receiver(spec: &Tool, l: &Lab2, a: &Args, size: usize) -> Result<Receiver> {
    let tool = spec.name;
    let core = a.cap_core.to_string();
    let file = receiver_file(&a.out_dir, tool, size, "pcap");
    let stats = receiver_file(&a.out_dir, tool, size, "json");
    let ready = receiver_file(&a.out_dir, tool, size, "ready");
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &l.ns_c, "taskset", "-c", &core]);
    let mut stats_json = None;
    match tool {
        t if t.starts_with("ringwire-") => {
            let cfg = receiver_file(&a.out_dir, tool, size, "toml");
            std::fs::write(&cfg, ringwire_config(tool, &l.vc, a, &file, &stats))?;
            cmd.arg(sibling("ringwire")?)
                .args(["run", "--log", "warn", "--control-socket", "none"])
                .arg(&cfg)
                .arg("--ready-file")
                .arg(&ready);
            stats_json = Some(stats);
        }
        "tcpdump" => {
            cmd.args(["tcpdump", "-n", "-i", &l.vc, "-w"]).arg(&file);
        }
        "tcpdump-stream" => {
            // Packet-buffered output to a pipe read by this process: what a
            // program downstream of tcpdump sees, block timeout included.
            cmd.args(["tcpdump", "-n", "-U", "-i", &l.vc, "-w", "-"]);
        }
        "netsniff-ng" => {
            cmd.args(["netsniff-ng", "--in", &l.vc, "--out"]).arg(&file).args(["--silent", "--bind-cpu", &core]);
        }
        "netsniff-ng-stream" => {
            // pcap on stdout, written as netsniff-ng sees fit to flush it.
            // --no-sock-mem: the sysctls are read-only in a namespace, and
            // its complaint about that would land in the stream at exit.
            cmd.args(["netsniff-ng", "--in", &l.vc, "--out", "-", "--silent", "--no-sock-mem", "--bind-cpu", &core]);
        }
        other => bail!("unknown tool {other}"),
    }
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {tool}"))?;
    // Summaries come on stderr (tcpdump) or stdout (netsniff-ng): read both,
    // unless stdout is the capture stream itself.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("piped");
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
    let mut stream = None;
    let mut texts = vec![err];
    if spec.output == Output::Stream {
        let cap_core = a.cap_core;
        stream = Some(std::thread::spawn(move || {
            // The reader is the stream's consumer: it runs on the capture core too.
            core_affinity::set_for_current(core_affinity::CoreId { id: cap_core });
            stream::measure(std::io::BufReader::with_capacity(1 << 16, out))
        }));
    } else {
        texts.push(Box::new(out));
    }
    for text in texts {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(text).lines().map_while(Result::ok) {
                for part in line.split('\r') {
                    let _ = tx.send(part.trim().to_owned());
                }
            }
        });
    }
    let mut r = Receiver { child: Some(child), stderr_lines: rx, stats_json, file: None, stream };
    // Ready as the tool tells (see `Ready`); five seconds at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    // What the tool said before it was ready: its error, if it exits.
    let mut said: Vec<String> = Vec::new();
    loop {
        let line = r.stderr_lines.recv_timeout(Duration::from_millis(20)).ok();
        said.extend(line.iter().filter(|l| !l.is_empty()).cloned());
        let pid = r.child.as_ref().expect("running").id();
        if match spec.ready {
            Ready::Now => true,
            Ready::File => ready.exists(),
            Ready::Banner => line.is_some_and(|l| l.contains("listening on") || l.contains("Running!")),
            Ready::RingMapped => mapped_ring_mib(pid) > 0.0,
        } {
            break;
        }
        if let Some(st) = r.child.as_mut().expect("running").try_wait()? {
            r.child = None;
            // The readers may still hold its last lines: take them until
            // they have been quiet for 100 ms (a second at most).
            let until = Instant::now() + Duration::from_secs(1);
            while let Ok(l) = r.stderr_lines.recv_timeout(Duration::from_millis(100)) {
                said.extend((!l.is_empty()).then_some(l));
                if Instant::now() > until {
                    break;
                }
            }
            let why = if said.is_empty() { "it printed nothing".to_owned() } else { said.join(" | ") };
            bail!("{tool} exited at start ({st}): {why}");
        }
        if Instant::now() > deadline {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    r.file = (spec.output == Output::File).then_some(file);
    Ok(r)
}

fn number_before(lines: &[String], needle: &str) -> Option<u64> {
    lines.iter().find(|l| l.contains(needle)).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok())
}

/// The generator's command for a measurement.
fn gen_command(l: &Lab2, a: &Args, size: usize, rate: u64, duration: f64) -> Result<Command> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &l.ns_g])
        .arg(sibling("ringwire-gen")?)
        .args(["-i", &l.vg, "--rate", &rate.to_string(), "--size", &size.to_string()])
        .args(["--ip", "4", "--l4", "udp", "--vlan-every", "0", "--flows", "64"])
        .args(["--duration", &duration.to_string(), "--cores", &a.gen_core.to_string()])
        .args(["--burst", &a.gen_burst.to_string()])
        .args(a.gen_copy_max.iter().flat_map(|c| ["--copy-max".to_owned(), c.to_string()]))
        .args(["--dst-mac", KEEP_MAC, "--dst-macs", &a.dst_macs.to_string()]);
    Ok(c)
}

/// Sender veth counters: (tx_packets, tx_dropped).
fn tx_counters(l: &Lab2) -> Result<(u64, u64)> {
    let p = format!("/sys/class/net/{}/statistics/", l.vg);
    Ok((ns_read(&l.ns_g, &(p.clone() + "tx_packets"))?, ns_read(&l.ns_g, &(p + "tx_dropped"))?))
}

fn measure(
    tool: &str,
    l: &Lab2,
    a: &Args,
    size: usize,
    rate: (u64, &str),
    round: usize,
    stop: &AtomicBool,
) -> Result<Run> {
    let spec = self::tool(tool)?;
    let mut rcv = if spec.output == Output::Nothing { None } else { Some(start_receiver(spec, l, a, size)?) };
    let rcv_path = format!("/sys/class/net/{}/statistics/", l.vc);
    let (tx0, txd0) = tx_counters(l)?;
    let rx0 = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_packets"))?;
    let rxd0 = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_dropped"))?;
    let sampler = match (&rcv, a.cpu_sample_us) {
        (None, _) | (_, 0) => None,
        _ => match CoreSampler::start(&[a.cap_core], Duration::from_micros(a.cpu_sample_us.into())) {
            Ok(s) => Some(s),
            Err(e) => {
                say!("{tool}: CPU time from getrusage only: {e}");
                None
            }
        },
    };
    // A worker that busy-polls should run all the time: watch what it loses of its core.
    let off_core = rcv
        .as_ref()
        .and_then(|r| r.child.as_ref())
        .filter(|_| tool == "ringwire-lowlat" && a.lowlat_wait == "busy-poll")
        .and_then(|c| {
            let Some(&tid) = ringwire_bench::offcore::threads_named(c.id(), "rw-worker").first() else {
                say!("{tool}: no rw-worker thread found: its time off the core is not measured");
                return None;
            };
            ringwire_bench::offcore::OffCoreProbe::start(c.id(), tid, a.cap_core)
                .map_err(|e| say!("{tool}: its worker's time off the core is not measured: {e}"))
                .ok()
        });
    let mut child = gen_command(l, a, size, rate.0, a.duration)?
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ringwire-gen")?;
    // A SIGINT or SIGTERM to the bench alone (not its process group) ends
    // the generator too, and the round with it, instead of after --duration.
    let mut interrupted = false;
    while child.try_wait()?.is_none() {
        if stop.load(Ordering::Relaxed) && !interrupted {
            interrupted = true;
            // SAFETY: kill(2) on our own child's pid, not yet reaped (try_wait said it runs).
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gen = child.wait_with_output().context("waiting for ringwire-gen")?;
    if interrupted {
        bail!("interrupted");
    }
    if !gen.status.success() {
        bail!("ringwire-gen failed ({}): {}", gen.status, String::from_utf8_lossy(&gen.stderr).trim());
    }
    let worker_off_core = off_core
        .and_then(|p| p.finish().map_err(|e| say!("{tool}: its worker's time off the core is not measured: {e}")).ok());
    // Receivers get longer than libpcap's 1 s block timeout (tcpdump's
    // `pcap_set_timeout`) to hand over the last frames before they are
    // stopped: with 500 ms, tcpdump's last block, never retired, was lost on
    // its stop, and showed as frames missing from no drop column; 1.3 s
    // left a slow or busy machine 300 ms for the timer and the hand-over.
    std::thread::sleep(SETTLE);
    let (tx1, txd1) = tx_counters(l)?;
    let offered = tx1 - tx0 + txd1 - txd0;
    let delivered = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_packets"))? - rx0;
    let veth_drops = txd1 - txd0 + ns_read(&l.ns_c, &(rcv_path + "rx_dropped"))? - rxd0;
    let mut run = Run {
        tool: tool.into(),
        size,
        rate: rate.0,
        rate_spec: rate.1.to_owned(),
        round,
        offered,
        delivered_to_iface: delivered,
        veth_drops,
        offered_pps: offered as f64 / a.duration,
        worker_off_core,
        ..Default::default()
    };
    let (mut user, mut sys) = (0, 0);
    let mut pid = None;
    if let Some(r) = rcv.as_mut() {
        // The child stays in `r` (killed by its Drop on any error) until it has been reaped.
        let child = r.child.as_mut().expect("running");
        if let Some(st) = child.try_wait()? {
            r.child = None;
            let said = match all_lines(&r.stderr_lines) {
                lines if lines.is_empty() => ", saying nothing".to_owned(),
                lines => format!(": {}", lines.join(" | ")),
            };
            bail!("{tool} died during the run ({st}){said}");
        }
        // `ip netns exec` and `taskset` exec the tool: the child is the tool,
        // and its rings are still mapped until it is stopped below.
        run.ring_mib = mapped_ring_mib(child.id());
        pid = Some(child.id());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let waited = wait_rusage(child);
        r.child = None;
        let (ok, u, s) = waited.with_context(|| format!("stopping {tool}"))?;
        (user, sys) = (u, s);
        let lines = all_lines(&r.stderr_lines);
        if let Some(stats) = &r.stats_json {
            if !ok {
                bail!("{tool} failed: {}", lines.join(" | "));
            }
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(stats)?)?;
            let c = &v["consumers"][0];
            run.claimed = c[if spec.output == Output::File { "written" } else { "delivered" }].as_u64().unwrap_or(0);
            run.engine_drops = c["queue_dropped"].as_u64().unwrap_or(0);
            run.tool_drops = v["ports"][0]["kernel_drops"].as_u64().unwrap_or(0) + run.engine_drops;
            if !c["latency"].is_null() {
                run.latency = Some(serde_json::from_value(c["latency"].clone()).context("the probe's figures")?);
            }
        } else if let Some((claimed, dropped)) = spec.summary {
            run.claimed = number_before(&lines, claimed).with_context(|| format!("{tool}'s summary"))?;
            run.tool_drops = number_before(&lines, dropped).unwrap_or(0);
        }
        // Trust the file, not the summary: count what was written.
        run.captured = match (&r.file, r.stream.take()) {
            (Some(f), _) => count_records(f)?,
            (None, Some(h)) => {
                let s = h.join().map_err(|_| anyhow::anyhow!("the stream reader panicked"))??;
                run.latency = Some(Latency { consumer: s.latency.consumer, kernel: s.latency.kernel });
                s.records
            }
            (None, None) => run.claimed,
        };
        if r.stats_json.is_none() && spec.summary.is_none() {
            // No summary to compare with: what it wrote is what it claims.
            run.claimed = run.captured;
        }
        if let Some(f) = &r.file {
            let _ = std::fs::remove_file(f);
        }
    }
    let captured = run.captured;
    if rcv.is_some() {
        run.unaccounted = unaccounted(delivered, captured, run.tool_drops);
    }
    let per = |ns: u64| if captured == 0 { 0.0 } else { ns as f64 / captured as f64 };
    let per_offered = |ns: u64| if offered == 0 { 0.0 } else { ns as f64 / offered as f64 };
    run.rusage_user_ns_per_frame = per(user);
    run.rusage_sys_ns_per_frame = per(sys);
    run.cpu_source = if rcv.is_some() { "rusage" } else { "none" }.into();
    if let (Some(s), Some(pid)) = (sampler, pid) {
        let samples = s.finish();
        (user, sys) = samples.cpu_ns(pid);
        run.cpu_source = "sampled".into();
        run.cpu_samples_lost = samples.lost;
        run.core_ns_per_frame = (captured > 0).then(|| per(samples.busy_ns()));
    }
    run.user_ns_per_frame = per(user);
    run.sys_ns_per_frame = per(sys);
    run.captured_pps = captured as f64 / a.duration;
    run.user_ns_per_offered = per_offered(user);
    run.sys_ns_per_offered = per_offered(sys);
    Ok(run)
}

/// Frames delivered to the interface that a receiver neither captured nor
/// counted as dropped (negative: it captured more than was delivered).
fn unaccounted(delivered: u64, captured: u64, dropped: u64) -> i64 {
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    signed(delivered).saturating_sub(signed(captured)).saturating_sub(signed(dropped))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// How long after the generator ends a round's receiver runs on.
const SETTLE: Duration = Duration::from_millis(2000);

/// Whether `ns` is a name [`build_lab`] gives: `rwb<digits>x<digits>-gen` or `-cap`.
fn is_lab_name(ns: &str) -> bool {
    matches!(Lab::namespace_role(ns, LAB_PREFIX), Some("gen" | "cap"))
}

/// Where a run holds its lock (see [`OnlyRun`]).
const RUN_LOCK: &str = "/run/lock/ringwire-bench.lock";

/// The one ringwire-bench that measures on this machine: two at once
/// would share the cores and measure each other, and write the same
/// files. An advisory lock on [`RUN_LOCK`], held until the run ends (the
/// kernel releases it when a killed run's process goes); the file holds
/// the holder's pid, for the message a second run gives.
struct OnlyRun {
    _lock: std::fs::File,
}

impl OnlyRun {
    fn take() -> Result<Self> {
        use std::io::Read as _;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(RUN_LOCK)
            .with_context(|| format!("opening {RUN_LOCK}"))?;
        if sys::lock_exclusive(&f).is_err() {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let who = match pid.trim() {
                "" => String::new(),
                p => format!(" (pid {p})"),
            };
            bail!(
                "another ringwire-bench{who} is running: two runs at once share the cores and would \
                 measure each other; wait for it to end"
            );
        }
        f.set_len(0)
            .and_then(|()| std::io::Write::write_all(&mut f, format!("{}\n", std::process::id()).as_bytes()))
            .with_context(|| format!("writing {RUN_LOCK}"))?;
        Ok(Self { _lock: f })
    }
}

/// What an earlier run that was killed before it could clean up left
/// behind: lab-named namespaces, the receivers still running in them, and
/// its files in `out_dir`. Called with [`OnlyRun`] held: no other run's.
fn remove_stale_labs(out_dir: &Path) -> Result<()> {
    for ns in Lab::named_namespaces(LAB_PREFIX)?.into_iter().filter(|ns| is_lab_name(ns)) {
        say!("note: removing namespace {ns}, left behind by an earlier run that was killed");
        stop_processes_in(&ns);
        lab::run(&["ip", "netns", "del", &ns])?;
    }
    if let Ok(dir) = std::fs::read_dir(out_dir) {
        for f in dir.flatten().filter(|f| f.file_name().to_string_lossy().starts_with("rwbench-")) {
            say!("note: removing {}, left behind by an earlier run that was killed", f.path().display());
            let _ = std::fs::remove_file(f.path());
        }
    }
    Ok(())
}

/// Stop every process in namespace `ns` (a receiver whose bench was killed
/// runs on there, and would hold the capture core): SIGTERM, up to 3 s to
/// exit, then SIGKILL.
fn stop_processes_in(ns: &str) {
    let pids = || Lab::pids_in(ns);
    let signal = |sig| {
        for pid in pids() {
            say!("note: stopping process {pid}, left running in {ns}");
            // SAFETY: kill(2) with a pid read from `ip netns pids`; no memory is involved.
            unsafe { libc::kill(pid, sig) };
        }
    };
    stop_then_kill(libc::SIGTERM, signal, || !pids().is_empty());
}

/// A rate of the sweep: frames/s, or a share of `max` (the generator's
/// flat-out rate at this size).
fn resolve_rate(spec: &str, max: Option<f64>) -> Result<u64> {
    if let Some(p) = spec.strip_suffix('%') {
        let p: f64 = p.trim().parse().with_context(|| format!("--rates `{spec}`: not a percentage"))?;
        if !(p > 0.0 && p <= 100.0) {
            bail!("--rates `{spec}`: a percentage between 0 and 100");
        }
        let max = max.context("a percentage needs the flat-out rate")?;
        return Ok(((max * p / 100.0).round() as u64).max(1));
    }
    let r: u64 = spec.trim().parse().with_context(|| format!("--rates `{spec}`: frames/s, N% or 0"))?;
    if r > 100_000_000 {
        bail!("--rates `{spec}`: at most 100000000 frames/s");
    }
    Ok(r)
}

/// A child leading its own process group (trafgen forks its sender): the
/// whole group is stopped when this is dropped, on every path: SIGINT, up to
/// 3 s to exit, then SIGKILL.
struct ProcessGroup(Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = -(self.0.id() as libc::pid_t);
        let child = &mut self.0;
        let signal = |sig| {
            // SAFETY: signalling the process group our own child leads (a
            // group that is gone already takes no signal).
            unsafe { libc::kill(group, sig) };
        };
        stop_then_kill(libc::SIGINT, signal, || matches!(child.try_wait(), Ok(None)));
        let _ = self.0.wait();
    }
}

/// Ask with `first`, give `running()` up to 3 s to turn false, then SIGKILL:
/// how the bench ends what it started, or found left running.
fn stop_then_kill(first: libc::c_int, mut signal: impl FnMut(libc::c_int), mut running: impl FnMut() -> bool) {
    signal(first);
    let until = Instant::now() + Duration::from_secs(3);
    while running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(libc::SIGKILL);
}

/// ringwire-gen against trafgen, flat out, same core, same lab.
/// ringwire-gen against trafgen at every size: the rows of the sizes
/// measured, and what stopped the comparison early, if anything (the sizes
/// before it keep their rows).
fn gen_compare(l: &Lab2, a: &Args, stop: &AtomicBool) -> (Vec<serde_json::Value>, Option<String>) {
    let mut rows = Vec::new();
    for &size in &a.sizes {
        match gen_compare_size(l, a, size, stop) {
            Ok(row) => rows.push(row),
            Err(e) => return (rows, Some(format!("{size} bytes: {e:#}"))),
        }
    }
    (rows, None)
}

/// ringwire-gen against trafgen at one frame size, rounds alternated.
fn gen_compare_size(l: &Lab2, a: &Args, size: usize, stop: &AtomicBool) -> Result<serde_json::Value> {
    let mix = MixSpec {
        flows: 1,
        first_flow: 0,
        vlan_every: 0,
        ip: Some(Ip::V4),
        l4: Some(L4::Udp),
        sizes: vec![size],
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        bidirectional: false,
        dst_macs: 1,
    };
    let frame = mix.templates()?[0].bytes.clone();
    let packet = format!("{{ {} }}", frame.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(", "));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        for tool in if round % 2 == 0 { ["ringwire-gen", "trafgen"] } else { ["trafgen", "ringwire-gen"] } {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let (tx0, d0) = tx_counters(l)?;
            let start = Instant::now();
            if tool == "ringwire-gen" {
                let out =
                    gen_command(l, a, size, 0, a.duration)?.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
                if !out.status.success() {
                    bail!("ringwire-gen failed: {}", String::from_utf8_lossy(&out.stderr).trim());
                }
            } else {
                let mut group = ProcessGroup(
                    Command::new("ip")
                        .args(["netns", "exec", &l.ns_g, "taskset", "-c", &a.gen_core.to_string()])
                        .args(["trafgen", "-o", &l.vg, "-P", "1", "--no-cpu-stats", "--notouch-irq"])
                        .arg(&packet)
                        // Its own process group: trafgen signals its whole group when it stops.
                        .process_group(0)
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .context("starting trafgen")?,
                );
                let until = start + Duration::from_secs_f64(a.duration);
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    if let Some(st) = group.0.try_wait()? {
                        let mut err = String::new();
                        if let Some(mut e) = group.0.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut e, &mut err);
                        }
                        bail!("trafgen exited early ({st}): {}", err.trim());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(group);
            }
            let secs = start.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_millis(200));
            let (tx1, d1) = tx_counters(l)?;
            // What the generator got into the device: sent on, or dropped at the peer's full backlog.
            let pps = (tx1 - tx0 + d1 - d0) as f64 / secs;
            say!(
                "round {} {size:>5} B {tool:<13} {:.3} Mpps into the sender veth ({} of them dropped at the receiver's backlog)",
                round + 1,
                pps / 1e6,
                d1 - d0
            );
            if tool == "trafgen" { &mut theirs } else { &mut ours }.push(pps);
        }
    }
    let (o, t) = (median(ours.clone()), median(theirs.clone()));
    Ok(serde_json::json!({"size": size, "ringwire_gen_mpps": o / 1e6, "trafgen_mpps": t / 1e6,
        "ratio": if t > 0.0 { o / t } else { 0.0 }, "ringwire_gen_runs": ours, "trafgen_runs": theirs}))
}

/// The machine a run was made on.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = lab::run(&["uname", "-r"]).map(|s| s.trim().to_owned()).unwrap_or_default();
    let date = lab::run(&["date", "-u", "+%Y-%m-%d"]).map(|s| s.trim().to_owned()).unwrap_or_default();
    let cores = sys::online_cores();
    serde_json::json!({"cpu": cpu, "cores": cores, "kernel": kernel, "date": date})
}

/// The median of each percentile over rounds.
fn median_hist(h: &[HistSnap]) -> HistSnap {
    let q = |g: fn(&HistSnap) -> u64| median(h.iter().map(|x| g(x) as f64).collect()) as u64;
    HistSnap {
        count: q(|x| x.count),
        min: q(|x| x.min),
        p50: q(|x| x.p50),
        p90: q(|x| x.p90),
        p99: q(|x| x.p99),
        p999: q(|x| x.p999),
        p9999: q(|x| x.p9999),
        max: q(|x| x.max),
        mean: q(|x| x.mean),
    }
}

/// Where the CPU figures of these rounds come from: `sampled` or `none`
/// when all agree, else `rusage`.
fn cpu_source(rs: &[&Run]) -> &'static str {
    ["sampled", "none"].into_iter().find(|&k| rs.iter().all(|r| r.cpu_source == k)).unwrap_or("rusage")
}

/// Medians over rounds, per size, rate and receiver (failed runs left out).
fn medians(runs: &[Run], sizes: &[usize], rates: &[String], tools: &[String]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for &size in sizes {
        for rate in rates {
            for t in tools {
                let rs: Vec<&Run> = runs
                    .iter()
                    .filter(|r| r.size == size && &r.rate_spec == rate && &r.tool == t && r.error.is_none())
                    .collect();
                if rs.is_empty() {
                    continue;
                }
                let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
                let (lo, hi) = min_max(rs.iter().map(|r| r.captured_pps / 1e6));
                let mut v = serde_json::json!({"size": size, "rate": rate, "tool": t, "rounds": rs.len(),
                    "offered_mpps": m(&|r| r.offered_pps) / 1e6, "captured_mpps": m(&|r| r.captured_pps) / 1e6,
                    "captured_min_mpps": lo, "captured_max_mpps": hi,
                    "captured_ratio": m(&|r| if r.offered == 0 { 0.0 } else { r.captured as f64 / r.offered as f64 }),
                    "tool_drops": m(&|r| r.tool_drops as f64), "engine_drops": m(&|r| r.engine_drops as f64),
                    "veth_drops": m(&|r| r.veth_drops as f64),
                    "unaccounted": m(&|r| r.unaccounted as f64),
                    "ring_mib": m(&|r| r.ring_mib),
                    "user_ns_per_frame": m(&|r| r.user_ns_per_frame), "sys_ns_per_frame": m(&|r| r.sys_ns_per_frame),
                    "user_ns_per_offered": m(&|r| r.user_ns_per_offered), "sys_ns_per_offered": m(&|r| r.sys_ns_per_offered),
                    "rusage_user_ns_per_frame": m(&|r| r.rusage_user_ns_per_frame),
                    "rusage_sys_ns_per_frame": m(&|r| r.rusage_sys_ns_per_frame),
                    "cpu_source": cpu_source(&rs)});
                let core: Vec<f64> = rs.iter().filter_map(|r| r.core_ns_per_frame).collect();
                v["core_ns_per_frame"] = if core.is_empty() { serde_json::Value::Null } else { median(core).into() };
                let lat: Vec<Latency> = rs.iter().filter_map(|r| r.latency).collect();
                if !lat.is_empty() {
                    let consumer: Vec<HistSnap> = lat.iter().map(|l| l.consumer).collect();
                    let kernel: Vec<HistSnap> = lat.iter().map(|l| l.kernel).collect();
                    v["latency"] =
                        serde_json::json!({"consumer": median_hist(&consumer), "kernel": median_hist(&kernel)});
                }
                out.push(v);
            }
        }
    }
    let kept: Vec<Option<f64>> = out.iter().map(|m| sender_kept(&out, m)).collect();
    for (m, k) in out.iter_mut().zip(kept) {
        m["sender_kept"] = k.map_or(serde_json::Value::Null, serde_json::Value::from);
    }
    out
}

/// The rate the sender delivered while this receiver captured, as a share
/// of the rate with nobody capturing (`none`) at the same size and rate:
/// how much the capture slowed the sender, as the capture core's receive
/// path lost the CPU the receiver took. `None` without a `none` row.
fn sender_kept(medians: &[serde_json::Value], m: &serde_json::Value) -> Option<f64> {
    let none = medians.iter().find(|n| n["tool"] == "none" && n["size"] == m["size"] && n["rate"] == m["rate"])?;
    let base = num(&none["offered_mpps"]);
    (base > 0.0 && m["tool"] != "none").then(|| num(&m["offered_mpps"]) / base)
}

/// A count or figure rounded to a whole number, or `-` where the file has
/// none (older runs, or CPU not sampled).
fn whole_or_dash(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".to_owned(), |v| format!("{v:.0}"))
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn rate_label(r: &str) -> String {
    if r == "0" {
        "flat out".to_owned()
    } else {
        r.to_owned()
    }
}

/// The markdown tables of a run's JSON document.
fn markdown(doc: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let medians = doc["medians"].as_array().cloned().unwrap_or_default();
    if !medians.is_empty() {
        let _ = writeln!(
            s,
            "| size | rate | receiver | offered Mpps | captured Mpps (min-max) | captured Gbit/s | captured/offered | tool drops | of which engine | veth drops | lost uncounted | user ns/frame | sys ns/frame | user ns/offered | capture core ns/frame | ring MiB | offered / none |"
        );
        let _ = writeln!(s, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for m in &medians {
            // Frame bytes as sent (no preamble, gap or FCS).
            let gbps = num(&m["captured_mpps"]) * num(&m["size"]) * 8.0 / 1e3;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.3}{} | {gbps:.2} | {:.1} % | {:.0} | {} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                m["size"],
                rate_label(m["rate"].as_str().unwrap_or("0")),
                m["tool"].as_str().unwrap_or(""),
                num(&m["offered_mpps"]),
                num(&m["captured_mpps"]),
                captured_range(doc, m),
                num(&m["captured_ratio"]) * 100.0,
                num(&m["tool_drops"]),
                // Runs recorded before the split have none.
                whole_or_dash(&m["engine_drops"]),
                num(&m["veth_drops"]),
                // Runs recorded before the column existed have none.
                whole_or_dash(&m["unaccounted"]),
                num(&m["user_ns_per_frame"]),
                num(&m["sys_ns_per_frame"]),
                num(&m["user_ns_per_offered"]),
                // Sampled runs only (not getrusage's, not older files).
                whole_or_dash(&m["core_ns_per_frame"]),
                // Runs recorded before the column existed have none.
                whole_or_dash(&m["ring_mib"]),
                // Computed with the medians (none without a `none` row).
                m["sender_kept"].as_f64().map_or("-".to_owned(), |k| format!("{:.0} %", k * 100.0))
            );
        }
    }
    let lat: Vec<&serde_json::Value> = medians.iter().filter(|m| !m["latency"].is_null()).collect();
    if !lat.is_empty() {
        let _ = writeln!(s, "\nOne-way latency from the generator's send stamp, microseconds:\n");
        let _ =
            writeln!(s, "| size | rate | receiver | offered kframes/s | to | p50 | p90 | p99 | p99.9 | p99.99 | max |");
        let _ = writeln!(s, "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|");
        for m in lat {
            for to in ["kernel", "consumer"] {
                let h = &m["latency"][to];
                let us = |k: &str| format!("{:.1}", num(&h[k]) / 1e3);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                    m["size"],
                    rate_label(m["rate"].as_str().unwrap_or("0")),
                    m["tool"].as_str().unwrap_or(""),
                    num(&m["offered_mpps"]) * 1e3,
                    if to == "kernel" { "kernel timestamp" } else { "consumer" },
                    us("p50"),
                    us("p90"),
                    us("p99"),
                    us("p999"),
                    us("p9999"),
                    us("max")
                );
            }
        }
    }
    if let Some(rows) = doc["gen_compare"].as_array() {
        let _ = writeln!(s, "| size | ringwire-gen Mpps | trafgen Mpps | ringwire-gen / trafgen |");
        let _ = writeln!(s, "|---:|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {:.3} | {:.2}x |",
                r["size"],
                num(&r["ringwire_gen_mpps"]),
                num(&r["trafgen_mpps"]),
                num(&r["ratio"])
            );
        }
    }
    // A measurement that failed has no median: each is named, with its error.
    let failed: Vec<&serde_json::Value> =
        doc["runs"].as_array().into_iter().flatten().filter(|r| !r["error"].is_null()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s);
    }
    for r in &failed {
        let _ = writeln!(
            s,
            "FAILED: {} B at {}, {}, round {}: {}",
            r["size"],
            rate_label(r["rate_spec"].as_str().unwrap_or("?")),
            r["tool"].as_str().unwrap_or("?"),
            r["round"].as_u64().map_or(0, |n| n + 1),
            r["error"].as_str().unwrap_or("?")
        );
    }
    let a = &doc["args"];
    let mch = &doc["machine"];
    let machine = match (mch["cpu"].as_str(), mch["kernel"].as_str(), mch["date"].as_str()) {
        (Some(cpu), Some(kernel), Some(date)) => format!("{cpu} ({} cores), Linux {kernel}, {date}", mch["cores"]),
        // Files written before the machine was recorded.
        _ => "the machine was not recorded in this file".to_owned(),
    };
    let _ = writeln!(
        s,
        "\nMedians of {}{} rounds of {} s; generator on core {}, receivers on core {}{}; {machine}.{}",
        if failed.is_empty() { "" } else { "the finished ones of " },
        a["rounds"],
        a["duration_s"],
        a["gen_core"],
        a["cap_core"],
        napi_placement(&doc["lab"]["napi_threads"][0], &a["cap_core"]),
        match (doc["partial"].as_bool() == Some(true), doc["error"].as_str()) {
            (true, Some(e)) => format!(" PARTIAL: {e}"),
            (true, None) =>
                " PARTIAL: some measurements failed or the run was interrupted (see `runs[].error`).".into(),
            (false, _) => String::new(),
        }
    );
    match (a["cpu_latency_us"].as_u64(), a["lowlat_cpu_latency_us"].as_u64()) {
        (Some(us), _) => {
            let _ = writeln!(s, "A CPU latency request of {us} µs (/dev/cpu_dma_latency) was held for every receiver.");
        }
        (None, Some(us)) => {
            let _ = writeln!(
                s,
                "ringwire-lowlat held a CPU latency request of {us} µs while it ran (engine.cpu_latency_us; it applies to both cores); the other receivers ran without one."
            );
        }
        (None, None) => {}
    }
    if !medians.is_empty() {
        let _ = writeln!(s, "{}", cpu_note(&medians, a));
    }
    if let Some(c) = a["gen_copy_max"].as_u64() {
        let how = if c == 0 {
            "every frame lent as TX ring pages".to_owned()
        } else {
            format!("frames up to {c} bytes copied into the kernel's socket buffer")
        };
        let _ = writeln!(s, "ringwire-gen ran with --copy-max {c}: {how}.");
    }
    match doc["command"].as_str() {
        Some(c) => {
            let _ = writeln!(s, "Command: `{c}`");
        }
        None => {
            let _ = writeln!(s, "The command was not recorded in this file.");
        }
    }
    s
}

/// A row's captured rate over its rounds, ` (min-max)`: from the medians'
/// fields, or for files written before them from the rounds in `runs`
/// (nothing when neither is there).
fn captured_range(doc: &serde_json::Value, m: &serde_json::Value) -> String {
    if let (Some(lo), Some(hi)) = (m["captured_min_mpps"].as_f64(), m["captured_max_mpps"].as_f64()) {
        return format!(" ({lo:.3}-{hi:.3})");
    }
    let rounds: Vec<f64> = doc["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["size"] == m["size"] && r["tool"] == m["tool"] && r["error"].is_null())
        .filter(|r| r["rate_spec"].is_null() || r["rate_spec"] == m["rate"])
        .filter_map(|r| r["captured_pps"].as_f64())
        .collect();
    if rounds.is_empty() {
        return String::new();
    }
    let (lo, hi) = min_max(rounds.into_iter().map(|pps| pps / 1e6));
    format!(" ({lo:.3}-{hi:.3})")
}

/// The least and the greatest of `values` (rates, never negative).
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, 0.0), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// How the table's CPU columns were measured.
fn cpu_note(medians: &[serde_json::Value], args: &serde_json::Value) -> String {
    // Nobody runs in `none`: nothing to measure.
    let measured: Vec<_> = medians.iter().filter(|m| m["tool"] != "none").collect();
    let sampled = measured.iter().filter(|m| m["cpu_source"] == "sampled").count();
    let every = args["cpu_sample_us"].as_u64().unwrap_or(0);
    let how = format!(
        "CPU time sampled on the capture core every {every} µs of CPU (perf's software clock), from the generator's start until the receiver exited"
    );
    let rusage = "getrusage over the receiver's whole life (on this kernel a tick sample, 250 a second)";
    let core = "`capture core ns/frame` is all the capture core ran in that time (the receiver, the kernel's receive path, anything else), per frame captured";
    if sampled == measured.len() {
        format!("{how}; getrusage's figures are in the JSON (`rusage_*`). {core}.")
    } else if sampled == 0 {
        format!("CPU time from {rusage}.")
    } else {
        format!("{how} where the JSON's `cpu_source` says `sampled`, elsewhere from {rusage}. {core}, where sampled.")
    }
}

/// The SVG plot of a run's JSON document: captured against offered rate,
/// and latency percentiles against offered rate, per size.
fn plot(doc: &serde_json::Value) -> String {
    let medians = doc["medians"].as_array().cloned().unwrap_or_default();
    let mut sizes: Vec<u64> = medians.iter().filter_map(|m| m["size"].as_u64()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut charts = Vec::new();
    for size in sizes {
        let at: Vec<&serde_json::Value> = medians.iter().filter(|m| m["size"].as_u64() == Some(size)).collect();
        let mut tools: Vec<&str> = at.iter().filter_map(|m| m["tool"].as_str()).collect();
        tools.sort_unstable();
        tools.dedup();
        let series = |tool: &str, y: &dyn Fn(&serde_json::Value) -> f64| {
            let mut pts: Vec<(f64, f64)> = at
                .iter()
                .filter(|m| m["tool"].as_str() == Some(tool))
                .map(|m| (num(&m["offered_mpps"]) * 1e3, y(m)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        charts.push(Chart {
            title: format!("{size}-byte frames: captured against offered"),
            x_label: "offered kframes/s".into(),
            y_label: "captured kframes/s".into(),
            log_y: false,
            series: tools
                .iter()
                .filter(|t| **t != "none")
                .enumerate()
                .map(|(i, t)| Series {
                    name: (*t).to_owned(),
                    points: series(t, &|m| num(&m["captured_mpps"]) * 1e3),
                    color: i,
                    dash: 0,
                })
                .collect(),
        });
        let lat_tools: Vec<&str> = tools
            .iter()
            .copied()
            .filter(|t| at.iter().any(|m| m["tool"].as_str() == Some(*t) && !m["latency"].is_null()))
            .collect();
        if !lat_tools.is_empty() {
            let mut series_l = Vec::new();
            for t in &lat_tools {
                let color = tools.iter().filter(|x| **x != "none").position(|x| x == t).unwrap_or(0);
                for (dash, (q, name)) in [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")].into_iter().enumerate() {
                    series_l.push(Series {
                        name: format!("{t} {name}"),
                        points: series(t, &|m| num(&m["latency"]["consumer"][q]) / 1e3),
                        color,
                        dash,
                    });
                }
            }
            charts.push(Chart {
                title: format!("{size}-byte frames: latency send -> consumer"),
                x_label: "offered kframes/s".into(),
                y_label: "microseconds (log)".into(),
                log_y: true,
                series: series_l,
            });
        }
    }
    let m = &doc["machine"];
    ringwire_bench::plot::svg(
        &charts,
        2,
        &format!(
            "ringwire-bench, {}: {} ({} cores), Linux {}. {}",
            m["date"].as_str().unwrap_or("?"),
            m["cpu"].as_str().unwrap_or("?"),
            m["cores"],
            m["kernel"].as_str().unwrap_or("?"),
            doc["command"].as_str().unwrap_or("")
        ),
    )
}

/// Render an earlier run's JSON: the tables on stdout, the plot if asked.
fn report(a: &Args, path: &Path) -> Result<bool> {
    // A run's file is some kilobytes: a device, a FIFO or a huge file is
    // refused before it is read (reading /dev/zero would never end).
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    if meta.len() > MAX_REPORT_BYTES {
        bail!("{}: {} bytes, more than a ringwire-bench JSON file holds", path.display(), meta.len());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not a ringwire-bench JSON file", path.display()))?;
    report_shape(&doc).map_err(|e| anyhow::anyhow!("{}: not a ringwire-bench JSON file ({e})", path.display()))?;
    if a.plot.is_some() && doc["medians"].as_array().is_none_or(Vec::is_empty) {
        bail!(
            "--plot: {} has no capture or latency measurements to plot (a --gen-compare run's table is its result)",
            path.display()
        );
    }
    out_raw!("{}", markdown(&doc));
    if let Some(p) = &a.plot {
        std::fs::write(p, plot(&doc)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(doc["partial"].as_bool() != Some(true))
}

/// The kinds of file a receiver has in `--out-dir`: its capture, its
/// stats, its config, its ready file.
const RECEIVER_FILES: [&str; 4] = ["pcap", "json", "toml", "ready"];

/// Receiver `tool`'s file of kind `ext` (see [`RECEIVER_FILES`]) at frame size `size`.
fn receiver_file(dir: &Path, tool: &str, size: usize, ext: &str) -> PathBuf {
    dir.join(format!("rwbench-{tool}-{size}.{ext}"))
}

/// The files the receivers of a run leave in `--out-dir` (their pcap files,
/// stats, configs, ready files), removed when dropped: at the end of a run,
/// and on an error that ends it early.
struct ReceiverFiles {
    dir: PathBuf,
    tools: Vec<String>,
    sizes: Vec<usize>,
}

impl Drop for ReceiverFiles {
    fn drop(&mut self) {
        for t in &self.tools {
            for s in &self.sizes {
                for ext in RECEIVER_FILES {
                    let _ = std::fs::remove_file(receiver_file(&self.dir, t, *s, ext));
                }
            }
        }
    }
}

/// The largest JSON file `--report` reads.
const MAX_REPORT_BYTES: u64 = 64 << 20;

/// Whether `doc` has the shape of a ringwire-bench run's JSON: what the
/// tables print must be there with its type, so that a wrong file is refused
/// instead of printed as nulls and zeros. Fields later versions added (the
/// machine, `partial`, a row's `rate`) may be missing; when present, their
/// type is checked too.
fn report_shape(doc: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let want = |v: &Value, what: &str, ok: fn(&Value) -> bool, kind: &str| {
        if ok(v) {
            Ok(())
        } else {
            Err(format!("`{what}` is not {kind}"))
        }
    };
    let uint = |v: &Value, what: &str| want(v, what, |v| v.is_u64(), "a whole number");
    let number = |v: &Value, what: &str| want(v, what, Value::is_number, "a number");
    let text = |v: &Value, what: &str| want(v, what, Value::is_string, "a string");
    let optional = |v: &Value, what: &str, ok: fn(&Value) -> bool, kind: &str| {
        if v.is_null() {
            Ok(())
        } else {
            want(v, what, ok, kind)
        }
    };
    want(&doc["args"], "args", Value::is_object, "an object")?;
    uint(&doc["args"]["rounds"], "args.rounds")?;
    number(&doc["args"]["duration_s"], "args.duration_s")?;
    uint(&doc["args"]["gen_core"], "args.gen_core")?;
    uint(&doc["args"]["cap_core"], "args.cap_core")?;
    optional(&doc["partial"], "partial", Value::is_boolean, "true or false")?;
    optional(&doc["machine"], "machine", Value::is_object, "an object")?;
    optional(&doc["medians"], "medians", Value::is_array, "a list")?;
    optional(&doc["gen_compare"], "gen_compare", Value::is_array, "a list")?;
    if doc["medians"].is_null() && doc["gen_compare"].is_null() {
        return Err("no `medians` and no `gen_compare`".into());
    }
    for (i, m) in doc["medians"].as_array().into_iter().flatten().enumerate() {
        let at = |k: &str| format!("medians[{i}].{k}");
        uint(&m["size"], &at("size"))?;
        text(&m["tool"], &at("tool"))?;
        optional(&m["rate"], &at("rate"), Value::is_string, "a string")?;
        for k in ["offered_mpps", "captured_mpps"] {
            number(&m[k], &at(k))?;
        }
        optional(&m["latency"], &at("latency"), Value::is_object, "an object")?;
    }
    for (i, r) in doc["gen_compare"].as_array().into_iter().flatten().enumerate() {
        let at = |k: &str| format!("gen_compare[{i}].{k}");
        uint(&r["size"], &at("size"))?;
        for k in ["ringwire_gen_mpps", "trafgen_mpps", "ratio"] {
            number(&r[k], &at(k))?;
        }
    }
    Ok(())
}

/// The footnote's words for where the veth's NAPI thread ran, when that is
/// not the capture core under the default policy (older files: nothing).
fn napi_placement(napi: &serde_json::Value, cap_core: &serde_json::Value) -> String {
    let (Some(cpus), Some(policy)) = (napi["cpus"].as_str(), napi["policy"].as_str()) else {
        return String::new();
    };
    if Some(cpus) == cap_core.as_u64().map(|c| c.to_string()).as_deref() && policy == "SCHED_OTHER" {
        return String::new();
    }
    let prio = napi["rt_priority"].as_u64().filter(|&p| p > 0).map(|p| format!(" {p}")).unwrap_or_default();
    format!(", the veth's NAPI thread on core {cpus} ({policy}{prio})")
}

/// Check the arguments before anything is built; returns the receivers to run.
fn check_args(a: &Args) -> Result<Vec<String>> {
    if a.gen_core == a.cap_core {
        bail!("--gen-core and --cap-core must differ: on one core the run measures contention, not capture");
    }
    let ncores = sys::online_cores();
    if a.gen_core >= ncores || a.cap_core >= ncores || a.napi_core.is_some_and(|c| c >= ncores) {
        bail!("--gen-core, --cap-core and --napi-core must be cores of this machine (0..{ncores})");
    }
    if a.gen_compare && a.plot.is_some() {
        bail!("--plot draws capture and latency measurements; --gen-compare makes a table only");
    }
    if a.gen_compare && (a.napi_core.is_some() || a.napi_fifo) {
        bail!("--napi-core and --napi-fifo place the NIC-like veth's NAPI thread; --gen-compare runs on a plain veth");
    }
    if !(0.5..=600.0).contains(&a.duration) {
        bail!("--duration {} is out of range (0.5..=600 s)", a.duration);
    }
    if !(1..=50).contains(&a.rounds) {
        bail!("--rounds {} is out of range (1..=50)", a.rounds);
    }
    for s in &a.sizes {
        if !(60..=1514).contains(s) {
            bail!("--sizes: {s} is out of range (60..=1514)");
        }
    }
    for r in &a.rates {
        resolve_rate(r, Some(1.0))?;
    }
    listed_once("--sizes", &a.sizes)?;
    listed_once("--rates", &a.rates)?;
    listed_once("--tools", &a.tools)?;
    check_ring(a)?;
    if let Some(f) = &a.ringwire_filter {
        // As the engine builds a consumer's filter (its interface is not there
        // yet, so a pcap-filter is compiled for Ethernet, as for a pcap port).
        ringwire_filters::FilterFactory::new(f, ringwire_filters::QuarantinePolicy::DropAll)
            .with_context(|| format!("--ringwire-filter `{f}`"))?;
    }
    check_outputs(a)?;
    let mut tools = Vec::new();
    for t in &a.tools {
        if tool(t)?.program.is_none_or(have) {
            tools.push(t.clone());
        } else {
            say!("note: {t} is not installed; skipped");
        }
    }
    if tools.is_empty() {
        bail!("--tools {}: none of them is installed; nothing to measure", a.tools.join(","));
    }
    if a.gen_compare {
        if !have("trafgen") {
            bail!("--gen-compare needs trafgen (Debian package netsniff-ng)");
        }
        if a.gen_core != 0 {
            bail!("--gen-compare needs --gen-core 0: trafgen -P 1 pins its sender to CPU 0");
        }
    }
    Ok(tools)
}

/// Refuse a list naming an item twice: its rounds would run twice and be
/// merged into one row as if they were one item's.
fn listed_once<T: PartialEq + std::fmt::Display>(opt: &str, items: &[T]) -> Result<()> {
    match ringwire_engine::config::first_repeat(items) {
        Some(x) => bail!("{opt}: `{x}` is listed twice"),
        None => Ok(()),
    }
}

/// `--block-kib`, `--blocks` and `--retire-ms` as the engine takes them
/// (`[ring]`: a block a power of two of at least a page, at least one block,
/// a retire timeout of at least 1 ms).
fn check_ring(a: &Args) -> Result<()> {
    let page = u32::try_from(sys::page_size()).unwrap_or(4096);
    let mut ring = RingConfig::default();
    if let Some(k) = a.block_kib {
        let bytes = k.checked_mul(1024).filter(|b| b.is_power_of_two() && *b >= page);
        let Some(bytes) = bytes else {
            bail!(
                "--block-kib {k}: must be a power of two from the page size ({} KiB) to {} KiB",
                page / 1024,
                1u32 << 21
            );
        };
        ring.block_size = bytes;
    }
    if let Some(n) = a.blocks {
        if n == 0 {
            bail!("--blocks 0: at least 1 block is needed");
        }
        ring.block_count = n;
    }
    if let Some(ms) = a.retire_ms {
        if ms == 0 {
            bail!("--retire-ms 0: must be at least 1 ms");
        }
        ring.retire_timeout_ms = ms;
    }
    // Whatever else the engine checks of the ring (the frame fits a block).
    ring.rx_geometry().validate().map_err(|m| anyhow::anyhow!("--block-kib/--blocks/--retire-ms: {m}"))
}

/// `path` can be written (see [`sys::check_writable`]), or the option says why not.
fn check_writable(opt: &str, path: &Path) -> Result<()> {
    sys::check_writable(path).with_context(|| format!("{opt} {}: cannot write there", path.display()))
}

/// `--json` and `--plot` can be written and `--out-dir` is a writable
/// directory, before anything is measured.
fn check_outputs(a: &Args) -> Result<()> {
    let dir = &a.out_dir;
    match std::fs::metadata(dir) {
        // The path goes into the engine's TOML config, which holds text only.
        Ok(_) if dir.to_str().is_none() => bail!("--out-dir {}: not a UTF-8 path", dir.display()),
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("--out-dir {}: not a directory", dir.display()),
        Err(e) => return Err(e).with_context(|| format!("--out-dir {}", dir.display())),
    }
    let probe = dir.join(format!("rwbench-probe-{}", std::process::id()));
    sys::check_writable(&probe).with_context(|| format!("--out-dir {}: cannot write there", dir.display()))?;
    if let Some(p) = &a.json {
        check_writable("--json", p)?;
    }
    if let Some(p) = &a.plot {
        check_writable("--plot", p)?;
    }
    Ok(())
}

/// Every round of every size, rate and receiver; a failed measurement is
/// recorded with its error and the run goes on (the report is then partial).
fn sweep(
    lab: &Lab2,
    a: &Args,
    tools: &[String],
    max: &BTreeMap<usize, f64>,
    stop: &AtomicBool,
) -> Result<(Vec<Run>, bool)> {
    let mut runs = Vec::new();
    let mut partial = false;
    let total = (a.rounds * a.sizes.len() * a.rates.len() * tools.len()) as u64;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:32} {pos}/{len} measurements, {elapsed} (about {eta} left) {msg}",
        )
        .expect("a valid template"),
    );
    // Lines above the bar on a terminal; plain lines otherwise (the bar is hidden).
    let say = |line: String| if bar.is_hidden() { say!("{line}") } else { bar.println(line) };
    for round in 0..a.rounds {
        for &size in &a.sizes {
            for spec in &a.rates {
                let rate = resolve_rate(spec, max.get(&size).copied())?;
                // Alternate the order every round so drift in the host does not favour one tool.
                let mut order = tools.to_vec();
                if round % 2 == 1 {
                    order.reverse();
                }
                for t in &order {
                    if stop.load(Ordering::Relaxed) {
                        bar.finish_and_clear();
                        say!("interrupted: reporting what was measured");
                        return Ok((runs, true));
                    }
                    bar.set_message(format!("(round {}, {size} B, {}, {t})", round + 1, rate_label(spec)));
                    let r = measure(t, lab, a, size, (rate, spec), round, stop);
                    bar.inc(1);
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            let msg = format!("{e:#}");
                            say(format!("round {} {size:>5} B {t}: FAILED: {msg}", round + 1));
                            partial = true;
                            runs.push(Run {
                                tool: t.clone(),
                                size,
                                rate,
                                rate_spec: spec.clone(),
                                round,
                                error: Some(msg),
                                ..Default::default()
                            });
                            continue;
                        }
                    };
                    let lat = r.latency.map_or(String::new(), |l| {
                        format!(
                            " latency p50 {:.1} p99 {:.1} µs",
                            l.consumer.p50 as f64 / 1e3,
                            l.consumer.p99 as f64 / 1e3
                        )
                    });
                    let core = r.core_ns_per_frame.map_or(String::new(), |c| format!(" core {c:>6.0} ns/f"));
                    let off = r.worker_off_core.map_or(String::new(), |o| {
                        let ms = |ns: u64| ns as f64 / 1e6;
                        format!(
                            "; worker off its core {:.1} ms ({:.1} other tasks, {:.1} host or interrupts; steal {:.0})",
                            ms(o.away_ns),
                            ms(o.preempted_ns),
                            ms(o.host_ns),
                            ms(o.steal_ns)
                        )
                    });
                    say(format!(
                        "round {} {:>5} B {:>9} {:<16} offered {:>9} captured {:>9} drops {:>8} (engine {:>8}) veth-drops {:>8} uncounted {:>8} user {:>6.0} ns/f{core}{lat}{off}",
                        round + 1,
                        size,
                        rate_label(spec),
                        t,
                        r.offered,
                        r.captured,
                        r.tool_drops,
                        r.engine_drops,
                        r.veth_drops,
                        r.unaccounted,
                        r.user_ns_per_frame,
                    ));
                    runs.push(r);
                }
            }
        }
    }
    bar.finish_and_clear();
    // A signal during the last measurement: that one is recorded as
    // interrupted above; say so here too, and mark the run partial.
    if stop.load(Ordering::Relaxed) {
        say!("interrupted: reporting what was measured");
        partial = true;
    }
    Ok((runs, partial))
}

fn run() -> Result<bool> {
    // Bad arguments exit 1, as every other error: 2 is a partial report's.
    let a = Args::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 });
    });
    if let Some(path) = &a.report {
        return report(&a, path);
    }
    let tools = check_args(&a)?;
    if !sys::is_root() {
        bail!("needs root: it builds network namespaces and opens packet sockets");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let _only = OnlyRun::take()?;
    remove_stale_labs(&a.out_dir)?;
    // The bench itself and everything it starts (the generator, the `ip`
    // commands) stay off the capture core: only the receiver runs there.
    // Receivers are moved to it with `taskset`, the stream reader pins itself.
    if !core_affinity::set_for_current(core_affinity::CoreId { id: a.gen_core }) {
        bail!("could not pin ringwire-bench to core {}", a.gen_core);
    }
    let _qos = a
        .cpu_latency_us
        .map(sys::CpuLatencyRequest::hold)
        .transpose()
        .context("--cpu-latency-us: holding a request on /dev/cpu_dma_latency")?;
    // trafgen 0.6.8 ends at the first EAGAIN from a full TX path, which a
    // NIC-like veth (a NAPI ring of its own) returns when flooded: generators
    // are compared on a plain veth pair, both under the same conditions.
    let napi_core = a.napi_core.unwrap_or(a.cap_core);
    let lab = build_lab(napi_core, a.napi_fifo, a.gen_compare)?;
    say!(
        "lab: {} (gen, core {}) -> {} (capture, core {}); {}",
        lab.vg,
        a.gen_core,
        lab.vc,
        a.cap_core,
        if a.gen_compare {
            "plain veth".to_owned()
        } else {
            format!("NIC-like veth: GRO on, TSO off, threaded NAPI pinned to core {napi_core}")
        }
    );
    let files = ReceiverFiles { dir: a.out_dir.clone(), tools: tools.clone(), sizes: a.sizes.clone() };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut doc = serde_json::json!({"args": {"sizes": a.sizes, "duration_s": a.duration, "rounds": a.rounds,
        "gen_core": a.gen_core, "cap_core": a.cap_core, "gen_burst": a.gen_burst, "gen_copy_max": a.gen_copy_max, "rates": a.rates, "dst_macs": a.dst_macs, "tools": tools,
        "cpu_latency_us": a.cpu_latency_us, "cpu_sample_us": a.cpu_sample_us,
        "lowlat_cpu_latency_us": tools.iter().any(|t| t == "ringwire-lowlat").then_some(a.lowlat_cpu_latency.0).flatten()},
        "lab": {"napi_threads": lab.napi},
        "machine": machine(), "command": command});
    let mut partial = false;
    if a.gen_compare {
        let (rows, error) = gen_compare(&lab, &a, &stop);
        doc["gen_compare"] = serde_json::Value::Array(rows);
        if let Some(e) = error {
            say!("gen-compare: {e}");
            doc["error"] = serde_json::json!(e);
            partial = true;
        }
    } else {
        // Percent rates: the generator's flat-out rate at each size, with nobody capturing.
        let mut max = BTreeMap::new();
        if a.rates.iter().any(|r| r.ends_with('%')) {
            for &size in &a.sizes {
                let r = measure("none", &lab, &a, size, (0, "0"), 0, &stop)
                    .with_context(|| format!("calibrating at {size} bytes"))?;
                say!("calibration: {size} B flat out offers {:.3} Mpps", r.offered_pps / 1e6);
                max.insert(size, r.offered_pps);
            }
        }
        let (runs, failed) = sweep(&lab, &a, &tools, &max, &stop)?;
        partial |= failed;
        doc["medians"] = serde_json::Value::Array(medians(&runs, &a.sizes, &a.rates, &tools));
        doc["runs"] = serde_json::to_value(&runs)?;
        doc["calibration_mpps"] =
            serde_json::json!(max.iter().map(|(s, r)| (s.to_string(), r / 1e6)).collect::<BTreeMap<_, _>>());
    }
    doc["partial"] = serde_json::json!(partial);
    // The receivers' files go first: writing the results may fail.
    drop(files);
    out!("\n{}", markdown(&doc));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.plot {
        std::fs::write(p, plot(&doc)).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(!partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_names_count_as_stale_labs() {
        assert!(is_lab_name("rwb4242x7-gen") && is_lab_name("rwb1x0-cap"));
        for other in ["rwbox-test", "rwb-gen", "rwb12x-gen", "rwbx3-cap", "rwb1x2-gen2", "rwt1x2-gen", "rwb1x2"] {
            assert!(!is_lab_name(other), "{other}");
        }
    }

    #[test]
    fn the_table_says_how_much_each_receiver_slowed_the_sender() {
        let run = |tool: &str, size: usize, offered_pps: f64| Run {
            tool: tool.into(),
            size,
            rate_spec: "0".into(),
            offered_pps,
            ..Run::default()
        };
        let runs = [run("none", 64, 1.5e6), run("tcpdump", 64, 1.2e6), run("tcpdump", 1514, 0.5e6)];
        let m = medians(&runs, &[64, 1514], &["0".into()], &["none".into(), "tcpdump".into()]);
        let kept: Vec<_> = m.iter().map(|m| m["sender_kept"].as_f64().map(|k| (k * 100.0).round())).collect();
        // Nobody capturing is the base; at 1514 B there is no base to compare with.
        assert_eq!(kept, [None, Some(80.0), None]);
        let table = markdown(&serde_json::json!({"medians": m}));
        assert!(table.contains("| ring MiB | offered / none |"), "{table}");
        let row =
            |size: &str| table.lines().find(|l| l.starts_with(&format!("| {size} | flat out | tcpdump"))).unwrap();
        assert!(row("64").ends_with("| 80 % |"), "{table}");
        assert!(row("1514").ends_with("| - |"), "{table}");
    }

    #[test]
    fn the_capture_core_column_is_the_median_of_sampled_rounds_only() {
        let run = |tool: &str, core: Option<f64>| Run {
            tool: tool.into(),
            size: 64,
            rate_spec: "0".into(),
            core_ns_per_frame: core,
            ..Run::default()
        };
        let runs =
            [run("tcpdump", Some(900.0)), run("tcpdump", None), run("tcpdump", Some(700.0)), run("netsniff-ng", None)];
        let m = medians(&runs, &[64], &["0".into()], &["tcpdump".into(), "netsniff-ng".into()]);
        assert_eq!(m[0]["core_ns_per_frame"], 800.0, "{m:?}");
        assert!(m[1]["core_ns_per_frame"].is_null(), "{m:?}");
        let table = markdown(&serde_json::json!({"medians": m}));
        assert!(table.contains("| user ns/offered | capture core ns/frame | ring MiB |"), "{table}");
        let row =
            |tool: &str| table.lines().find(|l| l.contains(&format!("| flat out | {tool} |"))).unwrap().to_owned();
        // Every row has as many cells as the header.
        let cells = |l: &str| l.matches('|').count();
        assert_eq!(cells(&row("tcpdump")), cells(table.lines().next().unwrap()), "{table}");
        assert!(row("tcpdump").ends_with("| 0 | 800 | 0 | - |"), "{table}");
        assert!(row("netsniff-ng").ends_with("| 0 | - | 0 | - |"), "{table}");
    }

    #[test]
    fn a_failed_flat_out_measurement_is_named_as_the_tables_name_its_rate() {
        let doc = serde_json::json!({"medians": [], "runs": [
            {"size": 64, "rate_spec": "0", "tool": "tcpdump", "round": 0, "error": "tcpdump died"},
            {"size": 64, "rate_spec": "1000", "tool": "tcpdump", "round": 1, "error": "x"}]});
        let table = markdown(&doc);
        assert!(table.contains("FAILED: 64 B at flat out, tcpdump, round 1: tcpdump died"), "{table}");
        assert!(table.contains("FAILED: 64 B at 1000, tcpdump, round 2: x"), "{table}");
    }

    #[test]
    fn medians_of_even_counts_average_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn ringwire_receivers_get_configs_the_engine_accepts() {
        // Paths are TOML strings: quotes and backslashes in them are kept.
        let (file, stats) = (Path::new("/tmp/q\"d\\u00/x.pcap"), Path::new("/tmp/q\"d\\u00/x.json"));
        for tool in TOOLS.iter().map(|t| t.name).filter(|n| n.starts_with("ringwire-")) {
            let set = ["ringwire-bench", "--consumer-rt-priority", "0", "--worker-rt-priority", "7", "--queue-mb", "8"];
            for args in [&["ringwire-bench"][..], &set[..]] {
                let a = Args::parse_from(args);
                let text = ringwire_config(tool, "veth0", &a, file, stats);
                let c = ringwire_engine::config::Config::parse(&text).unwrap_or_else(|e| panic!("{tool}: {e}\n{text}"));
                c.validate().unwrap_or_else(|e| panic!("{tool}: {e}\n{text}"));
                assert_eq!(c.engine.stats_json.as_deref(), Some(stats), "{text}");
                if tool == "ringwire-pcap" {
                    assert_eq!(c.consumers[0].path.as_deref(), Some(file), "{text}");
                }
                let default = ringwire_engine::config::EngineConfig::default();
                let want =
                    if args.len() > 1 { (0, 7) } else { (default.consumer_rt_priority, default.worker_rt_priority) };
                assert_eq!((c.engine.consumer_rt_priority, c.engine.worker_rt_priority), want, "{tool} {args:?}");
            }
        }
    }

    #[test]
    fn reports_read_every_committed_run_and_refuse_other_shapes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let mut read = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                report_shape(&doc).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                read += 1;
            }
        }
        assert!(read > 10, "{read} files in {}", dir.display());
        let args = serde_json::json!({"rounds": 3, "duration_s": 3.0, "gen_core": 0, "cap_core": 1});
        let row =
            serde_json::json!({"size": 64, "tool": "tcpdump", "rate": "0", "offered_mpps": 1.0, "captured_mpps": 1.0});
        assert_eq!(report_shape(&serde_json::json!({"args": args, "medians": [row]})), Ok(()));
        for (doc, says) in [
            (serde_json::json!({"args": {"rounds": "x"}, "medians": "notarray", "partial": "yes"}), "args.rounds"),
            (serde_json::json!({"args": args, "medians": [row], "partial": "yes"}), "partial"),
            (serde_json::json!({"args": args, "medians": "notarray"}), "medians"),
            (serde_json::json!({"args": args}), "no `medians`"),
            (serde_json::json!({"args": args, "medians": [{"size": "big", "tool": 3}]}), "medians[0].size"),
            (serde_json::json!({"args": args, "medians": [{"size": 64, "tool": 3}]}), "medians[0].tool"),
            (serde_json::json!({"args": args, "gen_compare": [{"size": 64, "ratio": 1.0}]}), "ringwire_gen_mpps"),
        ] {
            let e = report_shape(&doc).unwrap_err();
            assert!(e.contains(says), "{doc}: {e}");
        }
    }

    /// A file written before the medians kept their range, the machine and
    /// the command: the range comes from its rounds, and the footer says
    /// what was not recorded (no `0.000-0.000`, no `?`).
    #[test]
    fn an_older_runs_report_takes_its_range_from_its_rounds() {
        let run = |captured_pps: f64| serde_json::json!({"size": 64, "tool": "k", "captured_pps": captured_pps});
        let doc = serde_json::json!({
            "args": {"rounds": 3, "duration_s": 4.0, "gen_core": 0, "cap_core": 1},
            "medians": [{"size": 64, "tool": "k", "offered_mpps": 1.1, "captured_mpps": 0.12}],
            "runs": [run(80_000.0), run(120_000.0), run(129_000.0), {"size": 1514, "tool": "k", "captured_pps": 1.0}],
        });
        let md = markdown(&doc);
        assert!(md.contains("| 0.120 (0.080-0.129) |"), "{md}");
        assert!(
            md.contains("the machine was not recorded in this file") && md.contains("The command was not recorded"),
            "{md}"
        );
        assert!(!md.contains('?'), "{md}");
    }

    #[test]
    fn rates_resolve_to_frames_per_second() {
        assert_eq!(resolve_rate("50%", Some(1_000_000.0)).unwrap(), 500_000);
        assert_eq!(resolve_rate("1000", None).unwrap(), 1000);
        assert_eq!(resolve_rate("0", None).unwrap(), 0);
        assert!(resolve_rate("0%", Some(1.0)).is_err());
        assert!(resolve_rate("50%", None).is_err());
        assert!(resolve_rate("200000000", None).is_err());
    }
}
