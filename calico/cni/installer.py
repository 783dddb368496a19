"""Putting the plugins where a runtime looks for them: a CNI bin directory.

Runtimes call a plugin by path (`<bin dir>/<type>`), so each plugin gets a small executable
file there: a Python script run by this interpreter (the venv's python, which has calico
installed) with `-S`, that puts the directory holding the `calico` package on sys.path and
calls calico.cni.client. Without `site` the interpreter starts in a third of the time; the
client loads it only when it has to run the request itself. Nothing else is written.
"""

from __future__ import annotations

import os
import shlex
import sys

import calico

from .main import PLUGINS


def _code(plugin: str, root: str) -> str:
    return (f"import sys; sys.path.insert(0, {root!r}); "
            f"from calico.cni.client import main; sys.exit(main({plugin!r}))")


def wrapper_text(plugin: str, python: str | None = None) -> str:
    python = python or sys.executable
    root = os.path.dirname(os.path.dirname(os.path.abspath(calico.__file__)))
    head = f"# {plugin}: the Calico CNI plugin of calico-py (written by calico.cni.install)\n"
    if len(python) < 120 and not any(c.isspace() for c in python):
        return f"#!{python} -S\n{head}" + _code(plugin, root).replace("; ", "\n") + "\n"
    # A shebang line takes no quoting and at most ~250 bytes: go through the shell.
    return (f"#!/bin/sh\n{head}exec {shlex.quote(python)} -S -c "
            f"{shlex.quote(_code(plugin, root))} \"$@\"\n")


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
