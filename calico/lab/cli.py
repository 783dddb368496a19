"""`calico-lab`: a multi-host Calico cluster on this machine (network namespaces).

    calico-lab up [--hosts N] [--workloads-per-host M] [--datastore local|etcdv3]
                  [--etcd-endpoints URLS] [--ipv6] [--tor none|gobgp|bird] [--subnets N]
    calico-lab up --racks R --hosts-per-rack H [--spines S] [--as-per-host] ...
                                          (an L3 leaf-spine fabric: ToRs, spines, racks)
    calico-lab status [-o table|json]
    calico-lab add-workload HOST NAME [--labels k=v,...] [--address-space S] [--ip A]
    calico-lab remove-workload NAME
    calico-lab stop-node HOST | start-node HOST
    calico-lab link ROUTER IFNAME up|down (a fabric link, e.g. `link tor1 spine1 down`)
    calico-lab exec NAME -- CMD...        (NAME: a host, a workload, tor, fabric, torN,
                                           spineN)
    calico-lab env                        (export lines pointing calicoctl at the lab)
    calico-lab down

Every command takes `--name LAB` (default "lab", or $CALICO_LAB_NAME), so several labs can
run side by side. Needs root. Errors are one line and exit code 1.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import click

from . import fabric
from .lab import Lab
from .proc import LabError

name_option = click.option("--name", "lab_name", default=lambda: os.environ.get(
    "CALICO_LAB_NAME", "lab"), show_default="lab", help="The lab's name ($CALICO_LAB_NAME).")


def _lab(name: str, loaded: bool = True) -> Lab:
    lab = Lab(name)
    return lab.load() if loaded else lab


def _fail(err: Exception) -> None:
    click.echo(f"calico-lab: {err}", err=True)
    sys.exit(1)


def _parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for pair in (p for p in text.split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LabError(f"--labels: {pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A multi-host Calico cluster on this machine, in network namespaces."""
    if os.geteuid() != 0:
        _fail(LabError("needs root (network namespaces)"))


@cli.command()
@name_option
@click.option("--hosts", default=3, show_default=True, help="Number of hosts.")
@click.option("--workloads-per-host", default=0, show_default=True)
@click.option("--datastore", type=click.Choice(["local", "etcdv3"]), default="local",
              show_default=True)
@click.option("--etcd-endpoints", default=None, help="Use this etcd instead of starting one.")
@click.option("--ipv6", is_flag=True, help="Give hosts and workloads IPv6 addresses too.")
@click.option("--tor", type=click.Choice(["none", "gobgp", "bird"]), default="none",
              show_default=True, help="A ToR BGP peer (AS 64513) on the fabric.")
@click.option("--subnets", default=1, show_default=True,
              help="Deal the hosts into this many IPv4 subnets joined by a router namespace.")
@click.option("--racks", default=0, help="An L3 fabric with this many racks (ToR each).")
@click.option("--hosts-per-rack", default=2, show_default=True)
@click.option("--spines", default=2, show_default=True, help="Spine routers of the fabric.")
@click.option("--as-per-host", is_flag=True,
              help="Fabric: every host its own AS (default: one AS per rack).")
@click.option("--wait", default=30.0, show_default=True,
              help="Seconds to wait for every BGP session to be Established.")
def up(lab_name, hosts, workloads_per_host, datastore, etcd_endpoints, ipv6, tor, subnets,
       racks, hosts_per_rack, spines, as_per_host, wait):
    """Create the hosts, start calico-node on each, add workloads."""
    lab = _lab(lab_name, loaded=False)
    started = time.monotonic()
    try:
        if racks:
            if tor != "none":
                raise LabError("--racks builds its own ToRs: no --tor")
            if subnets > 1:
                raise LabError("--racks puts every rack in its own subnet: no --subnets")
            fabric.up(lab, racks, hosts_per_rack, spines, as_per_host, workloads_per_host,
                      datastore, etcd_endpoints, wait, ipv6)
            hosts = len(lab.state["hosts"])
            tor = f"fabric of {racks} racks, {spines} spines"
        else:
            lab.up(hosts, workloads_per_host, datastore, ipv6, tor, etcd_endpoints, wait,
                   subnets=subnets)
    except LabError as err:
        _fail(err)
    click.echo(f"lab {lab_name} up in {time.monotonic() - started:.1f}s: {hosts} hosts, "
               f"{len(lab.state['workloads'])} workloads, datastore {datastore}"
               f"{', IPv6' if ipv6 else ''}"
               f"{', ' + tor if racks else ', ToR ' + tor if tor != 'none' else ''}"
               f"{f', {subnets} subnets' if subnets > 1 else ''}")


@cli.command()
@name_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def status(lab_name, output):
    """Hosts, workloads and BGP sessions."""
    try:
        st = _lab(lab_name).status()
    except LabError as err:
        _fail(err)
    if output == "json":
        click.echo(json.dumps(st, indent=2))
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _fail(LabError("the status table needs the lab extra (pip install 'calico-py[lab]'); "
                       "-o json needs nothing more"))

    console = Console()
    hosts = Table(title=f"lab {st['name']} — hosts ({st['datastore']['type']} datastore)")
    for col in ("HOST", "ADDRESS", "NETNS", "CALICO-NODE", "BGP PEERS"):
        hosts.add_column(col)
    for h in st["hosts"]:
        up_peers = sum(1 for p in h["bgp"] if p["established"])
        hosts.add_row(h["name"], " ".join(a for a in (h["address"], h["address6"]) if a),
                      h["netns"], "running" if h["running"] else "stopped",
                      f"{up_peers}/{len(h['bgp'])} Established")
    console.print(hosts)
    wls = Table(title="workloads")
    for col in ("WORKLOAD", "HOST", "ADDRESSES", "LABELS"):
        wls.add_column(col)
    for w in st["workloads"]:
        wls.add_row(w["name"], w["host"], " ".join(w["addresses"]),
                    ",".join(f"{k}={v}" for k, v in w["labels"].items()))
    console.print(wls)
    if st.get("l3"):
        console.print(_fabric_table(st["l3"]))
    if st["tor"]:
        t = st["tor"]
        console.print(f"ToR: {t['kind']} AS {t['asn']} at {t['address']} ({t['netns']}), "
                      f"{'running' if t['running'] else 'stopped'}")


def _fabric_table(l3: dict):
    from rich.table import Table

    model = "AS per compute server" if l3["as_per_host"] else "AS per rack"
    table = Table(title=f"L3 fabric — {l3['racks']} racks, {l3['spines']} spines ({model})")
    for col in ("ROUTER", "AS", "ADDRESS", "BIRD", "BGP SESSIONS"):
        table.add_column(col)
    for r in l3["routers"]:
        up_ = sum(1 for s in r["sessions"].values() if s == "Established")
        table.add_row(r["name"], str(r["asn"]), r["address"] or "",
                      "running" if r["running"] else "stopped",
                      f"{up_}/{len(r['sessions'])} Established")
    return table


@cli.command()
@name_option
@click.argument("router")
@click.argument("ifname")
@click.argument("state", type=click.Choice(["up", "down"]))
def link(lab_name, router, ifname, state):
    """Set a fabric link (ROUTER's interface IFNAME, e.g. tor1 spine1) up or down."""
    try:
        fabric.set_link(_lab(lab_name), router, ifname, state == "up")
    except LabError as err:
        _fail(err)


@cli.command("add-workload")
@name_option
@click.argument("host")
@click.argument("name")
@click.option("--labels", default="", help="k=v,k2=v2")
@click.option("--address-space", "space", default=None,
              help="The AddressSpace the workload joins (our extension; default: none).")
@click.option("--ip", default=None, help="An explicit IPv4 address (from the space's pools).")
def add_workload(lab_name, host, name, labels, space, ip):
    """Add a workload NAME on HOST (through the CNI plugin)."""
    try:
        rec = _lab(lab_name).add_workload(host, name, _parse_labels(labels), space, ip)
    except LabError as err:
        _fail(err)
    click.echo(f"workload {name} on {host}: {' '.join(rec['addresses'])}")


@cli.command("remove-workload")
@name_option
@click.argument("name")
def remove_workload(lab_name, name):
    """Remove a workload (CNI DEL, then its namespace)."""
    try:
        _lab(lab_name).remove_workload(name)
    except LabError as err:
        _fail(err)
    click.echo(f"workload {name} removed")


@cli.command("stop-node")
@name_option
@click.argument("host")
def stop_node(lab_name, host):
    """Stop calico-node on HOST (BIRD and Felix with it)."""
    try:
        _lab(lab_name).stop_node(host)
    except LabError as err:
        _fail(err)


@cli.command("start-node")
@name_option
@click.argument("host")
def start_node(lab_name, host):
    """Start calico-node on HOST again."""
    try:
        _lab(lab_name).start_node(host)
    except LabError as err:
        _fail(err)


@cli.command("exec", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab_name, target, command):
    """Run COMMAND inside a host's, workload's, the tor's or the fabric's namespace. In a
    host, calicoctl finds the lab datastore and that host's BIRD socket."""
    try:
        lab = _lab(lab_name)
        ns = lab.netns_of(target)
    except LabError as err:
        _fail(err)
    env = dict(os.environ)
    hosts = {h["name"]: h for h in lab.state["hosts"]}
    if target in hosts:
        env.update(lab.node_env(hosts[target]))
    os.execvpe("ip", ["ip", "netns", "exec", ns, *command], env)


@cli.command()
@name_option
def env(lab_name):
    """Print `export` lines pointing calicoctl (in this namespace) at the lab datastore."""
    try:
        lab = _lab(lab_name)
    except LabError as err:
        _fail(err)
    for key, value in lab.datastore_env(inside=False).items():
        click.echo(f"export {key}={shlex.quote(value)}")
    if os.path.exists("/etc/calico/calicoctl.cfg"):
        click.echo("# note: /etc/calico/calicoctl.cfg exists and wins over these for calicoctl",
                   err=True)


@cli.command()
@name_option
def down(lab_name):
    """Stop everything the lab started and delete its namespaces and state."""
    lab = _lab(lab_name, loaded=False)
    try:
        if lab.exists():
            lab.load()
        gone = lab.down()
    except LabError as err:
        _fail(err)
    click.echo(f"lab {lab_name} down ({len(gone)} namespaces deleted)")


def main() -> None:
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()
