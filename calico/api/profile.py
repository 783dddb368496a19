"""Profile: rules and labels that endpoints take on by listing the profile's name.

A profile carries ordered `ingress` / `egress` rules (see `rules.py`), applied after the
selector-based policy tiers, and `labelsToApply`: labels every referencing endpoint inherits
(an endpoint's own label of the same key wins). Calico's Kubernetes integration writes
profiles named `kns.<namespace>` and `ksa.<namespace>.<serviceaccount>`; OpenStack and
calicoctl users write their own.

Validation (libcalico-go validator v3 and the CRD): the name is a DNS subdomain, at most 1024
rules per direction, each rule as in `rules.py`, `labelsToApply` valid label keys and values.
Unlike policies, profile rules carry no ingress/egress placement restrictions.
"""

from __future__ import annotations

from .base import CalicoModel, Labels, Resource
from .policy import LimitedRules


class ProfileSpec(CalicoModel):
    ingress: LimitedRules = None
    egress: LimitedRules = None
    labelsToApply: Labels = None


class Profile(Resource, kind="Profile", plural="profiles"):
    spec: ProfileSpec = ProfileSpec()


__all__ = ["Profile", "ProfileSpec"]
