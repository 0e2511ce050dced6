//! `ringwire`: run the engine from a config, capture like tcpdump, or run the demo lab.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use ringwire_engine::{
    config::{
        first_repeat, ConsumerConfig, ConsumerKind, FanoutMode, FilterList, PortConfig, PrintHex, PrintTime, WaitMode,
    },
    engine::{Report, StopReason},
    lab::Lab,
    pcapio::{self, MAX_SNAPLEN},
    stats::{egress_down_line, quarantine_line, unfit_line, Snapshot},
    sys, Config, Engine,
};
use ringwire_engine::{out, out_raw, say, say_raw};

/// ringwire: a userspace packet engine on AF_PACKET rings.
#[derive(Parser)]
#[command(name = "ringwire", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log filter (tracing syntax, e.g. `info` or `ringwire_engine=debug`); RUST_LOG also works.
    #[arg(long, global = true)]
    log: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine from a TOML config until SIGINT/SIGTERM (or until its pcap sources end).
    Run {
        /// The config file.
        config: PathBuf,
        /// Progress line every N ms on stderr (overrides engine.progress_ms).
        #[arg(long)]
        progress_ms: Option<u64>,
        /// Create this file (holding the pid) once every port is open and the
        /// workers run (for scripts); one an earlier run left is removed at start.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Control socket path (overrides control.socket); `none` disables it.
        #[arg(long)]
        control_socket: Option<PathBuf>,
    },
    /// Capture like tcpdump: -i IFACE... or -r FILE..., -w OUT, -c COUNT, then a pcap-filter expression.
    #[command(version, disable_version_flag = true, display_name = "ringwire")]
    Capture(Box<CaptureArgs>),
    /// A self-contained lab: two namespaces, a veth pair, ringwire-gen on one side, the engine on the other.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct CaptureArgs {
    /// Interface to capture on (repeatable).
    #[arg(short = 'i', long = "interface")]
    interfaces: Vec<String>,
    /// pcap file to read instead (repeatable).
    #[arg(short = 'r', long = "read")]
    reads: Vec<PathBuf>,
    /// Write frames to this pcap file instead of printing a line per frame
    /// (`-`: to standard output, for a pipe into another program).
    #[arg(short = 'w', long = "write")]
    write: Option<PathBuf>,
    /// Stop after this many frames.
    #[arg(short = 'c', long = "count")]
    count: Option<u64>,
    /// Cores for workers, comma-separated [default: 0 with -i; every core with -r,
    /// which the workers then read a segment at a time, keeping the file's order;
    /// fewer when their queues, 32 MiB each, would take over half the memory available].
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Bytes kept per frame, at least 14 (0: the default, 262144, tcpdump's default, as its -s 0;
    /// larger values are taken as 262144, as libpcap does).
    #[arg(short = 's', long, default_value_t = MAX_SNAPLEN)]
    snaplen: u32,
    /// Do not put the interface in promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    no_promisc: bool,
    /// Hand each frame over as soon as it arrives (a TPACKET_V2 ring)
    /// instead of in blocks, as tcpdump's option of the same name does. Each
    /// frame gets a slot with room for the snap length, up to a 64 KiB
    /// offloaded (GSO, GRO) frame; longer ones, which only BIG TCP makes,
    /// are cut there.
    #[arg(long = "immediate-mode")]
    immediate: bool,
    /// Fanout mode across workers.
    #[arg(long, value_enum, default_value_t = FanoutMode::Hash)]
    fanout: FanoutMode,
    /// How workers wait.
    #[arg(long, value_enum, default_value_t = WaitMode::IoUring)]
    wait: WaitMode,
    /// With -w: start a new file after this many MiB (tcpdump's -C counts
    /// millions of bytes): OUT, OUT.1.pcap, OUT.2.pcap, ...
    #[arg(short = 'C', long = "file-size", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    rotate_mb: Option<u64>,
    /// With -C: keep at most this many files, removing the oldest as a new
    /// one starts, so a long capture takes bounded space. With -G: stop
    /// after this many files, as tcpdump.
    #[arg(short = 'W', long = "file-count", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rotate_files: Option<u32>,
    /// With -w: start a new file every this many seconds (with the first
    /// frame after), named by -w's pattern run through strftime(3) at the
    /// local time it starts (`-w trace-%Y%m%d-%H%M%S.pcap`), as tcpdump's -G.
    #[arg(short = 'G', value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    rotate_s: Option<u64>,
    /// Size of each worker's kernel ring, in KiB (as tcpdump's -B), in whole
    /// blocks of 256 KiB [default: 65536, 64 MiB].
    #[arg(short = 'B', long = "buffer-size", value_name = "KIB", value_parser = clap::value_parser!(u32).range(1..))]
    buffer_kib: Option<u32>,
    /// Which frames of an interface to capture, as tcpdump's -Q: those that
    /// arrive (ringwire's default), those the host sends, or both
    /// (tcpdump's default).
    #[arg(short = 'Q', long = "direction", value_enum, default_value_t = Direction::In)]
    direction: Direction,
    /// Printing: the time on each line, as tcpdump's -t options (local time): -t
    /// none, -tt seconds since the epoch, -ttt since the previous frame,
    /// -tttt date and time, -ttttt since the first frame.
    #[arg(short = 't', action = clap::ArgAction::Count)]
    time: u8,
    /// Printing: show each frame's link-level header (MAC addresses, ethertype), as tcpdump's -e.
    #[arg(short = 'e')]
    link_header: bool,
    /// Printing: dump each frame in hex under its line, from the
    /// network-layer header on (-xx: link-level header included), as tcpdump's.
    #[arg(short = 'x', action = clap::ArgAction::Count)]
    hex: u8,
    /// Printing: dump each frame in hex and ASCII under its line, from the
    /// network-layer header on (-XX: link-level header included), as tcpdump's.
    #[arg(short = 'X', action = clap::ArgAction::Count)]
    hex_ascii: u8,
    /// Printing: print each frame under its line in ASCII (other bytes as
    /// `.`), from the network-layer header on (-AA: link-level header
    /// included), as tcpdump's; -x and -X win over it.
    #[arg(short = 'A', action = clap::ArgAction::Count)]
    ascii: u8,
    /// Printing: the times' fraction of a second, as tcpdump's option of
    /// the same name: micro (6 digits, its default) or nano (9). Files
    /// written with -w always have nanosecond times.
    #[arg(long = "time-stamp-precision", value_enum, value_name = "PRECISION")]
    precision: Option<Precision>,
    /// Printing: nanosecond times (--time-stamp-precision nano).
    #[arg(long, conflicts_with_all = ["precision", "micro"])]
    nano: bool,
    /// Printing: microsecond times, the default (--time-stamp-precision micro).
    #[arg(long, conflicts_with = "precision")]
    micro: bool,
    /// Printing: TCP sequence and acknowledgment numbers as they are on the
    /// wire, instead of relative to each conversation's first (tcpdump's -S).
    #[arg(short = 'S', long = "absolute-tcp-sequence-numbers")]
    absolute_seq: bool,
    /// Printing: less on each line, as tcpdump's -q: a TCP segment as
    /// `tcp LEN`, ethertypes by name alone, no dump of what is not decoded.
    #[arg(short = 'q')]
    quick: bool,
    /// Accepted as tcpdump takes it (-n, -nn): ringwire never resolves
    /// addresses or port numbers to names.
    #[arg(short = 'n', action = clap::ArgAction::Count, hide_short_help = true)]
    numeric: u8,
    /// Accepted as tcpdump takes it (-U, packet-buffered): each batch of
    /// frames is written out as it arrives, whatever this says.
    #[arg(short = 'U', long = "packet-buffered", hide_short_help = true)]
    packet_buffered: bool,
    /// Accepted as tcpdump takes it (-l, line-buffered): printed lines are
    /// written out as each batch arrives, whatever this says.
    #[arg(short = 'l', hide_short_help = true)]
    line_buffered: bool,
    /// Read the pcap-filter expression from FILE (`#` starts a comment
    /// that runs to the end of its line), as tcpdump's -F.
    #[arg(short = 'F', value_name = "FILE")]
    filter_file: Option<PathBuf>,
    /// List the interfaces ringwire can capture on (Ethernet), numbered as
    /// tcpdump -D numbers them, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    list_interfaces: bool,
    /// Accepted as tcpdump takes it (-K, no checksum verification):
    /// ringwire's lines never show checksums, so none is verified.
    #[arg(short = 'K', hide_short_help = true)]
    no_checksums: bool,
    /// Accepted as tcpdump takes it (-O, no optimizer): the filter keeps
    /// the same frames with libpcap's optimizer.
    #[arg(short = 'O', hide_short_help = true)]
    no_optimize: bool,
    /// Accepted as tcpdump takes it (-N, no domain names): no names are printed.
    #[arg(short = 'N', hide_short_help = true)]
    no_domains: bool,
    /// Print the version (`--version` only: tcpdump's -V is another option).
    #[arg(long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(flatten)]
    unsupported: Unsupported,
    /// pcap-filter expression (as tcpdump takes it).
    expression: Vec<String>,
}

/// tcpdump options `ringwire capture` does not have: taken only to be
/// refused with a message that says so (clap's own suggested passing them
/// after `--`, which made them part of the expression).
#[derive(clap::Args)]
struct Unsupported {
    #[arg(short = 'v', action = clap::ArgAction::Count, hide = true)]
    verbose: u8,
    #[arg(short = 'L', hide = true)]
    list_link_types: bool,
    #[arg(short = 'I', hide = true)]
    monitor: bool,
    #[arg(short = '#', hide = true)]
    number: bool,
    #[arg(short = 'b', hide = true)]
    asdot: bool,
    #[arg(short = 'f', hide = true)]
    foreign: bool,
    #[arg(short = 'H', hide = true)]
    mesh: bool,
    #[arg(long = "print", hide = true)]
    print: bool,
    #[arg(short = 'y', hide = true)]
    link_type: Option<String>,
    #[arg(short = 'Z', hide = true)]
    user: Option<String>,
    #[arg(short = 'j', hide = true)]
    tstamp_type: Option<String>,
    #[arg(short = 'J', hide = true)]
    list_tstamp_types: bool,
    #[arg(short = 'E', hide = true)]
    esp_secret: Option<String>,
    #[arg(short = 'M', hide = true)]
    md5_secret: Option<String>,
    #[arg(short = 'z', hide = true)]
    postrotate: Option<String>,
    #[arg(short = 'T', hide = true)]
    packet_type: Option<String>,
    #[arg(short = 'V', hide = true)]
    file_list: Option<String>,
}

impl Unsupported {
    /// The first tcpdump option given that ringwire does not have, and why.
    fn refusal(&self) -> Option<String> {
        let why = [
            (
                self.verbose > 0,
                "-v",
                "it prints tcpdump's default lines; the detail -v adds (IP TTL, ID and options, checksums, \
                 protocol fields) is not decoded",
            ),
            (self.list_link_types, "-L", "it captures Ethernet only (EN10MB)"),
            (self.link_type.is_some(), "-y", "it captures Ethernet only (EN10MB)"),
            (self.monitor, "-I", "it captures Ethernet only, without 802.11 monitor mode"),
            (self.number, "-#", "lines are not numbered"),
            (self.asdot, "-b", "BGP is not decoded"),
            (self.foreign, "-f", "no names are printed"),
            (self.mesh, "-H", "802.11s is not decoded"),
            (self.print, "--print", "it prints or writes (-w), not both"),
            (self.user.is_some(), "-Z", "it keeps the user it runs as"),
            (self.tstamp_type.is_some() || self.list_tstamp_types, "-j/-J", "the kernel's software timestamps only"),
            (self.esp_secret.is_some(), "-E", "ESP is not decrypted"),
            (self.md5_secret.is_some(), "-M", "TCP-MD5 signatures are not checked"),
            (self.postrotate.is_some(), "-z", "no command is run after a rotation"),
            (self.packet_type.is_some(), "-T", "packets are decoded by their ports and types only"),
            (self.file_list.is_some(), "-V", "give each file with its own -r"),
        ];
        why.into_iter()
            .find(|(given, ..)| *given)
            .map(|(_, flag, why)| format!("{flag}: tcpdump's option is not supported by ringwire capture: {why}"))
    }
}

/// `capture --time-stamp-precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Precision {
    /// Microseconds.
    Micro,
    /// Nanoseconds.
    Nano,
}

/// `capture -Q`: which frames of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Direction {
    /// Frames that arrive.
    In,
    /// Frames the host sends (the expression `outbound`, in the kernel).
    Out,
    /// Both.
    Inout,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Seconds of traffic (at least 1).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Frames per second offered by the generator (at least 1).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Directory for the pcap file (default: a new directory under /tmp).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // A bad command line exits 1, as tcpdump's and as every other error here.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 });
    });
    let default_level = match cli.cmd {
        Cmd::Run { .. } => "info",
        _ => "warn",
    };
    // A bad --log is refused; a bad RUST_LOG (set for some other program
    // too, perhaps) is named and the default level used.
    let (filter, bad_env) = match (&cli.log, std::env::var("RUST_LOG").ok()) {
        (Some(log), _) => match ringwire_engine::control::parse_log_filter(log) {
            Ok(f) => (f, None),
            Err(e) => {
                say!("ringwire: error: --log {log}: {e}");
                return ExitCode::FAILURE;
            }
        },
        (None, Some(env)) => match ringwire_engine::control::parse_log_filter(&env) {
            Ok(f) => (f, None),
            Err(e) => (tracing_subscriber::EnvFilter::new(default_level), Some(format!("RUST_LOG={env}: {e}"))),
        },
        (None, None) => (tracing_subscriber::EnvFilter::new(default_level), None),
    };
    // The filter sits behind a reload handle: the control socket's `log.level` replaces it.
    let (env_filter, log_handle) = tracing_subscriber::reload::Layer::new(filter);
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        tracing_subscriber::registry()
            .with(env_filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colours only on a terminal: a log file or a pipe gets plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init();
    }
    if let Some(bad) = bad_env {
        tracing::warn!("ignoring {bad}; logging at {default_level}");
    }
    let set_log: ringwire_engine::control::SetLog = Box::new(move |directives: &str| {
        let f = ringwire_engine::control::parse_log_filter(directives)?;
        log_handle.reload(f).map_err(|e| e.to_string())
    });
    let res = match cli.cmd {
        Cmd::Run { config, progress_ms, ready_file, control_socket } => {
            cmd_run(&config, progress_ms, ready_file.as_deref(), control_socket, set_log)
        }
        Cmd::Capture(a) => cmd_capture(*a),
        Cmd::Demo(a) => cmd_demo(&a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            say!("ringwire: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// What SIGHUP and SIGUSR1 do besides SIGINT and SIGTERM, which stop a run.
#[derive(Default)]
struct OtherSignals<'a> {
    /// SIGHUP.
    hup: OnHup<'a>,
    /// SIGUSR1 sets this flag (a capture prints its counts and goes on, as
    /// tcpdump does); without it, SIGUSR1 keeps its default action.
    usr1: Option<&'a Arc<AtomicBool>>,
}

/// What SIGHUP does.
#[derive(Default)]
enum OnHup<'a> {
    /// Its default action (ends the process).
    #[default]
    Default,
    /// Sets this flag (`ringwire run`: reload the file's filters).
    Reload(&'a Arc<AtomicBool>),
    /// Stops the run as SIGINT does (a capture: tcpdump's, when the terminal
    /// or the ssh session it ran in goes).
    Stop,
}

/// A signal's name, for what the run says on it.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "SIGTERM",
    }
}

/// Signals that end a run cleanly (SIGINT, SIGTERM), and what `other` asks
/// of SIGHUP and SIGUSR1. One thread waits for them (their handlers are
/// installed before this returns), sets the signal's flag and wakes the
/// calling thread, the one that will [`supervise`].
fn stop_flag(other: OtherSignals<'_>, force: Force) -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let flag = Arc::new(AtomicBool::new(false));
    let mut sigs = vec![SIGINT, SIGTERM];
    if !matches!(other.hup, OnHup::Default) {
        sigs.push(SIGHUP);
    }
    if other.usr1.is_some() {
        sigs.push(SIGUSR1);
    }
    let mut signals = signal_hook::iterator::Signals::new(&sigs).context("installing signal handlers")?;
    let supervisor = std::thread::current();
    let reload = match other.hup {
        OnHup::Reload(flag) => Some(flag.clone()),
        OnHup::Default | OnHup::Stop => None,
    };
    let (stop, usr1) = (flag.clone(), other.usr1.cloned());
    std::thread::Builder::new()
        .name("rw-signals".into())
        .spawn(move || {
            let mut first: Option<Instant> = None;
            for sig in signals.forever() {
                match (&reload, sig) {
                    (Some(reload), SIGHUP) => reload.store(true, std::sync::atomic::Ordering::SeqCst),
                    (_, SIGUSR1) => {
                        if let Some(usr1) = &usr1 {
                            usr1.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    // The same request delivered twice: `timeout` and a shell's job
                    // control signal both the process and its process group.
                    _ if first.is_some_and(|t| t.elapsed() < SAME_SIGNAL) => {}
                    // Before the engine has started: nothing to stop or to count yet.
                    _ if force == Force::OnSecondSignal && Start::exit_if_starting() => {
                        ringwire_engine::engine::abort_start();
                        say!("ringwire: {} while starting: exiting now; nothing was captured", signal_name(sig));
                        exit_on_signal(sig);
                    }
                    // A second one while stopping: the user gives up on a stop that
                    // waits (a pipe's reader that no longer reads, a stalled disk).
                    _ if force == Force::OnSecondSignal && stop.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                        say!(
                            "ringwire: {} while stopping: exiting now; what the queues still held is not \
                             written, and the counters are not printed",
                            signal_name(sig)
                        );
                        exit_on_signal(sig);
                    }
                    _ => {
                        first = Some(Instant::now());
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                supervisor.unpark();
            }
        })
        .context("starting the signal thread")?;
    Ok(flag)
}

/// Where the run is: a SIGINT or SIGTERM before the engine has started
/// (rings of a large geometry take seconds to set up, in one system call
/// each) exits at once, as nothing was captured yet; the engine, once
/// started, says nothing more (no "started", no ready file) if that exit is
/// under way.
struct Start;

static START: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(Start::STARTING);

/// The control socket this run bound, removed by an exit on a signal.
static SOCKET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

impl Start {
    const STARTING: u8 = 0;
    const STARTED: u8 = 1;
    const EXITING: u8 = 2;

    /// The signal thread: whether the engine was still starting, and so
    /// the run now exits (no longer starting, either way).
    fn exit_if_starting() -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        START.compare_exchange(Self::STARTING, Self::EXITING, SeqCst, SeqCst).is_ok()
    }

    /// The engine has started: unless an exit on a signal is under way,
    /// when this thread waits for it.
    fn started() {
        use std::sync::atomic::Ordering::SeqCst;
        if START.compare_exchange(Self::STARTING, Self::STARTED, SeqCst, SeqCst).is_err() {
            loop {
                std::thread::park();
            }
        }
    }
}

/// Exit at once on signal `sig` (status 128 + it), removing the control
/// socket this run bound.
fn exit_on_signal(sig: i32) -> ! {
    if let Some(path) = SOCKET.get() {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(128 + sig);
}

/// A SIGINT or SIGTERM this soon after the one that began the stop is the
/// same request delivered twice (`timeout` signals the process, then its
/// process group), not a user's second Ctrl-C.
const SAME_SIGNAL: Duration = Duration::from_millis(200);

/// What a second SIGINT or SIGTERM does while the engine stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Force {
    /// Exit at once (status 128 + the signal), without waiting for the stop.
    OnSecondSignal,
    /// Nothing more: the stop finishes (the demo must remove its lab).
    Never,
}

/// How often [`supervise`] looks at what nobody wakes it for: a worker that
/// exited, a capture's count reached, the demo's generator done. Signals
/// and control requests wake it at once. Sleeping this long between looks
/// (not a few milliseconds) matters when it shares a core with a worker
/// that busy-polls: each wake-up preempts that worker.
const SUPERVISOR_TICK: Duration = Duration::from_millis(100);

/// How long the supervisor applies control requests in one pass before it
/// looks at signals, stopped workers and SIGHUP again.
const CONTROL_BUDGET: Duration = Duration::from_millis(50);

/// Run until a signal, a stop reason, or `extra()` says so; print progress.
/// `stopping()` is called once, as the engine begins to stop.
fn supervise(
    engine: Engine,
    progress_ms: u64,
    signals: &AtomicBool,
    mut extra: impl FnMut(&Engine) -> bool,
    stopping: impl FnOnce(),
) -> Report {
    let mut last = (Instant::now(), engine.snapshot());
    let mut next_progress = Instant::now() + Duration::from_millis(progress_ms.max(1));
    let mut last_settle = Instant::now();
    loop {
        if signals.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("signal received; stopping");
            break;
        }
        if let Some(r) = engine.should_stop() {
            match r {
                StopReason::WorkerExited => tracing::warn!("a worker exited; stopping"),
                StopReason::SourcesExhausted => {
                    tracing::info!("every source was read to its end (or removed); stopping")
                }
                StopReason::LimitReached => {
                    tracing::info!("a consumer reached its frame limit, or its output was closed or failed; stopping");
                }
            }
            break;
        }
        if extra(&engine) {
            break;
        }
        // (At most a tick apart: a file replay spins this loop every millisecond.)
        if last_settle.elapsed() >= SUPERVISOR_TICK {
            last_settle = Instant::now();
            engine.settle_filters();
            engine.warn_drops();
        }
        if progress_ms > 0 && Instant::now() >= next_progress {
            let snap = engine.snapshot();
            say!("{}", progress_line(&last.1, &snap, last.0.elapsed()));
            last = (Instant::now(), snap);
            next_progress += Duration::from_millis(progress_ms);
        }
        // Replaying files, the end comes as soon as they are read: notice it quickly.
        let tick = if engine.is_finite() { Duration::from_millis(1) } else { SUPERVISOR_TICK };
        let wait =
            if progress_ms > 0 { next_progress.saturating_duration_since(Instant::now()).min(tick) } else { tick };
        std::thread::park_timeout(wait);
    }
    // Whatever began the stop, a SIGINT or SIGTERM from now on is a second
    // one: it ends a stop that waits (a pipe's reader that no longer reads).
    signals.store(true, std::sync::atomic::Ordering::SeqCst);
    stopping();
    engine.stop()
}

/// Frames the receiving interfaces' devices could not take (`if_missed`
/// of every port; `None`: no interface port): libpcap's "dropped by
/// interface". Not `if_dropped` (`rx_dropped`), which also counts frames
/// sockets did see and no protocol took after them (a VLAN tag with no
/// VLAN device).
fn interface_drops(s: &Snapshot) -> Option<u64> {
    s.ports.iter().filter_map(|p| p.if_drops).fold(None, |sum, d| Some(sum.unwrap_or(0) + d.missed))
}

fn progress_line(prev: &Snapshot, now: &Snapshot, dt: Duration) -> String {
    let rx = |s: &Snapshot| s.ports.iter().map(|p| p.received).sum::<u64>();
    let bytes = |s: &Snapshot| s.ports.iter().map(|p| p.bytes).sum::<u64>();
    let drops: u64 = now.ports.iter().map(|p| p.kernel_drops).sum();
    let secs = dt.as_secs_f64().max(1e-6);
    let pps = (rx(now) - rx(prev)) as f64 / secs;
    let bps = (bytes(now) - bytes(prev)) as f64 * 8.0 / secs;
    let mut line = format!(
        "[{:6.1}s] rx {:>10} frames {:>9.1} kpps {:>7.3} Gbit/s  kernel drops {}",
        now.elapsed_s,
        rx(now),
        pps / 1e3,
        bps / 1e9,
        drops
    );
    if let Some(d) = interface_drops(now) {
        line.push_str(&format!(", interface {d}"));
    }
    for c in &now.consumers {
        line.push_str(&format!(" | {} {}", c.name, c.delivered));
        if c.queue_dropped > 0 {
            line.push_str(&format!(" (q-drop {})", c.queue_dropped));
        }
        if c.write_errors > 0 {
            line.push_str(&format!(" (write-err {})", c.write_errors));
        }
    }
    line
}

/// Print the final report, on standard output unless a consumer wrote
/// there (a pcap stream, printed lines: the report would be read as more
/// of them); returns the exit code.
fn finish(report: &Report, engine_json: Option<&Path>) -> Result<ExitCode> {
    let to_stderr =
        report.files.iter().any(|f| pcapio::is_stdio(f)) || report.snapshot.consumers.iter().any(|c| c.kind == "print");
    let mut text = report.snapshot.table();
    if report.unreconciled.is_empty() {
        text.push_str("accounting: all counters reconcile\n");
    } else {
        for u in &report.unreconciled {
            text.push_str(&format!("accounting: MISMATCH {u}\n"));
        }
    }
    for c in &report.snapshot.consumers {
        for (i, st) in c.filter_stages.iter().enumerate() {
            text.push_str(&format!(
                "consumer `{}` filter stage {} `{}`: evaluated {}, passed {}, dropped {}\n",
                c.name,
                i + 1,
                st.filter,
                st.evaluated,
                st.passed,
                st.dropped
            ));
        }
        let what = format!("consumer `{}`", c.name);
        let quarantine = quarantine_line(&what, c.filter_errors, c.filter_quarantined.as_deref(), c.filter_quarantines);
        text.extend(quarantine.map(|l| l + "\n"));
        text.extend(unfit_line(&what, c.unfit).map(|l| l + "\n"));
        text.extend(egress_down_line(&what, c.egress_down).map(|l| l + "\n"));
    }
    for p in &report.snapshot.ports {
        let what = format!("port `{}`", p.name);
        let quarantines = u64::from(p.filter_quarantined.is_some());
        let quarantine = quarantine_line(&what, p.filter_errors, p.filter_quarantined.as_deref(), quarantines);
        text.extend(quarantine.map(|l| l + "\n"));
    }
    for f in &report.files {
        text.push_str(&format!("wrote {}\n", f.display()));
    }
    // When standard output's reader has left (`| head`), the report goes to
    // standard error rather than nowhere (or a panic of print!).
    if to_stderr || !out_raw!("{text}") {
        say_raw!("{text}");
    }
    for e in &report.errors {
        say!("ringwire: error: {e}");
    }
    let mut ok = report.errors.is_empty() && report.unreconciled.is_empty();
    if let Some(path) = engine_json {
        if let Err(e) = write_stats_json(path, &report.snapshot) {
            say!("ringwire: error: {e:#}");
            ok = false;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Write the final counters to `path` whole or not at all (a new file
/// renamed over it: a full disk leaves no empty or cut file there).
fn write_stats_json(path: &Path, snapshot: &ringwire_engine::stats::Snapshot) -> Result<()> {
    use std::io::Write as _;
    let json = serde_json::to_string_pretty(snapshot).context("serializing counters")? + "\n";
    let context = || format!("engine.stats_json: writing {}", path.display());
    let mut tmp =
        tempfile::Builder::new().prefix(".ringwire-stats").tempfile_in(sys::dir_of(path)).with_context(context)?;
    // (A temporary file is its owner's alone; the counters are for anyone, as a plain write's were.)
    let perms = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    tmp.as_file().set_permissions(perms).with_context(context)?;
    tmp.write_all(json.as_bytes()).and_then(|()| tmp.as_file().sync_data()).with_context(context)?;
    tmp.persist(path).map_err(|e| e.error).with_context(context)?;
    Ok(())
}

fn cmd_run(
    path: &Path,
    progress_ms: Option<u64>,
    ready_file: Option<&Path>,
    control_socket: Option<PathBuf>,
    set_log: ringwire_engine::control::SetLog,
) -> Result<ExitCode> {
    // A ready file a run before left says nothing of this one: gone until
    // this engine is ready, so a script waiting for it never goes ahead
    // early. (It stays once the run ends: a replay may end before its
    // script has looked.)
    if let Some(f) = ready_file.filter(|f| std::fs::symlink_metadata(f).is_ok_and(|m| m.is_file())) {
        if let Err(e) = std::fs::remove_file(f) {
            tracing::warn!(file = %f.display(), error = %e, "--ready-file: cannot remove it");
        }
    }
    let mut config = Config::load(path)?;
    match control_socket {
        Some(p) if p.as_os_str() == "none" => config.control.enabled = false,
        Some(p) => config.control.socket = p,
        None => {}
    }
    if let Some(stats) = &config.engine.stats_json {
        sys::check_writable(stats)
            .with_context(|| format!("engine.stats_json: {}: cannot be written", stats.display()))?;
    }
    // SIGHUP: reload the file and swap the filters that changed. Installed
    // before anything can signal readiness, so a reload sent as soon as the
    // ready file appears never meets the default action (terminate).
    let hup = Arc::new(AtomicBool::new(false));
    let signals = stop_flag(OtherSignals { hup: OnHup::Reload(&hup), ..Default::default() }, Force::OnSecondSignal)?;
    // The socket first: a path that cannot be used ends the run before the
    // engine begins its outputs (truncating an existing capture).
    // The default path is the engine's own, a service's runtime directory
    // it makes; when it cannot be made (not root) the run goes on without
    // it. Taken by another engine, it is refused as any path is: `ringctl`
    // would drive that engine, not this one. A path the user chose must
    // work, in a directory that exists.
    let default_socket = config.control.socket == Path::new(ringwire_engine::config::DEFAULT_CONTROL_SOCKET);
    let started = config.control.enabled.then(|| {
        ringwire_engine::control::server::Server::start(&ringwire_engine::control::server::ServerOptions {
            path: config.control.socket.clone(),
            max_clients: config.control.max_clients,
            idle_timeout: Duration::from_secs(config.control.idle_timeout_s),
            notify: Some(std::thread::current()),
            create_dir: default_socket,
        })
    });
    let started = match started {
        Some(Err(e @ ringwire_engine::control::server::ControlStartError::InUse(_))) => {
            bail!("{e}: give this engine a socket of its own with --control-socket PATH (or `none`)")
        }
        Some(Err(e)) if !default_socket => return Err(e.into()),
        s => s,
    };
    if let Some(Ok(_)) = &started {
        let _ = SOCKET.set(config.control.socket.clone());
    }
    let engine = Engine::start(&config);
    // (An exit on a signal under way waits here: no error of the interrupted start is said.)
    Start::started();
    let engine = engine?;
    // Said once the engine runs: a run that failed to start listened to nobody.
    let control = match started {
        Some(Ok(s)) => {
            tracing::info!(path = %config.control.socket.display(), "control socket listening");
            Some(s)
        }
        Some(Err(e)) => {
            tracing::warn!("{e}; running without a control socket (set control.socket or --control-socket)");
            None
        }
        None => None,
    };
    let mut handler = ringwire_engine::control::Handler::new(set_log);
    if let Some(f) = ready_file {
        std::fs::write(f, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", f.display()))?;
    }
    let mut last_reattach = Instant::now();
    let report = supervise(
        engine,
        progress_ms.unwrap_or(config.engine.progress_ms),
        &signals,
        |engine| {
            // Control requests: applied here, one at a time, in arrival order;
            // a signal is seen between two of them, and after a while of them the
            // rest wait for the next pass, so the checks below still run.
            if let Some(server) = &control {
                let budget = Instant::now() + CONTROL_BUDGET;
                while let Some(inc) = server.poll() {
                    let (answer, after) = handler.handle(engine, &inc);
                    server.answer(inc.client, &answer);
                    if after == ringwire_engine::control::After::Shutdown {
                        tracing::info!("shutdown requested on the control socket; stopping");
                        return true;
                    }
                    if signals.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() >= budget {
                        // Back at once for the rest (the supervisor's next wait does not sleep).
                        std::thread::current().unpark();
                        break;
                    }
                }
            }
            // An interface that went away and is back: its port receives again.
            if last_reattach.elapsed() >= Duration::from_secs(1) {
                last_reattach = Instant::now();
                engine.reattach_ports();
            }
            if hup.swap(false, std::sync::atomic::Ordering::Relaxed) {
                match Config::load(path).map_err(anyhow::Error::from).and_then(|c| Ok(engine.reload_filters(&c)?)) {
                    Ok(notes) if notes.is_empty() => tracing::info!("SIGHUP: no filter changed"),
                    Ok(notes) => {
                        for n in notes {
                            // The file and the engine now differ: said as a warning.
                            if n.starts_with(ringwire_engine::live::NOT_APPLIED) {
                                tracing::warn!("SIGHUP: {n}");
                            } else {
                                tracing::info!("SIGHUP: {n}");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!("SIGHUP: {}; the filters in force stay", format!("{e:#}").replace('\n', " "))
                    }
                }
            }
            false
        },
        || {
            // Whatever stops the engine, a request from now on is refused at
            // once rather than left unanswered while the queues drain.
            if let Some(server) = &control {
                server.refuse_from_now();
            }
        },
    );
    finish(&report, config.engine.stats_json.as_deref())
}

/// The first `max` cores this process may use (under `taskset` they need
/// not start at 0), or core 0 if none can be told.
fn default_workers(max: usize) -> Vec<usize> {
    let mut cores = sys::usable_cores();
    cores.truncate(max);
    if cores.is_empty() {
        cores.push(0);
    }
    cores
}

/// The port name of a file read with `-r`: its path, as tcpdump users know
/// it; when that is no name (over 64 characters, control characters), its
/// last 63 characters after `…`, control characters shown as `?`; and
/// `#2`, `#3`... after a name another source has.
fn source_name(path: &str, taken: &[&str]) -> String {
    const MAX: usize = ringwire_engine::config::MAX_NAME_CHARS;
    let clean: Vec<char> = path.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    let tail = |keep: usize| -> String {
        if clean.len() <= keep {
            clean.iter().collect()
        } else {
            std::iter::once('…').chain(clean[clean.len() - (keep - 1)..].iter().copied()).collect()
        }
    };
    let mut name = tail(MAX);
    let mut k = 2;
    while taken.contains(&name.as_str()) {
        let suffix = format!("#{k}");
        name = tail(MAX - suffix.len()) + &suffix;
        k += 1;
    }
    name
}

/// The largest frame `--immediate-mode` keeps whole: a 64 KiB GSO or GRO
/// frame (the kernel's default limit) with its Ethernet header and two tags.
const IMMEDIATE_LARGEST_FRAME: u32 = 65_535 + 14 + 8;

fn capture_config(a: &CaptureArgs) -> Result<Config> {
    if let Some(refusal) = a.unsupported.refusal() {
        bail!("{refusal}");
    }
    if a.snaplen > MAX_SNAPLEN {
        // (tcpdump's words.)
        bail!("invalid snaplen {} (must be >= 0 and <= {MAX_SNAPLEN})", a.snaplen);
    }
    if (1..14).contains(&a.snaplen) {
        bail!("-s {}: at least the 14 bytes of the Ethernet header are kept (0 keeps whole frames)", a.snaplen);
    }
    if a.interfaces.is_empty() == a.reads.is_empty() {
        bail!("give either -i IFACE (one or more) or -r FILE (one or more)");
    }
    if a.interfaces.iter().any(|i| i == "any") && sys::if_index("any").is_none() {
        bail!(
            "-i any: libpcap's pseudo-interface (every interface, link headers replaced) is not supported: \
             ringwire captures whole Ethernet frames from named interfaces; give each with -i (`ip -br link` lists them)"
        );
    }
    if a.reads.iter().any(|r| pcapio::is_stdio(r)) {
        bail!("-r -: reading a capture from standard input is not supported (pcap sources are mapped files): save it to a file and give that");
    }
    if a.count == Some(0) {
        bail!("-c 0: the frame count must be at least 1");
    }
    if a.time > 5 {
        bail!("-{}: only -t, -tt, -ttt, -tttt and -ttttt exist, as in tcpdump", "t".repeat(usize::from(a.time)));
    }
    if let Some(i) = first_repeat(&a.interfaces) {
        bail!("-i {i}: given twice");
    }
    if let Some(r) = first_repeat(&a.reads) {
        bail!("-r {}: given twice", r.display());
    }
    if a.write.as_deref().is_some_and(pcapio::is_stdio) && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("-w -: standard output is a terminal; redirect it to a file or pipe it into a program");
    }
    if a.direction != Direction::In && a.interfaces.is_empty() {
        bail!("-Q: a direction applies to interfaces (-i), not to files");
    }
    let mut expression = match &a.filter_file {
        None => a.expression.join(" "),
        Some(_) if !a.expression.is_empty() => bail!(
            "-F: the expression is read from the file; give none on the command line (tcpdump would ignore `{}`)",
            a.expression.join(" ")
        ),
        Some(f) => expression_file(f)?,
    };
    if a.direction == Direction::Out {
        // libpcap compiles `outbound` to the kernel's packet type, in the port's filter.
        expression = if expression.trim().is_empty() {
            "outbound".to_owned()
        } else if matches!(ringwire_filters::FilterSpec::parse(&expression), ringwire_filters::FilterSpec::Pcap(_)) {
            format!("outbound and ({expression})")
        } else {
            bail!("-Q out: the expression must be a pcap-filter expression (it is combined with `outbound`)");
        };
    }
    let filter = (!expression.trim().is_empty()).then_some(expression);
    let mut config = Config::default();
    // One worker on an interface; replayed files spread over every usable core.
    config.engine.workers = if !a.workers.is_empty() {
        a.workers.clone()
    } else {
        default_workers(if a.reads.is_empty() { 1 } else { usize::MAX })
    };
    if a.write.is_some()
        && (a.link_header || a.hex > 0 || a.hex_ascii > 0 || a.ascii > 0 || a.time > 0 || a.absolute_seq || a.quick)
    {
        bail!("-e, -q, -S, -t, -x, -X and -A change the printed lines: they do not apply with -w");
    }
    if a.write.is_some() && (a.micro || a.precision == Some(Precision::Micro)) {
        bail!("--micro: files written with -w have nanosecond times (tcpdump's --nano); the precision applies to printed lines");
    }
    if a.rotate_files.is_some() && a.rotate_mb.is_none() && a.rotate_s.is_none() {
        bail!("-W: keeping N files needs -C MIB, the size at which a new file starts, or -G SECONDS (as tcpdump's -W)");
    }
    if a.rotate_s.is_some() {
        match a.write.as_deref() {
            None => bail!("-G: rotating files needs -w FILE"),
            Some(w) if pcapio::is_stdio(w) => bail!("-G: -w - writes standard output, one stream: it cannot be rotated"),
            Some(_) if a.rotate_mb.is_some() => bail!("-G with -C: rotating both by time and by size is not supported"),
            Some(w) if !ringwire_engine::config::has_time_conversion(&w.to_string_lossy()) => bail!(
                "-G: -w {} holds no strftime conversion (as trace-%Y%m%d-%H%M%S.pcap): every new file would overwrite the one before",
                w.display()
            ),
            Some(_) => {}
        }
    }
    match a.write.as_deref() {
        _ if a.rotate_mb.is_none() => {}
        None => bail!("-C: rotating files needs -w FILE"),
        Some(w) if pcapio::is_stdio(w) => bail!("-C: -w - writes standard output, one stream: it cannot be rotated"),
        Some(_) => {}
    }
    config.engine.fanout = a.fanout;
    config.engine.wait = a.wait;
    if a.immediate {
        // A V2 ring's slots have one size: make it hold what tcpdump's would
        // (the default 2048 cut jumbo and offloaded frames at 1978 bytes).
        let keep = snaplen(a).min(IMMEDIATE_LARGEST_FRAME);
        config.ring.frame_size = ringwire_engine::ring::v2_frame_size(keep);
    }
    if let Some(kib) = a.buffer_kib {
        let blocks = (u64::from(kib) << 10).div_ceil(u64::from(config.ring.block_size));
        let most = u64::from(ringwire_engine::ring::MAX_BLOCK_RING_BLOCKS);
        if blocks > most && !a.immediate && !a.interfaces.is_empty() {
            bail!(
                "-B {kib}: at most {} KiB ({most} blocks of {} KiB, as many as the kernel numbers in a block ring)",
                most * u64::from(config.ring.block_size >> 10),
                config.ring.block_size >> 10
            );
        }
        config.ring.block_count = u32::try_from(blocks).unwrap_or(u32::MAX);
    }
    for i in &a.interfaces {
        // On an interface, the expression runs in the kernel: unwanted frames never reach the ring.
        config.ports.push(PortConfig {
            name: Some(i.clone()),
            uri: format!("afpacket:{i}"),
            filter: filter.clone(),
            promisc: !a.no_promisc,
            pace: Default::default(),
            rx: true,
            low_latency: a.immediate,
            outgoing: a.direction != Direction::In,
        });
    }
    for r in &a.reads {
        let Some(path) = r.to_str() else {
            bail!(
                "-r {}: the path is not valid UTF-8, which a port's URI must be: rename the file or link it",
                r.display()
            );
        };
        let taken: Vec<&str> = config.ports.iter().filter_map(|p| p.name.as_deref()).collect();
        let name = source_name(path, &taken);
        config.ports.push(PortConfig {
            name: Some(name),
            uri: format!("pcap:{path}"),
            filter: None,
            promisc: false,
            pace: Default::default(),
            rx: true,
            low_latency: false,
            outgoing: false,
        });
    }
    config.consumers.push(ConsumerConfig {
        name: if a.write.is_some() { "write".into() } else { "print".into() },
        kind: if a.write.is_some() { ConsumerKind::Pcap } else { ConsumerKind::Print },
        ports: Vec::new(),
        // From a file, the expression runs in userspace on the consumer.
        filter: if a.reads.is_empty() { None } else { filter.map(FilterList::One) },
        on_filter_failure: Default::default(),
        // As dumpcap: a write that fails ends the capture; what was written stays whole.
        on_write_error: Default::default(),
        path: a.write.clone(),
        snaplen: snaplen(a),
        rotate_mb: a.rotate_mb.unwrap_or(0),
        rotate_files: a.rotate_files.unwrap_or(0),
        rotate_s: a.rotate_s.unwrap_or(0),
        print_link: a.link_header,
        print_time: match a.time {
            0 => PrintTime::Time,
            1 => PrintTime::None,
            2 => PrintTime::Epoch,
            3 => PrintTime::Delta,
            4 => PrintTime::Date,
            _ => PrintTime::SinceFirst,
        },
        // (With -w, --nano is what the file has anyway, as tcpdump's -w --nano.)
        print_precision: if a.write.is_none() && (a.nano || a.precision == Some(Precision::Nano)) {
            ringwire_engine::config::PrintPrecision::Nano
        } else {
            ringwire_engine::config::PrintPrecision::Micro
        },
        // Each line names its port when there are several.
        print_port: None,
        print_absolute_seq: a.absolute_seq,
        print_quick: a.quick,
        print_hex: match (a.hex, a.hex_ascii, a.ascii) {
            // As tcpdump's: -X wins over -x, which wins over -A; doubled, the link-level header is dumped too.
            (_, 2.., _) => PrintHex::HexAscii,
            (_, 1, _) => PrintHex::NetworkHexAscii,
            (2.., 0, _) => PrintHex::Hex,
            (1, 0, _) => PrintHex::NetworkHex,
            (0, 0, 2..) => PrintHex::Ascii,
            (0, 0, 1) => PrintHex::NetworkAscii,
            _ => PrintHex::None,
        },
        split_by_worker: false,
        queue_mb: 32,
        to: None,
        limit: a.count,
    });
    if a.workers.is_empty() && !a.reads.is_empty() {
        let per_worker = ringwire_engine::engine::queue_bytes(&config.consumers[0], 1);
        let cores = std::mem::take(&mut config.engine.workers);
        config.engine.workers = workers_that_fit(cores, per_worker, sys::mem_available());
    }
    Ok(config)
}

/// The default workers for files (every usable core), as many of them as
/// one consumer's queues of `per_worker` bytes each fit in half the memory
/// `avail`able, as the engine requires: on a machine of many cores and
/// little memory, fewer workers rather than a refusal. At least one (the
/// engine then says what does not fit).
fn workers_that_fit(mut cores: Vec<usize>, per_worker: u64, avail: Option<u64>) -> Vec<usize> {
    if let Some(avail) = avail {
        let fit = usize::try_from(avail / 2 / per_worker.max(1)).unwrap_or(usize::MAX).max(1);
        if fit < cores.len() {
            tracing::info!(
                cores = cores.len(),
                workers = fit,
                "fewer workers than cores: their queues ({} MiB each) fit in half the memory available ({} MiB)",
                per_worker >> 20,
                avail >> 20
            );
            cores.truncate(fit);
        }
    }
    cores
}

/// The snap length `-s` asks for: 0 and anything over libpcap's largest
/// are its largest, as tcpdump takes them.
fn snaplen(a: &CaptureArgs) -> u32 {
    if a.snaplen == 0 {
        MAX_SNAPLEN
    } else {
        a.snaplen
    }
}

/// The pcap-filter expression in file `f` (tcpdump's -F): each `#` to the
/// end of its line blanked, as tcpdump blanks it.
fn expression_file(f: &Path) -> Result<String> {
    let text = std::fs::read_to_string(f).with_context(|| format!("-F {}: cannot read the expression", f.display()))?;
    Ok(text.lines().map(|l| l.split('#').next().unwrap_or("")).collect::<Vec<_>>().join("\n"))
}

/// `capture -D`: the interfaces of this network namespace a capture can
/// open (Ethernet), those up first, numbered from 1 as tcpdump -D numbers
/// its list, with their state as it prints it (`[Up, Running, Connected]`,
/// `[none]`).
fn list_interfaces() -> Result<String> {
    Ok(interfaces()?.iter().enumerate().map(|(i, (name, state))| format!("{}.{name} [{state}]\n", i + 1)).collect())
}

/// The interfaces `capture -D` lists, in its order: (name, state).
fn interfaces() -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/sys/class/net").context("listing /sys/class/net")?.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).map(|s| s.trim().to_owned()).unwrap_or_default();
        let name = e.file_name().to_string_lossy().into_owned();
        // Frames with an Ethernet header: Ethernet and the loopback (not TUN devices, tunnels, ...).
        if sys::if_is_ethernet(&name).is_err() {
            continue;
        }
        let index: u32 = read("ifindex").parse().unwrap_or(u32::MAX);
        let flags = sys::if_flags(&name).unwrap_or(0);
        let (up, running, loopback) =
            (flags & libc::IFF_UP != 0, flags & libc::IFF_RUNNING != 0, flags & libc::IFF_LOOPBACK != 0);
        let mut state = Vec::new();
        for (on, what) in [(up, "Up"), (running, "Running"), (loopback, "Loopback")] {
            if on {
                state.push(what);
            }
        }
        let mut state = if state.is_empty() { "none".to_owned() } else { state.join(", ") };
        // The link, as libpcap asks the device (a loopback has none to tell).
        match sys::if_link_detected(&name) {
            Some(true) if !loopback => state.push_str(", Connected"),
            Some(false) if !loopback => state.push_str(", Disconnected"),
            _ => {}
        }
        // As libpcap orders them: up ones first, the loopback after the others.
        found.push(((!up, loopback, index), (name, state)));
    }
    found.sort();
    Ok(found.into_iter().map(|(_, i)| i).collect())
}

/// `-i N`, as tcpdump takes it: the N-th interface `-D` lists, unless an
/// interface is named N.
fn interface_by_number(i: String) -> Result<String> {
    if i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) || sys::if_index(&i).is_some() {
        return Ok(i);
    }
    // Digits past any count (tcpdump: "Invalid adapter index") are no entry either.
    match i.parse::<usize>().ok().and_then(|n| interfaces().map(|l| l.into_iter().nth(n.wrapping_sub(1))).transpose()) {
        Some(found) => Ok(found?.0),
        None => bail!("-i {i}: there is no interface {i} in the list `ringwire capture -D` prints"),
    }
}

/// A capture's counts as its summary line says them (at the end, and on SIGUSR1).
fn capture_summary(snap: &Snapshot) -> String {
    let c = &snap.consumers[0];
    let drops: u64 = snap.ports.iter().map(|p| p.kernel_drops).sum();
    format!(
        "{} frames captured, {} received by filter, {} dropped by kernel, {} dropped on a full queue{}{}{}",
        c.written,
        // As tcpdump's: every frame that passed the filter, the kernel's drops included.
        c.passed + drops,
        drops,
        c.queue_dropped,
        interface_drops(snap).map_or_else(String::new, |d| format!(", {d} dropped by interface")),
        if c.write_errors > 0 { format!(", {} lost to write errors", c.write_errors) } else { String::new() },
        if c.output_closed > 0 {
            format!(", {} not written after the output was closed", c.output_closed)
        } else {
            String::new()
        }
    )
}

fn cmd_capture(mut a: CaptureArgs) -> Result<ExitCode> {
    if a.list_interfaces {
        out_raw!("{}", list_interfaces()?);
        return Ok(ExitCode::SUCCESS);
    }
    a.interfaces = std::mem::take(&mut a.interfaces).into_iter().map(interface_by_number).collect::<Result<_>>()?;
    let config = capture_config(&a)?;
    let usr1 = Arc::new(AtomicBool::new(false));
    let signals = stop_flag(OtherSignals { hup: OnHup::Stop, usr1: Some(&usr1) }, Force::OnSecondSignal)?;
    // `-w FIFO`: wait for its reader, as tcpdump does (a Ctrl-C meanwhile
    // exits), and hold it open until the engine has opened its own end, so
    // the reader never sees an end of stream in between.
    let is_fifo =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
    let _fifo_reader = match &a.write {
        Some(path) if is_fifo(path) => {
            say!("ringwire: waiting for a reader of the FIFO {}", path.display());
            Some(std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("-w {}", path.display()))?)
        }
        _ => None,
    };
    let started = Engine::start(&config);
    Start::started();
    let engine = match (started, &a.filter_file) {
        // An expression read with -F: name the file, not the consumer built from it.
        (Err(ringwire_engine::EngineError::ConsumerFilter { source, .. }), Some(f)) => {
            bail!("-F {}: {}", f.display(), ringwire_engine::consumer::error_chain(&*source))
        }
        (Err(e @ ringwire_engine::EngineError::Filter(_)), Some(f)) => {
            bail!("-F {}: {}", f.display(), ringwire_engine::consumer::error_chain(&e))
        }
        (r, _) => r?,
    };
    if !a.interfaces.is_empty() {
        // tcpdump's line, once the rings are bound: from here on every frame
        // is captured, which is what a script waits for before it sends.
        say!(
            "ringwire: listening on {}, link-type EN10MB (Ethernet), snapshot length {} bytes",
            a.interfaces.join(", "),
            snaplen(&a)
        );
    }
    // An interface that disappears ends the capture, as it ends tcpdump's.
    // SIGUSR1: the counts so far, and the capture goes on (tcpdump's).
    let report = supervise(
        engine,
        0,
        &signals,
        |e| {
            if usr1.swap(false, std::sync::atomic::Ordering::SeqCst) {
                say!("ringwire: {}", capture_summary(&e.snapshot()));
            }
            e.interfaces_gone()
        },
        || {},
    );
    let c = &report.snapshot.consumers[0];
    say!("{}", capture_summary(&report.snapshot));
    if c.over_limit > 0 && a.count.is_none() && a.rotate_s.is_some() {
        // As tcpdump says it; the frames after the last file were not written.
        say!(
            "maximum file limit reached: {} (-W); {} of those received by filter came after it and were not written",
            c.files,
            c.over_limit
        );
    } else if c.over_limit > 0 {
        // Frames are read in batches: those of the last batch beyond -c
        // passed the filter but were not written.
        let (n, was) = (c.over_limit, if c.over_limit == 1 { "was" } else { "were" });
        let done = if a.write.is_some() { "written" } else { "printed" };
        say!("({n} of those received by filter came after the -c count and {was} not {done})");
    }
    if std::env::var_os("RINGWIRE_VERBOSE").is_some() {
        say_raw!("{}", report.snapshot.table());
    }
    for e in &report.errors {
        say!("ringwire: error: {e}");
    }
    for u in &report.unreconciled {
        say!("ringwire: accounting mismatch: {u}");
    }
    Ok(if report.errors.is_empty() && report.unreconciled.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the ringwire binary")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!("{} not found next to {} (build the workspace: cargo build --release)", name, exe.display());
    }
    Ok(path)
}

/// Remove what earlier demos left in the temporary directory (each keeps its
/// pcap file, some 400 MB, for the user to open): only the newest is kept, so
/// demos run one after another do not fill the disk. A directory whose demo
/// still runs (its process exists) is left alone.
fn remove_earlier_demo_dirs() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("ringwire-demo-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_dir_all(e.path()).is_ok() {
            out!("removed {} (an earlier demo's files)", e.path().display());
        }
    }
}

/// Whether another `ringwire demo` runs (its lab is its own).
fn another_demo_runs() -> bool {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return true };
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { return false };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { return false };
        let mut args = cmdline.split(|b| *b == 0);
        let prog = args.next().unwrap_or_default();
        pid != me && prog.rsplit(|b| *b == b'/').next() == Some(b"ringwire") && args.any(|a| a == b"demo")
    })
}

/// Remove the labs of earlier demos killed before they could (their
/// namespaces, with anything still running in them), unless another demo
/// runs.
fn remove_earlier_demo_labs() {
    if another_demo_runs() {
        return;
    }
    for ns in Lab::named_namespaces(DEMO_LAB).unwrap_or_default() {
        for pid in Lab::pids_in(&ns) {
            // SAFETY: kill(2) with a pid read from the namespace; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if ringwire_engine::lab::run(&["ip", "netns", "del", &ns]).is_ok() {
            out!("removed namespace {ns} (an earlier demo's lab, left behind when it was killed)");
        }
    }
}

/// The demo's lab names start with this.
const DEMO_LAB: &str = "rwdemo";

fn cmd_demo(a: &DemoArgs) -> Result<ExitCode> {
    if !sys::is_root() {
        bail!("the demo creates network namespaces and needs root (try: sudo ringwire demo)");
    }
    // Before the lab exists: a Ctrl-C from now on stops the demo through its
    // cleanup, never mid-way with the lab left behind.
    let signals = stop_flag(OtherSignals::default(), Force::Never)?;
    remove_earlier_demo_labs();
    let gen = sibling_binary("ringwire-gen")?;
    let workers = default_workers(2);
    let out_dir = match &a.out_dir {
        Some(d) => d.clone(),
        None => {
            remove_earlier_demo_dirs();
            std::env::temp_dir().join(format!("ringwire-demo-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let pcap = out_dir.join("demo.pcap");

    let mut lab = Lab::new(DEMO_LAB);
    let ns_gen = lab.namespace("gen")?;
    let ns_eng = lab.namespace("eng")?;
    let (veth_gen, veth_eng) = lab.veth(&ns_gen, &ns_eng)?;
    out!("lab: namespaces {ns_gen} and {ns_eng}, veth {veth_gen} <-> {veth_eng}");

    let config = Config::parse(&format!(
        r#"
        [engine]
        workers = {workers:?}
        fanout = "hash"
        wait = "io-uring"
        [[ports]]
        name = "lab"
        uri = "afpacket:{veth_eng}"
        [[consumers]]
        name = "udp-pcap"
        kind = "pcap"
        path = "{}"
        filter = "udp or (vlan and udp)"
        [[consumers]]
        name = "count-all"
        kind = "counter"
        "#,
        pcap.display()
    ))
    .map_err(anyhow::Error::msg)?;
    out!(
        "engine: {} worker(s) on cores {workers:?}, hash fanout; consumers: pcap (udp) -> {}, counter (all)",
        workers.len(),
        pcap.display()
    );
    if signals.load(std::sync::atomic::Ordering::Relaxed) {
        drop(lab);
        out!("stopped before the engine started; lab removed");
        return Ok(ExitCode::from(130));
    }
    let engine = Lab::within(&ns_eng, || Engine::start(&config))??;
    out!(
        "ringwire-gen: {} frames/s for {} s of mixed IPv4/IPv6 UDP/TCP, 1 in 8 flows 802.1Q-tagged, 60-1514 bytes",
        a.rate,
        a.duration
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns_gen])
        .arg(&gen)
        .args([
            "-i",
            &veth_gen,
            "--duration",
            &a.duration.to_string(),
            "--rate",
            &a.rate.to_string(),
            "--flows",
            "64",
            "--vlan-every",
            "8",
            "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting ringwire-gen")?;
    let mut gen_done: Option<std::process::ExitStatus> = None;
    let mut quiet_since: Option<Instant> = None;
    // A Ctrl-C stops the generator first (as on its own Ctrl-C: it reports
    // what it sent), then the engine once it has read the last frames, so
    // every frame sent is accounted for; the generator is killed if it has
    // not stopped within 2 s.
    let mut interrupted: Option<Instant> = None;
    let report = supervise(
        engine,
        1000,
        &AtomicBool::new(false),
        |_| {
            if gen_done.is_none() {
                gen_done = child.try_wait().ok().flatten();
            }
            if gen_done.is_none() && signals.load(std::sync::atomic::Ordering::Relaxed) {
                match interrupted {
                    None => {
                        interrupted = Some(Instant::now());
                        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                            // SAFETY: kill(2) on our own child, not yet waited for (its pid is still ours).
                            unsafe { libc::kill(pid, libc::SIGINT) };
                        }
                    }
                    Some(t) if t.elapsed() > Duration::from_secs(2) => {
                        let _ = child.kill();
                    }
                    Some(_) => {}
                }
            }
            // After the generator ends, give the last block time to retire.
            gen_done.is_some() && quiet_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(300)
        },
        || {},
    );
    if gen_done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().context("waiting for ringwire-gen")?;
    let gen_report: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    out!();
    let code = finish(&report, None)?;
    if let Some(g) = gen_report {
        let sent = g["sent"].as_u64().unwrap_or(0);
        let received: u64 = report.snapshot.ports.iter().map(|p| p.received).sum();
        let drops: u64 = report.snapshot.ports.iter().map(|p| p.kernel_drops).sum();
        let if_drops = interface_drops(&report.snapshot).unwrap_or(0);
        out!(
            "generator sent {sent} frames; engine received {received}, kernel dropped {drops}, the interface dropped \
             {if_drops}, lost elsewhere {}",
            sent.saturating_sub(received + drops + if_drops)
        );
    } else {
        out!("the generator gave no report of what it sent (stopped before it could)");
    }
    out!("pcap file: {}  (open it with: tcpdump -nr {} | head)", pcap.display(), pcap.display());
    drop(lab);
    out!("lab removed");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::{source_name, workers_that_fit};

    /// Files' default workers: every core while their queues fit in half
    /// the memory available; fewer, down to one, when they do not.
    #[test]
    fn files_get_as_many_workers_as_their_queues_fit() {
        let mib = 1u64 << 20;
        let cores: Vec<usize> = (0..64).collect();
        assert_eq!(workers_that_fit(cores.clone(), 32 * mib, Some(24 << 30)).len(), 64);
        assert_eq!(workers_that_fit(cores.clone(), 32 * mib, None).len(), 64, "memory unknown: as before");
        // 1 GiB available: 512 MiB for queues, 16 workers of 32 MiB.
        assert_eq!(workers_that_fit(cores.clone(), 32 * mib, Some(1 << 30)), (0..16).collect::<Vec<_>>());
        assert_eq!(workers_that_fit(cores, 32 * mib, Some(20 * mib)), [0]);
    }

    #[test]
    fn a_read_file_s_port_name_is_its_path_or_the_end_of_it() {
        let p63 = format!("/{}", "a".repeat(62));
        assert_eq!(source_name(&p63, &[]), p63);
        let p64 = format!("/{}", "b".repeat(63));
        assert_eq!(source_name(&p64, &[]), p64);
        let p65 = format!("/{}x.pcap", "c".repeat(58));
        let n = source_name(&p65, &[]);
        assert_eq!(n.chars().count(), 64);
        assert!(n.starts_with('…') && n.ends_with("cx.pcap"), "{n}");
        assert_eq!(source_name("/tmp/a\nb.pcap", &[]), "/tmp/a?b.pcap");
        // Taken names: numbered, still at most 64 characters.
        assert_eq!(source_name("in.pcap", &["in.pcap"]), "in.pcap#2");
        let taken: Vec<String> =
            std::iter::once(p64.clone()).chain((2..10).map(|k| format!("…{}#{k}", &p64[p64.len() - 61..]))).collect();
        let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
        let tenth = source_name(&p64, &taken);
        assert!(tenth.ends_with("b#10") && tenth.starts_with('…') && tenth.chars().count() == 64, "{tenth}");
    }
}
