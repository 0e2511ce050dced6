//! IGMP messages as tcpdump words them on its line (no `-v`): queries of
//! each version with their response time and group, v1 and v2 reports,
//! leaves, v3 reports with their group count, written as they are read;
//! a snap length that cut a field tcpdump reads ends the line with
//! ` [|igmp]`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::Cut;

/// An IGMP message of `len` bytes on the wire, captured as `msg`, after the
/// addresses' `: ` (with `-q`, `quick`: its name alone). Returns how it
/// was cut, if it was.
pub(super) fn igmp(out: &mut String, msg: &[u8], len: usize, quick: bool) -> Option<Cut> {
    if quick {
        out.push_str("igmp");
        return None;
    }
    match message(out, msg, len) {
        Some(()) => None,
        None => {
            out.push_str(" [|igmp]");
            Some(Cut::Frame)
        }
    }
}

/// [`igmp`]'s words, as far as the captured bytes go (`None` there).
fn message(out: &mut String, b: &[u8], len: usize) -> Option<()> {
    let group = |at: usize| b.get(at..at + 4).map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
    let _ = match *b.first()? {
        0x11 => {
            out.push_str("igmp query");
            if len >= 12 {
                return v3_query(out, b, len);
            }
            match *b.get(1)? {
                0 => out.push_str(" v1"),
                100 => out.push_str(" v2"),
                t => {
                    let _ = write!(out, " v2 [max resp time {t}]");
                }
            }
            let g = group(4)?;
            if !g.is_unspecified() {
                let _ = write!(out, " [gaddr {g}]");
            }
            if len != 8 {
                let _ = write!(out, " [len {len}]");
            }
            Ok(())
        }
        0x12 => {
            let _ = write!(out, "igmp v1 report {}", group(4)?);
            if len != 8 {
                let _ = write!(out, " [len {len}]");
            }
            Ok(())
        }
        0x16 => write!(out, "igmp v2 report {}", group(4)?),
        0x17 => write!(out, "igmp leave {}", group(4)?),
        0x22 => {
            out.push_str("igmp v3 report");
            if len < 16 || len % 4 != 0 {
                let _ = write!(out, " [invalid len {len}]");
                return Some(());
            }
            let n = b.get(6..8)?;
            write!(out, ", {} group record(s)", u16::from_be_bytes([n[0], n[1]]))
        }
        kind => write!(out, "igmp-{kind}"),
    };
    Some(())
}

/// An IGMPv3 query (12 bytes or more): its response time unless the
/// default, its group unless a general query, and its sources' count.
fn v3_query(out: &mut String, b: &[u8], len: usize) -> Option<()> {
    out.push_str(" v3");
    if len % 4 != 0 {
        let _ = write!(out, " [invalid len {len}]");
        return Some(());
    }
    let code = u32::from(*b.get(1)?);
    // Tenths of a second; from 128 on, a mantissa and an exponent.
    let tenths = if code < 128 { code } else { ((code & 0x0f) | 0x10) << (((code & 0x70) >> 4) + 3) };
    if code != 100 {
        if tenths < 600 {
            let _ = write!(out, " [max resp time {:.1}s]", f64::from(tenths) * 0.1);
        } else {
            let _ = write!(out, " [max resp time {}]", relative_time(tenths / 10));
        }
    }
    let g = b.get(4..8)?;
    let g = Ipv4Addr::new(g[0], g[1], g[2], g[3]);
    if g.is_unspecified() {
        return Some(());
    }
    let _ = write!(out, " [gaddr {g}");
    let n = b.get(10..12)?;
    let sources = usize::from(u16::from_be_bytes([n[0], n[1]]));
    if sources > 0 {
        if len < 12 + sources * 4 {
            out.push_str(" [invalid number of sources]");
        } else {
            let _ = write!(out, ", {sources} source(s)");
        }
    }
    out.push(']');
    Some(())
}

/// Seconds as tcpdump shows a span (`5m7s`, `1h2m`).
fn relative_time(mut secs: u32) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut s = String::new();
    for (unit, name) in [(31_536_000, "y"), (604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m"), (1, "s")] {
        if secs >= unit {
            let _ = write!(s, "{}{name}", secs / unit);
            secs %= unit;
        }
    }
    s
}
