//! The `print` consumer's line on arbitrary frames, with every option that
//! changes what is decoded or dumped: nothing reads outside the frame or
//! panics, whatever the bytes and whatever length the record says the
//! frame had on the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_engine::config::PrintHex;
use ringwire_engine::print::{PrintOptions, Printer};

fuzz_target!(|input: &[u8]| {
    // The first byte picks the options, the next two add to the wire length.
    let Some((&[pick, a, b], frame)) = input.split_first_chunk::<3>() else { return };
    let hex = [
        PrintHex::None,
        PrintHex::Hex,
        PrintHex::HexAscii,
        PrintHex::NetworkHex,
        PrintHex::NetworkHexAscii,
        PrintHex::NetworkAscii,
        PrintHex::Ascii,
    ][usize::from(pick & 7) % 7];
    let options = PrintOptions {
        link: pick & 8 != 0,
        hex,
        quick: pick & 16 != 0,
        absolute_seq: pick & 32 != 0,
        ..PrintOptions::default()
    };
    let wire_len = frame.len() as u32 + u32::from(u16::from_be_bytes([a, b]));
    let mut printer = Printer::new(options);
    let mut out = String::new();
    // Twice: the second frame meets the TCP conversation the first began.
    printer.line(&mut out, (1, wire_len, frame), "p");
    printer.line(&mut out, (2, wire_len, frame), "p");
});
