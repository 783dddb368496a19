"""IPAM reporting and repair for calicoctl: usage per pool and block, `check()` and `fix()`.

Everything here reads one consistent snapshot: the block list fixes a store revision R and
every other list (handles, affinities, endpoints, nodes) is read at R.

`check()` reports, without changing anything:

- **leaked allocations**: an allocation whose attributes name a WorkloadEndpoint that does not
  exist. An allocation names its endpoint by the `workloadEndpoint` attribute
  ("<namespace>/<name>", see `workload_attrs()`), or, Kubernetes style, by `namespace` + `pod`
  (any endpoint in that namespace with that `spec.pod`). Allocations that name no endpoint
  (tunnel addresses, reservations) are never leaks. An allocation younger than `grace`
  seconds by its `timestamp` attribute is skipped: its endpoint may not be written yet.
- **orphan handles**: a handle record whose addresses are in no block;
- **handle mismatches**: a handle whose per-block counts differ from the blocks (including
  allocations whose handle record is missing);
- **dead-node affinities**: a block affinity (and its block) for a host with no Node resource;
- **stale affinities**: an affinity whose block is affine to another host, or a confirmed
  affinity whose block does not exist.

`fix(ipam, report)` repairs exactly what the report lists and nothing newer: leaked addresses
are released only if their handle and sequence number are unchanged, handles are rewritten or
deleted only at the revision the report saw, an affinity of a dead node only if the node is
still absent.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from calico.datastore.kv import Backend, Compare, Delete, Put

from . import model
from .block import (
    ATTR_NAMESPACE,
    ATTR_NODE,
    ATTR_POD,
    ATTR_TIMESTAMP,
    AllocationBlock,
    IPNetwork,
)
from .errors import IPAMError
from .model import IPAMHandle
from .pools import NODES_PREFIX, read_pools

ATTR_WORKLOAD_ENDPOINT = "workloadEndpoint"
WEPS_PREFIX = "/calico/resources/v3/projectcalico.org/workloadendpoints/"


def workload_attrs(node: str, namespace: str, endpoint: str, **extra: str) -> dict[str, str]:
    """The attributes an orchestrator should store with a workload's addresses, so that
    `check()` can tell when the endpoint is gone."""
    now = datetime.datetime.now(datetime.UTC).isoformat()
    return {ATTR_NODE: node, ATTR_NAMESPACE: namespace,
            ATTR_WORKLOAD_ENDPOINT: f"{namespace}/{endpoint}", ATTR_TIMESTAMP: now, **extra}


@dataclass(frozen=True)
class PoolUsage:
    name: str
    cidr: str
    block_size: int
    disabled: bool
    size: int
    allocated: int
    free: int
    blocks: int  # blocks that exist in the pool
    borrowed: int  # allocations made by a host other than the block's


@dataclass(frozen=True)
class BlockInfo:
    cidr: str
    pool: str | None
    host: str | None
    size: int
    allocated: int
    free: int
    borrowed: int


@dataclass(frozen=True)
class Leak:
    ip: str
    block: str
    handle_id: str | None
    sequence: int
    endpoint: str  # the missing endpoint, "<namespace>/<name or pod>"
    attrs: dict[str, str]


@dataclass(frozen=True)
class HandleFix:
    handle_id: str
    rev: int  # 0: the handle record is missing
    stored: dict[str, int]
    actual: dict[str, int]


@dataclass(frozen=True)
class AffinityIssue:
    host: str
    cidr: str
    rev: int
    reason: str


@dataclass
class CheckReport:
    revision: int
    allocations: int = 0
    leaked: list[Leak] = field(default_factory=list)
    orphan_handles: list[HandleFix] = field(default_factory=list)
    handle_mismatches: list[HandleFix] = field(default_factory=list)
    dead_node_affinities: list[AffinityIssue] = field(default_factory=list)
    stale_affinities: list[AffinityIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.leaked or self.orphan_handles or self.handle_mismatches
                    or self.dead_node_affinities or self.stale_affinities)


@dataclass
class FixResult:
    released: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # changed since the report
    handles_deleted: list[str] = field(default_factory=list)
    handles_rewritten: list[str] = field(default_factory=list)
    affinities_released: list[str] = field(default_factory=list)


def _blocks(backend: Backend) -> tuple[list[AllocationBlock], int]:
    kvs, rev = backend.list(model.BLOCKS_PREFIX)
    return [AllocationBlock.from_json(kv.value) for kv in kvs
            if model.parse_block_key(kv.key)], rev


def _borrowed(block: AllocationBlock) -> int:
    host = block.host
    return sum(1 for a in block.allocations_list() if a.attrs.get(ATTR_NODE) not in (None, host))


def usage(backend: Backend) -> list[PoolUsage]:
    """Per pool: addresses in total, allocated and free, and how many blocks exist."""
    blocks, _ = _blocks(backend)
    out = []
    for pool in read_pools(backend):
        mine = [b for b in blocks if b.cidr.version == pool.version
                and b.cidr.subnet_of(pool.cidr)]  # type: ignore[arg-type]
        allocated = sum(b.num_allocated for b in mine)
        out.append(PoolUsage(pool.name, str(pool.cidr), pool.block_size, pool.disabled,
                             pool.cidr.num_addresses, allocated,
                             pool.cidr.num_addresses - allocated, len(mine),
                             sum(_borrowed(b) for b in mine)))
    return out


def blocks(backend: Backend) -> list[BlockInfo]:
    """Every block: its pool, affine host, and how full it is."""
    all_blocks, _ = _blocks(backend)
    pools = read_pools(backend)
    out = []
    for b in sorted(all_blocks, key=lambda b: (b.cidr.version, b.cidr)):
        pool = next((p.name for p in pools if b.cidr.version == p.version
                     and b.cidr.subnet_of(p.cidr)), None)  # type: ignore[arg-type]
        out.append(BlockInfo(str(b.cidr), pool, b.host, b.size, b.num_allocated, b.num_free,
                             _borrowed(b)))
    return out


def _young(attrs: dict[str, str], now: datetime.datetime, grace: float) -> bool:
    stamp = attrs.get(ATTR_TIMESTAMP)
    if not stamp or grace <= 0:
        return False
    try:
        when = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (now - when).total_seconds() < grace


def check(backend: Backend, grace: float = 60.0) -> CheckReport:
    all_blocks, rev = _blocks(backend)
    report = CheckReport(revision=rev)
    wep_keys, pods = _endpoints(backend, rev)
    nodes = {kv.key[len(NODES_PREFIX):] for kv in backend.list(NODES_PREFIX, revision=rev)[0]}
    actual = _check_allocations(report, all_blocks, wep_keys, pods, grace)
    _check_handles(report, backend, actual)
    _check_affinities(report, backend, {b.cidr: b for b in all_blocks}, nodes)
    return report


def _endpoints(backend: Backend, rev: int) -> tuple[set[str], set[tuple[str, str]]]:
    """The WorkloadEndpoints at `rev`: their "<namespace>/<name>" and (namespace, pod) pairs."""
    wep_keys: set[str] = set()
    pods: set[tuple[str, str]] = set()
    for kv in backend.list(WEPS_PREFIX, revision=rev)[0]:
        ns_name = kv.key[len(WEPS_PREFIX):]
        wep_keys.add(ns_name)
        try:
            spec = json.loads(kv.value).get("spec") or {}
        except ValueError:
            continue
        if spec.get("pod"):
            pods.add((ns_name.split("/", 1)[0], spec["pod"]))
    return wep_keys, pods


def _check_allocations(report: CheckReport, all_blocks: list[AllocationBlock],
                       wep_keys: set[str], pods: set[tuple[str, str]],
                       grace: float) -> dict[str, dict[str, int]]:
    """Counts the allocations and lists the leaks; returns handle -> block CIDR -> count."""
    now = datetime.datetime.now(datetime.UTC)
    actual: dict[str, dict[str, int]] = {}
    for b in all_blocks:
        for h, n in b.handle_counts().items():
            actual.setdefault(h, {})[str(b.cidr)] = n
        for a in b.allocations_list():
            report.allocations += 1
            missing = _missing_endpoint(a.attrs, wep_keys, pods)
            if missing and not _young(a.attrs, now, grace):
                report.leaked.append(Leak(a.ip, str(b.cidr), a.handle_id, a.sequence, missing,
                                          a.attrs))
    return actual


def _check_handles(report: CheckReport, backend: Backend,
                   actual: dict[str, dict[str, int]]) -> None:
    stored: dict[str, tuple[IPAMHandle, int]] = {}
    for kv in backend.list(model.HANDLES_PREFIX, revision=report.revision)[0]:
        hid = model.parse_handle_key(kv.key)
        if hid is not None:
            stored[hid] = (IPAMHandle.from_json(kv.value), kv.mod_revision)
    for hid in sorted(set(stored) | set(actual)):
        value, hrev = stored.get(hid, (IPAMHandle(), 0))
        have = actual.get(hid, {})
        if value.block == have:
            continue
        fix_ = HandleFix(hid, hrev, dict(value.block), have)
        (report.handle_mismatches if have else report.orphan_handles).append(fix_)


def _check_affinities(report: CheckReport, backend: Backend,
                      by_cidr: dict[IPNetwork, AllocationBlock], nodes: set[str]) -> None:
    for kv in backend.list(model.HOSTS_PREFIX, revision=report.revision)[0]:
        parsed = model.parse_affinity_key(kv.key)
        if parsed is None:
            continue
        host, cidr = parsed
        aff = model.BlockAffinity.from_json(kv.value)
        block = by_cidr.get(cidr)
        if host not in nodes:
            report.dead_node_affinities.append(AffinityIssue(host, str(cidr), kv.mod_revision,
                                                             f"node {host} does not exist"))
        elif block is not None and block.host != host:
            report.stale_affinities.append(AffinityIssue(
                host, str(cidr), kv.mod_revision,
                f"block is affine to {block.affinity or 'no host'}"))
        elif block is None and aff.state == model.STATE_CONFIRMED:
            report.stale_affinities.append(AffinityIssue(host, str(cidr), kv.mod_revision,
                                                         "block does not exist"))


def _missing_endpoint(attrs: dict[str, str], wep_keys: set[str],
                      pods: set[tuple[str, str]]) -> str | None:
    wep = attrs.get(ATTR_WORKLOAD_ENDPOINT)
    if wep:
        return None if wep in wep_keys else wep
    pod = attrs.get(ATTR_POD)
    if pod:
        ns = attrs.get(ATTR_NAMESPACE) or "default"
        return None if (ns, pod) in pods else f"{ns}/{pod}"
    return None


class Repairer(Protocol):
    """What `fix()` needs of IPAM (`ipam.IPAM` is one): its backend, and releases that leave
    alone what changed since the report (`expect`) and say what they skipped."""

    @property
    def backend(self) -> Backend: ...

    def release_ips(self, ips: Iterable[str],
                    expect: dict[str, tuple[str | None, int]] | None = None) -> list[str]: ...

    def release_affinity(self, cidr: str, host: str | None = None) -> bool: ...


def fix(ipam: Repairer, report: CheckReport) -> FixResult:
    backend = ipam.backend
    result = FixResult()
    if report.leaked:
        expect = {leak.ip: (leak.handle_id, leak.sequence) for leak in report.leaked}
        skipped = set(ipam.release_ips(list(expect), expect=expect))
        result.skipped += sorted(skipped)
        result.released += [ip for ip in expect if ip not in skipped]
    for h in report.orphan_handles + report.handle_mismatches:
        key = model.handle_key(h.handle_id)
        value = IPAMHandle(dict(h.actual))
        op = Put(key, value.to_json()) if h.actual else Delete(key)
        if backend.txn([Compare(key, h.rev)], [op]) is None:
            result.skipped.append(f"handle {h.handle_id}")
        elif h.actual:
            result.handles_rewritten.append(h.handle_id)
        else:
            result.handles_deleted.append(h.handle_id)
    for a in report.dead_node_affinities:
        if backend.get(NODES_PREFIX + a.host) is not None:
            result.skipped.append(f"affinity {a.host} {a.cidr}")
            continue
        try:
            ipam.release_affinity(a.cidr, a.host)
            result.affinities_released.append(f"{a.host} {a.cidr}")
        except IPAMError:
            result.skipped.append(f"affinity {a.host} {a.cidr}")
    for a in report.stale_affinities:
        key = model.affinity_key(a.host, ipaddress.ip_network(a.cidr))
        if backend.txn([Compare(key, a.rev)], [Delete(key)]) is None:
            result.skipped.append(f"affinity {a.host} {a.cidr}")
        else:
            result.affinities_released.append(f"{a.host} {a.cidr}")
    return result
