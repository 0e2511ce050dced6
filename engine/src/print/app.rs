//! Which protocol tcpdump reads a UDP datagram as, by its ports (the order
//! of its `udp_print`, first match wins), and the two it prints on its line
//! (no `-v`) that are not DNS or a tunnel: BOOTP/DHCP and NTP. A snap
//! length that cut a field tcpdump reads ends the line with ` [|bootp]` or
//! ` [|ntp]`, and tcpdump gives up on the frame.

use std::fmt::Write as _;

use super::Cut;

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
/// `udp_print` picks it: the first of its port tests either port passes.
/// Ports of protocols ringwire does not decode are in the list too, so a
/// datagram tcpdump reads as one of those is not read as a later one here.
pub(super) fn udp_app(a: u16, b: u16) -> UdpApp {
    let either = |ports: &[u16]| ports.contains(&a) || ports.contains(&b);
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
        || [a, b].iter().any(|p| (7000..=7009).contains(p))
        || [3456, 4567, 1985, 3784, 3785].contains(&b)
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

/// A BOOTP or DHCP message of `len` bytes (the UDP payload on the wire),
/// captured as `msg`: `BOOTP/DHCP, Request from MAC, length N` (the
/// client's hardware address on an Ethernet request), `Reply`, or
/// `unknown (0xNN)`.
pub(super) fn bootp(out: &mut String, msg: &[u8], len: usize) -> Option<Cut> {
    let Some(&op) = msg.first() else { return cut(out, "bootp") };
    let _ = match op {
        1 => write!(out, "BOOTP/DHCP, Request"),
        2 => write!(out, "BOOTP/DHCP, Reply"),
        op => write!(out, "BOOTP/DHCP, unknown (0x{op:02x})"),
    };
    let (Some(&htype), Some(&hlen)) = (msg.get(1), msg.get(2)) else { return cut(out, "bootp") };
    if htype == 1 && hlen == 6 && op == 1 {
        let Some(mac) = msg.get(28..34) else { return cut(out, "bootp") };
        let _ = write!(
            out,
            " from {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
    }
    let _ = write!(out, ", length {len}");
    None
}

/// An NTP message of `len` bytes captured as `msg`: `NTPv4, Client, length 48`.
pub(super) fn ntp(out: &mut String, msg: &[u8], len: usize) -> Option<Cut> {
    let Some(&status) = msg.first() else { return cut(out, "ntp") };
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
    use super::{udp_app, UdpApp};

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
    }
}
