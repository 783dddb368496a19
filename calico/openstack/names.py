"""The names OpenStack integration shares with Calico: namespace, labels, datastore keys.

Everything here is Calico's own vocabulary as networking-calico writes it, so a datastore
written by Calico's Neutron driver reads back here and vice versa:

- every OpenStack WorkloadEndpoint and security-group NetworkPolicy lives in the namespace
  `openstack` (no region configured), with orchestrator `openstack`;
- a VM's membership of security group <id> is the label `sg.projectcalico.org/openstack-<id>`
  on its endpoint, and the group's policy is `ossg.default.<id>` selecting `has(<label>)`;
- the host-side interface of a port is `tap` + the first 11 characters of the port id;
- DHCP-enabled subnets are at `/calico/dhcp/v2/no-region/subnet/<subnet-id>`;
- the Neutron servers elect one master through `/calico/openstack/v2/no-region/neutron_election`;
- Felix reports under `/calico/felix/v2/no-region/host/<host>/` (`status` on a lease,
  `workload/openstack/<workload>/endpoint/<port-id>` per endpoint).
"""

from __future__ import annotations

import re
from typing import Any

NAMESPACE = "openstack"
ORCHESTRATOR = "openstack"
REGION = "no-region"

SG_LABEL_PREFIX = "sg.projectcalico.org/openstack-"
SG_NAME_LABEL_PREFIX = "sg-name.projectcalico.org/openstack-"
SG_POLICY_PREFIX = "ossg.default."
PROJECT_ID_LABEL = "projectcalico.org/openstack-project-id"
PROJECT_NAME_LABEL = "projectcalico.org/openstack-project-name"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"

LABEL_VALUE_MAX = 63
SG_NAME_MAX = LABEL_VALUE_MAX - len(SG_NAME_LABEL_PREFIX)

SUBNET_PREFIX = f"/calico/dhcp/v2/{REGION}/subnet/"
ELECTION_KEY = f"/calico/openstack/v2/{REGION}/neutron_election"
FELIX_STATUS_PREFIX = f"/calico/felix/v2/{REGION}/host/"

# Neutron's device_owner prefix for a VM's port: only these become workload endpoints.
COMPUTE_OWNER_PREFIX = "compute:"


def tap_name(port_id: str) -> str:
    return "tap" + port_id[:11]


def sg_label(sg_id: str) -> str:
    return SG_LABEL_PREFIX + sg_id


def sg_policy_name(sg_id: str) -> str:
    return SG_POLICY_PREFIX + sg_id


def sg_id_of_policy(name: str) -> str | None:
    return name[len(SG_POLICY_PREFIX):] if name.startswith(SG_POLICY_PREFIX) else None


def subnet_key(subnet_id: str) -> str:
    return SUBNET_PREFIX + subnet_id


def is_endpoint_port(port: dict[str, Any]) -> bool:
    """A VM's port (device_owner `compute:<zone>`) is a workload endpoint; router, DHCP and
    other ports are not."""
    return (port.get("device_owner") or "").startswith(COMPUTE_OWNER_PREFIX)


def sanitize_label_value(value: str, max_length: int = LABEL_VALUE_MAX) -> str:
    """A label value Calico accepts: problem characters become '_', leading and trailing
    non-alphanumerics go, at most `max_length` characters (networking-calico's rule)."""
    value = re.sub(r"[^-_.A-Za-z0-9]", "_", value[:max_length])
    value = re.sub(r"^[^A-Za-z0-9]+", "", value)
    return re.sub(r"[^A-Za-z0-9]+$", "", value)


def felix_status_key(host: str) -> str:
    return f"{FELIX_STATUS_PREFIX}{host}/status"


_ENDPOINT_STATUS = re.compile(
    r"^" + re.escape(FELIX_STATUS_PREFIX)
    + r"(?P<host>[^/]+)/workload/(?P<orch>[^/]+)/(?P<workload>[^/]+)/endpoint/(?P<ep>[^/]+)$")
_FELIX_STATUS = re.compile(r"^" + re.escape(FELIX_STATUS_PREFIX) + r"(?P<host>[^/]+)/status$")


def parse_endpoint_status_key(key: str) -> tuple[str, str] | None:
    """(host, port id) of an OpenStack endpoint status key written by Felix; None otherwise."""
    m = _ENDPOINT_STATUS.match(key)
    if m is None or m.group("orch") != ORCHESTRATOR:
        return None
    return m.group("host"), m.group("ep").replace("%2f", "/")


def parse_felix_status_key(key: str) -> str | None:
    """The host of a Felix liveness key (`.../host/<host>/status`); None otherwise."""
    m = _FELIX_STATUS.match(key)
    return m.group("host") if m else None
