"""The value types of Felix's configuration parameters (see `felixparams` for the table).

A type reads one parameter's values from both kinds of source and returns the resource's JSON
form: `check(value)` for a value from a FelixConfiguration resource, `parse(text)` for a string
from FELIX_<NAME> or a config file. Both raise ValueError (or FieldError) with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .base import FieldError, check_dns1123_label
from .nets import check_duration, format_go_duration, parse_cidr, parse_go_duration, parse_ip

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


class ParamType:
    """How one parameter's values are read. Subclasses override `check`; `parse` defaults
    to checking the text itself."""

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        return self.check(text.strip())


class Bool(ParamType):
    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("is not a boolean")
        return value

    def parse(self, text: str) -> bool:
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError("is not a boolean (true/false)")


@dataclass(frozen=True)
class Int(ParamType):
    min: int | None = None
    max: int | None = None

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("is not an integer")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            low = "" if self.min is None else self.min
            high = "" if self.max is None else self.max
            raise ValueError(f"is out of range ({low}..{high})")
        return value

    def parse(self, text: str) -> int:
        try:
            return self.check(int(text.strip(), 0))
        except ValueError as err:
            if "range" in str(err):
                raise
            raise ValueError("is not an integer") from None


@dataclass(frozen=True)
class Duration(ParamType):
    """A metav1.Duration in the resource; a number of `unit` in the environment."""

    unit: str = "s"  # "s" or "ms"
    allow_negative: bool = False

    def check(self, value: Any) -> str:
        text = check_duration(value)
        if not self.allow_negative and text.startswith("-"):
            raise ValueError("must not be negative")
        return text

    def parse(self, text: str) -> str:
        text = text.strip()
        try:
            number = float(text)
        except ValueError:
            return self.check(text)  # also accept Go syntax ("90s") from a local source
        scale = 10**9 if self.unit == "s" else 10**6
        return self.check(format_go_duration(round(number * scale)))


@dataclass(frozen=True)
class Enum(ParamType):
    choices: tuple[str, ...]
    case_sensitive: bool = True  # Calico's validator has exact patterns for most enums

    def check(self, value: Any) -> str:
        if isinstance(value, str):
            if value in self.choices:
                return value
            if not self.case_sensitive and value.lower() in {c.lower() for c in self.choices}:
                return value
        raise ValueError(f"is not one of {', '.join(self.choices)}")

    def parse(self, text: str) -> str:
        for choice in self.choices:
            if choice.lower() == text.strip().lower():
                return choice
        raise ValueError(f"is not one of {', '.join(self.choices)}")


@dataclass(frozen=True)
class Str(ParamType):
    pattern: str | None = None
    what: str = "string"

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("is not a string")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ValueError(f"is not a valid {self.what}")
        return value


class Regexp(ParamType):
    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("is not a string")
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"is not a valid regular expression: {err}") from None
        return value


@dataclass(frozen=True)
class IP(ParamType):
    version: int

    def check(self, value: Any) -> str:
        if parse_ip(value).version != self.version:
            raise ValueError(f"is not an IPv{self.version} address")
        return value


class CommaList(ParamType):
    """A list in the resource, comma-separated in the environment; `item` checks each."""

    def __init__(self, item: ParamType, max_items: int | None = None) -> None:
        self.item, self.max_items = item, max_items

    def check(self, value: Any) -> list:
        if not isinstance(value, list):
            raise ValueError("is not a list")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValueError(f"has more than {self.max_items} items")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self.item.check(item))
            except FieldError as err:
                raise FieldError(err.reason, field=(i, *err.field), value=err.value) from None
            except ValueError as err:
                raise FieldError(str(err), field=(i,), value=item) from None
        return out

    def parse(self, text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if text.strip() in ("", "[]", "none"):
            items = []
        return self.check([self.item.parse(t) for t in items])


@dataclass(frozen=True)
class CIDR(ParamType):
    version: int | None = None

    def check(self, value: Any) -> str:
        net = parse_cidr(value)
        if self.version and net.version != self.version:
            raise ValueError(f"is not an IPv{self.version} CIDR")
        return value


_PROTOCOLS = ("tcp", "udp", "sctp")


class ProtoPort(ParamType):
    """A failsafe port: {protocol, port, net} in the resource, "[proto:][net:]port" as text."""

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict) or not set(value) <= {"protocol", "port", "net"}:
            raise ValueError("is not a {protocol, port, net} object")
        proto = value.get("protocol")
        if proto is not None and (not isinstance(proto, str) or proto.lower() not in _PROTOCOLS):
            raise FieldError("is not TCP, UDP or SCTP", field=("protocol",), value=proto)
        port = value.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise FieldError("is not a valid port (0-65535)", field=("port",), value=port)
        if value.get("net") not in (None, ""):
            try:
                parse_cidr(value["net"])
            except ValueError as err:
                raise FieldError(str(err), field=("net",), value=value["net"]) from None
        return value

    def parse(self, text: str) -> dict:
        proto, net, port = "tcp", None, text
        head, sep, port = text.rpartition(":")
        if sep:
            first, sep2, rest = head.partition(":")
            if first.lower() in _PROTOCOLS:
                proto, net = first, (rest.strip("[]") if sep2 else None)
            else:
                net = head.strip("[]")
        if not port.isdigit():
            raise ValueError("is not a valid port entry ([protocol:][net:]port)")
        out: dict[str, Any] = {"protocol": proto.upper(), "port": int(port)}
        if net:
            out["net"] = net
        return self.check(out)


class PortRange(ParamType):
    """numorstring.Port: a number or "min:max" (no named ports here)."""

    def check(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            low = high = value
        elif isinstance(value, str) and re.fullmatch(r"\d+(:\d+)?", value):
            low, _, high = value.partition(":")
            low, high = int(low), int(high or low)
        else:
            raise ValueError('is not a port or port range ("min:max")')
        if not 1 <= low <= high <= 65535:
            raise ValueError("is not a valid port range (1-65535, min <= max)")
        return value

    def parse(self, text: str) -> Any:
        text = text.strip()
        return self.check(int(text) if text.isdigit() else text)


_KV_ITEM = re.compile(r"^\s*(\w+)=(.*)$")


class KeyValueList(ParamType):
    """A string "key=value,key=value" (featureDetectOverride, featureGates)."""

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("is not a string")
        for item in value.split(","):
            if item and not _KV_ITEM.match(item):
                raise ValueError('is not a list of key=value pairs ("a=b,c=d")')
        return value


@dataclass(frozen=True)
class StrMap(ParamType):
    """A map of strings in the resource; "key=value,key=value" as text."""

    key_pattern: str | None = None

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ValueError("is not a map")
        for key, item in value.items():
            if self.key_pattern and not re.fullmatch(self.key_pattern, str(key)):
                raise FieldError("is not a valid key", field=(key,), value=key)
            if not isinstance(item, str):
                raise FieldError("is not a string", field=(key,), value=item)
        return value

    def parse(self, text: str) -> dict:
        pairs = [p.partition("=") for p in text.split(",") if p.strip()]
        return self.check({k.strip(): v.strip() for k, _, v in pairs})


class RouteTableRange(ParamType):
    """{min, max} within 1..250 (the deprecated single range); "min-max" as text."""

    limit = 250

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict) or set(value) != {"min", "max"}:
            raise ValueError("is not a {min, max} object")
        low, high = value["min"], value["max"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise ValueError("min and max must be integers")
        if not 1 <= low <= high <= self.limit:
            raise ValueError(f"is not a valid range of route table indices (1..{self.limit}, "
                             "min <= max)")
        return value

    def parse(self, text: str) -> dict:
        low, _, high = text.strip().partition("-")
        try:
            return self.check({"min": int(low), "max": int(high)})
        except ValueError as err:
            raise ValueError(str(err)) from None


class RouteTableIDRange(RouteTableRange):
    limit = 2**32 - 1


class RouteTableRanges(CommaList):
    def __init__(self) -> None:
        super().__init__(RouteTableIDRange())

    def check(self, value: Any) -> list:
        ranges = super().check(value)
        if sum(r["max"] - r["min"] + 1 for r in ranges) > 0xFFFF:
            raise ValueError("targets too many tables (at most 65535)")
        return ranges


class HealthTimeoutOverride(ParamType):
    """{name, timeout}; "name=duration" as text."""

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict) or set(value) != {"name", "timeout"}:
            raise ValueError("is not a {name, timeout} object")
        if not isinstance(value["name"], str) or not re.fullmatch(r"[a-zA-Z0-9_ -]+", value["name"]):
            raise FieldError("is not a valid name", field=("name",), value=value["name"])
        try:
            timeout = Duration().check(value["timeout"])
        except ValueError as err:
            raise FieldError(str(err), field=("timeout",), value=value["timeout"]) from None
        return {"name": value["name"], "timeout": timeout}

    def parse(self, text: str) -> dict:
        name, _, timeout = text.partition("=")
        return self.check({"name": name.strip(), "timeout": Duration().parse(timeout)})


_CONNTRACK_TIMERS = ("creationGracePeriod", "tcpSynSent", "tcpEstablished", "tcpFinsSeen",
                     "tcpResetSeen", "udpTimeout", "genericTimeout", "icmpTimeout")


class ConntrackTimeouts(ParamType):
    """BPF conntrack timers: each a duration or "Auto"."""

    def check(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ValueError("is not an object")
        for key, item in value.items():
            if key not in _CONNTRACK_TIMERS:
                raise FieldError("is not a known timer", field=(key,), value=key)
            if item != "Auto":
                try:
                    parse_go_duration(item)
                except ValueError as err:
                    raise FieldError(f"{err} or \"Auto\"", field=(key,), value=item) from None
        return value

    def parse(self, text: str) -> dict:
        by_lower = {k.lower(): k for k in _CONNTRACK_TIMERS}
        pairs = [p.partition("=") for p in text.split(",") if p.strip()]
        return self.check({by_lower.get(k.strip().lower(), k): v.strip() for k, _, v in pairs})



def _iface_list_check(value: Any) -> str:
    for item in Str().check(value).split(","):
        if not (re.fullmatch(r"/\S+/", item) or re.fullmatch(r"[a-zA-Z0-9_.-]{1,15}", item)):
            raise ValueError("is not a comma-separated list of interface names or /regexps/")
    return value


class IfaceExclude(ParamType):
    def check(self, value: Any) -> str:
        return _iface_list_check(value)


def _region(value: Any) -> str:
    text = Str().check(value)
    if len(text) > 63 - len("openstack-region-"):
        raise ValueError("is too long (at most 46 characters)")
    return check_dns1123_label(text) if text else text


class Region(ParamType):
    def check(self, value: Any) -> str:
        return _region(value)


@dataclass(frozen=True)
class LogSeverity(Enum):
    """A log channel's severity. A local source (FELIX_<NAME>, felix.cfg) may also say `none`
    (or leave it empty) to turn the channel off, as Felix's docs allow; a resource may not."""

    def parse(self, text: str) -> str:
        if text.strip().lower() in ("", "none"):
            return "None"
        return super().parse(text)


LOG_LEVEL = Enum(("Trace", "Debug", "Info", "Warning", "Error", "Fatal"))
LOG_SEVERITY = LogSeverity(LOG_LEVEL.choices)
ON_OFF = Enum(("Enabled", "Disabled"))
PORT = Int(0, 65535)
IFACE = r"[a-zA-Z0-9_.-]{1,15}"
IFACE_FILTER = r"[a-zA-Z0-9:._+-]{1,15}"
HOST_ADDRESS = r"[a-zA-Z0-9:._+-]{1,64}"
HOSTNAME = r"[a-zA-Z0-9_.-]+"
