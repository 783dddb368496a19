"""The DHCP test's OpenStack calls, through openstacksdk — run with the Neutron venv's Python
against a server with the `dns` ML2 extension driver (networks' dns_domain).

    <neutron-venv>/bin/python dhcp_sdk.py <url> topology '<vms json>'
    <neutron-venv>/bin/python dhcp_sdk.py <url> set-mtu <network-id> <mtu>

Makes network `dhcp-net` (MTU 1400, dns_domain example.org.) with an IPv4 subnet
10.65.0.0/24 (DNS servers 192.0.2.53 and 192.0.2.54, host route 192.0.2.0/24 via 10.65.0.1)
and a DHCPv6-stateful subnet fd00:65:0:1::/64 (DNS server fd00::53); network `slaac-net`
(MTU 1400) with a SLAAC subnet fd00:65:0:2::/64; network `stateless-net` (MTU 1400) with a
DHCPv6-stateless subnet fd00:65:0:3::/64 (DNS server fd00::53); security group `v6web`:
ingress IPv6 ICMP and TCP 22 from anywhere (IPv6 only). Then one port per VM of
`<vms json>` ([{"name", "host", "network": "dhcp"|"slaac"|"stateless", "ip", "ip6"}]; SLAAC
and stateless ports get Neutron's EUI-64 address), bound as Nova binds it. Prints one JSON
line.
"""

import json

from sdk_main import run


def topology(conn, vms: list[dict]) -> dict:
    dhcp = conn.network.create_network(name="dhcp-net", mtu=1400, dns_domain="example.org.")
    v4 = conn.network.create_subnet(
        network_id=dhcp.id, ip_version=4, cidr="10.65.0.0/24", gateway_ip="10.65.0.1",
        dns_nameservers=["192.0.2.53", "192.0.2.54"],
        host_routes=[{"destination": "192.0.2.0/24", "nexthop": "10.65.0.1"}])
    v6 = conn.network.create_subnet(
        network_id=dhcp.id, ip_version=6, cidr="fd00:65:0:1::/64", gateway_ip="fd00:65:0:1::1",
        ipv6_address_mode="dhcpv6-stateful", ipv6_ra_mode="dhcpv6-stateful",
        dns_nameservers=["fd00::53"])
    slaac = conn.network.create_network(name="slaac-net", mtu=1400)
    s6 = conn.network.create_subnet(
        network_id=slaac.id, ip_version=6, cidr="fd00:65:0:2::/64", gateway_ip="fd00:65:0:2::1",
        ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    stateless = conn.network.create_network(name="stateless-net", mtu=1400)
    sl6 = conn.network.create_subnet(
        network_id=stateless.id, ip_version=6, cidr="fd00:65:0:3::/64",
        gateway_ip="fd00:65:0:3::1", ipv6_address_mode="dhcpv6-stateless",
        ipv6_ra_mode="dhcpv6-stateless", dns_nameservers=["fd00::53"])
    sg = conn.network.create_security_group(name="v6web")
    conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", ethertype="IPv6", protocol="ipv6-icmp")
    conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", ethertype="IPv6", protocol="tcp",
        port_range_min=22, port_range_max=22, remote_ip_prefix="::/0")
    ports = {}
    for vm in vms:
        if vm["network"] == "dhcp":
            net, fixed = dhcp, [{"subnet_id": v4.id, "ip_address": vm["ip"]},
                                {"subnet_id": v6.id, "ip_address": vm["ip6"]}]
        elif vm["network"] == "slaac":
            net, fixed = slaac, [{"subnet_id": s6.id}]
        else:
            net, fixed = stateless, [{"subnet_id": sl6.id}]
        port = conn.network.create_port(
            network_id=net.id, name=vm["name"], device_owner="compute:nova",
            device_id=f"{vm['name']}-instance", binding_host_id=vm["host"],
            security_group_ids=[sg.id], fixed_ips=fixed)
        ports[vm["name"]] = {"id": port.id, "mac": port.mac_address,
                             "ips": [f["ip_address"] for f in port.fixed_ips]}
    return {"networks": {"dhcp": dhcp.id, "slaac": slaac.id, "stateless": stateless.id},
            "group": sg.id, "ports": ports}


def set_mtu(conn, network_id: str, mtu: str) -> dict:
    return {"mtu": conn.network.update_network(network_id, mtu=int(mtu)).mtu}


if __name__ == "__main__":
    run({"topology": lambda conn, vms: topology(conn, json.loads(vms)), "set-mtu": set_mtu})
