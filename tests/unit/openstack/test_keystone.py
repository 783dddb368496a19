"""Project names from Keystone: token + project list, cache, failures logged once and retried
no more often than `min_interval` (a stand-in Keystone on loopback; a fake clock)."""

import logging

from calico.openstack.endpoints import Project
from calico.openstack.keystone import KeystoneAuth, Projects
from tests.openstack.keystone_standin import KeystoneStandIn


def test_lookup_cache_and_failures(caplog):
    ks = KeystoneStandIn([{"id": "p1", "name": "Alpha", "parent_id": "d1"},
                          {"id": "p2", "name": "Beta", "parent_id": None}]).start()
    now = [0.0]
    try:
        projects = Projects(KeystoneAuth(ks.url, "neutron", "secret", "service"),
                            min_interval=10, clock=lambda: now[0])
        assert projects.get("p1") == Project("Alpha", "d1")
        assert projects.get("p2") == Project("Beta", None)  # from the cache
        assert ks.requests == ["POST /v3/auth/tokens", "GET /v3/projects"]
        # Unknown: Keystone is asked again only after min_interval.
        assert projects.get("p3") is None and projects.get("p3") is None
        assert len(ks.requests) == 2
        ks.projects.append({"id": "p3", "name": "Gamma"})
        now[0] = 11
        assert projects.get("p3") == Project("Gamma", None)
        wrong = Projects(KeystoneAuth(ks.url, "neutron", "wrong"), clock=lambda: now[0])
        assert wrong.get("p1") is None
        now[0] = 30
        assert wrong.get("p1") is None
        failures = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(failures) == 1 and "401" in failures[0].getMessage()
        assert projects.get(None) is None
    finally:
        ks.stop()
