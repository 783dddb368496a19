"""Load with churn on a 3-host lab (shortened: 30 workloads per host, 60 policies, 60 s of
churn; `benchmarks/faults/lab_report.py` runs 100 per host, 200 policies, 5 minutes).

After the churn stops every host's dataplane must equal the datastore's state: Felix routes,
`cali` interfaces and per-endpoint chains match the host's endpoints, and a freshly started
Felix (kill -9, calico-node restarts it) finds nothing to change; `calicoctl ipam check`
is clean. Felix's RSS growth is reported, not asserted (a minute is too short to tell).
"""

from __future__ import annotations

import pytest

from benchmarks.faults import lab_traffic as lt
from benchmarks.faults.lab_load import LoadSize, run_load, summary
from tests.conftest import require_programs, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.etcd]

SIZE = LoadSize(hosts=3, workloads=30, policies=60, churn_seconds=60)


def test_churn_leaves_every_dataplane_equal_to_the_datastore(figures):
    require_root()
    require_programs("bird", "birdc", "etcd", "nft")
    with lt.lab_session("l", hosts=SIZE.hosts, ipv6=True, datastore="etcdv3") as lab:
        res = run_load(lab, SIZE)
    print("\n" + "\n".join(summary(res)))
    figures["lab load: convergence after churn (s)"] = round(res.convergence_seconds, 2)
    figures["lab load: churn ops (CNI ADD+DEL, relabels, policy edits)"] = \
        res.workload_adds + res.workload_dels + res.relabels + res.policy_edits
    # Reported, not asserted: a set whose members are unchanged but which Felix's delta path
    # wrote host by host is rewritten collapsed by a fresh Felix (see lab_load.normalized).
    figures["lab load: nft lines a fresh Felix wrote (all hosts)"] = \
        sum(res.fresh_nft_lines.values())
    for host, growth in sorted(res.rss_growth.items()):
        figures[f"lab load: Felix RSS growth {host} (%)"] = round(growth * 100, 1)
    assert not res.cni_errors, res.cni_errors[:3]
    assert not any(res.mismatches.values()), res.mismatches
    assert all(v == "nothing" for v in res.fresh_felix.values()), res.fresh_felix
    assert res.ipam_ok, res.ipam_check
