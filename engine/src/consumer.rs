//! Queued consumers: frames copied into pooled chunks, handed over bounded
//! lock-free queues (one pair per worker, so each is single-producer), and
//! written by the consumer's own thread.
//!
//! ```text
//! worker:   append record to its current chunk; at the end of each batch
//!           full.push(chunk), take a free chunk for the next   (none: count queue-dropped)
//! consumer: full.pop() ─ write the chunk ─ free.push()
//! ```
//! The worker reuses the chunk freed last (see [`Producer`]), so while the
//! consumer keeps up, the same few chunks circulate and stay in the cache;
//! the rest of the pool is there for bursts.
//!
//! A chunk holds records in pcap's own layout (16-byte record header, then
//! the bytes), so the pcap writer writes a whole chunk with one `write`,
//! and the queue is touched once per batch, not once per frame. Every chunk
//! is allocated up front; nothing is allocated per frame.

use std::{
    mem::MaybeUninit,
    path::PathBuf,
    sync::{
        atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, OnceLock,
    },
    thread::Thread,
    time::Duration,
};

use crossbeam_queue::ArrayQueue;

use crate::{
    config::OnWriteError,
    pcapio::{output_name, record_header, PcapIoError, PcapWriter, RECORD_HEADER},
    stats::{sink, Cells},
    sys,
};

/// Smallest chunk: large enough that a chunk's write is one efficient
/// syscall (about 85 frames of 1514 B), small enough that the few chunks
/// in circulation stay in the cache.
pub const MIN_CHUNK: usize = 128 << 10;

/// The chunk size for a consumer with this snaplen: room for at least one
/// whole record, in whole pages.
#[must_use]
pub fn chunk_size(snaplen: u32) -> usize {
    MIN_CHUNK.max((snaplen as usize + RECORD_HEADER).next_multiple_of(4096))
}

/// How long a worker waits for room for a frame from a file (a queue's free
/// chunk, a TX ring's slot) before it drops the frame: `patience` (with no
/// end if it does not fit in an `Instant`), or, once the engine stops,
/// [`STOP_GRACE`] from then. A consumer that still frees room gets the
/// frames of the file's segments in progress, so a stopped run's file is a
/// prefix of its source without a gap; one that is stuck does not hold the
/// stop up.
///
/// Between tries the worker yields, then sleeps ever longer (up to 1 ms): a
/// consumer held up for seconds (a pipe's reader that does not read) costs
/// no core.
pub struct LosslessWait<'a> {
    deadline: Option<std::time::Instant>,
    stop: &'a AtomicBool,
    tries: u32,
}

/// How long a lossless wait goes on once the engine stops.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

impl<'a> LosslessWait<'a> {
    /// A wait of `patience`, shortened when `stop` is raised.
    #[must_use]
    pub fn new(patience: Duration, stop: &'a AtomicBool) -> Self {
        Self { deadline: std::time::Instant::now().checked_add(patience), stop, tries: 0 }
    }

    /// Whether to give up now.
    pub fn over(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self.stop.load(Ordering::Relaxed) {
            let grace = now + STOP_GRACE;
            self.deadline = Some(self.deadline.map_or(grace, |d| d.min(grace)));
        }
        self.deadline.is_some_and(|d| now > d)
    }

    /// Let the other side run before the next try: a yield for the first
    /// tries, then sleeps doubling from 16 µs to 1 ms.
    pub fn pause(&mut self) {
        const YIELDS: u32 = 64;
        self.tries = self.tries.saturating_add(1);
        match self.tries.checked_sub(YIELDS) {
            None => std::thread::yield_now(),
            Some(n) => std::thread::sleep(Duration::from_micros(16u64 << n.min(6))),
        }
    }
}

/// Copy `src` to the start of `dst` (uninitialised spare capacity).
#[inline(always)]
fn put(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    let dst = &mut dst[..src.len()];
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; `dst` is exactly
    // `src.len()` bytes (sliced above), and a `&mut` never overlaps `src`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) }
}

/// Records laid end to end in pcap layout, with each record's port.
#[derive(Debug)]
pub struct Chunk {
    buf: Vec<u8>,
    ports: Vec<u16>,
    mark: Option<Mark>,
}

/// Which segment of a file shared by several workers a chunk's records
/// come from (see [`crate::pcapio::SharedPcapReader`]): the sink of an
/// ordered output writes segments in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The file's port.
    pub port: u16,
    /// The segment's number.
    pub seq: u64,
    /// The segment's last chunk (it may hold no record).
    pub last: bool,
}

impl Chunk {
    fn new(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity), ports: Vec::with_capacity(capacity / RECORD_HEADER), mark: None }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ports.clear();
        self.mark = None;
    }

    /// Number of records.
    #[must_use]
    pub fn records(&self) -> usize {
        self.ports.len()
    }

    /// The record at byte `at`: (ts_ns, captured length, wire length).
    #[inline]
    fn header_at(&self, at: usize) -> (u64, usize, u32) {
        let h = self.buf[at..at + RECORD_HEADER].try_into().expect("a record header");
        let [sec, nsec, incl, orig] = crate::pcapio::record_words(h, false);
        (u64::from(sec) * 1_000_000_000 + u64::from(nsec), incl as usize, orig)
    }

    /// Iterate over (port, ts_ns, wire_len, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64, u32, &[u8])> {
        let mut off = 0;
        self.ports.iter().map(move |&port| {
            let (ts_ns, incl, orig) = self.header_at(off);
            let data = &self.buf[off + RECORD_HEADER..off + RECORD_HEADER + incl];
            off += RECORD_HEADER + incl;
            (port, ts_ns, orig, data)
        })
    }

    /// Bytes of the first `n` records.
    fn prefix_len(&self, n: usize) -> usize {
        self.span(0, n, usize::MAX).1
    }

    /// From the record at byte `off`: how many records, at most `max`, and
    /// their bytes, up to and including the one that reaches `room` bytes.
    fn span(&self, off: usize, max: usize, room: usize) -> (usize, usize) {
        let (mut n, mut len) = (0, 0);
        while n < max && len < room {
            len += RECORD_HEADER + self.header_at(off + len).1;
            n += 1;
        }
        (n, len)
    }
}

/// Wakes a sink thread that sleeps because its queues are empty.
///
/// The sink parks instead of polling with short sleeps (timer wake-ups are
/// what an idle consumer would otherwise spend its CPU on). A producer that
/// publishes a chunk unparks it, once per batch, and only when it sleeps:
/// the SeqCst fences pair so either the producer sees `sleeping` or the sink
/// sees the chunk (and `unpark` before `park` is never lost).
#[derive(Debug, Default)]
pub struct SinkWaker {
    thread: OnceLock<Thread>,
    sleeping: AtomicBool,
}

impl SinkWaker {
    /// Wake the sink if it sleeps.
    #[inline]
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.unpark();
        }
    }

    /// Wake the sink unconditionally (shutdown).
    pub fn unpark(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// One worker's queue to one consumer, with its pool of free chunks.
#[derive(Debug)]
pub struct Channel {
    full: ArrayQueue<Box<Chunk>>,
    free: ArrayQueue<Box<Chunk>>,
    chunk_size: usize,
    waker: Arc<SinkWaker>,
    /// The producer's promise: every frame from an interface it queues from
    /// now on has a timestamp at or after this (ns since the epoch). A sink
    /// merging several workers in time order writes what is older.
    bound: AtomicU64,
    /// How many interface rings the producer reads (stored before `bound`):
    /// with more than one, its records are in time order per ring, not
    /// among themselves, and only its promise bounds what it still brings.
    rings: AtomicU64,
    /// Its sink merges it with other workers' channels in time order (see
    /// [`Channel::merged`]): only then is `bound` kept.
    merged: bool,
}

impl Channel {
    /// A channel of `chunks` chunks of `chunk_size` bytes each, whose sink `waker` wakes.
    #[must_use]
    pub fn new(chunks: usize, chunk_size: usize, waker: Arc<SinkWaker>) -> Self {
        let free = ArrayQueue::new(chunks);
        for _ in 0..chunks {
            let _ = free.push(Box::new(Chunk::new(chunk_size)));
        }
        Self {
            full: ArrayQueue::new(chunks),
            free,
            chunk_size,
            waker,
            bound: AtomicU64::new(0),
            rings: AtomicU64::new(1),
            merged: false,
        }
    }

    /// The channel of one of several workers into an output with one order
    /// (see [`SinkOutput::one_order`]): its sink merges the workers' records
    /// in time order, and the worker keeps its promise (see [`Producer::promise`]).
    #[must_use]
    pub fn merged(mut self, on: bool) -> Self {
        self.merged = on;
        self
    }

    /// The consumer's side: the producer's promise (see [`Producer::promise`]),
    /// read before taking its chunks: every chunk published before it was
    /// made is then visible.
    pub fn bound(&self) -> u64 {
        self.bound.load(Ordering::Acquire)
    }

    /// The consumer's side: whether the producer reads several interface
    /// rings, as it said with its last promise (read after [`Channel::bound`]).
    pub fn several_rings(&self) -> bool {
        self.rings.load(Ordering::Relaxed) > 1
    }

    /// The consumer's side: the oldest published chunk, if any.
    pub fn take(&self) -> Option<Box<Chunk>> {
        self.full.pop()
    }

    /// The consumer's side: return a chunk, once written, to the producer's pool.
    pub fn give_back(&self, mut chunk: Box<Chunk>) {
        chunk.clear();
        let _ = self.free.push(chunk);
    }
}

/// The worker's end of a [`Channel`]: the chunk it is filling.
#[derive(Debug)]
pub struct Producer {
    channel: Arc<Channel>,
    current: Option<Box<Chunk>>,
    /// Free chunks taken from the channel, the one freed last on top.
    /// Boxed as they travel through the queues: unboxing would reallocate.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Chunk>>,
    snaplen: usize,
    /// The shared-file segment being produced: (port, seq).
    segment: Option<(u16, u64)>,
}

impl Producer {
    /// A producer that keeps at most `snaplen` bytes of each frame.
    #[must_use]
    pub fn new(channel: Arc<Channel>, snaplen: usize) -> Self {
        let snaplen = snaplen.min(channel.chunk_size - RECORD_HEADER);
        let spare = Vec::with_capacity(channel.free.capacity());
        Self { channel, current: None, spare, snaplen, segment: None }
    }

    /// A free chunk, the one freed last: while the consumer keeps up, a
    /// handful of chunks circulate and stay in the cache (taking the
    /// queue's oldest, as a FIFO hands them out, walks the whole pool and
    /// copies every frame into memory that has long left the cache: at
    /// 1514 B that doubled user time per frame and lost 15 % of the frames
    /// written, `ringwire-bench --sizes 1514 --tools ringwire-pcap`).
    #[inline]
    fn next_free(&mut self) -> Option<Box<Chunk>> {
        // The queue holds chunks in the order they were freed: moved over
        // one by one, the newest ends on top. `spare` has room for every
        // chunk of the pool, so this never allocates.
        while let Some(c) = self.channel.free.pop() {
            self.spare.push(c);
        }
        self.spare.pop()
    }

    /// Append a frame; `false` when no chunk has room (the frame is dropped).
    #[inline]
    pub fn offer(&mut self, data: &[u8], wire_len: u32, ts_ns: u64, port: u16) -> bool {
        self.offer_batch(std::iter::once((data, wire_len, ts_ns)), port) == 1
    }

    /// Append frames of one port, `(data, wire_len, ts_ns)`, in order, and
    /// say how many were taken: the first ones, up to the frame for which
    /// no chunk had room (that one and the rest are dropped; the caller
    /// counts them). The chunk's lengths are brought up to date once a
    /// chunk, not once a frame.
    #[inline]
    pub fn offer_batch<'a>(&mut self, frames: impl IntoIterator<Item = (&'a [u8], u32, u64)>, port: u16) -> u64 {
        let snaplen = self.snaplen;
        let mut frames = frames.into_iter();
        let Some(mut next) = frames.next() else { return 0 };
        let mut taken = 0;
        loop {
            let need = RECORD_HEADER + next.0.len().min(snaplen);
            let mut fresh = false;
            if self.current.as_ref().is_none_or(|c| c.buf.capacity() - c.buf.len() < need) {
                self.publish();
                if self.current.is_none() {
                    self.current = self.next_free();
                    fresh = true;
                }
            }
            let Some(c) = self.current.as_mut() else { return taken };
            let start = c.buf.len();
            let spare = c.buf.spare_capacity_mut();
            let (mut off, mut n) = (0, 0);
            let more = loop {
                let (data, wire_len, ts_ns) = next;
                let incl = data.len().min(snaplen);
                let end = off + RECORD_HEADER + incl;
                if end > spare.len() {
                    break true;
                }
                put(&mut spare[off..], &record_header(ts_ns, incl, wire_len));
                put(&mut spare[off + RECORD_HEADER..], &data[..incl]);
                (off, n) = (end, n + 1);
                match frames.next() {
                    Some(f) => next = f,
                    None => break false,
                }
            };
            // SAFETY: the `off` bytes after `start` were written just above,
            // within the spare capacity (`end <= spare.len()`).
            unsafe { c.buf.set_len(start + off) };
            // Every record takes at least RECORD_HEADER bytes, and `ports`
            // was made with room for that many: no reallocation.
            c.ports.resize(c.ports.len() + n, port);
            taken += n as u64;
            // A fresh chunk has room for any record (`snaplen` is capped
            // below the chunk size): no progress there means nothing would fit.
            if !more || (fresh && n == 0) {
                return taken;
            }
        }
    }

    /// Like [`Producer::offer`], but when no chunk is free, wake the consumer
    /// and wait for one (file sources: no deadline, so no reason to drop).
    /// Gives up, and the frame is dropped and counted, if the consumer frees
    /// nothing for `patience` or `stop` is raised.
    pub fn offer_waiting(
        &mut self,
        data: &[u8],
        wire_len: u32,
        ts_ns: u64,
        port: u16,
        patience: Duration,
        stop: &AtomicBool,
    ) -> bool {
        self.offer(data, wire_len, ts_ns, port) || self.retry(patience, stop, |p| p.offer(data, wire_len, ts_ns, port))
    }

    /// Retry `attempt` while the consumer is woken to free a chunk, until it
    /// succeeds or the wait is over (see [`LosslessWait`]).
    fn retry(&mut self, patience: Duration, stop: &AtomicBool, mut attempt: impl FnMut(&mut Self) -> bool) -> bool {
        let mut wait = LosslessWait::new(patience, stop);
        loop {
            self.channel.waker.unpark();
            wait.pause();
            if attempt(self) {
                return true;
            }
            if wait.over() {
                return false;
            }
        }
    }

    /// Promise the consumer that every frame from an interface queued from
    /// now on has a timestamp at or after `ts_ns` (made after publishing
    /// the frames before it).
    /// `rings`: how many interface rings the producer reads.
    #[inline]
    pub fn promise(&self, ts_ns: u64, rings: usize) {
        if self.channel.merged {
            self.channel.rings.store(rings as u64, Ordering::Relaxed);
            self.channel.bound.store(ts_ns, Ordering::Release);
        }
    }

    /// Whether its sink merges it with other workers' records in time order.
    #[must_use]
    pub fn merged(&self) -> bool {
        self.channel.merged
    }

    /// Hand the current chunk, if it holds anything, to the consumer thread.
    #[inline]
    pub fn publish(&mut self) {
        if self.current.as_ref().is_some_and(|c| c.records() > 0) {
            if let Some(mut c) = self.current.take() {
                c.mark = self.segment.map(|(port, seq)| Mark { port, seq, last: false });
                self.push(c);
            }
        }
    }

    /// Hand over the chunk being filled, unless the consumer still holds a
    /// chunk handed over before (queued, or being written: it is behind):
    /// then the chunk fills on and goes when full, so that a slow or stalled
    /// consumer's queue holds its `queue_mb` of frames, not a chunk per
    /// batch of a few frames. (A consumer that keeps up gets each batch at
    /// once.) A channel merged by time with other workers' always hands
    /// over: its sink's order needs every frame queued before a promise.
    pub fn publish_unless_behind(&mut self) {
        let free = self.spare.len() + self.channel.free.len() + usize::from(self.current.is_some());
        if self.channel.merged || free >= self.channel.free.capacity() {
            self.publish();
        }
    }

    fn push(&self, c: Box<Chunk>) {
        // Cannot fail: there are as many places in the queue as chunks.
        let _ = self.channel.full.push(c);
        self.channel.waker.wake();
    }

    /// The frames offered from now on belong to segment `seq` of the shared
    /// file on `port`.
    pub fn begin_segment(&mut self, port: u16, seq: u64) {
        self.publish();
        self.segment = Some((port, seq));
    }

    /// The segment begun last is complete: hand over its last chunk, marked
    /// as such even when it holds no record, so an ordered sink can move on
    /// to the next segment. Waits like [`Producer::offer_waiting`] for a
    /// free chunk; `false` if none came (the sink then writes what it holds
    /// back when the producers are done).
    pub fn end_segment(&mut self, patience: Duration, stop: &AtomicBool) -> bool {
        let Some((port, seq)) = self.segment.take() else { return true };
        let take = |p: &mut Self| {
            if p.current.is_none() {
                p.current = p.next_free();
            }
            p.current.is_some()
        };
        if !take(self) && !self.retry(patience, stop, take) {
            return false;
        }
        if let Some(mut c) = self.current.take() {
            c.mark = Some(Mark { port, seq, last: true });
            self.push(c);
        }
        true
    }
}

impl SinkOutput {
    /// Whether the output has one order of records (one file, printed
    /// lines), rather than a file per worker.
    #[must_use]
    pub fn one_order(&self) -> bool {
        match self {
            Self::Pcap(p) => !p.split,
            Self::Print { .. } => true,
        }
    }
}

/// Where a queued consumer's frames go.
pub enum SinkOutput {
    /// pcap file(s).
    Pcap(PcapOutput),
    /// One summary line per frame on stdout.
    Print {
        /// Port names, for the lines.
        port_names: Vec<String>,
        /// What else each line shows.
        printer: crate::print::Printer,
        /// Where the lines go.
        lines: Lines,
    },
}

/// The lines a `print` consumer has made and not yet written out, and
/// where they go (standard output). They go out with plain `write`s, so
/// after a failure it is known which lines went out whole: only those
/// count as written.
pub struct Lines {
    out: std::fs::File,
    buf: Vec<u8>,
    /// Per line: where it ends in `buf`, and its frame's captured length.
    ends: Vec<(usize, usize)>,
}

/// What writing out the pending lines did.
struct LinesOut {
    /// Lines that went out whole, and their frames' bytes.
    lines: u64,
    bytes: u64,
    /// Lines that did not, and why.
    unsent: u64,
    error: Option<std::io::Error>,
}

impl Lines {
    /// Pending lines are written out once they reach this size.
    const FLUSH_AT: usize = 64 << 10;

    /// Lines for standard output.
    ///
    /// # Errors
    /// Standard output cannot be duplicated (no descriptor left).
    pub fn stdout() -> Result<Self, PcapIoError> {
        Ok(Self::new(crate::pcapio::stdout_file()?))
    }

    fn new(out: std::fs::File) -> Self {
        Self { out, buf: Vec::with_capacity(Self::FLUSH_AT + 4096), ends: Vec::new() }
    }

    fn push(&mut self, line: &str, frame_len: usize) {
        self.buf.extend_from_slice(line.as_bytes());
        self.ends.push((self.buf.len(), frame_len));
    }

    fn pending(&self) -> u64 {
        self.ends.len() as u64
    }

    fn write_out(&mut self) -> LinesOut {
        let (sent, error) = crate::pcapio::write_counted(&mut self.out, &self.buf);
        let whole = self.ends.partition_point(|&(end, _)| end <= sent);
        let out = LinesOut {
            lines: whole as u64,
            bytes: self.ends[..whole].iter().map(|&(_, len)| len as u64).sum(),
            unsent: (self.ends.len() - whole) as u64,
            error,
        };
        self.buf.clear();
        self.ends.clear();
        out
    }
}

/// pcap output with optional rotation and per-worker split.
pub struct PcapOutput {
    base: PathBuf,
    snaplen: u32,
    rotate_bytes: u64,
    /// Files kept per writer (0: all).
    keep: u32,
    split: bool,
    writers: Vec<PcapWriter>,
    rotations: Vec<u32>,
    /// Every file written and not removed, in the order they were started.
    files: Vec<PathBuf>,
    /// Files opened, removed ones included.
    opened: u64,
    /// The removal of the oldest file in progress (`rotate_files`).
    unlinking: Option<std::thread::JoinHandle<()>>,
    /// `rotate_s`: a new file, named by strftime, this often (0: never).
    rotate_secs: u64,
    /// When the file being written was started.
    started: std::time::Instant,
}

impl Drop for PcapOutput {
    fn drop(&mut self) {
        if let Some(h) = self.unlinking.take() {
            let _ = h.join();
        }
    }
}

impl SinkOutput {
    /// Truncate the output file(s) opened for this sink and write their
    /// headers: called as the sink starts, once everything else the engine
    /// needed was built.
    ///
    /// # Errors
    /// The file that could not be written.
    pub fn begin(&mut self) -> Result<(), PcapIoError> {
        match self {
            Self::Pcap(p) => p.writers.iter_mut().try_for_each(PcapWriter::begin),
            Self::Print { .. } => Ok(()),
        }
    }
}

impl PcapOutput {
    /// Open the output file(s) now, so an unwritable path fails at start-up;
    /// they are truncated and written to from [`SinkOutput::begin`] on, once
    /// the engine starts (until then an existing file is left as it was).
    ///
    /// # Errors
    /// The file that could not be created.
    pub fn create(
        base: PathBuf,
        snaplen: u32,
        rotate_mb: u64,
        rotate_files: u32,
        split_workers: Option<usize>,
        rotate_secs: u64,
    ) -> Result<Self, PcapIoError> {
        if rotate_mb > 0 || split_workers.is_some() {
            crate::pcapio::check_series(&base)?;
        }
        let n = split_workers.unwrap_or(1);
        let mut writers = Vec::with_capacity(n);
        let mut files = Vec::new();
        for w in 0..n {
            let path = if rotate_secs > 0 {
                timed_name(&base, std::time::SystemTime::now())
            } else {
                output_name(&base, split_workers.map(|_| w), 0)
            };
            writers.push(PcapWriter::open(&path, snaplen)?);
            files.push(path);
        }
        Ok(Self {
            base,
            snaplen,
            rotate_bytes: rotate_mb.saturating_mul(1 << 20),
            keep: rotate_files,
            split: split_workers.is_some(),
            rotations: vec![0; n],
            writers,
            opened: files.len() as u64,
            files,
            unlinking: None,
            rotate_secs,
            started: std::time::Instant::now(),
        })
    }

    /// `rotate_s`: whether the file being written has had its time.
    fn time_is_up(&self) -> bool {
        self.rotate_secs > 0 && self.started.elapsed().as_secs() >= self.rotate_secs
    }

    /// `rotate_s`: start the next file, named for now; `false` when
    /// `rotate_files` files were written, and nothing more is to be (as
    /// tcpdump's -G with -W). A name the pattern gives again (one coarser
    /// than the period) goes on in the same file rather than overwrite it.
    fn rotate_by_time(&mut self) -> Result<bool, PcapIoError> {
        self.started = std::time::Instant::now();
        if self.keep > 0 && self.opened >= u64::from(self.keep) {
            self.writers[0].flush()?;
            return Ok(false);
        }
        let path = timed_name(&self.base, std::time::SystemTime::now());
        if self.files.last() == Some(&path) {
            return Ok(true);
        }
        self.writers[0].flush()?;
        self.writers[0] = PcapWriter::create(&path, self.snaplen)?;
        self.files.push(path);
        self.opened += 1;
        Ok(true)
    }

    /// Whether it writes to standard output (`-`).
    #[must_use]
    pub fn is_stdout(&self) -> bool {
        crate::pcapio::is_stdio(&self.base)
    }

    /// Every file written so far (and not removed by `rotate_files`).
    #[must_use]
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Write the first `records` records of a chunk from worker `worker`.
    /// With rotation, a file ends with the record that brings it to the
    /// size (as tcpdump's -C), even within a chunk.
    /// On failure, how many records were written before it, and the error.
    fn write(&mut self, worker: usize, chunk: &Chunk, records: usize) -> Result<(), (usize, PcapIoError)> {
        let i = if self.split { worker.min(self.writers.len() - 1) } else { 0 };
        if self.rotate_bytes == 0 {
            let len = if records == chunk.records() { chunk.buf.len() } else { chunk.prefix_len(records) };
            return self.writers[i].write_records(&chunk.buf[..len]);
        }
        let (mut done, mut off) = (0, 0);
        while done < records {
            self.rotate_if_full(i).map_err(|e| (done, e))?;
            let room = usize::try_from(self.rotate_bytes - self.writers[i].bytes()).unwrap_or(usize::MAX);
            let (n, len) = chunk.span(off, records - done, room);
            self.writers[i].write_records(&chunk.buf[off..off + len]).map_err(|(n, e)| (done + n, e))?;
            (done, off) = (done + n, off + len);
        }
        Ok(())
    }

    /// Start writer `i`'s next file if this one has reached the size. A
    /// file that cannot be created is tried again, under the same number,
    /// with the next records.
    fn rotate_if_full(&mut self, i: usize) -> Result<(), PcapIoError> {
        if self.writers[i].bytes() < self.rotate_bytes {
            return Ok(());
        }
        self.writers[i].flush()?;
        let (worker, next) = (self.split.then_some(i), self.rotations[i] + 1);
        // The oldest file goes first: on a full disk, its space is what the next one needs.
        if self.keep > 0 && next >= self.keep {
            let oldest = output_name(&self.base, worker, next - self.keep);
            if self.files.contains(&oldest) {
                self.files.retain(|f| *f != oldest);
                self.remove(oldest);
            }
        }
        let path = output_name(&self.base, worker, next);
        let writer = PcapWriter::create(&path, self.snaplen).or_else(|e| match self.unlinking.take() {
            // The disk may be full until that removal is done.
            Some(h) => {
                let _ = h.join();
                PcapWriter::create(&path, self.snaplen)
            }
            None => Err(e),
        })?;
        self.writers[i] = writer;
        self.rotations[i] = next;
        self.files.push(path);
        self.opened += 1;
        Ok(())
    }

    /// Remove a file `rotate_files` no longer keeps: on a helper thread, as
    /// unlinking a large file takes a while and this thread may be
    /// real-time with frames waiting (here if no thread can be started).
    fn remove(&mut self, path: PathBuf) {
        fn unlink(path: &std::path::Path) {
            match std::fs::remove_file(path) {
                // Removed by someone else: as wanted.
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "rotate_files: cannot remove the oldest file")
                }
            }
        }
        if let Some(h) = self.unlinking.take() {
            let _ = h.join();
        }
        let p = path.clone();
        match std::thread::Builder::new().name("rw-unlink".into()).spawn(move || unlink(&p)) {
            Ok(h) => self.unlinking = Some(h),
            Err(_) => unlink(&path),
        }
    }

    fn flush(&mut self) -> Result<(), PcapIoError> {
        self.writers.iter_mut().try_for_each(PcapWriter::flush)
    }
}

/// `pattern` run through strftime(3) at local time `t` (`rotate_s`'s file names).
fn timed_name(pattern: &std::path::Path, t: std::time::SystemTime) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    let Ok(fmt) = std::ffi::CString::new(pattern.as_os_str().as_bytes()) else { return pattern.to_path_buf() };
    // SAFETY: tm is plain old data; all-zero is valid, and localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return pattern.to_path_buf();
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` has `buf.len()` writable bytes, `fmt` is NUL-terminated and `tm` filled.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    if n == 0 {
        return pattern.to_path_buf();
    }
    buf.truncate(n);
    PathBuf::from(std::ffi::OsString::from_vec(buf))
}

/// What a sink thread needs.
pub struct SinkTask {
    /// Consumer name.
    pub name: String,
    /// The output.
    pub output: SinkOutput,
    /// One channel per worker.
    pub channels: Vec<Arc<Channel>>,
    /// Counters this thread writes.
    pub counters: Arc<Cells<{ sink::N }>>,
    /// Set once every worker has exited: drain, flush and stop.
    pub producers_done: Arc<AtomicBool>,
    /// How producers (and shutdown) wake this sink.
    pub waker: Arc<SinkWaker>,
    /// Stop writing after this many frames.
    pub limit: Option<u64>,
    /// Raised when the limit is reached, the output is gone (stdout
    /// closed) or, with [`OnWriteError::Stop`], a write failed.
    pub limit_hit: Arc<AtomicBool>,
    /// What a failed write does.
    pub on_write_error: OnWriteError,
    /// The thread's nice value (`engine.consumer_nice`; 0: as started).
    pub nice: i8,
    /// The thread's `SCHED_FIFO` priority (`engine.consumer_rt_priority`
    /// while a port is an interface; 0: normally scheduled). The engine
    /// changes it when ports come and go, and wakes the thread, which
    /// applies it before its next drain.
    pub rt_priority: Arc<AtomicU8>,
}

/// A sink's output and what it has counted.
struct SinkState {
    name: String,
    output: SinkOutput,
    limit: Option<u64>,
    limit_hit: Arc<AtomicBool>,
    local: [u64; sink::N],
    /// The output's reader has gone: nothing more is written.
    closed: bool,
    /// The output failed for good (a write failed with
    /// [`OnWriteError::Stop`]; `rotate_s`: its next file could not be
    /// created): what comes is counted as write errors.
    broken: bool,
    line: String,
    first_error: Option<String>,
    on_write_error: OnWriteError,
    /// [`OnWriteError::Continue`]: writes failed (a gap in the output, told
    /// once writing has worked again for a while).
    gap: Option<Gap>,
    dirty: bool,
}

/// A run of failed writes ([`OnWriteError::Continue`]): on a disk that is
/// nearly full, a write may fit between failures; the gap ends once writes
/// have worked for [`Gap::SETTLED`].
struct Gap {
    /// The first failure.
    since: std::time::Instant,
    /// Frames not written in it.
    lost: u64,
    /// The first write that worked since its last failure.
    working_since: Option<std::time::Instant>,
}

impl Gap {
    const SETTLED: Duration = Duration::from_secs(1);
}

/// Whether `e` comes from writing to a pipe whose reader is gone (`EPIPE`).
fn broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        cur = err.source();
    }
    false
}

impl SinkState {
    fn new(
        name: String,
        output: SinkOutput,
        limit: Option<u64>,
        limit_hit: Arc<AtomicBool>,
        on_write_error: OnWriteError,
    ) -> Self {
        let mut local = [0; sink::N];
        if let SinkOutput::Pcap(p) = &output {
            local[sink::FILES] = p.opened;
        }
        Self {
            name,
            output,
            limit,
            limit_hit,
            local,
            closed: false,
            broken: false,
            line: String::with_capacity(256),
            first_error: None,
            on_write_error,
            gap: None,
            dirty: false,
        }
    }

    /// Write a chunk from worker `worker` (up to the limit), and count it.
    fn write(&mut self, worker: usize, chunk: &Chunk) {
        let n = chunk.records() as u64;
        if self.closed {
            self.local[sink::OUTPUT_CLOSED] += n;
            return;
        }
        if self.broken {
            self.local[sink::WRITE_ERRORS] += n;
            return;
        }
        // Frames taken so far: written, or in lines waiting to go out.
        let taken = self.local[sink::WRITTEN] + self.pending_lines();
        let room = match self.limit {
            _ if self.limit_hit.load(Ordering::Relaxed) => 0,
            Some(l) => l.saturating_sub(taken),
            None => n,
        };
        let take = n.min(room);
        self.local[sink::OVER_LIMIT] += n - take;
        if take == 0 {
            return;
        }
        match &mut self.output {
            SinkOutput::Pcap(p) if p.time_is_up() => match p.rotate_by_time() {
                Ok(true) => {}
                // `rotate_files` files written: the rest is over the limit, and the engine stops.
                Ok(false) => {
                    self.limit = Some(self.local[sink::WRITTEN]);
                    self.limit_hit.store(true, Ordering::Relaxed);
                    self.local[sink::OVER_LIMIT] += take;
                    self.local[sink::FILES] = p.opened;
                    return;
                }
                // The next file cannot be created: as tcpdump, the run ends with
                // the error, and nothing more goes into the file whose time is up.
                Err(e) => return self.give_up(take, error_chain(&e)),
            },
            _ => {}
        }
        match &mut self.output {
            SinkOutput::Pcap(p) => {
                let r = p.write(worker, chunk, take as usize);
                self.local[sink::FILES] = p.opened;
                let stdout = p.is_stdout();
                let wrote = match r {
                    Ok(()) => take,
                    Err((done, e)) => {
                        let lost = take - done as u64;
                        // The reader of `-w -` went away: stop quietly, as printing does. (A FIFO's
                        // writes fail until a new reader opens it: counted as write errors.)
                        if stdout && broken_pipe(&e) {
                            self.close(lost);
                        } else {
                            self.failed(lost, error_chain(&e));
                        }
                        done as u64
                    }
                };
                if wrote > 0 {
                    self.wrote();
                    self.local[sink::WRITTEN] += wrote;
                    // Frame bytes are the chunk's bytes less its record headers,
                    // without walking the records (unless only some were written).
                    self.local[sink::BYTES] += if wrote == n {
                        (chunk.buf.len() - chunk.records() * RECORD_HEADER) as u64
                    } else {
                        chunk.iter().take(wrote as usize).map(|r| r.3.len() as u64).sum::<u64>()
                    };
                }
            }
            SinkOutput::Print { port_names, printer, lines } => {
                for (port, ts_ns, wire_len, data) in chunk.iter().take(take as usize) {
                    self.line.clear();
                    let port = port_names.get(usize::from(port)).map_or("?", String::as_str);
                    printer.line(&mut self.line, (ts_ns, wire_len, data), port);
                    lines.push(&self.line, data.len());
                }
                self.dirty = true;
                if lines.buf.len() >= Lines::FLUSH_AT {
                    self.write_lines();
                }
            }
        }
        if self.limit.is_some_and(|l| self.local[sink::WRITTEN] + self.pending_lines() >= l) {
            self.limit_hit.store(true, Ordering::Relaxed);
        }
    }

    /// Whether it writes standard output (printed lines, `-w -`).
    fn writes_stdout(&self) -> bool {
        match &self.output {
            SinkOutput::Print { .. } => true,
            SinkOutput::Pcap(p) => p.is_stdout(),
        }
    }

    fn pending_lines(&self) -> u64 {
        match &self.output {
            SinkOutput::Print { lines, .. } => lines.pending(),
            SinkOutput::Pcap(_) => 0,
        }
    }

    /// Write out the pending printed lines, and count them.
    fn write_lines(&mut self) {
        let SinkOutput::Print { lines, .. } = &mut self.output else { return };
        let out = lines.write_out();
        if out.lines > 0 {
            self.wrote();
        }
        self.local[sink::WRITTEN] += out.lines;
        self.local[sink::BYTES] += out.bytes;
        match out.error {
            // The reader went away (`| head`): stop quietly.
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.close(out.unsent),
            Some(e) => self.failed(out.unsent, format!("stdout: {e}")),
            None => {}
        }
    }

    /// The output's reader has gone, with `unsent` frames not written: the
    /// limit is raised (the engine stops, as after `-c`) and it is not an error.
    fn close(&mut self, unsent: u64) {
        self.local[sink::OUTPUT_CLOSED] += unsent;
        self.closed = true;
        self.limit_hit.store(true, Ordering::Relaxed);
    }

    /// A write failed, losing `lost` frames: count them. With
    /// [`OnWriteError::Stop`] the output is given up and the engine told to
    /// stop; with [`OnWriteError::Continue`] the first error is logged, and
    /// later ones are only counted until writing works again.
    fn failed(&mut self, lost: u64, e: String) {
        if self.on_write_error == OnWriteError::Stop {
            return self.give_up(lost, e);
        }
        self.local[sink::WRITE_ERRORS] += lost;
        match &mut self.gap {
            Some(g) => {
                g.lost += lost;
                g.working_since = None;
            }
            None => {
                tracing::error!(
                    consumer = %self.name,
                    error = %e,
                    "write failed; going on (on_write_error = \"continue\"): frames not written are counted in write_errors"
                );
                self.gap = Some(Gap { since: std::time::Instant::now(), lost, working_since: None });
            }
        }
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// The output failed for good, losing `lost` frames: what comes is
    /// counted as write errors, and the engine is told to stop.
    fn give_up(&mut self, lost: u64, e: String) {
        self.local[sink::WRITE_ERRORS] += lost;
        if self.first_error.is_none() {
            tracing::error!(consumer = %self.name, error = %e, "write failed; stopping");
            self.first_error = Some(e);
        }
        self.broken = true;
        self.limit_hit.store(true, Ordering::Relaxed);
    }

    /// Frames were written: after failed writes, writing works again.
    fn wrote(&mut self) {
        if let Some(g) = &mut self.gap {
            g.working_since.get_or_insert_with(std::time::Instant::now);
        }
        self.settle_gap(false);
    }

    /// Once writes have worked for [`Gap::SETTLED`] after failed ones (or,
    /// `last`, as the output ends with them working), say how much the
    /// output is missing.
    fn settle_gap(&mut self, last: bool) {
        let Some(g) = &self.gap else { return };
        let Some(working) = g.working_since.filter(|w| last || w.elapsed() >= Gap::SETTLED) else { return };
        tracing::warn!(
            consumer = %self.name,
            "writing again: {} frames over {:.1} s were not written (a gap in the output; counted in write_errors)",
            g.lost,
            working.duration_since(g.since).as_secs_f64()
        );
        self.gap = None;
    }

    /// Write a chunk from worker `worker` and return it to that worker's pool.
    fn write_back(&mut self, channels: &[Arc<Channel>], worker: usize, chunk: Box<Chunk>) {
        self.write(worker, &chunk);
        channels[worker].give_back(chunk);
    }

    /// Make what was written visible (a `tail -f`, a pipe reader).
    fn flush(&mut self) {
        if let Err(e) = self.flush_output() {
            if self.first_error.is_none() && !self.closed {
                self.first_error = Some(e);
            }
        }
        self.dirty = false;
    }

    /// Write out what is buffered. When standard output's reader has gone
    /// (`| head`), the output ends quietly (see [`SinkState::close`]).
    fn flush_output(&mut self) -> Result<(), String> {
        let SinkOutput::Pcap(p) = &mut self.output else {
            // Its failures are counted and logged as they happen.
            self.write_lines();
            return Ok(());
        };
        match p.flush() {
            Ok(()) => Ok(()),
            Err(e) if p.is_stdout() && broken_pipe(&e) => {
                self.close(0);
                Ok(())
            }
            Err(e) => Err(error_chain(&e)),
        }
    }
}

/// A chunk and the index of the worker (channel) it came from.
type FromWorker = (usize, Box<Chunk>);

/// Puts the segments of files shared by several workers back in file order
/// for an output that has one order (see [`Mark`]). A chunk of the segment
/// expected next is written at once; one of a later segment waits here, in
/// its pooled buffer, until the segments before it are complete. Workers
/// take segments in order and each has its own pool, so the worker holding
/// the expected segment always has chunks to finish it with.
#[derive(Default)]
struct Reorder {
    /// By port: the segment expected next.
    next: Vec<u64>,
    /// Chunks waiting for their turn, by (port, segment), with their channel.
    waiting: std::collections::BTreeMap<(u16, u64), Vec<FromWorker>>,
}

impl Reorder {
    fn is_next(&mut self, m: Mark) -> bool {
        let port = usize::from(m.port);
        if self.next.len() <= port {
            self.next.resize(port + 1, 0);
        }
        self.next[port] == m.seq
    }

    /// A chunk of the expected segment was written: if it was the
    /// segment's last, move on and hand back, in order, the waiting chunks
    /// that are now due.
    fn written(&mut self, m: Mark, mut emit: impl FnMut(usize, Box<Chunk>)) {
        if !m.last {
            return;
        }
        let port = usize::from(m.port);
        self.next[port] += 1;
        while let Some(chunks) = self.waiting.remove(&(m.port, self.next[port])) {
            let complete = chunks.last().is_some_and(|(_, c)| c.mark.is_some_and(|m| m.last));
            for (worker, c) in chunks {
                emit(worker, c);
            }
            if !complete {
                break; // the rest of this segment is still to come, in order
            }
            self.next[port] += 1;
        }
    }
}

/// Puts the records of several workers' chunks from interfaces (or of one
/// worker's several rings) in time order for an output that has one order
/// (one file, printed lines). A worker reading one ring queues its records
/// in time order; one reading several, in time order per ring. A record is
/// written once no worker can still bring an earlier one: each other worker
/// reading one ring has a record here at or after it, or has promised that
/// all it queues from now on is (see [`Producer::promise`]), and a worker
/// reading several rings has promised it, whatever it holds. Records are
/// copied into one chunk of the output's own and written from there. A
/// worker with half its pool waiting here is not waited for: the records
/// held are then written in order among themselves, so a worker that stops
/// keeping its promise up to date costs order, never frames.
struct TimeMerge {
    /// By worker: chunks taken from its queue with records not yet written,
    /// and how many of their records are left (a free slot is `None`).
    chunks: Vec<Vec<Option<HeldChunk>>>,
    /// By worker: the chunks held.
    held: Vec<usize>,
    /// By worker: its records not yet written, earliest first (ties in the
    /// order they came).
    records: Vec<std::collections::BinaryHeap<std::cmp::Reverse<Held>>>,
    /// By worker: its promise, read before its chunks were taken.
    bounds: Vec<u64>,
    /// By worker: whether it reads several rings (its records are then not in time order).
    several: Vec<bool>,
    /// Records held so far, to keep ties in their order.
    seq: u64,
    /// The records being put in order.
    out: Box<Chunk>,
    /// Chunks of one worker held before the others are no longer waited for.
    max_held: usize,
}

/// A chunk held by [`TimeMerge`], and how many of its records are not yet written.
type HeldChunk = (Box<Chunk>, usize);

/// A record held by [`TimeMerge`]: its time, its arrival, and where it is
/// (the chunk's slot, the record's byte offset and index in it).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    ts: u64,
    seq: u64,
    slot: usize,
    at: usize,
    index: usize,
}

impl TimeMerge {
    fn new(channels: &[Arc<Channel>]) -> Self {
        let n = channels.len();
        let (pool, size) = channels.first().map_or((2, MIN_CHUNK), |c| (c.full.capacity(), c.chunk_size));
        Self {
            chunks: (0..n).map(|_| Vec::with_capacity(pool)).collect(),
            held: vec![0; n],
            records: (0..n).map(|_| std::collections::BinaryHeap::new()).collect(),
            bounds: vec![0; n],
            several: vec![false; n],
            seq: 0,
            out: Box::new(Chunk::new(size)),
            max_held: (pool / 2).max(1),
        }
    }

    /// Take worker `w`'s promise (and whether it reads several rings) from its channel.
    fn promised(&mut self, w: usize, ch: &Channel) {
        self.bounds[w] = ch.bound();
        self.several[w] = ch.several_rings();
    }

    /// Hold a chunk of worker `w`'s records until their turn.
    fn hold(&mut self, w: usize, c: Box<Chunk>) {
        let n = c.records();
        if n == 0 {
            return;
        }
        let slot = self.chunks[w].iter().position(Option::is_none).unwrap_or_else(|| {
            self.chunks[w].push(None);
            self.chunks[w].len() - 1
        });
        let mut at = 0;
        for index in 0..n {
            let (ts, incl, _) = c.header_at(at);
            self.records[w].push(std::cmp::Reverse(Held { ts, seq: self.seq, slot, at, index }));
            self.seq += 1;
            at += RECORD_HEADER + incl;
        }
        self.chunks[w][slot] = Some((c, n));
        self.held[w] += 1;
    }

    /// The timestamp of worker `w`'s earliest record not yet written.
    fn head(&self, w: usize) -> Option<u64> {
        self.records[w].peek().map(|r| r.0.ts)
    }

    /// The earliest time worker `v` may still bring a record of, held or
    /// to come, for worker `w`'s earliest record to be written (`None`:
    /// nothing to wait for). One of one ring brings its records in order:
    /// its first record held bounds them, or, with none held, its promise.
    /// One of several rings does not: its promise bounds the records still
    /// to come, and its first record held (older than the promise when
    /// queued before it) those held. For `w` itself, its held records are
    /// taken in order anyway: only its promise counts, if it reads several
    /// rings. Without `wait`, only the records held count.
    fn still_to_come(&self, v: usize, w: usize, wait: bool) -> Option<u64> {
        let head = self.head(v);
        match (wait, self.several[v]) {
            _ if v == w && !(wait && self.several[v]) => None,
            (false, _) => Some(head.unwrap_or(u64::MAX)),
            (true, false) => Some(head.unwrap_or(self.bounds[v])),
            (true, true) if v == w => Some(self.bounds[v]),
            (true, true) => Some(head.map_or(self.bounds[v], |h| h.min(self.bounds[v]))),
        }
    }

    /// Write every record that may be written now, in time order; with
    /// `all`, every record held (the producers are done). `write` writes a
    /// chunk of records, `give_back` returns a chunk to worker `w`'s pool.
    fn drain(&mut self, all: bool, mut write: impl FnMut(&Chunk), mut give_back: impl FnMut(usize, Box<Chunk>)) {
        loop {
            let pressed = self.held.iter().any(|&h| h > self.max_held);
            let Some((w, t)) =
                (0..self.records.len()).filter_map(|w| self.head(w).map(|t| (w, t))).min_by_key(|&(_, t)| t)
            else {
                break;
            };
            let wait = !(all || pressed);
            let limit =
                (0..self.records.len()).filter_map(|v| self.still_to_come(v, w, wait)).min().unwrap_or(u64::MAX);
            if t > limit {
                break;
            }
            self.take(w, limit, &mut write, &mut give_back);
        }
        if self.out.records() > 0 {
            write(&self.out);
            self.out.clear();
        }
    }

    /// Copy worker `w`'s earliest records up to `limit` (at least one) into
    /// the output chunk, writing it out when full, until a chunk's records
    /// are all written: it goes back to its pool.
    fn take(
        &mut self,
        w: usize,
        limit: u64,
        write: &mut impl FnMut(&Chunk),
        give_back: &mut impl FnMut(usize, Box<Chunk>),
    ) {
        let mut first = true;
        while let Some(std::cmp::Reverse(r)) = self.records[w].peek() {
            if r.ts > limit && !first {
                break;
            }
            first = false;
            let std::cmp::Reverse(r) = self.records[w].pop().expect("peeked");
            let (c, left) = self.chunks[w][r.slot].as_mut().expect("a held chunk");
            let (_, incl, _) = c.header_at(r.at);
            let len = RECORD_HEADER + incl;
            if self.out.buf.capacity() - self.out.buf.len() < len {
                write(&self.out);
                self.out.clear();
            }
            self.out.buf.extend_from_slice(&c.buf[r.at..r.at + len]);
            self.out.ports.push(c.ports[r.index]);
            *left -= 1;
            if *left == 0 {
                let (c, _) = self.chunks[w][r.slot].take().expect("a held chunk");
                self.held[w] -= 1;
                give_back(w, c);
                // The wait may be on again (see `drain`).
                break;
            }
        }
    }

    fn holds(&self) -> bool {
        self.held.iter().any(|&h| h > 0)
    }
}

/// How often an idle consumer writing standard output checks that its
/// reader is still there.
const READER_CHECK: Duration = Duration::from_millis(100);

/// Run a sink until the producers are done and the queues are empty.
///
/// # Errors
/// A description of the first write error (later ones are counted).
pub fn run_sink(t: SinkTask) -> Result<Vec<PathBuf>, String> {
    let _ = t.waker.thread.set(std::thread::current());
    let ordered = t.output.one_order();
    let mut s = SinkState::new(t.name, t.output, t.limit, t.limit_hit, t.on_write_error);
    let mut reorder = Reorder::default();
    // Several workers into one order: their live records are merged by
    // time. With a file per worker, each worker's rings into its file.
    let per_worker = !ordered;
    let mut merges: Vec<TimeMerge> = if !t.channels.iter().any(|c| c.merged) {
        Vec::new()
    } else if per_worker {
        t.channels.iter().map(|c| TimeMerge::new(std::slice::from_ref(c))).collect()
    } else {
        vec![TimeMerge::new(&t.channels)]
    };
    // A worker's merge, and its index in it.
    let merge_of = |worker: usize| if per_worker { (worker, 0) } else { (0, worker) };
    let mut idle_parks = 0u32;
    // Standard output's reader is watched while no frame comes (a quiet
    // link): a write would tell only once the next frame arrives.
    let mut reader_checked = std::time::Instant::now();
    // It follows `rt_priority`, which the engine changes when ports come and go.
    let (mut sched, who) = (sys::RtSched::default(), format!("consumer thread of `{}`", s.name));
    loop {
        sched.update(
            t.rt_priority.load(Ordering::Relaxed),
            &who,
            "engine.consumer_rt_priority",
            "it is scheduled as a normal thread, and under overload may fall behind the kernel's receive path and \
             drop frames at its queue",
        );
        // Read the flag before draining: if it was set, everything the workers
        // will ever queue is already visible to this drain.
        let done = t.producers_done.load(Ordering::Acquire);
        let mut got = 0u64;
        for (worker, ch) in t.channels.iter().enumerate() {
            let (mi, local) = merge_of(worker);
            if let Some(m) = merges.get_mut(mi) {
                m.promised(local, ch);
            }
            while let Some(chunk) = ch.take() {
                got += 1;
                match chunk.mark.filter(|_| ordered) {
                    Some(m) if !reorder.is_next(m) => {
                        reorder.waiting.entry((m.port, m.seq)).or_default().push((worker, chunk));
                        continue;
                    }
                    Some(m) => {
                        s.write_back(&t.channels, worker, chunk);
                        reorder.written(m, |w, c| s.write_back(&t.channels, w, c));
                    }
                    None => match merges.get_mut(mi) {
                        Some(m) if chunk.records() > 0 => m.hold(local, chunk),
                        Some(_) => t.channels[worker].give_back(chunk),
                        None => s.write_back(&t.channels, worker, chunk),
                    },
                }
                t.counters.publish(&s.local);
            }
        }
        for (mi, m) in merges.iter_mut().enumerate() {
            // A merge of every worker writes the one output; a worker's own, its file.
            let to = if per_worker { mi } else { 0 };
            m.drain(done, |c| s.write(to, c), |w, c| t.channels[if per_worker { mi } else { w }].give_back(c));
        }
        t.counters.publish(&s.local);
        if got > 0 {
            idle_parks = 0;
            // Printed lines go out as each batch arrives (tcpdump's -l), not
            // in 64 KiB bursts while traffic lasts.
            if s.dirty && matches!(s.output, SinkOutput::Print { .. }) {
                s.flush();
            }
        }
        s.settle_gap(false);
        if got == 0 {
            if done {
                // Segments whose turn never came (a producer stopped mid-file): in order, as they are.
                for (w, c) in std::mem::take(&mut reorder.waiting).into_values().flatten() {
                    s.write_back(&t.channels, w, c);
                }
            }
            if s.dirty {
                s.flush();
            }
            if done {
                break;
            }
            if !s.closed && s.writes_stdout() && reader_checked.elapsed() >= READER_CHECK {
                reader_checked = std::time::Instant::now();
                if sys::pipe_reader_gone(libc::STDOUT_FILENO) {
                    // As a write into the closed pipe would: stop quietly.
                    s.close(0);
                    t.counters.publish(&s.local);
                }
            }
            t.waker.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if t.channels.iter().all(|c| c.full.is_empty()) && !t.producers_done.load(Ordering::Relaxed) {
                // Records held for their turn: back soon, as promises move on.
                let holding = merges.iter().any(TimeMerge::holds);
                // Woken by a producer's publish or by shutdown. The timeout
                // bounds how long queued chunks can wait if that wake comes
                // late: measured here (1514-byte frames at 150 kpps into
                // tmpfs), 50-90 ms parks with chunks waiting happened with a
                // 100 ms bound and overflowed the queue, and none with 2 ms.
                // So the bound is short while traffic flows and backs off
                // after ~100 ms of idleness, when timer wake-ups would only cost CPU.
                let bound =
                    if idle_parks < 50 || holding { Duration::from_millis(2) } else { Duration::from_millis(100) };
                std::thread::park_timeout(bound);
                idle_parks += 1;
            }
            t.waker.sleeping.store(false, Ordering::Relaxed);
        }
    }
    let flushed = s.flush_output();
    s.settle_gap(true);
    t.counters.publish(&s.local);
    match (s.first_error, flushed) {
        // Told to go on, and writing worked again: the gaps were said and
        // counted; the output ends whole, and the run is not a failure.
        (Some(e), Ok(())) if s.on_write_error == OnWriteError::Continue && s.gap.is_none() => {
            tracing::warn!(
                consumer = %s.name,
                "{} frames were not written in all (on_write_error = \"continue\"; the first error: {e})",
                s.local[sink::WRITE_ERRORS]
            );
        }
        (Some(e), _) | (None, Err(e)) => return Err(format!("consumer `{}`: {e}", s.name)),
        (None, Ok(())) => {}
    }
    Ok(match s.output {
        SinkOutput::Pcap(mut p) => std::mem::take(&mut p.files),
        SinkOutput::Print { .. } => Vec::new(),
    })
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output as the engine starts it (truncated, headers written).
    fn begun(mut out: PcapOutput) -> PcapOutput {
        out.writers.iter_mut().for_each(|w| w.begin().unwrap());
        out
    }

    /// Segments arriving in any order, some in several chunks, some empty,
    /// come out in (segment, chunk) order, and nothing comes out early.
    #[test]
    fn reorder_releases_segments_in_file_order() {
        let chunk = |seq: u64, part: u8, last: bool| {
            let mut c = Box::new(Chunk::new(64));
            c.buf.push(part);
            c.mark = Some(Mark { port: 0, seq, last });
            c
        };
        // (segment, part, last) in arrival order: 0 is split in two around later
        // segments, 2 is empty (its mark only), 3 waits for 1.
        let arrivals = [(1, 0, false), (3, 0, true), (0, 0, false), (1, 1, true), (2, 0, true), (0, 1, true)];
        let mut r = Reorder::default();
        let mut written = Vec::new();
        for (seq, part, last) in arrivals {
            let c = chunk(seq, part, last);
            let m = c.mark.unwrap();
            if r.is_next(m) {
                written.push((m.seq, c.buf[0]));
                r.written(m, |_, c| written.push((c.mark.unwrap().seq, c.buf[0])));
            } else {
                r.waiting.entry((m.port, m.seq)).or_default().push((0, c));
            }
        }
        assert_eq!(written, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0)]);
        assert!(r.waiting.is_empty());
        assert_eq!(r.next, [4]);
    }

    #[test]
    fn producer_fills_chunks_publishes_per_batch_and_drops_when_full() {
        // Two chunks of 64 bytes: a 20-byte frame takes 36, so one per chunk.
        let ch = Arc::new(Channel::new(2, 64, Arc::default()));
        let mut p = Producer::new(ch.clone(), 100);
        assert!(p.offer(&[1; 20], 20, 1_000_000_001, 3));
        assert!(ch.take().is_none(), "nothing is visible before the batch ends");
        p.publish();
        let first = ch.take().expect("published");
        let recs: Vec<_> = first.iter().map(|(port, ts, len, d)| (port, ts, len, d.to_vec())).collect();
        assert_eq!(recs, vec![(3, 1_000_000_001, 20, vec![1; 20])]);
        // The snaplen is capped by the chunk: 100 asked, 64 - 16 = 48 kept.
        assert!(p.offer(&[4; 100], 300, 4, 1));
        // The second chunk is full and the first is still held by the consumer: drop.
        assert!(!p.offer(&[5; 10], 10, 5, 0), "no free chunk: dropped");
        let second = ch.take().expect("published when it filled up");
        let (port, _, wire_len, data) = second.iter().next().unwrap();
        assert_eq!((port, wire_len, data.len()), (1, 300, 48));
        ch.give_back(first);
        assert!(p.offer(&[6; 10], 10, 6, 0), "a returned chunk is reused");
    }

    #[test]
    fn a_batch_fills_chunks_in_order_and_says_how_many_it_took() {
        // Three chunks of 128 bytes; records of 16 + 40 bytes: two a chunk.
        let ch = Arc::new(Channel::new(3, 128, Arc::default()));
        let mut p = Producer::new(ch.clone(), 1000);
        let frames: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 40]).collect();
        let batch = frames.iter().enumerate().map(|(i, f)| (&f[..], 60, i as u64 * 1_000_000_001));
        // Six fit in the three chunks; the seventh finds none free, and the
        // rest are not taken either.
        assert_eq!(p.offer_batch(batch, 7), 6);
        p.publish();
        let mut got = Vec::new();
        while let Some(c) = ch.take() {
            assert_eq!(c.records(), 2, "a chunk is filled before the next is taken");
            got.extend(c.iter().map(|(port, ts, len, d)| (port, ts, len, d.to_vec())));
            ch.give_back(c);
        }
        let want: Vec<_> = (0..6u8).map(|i| (7, u64::from(i) * 1_000_000_001, 60, vec![i; 40])).collect();
        assert_eq!(got, want);
        // Chunks back: the batch goes on where there is room, snaplen applied.
        let mut p = Producer::new(ch.clone(), 20);
        assert_eq!(p.offer_batch(frames.iter().map(|f| (&f[..], 40, 5)), 1), 9);
        assert_eq!(p.offer_batch(std::iter::empty(), 1), 0);
        p.publish();
        let mut n = 0;
        while let Some(c) = ch.take() {
            assert!(c.iter().all(|(_, _, len, d)| len == 40 && d.len() == 20));
            n += c.records();
        }
        assert_eq!(n, 9);
    }

    #[test]
    fn the_producer_reuses_the_chunk_freed_last() {
        // Eight chunks of one 20-byte frame each.
        let ch = Arc::new(Channel::new(8, 64, Arc::default()));
        let mut p = Producer::new(ch.clone(), 100);
        let mut held = Vec::new();
        for _ in 0..3 {
            assert!(p.offer(&[1; 20], 20, 1, 0));
            p.publish();
            held.push(ch.take().expect("published"));
        }
        let addr = |c: &Chunk| c.buf.as_ptr() as usize;
        let (a, b) = (addr(&held[0]), addr(&held[1]));
        // Freed in the order a, b (c stays with the consumer): b comes next,
        // then a, and only then chunks from deeper in the pool.
        let c = held.pop().unwrap();
        for chunk in held.drain(..) {
            ch.give_back(chunk);
        }
        let mut next = || {
            assert!(p.offer(&[2; 20], 20, 2, 0));
            p.publish();
            let chunk = ch.take().expect("published");
            let at = addr(&chunk);
            held.push(chunk);
            at
        };
        assert_eq!(next(), b);
        assert_eq!(next(), a);
        let deeper = next();
        assert!(deeper != a && deeper != b && deeper != addr(&c));
    }

    #[test]
    fn chunks_hold_a_whole_record_in_whole_pages() {
        assert_eq!(chunk_size(65_535), MIN_CHUNK);
        assert_eq!(chunk_size(262_144), 262_144 + 4096);
        assert_eq!(chunk_size(262_144) % 4096, 0);
        assert!(chunk_size(200_000) >= 200_000 + RECORD_HEADER);
    }

    /// A consumer that takes nothing (a stalled output) is given its whole
    /// queue, also when every batch holds a single frame: a chunk a batch
    /// filled the queue of 8 chunks with 8 frames, then dropped the rest.
    /// Once it takes a chunk again, the next batch is handed over at once.
    #[test]
    fn a_stalled_consumer_gets_its_whole_queue_from_batches_of_one_frame() {
        let ch = Arc::new(Channel::new(8, MIN_CHUNK, Arc::default()));
        let mut p = Producer::new(ch.clone(), 65535);
        let mut taken = 0;
        for _ in 0..2000 {
            if !p.offer(&[1; 1000], 1000, 5, 0) {
                break;
            }
            taken += 1;
            p.publish_unless_behind();
        }
        // 129 records of 1016 bytes a chunk: the first goes with one frame, the others full.
        let per_chunk = MIN_CHUNK / (1000 + RECORD_HEADER);
        assert_eq!(taken, 1 + 7 * per_chunk, "{per_chunk} a chunk");
        // The consumer takes everything: the next batch goes at once, alone.
        let mut records = 0;
        while let Some(c) = ch.take() {
            records += c.records();
            ch.give_back(c);
        }
        assert_eq!(records, taken);
        assert!(p.offer(&[2; 1000], 1000, 6, 0));
        p.publish_unless_behind();
        assert_eq!(ch.take().map(|c| c.records()), Some(1));
    }

    /// Writes `chunks` batches of `n` copies of a 1000-byte frame (records
    /// of 1016 bytes) through a producer's channel into `out`; each chunk's
    /// result (a batch may fill several), with the records written before a
    /// failure.
    fn feed(out: &mut PcapOutput, chunks: usize, n: usize, byte: u8) -> Vec<Result<(), usize>> {
        let ch = Arc::new(Channel::new(8, MIN_CHUNK, Arc::default()));
        let mut p = Producer::new(ch.clone(), 65535);
        let mut res = Vec::new();
        for _ in 0..chunks {
            for _ in 0..n {
                assert!(p.offer(&[byte; 1000], 1000, 5, 0));
            }
            p.publish();
            while let Some(c) = ch.take() {
                res.push(out.write(0, &c, c.records()).map_err(|(done, _)| done));
                ch.give_back(c);
            }
        }
        res
    }

    #[test]
    fn pcap_output_rotates_by_size_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("rot.pcap");
        let mut out = begun(PcapOutput::create(base.clone(), 65535, 1, 0, None, 0).unwrap());
        let frame = [7u8; 1000];
        // ~2.5 MiB in total: at least three files of 1 MiB.
        assert!(feed(&mut out, 3, 850, 7).iter().all(Result::is_ok));
        let sent = 3 * 850;
        out.flush().unwrap();
        let files = out.files().to_vec();
        assert!(files.len() >= 3, "{files:?}");
        assert_eq!(files[0], base);
        assert_eq!(files[1], dir.path().join("rot.1.pcap"));
        // A file ends with the record that brings it to 1 MiB, even within a chunk.
        for f in &files[..files.len() - 1] {
            let size = std::fs::metadata(f).unwrap().len();
            assert!(((1 << 20)..(1 << 20) + 1016).contains(&size), "{}: {size} bytes", f.display());
        }
        let mut total = 0;
        for f in &files {
            let mut r = crate::pcapio::PcapReader::open(f).unwrap();
            while let Some(rec) = r.next_record().unwrap() {
                assert_eq!(rec.data, &frame[..]);
                total += 1;
            }
        }
        assert_eq!(total, sent);
    }

    /// With `rotate_files`, the oldest files go as new ones start: at most
    /// that many are on disk, the newest, and they are the ones listed.
    #[test]
    fn pcap_output_keeps_at_most_rotate_files_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("ring.pcap");
        let mut out = begun(PcapOutput::create(base.clone(), 65535, 1, 2, None, 0).unwrap());
        // ~5 MiB, in chunks of ~0.8 MiB: five or more files started.
        assert!(feed(&mut out, 6, 850, 9).iter().all(Result::is_ok));
        out.flush().unwrap();
        let last = out.rotations[0];
        assert!(last >= 4, "{last} rotations");
        assert_eq!(out.opened, u64::from(last) + 1, "files opened, the removed ones included");
        let want: Vec<PathBuf> = (last - 1..=last).map(|r| output_name(&base, None, r)).collect();
        assert_eq!(out.files(), &want[..]);
        drop(out); // waits for the last removal
        let mut on_disk: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        let mut newest = want.clone();
        on_disk.sort();
        newest.sort();
        assert_eq!(on_disk, newest, "only the two newest files are left");
    }

    /// A next file that cannot be created fails the records meant for it
    /// (the ones before went out and say so), and is tried again under the
    /// same number: no gap in the names, so `rotate_files` keeps counting right.
    #[test]
    fn a_rotation_that_fails_is_tried_again_under_the_same_number() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("r.pcap");
        let blocker = dir.path().join("r.1.pcap");
        std::fs::create_dir(&blocker).unwrap(); // cannot be created as a file
        let mut out = begun(PcapOutput::create(base.clone(), 65535, 1, 2, None, 0).unwrap());
        // Records of 1016 bytes: the 1033rd brings the file to 1 MiB (24 + 1032 x 1016 < 1 MiB),
        // so the 11th chunk of 100 writes 33 and fails on the rotation.
        let res = feed(&mut out, 11, 100, 3);
        assert_eq!(res[..10], [Ok(()); 10]);
        assert_eq!(res[10], Err(33), "the records before the failed rotation were written");
        std::fs::remove_dir(&blocker).unwrap();
        assert_eq!(feed(&mut out, 1, 10, 3), [Ok(())]);
        assert_eq!(out.files(), &[base.clone(), blocker.clone()], "r.1.pcap, not r.2.pcap");
        assert_eq!((out.rotations[0], out.opened), (1, 2));
        let count = |f: &std::path::Path| {
            let mut r = crate::pcapio::PcapReader::open(f).unwrap();
            std::iter::from_fn(|| r.next_record().unwrap().map(drop)).count()
        };
        assert_eq!((count(&base), count(&blocker)), (1033, 10));
    }

    #[test]
    fn sink_counts_written_frame_bytes_whole_chunks_and_up_to_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let out = begun(PcapOutput::create(dir.path().join("b.pcap"), 65535, 0, 0, None, 0).unwrap());
        let mut s = SinkState::new("t".into(), SinkOutput::Pcap(out), Some(5), Arc::default(), OnWriteError::Stop);
        let ch = Arc::new(Channel::new(2, MIN_CHUNK, Arc::default()));
        let mut p = Producer::new(ch.clone(), 65535);
        // A whole chunk of three frames: 10 + 20 + 30 frame bytes.
        for len in [10, 20, 30] {
            assert!(p.offer(&vec![1; len], len as u32, 1, 0));
        }
        p.publish();
        let c = ch.take().unwrap();
        s.write(0, &c);
        assert_eq!((s.local[sink::WRITTEN], s.local[sink::BYTES]), (3, 60));
        ch.give_back(c);
        // Three more: the limit of 5 takes only the first two (40 + 50).
        for len in [40, 50, 60] {
            assert!(p.offer(&vec![2; len], len as u32, 1, 0));
        }
        p.publish();
        let c = ch.take().unwrap();
        s.write(0, &c);
        assert_eq!((s.local[sink::WRITTEN], s.local[sink::BYTES], s.local[sink::OVER_LIMIT]), (5, 150, 1));
    }

    /// `n` merged channels of 8 chunks, their producers, and a merge of them.
    fn merged(n: usize) -> (Vec<Arc<Channel>>, Vec<Producer>, TimeMerge) {
        let channels: Vec<Arc<Channel>> =
            (0..n).map(|_| Arc::new(Channel::new(8, MIN_CHUNK, Arc::default()).merged(true))).collect();
        let producers = channels.iter().map(|c| Producer::new(c.clone(), 65535)).collect();
        let merge = TimeMerge::new(&channels);
        (channels, producers, merge)
    }

    /// Queue records of these times, and publish them.
    fn send(p: &mut Producer, times: &[u64]) {
        for &t in times {
            assert!(p.offer(&[t as u8; 60], 60, t, 0));
        }
        p.publish();
    }

    /// Take each channel's promise and chunks, as the sink does, drain the
    /// merge (`all`: the producers are done), and return the times written.
    fn take_all(merge: &mut TimeMerge, channels: &[Arc<Channel>], all: bool) -> Vec<u64> {
        for (w, ch) in channels.iter().enumerate() {
            merge.promised(w, ch);
            while let Some(c) = ch.take() {
                merge.hold(w, c);
            }
        }
        let mut out = Vec::new();
        merge.drain(all, |c| out.extend(c.iter().map(|r| r.1)), |w, c| channels[w].give_back(c));
        out
    }

    /// One worker reading two rings queues each ring's records in time
    /// order, not the two together: its records are written in time order
    /// as far as its own promise allows.
    #[test]
    fn time_merge_orders_one_worker_s_several_rings() {
        let (channels, mut producers, mut merge) = merged(1);
        let mut round = |times: &[u64], promise: u64, all: bool| {
            send(&mut producers[0], times);
            producers[0].promise(promise, 2);
            take_all(&mut merge, &channels, all)
        };
        assert!(round(&[30, 40], 20, false).is_empty(), "the other ring may still bring earlier ones");
        assert_eq!(round(&[10, 35], 36, false), [10, 30, 35]);
        assert_eq!(round(&[], 36, true), [40]);
        assert!(!merge.holds());
    }

    /// Two workers each reading two rings: a record of one waits for the
    /// other's records held, not only for its promise (records queued
    /// before a promise are older than it). Before, worker 0's 10 and 30
    /// went out ahead of worker 1's 20 held, since both promises were 50.
    #[test]
    fn time_merge_orders_two_workers_of_several_rings() {
        let (channels, mut producers, mut merge) = merged(2);
        let mut round = |sent: [&[u64]; 2], promises: [u64; 2], all: bool| {
            for (w, p) in producers.iter_mut().enumerate() {
                send(p, sent[w]);
                p.promise(promises[w], 2);
            }
            take_all(&mut merge, &channels, all)
        };
        assert_eq!(round([&[30, 10], &[40, 20]], [50, 50], false), [10, 20, 30, 40]);
        assert_eq!(round([&[70, 55], &[60]], [80, 58], false), [55]);
        assert_eq!(round([&[], &[]], [80, 100], false), [60, 70]);
        assert_eq!(round([&[], &[]], [80, 100], true), [] as [u64; 0]);
        assert!(!merge.holds());
    }

    /// Two workers' chunks: a record is written once the other worker has
    /// a later one held or has promised nothing earlier; the rest waits, in
    /// its pooled chunk, until a promise or the end lets it out. A worker
    /// holding half its pool is no longer waited for.
    #[test]
    fn time_merge_writes_in_time_order_as_far_as_promises_allow() {
        let (channels, mut producers, mut merge) = merged(2);
        send(&mut producers[0], &[10, 30, 50]);
        send(&mut producers[1], &[20, 40]);
        assert_eq!(take_all(&mut merge, &channels, false), [10, 20, 30, 40], "50: worker 1 promised nothing yet");
        producers[1].promise(45, 1);
        assert!(take_all(&mut merge, &channels, false).is_empty(), "45 < 50");
        producers[1].promise(60, 1);
        assert_eq!(take_all(&mut merge, &channels, false), [50]);
        assert!(!merge.holds());
        // Ties and runs: a worker's records up to the other's next one go out together.
        send(&mut producers[0], &[70, 71, 72, 90]);
        send(&mut producers[1], &[72, 80]);
        producers[1].promise(95, 1);
        assert_eq!(take_all(&mut merge, &channels, false), [70, 71, 72, 72, 80, 90]);
        // A worker whose promise lags: the other's records wait only while
        // it holds at most half its pool (4 chunks of 8) here.
        for k in 0..5u64 {
            send(&mut producers[0], &[100 + k]);
        }
        assert_eq!(take_all(&mut merge, &channels, false), [100], "the fifth chunk's wait is over");
        producers[1].promise(110, 1);
        assert_eq!(take_all(&mut merge, &channels, false), [101, 102, 103, 104]);
        assert!(!merge.holds());
        // The end: everything held, in order.
        send(&mut producers[0], &[200]);
        send(&mut producers[1], &[150]);
        producers[1].promise(0, 1);
        assert_eq!(take_all(&mut merge, &channels, false), [150]);
        assert_eq!(take_all(&mut merge, &channels, true), [200]);
        // Every chunk back in its pool: the producers can fill all eight again.
        assert!(!merge.holds());
        for p in &mut producers {
            for k in 0..8u64 {
                assert!(p.offer(&[0; 60], 60, k, 0), "chunk {k}");
                p.publish();
            }
        }
    }
}
