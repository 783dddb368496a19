"""Network sets: named, labelled lists of CIDRs that policy selectors can match.

A rule selector (`source.selector: role == "db-clients"`) matches workload and host
endpoints *and* network sets with those labels, so a set of external addresses can be
referred to by label. `NetworkSet` is namespaced (matched by namespaced policy in its
namespace, or through a namespaceSelector); `GlobalNetworkSet` is cluster-wide (matched by
global policy, or by namespaced policy with `namespaceSelector: global()`).

Validation (libcalico-go validator v3: validateNetworkSet, validateGlobalNetworkSet; the
`cidr` tag): each net is an address or a CIDR, host bits allowed, kept as written; the label
`projectcalico.org/namespace` is reserved and rejected.
"""

from __future__ import annotations

from pydantic import model_validator

from .base import CalicoModel, FieldError, Resource, checked
from .nets import check_cidrs

RESERVED_LABEL = "projectcalico.org/namespace"

Nets = checked(list[str] | None, check_cidrs)


class NetworkSetSpec(CalicoModel):
    nets: Nets = None


class GlobalNetworkSetSpec(CalicoModel):
    nets: Nets = None


class _NetworkSetBase(Resource):
    """Shared checks; not a kind itself."""

    @model_validator(mode="after")
    def _no_reserved_label(self) -> _NetworkSetBase:
        if RESERVED_LABEL in (self.metadata.labels or {}):
            raise FieldError("is a reserved label and cannot be set on a network set",
                             field=("metadata", "labels", RESERVED_LABEL), value=RESERVED_LABEL)
        return self


class NetworkSet(_NetworkSetBase, kind="NetworkSet", plural="networksets",
                 namespaced=True):
    spec: NetworkSetSpec = NetworkSetSpec()


class GlobalNetworkSet(_NetworkSetBase, kind="GlobalNetworkSet",
                       plural="globalnetworksets"):
    spec: GlobalNetworkSetSpec = GlobalNetworkSetSpec()


__all__ = ["GlobalNetworkSet", "GlobalNetworkSetSpec", "NetworkSet", "NetworkSetSpec"]
