"""`calico-lab` as people run it, on a real lab: 16 `add-workload` commands at once all land in
the lab's state (and in IPAM and the datastore), `remove-workload` sees every one of them, and
`up` on a lab that exists says so and leaves it alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from calico.datastore.client import ResourceClient

PARALLEL = 16
LAB = [os.path.join(os.path.dirname(sys.executable), "calico-lab")]


def lab_cli(lab, *args, check=True):
    proc = subprocess.run([*LAB, args[0], "--name", lab.name, *args[1:]], capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _weps(lab) -> set[str]:
    backend = lab.backend()
    try:
        return {w.spec.workload or w.spec.pod or w.name
                for w in ResourceClient(backend).list("WorkloadEndpoint").items}
    finally:
        backend.close()


def test_parallel_add_workload_records_every_workload(make_lab):
    lab = make_lab("cli", hosts=1)
    host = lab.state["hosts"][0]["name"]
    names = [f"par{i}" for i in range(PARALLEL)]
    procs = [subprocess.Popen([*LAB, "add-workload", "--name", lab.name, host, name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), results
    status = json.loads(lab_cli(lab, "status", "-o", "json").stdout)
    recorded = {w["name"] for w in status["workloads"]}
    assert recorded == set(names)
    addresses = [a for w in status["workloads"] for a in w["addresses"]]
    assert len(set(addresses)) == PARALLEL  # IPAM gave each its own address
    assert len(_weps(lab)) == PARALLEL
    for name in names[:4]:
        lab_cli(lab, "remove-workload", name)
    status = json.loads(lab_cli(lab, "status", "-o", "json").stdout)
    assert {w["name"] for w in status["workloads"]} == set(names[4:])
    assert len(_weps(lab)) == PARALLEL - 4


def test_up_on_an_existing_lab_says_so_and_leaves_it(make_lab):
    lab = make_lab("exi", hosts=1)
    before = json.loads(lab_cli(lab, "status", "-o", "json").stdout)
    res = lab_cli(lab, "up", "--hosts", "2", check=False)
    assert res.returncode == 1
    assert f"lab '{lab.name}' is already up" in res.stderr
    after = json.loads(lab_cli(lab, "status", "-o", "json").stdout)
    assert [h["name"] for h in after["hosts"]] == [h["name"] for h in before["hosts"]]
    assert all(h["running"] for h in after["hosts"])


def test_cluster_diags_on_a_lab(make_lab, tmp_path):
    """`calicoctl cluster diags` pointed at a running lab's state directory: every host's BGP
    status (sessions Established), Felix's status keys, the pools and the daemons' logs."""
    import tarfile

    lab = make_lab("dia", hosts=2)
    env = {**os.environ, **lab.datastore_env(inside=False)}
    proc = subprocess.run([sys.executable, "-m", "calico.ctl.main", "cluster", "diags", "-c",
                           "/nonexistent", "--log-dir", lab.dir, "--output", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = tmp_path.glob("calico-diagnostics-*.tar.gz")
    with tarfile.open(archive) as tar:
        files = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile()}

        def read(rel):
            return tar.extractfile(files[rel]).read().decode()

        statuses = [r for r in files if r.endswith("/node-status.txt")]
        assert len(statuses) == 2
        for rel in statuses:
            assert "Calico process is running." in read(rel)
            assert "Established" in read(rel)
            assert "BGP" in read(rel.replace("node-status.txt", "birdc-show-protocols-all.txt"))
        felix = json.loads(read("felix/status.json"))["keys"]
        for h in lab.state["hosts"]:
            assert f"/calico/felix/v2/no-region/host/{h['name']}/last_reported_status" in felix
        assert "10.65.0.0/16" in read("cluster/ippools.yaml")
        assert sum(1 for r in files if r.endswith("calico-node.log")) == 2
        assert read("host/checksystem.txt").startswith("Checking kernel version...")
        assert "Datastore type:    local" in read("version.txt")
