"""Build the test topology with openstacksdk — run with the Neutron venv's Python.

    <neutron-venv>/bin/python sdk_scenario.py http://127.0.0.1:<port>

Creates a network, a DHCP subnet (with a DNS server), two security groups ("web": tcp/80
from anywhere and tcp/22 from group "admin"; "admin": icmp echo), three VM ports bound to two
fake hosts and one DHCP port, and prints their ids as JSON.
"""

import json
import sys

from sdk_main import connect


def main() -> None:
    conn = connect(sys.argv[1])
    net = conn.network.create_network(name="calico-net")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4,
                                        cidr="10.65.0.0/24", gateway_ip="10.65.0.1",
                                        dns_nameservers=["192.0.2.53"], enable_dhcp=True)
    web = conn.network.create_security_group(name="web")
    admin = conn.network.create_security_group(name="admin")
    conn.network.create_security_group_rule(
        security_group_id=web.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=80, port_range_max=80, remote_ip_prefix="0.0.0.0/0")
    conn.network.create_security_group_rule(
        security_group_id=web.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=22, port_range_max=22, remote_group_id=admin.id)
    conn.network.create_security_group_rule(
        security_group_id=admin.id, direction="ingress", ethertype="IPv4", protocol="icmp",
        port_range_min=8, port_range_max=0)
    ports = {}
    for name, host, groups, ip in (("vm1", "host-a", [web.id], "10.65.0.11"),
                                   ("vm2", "host-a", [web.id, admin.id], "10.65.0.12"),
                                   ("vm3", "host-b", [admin.id], "10.65.0.13")):
        port = conn.network.create_port(
            network_id=net.id, name=name, device_owner="compute:nova",
            device_id=f"{name}-0000", binding_host_id=host, security_group_ids=groups,
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}])
        ports[name] = port.id
    dhcp = conn.network.create_port(network_id=net.id, device_owner="network:dhcp",
                                    device_id="dhcp-host-a", binding_host_id="host-a")
    default = next(g for g in conn.network.security_groups() if g.name == "default")
    print(json.dumps({"network": net.id, "subnet": subnet.id, "web": web.id,
                      "admin": admin.id, "default": default.id, "ports": ports,
                      "dhcp_port": dhcp.id}))


if __name__ == "__main__":
    main()
