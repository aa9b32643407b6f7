"""Transparency log at a million entries: ``python -m bench.tlog [--entries N] [--keep DIR]``.

:func:`run` prints figures as ``name: number unit`` and context as ``# …`` through the
``print_line`` it is given, so the main benchmark can call it with its own printer:

- ``tlog.append``: durable single appends on a small fresh log (entry and hashes fdatasynced
  together, then the index record that commits them);
- ``tlog.extend``: bulk appends while building the 10⁶-entry log (batches of 65,536);
- ``tlog.inclusion_proof_1e6``: generate an inclusion proof at 10⁶ entries, read the leaf
  hash and verify the proof against the signed root (target < 5 ms);
- ``tlog.consistency_proof_1e6``: generate and verify a consistency proof from a random
  earlier size to 10⁶, against the two roots an auditor holds;
- ``tlog.root_1e6``: the root of a random historical size;
- ``tlog.check_1e6``: re-check the whole log (every entry re-hashed, every stored hash compared).

The log is built in a temporary directory that is removed afterwards, unless ``keep`` (or
the environment variable ``HSDT_BENCH_TLOG_DIR``) names a directory, where a log already built
is reused.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hsdt.archive.tlog import TransparencyLog, verify_consistency, verify_inclusion, verify_tree_head

PrintLine = Callable[[str], None]
ENTRIES = 1_000_000
BATCH = 65_536
SAMPLES = 200
APPEND_SECONDS = 2.0
LOG_ID = "hsdt-bench"


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def _event(i: int) -> bytes:
    """An archival event of realistic shape and size (~300 bytes of canonical JSON)."""
    digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return (f'{{"at":"2026-05-30T08:{i // 60 % 60:02d}:{i % 60:02d}Z","entry":{{"key":'
            f'"records/hoc_ba_thcs/{digest[:2]}/{digest}.pdf","record_id":"HB-2026-{i:08d}",'
            f'"sha256":"{digest}"}},"schema":"hsdt.archive-event/1","type":"ingest"}}').encode()


def _events(start: int, stop: int) -> Iterator[list[bytes]]:
    for a in range(start, stop, BATCH):
        yield [_event(i) for i in range(a, min(stop, a + BATCH))]


def run(print_line: PrintLine, entries: int = ENTRIES, keep: Path | None = None) -> None:
    keep = keep or (Path(os.environ["HSDT_BENCH_TLOG_DIR"]) if os.environ.get("HSDT_BENCH_TLOG_DIR")
                    else None)
    suffix = "1e6" if entries == 10**6 else str(entries)
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"hsdt bench tlog").digest())

    def figure(name: str, value: float, unit: str, note: str = "") -> None:
        print_line(f"tlog.{name}: {_fmt(value)} {unit}")
        if note:
            print_line(f"#   {note}")

    def timed(name: str, samples: list[float], note: str) -> None:
        ms = sorted(s * 1000 for s in samples)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        figure(name, statistics.median(ms), "ms",
               f"median of n={len(ms)}; min {_fmt(ms[0])}, p90 {_fmt(p90)}, max {_fmt(ms[-1])}; {note}")

    with tempfile.TemporaryDirectory(prefix="hsdt-bench-tlog-") as tmp:
        root_dir = keep or Path(tmp)
        print_line(f"# transparency log: {entries:,} entries of ~{len(_event(0))} B in {root_dir}")

        # 1. Durable single appends, on a log of their own.
        small = TransparencyLog.open(Path(tmp) / "append", key, LOG_ID)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < APPEND_SECONDS or n < 50:
            small.append(_event(n))
            n += 1
        figure("append", n / (time.perf_counter() - t0), "entries/s",
               f"{n} appends, each fsynced (entry + hashes, then index) before returning")
        small.close()

        # 2. The big log: built with extend, or reused.
        log = TransparencyLog.open(root_dir / "log", key, LOG_ID)
        have = log.size
        if have < entries:
            t0 = time.perf_counter()
            for batch in _events(have, entries):
                log.extend(batch)
            took = time.perf_counter() - t0
            figure("extend", (entries - have) / took, "entries/s",
                   f"{entries - have:,} entries in {took:.1f} s, batches of {BATCH:,}, one fsync "
                   f"per file per batch (event generation included)")
        else:
            print_line(f"# reusing the {have:,}-entry log in {root_dir} (no extend figure)")
        size = entries
        rng = random.Random(2026)
        sth = log.signed_tree_head()
        if sth.size != size:
            print_line(f"# note: the reused log has {sth.size:,} entries; proofs use the first {size:,}")
        root = log.root(size)

        # 3. Inclusion: what a verifier does with an entry and a signed tree head.
        samples = []
        for index in rng.sample(range(size), SAMPLES):
            t0 = time.perf_counter()
            proof = log.inclusion_proof(index, size)
            ok = verify_inclusion(log.leaf(index), index, size, proof, root)
            samples.append(time.perf_counter() - t0)
            if not ok:
                raise AssertionError(f"inclusion proof for {index} did not verify")
        timed(f"inclusion_proof_{suffix}", samples,
              f"generate ({len(proof)} hashes) + read leaf + verify, random indexes, target < 5 ms")

        # 4. Consistency: an auditor's old tree head against the current one.
        olds = [rng.randrange(1, size) for _ in range(SAMPLES)]
        old_roots = {m: log.root(m) for m in olds}
        samples = []
        for m in olds:
            t0 = time.perf_counter()
            proof = log.consistency_proof(m, size)
            ok = verify_consistency(m, size, old_roots[m], root, proof)
            samples.append(time.perf_counter() - t0)
            if not ok:
                raise AssertionError(f"consistency proof {m} → {size} did not verify")
        timed(f"consistency_proof_{suffix}", samples,
              "generate + verify from a random earlier size, roots from the tree heads")

        samples = []
        for m in olds:
            t0 = time.perf_counter()
            log.root(m)
            samples.append(time.perf_counter() - t0)
        timed(f"root_{suffix}", samples, "tree hash at a random historical size")

        t0 = time.perf_counter()
        head = log.signed_tree_head()
        if not verify_tree_head(head, key.public_key()):
            raise AssertionError("tree head did not verify")
        figure("signed_tree_head", (time.perf_counter() - t0) * 1000, "ms", "one run: root + sign + keep")

        # 5. The whole log re-checked, as `hsdt audit log` does.
        t0 = time.perf_counter()
        report = log.check_integrity()
        took = time.perf_counter() - t0
        if not report.ok:
            raise AssertionError(f"integrity check failed: {report.problems[:3]}")
        figure(f"check_{suffix}", took, "s", f"one run: {report.size:,} entries re-hashed, "
               f"{report.heads_checked} kept tree heads checked")
        log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tlog", description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=ENTRIES, help="log size (default 1,000,000)")
    p.add_argument("--keep", type=Path, help="build the log here and reuse it next time")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    run(print, args.entries, args.keep)
    print(f"# tlog bench wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
