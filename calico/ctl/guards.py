"""What calicoctl refuses before it writes, as Calico's calicoctl refuses it, and the check of
the client's version against the cluster's.

Refusals (calicoctl's resource managers; the message is libcalico-go's
ErrorOperationNotSupported, so scripts find "is not supported on"):
- ClusterInformation: create, apply, replace and delete ("it is managed by Calico": the first
  write of any resource creates it, see calico/datastore/builtins.py);
- a NetworkPolicy named `knp.default.<name>`: Kubernetes network policies are managed through
  the Kubernetes API.

Versions: before a command touches the datastore, calicoctl reads ClusterInformation
`default` and refuses to go on when its calicoVersion is not the client's release (compared
without a leading "v" and after the first "-"), unless `--allow-version-mismatch` was given
(before or after the subcommand). A datastore without ClusterInformation, or one without a
calicoVersion, is not checked; an error reading it (unreachable, refused credentials) is the
command's error, as it is.
"""

from __future__ import annotations

from typing import Any

from calico.datastore import kv
from calico.datastore.errors import CorruptResource, OperationNotSupported
from calico.version import CALICO_VERSION, release

from .session import CtlError

K8S_POLICY_PREFIX = "knp.default."
K8S_POLICY_REASON = "kubernetes network policies must be managed through the kubernetes API"

# calicoctl's words for each command's operation.
_OPERATIONS = {"create": "create or apply", "apply": "create or apply",
               "replace": "apply or replace", "patch": "apply or replace",
               "label": "apply or replace", "delete": "delete"}


def check_write(action: str, kind: str, name: str, namespace: str | None) -> None:
    """Raise OperationNotSupported if calicoctl refuses `action` on this resource."""
    operation = _OPERATIONS.get(action, action)
    if kind == "ClusterInformation":
        raise OperationNotSupported(operation, "ClusterInformation")
    if kind == "NetworkPolicy" and name.startswith(K8S_POLICY_PREFIX):
        raise OperationNotSupported(operation, f"NetworkPolicy({namespace}/{name})",
                                    K8S_POLICY_REASON)


def check_version(client: Any, client_version: str = CALICO_VERSION) -> None:
    """Raise CtlError (Calico's message) if the cluster's calicoVersion is another release."""
    try:
        info = client.get("ClusterInformation", "default")
    except (kv.KeyNotFound, CorruptResource):
        return  # nothing to compare with (Calico skips the check too when there is none)
    # Any other error (unreachable, refused credentials) goes out as it is: it is the
    # command's error too, and clearer than Calico's "Unable to get Cluster Information".
    cluster_version = info.spec.calicoVersion
    if not cluster_version:
        return
    if release(cluster_version) != release(client_version):
        raise CtlError(f"Version mismatch.\nClient Version:   {client_version}\n"
                       f"Cluster Version:  {release(cluster_version)}\n"
                       "Use --allow-version-mismatch to override.")
