"""Security policy kinds: NetworkPolicy (namespaced), GlobalNetworkPolicy, their staged forms,
and Tier.

A policy selects endpoints (`selector`, `serviceAccountSelector`, and for global policy
`namespaceSelector`) and applies ordered `ingress` / `egress` rules (see `rules.py`) to them.
Policies live in a tier; within a tier they apply by ascending `order`, then by name.

Calico's defaults, filled on validation so a validated policy is what Calico stores:

- `types`, when absent or empty: ["Ingress"] if there are no egress rules (also when there are
  no rules at all), ["Egress"] if there are egress rules but no ingress rules, and
  ["Ingress", "Egress"] if both (libcalico-go clientv3 defaultPolicyTypesField, applied on
  create and update). Staged policies with stagedAction Delete are left alone.
- `tier`: "default" when absent (the CRD's `+kubebuilder:default=default`; clientv3 Get also
  fills it in).
- `order`: kept unset (None) — Calico treats it as infinite, i.e. the policy applies last in
  its tier. An integral order is written as an integer, as Go prints a float64.
- `doNotTrack` / `preDNAT` / `applyOnForward` false are omitted, as Go's omitempty does.
- the label `projectcalico.org/tier` is set to the policy's tier (clientv3 adds it on every
  create and update, so selectors and `get -l` can find a tier's policies).

Names (decision): a policy's name is kept exactly as written; no tier prefix is added,
stripped or required. Calico 3.29 began prefixing names with "<tier>." and 3.29.4/3.30
required the prefix outside the default tier, but current Calico (PR projectcalico/calico
#11232, "Remove tier prefixing restriction for policy names") identifies a policy by kind,
namespace and name only, with the tier just a spec field. The name formats are still
those of Calico's validator: a NetworkPolicy name is a DNS label with at most one dot, or
"knp.default.<subdomain>" / "ossg.default.<subdomain>" (Kubernetes and OpenStack policies);
a GlobalNetworkPolicy name is a DNS label with at most one dot; at most 253 characters.

Validation follows libcalico-go/lib/validator/v3 (validateNetworkPolicySpec,
validateGlobalNetworkPolicySpec, validateTier, validateStaged*) and the CEL rules on the v3
types: services only as the source of ingress rules and the destination of egress rules (and
with a namespace in global policy), no http match in egress rules, no `global()` outside a
rule's namespaceSelector, unique `types` and `performanceHints`, and for global policy:
preDNAT and doNotTrack are exclusive, both need applyOnForward: true, and a preDNAT policy has
no egress rules and no Egress type.

`status` (which newer Calico API servers report on policies) is accepted and carried as an
opaque object so that `calicoctl get -o yaml` output applies back unchanged.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, ClassVar

from pydantic import PlainSerializer, model_validator

from .base import CalicoModel, FieldError, Resource, check_dns1123_subdomain, checked
from .rules import Name, Rule, Selector, check_rules

POLICY_TYPES = ("Ingress", "Egress")
PERFORMANCE_HINTS = ("AssumeNeededOnEveryNode",)
STAGED_ACTIONS = ("Set", "Delete", "Learn", "Ignore")
DEFAULT_TIER = "default"
TIER_LABEL = "projectcalico.org/tier"
MAX_RULES = 1024

# Tiers whose order Calico fixes.
RESERVED_TIER_ORDERS = {"default": 1_000_000.0, "kube-admin": 1_000.0,
                        "kube-baseline": 10_000_000.0}

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + r")*"
_NP_NAME = re.compile(rf"^(({_LABEL})(\.{_LABEL})?|((knp|ossg)\.default\.({_SUBDOMAIN})))$")
_GNP_NAME = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
_TIER_NAME = re.compile(rf"^{_LABEL}$")


def _check_policy_name(name: str, pattern: re.Pattern[str], kind: str, extra: str) -> None:
    if len(name) > 253:
        raise ValueError(f"is not a valid {kind} name: at most 253 characters")
    if not pattern.match(name):
        raise ValueError(f"is not a valid {kind} name: lower case alphanumeric characters or "
                         f"'-', with at most one '.'{extra}")


# ---- field types ---------------------------------------------------------------------------

def _check_order(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("is not a number")
    if not abs(value) <= sys.float_info.max:  # NaN, infinities, integers beyond a float64
        raise ValueError("is not a finite number")
    return float(value)


Order = Annotated[
    checked(float | None, _check_order),
    PlainSerializer(lambda v: int(v) if v is not None and float(v).is_integer() else v),
]


def _omit_false(value: Any) -> bool | None:
    if value is None or value is False:
        return None
    if value is True:
        return True
    raise ValueError("is not a boolean")


OmitFalse = checked(bool | None, _omit_false)


def _check_unique(choices: tuple[str, ...], what: str):
    def check(values: Any) -> Any:
        if values is None:
            return None
        if not isinstance(values, list):
            raise ValueError("is not a list")
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value not in choices:
                raise FieldError(f"is not a valid {what} ({', '.join(choices)})", field=(i,),
                                 value=value)
            if value in seen:
                raise FieldError("is listed more than once", field=(i,), value=value)
            seen.add(value)
        return values
    return check


PolicyTypes = checked(list[str] | None, _check_unique(POLICY_TYPES, "policy type"))
PerformanceHints = checked(list[str] | None,
                           _check_unique(PERFORMANCE_HINTS, "performance hint"))
Rules = list[Rule] | None
LimitedRules = checked(list[Rule] | None, lambda v: check_rules(v, MAX_RULES))


def default_policy_types(ingress: list | None, egress: list | None) -> list[str]:
    """Calico's default for an unset `types` (clientv3 defaultPolicyTypesField)."""
    if not egress:
        return ["Ingress"]
    if not ingress:
        return ["Egress"]
    return ["Ingress", "Egress"]


# ---- specs ---------------------------------------------------------------------------------

class _PolicySpec(CalicoModel):
    """Fields and checks common to namespaced and global policy specs."""

    GLOBAL: ClassVar[bool] = False

    tier: Name = None
    order: Order = None
    ingress: Rules = None
    egress: Rules = None
    selector: Selector = None
    types: PolicyTypes = None
    serviceAccountSelector: Selector = None
    performanceHints: PerformanceHints = None

    def apply_defaults(self) -> None:
        if not self.tier:
            self.tier = DEFAULT_TIER
        if not self.types:
            self.types = default_policy_types(self.ingress, self.egress)

    def check(self) -> None:
        """Calico's spec-level rules; raises FieldError naming the sub-field."""
        for field in ("selector", "serviceAccountSelector", "namespaceSelector"):
            value = getattr(self, field, None)
            if value and "global(" in value:
                raise FieldError("is not allowed: global() can only be used in an EntityRule "
                                 "namespaceSelector", field=(field,), value=value)
        for i, rule in enumerate(self.egress or []):
            if rule.uses_services("source"):
                raise FieldError("is not allowed in an egress rule source",
                                 field=("egress", i, "source", "services"),
                                 value=rule.source.services.to_dict())
            if rule.http is not None:
                raise FieldError("is not allowed in egress rules", field=("egress", i, "http"),
                                 value=rule.http.to_dict())
        for i, rule in enumerate(self.ingress or []):
            if rule.uses_services("destination"):
                raise FieldError("is not allowed in an ingress rule destination",
                                 field=("ingress", i, "destination", "services"),
                                 value=rule.destination.services.to_dict())
        if self.GLOBAL:
            for direction, end in (("egress", "destination"), ("ingress", "source")):
                for i, rule in enumerate(getattr(self, direction) or []):
                    services = getattr(rule, end).services if rule.uses_services(end) else None
                    if services is not None and not services.namespace:
                        raise FieldError("must name a namespace in a global policy",
                                         field=(direction, i, end, "services"),
                                         value=services.to_dict())


class NetworkPolicySpec(_PolicySpec):
    @model_validator(mode="after")
    def _defaults_and_checks(self) -> NetworkPolicySpec:
        self.apply_defaults()
        self.check()
        return self


class GlobalNetworkPolicySpec(_PolicySpec):
    GLOBAL: ClassVar[bool] = True

    ingress: LimitedRules = None
    egress: LimitedRules = None
    doNotTrack: OmitFalse = None
    preDNAT: OmitFalse = None
    applyOnForward: OmitFalse = None
    namespaceSelector: Selector = None

    def check(self) -> None:
        if self.doNotTrack and self.preDNAT:
            raise FieldError("cannot be combined with doNotTrack: true", field=("preDNAT",),
                             value=True)
        if self.preDNAT and self.egress:
            raise FieldError("is not allowed in a preDNAT policy", field=("egress",),
                             value=[r.to_dict() for r in self.egress])
        if self.preDNAT and "Egress" in (self.types or []):
            raise FieldError("is not allowed in a preDNAT policy (no Egress type)",
                             field=("types",), value=self.types)
        if (self.doNotTrack or self.preDNAT) and not self.applyOnForward:
            raise FieldError("must be true when doNotTrack or preDNAT is true",
                             field=("applyOnForward",), value=False)
        super().check()

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> GlobalNetworkPolicySpec:
        self.apply_defaults()
        self.check()
        return self


def _check_staged_action(value: Any) -> str | None:
    if value is not None and value not in STAGED_ACTIONS:
        raise ValueError(f"is not a valid stagedAction ({', '.join(STAGED_ACTIONS)})")
    return value


StagedAction = checked(str | None, _check_staged_action)


class _StagedMixin:
    """A staged policy previews a change: Set (the default) and Learn/Ignore carry a full
    spec; Delete must carry nothing but the tier."""

    def staged_defaults_and_checks(self) -> None:
        if self.stagedAction == "Delete":
            rest = self.model_dump(exclude_none=True, exclude={"stagedAction", "tier"})
            if rest:
                field = next(iter(rest))
                raise FieldError("must be empty when stagedAction is Delete (only tier may be "
                                 "set)", field=(field,), value=rest[field])
            if not self.tier:
                self.tier = DEFAULT_TIER
            return
        self.apply_defaults()
        self.check()


class StagedNetworkPolicySpec(_StagedMixin, _PolicySpec):
    stagedAction: StagedAction = None

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> StagedNetworkPolicySpec:
        self.staged_defaults_and_checks()
        return self


class StagedGlobalNetworkPolicySpec(_StagedMixin, GlobalNetworkPolicySpec):
    stagedAction: StagedAction = None

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> StagedGlobalNetworkPolicySpec:
        self.staged_defaults_and_checks()
        return self


# ---- resources -----------------------------------------------------------------------------

def _np_name(kind: str, name: str) -> None:
    _check_policy_name(name, _NP_NAME, kind,
                       ", or knp.default.<name> / ossg.default.<name>")


def _gnp_name(kind: str, name: str) -> None:
    _check_policy_name(name, _GNP_NAME, kind, "")


class _TierLabelled(Resource):
    """A policy kind: carries its tier as the label TIER_LABEL, as clientv3 writes it."""

    @model_validator(mode="after")
    def _tier_label(self) -> _TierLabelled:
        tier = self.spec.tier or DEFAULT_TIER
        labels = self.metadata.labels or {}
        if labels.get(TIER_LABEL) != tier:
            self.metadata.labels = {**labels, TIER_LABEL: tier}
        return self


class NetworkPolicy(_TierLabelled, kind="NetworkPolicy", plural="networkpolicies", namespaced=True):
    spec: NetworkPolicySpec = NetworkPolicySpec()
    status: dict[str, Any] | None = None

    @classmethod
    def check_name(cls, name: str) -> None:
        _np_name(cls.KIND, name)


class GlobalNetworkPolicy(_TierLabelled, kind="GlobalNetworkPolicy", plural="globalnetworkpolicies"):
    spec: GlobalNetworkPolicySpec = GlobalNetworkPolicySpec()
    status: dict[str, Any] | None = None

    @classmethod
    def check_name(cls, name: str) -> None:
        _gnp_name(cls.KIND, name)


class StagedNetworkPolicy(_TierLabelled, kind="StagedNetworkPolicy", plural="stagednetworkpolicies",
                          namespaced=True):
    spec: StagedNetworkPolicySpec = StagedNetworkPolicySpec()

    @classmethod
    def check_name(cls, name: str) -> None:
        _np_name(cls.KIND, name)


class StagedGlobalNetworkPolicy(_TierLabelled, kind="StagedGlobalNetworkPolicy",
                                plural="stagedglobalnetworkpolicies"):
    spec: StagedGlobalNetworkPolicySpec = StagedGlobalNetworkPolicySpec()

    @classmethod
    def check_name(cls, name: str) -> None:
        _gnp_name(cls.KIND, name)


class StagedKubernetesNetworkPolicySpec(CalicoModel):
    """A Kubernetes NetworkPolicy previewed as staged: its podSelector and rules are kept as
    Kubernetes writes them (`networking.k8s.io/v1` objects); nothing enforces them."""

    stagedAction: StagedAction = None
    podSelector: dict[str, Any] | None = None
    ingress: list[dict[str, Any]] | None = None
    egress: list[dict[str, Any]] | None = None
    policyTypes: PolicyTypes = None


class StagedKubernetesNetworkPolicy(Resource, kind="StagedKubernetesNetworkPolicy",
                                    plural="stagedkubernetesnetworkpolicies", namespaced=True):
    spec: StagedKubernetesNetworkPolicySpec = StagedKubernetesNetworkPolicySpec()

    @classmethod
    def check_name(cls, name: str) -> None:
        check_dns1123_subdomain(name)


# ---- tiers ---------------------------------------------------------------------------------

def _check_tier_action(value: Any) -> str | None:
    if value is not None and value not in ("Deny", "Pass"):
        raise ValueError("is not a valid defaultAction (Deny or Pass)")
    return value


class TierSpec(CalicoModel):
    order: Order = None
    defaultAction: checked(str | None, _check_tier_action) = None


class Tier(Resource, kind="Tier", plural="tiers"):
    """A tier of policies. Tiers apply by ascending `order` (unset: last). `defaultAction`
    (default Deny) applies to endpoints a tier's policies select when no rule matched.
    The default, kube-admin and kube-baseline tiers have fixed orders."""

    spec: TierSpec = TierSpec()

    @classmethod
    def check_name(cls, name: str) -> None:
        if len(name) > 63 or not _TIER_NAME.match(name):
            raise ValueError("is not a valid Tier name: lower case alphanumeric characters or "
                             "'-', no '.' (at most 63)")

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> Tier:
        if self.spec.defaultAction is None:
            self.spec.defaultAction = "Deny"
        fixed = RESERVED_TIER_ORDERS.get(self.name)
        if fixed is not None and self.spec.order != fixed:
            raise FieldError(f"must be {int(fixed)} for the {self.name} tier",
                             field=("spec", "order"), value=self.spec.order)
        return self


__all__ = [
    "DEFAULT_TIER", "GlobalNetworkPolicy", "GlobalNetworkPolicySpec", "NetworkPolicy",
    "NetworkPolicySpec", "StagedGlobalNetworkPolicy", "StagedKubernetesNetworkPolicy",
    "StagedNetworkPolicy", "Tier", "TierSpec",
    "default_policy_types",
]
