"""The local store's guards: readers never create a store, a missing store names its path and
the setting that chose it, and a store this process may not write is read, not refused.

The read-only cases here fake only the permission check (unit tests may run as root, for whom
no mode bits are read-only); tests/datastore/test_readonly_mount.py does the same on a real
read-only mount."""

import pytest

from calico.datastore import DatastoreConfig, connect, localfile
from calico.datastore.local import LocalBackend
from calico.datastore.localfile import ReadOnlyStore, StoreMissing


def test_reader_of_a_missing_store_names_path_and_variable(tmp_path, monkeypatch):
    path = tmp_path / "typo" / "calico.db"
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(path))
    with pytest.raises(StoreMissing) as err:
        connect(DatastoreConfig.from_env(), create=False)
    assert str(path) in str(err.value) and "CALICO_DATASTORE_PATH" in str(err.value)
    assert "\n" not in str(err.value)
    assert not path.parent.exists()


def test_default_path_says_the_variable_is_unset(monkeypatch):
    monkeypatch.delenv("CALICO_DATASTORE_PATH", raising=False)
    path, source = localfile.resolve_path(None, None)
    assert path == "/var/lib/calico/calico.db"
    assert "CALICO_DATASTORE_PATH is not set" in source


def test_datastore_path_from_calicoctl_cfg_is_named(tmp_path):
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
                   f"  datastoreType: local\n  datastorePath: {tmp_path}/nope.db\n")
    with pytest.raises(StoreMissing, match=f"datastorePath in {cfg}"):
        connect(DatastoreConfig.from_file(str(cfg)), create=False)


def test_writer_creates_the_store_and_its_directory(tmp_path):
    path = tmp_path / "new" / "calico.db"
    backend = connect(DatastoreConfig(type="local", path=str(path)), create=True)
    backend.put("/calico/x", "1")
    backend.close()
    assert path.exists()


def _read_only(monkeypatch, reason="the file is not writable"):
    monkeypatch.setattr(localfile, "read_only_reason", lambda path: reason)


def test_read_only_store_reads_and_refuses_writes_with_the_reason(tmp_path, monkeypatch):
    path = str(tmp_path / "calico.db")
    writer = LocalBackend(path)
    writer.put("/calico/resources/v3/projectcalico.org/ippools/p", "{}")
    writer.close()
    _read_only(monkeypatch)
    reader = LocalBackend(path, create=False)
    assert reader.get("/calico/resources/v3/projectcalico.org/ippools/p").value == "{}"
    assert len(reader.list("/calico/")[0]) == 1
    with pytest.raises(ReadOnlyStore, match="read-only \\(the file is not writable\\)"):
        reader.put("/calico/x", "1")
    reader.close()


POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p1}
spec: {cidr: 10.10.0.0/16}
"""


def test_calicoctl_get_on_a_mistyped_path_is_one_line_and_creates_nothing(
        ctl, tmp_path, monkeypatch):
    path = tmp_path / "calcio.db"
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(path))
    for args in (("get", "ippools"), ("delete", "ippool", "p1"),
                 ("patch", "ippool", "p1", "-p", '{"spec": {"disabled": true}}')):
        res = ctl(*args)
        assert res.exit_code == 1
        lines = res.output.strip().splitlines()
        assert len(lines) == 1, res.output
        assert str(path) in lines[0] and "CALICO_DATASTORE_PATH" in lines[0]
    assert not path.exists()


def test_calicoctl_apply_creates_then_get_reads(ctl, tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "calico.db"))
    assert ctl("apply", "-f", "-", input=POOL).exit_code == 0
    res = ctl("get", "ippools")
    assert res.exit_code == 0 and "p1" in res.output


def test_calicoctl_on_a_read_only_store(ctl, tmp_path, monkeypatch):
    monkeypatch.setenv("CALICO_DATASTORE_PATH", str(tmp_path / "calico.db"))
    assert ctl("apply", "-f", "-", input=POOL).exit_code == 0
    _read_only(monkeypatch, f"its directory {tmp_path} is not writable")
    res = ctl("get", "ippools")
    assert res.exit_code == 0 and "p1" in res.output
    res = ctl("delete", "ippool", "p1")
    assert res.exit_code == 1
    assert "is read-only (its directory" in res.output and "unreachable" not in res.output
    assert "p1" in ctl("get", "ippools").output
