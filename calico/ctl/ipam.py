"""`calicoctl ipam`: show usage, who holds an address, release, check for leaks and fix them,
and configure strict affinity. Output follows Calico's calicoctl where it has the command;
`check --fix` is ours (Calico's check only writes a report)."""

from __future__ import annotations

import sys
from typing import Any

import click

from calico.datastore import kv
from calico.ipam import IPAM, IPAMConfig, IPAMError

from .session import CtlError, Session


def _ipam(config: str) -> IPAM:
    # calicoctl acts for no host: the hostname only matters for allocation, never done here.
    return IPAM(Session.from_config(config).backend, hostname="calicoctl")


def _run(fn: Any, *args: Any) -> None:
    try:
        ok = fn(*args)
    except kv.Unreachable as err:
        click.echo(f"Failed to execute command: datastore unreachable: {err}", err=True)
        sys.exit(1)
    except (CtlError, IPAMError, kv.DatastoreError, ValueError) as err:
        click.echo(f"Failed to execute command: {err}", err=True)
        sys.exit(1)
    if ok is False:
        sys.exit(1)


def _percent(part: int, whole: int) -> str:
    return f"{part} ({round(100 * part / whole) if whole else 0}%)"


def _grid(rows: list[list[str]]) -> str:
    """Calico's ASCII table: +---+ borders, centred header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, "| " + " | ".join(c.center(w) for c, w in zip(rows[0], widths, strict=True))
           + " |", rule]
    for row in rows[1:]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) if i == 0 else c.ljust(w)
                  for i, (c, w) in enumerate(zip(row[2:], widths[2:], strict=True))]
        out.append("| " + " | ".join(cells) + " |")
    out.append(rule)
    return "\n".join(out)


@click.group()
def ipam() -> None:
    """IP address management."""


def _config_option(fn: Any) -> Any:
    return click.option("-c", "--config", default="/etc/calico/calicoctl.cfg",
                        show_default=True, help="Path to the calicoctl config file.")(fn)


@ipam.command()
@_config_option
@click.option("--ip", "ip", default=None, help="Show who holds this address.")
@click.option("--show-blocks", is_flag=True, help="Show each block of each pool.")
@click.option("--show-borrowed", is_flag=True, help="Show addresses borrowed from other "
              "hosts' blocks.")
@click.option("--show-configuration", is_flag=True, help="Show the IPAM configuration.")
def show(config: str, ip: str | None, show_blocks: bool, show_borrowed: bool,
         show_configuration: bool) -> None:
    """Show IPAM usage per pool (and block), or who holds an address."""
    _run(_show, _ipam(config), ip, show_blocks, show_borrowed, show_configuration)


def _show(ipam_: IPAM, ip: str | None, show_blocks: bool, show_borrowed: bool,
          show_configuration: bool) -> bool:
    if show_configuration:
        cfg = ipam_.get_config()
        click.echo(_grid([["PROPERTY", "VALUE"],
                          ["StrictAffinity", str(cfg.strict_affinity).lower()],
                          ["AutoAllocateBlocks", str(cfg.auto_allocate_blocks).lower()],
                          ["MaxBlocksPerHost", str(cfg.max_blocks_per_host)]]))
        return True
    if ip:
        found = ipam_.get_assignment(ip)
        if found is None:
            click.echo(f"IP {ip} is not assigned")
            return True
        click.echo(f"IP {ip} is in use")
        click.echo(f"Block: {found.block} (affinity: {found.block_affinity or 'none'})")
        click.echo(f"Handle: {found.handle_id or '(none)'}")
        if found.attrs:
            click.echo("Attributes:")
            for key, value in sorted(found.attrs.items()):
                click.echo(f"  {key}: {value}")
        return True
    rows = [["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"]]
    blocks = ipam_.blocks() if show_blocks or show_borrowed else []
    for pool in ipam_.usage():
        rows.append(["IP Pool", pool.cidr, str(pool.size), _percent(pool.allocated, pool.size),
                     _percent(pool.free, pool.size)])
        for block in blocks:
            if block.pool != pool.name:
                continue
            if show_blocks:
                rows.append(["Block", block.cidr, str(block.size),
                             _percent(block.allocated, block.size),
                             _percent(block.free, block.size)])
            if show_borrowed and block.borrowed:
                rows.append(["Borrowed", f"{block.cidr} (host {block.host or '-'})", "",
                             str(block.borrowed), ""])
    if len(rows) == 1:
        click.echo("No IP pools configured")
        return True
    click.echo(_grid(rows))
    return True


@ipam.command()
@_config_option
@click.option("--ip", "ips", multiple=True, required=True, help="Address to release.")
def release(config: str, ips: tuple[str, ...]) -> None:
    """Release addresses (e.g. leaked ones) back to their pool."""
    _run(_release, _ipam(config), ips)


def _release(ipam_: IPAM, ips: tuple[str, ...]) -> bool:
    not_held = set(ipam_.release_ips(list(ips)))
    for ip in ips:
        if ip in not_held:
            click.echo(f"IP address {ip} is not assigned", err=True)
        else:
            click.echo(f"Successfully released IP address {ip}")
    return not not_held


@ipam.command()
@_config_option
@click.option("--fix", is_flag=True, help="Repair what the check finds (printed first).")
@click.option("--grace", default=60.0, show_default=True,
              help="Seconds an allocation may be younger than its endpoint (a workload still "
                   "being created) before it counts as leaked.")
def check(config: str, fix: bool, grace: float) -> None:
    """Check IPAM for leaked addresses, stray handles and stale block affinities."""
    _run(_check, _ipam(config), fix, grace)


def _check(ipam_: IPAM, fix: bool, grace: float) -> bool:
    report = ipam_.check(grace=grace)
    click.echo("Checking IPAM for inconsistencies...")
    click.echo(f"Found {report.allocations} IPs allocated.")
    problems = _describe(report)
    for line in problems:
        click.echo(f"  {line}")
    if report.ok:
        click.echo("No problems found.")
        return True
    click.echo(f"Found {len(problems)} problem(s).")
    if not fix:
        click.echo("Run again with --fix to repair them.")
        return False
    click.echo("Fixing: releasing leaked addresses, rewriting handles, releasing affinities...")
    result = ipam_.fix(report)
    for ip in result.released:
        click.echo(f"  released {ip}")
    for ip in result.skipped:
        click.echo(f"  skipped {ip}: it changed since the check")
    for handle in result.handles_deleted:
        click.echo(f"  deleted handle {handle}")
    for handle in result.handles_rewritten:
        click.echo(f"  rewrote handle {handle}")
    for affinity in result.affinities_released:
        click.echo(f"  released affinity {affinity}")
    return True


def _describe(report: Any) -> list[str]:
    lines = [f"leaked: {leak.ip} (handle {leak.handle_id}) - endpoint {leak.endpoint} "
             "no longer exists" for leak in report.leaked]
    lines += [f"handle {h.handle_id} holds no addresses" for h in report.orphan_handles]
    lines += [f"handle {h.handle_id} disagrees with the blocks (stored {h.stored}, actual "
              f"{h.actual})" for h in report.handle_mismatches]
    lines += [f"block {a.cidr} is affine to {a.host}: {a.reason}"
              for a in report.dead_node_affinities + report.stale_affinities]
    return lines


@ipam.command()
@_config_option
@click.option("--strictaffinity", type=click.Choice(["true", "false"]), default=None,
              help="Never borrow addresses from other hosts' blocks.")
@click.option("--maxblockspernode", type=int, default=None,
              help="Most blocks a host may claim (0: no limit).")
def configure(config: str, strictaffinity: str | None, maxblockspernode: int | None) -> None:
    """Change the IPAM configuration."""
    _run(_configure, _ipam(config), strictaffinity, maxblockspernode)


def _configure(ipam_: IPAM, strict: str | None, max_blocks: int | None) -> bool:
    cfg = ipam_.get_config()
    if strict is None and max_blocks is None:
        raise CtlError("nothing to configure: give --strictaffinity or --maxblockspernode")
    if max_blocks is not None and max_blocks < 0:
        raise CtlError(f"--maxblockspernode: {max_blocks} is not a valid number of blocks")
    ipam_.set_config(IPAMConfig(
        strict_affinity=cfg.strict_affinity if strict is None else strict == "true",
        auto_allocate_blocks=cfg.auto_allocate_blocks,
        max_blocks_per_host=cfg.max_blocks_per_host if max_blocks is None else max_blocks))
    click.echo("Successfully set IPAM configuration")
    return True


@ipam.command("split")
@_config_option
@click.option("--cidr", default=None, help="CIDR of the IP pool to split.")
@click.option("--name", default=None, help="Name of the IP pool to split.")
@click.option("--allow-version-mismatch", is_flag=True, help="Accepted for compatibility.")
@click.argument("number")
def split_pool(config: str, cidr: str | None, name: str | None, allow_version_mismatch: bool,
               number: str) -> None:
    """Split an IP pool into NUMBER (a power of two) equal pools; needs the datastore locked."""
    from .ipamsplit import split

    _run(split, Session.from_config(config), number, cidr, name)
