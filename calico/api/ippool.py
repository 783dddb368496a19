"""IPPool and IPReservation: the address ranges Calico IPAM allocates from, and the addresses
it must never hand out.

An IPPool arrives as a manifest and leaves as what Calico would store: the validator normalises
`cidr` to its canonical text and fills the server-side defaults of libcalico-go's
`clientv3/ippool.go` (blockSize 26 / 122, ipipMode and vxlanMode "Never", nodeSelector "all()",
allowedUses [Workload, Tunnel], assignmentMode "Automatic"). `natOutgoing`, `disabled` and
`disableBGPExport` are stored only when true: Go omits a false bool, so unset means false.

Checks that need one pool only are model validators, in Calico's order (CIDR, block size, pool
size, encapsulation, LoadBalancer rules). Overlap needs the other pools: the datastore client
calls `check_pool_overlap(new, existing)` before a create, and `check_pool_update(new, old)`
(CIDR and blockSize cannot change) before an update, as clientv3's ippools client does.

`Selector` (rules.py's `check_selector` without its length limit) is shared by the
infrastructure kinds (pools, peers, controllers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from .addressspace import AddressSpaceName
from .base import CalicoModel, FieldError, Resource, ValidationError, checked, render_value
from .nets import parse_cidr
from .rules import check_selector

DEFAULT_BLOCK_SIZE = {4: 26, 6: 122}
BLOCK_SIZE_LIMITS = {4: (20, 32), 6: (116, 128)}
LINK_LOCAL = {4: ipaddress.ip_network("169.254.0.0/16"), 6: ipaddress.ip_network("fe80::/10")}
ALLOWED_USES = ("Workload", "Tunnel", "LoadBalancer")


# The infrastructure kinds' selectors (pools, peers, controllers): no length limit.
Selector = checked(str | None, lambda value: check_selector(value, max_len=None))


def _check_pool_cidr(value: Any) -> str:
    """The pool CIDR: must parse (a bare address is a /32 or /128) and be strictly masked.
    Stored in canonical form (`fd00:0::/48` -> `fd00::/48`)."""
    try:
        parse_cidr(value, strict=True)
    except ValueError as err:
        if "host bits" in str(err):
            raise ValueError("is not strictly masked: the address has bits set beyond "
                             "the prefix length") from None
        raise
    return str(parse_cidr(value))


def _check_allowed_uses(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("is not a list")
    for i, use in enumerate(value):
        if use not in ALLOWED_USES:
            raise FieldError(f"is not a known use ({', '.join(ALLOWED_USES)})",
                             field=(i,), value=use)
    return value


def _must_be_unset(value: Any) -> Any:
    if value is None or value is False:
        return None  # nat-outgoing: false is Go's zero value, so it is never stored
    raise ValueError("is a Calico API v1 field and cannot be set: use ipipMode / natOutgoing")


class IPPoolSpec(CalicoModel):
    cidr: checked(str, _check_pool_cidr)
    vxlanMode: Literal["Never", "Always", "CrossSubnet"] | None = None
    ipipMode: Literal["Never", "Always", "CrossSubnet"] | None = None
    natOutgoing: StrictBool | None = None
    disabled: StrictBool | None = None
    disableBGPExport: StrictBool | None = None
    blockSize: StrictInt | None = None
    nodeSelector: Selector = None
    namespaceSelector: Selector = None
    allowedUses: checked(list[str] | None, _check_allowed_uses) = None
    assignmentMode: Literal["Automatic", "Manual"] | None = None
    # Our extension (calico/api/addressspace.py): absent = the default, global space.
    addressSpace: AddressSpaceName = None
    # Deprecated API v1 fields: Calico keeps them in the type but rejects any value.
    ipip: checked(Any, _must_be_unset) = None
    natOutgoingV1: checked(Any, _must_be_unset) = Field(None, alias="nat-outgoing")

    @model_validator(mode="after")
    def _defaults_and_rules(self) -> IPPoolSpec:
        net = parse_cidr(self.cidr)
        version = net.version
        # Go omits a false non-pointer bool: false and unset are the same stored value.
        for flag in ("natOutgoing", "disabled", "disableBGPExport"):
            if getattr(self, flag) is False:
                setattr(self, flag, None)
        # Defaults, as clientv3 fills them before it validates.
        if not self.blockSize:
            self.blockSize = DEFAULT_BLOCK_SIZE[version]
        if not self.nodeSelector:
            self.nodeSelector = "all()"
        if not self.allowedUses:
            self.allowedUses = ["Workload", "Tunnel"]
        if self.assignmentMode is None:
            self.assignmentMode = "Automatic"
        self.ipipMode = self.ipipMode or "Never"
        self.vxlanMode = self.vxlanMode or "Never"

        if net.overlaps(LINK_LOCAL[version]):
            raise FieldError(f"overlaps with the IPv{version} link-local range "
                             f"{LINK_LOCAL[version]}", field=("cidr",), value=self.cidr)
        low, high = BLOCK_SIZE_LIMITS[version]
        if not low <= self.blockSize <= high:
            raise FieldError(f"is not a valid IPv{version} block size ({low}-{high})",
                             field=("blockSize",), value=self.blockSize)
        if not self.disabled and net.prefixlen > self.blockSize:
            raise FieldError(f"is too small for Calico IPAM: the pool must be at least as large "
                             f"as one block (/{self.blockSize})", field=("cidr",), value=self.cidr)
        if version == 6 and self.ipipMode != "Never":
            raise FieldError("is not supported on an IPv6 pool: IPIP carries IPv4 only",
                             field=("ipipMode",), value=self.ipipMode)
        if self.ipipMode != "Never" and self.vxlanMode != "Never":
            raise FieldError(f"cannot be enabled together with ipipMode "
                             f"{render_value(self.ipipMode)} on the same pool",
                             field=("vxlanMode",), value=self.vxlanMode)
        self._check_load_balancer()
        return self

    def _check_load_balancer(self) -> None:
        if "LoadBalancer" not in (self.allowedUses or []):
            return
        others = [u for u in self.allowedUses if u != "LoadBalancer"]
        if others:
            raise FieldError(f"cannot combine LoadBalancer with {', '.join(others)}",
                             field=("allowedUses",), value=self.allowedUses)
        if self.ipipMode != "Never" or self.vxlanMode != "Never":
            raise FieldError("cannot be enabled on a LoadBalancer pool",
                             field=("ipipMode" if self.ipipMode != "Never" else "vxlanMode",),
                             value=self.ipipMode if self.ipipMode != "Never" else self.vxlanMode)
        if self.disableBGPExport:
            raise FieldError("cannot be true on a LoadBalancer pool",
                             field=("disableBGPExport",), value=True)
        if self.nodeSelector != "all()":
            raise FieldError('must be "all()" on a LoadBalancer pool',
                             field=("nodeSelector",), value=self.nodeSelector)


class IPPoolStatus(CalicoModel):
    conditions: list[dict[str, Any]] | None = None


class IPPool(Resource, kind="IPPool", plural="ippools"):
    spec: IPPoolSpec
    status: IPPoolStatus | None = None

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return parse_cidr(self.spec.cidr)


def check_pool_overlap(new: IPPool, existing: Iterable[IPPool]) -> None:
    """Raise ValidationError if `new` overlaps any other pool of its address space (a pool of
    the same name is the one being replaced and is skipped), as clientv3 does before creating
    a pool."""
    net = new.network
    for other in existing:
        if other.name == new.name:
            continue
        if other.spec.addressSpace != new.spec.addressSpace:
            continue  # pools of different address spaces may overlap
        if other.network.version == net.version and other.network.overlaps(net):
            raise ValidationError("IPPool", new.name, "spec.cidr",
                                  f"{render_value(new.spec.cidr)} overlaps with IPPool "
                                  f"\"{other.name}\" ({other.spec.cidr})")


def check_pool_update(new: IPPool, old: IPPool) -> None:
    """Raise ValidationError if an update changes what clientv3 forbids changing: the CIDR
    and the block size (blocks already carved from the pool would no longer fit it)."""
    for field in ("cidr", "blockSize", "addressSpace"):
        was, now = getattr(old.spec, field), getattr(new.spec, field)
        if now != was:
            raise ValidationError("IPPool", new.name, f"spec.{field}",
                                  f"{render_value(now)} cannot be modified "
                                  f"(was {render_value(was)})")


# ---- IPReservation ---------------------------------------------------------------------------

def _check_reserved(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("is not a list")
    for i, item in enumerate(value):
        try:
            parse_cidr(item)
        except ValueError as err:
            raise FieldError(str(err), field=(i,), value=item) from None
    return value


class IPReservationSpec(CalicoModel):
    reservedCIDRs: checked(list[str] | None, _check_reserved) = None


class IPReservation(Resource, kind="IPReservation", plural="ipreservations"):
    spec: IPReservationSpec = IPReservationSpec()

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [parse_cidr(c) for c in self.spec.reservedCIDRs or []]
