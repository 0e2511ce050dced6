/* Shared by ringwire's eBPF programs and the example user filters. */
#ifndef RINGWIRE_BPF_H
#define RINGWIRE_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Per-CPU frame counters every ringwire filter keeps and the engine reads:
 * index 0 = frames seen, 1 = frames passed. A user filter that defines a map
 * with this name and layout gets its counters shown beside the ring's. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ringwire_stats SEC(".maps");

static __always_inline void ringwire_count(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&ringwire_stats, &index);
	if (v)
		*v += 1;
}

/* Where the network header starts for bpf_skb_load_bytes in a socket filter
 * on ringwire's packet sockets: the kernel runs the filter with the frame
 * from its MAC header (a VLAN tag it took out is not in it). Read the frame
 * with bpf_skb_load_bytes, which follows page fragments: frames sent from a
 * TX ring arrive with everything after the MAC header in fragments, where
 * bpf_skb_load_bytes_relative(..., BPF_HDR_START_NET) fails. (A
 * PACKET_FANOUT_EBPF program instead sees the frame from its network header.) */
#define RINGWIRE_L3 ETH_HLEN

/* A socket filter's verdicts: keep the whole frame, or drop it. */
#define RINGWIRE_PASS 0xffffffff
#define RINGWIRE_DROP 0

static __always_inline int ringwire_verdict(int pass)
{
	ringwire_count(0);
	if (pass) {
		ringwire_count(1);
		return RINGWIRE_PASS;
	}
	return RINGWIRE_DROP;
}

#endif
