"""`python -m calico.cni calico|calico-ipam`: the plugin named, as a container runtime runs it."""

from .main import main

main()
