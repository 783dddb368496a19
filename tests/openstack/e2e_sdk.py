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
import sys

import openstack


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


def main() -> None:
    url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    conn = openstack.connect(auth_type="none", auth={"endpoint": url},
                             network_endpoint_override=url + "/")
    if command == "topology":
        out = topology(conn, json.loads(args[0]))
    elif command == "allow":
        out = {"rule": ingress(conn, args[0], "tcp", args[2], remote_group_id=args[1])}
    elif command == "allow-prefix":
        out = {"rule": ingress(conn, args[0], "udp", args[2], remote_ip_prefix=args[1])}
    elif command == "pairs":
        pairs = [{"ip_address": ip} for ip in json.loads(args[1])]
        port = conn.network.update_port(args[0], allowed_address_pairs=pairs)
        out = {"pairs": [p["ip_address"] for p in port.allowed_address_pairs]}
    elif command == "delete-port":
        conn.network.delete_port(args[0], ignore_missing=False)
        out = {"deleted": args[0]}
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
