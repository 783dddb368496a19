"""Address spaces: stateless IPv4/IPv6 translation at workload interfaces (issue #19)."""
