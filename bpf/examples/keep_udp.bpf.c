// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* An example user filter: keep UDP (IPv4 or IPv6, tagged or not) and drop
 * everything else in the kernel, before it is copied into the ring.
 *
 * Load it on a port:   filter = "ebpf:keep_udp.bpf.o"   (or "ebpf:keep_udp.bpf.o:keep_udp")
 * It counts frames seen and passed in the `ringwire_stats` map from
 * ringwire.h, which the engine reads and shows beside the ring's counters. */
#include "ringwire.h"

static __always_inline int is_udp(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u32 off = 0;
	__u8 l4;

	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) { /* a tag left in the frame */
		__u16 inner;
		if (bpf_skb_load_bytes(skb, RINGWIRE_L3 + 2, &inner, 2) < 0)
			return 0;
		proto = bpf_ntohs(inner);
		off = 4;
	}
	if (proto == ETH_P_IP)
		return bpf_skb_load_bytes(skb, RINGWIRE_L3 + off + 9, &l4, 1) == 0 && l4 == 17;
	if (proto == ETH_P_IPV6)
		return bpf_skb_load_bytes(skb, RINGWIRE_L3 + off + 6, &l4, 1) == 0 && l4 == 17;
	return 0;
}

SEC("socket")
int keep_udp(struct __sk_buff *skb)
{
	return ringwire_verdict(is_udp(skb));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
