"""The CNI protocol (spec 1.0.0) as a plugin sees it: environment, errors, results, versions.

A runtime runs a plugin with CNI_COMMAND (ADD, DEL, CHECK, VERSION), CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_ARGS ("K=V;K=V") and CNI_PATH in the environment and the network
configuration as JSON on stdin. The plugin answers on stdout: a result (ADD), nothing (DEL,
CHECK), the supported versions (VERSION), or an error object `{"cniVersion", "code", "msg",
"details"}` with a non-zero exit status.

`run_plugin(handlers, ...)` is that skeleton (libcni's skel): it reads and checks the
environment and stdin, answers VERSION itself, calls the handler for the command and turns
every failure into a CNI error — never a traceback on stdout.

`Result` is the 1.0.0 result; `Result.to_json(version)` renders it in the shape of the version
the configuration asked for (0.3.x/0.4.0 add `version` to each IP; 0.1.0/0.2.0 use `ip4`/`ip6`),
and `Result.from_json` reads any of those shapes (a delegated IPAM plugin's answer, a
`prevResult`).

The helpers both plugins (`calico`, `calico-ipam`) share live at the end, so neither plugin
module imports the other for them: `require_check_version`, `open_backend` and
`datastore_error` (a datastore failure as a CNI error; unreachable means try again later).
This module imports no datastore code at load time: VERSION and a malformed request are
answered without it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:  # the datastore (and pydantic under it) loads only when a request needs it
    from calico.datastore import DatastoreConfig
    from calico.datastore.kv import Backend

SPEC_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")

# The spec's well-known error codes (1-99 are reserved to the spec).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
# Ours (100 and up are the plugin's): what went wrong, in Calico's terms.
IPAM_FAILURE = 100
DATASTORE_FAILURE = 101
DATAPLANE_FAILURE = 102
CHECK_FAILED = 103
INTERNAL_ERROR = 199

_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class CNIError(Exception):
    """A failure reported to the runtime as a CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, version: str = SPEC_VERSION) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def check_version(version: Any) -> str:
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CNIError(INCOMPATIBLE_VERSION, f"unsupported CNI version {version!r}",
                       f"this plugin supports {', '.join(SUPPORTED_VERSIONS)}")
    return version


# ---- the environment ---------------------------------------------------------------------

@dataclass(frozen=True)
class CmdArgs:
    """One invocation: what the runtime put in the environment, and stdin."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)  # CNI_ARGS, parsed
    path: tuple[str, ...] = ()
    stdin: bytes = b""
    env: Mapping[str, str] = field(default_factory=dict)  # the whole environment (delegation)


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS "IgnoreUnknown=1;K8S_POD_NAME=web" -> dict; a pair without '=' is an error."""
    out: dict[str, str] = {}
    for pair in text.split(";"):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CNIError(INVALID_ENVIRONMENT, "invalid CNI_ARGS",
                           f"{pair!r} is not KEY=VALUE (CNI_ARGS is 'K1=V1;K2=V2')")
        out[key.strip()] = value.strip()
    return out


def parse_env(env: Mapping[str, str], stdin: bytes) -> CmdArgs:
    """Read and check the CNI_* variables the command needs (as libcni's skel does)."""
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CNIError(INVALID_ENVIRONMENT, "required env variable CNI_COMMAND is missing",
                       f"expected one of {', '.join(COMMANDS)}")
    if command not in COMMANDS:
        raise CNIError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}",
                       f"expected one of {', '.join(COMMANDS)}")
    if command == "VERSION":
        return CmdArgs(command=command, stdin=stdin, env=env)
    required = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
                "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
                "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH")}[command]
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise CNIError(INVALID_ENVIRONMENT,
                       f"required env variable{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing)} missing", f"CNI_COMMAND={command}")
    container_id = env["CNI_CONTAINERID"]
    if not _CONTAINER_ID.match(container_id):
        raise CNIError(INVALID_ENVIRONMENT, "invalid characters in CNI_CONTAINERID",
                       f"{container_id!r} (letters, digits, '_', '.', '-'; not first)")
    ifname = env["CNI_IFNAME"]
    if len(ifname) > 15 or ifname in (".", "..") or re.search(r"[/:\s]", ifname):
        raise CNIError(INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {ifname!r}",
                       "an interface name is 1-15 characters without '/', ':' or spaces")
    return CmdArgs(command=command, container_id=container_id,
                   netns=env.get("CNI_NETNS", ""), ifname=ifname,
                   args=parse_cni_args(env.get("CNI_ARGS", "")),
                   path=tuple(p for p in env.get("CNI_PATH", "").split(os.pathsep) if p),
                   stdin=stdin, env=env)


def load_json(stdin: bytes) -> dict[str, Any]:
    """The network configuration: a JSON object, or a DECODE_FAILURE error."""
    try:
        doc = json.loads(stdin.decode() if stdin else "")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CNIError(DECODE_FAILURE, "failed to decode the network configuration on stdin",
                       str(err)) from None
    if not isinstance(doc, dict):
        raise CNIError(DECODE_FAILURE, "the network configuration must be a JSON object",
                       f"got {type(doc).__name__}")
    return doc


# ---- results -----------------------------------------------------------------------------

@dataclass
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""


@dataclass
class IPConfig:
    address: str  # CIDR: "10.65.0.3/32"
    gateway: str = ""
    interface: int | None = None  # index into Result.interfaces

    @property
    def version(self) -> int:
        return ipaddress.ip_interface(self.address).version


@dataclass
class Route:
    dst: str
    gw: str = ""


@dataclass
class Result:
    """A CNI result in the 1.0.0 model: `to_json(version)` renders it in the shape that cniVersion
    expects, `from_json` reads the shape of any supported version."""

    interfaces: list[Interface] = field(default_factory=list)
    ips: list[IPConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    dns: dict[str, Any] = field(default_factory=dict)

    def to_json(self, version: str = SPEC_VERSION) -> dict[str, Any]:
        if version_tuple(version) < (0, 3, 0):
            return self._to_legacy(version)
        with_version = version_tuple(version) < (1, 0, 0)
        ips = []
        for ip in self.ips:
            doc: dict[str, Any] = {"version": str(ip.version)} if with_version else {}
            doc["address"] = ip.address
            if ip.gateway:
                doc["gateway"] = ip.gateway
            if ip.interface is not None:
                doc["interface"] = ip.interface
            ips.append(doc)
        out: dict[str, Any] = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [{k: v for k, v in vars(i).items() if v}
                                 for i in self.interfaces]
        out["ips"] = ips
        if self.routes:
            out["routes"] = [{k: v for k, v in vars(r).items() if v} for r in self.routes]
        out["dns"] = self.dns
        return out

    def _to_legacy(self, version: str) -> dict[str, Any]:
        """0.1.0/0.2.0: one `ip4` and one `ip6` section, routes split by family."""
        out: dict[str, Any] = {"cniVersion": version}
        for family in (4, 6):
            ips = [ip for ip in self.ips if ip.version == family]
            if not ips:
                continue
            section: dict[str, Any] = {"ip": ips[0].address}
            if ips[0].gateway:
                section["gateway"] = ips[0].gateway
            routes = [{k: v for k, v in vars(r).items() if v} for r in self.routes
                      if ipaddress.ip_network(r.dst, strict=False).version == family]
            if routes:
                section["routes"] = routes
            out[f"ip{family}"] = section
        out["dns"] = self.dns
        return out

    @classmethod
    def from_json(cls, doc: Any) -> Result:
        """A result of any supported version (a delegated plugin's answer, a prevResult)."""
        if not isinstance(doc, dict):
            raise CNIError(DECODE_FAILURE, "a CNI result must be a JSON object",
                           f"got {type(doc).__name__}")
        try:
            result = cls(dns=doc.get("dns") or {})
            for i in doc.get("interfaces") or []:
                result.interfaces.append(Interface(i["name"], i.get("mac", ""),
                                                   i.get("sandbox", "")))
            for ip in doc.get("ips") or []:
                ipaddress.ip_interface(ip["address"])
                result.ips.append(IPConfig(ip["address"], ip.get("gateway", ""),
                                           ip.get("interface")))
            for r in doc.get("routes") or []:
                result.routes.append(Route(r["dst"], r.get("gw", "")))
            for family in ("ip4", "ip6"):
                section = doc.get(family)
                if section:
                    ipaddress.ip_interface(section["ip"])
                    result.ips.append(IPConfig(section["ip"], section.get("gateway", "")))
                    for r in section.get("routes") or []:
                        result.routes.append(Route(r["dst"], r.get("gw", "")))
        except (KeyError, TypeError, ValueError) as err:
            raise CNIError(DECODE_FAILURE, "failed to decode a CNI result",
                           f"{type(err).__name__}: {err}") from None
        return result


# ---- the skeleton ------------------------------------------------------------------------

Handler = Callable[[CmdArgs], "Result | None"]


def _requested_version(stdin: bytes) -> str:
    """The config's cniVersion if it is readable and supported (for error objects)."""
    try:
        version = json.loads(stdin or b"{}").get("cniVersion")
    except (ValueError, AttributeError):
        return SPEC_VERSION
    return version if version in SUPPORTED_VERSIONS else SPEC_VERSION


def run_plugin(handlers: Mapping[str, Handler], *, about: str = "",
               env: Mapping[str, str] | None = None, stdin: bytes | None = None,
               stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one CNI command; returns the exit status (0 ok, 1 error)."""
    env = os.environ if env is None else env
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if stdin is None:
        stdin = b"" if env.get("CNI_COMMAND") == "VERSION" and sys.stdin.isatty() \
            else sys.stdin.buffer.read()
    version = _requested_version(stdin)
    try:
        if not env.get("CNI_COMMAND"):
            if about:
                print(about, file=stderr)
            raise CNIError(INVALID_ENVIRONMENT, "required env variable CNI_COMMAND is missing",
                           "this program is a CNI plugin: a container runtime runs it")
        args = parse_env(env, stdin)
        if args.command == "VERSION":
            json.dump({"cniVersion": SPEC_VERSION, "supportedVersions":
                       list(SUPPORTED_VERSIONS)}, stdout)
            stdout.write("\n")
            return 0
        result = handlers[args.command](args)
        if result is not None:
            json.dump(result.to_json(version), stdout)
            stdout.write("\n")
        return 0
    except CNIError as err:
        json.dump(err.to_json(version), stdout)
        stdout.write("\n")
        return 1
    except Exception as err:  # the runtime must get a CNI error, never a traceback
        traceback.print_exc(file=stderr)
        json.dump(CNIError(INTERNAL_ERROR, f"internal error: {type(err).__name__}: {err}",
                           "see the plugin's stderr").to_json(version), stdout)
        stdout.write("\n")
        return 1


# ---- shared by both plugins --------------------------------------------------------------

class CheckConf(Protocol):
    """What CHECK needs of a network configuration (netconf.NetConf has it)."""

    @property
    def cni_version(self) -> str: ...

    @property
    def prev_result(self) -> Result | None: ...


def require_check_version(conf: CheckConf) -> None:
    if version_tuple(conf.cni_version) < (0, 4, 0):
        raise CNIError(INCOMPATIBLE_VERSION, "CHECK is not supported for cniVersion "
                       f"{conf.cni_version}", "CHECK needs cniVersion 0.4.0 or later")
    if conf.prev_result is None:
        raise CNIError(INVALID_CONFIG, "CHECK needs prevResult in the network configuration",
                       "the runtime passes the cached result of ADD as prevResult")


def datastore_error(what: str, err: Exception) -> CNIError:
    from calico.datastore.kv import Unreachable

    code = TRY_AGAIN_LATER if isinstance(err, Unreachable) else DATASTORE_FAILURE
    return CNIError(code, what, f"{type(err).__name__}: {err}")


def open_backend(config: DatastoreConfig) -> Backend:
    from calico.datastore import connect
    from calico.datastore.kv import DatastoreError

    try:
        return connect(config)
    except DatastoreError as err:
        raise datastore_error("cannot open the datastore", err) from None
