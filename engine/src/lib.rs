//! ringwire-engine: the packet engine.
//!
//! It owns ports (AF_PACKET rings, pcap files), the worker threads pinned to
//! cores that walk them, the consumers frames are dispatched to, the frame
//! accounting, and the `ringwire` binary. It does not own filter semantics
//! (`ringwire-filters`) nor traffic generation (`ringwire-bench`).
//!
//! ```text
//! Config ──> Engine::start ──> one Worker per core ──> RxRing blocks / pcap records
//!                                    │ frame view (in place, VLAN restored)
//!                                    ├─ inline consumers: counter, forward (TX ring), latency probe
//!                                    └─ queued consumers: copy into a pooled slot ─> queue ─> thread
//! Engine::stop ──> workers drain rings ──> consumers drain queues, flush ──> final Snapshot
//! ```
//!
//! Contracts: no allocation, syscall or shared atomic per frame on the worker
//! path; every frame is counted exactly once per port and per consumer, and
//! the counters reconcile (see [`stats::Snapshot::reconcile`]).

pub mod config;
pub mod consumer;
pub mod control;
pub mod engine;
pub mod ifstats;
pub mod lab;
pub mod live;
pub mod mapguard;
pub mod pcapio;
pub mod pcapng;
pub mod print;
pub mod probe;
pub mod ring;
pub mod stats;
pub mod sys;
pub mod term;
mod worker;

pub use config::Config;
pub use engine::{Engine, EngineError};
#[doc(hidden)]
pub use worker::BenchDispatch;
