"""`make demo`: a short walkthrough of what exists so far (grows into the multi-host lab)."""

from __future__ import annotations

import sys

from calico import api

GOOD = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-dns
spec:
  selector: all()
  egress:
  - action: Allow
    protocol: UDP
    destination:
      ports: [53]
"""

BAD = GOOD.replace("[53]", "[53, 70000]")


def main() -> int:
    print("== a Calico manifest, validated and printed back in Calico's JSON form")
    for res in api.load(GOOD):
        print(api.dump_yaml([res]))
    print("== the same manifest with a bad port is rejected with one clear line")
    try:
        api.load(BAD)
    except (api.ValidationError, api.ManifestError) as err:
        print(f"error: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
