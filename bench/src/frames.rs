//! Frame templates and payload stamps.
//!
//! Every generated frame is a template (Ethernet, optional 802.1Q tag, IPv4
//! or IPv6, UDP or TCP) whose payload starts with a [`Stamp`]: magic, flow id,
//! sequence number and send time. Sending copies a template into a TX slot
//! and patches the stamp and the L4 checksum in place (RFC 1624 incremental
//! update), so no frame is built on the send path.

use etherparse::PacketBuilder;

pub use ringwire_engine::probe::{find_stamp as read_stamp, Stamp, MAGIC, SHORT_STAMP_LEN, STAMP_LEN};

/// IP version of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Transport of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// UDP.
    Udp,
    /// TCP (a bare ACK segment with payload).
    Tcp,
}

/// One flow's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// Flow index.
    pub index: u32,
    /// IP version.
    pub ip: Ip,
    /// Transport.
    pub l4: L4,
    /// 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The reverse direction: addresses, ports and MACs swapped.
    pub reverse: bool,
}

impl FlowSpec {
    /// The id a stamp carries: the flow index, with the top bit set for the
    /// reverse direction (each direction is its own sequence).
    #[must_use]
    pub fn stream(&self) -> u32 {
        self.index | if self.reverse { 1 << 31 } else { 0 }
    }

    /// Its headers as messages name them: `IPv4/UDP`, `IPv6/TCP`, with
    /// `802.1Q ` in front when tagged.
    #[must_use]
    pub fn kind(&self) -> String {
        format!(
            "{}{}/{}",
            if self.vlan.is_some() { "802.1Q " } else { "" },
            if self.ip == Ip::V4 { "IPv4" } else { "IPv6" },
            if self.l4 == L4::Udp { "UDP" } else { "TCP" }
        )
    }

    /// The IPv6 flow label of this direction: never 0, and different each
    /// way, as Linux's automatic flow labels are (a label is per socket).
    #[must_use]
    pub fn flow_label(&self) -> u32 {
        let h = self.stream().wrapping_mul(0x9e37_79b1);
        ((h ^ (h >> 15)) & 0x000f_ffff).max(1)
    }
}

/// How flows are mixed.
#[derive(Debug, Clone)]
pub struct MixSpec {
    /// Number of flows.
    pub flows: u32,
    /// The first flow's id: flows are `first_flow..first_flow + flows`, so
    /// generators sending into one receiver can each have their own.
    pub first_flow: u32,
    /// One flow in this many is 802.1Q-tagged (0: none).
    pub vlan_every: u32,
    /// Only this IP version (None: alternate).
    pub ip: Option<Ip>,
    /// Only this transport (None: alternate).
    pub l4: Option<L4>,
    /// Frame sizes (bytes without FCS) to cycle through.
    pub sizes: Vec<usize>,
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Send every flow both ways (`flow(2k)` forward, `flow(2k + 1)` its reverse).
    pub bidirectional: bool,
    /// Destination MACs: flow `i` goes to `dst_mac + i % dst_macs` (at least 1).
    pub dst_macs: u32,
}

impl MixSpec {
    /// Every template, flows x sizes: `templates()[template_index(k)]` is frame `k`.
    ///
    /// # Errors
    /// A size out of range, or more than [`MAX_TEMPLATE_BYTES`] of templates.
    pub fn templates(&self) -> Result<Vec<Template>, FrameError> {
        let bytes = self.template_bytes();
        if bytes > MAX_TEMPLATE_BYTES {
            return Err(FrameError::TooLarge { streams: self.streams(), sizes: self.sizes.len(), mib: bytes >> 20 });
        }
        let mut out = Vec::with_capacity(self.streams() as usize * self.sizes.len());
        for s in &self.sizes {
            for f in 0..self.streams() {
                out.push(build(self, self.flow(f), *s)?);
            }
        }
        Ok(out)
    }

    /// About the memory [`MixSpec::templates`] takes: every directed flow's
    /// frame at every size, and the bookkeeping of each.
    #[must_use]
    pub fn template_bytes(&self) -> u64 {
        let per_stream: u64 = self.sizes.iter().map(|&s| (s + std::mem::size_of::<Template>()) as u64).sum();
        per_stream * u64::from(self.streams())
    }

    /// Which template frame `k` of a single sender uses: stream `k % streams`,
    /// size `(k / streams) % sizes`.
    #[must_use]
    pub fn template_index(&self, k: u64) -> usize {
        let streams = u64::from(self.streams());
        self.stream_template((k % streams) as u32, k / streams)
    }

    /// The template of the `seq`-th frame of stream `s`: the stream's
    /// frames go through the sizes in turn.
    #[must_use]
    pub fn stream_template(&self, s: u32, seq: u64) -> usize {
        (seq as usize % self.sizes.len()) * self.streams() as usize + s as usize
    }

    /// One flow of each kind of headers in the mix (IP version, transport,
    /// tagged or not), in the order they first come.
    #[must_use]
    pub fn header_kinds(&self) -> Vec<FlowSpec> {
        let mut out: Vec<FlowSpec> = Vec::new();
        // At most 8 kinds (2 x 2 x 2): stop looking once all are seen.
        for s in 0..self.streams() {
            let f = self.flow(s);
            if !out.iter().any(|k| (k.ip, k.l4, k.vlan.is_some()) == (f.ip, f.l4, f.vlan.is_some())) {
                out.push(f);
                if out.len() == 8 {
                    break;
                }
            }
        }
        out
    }

    /// Directed flows: the flows, twice when bidirectional.
    #[must_use]
    pub fn streams(&self) -> u32 {
        self.flows * if self.bidirectional { 2 } else { 1 }
    }

    /// Directed flow `s` (a flow, or when bidirectional flow `s / 2` one way or the other).
    #[must_use]
    pub fn flow(&self, s: u32) -> FlowSpec {
        let (i, reverse) = if self.bidirectional { (s / 2, s % 2 == 1) } else { (s, false) };
        let i = self.first_flow + i;
        FlowSpec {
            index: i,
            reverse,
            ip: self.ip.unwrap_or(if i % 2 == 0 { Ip::V4 } else { Ip::V6 }),
            l4: self.l4.unwrap_or(if (i / 2) % 2 == 0 { L4::Udp } else { L4::Tcp }),
            // Flows come in groups of four (v4/v6 x udp/tcp); one group in
            // `vlan_every` is tagged, so tags cover every combination.
            vlan: (self.vlan_every > 0 && (i / 4) % self.vlan_every == self.vlan_every - 1)
                .then_some(100 + (i % 10) as u16),
        }
    }
}

/// The default size mix: 60 to 1514 bytes.
pub const MIX_SIZES: [usize; 7] = [60, 64, 128, 256, 512, 1024, 1514];

/// A prebuilt frame.
#[derive(Debug, Clone)]
pub struct Template {
    /// The frame bytes (stamp zeroed).
    pub bytes: Vec<u8>,
    /// Offset and length of the stamp, if the frame is long enough to carry
    /// one: [`STAMP_LEN`], or [`SHORT_STAMP_LEN`] when the payload has room
    /// for the short stamp only.
    pub stamp: Option<(usize, usize)>,
    /// Offset of the L4 checksum field.
    pub csum_at: usize,
    /// TCP: offset of the sequence number field.
    pub tcp_seq_at: Option<usize>,
    /// Bytes after the L4 header (what a TCP sequence number counts).
    pub payload_len: u32,
    /// UDP over IPv4 may carry checksum 0; a computed 0 must then be sent as 0xffff.
    pub udp: bool,
    /// The flow.
    pub flow: FlowSpec,
}

/// The largest frame built: a 9000-byte jumbo MTU's, with a VLAN tag.
pub const MAX_FRAME_SIZE: usize = 9018;

/// Errors building templates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A size the frame cannot have.
    #[error("frame size {size} is out of range ({min}..={MAX_FRAME_SIZE} for this flow)")]
    Size {
        /// Requested size.
        size: usize,
        /// Smallest possible.
        min: usize,
    },
    /// More templates than [`MAX_TEMPLATE_BYTES`] of memory.
    #[error(
        "{streams} directed flows x {sizes} sizes make {mib} MiB of frame templates, more than {} MiB: give fewer flows or sizes",
        MAX_TEMPLATE_BYTES >> 20
    )]
    TooLarge {
        /// Directed flows.
        streams: u32,
        /// Sizes each flow goes through.
        sizes: usize,
        /// Memory the templates would take.
        mib: u64,
    },
}

/// The most memory [`MixSpec::templates`] builds templates in (they are all
/// built before the first frame is sent).
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 30;

/// Header bytes of a flow's frames.
#[must_use]
pub fn header_len(f: &FlowSpec) -> usize {
    14 + if f.vlan.is_some() { 4 } else { 0 }
        + if f.ip == Ip::V4 { 20 } else { 40 }
        + if f.l4 == L4::Udp { 8 } else { 20 }
}

/// The length of `flow`'s frame built for `size` bytes: `size`, or its
/// headers when they are longer (see [`build`]).
#[must_use]
pub fn frame_len(f: &FlowSpec, size: usize) -> usize {
    size.max(header_len(f))
}

/// The shortest frame of `flow` that carries a stamp (the short one).
#[must_use]
pub fn min_stamped_len(f: &FlowSpec) -> usize {
    header_len(f) + SHORT_STAMP_LEN
}

/// `mac + n`, carrying over the low three bytes (the device part).
#[must_use]
pub fn mac_plus(mac: [u8; 6], n: u32) -> [u8; 6] {
    let low = (u32::from_be_bytes([0, mac[3], mac[4], mac[5]]).wrapping_add(n) & 0x00ff_ffff).to_be_bytes();
    [mac[0], mac[1], mac[2], low[1], low[2], low[3]]
}

/// Build the frame of `flow` with total length `size` (raised to the header
/// length when smaller, as for the mix's 60-byte entry on long headers).
///
/// # Errors
/// [`FrameError::Size`] above [`MAX_FRAME_SIZE`].
pub fn build(mix: &MixSpec, flow: FlowSpec, size: usize) -> Result<Template, FrameError> {
    let hlen = header_len(&flow);
    if size > MAX_FRAME_SIZE {
        return Err(FrameError::Size { size, min: hlen });
    }
    let size = frame_len(&flow, size);
    let payload = vec![0u8; size - hlen];
    let i = flow.index;
    let mut out = Vec::with_capacity(size);
    let (mut smac, mut dmac) = (mix.src_mac, mac_plus(mix.dst_mac, i % mix.dst_macs.max(1)));
    let mut sport = 10_000 + (i % 50_000) as u16;
    let mut dport = 5_000 + (i % 16) as u16;
    let mut v4s = [10, 0, (i >> 8) as u8, i as u8];
    let mut v4d = [10, 1, 0, 1];
    // Sources in one /64, the destination in the next: as 10.0.x.x against
    // 10.1.0.1, no flow's source is its destination (fd00::1 was flow 1's).
    let mut v6s = [0u8; 16];
    v6s[0] = 0xfd;
    v6s[12..16].copy_from_slice(&i.to_be_bytes());
    let mut v6d = [0u8; 16];
    v6d[0] = 0xfd;
    v6d[7] = 1;
    v6d[15] = 1;
    if flow.reverse {
        std::mem::swap(&mut smac, &mut dmac);
        std::mem::swap(&mut sport, &mut dport);
        std::mem::swap(&mut v4s, &mut v4d);
        std::mem::swap(&mut v6s, &mut v6d);
    }
    let b = PacketBuilder::ethernet2(smac, dmac);
    macro_rules! finish {
        ($step:expr) => {
            match (flow.ip, flow.l4) {
                (Ip::V4, L4::Udp) => $step.ipv4(v4s, v4d, 64).udp(sport, dport).write(&mut out, &payload),
                (Ip::V6, L4::Udp) => $step.ipv6(v6s, v6d, 64).udp(sport, dport).write(&mut out, &payload),
                (Ip::V4, L4::Tcp) => {
                    $step.ipv4(v4s, v4d, 64).tcp(sport, dport, 1, 65535).ack(1).write(&mut out, &payload)
                }
                (Ip::V6, L4::Tcp) => {
                    $step.ipv6(v6s, v6d, 64).tcp(sport, dport, 1, 65535).ack(1).write(&mut out, &payload)
                }
            }
        };
    }
    let res = match flow.vlan {
        Some(id) => {
            let vid = etherparse::VlanId::try_new(id & 0x0fff).expect("masked to 12 bits");
            finish!(b.single_vlan(vid))
        }
        None => finish!(b),
    };
    res.expect("writing to a Vec cannot fail and the sizes are in range");
    if flow.ip == Ip::V6 {
        // The builder leaves the flow label 0; it is outside the L4 checksum.
        let at = 14 + if flow.vlan.is_some() { 4 } else { 0 };
        let label = flow.flow_label();
        out[at + 1] = (out[at + 1] & 0xf0) | (label >> 16) as u8;
        out[at + 2..at + 4].copy_from_slice(&(label as u16).to_be_bytes());
    }
    let l4_at = hlen - if flow.l4 == L4::Udp { 8 } else { 20 };
    let room = size.saturating_sub(hlen);
    Ok(Template {
        stamp: [STAMP_LEN, SHORT_STAMP_LEN].into_iter().find(|&l| room >= l).map(|l| (hlen, l)),
        csum_at: l4_at + if flow.l4 == L4::Udp { 6 } else { 16 },
        tcp_seq_at: (flow.l4 == L4::Tcp).then_some(l4_at + 4),
        payload_len: room as u32,
        udp: flow.l4 == L4::Udp,
        bytes: out,
        flow,
    })
}

/// Write `stamp` into a copy of `t` (in `frame`), and for TCP the
/// sequence number `tcp_seq`, and fix the L4 checksum.
#[inline]
pub fn stamp(t: &Template, frame: &mut [u8], stamp: &Stamp, tcp_seq: u32) {
    let (full, short);
    let stamp_bytes: Option<(usize, &[u8])> = match t.stamp {
        Some((at, STAMP_LEN)) => {
            full = stamp.to_bytes();
            Some((at, &full))
        }
        Some((at, _)) => {
            short = stamp.to_short_bytes();
            Some((at, &short))
        }
        None => None,
    };
    let seq = tcp_seq.to_be_bytes();
    let changes = [stamp_bytes, t.tcp_seq_at.map(|at| (at, &seq[..]))];
    // RFC 1624: HC' = ~(~HC + ~m + m') over the changed 16-bit words. The
    // stamp and the sequence number start at even offsets from the L4
    // header, so words align.
    let old = u16::from_be_bytes([frame[t.csum_at], frame[t.csum_at + 1]]);
    let mut sum = u32::from(!old);
    for (at, new) in changes.into_iter().flatten() {
        for (o, n) in frame[at..at + new.len()].chunks_exact(2).zip(new.chunks_exact(2)) {
            sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
            sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
        }
        frame[at..at + new.len()].copy_from_slice(new);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut csum = !(sum as u16);
    if t.udp && csum == 0 {
        csum = 0xffff;
    }
    frame[t.csum_at..t.csum_at + 2].copy_from_slice(&csum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    #[test]
    fn templates_beyond_their_memory_bound_are_refused_before_any_is_built() {
        let mix = |flows: u32, sizes: Vec<usize>, bidirectional: bool| MixSpec {
            flows,
            first_flow: 0,
            vlan_every: 8,
            ip: None,
            l4: None,
            sizes,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            bidirectional,
            dst_macs: 1,
        };
        // A million flows of one small size fit; of the whole mix, both ways, they do not.
        assert!(mix(1_000_000, vec![64], false).template_bytes() < MAX_TEMPLATE_BYTES);
        let big = mix(1_000_000, MIX_SIZES.to_vec(), true);
        assert!(big.template_bytes() > 4 * MAX_TEMPLATE_BYTES);
        let e = big.templates().unwrap_err().to_string();
        assert!(e.starts_with("2000000 directed flows x 7 sizes make ") && e.contains("more than 1024 MiB"), "{e}");
        assert_eq!(mix(64, MIX_SIZES.to_vec(), false).templates().unwrap().len(), 64 * 7);
    }

    fn mix() -> MixSpec {
        MixSpec {
            flows: 8,
            first_flow: 0,
            vlan_every: 2,
            ip: None,
            l4: None,
            sizes: MIX_SIZES.to_vec(),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            bidirectional: false,
            dst_macs: 1,
        }
    }

    /// Recompute the L4 checksum from scratch with etherparse and compare.
    fn checksum_ok(frame: &[u8]) -> bool {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        match (p.net.unwrap(), p.transport.unwrap()) {
            (NetSlice::Ipv4(ip), TransportSlice::Udp(u)) => {
                u.to_header().calc_checksum_ipv4(&ip.header().to_header(), u.payload()).unwrap() == u.checksum()
            }
            (NetSlice::Ipv6(ip), TransportSlice::Udp(u)) => {
                u.to_header().calc_checksum_ipv6(&ip.header().to_header(), u.payload()).unwrap() == u.checksum()
            }
            (NetSlice::Ipv4(ip), TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv4(&ip.header().to_header(), t.payload()).unwrap() == t.checksum()
            }
            (NetSlice::Ipv6(ip), TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv6(&ip.header().to_header(), t.payload()).unwrap() == t.checksum()
            }
            _ => false,
        }
    }

    #[test]
    fn every_flow_and_size_builds_and_stamps_with_valid_checksums() {
        let mut m = mix();
        m.bidirectional = true;
        for i in 0..m.streams() {
            let f = m.flow(i);
            for &size in &m.sizes {
                let t = build(&m, f, size).unwrap();
                assert_eq!(t.bytes.len(), size.max(header_len(&f)));
                let mut frame = t.bytes.clone();
                // Within the short stamp's widths (sequence 40 bits, time 56).
                let st = Stamp { flow: i, seq: 0xde_beef_0000 + u64::from(i), ts_ns: 123_456_789_012 };
                let tcp_seq = 0x8000_0001 + i;
                stamp(&t, &mut frame, &st, tcp_seq);
                assert!(checksum_ok(&frame), "flow {f:?} size {size}");
                let sliced = SlicedPacket::from_ethernet(&frame).unwrap();
                match sliced.transport {
                    Some(TransportSlice::Tcp(tcp)) => {
                        assert_eq!(tcp.sequence_number(), tcp_seq, "flow {f:?} size {size}");
                        assert_eq!(tcp.payload().len(), t.payload_len as usize, "flow {f:?} size {size}");
                    }
                    Some(TransportSlice::Udp(udp)) => {
                        assert_eq!(udp.payload().len(), t.payload_len as usize, "flow {f:?} size {size}");
                    }
                    _ => panic!("flow {f:?} size {size}: neither TCP nor UDP"),
                }
                let room = size.saturating_sub(header_len(&f));
                assert_eq!(t.stamp.is_some(), room >= SHORT_STAMP_LEN, "flow {f:?} size {size}");
                assert_eq!(
                    t.stamp.map_or(0, |(_, len)| len),
                    if room >= STAMP_LEN {
                        STAMP_LEN
                    } else if room >= SHORT_STAMP_LEN {
                        SHORT_STAMP_LEN
                    } else {
                        0
                    }
                );
                if t.stamp.is_some() {
                    assert_eq!(read_stamp(&frame), Some(st), "flow {f:?} size {size}");
                }
            }
        }
    }

    #[test]
    fn mix_alternates_versions_transports_and_tags() {
        let m = mix();
        let flows: Vec<_> = (0..8).map(|i| m.flow(i)).collect();
        assert!(flows.iter().any(|f| f.ip == Ip::V4) && flows.iter().any(|f| f.ip == Ip::V6));
        assert!(flows.iter().any(|f| f.l4 == L4::Udp) && flows.iter().any(|f| f.l4 == L4::Tcp));
        let tagged: Vec<_> = flows.iter().filter(|f| f.vlan.is_some()).collect();
        assert_eq!(tagged.len(), 4);
        assert!(tagged.iter().any(|f| f.ip == Ip::V4 && f.l4 == L4::Udp));
        assert!(tagged.iter().any(|f| f.ip == Ip::V6 && f.l4 == L4::Tcp));
        assert!(build(&m, flows[0], MAX_FRAME_SIZE + 1).is_err());
        // The largest: a 9000-byte MTU's frame with its tag.
        assert_eq!(build(&m, flows[0], 9018).unwrap().bytes.len(), 9018);
    }

    /// (src MAC, dst MAC, src IP, dst IP, src port, dst port, IPv6 flow label).
    type Ends = ([u8; 6], [u8; 6], Vec<u8>, Vec<u8>, u16, u16, Option<u32>);

    fn endpoints(frame: &[u8]) -> Ends {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link else { panic!("ethernet") };
        let (src, dst, label) = match p.net.unwrap() {
            NetSlice::Ipv4(ip) => (ip.header().source().to_vec(), ip.header().destination().to_vec(), None),
            NetSlice::Ipv6(ip) => (
                ip.header().source().to_vec(),
                ip.header().destination().to_vec(),
                Some(ip.header().flow_label().value()),
            ),
        };
        let (sp, dp) = match p.transport.unwrap() {
            TransportSlice::Udp(u) => (u.source_port(), u.destination_port()),
            TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
            _ => panic!("UDP or TCP"),
        };
        (eth.source(), eth.destination(), src, dst, sp, dp, label)
    }

    #[test]
    fn no_flow_sends_from_its_own_destination_address() {
        for ip in [Ip::V4, Ip::V6] {
            let mut m = mix();
            m.ip = Some(ip);
            m.vlan_every = 0;
            m.bidirectional = true;
            // Every flow index up to past the 16-bit boundaries, then a sample up to the 1 000 000 allowed.
            let flows = (0..70_000).chain((70_000..1_000_000).step_by(997)).chain([999_999]);
            for i in flows {
                for reverse in [false, true] {
                    let f = FlowSpec { index: i, ip, l4: L4::Udp, vlan: None, reverse };
                    let e = endpoints(&build(&m, f, 64).unwrap().bytes);
                    assert_ne!(e.2, e.3, "{ip:?} flow {i} reverse {reverse}: source = destination");
                }
            }
        }
    }

    #[test]
    fn header_kinds_are_one_flow_of_each_kind() {
        let m = mix();
        let kinds: Vec<String> = m.header_kinds().iter().map(FlowSpec::kind).collect();
        assert_eq!(
            kinds,
            [
                "IPv4/UDP",
                "IPv6/UDP",
                "IPv4/TCP",
                "IPv6/TCP",
                "802.1Q IPv4/UDP",
                "802.1Q IPv6/UDP",
                "802.1Q IPv4/TCP",
                "802.1Q IPv6/TCP"
            ]
        );
        let mut v6tcp = mix();
        (v6tcp.ip, v6tcp.l4, v6tcp.vlan_every) = (Some(Ip::V6), Some(L4::Tcp), 0);
        let k = v6tcp.header_kinds();
        assert_eq!(k.len(), 1);
        assert_eq!((frame_len(&k[0], 64), min_stamped_len(&k[0])), (74, 92));
    }

    #[test]
    fn flows_spread_over_destination_macs() {
        assert_eq!(mac_plus([2, 0, 0, 0, 0, 0xff], 1), [2, 0, 0, 0, 1, 0]);
        assert_eq!(mac_plus([2, 0, 0, 0xff, 0xff, 0xff], 1), [2, 0, 0, 0, 0, 0]);
        let mut m = mix();
        m.dst_macs = 4;
        let dst: Vec<u8> = (0..8).map(|i| build(&m, m.flow(i), 64).unwrap().bytes[5]).collect();
        assert_eq!(dst, [2, 3, 4, 5, 2, 3, 4, 5]);
    }

    /// A generator given `first_flow` sends flows of its own: other ids in
    /// the stamps, other addresses and ports, the same frames otherwise.
    #[test]
    fn a_first_flow_offsets_the_ids_and_addresses() {
        let (a, mut b) = (mix(), mix());
        b.first_flow = 8;
        for i in 0..a.flows {
            let (fa, fb) = (a.flow(i), b.flow(i));
            assert_eq!((fa.stream(), fb.stream()), (i, i + 8));
            let (ta, tb) = (build(&a, fa, 200).unwrap(), build(&b, fb, 200).unwrap());
            let mut stamped = tb.bytes.clone();
            stamp(&tb, &mut stamped, &Stamp { flow: fb.stream(), seq: 1, ts_ns: 2 }, 1);
            assert_eq!(ringwire_engine::probe::find_stamp(&stamped).map(|s| s.flow), Some(i + 8));
            let (ea, eb) = (endpoints(&ta.bytes), endpoints(&tb.bytes));
            assert!(ea.2 != eb.2 || ea.4 != eb.4, "flow {i}: same source address and port");
        }
    }

    #[test]
    fn bidirectional_flows_pair_each_flow_with_its_reverse() {
        let mut m = mix();
        m.bidirectional = true;
        assert_eq!(m.streams(), 16);
        assert_eq!(m.templates().unwrap().len(), 16 * m.sizes.len());
        for k in 0..m.flows {
            let (f, r) = (m.flow(2 * k), m.flow(2 * k + 1));
            assert_eq!((f.index, f.reverse, r.index, r.reverse), (k, false, k, true));
            assert_ne!(f.stream(), r.stream());
            let a = endpoints(&build(&m, f, 128).unwrap().bytes);
            let b = endpoints(&build(&m, r, 128).unwrap().bytes);
            assert_eq!((a.0, a.1, &a.2, &a.3, a.4, a.5), (b.1, b.0, &b.3, &b.2, b.5, b.4), "flow {k}: swapped");
            match (a.6, b.6) {
                (Some(x), Some(y)) => assert!(x != 0 && y != 0 && x != y, "flow {k}: labels {x} {y}"),
                (None, None) => {}
                other => panic!("flow {k}: {other:?}"),
            }
        }
    }
}
