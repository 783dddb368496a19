#!/usr/bin/env bash
# `make demo`: the main job. Until the multi-host lab lands, this validates Calico manifests
# with the resource model and shows what a rejected manifest looks like.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m calico.demo "$@"
