/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP <-> ICMPv6 type and code mapping of RFC 7915 (4.2, 5.2), for xlat.c. */
#ifndef XLAT_ICMP_H
#define XLAT_ICMP_H

/* ---- ICMP type/code mapping (RFC 7915 4.2 and 5.2). Return 0 to translate, -1 to drop. ---- */

static __always_inline int icmp4_to_6(__u8 *type, __u8 *code, __be32 *rest)
{
	__u32 mtu;

	switch (*type) {
	case 8: *type = 128; return 0;
	case 0: *type = 129; return 0;
	case 11: *type = 3; return 0; /* time exceeded, code kept */
	case 3:
		switch (*code) {
		case 3: *type = 1; *code = 4; return 0; /* port unreachable */
		case 2: /* protocol unreachable -> parameter problem, pointer to next header */
			*type = 4; *code = 1; *rest = bpf_htonl(6); return 0;
		case 4: /* fragmentation needed -> Packet Too Big, MTU + 20 */
			mtu = bpf_ntohl(*rest) & 0xffff;
			mtu = mtu ? mtu + 20 : 1280;
			*type = 2; *code = 0; *rest = bpf_htonl(mtu < 1280 ? 1280 : mtu);
			return 0;
		case 9: case 10: case 13: case 15:
			*type = 1; *code = 1; *rest = 0; return 0; /* administratively prohibited */
		case 0: case 1: case 5: case 6: case 7: case 8: case 11: case 12:
			*type = 1; *code = 0; *rest = 0; return 0; /* no route */
		}
	}
	return -1;
}

static __always_inline int icmp6_to_4(__u8 *type, __u8 *code, __be32 *rest)
{
	__u32 mtu;

	switch (*type) {
	case 128: *type = 8; return 0;
	case 129: *type = 0; return 0;
	case 3: *type = 11; return 0;
	case 2: /* Packet Too Big -> fragmentation needed, MTU - 20 */
		mtu = bpf_ntohl(*rest);
		mtu = mtu > 0xffff + 20 ? 0xffff : (mtu < 88 ? 68 : mtu - 20);
		*type = 3; *code = 4; *rest = bpf_htonl(mtu);
		return 0;
	case 1:
		*rest = 0;
		switch (*code) {
		case 0: case 2: case 3: *type = 3; *code = 1; return 0; /* host unreachable */
		case 1: *type = 3; *code = 10; return 0; /* administratively prohibited */
		case 4: *type = 3; *code = 3; return 0;  /* port unreachable */
		}
		return -1;
	case 4:
		if (*code == 1) { /* unrecognised next header -> protocol unreachable */
			*type = 3; *code = 2; *rest = 0; return 0;
		}
	}
	return -1;
}

static __always_inline int is_icmp4_error(__u8 type)
{
	return type == 3 || type == 11;
}

static __always_inline int is_icmp6_error(__u8 type)
{
	return type < 128;
}

#endif
