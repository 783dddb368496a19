"""`calico-ipam`: the CNI IPAM plugin over calico.ipam (also called in-process by `calico`).

ADD assigns addresses to the handle `<network name>.<container id>` (Calico's handle id):
- explicit addresses when asked for (CNI_ARGS `IP=a[,b]`, the `ips` capability, args.cni.ips):
  each must lie in an enabled pool and be free; all or none;
- otherwise one IPv4 address when `ipam.assign_ipv4` (default "true") from `ipam.ipv4_pools`
  (names or CIDRs; default: every pool this host may use) and one IPv6 address when
  `ipam.assign_ipv6` (default "false") from `ipam.ipv6_pools`.
The answer is a CNI result with `ips` only (/32 and /128), no interfaces, no routes. Each
allocation carries the attributes `calico.ipam.workload_attrs` gives it (node, namespace,
workloadEndpoint, timestamp; pod under k8s), so `calicoctl ipam check` can find leaks.

DEL releases everything the handle holds; a handle that holds nothing is success. CHECK
verifies that the addresses of prevResult are still assigned to the handle.

IPAM is compare-and-swap safe by itself; the host-wide file lock (`ipam_lock_file`) only keeps
concurrent ADDs on one host from fighting over the same block (Calico's plugin holds one too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from calico.datastore.kv import Backend, DatastoreError

from .netconf import NetConf, WorkloadIDs, requested_ips
from .resources import ONE_SHOT, Resources
from .spec import (
    CHECK_FAILED,
    IPAM_FAILURE,
    CmdArgs,
    CNIError,
    IPConfig,
    Result,
    datastore_error,
    require_check_version,
)


@contextlib.contextmanager
def host_lock(path: str) -> Iterator[None]:
    """An exclusive flock on `path` (created if needed) for the duration of the block."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise CNIError(IPAM_FAILURE, f"cannot open the IPAM lock file {path}",
                       err.strerror or str(err)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _attrs(ids: WorkloadIDs) -> dict[str, str]:
    from calico.ipam import workload_attrs

    extra = {"pod": ids.pod} if ids.pod else {"containerID": ids.container_id}
    return workload_attrs(ids.node, ids.namespace, ids.endpoint_name(), **extra)


def assign(conf: NetConf, args: CmdArgs, backend: Backend,
           res: Resources = ONE_SHOT) -> Result:
    """ADD: the addresses for this container's handle (see the module docstring)."""
    from calico.ipam import IPAMError

    ids = WorkloadIDs.of(conf, args)
    handle = ids.handle_id(conf.name)
    attrs = _attrs(ids)
    wanted = requested_ips(conf, args)
    try:
        with host_lock(conf.ipam_lock_file), res.ipam(backend, ids.node, conf.address_space or None) as ipam:
            if wanted:
                addresses = _assign_explicit(ipam, wanted, handle, attrs)
            else:
                addresses = _assign_auto(ipam, conf, handle, attrs)
    except IPAMError as err:
        raise CNIError(IPAM_FAILURE, "failed to assign an IP address",
                       f"{err} (handle {handle}, host {ids.node})") from None
    except DatastoreError as err:
        raise datastore_error("failed to assign an IP address", err) from None
    if not addresses:
        raise CNIError(IPAM_FAILURE, "no IP address requested",
                       "ipam.assign_ipv4 and ipam.assign_ipv6 are both false")
    return Result(ips=[IPConfig(f"{a}/{32 if ':' not in a else 128}") for a in addresses])


def _assign_explicit(ipam, wanted: list[str], handle: str, attrs: dict) -> list[str]:
    done: list[str] = []
    try:
        for ip in wanted:
            ipam.assign_ip(ip, handle, attrs)
            done.append(ip)
    except BaseException:
        if done:
            ipam.release_ips(done)
        raise
    return done


def _assign_auto(ipam, conf: NetConf, handle: str, attrs: dict) -> list[str]:
    v4: list[str] = []
    if conf.address_space:  # a space's workloads have IPv4 addresses only
        v4, _ = ipam.auto_assign(1, 0, handle, attrs, pools=list(conf.ipam.ipv4_pools) or None)
        return v4
    if conf.ipam.assign_ipv4:
        v4, _ = ipam.auto_assign(1, 0, handle, attrs, pools=list(conf.ipam.ipv4_pools) or None)
    try:
        v6: list[str] = []
        if conf.ipam.assign_ipv6:
            _, v6 = ipam.auto_assign(0, 1, handle, attrs,
                                     pools=list(conf.ipam.ipv6_pools) or None)
    except BaseException:
        if v4:
            ipam.release_ips(v4)
        raise
    return v4 + v6


def release(conf: NetConf, args: CmdArgs, backend: Backend,
            res: Resources = ONE_SHOT) -> list[str]:
    """DEL: release what the handle holds (idempotent); returns the addresses released."""
    from calico.ipam import IPAMError

    ids = WorkloadIDs.of(conf, args)
    handle = ids.handle_id(conf.name)
    try:
        with host_lock(conf.ipam_lock_file), res.ipam(backend, ids.node, conf.address_space or None) as ipam:
            return ipam.release_by_handle(handle)
    except IPAMError as err:
        raise CNIError(IPAM_FAILURE, "failed to release IP addresses",
                       f"{err} (handle {handle})") from None
    except DatastoreError as err:
        raise datastore_error(f"failed to release the addresses of handle {handle}",
                              err) from None


def check(conf: NetConf, args: CmdArgs, backend: Backend, addresses: list[str],
          res: Resources = ONE_SHOT) -> None:
    """CHECK: every address is still assigned to this container's handle."""
    ids = WorkloadIDs.of(conf, args)
    with res.ipam(backend, ids.node, conf.address_space or None) as ipam:
        _check(ipam, ids.handle_id(conf.name), addresses)


def _check(ipam, handle: str, addresses: list[str]) -> None:
    for cidr in addresses:
        ip = cidr.split("/")[0]
        try:
            assignment = ipam.get_assignment(ip)
        except DatastoreError as err:
            raise datastore_error(f"failed to read the assignment of {ip}", err) from None
        if assignment is None or assignment.handle_id != handle:
            owner = f"handle {assignment.handle_id}" if assignment else "nobody"
            raise CNIError(CHECK_FAILED, f"address {ip} is not assigned to this container",
                           f"expected handle {handle}, found {owner}")


# ---- the plugin binary -------------------------------------------------------------------

def handlers(res: Resources = ONE_SHOT) -> dict:
    """ADD / DEL / CHECK of the `calico-ipam` executable, with connections from `res`."""

    def run(args: CmdArgs, step) -> Result | None:
        conf = NetConf.parse(args.stdin, dict(args.env))
        if args.command == "CHECK":
            require_check_version(conf)
        backend = res.backend(conf.datastore)
        try:
            return step(conf, backend)
        finally:
            res.done(backend)

    def add(args: CmdArgs) -> Result | None:
        return run(args, lambda conf, backend: assign(conf, args, backend, res))

    def delete(args: CmdArgs) -> None:
        run(args, lambda conf, backend: release(conf, args, backend, res))

    def check_(args: CmdArgs) -> None:
        run(args, lambda conf, backend: check(conf, args, backend,
                                              [ip.address for ip in conf.prev_result.ips], res))

    return {"ADD": add, "DEL": delete, "CHECK": check_}


HANDLERS = handlers()
