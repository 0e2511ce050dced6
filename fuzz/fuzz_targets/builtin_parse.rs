//! The built-in filter parser on arbitrary text: it returns a filter or an
//! error, never panics or recurses without bound; a filter it returns
//! evaluates frames without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_filters::{BuiltinFilter, Filter, Packet};

const FRAMES: [&[u8]; 3] = [
    // Ethernet + 802.1Q 42 + IPv4 + UDP 1000 -> 53.
    &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x81, 0, 0, 42, 8, 0, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 3, 232, 0, 53, 0, 8, 0, 0],
    // A runt.
    &[1, 2, 3],
    &[],
];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mut f) = BuiltinFilter::new(text) {
            for (i, frame) in FRAMES.iter().enumerate() {
                let _ = f.verdict(&Packet { data: frame, wire_len: frame.len() as u32, ts_ns: i as u64, ..Packet::EMPTY });
            }
        }
    }
});
