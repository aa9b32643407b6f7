"""``python -m bench [--quick] [--profile]``: figures one per line, ``name: number unit``."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.report import BenchError, Reporter

# From /work/shared/TOOLCHAIN.md (2 cores, RSA-2048, loopback TSA/OCSP, medians) and the brief.
BASELINE_SIGN_MS = 420
BASELINE_PAGE_MS = 137
TARGET_SIGN_MS = 60
TARGET_VERIFY_MS = 300


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="skip the 40-student class run")
    p.add_argument("--profile", action="store_true",
                   help="also sign one more record and verify three under cProfile, and print "
                        "where the time goes (as # comments)")
    p.add_argument("--records", type=int, default=7,
                   help="records signed end to end for the per-step figures (default 7; the "
                        "first only warms each key up)")
    p.add_argument("--students", type=int, default=40, help="class size of the whole-class run")
    return p.parse_args(argv)


def _preflight() -> None:
    """Fail early, naming what is missing, rather than deep inside a library."""
    from hsdt.signing import testpki

    missing = [m for m in ("weasyprint", "pyhanko", "pyhanko_certvalidator", "certomancer",
                           "pkcs11", "pikepdf") if importlib.util.find_spec(m) is None]
    if missing:
        raise BenchError(f"Python packages missing: {', '.join(missing)} — run `make setup-test`")
    lib = testpki.default_pkcs11_lib()
    if not Path(lib).is_file():
        raise BenchError(f"SoftHSM2 PKCS#11 module not found at {lib}: install the Debian "
                         f"package 'softhsm2' (or set {testpki.PKCS11_LIB_ENV})")
    if shutil.which("softhsm2-util") is None:
        raise BenchError("softhsm2-util not found: install the Debian package 'softhsm2'")


def _on_sigterm(signum: int, _frame: object) -> None:
    # Unwind normally, so temporary directories go and child processes are stopped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    rep = Reporter()
    t0 = time.perf_counter()
    try:
        _preflight()
        from bench import class40, machine, pipeline

        rep.comment(f"hsdt benchmarks — {platform.node()}: nproc {os.cpu_count()}, "
                    f"Python {platform.python_version()}, {platform.machine()}")
        rep.comment(f"baseline (TOOLCHAIN.md, 2 cores): visible B-T signature "
                    f"{BASELINE_SIGN_MS} ms, page {BASELINE_PAGE_MS} ms; targets: visible B-T "
                    f"signature with software key < {TARGET_SIGN_MS} ms, verification "
                    f"< {TARGET_VERIFY_MS} ms")
        rep.comment("figures are medians of several runs after a warm-up unless said otherwise; "
                    "TSA/OCSP/CRL served by a separate process on loopback")
        machine.reference(rep)
        with tempfile.TemporaryDirectory(prefix="hsdt-bench-") as tmp:
            pipeline.run(Path(tmp), rep,
                         pipeline.Options(records=args.records, profile=args.profile))
        _against_targets(rep)
        from bench import archive as archive_bench
        from bench import tlog as tlog_bench

        with tempfile.TemporaryDirectory(prefix="hsdt-bench-archive-") as tmp:
            archive_bench.run(Path(tmp), rep)
        tlog_bench.run(print)
        from bench import service as service_bench

        with tempfile.TemporaryDirectory(prefix="hsdt-bench-service-") as tmp:
            service_bench.run(Path(tmp), rep, students=10 if args.quick else args.students)
        from bench import remote as remote_bench

        with tempfile.TemporaryDirectory(prefix="hsdt-bench-remote-") as tmp:
            remote_bench.run(Path(tmp), rep)
        if args.quick:
            rep.comment(f"--quick: class{args.students} run skipped")
        else:
            class40.run(rep, students=args.students)
        machine.reference(rep, "machine.python_reference_end")
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    rep.comment(f"bench finished in {time.perf_counter() - t0:.0f} s")
    return 0


def _against_targets(rep: Reporter) -> None:
    sign = rep.figures.get("sign.visible_bt.software")
    verify = rep.figures.get("verify.sealed_record")
    if sign:
        verdict = "meets" if sign[0] < TARGET_SIGN_MS else "misses"
        rep.comment(f"sign.visible_bt.software {sign[0]:.0f} ms {verdict} the < {TARGET_SIGN_MS} "
                    f"ms target ({BASELINE_SIGN_MS / sign[0]:.1f}x faster than the baseline)")
    if verify:
        verdict = "meets" if verify[0] < TARGET_VERIFY_MS else "misses"
        rep.comment(f"verify.sealed_record {verify[0]:.0f} ms {verdict} the < "
                    f"{TARGET_VERIFY_MS} ms target")


if __name__ == "__main__":
    sys.exit(main())
