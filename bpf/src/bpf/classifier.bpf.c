// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The soft-patch-panel classifier: a socket filter that looks up
 * (VLAN id or untagged, destination MAC) in a hash map and passes or drops
 * the frame by the entry's action, or by the default action when there is
 * no entry. Entries change at run time from userspace and apply to the next
 * frame; each entry's hits are counted per CPU. */
#include "ringwire.h"

/* VLAN value of the key for an untagged frame (VLAN ids are 12 bits). */
#define UNTAGGED 0x1000

struct class_key {
	__u32 vlan;
	__u8 mac[6];
	__u8 pad[2];
};

struct class_value {
	__u32 action; /* 1 pass, 0 drop */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct class_key);
	__type(value, struct class_value);
} rw_classes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct class_key);
	__type(value, __u64);
} rw_hits SEC(".maps");

/* [0]: the default action (1 pass, 0 drop). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rw_default SEC(".maps");

static __always_inline int classify_frame(struct __sk_buff *skb)
{
	struct class_key key = {};
	struct class_value *entry;
	__u32 zero = 0;
	__u32 *dflt;
	__u16 proto, tci;

	if (bpf_skb_load_bytes_relative(skb, 0, key.mac, 6, BPF_HDR_START_MAC) < 0)
		goto by_default;
	if (skb->vlan_present) {
		/* The kernel took the tag out of the frame (the usual case). */
		key.vlan = skb->vlan_tci & 0x0fff;
	} else if (bpf_skb_load_bytes(skb, 12, &proto, 2) == 0 &&
		   (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) &&
		   bpf_skb_load_bytes(skb, 14, &tci, 2) == 0) {
		key.vlan = bpf_ntohs(tci) & 0x0fff;
	} else {
		key.vlan = UNTAGGED;
	}
	entry = bpf_map_lookup_elem(&rw_classes, &key);
	if (entry) {
		__u64 *hits = bpf_map_lookup_elem(&rw_hits, &key);
		if (hits)
			*hits += 1;
		return entry->action;
	}
by_default:
	dflt = bpf_map_lookup_elem(&rw_default, &zero);
	return dflt ? *dflt : 1;
}

SEC("socket")
int classify(struct __sk_buff *skb)
{
	return ringwire_verdict(classify_frame(skb));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
