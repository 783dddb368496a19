"""The `calico-node` command: `calico-node install ...` installs this host's units and
templates (install.py); anything else runs the node (main.py)."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "install":
        from .install import install_command

        install_command(args=sys.argv[2:], prog_name="calico-node install")
        return
    from .main import main as run

    run()
