//! The hot path's other stages, each on its own: walking a ring's frames
//! (a TPACKET_V3 block ring and a low-latency V2 frame ring, laid out in
//! memory as the kernel lays them out), the queue hop of a queued consumer
//! (copy into a pooled chunk, publish, take, give back), and pcap writing.
//!
//! `cargo bench -p ringwire-engine --bench hotpath`

use std::{hint::black_box, ptr::NonNull, sync::Arc, time::Duration};

use criterion::{criterion_main, Criterion, Throughput};
use ringwire_engine::{
    consumer::{Channel, Producer, SinkWaker},
    pcapio::PcapWriter,
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
                for i in 0..256u64 {
                    assert!(producer.offer(black_box(&f), len as u32, i, 0));
                }
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

/// Every benchmark of this file.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    ring_walk(&mut c);
    queue_hop(&mut c);
    pcap_writing(&mut c);
}

criterion_main!(benches);
