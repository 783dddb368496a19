#!/usr/bin/env bash
# `make demo-fabric`: Calico on an L3 leaf-spine fabric (2 racks x 2 hosts, ToR per rack in
# its own AS, 2 spines): the topology, the connectivity matrix, `calicoctl node status`, and
# a spine link failing under traffic. Pass --as-per-host for the AS per compute server model,
# --keep to leave the lab running (`calico-lab down --name demofab`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m calico.demo_fabric "$@"
