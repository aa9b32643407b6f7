"""How fast this machine runs Python right now: a fixed workload, timed.

The shared 2-core machines these figures come from have run the same code twice as fast
from one sitting to the next, and drift within one. Every figure here is CPU-bound Python,
so this reference, printed at the start and at the end of a run, is what makes figures from
different runs comparable: divide by it.
"""

from __future__ import annotations

import platform
import sys
import time

from bench.report import Reporter


def _workload() -> int:
    """Interpreter-bound work of the kinds verification does: small objects, dict and str
    operations, integer arithmetic."""
    table: dict[str, int] = {}
    for i in range(60_000):
        key = f"/K{i % 997}"
        table[key] = table.get(key, 0) + (i * i) % 7
    return sum(table.values()) + sum(len(k) for k in sorted(table))


def reference(rep: Reporter, name: str = "machine.python_reference", runs: int = 7) -> None:
    seconds = []
    for _ in range(runs):
        t0 = time.process_time()
        _workload()
        seconds.append(time.process_time() - t0)
    rep.timing(name, seconds, what="a fixed pure-Python workload (bench/machine.py): lower is "
                                    "a faster machine; compare runs by it")
    # The interpreter's build counts as much as the machine (an optimised build is ~12 %
    # faster on verification): say which one ran.
    rep.comment(f"  interpreter: {sys.executable} (CPython {platform.python_version()}, "
                f"built with {platform.python_compiler()})")
