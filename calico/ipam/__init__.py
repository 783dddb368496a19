"""IP address management: pools, blocks with host affinity, borrowing and handles.

    block.py   one allocation block: Calico's stored JSON and the pure allocation logic
    model.py   handles; the keys under /calico/ipam/v2/, block affinities and the IPAM config
               are the datastore's (calico/datastore/ipamkeys.py), re-exported here
    pools.py   which IPPools a host may use (enabled, nodeSelector, allowedUses); block walk
    store.py   compare-and-swap reads and writes, the block claim / release protocol, retries
    ipam.py    `IPAM(backend, hostname)`: auto_assign, assign_ip, release_*, get_assignment
    release.py returning addresses to their blocks, by address or by handle
    report.py  usage per pool and block, check() for leaks, fix(report)
    errors.py  what callers catch: IPAMError and its subclasses
"""

from .errors import (
    AddressInUseError,
    IPAMError,
    NoPoolsError,
    NotInPoolError,
    PoolExhaustedError,
    StrictAffinityError,
)
from .ipam import IPAM, Assignment
from .model import IPAMConfig
from .report import CheckReport, FixResult, workload_attrs

__all__ = [
    "IPAM", "AddressInUseError", "Assignment", "CheckReport", "FixResult", "IPAMConfig",
    "IPAMError", "NoPoolsError", "NotInPoolError", "PoolExhaustedError", "StrictAffinityError",
    "workload_attrs",
]
