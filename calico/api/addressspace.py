"""AddressSpace: our extension beyond Calico (projectcalico.org/v3, kind `AddressSpace`).

An address space is a set of workloads whose IPv4 addresses are unique among themselves but may
repeat in other spaces. Each space has an IPv6 /96 `spec.translationPrefix` P: a workload of
the space with IPv4 address A is, everywhere outside its own interface, the IPv6 address P::A
(A in the low 32 bits). An IPPool joins a space with `spec.addressSpace`, a WorkloadEndpoint
with `spec.addressSpace`; absent means the default, global space, which behaves exactly as
Calico does (no AddressSpace resource exists for it, and the name `default` is reserved).

Checks on the space alone are model validators (the prefix is an IPv6 /96, strictly masked).
Checks that need the other resources are functions the datastore client calls before a write:
`check_space_prefix` (the prefix overlaps no IPv6 pool and no other space's prefix),
`check_pool_space` (a pool's space exists; a space pool is IPv4; an IPv6 pool overlaps no
space prefix) and `check_endpoint_space` (an endpoint's space exists). `allocate_prefix`
picks the first free /96 of the configured range (see `PREFIX_RANGE_ENV`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

from pydantic import model_validator

from .base import CalicoModel, FieldError, Resource, ValidationError, checked, render_value

PREFIX_LEN = 96
# Where prefixes are allocated from when a space gives none: RFC 8215's local-use
# IPv4/IPv6 translation prefix. Overridden by this environment variable of the writer
# (calicoctl, the CNI plugin, the Neutron driver, calico-lab), which must be an IPv6 CIDR
# of length <= 96.
PREFIX_RANGE_ENV = "CALICO_ADDRESS_SPACE_RANGE"
DEFAULT_PREFIX_RANGE = "64:ff9b:1::/48"
RESERVED_NAMES = ("default",)


def _check_prefix(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("is not an IPv6 CIDR")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("is not an IPv6 CIDR") from None
    if net.version != 6:
        raise ValueError("is not an IPv6 CIDR: a translation prefix is an IPv6 /96")
    if net.prefixlen != PREFIX_LEN:
        raise ValueError(f"is a /{net.prefixlen}: a translation prefix must be an IPv6 /96 "
                         f"(the IPv4 address fills the low 32 bits)")
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("is not strictly masked: the address has bits set beyond the prefix "
                         "length") from None
    return str(net)


def space_name(value: object) -> str | None:
    """An endpoint's or pool's `addressSpace`: None (the default space) or a space name."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if value in RESERVED_NAMES:
        return None  # "default" names the default space: stored as absent
    return value


AddressSpaceName = checked(str | None, space_name)


class AddressSpaceSpec(CalicoModel):
    translationPrefix: checked(str | None, _check_prefix) = None


class AddressSpace(Resource, kind="AddressSpace", plural="addressspaces"):
    spec: AddressSpaceSpec = AddressSpaceSpec()

    @model_validator(mode="after")
    def _name_not_reserved(self) -> AddressSpace:
        if self.metadata.name in RESERVED_NAMES:
            raise FieldError("is reserved for the default address space (leave "
                             "addressSpace unset to use it)", field=("metadata", "name"),
                             value=self.metadata.name)
        return self

    @property
    def prefix(self) -> ipaddress.IPv6Network | None:
        p = self.spec.translationPrefix
        return ipaddress.IPv6Network(p) if p else None


def prefix_range(environ: dict[str, str] | None = None) -> ipaddress.IPv6Network:
    """The range prefixes are allocated from (`PREFIX_RANGE_ENV`, else RFC 8215's)."""
    text = (environ if environ is not None else os.environ).get(PREFIX_RANGE_ENV) \
        or DEFAULT_PREFIX_RANGE
    try:
        net = ipaddress.ip_network(text)
    except ValueError:
        net = None
    if net is None or net.version != 6 or net.prefixlen > PREFIX_LEN:
        raise ValidationError("AddressSpace", None, PREFIX_RANGE_ENV,
                              f"{render_value(text)} is not an IPv6 CIDR of length <= 96")
    return net


def allocate_prefix(span: ipaddress.IPv6Network, taken: Iterable[ipaddress.IPv6Network],
                    name: str) -> ipaddress.IPv6Network:
    """The first /96 of `span` that overlaps nothing in `taken`."""
    taken = sorted(t for t in taken if t.overlaps(span))
    step = 1 << (128 - PREFIX_LEN)
    candidate = int(span.network_address)
    end = int(span.broadcast_address)
    for t in taken:
        if candidate + step - 1 < int(t.network_address):
            break
        candidate = max(candidate, (int(t.broadcast_address) // step + 1) * step)
    if candidate + step - 1 > end:
        raise ValidationError("AddressSpace", name, "spec.translationPrefix",
                              f"cannot be allocated: every /96 of {span} is taken")
    return ipaddress.IPv6Network((candidate, PREFIX_LEN))


def check_space_prefix(space: AddressSpace, spaces: Iterable[AddressSpace],
                       pool_cidrs: Iterable[tuple[str, str]]) -> None:
    """The space's prefix overlaps no IPv6 pool ((name, cidr) pairs) and no other space's."""
    prefix = space.prefix
    if prefix is None:
        return
    for pool, cidr in pool_cidrs:
        net = ipaddress.ip_network(cidr)
        if net.version == 6 and net.overlaps(prefix):
            raise ValidationError("AddressSpace", space.name, "spec.translationPrefix",
                                  f"{render_value(str(prefix))} collides with IPPool "
                                  f'"{pool}" ({cidr})')
    for other in spaces:
        if other.name != space.name and other.prefix and other.prefix.overlaps(prefix):
            raise ValidationError("AddressSpace", space.name, "spec.translationPrefix",
                                  f"{render_value(str(prefix))} collides with AddressSpace "
                                  f'"{other.name}" ({other.prefix})')


def check_pool_space(kind_name: str, cidr: str, space: str | None,
                     spaces: Iterable[AddressSpace]) -> None:
    """An IPPool's space exists and its pool is IPv4; an IPv6 pool of the default space
    overlaps no translation prefix."""
    net = ipaddress.ip_network(cidr)
    spaces = list(spaces)
    if space is not None:
        if not any(s.name == space for s in spaces):
            raise ValidationError("IPPool", kind_name, "spec.addressSpace",
                                  f'"{space}" is not an existing AddressSpace')
        if net.version != 4:
            raise ValidationError("IPPool", kind_name, "spec.addressSpace",
                                  f'"{space}" cannot hold IPv6 pool {cidr}: address spaces '
                                  f"translate IPv4 addresses")
        return
    for s in spaces:
        if net.version == 6 and s.prefix and s.prefix.overlaps(net):
            raise ValidationError("IPPool", kind_name, "spec.cidr",
                                  f'"{cidr}" collides with the translation prefix of '
                                  f'AddressSpace "{s.name}" ({s.prefix})')


def check_endpoint_space(kind: str, name: str, space: str | None,
                         spaces: Iterable[AddressSpace]) -> None:
    if space is not None and not any(s.name == space for s in spaces):
        raise ValidationError(kind, name, "spec.addressSpace",
                              f'"{space}" is not an existing AddressSpace')


def translated(prefix: ipaddress.IPv6Network, ipv4: ipaddress.IPv4Address | str
               ) -> ipaddress.IPv6Address:
    """P::A: the address an IPv4 address of a space has outside its interface."""
    return ipaddress.IPv6Address(int(prefix.network_address) | int(ipaddress.IPv4Address(ipv4)))


def translated_net(prefix: ipaddress.IPv6Network, net: ipaddress.IPv4Network | str
                   ) -> ipaddress.IPv6Network:
    """P::N/(96+len): an IPv4 CIDR of a space in its translated form."""
    net = ipaddress.IPv4Network(net, strict=False)
    return ipaddress.IPv6Network((int(translated(prefix, net.network_address)),
                                  PREFIX_LEN + net.prefixlen))


__all__ = ["AddressSpace", "AddressSpaceName", "AddressSpaceSpec", "allocate_prefix",
           "check_endpoint_space", "check_pool_space", "check_space_prefix", "prefix_range",
           "translated", "translated_net"]
