"""The frame both demos run in (`make demo`: calico/demo.py, `make demo-fabric`:
calico/demo_fabric.py).

    run_demo("demo", keep, steps, kept_hint)   # -> the exit status

A fresh lab `name` (the lab an earlier demo left is removed first), then `steps(console,
lab, started)` — the demo's own steps on a rich Console, `started` the monotonic time the
demo began; True when every check held. Then the verdict with the time taken; a LabError is
reported, not raised. The lab is torn down at the end unless `keep`, when `kept_hint` (what
to do with it) is printed instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def run_demo(name: str, keep: bool, steps: Callable[[Any, Any, float], bool],
             kept_hint: str) -> int:
    """0 if the steps passed, 1 if a check failed or the lab failed (LabError)."""
    from rich.console import Console

    from .lab import Lab
    from .proc import LabError

    console = Console()
    lab = Lab(name)
    if lab.exists():
        console.print("removing the lab left by an earlier demo")
        lab.load().down()
    started = time.monotonic()
    try:
        ok = steps(console, lab, started)
        console.rule(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
        return 0 if ok else 1
    except LabError as err:
        console.print(f"[red]demo failed:[/red] {err}")
        return 1
    finally:
        if keep and lab.state:
            console.print(kept_hint)
        elif lab.state:
            lab.down()
            console.print("lab torn down")
