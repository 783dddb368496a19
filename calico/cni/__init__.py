"""The CNI plugins `calico` and `calico-ipam`."""
