"""`calico-node`: one per host, run in the host's network namespace.

    calico-node [--hostname NAME] [--run-dir DIR] [--cni-socket PATH] [--startup-only]
                [--no-felix] [--no-bgp]

1. Start-up (startup.py): register or update this host's Node (addresses by Calico's IP / IP6
   settings and autodetection methods, AS), create the default IP pools when none exist.
   Then this host's VXLAN tunnel address (tunneladdr.py), when a VXLAN pool wants one.
2. Supervise (supervisor.py), in this order: the tunnel address allocator
   (`python -m calico.node.tunneladdr`, which follows IP pool changes), the BGP daemon (`python -m calico.bgp.daemon`,
   which writes `<run-dir>/bird.conf`), BIRD (`bird -f -R -c <run-dir>/bird.conf -s
   <run-dir>/bird.ctl`, started once the file exists, in graceful-restart recovery) and Felix (`calico-felix --hostname
   NAME`). A child that exits is restarted with back-off; SIGTERM/SIGINT stops them all and
   leaves the routes in place.
3. Meanwhile, serve the CNI plugins' requests on `<run-dir>/cni.sock` (cniserver.py;
   `--cni-socket` / $CALICO_CNI_SOCKET, `none` to disable). If it cannot be served, calico-node
   says why and runs on: the plugins then do their work themselves.

The datastore comes from the environment (DATASTORE_TYPE, ETCD_ENDPOINTS,
CALICO_DATASTORE_PATH) and is passed on to the children. Calico's switches are kept:
CALICO_NETWORKING_BACKEND=none runs no BGP (daemon nor BIRD); ours, CALICO_DISABLE_FELIX=true,
runs no Felix. If `calico-felix` is not installed, calico-node says so once and runs without
it (routes to workloads then come from the CNI plugin alone, and no policy is enforced).

Restarts are quick: when `<run-dir>/bird.conf` is left from the previous run, BIRD starts on
it first, before the datastore client is even imported (about a second of Python start-up),
so its sessions come up while start-up registers the Node; the BGP daemon then renders the
current configuration and reloads BIRD without dropping a session.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from typing import TYPE_CHECKING

import click

from calico import logsetup

from .supervisor import ChildSpec, Supervisor

if TYPE_CHECKING:
    from .cniserver import CNIServer

log = logging.getLogger("calico-node")

DEFAULT_RUN_DIR = "/var/run/calico"
DATASTORE_WAIT = 60.0


def felix_command() -> str | None:
    """The calico-felix executable: beside this interpreter (a venv), else on PATH. None
    while the entry point exists but its module does not (Felix not installed yet)."""
    import importlib.util

    try:
        if importlib.util.find_spec("calico.felix.daemon") is None:
            return None
    except ImportError:
        return None
    beside = os.path.join(os.path.dirname(sys.executable), "calico-felix")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("calico-felix")


def child_specs(hostname: str, run_dir: str, *, felix: bool = True, bgp: bool = True,
                env: dict[str, str] | None = None) -> list[ChildSpec]:
    conf = os.path.join(run_dir, "bird.conf")
    sock = os.path.join(run_dir, "bird.ctl")
    env = dict(os.environ if env is None else env)
    env["NODENAME"] = hostname
    specs = [ChildSpec("tunnel-addrs", [sys.executable, "-m", "calico.node.tunneladdr",
                                        "--hostname", hostname], env)]
    if bgp:
        specs.append(ChildSpec("bgp-daemon", [sys.executable, "-m", "calico.bgp.daemon",
                                              "--hostname", hostname, "--config", conf,
                                              "--socket", sock], env))
        # -R: start in graceful-restart recovery (as Calico's calico-node does), so that the
        # kernel protocol (`graceful restart`, `persist`) keeps the routes a previous BIRD
        # programmed until the BGP sessions are back and have sent End-of-RIB, instead of
        # pruning routes to other hosts' blocks at start and dropping their traffic.
        specs.append(ChildSpec("bird", ["bird", "-f", "-R", "-c", conf, "-s", sock,
                                        "-P", os.path.join(run_dir, "bird.pid")], env,
                               ready=lambda: os.path.exists(conf)))
    if felix:
        cmd = felix_command()
        if cmd is None:
            log.warning("calico-felix is not installed: running without Felix (no policy; "
                        "workload routes come from the CNI plugin only)")
        else:
            specs.append(ChildSpec("felix", [cmd, "--hostname", hostname], env))
    return specs


def nodename_from_env(hostname: str | None) -> str:
    """The Node name StartupConfig.from_env will use (NODENAME, HOSTNAME, the host name)."""
    import socket

    return (hostname or os.environ.get("NODENAME") or os.environ.get("HOSTNAME")
            or socket.gethostname()).strip().lower()


def _connect_with_retry(config, wait: float = DATASTORE_WAIT):
    from calico.datastore import connect
    from calico.datastore.kv import DatastoreError

    deadline = time.monotonic() + wait
    while True:
        backend = connect(config)
        try:
            backend.revision()
            return backend
        except DatastoreError as err:
            backend.close()
            if time.monotonic() > deadline:
                raise
            log.warning("datastore not reachable yet (%s); retrying", err)
            time.sleep(1.0)


def _tunnel_addrs(client, backend, nodename: str) -> None:
    """Allocate (or release) the VXLAN tunnel address before Felix starts; a failure is
    logged, and the supervised allocator retries."""
    from calico.ipam import IPAM, IPAMError

    from .tunneladdr import reconcile as reconcile_tunnel_addrs

    try:
        reconcile_tunnel_addrs(client, IPAM(backend, nodename), nodename)
    except IPAMError as err:
        log.warning("VXLAN tunnel address not allocated yet: %s", err)


def _flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("true", "1", "yes")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--hostname", default=None, help="The Node name (default: $NODENAME, the host "
              "name).")
@click.option("--run-dir", default=lambda: os.environ.get("CALICO_RUN_DIR", DEFAULT_RUN_DIR),
              show_default=DEFAULT_RUN_DIR, help="Where bird.conf, bird.ctl and the node name "
              "file go ($CALICO_RUN_DIR).")
@click.option("--cni-socket", default=lambda: os.environ.get("CALICO_CNI_SOCKET"),
              help="Where the CNI plugins hand their requests over ($CALICO_CNI_SOCKET; "
              "default <run-dir>/cni.sock; 'none' disables).")
@click.option("--startup-only", is_flag=True, help="Register the Node and pools, then exit.")
@click.option("--no-felix", is_flag=True, help="Do not run Felix.")
@click.option("--no-bgp", is_flag=True, help="Run neither the BGP daemon nor BIRD.")
def main(hostname, run_dir, cni_socket, startup_only, no_felix, no_bgp) -> None:
    """Register this host's Calico Node and run Felix, the BGP daemon and BIRD."""
    try:
        logsetup.configure("calico-node", logsetup.calico_node_config(os.environ))
    except ValueError as err:
        click.echo(f"calico-node: {err}", err=True)
        sys.exit(1)
    bgp = not no_bgp and os.environ.get("CALICO_NETWORKING_BACKEND", "bird") != "none"
    felix = not no_felix and not _flag("CALICO_DISABLE_FELIX")
    sup = None
    if not startup_only:
        sup = Supervisor(child_specs(nodename_from_env(hostname), run_dir, felix=felix,
                                     bgp=bgp))
        # A SIGTERM during start-up must not leave the early BIRD behind: exit through the
        # clean-up below instead of dying where we stand.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _exit_on_signal)
        if bgp:
            sup.step(only=("bird",))  # on the previous run's bird.conf, if there is one
    try:
        nodename = _start_up(hostname, run_dir)
    except (SystemExit, KeyboardInterrupt):
        if sup is not None:
            sup.stop_children()
        raise
    if sup is None:
        log.info("start-up done for node %s", nodename)
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sup.stop())
    from .cniserver import socket_path

    cni = start_cni_server(socket_path(run_dir, cni_socket))
    log.info("calico-node %s running: %s", nodename,
             ", ".join(c.spec.name for c in sup.children) or "no children")
    try:
        sup.run()
    finally:
        if cni is not None:
            cni.close()
    log.info("calico-node %s stopped", nodename)


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _start_up(hostname: str | None, run_dir: str) -> str:
    """Register the Node and default pools; the node name. Exits 1 on a clear error."""
    from calico.datastore import DatastoreConfig
    from calico.datastore.client import ResourceClient
    from calico.datastore.kv import DatastoreError

    from .startup import StartupConfig, StartupError, ensure_default_pools, register_node

    try:
        cfg = StartupConfig.from_env(nodename=hostname)
        backend = _connect_with_retry(DatastoreConfig.from_env())
    except (DatastoreError, StartupError) as err:
        click.echo(f"calico-node: {err}", err=True)
        sys.exit(1)
    try:
        client = ResourceClient(backend)
        node = register_node(client, cfg)
        ensure_default_pools(client, cfg, node)
        _tunnel_addrs(client, backend, cfg.nodename)
    except (StartupError, DatastoreError, ValueError) as err:
        click.echo(f"calico-node: {err}", err=True)
        sys.exit(1)
    finally:
        backend.close()
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "nodename"), "w") as f:
        f.write(cfg.nodename)
    return cfg.nodename


def start_cni_server(path: str) -> CNIServer | None:
    """The CNI socket, or None (disabled, or it cannot be served: the plugins then work
    alone, which is slower but gives the same results)."""
    if not path:
        return None
    from .cniserver import CNIServer, CNIServerError

    server = CNIServer(path)
    try:
        server.start()
    except (CNIServerError, OSError) as err:
        log.error("not serving CNI requests on %s: %s", path, err)
        return None
    return server


if __name__ == "__main__":
    main()
