"""The network configuration both plugins read from stdin, checked, with Calico's field names.

    {"cniVersion": "1.0.0", "name": "calico-net", "type": "calico",
     "nodename": "node-1",                  # else nodename_file, else the hostname
     "datastore_type": "local",             # or etcdv3 (else $DATASTORE_TYPE, else local)
     "datastore_path": "/var/lib/calico/calico.db",   # ours: the local store's file
     "etcd_endpoints": "http://127.0.0.1:2379", "etcd_ca_cert_file": ..., "etcd_cert_file": ...,
     "etcd_key_file": ..., "etcd_username": ..., "etcd_password": ...,
     "mtu": 1500, "log_level": "warning", "log_file_path": "",
     "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "false",
              "ipv4_pools": ["default-ipv4-ippool"], "ipv6_pools": ["fd00:10::/64"]},
     "ipam_lock_file": "/var/run/calico/ipam.lock",   # ours: the host-wide IPAM lock
     "calico_node_socket": "/var/run/calico/cni.sock",  # ours: calico-node's CNI socket,
                                            # read by client.py ("" = never hand over)
     "labels": {"app": "web"},              # ours: labels for every endpoint of this network
     "policy": {"type": ""},                # non-empty: profiles are someone else's business
     "container_settings": {"allow_ip_forwarding": false},
     "capabilities": {"ips": true}, "runtimeConfig": {"ips": ["10.65.0.9/32"]},
     "args": {"cni": {"ips": [...], "labels": [{"key": "app", "value": "web"}]}},
     "prevResult": {...}}

Calico's precedence is kept: the datastore fields override the environment (DATASTORE_TYPE,
ETCD_ENDPOINTS, ..., CALICO_DATASTORE_PATH). Unknown fields are ignored, as runtimes add their
own. A field of the wrong type is an INVALID_CONFIG error naming the field.

`WorkloadIDs` are the endpoint's identifiers, derived as Calico does: orchestrator `k8s` when
CNI_ARGS carry both K8S_POD_NAMESPACE and K8S_POD_NAME (pod and namespace from them), else
`cni` with the container ID as the workload id and namespace "default". Podman passes only
K8S_POD_NAME, so its containers are `cni` workloads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from calico.datastore import ConfigError, DatastoreConfig

from .spec import (
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    CmdArgs,
    CNIError,
    Result,
    check_version,
    load_json,
)

DEFAULT_NODENAME_FILE = "/var/lib/calico/nodename"
DEFAULT_IPAM_LOCK_FILE = "/var/run/calico/ipam.lock"
DEFAULT_MTU = 1500
ORCHESTRATOR_CNI = "cni"
ORCHESTRATOR_K8S = "k8s"


def _bad(field_name: str, value: Any, why: str) -> CNIError:
    return CNIError(INVALID_CONFIG, f"invalid network configuration: {field_name} {why}",
                    f"got {json.dumps(value) if _jsonable(value) else value!r}")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _str(doc: dict, key: str, default: str = "", where: str = "") -> str:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(f"{where}{key}", value, "must be a string")
    return value


def _bool(doc: dict, key: str, default: bool, where: str = "") -> bool:
    """Calico writes these as strings ("true"); JSON booleans are accepted too."""
    value = doc.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad(f"{where}{key}", value, 'must be "true" or "false"')


def _str_list(doc: dict, key: str, where: str = "") -> list[str]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}{key}", value, "must be a list of strings")
    return list(value)


def _dict(doc: dict, key: str, where: str = "") -> dict:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise _bad(f"{where}{key}", value, "must be an object")
    return value


@dataclass(frozen=True)
class IPAMConf:
    type: str
    assign_ipv4: bool = True
    assign_ipv6: bool = False
    ipv4_pools: tuple[str, ...] = ()
    ipv6_pools: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: dict) -> IPAMConf:
        where = "ipam."
        return cls(type=_str(doc, "type", where=where),
                   assign_ipv4=_bool(doc, "assign_ipv4", True, where),
                   assign_ipv6=_bool(doc, "assign_ipv6", False, where),
                   ipv4_pools=tuple(_str_list(doc, "ipv4_pools", where)),
                   ipv6_pools=tuple(_str_list(doc, "ipv6_pools", where)), raw=doc)


@dataclass(frozen=True)
class NetConf:
    cni_version: str
    name: str
    type: str
    ipam: IPAMConf
    datastore: DatastoreConfig
    nodename: str = ""
    nodename_file: str = DEFAULT_NODENAME_FILE
    mtu: int = DEFAULT_MTU
    log_level: str = "warning"
    log_file_path: str = ""
    ipam_lock_file: str = DEFAULT_IPAM_LOCK_FILE
    labels: dict[str, str] = field(default_factory=dict)
    policy_type: str = ""
    allow_ip_forwarding: bool = False
    runtime_ips: tuple[str, ...] = ()  # the `ips` capability and args.cni.ips
    address_space: str = ""  # our extension: the network's AddressSpace ("" = the default)
    prev_result: Result | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, stdin: bytes, env: dict[str, str] | None = None) -> NetConf:
        doc = load_json(stdin)
        version = check_version(doc.get("cniVersion") or "0.2.0")  # Calico's default
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("name", name, "must be a non-empty string (the network's name)")
        mtu = doc.get("mtu") or DEFAULT_MTU
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
            raise _bad("mtu", mtu, "must be an integer from 68 to 65535")
        runtime = _dict(doc, "runtimeConfig")
        cni_args = _dict(_dict(doc, "args"), "cni", "args.")
        ips = _str_list(runtime, "ips", "runtimeConfig.") + _str_list(cni_args, "ips",
                                                                       "args.cni.")
        labels = dict(_dict(doc, "labels"))
        for i, item in enumerate(cni_args.get("labels") or []):
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise _bad(f"args.cni.labels[{i}]", item, 'must be {"key": .., "value": ..}')
            labels[item["key"]] = str(item.get("value", ""))
        for key, value in labels.items():
            if not isinstance(value, str):
                raise _bad(f"labels.{key}", value, "must be a string")
        prev = doc.get("prevResult")
        try:
            prev_result = Result.from_json(prev) if prev else None
        except CNIError as err:
            raise _bad("prevResult", prev, f"is not a CNI result ({err.details})") from None
        settings = _dict(doc, "container_settings")
        return cls(
            cni_version=version, name=name, type=_str(doc, "type"),
            ipam=IPAMConf.parse(_dict(doc, "ipam")),
            datastore=_datastore(doc, env),
            nodename=_str(doc, "nodename"),
            nodename_file=_str(doc, "nodename_file", DEFAULT_NODENAME_FILE),
            mtu=mtu, log_level=_str(doc, "log_level", "warning"),
            log_file_path=_str(doc, "log_file_path"),
            ipam_lock_file=_str(doc, "ipam_lock_file", DEFAULT_IPAM_LOCK_FILE),
            labels=labels, policy_type=_str(_dict(doc, "policy"), "type", where="policy."),
            allow_ip_forwarding=_bool(settings, "allow_ip_forwarding", False,
                                      "container_settings."),
            runtime_ips=tuple(ips), address_space=_str(doc, "address_space"),
            prev_result=prev_result, raw=doc)

    def node(self) -> str:
        """Calico's DetermineNodename: the config, else the nodename file, else the hostname."""
        if self.nodename:
            return self.nodename
        try:
            with open(self.nodename_file) as f:
                name = f.read().strip()
            if name:
                return name
        except OSError:
            pass
        return socket.gethostname().split(".")[0].lower()


def _datastore(doc: dict, env: dict[str, str] | None) -> DatastoreConfig:
    merged = dict(os.environ if env is None else env)
    for key, var in (("datastore_type", "DATASTORE_TYPE"), ("etcd_endpoints", "ETCD_ENDPOINTS"),
                     ("etcd_ca_cert_file", "ETCD_CA_CERT_FILE"),
                     ("etcd_cert_file", "ETCD_CERT_FILE"), ("etcd_key_file", "ETCD_KEY_FILE"),
                     ("etcd_username", "ETCD_USERNAME"), ("etcd_password", "ETCD_PASSWORD"),
                     ("datastore_path", "CALICO_DATASTORE_PATH")):
        value = _str(doc, key)
        if value:
            merged[var] = value
    if merged.get("DATASTORE_TYPE") == "etcd":  # Calico's older spelling
        merged["DATASTORE_TYPE"] = "etcdv3"
    try:
        return DatastoreConfig.from_env(merged)
    except ConfigError as err:
        raise CNIError(INVALID_CONFIG, "invalid datastore configuration", str(err)) from None


# ---- the endpoint's identity -------------------------------------------------------------

@dataclass(frozen=True)
class WorkloadIDs:
    """Who one CNI call is for (the Kubernetes pod when CNI_ARGS name one, else the container) and
    every name derived from it: endpoint, IPAM handle, host veth, so ADD, DEL and CHECK agree."""

    node: str
    orchestrator: str
    namespace: str
    workload: str  # the container ID (cni) or "<namespace>.<pod>" (k8s)
    container_id: str
    pod: str
    endpoint: str  # CNI_IFNAME

    @classmethod
    def of(cls, conf: NetConf, args: CmdArgs) -> WorkloadIDs:
        pod_ns = args.args.get("K8S_POD_NAMESPACE", "")
        pod = args.args.get("K8S_POD_NAME", "")
        if pod_ns and pod:
            return cls(conf.node(), ORCHESTRATOR_K8S, pod_ns, f"{pod_ns}.{pod}",
                       args.container_id, pod, args.ifname)
        return cls(conf.node(), ORCHESTRATOR_CNI, "default", args.container_id,
                   args.container_id, "", args.ifname)

    def spec_ids(self) -> dict[str, str]:
        ids = {"node": self.node, "orchestrator": self.orchestrator,
               "containerID": self.container_id, "endpoint": self.endpoint}
        if self.pod:
            ids["pod"] = self.pod
        return ids

    def endpoint_name(self) -> str:
        from calico.api import ValidationError
        from calico.api.endpoints import workload_endpoint_name

        try:
            return workload_endpoint_name({**self.spec_ids(), "interfaceName": "*"})
        except (ValidationError, ValueError) as err:
            raise CNIError(INVALID_ENVIRONMENT, "cannot name the WorkloadEndpoint",
                           f"{err} (node {self.node!r}, container {self.container_id!r}, "
                           f"interface {self.endpoint!r})") from None

    def handle_id(self, network: str) -> str:
        """Calico's IPAM handle: `<network name>.<container id>`."""
        return f"{network}.{self.container_id}"

    def host_veth_name(self) -> str:
        """`cali` + 11 hex digits of a SHA-1. Under k8s it is Calico's exact name (of
        "<namespace>.<pod>"); otherwise we hash the endpoint's name rather than take the
        first 11 characters of the container ID as Calico does, so two interfaces (or
        networks) of one container cannot collide."""
        key = self.workload if self.orchestrator == ORCHESTRATOR_K8S else self.endpoint_name()
        return "cali" + hashlib.sha1(key.encode()).hexdigest()[:11]


def requested_ips(conf: NetConf, args: CmdArgs) -> list[str]:
    """Explicit addresses: CNI_ARGS IP=a[,b] (Calico's), the `ips` capability, args.cni.ips."""
    texts = [t for t in args.args.get("IP", "").split(",") if t.strip()]
    texts += list(conf.runtime_ips)
    out = []
    for text in texts:
        try:
            out.append(str(ipaddress.ip_interface(text.strip()).ip))
        except ValueError:
            raise CNIError(INVALID_CONFIG, f"invalid requested IP address {text!r}",
                           "from CNI_ARGS IP=, runtimeConfig.ips or args.cni.ips") from None
    return out


def endpoint_labels(conf: NetConf, args: CmdArgs) -> dict[str, str]:
    """Labels from the config, then CNI_ARGS LABELS=k1=v1,k2=v2 (ours)."""
    labels = dict(conf.labels)
    for pair in (p for p in args.args.get("LABELS", "").split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CNIError(INVALID_ENVIRONMENT, "invalid CNI_ARGS LABELS",
                           f"{pair!r} is not key=value (LABELS=k1=v1,k2=v2)")
        labels[key.strip()] = value.strip()
    return labels

