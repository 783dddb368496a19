"""The guide stays true: its links resolve, and the install flags and calicoctl commands it
tells operators to run exist."""

import re
from pathlib import Path

from click.testing import CliRunner

from calico.ctl.main import _register_optional_groups, cli
from calico.node.install import install_command

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_every_docs_page_is_in_the_index():
    index = (ROOT / "docs" / "README.md").read_text()
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"({page.name})" in index, page.name


def test_install_flags_in_the_guide_exist():
    known = {opt for p in install_command.params for opt in p.opts}
    seen = set()
    for page in PAGES:
        for line in re.findall(r"calico-node install[^\n`\\]*(?:\\\n[^\n`\\]*)*", page.read_text()):
            for flag in re.findall(r"(--[a-z0-9-]+)", line):
                assert flag in known, f"{page.name}: calico-node install {flag}"
                seen.add(flag)
    assert {"--cni", "--openstack", "--etcd-key-file", "--root"} <= seen


def test_migrate_commands_in_the_guide_exist():
    _register_optional_groups()
    for sub in ("lock", "unlock", "export", "import"):
        res = CliRunner().invoke(cli, ["datastore", "migrate", sub, "--help"])
        assert res.exit_code == 0, res.output
