//! Header views and filters on arbitrary frames: nothing reads outside the
//! frame or panics, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringwire_filter_sdk::Headers;
use ringwire_filters::{BuiltinFilter, Filter, Packet, PcapFilter};

fn filters() -> (BuiltinFilter, PcapFilter) {
    static F: OnceLock<(BuiltinFilter, PcapFilter)> = OnceLock::new();
    F.get_or_init(|| {
        (
            BuiltinFilter::new("(vlan 1-100 and proto udp) or port 53,80-90 or net fd00::/8 or untagged and ethertype 0x0806")
                .expect("valid"),
            PcapFilter::new("(vlan and udp port 53) or (ip6 and tcp) or (ip[6:2] & 0x1fff != 0) or greater 100").expect("valid"),
        )
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let _ = Headers::parse(data);
    let (mut b, mut p) = filters();
    let pkt = Packet { data, wire_len: data.len() as u32, ts_ns: 0 };
    let _ = b.verdict(&pkt);
    let _ = p.verdict(&pkt);
});
