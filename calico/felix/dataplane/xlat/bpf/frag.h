/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fragments, for xlat.c (included after its header helpers): an IPv4 fragment becomes an
 * IPv6 packet with a Fragment header and back (RFC 7915 4.1 and 5.1.1). Identification: the
 * IPv4 ID in the low 16 bits of the IPv6 one, and back. Only the first fragment carries the
 * TCP/UDP header, whose checksum (over the whole datagram) gets the usual pseudo-header
 * adjustment. ICMP fragments are dropped: the ICMPv6 checksum's pseudo-header needs the whole
 * datagram's length, which no single fragment knows.
 */
#ifndef XLAT_FRAG_H
#define XLAT_FRAG_H

#define NH_FRAG 44

struct frag6 {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3 | more-fragments */
	__be32 id;
};

static __always_inline int is_fragment(const struct iphdr *ip)
{
	return bpf_ntohs(ip->frag_off) & (IP_MF | IP_OFFMASK);
}

/* The first fragment's transport checksum, for the new pseudo-header. */
static __always_inline int frag_l4_csum(struct __sk_buff *skb, __u32 l4, __u8 proto,
					__s64 diff)
{
	if (proto == IPPROTO_TCP)
		return bpf_l4_csum_replace(skb, l4 + 16, 0, diff, BPF_F_PSEUDO_HDR) ?
		       TC_ACT_SHOT : TC_ACT_OK;
	return bpf_l4_csum_replace(skb, l4 + 6, 0, diff, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) ?
	       TC_ACT_SHOT : TC_ACT_OK;
}

static __always_inline int frag_4_to_6(struct __sk_buff *skb, const struct iphdr *ip4,
				       struct ipv6hdr *ip6)
{
	__u16 frag = bpf_ntohs(ip4->frag_off), off = frag & IP_OFFMASK;
	struct frag6 fh = {.nexthdr = ip4->protocol,
			   .frag_off = bpf_htons((off << 3) | !!(frag & IP_MF)),
			   .id = bpf_htonl(bpf_ntohs(ip4->id))};
	__s64 diff = pseudo_diff_46(ip4, ip6);
	__u16 udp_csum = 0;

	if (ip4->protocol == IPPROTO_ICMP)
		return TC_ACT_SHOT;
	if (off == 0 && ip4->protocol == IPPROTO_UDP &&
	    (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN + 6, &udp_csum, 2) || !udp_csum))
		return TC_ACT_SHOT;
	ip6->nexthdr = NH_FRAG;
	ip6->payload_len = bpf_htons(bpf_ntohs(ip4->tot_len) - IP4_LEN + sizeof(fh));
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0) ||
	    bpf_skb_adjust_room(skb, sizeof(fh), BPF_ADJ_ROOM_NET, 0))
		return TC_ACT_SHOT;
	if (set_eth_proto(skb, ETH_P_IPV6) ||
	    bpf_skb_store_bytes(skb, ETH_LEN, ip6, IP6_LEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_LEN + IP6_LEN, &fh, sizeof(fh), 0))
		return TC_ACT_SHOT;
	if (off)
		return TC_ACT_OK;
	return frag_l4_csum(skb, ETH_LEN + IP6_LEN + sizeof(fh), ip4->protocol, diff);
}

/* An IPv6 fragment for the endpoint (addresses already checked by the caller). */
static __always_inline int frag_6_to_4(struct __sk_buff *skb, const struct ipv6hdr *ip6)
{
	struct frag6 fh;
	struct iphdr ip4 = {};
	__u16 off, more;

	if (bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, &fh, sizeof(fh)))
		return TC_ACT_SHOT;
	if (fh.nexthdr != IPPROTO_TCP && fh.nexthdr != IPPROTO_UDP)
		return TC_ACT_SHOT;
	off = bpf_ntohs(fh.frag_off) >> 3;
	more = bpf_ntohs(fh.frag_off) & 1;
	ip6_to_ip4(ip6, &ip4, ip6->saddr.s6_addr32[3], ip6->daddr.s6_addr32[3]);
	ip4.protocol = fh.nexthdr;
	ip4.id = bpf_htons(bpf_ntohl(fh.id) & 0xffff);
	ip4.frag_off = bpf_htons(off | (more ? IP_MF : 0));
	ip4.tot_len = bpf_htons(bpf_ntohs(ip6->payload_len) - sizeof(fh) + IP4_LEN);
	ip4.check = ip4_csum(&ip4);
	if (bpf_skb_adjust_room(skb, -(__s32)sizeof(fh), BPF_ADJ_ROOM_NET, 0) ||
	    bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return TC_ACT_SHOT;
	if (set_eth_proto(skb, ETH_P_IP) || bpf_skb_store_bytes(skb, ETH_LEN, &ip4, IP4_LEN, 0))
		return TC_ACT_SHOT;
	if (off)
		return TC_ACT_OK;
	return frag_l4_csum(skb, ETH_LEN + IP4_LEN, fh.nexthdr, pseudo_diff_64(ip6, &ip4));
}

/* The packet embedded in an ICMPv6 error is a fragment (`in->l4` holds its Fragment header):
 * its IPv4 form gets the fragment fields, and `in->l4` the 8 bytes after the Fragment
 * header. Returns the fragment offset, or -1 to drop. Defined for error_6_to_4. */
static __always_inline int inner_frag_6_to_4(struct __sk_buff *skb, struct err6 *in,
					     struct iphdr *ip4)
{
	struct frag6 fh;
	__u16 off;

	__builtin_memcpy(&fh, in->l4, sizeof(fh));
	if (fh.nexthdr != IPPROTO_TCP && fh.nexthdr != IPPROTO_UDP)
		return -1;
	if (bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN + ICMP_LEN + IP6_LEN + sizeof(fh), in->l4,
			       L4_KEEP))
		return -1;
	off = bpf_ntohs(fh.frag_off) >> 3;
	ip4->protocol = fh.nexthdr;
	ip4->id = bpf_htons(bpf_ntohl(fh.id) & 0xffff);
	ip4->frag_off = bpf_htons(off | ((bpf_ntohs(fh.frag_off) & 1) ? IP_MF : 0));
	ip4->tot_len = bpf_htons(bpf_ntohs(in->ip.payload_len) - sizeof(fh) + IP4_LEN);
	ip4->check = ip4_csum(ip4);
	return off;
}

#endif
