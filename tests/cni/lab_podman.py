"""Podman running inside a lab host: the container runtime of one `calico-lab` host.

Podman (and so our CNI plugin, which it executes, and conmon's cleanup process that runs DEL)
is started with `nsenter --net=/run/netns/<host ns>`: it enters the host's *network* namespace
only. The plugin therefore creates the host side of the veth, its routes and sysctls in the lab
host, where that host's Felix polices the endpoint and its BIRD advertises the block.

Why not `ip netns exec <host ns> podman ...`: `ip netns exec` also unshares the mount
namespace and mounts a fresh sysfs on /sys, which hides /sys/fs/cgroup; runc then fails with
"no cgroup mount found in mountinfo". The private mount namespace would also hide the
/run/netns/netns-* bind mount podman makes for the container from the later `podman rm`.
Entering only the network namespace is what `ip netns exec` does for networking, without that.

The rest of the state handling is tests/cni/podman.py's `podman_runtime` (its own
containers.conf / storage.conf / TMPDIR, cleanup of /run/netns and the libcni cache).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from calico.cni import install
from calico.lab.lab import Lab

from .podman import Podman, podman_runtime

CALICOCTL = os.path.join(os.path.dirname(sys.executable), "calicoctl")


class HostPodman(Podman):
    """A Podman whose every command runs in one network namespace (a lab host's)."""

    def __init__(self, root: str, network: str, netns: str) -> None:
        super().__init__(root, network)
        self.netns = netns

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        argv = ["nsenter", f"--net=/run/netns/{self.netns}", "podman", *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout,
                              input=input)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} (in {self.netns}) failed "
                               f"({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc


@contextlib.contextmanager
def host_podman(lab: Lab, host: str, network: str, labels: dict[str, str]
                ) -> Iterator[HostPodman]:
    """Podman in `host`'s namespace with our plugins and a conflist naming that host and the
    lab's datastore. Its containers are removed (DEL in the host) before the base runtime
    cleans its folder, so nothing of it outlives the lab."""
    with podman_runtime(network) as base:
        h = lab.host(host)
        podman = HostPodman(base.root, network, h["netns"])
        install(podman.bin_dir)
        podman.write_conflist(lab_plugin_conf(lab, host, labels))
        try:
            yield podman
        finally:
            podman.run("rm", "-af", "-t", "0", check=False, timeout=180)


def lab_plugin_conf(lab: Lab, host: str, labels: dict[str, str]) -> dict[str, Any]:
    """Our `calico` plugin as the lab host runs it: nodename = the host, the lab's local
    datastore, the host's IPAM lock and calico-node's CNI socket (so the requests are run by
    that host's calico-node), both families when the lab has IPv6."""
    ds = lab.state["datastore"]
    if ds["type"] != "local":
        raise ValueError("host_podman supports the lab's local datastore only")
    h = lab.host(host)
    return {"type": "calico", "nodename": host, "datastore_type": "local",
            "datastore_path": ds["path"], "mtu": 1500, "log_level": "warning",
            "ipam_lock_file": os.path.join(h["run_dir"], "ipam.lock"),
            "calico_node_socket": os.path.join(h["run_dir"], "cni.sock"),
            "ipam": {"type": "calico-ipam", "assign_ipv4": "true",
                     "assign_ipv6": "true" if lab.state["ipv6"] else "false"},
            "labels": labels}


class Calicoctl:
    """calicoctl pointed at the lab's datastore through a CalicoAPIConfig file."""

    def __init__(self, lab: Lab, folder: str) -> None:
        self.config = os.path.join(folder, "calicoctl.cfg")
        with open(self.config, "w") as f:
            f.write("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
                    f"spec:\n  datastoreType: local\n"
                    f"  datastorePath: {lab.state['datastore']['path']}\n")

    def __call__(self, *args: str, input: str | None = None, check: bool = True
                 ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATASTORE_", "ETCD_", "CALICO_"))}
        # -c last: it is an option of the (sub)command, which click parses anywhere in it.
        proc = subprocess.run([CALICOCTL, *args, "-c", self.config], env=env, capture_output=True, text=True, input=input,
                              timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"calicoctl {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stdout}{proc.stderr}")
        return proc
