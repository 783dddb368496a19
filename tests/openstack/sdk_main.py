"""What the openstacksdk scripts here share (e2e_sdk.py, cloud_sdk.py, fip_sdk.py,
sdk_scenario.py, dhcp_sdk.py: each run with the Neutron venv's Python, which has
openstacksdk, and importing this module from its own folder):

    conn = connect(url)          # a Neutron server without authentication, as the tests run it
    run({"topology": topology, "delete-port": delete_port})
                                 # argv <url> <command> <args...>: the command's function gets
                                 # (conn, *args) and returns a dict, printed as one JSON line

On the tests' side, harness.run_sdk(venv, script, url, *args) runs a script and returns
that line, decoded.
"""

import json
import sys
from collections.abc import Callable

import openstack


def connect(url: str):
    return openstack.connect(auth_type="none", auth={"endpoint": url},
                             network_endpoint_override=url + "/")


def delete_port(conn, port_id: str) -> dict:
    conn.network.delete_port(port_id, ignore_missing=False)
    return {"deleted": port_id}


def run(commands: dict[str, Callable[..., dict]]) -> None:
    url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if command not in commands:
        raise SystemExit(f"unknown command {command!r} (one of {', '.join(commands)})")
    print(json.dumps(commands[command](connect(url), *args)))
