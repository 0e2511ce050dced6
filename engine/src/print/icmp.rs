//! ICMP and ICMPv6 messages as tcpdump words them on its line (`-n`, no
//! `-v`): the message's type and what it carries, such as the datagram an
//! error quotes. A snap length may have cut the message anywhere; what is
//! printed then is what tcpdump prints: it reads an ICMP message whole
//! before it prints (` [|icmp]` alone when a field it reads is missing),
//! and an ICMPv6 message field by field (what it read, then ` [|icmp6]`).
//! Most of its reads give up on the whole frame at a missing field, and its
//! `-x`, `-X` and `-A` dumps then start at the frame's first byte; a few
//! are checks that end the message's line only ([`Cut`]).

use std::fmt::Write as _;

use super::{Bytes, Cut};

/// Where an ICMP or ICMPv6 error message quotes the datagram it is about:
/// after its 8-byte header.
const QUOTED: usize = 8;

/// An ICMP message of `len` bytes on the wire, captured as `msg`, as
/// tcpdump words it after the addresses: `ICMP 10.0.0.9 udp port 53
/// unreachable, length 36`, or ` [|icmp]` when it was cut before a field
/// tcpdump reads (it then gives up on the frame: the result).
pub(super) fn icmp(out: &mut String, msg: &[u8], len: usize) -> Option<Cut> {
    match icmp_words(&Bytes(msg)) {
        Ok(words) => {
            let _ = write!(out, "ICMP {words}, length {len}");
            None
        }
        Err(cut) => {
            out.push_str(" [|icmp]");
            Some(cut)
        }
    }
}

/// What tcpdump says of an ICMP message between `ICMP ` and its length.
fn icmp_words(b: &Bytes<'_>) -> Result<String, Cut> {
    let (kind, code) = (b.u8(0)?, b.u8(1)?);
    // The quoted datagram's destination.
    let dst = || b.v4(QUOTED + 16);
    Ok(match kind {
        0 | 8 => {
            let echo = if kind == 8 { "request" } else { "reply" };
            format!("echo {echo}, id {}, seq {}", b.u16(4)?, b.u16(6)?)
        }
        3 => unreachable(b, code)?,
        5 => {
            let (dst, gateway) = (dst()?, b.v4(4)?);
            match code {
                0 => format!("redirect {dst} to net {gateway}"),
                1 => format!("redirect {dst} to host {gateway}"),
                2 => format!("redirect-tos {dst} to net {gateway}"),
                3 => format!("redirect-tos {dst} to host {gateway}"),
                _ => format!("redirect-#{code} {dst} to {gateway}"),
            }
        }
        9 => router_advertisement(b)?,
        11 => {
            b.check(QUOTED + 16, 4)?;
            match code {
                0 => "time exceeded in-transit".to_owned(),
                1 => "ip reassembly time exceeded".to_owned(),
                _ => format!("time exceeded-#{code}"),
            }
        }
        12 if code != 0 => format!("parameter problem - code {code}"),
        12 => format!("parameter problem - octet {}", b.u8(4)?),
        13 => format!("time stamp query id {} seq {}", b.u16(4)?, b.u16(6)?),
        14 => {
            b.check(16, 4)?;
            let (org, recv, xmit) = (b.u32(8)?, b.u32(12)?, b.u32(16)?);
            format!(
                "time stamp reply id {} seq {}: org {}, recv {}, xmit {}",
                b.u16(4)?,
                b.u16(6)?,
                clock(org),
                clock(recv),
                clock(xmit)
            )
        }
        18 => format!("address mask is 0x{:08x}", b.u32(8)?),
        4 => "source quench".to_owned(),
        10 => "router solicitation".to_owned(),
        15 => "information request".to_owned(),
        16 => "information reply".to_owned(),
        17 => "address mask request".to_owned(),
        _ => format!("type-#{kind}"),
    })
}

/// A destination unreachable message: whom it is about, and why.
fn unreachable(b: &Bytes<'_>, code: u8) -> Result<String, Cut> {
    // (Read first, except for a port: its protocol is checked first.)
    if code == 3 {
        b.check(QUOTED + 9, 1)?;
    }
    let dst = b.v4(QUOTED + 16)?;
    Ok(match code {
        0 => format!("net {dst} unreachable"),
        1 => format!("host {dst} unreachable"),
        2 => format!("{dst} protocol {} unreachable", b.u8(QUOTED + 9)?),
        3 => {
            // The quoted transport header's destination port, after the quoted IP header.
            let header = usize::from(b.u8(QUOTED)? & 0x0f) * 4;
            let port = b.u16(QUOTED + header + 2)?;
            match b.u8(QUOTED + 9)? {
                6 => format!("{dst} tcp port {port} unreachable"),
                17 => format!("{dst} udp port {port} unreachable"),
                protocol => format!("{dst} protocol {protocol} port {port} unreachable"),
            }
        }
        4 => match b.u16(6)? {
            0 => format!("{dst} unreachable - need to frag"),
            mtu => format!("{dst} unreachable - need to frag (mtu {mtu})"),
        },
        5 => format!("{dst} unreachable - source route failed"),
        6 => format!("net {dst} unreachable - unknown"),
        7 => format!("host {dst} unreachable - unknown"),
        8 => format!("{dst} unreachable - source host isolated"),
        9 => format!("net {dst} unreachable - admin prohibited"),
        10 => format!("host {dst} unreachable - admin prohibited"),
        11 => format!("net {dst} unreachable - tos prohibited"),
        12 => format!("host {dst} unreachable - tos prohibited"),
        13 => format!("host {dst} unreachable - admin prohibited filter"),
        14 => format!("host {dst} unreachable - host precedence violation"),
        15 => format!("host {dst} unreachable - precedence cutoff"),
        _ => format!("{dst} unreachable - #{code}"),
    })
}

/// A router advertisement (RFC 1256): its lifetime, and each address with
/// its preference when the entries are of the usual size (2 words).
fn router_advertisement(b: &Bytes<'_>) -> Result<String, Cut> {
    b.check(4, 4)?;
    let (count, size, lifetime) = (b.u8(4)?, b.u8(5)?, b.u16(6)?);
    let lifetime = match lifetime {
        0..60 => lifetime.to_string(),
        60..3600 => format!("{}:{:02}", lifetime / 60, lifetime % 60),
        _ => format!("{}:{:02}:{:02}", lifetime / 3600, lifetime % 3600 / 60, lifetime % 60),
    };
    let mut words = format!("router advertisement lifetime {lifetime} {count}:");
    if size != 2 {
        let _ = write!(words, " [size {size}]");
        return Ok(words);
    }
    for entry in 0..usize::from(count) {
        let at = 8 + entry * 8;
        b.check(at, 8)?;
        let _ = write!(words, " {{{} {}}}", b.v4(at)?, b.u32(at + 4)?);
    }
    Ok(words)
}

/// Milliseconds since midnight UTC as tcpdump shows a timestamp message's
/// times (`01:02:03.004`).
fn clock(ms: u32) -> String {
    let (secs, ms) = (ms / 1000, ms % 1000);
    format!("{:02}:{:02}:{:02}.{ms:03}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// An ICMPv6 message of `len` bytes on the wire, captured as `msg`, as
/// tcpdump words it after the addresses: `ICMP6, destination unreachable,
/// unreachable port, 2001:db8::9 udp port 53, length 64`, what was read of
/// it then ` [|icmp6]` when it was cut. Returns how many of its bytes
/// tcpdump dumps in hex under the line (a type, or an unreachable code, it
/// does not decode), or how it was cut.
pub(super) fn icmp6(out: &mut String, msg: &[u8], len: usize) -> Result<usize, Cut> {
    if len == 0 {
        out.push_str("ICMP6, length 0 (invalid)");
        return Ok(0);
    }
    let b = Bytes(msg);
    let Ok(kind) = b.u8(0) else {
        out.push_str(" [|icmp6]");
        return Err(Cut::Frame);
    };
    match icmp6_name(kind) {
        Some(name) => {
            let _ = write!(out, "ICMP6, {name}");
        }
        None => {
            let _ = write!(out, "ICMP6, unknown icmp6 type ({kind})");
        }
    }
    match icmp6_body(out, &b, kind, len) {
        Ok(Ending::Length) => {
            let _ = write!(out, ", length {len}");
            Ok(0)
        }
        Ok(Ending::Dump) => Ok(len.min(msg.len())),
        Err(cut) => {
            out.push_str(" [|icmp6]");
            Err(cut)
        }
    }
}

/// How tcpdump ends an ICMPv6 message's line.
enum Ending {
    /// With the message's length.
    Length,
    /// With nothing more: a hex dump of the message follows.
    Dump,
}

/// The name tcpdump gives an ICMPv6 type.
const fn icmp6_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        130 => "multicast listener query",
        131 => "multicast listener report",
        132 => "multicast listener done",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect",
        138 => "router renumbering",
        139 => "who-are-you request",
        140 => "who-are-you reply",
        141 => "inverse neighbor solicitation",
        142 => "inverse neighbor advertisement",
        143 => "multicast listener report v2",
        144 => "ha discovery request",
        145 => "ha discovery reply",
        146 => "mobile router solicitation",
        147 => "mobile router advertisement",
        155 => "RPL",
        200 => "mtrace response",
        201 => "mtrace message",
        _ => return None,
    })
}

/// What follows an ICMPv6 message's name on tcpdump's line, written as it
/// is read, up to a field that was not captured.
fn icmp6_body(out: &mut String, b: &Bytes<'_>, kind: u8, len: usize) -> Result<Ending, Cut> {
    let code = b.u8(1)?;
    // The quoted packet's source and destination.
    let (src, dst) = (|| b.v6(QUOTED + 8), || b.v6(QUOTED + 24));
    match kind {
        1 => {
            let _ = match code {
                0 => write!(out, ", unreachable route"),
                1 => write!(out, ",  unreachable prohibited"),
                2 => write!(out, ", beyond scope"),
                3 => write!(out, ", unreachable address"),
                4 => write!(out, ", unreachable port"),
                _ => write!(out, ", unknown unreach code ({code})"),
            };
            let _ = match code {
                0 | 1 | 3 => write!(out, " {}", dst()?),
                2 => {
                    let (dst, src) = (dst()?, src()?);
                    write!(out, " {dst}, source address {src}")
                }
                4 => {
                    let (protocol, at) = upper_layer(b).ok_or(Cut::Here)?;
                    let (port, dst) = (b.u16(at + 2)?, dst()?);
                    let name = if protocol == 6 { "tcp" } else { "udp" };
                    write!(out, ", {dst} {name} port {port}")
                }
                _ => return Ok(Ending::Dump),
            };
        }
        2 => {
            let _ = write!(out, ", mtu {}", b.u32(4)?);
        }
        3 => {
            let _ = match code {
                0 => write!(out, " for {}", dst()?),
                1 => write!(out, " (reassembly)"),
                _ => write!(out, ", unknown code ({code})"),
            };
        }
        4 => {
            // (Checked, not read: a miss ends the line here.)
            dst().map_err(|_| Cut::Here)?;
            let pointer = || b.u32(4);
            let _ = match code {
                0 => write!(out, ", erroneous - octet {}", pointer()?),
                1 => write!(out, ", next header - octet {}", pointer()?),
                2 => write!(out, ", option - octet {}", pointer()?),
                3 => write!(out, ", incomplete header chain - octet {}", pointer()?),
                _ => write!(out, ", code-#{code}"),
            };
        }
        128 | 129 => {
            let _ = write!(out, ", id {}, seq {}", b.u16(4)?, b.u16(6)?);
        }
        // MLDv1 (24 bytes) or MLDv2 (28 and more).
        130 if len == 24 => listener(out, b),
        130 if len >= 28 => {
            out.push_str(" v2");
            let _ = b.u16(4)?;
            let _ = write!(out, " [gaddr {}", b.v6(8)?);
            let sources = usize::from(b.u16(26)?);
            if sources > 0 && len < 28 + sources * 16 {
                out.push_str(" [invalid number of sources]");
            } else if sources > 0 {
                let _ = write!(out, ", {sources} source(s)");
            }
            out.push(']');
        }
        130 => {
            let _ = write!(out, " unknown-version (len {len}) ");
        }
        131 | 132 => listener(out, b),
        135 => {
            let _ = write!(out, ", who has {}", b.v6(8)?);
        }
        136 => {
            let _ = write!(out, ", tgt is {}", b.v6(8)?);
        }
        // A redirect: the destination, then the better first hop.
        137 => {
            let _ = write!(out, ", {}", b.v6(24)?);
            let _ = write!(out, " to {}", b.v6(8)?);
        }
        143 if len < 8 => {
            let _ = write!(out, " [invalid len {len}]");
        }
        143 => {
            let _ = write!(out, ", {} group record(s)", b.u16(6)?);
        }
        144 | 146 => {
            let _ = write!(out, ", id 0x{:04x}", b.u16(4)?);
        }
        // Nothing more without -v. (Router renumbering, node information
        // and RPL messages are not decoded: their length follows their name.)
        133 | 134 | 138..=142 | 145 | 147 | 155 => {}
        _ => {
            let _ = write!(out, ", length {len}");
            return Ok(Ending::Dump);
        }
    }
    Ok(Ending::Length)
}

/// An MLDv1 message's delay and group, as tcpdump words them (right after
/// the name); nothing unless all 24 bytes were captured.
fn listener(out: &mut String, b: &Bytes<'_>) {
    if let (Ok(delay), Ok(group)) = (b.u16(4), b.v6(8)) {
        let _ = write!(out, "max resp delay: {delay} addr: {group}");
    }
}

/// The transport header (TCP or UDP) of the packet an ICMPv6 error quotes,
/// found as tcpdump finds it, through hop-by-hop, destination, routing, a
/// first fragment's and authentication headers: its protocol and where its
/// destination port's header starts. `None` for another protocol, a later
/// fragment, or a header not captured.
fn upper_layer(b: &Bytes<'_>) -> Option<(u8, usize)> {
    let b = |at| b.u8(at).ok();
    let u16 = |at| Some(u16::from_be_bytes([b(at)?, b(at + 1)?]));
    let mut next = b(QUOTED + 6)?;
    let (mut at, mut header) = (QUOTED, 40);
    // Each step moves at least 8 bytes on, and a header past the capture ends the walk.
    loop {
        at += header;
        match next {
            6 | 17 => {
                u16(at + 2)?;
                return Some((next, at));
            }
            0 | 43 | 60 => header = (usize::from(b(at + 1)?) + 1) * 8,
            44 => {
                if u16(at + 2)? & 0xfff8 != 0 {
                    return None;
                }
                header = 8;
            }
            51 => header = (usize::from(b(at + 1)?) + 2) * 4,
            _ => return None,
        }
        next = b(at)?;
    }
}
