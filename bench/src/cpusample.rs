//! CPU time by sampling: which process runs on a core, and in which mode.
//!
//! `getrusage` on this kind of machine is tick accounting: 250 times a
//! second the kernel charges a whole tick to whatever runs, in user or
//! kernel mode, and the split it reports is that of those few samples. A
//! receiver that spends a tenth of a core in user mode over a 3-second run
//! is then measured from some 75 samples, and two rounds of the same run
//! differ by half. [`CoreSampler`] takes the same kind of sample, through
//! `perf_event_open`'s software CPU clock on the cores a receiver is pinned
//! to, forty times as often (10 kHz by default), and only while it is asked
//! to: so a receiver's start-up is left out and each figure rests on
//! thousands of samples.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use perf_event::data::Record;
use perf_event::events::Software;
use perf_event::{Builder, SampleFlag, Sampler};
use perf_event_open_sys::bindings::{PERF_RECORD_MISC_CPUMODE_MASK, PERF_RECORD_MISC_KERNEL, PERF_RECORD_MISC_USER};

/// What went wrong setting up sampling.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// `perf_event_open` or the ring mapping failed (not root, or
    /// `kernel.perf_event_paranoid` forbids per-core events).
    #[error("sampling core {core}: {source}")]
    Open {
        /// The core.
        core: usize,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The draining thread could not be started.
    #[error("starting the sampler's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The samples one process received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeSamples {
    /// Samples taken while it ran in user mode.
    pub user: u64,
    /// Samples taken while it ran in the kernel (its system calls, and
    /// interrupts and softirqs that happened to land on it).
    pub kernel: u64,
}

/// What a sampling window saw.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Nanoseconds of CPU each sample stands for.
    pub period_ns: u64,
    /// Samples by process id (the thread group: all its threads).
    pub by_pid: HashMap<u32, ModeSamples>,
    /// Samples by thread id.
    pub by_tid: HashMap<u32, ModeSamples>,
    /// Samples the kernel could not store (the ring was full): the figures
    /// are then low by about this many.
    pub lost: u64,
}

impl Samples {
    /// `pid`'s user and kernel CPU time, in nanoseconds.
    pub fn cpu_ns(&self, pid: u32) -> (u64, u64) {
        self.ns(self.by_pid.get(&pid))
    }

    /// Thread `tid`'s user and kernel CPU time, in nanoseconds.
    pub fn thread_cpu_ns(&self, tid: u32) -> (u64, u64) {
        self.ns(self.by_tid.get(&tid))
    }

    fn ns(&self, s: Option<&ModeSamples>) -> (u64, u64) {
        let s = s.copied().unwrap_or_default();
        (s.user * self.period_ns, s.kernel * self.period_ns)
    }

    /// CPU time the sampled cores spent running anything at all, in
    /// nanoseconds: every process, kernel threads (NAPI, softirqs) included.
    /// The CPU clock stops while a core idles, so idle time takes no samples.
    pub fn busy_ns(&self) -> u64 {
        self.by_pid.values().map(|s| s.user + s.kernel).sum::<u64>() * self.period_ns
    }
}

/// Bytes of ring per core: at 10 kHz a sample takes 16 bytes, so this
/// holds some 6 seconds, drained every [`DRAIN_EVERY`].
const RING_BYTES: usize = 1 << 20;

/// How often the thread empties the rings.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// Samples the given cores every `period` of CPU time, on a thread of its
/// own, until [`CoreSampler::finish`] or until dropped (a measurement that
/// failed half-way must not leave the core sampled for the next one).
pub struct CoreSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Samples>>,
}

impl CoreSampler {
    /// Start sampling `cores` (every process on them) every `period`.
    pub fn start(cores: &[usize], period: Duration) -> Result<Self, SampleError> {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mut samplers = Vec::with_capacity(cores.len());
        for &core in cores {
            let open = || -> std::io::Result<Sampler> {
                let mut s = Builder::new(Software::CPU_CLOCK)
                    .one_cpu(core)
                    .any_pid()
                    .sample_period(period_ns)
                    .sample(SampleFlag::TID)
                    // The builder leaves the kernel out unless told.
                    .exclude_kernel(false)
                    .exclude_hv(true)
                    .enabled(false)
                    .build()?
                    .sampled(RING_BYTES)?;
                s.enable()?;
                Ok(s)
            };
            samplers.push(open().map_err(|source| SampleError::Open { core, source })?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rw-cpusample".into())
            .spawn(move || {
                let mut out = Samples { period_ns, ..Default::default() };
                loop {
                    // Read the flag before draining: what ran up to it is taken.
                    let last = flag.load(Ordering::Acquire);
                    if last {
                        for s in &mut samplers {
                            let _ = s.disable();
                        }
                    }
                    for s in &mut samplers {
                        drain(s, &mut out);
                    }
                    if last {
                        return out;
                    }
                    std::thread::park_timeout(DRAIN_EVERY);
                }
            })
            .map_err(SampleError::Thread)?;
        Ok(Self { stop, thread: Some(thread) })
    }

    /// Stop sampling and return what was seen.
    pub fn finish(mut self) -> Samples {
        self.stop_thread().unwrap_or_default()
    }

    /// Tell the thread to stop, and wait for what it saw.
    fn stop_thread(&mut self) -> Option<Samples> {
        let thread = self.thread.take()?;
        self.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        // The thread cannot panic: it only reads the rings.
        thread.join().ok()
    }
}

impl Drop for CoreSampler {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Count every record waiting in `s` into `out`.
fn drain(s: &mut Sampler, out: &mut Samples) {
    while let Some(r) = s.next_record() {
        // The mode the CPU was in when the sample was taken.
        let mode = u32::from(r.misc()) & PERF_RECORD_MISC_CPUMODE_MASK;
        match r.parse_record() {
            Ok(Record::Sample(sample)) => {
                let (Some(pid), Some(tid)) = (sample.pid(), sample.tid()) else { continue };
                for e in [out.by_pid.entry(pid).or_default(), out.by_tid.entry(tid).or_default()] {
                    match mode {
                        PERF_RECORD_MISC_USER => e.user += 1,
                        PERF_RECORD_MISC_KERNEL => e.kernel += 1,
                        _ => {}
                    }
                }
            }
            Ok(Record::Lost(l)) => out.lost += l.lost,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_is_every_process_sample_times_the_period() {
        let mut s = Samples { period_ns: 100_000, ..Default::default() };
        s.by_pid.insert(7, ModeSamples { user: 3, kernel: 4 });
        s.by_pid.insert(9, ModeSamples { user: 0, kernel: 10 });
        // Threads are the same samples again, by thread: not counted twice.
        s.by_tid.insert(7, ModeSamples { user: 3, kernel: 4 });
        assert_eq!(s.busy_ns(), 17 * 100_000);
        assert_eq!(Samples::default().busy_ns(), 0);
    }

    /// Spin on `core` for `spin`, in user code or (`syscalls`) reading
    /// /dev/zero, whose kernel side does nearly all the work; the thread's id.
    fn spin_on(core: usize, spin: Duration, syscalls: bool) -> u32 {
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(core_affinity::set_for_current(core_affinity::CoreId { id: core }));
                let mut zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
                let mut buf = vec![0u8; 1 << 20];
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < spin {
                    if syscalls {
                        std::io::Read::read_exact(&mut zero, &mut buf).expect("reading /dev/zero");
                    } else {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                }
                // SAFETY: gettid takes no arguments and cannot fail.
                unsafe { libc::gettid() as u32 }
            })
            .join()
            .expect("spinner")
        })
    }

    /// A busy loop of user code on a known core shows up as user samples
    /// of its thread and this process, for about the time it ran; one in
    /// system calls, as kernel samples. Needs root (or a permissive
    /// `perf_event_paranoid`); outside CI it says so and skips when it has
    /// neither.
    #[test]
    fn busy_threads_are_sampled_in_the_mode_they_ran_for_about_the_time_they_ran() {
        let core = *ringwire_engine::sys::usable_cores().last().expect("a core");
        let sampler = match CoreSampler::start(&[core], Duration::from_micros(100)) {
            Ok(s) => s,
            Err(e) if std::env::var_os("CI").is_none() => {
                ringwire_engine::say!("skipped: {e} (needs root or kernel.perf_event_paranoid <= 0)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let started = std::time::Instant::now();
        let spin = Duration::from_millis(300);
        let in_user = spin_on(core, spin, false);
        let in_kernel = spin_on(core, spin, true);
        let idle = Duration::from_millis(400);
        std::thread::sleep(idle);
        let got = sampler.finish();
        let window = started.elapsed().as_nanos() as u64;
        let spun = spin.as_nanos() as u64;
        // The core ran both spinners, then idled while this thread slept:
        // idle time takes no samples (none for the idle task, pid 0), and
        // this process is not charged for its sleep. Other tasks may have
        // run there meanwhile (other tests of this binary, the kernel's
        // workers): their samples are theirs.
        let busy = got.busy_ns();
        let total = |(user, kernel): (u64, u64)| user + kernel;
        let (ours, idle_task) = (total(got.cpu_ns(std::process::id())), total(got.cpu_ns(0)));
        let half_idle = idle.as_nanos() as u64 / 2;
        ringwire_engine::say!(
            "the core was busy {busy} ns of {window}: this process {ours}, the idle task {idle_task}"
        );
        assert!(
            busy >= spun && ours < window - half_idle && idle_task < half_idle,
            "busy {busy} ns of {window} ns: this process {ours}, the idle task {idle_task}"
        );
        for (tid, kernel_mode) in [(in_user, false), (in_kernel, true)] {
            let (user, kernel) = got.thread_cpu_ns(tid);
            ringwire_engine::say!(
                "spun {spun} ns (kernel mode: {kernel_mode}): sampled user {user} ns, kernel {kernel} ns"
            );
            let (busy, other) = if kernel_mode { (kernel, user) } else { (user, kernel) };
            // Other tasks may share the core on a busy machine: at least
            // half of the time is its own. It cannot have run for longer
            // than it spun (plus some rounding).
            assert!(busy >= spun / 2, "{busy} ns of {spun} in its mode: {got:?}");
            assert!(busy + other <= spun + spun / 10, "user {user} ns, kernel {kernel} ns of {spun}");
            assert!(other < busy / 4, "user {user} ns, kernel {kernel} ns");
        }
        let (p_user, p_kernel) = got.cpu_ns(std::process::id());
        // Dropped without `finish` (a measurement that failed): its thread
        // and its events end with it.
        let samplers = || {
            std::fs::read_dir("/proc/self/task")
                .expect("tasks")
                .filter(|t| {
                    let comm = t.as_ref().map(|t| t.path().join("comm")).ok();
                    comm.and_then(|c| std::fs::read_to_string(c).ok()).is_some_and(|c| c.trim() == "rw-cpusample")
                })
                .count()
        };
        let s = CoreSampler::start(&[core], Duration::from_micros(100)).expect("sampler");
        // The thread names itself once it runs.
        let named = std::time::Instant::now();
        while samplers() == 0 && named.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(samplers(), 1);
        drop(s);
        assert_eq!(samplers(), 0, "the sampler's thread ended with it");
        let (t_user, _) = got.thread_cpu_ns(in_user);
        let (_, t_kernel) = got.thread_cpu_ns(in_kernel);
        assert!(p_user >= t_user && p_kernel >= t_kernel, "the process holds its threads' samples");
    }
}
