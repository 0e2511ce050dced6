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
/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A validated classic BPF program.
#[derive(Debug, Clone)]
pub struct CbpfProgram {
    insns: Vec<Insn>,
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
                }
                BPF_JMP => {
                    let op = i.code & 0xf0;
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
                    if !matches!(i.code & 0x18, BPF_K | BPF_A) {
                        return bad("unknown return");
                    }
                }
                BPF_MISC => {
                    if !matches!(i.code & 0xf8, BPF_TAX | BPF_TXA) {
                        return bad("unknown misc operation");
                    }
                }
                _ => unreachable!("the class is three bits"),
            }
        }
        if insns[n - 1].code & 0x07 != BPF_RET {
            return Err("the last instruction is not a return".into());
        }
        Ok(Self { insns })
    }

    /// The instructions, in the layout `SO_ATTACH_FILTER` takes.
    #[must_use]
    pub fn instructions(&self) -> &[Insn] {
        &self.insns
    }

    /// Run the program over a frame: the return value is the number of bytes
    /// to keep, 0 meaning reject.
    #[must_use]
    pub fn run(&self, pkt: &[u8], wire_len: u32) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0usize;
        loop {
            // Validation guarantees every jump lands inside the program and
            // the last instruction returns, so `pc` stays in bounds.
            let i = self.insns[pc];
            pc += 1;
            match i.code {
                c if c == BPF_RET | BPF_K => return i.k,
                c if c == BPF_RET | BPF_A => return a,
                c if c == BPF_LD | BPF_W | BPF_ABS => match load(pkt, i.k as usize, 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == BPF_LD | BPF_H | BPF_ABS => match load(pkt, i.k as usize, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == BPF_LD | BPF_B | BPF_ABS => match load(pkt, i.k as usize, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c & 0xe7 == BPF_LD | BPF_IND => {
                    let Some(off) = x.checked_add(i.k) else { return 0 };
                    let size = match c & 0x18 {
                        BPF_W => 4,
                        BPF_H => 2,
                        _ => 1,
                    };
                    match load(pkt, off as usize, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                c if c == BPF_LD | BPF_W | BPF_LEN => a = wire_len,
                c if c == BPF_LDX | BPF_W | BPF_LEN => x = wire_len,
                c if c == BPF_LD | BPF_IMM => a = i.k,
                c if c == BPF_LDX | BPF_IMM => x = i.k,
                c if c == BPF_LD | BPF_MEM => a = mem[i.k as usize],
                c if c == BPF_LDX | BPF_MEM => x = mem[i.k as usize],
                c if c == BPF_LDX | BPF_B | BPF_MSH => match load(pkt, i.k as usize, 1) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                },
                c if c == BPF_ST => mem[i.k as usize] = a,
                c if c == BPF_STX => mem[i.k as usize] = x,
                c if c & 0x07 == BPF_ALU => {
                    let src = if c & BPF_X == BPF_X { x } else { i.k };
                    a = match c & 0xf0 {
                        BPF_ADD => a.wrapping_add(src),
                        BPF_SUB => a.wrapping_sub(src),
                        BPF_MUL => a.wrapping_mul(src),
                        BPF_DIV => match a.checked_div(src) {
                            Some(v) => v,
                            None => return 0,
                        },
                        BPF_MOD => match a.checked_rem(src) {
                            Some(v) => v,
                            None => return 0,
                        },
                        BPF_OR => a | src,
                        BPF_AND => a & src,
                        BPF_XOR => a ^ src,
                        BPF_LSH => a.checked_shl(src).unwrap_or(0),
                        BPF_RSH => a.checked_shr(src).unwrap_or(0),
                        _ => a.wrapping_neg(), // BPF_NEG, the only one left after validation
                    };
                }
                c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
                c if c & 0x07 == BPF_JMP => {
                    let src = if c & BPF_X == BPF_X { x } else { i.k };
                    let taken = match c & 0xf0 {
                        BPF_JEQ => a == src,
                        BPF_JGT => a > src,
                        BPF_JGE => a >= src,
                        _ => a & src != 0, // BPF_JSET
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == BPF_MISC | BPF_TAX => x = a,
                _ => a = x, // BPF_MISC | BPF_TXA, the only opcode left after validation
            }
        }
    }
}

/// Big-endian load of `size` bytes at `off`, `None` past the captured bytes.
#[inline]
fn load(pkt: &[u8], off: usize, size: usize) -> Option<u32> {
    let bytes = pkt.get(off..off.checked_add(size)?)?;
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn out_of_bounds_load_rejects() {
        // ldh [12]; ret #65535
        let p = CbpfProgram::new(vec![ins(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12), ins(BPF_RET, 0, 0, 65535)]).unwrap();
        assert_eq!(p.run(&[0u8; 13], 13), 0);
        assert_eq!(p.run(&[0u8; 14], 14), 65535);
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
        assert_eq!(p.run(&[0u8; 10], 150), 1);
        assert_eq!(p.run(&[0u8; 10], 99), 0);
    }

    #[test]
    fn runtime_division_by_zero_rejects() {
        let p = CbpfProgram::new(vec![
            ins(BPF_LD | BPF_IMM, 0, 0, 10),
            ins(BPF_ALU | BPF_DIV | BPF_X, 0, 0, 0),
            ins(BPF_RET | BPF_A, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(p.run(&[], 0), 0);
    }
}
