//! ringwire-filter-sdk: write a ringwire filter plugin in Rust.
//!
//! A plugin is a `cdylib` crate that depends on this one, implements
//! [`FilterPlugin`] and exports it with [`export_filter!`]:
//!
//! ```ignore
//! use ringwire_filter_sdk::{export_filter, FilterPlugin, Packet, Verdict};
//!
//! struct BigFrames { min: u32 }
//!
//! impl FilterPlugin for BigFrames {
//!     const NAME: &'static str = "big-frames";
//!     fn new(config: &str) -> Result<Self, String> {
//!         let min = config.trim().parse().map_err(|_| format!("`{config}`: expected a length"))?;
//!         Ok(Self { min })
//!     }
//!     fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
//!         if pkt.wire_len >= self.min { Verdict::Pass } else { Verdict::Drop }
//!     }
//! }
//!
//! export_filter!(BigFrames);
//! ```
//!
//! The engine loads it with `filter = "plugin:/path/libbig_frames.so:1000"`
//! (the text after the second colon is the config string given to `new`).
//!
//! # The ABI
//!
//! One symbol, `ringwire_filter_plugin`, returns a [`PluginDescriptor`]
//! whose first two fields, `abi_version` and `size`, let the engine refuse a
//! plugin built for another version before it touches anything else. The
//! engine creates one instance per worker and evaluates frames a batch at a
//! time (one call per batch). Every entry point runs inside `catch_unwind`: a
//! panic in a plugin comes back as [`STATUS_PANIC`] with its message, and the
//! engine quarantines the plugin instead of crashing. A plugin must therefore
//! be built with `panic = "unwind"` (Cargo's default).

use std::{
    ffi::c_void,
    panic::{catch_unwind, AssertUnwindSafe},
};

pub mod headers;
pub use headers::Headers;

/// The ABI version this SDK speaks. Bumped on any change to the types below.
pub const ABI_VERSION: u32 = 1;

/// Name of the exported symbol.
pub const SYMBOL: &[u8] = b"ringwire_filter_plugin\0";

/// A call succeeded.
pub const STATUS_OK: i32 = 0;
/// The plugin returned an error (message in the error buffer).
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked (message in the error buffer).
pub const STATUS_PANIC: i32 = 2;

/// Verdict byte: the frame passes.
pub const VERDICT_PASS: u8 = 1;
/// Verdict byte: the frame is dropped.
pub const VERDICT_DROP: u8 = 0;

/// A frame as it crosses the ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawPacket {
    /// Captured bytes.
    pub data: *const u8,
    /// Number of captured bytes.
    pub len: u32,
    /// Length on the wire.
    pub wire_len: u32,
    /// Receive time, ns since the epoch.
    pub ts_ns: u64,
}

/// A caller-owned buffer for an error message (UTF-8, not NUL-terminated).
#[repr(C)]
#[derive(Debug)]
pub struct ErrorBuf {
    /// Where to write.
    pub ptr: *mut u8,
    /// Room in bytes.
    pub cap: usize,
    /// Bytes written.
    pub len: usize,
}

impl ErrorBuf {
    fn set(&mut self, msg: &str) {
        let n = msg.len().min(self.cap);
        if !self.ptr.is_null() && n > 0 {
            // SAFETY: the caller guarantees `ptr` has room for `cap` bytes; `n <= cap`.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.ptr, n) };
        }
        self.len = n;
    }
}

/// What `ringwire_filter_plugin` returns (ABI version 1).
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// [`ABI_VERSION`] of the SDK the plugin was built with.
    pub abi_version: u32,
    /// `size_of::<PluginDescriptor>()` as the plugin sees it.
    pub size: u32,
    /// The plugin's name (UTF-8).
    pub name: *const u8,
    /// Length of `name`.
    pub name_len: usize,
    /// Create an instance from a config string; null on failure (message in `err`).
    pub create: unsafe extern "C" fn(config: *const u8, len: usize, err: *mut ErrorBuf) -> *mut c_void,
    /// Decide `n` frames: writes `n` verdict bytes.
    pub eval_batch: unsafe extern "C" fn(
        state: *mut c_void,
        pkts: *const RawPacket,
        n: usize,
        verdicts: *mut u8,
        err: *mut ErrorBuf,
    ) -> i32,
    /// Destroy an instance.
    pub destroy: unsafe extern "C" fn(state: *mut c_void),
}

// SAFETY: the descriptor is immutable static data: a pointer to a static
// string and function pointers.
unsafe impl Sync for PluginDescriptor {}

/// A frame as a plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Captured bytes from the Ethernet header on (VLAN tags in place).
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
    /// Receive time, ns since the epoch.
    pub ts_ns: u64,
}

/// A plugin's decision on a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the frame.
    Pass,
    /// Drop the frame.
    Drop,
}

/// What a filter plugin implements.
pub trait FilterPlugin: Sized + Send + 'static {
    /// The plugin's name, shown in errors and counters.
    const NAME: &'static str;

    /// Build an instance from the config string (one instance per worker).
    ///
    /// # Errors
    /// A message saying what is wrong with `config`.
    fn new(config: &str) -> Result<Self, String>;

    /// Decide one frame.
    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict;

    /// Decide a batch; the default calls [`FilterPlugin::verdict`] per frame.
    fn verdict_batch(&mut self, pkts: &[Packet<'_>], out: &mut [Verdict]) {
        for (p, v) in pkts.iter().zip(out.iter_mut()) {
            *v = self.verdict(p);
        }
    }
}

/// The message of a panic payload; the payload is dropped inside
/// `catch_unwind`, so a payload whose own drop panics cannot unwind out of an
/// `extern "C"` function (which would abort the engine).
fn panic_message_of(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = panic_message(&*p);
    let _ = catch_unwind(AssertUnwindSafe(move || drop(p)));
    msg
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// `create` for plugin type `T` (used by [`export_filter!`]).
///
/// # Safety
/// `config` points to `len` readable bytes; `err` is null or a valid [`ErrorBuf`].
pub unsafe extern "C" fn create<T: FilterPlugin>(config: *const u8, len: usize, err: *mut ErrorBuf) -> *mut c_void {
    let report = |msg: &str| {
        // SAFETY: the caller passes a valid ErrorBuf or null.
        if let Some(e) = unsafe { err.as_mut() } {
            e.set(msg);
        }
    };
    let cfg: &[u8] = if config.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable bytes at `config`.
        unsafe { std::slice::from_raw_parts(config, len) }
    };
    let Ok(text) = std::str::from_utf8(cfg) else {
        report("the config string is not UTF-8");
        return std::ptr::null_mut();
    };
    match catch_unwind(|| T::new(text)) {
        Ok(Ok(state)) => Box::into_raw(Box::new(state)).cast(),
        Ok(Err(msg)) => {
            report(&msg);
            std::ptr::null_mut()
        }
        Err(p) => {
            report(&format!("panicked in new: {}", panic_message_of(p)));
            std::ptr::null_mut()
        }
    }
}

/// `eval_batch` for plugin type `T` (used by [`export_filter!`]).
///
/// # Safety
/// `state` comes from `create::<T>`; `pkts` points to `n` packets whose data
/// pointers are valid for their lengths; `verdicts` has room for `n` bytes.
pub unsafe extern "C" fn eval_batch<T: FilterPlugin>(
    state: *mut c_void,
    pkts: *const RawPacket,
    n: usize,
    verdicts: *mut u8,
    err: *mut ErrorBuf,
) -> i32 {
    // A fixed chunk on the stack: no allocation per batch.
    const CHUNK: usize = 64;
    let res = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` is the `T` boxed by `create::<T>`, used by one thread at a time.
        let plugin = unsafe { &mut *state.cast::<T>() };
        // SAFETY: the caller guarantees `n` packets and `n` verdict bytes.
        let (raw, out) = unsafe { (std::slice::from_raw_parts(pkts, n), std::slice::from_raw_parts_mut(verdicts, n)) };
        let mut views = [Packet { data: &[], wire_len: 0, ts_ns: 0 }; CHUNK];
        let mut decided = [Verdict::Drop; CHUNK];
        for (rs, os) in raw.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            for (v, r) in views.iter_mut().zip(rs) {
                let data = if r.data.is_null() {
                    &[][..]
                } else {
                    // SAFETY: each packet's data pointer is valid for `len` bytes (caller's contract).
                    unsafe { std::slice::from_raw_parts(r.data, r.len as usize) }
                };
                *v = Packet { data, wire_len: r.wire_len, ts_ns: r.ts_ns };
            }
            plugin.verdict_batch(&views[..rs.len()], &mut decided[..rs.len()]);
            for (o, d) in os.iter_mut().zip(&decided) {
                *o = if *d == Verdict::Pass { VERDICT_PASS } else { VERDICT_DROP };
            }
        }
    }));
    match res {
        Ok(()) => STATUS_OK,
        Err(p) => {
            // SAFETY: the caller passes a valid ErrorBuf or null.
            if let Some(e) = unsafe { err.as_mut() } {
                e.set(&panic_message_of(p));
            }
            STATUS_PANIC
        }
    }
}

/// `destroy` for plugin type `T` (used by [`export_filter!`]).
///
/// # Safety
/// `state` comes from `create::<T>` and is not used afterwards.
pub unsafe extern "C" fn destroy<T: FilterPlugin>(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: `state` is the box made by `create::<T>`, destroyed once.
        let b = unsafe { Box::from_raw(state.cast::<T>()) };
        // A panicking Drop must not unwind into the engine.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
    }
}

/// Export a [`FilterPlugin`] type as this library's ringwire filter.
#[macro_export]
macro_rules! export_filter {
    ($plugin:ty) => {
        /// The plugin's descriptor, looked up by the engine.
        #[no_mangle]
        pub extern "C" fn ringwire_filter_plugin() -> &'static $crate::PluginDescriptor {
            static DESCRIPTOR: $crate::PluginDescriptor = $crate::PluginDescriptor {
                abi_version: $crate::ABI_VERSION,
                size: ::core::mem::size_of::<$crate::PluginDescriptor>() as u32,
                name: <$plugin as $crate::FilterPlugin>::NAME.as_ptr(),
                name_len: <$plugin as $crate::FilterPlugin>::NAME.len(),
                create: $crate::create::<$plugin>,
                eval_batch: $crate::eval_batch::<$plugin>,
                destroy: $crate::destroy::<$plugin>,
            };
            &DESCRIPTOR
        }
    };
}
