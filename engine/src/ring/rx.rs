//! The receive ring: TPACKET_V3 (blocks of frames, the default) or, in
//! low-latency mode, TPACKET_V2 (each frame handed over as soon as it is
//! written, with no block retire timeout to wait for).

use std::{
    marker::PhantomData,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use memmap2::{MmapOptions, MmapRaw};

use super::RingError;
use crate::sys::{self, block_desc, Tpacket2Hdr, Tpacket3Hdr, TpacketReq3, TpacketStatsV3};

/// Size of `struct tpacket3_hdr`.
const HDR_LEN: usize = std::mem::size_of::<Tpacket3Hdr>();
/// `TPACKET3_HDRLEN`: the header plus the `sockaddr_ll` the kernel writes after it.
/// A frame's MAC header must start at least [`VLAN_LEN`] past this for a tag
/// to be re-inserted in the slot's own headroom (`PACKET_RESERVE` guarantees it).
const TPACKET3_HDRLEN: usize = HDR_LEN + 20;
/// `TPACKET2_HDRLEN`: the V2 header (32 bytes, already aligned) plus the `sockaddr_ll`.
const TPACKET2_HDRLEN: usize = std::mem::size_of::<Tpacket2Hdr>() + 20;
/// The frame size (slot) of a V2 ring that holds frames of up to `frame`
/// bytes whole: the kernel puts an Ethernet frame's network header at
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + PACKET_RESERVE`, 14 bytes after
/// the frame's start; rounded up as slots are (to 16).
#[must_use]
pub const fn v2_frame_size(frame: u32) -> u32 {
    let net = (TPACKET2_HDRLEN + 16).next_multiple_of(16) + VLAN_LEN;
    (frame + net as u32 - 14).next_multiple_of(16)
}

/// Bytes of a V2 slot in front of the frame: the kernel's `macoff`
/// (`TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + PACKET_RESERVE - 14`).
const V2_MACOFF: u32 = ((TPACKET2_HDRLEN + 16).next_multiple_of(16) + VLAN_LEN - 14) as u32;
/// Bytes of a V3 block in front of its largest frame: the block header
/// (`BLK_PLUS_PRIV(0)`, 48) and the frame's `macoff`
/// (`TPACKET_ALIGN(TPACKET3_HDRLEN + 16) + PACKET_RESERVE - 14`).
const V3_OVERHEAD: u32 = (48 + (TPACKET3_HDRLEN + 16).next_multiple_of(16) + VLAN_LEN - 14) as u32;
/// The largest block the kernel takes (its block size is an `int`; blocks
/// are powers of two).
const MAX_BLOCK_SIZE: usize = 1 << 30;

/// Frames of a V2 ring handed over per `next_block` at most (one dispatch batch).
const V2_RUN: usize = 256;
const VLAN_LEN: usize = 4;
/// `ret #0`: a socket filter that accepts nothing.
const DROP_ALL: [ringwire_filters::Insn; 1] = [ringwire_filters::Insn { code: 0x06, jt: 0, jf: 0, k: 0 }];
/// Smallest frame the kernel accepts: `TPACKET3_HDRLEN + PACKET_RESERVE`, rounded up to 16.
const MIN_FRAME_SIZE: u32 = 80;

/// The longest block retire timeout: the kernel keeps it in 16 bits.
const MAX_RETIRE_TIMEOUT_MS: u32 = u16::MAX as u32;

/// The most blocks a TPACKET_V3 (block) ring may have: the kernel numbers
/// them in 16 bits (see [`RingGeometry::validate_v3`]).
pub const MAX_BLOCK_RING_BLOCKS: u32 = u16::MAX as u32;

/// Ring geometry for a TPACKET_V3 RX ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block: a power of two, a multiple of the page size.
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Nominal frame size (TPACKET_ALIGNMENT multiple); V3 packs frames densely.
    pub frame_size: u32,
    /// Milliseconds after which the kernel retires a partly filled block.
    pub retire_timeout_ms: u32,
}

impl RingGeometry {
    /// Check the geometry against the kernel's rules.
    ///
    /// # Errors
    /// A message naming the first rule broken.
    pub fn validate(&self) -> Result<(), String> {
        let page = crate::sys::page_size();
        let bs = self.block_size as usize;
        if !bs.is_power_of_two() || bs < page || bs > MAX_BLOCK_SIZE {
            return Err(format!(
                "block_size {bs} must be a power of two between the page size ({page}) and 1 GiB ({MAX_BLOCK_SIZE}: the kernel takes no larger block)"
            ));
        }
        if self.frame_size < MIN_FRAME_SIZE || self.frame_size % 16 != 0 || self.frame_size > self.block_size {
            return Err(format!(
                "frame_size {} must be a multiple of 16 between {MIN_FRAME_SIZE} and block_size",
                self.frame_size
            ));
        }
        if self.block_count == 0 {
            return Err("block_count must be at least 1".into());
        }
        // The kernel keeps the retire timeout in 16 bits: past 65535 it would
        // use another timeout than the one asked for.
        if !(1..=MAX_RETIRE_TIMEOUT_MS).contains(&self.retire_timeout_ms) {
            return Err(format!(
                "retire_timeout_ms {} must be between 1 and {MAX_RETIRE_TIMEOUT_MS} (the kernel keeps it in 16 bits)",
                self.retire_timeout_ms
            ));
        }
        Ok(())
    }

    /// Check the geometry for a TPACKET_V3 ring (block by block): the
    /// kernel numbers its blocks in 16 bits, so past 65535 it would fill
    /// block 0 again while block 65536 is awaited, and the ring would stall
    /// after one lap. (A V2 ring is walked frame by frame: no such limit.)
    ///
    /// # Errors
    /// A message naming the first rule broken.
    pub fn validate_v3(&self) -> Result<(), String> {
        self.validate()?;
        if self.block_count > MAX_BLOCK_RING_BLOCKS {
            return Err(format!(
                "block_count {} must be at most {MAX_BLOCK_RING_BLOCKS} for a block ring (the kernel numbers its blocks in 16 bits; use larger blocks)",
                self.block_count
            ));
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }

    /// The longest frame the ring keeps whole: a V2 ring's slot
    /// (`low_latency`) or a V3 ring's block, less what the kernel puts in
    /// front of the frame. A longer frame is cut to this.
    #[must_use]
    pub fn kept_whole(&self, low_latency: bool) -> u32 {
        if low_latency {
            self.frame_size.saturating_sub(V2_MACOFF)
        } else {
            self.block_size.saturating_sub(V3_OVERHEAD)
        }
    }

    /// The block count halved, as on ENOMEM, until the ring takes at most
    /// `budget` bytes (not below 2 blocks); then, if two blocks are still
    /// too large (blocks of hundreds of MiB), the block size halved, down
    /// to a page or the frame size. The kernel allocates a ring at once,
    /// and one larger than the memory there is wakes the OOM killer, which
    /// kills other processes before any ENOMEM comes back.
    #[must_use]
    pub fn fit_in(self, budget: u64) -> Self {
        let mut g = self;
        while g.bytes() as u64 > budget && g.block_count > 2 {
            g.block_count = (g.block_count / 2).max(2);
        }
        let least = u32::try_from(crate::sys::page_size()).unwrap_or(u32::MAX).max(g.frame_size.next_power_of_two());
        while g.bytes() as u64 > budget && g.block_size / 2 >= least {
            g.block_size /= 2;
        }
        g
    }
}

/// Take `geometry` down to `to`, saying why (`why`) and by how much.
fn shrink(iface: &str, geometry: &mut RingGeometry, to: RingGeometry, why: &str) {
    if to.block_size == geometry.block_size {
        tracing::warn!(
            iface,
            from_blocks = geometry.block_count,
            to_blocks = to.block_count,
            block_size = geometry.block_size,
            "{why}; shrinking it"
        );
    } else {
        tracing::warn!(
            iface,
            from_blocks = geometry.block_count,
            to_blocks = to.block_count,
            from_block_size = geometry.block_size,
            to_block_size = to.block_size,
            "{why}; shrinking it"
        );
    }
    *geometry = to;
}

/// A program the kernel runs on each frame before the ring.
#[derive(Debug, Clone, Copy)]
pub enum KernelFilter<'a> {
    /// Classic BPF (compiled pcap-filter), SO_ATTACH_FILTER.
    Classic(&'a [ringwire_filters::Insn]),
    /// A loaded eBPF socket filter, SO_ATTACH_BPF.
    Ebpf(BorrowedFd<'a>),
}

impl KernelFilter<'_> {
    fn attach(self, fd: &OwnedFd) -> Result<(), sys::SyscallError> {
        match self {
            Self::Classic(insns) => sys::attach_filter(fd, insns),
            Self::Ebpf(prog) => sys::attach_bpf(fd, prog),
        }
    }
}

/// When the kernel writes each frame's flow hash into the ring
/// (`TP_FT_REQ_FILL_RXHASH`).
///
/// The hash is free when the device computes it (a NIC with receive
/// hashing). Otherwise the kernel dissects every frame's headers to compute
/// it: on a veth that is a tenth of the receiving core at 1.3 Mpps of 64-byte
/// frames. A hash fanout group does not make it free: it picks the member
/// with a symmetric hash that it does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RxHash {
    /// Only when it is free: the device hashes received frames.
    #[default]
    Auto,
    /// Always, computed by the kernel if the device gives none.
    On,
    /// Never: every frame's `rxhash` is 0.
    Off,
}

/// How to open an RX ring.
#[derive(Debug, Clone)]
pub struct RxRingOptions<'a> {
    /// Interface to capture on.
    pub iface: &'a str,
    /// Requested geometry (shrunk on ENOMEM).
    pub geometry: RingGeometry,
    /// Put the interface in promiscuous mode while open.
    pub promisc: bool,
    /// Kernel filter attached before bind, if any.
    pub filter: Option<KernelFilter<'a>>,
    /// `PACKET_FANOUT_EBPF`: the steering program, set on the group after joining.
    pub fanout_program: Option<BorrowedFd<'a>>,
    /// `PACKET_FANOUT` argument (group id | mode << 16), if joining a group.
    pub fanout: Option<u32>,
    /// Low-latency mode: a TPACKET_V2 ring of `frame_size` slots, each frame
    /// handed over as soon as the kernel has written it (no block timeout);
    /// costs a wake-up per frame at low rates and has no rxhash.
    pub low_latency: bool,
    /// Whether frames carry the kernel's flow hash.
    pub rxhash: RxHash,
    /// Also receive the frames the host sends out of the interface (else
    /// `PACKET_IGNORE_OUTGOING`: only what arrives).
    pub outgoing: bool,
    /// The most bytes the ring may take: a larger geometry is halved to fit,
    /// with a warning. The engine gives each of its rings an equal share of
    /// half the memory available ([`ring_budget`]); `None`: only the
    /// kernel's ENOMEM limits it.
    pub memory_budget: Option<u64>,
}

/// Each of `rings` rings' share of half the memory available now, or `None`
/// when /proc/meminfo cannot be read. The rings are shared out before any is
/// allocated: each ring taking half of what is left after the others would
/// let N rings take all but 2^-N of the memory.
#[must_use]
pub fn ring_budget(rings: usize) -> Option<u64> {
    sys::mem_available().map(|avail| share_of_half(avail, rings))
}

/// Each of `rings` rings' equal share of half of `avail` bytes.
fn share_of_half(avail: u64, rings: usize) -> u64 {
    avail / 2 / rings.max(1) as u64
}

/// A TPACKET_V3 RX ring on a packet socket.
///
/// Field order fixes teardown: the walker (raw pointers into the map), then
/// the map, then the socket.
pub struct RxRing {
    walker: Walker,
    _map: MmapRaw,
    fd: OwnedFd,
    geometry: RingGeometry,
    rxhash: bool,
    /// The interface it was opened on: its name then, and its index.
    iface: String,
    ifindex: u32,
}

/// What became of a ring's interface, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// Up: the kernel delivers its frames.
    Up = 0,
    /// Up, but without a carrier (`ip link`'s `NO-CARRIER`: a cable out, a
    /// veth whose peer is down): no frame comes in, and the kernel drops
    /// what is sent out, until the carrier is back.
    NoCarrier = 1,
    /// Administratively down: no frames until it is up again, when the
    /// kernel resumes delivering to the same socket by itself.
    Down = 2,
    /// Gone (deleted, or moved to another network namespace): the socket
    /// will never receive again.
    Gone = 3,
}

impl Link {
    /// As a counter's value (workers publish it with their port counters).
    #[must_use]
    pub const fn code(self) -> u64 {
        self as u64
    }

    /// Back from [`Link::code`].
    #[must_use]
    pub const fn from_code(code: u64) -> Self {
        match code {
            0 => Self::Up,
            1 => Self::NoCarrier,
            2 => Self::Down,
            _ => Self::Gone,
        }
    }

    /// The state of the interface packet socket `fd` is bound to
    /// (`ifindex`): gone once the kernel has unbound it (its ifindex reads
    /// -1), else up or down as the interface's flags say.
    ///
    /// # Errors
    /// The getsockname or ioctl failure.
    pub(crate) fn of_socket(fd: &OwnedFd, ifindex: u32) -> Result<Self, sys::SyscallError> {
        if sys::bound_ifindex(fd)? < 0 {
            return Ok(Self::Gone);
        }
        match sys::if_flags_of(fd, ifindex as i32) {
            Ok(f) if f & libc::IFF_UP == 0 => Ok(Self::Down),
            Ok(f) if f & libc::IFF_RUNNING == 0 => Ok(Self::NoCarrier),
            Ok(_) => Ok(Self::Up),
            // Unregistered between the two questions.
            Err(e) if matches!(e.io_error.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => Ok(Self::Gone),
            Err(e) => Err(e),
        }
    }

    /// `up`, `down` or `gone`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::NoCarrier => "no-carrier",
            Self::Down => "down",
            Self::Gone => "gone",
        }
    }
}

// SAFETY: the ring exclusively owns its socket and mapping; the raw pointers
// in `walker` point into that mapping, which moves with it. Nothing is shared
// with another thread.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Open a ring: socket → version → reserve → filter → RX_RING (shrinking
    /// on ENOMEM) → mmap → bind → fanout → promisc. A fanout member is
    /// opened closed: it receives nothing until [`RxRing::open_gate`].
    ///
    /// # Errors
    /// [`RingError`] naming the interface and the failed step.
    pub fn open(opts: &RxRingOptions<'_>) -> Result<Self, RingError> {
        let iface = opts.iface;
        let sys_err = |source| RingError::Sys { iface: iface.to_owned(), source };
        if opts.low_latency { opts.geometry.validate() } else { opts.geometry.validate_v3() }
            .map_err(RingError::Geometry)?;
        let ifindex = sys::if_index(iface).ok_or_else(|| RingError::NoSuchInterface(iface.to_owned()))?;
        super::check_ethernet(iface)?;
        let fd = sys::packet_socket().map_err(sys_err)?;
        let version = if opts.low_latency { sys::TPACKET_V2 } else { sys::TPACKET_V3 };
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, &version, "setsockopt(PACKET_VERSION)")
            .map_err(sys_err)?;
        // Headroom in front of the MAC header for putting a stripped VLAN tag back.
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RESERVE, &(VLAN_LEN as u32), "setsockopt(PACKET_RESERVE)")
            .map_err(sys_err)?;
        // The filter goes on before bind, so no unfiltered frame reaches the
        // ring. A fanout member first takes a filter that accepts nothing:
        // between bind and joining the group its own hook would receive a
        // copy of every frame the group also delivers (a duplicate).
        match (opts.fanout, opts.filter) {
            (Some(_), _) => sys::attach_filter(&fd, &DROP_ALL).map_err(sys_err)?,
            (None, Some(f)) => f.attach(&fd).map_err(sys_err)?,
            (None, None) => {}
        }
        let one: libc::c_int = 1;
        // Unless asked: do not see outgoing frames (our own transmissions when
        // forwarding, a generator in the same namespace, the host's traffic).
        if !opts.outgoing {
            sys::setsockopt(
                &fd,
                sys::SOL_PACKET,
                sys::PACKET_IGNORE_OUTGOING,
                &one,
                "setsockopt(PACKET_IGNORE_OUTGOING)",
            )
            .map_err(sys_err)?;
        }

        let rxhash = !opts.low_latency
            && match opts.rxhash {
                RxHash::On => true,
                RxHash::Off => false,
                RxHash::Auto => sys::if_rx_hashing(&fd, iface),
            };
        let mut geometry = opts.geometry;
        if let Some(budget) = opts.memory_budget {
            let fit = geometry.fit_in(budget);
            if fit != geometry {
                let why = format!(
                    "the RX ring would take more than its share of memory ({} MiB: half the memory available, shared among the engine's rings)",
                    budget >> 20
                );
                shrink(iface, &mut geometry, fit, &why);
            }
        }
        loop {
            let req = TpacketReq3 {
                tp_block_size: geometry.block_size,
                tp_block_nr: geometry.block_count,
                tp_frame_size: geometry.frame_size,
                tp_frame_nr: (geometry.block_size / geometry.frame_size) * geometry.block_count,
                tp_retire_blk_tov: geometry.retire_timeout_ms,
                tp_sizeof_priv: 0,
                tp_feature_req_word: if rxhash { sys::TP_FT_REQ_FILL_RXHASH } else { 0 },
            };
            let set = if opts.low_latency {
                // `struct tpacket_req`: the first four fields of `tpacket_req3`.
                let v2 = [req.tp_block_size, req.tp_block_nr, req.tp_frame_size, req.tp_frame_nr];
                sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, &v2, "setsockopt(PACKET_RX_RING)")
            } else {
                sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, &req, "setsockopt(PACKET_RX_RING)")
            };
            match set {
                Ok(()) => break,
                Err(e) if e.io_error.raw_os_error() == Some(libc::ENOMEM) && geometry.block_count > 2 => {
                    let smaller = RingGeometry { block_count: geometry.block_count / 2, ..geometry };
                    shrink(iface, &mut geometry, smaller, "not enough memory for the RX ring");
                }
                Err(e) => return Err(sys_err(e)),
            }
        }
        let bytes = geometry.bytes();
        let map = MmapOptions::new()
            .len(bytes)
            .populate()
            .map_raw(fd.as_raw_fd())
            .map_err(|source| RingError::Mmap { iface: iface.to_owned(), bytes, source })?;
        sys::bind(&fd, ifindex, sys::ETH_P_ALL).map_err(sys_err)?;
        if let Some(arg) = opts.fanout {
            sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_FANOUT, &arg, "setsockopt(PACKET_FANOUT)")
                .map_err(sys_err)?;
            if let Some(prog) = opts.fanout_program {
                // The group's program; the first member sets it before any
                // member's filter lets a frame in (they all drop until then).
                let prog: libc::c_int = prog.as_raw_fd();
                sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_FANOUT_DATA, &prog, "setsockopt(PACKET_FANOUT_DATA)")
                    .map_err(sys_err)?;
            }
            // The member stays closed (it drops every frame) until every
            // member of its group has joined: see [`RxRing::open_gate`].
        }
        if opts.promisc {
            sys::add_promisc(&fd, ifindex).map_err(sys_err)?;
        }
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null on success");
        // Checked by the geometry: `block_size` a power of two of a page or more, `frame_size` a multiple of 16 within it.
        // The mapping lives as long as `walker` (same struct, dropped after it).
        // SAFETY: `base` maps `block_count` page-aligned blocks of `block_size` bytes shared with the kernel.
        let walker = unsafe {
            if opts.low_latency {
                Walker::Frames(FrameRing::new(
                    base,
                    geometry.block_size as usize,
                    geometry.block_count as usize,
                    geometry.frame_size as usize,
                ))
            } else {
                Walker::Blocks(BlockRing::new(base, geometry.block_size as usize, geometry.block_count as usize))
            }
        };
        Ok(Self { walker, _map: map, fd, geometry, rxhash, iface: iface.to_owned(), ifindex })
    }

    /// The next block the kernel has retired to us (V3), or the run of
    /// frames it has written since the last call (V2, low latency), if any.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        match &mut self.walker {
            Walker::Blocks(w) => w.next_block(),
            Walker::Frames(w) => w.next_run(),
        }
    }

    /// The geometry in force (after any ENOMEM shrinking).
    #[must_use]
    pub fn geometry(&self) -> RingGeometry {
        self.geometry
    }

    /// Whether the kernel writes each frame's flow hash (see [`RxHash`]).
    #[must_use]
    pub fn fills_rxhash(&self) -> bool {
        self.rxhash
    }

    /// The interface's name when the ring was opened.
    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Read, and so clear, the socket's pending error (0: none). A down or
    /// vanished interface raises `ENETDOWN`, which polls report as
    /// `POLLERR` until it is read.
    ///
    /// # Errors
    /// The getsockopt failure.
    pub fn take_error(&self) -> Result<i32, sys::SyscallError> {
        sys::take_socket_error(&self.fd)
    }

    /// The longest frame its interface lets through now: its MTU plus an
    /// Ethernet header and a VLAN tag.
    ///
    /// # Errors
    /// The ioctl failure.
    pub fn longest_frame(&self) -> Result<u32, sys::SyscallError> {
        Ok(sys::if_mtu(&self.fd, self.ifindex as i32)? + 18)
    }

    /// The most bytes of a frame the ring keeps whole: a low-latency ring's
    /// slot, a block ring's block, less what the kernel puts before it.
    #[must_use]
    pub fn kept_whole(&self) -> u32 {
        self.geometry.kept_whole(matches!(self.walker, Walker::Frames(_)))
    }

    /// The state of the ring's interface.
    ///
    /// # Errors
    /// The getsockname or ioctl failure.
    pub fn link(&self) -> Result<Link, sys::SyscallError> {
        Link::of_socket(&self.fd, self.ifindex)
    }

    /// The socket's fd (for polling).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Stop the kernel from putting more frames in this ring (a filter that
    /// accepts nothing; frames it refuses are not counted in `tp_packets`),
    /// so a drain can then read exactly what the kernel accepted.
    ///
    /// # Errors
    /// The setsockopt failure.
    pub fn stop_intake(&self) -> Result<(), sys::SyscallError> {
        sys::attach_filter(&self.fd, &DROP_ALL)
    }

    /// Let frames into a fanout member, which [`RxRing::open`] leaves
    /// dropping every frame: through `filter`, or all of them. Called once
    /// every member of the group has joined: the group spreads flows over
    /// the members there are, so a member open while the others join would
    /// take every flow, and then see half of them move to the next member
    /// as it joins (a flow on two workers).
    ///
    /// # Errors
    /// The setsockopt failure.
    pub fn open_gate(&self, filter: Option<KernelFilter<'_>>) -> Result<(), sys::SyscallError> {
        match filter {
            Some(f) => f.attach(&self.fd),
            None => sys::detach_filter(&self.fd),
        }
    }

    /// Replace the socket's kernel filter (atomic in the kernel).
    ///
    /// # Errors
    /// The setsockopt failure.
    pub fn set_filter(&self, filter: KernelFilter<'_>) -> Result<(), sys::SyscallError> {
        filter.attach(&self.fd)
    }

    /// The group id this socket's fanout group got (after joining).
    ///
    /// # Errors
    /// The getsockopt failure.
    pub fn fanout_id(&self) -> Result<u16, sys::SyscallError> {
        let v: u32 = sys::getsockopt(&self.fd, sys::SOL_PACKET, sys::PACKET_FANOUT, "getsockopt(PACKET_FANOUT)")?;
        Ok((v & 0xffff) as u16)
    }

    /// Kernel counters since the previous call: (packets, drops, freezes).
    /// The kernel resets them on every read; the caller accumulates.
    ///
    /// # Errors
    /// The getsockopt failure.
    pub fn take_kernel_stats(&self) -> Result<(u64, u64, u64), sys::SyscallError> {
        let s: TpacketStatsV3 =
            sys::getsockopt(&self.fd, sys::SOL_PACKET, sys::PACKET_STATISTICS, "getsockopt(PACKET_STATISTICS)")?;
        Ok((u64::from(s.tp_packets), u64::from(s.tp_drops), u64::from(s.tp_freeze_q_cnt)))
    }
}

/// How a ring's memory is walked.
enum Walker {
    Blocks(BlockRing),
    Frames(FrameRing),
}

/// Walks the blocks of a V3 ring in memory shared with a producer (the kernel,
/// or a test playing it). Knows nothing of sockets.
pub struct BlockRing {
    base: NonNull<u8>,
    block_size: usize,
    block_count: usize,
    next: usize,
    last_seq: Option<u64>,
}

impl BlockRing {
    /// Wrap `block_count` blocks of `block_size` bytes at `base`.
    ///
    /// # Safety
    /// `base` must point to `block_size * block_count` bytes, 8-byte aligned,
    /// with `block_size` a multiple of 8 (so every block's descriptor is
    /// aligned for its 8-byte reads; the kernel's blocks are whole pages),
    /// readable and writable, valid for the life of the `BlockRing`, whose
    /// blocks follow the TPACKET_V3 protocol: a block's status word is only
    /// set to `TP_STATUS_USER` (with Release) once its contents are complete.
    #[must_use]
    pub unsafe fn new(base: NonNull<u8>, block_size: usize, block_count: usize) -> Self {
        Self { base, block_size, block_count, next: 0, last_seq: None }
    }

    /// The next block handed to userspace, or `None` if the kernel still owns it.
    pub fn next_block(&mut self) -> Option<Block<'_>> {
        // SAFETY: `next < block_count`, so the descriptor lies inside the ring
        // (`new`'s contract).
        let desc = unsafe { self.base.as_ptr().add(self.next * self.block_size) };
        // SAFETY: the status word is 4-byte aligned (blocks are page aligned)
        // and is written concurrently by the kernel, so it is read atomically.
        let status = unsafe { &*desc.add(block_desc::BLOCK_STATUS).cast::<AtomicU32>() };
        // Acquire pairs with the kernel's smp_wmb()+store in prb_close_block().
        if status.load(Ordering::Acquire) & sys::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block is ours until we store TP_STATUS_KERNEL; the fields
        // lie inside the descriptor.
        let (num_pkts, first, seq) = unsafe {
            (
                desc.add(block_desc::NUM_PKTS).cast::<u32>().read(),
                desc.add(block_desc::OFFSET_TO_FIRST_PKT).cast::<u32>().read(),
                desc.add(block_desc::SEQ_NUM).cast::<u64>().read(),
            )
        };
        debug_assert!(
            self.last_seq.is_none_or(|last| seq == last + 1),
            "block seq_num went from {:?} to {seq}",
            self.last_seq
        );
        self.last_seq = Some(seq);
        Some(Block {
            kind: BlockKind::V3 { desc, block_size: self.block_size, num_pkts, first: first as usize, ring: self },
            walked: false,
        })
    }
}

/// Walks the frame slots of a V2 ring (low-latency mode) in memory shared
/// with a producer. Knows nothing of sockets.
pub struct FrameRing {
    base: NonNull<u8>,
    block_size: usize,
    per_block: usize,
    frame_size: usize,
    /// `frame_size` divides `block_size`: slots follow each other across blocks.
    contiguous: bool,
    frames: usize,
    next: usize,
}

impl FrameRing {
    /// Wrap the `block_count` blocks of `block_size` bytes at `base`, each
    /// holding `block_size / frame_size` slots of `frame_size` bytes.
    ///
    /// # Safety
    /// `base` must point to `block_size * block_count` bytes, 16-byte
    /// aligned, readable and writable, valid for the life of the
    /// `FrameRing`, whose slots follow the TPACKET_V2 protocol: a slot's
    /// status word is only set to `TP_STATUS_USER` (with Release) once its
    /// frame is complete. `frame_size` is a multiple of 16, at least the
    /// 32-byte `tpacket2_hdr` and at most `block_size`, and `block_size` a
    /// multiple of 16 (so every slot is 16-byte aligned; the kernel's blocks
    /// are whole pages); `block_count` is at least 1.
    #[must_use]
    pub unsafe fn new(base: NonNull<u8>, block_size: usize, block_count: usize, frame_size: usize) -> Self {
        debug_assert!(frame_size >= std::mem::size_of::<Tpacket2Hdr>() && frame_size <= block_size && block_count > 0);
        let per_block = block_size / frame_size;
        let contiguous = block_size % frame_size == 0;
        Self { base, block_size, per_block, frame_size, contiguous, frames: per_block * block_count, next: 0 }
    }

    fn slot(&self, i: usize) -> *mut u8 {
        let at = if self.contiguous {
            // Blocks are back to back and filled exactly: slot `i` is `i` slots in.
            i * self.frame_size
        } else {
            (i / self.per_block) * self.block_size + (i % self.per_block) * self.frame_size
        };
        // SAFETY: `i < frames`, so the slot lies inside the ring (`new`'s contract).
        unsafe { self.base.as_ptr().add(at) }
    }

    /// Slot `i` of a walk that started at most a ring's length back: `i < 2 * frames`.
    fn wrap(&self, i: usize) -> usize {
        if i >= self.frames {
            i - self.frames
        } else {
            i
        }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: `tp_status` is the slot's first word, 4-byte aligned (slots are
        // 16-byte aligned), written concurrently by the kernel: read atomically.
        unsafe { &*self.slot(i).cast::<AtomicU32>() }
    }

    /// The frames the kernel has handed over since the last run (at most
    /// [`V2_RUN`]), or `None` if the next slot is still the kernel's.
    pub fn next_run(&mut self) -> Option<Block<'_>> {
        let mut count = 0;
        // Acquire pairs with the kernel's smp_wmb() + status store in tpacket_rcv().
        while count < V2_RUN.min(self.frames)
            && self.status(self.wrap(self.next + count)).load(Ordering::Acquire) & sys::TP_STATUS_USER != 0
        {
            count += 1;
        }
        (count > 0).then(|| Block { kind: BlockKind::V2 { start: self.next, count, ring: self }, walked: false })
    }
}

/// Frames handed to userspace: a V3 block retired by the kernel, or a run of
/// V2 slots. Handed back when dropped.
pub struct Block<'ring> {
    kind: BlockKind<'ring>,
    walked: bool,
}

enum BlockKind<'ring> {
    V3 { desc: *mut u8, block_size: usize, num_pkts: u32, first: usize, ring: &'ring mut BlockRing },
    V2 { start: usize, count: usize, ring: &'ring mut FrameRing },
}

impl Block<'_> {
    /// Number of frames in the block.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.kind {
            BlockKind::V3 { num_pkts, .. } => *num_pkts as usize,
            BlockKind::V2 { count, .. } => *count,
        }
    }

    /// Whether the block holds no frame (a retired empty block).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block's frames, read in place. A VLAN tag the kernel stripped is
    /// written back in front of the ethertype, in place, before the frame is
    /// yielded. The walk rewrites the block, so it happens once: a second
    /// call yields nothing.
    pub fn frames(&mut self) -> FrameIter<'_> {
        let walked = std::mem::replace(&mut self.walked, true);
        let kind = match &self.kind {
            BlockKind::V3 { desc, block_size, num_pkts, first, .. } => IterKind::V3 {
                desc: *desc,
                block_size: *block_size,
                offset: *first,
                left: if walked { 0 } else { *num_pkts },
            },
            BlockKind::V2 { start, count, ring } => {
                IterKind::V2 { ring, next: *start, left: if walked { 0 } else { *count } }
            }
        };
        FrameIter { kind, _block: PhantomData }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        match &mut self.kind {
            BlockKind::V3 { desc, ring, .. } => {
                // SAFETY: the status word is inside the descriptor and aligned; the
                // Release store publishes that we are done with the block's memory
                // (including our in-place VLAN writes) before the kernel reuses it.
                let status = unsafe { &*desc.add(block_desc::BLOCK_STATUS).cast::<AtomicU32>() };
                status.store(sys::TP_STATUS_KERNEL, Ordering::Release);
                ring.next = (ring.next + 1) % ring.block_count;
            }
            BlockKind::V2 { start, count, ring } => {
                for k in 0..*count {
                    // Release: our reads and VLAN writes of the slot happen before the kernel reuses it.
                    ring.status(ring.wrap(*start + k)).store(sys::TP_STATUS_KERNEL, Ordering::Release);
                }
                ring.next = ring.wrap(*start + *count);
            }
        }
    }
}

/// One received frame, borrowed from its block.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Captured bytes from the Ethernet header on, with any VLAN tag restored.
    pub data: &'a [u8],
    /// Length on the wire (including a restored tag).
    pub wire_len: u32,
    /// Kernel receive timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// The kernel's flow hash (`skb->hash`); 0 when the ring does not ask
    /// for it (see [`RxHash`]) and in low-latency mode.
    pub rxhash: u32,
    /// The VLAN tag the kernel stripped, now put back at bytes 12..16.
    pub vlan: Option<ringwire_filters::VlanTag>,
}

/// Iterator over a block's frames.
pub struct FrameIter<'a> {
    kind: IterKind<'a>,
    _block: PhantomData<&'a mut Block<'a>>,
}

enum IterKind<'a> {
    V3 { desc: *mut u8, block_size: usize, offset: usize, left: u32 },
    V2 { ring: &'a FrameRing, next: usize, left: usize },
}

/// A frame's header fields, from either header version.
struct RawFrame {
    /// The frame's slot (V2) or block (V3), and its length.
    area: *mut u8,
    area_len: usize,
    /// Offset of the MAC header in the area, and whether the slot's own
    /// headroom in front of it has room for a tag.
    mac: usize,
    headroom: bool,
    caplen: usize,
    wire_len: u32,
    status: u32,
    tci: u16,
    tpid: u16,
    ts_ns: u64,
    rxhash: u32,
}

impl RawFrame {
    /// The frame, with a stripped VLAN tag written back in place.
    ///
    /// # Safety
    /// `area .. area + area_len` is memory of a block or slot we own (handed
    /// over by the kernel, not yet handed back), borrowed for `'a`.
    #[inline(always)]
    unsafe fn restore<'a>(self) -> Option<Frame<'a>> {
        let RawFrame { area, area_len, mut mac, headroom, mut caplen, mut wire_len, .. } = self;
        if mac + caplen > area_len {
            // A malformed header: never read outside the block.
            debug_assert!(false, "frame at {mac} overruns its area of {area_len}");
            return None;
        }
        let mut vlan = None;
        if self.status & sys::TP_STATUS_VLAN_VALID != 0 && caplen >= 12 && headroom {
            let tpid =
                if self.status & sys::TP_STATUS_VLAN_TPID_VALID != 0 && self.tpid != 0 { self.tpid } else { 0x8100 };
            let tci = self.tci;
            // SAFETY: `mac - 4 .. mac + caplen` lies inside this frame's slot
            // in the area (the headroom is PACKET_RESERVE'd and checked by
            // the caller); we own the area; `copy` handles the overlap.
            unsafe {
                let p = area.add(mac);
                std::ptr::copy(p, p.sub(VLAN_LEN), 12);
                let tag = p.add(12 - VLAN_LEN);
                tag.cast::<[u8; 2]>().write_unaligned(tpid.to_be_bytes());
                tag.add(2).cast::<[u8; 2]>().write_unaligned(tci.to_be_bytes());
            }
            mac -= VLAN_LEN;
            caplen += VLAN_LEN;
            wire_len += VLAN_LEN as u32;
            vlan = Some(ringwire_filters::VlanTag { tci, tpid });
        }
        // SAFETY: `mac .. mac + caplen` lies inside the area (checked above,
        // and the tag moved `mac` back into our own headroom); no other
        // reference to these bytes exists while the block is borrowed.
        let data = unsafe { std::slice::from_raw_parts(area.add(mac), caplen) };
        Some(Frame { data, wire_len, ts_ns: self.ts_ns, rxhash: self.rxhash, vlan })
    }
}

/// How many frames ahead of the one it returns [`FrameIter`] prefetches.
const PREFETCH_FRAMES: usize = 4;

/// Ask for the cache line at `p` and the next one (a frame's header and the
/// start of its data). A hint only: it never faults, wherever `p` points.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing the program sees and cannot fault,
    // whatever the address; `wrapping_add` makes no claim on it either.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn ts(sec: u32, nsec: u32) -> u64 {
    u64::from(sec) * 1_000_000_000 + u64::from(nsec)
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Frame<'a>;

    // Inlined into the worker's loop: returned through memory, the frame
    // cost a stall on every call.
    #[inline(always)]
    fn next(&mut self) -> Option<Frame<'a>> {
        let raw = match &mut self.kind {
            IterKind::V3 { desc, block_size, offset, left } => {
                if *left == 0 || *offset + HDR_LEN > *block_size {
                    return None;
                }
                *left -= 1;
                // SAFETY: `offset + HDR_LEN <= block_size` (checked above), and the
                // block is owned by us while the iterator lives.
                let hdr: Tpacket3Hdr = unsafe { desc.add(*offset).cast::<Tpacket3Hdr>().read_unaligned() };
                let frame_start = *offset;
                *offset = if hdr.tp_next_offset == 0 {
                    *block_size // last frame: stop after this one
                } else {
                    // Ask for the frame a few ahead (guessed from this one's
                    // size: frames of a burst are alike) while this one is
                    // handled: its header is otherwise waited for.
                    prefetch(desc.wrapping_add(*offset + PREFETCH_FRAMES * hdr.tp_next_offset as usize));
                    *offset + hdr.tp_next_offset as usize
                };
                RawFrame {
                    area: *desc,
                    area_len: *block_size,
                    mac: frame_start + usize::from(hdr.tp_mac),
                    headroom: usize::from(hdr.tp_mac) >= TPACKET3_HDRLEN + VLAN_LEN,
                    caplen: hdr.tp_snaplen as usize,
                    wire_len: hdr.tp_len,
                    status: hdr.tp_status,
                    tci: (hdr.tp_vlan_tci & 0xffff) as u16,
                    tpid: hdr.tp_vlan_tpid,
                    ts_ns: ts(hdr.tp_sec, hdr.tp_nsec),
                    rxhash: hdr.tp_rxhash,
                }
            }
            IterKind::V2 { ring, next, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let slot = ring.slot(*next);
                *next = ring.wrap(*next + 1);
                // SAFETY: the slot is `frame_size` bytes, at least the header's, and
                // ours (TP_STATUS_USER, read with Acquire) while the iterator lives.
                let hdr: Tpacket2Hdr = unsafe { slot.cast::<Tpacket2Hdr>().read_unaligned() };
                RawFrame {
                    area: slot,
                    area_len: ring.frame_size,
                    mac: usize::from(hdr.tp_mac),
                    headroom: usize::from(hdr.tp_mac) >= TPACKET2_HDRLEN + VLAN_LEN,
                    caplen: hdr.tp_snaplen as usize,
                    wire_len: hdr.tp_len,
                    status: hdr.tp_status,
                    tci: hdr.tp_vlan_tci,
                    tpid: hdr.tp_vlan_tpid,
                    ts_ns: ts(hdr.tp_sec, hdr.tp_nsec),
                    rxhash: 0,
                }
            }
        };
        // SAFETY: the area is the block or slot this iterator's block owns.
        unsafe { raw.restore() }
    }
}

#[cfg(test)]
mod tests {
    //! The test plays the kernel: it lays out blocks and frame headers in a
    //! heap buffer and flips block status words.
    use super::*;

    /// The longest frames kept whole, as the kernel cut them on this VM's
    /// 6.x kernel: 1978 bytes in a low-latency ring's default 2048-byte
    /// slots, 3962 and 8058 in 4 and 8 KiB blocks.
    #[test]
    fn frames_kept_whole_are_the_kernels() {
        let g = |block_size, frame_size| RingGeometry { block_size, block_count: 4, frame_size, retire_timeout_ms: 10 };
        assert_eq!(g(4096, 2048).kept_whole(true), 1978);
        assert_eq!(g(4096, 80).kept_whole(true), 10);
        assert_eq!(g(4096, 2048).kept_whole(false), 3962);
        assert_eq!(g(8192, 2048).kept_whole(false), 8058);
        assert_eq!(v2_frame_size(1978), 2048);
    }

    /// A ring asked for beyond the memory there is (`capture -B` with a
    /// typo) is halved, as on ENOMEM, to at most its budget; one that fits
    /// is left alone.
    #[test]
    fn a_ring_larger_than_memory_is_halved_to_fit() {
        let g = RingGeometry { block_size: 1 << 18, block_count: 400_000, frame_size: 2048, retire_timeout_ms: 10 };
        let avail = 12u64 << 30;
        let fit = g.fit_in(avail);
        assert!(fit.bytes() as u64 <= avail, "{fit:?}");
        assert!(fit.bytes() as u64 > avail / 2, "halved once too often: {fit:?}");
        assert_eq!((fit.block_size, fit.frame_size), (g.block_size, g.frame_size));
        let small = RingGeometry { block_count: 256, ..g };
        assert_eq!(small.fit_in(avail), small);
        // Never below two blocks, whatever is available: then smaller blocks.
        assert_eq!(g.fit_in(0).block_count, 2);
        // Two blocks of 1 GiB over a share of 1458 MiB: two of 512 MiB (the
        // count stopped at two, the ring stayed over its share).
        let huge = RingGeometry { block_size: 1 << 30, block_count: 64, ..g };
        let fit = huge.fit_in(1458 << 20);
        assert_eq!((fit.block_count, fit.block_size), (2, 1 << 29));
        // Down to a page (or the frame size) at the least, even with nothing available.
        let page = crate::sys::page_size() as u32;
        assert_eq!(huge.fit_in(0).block_size, page.max(2048));
        assert!(huge.fit_in(0).validate().is_ok());
    }

    /// Rings opened one after another within their shares of half the
    /// memory available at the start take at most half of it in all, however
    /// many there are, and each the same; each taking half of what the
    /// others left would take all but 2^-N of it.
    #[test]
    fn rings_opened_within_their_shares_take_at_most_half_the_memory() {
        let block = 4u64 << 20;
        let start = 22u64 << 30;
        for rings in [1usize, 2, 3, 4, 8] {
            let asked = RingGeometry {
                block_size: block as u32,
                block_count: (start / block) as u32,
                frame_size: 2048,
                retire_timeout_ms: 10,
            };
            let budget = share_of_half(start, rings);
            let mut avail = start;
            let mut taken = Vec::new();
            for _ in 0..rings {
                let g = asked.fit_in(budget);
                avail -= g.bytes() as u64;
                taken.push(g.bytes() as u64);
            }
            assert!(start - avail <= start / 2, "{rings} rings take {} of {start}", start - avail);
            assert!(start - avail > start / 4, "{rings} rings halved once too often: {taken:?}");
            assert!(taken.iter().all(|&t| t == taken[0]), "{taken:?}");
        }
        assert_eq!(share_of_half(start, 0), start / 2, "no rings: no division by zero");
    }

    /// A V2 slot holds the kernel's 70 bytes before an Ethernet frame
    /// (`macoff` with `PACKET_RESERVE` 4) and the frame, rounded to 16.
    #[test]
    fn a_v2_slot_holds_the_headroom_and_the_frame() {
        assert_eq!(v2_frame_size(1514), 1584);
        assert_eq!(v2_frame_size(9000), (9070u32).next_multiple_of(16));
        assert!(v2_frame_size(1) >= 71 && v2_frame_size(1) % 16 == 0);
    }

    const BS: usize = 4096;
    const NB: usize = 4;

    struct FakeKernel {
        mem: Vec<u64>,
        seq: u64,
    }

    impl FakeKernel {
        fn new() -> Self {
            Self { mem: vec![0u64; BS * NB / 8], seq: 1 }
        }
        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: reinterpreting a u64 buffer as bytes is always valid.
            unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr().cast::<u8>(), BS * NB) }
        }
        fn status(&mut self, block: usize) -> u32 {
            let b = self.bytes();
            u32::from_ne_bytes(b[block * BS + 8..block * BS + 12].try_into().unwrap())
        }
        /// Fill `block` with frames (payload, vlan tci) and retire it.
        fn retire(&mut self, block: usize, frames: &[(&[u8], Option<u16>)]) {
            let seq = self.seq;
            self.seq += 1;
            let b = &mut self.bytes()[block * BS..(block + 1) * BS];
            let mut off = 48usize;
            let first = off;
            for (i, (payload, vlan)) in frames.iter().enumerate() {
                let mac = 82 + 4; // as the kernel lays it out with PACKET_RESERVE 4
                let next = if i + 1 == frames.len() { 0 } else { (mac + payload.len() + 15) & !15 };
                let mut status = sys::TP_STATUS_USER;
                if vlan.is_some() {
                    status |= sys::TP_STATUS_VLAN_VALID | sys::TP_STATUS_VLAN_TPID_VALID;
                }
                let hdr = Tpacket3Hdr {
                    tp_next_offset: next as u32,
                    tp_sec: 7,
                    tp_nsec: 5,
                    tp_snaplen: payload.len() as u32,
                    tp_len: payload.len() as u32,
                    tp_status: status,
                    tp_mac: mac as u16,
                    tp_net: (mac + 14) as u16,
                    tp_rxhash: 0xabcd,
                    tp_vlan_tci: u32::from(vlan.unwrap_or(0)),
                    tp_vlan_tpid: if vlan.is_some() { 0x8100 } else { 0 },
                    ..Default::default()
                };
                // SAFETY: plain-old-data header written into a byte buffer with room for it.
                unsafe { b.as_mut_ptr().add(off).cast::<Tpacket3Hdr>().write_unaligned(hdr) };
                b[off + mac..off + mac + payload.len()].copy_from_slice(payload);
                off += next;
            }
            b[12..16].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
            b[16..20].copy_from_slice(&(first as u32).to_ne_bytes());
            b[24..32].copy_from_slice(&seq.to_ne_bytes());
            b[8..12].copy_from_slice(&sys::TP_STATUS_USER.to_ne_bytes());
        }
        fn ring(&mut self) -> BlockRing {
            let base = NonNull::new(self.mem.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: the buffer holds NB blocks of BS (4096) bytes, is 8-byte
            // aligned and outlives the ring in every test.
            unsafe { BlockRing::new(base, BS, NB) }
        }
    }

    fn eth(ethertype: u16, fill: u8, len: usize) -> Vec<u8> {
        let mut f = vec![fill; len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    }

    #[test]
    fn walks_frames_and_returns_blocks_in_order() {
        let mut k = FakeKernel::new();
        let a = eth(0x0800, 0xaa, 60);
        let b = eth(0x86dd, 0xbb, 1514);
        k.retire(0, &[(&a, None), (&b, None)]);
        let mut ring = k.ring();
        {
            let mut blk = ring.next_block().expect("block 0 is retired");
            assert_eq!(blk.len(), 2);
            let frames: Vec<_> = blk.frames().map(|f| (f.data.to_vec(), f.wire_len, f.ts_ns, f.rxhash)).collect();
            assert_eq!(frames[0].0, a);
            assert_eq!(frames[1].0, b);
            assert_eq!(frames[1].1, 1514);
            assert_eq!(frames[0].2, 7_000_000_005);
            assert_eq!(frames[0].3, 0xabcd);
        }
        // Handed back, and the next block is still the kernel's.
        assert_eq!(k.status(0), sys::TP_STATUS_KERNEL);
        assert!(ring.next_block().is_none());
        let c = eth(0x0806, 0xcc, 42);
        k.retire(1, &[(&c, None)]);
        let mut blk = ring.next_block().expect("block 1 is retired");
        assert_eq!(blk.frames().next().unwrap().data, &c[..]);
    }

    #[test]
    fn wraps_around_the_ring() {
        let mut k = FakeKernel::new();
        let mut ring = k.ring();
        for round in 0..(NB * 3) {
            let f = eth(0x0800, round as u8, 100);
            k.retire(round % NB, &[(&f, None)]);
            let mut blk = ring.next_block().expect("retired");
            assert_eq!(blk.frames().next().unwrap().data, &f[..]);
        }
    }

    #[test]
    fn vlan_tag_is_reinserted_in_place() {
        let mut k = FakeKernel::new();
        let untagged = eth(0x0800, 0x11, 64);
        k.retire(0, &[(&untagged, Some(0x2064))]);
        let mut ring = k.ring();
        let mut blk = ring.next_block().unwrap();
        let f = blk.frames().next().unwrap();
        assert_eq!(f.vlan, Some(ringwire_filters::VlanTag { tci: 0x2064, tpid: 0x8100 }));
        assert_eq!(f.data.len(), 68);
        assert_eq!(f.wire_len, 68);
        assert_eq!(&f.data[..12], &untagged[..12]);
        assert_eq!(&f.data[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(&f.data[16..], &untagged[12..]);
        assert_eq!(blk.frames().count(), 0, "a block is walked (and rewritten) once");
    }

    /// A V2 ring of 2 blocks x 4 slots of 1024 bytes, filled the way the kernel does.
    struct FakeV2 {
        mem: Vec<u64>,
    }

    impl FakeV2 {
        const FS: usize = 1024;
        fn new() -> Self {
            Self { mem: vec![0u64; BS * 2 / 8] }
        }
        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: reinterpreting a u64 buffer as bytes is always valid.
            unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr().cast::<u8>(), BS * 2) }
        }
        fn fill(&mut self, slot: usize, payload: &[u8], vlan: Option<u16>) {
            let at = (slot / 4) * BS + (slot % 4) * Self::FS;
            let mac = 64 + 4; // TPACKET_ALIGN(52) rounded for the MAC header, plus PACKET_RESERVE 4
            let mut status = sys::TP_STATUS_USER;
            if vlan.is_some() {
                status |= sys::TP_STATUS_VLAN_VALID | sys::TP_STATUS_VLAN_TPID_VALID;
            }
            let hdr = Tpacket2Hdr {
                tp_status: status,
                tp_len: payload.len() as u32,
                tp_snaplen: payload.len() as u32,
                tp_mac: mac as u16,
                tp_net: (mac + 14) as u16,
                tp_sec: 3,
                tp_nsec: 9,
                tp_vlan_tci: vlan.unwrap_or(0),
                tp_vlan_tpid: if vlan.is_some() { 0x8100 } else { 0 },
                tp_padding: [0; 4],
            };
            let b = self.bytes();
            b[at + mac..at + mac + payload.len()].copy_from_slice(payload);
            // SAFETY: plain-old-data header written into a byte buffer with room for it.
            unsafe { b.as_mut_ptr().add(at).cast::<Tpacket2Hdr>().write_unaligned(hdr) };
        }
        fn status(&mut self, slot: usize) -> u32 {
            let at = (slot / 4) * BS + (slot % 4) * Self::FS;
            u32::from_ne_bytes(self.bytes()[at..at + 4].try_into().unwrap())
        }
        fn ring(&mut self) -> FrameRing {
            let base = NonNull::new(self.mem.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: the buffer holds 2 blocks of BS bytes, is 8-byte aligned
            // (16 for the slots' status words is not needed by the fake) and
            // outlives the ring in every test.
            unsafe { FrameRing::new(base, BS, 2, Self::FS) }
        }
    }

    #[test]
    fn a_v2_ring_hands_over_each_frame_as_written_and_wraps() {
        let mut k = FakeV2::new();
        let mut ring = k.ring();
        assert!(ring.next_run().is_none(), "nothing written yet");
        let a = eth(0x0800, 0xaa, 60);
        let b = eth(0x86dd, 0xbb, 900);
        k.fill(0, &a, None);
        k.fill(1, &b, Some(0x0064));
        {
            let mut run = ring.next_run().expect("two frames written");
            assert_eq!(run.len(), 2);
            let got: Vec<_> = run.frames().map(|f| (f.data.to_vec(), f.wire_len, f.ts_ns, f.vlan)).collect();
            assert_eq!(got[0], (a.clone(), 60, 3_000_000_009, None));
            assert_eq!(got[1].1, 904);
            assert_eq!(&got[1].0[12..16], &[0x81, 0x00, 0x00, 0x64]);
            assert_eq!(&got[1].0[16..], &b[12..]);
            assert_eq!(run.frames().count(), 0, "walked once");
        }
        assert_eq!((k.status(0), k.status(1)), (sys::TP_STATUS_KERNEL, sys::TP_STATUS_KERNEL), "handed back");
        assert!(ring.next_run().is_none());
        // Slots 2..8 then 0 again: a run stops at the first slot the kernel still owns, and wraps.
        for (i, slot) in (2..8).chain(0..1).enumerate() {
            k.fill(slot, &eth(0x0800, i as u8, 100), None);
        }
        let mut run = ring.next_run().expect("seven frames");
        assert_eq!(run.len(), 7);
        let fills: Vec<u8> = run.frames().map(|f| f.data[20]).collect();
        assert_eq!(fills, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn malformed_offsets_never_read_outside_the_block() {
        let mut k = FakeKernel::new();
        let f = eth(0x0800, 0x22, 64);
        k.retire(0, &[(&f, None)]);
        // Claim more packets than there are and point past the block.
        k.bytes()[12..16].copy_from_slice(&5u32.to_ne_bytes());
        k.bytes()[16..20].copy_from_slice(&(BS as u32 - 8).to_ne_bytes());
        let mut ring = k.ring();
        let mut blk = ring.next_block().unwrap();
        assert_eq!(blk.frames().count(), 0);
    }
}
