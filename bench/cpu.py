"""CPU time spent by the processes a run involves: this one, its children, a local server.

Throughput on a fixed number of cores is capped by the CPU one unit of work takes across
every process that does a share of it. Reading that sum off ``/proc`` turns a missed
target into a statement of where the milliseconds went, and what the cores allow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (all its threads); 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def pids_named(names: Iterable[str]) -> list[int]:
    """Processes on this machine whose command name is one of ``names``."""
    wanted, found = set(names), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass
class CpuMeter:
    """CPU seconds of groups of processes between :meth:`start` and :meth:`stop`."""

    groups: dict[str, list[int]]
    _before: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {pid: process_seconds(pid) for pids in self.groups.values() for pid in pids}

    def stop(self) -> dict[str, float]:
        return {name: sum(process_seconds(pid) - self._before[pid] for pid in pids)
                for name, pids in self.groups.items()}
