// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* PACKET_FANOUT_EBPF steering with a symmetric flow hash: the endpoints of
 * the IPv4/IPv6 5-tuple are put in a fixed order before hashing, so a flow
 * and its reverse land on the same fanout member (worker). Frames that are
 * not IP steer by the MAC pair, ordered the same way. The kernel has taken a
 * VLAN tag out already; tags left in the frame (QinQ) are skipped, so tagged
 * frames hash on their inner headers. The kernel takes the result modulo the
 * number of members. The frame is read from its network header (where a
 * fanout program sees it) with bpf_skb_load_bytes, which follows page
 * fragments; only the MAC header, always linear, is read relative to it. */
#include "ringwire.h"

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 16);
}

/* Hash two endpoints (address words a/b, ports pa/pb) in a fixed order. */
static __always_inline __u32 hash_pair(__u32 h, const __u32 *a, const __u32 *b, int words, __u16 pa, __u16 pb)
{
	int swap = 0, decided = 0;
	for (int i = 0; i < 4; i++) {
		if (i < words && !decided && a[i] != b[i]) {
			swap = a[i] > b[i];
			decided = 1;
		}
	}
	if (!decided)
		swap = pa > pb;
	for (int i = 0; i < 4; i++) {
		if (i < words)
			h = mix(h, swap ? b[i] : a[i]);
	}
	for (int i = 0; i < 4; i++) {
		if (i < words)
			h = mix(h, swap ? a[i] : b[i]);
	}
	return mix(h, swap ? ((__u32)pb << 16 | pa) : ((__u32)pa << 16 | pb));
}

SEC("socket")
int steer(struct __sk_buff *skb)
{
	__u32 off = 0;
	__u16 proto = bpf_ntohs(skb->protocol);
	__u16 ports[2] = {};

	/* Up to two tags still in the frame: 2 bytes TCI, 2 bytes inner type. */
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		__u16 inner;
		if (bpf_skb_load_bytes(skb, off + 2, &inner, 2) < 0)
			return 0;
		proto = bpf_ntohs(inner);
		off += 4;
	}
	if (proto == ETH_P_IP) {
		__u8 vihl, l4;
		__u16 frag;
		__u32 addr[2];
		if (bpf_skb_load_bytes(skb, off, &vihl, 1) < 0 ||
		    bpf_skb_load_bytes(skb, off + 6, &frag, 2) < 0 ||
		    bpf_skb_load_bytes(skb, off + 9, &l4, 1) < 0 ||
		    bpf_skb_load_bytes(skb, off + 12, addr, 8) < 0)
			return 0;
		/* Ports only in unfragmented TCP/UDP: fragments of a datagram stay together. */
		if ((l4 == IPPROTO_TCP || l4 == IPPROTO_UDP) && !(bpf_ntohs(frag) & 0x3fff))
			bpf_skb_load_bytes(skb, off + (vihl & 0x0f) * 4, ports, 4);
		return hash_pair(mix(0x4b1d, l4), &addr[0], &addr[1], 1, ports[0], ports[1]);
	}
	if (proto == ETH_P_IPV6) {
		__u8 l4;
		__u32 addr[8];
		if (bpf_skb_load_bytes(skb, off + 6, &l4, 1) < 0 ||
		    bpf_skb_load_bytes(skb, off + 8, addr, 32) < 0)
			return 0;
		if (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP)
			bpf_skb_load_bytes(skb, off + 40, ports, 4);
		return hash_pair(mix(0x6b1d, l4), &addr[0], &addr[4], 4, ports[0], ports[1]);
	}
	/* Not IP: the MAC pair (destination, source), as 3 half-words each. */
	__u16 mac[6];
	if (bpf_skb_load_bytes_relative(skb, 0, mac, 12, BPF_HDR_START_MAC) < 0)
		return 0;
	__u32 a[2] = {(__u32)mac[0] << 16 | mac[1], mac[2]};
	__u32 b[2] = {(__u32)mac[3] << 16 | mac[4], mac[5]};
	return hash_pair(mix(0x0e7e, proto), a, b, 2, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
