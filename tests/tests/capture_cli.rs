//! `ringwire capture` from pcap files, and every bad input the engine must
//! refuse with a one-line error and a non-zero exit (no panic, no hang).
//! These need no root: they run everywhere.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use etherparse::PacketBuilder;
use ringwire_tests::{bin, read_pcap, Proc, Rec, ThreadSched};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_raw(proto: u8, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(
        payload.len() as u16,
        64,
        etherparse::IpNumber(proto),
        [10, 0, 0, 1],
        [10, 1, 0, 2],
    )
    .unwrap();
    h.more_fragments = flags_frag & 0x2000 != 0;
    h.fragment_offset = etherparse::IpFragOffset::try_new(flags_frag & 0x1fff).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A varied corpus: IPv4/IPv6, UDP/TCP/ICMP/ICMPv6, 802.1Q and QinQ, ARP,
/// fragments, an IPv6 extension header, GRE, LLDP, a runt, a snaplen-cut record.
fn corpus() -> Vec<(Vec<u8>, u32)> {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for (sport, dport) in [(1000u16, 53u16), (53, 1000), (1000, 2000), (40000, 443)] {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
            .udp(sport, dport)
            .write(&mut f, &[7u8; 30])
            .unwrap();
        frames.push(f);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .tcp(sport, dport, 9, 1000)
            .syn()
            .write(&mut f, &[1u8; 200])
            .unwrap();
        frames.push(f);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([192, 168, 1, 1], [10, 0, 0, 1], 64)
            .tcp(sport, dport, 1, 100)
            .ack(5)
            .write(&mut f, &[2u8; 900])
            .unwrap();
        frames.push(f);
    }
    for vid in [10u16, 20] {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(vid.try_into().unwrap())
            .ipv4([10, 0, 0, 3], [10, 0, 0, 4], 64)
            .udp(5000, 53)
            .write(&mut f, &[3u8; 40])
            .unwrap();
        frames.push(f);
    }
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(100.try_into().unwrap(), 200.try_into().unwrap())
        .ipv6([1; 16], [2; 16], 64)
        .udp(7, 9)
        .write(&mut f, &[4u8; 64])
        .unwrap();
    frames.push(f);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 9], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut f, &[5u8; 56])
        .unwrap();
    frames.push(f);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6([3; 16], [4; 16], 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut f, &[6u8; 56])
        .unwrap();
    frames.push(f);
    // ARP request (broadcast).
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    frames.push(eth([0xff; 6], 0x0806, &arp));
    // IPv4 fragments: first (MF) and a later one (offset 185).
    frames.push(eth(MAC_B, 0x0800, &ipv4_raw(17, 0x2000, &[8u8; 64])));
    frames.push(eth(MAC_B, 0x0800, &ipv4_raw(17, 185, &[9u8; 64])));
    // GRE (protocol 47) carrying nothing in particular.
    frames.push(eth(MAC_B, 0x0800, &ipv4_raw(47, 0, &[0, 0, 0x08, 0x00, 1, 2, 3, 4])));
    // IPv6 with a hop-by-hop header in front of UDP.
    let mut v6 = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
    v6.extend_from_slice(&[5; 16]);
    v6.extend_from_slice(&[6; 16]);
    v6.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // next = UDP, len 0, PadN
    v6.extend_from_slice(&[0x03, 0xe8, 0x00, 0x35, 0, 8, 0, 0]); // udp 1000 -> 53
    frames.push(eth(MAC_B, 0x86dd, &v6));
    // LLDP, an odd ethertype, and a runt.
    frames.push(eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[0u8; 46]));
    frames.push(eth(MAC_B, 0x1234, &[0xaa; 50]));
    frames.push(eth(MAC_B, 0x0800, &[0x45]));
    let mut out: Vec<(Vec<u8>, u32)> = frames.into_iter().map(|f| (f.clone(), f.len() as u32)).collect();
    // A record cut by a snaplen: 1400 bytes on the wire, 96 captured.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
        .udp(1000, 2000)
        .write(&mut big, &[0u8; 1358])
        .unwrap();
    big.truncate(96);
    out.push((big, 1400));
    out
}

fn write_corpus(path: &Path) -> usize {
    // Written with pcap-file (microseconds), the way most captures on disk are.
    let f = std::fs::File::create(path).unwrap();
    let header = pcap_file::pcap::PcapHeader { snaplen: 65535, ..Default::default() };
    let mut w = pcap_file::pcap::PcapWriter::with_header(f, header).unwrap();
    let frames = corpus();
    for (i, (data, len)) in frames.iter().enumerate() {
        let ts = Duration::new(1_700_000_000 + i as u64, (i as u32) * 1000);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, *len, data)).unwrap();
    }
    frames.len()
}

fn ringwire(args: &[&str]) -> std::process::Output {
    Proc::spawn("ringwire", Command::new(bin("ringwire")).args(args)).wait(Duration::from_secs(30))
}

#[test]
fn capture_from_file_keeps_exactly_what_tcpdump_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let n = write_corpus(&input);
    let exprs = [
        "",
        "udp",
        "tcp",
        "udp port 53",
        "ip6",
        "arp",
        "icmp or icmp6",
        "vlan",
        "vlan 10",
        "vlan and udp",
        "ip[6:2] & 0x3fff != 0",
        "greater 200",
        "less 64",
        "ether proto 0x88cc",
        "host 10.0.0.1",
        "net 10.1.0.0/16",
        "tcp[tcpflags] & tcp-syn != 0",
        "ip proto 47",
        "not ip and not ip6",
        "src port 1000 or dst port 2000",
        "len > 100",
        "ip6 and tcp",
        "ether dst ff:ff:ff:ff:ff:ff",
        "ether host 02:00:00:00:00:0a",
        "ip6 proto 0",
    ];
    for expr in exprs {
        let ours = dir.path().join("ours.pcap");
        let reference = dir.path().join("ref.pcap");
        let mut args = vec!["capture", "-r", input.to_str().unwrap(), "-w", ours.to_str().unwrap()];
        args.extend(expr.split_whitespace());
        let out = ringwire(&args);
        assert!(out.status.success(), "ringwire capture {expr:?}: {}", String::from_utf8_lossy(&out.stderr));
        let t = Command::new("tcpdump")
            .arg("-r")
            .arg(&input)
            .arg("-w")
            .arg(&reference)
            .args(expr.split_whitespace())
            .output()
            .expect("tcpdump");
        assert!(t.status.success(), "tcpdump {expr:?}: {}", String::from_utf8_lossy(&t.stderr));
        let (a, b): (Vec<Rec>, Vec<Rec>) = (read_pcap(&ours), read_pcap(&reference));
        assert_eq!(a, b, "expression {expr:?}: ringwire kept {} frames, tcpdump {}", a.len(), b.len());
        if expr.is_empty() {
            assert_eq!(a.len(), n);
        }
    }
    // Nanosecond records cut by a snaplen: tcpdump and tshark read them without a word.
    let cut = dir.path().join("cut.pcap");
    let out = ringwire(&["capture", "-r", input.to_str().unwrap(), "-s", "100", "-w", cut.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ringwire_tests::tcpdump_count(&cut), n);
    // (pcap-file refuses records whose original length exceeds the snaplen, so the engine's reader checks this.)
    let mut r = ringwire_engine::pcapio::PcapReader::open(&cut).unwrap();
    let mut cut_records = 0;
    while let Some(rec) = r.next_record().unwrap() {
        assert!(rec.data.len() <= 100 && rec.orig_len as usize >= rec.data.len());
        cut_records += usize::from((rec.orig_len as usize) > rec.data.len());
    }
    assert!(cut_records > 5, "the corpus has frames over 100 bytes");
}

/// pcapng files, as Wireshark, dumpcap and editcap write them (microsecond
/// and nanosecond interfaces) and in big-endian order (written with
/// pcap-file), are read as tcpdump reads them: the same frames kept by each
/// expression, with the same times, printed with the same times.
#[test]
fn capture_reads_pcapng_files_as_tcpdump_reads_them() {
    use pcap_file::pcapng::{
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::SectionHeaderBlock,
        },
        PcapNgWriter,
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = corpus();
    let micro = dir.path().join("micro.pcap");
    write_corpus(&micro);
    let nano = dir.path().join("nano.pcap");
    ringwire_tests::write_pcap_nanos(
        &nano,
        frames.iter().enumerate().map(|(i, (f, _))| (Duration::new(1_700_000_000, i as u32 * 1_001_001 + 7), &f[..])),
    );
    let mut files = Vec::new();
    for (from, to) in [(&micro, "micro.pcapng"), (&nano, "nano.pcapng")] {
        let to = dir.path().join(to);
        let e = Command::new("editcap").args(["-F", "pcapng"]).arg(from).arg(&to).output().expect("editcap");
        assert!(e.status.success(), "editcap: {}", String::from_utf8_lossy(&e.stderr));
        files.push(to);
    }
    let big = dir.path().join("big-endian.pcapng");
    let section = SectionHeaderBlock { endianness: pcap_file::Endianness::Big, ..Default::default() };
    let mut w = PcapNgWriter::with_section_header(std::fs::File::create(&big).unwrap(), section).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: pcap_file::DataLink::ETHERNET,
        snaplen: 0,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .unwrap();
    for (i, (data, len)) in frames.iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::new(1_700_000_000 + i as u64, i as u32 * 999),
            original_len: *len,
            data: data.into(),
            options: vec![],
        })
        .unwrap();
    }
    drop(w);
    files.push(big);
    for file in &files {
        let f = file.to_str().unwrap();
        for expr in ["", "udp", "vlan and udp", "ip6 or arp", "greater 200"] {
            let (ours, reference) = (dir.path().join("ours.pcap"), dir.path().join("ref.pcap"));
            let mut args = vec!["capture", "-r", f, "-w", ours.to_str().unwrap()];
            args.extend(expr.split_whitespace());
            let out = ringwire(&args);
            assert!(out.status.success(), "{f} {expr:?}: {}", String::from_utf8_lossy(&out.stderr));
            let t = Command::new("tcpdump")
                .args(["--nano", "-r", f, "-w", reference.to_str().unwrap()])
                .args(expr.split_whitespace())
                .output()
                .expect("tcpdump");
            assert!(t.status.success(), "tcpdump {f} {expr:?}: {}", String::from_utf8_lossy(&t.stderr));
            let (a, b) = (read_pcap(&ours), read_pcap(&reference));
            assert_eq!(a, b, "{f} {expr:?}: ringwire kept {} frames, tcpdump {}", a.len(), b.len());
            if expr.is_empty() {
                assert_eq!(a.len(), frames.len(), "{f}");
            }
        }
        let ours = ringwire(&["capture", "--workers", "0", "-r", f, "--nano", "-e"]);
        assert!(ours.status.success(), "{f}: {}", String::from_utf8_lossy(&ours.stderr));
        let theirs = Command::new("tcpdump").args(["-nn", "--nano", "-e", "-r", f]).output().unwrap();
        let (ours, theirs) = (String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap());
        // (The corpus holds DNS, GRE and others that tcpdump decodes further
        // than ringwire: the frames are compared above, times here.)
        let times = |text: &str| -> Vec<String> {
            text.lines().filter(|l| !l.starts_with('\t')).map(|l| l.split(' ').next().unwrap().to_owned()).collect()
        };
        assert_eq!(times(&ours).len(), frames.len(), "{f}: {ours}");
        assert_eq!(times(&ours), times(&theirs), "{f}");
    }
}

/// tcpdump's -F (the expression read from a file, `#` comments blanked)
/// keeps what tcpdump's does; -D lists the interfaces a capture can open
/// as tcpdump -D lists them (name and state).
#[test]
fn capture_reads_its_expression_from_a_file_and_lists_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_corpus(&input);
    let expr = dir.path().join("filter.txt");
    std::fs::write(&expr, "# UDP to port 53, and ARP\nudp port 53   # DNS\n  or arp\n").unwrap();
    let (ours, reference) = (dir.path().join("ours.pcap"), dir.path().join("ref.pcap"));
    let (i, e) = (input.to_str().unwrap(), expr.to_str().unwrap());
    let out = ringwire(&["capture", "-r", i, "-F", e, "-w", ours.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = Command::new("tcpdump").args(["-r", i, "-F", e, "-w", reference.to_str().unwrap()]).output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let kept = read_pcap(&ours);
    assert!(!kept.is_empty());
    assert_eq!(kept, read_pcap(&reference));
    refused(
        &["capture", "-r", i, "-F", e, "tcp"],
        "-F: the expression is read from the file; give none on the command line",
    );
    refused(&["capture", "-r", i, "-F", "/nonexistent/f.txt"], "-F /nonexistent/f.txt: cannot read the expression");
    // A bad expression in the file is said with the file's name (not the consumer's).
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "udp and\n").unwrap();
    refused(&["capture", "-r", i, "-F", bad.to_str().unwrap()], &format!("-F {}: filter `udp and`:", bad.display()));

    // A number past the list, however long, is no interface (it was
    // taken for an interface's name, and refused as none).
    for n in ["999", "99999999999999999999999"] {
        refused(&["capture", "-i", n, "-c", "1"], &format!("-i {n}: there is no interface {n} in the list"));
    }
    let ours = ringwire(&["capture", "-D"]);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    let theirs = String::from_utf8(Command::new("tcpdump").arg("-D").output().unwrap().stdout).unwrap();
    let without_number = |l: &str| l.split_once('.').map(|(_, rest)| rest.to_owned()).unwrap_or_default();
    let theirs: Vec<String> = theirs.lines().map(without_number).collect();
    let ours = String::from_utf8(ours.stdout).unwrap();
    for (n, line) in ours.lines().enumerate() {
        assert!(line.starts_with(&format!("{}.", n + 1)), "numbered from 1: {ours}");
        assert!(theirs.contains(&without_number(line)), "`{line}` as tcpdump -D lists it: {theirs:?}");
    }
}

#[test]
fn capture_prints_one_line_per_frame_and_honours_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_corpus(&input);
    let out = ringwire(&["capture", "-r", input.to_str().unwrap(), "-c", "3", "udp"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // (To port 53: decoded as DNS, as tcpdump does.)
    let tcpdump =
        Command::new("tcpdump").args(["-nn", "-c", "3", "-r", input.to_str().unwrap(), "udp"]).output().unwrap();
    assert!(lines[0].contains(" IP 10.0.0.1.1000 > 10.1.0.2.53: "), "{}", lines[0]);
    assert_eq!(text, String::from_utf8_lossy(&tcpdump.stdout), "the lines tcpdump prints");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 frames captured"), "{err}");
    // Frames are read in batches: what passed the filter past the count is said.
    let received: u64 =
        err.split(" received by filter").next().and_then(|l| l.rsplit(' ').next()).unwrap().parse().unwrap();
    assert!(received > 3, "the corpus has more UDP frames: {err}");
    // (This capture prints: nothing is written.)
    let past = format!("({} of those received by filter came after the -c count and were not printed)", received - 3);
    assert!(err.contains(&past), "{err}");
}

/// `-r` takes the paths a shell hands it: a long one (its port is named by
/// its end), the same file twice; one that is not UTF-8 is refused by name,
/// not read as another.
#[test]
fn capture_reads_files_by_any_path() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    // Two files whose paths end in the same 70 characters.
    let tail = "and-a-long-directory-name-below-it/capture-from-yesterday-evening.pcap";
    let (one, two) = (dir.path().join("one").join(tail), dir.path().join("two").join(tail));
    let mut n = 0;
    for f in [&one, &two] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        n += write_corpus(f);
    }
    let input = one.clone();
    let out_file = dir.path().join("both.pcap");
    let out = ringwire(&[
        "capture",
        "-r",
        one.to_str().unwrap(),
        "-r",
        two.to_str().unwrap(),
        "-w",
        out_file.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(read_pcap(&out_file).len(), n, "{err}");
    // Printed, each line names its source: the end of its path, the second marked.
    let out = ringwire(&["capture", "-r", one.to_str().unwrap(), "-r", two.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" …ong-directory-name-below-it/capture-from-yesterday-evening.pcap "))
            .count(),
        n / 2,
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" …g-directory-name-below-it/capture-from-yesterday-evening.pcap#2 "))
            .count(),
        n / 2,
        "{text}"
    );

    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.pcap"));
    std::fs::copy(&input, &odd).unwrap();
    let out = Command::new(bin("ringwire")).arg("capture").arg("-r").arg(&odd).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("caf\u{FFFD}.pcap: the path is not valid UTF-8"), "{err}");
}

/// Queues are filled as traffic comes: two consumers whose queues each fit
/// in half the available memory, but not together, are refused at start.
#[test]
fn queues_together_are_held_to_half_the_available_memory() {
    let avail_kib = mem_available() >> 10;
    let each_mb = (avail_kib * 4 / 10) >> 10; // 40 % each: one fits, two do not
    assert!((1..=65536).contains(&each_mb), "{each_mb} MiB");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_corpus(&input);
    let cfg = dir.path().join("two.toml");
    let consumer = |name: &str| {
        format!(
            "[[consumers]]\nname = \"{name}\"\nkind = \"pcap\"\npath = \"{}\"\nqueue_mb = {each_mb}\n",
            dir.path().join(format!("{name}.pcap")).display()
        )
    };
    let head =
        format!("[engine]\nworkers = [0]\n[control]\nenabled = false\n[[ports]]\nuri = \"pcap:{}\"\n", input.display());
    std::fs::write(&cfg, format!("{head}{}", consumer("one"))).unwrap();
    let out = ringwire(&["run", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "one consumer fits: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&cfg, format!("{head}{}{}", consumer("one"), consumer("two"))).unwrap();
    refused(&["run", cfg.to_str().unwrap()], "consumer `two`: queue_mb");
    let out = ringwire(&["run", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("with the other consumers'") && err.contains("more than half the memory available"), "{err}");
}

/// A latency probe's tables (over 12 MiB a worker, written when it starts)
/// count in the same budget as queues: a probe beside queues that take
/// nearly half the available memory is refused, by what it is. (Memory
/// moves while tests run: the queues are sized to leave half a probe's
/// room, and a run whose figure moved more than that is tried again.)
#[test]
fn a_latency_probe_counts_in_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_corpus(&input);
    let cfg = dir.path().join("probe.toml");
    let probe = ringwire_engine::probe::ProbeShared::bytes(1);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let half = mem_available() / 2;
        let queue_mb = (half - probe / 2) >> 20;
        std::fs::write(
            &cfg,
            format!(
                "[engine]\nworkers = [0]\n[control]\nenabled = false\n[[ports]]\nuri = \"pcap:{}\"\n\
                 [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\nqueue_mb = {queue_mb}\n\
                 [[consumers]]\nname = \"lat\"\nkind = \"latency\"\n",
                input.display(),
                dir.path().join("w.pcap").display()
            ),
        )
        .unwrap();
        let out = ringwire(&["run", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() == Some(1) && err.contains("consumer `lat`: a latency probe's tables") {
            assert!(
                err.contains("with the other consumers'") && err.contains("more than half the memory available"),
                "{err}"
            );
            return;
        }
        outcomes.push((out.status.code(), err));
    }
    panic!("the probe was never refused: {outcomes:?}");
}

/// The engine's own reading of the memory available, in bytes.
fn mem_available() -> u64 {
    ringwire_engine::sys::mem_available().expect("MemAvailable in /proc/meminfo")
}

/// Every bad input: one line on stderr naming the problem, exit status 1, no panic.
fn refused(args: &[&str], needle: &str) {
    let out = ringwire(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with status 1: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got: {err}");
    assert!(lines[0].contains(needle), "{args:?}: expected `{needle}` in: {err}");
}

#[test]
fn bad_inputs_get_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    write_corpus(&good);
    let g = good.to_str().unwrap();

    refused(&["capture", "-i", "rwnosuchif0"], "no such interface `rwnosuchif0`");
    refused(&["capture", "-i", "any"], "-i any: libpcap's pseudo-interface");
    refused(
        &["capture", "-i", "rwnosuchif0", "-B", "20000000"],
        "-B 20000000: at most 16776960 KiB (65535 blocks of 256 KiB",
    );
    refused(&["capture", "-r", g, "--workers", "0,4096"], "core 4096 does not exist");
    refused(&["capture", "-r", g, "-c", "0"], "-c 0: the frame count must be at least 1");
    refused(&["capture", "-r", "-"], "reading a capture from standard input is not supported");
    refused(&["capture", "-r", g, "-r", g], &format!("-r {g}: given twice"));
    refused(&["capture", "-i", "lo", "-i", "lo"], "-i lo: given twice");
    refused(&["capture", "-r", g, "-tttttt"], "-tttttt: only -t, -tt, -ttt, -tttt and -ttttt exist");
    // tcpdump's options ringwire does not have say so (clap suggested `-- -v`,
    // which made them part of the expression); -K, -O and -N change nothing
    // ringwire prints, and are taken.
    let not_here = "tcpdump's option is not supported by ringwire capture";
    refused(&["capture", "-r", g, "-v"], &format!("-v: {not_here}: it prints tcpdump's default lines"));
    refused(&["capture", "-nnvvv", "-r", g], "-v: tcpdump's option is not supported");
    for (args, flag) in [
        (&["-L"][..], "-L"),
        (&["-y", "EN10MB"], "-y"),
        (&["-Z", "nobody"], "-Z"),
        (&["-#"], "-#"),
        (&["--print", "-w", "/dev/null"], "--print"),
        (&["-V", "list.txt"], "-V"),
        (&["-z", "gzip"], "-z"),
        (&["-j", "host"], "-j/-J"),
    ] {
        refused(&[&["capture", "-r", g][..], args].concat(), &format!("{flag}: {not_here}"));
    }
    let help = String::from_utf8_lossy(&ringwire(&["capture", "--help"]).stdout).into_owned();
    for taken in ["-K", "-O", "-N"] {
        let out = ringwire(&["capture", "-r", g, "-c", "1", taken]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 1, "{taken}: {out:?}");
        assert!(
            help.contains(&format!("{taken}\n          Accepted as tcpdump takes it")),
            "{taken} in --help: {help}"
        );
    }
    let version = ringwire(&["capture", "--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout), format!("ringwire {}\n", env!("CARGO_PKG_VERSION")));
    refused(&["capture", "-r", g, "-w", "-", "-C", "1"], "-C: -w - writes standard output, one stream");
    refused(&["capture", "-r", g, "-s", "13"], "-s 13: at least the 14 bytes of the Ethernet header are kept");
    // Over libpcap's largest snap length: refused as tcpdump 4.99 refuses it
    // (it was taken, and cut to 262144).
    refused(&["capture", "-r", g, "-s", "262145"], "invalid snaplen 262145 (must be >= 0 and <= 262144)");
    let w = dir.path().join("w.pcap");
    let w = w.to_str().unwrap();
    refused(&["capture", "-r", g, "-w", w, "-S"], "-e, -q, -S, -t, -x, -X and -A change the printed lines");
    refused(&["capture", "-r", g, "-w", w, "-q"], "-e, -q, -S, -t, -x, -X and -A change the printed lines");
    refused(&["capture", "-r", g, "-w", w, "--micro"], "--micro: files written with -w have nanosecond times");
    let both = ringwire(&["capture", "-r", g, "--nano", "--micro"]);
    assert_eq!(both.status.code(), Some(1), "--nano and --micro: a usage error, status 1 as tcpdump's");
    for zero in ["-C", "-W", "-G"] {
        let out = ringwire(&["capture", "-r", g, "-w", w, zero, "0"]);
        assert_eq!(out.status.code(), Some(1), "{zero} 0: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A file read and written at once would be truncated under its reader.
    let before = std::fs::read(&good).unwrap();
    refused(&["capture", "-r", g, "-w", g], "is a pcap source being read");
    assert_eq!(std::fs::read(&good).unwrap(), before, "the source is untouched");
    refused(&["capture", "-r", g, "udp and portt 53"], "syntax error");
    refused(&["capture", "-r", g, "-w", "/nonexistent-dir/x.pcap"], "/nonexistent-dir/x.pcap: cannot open");
    refused(&["capture", "-r", "/nonexistent.pcap"], "/nonexistent.pcap: cannot open");

    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    refused(&["capture", "-r", garbage.to_str().unwrap()], "not a pcap or pcapng file (magic 0x");
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    refused(&["capture", "-r", empty.to_str().unwrap()], "empty.pcap: the file is empty: not a pcap file");
    let short = dir.path().join("short.pcap");
    std::fs::write(&short, 0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    refused(&["capture", "-r", short.to_str().unwrap()], "short.pcap: 4 bytes: too short for a pcap file");

    // Unknown field in a config: named, with its line.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[engine]\nworkers = [0]\nwokrers = [1]\n").unwrap();
    refused(&["run", cfg.to_str().unwrap()], "wokrers");
    refused(&["run", cfg.to_str().unwrap()], "line 3");
    std::fs::write(&cfg, "[engine\nworkers = [0]\n").unwrap();
    refused(&["run", cfg.to_str().unwrap()], "line 1");
    // An unwritable stats file is refused before the run, not after it.
    std::fs::write(
        &cfg,
        format!("[engine]\nstats_json = \"/nonexistent-dir/s.json\"\n[[ports]]\nuri = \"pcap:{g}\"\n"),
    )
    .unwrap();
    refused(&["run", cfg.to_str().unwrap()], "engine.stats_json: /nonexistent-dir/s.json: cannot be written");
    // More workers than cores.
    let too_many: Vec<String> = (0..=ringwire_tests::cores()).map(|c| c.to_string()).collect();
    std::fs::write(&cfg, format!("[engine]\nworkers = [{}]\n[[ports]]\nuri = \"pcap:{g}\"\n", too_many.join(", ")))
        .unwrap();
    refused(&["run", cfg.to_str().unwrap()], "does not exist");
}

/// A run that fails to start after opening some of its outputs leaves
/// every earlier capture in them as it was, and no empty file where there
/// was none: the outputs are truncated only once the engine starts.
#[test]
fn a_run_that_fails_to_start_destroys_no_earlier_capture() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    write_corpus(&good);
    let g = good.to_str().unwrap();
    let precious = dir.path().join("precious.pcap");
    std::fs::copy(&good, &precious).unwrap();
    let before = std::fs::read(&precious).unwrap();
    let fresh = dir.path().join("fresh.pcap");
    let cfg = dir.path().join("clobber.toml");
    // The consumers that come after the good ones fail in two ways: an
    // output that cannot be opened, and a filter plugin that is not there.
    for (bad, needle) in [
        ("path = \"/nonexistent-dir/b.pcap\"", "/nonexistent-dir/b.pcap: cannot open"),
        ("path = \"/dev/null\"\nfilter = \"plugin:/nonexistent/plugin.so:x\"", "/nonexistent/plugin.so"),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "[[ports]]\nuri = \"pcap:{g}\"\n\
                 [[consumers]]\nname = \"a\"\nkind = \"pcap\"\npath = \"{}\"\n\
                 [[consumers]]\nname = \"fresh\"\nkind = \"pcap\"\npath = \"{}\"\n\
                 [[consumers]]\nname = \"b\"\nkind = \"pcap\"\n{bad}\n",
                precious.display(),
                fresh.display()
            ),
        )
        .unwrap();
        refused(&["run", cfg.to_str().unwrap(), "--control-socket", "none"], needle);
        assert!(std::fs::read(&precious).unwrap() == before, "{bad}: the earlier capture was changed");
        assert!(!fresh.exists(), "{bad}: an empty output was left behind");
    }
    // The same outputs, all good: the run truncates and writes them.
    std::fs::write(
        &cfg,
        format!(
            "[[ports]]\nuri = \"pcap:{g}\"\n[[consumers]]\nname = \"a\"\nkind = \"pcap\"\npath = \"{}\"\nfilter = \"udp\"\n",
            precious.display()
        ),
    )
    .unwrap();
    let out = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", "none"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = std::fs::read(&precious).unwrap();
    assert!(
        after.len() >= 24 && after.len() < before.len(),
        "not rewritten: {} bytes, {} before",
        after.len(),
        before.len()
    );
}

/// `--log` with a filter tracing cannot parse is refused (status 1, as
/// every bad command line), not silently replaced.
#[test]
fn a_bad_log_filter_is_refused() {
    let out = ringwire(&["--log", "not[valid", "capture", "-r", "/nonexistent.pcap"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--log not[valid"), "{err}");
}

/// `-w -` writes the pcap to standard output (for a pipe), the same bytes
/// `-w FILE` writes; `-s 0` keeps the default snaplen, as in tcpdump.
#[test]
fn capture_writes_pcap_to_standard_output_with_w_dash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let n = write_corpus(&input);
    let file = dir.path().join("out.pcap");
    let i = input.to_str().unwrap();
    let to_file = ringwire(&["capture", "-r", i, "-w", file.to_str().unwrap()]);
    assert!(to_file.status.success(), "{}", String::from_utf8_lossy(&to_file.stderr));
    let to_stdout = ringwire(&["capture", "-r", i, "-w", "-", "-s", "0"]);
    assert!(to_stdout.status.success(), "{}", String::from_utf8_lossy(&to_stdout.stderr));
    assert_eq!(to_stdout.stdout, std::fs::read(&file).unwrap(), "the same pcap bytes");
    assert!(!dir.path().join("-").exists() && !Path::new("-").exists(), "no file named -");
    let piped = dir.path().join("piped.pcap");
    std::fs::write(&piped, &to_stdout.stdout).unwrap();
    assert_eq!(read_pcap(&piped).len(), n);
    assert!(String::from_utf8_lossy(&to_stdout.stderr).contains(&format!("{n} frames captured")));
    // --nano with -w, as tcpdump takes it: the file has nanosecond times anyway.
    for nano in [&["--nano"][..], &["--time-stamp-precision", "nano"]] {
        let again = dir.path().join("nano.pcap");
        let out = ringwire(&[&["capture", "-r", i, "-w", again.to_str().unwrap()][..], nano].concat());
        assert!(out.status.success(), "{nano:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&file).unwrap(), "{nano:?}");
    }
}

/// The corpus of [`write_corpus`] in `dir`, its last record cut short:
/// the file, and how many records the whole corpus has.
fn truncated_corpus(dir: &Path) -> (PathBuf, usize) {
    let good = dir.join("good.pcap");
    let n = write_corpus(&good);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    (cut, n)
}

#[test]
fn truncated_pcap_source_fails_after_keeping_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let (cut, n) = truncated_corpus(dir.path());
    let out_file = dir.path().join("kept.pcap");
    let out = ringwire(&["capture", "-r", cut.to_str().unwrap(), "-w", out_file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The summary, then one error line naming the file (said once, not also logged).
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains(&format!("{} frames captured", n - 1)), "{err}");
    assert!(lines[1].starts_with("ringwire: error: ") && lines[1].contains("cut.pcap: truncated: record"), "{err}");
    assert!(err.contains(&format!("truncated: record {n}")), "{err}");
    // Nothing already read is lost: every complete record was written.
    assert_eq!(read_pcap(&out_file).len(), n - 1);
    // With a count the good records reach, the truncation is never an
    // error, as with tcpdump -c (it used to depend on the workers: one read
    // ahead of the count hit it); with a count they do not reach, it is.
    let workers: &[&str] = if ringwire_tests::cores() >= 2 { &["0", "0,1"] } else { &["0"] };
    for w in workers {
        for (count, code) in [(3, 0), (n - 1, 0), (n, 1)] {
            let c = count.to_string();
            let out = ringwire(&[
                "capture",
                "--workers",
                w,
                "-c",
                &c,
                "-r",
                cut.to_str().unwrap(),
                "-w",
                out_file.to_str().unwrap(),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "-c {count} --workers {w}: {err}");
            assert_eq!(err.contains("ringwire: error: "), code == 1, "-c {count} --workers {w}: {err}");
            assert_eq!(read_pcap(&out_file).len(), count.min(n - 1), "-c {count} --workers {w}");
            let tcpdump = Command::new("tcpdump").args(["-c", &c, "-r", cut.to_str().unwrap()]).output().unwrap();
            assert_eq!(tcpdump.status.code(), Some(code), "tcpdump -c {count}");
        }
    }
}

/// A file port whose file ends badly while the engine runs on (other
/// ports) says so in `stats` and `ports list` (JSON `error` and a line in
/// the tables), not only at exit: it looked healthy until then.
#[test]
fn a_file_port_that_fails_says_so_while_the_engine_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (cut, n) = truncated_corpus(dir.path());
    // A paced file keeps the engine running for 2 s.
    let frame = eth(MAC_B, 0x0800, &[0u8; 50]);
    let slow = dir.path().join("slow.pcap");
    ringwire_tests::write_pcap(
        &slow,
        (0..5u64).map(|i| (Duration::from_millis(1_700_000_000_000 + i * 500), frame.as_slice())),
    );
    let cfg = dir.path().join("two.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[ports]]\nname = \"slow\"\nuri = \"pcap:{}\"\npace = \"recorded\"\n\
             [[ports]]\nname = \"cut\"\nuri = \"pcap:{}\"\n[[consumers]]\nname = \"c\"\nkind = \"counter\"\n",
            slow.display(),
            cut.display()
        ),
    )
    .unwrap();
    let engine = ringwire_tests::start_file_engine(&cfg, dir.path());
    let sock = ringwire_tests::control_socket(&cfg);
    std::thread::sleep(Duration::from_millis(300));
    let stats = ringwire_tests::ringctl_json(&sock, &["stats"]);
    let port = stats["counters"]["ports"].as_array().unwrap().iter().find(|p| p["name"] == "cut").cloned().unwrap();
    assert!(port["error"].as_str().is_some_and(|e| e.contains("truncated: record")), "{port}");
    assert_eq!(port["received"], (n - 1) as u64, "{port}");
    let table = ringwire_tests::ringctl(&sock, &["stats"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("port `cut`: its file ended badly: "), "{table}");
    let list = ringwire_tests::ringctl(&sock, &["ports", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("port `cut`: its file ended badly: "), "{list}");
    let res = engine.wait(Duration::from_secs(30));
    assert_eq!(res.status.code(), Some(1), "the run still ends with the file's error");
}

/// A config in `dir` replaying `frames` identical frames recorded `every_ms`
/// apart, at their recorded pace, into the consumer `consumer` (TOML lines).
fn paced_config(dir: &Path, frames: u64, every_ms: u64, consumer: &str) -> PathBuf {
    let (input, cfg) = (dir.join("paced.pcap"), dir.join("paced.toml"));
    let frame = eth(MAC_B, 0x0800, &[0u8; 50]);
    ringwire_tests::write_pcap(
        &input,
        (0..frames).map(|i| (Duration::from_millis(1_700_000_000_000 + i * every_ms), frame.as_slice())),
    );
    let text =
        format!("[[ports]]\nuri = \"pcap:{}\"\npace = \"recorded\"\n[[consumers]]\n{consumer}\n", input.display());
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// [`paced_config`] with a pcap consumer `w` writing `out`.
fn paced_to_pcap(dir: &Path, frames: u64, every_ms: u64, out: &Path) -> PathBuf {
    paced_config(dir, frames, every_ms, &format!("name = \"w\"\nkind = \"pcap\"\npath = \"{}\"", out.display()))
}

/// A pcap port replayed at its recorded pace takes the recorded time, and
/// delivers every record unchanged.
#[test]
fn recorded_pace_replays_at_the_recorded_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let cfg = paced_to_pcap(dir.path(), 4, 250, &out);
    let frame = eth(MAC_B, 0x0800, &[0u8; 50]);
    let t0 = std::time::Instant::now();
    let res = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", "none"]);
    let took = t0.elapsed();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(took >= Duration::from_millis(700), "4 records 250 ms apart replayed in {took:?}");
    let recs = read_pcap(&out);
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r.data == frame));

    // Times that step back (files joined end to end): the intervals on each
    // side of the step are kept; the records after it went out in a burst
    // until their times caught up (1.2 s in all, not 2.4 s).
    let stepped = dir.path().join("stepped.pcap");
    let ms = [0, 600, 1200, 0, 600, 1200];
    ringwire_tests::write_pcap(
        &stepped,
        ms.iter().map(|m| (Duration::from_millis(1_700_000_000_000 + m), frame.as_slice())),
    );
    let cfg = dir.path().join("stepped.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[ports]]\nuri = \"pcap:{}\"\npace = \"recorded\"\n[[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\n",
            stepped.display(),
            out.display()
        ),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let res = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", "none"]);
    let took = t0.elapsed();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(took >= Duration::from_millis(2300), "two runs of 1.2 s, one after the other, in {took:?}");
    assert_eq!(read_pcap(&out).len(), 6);
}

/// Files started by time (`rotate_s`, capture's -G): each named by the
/// path's strftime pattern when it starts, every record in one of them;
/// with `rotate_files` (-W) the run stops after that many files, the rest
/// counted over the limit. capture -G refuses what tcpdump would turn into
/// files overwriting each other.
#[test]
fn files_are_started_by_time_and_named_by_strftime() {
    let dir = tempfile::tempdir().unwrap();
    let frame = eth(MAC_B, 0x0800, &[0u8; 50]);
    let input = dir.path().join("paced.pcap");
    // 26 records 100 ms apart: 2.5 s.
    ringwire_tests::write_pcap(
        &input,
        (0..26u64).map(|i| (Duration::from_millis(1_700_000_000_000 + i * 100), frame.as_slice())),
    );
    // A config replaying the file into SUB/cap-%s.pcap, a file a second (at most `keep`): (config, stats file).
    let config = |keep: u32, sub: &str| {
        let out_dir = dir.path().join(sub);
        std::fs::create_dir_all(&out_dir).unwrap();
        let (cfg, st) = (dir.path().join(format!("{sub}.toml")), dir.path().join(format!("{sub}.json")));
        std::fs::write(
            &cfg,
            format!(
                "[engine]\nstats_json = \"{}\"\n[[ports]]\nuri = \"pcap:{}\"\npace = \"recorded\"\n\
                 [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}/cap-%s.pcap\"\nrotate_s = 1\nrotate_files = {keep}\n",
                st.display(),
                input.display(),
                out_dir.display()
            ),
        )
        .unwrap();
        (cfg, st)
    };
    let run = |keep: u32, sub: &str| {
        let out_dir = dir.path().join(sub);
        let (cfg, st) = config(keep, sub);
        let res = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", "none"]);
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        let mut files: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        (files, ringwire_tests::read_json(&st))
    };
    let (files, s) = run(0, "all");
    assert!((2..=4).contains(&files.len()), "a file a second: {files:?}");
    let per_file: Vec<usize> =
        ringwire_tests::timed_files(&dir.path().join("all"), "cap-").into_iter().map(|(_, n)| n).collect();
    assert_eq!(per_file.iter().sum::<usize>(), 26, "every record in one file: {per_file:?}");
    assert_eq!(s["consumers"][0]["files"], files.len() as u64, "{s}");
    ringwire_tests::assert_reconciles(&s);

    let (files, s) = run(2, "two");
    assert_eq!(files.len(), 2, "-W 2: two files, then the run stops: {files:?}");
    let written: usize = files.iter().map(|f| ringwire_tests::tcpdump_count(f)).sum();
    let w = &s["consumers"][0];
    assert_eq!(w["written"], written as u64, "{s}");
    assert!((10..26).contains(&written), "{s}");
    ringwire_tests::assert_reconciles(&s);

    // The next file cannot be created (its directory moved away): the run
    // ends with the error, and nothing more goes into the file whose time is up.
    let gone = dir.path().join("gone");
    let (cfg, st) = config(0, "gone");
    let started = std::time::Instant::now();
    let run = Proc::spawn(
        "ringwire run",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(&gone, dir.path().join("moved")).unwrap();
    let res = run.wait(Duration::from_secs(20));
    assert_eq!(res.status.code(), Some(1), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(started.elapsed() < Duration::from_millis(2400), "it stopped at the failure, not at the file's end");
    let s = ringwire_tests::read_json(&st);
    let w = &s["consumers"][0];
    assert!(w["write_errors"].as_u64().unwrap() > 0, "{s}");
    let moved: Vec<_> = std::fs::read_dir(dir.path().join("moved")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(ringwire_tests::tcpdump_count(&moved[0]) <= 12, "only its second's records: {s}");

    let i = input.to_str().unwrap();
    let plain = dir.path().join("plain.pcap");
    refused(&["capture", "-r", i, "-G", "1", "-w", plain.to_str().unwrap()], "holds no strftime conversion");
    refused(&["capture", "-r", i, "-G", "1"], "-G: rotating files needs -w FILE");
    let timed = dir.path().join("t-%s.pcap");
    refused(&["capture", "-r", i, "-G", "1", "-C", "1", "-w", timed.to_str().unwrap()], "-G with -C");
}

/// A record due long after the one before (a paused capture, a bad
/// timestamp) is waited for as recorded, and the wait is said, not silent;
/// a stop ends it with what came before written.
#[test]
fn recorded_pace_says_when_it_waits_long_for_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    // Two records 100 s apart.
    let cfg = paced_to_pcap(dir.path(), 2, 100_000, &out);
    let mut run = Proc::spawn(
        "ringwire",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    run.expect_stderr("recorded pace: the next record is due in 99 s", Duration::from_secs(10), "the long wait said");
    run.signal(libc::SIGTERM);
    // The warning names the file (it gave the port's index).
    assert!(run.stderr_text().contains("paced.pcap"), "{}", run.stderr_text());
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert_eq!(read_pcap(&out).len(), 1, "the first record written, the second never due");
}

/// A second ringwire on the output of one that is running (a repeated
/// command, two configs naming one path) is refused before it truncates
/// the file, and so is a run whose control socket is in a directory that
/// does not exist (refused, not created): the running capture goes on and
/// its file ends whole.
#[test]
fn a_second_run_on_a_busy_output_or_a_bad_socket_path_truncates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("busy.pcap");
    // 30 records 100 ms apart: 3 s of replay.
    let cfg = paced_to_pcap(dir.path(), 30, 100, &out);
    let first = Proc::spawn(
        "ringwire run",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 24 + 5 * 80 {
        assert!(std::time::Instant::now() < deadline, "the first run wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let input = dir.path().join("paced.pcap");
    let second = ringwire(&["capture", "-r", input.to_str().unwrap(), "-w", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("another process is writing this file"), "{err}");
    let nowhere = dir.path().join("no").join("such").join("x.sock");
    let third = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", nowhere.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{err}");
    assert!(err.contains("its directory does not exist"), "{err}");
    assert!(!dir.path().join("no").exists(), "no directory was made");
    let res = first.wait(Duration::from_secs(15));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(read_pcap(&out).len(), 30, "the first run's file is whole");
}

/// A source another program truncates while the engine replays it (paced,
/// so the cut comes mid-file): the engine does not die of the fault on the
/// pages that are gone; it stops reading at the cut, says the file shrank,
/// writes every record before the cut, reconciles and exits with status 1.
#[test]
fn a_source_truncated_while_replayed_ends_the_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shrinking.pcap");
    let frames: Vec<Vec<u8>> = (0..400u32).map(|i| eth(MAC_B, 0x0800, &[(i % 251) as u8 | 1; 986])).collect();
    ringwire_tests::write_pcap(
        &input,
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| (Duration::from_millis(1_700_000_000_000 + i as u64 * 20), f.as_slice())),
    );
    let out = dir.path().join("out.pcap");
    let stats = dir.path().join("stats.json");
    let cfg = dir.path().join("shrinking.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nstats_json = \"{}\"\n[[ports]]\nuri = \"pcap:{}\"\npace = \"recorded\"\n[[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\n",
            stats.display(),
            input.display(),
            out.display()
        ),
    )
    .unwrap();
    let engine = Proc::spawn(
        "ringwire",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    let started = std::time::Instant::now();
    // File sources only: the writer is not made real-time (engine.consumer_rt_priority applies
    // to runs that receive from an interface); its nice value is -5 where it may be lowered.
    let sched = ringwire_tests::wait_thread_sched(engine.pid(), "rw-sink-w", ThreadSched::normal(-5));
    assert_eq!(sched.map(|s| s.policy), Some(libc::SCHED_OTHER as u32), "{sched:?}");
    // Nor is the worker (engine.worker_rt_priority): a replay never sleeps. Looked at once it
    // has been running a while, so a change at its start cannot be missed.
    std::thread::sleep(Duration::from_millis(300).saturating_sub(started.elapsed()));
    let sched = ringwire_tests::wait_thread_sched(engine.pid(), "rw-worker-0", ThreadSched::normal(0));
    assert_eq!(sched, Some(ThreadSched::normal(0)), "a worker with a file source stays normally scheduled");
    // 400 records 20 ms apart: at 1.2 s about 60 are read; cut at 200 KiB (record 202 of
    // 1016 bytes each, read 4 s in: room for a slow machine's late cut).
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(started.elapsed()));
    let cut = 200u64 << 10;
    std::fs::OpenOptions::new().write(true).open(&input).unwrap().set_len(cut).unwrap();
    let res = engine.wait(Duration::from_secs(20));
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("shrank to {cut} bytes while being read")), "{err}");
    let recs = read_pcap(&out);
    let whole = ((cut - 24) / 1016) as usize;
    // Every record wholly before the cut; the one the cut goes through may be there, zero-filled.
    assert!(recs.len() == whole || recs.len() == whole + 1, "{} records written, {whole} before the cut", recs.len());
    assert!(recs.iter().zip(&frames).take(whole).all(|(r, f)| &r.data == f), "records before the cut are intact");
    ringwire_tests::assert_reconciles(&ringwire_tests::read_json(&stats));
}

/// Replaying a file has no deadline, so a full queue slows the reading down
/// instead of dropping frames: every record reaches the output, in order,
/// even through a 1 MiB queue, and with two workers (whose segments the
/// sink must hold back and reorder with only a few chunks each).
#[test]
fn file_sources_are_lossless_even_through_a_tiny_queue() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    ringwire_tests::record(&big, &["-n", "200000", "--size", "64-1514"]);
    let a = read_pcap(&big);
    let workers: &[&str] = if ringwire_tests::cores() >= 2 { &["[0]", "[0, 1]"] } else { &["[0]"] };
    for w in workers {
        let out = dir.path().join("out.pcap");
        let st = dir.path().join("st.json");
        let cfg = dir.path().join("tiny.toml");
        std::fs::write(
            &cfg,
            format!(
                "[engine]\nworkers = {w}\nstats_json = \"{}\"\n[[ports]]\nuri = \"pcap:{}\"\n\
                 [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\nqueue_mb = 1\n",
                st.display(),
                big.display(),
                out.display()
            ),
        )
        .unwrap();
        let res = ringwire(&["run", cfg.to_str().unwrap(), "--control-socket", "none"]);
        assert!(res.status.success(), "workers {w}: {}", String::from_utf8_lossy(&res.stderr));
        let s = ringwire_tests::read_json(&st);
        ringwire_tests::assert_reconciles(&s);
        assert_eq!(s["consumers"][0]["queue_dropped"], 0, "workers {w}: {s}");
        assert_eq!(s["consumers"][0]["written"], 200_000, "workers {w}");
        let b = read_pcap(&out);
        assert_eq!(a.len(), b.len(), "workers {w}");
        assert!(a.iter().zip(&b).all(|(x, y)| x.data == y.data && x.ts_ns == y.ts_ns), "workers {w}: order");
    }
}

/// Counters read while frames flow (`stats`, the progress line) never show
/// a consumer that has taken more frames than its port received: the
/// consumers' counts are read before the ports' (a worker publishes the
/// ports' first). One of 40 `ringctl stats` showed 163 more before.
#[test]
fn a_live_snapshot_never_shows_a_consumer_ahead_of_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    ringwire_tests::record(&big, &["-n", "400000", "--size", "64"]);
    let workers = if ringwire_tests::cores() >= 2 { "[0, 1]" } else { "[0]" };
    let config = ringwire_engine::Config::parse(&format!(
        "[engine]\nworkers = {workers}\n[control]\nenabled = false\n[[ports]]\nuri = \"pcap:{}\"\n\
         [[consumers]]\nname = \"a\"\nkind = \"counter\"\n[[consumers]]\nname = \"b\"\nkind = \"counter\"\n",
        big.display()
    ))
    .unwrap();
    let engine = ringwire_engine::Engine::start(&config).unwrap();
    let (mut reads, mut moving) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while engine.should_stop().is_none() && std::time::Instant::now() < deadline {
        let s = engine.snapshot();
        let received = s.ports[0].received;
        for c in &s.consumers {
            assert!(c.seen <= received, "consumer `{}` saw {} of the port's {received}", c.name, c.seen);
        }
        reads += 1;
        moving += usize::from(received > 0 && received < 400_000);
    }
    let report = engine.stop();
    assert_eq!(report.snapshot.consumers[0].seen, 400_000);
    // Counters count bytes too: every byte the port read, delivered to each.
    let bytes = report.snapshot.ports[0].bytes;
    assert!(bytes >= 400_000 * 60, "{bytes}");
    assert!(report.snapshot.consumers.iter().all(|c| c.delivered_bytes == bytes), "{:?}", report.snapshot);
    assert!(moving >= 20, "{moving} of {reads} reads while frames flowed");
}

/// Two workers replaying files fast read them a segment at a time each: a
/// latency probe or a forward added while they do is refused (the probe
/// would count each change of segment as loss, the forward would send out of
/// order), with what to do instead; one in the config is taken, and the
/// probe then finds no loss in a file without gaps.
#[test]
fn a_probe_or_forward_added_while_workers_share_files_is_refused() {
    if !ringwire_tests::two_cores("a_probe_or_forward_added_while_workers_share_files_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    ringwire_tests::record(&big, &["-n", "100000", "--size", "64"]);
    let base = format!(
        "[engine]\nworkers = [0, 1]\n[control]\nenabled = false\n[[ports]]\nname = \"f\"\nuri = \"pcap:{}\"\n\
         [[ports]]\nname = \"out\"\nuri = \"pcap:{}\"\nrx = false\n",
        big.display(),
        dir.path().join("unused.pcap").display()
    );
    let engine = ringwire_engine::Engine::start(&ringwire_engine::Config::parse(&base).unwrap()).unwrap();
    let extra = ringwire_engine::Config::parse(&format!(
        "{base}[[consumers]]\nname = \"lat\"\nkind = \"latency\"\n[[consumers]]\nname = \"fw\"\nkind = \"forward\"\nto = \"out\"\n"
    ))
    .unwrap();
    for c in extra.consumers {
        let name = c.name.clone();
        let e = engine.add_consumer(c).expect_err(&name).to_string();
        assert!(e.contains("a segment at a time") && e.contains("add it in the config"), "{name}: {e}");
    }
    let to_the_end = |engine: ringwire_engine::Engine| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while engine.should_stop().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        engine.stop()
    };
    assert_eq!(to_the_end(engine).snapshot.ports[0].received, 100_000);

    // In the config, the file goes to one worker: the probe sees every frame, none lost.
    let config =
        ringwire_engine::Config::parse(&format!("{base}[[consumers]]\nname = \"lat\"\nkind = \"latency\"\n")).unwrap();
    let report = to_the_end(ringwire_engine::Engine::start(&config).unwrap());
    let lat = report.snapshot.consumers[0].latency.as_ref().expect("the probe's figures");
    let c = lat.counters;
    assert!(c.stamped >= 20_000 && c.stamped + c.unstamped == 100_000 && c.lost == 0, "{c:?}");
}

/// Stopped (SIGINT) halfway through a file read by two workers through a
/// 1 MiB queue: the workers finish the segments they were reading while the
/// writer drains, so the output is the file's first N records, without a
/// gap and without a frame counted dropped (they gave up at the stop, and
/// the file missed the rest of a segment the other worker had passed).
#[test]
fn a_file_read_stopped_midway_is_written_up_to_a_point_without_a_gap() {
    if !ringwire_tests::two_cores("a_file_read_stopped_midway_is_written_up_to_a_point_without_a_gap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    ringwire_tests::record(&big, &["-n", "300000", "--size", "1000"]);
    let (out, st, cfg) = (dir.path().join("out.pcap"), dir.path().join("st.json"), dir.path().join("stop.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0, 1]\nstats_json = \"{}\"\n[[ports]]\nuri = \"pcap:{}\"\n\
             [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\nqueue_mb = 1\n",
            st.display(),
            big.display(),
            out.display()
        ),
    )
    .unwrap();
    let run = Proc::spawn(
        "ringwire run",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    wait_for_sigint_handler(run.pid());
    // Stopped once the output holds some 10 MiB of the file's 290 MiB.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 10 << 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    run.signal(libc::SIGINT);
    let res = run.wait(Duration::from_secs(20));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = ringwire_tests::read_json(&st);
    ringwire_tests::assert_reconciles(&s);
    assert_eq!(s["consumers"][0]["queue_dropped"], 0, "{s}");
    let (a, b) = (read_pcap(&big), read_pcap(&out));
    assert!(b.len() < a.len(), "stopped before the end of the file ({} records written)", b.len());
    assert_eq!(s["consumers"][0]["written"], b.len(), "{s}");
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.data == y.data && x.ts_ns == y.ts_ns),
        "the file's first records, in order"
    );
}

/// With several workers, a file is read a segment at a time by each of them
/// in turn; the output must still be the file's frames in the file's order:
/// written files equal tcpdump's (also with `-c`, the first N), printed lines
/// equal a single worker's.
#[test]
fn a_file_read_by_two_workers_keeps_its_order() {
    if !ringwire_tests::two_cores("a_file_read_by_two_workers_keeps_its_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.pcap");
    // About 50 segments, with tagged frames, both IP versions, TCP and UDP.
    ringwire_tests::record(&big, &["-n", "100000", "--size", "64-1514", "--flows", "32"]);
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let tcpdump = |extra: &[&str], expr: &str, out: &str| {
        let t = Command::new("tcpdump")
            .args(["--time-stamp-precision=nano", "-r", big.to_str().unwrap(), "-w", out])
            .args(extra)
            .args(expr.split_whitespace())
            .output()
            .expect("tcpdump");
        assert!(t.status.success(), "tcpdump {expr:?}: {}", String::from_utf8_lossy(&t.stderr));
        read_pcap(Path::new(out))
    };
    for (expr, count) in [("", None), ("udp", None), ("vlan and tcp", None), ("ip6", Some("7000")), ("", Some("30000"))]
    {
        let ours = path("ours.pcap");
        let mut args = vec!["capture", "-r", big.to_str().unwrap(), "--workers", "0,1", "-w", &ours];
        let mut extra = Vec::new();
        if let Some(c) = count {
            args.extend(["-c", c]);
            extra.extend(["-c", c]);
        }
        args.extend(expr.split_whitespace());
        let out = ringwire(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let (a, b) = (read_pcap(Path::new(&ours)), tcpdump(&extra, expr, &path("ref.pcap")));
        assert!(b.len() > 1000, "{expr:?}: the reference keeps too little to show anything ({})", b.len());
        assert_eq!(a.len(), b.len(), "{expr:?} {count:?}: ringwire kept {} frames, tcpdump {}", a.len(), b.len());
        assert!(a == b, "{expr:?} {count:?}: same number of frames, not the same frames in the same order");
    }
    let print = |workers: &str| {
        let out = ringwire(&["capture", "-r", big.to_str().unwrap(), "--workers", workers, "udp"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let (two, one) = (print("0,1"), print("0"));
    assert!(two.len() > 100_000);
    assert!(two == one, "printed lines differ between one and two workers");
}

/// The counts of `ringwire capture`'s summary line: frames captured,
/// received by filter, lost to write errors, not written after the output
/// was closed.
fn summary_counts(stderr: &str) -> [u64; 4] {
    let line = stderr.lines().find(|l| l.contains("frames captured")).expect("a summary line");
    let count =
        |what: &str| line.split(", ").find_map(|part| part.strip_suffix(what)).map_or(0, |n| n.trim().parse().unwrap());
    [
        count("frames captured"),
        count("received by filter"),
        count("lost to write errors"),
        count("not written after the output was closed"),
    ]
}

/// A pcap file in `dir` of `n` generated frames of `size` bytes.
fn generated(dir: &Path, n: u32, size: u32) -> PathBuf {
    let path = dir.join(format!("gen-{n}-{size}.pcap"));
    let gen = Command::new(bin("ringwire-gen"))
        .args(["--pcap-out", path.to_str().unwrap(), "-n", &n.to_string(), "--size", &size.to_string()])
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    path
}

/// Spawn `ringwire ARGS` with standard output into a pipe, read `keep`
/// bytes from it and close it, as `| head -c KEEP`; then wait (bounded)
/// for the run to end. Returns the bytes read and the run's output.
fn read_then_close(args: &[&str], keep: usize) -> (Vec<u8>, std::process::Output) {
    let mut child = Command::new(bin("ringwire"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = vec![0u8; keep];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("ringwire {args:?} did not end after its reader left");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (head, child.wait_with_output().unwrap())
}

/// `-w -` into a reader that leaves early (`| head -c 100000`): the capture
/// stops there, quietly and with exit status 0, as printing does, instead
/// of reading on and counting every later frame as a write error. Its
/// summary counts as captured every record that went into the pipe whole
/// (at least those the reader read), and every other frame the filter
/// passed as not written after the output was closed: none as a write error.
#[test]
fn capture_to_a_pipe_stops_quietly_when_the_reader_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let big = generated(dir.path(), 20_000, 1514);
    let (head, out) = read_then_close(&["capture", "-r", big.to_str().unwrap(), "-w", "-"], 100_000);
    assert_eq!(&head[..4], &0xa1b2_3c4d_u32.to_le_bytes(), "a nanosecond pcap header first");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("ERROR") && !err.contains("ringwire: error"), "quiet: {err}");
    let [captured, passed, write_errors, closed] = summary_counts(&err);
    let (read_whole, _) = ringwire_engine::pcapio::complete_records(&head[24..]);
    assert!(read_whole >= 60, "{read_whole} records in the first 100 000 bytes");
    assert!(captured >= read_whole as u64, "{captured} captured, but the reader read {read_whole} whole: {err}");
    assert_eq!(write_errors, 0, "a closed output is not a write error: {err}");
    assert_eq!(captured + closed, passed, "every frame passed is in a count: {err}");
    assert!(closed > 0 && captured < 20_000, "the run stopped early: {err}");
}

/// Standard error into the same pipe as the frames (`2>&1 | head`): once
/// the reader leaves, the closing summary has nowhere to go either, and the
/// run still ends with exit status 0 (it panicked writing the summary).
#[test]
fn a_capture_whose_stderr_reader_leaves_still_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = generated(dir.path(), 20_000, 60);
    for args in ["-xx", "-w -"] {
        let script = format!(
            "set -o pipefail; '{}' capture -r '{}' {args} 2>&1 | head -c 3000 > /dev/null; echo \"status ${{PIPESTATUS[0]}}\"",
            bin("ringwire").display(),
            pcap.display()
        );
        let out = Command::new("timeout").args(["60", "bash", "-c", &script]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said.trim(), "status 0", "{args}: {said} {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Printing into a reader that leaves (`| head -c 5000`): every line that
/// went out whole counts as captured (at least the lines the reader
/// read), every other frame as not written after the output was closed.
#[test]
fn printing_into_a_reader_that_leaves_counts_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = generated(dir.path(), 20_000, 60);
    let (head, out) = read_then_close(&["capture", "-r", pcap.to_str().unwrap()], 5000);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let [captured, passed, write_errors, closed] = summary_counts(&err);
    let lines_read = head.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(lines_read >= 20, "{lines_read} lines in the first 5000 bytes");
    assert!(captured >= lines_read, "{captured} captured, but the reader read {lines_read} lines: {err}");
    assert_eq!(write_errors, 0, "{err}");
    assert_eq!(captured + closed, passed, "every frame passed is in a count: {err}");
    assert!(closed > 0, "{err}");
}

/// Printing a few frames a second into a reader that leaves (`| head -1`):
/// the line after it left finds the pipe closed, and the run stops there,
/// quietly and with exit status 0, not when the traffic ends, nor with a
/// "Broken pipe" error. (Slow frames are written one flush at a time, so
/// the closed pipe shows when a flush fails, not a write.)
#[test]
fn printing_slow_frames_stops_quietly_when_the_reader_leaves() {
    let dir = tempfile::tempdir().unwrap();
    // 100 frames 100 ms apart: 10 s of replay at the recorded pace.
    let cfg = paced_config(dir.path(), 100, 100, "name = \"p\"\nkind = \"print\"");
    let t0 = std::time::Instant::now();
    let mut child = Command::new(bin("ringwire"))
        .args(["run", cfg.to_str().unwrap(), "--control-socket", "none"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let deadline = t0 + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end after its reader left");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("ERROR") && !err.contains("error") && !err.contains("Broken pipe"), "quiet: {err}");
    assert!(took < Duration::from_secs(5), "stopped {took:?} after the start, not at the end of the replay");
}

/// `ringwire run` with a consumer writing standard output (`path = "-"`, or
/// printed lines): the final report goes to standard error, so the stream
/// holds the records (lines) alone.
#[test]
fn a_run_writing_standard_output_reports_on_standard_error() {
    let dir = tempfile::tempdir().unwrap();
    for (consumer, pcap) in
        [("name = \"w\"\nkind = \"pcap\"\npath = \"-\"", true), ("name = \"p\"\nkind = \"print\"", false)]
    {
        let cfg = paced_config(dir.path(), 30, 0, consumer);
        let out = Command::new(bin("ringwire"))
            .args(["run", cfg.to_str().unwrap(), "--control-socket", "none"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("accounting: all counters reconcile"), "the report: {err}");
        if pcap {
            let file = dir.path().join("stdout.pcap");
            std::fs::write(&file, &out.stdout).unwrap();
            assert_eq!(read_pcap(&file).len(), 30);
            assert_eq!(out.stdout.len(), 24 + 30 * (16 + 64), "the records alone");
        } else {
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.lines().count(), 30, "the lines alone: {text}");
        }
    }
}

/// tcpdump's fingers: `-nn -U -C 1 -W 3 -w OUT` rotates every MiB and keeps
/// the three newest files: each (but the last) ends with the record that
/// brings it to 1 MiB, tcpdump reads them, and together they hold the tail
/// of the capture, in order.
#[test]
fn capture_rotates_files_and_keeps_the_newest_as_tcpdump_s_c_and_w() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.pcap");
    ringwire_tests::record(&src, &["-n", "10000", "--size", "1000"]);
    let sent: Vec<Rec> = read_pcap(&src);
    let out = dir.path().join("out").join("rot.pcap");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    let args = ["capture", "-nn", "-U", "-r", src.to_str().unwrap(), "-C", "1", "-W", "3", "-w", out.to_str().unwrap()];
    let res = ringwire(&args);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    // 10000 records of 1016 bytes: 9.7 MiB, ten files started, the last three kept.
    let names: Vec<String> = (7..=9).map(|r| format!("rot.{r}.pcap")).collect();
    let mut left: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, names);
    let mut kept = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let f = out.with_file_name(n);
        let size = std::fs::metadata(&f).unwrap().len();
        if i < 2 {
            assert!(((1 << 20)..(1 << 20) + 1016).contains(&size), "{n}: {size} bytes");
        }
        assert_eq!(ringwire_tests::tcpdump_count(&f), read_pcap(&f).len(), "{n}");
        kept.extend(read_pcap(&f));
    }
    assert!(kept.len() > 2000, "{} frames kept", kept.len());
    assert!(kept[..] == sent[sent.len() - kept.len()..], "the newest frames, in order");

    refused(&["capture", "-r", src.to_str().unwrap(), "-C", "1"], "-C: rotating files needs -w FILE");
    // Said with the options' short names, as given (it named --file-size, which the README never uses).
    refused(
        &["capture", "-r", src.to_str().unwrap(), "-W", "3", "-w", out.to_str().unwrap()],
        "-W: keeping N files needs -C MIB",
    );
}

/// `-e` names the ethertypes tcpdump names (MPLS, PPPoE, EAPOL, PTP, ...),
/// as it names them (they read `Unknown`), though ringwire decodes none of
/// their payloads.
#[test]
fn link_headers_name_ethertypes_as_tcpdump_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ets.pcap");
    let ets = [0x8847u16, 0x8848, 0x8863, 0x8864, 0x8035, 0x888e, 0x8809, 0x88f7, 0x8902, 0x9100, 0x88e5, 0x22f0];
    let frames: Vec<Vec<u8>> = ets.iter().map(|et| eth(MAC_B, *et, &[0; 46])).collect();
    ringwire_tests::write_frames(&file, &frames);
    let f = file.to_str().unwrap();
    let names = |text: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(text)
            .lines()
            .filter_map(|l| l.split(", ethertype ").nth(1).map(|r| r.split(')').next().unwrap_or_default().to_owned()))
            .collect()
    };
    let ours = ringwire(&["capture", "-e", "-r", f]);
    let theirs = Command::new("tcpdump").args(["-nn", "-e", "-r", f]).output().unwrap();
    let (a, b) = (names(&ours.stdout), names(&theirs.stdout));
    assert_eq!(a.len(), ets.len(), "{a:?}");
    assert_eq!(a, b);
}

/// Printing with tcpdump's `-e`, `-XX` (`-xx`) and `-t` options: each line
/// shows the link-level header and the time as tcpdump does, and the hex
/// dump under it is tcpdump's, byte for byte, on the varied corpus.
#[test]
fn printing_shows_link_headers_times_and_hex_dumps_as_tcpdump_does() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("print.pcap");
    // The corpus, and text with spaces (tcpdump's ASCII column shows a space as a dot) and an
    // IEEE 802.3 frame (a length where the ethertype would be: a spanning-tree BPDU).
    let mut frames: Vec<Vec<u8>> = corpus().into_iter().map(|(d, _)| d).collect();
    let mut http = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
        .tcp(40000, 80, 1, 1000)
        .write(&mut http, b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n")
        .unwrap();
    frames.push(http);
    let mut bpdu = [0x01, 0x80, 0xc2, 0, 0, 0].to_vec();
    bpdu.extend_from_slice(&MAC_A);
    bpdu.extend_from_slice(&[0x00, 0x26, 0x42, 0x42, 0x03]);
    bpdu.resize(60, 0);
    frames.push(bpdu);
    // Runts with an IPv4 ethertype: nothing after the Ethernet header (tcpdump
    // then dumps the whole frame), and 6 bytes of an IP header.
    let mut runt = [MAC_B, MAC_A].concat();
    runt.extend_from_slice(&[0x08, 0x00]);
    frames.push(runt.clone());
    runt.extend_from_slice(&[0x45, 0, 0, 20, 0, 0]);
    frames.push(runt);
    // Nanosecond times, which tcpdump prints cut to the microsecond by default.
    ringwire_tests::write_pcap_nanos(
        &src,
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| (Duration::new(1_700_000_000 + i as u64, i as u32 * 1_234_567 + 999), &f[..])),
    );
    let n = frames.len();
    let s = src.to_str().unwrap();
    let tcpdump = |flag: &str| {
        let t = Command::new("tcpdump").args(["-nn", flag, "-r", s]).output().expect("tcpdump");
        assert!(t.status.success(), "tcpdump: {}", String::from_utf8_lossy(&t.stderr));
        String::from_utf8(t.stdout).unwrap()
    };
    let ours = |flag: &str| {
        let out = ringwire(&["capture", "--workers", "0", flag, "-r", s]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // `-e`: "SRC > DST, ethertype NAME (0xNNNN), length N: " after the time (one file: no port column).
    let link = |text: &str, skip: usize| -> Vec<String> {
        // (tcpdump dumps the payload of an unknown ethertype even without -X.)
        text.lines()
            .filter(|l| !l.starts_with('\t'))
            .map(|l| {
                let rest = l.splitn(skip + 1, ' ').nth(skip).unwrap_or_default();
                rest.find(": ").map_or_else(|| rest.to_owned(), |i| rest[..i + 2].to_owned())
            })
            .collect()
    };
    let (a, b) = (link(&ours("-e"), 1), link(&tcpdump("-e"), 1));
    assert_eq!(a.len(), n);
    assert_eq!(a, b, "-e: the link-level header as tcpdump prints it");
    // After it, UDP over IPv4 and IPv6 reads as tcpdump's: addresses and ports
    // (no `IP`: the header named it) and the UDP payload's length.
    let plain = dir.path().join("udp.pcap");
    let udp_frames: Vec<Vec<u8>> = [0usize, 18, 1000]
        .iter()
        .flat_map(|&len| {
            let mut v4 = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
                .udp(10000, 20000)
                .write(&mut v4, &vec![1; len])
                .unwrap();
            let mut v6 = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(
                    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    64,
                )
                .udp(10001, 20001)
                .write(&mut v6, &vec![2; len])
                .unwrap();
            [v4, v6]
        })
        .collect();
    // TCP frames whose IP length is 0, as a capture of offloaded (TSO, BIG TCP) frames shows them.
    let mut udp_frames = udp_frames;
    for v6 in [false, true] {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let b = if v6 {
            b.ipv6(
                [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            b.ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
        };
        let mut f = Vec::new();
        b.tcp(40000, 80, 1, 1000).ack(7).write(&mut f, &[3; 1400]).unwrap();
        let len_at = if v6 { 14 + 4 } else { 14 + 2 };
        f[len_at..len_at + 2].copy_from_slice(&[0, 0]);
        udp_frames.push(f);
    }
    ringwire_tests::write_pcap(&plain, udp_frames.iter().map(|f| (Duration::from_secs(1_700_000_000), &f[..])));
    let after_link = |out: Vec<u8>, skip: usize| -> Vec<String> {
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .map(|l| {
                let rest = l.splitn(skip + 1, ' ').nth(skip).unwrap_or_default();
                rest.split_once(": ").map_or_else(String::new, |(_, decode)| decode.to_owned())
            })
            .collect()
    };
    let theirs = Command::new("tcpdump").args(["-nn", "-e", "-r", plain.to_str().unwrap()]).output().unwrap();
    let ours_udp = ringwire(&["capture", "--workers", "0", "-e", "-r", plain.to_str().unwrap()]);
    let (a, b) = (after_link(ours_udp.stdout, 1), after_link(theirs.stdout, 1));
    assert_eq!(a.len(), 8);
    assert_eq!(a[..6], b[..6], "-e: UDP lines after the link-level header");
    // An IP length of 0: the frame's own length, as tcpdump built with GUESS_TSO
    // prints it (Debian's prints `bad-len 0` and `[|tcp]`); data to port 80
    // that is not a request is `HTTP`.
    assert_eq!(
        a[6..],
        [
            "10.0.0.1.40000 > 10.1.0.2.80: Flags [.], seq 1:1401, ack 7, win 1000, length 1400: HTTP",
            "fd00::1.40000 > fd00::2.80: Flags [.], seq 1:1401, ack 7, win 1000, length 1400: HTTP"
        ],
        "offloaded frames"
    );
    // `-XX` and `-xx`, and from the network-layer header on `-X` and `-x`: the dump lines (tab-indented), identical.
    for flag in ["-XX", "-xx", "-X", "-x"] {
        let dump = |text: String| text.lines().filter(|l| l.starts_with('\t')).map(str::to_owned).collect::<Vec<_>>();
        let (a, b) = (dump(ours(flag)), dump(tcpdump(flag)));
        assert!(a.len() > n, "{flag}: {} dump lines", a.len());
        assert!(a == b, "{flag}: the dump differs from tcpdump's");
    }
    refused(&["capture", "-r", s, "-w", dir.path().join("o.pcap").to_str().unwrap(), "-X"], "do not apply with -w");
    // `-A` and `-AA`: the text under each line (split where each frame's
    // line begins, at its time with -tt), as tcpdump prints it.
    for flag in ["-A", "-AA"] {
        let texts = |out: &[u8]| -> Vec<String> {
            let text = String::from_utf8_lossy(out);
            text.split("\n1700000").skip(1).map(|f| f.split_once('\n').map_or("", |(_, t)| t).to_owned()).collect()
        };
        let mine = ringwire(&["capture", "--workers", "0", "-tt", flag, "-r", s]);
        let theirs = Command::new("tcpdump").args(["-nn", "-tt", flag, "-r", s]).output().unwrap();
        let (a, b) = (texts(&[b"\n", &mine.stdout[..]].concat()), texts(&[b"\n", &theirs.stdout[..]].concat()));
        assert_eq!(a.len(), n, "{flag}");
        for (k, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{flag}: frame {k}");
        }
        assert!(a.iter().any(|t| t.contains("GET /index.html HTTP/1.1\nHost: example\n")), "{flag}: {a:?}");
    }

    // The `-t` family, in microseconds (tcpdump's default) and nanoseconds:
    // each line begins with tcpdump's time. Ours is what a line has before
    // the same line printed without one (`-t`).
    // (Frames of an unknown ethertype are followed by a dump of what follows their link-level header, as tcpdump's.)
    let untimed: Vec<String> = ours("-t").lines().filter(|l| !l.starts_with('\t')).map(str::to_owned).collect();
    assert!(
        // (A frame with nothing after its Ethernet header prints only ` [|ip]`.)
        untimed
            .iter()
            .all(|l| (!l.starts_with(' ') || l == " [|ip]") && !l.starts_with("22:") && !l.starts_with("1700")),
        "-t: no time"
    );
    for precision in ["micro", "nano"] {
        for flag in ["", "-tt", "-ttt", "-tttt", "-ttttt"] {
            let args = |tool: &mut Command| {
                tool.arg(format!("--time-stamp-precision={precision}")).args(Some(flag).filter(|f| !f.is_empty()));
            };
            let mut cmd = Command::new(bin("ringwire"));
            cmd.args(["capture", "--workers", "0", "-r", s]);
            args(&mut cmd);
            let out = cmd.output().unwrap();
            let ours: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('\t'))
                .zip(&untimed)
                .map(|(l, rest)| l.strip_suffix(rest.as_str()).expect("the time, then the line").to_owned())
                .collect();
            assert_eq!(ours.len(), n, "{precision} {flag}");
            let mut cmd = Command::new("tcpdump");
            cmd.args(["-nn", "-r", s]);
            args(&mut cmd);
            let theirs = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
            let theirs: Vec<&str> = theirs.lines().filter(|l| !l.starts_with('\t')).collect();
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(b.starts_with(a.as_str()), "{precision} {flag}: ours `{a}`, tcpdump's line `{b}`");
            }
        }
    }
}

/// Wait (up to 10 s: on a loaded machine start-up takes a while) until
/// process `pid` catches SIGINT.
fn wait_for_sigint_handler(pid: u32) {
    let caught = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).unwrap_or("0").trim().to_owned();
        u64::from_str_radix(&mask, 16).is_ok_and(|m| m & (1 << (libc::SIGINT - 1)) != 0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !caught() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(caught(), "process {pid} catches SIGINT within 10 s");
}

/// One stop request delivered twice at once (`timeout` signals the process
/// and then its process group) is one request: the run stops cleanly, with
/// its report and status 0, not as after a second Ctrl-C.
#[test]
fn a_signal_delivered_twice_at_once_is_one_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.pcap");
    let cfg = paced_config(
        dir.path(),
        100,
        100,
        &format!("name = \"w\"\nkind = \"pcap\"\npath = \"{}\"", out_file.display()),
    );
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let run = Proc::spawn(
            "ringwire run",
            Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
        );
        wait_for_sigint_handler(run.pid());
        std::thread::sleep(Duration::from_millis(300));
        // 1 ms apart, so the first is handled before the second comes
        // (at the same instant the kernel would merge them into one).
        run.signal(sig);
        std::thread::sleep(Duration::from_millis(1));
        run.signal(sig);
        let out = run.wait(Duration::from_secs(10));
        let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "signal {sig}: {err}");
        assert!(!err.contains("exiting now"), "signal {sig}: {err}");
        assert!(stdout.contains("all counters reconcile"), "signal {sig}: the report: {stdout}");
        let written = read_pcap(&out_file).len();
        assert!((1..100).contains(&written), "signal {sig}: stopped mid-replay, {written} frames written");
    }
}

/// A second Ctrl-C while a capture stops ends it at once (status 130, one
/// line saying what is lost): here the reader of its FIFO keeps it open
/// without reading, so the final write-out would wait forever.
#[test]
fn a_second_interrupt_ends_a_stop_that_waits() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = ringwire_tests::StalledFifo::new(dir.path());
    let (src, fifo) = (&stalled.src, &stalled.fifo);
    let capture = Proc::spawn(
        "ringwire capture",
        Command::new(bin("ringwire")).args(["capture", "--workers", "0", "-r", src.to_str().unwrap(), "-w"]).arg(fifo),
    );
    // Its SIGINT handler is in place, and the pipe is full: the writer waits.
    wait_for_sigint_handler(capture.pid());
    std::thread::sleep(Duration::from_millis(700));
    // Again until it exits: two signals that arrive together count as one.
    let mut capture = capture;
    for _ in 0..10 {
        capture.signal(libc::SIGINT);
        std::thread::sleep(Duration::from_millis(500));
        if capture.exited() {
            break;
        }
    }
    let out = capture.wait(Duration::from_secs(5));
    drop(stalled);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("ringwire: SIGINT while stopping: exiting now"), "{err}");
}

/// Printed lines are tcpdump's, whole: ARP requests and replies, ICMP and
/// ICMPv6 echoes, neighbour discovery and MLDv2 reports, and TCP segments
/// with tcpdump's flag letters in its order, sequence numbers relative to
/// each conversation's first (absolute with `-S`), window, urgent pointer
/// and options (SACK blocks relative too; unknown, mis-sized and impossible
/// options as tcpdump shows them); in microseconds, or nanoseconds with
/// `--nano`.
#[test]
fn printed_lines_are_tcpdump_s() {
    use etherparse::{IcmpEchoHeader, Icmpv6Type};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kinds.pcap");
    let arp = |op: u8, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]| {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, op];
        for part in [&sha[..], &spa, &tha, &tpa] {
            a.extend_from_slice(part);
        }
        a.resize(46, 0);
        eth([0xff; 6], 0x0806, &a)
    };
    let v4 = || PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let v6 = || {
        let (a, b) =
            ("fd00::1".parse::<std::net::Ipv6Addr>().unwrap(), "fd00::2".parse::<std::net::Ipv6Addr>().unwrap());
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(a.octets(), b.octets(), 64)
    };
    let icmp4 = |b: etherparse::PacketBuilderStep<etherparse::Icmpv4Header>| {
        let mut f = Vec::new();
        b.write(&mut f, &[0; 56]).unwrap();
        f
    };
    let icmp6 = |t: Icmpv6Type, payload: &[u8]| {
        let mut f = Vec::new();
        v6().icmpv6(t).write(&mut f, payload).unwrap();
        f
    };
    let target = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let nd = |t: u8| Icmpv6Type::Unknown { type_u8: t, code_u8: 0, bytes5to8: [0; 4] };
    type Tcp = etherparse::PacketBuilderStep<etherparse::TcpHeader>;
    let tcp = |set: &dyn Fn(Tcp) -> Tcp| {
        let mut f = Vec::new();
        set(v4().tcp(1000, 2000, 1, 1000)).write(&mut f, &[]).unwrap();
        f
    };
    // A conversation between 10.0.0.1.33000 and 10.0.0.2.44000; raw options padded to whole words.
    let seg = |to_server: bool, seq: u32, set: &dyn Fn(Tcp) -> Tcp, options: &[u8], payload: usize| {
        let (src, dst, sport, dport) = if to_server {
            ([10, 0, 0, 1], [10, 0, 0, 2], 33000, 44000)
        } else {
            ([10, 0, 0, 2], [10, 0, 0, 1], 44000, 33000)
        };
        let mut raw = options.to_vec();
        raw.resize(options.len().div_ceil(4) * 4, 0);
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4(src, dst, 64).tcp(sport, dport, seq, 64240);
        let mut f = Vec::new();
        set(b).options_raw(&raw).unwrap().write(&mut f, &vec![0x61; payload]).unwrap();
        f
    };
    let ts_opt = |val: u32, ecr: u32| [&[8, 10][..], &val.to_be_bytes(), &ecr.to_be_bytes()].concat();
    let syn_opts = [&[2, 4, 0x05, 0xb4, 4, 2][..], &ts_opt(7, 0), &[1, 3, 3, 7]].concat();
    let sack = [&[1, 1, 5, 10][..], &1201u32.to_be_bytes(), &1301u32.to_be_bytes()].concat();
    let conversation = vec![
        seg(true, 1000, &|t| t.syn(), &syn_opts, 0),
        seg(false, 5000, &|t| t.syn().ack(1001), &[2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7], 0),
        seg(true, 1001, &|t| t.ack(5001), &ts_opt(8, 9), 0),
        seg(true, 1001, &|t| t.psh().ack(5001), &[], 100),
        seg(false, 5001, &|t| t.ack(1101), &sack, 0),
        seg(true, 1101, &|t| t.fin().ack(5001).urg(3), &[], 0),
        seg(false, 5001, &|t| t.rst(), &[], 0),
        // An unknown option, an MSS option 6 bytes long, then an impossible length.
        seg(true, 1102, &|t| t.ack(5001), &[99, 4, 1, 2, 2, 6, 0, 1, 0, 0], 0),
        seg(true, 1102, &|t| t.ack(5001), &[1, 2, 10, 0], 0),
    ];
    // Both ends on the same port: the conversation is keyed by the lower address.
    let same_port = |from_a: bool, seq: u32, ack: u32| {
        let (a, b) = (
            "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        );
        let (src, dst) = if from_a { (a, b) } else { (b, a) };
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(src, dst, 64)
            .tcp(7000, 7000, seq, 100)
            .ack(ack)
            .write(&mut f, &[1; 10])
            .unwrap();
        f
    };
    // An MLDv2 report behind a hop-by-hop header, as Linux sends when a link comes up.
    let mld = ringwire_tests::from_hex(&MLD_REPORT[..220]);
    let frames = vec![
        arp(1, MAC_A, [10, 0, 0, 1], [0; 6], [10, 0, 0, 2]),
        arp(1, MAC_A, [10, 0, 0, 1], MAC_B, [10, 0, 0, 2]),
        arp(2, MAC_B, [10, 0, 0, 2], MAC_A, [10, 0, 0, 1]),
        icmp4(v4().icmpv4_echo_request(7, 3)),
        icmp4(v4().icmpv4_echo_reply(7, 3)),
        icmp6(Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 9, seq: 4 }), &[0; 56]),
        icmp6(Icmpv6Type::EchoReply(IcmpEchoHeader { id: 9, seq: 4 }), &[0; 56]),
        icmp6(nd(135), &target),
        icmp6(nd(136), &target),
        icmp6(nd(133), &[0; 4]),
        tcp(&|t| t.syn()),
        tcp(&|t| t.syn().ack(5)),
        tcp(&|t| t.syn().fin()),
        tcp(&|t| t.fin().psh().urg(1)),
        tcp(&|t| t.syn().ece().cwr()),
        tcp(&|t| t.ack(5).urg(1)),
        tcp(&|t| t),
        same_port(true, 100, 900),
        same_port(false, 900, 110),
        same_port(true, 110, 910),
        mld,
        // IPv4 fragments: the first has the UDP header, the others only the protocol's number.
        eth(MAC_B, 0x0800, &ipv4_raw(17, 0x2000, &[[8, 8, 8, 8, 8, 8, 0, 0].as_slice(), &[0; 56]].concat())),
        eth(MAC_B, 0x0800, &ipv4_raw(17, 100, &[0; 64])),
        eth(MAC_B, 0x0800, &ipv4_raw(253, 0, &[0; 8])),
        // Not decoded: the link-level header and a dump of the rest.
        eth(MAC_B, 0x1234, &[0xaa; 50]),
        eth(MAC_B, 0x88cc, &[0; 46]),
        // An IP header that says more than the frame holds.
        eth(MAC_B, 0x0800, &ipv4_raw(17, 0, &[[1, 0, 2, 0, 0, 108, 0, 0].as_slice(), &[0; 100]].concat()))[..60]
            .to_vec(),
        {
            let mut f = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .single_vlan(10.try_into().unwrap())
                .ipv4([10, 0, 0, 3], [10, 0, 0, 4], 64)
                .udp(1000, 2000)
                .write(&mut f, &[0; 20])
                .unwrap();
            f
        },
    ];
    let frames: Vec<Vec<u8>> = frames.into_iter().chain(conversation).collect();
    // Nanosecond times, not on whole microseconds.
    ringwire_tests::write_pcap_nanos(
        &file,
        frames.iter().enumerate().map(|(i, f)| (Duration::new(1_700_000_000, i as u32 * 1_001_001 + 7), &f[..])),
    );
    let f = file.to_str().unwrap();
    for flags in [&[][..], &["-S"], &["--nano"], &["-S", "-e", "-x"], &["-q"], &["-q", "-e"]] {
        let ours = ringwire(&[&["capture", "--workers", "0", "-r", f][..], flags].concat());
        assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
        let theirs = Command::new("tcpdump").args(["-nn", "-r", f]).args(flags).output().unwrap();
        let (ours, theirs) = (String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap());
        assert_eq!(ours.lines().filter(|l| !l.starts_with('\t')).count(), frames.len(), "{flags:?}: {ours}");
        for (a, b) in ours.lines().zip(theirs.lines()) {
            assert_eq!(a, b, "{flags:?}");
        }
        assert_eq!(ours.lines().count(), theirs.lines().count(), "{flags:?}");
    }
}

/// An MLDv2 report as Linux sends it when an interface comes up (IPv6 with a
/// hop-by-hop header holding a router alert), in hex.
const MLD_REPORT: &str = "3333000000169a411357e95a86dd6000000000380001fe80000000000000984113fffe57e95aff020000000000000000\
    0000000000163a000502000001008f00f1470000000204000000ff0200000000000000000001ff00000204000000ff0200000000000000000001ff57e95a";

/// The bytes of a pcap file of header `magic` and `snaplen` (version 2.4,
/// Ethernet), records given as their header's four words (seconds,
/// fraction, captured and original lengths) and data, with `extra` zero
/// bytes after each record header (modified pcap has 8).
fn raw_pcap<'a>(
    magic: u32,
    snaplen: u32,
    extra: usize,
    records: impl IntoIterator<Item = ([u32; 4], &'a [u8])>,
) -> Vec<u8> {
    let mut file = Vec::new();
    for word in [magic, 0x0004_0002, 0, 0, snaplen, 1] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    for (words, data) in records {
        for word in words {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend(std::iter::repeat_n(0, extra));
        file.extend_from_slice(data);
    }
    file
}

/// A record whose fraction of a second is a second or more (1 500 000 µs)
/// is kept, its time carried into the seconds, as tcpdump and tshark read
/// it: the file is read to its end (it used to end at that record).
#[test]
fn a_fraction_of_a_second_out_of_range_loses_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("frac.pcap");
    let frame = eth(MAC_B, 0x0800, &ipv4_raw(17, 0, &[0; 16]));
    let len = frame.len() as u32;
    let records = (0..10u32).map(|i| ([i, if i == 3 { 1_500_000 } else { 5 }, len, len], frame.as_slice()));
    std::fs::write(&src, raw_pcap(0xa1b2_c3d4, 65535, 0, records)).unwrap();
    let out = dir.path().join("out.pcap");
    let res = ringwire(&["capture", "-r", src.to_str().unwrap(), "-w", out.to_str().unwrap()]);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let recs = read_pcap(&out);
    assert_eq!(recs.len(), 10, "every record");
    assert_eq!(recs[3].ts_ns, 4_500_000_000, "3 s and 1.5 s");
}

/// `capture -r F -w -` into a reader that does not read for 6 s (longer
/// than the 5 s the worker used to wait for a free chunk before dropping):
/// the replay waits for the reader, as tcpdump's does, and the reader gets
/// every record, with exit status 0 and no drop reported. The file is
/// larger than the writer's 32 MiB queue and the pipe together.
#[test]
fn a_slow_reader_of_standard_output_gets_every_record_of_a_file() {
    use std::io::Read;
    const FRAMES: usize = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.pcap");
    let frame = eth(MAC_B, 0x0800, &ipv4_raw(17, 0, &[0x5a; 1500]));
    ringwire_tests::write_pcap(&src, (0..FRAMES).map(|i| (Duration::from_micros(i as u64), frame.as_slice())));
    let mut child = Command::new(bin("ringwire"))
        .args(["capture", "--workers", "0", "-r", src.to_str().unwrap(), "-w", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_secs(6));
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture did not end within 60 s of its reader starting");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains(", 0 dropped on a full queue"), "{err}");
    let path = dir.path().join("out.pcap");
    std::fs::write(&path, &out).unwrap();
    let recs = read_pcap(&path);
    assert_eq!(recs.len(), FRAMES, "{err}");
    assert!(recs.iter().all(|r| r.data == frame), "records as they were");
}

/// A file replayed at its recorded pace with records 3.5 s apart: the
/// replay takes the recorded time, delivers every record, and waits for
/// the far one asleep, not polling (the old worker woke every 200 µs: 300 ms
/// of CPU in 2 s of waiting, where this allows 100 ms).
#[test]
fn a_recorded_pace_replay_waits_for_a_far_record_asleep() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let cfg = paced_to_pcap(dir.path(), 2, 3500, &out);
    let start = std::time::Instant::now();
    let p = Proc::spawn(
        "ringwire run",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", "none"]),
    );
    std::thread::sleep(Duration::from_millis(700));
    let before = ringwire_tests::cpu_time(p.pid());
    std::thread::sleep(Duration::from_secs(2));
    let waited = ringwire_tests::cpu_time(p.pid()) - before;
    let res = p.wait(Duration::from_secs(30));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(start.elapsed() >= Duration::from_millis(3500), "the recorded pace: {:?}", start.elapsed());
    assert_eq!(read_pcap(&out).len(), 2, "every record");
    assert!(waited <= Duration::from_millis(100), "{waited:?} of CPU in 2 s of waiting for a record");
}

/// Records whose lengths disagree are read as libpcap reads them, in plain
/// and in modified pcap (magic 0xa1b2cd34, 24-byte record headers): one
/// captured longer than the file's snaplen is cut to it (plus 14 bytes in
/// modified pcap, as libpcap reads it), an original
/// length below the captured one is kept (ringwire used to raise it, so
/// `less 80` kept another frame than tcpdump's). Printed lines and
/// `less`/`greater` match tcpdump's, and `-w` writes the cut record with
/// its original length.
#[test]
fn records_with_odd_lengths_are_read_as_tcpdump_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let udp = |len: usize| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 1, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &vec![3; len - 42])
            .unwrap();
        f
    };
    // (frame, original length): 150 captured bytes in a file of snaplen 100; 60 of a 40-byte frame.
    // And a record of no captured byte.
    let records = [(udp(150), 1514u32), (udp(60), 40), (udp(90), 90), (Vec::new(), 60)];
    // Records cut inside the Ethernet header print as tcpdump prints them
    // (`[|ether]`, a dump only with -xx, -XX, -AA; they read `runt (6 bytes)`).
    let runts = dir.path().join("runts.pcap");
    let cut = |n: usize| ([1_700_000_000, 0, n as u32, 60], udp(60)[..n].to_vec());
    let cuts = [cut(6), cut(13)];
    std::fs::write(&runts, raw_pcap(0xa1b2_c3d4, 100, 0, cuts.iter().map(|(w, f)| (*w, f.as_slice())))).unwrap();
    for flags in [&[][..], &["-e"], &["-x"], &["-XX"], &["-AA"]] {
        let ours = ringwire(&[&["capture", "--workers", "0", "-r", runts.to_str().unwrap()][..], flags].concat());
        let theirs = Command::new("tcpdump").args(["-nn", "-r", runts.to_str().unwrap()]).args(flags).output().unwrap();
        assert_eq!(String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap(), "{flags:?}");
    }
    for (name, magic, extra) in [("plain.pcap", 0xa1b2_c3d4u32, 0usize), ("modified.pcap", 0xa1b2_cd34, 8)] {
        let path = dir.path().join(name);
        let words = |i: usize, frame: &[u8], orig: u32| [1_700_000_000 + i as u32, 5, frame.len() as u32, orig];
        let file =
            raw_pcap(magic, 100, extra, records.iter().enumerate().map(|(i, (f, o))| (words(i, f, *o), f.as_slice())));
        std::fs::write(&path, file).unwrap();
        let f = path.to_str().unwrap();
        for expr in [&[][..], &["less", "80"], &["greater", "100"], &["-e"]] {
            let ours = ringwire(&[&["capture", "--workers", "0", "-r", f][..], expr].concat());
            assert!(ours.status.success(), "{name} {expr:?}: {}", String::from_utf8_lossy(&ours.stderr));
            let theirs = Command::new("tcpdump").args(["-nn", "-r", f]).args(expr).output().unwrap();
            assert!(theirs.status.success(), "tcpdump {name}: {}", String::from_utf8_lossy(&theirs.stderr));
            let (ours, theirs) = (String::from_utf8(ours.stdout).unwrap(), String::from_utf8(theirs.stdout).unwrap());
            assert!(!theirs.is_empty() || expr.len() == 2, "{name} {expr:?}");
            assert_eq!(ours, theirs, "{name} {expr:?}");
        }
        let out = dir.path().join(format!("out-{name}"));
        let res = ringwire(&["capture", "--workers", "0", "-r", f, "-w", out.to_str().unwrap()]);
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        // What tcpdump -w writes from the same file (pcap-file refuses an
        // original length below the captured one: read with the engine's reader).
        let tcpdump_out = dir.path().join(format!("tcpdump-{name}"));
        let t = Command::new("tcpdump").args(["-r", f, "-w", tcpdump_out.to_str().unwrap()]).output().unwrap();
        assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
        let read = |p: &Path| {
            let mut r = ringwire_engine::pcapio::PcapReader::open(p).unwrap();
            let mut got = Vec::new();
            while let Some(rec) = r.next_record().unwrap() {
                got.push((rec.ts_ns, rec.data.to_vec(), rec.orig_len));
            }
            got
        };
        let (ours, theirs) = (read(&out), read(&tcpdump_out));
        let lens: Vec<(usize, u32)> = ours.iter().map(|r| (r.1.len(), r.2)).collect();
        // libpcap reads a modified file's snaplen as 14 bytes longer (a cooked-mode header).
        let cut = if extra > 0 { 114 } else { 100 };
        assert_eq!(lens, [(cut, 1514), (60, 40), (90, 90), (0, 60)], "{name}");
        assert_eq!(ours, theirs, "{name}: the records tcpdump -w writes");
    }
}

/// Frames cut short by a snaplen print as tcpdump prints them, at every cut
/// from the Ethernet header to past the TCP header: a cut tag `[|vlan]`, a
/// cut IP header `[|ip]` / `[|ip6]`, a cut UDP or TCP header `[|udp]` /
/// `[|tcp]` (after the ports once they were captured), with and without
/// the link-level header.
#[test]
fn frames_cut_by_a_snaplen_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.pcap");
    // IPv4 and IPv6, UDP and TCP, tagged (flows 4 to 7) and not.
    ringwire_tests::record(&whole, &["--count", "8", "--flows", "8", "--size", "200", "--vlan-every", "2"]);
    // A TCP conversation whose segments carry options (a snaplen cuts
    // them: the line goes up to the cut, and the numbers still count for
    // the conversation's later lines).
    let options = dir.path().join("options.pcap");
    ringwire_tests::write_frames(&options, &tcp_with_options());
    // ICMPv6: echo, neighbor discovery, an MLDv2 report.
    let icmp6 = dir.path().join("icmp6.pcap");
    ringwire_tests::write_frames(&icmp6, &icmp6_messages());
    // Headers that say what they cannot be, and IPv6 extension headers, cut too.
    let odd = dir.path().join("odd.pcap");
    ringwire_tests::write_frames(&odd, &odd_frames());
    // Two tags (802.1ad and 802.1Q outside an 802.1Q one), to be cut within either.
    let qinq = dir.path().join("qinq.pcap");
    let double = |outer: u16| {
        let mut ip = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 5001)
            .write(&mut ip, &[7; 8])
            .unwrap();
        let mut f = [[2u8; 6], [4; 6]].concat();
        for (tpid, tci) in [(outer, 10u16), (0x8100, 20)] {
            f.extend(tpid.to_be_bytes());
            f.extend(tci.to_be_bytes());
        }
        f.extend(0x0800u16.to_be_bytes());
        f.extend(ip);
        f
    };
    let doubles = [double(0x88a8), double(0x8100)];
    ringwire_tests::write_frames(&qinq, &doubles);
    let cut = dir.path().join("cut.pcap");
    for snaplen in 14..=30 {
        ringwire_tests::cut_records(&qinq, snaplen, &cut);
        for flags in [&["-x"][..], &["-XX"], &["-A"]] {
            ringwire_tests::printed_as_tcpdump(&cut, flags, &format!("-s {snaplen}"));
        }
    }
    let inputs = (14..=80).map(|n| (&whole, n)).chain((54..=100).map(|n| (&options, n)));
    let inputs = inputs.chain((14..=60).map(|n| (&qinq, n)));
    let inputs = inputs.chain((54..=96).map(|n| (&icmp6, n))).chain((34..=100).map(|n| (&odd, n)));
    for (input, snaplen) in inputs {
        ringwire_tests::cut_records(input, snaplen, &cut);
        for flags in [&[][..], &["-e"], &["-q"], &["-q", "-e"]] {
            ringwire_tests::printed_as_tcpdump(&cut, flags, &format!("-s {snaplen}"));
        }
    }
}

/// A TCP handshake, data and a FIN with the options a Linux stack sends.
fn tcp_with_options() -> Vec<Vec<u8>> {
    use etherparse::{PacketBuilder, TcpOptionElement as O};
    let seg = |out: bool,
               f: &dyn Fn(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
               seq: u32,
               opts: &[O],
               data: &[u8]| {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let (src, dst, sp, dp) = if out { (a, b, 45000, 7777) } else { (b, a, 7777, 45000) };
        let mut frame = Vec::new();
        f(PacketBuilder::ethernet2([2; 6], [3; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 65535))
            .options(opts)
            .unwrap()
            .write(&mut frame, data)
            .unwrap();
        frame
    };
    let ts = || O::Timestamp(100, 200);
    vec![
        seg(
            true,
            &|t| t.syn(),
            1000,
            &[O::MaximumSegmentSize(1460), O::SelectiveAcknowledgementPermitted, ts(), O::Noop, O::WindowScale(7)],
            b"",
        ),
        seg(
            false,
            &|t| t.syn().ack(1001),
            5000,
            &[
                O::MaximumSegmentSize(1460),
                O::Noop,
                O::Noop,
                O::SelectiveAcknowledgementPermitted,
                O::Noop,
                O::WindowScale(7),
            ],
            b"",
        ),
        seg(true, &|t| t.ack(5001), 1001, &[O::Noop, O::Noop, ts()], b""),
        seg(true, &|t| t.psh().ack(5001), 1001, &[O::Noop, O::Noop, ts()], b"GET / HTTP/1.0\r\n\r\n"),
        seg(
            false,
            &|t| t.ack(1019),
            5001,
            &[O::Noop, O::Noop, ts(), O::Noop, O::Noop, O::SelectiveAcknowledgement((1001, 1010), [None, None, None])],
            b"",
        ),
        seg(true, &|t| t.fin().ack(5001), 1019, &[O::Noop, O::Noop, ts()], b""),
    ]
}

/// ICMPv6 messages tcpdump decodes: echo request and reply, router
/// solicitation and advertisement, neighbor solicitation and
/// advertisement, an MLDv2 report.
fn icmp6_messages() -> Vec<Vec<u8>> {
    let (a, b) =
        ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let msg = |kind: u8, bytes5to8: [u8; 4], body: &[u8]| {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(a, b, 255)
            .icmpv6_raw(kind, 0, bytes5to8)
            .write(&mut frame, body)
            .unwrap();
        frame
    };
    vec![
        msg(128, [0, 7, 0, 1], &[0x61; 24]),
        msg(129, [0, 7, 0, 1], &[0x61; 24]),
        msg(133, [0; 4], &[1, 1, 2, 0, 0, 0, 0, 1]),
        msg(134, [64, 0, 7, 8], &[0; 8]),
        msg(135, [0; 4], &[&b[..], &[1, 1, 2, 0, 0, 0, 0, 1]].concat()),
        msg(136, [0x60, 0, 0, 0], &[&a[..], &[2, 1, 2, 0, 0, 0, 0, 2]].concat()),
        msg(143, [0, 0, 0, 1], &[4, 0, 0, 0, 0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb]),
    ]
}

/// Frames whose headers say what they cannot be (a UDP length beyond the
/// packet or under 8, a TCP header length under 20 or beyond the segment,
/// an IPv4 header length under 20 or beyond the frame, a total length under
/// the header length, a bad TCP option
/// first or after others) and IPv6 extension headers (hop-by-hop,
/// destination options, a first and a later fragment), each line as
/// tcpdump prints it, also with `-S` and `-e`.
#[test]
fn malformed_headers_and_ipv6_extensions_print_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd.pcap");
    let frames = odd_frames();
    ringwire_tests::write_frames(&file, &frames);
    for flags in [&[][..], &["-S"], &["-e"], &["-q"]] {
        let ours = ringwire_tests::printed_as_tcpdump(&file, flags, "odd headers");
        assert_eq!(ours.lines().count(), frames.len(), "{flags:?}: {ours}");
    }
}

/// [`ODD_FRAMES`] as bytes.
fn odd_frames() -> Vec<Vec<u8>> {
    ODD_FRAMES.iter().map(|h| ringwire_tests::from_hex(h)).collect()
}

/// The frames of [`malformed_headers_and_ipv6_extensions_print_as_tcpdump_prints_them`], in hex.
const ODD_FRAMES: &[&str] = &[
    "02000000000202000000000108004500003000010000401166ba0a0000010a00000203e81388006400007878787878787878787878787878787878787878",
    "02000000000202000000000108004500003000010000401166ba0a0000010a00000203e81388000400007878787878787878787878787878787878787878",
    "02000000000202000000000108004500003c00010000400666b90a0000010a00000203e8138900000001000000013018ffff000000007878787878787878787878787878787878787878",
    "02000000000202000000000108004500003c00010000400666b90a0000010a00000203e813890000000100000001f018ffff000000007878787878787878787878787878787878787878",
    "02000000000202000000000108004400002c00010000401167be0a0000010a00000203e81388001c00007878787878787878787878787878787878787878",
    "02000000000202000000000108004f0000580001000040115c920a0000010a00000203e81388001c00007878787878787878787878787878787878787878",
    "02000000000202000000000108004500004000010000400666b50a0000010a00000203e8138900000001000000016018ffff00000000020405007878787878787878787878787878787878787878",
    "02000000000202000000000108004500004000010000400666b50a0000010a00000203e8138900000001000000016018ffff00000000080a00007878787878787878787878787878787878787878",
    "02000000000202000000000108004500004000010000400666b50a0000010a00000203e8138900000001000000016018ffff00000000030307007878787878787878787878787878787878787878",
    "02000000000202000000000108004500004000010000400666b50a0000010a00000203e8138900000001000000016018ffff00000000630201017878787878787878787878787878787878787878",
    "02000000000202000000000186dd6000000000240040fd000000000000000000000000000001fd000000000000000000000000000002110005020000010003e81388001c00007878787878787878787878787878787878787878",
    "02000000000202000000000186dd6000000000242c40fd000000000000000000000000000001fd000000000000000000000000000002110000010000000703e81388001c00007878787878787878787878787878787878787878",
    "02000000000202000000000186dd60000000001c2c40fd000000000000000000000000000001fd00000000000000000000000000000211000018000000077878787878787878787878787878787878787878",
    "02000000000202000000000186dd6000000000303c40fd000000000000000000000000000001fd000000000000000000000000000002060001040000000003e8138900000001000000015018ffff000000007878787878787878787878787878787878787878",
    "02000000000202000000000108004500003000012000401146ba0a0000010a00000203e81388001c00007878787878787878787878787878787878787878",
    "02000000000202000000000108004500002800010003401166bf0a0000010a0000027878787878787878787878787878787878787878000000000000",
    "02000000000202000000000108004500003000010000400166ca0a0000010a00000208000000000100017878787878787878787878787878787878787878",
    "02000000000202000000000186dd60000000001c3a40fd000000000000000000000000000001fd0000000000000000000000000000028000000000010001787878787878787878787878787878787878787802000000000202000000000108004500004400010000400666b10a0000010a00000203e8138900000001000000017018ffff000000000101080a000000007878787878787878787878787878787878787878",
    // A total length under the header's (`bad-len 10`), and a segment of 3 bytes under a header of 8.
    "02000000000202000000000108004500000a00010000400666b50a0000010a00000203e8138900000001000000012018ffff000000007878787878787878",
    "02000000000202000000000108004500001700010000400666b50a0000010a00000203e8138900000001000000012018ffff000000007878787878787878",
];

/// Times print in local time, as tcpdump prints them (`TZ`, else
/// /etc/localtime), each frame's with its own offset (daylight saving time
/// on either side of a change), and differences of more than a day without
/// their whole days, as tcpdump's. They printed in UTC: hours off the
/// user's logs, and off the names `-G` gives files in local time.
#[test]
fn times_print_in_local_time_as_tcpdump_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("times.pcap");
    let hex = "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002";
    let arp: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    // Winter, summer, either side of New York's change on 2024-03-10 07:00 UTC, a day and more later.
    let at = [1_700_000_000u64, 1_690_000_000, 1_710_054_000 - 1, 1_710_054_000, 1_710_054_001, 1_710_200_000];
    let times: Vec<Duration> = at.iter().map(|&s| Duration::new(s, 123_456_789)).collect();
    ringwire_tests::write_pcap_nanos(&file, times.iter().map(|&t| (t, arp.as_slice())));
    let f = file.to_str().unwrap();
    for tz in ["EST5EDT,M3.2.0,M11.1.0", "IST-5:30", "NPT-5:45", "UTC0"] {
        for precision in ["micro", "nano"] {
            for flag in ["-nn", "-tt", "-ttt", "-tttt", "-ttttt"] {
                let p = format!("--time-stamp-precision={precision}");
                let ours = Command::new(bin("ringwire"))
                    .env("TZ", tz)
                    .args(["capture", "--workers", "0", "-nn", &p, flag, "-r", f])
                    .output()
                    .unwrap();
                let theirs = Command::new("tcpdump").env("TZ", tz).args(["-nn", &p, flag, "-r", f]).output().unwrap();
                let (ours, theirs) = (String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&theirs.stdout));
                assert_eq!(ours.lines().count(), at.len(), "{tz} {precision} {flag}");
                assert_eq!(ours, theirs, "{tz} {precision} {flag}");
            }
        }
    }
}

/// `-w FIFO` waits for the FIFO's reader, as tcpdump does, and the reader
/// gets every frame; a Ctrl-C while it waits ends it. It was refused ("a
/// FIFO with no reader").
#[test]
fn writing_to_a_fifo_waits_for_its_reader() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("in.pcap");
    let n = write_corpus(&corpus);
    let fifo = dir.path().join("ff");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let args = ["capture", "--workers", "0", "-r", corpus.to_str().unwrap(), "-w", fifo.to_str().unwrap()];
    let mut cap = Proc::spawn("ringwire capture", Command::new(bin("ringwire")).args(args));
    cap.expect_stderr("ringwire: waiting for a reader of the FIFO", Duration::from_secs(10), "it waits");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cap.exited(), "it waits for the reader");
    let mut stream = Vec::new();
    std::fs::File::open(&fifo).unwrap().read_to_end(&mut stream).unwrap();
    let out = cap.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copy = dir.path().join("copy.pcap");
    std::fs::write(&copy, &stream).unwrap();
    assert_eq!(read_pcap(&copy).len(), n, "every frame through the FIFO");
    // A Ctrl-C while it waits ends it.
    let cap = Proc::spawn("ringwire capture", Command::new(bin("ringwire")).args(args));
    let mut cap = cap;
    cap.expect_stderr("ringwire: waiting for a reader of the FIFO", Duration::from_secs(10), "it waits");
    cap.signal(libc::SIGINT);
    let out = cap.wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `fanout_defrag` with one worker does nothing (the kernel reassembles
/// only for a fanout group): the run says so rather than leave a user to
/// find fragments in the file.
#[test]
fn fanout_defrag_with_one_worker_is_said_to_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_corpus(&input);
    let cfg = dir.path().join("defrag.toml");
    for (workers, said) in [("[0]", true), ("[0, 1]", false)] {
        if !said && ringwire_tests::cores() < 2 {
            continue;
        }
        std::fs::write(
            &cfg,
            format!(
                "[engine]\nworkers = {workers}\nfanout_defrag = true\n[control]\nenabled = false\n[[ports]]\nuri = \"pcap:{}\"\n",
                input.display()
            ),
        )
        .unwrap();
        let out = ringwire(&["run", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            err.contains("engine.fanout_defrag: with one worker there is no fanout group"),
            said,
            "{workers}: {err}"
        );
    }
}
