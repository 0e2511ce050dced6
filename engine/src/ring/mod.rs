//! AF_PACKET PACKET_MMAP rings: a TPACKET_V3 receive ring (TPACKET_V2 in
//! low-latency mode) and a TPACKET_V2 transmit ring.
//!
//! ```text
//!  RxRing::open ── socket ─ version ─ reserve ─ filter ─ RX_RING ─ mmap ─ bind ─ fanout
//!  RxRing::next_block() -> Block<'_>   (block owned by us: TP_STATUS_USER, Acquire)
//!      Block::frames() -> Frame<'_>     (read in place; VLAN tag written back in place)
//!  drop(Block)                          (TP_STATUS_KERNEL, Release: the kernel may refill it)
//! ```
//!
//! The ring knows nothing of filters, threads or queues. `&mut self` on
//! `next_block` means one outstanding block per ring; a frame that must
//! outlive its block is copied by the caller.

mod rx;
mod tx;

pub use rx::{
    ring_budget, v2_frame_size, Block, BlockRing, Frame, FrameIter, FrameRing, KernelFilter, Link, RingGeometry,
    RxHash, RxRing, RxRingOptions, MAX_BLOCK_RING_BLOCKS,
};
pub use tx::{geometry_error as tx_geometry_error, TxRing, TxRingOptions, MIN_FRAME, SLOT_HEADROOM};

/// That interface `iface` carries Ethernet frames (or is the loopback):
/// a TUN device's or an IP tunnel's packets would be read, written and
/// forwarded as Ethernet frames, which they are not.
///
/// # Errors
/// [`RingError::NotEthernet`], with its link type.
pub fn check_ethernet(iface: &str) -> Result<(), RingError> {
    crate::sys::if_is_ethernet(iface).map_err(|hw_type| RingError::NotEthernet { iface: iface.to_owned(), hw_type })
}

/// Ring errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The interface does not exist (in this network namespace).
    #[error("no such interface `{0}`")]
    NoSuchInterface(String),
    /// The interface carries no Ethernet frames (a TUN device, an IP
    /// tunnel): its packets would be read, written and forwarded as
    /// Ethernet frames, which they are not.
    #[error(
        "interface `{iface}` is not an Ethernet interface (its link type is ARPHRD {hw_type}: a TUN device or an IP tunnel carries packets without an Ethernet header); ringwire handles Ethernet frames only (`ringwire capture -D` lists the interfaces it can open)"
    )]
    NotEthernet {
        /// The interface.
        iface: String,
        /// Its `ARPHRD_*` type.
        hw_type: u16,
    },
    /// A socket call failed.
    #[error("interface `{iface}`")]
    Sys {
        /// The interface being set up.
        iface: String,
        /// The failed call.
        #[source]
        source: crate::sys::SyscallError,
    },
    /// The requested geometry is not one the kernel accepts.
    #[error("ring geometry: {0}")]
    Geometry(String),
    /// Mapping the ring failed.
    #[error("interface `{iface}`: mmap of a {bytes}-byte ring failed")]
    Mmap {
        /// The interface.
        iface: String,
        /// Ring size in bytes.
        bytes: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
