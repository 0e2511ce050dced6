//! Filters through the real engine, from pcap files (no root needed):
//! built-in filters, Rust plugins (the shipped examples and test fixtures),
//! quarantine of a panicking plugin, ABI and config refusals.

use std::{path::Path, process::Command, time::Duration};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ringwire_tests::{assert_reconciles, bin, plugin, read_json, read_pcap, Proc};

/// `frames` 10 µs apart, through the shared pcap writer.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let at = |i: usize| Duration::from_micros(1_700_000_000_000_000 + i as u64 * 10);
    ringwire_tests::write_pcap(path, frames.iter().enumerate().map(|(i, f)| (at(i), f.as_slice())));
}

fn dns_query(name: &str, vlan: Option<u16>) -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut f = Vec::new();
    match vlan {
        Some(v) => b
            .single_vlan(v.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
            .udp(5353, 53)
            .write(&mut f, &dns),
        None => b.ipv6([0xfd; 16], [0xfe; 16], 64).udp(5353, 53).write(&mut f, &dns),
    }
    .unwrap();
    f
}

fn mixed(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, (i % 4) as u8], [2, 0, 0, 0, 0, 9]);
            let mut f = Vec::new();
            match i % 3 {
                0 => b
                    .single_vlan(((i % 30) as u16).try_into().unwrap())
                    .ipv4([10, 0, (i % 7) as u8, 1], [10, 1, 0, 1], 64)
                    .udp(1000 + (i % 50) as u16, 53)
                    .write(&mut f, &[1; 20]),
                1 => b
                    .ipv4([192, 168, 0, (i % 200) as u8], [10, 1, 0, 1], 64)
                    .tcp(40000, (i % 100) as u16, 1, 100)
                    .write(&mut f, &[2; 30]),
                _ => b.ipv6([0xfd; 16], [0xfe; 16], 64).icmpv6_echo_request(1, i as u16).write(&mut f, &[3; 10]),
            }
            .unwrap();
            f
        })
        .collect()
}

/// Run `ringwire run` on a config; returns its output.
fn run(dir: &Path, config: &str) -> std::process::Output {
    let cfg = dir.join("filters.toml");
    std::fs::write(&cfg, config).unwrap();
    Proc::spawn("ringwire run", Command::new(bin("ringwire")).arg("run").arg(&cfg).args(["--control-socket", "none"]))
        .wait(Duration::from_secs(30))
}

fn config(input: &Path, out: &Path, st: &Path, filter: &str, extra: &str) -> String {
    format!(
        "[engine]\nstats_json = \"{}\"\n[[ports]]\nname = \"in\"\nuri = \"pcap:{}\"\n\
         [[consumers]]\nname = \"f\"\nkind = \"pcap\"\npath = \"{}\"\nfilter = \"{filter}\"\n{extra}\
         [[consumers]]\nname = \"all\"\nkind = \"counter\"\n",
        st.display(),
        input.display(),
        out.display()
    )
}

#[test]
fn builtin_filters_keep_what_an_independent_decoder_selects() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.pcap");
    let frames = mixed(600);
    write_pcap(&input, &frames);
    type Pred = fn(&SlicedPacket<'_>) -> bool;
    let cases: [(&str, Pred); 4] = [
        ("builtin:vlan 5-9 and dst port 53", |p| {
            let vid = match &p.vlan {
                Some(etherparse::VlanSlice::SingleVlan(v)) => Some(v.vlan_identifier().value()),
                _ => None,
            };
            vid.is_some_and(|v| (5..=9).contains(&v))
                && matches!(&p.transport, Some(TransportSlice::Udp(u)) if u.destination_port() == 53)
        }),
        ("builtin:untagged and (proto tcp or proto icmp6)", |p| {
            p.vlan.is_none() && matches!(p.transport, Some(TransportSlice::Tcp(_) | TransportSlice::Icmpv6(_)))
        }),
        ("builtin:src net 192.168.0.0/25 and not dst port 0-49", |p| match (&p.net, &p.transport) {
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) => {
                ip.header().source()[0..3] == [192, 168, 0]
                    && ip.header().source()[3] < 128
                    && t.destination_port() >= 50
            }
            _ => false,
        }),
        ("builtin:src mac 02:00:00:00:00:01,02:00:00:00:00:03", |p| match &p.link {
            Some(etherparse::LinkSlice::Ethernet2(e)) => [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 3]].contains(&e.source()),
            _ => false,
        }),
    ];
    for (filter, pred) in cases {
        let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
        let res = run(dir.path(), &config(&input, &out, &st, filter, ""));
        assert!(res.status.success(), "{filter}: {}", String::from_utf8_lossy(&res.stderr));
        let want: Vec<&Vec<u8>> = frames.iter().filter(|f| pred(&SlicedPacket::from_ethernet(f).unwrap())).collect();
        let got: Vec<Vec<u8>> = read_pcap(&out).into_iter().map(|r| r.data).collect();
        assert!(!want.is_empty(), "{filter}: the corpus has matches");
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{filter}");
        let s = read_json(&st);
        assert_reconciles(&s);
        assert_eq!(s["consumers"][0]["filter"], filter);
        assert_eq!(s["consumers"][1]["seen"], 600);
    }
}

#[test]
fn dns_plugin_keeps_the_configured_domains() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dns.pcap");
    let names = ["www.example.com", "example.com", "notexample.com", "a.b.TEST.org", "example.org", "mail.test.org"];
    let frames: Vec<Vec<u8>> = names.iter().enumerate().map(|(i, n)| dns_query(n, (i % 2 == 0).then_some(7))).collect();
    write_pcap(&input, &frames);
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let filter = format!("plugin:{}:example.com,test.org", plugin("rw-plugin-dns-qname").display());
    let res = run(dir.path(), &config(&input, &out, &st, &filter, ""));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let got: Vec<Vec<u8>> = read_pcap(&out).into_iter().map(|r| r.data).collect();
    let want: Vec<Vec<u8>> = [0, 1, 3, 5].iter().map(|&i| frames[i].clone()).collect();
    assert_eq!(got, want);
    let s = read_json(&st);
    assert_reconciles(&s);
    assert_eq!(s["consumers"][0]["filter_errors"], 0);
    assert!(s["consumers"][0]["filter_quarantined"].is_null());
}

#[test]
fn top_talkers_plugin_loads_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("talk.pcap");
    let frames = mixed(900);
    write_pcap(&input, &frames);
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let filter = format!("plugin:{}:n=2,k=16", plugin("rw-plugin-top-talkers").display());
    let res = run(dir.path(), &config(&input, &out, &st, &filter, ""));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = read_json(&st);
    assert_reconciles(&s);
    let passed = s["consumers"][0]["passed"].as_u64().unwrap();
    assert!(passed > 0 && passed < 900, "top-2 of many senders keeps some, not all: {passed}");
}

#[test]
fn a_panicking_plugin_is_quarantined_and_the_engine_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.pcap");
    write_pcap(&input, &mixed(1000));
    // Frames go to filters in batches of 256: the first batch passes, the
    // plugin panics in the second, whose frames then get the policy's verdict.
    for (policy, want_written) in [("drop", 256u64), ("pass", 1000)] {
        let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
        let filter = format!("plugin:{}:after=300", plugin("rw-test-panicky-plugin").display());
        let res = run(dir.path(), &config(&input, &out, &st, &filter, &format!("on_filter_failure = \"{policy}\"\n")));
        let err = String::from_utf8_lossy(&res.stderr);
        let text = String::from_utf8_lossy(&res.stdout);
        assert!(res.status.success(), "the engine survives: {err}");
        assert!(!err.contains("panicked at") || err.contains("panicky plugin: limit reached"), "{err}");
        assert!(text.contains("quarantined"), "the report says so: {text}");
        let s = read_json(&st);
        assert_reconciles(&s);
        let c = &s["consumers"][0];
        assert!(c["filter_quarantined"].as_str().unwrap().contains("panicky plugin: limit reached"), "{c}");
        assert!(c["filter_errors"].as_u64().unwrap() >= 1);
        assert_eq!(c["written"].as_u64().unwrap(), want_written, "policy {policy}: {c}");
        assert_eq!(s["consumers"][1]["delivered"], 1000, "the other consumer is untouched");
    }
}

/// A plugin in a pcap port's filter that panics is quarantined like a
/// consumer's (every record after is dropped, counted `filtered`), and the
/// port's counters and the final table say so.
#[test]
fn a_panicking_plugin_in_a_file_ports_filter_is_quarantined_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.pcap");
    write_pcap(&input, &mixed(1000));
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let filter = format!("plugin:{}:after=300", plugin("rw-test-panicky-plugin").display());
    let cfg = config(&input, &out, &st, "", "").replace("uri = ", &format!("filter = \"{filter}\"\nuri = "));
    let cfg = cfg.replace("filter = \"\"\n", "");
    let res = run(dir.path(), &cfg);
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let s = read_json(&st);
    let p = &s["ports"][0];
    assert!(p["filter_quarantined"].as_str().unwrap_or("").contains("panicky plugin: limit reached"), "{p}");
    assert!(p["filter_errors"].as_u64().unwrap() >= 1, "{p}");
    // The first 300 records pass, then the plugin panics: every record after is dropped.
    let filtered = p["filtered"].as_u64().unwrap();
    assert!(p["received"] == 1000 && (700..1000).contains(&filtered), "{p}");
    assert_eq!(s["consumers"][1]["seen"].as_u64(), Some(1000 - filtered), "{s}");
    assert!(text.contains("port `in`: filter quarantined: plugin `panicky`"), "{text}");
}

/// `filters list` on a file port's filter (run in userspace: it counts
/// every record) gives its seen, passed and filtered frames (it showed `-`).
#[test]
fn a_file_ports_filter_is_listed_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("paced.pcap");
    // 600 frames over 1.2 s, a third of them TCP.
    let frames = mixed(600);
    let at = |i: usize| Duration::from_micros(1_700_000_000_000_000 + i as u64 * 2_000);
    ringwire_tests::write_pcap(&input, frames.iter().enumerate().map(|(i, f)| (at(i), f.as_slice())));
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let cfg = dir.path().join("l.toml");
    let text = config(&input, &out, &st, "", "").replace("uri = ", "pace = \"recorded\"\nfilter = \"not tcp\"\nuri = ");
    std::fs::write(&cfg, text.replace("filter = \"\"\n", "")).unwrap();
    let engine = ringwire_tests::start_file_engine(&cfg, dir.path());
    let sock = ringwire_tests::control_socket(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let l = ringwire_tests::ringctl_json(&sock, &["filters", "list"]);
    let port = &l["in_force"][0];
    assert_eq!(port["port"], "in", "{l}");
    let (seen, passed, filtered) =
        (port["seen"].as_u64().unwrap(), port["passed"].as_u64().unwrap(), port["filtered"].as_u64().unwrap());
    assert!(seen > 30 && seen == passed + filtered && filtered * 3 <= seen + 3, "{port}");
    let table = ringwire_tests::ringctl(&sock, &["filters", "list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table.lines().find(|l| l.trim_start().starts_with("port:in")).unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert!(cols[2].parse::<u64>().is_ok() && cols[3].parse::<u64>().is_ok(), "counts, not `-`: {table}");
    let res = engine.wait(Duration::from_secs(30));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
}

/// A quarantined consumer filter taken away (or replaced) at run time: its
/// errors and its quarantine stay counted, in `stats` (JSON and table), the
/// stats file and the final table; the filter in force is not quarantined.
#[test]
fn a_quarantined_filter_taken_away_stays_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("paced.pcap");
    // 1500 frames over 3 s, replayed at their recorded times.
    let frames = mixed(1500);
    let at = |i: usize| Duration::from_micros(1_700_000_000_000_000 + i as u64 * 2_000);
    ringwire_tests::write_pcap(&input, frames.iter().enumerate().map(|(i, f)| (at(i), f.as_slice())));
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let filter = format!("plugin:{}:after=100", plugin("rw-test-panicky-plugin").display());
    let cfg = dir.path().join("q.toml");
    std::fs::write(&cfg, config(&input, &out, &st, &filter, "").replace("uri = ", "pace = \"recorded\"\nuri = "))
        .unwrap();
    let (sock, ready) = (dir.path().join("q.sock"), dir.path().join("ready"));
    let mut run = Command::new(bin("ringwire"));
    run.arg("run").arg(&cfg).arg("--control-socket").arg(&sock).arg("--ready-file").arg(&ready);
    let engine = Proc::spawn("ringwire run", &mut run);
    let consumer = |stats: &serde_json::Value| stats["counters"]["consumers"][0].clone();
    // Quarantined after its 100th frame (a third of a second in).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let before = loop {
        if ready.exists() {
            let c = consumer(&ringwire_tests::ringctl_json(&sock, &["stats"]));
            if !c["filter_quarantined"].is_null() {
                break c;
            }
        }
        assert!(std::time::Instant::now() < deadline, "not quarantined within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(before["filter_quarantines"], 1, "{before}");
    let _ = ringwire_tests::ringctl_json(&sock, &["filters", "detach", "--consumer", "f"]);
    let after = consumer(&ringwire_tests::ringctl_json(&sock, &["stats"]));
    assert!(after["filter_quarantined"].is_null() && after["filter"].is_null(), "{after}");
    assert_eq!(after["filter_quarantines"], 1, "{after}");
    assert!(after["filter_errors"].as_u64().unwrap() >= 1, "{after}");
    let table = ringwire_tests::ringctl(&sock, &["stats"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("consumer `f`: 1 filter(s) it had before were quarantined"), "{table}");
    let res = engine.wait(Duration::from_secs(30));
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(text.contains("consumer `f`: 1 filter(s) it had before were quarantined"), "{text}");
    let c = &read_json(&st)["consumers"][0];
    assert_eq!((c["filter_quarantines"].as_u64(), c["filter_quarantined"].as_str()), (Some(1), None), "{c}");
    assert_reconciles(&read_json(&st));
}

/// One line on stderr naming the problem, exit status 1, no panic.
fn refused(dir: &Path, filter: &str, needles: &[&str]) {
    let input = dir.join("one.pcap");
    write_pcap(&input, &mixed(3));
    let res = run(dir, &config(&input, &dir.join("o.pcap"), &dir.join("s.json"), filter, ""));
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{filter}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{filter}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{filter}: expected `{n}` in {err}");
    }
}

#[test]
fn bad_filters_and_plugins_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    refused(d, &format!("plugin:{}", plugin("rw-test-future-abi-plugin").display()), &["ABI version 999", "version 1"]);
    refused(
        d,
        &format!("plugin:{}:", plugin("rw-plugin-dns-qname").display()),
        &["rejected its config", "at least one domain"],
    );
    refused(d, &format!("plugin:{}:x=1", plugin("rw-plugin-top-talkers").display()), &["unknown key `x`"]);
    refused(d, "plugin:/nonexistent/libnope.so", &["/nonexistent/libnope.so", "no such file"]);
    refused(d, "builtin:vlan 9-3", &["built-in filter", "backwards"]);
    refused(d, "builtin:portt 53", &["unknown filter `portt`"]);
    refused(d, "bpf:udp and portt 53", &["syntax error"]);
    // A library that is not a ringwire plugin.
    let libc = Path::new("/lib/x86_64-linux-gnu/libz.so.1");
    if libc.exists() {
        refused(d, &format!("plugin:{}", libc.display()), &["not a ringwire filter plugin"]);
    }
}

/// A chain: each stage sees only what the stages before it passed, and the
/// counters say, per stage, what it evaluated, passed and dropped.
#[test]
fn a_filter_chain_applies_stages_in_order_and_counts_each() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("chain.pcap");
    let frames = mixed(600);
    write_pcap(&input, &frames);
    let (out, st) = (dir.path().join("out.pcap"), dir.path().join("st.json"));
    let dns = plugin("rw-plugin-top-talkers");
    let cfg = format!(
        "[engine]\nstats_json = \"{}\"\n[[ports]]\nuri = \"pcap:{}\"\n\
         [[consumers]]\nname = \"f\"\nkind = \"pcap\"\npath = \"{}\"\n\
         filter = [\"vlan and udp\", \"builtin:sample 2\", \"plugin:{}:n=64,k=64\"]\n",
        st.display(),
        input.display(),
        out.display(),
        dns.display()
    );
    let res = run(dir.path(), &cfg);
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    // `vlan and udp` keeps the 200 tagged UDP frames (i % 3 == 0); sample 2 keeps
    // every second of those; top-64 of few senders keeps them all.
    let want: Vec<&Vec<u8>> = frames.iter().step_by(3).skip(1).step_by(2).collect();
    let got: Vec<Vec<u8>> = read_pcap(&out).into_iter().map(|r| r.data).collect();
    assert_eq!(got.iter().collect::<Vec<_>>(), want);
    let s = read_json(&st);
    assert_reconciles(&s);
    let stages = s["consumers"][0]["filter_stages"].as_array().unwrap();
    let row = |i: usize| {
        (
            stages[i]["evaluated"].as_u64().unwrap(),
            stages[i]["passed"].as_u64().unwrap(),
            stages[i]["dropped"].as_u64().unwrap(),
        )
    };
    assert_eq!(row(0), (600, 200, 400));
    assert_eq!(row(1), (200, 100, 100));
    assert_eq!(row(2), (100, 100, 0));
    assert_eq!(stages[1]["filter"], "builtin:sample 2");
    assert!(String::from_utf8_lossy(&res.stdout)
        .contains("filter stage 2 `builtin:sample 2`: evaluated 200, passed 100, dropped 100"));
}

/// A plugin file replaced at its path (a rebuild) while a build of it is
/// loaded: the system's loader would hand back the old build, so the load
/// is refused with what to do (a drive swapped in a "new" build and ran the
/// old code without a word). Once the old build is unloaded, the new one loads.
#[test]
fn a_plugin_replaced_at_its_path_while_loaded_is_refused_until_the_old_build_goes() {
    use ringwire_filters::plugin::PluginLibrary;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.so");
    std::fs::copy(plugin("rw-plugin-top-talkers"), &p).unwrap();
    let first = PluginLibrary::load(&p).unwrap();
    assert_eq!(first.name(), "top-talkers");
    assert_eq!(PluginLibrary::load(&p).unwrap().name(), "top-talkers", "the same build loads again");
    // A rebuild: a new file renamed over the old one, as cargo and install(1) do.
    let new = dir.path().join("p.so.new");
    std::fs::copy(plugin("rw-plugin-dns-qname"), &new).unwrap();
    std::fs::rename(&new, &p).unwrap();
    let err = PluginLibrary::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("the file was replaced since it was loaded, and filters still use the build loaded then")
            && err.contains("load the new build from a new path"),
        "{err}"
    );
    drop(first);
    assert_eq!(PluginLibrary::load(&p).unwrap().name(), "dns-qname", "the old build unloaded: the new one");
}

/// The README's "Writing a filter plugin", followed as written by someone
/// outside the checkout: its Cargo.toml and src/lib.rs, against a copy of
/// the SDK made elsewhere, build with no warning (`-D warnings`), and the
/// plugin loads and keeps the frames its config says.
#[test]
fn the_readmes_plugin_builds_out_of_the_checkout_and_filters() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("## Writing a filter plugin").nth(1).expect("the README's plugin section");
    let block = |lang: &str, first: &str| -> String {
        let start = format!("```{lang}\n{first}");
        let at = section.find(&start).unwrap_or_else(|| panic!("no ```{lang} block starting `{first}`"));
        let body = &section[at + lang.len() + 4..];
        body[..body.find("```").unwrap()].to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let sdk = dir.path().join("vendored-sdk");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../filters/sdk"))
        .arg(&sdk)
        .status()
        .unwrap();
    assert!(copied.success());
    let krate = dir.path().join("plugin");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let manifest = block("toml", "# Cargo.toml").replace("/path/to/ringwire/filters/sdk", sdk.to_str().unwrap());
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(krate.join("src/lib.rs"), block("rust", "// src/lib.rs")).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("RUSTFLAGS", "-D warnings")
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let so = std::fs::read_dir(krate.join("target/release"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .expect("a .so built");

    let input = dir.path().join("in.pcap");
    let frames = mixed(300);
    let big = frames.iter().filter(|f| f.len() >= 80).count();
    assert!(big > 0 && big < frames.len());
    write_pcap(&input, &frames);
    let (out, st, cfg) = (dir.path().join("out.pcap"), dir.path().join("st.json"), dir.path().join("p.toml"));
    std::fs::write(&cfg, config(&input, &out, &st, &format!("plugin:{}:80", so.display()), "")).unwrap();
    let res = Command::new(bin("ringwire"))
        .args(["run", cfg.to_str().unwrap(), "--control-socket", "none"])
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert_eq!(read_pcap(&out).len(), big);
    assert_reconciles(&read_json(&st));
}
