"""`calico`: the CNI plugin. ADD, DEL and CHECK for one container interface.

ADD, in Calico's order, undoing everything done so far when a step fails (nothing leaks):
1. parse and check the config, the environment and the resources it will write;
2. addresses from IPAM: `calico-ipam` runs in-process (same code as the `calico-ipam` binary,
   without a second interpreter start), any other `ipam.type` is run from CNI_PATH as libcni
   runs it; the answer is narrowed to /32 and /128;
3. the veth (dataplane.py);
4. the WorkloadEndpoint, then the network's Profile if it does not exist (endpoint.py);
5. the result: interfaces [host side, container side (with sandbox)], ips (pointing at the
   container side, IPv4 gateway 169.254.1.1) and the container's default routes, rendered in
   the config's cniVersion.
An ADD for an endpoint that already exists with its host interface present answers from the
endpoint and only adds the network's profile to it (Calico: a container joining a second
network). If the endpoint exists but its interface is gone, it is a leftover: it is removed
with its addresses and the ADD starts afresh.

DEL releases the addresses (by handle), deletes the endpoint and the veth; each part that is
already gone is success, so a second DEL succeeds and a DEL after the namespace is gone does
its datastore work. CHECK (cniVersion 0.4.0 and later, with prevResult) verifies the endpoint,
the addresses' assignment, and the container's interface, addresses and routes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys

from calico.api import ValidationError
from calico.datastore.client import ResourceClient
from calico.datastore.kv import DatastoreError

from . import delegate, endpoint, ipam_plugin
from .dataplane import GATEWAY_V4, HOST_MAC, DataplaneError, LinuxDataplane, NetnsNotFound
from .netconf import NetConf, WorkloadIDs, endpoint_labels
from .resources import ONE_SHOT, Resources
from .spec import (
    CHECK_FAILED,
    DATAPLANE_FAILURE,
    INVALID_CONFIG,
    IPAM_FAILURE,
    UNKNOWN_CONTAINER,
    CmdArgs,
    CNIError,
    Interface,
    IPConfig,
    Result,
    Route,
    datastore_error,
    require_check_version,
)

log = logging.getLogger("calico.cni")
CALICO_IPAM = "calico-ipam"


def configure_logging(conf: NetConf) -> None:
    level = getattr(logging, conf.log_level.upper(), logging.WARNING)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if conf.log_file_path:
        os.makedirs(os.path.dirname(conf.log_file_path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(conf.log_file_path))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")


class Plugin:
    """One ADD, DEL or CHECK for one container interface, in the order above; a failed ADD undoes
    what it did. The dataplane is passed in (tests pass a fake)."""

    def __init__(self, args: CmdArgs, dataplane: LinuxDataplane | None = None,
                 res: Resources = ONE_SHOT) -> None:
        self.args = args
        self.res = res
        self.conf = NetConf.parse(args.stdin, dict(args.env))
        if res.own_process:
            configure_logging(self.conf)
        self.ids = WorkloadIDs.of(self.conf, args)
        self.name = self.ids.endpoint_name()
        self.host_name = self.ids.host_veth_name()
        self.dataplane = dataplane or LinuxDataplane()
        self._backend = None

    @property
    def client(self) -> ResourceClient:
        if self._backend is None:
            self._backend = self.res.backend(self.conf.datastore)
        return ResourceClient(self._backend)

    def close(self) -> None:
        if self._backend is not None:
            self.res.done(self._backend)

    # ---- IPAM: in-process calico-ipam or a delegated plugin ------------------------------

    def _ipam_type(self) -> str:
        if not self.conf.ipam.type:
            raise CNIError(INVALID_CONFIG, "invalid network configuration: ipam.type must be "
                           "set", 'e.g. "ipam": {"type": "calico-ipam"}')
        return self.conf.ipam.type

    def ipam_add(self) -> Result:
        if self._ipam_type() == CALICO_IPAM:
            self.client  # noqa: B018  (opens the backend)
            return ipam_plugin.assign(self.conf, self.args, self._backend, self.res)
        result = delegate.exec_plugin(self._ipam_type(), "ADD", self.args)
        assert result is not None
        return result

    def ipam_del(self) -> None:
        if self._ipam_type() == CALICO_IPAM:
            self.client  # noqa: B018
            ipam_plugin.release(self.conf, self.args, self._backend, self.res)
        else:
            delegate.exec_plugin(self._ipam_type(), "DEL", self.args)

    # ---- ADD -----------------------------------------------------------------------------

    def add(self) -> Result:
        self._ipam_type()
        labels = endpoint_labels(self.conf, self.args)
        endpoint.check_documents(self.conf, self.ids, self.name, labels)
        if not os.path.exists(self.args.netns):
            raise CNIError(UNKNOWN_CONTAINER, f"network namespace {self.args.netns} does not "
                           "exist", f"container {self.args.container_id}")
        try:
            existing = endpoint.get_endpoint(self.client, self.name, self.ids.namespace)
            if existing is not None:
                if self.dataplane.host_interface_exists(existing.spec.interfaceName):
                    return self._join_network(existing)
                log.warning("removing leftover endpoint %s (its interface %s is gone)",
                            self.name, existing.spec.interfaceName)
                self.delete()
        except DatastoreError as err:
            raise datastore_error(f"failed to read WorkloadEndpoint {self.name}", err) from None

        ipam_result = self.ipam_add()
        try:
            return self._add_with(ipam_result, labels)
        except BaseException as err:
            log.error("ADD of %s failed (%s): undoing it", self.name, err)
            self._undo_add()
            raise

    def _add_with(self, ipam_result: Result, labels: dict[str, str]) -> Result:
        addresses = _host_addresses(ipam_result)
        if not addresses:
            raise CNIError(IPAM_FAILURE, f"IPAM plugin {self.conf.ipam.type} returned no IP "
                           "addresses")
        try:
            veth = self.dataplane.setup(self.args.netns, self.args.ifname, self.host_name,
                                        addresses, self.conf.mtu,
                                        self.conf.allow_ip_forwarding,
                                        **({"host_routes": False} if self.conf.address_space
                                           else {}))
        except NetnsNotFound as err:
            raise CNIError(UNKNOWN_CONTAINER, str(err), f"container {self.args.container_id}")\
                from None
        except DataplaneError as err:
            raise CNIError(DATAPLANE_FAILURE, "failed to set up the container's interface",
                           str(err)) from None
        doc = endpoint.endpoint_doc(self.ids, self.name, self.conf, labels, addresses,
                                    veth.container_mac, veth.host_name)
        try:
            endpoint.write_endpoint(self.client, doc)
            endpoint.ensure_profile(self.client, self.conf, self.ids)
        except (DatastoreError, ValidationError) as err:
            raise datastore_error(f"failed to write WorkloadEndpoint {self.name}", err) from None
        return self._result(addresses, veth.container_mac, veth.host_link_local)

    def _undo_add(self) -> None:
        for step in (lambda: endpoint.delete_endpoint(self.client, self.name,
                                                      self.ids.namespace),
                     lambda: self.dataplane.teardown(self.args.netns, self.args.ifname,
                                                     self.host_name),
                     self.ipam_del):
            try:
                step()
            except Exception as err:  # keep undoing; the original error is what matters
                log.error("while undoing a failed ADD: %s", err)

    def _join_network(self, existing) -> Result:
        profiles = list(existing.spec.profiles or [])
        try:
            if not self.conf.policy_type and self.conf.name not in profiles:
                doc = existing.to_dict()
                doc["spec"]["profiles"] = profiles + [self.conf.name]
                self.client.update(doc)  # CAS on the version we read
            endpoint.ensure_profile(self.client, self.conf, self.ids)
        except DatastoreError as err:
            raise datastore_error(f"failed to add profile {self.conf.name} to WorkloadEndpoint "
                                  f"{self.name}", err) from None
        nets = list(existing.spec.ipNetworks or [])
        has_v6 = any(ipaddress.ip_interface(n).version == 6 for n in nets)
        link_local = self.dataplane.host_link_local(existing.spec.interfaceName) \
            if has_v6 else ""
        return self._result(nets, existing.spec.mac or "", link_local)

    def _result(self, addresses: list[str], mac: str, link_local: str) -> Result:
        result = Result(interfaces=[
            Interface(self.host_name, HOST_MAC),
            Interface(self.args.ifname, mac, self.args.netns)])
        for cidr in addresses:
            v4 = ipaddress.ip_interface(cidr).version == 4
            result.ips.append(IPConfig(cidr, GATEWAY_V4 if v4 else "", interface=1))
        if any(ip.version == 4 for ip in result.ips):
            result.routes.append(Route("0.0.0.0/0", GATEWAY_V4))
        if link_local:
            result.routes.append(Route("::/0", link_local))
        return result

    # ---- DEL -----------------------------------------------------------------------------

    def delete(self) -> None:
        errors: list[CNIError] = []
        try:
            self.ipam_del()
        except CNIError as err:
            errors.append(err)
        try:
            endpoint.delete_endpoint(self.client, self.name, self.ids.namespace)
        except DatastoreError as err:
            errors.append(datastore_error(f"failed to delete WorkloadEndpoint {self.name}", err))
        try:
            self.dataplane.teardown(self.args.netns, self.args.ifname, self.host_name)
        except DataplaneError as err:
            errors.append(CNIError(DATAPLANE_FAILURE, "failed to remove the container's "
                                   "interface", str(err)))
        if errors:
            raise errors[0]

    # ---- CHECK ---------------------------------------------------------------------------

    def check(self) -> None:
        require_check_version(self.conf)
        prev = self.conf.prev_result
        assert prev is not None
        addresses = [ip.address for ip in prev.ips]
        try:
            wep = endpoint.get_endpoint(self.client, self.name, self.ids.namespace)
        except DatastoreError as err:
            raise datastore_error(f"failed to read WorkloadEndpoint {self.name}", err) from None
        if wep is None:
            raise CNIError(CHECK_FAILED, f"WorkloadEndpoint {self.ids.namespace}/{self.name} "
                           "does not exist", f"container {self.args.container_id}")
        have = sorted(wep.spec.ipNetworks or [])
        if have != sorted(addresses):
            raise CNIError(CHECK_FAILED, f"WorkloadEndpoint {self.name} has other addresses "
                           "than prevResult", f"endpoint {have}, prevResult {sorted(addresses)}")
        if self._ipam_type() == CALICO_IPAM:
            ipam_plugin.check(self.conf, self.args, self._backend, addresses, self.res)
        else:
            delegate.exec_plugin(self._ipam_type(), "CHECK", self.args)
        try:
            problems = self.dataplane.check(self.args.netns, self.args.ifname,
                                            wep.spec.interfaceName, addresses)
        except NetnsNotFound as err:
            raise CNIError(UNKNOWN_CONTAINER, str(err), f"container {self.args.container_id}")\
                from None
        except DataplaneError as err:
            raise CNIError(DATAPLANE_FAILURE, "failed to read the container's interface",
                           str(err)) from None
        if problems:
            raise CNIError(CHECK_FAILED, f"container {self.args.container_id} is not as ADD "
                           "left it", "; ".join(problems))


def _host_addresses(result: Result) -> list[str]:
    """IPAM's addresses as /32 and /128 (host-local hands out its subnet's prefix length)."""
    out = []
    for ip in result.ips:
        addr = ipaddress.ip_interface(ip.address).ip
        out.append(f"{addr}/{addr.max_prefixlen}")
    return out


def handlers(res: Resources = ONE_SHOT) -> dict:
    """ADD / DEL / CHECK of the `calico` executable, with connections from `res`."""

    def run(method: str):
        def handler(args: CmdArgs) -> Result | None:
            plugin = Plugin(args, res=res)
            try:
                return getattr(plugin, method)()
            finally:
                plugin.close()
        return handler

    return {"ADD": run("add"), "DEL": run("delete"), "CHECK": run("check")}


HANDLERS = handlers()
