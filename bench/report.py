"""Printing figures (``name: number unit``) and comments (``# …``), and summarising samples."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or broke; the message says what."""


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    low: float
    high: float
    p90: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise BenchError("no samples collected")
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.median(ordered), ordered[0], ordered[-1], p90)


class Reporter:
    """Writes the output; figures are flushed at once so a long run shows progress."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.figures: dict[str, tuple[float, str]] = {}

    def comment(self, text: str = "") -> None:
        for line in (text.splitlines() or [""]):
            print(f"# {line}".rstrip(), file=self.out, flush=True)

    def figure(self, name: str, value: float, unit: str) -> None:
        self.figures[name] = (value, unit)
        print(f"{name}: {_fmt(value)} {unit}", file=self.out, flush=True)

    def timing(self, name: str, seconds: Sequence[float], unit: str = "ms",
               what: str = "") -> Summary:
        """Median of ``seconds`` as a figure in ``unit``, the spread as a comment under it."""
        scale = {"ms": 1000.0, "s": 1.0}[unit]
        s = Summary.of([x * scale for x in seconds])
        self.figure(name, s.median, unit)
        detail = f"  median of n={s.n}; min {_fmt(s.low)}, p90 {_fmt(s.p90)}, max {_fmt(s.high)}"
        self.comment(detail + (f"; {what}" if what else ""))
        return s


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
