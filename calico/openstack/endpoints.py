"""Neutron port -> Calico WorkloadEndpoint: a pure mapping, no Neutron and no datastore.

In: a Neutron port dict (as the ML2 plugin returns it: `id`, `device_id`, `device_owner`,
`binding:host_id`, `mac_address`, `fixed_ips` [{subnet_id, ip_address}], `security_groups`,
`allowed_address_pairs` [{ip_address, mac_address}], `project_id`, `network_id`,
`port_security_enabled`, `dns_assignment`, `binding:profile`) plus what the port dict does
not carry: each subnet's gateway, the security groups' names and the project's name and
parent id (when a Keystone endpoint is configured: see keystone.py).
Out: the WorkloadEndpoint resource as a dict, ready for `ResourceClient` (validated there).

The endpoint (as networking-calico writes it):
- namespace `openstack` (or the region's); spec orchestrator `openstack`, node = the binding
  host as a Calico node name (lower-cased, names.node_name), workload = the VM (device id,
  lower-cased the same way), endpoint = the port id; so the name is
  `<host>-openstack-<vm>-<port>` with each '-' doubled. A host, device id or port id that is
  still not a valid Calico name raises `names.UnmappableName` naming the field and value;
- ipNetworks: each fixed IP as a /32 or /128; ipv4Gateway / ipv6Gateway from the subnets (the
  last fixed IP of each version wins);
- interfaceName `tap<first 11 of the port id>`; mac the port's MAC;
- allowed address pairs are routed to the instance and accepted as its sources, as
  networking-calico does: every pair is in `allowedIps` (networking-calico's field: the DHCP
  agent serves none of them), a single-address pair (the usual VIP) is in ipNetworks too, as
  a /32 or /128 after the fixed IPs (so Felix routes it, accepts it as a source and policy
  sees it as the port's address). A whole-CIDR pair (a router VM, a keepalived range) cannot
  be in ipNetworks (single addresses only, as Calico validates them): it is in
  `allowSpoofedSourcePrefixes` (any Felix accepts it as a source) and our Felix routes it to
  the tap from `allowedIps`;
- labels: `sg.projectcalico.org/openstack-<sg-id>` (value: the group's name, sanitised) per
  security group — what the `ossg.default.<sg-id>` policies select on — plus
  `sg-name.projectcalico.org/openstack-<name>` = id, the project id and (if known) name and
  parent id, and `projectcalico.org/orchestrator: openstack`; annotation: the network id (and
  FQDN);
- live migration: while the port's `binding:profile` has `migrating_to`, the port has a
  second endpoint, the same but on the destination host (`migration_target`).
- port_security_enabled false: no security-group labels (Neutron forbids groups on such a
  port anyway) — the endpoint then gets only what non-SG policy gives it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calico.api.base import check_dns1123_subdomain
from calico.api.endpoints import LABEL_ORCHESTRATOR, workload_endpoint_name

from . import names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Project:
    """What Keystone says about a project: its name and parent's id."""

    name: str
    parent_id: str | None = None


def _checked(field: str, value: Any, lower: bool) -> str:
    text = str(value or "").strip()
    text = text.lower() if lower else text
    try:
        return check_dns1123_subdomain(text)
    except ValueError:
        how = "even lower-cased " if lower else ""
        raise names.UnmappableName(
            f"{field} {value!r} is not a valid Calico name {how}(a lower-case RFC 1123 "
            "subdomain: alphanumerics, '-' and '.')") from None


def endpoint_spec_ids(port: Mapping[str, Any]) -> dict[str, str]:
    """The four identifiers the endpoint's name is derived from. Raises UnmappableName."""
    return {"orchestrator": names.ORCHESTRATOR,
            "node": names.node_name(port.get("binding:host_id") or ""),
            "workload": _checked("device_id", port.get("device_id"), lower=True),
            "endpoint": _checked("id", port.get("id"), lower=False)}


def endpoint_name(port: Mapping[str, Any]) -> str:
    """`<host>-openstack-<device-id>-<port-id>`. Raises UnmappableName when the port's host,
    device id or id cannot be a Calico name (or is missing)."""
    return workload_endpoint_name({**endpoint_spec_ids(port), "interfaceName": "*"})


def migration_target(port: Mapping[str, Any]) -> str | None:
    """The destination host of a live migration in progress (`migrating_to` in the port's
    binding profile), unless it is the port's own host; None otherwise."""
    profile = port.get("binding:profile")
    target = profile.get("migrating_to") if isinstance(profile, Mapping) else None
    if not target or not isinstance(target, str) or target == port.get("binding:host_id"):
        return None
    return target


def at_host(port: Mapping[str, Any], host: str) -> dict[str, Any]:
    """The port as bound to `host` (the destination of a migration)."""
    return {**port, "binding:host_id": host}


def is_bound_endpoint(port: Mapping[str, Any]) -> bool:
    """A VM port that Neutron has bound (to a host, with our tap VIF): it has an endpoint."""
    return (names.is_endpoint_port(dict(port)) and bool(port.get("binding:host_id"))
            and bool(port.get("device_id"))
            and port.get("binding:vif_type") not in ("unbound", "binding_failed"))


def _host_cidr(ip: str) -> tuple[int, str]:
    addr = ipaddress.ip_address(ip)
    return addr.version, f"{addr}/{addr.max_prefixlen}"


def _prefix(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))


def _address_pairs(port: Mapping[str, Any], networks: list[str]) -> dict[str, Any]:
    """The spec fields of the port's allowed address pairs; single addresses are appended to
    `networks` (the endpoint's ipNetworks). A pair that is one of the port's fixed IPs adds
    nothing (it must stay served by DHCP)."""
    pairs = sorted({_prefix(p["ip_address"]) for p in port.get("allowed_address_pairs") or []
                    if p.get("ip_address")} - set(networks), key=_sort_key)
    if not pairs:
        return {}
    ranges = []
    for pair in pairs:
        if ipaddress.ip_network(pair).num_addresses > 1:
            ranges.append(pair)
        else:
            networks.append(pair)
    return {"allowedIps": pairs, **({"allowSpoofedSourcePrefixes": ranges} if ranges else {})}


def _sort_key(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr)
    return net.version, int(net.network_address), net.prefixlen


def endpoint_labels(port: Mapping[str, Any], sg_names: Mapping[str, str] | None = None,
                    project: Project | None = None) -> dict[str, str]:
    labels: dict[str, str] = {}
    if port.get("port_security_enabled", True) is not False:
        for sg_id in port.get("security_groups") or []:
            name = names.sanitize_label_value((sg_names or {}).get(sg_id, ""), names.SG_NAME_MAX)
            labels[names.sg_label(sg_id)] = name
            if name:
                labels[names.SG_NAME_LABEL_PREFIX + name] = sg_id
    project_id = port.get("project_id") or port.get("tenant_id")
    if project_id:
        labels[names.PROJECT_ID_LABEL] = names.sanitize_label_value(project_id)
    if project is not None:
        labels[names.PROJECT_NAME_LABEL] = names.sanitize_label_value(project.name)
        labels[names.PROJECT_PARENT_ID_LABEL] = names.sanitize_label_value(
            project.parent_id or "")
    labels[LABEL_ORCHESTRATOR] = names.ORCHESTRATOR
    return labels


def endpoint_resource(port: Mapping[str, Any], gateways: Mapping[str, str | None],
                      sg_names: Mapping[str, str] | None = None,
                      project: Project | None = None,
                      namespace: str = names.NAMESPACE) -> dict[str, Any]:
    """The WorkloadEndpoint for a bound VM port. `gateways` maps subnet id -> gateway IP
    (None: the subnet has no gateway). Raises UnmappableName, or ValueError / KeyError /
    TypeError for junk (an address that is not one, a fixed IP without an address)."""
    spec: dict[str, Any] = {**endpoint_spec_ids(port),
                            "interfaceName": names.tap_name(port["id"])}
    if port.get("mac_address"):
        spec["mac"] = port["mac_address"]
    networks = []
    for fixed in port.get("fixed_ips") or []:
        version, cidr = _host_cidr(fixed["ip_address"])
        networks.append(cidr)
        gateway = gateways.get(fixed.get("subnet_id", ""))
        if gateway:
            spec["ipv4Gateway" if version == 4 else "ipv6Gateway"] = gateway
    spec["ipNetworks"] = networks
    spec.update(_address_pairs(port, networks))
    annotations = {names.NETWORK_ID_ANNOTATION: port.get("network_id") or ""}
    dns = port.get("dns_assignment") or []
    if dns and dns[0].get("fqdn"):
        annotations["openstack.projectcalico.org/fqdn"] = dns[0]["fqdn"]
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {"name": endpoint_name(port), "namespace": namespace,
                     "labels": endpoint_labels(port, sg_names, project),
                     "annotations": annotations},
        "spec": spec,
    }
