"""Selector evaluation speed: evaluations per second for typical selectors and label maps.

Not a test: it prints figures. For each selector it times the compiled evaluator (what
Selector.evaluate runs), the tree-walking reference evaluator, and, as the floor, a
hand-written lambda doing the same dict lookups, and prints the ratios.

    .venv/bin/python benchmarks/selector_eval.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import timeit

from calico.selector import parse

# Shaped like a Kubernetes pod's labels as Calico sees them (namespace and service account
# labels merged in), and a small OpenStack VM's.
POD = {
    "app": "frontend",
    "pod-template-hash": "7d4b9c8f6",
    "tier": "web",
    "version": "v2",
    "projectcalico.org/namespace": "prod",
    "projectcalico.org/orchestrator": "k8s",
    "projectcalico.org/serviceaccount": "default",
    "pcns.projectcalico.org/name": "prod",
    "pcns.kubernetes.io/metadata.name": "prod",
}
VM = {"sg.projectcalico.org/openstack-3d2f0c1e": "", "projectcalico.org/orchestrator": "openstack"}

CASES = [
    ("all()", POD, lambda labels: True),
    ("has(sg.projectcalico.org/openstack-3d2f0c1e)", VM,
     lambda labels: "sg.projectcalico.org/openstack-3d2f0c1e" in labels),
    ("app == 'frontend'", POD, lambda labels: labels.get("app") == "frontend"),
    ("projectcalico.org/orchestrator == 'k8s' && app == 'frontend' && tier in {'web', 'api'}",
     POD,
     lambda labels: (labels.get("projectcalico.org/orchestrator") == "k8s"
                     and labels.get("app") == "frontend"
                     and labels.get("tier") in {"web", "api"})),
    ("(app == 'backend' || app == 'db') && !has(quarantine)", POD,
     lambda labels: ((labels.get("app") == "backend" or labels.get("app") == "db")
                     and "quarantine" not in labels)),
    ("version starts with 'v2' && tier != 'test' && env not in {'dev', 'staging'}", POD,
     lambda labels: (labels.get("version", "").startswith("v2") and labels.get("tier") != "test"
                     and labels.get("env") not in {"dev", "staging"})),
]


def rates(fns, labels, seconds: float, rounds: int = 7) -> list[float]:
    """Best calls/s of each function, measured in interleaved rounds so that load from
    other processes hits all of them alike."""
    timers = [timeit.Timer(lambda fn=fn: fn(labels)) for fn in fns]
    number = max(1, int(timers[0].autorange()[0] * seconds / rounds / 0.2))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number))
    return [number / b for b in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per function measured")
    args = parser.parse_args()

    # timeit's own call of the lambda wrapper is included in every figure equally.
    print(f"{'selector':<62} {'compiled/s':>12} {'tree/s':>11} {'hand/s':>11} "
          f"{'vs tree':>8} {'vs hand':>8}")
    for text, labels, hand in CASES:
        sel = parse(text)
        assert sel.evaluate(labels) == sel.root.evaluate(labels) == hand(labels)
        compiled, tree, floor = rates([sel.evaluate, sel.root.evaluate, hand], labels,
                                      args.seconds)
        label = text if len(text) <= 60 else text[:57] + "..."
        print(f"{label:<62} {compiled:>12,.0f} {tree:>11,.0f} {floor:>11,.0f} "
              f"{compiled / tree:>7.1f}x {compiled / floor:>7.2f}x")

    timer = timeit.Timer(lambda: [parse.__wrapped__(t) for t, _, _ in CASES])
    number, elapsed = timer.autorange()
    print(f"\nparse + compile (uncached): {number * len(CASES) / elapsed:,.0f} selectors/s")


if __name__ == "__main__":
    main()
