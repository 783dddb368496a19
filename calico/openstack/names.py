"""The names OpenStack integration shares with Calico: namespace, labels, datastore keys.

Everything here is Calico's own vocabulary as networking-calico writes it, so a datastore
written by Calico's Neutron driver reads back here and vice versa:

- every OpenStack WorkloadEndpoint and security-group NetworkPolicy lives in the namespace
  `openstack` (no region configured) or `openstack-region-<region>` (`openstack_region` set),
  with orchestrator `openstack`;
- a VM's membership of security group <id> is the label `sg.projectcalico.org/openstack-<id>`
  on its endpoint, and the group's policy is `ossg.default.<id>` selecting `has(<label>)`;
- the host-side interface of a port is `tap` + the first 11 characters of the port id;
- DHCP-enabled subnets are at `/calico/dhcp/v2/<region>/subnet/<subnet-id>`;
- the Neutron servers elect one master through `/calico/openstack/v2/<region>/neutron_election`;
- Felix reports under `/calico/felix/v2/<region>/host/<host>/` (`status` on a lease,
  `workload/openstack/<workload>/endpoint/<port-id>` per endpoint);
where <region> is `no-region`, or `region-<openstack_region>` (Calico's region string, which
Felix's `OpenstackRegion` gives too). `Region` holds these per-region names; the module-level
constants are the `no-region` ones.

Node names: Calico's Node and WorkloadEndpoint `node` must be a lower-case RFC 1123
subdomain, and Calico converts a host name to one by lower-casing it (calico/node does so for
the detected host name, and our calico-node too). `node_name()` applies that conversion to a
Neutron binding host; a host that is still not a valid name cannot be mapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from calico.api.base import check_dns1123_subdomain

NAMESPACE = "openstack"
ORCHESTRATOR = "openstack"
REGION = "no-region"

SG_LABEL_PREFIX = "sg.projectcalico.org/openstack-"
SG_NAME_LABEL_PREFIX = "sg-name.projectcalico.org/openstack-"
SG_POLICY_PREFIX = "ossg.default."
PROJECT_ID_LABEL = "projectcalico.org/openstack-project-id"
PROJECT_NAME_LABEL = "projectcalico.org/openstack-project-name"
PROJECT_PARENT_ID_LABEL = "projectcalico.org/openstack-project-parent-id"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"

LABEL_VALUE_MAX = 63
SG_NAME_MAX = LABEL_VALUE_MAX - len(SG_NAME_LABEL_PREFIX)

SUBNET_PREFIX = f"/calico/dhcp/v2/{REGION}/subnet/"
ELECTION_KEY = f"/calico/openstack/v2/{REGION}/neutron_election"
FELIX_STATUS_PREFIX = f"/calico/felix/v2/{REGION}/host/"

# Neutron's device_owner prefixes of the ports that become workload endpoints: a VM's, and a
# Kuryr container's (as networking-calico does).
COMPUTE_OWNER_PREFIX = "compute:"
KURYR_OWNER_PREFIX = "kuryr:container"
ENDPOINT_OWNER_PREFIXES = (COMPUTE_OWNER_PREFIX, KURYR_OWNER_PREFIX)

REGION_PREFIX = "region-"
REGION_NAMESPACE_PREFIX = "openstack-"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
REGION_MAX = LABEL_VALUE_MAX - len(REGION_NAMESPACE_PREFIX + REGION_PREFIX)


class UnmappableName(ValueError):
    """A Neutron name or id that Calico cannot take (the message names the value)."""


def check_region(region: str) -> str:
    """`openstack_region` as networking-calico accepts it: a DNS label of at most 46
    characters (so that `openstack-region-<region>` is a valid namespace)."""
    if len(region) > REGION_MAX or not _DNS_LABEL.match(region):
        raise UnmappableName(f"openstack_region {region!r} must be a DNS label of at most "
                         f"{REGION_MAX} characters: lower-case alphanumerics or '-', starting "
                         "and ending with an alphanumeric")
    return region


@dataclass(frozen=True)
class Region:
    """The names that depend on `openstack_region` (None or "": no region)."""

    name: str | None = None

    def __post_init__(self) -> None:
        if self.name:
            check_region(self.name)

    @property
    def string(self) -> str:
        """Calico's region string: `no-region` or `region-<name>`."""
        return REGION_PREFIX + self.name if self.name else "no-region"

    @property
    def namespace(self) -> str:
        return REGION_NAMESPACE_PREFIX + self.string if self.name else NAMESPACE

    @property
    def subnet_prefix(self) -> str:
        return f"/calico/dhcp/v2/{self.string}/subnet/"

    @property
    def election_key(self) -> str:
        return f"/calico/openstack/v2/{self.string}/neutron_election"

    @property
    def felix_status_prefix(self) -> str:
        return f"/calico/felix/v2/{self.string}/host/"

    def subnet_key(self, subnet_id: str) -> str:
        return self.subnet_prefix + subnet_id

    def felix_status_key(self, host: str) -> str:
        return f"{self.felix_status_prefix}{host}/status"

    def parse_endpoint_status_key(self, key: str) -> tuple[str, str] | None:
        """(host, port id) of an OpenStack endpoint status key written by Felix; None
        otherwise (another region's key included)."""
        if not key.startswith(self.felix_status_prefix):
            return None
        m = _ENDPOINT_STATUS.match(key[len(self.felix_status_prefix):])
        if m is None or m.group("orch") != ORCHESTRATOR:
            return None
        return m.group("host"), m.group("ep").replace("%2f", "/")

    def parse_felix_status_key(self, key: str) -> str | None:
        """The host of a Felix liveness key (`.../host/<host>/status`); None otherwise."""
        if not key.startswith(self.felix_status_prefix):
            return None
        m = _FELIX_STATUS.match(key[len(self.felix_status_prefix):])
        return m.group("host") if m else None


def node_name(host: str) -> str:
    """The Calico node name of a Neutron binding host: lower-cased, as Calico converts host
    names. Raises UnmappableName (naming the host) when that is still not a valid node name
    (e.g. `compute_1`: '_' is not allowed)."""
    name = (host or "").strip().lower()
    try:
        return check_dns1123_subdomain(name)
    except ValueError:
        raise UnmappableName(f"host {host!r} is not a valid Calico node name even lower-cased "
                         "(a lower-case RFC 1123 subdomain: alphanumerics, '-' and '.', at "
                         "most 253 characters)") from None


def tap_name(port_id: str) -> str:
    return "tap" + port_id[:11]


def sg_label(sg_id: str) -> str:
    return SG_LABEL_PREFIX + sg_id


def sg_policy_name(sg_id: str) -> str:
    """`ossg.default.<sg-id>`, lower-cased (an upper-case id in Neutron's database still
    gets a valid policy name; its label keeps the id as it is, label keys allow it)."""
    return SG_POLICY_PREFIX + sg_id.lower()


def sg_id_of_policy(name: str) -> str | None:
    return name[len(SG_POLICY_PREFIX):] if name.startswith(SG_POLICY_PREFIX) else None


def subnet_key(subnet_id: str) -> str:
    return SUBNET_PREFIX + subnet_id


def is_endpoint_port(port: dict[str, Any]) -> bool:
    """A VM's port (device_owner `compute:<zone>`) and a Kuryr container's
    (`kuryr:container...`) are workload endpoints; router, DHCP and other ports are not."""
    return str(port.get("device_owner") or "").startswith(ENDPOINT_OWNER_PREFIXES)


def sanitize_label_value(value: str, max_length: int = LABEL_VALUE_MAX) -> str:
    """A label value Calico accepts: problem characters become '_', leading and trailing
    non-alphanumerics go, at most `max_length` characters (networking-calico's rule)."""
    value = re.sub(r"[^-_.A-Za-z0-9]", "_", value[:max_length])
    value = re.sub(r"^[^A-Za-z0-9]+", "", value)
    return re.sub(r"[^A-Za-z0-9]+$", "", value)


_ENDPOINT_STATUS = re.compile(
    r"^(?P<host>[^/]+)/workload/(?P<orch>[^/]+)/(?P<workload>[^/]+)/endpoint/(?P<ep>[^/]+)$")
_FELIX_STATUS = re.compile(r"^(?P<host>[^/]+)/status$")
NO_REGION = Region()


def felix_status_key(host: str) -> str:
    return NO_REGION.felix_status_key(host)


def parse_endpoint_status_key(key: str) -> tuple[str, str] | None:
    return NO_REGION.parse_endpoint_status_key(key)


def parse_felix_status_key(key: str) -> str | None:
    return NO_REGION.parse_felix_status_key(key)
