//! ringwire-filters: the Filter API and the filters the engine runs on frames.
//!
//! This crate owns *what* a filter is and how it decides; it knows nothing of
//! rings, workers or threads (the engine owns those). Today it provides:
//!
//! - [`Filter`]: the one trait every filter implements, with batch evaluation
//!   so per-call costs are paid once per batch;
//! - [`PcapFilter`]: a pcap-filter expression (tcpdump's grammar) compiled by
//!   libpcap into classic BPF, evaluated in userspace by [`CbpfProgram`] or
//!   handed to the kernel as a socket filter ([`CbpfProgram::instructions`]);
//! - [`BuiltinFilter`]: MAC, VLAN, ethertype, protocol, prefix, port,
//!   sampling and rate-limit filters composed with `and` / `or` / `not`;
//! - [`plugin`]: Rust filter plugins behind a versioned C ABI
//!   (`ringwire-filter-sdk` is the side plugins build against);
//! - [`FilterSpec`] / [`FilterFactory`]: the text users write, and one
//!   instance per worker built from it.
//!
//! Contract: a filter never reads outside the frame it is given, never
//! allocates, and never blocks in [`Filter::matches`].

mod builtin;
mod cbpf;
pub mod chain;
/// Bounds-checked header views (shared with plugins through the SDK).
pub use ringwire_filter_sdk::headers;
mod pcap_expr;
pub mod plugin;
mod spec;

pub use builtin::{parse_mac, BuiltinFilter};
pub use cbpf::{CbpfProgram, Insn, VlanTag, MAX_INSNS};
pub use pcap_expr::{compile_expression, CompileTarget, PcapFilter};
pub use plugin::QuarantinePolicy;
pub use spec::{FilterFactory, FilterHealth, FilterHealthSum, FilterSpec, HealthHandle, StageStats};

/// A frame as a filter sees it: the captured bytes and the length on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Captured bytes, starting at the Ethernet header (possibly truncated to a snaplen).
    pub data: &'a [u8],
    /// The frame's length on the wire (at least `data.len()`).
    pub wire_len: u32,
    /// Receive time, ns since the epoch (the clock of time-based filters).
    pub ts_ns: u64,
    /// Where the frame came from (it decides pcap-filter semantics).
    pub origin: Origin,
}

/// Where a frame came from. pcap-filter expressions mean what tcpdump makes
/// them mean: on a live interface, as the kernel's socket filter sees the
/// frame (the VLAN tag stripped into metadata, so `udp` also matches tagged
/// UDP, like `tcpdump -i`); from a file, on the bytes as recorded (like
/// `tcpdump -r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// A file, or anything else: the bytes are the frame.
    #[default]
    Wire,
    /// A live interface; `stripped` is the tag the kernel took out (ringwire
    /// put it back at bytes 12..16 so consumers see the frame as on the wire).
    Kernel {
        /// The stripped tag, if there was one.
        stripped: Option<VlanTag>,
    },
}

impl<'a> Packet<'a> {
    /// An empty packet (to initialise batch arrays).
    pub const EMPTY: Packet<'static> = Packet { data: &[], wire_len: 0, ts_ns: 0, origin: Origin::Wire };

    /// A packet whose captured bytes are the whole frame.
    #[must_use]
    pub fn whole(data: &'a [u8]) -> Self {
        Self { data, wire_len: u32::try_from(data.len()).unwrap_or(u32::MAX), ts_ns: 0, origin: Origin::Wire }
    }
}

/// What a filter decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame goes on to the consumer.
    Pass,
    /// The frame stops here and is counted as filtered.
    Drop,
}

/// A filter: decides for each frame whether it passes.
///
/// Implementations are owned by one worker thread at a time (`Send`, not `Sync`).
pub trait Filter: Send {
    /// A short human name for messages and counters (e.g. the expression).
    fn name(&self) -> &str;

    /// Decide one frame.
    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict;

    /// Decide a batch of frames: `verdicts[i]` is the verdict on `pkts[i]`.
    ///
    /// The default calls [`Filter::verdict`] per frame; filters behind an
    /// expensive boundary override it to pay that cost once per batch.
    fn verdict_batch(&mut self, pkts: &[Packet<'_>], verdicts: &mut [Verdict]) {
        for (pkt, v) in pkts.iter().zip(verdicts.iter_mut()) {
            *v = self.verdict(pkt);
        }
    }
}

/// Decide one frame through a filter's batch path: for filters whose real
/// work is per batch (a plugin's ABI call, a chain's stages).
pub fn verdict_via_batch<F: Filter + ?Sized>(f: &mut F, pkt: &Packet<'_>) -> Verdict {
    let mut v = [Verdict::Drop];
    f.verdict_batch(std::slice::from_ref(pkt), &mut v);
    v[0]
}

/// Errors from building a filter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// libpcap could not compile the expression; `message` is libpcap's own.
    #[error("filter `{expression}`: {message}")]
    Compile {
        /// The expression as given.
        expression: String,
        /// libpcap's error message.
        message: String,
    },
    /// A chain of no filter (`filter = []`).
    #[error("an empty filter chain (`[]`): give at least one filter, or no `filter` for none")]
    EmptyChain,
    /// A built-in filter expression does not parse.
    #[error("built-in filter `{expression}`: {message}")]
    Builtin {
        /// The expression as given.
        expression: String,
        /// What is wrong.
        message: String,
    },
    /// A plugin could not be loaded or refused its config.
    #[error("plugin {path}: {message}")]
    Plugin {
        /// The plugin file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A compiled program failed validation (libpcap should never produce one).
    #[error("filter `{expression}`: invalid classic BPF program: {reason}")]
    InvalidProgram {
        /// The expression as given.
        expression: String,
        /// What is wrong with the program.
        reason: String,
    },
}
