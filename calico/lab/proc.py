"""Process and namespace plumbing for the lab: commands, namespaces, detached daemons.

Every daemon the lab starts is detached (its own session, so `calico-lab up` can exit) with
its output in a log file of the state dir, and recorded by pid *and* the start time the kernel
gives it (/proc/<pid>/stat field 22): `stop_daemon` signals a pid only while that pair still
matches, so a recycled pid is never killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence


class LabError(Exception):
    """A lab operation failed; the message says which step and why."""


def sh(*args: str, check: bool = True, timeout: float = 60, input: str | None = None,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              input=input, env=env)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)} did not finish within {timeout:g}s") from None
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({proc.returncode}): "
                       f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def netns_list() -> list[str]:
    out = sh("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_add(name: str) -> None:
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def netns_exec(ns: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, **kwargs)


def netns_delete(name: str) -> None:
    """Kill whatever still runs in the namespace, then delete it (which deletes its veths)."""
    for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", name, check=False)


def sysctls(ns: str, values: dict[str, str]) -> None:
    netns_exec(ns, "sysctl", "-qw", *(f"{k}={v}" for k, v in values.items()))


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def spawn(argv: Sequence[str], log_path: str, env: dict[str, str] | None = None,
          netns: str | None = None, cwd: str | None = None) -> dict[str, int]:
    """Start a detached daemon (in `cwd`, default ours); returns {"pid", "start"} to record
    in the lab state."""
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                    start_new_session=True)
        except FileNotFoundError:
            raise LabError(f"{argv[0]} is not installed") from None
    return {"pid": proc.pid, "start": start_time(proc.pid) or 0}


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def alive(record: dict[str, int] | None) -> bool:
    """Whether the recorded daemon still runs. A daemon that died while this process is its
    parent (the Python API, not the CLI) stays a zombie until reaped: it is reaped here and
    counts as dead, so `start_node` after a crash starts a new one."""
    if not record or not record.get("pid"):
        return False
    pid = record["pid"]
    if start_time(pid) != record.get("start"):
        return False
    if _zombie(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_daemon(record: dict[str, int] | None, timeout: float = 10.0,
                leader_only: bool = False) -> None:
    """SIGTERM the daemon's process group (or, with `leader_only`, the daemon alone, so that
    it stops its children its own way: systemd's KillMode=mixed), SIGKILL the group after
    `timeout`."""
    if not alive(record):
        return
    pid = record["pid"]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if sig == signal.SIGTERM and leader_only:
                os.kill(pid, sig)
            else:
                os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 2)
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = 0
            if done == pid or not alive(record):
                if leader_only:
                    _kill_group(pid)  # anything it left behind (KillMode=mixed does too)
                return
            time.sleep(0.05)
