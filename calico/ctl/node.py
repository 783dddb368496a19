"""`calicoctl node status`: is BIRD running, and the state of each BGP peer, per IP family.

Read through `birdc show protocols` on BIRD's control socket (`--bird-socket`, default
/var/run/calico/bird.ctl, where calico-node puts it), in the layout of Calico's command:

    Calico process is running.

    IPv4 BGP status
    +--------------+-------------------+-------+----------+-------------+
    | PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
    +--------------+-------------------+-------+----------+-------------+
    | 10.0.0.2     | node-to-node mesh | up    | 09:46:01 | Established |
    +--------------+-------------------+-------+----------+-------------+

    IPv6 BGP status
    No IPv6 peers found.

Exit code 1 (with "Calico process is not running.") when BIRD does not answer.
"""

from __future__ import annotations

import os
import sys

import click

from calico.bgp.status import BirdUnavailable, PeerStatus, bird_peers

DEFAULT_SOCKET = "/var/run/calico/bird.ctl"
HEADERS = ("PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    # Centred as Calico's tablewriter centres: an odd space goes to the right.
    head = "|" + "|".join(f" {' ' * ((w - len(h)) // 2)}{h.ljust(w - (w - len(h)) // 2)} "
                          for h, w in zip(HEADERS, widths, strict=True))
    body = ["|" + "|".join(f" {c.ljust(w)} " for c, w in zip(r, widths, strict=True)) + "|"
            for r in rows]
    return "\n".join([rule, head + "|", rule, *body, rule])


def format_status(peers: list[PeerStatus]) -> str:
    out = ["Calico process is running.", ""]
    for version in (4, 6):
        mine = [p for p in peers if p.version == version]
        out.append(f"IPv{version} BGP status")
        if mine:
            out.append(_table([(p.address, p.type, p.state, p.since, p.info) for p in mine]))
        else:
            out.append(f"No IPv{version} peers found.")
        out.append("")
    return "\n".join(out)


@click.group()
def node() -> None:
    """Calico node management."""


@node.command()
@click.option("-s", "--bird-socket", default=lambda: os.environ.get("CALICO_BIRD_SOCKET",
                                                                    DEFAULT_SOCKET),
              show_default=DEFAULT_SOCKET,
              help="BIRD's control socket ($CALICO_BIRD_SOCKET).")
def status(bird_socket: str) -> None:
    """Show this node's BIRD state and BGP peers."""
    try:
        peers = bird_peers(bird_socket)
    except BirdUnavailable as err:
        click.echo("Calico process is not running.")
        click.echo(f"(BIRD does not answer on {bird_socket}: {err})", err=True)
        sys.exit(1)
    click.echo(format_status(peers))


@node.command()
@click.option("--kernel-config", default=None,
              help="Accepted for compatibility: features are probed, not read from a file.")
def checksystem(kernel_config: str | None) -> None:
    """Check that this host's kernel has what Calico needs (probed in a throwaway netns)."""
    from .checksystem import checksystem as run_checks

    if os.geteuid() != 0:
        click.echo("This command must be run as root.", err=True)
        sys.exit(1)
    if not run_checks(click.echo):
        click.echo("system doesn't meet one or more minimum systems requirements to run Calico",
                   err=True)
        sys.exit(1)
