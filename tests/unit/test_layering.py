"""The packages of `calico` depend one way: each imports only packages in lower layers.

    selector  logsetup  version         the selector language; the daemons' log channels; the
                                        Calico release we follow
    api                                 v3 models (their selectors are parsed by `selector`)
    datastore                           KV backends, typed client, syncer; owns IPAM's key layout
    ipam                                pools, blocks, handles over the datastore
    felix  bgp  cni  openstack          the components, each over the layers below
    ctl  node  lab                      calicoctl (reads BGP status), calico-node (starts Felix
                                        and the BGP daemon as processes, runs the CNI plugins'
                                        requests in-process), calico-lab
    demo  demo_fabric                   the `make demo` and `make demo-fabric` scripts

`DEPENDS` is every package each package names in an import statement anywhere (function-local
imports included), checked exactly against the source so the table stays true. `LOADS` is what
importing a package and all its modules pulls in, checked in a fresh interpreter per package: it
is smaller than the closure of `DEPENDS` where a dependency is imported lazily (IPAM in the CNI
plugin and the Neutron driver, the pool selector, the lab's datastore). A new dependency is a
change to these tables, made on purpose.

Inside Felix the calc graph and the dataplane import neither each other nor the datastore:
they meet only in `calico.felix.messages` (`FELIX_FORBIDDEN`).
"""

from __future__ import annotations

import ast
import functools
import json
import pathlib
import subprocess
import sys

import pytest

import calico

ROOT = pathlib.Path(calico.__file__).parent

LAYERS: list[set[str]] = [
    {"selector", "logsetup", "version"},
    {"api"},
    {"datastore"},
    {"ipam"},
    {"felix", "bgp", "cni", "openstack"},
    {"ctl", "node", "lab"},
    {"demo", "demo_fabric"},
]

DEPENDS: dict[str, set[str]] = {
    "selector": set(),
    "logsetup": set(),
    "version": set(),
    "api": {"selector"},
    "datastore": {"api", "version"},
    "ipam": {"api", "datastore", "selector"},
    "felix": {"api", "datastore", "logsetup", "selector"},
    "bgp": {"api", "datastore", "ipam", "logsetup", "selector"},
    "cni": {"api", "datastore", "ipam"},
    "openstack": {"api", "datastore", "ipam"},
    "ctl": {"api", "bgp", "datastore", "ipam", "version"},
    "node": {"api", "cni", "datastore", "ipam", "logsetup", "selector"},
    "lab": {"bgp", "datastore"},
    "demo": {"api", "datastore", "lab"},
    "demo_fabric": {"lab"},
}

LOADS: dict[str, set[str]] = {
    "selector": set(),
    "logsetup": set(),
    "version": set(),
    "api": {"selector"},
    "datastore": {"api", "selector", "version"},
    "ipam": {"datastore"},
    "felix": {"api", "datastore", "logsetup", "selector", "version"},
    "bgp": {"api", "datastore", "ipam", "logsetup", "selector", "version"},
    "cni": {"api", "datastore", "selector", "version"},
    "openstack": {"api", "datastore", "selector", "version"},
    "ctl": {"api", "bgp", "datastore", "ipam", "selector", "version"},
    "node": {"api", "cni", "datastore", "ipam", "logsetup", "selector", "version"},
    "lab": {"bgp"},
    "demo": {"api", "selector"},
    "demo_fabric": set(),
}

# Modules that only load inside their host program: skipped by the import check when the host's
# library is missing (their imports are still in the static check).
HOSTED = {"calico.openstack.mech_calico": "neutron_lib",
          "calico.openstack.neutron_view": "neutron_lib"}


def _units() -> dict[str, list[pathlib.Path]]:
    """Package name (or top-level module name) -> its source files."""
    units: dict[str, list[pathlib.Path]] = {}
    for path in ROOT.iterdir():
        if (path / "__init__.py").exists():
            units[path.name] = sorted(path.rglob("*.py"))
        elif path.suffix == ".py" and path.name != "__init__.py":
            units[path.stem] = [path]
    return units


def _imported_names(path: pathlib.Path) -> set[str]:
    """Every dotted name a source file imports (`from a import b` gives `a` and `a.b`)."""
    rel = path.relative_to(ROOT.parent).with_suffix("").parts
    package = list(rel[:-1])  # the package a relative import starts from
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _imported(path: pathlib.Path) -> set[str]:
    """The `calico.*` units a source file names in its import statements."""
    return {n.split(".")[1] for n in _imported_names(path) if n.startswith("calico.")}


@functools.cache
def _static_graph() -> dict[str, set[str]]:
    units = _units()
    graph = {}
    for unit, files in units.items():
        graph[unit] = set().union(*(_imported(f) for f in files)) & set(units) - {unit}
    return graph


def test_the_tables_cover_every_package():
    assert set(_units()) == set(DEPENDS) == set(LOADS) == set().union(*LAYERS)


def test_each_package_imports_exactly_its_declared_dependencies():
    graph = _static_graph()
    wrong = {unit: {"undeclared": sorted(graph[unit] - DEPENDS[unit]),
                    "no longer imported": sorted(DEPENDS[unit] - graph[unit])}
             for unit in DEPENDS if graph[unit] != DEPENDS[unit]}
    assert not wrong


def test_dependencies_point_down_the_layers():
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    upward = [(unit, dep) for unit, deps in DEPENDS.items() for dep in deps
              if layer[dep] >= layer[unit]]
    assert not upward


def test_no_import_cycle_between_packages():
    graph = _static_graph()
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> None:
        if unit in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(unit):] + [unit]))
        if unit not in done:
            for dep in sorted(graph[unit]):
                visit(dep, path + [unit])
            done.add(unit)

    for unit in sorted(graph):
        visit(unit, [])


def _closure(unit: str) -> set[str]:
    out: set[str] = set()
    todo = list(DEPENDS[unit])
    while todo:
        dep = todo.pop()
        if dep not in out:
            out.add(dep)
            todo.extend(DEPENDS[dep])
    return out


def test_loads_are_within_the_declared_dependencies():
    assert {u: sorted(LOADS[u] - _closure(u)) for u in LOADS if not LOADS[u] <= _closure(u)} == {}


_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
unit, hosted = sys.argv[1], json.loads(sys.argv[2])
top = importlib.import_module("calico." + unit)
modules = [] if not hasattr(top, "__path__") else [
    m.name for m in pkgutil.walk_packages(top.__path__, top.__name__ + ".")
    if not m.name.endswith(".__main__")]
skipped = []
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if hosted.get(name) != (err.name or "").split(".")[0]:
            raise
        skipped.append(name)
loaded = {n.split(".")[1] for n in sys.modules if n.startswith("calico.")} - {unit}
print(json.dumps({"loaded": sorted(loaded), "skipped": skipped}))
"""


@pytest.mark.parametrize("unit", sorted(LOADS))
def test_importing_a_package_loads_exactly_what_it_declares(unit):
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, unit, json.dumps(HOSTED)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert set(got["loaded"]) == LOADS[unit]
    assert set(got["skipped"]) <= set(HOSTED)


# Inside Felix, data flows one way (DESIGN.md): the calc graph never touches the kernel and the
# dataplane never reads the datastore; they meet only in calico.felix.messages.
FELIX_FORBIDDEN = {
    "calc": ("calico.felix.dataplane", "calico.datastore", "calico.felix.daemon"),
    "dataplane": ("calico.felix.calc", "calico.datastore", "calico.felix.daemon"),
}


@pytest.mark.parametrize("part", sorted(FELIX_FORBIDDEN))
def test_felix_calc_graph_and_dataplane_meet_only_in_messages(part):
    wrong = sorted(f"{path.relative_to(ROOT)}: {name}"
                   for path in sorted((ROOT / "felix" / part).rglob("*.py"))
                   for name in _imported_names(path)
                   if name.startswith(FELIX_FORBIDDEN[part]))
    assert wrong == []
