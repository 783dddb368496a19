"""A real container runtime (podman, CNI backend) whose every bit of state lives in one folder.

Follows shared/recipes/podman-cni.md: containers.conf and storage.conf under the folder,
CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / TMPDIR pointing at them (the conmon cleanup process
inherits them, so its DEL still finds our network), runc, cgroupfs, file events, our conflist in
`<dir>/cni-net.d` and our plugins in `<dir>/cni-bin` (then /usr/lib/cni). The image is busybox
from busybox-static, imported without a registry.

What podman still writes outside the folder — `/run/netns/netns-*` and the libcni result cache
`/var/lib/cni/results/<network>-*` — is recorded before and removed after (only what appeared
while we ran, so another test's namespaces are left alone). Overlay mounts under the folder are
unmounted before it is deleted.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

IMAGE = "localhost/busybox:latest"
NETNS_GLOB = "/run/netns/netns-*"
RESULTS_DIR = "/var/lib/cni/results"


class Podman:
    def __init__(self, root: str, network: str) -> None:
        self.root = root
        self.network = network
        self.bin_dir = f"{root}/cni-bin"
        self.conf_dir = f"{root}/cni-net.d"
        self.env = dict(os.environ, CONTAINERS_CONF=f"{root}/containers.conf",
                        CONTAINERS_STORAGE_CONF=f"{root}/storage.conf", TMPDIR=f"{root}/tmp")

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True,
                              timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc

    def start(self, name: str, *extra: str) -> str:
        """A detached busybox sleeping on our network; returns the container ID."""
        out = self.run("run", "-d", "--name", name, *extra, IMAGE, "sleep", "600").stdout
        return out.decode().strip()

    def inspect(self, name: str) -> dict:
        return json.loads(self.run("inspect", name).stdout)[0]

    def exec(self, name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("exec", name, *cmd, check=check)

    def write_conflist(self, plugin: dict) -> None:
        conflist = {"cniVersion": "1.0.0", "name": self.network, "plugins": [plugin]}
        with open(f"{self.conf_dir}/{self.network}.conflist", "w") as f:
            json.dump(conflist, f)


def _write_configs(root: str, network: str) -> None:
    for sub in ("cni-bin", "cni-net.d", "tmp", "graph", "runroot", "podman-tmp"):
        os.makedirs(f"{root}/{sub}", exist_ok=True)
    with open(f"{root}/containers.conf", "w") as f:
        f.write(f"""[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[network]
network_backend = "cni"
network_config_dir = "{root}/cni-net.d"
cni_plugin_dirs = ["{root}/cni-bin", "/usr/lib/cni"]
default_network = "{network}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
runtime = "runc"
tmp_dir = "{root}/podman-tmp"
""")
    with open(f"{root}/storage.conf", "w") as f:
        f.write(f"""[storage]
driver = "overlay"
graphroot = "{root}/graph"
runroot = "{root}/runroot"
""")


def _import_busybox(podman: Podman) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox (Debian busybox-static) is missing: run `make setup`")
    rootfs = f"{podman.root}/rootfs"
    os.makedirs(f"{rootfs}/bin", exist_ok=True)
    shutil.copy(busybox, f"{rootfs}/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            with contextlib.suppress(FileExistsError):
                os.symlink("busybox", f"{rootfs}/bin/{applet}")
    for sub in ("etc", "proc", "sys", "dev", "tmp", "run"):
        os.makedirs(f"{rootfs}/{sub}", exist_ok=True)
    tar = f"{podman.root}/busybox.tar"
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    podman.run("import", tar, IMAGE)


def _unmount_under(root: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(root + "/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@contextlib.contextmanager
def podman_runtime(network: str) -> Iterator[Podman]:
    """A podman with its own state folder and an imported busybox; everything it made, and
    every /run/netns/netns-* and libcni result file that appeared meanwhile, is removed at
    the end."""
    root = tempfile.mkdtemp(prefix="cpt-podman-")
    netns_before = set(glob.glob(NETNS_GLOB))
    results_before = set(glob.glob(f"{RESULTS_DIR}/{network}-*"))
    podman = Podman(root, network)
    try:
        _write_configs(root, network)
        _import_busybox(podman)
        yield podman
    finally:
        with contextlib.suppress(Exception):
            podman.run("rm", "-af", "-t", "0", check=False, timeout=180)
        for path in set(glob.glob(NETNS_GLOB)) - netns_before:
            subprocess.run(["umount", path], capture_output=True)
            with contextlib.suppress(OSError):
                os.remove(path)
        for path in set(glob.glob(f"{RESULTS_DIR}/{network}-*")) - results_before:
            with contextlib.suppress(OSError):
                os.remove(path)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
