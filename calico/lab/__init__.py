"""A multi-host virtual cluster on one machine, built from network namespaces."""
