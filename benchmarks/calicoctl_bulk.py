"""calicoctl on bulk manifests, against the raw cost of the same work measured in the same run.

Four operations, each run as an operator runs it (`calicoctl` as a subprocess against a fresh
local store in a temp dir), and each set against its raw cost:

- apply of 2,000 GlobalNetworkPolicies;  raw: parse the file with libyaml (PyYAML's
  CSafeLoader), JSON-encode each document and write the 2,000 rows in one store transaction;
- `get gnp -o yaml` of them;  raw: list the rows, JSON-decode them and dump them with libyaml
  (CSafeDumper);
- apply of a 4.4 MB GlobalNetworkSet (about 260,000 nets);  raw: parse + one write;
- re-apply of the same GlobalNetworkSet (nothing changes);  raw: parse + one read.

The raw figures include the interpreter start and the store open, as calicoctl's do (one
`python -c` subprocess doing the raw work, with calicoctl's garbage-collector threshold), so
the ratio is what our code adds: decoding to
models, Calico's validation and defaults, and per-resource writes. Figures are CPU seconds
(user + system) of the process, the median of --runs runs. The target is within 2x.

    PYTHONPATH=. .venv/bin/python benchmarks/calicoctl_bulk.py [--policies 2000] [--nets 260000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

from calico.ctl.main import GC_THRESHOLD

PYTHON = sys.executable
CALICOCTL = [PYTHON, "-m", "calico.ctl.main"]

RAW_PRELUDE = f"import gc\ngc.set_threshold{GC_THRESHOLD}\n"

RAW_WRITE = RAW_PRELUDE + """
import json, sys, yaml
from calico.datastore.kv import Put
from calico.datastore.local import LocalBackend
from calico.datastore.client import RESOURCE_PREFIX
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.load_all(f.read(), Loader=yaml.CSafeLoader) if d]
plural = {"GlobalNetworkPolicy": "globalnetworkpolicies", "GlobalNetworkSet": "globalnetworksets"}
ops = [Put(RESOURCE_PREFIX + plural[d["kind"]] + "/" + d["metadata"]["name"],
           json.dumps(d, separators=(",", ":"))) for d in docs]
backend = LocalBackend()
if sys.argv[2] == "write":
    backend.txn([], ops)
else:
    for op in ops:
        backend.get(op.key)
"""

RAW_DUMP = RAW_PRELUDE + """
import json, sys, yaml
from calico.datastore.local import LocalBackend
from calico.datastore.client import RESOURCE_PREFIX
items, rev = LocalBackend().list(RESOURCE_PREFIX + "globalnetworkpolicies/")
body = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicyList",
        "items": [json.loads(kv.value) for kv in items], "metadata": {"resourceVersion": str(rev)}}
sys.stdout.write(yaml.dump(body, Dumper=yaml.CSafeDumper, sort_keys=False,
                           default_flow_style=False))
"""


def policies_manifest(count: int) -> str:
    """`count` GlobalNetworkPolicies of the size people write: a selector, three rules."""
    out = []
    for i in range(count):
        out.append(f"""apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: policy-{i:05d}
  labels:
    team: team-{i % 17}
spec:
  order: {i}
  selector: app == "app-{i}" && tier in {{"web", "api"}}
  types: [Ingress, Egress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == "client-{i % 50}"
      nets: [10.{i % 250}.0.0/16, 192.168.{i % 250}.0/24]
    destination:
      ports: [80, 443, "8000:8100"]
  - action: Deny
    protocol: UDP
    destination:
      notPorts: [53]
  egress:
  - action: Allow
    destination:
      namespaceSelector: global()
      selector: has(db)
""")
    return "---\n".join(out)


def netset_manifest(count: int) -> str:
    nets = "".join(f"  - 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32\n" for i in range(count))
    return ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n"
            "  name: big-set\n  labels:\n    role: blocked\nspec:\n  nets:\n" + nets)


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, str]:
    """Median CPU time (user + system) of `runs` runs of argv, and the last run's stdout.
    CPU time, not wall time: this machine is shared, and a ratio of CPU times stays put
    when another process takes a core for a while."""
    times, out = [], ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = subprocess.run(argv, capture_output=True, text=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:5])} failed: {res.stderr[-2000:]}")
        out = res.stdout
    return statistics.median(times), out


def fresh_env(tmp: str, name: str) -> dict[str, str]:
    env = {**os.environ, "CALICO_DATASTORE_PATH": os.path.join(tmp, f"{name}.db")}
    env.pop("DATASTORE_TYPE", None)
    return env


def report(label: str, ours: float, raw: float) -> None:
    print(f"{label:42s} ours {ours:6.2f} s   raw {raw:6.2f} s   ratio {ours / raw:5.2f}x "
          f"(CPU seconds)")


def run(policies: int, nets: int, runs: int) -> None:
    ctl = [*CALICOCTL]
    with tempfile.TemporaryDirectory() as tmp:
        gnp_file = os.path.join(tmp, "gnps.yaml")
        gns_file = os.path.join(tmp, "gns.yaml")
        with open(gnp_file, "w") as f:
            f.write(policies_manifest(policies))
        with open(gns_file, "w") as f:
            f.write(netset_manifest(nets))
        print(f"{policies} GlobalNetworkPolicies: {os.path.getsize(gnp_file) / 1e6:.1f} MB; "
              f"GlobalNetworkSet of {nets} nets: {os.path.getsize(gns_file) / 1e6:.1f} MB; "
              f"median of {runs} runs")
        cfg = ["-c", os.path.join(tmp, "none.cfg")]

        ours_apply = ours_get = 0.0
        apply_times, raw_times, get_times, dump_times = [], [], [], []
        for r in range(runs):  # each apply needs a fresh store
            env = fresh_env(tmp, f"gnp{r}")
            apply_times.append(timed([*ctl, "apply", *cfg, "-f", gnp_file], env, 1)[0])
            get_times.append(timed([*ctl, "get", *cfg, "gnp", "-o", "yaml"], env, 1)[0])
            raw_env = fresh_env(tmp, f"raw{r}")
            raw_times.append(timed([PYTHON, "-c", RAW_WRITE, gnp_file, "write"], raw_env, 1)[0])
            dump_times.append(timed([PYTHON, "-c", RAW_DUMP], raw_env, 1)[0])
        ours_apply, ours_get = statistics.median(apply_times), statistics.median(get_times)
        report(f"apply {policies} GlobalNetworkPolicies", ours_apply,
               statistics.median(raw_times))
        report(f"get -o yaml of {policies} GlobalNetworkPolicies", ours_get,
               statistics.median(dump_times))

        first, again, raw_first, raw_again = [], [], [], []
        for r in range(runs):
            env = fresh_env(tmp, f"gns{r}")
            first.append(timed([*ctl, "apply", *cfg, "-f", gns_file], env, 1)[0])
            again.append(timed([*ctl, "apply", *cfg, "-f", gns_file], env, 1)[0])
            raw_env = fresh_env(tmp, f"rawgns{r}")
            raw_first.append(timed([PYTHON, "-c", RAW_WRITE, gns_file, "write"], raw_env, 1)[0])
            raw_again.append(timed([PYTHON, "-c", RAW_WRITE, gns_file, "read"], raw_env, 1)[0])
        size = f"{os.path.getsize(gns_file) / 1e6:.1f} MB"
        report(f"apply a {size} GlobalNetworkSet", statistics.median(first),
               statistics.median(raw_first))
        report("re-apply it (nothing changes)", statistics.median(again),
               statistics.median(raw_again))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=2000)
    parser.add_argument("--nets", type=int, default=228_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run(args.policies, args.nets, args.runs)


if __name__ == "__main__":
    main()
