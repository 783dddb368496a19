"""The dataplane tier: root, real network namespaces, real nftables, real packets."""

import pytest

from tests.conftest import require_programs, require_root
from tests.fixtures.netns import cleanup_stale, netns_set


@pytest.fixture(scope="session", autouse=True)
def _dataplane_prereqs():
    require_root()
    require_programs("ip", "nft", "ping")
    cleanup_stale()


@pytest.fixture
def netns():
    """A NetnsSet: `netns.add(tag)` makes a namespace; all are deleted after the test."""
    with netns_set() as nets:
        yield nets
