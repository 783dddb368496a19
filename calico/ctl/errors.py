"""calicoctl's error wording: Calico's key phrases first, our detail after.

Scripts written against Calico's calicoctl look for a few phrases (`update conflict`,
`resource does not exist`, `resource already exists`, `failed to create any '<Kind>'
resources`, `is not supported on`, `unknown shorthand flag`). Every message calicoctl prints
for those cases starts with Calico's phrase and identifier (`IPPool(pool1)`,
`NetworkPolicy(ns/name)`), then keeps our clearer detail.
"""

from __future__ import annotations

from typing import Any

import click

from calico.datastore.errors import (
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceError,
    ResourceNotFound,
)

from .session import CtlError


def identifier(kind: str, name: str | None, namespace: str | None = None) -> str:
    """Calico's resource identifier in errors: `Kind(name)` or `Kind(namespace/name)`."""
    return f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"


def calico_message(err: Exception) -> str:
    """The message for a datastore error, led by Calico's phrase for it."""
    if isinstance(err, ResourceError):
        ident = identifier(err.kind, err.name, err.namespace)
        if isinstance(err, ResourceConflict):
            return (f"update conflict: {ident}: resourceVersion {err.expected} is stale "
                    f"(current {err.actual})")
        if isinstance(err, ResourceNotFound):
            return f"resource does not exist: {ident}"
        if isinstance(err, ResourceAlreadyExists):
            return f"resource already exists: {ident}"
    return str(err)


def not_supported(operation: str, ident: str, reason: str = "") -> CtlError:
    """Calico's ErrorOperationNotSupported: `operation delete is not supported on X: why`."""
    return CtlError(f"operation {operation} is not supported on {ident}"
                    + (f": {reason}" if reason else ""))


def failed_summary(action: str, kinds: set[str], total: int, errors: list[str]) -> str:
    """Calico's line when nothing of a create/apply/replace/validate went through."""
    joined = "[" + " ".join(errors) + "]"
    if total == 1 and len(kinds) == 1:
        return f"failed to {action} '{next(iter(kinds))}' resource: {joined}"
    if len(kinds) == 1:
        return f"failed to {action} any '{next(iter(kinds))}' resources: {joined}"
    return f"failed to {action} any resources: {joined}"


def cobra_flag_error(option: str) -> str:
    """What Calico's (cobra) calicoctl says about a flag it does not know."""
    if option.startswith("--"):
        return f"unknown flag: {option}"
    return f"unknown shorthand flag: '{option.lstrip('-')[:1]}' in {option}"


class CalicoGroup(click.Group):
    """The calicoctl command group: an unknown flag anywhere below it is reported in Calico's
    words (with click's usage line) and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as err:
            usage = click.UsageError(cobra_flag_error(err.option_name), err.ctx)
            usage.exit_code = 1  # Calico's calicoctl exits 1 on a bad flag
            raise usage from None
