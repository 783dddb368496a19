"""The `NeutronView` shim for a real Neutron server: reads through the ML2 core plugin.

Imported only inside a Neutron process (it imports neutron_lib). Every read uses a fresh
admin context, outside any API transaction: the driver only acts after Neutron committed.

Agent liveness needs no RPC: Neutron's agents table is written directly through the core
plugin's `create_or_update_agent` (AgentDbMixin), as an agent's `report_state` would, with
agent type "Calico per-host agent (felix)" and binary "calico-felix" on each Felix's host.
Neutron then shows the agent alive while heartbeats arrive (Felix rewrites its status key
every reporting interval, 30 s by default, under Neutron's agent_down_time of 75 s) and
dead when they stop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from neutron_lib import context as n_context
from neutron_lib import exceptions as n_exc
from neutron_lib.plugins import constants as plugin_constants
from neutron_lib.plugins import directory

from .syncer import Snapshot

log = logging.getLogger(__name__)

AGENT_TYPE = "Calico per-host agent (felix)"
AGENT_BINARY = "calico-felix"


class PluginNeutronView:
    """The NeutronView of a running Neutron server: reads through the ML2 core plugin with a fresh
    admin context per call; `set_port_status` ignores a port that is gone, `felix_alive` writes
    Felix's agent heartbeat for a host."""

    def __init__(self) -> None:
        self._agents_seen: set[str] = set()

    @property
    def plugin(self) -> Any:
        return directory.get_plugin()

    @staticmethod
    def _ctx() -> Any:
        return n_context.get_admin_context()

    def snapshot(self) -> Snapshot:
        ctx = self._ctx()
        plugin = self.plugin
        ports = {p["id"]: p for p in plugin.get_ports(ctx)}
        subnets = {s["id"]: s for s in plugin.get_subnets(ctx)}
        groups = {g["id"]: g for g in plugin.get_security_groups(ctx, default_sg=True)}
        networks = {n["id"]: n for n in plugin.get_networks(ctx)}
        return Snapshot(ports=ports, security_groups=groups, subnets=subnets,
                        floating_ips=self._floating_ips(ctx), networks=networks)

    def subnets(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        return {s["id"]: s for s in self.plugin.get_subnets(self._ctx(), filters={"id": ids})}

    def networks(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        return {n["id"]: n for n in self.plugin.get_networks(self._ctx(), filters={"id": ids})}

    def security_groups(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(ids))
        if not ids:
            return {}
        groups = self.plugin.get_security_groups(self._ctx(), filters={"id": ids},
                                                 default_sg=True)
        return {g["id"]: g for g in groups}

    def port(self, port_id: str) -> dict[str, Any] | None:
        ports = self.plugin.get_ports(self._ctx(), filters={"id": [port_id]})
        return ports[0] if ports else None

    def floating_ips(self, port_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(port_ids))
        return self._floating_ips(self._ctx(), {"port_id": ids}) if ids else {}

    @staticmethod
    def _floating_ips(ctx: Any, filters: dict | None = None) -> dict[str, dict[str, Any]]:
        """Through the L3 service plugin; none without one (no router service: no FIPs)."""
        l3 = directory.get_plugin(plugin_constants.L3)
        if l3 is None:
            return {}
        return {f["id"]: f for f in l3.get_floatingips(ctx, filters=filters)}

    def set_port_status(self, port_id: str, status: str) -> None:
        try:
            self.plugin.update_port_status(self._ctx(), port_id, status)
        except n_exc.PortNotFound:
            log.debug("port %s is gone; not setting its status", port_id)

    def felix_alive(self, host: str) -> None:
        state = {"agent_type": AGENT_TYPE, "binary": AGENT_BINARY, "host": host,
                 "topic": "N/A", "configurations": {},
                 "start_flag": host not in self._agents_seen}
        self.plugin.create_or_update_agent(self._ctx(), state)
        self._agents_seen.add(host)
