"""The Calico release whose behaviour this implementation follows, as every component reports
it: calicoctl's `Client Version`, and the `calicoVersion` a new datastore's
ClusterInformation records (calicoctl compares the two, as Calico's does, ignoring a leading
"v" and anything after the first "-")."""

CALICO_VERSION = "v3.28.0-py"


def release(version: str) -> str:
    """"v3.28.0-py" -> "3.28.0": the part of a version calicoctl compares."""
    return version.removeprefix("v").split("-", 1)[0]
