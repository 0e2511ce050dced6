//! pcapng reading for the pcap sources ([`crate::pcapio::PcapReader`]):
//! the blocks libpcap reads, read as libpcap reads them, from a mapped file
//! without a copy.
//!
//! Written here rather than taken from `pcap-file` 2.0, whose pcapng parser
//! reads every Enhanced Packet Block's timestamp as nanoseconds whatever the
//! interface's `if_tsresol` says (a default, microsecond file — Wireshark's
//! and dumpcap's — comes out 1000 times too early) and allocates a vector
//! of options per packet.
//!
//! What is read: Section Header Blocks (a new section starts a new set of
//! interfaces; its byte order must be the first's, as libpcap requires),
//! Interface Description Blocks (link type, snaplen, `if_tsresol`,
//! `if_tsoffset`), Enhanced, Simple and (obsolete) Packet Blocks. Every
//! other block is skipped. Every interface must be Ethernet: packets of
//! another link type cannot be replayed as frames, and skipping them would
//! lose them uncounted.

use std::fmt;

/// Block type of a Section Header Block, and the first 4 bytes of a pcapng file.
pub const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// `if_tsresol` and `if_tsoffset`.
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;
const LINKTYPE_ETHERNET: u16 = 1;

/// What is wrong with a pcapng file, and the offset of the block.
#[derive(Debug, PartialEq, Eq)]
pub enum NgError {
    /// The file ends inside the block at this offset.
    Truncated,
    /// The first section's byte-order magic is neither order's.
    ByteOrder(u32),
    /// A section of a version other than 1.0 (or 1.2, which libpcap also reads).
    Version(u16, u16),
    /// An interface whose link type is not Ethernet.
    Linktype(u16),
    /// A block with impossible values.
    Corrupt(String),
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("the file ends inside this block"),
            Self::ByteOrder(m) => write!(f, "a pcapng section header whose byte-order magic is {m:#010x}"),
            Self::Version(a, b) => write!(f, "pcapng section version {a}.{b}: only 1.0 (and 1.2) are read"),
            Self::Linktype(l) => write!(f, "an interface of link type {l}, not Ethernet (1)"),
            Self::Corrupt(r) => f.write_str(r),
        }
    }
}

/// How an interface's timestamps turn into nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    /// Units per second (`if_tsresol`: 10^n or 2^n; 10^6 by default).
    units: u64,
    /// Nanoseconds per unit when that is a whole number (10^0 to 10^9), for
    /// one multiplication per packet instead of a division.
    ns_per_unit: Option<u64>,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_s: i64,
}

impl Clock {
    fn new(units: u64, offset_s: i64) -> Self {
        let ns_per_unit = (1_000_000_000 % units == 0).then(|| 1_000_000_000 / units);
        Self { units, ns_per_unit, offset_s }
    }

    /// A timestamp `t` in nanoseconds since the epoch, as libpcap reads it
    /// (the fraction of a second cut, not rounded, to a nanosecond); one
    /// before the epoch reads as 0, one past 2554 as the last nanosecond.
    fn ns(&self, t: u64) -> u64 {
        let whole = match self.ns_per_unit {
            Some(n) => i128::from(t) * i128::from(n),
            None => {
                let (sec, frac) = (t / self.units, t % self.units);
                i128::from(sec) * 1_000_000_000 + (u128::from(frac) * 1_000_000_000 / u128::from(self.units)) as i128
            }
        };
        let ns = whole + i128::from(self.offset_s) * 1_000_000_000;
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// An interface of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    /// Its snaplen as libpcap takes it (0, or more than the maximum, read as
    /// the maximum): a packet captured longer is cut to it.
    snaplen: u32,
    clock: Clock,
}

/// A packet found in a pcapng file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Timestamp, ns since the epoch (0 for a Simple Packet Block, which has none).
    pub ts_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// Offset of the captured bytes in the file.
    pub offset: usize,
    /// Captured bytes kept.
    pub len: usize,
}

/// The state of a pcapng file being read: its byte order and the
/// interfaces of the current section.
#[derive(Debug)]
pub struct Reader {
    swapped: bool,
    interfaces: Vec<Interface>,
    /// Largest packet read ([`crate::pcapio::MAX_SNAPLEN`]).
    max_snaplen: u32,
}

/// One block: its type, the range of its body and where the next one starts.
struct Block {
    kind: u32,
    body: std::ops::Range<usize>,
    next: usize,
}

impl Reader {
    /// Read the Section Header Block at the start of `file` and the blocks
    /// up to its first Interface Description Block (libpcap reads as far at
    /// open). Returns the reader and the offset of the block after that.
    ///
    /// # Errors
    /// [`NgError`] and the offset of the block at fault.
    pub fn open(file: &[u8], max_snaplen: u32) -> Result<(Self, usize), (NgError, usize)> {
        let order = file.get(8..12).ok_or((NgError::Truncated, 0))?;
        let order = u32::from_le_bytes(order.try_into().expect("4 bytes"));
        let swapped = match order {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            m => return Err((NgError::ByteOrder(m), 0)),
        };
        let mut r = Self { swapped, interfaces: Vec::new(), max_snaplen };
        let shb = r.block(file, 0)?;
        r.section(file, &shb).map_err(|e| (e, 0))?;
        let mut at = shb.next;
        loop {
            if at == file.len() {
                return Err((NgError::Corrupt("the file has no Interface Description Block".into()), at));
            }
            let b = r.block(file, at)?;
            match b.kind {
                IDB => {
                    r.interface(file, &b).map_err(|e| (e, at))?;
                    return Ok((r, b.next));
                }
                EPB | SPB | PB => {
                    return Err((
                        NgError::Corrupt("a packet block comes before any Interface Description Block".into()),
                        at,
                    ))
                }
                _ => at = b.next,
            }
        }
    }

    /// The next packet at or after `at`, with the offset of the block after
    /// it; `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// [`NgError`] and the offset of the block at fault.
    pub fn next(&mut self, file: &[u8], mut at: usize) -> Result<Option<(Packet, usize)>, (NgError, usize)> {
        while at < file.len() {
            let b = self.block(file, at)?;
            let found = match b.kind {
                EPB | PB => self.packet(file, &b),
                SPB => self.simple_packet(file, &b),
                IDB => self.interface(file, &b).map(|()| None),
                SHB => self.section(file, &b).map(|()| None),
                _ => Ok(None),
            };
            match found {
                Ok(Some(p)) => return Ok(Some((p, b.next))),
                Ok(None) => at = b.next,
                Err(e) => return Err((e, at)),
            }
        }
        Ok(None)
    }

    fn word(&self, file: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes(file[at..at + 4].try_into().expect("4 bytes"));
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    fn half(&self, file: &[u8], at: usize) -> u16 {
        let v = u16::from_le_bytes([file[at], file[at + 1]]);
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// The block at `at`, its lengths checked as libpcap checks them.
    fn block(&self, file: &[u8], at: usize) -> Result<Block, (NgError, usize)> {
        if file.len() - at < 8 {
            return Err((NgError::Truncated, at));
        }
        let (kind, total) = (self.word(file, at), self.word(file, at + 4));
        // A section in the other byte order: its length reads wrong too.
        if kind == SHB && file.len() - at >= 12 && self.word(file, at + 8).swap_bytes() == BYTE_ORDER_MAGIC {
            return Err((NgError::Corrupt("the file has sections with different byte orders".into()), at));
        }
        let corrupt = |reason: String| Err((NgError::Corrupt(reason), at));
        if total < 12 {
            return corrupt(format!("block of type {kind} has a length of {total} < 12"));
        }
        if total % 4 != 0 {
            return corrupt(format!("block of type {kind} has a length of {total} that is not a multiple of 4"));
        }
        let end = at.checked_add(total as usize).filter(|&e| e <= file.len()).ok_or((NgError::Truncated, at))?;
        let trailer = self.word(file, end - 4);
        if trailer != total {
            return corrupt(format!("block total length in header {total} and trailer {trailer} don't match"));
        }
        Ok(Block { kind, body: at + 8..end - 4, next: end })
    }

    /// A Section Header Block: the byte order must stay the first section's
    /// (as libpcap requires), and the section's interfaces start afresh.
    fn section(&mut self, file: &[u8], b: &Block) -> Result<(), NgError> {
        if b.body.len() < 16 {
            return Err(short(SHB));
        }
        let order = self.word(file, b.body.start);
        if order != BYTE_ORDER_MAGIC {
            return Err(NgError::Corrupt(if order.swap_bytes() == BYTE_ORDER_MAGIC {
                "the file has sections with different byte orders".into()
            } else {
                format!("a section has the byte-order magic {order:#010x}")
            }));
        }
        let (major, minor) = (self.half(file, b.body.start + 4), self.half(file, b.body.start + 6));
        if major != 1 || !matches!(minor, 0 | 2) {
            return Err(NgError::Version(major, minor));
        }
        self.interfaces.clear();
        Ok(())
    }

    /// An Interface Description Block: its link type, snaplen and clock.
    fn interface(&mut self, file: &[u8], b: &Block) -> Result<(), NgError> {
        if b.body.len() < 8 {
            return Err(short(IDB));
        }
        let linktype = self.half(file, b.body.start);
        if linktype != LINKTYPE_ETHERNET {
            return Err(NgError::Linktype(linktype));
        }
        let snaplen = match self.word(file, b.body.start + 4) {
            0 => self.max_snaplen,
            n => n.min(self.max_snaplen),
        };
        let (mut units, mut offset_s) = (None, None);
        let mut at = b.body.start + 8;
        while b.body.end - at >= 4 {
            let (code, len) = (self.half(file, at), usize::from(self.half(file, at + 2)));
            let value = at + 4;
            if b.body.end - value < len.next_multiple_of(4) {
                return Err(short(IDB));
            }
            match (code, len) {
                (0, _) => break,
                (IF_TSRESOL, 1) => {
                    let r = file[value];
                    let u = if r & 0x80 != 0 {
                        1u64.checked_shl(u32::from(r & 0x7f))
                    } else {
                        10u64.checked_pow(u32::from(r))
                    };
                    let u = u.ok_or_else(|| NgError::Corrupt(format!("if_tsresol {r:#04x} is too fine")))?;
                    if units.replace(u).is_some() {
                        return Err(NgError::Corrupt("an interface has more than one if_tsresol".into()));
                    }
                }
                (IF_TSOFFSET, 8) => {
                    let lo = u64::from(self.word(file, value));
                    let hi = u64::from(self.word(file, value + 4));
                    // The option's 8 bytes in the section's byte order.
                    let v = if self.swapped { (lo << 32) | hi } else { (hi << 32) | lo };
                    if offset_s.replace(v as i64).is_some() {
                        return Err(NgError::Corrupt("an interface has more than one if_tsoffset".into()));
                    }
                }
                (IF_TSRESOL | IF_TSOFFSET, n) => {
                    return Err(NgError::Corrupt(format!("an interface's option {code} has length {n}")))
                }
                _ => {}
            }
            at = value + len.next_multiple_of(4);
        }
        let clock = Clock::new(units.unwrap_or(1_000_000), offset_s.unwrap_or(0));
        self.interfaces.push(Interface { snaplen, clock });
        Ok(())
    }

    fn iface(&self, id: u32) -> Result<Interface, NgError> {
        self.interfaces.get(id as usize).copied().ok_or_else(|| {
            NgError::Corrupt(format!(
                "a packet arrived on interface {id}, but there's no Interface Description Block for that interface"
            ))
        })
    }

    /// An Enhanced Packet Block, or an obsolete Packet Block (a 16-bit
    /// interface id and a drop count where the EPB has its 32-bit id).
    fn packet(&self, file: &[u8], b: &Block) -> Result<Option<Packet>, NgError> {
        if b.body.len() < 20 {
            return Err(short(b.kind));
        }
        let s = b.body.start;
        let id = if b.kind == PB { u32::from(self.half(file, s)) } else { self.word(file, s) };
        let t = (u64::from(self.word(file, s + 4)) << 32) | u64::from(self.word(file, s + 8));
        let (incl, orig) = (self.word(file, s + 12), self.word(file, s + 16));
        let iface = self.iface(id)?;
        if incl > self.max_snaplen {
            return Err(NgError::Corrupt(format!("captured length {incl} exceeds {}", self.max_snaplen)));
        }
        if b.body.len() - 20 < incl as usize {
            return Err(short(b.kind));
        }
        Ok(Some(Packet {
            ts_ns: iface.clock.ns(t),
            orig_len: orig,
            offset: s + 20,
            len: incl.min(iface.snaplen) as usize,
        }))
    }

    /// A Simple Packet Block: interface 0's, no timestamp, and captured as
    /// far as that interface's snaplen.
    fn simple_packet(&self, file: &[u8], b: &Block) -> Result<Option<Packet>, NgError> {
        if b.body.len() < 4 {
            return Err(short(SPB));
        }
        let orig = self.word(file, b.body.start);
        let iface = self.iface(0)?;
        let len = orig.min(iface.snaplen) as usize;
        if b.body.len() - 4 < len {
            return Err(short(SPB));
        }
        Ok(Some(Packet { ts_ns: 0, orig_len: orig, offset: b.body.start + 4, len }))
    }
}

fn short(kind: u32) -> NgError {
    NgError::Corrupt(format!("block of type {kind} is too short for what it holds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Read = (u64, u32, Vec<u8>);

    /// A pcapng file built block by block, in either byte order.
    struct Ng {
        big: bool,
        bytes: Vec<u8>,
    }

    impl Ng {
        fn new(big: bool) -> Self {
            let mut f = Self { big, bytes: Vec::new() };
            f.section(1, 0);
            f
        }
        fn w32(&self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn w16(&self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, kind: u32, body: &[u8]) -> &mut Self {
            let mut body = body.to_vec();
            body.resize(body.len().next_multiple_of(4), 0);
            let total = (body.len() + 12) as u32;
            let (k, t) = (self.w32(kind), self.w32(total));
            self.bytes.extend(k);
            self.bytes.extend(t);
            self.bytes.extend(body);
            self.bytes.extend(t);
            self
        }
        fn section(&mut self, major: u16, minor: u16) -> &mut Self {
            let mut b = self.w32(BYTE_ORDER_MAGIC).to_vec();
            b.extend(self.w16(major));
            b.extend(self.w16(minor));
            b.extend([0xff; 8]);
            self.block(SHB, &b)
        }
        /// An IDB with options `(code, value)`.
        fn interface(&mut self, linktype: u16, snaplen: u32, options: &[(u16, Vec<u8>)]) -> &mut Self {
            let mut b = self.w16(linktype).to_vec();
            b.extend([0, 0]);
            b.extend(self.w32(snaplen));
            for (code, v) in options {
                b.extend(self.w16(*code));
                b.extend(self.w16(v.len() as u16));
                b.extend(v);
                b.resize(b.len().next_multiple_of(4), 0);
            }
            self.block(IDB, &b)
        }
        fn epb(&mut self, iface: u32, t: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut b = Vec::new();
            for w in [iface, (t >> 32) as u32, t as u32, data.len() as u32, orig] {
                b.extend(self.w32(w));
            }
            b.extend(data);
            self.block(EPB, &b)
        }
        /// Every packet as (time, original length, bytes kept).
        fn read(&self) -> Result<Vec<Read>, (NgError, usize)> {
            let (mut r, mut at) = Reader::open(&self.bytes, 262_144)?;
            let mut got = Vec::new();
            while let Some((p, next)) = r.next(&self.bytes, at)? {
                got.push((p.ts_ns, p.orig_len, self.bytes[p.offset..p.offset + p.len].to_vec()));
                at = next;
            }
            Ok(got)
        }
    }

    /// Timestamps in each resolution a file may give: the default
    /// microseconds, 10^-n, 2^-n, and an offset in seconds.
    #[test]
    fn timestamps_are_read_in_each_interfaces_resolution() {
        for big in [false, true] {
            let mut f = Ng::new(big);
            let offset = f.w64(100);
            f.interface(1, 0, &[])
                .interface(1, 0, &[(IF_TSRESOL, vec![9])])
                .interface(1, 0, &[(IF_TSRESOL, vec![3]), (IF_TSOFFSET, offset)])
                .interface(1, 0, &[(IF_TSRESOL, vec![0x80 | 10])])
                .interface(1, 0, &[(IF_TSRESOL, vec![12])]);
            f.epb(0, 1_700_000_000_123_456, b"a", 1)
                .epb(1, 1_700_000_000_123_456_789, b"b", 1)
                .epb(2, 1_700_000_000_123, b"c", 1)
                .epb(3, (5 << 10) | 512, b"d", 1)
                .epb(4, 1_700_000_123_456_789_123, b"e", 1);
            let ts: Vec<u64> = f.read().unwrap().iter().map(|p| p.0).collect();
            assert_eq!(
                ts,
                [
                    1_700_000_000_123_456_000,
                    1_700_000_000_123_456_789,
                    1_700_000_100_123_000_000,
                    5_500_000_000,
                    1_700_000_123_456_789,
                ],
                "big-endian {big}"
            );
        }
    }

    impl Ng {
        fn w64(&self, v: u64) -> Vec<u8> {
            if self.big {
                v.to_be_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        }
    }

    /// Lengths as libpcap reads them: a packet captured longer than its
    /// interface's snaplen is cut to it, the original length is kept as
    /// recorded, a Simple Packet Block is captured to interface 0's snaplen,
    /// an obsolete Packet Block read as an EPB; other blocks are skipped,
    /// and a new section starts its interfaces afresh.
    #[test]
    fn packets_of_every_kind_are_read_and_other_blocks_skipped() {
        let mut f = Ng::new(false);
        f.block(4, &[1, 2, 3, 4]) // a name resolution block before any interface
            .interface(1, 4, &[(2, b"eth0".to_vec()), (IF_TSRESOL, vec![9])])
            .epb(0, 7, b"abcdefgh", 100);
        let mut spb = 6u32.to_le_bytes().to_vec();
        spb.extend(b"ABCDEF");
        f.block(SPB, &spb).block(5, &[0; 12]).block(0x0000_0bad, b"custom");
        let mut pb = Vec::new();
        pb.extend(0u16.to_le_bytes());
        pb.extend(3u16.to_le_bytes());
        for w in [0u32, 9, 2, 2] {
            pb.extend(w.to_le_bytes());
        }
        pb.extend(b"pq");
        f.block(PB, &pb);
        f.section(1, 0).interface(1, 0, &[]).epb(0, 1, b"new", 3);
        let got = f.read().unwrap();
        assert_eq!(
            got,
            [(7, 100, b"abcd".to_vec()), (0, 6, b"ABCD".to_vec()), (9, 2, b"pq".to_vec()), (1000, 3, b"new".to_vec()),]
        );
    }

    /// Each bad file is refused with libpcap's reason and the block's offset,
    /// after the good packets before it.
    #[test]
    fn bad_files_are_named_errors() {
        let err = |f: &Ng| f.read().unwrap_err();
        let mut f = Ng::new(false);
        f.interface(113, 0, &[]);
        assert_eq!(err(&f), (NgError::Linktype(113), 28));
        let mut f = Ng::new(false);
        f.epb(0, 0, b"x", 1);
        assert!(matches!(err(&f), (NgError::Corrupt(r), 28) if r.contains("before any Interface Description")));
        let f = Ng::new(false);
        assert!(matches!(err(&f), (NgError::Corrupt(r), 28) if r.contains("no Interface Description")));
        let mut f = Ng { big: false, bytes: Vec::new() };
        f.section(2, 0);
        assert_eq!(err(&f), (NgError::Version(2, 0), 0));
        let mut f = Ng::new(false);
        f.interface(1, 0, &[]).epb(1, 0, b"x", 1);
        assert!(matches!(err(&f), (NgError::Corrupt(r), 48) if r.contains("interface 1, but there's no")));
        // A second interface of another link type: the packets before it are read.
        let mut f = Ng::new(false);
        f.interface(1, 0, &[]).epb(0, 0, b"x", 1).interface(101, 0, &[]);
        let (mut r, at) = Reader::open(&f.bytes, 262_144).unwrap();
        let (_, at) = r.next(&f.bytes, at).unwrap().unwrap();
        assert_eq!(r.next(&f.bytes, at).unwrap_err(), (NgError::Linktype(101), at));
        // Cut inside a block; a trailer that disagrees; a length not a multiple of 4.
        let mut f = Ng::new(false);
        f.interface(1, 0, &[]).epb(0, 0, b"xyz", 3);
        let whole = f.bytes.clone();
        f.bytes.truncate(whole.len() - 2);
        assert_eq!(err(&f), (NgError::Truncated, 48));
        f.bytes = whole.clone();
        let n = f.bytes.len();
        f.bytes[n - 4] = 99;
        assert!(matches!(err(&f), (NgError::Corrupt(r), 48) if r.contains("trailer 99 don't match")));
        f.bytes = whole.clone();
        f.bytes[48 + 4] = 34;
        assert!(matches!(err(&f), (NgError::Corrupt(r), 48) if r.contains("not a multiple of 4")));
        // A captured length beyond the block.
        f.bytes = whole.clone();
        f.bytes[48 + 20] = 200;
        assert!(matches!(err(&f), (NgError::Corrupt(r), 48) if r.contains("too short")));
        // A section in the other byte order.
        let mut f = Ng::new(false);
        f.interface(1, 0, &[]).epb(0, 0, b"x", 1);
        let mut g = Ng::new(true);
        g.interface(1, 0, &[]);
        let at = f.bytes.len();
        f.bytes.extend(&g.bytes);
        assert!(matches!(err(&f), (NgError::Corrupt(r), a) if a == at && r.contains("different byte orders")));
        // A resolution too fine for 64 bits.
        let mut f = Ng::new(false);
        f.interface(1, 0, &[(IF_TSRESOL, vec![20])]);
        assert!(matches!(err(&f), (NgError::Corrupt(r), 28) if r.contains("too fine")));
        let mut f = Ng { big: false, bytes: vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4] };
        assert_eq!(err(&f), (NgError::ByteOrder(0x0403_0201), 0));
        f.bytes.truncate(10);
        assert_eq!(err(&f), (NgError::Truncated, 0));
    }
}
