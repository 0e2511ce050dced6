//! The worker's per-frame cost without rings: dispatching a batch of 256
//! 64-byte frames (from memory) to one counting consumer, with no filter, a
//! pcap-filter program, each built-in filter, and a plugin that passes
//! everything through the batch ABI.
//!
//! `cargo build --release -p rw-test-panicky-plugin && cargo bench -p ringwire-engine`

use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use ringwire_engine::BenchDispatch;
use ringwire_filters::{Filter, FilterFactory, Packet, QuarantinePolicy};

/// Ethernet + IPv4 10.0.0.1 -> 10.0.0.53 + UDP 5353 -> 53, 64 bytes.
fn frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    f.extend_from_slice(&[0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 53]);
    f.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 30, 0, 0]);
    f.resize(64, 0);
    f
}

fn filter(text: &str) -> impl FnMut() -> Option<Box<dyn Filter>> + '_ {
    let factory = FilterFactory::new(text, QuarantinePolicy::DropAll).unwrap_or_else(|e| panic!("{text}: {e}"));
    move || Some(factory.instance().unwrap())
}

fn dispatch(c: &mut Criterion) {
    let f = frame();
    let pkts = vec![Packet::whole(&f); 256];
    let mut g = c.benchmark_group("dispatch 256 x 64 B to a counter");
    g.throughput(Throughput::Elements(256));
    let mut cases: Vec<(String, BenchDispatch)> = vec![("no filter".into(), BenchDispatch::counters(1, || None))];
    for text in [
        "udp dst port 53",
        "builtin:mac 02:00:00:00:00:02",
        "builtin:vlan 10-20",
        "builtin:untagged",
        "builtin:ethertype 0x0800",
        "builtin:proto udp",
        "builtin:net 10.0.0.0/8",
        "builtin:dst port 50-60",
        "builtin:sample 10",
        "builtin:rate 1000000",
    ] {
        cases.push((text.into(), BenchDispatch::counters(1, filter(text))));
    }
    let so = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/librw_test_panicky_plugin.so");
    if so.exists() {
        // A plugin whose own work is a decrement: what is left is the ABI's cost.
        let text = format!("plugin:{}:after=18446744073709551615", so.display());
        cases.push(("plugin passing everything (batch ABI)".into(), BenchDispatch::counters(1, filter(&text))));
    } else {
        eprintln!("skipping the plugin case: cargo build --release -p rw-test-panicky-plugin");
    }
    for (name, d) in &mut cases {
        g.bench_function(name.as_str(), |b| b.iter(|| d.batch(black_box(&pkts))));
        assert!(d.passed(0) > 0 || name.contains("vlan"), "{name} passed frames");
    }
    g.finish();
}

/// criterion's group (in a private module: its generated function needs no docs).
mod harness {
    use super::dispatch;
    criterion::criterion_group!(benches, dispatch);
}
criterion_main!(harness::benches);
