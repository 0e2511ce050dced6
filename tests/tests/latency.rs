//! The latency probe and low-latency ports, on a veth pair in network
//! namespaces (root; skipped with a note outside CI when not root).

use std::{path::Path, process::Command, time::Duration};

use ringwire_tests::{
    assert_reconciles, bin, control_socket, generate, privileged, read_json, ringctl, ringctl_json, start_engine,
    stop_engine, Pair,
};

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn consumer<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["consumers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name}"))
}

/// Two ports on one interface, one a default TPACKET_V3 ring (40 ms block
/// timeout), one `low_latency` (TPACKET_V2), each with a latency probe.
/// Every generated frame is timed twice by both probes and no flow loses,
/// duplicates or reorders a frame; at 200 frames/s the block ring holds
/// frames for its timeout while the frame ring hands them over at once; the
/// figures are in the stats file, the table, and `ringctl stats`. The
/// generator run again on the same flows starts each over: no duplicate,
/// late or lost frame.
#[test]
fn latency_probes_time_every_frame_and_a_low_latency_port_skips_the_block_timeout() {
    if !privileged("latency_probes_time_every_frame_and_a_low_latency_port_skips_the_block_timeout") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let st = dir.path().join("stats.json");
    let cfg = dir.path().join("lat.toml");
    let out_file = dir.path().join("frames.pcap");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n\
             [ring]\nretire_timeout_ms = 40\n\
             [[ports]]\nname = \"blocks\"\nuri = \"afpacket:{ve}\"\n\
             [[ports]]\nname = \"frames\"\nuri = \"afpacket:{ve}\"\nlow_latency = true\n\
             [[consumers]]\nname = \"lat_blocks\"\nkind = \"latency\"\nports = [\"blocks\"]\n\
             [[consumers]]\nname = \"lat_frames\"\nkind = \"latency\"\nports = [\"frames\"]\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\nports = [\"frames\"]\npath = \"{}\"\n",
            st.display(),
            out_file.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    // 8 flows, the second four 802.1Q-tagged (the V2 ring restores tags too), and
    // 50 frames that carry no stamp are not timed.
    let rep = generate(
        &ns_g,
        &vg,
        &["--count", "600", "--rate", "200", "--flows", "8", "--vlan-every", "2", "--size", "128"],
    );
    assert_eq!(u(&rep["sent"]), 600);
    let plain =
        generate(&ns_g, &vg, &["--count", "50", "--rate", "1000", "--size", "60", "--l4", "tcp", "--vlan-every", "0"]);
    assert_eq!(u(&plain["sent"]), 50);

    // The probe's figures are published on the workers' 100-ms tick: asked
    // until both probes show the 650 frames (`stats_when`: 5 s at most), then checked.
    let stats = || ringctl_json(&control_socket(&cfg), &["stats"]);
    let stats_when = |done: &dyn Fn(&serde_json::Value) -> bool| {
        let t0 = std::time::Instant::now();
        let mut live = stats();
        while !done(&live) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            live = stats();
        }
        live
    };
    let seen = |s: &serde_json::Value, name: &str| {
        let n = &consumer(&s["counters"], name)["latency"]["counters"];
        n["stamped"].as_u64().unwrap_or(0) + n["unstamped"].as_u64().unwrap_or(0)
    };
    let live = stats_when(&|s| seen(s, "lat_frames") >= 650 && seen(s, "lat_blocks") >= 650);
    assert_eq!(u(&consumer(&live["counters"], "lat_frames")["latency"]["consumer"]["count"]), 600, "{live}");
    // `stats reset`: from here `ringctl stats` times only the frames that come after.
    let reset = ringctl_json(&control_socket(&cfg), &["stats", "reset"]);
    assert_eq!(reset["reset"], true, "{reset}");
    let zero = stats();
    assert_eq!(consumer(&zero["counters"], "lat_frames")["latency"]["consumer"]["count"], 0, "{zero}");
    let again = generate(
        &ns_g,
        &vg,
        &["--count", "80", "--rate", "1000", "--flows", "8", "--vlan-every", "2", "--size", "128"],
    );
    assert_eq!(u(&again["sent"]), 80);
    // Both probes: the block ring hands its last frames over up to a retire timeout later.
    let timed =
        |s: &serde_json::Value, name: &str| consumer(&s["counters"], name)["latency"]["consumer"]["count"].as_u64();
    let live = stats_when(&|s| timed(s, "lat_frames") >= Some(80) && timed(s, "lat_blocks") >= Some(80));
    for name in ["lat_blocks", "lat_frames"] {
        let l = &consumer(&live["counters"], name)["latency"];
        let n = &l["counters"];
        assert_eq!((u(&l["kernel"]["count"]), u(&l["consumer"]["count"])), (80, 80), "{name} since the reset: {l}");
        assert_eq!(
            (u(&n["stamped"]), u(&n["unstamped"]), u(&n["restarts"]), u(&n["flows"]), u(&n["lost"])),
            (80, 0, 8, 0, 0),
            "{name}: 80 frames since the reset, of the 8 flows seen before it, started over: {n}"
        );
    }
    // ringctl's table says so and shows the same 80 frames.
    let text = ringctl(&control_socket(&cfg), &["stats"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("since each consumer was added or the last `stats reset`"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("lat_frames") && l.contains("consumer"))
        .unwrap_or_else(|| panic!("a lat_frames row:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row.get(2), Some(&"80"), "{text}");
    let out = stop_engine(engine);

    let s = read_json(&st);
    assert_reconciles(&s);
    let mut p50 = Vec::new();
    for name in ["lat_blocks", "lat_frames"] {
        let c = consumer(&s, name);
        let l = &c["latency"];
        assert_eq!(u(&c["delivered"]), 730, "{c}");
        let n = &l["counters"];
        assert_eq!(
            (u(&n["stamped"]), u(&n["unstamped"]), u(&n["flows"])),
            (680, 50, 8),
            "{name}: 600 + 80 timed frames of 8 flows; 60-byte TCP frames have no room for a stamp: {n}"
        );
        assert_eq!((u(&n["lost"]), u(&n["duplicates"]), u(&n["reordered"])), (0, 0, 0), "{name}: {n}");
        assert_eq!(
            (u(&n["restarts"]), u(&n["irregular"])),
            (8, 0),
            "{name}: the second run started each flow over: {n}"
        );
        let (k, cons) = (&l["kernel"], &l["consumer"]);
        assert_eq!((u(&k["count"]), u(&cons["count"])), (680, 680), "{name}: {l}");
        assert!(u(&k["p50"]) <= u(&cons["p50"]), "{name}: the kernel sees a frame before the consumer: {l}");
        assert!(u(&k["p50"]) <= u(&k["p99"]) && u(&k["p99"]) <= u(&k["max"]), "{name}: {k}");
        p50.push(u(&cons["p50"]));
    }
    // Frames of a block wait for its timeout (a 1 MiB block never fills at 200
    // frames/s): half of them wait 10 ms or more. A frame ring has no such wait.
    assert!(p50[0] >= 10_000_000, "block ring p50 {} ns", p50[0]);
    assert!(p50[1] * 4 < p50[0], "frame ring p50 {} ns against the block ring's {} ns", p50[1], p50[0]);
    // The frame ring put the tags back: flows 4..8 tagged, as sent, with their stamps.
    let recs = ringwire_tests::read_pcap(&out_file);
    assert_eq!(recs.len(), 730);
    let tagged: Vec<_> = recs.iter().filter(|r| r.data[12..14] == [0x81, 0x00]).collect();
    assert_eq!(tagged.len(), 340, "75 + 10 frames of each of 4 tagged flows");
    for r in &tagged {
        let st = ringwire_bench::frames::read_stamp(&r.data).expect("a stamped frame");
        assert!((4..8).contains(&st.flow), "flow {} tagged", st.flow);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("latency (one-way"), "the final table has the latency section:\n{stdout}");
    assert!(stdout.contains("lat_frames       kernel"), "{stdout}");
}

/// `engine.cpu_latency_us` holds a PM QoS request for exactly as long as the
/// engine runs: the kernel's limit is the request while it runs and what it
/// was before once it has exited. (Test binaries run one after another and no
/// other test of this one asks for a CPU latency.)
#[test]
fn the_engine_holds_its_cpu_latency_request_while_it_runs() {
    if !privileged("the_engine_holds_its_cpu_latency_request_while_it_runs") {
        return;
    }
    use ringwire_engine::sys::CpuLatencyRequest;
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let st = dir.path().join("stats.json");
    let cfg = dir.path().join("qos.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\ncpu_latency_us = 5\nstats_json = \"{}\"\n\
             [[ports]]\nuri = \"afpacket:{ve}\"\nlow_latency = true\n\
             [[consumers]]\nname = \"lat\"\nkind = \"latency\"\n",
            st.display()
        ),
    )
    .unwrap();
    let before = CpuLatencyRequest::current().expect("reading /dev/cpu_dma_latency");
    assert!(before > 5, "nobody else holds a request this low: {before}");
    let engine = start_engine(&ns_e, &cfg, dir.path());
    assert_eq!(CpuLatencyRequest::current().unwrap(), 5, "the engine's request is in force");
    let rep = generate(&ns_g, &vg, &["--count", "100", "--rate", "1000", "--size", "128"]);
    assert_eq!(u(&rep["sent"]), 100);
    std::thread::sleep(Duration::from_millis(100));
    let _ = stop_engine(engine);
    assert_eq!(CpuLatencyRequest::current().unwrap(), before, "the request went with the engine");
    let s = read_json(&st);
    assert_eq!(u(&consumer(&s, "lat")["latency"]["consumer"]["count"]), 100, "{s}");
    // A request the kernel would not take is refused before anything starts.
    std::fs::write(&cfg, format!("[engine]\ncpu_latency_us = 2000000\n[[ports]]\nuri = \"afpacket:{ve}\"\n")).unwrap();
    let out = Command::new(bin("ringwire")).arg("run").arg(&cfg).args(["--control-socket", "none"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("engine.cpu_latency_us: 2000000 is above the limit"), "{err}");
}

/// Run a `latency` consumer over the pcap file `file`: its figures from
/// the stats file, and the final table.
fn probe_file(dir: &Path, file: &Path) -> (serde_json::Value, String) {
    probe_files(dir, &[file], "0")
}

/// Run a `latency` consumer over the pcap files `files`, each a port of its
/// own (named `p0`, `p1`, ...), on workers `workers` (`0,1`).
fn probe_files(dir: &Path, files: &[&Path], workers: &str) -> (serde_json::Value, String) {
    let st = dir.join("stats.json");
    let cfg = dir.join("file.toml");
    let ports: String = files
        .iter()
        .enumerate()
        .map(|(i, f)| format!("[[ports]]\nname = \"p{i}\"\nuri = \"pcap:{}\"\n", f.display()))
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [{workers}]\nstats_json = \"{}\"\n{ports}\
             [[consumers]]\nname = \"lat\"\nkind = \"latency\"\n",
            st.display(),
        ),
    )
    .unwrap();
    let out = Command::new(bin("ringwire")).arg("run").arg(&cfg).args(["--control-socket", "none"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = read_json(&st);
    (consumer(&s, "lat")["latency"].clone(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A latency probe on a pcap file: nothing to time against the kernel, the
/// sequence counters still work (files recorded by `ringwire-gen --pcap-out`,
/// one with frames too short for a stamp among the stamped ones of a flow).
#[test]
fn a_latency_probe_counts_the_flows_of_a_recorded_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let before = ringwire_engine::sys::monotonic_ns();
    ringwire_tests::record(&file, &["--count", "1000", "--flows", "10", "--size", "200"]);
    // Stamped with CLOCK_MONOTONIC, as sent frames are (the records carry wall-clock times).
    let first = ringwire_engine::probe::find_stamp(&ringwire_tests::read_pcap(&file)[0].data).unwrap();
    assert!((before..ringwire_engine::sys::monotonic_ns()).contains(&first.ts_ns), "{first:?}");
    let (l, _) = probe_file(dir.path(), &file);
    assert_eq!(u(&l["counters"]["stamped"]), 1000, "{l}");
    assert_eq!(u(&l["counters"]["flows"]), 10, "{l}");
    assert_eq!(u(&l["counters"]["lost"]), 0, "{l}");
    assert_eq!(u(&l["kernel"]["count"]), 0, "a file has no kernel receive time: {l}");
    // Minimum frames (60 bytes, IPv4 UDP) carry the short stamp: every one is counted.
    let small = dir.path().join("small.pcap");
    ringwire_tests::record(
        &small,
        &["--count", "500", "--flows", "5", "--size", "60", "--ip", "4", "--l4", "udp", "--vlan-every", "0"],
    );
    assert!(ringwire_tests::read_pcap(&small).iter().all(|r| r.data.len() == 60));
    let (l, _) = probe_file(dir.path(), &small);
    let n = &l["counters"];
    assert_eq!((u(&n["stamped"]), u(&n["unstamped"]), u(&n["flows"])), (500, 0, 5), "{l}");
    assert_eq!((u(&n["lost"]), u(&n["duplicates"]), u(&n["reordered"])), (0, 0, 0), "{l}");
    // The default mix of sizes: in some flows the shortest frames have no room
    // for a stamp. They are counted unstamped, and nothing is lost.
    let mixed = dir.path().join("mixed.pcap");
    ringwire_tests::record(&mixed, &["--count", "2000", "--flows", "8"]);
    let (l, _) = probe_file(dir.path(), &mixed);
    let n = &l["counters"];
    assert_eq!(u(&n["stamped"]) + u(&n["unstamped"]), 2000, "{l}");
    assert!(u(&n["unstamped"]) > 0 && u(&n["stamped"]) > 1000, "{l}");
    assert_eq!((u(&n["lost"]), u(&n["duplicates"]), u(&n["reordered"])), (0, 0, 0), "{l}");
}

/// A recording doctored so that flow 3 loses five frames, flow 7 repeats
/// one and flow 5 has two swapped: the probe names those three flows, with
/// their own counters, most lost first, in the stats file, the final table
/// and nowhere else.
#[test]
fn a_latency_probe_names_the_flows_that_lost_repeated_or_reordered_frames() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("gen.pcap");
    ringwire_tests::record(&clean, &["--count", "1000", "--flows", "10", "--size", "200"]);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let stamp = |f: &[u8]| ringwire_engine::probe::find_stamp(f).expect("a stamped frame");
    let mut swapped = None;
    for rec in ringwire_tests::read_pcap(&clean) {
        let st = stamp(&rec.data);
        match (st.flow, st.seq) {
            (3, 10..=14) => continue,
            (7, 20) => frames.extend([rec.data.clone(), rec.data]),
            (5, 30) => swapped = Some(rec.data),
            (5, 31) => frames.extend([rec.data, swapped.take().expect("30 came first")]),
            _ => frames.push(rec.data),
        }
    }
    let file = dir.path().join("doctored.pcap");
    ringwire_tests::write_pcap(
        &file,
        frames.iter().enumerate().map(|(i, f)| (Duration::from_micros(i as u64), f.as_slice())),
    );
    let (l, stdout) = probe_file(dir.path(), &file);
    let n = &l["counters"];
    assert_eq!((u(&n["lost"]), u(&n["duplicates"]), u(&n["reordered"]), u(&n["irregular"])), (5, 1, 1, 3), "{l}");
    let streams: Vec<(u64, u64, u64, u64)> = l["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["reverse"], false, "{s}");
            (u(&s["flow"]), u(&s["lost"]), u(&s["duplicates"]), u(&s["reordered"]))
        })
        .collect();
    assert_eq!(streams, [(3, 5, 0, 0), (5, 0, 0, 1), (7, 0, 1, 0)], "{l}");
    assert!(stdout.contains("3 flow(s) lost, repeated or reordered frames"), "{stdout}");
    assert!(stdout.contains("flow 3: lost 5, duplicates 0, reordered 0"), "{stdout}");
}

/// Two generators on the same flow ids: on two ports, their streams are
/// apart (a stream is a flow on a port); into one port, they cannot be told
/// apart, and the table says what to do (`--first-flow`), which makes them
/// apart there too.
#[test]
fn two_generators_are_told_apart_by_port_or_by_their_first_flow() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--count", "1000", "--flows", "10", "--size", "200"];
    let (a, b, c) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"), dir.path().join("c.pcap"));
    ringwire_tests::record(&a, &args);
    ringwire_tests::record(&b, &args);
    ringwire_tests::record(&c, &[&args[..], &["--first-flow", "10"]].concat());
    let counts = |l: &serde_json::Value| {
        let n = &l["counters"];
        [&n["flows"], &n["stamped"], &n["lost"], &n["duplicates"], &n["reordered"], &n["too_old"], &n["restarts"]]
            .map(u)
    };
    let (l, _) = probe_files(dir.path(), &[&a, &b], "0");
    assert_eq!(counts(&l), [20, 2000, 0, 0, 0, 0, 0], "{l}");
    // With two workers, each file is read by one of them: a flow is never
    // split over the workers' tables (which read as gaps).
    // (Files of more than one segment of 2048 records.)
    if ringwire_tests::cores() >= 2 {
        let (big_a, big_b) = (dir.path().join("big_a.pcap"), dir.path().join("big_b.pcap"));
        let big = ["--count", "6000", "--flows", "10", "--size", "200"];
        ringwire_tests::record(&big_a, &big);
        ringwire_tests::record(&big_b, &big);
        let (l, _) = probe_files(dir.path(), &[&big_a, &big_b], "0, 1");
        assert_eq!(counts(&l), [20, 12_000, 0, 0, 0, 0, 0], "{l}");
    }
    // One port, the two recordings' frames alternating.
    let merged = |x: &Path, y: &Path, to: &Path| {
        let (x, y) = (ringwire_tests::read_pcap(x), ringwire_tests::read_pcap(y));
        let frames: Vec<Vec<u8>> = x.into_iter().zip(y).flat_map(|(p, q)| [p.data, q.data]).collect();
        ringwire_tests::write_pcap(
            to,
            frames.iter().enumerate().map(|(i, f)| (Duration::from_micros(i as u64), f.as_slice())),
        );
    };
    let same = dir.path().join("same.pcap");
    merged(&a, &b, &same);
    let (l, stdout) = probe_file(dir.path(), &same);
    assert!(u(&l["counters"]["restarts"]) > 16 * 10, "{l}");
    assert!(stdout.contains("are two generators sending the same flow ids?"), "{stdout}");
    assert!(stdout.contains("(ringwire-gen --first-flow)"), "{stdout}");
    let apart = dir.path().join("apart.pcap");
    merged(&a, &c, &apart);
    let (l, stdout) = probe_file(dir.path(), &apart);
    assert_eq!(counts(&l), [20, 2000, 0, 0, 0, 0, 0], "{l}");
    assert!(!stdout.contains("--first-flow"), "{stdout}");
}
