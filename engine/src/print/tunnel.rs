//! Tunnels as tcpdump words them in a line (`-n`, no `-v`): IP in IP
//! (IPv4 or IPv6 in either: `IP 10.0.0.1 > 10.0.0.2: IP6 ...`), GRE
//! (`GREv0, key=0x2a, length 69: IP ...`, the carried packet decoded as
//! the frame's own would be; an Ethernet frame with its link-level header
//! under `-e`; GREv1 (PPTP) with the IP packets its PPP frames carry),
//! MPLS label stacks, VXLAN and Geneve. A snap length may cut them
//! anywhere: what was read is printed, then ` [|gre]` and the like.

use std::fmt::Write as _;

use super::{
    describe, describe_ip, ip4_cut, link_header, offset_in, wrong_version, Bytes, TcpConversations, Undecoded,
};

/// The IPv4 (`v6` false) or IPv6 packet a tunnel carries, captured as `ip`
/// within `frame`, `len` bytes on the wire, as tcpdump prints it (with its
/// own `IP `/`IP6 `, unless the line shows link-level headers: `link`).
pub(super) fn ip(
    out: &mut String,
    frame: &[u8],
    (ip, len, v6): (&[u8], usize, bool),
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    let at = offset_in(frame, ip);
    if wrong_version(out, ip, v6, link) {
        return Undecoded::Nothing;
    }
    match etherparse::LaxSlicedPacket::from_ip(ip) {
        Ok(p) if p.net.is_some() => describe_ip(out, frame, &p, at + len, (link, quick), tcp),
        _ if v6 => {
            out.push_str(" [|ip6]");
            Undecoded::Nothing
        }
        _ => ip4_cut(out, ip, len, if link { "" } else { "IP " }),
    }
}

// GRE's flags (the first 16 bits; the version in the low 3).
const CHECKSUM: u16 = 0x8000;
const ROUTING: u16 = 0x4000;
const KEY: u16 = 0x2000;
const SEQUENCE: u16 = 0x1000;
const ACK: u16 = 0x0080;

/// A GRE packet of `len` bytes on the wire, captured as `gre` within
/// `frame`, as tcpdump prints it; `link`: the line shows link-level
/// headers (`-e`), which adds the protocol carried.
pub(super) fn gre(
    out: &mut String,
    frame: &[u8],
    gre: &[u8],
    len: usize,
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    let Some(flags) = (len >= 2).then(|| word(gre, 0)).flatten() else {
        out.push_str(" [|gre]");
        return Undecoded::Nothing;
    };
    let version = flags & 7;
    let _ = write!(out, "GREv{version}");
    let header = match version {
        0 | 1 => header(out, gre, len, flags),
        _ => {
            out.push_str(" ERROR: unknown-version");
            return Undecoded::Nothing;
        }
    };
    let Some((proto, at)) = header else {
        out.push_str(" [|gre]");
        return Undecoded::Nothing;
    };
    if version == 1 && flags & SEQUENCE == 0 {
        out.push_str(", no-payload");
    }
    if link {
        let _ = write!(out, ", proto {} ({proto:#06x})", protocol_name(proto));
    }
    let _ = write!(out, ", length {len}");
    if version == 1 && flags & SEQUENCE == 0 {
        return Undecoded::Nothing;
    }
    out.push_str(": ");
    let (inner, inner_len) = (gre.get(at..).unwrap_or_default(), len - at);
    match (version, proto) {
        (0, 0x0800 | 0x86dd) => ip(out, frame, (inner, inner_len, proto == 0x86dd), (link, quick), tcp),
        (0, 0x6558) => ethernet(out, frame, (inner, inner_len), (link, quick), tcp),
        (0, 0x8847) => mpls(out, frame, (inner, inner_len), (link, quick), tcp),
        (1, 0x880b) => ppp(out, frame, inner, inner_len, (link, quick), tcp),
        _ => {
            let _ = write!(out, "gre-proto-{proto:#x}");
            Undecoded::Nothing
        }
    }
}

/// The big-endian u16 at `at`, if captured.
fn word(b: &[u8], at: usize) -> Option<u16> {
    Bytes(b).u16(at).ok()
}

/// The big-endian u32 at `at`, if captured.
fn long(b: &[u8], at: usize) -> Option<u32> {
    Bytes(b).u32(at).ok()
}

/// The fields of a GRE header (version 0 or 1) after `GREv0`: its
/// protocol and where what it carries starts, or `None` where it was cut
/// (by the snap length or its own length), after what was printed.
fn header(out: &mut String, gre: &[u8], len: usize, flags: u16) -> Option<(u16, usize)> {
    let v1 = flags & 7 == 1;
    let proto = word(gre, 2).filter(|_| len >= 4)?;
    let mut at = 4;
    // A field of `n` bytes at `at`: captured, and within the packet's length.
    let field = |at: usize, n: usize| (gre.len() >= at + n && len >= at + n).then_some(at);
    if !v1 && flags & (CHECKSUM | ROUTING) != 0 {
        field(at, 2)?;
        at += 2;
        let _ = write!(out, ", off {:#x}", word(gre, field(at, 2)?)?);
        at += 2;
    }
    if flags & KEY != 0 {
        let key = long(gre, field(at, 4)?)?;
        let _ = if v1 { write!(out, ", call {}", key & 0xffff) } else { write!(out, ", key={key:#x}") };
        at += 4;
    }
    if flags & SEQUENCE != 0 {
        let _ = write!(out, ", seq {}", long(gre, field(at, 4)?)?);
        at += 4;
    }
    if v1 && flags & ACK != 0 {
        let _ = write!(out, ", ack {}", long(gre, field(at, 4)?)?);
        at += 4;
    }
    if !v1 && flags & ROUTING != 0 {
        at = source_routes(out, gre, len, at)?;
    }
    Some((proto, at))
}

/// GRE's source route entries (RFC 1701) from `at` to the empty one that
/// ends them; where they end.
fn source_routes(out: &mut String, gre: &[u8], len: usize, mut at: usize) -> Option<usize> {
    loop {
        if gre.len() < at + 4 || len < at + 4 {
            return None;
        }
        let (family, offset, sre_len) = (word(gre, at)?, gre[at + 2], gre[at + 3]);
        at += 4;
        if family == 0 && sre_len == 0 {
            return Some(at);
        }
        // (IPv4 addresses of 4 bytes, autonomous systems of 2.)
        let unit = match family {
            0x0800 => 4,
            0xfffe => 2,
            _ => 0,
        };
        match family {
            0x0800 => out.push_str(", (rtaf=ip"),
            0xfffe => out.push_str(", (rtaf=asn"),
            _ => {
                let _ = write!(out, ", (rtaf={family:#x})");
            }
        }
        if unit != 0 {
            let bad = usize::from(offset) % unit != 0 || usize::from(sre_len) % unit != 0 || offset >= sre_len;
            if usize::from(offset) % unit != 0 {
                let _ = write!(out, ", badoffset={offset}");
            } else if usize::from(sre_len) % unit != 0 {
                let _ = write!(out, ", badlength={sre_len}");
            } else if offset >= sre_len {
                let _ = write!(out, ", badoff/len={offset}/{sre_len}");
            }
            // (The entries cut short still close the parenthesis.)
            let mut cut = false;
            if !bad {
                for i in (0..usize::from(sre_len)).step_by(unit) {
                    let Some(entry) = gre.get(at + i..at + i + unit).filter(|_| len >= at + i + unit) else {
                        cut = true;
                        break;
                    };
                    let mark = if i == usize::from(offset) { "*" } else { "" };
                    let _ = if unit == 4 {
                        write!(out, " {mark}{}", std::net::Ipv4Addr::new(entry[0], entry[1], entry[2], entry[3]))
                    } else {
                        write!(out, " {mark}{:x}", u16::from_be_bytes([entry[0], entry[1]]))
                    };
                }
            }
            out.push(')');
            if cut {
                return None;
            }
        }
        if len < at + usize::from(sre_len) {
            return None;
        }
        at += usize::from(sre_len);
    }
}

/// A PPP frame (PPTP's, in GREv1) of `len` bytes on the wire: the IP
/// packet it carries; other protocols (LCP, IPCP, ...) by number.
fn ppp(
    out: &mut String,
    frame: &[u8],
    ppp: &[u8],
    len: usize,
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    // tcpdump reads 2 bytes first (giving up on the frame without them);
    // an address and control field (0xff 0x03) may come first; a protocol
    // number of one byte when odd.
    let cut = |out: &mut String, gave_up: bool| {
        out.push_str(" [|ppp]");
        if gave_up {
            Undecoded::GaveUp
        } else {
            Undecoded::Nothing
        }
    };
    if len < 2 {
        return cut(out, false);
    }
    let Some(start) = ppp.get(..2) else { return cut(out, true) };
    let mut at = if start == [0xff, 0x03] { 2 } else { 0 };
    if len < at + 2 {
        return cut(out, false);
    }
    let Some(&first) = ppp.get(at) else { return cut(out, true) };
    let proto = if first % 2 == 1 {
        at += 1;
        u16::from(first)
    } else {
        let Some(p) = word(ppp, at) else { return cut(out, true) };
        at += 2;
        p
    };
    let ip_version = match proto {
        0x21 => Some(false),
        0x57 => Some(true),
        _ => None,
    };
    match (ip_version, link) {
        (Some(v6), _) => {
            if link {
                let _ = write!(out, "{} ({proto:#06x}), length {len}: ", if v6 { "IP6" } else { "IP" });
            }
            ip(out, frame, (ppp.get(at..).unwrap_or_default(), len - at, v6), (link, quick), tcp)
        }
        // Under -e, its header alone.
        (None, true) => {
            let _ = write!(out, "unknown ({proto:#06x}), length {len}");
            Undecoded::Nothing
        }
        // Its payload dumped (in hex, whatever else is asked), as tcpdump dumps it.
        (None, false) => {
            let _ = write!(out, "unknown PPP protocol ({proto:#06x}) ");
            let offset = offset_in(frame, ppp);
            Undecoded::Bytes { at: offset + at, len: ppp.len().min(len).saturating_sub(at) }
        }
    }
}

/// An MPLS label stack and the packet under it, `len` bytes on the wire
/// captured as `mpls`, as tcpdump prints them: `MPLS (label 100, tc 0,
/// [S], ttl 64) IP ...`. What the bottom label carries is told by its
/// label (IPv4 and IPv6 explicit null) or by its first byte (an IP
/// version); anything else is dumped.
pub(super) fn mpls(
    out: &mut String,
    frame: &[u8],
    (mpls, len): (&[u8], usize),
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    out.push_str("MPLS");
    let mut at = 0;
    let label = loop {
        if len < at + 4 {
            out.push_str(" (invalid)");
            // (tcpdump then checks that the rest was captured, giving up on the frame if not.)
            if mpls.len() < len {
                out.push_str(" [|mpls]");
                return Undecoded::GaveUp;
            }
            return Undecoded::Nothing;
        }
        let Some(entry) = long(mpls, at) else {
            out.push_str(" [|mpls]");
            return Undecoded::GaveUp;
        };
        let bottom = entry & 0x100 != 0;
        let _ = write!(
            out,
            " (label {}, tc {}{}, ttl {})",
            entry >> 12,
            (entry >> 9) & 7,
            if bottom { ", [S]" } else { "" },
            entry & 0xff
        );
        at += 4;
        if bottom {
            break entry >> 12;
        }
    };
    let v6 = match label {
        0 | 3 => false,
        2 => true,
        _ if len == at => return Undecoded::Nothing,
        _ => match mpls.get(at) {
            None => {
                out.push_str(" [|mpls]");
                return Undecoded::GaveUp;
            }
            Some(0x45..=0x4f) => false,
            Some(0x60..=0x6f) => true,
            Some(_) => {
                let offset = offset_in(frame, mpls);
                return Undecoded::Rest { at: offset + at, cut: (mpls.len() < len).then_some("mpls") };
            }
        },
    };
    out.push(' ');
    ip(out, frame, (mpls.get(at..).unwrap_or_default(), len - at, v6), (link, quick), tcp)
}

/// A VXLAN packet (UDP port 4789) of `len` bytes, captured as `vxlan`, as
/// tcpdump prints it: its header, a new line, and the Ethernet frame it
/// carries.
pub(super) fn vxlan(
    out: &mut String,
    frame: &[u8],
    (vxlan, len): (&[u8], usize),
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    out.push_str("VXLAN");
    if len < 8 {
        out.push_str(" (invalid)");
        return Undecoded::Nothing;
    }
    let (Some(&flags), Some(vni)) = (vxlan.first(), vxlan.get(4..7)) else {
        // (Its flags, or its network identifier after them, cut short.)
        if let Some(&flags) = vxlan.first() {
            let _ = write!(out, ", flags [{}] ({flags:#04x}), ", vxlan_flags(flags));
        }
        out.push_str(" [|vxlan]");
        return Undecoded::GaveUp;
    };
    let vni = u32::from_be_bytes([0, vni[0], vni[1], vni[2]]);
    let _ = writeln!(out, ", flags [{}] ({flags:#04x}), vni {vni}", vxlan_flags(flags));
    if vxlan.len() < 8 {
        out.push_str(" [|vxlan]");
        return Undecoded::GaveUp;
    }
    ethernet(out, frame, (&vxlan[8..], len - 8), (link, quick), tcp)
}

/// VXLAN's flags as tcpdump names them: `I` (a valid network identifier).
fn vxlan_flags(flags: u8) -> &'static str {
    if flags & 0x08 != 0 {
        "I"
    } else {
        "invalid"
    }
}

/// A Geneve packet (UDP port 6081) of `len` bytes, captured as `geneve`, as
/// tcpdump prints it: `Geneve, Flags [none], vni 0x64: IP ...`.
pub(super) fn geneve(
    out: &mut String,
    frame: &[u8],
    (geneve, len): (&[u8], usize),
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    out.push_str("Geneve");
    if len < 8 {
        let _ = write!(out, " [length {len} < 8] (invalid)");
        return Undecoded::Nothing;
    }
    let Some(h) = geneve.get(..8) else {
        out.push_str(" [|geneve]");
        return Undecoded::Nothing;
    };
    let version = h[0] >> 6;
    if version != 0 {
        let _ = write!(out, " ERROR: unknown-version {version}");
        return Undecoded::Nothing;
    }
    // O(AM), C(ritical), then the reserved bits R1..R6, as tcpdump names them.
    let names = ["O", "C", "R1", "R2", "R3", "R4", "R5", "R6"];
    let set: String = names.iter().enumerate().filter(|(i, _)| h[1] & (0x80 >> i) != 0).map(|(_, n)| *n).collect();
    let flags = if set.is_empty() { "none" } else { set.as_str() };
    let proto = u16::from_be_bytes([h[2], h[3]]);
    let _ = write!(out, ", Flags [{flags}], vni {:#x}", u32::from_be_bytes([0, h[4], h[5], h[6]]));
    if h[7] != 0 {
        let _ = write!(out, ", rsvd {:#x}", h[7]);
    }
    if link {
        let _ = write!(out, ", proto {} ({proto:#06x})", protocol_name(proto));
    }
    let options = usize::from(h[0] & 0x3f) * 4;
    if len - 8 < options {
        let _ = write!(out, " truncated-geneve - {} bytes missing", options - (len - 8));
        return Undecoded::Nothing;
    }
    if geneve.len() < 8 + options {
        out.push_str(" [|geneve]");
        return Undecoded::Nothing;
    }
    if options > 0 {
        let _ = write!(out, ", options [{options} bytes]");
    }
    out.push_str(": ");
    let (inner, inner_len) = (&geneve[8 + options..], len - 8 - options);
    match proto {
        0x0800 | 0x86dd => ip(out, frame, (inner, inner_len, proto == 0x86dd), (link, quick), tcp),
        0x8847 => mpls(out, frame, (inner, inner_len), (link, quick), tcp),
        0x6558 => ethernet(out, frame, (inner, inner_len), (link, quick), tcp),
        _ => {
            let _ = write!(out, "geneve-proto-{proto:#x}");
            Undecoded::Nothing
        }
    }
}

/// The name tcpdump gives a tunnel's protocol (an ethertype) under `-e`.
fn protocol_name(proto: u16) -> &'static str {
    match proto {
        0x6558 => "TEB",
        0x880b => "PPP",
        et => match super::ether_type_name(et) {
            "Unknown" => "unknown",
            name => name,
        },
    }
}

/// An Ethernet frame a tunnel carries, `len` bytes on the wire captured as
/// `inner`, decoded as the frame's own would be (with `-e`, its link-level
/// header too).
fn ethernet(
    out: &mut String,
    frame: &[u8],
    (inner, len): (&[u8], usize),
    (link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    // A frame longer than what carries it says it is.
    if len < inner.len() {
        let _ = write!(out, "[length {len} < caplen {}] (invalid)", inner.len());
        return Undecoded::Nothing;
    }
    if link {
        link_header(out, inner, len as u32, quick);
    }
    let offset = offset_in(frame, inner);
    match describe(out, inner, len as u32, (link, quick), tcp) {
        Undecoded::Bytes { at, len } => Undecoded::Bytes { at: at + offset, len },
        Undecoded::Rest { at, cut } => Undecoded::Rest { at: at + offset, cut },
        // (Its own payload, not the frame's.)
        Undecoded::Payload => Undecoded::Rest { at: offset + super::link_header_len(inner), cut: None },
        Undecoded::PayloadOnly { at, len } => Undecoded::PayloadOnly { at: at + offset, len },
        undecoded => undecoded,
    }
}
