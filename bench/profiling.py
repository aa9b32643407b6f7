"""A short cProfile digest: where the time of a measured step goes, as ``#`` comment lines."""

from __future__ import annotations

import cProfile
import os
import pstats
from collections.abc import Iterator
from contextlib import contextmanager

# pstats' key: (file, line, function); value: (primitive calls, calls, tottime, cumtime, callers)
_Key = tuple[str, int, str]


class Profile:
    """Accumulates a profile over several ``with profile.running():`` blocks."""

    def __init__(self) -> None:
        self._prof = cProfile.Profile()
        self.calls = 0

    @contextmanager
    def running(self) -> Iterator[None]:
        self._prof.enable()
        try:
            yield
        finally:
            self._prof.disable()
            self.calls += 1

    def digest(self, title: str, top: int = 12) -> list[str]:
        """Top functions by own time, then the project/pyHanko functions by cumulative time."""
        stats = pstats.Stats(self._prof)
        raw: dict[_Key, tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in raw.values()) or 1e-9
        per_call = 1000.0 / max(self.calls, 1)
        lines = [f"profile {title}: {self.calls} calls, {total * per_call:.0f} ms/call profiled "
                 "(cProfile overhead inflates this)"]
        lines.append("  own time (tottime), ms/call, share:")
        by_own = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
        for key, (_cc, nc, tt, _ct, _callers) in by_own:
            lines.append(f"    {tt * per_call:7.1f}  {100 * tt / total:4.1f}%  "
                         f"{_where(key)}  ({nc // max(self.calls, 1)}x)")
        lines.append("  cumulative time in library/project code, ms/call (near-equal wrappers "
                     "folded):")
        ours = [kv for kv in raw.items() if _interesting(kv[0])]
        shown: list[float] = []
        for key, (_cc, _nc, _tt, ct, _callers) in sorted(ours, key=lambda kv: kv[1][3],
                                                         reverse=True):
            if len(shown) >= top:
                break
            if any(abs(ct - c) <= 0.01 * total for c in shown):
                continue  # a wrapper of a function already listed (same time, one level up)
            shown.append(ct)
            lines.append(f"    {ct * per_call:7.1f}  {100 * ct / total:5.1f}%  {_where(key)}")
        return lines


def _where(key: _Key) -> str:
    file, line, func = key
    if file == "~":
        return func  # a builtin, e.g. <method 'sign' of ...>
    parts = file.split(os.sep)
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor):]
            break
    else:
        parts = parts[-3:]
    return f"{'/'.join(parts)}:{line} {func}"


_PACKAGES = ("/hsdt/", "/pyhanko/", "/pyhanko_certvalidator/", "/asn1crypto/", "/cryptography/",
             "/weasyprint/", "/pikepdf/", "/fontTools/", "/aiohttp/", "/pkcs11/")


def _interesting(key: _Key) -> bool:
    file = key[0].replace(os.sep, "/")
    return any(p in file for p in _PACKAGES)
