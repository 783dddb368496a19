#!/usr/bin/env bash
# `make demo`: three virtual hosts (network namespaces) running calico-node, two workloads
# each, the all-pairs connectivity matrix before and after a GlobalNetworkPolicy, and
# `calicoctl node status`. Pass --keep to leave the lab running (`calico-lab down --name demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m calico.demo "$@"
