"""The real-cloud test's OpenStack calls, through openstacksdk — run with the Neutron venv's
Python, as an operator's tooling (and Nova) would make them.

    <neutron-venv>/bin/python cloud_sdk.py <url> topology
    <neutron-venv>/bin/python cloud_sdk.py <url> migrate-start <port-id> <dest-host>
    <neutron-venv>/bin/python cloud_sdk.py <url> migrate-finish <port-id> <dest-host>
    <neutron-venv>/bin/python cloud_sdk.py <url> migrate-cancel <port-id>

`topology` makes network `cloud-net`, DHCP subnet 10.66.0.0/24, group `web` (ingress TCP 22
and TCP 8080 from anywhere) and the ports, each as Nova or Kuryr creates it (device_owner,
device_id, binding:host_id):
  good      compute:nova on host `Compute-1` (upper case: Calico lower-cases host names)
  badhost   compute:nova on host `compute_1` ('_': not a Calico node name)
  badvm     compute:nova on `compute-1`, device_id `Bad_VM` (not a Calico name)
  nofelix   compute:nova on `host-z`, where no Felix runs (not bound)
  kuryr     kuryr:container on `compute-1`
  projecta  compute:nova on `compute-1` in project `proj-a` (its name comes from Keystone)
  mover     compute:nova on `compute-1` (migrated by the migrate-* commands)
Prints one JSON line.

The migration commands make Nova's live-migration port updates: `migrate-start` sets
`migrating_to` in the binding profile (pre-live-migration), `migrate-finish` moves the
binding to the destination and drops `migrating_to` (post-live-migration), `migrate-cancel`
drops `migrating_to` alone (a rolled-back migration).
"""

from sdk_main import run

PORTS = {
    "good": ("compute:nova", "vm-good", "Compute-1", None),
    "badhost": ("compute:nova", "vm-badhost", "compute_1", None),
    "badvm": ("compute:nova", "Bad_VM", "compute-1", None),
    "nofelix": ("compute:nova", "vm-nofelix", "host-z", None),
    "kuryr": ("kuryr:container", "container-1", "compute-1", None),
    "projecta": ("compute:nova", "vm-proja", "compute-1", "proj-a"),
    "mover": ("compute:nova", "vm-mover", "compute-1", None),
}


def topology(conn) -> dict:
    net = conn.network.create_network(name="cloud-net", shared=True)
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.66.0.0/24",
                                        gateway_ip="10.66.0.1", enable_dhcp=True)
    web = conn.network.create_security_group(name="web")
    rules = {}
    for port in (22, 8080):
        rules[port] = conn.network.create_security_group_rule(
            security_group_id=web.id, direction="ingress", ethertype="IPv4", protocol="tcp",
            port_range_min=port, port_range_max=port, remote_ip_prefix="0.0.0.0/0").id
    ports = {}
    for i, (name, (owner, device, host, project)) in enumerate(PORTS.items()):
        kwargs = {"project_id": project} if project else {"security_group_ids": [web.id]}
        port = conn.network.create_port(
            network_id=net.id, name=name, device_owner=owner, device_id=device,
            binding_host_id=host, fixed_ips=[{"subnet_id": subnet.id,
                                              "ip_address": f"10.66.0.{10 + i}"}], **kwargs)
        ports[name] = port.id
    return {"network": net.id, "subnet": subnet.id, "web": web.id, "rules": rules,
            "ports": ports}


def migrate_start(conn, port_id: str, host: str) -> dict:
    port = conn.network.update_port(port_id, binding_profile={"migrating_to": host})
    return {"profile": port.binding_profile}


def migrate_finish(conn, port_id: str, host: str) -> dict:
    port = conn.network.update_port(port_id, binding_host_id=host, binding_profile={})
    return {"host": port.binding_host_id, "vif_type": port.binding_vif_type}


def migrate_cancel(conn, port_id: str) -> dict:
    port = conn.network.update_port(port_id, binding_profile={})
    return {"profile": port.binding_profile}


if __name__ == "__main__":
    run({"topology": topology, "migrate-start": migrate_start,
         "migrate-finish": migrate_finish, "migrate-cancel": migrate_cancel})
