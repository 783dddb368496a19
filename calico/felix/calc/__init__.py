"""The pure, single-threaded calculation graph: datastore updates in, dataplane messages out."""
