//! Loading Rust filter plugins (cdylibs built with `ringwire-filter-sdk`).
//!
//! ```text
//! PluginLibrary::load(path) ── dlopen ─ symbol ─ ABI version + size check
//!     └─ instance(config) ── create() ─> PluginFilter (one per worker)
//!            verdict_batch ── eval_batch() once per batch
//!            a panic or error ──> quarantined: the consumer's policy decides (pass all / drop all)
//! ```
//!
//! The library stays loaded while any instance lives (`Arc<Library>`); a
//! failed load drops it at once, so nothing leaks.

use std::{
    ffi::c_void,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use libloading::Library;
use ringwire_filter_sdk::{
    ErrorBuf, PluginDescriptor, RawPacket, ABI_VERSION, STATUS_OK, STATUS_PANIC, SYMBOL, VERDICT_PASS,
};

use crate::{Filter, FilterError, Packet, Verdict};

/// What a consumer does with frames once its plugin is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuarantinePolicy {
    /// Drop every frame (the default: a broken filter never floods a consumer).
    #[default]
    DropAll,
    /// Pass every frame.
    PassAll,
}

/// Health of a loaded plugin, shared by its instances.
#[derive(Debug, Default)]
pub struct PluginHealth {
    /// Failed calls (panics and errors).
    pub errors: AtomicU64,
    /// Why it was quarantined, once it is.
    pub quarantined: Mutex<Option<String>>,
    /// Set with `quarantined` (checked once per batch without the lock).
    is_quarantined: std::sync::atomic::AtomicBool,
}

/// A loaded plugin library.
pub struct PluginLibrary {
    // Field order: the descriptor points into the library, dropped last.
    desc: *const PluginDescriptor,
    name: String,
    path: PathBuf,
    health: Arc<PluginHealth>,
    lib: Library,
}

// SAFETY: the descriptor is immutable static data inside the library, which
// stays loaded as long as this value; its functions are called on one
// instance from one thread at a time.
unsafe impl Send for PluginLibrary {}
// SAFETY: as above: shared access only reads the descriptor.
unsafe impl Sync for PluginLibrary {}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary").field("name", &self.name).field("path", &self.path).finish_non_exhaustive()
    }
}

fn plugin_err(path: &Path, message: impl Into<String>) -> FilterError {
    FilterError::Plugin { path: path.to_path_buf(), message: message.into() }
}

/// The inode of the file mapped at address `addr` in this process (from
/// `/proc/self/maps`), if it is a file's mapping.
fn mapped_inode(addr: usize) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
        if !(start..end).contains(&addr) {
            return None;
        }
        fields.nth(3)?.parse::<u64>().ok().filter(|&ino| ino != 0)
    })
}

impl PluginLibrary {
    /// Load `path` and check that it is a ringwire plugin of this ABI version.
    ///
    /// # Errors
    /// [`FilterError::Plugin`]: no such file, not a shared library, not a
    /// ringwire plugin, or built for another ABI version (both named).
    pub fn load(path: &Path) -> Result<Arc<Self>, FilterError> {
        if !path.exists() {
            return Err(plugin_err(path, "no such file"));
        }
        // An absolute path: dlopen searches the library path for a bare name,
        // which could load some other file than the one checked above.
        let path = &std::fs::canonicalize(path).map_err(|e| plugin_err(path, e.to_string()))?;
        let file = std::fs::metadata(path).map_err(|e| plugin_err(path, e.to_string()))?;
        // SAFETY: loading a library runs its initialisers; that is what loading
        // a plugin means, and the operator chose the file.
        let lib = unsafe { Library::new(path) }.map_err(|e| plugin_err(path, format!("cannot load: {e}")))?;
        // SAFETY: the symbol's type is the SDK's: a function returning the descriptor.
        let get: libloading::Symbol<'_, extern "C" fn() -> *const PluginDescriptor> = unsafe { lib.get(SYMBOL) }
            .map_err(|_| plugin_err(path, "not a ringwire filter plugin (no `ringwire_filter_plugin` symbol)"))?;
        let desc = get();
        if desc.is_null() {
            return Err(plugin_err(path, "the plugin returned no descriptor"));
        }
        // The system's loader keeps one library per path: a file rebuilt
        // there while its earlier build is loaded gives that build again.
        if let Some(ino) = mapped_inode(desc as usize) {
            if ino != std::os::unix::fs::MetadataExt::ino(&file) {
                return Err(plugin_err(
                    path,
                    "the file was replaced since it was loaded, and filters still use the build loaded then \
                     (the system's loader gives that build again for this path): load the new build from a \
                     new path, or unload every filter that uses the old one first",
                ));
            }
        }
        // SAFETY: every ABI version starts with `abi_version: u32, size: u32`,
        // so these two fields can be read before the version is known.
        let (version, size) = unsafe { ((*desc).abi_version, (*desc).size) };
        if version != ABI_VERSION {
            return Err(plugin_err(
                path,
                format!("built for plugin ABI version {version}; this engine speaks version {ABI_VERSION} (rebuild it with a matching ringwire-filter-sdk)"),
            ));
        }
        if size as usize != std::mem::size_of::<PluginDescriptor>() {
            return Err(plugin_err(
                path,
                format!("descriptor of {size} bytes, expected {}", std::mem::size_of::<PluginDescriptor>()),
            ));
        }
        // SAFETY: version and size match, so the descriptor is this SDK's type;
        // `name` points to `name_len` bytes of static data in the library.
        let name = unsafe {
            let d = &*desc;
            String::from_utf8_lossy(std::slice::from_raw_parts(d.name, d.name_len)).into_owned()
        };
        Ok(Arc::new(Self { desc, name, path: path.to_path_buf(), health: Arc::default(), lib }))
    }

    fn desc(&self) -> &PluginDescriptor {
        // SAFETY: checked in `load`; the library (and so the static) outlives `self`.
        unsafe { &*self.desc }
    }

    /// The plugin's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its health (errors, quarantine), shared by every instance.
    #[must_use]
    pub fn health(&self) -> &Arc<PluginHealth> {
        &self.health
    }

    /// Create an instance from a config string.
    ///
    /// # Errors
    /// [`FilterError::Plugin`] with the plugin's own message when it rejects the config.
    pub fn instance(self: &Arc<Self>, config: &str, policy: QuarantinePolicy) -> Result<PluginFilter, FilterError> {
        let mut msg = [0u8; 512];
        let mut err = ErrorBuf { ptr: msg.as_mut_ptr(), cap: msg.len(), len: 0 };
        // SAFETY: `config` is valid for its length; `err` points to a live buffer of `cap` bytes.
        let state = unsafe { (self.desc().create)(config.as_ptr(), config.len(), &mut err) };
        if state.is_null() {
            let m = String::from_utf8_lossy(&msg[..err.len.min(msg.len())]).into_owned();
            let _ = &self.lib;
            return Err(plugin_err(&self.path, format!("plugin `{}` rejected its config `{config}`: {m}", self.name)));
        }
        Ok(PluginFilter {
            lib: self.clone(),
            state,
            label: format!("plugin:{}", self.name),
            raw: Vec::with_capacity(BATCH),
            out: Vec::with_capacity(BATCH),
            policy,
            quarantined: false,
        })
    }
}

/// Frames in an engine batch: the instance's buffers start this big, so a
/// worker's first batches allocate nothing either.
const BATCH: usize = 256;

/// One instance of a plugin, owned by one worker.
pub struct PluginFilter {
    lib: Arc<PluginLibrary>,
    state: *mut c_void,
    label: String,
    raw: Vec<RawPacket>,
    out: Vec<u8>,
    policy: QuarantinePolicy,
    quarantined: bool,
}

// SAFETY: `FilterPlugin: Send` in the SDK, so the plugin state may move to
// another thread; the instance is used by one worker at a time.
unsafe impl Send for PluginFilter {}

impl PluginFilter {
    fn quarantine(&mut self, status: i32, msg: &str) {
        self.quarantined = true;
        self.lib.health.errors.fetch_add(1, Ordering::Relaxed);
        let what = if status == STATUS_PANIC { "panicked" } else { "failed" };
        let why = format!("plugin `{}` ({}) {what}: {msg}", self.lib.name, self.lib.path.display());
        tracing::error!(plugin = %self.lib.name, policy = ?self.policy, "{why}; quarantined");
        let mut q = self.lib.health.quarantined.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.get_or_insert(why);
        self.lib.health.is_quarantined.store(true, Ordering::Release);
    }

    fn fallback(&self) -> Verdict {
        match self.policy {
            QuarantinePolicy::DropAll => Verdict::Drop,
            QuarantinePolicy::PassAll => Verdict::Pass,
        }
    }
}

impl Filter for PluginFilter {
    fn name(&self) -> &str {
        &self.label
    }

    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        crate::verdict_via_batch(self, pkt)
    }

    fn verdict_batch(&mut self, pkts: &[Packet<'_>], verdicts: &mut [Verdict]) {
        if self.quarantined || self.lib.health.is_quarantined.load(Ordering::Acquire) {
            self.quarantined = true;
            verdicts.iter_mut().for_each(|v| *v = self.fallback());
            return;
        }
        // Sized for a batch at creation (grows once if a caller passes more): no allocation per batch.
        self.raw.clear();
        self.raw.extend(pkts.iter().map(|p| RawPacket {
            data: p.data.as_ptr(),
            len: u32::try_from(p.data.len()).unwrap_or(u32::MAX),
            wire_len: p.wire_len,
            ts_ns: p.ts_ns,
        }));
        self.out.clear();
        self.out.resize(pkts.len(), 0);
        let mut msg = [0u8; 512];
        let mut err = ErrorBuf { ptr: msg.as_mut_ptr(), cap: msg.len(), len: 0 };
        // SAFETY: `state` came from this library's `create`; `raw` holds
        // `len` packets whose data outlive the call; `out` has room for `len`
        // verdicts; `err` points to a live buffer.
        let status = unsafe {
            (self.lib.desc().eval_batch)(self.state, self.raw.as_ptr(), self.raw.len(), self.out.as_mut_ptr(), &mut err)
        };
        if status == STATUS_OK {
            for (v, o) in verdicts.iter_mut().zip(&self.out) {
                *v = if *o == VERDICT_PASS { Verdict::Pass } else { Verdict::Drop };
            }
        } else {
            let m = String::from_utf8_lossy(&msg[..err.len.min(msg.len())]).into_owned();
            self.quarantine(status, &m);
            verdicts.iter_mut().for_each(|v| *v = self.fallback());
        }
    }
}

impl Drop for PluginFilter {
    fn drop(&mut self) {
        // SAFETY: `state` came from `create` and is destroyed once.
        unsafe { (self.lib.desc().destroy)(self.state) };
    }
}
