//! The engine's TOML configuration.
//!
//! Every field has a default that works; unknown fields are errors (the
//! message names the field, line and column). Loading never panics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    pcapio::MAX_SNAPLEN,
    ring::{RingGeometry, RxHash},
};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Workers, fanout and waiting.
    pub engine: EngineConfig,
    /// Ring geometry for every afpacket port.
    pub ring: RingConfig,
    /// Where frames come from.
    pub ports: Vec<PortConfig>,
    /// Where frames go.
    pub consumers: Vec<ConsumerConfig>,
    /// The eBPF classifier table, for ports with `filter = "classifier"`.
    pub classifier: ClassifierConfig,
    /// The control socket.
    pub control: ControlConfig,
}

/// `[control]`: the control socket of `ringwire run` (see `docs/control.md`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Listen at all. Default: true.
    pub enabled: bool,
    /// Socket path (created with mode 0660). Default: `/run/ringwire/ringwire.sock`.
    pub socket: PathBuf,
    /// Clients served at once; the next is refused with a message. Default: 64.
    pub max_clients: usize,
    /// Seconds a client may stay silent before it is closed. Default: 300.
    pub idle_timeout_s: u64,
}

/// Where `ringwire run` listens and `ringctl` connects by default.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ringwire/ringwire.sock";

impl Default for ControlConfig {
    fn default() -> Self {
        Self { enabled: true, socket: DEFAULT_CONTROL_SOCKET.into(), max_clients: 64, idle_timeout_s: 300 }
    }
}

/// A port's `filter` value that attaches the eBPF classifier.
pub const CLASSIFIER_FILTER: &str = "classifier";

/// The first item of `items` that an earlier one equals, if any (a list
/// option that names something twice).
#[must_use]
pub fn first_repeat<T: PartialEq>(items: &[T]) -> Option<&T> {
    items.iter().enumerate().find_map(|(i, x)| items[..i].contains(x).then_some(x))
}

/// Whether a filter (or a stage of a chain) can only run in the kernel: an
/// eBPF socket filter or the classifier, which ports take and consumers do not.
#[must_use]
pub fn runs_in_kernel(filter: &str) -> bool {
    let f = filter.trim();
    f == CLASSIFIER_FILTER || f.starts_with("ebpf:")
}

/// `[classifier]`: the soft-patch-panel table the eBPF classifier looks up,
/// keyed by (VLAN id or untagged, destination MAC). Every port with
/// `filter = "classifier"` runs it in the kernel; a reload (SIGHUP) changes
/// the entries in place, without reattaching the program.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// What happens to frames no entry matches. Default: pass.
    pub default: ClassAction,
    /// The entries (at most [`ringwire_bpf::MAX_CLASSES`]).
    pub entries: Vec<ClassEntryConfig>,
}

/// A classifier action.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ClassAction {
    /// Keep the frame.
    #[default]
    Pass,
    /// Drop it in the kernel (counted as filtered).
    Drop,
}

/// As a config file writes it (`pass`, `drop`).
impl std::fmt::Display for ClassAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
        })
    }
}

impl From<ringwire_bpf::Action> for ClassAction {
    fn from(a: ringwire_bpf::Action) -> Self {
        match a {
            ringwire_bpf::Action::Pass => Self::Pass,
            ringwire_bpf::Action::Drop => Self::Drop,
        }
    }
}

impl From<ClassAction> for ringwire_bpf::Action {
    fn from(a: ClassAction) -> Self {
        match a {
            ClassAction::Pass => Self::Pass,
            ClassAction::Drop => Self::Drop,
        }
    }
}

/// `[[classifier.entries]]`: one row of the table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClassEntryConfig {
    /// 802.1Q VLAN id (0-4095); omitted: untagged frames.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Destination MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// What happens to matching frames.
    pub action: ClassAction,
}

impl ClassEntryConfig {
    fn has_key(&self, key: ringwire_bpf::ClassKey) -> bool {
        self.vlan == key.vlan && ringwire_filters::parse_mac(&self.mac).is_ok_and(|m| m == key.mac)
    }
}

impl ClassifierConfig {
    /// Add or change the entry for `key` (as the control socket does to the
    /// map); the action it had, if it was there.
    pub fn set(&mut self, key: ringwire_bpf::ClassKey, action: ringwire_bpf::Action) -> Option<ClassAction> {
        let entry = ClassEntryConfig { vlan: key.vlan, mac: crate::stats::format_mac(key.mac), action: action.into() };
        match self.entries.iter_mut().find(|e| e.has_key(key)) {
            Some(e) => Some(std::mem::replace(e, entry).action),
            None => {
                self.entries.push(entry);
                None
            }
        }
    }

    /// Remove the entry for `key`, if there is one.
    pub fn remove(&mut self, key: ringwire_bpf::ClassKey) {
        self.entries.retain(|e| !e.has_key(key));
    }

    /// The table as the classifier takes it, checked: VLAN ids in range,
    /// MACs that parse, no key twice, not more entries than the map holds.
    ///
    /// # Errors
    /// A message naming the entry (1-based) and field.
    pub fn table(&self) -> Result<Vec<(ringwire_bpf::ClassKey, ringwire_bpf::Action)>, String> {
        if self.entries.len() > ringwire_bpf::MAX_CLASSES {
            return Err(format!(
                "classifier: {} entries; the table holds at most {}",
                self.entries.len(),
                ringwire_bpf::MAX_CLASSES
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let ctx = format!("classifier.entries[{}]", i + 1);
            if let Some(v) = e.vlan.filter(|&v| v > 4095) {
                return Err(format!("{ctx}: vlan: {v} is out of range (0-4095; omit it for untagged frames)"));
            }
            let mac = ringwire_filters::parse_mac(&e.mac).map_err(|m| format!("{ctx}: mac: {m}"))?;
            let key = ringwire_bpf::ClassKey { vlan: e.vlan, mac };
            if !seen.insert(key) {
                return Err(format!("{ctx}: the key ({key}) is already in the table"));
            }
            out.push((key, e.action.into()));
        }
        Ok(out)
    }
}

/// Whether a strftime(3) pattern holds a conversion that changes with time
/// (`%S`, `%H`, `%s`, ...): not only literal text, `%%`, `%n`, `%t` or
/// conversions strftime does not know, which give the same name for ever.
#[must_use]
pub fn has_time_conversion(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // Flags and a width may come between (`%-d`, `%02H`, GNU's `%E`/`%O` modifiers).
        let mut next = chars.next();
        while next.is_some_and(|c| matches!(c, '_' | '-' | '0' | '^' | '#' | 'E' | 'O') || c.is_ascii_digit()) {
            next = chars.next();
        }
        if next.is_some_and(|c| "aAbBcCdDeFgGhHIjklmMpPrRsSTuUVwWxXyYzZ+".contains(c)) {
            return true;
        }
    }
    false
}

/// The largest `engine.cpu_latency_us`: a request above a second asks for nothing.
pub const MAX_CPU_LATENCY_US: u32 = 1_000_000;

/// Highest `SCHED_FIFO` priority Linux has.
pub const MAX_RT_PRIORITY: u8 = 99;

/// `[engine]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Cores to run one worker each on (pinned). Default: `[0]`.
    pub workers: Vec<usize>,
    /// How frames of one port are spread over workers.
    pub fanout: FanoutMode,
    /// Let the kernel reassemble IP fragments before fanout (`PACKET_FANOUT_FLAG_DEFRAG`).
    pub fanout_defrag: bool,
    /// How idle workers wait for frames.
    pub wait: WaitMode,
    /// Print progress to stderr every this many milliseconds (0: never).
    pub progress_ms: u64,
    /// Write the final counters as JSON to this file on exit.
    pub stats_json: Option<PathBuf>,
    /// Hold a PM QoS CPU latency request of this many microseconds
    /// (`/dev/cpu_dma_latency`) while the engine runs. At 0 idle cores poll
    /// instead of halting, so waking the kernel's receive thread or a
    /// sleeping worker does not wait for a core to leave an idle state (tens
    /// of microseconds on a VM). It applies to every core and costs their
    /// idle power; the kernel drops it when the engine exits, even on a
    /// crash. Default: none.
    pub cpu_latency_us: Option<u32>,
    /// Nice value of the queued consumers' threads (the pcap writer), -20 to
    /// 19; 0 leaves them as started. It orders them against the engine's
    /// other threads, and against the kernel's receive path only where
    /// `consumer_rt_priority` does not apply: a nice value weighs a thread
    /// within its scheduling group, and with autogroups (every process of a
    /// session shares one) or cgroups the whole engine is one group that
    /// gets at most half a core it shares with a kernel thread such as a
    /// threaded NAPI poller, whatever its threads' nice values. Going below
    /// the current value needs `CAP_SYS_NICE` (root has it); without, a
    /// warning and the thread keeps the value it started with. Default: -5.
    pub consumer_nice: i8,
    /// Real-time priority of the queued consumers' threads while the engine
    /// has a port on an interface, 1 to 99: they run under `SCHED_FIFO`,
    /// ahead of every normally scheduled thread, the kernel's receive
    /// threads included (threaded NAPI, ksoftirqd; interrupt threads run at
    /// 50). A queued consumer is the pipeline's last stage: when it gets less
    /// of a shared core than the receive path and the worker that feed it,
    /// frames are dropped at its queue after all the work of receiving them
    /// was done (receive livelock). Ahead of them, it writes what ringwire
    /// accepted, and under overload the receive path falls behind instead,
    /// where a drop costs least (a NIC counts them: `ip -s link`). The
    /// thread sleeps when its queue is empty, and the kernel keeps a share of
    /// every core for other threads (`sched_rt_runtime_us`). 0 leaves the
    /// threads under the normal scheduler, at `consumer_nice`; so do file
    /// sources only, which wait for a full queue instead of dropping. Needs
    /// `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`; without, a warning and
    /// `consumer_nice` applies. Default: 1.
    pub consumer_rt_priority: u8,
    /// Real-time priority of the workers while they receive from an
    /// interface and wait in io_uring, 1 to 99: a worker then runs under
    /// `SCHED_FIFO` and reads each block as soon as the kernel hands it
    /// over, while its frames are still in the CPU's cache, instead of
    /// waiting for a time slice behind the kernel's receive thread on a
    /// shared core (copying a 1514-byte frame into a pcap writer's queue then
    /// costs half as much). It sleeps whenever its rings are empty. Busy-poll
    /// workers and workers with a file source stay normally scheduled: a
    /// real-time thread that never sleeps would starve the core. 0: always
    /// normally scheduled. Above `consumer_rt_priority` (as by default), a
    /// worker also takes the core from the pcap writer in the middle of a
    /// write: threads of equal `SCHED_FIFO` priority do not take turns
    /// until one sleeps. Needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`;
    /// without, a warning. Default: 2.
    pub worker_rt_priority: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: vec![0],
            fanout: FanoutMode::Hash,
            fanout_defrag: false,
            wait: WaitMode::IoUring,
            progress_ms: 0,
            stats_json: None,
            cpu_latency_us: None,
            consumer_nice: -5,
            consumer_rt_priority: 1,
            worker_rt_priority: 2,
        }
    }
}

/// `PACKET_FANOUT` modes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FanoutMode {
    /// By the kernel's flow hash: a flow stays on one worker.
    #[default]
    Hash,
    /// Round robin.
    Lb,
    /// By the CPU the frame arrived on.
    Cpu,
    /// Fill one worker, then roll over to the next.
    Rollover,
    /// By the frame's receive queue.
    Qm,
    /// By ringwire's eBPF program (PACKET_FANOUT_EBPF) with a symmetric flow
    /// hash: both directions of a connection land on the same worker.
    EbpfSymmetric,
}

impl FanoutMode {
    /// The kernel's `PACKET_FANOUT_*` value.
    #[must_use]
    pub fn kernel_mode(self) -> u32 {
        match self {
            Self::Hash => 0,
            Self::Lb => 1,
            Self::Cpu => 2,
            Self::Rollover => 3,
            Self::Qm => 5,
            Self::EbpfSymmetric => 7,
        }
    }
}

/// How an idle worker waits.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WaitMode {
    /// Spin on the rings: lowest latency, one full core per worker.
    BusyPoll,
    /// Sleep in io_uring (POLL_ADD on the ring fds plus a wake-up eventfd).
    #[default]
    IoUring,
}

/// `[ring]`: geometry of every afpacket RX ring, and of TX rings used by forwarding.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RingConfig {
    /// RX block size in bytes (power of two, at least a page).
    pub block_size: u32,
    /// RX blocks per ring (per worker per port). Shrunk on ENOMEM, with a warning.
    pub block_count: u32,
    /// Nominal RX frame size (multiple of 16).
    pub frame_size: u32,
    /// Milliseconds after which the kernel hands over a partly filled block.
    pub retire_timeout_ms: u32,
    /// TX block size in bytes.
    pub tx_block_size: u32,
    /// TX blocks per ring.
    pub tx_block_count: u32,
    /// TX slot size in bytes (frames up to this minus 42 are sent; minus 32
    /// with `tx_copy_max = 0`).
    pub tx_frame_size: u32,
    /// Frames up to this many bytes are copied into the kernel's socket
    /// buffer when sent; longer ones are lent to it as TX ring pages, which
    /// the kernel copies again into fresh pages when the buffer outlives the
    /// slot (a veth, bridge or tap), while a NIC reads them in place (0: lend
    /// every frame).
    pub tx_copy_max: u32,
    /// When RX frames carry the kernel's flow hash: `auto` (when it is free:
    /// the NIC hashes), `on`, `off`.
    pub rxhash: RxHash,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            // 256 KiB: a block is read while most of it is still in the
            // core's cache (1 MiB blocks cost a fifth more user CPU a
            // frame at 64 B); 256 of them keep the ring at 64 MiB.
            block_size: 1 << 18,
            block_count: 256,
            frame_size: 2048,
            retire_timeout_ms: 10,
            tx_block_size: 1 << 16,
            tx_block_count: 64,
            tx_frame_size: 2048,
            tx_copy_max: 65535,
            rxhash: RxHash::Auto,
        }
    }
}

impl RingConfig {
    /// The RX ring geometry.
    #[must_use]
    pub fn rx_geometry(&self) -> RingGeometry {
        RingGeometry {
            block_size: self.block_size,
            block_count: self.block_count,
            frame_size: self.frame_size,
            retire_timeout_ms: self.retire_timeout_ms,
        }
    }
}

/// `[[ports]]`: a source of frames (and, for afpacket, a place to forward to).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used by consumers and counters. Default: the URI.
    #[serde(default)]
    pub name: Option<String>,
    /// `afpacket:IFACE` or `pcap:FILE`.
    pub uri: String,
    /// Port filter: on `afpacket`, run in the kernel: a pcap-filter
    /// expression, `ebpf:FILE.o[:PROGRAM]` (a socket filter of the user's) or
    /// `classifier` (the `[classifier]` table); on `pcap`, any filter
    /// (`builtin:`, `plugin:` too) run as records are read.
    #[serde(default)]
    pub filter: Option<String>,
    /// Promiscuous mode while the engine runs (afpacket). Default: true.
    #[serde(default = "yes")]
    pub promisc: bool,
    /// Replay speed of a pcap port: as fast as possible, or at the recorded pace.
    #[serde(default)]
    pub pace: Pace,
    /// Receive on this port (false: a forwarding target only). Default: true.
    #[serde(default = "yes")]
    pub rx: bool,
    /// Low-latency capture (afpacket): a TPACKET_V2 ring that hands each
    /// frame over as soon as the kernel has written it, instead of a V3
    /// block that waits until it is full or `retire_timeout_ms` passes.
    /// Costs a wake-up per frame at low rates. Default: false.
    #[serde(default)]
    pub low_latency: bool,
    /// `afpacket`: also receive the frames this host sends out of the
    /// interface (tcpdump's default, `-Q inout`). Off: only the frames that
    /// arrive (`PACKET_IGNORE_OUTGOING`). Refused on a port the engine
    /// forwards to, which would receive its own transmissions. Default: false.
    #[serde(default)]
    pub outgoing: bool,
}

fn yes() -> bool {
    true
}

/// Replay pace of a pcap port.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pace {
    /// As fast as the pipeline takes frames.
    #[default]
    Fast,
    /// At the intervals recorded in the file.
    Recorded,
}

/// A parsed port URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// An interface through AF_PACKET rings.
    AfPacket(String),
    /// A pcap file replayed as a source.
    Pcap(PathBuf),
}

impl PortConfig {
    /// The port's name.
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.uri)
    }

    /// Whether the port's filter is the eBPF classifier.
    #[must_use]
    pub fn uses_classifier(&self) -> bool {
        self.filter.as_deref().is_some_and(|f| f.trim() == CLASSIFIER_FILTER)
    }

    /// Parse the URI.
    ///
    /// # Errors
    /// A message naming the URI.
    pub fn kind(&self) -> Result<PortKind, String> {
        match self.uri.split_once(':') {
            Some(("afpacket", iface)) if !iface.is_empty() && iface.len() < 16 => {
                Ok(PortKind::AfPacket(iface.to_owned()))
            }
            Some(("afpacket", iface)) => Err(format!("port `{}`: `{iface}` is not an interface name", self.uri)),
            Some(("pcap", file)) if !file.is_empty() => Ok(PortKind::Pcap(PathBuf::from(file))),
            _ => Err(format!("port `{}`: expected `afpacket:IFACE` or `pcap:FILE`", self.uri)),
        }
    }
}

/// `[[consumers]]`: where frames go.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Name for counters and messages.
    pub name: String,
    /// What the consumer does.
    pub kind: ConsumerKind,
    /// Port names it takes frames from. Default: every receiving port.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Filter evaluated in userspace on the worker: a pcap-filter expression
    /// (or `bpf:EXPR`), `builtin:EXPR`, or `plugin:PATH[:CONFIG]`; or a list
    /// of them, a chain in which every stage must pass a frame.
    #[serde(default)]
    pub filter: Option<FilterList>,
    /// What happens to frames once the filter (a plugin) is quarantined.
    #[serde(default)]
    pub on_filter_failure: OnFilterFailure,
    /// `pcap`: the output file; `-` is standard output (one stream: no
    /// rotation, no split, and no other consumer writing there).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `pcap`, `print`: bytes kept per frame. Default 262144; 0 is that
    /// too (whole frames, as tcpdump's `-s 0`).
    #[serde(default = "default_snaplen", deserialize_with = "snaplen_or_whole")]
    pub snaplen: u32,
    /// `pcap`: start a new file after this many MiB (0: never).
    #[serde(default)]
    pub rotate_mb: u64,
    /// `pcap`, with `rotate_mb`: keep at most this many files (per worker
    /// with `split_by_worker`), removing the oldest when a new one starts,
    /// so a long capture takes bounded space (0: keep every file). With
    /// `rotate_s`: stop after this many files (as tcpdump's -G with -W).
    #[serde(default)]
    pub rotate_files: u32,
    /// `pcap`: start a new file every this many seconds (with the first
    /// frame after, as tcpdump's -G), named by `path` run through
    /// strftime(3) at the local time it starts: `path` must hold a `%`
    /// conversion (`trace-%Y%m%d-%H%M%S.pcap`) (0: never).
    #[serde(default)]
    pub rotate_s: u64,
    /// `pcap`: one file per worker (`NAME.wN.pcap`).
    #[serde(default)]
    pub split_by_worker: bool,
    /// Queued consumers: MiB of buffer per worker queue (chunks of at least 128 KiB).
    #[serde(default = "default_queue_mb")]
    pub queue_mb: u32,
    /// `forward`: the port name to send frames out of.
    #[serde(default)]
    pub to: Option<String>,
    /// `pcap`, `print`: stop the engine after this many frames are written.
    #[serde(default)]
    pub limit: Option<u64>,
    /// `pcap`, `print`: what a failed write (a full disk, a file system
    /// gone read-only, a removed directory) does: stop the engine (as
    /// dumpcap stops its capture), or let it go on, counting the frames
    /// not written.
    #[serde(default)]
    pub on_write_error: OnWriteError,
    /// `print`: each line also shows the frame's link-level header (MAC
    /// addresses, ethertype, length), as tcpdump's `-e`.
    #[serde(default)]
    pub print_link: bool,
    /// `print`: under each line, the frame's bytes (link-level header
    /// included) in hex, or hex and ASCII, as tcpdump's `-xx` and `-XX`.
    #[serde(default)]
    pub print_hex: PrintHex,
    /// `print`: how each line's time is shown.
    #[serde(default)]
    pub print_time: PrintTime,
    /// `print`: the time's fraction of a second, in microseconds (tcpdump's
    /// default) or nanoseconds (its `--nano`).
    #[serde(default)]
    pub print_precision: PrintPrecision,
    /// `print`: each line names the port the frame came from, after the
    /// time (default: when the consumer takes frames from more than one
    /// port as the engine starts).
    #[serde(default)]
    pub print_port: Option<bool>,
    /// `print`: TCP sequence and acknowledgment numbers as they are on the
    /// wire (tcpdump's `-S`), instead of relative to the conversation's first.
    #[serde(default)]
    pub print_absolute_seq: bool,
    /// `print`: less on each line (tcpdump's `-q`): a TCP segment as `tcp
    /// LEN`, ethertypes by name alone, no dump of what is not decoded.
    #[serde(default)]
    pub print_quick: bool,
}

/// How a `print` consumer shows each frame's time (UTC), as tcpdump's `-t` options do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PrintTime {
    /// The time of day, `HH:MM:SS.nnnnnnnnn` (tcpdump's default).
    #[default]
    Time,
    /// No time (`-t`).
    None,
    /// Seconds since the epoch, `S.nnnnnnnnn` (`-tt`).
    Epoch,
    /// Since the previous frame printed, `HH:MM:SS.nnnnnnnnn` (`-ttt`).
    Delta,
    /// The date and time of day, `YYYY-MM-DD HH:MM:SS.nnnnnnnnn` (`-tttt`).
    Date,
    /// Since the first frame printed (`-ttttt`).
    SinceFirst,
}

/// The fraction of a second a `print` consumer shows, as tcpdump's
/// `--time-stamp-precision`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PrintPrecision {
    /// Microseconds, 6 digits (tcpdump's default): the time is cut, not rounded.
    #[default]
    Micro,
    /// Nanoseconds, 9 digits.
    Nano,
}

/// How a `print` consumer dumps each frame's bytes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PrintHex {
    /// Not at all.
    #[default]
    None,
    /// In hex, 16 bytes a line, link-level header included (tcpdump's `-xx`).
    Hex,
    /// In hex and printable ASCII, link-level header included (`-XX`).
    HexAscii,
    /// In hex, from the network-layer header on (`-x`).
    NetworkHex,
    /// In hex and printable ASCII, from the network-layer header on (`-X`).
    NetworkHexAscii,
    /// In ASCII (other bytes as `.`), from the network-layer header on (`-A`).
    NetworkAscii,
    /// In ASCII, link-level header included (`-AA`).
    Ascii,
}

impl ConsumerConfig {
    /// Whether it takes frames from port `port` of `config`: a receiving
    /// port it names, or any receiving port when it names none.
    #[must_use]
    pub fn takes_from(&self, config: &Config, port: &str) -> bool {
        config.ports.iter().any(|p| {
            p.rx && p.display_name() == port && (self.ports.is_empty() || self.ports.iter().any(|n| n == port))
        })
    }

    /// A pcap consumer writing to standard output (`path = "-"`).
    #[must_use]
    pub fn writes_stdout(&self) -> bool {
        self.kind == ConsumerKind::Pcap && self.path.as_deref().is_some_and(crate::pcapio::is_stdio)
    }
}

/// A snap length, 0 meaning whole frames (the largest, as tcpdump's `-s 0`).
fn snaplen_or_whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = <u32 as serde::Deserialize>::deserialize(d)?;
    Ok(if n == 0 { MAX_SNAPLEN } else { n })
}

fn default_snaplen() -> u32 {
    MAX_SNAPLEN
}

fn default_queue_mb() -> u32 {
    32
}

/// A consumer's filter: one, or a chain.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged, expecting = "a filter (a string) or a chain of filters (a list of strings)")]
pub enum FilterList {
    /// One filter.
    One(String),
    /// Filters applied in sequence.
    Chain(Vec<String>),
}

impl FilterList {
    /// The stages, in order.
    #[must_use]
    pub fn stages(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Chain(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// As counters and messages show it (`a | b`).
    #[must_use]
    pub fn display(&self) -> String {
        self.stages().join(" | ")
    }
}

/// What a consumer does once its filter has failed and is quarantined.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFilterFailure {
    /// Drop every frame (nothing unfiltered reaches the consumer).
    #[default]
    Drop,
    /// Pass every frame.
    Pass,
}

impl From<OnFilterFailure> for ringwire_filters::QuarantinePolicy {
    fn from(p: OnFilterFailure) -> Self {
        match p {
            OnFilterFailure::Drop => Self::DropAll,
            OnFilterFailure::Pass => Self::PassAll,
        }
    }
}

/// What a writing consumer (`pcap`, `print`) does when a write fails.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnWriteError {
    /// Stop the engine: flush every output, print the counters, exit 1.
    /// What was written before stays a valid file with no gap in it.
    #[default]
    Stop,
    /// Go on: every frame not written counts in `write_errors`, and when
    /// writing works again a warning says how many frames, over how long,
    /// the output is missing. Other consumers (a patch) are not stopped
    /// by a full disk.
    Continue,
}

/// Consumer kinds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerKind {
    /// Count frames and bytes (inline, no copy).
    Counter,
    /// Send frames out of another afpacket port's TX ring (inline, a patch).
    Forward,
    /// Write a nanosecond pcap file (queued, own thread).
    Pcap,
    /// Print one summary line per frame to stdout (queued, own thread).
    Print,
    /// Measure one-way latency and per-flow loss of `ringwire-gen` frames
    /// from their payload stamps (inline, no copy; see [`crate::probe`]).
    Latency,
}

/// As a config file writes it (`pcap`, `counter`).
impl std::fmt::Display for ConsumerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Forward => "forward",
            Self::Pcap => "pcap",
            Self::Print => "print",
            Self::Latency => "latency",
        })
    }
}

impl ConsumerKind {
    /// Whether frames reach this consumer through a queue (copied).
    #[must_use]
    pub fn is_queued(self) -> bool {
        matches!(self, Self::Pcap | Self::Print)
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field or a wrong type (the message has line and column).
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The values do not make a runnable engine.
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Read and parse a file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and, for parse errors, the line and field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    /// Parse TOML text.
    ///
    /// # Errors
    /// The parser's message, naming line, column and field.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            // toml's message spans several lines (a source excerpt); make it one.
            msg.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|')).collect::<Vec<_>>().join(": ")
        })
    }

    /// The interface of the first receiving afpacket port `consumer` takes
    /// frames from: its pcap-filter is then also compiled for live frames.
    #[must_use]
    pub fn live_iface_for(&self, consumer: &ConsumerConfig) -> Option<String> {
        self.ports.iter().filter(|p| consumer.takes_from(self, p.display_name())).find_map(|p| match p.kind() {
            Ok(PortKind::AfPacket(iface)) => Some(iface),
            _ => None,
        })
    }

    /// Check cross-references and values that serde cannot.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending entry and field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.engine.workers.is_empty() {
            return bad("engine.workers: at least one core is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.engine.workers {
            if !seen.insert(c) {
                return bad(format!("engine.workers: core {c} is listed twice"));
            }
        }
        if let Some(us) = self.engine.cpu_latency_us {
            if us > MAX_CPU_LATENCY_US {
                return bad(format!("engine.cpu_latency_us: {us} is above the limit of {MAX_CPU_LATENCY_US} (1 s)"));
            }
        }
        if !(-20..=19).contains(&self.engine.consumer_nice) {
            return bad(format!("engine.consumer_nice: {} is outside -20..=19", self.engine.consumer_nice));
        }
        for (key, prio) in [
            ("consumer_rt_priority", self.engine.consumer_rt_priority),
            ("worker_rt_priority", self.engine.worker_rt_priority),
        ] {
            if prio > MAX_RT_PRIORITY {
                return bad(format!("engine.{key}: {prio} is above {MAX_RT_PRIORITY} (0 turns it off)"));
            }
        }
        self.ring.rx_geometry().validate().map_err(|m| ConfigError::Invalid(format!("ring: {m}")))?;
        // Checked whether or not anything forwards yet (a patch may be added at run time).
        if let Some(m) =
            crate::ring::tx_geometry_error(self.ring.tx_block_size, self.ring.tx_frame_size, self.ring.tx_block_count)
        {
            return bad(format!("ring: {m}"));
        }
        if self.ports.is_empty() {
            return bad("no ports: add a [[ports]] entry (uri = \"afpacket:IFACE\" or \"pcap:FILE\")".into());
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.ports {
            match &p.name {
                Some(n) => check_name(n)
                    .map_err(|m| ConfigError::Invalid(format!("port `{}`: name: {m}", n.escape_debug())))?,
                // Its URI is its name in tables and logs, one line each.
                None if p.uri.chars().any(char::is_control) => {
                    return bad(format!(
                        "port `{}`: a URI with control characters needs a name (name = \"...\")",
                        p.uri.escape_debug()
                    ))
                }
                None => {}
            }
            if let (Ok(PortKind::AfPacket(_)), Some(f)) = (p.kind(), &p.filter) {
                if !matches!(ringwire_filters::FilterSpec::parse(f), ringwire_filters::FilterSpec::Pcap(_)) {
                    return bad(format!(
                        "port `{}`: filter: a port on an interface takes a pcap-filter expression (it runs in the kernel); put builtin: and plugin: filters on consumers",
                        p.display_name()
                    ));
                }
            }
            let kind = p.kind().map_err(ConfigError::Invalid)?;
            if p.low_latency && !matches!(kind, PortKind::AfPacket(_)) {
                return bad(format!("port `{}`: low_latency applies to afpacket ports only", p.display_name()));
            }
            // A slot must hold a minimum Ethernet frame and a VLAN tag put back.
            let kept = self.ring.rx_geometry().kept_whole(true);
            if p.low_latency && p.rx && kept < 68 {
                return bad(format!(
                    "port `{}`: ring.frame_size {}: a low-latency port's slots would keep {kept} bytes of each frame; \
                     give at least {} (68 bytes: a minimum Ethernet frame and a VLAN tag)",
                    p.display_name(),
                    self.ring.frame_size,
                    crate::ring::v2_frame_size(68)
                ));
            }
            if p.rx && !p.low_latency && matches!(kind, PortKind::AfPacket(_)) {
                self.ring.rx_geometry().validate_v3().map_err(|m| ConfigError::Invalid(format!("ring: {m}")))?;
            }
            if p.outgoing && !matches!(kind, PortKind::AfPacket(_)) {
                return bad(format!("port `{}`: outgoing applies to afpacket ports only", p.display_name()));
            }
            if p.outgoing && !p.rx {
                return bad(format!(
                    "port `{}`: outgoing = true receives the frames the host sends out of the interface, \
                     but the port has rx = false: it receives nothing",
                    p.display_name()
                ));
            }
            if !p.rx && p.filter.is_some() {
                return bad(format!(
                    "port `{}`: filter: the port receives nothing (rx = false), so its filter would filter nothing; \
                     put the filter on the forward consumer",
                    p.display_name()
                ));
            }
            if p.pace == Pace::Recorded && !matches!(kind, PortKind::Pcap(_)) {
                return bad(format!("port `{}`: pace = \"recorded\" applies to pcap ports only", p.display_name()));
            }
            if p.uses_classifier() && !matches!(kind, PortKind::AfPacket(_)) {
                return bad(format!(
                    "port `{}`: filter: the classifier runs in the kernel, on afpacket ports only",
                    p.display_name()
                ));
            }
            if !names.insert(p.display_name()) {
                return bad(format!("ports: the name `{}` is used twice", p.display_name()));
            }
        }
        self.classifier.table().map_err(ConfigError::Invalid)?;
        if !(1..=4096).contains(&self.control.max_clients) {
            return bad(format!("control.max_clients: {} is out of range (1-4096)", self.control.max_clients));
        }
        if self.control.idle_timeout_s == 0 {
            return bad("control.idle_timeout_s: must be at least 1".into());
        }
        let mut cnames = std::collections::HashSet::new();
        // pcap records on standard output leave no room for anyone else's bytes there.
        if let Some(c) = self.consumers.iter().find(|c| c.writes_stdout()) {
            if self.consumers.iter().filter(|c| c.writes_stdout() || c.kind == ConsumerKind::Print).count() > 1 {
                return bad(format!(
                    "consumer `{}`: path = \"-\" writes pcap to standard output, so no other consumer may write there (kind = \"print\" or another path = \"-\")",
                    c.name
                ));
            }
        }
        for c in &self.consumers {
            let ctx = format!("consumer `{}`", c.name);
            check_name(&c.name)
                .map_err(|m| ConfigError::Invalid(format!("consumer `{}`: name: {m}", c.name.escape_debug())))?;
            if !cnames.insert(c.name.as_str()) {
                return bad(format!("{ctx}: the name is used twice"));
            }
            for (i, p) in c.ports.iter().enumerate() {
                if c.ports[..i].contains(p) {
                    return bad(format!("{ctx}: ports: `{p}` is listed twice"));
                }
                if !names.contains(p.as_str()) {
                    return bad(format!("{ctx}: ports: no port named `{p}`"));
                }
                if self.ports.iter().any(|q| q.display_name() == p && !q.rx) {
                    return bad(format!(
                        "{ctx}: ports: `{p}` receives nothing (rx = false: it is only a forwarding target)"
                    ));
                }
            }
            if c.writes_stdout() && (c.rotate_mb != 0 || c.split_by_worker) {
                return bad(format!(
                    "{ctx}: path = \"-\" is standard output, one stream: rotate_mb and split_by_worker do not apply"
                ));
            }
            match c.kind {
                ConsumerKind::Pcap if c.path.is_none() => {
                    return bad(format!("{ctx}: path is required for kind = \"pcap\""))
                }
                ConsumerKind::Forward => {
                    let Some(to) = &c.to else {
                        return bad(format!("{ctx}: to is required for kind = \"forward\""));
                    };
                    match self.ports.iter().find(|p| p.display_name() == to) {
                        None => return bad(format!("{ctx}: to: no port named `{to}`")),
                        Some(p) if !matches!(p.kind(), Ok(PortKind::AfPacket(_))) => {
                            return bad(format!("{ctx}: to: port `{to}` is not an afpacket port"))
                        }
                        Some(p) => {
                            // Any port receiving the outgoing frames of that interface would
                            // receive every forwarded frame again.
                            let iface = p.kind().ok();
                            if let Some(o) = self.ports.iter().find(|o| o.outgoing && o.rx && o.kind().ok() == iface) {
                                return bad(format!(
                                    "{ctx}: to: port `{to}`: port `{}` receives the outgoing frames of its interface \
                                     (outgoing = true) and would receive every forwarded frame again",
                                    o.display_name()
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
            if c.kind != ConsumerKind::Print
                && (c.print_link
                    || c.print_hex != PrintHex::None
                    || c.print_time != PrintTime::Time
                    || c.print_precision != PrintPrecision::Micro
                    || c.print_port.is_some()
                    || c.print_absolute_seq
                    || c.print_quick)
            {
                return bad(format!(
                    "{ctx}: print_link, print_hex, print_time, print_precision, print_port, print_absolute_seq and print_quick only apply to kind = \"print\""
                ));
            }
            if c.rotate_files != 0 && c.rotate_mb == 0 && c.rotate_s == 0 {
                return bad(format!(
                    "{ctx}: rotate_files needs rotate_mb or rotate_s (files are only started by size or time)"
                ));
            }
            if c.rotate_s != 0 {
                if c.kind != ConsumerKind::Pcap || c.writes_stdout() {
                    return bad(format!("{ctx}: rotate_s applies to kind = \"pcap\" writing a file"));
                }
                if c.rotate_mb != 0 || c.split_by_worker {
                    return bad(format!("{ctx}: rotate_s does not combine with rotate_mb or split_by_worker"));
                }
                if !c.path.as_deref().is_some_and(|p| has_time_conversion(&p.to_string_lossy())) {
                    return bad(format!(
                        "{ctx}: rotate_s: path must hold a strftime conversion (as trace-%Y%m%d-%H%M%S.pcap): \
                         every new file would overwrite the one before"
                    ));
                }
            }
            if c.kind != ConsumerKind::Pcap && (c.path.is_some() || c.rotate_mb != 0 || c.split_by_worker) {
                return bad(format!("{ctx}: path, rotate_mb and split_by_worker only apply to kind = \"pcap\""));
            }
            if c.kind != ConsumerKind::Forward && c.to.is_some() {
                return bad(format!("{ctx}: to only applies to kind = \"forward\""));
            }
            if c.kind.is_queued() && !(1..=65536).contains(&c.queue_mb) {
                return bad(format!("{ctx}: queue_mb must be between 1 and 65536"));
            }
            // An empty expression keeps every frame, as no filter does: a
            // typo's or a script's empty variable, more likely than meant.
            let empty = |t: &str| matches!(ringwire_filters::FilterSpec::parse(t), ringwire_filters::FilterSpec::Pcap(e) if e.is_empty());
            if c.filter.as_ref().is_some_and(|f| f.stages().is_empty() || f.stages().into_iter().any(empty)) {
                return bad(format!(
                    "{ctx}: filter: an empty filter (or chain stage) would keep every frame: leave `filter` out for that"
                ));
            }
            if c.filter.as_ref().is_some_and(|f| f.stages().into_iter().any(runs_in_kernel)) {
                return bad(format!(
                    "{ctx}: filter: an eBPF program runs in the kernel: attach it to an afpacket port"
                ));
            }
            if c.on_write_error != OnWriteError::Stop && !matches!(c.kind, ConsumerKind::Pcap | ConsumerKind::Print) {
                return bad(format!("{ctx}: on_write_error only applies to kind = \"pcap\" and kind = \"print\""));
            }
            match c.limit {
                Some(_) if !matches!(c.kind, ConsumerKind::Pcap | ConsumerKind::Print) => {
                    return bad(format!("{ctx}: limit only applies to kind = \"pcap\" and kind = \"print\""));
                }
                Some(0) => return bad(format!("{ctx}: limit must be at least 1 (leave it out for no limit)")),
                _ => {}
            }
            if c.snaplen < 14 {
                return bad(format!("{ctx}: snaplen must be at least 14"));
            }
            if c.snaplen > MAX_SNAPLEN {
                return bad(format!("{ctx}: snaplen: {} is over the largest frame kept ({MAX_SNAPLEN})", c.snaplen));
            }
        }
        Ok(())
    }
}

/// The most characters a port, consumer or filter name has.
pub const MAX_NAME_CHARS: usize = 64;

/// A port's, consumer's or named filter's name: what tables, `ringctl`
/// and Prometheus labels show, one line each.
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        Err("1 to 64 characters")
    } else if name.chars().any(char::is_control) {
        Err("no control characters (a newline, a tab) in a name")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gets_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.engine.workers, vec![0]);
        assert_eq!(c.ring.block_size, 1 << 18);
        assert_eq!(u64::from(c.ring.block_size) * u64::from(c.ring.block_count), 64 << 20);
        assert_eq!(c.ring.rxhash, RxHash::Auto);
        assert_eq!(c.engine.consumer_nice, -5);
        assert_eq!(c.engine.consumer_rt_priority, 1);
        assert_eq!(c.engine.worker_rt_priority, 2);
        let err = Config::parse("[ring]\nrxhash = \"sometimes\"\n").unwrap_err();
        assert!(err.contains("sometimes") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn full_config_parses() {
        let c = Config::parse(
            r#"
            [engine]
            workers = [0, 1]
            fanout = "lb"
            wait = "busy-poll"
            [ring]
            block_count = 8
            rxhash = "on"
            [[ports]]
            name = "in"
            uri = "afpacket:veth0"
            filter = "udp"
            [[consumers]]
            name = "cap"
            kind = "pcap"
            path = "/tmp/x.pcap"
            filter = "port 53"
            "#,
        )
        .unwrap();
        assert_eq!(c.engine.fanout, FanoutMode::Lb);
        assert_eq!(c.ring.rxhash, RxHash::On);
        assert_eq!(c.ports[0].kind().unwrap(), PortKind::AfPacket("veth0".into()));
        assert_eq!(c.consumers[0].kind, ConsumerKind::Pcap);
        assert!(c.ports[0].promisc);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err = Config::parse("[engine]\nworkers = [0]\nwrokers = [1]\n").unwrap_err();
        assert!(err.contains("wrokers"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    /// Names are shown one a line in tables and as Prometheus labels: no
    /// control characters, 1 to 64 characters; the message shows the name escaped.
    #[test]
    fn names_are_one_printable_line() {
        let long = "n".repeat(65);
        for (ports_name, consumer_name, needle) in [
            ("p", "nl\\nx", "consumer `nl\\nx`: name: no control characters"),
            ("tab\\tp", "c", "port `tab\\tp`: name: no control characters"),
            ("p", "", "consumer ``: name: 1 to 64 characters"),
            ("p", long.as_str(), "name: 1 to 64 characters"),
        ] {
            let text = format!(
                "[[ports]]\nname = \"{ports_name}\"\nuri = \"pcap:in.pcap\"\n[[consumers]]\nname = \"{consumer_name}\"\nkind = \"counter\"\n"
            );
            let err = Config::parse(&text).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let fine =
            "[[ports]]\nname = \"ünï code\"\nuri = \"pcap:in.pcap\"\n[[consumers]]\nname = \"c\"\nkind = \"counter\"\n";
        Config::parse(fine).unwrap().validate().unwrap();
        // A port without a name is shown by its URI.
        let err = Config::parse("[[ports]]\nuri = \"pcap:a\\nb.pcap\"\n").unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("port `pcap:a\\nb.pcap`: a URI with control characters needs a name"), "{err}");
        let long = format!("[[ports]]\nuri = \"pcap:/{}.pcap\"\n", "d/".repeat(40));
        Config::parse(&long).unwrap().validate().unwrap();
    }

    /// The kernel keeps a ring's block numbers and retire timeout in 16 bits.
    #[test]
    fn ring_geometry_stays_within_what_the_kernel_keeps() {
        let port = "[[ports]]\nuri = \"afpacket:eth9\"\n";
        for (ring, needle) in [
            ("block_count = 65536", "block_count 65536 must be at most 65535 for a block ring"),
            ("block_count = 0", "block_count must be at least 1"),
            ("retire_timeout_ms = 65536", "retire_timeout_ms 65536 must be between 1 and 65535"),
            ("block_size = 2147483648", "block_size 2147483648 must be a power of two between the page size"),
            // TX geometry, whether anything forwards yet or not, by field.
            ("tx_block_size = 1000", "ring: tx_block_size 1000 must be a power of two between the page size"),
            ("tx_frame_size = 100", "ring: tx_frame_size 100 must be a multiple of 16 between 128 and tx_block_size"),
            ("tx_block_count = 0", "ring: tx_block_count must be at least 1"),
        ] {
            let err = Config::parse(&format!("[ring]\n{ring}\n{port}")).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{ring}: {err}");
        }
        for fine in [
            format!("[ring]\nblock_count = 65535\nretire_timeout_ms = 65535\n{port}"),
            // A low-latency (V2) ring is walked frame by frame; files have no ring.
            format!("[ring]\nblock_count = 65536\n{port}low_latency = true\n"),
            "[ring]\nblock_count = 65536\n[[ports]]\nuri = \"pcap:in.pcap\"\n".to_owned(),
            format!("[ring]\nblock_size = 1073741824\nblock_count = 1\n{port}"),
            format!("[ring]\nframe_size = 144\n{port}low_latency = true\n"),
        ] {
            Config::parse(&fine).unwrap().validate().unwrap();
        }
        // Slots too small to hold a minimum frame: records of 10 bytes, no VLAN tag put back.
        let tiny = format!("[ring]\nframe_size = 80\n{port}name = \"ll\"\nlow_latency = true\n");
        let err = Config::parse(&tiny).unwrap().validate().unwrap_err().to_string();
        assert!(
            err.contains("port `ll`: ring.frame_size 80: a low-latency port's slots would keep 10 bytes of each frame; give at least 144"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = Config::parse("[engine]\nworkers = \"zero\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    /// Options of one kind of consumer are refused on another, `rotate_files`
    /// without `rotate_mb`, a `limit` of 0 and a filter only the kernel runs,
    /// by name.
    #[test]
    fn only_patterns_that_change_with_time_name_timed_files() {
        for p in ["t-%Y%m%d-%H%M%S.pcap", "t-%s.pcap", "t-%-H.pcap", "t-%02M.pcap", "%%%S", "t-%Ey.pcap"] {
            assert!(has_time_conversion(p), "{p}");
        }
        for p in ["t.pcap", "t-%Q.pcap", "t-%.pcap", "%%.pcap", "t-%n%t.pcap", "t-%%S.pcap"] {
            assert!(!has_time_conversion(p), "{p}");
        }
    }

    #[test]
    fn kind_specific_fields_are_refused_elsewhere() {
        let base = "[[ports]]\nuri = \"pcap:in.pcap\"\n[[consumers]]\nname = \"c\"\n";
        for (fields, needle) in [
            (
                "kind = \"pcap\"\npath = \"o.pcap\"\nprint_hex = \"hex-ascii\"",
                "print_link, print_hex, print_time, print_precision, print_port, print_absolute_seq and print_quick only apply",
            ),
            (
                "kind = \"counter\"\nprint_link = true",
                "print_link, print_hex, print_time, print_precision, print_port, print_absolute_seq and print_quick only apply",
            ),
            ("kind = \"pcap\"\npath = \"o.pcap\"\nprint_time = \"epoch\"", "print_quick only apply"),
            ("kind = \"counter\"\nprint_precision = \"nano\"", "print_quick only apply"),
            ("kind = \"counter\"\nprint_port = false", "print_quick only apply"),
            ("kind = \"pcap\"\npath = \"o.pcap\"\nprint_absolute_seq = true", "print_quick only apply"),
            ("kind = \"counter\"\nprint_quick = true", "print_quick only apply"),
            ("kind = \"pcap\"\npath = \"o.pcap\"\nrotate_files = 3", "rotate_files needs rotate_mb or rotate_s"),
            ("kind = \"pcap\"\npath = \"o.pcap\"\nrotate_s = 60", "rotate_s: path must hold a strftime conversion"),
            // Patterns that give one name for ever.
            ("kind = \"pcap\"\npath = \"o-%Q.pcap\"\nrotate_s = 60", "rotate_s: path must hold a strftime conversion"),
            ("kind = \"pcap\"\npath = \"%%.pcap\"\nrotate_s = 60", "rotate_s: path must hold a strftime conversion"),
            ("kind = \"pcap\"\npath = \"o-%H.pcap\"\nrotate_s = 60\nrotate_mb = 5", "rotate_s does not combine"),
            ("kind = \"pcap\"\npath = \"-\"\nrotate_s = 60", "rotate_s applies to kind = \"pcap\" writing a file"),
            ("kind = \"counter\"\nrotate_s = 60", "rotate_s applies to kind = \"pcap\""),
            ("kind = \"latency\"\nlimit = 10", "limit only applies to kind = \"pcap\" and kind = \"print\""),
            ("kind = \"counter\"\nlimit = 10", "limit only applies"),
            ("kind = \"pcap\"\npath = \"o.pcap\"\nlimit = 0", "limit must be at least 1 (leave it out for no limit)"),
            (
                "kind = \"counter\"\nfilter = \"classifier\"",
                "filter: an eBPF program runs in the kernel: attach it to an afpacket port",
            ),
            ("kind = \"counter\"\nfilter = \"ebpf:/x.o\"", "an eBPF program runs in the kernel"),
            ("kind = \"counter\"\nfilter = \"\"", "filter: an empty filter (or chain stage) would keep every frame"),
            ("kind = \"counter\"\nfilter = \"bpf: \"", "an empty filter"),
            ("kind = \"counter\"\nfilter = [\"udp\", \"  \"]", "an empty filter"),
            ("kind = \"counter\"\nfilter = []", "an empty filter"),
            ("kind = \"counter\"\nfilter = [\"udp\", \" ebpf:/x.o:prog\"]", "an eBPF program runs in the kernel"),
        ] {
            let err = Config::parse(&format!("{base}{fields}\n")).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{fields}: {err}");
        }
        for ok in [
            "kind = \"print\"\nprint_link = true\nprint_hex = \"network-hex\"\nprint_time = \"since-first\"\nprint_precision = \"nano\"\nprint_port = true\nprint_absolute_seq = true\nprint_quick = true\nlimit = 1",
            "kind = \"pcap\"\npath = \"o.pcap\"\nlimit = 1",
        ] {
            Config::parse(&format!("{base}{ok}\n")).unwrap().validate().unwrap();
        }
    }

    /// A recorded pace on an interface port is refused (it was accepted and
    /// ignored).
    #[test]
    fn a_recorded_pace_on_an_interface_is_refused() {
        let text = |uri: &str| format!("[[ports]]\nname = \"a\"\nuri = \"{uri}\"\npace = \"recorded\"\n");
        Config::parse(&text("pcap:/tmp/x.pcap")).unwrap().validate().unwrap();
        let err = Config::parse(&text("afpacket:a0")).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("port `a`: pace = \"recorded\" applies to pcap ports only"), "{err}");
    }

    /// A consumer cannot name a port that receives nothing (it used to be
    /// accepted, and the consumer then saw no frame).
    #[test]
    fn a_consumer_of_a_port_that_does_not_receive_is_refused() {
        let text = |ports: &str| {
            format!(
                "[[ports]]\nname = \"a\"\nuri = \"afpacket:a0\"\n\
                 [[ports]]\nname = \"b\"\nuri = \"afpacket:b0\"\nrx = false\n\
                 [[consumers]]\nname = \"c\"\nkind = \"counter\"\nports = {ports}\n"
            )
        };
        Config::parse(&text(r#"["a"]"#)).unwrap().validate().unwrap();
        let err = Config::parse(&text(r#"["a", "b"]"#)).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("consumer `c`: ports: `b` receives nothing (rx = false"), "{err}");
    }

    /// A filter of the wrong type says what a filter is (it said "data did
    /// not match any variant of untagged enum FilterList").
    #[test]
    fn a_filter_of_the_wrong_type_says_what_a_filter_is() {
        for v in ["5", "true", "[1]", "{ a = 1 }"] {
            let err = Config::parse(&format!("[[consumers]]\nname = \"c\"\nkind = \"counter\"\nfilter = {v}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("a filter (a string) or a chain of filters (a list of strings)")
                    || (v == "[1]" && err.contains("expected a string")),
                "{v}: {err}"
            );
            assert!(!err.contains("untagged"), "{err}");
        }
        let c =
            Config::parse("[[consumers]]\nname = \"c\"\nkind = \"counter\"\nfilter = [\"udp\", \"tcp\"]\n").unwrap();
        assert_eq!(c.consumers[0].filter, Some(FilterList::Chain(vec!["udp".into(), "tcp".into()])));
    }

    /// A filter on a port that receives nothing was accepted and did
    /// nothing (frames forwarded out of it are not filtered by it).
    #[test]
    fn a_filter_on_a_port_that_does_not_receive_is_refused() {
        let text = "[[ports]]\nname = \"b\"\nuri = \"afpacket:b0\"\nrx = false\nfilter = \"udp\"\n";
        let err = Config::parse(text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("port `b`: filter: the port receives nothing (rx = false)"), "{err}");
    }

    /// A port that receives its outgoing frames cannot be forwarded to: it
    /// would receive every forwarded frame again.
    #[test]
    fn outgoing_on_a_port_that_receives_nothing_is_refused() {
        let text = "[[ports]]\nuri = \"afpacket:lo\"\n[[ports]]\nname = \"b\"\nuri = \"afpacket:eth9\"\nrx = false\noutgoing = true\n";
        let e = Config::parse(text).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("port `b`: outgoing = true") && e.contains("rx = false"), "{e}");
    }

    #[test]
    fn forwarding_to_a_port_that_receives_outgoing_frames_is_refused() {
        let text = |outgoing: bool| {
            format!(
                "[[ports]]\nname = \"a\"\nuri = \"afpacket:a0\"\n\
                 [[ports]]\nname = \"b\"\nuri = \"afpacket:b0\"\noutgoing = {outgoing}\n\
                 [[consumers]]\nname = \"fw\"\nkind = \"forward\"\nports = [\"a\"]\nto = \"b\"\n"
            )
        };
        Config::parse(&text(false)).unwrap().validate().unwrap();
        let err = Config::parse(&text(true)).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("port `b` receives the outgoing frames"), "{err}");
        // Another port on the same interface counts too.
        let other = "[[ports]]\nname = \"bm\"\nuri = \"afpacket:b0\"\noutgoing = true\n";
        let err = Config::parse(&format!("{other}{}", text(false))).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("port `bm` receives the outgoing frames"), "{err}");
        // Outgoing frames belong to interfaces.
        let err = Config::parse("[[ports]]\nuri = \"pcap:x.pcap\"\noutgoing = true\n").unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("outgoing applies to afpacket ports"), "{err}");
    }

    /// `path = "-"` is standard output: one stream, nobody else writing there.
    #[test]
    fn a_pcap_on_standard_output_is_alone_there() {
        let base = "[[ports]]\nuri = \"pcap:in.pcap\"\n[[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"-\"\n";
        let mut c = Config::parse(base).unwrap();
        c.validate().unwrap();
        c.consumers[0].rotate_mb = 10;
        assert!(c.validate().unwrap_err().to_string().contains("rotate_mb and split_by_worker do not apply"));
        for other in ["kind = \"print\"", "kind = \"pcap\"\npath = \"-\""] {
            let c = Config::parse(&format!("{base}[[consumers]]\nname = \"o\"\n{other}\n")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("no other consumer may write there"), "{other}: {err}");
        }
        let c =
            Config::parse(&format!("{base}[[consumers]]\nname = \"o\"\nkind = \"pcap\"\npath = \"o.pcap\"\n")).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn cross_references_are_checked() {
        let mut c = Config::parse(
            "[[ports]]\nuri = \"afpacket:a\"\n[[consumers]]\nname = \"f\"\nkind = \"forward\"\nto = \"nope\"\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("no port named `nope`"));
        c.consumers[0].to = Some("afpacket:a".into());
        c.validate().unwrap();
        c.consumers[0].kind = ConsumerKind::Pcap;
        assert!(c.validate().unwrap_err().to_string().contains("path is required"));
        let c = Config::parse("[[ports]]\nuri = \"tcp:x\"\n").unwrap();
        assert!(c.validate().is_err());
        let c = Config::parse("[engine]\nworkers = [1, 1]\n[[ports]]\nuri = \"pcap:x\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        let mut c = Config::parse(
            "[[ports]]\nname = \"a\"\nuri = \"pcap:x\"\n[[consumers]]\nname = \"c\"\nkind = \"print\"\nports = [\"a\", \"a\"]\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("ports: `a` is listed twice"));
        c.consumers[0].ports.pop();
        c.consumers[0].snaplen = u32::MAX;
        assert!(c.validate().unwrap_err().to_string().contains("snaplen: 4294967295 is over"));
        let c = Config::parse("[[ports]]\nuri = \"pcap:x\"\nlow_latency = true\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("low_latency applies to afpacket ports only"));
        // A snaplen of 0 is whole frames, as tcpdump's -s 0 (it was refused).
        let c = Config::parse(
            "[[ports]]\nuri = \"pcap:x\"\n[[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"o.pcap\"\nsnaplen = 0\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.consumers[0].snaplen, MAX_SNAPLEN);
    }

    #[test]
    fn a_cpu_latency_request_is_optional_and_bounded() {
        let port = "[[ports]]\nuri = \"pcap:x\"\n";
        assert_eq!(Config::parse(port).unwrap().engine.cpu_latency_us, None);
        let c = Config::parse(&format!("[engine]\ncpu_latency_us = 0\n{port}")).unwrap();
        assert_eq!(c.engine.cpu_latency_us, Some(0));
        c.validate().unwrap();
        let c = Config::parse(&format!("[engine]\ncpu_latency_us = 1000000\n{port}")).unwrap();
        c.validate().unwrap();
        for (nice, ok) in [(-20, true), (19, true), (0, true), (-21, false), (20, false)] {
            let c = Config::parse(&format!("[engine]\nconsumer_nice = {nice}\n{port}")).unwrap();
            assert_eq!(c.validate().is_ok(), ok, "consumer_nice = {nice}");
        }
        for key in ["consumer_rt_priority", "worker_rt_priority"] {
            for (prio, ok) in [(0, true), (1, true), (99, true), (100, false)] {
                let c = Config::parse(&format!("[engine]\n{key} = {prio}\n{port}")).unwrap();
                assert_eq!(c.validate().is_ok(), ok, "{key} = {prio}");
            }
            let c = Config::parse(&format!("[engine]\n{key} = 100\n{port}")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.ends_with(&format!("engine.{key}: 100 is above 99 (0 turns it off)")), "{err}");
            assert!(Config::parse(&format!("[engine]\n{key} = -1\n{port}")).is_err());
        }
        let err = Config::parse(&format!("[engine]\nconsumer_nice = 200\n{port}")).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let c = Config::parse(&format!("[engine]\ncpu_latency_us = 1000001\n{port}")).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("engine.cpu_latency_us: 1000001 is above the limit of 1000000"), "{err}");
        assert!(Config::parse("[engine]\ncpu_latency_us = -1\n").is_err());
    }

    #[test]
    fn classifier_table_parses_and_each_mistake_is_named() {
        let base = "[[ports]]\nuri = \"afpacket:a\"\nfilter = \"classifier\"\n[classifier]\ndefault = \"drop\"\n";
        let c = Config::parse(&format!(
            "{base}[[classifier.entries]]\nmac = \"02:00:00:00:00:0a\"\naction = \"pass\"\n\
             [[classifier.entries]]\nvlan = 100\nmac = \"02-00-00-00-00-0B\"\naction = \"drop\"\n"
        ))
        .unwrap();
        c.validate().unwrap();
        assert!(c.ports[0].uses_classifier());
        assert_eq!(c.classifier.default, ClassAction::Drop);
        let table = c.classifier.table().unwrap();
        use ringwire_bpf::{Action, ClassKey};
        assert_eq!(
            table,
            [
                (ClassKey { vlan: None, mac: [2, 0, 0, 0, 0, 0x0a] }, Action::Pass),
                (ClassKey { vlan: Some(100), mac: [2, 0, 0, 0, 0, 0x0b] }, Action::Drop)
            ]
        );
        let err = |entries: &str| {
            let c = Config::parse(&format!("{base}{entries}")).map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())
        };
        let e =
            err("[[classifier.entries]]\nvlan = 5000\nmac = \"02:00:00:00:00:01\"\naction = \"pass\"\n").unwrap_err();
        assert!(e.contains("classifier.entries[1]: vlan: 5000 is out of range"), "{e}");
        let e = err("[[classifier.entries]]\nmac = \"02:00:00:00:01\"\naction = \"pass\"\n").unwrap_err();
        assert!(e.contains("classifier.entries[1]: mac:"), "{e}");
        let two = "[[classifier.entries]]\nmac = \"02:00:00:00:00:01\"\naction = \"pass\"\n";
        let e = err(&format!("{two}{two}")).unwrap_err();
        assert!(
            e.contains("classifier.entries[2]: the key (untagged, mac 02:00:00:00:00:01) is already in the table"),
            "{e}"
        );
        let e = err("[[classifier.entries]]\nmac = \"02:00:00:00:00:01\"\naction = \"allow\"\n").unwrap_err();
        assert!(e.contains("allow"), "{e}");
        let e = err("[[classifier.entries]]\nmac = \"02:00:00:00:00:01\"\naction = \"pass\"\nvlna = 3\n").unwrap_err();
        assert!(e.contains("vlna"), "{e}");
        let c = Config::parse("[[ports]]\nuri = \"pcap:x\"\nfilter = \"classifier\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("afpacket ports only"));
    }

    #[test]
    fn classifier_table_edits_match_keys_whatever_the_mac_spelling() {
        use ringwire_bpf::{Action, ClassKey};
        let mut t = ClassifierConfig {
            default: ClassAction::Drop,
            entries: vec![ClassEntryConfig { vlan: None, mac: "02-00-00-00-00-0A".into(), action: ClassAction::Drop }],
        };
        let a = ClassKey { vlan: None, mac: [2, 0, 0, 0, 0, 10] };
        t.set(a, Action::Pass);
        t.set(ClassKey { vlan: Some(5), ..a }, Action::Drop);
        assert_eq!(t.table().unwrap(), [(a, Action::Pass), (ClassKey { vlan: Some(5), ..a }, Action::Drop)]);
        t.remove(a);
        assert_eq!(t.table().unwrap(), [(ClassKey { vlan: Some(5), ..a }, Action::Drop)]);
    }

    #[test]
    fn shipped_example_configs_parse_validate_and_write_back() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                c.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                // Written back as TOML (`config.show`), it reads as the same config.
                let text = toml::to_string(&c).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let back: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
                assert_eq!(back, c, "{}: written as\n{text}", path.display());
                n += 1;
            }
        }
        assert!(n >= 3, "expected at least three example configs, found {n}");
    }
}
