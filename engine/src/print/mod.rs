//! The `print` consumer's lines: one tcpdump-like summary per frame, with
//! the time, link-level header and hex dump options tcpdump users know.
//!
//! All of it runs on the consumer's own thread, never on a worker: the
//! TCP conversations whose sequence numbers are shown relative (as tcpdump
//! does) are remembered here.

mod app;
mod dns;
mod ext;
mod icmp;
mod igmp;
mod stp;
mod tunnel;

use std::collections::HashMap;

use crate::config::{PrintHex, PrintPrecision, PrintTime};

/// What a printed line shows besides its summary (tcpdump's `-e`, `-xx`, `-XX`,
/// `-t`, `--nano`, `-S`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// The link-level header: MAC addresses, ethertype, length.
    pub link: bool,
    /// The frame's bytes under the line.
    pub hex: PrintHex,
    /// How the time is shown.
    pub time: PrintTime,
    /// The time's fraction of a second: microseconds (tcpdump's default) or nanoseconds.
    pub precision: PrintPrecision,
    /// The port's name after the time (for a consumer of several ports).
    pub port: bool,
    /// TCP sequence numbers as they are on the wire (tcpdump's `-S`),
    /// instead of relative to the conversation's first.
    pub absolute_seq: bool,
    /// Less on each line, as tcpdump's `-q`: a TCP segment as `tcp LEN`,
    /// ethertypes by name alone, and no dump of what is not decoded.
    pub quick: bool,
}

/// The timestamps a printed line's time may be relative to, and the local
/// time's offsets from UTC.
#[derive(Debug, Default)]
struct PrintClock {
    first: Option<u64>,
    previous: Option<u64>,
    /// The local offset of each frame's time (daylight saving time
    /// included), as localtime(3) gives it to tcpdump, kept for the quarter
    /// of an hour it is in (offsets change at whole quarters).
    zone: Option<(i64, i64)>,
}

/// Seconds from which the local time's offset from UTC is the same (see [`PrintClock`]).
const ZONE_SPAN: i64 = 900;

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

impl PrintClock {
    /// The local offset from UTC at `secs` (see [`PrintClock::zone`]).
    fn zone_at(&mut self, secs: i64) -> i64 {
        let span = secs.div_euclid(ZONE_SPAN);
        match self.zone {
            Some((s, zone)) if s == span => zone,
            _ => {
                let zone = crate::sys::local_offset_s(secs).unwrap_or(0);
                self.zone = Some((span, zone));
                zone
            }
        }
    }

    /// Write the time of a frame at `ts_ns` as `format` says, with
    /// `precision`, then a space (nothing for [`PrintTime::None`]). At
    /// microseconds, as tcpdump: each time is cut to the microsecond first,
    /// and differences are taken between those.
    fn write(&mut self, out: &mut String, ts_ns: u64, format: PrintTime, precision: PrintPrecision) {
        use std::fmt::Write as _;
        let nano = precision == PrintPrecision::Nano;
        let ts_ns = if nano { ts_ns } else { ts_ns - ts_ns % 1_000 };
        // (u64 nanoseconds hold under 2^35 seconds: an i64 holds them all.)
        let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
        // The fraction of a second, in the precision's digits.
        let fraction = |out: &mut String, ns: u64| {
            let _ = if nano {
                write!(out, ".{:09} ", ns % 1_000_000_000)
            } else {
                write!(out, ".{:06} ", ns % 1_000_000_000 / 1_000)
            };
        };
        let clock = |out: &mut String, ns: u64| {
            let s = ns / 1_000_000_000;
            let _ = write!(out, "{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
            fraction(out, ns);
        };
        // Signed as tcpdump's (a space for +): negative when frames are not
        // printed in time order (several ports or workers).
        let since = |out: &mut String, t0: Option<u64>| {
            let t0 = t0.unwrap_or(ts_ns);
            out.push(if ts_ns < t0 { '-' } else { ' ' });
            // Whole days left out, as tcpdump's (it formats the difference as a time of day).
            clock(out, ts_ns.abs_diff(t0) % DAY_NS);
        };
        match format {
            PrintTime::None => {}
            PrintTime::Time => {
                // The time of day, moved by the local offset.
                let zone = i128::from(self.zone_at(secs)) * 1_000_000_000;
                clock(out, (i128::from(ts_ns) + zone).rem_euclid(i128::from(DAY_NS)) as u64);
            }
            PrintTime::Epoch => {
                let _ = write!(out, "{}", ts_ns / 1_000_000_000);
                fraction(out, ts_ns);
            }
            PrintTime::Delta => since(out, self.previous),
            PrintTime::SinceFirst => since(out, self.first),
            PrintTime::Date => {
                let zone = self.zone_at(secs);
                match chrono::DateTime::from_timestamp(secs.saturating_add(zone), 0) {
                    Some(t) => {
                        let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S"));
                        fraction(out, ts_ns);
                    }
                    None => clock(out, ts_ns % DAY_NS),
                }
            }
        }
        self.first.get_or_insert(ts_ns);
        self.previous = Some(ts_ns);
    }
}

/// Makes a `print` consumer's lines: its options, the times lines may be
/// relative to, and the TCP conversations whose sequence numbers it shows
/// relative to their first.
#[derive(Debug, Default)]
pub struct Printer {
    options: PrintOptions,
    clock: PrintClock,
    tcp: TcpConversations,
}

impl Printer {
    /// A printer with `options`, that has printed nothing yet.
    #[must_use]
    pub fn new(options: PrintOptions) -> Self {
        Self { options, clock: PrintClock::default(), tcp: TcpConversations::new(options.absolute_seq) }
    }

    /// Append the line (and hex dump) of a frame of `wire_len` bytes on the
    /// wire, captured as `data`, at `ts_ns`, from port `port`, to `out`.
    pub fn line(&mut self, out: &mut String, (ts_ns, wire_len, data): (u64, u32, &[u8]), port: &str) {
        use std::fmt::Write as _;
        if invalid_header(out, data.len(), wire_len) {
            return;
        }
        self.clock.write(out, ts_ns, self.options.time, self.options.precision);
        if self.options.port {
            let _ = write!(out, "{port} ");
        }
        let quick = self.options.quick;
        // Not even an Ethernet header captured: tcpdump says that alone, with no dump.
        if data.len() < 14 {
            out.push_str(" [|ether]\n");
            // (-xx and -XX dump the whole frame whatever it is.)
            match self.options.hex {
                PrintHex::Hex => hex_dump(out, data, false),
                PrintHex::HexAscii => hex_dump(out, data, true),
                PrintHex::Ascii => ascii_dump(out, data),
                _ => {}
            }
            return;
        }
        if self.options.link {
            link_header(out, data, wire_len, quick);
        }
        let undecoded = describe(out, data, wire_len, (self.options.link, quick), &mut self.tcp);

        // A decoder that gave up on the frame: tcpdump then dumps the whole frame.
        let mut cut = undecoded == Undecoded::GaveUp;
        out.push('\n');
        // As tcpdump: what it could not decode, dumped (-A's text comes after it).
        match undecoded {
            // (Unless a hex dump was asked for anyway.)
            Undecoded::Payload
                if !quick && matches!(self.options.hex, PrintHex::None | PrintHex::Ascii | PrintHex::NetworkAscii) =>
            {
                hex_dump(out, data.get(link_header_len(data)..).unwrap_or_default(), true);
            }
            Undecoded::Rest { at, cut: marker }
                if !quick && matches!(self.options.hex, PrintHex::None | PrintHex::Ascii | PrintHex::NetworkAscii) =>
            {
                hex_dump(out, data.get(at..).unwrap_or_default(), true);
                if let Some(marker) = marker {
                    out.pop();
                    let _ = writeln!(out, " [|{marker}]");
                    cut = true;
                }
            }
            Undecoded::Bytes { at, len } => hex_dump(out, data.get(at..at + len).unwrap_or_default(), false),
            Undecoded::PayloadOnly { at, len } => {
                hex_dump(out, data.get(at..).map(|d| &d[..len.min(d.len())]).unwrap_or_default(), true);
            }
            _ => {}
        }
        // A frame cut within its VLAN tags: tcpdump's -x, -X and -A dump nothing of it.
        let tag_cut = vlan_tags(data).1;
        let network_only =
            matches!(self.options.hex, PrintHex::NetworkHex | PrintHex::NetworkHexAscii | PrintHex::NetworkAscii);
        // (Not for a frame a tunnel carries: its network layer is the frame's.)
        let llc_cut = matches!(undecoded, Undecoded::PayloadOnly { at, .. } if at == vlan_tags(data).0 + 2);
        if (tag_cut || llc_cut) && network_only {
            return;
        }
        let (from, ascii) = match self.options.hex {
            PrintHex::None => return,
            PrintHex::Hex => (0, false),
            PrintHex::HexAscii => (0, true),
            PrintHex::NetworkHex if !cut => (link_header_len(data), false),
            PrintHex::NetworkHexAscii if !cut => (link_header_len(data), true),
            PrintHex::NetworkHex => (0, false),
            PrintHex::NetworkHexAscii => (0, true),
            PrintHex::Ascii => return ascii_dump(out, data),
            PrintHex::NetworkAscii if cut => return ascii_dump(out, data),
            PrintHex::NetworkAscii => return ascii_dump(out, data.get(link_header_len(data)..).unwrap_or_default()),
        };
        hex_dump(out, data.get(from..).unwrap_or_default(), ascii);
    }
}

/// tcpdump's line for a record whose lengths cannot be (no time, nothing
/// decoded): `[Invalid header: caplen==0, len(40) < caplen(60)]`. Whether
/// the record was one.
fn invalid_header(out: &mut String, caplen: usize, len: u32) -> bool {
    use std::fmt::Write as _;
    let len = len as usize;
    let mut faults = Vec::new();
    if caplen == 0 {
        faults.push("caplen==0".to_owned());
    }
    if len == 0 {
        faults.push("len==0".to_owned());
    } else if len < caplen {
        faults.push(format!("len({len}) < caplen({caplen})"));
    }
    if caplen > crate::pcapio::MAX_SNAPLEN as usize {
        faults.push(format!("caplen({caplen}) > {}", crate::pcapio::MAX_SNAPLEN));
    }
    if len > crate::pcapio::MAX_SNAPLEN as usize {
        faults.push(format!("len({len}) > {}", crate::pcapio::MAX_SNAPLEN));
    }
    if faults.is_empty() {
        return false;
    }
    let _ = writeln!(out, "[Invalid header: {}]", faults.join(", "));
    true
}

/// The link-level header as tcpdump's `-e` prints it:
/// `SRC > DST, ethertype IPv4 (0x0800), length N: `.
fn link_header(out: &mut String, frame: &[u8], wire_len: u32, quick: bool) {
    use std::fmt::Write as _;
    let Some(h) = frame.get(..14) else { return };
    let mac = |m: &[u8]| crate::stats::format_mac(m.try_into().expect("six bytes"));
    let et = u16::from_be_bytes([h[12], h[13]]);
    if et <= 1500 {
        // A length, not an ethertype: IEEE 802.3 (LLC follows); tcpdump shows that length.
        let _ = write!(out, "{} > {}, 802.3, length {et}: ", mac(&h[6..12]), mac(&h[..6]));
        return;
    }
    if is_tag(et) && frame.len() < 18 {
        // A tag cut short: tcpdump names neither it nor the length (`[|vlan]` follows).
        let _ = write!(out, "{} > {}, ", mac(&h[6..12]), mac(&h[..6]));
        return;
    }
    let _ = write!(out, "{} > {}, {}, length {wire_len}: ", mac(&h[6..12]), mac(&h[..6]), ether_type(et, quick));
}

/// An ethertype as tcpdump shows it after the MAC addresses or a VLAN tag:
/// `ethertype IPv4 (0x0800)`, or with `-q` `IPv4` (`Unknown Ethertype (0x88b5)`).
fn ether_type(et: u16, quick: bool) -> String {
    match ether_type_name(et) {
        "Unknown" if quick => format!("Unknown Ethertype ({et:#06x})"),
        name if quick => name.to_owned(),
        name => format!("ethertype {name} ({et:#06x})"),
    }
}

/// Whether `et` is a VLAN tag's TPID (802.1Q, 802.1ad, the older QinQ
/// 0x9100 and 0x9200).
const fn is_tag(et: u16) -> bool {
    matches!(et, 0x8100 | 0x88a8 | 0x9100 | 0x9200)
}

/// An ethertype's name as tcpdump gives it.
const fn ether_type_name(et: u16) -> &'static str {
    match et {
        0x0800 => "IPv4",
        0x86dd => "IPv6",
        0x0806 => "ARP",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x88cc => "LLDP",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE D",
        0x8864 => "PPPoE S",
        0x8035 => "Reverse ARP",
        0x888e => "EAPOL",
        0x8809 => "Slow Protocols",
        0x88f7 => "PTP",
        0x8902 => "CFM",
        0x9100 => "802.1Q-9100",
        0x9200 => "802.1Q-9200",
        0x88e5 => "802.1AE MACsec",
        _ => "Unknown",
    }
}

/// Where `part`, a slice of `frame`, starts in it.
fn offset_in(frame: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize)
}

/// Where a frame's VLAN tags end (at the ethertype after them: 12 for
/// none), and whether a tag after them was cut short (its type captured,
/// not its 4 bytes after).
fn vlan_tags(frame: &[u8]) -> (usize, bool) {
    let mut at = 12;
    while let Some(&[a, b]) = frame.get(at..at + 2) {
        if !is_tag(u16::from_be_bytes([a, b])) {
            break;
        }
        if frame.len() < at + 6 {
            return (at, true);
        }
        at += 4;
    }
    (at, false)
}

/// A VLAN tag as tcpdump's `-e` shows it: `vlan 10, p 0, ethertype IPv4 (0x0800), `;
/// `ether_type`: whether the ethertype after it is shown, and with `-q` (`Some(true)`).
fn vlan_tag(out: &mut String, v: &etherparse::SingleVlanSlice<'_>, ether_type: Option<bool>) {
    use std::fmt::Write as _;
    let dei = if v.drop_eligible_indicator() { ", DEI" } else { "" };
    let _ = write!(out, "vlan {}, p {}{dei}, ", v.vlan_identifier().value(), v.priority_code_point().value());
    if let Some(quick) = ether_type {
        let _ = write!(out, "{}, ", self::ether_type(v.ether_type().0, quick));
    }
}

/// The length of a frame's link-level header as tcpdump counts it for `-x`:
/// the Ethernet header and its VLAN tags, and for an IEEE 802.3 frame (a
/// length where the ethertype would be) its LLC header (and SNAP header).
fn link_header_len(frame: &[u8]) -> usize {
    let mut at = 12;
    while let Some(&[a, b]) = frame.get(at..at + 2) {
        let et = u16::from_be_bytes([a, b]);
        // 802.1Q, 802.1ad and the older QinQ ethertypes, followed by a tag.
        if is_tag(et) && frame.len() >= at + 6 {
            at += 4;
            continue;
        }
        if et <= 1500 {
            // DSAP, SSAP, and a control field of one byte (unnumbered) or two.
            return match frame.get(at + 2..at + 5) {
                Some(&[0xaa, 0xaa, 0x03]) => at + 10,
                Some(&[_, _, control]) if control & 3 == 3 => at + 5,
                Some(_) => at + 6,
                None => at + 2,
            };
        }
        break;
    }
    at + 2
}

/// The frame's bytes as text under its line, as tcpdump's `-A`: graphic
/// characters, spaces, tabs and newlines as they are, a carriage return
/// dropped before a newline (or at the end), other bytes as `.`. Nothing
/// for no bytes.
fn ascii_dump(out: &mut String, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    for (i, &b) in data.iter().enumerate() {
        match b {
            // As tcpdump: a CR is printed as `.` only when more than one byte
            // follows and the next is not a newline.
            b'\r' if data.len() - i - 1 > 1 && data[i + 1] != b'\n' => out.push('.'),
            b'\r' => {}
            b'\t' | b' ' | b'\n' => out.push(char::from(b)),
            b if b.is_ascii_graphic() => out.push(char::from(b)),
            _ => out.push('.'),
        }
    }
    out.push('\n');
}

/// The frame's bytes, 16 a line, as tcpdump's `-xx` (and with `ascii`,
/// `-XX`): `\t0x0000:  4500 0054 ...  E..T`.
fn hex_dump(out: &mut String, data: &[u8], ascii: bool) {
    use std::fmt::Write as _;
    for (i, row) in data.chunks(16).enumerate() {
        let _ = write!(out, "\t0x{:04x}:  ", i * 16);
        for (j, pair) in row.chunks(2).enumerate() {
            if j > 0 {
                out.push(' ');
            }
            for b in pair {
                let _ = write!(out, "{b:02x}");
            }
        }
        if ascii {
            // Two spaces after a full row's 39 columns; a short last row is padded to line up.
            let width = row.len() * 2 + row.len().div_ceil(2) - 1;
            out.extend(std::iter::repeat_n(' ', 41 - width));
            // As tcpdump: graphic characters only (a space is a dot too).
            out.extend(row.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }));
        }
        out.push('\n');
    }
}

/// What tcpdump dumps under a frame's line without being asked to (no `-x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecoded {
    /// Nothing.
    Nothing,
    /// What follows the link-level header, in hex and text: a frame of an
    /// ethertype it does not decode (not with `-q`, nor under a hex dump
    /// asked for).
    Payload,
    /// What follows the link-level header, in hex and text, whatever was
    /// asked, and no dump of the network layer (`-x`, `-X`, `-A`; a dump
    /// of the frame is one): an LLC header cut short, by the snap length
    /// or by the 802.3 length before it.
    PayloadOnly {
        /// Where it starts in the frame (after the link-level header).
        at: usize,
        /// At most how many bytes (the 802.3 length).
        len: usize,
    },
    /// `len` bytes from `at` in hex: an ICMPv6 message of a type or an
    /// unreachable code it does not decode (also under a hex dump asked for).
    Bytes {
        /// Where the bytes start in the frame.
        at: usize,
        /// How many there are (0 for none).
        len: usize,
    },
    /// What follows `at`, in hex and text, as for [`Undecoded::Payload`]:
    /// what an MPLS label stack carries when it is not IP, what follows the
    /// link-level header of an Ethernet frame a tunnel carries (of an
    /// ethertype not decoded). `cut`: cut short by the snap length, which
    /// the dump's end says (` [|mpls]`), and tcpdump then gives up on the frame.
    Rest {
        /// Where it starts in the frame.
        at: usize,
        /// The protocol named at the dump's end, if cut short.
        cut: Option<&'static str>,
    },
    /// Nothing, but the decoder gave up on the frame at a field past what
    /// was captured: a dump of the network layer asked for (`-x`, `-X`,
    /// `-A`) starts at the frame's first byte, as tcpdump's does.
    GaveUp,
}

/// The IPv6 extension header of type `next` at the start of `rest`, whole
/// (hop-by-hop, routing, destination options, fragment, authentication);
/// `None` for another type or one cut short.
fn v6_ext_header(next: u8, rest: &[u8]) -> Option<&[u8]> {
    let len = match next {
        0 | 43 | 60 => (usize::from(*rest.get(1)?) + 1) * 8,
        44 => 8,
        51 => (usize::from(*rest.get(1)?) + 2) * 4,
        _ => return None,
    };
    rest.get(..len)
}

/// A message's captured bytes, read as tcpdump's `GET_` reads them: a field
/// past what was captured gives up on the frame.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    /// That `n` bytes from `at` were captured, as tcpdump's `ND_TCHECK_`
    /// checks it: a miss ends the message's line, not the frame.
    fn check(&self, at: usize, n: usize) -> Result<(), Cut> {
        if self.0.len() >= at + n {
            Ok(())
        } else {
            Err(Cut::Here)
        }
    }

    fn get<const N: usize>(&self, at: usize) -> Result<[u8; N], Cut> {
        self.0.get(at..at + N).and_then(|b| b.try_into().ok()).ok_or(Cut::Frame)
    }

    fn u8(&self, at: usize) -> Result<u8, Cut> {
        self.get::<1>(at).map(|[b]| b)
    }

    fn u16(&self, at: usize) -> Result<u16, Cut> {
        self.get(at).map(u16::from_be_bytes)
    }

    fn u32(&self, at: usize) -> Result<u32, Cut> {
        self.get(at).map(u32::from_be_bytes)
    }

    fn v4(&self, at: usize) -> Result<std::net::Ipv4Addr, Cut> {
        self.get::<4>(at).map(std::net::Ipv4Addr::from)
    }

    fn v6(&self, at: usize) -> Result<std::net::Ipv6Addr, Cut> {
        self.get::<16>(at).map(std::net::Ipv6Addr::from)
    }
}

/// How tcpdump stopped at a field of a message past what was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Within the message's printer, which ended the line (` [|icmp]`,
    /// ` [|icmp6]`).
    Here,
    /// By giving up on the frame (its `GET_` reads): ` [|icmp]` or
    /// ` [|icmp6]` ends the line, and a dump of the network layer asked for
    /// (`-x`, `-X`, `-A`) starts at the frame's first byte.
    Frame,
}

impl Undecoded {
    /// What a message cut as `cut` (if it was) leaves to dump.
    fn after(cut: Option<Cut>) -> Self {
        match cut {
            Some(Cut::Frame) => Self::GaveUp,
            _ => Self::Nothing,
        }
    }

    /// What an ICMPv6 message at `at` leaves to dump: its bytes tcpdump dumps, or its cut.
    fn after_icmp6(dumped: Result<usize, Cut>, at: usize) -> Self {
        match dumped {
            Ok(0) => Self::Nothing,
            Ok(len) => Self::Bytes { at, len },
            Err(cut) => Self::after(Some(cut)),
        }
    }
}

/// A short decode of an Ethernet frame and, as tcpdump ends its line, its
/// length: of the UDP or TCP payload, of the IP payload (ICMP and other
/// protocols), of what follows the link-level header (ARP and other
/// ethertypes), or of the frame (runts). Lengths come from the headers, so a
/// frame cut short by the snap length is decoded as far as its bytes go and
/// its lengths are those it had on the wire. `after_link`: the line shows
/// the link-level header already, which names the network protocol, so the
/// decode leaves out `IP`/`IP6` (as tcpdump's `-e` does). A TCP segment's
/// sequence numbers are shown relative to its conversation's in `tcp`
/// (unless it is asked for absolute numbers), which this frame may begin.
/// Returns what tcpdump dumps under such a line unasked.
pub fn describe(
    out: &mut String,
    frame: &[u8],
    wire_len: u32,
    (after_link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    use std::fmt::Write as _;

    use etherparse::LaxSlicedPacket;
    let Ok(p) = LaxSlicedPacket::from_ethernet(frame) else {
        let _ = write!(out, " [|ether]");
        return Undecoded::Nothing;
    };
    // VLAN tags, any number of them: tcpdump shows them with the
    // link-level header only, each tag's ethertype unless the tag it names
    // was cut short (`[|vlan]` follows).
    let (tags_end, tag_cut) = vlan_tags(frame);
    let mut at = 12;
    while at < tags_end {
        let tag = &frame[at + 2..at + 6];
        at += 4;
        if after_link {
            let v = etherparse::SingleVlanSlice::from_slice(tag).expect("four bytes");
            vlan_tag(out, &v, (!(tag_cut && at == tags_end)).then_some(quick));
        }
    }
    if tag_cut && tags_end > 12 {
        out.push_str(" [|vlan]");
        return Undecoded::Nothing;
    }
    // An IP header of the other version than its ethertype names.
    let ip = frame.get(tags_end + 2..).unwrap_or_default();
    match frame.get(tags_end..tags_end + 2) {
        Some([0x08, 0x00]) if wrong_version(out, ip, false, after_link) => return Undecoded::Nothing,
        Some([0x86, 0xdd]) if wrong_version(out, ip, true, after_link) => return Undecoded::Nothing,
        _ => {}
    }
    // More than two tags, or a tag of 0x9200 (the slicer reads two, of
    // the other types): what follows the last.
    if tags_end > 20 || (12..tags_end).step_by(4).any(|at| frame[at..at + 2] == [0x92, 0x00]) {
        let et = u16::from_be_bytes([frame[tags_end], frame[tags_end + 1]]);
        let p = LaxSlicedPacket::from_ether_type(etherparse::EtherType(et), &frame[tags_end + 2..]);
        return match p.net {
            None => non_ip(out, frame, &p, wire_len, (after_link, quick), tcp),
            Some(_) => describe_ip(out, frame, &p, wire_len as usize, (after_link, quick), tcp),
        };
    }
    if p.net.is_none() {
        return non_ip(out, frame, &p, wire_len, (after_link, quick), tcp);
    }
    describe_ip(out, frame, &p, wire_len as usize, (after_link, quick), tcp)
}

/// What follows the Ethernet header (and its tags) of a frame that is not
/// IP, as tcpdump words it (with `after_link`, after the link-level header).
fn non_ip(
    out: &mut String,
    frame: &[u8],
    p: &etherparse::LaxSlicedPacket<'_>,
    wire_len: u32,
    (after_link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    use std::fmt::Write as _;
    // Where a header starts within the frame.
    let at = |header: &[u8]| offset_in(frame, header);
    // What follows the Ethernet header and its tags, on the wire.
    let (et, rest) =
        p.ether_payload().map_or((0, 0), |e| (e.ether_type.0, (wire_len as usize).saturating_sub(at(e.payload))));
    let _ = match et {
        0x88cc => {
            let _ = write!(out, "LLDP, length {rest}");
            if !lldp_whole(p.ether_payload().map_or(&[][..], |e| e.payload), rest) {
                out.push_str(" [|lldp]");
            }
            Ok(())
        }
        // An IP header cut short (after `ethertype ..., ` with the link-level header).
        // (`IP ` once its first byte, the version, was captured.)
        // An IP header cut short (after `ethertype ..., ` with the link-level header).
        0x0800 => {
            let ip = p.ether_payload().map_or(&[][..], |e| e.payload);
            let rest = p.ether_payload().map_or(0, |e| (wire_len as usize).saturating_sub(at(e.payload)));
            return ip4_cut(out, ip, rest, if after_link { "" } else { "IP " });
        }
        0x86dd => write!(out, " [|ip6]"),
        // An MPLS label stack, and what it carries.
        0x8847 | 0x8848 => {
            let (mpls, rest) = p
                .ether_payload()
                .map_or((&[][..], 0), |e| (e.payload, (wire_len as usize).saturating_sub(at(e.payload))));
            return tunnel::mpls(out, frame, (mpls, rest), (after_link, quick), tcp);
        }
        // A VLAN tag cut short (the first, or a second one).
        t if is_tag(t) && frame.len() < 22 => write!(out, " [|vlan]"),
        // An ARP message cut before the target's protocol address ends.
        // (tcpdump gives up on the frame.)
        0x0806 if !p.ether_payload().is_some_and(|e| arp_whole(e.payload)) => {
            out.push_str(" [|arp]");
            return Undecoded::GaveUp;
        }
        0x0806 => {
            if !after_link {
                out.push_str("ARP, ");
            }
            if let Some(arp) = p.ether_payload().and_then(|e| arp_words(e.payload)) {
                out.push_str(&arp);
                out.push_str(", ");
            }
            write!(out, "length {rest}")
        }
        // An LLC header cut short (by the snap length, or by the length the
        // 802.3 header gives): tcpdump says so, then dumps what there is.
        0..=1500 if p.ether_payload().is_none_or(|e| e.payload.len().min(usize::from(et)) < 3) => {
            out.push_str(" [|llc]");
            let from = p.ether_payload().map_or_else(|| link_header_len(frame), |e| at(e.payload));
            return Undecoded::PayloadOnly { at: from, len: usize::from(et) };
        }
        // A SNAP header (after an LLC one of 0xaa 0xaa 0x03) cut short, the same way.
        0..=1500
            if p.ether_payload().is_some_and(|e| {
                e.payload.starts_with(&[0xaa, 0xaa, 0x03]) && e.payload.len().min(usize::from(et)) < 8
            }) =>
        {
            out.push_str(" [|snap]");
            return Undecoded::Nothing;
        }
        // A spanning-tree BPDU (after its LLC header, which -e shows).
        0..=1500 if p.ether_payload().is_some_and(|e| stp::is_bpdu(e.payload)) => {
            let llc = p.ether_payload().map_or(&[][..], |e| e.payload);
            if after_link {
                stp::llc_header(out, llc);
            }
            if stp::bpdu(out, &llc[3..], usize::from(et).saturating_sub(3)) {
                return Undecoded::GaveUp;
            }
            Ok(())
        }
        // IEEE 802.3: a length, and an LLC header (not decoded further).
        0..=1500 => match p.ether_payload().and_then(|e| e.payload.get(..2)) {
            Some(&[dsap, ssap]) => write!(out, "LLC, dsap {dsap:#04x}, ssap {ssap:#04x}, length {et}"),
            _ => write!(out, "LLC, length {et}"),
        },
        // Not decoded: the link-level header (with the ethertype after
        // the tags, as tcpdump shows it), and (from the caller) a dump of the rest.
        _ => {
            if !after_link {
                let mac = |m: &[u8]| crate::stats::format_mac(m.try_into().expect("six bytes"));
                let _ = write!(
                    out,
                    "{} > {}, {}, length {wire_len}: ",
                    mac(&frame[6..12]),
                    mac(&frame[..6]),
                    ether_type(et, quick)
                );
            }
            return Undecoded::Payload;
        }
    };
    Undecoded::Nothing
}

/// An IP header, captured as `ip`, of another version than what carries it
/// names (an ethertype, a protocol number, an MPLS label: IPv6 if `v6`), as
/// tcpdump says it: `IP6, wrong link-layer encapsulation (invalid)`,
/// `IP5 (invalid)`, `IP6 version error: 4 != 6` (once the 40 bytes of an
/// IPv6 header were captured, ` [|ip6]` before; without `IP6 ` after the
/// link-level header). Whether it was one.
fn wrong_version(out: &mut String, ip: &[u8], v6: bool, after_link: bool) -> bool {
    use std::fmt::Write as _;
    let Some(version) = ip.first().map(|b| b >> 4) else { return false };
    match (v6, version) {
        (false, 4) | (true, 6) => false,
        (false, 6) => {
            out.push_str("IP6, wrong link-layer encapsulation (invalid)");
            true
        }
        (false, v) => {
            let _ = write!(out, "IP{v} (invalid)");
            true
        }
        (true, v) if ip.len() >= 40 => {
            let _ = write!(out, "{}version error: {v} != 6", if after_link { "" } else { "IP6 " });
            true
        }
        // (tcpdump reads the whole header first.)
        (true, _) => {
            out.push_str(" [|ip6]");
            true
        }
    }
}

/// An IPv4 header cut short, captured as `ip` (`rest` bytes on the wire), as
/// tcpdump words it after `tag` (`IP `, or nothing after the link-level
/// header, which names it). (`IP ` once its first byte, the version, was
/// captured.)
fn ip4_cut(out: &mut String, ip: &[u8], rest: usize, tag: &str) -> Undecoded {
    use std::fmt::Write as _;
    let ihl = ip.first().map(|v| usize::from(v & 0x0f) * 4);
    let total = ip.get(2..4).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let _ = match (ihl, total) {
        // Less than a minimal header captured: tcpdump checks for its 20
        // bytes before it reads any field (a runt, as a record cut short).
        (Some(_), _) if ip.len() < 20 => write!(out, "{tag} [|ip]"),
        // A header length under the minimum.
        (Some(ihl), _) if ihl < 20 => write!(out, "{tag}bad-hlen {ihl}"),
        // Options cut short: what the header says is missing, the addresses
        // unless the protocol shows them with its ports (TCP, UDP, DCCP,
        // SCTP), then what was captured (tcpdump gives up on the frame).
        (Some(ihl), total) if ihl > ip.len() => {
            out.push_str(tag);
            if let Some(total) = total.filter(|&total| total > rest) {
                let _ = write!(out, "truncated-ip - {} bytes missing! ", total - rest);
            }
            // A total length under the header's own: said before the cut
            // (0 is an offloaded frame's, read as its length: below).
            if let Some(total) = total.filter(|&total| total != 0 && total < ihl) {
                let _ = write!(out, "bad-len {total}");
                return Undecoded::Nothing;
            }
            if !matches!(ip[9], 6 | 17 | 33 | 132) {
                let addr = |at: usize| std::net::Ipv4Addr::from(be32(&ip[at..]));
                let _ = write!(out, "{} > {}: ", addr(12), addr(16));
            }
            let _ = write!(out, " [remaining caplen({}) < header length({ihl})] [|ip]", ip.len());
            return Undecoded::GaveUp;
        }
        (Some(_), _) => write!(out, "{tag} [|ip]"),
        // Nothing of it: tcpdump gives up on the frame.
        (None, _) => {
            out.push_str(" [|ip]");
            return Undecoded::GaveUp;
        }
    };
    Undecoded::Nothing
}

/// An IP packet (`p`, parsed from within `frame`: the frame's own, or one a
/// tunnel carries) as tcpdump words it; `wire_len`: where what holds it
/// ends on the wire, as an offset in `frame`.
fn describe_ip(
    out: &mut String,
    frame: &[u8],
    p: &etherparse::LaxSlicedPacket<'_>,
    wire_len: usize,
    (after_link, quick): (bool, bool),
    tcp: &mut TcpConversations,
) -> Undecoded {
    use std::fmt::Write as _;

    use etherparse::{LaxNetSlice, TransportSlice};
    // Where a header starts within the frame.
    let at = |header: &[u8]| offset_in(frame, header);
    // The IP header's addresses and protocol name, and where its payload ends on the wire.
    // An IPv4 fragment: its offset, and its protocol.
    let mut fragment = None;
    // An IPv4 total length under the header's length.
    let mut bad_len = None;
    // IPv6: `HBH `, `DSTOPT `, `frag (OFFSET|LEN) `, `RT6 (...) `; IPv6 and
    // IPv4: `AH(...): ` (after them the transport shows its ports without
    // the addresses).
    let mut exts = String::new();
    // A routing or authentication header that ends the line (invalid).
    let mut ended = None;
    // The last of them a fragment header.
    let mut after_fragment = false;
    let (ends, proto, ip_end) = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            // A total length of 0 is a frame offloaded past 64 KiB (TSO, BIG
            // TCP GRO): it ends with the frame, as tcpdump guesses too.
            let end = match h.total_len() {
                0 => wire_len,
                n => at(h.slice()) + usize::from(n),
            };
            // A total length shorter than the header itself.
            if h.total_len() != 0 && usize::from(h.total_len()) < usize::from(h.ihl()) * 4 {
                bad_len = Some(h.total_len());
            }
            if h.more_fragments() || h.fragments_offset().value() != 0 {
                fragment = Some((h.fragments_offset().value(), h.protocol().0, ip.payload().payload));
            }
            if let Some(auth) = ip.extensions().auth {
                let next = ext::ah(&mut exts, auth.slice());
                if next != ext::Next::After(auth.slice().len()) {
                    ended = Some(next);
                }
            }
            (Ends::V4(h.source(), h.destination()), "IP ", end)
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let end = match h.payload_length() {
                0 => wire_len,
                n => at(h.slice()) + 40 + usize::from(n),
            };
            // Its extension headers as tcpdump names them; a fragment's
            // offset and the bytes after its header, on the wire. (Walked
            // from their bytes: etherparse's iterator reads past the headers
            // a lax parse kept when it stopped at a misplaced hop-by-hop one.)
            let (mut next, mut rest) = (h.next_header().0, ip.extensions().slice());
            while let Some(header) = v6_ext_header(next, rest) {
                after_fragment = next == 44;
                match next {
                    0 => exts.push_str("HBH "),
                    60 => exts.push_str("DSTOPT "),
                    43 | 51 => {
                        let next = if next == 43 { ext::rt6(&mut exts, header) } else { ext::ah(&mut exts, header) };
                        if next != ext::Next::After(header.len()) {
                            ended = Some(next);
                            break;
                        }
                    }
                    44 => {
                        let after = at(header) + header.len();
                        // The offset in 8-byte units, above 3 flag bits.
                        let offset = u16::from_be_bytes([header[2], header[3]]) >> 3;
                        let _ = write!(exts, "frag ({}|{}) ", usize::from(offset) * 8, end.saturating_sub(after));
                        let payload = ip.payload();
                        fragment = Some((offset, payload.ip_number.0, payload.payload));
                        // A later fragment's bytes are its datagram's, not headers.
                        if offset != 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                (next, rest) = (header[0], &rest[header.len()..]);
            }
            (Ends::V6(h.source(), h.destination()), "IP6 ", end)
        }
        _ => return Undecoded::Nothing,
    };
    let (src, dst) = ends.addrs();
    let mut undecoded = Undecoded::Nothing;
    let mut proto = if after_link { "" } else { proto };
    if matches!(ends, Ends::V4(..)) && ip_end > wire_len {
        // The IP header says more than the frame held on the wire; tcpdump
        // says so after `IP`, which it then does not repeat.
        let _ = write!(out, "{proto}truncated-ip - {} bytes missing! ", ip_end - wire_len);
        proto = "";
    }
    if matches!(ends, Ends::V6(..)) && ip_end > wire_len {
        // (IPv6's says it without a space after it.)
        let _ = write!(out, "{proto}truncated-ip6 - {} bytes missing!", ip_end - wire_len);
        proto = "";
    }
    if let Some(len) = bad_len {
        let _ = write!(out, "{proto}bad-len {len}");
        return Undecoded::Nothing;
    }
    if let Some(next) = ended {
        let _ = write!(out, "{proto}{src} > {dst}: {exts}");
        return if next == ext::Next::Cut { Undecoded::GaveUp } else { Undecoded::Nothing };
    }
    // A fragment after the first has no transport header; the first has one, which the slicer leaves.
    let reparsed;
    let transport = match fragment {
        // An IPv6 fragment after the first: its extension headers only.
        Some((offset, ..)) if offset != 0 && matches!(ends, Ends::V6(..)) => {
            let _ = write!(out, "{proto}{src} > {dst}: {}", exts.trim_end());
            return Undecoded::Nothing;
        }
        Some((offset, protocol, _)) if offset != 0 => {
            let _ = write!(out, "{proto}{src} > {dst}: ip-proto-{protocol}");
            return Undecoded::Nothing;
        }
        Some((_, 6, payload)) => {
            reparsed = etherparse::TcpSlice::from_slice(payload).ok().map(TransportSlice::Tcp);
            reparsed.as_ref()
        }
        Some((_, 17, payload)) => {
            reparsed = etherparse::UdpSlice::from_slice_lax(payload).ok().map(TransportSlice::Udp);
            reparsed.as_ref()
        }
        _ => p.transport.as_ref(),
    };
    // The bytes from `start` to the end of the IP payload, on the wire.
    let from = |start: &[u8]| ip_end.saturating_sub(at(start));
    // `IP SRC.PORT > DST.PORT`, or after IPv6 extension headers
    // `IP6 SRC > DST: EXTS PORT > PORT`, as tcpdump shows a transport's ends.
    let ends_at = |out: &mut String, (sp, dp): (u16, u16)| {
        if exts.is_empty() {
            write!(out, "{proto}{src}.{sp} > {dst}.{dp}")
        } else {
            write!(out, "{proto}{src} > {dst}: {exts}{sp} > {dp}")
        }
    };
    // ICMP in an IPv6 packet, ICMPv6 in an IPv4 one.
    let number = p.ip_payload().map(|pl| pl.ip_number.0);
    match (&ends, number) {
        (Ends::V6(..), Some(n @ (1 | 2))) if fragment.is_none_or(|(offset, ..)| offset == 0) => {
            let which = if n == 1 { "ICMP" } else { "IGMP" };
            let _ = write!(out, "{proto}{src} > {dst}: {exts}[{which} requires IPv4] (invalid)");
            return Undecoded::Nothing;
        }
        (Ends::V4(..), Some(58)) if fragment.is_none_or(|(offset, ..)| offset == 0) => {
            let _ = write!(out, "{proto}{src} > {dst}: [ICMPv6 requires IPv6] (invalid)");
            return Undecoded::Nothing;
        }
        // IPv6's "no next header" (59).
        (Ends::V6(..), Some(59)) => {
            let _ = write!(out, "{proto}{src} > {dst}: {exts}no next header");
            return Undecoded::Nothing;
        }
        _ => {}
    }
    let _ = match transport {
        Some(TransportSlice::Udp(u)) => {
            let _ = ends_at(out, (u.source_port(), u.destination_port()));
            let (ulen, room) = (u.length(), from(u.slice()));
            if ulen < 8 {
                write!(out, ": truncated-udplength {ulen}")
            } else if usize::from(ulen) > room && fragment.is_none() {
                // (A first fragment holds only part of the datagram its length counts.)
                write!(out, ": UDP, bad length {} > {}", ulen - 8, room.saturating_sub(8))
            } else {
                // (A first fragment's message: as far as the fragment goes, as tcpdump takes it.)
                let len = usize::from(ulen - 8).min(room.saturating_sub(8));
                let app = if quick { app::UdpApp::Other } else { app::udp_app(u.source_port(), u.destination_port()) };
                // (What a tunnel gets: what was captured after the UDP header, also past its length.)
                let after = frame.get(at(u.slice()) + 8..).unwrap_or_default();
                out.push_str(": ");
                undecoded = match app {
                    app::UdpApp::Dns(mdns) => Undecoded::after(dns::dns(out, u.payload(), len, mdns)),
                    app::UdpApp::Bootp => Undecoded::after(app::bootp(out, u.payload(), len)),
                    app::UdpApp::Ntp => Undecoded::after(app::ntp(out, u.payload(), len)),
                    app::UdpApp::Vxlan => tunnel::vxlan(out, frame, (after, len), (after_link, quick), tcp),
                    app::UdpApp::Geneve => tunnel::geneve(out, frame, (after, len), (after_link, quick), tcp),
                    app::UdpApp::Other => {
                        let _ = write!(out, "UDP, length {}", ulen - 8);
                        Undecoded::Nothing
                    }
                };
                Ok(())
            }
        }
        Some(TransportSlice::Tcp(t)) if quick => {
            let _ = ends_at(out, (t.source_port(), t.destination_port()));
            tcp_quick(out, t.header_len(), from(t.slice()))
        }
        Some(TransportSlice::Tcp(t)) => {
            let _ = ends_at(out, (t.source_port(), t.destination_port()));
            let _ = write!(out, ": Flags [{}]", tcp_flags(t.slice()[13]));
            undecoded = tcp_fields(out, t, from(t.slice()), &ends, tcp);
            Ok(())
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let _ = write!(out, "{proto}{src} > {dst}: {exts}");
            undecoded = Undecoded::after(icmp::icmp(out, i.slice(), from(i.slice())));
            Ok(())
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let _ = write!(out, "{proto}{src} > {dst}: {exts}");
            undecoded = Undecoded::after_icmp6(icmp::icmp6(out, i.slice(), from(i.slice())), at(i.slice()));
            Ok(())
        }
        // A UDP or TCP header cut short (a snaplen): its ports if they
        // were captured, then `[|udp]` / `[|tcp]`, as tcpdump shows it.
        // A protocol not decoded here, by number, as tcpdump shows one it does not know.
        None => {
            let (len, number) = p.ip_payload().map_or((0, 0), |pl| (from(pl.payload), pl.ip_number.0));
            let captured = p.ip_payload().map_or(&[][..], |pl| pl.payload);
            let ports = captured.get(..4).map(|b| (u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])));
            // A TCP header length the segment cannot have.
            let bad_tcp_hl = captured.get(12).is_some_and(|b| !(20..=len).contains(&(usize::from(b >> 4) * 4)));
            match (number, ports) {
                // A first IPv6 fragment with nothing captured after its fragment header: the headers alone.
                _ if captured.is_empty() && after_fragment && matches!(fragment, Some((0, ..))) => {
                    write!(out, "{proto}{src} > {dst}: {exts}")
                }
                // (tcpdump reads the header's 20 bytes before its length.)
                (6, Some(ports)) if captured.len() >= 20 && bad_tcp_hl => {
                    let _ = ends_at(out, ports);
                    tcp_bad_header(out, captured, len, &ends, ports, if quick { None } else { Some(tcp) })
                }
                (6, Some(ports)) if captured.len() >= 20 && quick => {
                    let _ = ends_at(out, ports);
                    tcp_quick(out, usize::from(captured[12] >> 4) * 4, len)
                }
                (6, Some(ports)) if captured.len() >= 20 => {
                    let _ = ends_at(out, ports);
                    if tcp_cut_header(out, captured, len, &ends, ports, tcp) {
                        undecoded = Undecoded::GaveUp;
                    }
                    Ok(())
                }
                // A datagram shorter than a UDP header, on the wire.
                (17, Some(ports)) if len < 8 => {
                    let _ = ends_at(out, ports);
                    write!(out, ": truncated-udp {len}")
                }
                // A UDP length under 8 is said once it is captured.
                (17, Some(ports)) if captured.get(4..6).is_some_and(|l| u16::from_be_bytes([l[0], l[1]]) < 8) => {
                    let _ = ends_at(out, ports);
                    write!(out, ": truncated-udplength {}", u16::from_be_bytes([captured[4], captured[5]]))
                }
                (17 | 6, Some(ports)) => {
                    let _ = ends_at(out, ports);
                    write!(out, ":  [|{}]", if number == 17 { "udp" } else { "tcp" })
                }
                // An ICMPv6 header cut short: what of it tcpdump reads.
                (58, _) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    undecoded = Undecoded::after_icmp6(icmp::icmp6(out, captured, len), at(captured));
                    Ok(())
                }
                // IGMP (over IPv4).
                (2, _) if matches!(ends, Ends::V4(..)) && fragment.is_none() => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    undecoded = Undecoded::after(igmp::igmp(out, captured, len, quick));
                    Ok(())
                }
                // An ICMP header cut short: what of it tcpdump reads.
                (1, _) if matches!(ends, Ends::V4(..)) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    undecoded = Undecoded::after(icmp::icmp(out, captured, len));
                    Ok(())
                }
                // A routing header (IPv6) or an authentication header (either)
                // cut short, as tcpdump reads it.
                (43, _) | (51, _) if number == 51 || matches!(ends, Ends::V6(..)) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    let (decode, none): (fn(&mut String, &[u8]) -> ext::Next, _) =
                        if number == 43 { (ext::rt6, " [|ip6]") } else { (ext::ah, " [|ah]") };
                    if captured.is_empty() {
                        out.push_str(none);
                    } else if decode(out, captured) == ext::Next::Cut {
                        undecoded = Undecoded::GaveUp;
                    }
                    Ok(())
                }
                (50, _) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    ext::esp(out, captured, len);
                    Ok(())
                }
                // IP in IP: IPv4 (4) or IPv6 (41), in either.
                (4 | 41, _) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    undecoded = tunnel::ip(out, frame, (captured, len, number == 41), (after_link, quick), tcp);
                    Ok(())
                }
                (47, _) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    undecoded = tunnel::gre(out, frame, captured, len, (after_link, quick), tcp);
                    Ok(())
                }
                (17, None) => write!(out, "{proto}{src} > {dst}: {exts} [|udp]"),
                (6, None) if !exts.is_empty() => write!(out, "{proto}{src} > {dst}: {exts}{src} > {dst}: [|tcp]"),
                (6, None) => write!(out, "{proto}{src} > {dst}: [|tcp]"),
                // An IPv6 extension header cut short, as tcpdump reads it.
                (0 | 60 | 44, _) if matches!(ends, Ends::V6(..)) => {
                    let _ = write!(out, "{proto}{src} > {dst}: {exts}");
                    // The fields it reads first cut (next header and length; a
                    // fragment's offset): tcpdump gives up on the frame.
                    if captured.len() < if number == 44 { 4 } else { 2 } {
                        undecoded = Undecoded::GaveUp;
                    }
                    match (number, captured.get(2..4)) {
                        (0, _) => write!(out, " [|hbhopt]"),
                        (60, _) => write!(out, " [|dstopt]"),
                        (_, Some(o)) => {
                            let offset = usize::from(u16::from_be_bytes([o[0], o[1]]) >> 3) * 8;
                            // A later fragment ends the line there (a first goes on to its datagram).
                            let space = if offset == 0 { " " } else { "" };
                            write!(out, "frag ({offset}|{}){space}", len.saturating_sub(8))
                        }
                        (_, None) => write!(out, " [|frag6]"),
                    }
                }
                _ => write!(out, "{proto}{src} > {dst}: {exts} ip-proto-{number} {len}"),
            }
        }
    };
    undecoded
}

/// What tcpdump says after a TCP segment's ends when its header length
/// cannot be: under 20 (`  tcp N [bad hdr length 12 - too short, < 20]`),
/// or over the segment's `len` bytes (`: Flags [P.] [bad hdr length 60 -
/// too long, > 40]`, its numbers then taken for the conversation, as
/// tcpdump takes them; with `-q`, `tcp: None`: `: tcp N [bad hdr length 60 -
/// too long, > 40]`, N the data's length as the unsigned difference tcpdump
/// takes). `seg`: at least the header's 20 bytes (tcpdump reads them first).
fn tcp_bad_header(
    out: &mut String,
    seg: &[u8],
    len: usize,
    ends: &Ends,
    ports: (u16, u16),
    tcp: Option<&mut TcpConversations>,
) -> std::fmt::Result {
    use std::fmt::Write as _;
    let hl = usize::from(seg[12] >> 4) * 4;
    if hl < 20 {
        // (As tcpdump: the unsigned difference, also when the segment is shorter than its header.)
        return write!(out, ":  tcp {} [bad hdr length {hl} - too short, < 20]", (len as u32).wrapping_sub(hl as u32));
    }
    let Some(tcp) = tcp else {
        return write!(out, ": tcp {} [bad hdr length {hl} - too long, > {len}]", (len as u32).wrapping_sub(hl as u32));
    };
    let (mut seq, mut ack) = (be32(&seg[4..]), be32(&seg[8..]));
    tcp.relate(ends, ports, seg[13], &mut seq, &mut ack);
    write!(out, ": Flags [{}] [bad hdr length {hl} - too long, > {len}]", tcp_flags(seg[13]))
}

/// The big-endian u32 at the start of `b` (at least 4 bytes).
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Whether an ARP message was captured up to the end of its target's
/// protocol address, as tcpdump wants before it prints one (its addresses'
/// lengths are in its header).
fn arp_whole(arp: &[u8]) -> bool {
    match arp.get(4..6) {
        Some(&[hardware, protocol]) => arp.len() >= 8 + 2 * usize::from(hardware) + 2 * usize::from(protocol),
        _ => false,
    }
}

/// Whether an LLDP message of `len` bytes on the wire, captured as `lldp`,
/// holds its TLVs whole up to the first of type or length 0, as tcpdump
/// checks them before it ends its line (` [|lldp]` otherwise).
fn lldp_whole(lldp: &[u8], len: usize) -> bool {
    let (mut at, mut left) = (0, len);
    // Each TLV takes at least 3 bytes of `left`.
    while left >= 2 {
        let Some(&[a, b]) = lldp.get(at..at + 2) else { return false };
        let (kind, tlv_len) = (a >> 1, usize::from(u16::from_be_bytes([a, b]) & 0x1ff));
        (at, left) = (at + 2, left - 2);
        if kind == 0 || tlv_len == 0 {
            break;
        }
        if lldp.len() < at + tlv_len || left < tlv_len {
            return false;
        }
        (at, left) = (at + tlv_len, left - tlv_len);
    }
    true
}

/// An Ethernet/IPv4 ARP request or reply as tcpdump words it:
/// `Request who-has B tell A`, `Reply B is-at MAC` (`None`: another kind).
fn arp_words(arp: &[u8]) -> Option<String> {
    let a: &[u8; 28] = arp.get(..28)?.try_into().ok()?;
    // Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses.
    if a[..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let ip = |at: usize| std::net::Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
    let mac = |at: usize| crate::stats::format_mac(a[at..at + 6].try_into().expect("six bytes"));
    match u16::from_be_bytes([a[6], a[7]]) {
        1 => {
            // The target's hardware address, when the request names one.
            let known = if a[18..24].iter().any(|&b| b != 0) { format!(" ({})", mac(18)) } else { String::new() };
            Some(format!("Request who-has {}{known} tell {}", ip(24), ip(14)))
        }
        2 => Some(format!("Reply {} is-at {}", ip(14), mac(8))),
        _ => None,
    }
}

/// An IP packet's source and destination addresses.
enum Ends {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Ends {
    /// Source and destination as text.
    fn addrs(&self) -> (String, String) {
        match self {
            Self::V4(s, d) => (std::net::Ipv4Addr::from(*s).to_string(), std::net::Ipv4Addr::from(*d).to_string()),
            Self::V6(s, d) => (std::net::Ipv6Addr::from(*s).to_string(), std::net::Ipv6Addr::from(*d).to_string()),
        }
    }

    /// Source and destination as bytes, and whether they are IPv6.
    fn bytes(&self) -> (&[u8], &[u8], bool) {
        match self {
            Self::V4(s, d) => (s, d, false),
            Self::V6(s, d) => (s, d, true),
        }
    }
}

/// A TCP header's flags byte in tcpdump's letters and order (`none` for none).
fn tcp_flags(flags: u8) -> String {
    let s: String =
        "FSRP.UEW".chars().enumerate().filter(|&(bit, _)| flags & (1 << bit) != 0).map(|(_, c)| c).collect();
    if s.is_empty() {
        "none".to_owned()
    } else {
        s
    }
}

/// The most TCP conversations a printer remembers; past it, it forgets
/// them all and starts again (their next segments then show absolute
/// numbers once), so a long capture of many connections takes bounded memory.
const MOST_TCP_CONVERSATIONS: usize = 1 << 16;

/// One TCP conversation, whichever way a segment goes: tcpdump's ordering
/// (the lower port first, or the lower address on equal ports).
#[derive(Debug, Hash, PartialEq, Eq)]
struct Conversation {
    v6: bool,
    a: [u8; 16],
    b: [u8; 16],
    ports: u32,
}

/// The TCP conversations a printer has seen, with the sequence and
/// acknowledgment numbers their later segments are shown relative to, as
/// tcpdump keeps them: the first segment with an ACK (or a SYN with one)
/// of a conversation is shown with absolute numbers and sets them.
#[derive(Debug, Default)]
pub struct TcpConversations {
    /// Show every number as it is on the wire (tcpdump's `-S`).
    absolute: bool,
    bases: HashMap<Conversation, (u32, u32)>,
}

impl TcpConversations {
    /// None seen yet; `absolute`: show numbers as they are on the wire.
    #[must_use]
    pub fn new(absolute: bool) -> Self {
        Self { absolute, bases: HashMap::new() }
    }

    /// Make `seq` and `ack`, of a segment from `sport` to `dport` between
    /// `ends`, relative as tcpdump does; the conversation's bases and
    /// whether the segment goes the other way than it is keyed (for SACK
    /// blocks) come back.
    fn relate(&mut self, ends: &Ends, ports: (u16, u16), flags: u8, seq: &mut u32, ack: &mut u32) -> (u32, u32, bool) {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        if self.absolute || flags & ACK == 0 {
            return (0, 0, false);
        }
        let (src, dst, v6) = ends.bytes();
        let (sport, dport) = ports;
        let rev = sport > dport || (sport == dport && src > dst);
        let pad = |a: &[u8]| {
            let mut x = [0; 16];
            x[..a.len()].copy_from_slice(a);
            x
        };
        let key = if rev {
            Conversation { v6, a: pad(dst), b: pad(src), ports: u32::from(dport) << 16 | u32::from(sport) }
        } else {
            Conversation { v6, a: pad(src), b: pad(dst), ports: u32::from(sport) << 16 | u32::from(dport) }
        };
        match self.bases.get(&key) {
            Some(&(s, a)) if flags & SYN == 0 => {
                if rev {
                    *seq = seq.wrapping_sub(a);
                    *ack = ack.wrapping_sub(s);
                } else {
                    *seq = seq.wrapping_sub(s);
                    *ack = ack.wrapping_sub(a);
                }
                (s, a, rev)
            }
            _ => {
                if self.bases.len() >= MOST_TCP_CONVERSATIONS && !self.bases.contains_key(&key) {
                    self.bases.clear();
                }
                let bases = if rev { (ack.wrapping_sub(1), *seq) } else { (*seq, ack.wrapping_sub(1)) };
                self.bases.insert(key, bases);
                (bases.0, bases.1, rev)
            }
        }
    }
}

/// A TCP segment as tcpdump's `-q` shows it after its ends: `: tcp LEN`
/// (the data's length; `hl`: its header's, under the segment's `len`).
fn tcp_quick(out: &mut String, hl: usize, len: usize) -> std::fmt::Result {
    use std::fmt::Write as _;
    write!(out, ": tcp {}", len - hl)
}

/// What tcpdump prints of a TCP header after its flags: `, seq A:B, ack N,
/// win N, urg N, options [...], length N`. `tcp_len`: the segment's length
/// on the wire, header included (from the IP header).
fn tcp_fields(
    out: &mut String,
    t: &etherparse::TcpSlice<'_>,
    tcp_len: usize,
    ends: &Ends,
    tcp: &mut TcpConversations,
) -> Undecoded {
    use std::fmt::Write as _;
    let flags = t.slice()[13];
    let (mut seq, mut ack) = (t.sequence_number(), t.acknowledgment_number());
    let bases = tcp.relate(ends, (t.source_port(), t.destination_port()), flags, &mut seq, &mut ack);
    let hlen = t.header_len();
    if hlen > tcp_len {
        let _ = write!(out, " [bad hdr length {hlen} - too long, > {tcp_len}]");
        return Undecoded::Nothing;
    }
    let length = tcp_len - hlen;
    tcp_numbers(out, flags, (seq, ack), length, (t.window_size(), t.urgent_pointer()));
    if !t.options().is_empty() {
        out.push_str(", options [");
        match tcp_options(out, t.options(), t.options().len(), bases) {
            TcpOptions::Whole => out.push(']'),
            // As tcpdump: the line ends there.
            TcpOptions::Bad | TcpOptions::Cut { .. } => return Undecoded::Nothing,
        }
    }
    let _ = write!(out, ", length {length}");
    if length == 0 {
        return Undecoded::Nothing;
    }
    match app::tcp_app(t.source_port(), t.destination_port()) {
        app::TcpApp::Http => {
            out.push_str(": ");
            Undecoded::after(app::http(out, t.payload(), length))
        }
        app::TcpApp::Ssh => Undecoded::after(app::ssh(out, t.payload(), length)),
        app::TcpApp::Other => Undecoded::Nothing,
    }
}

/// What tcpdump prints after a TCP segment's flags, up to its options:
/// `, seq A:B, ack N, win N, urg N` (`length`: of its data).
fn tcp_numbers(out: &mut String, flags: u8, (seq, ack): (u32, u32), length: usize, (win, urg): (u16, u16)) {
    use std::fmt::Write as _;
    // SYN, FIN or RST, or data.
    if length > 0 || flags & 0x07 != 0 {
        let _ = write!(out, ", seq {seq}");
        if length > 0 {
            let _ = write!(out, ":{}", seq.wrapping_add(length as u32));
        }
    }
    if flags & 0x10 != 0 {
        let _ = write!(out, ", ack {ack}");
    }
    let _ = write!(out, ", win {win}");
    if flags & 0x20 != 0 {
        let _ = write!(out, ", urg {urg}");
    }
}

/// A TCP header whose 20 fixed bytes were captured but not all of its
/// options (a snaplen): tcpdump's line up to where the capture ends, then
/// ` [|tcp]`. `len`: the segment's length on the wire; its header length
/// is one it can have. The numbers are taken for the conversation, as
/// tcpdump takes them. Whether tcpdump gave up on the frame (an option's
/// kind or length cut, which it reads as it goes).
fn tcp_cut_header(
    out: &mut String,
    seg: &[u8],
    len: usize,
    ends: &Ends,
    ports: (u16, u16),
    tcp: &mut TcpConversations,
) -> bool {
    use std::fmt::Write as _;
    let flags = seg[13];
    let _ = write!(out, ": Flags [{}]", tcp_flags(flags));
    let (mut seq, mut ack) = (be32(&seg[4..]), be32(&seg[8..]));
    let bases = tcp.relate(ends, ports, flags, &mut seq, &mut ack);
    let hl = usize::from(seg[12] >> 4) * 4;
    let win_urg = (u16::from_be_bytes([seg[14], seg[15]]), u16::from_be_bytes([seg[18], seg[19]]));
    tcp_numbers(out, flags, (seq, ack), len - hl, win_urg);
    out.push_str(", options [");
    match tcp_options(out, &seg[20..], hl - 20, bases) {
        TcpOptions::Whole => {
            let _ = write!(out, "], length {}", len - hl);
            false
        }
        TcpOptions::Bad | TcpOptions::Cut { gave_up: false } => false,
        TcpOptions::Cut { gave_up: true } => true,
    }
}

/// How a TCP header's options ended.
enum TcpOptions {
    /// Every option printed.
    Whole,
    /// An option's length is impossible: `[bad opt]` said (and the list
    /// closed, after an option printed whole), as tcpdump says it.
    Bad,
    /// The capture ended within them: ` [|tcp]` said (then `>` within an
    /// option's data after an option printed whole), as tcpdump says it;
    /// `gave_up`: at an option's kind or length, where tcpdump gives up on
    /// the frame (it checks an option's data, and ends the line only).
    Cut { gave_up: bool },
}

/// TCP options as tcpdump prints them (`mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7`),
/// from the `captured` bytes of the `hlen` bytes the header gives them;
/// SACK blocks relative to `bases` (`(seq, ack, reverse)`) as the
/// segment's numbers are. Read as tcpdump reads them: an option takes the
/// bytes its kind has, whatever its length byte says (`[len N]` then).
fn tcp_options(
    out: &mut String,
    captured: &[u8],
    mut hlen: usize,
    (base_seq, base_ack, rev): (u32, u32, bool),
) -> TcpOptions {
    use std::fmt::Write as _;
    let mut at = 0;
    // An option printed whole (tcpdump's `ch`, set to ',' after each).
    let mut one_done = false;
    let bad = |out: &mut String, one_done: bool| {
        out.push_str(if one_done { "[bad opt]]" } else { "[bad opt]" });
        TcpOptions::Bad
    };
    let cut = |out: &mut String, within_data: bool, gave_up: bool| {
        out.push_str(if within_data { " [|tcp]>" } else { " [|tcp]" });
        TcpOptions::Cut { gave_up }
    };
    while hlen > 0 {
        if one_done {
            out.push(',');
        }
        let Some(&kind) = captured.get(at) else { return cut(out, false, true) };
        // EOL and NOP are one byte; the others say their length, kind and length bytes included.
        let (len, head) = match kind {
            0 | 1 => (1, 1),
            _ => match captured.get(at + 1) {
                None => return cut(out, false, true),
                Some(&len) if len < 2 || usize::from(len) > hlen => return bad(out, one_done),
                Some(&len) => (usize::from(len), 2),
            },
        };
        hlen -= head;
        let name = match kind {
            0 => "eol",
            1 => "nop",
            2 => "mss",
            3 => "wscale",
            4 => "sackOK",
            5 => "sack",
            6 => "echo",
            7 => "echoreply",
            8 => "TS",
            11 => "cc",
            12 => "ccnew",
            13 => "",
            19 => "md5",
            20 => "scps",
            28 => "uto",
            29 => "tcp-ao",
            30 => "mptcp",
            34 => "tfo",
            254 => "exp",
            _ => "",
        };
        if name.is_empty() && kind != 13 {
            let _ = write!(out, "unknown-{kind}");
        } else {
            out.push_str(name);
        }
        // The bytes of data the option's kind has (tcpdump reads these, whatever the length says).
        let want = match kind {
            0 | 1 | 4 => 0,
            2 => 2,
            3 => 1,
            6 | 7 | 11 | 12 | 13 => 4,
            8 => 8,
            _ => len - 2,
        };
        if want > hlen {
            return bad(out, one_done);
        }
        // SACK blocks are read one by one: a cut among them comes after the count.
        if kind == 5 && want % 8 == 0 && captured.len() < at + head + want {
            let _ = write!(out, " {} ", want / 8);
            let base = if rev { base_seq } else { base_ack };
            for block in captured[at + head..].chunks_exact(8) {
                let _ = write!(out, "{{{}:{}}}", be32(block).wrapping_sub(base), be32(&block[4..]).wrapping_sub(base));
            }
            return cut(out, one_done, false);
        }
        let Some(data) = captured.get(at + head..at + head + want) else { return cut(out, one_done, false) };
        let _ = match kind {
            2 => write!(out, " {}", u16::from_be_bytes([data[0], data[1]])),
            3 => write!(out, " {}", data[0]),
            6 | 7 | 11 | 12 | 13 => write!(out, " {}", be32(data)),
            8 => write!(out, " val {} ecr {}", be32(data), be32(&data[4..])),
            5 if want % 8 != 0 => write!(out, " invalid sack"),
            5 => {
                let _ = write!(out, " {} ", want / 8);
                for block in data.chunks_exact(8) {
                    let base = if rev { base_seq } else { base_ack };
                    let _ =
                        write!(out, "{{{}:{}}}", be32(block).wrapping_sub(base), be32(&block[4..]).wrapping_sub(base));
                }
                Ok(())
            }
            _ if want > 0 => {
                out.push_str(" 0x");
                data.iter().try_for_each(|b| write!(out, "{b:02x}"))
            }
            _ => Ok(()),
        };
        if want + head != len {
            let _ = write!(out, "[len {len}]");
        }
        at += head + want;
        hlen -= want;
        one_done = true;
        if kind == 0 {
            break;
        }
    }
    TcpOptions::Whole
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The port column is there when asked for; the time is cut (not
    /// rounded) to the microsecond, or shown to the nanosecond.
    #[test]
    fn lines_show_the_port_and_the_precision_asked_for() {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &[0; 8])
            .unwrap();
        let line = |port: bool, precision: PrintPrecision| {
            let mut p = Printer::new(PrintOptions { port, precision, ..PrintOptions::default() });
            let mut s = String::new();
            p.line(&mut s, (3_723_999_999_999, f.len() as u32, &f), "eth1");
            s
        };
        let udp = "IP 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 8\n";
        assert_eq!(line(false, PrintPrecision::Micro), format!("01:02:03.999999 {udp}"));
        assert_eq!(line(true, PrintPrecision::Micro), format!("01:02:03.999999 eth1 {udp}"));
        assert_eq!(line(true, PrintPrecision::Nano), format!("01:02:03.999999999 eth1 {udp}"));
    }

    /// A hop-by-hop header after another (found by the `frame_print` fuzz
    /// target): etherparse's iterator over the headers its lax parse kept
    /// read past them (undefined behaviour, a panic in a debug build).
    #[test]
    fn a_second_hop_by_hop_header_is_read_within_the_frame() {
        let frame = (0..134)
            .step_by(2)
            .map(|i| {
                let hex = "020202020203030303030303\
                           86dd6000ffff00000066083a40fd0000000000011600000000000000000001f90000000000000000000000\
                           00000002920073b100070000";
                u8::from_str_radix(&hex[i..i + 2], 16).unwrap()
            })
            .collect::<Vec<u8>>();
        let mut s = String::new();
        describe(&mut s, &frame, 67, (false, false), &mut TcpConversations::default());
        assert_eq!(s, "IP6 83a:40fd::1:1600:0:0 > 0:0:1f9::: HBH  [|hbhopt]");
    }

    /// An 802.3 frame whose length (1, 2) leaves no room for its LLC
    /// header, padded to 60 bytes, is an LLC header cut short, as tcpdump
    /// prints it (` [|llc]` and the bytes the length gives); it printed
    /// `LLC, dsap 0x81, ...` from the padding. One that leaves no room for a
    /// SNAP header after its LLC one is ` [|snap]`.
    #[test]
    fn an_llc_header_cut_by_its_own_length_is_said() {
        let line = |len: u16, payload: &[u8]| {
            let frame = [&[2; 6][..], &[3; 6], &len.to_be_bytes(), payload, &[0; 40]].concat();
            let mut p = Printer::new(PrintOptions { time: PrintTime::None, ..PrintOptions::default() });
            let mut s = String::new();
            p.line(&mut s, (0, frame.len() as u32, &frame), "p");
            s
        };
        assert_eq!(line(1, &[0x81, 0, 0x42, 0x42]), " [|llc]\n\t0x0000:  81                                       .\n");
        assert_eq!(line(2, &[0x42, 0x42, 3]), " [|llc]\n\t0x0000:  4242                                     BB\n");
        assert_eq!(line(3, &[0xaa, 0xaa, 3]), " [|snap]\n");
    }

    #[test]
    fn describes_udp_and_vlan() {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .single_vlan(10.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &[0; 8])
            .unwrap();
        let mut s = String::new();
        describe(&mut s, &f, f.len() as u32, (false, false), &mut TcpConversations::default());
        assert_eq!(s, "IP 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 8", "tags only with the link-level header");
        s.clear();
        describe(&mut s, &f, f.len() as u32, (true, false), &mut TcpConversations::default());
        assert_eq!(s, "vlan 10, p 0, ethertype IPv4 (0x0800), 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 8");
        s.clear();
        describe(&mut s, &[0u8; 5], 5, (false, false), &mut TcpConversations::default());
        assert_eq!(s, " [|ether]");
    }

    /// As tcpdump ends its lines: the length of the UDP or TCP payload, the
    /// ICMP message, what follows the Ethernet header; and a frame cut by the
    /// snap length is decoded from what is there, with its lengths on the wire.
    #[test]
    fn describes_lengths_as_tcpdump_and_frames_cut_by_the_snaplen() {
        let line = |f: &[u8], wire: usize| {
            let mut s = String::new();
            describe(&mut s, f, wire as u32, (false, false), &mut TcpConversations::default());
            s
        };
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut udp, &[7; 1472])
            .unwrap();
        assert_eq!(udp.len(), 1514);
        assert_eq!(line(&udp, 1514), "IP 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 1472");
        assert_eq!(line(&udp[..96], 1514), "IP 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 1472", "cut at 96 bytes");
        let mut tcp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6([1; 16], [2; 16], 64)
            .tcp(443, 5555, 1, 1000)
            .syn()
            .ack(7)
            .write(&mut tcp, &[1; 10])
            .unwrap();
        let want =
            "IP6 101:101:101:101:101:101:101:101.443 > 202:202:202:202:202:202:202:202.5555: Flags [S.], seq 1:11, ack 7, win 1000, length 10";
        assert_eq!(line(&tcp, tcp.len()), want);
        assert_eq!(line(&tcp[..80], tcp.len()), want, "cut just after the TCP header");
        let mut icmp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, &[0; 56])
            .unwrap();
        assert_eq!(line(&icmp, icmp.len()), "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64");
        // An ARP request padded to 60 bytes: 46 after the Ethernet header, as tcpdump says.
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.resize(60, 0);
        assert_eq!(line(&arp, 60), "ARP, length 46");
        // IEEE 802.3 (a length, 38, where the ethertype would be) carrying a
        // spanning-tree BPDU, padded to 60 bytes: its length is the 802.3 one, less the LLC header.
        let mut bpdu = vec![0x01, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0x00, 0x26, 0x42, 0x42, 0x03];
        bpdu.resize(60, 0);
        assert_eq!(
            line(&bpdu, 60),
            "STP 802.1d, Config, Flags [none], bridge-id 0000.00:00:00:00:00:00.0000, length 35"
        );
    }
}
