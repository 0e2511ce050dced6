//! Example ringwire filter plugin: keep DNS messages (UDP port 53) whose first
//! question name is one of the configured domains or under one of them.
//!
//! Config: a comma-separated list of domains, e.g. `example.com,test.org`.
//! Matching is case-insensitive and by whole labels (`notexample.com` is not
//! under `example.com`). Anything that is not a DNS message with a readable
//! question is dropped.
//!
//! ```toml
//! [[consumers]]
//! name = "dns"
//! kind = "pcap"
//! path = "/tmp/dns.pcap"
//! filter = "plugin:target/release/librw_plugin_dns_qname.so:example.com,test.org"
//! ```

use ringwire_filter_sdk::{export_filter, FilterPlugin, Headers, Packet, Verdict};

/// The plugin: the domains, lower-case, each with a leading dot for suffix matching.
pub struct DnsQname {
    domains: Vec<String>,
    name: Vec<u8>,
}

/// Read the first question name of a DNS message into `out` (lower-case,
/// dot-separated); `None` if it is malformed or compressed.
fn question_name(msg: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let qdcount = u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]);
    if qdcount == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*msg.get(at)?);
        if len == 0 {
            return Some(());
        }
        if len > 63 || out.len() + len > 253 {
            return None; // a compression pointer or an overlong name
        }
        if !out.is_empty() {
            out.push(b'.');
        }
        out.extend(msg.get(at + 1..at + 1 + len)?.iter().map(u8::to_ascii_lowercase));
        at += 1 + len;
    }
}

impl FilterPlugin for DnsQname {
    const NAME: &'static str = "dns-qname";

    fn new(config: &str) -> Result<Self, String> {
        let domains: Vec<String> = config
            .split(',')
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if domains.is_empty() {
            return Err("give at least one domain, e.g. `example.com,test.org`".into());
        }
        if let Some(bad) =
            domains.iter().find(|d| !d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(format!("`{bad}` is not a domain name"));
        }
        Ok(Self { domains, name: Vec::with_capacity(256) })
    }

    fn verdict(&mut self, pkt: &Packet<'_>) -> Verdict {
        let h = Headers::parse(pkt.data);
        let is_dns = h.proto == Some(17) && h.ports.is_some_and(|(s, d)| s == 53 || d == 53);
        let Some(payload) = h.l4_offset.filter(|_| is_dns).and_then(|at| pkt.data.get(at + 8..)) else {
            return Verdict::Drop;
        };
        if question_name(payload, &mut self.name).is_none() {
            return Verdict::Drop;
        }
        let name = &self.name[..];
        let hit = self.domains.iter().any(|d| {
            let d = d.as_bytes();
            name == d || (name.len() > d.len() && name.ends_with(d) && name[name.len() - d.len() - 1] == b'.')
        });
        if hit {
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }
}

export_filter!(DnsQname);

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + UDP 5353 -> 53 + a DNS query for `name`.
    pub(crate) fn query(name: &str) -> Vec<u8> {
        let mut dns = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            dns.push(label.len() as u8);
            dns.extend_from_slice(label.as_bytes());
        }
        dns.extend_from_slice(&[0, 0, 1, 0, 1]);
        let udp_len = 8 + dns.len();
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, (20 + udp_len) as u8, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 53]);
        f.extend_from_slice(&[0x14, 0xe9, 0x00, 0x35, 0, udp_len as u8, 0, 0]);
        f.extend_from_slice(&dns);
        f
    }

    fn keep(p: &mut DnsQname, name: &str) -> bool {
        let f = query(name);
        p.verdict(&Packet { data: &f, wire_len: f.len() as u32, ts_ns: 0 }) == Verdict::Pass
    }

    #[test]
    fn matches_whole_labels_case_insensitively() {
        let mut p = DnsQname::new("example.com, test.org.").unwrap();
        assert!(keep(&mut p, "example.com"));
        assert!(keep(&mut p, "www.Example.COM"));
        assert!(keep(&mut p, "a.b.test.org"));
        assert!(!keep(&mut p, "notexample.com"));
        assert!(!keep(&mut p, "example.org"));
    }

    #[test]
    fn drops_what_is_not_a_readable_query_and_never_panics() {
        let mut p = DnsQname::new("example.com").unwrap();
        let f = query("www.example.com");
        for n in 0..f.len() {
            let _ = p.verdict(&Packet { data: &f[..n], wire_len: f.len() as u32, ts_ns: 0 });
        }
        assert!(DnsQname::new(" , ").is_err());
        assert!(DnsQname::new("bad_domain!").is_err());
    }
}
