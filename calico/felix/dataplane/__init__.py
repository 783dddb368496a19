"""The Linux dataplane: routes, interfaces, sysctls and nftables, applied incrementally."""
