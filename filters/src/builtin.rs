//! Built-in filters: a small expression language over the fields engineers
//! match on most, composable with `and`, `or`, `not` and parentheses.
//!
//! ```text
//! expr    := term ("or" term)*
//! term    := factor ("and" factor)*
//! factor  := "not" factor | "(" expr ")" | primitive
//! primitive :=
//!     ["src" | "dst"] "mac" MAC[,MAC...]        any / source / destination MAC in the list
//!   | "vlan" ID[-ID][,...]                      any VLAN tag (outer or inner) in the list
//!   | "untagged"                                no VLAN tag
//!   | "ethertype" N[,N...]                      ethertype after the tags (0x88cc or 34988)
//!   | "proto" (tcp|udp|icmp|icmp6|sctp|gre|N)[,...]
//!   | tcp | udp | icmp | icmp6 | sctp | gre           shorthand for "proto NAME"
//!   | ["src" | "dst"] "net" PREFIX              IPv4 or IPv6 prefix (10.0.0.0/8, fd00::/8, a bare address)
//!   | ["src" | "dst"] "port" P[-P][,...]        TCP / UDP / SCTP port ranges
//!   | "sample" N                                1 frame in N (of those reaching it)
//!   | "rate" N                                  token bucket: at most N frames/s (burst N/10, at least 1)
//! ```
//!
//! `sample` and `rate` keep state and count only the frames that reach them:
//! `udp and sample 10` keeps one UDP frame in ten. Their state is per filter
//! instance, i.e. per worker. `rate` runs on the frames' own timestamps, so
//! the filter never reads a clock.

use std::net::IpAddr;

use ringwire_filter_sdk::Headers;

use crate::{Filter, FilterError, Packet, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Any,
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Prim {
    Mac(Dir, Vec<[u8; 6]>),
    Vlan(Vec<(u16, u16)>),
    Untagged,
    Ethertype(Vec<u16>),
    Proto(Vec<u8>),
    Net(Dir, IpAddr, u8),
    Port(Dir, Vec<(u16, u16)>),
    /// 1 in N; index of its counter.
    Sample(u64, usize),
    /// A token bucket: ns of credit one frame costs (1 s / frames per
    /// second), the most credit kept (a tenth of a second's frames), and the
    /// index of its bucket. Worked out once, at parse time.
    Rate {
        cost_ns: u64,
        cap_ns: u64,
        idx: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// Terms joined by `and` (two or more), side by side, not nested: a
    /// long chain costs no stack when run, copied or dropped.
    And(Vec<Node>),
    /// Terms joined by `or` (two or more), likewise.
    Or(Vec<Node>),
    Not(Box<Node>),
    Prim(Prim),
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    credit_ns: u64,
    last_ns: Option<u64>,
}

/// A compiled built-in filter expression.
#[derive(Debug, Clone)]
pub struct BuiltinFilter {
    text: String,
    root: Node,
    samples: Vec<u64>,
    buckets: Vec<Bucket>,
}

/// Nesting deeper than this is refused (a parser that recursed on untrusted
/// text without a bound could overflow the stack).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    toks: Vec<&'a str>,
    pos: usize,
    samples: usize,
    buckets: usize,
    depth: usize,
}

fn tokenize(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if let Some(b) = start.take() {
                out.push(&s[b..i]);
            }
            if !c.is_whitespace() {
                out.push(&s[i..i + 1]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(b) = start {
        out.push(&s[b..]);
    }
    out
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).copied()
    }

    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        let t = self.peek().ok_or_else(|| format!("expected {what} at the end"))?;
        self.pos += 1;
        Ok(t)
    }

    /// The next token as a number from 1 to 2^32 - 1.
    fn positive(&mut self, what: &str, if_zero: &str) -> Result<u64, String> {
        match number(self.next(what)?, u32::MAX.into())? {
            0 => Err(if_zero.into()),
            n => Ok(u64::from(n)),
        }
    }

    fn expr(&mut self) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let mut terms = vec![self.term()?];
        while self.peek() == Some("or") {
            self.pos += 1;
            terms.push(self.term()?);
        }
        self.depth -= 1;
        Ok(if terms.len() == 1 { terms.remove(0) } else { Node::Or(terms) })
    }

    fn term(&mut self) -> Result<Node, String> {
        let mut factors = vec![self.factor()?];
        while self.peek() == Some("and") {
            self.pos += 1;
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 { factors.remove(0) } else { Node::And(factors) })
    }

    fn factor(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some("not") => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                }
                let inner = self.factor()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            Some("(") => {
                self.pos += 1;
                let e = self.expr()?;
                match self.next("`)`")? {
                    ")" => Ok(e),
                    t => Err(format!("expected `)`, found `{t}`")),
                }
            }
            _ => self.primitive().map(Node::Prim),
        }
    }

    fn primitive(&mut self) -> Result<Prim, String> {
        let first = self.next("a filter")?;
        let (dir, kw) = match first {
            "src" => (Dir::Src, self.next("`mac`, `net` or `port` after `src`")?),
            "dst" => (Dir::Dst, self.next("`mac`, `net` or `port` after `dst`")?),
            k => (Dir::Any, k),
        };
        if dir != Dir::Any && !matches!(kw, "mac" | "net" | "port") {
            return Err(format!("`{first}` must be followed by mac, net or port, not `{kw}`"));
        }
        let p = match kw {
            "mac" => Prim::Mac(dir, list(self.next("MAC addresses")?, parse_mac)?),
            "vlan" => Prim::Vlan(list(self.next("VLAN ids")?, |s| range(s, 4095))?),
            "untagged" => Prim::Untagged,
            "ethertype" => Prim::Ethertype(list(self.next("ethertypes")?, |s| number(s, 0xffff).map(|v| v as u16))?),
            "proto" => Prim::Proto(list(self.next("protocols")?, parse_proto)?),
            "net" => {
                let (a, l) = parse_prefix(self.next("an address prefix")?)?;
                Prim::Net(dir, a, l)
            }
            "port" => Prim::Port(dir, list(self.next("ports")?, |s| range(s, 65535))?),
            // tcpdump's habit: a bare protocol name means `proto NAME`.
            "tcp" | "udp" | "icmp" | "icmp6" | "sctp" | "gre" => Prim::Proto(vec![parse_proto(kw)?]),
            "sample" => {
                let n = self.positive("N", "sample 0: N must be at least 1")?;
                self.samples += 1;
                Prim::Sample(n, self.samples - 1)
            }
            "rate" => {
                let n = self.positive("frames per second", "rate 0: use `not ...` to drop everything")?;
                self.buckets += 1;
                let cost_ns = 1_000_000_000 / n;
                Prim::Rate { cost_ns, cap_ns: cost_ns * (n / 10).max(1), idx: self.buckets - 1 }
            }
            other => return Err(format!("unknown filter `{other}`")),
        };
        Ok(p)
    }
}

fn list<T>(s: &str, f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    s.split(',').map(|p| f(p.trim())).collect()
}

fn number(s: &str, max: u64) -> Result<u32, String> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    }
    .map_err(|_| format!("`{s}` is not a number"))?;
    if v > max {
        return Err(format!("`{s}` is out of range (0..={max})"));
    }
    u32::try_from(v).map_err(|_| format!("`{s}` is out of range"))
}

fn range(s: &str, max: u64) -> Result<(u16, u16), String> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (number(a, max)?, number(b, max)?),
        None => {
            let v = number(s, max)?;
            (v, v)
        }
    };
    if a > b {
        return Err(format!("range `{s}` runs backwards"));
    }
    Ok((a as u16, b as u16))
}

/// Parse a MAC address written `aa:bb:cc:dd:ee:ff` (or with `-`).
///
/// # Errors
/// A message quoting the text.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!("`{s}` is not a MAC address"));
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("`{s}` is not a MAC address"))?;
    }
    Ok(m)
}

fn parse_proto(s: &str) -> Result<u8, String> {
    Ok(match s {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "icmp6" => 58,
        "sctp" => 132,
        n => number(n, 255)? as u8,
    })
}

fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => number(l, max)? as u8,
        None => max as u8,
    };
    Ok((addr, len))
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn pick<T: Copy>(dir: Dir, pair: (T, T), f: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Src => f(pair.1),
        Dir::Dst => f(pair.0),
        Dir::Any => f(pair.0) || f(pair.1),
    }
}

impl BuiltinFilter {
    /// Parse a built-in filter expression.
    ///
    /// # Errors
    /// [`FilterError::Builtin`] naming the problem.
    pub fn new(text: &str) -> Result<Self, FilterError> {
        let err = |message: String| FilterError::Builtin { expression: text.to_owned(), message };
        if text.len() > 64 * 1024 {
            return Err(err("longer than 64 KiB".into()));
        }
        let mut p = Parser { toks: tokenize(text), pos: 0, samples: 0, buckets: 0, depth: 0 };
        if p.toks.is_empty() {
            return Err(err("empty expression".into()));
        }
        let root = p.expr().map_err(err)?;
        if let Some(t) = p.peek() {
            return Err(err(format!("unexpected `{t}`")));
        }
        Ok(Self {
            text: text.to_owned(),
            root,
            samples: vec![0; p.samples],
            buckets: vec![Bucket::default(); p.buckets],
        })
    }

    fn eval(node: &Node, h: &Headers, ts: u64, samples: &mut [u64], buckets: &mut [Bucket]) -> bool {
        match node {
            Node::And(all) => all.iter().all(|n| Self::eval(n, h, ts, samples, buckets)),
            Node::Or(any) => any.iter().any(|n| Self::eval(n, h, ts, samples, buckets)),
            Node::Not(a) => !Self::eval(a, h, ts, samples, buckets),
            Node::Prim(p) => match p {
                Prim::Mac(dir, list) => h.mac.is_some_and(|m| pick(*dir, m, |x| list.contains(&x))),
                Prim::Vlan(ranges) => {
                    h.vlans.iter().flatten().any(|v| ranges.iter().any(|(a, b)| (*a..=*b).contains(v)))
                }
                Prim::Untagged => h.vlans[0].is_none(),
                Prim::Ethertype(list) => h.ethertype.is_some_and(|e| list.contains(&e)),
                Prim::Proto(list) => h.proto.is_some_and(|p| list.contains(&p)),
                Prim::Net(dir, net, len) => {
                    h.addrs.is_some_and(|a| pick(*dir, (a.1, a.0), |x| in_prefix(x, *net, *len)))
                }
                Prim::Port(dir, ranges) => h
                    .ports
                    .is_some_and(|p| pick(*dir, (p.1, p.0), |x| ranges.iter().any(|(a, b)| (*a..=*b).contains(&x)))),
                Prim::Sample(n, i) => {
                    let c = &mut samples[*i];
                    *c += 1;
                    if *c >= *n {
                        *c = 0;
                        true
                    } else {
                        false
                    }
                }
                &Prim::Rate { cost_ns: cost, cap_ns: cap, idx } => {
                    let b = &mut buckets[idx];
                    let gained = b.last_ns.map_or(cap, |l| ts.saturating_sub(l));
                    b.last_ns = Some(ts);
                    b.credit_ns = b.credit_ns.saturating_add(gained).min(cap);
                    if b.credit_ns >= cost {
                        b.credit_ns -= cost;
                        true
                    } else {
                        false
                    }
                }
            },
        }
    }
}

impl Filter for BuiltinFilter {
    fn name(&self) -> &str {
        &self.text
    }

    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        let h = Headers::parse(pkt.data);
        if Self::eval(&self.root, &h, pkt.ts_ns, &mut self.samples, &mut self.buckets) {
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;
    use crate::Origin;

    /// About the longest expression a filter may be, 8 000 terms joined by `or`
    /// (and by `and`), is built, copied, run and dropped on a thread with a
    /// worker's stack: a chain of terms is not nested, whatever its length.
    #[test]
    fn a_long_chain_of_terms_fits_a_workers_stack() {
        for op in [" or ", " and "] {
            let text = vec!["tcp"; 8_000].join(op);
            assert!(text.len() < 64 << 10);
            let f = BuiltinFilter::new(&text).unwrap();
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    let mut g = f.clone();
                    drop(f);
                    let frame = [0u8; 60];
                    assert_eq!(g.verdict(&Packet::whole(&frame)), Verdict::Drop);
                })
                .unwrap()
                .join()
                .unwrap();
        }
    }

    fn udp(src_mac: [u8; 6], vlan: Option<u16>, dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(src_mac, [0xff; 6]);
        let mut f = Vec::new();
        match vlan {
            Some(v) => b
                .single_vlan(v.try_into().unwrap())
                .ipv4([10, 1, 2, 3], [192, 168, 0, 1], 64)
                .udp(4000, dport)
                .write(&mut f, &[0; 8]),
            None => b.ipv6([0xfd; 16], [0xfe; 16], 64).udp(4000, dport).write(&mut f, &[0; 8]),
        }
        .unwrap();
        f
    }

    fn pass(expr: &str, frame: &[u8]) -> bool {
        BuiltinFilter::new(expr).unwrap().verdict(&Packet::whole(frame)) == Verdict::Pass
    }

    #[test]
    fn primitives_and_composition() {
        let a = udp([2, 0, 0, 0, 0, 1], Some(10), 53);
        let b = udp([2, 0, 0, 0, 0, 2], None, 443);
        assert!(pass("src mac 02:00:00:00:00:01", &a));
        assert!(!pass("src mac 02:00:00:00:00:01", &b));
        assert!(pass("mac ff:ff:ff:ff:ff:ff", &b));
        assert!(pass("vlan 5-15", &a) && !pass("vlan 5-9,11", &a));
        assert!(pass("untagged", &b) && !pass("untagged", &a));
        assert!(pass("ethertype 0x86dd", &b) && pass("ethertype 2048", &a));
        assert!(pass("proto udp", &a) && !pass("proto tcp,icmp", &a));
        assert!(pass("src net 10.0.0.0/8", &a) && !pass("dst net 10.0.0.0/8", &a));
        assert!(pass("net fd00::/8", &b) && !pass("net fd00::/8", &a));
        assert!(pass("dst port 50-60", &a) && !pass("src port 50-60", &a));
        assert!(pass("(vlan 10 or untagged) and not port 443", &a));
        assert!(!pass("(vlan 10 or untagged) and not port 443", &b));
        assert!(pass("not not proto 17", &a));
        assert!(pass("udp and not tcp", &a));
    }

    #[test]
    fn sampling_keeps_one_in_n_of_what_reaches_it() {
        let a = udp([2; 6], None, 53);
        let mut f = BuiltinFilter::new("port 53 and sample 4").unwrap();
        let kept = (0..100).filter(|_| f.verdict(&Packet::whole(&a)) == Verdict::Pass).count();
        assert_eq!(kept, 25);
    }

    #[test]
    fn rate_limit_follows_frame_timestamps() {
        let a = udp([2; 6], None, 53);
        let mut f = BuiltinFilter::new("rate 100").unwrap();
        // 1000 frames over one second (1 ms apart): about 100 pass, plus the initial burst of 10.
        let kept = (0..1000u64)
            .filter(|i| {
                f.verdict(&Packet { data: &a, wire_len: a.len() as u32, ts_ns: i * 1_000_000, origin: Origin::Wire })
                    == Verdict::Pass
            })
            .count();
        assert!((100..=111).contains(&kept), "{kept}");
        // All at the same instant: only the burst.
        let mut f = BuiltinFilter::new("rate 100").unwrap();
        let kept = (0..1000)
            .filter(|_| f.verdict(&Packet { data: &a, wire_len: 60, ts_ns: 5, origin: Origin::Wire }) == Verdict::Pass)
            .count();
        assert_eq!(kept, 10);
    }

    #[test]
    fn bad_expressions_name_the_problem() {
        for (e, needle) in [
            ("", "empty"),
            ("vlan", "expected VLAN ids"),
            ("vlan 5000", "out of range"),
            ("vlan 9-3", "backwards"),
            ("mac zz:00:00:00:00:00", "not a MAC"),
            ("src vlan 3", "must be followed"),
            ("(udp", "expected"),
            ("proto udp)", "unexpected `)`"),
            ("portt 53", "unknown filter `portt`"),
            ("net 10.0.0.0/33", "out of range"),
            ("sample 0", "at least 1"),
        ] {
            let err = BuiltinFilter::new(e).unwrap_err().to_string();
            assert!(err.contains(needle), "{e:?}: {err}");
        }
        let deep = format!("{}untagged{}", "(".repeat(200), ")".repeat(200));
        assert!(BuiltinFilter::new(&deep).unwrap_err().to_string().contains("nested"));
        let nots = format!("{}untagged", "not ".repeat(200));
        assert!(BuiltinFilter::new(&nots).unwrap_err().to_string().contains("nested"));
    }
}
