//! The syscall seam: kernel ABI structs for AF_PACKET rings and the few
//! socket calls the engine makes. Everything that talks to the kernel about
//! packet sockets goes through here, so the rest of the engine is plain Rust.
//!
//! Struct layouts follow `include/uapi/linux/if_packet.h`; `const` asserts pin
//! their sizes and the offsets the ring code relies on.

use std::{
    ffi::CString,
    io,
    mem::{size_of, MaybeUninit},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// A failed system call, with its name.
#[derive(Debug, thiserror::Error)]
#[error("`{call}` failed")]
pub struct SyscallError {
    /// The call (and option) that failed, e.g. `setsockopt(PACKET_RX_RING)`.
    pub call: &'static str,
    /// The OS error.
    #[source]
    pub io_error: io::Error,
}

pub(crate) type SysResult<T> = Result<T, SyscallError>;

fn check(call: &'static str, rc: libc::c_int) -> SysResult<libc::c_int> {
    if rc < 0 {
        Err(SyscallError { call, io_error: io::Error::last_os_error() })
    } else {
        Ok(rc)
    }
}

pub(crate) const SOL_PACKET: libc::c_int = 263;
pub(crate) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub(crate) const PACKET_RX_RING: libc::c_int = 5;
pub(crate) const PACKET_STATISTICS: libc::c_int = 6;
pub(crate) const PACKET_VERSION: libc::c_int = 10;
pub(crate) const PACKET_RESERVE: libc::c_int = 12;
pub(crate) const PACKET_TX_RING: libc::c_int = 13;
pub(crate) const PACKET_LOSS: libc::c_int = 14;
pub(crate) const PACKET_FANOUT: libc::c_int = 18;
/// `PACKET_FANOUT_DATA`: the eBPF program of a `PACKET_FANOUT_EBPF` group.
pub(crate) const PACKET_FANOUT_DATA: libc::c_int = 22;
pub(crate) const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub(crate) const PACKET_VNET_HDR: libc::c_int = 15;
pub(crate) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(crate) const PACKET_MR_PROMISC: u16 = 1;

pub(crate) const TPACKET_V2: libc::c_int = 1;
pub(crate) const TPACKET_V3: libc::c_int = 2;

/// Block / frame owned by the kernel.
pub(crate) const TP_STATUS_KERNEL: u32 = 0;
/// Block owned by userspace.
pub(crate) const TP_STATUS_USER: u32 = 1;
pub(crate) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(crate) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
pub(crate) const TP_STATUS_AVAILABLE: u32 = 0;
pub(crate) const TP_STATUS_SEND_REQUEST: u32 = 1;
pub(crate) const TP_STATUS_WRONG_FORMAT: u32 = 4;
pub(crate) const TP_FT_REQ_FILL_RXHASH: u32 = 1;

pub(crate) const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
/// A fanout group's own `PACKET_IGNORE_OUTGOING` (the socket option does not
/// apply to members of a group: the group's hook receives for them).
pub(crate) const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
pub(crate) const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;

pub(crate) const ETH_P_ALL: u16 = 0x0003;

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketReq3 {
    pub(crate) tp_block_size: u32,
    pub(crate) tp_block_nr: u32,
    pub(crate) tp_frame_size: u32,
    pub(crate) tp_frame_nr: u32,
    pub(crate) tp_retire_blk_tov: u32,
    pub(crate) tp_sizeof_priv: u32,
    pub(crate) tp_feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketStatsV3 {
    pub(crate) tp_packets: u32,
    pub(crate) tp_drops: u32,
    pub(crate) tp_freeze_q_cnt: u32,
}

/// Offsets inside `struct tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`).
pub(crate) mod block_desc {
    pub(crate) const BLOCK_STATUS: usize = 8;
    pub(crate) const NUM_PKTS: usize = 12;
    pub(crate) const OFFSET_TO_FIRST_PKT: usize = 16;
    pub(crate) const SEQ_NUM: usize = 24;
}

/// `struct tpacket3_hdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tpacket3Hdr {
    pub(crate) tp_next_offset: u32,
    pub(crate) tp_sec: u32,
    pub(crate) tp_nsec: u32,
    pub(crate) tp_snaplen: u32,
    pub(crate) tp_len: u32,
    pub(crate) tp_status: u32,
    pub(crate) tp_mac: u16,
    pub(crate) tp_net: u16,
    pub(crate) tp_rxhash: u32,
    pub(crate) tp_vlan_tci: u32,
    pub(crate) tp_vlan_tpid: u16,
    pub(crate) hv1_padding: u16,
    pub(crate) tp_padding: [u8; 8],
}

/// `struct tpacket2_hdr`, the TX ring's frame header.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tpacket2Hdr {
    pub(crate) tp_status: u32,
    pub(crate) tp_len: u32,
    pub(crate) tp_snaplen: u32,
    pub(crate) tp_mac: u16,
    pub(crate) tp_net: u16,
    pub(crate) tp_sec: u32,
    pub(crate) tp_nsec: u32,
    pub(crate) tp_vlan_tci: u16,
    pub(crate) tp_vlan_tpid: u16,
    pub(crate) tp_padding: [u8; 4],
}

/// Where frame data starts in a TPACKET_V2 TX slot:
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)` (net/packet/af_packet.c, `tpacket_fill_skb`).
pub(crate) const TX_DATA_OFFSET: usize = 32;

const _: () = assert!(size_of::<TpacketReq3>() == 28);
const _: () = assert!(size_of::<TpacketStatsV3>() == 12);
const _: () = assert!(size_of::<Tpacket3Hdr>() == 48);
const _: () = assert!(size_of::<Tpacket2Hdr>() == 32);
const _: () = assert!(std::mem::offset_of!(Tpacket3Hdr, tp_mac) == 24);
const _: () = assert!(std::mem::offset_of!(Tpacket3Hdr, tp_rxhash) == 28);

/// Interface index of `name` in this network namespace (`None`: no such interface).
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// A new `AF_PACKET`/`SOCK_RAW` socket bound to no protocol yet, so it
/// receives nothing until [`bind`] (filters and rings go on first).
pub(crate) fn packet_socket() -> SysResult<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is checked before use.
    let rc = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    let fd = check("socket(AF_PACKET)", rc)?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    call: &'static str,
) -> SysResult<()> {
    // SAFETY: `value` points to a live `T` of `size_of::<T>()` bytes; the
    // kernel copies it and keeps no reference.
    check(call, unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// getsockopt into a plain-old-data value.
pub(crate) fn getsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    call: &'static str,
) -> SysResult<T> {
    let mut v = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` has room for `len` bytes; the kernel writes at most `len`.
    check(call, unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, v.as_mut_ptr().cast(), &mut len) })?;
    // SAFETY: zero-initialised and then (partly) written by the kernel; every
    // `T` used here is plain old data for which any bytes are valid.
    Ok(unsafe { v.assume_init() })
}

/// Bind a packet socket to an interface and protocol (`0` = receive nothing).
pub(crate) fn bind(fd: &OwnedFd, ifindex: u32, protocol: u16) -> SysResult<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and its exact size is passed.
    check("bind(AF_PACKET)", unsafe {
        libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&sll).cast(), size_of::<libc::sockaddr_ll>() as libc::socklen_t)
    })
    .map(drop)
}

/// Put the interface in promiscuous mode for as long as `fd` is open.
pub(crate) fn add_promisc(fd: &OwnedFd, ifindex: u32) -> SysResult<()> {
    // SAFETY: packet_mreq is plain old data; all-zero is valid.
    let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = PACKET_MR_PROMISC;
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, "setsockopt(PACKET_ADD_MEMBERSHIP)")
}

/// Attach a classic BPF program as the socket's filter.
pub(crate) fn attach_filter(fd: &OwnedFd, insns: &[ringwire_filters::Insn]) -> SysResult<()> {
    const _: () = assert!(size_of::<ringwire_filters::Insn>() == size_of::<libc::sock_filter>());
    let prog = libc::sock_fprog {
        len: u16::try_from(insns.len()).unwrap_or(u16::MAX),
        // `Insn` is `repr(C)` {u16, u8, u8, u32}: the layout of `sock_filter`.
        filter: insns.as_ptr().cast_mut().cast(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog, "setsockopt(SO_ATTACH_FILTER)")
}

/// Attach an eBPF socket-filter program (by fd) as the socket's filter.
pub(crate) fn attach_bpf(fd: &OwnedFd, prog: std::os::fd::BorrowedFd<'_>) -> SysResult<()> {
    let prog: libc::c_int = std::os::fd::AsRawFd::as_raw_fd(&prog);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_BPF, &prog, "setsockopt(SO_ATTACH_BPF)")
}

/// Remove the socket's filter.
pub(crate) fn detach_filter(fd: &OwnedFd) -> SysResult<()> {
    let zero: libc::c_int = 0;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &zero, "setsockopt(SO_DETACH_FILTER)")
}

/// Read and clear the socket's pending error (`SO_ERROR`): 0 when none.
/// The kernel raises one on a packet socket when its interface goes down
/// or away (`ENETDOWN`), and polls report `POLLERR` until it is read.
pub(crate) fn take_socket_error(fd: &OwnedFd) -> SysResult<i32> {
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, "getsockopt(SO_ERROR)")
}

/// The interface index a packet socket is bound to; -1 once that interface
/// is gone (unregistered: deleted, or moved to another network namespace).
pub(crate) fn bound_ifindex(fd: &OwnedFd) -> SysResult<i32> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` has room for `len` bytes; the kernel writes at most `len`.
    check("getsockname(AF_PACKET)", unsafe {
        libc::getsockname(fd.as_raw_fd(), std::ptr::from_mut(&mut sll).cast(), &mut len)
    })?;
    Ok(sll.sll_ifindex)
}

/// The flags (`IFF_UP`, `IFF_RUNNING`, ...) of the interface with index
/// `ifindex`, asked through the socket `fd` (its network namespace answers
/// both the name and the flags).
pub(crate) fn if_flags_of(fd: &OwnedFd, ifindex: i32) -> SysResult<i32> {
    let mut req = ifreq_of_index(fd, ifindex)?;
    flags_ioctl(fd, &mut req).map_err(|io_error| SyscallError { call: "ioctl(SIOCGIFFLAGS)", io_error })
}

/// `SIOCGIFFLAGS` on `req` (naming the interface) through `fd`.
fn flags_ioctl(fd: &OwnedFd, req: &mut libc::ifreq) -> io::Result<i32> {
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru.ifru_flags of a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut *req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel filled the flags member of the union.
    Ok(i32::from(unsafe { req.ifr_ifru.ifru_flags }))
}

/// Interface `name`'s hardware type (`ARPHRD_ETHER` 1, `ARPHRD_LOOPBACK`
/// 772, `ARPHRD_NONE` 65534 for a TUN device, ...) as `SIOCGIFHWADDR`
/// gives it in this network namespace; `None` if it cannot be asked.
#[must_use]
pub fn if_hw_type(name: &str) -> Option<u16> {
    let fd = dgram_socket()?;
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_ifru.ifru_hwaddr of a valid ifreq.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    // SAFETY: the union is plain old data: its hwaddr member is the kernel's on
    // success, and zeroes (read but unused) otherwise.
    let family = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    (r == 0).then_some(family)
}

/// A socket to ask interfaces questions through (ioctls), in this network namespace.
fn dgram_socket() -> Option<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned fd is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: `fd` is a socket we just opened and own from here on.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether interface `name`'s device sees a link (`ETHTOOL_GLINK`, as
/// `ethtool` and libpcap ask it); `None` for a device that does not say.
#[must_use]
pub fn if_link_detected(name: &str) -> Option<bool> {
    ethtool_value(&dgram_socket()?, name, ETHTOOL_GLINK).map(|v| v != 0)
}

/// Whether frames of interface `name` start with an Ethernet header:
/// Ethernet, or the loopback (whose frames carry a zeroed one). Unknown
/// (cannot be asked) counts as yes: opening it says what is wrong.
///
/// # Errors
/// Its `ARPHRD_*` type when it is another.
pub fn if_is_ethernet(name: &str) -> Result<(), u16> {
    match if_hw_type(name) {
        Some(t) if t != libc::ARPHRD_ETHER && t != libc::ARPHRD_LOOPBACK => Err(t),
        _ => Ok(()),
    }
}

/// Interface `name`'s flags as `SIOCGIFFLAGS` gives them (with
/// `IFF_RUNNING`, which sysfs's `flags` lacks), `None` if it cannot be asked.
#[must_use]
pub fn if_flags(name: &str) -> Option<i32> {
    flags_ioctl(&dgram_socket()?, &mut ifreq(name)).ok()
}

/// Whether `fd` is the write end of a pipe whose reader has gone
/// (`POLLERR`): a writer learns it on its next write, which may not come
/// soon. Anything else (a file, a terminal) answers `false`.
pub(crate) fn pipe_reader_gone(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: one valid pollfd on the stack, and a timeout of 0 (no wait).
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLERR != 0
}

/// The MTU of interface `ifindex` now, asked through `fd`: the socket's
/// network namespace answers, whatever /sys shows, and by index a renamed
/// interface is still found.
pub(crate) fn if_mtu(fd: &OwnedFd, ifindex: i32) -> SysResult<u32> {
    let mut req = ifreq_of_index(fd, ifindex)?;
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_ifru.ifru_mtu of a valid ifreq.
    check("ioctl(SIOCGIFMTU)", unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: the kernel filled the mtu member of the union.
    Ok(u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).unwrap_or(0))
}

/// An `ifreq` naming interface `ifindex` (`SIOCGIFNAME`; `ENODEV` once it is gone).
fn ifreq_of_index(fd: &OwnedFd, ifindex: i32) -> SysResult<libc::ifreq> {
    let mut req = ifreq("");
    req.ifr_ifru.ifru_ifindex = ifindex;
    // SAFETY: SIOCGIFNAME reads ifr_ifru.ifru_ifindex and writes ifr_name of a valid ifreq.
    check("ioctl(SIOCGIFNAME)", unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFNAME, &mut req) })?;
    Ok(req)
}

/// An `ifreq` naming an interface (cut to `IFNAMSIZ - 1` bytes), the rest zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    req
}

/// `SIOCETHTOOL` (linux/sockios.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GFLAGS`: read the device's legacy feature flags.
const ETHTOOL_GFLAGS: u32 = 0x25;
/// `ETHTOOL_GLINK`: whether the device sees a link.
const ETHTOOL_GLINK: u32 = 0x0a;
/// `ETH_FLAG_RXHASH`: the device gives each frame a receive hash (`NETIF_F_RXHASH`).
const ETH_FLAG_RXHASH: u32 = 1 << 28;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Whether the device hashes received frames itself (ethtool's
/// `receive-hashing`), so the kernel has a frame's hash without computing it.
/// Asked through a socket, so the socket's namespace answers. A device
/// without ethtool support (or any error) counts as not hashing.
pub(crate) fn if_rx_hashing(fd: &OwnedFd, name: &str) -> bool {
    ethtool_value(fd, name, ETHTOOL_GFLAGS).is_some_and(|v| v & ETH_FLAG_RXHASH != 0)
}

/// An ethtool `cmd` that reads a `struct ethtool_value` (`ETHTOOL_GFLAGS`,
/// `ETHTOOL_GLINK`) for interface `name`, through `fd`; `None` on an error.
fn ethtool_value(fd: &OwnedFd, name: &str, cmd: u32) -> Option<u32> {
    let mut value = EthtoolValue { cmd, data: 0 };
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: SIOCETHTOOL reads ifr_name and the ethtool_value that ifru_data
    // points to (alive and exclusively borrowed for the call), and writes its
    // `data` for the get commands this is given.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    (rc == 0).then_some(value.data)
}

/// Kick a TX ring: ask the kernel to send every frame marked for sending.
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffers is the documented TX-ring kick.
    let rc = unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The directory `path` is in: its parent, or `.` for a bare file name.
#[must_use]
pub fn dir_of(path: &std::path::Path) -> &std::path::Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."))
}

/// Fail now, not after a run, if `path` cannot be written: it is opened
/// for appending (nothing in it changes), and removed again if this created it.
///
/// # Errors
/// Why it cannot be opened for writing.
pub fn check_writable(path: &std::path::Path) -> io::Result<()> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Take the exclusive advisory lock (`flock`) on `file`, without waiting:
/// held while the file is open (the kernel drops it when the process goes,
/// killed or not). An output file's, so two processes of ringwire never
/// write one file; ringwire-bench's, so two runs never measure at once.
/// (Other tools that take no lock are not kept out.)
///
/// # Errors
/// `WouldBlock` when another open file holds it; flock's other errors.
pub fn lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; it changes only the lock on its open file.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The local time's offset from UTC in seconds at `secs` after the epoch
/// (`TZ`, else `/etc/localtime`), as localtime(3) gives it; `None` if it
/// cannot say.
#[must_use]
pub fn local_offset_s(secs: i64) -> Option<i64> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: tm is plain old data; all-zero is valid, and localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let filled = unsafe { libc::localtime_r(&t, &mut tm) };
    (!filled.is_null()).then_some(tm.tm_gmtoff)
}

/// The size of a memory page in bytes (4096 if the system does not say).
#[must_use]
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a system constant; it takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The machine's online cores, whatever this process's affinity mask (a
/// process started under `taskset` still reports the whole machine).
#[must_use]
pub fn online_cores() -> usize {
    // SAFETY: sysconf reads a system constant; it takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0).max(1)
}

/// The cores of a kernel CPU list (`0-3,8,10-11`, as sysfs and
/// `/proc/PID/status` write them; empty: none), in order, or `None` when the
/// text is not one.
#[must_use]
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cores = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
        if a > b || b - a > 1 << 16 {
            return None;
        }
        cores.extend(a..=b);
    }
    cores.sort_unstable();
    cores.dedup();
    Some(cores)
}

/// The cores the scheduler keeps other tasks off: booted with `isolcpus=`
/// (`/sys/devices/system/cpu/isolated`) or in an isolated cgroup v2 cpuset
/// partition (`/sys/fs/cgroup/cpuset.cpus.isolated`). A file that is
/// missing or unreadable adds none.
#[must_use]
pub fn isolated_cores() -> Vec<usize> {
    let mut cores: Vec<usize> = ["/sys/devices/system/cpu/isolated", "/sys/fs/cgroup/cpuset.cpus.isolated"]
        .iter()
        .filter_map(|f| parse_cpu_list(&std::fs::read_to_string(f).ok()?))
        .flatten()
        .collect();
    cores.sort_unstable();
    cores.dedup();
    cores
}

/// The cores this process may run on (its affinity mask), in order.
#[must_use]
pub fn usable_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect()
}

/// A non-blocking eventfd used to wake a waiting worker.
pub(crate) fn eventfd() -> SysResult<OwnedFd> {
    // SAFETY: plain eventfd(2) call; the result is checked.
    let fd = check("eventfd", unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: freshly created fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd's counter (wakes its pollers).
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; failure (counter saturated) is harmless.
    let _ = unsafe { libc::write(fd, std::ptr::from_ref(&one).cast(), 8) };
}

/// Drain an eventfd's counter.
pub(crate) fn eventfd_clear(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when already clear is fine.
    let _ = unsafe { libc::read(fd, std::ptr::from_mut(&mut v).cast(), 8) };
}

/// Set the calling thread's nice value (on Linux a thread has its own).
///
/// # Errors
/// The OS error: `EACCES` for a value below the current one without
/// `CAP_SYS_NICE` (or a high enough `RLIMIT_NICE`).
pub fn set_thread_nice(nice: i32) -> Result<(), SyscallError> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: PRIO_PROCESS with a thread id changes that thread's nice value
    // only; no memory is passed.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid.unsigned_abs(), nice) };
    check("setpriority", rc).map(drop)
}

/// How a task (process or thread) is scheduled, as its `/proc/.../stat`
/// line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSched {
    /// `SCHED_OTHER` (0), `SCHED_FIFO` (1), ...
    pub policy: u32,
    /// Real-time priority (0 for a normal policy).
    pub rt_priority: u32,
    /// Nice value.
    pub nice: i32,
}

impl ThreadSched {
    /// A normally scheduled task at `nice`.
    #[must_use]
    pub fn normal(nice: i32) -> Self {
        Self { policy: libc::SCHED_OTHER as u32, rt_priority: 0, nice }
    }

    /// A `SCHED_FIFO` task at `rt_priority`, with `nice` kept beside it.
    #[must_use]
    pub fn fifo(rt_priority: u32, nice: i32) -> Self {
        Self { policy: libc::SCHED_FIFO as u32, rt_priority, nice }
    }

    /// Read from a `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) line:
    /// after the command name, which ends at the last `)`, the state is
    /// field 3, nice field 19, rt_priority 40 and policy 41.
    #[must_use]
    pub fn parse(stat: &str) -> Option<Self> {
        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(Self {
            nice: f.get(19 - 3)?.parse().ok()?,
            rt_priority: f.get(40 - 3)?.parse().ok()?,
            policy: f.get(41 - 3)?.parse().ok()?,
        })
    }

    /// The policy's name (`SCHED_OTHER`, `SCHED_FIFO`, ...).
    #[must_use]
    pub fn policy_name(&self) -> &'static str {
        match self.policy as libc::c_int {
            libc::SCHED_OTHER => "SCHED_OTHER",
            libc::SCHED_FIFO => "SCHED_FIFO",
            libc::SCHED_RR => "SCHED_RR",
            libc::SCHED_BATCH => "SCHED_BATCH",
            libc::SCHED_IDLE => "SCHED_IDLE",
            libc::SCHED_DEADLINE => "SCHED_DEADLINE",
            _ => "unknown",
        }
    }
}

/// Run the calling thread under `SCHED_FIFO` at `priority` (1-99), with
/// `SCHED_RESET_ON_FORK`: a process or thread it starts is normally
/// scheduled.
///
/// # Errors
/// The OS error: `EPERM` without `CAP_SYS_NICE` or a high enough
/// `RLIMIT_RTPRIO`, `EINVAL` for a priority out of range.
pub fn set_thread_fifo(priority: i32) -> Result<(), SyscallError> {
    set_scheduler(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, priority)
}

/// Run the calling thread under the normal scheduler (`SCHED_OTHER`),
/// keeping its nice value: undoes [`set_thread_fifo`].
///
/// # Errors
/// The OS error.
pub fn set_thread_normal() -> Result<(), SyscallError> {
    set_scheduler(libc::SCHED_OTHER, 0)
}

/// A thread's `SCHED_FIFO` priority as it follows what its work calls for
/// (0: normally scheduled): the scheduler is asked only on a change, and
/// once it refuses one, the thread stays as it is (one warning).
#[derive(Debug, Default)]
pub(crate) struct RtSched {
    applied: u8,
    refused: bool,
}

impl RtSched {
    /// Run the calling thread at `want`. For the warning: `who` names the
    /// thread, `setting` the config key, `then` what being normally
    /// scheduled means for it.
    pub(crate) fn update(&mut self, want: u8, who: &str, setting: &str, then: &str) {
        if self.refused || want == self.applied {
            return;
        }
        let r = if want > 0 { set_thread_fifo(want.into()) } else { set_thread_normal() };
        match r {
            Ok(()) => {
                self.applied = want;
                tracing::debug!(thread = who, priority = want, "scheduling changed (0: normal)");
            }
            Err(e) => {
                self.refused = true;
                let error = crate::consumer::error_chain(&e);
                if want > 0 {
                    tracing::warn!(
                        priority = want,
                        %error,
                        "could not run the {who} under SCHED_FIFO ({setting}; needs CAP_SYS_NICE or an \
                         RLIMIT_RTPRIO): {then}"
                    );
                } else {
                    tracing::warn!(%error, "could not return the {who} to the normal scheduler");
                }
            }
        }
    }
}

/// `sched_setscheduler` for the calling thread.
fn set_scheduler(policy: libc::c_int, priority: i32) -> SysResult<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    check("sched_setscheduler", rc).map(drop)
}

/// A thread's CPU time and the time it spent ready to run while another
/// task had its core, in nanoseconds (the kernel's `schedstat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadTimes {
    /// Time it ran (hypervisor steal and interrupts left out).
    pub cpu_ns: u64,
    /// Time it waited on a run queue (`run_delay`).
    pub run_delay_ns: u64,
}

/// Parse a `schedstat` file's text: `cpu_ns run_delay_ns timeslices`.
#[must_use]
pub fn parse_schedstat(text: &str) -> Option<ThreadTimes> {
    let mut f = text.split_whitespace().map(str::parse::<u64>);
    Some(ThreadTimes { cpu_ns: f.next()?.ok()?, run_delay_ns: f.next()?.ok()? })
}

/// The calling thread's `/proc/thread-self/schedstat`, kept open so each
/// read is one `pread`.
#[derive(Debug)]
pub struct SchedStat(std::fs::File);

impl SchedStat {
    /// Open the calling thread's file (reads then describe this thread only).
    ///
    /// # Errors
    /// procfs is not mounted, or the kernel has no schedstats.
    pub fn open_self() -> io::Result<Self> {
        std::fs::File::open("/proc/thread-self/schedstat").map(Self)
    }

    /// The thread's times now (`None`: the read failed or did not parse).
    #[must_use]
    pub fn read(&self) -> Option<ThreadTimes> {
        let mut buf = [0u8; 96];
        let n = std::os::unix::fs::FileExt::read_at(&self.0, &mut buf, 0).ok()?;
        parse_schedstat(std::str::from_utf8(&buf[..n]).ok()?)
    }
}

/// The calling thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
#[must_use]
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CLOCK_MONOTONIC in nanoseconds.
#[must_use]
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC in nanoseconds, for turning kernel
/// receive timestamps (realtime) into monotonic time. Each reading of
/// realtime is bracketed by two of monotonic, and the narrowest of a few
/// brackets taken: a thread pre-empted between two plain reads would make
/// the offset too large by the time it was away (and every time turned
/// with it too early).
#[must_use]
pub fn realtime_offset_ns() -> u64 {
    let mut best = (u64::MAX, 0u64);
    for _ in 0..4 {
        let before = monotonic_ns();
        let real = realtime_ns();
        let after = monotonic_ns();
        let width = after.saturating_sub(before);
        if width < best.0 {
            best = (width, real.wrapping_sub(before + width / 2));
        }
    }
    best.1
}

/// CLOCK_REALTIME in nanoseconds.
#[must_use]
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether this process runs with an effective uid of 0.
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Bytes of memory available for new allocations (`MemAvailable` in
/// /proc/meminfo), if it can be read.
#[must_use]
pub fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// The kernel's PM QoS CPU latency interface.
const CPU_DMA_LATENCY: &str = "/dev/cpu_dma_latency";

/// A held PM QoS CPU latency request (`/dev/cpu_dma_latency`): while it is
/// held, no core enters an idle state whose exit latency is above the
/// request, so at 0 idle cores poll instead of halting and a wake-up does not
/// wait for a core to come back. The kernel drops the request when the file
/// is closed: on drop, and also when the process dies. cyclictest and tuned's
/// latency-performance profile use the same interface.
#[derive(Debug)]
pub struct CpuLatencyRequest {
    _file: std::fs::File,
}

impl CpuLatencyRequest {
    /// Ask that no core take longer than `us` microseconds to leave an idle state.
    ///
    /// # Errors
    /// The device cannot be opened (not root, or no PM QoS in this kernel), or
    /// `us` is above what the kernel takes (`i32::MAX`).
    pub fn hold(us: u32) -> io::Result<Self> {
        use std::io::Write;
        let value = i32::try_from(us).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut file = std::fs::OpenOptions::new().write(true).open(CPU_DMA_LATENCY)?;
        // Four bytes are taken as a binary s32; anything else as a hex string.
        file.write_all(&value.to_ne_bytes())?;
        Ok(Self { _file: file })
    }

    /// The limit in force now over all requests, in microseconds
    /// (2 000 000 000 when nobody asked for one).
    ///
    /// # Errors
    /// The device cannot be opened or read.
    pub fn current() -> io::Result<i32> {
        use std::io::Read;
        let mut b = [0u8; 4];
        std::fs::File::open(CPU_DMA_LATENCY)?.read_exact(&mut b)?;
        Ok(i32::from_ne_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::{monotonic_ns, parse_cpu_list, realtime_ns, realtime_offset_ns};

    #[test]
    fn the_realtime_offset_is_realtime_less_monotonic() {
        let plain = realtime_ns().wrapping_sub(monotonic_ns()) as i64;
        let bracketed = realtime_offset_ns() as i64;
        assert!((plain - bracketed).abs() < 50_000_000, "{plain} {bracketed}");
    }

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(parse_cpu_list("1\n"), Some(vec![1]));
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("5,1-2,2"), Some(vec![1, 2, 5]));
        for bad in ["a", "1-", "-1", "3-1", "1,,x", "0-999999999"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad}");
        }
    }
}
