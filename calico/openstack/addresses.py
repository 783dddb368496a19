"""Neutron's fixed IPs recorded in Calico IPAM, so Calico never hands them out twice.

Neutron allocates a port's addresses itself; Calico IPAM only has to know they are taken.
For each fixed IP inside an enabled IPPool, `claim` assigns exactly that address with handle
= the port id (attributes: node, namespace `openstack`, port); `release` frees every address
of a port's handle. Addresses outside every pool are Neutron's alone and are skipped.
A port of a network mapped to an address space (spaces.py) claims and releases in that
space's IPAM (`space=`). IPAM failures are logged, never raised: Neutron has already committed
the port, and the next resync claims again.

Neutron's event handlers and the resync thread call in concurrently, while an `IPAM` instance
serves one thread at a time (its block cache is unlocked): one lock serialises every claim and
release, so a commit's cached block text is never another thread's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from calico.datastore.kv import Backend, DatastoreError

from . import names

log = logging.getLogger(__name__)


class PortAddresses:
    """Records Neutron ports' fixed IPs in Calico IPAM (handle = port id, one IPAM per host);
    `claim` and `release` log IPAM and datastore failures instead of raising: the resync claims
    again."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._ipam: dict[tuple[str, str | None], object] = {}
        self._lock = threading.Lock()  # guards _ipam and every IPAM call (see module doc)

    def _for_host(self, host: str, space: str | None = None):
        from calico.ipam import IPAM

        if (host, space) not in self._ipam:
            self._ipam[host, space] = IPAM(self.backend, host, address_space=space)
        return self._ipam[host, space]

    def claim(self, port_id: str, host: str, ips: Iterable[str],
              space: str | None = None) -> list[str]:
        """Assign each of `ips` to handle `port_id` (in address space `space`) unless it
        already is; returns the addresses newly assigned."""
        with self._lock:
            return self._claim(self._for_host(host, space), port_id, host, ips)

    def _claim(self, ipam, port_id: str, host: str, ips: Iterable[str]) -> list[str]:
        from calico.ipam import AddressInUseError, IPAMError

        done = []
        for ip in ips:
            try:
                current = ipam.get_assignment(ip)
                if current is not None:
                    if current.handle_id != port_id:
                        log.warning("port %s: address %s is held in Calico IPAM by handle %s",
                                    port_id, ip, current.handle_id)
                    continue
                ipam.assign_ip(ip, port_id, {"node": host, "namespace": names.NAMESPACE,
                                             "port": port_id})
                done.append(ip)
            except AddressInUseError as err:
                log.warning("port %s: %s", port_id, err)
            except IPAMError as err:  # not in a pool: Neutron's alone
                log.debug("port %s: %s not recorded in Calico IPAM: %s", port_id, ip, err)
            except DatastoreError as err:
                log.warning("port %s: recording %s in IPAM failed: %s", port_id, ip, err)
        return done

    def release(self, port_id: str, host: str = "", space: str | None = None) -> list[str]:
        try:
            with self._lock:
                return self._for_host(host or "openstack", space).release_by_handle(port_id)
        except Exception as err:  # noqa: BLE001 - never fail the caller over IPAM
            log.warning("port %s: releasing its addresses failed: %s", port_id, err)
            return []
