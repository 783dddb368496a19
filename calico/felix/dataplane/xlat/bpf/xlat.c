// SPDX-License-Identifier: GPL-2.0
/*
 * Stateless IPv4 <-> IPv6 translation (RFC 7915) at a workload's interface, for address spaces.
 *
 * Attached with tc (clsact, cls_bpf, direct-action) on the HOST side of a workload's veth:
 *   - xlat_ingress (workload -> host): every IPv4 packet from the workload becomes IPv6,
 *     source P::src, destination P::dst, where P is the endpoint's /96 translation prefix.
 *     ARP passes untouched (proxy ARP for 169.254.1.1 keeps working), and so does a DHCP
 *     request (IPv4 UDP from port 68 to port 67 of 255.255.255.255, unfragmented): the
 *     host's DHCP server answers in the workload's own IPv4 (OpenStack). A broadcast is
 *     never forwarded, so it reaches no other space; a unicast renewal drops (the client
 *     rebinds by broadcast). Anything else drops.
 *   - xlat_egress (host -> workload): IPv6 whose destination is P::A (the endpoint's own
 *     address) and whose source is inside P becomes IPv4. An ICMPv6 error from outside P (a
 *     router's Packet Too Big, say) about a packet the workload sent is translated with IPv4
 *     source 169.254.1.1. ARP passes, and so does the host's DHCP reply (IPv4 UDP from port
 *     67 to port 68 of the workload's IPv4 address or 255.255.255.255, unfragmented);
 *     everything else drops (nothing crosses spaces).
 *
 * Per-endpoint state is one entry of the hash map `xlat_endpoints`, keyed by the interface's
 * ifindex (both hooks see the host-side veth's ifindex). The loader pins programs and map, so
 * a restarted Felix adopts them. No entry for the interface: the packet drops (fail closed).
 *
 * Choices (see docs/xlat-datapath.md):
 *   - Header: TOS <-> traffic class, TTL <-> hop limit copied (the host's forwarding
 *     decrements it once, as for any routed hop), flow label 0, IPv4 ID 0 with DF set (unfragmented).
 *   - Fragments of TCP and UDP are translated with a Fragment header and back (frag.h);
 *     ICMP fragments, other IPv6 extension headers and IPv4 packets with options drop.
 *   - TCP/UDP checksums are adjusted incrementally for the pseudo-header change (works for
 *     CHECKSUM_PARTIAL/GSO skbs too); an IPv4 UDP datagram with a zero checksum drops (RFC
 *     7915 4.5 allows dropping instead of computing).
 *   - ICMP <-> ICMPv6: echo, destination unreachable (incl. port unreachable), frag-needed
 *     <-> Packet Too Big (MTU -/+ 20), time exceeded, parameter problem "next header"
 *     <-> protocol unreachable. Errors are rebuilt: the translated message carries the
 *     translated embedded IP header plus the first 8 bytes of the embedded transport header
 *     (what RFC 792 requires and what every stack reads), with the checksum computed afresh.
 *   - Other protocols (neither TCP, UDP nor ICMP) drop.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "icmp_map.h"

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define ICMP_LEN 8
#define L4_KEEP 8 /* bytes of the embedded transport header kept in a translated error */
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff
#define NH_ICMP6 58
#define GATEWAY_IP4 0xa9fe0101 /* 169.254.1.1, host order */

struct endpoint {
	__u8 prefix[12]; /* the /96 translation prefix */
	__be32 ipv4;     /* the workload's IPv4 address */
	char ifname[16]; /* for the loader only: finds the entry of a vanished interface */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* ifindex */
	__type(value, struct endpoint);
} xlat_endpoints SEC(".maps");

/* An ICMP error as rebuilt: ICMP header, embedded IP header, first bytes of its payload. */
struct err4 {
	__u8 type, code;
	__u16 csum;
	__be32 rest;
	struct iphdr ip;
	__u8 l4[L4_KEEP];
};

struct err6 {
	__u8 type, code;
	__u16 csum;
	__be32 rest;
	struct ipv6hdr ip;
	__u8 l4[L4_KEEP];
};

struct pseudo6 {
	struct in6_addr src, dst;
	__be32 len;
	__be32 nexthdr;
};

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The ones' complement sum (unfolded, as bpf_csum_diff returns it) of a buffer. */
static __always_inline __s64 sum_of(void *buf, __u32 len, __u32 seed)
{
	return bpf_csum_diff(0, 0, buf, len, seed);
}

static __always_inline void make_v6_addr(struct in6_addr *a, const struct endpoint *ep,
					 __be32 v4)
{
	__builtin_memcpy(a->s6_addr, ep->prefix, 12);
	a->s6_addr32[3] = v4;
}

static __always_inline int in_prefix(const struct in6_addr *a, const struct endpoint *ep)
{
	return a->s6_addr32[0] == *(__u32 *)&ep->prefix[0] &&
	       a->s6_addr32[1] == *(__u32 *)&ep->prefix[4] &&
	       a->s6_addr32[2] == *(__u32 *)&ep->prefix[8];
}

static __always_inline __u16 ip4_csum(struct iphdr *ip)
{
	ip->check = 0;
	return ~fold(sum_of(ip, IP4_LEN, 0));
}

static __always_inline int set_eth_proto(struct __sk_buff *skb, __u16 proto)
{
	__be16 p = bpf_htons(proto);
	return bpf_skb_store_bytes(skb, 12, &p, sizeof(p), 0);
}

/* ---- the embedded transport header of an error: only its first 8 bytes travel ---- */

/* The checksum contribution of the ICMPv6 pseudo-header of `ip6`: added (going to v6) or
 * taken out (going to v4; bpf_csum_diff sums the complement of its `from` buffer). */
static __always_inline __s64 pseudo6_sum(const struct ipv6hdr *ip6, int add)
{
	struct pseudo6 ph = {.src = ip6->saddr, .dst = ip6->daddr,
			     .len = bpf_htonl(bpf_ntohs(ip6->payload_len)),
			     .nexthdr = bpf_htonl(NH_ICMP6)};

	return add ? bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0) :
		     bpf_csum_diff((__be32 *)&ph, sizeof(ph), 0, 0, 0);
}

static __always_inline __u16 csum_update(__u16 csum, __s64 diff)
{
	return ~fold((__u64)(__u32)diff + (__u16)~csum);
}

/* Adjust the kept bytes of an embedded UDP or ICMP header for the header change. `diff` is
 * the checksum difference of the pseudo-header (for ICMP: the whole ICMPv6 pseudo-header,
 * added going to v6, taken out going to v4). TCP's checksum lies beyond the 8 bytes. */
static __always_inline int inner_l4(__u8 *l4, __u8 proto, __s64 diff, int to_v6)
{
	__u16 *csum;
	__u32 old_word = 0, new_word = 0;
	__be32 unused = 0;

	if (proto == IPPROTO_UDP) {
		csum = (__u16 *)&l4[6];
		if (*csum)
			*csum = csum_update(*csum, diff);
		return 0;
	}
	if (proto != IPPROTO_ICMP && proto != NH_ICMP6)
		return 0;
	if (!(to_v6 ? l4[0] == 8 || l4[0] == 0 : l4[0] == 128 || l4[0] == 129))
		return -1; /* only echo is embedded in an error: no error about an error */
	__builtin_memcpy(&old_word, l4, 2);
	if (to_v6 ? icmp4_to_6(&l4[0], &l4[1], &unused) : icmp6_to_4(&l4[0], &l4[1], &unused))
		return -1;
	__builtin_memcpy(&new_word, l4, 2);
	csum = (__u16 *)&l4[2];
	*csum = csum_update(*csum, bpf_csum_diff(&old_word, 4, &new_word, 4, (__u32)diff));
	return 0;
}

/* ---- IPv4 -> IPv6 (xlat_ingress) ---- */

static __always_inline void ip4_to_ip6(const struct iphdr *ip4, struct ipv6hdr *ip6,
				       const struct endpoint *ep)
{
	__u8 tos = ip4->tos;

	ip6->version = 6;
	ip6->priority = tos >> 4;
	ip6->flow_lbl[0] = (tos & 0xf) << 4;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(bpf_ntohs(ip4->tot_len) - IP4_LEN);
	ip6->nexthdr = ip4->protocol == IPPROTO_ICMP ? NH_ICMP6 : ip4->protocol;
	ip6->hop_limit = ip4->ttl;
	make_v6_addr(&ip6->saddr, ep, ip4->saddr);
	make_v6_addr(&ip6->daddr, ep, ip4->daddr);
}

static __always_inline int usable_ip4(const struct iphdr *ip)
{
	if (ip->version != 4 || ip->ihl != 5)
		return 0;
	return ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP ||
	       ip->protocol == IPPROTO_ICMP;
}

static __always_inline __s64 pseudo_diff_46(const struct iphdr *ip4, const struct ipv6hdr *ip6)
{
	return bpf_csum_diff((__be32 *)&ip4->saddr, 8, (__be32 *)&ip6->saddr, 32, 0);
}

/* An ICMPv4 error from the workload: rebuilt as ICMPv6 with its embedded packet translated. */
static __always_inline int error_4_to_6(struct __sk_buff *skb, const struct endpoint *ep,
					struct ipv6hdr *ip6)
{
	struct err4 in;
	struct err6 out = {};
	struct pseudo6 ph = {};
	__s64 sum;

	if (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN, &in, sizeof(in)))
		return TC_ACT_SHOT;
	if (in.ip.version != 4 || in.ip.ihl != 5 ||
	    (bpf_ntohs(in.ip.frag_off) & (IP_MF | IP_OFFMASK)) || (in.ip.protocol != IPPROTO_TCP &&
	    in.ip.protocol != IPPROTO_UDP && in.ip.protocol != IPPROTO_ICMP))
		return TC_ACT_SHOT;
	out.type = in.type;
	out.code = in.code;
	out.rest = in.rest;
	if (icmp4_to_6(&out.type, &out.code, &out.rest))
		return TC_ACT_SHOT;
	ip4_to_ip6(&in.ip, &out.ip, ep);
	__builtin_memcpy(out.l4, in.l4, L4_KEEP);
	if (inner_l4(out.l4, in.ip.protocol, in.ip.protocol == IPPROTO_ICMP ?
		     pseudo6_sum(&out.ip, 1) : pseudo_diff_46(&in.ip, &out.ip), 1))
		return TC_ACT_SHOT;

	ip6->payload_len = bpf_htons(sizeof(out));
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_LEN + IP6_LEN + sizeof(out), 0))
		return TC_ACT_SHOT;
	ph.src = ip6->saddr;
	ph.dst = ip6->daddr;
	ph.len = bpf_htonl(sizeof(out));
	ph.nexthdr = bpf_htonl(NH_ICMP6);
	sum = sum_of(&ph, sizeof(ph), 0);
	out.csum = ~fold((__u32)sum_of(&out, sizeof(out), (__u32)sum));
	if (set_eth_proto(skb, ETH_P_IPV6) ||
	    bpf_skb_store_bytes(skb, ETH_LEN, ip6, IP6_LEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_LEN + IP6_LEN, &out, sizeof(out), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* After a plain translation: the transport checksum adjusted by `diff` (TCP, UDP), or the
 * echo's new type written and its checksum adjusted (ICMP <-> ICMPv6). */
static __always_inline int finish_l4(struct __sk_buff *skb, __u32 l4, __u8 proto,
				     const __u8 *icmp, __s64 diff)
{
	switch (proto) {
	case IPPROTO_TCP:
		return bpf_l4_csum_replace(skb, l4 + 16, 0, diff, BPF_F_PSEUDO_HDR) ?
		       TC_ACT_SHOT : TC_ACT_OK;
	case IPPROTO_UDP:
		return bpf_l4_csum_replace(skb, l4 + 6, 0, diff,
					   BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) ?
		       TC_ACT_SHOT : TC_ACT_OK;
	}
	if (bpf_skb_store_bytes(skb, l4, icmp, 1, 0))
		return TC_ACT_SHOT;
	return bpf_l4_csum_replace(skb, l4 + 2, 0, diff, 0) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* TCP, UDP or ICMP echo: the header is swapped, the transport checksum adjusted. */
static __always_inline int plain_4_to_6(struct __sk_buff *skb, struct iphdr *ip4,
					struct ipv6hdr *ip6)
{
	__u32 l4 = ETH_LEN + IP6_LEN;
	__s64 diff = pseudo_diff_46(ip4, ip6);
	__u8 icmp[2];
	__u16 udp_csum;

	if (ip4->protocol == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN + 6, &udp_csum, 2) || !udp_csum)
			return TC_ACT_SHOT;
	}
	if (ip4->protocol == IPPROTO_ICMP) {
		__u32 old_word = 0, new_word = 0;

		if (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN, icmp, 2))
			return TC_ACT_SHOT;
		__builtin_memcpy(&old_word, icmp, 2);
		icmp[0] = icmp[0] == 8 ? 128 : 129;
		__builtin_memcpy(&new_word, icmp, 2);
		diff = pseudo6_sum(ip6, 1);
		diff = bpf_csum_diff(&old_word, 4, &new_word, 4, (__u32)diff);
	}
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return TC_ACT_SHOT;
	if (set_eth_proto(skb, ETH_P_IPV6) || bpf_skb_store_bytes(skb, ETH_LEN, ip6, IP6_LEN, 0))
		return TC_ACT_SHOT;
	return finish_l4(skb, l4, ip4->protocol, icmp, diff);
}

static __always_inline void ip6_to_ip4(const struct ipv6hdr *ip6, struct iphdr *ip4,
				       __be32 saddr, __be32 daddr)
{
	ip4->version = 4;
	ip4->ihl = 5;
	ip4->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	ip4->tot_len = bpf_htons(bpf_ntohs(ip6->payload_len) + IP4_LEN);
	ip4->id = 0;
	ip4->frag_off = bpf_htons(IP_DF);
	ip4->ttl = ip6->hop_limit;
	ip4->protocol = ip6->nexthdr == NH_ICMP6 ? IPPROTO_ICMP : ip6->nexthdr;
	ip4->saddr = saddr;
	ip4->daddr = daddr;
	ip4->check = ip4_csum(ip4);
}

static __always_inline __s64 pseudo_diff_64(const struct ipv6hdr *ip6, const struct iphdr *ip4)
{
	return bpf_csum_diff((__be32 *)&ip6->saddr, 32, (__be32 *)&ip4->saddr, 8, 0);
}

#include "frag.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68

/* An unfragmented IPv4 UDP datagram from `sport` to `dport` whose destination is the
 * broadcast or `unicast` (0: none): DHCP, which passes untranslated (see the top). */
static __always_inline int is_dhcp4(struct __sk_buff *skb, __u16 sport, __u16 dport,
				    __be32 unicast)
{
	struct iphdr ip;
	__be16 ports[2];

	if (bpf_skb_load_bytes(skb, ETH_LEN, &ip, IP4_LEN) || ip.version != 4 || ip.ihl != 5 ||
	    ip.protocol != IPPROTO_UDP || (ip.frag_off & bpf_htons(IP_MF | IP_OFFMASK)))
		return 0;
	if (ip.daddr != 0xffffffff && (!unicast || ip.daddr != unicast))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN, ports, sizeof(ports)))
		return 0;
	return ports[0] == bpf_htons(sport) && ports[1] == bpf_htons(dport);
}

SEC("tc")
int xlat_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep;
	struct iphdr ip4;
	struct ipv6hdr ip6 = {};
	__u8 type;

	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	ep = bpf_map_lookup_elem(&xlat_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_SHOT;
	if (is_dhcp4(skb, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, 0))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_LEN, &ip4, IP4_LEN) || !usable_ip4(&ip4))
		return TC_ACT_SHOT;
	ip4_to_ip6(&ip4, &ip6, ep);
	if (is_fragment(&ip4))
		return frag_4_to_6(skb, &ip4, &ip6);
	if (ip4.protocol == IPPROTO_ICMP) {
		if (bpf_skb_load_bytes(skb, ETH_LEN + IP4_LEN, &type, 1))
			return TC_ACT_SHOT;
		if (is_icmp4_error(type))
			return error_4_to_6(skb, ep, &ip6);
		if (type != 8 && type != 0)
			return TC_ACT_SHOT;
	}
	return plain_4_to_6(skb, &ip4, &ip6);
}

/* ---- IPv6 -> IPv4 (xlat_egress) ---- */

static __always_inline int usable_nexthdr(__u8 nh)
{
	return nh == IPPROTO_TCP || nh == IPPROTO_UDP || nh == NH_ICMP6;
}

/* An ICMPv6 error for the workload: rebuilt as ICMPv4. `saddr` is the outer IPv4 source:
 * the sender's own address inside the space, or 169.254.1.1 for an error from outside it.
 * Only errors about a packet the workload itself sent (inside its space) are translated. */
static __always_inline int error_6_to_4(struct __sk_buff *skb, const struct endpoint *ep,
					const struct ipv6hdr *ip6, __be32 saddr)
{
	struct err6 in;
	struct err4 out = {};
	struct iphdr ip4 = {};
	int frag_off = 0;

	if (bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, &in, sizeof(in)))
		return TC_ACT_SHOT;
	if (in.ip.version != 6 || (!usable_nexthdr(in.ip.nexthdr) && in.ip.nexthdr != NH_FRAG))
		return TC_ACT_SHOT;
	if (!in_prefix(&in.ip.saddr, ep) || in.ip.saddr.s6_addr32[3] != ep->ipv4 ||
	    !in_prefix(&in.ip.daddr, ep))
		return TC_ACT_SHOT;
	out.type = in.type;
	out.code = in.code;
	out.rest = in.rest;
	if (icmp6_to_4(&out.type, &out.code, &out.rest))
		return TC_ACT_SHOT;
	ip6_to_ip4(&in.ip, &out.ip, in.ip.saddr.s6_addr32[3], in.ip.daddr.s6_addr32[3]);
	if (in.ip.nexthdr == NH_FRAG) {
		frag_off = inner_frag_6_to_4(skb, &in, &out.ip);
		if (frag_off < 0)
			return TC_ACT_SHOT;
		if (out.type == 3 && out.code == 4) /* IPv4 has no Fragment header to carry */
			out.rest = bpf_htonl(bpf_ntohl(out.rest) - sizeof(struct frag6));
	}
	__builtin_memcpy(out.l4, in.l4, L4_KEEP);
	if (frag_off == 0 && inner_l4(out.l4, out.ip.protocol == IPPROTO_ICMP ? NH_ICMP6 :
				      out.ip.protocol, out.ip.protocol == IPPROTO_ICMP ?
				      pseudo6_sum(&in.ip, 0) : pseudo_diff_64(&in.ip, &out.ip), 0))
		return TC_ACT_SHOT;
	ip6_to_ip4(ip6, &ip4, saddr, ep->ipv4);
	ip4.tot_len = bpf_htons(IP4_LEN + sizeof(out));
	ip4.check = ip4_csum(&ip4);
	out.csum = ~fold(sum_of(&out, sizeof(out), 0));
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_LEN + IP4_LEN + sizeof(out), 0))
		return TC_ACT_SHOT;
	if (set_eth_proto(skb, ETH_P_IP) ||
	    bpf_skb_store_bytes(skb, ETH_LEN, &ip4, IP4_LEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_LEN + IP4_LEN, &out, sizeof(out), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

static __always_inline int plain_6_to_4(struct __sk_buff *skb, const struct ipv6hdr *ip6,
					struct iphdr *ip4)
{
	__u32 l4 = ETH_LEN + IP4_LEN;
	__s64 diff = pseudo_diff_64(ip6, ip4);
	__u8 icmp[2];

	if (ip6->nexthdr == NH_ICMP6) {
		__u32 old_word = 0, new_word = 0;

		if (bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, icmp, 2))
			return TC_ACT_SHOT;
		__builtin_memcpy(&old_word, icmp, 2);
		icmp[0] = icmp[0] == 128 ? 8 : 0;
		__builtin_memcpy(&new_word, icmp, 2);
		diff = pseudo6_sum(ip6, 0);
		diff = bpf_csum_diff(&old_word, 4, &new_word, 4, (__u32)diff);
	}
	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return TC_ACT_SHOT;
	if (set_eth_proto(skb, ETH_P_IP) || bpf_skb_store_bytes(skb, ETH_LEN, ip4, IP4_LEN, 0))
		return TC_ACT_SHOT;
	return finish_l4(skb, l4, ip6->nexthdr, icmp, diff);
}

SEC("tc")
int xlat_egress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint *ep;
	struct ipv6hdr ip6;
	struct iphdr ip4 = {};
	__u8 type = 0;
	int inside;

	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	ep = bpf_map_lookup_elem(&xlat_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_SHOT;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return is_dhcp4(skb, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, ep->ipv4) ? TC_ACT_OK : TC_ACT_SHOT;
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, ETH_LEN, &ip6, IP6_LEN) || ip6.version != 6)
		return TC_ACT_SHOT;
	if (!in_prefix(&ip6.daddr, ep) || ip6.daddr.s6_addr32[3] != ep->ipv4)
		return TC_ACT_SHOT;
	inside = in_prefix(&ip6.saddr, ep);
	if (ip6.nexthdr == NH_FRAG)
		return inside ? frag_6_to_4(skb, &ip6) : TC_ACT_SHOT;
	if (!usable_nexthdr(ip6.nexthdr))
		return TC_ACT_SHOT;
	if (ip6.nexthdr == NH_ICMP6) {
		if (bpf_skb_load_bytes(skb, ETH_LEN + IP6_LEN, &type, 1))
			return TC_ACT_SHOT;
		if (is_icmp6_error(type))
			return error_6_to_4(skb, ep, &ip6, inside ? ip6.saddr.s6_addr32[3] :
					    bpf_htonl(GATEWAY_IP4));
		if (type != 128 && type != 129)
			return TC_ACT_SHOT;
	}
	if (!inside)
		return TC_ACT_SHOT;
	ip6_to_ip4(&ip6, &ip4, ip6.saddr.s6_addr32[3], ip6.daddr.s6_addr32[3]);
	return plain_6_to_4(skb, &ip6, &ip4);
}

char _license[] SEC("license") = "GPL";
