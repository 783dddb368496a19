"""The end-to-end test's OpenStack calls, through openstacksdk — run with the Neutron venv's Python.

    <neutron-venv>/bin/python e2e_sdk.py <url> topology '<vms json>'
    <neutron-venv>/bin/python e2e_sdk.py <url> allow <sg-id> <remote-sg-id> <tcp-port>
    <neutron-venv>/bin/python e2e_sdk.py <url> allow-prefix <sg-id> <cidr> <udp-port>
    <neutron-venv>/bin/python e2e_sdk.py <url> pairs <port-id> '<["10.65.0.100", ...]>'
    <neutron-venv>/bin/python e2e_sdk.py <url> delete-port <port-id>

`topology` makes network `e2e-net`, subnet 10.65.0.0/24 (DHCP, gateway 10.65.0.1, inside the
lab's IP pool) and two security groups: `web` (ingress ICMP echo and TCP 22 from members of
`web`) and `other` (no ingress rules); both keep Neutron's default egress rules. `allow-prefix` adds
an ingress UDP rule from an address range; `pairs` sets a port's allowed address pairs. Then one
port per VM of `<vms json>` ([{"name", "host", "group", "ip"}]), bound as Nova binds it:
binding:host_id = the lab host, device_owner compute:nova. Each command prints one JSON line.
"""

import json

from sdk_main import delete_port, run


def topology(conn, vms: list[dict]) -> dict:
    net = conn.network.create_network(name="e2e-net")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.65.0.0/24",
                                        gateway_ip="10.65.0.1", enable_dhcp=True)
    groups = {name: conn.network.create_security_group(name=name).id
              for name in ("web", "other")}
    conn.network.create_security_group_rule(
        security_group_id=groups["web"], direction="ingress", ethertype="IPv4",
        protocol="icmp", port_range_min=8, remote_group_id=groups["web"])
    conn.network.create_security_group_rule(
        security_group_id=groups["web"], direction="ingress", ethertype="IPv4",
        protocol="tcp", port_range_min=22, port_range_max=22, remote_group_id=groups["web"])
    ports = {}
    for vm in vms:
        port = conn.network.create_port(
            network_id=net.id, name=vm["name"], device_owner="compute:nova",
            device_id=f"{vm['name']}-instance", binding_host_id=vm["host"],
            security_group_ids=[groups[vm["group"]]],
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": vm["ip"]}])
        ports[vm["name"]] = {"id": port.id, "mac": port.mac_address,
                             "ip": port.fixed_ips[0]["ip_address"]}
    return {"network": net.id, "subnet": subnet.id, "groups": groups, "ports": ports}


def ingress(conn, sg: str, protocol: str, port: str, **remote: str) -> str:
    """An IPv4 ingress rule for one port from `remote` (a group or a prefix); its id."""
    return conn.network.create_security_group_rule(
        security_group_id=sg, direction="ingress", ethertype="IPv4", protocol=protocol,
        port_range_min=int(port), port_range_max=int(port), **remote).id


def allow(conn, sg: str, remote_sg: str, port: str) -> dict:
    return {"rule": ingress(conn, sg, "tcp", port, remote_group_id=remote_sg)}


def allow_prefix(conn, sg: str, prefix: str, port: str) -> dict:
    return {"rule": ingress(conn, sg, "udp", port, remote_ip_prefix=prefix)}


def pairs(conn, port_id: str, addresses: str) -> dict:
    port = conn.network.update_port(port_id, allowed_address_pairs=[
        {"ip_address": ip} for ip in json.loads(addresses)])
    return {"pairs": [p["ip_address"] for p in port.allowed_address_pairs]}


if __name__ == "__main__":
    run({"topology": lambda conn, vms: topology(conn, json.loads(vms)), "allow": allow,
         "allow-prefix": allow_prefix, "pairs": pairs, "delete-port": delete_port})
