//! The hot path's other stages, each on its own: walking a ring's frames
//! (a TPACKET_V3 block ring and a low-latency V2 frame ring, laid out in
//! memory as the kernel lays them out), the queue hop of a queued consumer
//! (copy into a pooled chunk, publish, take, give back), pcap writing, and
//! the latency probe's per-frame work over a full flow table.
//!
//! `cargo bench -p ringwire-engine --bench hotpath`

use std::{hint::black_box, ptr::NonNull, sync::Arc, time::Duration};

use criterion::{criterion_main, Criterion, Throughput};
use ringwire_engine::{
    consumer::{Channel, Producer, SinkWaker},
    pcapio::PcapWriter,
    probe::{Probe, ProbeShared, Stamp, MAX_STREAMS},
    ring::{BlockRing, FrameRing},
};

const BLOCK: usize = 1 << 20;
const BLOCKS: usize = 4;
/// Size of `struct tpacket3_hdr` plus the sockaddr_ll and PACKET_RESERVE, as
/// the kernel places a frame's MAC header (rounded to 16).
const V3_MAC: usize = 96;

/// A `len`-byte IPv4 UDP frame.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]);
    f[14] = 0x45;
    f[23] = 17;
    f
}

/// Blocks filled with `len`-byte frames in TPACKET_V3 layout; returns the
/// memory and the number of frames per block.
fn v3_ring(len: usize) -> (Vec<u64>, usize) {
    let mut mem = vec![0u64; BLOCK * BLOCKS / 8];
    // SAFETY: viewing a u64 buffer as bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), BLOCK * BLOCKS) };
    let f = frame(len);
    let step = (V3_MAC + len + 15) & !15;
    let per_block = (BLOCK - 48) / step;
    for b in 0..BLOCKS {
        let blk = &mut bytes[b * BLOCK..(b + 1) * BLOCK];
        for i in 0..per_block {
            let off = 48 + i * step;
            let next = if i + 1 == per_block { 0 } else { step as u32 };
            blk[off..off + 4].copy_from_slice(&next.to_ne_bytes()); // tp_next_offset
            blk[off + 12..off + 16].copy_from_slice(&(len as u32).to_ne_bytes()); // tp_snaplen
            blk[off + 16..off + 20].copy_from_slice(&(len as u32).to_ne_bytes()); // tp_len
            blk[off + 24..off + 26].copy_from_slice(&(V3_MAC as u16).to_ne_bytes()); // tp_mac
            blk[off + V3_MAC..off + V3_MAC + len].copy_from_slice(&f);
        }
        blk[12..16].copy_from_slice(&(per_block as u32).to_ne_bytes()); // num_pkts
        blk[16..20].copy_from_slice(&48u32.to_ne_bytes()); // offset_to_first_pkt
    }
    (mem, per_block)
}

/// Hand every block (V3) or slot (V2) to "userspace" again: status = TP_STATUS_USER.
fn retire(mem: &mut [u64], status_at: impl Iterator<Item = usize>) {
    // SAFETY: viewing a u64 buffer as bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), mem.len() * 8) };
    for at in status_at {
        bytes[at..at + 4].copy_from_slice(&1u32.to_ne_bytes());
    }
    // Block sequence numbers must follow each other (checked in debug builds only).
}

fn ring_walk(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring walk");
    for len in [64usize, 1514] {
        let (mut mem, per_block) = v3_ring(len);
        g.throughput(Throughput::Elements((per_block * BLOCKS) as u64));
        g.bench_function(format!("V3 blocks, {len} B frames"), |b| {
            b.iter(|| {
                retire(&mut mem, (0..BLOCKS).map(|k| k * BLOCK + 8));
                let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).expect("non-null");
                // SAFETY: `mem` holds BLOCKS blocks of BLOCK bytes laid out as the
                // kernel does, 8-byte aligned, and outlives the ring.
                let mut ring = unsafe { BlockRing::new(base, BLOCK, BLOCKS) };
                let mut bytes = 0usize;
                while let Some(mut blk) = ring.next_block() {
                    for f in blk.frames() {
                        bytes += f.data.len();
                    }
                }
                black_box(bytes)
            });
        });
        // V2: one frame per 2048-byte slot.
        let slot = 2048;
        let slots = BLOCK * BLOCKS / slot;
        let mut mem2 = vec![0u64; BLOCK * BLOCKS / 8];
        {
            // SAFETY: viewing a u64 buffer as bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(mem2.as_mut_ptr().cast::<u8>(), BLOCK * BLOCKS) };
            let f = frame(len);
            for s in 0..slots {
                let at = s * slot;
                bytes[at + 4..at + 8].copy_from_slice(&(len as u32).to_ne_bytes()); // tp_len
                bytes[at + 8..at + 12].copy_from_slice(&(len as u32).to_ne_bytes()); // tp_snaplen
                bytes[at + 12..at + 14].copy_from_slice(&68u16.to_ne_bytes()); // tp_mac
                bytes[at + 68..at + 68 + len].copy_from_slice(&f);
            }
        }
        g.throughput(Throughput::Elements(slots as u64));
        g.bench_function(format!("V2 frames (low latency), {len} B frames"), |b| {
            b.iter(|| {
                retire(&mut mem2, (0..slots).map(|s| s * slot));
                let base = NonNull::new(mem2.as_mut_ptr().cast::<u8>()).expect("non-null");
                // SAFETY: `mem2` holds BLOCKS blocks of 2048-byte slots laid out as the
                // kernel does, 8-byte aligned, and outlives the ring.
                let mut ring = unsafe { FrameRing::new(base, BLOCK, BLOCKS, slot) };
                let mut bytes = 0usize;
                for _ in 0..slots.div_ceil(256) {
                    let Some(mut run) = ring.next_run() else { break };
                    for f in run.frames() {
                        bytes += f.data.len();
                    }
                }
                black_box(bytes)
            });
        });
    }
    g.finish();
}

fn queue_hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue hop (256 frames: copy, publish, take, give back)");
    for len in [64usize, 1514] {
        let f = frame(len);
        let channel = Arc::new(Channel::new(8, 1 << 20, Arc::new(SinkWaker::default())));
        let mut producer = Producer::new(channel.clone(), 262_144);
        g.throughput(Throughput::Elements(256));
        g.bench_function(format!("{len} B frames"), |b| {
            b.iter(|| {
                // A worker's batch: the frames of a block, offered at once.
                let frames = (0..256u64).map(|i| (black_box(&f[..]), len as u32, i));
                assert_eq!(producer.offer_batch(frames, 0), 256);
                producer.publish();
                let chunk = channel.take().expect("a published chunk");
                black_box(chunk.records());
                channel.give_back(chunk);
            });
        });
    }
    g.finish();
}

fn pcap_writing(c: &mut Criterion) {
    let mut g = c.benchmark_group("pcap writing (256 records)");
    let dir = std::env::temp_dir();
    for len in [64usize, 1514] {
        let f = frame(len);
        g.throughput(Throughput::Elements(256));
        g.bench_function(format!("{len} B to /dev/null"), |b| {
            let mut w = PcapWriter::create(std::path::Path::new("/dev/null"), 262_144).expect("/dev/null");
            b.iter(|| {
                for i in 0..256u64 {
                    w.write(i, len as u32, black_box(&f)).expect("write");
                }
            });
        });
        // Into the page cache: the file is started afresh every 64 MiB (outside the timing).
        let path = dir.join(format!("ringwire-bench-{}-{len}.pcap", std::process::id()));
        g.bench_function(format!("{len} B to a file"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut w = PcapWriter::create(&path, 262_144).expect("temp file");
                for _ in 0..iters {
                    if w.bytes() > 64 << 20 {
                        w = PcapWriter::create(&path, 262_144).expect("temp file");
                    }
                    let t = std::time::Instant::now();
                    for i in 0..256u64 {
                        w.write(i, len as u32, black_box(&f)).expect("write");
                    }
                    total += t.elapsed();
                }
                total
            });
        });
        let _ = std::fs::remove_file(&path);
    }
    g.finish();
}

/// The probe on 66-byte IPv4 UDP frames (the shortest with a full stamp) of every stream its table tracks,
/// one frame of each stream in turn, in order (no loss): the stamp read, both
/// histograms and the stream's sequence state, which is where a big table
/// leaves the cache. The same flow ids on two ports are two streams: the
/// second port's take the table's hashed part.
fn latency_probe(c: &mut Criterion) {
    let mut g = c.benchmark_group("latency probe (66 B frames, full stamps)");
    let streams = MAX_STREAMS as u32;
    let mut frames: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            let mut f = frame(66);
            f[16..18].copy_from_slice(&52u16.to_be_bytes());
            f[38..40].copy_from_slice(&32u16.to_be_bytes());
            // A stream id with the direction in bit 31, as ringwire-gen sends.
            let flow = (i >> 1) | ((i & 1) << 31);
            f[42..66].copy_from_slice(&Stamp { flow, seq: 0, ts_ns: 1_000 }.to_bytes());
            f
        })
        .collect();
    g.throughput(Throughput::Elements(1024));
    for (name, spread, ports) in [
        ("1 024 streams", 1u32, 1u32),
        ("65 536 streams", streams / 1024, 1),
        ("1 024 streams, the same flows on 2 ports", 1, 2),
    ] {
        let shared = ProbeShared::new(1);
        let mut probe = Probe::new(shared.clone(), 0);
        let mut round = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                // Each frame of this round stands for a stream `spread` apart
                // from its neighbour's: the table is walked with that stride.
                round += 1;
                let (turn, seq) = ((round % u64::from(spread)) as u32, round / u64::from(spread));
                for (i, f) in frames.iter_mut().enumerate() {
                    let (port, i) = (i as u32 / (1024 / ports), i as u32 % (1024 / ports));
                    let flow = (((i >> 1) * spread + turn) % (streams / 2)) | ((i & 1) << 31);
                    f[42..66].copy_from_slice(&Stamp { flow, seq, ts_ns: 1_000 + seq }.to_bytes());
                    probe.record(black_box(f), port as u16, Some((2_000 + seq, 3_000 + seq)));
                }
            });
        });
        // Every frame was a stamped one of a tracked stream, in order.
        probe.publish(true);
        let n = shared.snapshot(|i| format!("p{i}")).counters;
        assert!(n.stamped > 0 && n.irregular == 0 && n.untracked == 0 && n.unstamped == 0, "{n:?}");
    }
    g.finish();
}

/// Every benchmark of this file.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    ring_walk(&mut c);
    queue_hop(&mut c);
    pcap_writing(&mut c);
    latency_probe(&mut c);
}

criterion_main!(benches);
