"""Floating-IP calls through openstacksdk, as an operator makes them — run with the Neutron
venv's Python against a server with the router service plugin.

    <neutron-venv>/bin/python fip_sdk.py <url> topology
    <neutron-venv>/bin/python fip_sdk.py <url> associate <port-id>       (a new floating IP)
    <neutron-venv>/bin/python fip_sdk.py <url> move <fip-id> <port-id>|none
    <neutron-venv>/bin/python fip_sdk.py <url> delete-fip <fip-id>
    <neutron-venv>/bin/python fip_sdk.py <url> delete-port <port-id>

`topology`: an external flat network `public` (router:external, subnet 172.16.1.0/24 without
DHCP), a tenant network `fip-net` (10.66.0.0/24), a router with `public` as its external
gateway and an interface on the tenant subnet, and two VM ports bound to host-a. Each command
prints one JSON line.
"""

from sdk_main import delete_port, run


def topology(conn) -> dict:
    public = conn.network.create_network(name="public", is_router_external=True,
                                         provider_network_type="flat",
                                         provider_physical_network="public")
    conn.network.create_subnet(network_id=public.id, ip_version=4, cidr="172.16.1.0/24",
                               gateway_ip="172.16.1.1", enable_dhcp=False)
    net = conn.network.create_network(name="fip-net")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.66.0.0/24",
                                        gateway_ip="10.66.0.1", enable_dhcp=True)
    router = conn.network.create_router(name="r1",
                                        external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    ports = {}
    for name, ip in (("vm1", "10.66.0.11"), ("vm2", "10.66.0.12")):
        port = conn.network.create_port(
            network_id=net.id, name=name, device_owner="compute:nova",
            device_id=f"{name}-instance", binding_host_id="host-a",
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}])
        ports[name] = {"id": port.id, "ip": ip}
    return {"public": public.id, "network": net.id, "router": router.id, "ports": ports}


def associate(conn, port_id: str) -> dict:
    """A new floating IP from `public`, associated with the port."""
    public = conn.network.find_network("public", ignore_missing=False)
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port_id)
    return {"id": fip.id, "address": fip.floating_ip_address}


def move(conn, fip_id: str, port_id: str) -> dict:
    fip = conn.network.update_ip(fip_id, port_id=None if port_id == "none" else port_id)
    return {"id": fip.id, "port": fip.port_id}


def delete_fip(conn, fip_id: str) -> dict:
    conn.network.delete_ip(fip_id, ignore_missing=False)
    return {"deleted": fip_id}


if __name__ == "__main__":
    run({"topology": topology, "associate": associate, "move": move,
         "delete-fip": delete_fip, "delete-port": delete_port})
