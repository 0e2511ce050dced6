//! Header views and filters on arbitrary frames: nothing reads outside the
//! frame or panics, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringwire_filter_sdk::Headers;
use ringwire_filters::{BuiltinFilter, Filter, Packet, PcapFilter, VlanTag};

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
    let pkt = Packet { data, wire_len: data.len() as u32, ..Packet::EMPTY };
    let _ = b.verdict(&pkt);
    let _ = p.verdict(&pkt);
    // The interpreter agrees with libpcap's matcher on every frame.
    let prog = p.program();
    for wire_len in [data.len() as u32, data.len() as u32 + 100] {
        assert_eq!(prog.run(data, wire_len), prog.run_interpreted(data, wire_len), "interpreter vs libpcap");
    }
    // The kernel view: the bytes 12..16 skipped as a restored tag.
    let tag = VlanTag { tci: u16::from(data.first().copied().unwrap_or(0)), tpid: 0x8100 };
    let _ = p.program().run_as_kernel(data, data.len() as u32, Some(tag));
});
