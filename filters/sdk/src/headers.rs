//! Bounds-checked views of the headers built-in filters look at.
//!
//! [`Headers::parse`] walks Ethernet, up to two VLAN tags (802.1Q / 802.1ad),
//! IPv4 or IPv6 (with its extension headers) and the first four bytes of
//! TCP / UDP / SCTP, reading nothing past the captured bytes: a runt or a
//! truncated header simply leaves the later fields unset. It allocates
//! nothing and never panics, whatever the input.

use std::net::IpAddr;

/// What a frame's headers say, as far as they were captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headers {
    /// Destination and source MAC.
    pub mac: Option<([u8; 6], [u8; 6])>,
    /// VLAN ids, outer first (0, 1 or 2 of them).
    pub vlans: [Option<u16>; 2],
    /// The ethertype after any VLAN tags.
    pub ethertype: Option<u16>,
    /// IP protocol (IPv4) or final next header (IPv6).
    pub proto: Option<u8>,
    /// Source and destination address.
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Source and destination port (TCP, UDP, SCTP; first fragment only).
    pub ports: Option<(u16, u16)>,
    /// Offset of the L4 header in the frame (first fragment only).
    pub l4_offset: Option<usize>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl Headers {
    /// Parse what `frame` holds.
    #[must_use]
    pub fn parse(frame: &[u8]) -> Self {
        let mut h = Self::default();
        let (Some(dst), Some(src)) = (array::<6>(frame, 0), array::<6>(frame, 6)) else { return h };
        h.mac = Some((dst, src));
        let mut at = 12;
        let mut et = match be16(frame, at) {
            Some(v) => v,
            None => return h,
        };
        for slot in &mut h.vlans {
            if !matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                break;
            }
            let Some(tci) = be16(frame, at + 2) else { return h };
            *slot = Some(tci & 0x0fff);
            at += 4;
            et = match be16(frame, at) {
                Some(v) => v,
                None => return h,
            };
        }
        h.ethertype = Some(et);
        let l3 = at + 2;
        let (proto, l4) = match et {
            0x0800 => {
                let Some(&vihl) = frame.get(l3) else { return h };
                let ihl = usize::from(vihl & 0x0f) * 4;
                if vihl >> 4 != 4 || ihl < 20 {
                    return h;
                }
                let (Some(&proto), Some(s), Some(d), Some(frag)) =
                    (frame.get(l3 + 9), array::<4>(frame, l3 + 12), array::<4>(frame, l3 + 16), be16(frame, l3 + 6))
                else {
                    return h;
                };
                h.proto = Some(proto);
                h.addrs = Some((IpAddr::from(s), IpAddr::from(d)));
                // Ports only in the first fragment.
                (proto, (frag & 0x1fff == 0).then_some(l3 + ihl))
            }
            0x86dd => {
                let (Some(&first), Some(s), Some(d)) =
                    (frame.get(l3 + 6), array::<16>(frame, l3 + 8), array::<16>(frame, l3 + 24))
                else {
                    return h;
                };
                h.addrs = Some((IpAddr::from(s), IpAddr::from(d)));
                let mut next = first;
                let mut off = l3 + 40;
                let mut l4 = Some(off);
                // Hop-by-hop, routing, fragment, destination options, AH: at most 8.
                for _ in 0..8 {
                    match next {
                        0 | 43 | 60 => {
                            let (Some(&n), Some(&len)) = (frame.get(off), frame.get(off + 1)) else { return h };
                            next = n;
                            off += (usize::from(len) + 1) * 8;
                        }
                        51 => {
                            let (Some(&n), Some(&len)) = (frame.get(off), frame.get(off + 1)) else { return h };
                            next = n;
                            off += (usize::from(len) + 2) * 4;
                        }
                        44 => {
                            let (Some(&n), Some(frag)) = (frame.get(off), be16(frame, off + 2)) else { return h };
                            next = n;
                            if frag & 0xfff8 != 0 {
                                l4 = None; // not the first fragment
                            }
                            off += 8;
                        }
                        _ => break,
                    }
                }
                h.proto = Some(next);
                (next, l4.map(|_| off))
            }
            _ => return h,
        };
        h.l4_offset = l4;
        if let (6 | 17 | 132, Some(at)) = (proto, l4) {
            if let (Some(s), Some(d)) = (be16(frame, at), be16(frame, at + 2)) {
                h.ports = Some((s, d));
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + 802.1Q 42 + IPv4 10.0.0.1 -> 10.0.0.2 + UDP 1000 -> 53 + 4 bytes.
    fn vlan_udp() -> Vec<u8> {
        let mut f = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0x00, 0x00, 42, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x03, 0xe8, 0x00, 0x35, 0, 12, 0, 0, 9, 9, 9, 9]);
        f
    }

    #[test]
    fn parses_vlan_ipv4_udp() {
        let f = vlan_udp();
        let h = Headers::parse(&f);
        assert_eq!(h.mac, Some(([1; 6], [2; 6])), "(destination, source)");
        assert_eq!(h.vlans, [Some(42), None]);
        assert_eq!(h.ethertype, Some(0x0800));
        assert_eq!(h.proto, Some(17));
        assert_eq!(h.ports, Some((1000, 53)));
        assert_eq!(h.l4_offset, Some(38));
    }

    #[test]
    fn every_prefix_of_a_frame_parses_without_panic() {
        // QinQ (1, 2) + IPv6 with a hop-by-hop header + TCP 1 -> 2.
        let mut f = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 28, 0, 64]);
        f.extend_from_slice(&[1; 16]);
        f.extend_from_slice(&[2; 16]);
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        for n in 0..=f.len() {
            let h = Headers::parse(&f[..n]);
            if n == f.len() {
                assert_eq!(h.vlans, [Some(1), Some(2)]);
                assert_eq!(h.proto, Some(6));
                assert_eq!(h.ports, Some((1, 2)));
            }
        }
    }
}
