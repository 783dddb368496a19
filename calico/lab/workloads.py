"""Lab workloads: a network namespace each, attached to its host by the real CNI plugin.

ADD runs our `calico` CNI plugin (spec 1.0.0) inside the host's namespace, exactly as a
container runtime on that host would: it allocates addresses with calico-ipam (from blocks
affine to the host), creates the veth with proxy ARP, the /32 and /128 routes tagged with
Felix's protocol, and writes the WorkloadEndpoint (labels from CNI args) and the network's
Profile. DEL runs the plugin with DEL and then deletes the namespace.

The network is called `calico-lab`: its Profile lets every lab workload talk to every other
(`has(calico-lab)`) until a policy says otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .proc import LabError, netns_add, netns_delete, sh

NETWORK = "calico-lab"


def netconf(host: str, datastore_env: dict[str, str], ipv6: bool, lock_file: str,
            labels: dict[str, str], space: str | None = None, ip: str | None = None
            ) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0", "name": NETWORK, "type": "calico", "nodename": host,
        "mtu": 1500, "log_level": "warning", "ipam_lock_file": lock_file,
        # the host's calico-node serves its CNI socket in the host's run dir, beside the lock
        "calico_node_socket": os.path.join(os.path.dirname(lock_file), "cni.sock"),
        "ipam": {"type": "calico-ipam", "assign_ipv4": "true",
                 "assign_ipv6": "true" if ipv6 else "false"},
        "args": {"cni": {"labels": [{"key": k, "value": v} for k, v in labels.items()]}},
    }
    if space:  # our extension: the workload's address space (IPv4 only)
        conf["address_space"] = space
    if ip:
        conf["args"]["cni"]["ips"] = [ip]
    conf["datastore_type"] = datastore_env["DATASTORE_TYPE"]
    if datastore_env["DATASTORE_TYPE"] == "local":
        conf["datastore_path"] = datastore_env["CALICO_DATASTORE_PATH"]
    else:
        conf["etcd_endpoints"] = datastore_env["ETCD_ENDPOINTS"]
    return conf


def _cni(command: str, host_ns: str, wl_ns: str, name: str, conf: dict[str, Any]
         ) -> dict[str, Any] | None:
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "CNI_CONTAINERID": name, "CNI_NETNS": f"/run/netns/{wl_ns}", "CNI_IFNAME": "eth0",
           "CNI_PATH": bindir}
    proc = sh("ip", "netns", "exec", host_ns, os.path.join(bindir, "calico"), check=False,
              input=json.dumps(conf), env=env, timeout=60)
    if proc.returncode != 0:
        try:
            err = json.loads(proc.stdout)
            why = f"{err.get('msg')}: {err.get('details')}"
        except (json.JSONDecodeError, AttributeError):
            why = (proc.stderr or proc.stdout).strip()
        raise LabError(f"CNI {command} of workload {name} on {host_ns} failed: {why}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def add(name: str, host: dict, wl_ns: str, datastore_env: dict[str, str], ipv6: bool,
        lock_file: str, labels: dict[str, str], space: str | None = None,
        ip: str | None = None) -> dict[str, Any]:
    """Create the workload's namespace and run CNI ADD (in address space `space`, with the
    explicit address `ip`, when given); returns its state record."""
    netns_add(wl_ns)
    conf = netconf(host["name"], datastore_env, ipv6, lock_file, labels, space, ip)
    try:
        result = _cni("ADD", host["netns"], wl_ns, name, conf)
    except BaseException:
        netns_delete(wl_ns)
        raise
    addresses = [ip["address"].split("/")[0] for ip in (result or {}).get("ips", [])]
    return {"name": name, "host": host["name"], "netns": wl_ns, "addresses": addresses,
            "labels": labels, "address_space": space}


def remove(record: dict[str, Any], host: dict, datastore_env: dict[str, str], ipv6: bool,
           lock_file: str) -> None:
    """CNI DEL (releases the addresses, deletes the endpoint and the veth), then the
    namespace. The namespace goes even if DEL fails; the error is raised afterwards."""
    conf = netconf(host["name"], datastore_env, ipv6, lock_file, record.get("labels") or {},
                   record.get("address_space"))
    try:
        _cni("DEL", host["netns"], record["netns"], record["name"], conf)
    finally:
        netns_delete(record["netns"])
