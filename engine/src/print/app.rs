//! Which protocol tcpdump reads a UDP datagram as, by its ports (the order
//! of its `udp_print`, first match wins), and the two it prints on its line
//! (no `-v`) that are not DNS or a tunnel: BOOTP/DHCP and NTP. A snap
//! length that cut a field tcpdump reads ends the line with ` [|bootp]` or
//! ` [|ntp]`, and tcpdump gives up on the frame.

use std::fmt::Write as _;

use super::{Bytes, Cut};

/// What a UDP datagram is to tcpdump's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UdpApp {
    /// DNS (`true`: multicast DNS, port 5353).
    Dns(bool),
    /// BOOTP/DHCP (ports 67, 68).
    Bootp,
    /// NTP (port 123).
    Ntp,
    /// VXLAN (4789).
    Vxlan,
    /// Geneve (6081).
    Geneve,
    /// Anything else, or a protocol tcpdump decodes there and ringwire
    /// does not (`UDP, length N`).
    Other,
}

/// The protocol of a datagram between ports `a` and `b`, as tcpdump 4.99's
/// `udp_print` picks it: the first of its port tests either port passes
/// (a few test the destination port only).
/// Ports of protocols ringwire does not decode are in the list too, so a
/// datagram tcpdump reads as one of those is not read as a later one here.
pub(super) fn udp_app(sport: u16, dport: u16) -> UdpApp {
    let either = |ports: &[u16]| ports.contains(&sport) || ports.contains(&dport);
    // (timed, TFTP, RIP, AODV, ISAKMP and its NAT-T and user ports, SNMP
    // and its traps: each tested before NTP.)
    const BEFORE_BOOTP: &[u16] = &[525, 69];
    const BEFORE_NTP: &[u16] = &[520, 654, 500, 4500, 7500, 8500, 161, 162];
    // (Kerberos, L2TP, Zephyr, RIPng, DHCPv6, AHCP, Babel, HNCP,
    // Cisco auto-RP, RADIUS, lwres, LDP, OLSR, MPLS LSP ping, LMP, VQP,
    // sFlow, LWAPP, SIP, syslog, OTV; then, by destination port only, VAT,
    // whiteboard, HSRP and BFD; and AFS's RX ports 7000-7009.)
    const BEFORE_TUNNELS: &[u16] = &[
        88, 750, 1701, 2103, 2104, 521, 546, 547, 5359, 6696, 6697, 8231, 496, 1645, 1812, 1646, 1813, 1700, 3799, 921,
        646, 698, 3503, 701, 1589, 6343, 12222, 12223, 5060, 514, 8472,
    ];
    if either(&[53]) {
        UdpApp::Dns(false)
    } else if either(&[5353]) {
        UdpApp::Dns(true)
    } else if either(BEFORE_BOOTP) {
        UdpApp::Other
    } else if either(&[67, 68]) {
        UdpApp::Bootp
    } else if either(BEFORE_NTP) {
        UdpApp::Other
    } else if either(&[123]) {
        UdpApp::Ntp
    } else if either(BEFORE_TUNNELS)
        || [sport, dport].iter().any(|p| (7000..=7009).contains(p))
        || [3456, 4567, 1985, 3784, 3785].contains(&dport)
    {
        UdpApp::Other
    } else if either(&[4789]) {
        UdpApp::Vxlan
    } else if either(&[6081]) {
        UdpApp::Geneve
    } else {
        UdpApp::Other
    }
}

/// What a TCP segment's data is to tcpdump's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TcpApp {
    /// HTTP (ports 80, 8080).
    Http,
    /// SSH (port 22): its version line.
    Ssh,
    /// Anything else, or a protocol tcpdump decodes there and ringwire does not.
    Other,
}

/// The protocol of a TCP segment between ports `a` and `b`, as tcpdump
/// 4.99's `tcp_print` picks it (first match wins; telnet, SMTP, whois, BGP,
/// PPTP and Redis are tested before SSH; BEEP, OpenFlow and FTP after it,
/// before HTTP).
pub(super) fn tcp_app(a: u16, b: u16) -> TcpApp {
    let either = |ports: &[u16]| ports.contains(&a) || ports.contains(&b);
    if either(&[23, 25, 43, 179, 1723, 6379]) {
        TcpApp::Other
    } else if either(&[22]) {
        TcpApp::Ssh
    } else if either(&[10288, 6633, 6653, 21]) {
        TcpApp::Other
    } else if either(&[80, 8080]) {
        TcpApp::Http
    } else {
        TcpApp::Other
    }
}

/// The methods (HTTP's and WebDAV's) that make a first token a request's,
/// as tcpdump lists them (matched without regard to case).
const HTTP_METHODS: &[&str] = &[
    "GET",
    "PUT",
    "COPY",
    "HEAD",
    "LOCK",
    "MOVE",
    "POLL",
    "POST",
    "BCOPY",
    "BMOVE",
    "MKCOL",
    "TRACE",
    "LABEL",
    "MERGE",
    "DELETE",
    "SEARCH",
    "UNLOCK",
    "REPORT",
    "UPDATE",
    "NOTIFY",
    "BDELETE",
    "CONNECT",
    "OPTIONS",
    "CHECKIN",
    "PROPFIND",
    "CHECKOUT",
    "CCM_POST",
    "SUBSCRIBE",
    "PROPPATCH",
    "BPROPFIND",
    "BPROPPATCH",
    "UNCHECKOUT",
    "MKACTIVITY",
    "MKWORKSPACE",
    "UNSUBSCRIBE",
    "RPC_CONNECT",
    "VERSION-CONTROL",
    "BASELINE-CONTROL",
];

/// HTTP data of `len` bytes on the wire, captured as `data`, as tcpdump's
/// line shows it: `HTTP`, and when the data begins with a request (a
/// method) or a response (a 3-digit code as second token), `: ` and its
/// first line.
pub(super) fn http(out: &mut String, data: &[u8], len: usize) -> Option<Cut> {
    let mut print_this = false;
    if let Some((method, at)) = token(data, 0, len) {
        print_this = HTTP_METHODS.iter().any(|m| m.as_bytes().eq_ignore_ascii_case(method));
        if let Some((code, _)) = token(data, at, len) {
            print_this |= code.len() == 3 && code.iter().all(u8::is_ascii_digit);
        }
    }
    out.push_str("HTTP");
    if print_this {
        return text_line(out, data, len, "http");
    }
    None
}

/// SSH data of `len` bytes on the wire, captured as `data`: its version
/// line (`: SSH: SSH-2.0-...`) when it begins with `SSH-` and the line ends
/// (LF or CR-LF) within the data in printable ASCII; nothing otherwise. A
/// snap length that cuts what tcpdump reads gives up on the frame.
pub(super) fn ssh(out: &mut String, data: &[u8], len: usize) -> Option<Cut> {
    for (at, &want) in b"SSH-".iter().enumerate() {
        match data.get(at) {
            None => return cut(out, "ssh"),
            Some(&c) if c != want => return None,
            Some(_) => {}
        }
    }
    let at = match line_end(data, 4, len, false) {
        Line::Ends(at) => at,
        Line::Open(_) | Line::Binary => return None,
        Line::Cut => return cut(out, "ssh"),
    };
    let _ = write!(out, ": SSH: {}", std::str::from_utf8(&data[..at]).unwrap_or_default());
    None
}

/// A token starting at `at` of `data` (`len` bytes on the wire) as tcpdump's
/// `fetch_token` reads it: printable ASCII up to a space, tab, CR or LF,
/// then the spaces after it; the token and where the next begins. `None`
/// if there is none, or it holds anything else, or is longer than
/// [`MAX_TOKEN`] bytes, or was cut by the snap length.
fn token(data: &[u8], mut at: usize, len: usize) -> Option<(&[u8], usize)> {
    let start = at;
    while at < len {
        let &c = data.get(at)?;
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            break;
        }
        if !(0x20..=0x7e).contains(&c) || at - start >= MAX_TOKEN {
            return None;
        }
        at += 1;
    }
    if at == start {
        return None;
    }
    let token = &data[start..at];
    // (A tab is not printable to tcpdump: it ends the spaces as any other byte does.)
    while at < len && data.get(at) == Some(&b' ') {
        at += 1;
    }
    Some((token, at))
}

/// The longest token tcpdump reads (its `MAX_TOKEN`).
const MAX_TOKEN: usize = 128;

/// The first line of `data` (`len` bytes on the wire) after `: `, as
/// tcpdump's `print_txt_line`: up to LF or CR-LF, printable ASCII and tabs
/// only (else nothing is printed); data that ends within the line prints
/// what there is and ` [|PROTOCOL]`; a snap length that cuts it gives up on
/// the frame.
fn text_line(out: &mut String, data: &[u8], len: usize, protocol: &str) -> Option<Cut> {
    let (at, open) = match line_end(data, 0, len, true) {
        Line::Ends(at) => (at, false),
        Line::Open(at) => (at, true),
        Line::Binary => return None,
        Line::Cut => return cut(out, protocol),
    };
    out.push_str(": ");
    out.push_str(std::str::from_utf8(&data[..at]).unwrap_or_default());
    if open {
        let _ = write!(out, " [|{protocol}]");
    }
    None
}

/// Where the text line of `data` (`len` bytes on the wire) that goes on
/// from `at` ends, as tcpdump scans it.
enum Line {
    /// At this LF, or CR-LF.
    Ends(usize),
    /// It goes on to the end of the data (here).
    Open(usize),
    /// A byte that is not printable ASCII (tabs too, unless taken), or a CR
    /// without its LF: not text, and not printed.
    Binary,
    /// Cut by the snap length: tcpdump gives up on the frame.
    Cut,
}

fn line_end(data: &[u8], mut at: usize, len: usize, tabs: bool) -> Line {
    while at < len {
        let Some(&c) = data.get(at) else { return Line::Cut };
        match c {
            b'\n' => return Line::Ends(at),
            b'\r' if at + 1 >= len => return Line::Binary,
            b'\r' => {
                return match data.get(at + 1) {
                    None => Line::Cut,
                    Some(b'\n') => Line::Ends(at),
                    Some(_) => Line::Binary,
                }
            }
            b'\t' if tabs => at += 1,
            c if !(0x20..=0x7e).contains(&c) => return Line::Binary,
            _ => at += 1,
        }
    }
    Line::Open(at)
}

/// A BOOTP or DHCP message of `len` bytes (the UDP payload on the wire),
/// captured as `msg`: `BOOTP/DHCP, Request from MAC, length N` (the
/// client's hardware address on an Ethernet request), `Reply`, or
/// `unknown (0xNN)`.
pub(super) fn bootp(out: &mut String, msg: &[u8], len: usize) -> Option<Cut> {
    let b = Bytes(msg);
    let read = |out: &mut String| -> Result<(), Cut> {
        let op = b.u8(0)?;
        let _ = match op {
            1 => write!(out, "BOOTP/DHCP, Request"),
            2 => write!(out, "BOOTP/DHCP, Reply"),
            op => write!(out, "BOOTP/DHCP, unknown (0x{op:02x})"),
        };
        if (b.u8(1)?, b.u8(2)?, op) == (1, 6, 1) {
            let _ = write!(out, " from {}", crate::stats::format_mac(b.get::<6>(28)?));
        }
        let _ = write!(out, ", length {len}");
        Ok(())
    };
    read(out).err().and_then(|_| cut(out, "bootp"))
}

/// An NTP message of `len` bytes captured as `msg`: `NTPv4, Client, length 48`.
pub(super) fn ntp(out: &mut String, msg: &[u8], len: usize) -> Option<Cut> {
    let Ok(status) = Bytes(msg).u8(0) else { return cut(out, "ntp") };
    let mode = match status & 7 {
        0 => "unspecified",
        1 => "symmetric active",
        2 => "symmetric passive",
        3 => "Client",
        4 => "Server",
        5 => "Broadcast",
        6 => "Control Message",
        _ => "Reserved",
    };
    let _ = write!(out, "NTPv{}, {mode}, length {len}", (status >> 3) & 7);
    None
}

/// A field past what was captured: tcpdump ends the line and gives up on the frame.
fn cut(out: &mut String, protocol: &str) -> Option<Cut> {
    let _ = write!(out, " [|{protocol}]");
    Some(Cut::Frame)
}

#[cfg(test)]
mod tests {
    use super::{tcp_app, udp_app, TcpApp, UdpApp};

    /// The first of tcpdump 4.99.3's port tests that either port passes
    /// picks the protocol (each pair checked against its lines).
    #[test]
    fn the_first_port_tcpdump_tests_picks_the_protocol() {
        for ((a, b), app) in [
            ((53, 67), UdpApp::Dns(false)),
            ((5353, 123), UdpApp::Dns(true)),
            ((69, 67), UdpApp::Other),
            ((525, 68), UdpApp::Other),
            ((67, 123), UdpApp::Bootp),
            ((161, 123), UdpApp::Other),
            ((520, 123), UdpApp::Other),
            ((123, 4789), UdpApp::Ntp),
            ((514, 4789), UdpApp::Other),
            ((7005, 4789), UdpApp::Other),
            ((137, 4789), UdpApp::Vxlan),
            ((4789, 3456), UdpApp::Other),
            ((3456, 4789), UdpApp::Vxlan),
            ((50000, 6081), UdpApp::Geneve),
            ((546, 6081), UdpApp::Other),
            ((50000, 50001), UdpApp::Other),
        ] {
            assert_eq!(udp_app(a, b), app, "{a} > {b}");
        }
        // TCP: FTP, BGP, Redis, BEEP, OpenFlow, SMTP, ... before HTTP (each checked against tcpdump's lines).
        for ((a, b), app) in [
            ((40000, 80), TcpApp::Http),
            ((8080, 40000), TcpApp::Http),
            ((21, 80), TcpApp::Other),
            ((80, 179), TcpApp::Other),
            ((6379, 8080), TcpApp::Other),
            ((10288, 80), TcpApp::Other),
            ((6653, 80), TcpApp::Other),
            ((25, 80), TcpApp::Other),
            ((445, 80), TcpApp::Http),
            ((554, 80), TcpApp::Http),
            ((3128, 40000), TcpApp::Other),
            ((50000, 22), TcpApp::Ssh),
            ((22, 80), TcpApp::Ssh),
            ((22, 23), TcpApp::Other),
            ((22, 6379), TcpApp::Other),
            ((22, 21), TcpApp::Ssh),
        ] {
            assert_eq!(tcp_app(a, b), app, "{a} > {b}");
        }
    }
}
