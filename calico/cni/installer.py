"""Putting the plugins where a runtime looks for them: a CNI bin directory.

Runtimes call a plugin by path (`<bin dir>/<type>`), so each plugin gets a small executable
file there: a Python script that puts the directory holding the `calico` package on sys.path
and calls calico.cni.client, run with `-S` (no `site`: a third of the start-up time).

Which interpreter starts it: the client needs only the standard library's built-in modules,
so when the system's `/usr/bin/python3` has the same version as the interpreter calico is
installed for, that one starts it: a distribution's optimised, statically linked build starts
in about half the time of a `--enable-shared` build such as pyenv's (measured here: 5 vs 10 ms
of CPU). When the request must be run in the plugin's own process, the client re-executes
itself in calico's interpreter (client.run_in). Otherwise calico's interpreter starts it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import calico

from .main import PLUGINS

SYSTEM_PYTHON = "/usr/bin/python3"


def client_python(python: str) -> str:
    """The interpreter to start the client with (see the module docstring)."""
    if os.path.realpath(python) == os.path.realpath(SYSTEM_PYTHON) \
            or not os.access(SYSTEM_PYTHON, os.X_OK):
        return python
    probe = "import sys; print(sys.version_info[:2])"
    try:
        versions = {subprocess.run([py, "-S", "-c", probe], capture_output=True, text=True,
                                   timeout=30).stdout for py in (python, SYSTEM_PYTHON)}
    except (OSError, subprocess.TimeoutExpired):
        return python
    return SYSTEM_PYTHON if len(versions) == 1 else python


def _code(plugin: str, root: str, python: str) -> str:
    return (f"import sys; sys.path.insert(0, {root!r}); "
            f"from calico.cni.client import main; sys.exit(main({plugin!r}, {python!r}))")


def wrapper_text(plugin: str, python: str | None = None, starter: str | None = None) -> str:
    """The executable for `plugin`: started by `starter`, running requests itself in
    `python` (default: this interpreter for both)."""
    python = python or sys.executable
    starter = starter or python
    root = os.path.dirname(os.path.dirname(os.path.abspath(calico.__file__)))
    head = f"# {plugin}: the Calico CNI plugin of calico-py (written by calico.cni.install)\n"
    code = _code(plugin, root, python)
    if len(starter) < 120 and not any(c.isspace() for c in starter):
        return f"#!{starter} -S\n{head}" + code.replace("; ", "\n") + "\n"
    # A shebang line takes no quoting and at most ~250 bytes: go through the shell.
    return (f"#!/bin/sh\n{head}exec {shlex.quote(starter)} -S -c {shlex.quote(code)} "
            "\"$@\"\n")


def install(bin_dir: str, python: str | None = None) -> list[str]:
    """Write `calico` and `calico-ipam` into `bin_dir` (created if needed); returns the paths."""
    python = python or sys.executable
    starter = client_python(python)
    os.makedirs(bin_dir, exist_ok=True)
    paths = []
    for plugin in PLUGINS:
        path = os.path.join(bin_dir, plugin)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(wrapper_text(plugin, python, starter))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        paths.append(path)
    return paths
