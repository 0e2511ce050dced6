//! A classic BPF (cBPF) interpreter, the userspace twin of the kernel's
//! socket-filter interpreter and of libpcap's `bpf_filter()`.
//!
//! Programs come from libpcap; [`CbpfProgram::new`] validates them once (jump
//! targets, scratch-memory indexes, division by a zero constant, a final
//! return) so that [`CbpfProgram::run`] can execute without further checks
//! other than the packet bounds, which are checked on every load: a load past
//! the captured bytes rejects the frame, exactly as in the kernel.

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class, size, mode / operation, source.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Generic operand.
    pub k: u32,
}

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ST: u16 = 0x02;
const BPF_STX: u16 = 0x03;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_MISC: u16 = 0x07;

const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;

const BPF_IMM: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MEM: u16 = 0x60;
const BPF_LEN: u16 = 0x80;
const BPF_MSH: u16 = 0xa0;

const BPF_ADD: u16 = 0x00;
const BPF_SUB: u16 = 0x10;
const BPF_MUL: u16 = 0x20;
const BPF_DIV: u16 = 0x30;
const BPF_OR: u16 = 0x40;
const BPF_AND: u16 = 0x50;
const BPF_LSH: u16 = 0x60;
const BPF_RSH: u16 = 0x70;
const BPF_NEG: u16 = 0x80;
const BPF_MOD: u16 = 0x90;
const BPF_XOR: u16 = 0xa0;

const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;

const BPF_K: u16 = 0x00;
const BPF_X: u16 = 0x08;
const BPF_A: u16 = 0x10;

const BPF_TAX: u16 = 0x00;
const BPF_TXA: u16 = 0x80;

const MEMWORDS: usize = 16;
/// Start of the kernel's ancillary-data "offsets" (`SKF_AD_OFF`).
const SKF_AD_OFF: u32 = 0xffff_f000;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_VLAN_TAG: u32 = 44;
const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
const SKF_AD_VLAN_TPID: u32 = 60;

/// A VLAN tag the kernel stripped into a frame's metadata (and ringwire put back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// The tag control information (PCP, DEI, VID).
    pub tci: u16,
    /// The tag protocol identifier (0x8100, 0x88a8).
    pub tpid: u16,
}

/// How the program sees a frame.
#[derive(Debug, Clone, Copy)]
enum View {
    /// The bytes as they are (a file, or a frame as on the wire).
    Wire,
    /// As a socket filter in the kernel saw it: without the stripped tag
    /// (which ringwire put back at bytes 12..16), the tag in metadata.
    Kernel(Option<VlanTag>),
}
/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A validated classic BPF program.
#[derive(Debug, Clone)]
pub struct CbpfProgram {
    insns: Vec<Insn>,
    ops: Vec<Op>,
    /// Whether any load reads the kernel's ancillary data.
    ancillary: bool,
}

#[link(name = "pcap")]
extern "C" {
    /// libpcap's matcher (`pcap/bpf.h`): returns the snap length, 0 to reject;
    /// loads past `buflen` reject, as in the kernel.
    fn bpf_filter(pc: *const Insn, pkt: *const u8, wirelen: u32, buflen: u32) -> u32;
}

impl CbpfProgram {
    /// Validate `insns` and wrap them.
    ///
    /// # Errors
    /// A string naming the first problem: empty or too long, an unknown
    /// opcode, a jump out of the program, a scratch index over 15, a
    /// division by constant zero, or a last instruction that is not a return.
    pub fn new(insns: Vec<Insn>) -> Result<Self, String> {
        if insns.is_empty() || insns.len() > MAX_INSNS {
            return Err(format!("{} instructions (1..={MAX_INSNS} allowed)", insns.len()));
        }
        let n = insns.len();
        for (pc, i) in insns.iter().enumerate() {
            let bad = |what: &str| Err(format!("instruction {pc} (code {:#06x}): {what}", i.code));
            // Only the bits classic BPF defines (libpcap's matcher aborts on anything else).
            if i.code > 0xff {
                return bad("unknown opcode");
            }
            match i.code & 0x07 {
                BPF_LD | BPF_LDX => {
                    let mode = i.code & 0xe0;
                    let size = i.code & 0x18;
                    let ok = match (i.code & 0x07, mode) {
                        (BPF_LD, BPF_ABS | BPF_IND) => matches!(size, BPF_W | BPF_H | BPF_B),
                        (BPF_LD | BPF_LDX, BPF_IMM | BPF_LEN) => size == BPF_W,
                        (BPF_LD | BPF_LDX, BPF_MEM) => {
                            if i.k as usize >= MEMWORDS {
                                return bad("scratch index out of range");
                            }
                            size == BPF_W
                        }
                        (BPF_LDX, BPF_MSH) => size == BPF_B,
                        _ => false,
                    };
                    if !ok {
                        return bad("unknown load");
                    }
                }
                BPF_ST | BPF_STX => {
                    if i.code != BPF_ST && i.code != BPF_STX {
                        return bad("unknown store");
                    }
                    if i.k as usize >= MEMWORDS {
                        return bad("scratch index out of range");
                    }
                }
                BPF_ALU => {
                    let op = i.code & 0xf0;
                    if !matches!(
                        op,
                        BPF_ADD
                            | BPF_SUB
                            | BPF_MUL
                            | BPF_DIV
                            | BPF_OR
                            | BPF_AND
                            | BPF_LSH
                            | BPF_RSH
                            | BPF_NEG
                            | BPF_MOD
                            | BPF_XOR
                    ) {
                        return bad("unknown ALU operation");
                    }
                    if matches!(op, BPF_DIV | BPF_MOD) && i.code & BPF_X == BPF_K && i.k == 0 {
                        return bad("division by constant zero");
                    }
                    if matches!(op, BPF_LSH | BPF_RSH) && i.code & BPF_X == BPF_K && i.k >= 32 {
                        return bad("shift by 32 or more");
                    }
                    if op == BPF_NEG && i.code & BPF_X != 0 {
                        return bad("unknown ALU operation");
                    }
                }
                BPF_JMP => {
                    let op = i.code & 0xf0;
                    if op == BPF_JA && i.code & BPF_X != 0 {
                        return bad("unknown jump");
                    }
                    let targets_ok = if op == BPF_JA {
                        (i.k as usize) < n - pc - 1
                    } else if matches!(op, BPF_JEQ | BPF_JGT | BPF_JGE | BPF_JSET) {
                        pc + 1 + (i.jt as usize) < n && pc + 1 + (i.jf as usize) < n
                    } else {
                        return bad("unknown jump");
                    };
                    if !targets_ok {
                        return bad("jump out of the program");
                    }
                }
                BPF_RET => {
                    if !matches!(i.code, c if c == BPF_RET | BPF_K || c == BPF_RET | BPF_A) {
                        return bad("unknown return");
                    }
                }
                BPF_MISC => {
                    if i.code != BPF_MISC | BPF_TAX && i.code != BPF_MISC | BPF_TXA {
                        return bad("unknown misc operation");
                    }
                }
                _ => unreachable!("the class is three bits"),
            }
        }
        if insns[n - 1].code & 0x07 != BPF_RET {
            return Err("the last instruction is not a return".into());
        }
        let ops: Vec<Op> = insns.iter().copied().map(decode).collect();
        let ancillary = ops.iter().any(|o| matches!(o, Op::LdAnc(_)));
        Ok(Self { insns, ops, ancillary })
    }

    /// Check that every ancillary load is one userspace can answer from a
    /// frame's metadata (VLAN tag, present, TPID; protocol).
    ///
    /// # Errors
    /// The first load of kernel-only data (packet type, interface, ...).
    pub fn check_userspace_ancillary(&self) -> Result<(), String> {
        for i in &self.insns {
            if i.code & 0x07 == BPF_LD && i.code & 0xe0 == BPF_ABS && i.k >= SKF_AD_OFF {
                let what = i.k - SKF_AD_OFF;
                if !matches!(what, SKF_AD_PROTOCOL | SKF_AD_VLAN_TAG | SKF_AD_VLAN_TAG_PRESENT | SKF_AD_VLAN_TPID) {
                    return Err(format!(
                        "it reads kernel-only data (ancillary offset {what}, e.g. inbound/outbound or ifindex) that a userspace filter does not have; put it on the port instead"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The instructions, in the layout `SO_ATTACH_FILTER` takes.
    #[must_use]
    pub fn instructions(&self) -> &[Insn] {
        &self.insns
    }

    /// Run the program over a frame: the return value is the number of bytes
    /// to keep, 0 meaning reject.
    ///
    /// This is libpcap's own `bpf_filter`, given the wire length (so `len`,
    /// `greater` and `less` see the frame's real length on a snaplen-cut
    /// record): measured faster than this crate's interpreter
    /// (`cargo bench -p ringwire-filters`), which is kept for what libpcap
    /// cannot do ([`CbpfProgram::run_as_kernel`]).
    #[must_use]
    #[inline]
    pub fn run(&self, pkt: &[u8], wire_len: u32) -> u32 {
        let buflen = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
        // SAFETY: `insns` is a validated program (every jump in range, a final
        // return, scratch indexes < 16) in `struct bpf_insn` layout, and
        // `bpf_filter` reads at most `buflen` bytes of `pkt`, which is that long.
        unsafe { bpf_filter(self.insns.as_ptr(), pkt.as_ptr(), wire_len.max(buflen), buflen) }
    }

    /// [`CbpfProgram::run`] with this crate's interpreter instead of libpcap's
    /// (for differential tests and fuzzing).
    #[must_use]
    pub fn run_interpreted(&self, pkt: &[u8], wire_len: u32) -> u32 {
        self.exec(pkt, wire_len, View::Wire)
    }

    /// Run a program compiled for a live interface over a frame from one, as
    /// the kernel's socket filter would: if the kernel had stripped a VLAN tag
    /// (and it was put back at bytes 12..16), those four bytes are skipped and
    /// the tag is answered through the ancillary loads; `len` excludes it.
    #[must_use]
    pub fn run_as_kernel(&self, pkt: &[u8], wire_len: u32, stripped: Option<VlanTag>) -> u32 {
        if stripped.is_none() && !self.ancillary {
            // Nothing to hide and no metadata to answer: the kernel's view is the bytes.
            return self.run(pkt, wire_len);
        }
        self.exec(pkt, wire_len, View::Kernel(stripped))
    }

    fn exec(&self, pkt: &[u8], wire_len: u32, view: View) -> u32 {
        match view {
            View::Wire => self.exec_in::<false>(pkt, wire_len, None, false),
            View::Kernel(None) => self.exec_in::<false>(pkt, wire_len, None, true),
            View::Kernel(Some(t)) => self.exec_in::<true>(pkt, wire_len.saturating_sub(4), Some(t), true),
        }
    }

    /// The interpreter over pre-decoded ops (one jump-table dispatch per
    /// instruction). `SKIP_TAG`: the frame carries a restored tag at 12..16
    /// that the program must not see.
    #[inline]
    fn exec_in<const SKIP_TAG: bool>(&self, pkt: &[u8], len: u32, tag: Option<VlanTag>, kernel: bool) -> u32 {
        let load = |off: u32, size: u8| -> Option<u32> {
            if SKIP_TAG {
                load_skipping_tag(pkt, off as usize, usize::from(size))
            } else {
                load(pkt, off as usize, usize::from(size))
            }
        };
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0usize;
        loop {
            // Validation guarantees every jump lands inside the program and
            // the last instruction returns, so `pc` stays in bounds.
            let op = self.ops[pc];
            pc += 1;
            match op {
                Op::RetK(k) => return k,
                Op::RetA => return a,
                Op::LdAbs(off, size) => match load(off, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdAnc(what) => {
                    if !kernel {
                        return 0; // as an ordinary load, far past any frame
                    }
                    a = match what {
                        SKF_AD_VLAN_TAG => u32::from(tag.map_or(0, |t| t.tci)),
                        SKF_AD_VLAN_TAG_PRESENT => u32::from(tag.is_some()),
                        SKF_AD_VLAN_TPID => u32::from(tag.map_or(0, |t| t.tpid)),
                        SKF_AD_PROTOCOL => match load(12, 2) {
                            Some(v) => v,
                            None => return 0,
                        },
                        _ => return 0,
                    };
                }
                Op::LdInd(off, size) => match x.checked_add(off).and_then(|o| load(o, size)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdLen => a = len,
                Op::LdxLen => x = len,
                Op::LdImm(k) => a = k,
                Op::LdxImm(k) => x = k,
                Op::LdMem(i) => a = mem[usize::from(i)],
                Op::LdxMem(i) => x = mem[usize::from(i)],
                Op::LdxMsh(off) => match load(off, 1) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                },
                Op::St(i) => mem[usize::from(i)] = a,
                Op::Stx(i) => mem[usize::from(i)] = x,
                Op::Alu(op, src) => {
                    let v = match src {
                        Src::K(k) => k,
                        Src::X => x,
                    };
                    a = match op {
                        AluOp::Add => a.wrapping_add(v),
                        AluOp::Sub => a.wrapping_sub(v),
                        AluOp::Mul => a.wrapping_mul(v),
                        AluOp::Div => match a.checked_div(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        AluOp::Mod => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        AluOp::Or => a | v,
                        AluOp::And => a & v,
                        AluOp::Xor => a ^ v,
                        AluOp::Lsh => a.checked_shl(v).unwrap_or(0),
                        AluOp::Rsh => a.checked_shr(v).unwrap_or(0),
                        AluOp::Neg => a.wrapping_neg(),
                    };
                }
                Op::Ja(k) => pc += k as usize,
                Op::Jmp(cond, src, jt, jf) => {
                    let v = match src {
                        Src::K(k) => k,
                        Src::X => x,
                    };
                    let taken = match cond {
                        Cond::Eq => a == v,
                        Cond::Gt => a > v,
                        Cond::Ge => a >= v,
                        Cond::Set => a & v != 0,
                    };
                    pc += usize::from(if taken { jt } else { jf });
                }
                Op::Tax => x = a,
                Op::Txa => a = x,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Src {
    K(u32),
    X,
}

#[derive(Debug, Clone, Copy)]
enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
    Neg,
}

#[derive(Debug, Clone, Copy)]
enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
}

/// A validated instruction, decoded once so the interpreter dispatches on a
/// dense enum instead of testing opcode bits per instruction.
#[derive(Debug, Clone, Copy)]
enum Op {
    RetK(u32),
    RetA,
    LdAbs(u32, u8),
    LdAnc(u32),
    LdInd(u32, u8),
    LdLen,
    LdxLen,
    LdImm(u32),
    LdxImm(u32),
    LdMem(u8),
    LdxMem(u8),
    LdxMsh(u32),
    St(u8),
    Stx(u8),
    Alu(AluOp, Src),
    Ja(u32),
    Jmp(Cond, Src, u8, u8),
    Tax,
    Txa,
}

/// Decode a validated instruction (see [`CbpfProgram::new`] for what validation guarantees).
fn decode(i: Insn) -> Op {
    let size = |c: u16| match c & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        _ => 1,
    };
    let src = |c: u16| if c & BPF_X == BPF_X { Src::X } else { Src::K(i.k) };
    let c = i.code;
    match c & 0x07 {
        BPF_RET => {
            if c & 0x18 == BPF_A {
                Op::RetA
            } else {
                Op::RetK(i.k)
            }
        }
        BPF_LD => match c & 0xe0 {
            BPF_ABS if i.k >= SKF_AD_OFF => Op::LdAnc(i.k - SKF_AD_OFF),
            BPF_ABS => Op::LdAbs(i.k, size(c)),
            BPF_IND => Op::LdInd(i.k, size(c)),
            BPF_LEN => Op::LdLen,
            BPF_IMM => Op::LdImm(i.k),
            _ => Op::LdMem(i.k as u8),
        },
        BPF_LDX => match c & 0xe0 {
            BPF_LEN => Op::LdxLen,
            BPF_IMM => Op::LdxImm(i.k),
            BPF_MEM => Op::LdxMem(i.k as u8),
            _ => Op::LdxMsh(i.k),
        },
        BPF_ST => Op::St(i.k as u8),
        BPF_STX => Op::Stx(i.k as u8),
        BPF_ALU => Op::Alu(
            match c & 0xf0 {
                BPF_ADD => AluOp::Add,
                BPF_SUB => AluOp::Sub,
                BPF_MUL => AluOp::Mul,
                BPF_DIV => AluOp::Div,
                BPF_MOD => AluOp::Mod,
                BPF_OR => AluOp::Or,
                BPF_AND => AluOp::And,
                BPF_XOR => AluOp::Xor,
                BPF_LSH => AluOp::Lsh,
                BPF_RSH => AluOp::Rsh,
                _ => AluOp::Neg,
            },
            src(c),
        ),
        BPF_JMP => match c & 0xf0 {
            BPF_JA => Op::Ja(i.k),
            op => Op::Jmp(
                match op {
                    BPF_JEQ => Cond::Eq,
                    BPF_JGT => Cond::Gt,
                    BPF_JGE => Cond::Ge,
                    _ => Cond::Set,
                },
                src(c),
                i.jt,
                i.jf,
            ),
        },
        _ => {
            if c & 0xf8 == BPF_TXA {
                Op::Txa
            } else {
                Op::Tax
            }
        }
    }
}

/// Like [`load`], in the view without the four tag bytes at 12..16.
#[inline]
fn load_skipping_tag(pkt: &[u8], off: usize, size: usize) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..size {
        let at = off.checked_add(i)?;
        let at = if at < 12 { at } else { at.checked_add(4)? };
        v = (v << 8) | u32::from(*pkt.get(at)?);
    }
    Some(v)
}

/// Big-endian load of `size` bytes at `off`, `None` past the captured bytes.
#[inline]
fn load(pkt: &[u8], off: usize, size: usize) -> Option<u32> {
    let bytes = pkt.get(off..off.checked_add(size)?)?;
    Some(match *bytes {
        [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
        [a, b] => u32::from(u16::from_be_bytes([a, b])),
        [a] => u32::from(a),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run with libpcap's matcher and with the interpreter; they must agree.
    fn both(p: &CbpfProgram, pkt: &[u8], wire_len: u32) -> u32 {
        let a = p.run(pkt, wire_len);
        assert_eq!(a, p.run_interpreted(pkt, wire_len), "libpcap and the interpreter disagree");
        a
    }

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn rejects_bad_programs() {
        assert!(CbpfProgram::new(vec![]).is_err());
        // Falls off the end.
        assert!(CbpfProgram::new(vec![ins(BPF_LD | BPF_IMM, 0, 0, 1)]).is_err());
        // Jump past the end.
        assert!(CbpfProgram::new(vec![ins(BPF_JMP | BPF_JEQ, 5, 0, 1), ins(BPF_RET, 0, 0, 0)]).is_err());
        // Scratch index 16.
        assert!(CbpfProgram::new(vec![ins(BPF_ST, 0, 0, 16), ins(BPF_RET, 0, 0, 0)]).is_err());
        // Division by constant zero.
        assert!(CbpfProgram::new(vec![ins(BPF_ALU | BPF_DIV, 0, 0, 0), ins(BPF_RET, 0, 0, 0)]).is_err());
        // Shifts of 32 or more, NEG with X, JA with X, stray high bits: libpcap's matcher would abort or misbehave.
        assert!(CbpfProgram::new(vec![ins(BPF_ALU | BPF_LSH, 0, 0, 32), ins(BPF_RET, 0, 0, 0)]).is_err());
        assert!(CbpfProgram::new(vec![ins(BPF_ALU | BPF_NEG | BPF_X, 0, 0, 0), ins(BPF_RET, 0, 0, 0)]).is_err());
        assert!(CbpfProgram::new(vec![ins(BPF_JMP | BPF_JA | BPF_X, 0, 0, 0), ins(BPF_RET, 0, 0, 0)]).is_err());
        assert!(CbpfProgram::new(vec![ins(0x0106, 0, 0, 0)]).is_err());
        assert!(CbpfProgram::new(vec![ins(BPF_RET | BPF_K | 0x20, 0, 0, 0)]).is_err());
        // Register-source ALU stays valid.
        assert!(CbpfProgram::new(vec![ins(BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0), ins(BPF_RET | BPF_A, 0, 0, 0)]).is_ok());
    }

    #[test]
    fn out_of_bounds_load_rejects() {
        // ldh [12]; ret #65535
        let p = CbpfProgram::new(vec![ins(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12), ins(BPF_RET, 0, 0, 65535)]).unwrap();
        assert_eq!(both(&p, &[0u8; 13], 13), 0);
        assert_eq!(both(&p, &[0u8; 14], 14), 65535);
    }

    #[test]
    fn len_is_the_wire_length() {
        // ld len; jge #100 ? accept : reject
        let p = CbpfProgram::new(vec![
            ins(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
            ins(BPF_JMP | BPF_JGE, 0, 1, 100),
            ins(BPF_RET, 0, 0, 1),
            ins(BPF_RET, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(both(&p, &[0u8; 10], 150), 1);
        assert_eq!(both(&p, &[0u8; 10], 99), 0);
    }

    #[test]
    fn kernel_view_skips_the_restored_tag_and_answers_ancillary_loads() {
        // ldh [12]; jeq #0x0800 ? next : reject; ld vlan_avail; ret a
        let p = CbpfProgram::new(vec![
            ins(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),
            ins(BPF_JMP | BPF_JEQ, 0, 2, 0x0800),
            ins(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
            ins(BPF_RET | BPF_A, 0, 0, 0),
            ins(BPF_RET, 0, 0, 0),
        ])
        .unwrap();
        p.check_userspace_ancillary().unwrap();
        // A tagged IPv4 frame as on the wire: dst, src, 8100 0064, 0800, ...
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45]);
        let tag = VlanTag { tci: 0x64, tpid: 0x8100 };
        assert_eq!(p.run_as_kernel(&tagged, 19, Some(tag)), 1, "the kernel saw IPv4 with a tag present");
        assert_eq!(both(&p, &tagged, 19), 0, "on the wire bytes 12..14 are the TPID");
        let plain = [&tagged[..12], &tagged[16..]].concat();
        assert_eq!(p.run_as_kernel(&plain, 15, None), 0, "untagged: no tag present");
        // `len` excludes the restored tag.
        let len =
            CbpfProgram::new(vec![ins(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0), ins(BPF_RET | BPF_A, 0, 0, 0)]).unwrap();
        assert_eq!(len.run_as_kernel(&tagged, 19, Some(tag)), 15);
        // Kernel-only data is refused for userspace.
        let pkttype =
            CbpfProgram::new(vec![ins(BPF_LD | BPF_B | BPF_ABS, 0, 0, SKF_AD_OFF + 4), ins(BPF_RET | BPF_A, 0, 0, 0)])
                .unwrap();
        assert!(pkttype.check_userspace_ancillary().is_err());
    }

    #[test]
    fn runtime_division_by_zero_rejects() {
        let p = CbpfProgram::new(vec![
            ins(BPF_LD | BPF_IMM, 0, 0, 10),
            ins(BPF_ALU | BPF_DIV | BPF_X, 0, 0, 0),
            ins(BPF_RET | BPF_A, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(both(&p, &[], 0), 0);
    }
}
