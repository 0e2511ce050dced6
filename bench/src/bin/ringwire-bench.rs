//! `ringwire-bench`: capture throughput of ringwire beside tcpdump and
//! netsniff-ng, measured in one run on a veth lab of its own.
//!
//! The lab is made NIC-like (GRO on the receiving end, TSO off on the
//! sending end, threaded NAPI pinned to the capture core), so the receive
//! work lands on the capture core as it would with a real NIC. The
//! generator (`ringwire-gen`, flat out) is pinned to one core, every
//! receiver to the other; receivers are measured alternately, round after
//! round, and medians are reported.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use ringwire_engine::{
    lab::{self, Lab},
    pcapio::{PcapIoError, PcapReader},
};

/// Measure capture throughput of ringwire, tcpdump and netsniff-ng side by side.
#[derive(Parser)]
#[command(version, about)]
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
    /// pcap-filter in userspace (use with --dst-macs).
    #[arg(long, value_delimiter = ',', default_value = "none,ringwire-count,ringwire-pcap,tcpdump,netsniff-ng")]
    tools: Vec<String>,
    /// Core for the generator.
    #[arg(long, default_value_t = 0)]
    gen_core: usize,
    /// Core for the receiver (and the veth NAPI thread).
    #[arg(long, default_value_t = 1)]
    cap_core: usize,
    /// Directory for capture files (tmpfs keeps the disk out of the measurement).
    #[arg(long, default_value = "/dev/shm")]
    out_dir: PathBuf,
    /// Write all runs and medians as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Offered rate in frames per second (0: the generator's maximum).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// ringwire: RX block size in KiB (default: the engine's default).
    #[arg(long)]
    block_kib: Option<u32>,
    /// ringwire: RX blocks per ring (default: the engine's default).
    #[arg(long)]
    blocks: Option<u32>,
    /// The generator spreads its flows over this many destination MACs
    /// (10: the classifier receivers keep one frame in ten).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    dst_macs: u32,
}

/// The generator's first destination MAC: the one the classifier receivers keep.
const KEEP_MAC: &str = "02:00:00:00:00:02";

#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    tool: String,
    size: usize,
    round: usize,
    /// Frames the generator offered: sender veth tx_packets + tx_dropped.
    offered: u64,
    /// Frames that got through veth to the receiving interface.
    delivered_to_iface: u64,
    /// Frames captured: records in the tool's pcap file, or ringwire's counter for count-only.
    captured: u64,
    /// What the tool itself reports it captured.
    claimed: u64,
    /// Drops the tool reports (kernel ring full; for ringwire also queue drops).
    tool_drops: u64,
    /// Frames the NIC-like veth ring dropped (sender tx_dropped + receiver rx_dropped).
    veth_drops: u64,
    /// Tool's user CPU time, ns per captured frame.
    user_ns_per_frame: f64,
    /// Tool's system CPU time, ns per captured frame.
    sys_ns_per_frame: f64,
    /// Captured frames per second.
    captured_pps: f64,
    /// Tool's user CPU time, ns per offered frame.
    user_ns_per_offered: f64,
    /// Tool's system CPU time, ns per offered frame.
    sys_ns_per_offered: f64,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringwire-bench: error: {}", format!("{e:#}").replace('\n', " "));
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
}

fn build_lab(cap_core: usize) -> Result<Lab2> {
    let mut lab = Lab::new("rwb");
    let ns_g = lab.namespace("gen")?;
    let ns_c = lab.namespace("cap")?;
    let (vg, vc) = lab.veth(&ns_g, &ns_c)?;
    // NIC-like veth (../shared/NOTES.md): NAPI on the receiver, TSO off on the sender.
    lab::run(&["ip", "netns", "exec", &ns_c, "ethtool", "-K", &vc, "gro", "on"])?;
    lab::run(&["ip", "netns", "exec", &ns_g, "ethtool", "-K", &vg, "tso", "off"])?;
    lab::run(&["ip", "netns", "exec", &ns_c, "sh", "-c", &format!("echo 1 > /sys/class/net/{vc}/threaded")])?;
    std::thread::sleep(Duration::from_millis(200));
    let ps = lab::run(&["ps", "-eo", "pid=,comm="])?;
    let mut pinned = 0;
    for line in ps.lines() {
        let mut it = line.split_whitespace();
        if let (Some(pid), Some(comm)) = (it.next(), it.next()) {
            if comm.starts_with(&format!("napi/{vc}-")) {
                lab::run(&["taskset", "-pc", &cap_core.to_string(), pid])?;
                pinned += 1;
            }
        }
    }
    if pinned == 0 {
        bail!("no napi/{vc}-* thread found: threaded NAPI did not start");
    }
    Ok(Lab2 { _lab: lab, ns_g, ns_c, vg, vc })
}

/// Wait for a child and return (exit ok, user ns, sys ns).
fn wait_rusage(child: &mut Child) -> Result<(bool, u64, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `ru` are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    Ok((libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, tv(ru.ru_utime), tv(ru.ru_stime)))
}

struct Receiver {
    child: Option<Child>,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    stats_json: Option<PathBuf>,
    /// The pcap file it writes, if it writes one.
    file: Option<PathBuf>,
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

fn start_receiver(tool: &str, l: &Lab2, a: &Args, size: usize) -> Result<Receiver> {
    let core = a.cap_core.to_string();
    let file = a.out_dir.join(format!("rwbench-{tool}-{size}.pcap"));
    let stats = a.out_dir.join(format!("rwbench-{tool}-{size}.json"));
    let ready = a.out_dir.join(format!("rwbench-{tool}-{size}.ready"));
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &l.ns_c, "taskset", "-c", &core]);
    let mut stats_json = None;
    match tool {
        "ringwire-count" | "ringwire-pcap" | "ringwire-kclass" | "ringwire-uclass" => {
            let counter = "[[consumers]]\nname = \"count\"\nkind = \"counter\"\n";
            let (port_filter, consumer) = match tool {
                "ringwire-count" => ("", counter.to_owned()),
                "ringwire-kclass" => (
                    "filter = \"classifier\"\n",
                    format!(
                        "{counter}[classifier]\ndefault = \"drop\"\n\
                         [[classifier.entries]]\nmac = \"{KEEP_MAC}\"\naction = \"pass\"\n"
                    ),
                ),
                "ringwire-uclass" => ("", format!("{counter}filter = \"ether dst {KEEP_MAC}\"\n")),
                _ => ("", format!("[[consumers]]\nname = \"pcap\"\nkind = \"pcap\"\npath = \"{}\"\n", file.display())),
            };
            let mut ring = String::from("[ring]\n");
            if let Some(k) = a.block_kib {
                ring.push_str(&format!("block_size = {}\n", k * 1024));
            }
            if let Some(n) = a.blocks {
                ring.push_str(&format!("block_count = {n}\n"));
            }
            let cfg = a.out_dir.join(format!("rwbench-{tool}-{size}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "[engine]\nworkers = [{core}]\nstats_json = \"{}\"\n{ring}[[ports]]\nuri = \"afpacket:{}\"\n{port_filter}{consumer}",
                    stats.display(),
                    l.vc
                ),
            )?;
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
        "netsniff-ng" => {
            cmd.args(["netsniff-ng", "--in", &l.vc, "--out"]).arg(&file).args(["--silent", "--bind-cpu", &core]);
        }
        other => bail!("unknown tool {other}"),
    }
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {tool}"))?;
    // Summaries come on stderr (tcpdump) or stdout (netsniff-ng): read both.
    let (tx, rx) = std::sync::mpsc::channel();
    let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
    for stream in [out, err] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                for part in line.split('\r') {
                    let _ = tx.send(part.trim().to_owned());
                }
            }
        });
    }
    // Ready: ringwire's ready file; the peers' "listening" banner; a second at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if ready.exists() {
            break;
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(20)) {
            if l.contains("listening on") || l.contains("Running!") {
                break;
            }
        }
        if let Some(st) = child.try_wait()? {
            bail!("{tool} exited at start ({st})");
        }
        if Instant::now() > deadline {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let file = (tool == "ringwire-pcap" || !tool.starts_with("ringwire")).then_some(file);
    Ok(Receiver { child: Some(child), stderr_lines: rx, stats_json, file })
}

fn number_before(lines: &[String], needle: &str) -> Option<u64> {
    lines.iter().find(|l| l.contains(needle)).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok())
}

fn measure(tool: &str, l: &Lab2, a: &Args, size: usize, round: usize) -> Result<Run> {
    let mut rcv = if tool == "none" { None } else { Some(start_receiver(tool, l, a, size)?) };
    let sent_path = format!("/sys/class/net/{}/statistics/", l.vg);
    let rcv_path = format!("/sys/class/net/{}/statistics/", l.vc);
    let tx0 = ns_read(&l.ns_g, &(sent_path.clone() + "tx_packets"))?;
    let txd0 = ns_read(&l.ns_g, &(sent_path.clone() + "tx_dropped"))?;
    let rx0 = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_packets"))?;
    let rxd0 = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_dropped"))?;
    let gen = Command::new("ip")
        .args(["netns", "exec", &l.ns_g])
        .arg(sibling("ringwire-gen")?)
        .args([
            "-i",
            &l.vg,
            "--rate",
            &a.rate.to_string(),
            "--size",
            &size.to_string(),
            "--ip",
            "4",
            "--l4",
            "udp",
            "--vlan-every",
            "0",
        ])
        .args(["--flows", "64", "--duration", &a.duration.to_string(), "--core", &a.gen_core.to_string()])
        .args(["--dst-mac", KEEP_MAC, "--dst-macs", &a.dst_macs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running ringwire-gen")?;
    if !gen.success() {
        bail!("ringwire-gen failed ({gen})");
    }
    std::thread::sleep(Duration::from_millis(500));
    let offered = ns_read(&l.ns_g, &(sent_path.clone() + "tx_packets"))? - tx0
        + ns_read(&l.ns_g, &(sent_path + "tx_dropped"))?
        - txd0;
    let delivered = ns_read(&l.ns_c, &(rcv_path.clone() + "rx_packets"))? - rx0;
    let veth_drops = ns_read(&l.ns_g, &format!("/sys/class/net/{}/statistics/tx_dropped", l.vg))? - txd0
        + ns_read(&l.ns_c, &(rcv_path + "rx_dropped"))?
        - rxd0;
    let (mut captured, mut claimed, mut tool_drops, mut user, mut sys) = (0, 0, 0, 0, 0);
    if let Some(r) = rcv.as_mut() {
        let mut child = r.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let (ok, u, s) = wait_rusage(&mut child)?;
        (user, sys) = (u, s);
        std::thread::sleep(Duration::from_millis(50));
        let lines: Vec<String> = r.stderr_lines.try_iter().collect();
        if let Some(stats) = &r.stats_json {
            if !ok {
                bail!("{tool} failed: {}", lines.join(" | "));
            }
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(stats)?)?;
            let c = &v["consumers"][0];
            claimed =
                if tool == "ringwire-pcap" { c["written"].as_u64() } else { c["delivered"].as_u64() }.unwrap_or(0);
            tool_drops = v["ports"][0]["kernel_drops"].as_u64().unwrap_or(0) + c["queue_dropped"].as_u64().unwrap_or(0);
        } else if tool == "tcpdump" {
            claimed = number_before(&lines, "packets captured").context("tcpdump's summary")?;
            tool_drops = number_before(&lines, "dropped by kernel").unwrap_or(0);
        } else {
            claimed = number_before(&lines, "packets passed filter").context("netsniff-ng's summary")?;
            tool_drops = number_before(&lines, "packets failed filter").unwrap_or(0);
        }
        // Trust the file, not the summary: count what was written.
        captured = match &r.file {
            Some(f) => count_records(f)?,
            None => claimed,
        };
        if let Some(f) = &r.file {
            let _ = std::fs::remove_file(f);
        }
    }
    let per = |ns: u64| if captured == 0 { 0.0 } else { ns as f64 / captured as f64 };
    let per_offered = |ns: u64| if offered == 0 { 0.0 } else { ns as f64 / offered as f64 };
    Ok(Run {
        tool: tool.into(),
        size,
        round,
        offered,
        delivered_to_iface: delivered,
        captured,
        claimed,
        tool_drops,
        veth_drops,
        user_ns_per_frame: per(user),
        sys_ns_per_frame: per(sys),
        captured_pps: captured as f64 / a.duration,
        user_ns_per_offered: per_offered(user),
        sys_ns_per_offered: per_offered(sys),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn run() -> Result<()> {
    let a = Args::parse();
    if !ringwire_engine::sys::is_root() {
        bail!("needs root: it builds network namespaces and opens packet sockets");
    }
    if a.gen_core == a.cap_core {
        bail!("--gen-core and --cap-core must differ: on one core the run measures contention, not capture");
    }
    if !(0.5..=600.0).contains(&a.duration) || a.rounds == 0 || a.rounds > 50 {
        bail!("--duration must be 0.5..=600 s and --rounds 1..=50");
    }
    let mut tools = Vec::new();
    for t in &a.tools {
        let bin = match t.as_str() {
            "tcpdump" | "netsniff-ng" => t.as_str(),
            "none" | "ringwire-count" | "ringwire-pcap" | "ringwire-kclass" | "ringwire-uclass" => "true",
            other => bail!("unknown tool `{other}`"),
        };
        if have(bin) {
            tools.push(t.clone());
        } else {
            eprintln!("note: {t} is not installed; skipped");
        }
    }
    for s in &a.sizes {
        if !(60..=1514).contains(s) {
            bail!("--sizes: {s} is out of range (60..=1514)");
        }
    }
    let lab = build_lab(a.cap_core)?;
    eprintln!(
        "lab: {} (gen, core {}) -> {} (capture, core {}); NIC-like veth: GRO on, TSO off, threaded NAPI pinned",
        lab.vg, a.gen_core, lab.vc, a.cap_core
    );
    let mut runs = Vec::new();
    for round in 0..a.rounds {
        for &size in &a.sizes {
            // Alternate the order every round so drift in the host does not favour one tool.
            let mut order = tools.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for t in &order {
                let r = measure(t, &lab, &a, size, round).with_context(|| format!("{t} at {size} bytes"))?;
                eprintln!(
                    "round {} {:>5} B {:<15} offered {:>9} captured {:>9} drops {:>8} veth-drops {:>8} user {:>6.0} ns/f sys {:>6.0} ns/f",
                    round + 1,
                    size,
                    t,
                    r.offered,
                    r.captured,
                    r.tool_drops,
                    r.veth_drops,
                    r.user_ns_per_frame,
                    r.sys_ns_per_frame
                );
                runs.push(r);
            }
        }
    }
    let mut table: BTreeMap<(usize, usize), serde_json::Value> = BTreeMap::new();
    println!(
        "\n| size | receiver | offered Mpps | captured Mpps (min-max) | captured/offered | tool drops | veth drops | user ns/frame | sys ns/frame | user ns/offered | sys ns/offered |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &size in &a.sizes {
        for (ti, t) in tools.iter().enumerate() {
            let rs: Vec<&Run> = runs.iter().filter(|r| r.size == size && &r.tool == t).collect();
            let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
            let offered = m(&|r| r.offered as f64) / a.duration / 1e6;
            let captured = m(&|r| r.captured_pps) / 1e6;
            let lo = rs.iter().map(|r| r.captured_pps).fold(f64::INFINITY, f64::min) / 1e6;
            let hi = rs.iter().map(|r| r.captured_pps).fold(0.0, f64::max) / 1e6;
            let ratio = m(&|r| if r.offered == 0 { 0.0 } else { r.captured as f64 / r.offered as f64 });
            let drops = m(&|r| r.tool_drops as f64);
            let vdrops = m(&|r| r.veth_drops as f64);
            let user = m(&|r| r.user_ns_per_frame);
            let sys = m(&|r| r.sys_ns_per_frame);
            let user_off = m(&|r| r.user_ns_per_offered);
            let sys_off = m(&|r| r.sys_ns_per_offered);
            println!(
                "| {size} | {t} | {offered:.3} | {captured:.3} ({lo:.3}-{hi:.3}) | {:.1} % | {drops:.0} | {vdrops:.0} | {user:.0} | {sys:.0} | {user_off:.0} | {sys_off:.0} |",
                ratio * 100.0
            );
            table.insert(
                (size, ti),
                serde_json::json!({"size": size, "tool": t, "offered_mpps": offered, "captured_mpps": captured,
                    "captured_ratio": ratio, "tool_drops": drops, "veth_drops": vdrops,
                    "user_ns_per_frame": user, "sys_ns_per_frame": sys,
                    "user_ns_per_offered": user_off, "sys_ns_per_offered": sys_off}),
            );
        }
    }
    println!(
        "\nmedians of {} rounds, {} s each; generator ringwire-gen {} on core {}, receivers on core {}",
        a.rounds,
        a.duration,
        if a.rate == 0 { "flat out".to_owned() } else { format!("at {} frames/s", a.rate) },
        a.gen_core,
        a.cap_core
    );
    if let Some(p) = &a.json {
        let doc = serde_json::json!({"args": {"sizes": a.sizes, "duration_s": a.duration, "rounds": a.rounds,
            "gen_core": a.gen_core, "cap_core": a.cap_core, "rate": a.rate, "dst_macs": a.dst_macs}, "medians": table.values().collect::<Vec<_>>(), "runs": runs});
        std::fs::write(p, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    for t in &tools {
        for s in &a.sizes {
            for ext in ["pcap", "json", "toml", "ready"] {
                let _ = std::fs::remove_file(Path::new(&a.out_dir).join(format!("rwbench-{t}-{s}.{ext}")));
            }
        }
    }
    Ok(())
}
