"""Shared test helpers.

Tiers live in folders: unit/ (no root, no daemons), datastore/ (real etcd), dataplane/ (root,
network namespaces), e2e/ (the lab). A test that needs root or a missing program fails loudly:
it never skips, so CI cannot pass without running it.
"""

import os
import shutil

import pytest


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, nftables); run it as root")


def require_programs(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.fail(f"missing programs {missing}: run `make setup` to install them")
