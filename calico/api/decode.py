"""Reading a document the way Calico's Go decoder reads it, where that is looser than our
models: field names matched without regard to case, and YAML scalars given for string fields.

calicoctl decodes a manifest with sigs.k8s.io/yaml (Calico's fork): the YAML becomes JSON,
guided by the Go type it is decoded into, then encoding/json fills the struct. Two rules of
that path matter to people writing manifests:

- encoding/json matches a key to a struct field by exact name first and then without regard
  to case, so `spec: {Order: 10}` sets `order`. Keys of maps (labels, annotations) are data
  and stay as they are.
- where the Go field is a string (not a number-or-string type such as a port), a YAML number
  or boolean becomes its text: `labels: {version: 1}` is "1", `rev: 2.5` is "2.5",
  `enabled: yes` is "true". Numbers are written as Go's strconv.FormatFloat(v, 'g', -1, 64)
  writes them (`1e+06` for a million given as a float). Map keys that are numbers or booleans
  become their text the same way.

`conform(model, data)` applies both rules against a model's fields and returns new data; it
leaves alone what it cannot place. `calico.api.base.validate` calls it only after a document
has failed validation as written, and validates the conformed document once more: manifests
written in our (Calico's documented) spelling pay nothing for it.
"""

from __future__ import annotations

import decimal
import functools
import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel

_STR = "str"


def go_text(value: Any) -> Any:
    """A YAML scalar as Go's decoder writes it into a string field; other values unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return value


def go_float(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): shortest digits, exponent form when the
    decimal exponent is below -4 or at least 6 (Go's rule for the shortest precision)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits)) or "0"
    point = len(text) + exponent  # digits before the decimal point
    exp = point - 1
    minus = "-" if sign else ""
    if text == "0":
        return f"{minus}0"
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def conform(model: type[BaseModel], data: Any) -> Any:
    """`data` with field names and string scalars conformed to `model` (see the module doc)."""
    return _conform(("model", model), data)


def _conform(shape: tuple, data: Any) -> Any:
    kind = shape[0]
    if kind == _STR:
        return go_text(data)
    if kind == "model" and isinstance(data, dict):
        fields = _fields(shape[1])
        out: dict[Any, Any] = {}
        for key, value in data.items():
            name = key if key in fields else _fold(shape[1]).get(
                key.lower() if isinstance(key, str) else key, key)
            out[name] = _conform(fields[name], value) if name in fields else value
        return out
    if kind == "list" and isinstance(data, list):
        return [_conform(shape[1], item) for item in data]
    if kind == "dict" and isinstance(data, dict):
        return {go_text(k): _conform(shape[1], v) for k, v in data.items()}
    return data


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, tuple]:
    out = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = _shape(info.annotation)
    return out


@functools.cache
def _fold(model: type[BaseModel]) -> dict[str, str]:
    return {name.lower(): name for name in _fields(model)}


def _shape(tp: Any) -> tuple:
    """What a type annotation asks of the data: ("str",), ("model", cls), ("list", shape),
    ("dict", value shape), or ("any",) for what is left alone."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _shape(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        shapes = [_shape(m) for m in members]
        if len(shapes) == 1 or all(s == shapes[0] for s in shapes):
            return shapes[0]
        structured = [s for s in shapes if s[0] in ("model", "list", "dict")]
        # A number-or-string (a port, an AS number) keeps its scalars as they are.
        return structured[0] if len(structured) == 1 else ("any",)
    if origin is Literal:
        values = typing.get_args(tp)
        return (_STR,) if all(isinstance(v, str) for v in values) else ("any",)
    if origin is list:
        return ("list", _shape(typing.get_args(tp)[0]))
    if origin is dict:
        return ("dict", _shape(typing.get_args(tp)[1]))
    if tp is str:
        return (_STR,)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return ("model", tp)
    return ("any",)


__all__ = ["conform", "go_text"]
