"""The transparency log: RFC 9162 trees and proofs, persistence, torn writes, tampering found."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hsdt.archive import _merkle
from hsdt.archive.tlog import (
    EMPTY_ROOT,
    LogRangeError,
    SignedTreeHead,
    TransparencyLog,
    TreeHeadError,
    leaf_hash,
    node_hash,
    parse_tree_heads,
    truncate_files_for_test,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)
from hsdt.domain.errors import ArchiveError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
N = 40


# -- a naive reference: RFC 9162 §2.1 definitions, recursively, straight from the leaves -----

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True) if 0 < m < len(d) else []


# -- fixtures ---------------------------------------------------------------------------------

def entries(n: int) -> list[bytes]:
    return [json.dumps({"type": "ingest", "n": i}).encode() * (1 + i % 3) for i in range(n)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransparencyLog, list[bytes]]:
    data = entries(N)
    log = TransparencyLog.open(tmp_path_factory.mktemp("tlog") / "log", KEY)
    for i, e in enumerate(data):
        assert log.append(e) == i
    return log, data


def _flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


# -- hashing and known answers ------------------------------------------------------------------

def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = bytes(32), bytes([1]) * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) != node_hash(a, b)


# The CT / Trillian test vectors: leaves and the roots of their prefixes (RFC 6962 hashing).
CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                        "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_known_answer_vectors(tmp_path: Path) -> None:
    log = TransparencyLog.open(tmp_path / "log")
    assert log.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    log.extend(CT_LEAVES)
    for n, want in enumerate(CT_ROOTS, start=1):
        assert log.root(n).hex() == want == ref_mth(CT_LEAVES[:n]).hex()


def test_stored_hash_positions_round_trip() -> None:
    seen = []
    for size in range(1, 70):
        start, stop = _merkle.stored_hash_count(size - 1), _merkle.stored_hash_count(size)
        for pos in range(start, stop):
            leaf, level, index = _merkle.locate_stored_hash(pos)
            assert leaf == size - 1 and _merkle.stored_hash_index(level, index) == pos
            seen.append(pos)
    assert seen == list(range(len(seen)))


# -- trees and proofs against the reference -------------------------------------------------------

def test_roots_at_every_size_match_the_reference(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, data = built
    assert log.size == N
    for n in range(N + 1):
        assert log.root(n) == ref_mth(data[:n]), n
    assert log.root() == log.root(N)
    for i, e in enumerate(data):
        assert log.entry(i) == e and log.leaf(i) == leaf_hash(e)


def test_inclusion_proofs_for_every_index_and_size(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, data = built
    for n in range(1, N + 1):
        root = log.root(n)
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            assert proof == ref_path(i, data[:n]), (i, n)
            leaf = log.leaf(i)
            assert verify_inclusion(leaf, i, n, proof, root)
            # every tampering fails
            assert not verify_inclusion(leaf_hash(b"other"), i, n, proof, root)
            assert not verify_inclusion(leaf, i, n, proof, log.root(n - 1) if n > 1 else bytes(32))
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = bytes(x ^ (k == 0) for k, x in enumerate(bad[j]))
                assert not verify_inclusion(leaf, i, n, bad, root)
            if n > 1:
                assert not verify_inclusion(leaf, (i + 1) % n, n, proof, root)
            # (a wrong size with the same path shape still verifies — RFC 9162's algorithm
            # binds size and root only through the signed tree head, which the verifier holds)
            if len(ref_path(i, [b""] * (n + 1))) != len(proof):
                assert not verify_inclusion(leaf, i, n + 1, proof, root)
            assert not verify_inclusion(leaf, i, n, [*proof, bytes(32)], root)
            if proof:
                assert not verify_inclusion(leaf, i, n, proof[:-1], root)


def test_consistency_proofs_for_every_pair(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, data = built
    roots = [log.root(n) for n in range(N + 1)]
    for n in range(N + 1):
        for m in range(n + 1):
            proof = log.consistency_proof(m, n)
            assert proof == ref_proof(m, data[:n]), (m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 0 < m < n:
                assert not verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                assert not verify_consistency(m, n, roots[m], roots[n], [*proof, bytes(32)])
                assert not verify_consistency(m, n, leaf_hash(b"x"), roots[n], proof)
                assert not verify_consistency(m, n, roots[m], leaf_hash(b"x"), proof)
                for j in range(len(proof)):
                    bad = list(proof)
                    bad[j] = bytes(32)
                    assert not verify_consistency(m, n, roots[m], roots[n], bad)
                # the same proof does not fit other sizes
                if m + 1 < n:
                    assert not verify_consistency(m + 1, n, roots[m + 1], roots[n], proof)
                if m > 1:
                    assert not verify_consistency(m - 1, n, roots[m - 1], roots[n], proof)
                assert not verify_consistency(m, n - 1, roots[m], roots[n - 1], proof) or \
                    proof == ref_proof(m, data[:n - 1])
            if m == n and n:
                assert not verify_consistency(m, n, roots[m], roots[n - 1], proof)
    assert consistency_rejects_nonsense(roots)


def consistency_rejects_nonsense(roots: list[bytes]) -> bool:
    return not any([
        verify_consistency(5, 3, roots[5], roots[3], []),
        verify_consistency(0, 3, bytes(32), roots[3], []),
        verify_consistency(0, 3, EMPTY_ROOT, roots[3], [roots[1]]),
        verify_consistency(-1, 3, roots[0], roots[3], []),
        verify_consistency(3, 5, roots[3], roots[5], [b"short"]),
        verify_consistency(3, 5, roots[3], roots[5], []),
    ])


def test_inclusion_rejects_malformed_input(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, _ = built
    proof, root, leaf = log.inclusion_proof(3, 10), log.root(10), log.leaf(3)
    assert verify_inclusion(leaf, 3, 10, proof, root)
    assert not verify_inclusion(leaf, -1, 10, proof, root)
    assert not verify_inclusion(leaf, 10, 10, proof, root)
    assert not verify_inclusion(leaf, 3, 0, proof, root)
    assert not verify_inclusion(leaf, True, 10, proof, root)
    assert not verify_inclusion(leaf[:31], 3, 10, proof, root)
    assert not verify_inclusion(leaf, 3, 10, [p.hex() for p in proof], root)  # type: ignore[misc]
    assert not verify_inclusion(leaf, 3, 10, proof, root.hex())  # type: ignore[arg-type]


def test_out_of_range_requests_are_refused(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, _ = built
    for call in (lambda: log.entry(N), lambda: log.leaf(-1), lambda: log.root(N + 1),
                 lambda: log.inclusion_proof(5, 5), lambda: log.consistency_proof(6, 5),
                 lambda: log.consistency_proof(1, N + 1)):
        with pytest.raises(LogRangeError) as info:
            call()
        assert isinstance(info.value, IndexError) and info.value.code == "tlog_range"


# -- persistence ---------------------------------------------------------------------------------

def test_extend_equals_appends_and_survives_reopen(tmp_path: Path) -> None:
    data = entries(37)
    log = TransparencyLog.open(tmp_path / "a")
    assert log.extend(data[:20]) == range(0, 20)
    assert log.extend([]) == range(20, 20)
    assert log.extend(bytearray(e) for e in data[20:]) == range(20, 37)
    log.close()
    again = TransparencyLog.open(tmp_path / "a")
    assert again.size == 37 and again.root() == ref_mth(data)
    assert [again.entry(i) for i in range(37)] == data
    assert again.append(b"") == 37 and again.root() == ref_mth([*data, b""])
    assert again.check_integrity().ok and again.verify_integrity() is None
    with pytest.raises(TypeError):
        again.append("text")  # type: ignore[arg-type]


def test_two_handles_and_two_processes_append_to_one_log(tmp_path: Path) -> None:
    a = TransparencyLog.open(tmp_path / "log")
    b = TransparencyLog.open(tmp_path / "log")
    assert a.append(b"a0") == 0 and b.append(b"b1") == 1 and a.append(b"a2") == 2
    assert b.size == 3 and b.root() == a.root() == ref_mth([b"a0", b"b1", b"a2"])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(tmp_path / "log", tag)) for tag in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert a.size == 3 + 2 * 25
    got = [a.entry(i) for i in range(a.size)]
    assert sorted(got[3:]) == sorted(f"{t}{i}".encode() for t in "xy" for i in range(25))
    assert a.root() == ref_mth(got) and a.check_integrity().ok


def _append_many(path: Path, tag: str) -> None:
    log = TransparencyLog.open(path)
    for i in range(25):
        log.append(f"{tag}{i}".encode())


def test_log_id_and_read_only(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        TransparencyLog.open(tmp_path / "nothing", read_only=True)
    TransparencyLog.open(tmp_path / "log", log_id="so-gd-hanoi").append(b"x")
    with pytest.raises(ArchiveError) as info:
        TransparencyLog.open(tmp_path / "log")
    assert info.value.code == "tlog_wrong_id"
    ro = TransparencyLog.open(tmp_path / "log", log_id="so-gd-hanoi", read_only=True)
    assert ro.size == 1 and ro.entry(0) == b"x"
    with pytest.raises(ArchiveError):
        ro.append(b"y")


# -- crashes and torn writes ------------------------------------------------------------------------

def _files(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in path.iterdir()}


def test_torn_writes_are_truncated_on_open(tmp_path: Path) -> None:
    data = entries(11)
    log = TransparencyLog.open(tmp_path / "log", KEY)
    log.extend(data[:10])
    log.signed_tree_head()
    before = _files(tmp_path / "log")
    # A crash mid-append: the entry and some hashes written, half an index record, half a
    # tree-head line.
    with open(tmp_path / "log" / "entries.bin", "ab") as fh:
        fh.write(b'{"type": "ingest", "n": 10}')
    with open(tmp_path / "log" / "hashes.bin", "ab") as fh:
        fh.write(os.urandom(40))
    with open(tmp_path / "log" / "entries.idx", "ab") as fh:
        fh.write(struct.pack(">Q", 1 << 40)[:5])
    with open(tmp_path / "log" / "heads.jsonl", "ab") as fh:
        fh.write(b'{"log_id":"hsdt","root_ha')
    reopened = TransparencyLog.open(tmp_path / "log", KEY)
    assert reopened.size == 10 and reopened.root() == ref_mth(data[:10])
    assert reopened.recovery is not None
    assert dict(reopened.recovery.truncated) == {"entries.idx": 5, "hashes.bin": 40,
                                                 "entries.bin": 27}
    after = _files(tmp_path / "log")
    assert {k: v for k, v in after.items() if k != "recoveries.jsonl"} == before
    assert json.loads((tmp_path / "log" / "recoveries.jsonl").read_text())["size"] == 10
    assert len(reopened.tree_heads()) == 1
    assert reopened.append(data[10]) == 10 and reopened.root() == ref_mth(data)
    assert reopened.check_integrity().ok


_WRITER = """
import sys
from pathlib import Path
from hsdt.archive.tlog import TransparencyLog
log = TransparencyLog.open(Path(sys.argv[1]))
i = 0
while True:
    n = log.extend([b"%s:%d-%d" % (sys.argv[2].encode(), i, j) for j in range(i % 5 + 1)]).stop
    print(n, flush=True)  # acknowledged: everything below n is durable
    i += 1
"""


def test_killed_writer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "log"), str(round_)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        acked = int(proc.stdout.readline())
        time.sleep(0.05 + 0.1 * round_)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        acked = max([acked, *(int(x) for x in out.split())])
        log = TransparencyLog.open(tmp_path / "log")
        assert log.size >= acked
        assert log.check_integrity().ok
        got = [log.entry(i) for i in range(log.size)]
        assert log.root() == ref_mth(got) and len(set(got)) == len(got)


def test_a_writer_truncates_what_a_crashed_writer_left(tmp_path: Path) -> None:
    log = TransparencyLog.open(tmp_path / "log")
    log.extend(entries(5))
    with open(tmp_path / "log" / "hashes.bin", "ab") as fh:  # another process died mid-append
        fh.write(b"\xff" * 32)
    assert log.append(b"next") == 5
    assert log.root() == ref_mth([*entries(5), b"next"]) and log.check_integrity().ok


def test_a_committed_entry_cut_short_is_damage_not_a_torn_write(tmp_path: Path) -> None:
    log = TransparencyLog.open(tmp_path / "log")
    log.extend(entries(6))
    data_file = tmp_path / "log" / "entries.bin"
    os.truncate(data_file, data_file.stat().st_size - 3)
    damaged = TransparencyLog.open(tmp_path / "log")
    assert damaged.damage and damaged.size == 6
    with pytest.raises(ArchiveError) as info:
        damaged.append(b"more")
    assert info.value.code == "tlog_corrupt"
    report = damaged.check_integrity()
    assert report.first_bad_index == 5 and report.problems[0].code == "entry_missing"
    assert damaged.entry(4) == entries(6)[4]


# -- tampering found by the integrity re-check -------------------------------------------------------

def _offset_of_entry(path: Path, i: int) -> int:
    raw = (path / "entries.idx").read_bytes()
    return struct.unpack_from(">Q", raw, 8 * (i - 1))[0] if i else 0


@pytest.mark.parametrize("victim", [0, 13, 31, 32])
def test_flipped_entry_byte_is_found_at_its_index(tmp_path: Path, victim: int) -> None:
    log = TransparencyLog.open(tmp_path / "log")
    log.extend(entries(33))
    assert log.verify_integrity() is None
    _flip(tmp_path / "log" / "entries.bin", _offset_of_entry(tmp_path / "log", victim) + 2)
    report = log.check_integrity()
    assert not report.ok and report.first_bad_index == victim == log.verify_integrity()
    first = report.problems[0]
    assert (first.code, first.index, first.level) == ("entry_altered", victim, 0)
    assert report.mismatched_hashes >= 1


@pytest.mark.parametrize(("level", "node"), [(0, 9), (1, 4), (2, 1), (3, 0), (5, 0)])
def test_flipped_node_hash_is_found_with_its_position(tmp_path: Path, level: int, node: int) -> None:
    log = TransparencyLog.open(tmp_path / "log")
    log.extend(entries(33))
    _flip(tmp_path / "log" / "hashes.bin", 32 * _merkle.stored_hash_index(level, node) + 31)
    report = log.check_integrity()
    appended_by = ((node + 1) << level) - 1  # the append that completed this subtree wrote it
    assert report.first_bad_index == appended_by and report.mismatched_hashes == 1
    p = report.problems[0]
    assert (p.code, p.level, p.node_index) == ("entry_altered" if level == 0 else "node_altered",
                                               level, node)
    # sizes up to the damaged append are still sound; a proof that needs the node is not
    assert log.root(appended_by) == ref_mth(entries(33)[:appended_by])
    i = (node ^ 1) << level
    assert not verify_inclusion(leaf_hash(entries(33)[i]), i, 33, log.inclusion_proof(i, 33),
                                ref_mth(entries(33)))


def test_entry_removed_from_the_middle_is_found(tmp_path: Path) -> None:
    data = entries(12)
    log = TransparencyLog.open(tmp_path / "log")
    log.extend(data)
    # An intruder removes entry 4 from the data and its index record, shifting the rest.
    path = tmp_path / "log"
    kept = data[:4] + data[5:]
    (path / "entries.bin").write_bytes(b"".join(kept))
    ends, end = [], 0
    for e in kept:
        end += len(e)
        ends.append(end)
    (path / "entries.idx").write_bytes(struct.pack(f">{len(ends)}Q", *ends))
    assert TransparencyLog.open(path).verify_integrity() == 4


def test_kept_tree_heads_catch_truncation_and_rewriting(tmp_path: Path) -> None:
    data = entries(9)
    log = TransparencyLog.open(tmp_path / "log", KEY)
    log.extend(data[:6])
    log.signed_tree_head()
    log.extend(data[6:])
    log.signed_tree_head()
    assert log.check_integrity().ok and log.check_integrity().heads_checked == 2
    # the tail removed, heads left behind: the head for 9 entries names what is missing
    os.truncate(tmp_path / "log" / "entries.idx", 8 * 7)
    report = TransparencyLog.open(tmp_path / "log", KEY).check_integrity()
    assert [p.code for p in report.problems] == ["tree_head_beyond_log"]
    assert report.first_bad_index == 7
    # the whole log rewritten consistently with entry 7 changed: only the head for 9 disagrees
    forged = TransparencyLog.open(tmp_path / "forged", KEY)
    forged.extend([*data[:7], b"back-dated", data[8]])
    (tmp_path / "forged" / "heads.jsonl").write_bytes((tmp_path / "log" / "heads.jsonl").read_bytes())
    report = forged.check_integrity()
    assert [p.code for p in report.problems] == ["tree_head_mismatch"]
    assert report.first_bad_index == 6  # changed somewhere after the last head that still holds
    # an intruder's truncation also removes the heads: only an auditor's copy can tell
    truncate_files_for_test(tmp_path / "forged", 6)
    cut = TransparencyLog.open(tmp_path / "forged", KEY)
    assert cut.size == 6 and cut.check_integrity().ok and len(cut.tree_heads()) == 1


def test_forged_tree_head_line_is_reported(tmp_path: Path) -> None:
    log = TransparencyLog.open(tmp_path / "log", KEY)
    log.extend(entries(3))
    other = Ed25519PrivateKey.generate()
    forged = TransparencyLog.open(tmp_path / "other", other)
    forged.extend(entries(3))
    with open(tmp_path / "log" / "heads.jsonl", "a") as fh:
        fh.write(forged.signed_tree_head().to_json() + "\n")
        fh.write("not json\n")
    report = log.check_integrity()
    assert sorted(p.code for p in report.problems) == ["tree_head_signature", "tree_head_unreadable"]
    assert log.verify_integrity() == 0
    assert TransparencyLog.open(tmp_path / "log").check_integrity(other.public_key()).problems[0].code \
        == "tree_head_unreadable"


# -- signed tree heads ------------------------------------------------------------------------------

def test_signed_tree_head_verifies_and_round_trips(built: tuple[TransparencyLog, list[bytes]]) -> None:
    log, _ = built
    at = datetime(2026, 5, 30, 8, 15, 42, 123000, tzinfo=UTC)
    sth = log.signed_tree_head(at)
    assert (sth.size, sth.root_hash, sth.log_id) == (N, log.root(), "hsdt")
    assert sth.timestamp == at and sth.timestamp_ms == 1_780_128_942_123
    assert log.public_key is not None and verify_tree_head(sth, log.public_key)
    assert not verify_tree_head(sth, Ed25519PrivateKey.generate().public_key())
    for field, value in (("size", N - 1), ("root_hash", log.root(N - 1)),
                         ("timestamp_ms", sth.timestamp_ms + 1), ("log_id", "hsdt2")):
        altered = SignedTreeHead(**{**sth.__dict__, field: value})
        assert not verify_tree_head(altered, log.public_key), field
    text = sth.to_json()
    assert SignedTreeHead.from_json(text) == sth == SignedTreeHead.from_json(text.encode())
    assert SignedTreeHead.from_json(sth.to_dict()) == sth
    assert json.loads(text)["root_hash"] == log.root().hex()
    assert sth.signed_data().startswith(b"HSDT-TLOG-STH-V1\n\x00\x04hsdt")
    assert len(sth.signed_data()) == 17 + 2 + 4 + 8 + 8 + 32


@pytest.mark.parametrize("change", [
    {"extra": 1}, {"size": -1}, {"size": "40"}, {"size": True}, {"root_hash": "00"},
    {"root_hash": "ZZ" * 32}, {"signature": "AB" * 64}, {"version": 2}, {"log_id": ""},
])
def test_malformed_tree_heads_are_refused(built: tuple[TransparencyLog, list[bytes]],
                                          change: dict[str, object]) -> None:
    log, _ = built
    data = {**log.signed_tree_head().to_dict(), **change}
    with pytest.raises(TreeHeadError):
        SignedTreeHead.from_json(json.dumps(data))
    with pytest.raises(TreeHeadError):
        SignedTreeHead.from_json("{not json")
    missing = log.signed_tree_head().to_dict()
    del missing["signature"]
    with pytest.raises(TreeHeadError):
        SignedTreeHead.from_dict(missing)


def test_tree_heads_are_kept_once_per_size_and_exported(tmp_path: Path) -> None:
    log = TransparencyLog.open(tmp_path / "log", KEY)
    with pytest.raises(ArchiveError):
        TransparencyLog.open(tmp_path / "log").signed_tree_head()  # no key, no head
    with pytest.raises(ArchiveError):
        log.signed_tree_head(datetime(2026, 1, 1))  # naive time
    empty = log.signed_tree_head()
    assert empty.size == 0 and empty.root_hash == EMPTY_ROOT
    log.append(b"a")
    first = log.signed_tree_head()
    log.signed_tree_head()  # same size: not kept again
    log.extend([b"b", b"c"])
    last = log.signed_tree_head()
    kept = parse_tree_heads(log.export_tree_heads())
    assert kept == log.tree_heads() == [empty, first, last]
    # what an auditor does with two kept heads
    proof = log.consistency_proof(first.size, last.size)
    assert verify_consistency(first.size, last.size, first.root_hash, last.root_hash, proof)
    assert all(verify_tree_head(h, KEY.public_key()) for h in kept)
