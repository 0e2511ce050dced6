//! Filter specifications as users write them, and factories that build one
//! filter instance per worker.
//!
//! | text | filter |
//! |---|---|
//! | `udp port 53`, `bpf:udp port 53` | pcap-filter, compiled by libpcap |
//! | `builtin:vlan 10-20 and not mac 02:00:00:00:00:01` | [`crate::BuiltinFilter`] |
//! | `plugin:/path/libx.so` or `plugin:/path/libx.so:CONFIG` | a Rust plugin, given CONFIG |

use std::{path::PathBuf, sync::Arc};

use crate::{
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

/// Builds filter instances for one specification: compiled, parsed or
/// loaded once, checked once (a plugin's config by a first instance).
pub struct FilterFactory {
    text: String,
    compiled: Compiled,
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
        Self::with_live(text, policy, None)
    }

    /// Like [`FilterFactory::new`], for a consumer that also takes frames from
    /// live interfaces: a pcap-filter expression is then compiled for `iface`
    /// as well, so it means on those frames what it means to `tcpdump -i`.
    ///
    /// # Errors
    /// As [`FilterFactory::new`].
    pub fn with_live(text: &str, policy: QuarantinePolicy, live_iface: Option<&str>) -> Result<Self, FilterError> {
        let compiled = match FilterSpec::parse(text) {
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
        };
        Ok(Self { text: text.to_owned(), compiled })
    }

    /// A new instance for one worker.
    ///
    /// # Errors
    /// A plugin that rejects its config (it accepted it when checked, so
    /// only a plugin whose behaviour changed does).
    pub fn instance(&self) -> Result<Box<dyn Filter>, FilterError> {
        Ok(match &self.compiled {
            Compiled::Pcap(f) => Box::new(f.clone()),
            Compiled::Builtin(f) => Box::new(f.clone()),
            Compiled::Plugin(lib, config, policy) => Box::new(lib.instance(config, *policy)?),
        })
    }

    /// The text it was built from.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A plugin's health; `None` for other filters.
    #[must_use]
    pub fn health(&self) -> Option<FilterHealth> {
        match &self.compiled {
            Compiled::Plugin(lib, ..) => Some(FilterHealth {
                errors: lib.health().errors.load(std::sync::atomic::Ordering::Relaxed),
                quarantined: lib.health().quarantined.lock().map(|q| q.clone()).unwrap_or(None),
            }),
            _ => None,
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
}
