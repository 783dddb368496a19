#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine, as root: the Debian packages the project's
# components and tests need, then a venv with the package, its lab extra and test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 nftables bird2 etcd-server etcd-client gobgpd
  iputils-ping socat dnsmasq-base systemd
  podman runc conmon containernetworking-plugins busybox-static isc-dhcp-client
  iperf3 gcc libc6-dev
  clang libbpf-dev bpftool
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}) and not root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,lab]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The address-space translator's BPF object (calico/felix/dataplane/xlat/bpf), rebuilt when
# its source is newer; Felix loads it with bpftool.
bpf=calico/felix/dataplane/xlat/bpf
if [ ! -f "$bpf/xlat.o" ] || [ -n "$(find "$bpf" -name '*.[ch]' -newer "$bpf/xlat.o")" ]; then
  clang -O2 -g -Wall -Werror -target bpf -I"/usr/include/$(clang -print-multiarch)" \
    -c "$bpf/xlat.c" -o "$bpf/xlat.o.tmp"
  mv "$bpf/xlat.o.tmp" "$bpf/xlat.o"
fi

# Byte-compile the package as an installed one is: an editable install compiles nothing, and
# with PYTHONDONTWRITEBYTECODE set every daemon start re-compiles ~80 modules (0.1-0.15 s of
# Felix's and calico-node's start). Quick when nothing changed.
.venv/bin/python -m compileall -q calico >/dev/null
