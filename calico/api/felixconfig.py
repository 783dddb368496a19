"""FelixConfiguration: Felix's parameters as a datastore resource.

The spec model is generated from the parameter table in `felixparams`, so the resource and
Felix's config loader (environment, config file) can never disagree on a name, a type or a
range: one spec field per parameter that has a JSON name, each checked by its parameter type.

Calico stores a FelixConfiguration as written: nothing is defaulted here (the defaults live in
the table and are applied by Felix's loader, below every explicit source). The resource named
"default" holds cluster-wide values; "node.<nodename>" holds per-host overrides. Durations are
stored in Go's canonical form ("90s" is kept as "1m30s").
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, create_model, model_validator

from .base import CalicoModel, FieldError, Resource
from .felixparams import BY_FIELD, PARAMS, Param
from .felixtypes import ParamType


def _checker(ptype: ParamType) -> Any:
    def check(value: Any) -> Any:
        return None if value is None else ptype.check(value)
    return check


class _FelixSpecBase(CalicoModel):
    """Cross-parameter rules of libcalico-go's `validateFelixConfigSpec`."""

    @model_validator(mode="after")
    def _rules(self) -> Any:
        single, ranges = self.__dict__["routeTableRange"], self.__dict__["routeTableRanges"]
        if single is not None and ranges:
            raise FieldError("cannot be set when routeTableRanges is also set",
                             field=("routeTableRange",), value=single)
        return self

    def params(self) -> dict[Param, Any]:
        """The parameters this resource sets, with their values (for Felix's loader)."""
        return {BY_FIELD[name]: value for name, value in self if value is not None}


FelixConfigurationSpec = create_model(
    "FelixConfigurationSpec",
    __base__=_FelixSpecBase,
    __doc__="The spec of a FelixConfiguration: one optional field per parameter.",
    **{p.field: (Annotated[Any, BeforeValidator(_checker(p.type))], None)
       for p in PARAMS if p.field},
)


class FelixConfiguration(Resource, kind="FelixConfiguration", plural="felixconfigurations"):
    spec: FelixConfigurationSpec = FelixConfigurationSpec()

    @property
    def node(self) -> str | None:
        """The node a per-host configuration ("node.<nodename>") applies to, else None."""
        return self.name[len("node."):] if self.name.startswith("node.") else None
