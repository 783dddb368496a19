"""Entry points of the two plugin executables (console scripts `calico` and `calico-ipam`).

Every entry point goes through client.py first: the request is handed to the host's
calico-node when it answers on its CNI socket, and run in this process otherwise. `PLUGINS`
maps a plugin name to a function loading its handlers (loaded only when the request is run here).
`python -m calico.cni calico|calico-ipam` does the same; `install()` writes wrappers into a
CNI bin directory.
"""

from __future__ import annotations

import sys

from . import client

ABOUT_CALICO = "Calico CNI plugin (calico-py); CNI spec 1.0.0"
ABOUT_IPAM = "Calico CNI IPAM plugin (calico-py); CNI spec 1.0.0"


ABOUT = {"calico": ABOUT_CALICO, "calico-ipam": ABOUT_IPAM}


def calico_handlers():
    from .plugin import HANDLERS

    return HANDLERS


def calico_ipam_handlers():
    from .ipam_plugin import HANDLERS

    return HANDLERS


PLUGINS = {"calico": calico_handlers, "calico-ipam": calico_ipam_handlers}


def calico_main() -> None:
    sys.exit(client.main("calico"))


def calico_ipam_main() -> None:
    sys.exit(client.main("calico-ipam"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in PLUGINS:
        print("usage: python -m calico.cni calico|calico-ipam  (run by a container runtime "
              "with CNI_* in the environment)", file=sys.stderr)
        sys.exit(2)
    sys.exit(client.main(argv[0]))
