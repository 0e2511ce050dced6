//! Latency of a peer capture tool, measured by reading its pcap output as it
//! arrives (`tcpdump -U -w -`, `netsniff-ng --out -`): each record's stamp is timed against
//! CLOCK_MONOTONIC when the record is read (send → the tool's output) and
//! against the record's own timestamp (send → the kernel's receive time),
//! so the tool's buffering shows as it would to a program downstream.

use std::io::Read;

use ringwire_engine::{
    pcapio::{pcap_format, record_words, MAX_SNAPLEN},
    probe::{LatencySnap, Probe, ProbeShared},
    sys,
};

/// What reading a stream measured.
#[derive(Debug, Clone)]
pub struct StreamLatency {
    /// Records read.
    pub records: u64,
    /// The engine's latency probe over the records: send → reading the
    /// record (`consumer`), send → the record's timestamp (`kernel`), and
    /// the per-flow sequence counters.
    pub latency: LatencySnap,
    /// Whether the stream ended in the middle of a record (the tool was stopped mid-write).
    pub truncated: bool,
}

/// Errors reading a capture stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading failed.
    #[error("reading the capture stream")]
    Io(#[from] std::io::Error),
    /// The stream does not start with a pcap header.
    #[error("not a pcap stream (magic {0:#010x})")]
    Magic(u32),
    /// A record claims more bytes than any capture holds.
    #[error("a record of {0} bytes: the stream is corrupt")]
    Record(u32),
}

/// Fill `buf` from `r`; `Ok(false)` at a clean end of stream before any byte.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, std::io::Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Read a pcap stream (micro- or nanosecond, either byte order) to its end,
/// timing every stamped record as it is read.
///
/// # Errors
/// A stream that is not pcap, a corrupt record, or a read error. A record
/// cut off at the end is not an error (`truncated`).
pub fn measure(r: impl Read) -> Result<StreamLatency, StreamError> {
    let shared = ProbeShared::new(1);
    let mut probe = Probe::new(shared.clone(), 0);
    // Record timestamps are wall-clock time, stamps monotonic: the offset
    // between the clocks, read once for the stream.
    let offset = sys::realtime_offset_ns();
    let (records, truncated) = read_records(r, |ts, data| {
        probe.record(data, 0, Some((ts.wrapping_sub(offset), sys::monotonic_ns())));
    })?;
    probe.publish(true);
    Ok(StreamLatency { records, latency: shared.snapshot(|_| "stream".to_owned()), truncated })
}

/// Hand every record of a pcap stream (micro- or nanosecond, either byte
/// order) to `each` as it is read, with its timestamp in ns; returns the
/// records read and whether the last one was cut off.
fn read_records(mut r: impl Read, mut each: impl FnMut(u64, &[u8])) -> Result<(u64, bool), StreamError> {
    let mut records = 0;
    let mut hdr = [0u8; 24];
    if !fill(&mut r, &mut hdr)? {
        return Ok((records, false));
    }
    let magic = u32::from_le_bytes(hdr[0..4].try_into().expect("4 bytes"));
    let Some((nano, swapped)) = pcap_format(magic) else {
        return Err(StreamError::Magic(magic));
    };
    let mut data = vec![0u8; MAX_SNAPLEN as usize];
    let mut rec = [0u8; 16];
    loop {
        match fill(&mut r, &mut rec) {
            Ok(true) => {}
            Ok(false) => return Ok((records, false)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((records, true)),
            Err(e) => return Err(e.into()),
        }
        let [sec, frac, incl, _] = record_words(&rec, swapped);
        let n = incl as usize;
        if n > data.len() {
            return Err(StreamError::Record(incl));
        }
        match fill(&mut r, &mut data[..n]) {
            Ok(true) => {}
            Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => return Err(e.into()),
            Ok(false) | Err(_) => return Ok((records, true)),
        }
        records += 1;
        each(u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nano { 1 } else { 1000 }, &data[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringwire_engine::probe::Stamp;

    fn record(out: &mut Vec<u8>, ts_us: (u32, u32), frame: &[u8]) {
        for w in [ts_us.0, ts_us.1, frame.len() as u32, frame.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }

    fn udp_frame(st: &Stamp) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 0, 0, 0]);
        f.extend_from_slice(&st.to_bytes());
        f
    }

    #[test]
    fn a_stream_is_timed_record_by_record_and_a_cut_record_is_not_an_error() {
        let mut s = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            s.extend_from_slice(&w.to_le_bytes());
        }
        s.truncate(24);
        let now = sys::monotonic_ns();
        let st = Stamp { flow: 1, seq: 0, ts_ns: now - 5_000_000 };
        let rt = sys::realtime_ns();
        record(&mut s, ((rt / 1_000_000_000) as u32, (rt % 1_000_000_000 / 1000) as u32), &udp_frame(&st));
        record(&mut s, (0, 0), &[0u8; 60]);
        let r = measure(&s[..]).unwrap();
        assert_eq!((r.records, r.latency.counters.stamped, r.truncated), (2, 1, false));
        let c = r.latency.consumer;
        assert!(c.p50 >= 5_000_000 && c.p50 < 5_000_000 + 1_000_000_000, "{c:?}");
        let k = r.latency.kernel;
        assert!(k.p50 >= 4_000_000 && k.p50 <= c.p50 + 1_000_000, "{k:?}");
        let cut = measure(&s[..s.len() - 10]).unwrap();
        assert_eq!((cut.records, cut.truncated), (1, true));
        assert!(matches!(measure(&[0u8; 24][..]), Err(StreamError::Magic(0))));
        assert_eq!(measure(&[][..]).unwrap().records, 0);
    }
}
