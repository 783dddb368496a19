"""Running another CNI plugin (an IPAM plugin such as host-local) as libcni does.

The plugin is found by its `type` in the CNI_PATH directories and run with our own
environment (CNI_COMMAND replaced) and the same network configuration on stdin. Its CNI error,
if any, comes back as a CNIError with its code and message (prefixed with its name).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

from .spec import (
    DECODE_FAILURE,
    INVALID_CONFIG,
    IO_FAILURE,
    CmdArgs,
    CNIError,
    Result,
)

TIMEOUT = 120.0


def find_plugin(plugin_type: str, paths: Sequence[str]) -> str:
    if not plugin_type or "/" in plugin_type:
        raise CNIError(INVALID_CONFIG, f"invalid plugin type {plugin_type!r}",
                       "a plugin type is a file name in a CNI_PATH directory")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CNIError(INVALID_CONFIG, f"failed to find plugin {plugin_type!r} in CNI_PATH",
                   f"searched {os.pathsep.join(paths) or '(empty CNI_PATH)'}")


def exec_plugin(plugin_type: str, command: str, args: CmdArgs,
                stdin: bytes | None = None) -> Result | None:
    """Run `plugin_type` for `command`; its result for ADD, None otherwise."""
    path = find_plugin(plugin_type, args.path)
    env = dict(args.env)
    env["CNI_COMMAND"] = command
    try:
        proc = subprocess.run([path], input=args.stdin if stdin is None else stdin, env=env,
                              capture_output=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CNIError(IO_FAILURE, f"failed to run plugin {plugin_type}", str(err)) from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        try:
            doc = json.loads(out)
            code, msg = int(doc["code"]), str(doc["msg"])
            details = str(doc.get("details", ""))
        except (ValueError, KeyError, TypeError):
            code, msg = IO_FAILURE, f"exit status {proc.returncode}"
            details = (out or proc.stderr.decode(errors="replace")).strip()[-2000:]
        raise CNIError(code, f"{plugin_type}: {msg}", details)
    if command != "ADD":
        return None
    try:
        return Result.from_json(json.loads(out))
    except ValueError as err:
        raise CNIError(DECODE_FAILURE, f"{plugin_type} returned a result that is not JSON",
                       f"{err}: {out[:500]!r}") from None
