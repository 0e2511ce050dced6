//! Mapped pcap sources: which files they are, and surviving one that shrinks.
//!
//! pcap sources are read through a shared mapping. If another program
//! truncates the file while it is read (a capture tool rotating over its
//! ring of files, a user's `>`), a read of a page past the new end raises
//! SIGBUS, which would kill the engine with nothing flushed. Each mapping
//! registers its address range here; a SIGBUS inside one has the page
//! replaced by a page of zeros and marks the mapping, and the reader then
//! reports the file as shrunk ([`crate::pcapio::PcapIoError::Shrunk`]) and
//! stops at that point, so the run ends as for a truncated file: counted,
//! flushed, exit status 1. A SIGBUS anywhere else goes to the handler that
//! was there before (the default: the process dies, as it would have).
//!
//! The registry also knows each mapped file's device and inode, so that an
//! output is never created over a source being read (`-r f.pcap -w f.pcap`
//! would truncate the file under its own reader).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    Once,
};

/// Mappings that can be registered at once; more are read unguarded.
const SLOTS: usize = 1024;

/// One registered mapping; `end == 0` while free or being filled in.
struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    dev: AtomicU64,
    ino: AtomicU64,
    faulted: AtomicBool,
}

impl Slot {
    const fn free() -> Self {
        Self {
            taken: AtomicBool::new(false),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
            faulted: AtomicBool::new(false),
        }
    }
}

static SLOTS_IN_USE: [Slot; SLOTS] = [const { Slot::free() }; SLOTS];
static INSTALL: Once = Once::new();
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS action found when the handler was installed.
static mut PREVIOUS: Option<libc::sigaction> = None;

/// A registered mapping; dropping it unregisters it.
#[derive(Debug)]
pub struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Register the mapping `[start, start + len)` of the file `(dev, ino)`.
    /// With every slot taken the mapping is only not guarded.
    #[must_use]
    pub fn register(start: usize, len: usize, dev: u64, ino: u64) -> Self {
        install();
        let slot = SLOTS_IN_USE
            .iter()
            .position(|s| s.taken.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok());
        if let Some(i) = slot {
            let s = &SLOTS_IN_USE[i];
            s.faulted.store(false, Ordering::Relaxed);
            s.dev.store(dev, Ordering::Relaxed);
            s.ino.store(ino, Ordering::Relaxed);
            s.start.store(start, Ordering::Relaxed);
            // Published last: the handler matches only complete entries.
            s.end.store(start + len, Ordering::Release);
        } else {
            tracing::warn!(
                "more than {SLOTS} pcap sources mapped: this one stops the process if it shrinks while read"
            );
        }
        Self { slot }
    }

    /// Whether a read of the mapping faulted because the file had shrunk
    /// (the page now reads as zeros).
    #[inline]
    #[must_use]
    pub fn faulted(&self) -> bool {
        self.slot.is_some_and(|i| SLOTS_IN_USE[i].faulted.load(Ordering::Acquire))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let s = &SLOTS_IN_USE[i];
            s.end.store(0, Ordering::Release);
            s.taken.store(false, Ordering::Release);
        }
    }
}

/// Whether the file `(dev, ino)` is a registered (mapped) source.
#[must_use]
pub fn is_source(dev: u64, ino: u64) -> bool {
    SLOTS_IN_USE.iter().any(|s| {
        s.end.load(Ordering::Acquire) != 0
            && s.dev.load(Ordering::Relaxed) == dev
            && s.ino.load(Ordering::Relaxed) == ino
    })
}

fn install() {
    INSTALL.call_once(|| {
        PAGE.store(crate::sys::page_size(), Ordering::Relaxed);
        // SAFETY: zeroed sigactions are valid to fill in and `new`/`old` are valid for the calls; PREVIOUS is written once, here, from the action in force, before `on_sigbus` (its only reader) is installed.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old);
            PREVIOUS = Some(old);
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "no SIGBUS handler: a pcap source that shrinks while read stops the process"
                );
            }
        }
    });
}

/// SIGBUS: inside a registered mapping, map a page of zeros over the page
/// that is gone and mark the mapping; elsewhere, pass it on.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for s in &SLOTS_IN_USE {
        let end = s.end.load(Ordering::Acquire);
        if end == 0 || addr < s.start.load(Ordering::Relaxed) || addr >= end {
            continue;
        }
        // The page lies inside a live mapping this process made of a file it
        // only reads; replacing it with an anonymous read-only page (mmap is
        // a plain system call, safe in a signal handler) changes what that
        // mapping reads, nothing else. The faulting load is then retried and
        // reads zeros, which the reader discards (it sees the mark).
        // SAFETY: MAP_FIXED replaces one page of a live, registered, read-only file mapping of our own, nothing else.
        let p = unsafe {
            libc::mmap(
                (addr & !(page - 1)) as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            s.faulted.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or the page could not be replaced): what was there before.
    // A previous SA_SIGINFO handler is called with the arguments this one
    // got; SIG_DFL / SIG_IGN are restored, and returning retries the access,
    // which faults again under that action.
    // SAFETY: PREVIOUS was written before this handler was installed and never is again; a previous handler gets the arguments this one got.
    unsafe {
        let prev = *std::ptr::addr_of!(PREVIOUS);
        match prev {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(old.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    f(sig);
                }
            }
            _ => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}
