"""The local store on a real read-only mount (root: a private mount namespace per command).

Reads work whether the file alone or its whole directory is read-only; a write fails with the
read-only reason (not "datastore unreachable") and changes nothing."""

import os
import shlex
import subprocess

import pytest

from tests.conftest import require_programs, require_root
from tests.fixtures.calicoctl import calicoctl, command

POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: ro-pool}
spec: {cidr: 10.77.0.0/16}
"""


def _read_only(target: str, env, *args) -> subprocess.CompletedProcess:
    """Run calicoctl with `target` (a file or directory) bind-mounted read-only over itself,
    in a mount namespace of its own: nothing outside the command sees the mount."""
    cmd = " ".join(shlex.quote(a) for a in command(*args))
    script = (f"mount --bind {shlex.quote(target)} {shlex.quote(target)} && "
              f"mount -o remount,ro,bind {shlex.quote(target)} && exec {cmd}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          env=env, capture_output=True, text=True)


@pytest.fixture
def store(tmp_path):
    require_root()
    require_programs("unshare", "mount")
    directory = tmp_path / "store"
    directory.mkdir()
    path = directory / "calico.db"
    env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": str(path)}
    res = calicoctl(["apply", "-f", "-"], env, input=POOL)
    assert res.returncode == 0, res.stderr
    return path, env


@pytest.mark.parametrize("what", ["file", "directory"])
def test_reads_work_and_writes_fail_with_the_reason(store, what):
    path, env = store
    target = str(path if what == "file" else path.parent)
    got = _read_only(target, env, "get", "ippools", "-o", "yaml")
    assert got.returncode == 0, got.stderr
    assert "10.77.0.0/16" in got.stdout
    deleted = _read_only(target, env, "delete", "ippool", "ro-pool")
    assert deleted.returncode == 1
    assert "is read-only" in deleted.stderr and "unreachable" not in deleted.stderr
    expected = "the file is not writable" if what == "file" else "is not writable"
    assert expected in deleted.stderr
    assert "ro-pool" in calicoctl(["get", "ippools"], env).stdout  # still there
