//! Example ringwire filter plugin: a top-talkers sampler. It keeps the frames
//! whose source IP address is among the `n` heaviest senders by bytes, as
//! estimated by the Space-Saving algorithm over a fixed table of `k`
//! counters (no allocation per frame); counts halve every `half_life_ms` of
//! frame time, so the top follows the traffic. Frames without an IP source
//! are dropped.
//!
//! Config: `n=10,k=64,half_life_ms=1000` (every key optional).

use std::net::IpAddr;

use ringwire_filter_sdk::{export_filter, FilterPlugin, Headers, Packet, Verdict};

/// The plugin state.
pub struct TopTalkers {
    n: usize,
    table: Vec<(IpAddr, u64)>,
    half_life_ns: u64,
    last_decay: Option<u64>,
}

impl TopTalkers {
    fn observe(&mut self, src: IpAddr, bytes: u64, now: u64) {
        if self.half_life_ns > 0 {
            let last = *self.last_decay.get_or_insert(now);
            if now.saturating_sub(last) >= self.half_life_ns {
                self.table.iter_mut().for_each(|(_, c)| *c /= 2);
                self.last_decay = Some(now);
            }
        }
        if let Some(e) = self.table.iter_mut().find(|(a, _)| *a == src) {
            e.1 += bytes;
        } else if self.table.len() < self.table.capacity() {
            self.table.push((src, bytes));
        } else if let Some(min) = self.table.iter_mut().min_by_key(|(_, c)| *c) {
            // Space-Saving: the newcomer inherits the smallest count.
            *min = (src, min.1 + bytes);
        }
    }

    fn is_top(&self, src: IpAddr) -> bool {
        let Some(&(_, mine)) = self.table.iter().find(|(a, _)| *a == src) else { return false };
        // Among the top n: fewer than n addresses count strictly more.
        self.table.iter().filter(|(_, c)| *c > mine).count() < self.n
    }
}

impl FilterPlugin for TopTalkers {
    const NAME: &'static str = "top-talkers";

    fn new(config: &str) -> Result<Self, String> {
        let (mut n, mut k, mut half) = (10usize, 64usize, 1000u64);
        for kv in config.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, val) = kv.split_once('=').ok_or_else(|| format!("`{kv}`: expected key=value"))?;
            let num: u64 = val.trim().parse().map_err(|_| format!("`{kv}`: not a number"))?;
            match key.trim() {
                "n" => n = usize::try_from(num).map_err(|_| "n is too large".to_owned())?,
                "k" => k = usize::try_from(num).map_err(|_| "k is too large".to_owned())?,
                "half_life_ms" => half = num,
                other => return Err(format!("unknown key `{other}` (n, k, half_life_ms)")),
            }
        }
        if n == 0 || k < n || k > 65_536 {
            return Err(format!("need 1 <= n <= k <= 65536 (n={n}, k={k})"));
        }
        Ok(Self { n, table: Vec::with_capacity(k), half_life_ns: half.saturating_mul(1_000_000), last_decay: None })
    }

    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        let Some((src, _)) = Headers::parse(pkt.data).addrs else { return Verdict::Drop };
        self.observe(src, u64::from(pkt.wire_len), pkt.ts_ns);
        if self.is_top(src) {
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }
}

export_filter!(TopTalkers);

#[cfg(test)]
mod tests {
    use super::*;

    fn from(last_octet: u8, len: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, last_octet, 10, 0, 0, 254]);
        f.resize(len.max(f.len()), 0);
        f
    }

    #[test]
    fn keeps_the_heavy_senders() {
        let mut p = TopTalkers::new("n=2,k=8,half_life_ms=0").unwrap();
        let mut kept = [0u32; 10];
        for round in 0..200u64 {
            // 1 and 2 send big frames, 3..9 small ones.
            for (i, len) in [(1u8, 1500usize), (2, 1200), (3, 60), (4, 60), (5, 60), (6, 60), (7, 60), (8, 60), (9, 60)]
            {
                let f = from(i, len);
                if p.verdict(&Packet { data: &f, wire_len: len as u32, ts_ns: round }) == Verdict::Pass {
                    kept[usize::from(i)] += 1;
                }
            }
        }
        assert!(kept[1] > 190 && kept[2] > 190, "{kept:?}");
        assert!(kept[3..].iter().all(|k| *k < 20), "{kept:?}");
    }

    #[test]
    fn config_is_checked() {
        assert!(TopTalkers::new("").is_ok());
        assert!(TopTalkers::new("n=0").is_err());
        assert!(TopTalkers::new("n=10,k=5").is_err());
        assert!(TopTalkers::new("x=1").is_err());
        assert!(TopTalkers::new("n").is_err());
    }
}
