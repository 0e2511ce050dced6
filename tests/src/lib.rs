//! ringwire-tests: end-to-end tests that run ringwire's real binaries
//! (`ringwire`, `ringwire-gen`) in network namespaces made for each test.
//!
//! The library holds the helpers: locating the binaries, the root check
//! (skip with a message outside CI, fail inside it), running the engine as a
//! child process that is killed if a test fails, and reading pcap files with
//! an implementation independent of the engine's (`pcap-file`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub use ringwire_engine::lab::Lab;

/// Path of a workspace binary, next to the test executable's directory.
///
/// # Panics
/// When the binary was not built (`cargo build --workspace --bins`).
#[must_use]
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let p = dir.join(name);
    assert!(p.exists(), "{} not built: run `cargo build --workspace --bins` first", p.display());
    p
}

/// Whether a privileged test may run. Outside CI without root it prints why
/// it skips and returns false; in CI (CI=true) it fails instead of skipping.
///
/// # Panics
/// In CI without root.
#[must_use]
pub fn privileged(test: &str) -> bool {
    if ringwire_engine::sys::is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: needs root (CAP_NET_ADMIN, CAP_NET_RAW) and CI must run it as root"
    );
    eprintln!("skipping {test}: needs root (CAP_NET_ADMIN, CAP_NET_RAW for namespaces and packet sockets)");
    false
}

/// Number of usable cores.
#[must_use]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Whether this machine has the two cores `test` needs for two workers.
/// CI machines have two, so there it must; elsewhere a one-core machine
/// skips the test and says why.
pub fn two_cores(test: &str) -> bool {
    if cores() >= 2 {
        return true;
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{test}: needs 2 cores, and CI machines have 2");
    eprintln!("skipping {test}: needs 2 cores for 2 workers, this machine has 1");
    false
}

/// Whether a privileged test that needs two workers may run: [`privileged`]
/// and [`two_cores`].
pub fn privileged_on_two_cores(test: &str) -> bool {
    privileged(test) && two_cores(test)
}

/// `ringctl --socket SOCK ARGS`, run to its end.
///
/// # Panics
/// If ringctl cannot be started.
#[must_use]
pub fn ringctl(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin("ringctl")).arg("--socket").arg(sock).args(args).output().expect("running ringctl")
}

/// `ringctl --socket SOCK --json ARGS`, which must succeed: its answer.
///
/// # Panics
/// If ringctl fails or prints no JSON.
#[must_use]
pub fn ringctl_json(sock: &Path, args: &[&str]) -> serde_json::Value {
    let out = ringctl(sock, &[&["--json"], args].concat());
    assert!(out.status.success(), "ringctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ringctl --json prints JSON")
}

/// A child process killed (SIGKILL) if still running when dropped.
/// Its stdout and stderr are read as it writes them, so a child that prints
/// a lot never blocks on a full pipe.
pub struct Proc {
    child: Option<Child>,
    what: String,
    stdout: Option<Drained>,
    stderr: Option<Drained>,
}

/// A pipe read to its end by a thread, into a buffer readable meanwhile.
struct Drained {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Drained {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }

    fn finish(self) -> Vec<u8> {
        let _ = self.thread.join();
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> Option<Drained> {
    pipe.map(|mut p| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = p.read(&mut chunk) {
                sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(&chunk[..n]);
            }
        });
        Drained { buf, thread }
    })
}

impl Proc {
    /// Spawn `cmd` with stdout and stderr captured.
    ///
    /// # Panics
    /// If it cannot be spawned.
    #[must_use]
    pub fn spawn(what: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
        Self { child: Some(child), what: what.to_owned(), stdout, stderr }
    }

    /// The child's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send a signal.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Wait until its stderr so far contains `needle` (at most `limit`).
    ///
    /// # Panics
    /// If it does not, with `what` and the log so far, and whether the
    /// process is still running.
    pub fn expect_stderr(&mut self, needle: &str, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.stderr_text();
            if text.contains(needle) {
                return;
            }
            if Instant::now() > deadline {
                let state = if self.exited() { "has exited" } else { "still runs" };
                panic!(
                    "{what}: no `{needle}` in the log of {} within {limit:?} ({state}); its stderr:\n{text}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its stderr so far.
    #[must_use]
    pub fn stderr_text(&self) -> String {
        self.stderr.as_ref().map(Drained::text).unwrap_or_default()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().expect("running").try_wait().ok().flatten().is_some()
    }

    /// Wait for exit (at most `limit`, then kill) and collect its output.
    ///
    /// # Panics
    /// If it had to be killed.
    pub fn wait(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let mut killed = false;
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.as_mut().expect("running").kill();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.child.take().expect("running").wait().expect("wait");
        let collect = |h: Option<Drained>| h.map(Drained::finish);
        let out = Output {
            status,
            stdout: collect(self.stdout.take()).unwrap_or_default(),
            stderr: collect(self.stderr.take()).unwrap_or_default(),
        };
        assert!(
            !killed,
            "{} did not exit within {limit:?}; stderr:\n{}",
            self.what,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `ringwire run CONFIG` inside `ns` and wait until its rings are up.
///
/// # Panics
/// If it does not become ready within 10 s.
#[must_use]
pub fn start_engine(ns: &str, config: &Path, dir: &Path) -> Proc {
    start_engine_on(ns, config, dir, Some(&control_socket(config)))
}

/// [`start_engine`] with the control socket `socket`, or with the engine's
/// default one (`None`).
///
/// # Panics
/// If it does not become ready within 10 s.
#[must_use]
pub fn start_engine_on(ns: &str, config: &Path, dir: &Path, socket: Option<&Path>) -> Proc {
    start_ready(in_ns(ns, "ringwire"), config, dir, socket)
}

/// [`start_engine`] in this test's own network namespace, for engines of
/// file ports only (they need no root).
///
/// # Panics
/// If it does not become ready within 10 s.
#[must_use]
pub fn start_file_engine(config: &Path, dir: &Path) -> Proc {
    start_ready(Command::new(bin("ringwire")), config, dir, Some(&control_socket(config)))
}

/// Start `ringwire` (`run`: the command to run it) on `config`, and wait
/// until it is ready.
fn start_ready(mut run: Command, config: &Path, dir: &Path, socket: Option<&Path>) -> Proc {
    let ready = dir.join(format!("ready-{}", config.file_stem().unwrap().to_string_lossy()));
    let _ = std::fs::remove_file(&ready);
    run.arg("run").arg(config).arg("--ready-file").arg(&ready);
    if let Some(socket) = socket {
        run.arg("--control-socket").arg(socket);
    }
    let mut p = Proc::spawn("ringwire run", &mut run);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        if p.exited() {
            let out = p.wait(Duration::from_secs(1));
            panic!("engine exited before ready: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(Instant::now() < deadline, "engine not ready within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// The control socket [`start_engine`] gives the engine of `config`: next
/// to the config file, so engines of concurrent tests never share one.
#[must_use]
pub fn control_socket(config: &Path) -> PathBuf {
    config.with_extension("sock")
}

/// Run `ip -n NS ARGS...` in a namespace the test made; a failure panics
/// with the command and its message.
pub fn ip(ns: &str, args: &[&str]) {
    let cmd: Vec<&str> = ["ip", "-n", ns].into_iter().chain(args.iter().copied()).collect();
    if let Err(e) = ringwire_engine::lab::run(&cmd) {
        panic!("{e}");
    }
}

/// A command running this workspace's `binary` inside network namespace `ns`.
#[must_use]
pub fn in_ns(ns: &str, binary: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(bin(binary));
    c
}

/// Run ringwire-gen inside `ns` with `args`; returns its JSON report.
///
/// # Panics
/// If it fails or runs over 60 s.
#[must_use]
pub fn generate(ns: &str, iface: &str, args: &[&str]) -> serde_json::Value {
    let p = Proc::spawn("ringwire-gen", in_ns(ns, "ringwire-gen").args(["-i", iface, "--json"]).args(args));
    let out = p.wait(Duration::from_secs(60));
    assert!(out.status.success(), "ringwire-gen failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ringwire-gen --json report")
}

/// Stop an engine with SIGTERM; returns its output after checking it exited 0.
///
/// # Panics
/// If it exits non-zero or does not exit within 15 s.
#[must_use]
pub fn stop_engine(p: Proc) -> Output {
    p.signal(libc::SIGTERM);
    let out = p.wait(Duration::from_secs(15));
    assert!(
        out.status.success(),
        "engine exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One pcap record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Timestamp, ns.
    pub ts_ns: u128,
    /// Original length.
    pub orig_len: u32,
    /// Bytes.
    pub data: Vec<u8>,
}

/// Read every record of a pcap file with `pcap-file` (not the engine's reader).
///
/// # Panics
/// If the file is not a valid pcap file.
#[must_use]
pub fn read_pcap(path: &Path) -> Vec<Rec> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{}: record {}: {e}", path.display(), out.len() + 1));
        out.push(Rec { ts_ns: p.timestamp.as_nanos(), orig_len: p.orig_len, data: p.data.into_owned() });
    }
    out
}

/// Record `ringwire-gen`'s frames to the pcap file `path` (`args`: count,
/// sizes, flows, ...), without a network.
///
/// # Panics
/// If the generator fails.
pub fn record(path: &Path, args: &[&str]) {
    let out = Command::new(bin("ringwire-gen")).arg("--pcap-out").arg(path).args(args).output().unwrap();
    assert!(out.status.success(), "ringwire-gen: {}", String::from_utf8_lossy(&out.stderr));
}

/// The makings of a stop that waits: a pcap file of 20 000 frames of 1000
/// bytes (more than a pipe holds) and a FIFO whose reader opens it, then
/// never reads. The reader ends when this is dropped, also when a test fails.
pub struct StalledFifo {
    /// The pcap file to replay.
    pub src: PathBuf,
    /// The FIFO to write to.
    pub fifo: PathBuf,
    reader: std::process::Child,
}

impl StalledFifo {
    /// Make both in `dir`, and start the reader.
    ///
    /// # Panics
    /// If the file, the FIFO or the reader cannot be made.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        let src = dir.join("src.pcap");
        record(&src, &["-n", "20000", "--size", "1000"]);
        let fifo = dir.join("out.fifo");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let reader =
            Command::new("sh").arg("-c").arg(format!("exec 3<'{}'; sleep 30", fifo.display())).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        Self { src, fifo, reader }
    }
}

impl Drop for StalledFifo {
    fn drop(&mut self) {
        let _ = self.reader.kill();
        let _ = self.reader.wait();
    }
}

/// Write `frames` (timestamp, bytes) to the pcap file `path` with `pcap-file`.
///
/// # Panics
/// If the file cannot be written.
pub fn write_pcap<'a>(path: &Path, frames: impl IntoIterator<Item = (std::time::Duration, &'a [u8])>) {
    write_pcap_at(path, pcap_file::TsResolution::MicroSecond, frames);
}

/// Write `frames` to the pcap file `path`, a second apart from 1 700 000 000 s.
///
/// # Panics
/// As [`write_pcap`].
pub fn write_frames(path: &Path, frames: &[Vec<u8>]) {
    write_pcap(
        path,
        frames.iter().enumerate().map(|(i, f)| (Duration::new(1_700_000_000 + i as u64, 0), f.as_slice())),
    );
}

/// The bytes a hex string spells (`"0a0b"`: 10, 11).
///
/// # Panics
/// On a character that is not a hex digit, or an odd length.
#[must_use]
pub fn from_hex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
}

/// What `ringwire capture -r FILE FLAGS` prints, asserted to be what
/// `tcpdump -nn -r FILE FLAGS` prints, byte for byte (`what` names the
/// case in the failure).
///
/// # Panics
/// If the two differ, or ringwire fails.
pub fn printed_as_tcpdump(file: &Path, flags: &[&str], what: &str) -> String {
    let f = file.to_str().expect("a UTF-8 path");
    let ours = Command::new(bin("ringwire"))
        .args([&["capture", "--workers", "0", "-nn", "-r", f][..], flags].concat())
        .output()
        .expect("ringwire runs");
    assert!(ours.status.success(), "{what}: {}", String::from_utf8_lossy(&ours.stderr));
    let theirs = Command::new("tcpdump").args(["-nn", "-r", f]).args(flags).output().expect("tcpdump runs");
    let (ours, theirs) = (String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap());
    assert_eq!(ours, theirs, "{what} {flags:?}");
    ours
}

/// `file`'s records cut to `snaplen` bytes by `ringwire capture -s`, written to `out`.
///
/// # Panics
/// If ringwire fails.
pub fn cut_records(file: &Path, snaplen: usize, out: &Path) {
    let (s, file, out) = (snaplen.to_string(), file.to_str().expect("UTF-8"), out.to_str().expect("UTF-8"));
    let made = Command::new(bin("ringwire"))
        .args(["capture", "-r", file, "-s", &s, "-w", out])
        .output()
        .expect("ringwire runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// [`write_pcap`], with nanosecond timestamps.
///
/// # Panics
/// As [`write_pcap`].
pub fn write_pcap_nanos<'a>(path: &Path, frames: impl IntoIterator<Item = (std::time::Duration, &'a [u8])>) {
    write_pcap_at(path, pcap_file::TsResolution::NanoSecond, frames);
}

fn write_pcap_at<'a>(
    path: &Path,
    ts_resolution: pcap_file::TsResolution,
    frames: impl IntoIterator<Item = (std::time::Duration, &'a [u8])>,
) {
    let f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = pcap_file::pcap::PcapHeader { ts_resolution, ..Default::default() };
    let mut w = pcap_file::pcap::PcapWriter::with_header(f, header).unwrap();
    for (ts, data) in frames {
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, data.len() as u32, data)).unwrap();
    }
}

/// The files in `dir`, in name order, each named `PREFIX<seconds>.pcap`, as
/// a file started by time (`rotate_s`, `-G`) with `%s` in its pattern is,
/// with the records tcpdump reads in each.
///
/// # Panics
/// If a name is not so, or its time is before 2023, or tcpdump fails.
#[must_use]
pub fn timed_files(dir: &Path, prefix: &str) -> Vec<(PathBuf, usize)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let secs: u64 = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(".pcap")).unwrap().parse().unwrap();
            assert!(secs > 1_700_000_000, "named by the time it started (%s): {name}");
            let n = tcpdump_count(&f);
            (f, n)
        })
        .collect()
}

/// Whether tcpdump and tshark both read `path` without a warning and see
/// the same number of records; returns that number.
///
/// # Panics
/// If either is missing (`make deps` installs both), fails, warns or
/// counts differently.
#[must_use]
pub fn tcpdump_count(path: &Path) -> usize {
    let out = Command::new("tcpdump").arg("-nr").arg(path).output().expect("tcpdump is installed (make deps)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump -r {} failed: {err}", path.display());
    assert!(!err.to_lowercase().contains("warning"), "tcpdump warned on {}: {err}", path.display());
    // One line per record; a frame of an unknown ethertype is followed by an indented hex dump.
    let n = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with(char::is_whitespace)).count();
    // tshark reports a cut-short, damaged or unknown-format file on stderr and
    // with a non-zero status; its only other message is about running as root.
    let out = Command::new("tshark")
        .args(["-n", "-T", "fields", "-e", "frame.number", "-r"])
        .arg(path)
        .output()
        .expect("tshark is installed (make deps)");
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> =
        err.lines().filter(|l| !l.trim().is_empty() && !l.contains("Running as user")).collect();
    assert!(out.status.success() && complaints.is_empty(), "tshark -r {}: {err}", path.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), n, "tshark and tcpdump count differently");
    n
}

/// A JSON file (an engine's `stats_json` counters, a bench report, a generator's report), parsed.
///
/// # Panics
/// If the file is missing or not JSON.
#[must_use]
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Check the accounting identities in a stats JSON for every consumer.
///
/// # Panics
/// On any identity that does not hold.
pub fn assert_reconciles(stats: &serde_json::Value) {
    for c in stats["consumers"].as_array().expect("consumers") {
        let g = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(g("seen"), g("passed") + g("filtered"), "seen = passed + filtered for {c}");
        assert_eq!(
            g("passed"),
            g("delivered") + g("queue_dropped") + g("paused"),
            "passed = delivered + queue_dropped + paused for {c}"
        );
        if c["kind"] == "pcap" {
            assert_eq!(
                g("delivered"),
                g("written") + g("over_limit") + g("write_errors") + g("output_closed"),
                "delivered = written for {c}"
            );
        }
    }
}

pub use ringwire_engine::sys::ThreadSched;

/// CPU time (user + system) of process `pid` so far, from /proc.
///
/// # Panics
/// If the process is gone.
#[must_use]
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces), from state on.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// How process `pid`'s thread named `name` is scheduled (`None`: no such
/// thread). The name is the kernel's, cut to 15 bytes.
#[must_use]
fn thread_sched(pid: u32, name: &str) -> Option<ThreadSched> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        ThreadSched::parse(&std::fs::read_to_string(t.path().join("stat")).ok()?)
    })
}

/// How `pid`'s thread `name` is scheduled once it is `want`, or however it
/// is (`None` if the thread never appears) after two seconds: the thread
/// names and schedules itself after it starts.
#[must_use]
pub fn wait_thread_sched(pid: u32, name: &str, want: ThreadSched) -> Option<ThreadSched> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = thread_sched(pid, name);
        if now == Some(want) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two namespaces joined by a veth pair: a generator side and an engine side.
/// Dropping it (the `lab` field) removes both.
pub struct Pair {
    /// The lab, for more namespaces or veth pairs.
    pub lab: Lab,
    /// The generator's namespace.
    pub ns_gen: String,
    /// The engine's namespace.
    pub ns_eng: String,
    /// The generator's end of the veth pair.
    pub if_gen: String,
    /// The engine's end of the veth pair.
    pub if_eng: String,
}

impl Pair {
    /// Build the pair.
    ///
    /// # Panics
    /// If iproute2 fails.
    #[must_use]
    pub fn new() -> Self {
        let mut lab = Lab::new("rwt");
        let ns_gen = lab.namespace("g").expect("generator namespace");
        let ns_eng = lab.namespace("e").expect("engine namespace");
        let (if_gen, if_eng) = lab.veth(&ns_gen, &ns_eng).expect("veth pair");
        Self { lab, ns_gen, ns_eng, if_gen, if_eng }
    }
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

/// A patch across three namespaces: the generator's frames arrive on port
/// `a` (the [`Pair`]'s `if_eng`) and a `forward` consumer sends them out of
/// port `b` (`if_out`, `rx = false`) into a third namespace, where an engine
/// of its own writes what arrives (on `if_far`) to `far`.
pub struct Patch {
    /// The generator and engine namespaces, and the lab holding all three.
    pub pair: Pair,
    /// The far namespace.
    pub ns_far: String,
    /// The engine's end of the second veth pair (port `b`).
    pub if_out: String,
    /// The far end of it.
    pub if_far: String,
    /// The patch engine's config.
    pub config: PathBuf,
    /// The far engine's config.
    pub far_config: PathBuf,
    /// The far engine's pcap file.
    pub far: PathBuf,
}

impl Patch {
    /// Build it and write both configs in `dir`: `engine` and `far_engine`
    /// are the lines of each `[engine]` table; `forward` names the consumer.
    ///
    /// # Panics
    /// If iproute2 fails or a file cannot be written.
    #[must_use]
    pub fn new(dir: &Path, engine: &str, far_engine: &str, forward: &str) -> Self {
        let mut pair = Pair::new();
        let ns_far = pair.lab.namespace("s").expect("far namespace");
        let (if_out, if_far) = pair.lab.veth(&pair.ns_eng, &ns_far).expect("second veth pair");
        let (config, far_config, far) = (dir.join("patch.toml"), dir.join("far.toml"), dir.join("far.pcap"));
        let if_in = &pair.if_eng;
        std::fs::write(
            &config,
            format!(
                "[engine]\n{engine}\n\
                 [[ports]]\nname = \"a\"\nuri = \"afpacket:{if_in}\"\n\
                 [[ports]]\nname = \"b\"\nuri = \"afpacket:{if_out}\"\nrx = false\n\
                 [[consumers]]\nname = \"{forward}\"\nkind = \"forward\"\nports = [\"a\"]\nto = \"b\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            &far_config,
            format!(
                "[engine]\n{far_engine}\n[[ports]]\nuri = \"afpacket:{if_far}\"\n\
                 [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n",
                far.display()
            ),
        )
        .unwrap();
        Self { pair, ns_far, if_out, if_far, config, far_config, far }
    }

    /// Start the far engine, then the patch engine: (far, patch).
    #[must_use]
    pub fn start(&self, dir: &Path) -> (Proc, Proc) {
        (start_engine(&self.ns_far, &self.far_config, dir), start_engine(&self.pair.ns_eng, &self.config, dir))
    }
}

/// Path of a plugin library built in this workspace (`lib<crate>.so`).
///
/// # Panics
/// When it was not built (`cargo build --workspace`).
#[must_use]
pub fn plugin(crate_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let p = dir.join(format!("lib{}.so", crate_name.replace('-', "_")));
    assert!(p.exists(), "{} not built: run `cargo build --workspace` first", p.display());
    p
}

/// Start ringwire-gen in the background inside `ns` (killed when dropped).
#[must_use]
pub fn spawn_generator(ns: &str, iface: &str, args: &[&str]) -> Proc {
    Proc::spawn("ringwire-gen", in_ns(ns, "ringwire-gen").args(["-i", iface]).args(args))
}

/// Port `index` of the engine at `sock` as `ports list` shows it, once its
/// link reads `want` (or after 5 s, as it is then).
#[must_use]
pub fn wait_link(sock: &Path, index: usize, want: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let port = ringctl_json(sock, &["ports", "list"])["ports"][index].clone();
        if port["link"] == want || std::time::Instant::now() > deadline {
            return port;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A file system mounted for one test (tmpfs of `size`), unmounted however the test ends.
pub struct SmallFs(pub PathBuf);

impl SmallFs {
    /// Mount a tmpfs of `size` (as mount's `size=`: `64k`, `1m`) at `at`.
    ///
    /// # Panics
    /// If it cannot be mounted.
    #[must_use]
    pub fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let m = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output();
        assert!(m.as_ref().is_ok_and(|o| o.status.success()), "mount tmpfs: {m:?}");
        Self(at.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
