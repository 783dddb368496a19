"""The address-spaces lab test's OpenStack calls (#19), through openstacksdk — run with the
Neutron venv's Python.

    <neutron-venv>/bin/python spaces_sdk.py <url> topology '<vms json>'

Two projects, `project-a` and `project-b` (Neutron runs without Keystone: the project id is
given on each create), each with a network and a subnet 10.0.0.0/24 (DHCP, gateway
10.0.0.1): Neutron's `allow_overlapping_ips`. Then one port per VM of `<vms json>`
([{"name", "host", "project", "ip"}]) in its project's network, bound as Nova binds it; each
port has its project's default security group (Neutron creates it), which admits the
project's own ports. Prints one JSON line: networks and ports by name.

    ... spaces_sdk.py <url> only-tcp <port id> <project> '[[<tcp port>, <prefix>], ...]'
        # a new group of <project> with one ingress rule per pair (TCP to the port from the
        # remote prefix) and Neutron's default egress rules becomes the port's only group;
        # prints {"group", "previous": the port's groups before}
    ... spaces_sdk.py <url> set-groups <port id> '<group ids json>'
"""

import json

from sdk_main import run

PROJECTS = ("a", "b")


def topology(conn, vms: list[dict]) -> dict:
    networks, subnets = {}, {}
    for p in PROJECTS:
        net = conn.network.create_network(name=f"net-{p}", project_id=f"project-{p}")
        sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.0.0.0/24",
                                         gateway_ip="10.0.0.1", enable_dhcp=True,
                                         project_id=f"project-{p}")
        networks[p], subnets[p] = net.id, sub.id
    ports = {}
    for vm in vms:
        p = vm["project"]
        port = conn.network.create_port(
            network_id=networks[p], name=vm["name"], device_owner="compute:nova",
            device_id=f"{vm['name']}-instance", binding_host_id=vm["host"],
            project_id=f"project-{p}",
            fixed_ips=[{"subnet_id": subnets[p], "ip_address": vm["ip"]}])
        ports[vm["name"]] = {"id": port.id, "mac": port.mac_address,
                             "ip": port.fixed_ips[0]["ip_address"]}
    return {"networks": networks, "subnets": subnets, "ports": ports}


def only_tcp(conn, port_id: str, project: str, rules: list) -> dict:
    group = conn.network.create_security_group(name="only-tcp", project_id=f"project-{project}")
    for tcp_port, prefix in rules:
        conn.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ethertype="IPv4",
            protocol="tcp", port_range_min=int(tcp_port), port_range_max=int(tcp_port),
            remote_ip_prefix=prefix, project_id=f"project-{project}")
    previous = conn.network.get_port(port_id).security_group_ids
    conn.network.update_port(port_id, security_group_ids=[group.id])
    return {"group": group.id, "previous": previous}


def set_groups(conn, port_id: str, groups: list[str]) -> dict:
    port = conn.network.update_port(port_id, security_group_ids=groups)
    return {"groups": port.security_group_ids}


if __name__ == "__main__":
    run({"topology": lambda conn, vms: topology(conn, json.loads(vms)),
         "only-tcp": lambda conn, port, project, rules: only_tcp(conn, port, project,
                                                                 json.loads(rules)),
         "set-groups": lambda conn, port, groups: set_groups(conn, port, json.loads(groups))})
