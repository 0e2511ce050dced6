//! Filter specifications as users write them, and factories that build one
//! filter instance per worker.
//!
//! | text | filter |
//! |---|---|
//! | `udp port 53`, `bpf:udp port 53` | pcap-filter, compiled by libpcap |
//! | `builtin:vlan 10-20 and not mac 02:00:00:00:00:01` | [`crate::BuiltinFilter`] |
//! | `plugin:/path/libx.so` or `plugin:/path/libx.so:CONFIG` | a Rust plugin, given CONFIG |

use std::{
    path::PathBuf,
    sync::{atomic::Ordering, Arc, Mutex},
};

use crate::{
    chain::{ChainFilter, StageCounts},
    plugin::{PluginLibrary, QuarantinePolicy},
    BuiltinFilter, Filter, FilterError, PcapFilter,
};

/// A parsed filter specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterSpec {
    /// A pcap-filter expression.
    Pcap(String),
    /// A built-in filter expression.
    Builtin(String),
    /// A Rust plugin and its config string.
    Plugin {
        /// The shared library.
        path: PathBuf,
        /// Given to the plugin's `new`.
        config: String,
    },
}

impl FilterSpec {
    /// Parse the text of a `filter = "..."` field.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        if let Some(e) = text.strip_prefix("bpf:") {
            Self::Pcap(e.trim().to_owned())
        } else if let Some(e) = text.strip_prefix("builtin:") {
            Self::Builtin(e.trim().to_owned())
        } else if let Some(rest) = text.strip_prefix("plugin:") {
            // The config starts after the first ':' that follows ".so" (paths may hold ':').
            let split =
                rest.find(".so:").map(|i| i + 3).or_else(|| if rest.ends_with(".so") { None } else { rest.find(':') });
            match split {
                Some(i) => Self::Plugin { path: PathBuf::from(&rest[..i]), config: rest[i + 1..].to_owned() },
                None => Self::Plugin { path: PathBuf::from(rest), config: String::new() },
            }
        } else {
            Self::Pcap(text.trim().to_owned())
        }
    }
}

enum Compiled {
    Pcap(PcapFilter),
    Builtin(BuiltinFilter),
    Plugin(Arc<PluginLibrary>, String, QuarantinePolicy),
}

/// Builds filter instances for one specification, or a chain of them:
/// compiled, parsed or loaded once, checked once (a plugin's config by a
/// first instance).
pub struct FilterFactory {
    text: String,
    serial: u64,
    stages: Vec<(String, Compiled)>,
    /// Per-stage counters of every chain instance made (summed when read).
    counts: Mutex<Vec<Arc<[StageCounts]>>>,
}

/// One stage of a chain, as counters show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageStats {
    /// The stage's filter, as written.
    pub filter: String,
    /// Frames it decided (those earlier stages passed).
    pub evaluated: u64,
    /// Frames it passed.
    pub passed: u64,
}

impl std::fmt::Debug for FilterFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterFactory").field("text", &self.text).finish_non_exhaustive()
    }
}

/// A plugin's state as counters show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterHealth {
    /// Failed calls.
    pub errors: u64,
    /// Why it was quarantined.
    pub quarantined: Option<String>,
}

impl FilterFactory {
    /// Compile / parse / load `text`.
    ///
    /// # Errors
    /// libpcap's message, the built-in parser's, or the plugin loader's.
    pub fn new(text: &str, policy: QuarantinePolicy) -> Result<Self, FilterError> {
        Self::chain(&[text], policy, None)
    }

    /// A chain: a frame passes when every stage passes it, each stage seeing
    /// only what the stages before it passed.
    ///
    /// # Errors
    /// As [`FilterFactory::new`], for the first stage that fails; an empty chain.
    pub fn chain(texts: &[&str], policy: QuarantinePolicy, live_iface: Option<&str>) -> Result<Self, FilterError> {
        if texts.is_empty() {
            return Err(FilterError::EmptyChain);
        }
        let stages = texts
            .iter()
            .map(|t| Ok(((*t).to_owned(), Self::compile(t, policy, live_iface)?)))
            .collect::<Result<Vec<_>, FilterError>>()?;
        /// Factories built so far in this process.
        static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = BUILT.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Self { text: texts.join(" | "), serial, stages, counts: Mutex::default() })
    }

    fn compile(text: &str, policy: QuarantinePolicy, live_iface: Option<&str>) -> Result<Compiled, FilterError> {
        Ok(match FilterSpec::parse(text) {
            FilterSpec::Pcap(e) => Compiled::Pcap(match live_iface {
                Some(iface) => PcapFilter::with_live(&e, iface)?,
                None => PcapFilter::new(&e)?,
            }),
            FilterSpec::Builtin(e) => Compiled::Builtin(BuiltinFilter::new(&e)?),
            FilterSpec::Plugin { path, config } => {
                let lib = PluginLibrary::load(&path)?;
                // Check the config now, not on a worker.
                drop(lib.instance(&config, policy)?);
                Compiled::Plugin(lib, config, policy)
            }
        })
    }

    fn build(c: &Compiled) -> Result<Box<dyn Filter>, FilterError> {
        Ok(match c {
            Compiled::Pcap(f) => Box::new(f.clone()),
            Compiled::Builtin(f) => Box::new(f.clone()),
            Compiled::Plugin(lib, config, policy) => Box::new(lib.instance(config, *policy)?),
        })
    }

    /// A new instance for one worker.
    ///
    /// # Errors
    /// A plugin that rejects its config (it accepted it when checked, so
    /// only a plugin whose behaviour changed does).
    pub fn instance(&self) -> Result<Box<dyn Filter>, FilterError> {
        if let [(_, only)] = &self.stages[..] {
            return Self::build(only);
        }
        let stages = self.stages.iter().map(|(_, c)| Self::build(c)).collect::<Result<Vec<_>, _>>()?;
        let counts: Arc<[StageCounts]> = self.stages.iter().map(|_| StageCounts::default()).collect();
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(counts.clone());
        Ok(Box::new(ChainFilter::new(stages, counts)))
    }

    /// Per-stage counters of a chain, summed over its instances (empty for a single filter).
    #[must_use]
    pub fn stage_stats(&self) -> Vec<StageStats> {
        if self.stages.len() < 2 {
            return Vec::new();
        }
        let all = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.stages
            .iter()
            .enumerate()
            .map(|(i, (text, _))| {
                // `passed` before `evaluated` (the worker adds them in the
                // other order), so a batch counted between the reads never
                // makes passed exceed evaluated.
                let (passed, evaluated) = all.iter().fold((0, 0), |(p, e), c| {
                    let cp = c[i].passed.load(Ordering::Acquire);
                    (p + cp, e + c[i].evaluated.load(Ordering::Relaxed))
                });
                StageStats { filter: text.clone(), evaluated, passed }
            })
            .collect()
    }

    /// Which factory this is: unique in the process, never 0.
    #[must_use]
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The text it was built from.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The health of the plugins in it (errors summed, the first quarantine
    /// reason); `None` when it holds no plugin.
    #[must_use]
    pub fn health(&self) -> Option<FilterHealth> {
        self.health_handle().read()
    }

    /// Its plugins' health counters, to be read after the filter (and its
    /// plugins' code) is gone.
    #[must_use]
    pub fn health_handle(&self) -> HealthHandle {
        HealthHandle(
            self.stages
                .iter()
                .filter_map(|(_, c)| match c {
                    Compiled::Plugin(lib, ..) => Some(Arc::clone(lib.health())),
                    _ => None,
                })
                .collect(),
        )
    }
}

/// The health counters of a filter's plugins, apart from the filter: they
/// outlive a filter replaced or detached, so what its plugins did stays
/// countable.
#[derive(Debug, Clone, Default)]
pub struct HealthHandle(Vec<Arc<crate::plugin::PluginHealth>>);

impl HealthHandle {
    /// Its plugins' errors summed and the first quarantine reason; `None`
    /// when the filter held no plugin.
    #[must_use]
    pub fn read(&self) -> Option<FilterHealth> {
        let mut out: Option<FilterHealth> = None;
        for health in &self.0 {
            let h = out.get_or_insert(FilterHealth { errors: 0, quarantined: None });
            h.errors += health.errors.load(Ordering::Relaxed);
            if h.quarantined.is_none() {
                h.quarantined = health.quarantined.lock().map(|q| q.clone()).unwrap_or(None);
            }
        }
        out
    }
}

/// Errors and quarantines of plugin filters, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterHealthSum {
    /// Failed calls.
    pub errors: u64,
    /// Filters quarantined.
    pub quarantines: u64,
}

impl FilterHealthSum {
    /// Add what `h`'s plugins have counted so far.
    pub fn add(&mut self, h: &HealthHandle) {
        if let Some(f) = h.read() {
            self.errors += f.errors;
            self.quarantines += u64::from(f.quarantined.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(FilterSpec::parse("udp port 53"), FilterSpec::Pcap("udp port 53".into()));
        assert_eq!(FilterSpec::parse("bpf: tcp"), FilterSpec::Pcap("tcp".into()));
        assert_eq!(FilterSpec::parse("builtin:vlan 3"), FilterSpec::Builtin("vlan 3".into()));
        assert_eq!(
            FilterSpec::parse("plugin:/a/libx.so:k=v:w"),
            FilterSpec::Plugin { path: "/a/libx.so".into(), config: "k=v:w".into() }
        );
        assert_eq!(
            FilterSpec::parse("plugin:/a/libx.so"),
            FilterSpec::Plugin { path: "/a/libx.so".into(), config: String::new() }
        );
    }

    #[test]
    fn missing_and_bogus_plugins_are_refused_clearly() {
        let e = FilterFactory::new("plugin:/nonexistent/libx.so", QuarantinePolicy::DropAll).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/libx.so") && e.contains("no such file"), "{e}");
        let dir = std::env::temp_dir().join(format!("rw-bogus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bogus = dir.join("libbogus.so");
        std::fs::write(&bogus, b"not an ELF file").unwrap();
        let e = FilterFactory::new(&format!("plugin:{}", bogus.display()), QuarantinePolicy::DropAll)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot load"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A chain's stage counters read while a worker counts never show a
    /// stage passing more frames than it decided.
    #[test]
    fn stage_counts_read_under_traffic_never_pass_more_than_they_saw() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let f = FilterFactory::chain(
            &["builtin:ethertype 0x0800", "builtin:ethertype 0x0800"],
            QuarantinePolicy::DropAll,
            None,
        )
        .unwrap();
        let mut inst = f.instance().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut frame = vec![0u8; 60];
                frame[12..14].copy_from_slice(&[0x08, 0x00]);
                let pkts = vec![crate::Packet::whole(&frame); 256];
                let mut v = vec![crate::Verdict::Drop; 256];
                let t = Instant::now();
                while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(10) {
                    inst.verdict_batch(&pkts, &mut v);
                }
            });
            let t = Instant::now();
            let mut reads = 0u32;
            let mut bad = None;
            while reads < 200_000 && t.elapsed() < Duration::from_secs(3) && bad.is_none() {
                bad = f.stage_stats().into_iter().find(|st| st.passed > st.evaluated);
                reads += 1;
            }
            stop.store(true, Ordering::Relaxed);
            assert!(bad.is_none(), "after {reads} reads: {bad:?}");
        });
    }

    #[test]
    fn an_empty_chain_is_refused_by_what_it_is() {
        let Err(e) = FilterFactory::chain(&[], QuarantinePolicy::DropAll, None) else { panic!("an empty chain built") };
        let e = e.to_string();
        assert_eq!(e, "an empty filter chain (`[]`): give at least one filter, or no `filter` for none");
    }
}
