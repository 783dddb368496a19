"""How Calico's v3 resources turn into plain endpoint selectors (and label conventions).

Calico's datastore layer (libcalico-go updateprocessors: rules.go, selectors.go,
networkpolicyprocessor.go) folds namespaces and service accounts into ordinary selectors
before Felix sees them; we do the same here, so the label index only ever evaluates one
selector against one label map:

- Namespaced endpoints and network sets carry implicit labels
  `projectcalico.org/namespace: <ns>` (and, for workloads, `projectcalico.org/orchestrator`
  and `projectcalico.org/serviceaccount`).
- Namespace labels are `pcns.<key>` labels inherited from the namespace's profile
  `kns.<namespace>` (its `labelsToApply`, already prefixed, exactly as Calico's Kubernetes
  converter writes that profile), plus `pcns.projectcalico.org/name: <namespace>`, which we
  always add. Every namespaced endpoint and network set inherits from `kns.<namespace>`
  implicitly (after the profiles it lists), so writers need not list it. Service-account
  labels work the same way with prefix `pcsa.` and profile `ksa.<namespace>.<name>`.
  An endpoint's own `pcns.`/`pcsa.` labels are dropped, so it cannot claim another namespace.
- A `namespaceSelector` is rewritten with every key prefixed `pcns.`; `all()` in it means
  "any namespaced endpoint" (`has(projectcalico.org/namespace)`) and `global()` means "no
  namespace" (`!has(projectcalico.org/namespace)`).
- A NetworkPolicy's selector, and the rule selectors of a NetworkPolicy without a
  `namespaceSelector`, are AND-ed with `projectcalico.org/namespace == "<ns>"`.

Inputs are validated `calico.api` models (the syncer's hand-over), read by attribute.
"""

from __future__ import annotations

from calico.api.policy import GlobalNetworkPolicySpec, NetworkPolicySpec
from calico.api.rules import EntityRule, ServiceAccountMatch
from calico.selector import Selector, ast, parse

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."
NAMESPACE_NAME_LABEL = NAMESPACE_PREFIX + "projectcalico.org/name"
NAMESPACE_PROFILE_PREFIX = "kns."
SERVICE_ACCOUNT_PROFILE_PREFIX = "ksa."

ALL = parse("all()")


def _prefixed(node: ast.Node, prefix: str) -> ast.Node:
    match node:
        case ast.Has(key=key):
            return ast.Has(prefix + key)
        case ast.LabelValue(key=key, value=value):
            return type(node)(prefix + key, value)
        case ast.LabelSet(key=key, values=values):
            return type(node)(prefix + key, values)
        case ast.Not(operand=operand):
            return ast.Not(_prefixed(operand, prefix))
        case ast.BoolOp(operands=operands):
            return type(node)(_prefixed(o, prefix) for o in operands)
    return node


def _namespace_markers(node: ast.Node) -> ast.Node:
    match node:
        case ast.All():
            return ast.Has(LABEL_NAMESPACE)
        case ast.Global():
            return ast.Not(ast.Has(LABEL_NAMESPACE))
        case ast.Not(operand=operand):
            inner = _namespace_markers(operand)
            return inner.operand if isinstance(inner, ast.Not) else ast.Not(inner)
        case ast.BoolOp(operands=operands):
            return type(node)(_namespace_markers(o) for o in operands)
    return node


# The canonical text of a tree is str(node), which is also what str(Selector(node)) returns;
# building a Selector would compile an `evaluate` function (exec) only to throw it away, and
# that function and its globals form a reference cycle that only the cyclic GC frees — with
# Felix's GC tuning (heap.tune_gc), megabytes of them piled up under policy churn (#10).


def prefix_selector(text: str, prefix: str) -> str:
    """`text` with every label key prefixed (Calico's PrefixVisitor), canonical."""
    return str(_prefixed(parse(text).root, prefix))


def namespace_selector(text: str) -> str:
    """A namespaceSelector as an endpoint selector (see the module docstring)."""
    root = _prefixed(parse(text).root, NAMESPACE_PREFIX)
    return str(_namespace_markers(root))


def service_account_selector(match: ServiceAccountMatch | None) -> str:
    """An EntityRule's serviceAccounts {names, selector} as an endpoint selector, or ""."""
    if match is None:
        return ""
    sel = match.selector
    out = prefix_selector(sel, SERVICE_ACCOUNT_PREFIX) if sel else ""
    names = match.names
    if names:
        by_name = str(ast.In(LABEL_SERVICE_ACCOUNT, names))
        out = f"({out}) && ({by_name})" if out else by_name
    return out


def _namespace_eq(namespace: str) -> str:
    return str(ast.Eq(LABEL_NAMESPACE, namespace))


def entity_selectors(entity: EntityRule | None, namespace: str) -> tuple[Selector | None, Selector | None]:
    """(positive, negated) selectors of one EntityRule of a policy in `namespace` ("" for
    global policies and profiles), as Calico's getEndpointSelector and
    combineMatchesIfPossible build them: the namespace scope applies as soon as any selector
    field is used, and a positive selector absorbs the negated one."""
    if entity is None:
        return None, None
    ns_sel_text = entity.namespaceSelector or ""
    sel_text = entity.selector or ""
    not_text = entity.notSelector or ""
    if ns_sel_text:
        ns_sel = namespace_selector(ns_sel_text)
    elif namespace:
        ns_sel = _namespace_eq(namespace)
    else:
        ns_sel = ""
    parts = [p for p in (service_account_selector(entity.serviceAccounts), sel_text)
             if p]
    selector = parts[0] if len(parts) == 1 else "(" + ") && (".join(parts) + ")" if parts else ""
    if ns_sel and (selector or not_text or ns_sel_text):
        selector = f"({ns_sel}) && ({selector})" if selector else ns_sel
    if selector and not_text:
        return parse(f"({selector}) && (!({not_text}))"), None
    return (parse(selector) if selector else None), (parse(not_text) if not_text else None)


def policy_selector(spec: NetworkPolicySpec | GlobalNetworkPolicySpec, namespace: str
                    ) -> Selector:
    """The endpoint selector of a (Global)NetworkPolicy, namespace and service-account scoped."""
    parts = []
    if spec.selector:
        parts.append(str(parse(spec.selector)))
    if namespace:
        parts.append(_namespace_eq(namespace))
    elif isinstance(spec, GlobalNetworkPolicySpec) and spec.namespaceSelector:
        parts.append(namespace_selector(spec.namespaceSelector))
    sa_sel = spec.serviceAccountSelector
    if sa_sel:
        parts.append(prefix_selector(sa_sel, SERVICE_ACCOUNT_PREFIX))
    if not parts:
        return ALL
    if len(parts) == 1:
        return parse(parts[0])
    return parse(" && ".join(f"({p})" for p in parts))


def own_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """An endpoint's or network set's own labels minus the reserved `pcns.`/`pcsa.` ones."""
    if not labels:
        return {}
    return {k: v for k, v in labels.items()
            if not k.startswith(NAMESPACE_PREFIX) and not k.startswith(SERVICE_ACCOUNT_PREFIX)}


def namespaced_labels(labels: dict[str, str], namespace: str) -> dict[str, str]:
    """Add the implicit namespace labels of a namespaced endpoint or network set."""
    labels[LABEL_NAMESPACE] = namespace
    labels[NAMESPACE_NAME_LABEL] = namespace
    return labels


def implicit_parents(profiles: list[str], namespace: str, service_account: str = "") -> tuple:
    """The profiles an endpoint inherits labels from: the ones it lists, then its namespace's
    (and service account's) profile if it did not list them."""
    out = list(profiles)
    if namespace:
        for extra in (NAMESPACE_PROFILE_PREFIX + namespace,
                      SERVICE_ACCOUNT_PROFILE_PREFIX + f"{namespace}.{service_account}"
                      if service_account else ""):
            if extra and extra not in out:
                out.append(extra)
    return tuple(out)
