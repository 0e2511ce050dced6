//! pcap-filter expressions (tcpdump's grammar), compiled by libpcap.
//!
//! The grammar is libpcap's; this module only asks libpcap to compile and
//! takes the resulting classic BPF program. Two targets differ in how VLAN
//! tags are seen: in userspace the engine has put the tag back into the frame,
//! so a dead (file-like) handle's code is right; in the kernel the tag has been
//! stripped into metadata, so the program is compiled against a live handle on
//! the interface, which makes libpcap emit the kernel's VLAN ancillary loads
//! (exactly what tcpdump attaches on that interface). Only expressions that
//! test VLAN tags or the kernel's packet metadata (`inbound`, `outbound`,
//! `ifindex`) need that handle: for the others libpcap emits the same code
//! either way, so they are compiled on a dead handle, which also works for
//! an interface that is down (libpcap cannot open one).

use std::sync::Mutex;

use pcap::{Capture, Linktype};

use crate::{CbpfProgram, Filter, FilterError, Insn, Origin, Packet, Verdict};

/// libpcap's compiler keeps global state in older releases; serialize it.
static COMPILE_LOCK: Mutex<()> = Mutex::new(());

/// Where a compiled expression will run.
#[derive(Debug, Clone, Copy)]
pub enum CompileTarget<'a> {
    /// In userspace over frames as they were on the wire (tags in place).
    Userspace,
    /// In the kernel as a socket filter on this interface.
    Kernel {
        /// The interface the socket is bound to.
        iface: &'a str,
    },
}

/// Compile `expression` with libpcap (optimizer on, like tcpdump).
///
/// # Errors
/// [`FilterError::Compile`] with libpcap's message when it does not compile.
pub fn compile_expression(expression: &str, target: CompileTarget<'_>) -> Result<CbpfProgram, FilterError> {
    let compile_err = |message: String| FilterError::Compile { expression: expression.to_owned(), message };
    let text = {
        let _guard = COMPILE_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let program = match target {
            CompileTarget::Kernel { iface } if needs_live_handle(expression) => Capture::from_device(iface)
                .and_then(|c| c.snaplen(65535).buffer_size(1 << 16).immediate_mode(true).open())
                .map_err(|e| {
                    compile_err(format!(
                        "cannot open {iface} to compile for it (libpcap compiles VLAN, inbound, outbound and \
                         ifindex tests against the interface, which must exist and be up): {e}"
                    ))
                })?
                .compile(expression, true),
            CompileTarget::Userspace | CompileTarget::Kernel { .. } => {
                Capture::dead(Linktype::ETHERNET).map_err(|e| compile_err(e.to_string()))?.compile(expression, true)
            }
        }
        .map_err(|e| compile_err(e.to_string()))?;
        // `BpfInstruction` displays as "code jt jf k"; reading that keeps this
        // crate free of unsafe layout casts.
        program.get_instructions().iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let insns = text.iter().map(|line| parse_insn(line)).collect::<Option<Vec<_>>>().ok_or_else(|| {
        FilterError::InvalidProgram {
            expression: expression.to_owned(),
            reason: "libpcap returned an instruction that does not parse".into(),
        }
    })?;
    CbpfProgram::new(insns).map_err(|reason| FilterError::InvalidProgram { expression: expression.to_owned(), reason })
}

/// Whether libpcap compiles `expression` differently against a live Linux
/// handle than against a dead one: it tests VLAN tags (`vlan`: ancillary
/// loads of the tag the kernel stripped) or packet metadata only the
/// kernel has (`inbound`, `outbound`, `ifindex`). Any word that could be
/// one of those keywords counts (a host named `vlan` too): a needless live
/// compile costs only a handle opened for a moment.
fn needs_live_handle(expression: &str) -> bool {
    expression
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| ["vlan", "inbound", "outbound", "ifindex"].iter().any(|k| w.eq_ignore_ascii_case(k)))
}

fn parse_insn(line: &str) -> Option<Insn> {
    let mut it = line.split_ascii_whitespace();
    let insn = Insn {
        code: it.next()?.parse().ok()?,
        jt: it.next()?.parse().ok()?,
        jf: it.next()?.parse().ok()?,
        k: it.next()?.parse().ok()?,
    };
    it.next().is_none().then_some(insn)
}

/// A pcap-filter expression evaluated in userspace.
///
/// It holds the program compiled for files and, when frames will also come
/// from a live interface, the program libpcap compiles for a live Linux
/// socket, run over such frames the way the kernel would (see [`Origin`]).
#[derive(Debug, Clone)]
pub struct PcapFilter {
    expression: String,
    program: CbpfProgram,
    live: Option<CbpfProgram>,
}

impl PcapFilter {
    /// Compile `expression` for frames from files.
    ///
    /// # Errors
    /// libpcap's message when the expression does not compile.
    pub fn new(expression: &str) -> Result<Self, FilterError> {
        Ok(Self {
            expression: expression.to_owned(),
            program: compile_expression(expression, CompileTarget::Userspace)?,
            live: None,
        })
    }

    /// Compile `expression` for frames from files and from live interfaces
    /// (compiled against a live handle on `iface`, as tcpdump does).
    ///
    /// # Errors
    /// libpcap's message, or an expression that needs kernel-only data.
    pub fn with_live(expression: &str, iface: &str) -> Result<Self, FilterError> {
        let live = compile_expression(expression, CompileTarget::Kernel { iface })?;
        live.check_userspace_ancillary()
            .map_err(|reason| FilterError::InvalidProgram { expression: expression.to_owned(), reason })?;
        Ok(Self { live: Some(live), ..Self::new(expression)? })
    }

    /// The compiled program.
    #[must_use]
    pub fn program(&self) -> &CbpfProgram {
        &self.program
    }
}

impl Filter for PcapFilter {
    fn name(&self) -> &str {
        &self.expression
    }

    #[inline]
    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        let keep = match (pkt.origin, &self.live) {
            (Origin::Kernel { stripped }, Some(live)) => live.run_as_kernel(pkt.data, pkt.wire_len, stripped),
            _ => self.program.run(pkt.data, pkt.wire_len),
        };
        if keep == 0 {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn udp4(dport: u16, vlan: Option<u16>) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut out = Vec::new();
        match vlan {
            Some(id) => b
                .single_vlan(id.try_into().unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1234, dport)
                .write(&mut out, &[0u8; 20]),
            None => b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1234, dport).write(&mut out, &[0u8; 20]),
        }
        .unwrap();
        out
    }

    #[test]
    fn compiles_and_matches_like_libpcap() {
        let exprs = ["udp", "udp dst port 53", "vlan 7 and udp", "tcp", "ip host 10.0.0.2", "greater 60"];
        let frames = [udp4(53, None), udp4(80, None), udp4(53, Some(7)), udp4(53, Some(8))];
        let dead = Capture::dead(Linktype::ETHERNET).unwrap();
        for e in exprs {
            let mut f = PcapFilter::new(e).unwrap();
            let reference = dead.compile(e, true).unwrap();
            for fr in &frames {
                let ours = f.verdict(&Packet::whole(fr)) == Verdict::Pass;
                assert_eq!(ours, reference.filter(fr), "expression {e:?}");
                let interpreted = f.program().run_interpreted(fr, fr.len() as u32) != 0;
                assert_eq!(interpreted, reference.filter(fr), "interpreter, expression {e:?}");
            }
        }
    }

    /// Expressions without VLAN or kernel-metadata tests compile for the
    /// kernel without opening the interface (so for one that is down or
    /// not there yet), to the same code as for userspace.
    #[test]
    fn only_vlan_and_metadata_tests_need_the_interface() {
        for e in ["udp", "tcp port 80 or icmp", "ether host 02:00:00:00:00:01", "mpls", "ip[8] > 64"] {
            assert!(!needs_live_handle(e), "{e}");
            let kernel = compile_expression(e, CompileTarget::Kernel { iface: "rw-no-such-if" }).unwrap();
            let user = compile_expression(e, CompileTarget::Userspace).unwrap();
            assert_eq!(kernel.instructions(), user.instructions(), "{e}");
        }
        for e in ["vlan", "udp and vlan 10", "(VLAN)", "inbound", "outbound and udp", "ifindex 2"] {
            assert!(needs_live_handle(e), "{e}");
            let err = compile_expression(e, CompileTarget::Kernel { iface: "rw-no-such-if" }).unwrap_err();
            assert!(err.to_string().contains("rw-no-such-if"), "{e}: {err}");
        }
    }

    #[test]
    fn bad_expression_carries_libpcap_message() {
        let err = PcapFilter::new("udp and portt 53").unwrap_err().to_string();
        assert!(err.contains("udp and portt 53"), "{err}");
        assert!(err.contains("syntax error") || err.contains("portt"), "{err}");
    }
}
