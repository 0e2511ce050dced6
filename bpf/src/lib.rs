//! ringwire-bpf: the engine's eBPF programs and the loader for user filters.
//!
//! Every program is C under `src/bpf/` (or `examples/`), compiled at build
//! time by libbpf-cargo (`clang -target bpf`) and loaded with libbpf-rs:
//!
//! - [`Classifier`]: a socket filter whose (VLAN, destination MAC) → pass/drop
//!   table is a BPF hash map, changed at run time without reattaching, with
//!   per-entry hit counters in a per-CPU map;
//! - [`SymmetricSteer`]: a `PACKET_FANOUT_EBPF` program whose flow hash is the
//!   same for both directions of a connection;
//! - [`SocketFilter::load_file`]: a user's `.bpf.o`, checked to be a socket
//!   filter, with the verifier's log as the error when it is rejected.
//!
//! Each of them counts frames seen and passed in a per-CPU `ringwire_stats`
//! map (`src/bpf/ringwire.h`), read by [`SocketFilter::counters`].
//! This crate knows nothing of the engine: it hands out program fds.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
    sync::Mutex,
};

use libbpf_rs::{MapCore, MapFlags, ObjectBuilder, PrintLevel, ProgramType};

/// The classifier, compiled from `src/bpf/classifier.bpf.c`.
const CLASSIFIER_OBJ: &[u8] = include_bytes!(env!("RW_BPF_OBJ_CLASSIFIER"));
/// The steering program, compiled from `src/bpf/steer.bpf.c`.
const STEER_OBJ: &[u8] = include_bytes!(env!("RW_BPF_OBJ_STEER"));
/// Path of the example user filter's object (`examples/keep_udp.bpf.o`), built with this crate.
pub const EXAMPLE_KEEP_UDP: &str = env!("RW_BPF_OBJ_KEEP_UDP");
/// Test fixtures: a socket filter the verifier rejects, and an XDP program.
#[doc(hidden)]
pub const FIXTURE_REJECTED: &str = env!("RW_BPF_OBJ_REJECTED");
#[doc(hidden)]
pub const FIXTURE_NOT_SOCKET: &str = env!("RW_BPF_OBJ_NOT_SOCKET");
/// A socket filter with a `ringwire_stats` map that counts nothing in it.
#[doc(hidden)]
pub const FIXTURE_SILENT: &str = env!("RW_BPF_OBJ_SILENT");
/// Path of the classifier's object as built, for tests that give it where a
/// user's filter goes.
#[doc(hidden)]
pub const FIXTURE_CLASSIFIER: &str = env!("RW_BPF_OBJ_CLASSIFIER");
/// The classifier's table: a user's object holding it is the classifier.
const CLASSES_MAP: &str = "rw_classes";

/// Lines of the verifier's log kept in an error: its end says why.
const LOG_TAIL: usize = 25;

/// eBPF loading and map errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// The object file does not exist or cannot be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// libbpf could not open the file as an eBPF object.
    #[error("{path}: not an eBPF object file ({reason})")]
    NotBpfObject {
        /// The file.
        path: PathBuf,
        /// libbpf's words.
        reason: String,
    },
    /// No program of that name in the object.
    #[error("{path}: no program named `{name}` (programs: {available})")]
    NoSuchProgram {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// What the object has.
        available: String,
    },
    /// The object has no program at all.
    #[error("{path}: the object holds no program")]
    NoProgram {
        /// The file.
        path: PathBuf,
    },
    /// The program is of another type than a socket filter.
    #[error("{path}: program `{name}` is a {kind} program; a port filter must be a socket filter (SEC(\"socket\"))")]
    NotSocketFilter {
        /// The file.
        path: PathBuf,
        /// The program.
        name: String,
        /// Its type.
        kind: String,
    },
    /// The object is ringwire's own classifier, which runs with its table
    /// (without it, it drops every frame).
    #[error(
        "{path}: this is ringwire's classifier; attach it with `filter = \"classifier\"` (or `--filter classifier`) and give it entries in [classifier] or with `ringctl classifier add`"
    )]
    OwnClassifier {
        /// The file.
        path: PathBuf,
    },
    /// The kernel refused the program; `log` is the end of the verifier's log.
    #[error("{path}: the kernel refused program `{name}`: {reason}\nverifier log (end):\n{log}")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The program.
        name: String,
        /// libbpf's error.
        reason: String,
        /// The last lines of the verifier log.
        log: String,
    },
    /// A new entry for a classifier table that holds [`MAX_CLASSES`] already.
    #[error("classifier entry {key}: the table is full ({MAX_CLASSES} entries): remove one first")]
    TableFull {
        /// The entry that did not fit.
        key: ClassKey,
    },
    /// A map operation failed.
    #[error("{what}")]
    Map {
        /// What was being done.
        what: String,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
}

/// libbpf's messages while a load is in progress (its print callback is
/// process-wide, so loads are serialized).
static LOAD_LOG: Mutex<String> = Mutex::new(String::new());
static LOAD_LOCK: Mutex<()> = Mutex::new(());

fn collect_log(_level: PrintLevel, msg: String) {
    if let Ok(mut log) = LOAD_LOG.lock() {
        log.push_str(&msg);
    }
}

/// The end of the verifier log in libbpf's messages, or the messages themselves.
fn verifier_tail(messages: &str) -> String {
    let log = match (messages.find("-- BEGIN PROG LOAD LOG --"), messages.find("-- END PROG LOAD LOG --")) {
        (Some(a), Some(b)) if a < b => &messages[a + "-- BEGIN PROG LOAD LOG --".len()..b],
        _ => messages,
    };
    let lines: Vec<&str> =
        log.lines().map(str::trim_end).filter(|l| !l.is_empty() && !l.starts_with("libbpf: ")).collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}

/// A per-CPU `u64` counter at `key`, summed over CPUs; `None` if absent.
fn percpu_sum(map: &libbpf_rs::Map<'_>, key: &[u8]) -> Option<u64> {
    let per_cpu = map.lookup_percpu(key, MapFlags::ANY).ok()??;
    Some(per_cpu.iter().filter_map(|v| v.get(..8)).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))).sum())
}

/// A loaded socket-filter program and its object (maps included).
pub struct SocketFilter {
    object: libbpf_rs::Object,
    program: String,
    path: PathBuf,
    serial: u64,
}

/// The serial number the next loaded program gets.
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for SocketFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFilter").field("path", &self.path).field("program", &self.program).finish()
    }
}

impl SocketFilter {
    /// Load program `program` (default: the object's first) from the
    /// `.bpf.o` at `path`, checking that it is a socket filter.
    ///
    /// # Errors
    /// A [`BpfError`] for each way it can fail; a verifier rejection carries
    /// the end of the verifier's log.
    pub fn load_file(path: &Path, program: Option<&str>) -> Result<Self, BpfError> {
        let bytes = std::fs::read(path).map_err(|source| BpfError::Read { path: path.into(), source })?;
        let filter = Self::load_memory(path, &bytes, program)?;
        // Loaded from a file, ringwire's classifier would run with an empty table.
        if filter.object.maps().any(|m| m.name().to_string_lossy() == CLASSES_MAP) {
            return Err(BpfError::OwnClassifier { path: path.into() });
        }
        Ok(filter)
    }

    fn load_memory(path: &Path, bytes: &[u8], program: Option<&str>) -> Result<Self, BpfError> {
        let _serial = LOAD_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        LOAD_LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        let previous = libbpf_rs::set_print(Some((PrintLevel::Debug, collect_log)));
        let res = Self::load_locked(path, bytes, program);
        libbpf_rs::set_print(previous);
        res
    }

    fn load_locked(path: &Path, bytes: &[u8], program: Option<&str>) -> Result<Self, BpfError> {
        let messages = || std::mem::take(&mut *LOAD_LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("ringwire");
        let mut builder = ObjectBuilder::default();
        // libbpf wants an object name without dots.
        let _ = builder.name(name.split('.').next().unwrap_or("ringwire"));
        let mut open = builder.open_memory(bytes).map_err(|e| BpfError::NotBpfObject {
            path: path.into(),
            reason: {
                let m = verifier_tail(&messages());
                if m.is_empty() {
                    e.to_string()
                } else {
                    m
                }
            },
        })?;
        let names: Vec<String> = open.progs().map(|p| p.name().to_string_lossy().into_owned()).collect();
        let chosen = match program {
            Some(p) if names.iter().any(|n| n == p) => p.to_owned(),
            Some(p) => {
                return Err(BpfError::NoSuchProgram { path: path.into(), name: p.into(), available: names.join(", ") })
            }
            None => names.first().cloned().ok_or_else(|| BpfError::NoProgram { path: path.into() })?,
        };
        for mut p in open.progs_mut() {
            let this = p.name().to_string_lossy() == chosen.as_str();
            if this && p.prog_type() != ProgramType::SocketFilter {
                return Err(BpfError::NotSocketFilter {
                    path: path.into(),
                    name: chosen,
                    kind: format!("{:?}", p.prog_type()),
                });
            }
            // Only the chosen program is loaded: the others may be of any type.
            p.set_autoload(this);
        }
        let object = open.load().map_err(|e| BpfError::Rejected {
            path: path.into(),
            name: chosen.clone(),
            reason: e.to_string(),
            log: verifier_tail(&messages()),
        })?;
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self { object, program: chosen, path: path.into(), serial })
    }

    /// The program's fd, for SO_ATTACH_BPF or PACKET_FANOUT_DATA.
    ///
    /// # Panics
    /// Never: the program was loaded by [`SocketFilter::load_file`].
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        let prog = self.object.progs().find(|p| p.name().to_string_lossy() == self.program.as_str());
        let fd = prog.expect("the loaded program is in its object").as_fd().as_raw_fd();
        // SAFETY: the fd belongs to the program, owned by `self.object`, which
        // outlives the returned borrow (it is tied to `&self`).
        unsafe { BorrowedFd::borrow_raw(fd) }
    }

    /// The program's name.
    #[must_use]
    pub fn program(&self) -> &str {
        &self.program
    }

    /// A number no other program loaded by this process has: two counts
    /// with the same serial are of the same program.
    #[must_use]
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The object file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn map(&self, name: &str) -> Option<libbpf_rs::Map<'_>> {
        self.object.maps().find(|m| m.name().to_string_lossy() == name)
    }

    /// Frames (seen, passed) as the program counted them in its
    /// `ringwire_stats` map, summed over CPUs; `None` if it has no such map.
    #[must_use]
    pub fn counters(&self) -> Option<(u64, u64)> {
        let map = self.map("ringwire_stats")?;
        let sum = |i: u32| percpu_sum(&map, &i.to_ne_bytes());
        Some((sum(0)?, sum(1)?))
    }
}

/// What the classifier does with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Keep it.
    Pass,
    /// Drop it in the kernel.
    Drop,
}

impl Action {
    fn word(self) -> u32 {
        u32::from(self == Self::Pass)
    }
}

/// A classifier table key: VLAN id (`None`: untagged) and destination MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassKey {
    /// VLAN id 0-4095, or `None` for untagged frames.
    pub vlan: Option<u16>,
    /// Destination MAC.
    pub mac: [u8; 6],
}

/// The key's VLAN word for untagged frames (classifier.bpf.c's UNTAGGED).
const UNTAGGED: u32 = 0x1000;

impl std::fmt::Display for ClassKey {
    /// `vlan 10, mac 02:00:00:00:00:0a`, or `untagged, mac ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.vlan {
            Some(v) => write!(f, "vlan {v}, ")?,
            None => f.write_str("untagged, ")?,
        }
        let m = self.mac;
        write!(f, "mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl ClassKey {
    fn bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.vlan.map_or(UNTAGGED, |v| u32::from(v & 0x0fff)).to_ne_bytes());
        b[4..10].copy_from_slice(&self.mac);
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let vlan = u32::from_ne_bytes(b.get(..4)?.try_into().ok()?);
        Some(Self { vlan: (vlan != UNTAGGED).then_some(vlan as u16), mac: b.get(4..10)?.try_into().ok()? })
    }
}

/// One classifier entry as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassEntry {
    /// The key.
    pub key: ClassKey,
    /// Its action.
    pub action: Action,
    /// Frames that matched it, summed over CPUs.
    pub hits: u64,
}

/// Entries the classifier table holds (`max_entries` in `classifier.bpf.c`).
pub const MAX_CLASSES: usize = 4096;

/// The soft-patch-panel classifier (`src/bpf/classifier.bpf.c`).
///
/// Attach [`Classifier::fd`] to any number of packet sockets; entries
/// changed here apply to the next frame on all of them, without reattaching.
#[derive(Debug)]
pub struct Classifier {
    filter: SocketFilter,
}

impl Classifier {
    /// Load the classifier with an empty table and `default` for frames no entry matches.
    ///
    /// # Errors
    /// The kernel refused the program or a map update failed.
    pub fn load(default: Action) -> Result<Self, BpfError> {
        let filter = SocketFilter::load_memory(Path::new("classifier.bpf.o"), CLASSIFIER_OBJ, Some("classify"))?;
        let c = Self { filter };
        c.set_default(default)?;
        Ok(c)
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>, BpfError> {
        self.filter.map(name).ok_or_else(|| BpfError::Map {
            what: format!("classifier map {name}"),
            source: libbpf_rs::Error::from_raw_os_error(libc::ENOENT),
        })
    }

    fn map_err(what: String) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
        move |source| BpfError::Map { what, source }
    }

    /// The action for frames no entry matches.
    ///
    /// # Errors
    /// The map update failed.
    pub fn set_default(&self, action: Action) -> Result<(), BpfError> {
        self.map("rw_default")?
            .update(&0u32.to_ne_bytes(), &action.word().to_ne_bytes(), MapFlags::ANY)
            .map_err(Self::map_err("classifier default".into()))
    }

    /// Add or change an entry (its hit counter starts at 0 when new).
    ///
    /// # Errors
    /// The map is full or the update failed.
    pub fn insert(&self, key: ClassKey, action: Action) -> Result<(), BpfError> {
        let k = key.bytes();
        let (hits, classes) = (self.map("rw_hits")?, self.map("rw_classes")?);
        let new = classes.lookup(&k, MapFlags::ANY).ok().flatten().is_none();
        // A failed update of a new entry: the table is full (E2BIG), said as such.
        let failed = |what: String, source| {
            if new && classes.keys().count() >= MAX_CLASSES {
                BpfError::TableFull { key }
            } else {
                BpfError::Map { what, source }
            }
        };
        if hits.lookup_percpu(&k, MapFlags::ANY).ok().flatten().is_none() {
            let cpus = libbpf_rs::num_possible_cpus().map_err(Self::map_err("counting CPUs".into()))?;
            hits.update_percpu(&k, &vec![vec![0u8; 8]; cpus], MapFlags::ANY)
                .map_err(|e| failed(format!("classifier hits for {key}"), e))?;
        }
        classes
            .update(&k, &action.word().to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| failed(format!("classifier entry {key}"), e))
    }

    /// Remove an entry; `false` if there was none.
    ///
    /// # Errors
    /// The map operation failed otherwise.
    pub fn remove(&self, key: ClassKey) -> Result<bool, BpfError> {
        let k = key.bytes();
        let existed = self.map("rw_classes")?.lookup(&k, MapFlags::ANY).ok().flatten().is_some();
        if existed {
            self.map("rw_classes")?.delete(&k).map_err(Self::map_err(format!("classifier entry {key}")))?;
            let _ = self.map("rw_hits")?.delete(&k);
        }
        Ok(existed)
    }

    /// Every entry with its action and hits, sorted by key.
    ///
    /// # Errors
    /// A map read failed.
    pub fn entries(&self) -> Result<Vec<ClassEntry>, BpfError> {
        let classes = self.map("rw_classes")?;
        let hits = self.map("rw_hits")?;
        let mut out = Vec::new();
        for k in classes.keys() {
            let Some(key) = ClassKey::from_bytes(&k) else { continue };
            let Some(v) = classes.lookup(&k, MapFlags::ANY).map_err(Self::map_err("classifier read".into()))? else {
                continue;
            };
            let action = if v.get(..4).is_some_and(|w| u32::from_ne_bytes(w.try_into().expect("4")) == 1) {
                Action::Pass
            } else {
                Action::Drop
            };
            let hits = percpu_sum(&hits, &k).unwrap_or(0);
            out.push(ClassEntry { key, action, hits });
        }
        out.sort_by_key(|e| e.key);
        Ok(out)
    }

    /// The loaded program (fd, counters).
    #[must_use]
    pub fn filter(&self) -> &SocketFilter {
        &self.filter
    }
}

/// The symmetric `PACKET_FANOUT_EBPF` steering program (`src/bpf/steer.bpf.c`).
#[derive(Debug)]
pub struct SymmetricSteer {
    filter: SocketFilter,
}

impl SymmetricSteer {
    /// Load it.
    ///
    /// # Errors
    /// The kernel refused the program.
    pub fn load() -> Result<Self, BpfError> {
        Ok(Self { filter: SocketFilter::load_memory(Path::new("steer.bpf.o"), STEER_OBJ, Some("steer"))? })
    }

    /// The program's fd, for `PACKET_FANOUT_DATA`.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.filter.fd()
    }
}
