"""The pure, single-threaded calculation graph: datastore updates in, dataplane messages out.

Entry point: `CalcGraph(hostname)` with `on_update(key, resource_or_None)`, `on_status(status)`
and `flush() -> list[calico.felix.messages.Message]`. See graph.py for the wiring.
"""

from .graph import CalcGraph

__all__ = ["CalcGraph"]
