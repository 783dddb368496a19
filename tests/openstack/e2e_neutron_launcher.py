"""neutron_launcher.py for the end-to-end test — run with the Neutron venv's Python.

    <neutron-venv>/bin/python e2e_neutron_launcher.py <state-dir> <port>

The same server (schema from Neutron's models, threaded WSGI, one request at a time: SQLite),
with one more thing serialised: our driver's own writes to Neutron's database from its status
thread (port status, Felix agent heartbeats). In the end-to-end test Felix reports while API
requests run, and SQLite answers a second writer "database is locked" at once, failing either
the request (HTTP 500) or the driver's write. A production database (MySQL, PostgreSQL) takes
concurrent writers, so this is a test-bed measure, not a driver change.
"""

import os
import sys
import threading

from neutron_launcher import _Quiet, _Server, create_schema


def serialise_driver_writes(lock: threading.RLock) -> None:
    from calico.openstack.neutron_view import PluginNeutronView

    for name in ("set_port_status", "felix_alive"):
        original = getattr(PluginNeutronView, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)
        setattr(PluginNeutronView, name, locked)


def main() -> None:
    from wsgiref.simple_server import make_server

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
