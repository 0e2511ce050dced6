//! The control socket end to end: `ringctl` against a running engine with
//! traffic, and clients that misbehave.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::Command,
    time::Duration,
};

use ringwire_tests::{
    assert_reconciles, bin, control_socket, generate, privileged, read_json, read_pcap, ringctl, ringctl_json,
    start_engine, wait_thread_sched, Pair, Patch, SmallFs, ThreadSched,
};

/// `ringctl ARGS` that must succeed: its output.
fn ringctl_ok(sock: &Path, args: &[&str]) -> String {
    let o = ringctl(sock, args);
    assert!(o.status.success(), "ringctl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("ringctl prints text")
}

/// One request line on a raw connection, one answer line back.
fn ask(conn: &mut BufReader<UnixStream>, line: &[u8]) -> serde_json::Value {
    conn.get_mut().write_all(line).unwrap();
    let mut answer = String::new();
    conn.read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not an answer ({e}): {answer}"))
}

fn connect(sock: &Path) -> BufReader<UnixStream> {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

#[test]
fn ringctl_drives_a_running_engine_and_bad_clients_do_not_hurt_it() {
    if !privileged("ringctl_drives_a_running_engine_and_bad_clients_do_not_hurt_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let st = dir.path().join("stats.json");
    let out = dir.path().join("ctl.pcap");
    let cfg = dir.path().join("ctl.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\nfilter = \"classifier\"\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n\
             [[consumers]]\nname = \"all\"\nkind = \"counter\"\n\
             [classifier]\ndefault = \"drop\"\n\
             [control]\nmax_clients = 120\n",
            st.display(),
            out.display()
        ),
    )
    .unwrap();
    let mut engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660, "socket mode");
    // A second engine on the same path is refused; the first keeps its socket.
    let second = Command::new("ip")
        .args(["netns", "exec", &ns_e])
        .arg(bin("ringwire"))
        .args(["run", cfg.to_str().unwrap(), "--control-socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("an engine is already listening there"), "{second:?}");

    // Status, as a table and as JSON.
    let table = ringctl(&sock, &["status"]);
    assert_eq!(table.status.code(), Some(0));
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("afpacket:") && t.contains("classifier") && t.contains("cap"), "{t}");
    let s = ringctl_json(&sock, &["status"]);
    assert_eq!(s["ports"][0]["name"], "p");
    assert_eq!(s["workers"][0]["core"], 0);

    // The classifier table from the shell: nothing passes until an entry says so.
    let a = "02:00:00:00:00:0a";
    let rep = generate(&ns_g, &vg, &["--count", "500", "--rate", "20000", "--vlan-every", "0", "--dst-mac", a]);
    assert_eq!(rep["sent"], 500);
    let add = ringctl(&sock, &["classifier", "add", "--mac", a, "--action", "pass"]);
    assert_eq!(add.status.code(), Some(0), "{}", String::from_utf8_lossy(&add.stderr));
    let rep = generate(&ns_g, &vg, &["--count", "700", "--rate", "20000", "--vlan-every", "0", "--dst-mac", a]);
    assert_eq!(rep["sent"], 700);
    std::thread::sleep(Duration::from_millis(200));
    let l = ringctl_json(&sock, &["classifier", "list"]);
    assert_eq!(l["ports"][0]["entries"][0]["hits"], 700, "{l}");
    assert_eq!(l["ports"][0]["entries"][0]["action"], "pass");
    // Added again with another action: changed in place, its hits go on, and the answer says so.
    let again = ringctl_json(&sock, &["classifier", "add", "--mac", a, "--action", "drop"]);
    assert_eq!(again["replaced"], "pass", "{again}");
    let text = ringctl_ok(&sock, &["classifier", "add", "--mac", a, "--action", "pass"]);
    assert!(text.contains("the entry was there: its action was drop"), "{text}");
    let l = ringctl_json(&sock, &["classifier", "list"]);
    assert_eq!(l["ports"][0]["entries"].as_array().map(Vec::len), Some(1), "{l}");
    assert_eq!(
        (&l["ports"][0]["entries"][0]["hits"], &l["ports"][0]["entries"][0]["action"]),
        (&700.into(), &"pass".into())
    );
    // Deleting what is not there: the engine says no (exit 1) with the class.
    let del = ringctl(&sock, &["classifier", "del", "--mac", "02:00:00:00:00:0b"]);
    assert_eq!(del.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&del.stderr).contains("not_found"), "{del:?}");
    // The log tells who asked what, the MAC written as a MAC.
    engine.expect_stderr(
        "command=classifier.del { vlan: untagged, mac: 02:00:00:00:00:0b } class=not_found",
        Duration::from_secs(5),
        "the refused change logged",
    );

    // Stats: the second read has rates since the first.
    let first = ringctl_json(&sock, &["stats"]);
    assert!(first["counters"]["ports"][0]["received"].as_u64().unwrap() >= 700);
    // How the worker was scheduled; time off its core only for a busy-poll worker.
    let w = &first["counters"]["workers"][0];
    assert!(w["cpu_ns"].as_u64().unwrap() > 0 && w["waited_ns"].is_u64() && w["off_core_ns"].is_null(), "{w}");
    // For Prometheus: the same counts, labelled (no traffic meanwhile).
    let prom = String::from_utf8(ringctl(&sock, &["stats", "--prometheus"]).stdout).unwrap();
    let received = first["counters"]["ports"][0]["received"].as_u64().unwrap();
    for line in [
        format!("ringwire_port_received_total{{port=\"p\"}} {received}"),
        "ringwire_port_link{port=\"p\",state=\"up\"} 1".to_owned(),
        format!("ringwire_port_if_dropped_total{{port=\"p\"}} {}", first["counters"]["ports"][0]["if_dropped"]),
        format!(
            "ringwire_consumer_delivered_total{{consumer=\"all\",kind=\"counter\"}} {}",
            first["counters"]["consumers"][1]["delivered"]
        ),
    ] {
        assert!(prom.lines().any(|l| l == line), "`{line}` in:\n{prom}");
    }
    let table = String::from_utf8(ringctl(&sock, &["stats"]).stdout).unwrap();
    assert!(table.lines().any(|l| l.contains("k_drops") && l.contains("if_drops")), "{table}");
    let watch = ringctl(&sock, &["--json", "stats", "--watch", "--count", "2", "--interval", "0.2"]);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&watch.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1]["rates"]["interval_s"].as_f64().unwrap() > 0.1, "{}", lines[1]);
    // Watching into a reader that leaves (`| head -1`) ends at its next
    // write, quietly and with status 0, not at --count (it panicked there).
    let script = format!(
        "set -o pipefail; '{}' --socket '{}' stats --watch --interval 0.1 | head -1 > /dev/null; echo \"status ${{PIPESTATUS[0]}}\"",
        bin("ringctl").display(),
        sock.display()
    );
    let t0 = std::time::Instant::now();
    let piped = Command::new("timeout").args(["30", "bash", "-c", &script]).output().unwrap();
    let said = String::from_utf8_lossy(&piped.stdout);
    assert_eq!(said.trim(), "status 0", "{}", String::from_utf8_lossy(&piped.stderr));
    assert!(t0.elapsed() < Duration::from_secs(10), "ended once the reader left");

    // The log level changes at run time: at `error` a SIGHUP's info line is gone, at `info` it is back.
    let _ = ringctl_json(&sock, &["log", "error"]);
    engine.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let _ = ringctl_json(&sock, &["log", "info"]);
    engine.signal(libc::SIGHUP);
    engine.expect_stderr("SIGHUP: no filter changed", Duration::from_secs(5), "a SIGHUP with the config unchanged");
    // What a reload does not apply is named, as a warning (the file and the engine now differ).
    let original = std::fs::read_to_string(&cfg).unwrap();
    let changed = original.replace("workers = [0]\n", "workers = [0]\nprogress_ms = 777\n");
    std::fs::write(&cfg, format!("{changed}\n[[consumers]]\nname = \"extra\"\nkind = \"counter\"\n")).unwrap();
    engine.signal(libc::SIGHUP);
    engine.expect_stderr(
        "WARN ringwire: SIGHUP: changes in the file not applied: [engine] progress_ms, consumer `extra` added (they need a restart",
        Duration::from_secs(5),
        "a consumer added to the file",
    );
    std::fs::write(&cfg, original).unwrap();
    let bad_log = ringctl(&sock, &["log", "=[{"]);
    assert_eq!(bad_log.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_log.stderr).contains("invalid"));
    // With --json, the refusal is JSON on standard output too.
    let bad_log = ringctl(&sock, &["--json", "log", "=[{"]);
    assert_eq!(bad_log.status.code(), Some(1));
    let refusal: serde_json::Value = serde_json::from_slice(&bad_log.stdout).unwrap();
    assert_eq!(refusal["error"]["class"], "invalid", "{refusal}");
    assert!(refusal["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{refusal}");

    // Garbage on one connection: each line gets an `invalid` answer, and the connection stays usable.
    let mut c = connect(&sock);
    for junk in [&b"not json\n"[..], b"\xff\xfe\n", b"[1]\n", b"{\"id\":1}\n", b"{\"id\":2,\"cmd\":\"nope\"}\n"] {
        let r = ask(&mut c, junk);
        assert_eq!((r["ok"].clone(), r["error"]["class"].clone()), (false.into(), "invalid".into()), "{r}");
    }
    let mut big = vec![b'x'; 70 << 10];
    big.push(b'\n');
    let r = ask(&mut c, &big);
    assert!(r["error"]["message"].as_str().unwrap().contains("request over"), "{r}");
    let r = ask(&mut c, b"{\"id\":9,\"cmd\":\"status\"}\n");
    assert_eq!((r["id"].clone(), r["ok"].clone()), (9.into(), true.into()), "usable after garbage: {r}");

    // A client that sends requests and never reads: the server closes it, not the others.
    let mut hog = UnixStream::connect(&sock).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..20_000 {
        if hog.write_all(format!("{{\"id\":{i},\"cmd\":\"stats\"}}\n").as_bytes()).is_err() {
            break;
        }
    }
    // 100 clients at once.
    let answers: Vec<bool> = (0..100)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = connect(&sock);
                ask(&mut c, b"{\"id\":1,\"cmd\":\"status\"}\n")["ok"] == true
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(answers.iter().all(|&ok| ok), "every concurrent client answered");
    // Full house: 120 held open, the next is refused with a message.
    let held: Vec<_> = (0..120).map(|_| connect(&sock)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect(&sock);
    let mut refusal = String::new();
    extra.read_line(&mut refusal).unwrap();
    assert!(refusal.contains("too many control clients"), "{refusal}");
    // One that sends its request after the refusal was sent still can, and
    // reads the refusal, then the end of the stream (not a broken pipe).
    let mut late = connect(&sock);
    std::thread::sleep(Duration::from_millis(100));
    late.get_mut().write_all(b"{\"id\":1,\"cmd\":\"status\"}\n").expect("the request goes");
    let mut rest = String::new();
    late.read_to_string(&mut rest).expect("the refusal, then the end");
    assert!(rest.lines().count() == 1 && rest.contains("too many control clients"), "{rest}");
    // ringctl says so, every time, with the exit status of an engine it
    // cannot reach (3), not of a refusal (1): a script tries again later.
    for _ in 0..5 {
        let o = ringctl(&sock, &["status"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(3) && err.contains("too many control clients") && err.contains("no room within"),
            "{:?}: {err}",
            o.status
        );
    }
    drop(held);
    drop(hog);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ringctl(&sock, &["status"]).status.code(), Some(0), "status still answers");

    // Shutdown through the socket: exit 0, files flushed, counters reconcile.
    let _ = ringctl_json(&sock, &["shutdown"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !engine.exited() {
        assert!(std::time::Instant::now() < deadline, "the engine did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = engine.wait(Duration::from_secs(1));
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    // Of the two SIGHUPs, only the one sent at `info` left its line.
    assert_eq!(log.matches("SIGHUP: no filter changed").count(), 1, "{log}");
    let s = read_json(&st);
    assert_reconciles(&s);
    assert_eq!(read_pcap(&out).len() as u64, s["consumers"][0]["written"].as_u64().unwrap());
    assert_eq!(s["consumers"][0]["written"], 700);
    assert!(!sock.exists(), "the socket file is removed on exit");
}

/// A socket file left by an engine that died is replaced, and removed on
/// exit; another kind of file at the path is refused and left alone.
#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    ringwire_tests::record(&input, &["--count", "100"]);
    let sock = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists(), "a socket file nobody listens on");
    let cfg = dir.path().join("replay.toml");
    std::fs::write(
        &cfg,
        format!("[[ports]]\nuri = \"pcap:{}\"\n[[consumers]]\nname = \"n\"\nkind = \"counter\"\n", input.display()),
    )
    .unwrap();
    let out = Command::new(bin("ringwire"))
        .args(["run", cfg.to_str().unwrap(), "--control-socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("control socket listening"));
    assert!(!sock.exists(), "removed on exit");

    // A file that is no socket is somebody's: refused, and left as it was.
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "data\n").unwrap();
    let out = Command::new(bin("ringwire"))
        .args(["run", cfg.to_str().unwrap(), "--control-socket", precious.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the path exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "data\n");
}

#[test]
fn ringctl_exit_codes_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    let out = ringctl(&missing, &["status"]);
    assert_eq!(out.status.code(), Some(3), "cannot connect");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect") && err.contains("is an engine running with this control socket?"), "{err}");
    assert_eq!(ringctl(&missing, &["frobnicate"]).status.code(), Some(2), "usage");
    assert_eq!(ringctl(&missing, &["classifier", "add", "--mac", "x"]).status.code(), Some(2), "usage");
    assert_eq!(ringctl(&missing, &["stats", "--watch", "--count", "0"]).status.code(), Some(2), "no read asked");
    assert_eq!(ringctl(&missing, &["stats", "--count", "3"]).status.code(), Some(2), "a count without --watch");
    for args in [&["stats", "--prometheus", "--json"][..], &["--json", "stats", "--prometheus"]] {
        let out = ringctl(&missing, args);
        assert_eq!(out.status.code(), Some(2), "two formats: {args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("two output formats"), "{args:?}");
    }
}

/// A socket that takes the connection but never answers: after `--timeout`
/// ringctl says so in one line (not an OS error), with exit status 3.
#[test]
fn ringctl_says_when_the_engine_does_not_answer_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // Accept and hold the connection, reading nothing and answering nothing.
    let holder = std::thread::spawn(move || listener.accept().map(|(conn, _)| conn));
    let started = std::time::Instant::now();
    let out = ringctl(&sock, &["--timeout", "1", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "ringctl: no answer from {} within 1 s (--timeout); a change asked for may still be made: `ringctl status` shows",
            sock.display()
        )
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited the timeout");
    drop(holder.join().unwrap());
}

/// Ports, consumers, filters and patches changed through `ringctl` while
/// traffic flows: a consumer that takes every frame throughout loses none,
/// a consumer added and removed sees exactly what came while it was there,
/// a filter swapped under traffic leaves no gap, a port added and removed
/// is read empty, a patch forwards, pauses and resumes, and at the end every
/// counter reconciles.
#[test]
fn ringctl_reconfigures_a_running_engine_under_traffic() {
    if !privileged("ringctl_reconfigures_a_running_engine_under_traffic") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { mut lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (vg2, ve2) = lab.veth(&ns_g, &ns_e).expect("a second veth pair");
    let st = dir.path().join("stats.json");
    let cfg = dir.path().join("live.toml");
    let workers = if ringwire_tests::cores() >= 2 { "[0, 1]" } else { "[0]" };
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = {workers}\nstats_json = \"{}\"\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"steady\"\nkind = \"counter\"\n\
             [control]\nidle_timeout_s = 1\n",
            st.display()
        ),
    )
    .unwrap();
    let mut engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let ok = |args: &[&str]| ringctl_json(&sock, args);
    let refused = |args: &[&str], class: &str| {
        let out = ringctl(&sock, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?} should be refused: {err}");
        assert!(err.contains(class), "{args:?}: `{class}` expected in: {err}");
        err
    };

    // A consumer added and removed, and a filter swapped, while 60 000 frames flow
    // (6 s: the steps below take about 2.5 s here, twice that on a slow machine).
    let tap = dir.path().join("tap.pcap");
    let flow =
        ringwire_tests::spawn_generator(&ns_g, &vg, &["--count", "60000", "--rate", "10000", "--vlan-every", "0"]);
    std::thread::sleep(Duration::from_millis(500));
    // A relative path is the caller's: ringctl runs in the test's directory, the engine elsewhere.
    let in_dir = Command::new(bin("ringctl"))
        .current_dir(dir.path())
        .arg("--socket")
        .arg(&sock)
        .args(["consumers", "add", "tap", "--kind", "pcap", "--path", "tap.pcap", "--port", "p", "--filter", "udp"])
        .output()
        .unwrap();
    assert!(in_dir.status.success(), "{}", String::from_utf8_lossy(&in_dir.stderr));
    let want = ThreadSched::fifo(1, -5);
    assert_eq!(
        wait_thread_sched(engine.pid(), "rw-sink-tap", want),
        Some(want),
        "a consumer added at run time: consumer_rt_priority and consumer_nice"
    );
    ok(&["filters", "load", "f", "udp"]);
    // A swap of a filter attached nowhere says so.
    let lone = ringctl(&sock, &["filters", "swap", "f", "udp"]);
    let lone = String::from_utf8_lossy(&lone.stdout);
    assert_eq!(lone, "ok: filter `f` is now `udp` (attached nowhere)\n");
    refused(&["filters", "load", "f", "tcp"], "conflict");
    refused(&["filters", "load", "g", "frobnicate the"], "invalid");
    // The same bad filter is the same class wherever it is given; a file being written is a clash.
    refused(&["consumers", "add", "x", "--kind", "counter", "--filter", "udp port"], "invalid");
    refused(&["consumers", "add", "x", "--kind", "pcap", "--path", tap.to_str().unwrap()], "conflict");
    ok(&["filters", "attach", "f", "--consumer", "tap"]);
    let filters = ok(&["filters", "list"]);
    assert_eq!(
        filters["loaded"]["f"]["attached"][0],
        serde_json::json!({"kind": "consumer", "name": "tap"}),
        "{filters}"
    );
    assert_eq!(filters["in_force"][0]["name"], "f", "{filters}");
    let consumers = ok(&["consumers", "list"]);
    let names: Vec<_> = consumers["consumers"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, ["steady", "tap"], "{consumers}");
    std::thread::sleep(Duration::from_millis(700));
    let swap = ok(&["filters", "swap", "f", "not udp"]);
    assert!(swap["notes"][0].as_str().unwrap().contains("consumer `tap`: filter now not udp"), "{swap}");
    refused(&["filters", "unload", "f"], "conflict");
    refused(&["ports", "del", "p"], "conflict"); // tap names it
    std::thread::sleep(Duration::from_millis(700));
    let gone = ok(&["consumers", "del", "tap"]);
    assert_eq!(gone["files"][0], tap.to_str().unwrap(), "{gone}");
    let tap_counts = &gone["counters"];
    // A removed consumer goes on saying which filter made its counts.
    assert_eq!(tap_counts["filter"], "not udp", "{tap_counts}");
    let later = ok(&["stats"]);
    let removed = later["counters"]["consumers"].as_array().unwrap().iter().find(|c| c["name"] == "tap").cloned();
    let removed = removed.unwrap_or_else(|| panic!("{later}"));
    assert_eq!((removed["removed"].as_bool(), removed["filter"].as_str()), (Some(true), Some("not udp")), "{removed}");
    ok(&["filters", "unload", "f"]);
    let flow = flow.wait(Duration::from_secs(30));
    assert!(flow.status.success(), "{}", String::from_utf8_lossy(&flow.stderr));
    // The tap's file: UDP frames, then (after the swap) only others, nothing lost between.
    // Each worker swaps between two of its batches, the workers within moments of each
    // other; the file is in time order, so the two kinds meet within that moment.
    let frames = read_pcap(&tap);
    assert_eq!(frames.len() as u64, tap_counts["written"].as_u64().unwrap(), "{tap_counts}");
    assert_eq!(tap_counts["passed"], tap_counts["written"], "{tap_counts}");
    let udp = |r: &ringwire_tests::Rec| ringwire_filters::headers::Headers::parse(&r.data).proto == Some(17);
    let first_other = frames.iter().position(|r| !udp(r)).expect("frames after the swap");
    assert!(first_other > 100, "UDP frames before the swap ({first_other})");
    let last_udp = frames.iter().rev().find(|r| udp(r)).expect("UDP frames").ts_ns;
    let swapped = frames[first_other].ts_ns;
    assert!(
        last_udp < swapped + 100_000_000,
        "no UDP frame later than 100 ms after the first other one: {} ms",
        (last_udp - swapped) / 1_000_000
    );
    assert!(frames.windows(2).all(|p| p[0].ts_ns <= p[1].ts_ns), "in time order");
    let tap_seen = tap_counts["seen"].as_u64().unwrap();
    assert!(tap_seen > 5_000 && tap_seen < 60_000, "it saw the traffic while it was there: {tap_counts}");

    // A port added at run time: its frames reach the consumer of every port; removed, it is read empty.
    refused(&["ports", "add", "afpacket:rwt-nosuch0"], "not_found");
    ok(&["ports", "add", &format!("afpacket:{ve2}"), "--name", "q"]);
    // The log tells a change made from one refused.
    for line in ["control: state change refused", "class=not_found", "control: state changed"] {
        engine.expect_stderr(line, Duration::from_secs(5), "changes logged with their outcome");
    }
    refused(&["ports", "add", &format!("afpacket:{ve2}"), "--name", "q"], "conflict");
    // A consumer of every port, added now and removed after q: it saw q's frames.
    ok(&["consumers", "add", "every", "--kind", "counter"]);
    let listed = ok(&["ports", "list"]);
    assert_eq!(listed["ports"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(generate(&ns_g, &vg2, &["--count", "1000", "--rate", "20000", "--vlan-every", "0"])["sent"], 1000);

    // A patch from q out of p: forwards, pauses (counted as paused) and resumes.
    // p's MTU lets through more than its TX slots hold: the answer says so.
    ringwire_tests::ip(&ns_e, &["link", "set", &ve, "mtu", "9000"]);
    let added = ok(&["patches", "add", "fw", "--from", "q", "--to", "p"]);
    let note = added["notes"][0].as_str().unwrap_or_default();
    assert!(note.starts_with("port `p`: its interface's MTU lets frames of up to 9014 bytes through"), "{added}");
    refused(&["ports", "del", "q"], "conflict"); // the patch takes its frames
    let send_q = |n: u64| {
        let n_s = n.to_string();
        assert_eq!(generate(&ns_g, &vg2, &["--count", &n_s, "--rate", "20000", "--vlan-every", "0"])["sent"], n);
        std::thread::sleep(Duration::from_millis(300));
    };
    send_q(500);
    ok(&["forwarding", "stop"]);
    send_q(400);
    ok(&["forwarding", "start"]);
    send_q(300);
    ok(&["patches", "add", "fw2", "--from", "q", "--to", "p", "--filter", "udp"]);
    assert_eq!(ok(&["patches", "del", "fw2"])["counters"]["seen"], 0);
    // A patch back out of the port its frames came in on: allowed, and said.
    let hairpin = ok(&["patches", "add", "back", "--from", "q", "--to", "q", "--filter", "udp port 9"]);
    let said = hairpin["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect::<Vec<_>>();
    assert!(said.iter().any(|n| n.starts_with("port `q` is among the ports it takes from")), "{hairpin}");
    ok(&["patches", "del", "back"]);
    refused(&["patches", "del", "steady"], "conflict");
    let patches = ok(&["patches", "list"]);
    assert_eq!(patches["forwarding"], true);
    assert_eq!(patches["patches"][0]["name"], "fw");
    assert_eq!(
        (&patches["patches"][0]["to_link"], &patches["patches"][0]["to_unsent"]),
        (&serde_json::json!("up"), &serde_json::json!(0)),
        "{patches}"
    );
    let table = ringctl_ok(&sock, &["patches", "list"]);
    assert!(table.lines().any(|l| l.contains("to_link") && l.contains("to_unsent")), "{table}");
    let reset = ok(&["patches", "reset"]);
    assert_eq!(reset["removed"][0], "fw");
    let fw = &reset_counters(&ok(&["stats"]), "fw");
    assert_eq!((fw["seen"].as_u64(), fw["paused"].as_u64()), (Some(1200), Some(400)), "{fw}");
    assert_eq!(fw["delivered"].as_u64().unwrap() + fw["queue_dropped"].as_u64().unwrap(), 800, "{fw}");
    ok(&["ports", "del", "q"]);
    refused(&["ports", "del", "q"], "not_found");
    let every = &ok(&["consumers", "del", "every"])["counters"];
    assert_eq!(every["seen"].as_u64(), Some(2200), "q's frames, none of p's (quiet meanwhile): {every}");
    assert_eq!(ok(&["ports", "list"])["ports"].as_array().unwrap().len(), 1);

    // A pcap port added at run time replays its file to the consumer of every port.
    // A worker is real-time (engine.worker_rt_priority) only while it has no file source to replay.
    let nworkers = ringwire_tests::cores().min(2); // as `workers` above
    let sched = |w: usize, want: ThreadSched| wait_thread_sched(engine.pid(), &format!("rw-worker-{w}"), want);
    let fifo = ThreadSched::fifo(2, 0);
    assert!((0..nworkers).all(|w| sched(w, fifo) == Some(fifo)), "receiving from interfaces: SCHED_FIFO");
    ok(&["ports", "add", &format!("pcap:{}", tap.display()), "--name", "replay"]);
    std::thread::sleep(Duration::from_millis(500));
    let normal = ThreadSched::normal(0);
    let replaying = (0..nworkers).filter(|&w| sched(w, normal) == Some(normal)).count();
    assert_eq!(replaying, 1, "the worker replaying the file is normally scheduled, the other is not");
    ok(&["ports", "del", "replay"]);
    assert!((0..nworkers).all(|w| sched(w, fifo) == Some(fifo)), "the file port gone: SCHED_FIFO again");

    // stats.reset: counts start again from zero; the final report still counts everything.
    ok(&["stats", "reset"]);
    assert_eq!(generate(&ns_g, &vg, &["--count", "300", "--rate", "20000", "--vlan-every", "0"])["sent"], 300);
    std::thread::sleep(Duration::from_millis(300));
    let after = ok(&["stats"]);
    assert_eq!(after["counters"]["ports"][0]["received"], 300, "{after}");
    assert_eq!(reset_counters(&after, "steady")["seen"], 300, "{after}");

    // An eBPF object loaded by name and attached to a port in the kernel, then detached.
    ok(&["filters", "load", "k", &format!("ebpf:{}", ringwire_bpf::EXAMPLE_KEEP_UDP)]);
    refused(&["filters", "attach", "k", "--consumer", "steady"], "invalid");
    ok(&["filters", "attach", "k", "--port", "p"]);
    assert_eq!(generate(&ns_g, &vg, &["--count", "400", "--rate", "20000", "--vlan-every", "0"])["sent"], 400);
    std::thread::sleep(Duration::from_millis(300));
    let kept = ok(&["stats"]);
    assert_eq!(kept["counters"]["ports"][0]["received"], 500, "300 + the 200 UDP frames of 400: {kept}");
    assert_eq!(kept["counters"]["ports"][0]["ebpf"]["filtered"], 200, "{kept}");
    ok(&["filters", "detach", "--port", "p"]);
    ok(&["filters", "unload", "k"]);
    // What the detached program filtered stays the port's (it went with the program).
    let after = ok(&["stats"]);
    let p_now = &after["counters"]["ports"][0];
    assert_eq!((&p_now["past_filtered"], &p_now["ebpf"]), (&200.into(), &serde_json::Value::Null), "{after}");
    assert!(p_now["filtered_uncounted"].is_null(), "{after}");
    // A filter that does not count (an expression) in force for a while: the run's count is not known.
    ok(&["filters", "load", "u", "udp"]);
    ok(&["filters", "attach", "u", "--port", "p"]);
    ok(&["filters", "detach", "--port", "p"]);
    ok(&["filters", "unload", "u"]);
    let after = ok(&["stats"]);
    assert_eq!(after["counters"]["ports"][0]["filtered_uncounted"], true, "{after}");
    // A port added with an eBPF filter and removed keeps its program's last counts.
    let keep_udp = format!("ebpf:{}", ringwire_bpf::EXAMPLE_KEEP_UDP);
    ok(&["ports", "add", &format!("afpacket:{ve}"), "--name", "e1", "--filter", &keep_udp]);
    assert_eq!(generate(&ns_g, &vg, &["--count", "400", "--rate", "20000", "--vlan-every", "0"])["sent"], 400);
    std::thread::sleep(Duration::from_millis(300));
    ok(&["ports", "del", "e1"]);
    let e1_of =
        |ports: &serde_json::Value| ports.as_array().unwrap().iter().find(|p| p["name"] == "e1").cloned().unwrap();
    let e1 = e1_of(&ok(&["stats"])["counters"]["ports"]);
    assert_eq!((e1["removed"].as_bool(), e1["received"].as_u64()), (Some(true), Some(200)), "{e1}");
    assert_eq!(e1["ebpf"], serde_json::json!({"seen": 400, "passed": 200, "filtered": 200}), "{e1}");
    assert!(e1["link"].is_null(), "a removed port watches no interface: {e1}");

    // Bad requests name the field.
    assert!(refused(&["consumers", "add", "x", "--kind", "pcap"], "invalid").contains("path"));
    assert!(refused(&["consumers", "add", "x", "--kind", "forward", "--to", "nope"], "invalid").contains("nope"));
    refused(&["consumers", "add", "steady", "--kind", "counter"], "conflict");
    refused(&["consumers", "del", "nope"], "not_found");
    refused(&["filters", "attach", "nope", "--port", "p"], "not_found");
    let mut raw = connect(&sock);
    let r = ask(
        &mut raw,
        br#"{"id":1,"cmd":"consumers.add","args":{"name":"x","kind":"counter","snaplen":"big"}}
"#,
    );
    assert!(r["error"]["message"].as_str().unwrap().starts_with("args.snaplen:"), "{r}");
    // An idle client is closed after idle_timeout_s (checked once a second):
    // the read ends then, not at its own 10-s timeout.
    let idle_since = std::time::Instant::now();
    let mut rest = String::new();
    assert_eq!(raw.read_line(&mut rest).unwrap(), 0, "an idle client is closed: {rest}");
    assert!(idle_since.elapsed() >= Duration::from_millis(900), "closed before it was idle for 1 s");

    let _ = ringwire_tests::stop_engine(engine);
    let s = read_json(&st);
    assert_reconciles(&s);
    let port = |name: &str| s["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone();
    let (p, q, replay) = (port("p"), port("q"), port("replay"));
    assert_eq!(p["received"], 60_900, "{p}");
    assert_eq!((&p["past_filtered"], &p["filtered_uncounted"]), (&200.into(), &true.into()), "{p}");
    assert_eq!(e1_of(&s["ports"])["ebpf"]["filtered"], 200, "the final report keeps a removed port's filter counts");
    assert_eq!(p["kernel_drops"], 0, "{p}");
    assert_eq!((q["received"].as_u64(), q["removed"].as_bool()), (Some(2200), Some(true)), "{q}");
    assert_eq!(replay["received"].as_u64(), Some(frames.len() as u64), "{replay}");
    let steady = &s["consumers"][0];
    assert_eq!(steady["name"], "steady");
    assert_eq!(
        steady["delivered"].as_u64(),
        Some(60_900 + 2200 + 200 + frames.len() as u64),
        "zero loss on the steady consumer: {steady}"
    );
}

/// A consumer's counters in a `ringctl --json stats` answer.
fn reset_counters(stats: &serde_json::Value, name: &str) -> serde_json::Value {
    stats["counters"]["consumers"].as_array().unwrap().iter().rev().find(|c| c["name"] == name).cloned().unwrap()
}

/// Voluntary and involuntary context switches of thread `tid` of `pid`.
fn switches(pid: u32, tid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// An idle engine's main thread sleeps until there is work, instead of
/// waking every few milliseconds (each wake-up would preempt a busy-polling
/// worker sharing its core), and a control request still wakes it at once.
#[test]
fn the_supervisor_sleeps_until_a_signal_or_a_request_wakes_it() {
    if !privileged("the_supervisor_sleeps_until_a_signal_or_a_request_wakes_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_eng, if_eng, .. } = Pair::new();
    let cfg = dir.path().join("idle.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nprogress_ms = 0\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{if_eng}\"\n\
             [[consumers]]\nname = \"all\"\nkind = \"counter\"\n"
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_eng, &cfg, dir.path());
    let pid = engine.pid();
    let before = switches(pid, pid);
    std::thread::sleep(Duration::from_secs(2));
    let idle = switches(pid, pid) - before;
    // One look every 100 ms is 20 in 2 s; polling every 5 ms was 400.
    assert!(idle <= 60, "the main thread woke {idle} times in 2 s");
    // A request is answered at once, not at the next look (50 ms on average).
    let mut conn = connect(&control_socket(&cfg));
    let start = std::time::Instant::now();
    for id in 0..20 {
        let answer = ask(&mut conn, format!("{{\"id\":{id},\"cmd\":\"stats\"}}\n").as_bytes());
        assert_eq!(answer["id"], id, "{answer}");
    }
    let all = start.elapsed();
    assert!(all < Duration::from_millis(500), "20 requests took {all:?}: they wait for the next look");
    let _ = ringwire_tests::stop_engine(engine);
}

/// Port `index` as `ringctl ports list --json` tells it, once its link is
/// `want` (at most 5 s; then whatever it is).
/// `ringwire run` on a bad day for its interface: the veth is deleted (the
/// port shows `gone`, the engine keeps running), then created again under
/// the same name: the engine re-opens the port by itself, with its kernel
/// filter and its TX rings, and frames flow into the same file. Counters
/// carry on in the same port and reconcile; the run ends cleanly.
#[test]
fn run_reopens_a_port_whose_interface_is_deleted_and_created_again() {
    if !privileged("run_reopens_a_port_whose_interface_is_deleted_and_created_again") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (st, out, cfg) = (dir.path().join("stats.json"), dir.path().join("back.pcap"), dir.path().join("back.toml"));
    let workers = (0..ringwire_tests::cores().min(2)).map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [{workers}]\nstats_json = \"{}\"\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\nfilter = \"udp or tcp\"\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n\
             [[consumers]]\nname = \"echo\"\nkind = \"forward\"\nports = [\"p\"]\nto = \"p\"\n",
            st.display(),
            out.display()
        ),
    )
    .unwrap();
    let mut engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    assert_eq!(ringwire_tests::wait_link(&sock, 0, "up")["link"], "up");
    let send = |name: &str| {
        let file = dir.path().join(name);
        let rep = generate(&ns_g, &vg, &["--count", "1000", "--rate", "20000", "--record", file.to_str().unwrap()]);
        assert_eq!(rep["sent"], 1000);
        std::thread::sleep(Duration::from_millis(300));
        read_pcap(&file).into_iter().map(|r| r.data).collect::<Vec<_>>()
    };
    let mut want = send("before.pcap");
    // Its kernel filter (pcap-filter) drops frames without counting them:
    // "not known", never 0, in the tables and the metrics.
    let table = ringctl_ok(&sock, &["stats"]);
    let row = table.lines().find(|l| l.trim_start().starts_with("p ")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.split_whitespace().nth(3), Some("-"), "filtered: {table}");
    let prom = ringctl_ok(&sock, &["stats", "--prometheus"]);
    assert!(prom.contains("ringwire_port_received_total{port=\"p\"}"), "{prom}");
    assert!(!prom.contains("ringwire_port_filtered_total{port=\"p\"}"), "{prom}");

    ringwire_tests::ip(&ns_e, &["link", "del", &ve]);
    let port = ringwire_tests::wait_link(&sock, 0, "gone");
    assert_eq!(port["link"], "gone", "{port}");
    engine.expect_stderr("the interface is gone", Duration::from_secs(5), "gone");
    assert!(!engine.exited(), "the engine keeps running without its interface");

    ringwire_tests::ip(&ns_g, &["link", "add", &vg, "type", "veth", "peer", "name", &ve, "netns", &ns_e]);
    ringwire_tests::ip(&ns_g, &["link", "set", &vg, "up"]);
    ringwire_tests::ip(&ns_e, &["link", "set", &ve, "up"]);
    let port = ringwire_tests::wait_link(&sock, 0, "up");
    assert_eq!(port["link"], "up", "re-opened within 5 s: {port}");
    engine.expect_stderr("the interface is back", Duration::from_secs(5), "back");
    want.extend(send("after.pcap"));

    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = read_json(&st);
    assert_reconciles(&s);
    assert_eq!(s["ports"][0]["link"], "up");
    assert_eq!(s["ports"][0]["received"], 2000, "the kernel filter is back on the new sockets: {s}");
    assert_eq!(s["ports"][0]["filtered_uncounted"], true, "{s}");
    let table = String::from_utf8_lossy(&res.stdout);
    let row = table.lines().find(|l| l.trim_start().starts_with("p ")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.split_whitespace().nth(4), Some("-"), "the final table's filtered: {table}");
    // The port is also a forwarding target (`echo` sends each frame back out of it):
    // new TX rings too, and the count carries on.
    assert_eq!(s["consumers"][1]["delivered"], 2000, "{s}");
    assert_eq!(s["ports"][0]["tx_frames"], 2000, "{s}");
    // Two workers write in turn: the same frames, not necessarily in the sent order.
    let mut got: Vec<Vec<u8>> = read_pcap(&out).into_iter().map(|r| r.data).collect();
    assert_eq!(got.len(), want.len());
    got.sort();
    want.sort();
    assert!(got == want, "the file holds the frames sent before the interface went and after it came back");
}

/// A retire timeout of seconds: a ring's last, partly filled block is handed
/// over only once it passes. A port removed and an engine stopped read it
/// all the same (they gave up after 5 s, losing the frames in it, and a
/// removed port's loss was not even reported).
#[test]
fn a_block_retired_after_seconds_is_read_at_removal_and_at_stop() {
    if !privileged("a_block_retired_after_seconds_is_read_at_removal_and_at_stop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { mut lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (vg2, ve2) = lab.veth(&ns_g, &ns_e).expect("a second veth pair");
    let (st, out, cfg) = (dir.path().join("stats.json"), dir.path().join("slow.pcap"), dir.path().join("slow.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n[ring]\nretire_timeout_ms = 6000\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n",
            st.display(),
            out.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let _ = ringctl_json(&sock, &["ports", "add", &format!("afpacket:{ve2}"), "--name", "q"]);
    let send = |iface: &str| {
        let r = generate(&ns_g, iface, &["--count", "10", "--rate", "1000", "--vlan-every", "0"]);
        assert_eq!(r["sent"], 10);
    };
    send(&vg2);
    send(&vg);
    // Answered at once, saying the port's counters are final only once its last block is read.
    let del = ringctl_ok(&sock, &["ports", "del", "q"]);
    assert!(del.contains("note: port `q`: its rings are read out until their last blocks are handed over (retire_timeout_ms 6000: up to 18.1 s)"), "{del}");
    let started = std::time::Instant::now();
    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(started.elapsed() >= Duration::from_secs(3), "the stop waited for the last block");
    let s = read_json(&st);
    assert_reconciles(&s);
    let q = s["ports"].as_array().unwrap().iter().find(|p| p["name"] == "q").cloned().unwrap();
    assert_eq!((q["removed"].as_bool(), q["received"].as_u64()), (Some(true), Some(10)), "{s}");
    assert_eq!(s["ports"][0]["received"], 10, "{s}");
    assert_eq!(read_pcap(&out).len(), 20, "{s}");
}

/// A patch into a port that only sends (`rx = false`) whose interface is
/// deleted and created again: the port shows `gone`, then the engine
/// re-opens its TX rings by itself and forwarding resumes. Frames forwarded
/// while it is gone, or down, are not put in its rings (they would never be
/// sent; they sat in the old rings, counted delivered): they count as
/// dropped, and of those as `egress_down`.
#[test]
fn run_forwards_again_once_a_send_only_port_is_back() {
    if !privileged("run_forwards_again_once_a_send_only_port_is_back") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stats.json");
    let workers = (0..ringwire_tests::cores().min(2)).map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    // The far side: an engine of its own (its port re-opens too when the pair comes back).
    let patch = Patch::new(
        dir.path(),
        &format!("workers = [{workers}]\nstats_json = \"{}\"", st.display()),
        "workers = [0]",
        "fw",
    );
    let (ns_g, ns_e, ns_s, vg) = (&patch.pair.ns_gen, &patch.pair.ns_eng, &patch.ns_far, &patch.pair.if_gen);
    let (out, vs, far, cfg, far_cfg) = (&patch.if_out, &patch.if_far, &patch.far, &patch.config, &patch.far_config);
    let (sink, mut engine) = patch.start(dir.path());
    let (sock, far_sock) = (control_socket(cfg), control_socket(far_cfg));
    let send = |name: &str, n: u64| {
        let file = dir.path().join(name);
        let rep =
            generate(ns_g, vg, &["--count", &n.to_string(), "--rate", "20000", "--record", file.to_str().unwrap()]);
        assert_eq!(rep["sent"], n);
        std::thread::sleep(Duration::from_millis(300));
        read_pcap(&file).into_iter().map(|r| r.data).collect::<Vec<_>>()
    };
    let mut want = send("before.pcap", 1000);

    ringwire_tests::ip(ns_e, &["link", "del", out]);
    let port = ringwire_tests::wait_link(&sock, 1, "gone");
    assert_eq!(port["link"], "gone", "a port only sent to is watched too: {port}");
    engine.expect_stderr("the interface is gone", Duration::from_secs(5), "gone");
    // Forwarded into rings whose interface is gone: never sent.
    send("lost.pcap", 500);
    let listed = ringctl_json(&sock, &["patches", "list"]);
    assert_eq!(listed["patches"][0]["to_link"], "gone", "the patch shows where its frames go: {listed}");

    ringwire_tests::ip(ns_e, &["link", "add", out, "type", "veth", "peer", "name", vs, "netns", ns_s]);
    ringwire_tests::ip(ns_e, &["link", "set", out, "up"]);
    ringwire_tests::ip(ns_s, &["link", "set", vs, "up"]);
    let port = ringwire_tests::wait_link(&sock, 1, "up");
    assert_eq!(port["link"], "up", "re-opened within 5 s: {port}");
    assert_eq!(ringwire_tests::wait_link(&far_sock, 0, "up")["link"], "up");
    want.extend(send("after.pcap", 1000));
    // Down at exit: nothing more goes into its rings.
    ringwire_tests::ip(ns_e, &["link", "set", out, "down"]);
    assert_eq!(ringwire_tests::wait_link(&sock, 1, "down")["link"], "down");
    send("held.pcap", 300);

    let res = ringwire_tests::stop_engine(engine);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(!stderr.contains("frames left in the TX ring at exit"), "{stderr}");
    std::thread::sleep(Duration::from_millis(100));
    let far_res = ringwire_tests::stop_engine(sink);
    assert!(far_res.status.success(), "{}", String::from_utf8_lossy(&far_res.stderr));
    let s = read_json(&st);
    assert_reconciles(&s);
    // (Down once at the end; perhaps also for a moment while the pair was recreated.)
    assert_eq!(s["ports"][1]["link"], "down", "{s}");
    assert!(s["ports"][1]["link_downs"].as_u64().is_some_and(|n| n >= 1), "{s}");
    assert_eq!(s["consumers"][0]["delivered"], 2000, "handed to a TX ring: {s}");
    assert_eq!(s["consumers"][0]["queue_dropped"], 800, "sent to a port that is gone, or down: {s}");
    assert_eq!(s["consumers"][0]["egress_down"], 800, "counted apart from a full ring: {s}");
    let (tx, unsent) = (&s["ports"][1]["tx_frames"], &s["ports"][1]["tx_unsent"]);
    assert_eq!((tx, unsent), (&2000.into(), &0.into()), "what went into the rings was sent: {s}");
    assert!(!stderr.contains("were never sent"), "{stderr}");
    let mut got: Vec<Vec<u8>> = read_pcap(far).into_iter().map(|r| r.data).collect();
    got.sort();
    want.sort();
    assert!(got == want, "the far side got the frames sent before the interface went and after it came back");
}

/// The pcap writer runs under `SCHED_FIFO` (`engine.consumer_rt_priority`)
/// only while an interface feeds it: normal once the engine's last
/// interface port is removed at run time, real-time again when one is added.
#[test]
fn the_writer_is_real_time_only_while_an_interface_port_feeds_it() {
    if !privileged("the_writer_is_real_time_only_while_an_interface_port_feeds_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (out, cfg) = (dir.path().join("out.pcap"), dir.path().join("w.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[ports]]\nname = \"send-only\"\nuri = \"afpacket:{ve}\"\nrx = false\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let (normal, fifo) = (ThreadSched::normal(-5), ThreadSched::fifo(1, -5));
    let sched = |want| wait_thread_sched(engine.pid(), "rw-sink-cap", want);
    let ok = |args: &[&str]| ringctl_ok(&sock, args);
    let send = || {
        assert_eq!(generate(&ns_g, &vg, &["--count", "200", "--rate", "20000"])["sent"], 200);
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(sched(fifo), Some(fifo), "an interface port: SCHED_FIFO");
    send();
    ok(&["ports", "del", "p"]);
    assert_eq!(sched(normal), Some(normal), "no interface port receiving: normal");
    // The engine's last port cannot go: an engine (and its saved config) needs one.
    let last = ringctl(&sock, &["ports", "del", "send-only"]);
    let err = String::from_utf8_lossy(&last.stderr);
    assert_eq!(last.status.code(), Some(1), "{err}");
    assert!(err.contains("`send-only` is the engine's last port, and an engine needs one: add another first"), "{err}");
    ok(&["ports", "add", &format!("afpacket:{ve}"), "--name", "p2"]);
    assert_eq!(sched(fifo), Some(fifo), "an interface port added: SCHED_FIFO again");
    send();
    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(read_pcap(&out).len(), 400, "the frames of both ports");
}

/// `ringctl config show` prints the configuration in force, changes made
/// through the control socket included, as a config file that `ringwire
/// run` starts from as it is.
#[test]
fn config_show_prints_the_configuration_in_force() {
    if !privileged("config_show_prints_the_configuration_in_force") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (st, out, cfg) = (dir.path().join("stats.json"), dir.path().join("cap.pcap"), dir.path().join("first.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"cap\"\nkind = \"pcap\"\npath = \"{}\"\n",
            st.display(),
            out.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let ok = |args: &[&str]| ringctl_ok(&sock, args);
    ok(&["consumers", "add", "cnt", "--kind", "counter", "--filter", "udp"]);
    let ring = dir.path().join("ring.pcap");
    let ring_s = ring.to_str().unwrap();
    ok(&["consumers", "add", "ring", "--kind", "pcap", "--path", ring_s, "--rotate-mb", "1", "--rotate-files", "2"]);
    ok(&["filters", "load", "f", "tcp"]);
    ok(&["filters", "attach", "f", "--consumer", "cap"]);
    let shown = ok(&["config", "show"]);
    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));

    let saved = dir.path().join("saved.toml");
    std::fs::write(&saved, &shown).unwrap();
    let c = ringwire_engine::config::Config::load(&saved).unwrap_or_else(|e| panic!("{e}:\n{shown}"));
    let filters: Vec<_> =
        c.consumers.iter().map(|c| (c.name.as_str(), c.filter.as_ref().map(|f| f.display()))).collect();
    assert_eq!(filters, [("cap", Some("tcp".into())), ("cnt", Some("udp".into())), ("ring", None)], "{shown}");
    assert_eq!((c.consumers[2].rotate_mb, c.consumers[2].rotate_files), (1, 2), "{shown}");
    // Run from it: the same consumers, filters and counts.
    let again = start_engine(&ns_e, &saved, dir.path());
    let sent = generate(&ns_g, &vg, &["--count", "400", "--rate", "20000", "--vlan-every", "0", "--l4", "udp"]);
    assert_eq!(sent["sent"], 400);
    std::thread::sleep(Duration::from_millis(300));
    let res = ringwire_tests::stop_engine(again);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = read_json(&st);
    assert_reconciles(&s);
    let counts: Vec<_> =
        s["consumers"].as_array().unwrap().iter().map(|c| (c["name"].clone(), c["passed"].clone())).collect();
    assert_eq!(
        counts,
        [("cap".into(), 0.into()), ("cnt".into(), 400.into()), ("ring".into(), 400.into())],
        "UDP frames: {s}"
    );
}

/// `ringctl consumers add --rotate-s 1`: a pcap consumer added at run time
/// starts a file a second, named by the time it started (strftime), every
/// frame it wrote in one of them; `config show` keeps the setting.
#[test]
fn a_consumer_added_with_rotate_s_starts_a_file_a_second() {
    if !privileged("a_consumer_added_with_rotate_s_starts_a_file_a_second") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (engine, sock) = counting_engine(dir.path(), "timed", &ns_e, &ve);
    let out = dir.path().join("timed");
    std::fs::create_dir(&out).unwrap();
    let pattern = out.join("t-%s.pcap");
    let pattern = pattern.to_str().unwrap();
    ringctl_ok(&sock, &["consumers", "add", "t", "--kind", "pcap", "--path", pattern, "--rotate-s", "1"]);
    let shown = ringctl_ok(&sock, &["config", "show"]);
    assert!(shown.contains("rotate_s = 1"), "{shown}");
    let rep = generate(&ns_g, &vg, &["--count", "5000", "--rate", "2000", "--l4", "udp"]);
    assert_eq!(rep["sent"], 5000);
    std::thread::sleep(Duration::from_millis(300));
    let stats: serde_json::Value = serde_json::from_str(&ringctl_ok(&sock, &["--json", "stats"])).unwrap();
    let t = stats["counters"]["consumers"].as_array().unwrap().iter().find(|c| c["name"] == "t").unwrap().clone();
    ringctl_ok(&sock, &["consumers", "del", "t"]);
    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let files = ringwire_tests::timed_files(&out, "t-");
    assert!((2..=5).contains(&files.len()), "2.5 s of traffic, a file a second: {files:?}");
    let per_file: Vec<usize> = files.iter().map(|(_, n)| *n).collect();
    assert_eq!(per_file.iter().sum::<usize>(), 5000, "{per_file:?}");
    assert_eq!(t["written"], 5000, "{t}");
    assert_eq!(t["files"], files.len() as u64, "{t}");
}

/// An engine on `ve` (port `p`, one worker) with a counting consumer `all`,
/// and its control socket.
fn counting_engine(dir: &Path, name: &str, ns: &str, ve: &str) -> (ringwire_tests::Proc, std::path::PathBuf) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n[[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"all\"\nkind = \"counter\"\n"
        ),
    )
    .unwrap();
    let engine = start_engine(ns, &cfg, dir);
    let sock = control_socket(&cfg);
    (engine, sock)
}

/// A consumer whose writes failed (its file system is full) is removed all
/// the same: the answer is `ok`, with the error beside the result, and the
/// engine's final report still names it.
#[test]
fn removing_a_consumer_whose_writes_failed_says_so_and_removes_it() {
    if !privileged("removing_a_consumer_whose_writes_failed_says_so_and_removes_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = SmallFs::mount(&dir.path().join("small"), "64k");
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (engine, sock) = counting_engine(dir.path(), "full", &ns_e, &ve);
    let tap = full.0.join("tap.pcap");
    let _ = ringctl_json(
        &sock,
        &["consumers", "add", "tap", "--kind", "pcap", "--path", tap.to_str().unwrap(), "--on-write-error", "continue"],
    );
    // 2 MB of frames into 64 KiB.
    let rep = generate(&ns_g, &vg, &["--count", "2000", "--rate", "20000", "--size", "1000"]);
    assert_eq!(rep["sent"], 2000);
    std::thread::sleep(Duration::from_millis(300));
    // The table shows what the writer lost.
    let table = ringctl_ok(&sock, &["stats"]);
    let row: Vec<&str> =
        table.lines().find(|l| l.split_whitespace().next() == Some("tap")).unwrap().split_whitespace().collect();
    assert!(table.contains("write_err") && row[9].parse::<u64>().unwrap() > 0, "{table}");
    // Removed, but frames were lost: exit status 4 and the error on stderr, for a script.
    let o = ringctl(&sock, &["--json", "consumers", "del", "tap"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("consumers.del: done, but") && err.contains("No space left on device"), "{err}");
    let del: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let error = del["error"].as_str().unwrap_or_else(|| panic!("the write error in the answer: {del}"));
    assert!(error.contains("No space left on device"), "{error}");
    assert_eq!(del["counters"]["removed"], true, "{del}");
    assert!(del["counters"]["write_errors"].as_u64().unwrap() > 0, "{del}");
    let list = ringctl_json(&sock, &["consumers", "list"]);
    assert!(list["consumers"].as_array().unwrap().iter().all(|c| c["name"] != "tap"), "removed: {list}");
    // Asked again: it is gone, not failing.
    let again = ringctl(&sock, &["consumers", "del", "tap"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not_found"), "{again:?}");
    engine.signal(libc::SIGTERM);
    let done = engine.wait(Duration::from_secs(15));
    let log = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "a run with a write error ends with status 1: {log}");
    assert!(log.contains("No space left on device"), "{log}");
}

/// A pcap consumer whose disk fills stops the engine by default (as
/// dumpcap stops): by itself, with the error, exit status 1, the file a
/// valid pcap of exactly the frames counted written, and no empty or cut
/// `stats_json` left on the full disk, whose failure is said as well.
#[test]
fn a_full_disk_stops_the_engine_and_leaves_whole_files() {
    if !privileged("a_full_disk_stops_the_engine_and_leaves_whole_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = SmallFs::mount(&dir.path().join("small"), "128k");
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (tap, stats) = (full.0.join("tap.pcap"), full.0.join("stats.json"));
    let cfg = dir.path().join("fills.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n[[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"tap\"\nkind = \"pcap\"\npath = \"{}\"\n",
            stats.display(),
            tap.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    // 1 MB of frames into 128 KiB, and more after: the engine is gone by then.
    let rep = generate(&ns_g, &vg, &["--count", "1000", "--rate", "20000", "--size", "1000"]);
    assert_eq!(rep["sent"], 1000);
    let done = engine.wait(Duration::from_secs(10));
    let log = String::from_utf8_lossy(&done.stdout).into_owned() + &String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{log}");
    assert!(log.contains("write failed; stopping") && log.contains("No space left on device"), "{log}");
    assert!(log.contains("error: consumer `tap`"), "the consumer's error first: {log}");
    assert!(log.contains("engine.stats_json: writing"), "the counters' file not written, said: {log}");
    assert!(!stats.exists(), "no empty or cut stats.json left: {:?}", std::fs::read(&stats));
    let row: Vec<&str> =
        log.lines().find(|l| l.split_whitespace().next() == Some("tap")).unwrap().split_whitespace().collect();
    let frames = read_pcap(&tap).len();
    assert!(frames > 0, "{log}");
    assert_eq!(row[9].parse::<usize>().ok(), Some(frames), "written is what the file holds: {log}");
}

/// With `on_write_error = "continue"` the engine goes on through a full
/// disk (its other consumers see every frame), the progress line shows the
/// frames not written, and once writing works again a warning says how
/// many frames the file is missing; the counters reconcile with the file.
#[test]
fn a_writer_told_to_continue_goes_on_and_says_how_much_is_missing() {
    if !privileged("a_writer_told_to_continue_goes_on_and_says_how_much_is_missing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = SmallFs::mount(&dir.path().join("small"), "512k");
    let filler = full.0.join("filler");
    std::fs::write(&filler, vec![0u8; 400 << 10]).unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (tap, stats) = (full.0.join("tap.pcap"), dir.path().join("stats.json"));
    let cfg = dir.path().join("goes-on.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nprogress_ms = 200\nstats_json = \"{}\"\n[[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"all\"\nkind = \"counter\"\n\
             [[consumers]]\nname = \"tap\"\nkind = \"pcap\"\npath = \"{}\"\non_write_error = \"continue\"\n",
            stats.display(),
            tap.display()
        ),
    )
    .unwrap();
    let mut engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let rep = generate(&ns_g, &vg, &["--count", "1000", "--rate", "20000", "--size", "1000"]);
    assert_eq!(rep["sent"], 1000);
    engine.expect_stderr("(write-err ", Duration::from_secs(5), "the progress line shows the frames not written");
    assert!(!engine.exited(), "the engine goes on");
    assert!(!engine.stderr_text().contains("writing again"), "{}", engine.stderr_text());
    std::fs::remove_file(&filler).unwrap();
    let rep = generate(&ns_g, &vg, &["--count", "100", "--rate", "20000", "--size", "100"]);
    assert_eq!(rep["sent"], 100);
    engine.expect_stderr("writing again: ", Duration::from_secs(5), "the gap is said once writing works again");
    let status = ringctl_json(&sock, &["status"]);
    assert!(status["pid"].is_u64(), "still serving: {status}");
    engine.signal(libc::SIGTERM);
    let done = engine.wait(Duration::from_secs(15));
    let log = String::from_utf8_lossy(&done.stderr);
    // Writing worked again: a stop is not a failure (the gap was said and counted).
    assert_eq!(done.status.code(), Some(0), "{log}");
    assert!(!log.contains("error: consumer `tap`"), "{log}");
    let st = read_json(&stats);
    let c = |name: &str| st["consumers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    let (all, t) = (c("all"), c("tap"));
    assert_eq!(all["delivered"], 1100, "the other consumer saw every frame: {st}");
    let lost = t["write_errors"].as_u64().unwrap();
    assert!(lost > 0, "{st}");
    assert_eq!(t["written"].as_u64().unwrap() + lost, 1100, "{st}");
    assert_eq!(read_pcap(&tap).len() as u64, t["written"].as_u64().unwrap(), "{st}");
    let said = log.lines().find(|l| l.contains("writing again: ")).unwrap();
    assert!(said.contains(&format!("{lost} frames over ")), "all {lost} lost frames said: {said}");
    let in_all =
        log.lines().find(|l| l.contains("in all (on_write_error")).expect("the whole run's loss said at the end");
    assert!(in_all.contains(&format!("{lost} frames were not written in all")), "{in_all}");
}

/// A ready file left by an earlier run says nothing of this one: removed at
/// start (also by a run that fails to start), and written with this
/// engine's pid once it is ready.
#[test]
fn a_stale_ready_file_never_says_a_run_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let src = dir.path().join("in.pcap");
    // Two frames 30 s apart at the recorded pace: the run waits for the second.
    let frame = [0x11u8; 60];
    ringwire_tests::write_pcap(&src, [(Duration::ZERO, &frame[..]), (Duration::from_secs(30), &frame[..])]);
    let run = |cfg: &Path| {
        ringwire_tests::Proc::spawn(
            "ringwire run",
            Command::new(bin("ringwire"))
                .arg("run")
                .arg(cfg)
                .arg("--ready-file")
                .arg(&ready)
                .arg("--control-socket")
                .arg(cfg.with_extension("sock")),
        )
    };
    // A run that cannot start.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[ports]]\nuri = \"pcap:/nonexistent/in.pcap\"\n[[consumers]]\nname = \"n\"\nkind = \"counter\"\n",
    )
    .unwrap();
    std::fs::write(&ready, "99999\n").unwrap();
    let out = run(&bad).wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!ready.exists(), "a failed start leaves no ready file");
    // A run that starts: its own pid, then nothing once stopped.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[[ports]]\nuri = \"pcap:{}\"\npace = \"recorded\"\n[[consumers]]\nname = \"n\"\nkind = \"counter\"\n",
            src.display()
        ),
    )
    .unwrap();
    std::fs::write(&ready, "99999\n").unwrap();
    let engine = run(&good);
    let pid = engine.pid().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::fs::read_to_string(&ready) {
            Ok(t) if t.trim() == pid => break,
            // (Between its creation and its write, this run's is empty.)
            Ok(t) => assert!(t.is_empty() || t == "99999\n", "only the stale file, or this run's: {t:?}"),
            Err(_) => {}
        }
        assert!(std::time::Instant::now() < deadline, "not ready within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.signal(libc::SIGTERM);
    let out = engine.wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Clients that pipeline thousands of requests, shut down their sending
/// side after a request (`socat`, `echo ... | nc -N`), or send a line that
/// never ends: each is served as it asked, and none holds up the others or
/// a SIGTERM.
#[test]
fn flooding_half_closing_and_endless_clients_are_served_fairly() {
    use std::io::Read;
    use std::time::Instant;
    if !privileged("flooding_half_closing_and_endless_clients_are_served_fairly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: _g, ns_eng: ns_e, if_gen: _vg, if_eng: ve } = Pair::new();
    let (engine, sock) = counting_engine(dir.path(), "fair", &ns_e, &ve);

    // Half-closed after two requests, the last without its newline: both answered, then EOF.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"id\":1,\"cmd\":\"status\"}\n{\"id\":2,\"cmd\":\"ports.list\"}").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("answers, then the end of the connection");
    let answers: Vec<serde_json::Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), 2, "{all}");
    assert_eq!((answers[0]["id"].clone(), answers[0]["ok"].clone()), (1.into(), true.into()), "{all}");
    assert_eq!(answers[1]["result"]["ports"][0]["name"], "p", "{all}");
    // More requests than the engine takes from one client at a time, then the shutdown of
    // its side: every one answered, in order, then the end of the connection.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let many: String = (0..40).map(|i| format!("{{\"id\":{i},\"cmd\":\"forwarding.start\"}}\n")).collect();
    s.write_all(many.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("answers, then the end of the connection");
    let ids: Vec<u64> =
        all.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..40).collect::<Vec<u64>>(), "{all}");

    // A line that never ends is answered once, however much of it comes.
    let mut endless = connect(&sock);
    let chunk = vec![b'x'; 32 << 10];
    for _ in 0..8 {
        endless.get_mut().write_all(&chunk).unwrap();
    }
    let r = ask(&mut endless, b"\n{\"id\":7,\"cmd\":\"status\"}\n");
    assert!(r["error"]["message"].as_str().unwrap_or("").contains("request over"), "{r}");
    let mut next = String::new();
    endless.read_line(&mut next).unwrap();
    let next: serde_json::Value = serde_json::from_str(&next).unwrap();
    assert_eq!(
        (next["id"].clone(), next["ok"].clone()),
        (7.into(), true.into()),
        "one refusal, then the answer: {next}"
    );

    // A flood: 20 000 changes pipelined (each waits for the worker, about a
    // millisecond: 20 s or more in all), read by their sender.
    let flood_sock = sock.clone();
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let flood = std::thread::spawn(move || {
        let mut c = connect(&flood_sock);
        let lines: String = (0..20_000).map(|i| format!("{{\"id\":{i},\"cmd\":\"forwarding.start\"}}\n")).collect();
        let writer = c.get_ref().try_clone().unwrap();
        let w = std::thread::spawn(move || {
            let mut writer = writer;
            let _ = writer.write_all(lines.as_bytes());
        });
        let mut answered = 0u64;
        let mut line = String::new();
        while c.read_line(&mut line).is_ok_and(|n| n > 0) {
            answered += 1;
            if answered == 100 {
                let _ = first_tx.send(());
            }
            line.clear();
        }
        let _ = w.join();
        answered
    });
    // The flood is under way, past its first requests in flight: its reads re-arm.
    first_rx.recv_timeout(Duration::from_secs(10)).expect("the flood's first 100 answers");
    // Another client is answered after at most the flood's few requests in flight, not after all of them.
    let t = Instant::now();
    let mut other = connect(&sock);
    let r = ask(&mut other, b"{\"id\":3,\"cmd\":\"status\"}\n");
    assert_eq!(r["ok"], true, "{r}");
    assert!(t.elapsed() < Duration::from_secs(3), "status waited {:?} behind another client's flood", t.elapsed());
    // SIGTERM is acted on between two requests: the run ends with the flood unfinished.
    let t = Instant::now();
    engine.signal(libc::SIGTERM);
    let done = engine.wait(Duration::from_secs(15));
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "SIGTERM took {:?} behind the flood", t.elapsed());
    let answered = flood.join().unwrap();
    assert!((100..20_000).contains(&answered), "the flood was served in part, then closed: {answered}");
}

/// An engine whose stop waits (its file was read to the end, and its
/// FIFO's reader keeps the FIFO open without reading) answers at once:
/// `shutdown` is done already, `status` is refused, saying the engine stops,
/// on a new connection as on one that sent `shutdown` first; and one
/// SIGTERM ends the stop that waits, as a second one does after a SIGTERM.
#[test]
fn a_stopping_engine_answers_at_once_and_one_signal_ends_a_stop_that_waits() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = ringwire_tests::StalledFifo::new(dir.path());
    let (src, fifo) = (&stalled.src, &stalled.fifo);
    let cfg = dir.path().join("stall.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n[[ports]]\nuri = \"pcap:{}\"\n\
             [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\n",
            src.display(),
            fifo.display()
        ),
    )
    .unwrap();
    let sock = dir.path().join("stall.sock");
    let mut engine = ringwire_tests::Proc::spawn(
        "ringwire run",
        Command::new(bin("ringwire")).args(["run", cfg.to_str().unwrap(), "--control-socket", sock.to_str().unwrap()]),
    );
    engine.expect_stderr(
        "every source was read to its end (or removed); stopping",
        Duration::from_secs(10),
        "the file was read",
    );
    let mut c = connect(&sock);
    c.get_mut().write_all(b"{\"id\":1,\"cmd\":\"shutdown\"}\n{\"id\":2,\"cmd\":\"status\"}\n").unwrap();
    let mut answers = String::new();
    for _ in 0..2 {
        c.read_line(&mut answers).unwrap();
    }
    let answers: Vec<serde_json::Value> = answers.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((answers[0]["id"].clone(), answers[0]["ok"].clone()), (1.into(), true.into()), "{answers:?}");
    assert_eq!(answers[0]["result"]["stopping"], true, "{answers:?}");
    assert_eq!((answers[1]["id"].clone(), answers[1]["ok"].clone()), (2.into(), false.into()), "{answers:?}");
    let started = std::time::Instant::now();
    let o = ringctl(&sock, &["--timeout", "8", "status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("conflict: the engine is stopping: it takes no more requests"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "refused at once, not at the timeout");
    assert!(!engine.exited(), "the stop waits for the FIFO's reader");
    // The wait is said.
    engine.expect_stderr(
        "stopping: its thread is still writing what it was given after 2s",
        Duration::from_secs(5),
        "the stop that waits",
    );
    engine.signal(libc::SIGTERM);
    let out = engine.wait(Duration::from_secs(5));
    drop(stalled);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{log}");
    assert!(log.contains("ringwire: SIGTERM while stopping: exiting now"), "{log}");
}

/// `ringctl shutdown` returns once the engine has stopped: its file is
/// complete, its final counters written and its socket gone, so a script
/// may start another engine on the same socket at once. It used to return
/// as the engine began to stop, and the next engine found "an engine is
/// already listening there". `--no-wait` returns at once.
#[test]
fn ringctl_shutdown_returns_once_the_engine_has_stopped() {
    if !privileged("ringctl_shutdown_returns_once_the_engine_has_stopped") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (cap, st) = (dir.path().join("cap.pcap"), dir.path().join("stats.json"));
    let cfg = dir.path().join("stop.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n[[ports]]\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\nfilter = \"udp\"\n",
            st.display(),
            cap.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    let rep = generate(&ns_g, &vg, &["--count", "20000", "--rate", "50000", "--size", "1000", "--l4", "udp"]);
    assert_eq!(rep["sent"], 20000);
    let o = ringctl(&sock, &["shutdown"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: the engine has stopped"), "{o:?}");
    // At once, not after a while: the engine has stopped.
    assert!(!sock.exists(), "its socket is gone");
    assert_eq!(read_json(&st)["consumers"][0]["written"], 20000, "its final counters are written");
    assert_eq!(read_pcap(&cap).len(), 20000, "its file is complete");
    let out = engine.wait(Duration::from_secs(5));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Another engine takes the socket at once.
    let again = start_engine(&ns_e, &cfg, dir.path());
    ringctl_ok(&sock, &["status"]);
    let o = ringctl_ok(&sock, &["shutdown", "--no-wait"]);
    assert!(o.contains("ok: the engine is stopping") && !o.contains("stopped"), "{o}");
    let out = again.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An engine started while another listens on the default socket is
/// refused, as on any other path: it used to run without a socket, with a
/// warning, and `ringctl` then drove the first engine.
#[test]
fn a_second_engine_on_the_default_socket_is_refused() {
    if !privileged("a_second_engine_on_the_default_socket_is_refused") {
        return;
    }
    let default = Path::new(ringwire_engine::config::DEFAULT_CONTROL_SOCKET);
    if UnixStream::connect(default).is_ok() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "an engine listens on {}", default.display());
        eprintln!("skipping: an engine of this machine listens on {}", default.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_eng: ns_e, if_eng: ve, .. } = Pair::new();
    let first = dir.path().join("first.toml");
    std::fs::write(
        &first,
        format!("[[ports]]\nuri = \"afpacket:{ve}\"\n[[consumers]]\nname = \"n\"\nkind = \"counter\"\n"),
    )
    .unwrap();
    let engine = ringwire_tests::start_engine_on(&ns_e, &first, dir.path(), None);
    let input = dir.path().join("in.pcap");
    ringwire_tests::record(&input, &["--count", "10"]);
    let second = dir.path().join("second.toml");
    std::fs::write(&second, format!("[[ports]]\nuri = \"pcap:{}\"\n", input.display())).unwrap();
    let out = Command::new(bin("ringwire")).arg("run").arg(&second).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "an engine is already listening there: give this engine a socket of its own with --control-socket"
        ),
        "{err}"
    );
    // The socket is still the first engine's.
    assert!(ringctl_ok(default, &["status"]).contains(&ve));
    ringctl_ok(default, &["shutdown"]);
    assert!(!default.exists());
    let out = engine.wait(Duration::from_secs(5));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What a script driving the engine meets: an engine with no room for
/// another client is asked again until `--timeout` (it was exit 1, as if
/// the engine had said no); `stats --watch` goes on past the engine's idle
/// timeout (it ended with "Broken pipe"); and a consumer removed and added
/// again under its name shows its own rate (it showed the removed one's).
#[test]
fn ringctl_waits_for_room_keeps_watching_and_rates_follow_their_row() {
    if !privileged("ringctl_waits_for_room_keeps_watching_and_rates_follow_their_row") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let cfg = dir.path().join("busy.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n[control]\nmax_clients = 2\nidle_timeout_s = 1\n\
             [[ports]]\nname = \"p\"\nuri = \"afpacket:{ve}\"\n[[consumers]]\nname = \"z\"\nkind = \"counter\"\n"
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    // Every slot taken by a client that sends nothing (closed when idle for 1 s).
    let held = (connect(&sock), connect(&sock));
    let started = std::time::Instant::now();
    let o = ringctl(&sock, &["--timeout", "10", "status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited for the slot");
    drop(held);
    let o = ringctl(&sock, &["--json", "stats", "--watch", "--interval", "2.5", "--count", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reads: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reads.len(), 2, "{o:?}");

    let traffic = ringwire_tests::spawn_generator(&ns_g, &vg, &["--rate", "20000", "--duration", "4"]);
    std::thread::sleep(Duration::from_millis(500));
    ringctl_ok(&sock, &["consumers", "del", "z"]);
    ringctl_ok(&sock, &["consumers", "add", "z", "--kind", "counter"]);
    ringctl_ok(&sock, &["stats"]);
    std::thread::sleep(Duration::from_secs(1));
    let table = ringctl_ok(&sock, &["stats"]);
    let consumers = table.split("consumers:\n").nth(1).unwrap();
    let live: Vec<&str> = consumers
        .lines()
        .find(|l| l.split_whitespace().next() == Some("z") && !l.contains("(removed)"))
        .unwrap()
        .split_whitespace()
        .collect();
    let at = consumers.lines().next().unwrap().split_whitespace().position(|h| h == "delivered/s").unwrap();
    let per_s: f64 = live[at].parse().unwrap_or_else(|_| panic!("{table}"));
    assert!(per_s > 5_000.0, "the live consumer's own rate: {table}");
    // A one-shot read a moment after another: rates over a second or more,
    // not over the moment between (noise), and the table says over what.
    let quick = ringctl_ok(&sock, &["stats"]);
    let header = quick.lines().next().unwrap();
    let dt: f64 = header
        .split("; rates over the last ")
        .nth(1)
        .and_then(|t| t.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("{quick}"));
    assert!(dt >= 1.0, "{quick}");
    // Each connection's rates are over its own interval, however often
    // another reads (both under the 1-s idle timeout).
    let (mut a, mut b) = (connect(&sock), connect(&sock));
    let stats = b"{\"id\":1,\"cmd\":\"stats\"}\n";
    ask(&mut a, stats);
    for k in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        let r = ask(&mut b, stats);
        let dt = r["result"]["rates"]["interval_s"].as_f64().unwrap();
        // B's first read: over a second or more (A's read a moment ago would be noise).
        assert!(if k == 0 { dt >= 1.0 } else { dt < 0.5 }, "{r}");
    }
    let r = ask(&mut a, stats);
    let interval = r["result"]["rates"]["interval_s"].as_f64().unwrap();
    assert!(interval >= 0.75, "A's interval is since A's own read: {r}");
    let _ = traffic.wait(Duration::from_secs(10));
    let _ = ringwire_tests::stop_engine(engine);
}

/// A pcap writer that takes nothing (a FIFO whose reader holds it open and
/// never reads) is given its whole `queue_mb` of frames, also when the
/// ring hands them over a few at a time (a 2 ms block timeout): it got a
/// 128 KiB chunk for every batch, and dropped most of what 1 MiB holds
/// (a drive: 6.5 % of 32 MiB). When it drops, the log says so, once,
/// while it goes on. Removed while it cannot write, the answer says that
/// it has not finished.
#[test]
fn a_stalled_writer_holds_its_queue_mb_of_frames_and_its_drops_are_logged() {
    if !privileged("a_stalled_writer_holds_its_queue_mb_of_frames_and_its_drops_are_logged") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let fifo = dir.path().join("out.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // (The reader is the process that holds the FIFO: killing it closes it.)
    let mut reader = Command::new("sh").arg("-c").arg(format!("exec sleep 60 3<'{}'", fifo.display())).spawn().unwrap();
    let cfg = dir.path().join("stalled.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n[ring]\nretire_timeout_ms = 2\n[[ports]]\nuri = \"afpacket:{ve}\"\n\
             [[consumers]]\nname = \"w\"\nkind = \"pcap\"\npath = \"{}\"\nqueue_mb = 1\n",
            fifo.display()
        ),
    )
    .unwrap();
    let mut engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    // 20 000 records of 216 bytes (4.3 MB), about 40 a batch: 1 MiB holds 4 800 of them.
    let rep = generate(&ns_g, &vg, &["--count", "20000", "--rate", "20000", "--size", "200", "--l4", "udp"]);
    assert_eq!(rep["sent"], 20000);
    std::thread::sleep(Duration::from_millis(300));
    let s = ringctl_json(&sock, &["stats"]);
    let w = &s["counters"]["consumers"][0];
    let (delivered, dropped) = (w["delivered"].as_u64().unwrap(), w["queue_dropped"].as_u64().unwrap());
    assert_eq!(delivered + dropped, 20000, "{w}");
    // 8 chunks of 128 KiB (606 records each): those the writer took before
    // it stalled may hold a batch or a few, the others are full.
    assert!(delivered >= 5 * 606, "{w}");
    engine.expect_stderr("consumer `w`: ", Duration::from_secs(2), "the drops are logged");
    let log = engine.stderr_text();
    assert_eq!(log.matches("frames dropped on a full queue").count(), 1, "{log}");
    assert!(log.contains("(queue_mb = 1 MiB per worker); counted in queue_dropped"), "{log}");
    // Removed while its thread cannot write: the answer says it has not
    // finished (it said `ok: removed w`, its counters looking final).
    let del = ringctl_json(&sock, &["consumers", "del", "w"]);
    assert_eq!(del["finished"], false, "{del}");
    assert!(del["notes"][0].as_str().unwrap().contains("its thread is still writing after 10s"), "{del}");
    let text = ringctl_ok(&sock, &["consumers", "list"]);
    assert!(!text.contains(" w "), "{text}");
    // The reader goes: the writer's frames fail, and the engine stops.
    let _ = reader.kill();
    let _ = reader.wait();
    engine.signal(libc::SIGTERM);
    let out = engine.wait(Duration::from_secs(10));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && log.contains("Broken pipe"), "frames were lost: {log}");
}

/// A SIGINT while the engine starts (a ring of 2 GiB takes its kernel
/// seconds to set up) ends the run at once with status 130, saying nothing
/// was captured: the engine went on starting, said it had started and
/// wrote its ready file before it stopped.
#[test]
fn a_signal_while_the_engine_starts_ends_the_run() {
    if !privileged("a_signal_while_the_engine_starts_ends_the_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: _, ns_eng: ns_e, if_gen: _, if_eng: ve } = Pair::new();
    let cfg = dir.path().join("big.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\n[ring]\nblock_size = 1073741824\nblock_count = 2\n\
             [[ports]]\nuri = \"afpacket:{ve}\"\n[[consumers]]\nname = \"c\"\nkind = \"counter\"\n"
        ),
    )
    .unwrap();
    let (ready, sock) = (dir.path().join("ready"), dir.path().join("big.sock"));
    let mut run = ringwire_tests::in_ns(&ns_e, "ringwire");
    run.arg("run").arg(&cfg).arg("--ready-file").arg(&ready).arg("--control-socket").arg(&sock);
    let engine = ringwire_tests::Proc::spawn("ringwire run", &mut run);
    // (Its signal handlers are in place within milliseconds; its 2 GiB ring takes seconds.)
    std::thread::sleep(Duration::from_millis(1000));
    engine.signal(libc::SIGINT);
    let out = engine.wait(Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{log}");
    assert!(log.contains("ringwire: SIGINT while starting: exiting now; nothing was captured"), "{log}");
    assert!(!log.contains("engine started") && !ready.exists(), "{log}");
    assert!(!sock.exists(), "its control socket is removed");
}

/// A control socket's path longer than a socket address holds (107 bytes)
/// is refused with that said: the engine bound it and said it listened
/// there, and `ringctl` could not connect. One that fits, in a directory
/// whose own path is nearly as long, is bound there and answers.
#[test]
fn a_control_socket_path_too_long_for_a_socket_is_refused_and_one_that_fits_works() {
    if !privileged("a_control_socket_path_too_long_for_a_socket_is_refused_and_one_that_fits_works") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: _, ns_eng: ns_e, if_gen: _, if_eng: ve } = Pair::new();
    let cfg = dir.path().join("long.toml");
    std::fs::write(
        &cfg,
        format!("[engine]\nworkers = [0]\n[[ports]]\nuri = \"afpacket:{ve}\"\n[[consumers]]\nname = \"c\"\nkind = \"counter\"\n"),
    )
    .unwrap();
    let base = dir.path().as_os_str().len();
    let too_long = dir.path().join(format!("{}.sock", "x".repeat(120)));
    let mut run = ringwire_tests::in_ns(&ns_e, "ringwire");
    run.arg("run").arg(&cfg).arg("--control-socket").arg(&too_long);
    let out = run.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("a socket's path holds at most 107 bytes: this one has {}", base + 126)), "{err}");
    assert!(!err.contains("listening"), "{err}");
    // ringctl says the same of it.
    let o = ringctl(&too_long, &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot connect: a socket's path holds at most 107 bytes: this one has {}", base + 126)),
        "{err}"
    );
    // A directory of 98 bytes: the socket's path is 105.
    let long_dir = dir.path().join("d".repeat(98 - base - 1));
    std::fs::create_dir(&long_dir).unwrap();
    let sock = long_dir.join("a.sock");
    assert_eq!(sock.as_os_str().len(), 105);
    let engine = ringwire_tests::start_engine_on(&ns_e, &cfg, dir.path(), Some(&sock));
    let status = ringctl_ok(&sock, &["status"]);
    assert!(status.contains("workers"), "{status}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    drop(engine);
}

/// While frames flow, a pcap consumer's `written` never exceeds its
/// `delivered` in a `stats` answer, before a reset or after one (a drive saw
/// it 14 times in 100 resets: a worker hands each chunk to its writer as it
/// fills, but counts what it delivered once a batch, so the writer could
/// have written frames not yet counted delivered). Consumers come and go
/// meanwhile, as in the drive.
#[test]
fn written_never_exceeds_delivered_in_live_stats() {
    use std::time::Instant;
    if !privileged("written_never_exceeds_delivered_in_live_stats") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let (engine, sock) = counting_engine(dir.path(), "written", &ns_e, &ve);
    let cap = dir.path().join("cap.pcap");
    ringctl_ok(&sock, &["consumers", "add", "cap", "--kind", "pcap", "--path", cap.to_str().unwrap()]);
    let mut gen = ringwire_tests::in_ns(&ns_g, "ringwire-gen");
    gen.args(["-i", &vg, "--count", "80000", "--rate", "20000", "--vlan-every", "0"]);
    let gen = ringwire_tests::Proc::spawn("ringwire-gen", &mut gen);
    let mut conn = connect(&sock);
    let (mut reads, mut bad) = (0u64, Vec::new());
    let until = Instant::now() + Duration::from_secs(4);
    for i in 0u64.. {
        if Instant::now() >= until {
            break;
        }
        let a = ask(&mut conn, format!("{{\"id\":{i},\"cmd\":\"stats\"}}\n").as_bytes());
        reads += 1;
        for c in a["result"]["counters"]["consumers"].as_array().unwrap().iter().filter(|c| c["kind"] == "pcap") {
            if c["written"].as_u64() > c["delivered"].as_u64() {
                bad.push(format!("{}: written {} > delivered {}", c["name"], c["written"], c["delivered"]));
            }
        }
        match i % 50 {
            10 => {
                let path = dir.path().join(format!("g{i}.pcap"));
                let add = format!(
                    "{{\"id\":{i},\"cmd\":\"consumers.add\",\"args\":{{\"name\":\"g{i}\",\"kind\":\"pcap\",\"path\":{}}}}}\n",
                    serde_json::json!(path)
                );
                assert_eq!(ask(&mut conn, add.as_bytes())["ok"], true);
            }
            30 => {
                assert_eq!(ask(&mut conn, format!("{{\"id\":{i},\"cmd\":\"stats.reset\"}}\n").as_bytes())["ok"], true)
            }
            45 => {
                let del = format!("{{\"id\":{i},\"cmd\":\"consumers.del\",\"args\":{{\"name\":\"g{}\"}}}}\n", i - 35);
                assert_eq!(ask(&mut conn, del.as_bytes())["ok"], true);
            }
            _ => {}
        }
    }
    let out = gen.wait(Duration::from_secs(30));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(reads >= 200, "{reads} reads");
    assert!(bad.is_empty(), "{} of {reads} stats answers: {:?}", bad.len(), &bad[..bad.len().min(5)]);
    let out = ringwire_tests::stop_engine(engine);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("accounting: all counters reconcile"), "{report}");
}

/// A consumer with a pcap-filter and no `ports` list, in an engine that had
/// no interface to receive from, takes the frames of an interface port
/// added at run time as it would have in the config: `udp` keeps tagged UDP
/// frames (tcpdump -i's meaning), as the filter is compiled again for the
/// interface and swapped in with the port.
#[test]
fn a_filter_meets_an_added_interface_port_as_if_it_had_been_configured() {
    if !privileged("a_filter_meets_an_added_interface_port_as_if_it_had_been_configured") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Pair { lab: _lab, ns_gen: ns_g, ns_eng: ns_e, if_gen: vg, if_eng: ve } = Pair::new();
    let st = dir.path().join("stats.json");
    let cfg = dir.path().join("added.toml");
    // A file replayed at its pace keeps the engine up: a frame now, the next in a minute.
    let slow = dir.path().join("slow.pcap");
    let zeros = [0u8; 60];
    ringwire_tests::write_pcap(&slow, [(Duration::ZERO, &zeros[..]), (Duration::from_secs(60), &zeros[..])]);
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nworkers = [0]\nstats_json = \"{}\"\n\
             [[ports]]\nname = \"slow\"\nuri = \"pcap:{}\"\npace = \"recorded\"\n\
             [[consumers]]\nname = \"udp\"\nkind = \"counter\"\nfilter = \"udp\"\n",
            st.display(),
            slow.display()
        ),
    )
    .unwrap();
    let engine = start_engine(&ns_e, &cfg, dir.path());
    let sock = control_socket(&cfg);
    let added = ringctl_ok(&sock, &["ports", "add", &format!("afpacket:{ve}"), "--name", "p"]);
    assert!(added.contains("consumer `udp`: filter now udp, compiled for the interface of port `p`"), "{added}");
    // Every frame tagged (one group of four flows, the last of every one), all UDP.
    let rep = generate(
        &ns_g,
        &vg,
        &["--count", "2000", "--rate", "20000", "--flows", "4", "--vlan-every", "1", "--l4", "udp"],
    );
    assert_eq!(rep["sent"], 2000);
    std::thread::sleep(Duration::from_millis(300));
    let res = ringwire_tests::stop_engine(engine);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = read_json(&st);
    assert_reconciles(&s);
    assert_eq!(s["consumers"][0]["passed"], 2000, "every tagged UDP frame: {s}");
}
