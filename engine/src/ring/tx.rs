//! The TPACKET_V2 transmit ring (`PACKET_TX_RING`) with qdisc bypass.
//!
//! Frames are copied into slots and marked `TP_STATUS_SEND_REQUEST`; one
//! [`TxRing::flush`] per batch kicks the kernel with a zero-length `sendto`.

use std::{
    os::fd::{AsRawFd, OwnedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use memmap2::{MmapOptions, MmapRaw};

use super::RingError;
use crate::sys::{self, TX_DATA_OFFSET};

/// Minimum Ethernet frame without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;

/// How to open a TX ring.
#[derive(Debug, Clone)]
pub struct TxRingOptions<'a> {
    /// Interface to send on.
    pub iface: &'a str,
    /// Bytes per block (power of two, at least a page).
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Bytes per slot; frames up to `frame_size - 42` fit (`frame_size - 32`
    /// with `copy_max` 0).
    pub frame_size: u32,
    /// Pad frames shorter than 60 bytes with zeros.
    pub pad_runts: bool,
    /// `SO_SNDBUFFORCE` in bytes (0: leave the default).
    pub sndbuf: u32,
    /// Frames up to this many bytes are copied into the kernel's socket
    /// buffer instead of being lent to it as ring pages (0: lend every frame).
    ///
    /// The kernel attaches a TX ring frame to its socket buffer as page
    /// fragments, and must copy those into fresh pages (`skb_copy_ubufs`: a
    /// page allocated and freed per frame) wherever the buffer outlives the
    /// ring slot: a veth, a bridge, a tap, a second packet socket. A frame
    /// copied into the buffer's head skips that. It is asked for through
    /// `PACKET_VNET_HDR`: each frame in its slot is then preceded by a
    /// `virtio_net_hdr` (after the slot header) whose `hdr_len` covers the
    /// whole frame.
    pub copy_max: usize,
    /// Skip a frame the device refuses on every kick (see
    /// [`TxRing::flush`]); otherwise it is tried until the ring closes (a
    /// generator, which tells frames left in its ring when it ends).
    pub skip_refused: bool,
}

/// `struct virtio_net_hdr`: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
const VNET_HDR_LEN: usize = 10;

/// Bytes of a slot before its frame when frames are copied (`copy_max` > 0):
/// the slot header and the vnet header. A slot of `frame_size` bytes holds a
/// frame of up to `frame_size - SLOT_HEADROOM`.
pub const SLOT_HEADROOM: usize = TX_DATA_OFFSET + VNET_HDR_LEN;

/// A TX ring on a packet socket bound to one interface.
pub struct TxRing {
    base: NonNull<u8>,
    _map: MmapRaw,
    fd: OwnedFd,
    frames_per_block: usize,
    block_size: usize,
    frame_size: usize,
    /// Frames up to this long go into the socket buffer's head (0: no vnet
    /// header, every frame lent as pages).
    copy_max: usize,
    slots: usize,
    next: usize,
    pending: usize,
    pad_runts: bool,
    /// Longest untagged frame the interface takes: MTU + Ethernet header.
    max_len: usize,
    /// A veth's: the longest frame its peer takes (the peer's MTU + 18),
    /// as last read ([`TxRing::refresh`]).
    peer_max: Option<usize>,
    /// The interface has a carrier (`IFF_RUNNING`), as last read.
    carrier: bool,
    pushed: u64,
    busy: u64,
    oversize: u64,
    unsent: u64,
    iface: String,
    ifindex: u32,
    /// [`TxRingOptions::skip_refused`].
    skip_refused: bool,
    /// The frame at the kernel's head (as a count of frames queued before
    /// it) while kicks fail, and since when.
    stuck: Option<(u64, Instant)>,
    /// Frames this long or longer are refused before the ring: the device
    /// refused one of that length (see [`TxRing::flush`]), until then.
    refuse_from: Option<(usize, Instant)>,
    /// The last warning about a refused frame, and frames skipped since.
    skip_told: Option<Instant>,
    skipped_untold: u64,
    /// A kick from [`TxRing::push_or_kick`] left the ring full (the device
    /// busy): no more kicks for frames that find it full until the batch's
    /// own ([`TxRing::flush`]), so a busy device costs a syscall a batch,
    /// not a frame.
    busy_until_flush: bool,
}

/// A frame at the head of the ring that the device has refused for this
/// long is skipped (see [`TxRing::flush`]).
const STUCK_FOR: Duration = Duration::from_millis(200);
/// How long frames as long as one the device refused are refused before
/// the ring, after which one is tried again.
const REFUSE_FOR: Duration = Duration::from_secs(1);

// SAFETY: the ring exclusively owns its socket and mapping; `base` points into
// that mapping and moves with it. Nothing is shared with another thread.
unsafe impl Send for TxRing {}

/// What is wrong with a TX ring of `block_count` blocks of `block_size`
/// bytes in slots of `frame_size`, naming the `[ring]` field; `None` if
/// the kernel takes it.
#[must_use]
pub fn geometry_error(block_size: u32, frame_size: u32, block_count: u32) -> Option<String> {
    let page = u32::try_from(crate::sys::page_size()).unwrap_or(4096);
    if !block_size.is_power_of_two() || block_size < page || block_size > 1 << 30 {
        return Some(format!(
            "tx_block_size {block_size} must be a power of two between the page size ({page}) and 1 GiB"
        ));
    }
    if frame_size < 128 || frame_size % 16 != 0 || frame_size > block_size {
        return Some(format!(
            "tx_frame_size {frame_size} must be a multiple of 16 between 128 and tx_block_size ({block_size})"
        ));
    }
    (block_count == 0).then(|| "tx_block_count must be at least 1".to_owned())
}

impl TxRing {
    /// Open a TX ring: socket → version → loss → qdisc bypass → vnet header
    /// (with `copy_max`) → TX_RING → mmap → bind.
    ///
    /// The geometry is checked first ([`geometry_error`]).
    ///
    /// # Errors
    /// [`RingError`] naming the interface and the failed step.
    pub fn open(opts: &TxRingOptions<'_>) -> Result<Self, RingError> {
        let iface = opts.iface;
        let sys_err = |source| RingError::Sys { iface: iface.to_owned(), source };
        if let Some(e) = geometry_error(opts.block_size, opts.frame_size, opts.block_count) {
            return Err(RingError::Geometry(format!("TX ring: {e}")));
        }
        let ifindex = sys::if_index(iface).ok_or_else(|| RingError::NoSuchInterface(iface.to_owned()))?;
        // (A TUN device would take the frames' MAC headers as packet bytes.)
        super::check_ethernet(iface)?;
        let fd = sys::packet_socket().map_err(sys_err)?;
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V2, "setsockopt(PACKET_VERSION)")
            .map_err(sys_err)?;
        let mtu = sys::if_mtu(&fd, ifindex as i32).map_err(sys_err)? as usize;
        let one: libc::c_int = 1;
        // Malformed frames are skipped (status back to AVAILABLE) instead of stalling the ring.
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_LOSS, &one, "setsockopt(PACKET_LOSS)").map_err(sys_err)?;
        if let Err(e) =
            sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one, "setsockopt(PACKET_QDISC_BYPASS)")
        {
            tracing::warn!(iface, error = %e.io_error, "qdisc bypass unavailable; sending through the qdisc");
        }
        if opts.sndbuf > 0 {
            let v = libc::c_int::try_from(opts.sndbuf).unwrap_or(libc::c_int::MAX);
            if let Err(e) =
                sys::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v, "setsockopt(SO_SNDBUFFORCE)")
            {
                tracing::debug!(iface, error = %e.io_error, "SO_SNDBUFFORCE refused; keeping the default send buffer");
            }
        }
        // Before the ring: the kernel refuses it once a ring exists.
        let vnet = opts.copy_max > 0;
        if vnet {
            sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VNET_HDR, &one, "setsockopt(PACKET_VNET_HDR)")
                .map_err(sys_err)?;
        }
        let frames_per_block = (opts.block_size / opts.frame_size) as usize;
        let slots = frames_per_block * opts.block_count as usize;
        let req = libc::tpacket_req {
            tp_block_size: opts.block_size,
            tp_block_nr: opts.block_count,
            tp_frame_size: opts.frame_size,
            tp_frame_nr: slots as u32,
        };
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_TX_RING, &req, "setsockopt(PACKET_TX_RING)")
            .map_err(sys_err)?;
        let bytes = opts.block_size as usize * opts.block_count as usize;
        let map = MmapOptions::new()
            .len(bytes)
            .populate()
            .map_raw(fd.as_raw_fd())
            .map_err(|source| RingError::Mmap { iface: iface.to_owned(), bytes, source })?;
        // Protocol 0: this socket only sends; it never receives a frame.
        sys::bind(&fd, ifindex, 0).map_err(sys_err)?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null on success");
        Ok(Self {
            base,
            _map: map,
            fd,
            frames_per_block,
            block_size: opts.block_size as usize,
            frame_size: opts.frame_size as usize,
            // `hdr_len` is 16 bits: no longer frame can be copied.
            copy_max: opts.copy_max.min(usize::from(u16::MAX)),
            slots,
            next: 0,
            pending: 0,
            pad_runts: opts.pad_runts,
            max_len: mtu + 14,
            peer_max: None,
            carrier: true,
            pushed: 0,
            busy: 0,
            oversize: 0,
            unsent: 0,
            iface: iface.to_owned(),
            ifindex,
            skip_refused: opts.skip_refused,
            stuck: None,
            refuse_from: None,
            skip_told: None,
            skipped_untold: 0,
            busy_until_flush: false,
        })
    }

    /// Where a frame starts in its slot: after the vnet header, if frames
    /// are copied.
    #[inline]
    fn data_offset(&self) -> usize {
        if self.copy_max > 0 {
            SLOT_HEADROOM
        } else {
            TX_DATA_OFFSET
        }
    }

    /// The interface it sends on.
    #[must_use]
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The state of the ring's interface (a sending socket has no pending
    /// error to tell a change: this asks the kernel each time).
    ///
    /// # Errors
    /// The getsockname or ioctl failure.
    pub fn link(&self) -> Result<super::Link, sys::SyscallError> {
        super::Link::of_socket(&self.fd, self.ifindex)
    }

    /// Read the interface's MTU and carrier again, and with `links` (a
    /// veth) its peer's MTU: they may change while frames are forwarded.
    /// The kernel drops a frame over either MTU once it is in the ring
    /// (over a veth peer's, each time it is kicked, holding up the frames
    /// behind it), and every frame while there is no carrier. Frames over
    /// the MTUs read here are refused before the ring instead
    /// ([`TxRing::takes`]), and none is pushed without a carrier
    /// ([`TxRing::has_carrier`]).
    ///
    /// # Errors
    /// The ioctl failure (`ENODEV` once the interface is gone), or the
    /// peer's failed read (the MTU and carrier are read all the same).
    pub fn refresh(&mut self, links: Option<&mut crate::ifstats::LinkStats>) -> Result<(), String> {
        let err = |e: sys::SyscallError| crate::consumer::error_chain(&e);
        let state = sys::if_mtu(&self.fd, self.ifindex as i32)
            .and_then(|mtu| Ok((mtu, sys::if_flags_of(&self.fd, self.ifindex as i32)?)));
        let (mtu, flags) = match state {
            Ok(s) => s,
            // Gone (or its state unknown): nothing sent now would go out, as without a carrier.
            Err(e) => {
                self.set_carrier(false);
                return Err(err(e));
            }
        };
        self.max_len = mtu as usize + 14;
        self.set_carrier(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0);
        let mut failed = None;
        if let Some(links) = links {
            match links.veth_peer(self.ifindex, &self.iface) {
                Ok(peer) => self.peer_max = peer.filter(|p| p.up).map(|p| p.mtu as usize + 18),
                Err(e) => {
                    self.peer_max = None;
                    failed = Some(crate::consumer::error_chain(&e));
                }
            }
        }
        // Frames already waiting that the MTUs now refuse would each hold
        // the ring's head for STUCK_FOR: passed over at once.
        let limit = self.peer_max.unwrap_or(usize::MAX).min(self.max_len + 4);
        let over = self.pass_over_waiting(|len| len > limit);
        if over > 0 {
            tracing::warn!(
                iface = %self.iface,
                unsent = over,
                "frames waiting in the TX ring that the interface's MTU (or its veth peer's) no longer lets through will \
                 not be sent (tx_unsent); longer frames than {limit} bytes are refused before the ring (unfit)"
            );
        }
        // Frames skipped since the last warning are told within 10 s, not at the next refusal only.
        if self.skipped_untold > 0 && self.skip_told.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            self.tell_skipped(None);
        }
        failed.map_or(Ok(()), Err)
    }

    /// Whether the interface now has a carrier: on losing it, the frames
    /// waiting in the ring are passed over, counted unsent.
    fn set_carrier(&mut self, carrier: bool) {
        if carrier != self.carrier {
            // Lost or back: what was learned of refused frames was the link's doing.
            (self.refuse_from, self.stuck) = (None, None);
            if !carrier {
                // The frames waiting in the ring would go out stale when it
                // is back (or hold its head): passed over, counted unsent.
                let dropped = self.pass_over_waiting(|_| true);
                if dropped > 0 {
                    tracing::warn!(
                        iface = %self.iface,
                        unsent = dropped,
                        "frames waiting in the TX ring when the interface lost its carrier (or went down or away) will not be sent (tx_unsent)"
                    );
                }
            }
        }
        self.carrier = carrier;
    }

    /// Pass over every frame waiting in the ring whose length `drop` says
    /// (made one the kernel skips, counted unsent); how many.
    fn pass_over_waiting(&mut self, drop: impl Fn(usize) -> bool) -> u64 {
        let before = self.unsent;
        for back in (1..=self.waiting()).rev() {
            let len = self.waiting_len(back);
            if len > 0 && drop(len) {
                self.pass_over(back);
            }
        }
        self.unsent - before
    }

    /// Whether the interface had a carrier when last read: without one, the
    /// kernel drops every frame sent.
    #[must_use]
    pub fn has_carrier(&self) -> bool {
        self.carrier
    }

    /// Largest untagged frame the interface takes at its MTU (as last read):
    /// the MTU plus the Ethernet header.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Largest frame a slot holds.
    #[must_use]
    pub fn max_frame(&self) -> usize {
        self.frame_size - self.data_offset()
    }

    /// Whether the interface (at its MTU now) and a slot take `frame` (an
    /// empty one is never sent).
    #[must_use]
    pub fn takes(&self, frame: &[u8]) -> bool {
        let len = if self.pad_runts { frame.len().max(MIN_FRAME) } else { frame.len() };
        !frame.is_empty() && self.fits(frame, len)
    }

    /// Largest frame the interface sends: MTU + 14, plus 4 for a tagged frame
    /// (the kernel's own limit in `tpacket_snd`).
    fn fits(&self, frame: &[u8], len: usize) -> bool {
        let tagged = frame.len() >= 14 && matches!(u16::from_be_bytes([frame[12], frame[13]]), 0x8100 | 0x88a8);
        len <= self.max_frame()
            && len <= self.max_len + if tagged { 4 } else { 0 }
            && self.peer_max.is_none_or(|max| len <= max)
            && self.refuse_from.is_none_or(|(from, _)| len < from)
    }

    /// Number of slots.
    #[must_use]
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The socket's fd (for polling POLLOUT).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn slot(&self, i: usize) -> *mut u8 {
        let off = (i / self.frames_per_block) * self.block_size + (i % self.frames_per_block) * self.frame_size;
        // SAFETY: `i < slots`, so `off + frame_size <= block_size * block_count`.
        unsafe { self.base.as_ptr().add(off) }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the status word is the first, 4-byte aligned, field of the
        // slot header; the kernel writes it concurrently, hence atomic access.
        unsafe { &*self.slot(i).cast::<AtomicU32>() }
    }

    /// Copy `frame` into the next free slot, padding runts; `fill` may then
    /// patch the copied bytes in place (e.g. a sequence number) before the
    /// slot is handed to the kernel. Returns `false` when the ring is full or
    /// the frame is longer than the interface sends (counted in [`TxRing::oversize`]).
    #[inline]
    pub fn push_with(&mut self, frame: &[u8], fill: impl FnOnce(&mut [u8])) -> bool {
        let len = if self.pad_runts { frame.len().max(MIN_FRAME) } else { frame.len() };
        if frame.is_empty() || !self.fits(frame, len) {
            self.oversize += 1;
            return false;
        }
        // With PACKET_LOSS a frame the kernel rejects goes back to AVAILABLE.
        let status = self.status(self.next).load(Ordering::Acquire);
        if status != sys::TP_STATUS_AVAILABLE && status != sys::TP_STATUS_WRONG_FORMAT {
            return false;
        }
        let slot = self.slot(self.next);
        // SAFETY: the slot is AVAILABLE (or WRONG_FORMAT: the kernel is done
        // with it), so we own its bytes; `data_offset + len <= frame_size` (`fits`).
        let data = unsafe { std::slice::from_raw_parts_mut(slot.add(self.data_offset()), len) };
        data[..frame.len()].copy_from_slice(frame);
        data[frame.len()..].fill(0);
        fill(data);
        let mut tp_len = len;
        if self.copy_max > 0 {
            // No offloads; `hdr_len` bytes go into the socket buffer's head.
            let hdr_len = if len <= self.copy_max { len as u16 } else { 0 };
            let mut vnet = [0u8; VNET_HDR_LEN];
            vnet[2..4].copy_from_slice(&hdr_len.to_ne_bytes());
            // SAFETY: the header sits between the slot header and the frame,
            // in the slot we own (`data_offset()` is `SLOT_HEADROOM`).
            unsafe { std::ptr::copy_nonoverlapping(vnet.as_ptr(), slot.add(TX_DATA_OFFSET), VNET_HDR_LEN) };
            tp_len += VNET_HDR_LEN;
        }
        // SAFETY: `tp_len` is the second u32 of the slot header, which we own.
        unsafe { slot.add(4).cast::<u32>().write(tp_len as u32) };
        // Release: the frame bytes and tp_len are visible before the kernel sees SEND_REQUEST.
        self.status(self.next).store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next = (self.next + 1) % self.slots;
        self.pending += 1;
        self.pushed += 1;
        true
    }

    /// [`TxRing::push_with`] without patching.
    #[inline]
    pub fn push(&mut self, frame: &[u8]) -> bool {
        self.push_with(frame, |_| {})
    }

    /// Like [`TxRing::push`], but when the ring is full of frames not yet
    /// kicked, kick it once and try again: a batch of frames larger than
    /// the ring is not dropped for want of the kick that comes at its end.
    /// Never waits.
    #[inline]
    pub fn push_or_kick(&mut self, frame: &[u8]) -> bool {
        if self.push(frame) {
            return true;
        }
        if self.pending == 0 || self.busy_until_flush || !self.takes(frame) {
            return false;
        }
        // A send error is the next flush's to report; here the frame just finds no slot.
        let _ = self.kick();
        self.busy_until_flush = self.pending > 0;
        self.push(frame)
    }

    /// Like [`TxRing::push`], but when the ring is full, kick it and wait for
    /// a slot (replaying a file: no reason to drop). Gives up after
    /// `patience`, or at once for a frame the interface cannot send.
    pub fn push_waiting(&mut self, frame: &[u8], patience: Duration, stop: &std::sync::atomic::AtomicBool) -> bool {
        if self.push(frame) {
            return true;
        }
        let len = if self.pad_runts { frame.len().max(MIN_FRAME) } else { frame.len() };
        if frame.is_empty() || !self.fits(frame, len) {
            return false;
        }
        let mut wait = crate::consumer::LosslessWait::new(patience, stop);
        loop {
            let _ = self.flush();
            wait.pause();
            if self.push(frame) {
                return true;
            }
            if wait.over() {
                return false;
            }
        }
    }

    /// Frames pushed since the last successful kick.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Kick the kernel to send what was pushed (one syscall per batch).
    ///
    /// ENOBUFS (the device is busy: a veth peer applying backpressure, a full
    /// NIC queue) and EAGAIN (socket buffer full) leave the frames queued in
    /// the ring for the next kick; they are counted in [`TxRing::busy`].
    /// Measured on a 6.18 kernel with veth: every frame whose kick returned
    /// ENOBUFS arrived later, so ENOBUFS is not a drop. Frames a device does
    /// drop show in its own `tx_dropped` counter.
    ///
    /// But the kernel answers ENOBUFS also for a frame the device refuses
    /// each time (a veth whose peer has a smaller MTU, or is down), and
    /// leaves it at the head of the ring to be tried again: every frame
    /// behind it waits for ever. With `skip_refused`, a head frame refused for [`STUCK_FOR`] is
    /// therefore skipped: its length is made invalid, which the kernel
    /// (with `PACKET_LOSS`) passes over on the next kick. It is counted in
    /// [`TxRing::unsent`], and frames as long are refused before the ring
    /// for [`REFUSE_FOR`] ([`TxRing::oversize`]), so that one such frame
    /// does not hold the others up each time.
    ///
    /// # Errors
    /// Any other send error.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.busy_until_flush = false;
        self.kick()
    }

    /// [`TxRing::flush`]'s kick.
    fn kick(&mut self) -> std::io::Result<()> {
        if self.refuse_from.is_some_and(|(_, at)| at.elapsed() >= REFUSE_FOR) {
            self.refuse_from = None;
        }
        if self.pending == 0 {
            return Ok(());
        }
        match sys::kick_tx(self.fd.as_raw_fd()) {
            Ok(()) => {
                self.pending = 0;
                self.stuck = None;
                Ok(())
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {
                self.busy += 1;
                if self.skip_refused {
                    self.check_stuck();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Frames waiting for the kernel to take them: the run of
    /// SEND_REQUEST slots that ends at the last one pushed.
    fn waiting(&self) -> usize {
        (0..self.slots)
            .take_while(|n| {
                let i = (self.next + self.slots - 1 - n) % self.slots;
                self.status(i).load(Ordering::Acquire) == sys::TP_STATUS_SEND_REQUEST
            })
            .count()
    }

    /// A kick failed: skip the head frame if it has not moved for [`STUCK_FOR`].
    fn check_stuck(&mut self) {
        // No carrier: every frame is refused, and those waiting are passed over once that is read.
        if !self.carrier {
            return;
        }
        let waiting = self.waiting();
        if waiting == 0 {
            self.stuck = None;
            return;
        }
        // Counts carried from a replaced ring came before this one's first
        // frame, so this is the head's place for as long as the ring lives.
        let head = self.pushed - waiting as u64;
        // A head as long as a frame refused just before is refused too: at once.
        let known = self.refuse_from.is_some_and(|(from, _)| self.waiting_len(waiting) >= from);
        match self.stuck {
            Some((h, since)) if h == head && (known || since.elapsed() >= STUCK_FOR) => {
                self.skip_head(waiting);
                self.stuck = None;
                if sys::kick_tx(self.fd.as_raw_fd()).is_ok() {
                    self.pending = 0;
                }
            }
            Some((h, _)) if h == head => {}
            _ => self.stuck = Some((head, Instant::now())),
        }
    }

    /// The `tp_len` field of the slot `back` slots before `next`.
    fn tp_len_at(&self, back: usize) -> *mut u32 {
        self.slot((self.next + self.slots - back) % self.slots).wrapping_add(4).cast::<u32>()
    }

    /// The frame length in the waiting slot `back` slots before `next`.
    fn waiting_len(&self, back: usize) -> usize {
        // SAFETY: the slot header's `tp_len`, in the mapping, of a SEND_REQUEST slot: the kernel
        // reads it only in a kick, which only this ring's owner makes, and never writes it.
        let tp_len = unsafe { self.tp_len_at(back).read() } as usize;
        if self.copy_max > 0 {
            tp_len.saturating_sub(VNET_HDR_LEN)
        } else {
            tp_len
        }
    }

    /// Make the waiting frame `back` slots before `next` one the kernel
    /// passes over (its length invalid, as `PACKET_LOSS` skips), and count it unsent.
    fn pass_over(&mut self, back: usize) {
        // SAFETY: as in `waiting_len`; the next kick (a syscall) orders this write before its read.
        unsafe { self.tp_len_at(back).write(0) };
        self.unsent += 1;
    }

    /// Skip the head frame (`waiting` slots before `next`), the device
    /// having refused it; learn its length, and skip at once every frame
    /// behind it at least as long (each would hold the rest up as long
    /// again).
    fn skip_head(&mut self, waiting: usize) {
        let len = self.waiting_len(waiting);
        self.pass_over(waiting);
        self.skipped_untold += 1;
        // Every frame refused (a peer down): learning would refuse all.
        if len > MIN_FRAME {
            let from = self.refuse_from.map_or(len, |(f, _)| f.min(len));
            self.refuse_from = Some((from, Instant::now()));
            self.skipped_untold += self.pass_over_waiting(|l| l >= from);
        }
        if self.skip_told.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            self.tell_skipped(Some(len));
        }
    }

    /// Warn of the frames skipped since the last warning (`len`: the one
    /// just refused, if that is why).
    fn tell_skipped(&mut self, len: Option<usize>) {
        tracing::warn!(
            iface = %self.iface,
            frame_len = len,
            skipped = self.skipped_untold,
            "the device refused frames for 200 ms (its peer's MTU is smaller, or its peer is down): \
             skipped (tx_unsent), and frames as long are refused before the ring (queue_dropped) for 1 s"
        );
        self.skip_told = Some(Instant::now());
        self.skipped_untold = 0;
    }

    /// Slots the kernel has not finished with yet.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        (0..self.slots)
            .filter(|&i| {
                let s = self.status(i).load(Ordering::Acquire);
                s != sys::TP_STATUS_AVAILABLE && s != sys::TP_STATUS_WRONG_FORMAT
            })
            .count()
    }

    /// Frames handed to the kernel so far.
    #[must_use]
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The ring is done with (closing, or replaced): the frames still
    /// waiting for the kernel to take them (not those it is sending, which
    /// it finishes after the socket closes) never will be sent. They are
    /// added to [`TxRing::unsent`]; returns their number.
    pub fn forget_unsent(&mut self) -> u64 {
        let waiting = (0..self.slots)
            .filter(|&i| self.status(i).load(Ordering::Acquire) == sys::TP_STATUS_SEND_REQUEST)
            .count() as u64;
        self.unsent += waiting;
        waiting
    }

    /// Of the frames pushed, those never sent (see [`TxRing::forget_unsent`]).
    #[must_use]
    pub fn unsent(&self) -> u64 {
        self.unsent
    }

    /// Take over the counts of the ring this one replaces (its interface
    /// went away and came back), so a port's counters carry on.
    pub fn carry_counts(&mut self, old: &TxRing) {
        self.pushed += old.pushed;
        self.busy += old.busy;
        self.unsent += old.unsent;
    }

    /// Kicks the kernel answered with "busy" (ENOBUFS / EAGAIN): frames waited in the ring.
    #[must_use]
    pub fn busy(&self) -> u64 {
        self.busy
    }

    /// Frames refused before the ring because they exceed the interface's MTU (or a slot).
    #[must_use]
    pub fn oversize(&self) -> u64 {
        self.oversize
    }
}
