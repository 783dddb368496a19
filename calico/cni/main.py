"""Entry points of the two plugin executables (console scripts `calico` and `calico-ipam`).

`python -m calico.cni calico|calico-ipam` does the same; `install()` writes wrappers of that
form into a CNI bin directory.
"""

from __future__ import annotations

import sys

ABOUT_CALICO = "Calico CNI plugin (calico-py); CNI spec 1.0.0"
ABOUT_IPAM = "Calico CNI IPAM plugin (calico-py); CNI spec 1.0.0"


def calico_main() -> None:
    from .plugin import HANDLERS
    from .spec import run_plugin

    sys.exit(run_plugin(HANDLERS, about=ABOUT_CALICO))


def calico_ipam_main() -> None:
    from .ipam_plugin import HANDLERS
    from .spec import run_plugin

    sys.exit(run_plugin(HANDLERS, about=ABOUT_IPAM))


PLUGINS = {"calico": calico_main, "calico-ipam": calico_ipam_main}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in PLUGINS:
        print("usage: python -m calico.cni calico|calico-ipam  (run by a container runtime "
              "with CNI_* in the environment)", file=sys.stderr)
        sys.exit(2)
    PLUGINS[argv[0]]()
