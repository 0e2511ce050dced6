//! DNS messages over UDP (port 53, and multicast DNS on 5353) as tcpdump words them on its line (no
//! `-v`): a query's id, opcode and flags, the questions (`A? example.com.`),
//! a response's rcode, flags, section counts and answers (`CNAME x., A
//! 1.2.3.4`), and the message's length, written as they are read. A snap
//! length that cut a field tcpdump reads ends the line with ` [|domain]`.

use std::fmt::Write as _;

use super::Cut;

/// The longest name tcpdump prints before `<DOMAIN NAME TOO LONG>`.
const MAX_NAME: usize = 255;

/// A DNS message of `len` bytes (the UDP payload on the wire), captured as
/// `msg`, after the ports' `: `; `mdns`: multicast DNS, whose classes carry
/// a unicast-response or cache-flush bit. Returns how it was cut, if it was.
pub(super) fn dns(out: &mut String, msg: &[u8], len: usize, mdns: bool) -> Option<Cut> {
    if len < 12 {
        let _ = write!(out, "domain [length {len} < 12] (invalid)");
        return None;
    }
    let m = Msg(msg, mdns);
    match message(out, &m, len) {
        Ok(()) => None,
        Err(cut) => {
            out.push_str(" [|domain]");
            Some(cut)
        }
    }
}

/// A message's captured bytes, and whether it is multicast DNS.
struct Msg<'a>(&'a [u8], bool);

impl Msg<'_> {
    /// The byte at `at`, if captured (tcpdump's `ND_TTEST`: a miss is
    /// handled where it happens).
    fn at(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        Some(u16::from_be_bytes([self.at(at)?, self.at(at + 1)?]))
    }

    fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_be_bytes([self.at(at)?, self.at(at + 1)?, self.at(at + 2)?, self.at(at + 3)?]))
    }

    /// Whether `n` bytes from `at` were captured.
    fn has(&self, at: usize, n: usize) -> bool {
        self.0.len() >= at + n
    }

    /// Where the captured bytes end (tcpdump's snapend).
    fn end(&self) -> usize {
        self.0.len()
    }
}

/// A read that gives up on the frame (tcpdump's `GET_`).
fn got<T>(v: Option<T>) -> Result<T, Cut> {
    v.ok_or(Cut::Frame)
}

/// A check that ends the message's line only (tcpdump's `goto trunc`).
fn here<T>(v: Option<T>) -> Result<T, Cut> {
    v.ok_or(Cut::Here)
}

const OPS: [&str; 16] = [
    "",
    " inv_q",
    " stat",
    " op3",
    " notify",
    " update",
    " op6",
    " op7",
    " op8",
    " updateA",
    " updateD",
    " updateDA",
    " updateM",
    " updateMA",
    " zoneInit",
    " zoneRef",
];

const RCODES: [&str; 24] = [
    "",
    " FormErr",
    " ServFail",
    " NXDomain",
    " NotImp",
    " Refused",
    " YXDomain",
    " YXRRSet",
    " NXRRSet",
    " NotAuth",
    " NotZone",
    " Resp11",
    " Resp12",
    " Resp13",
    " Resp14",
    " NoChange",
    " BadVers",
    "Resp17",
    " Resp18",
    " Resp19",
    " Resp20",
    "Resp21",
    " Resp22",
    " BadCookie",
];

/// The header and the sections tcpdump shows without `-v`.
fn message(out: &mut String, m: &Msg<'_>, len: usize) -> Result<(), Cut> {
    if !m.has(0, 12) {
        return Err(Cut::Here);
    }
    let word = |at: usize| m.u16(at).unwrap_or_default();
    let (id, flags) = (word(0), word(2));
    let (qd, mut an, ns, ar) = (word(4), word(6), word(8), word(10));
    let opcode = usize::from(flags >> 11 & 0xf);
    if flags & 0x8000 != 0 {
        let rcode = extended_rcode(m, flags, [qd, an, ns, ar]);
        let rcode =
            RCODES.get(usize::from(rcode)).map_or_else(|| format!(" Resp{}", rcode & 0xfff), |r| (*r).to_owned());
        let _ = write!(
            out,
            "{id}{}{rcode}{}{}{}{}",
            OPS[opcode],
            if flags & 0x0400 != 0 { "*" } else { "" },
            if flags & 0x0080 != 0 { "" } else { "-" },
            if flags & 0x0200 != 0 { "|" } else { "" },
            if flags & 0x0020 != 0 { "$" } else { "" },
        );
        if qd != 1 {
            let _ = write!(out, " [{qd}q]");
        }
        let mut at = 12;
        for i in 0..qd {
            if i != 0 {
                out.push(',');
            }
            at = here(skip_name(m, at))? + 4;
        }
        let _ = write!(out, " {an}/{ns}/{ar}");
        if an > 0 {
            at = here(record(out, m, at)?)?;
            an -= 1;
            while at < m.end() && an > 0 {
                out.push(',');
                at = here(record(out, m, at)?)?;
                an -= 1;
            }
        }
        if an > 0 {
            return Err(Cut::Here);
        }
    } else {
        let _ = write!(
            out,
            "{id}{}{}{}",
            OPS[opcode],
            if flags & 0x0100 != 0 { "+" } else { "" },
            if flags & 0x0010 != 0 { "%" } else { "" },
        );
        if flags & 0x6cf != 0 {
            let _ = write!(out, " [b2&3=0x{flags:x}]");
        }
        if opcode == 1 {
            if qd > 0 {
                let _ = write!(out, " [{qd}q]");
            }
            if an != 1 {
                let _ = write!(out, " [{an}a]");
            }
        } else {
            if an > 0 {
                let _ = write!(out, " [{an}a]");
            }
            if qd != 1 {
                let _ = write!(out, " [{qd}q]");
            }
        }
        if ns > 0 {
            let _ = write!(out, " [{ns}n]");
        }
        if ar > 0 {
            let _ = write!(out, " [{ar}au]");
        }
        let (mut at, mut left) = (12, qd);
        if left > 0 {
            at = here(question(out, m, at)?)?;
            left -= 1;
            while at < m.end() && left > 0 {
                at = here(question(out, m, at)?)?;
                left -= 1;
            }
        }
        if left > 0 {
            return Err(Cut::Here);
        }
    }
    let _ = write!(out, " ({len})");
    Ok(())
}

/// The response code with an OPT record's extension, found as tcpdump finds
/// it: past the questions, answers and authority records, in the first
/// OPT record of the additional ones, as far as they were captured.
fn extended_rcode(m: &Msg<'_>, flags: u16, [qd, an, ns, ar]: [u16; 4]) -> u16 {
    let rcode = flags & 0xf;
    let scan = || -> Option<u16> {
        let mut at = 12;
        for _ in 0..qd {
            at = skip_name(m, at)? + 4;
            if at >= m.end() {
                return None;
            }
        }
        for _ in 0..u32::from(an) + u32::from(ns) {
            at = skip_name(m, at)? + 8;
            if at + 2 > m.end() {
                return None;
            }
            at += 2 + usize::from(m.u16(at)?);
            if at >= m.end() {
                return None;
            }
        }
        for _ in 0..ar {
            at = skip_name(m, at)?;
            if at + 2 > m.end() {
                return None;
            }
            let kind = m.u16(at)?;
            at += 4;
            if at + 1 > m.end() {
                return None;
            }
            if kind == 41 {
                return Some(rcode | u16::from(m.at(at)?) << 4);
            }
            at += 4;
            if at + 2 > m.end() {
                return None;
            }
            at += 2 + usize::from(m.u16(at)?);
            if at >= m.end() {
                return None;
            }
        }
        None
    };
    scan().unwrap_or(rcode)
}

/// Where the name at `at` ends, skipped as tcpdump skips it (a pointer
/// ends it; `None` for a label type it does not know, or past the capture).
fn skip_name(m: &Msg<'_>, mut at: usize) -> Option<usize> {
    let mut i = m.at(at)?;
    at += 1;
    while i != 0 {
        match i & 0xc0 {
            0xc0 => return Some(at + 1),
            0x40 => {
                if i & 0x3f != 1 {
                    return None;
                }
                let bits = match m.at(at)? {
                    0 => 256,
                    n => usize::from(n),
                };
                at += 1 + bits.div_ceil(8);
            }
            0x80 => return None,
            _ => at += usize::from(i),
        }
        i = m.at(at)?;
        at += 1;
    }
    Some(at)
}

/// A question (` A? example.com.`): where it ends, or `None` when it was
/// cut (the line ends there).
fn question(out: &mut String, m: &Msg<'_>, at: usize) -> Result<Option<usize>, Cut> {
    let Some(after) = skip_name(m, at).filter(|&a| m.has(a, 4)) else { return Ok(None) };
    let (kind, raw) = (got(m.u16(after))?, got(m.u16(after + 2))?);
    let _ = write!(out, " {}", type_name(kind));
    // (Multicast DNS: the top bit asks for a unicast response.)
    let class = if m.1 { raw & 0x7fff } else { raw };
    if class != 1 {
        let _ = write!(out, " {}", class_name(class));
    }
    if m.1 {
        out.push_str(if raw & 0x8000 != 0 { " (QU)" } else { " (QM)" });
    }
    out.push_str("? ");
    Ok(name(out, m, at)?.map(|end| end + 4))
}

/// A resource record without `-v` (its type and data, not its name):
/// where it ends (as it says: tcpdump does not check), the capture's end
/// when its header was not captured, or `None` when it was cut.
fn record(out: &mut String, m: &Msg<'_>, at: usize) -> Result<Option<usize>, Cut> {
    let Some(at) = skip_name(m, at).filter(|&a| m.has(a, 10)) else { return Ok(Some(m.end())) };
    let (kind, raw) = (got(m.u16(at))?, got(m.u16(at + 2))?);
    // (Multicast DNS: the top bit asks caches to flush the name's other records.)
    let class = if m.1 { raw & 0x7fff } else { raw };
    if class != 1 && kind != 41 {
        let _ = write!(out, " {}", class_name(class));
    }
    if m.1 && raw & 0x8000 != 0 {
        out.push_str(" (Cache flush)");
    }
    let opt_flags = if kind == 41 { got(m.u16(at + 6))? } else { 0 };
    let data_len = usize::from(got(m.u16(at + 8))?);
    let (data, end) = (at + 10, at + 10 + data_len);
    let _ = write!(out, " {}", type_name(kind));
    if end > m.end() {
        return Ok(None);
    }
    let ok = match kind {
        1 => m.u32(data).map(|a| write!(out, " {}", std::net::Ipv4Addr::from(a))).is_some(),
        2 | 5 | 12 | 39 => {
            out.push(' ');
            name(out, m, data)?.is_some()
        }
        15 => {
            out.push(' ');
            let pref = m.u16(data);
            pref.is_some() && name(out, m, data + 2)?.is_some() && write!(out, " {}", got(pref)?).is_ok()
        }
        16 => {
            let mut at = data;
            while at < end {
                out.push_str(" \"");
                match text(out, m, at) {
                    Some(next) => at = next,
                    None => return Ok(None),
                }
                out.push('"');
            }
            true
        }
        33 => {
            out.push(' ');
            m.has(data, 6)
                && name(out, m, data + 6)?.is_some()
                && write!(out, ":{} {} {}", got(m.u16(data + 4))?, got(m.u16(data))?, got(m.u16(data + 2))?).is_ok()
        }
        28 => m.0.get(data..data + 16).is_some_and(|a| {
            let a = <[u8; 16]>::try_from(a).expect("16 bytes");
            write!(out, " {}", std::net::Ipv6Addr::from(a)).is_ok()
        }),
        38 => a6(out, m, data)?,
        256 => {
            if !m.has(data, data_len) {
                return Ok(None);
            }
            let _ = write!(out, " {} {} ", got(m.u16(data))?, got(m.u16(data + 2))?);
            printn(out, m, data + 4, data_len.checked_sub(4).unwrap_or(usize::MAX))
        }
        104 => m.has(data, data_len) && printn(out, m, data, data_len),
        41 => {
            let _ = write!(out, " UDPsize={class}");
            if opt_flags & 0x8000 != 0 {
                out.push_str(" DO");
            }
            let mut at = data;
            if at < end {
                out.push_str(" [");
                while at < end {
                    match edns_option(out, m, at)? {
                        Some(next) => at = next,
                        None => return Ok(None),
                    }
                    if at < end {
                        out.push(',');
                    }
                }
                out.push(']');
            }
            true
        }
        _ => true,
    };
    Ok(ok.then_some(end))
}

/// An EDNS option of an OPT record (`COOKIE 0102030405060708`, `ECS
/// 192.0.2.0/24/0`, `PADDING (12)`): where it ends, or `None` when it was
/// cut.
fn edns_option(out: &mut String, m: &Msg<'_>, at: usize) -> Result<Option<usize>, Cut> {
    let Some(code) = m.u16(at) else { return Ok(None) };
    let label = match code {
        1 => "LLQ",
        2 => "UL",
        3 => "NSID",
        5 => "DAU",
        6 => "DHU",
        7 => "N3U",
        8 => "ECS",
        9 => "EXPIRE",
        10 => "COOKIE",
        11 => "KEEPALIVE",
        12 => "PADDING",
        13 => "CHAIN",
        14 => "KEY-TAG",
        16 => "CLIENT-TAG",
        17 => "SERVER-TAG",
        _ => "",
    };
    if label.is_empty() {
        let _ = write!(out, "Opt{code}");
    } else {
        out.push_str(label);
    }
    let Some(len) = m.u16(at + 2).map(usize::from) else { return Ok(None) };
    let data = at + 4;
    let Some(d) = m.0.get(data..data + len) else { return Ok(None) };
    if len == 0 {
        return Ok(Some(data));
    }
    out.push(' ');
    let invalid = |out: &mut String| out.push_str(" (invalid)");
    let words = || d.chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]]).to_string()).collect::<Vec<_>>().join(" ");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let algs = |names: &dyn Fn(u8) -> Option<&'static str>| {
        d.iter().map(|&a| names(a).map_or_else(|| format!("Alg_{a}"), str::to_owned)).collect::<Vec<_>>().join(" ")
    };
    match code {
        8 => client_subnet(out, d),
        10 if len < 8 || (len > 8 && len < 16) || len > 40 => invalid(out),
        10 if len > 8 => {
            let _ = write!(out, "{} {}", hex(&d[..8]), hex(&d[8..]));
        }
        11 if len != 2 => invalid(out),
        11 => {
            let _ = write!(out, "{:.1} sec", f64::from(u16::from_be_bytes([d[0], d[1]])) / 10.0);
        }
        9 if len != 4 => invalid(out),
        9 => {
            let _ = write!(out, "{} sec", u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        }
        12 => {
            let _ = write!(out, "({len})");
        }
        14 if len % 2 != 0 => invalid(out),
        14 => out.push_str(&words()),
        5 => out.push_str(&algs(&|a| {
            Some(match a {
                0 => "DELETE",
                1 => "RSAMD5",
                2 => "DH",
                3 => "DS",
                5 => "RSASHA1",
                6 => "DSA-NSEC3-SHA1",
                7 => "RSASHA1-NSEC3-SHA1",
                8 => "RSASHA256",
                10 => "RSASHA512",
                12 => "ECC-GOST",
                13 => "ECDSAP256SHA256",
                14 => "ECDSAP384SHA384",
                15 => "ED25519",
                16 => "ED448",
                252 => "INDIRECT",
                253 => "PRIVATEDNS",
                254 => "PRIVATEOID",
                _ => return None,
            })
        })),
        6 => out.push_str(&algs(&|a| match a {
            1 => Some("SHA-1"),
            2 => Some("SHA-256"),
            3 => Some("GOST_R_34.11-94"),
            4 => Some("SHA-384"),
            _ => None,
        })),
        7 => out.push_str(&algs(&|a| (a == 1).then_some("SHA-1"))),
        // A CHAIN option's name (uncompressed, RFC 7901; what it says past the option is not read).
        13 => {
            let _ = name(out, &Msg(&m.0[..data + len], m.1), data)?;
        }
        _ => out.push_str(&hex(d)),
    }
    Ok(Some(data + len))
}

/// An EDNS client-subnet option's address, source and scope lengths
/// (`192.0.2.0/24/0`), or ` (invalid)`.
fn client_subnet(out: &mut String, d: &[u8]) {
    let bits = match d {
        [0, 1, _, _, ..] => 32,
        [0, 2, _, _, ..] => 128,
        _ => return out.push_str(" (invalid)"),
    };
    let (source, scope, addr) = (usize::from(d[2]), usize::from(d[3]), &d[4..]);
    if addr.len() > bits / 8 || source > bits || scope > bits {
        return out.push_str(" (invalid)");
    }
    if source.div_ceil(8) != addr.len() {
        return out.push_str(" (invalid)");
    }
    let mut padded = [0u8; 16];
    padded[..addr.len()].copy_from_slice(addr);
    let _ = if bits == 32 {
        write!(out, "{}/{source}/{scope}", std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&padded[..4]).expect("4")))
    } else {
        write!(out, "{}/{source}/{scope}", std::net::Ipv6Addr::from(padded))
    };
}

/// An A6 record's data (RFC 2874): the prefix length, the address bits
/// after it, and the prefix's name; whether it was captured.
fn a6(out: &mut String, m: &Msg<'_>, at: usize) -> Result<bool, Cut> {
    let Some(bits) = m.at(at) else { return Ok(false) };
    let byte = usize::from(bits & !7) / 8;
    if bits > 128 {
        let _ = write!(out, " {bits}(bad plen)");
        return Ok(true);
    }
    if bits < 128 {
        let mut a = [0u8; 16];
        a[byte..].copy_from_slice(got(m.0.get(at + 1..at + 1 + 16 - byte))?);
        let _ = write!(out, " {bits} {}", std::net::Ipv6Addr::from(a));
    }
    if bits > 0 {
        out.push(' ');
        return Ok(name(out, m, at + 1 + 16 - byte)?.is_some());
    }
    Ok(true)
}

/// A `<character-string>`: its length byte, then its bytes as tcpdump
/// shows text; where it ends, or `None` when it was cut.
fn text(out: &mut String, m: &Msg<'_>, at: usize) -> Option<usize> {
    let n = usize::from(m.at(at)?);
    printn(out, m, at + 1, n).then_some(at + 1 + n)
}

/// `n` bytes from `at` as tcpdump prints text (`M-` for bytes past ASCII,
/// `^` for control characters), as many as were captured: whether all were.
fn printn(out: &mut String, m: &Msg<'_>, at: usize, n: usize) -> bool {
    let bytes = m.0.get(at..).unwrap_or_default();
    for &b in bytes.iter().take(n) {
        let mut c = b;
        if !c.is_ascii() {
            c &= 0x7f;
            out.push_str("M-");
        }
        if !(0x20..0x7f).contains(&c) {
            c ^= 0x40;
            out.push('^');
        }
        out.push(char::from(c));
    }
    bytes.len() >= n
}

/// A label's length as tcpdump reads it (for a pointer, its first byte;
/// for a bit label, its bytes), or `None` (after saying why, for a label
/// type it does not know).
fn label_len(out: &mut String, m: &Msg<'_>, at: usize) -> Option<usize> {
    let i = m.at(at)?;
    match i & 0xc0 {
        0x40 if i & 0x3f != 1 => {
            let _ = write!(out, "<ELT {}>", i & 0x3f);
            None
        }
        0x40 => {
            let bits = match m.at(at + 1)? {
                0 => 256,
                n => usize::from(n),
            };
            Some(bits.div_ceil(8) + 1)
        }
        0x80 => {
            out.push_str("<BAD LABEL TYPE>");
            None
        }
        _ => Some(usize::from(i)),
    }
}

/// A domain name at `at` (`www.example.com.`), following compression
/// pointers backwards only: where it ends in place, or `None` when it was
/// cut or bad (said in the line).
fn name(out: &mut String, m: &Msg<'_>, at: usize) -> Result<Option<usize>, Cut> {
    let Some(mut l) = label_len(out, m, at) else { return Ok(None) };
    let mut cp = at;
    let mut max_offset = cp;
    let Some(mut i) = m.at(cp) else { return Ok(None) };
    cp += 1;
    let (mut compressed, mut rp) = (false, 0);
    if i & 0xc0 != 0xc0 {
        rp = cp + l;
    }
    if i == 0 {
        out.push('.');
        return Ok(Some(rp));
    }
    let mut chars = 0;
    // Every step moves on to a label after this one, or back to an offset
    // before the last: the walk ends.
    while i != 0 && cp < m.end() {
        match i & 0xc0 {
            0xc0 => {
                if !compressed {
                    rp = cp + 1;
                    compressed = true;
                }
                let Some(low) = m.at(cp) else { return Ok(None) };
                let offset = usize::from(u16::from_be_bytes([i, low]) & 0x3fff);
                if offset >= max_offset {
                    out.push_str("<BAD PTR>");
                    return Ok(None);
                }
                max_offset = offset;
                cp = offset;
                let Some(next) = m.at(cp) else { return Ok(None) };
                i = next;
                let Some(n) = label_len(out, m, cp) else { return Ok(None) };
                l = n;
                cp += 1;
                continue;
            }
            0x40 => {
                if !bit_label(out, m, cp)? {
                    return Ok(None);
                }
            }
            0x80 => {
                out.push_str("<BAD LABEL TYPE>");
                return Ok(None);
            }
            _ => {
                let shown = if chars + l <= MAX_NAME { l } else { MAX_NAME.saturating_sub(chars) };
                if shown > 0 && !printn(out, m, cp, shown) {
                    return Ok(None);
                }
                chars += l;
            }
        }
        cp += l;
        if chars <= MAX_NAME {
            out.push('.');
        }
        chars += 1;
        let Some(next) = m.at(cp) else { return Ok(None) };
        i = next;
        let Some(n) = label_len(out, m, cp) else { return Ok(None) };
        l = n;
        cp += 1;
        if !compressed {
            rp += l + 1;
        }
    }
    if chars > MAX_NAME {
        out.push_str("<DOMAIN NAME TOO LONG>");
    }
    Ok(Some(rp))
}

/// An EDNS0 bit label (`\[xHEX/BITS]`): whether its length was captured.
fn bit_label(out: &mut String, m: &Msg<'_>, at: usize) -> Result<bool, Cut> {
    let Some(bits) = m.at(at) else { return Ok(false) };
    let bits = if bits == 0 { 256 } else { usize::from(bits) };
    let lim = at + 1 + bits.div_ceil(4);
    out.push_str("\\[x");
    let (mut p, mut b) = (at + 1, bits);
    while p < lim && b > 7 {
        let _ = write!(out, "{:02x}", got(m.at(p))?);
        (p, b) = (p + 1, b - 8);
    }
    if b > 4 {
        let _ = write!(out, "{:02x}", got(m.at(p))? & (0xffu8 << (8 - b)));
    } else if b > 0 {
        let _ = write!(out, "{:x}", (got(m.at(p))? >> 4) & (0x0f << (4 - b)));
    }
    let _ = write!(out, "/{bits}]");
    Ok(true)
}

/// A record type's name as tcpdump gives it (`Type65` for one it does not name).
fn type_name(kind: u16) -> String {
    let name = match kind {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP_PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "UNSPECA",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        _ => return format!("Type{kind}"),
    };
    name.to_owned()
}

/// A class's name as tcpdump gives it (`(Class 7)` for one it does not name).
fn class_name(class: u16) -> String {
    match class {
        1 => "IN".to_owned(),
        3 => "CHAOS".to_owned(),
        4 => "HS".to_owned(),
        255 => "ANY".to_owned(),
        _ => format!("(Class {class})"),
    }
}
