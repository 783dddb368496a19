"""docs/felix-configuration.md is generated from Felix's parameter table and must match it:
a parameter added, renamed or given a new default without regenerating the file fails here
(run `.venv/bin/python scripts/felix_reference.py`)."""

import importlib.util
from pathlib import Path

from calico.api.felixparams import PARAMS

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("felix_reference",
                                                  ROOT / "scripts" / "felix_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_matches_the_generator():
    gen = _generator()
    committed = (ROOT / "docs" / "felix-configuration.md").read_text()
    assert committed == gen.render(), "run .venv/bin/python scripts/felix_reference.py"


def test_every_parameter_has_one_row():
    text = (ROOT / "docs" / "felix-configuration.md").read_text()
    for param in PARAMS:
        assert text.count(f"| `{param.name}` | `{param.env_var}` |") == 1, param.name


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    gen = _generator()
    stale = tmp_path / "felix-configuration.md"
    stale.write_text("old\n")
    monkeypatch.setattr(gen, "OUTPUT", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0
