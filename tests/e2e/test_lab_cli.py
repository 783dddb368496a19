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
