//! Frames an interface lost on receive before any socket saw them, read
//! from its `rtnl_link_stats64` over rtnetlink, and counted per port from
//! when the port opened.
//!
//! A packet socket's own counts (`PACKET_STATISTICS`) only cover frames
//! that reached it. A receive path that falls behind loses frames earlier:
//! the device's ring overflows (`rx_missed_errors`, `rx_fifo_errors`: what
//! tcpdump reports as "dropped by interface") or the stack drops them
//! (`rx_dropped`: a full backlog, no buffer). These are the interface's
//! counts, for all its traffic, not only the frames a port would have
//! taken. They are asked by name in the engine's own network namespace,
//! once per snapshot, never on a worker.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Why an interface's counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IfStatsError {
    /// The rtnetlink socket could not be set up.
    #[error("rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The request or its answer failed.
    #[error("rtnetlink link request for `{iface}`: {source}")]
    Request {
        /// The interface asked for.
        iface: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The answer could not be read.
    #[error("rtnetlink answer for `{iface}`: {msg}")]
    Answer {
        /// The interface asked for.
        iface: String,
        /// What was wrong with it.
        msg: String,
    },
}

/// Receive drops of an interface (in a port's counters: `if_dropped`, `if_missed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IfDrops {
    /// `rx_dropped`: frames the kernel's stack dropped on receive.
    #[serde(rename = "if_dropped")]
    pub dropped: u64,
    /// `rx_missed_errors + rx_fifo_errors`: frames the device could not take
    /// (tcpdump's "dropped by interface").
    #[serde(rename = "if_missed")]
    pub missed: u64,
}

impl IfDrops {
    fn plus(self, o: Self) -> Self {
        Self { dropped: self.dropped + o.dropped, missed: self.missed + o.missed }
    }

    /// Every count minus `base`'s, at least 0.
    #[must_use]
    pub fn saturating_sub(self, base: Self) -> Self {
        Self { dropped: self.dropped.saturating_sub(base.dropped), missed: self.missed.saturating_sub(base.missed) }
    }

    /// Both counts together.
    #[must_use]
    pub fn sum(self) -> u64 {
        self.dropped + self.missed
    }

    /// `self - base`, or `None` if a count went down (the device's counters were reset).
    fn since(self, base: Self) -> Option<Self> {
        Some(Self { dropped: self.dropped.checked_sub(base.dropped)?, missed: self.missed.checked_sub(base.missed)? })
    }
}

/// An rtnetlink socket that reads interfaces' receive drops.
pub struct LinkStats {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LinkStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStats").field("seq", &self.seq).finish_non_exhaustive()
    }
}

/// Room for one link message (without VF details it is a few KiB).
const ANSWER_BYTES: usize = 64 << 10;

impl LinkStats {
    /// Open the socket.
    ///
    /// # Errors
    /// If the kernel refuses the rtnetlink socket.
    pub fn new() -> Result<Self, IfStatsError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(IfStatsError::Socket)?;
        socket.bind_auto().map_err(IfStatsError::Socket)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(IfStatsError::Socket)?;
        // The kernel answers a link request while sending it, so the answer
        // is queued when `send` returns: never block waiting for one.
        socket.set_non_blocking(true).map_err(IfStatsError::Socket)?;
        Ok(Self { socket, seq: 0, buf: vec![0; ANSWER_BYTES] })
    }

    /// The index and receive drops of the interface named `iface` now;
    /// `None` if there is none of that name.
    ///
    /// # Errors
    /// If the request fails or its answer cannot be read.
    pub fn drops(&mut self, iface: &str) -> Result<Option<(u32, IfDrops)>, IfStatsError> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(iface.to_owned()));
        let Some(m) = self.get_link(link, iface)? else { return Ok(None) };
        let stats = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Stats64(s) => Some(*s),
            _ => None,
        });
        let s = stats.ok_or_else(|| IfStatsError::Answer {
            iface: iface.to_owned(),
            msg: "no IFLA_STATS64 in the link message".into(),
        })?;
        Ok(Some((m.header.index, IfDrops { dropped: s.rx_dropped, missed: s.rx_missed_errors + s.rx_fifo_errors })))
    }

    /// For a veth (`ifindex` in this network namespace), its peer's MTU and
    /// whether the peer is up, wherever the peer is (another namespace
    /// included): the kernel drops a frame the peer would not take, and
    /// every frame once the peer is down. `None` for any other kind of
    /// interface, or one that is gone.
    ///
    /// # Errors
    /// If a request fails or its answer cannot be read.
    pub fn veth_peer(&mut self, ifindex: u32, iface: &str) -> Result<Option<VethPeer>, IfStatsError> {
        use netlink_packet_route::link::{InfoKind, LinkFlags, LinkInfo};
        let mut link = LinkMessage::default();
        link.header.index = ifindex;
        let Some(m) = self.get_link(link, iface)? else { return Ok(None) };
        let veth = m.attributes.iter().any(|a| {
            matches!(a, LinkAttribute::LinkInfo(infos) if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))))
        });
        let peer = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(i) => Some(*i),
            _ => None,
        });
        let (true, Some(peer)) = (veth, peer) else { return Ok(None) };
        let nsid = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkNetNsId(n) => Some(*n),
            _ => None,
        });
        let mut ask = LinkMessage::default();
        ask.header.index = peer;
        if let Some(n) = nsid {
            ask.attributes.push(LinkAttribute::IfNetnsId(n));
        }
        let Some(p) = self.get_link(ask, iface)? else { return Ok(None) };
        let mtu = p.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        });
        Ok(mtu.map(|mtu| VethPeer { mtu, up: p.header.flags.contains(LinkFlags::Up) }))
    }

    /// Ask for one link (by the name or index in `link`); `None` if there
    /// is no such link.
    fn get_link(&mut self, link: LinkMessage, iface: &str) -> Result<Option<LinkMessage>, IfStatsError> {
        let request_err = |source| IfStatsError::Request { iface: iface.to_owned(), source };
        let answer_err = |msg: String| IfStatsError::Answer { iface: iface.to_owned(), msg };
        let mut req =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(RouteNetlinkMessage::GetLink(link)));
        self.seq = self.seq.wrapping_add(1);
        req.header.flags = NLM_F_REQUEST;
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        self.socket.send(&out, 0).map_err(request_err)?;
        // Answers to earlier requests that were given up on are skipped by
        // their sequence number.
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0).map_err(request_err)?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[at..n])
                    .map_err(|e| answer_err(e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    return match msg.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => Ok(Some(m)),
                        NetlinkPayload::Error(e) if e.raw_code() == -libc::ENODEV => Ok(None),
                        NetlinkPayload::Error(e) => Err(request_err(e.to_io())),
                        other => Err(answer_err(format!("unexpected answer {other:?}"))),
                    };
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
}

/// A veth's peer, as [`LinkStats::veth_peer`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethPeer {
    /// Its MTU: the kernel forwards frames up to MTU + 18 bytes to it
    /// (an Ethernet header and a VLAN tag), and drops longer ones.
    pub mtu: u32,
    /// Whether it is up (down, it takes no frame).
    pub up: bool,
}

/// One port's interface drops since the port opened. It follows the
/// interface by name, as the port does: gone, its drops so far are kept;
/// back (a new interface of the name, or the same one moved back into the
/// namespace), it counts on from its counts then. Drops while it was away,
/// or when its counters were reset, are not known.
#[derive(Debug, Clone, Default)]
pub struct IfDropTracker {
    /// The interface's index and counts when this count started.
    base: Option<(u32, IfDrops)>,
    /// Drops counted against earlier bases.
    carried: IfDrops,
    /// Drops since `base`, at the last reading.
    latest: IfDrops,
}

impl IfDropTracker {
    /// Take a reading (`None`: no interface of the port's name now).
    pub fn update(&mut self, now: Option<(u32, IfDrops)>) {
        let Some((index, counts)) = now else {
            self.rebase(None);
            return;
        };
        match self.base {
            Some((i, base)) if i == index => match counts.since(base) {
                Some(d) => self.latest = d,
                None => self.rebase(now),
            },
            _ => self.rebase(now),
        }
    }

    fn rebase(&mut self, base: Option<(u32, IfDrops)>) {
        self.carried = self.carried.plus(self.latest);
        self.latest = IfDrops::default();
        self.base = base;
    }

    /// Drops since the first reading.
    #[must_use]
    pub fn total(&self) -> IfDrops {
        self.carried.plus(self.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(dropped: u64, missed: u64) -> IfDrops {
        IfDrops { dropped, missed }
    }

    #[test]
    fn counts_from_the_first_reading_and_across_a_new_interface_of_the_name() {
        let mut t = IfDropTracker::default();
        t.update(Some((7, d(100, 40))));
        assert_eq!(t.total(), d(0, 0), "what the interface dropped before the port opened is not the port's");
        t.update(Some((7, d(130, 45))));
        assert_eq!(t.total(), d(30, 5));
        t.update(None);
        assert_eq!(t.total(), d(30, 5), "gone: its drops so far are kept");
        t.update(None);
        assert_eq!(t.total(), d(30, 5));
        t.update(Some((9, d(2, 0))));
        assert_eq!(t.total(), d(30, 5), "a new interface counts on from its counts when it is first seen");
        t.update(Some((9, d(12, 1))));
        assert_eq!(t.total(), d(40, 6));
        t.update(Some((11, d(0, 0))));
        assert_eq!(t.total(), d(40, 6), "another index at once: the old one's drops are kept");
        t.update(Some((11, d(3, 3))));
        assert_eq!(t.total(), d(43, 9));
    }

    #[test]
    fn counters_that_go_down_start_a_new_base() {
        let mut t = IfDropTracker::default();
        t.update(Some((3, d(50, 50))));
        t.update(Some((3, d(60, 55))));
        t.update(Some((3, d(1, 0))));
        assert_eq!(t.total(), d(10, 5), "a reset device keeps what was counted before");
        t.update(Some((3, d(4, 2))));
        assert_eq!(t.total(), d(13, 7));
    }

    #[test]
    fn reads_the_loopback_interface_and_knows_a_missing_one() {
        let mut s = LinkStats::new().expect("rtnetlink socket");
        let (index, _) = s.drops("lo").expect("lo's counters").expect("lo exists");
        assert_eq!(index, 1, "lo is interface 1 in every namespace");
        assert_eq!(s.drops("rw-no-such-if").expect("an answer"), None);
        // The socket keeps working after an error answer.
        assert!(s.drops("lo").expect("lo again").is_some());
    }
}
