//! IPv6 routing headers (source routes, Mobile IPv6's type 2, SRv6's
//! segment routing header) and IPsec's headers (AH, ESP) as tcpdump words
//! them in a line (`-n`, no `-v`): `RT6 (len=4, type=4, segleft=1,
//! last-entry=1, tag=0, [0]2001:db8::6, [1]2001:db8::7) `,
//! `AH(spi=0x00001234,seq=0x7,icv=0x...): `, `ESP(spi=0x0000abcd,seq=0x9),
//! length 40`. A snap length may cut them anywhere: what was read is
//! printed, then ` [|rt6]` or ` [|ah]`, and tcpdump gives up on the frame.

use std::fmt::Write as _;

use super::{Bytes, Cut};

/// How a header printed by this module ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Whole: what follows starts this many bytes after its first byte.
    After(usize),
    /// Invalid: the line ends with it.
    Ends,
    /// Cut short: the line ends with it, and tcpdump gives up on the frame.
    Cut,
}

/// The routing header captured as `h` (from its first byte), as tcpdump
/// prints it after the addresses or the extension headers before it.
pub(super) fn rt6(out: &mut String, h: &[u8]) -> Next {
    named(out, ("RT6", "rt6"), h, rt6_fields)
}

/// A header named `name` (`RT6`) and its `fields` as far as they were
/// captured, ended by ` [|rt6]` (`marker`) where they were cut.
fn named(
    out: &mut String,
    (name, marker): (&str, &str),
    h: &[u8],
    fields: fn(&mut String, &Bytes<'_>) -> Result<Next, Cut>,
) -> Next {
    out.push_str(name);
    fields(out, &Bytes(h)).unwrap_or_else(|_| {
        let _ = write!(out, " [|{marker}]");
        Next::Cut
    })
}

fn rt6_fields(out: &mut String, b: &Bytes<'_>) -> Result<Next, Cut> {
    let len = b.u8(1)?;
    let _ = write!(out, " (len={len}");
    let kind = b.u8(2)?;
    let _ = write!(out, ", type={kind}");
    if kind == 0 {
        out.push_str(" [Deprecated]");
    }
    let _ = write!(out, ", segleft={}", b.u8(3)?);
    match kind {
        // Source route (deprecated), and Mobile IPv6's home address.
        0 | 2 => {
            let reserved = b.u32(4)?;
            if reserved != 0 {
                let _ = write!(out, ", rsv={reserved:#x}");
            }
        }
        // The segment routing header (SRv6).
        4 => {
            let _ = write!(out, ", last-entry={}", b.u8(4)?);
            let flags = b.u8(5)?;
            if flags != 0 {
                let _ = write!(out, ", flags={flags:#x}");
            }
            let _ = write!(out, ", tag={:x}", b.u16(6)?);
        }
        _ => {
            out.push_str(" (unknown type) (invalid)");
            return Ok(Next::Ends);
        }
    }
    if len % 2 == 1 {
        let _ = write!(out, " (invalid length {len}) (invalid)");
        return Ok(Next::Ends);
    }
    for i in 0..usize::from(len / 2) {
        let _ = write!(out, ", [{i}]{}", b.v6(8 + 16 * i)?);
    }
    out.push_str(") ");
    Ok(Next::After((usize::from(len) + 1) * 8))
}

/// The authentication header captured as `h`, as tcpdump prints it.
pub(super) fn ah(out: &mut String, h: &[u8]) -> Next {
    named(out, ("AH", "ah"), h, ah_fields)
}

fn ah_fields(out: &mut String, b: &Bytes<'_>) -> Result<Next, Cut> {
    // Its length in 4-byte words, less 2.
    let len = (usize::from(b.u8(1)?) + 2) * 4;
    out.push('(');
    let reserved = b.u16(2)?;
    if reserved != 0 {
        let _ = write!(out, "reserved={reserved:#x}[MustBeZero],");
    }
    let _ = write!(out, "spi={:#010x},", b.u32(4)?);
    let _ = write!(out, "seq={:#x},", b.u32(8)?);
    out.push_str("icv=0x");
    for at in 12..len {
        let _ = write!(out, "{:02x}", b.u8(at)?);
    }
    out.push_str("): ");
    Ok(Next::After(len))
}

/// An ESP packet of `len` bytes on the wire, captured as `p`: its SPI and
/// sequence number (what follows is encrypted), or ` [|esp]` when no more
/// than its first 8 bytes were captured.
pub(super) fn esp(out: &mut String, p: &[u8], len: usize) {
    if p.len() <= 8 {
        out.push_str(" [|esp]");
        return;
    }
    let word = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    let _ = write!(out, "ESP(spi={:#010x},seq={:#x}), length {len}", word(0), word(4));
}
