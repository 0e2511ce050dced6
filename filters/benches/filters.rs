//! Filter evaluation costs: our classic-BPF interpreter against libpcap's
//! own `bpf_filter` on the same program, built-in filters, and a Rust plugin
//! called once per frame against once per batch of 256.
//!
//! `cargo bench -p ringwire-filters` (build the plugin first for its rows:
//! `cargo build --release -p rw-plugin-dns-qname`).

use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use pcap::{Capture, Linktype};
use ringwire_filters::{BuiltinFilter, Filter, FilterFactory, Packet, PcapFilter, QuarantinePolicy, Verdict};

/// Ethernet + 802.1Q + IPv4 + UDP -> 53 + DNS query for www.example.com, padded to `len`.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0, 0, 15, 8, 0];
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 53]);
    f.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 0, 0, 0]);
    f.extend_from_slice(&[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 7]);
    f.extend_from_slice(b"example");
    f.extend_from_slice(&[3, b'c', b'o', b'm', 0, 0, 1, 0, 1]);
    f.resize(len.max(f.len()), 0);
    f
}

fn cbpf(c: &mut Criterion) {
    let mut g = c.benchmark_group("pcap-filter `vlan and udp dst port 53`");
    g.throughput(Throughput::Elements(1));
    let expr = "vlan and udp dst port 53";
    for len in [64, 1514] {
        let f = frame(len);
        let mut ours = PcapFilter::new(expr).unwrap();
        assert_eq!(ours.verdict(&Packet::whole(&f)), Verdict::Pass);
        g.bench_function(format!("PcapFilter (libpcap bpf_filter + wire length), {len} B"), |b| {
            b.iter(|| black_box(ours.verdict(&Packet::whole(black_box(&f)))));
        });
        let interp = ours.program().clone();
        g.bench_function(format!("ringwire interpreter (tagged live frames only), {len} B"), |b| {
            b.iter(|| black_box(interp.run_interpreted(black_box(&f), len as u32)));
        });
        let reference = Capture::dead(Linktype::ETHERNET).unwrap().compile(expr, true).unwrap();
        assert!(reference.filter(&f));
        g.bench_function(format!("libpcap bpf_filter, {len} B"), |b| {
            b.iter(|| black_box(reference.filter(black_box(&f))))
        });
    }
    g.finish();
}

fn builtin(c: &mut Criterion) {
    let mut g = c.benchmark_group("built-in filters");
    g.throughput(Throughput::Elements(1));
    let f = frame(128);
    for expr in ["vlan 10-20 and udp and dst port 53", "src mac 02:00:00:00:00:01 and net 10.0.0.0/8", "sample 10"] {
        let mut flt = BuiltinFilter::new(expr).unwrap();
        g.bench_function(expr, |b| b.iter(|| black_box(flt.verdict(&Packet::whole(black_box(&f))))));
    }
    g.finish();
}

fn plugin(c: &mut Criterion) {
    let so = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/librw_plugin_dns_qname.so");
    if !so.exists() {
        eprintln!("skipping plugin benchmarks: build it first (cargo build --release -p rw-plugin-dns-qname)");
        return;
    }
    let factory =
        FilterFactory::new(&format!("plugin:{}:example.com", so.display()), QuarantinePolicy::DropAll).unwrap();
    let f = frame(128);
    let pkts = vec![Packet::whole(&f); 256];
    let mut verdicts = vec![Verdict::Drop; 256];
    let mut g = c.benchmark_group("plugin dns-qname, 256 frames");
    g.throughput(Throughput::Elements(256));
    let mut one = factory.instance().unwrap();
    g.bench_function("one call per frame", |b| {
        b.iter(|| {
            for p in &pkts {
                black_box(one.verdict(black_box(p)));
            }
        });
    });
    let mut batch = factory.instance().unwrap();
    g.bench_function("one call per batch", |b| b.iter(|| batch.verdict_batch(black_box(&pkts), &mut verdicts)));
    assert!(verdicts.iter().all(|v| *v == Verdict::Pass));
    g.finish();
}

/// criterion's group (in a private module: its generated function needs no docs).
mod harness {
    use super::{builtin, cbpf, plugin};
    criterion::criterion_group!(benches, cbpf, builtin, plugin);
}
criterion_main!(harness::benches);
