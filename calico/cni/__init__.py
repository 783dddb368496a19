"""The CNI plugins `calico` and `calico-ipam` (CNI spec 1.0.0).

    spec.py         the protocol: environment, error codes, results in each version's shape
    netconf.py      the network configuration (Calico's field names) and endpoint identity
    ipam_plugin.py  calico-ipam: addresses from calico.ipam by handle; the host IPAM lock
    delegate.py     running another plugin from CNI_PATH (a non-Calico IPAM plugin)
    dataplane.py    the veth, addresses, routes and sysctls (rtnetlink through netlink.py)
    endpoint.py     the WorkloadEndpoint and the network's Profile
    plugin.py       calico: ADD / DEL / CHECK with undo on failure
    resources.py    where a request gets its datastore connection and IPAM (fresh or kept)
    client.py       the executables' start: hand the request to calico-node's CNI socket,
                    else run it here (imports nothing heavy)
    main.py         the console scripts; installer.py writes wrappers into a CNI bin dir
"""


def install(bin_dir: str, python: str | None = None) -> list[str]:
    """Write executable `calico` and `calico-ipam` wrappers into `bin_dir`."""
    from .installer import install as _install

    return _install(bin_dir, python)
