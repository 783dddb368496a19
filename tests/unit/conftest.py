"""Fixtures shared by the unit tests.

`ctl`: calicoctl in-process (click's CliRunner) on a local datastore `calico.db` in the
test's tmp_path, with `-c` naming a config file that does not exist, so nothing of this
machine's (`/etc/calico/calicoctl.cfg`, DATASTORE_TYPE) is read:

    res = ctl("apply", "-f", "-", input=YAML)    # -> click's Result (exit_code, output)
"""

import pytest
from click.testing import CliRunner

from calico.ctl.main import cli


@pytest.fixture
def ctl(tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "calico.db"))
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    runner = CliRunner()
    cfg = str(tmp_path / "no-such-calicoctl.cfg")

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, [args[0], "-c", cfg, *args[1:]], input=input,
                             catch_exceptions=False)
    return run
