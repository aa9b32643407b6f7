"""Transfer packages (hồ sơ chuyển trường): issued with the seal, checked with the network off.

The package holds two year records of one student: the first student's record of the
`world` class (grade 7, 2025-2026) and the same class one year earlier (grade 6, 2024-2025):
`sample_bundle` with the same seed and the same birth years yields the same students and
teachers, so the student code matches and the test PKI's bindings still apply.

Both records are sealed here rather than taken from the session's `sealed` fixture: the
record verifier currently judges a sealed record's DSS revocation data at the present time,
so a record sealed more than about an hour earlier in a long session would no longer verify
and could not be issued (see test_manifest_signature_outlives_its_revocation_data).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from conftest import World
from freezegun import freeze_time
from pyhanko.sign.timestamps import HTTPTimeStamper

from hsdt.archive.transfer import (
    MANIFEST,
    SIGNATURE,
    TransferCheck,
    TransferRefused,
    issue_transfer_package,
    sign_manifest,
    verify_transfer_package,
    write_zip,
)
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import HsdtError
from hsdt.domain.records import records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.workflow import render

Members = list[tuple[str, bytes]]


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def student_code(world: World) -> str:
    return world.records[0].student.code


@pytest.fixture(scope="module")
def this_year(world: World) -> bytes:
    return world.sealed(world.records[0])


@pytest.fixture(scope="module")
def earlier_year(world: World, student_code: str) -> bytes:
    """The same student's sealed record of the previous school year."""
    bundle = sample_bundle(seed=5, students=4, grade=6, school_year="2024-2025")
    rec = next(r for r in records_for(lock_bundle(bundle, "Văn thư kiểm thử"))
               if r.student.code == student_code)
    return world.sealed(rec)


def _issue(world: World, records: list[bytes], student_code: str, **kw: object) -> bytes:
    args: dict[str, object] = {
        "seal": world.key("seal"), "tsa_url": world.pki.tsa_url,
        "trust_roots": world.pki.trust_roots(), "issuing_school_code": world.pki.school_code,
        "issuing_school_name": world.pki.school_name, "student_code": student_code,
        "bindings": world.env.bindings, **kw}
    return issue_transfer_package(records, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def package(world: World, this_year: bytes, earlier_year: bytes, student_code: str) -> bytes:
    # given newest first: the package lists them chronologically
    return _issue(world, [this_year, earlier_year], student_code)


@dataclass
class NetworkGuard:
    attempts: list[object] = field(default_factory=list)


@contextlib.contextmanager
def network_off() -> Iterator[NetworkGuard]:
    """Every TCP connect in this process fails and is recorded: urllib, aiohttp (asyncio's
    sock_connect) and requests all end in ``socket.socket.connect``. The test PKI keeps
    running for other tests, so only this guard proves nothing was fetched."""
    guard = NetworkGuard()

    def refuse(self: socket.socket, address: object) -> None:
        guard.attempts.append(address)
        raise ConnectionRefusedError(f"network is off in this test (connect to {address})")

    def refuse_ex(self: socket.socket, address: object) -> int:
        guard.attempts.append(address)
        return 111

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse_ex)
        yield guard


@pytest.fixture
def offline() -> Iterator[NetworkGuard]:
    with network_off() as guard:
        yield guard


def _verify(world: World, data: bytes) -> TransferCheck:
    return verify_transfer_package(data, trust_roots=world.pki.trust_roots(),
                                   bindings=world.env.bindings)


def _members(data: bytes) -> Members:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


# ------------------------------------------------------------------------------------------
# The package verifies, offline
# ------------------------------------------------------------------------------------------


def test_package_verifies_offline(world: World, package: bytes, student_code: str,
                                  offline: NetworkGuard) -> None:
    # the guard really cuts the test PKI off, for urllib and for aiohttp (pyHanko's fetchers)
    with pytest.raises(testpki.TestPKIError):
        testpki.check_services(world.pki, timeout=2)
    with pytest.raises(OSError):
        asyncio.run(HTTPTimeStamper(world.pki.tsa_url).async_timestamp(bytes(32), "sha256"))
    offline.attempts.clear()

    check = _verify(world, package)
    assert check.ok, check.messages()
    assert offline.attempts == []
    assert check.manifest_signature_ok and check.problems == ()
    assert check.student_code == student_code
    assert check.issuing_school_code == world.pki.school_code
    assert check.signer_name == world.pki.school_name
    assert check.signer_cert_sha256 == world.pki.seal.fingerprint_sha256
    assert check.signed_at is not None and check.issued_at is not None
    assert [r.school_year for r in check.records] == ["2024-2025", "2025-2026"]
    for r in check.records:
        assert r.ok and r.present and r.sha256_matches and r.report_matches
        assert r.verdict == "valid"
    assert json.loads(json.dumps(check.to_json()))["ok"] is True


def test_manifest_signature_outlives_its_revocation_data(world: World, package: bytes,
                                                         offline: NetworkGuard) -> None:
    """Forty days on, with the stored CRL (next update in an hour) and OCSP responses long
    stale, the manifest signature still verifies: it is judged at the TSA's time. (The
    records' own verdicts are the record verifier's business and are not asserted here.)"""
    later = datetime.now(UTC) + timedelta(days=40)
    with freeze_time(later, tick=True):
        check = _verify(world, package)
    assert check.manifest_signature_ok, check.messages()
    assert not [c for c in check.codes if c.startswith(("manifest", "signer", "validation"))]
    assert offline.attempts == []


def test_package_format(world: World, package: bytes, student_code: str) -> None:
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        infos = zf.infolist()
        manifest_raw = zf.read(MANIFEST)
        files = {i.filename: zf.read(i) for i in infos}
    names = [i.filename for i in infos]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    manifest = json.loads(manifest_raw)
    assert canonical_json(manifest) == manifest_raw
    ids = [e["record_id"] for e in manifest["records"]]
    assert names[:2] == [MANIFEST, SIGNATURE]
    assert names[2:6] == [f"records/{i}.pdf" for i in ids] + [f"reports/{i}.json" for i in ids]
    validation = names[6:]
    assert validation == sorted(validation) and validation
    assert any(n.startswith("validation/ocsp-") for n in validation)
    assert any(n.startswith("validation/crl-") for n in validation)
    assert all(n.startswith("validation/") and n.endswith(".der") for n in validation)
    assert manifest["student_code"] == student_code
    assert manifest["issuing_school_code"] == world.pki.school_code
    assert manifest["issuing_school_name"] == world.pki.school_name
    assert manifest["issued_at"].endswith("Z")
    assert [e["school_year"] for e in manifest["records"]] == ["2024-2025", "2025-2026"]
    for e in manifest["records"]:
        assert {"record_id", "kind", "school_code", "school_year", "file", "size", "sha256",
                "report"} <= set(e)
        assert sha256_hex(files[e["file"]]) == e["sha256"] and len(files[e["file"]]) == e["size"]
        rep = files[e["report"]["file"]]
        assert sha256_hex(rep) == e["report"]["sha256"]
        assert json.loads(rep)["verdict"] == "valid"
        assert json.loads(rep)["record_id"] == e["record_id"]
    # detached CMS with the seal's chain and a signature timestamp
    sd = cms.ContentInfo.load(files[SIGNATURE])["content"]
    assert sd["encap_content_info"]["content"].native is None
    embedded = {c.chosen.sha256.hex() for c in sd["certificates"]}
    assert world.pki.seal.fingerprint_sha256 in embedded
    assert world.pki.intermediate.sha256.hex() in embedded
    unsigned = sd["signer_infos"][0]["unsigned_attrs"]
    assert "signature_time_stamp_token" in [a["type"].native for a in unsigned]
    # deterministic writer: same members, same bytes
    assert write_zip(list(files.items())) == write_zip(list(files.items()))
    assert write_zip([(n, files[n]) for n in names]) == package


# ------------------------------------------------------------------------------------------
# Tampering is caught and named
# ------------------------------------------------------------------------------------------


def _record_names(members: Members) -> list[str]:
    return [n for n, _ in members if n.startswith("records/")]


def _edit(members: Members, name: str, fn: Callable[[bytes], bytes]) -> Members:
    return [(n, fn(d) if n == name else d) for n, d in members]


def _first_record(m: Members) -> str:
    return _record_names(m)[0]


def _first_report(m: Members) -> str:
    return next(n for n, _ in m if n.startswith("reports/"))


def _p7s_signature_offset(p7s: bytes) -> int:
    value = cms.ContentInfo.load(p7s)["content"]["signer_infos"][0]["signature"].native
    return p7s.index(value) + len(value) // 2


def _swap_records(m: Members) -> Members:
    a, b = _record_names(m)
    data = dict(m)
    return [(n, data[b] if n == a else data[a] if n == b else d) for n, d in m]


def _new_package_id(raw: bytes) -> bytes:
    manifest = json.loads(raw)
    old = manifest["package_id"]
    new = ("f" if old[0] != "f" else "e") + old[1:]
    return raw.replace(old.encode(), new.encode())


# (mutation, the problem code expected, which member the problem must name: a callable of
# the original members, since record ids are only known at run time)
TAMPERING: dict[str, tuple[Callable[[Members], Members], str, Callable[[Members], str]]] = {
    "byte in a record PDF": (
        lambda m: _edit(m, _first_record(m), lambda d: _flip(d, len(d) // 2)),
        "record_altered", _first_record),
    "byte in manifest.json": (
        lambda m: _edit(m, MANIFEST, _new_package_id),
        "manifest_signature_invalid", lambda m: SIGNATURE),
    "byte in manifest.json breaking the JSON": (
        lambda m: _edit(m, MANIFEST, lambda d: _flip(d, 0)),
        "manifest_unreadable", lambda m: MANIFEST),
    "byte in the signature value of manifest.p7s": (
        lambda m: _edit(m, SIGNATURE, lambda d: _flip(d, _p7s_signature_offset(d))),
        "manifest_signature_invalid", lambda m: SIGNATURE),
    "last byte of manifest.p7s (timestamp token)": (
        lambda m: _edit(m, SIGNATURE, lambda d: _flip(d, len(d) - 1)),
        "manifest_timestamp_invalid", lambda m: SIGNATURE),
    "record removed": (
        lambda m: [(n, d) for n, d in m if n != _record_names(m)[1]],
        "record_missing", lambda m: _record_names(m)[1]),
    "extra file added": (
        lambda m: [*m, ("records/extra.pdf", dict(m)[_first_record(m)])],
        "unlisted_file", lambda m: "records/extra.pdf"),
    "report altered": (
        lambda m: _edit(m, _first_report(m), lambda d: _flip(d, len(d) // 2)),
        "report_altered", _first_report),
    "report removed": (
        lambda m: [(n, d) for n, d in m if n != _first_report(m)],
        "report_missing", _first_report),
    "records swapped": (_swap_records, "record_mismatch", _first_record),
    "revocation data removed": (
        lambda m: [(n, d) for n, d in m if not n.startswith("validation/ocsp-")],
        "manifest_signer_untrusted", lambda m: SIGNATURE),
    "revocation data damaged": (
        lambda m: _edit(m, next(n for n, _ in m if n.startswith("validation/ocsp-")),
                        lambda d: d[:-7]),
        "validation_damaged", lambda m: next(n for n, _ in m if n.startswith("validation/ocsp-"))),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_fails_and_names_what(world: World, package: bytes, case: str,
                                        offline: NetworkGuard) -> None:
    mutate, code, member_of = TAMPERING[case]
    original = _members(package)
    tampered = write_zip(mutate(original))  # CRCs recomputed: what a deliberate forger does
    check = _verify(world, tampered)
    assert not check.ok
    member = member_of(original)
    hits = [p for p in check.problems if p.code == code]
    assert hits, f"{case}: expected {code}, got {check.messages()}"
    assert any(p.member == member and member in p.message for p in hits), check.messages()
    assert offline.attempts == []


def test_flipped_byte_in_the_zip_itself_is_named(world: World, package: bytes) -> None:
    """A byte changed in place (CRC not recomputed): the damaged member is named, and the
    record it held counts as missing."""
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        info = next(i for i in zf.infolist() if i.filename.startswith("records/"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    check = _verify(world, _flip(package, start + info.compress_size // 2))
    assert not check.ok
    codes = {p.code: p for p in check.problems}
    assert info.filename in codes["member_damaged"].message
    assert codes["record_missing"].member == info.filename


def test_not_a_package(world: World) -> None:
    check = _verify(world, b"%PDF-1.7 not a zip")
    assert not check.ok and check.codes == ("not_a_package",)


def test_unsafe_and_duplicate_member_names(world: World, package: bytes) -> None:
    members = _members(package)
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = write_zip([*members, ("../escape.txt", b"x"), (members[2][0], b"shadow")])
    check = _verify(world, data)
    assert {"unsafe_member", "duplicate_member"} <= set(check.codes)
    assert any("../escape.txt" in m for m in check.messages())


def test_untrusted_root_fails(world: World, package: bytes) -> None:
    foreign_root = world.pki.identity("untrusted").chain[0]
    check = verify_transfer_package(package, trust_roots=[foreign_root])
    assert not check.ok
    assert "manifest_signer_untrusted" in check.codes and "record_invalid" in check.codes


# ------------------------------------------------------------------------------------------
# Who may sign, and what may be issued
# ------------------------------------------------------------------------------------------


def _teacher(world: World) -> str:
    return world.records[0].bundle.class_.homeroom_teacher_id


def test_teacher_key_cannot_issue(world: World, this_year: bytes, student_code: str) -> None:
    with pytest.raises(TransferRefused, match="con dấu số") as exc:
        _issue(world, [this_year], student_code, seal=world.key(_teacher(world)))
    assert exc.value.code == "not_school_seal"


def test_package_signed_by_a_teacher_is_refused(world: World, package: bytes) -> None:
    """A well-formed package — valid CMS, trusted chain, revocation data, timestamp — whose
    manifest a teacher signed instead of the seal."""
    members = dict(_members(package))
    forged = sign_manifest(members[MANIFEST], key=world.key(_teacher(world)),
                           tsa_url=world.pki.tsa_url, trust_roots=world.pki.trust_roots())
    rebuilt: Members = [(MANIFEST, members[MANIFEST]), (SIGNATURE, forged.p7s)]
    rebuilt += [(n, d) for n, d in members.items()
                if n not in (MANIFEST, SIGNATURE) and not n.startswith("validation/")]
    rebuilt += sorted(forged.validation.items())
    with network_off() as guard:
        check = _verify(world, write_zip(rebuilt))
    assert not check.ok
    assert "signer_not_school_seal" in check.codes, check.messages()
    # refused for who signed, not because the forgery was clumsy
    assert not {"manifest_signature_invalid", "manifest_signer_untrusted",
                "manifest_timestamp_invalid"} & set(check.codes), check.messages()
    assert check.signer_name == world.pki.identity(_teacher(world)).full_name
    assert guard.attempts == []


def test_refuses_record_of_another_student(world: World, this_year: bytes) -> None:
    other = world.records[1].student.code
    with pytest.raises(TransferRefused, match=f"không phải học sinh mã {other}") as exc:
        _issue(world, [this_year], other)
    assert exc.value.code == "record_other_student"


def test_refuses_duplicates(world: World, this_year: bytes, student_code: str) -> None:
    with pytest.raises(TransferRefused, match="trùng") as exc:
        _issue(world, [this_year, this_year], student_code)
    assert exc.value.code == "record_duplicate"


def test_refuses_record_that_does_not_verify(world: World, student_code: str) -> None:
    unsigned = render(world.records[0])
    with pytest.raises(TransferRefused, match="không hợp lệ") as exc:
        _issue(world, [unsigned], student_code)
    assert exc.value.code == "record_invalid"


def test_refuses_nothing_and_other_school(world: World, this_year: bytes,
                                          student_code: str) -> None:
    with pytest.raises(TransferRefused) as exc:
        _issue(world, [], student_code)
    assert exc.value.code == "no_records"
    with pytest.raises(HsdtError, match="trường mã LC-KHAC") as exc2:
        _issue(world, [this_year], student_code, issuing_school_code="LC-KHAC")
    assert exc2.value.code == "not_school_seal"
