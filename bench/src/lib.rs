//! ringwire-bench: traffic generation and measurement tools for ringwire.
//!
//! This crate owns the frames ringwire's tools send ([`frames`]: templates
//! for a mix of flows, and the stamp each payload carries) and the
//! `ringwire-gen` binary that sends them from a TX ring. It talks to the
//! engine only through its binaries; it reuses the engine's ring code for
//! sending and its pcap writer for recording what was sent.

pub mod cpusample;
pub mod frames;
pub mod offcore;
pub mod plot;
pub mod stream;
