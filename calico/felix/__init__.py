"""Felix, the per-host agent: syncer -> calculation graph -> dataplane -> kernel."""
