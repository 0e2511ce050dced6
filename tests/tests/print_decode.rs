//! `ringwire capture`'s lines for ICMP and ICMPv6 messages, ARP, LLDP and
//! LLC frames, DNS, IGMP, spanning tree, IPv6 routing headers and IPsec,
//! whole and cut short by a snap length at every byte, against tcpdump's
//! lines and dumps of the same file.

use std::path::Path;

use etherparse::PacketBuilder;
use ringwire_tests::{cut_records, printed_as_tcpdump, write_frames};

/// What ringwire prints of `file` with each of `flag_sets`, all together,
/// each asserted to be what tcpdump prints.
fn printed_whole(file: &Path, flag_sets: &[&[&str]]) -> String {
    flag_sets.iter().map(|flags| printed_as_tcpdump(file, flags, "whole")).collect()
}

/// `file`'s records cut to each of `snaplens` (in a `cut.pcap` beside it):
/// printed with each of `flag_sets` as tcpdump prints them.
fn every_cut(file: &Path, snaplens: std::ops::RangeInclusive<usize>, flag_sets: &[&[&str]]) {
    let cut = file.with_file_name("cut.pcap");
    for snaplen in snaplens {
        cut_records(file, snaplen, &cut);
        for flags in flag_sets {
            printed_as_tcpdump(&cut, flags, &format!("-s {snaplen}"));
        }
    }
}

/// An Ethernet frame of `ethertype` from 02:00:00:00:00:01 to ...:02.
fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1][..], &ethertype.to_be_bytes(), payload].concat()
}

/// An IPv4 packet of `proto` (`flags`: the fragment bits and offset).
fn ipv4(proto: u8, flags: u16, (src, dst): ([u8; 4], [u8; 4]), payload: &[u8]) -> Vec<u8> {
    let (len, f) = ((20 + payload.len() as u16).to_be_bytes(), flags.to_be_bytes());
    [&[0x45, 0, len[0], len[1], 0, 1, f[0], f[1], 64, proto, 0, 0][..], &src, &dst, payload].concat()
}

/// 2001:db8::`i`.
fn v6_addr(i: u8) -> Vec<u8> {
    [&[0x20, 0x01, 0x0d, 0xb8][..], &[0; 11], &[i]].concat()
}

/// An IPv6 packet from 2001:db8::`src` to 2001:db8::`dst`, its first header `next`.
fn ipv6(next: u8, (src, dst): (u8, u8), payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u16).to_be_bytes();
    [&[0x60, 0, 0, 0, len[0], len[1], next, 64][..], &v6_addr(src), &v6_addr(dst), payload].concat()
}

/// A UDP datagram from port 1234 to `dport` whose length field says `ulen`.
fn udp(dport: u16, payload: &[u8], ulen: usize) -> Vec<u8> {
    [&1234u16.to_be_bytes()[..], &dport.to_be_bytes(), &(ulen as u16).to_be_bytes(), &[0, 0], payload].concat()
}

/// A GRE header (`flags`, `proto`, the optional `fields`) and its payload.
fn gre(flags: u16, proto: u16, fields: &[u8], payload: &[u8]) -> Vec<u8> {
    [&flags.to_be_bytes()[..], &proto.to_be_bytes(), fields, payload].concat()
}

/// An MPLS label entry: its label, bottom of stack or not, ttl 64.
fn label(label: u32, bottom: bool) -> Vec<u8> {
    ((label << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes().to_vec()
}

/// A UDP datagram from `sport` to `dport`, its length field right.
fn udp_from(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    [&sport.to_be_bytes()[..], &dport.to_be_bytes(), &(8 + payload.len() as u16).to_be_bytes(), &[0, 0], payload]
        .concat()
}

/// A TCP segment with PSH and ACK from 10.0.0.1.`sport` to 10.0.0.2.`dport` carrying `data`.
fn tcp_segment(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(sport, dport, 1000, 502)
        .ack(2000)
        .psh()
        .write(&mut f, data)
        .unwrap();
    f
}

/// The longest of `frames`.
fn longest(frames: &[Vec<u8>]) -> usize {
    frames.iter().map(Vec::len).max().unwrap_or(0)
}

/// Every ICMP message type tcpdump names (each unreachable, redirect and
/// time-exceeded code, port unreachable for UDP, TCP and another protocol,
/// need-to-frag with and without an MTU, timestamps, router
/// advertisements of each entry size), unknown types; ICMPv6 errors of
/// every code (port unreachable for UDP, TCP, another protocol and behind
/// a hop-by-hop header), multicast listener messages, a redirect, mobile
/// IPv6 messages and unknown types, which tcpdump dumps.
fn icmp_messages() -> Vec<Vec<u8>> {
    let (a, b, c) = ([10, 0, 0, 1], [10, 0, 0, 2], [192, 168, 1, 9]);
    // The datagrams an error quotes.
    let (mut v4_udp, mut v4_tcp) = (Vec::new(), Vec::new());
    PacketBuilder::ipv4(b, c, 64).udp(40000, 53).write(&mut v4_udp, &[7; 8]).unwrap();
    PacketBuilder::ipv4(b, c, 64).tcp(40000, 80, 1, 1000).syn().write(&mut v4_tcp, &[]).unwrap();
    let v4 = |kind: u8, code: u8, rest: [u8; 4], body: &[u8]| {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4(a, b, 64)
            .icmpv4_raw(kind, code, rest)
            .write(&mut frame, body)
            .unwrap();
        frame
    };
    let mut frames: Vec<Vec<u8>> = (0..=16).map(|code| v4(3, code, [0; 4], &v4_udp[..28])).collect();
    let mut gre = v4_udp[..28].to_vec();
    gre[9] = 47;
    frames.extend([
        v4(3, 3, [0; 4], &v4_tcp[..28]),
        v4(3, 3, [0; 4], &gre),
        v4(3, 4, [0, 0, 5, 0xdc], &v4_udp[..28]),
        v4(8, 0, [0, 7, 0, 1], &[0x61; 56]),
        v4(0, 0, [0, 7, 0, 1], &[0x61; 56]),
    ]);
    frames.extend((0..=4).map(|code| v4(5, code, c, &v4_udp[..28])));
    frames.extend((0..=2).map(|code| v4(11, code, [0; 4], &v4_udp[..28])));
    frames.extend([
        v4(12, 0, [5, 0, 0, 0], &v4_udp[..28]),
        v4(12, 1, [0; 4], &v4_udp[..28]),
        v4(4, 0, [0; 4], &v4_udp[..28]),
        v4(13, 0, [0, 7, 0, 2], &[0, 0, 3, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0]),
        v4(14, 0, [0, 7, 0, 2], &[0, 0x38, 0xce, 0xfc, 0, 0x38, 0xce, 0xfd, 0, 0x38, 0xce, 0xfe]),
        v4(15, 0, [0, 7, 0, 2], &[]),
        v4(16, 0, [0, 7, 0, 2], &[]),
        v4(17, 0, [0, 7, 0, 2], &[0; 4]),
        v4(18, 0, [0, 7, 0, 2], &[255, 255, 255, 0]),
        v4(9, 0, [2, 2, 7, 8], &[&a[..], &[0, 0, 0, 5], &c, &[0, 0, 0, 1]].concat()),
        v4(9, 0, [1, 2, 0, 0x30], &[&a[..], &[0, 0, 0, 5]].concat()),
        v4(9, 0, [1, 3, 0x0e, 0x10], &[&a[..], &[0, 0, 0, 5]].concat()),
        v4(10, 0, [0; 4], &[]),
        v4(42, 0, [0; 4], &[]),
        v4(200, 1, [0; 4], b"xx"),
    ]);
    let (a6, b6) =
        ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let c6 = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let (mut v6_udp, mut v6_tcp) = (Vec::new(), Vec::new());
    PacketBuilder::ipv6(b6, c6, 64).udp(40000, 53).write(&mut v6_udp, &[7; 8]).unwrap();
    PacketBuilder::ipv6(b6, c6, 64).tcp(40000, 80, 1, 1000).syn().write(&mut v6_tcp, &[]).unwrap();
    // Another protocol (47), and UDP behind a hop-by-hop header, quoted.
    let mut v6_gre = v6_udp.clone();
    v6_gre[6] = 47;
    let mut v6_hbh = v6_udp[..40].to_vec();
    v6_hbh[6] = 0;
    v6_hbh.extend([17, 0, 1, 4, 0, 0, 0, 0]);
    v6_hbh.extend(&v6_udp[40..]);
    let v6 = |kind: u8, code: u8, rest: [u8; 4], body: &[u8]| {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(a6, b6, 255)
            .icmpv6_raw(kind, code, rest)
            .write(&mut frame, body)
            .unwrap();
        frame
    };
    frames.extend((0..=8).map(|code| v6(1, code, [0; 4], &v6_udp)));
    frames.extend([
        v6(1, 4, [0; 4], &v6_tcp),
        v6(1, 4, [0; 4], &v6_gre),
        v6(1, 4, [0; 4], &v6_hbh),
        v6(2, 0, 1280u32.to_be_bytes(), &v6_udp),
    ]);
    frames.extend((0..=2).map(|code| v6(3, code, [0; 4], &v6_udp)));
    frames.extend((0..=4).map(|code| v6(4, code, 40u32.to_be_bytes(), &v6_udp)));
    let group = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    frames.extend([
        v6(130, 0, [3, 0xe8, 0, 0], &[0; 16]),
        v6(130, 0, [3, 0xe8, 0, 0], &[&group[..], &[2, 125, 0, 1], &c6].concat()),
        v6(130, 0, [3, 0xe8, 0, 0], &[&group[..], &[2, 125, 0, 3], &c6].concat()),
        v6(130, 0, [3, 0xe8, 0, 0], &group[..12]),
        v6(131, 0, [0; 4], &group),
        v6(132, 0, [0; 4], &group),
        v6(137, 0, [0; 4], &[&a6[..], &c6].concat()),
        v6(141, 0, [0; 4], &[]),
        v6(142, 0, [0; 4], &[]),
        v6(144, 0, [0, 7, 0, 0], &[]),
        v6(145, 0, [0, 7, 0, 0], &[]),
        v6(146, 0, [0, 7, 0, 0], &[]),
        v6(147, 0, [0, 7, 0, 0], &[]),
        v6(200, 0, [0; 4], &[]),
        v6(0, 0, [0; 4], &[]),
        v6(151, 0, [0; 4], b"abcdefgh"),
        v6(255, 3, [0; 4], &[]),
    ]);
    frames
}

/// ICMP and ICMPv6 messages print as tcpdump prints them, whole and cut at
/// every byte from the IPv4 header's end to past the quoted datagram: the
/// same lines, the same dumps of what it does not decode, and with `-x`
/// and `-A` the same dumps (from the frame's first byte where tcpdump
/// gave up on a cut message).
#[test]
fn icmp_messages_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("icmp.pcap");
    let frames = icmp_messages();
    write_frames(&whole, &frames);
    let lines = printed_whole(&whole, &[&[][..], &["-e"], &["-q"], &["-x"], &["-X"], &["-A"]]);
    // (Not equal by printing nothing: what the messages carry is decoded.)
    for words in [
        "ICMP 192.168.1.9 udp port 53 unreachable, length 36",
        "ICMP 192.168.1.9 unreachable - need to frag (mtu 1500), length 36",
        "ICMP redirect 192.168.1.9 to host 192.168.1.9, length 36",
        "ICMP time exceeded in-transit, length 36",
        "ICMP router advertisement lifetime 30:00 2: {10.0.0.1 5} {192.168.1.9 1}, length 24",
        "ICMP6, destination unreachable, unreachable port, 2001:db8::9 udp port 53, length 64",
        "ICMP6, packet too big, mtu 1280, length 64",
        "ICMP6, unknown icmp6 type (151), length 16\n\t0x0000:  9700",
    ] {
        assert!(lines.contains(words), "{words}: {lines}");
    }
    every_cut(&whole, 34..=longest(&frames), &[&[][..], &["-e"], &["-x"], &["-A"]]);
}

/// ARP and LLDP frames cut short end as tcpdump ends them (`[|arp]`, then
/// the whole frame under `-x`; `LLDP, length N [|lldp]` for a TLV cut or
/// longer than the frame), and an LLC header cut short prints `[|llc]`
/// and a dump of what there is, whatever was asked.
#[test]
fn arp_lldp_and_llc_frames_cut_short_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let eth = |ethertype: u16, payload: &[u8]| [&[2u8; 6][..], &[3; 6], &ethertype.to_be_bytes(), payload].concat();
    let arp = |op: u8, target_mac: [u8; 6]| {
        [&[0, 1, 8, 0, 6, 4, 0, op][..], &[3; 6], &[10, 0, 0, 1], &target_mac, &[10, 0, 0, 2]].concat()
    };
    let lldp_tlvs = [&[2, 7, 4][..], &[5; 6], &[4, 3, 5, b'a', b'b', 6, 2, 0, 120, 0, 0], &[0; 24]].concat();
    let frames = [
        eth(0x0806, &arp(1, [0; 6])),
        eth(0x0806, &arp(2, [4; 6])),
        // A tagged request.
        [&[2u8; 6][..], &[3; 6], &[0x81, 0, 0, 10, 8, 6], &arp(1, [0; 6])].concat(),
        eth(0x88cc, &lldp_tlvs),
        // A TLV that says it is longer than the frame.
        eth(0x88cc, &[&[2, 7, 4][..], &[5; 6], &[4, 0x53, 5, b'a', b'b']].concat()),
        eth(0x88b5, &b"hello world".repeat(4)),
    ];
    let file = dir.path().join("misc.pcap");
    write_frames(&file, &frames);
    let whole = printed_as_tcpdump(&file, &[], "whole");
    assert!(whole.contains("ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"), "{whole}");
    assert!(whole.contains("LLDP, length 14 [|lldp]"), "a TLV longer than the frame: {whole}");
    every_cut(&file, 14..=64, &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
    // An 802.3 frame whose LLC header (3 bytes) is cut: spanning tree's SAPs.
    let llc = [&[1, 0x80, 0xc2, 0, 0, 0][..], &[3; 6], &38u16.to_be_bytes(), &[0x42, 0x42, 3], &[0; 35]].concat();
    write_frames(&file, &[llc]);
    let cut_file = dir.path().join("cut.pcap");
    for snaplen in 14..=16 {
        cut_records(&file, snaplen, &cut_file);
        for flags in [&[][..], &["-e"], &["-q"], &["-x"], &["-xx"], &["-A"]] {
            let printed = printed_as_tcpdump(&cut_file, flags, &format!("-s {snaplen}"));
            assert!(printed.contains(" [|llc]"), "{printed}");
        }
    }
}

/// Spanning-tree BPDUs (802.1D config and topology change, 802.1w, 802.1s,
/// an unknown version, protocol and type, group and response SAPs), which
/// every switch port sends every 2 s, print as tcpdump prints them, with
/// their LLC header under `-e`, whole and cut at every byte.
#[test]
fn spanning_tree_bpdus_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let frame = |saps: [u8; 2], bpdu: &[u8]| {
        let mut payload = [&saps[..], &[3], bpdu].concat();
        payload.resize(payload.len().max(43), 0);
        [&[1, 0x80, 0xc2, 0, 0, 0][..], &[3; 6], &(payload.len() as u16).to_be_bytes(), &payload].concat()
    };
    // Protocol, version, type, flags; root id, path cost, bridge id, port id; the four timers.
    let config = |version: u8, kind: u8, flags: u8| {
        [
            &[0, 0, version, kind, flags][..],
            &[0x80, 0, 2, 3, 4, 5, 6, 7],
            &4u32.to_be_bytes(),
            &[0x80, 0, 2, 3, 4, 5, 6, 8],
            &[0x80, 1, 0, 0, 0x14, 0, 2, 0, 0x0f, 0],
        ]
        .concat()
    };
    // An MST BPDU: v1 length 0, a v3 length of 64 (no MSTI), its configuration and CIST parts.
    let mstp = [
        &config(3, 2, 0x7c)[..],
        &[0, 0, 64, 0],
        b"region",
        &[0; 26],
        &[0, 1],
        &[0x11; 16],
        &[0, 0, 0, 0],
        &[0x80, 0, 2, 3, 4, 5, 6, 8],
        &[20],
    ]
    .concat();
    let frames = [
        frame([0x42, 0x42], &config(0, 0, 0x01)),
        frame([0x42, 0x42], &[&config(2, 2, 0x3c)[..], &[0]].concat()),
        frame([0x42, 0x42], &[0, 0, 0, 0x80]),
        frame([0x42, 0x42], &mstp),
        frame([0x42, 0x42], &[0, 0, 7, 0]),
        frame([0x42, 0x42], &[0, 1, 0, 0]),
        frame([0x42, 0x42], &[0, 0, 0, 5]),
        frame([0x43, 0x43], &config(0, 0, 0x81)),
    ];
    let file = dir.path().join("stp.pcap");
    write_frames(&file, &frames);
    let whole = printed_as_tcpdump(&file, &["-e"], "whole");
    for words in [
        "LLC, dsap STP (0x42) Individual, ssap STP (0x42) Command, ctrl 0x03: STP 802.1d, Config, Flags [Topology change], bridge-id 8000.02:03:04:05:06:08.8001, length 40",
        "STP 802.1w, Rapid STP, Flags [Learn, Forward], bridge-id 8000.02:03:04:05:06:08.8001, length 40",
        "STP 802.1s, Rapid STP, CIST Flags [Learn, Forward, Agreement], length 102",
        "dsap STP (0x42) Group, ssap STP (0x42) Response",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 14..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// DNS messages over UDP (port 53, either end; IPv4 and IPv6; multicast
/// DNS on 5353): queries
/// with their flags, counts and questions, responses with their rcode
/// (extended by an OPT record), flags, counts and answers of every type
/// tcpdump shows (A, AAAA, CNAME, PTR, MX, TXT, SRV, A6, URI, UNSPECA, an
/// OPT record's EDNS options), compression pointers, bit labels, names too
/// long, bad pointers and label types; whole and cut at every byte, with
/// `-q` (`UDP, length N`), `-e`, `-x` and `-A` as tcpdump prints them.
#[test]
fn dns_messages_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dns_frames();
    let file = dir.path().join("dns.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
    for words in [
        "40000 > 10.0.0.2.53: 4660+ A? example.com. (29)",
        "4660+ [1au] AAAA? example.com. (40)",
        "4660 2/0/1 CNAME example.com., A 1.2.3.4 (85)",
        "99 NXDomain 0/1/0",
        "5* 3/0/0 TXT \"hello\" \"world ^A\", MX mail.example.com. 10, AAAA 1:203:405:607:809:a0b:c0d:e0f",
        "SRV sip.example.com.:5060 10 20",
        "OPT UDPsize=1232 DO [PADDING (4),COOKIE 0202020202020202]",
        "11Resp17 0/0/1",
        "fd00::2.53 > fd00::1.40001: 2 1/0/0 A 1.2.3.4",
        "IP 10.0.0.1.40000 > 10.0.0.2.53: UDP, length 29",
        "5353: 0 PTR (QU)? printer.local. (31)",
        "0*- [0q] 2/0/0 (Cache flush) A 10.0.0.9, AAAA :: (69)",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 42..=longest(&frames), &[&[][..], &["-e"], &["-x"], &["-A"]]);
}

/// The frames of [`dns_messages_print_as_tcpdump_prints_them`].
fn dns_frames() -> Vec<Vec<u8>> {
    let header = |id: u16, flags: u16, [qd, an, ns, ar]: [u16; 4]| {
        [id, flags, qd, an, ns, ar].iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>()
    };
    let labels = |ls: &[&[u8]]| {
        let mut n: Vec<u8> = ls.iter().flat_map(|l| [&[l.len() as u8][..], l].concat()).collect();
        n.push(0);
        n
    };
    let name = |n: &str| labels(&n.split('.').filter(|l| !l.is_empty()).map(str::as_bytes).collect::<Vec<_>>());
    let question =
        |n: &str, kind: u16, class: u16| [name(n), kind.to_be_bytes().to_vec(), class.to_be_bytes().to_vec()].concat();
    let q = |n: &str, kind: u16| question(n, kind, 1);
    let rr = |owner: &[u8], kind: u16, class: u16, ttl: u32, data: &[u8]| {
        [owner, &kind.to_be_bytes(), &class.to_be_bytes(), &ttl.to_be_bytes(), &(data.len() as u16).to_be_bytes(), data]
            .concat()
    };
    let at = |offset: u8| [0xc0, offset];
    let opt = |options: &[(u16, &[u8])], flags: u32| {
        let data: Vec<u8> = options
            .iter()
            .flat_map(|(code, d)| [&code.to_be_bytes()[..], &(d.len() as u16).to_be_bytes(), d].concat())
            .collect();
        rr(&[0], 41, 1232, flags, &data)
    };
    let mut msgs: Vec<Vec<u8>> = vec![
        [header(0x1234, 0x0100, [1, 0, 0, 0]), q("example.com", 1)].concat(),
        [header(0x1234, 0x0100, [1, 0, 0, 1]), q("example.com", 28), opt(&[], 0)].concat(),
        [header(7, 0x0120, [1, 0, 0, 1]), q("example.com", 255), opt(&[(10, &[1; 8])], 0x8000)].concat(),
        [header(0x1234, 0x8180, [1, 1, 0, 0]), q("example.com", 1), rr(&at(12), 1, 1, 300, &[93, 184, 216, 34])]
            .concat(),
        [
            header(0x1234, 0x8180, [1, 2, 0, 1]),
            q("www.example.com", 1),
            rr(&at(12), 5, 1, 300, &name("example.com")),
            rr(&at(45), 1, 1, 300, &[1, 2, 3, 4]),
            opt(&[], 0),
        ]
        .concat(),
        [
            header(99, 0x8183, [1, 0, 1, 0]),
            q("nope.example.com", 1),
            rr(&at(17), 6, 1, 300, &[name("ns.example.com"), name("h.example.com"), vec![0; 20]].concat()),
        ]
        .concat(),
        [header(99, 0x8182, [1, 0, 0, 0]), q("x.com", 16)].concat(),
        [
            header(5, 0x8580, [1, 3, 0, 0]),
            q("example.com", 16),
            rr(&at(12), 16, 1, 300, b"\x05hello\x07world \x01"),
            rr(&at(12), 15, 1, 300, &[&10u16.to_be_bytes()[..], &name("mail.example.com")].concat()),
            rr(&at(12), 28, 1, 300, &(0..16).collect::<Vec<u8>>()),
        ]
        .concat(),
        [
            header(6, 0x8180, [1, 1, 0, 0]),
            q("_sip._tcp.example.com", 33),
            rr(&at(12), 33, 1, 300, &[&[0, 10, 0, 20, 0x13, 0xc4][..], &name("sip.example.com")].concat()),
        ]
        .concat(),
        [
            header(8, 0x8180, [1, 1, 0, 0]),
            q("4.3.2.1.in-addr.arpa", 12),
            rr(&at(12), 12, 1, 300, &name("host.example")),
        ]
        .concat(),
        [header(9, 0x0100, [2, 0, 0, 0]), q("a.com", 1), q("b.com", 28)].concat(),
        [
            header(10, 0x8180, [2, 2, 0, 0]),
            q("a.com", 1),
            q("b.com", 28),
            rr(&at(12), 1, 1, 300, &[1, 1, 1, 1]),
            rr(&at(23), 28, 1, 300, &[0; 16]),
        ]
        .concat(),
        [header(13, 0x0100, [1, 0, 0, 0]), question("chaos", 16, 3)].concat(),
        [header(14, 0x2800, [1, 0, 0, 0]), q("upd.com", 6)].concat(),
        [header(15, 0x0100, [1, 0, 0, 0])].concat(),
        [header(16, 0x0100, [0, 0, 0, 0])].concat(),
        vec![0, 0x11, 1],
        [header(17, 0x0100, [1, 0, 0, 0]), q("", 1)].concat(),
        [header(19, 0x8f80, [1, 0, 0, 0]), q("x.com", 1)].concat(),
        [header(20, 0x7bff, [1, 0, 0, 0]), q("x.com", 1)].concat(),
        // Odd names: text to escape, too long, a bit label, an unknown label
        // type and a reserved one, pointers forward and to themselves.
        [header(21, 0x0100, [1, 0, 0, 0]), labels(&[b"bad\x01n\xffe", b"com"]), vec![0, 1, 0, 1]].concat(),
        [header(22, 0x0100, [1, 0, 0, 0]), labels(&[&[b'a'; 63][..]; 5]), vec![0, 1, 0, 1]].concat(),
        [header(23, 0x0100, [1, 0, 0, 0]), b"\x41\x10\xab\xcd\x03com\x00\x00\x01\x00\x01".to_vec()].concat(),
        [header(24, 0x0100, [1, 0, 0, 0]), b"\x42\x03com\x00\x00\x01\x00\x01".to_vec()].concat(),
        [header(25, 0x0100, [1, 0, 0, 0]), b"\x83com\x00\x00\x01\x00\x01".to_vec()].concat(),
        [header(26, 0x0100, [1, 0, 0, 0]), b"\x03abc\xc0\x20\x00\x01\x00\x01".to_vec()].concat(),
        [header(27, 0x0100, [1, 0, 0, 0]), b"\xc0\x0c\x00\x01\x00\x01".to_vec()].concat(),
        [header(28, 0x8180, [1, 1, 0, 0]), q("x.com", 1), rr(&at(12), 5, 1, 300, b"\x03abc\xc0\x1d")].concat(),
        // A6 with a prefix, without, and a bad prefix length; URI and UNSPECA.
        [
            header(29, 0x8180, [1, 3, 0, 0]),
            q("x.com", 38),
            rr(&at(12), 38, 1, 300, &[&[0x40][..], &[0, 1, 2, 3, 4, 5, 6, 7], &name("pfx.x.com")].concat()),
            rr(&at(12), 38, 1, 300, &[&[0][..], &(0..16).collect::<Vec<u8>>()].concat()),
            rr(&at(12), 38, 1, 300, &[0x90]),
        ]
        .concat(),
        [
            header(30, 0x8180, [1, 2, 0, 0]),
            q("x.com", 256),
            rr(&at(12), 256, 1, 300, b"\x00\x01\x00\x02http://a/b"),
            rr(&at(12), 104, 1, 300, b"un\x7fspec"),
        ]
        .concat(),
        // EDNS options in an answer; an extended rcode; an inverse query.
        [header(31, 0x8180, [1, 1, 0, 0]), q("x.com", 1), opt(&[(12, &[0; 4]), (10, &[2; 8])], 0x8000)].concat(),
        [
            header(32, 0x8180, [1, 1, 0, 0]),
            q("x.com", 1),
            opt(
                &[
                    (8, &[0, 1, 24, 0, 192, 0, 2]),
                    (8, &[0, 2, 48, 0, 0x20, 1, 0x0d, 0xb8, 0, 1]),
                    (8, &[0, 1, 16, 0, 1, 2, 3]),
                    (11, &[0, 100]),
                    (9, &[0, 0, 14, 16]),
                    (14, &[0, 1, 0, 2]),
                    (5, &[8, 13, 99]),
                    (6, &[1, 2, 9]),
                    (7, &[1, 2]),
                    (3, b"ns1"),
                    (99, &[0xab]),
                    (13, b"\x03com\x00"),
                    (10, &[1; 12]),
                    (11, &[1]),
                ],
                0,
            ),
        ]
        .concat(),
        [header(11, 0x8181, [1, 0, 0, 1]), q("x.com", 1), rr(&[0], 41, 4096, 0x0100_0000, &[])].concat(),
        [header(12, 0x0900, [1, 1, 0, 0]), q("x.com", 1), rr(&at(12), 1, 1, 300, &[0; 4])].concat(),
        // Classes, a record with no question, records cut by their own lengths.
        [
            header(33, 0x8180, [1, 2, 0, 0]),
            q("x.com", 1),
            rr(&at(12), 1, 3, 300, &[9, 9, 9, 9]),
            rr(&at(12), 1, 77, 300, &[8, 8, 8, 8]),
        ]
        .concat(),
        [header(34, 0x8180, [0, 1, 0, 0]), rr(&name("y.com"), 1, 1, 300, &[7; 4])].concat(),
        [header(35, 0x8180, [1, 2, 0, 0]), q("x.com", 1), rr(&at(12), 1, 1, 300, &[1, 2, 3, 4]), vec![0xc0, 12, 0, 1]]
            .concat(),
        [header(36, 0x8180, [1, 1, 0, 0]), q("x.com", 1), rr(&at(12), 1, 1, 300, &[1, 2, 3])].concat(),
        [header(37, 0x8180, [1, 1, 0, 0]), q("x.com", 16), rr(&at(12), 16, 1, 300, b"\x00\x03\xe9\xfa\x01")].concat(),
    ];
    // Multicast DNS (port 5353): a class's top bit asks for a unicast response, or a cache flush.
    let mdns = [
        [header(0, 0, [1, 0, 0, 0]), question("printer.local", 12, 0x8001)].concat(),
        [header(0, 0, [1, 0, 0, 0]), question("x.local", 1, 3)].concat(),
        [
            header(0, 0x8400, [0, 2, 0, 0]),
            rr(&name("printer.local"), 1, 0x8001, 120, &[10, 0, 0, 9]),
            rr(&at(12), 28, 1, 120, &[0; 16]),
        ]
        .concat(),
    ];
    // The second message again, over IPv6, from the server.
    let v6 = [header(2, 0x8180, [1, 1, 0, 0]), q("x.com", 1), rr(&at(12), 1, 1, 300, &[1, 2, 3, 4])].concat();
    let mut frames: Vec<Vec<u8>> = msgs
        .drain(..)
        .enumerate()
        .map(|(i, m)| {
            let (ip, port) = ([10, 0, 0, 1], 40000 + i as u16);
            let mut f = Vec::new();
            let b = PacketBuilder::ethernet2([2; 6], [3; 6]);
            if i % 2 == 0 {
                b.ipv4(ip, [10, 0, 0, 2], 64).udp(port, 53).write(&mut f, &m).unwrap();
            } else {
                b.ipv4([10, 0, 0, 2], ip, 64).udp(53, port).write(&mut f, &m).unwrap();
            }
            f
        })
        .collect();
    let (a6, b6) =
        ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2; 6], [3; 6]).ipv6(b6, a6, 64).udp(53, 40001).write(&mut f, &v6).unwrap();
    frames.push(f);
    for m in mdns {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([10, 0, 0, 1], [224, 0, 0, 251], 255)
            .udp(5353, 5353)
            .write(&mut f, &m)
            .unwrap();
        frames.push(f);
    }
    frames
}

/// IGMP messages (queries of each version, reports, leaves, v3 reports,
/// odd lengths, an unknown type), in IPv4 packets with the router-alert
/// option, print as tcpdump prints them, whole and cut at every byte (an
/// IPv4 header cut within its options included: `[remaining caplen(N) <
/// header length(M)]`), with `-q` (`igmp`).
#[test]
fn igmp_messages_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let checksum = |b: &[u8]| {
        let mut sum: u32 = b.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    };
    let frame = |dst: [u8; 4], igmp: &[u8], options: &[u8]| {
        let ihl = 5 + options.len() / 4;
        let total = (ihl * 4 + igmp.len()) as u16;
        let mut ip = [
            &[0x40 | ihl as u8, 0xc0][..],
            &total.to_be_bytes(),
            &[0, 1, 0, 0, 1, 2, 0, 0],
            &[10, 0, 0, 1],
            &dst,
            options,
        ]
        .concat();
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        [&[1, 0, 0x5e, 0, 0, 0x16][..], &[3; 6], &[8, 0], &ip, igmp].concat()
    };
    let alert = [0x94, 4, 0, 0];
    let igmp = |kind: u8, code: u8, group: [u8; 4], rest: &[u8]| [&[kind, code, 0, 0][..], &group, rest].concat();
    let (g, none) = ([239, 1, 2, 3], [0; 4]);
    let frames = [
        frame([224, 0, 0, 1], &igmp(0x11, 100, none, &[]), &alert),
        frame([224, 0, 0, 1], &igmp(0x11, 0, none, &[]), &alert),
        frame([239, 1, 2, 3], &igmp(0x11, 50, g, &[]), &alert),
        frame([224, 0, 0, 1], &igmp(0x11, 100, none, &[2, 125, 0, 0]), &alert),
        frame([224, 0, 0, 1], &igmp(0x11, 200, g, &[2, 125, 0, 2, 10, 0, 0, 5, 10, 0, 0, 6]), &alert),
        frame([224, 0, 0, 1], &igmp(0x11, 0xff, g, &[2, 125, 0, 9]), &alert),
        frame([224, 0, 0, 1], &igmp(0x11, 10, g, &[2, 125, 0]), &alert),
        frame([239, 1, 2, 3], &igmp(0x12, 0, g, &[]), &alert),
        frame([239, 1, 2, 3], &igmp(0x16, 0, g, &[]), &alert),
        frame([224, 0, 0, 2], &igmp(0x17, 0, g, &[]), &alert),
        frame(
            [224, 0, 0, 22],
            &igmp(
                0x22,
                0,
                [0, 0, 0, 2],
                &[[&[4, 0, 0, 0][..], &g].concat(), [&[3, 0, 0, 0][..], &g].concat()].concat(),
            ),
            &alert,
        ),
        frame([224, 0, 0, 22], &igmp(0x22, 0, [0, 0, 0, 1], &[1, 0]), &alert),
        frame([224, 0, 0, 22], &igmp(0x40, 0, g, &[]), &alert),
        frame([239, 1, 2, 3], &igmp(0x16, 0, g, &[]), &[]),
    ];
    let file = dir.path().join("igmp.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    for words in [
        "IP 10.0.0.1 > 224.0.0.1: igmp query v3 [max resp time 5m7s] [gaddr 239.1.2.3, 2 source(s)]",
        "igmp v2 report 239.1.2.3",
        "igmp v3 report, 2 group record(s)",
        "IP 10.0.0.1 > 239.1.2.3: igmp\n",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 34..=longest(&frames), &[&[][..], &["-e"], &["-x"], &["-A"]]);
}

/// Headers tcpdump words in its own way, whole and cut at every byte, as
/// it prints them (also with `-e`, `-q`, `-x` and `-A`): a VLAN tag before
/// an ethertype not decoded (the line names the inner one), TCP options cut
/// at an option's kind or length (tcpdump gives up on the frame: `-x`
/// dumps from its first byte), IPv6 fragments (a first one with nothing
/// after its headers, a later one with bytes that look like a header),
/// IPv6's "no next header", protocols not decoded after extension headers,
/// an IPv6 payload length past the frame (`truncated-ip6`), ICMP in the
/// other IP version, a UDP datagram shorter than its header.
#[test]
fn odd_headers_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Vec<u8>> = ODD_HEADERS.iter().map(|h| ringwire_tests::from_hex(h)).collect();
    let file = dir.path().join("odd.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
    for words in [
        "02:02:02:02:02:02, ethertype Unknown (0x9999), length 62: ",
        "fd00::1 > fd00::2: frag (800|20)\n",
        "fd00::1 > fd00::2: DSTOPT no next header",
        "fd00::1 > fd00::2: DSTOPT  ip-proto-139 64",
        "IP6 truncated-ip6 - 100 bytes missing!fd00::1.1 > fd00::2.2: UDP, length 12",
        "10.0.0.1 > 10.0.0.2: [ICMPv6 requires IPv6] (invalid)",
        "10.0.0.1.1 > 10.0.0.2.2: truncated-udp 5",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 14..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// The frames of [`odd_headers_print_as_tcpdump_prints_them`], in hex.
const ODD_HEADERS: &[&str] = &[
    // VLAN 100, an ethertype not decoded.
    concat!(
        "02020202020203030303030381000064999968656c6c6f20776f726c6468656c6c6f20776f726c6468656c6c6f20776f",
        "726c6468656c6c6f20776f726c64",
    ),
    // VLAN 100, another.
    concat!(
        "0202020202020303030303038100006488b568656c6c6f20776f726c6468656c6c6f20776f726c6468656c6c6f20776f",
        "726c6468656c6c6f20776f726c64",
    ),
    // 802.1ad 10 over 802.1Q 100, an ethertype not decoded.
    concat!(
        "02020202020203030303030388a8000a81000064999968656c6c6f20776f726c6468656c6c6f20776f726c6468656c6c",
        "6f20776f726c6468656c6c6f20776f726c64",
    ),
    // VLAN 100, LLDP.
    concat!(
        "0202020202020303030303038100006488cc020704050505050505000000000000000000000000000000000000000000",
        "0000000000000000000000",
    ),
    // TCP SYN with mss, sackOK, TS, nop, wscale.
    concat!(
        "02020202020203030303030308004500003c00010000400666b90a0000010a000002afc81e61000003e800000000a002",
        "ffff00000000020405b40402080a000000640000000001030307",
    ),
    // TCP ACK with nop, nop, TS.
    concat!(
        "02020202020203030303030308004500003400010000400666c10a0000010a000002afc81e61000003e9000013898010",
        "ffff000000000101080a00000064000000c8",
    ),
    // TCP ACK with a SACK block.
    concat!(
        "02020202020203030303030308004500003400010000400666c10a0000010a000002afc81e61000003e9000013898010",
        "ffff000000000101050a000003e9000003f2",
    ),
    // TCP data with nop, nop, TS.
    concat!(
        "02020202020203030303030308004500004600010000400666af0a0000010a000002afc81e61000003e9000013898018",
        "ffff000000000101080a00000064000000c8474554202f20485454502f312e300d0a0d0a",
    ),
    // IPv6 first fragment of ICMPv6.
    concat!(
        "02020202020203030303030386dd6000000000382c40fd000000000000000000000000000001fd000000000000000000",
        "0000000000023a0000010000000780000000000700016161616161616161616161616161616161616161616161616161",
        "6161616161616161616161616161",
    ),
    // IPv6 first fragment of UDP.
    concat!(
        "02020202020203030303030386dd6000000000382c40fd000000000000000000000000000001fd000000000000000000",
        "000000000002110000010000000703e807d0003000006161616161616161616161616161616161616161616161616161",
        "6161616161616161616161616161",
    ),
    // IPv6 first fragment of TCP.
    concat!(
        "02020202020203030303030386dd6000000000442c40fd000000000000000000000000000001fd000000000000000000",
        "000000000002060000010000000700000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000",
    ),
    // IPv6 first fragment, DSTOPT after.
    concat!(
        "02020202020203030303030386dd6000000000382c40fd000000000000000000000000000001fd000000000000000000",
        "0000000000023c000001000000073a000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000",
    ),
    // IPv6 later fragment, offset 800.
    concat!(
        "02020202020203030303030386dd60000000001c2c40fd000000000000000000000000000001fd000000000000000000",
        "0000000000023c000320000000073a00000000000000000000000000000000000000",
    ),
    // IPv6 no next header.
    concat!(
        "02020202020203030303030386dd6000000000003b40fd000000000000000000000000000001fd000000000000000000",
        "000000000002",
    ),
    // IPv6 no next header, with bytes.
    concat!(
        "02020202020203030303030386dd6000000000043b40fd000000000000000000000000000001fd000000000000000000",
        "00000000000261626364",
    ),
    // IPv6 DSTOPT then no next header.
    concat!(
        "02020202020203030303030386dd6000000000083c40fd000000000000000000000000000001fd000000000000000000",
        "0000000000023b00000000000000",
    ),
    // IPv6 DSTOPT then protocol 139.
    concat!(
        "02020202020203030303030386dd6000000000483c40fd000000000000000000000000000001fd000000000000000000",
        "0000000000028b0000000000000078787878787878787878787878787878787878787878787878787878787878787878",
        "787878787878787878787878787878787878787878787878787878787878",
    ),
    // IPv6 HBH then protocol 139.
    concat!(
        "02020202020203030303030386dd6000000000480040fd000000000000000000000000000001fd000000000000000000",
        "0000000000028b0000000000000078787878787878787878787878787878787878787878787878787878787878787878",
        "787878787878787878787878787878787878787878787878787878787878",
    ),
    // IPv6 payload length 120 over 32 bytes.
    concat!(
        "02020202020203030303030386dd6000000000781140fd000000000000000000000000000001fd000000000000000000",
        "0000000000020001000200140000787878787878787878787878",
    ),
    // ICMPv6 in IPv4.
    "02020202020203030303030308004500001c00010000403a66a50a0000010a0000028000000000010001",
    // ICMP in IPv6.
    concat!(
        "02020202020203030303030386dd6000000000080140fd000000000000000000000000000001fd000000000000000000",
        "0000000000020800000000010001",
    ),
    // IPv4 UDP datagram of 5 bytes.
    "02020202020203030303030308004500001900010000401166d10a0000010a0000020001000200",
    // IPv4 protocol 139.
    concat!(
        "02020202020203030303030308004500002800010000408b66480a0000010a0000027878787878787878787878787878",
        "787878787878",
    ),
];

/// IPv6 routing headers (a source route, Mobile IPv6's type 2, SRv6's
/// segment routing header with flags and a tag, an unknown type, an odd
/// length), IPsec's AH (IPv4 and IPv6, before UDP, TCP, ICMP and a
/// protocol not decoded, a reserved field that is not zero) and ESP, and
/// DNS in the first fragment of a datagram (IPv4 and IPv6, whole or cut by
/// the fragment) print as tcpdump prints them, whole and cut at every byte.
/// They printed as if the headers were not there (`IP6 A.1234 > B.53`), or
/// as `ip-proto-50 40`, and a fragment's DNS message as `UDP, length N`.
#[test]
fn routing_headers_ipsec_and_fragmented_dns_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let addr = v6_addr;
    let v6 = |next: u8, payload: &[u8]| ether(0x86dd, &ipv6(next, (1, 2), payload));
    // (flags: the fragment bits and offset.)
    let v4 = |proto: u8, flags: u16, payload: &[u8]| {
        ether(0x0800, &ipv4(proto, flags, ([10, 0, 0, 1], [10, 0, 0, 2]), payload))
    };
    let tcp_syn = [&[0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 4, 0][..], &[0; 4]].concat();
    // A routing header of `kind` with `word` (reserved, or SRv6's last entry, flags and tag) and `addrs`.
    let rt = |next: u8, kind: u8, segleft: u8, word: [u8; 4], addrs: &[u8]| {
        let len = u8::try_from((addrs.len() + 8) / 8 - 1).unwrap();
        [&[next, len, kind, segleft][..], &word, addrs].concat()
    };
    let two = [addr(3), addr(4)].concat();
    let ah =
        |next: u8, reserved: u8| [&[next, 4, 0, reserved][..], &[0, 0, 0x12, 0x34, 0, 0, 0, 7], &[0x11; 12]].concat();
    let esp = [&[0, 0, 0xab, 0xcd, 0, 0, 0, 9][..], &[0x22; 32]].concat();
    let query = ringwire_tests::from_hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001");
    let first_fragment = [17, 0, 0, 1, 0, 0, 0, 1];
    let dns = udp(53, &query, 8 + query.len());
    let frames = [
        v6(43, &[rt(17, 0, 2, [0; 4], &two), udp(53, b"abcd", 12)].concat()),
        v6(43, &[rt(6, 0, 1, [0; 4], &addr(3)), tcp_syn.clone()].concat()),
        v6(43, &[rt(58, 2, 1, [0; 4], &addr(5)), vec![128, 0, 0, 0, 0, 1, 0, 1]].concat()),
        v6(43, &[rt(17, 4, 1, [1, 0x80, 0xab, 0xcd], &[addr(6), addr(7)].concat()), udp(5555, b"ab", 10)].concat()),
        v6(43, &[rt(17, 3, 0, [0; 4], &addr(8)), udp(53, b"abcd", 12)].concat()),
        v6(43, &[rt(17, 0, 2, [0, 0, 0, 5], &two), udp(5555, b"abcd", 12)].concat()),
        // An odd length (3): tcpdump reads no address.
        v6(43, &[&[17, 3, 4, 1, 1, 0, 0, 0][..], &addr(3), &[0; 8], &udp(5555, b"ab", 10)].concat()),
        // Hop-by-hop, routing, AH, UDP; routing then a fragment.
        v6(
            0,
            &[&[43, 0, 1, 4, 0, 0, 0, 0][..], &rt(51, 0, 1, [0; 4], &addr(3)), &ah(17, 0), &udp(5555, b"xy", 10)]
                .concat(),
        ),
        v6(43, &[rt(44, 0, 1, [0; 4], &addr(3)), [17, 0, 0, 0, 0, 0, 0, 1].to_vec(), udp(53, b"abcd", 12)].concat()),
        v6(51, &[ah(17, 0), udp(53, b"abcd", 12)].concat()),
        v6(51, &[ah(17, 5), udp(5555, b"abcd", 12)].concat()),
        v6(51, &[ah(6, 0), tcp_syn].concat()),
        v6(51, &[&ah(99, 0)[..], b"xxxxxxxx"].concat()),
        v4(51, 0, &[ah(17, 0), udp(53, b"abcd", 12)].concat()),
        v4(51, 0, &[&ah(1, 0)[..], &[8, 0, 0, 0, 0, 1, 0, 1], b"pingdata"].concat()),
        v6(50, &esp),
        v4(50, 0, &esp),
        // DNS in first fragments: the whole message, or its first 20 bytes.
        v6(44, &[&first_fragment[..], &udp(53, &query, 8 + query.len() + 100)].concat()),
        v6(44, &[&first_fragment[..], &udp(53, &query[..20], 8 + query.len())].concat()),
        v4(17, 0x2000, &udp(53, &query, 8 + query.len() + 100)),
        v4(17, 0x2000, &udp(53, &query[..20], 8 + query.len())),
        v4(17, 0x2000, &dns),
    ];
    let file = dir.path().join("ext.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    for words in [
        "2001:db8::1 > 2001:db8::2: RT6 (len=4, type=0 [Deprecated], segleft=2, [0]2001:db8::3, [1]2001:db8::4) 1234 > 53: domain",
        "RT6 (len=2, type=2, segleft=1, [0]2001:db8::5) ICMP6, echo request, id 1, seq 1, length 8",
        "RT6 (len=4, type=4, segleft=1, last-entry=1, flags=0x80, tag=abcd, [0]2001:db8::6, [1]2001:db8::7) 1234 > 5555: UDP, length 2",
        "RT6 (len=2, type=3, segleft=0 (unknown type) (invalid)\n",
        "RT6 (len=3, type=4, segleft=1, last-entry=1, tag=0 (invalid length 3) (invalid)\n",
        "HBH RT6 (len=2, type=0 [Deprecated], segleft=1, [0]2001:db8::3) AH(spi=0x00001234,seq=0x7,icv=0x111111111111111111111111): 1234 > 5555: UDP, length 2",
        "AH(reserved=0x5[MustBeZero],spi=0x00001234,",
        "IP 10.0.0.1 > 10.0.0.2: AH(spi=0x00001234,seq=0x7,icv=0x111111111111111111111111): ICMP echo request, id 1, seq 1, length 16",
        "AH(spi=0x00001234,seq=0x7,icv=0x111111111111111111111111):  ip-proto-99 8",
        "IP6 2001:db8::1 > 2001:db8::2: ESP(spi=0x0000abcd,seq=0x9), length 40",
        "IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x0000abcd,seq=0x9), length 40",
        "frag (0|41) 1234 > 53: 4660+ A? www.example.com. (33)",
        "frag (0|28) 1234 > 53: 4660+ [|domain]",
        "IP 10.0.0.1.1234 > 10.0.0.2.53: 4660+ A? www.example.com. (33)",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 34..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// Tunnels print as tcpdump prints them, whole and cut at every byte: IP in
/// IP (IPv4 and IPv6 in either; an inner header cut within its options),
/// GRE version 0 (checksum, key, sequence number, RFC 1701 source routes of
/// IPv4 addresses and of autonomous systems, an unknown protocol, an
/// unknown version) carrying IPv4, IPv6 and Ethernet (its link-level header
/// under `-e`), and PPTP's GRE version 1 (call, sequence and ack numbers)
/// carrying PPP frames of IPv4 and IPv6; MPLS label stacks (explicit null
/// labels, a payload told by its first byte, one dumped, none, a stack cut
/// short) on Ethernet, behind VLAN tags and in GRE; VXLAN (flags, ARP
/// inside, a header too short) and Geneve (flags, options, the reserved
/// byte, IPv6, MPLS and Ethernet inside, an unknown protocol or version,
/// options longer than the packet). They printed as `ip-proto-4 N`,
/// `ip-proto-41 N`, `ip-proto-47 N`, `UDP, length N` and a dump.
#[test]
fn tunnels_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let outer = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let inside = ([192, 168, 1, 1], [192, 168, 1, 2]);
    let v4 = |proto: u8, payload: &[u8]| ether(0x0800, &ipv4(proto, 0, outer, payload));
    let v6 = |next: u8, payload: &[u8]| ether(0x86dd, &ipv6(next, (1, 2), payload));
    let query = ringwire_tests::from_hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001");
    let inner4 = ipv4(17, 0, inside, &udp(53, &query, 8 + query.len()));
    let inner6 = ipv6(17, (0x11, 0x12), &udp(5555, b"hello", 13));
    let icmp = ipv4(1, 0, inside, b"\x08\0\0\0\0\x01\0\x01pingdata");
    let syn = [&[0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 4, 0][..], &[0; 4]].concat();
    // An IPv4 header of 24 bytes (an option), as a tunnel carries it.
    let with_option = {
        let plain = ipv4(17, 0, outer, &udp(5555, b"z", 9));
        [&[0x46][..], &plain[1..20], &[1, 1, 1, 0], &plain[20..]].concat()
    };
    // GRE's checksum and offset, then source route entries: of IPv4
    // addresses, of autonomous systems, of an unknown family, the last.
    let source_routes = [
        &[0, 0, 0, 0, 0x08, 0x00, 4, 8, 1, 1, 1, 1, 2, 2, 2, 2][..],
        &[0xff, 0xfe, 2, 4, 0, 1, 0, 2, 0x12, 0x34, 0, 2, b'x', b'x'],
        &[0, 0, 0, 0],
    ];
    let ppp_v4 = [&[0xff, 0x03, 0x00, 0x21][..], &inner4].concat();
    let pptp = |fields: &[u8], ppp: &[u8]| gre(0x3001, 0x880b, fields, ppp);
    // An MPLS label entry: its label, bottom of stack or not, ttl 64.
    let inner_frame = [&[10, 0, 0, 0, 0, 2, 10, 0, 0, 0, 0, 1, 8, 0][..], &inner4].concat();
    // An ARP request, in an Ethernet frame of its own.
    let arp = ringwire_tests::from_hex(concat!(
        "ffffffffffff0a0000000001080600010800060400010a0000000001c0a80101",
        "000000000000c0a80102"
    ));
    let frames = [
        v4(4, &inner4),
        v4(41, &inner6),
        v6(4, &inner4),
        v6(41, &inner6),
        v4(4, &icmp),
        v4(4, &ipv4(6, 0, inside, &syn)),
        v4(4, &with_option),
        v4(47, &gre(0, 0x0800, &[], &inner4)),
        v4(47, &gre(0x2000, 0x0800, &[0, 0, 0, 42], &inner4)),
        v4(47, &gre(0xb000, 0x86dd, &[0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 7], &inner6)),
        v4(47, &gre(0x4000, 0x0800, &source_routes.concat(), &inner4)),
        v4(47, &gre(0, 0x6558, &[], &[&[10, 0, 0, 0, 0, 2, 10, 0, 0, 0, 0, 1, 8, 0][..], &inner4].concat())),
        v6(47, &gre(0, 0x0800, &[], &inner4)),
        v4(47, &gre(0, 0x1234, &[], b"abcdefgh")),
        v4(47, &gre(2, 0x0800, &[], &inner4)),
        v4(47, &gre(0, 0x86dd, &[], &inner6[..30])),
        v4(47, &gre(0x3081, 0x880b, &[0, 0x41, 0, 5, 0, 0, 0, 3, 0, 0, 0, 2], &ppp_v4)),
        v4(47, &pptp(&[0, 0x3e, 0, 5, 0, 0, 0, 3], &[&[0x21][..], &inner4].concat())),
        v4(47, &pptp(&[0, 8, 0, 5, 0, 0, 0, 3], &[&[0xff, 0x03, 0x00, 0x57][..], &inner6].concat())),
        v4(47, &gre(0x2001, 0x880b, &[0, 0, 0, 5], &[])),
        ether(0x8847, &[label(0, true), inner4.clone()].concat()),
        ether(0x8847, &[label(2, true), inner6.clone()].concat()),
        ether(0x8847, &[label(100, false), label(3, true), inner4.clone()].concat()),
        ether(0x8847, &[&label(100, true)[..], b"\x20\x1b\x01\x00abcdefgh"].concat()),
        ether(0x8847, &label(100, true)),
        ether(0x8847, &[0, 6]),
        ether(0x8848, &[label(200, true), inner6.clone()].concat()),
        ether(0x8100, &[&[0, 10, 0x88, 0x47][..], &label(300, true), &inner4].concat()),
        v4(47, &gre(0, 0x8847, &[], &[label(16, true), inner4.clone()].concat())),
        v4(17, &udp_from(50000, 4789, &[&[8, 0, 0, 0, 0, 0, 100, 0][..], &inner_frame].concat())),
        v4(17, &udp_from(4789, 50000, &[&[0x0c, 0, 0, 0, 0, 1, 0, 0][..], &arp].concat())),
        v4(17, &udp_from(50000, 4789, &[0, 0, 0, 0, 0, 0, 7, 0])),
        v4(17, &udp_from(50000, 4789, &[8, 0, 0, 0])),
        v6(17, &udp_from(50000, 4789, &[&[8, 0, 0, 0, 0, 0, 100, 0][..], &inner_frame[..10]].concat())),
        v4(
            17,
            &udp_from(50000, 6081, &[&[2, 0xc0, 0x08, 0, 0, 0, 9, 5, 1, 2, 3, 4, 5, 6, 7, 8][..], &inner4].concat()),
        ),
        v4(17, &udp_from(50000, 6081, &[&[0, 0x40, 0x86, 0xdd, 0, 0, 9, 0][..], &inner6].concat())),
        v4(17, &udp_from(50000, 6081, &[&[0, 0, 0x65, 0x58, 0, 0, 100, 0][..], &inner_frame].concat())),
        v4(17, &udp_from(50000, 6081, &[&[0, 0, 0x88, 0x47, 0, 0, 1, 0][..], &label(16, true), &inner4].concat())),
        v4(17, &udp_from(50000, 6081, &[0x40, 0x80, 0x12, 0x34, 0, 0, 9, 0, b'a', b'b'])),
        v4(17, &udp_from(50000, 6081, &[10, 0, 0x65, 0x58, 0, 0, 9, 0, b'a', b'b'])),
        v4(17, &udp_from(50000, 6081, &[0, 0, 0x65, 0x58])),
    ];
    let file = dir.path().join("tunnels.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    for words in [
        "IP 10.0.0.1 > 10.0.0.2: IP 192.168.1.1.1234 > 192.168.1.2.53: 4660+ A? www.example.com. (33)",
        "IP 10.0.0.1 > 10.0.0.2: IP6 2001:db8::11.1234 > 2001:db8::12.5555: UDP, length 5",
        "IP6 2001:db8::1 > 2001:db8::2: IP 192.168.1.1.1234 > 192.168.1.2.53: ",
        "IP 10.0.0.1 > 10.0.0.2: GREv0, length 65: IP 192.168.1.1.1234 > 192.168.1.2.53: 4660+ A? www.example.com. (33)",
        "GREv0, key=0x2a, length 69: IP ",
        "GREv0, off 0x0, key=0x2a, seq 7, length 69: IP6 2001:db8::11.1234 > 2001:db8::12.5555: UDP, length 5",
        "GREv0, off 0x0, (rtaf=ip 1.1.1.1 *2.2.2.2), (rtaf=asn 1 *2), (rtaf=0x1234), length ",
        "GREv0, length 12: gre-proto-0x1234",
        "GREv2 ERROR: unknown-version",
        "GREv0, proto TEB (0x6558), length 79: 0a:00:00:00:00:01 > 0a:00:00:00:00:02, ethertype IPv4 (0x0800), length 75: 192.168.1.1.1234 > ",
        "GREv1, call 5, seq 3, ack 2, length 81: IP 192.168.1.1.1234 > 192.168.1.2.53: ",
        "GREv1, call 5, no-payload, length 8\n",
        "MPLS (label 100, tc 0, ttl 64) (label 3, tc 0, [S], ttl 64) IP 192.168.1.1.1234 > 192.168.1.2.53: ",
        "MPLS (label 2, tc 0, [S], ttl 64) IP6 2001:db8::11.1234 > 2001:db8::12.5555: UDP, length 5",
        "MPLS (invalid)",
        "GREv0, length 69: MPLS (label 16, tc 0, [S], ttl 64) IP 192.168.1.1.1234 > ",
        "IP 10.0.0.1.50000 > 10.0.0.2.4789: VXLAN, flags [I] (0x08), vni 100\nIP 192.168.1.1.1234 > 192.168.1.2.53: ",
        "VXLAN, flags [I] (0x0c), vni 256\nARP, Request who-has 192.168.1.2 tell 192.168.1.1, length 28",
        "Geneve, Flags [OC], vni 0x9, rsvd 0x5, options [8 bytes]: IP 192.168.1.1.1234 > ",
        "Geneve, Flags [none], vni 0x64: IP 192.168.1.1.1234 > ",
        "Geneve ERROR: unknown-version 1",
        "Geneve, Flags [none], vni 0x9 truncated-geneve - 38 bytes missing",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 34..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// Frames behind three or four VLAN tags (802.1Q, and 802.1ad outside)
/// print as tcpdump prints them, whole and cut at every byte: every tag
/// under `-e`, then what they carry (IPv4, IPv6, ARP, MPLS, an ethertype
/// not decoded, dumped). Past the second tag the line stopped, with a dump.
#[test]
fn frames_behind_any_number_of_vlan_tags_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let tag = |tpid: u16, vid: u16, pcp: u16| [tpid.to_be_bytes(), ((pcp << 13) | vid).to_be_bytes()].concat();
    let tagged = |tags: &[Vec<u8>], ethertype: u16, payload: &[u8]| {
        [&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1][..], &tags.concat(), &ethertype.to_be_bytes(), payload].concat()
    };
    let query = ringwire_tests::from_hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001");
    let inner4 = ipv4(17, 0, ([192, 168, 1, 1], [192, 168, 1, 2]), &udp(53, &query, 8 + query.len()));
    let inner6 = ipv6(17, (0x11, 0x12), &udp(5555, b"hello", 13));
    let arp =
        ringwire_tests::from_hex("0001080006040001 0a0000000001c0a80101000000000000c0a80102".replace(' ', "").as_str());
    let three = [tag(0x8100, 1, 0), tag(0x8100, 2, 0), tag(0x8100, 3, 0)];
    let frames = [
        tagged(&three, 0x0800, &inner4),
        tagged(&[tag(0x88a8, 10, 3), tag(0x8100, 20, 0), tag(0x8100, 30, 0)], 0x86dd, &inner6),
        tagged(&[&three[..], &[tag(0x8100, 4, 0)]].concat(), 0x0806, &arp),
        tagged(&three, 0x9999, b"hello world!"),
        tagged(&three, 0x8847, &[&[0, 0x06, 0x41, 0x40][..], &inner4].concat()),
    ];
    let file = dir.path().join("tags.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    for words in [
        "length 87: vlan 1, p 0, ethertype 802.1Q (0x8100), vlan 2, p 0, ethertype 802.1Q (0x8100), vlan 3, p 0, ethertype IPv4 (0x0800), 192.168.1.1.1234 > 192.168.1.2.53: 4660+ A? www.example.com. (33)",
        "vlan 10, p 3, ethertype 802.1Q (0x8100), vlan 20, p 0, ethertype 802.1Q (0x8100), vlan 30, p 0, ethertype IPv6 (0x86dd), 2001:db8::11.1234 > ",
        "vlan 4, p 0, ethertype ARP (0x0806), Request who-has 192.168.1.2 tell 192.168.1.1, length 28",
        "IP 192.168.1.1.1234 > 192.168.1.2.53: 4660+ A? www.example.com. (33)",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 14..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// Headers of another kind than what carries them names, and odd ones, as
/// tcpdump says them, whole and cut at every byte: an IPv6 packet behind the
/// IPv4 ethertype, in IP in IP (4) or GRE (0x0800), an IPv4 one behind IPv6's
/// or in protocol 41, a version 5 header, an MPLS payload taken for IPv4 (they
/// printed the packet as its own version says it is); IPv4 headers cut within
/// their options (addresses but for TCP and UDP); VLAN tags of TPID 0x9200;
/// Geneve's reserved flags; a PPTP frame of a PPP protocol not decoded; IGMP
/// over IPv6; a VXLAN datagram shorter than its frame; spanning tree in
/// VXLAN.
#[test]
fn carriers_of_the_wrong_kind_and_odd_headers_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let ends = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let v4 = |proto: u8, payload: &[u8]| ether(0x0800, &ipv4(proto, 0, ends, payload));
    let inner4 = ipv4(17, 0, ([192, 168, 1, 1], [192, 168, 1, 2]), &udp(5555, b"hello", 13));
    let inner6 = ipv6(17, (0x11, 0x12), &udp(5555, b"hello", 13));
    let version5 = [&[0x55][..], &inner4[1..]].concat();
    // An IPv4 header with 8 bytes of options, of `proto`; `extra`: what its total length says past the frame.
    let with_options = |proto: u8, extra: u16| {
        let mut ip = ipv4(proto, 0, ends, &[b'x'; 20]);
        let total = u16::from_be_bytes([ip[2], ip[3]]) + 8 + extra;
        ip[0] = 0x47;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ether(0x0800, &[&ip[..20], &[1, 1, 1, 1, 1, 1, 1, 0], &ip[20..]].concat())
    };
    let tag = |tpid: u16, vid: u16| [tpid.to_be_bytes(), vid.to_be_bytes()].concat();
    let inner_frame = |ethertype: u16, payload: &[u8]| {
        [&[10, 0, 0, 0, 0, 2, 10, 0, 0, 0, 0, 1][..], &ethertype.to_be_bytes(), payload].concat()
    };
    let bpdu = [&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0][..], &[0x80, 0, 2, 0, 0, 0, 0, 1], &[0; 23]].concat();
    // An IPv4 header of `ihl` words whose total length says `total`, and `more` bytes of 1 after its first 20.
    let bad_len = |ihl: u8, total: u16, more: usize| {
        let mut ip = ipv4(17, 0, ends, &[]);
        ip[0] = 0x40 | ihl;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ether(0x0800, &[&ip[..20], &vec![1; more][..]].concat())
    };
    let mut short_vxlan =
        udp_from(50000, 4789, &[&[8, 0, 0, 0, 0, 0, 7, 0][..], &inner_frame(0x0800, &inner4)].concat());
    short_vxlan[4..6].copy_from_slice(&20u16.to_be_bytes());
    let frames = [
        ether(0x0800, &inner6),
        ether(0x0800, &version5),
        // (Long enough for an IPv6 header: tcpdump reads its 40 bytes before the version.)
        ether(0x86dd, &ipv4(17, 0, ends, &udp(5555, &[b'y'; 20], 28))),
        v4(4, &inner6),
        v4(41, &inner4),
        v4(47, &gre(0, 0x0800, &[], &inner6)),
        v4(47, &gre(0, 0x86dd, &[], &inner4)),
        ether(
            0x8847,
            &[&label(3, true)[..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]].concat(),
        ),
        with_options(17, 0),
        with_options(1, 0),
        with_options(99, 50),
        with_options(6, 50),
        ether(0x9100, &[&[0, 1][..], &tag(0x9200, 2), &tag(0x8100, 3), &0x86ddu16.to_be_bytes(), &inner6].concat()),
        ether(0x9200, &[&[0, 5, 0x08, 0][..], &inner4].concat()),
        v4(17, &udp_from(50000, 6081, &[&[0, 0x3f, 0x08, 0, 0, 0, 99, 0][..], &inner4].concat())),
        v4(
            47,
            &gre(0x3001, 0x880b, &[0, 12, 0, 85, 0, 0, 0, 3], &[&[0xff, 0x03, 0x12, 0x34][..], b"abcdefgh"].concat()),
        ),
        ether(0x86dd, &ipv6(2, (1, 2), &[0x16, 0, 0, 0, 239, 1, 2, 3])),
        v4(17, &short_vxlan),
        v4(
            17,
            &udp_from(50000, 4789, &[&[8, 0, 0, 0, 0, 0, 7, 0][..], &inner_frame(bpdu.len() as u16, &bpdu)].concat()),
        ),
        // A total length under the header's length, with the header (options
        // and all) captured or not, and more than the frame holds.
        bad_len(6, 20, 0),
        bad_len(6, 20, 26),
        bad_len(7, 20, 0),
        bad_len(6, 22, 0),
        bad_len(15, 40, 8),
        bad_len(5, 10, 26),
    ];
    let file = dir.path().join("carriers.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    for words in [
        "IP6, wrong link-layer encapsulation (invalid)",
        "IP5 (invalid)",
        "IP6 version error: 4 != 6",
        "IP 10.0.0.1 > 10.0.0.2: GREv0, length 57: IP6, wrong link-layer encapsulation (invalid)",
        "MPLS (label 3, tc 0, [S], ttl 64) IP0 (invalid)",
        "vlan 1, p 0, ethertype 802.1Q-9200 (0x9200), vlan 2, p 0, ethertype 802.1Q (0x8100), vlan 3, p 0, ethertype IPv6 (0x86dd), 2001:db8::11.1234 > ",
        "Geneve, Flags [R1R2R3R4R5R6], vni 0x63: IP 192.168.1.1.1234 > ",
        "GREv1, call 85, seq 3, length 24: unknown PPP protocol (0x1234) \n\t0x0000:  6162 6364 6566 6768\n",
        "[IGMP requires IPv4] (invalid)",
        "VXLAN, flags [I] (0x08), vni 7\n[length 4 < caplen ",
        "IP bad-len 20\n",
        "IP truncated-ip - 2 bytes missing! bad-len 22\n",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 14..=longest(&frames), &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
}

/// BOOTP/DHCP and NTP on their lines as tcpdump prints them (`BOOTP/DHCP,
/// Request from MAC, length N`, `NTPv4, Client, length 48`), in IPv4 and
/// IPv6, with the port tcpdump reads first where two protocols' ports meet
/// (DNS before BOOTP before NTP before VXLAN); cut at every byte. They
/// printed `UDP, length N`.
#[test]
fn dhcp_and_ntp_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let ends = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let v4 =
        |sport: u16, dport: u16, payload: &[u8]| ether(0x0800, &ipv4(17, 0, ends, &udp_from(sport, dport, payload)));
    let v6 =
        |sport: u16, dport: u16, payload: &[u8]| ether(0x86dd, &ipv6(17, (1, 2), &udp_from(sport, dport, payload)));
    // A BOOTP message: op, hardware type and length, a client address, then DHCP's magic cookie and options.
    let bootp = |op: u8, htype: u8, hlen: u8, options: &[u8]| {
        let mac = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
        let head = [op, htype, hlen, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x80, 0];
        [&head[..], &[0; 16], &mac, &[0; 10], &[0; 192], &[0x63, 0x82, 0x53, 0x63], options, &[0xff]].concat()
    };
    let ntp = |version: u8, mode: u8, len: usize| {
        [&[version << 3 | mode, 1, 2, 3][..], &vec![0; len.saturating_sub(4)]].concat()
    };
    let mut frames = vec![
        v4(68, 67, &bootp(1, 1, 6, &[53, 1, 1])),
        v4(67, 68, &bootp(2, 1, 6, &[53, 1, 2])),
        v4(67, 67, &bootp(3, 1, 6, &[])),
        v4(68, 67, &bootp(1, 6, 6, &[])),
        v4(68, 67, &bootp(1, 1, 8, &[])),
        v4(68, 67, &[]),
        v4(68, 67, &[1, 1, 6]),
        v6(546, 67, &bootp(1, 1, 6, &[])),
        v4(50000, 123, &ntp(4, 3, 12)),
        v4(50000, 123, &[]),
        v6(123, 123, &ntp(3, 4, 48)),
        v4(123, 4789, &ntp(4, 4, 48)),
        v4(123, 67, &ntp(4, 4, 48)),
        v4(123, 53, &ntp(4, 4, 48)),
    ];
    frames.extend((1..=4).flat_map(|v| (0..8).map(move |m| (v, m))).map(|(v, m)| v4(123, 123, &ntp(v, m, 48))));
    let file = dir.path().join("apps.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
    for words in [
        "IP 10.0.0.1.68 > 10.0.0.2.67: BOOTP/DHCP, Request from 0a:1b:2c:3d:4e:5f, length 244\n",
        "IP 10.0.0.1.67 > 10.0.0.2.68: BOOTP/DHCP, Reply, length 244\n",
        "BOOTP/DHCP, unknown (0x03), length 241\n",
        "IP 10.0.0.1.50000 > 10.0.0.2.123: NTPv4, Client, length 12\n",
        "NTPv2, Control Message, length 48\n",
        "IP 10.0.0.1.123 > 10.0.0.2.67: BOOTP/DHCP, unknown (0x24)",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 14..=longest(&frames), &[&[][..], &["-e"], &["-x"]]);
}

/// TCP data to or from port 80 or 8080 prints as tcpdump prints it: `HTTP`,
/// and `: ` and the first line when it begins with a request (a method,
/// any case) or a response (a 3-digit code as second token); a line the
/// data ends within, or a byte that is not printable ASCII, as tcpdump.
/// Cut at every byte. It printed nothing after `length N`. (Ports tcpdump
/// reads first, FTP's, BGP's, ..., are not read as HTTP: a unit test.)
#[test]
fn http_prints_as_tcpdump_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let long_token = [&[b'G'; 130][..], b" 200\r\n"].concat();
    let datas: [&[u8]; 14] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: y\r\n\r\nbody",
        b"get /lower HTTP/1.0\n",
        b"<html>continuation</html>",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r",
        b"GET / HTTP/1.1\rX",
        b"GET /\tx HTTP/1.1\r\n",
        b"GET /\x01 HTTP/1.1\r\n",
        b"HTTP/1.1\t200 OK\r\n",
        b"FOO 123 bar\r\n",
        b"\x80GET / HTTP/1.1\r\n",
        &long_token,
        b"GET  /  HTTP/1.1 \r\n",
    ];
    let mut frames: Vec<Vec<u8>> = datas.iter().map(|d| tcp_segment(40000, 80, d)).collect();
    frames.extend([tcp_segment(8080, 40001, datas[1]), tcp_segment(80, 443, datas[0])]);
    let file = dir.path().join("http.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"], &["-A"]]);
    for words in [
        "length 27: HTTP: GET / HTTP/1.1\n",
        "length 34: HTTP: HTTP/1.1 200 OK\n",
        "length 25: HTTP\n",
        "length 14: HTTP: GET / HTTP/1.1 [|http]\n",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    every_cut(&file, 54..=longest(&frames), &[&[][..], &["-x"], &["-A"]]);
}

/// SSH's version line (port 22) prints as tcpdump prints it: `: SSH:
/// SSH-2.0-...` when the data begins with `SSH-` and the line ends within it
/// in printable ASCII, nothing after `length N` otherwise. Cut at every byte.
#[test]
fn ssh_version_lines_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let datas: [&[u8]; 9] = [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        b"SSH-2.0-OpenSSH_9.2\n",
        b"SSH-2.0-x",
        b"SSH-2.0-x\rY",
        b"SSH-2.0-\tx\r\n",
        b"SS",
        b"XSH-2.0\r\n",
        b"\x00\x00\x01\x14\x0a",
        b"SSH-2.0-x\r\nmore",
    ];
    let mut frames: Vec<Vec<u8>> = datas.iter().map(|d| tcp_segment(50000, 22, d)).collect();
    frames.push(tcp_segment(22, 80, datas[0]));
    let file = dir.path().join("ssh.pcap");
    write_frames(&file, &frames);
    let whole = printed_whole(&file, &[&[][..], &["-e"], &["-q"], &["-x"]]);
    assert!(whole.contains("length 40: SSH: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n"), "{whole}");
    assert!(whole.contains("length 9\n"), "{whole}");
    every_cut(&file, 54..=longest(&frames), &[&[][..], &["-x"]]);
}
