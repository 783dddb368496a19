"""Putting the plugins where a runtime looks for them: a CNI bin directory.

Runtimes call a plugin by path (`<bin dir>/<type>`), so each plugin gets a small executable
file there that runs this interpreter (the venv's python, which has calico installed) on
`calico.cni`. Nothing else is written.
"""

from __future__ import annotations

import os
import shlex
import sys

from .main import PLUGINS


def wrapper_text(plugin: str, python: str | None = None) -> str:
    python = python or sys.executable
    return ("#!/bin/sh\n"
            f"# {plugin}: the Calico CNI plugin of calico-py (written by calico.cni.install)\n"
            f"exec {shlex.quote(python)} -m calico.cni {plugin} \"$@\"\n")


def install(bin_dir: str, python: str | None = None) -> list[str]:
    """Write `calico` and `calico-ipam` into `bin_dir` (created if needed); returns the paths."""
    os.makedirs(bin_dir, exist_ok=True)
    paths = []
    for plugin in PLUGINS:
        path = os.path.join(bin_dir, plugin)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(wrapper_text(plugin, python))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        paths.append(path)
    return paths
