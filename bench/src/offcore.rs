//! How long a busy-polling thread was kept off its core, from the kernel's
//! own accounting.
//!
//! A thread that never sleeps should run all the time. What it did not run
//! is `wall - cpu` (its `schedstat` CPU time, which leaves out time the
//! hypervisor took from the virtual CPU, and interrupts): of that, the
//! scheduler counts the time it waited while another task of this machine
//! had the core (`run_delay`); the rest went to the hypervisor (steal) or to
//! interrupts. The core's own steal count (`/proc/stat`, in ticks) is
//! reported beside it as a coarse check.

use std::io;
use std::time::Instant;

pub use ringwire_engine::sys::{parse_schedstat, ThreadTimes};

/// A thread's times now.
///
/// # Errors
/// The file cannot be read (the thread is gone) or does not parse.
pub fn thread_times(pid: u32, tid: u32) -> io::Result<ThreadTimes> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))?;
    parse_schedstat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "schedstat does not parse"))
}

/// The ids of `pid`'s threads whose name starts with `prefix`, in id order.
#[must_use]
pub fn threads_named(pid: u32, prefix: &str) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .collect();
    tids.sort_unstable();
    tids
}

/// The steal ticks of `core` in `/proc/stat` text (the eighth value of its
/// `cpuN` line).
#[must_use]
pub fn parse_steal_ticks(stat: &str, core: usize) -> Option<u64> {
    let name = format!("cpu{core}");
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// Nanoseconds the hypervisor has taken from `core` so far, as `/proc/stat`
/// counts it (in clock ticks).
///
/// # Errors
/// `/proc/stat` cannot be read or has no such core.
pub fn core_steal_ns(core: usize) -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks = parse_steal_ticks(&stat, core)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no cpu{core} line in /proc/stat")))?;
    // SAFETY: sysconf(3) reads a constant.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1);
    Ok(ticks * (1_000_000_000 / hz))
}

/// What a busy-polling thread lost of its core over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OffCore {
    /// The window.
    pub wall_ns: u64,
    /// Time the thread did not run in it (`wall - cpu`).
    pub away_ns: u64,
    /// Of `away_ns`, time another task of this machine had the core.
    pub preempted_ns: u64,
    /// Of `away_ns`, the rest: the hypervisor (steal) and interrupts.
    pub host_ns: u64,
    /// The core's steal time over the window (`/proc/stat`, whole ticks).
    pub steal_ns: u64,
}

/// A window over one thread, started with [`OffCoreProbe::start`].
#[derive(Debug, Clone, Copy)]
pub struct OffCoreProbe {
    pid: u32,
    tid: u32,
    core: usize,
    t0: Instant,
    times0: ThreadTimes,
    steal0: u64,
}

impl OffCoreProbe {
    /// Start watching thread `tid` of `pid`, which busy-polls on `core`.
    ///
    /// # Errors
    /// Its `schedstat` or `/proc/stat` cannot be read.
    pub fn start(pid: u32, tid: u32, core: usize) -> io::Result<Self> {
        let steal0 = core_steal_ns(core)?;
        let times0 = thread_times(pid, tid)?;
        Ok(Self { pid, tid, core, t0: Instant::now(), times0, steal0 })
    }

    /// What the thread lost of its core since the start.
    ///
    /// # Errors
    /// Its `schedstat` or `/proc/stat` cannot be read (the thread ended).
    pub fn finish(&self) -> io::Result<OffCore> {
        let times = thread_times(self.pid, self.tid)?;
        let wall_ns = u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let steal = core_steal_ns(self.core)?;
        let away_ns = wall_ns.saturating_sub(times.cpu_ns.saturating_sub(self.times0.cpu_ns));
        let preempted_ns = times.run_delay_ns.saturating_sub(self.times0.run_delay_ns).min(away_ns);
        Ok(OffCore {
            wall_ns,
            away_ns,
            preempted_ns,
            host_ns: away_ns - preempted_ns,
            steal_ns: steal.saturating_sub(self.steal0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_kernel_s_text_parses() {
        assert_eq!(parse_schedstat("123456 789 42\n"), Some(ThreadTimes { cpu_ns: 123_456, run_delay_ns: 789 }));
        assert_eq!(parse_schedstat("12 x 3"), None);
        assert_eq!(parse_schedstat(""), None);
        let stat = "cpu  1 2 3 4 5 6 7 99 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 10 20 30 40 50 60 70 80 0 0\nintr 1\n";
        assert_eq!(parse_steal_ticks(stat, 0), Some(8));
        assert_eq!(parse_steal_ticks(stat, 1), Some(80));
        assert_eq!(parse_steal_ticks(stat, 2), None);
    }

    /// A thread that spins, sleeps 150 ms, and spins again: the sleep is
    /// time away from its core, and not time another task had it.
    #[test]
    fn a_thread_s_time_off_its_core_is_measured() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("offcore-test".into())
            .spawn(move || {
                // SAFETY: gettid(2) has no arguments and cannot fail.
                let tid = unsafe { libc::gettid() } as u32;
                tid_tx.send(tid).unwrap();
                go_rx.recv().unwrap();
                let spin = |d: Duration| {
                    let end = Instant::now() + d;
                    while Instant::now() < end {
                        std::hint::spin_loop();
                    }
                };
                spin(Duration::from_millis(50));
                std::thread::sleep(Duration::from_millis(150));
                spin(Duration::from_millis(50));
                done_tx.send(()).unwrap();
                exit_rx.recv().unwrap();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        assert_eq!(threads_named(std::process::id(), "offcore-test"), vec![tid]);
        let probe = OffCoreProbe::start(std::process::id(), tid, 0).unwrap();
        go_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        let off = probe.finish().unwrap();
        exit_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(off.wall_ns >= 250_000_000, "{off:?}");
        assert!(off.away_ns >= 140_000_000, "the sleep is time away: {off:?}");
        assert!(off.preempted_ns <= off.away_ns && off.host_ns == off.away_ns - off.preempted_ns, "{off:?}");
    }
}
