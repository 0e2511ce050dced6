//! A chain of filters applied in sequence: a frame passes when every stage
//! passes it. Each stage sees only the frames the stages before it passed
//! (one call per stage per batch) and counts what it evaluated and passed.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use crate::{Filter, Packet, Verdict};

/// Counters of one stage of one chain instance (one worker), written once per
/// batch by that worker. Aligned to two cache lines (as crossbeam's
/// `CachePadded` on x86-64, whose prefetcher pulls lines in pairs), so two
/// workers' counters never share a line however the allocator places them.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct StageCounts {
    /// Frames the stage decided.
    pub evaluated: AtomicU64,
    /// Frames it passed.
    pub passed: AtomicU64,
}

/// Filters applied in sequence.
pub struct ChainFilter {
    stages: Vec<Box<dyn Filter>>,
    counts: Arc<[StageCounts]>,
    label: String,
}

impl ChainFilter {
    /// A chain of `stages`, counting into `counts` (one entry per stage).
    ///
    /// # Panics
    /// If `counts` does not have one entry per stage.
    #[must_use]
    pub fn new(stages: Vec<Box<dyn Filter>>, counts: Arc<[StageCounts]>) -> Self {
        assert_eq!(stages.len(), counts.len(), "one counter per stage");
        let label = stages.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>().join(" | ");
        Self { stages, counts, label }
    }
}

/// Frames handled per pass through the stages (the engine's batch size).
const CHUNK: usize = 256;

impl Filter for ChainFilter {
    fn name(&self) -> &str {
        &self.label
    }

    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        crate::verdict_via_batch(self, pkt)
    }

    fn verdict_batch(&mut self, pkts: &[Packet<'_>], verdicts: &mut [Verdict]) {
        for (ps, vs) in pkts.chunks(CHUNK).zip(verdicts.chunks_mut(CHUNK)) {
            // Indexes (into `ps`) of the frames still passing, compacted as stages drop them.
            let mut alive = [0u16; CHUNK];
            let mut n = ps.len();
            for (i, a) in alive.iter_mut().enumerate().take(n) {
                *a = i as u16;
            }
            let mut view = [Packet::EMPTY; CHUNK];
            let mut out = [Verdict::Drop; CHUNK];
            for (stage, counts) in self.stages.iter_mut().zip(self.counts.iter()) {
                if n == 0 {
                    break;
                }
                // Until a stage drops a frame, `alive` is the identity: the stage reads `ps` itself.
                let input = if n == ps.len() {
                    ps
                } else {
                    for (v, &i) in view.iter_mut().zip(&alive[..n]) {
                        *v = ps[usize::from(i)];
                    }
                    &view[..n]
                };
                stage.verdict_batch(input, &mut out[..n]);
                let mut kept = 0;
                for j in 0..n {
                    if out[j] == Verdict::Pass {
                        alive[kept] = alive[j];
                        kept += 1;
                    }
                }
                counts.evaluated.fetch_add(n as u64, Ordering::Relaxed);
                // Release after `evaluated`: a reader that loads `passed` first
                // (Acquire) never sees more passed than evaluated.
                counts.passed.fetch_add(kept as u64, Ordering::Release);
                n = kept;
            }
            vs.fill(Verdict::Drop);
            for &i in &alive[..n] {
                vs[usize::from(i)] = Verdict::Pass;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BuiltinFilter;

    #[test]
    fn stages_see_only_what_passed_before_and_count_it() {
        let frames: Vec<Vec<u8>> = (0..10u8)
            .map(|i| {
                let mut f = vec![0u8; 60];
                f[12..14].copy_from_slice(&if i % 2 == 0 { [0x08, 0x00] } else { [0x86, 0xdd] });
                f
            })
            .collect();
        let pkts: Vec<Packet<'_>> = frames.iter().map(|f| Packet::whole(f)).collect();
        let counts: Arc<[StageCounts]> = (0..2).map(|_| StageCounts::default()).collect();
        let mut chain = ChainFilter::new(
            vec![
                Box::new(BuiltinFilter::new("ethertype 0x0800").unwrap()),
                Box::new(BuiltinFilter::new("sample 2").unwrap()),
            ],
            counts.clone(),
        );
        let mut v = vec![Verdict::Drop; 10];
        chain.verdict_batch(&pkts, &mut v);
        let passed: Vec<usize> = (0..10).filter(|&i| v[i] == Verdict::Pass).collect();
        assert_eq!(passed, vec![2, 6], "every second IPv4 frame");
        assert_eq!(counts[0].evaluated.load(Ordering::Relaxed), 10);
        assert_eq!(counts[0].passed.load(Ordering::Relaxed), 5);
        assert_eq!(counts[1].evaluated.load(Ordering::Relaxed), 5, "the second stage saw only what passed");
        assert_eq!(counts[1].passed.load(Ordering::Relaxed), 2);
        assert_eq!(chain.name(), "ethertype 0x0800 | sample 2");
    }

    #[test]
    fn two_stages_counters_never_share_a_cache_line() {
        let counts: Arc<[StageCounts]> = (0..2).map(|_| StageCounts::default()).collect();
        let a = std::ptr::from_ref(&counts[0]) as usize;
        let b = std::ptr::from_ref(&counts[1]) as usize;
        assert_eq!(a % 128, 0);
        assert!(b - a >= 128, "{a:#x} {b:#x}");
    }
}
