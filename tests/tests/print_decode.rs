//! `ringwire capture`'s lines for ICMP and ICMPv6 messages, ARP, LLDP and
//! LLC frames, whole and cut short by a snap length at every byte, against
//! tcpdump's lines and dumps of the same file.

use std::{path::Path, process::Command, time::Duration};

use etherparse::PacketBuilder;

fn ringwire(args: &[&str]) -> std::process::Output {
    Command::new(ringwire_tests::bin("ringwire")).args(args).output().unwrap()
}

/// `frames` written to a pcap file at `path`, a second apart.
fn write(path: &Path, frames: &[Vec<u8>]) {
    ringwire_tests::write_pcap(
        path,
        frames.iter().enumerate().map(|(i, f)| (Duration::new(1_700_000_000 + i as u64, 0), f.as_slice())),
    );
}

/// What `ringwire capture -r FILE FLAGS` prints, which must be what
/// `tcpdump -r FILE FLAGS` prints, byte for byte.
fn printed_as_tcpdump(file: &Path, flags: &[&str], what: &str) -> String {
    let f = file.to_str().unwrap();
    let ours = ringwire(&[&["capture", "--workers", "0", "-nn", "-r", f][..], flags].concat());
    assert!(ours.status.success(), "{what}: {}", String::from_utf8_lossy(&ours.stderr));
    let theirs = Command::new("tcpdump").args(["-nn", "-r", f]).args(flags).output().unwrap();
    let (ours, theirs) = (String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap());
    assert_eq!(ours, theirs, "{what} {flags:?}");
    ours
}

/// `file`'s records cut to `snaplen` bytes, written to `out`.
fn cut(file: &Path, snaplen: usize, out: &Path) {
    let s = snaplen.to_string();
    let made = ringwire(&["capture", "-r", file.to_str().unwrap(), "-s", &s, "-w", out.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
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
    write(&whole, &frames);
    let mut lines = String::new();
    for flags in [&[][..], &["-e"], &["-q"], &["-x"], &["-X"], &["-A"]] {
        lines += &printed_as_tcpdump(&whole, flags, "whole");
    }
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
    let cut_file = dir.path().join("cut.pcap");
    let longest = frames.iter().map(Vec::len).max().unwrap();
    for snaplen in 34..=longest {
        cut(&whole, snaplen, &cut_file);
        for flags in [&[][..], &["-e"], &["-x"], &["-A"]] {
            printed_as_tcpdump(&cut_file, flags, &format!("-s {snaplen}"));
        }
    }
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
    let (file, cut_file) = (dir.path().join("misc.pcap"), dir.path().join("cut.pcap"));
    write(&file, &frames);
    let whole = printed_as_tcpdump(&file, &[], "whole");
    assert!(whole.contains("ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"), "{whole}");
    assert!(whole.contains("LLDP, length 14 [|lldp]"), "a TLV longer than the frame: {whole}");
    for snaplen in 14..=64 {
        cut(&file, snaplen, &cut_file);
        for flags in [&[][..], &["-e"], &["-q"], &["-x"], &["-A"]] {
            printed_as_tcpdump(&cut_file, flags, &format!("-s {snaplen}"));
        }
    }
    // An 802.3 frame whose LLC header (3 bytes) is cut: spanning tree's SAPs.
    let llc = [&[1, 0x80, 0xc2, 0, 0, 0][..], &[3; 6], &38u16.to_be_bytes(), &[0x42, 0x42, 3], &[0; 35]].concat();
    write(&file, &[llc]);
    for snaplen in 14..=16 {
        cut(&file, snaplen, &cut_file);
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
    let (file, cut_file) = (dir.path().join("stp.pcap"), dir.path().join("cut.pcap"));
    write(&file, &frames);
    let whole = printed_as_tcpdump(&file, &["-e"], "whole");
    for words in [
        "LLC, dsap STP (0x42) Individual, ssap STP (0x42) Command, ctrl 0x03: STP 802.1d, Config, Flags [Topology change], bridge-id 8000.02:03:04:05:06:08.8001, length 40",
        "STP 802.1w, Rapid STP, Flags [Learn, Forward], bridge-id 8000.02:03:04:05:06:08.8001, length 40",
        "STP 802.1s, Rapid STP, CIST Flags [Learn, Forward, Agreement], length 102",
        "dsap STP (0x42) Group, ssap STP (0x42) Response",
    ] {
        assert!(whole.contains(words), "{words}: {whole}");
    }
    let longest = frames.iter().map(Vec::len).max().unwrap();
    for snaplen in 14..=longest {
        cut(&file, snaplen, &cut_file);
        for flags in [&[][..], &["-e"], &["-q"], &["-x"], &["-A"]] {
            printed_as_tcpdump(&cut_file, flags, &format!("-s {snaplen}"));
        }
    }
}
