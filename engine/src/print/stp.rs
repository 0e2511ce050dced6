//! Spanning-tree BPDUs (802.1D, 802.1w, 802.1s, 802.1aq) as tcpdump words
//! them on its line (no `-v`): version, BPDU type, flags, and the sending
//! bridge and port, written as they are read; a snap length that cut a field
//! tcpdump reads ends the line with ` [|stp]`, and tcpdump then gives up on
//! the frame.

use std::fmt::Write as _;

/// An 802.3 frame's LLC header (DSAP, SSAP, control) if it carries a
/// BPDU: spanning tree's SAP (0x42, individual or group, command or
/// response) and an unnumbered information frame.
#[must_use]
pub(super) fn is_bpdu(llc: &[u8]) -> bool {
    matches!(llc, [dsap, ssap, 3, ..] if dsap & 0xfe == 0x42 && ssap & 0xfe == 0x42)
}

/// The LLC header of a BPDU as tcpdump's `-e` shows it before the BPDU.
pub(super) fn llc_header(out: &mut String, llc: &[u8]) {
    let group = if llc[0] & 1 != 0 { "Group" } else { "Individual" };
    let response = if llc[1] & 1 != 0 { "Response" } else { "Command" };
    let _ = write!(out, "LLC, dsap STP (0x42) {group}, ssap STP (0x42) {response}, ctrl 0x03: ");
}

/// A BPDU of `len` bytes (the 802.3 length after the LLC header), captured
/// as `bpdu`. Returns whether a field tcpdump reads was cut (it then gives
/// up on the frame).
#[must_use]
pub(super) fn bpdu(out: &mut String, bpdu: &[u8], len: usize) -> bool {
    if len < 4 {
        out.push_str(" (invalid)");
        return false;
    }
    if bpdu_fields(out, bpdu, len).is_none() {
        out.push_str(" [|stp]");
        return true;
    }
    false
}

/// [`bpdu`]'s words, as far as the captured bytes go (`None` there).
fn bpdu_fields(out: &mut String, b: &[u8], len: usize) -> Option<()> {
    let byte = |at: usize| b.get(at).copied();
    let word = |at: usize| Some(u16::from_be_bytes([byte(at)?, byte(at + 1)?]));
    if word(0)? != 0 {
        let _ = write!(out, "unknown STP version, length {len}");
        return Some(());
    }
    let version = byte(2)?;
    let _ = match version {
        0 => write!(out, "STP 802.1d"),
        2 => write!(out, "STP 802.1w"),
        3 => write!(out, "STP 802.1s"),
        4 => write!(out, "STP 802.1aq"),
        _ => return write!(out, "STP Unknown STP protocol (0x{version:02x})").ok(),
    };
    let kind = byte(3)?;
    let _ = match kind {
        0 => write!(out, ", Config"),
        2 => write!(out, ", Rapid STP"),
        0x80 => write!(out, ", Topology Change"),
        _ => write!(out, ", Unknown BPDU Type (0x{kind:02x})"),
    };
    // (Its fields: flags at 4, the bridge's id at 17, the port's at 25, the
    // v1 length at 35; an MST BPDU's v3 length at 36.)
    let invalid = |out: &mut String| out.push_str(" (invalid)");
    match (kind, version) {
        (0, _) | (2, 2) if len < if kind == 0 { 35 } else { 36 } => invalid(out),
        (0, _) | (2, 2) => {
            let _ = write!(out, ", Flags [{}]", flags(byte(4)?));
            // Its priority, then its MAC address.
            let (priority, mac) = (word(17)?, <[u8; 6]>::try_from(b.get(19..25)?).ok()?);
            let port = word(25)?;
            let mac = crate::stats::format_mac(mac);
            let _ = write!(out, ", bridge-id {priority:04x}.{mac}.{port:04x}, length {len}");
        }
        (2, 3 | 4) => {
            if len < 102 || byte(35)? != 0 {
                invalid(out);
                return Some(());
            }
            let v3 = usize::from(word(36)?) + 2;
            if len < 36 + v3 {
                invalid(out);
                return Some(());
            }
            let _ = write!(out, ", CIST Flags [{}], length {len}", flags(byte(4)?));
            if version == 4 {
                // An SPB BPDU's v4 part: nothing shown, but checked.
                let v4 = usize::from(word(36 + v3)?) + 2;
                if len < 36 + v3 + v4 || v4 < 87 {
                    invalid(out);
                }
            }
        }
        _ => {}
    }
    Some(())
}

/// A BPDU's flags by name, in tcpdump's order (`none` for none it names).
fn flags(f: u8) -> String {
    const NAMES: [(u8, &str); 6] = [
        (0x01, "Topology change"),
        (0x02, "Proposal"),
        (0x10, "Learn"),
        (0x20, "Forward"),
        (0x40, "Agreement"),
        (0x80, "Topology change ACK"),
    ];
    let set: Vec<&str> = NAMES.iter().filter(|(bit, _)| f & bit != 0).map(|&(_, name)| name).collect();
    if set.is_empty() {
        "none".to_owned()
    } else {
        set.join(", ")
    }
}
