#!/usr/bin/env bash
# Build (idempotently) the separate venv that runs a real Neutron API server with our ML2
# driver, for the openstack test tier. Neutron pins its own SQLAlchemy, oslo.* and so on, so
# it cannot share the project's .venv.
#
#   scripts/neutron-venv.sh            # prints the venv path on stdout
#   CALICO_NEUTRON_VENV=/x scripts/neutron-venv.sh
#
# The venv lives at a fixed path outside the work tree (default
# /var/cache/calico-py/neutron-venv), so CI builds it once per machine: Neutron and its
# dependencies are installed from tests/openstack/neutron-constraints.txt and a stamp named
# after that file's hash records success; only a changed constraints file rebuilds it. Our
# package is installed editable (--no-deps) from this work tree, re-done when the tree's path
# or pyproject.toml changes (a CI clone lives in a new folder each run: a few seconds).
# A lock file serialises concurrent callers.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${CALICO_NEUTRON_VENV:-/var/cache/calico-py/neutron-venv}
CONSTRAINTS="$REPO/tests/openstack/neutron-constraints.txt"
PY=${PYTHON:-python3}
NEUTRON_REQS=(neutron==29.0.0 openstacksdk setuptools
              "pydantic>=2.6,<3" "PyYAML>=6" "click>=8.1" "rich>=13" "prometheus-client>=0.19"
              "pyroute2>=0.7.12")

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

deps_stamp="$VENV/.deps-$(cat "$CONSTRAINTS" | sha1sum | cut -c1-12)"
if [ ! -f "$deps_stamp" ]; then
  start=$(date +%s)
  echo "neutron-venv: building $VENV (Neutron and pinned dependencies)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # (pip warns about every name missing from the machine's local extra indexes: noise)
  "$VENV/bin/pip" install -q -c "$CONSTRAINTS" "${NEUTRON_REQS[@]}" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -W ignore -c "import neutron.wsgi, openstack"
  touch "$deps_stamp"
  echo "neutron-venv: built in $(( $(date +%s) - start )) s" >&2
fi

src_stamp="$VENV/.src-$(printf '%s\n' "$REPO" | cat - "$REPO/pyproject.toml" | sha1sum | cut -c1-12)"
if [ ! -f "$src_stamp" ]; then
  echo "neutron-venv: installing calico-py from $REPO (editable, no deps)" >&2
  rm -f "$VENV"/.src-*
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$REPO" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -W ignore -c "import calico.openstack.mech_calico"
  touch "$src_stamp"
fi
echo "$VENV"
