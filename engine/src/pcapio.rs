//! pcap files: a reader for replay sources (pcap, and pcapng through
//! [`crate::pcapng`]) and a writer with nanosecond timestamps, snaplen
//! truncation, size rotation and per-worker split.
//!
//! Written here rather than taken from `pcap-file` 2.0 because that crate
//! rejects records whose original length exceeds the file's snaplen — i.e.
//! every capture made with `tcpdump -s N` — and because the writer sits on
//! the pcap consumer's path where one buffered write per record is all we want.

use crate::{mapguard::Guard, pcapng};
use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    thread::JoinHandle,
    time::Duration,
};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetzov's modified pcap (old Red Hat tcpdump): microsecond
/// times, and 8 more bytes in each record header (interface index,
/// protocol, packet type), which libpcap reads and skips.
const MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes of a pcap record header.
pub const RECORD_HEADER: usize = 16;

/// The pcap record header of a frame received at `ts_ns` (ns since the
/// epoch), `wire_len` bytes long on the wire, of which `incl` are kept.
#[inline]
#[must_use]
pub fn record_header(ts_ns: u64, incl: usize, wire_len: u32) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
    h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
    h[12..16].copy_from_slice(&wire_len.to_le_bytes());
    h
}

/// How many complete records `bytes` (records in pcap layout, as this
/// crate writes them) starts with, and their length.
#[must_use]
pub fn complete_records(bytes: &[u8]) -> (usize, usize) {
    let (mut n, mut len) = (0, 0);
    while let Some(h) = bytes.get(len..len + RECORD_HEADER) {
        let incl = record_words(h.try_into().expect("a record header"), false)[2] as usize;
        if bytes.len() - len - RECORD_HEADER < incl {
            break;
        }
        (n, len) = (n + 1, len + RECORD_HEADER + incl);
    }
    (n, len)
}

/// Largest record libpcap reads (its `MAXIMUM_SNAPLEN`).
pub const MAX_SNAPLEN: u32 = 262_144;

/// A pcap file's format from the magic of its header, read little-endian:
/// `(nanosecond timestamps, byte-swapped)`, or `None` if it is not pcap.
#[must_use]
pub fn pcap_format(magic: u32) -> Option<(bool, bool)> {
    match magic {
        MAGIC_US => Some((false, false)),
        MAGIC_NS => Some((true, false)),
        m if m.swap_bytes() == MAGIC_US => Some((false, true)),
        m if m.swap_bytes() == MAGIC_NS => Some((true, true)),
        _ => None,
    }
}

/// A record header's four words (seconds, sub-second part, captured length,
/// original length) in a file of byte order `swapped` ([`pcap_format`]).
#[must_use]
pub fn record_words(h: &[u8; 16], swapped: bool) -> [u32; 4] {
    std::array::from_fn(|i| file_word(h[4 * i..4 * i + 4].try_into().expect("4 bytes"), swapped))
}

/// A 32-bit word of a pcap file, in a file of the other byte order if `swapped`.
fn file_word(b: [u8; 4], swapped: bool) -> u32 {
    let v = u32::from_le_bytes(b);
    if swapped {
        v.swap_bytes()
    } else {
        v
    }
}

/// pcap reading and writing errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapIoError {
    /// The file could not be opened or created.
    #[error("{path}: cannot open")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Not a regular file (a FIFO or device cannot be mapped).
    #[error("{path}: not a regular file (pcap sources are mapped; replay a file)")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A FIFO output nobody reads yet (opening it would block).
    #[error("{path}: a FIFO with no reader (start the reader first)")]
    NoFifoReader {
        /// The path.
        path: PathBuf,
    },
    /// Neither a pcap nor a pcapng file.
    #[error("{path}: not a pcap or pcapng file (magic {magic:#010x})")]
    NotPcap {
        /// The file.
        path: PathBuf,
        /// The first four bytes.
        magic: u32,
    },
    /// A file format version other than 2.x (as libpcap, which reads no other).
    #[error("{path}: pcap format version {major}.{minor}: only version 2 files are read (a damaged header?)")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its major version.
        major: u16,
        /// Its minor version.
        minor: u16,
    },
    /// A link type other than Ethernet.
    #[error("{path}: link type {linktype} is not Ethernet (1)")]
    Linktype {
        /// The file.
        path: PathBuf,
        /// The file's link type.
        linktype: u32,
    },
    /// Ethernet frames that end with their frame check sequence (the
    /// link-type word's FCS flag): they would be forwarded and written with
    /// it as payload.
    #[error(
        "{path}: its frames end with a {bytes}-byte FCS, which ringwire would treat as payload: cut it first (editcap -C -{bytes})"
    )]
    Fcs {
        /// The file.
        path: PathBuf,
        /// Bytes of FCS at the end of each frame.
        bytes: u32,
    },
    /// The file is shorter than a pcap file header.
    #[error("{path}: {}", too_short(*.size))]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file ends inside a record.
    #[error("{path}: truncated: record {record} is cut off at byte {offset}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based record number.
        record: u64,
        /// Byte offset where the file ends.
        offset: u64,
    },
    /// A record header with impossible values.
    #[error("{path}: corrupt record {record} at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based record number.
        record: u64,
        /// Byte offset of the record header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file shrank while it was read (another program truncated or
    /// rewrote it).
    #[error(
        "{path}: shrank to {size} bytes while being read, at record {record} (another program truncated or rewrote it): the records after that are lost, and frames read as it shrank may hold zeros in place of bytes that were gone"
    )]
    Shrunk {
        /// The file.
        path: PathBuf,
        /// Its size now.
        size: u64,
        /// 1-based number of the record being read when it was noticed.
        record: u64,
    },
    /// An output would be created over a pcap source being read.
    #[error(
        "{path}: is a pcap source being read; writing it would truncate it under its reader: write to another file"
    )]
    OverSource {
        /// The output path.
        path: PathBuf,
    },
    /// An output would be created over a file another writer of this
    /// process is writing: their records would interleave into garbage.
    #[error("{path}: another pcap consumer of this engine is writing this file: give each consumer its own path")]
    OutputInUse {
        /// The output path.
        path: PathBuf,
    },
    /// Another process holds the output open for writing (its lock): a
    /// second engine or capture on the same path would truncate it.
    #[error("{path}: another process is writing this file (it holds its lock): give each capture its own path")]
    OutputLocked {
        /// The output path.
        path: PathBuf,
    },
    /// Another process is writing a file of the same rotation or split
    /// series (`base`'s numbered files): a second capture on `base` would
    /// overwrite the files the first has finished.
    #[error("{base}: another process is writing {path}, a file of the same series (it holds its lock): give each capture its own path")]
    SeriesLocked {
        /// The output path the series is named after.
        base: PathBuf,
        /// The file that is being written.
        path: PathBuf,
    },
    /// Records to be taken back from an output ([`PcapWriter::take_back`])
    /// had already gone into a pipe, a device or standard output, which
    /// cannot give them back.
    #[error("{path}: the last {records} records were already written out and cannot be taken back (a pipe, a device or standard output)")]
    Gone {
        /// The output.
        path: PathBuf,
        /// How many records are still there that should not be.
        records: usize,
    },
    /// A read or write failed.
    #[error("{path}: i/o error")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A pcapng reader's error as the error of the file at `path` (`size`
/// bytes), met while looking for packet `record`.
fn ng_error(path: &Path, e: pcapng::NgError, at: usize, record: u64, size: usize) -> PcapIoError {
    let path = path.into();
    match e {
        pcapng::NgError::Truncated => PcapIoError::Truncated { path, record, offset: size as u64 },
        pcapng::NgError::Linktype(l) => PcapIoError::Linktype { path, linktype: u32::from(l) },
        e => PcapIoError::Corrupt { path, record, offset: at as u64, reason: e.to_string() },
    }
}

/// What a file too short for a pcap file header is.
fn too_short(size: u64) -> String {
    if size == 0 {
        "the file is empty: not a pcap file".to_owned()
    } else {
        format!("{size} bytes: too short for a pcap file (its file header alone is 24 bytes)")
    }
}

/// One record read from a file.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// Where a record lies in a mapped file.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRef {
    /// Timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// Offset of the captured bytes in the file.
    pub offset: usize,
    /// Number of captured bytes.
    pub len: usize,
}

impl RecordRef {
    /// The record's captured bytes in the mapped file.
    fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.offset..self.offset + self.len]
    }
}

/// Reads an Ethernet pcap file (µs or ns, either byte order) or pcapng
/// file, memory-mapped:
/// records are handed out as slices of the mapping, many at a time, without
/// a copy.
///
/// A read-ahead thread maps the file's pages into the process ahead of the
/// reader (`MADV_POPULATE_READ`, at most [`READ_AHEAD`] bytes ahead), so the
/// page faults of a large file are taken on another core rather than on the
/// worker that walks the records.
#[derive(Debug)]
pub struct PcapReader {
    map: Arc<memmap2::Mmap>,
    /// The mapped file, for its size: the path may name another file by now.
    file: std::fs::File,
    path: PathBuf,
    nanos: bool,
    swapped: bool,
    /// Bytes of a record header: 16, or 24 in the modified format.
    record_header: usize,
    /// The file header's snaplen as libpcap takes it (0 or more than
    /// [`MAX_SNAPLEN`] read as [`MAX_SNAPLEN`]): a record captured longer is
    /// cut to it, as libpcap cuts it.
    snapshot: u32,
    /// A pcapng file's reader (its interfaces); `None` for pcap.
    ng: Option<Box<pcapng::Reader>>,
    record: u64,
    offset: usize,
    ahead: Option<ReadAhead>,
    /// Last: the mapping is unregistered after the read-ahead thread,
    /// which holds it too, has ended.
    guard: Guard,
}

/// How far ahead of the reader the read-ahead thread maps the file.
pub const READ_AHEAD: usize = 32 << 20;
/// The read-ahead thread's step, and how often the reader reports its position.
const AHEAD_STEP: usize = 2 << 20;
/// Files smaller than this are read without a read-ahead thread.
const AHEAD_MIN_FILE: usize = 8 << 20;

/// The read-ahead thread and what it shares with the reader.
#[derive(Debug)]
struct ReadAhead {
    /// The reader's offset, updated once per [`AHEAD_STEP`].
    at: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    fn start(map: &Arc<memmap2::Mmap>) -> Option<Self> {
        if map.len() < AHEAD_MIN_FILE {
            return None;
        }
        let (at, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (m, a, s) = (Arc::clone(map), Arc::clone(&at), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("rw-readahead".into())
            .spawn(move || {
                let mut done = 0;
                while done < m.len() && !s.load(Ordering::Relaxed) {
                    if done >= a.load(Ordering::Relaxed) + READ_AHEAD {
                        std::thread::park_timeout(Duration::from_millis(20));
                        continue;
                    }
                    let len = AHEAD_STEP.min(m.len() - done);
                    // Advisory only: on a kernel without MADV_POPULATE_READ the
                    // reader takes its own faults, as it would without this thread.
                    if m.advise_range(memmap2::Advice::PopulateRead, done, len).is_err() {
                        return;
                    }
                    done += len;
                }
            })
            .ok()?;
        Some(Self { at, stop, thread: Some(thread) })
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl PcapReader {
    /// Open and map `path` and check its header.
    ///
    /// # Errors
    /// [`PcapIoError`] naming the file and the problem.
    pub fn open(path: &Path) -> Result<Self, PcapIoError> {
        // Non-blocking: opening a FIFO must not hang whoever asked (the control socket's caller).
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| PcapIoError::Open { path: path.into(), source })?;
        let meta = f.metadata().map_err(|source| PcapIoError::Open { path: path.into(), source })?;
        if !meta.is_file() {
            return Err(PcapIoError::NotRegular { path: path.into() });
        }
        // A file truncated by someone else while mapped faults on access past
        // its new end: the guard registered below turns that fault into a
        // page of zeros and a mark the reader checks (see crate::mapguard).
        // SAFETY: a read-only mapping private to this reader; a file shrinking under it is survived (above).
        let map = unsafe { memmap2::Mmap::map(&f) };
        let map = map.map_err(|source| PcapIoError::Open { path: path.into(), source })?;
        let guard = Guard::register(map.as_ptr() as usize, map.len(), meta.dev(), meta.ino());
        let _ = map.advise(memmap2::Advice::Sequential);
        let Some(hdr) = map.get(..24) else {
            return Err(PcapIoError::TooShort { path: path.into(), size: map.len() as u64 });
        };
        let magic = u32::from_le_bytes(hdr[0..4].try_into().expect("4 bytes"));
        let ((nanos, swapped), record_header) = match pcap_format(magic) {
            Some(f) => (f, RECORD_HEADER),
            None if magic == MAGIC_KUZNETZOV => ((false, false), RECORD_HEADER + 8),
            None if magic.swap_bytes() == MAGIC_KUZNETZOV => ((false, true), RECORD_HEADER + 8),
            None if magic == pcapng::SHB => {
                let (ng, offset) =
                    pcapng::Reader::open(&map, MAX_SNAPLEN).map_err(|(e, at)| ng_error(path, e, at, 1, map.len()))?;
                let map = Arc::new(map);
                let ahead = ReadAhead::start(&map);
                return Ok(Self {
                    map,
                    file: f,
                    path: path.into(),
                    nanos: true,
                    swapped: false,
                    record_header: 0,
                    snapshot: MAX_SNAPLEN,
                    ng: Some(Box::new(ng)),
                    record: 0,
                    offset,
                    ahead,
                    guard,
                });
            }
            None => return Err(PcapIoError::NotPcap { path: path.into(), magic }),
        };
        let half = |b: &[u8]| {
            let v = u16::from_le_bytes([b[0], b[1]]);
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let (major, minor) = (half(&hdr[4..6]), half(&hdr[6..8]));
        if major != 2 {
            return Err(PcapIoError::Version { path: path.into(), major, minor });
        }
        // The link type is the low 26 bits (libpcap's LT_LINKTYPE); above
        // them, whether frames end with an FCS and its length in 16-bit words.
        let word = file_word(hdr[20..24].try_into().expect("4 bytes"), swapped);
        let linktype = word & 0x03ff_ffff;
        if linktype != LINKTYPE_ETHERNET {
            return Err(PcapIoError::Linktype { path: path.into(), linktype });
        }
        if word & 0x0400_0000 != 0 {
            return Err(PcapIoError::Fcs { path: path.into(), bytes: (word >> 28) * 2 });
        }
        let snapshot = match file_word(hdr[16..20].try_into().expect("4 bytes"), swapped) {
            0 => MAX_SNAPLEN,
            n => n.min(MAX_SNAPLEN),
        };
        // libpcap takes a modified file's Ethernet frames as possibly captured
        // in cooked mode, with a 14-byte header added past the snaplen.
        let snapshot = if record_header > RECORD_HEADER { snapshot + 14 } else { snapshot };
        let map = Arc::new(map);
        let ahead = ReadAhead::start(&map);
        Ok(Self {
            map,
            file: f,
            path: path.into(),
            nanos,
            swapped,
            record_header,
            snapshot,
            ng: None,
            record: 0,
            offset: 24,
            ahead,
            guard,
        })
    }

    /// Where the next record lies, `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// [`PcapIoError::Truncated`] or [`PcapIoError::Corrupt`] with the record
    /// number; [`PcapIoError::Shrunk`] once the file has shrunk under the
    /// reader (from then on).
    #[inline]
    pub fn next_ref(&mut self) -> Result<Option<RecordRef>, PcapIoError> {
        let next = self.parse_next();
        // Checked after the parse, whose reads are what fault: a header read
        // from a page that is gone reads as zeros and must not count.
        if self.guard.faulted() {
            return Err(self.shrunk());
        }
        next
    }

    fn shrunk(&self) -> PcapIoError {
        PcapIoError::Shrunk {
            path: self.path.clone(),
            size: self.file.metadata().map_or(0, |m| m.len()),
            record: self.record,
        }
    }

    fn parse_next(&mut self) -> Result<Option<RecordRef>, PcapIoError> {
        if let Some(ng) = self.ng.as_mut() {
            return match ng.next(&self.map, self.offset) {
                Ok(None) => Ok(None),
                Ok(Some((p, next))) => {
                    self.record += 1;
                    self.advance(next);
                    Ok(Some(RecordRef { ts_ns: p.ts_ns, orig_len: p.orig_len, offset: p.offset, len: p.len }))
                }
                // Past the end of a file that shrank, the rest of its last
                // page reads as zeros without a fault.
                Err(_) if self.file.metadata().is_ok_and(|m| m.len() < self.map.len() as u64) => Err(self.shrunk()),
                Err((e, at)) => Err(ng_error(&self.path, e, at, self.record + 1, self.map.len())),
            };
        }
        let at = self.offset;
        if at == self.map.len() {
            return Ok(None);
        }
        self.record += 1;
        let Some(h) = self.map.get(at..at + self.record_header).and_then(|h| <&[u8; 16]>::try_from(&h[..16]).ok())
        else {
            return Err(PcapIoError::Truncated {
                path: self.path.clone(),
                record: self.record,
                offset: self.map.len() as u64,
            });
        };
        // Past the end of a file that shrank, the rest of the last page reads
        // as zeros without a fault: an all-zero header is checked against
        // the file's size now (a rare header: it costs one stat).
        if h == &[0; 16] && self.file.metadata().is_ok_and(|m| m.len() < (at + self.record_header) as u64) {
            return Err(self.shrunk());
        }
        let [sec, frac, incl, orig] = record_words(h, self.swapped);
        let corrupt = |reason: String| PcapIoError::Corrupt {
            path: self.path.clone(),
            record: self.record,
            offset: at as u64,
            reason,
        };
        if incl > MAX_SNAPLEN {
            return Err(corrupt(format!("captured length {incl} exceeds {MAX_SNAPLEN}")));
        }
        // As libpcap: a record longer than the file's snaplen is cut to it
        // (the rest is skipped), and the original length is kept as
        // recorded, even below the captured one (`less N` and the printed
        // `length` see what tcpdump sees).
        let keep = incl.min(self.snapshot);
        // A fraction of a second of a second or more is kept, as libpcap
        // keeps it (the frame is not lost): it carries into the seconds.
        let nsec = u64::from(frac) * if self.nanos { 1 } else { 1000 };
        let data = at + self.record_header;
        if data + incl as usize > self.map.len() {
            return Err(PcapIoError::Truncated {
                path: self.path.clone(),
                record: self.record,
                offset: self.map.len() as u64,
            });
        }
        self.advance(data + incl as usize);
        Ok(Some(RecordRef {
            ts_ns: u64::from(sec) * 1_000_000_000 + nsec,
            orig_len: orig,
            offset: data,
            len: keep as usize,
        }))
    }

    /// Move on to `next`, telling the read-ahead thread when a step is passed.
    #[inline]
    fn advance(&mut self, next: usize) {
        let at = std::mem::replace(&mut self.offset, next);
        if next / AHEAD_STEP != at / AHEAD_STEP {
            if let Some(a) = &self.ahead {
                a.at.store(next, Ordering::Relaxed);
                if let Some(t) = &a.thread {
                    t.thread().unpark();
                }
            }
        }
    }

    /// The captured bytes of a record.
    #[must_use]
    pub fn data(&self, r: &RecordRef) -> &[u8] {
        r.bytes(&self.map)
    }

    /// The next record, `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// As [`PcapReader::next_ref`].
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, PcapIoError> {
        Ok(self.next_ref()?.map(|r| Record { ts_ns: r.ts_ns, orig_len: r.orig_len, data: self.data(&r) }))
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A pcap file read by several workers at once.
///
/// Each worker claims the next *segment* (a run of consecutive records)
/// under a lock, once per segment, and reads the records' bytes from the
/// shared mapping without it. Segments are numbered in file order, so a
/// consumer that must keep the file's order (one output file) can put the
/// workers' output back in sequence.
#[derive(Debug)]
pub struct SharedPcapReader {
    state: Mutex<SharedState>,
    map: Arc<memmap2::Mmap>,
}

#[derive(Debug)]
struct SharedState {
    reader: PcapReader,
    next_seq: u64,
    ended: bool,
    /// The file's shrinking was reported.
    shrink_told: bool,
}

/// What a claim on a [`SharedPcapReader`] got.
#[derive(Debug)]
pub enum Claim {
    /// Segment `seq`: its records were put in the caller's vector. `error`:
    /// the file ended badly right after them (the records are good).
    Segment {
        /// Position of the segment in the file, from 0.
        seq: u64,
        /// A truncated or corrupt record after the segment's records.
        error: Option<PcapIoError>,
    },
    /// Nothing left.
    End,
}

impl SharedPcapReader {
    /// Share `reader` from its current position on.
    #[must_use]
    pub fn new(reader: PcapReader) -> Self {
        let map = Arc::clone(&reader.map);
        Self { state: Mutex::new(SharedState { reader, next_seq: 0, ended: false, shrink_told: false }), map }
    }

    /// Claim the next segment of at most `max` records, written to `refs`
    /// (cleared first).
    pub fn claim(&self, max: usize, refs: &mut Vec<RecordRef>) -> Claim {
        refs.clear();
        // A panic while the lock was held cannot leave the reader's offsets
        // inconsistent (it only ever moves forward over whole records).
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.ended {
            // Frames of the last segments are read after the last claim: a
            // file that shrank under them is reported once, at the end.
            if s.reader.guard.faulted() && !std::mem::replace(&mut s.shrink_told, true) {
                let seq = s.next_seq;
                s.next_seq += 1;
                return Claim::Segment { seq, error: Some(s.reader.shrunk()) };
            }
            return Claim::End;
        }
        let mut error = None;
        while refs.len() < max {
            match s.reader.next_ref() {
                Ok(Some(r)) => refs.push(r),
                Ok(None) => {
                    s.ended = true;
                    break;
                }
                Err(e) => {
                    s.ended = true;
                    // Reported here: not again at the end.
                    s.shrink_told |= matches!(e, PcapIoError::Shrunk { .. });
                    error = Some(e);
                    break;
                }
            }
        }
        if refs.is_empty() && error.is_none() {
            return Claim::End;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        Claim::Segment { seq, error }
    }

    /// The captured bytes of a record claimed from this reader.
    #[must_use]
    pub fn data(&self, r: &RecordRef) -> &[u8] {
        r.bytes(&self.map)
    }
}

/// The regular files this process's pcap writers have open, by (device,
/// inode), so that no second writer truncates and interleaves into one.
static OUTPUTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// A writer's entry in [`OUTPUTS`]; dropping it (with the writer) frees the file.
#[derive(Debug)]
struct OutputClaim((u64, u64));

impl Drop for OutputClaim {
    fn drop(&mut self) {
        let mut open = OUTPUTS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = open.iter().position(|f| *f == self.0) {
            open.swap_remove(i);
        }
    }
}

/// Writes a nanosecond-resolution Ethernet pcap file.
///
/// Single records ([`PcapWriter::write`]) are gathered in a small buffer;
/// whole chunks of records ([`PcapWriter::write_records`]) go to the file in
/// one `write`. Either way a failed write truncates the file back to its last
/// complete record, so a disk-full or I/O error never leaves a torn record.
#[derive(Debug)]
pub struct PcapWriter {
    file: File,
    path: PathBuf,
    snaplen: u32,
    /// Bytes known to be in the file (complete records only).
    bytes: u64,
    buf: Vec<u8>,
    /// Held while the writer lives (regular files opened by path only: two
    /// writers of `/dev/null` or a terminal harm nobody); so also what
    /// [`PcapWriter::begin`] truncates.
    claim: Option<OutputClaim>,
    /// Opened but not begun ([`PcapWriter::begin`]): whether opening created the file.
    pending: Option<bool>,
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        // Never begun: the engine did not start. Leave no empty file behind.
        if self.pending == Some(true) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

const WRITE_BUFFER: usize = 64 << 10;

impl PcapWriter {
    /// Create (truncate) `path` and write the file header.
    ///
    /// # Errors
    /// [`PcapIoError::Open`] / [`PcapIoError::Io`] naming the file.
    pub fn create(path: &Path, snaplen: u32) -> Result<Self, PcapIoError> {
        let mut w = Self::open(path, snaplen)?;
        w.begin()?;
        Ok(w)
    }

    /// Open `path` for writing without touching what it holds: the file is
    /// truncated and given its header by [`PcapWriter::begin`]. A writer
    /// dropped before that leaves an existing file as it was, and removes
    /// one it created, so an engine that fails to start after opening its
    /// outputs destroys no earlier capture. Standard output (`-`) begins at once.
    ///
    /// # Errors
    /// [`PcapIoError::Open`] / [`PcapIoError::Io`] naming the file.
    pub fn open(path: &Path, snaplen: u32) -> Result<Self, PcapIoError> {
        let snaplen = snaplen.min(MAX_SNAPLEN);
        if is_stdio(path) {
            let mut w = Self::new(stdout_file()?, path, snaplen, None, false);
            w.begin()?;
            return Ok(w);
        }
        // Creating the file would truncate a source still being read from it,
        // or a file another writer is writing. Held from the check until the
        // claim is taken, so two writers starting at once cannot both pass.
        let mut open = OUTPUTS.lock().unwrap_or_else(PoisonError::into_inner);
        let existed = match std::fs::metadata(path) {
            Ok(m) if crate::mapguard::is_source(m.dev(), m.ino()) => {
                return Err(PcapIoError::OverSource { path: path.into() });
            }
            Ok(m) if open.contains(&(m.dev(), m.ino())) => return Err(PcapIoError::OutputInUse { path: path.into() }),
            Ok(_) => true,
            Err(_) => false,
        };
        // Non-blocking open: a FIFO without a reader fails at once (ENXIO)
        // instead of hanging; writes then block as usual.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENXIO) => PcapIoError::NoFifoReader { path: path.into() },
                _ => PcapIoError::Open { path: path.into(), source },
            })?;
        clear_nonblocking(&file).map_err(|source| PcapIoError::Io { path: path.into(), source })?;
        let meta = file.metadata().map_err(|source| PcapIoError::Io { path: path.into(), source })?;
        if meta.is_file() {
            crate::sys::lock_exclusive(&file).map_err(|source| match source.kind() {
                io::ErrorKind::WouldBlock => PcapIoError::OutputLocked { path: path.into() },
                _ => PcapIoError::Io { path: path.into(), source },
            })?;
        }
        let claim = meta.is_file().then(|| {
            open.push((meta.dev(), meta.ino()));
            OutputClaim((meta.dev(), meta.ino()))
        });
        drop(open);
        Ok(Self::new(file, path, snaplen, claim, !existed))
    }

    fn new(file: File, path: &Path, snaplen: u32, claim: Option<OutputClaim>, created: bool) -> Self {
        let buf = Vec::with_capacity(WRITE_BUFFER);
        Self { file, path: path.into(), snaplen, bytes: 0, buf, claim, pending: Some(created) }
    }

    /// Truncate the file opened by [`PcapWriter::open`] and write its
    /// header (once; later calls do nothing).
    ///
    /// # Errors
    /// [`PcapIoError::Io`] naming the file.
    pub fn begin(&mut self) -> Result<(), PcapIoError> {
        if self.pending.is_none() {
            return Ok(());
        }
        let io = |source| PcapIoError::Io { path: self.path.clone(), source };
        // Regular files opened by path only (those hold a claim): a FIFO or
        // a device has nothing to truncate, and standard output redirected
        // to a file is the shell's to truncate or append to.
        if self.claim.is_some() {
            self.file.set_len(0).map_err(io)?;
        }
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        hdr[16..20].copy_from_slice(&self.snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        self.file.write_all(&hdr).map_err(io)?;
        self.pending = None;
        self.bytes = 24;
        Ok(())
    }

    /// Append one record, truncated to the snaplen (buffered).
    ///
    /// # Errors
    /// The write failure, naming the file.
    #[inline]
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> Result<(), PcapIoError> {
        let incl = data.len().min(self.snaplen as usize);
        if self.buf.len() + RECORD_HEADER + incl > WRITE_BUFFER {
            self.flush()?;
        }
        self.buf.extend_from_slice(&record_header(ts_ns, incl, orig_len));
        self.buf.extend_from_slice(&data[..incl]);
        Ok(())
    }

    /// Append records already in pcap layout (each no longer than the snaplen).
    ///
    /// # Errors
    /// The write failure, naming the file, with how many of `records` were
    /// written whole before it. A file is cut back to its last complete
    /// record; a pipe keeps what went into it.
    pub fn write_records(&mut self, records: &[u8]) -> Result<(), (usize, PcapIoError)> {
        self.flush().map_err(|e| (0, e))?;
        self.write_through(records)
    }

    fn write_through(&mut self, bytes: &[u8]) -> Result<(), (usize, PcapIoError)> {
        match write_counted(&mut self.file, bytes) {
            (_, None) => {
                self.bytes += bytes.len() as u64;
                Ok(())
            }
            (sent, Some(source)) => Err(self.failed(bytes, sent, source)),
        }
    }

    /// A write of `bytes` failed after `sent` of them: keep the complete
    /// records among those, cut a torn one off (a file, so it stays
    /// readable; a pipe cannot take bytes back), and say how many were kept.
    fn failed(&mut self, bytes: &[u8], sent: usize, source: io::Error) -> (usize, PcapIoError) {
        let (records, len) = complete_records(&bytes[..sent]);
        self.bytes += len as u64;
        if sent > len {
            let _ = self.file.set_len(self.bytes);
            let _ = io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.bytes));
        }
        (records, PcapIoError::Io { path: self.path.clone(), source })
    }

    /// Bytes in the file so far (including buffered records).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    /// Write buffered records to the file.
    ///
    /// # Errors
    /// The write failure, naming the file (the buffered records not written
    /// whole are lost).
    pub fn flush(&mut self) -> Result<(), PcapIoError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let r = self.write_through(&buf);
        self.buf = buf;
        self.buf.clear();
        r.map_err(|(_, e)| e)
    }

    /// Take back the last records written with [`PcapWriter::write`]: one
    /// per item of `frames`, each the length of the frame as it was given.
    /// Records still in the buffer are dropped from it; a regular file is
    /// cut back to the record before them.
    ///
    /// # Errors
    /// [`PcapIoError::Gone`] when some of them already went into a pipe, a
    /// device or standard output (which keep them) or are not there, [`PcapIoError::Io`]
    /// when the file cannot be cut.
    pub fn take_back(&mut self, frames: impl IntoIterator<Item = usize>) -> Result<(), PcapIoError> {
        let (mut records, mut bytes) = (0usize, 0u64);
        for len in frames {
            records += 1;
            bytes += (RECORD_HEADER + len.min(self.snaplen as usize)) as u64;
        }
        let buffered = (self.buf.len() as u64).min(bytes);
        self.buf.truncate(self.buf.len() - buffered as usize);
        let rest = bytes - buffered;
        if rest == 0 {
            return Ok(());
        }
        // Regular files opened by path only (those hold a claim): the file
        // starts with this writer's header there, where standard output
        // redirected to a file may not.
        if self.claim.is_none() || rest > self.bytes.saturating_sub(24) {
            return Err(PcapIoError::Gone { path: self.path.clone(), records });
        }
        let io = |source| PcapIoError::Io { path: self.path.clone(), source };
        self.bytes -= rest;
        self.file.set_len(self.bytes).map_err(io)?;
        io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.bytes)).map_err(io)?;
        Ok(())
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` names standard input or output (`-`), as tcpdump's `-w -`.
#[must_use]
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The name of a pcap output file: `base` itself for the first file of an
/// unsplit output; `stem.wN.ext` per worker; `stem[.wN].K.ext` after the K-th rotation.
#[must_use]
pub fn output_name(base: &Path, worker: Option<usize>, rotation: u32) -> PathBuf {
    if worker.is_none() && rotation == 0 {
        return base.to_path_buf();
    }
    let (mut name, ext) = stem_and_ext(base);
    if let Some(w) = worker {
        name.push_str(&format!(".w{w}"));
    }
    if rotation > 0 {
        name.push_str(&format!(".{rotation}"));
    }
    name.push('.');
    name.push_str(&ext);
    base.with_file_name(name)
}

/// What [`output_name`] puts before and after the numbers it adds: `base`'s
/// stem, and its extension (`pcap` if it has none).
fn stem_and_ext(base: &Path) -> (String, String) {
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = base.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| "pcap".into());
    (stem, ext)
}

/// Whether `name` is one of the names [`output_name`] gives for `base`,
/// its per-worker and its rotated files (`stem[.wN][.K].ext`).
fn in_series(base: &Path, name: &std::ffi::OsStr) -> bool {
    let (stem, ext) = stem_and_ext(base);
    let middle =
        name.to_str().and_then(|n| n.strip_prefix(stem.as_str())?.strip_prefix('.')?.strip_suffix(ext.as_str()));
    let Some(middle) = middle.and_then(|m| m.strip_suffix('.')) else { return false };
    let number = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mut parts = middle.split('.');
    let first = parts.next().unwrap_or_default();
    let worker = first.strip_prefix('w').is_some_and(number);
    match (parts.next(), parts.next()) {
        (None, None) => worker || number(first),
        (Some(rot), None) => worker && number(rot),
        _ => false,
    }
}

/// A file of `base`'s series (`base` itself, its per-worker and rotated
/// files in its directory) that another process is writing now: it holds
/// the file's lock. A capture on `base` that rotates or splits by worker
/// checks before it starts, so it never overwrites the files another one
/// finished (that one holds the lock of the file it writes only).
///
/// # Errors
/// [`PcapIoError::SeriesLocked`] naming that file.
pub fn check_series(base: &Path) -> Result<(), PcapIoError> {
    if is_stdio(base) {
        return Ok(());
    }
    let dir = crate::sys::dir_of(base);
    // An unreadable directory: the files are opened (and locked) one by one as before.
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if Some(name.as_os_str()) != base.file_name() && !in_series(base, &name) {
            continue;
        }
        let path = dir.join(&name);
        let Ok(file) = File::open(&path) else { continue };
        // (A file this process writes is refused by its open, with its own message.)
        let ours = |m: &std::fs::Metadata| {
            OUTPUTS.lock().unwrap_or_else(PoisonError::into_inner).contains(&(m.dev(), m.ino()))
        };
        if file.metadata().is_ok_and(|m| m.is_file() && !ours(&m))
            && crate::sys::lock_exclusive(&file).is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
        {
            return Err(PcapIoError::SeriesLocked { base: base.into(), path });
        }
    }
    Ok(())
}

/// `write_all`, saying how many bytes went out before a failure (those stay
/// written: a pipe cannot take them back).
pub fn write_counted(file: &mut File, bytes: &[u8]) -> (usize, Option<io::Error>) {
    let mut sent = 0;
    while sent < bytes.len() {
        match file.write(&bytes[sent..]) {
            Ok(0) => return (sent, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (sent, Some(e)),
        }
    }
    (sent, None)
}

/// Standard output as a file of its own (a duplicate descriptor), written
/// without the lock and buffer of [`std::io::Stdout`].
///
/// # Errors
/// [`PcapIoError::Open`] of `-` when no descriptor is left.
pub fn stdout_file() -> Result<File, PcapIoError> {
    let fd = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned();
    fd.map(File::from).map_err(|source| PcapIoError::Open { path: "-".into(), source })
}

/// Make writes to `file` block again (it was opened non-blocking).
fn clear_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows; F_GETFL/F_SETFL touch only its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pcap");
        let mut w = PcapWriter::create(&p, 100).unwrap();
        w.write(1_500_000_000_123_456_789, 60, &[1u8; 60]).unwrap();
        w.write(1_500_000_001_000_000_001, 1514, &[2u8; 1514]).unwrap();
        w.flush().unwrap();
        let mut r = PcapReader::open(&p).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!((a.ts_ns, a.orig_len, a.data.len()), (1_500_000_000_123_456_789, 60, 60));
        let b = r.next_record().unwrap().unwrap();
        assert_eq!((b.ts_ns, b.orig_len, b.data.len()), (1_500_000_001_000_000_001, 1514, 100));
        assert!(r.next_record().unwrap().is_none());
    }

    /// A file of header `magic` and `snaplen`, records `(incl, orig, byte)`
    /// with `extra` bytes more in each record header (modified pcap).
    fn raw_file(path: &Path, magic: u32, snaplen: u32, extra: usize, records: &[(u32, u32, u8)]) {
        let mut f = Vec::new();
        for w in [magic, 0x0004_0002, 0, 0, snaplen, 1] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        for (i, &(incl, orig, byte)) in records.iter().enumerate() {
            for w in [i as u32, 7, incl, orig] {
                f.extend_from_slice(&w.to_le_bytes());
            }
            f.extend(std::iter::repeat_n(0xee, extra));
            f.extend(std::iter::repeat_n(byte, incl as usize));
        }
        std::fs::write(path, f).unwrap();
    }

    /// Records read as libpcap reads them: one captured longer than the
    /// file's snaplen is cut to it (the next record still found), an
    /// original length below the captured one is kept, a snaplen of 0
    /// means 262 144, and modified pcap's longer record headers are skipped.
    #[test]
    fn records_read_as_libpcap_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.pcap");
        let read = |p: &Path| {
            let mut r = PcapReader::open(p).unwrap();
            let mut got = Vec::new();
            while let Some(rec) = r.next_record().unwrap() {
                got.push((rec.ts_ns, rec.orig_len, rec.data.len(), rec.data[0]));
            }
            got
        };
        raw_file(&p, MAGIC_US, 100, 0, &[(150, 1514, 1), (60, 40, 2), (100, 100, 3)]);
        assert_eq!(read(&p), [(7000, 1514, 100, 1), (1_000_007_000, 40, 60, 2), (2_000_007_000, 100, 100, 3)]);
        raw_file(&p, MAGIC_US, 0, 0, &[(2000, 2000, 4)]);
        assert_eq!(read(&p), [(7000, 2000, 2000, 4)]);
        raw_file(&p, MAGIC_KUZNETZOV, 64, 8, &[(60, 60, 5), (70, 80, 6), (100, 100, 7)]);
        assert_eq!(read(&p), [(7000, 60, 60, 5), (1_000_007_000, 80, 70, 6), (2_000_007_000, 100, 78, 7)]);
    }

    /// Records taken back leave the file as if they had never been
    /// written: from the buffer, from the file (cut back, and written on
    /// after), and refused past the file's header or on a FIFO once written.
    #[test]
    fn records_taken_back_are_gone_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.pcap");
        let mut w = PcapWriter::create(&p, 100).unwrap();
        for (i, len) in [60usize, 1514, 70, 80].into_iter().enumerate() {
            w.write(i as u64, len as u32, &vec![i as u8; len]).unwrap();
        }
        w.take_back([80]).unwrap();
        w.flush().unwrap();
        // Two records from the file, the 1514-byte one stored as 100 bytes.
        w.take_back([70, 1514]).unwrap();
        w.write(9, 90, &[9; 90]).unwrap();
        w.flush().unwrap();
        let mut r = PcapReader::open(&p).unwrap();
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            got.push((rec.ts_ns, rec.data.len()));
        }
        assert_eq!(got, [(0, 60), (9, 90)]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 24 + 16 + 60 + 16 + 90);
        assert!(matches!(w.take_back([60, 90, 60]), Err(PcapIoError::Gone { records: 3, .. })));

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::read(fifo).unwrap()
        });
        // The reader may not have opened its end yet: the writer's open fails until it has.
        let mut w = loop {
            match PcapWriter::create(&fifo, 65_535) {
                Ok(w) => break w,
                Err(PcapIoError::NoFifoReader { .. }) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        };
        w.write(1, 60, &[1; 60]).unwrap();
        w.write(2, 60, &[2; 60]).unwrap();
        w.take_back([60]).unwrap();
        w.flush().unwrap();
        let e = w.take_back([60]).unwrap_err();
        assert!(e.to_string().contains("the last 1 records were already written out"), "{e}");
        drop(w);
        assert_eq!(reader.join().unwrap().len(), 24 + 16 + 60, "one record went into the FIFO");
    }

    /// A source truncated by someone else while it is read: read up to where
    /// it now ends, then [`PcapIoError::Shrunk`]; no fault kills the process
    /// and no zero-length record comes out of the bytes that are gone. Cut at
    /// a page boundary (the next header is on a page that is gone: a SIGBUS,
    /// caught) and inside a page (the rest of that page reads as zeros), the
    /// latter also with a larger file renamed over its path meanwhile (as a
    /// rotation does): the size is the mapped file's, not the path's.
    #[test]
    fn a_source_that_shrinks_while_read_is_reported_and_survived() {
        for (cut_at_page, replaced) in [(true, false), (false, false), (false, true)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shrinks.pcap");
            let mut w = PcapWriter::create(&path, 65_535).unwrap();
            for i in 0..1000u32 {
                w.write(u64::from(i) * 1000, 1000, &[i as u8 | 1; 1000]).unwrap();
            }
            w.flush().unwrap();
            drop(w);
            let mut r = PcapReader::open(&path).unwrap();
            for _ in 0..5 {
                r.next_ref().unwrap().unwrap();
            }
            let cut: u64 = if cut_at_page { 256 << 10 } else { (256 << 10) + 100 };
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
            if replaced {
                let other = dir.path().join("other.pcap");
                std::fs::write(&other, vec![0u8; 2 << 20]).unwrap();
                std::fs::rename(&other, &path).unwrap();
            }
            let mut good = 5u64;
            let err = loop {
                match r.next_ref() {
                    Ok(Some(rec)) => {
                        assert!(rec.len == 1000 && rec.offset as u64 <= cut, "record {} at {}", good + 1, rec.offset);
                        good += 1;
                    }
                    Ok(None) => panic!("a clean end after {good} records"),
                    Err(e) => break e,
                }
            };
            // Records wholly before the cut, and at most the one the cut goes through.
            let whole = (cut - 24) / 1016;
            assert!(good == whole || good == whole + 1, "{good} records, {whole} before the cut");
            match err {
                PcapIoError::Shrunk { size, .. } => assert_eq!(size, cut),
                e => panic!("{e}"),
            }
            // A cut at a page boundary was met by a fault; one inside a page, by zeros.
            assert_eq!(r.guard.faulted(), cut_at_page);
            // From then on, the same answer.
            assert!(matches!(r.next_ref(), Err(PcapIoError::Shrunk { .. })));
        }
    }

    /// An output is never created over a source being read (that would
    /// truncate it under its reader); once the reader is gone, it may be.
    #[test]
    fn an_output_over_a_source_being_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("source.pcap");
        let mut w = PcapWriter::create(&path, 65_535).unwrap();
        w.write(1, 60, &[7; 60]).unwrap();
        w.flush().unwrap();
        drop(w);
        let before = std::fs::read(&path).unwrap();
        let r = PcapReader::open(&path).unwrap();
        let link = dir.path().join("link.pcap");
        std::fs::hard_link(&path, &link).unwrap();
        for p in [&path, &link] {
            assert!(matches!(PcapWriter::create(p, 65_535), Err(PcapIoError::OverSource { .. })), "{}", p.display());
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "the source is untouched");
        drop(r);
        PcapWriter::create(&path, 65_535).expect("no longer read");
    }

    /// A file another process holds the lock of (here: another open file
    /// description of this one's) is refused, and left as it was.
    #[test]
    fn an_output_locked_by_another_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.pcap");
        std::fs::write(&path, b"earlier capture").unwrap();
        let other = File::open(&path).unwrap();
        crate::sys::lock_exclusive(&other).unwrap();
        let e = PcapWriter::create(&path, 65_535).unwrap_err();
        assert!(matches!(e, PcapIoError::OutputLocked { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier capture");
        drop(other);
        PcapWriter::create(&path, 65_535).unwrap();
    }

    /// The names of a rotation or split series are known as its own, and
    /// no other; a series one of whose files another process writes is
    /// refused, and free again once it is closed.
    #[test]
    fn a_series_another_process_writes_is_refused() {
        let base = Path::new("/d/cap.pcap");
        for name in ["cap.1.pcap", "cap.17.pcap", "cap.w0.pcap", "cap.w1.3.pcap"] {
            assert!(in_series(base, std::ffi::OsStr::new(name)), "{name}");
        }
        for name in [
            "cap.pcap",
            "cap.x.pcap",
            "cap.1.pcapng",
            "cap..pcap",
            "cap.w.pcap",
            "cap.1.2.pcap",
            "capa.1.pcap",
            "cap.w1.x.pcap",
            "cap.1",
        ] {
            assert!(!in_series(base, std::ffi::OsStr::new(name)), "{name}");
        }
        assert!(in_series(Path::new("trace"), std::ffi::OsStr::new("trace.4.pcap")));
        assert!(in_series(Path::new("a.w0.b.pcap"), std::ffi::OsStr::new("a.w0.b.w1.2.pcap")));
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("f.pcap");
        for name in ["f.pcap", "f.1.pcap", "f.2.pcap", "g.3.pcap"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        check_series(&base).unwrap();
        let other = File::open(dir.path().join("g.3.pcap")).unwrap();
        crate::sys::lock_exclusive(&other).unwrap();
        check_series(&base).expect("another series");
        let other = File::open(dir.path().join("f.2.pcap")).unwrap();
        crate::sys::lock_exclusive(&other).unwrap();
        let e = check_series(&base).unwrap_err();
        assert!(e.to_string().contains("another process is writing") && e.to_string().contains("f.2.pcap"), "{e}");
        drop(other);
        check_series(&base).unwrap();
    }

    /// A second writer of a file another writer has open is refused before
    /// it truncates anything (through any name); devices are not claimed;
    /// once the first writer is gone, the file may be written again.
    #[test]
    fn an_output_another_writer_has_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.pcap");
        let mut w = PcapWriter::create(&path, 65_535).unwrap();
        w.write(1, 60, &[7; 60]).unwrap();
        w.flush().unwrap();
        let before = std::fs::read(&path).unwrap();
        let link = dir.path().join("link.pcap");
        std::fs::hard_link(&path, &link).unwrap();
        let dotted = dir.path().join(".").join("out.pcap");
        for p in [&path, &link, &dotted] {
            let e = PcapWriter::create(p, 65_535).unwrap_err();
            assert!(matches!(e, PcapIoError::OutputInUse { .. }), "{}: {e}", p.display());
            assert!(e.to_string().contains("another pcap consumer of this engine is writing this file"), "{e}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "the first writer's file is untouched");
        w.write(2, 60, &[8; 60]).unwrap();
        w.flush().unwrap();
        let mut r = PcapReader::open(&path).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().data, [7; 60]);
        assert_eq!(r.next_record().unwrap().unwrap().data, [8; 60]);
        assert!(r.next_record().unwrap().is_none());
        drop(r);
        let (_a, _b) = (
            PcapWriter::create(Path::new("/dev/null"), 100).unwrap(),
            PcapWriter::create(Path::new("/dev/null"), 100).unwrap(),
        );
        drop(w);
        PcapWriter::create(&path, 65_535).expect("no longer written");
    }

    #[test]
    fn truncated_and_corrupt_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.pcap");
        let mut w = PcapWriter::create(&p, 65535).unwrap();
        w.write(1, 100, &[0u8; 100]).unwrap();
        w.write(2, 100, &[0u8; 100]).unwrap();
        w.flush().unwrap();
        drop(w);
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 10]).unwrap();
        let mut r = PcapReader::open(&p).unwrap();
        assert!(r.next_record().unwrap().is_some());
        let e = r.next_record().unwrap_err();
        assert!(matches!(e, PcapIoError::Truncated { record: 2, .. }), "{e}");

        let mut bad = full.clone();
        bad[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &bad).unwrap();
        let e = PcapReader::open(&p).unwrap().next_record().unwrap_err();
        assert!(matches!(e, PcapIoError::Corrupt { record: 1, .. }), "{e}");

        let mut v3 = full.clone();
        v3[4..8].copy_from_slice(&[3, 0, 4, 0]);
        std::fs::write(&p, &v3).unwrap();
        let e = PcapReader::open(&p).unwrap_err();
        assert!(matches!(e, PcapIoError::Version { major: 3, minor: 4, .. }), "{e}");

        // The link-type word's upper bits say that frames end with an FCS
        // (libpcap's LT_FCS_LENGTH): Ethernet, but not ours to read as it is.
        // Bits 16-25 are part of the link type.
        let mut fcs = full.clone();
        fcs[20..24].copy_from_slice(&0x2400_0001u32.to_le_bytes());
        std::fs::write(&p, &fcs).unwrap();
        let e = PcapReader::open(&p).unwrap_err();
        assert!(matches!(e, PcapIoError::Fcs { bytes: 4, .. }), "{e}");
        assert!(e.to_string().ends_with("cut it first (editcap -C -4)"), "{e}");
        fcs[20..24].copy_from_slice(&0x0001_0001u32.to_le_bytes());
        std::fs::write(&p, &fcs).unwrap();
        let e = PcapReader::open(&p).unwrap_err();
        assert!(matches!(e, PcapIoError::Linktype { linktype: 0x0001_0001, .. }), "{e}");

        std::fs::write(&p, b"hello world, not a pcap file").unwrap();
        assert!(matches!(PcapReader::open(&p).unwrap_err(), PcapIoError::NotPcap { .. }));
        std::fs::write(&p, b"abc").unwrap();
        let e = PcapReader::open(&p).unwrap_err();
        assert!(matches!(e, PcapIoError::TooShort { size: 3, .. }), "{e}");
        assert!(
            e.to_string().ends_with(": 3 bytes: too short for a pcap file (its file header alone is 24 bytes)"),
            "{e}"
        );
        std::fs::write(&p, b"").unwrap();
        let e = PcapReader::open(&p).unwrap_err().to_string();
        assert!(e.ends_with(": the file is empty: not a pcap file"), "{e}");
    }

    #[test]
    fn reads_microsecond_big_endian_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("be.pcap");
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_US.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0u8; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        for v in [3u32, 250_000, 4, 4] {
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&[9, 9, 9, 9]);
        std::fs::write(&p, &f).unwrap();
        let mut r = PcapReader::open(&p).unwrap();
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(rec.ts_ns, 3_250_000_000);
        assert_eq!(rec.data, &[9, 9, 9, 9]);
    }

    /// Writes `n` records whose bytes carry their index; returns the path.
    fn numbered_file(dir: &Path, n: u32, len: usize) -> PathBuf {
        let p = dir.join("numbered.pcap");
        let mut w = PcapWriter::create(&p, 65_535).unwrap();
        for i in 0..n {
            let mut data = vec![0u8; len];
            data[..4].copy_from_slice(&i.to_le_bytes());
            w.write(u64::from(i) * 1000, len as u32, &data).unwrap();
        }
        w.flush().unwrap();
        p
    }

    fn index(data: &[u8]) -> u32 {
        u32::from_le_bytes(data[..4].try_into().unwrap())
    }

    #[test]
    fn a_file_larger_than_the_read_ahead_threshold_reads_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // 12 MB: the read-ahead thread runs, and stops when the reader is dropped mid-file.
        let p = numbered_file(dir.path(), 12_000, 1000);
        let mut r = PcapReader::open(&p).unwrap();
        assert!(r.ahead.is_some());
        for i in 0..12_000 {
            assert_eq!(index(r.next_record().unwrap().unwrap().data), i);
        }
        assert!(r.next_record().unwrap().is_none());
        let mut early = PcapReader::open(&p).unwrap();
        assert_eq!(index(early.next_record().unwrap().unwrap().data), 0);
        drop(early);
    }

    #[test]
    fn shared_reader_hands_out_every_record_once_in_numbered_segments() {
        let dir = tempfile::tempdir().unwrap();
        let p = numbered_file(dir.path(), 10_007, 64);
        let shared = Arc::new(SharedPcapReader::new(PcapReader::open(&p).unwrap()));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut refs = Vec::new();
                    let mut got = Vec::new();
                    while let Claim::Segment { seq, error } = s.claim(100, &mut refs) {
                        assert!(error.is_none());
                        got.push((seq, refs.iter().map(|r| index(s.data(r))).collect::<Vec<_>>()));
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_by_key(|(seq, _)| *seq);
        assert_eq!(all.len(), 101);
        assert!(all.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64));
        let order: Vec<u32> = all.into_iter().flat_map(|(_, v)| v).collect();
        assert_eq!(order, (0..10_007).collect::<Vec<_>>());
    }

    #[test]
    fn shared_reader_reports_a_truncated_record_after_the_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = numbered_file(dir.path(), 250, 64);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 10).unwrap();
        let shared = SharedPcapReader::new(PcapReader::open(&p).unwrap());
        let mut refs = Vec::new();
        assert!(matches!(shared.claim(100, &mut refs), Claim::Segment { seq: 0, error: None }));
        assert!(matches!(shared.claim(100, &mut refs), Claim::Segment { seq: 1, error: None }));
        match shared.claim(100, &mut refs) {
            Claim::Segment { seq: 2, error: Some(PcapIoError::Truncated { record: 250, .. }) } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(refs.len(), 49);
        assert!(matches!(shared.claim(100, &mut refs), Claim::End));
    }

    /// A pipe whose reader leaves midway through a write: the records
    /// that went into it whole are reported as written, not lost.
    #[test]
    fn a_write_cut_short_by_a_closed_pipe_reports_the_records_that_went_out() {
        let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut w = PcapWriter::new(File::from(std::os::fd::OwnedFd::from(tx)), Path::new("pipe"), 4096, None, false);
        w.begin().unwrap();
        let mut records = Vec::new();
        // 40 MB: far over any socket buffer (net.core.wmem_default is 4 MiB on these machines).
        for i in 0..20_000u32 {
            records.extend_from_slice(&record_header(u64::from(i), 2000, 2000));
            records.extend_from_slice(&[i as u8; 2000]);
        }
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 100_000];
            io::Read::read_exact(&mut rx, &mut got).unwrap();
            got // the socket closes here, with the writer blocked on a full buffer
        });
        let (whole, e) = w.write_records(&records).expect_err("the reader left");
        let got = reader.join().unwrap();
        assert!(matches!(&e, PcapIoError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe), "{e:?}");
        let (read_whole, _) = complete_records(&got[24..]);
        assert!(read_whole >= 49, "{read_whole}");
        assert!((read_whole..20_000).contains(&whole), "{whole} reported written, {read_whole} read whole");
        assert_eq!(w.bytes(), 24 + whole as u64 * 2016);
    }

    #[test]
    fn complete_records_stops_before_a_torn_one() {
        let mut b = record_header(1, 3, 3).to_vec();
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&record_header(2, 5, 5));
        assert_eq!(complete_records(&b), (1, 19));
        b.extend_from_slice(b"1234");
        assert_eq!(complete_records(&b), (1, 19));
        b.push(b'5');
        assert_eq!(complete_records(&b), (2, 40));
        assert_eq!(complete_records(&b[..10]), (0, 0));
    }

    #[test]
    fn a_fifo_neither_hangs_a_reader_nor_a_writer_without_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(PcapReader::open(&fifo), Err(PcapIoError::NotRegular { .. })));
        assert!(matches!(PcapWriter::create(&fifo, 100), Err(PcapIoError::NoFifoReader { .. })));
    }

    #[test]
    fn output_names() {
        let b = Path::new("/x/cap.pcap");
        assert_eq!(output_name(b, None, 0), Path::new("/x/cap.pcap"));
        assert_eq!(output_name(b, Some(1), 0), Path::new("/x/cap.w1.pcap"));
        assert_eq!(output_name(b, None, 2), Path::new("/x/cap.2.pcap"));
        assert_eq!(output_name(b, Some(0), 3), Path::new("/x/cap.w0.3.pcap"));
    }
}
