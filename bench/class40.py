"""The whole demo pipeline for a 40-student class, in a child process of its own.

Run as ``python -m bench.class40 OUT_DIR [STUDENTS]`` it is the child: it calls
:func:`hsdt.demo.run_demo` with a silent console and prints the result as JSON. :func:`run`
is the parent side: it starts the child, waits for it with ``wait4`` so the peak RSS is the
child's own, and reports the figures.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import BenchError, Reporter

_PROJECT = Path(__file__).resolve().parent.parent
_TIMEOUT_S = 90 * 60


@dataclass(frozen=True)
class ChildRun:
    wall_s: float
    peak_rss_mb: float
    result: dict[str, Any]


def run(rep: Reporter, students: int = 40, seed: int = 2026) -> ChildRun:
    with tempfile.TemporaryDirectory(prefix="hsdt-bench-class-") as tmp:
        out = Path(tmp) / "demo"
        result_file = Path(tmp) / "result.json"
        log = Path(tmp) / "child.log"
        env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
        cmd = [sys.executable, "-m", "bench.class40", str(out), str(students), str(seed),
               str(result_file)]
        t0 = time.perf_counter()
        with log.open("wb") as log_f:
            proc = subprocess.Popen(cmd, cwd=_PROJECT, env=env, stdout=log_f,
                                    stderr=subprocess.STDOUT)
        status, usage = _wait(proc)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not result_file.exists():
            tail = log.read_text("utf-8", "replace")[-3000:]
            raise BenchError(f"the {students}-student demo run failed (exit {code}):\n{tail}")
        result: dict[str, Any] = json.loads(result_file.read_text("utf-8"))
    # Linux reports ru_maxrss in KiB.
    run_ = ChildRun(wall, usage.ru_maxrss / 1024, result)
    rep.comment(f"class{students}: one run (not a median: it takes a minute or more) of the demo "
                f"pipeline in a child process — sample bundle, lock, PKI provision + serve "
                f"(thread mode, as the demo does), render, sign every field, seal, archive, "
                f"verify, read back and verify again")
    rep.figure(f"class{students}.total", wall, "s")
    rep.comment(f"  child process wall time incl. interpreter start and imports; run_demo's own "
                f"clock: {result['seconds']:.1f} s; {result['verified']}/{result['records']} "
                f"records verified")
    rep.figure(f"class{students}.peak_rss", run_.peak_rss_mb, "MB")
    rep.comment("  ru_maxrss of that child process (wait4), not of the benchmark")
    if result["verified"] != result["records"]:
        raise BenchError(f"the demo verified only {result['verified']}/{result['records']} "
                         "records")
    return run_


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, Any]:
    """Reap the child ourselves (``wait4``) to get its own resource usage."""
    deadline = time.monotonic() + _TIMEOUT_S
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, usage
            if time.monotonic() > deadline:
                raise BenchError(f"the demo run took more than {_TIMEOUT_S} s; stopped it")
            time.sleep(0.1)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        raise


def _child(argv: list[str]) -> int:
    out, students, seed, result_file = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    from rich.console import Console

    from hsdt.demo import run_demo

    res = run_demo(out, students=students, seed=seed, console=Console(file=io.StringIO()))
    result_file.write_text(json.dumps({"records": res.records, "archived": res.archived,
                                       "verified": res.verified, "seconds": res.seconds}),
                           encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
