"""Calico, in Python: a pure layer-3 network for VMs and containers with a rich policy model."""
