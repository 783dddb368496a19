"""The faults tier: bad input, datastore faults and security properties that need no lab.

Real components only: calicoctl (in-process through click's runner for bulk, as a subprocess
for a sample), real etcd members (tests/fixtures/etcd.py), the real syncer, Felix's calc graph
and the BGP daemon's renderer. Scenarios shared with `benchmarks/faults/report.py` live in
`scenarios.py`; hypothesis strategies for broken resources in `mutations.py`.

Tests record their figures (inputs tried, rejected, stall and convergence seconds) with the
`figures` fixture; they are printed at the end of the run, so CI logs carry them.
"""

from __future__ import annotations

import pytest

from tests.fixtures.etcd import EtcdServer, etcd_cluster  # noqa: F401  (fixture)

FIGURES: dict[str, object] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, object]:
    """Name -> figure; printed in the terminal summary."""
    return FIGURES


def add_figure(name: str, value: int) -> None:
    """Add to a counter figure (hypothesis calls tests many times)."""
    FIGURES[name] = int(FIGURES.get(name, 0)) + value  # type: ignore[arg-type]


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not FIGURES:
        return
    terminalreporter.section("faults tier figures")
    for name, value in FIGURES.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        terminalreporter.write_line(f"{name}: {shown}")


@pytest.fixture(scope="module")
def module_etcd():
    """An etcd of this module's own: these tests write Calico's real resource keys."""
    server = EtcdServer().start()
    yield server
    server.stop()
