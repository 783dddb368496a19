"""calicoctl: the command-line client."""
