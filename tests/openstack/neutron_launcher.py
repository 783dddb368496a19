"""Run a real Neutron API server (Neutron 29's WSGI app) on 127.0.0.1 — inside Neutron's venv.

    <neutron-venv>/bin/python neutron_launcher.py <state-dir> <port>

`<state-dir>` holds neutron.conf and ml2_conf.ini (written by the test fixture). On the first
start the SQLite schema is created from Neutron's models (neutron-db-manage cannot upgrade
SQLite) and the default security-group rule templates a data migration would insert are
added, so new security groups get Neutron's default rules. Requests are served by the
standard library's threaded WSGI server, one at a time (SQLite would say "database is
locked" otherwise). Prints "READY" on stdout once listening.
"""

import os
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def create_schema(connection_url: str) -> None:
    import sqlalchemy as sa
    from neutron.db.migration.models import head
    from oslo_utils import uuidutils

    engine = sa.create_engine(connection_url)
    head.get_metadata().create_all(engine)
    meta = sa.MetaData()
    meta.reflect(engine, only=["standardattributes", "securitygroupdefaultrules"])
    std, rules = meta.tables["standardattributes"], meta.tables["securitygroupdefaultrules"]
    with engine.begin() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(rules)).scalar():
            return
        templates = [
            ("egress", "IPv4", None, True, True), ("egress", "IPv6", None, True, True),
            ("ingress", "IPv4", "PARENT", True, False),
            ("ingress", "IPv6", "PARENT", True, False),
        ]
        for direction, ethertype, remote, in_default, in_other in templates:
            res = conn.execute(sa.insert(std).values(
                resource_type="securitygroupdefaultrules",
                description=f"Legacy default SG rule for {direction} traffic"))
            conn.execute(sa.insert(rules).values(
                id=uuidutils.generate_uuid(), standard_attr_id=res.inserted_primary_key[0],
                direction=direction, ethertype=ethertype, remote_group_id=remote,
                used_in_default_sg=in_default, used_in_non_default_sg=in_other))
    engine.dispose()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, fmt, *args):  # noqa: D102 - requests are in Neutron's own log
        pass


def serialise_driver_writes(lock: threading.RLock) -> None:
    """The driver's own background writes to Neutron's database (port status, Felix agent
    heartbeats) take the same lock as API requests: SQLite allows one writer at a time."""
    from calico.openstack.neutron_view import PluginNeutronView

    for name in ("set_port_status", "felix_alive"):
        original = getattr(PluginNeutronView, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)
        setattr(PluginNeutronView, name, locked)


def main() -> None:
    state_dir, port = sys.argv[1], int(sys.argv[2])
    conf = [os.path.join(state_dir, "neutron.conf"), os.path.join(state_dir, "ml2_conf.ini")]
    create_schema(f"sqlite:///{os.path.join(state_dir, 'neutron.db')}")
    lock = threading.RLock()
    serialise_driver_writes(lock)
    sys.argv = ["neutron-api"] + [a for c in conf for a in ("--config-file", c)]
    from neutron.wsgi.api import application

    def serialised(environ, start_response):
        with lock:
            return list(application(environ, start_response))

    server = make_server("127.0.0.1", port, serialised, server_class=_Server,
                         handler_class=_Quiet)
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
