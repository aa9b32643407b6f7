"""Transfer packages: a student's complete học bạ, issued by the principal to the receiving school.

When a student changes school (hồ sơ chuyển trường) the receiving school must be able to trust
every year record the student brings — from every school attended — without calling anyone:
the issuing school's OCSP responder or TSA may be unreachable, or long gone, when a clerk looks
again. So a package carries everything needed to check it *offline*.

Format (a ZIP, members written in this order, every timestamp 1980-01-01 00:00, mode 0644,
stored uncompressed — the PDFs are compressed already and stored members make the bytes
independent of the zlib build):

``manifest.json``
    canonical JSON (:func:`hsdt.domain.canonical.canonical_json`): schema, package id,
    ``issued_at`` (UTC), issuing school code and name, student code, and per record its id,
    kind, school, school year, and for the PDF *and* its verification report the member name,
    size and SHA-256. Reports are covered: they are the issuing school's statement of what it
    verified, so they must not be swappable.
``manifest.p7s``
    a detached CMS (CAdES-T) signature over the exact bytes of ``manifest.json`` by the
    issuing school's seal, with the seal's chain embedded and a signature timestamp from the
    TSA as unsigned attribute.
``records/<record_id>.pdf``
    the sealed (PAdES B-LTA) records; each verifies offline from its own DSS.
``reports/<record_id>.json``
    ``Verifier.verify(pdf).to_json()`` at issue time.
``validation/{ocsp,crl,cert}-<sha256 prefix>.der``
    the revocation data for the seal's chain and the TSA's chain, fetched *after* signing
    (so it speaks about the signing time), plus the chain certificates. These members are
    **not** listed in the manifest (the TSA's chain is only known once the timestamp is back,
    after the manifest was signed); they need no cover because each OCSP response and CRL is
    signed by its issuer. Altering or removing one makes the revocation status of the seal or
    the TSA unknown, which fails the check; a member there that is not one of these three
    kinds is reported.

Offline verification validates the manifest signature *at the time of its timestamp*
(``ValidationContext(moment=genTime, allow_fetching=False, revocation_mode="require",
retroactive_revinfo=True)`` fed with the ``validation/`` members): the question a receiving
school asks is "was this the issuing school's valid, unrevoked seal when it signed", and
revocation data produced just after the timestamp answers it, today or in ten years — as
long as the root and the TSA's signature are still trusted (a package is a transfer
document, not an archive: the sealed records inside carry their own long-term evidence).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, crl, ocsp, tsp, x509
from pyhanko.sign.general import SigningError, extract_certificate_info, extract_signer_info
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms, extract_tst_data_iter
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import HsdtError
from hsdt.signing import policy
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey, fingerprint
from hsdt.signing.verification import VerificationReport, Verifier

SCHEMA = "hsdt.transfer/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.p7s"
RECORDS_DIR = "records/"
REPORTS_DIR = "reports/"
VALIDATION_DIR = "validation/"

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP can say: no clock in the bytes
_MAX_MEMBERS = 5_000
_MAX_UNCOMPRESSED = 1 << 30  # a student's records are megabytes; refuse to inflate a bomb
# A record id becomes a member name: keep it to characters that cannot escape a directory.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# How far the manifest's issued_at may sit from the TSA's time (clock skew before signing,
# a slow HSM or TSA after); beyond it the school's claim and the TSA's proof disagree.
_ISSUE_SKEW_BEFORE = timedelta(minutes=5)
_ISSUE_SKEW_AFTER = timedelta(hours=1)


class TransferRefused(HsdtError):
    """A transfer package cannot be issued from these records or with this key."""

    code = "transfer_refused"


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferProblem:
    """One thing wrong with a package, named precisely enough for a clerk to find it.

    ``code`` is stable for machines; ``message`` is Vietnamese and always names the member
    file and/or the record concerned (``member`` and ``record_id`` repeat them as data).
    """

    code: str
    message: str
    member: str | None = None
    record_id: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RecordResult:
    """What the check found for one record listed in the manifest."""

    record_id: str
    kind: str
    school_code: str
    school_year: str
    file: str
    present: bool
    sha256_matches: bool
    report_matches: bool
    verdict: str | None  # the record verifier's verdict now, None if it could not run
    problems: tuple[TransferProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TransferCheck:
    """Offline verdict on a transfer package; ``ok`` only if every check ran and passed."""

    ok: bool
    package_id: str | None
    issued_at: str | None
    issuing_school_code: str | None
    issuing_school_name: str | None
    student_code: str | None
    signer_name: str | None
    signer_cert_sha256: str | None
    signed_at: str | None  # the TSA's time on the manifest signature, ISO 8601 UTC
    manifest_signature_ok: bool
    problems: tuple[TransferProblem, ...]
    records: tuple[RecordResult, ...]
    verified_at: str

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.code for p in self.problems))

    def messages(self) -> list[str]:
        return [p.message for p in self.problems]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignedManifest:
    """A detached CMS over the manifest and the validation data that makes it checkable
    offline (member name under ``validation/`` → DER)."""

    p7s: bytes
    validation: dict[str, bytes]


# ------------------------------------------------------------------------------------------
# Issuing
# ------------------------------------------------------------------------------------------


def issue_transfer_package(records: Sequence[bytes], *, seal: SigningKey, tsa_url: str,
                           trust_roots: Iterable[x509.Certificate], issuing_school_code: str,
                           issuing_school_name: str, student_code: str,
                           bindings: CertificateBindings | None = None) -> bytes:
    """Build, sign and return a transfer package (ZIP bytes) for one student.

    Refuses (:class:`TransferRefused` / :class:`~hsdt.domain.errors.SigningRefused`, with a
    Vietnamese reason) rather than issue something the receiving school would reject: an
    empty list, a record that does not verify offline (every record must be sealed), one of
    another student, two records with the same id, or a ``seal`` that is not this school's
    valid, unrevoked organisation certificate. ``bindings``, when given, must bind the key
    to ``school:<code>`` as well.
    """
    roots = list(trust_roots)
    if not records:
        raise TransferRefused("Không có hồ sơ nào để đưa vào gói chuyển trường.",
                              code="no_records")
    verified = _verified_records(records, roots, student_code)
    # Taken just before signing: the verifier holds it against the TSA's time.
    now = datetime.now(UTC).replace(microsecond=0)
    _check_seal(seal, roots, issuing_school_code, bindings, now)

    entries: list[dict[str, Any]] = []
    members: dict[str, bytes] = {}
    for pdf, report in sorted(verified, key=lambda v: (v[1].school_year, v[1].record_id)):
        rid = report.record_id
        pdf_name, report_name = f"{RECORDS_DIR}{rid}.pdf", f"{REPORTS_DIR}{rid}.json"
        report_bytes = _report_bytes(report)
        members[pdf_name] = pdf
        members[report_name] = report_bytes
        entries.append({
            "record_id": rid, "kind": report.kind, "school_code": report.school_code,
            "school_year": report.school_year,
            "file": pdf_name, "size": len(pdf), "sha256": sha256_hex(pdf),
            "report": {"file": report_name, "size": len(report_bytes),
                       "sha256": sha256_hex(report_bytes)},
        })
    manifest = canonical_json({
        "schema": SCHEMA,
        "package_id": str(uuid.uuid4()),
        "issued_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuing_school_code": issuing_school_code,
        "issuing_school_name": issuing_school_name,
        "student_code": student_code,
        "records": entries,
    })
    signed = sign_manifest(manifest, key=seal, tsa_url=tsa_url, trust_roots=roots)
    ordered = [(MANIFEST, manifest), (SIGNATURE, signed.p7s)]
    ordered += [(e["file"], members[e["file"]]) for e in entries]
    ordered += [(e["report"]["file"], members[e["report"]["file"]]) for e in entries]
    ordered += sorted(signed.validation.items())
    return write_zip(ordered)


def sign_manifest(manifest: bytes, *, key: SigningKey, tsa_url: str,
                  trust_roots: Iterable[x509.Certificate]) -> SignedManifest:
    """Detached CAdES-T signature over ``manifest`` plus the revocation data to check it.

    This is the signing primitive only: it does not ask whether ``key`` may issue packages
    (:func:`issue_transfer_package` does, before calling it). Kept separate so that the
    verifier can be shown to refuse a well-formed package signed by the wrong key.
    """
    roots = list(trust_roots)

    async def _run() -> SignedManifest:
        try:
            signed = await key.signer.async_sign_general_data(
                manifest, "sha256", detached=True, use_cades=True,
                timestamper=HTTPTimeStamper(tsa_url))
        except (SigningError, OSError) as exc:
            raise TransferRefused(f"Không ký được manifest của gói chuyển trường bằng khoá "
                                  f"«{key.subject_name}» (hoặc TSA {tsa_url} không trả lời): {exc}",
                                  code="manifest_signing_failed") from exc
        validation = await collect_validation_data(signed, roots)
        return SignedManifest(signed.dump(), validation)

    return asyncio.run(_run())


async def collect_validation_data(signed: cms.ContentInfo, trust_roots: list[x509.Certificate]
                                  ) -> dict[str, bytes]:
    """OCSP responses, CRLs and chain certificates for the signer and the TSA of ``signed``.

    Fetched online with revocation *required*, after signing: what is stored then says the
    certificates were good at (just after) the timestamp, which is the time the offline
    check validates at. Fails rather than store a package that could never verify.
    """
    vc = ValidationContext(trust_roots=trust_roots, allow_fetching=True,
                           revocation_mode="require")
    certs: list[x509.Certificate] = []
    try:
        sd = signed["content"]
        for part in (sd, *extract_tst_data_iter(extract_signer_info(sd), signed=False)):
            info = extract_certificate_info(part)
            validator = CertificateValidator(info.signer_cert, intermediate_certs=info.other_certs,
                                             validation_context=vc)
            path = await validator.async_validate_usage(key_usage=set())
            certs += list(path.iter_certs(include_root=False))
        ocsps, crls = list(vc.ocsps), list(vc.crls)
    except (ValidationError, PathValidationError, PathBuildingError) as exc:
        raise TransferRefused(
            "Không thu thập được dữ liệu thu hồi (OCSP/CRL) cho chứng thư của con dấu hoặc "
            f"của TSA, nên gói không thể kiểm tra ngoại tuyến: {exc}",
            code="revocation_unavailable") from exc
    finally:
        await vc.aclose()
    out: dict[str, bytes] = {}
    for prefix, objs in (("ocsp", ocsps), ("crl", crls), ("cert", certs)):
        for obj in objs:
            der = obj.dump()
            out[f"{VALIDATION_DIR}{prefix}-{sha256_hex(der)[:16]}.der"] = der
    return out


def write_zip(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A ZIP whose bytes depend only on the members and their order (no clock, no zlib)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, so that the mode below means what it says
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _report_bytes(report: VerificationReport) -> bytes:
    # Readable by a person opening the ZIP; any fixed serialisation will do, the manifest
    # pins these exact bytes.
    text = json.dumps(report.to_json(), ensure_ascii=False, indent=2, sort_keys=True)
    return (text + "\n").encode("utf-8")


def _verified_records(records: Sequence[bytes], roots: list[x509.Certificate], student_code: str
                      ) -> list[tuple[bytes, VerificationReport]]:
    """Every record verified offline, of this student, no id twice; else a refusal naming it."""
    verifier = Verifier(roots, online=False)
    out: list[tuple[bytes, VerificationReport]] = []
    for i, pdf in enumerate(records, 1):
        try:
            report = verifier.verify(pdf)
        except HsdtError as exc:
            raise TransferRefused(f"Hồ sơ thứ {i} không đọc được: {exc.message}",
                                  code="record_unreadable") from exc
        rid = report.record_id
        if not report.valid:
            reasons = "\n  - ".join(report.problems)
            raise TransferRefused(
                f"Hồ sơ thứ {i} ({rid}) không hợp lệ nên không được đưa vào gói chuyển trường:"
                f"\n  - {reasons}", code="record_invalid")
        if report.student_code != student_code:
            raise TransferRefused(
                f"Hồ sơ thứ {i} ({rid}) là của học sinh {report.student_name} "
                f"(mã {report.student_code}), không phải học sinh mã {student_code}.",
                code="record_other_student")
        if not _SAFE_ID.fullmatch(rid):
            raise TransferRefused(f"Mã hồ sơ «{rid}» (hồ sơ thứ {i}) có ký tự không dùng được "
                                  "làm tên tệp trong gói.", code="record_id_unsafe")
        out.append((pdf, report))
    dupes = [rid for rid, n in Counter(r.record_id for _, r in out).items() if n > 1]
    if dupes:
        raise TransferRefused("Hồ sơ bị trùng (cùng mã hồ sơ xuất hiện nhiều lần): "
                              + ", ".join(dupes) + ".", code="record_duplicate")
    return out


def _check_seal(seal: SigningKey, roots: list[x509.Certificate], school_code: str,
                bindings: CertificateBindings | None, now: datetime) -> None:
    """Check the key before signing (Thông tư 15/2025): this school's seal, strong, valid,
    trusted and not revoked — online, revocation required."""
    problem = _seal_identity_problem(seal.cert, school_code, bindings)
    if problem:
        raise TransferRefused(f"Khoá «{seal.subject_name}» không dùng được để phát hành gói "
                              f"chuyển trường: {problem}", code="not_school_seal")
    policy.check_key_strength(seal.cert)
    policy.check_validity_period(seal.cert, now)

    async def _trust() -> None:
        vc = ValidationContext(trust_roots=roots, allow_fetching=True, revocation_mode="require")
        try:
            await policy.check_trust_and_revocation(seal.cert, list(seal.chain), vc)
        finally:
            await vc.aclose()

    asyncio.run(_trust())


def _school_identifiers(cert: x509.Certificate) -> set[str]:
    """The identifiers an organisation certificate names its holder by: UID and serialNumber.

    Vietnamese CAs write them as ``MST:…`` / ``MNS:…`` (tax or budget code); the bare value
    after the prefix is accepted too. A personal certificate carries a person's id here.
    """
    native = cert.subject.native
    values: list[str] = []
    for key in ("user_id", "serial_number"):
        v = native.get(key)
        values += [str(x) for x in v] if isinstance(v, list) else ([str(v)] if v else [])
    return {v.strip() for v in values} | {v.split(":", 1)[1].strip() for v in values if ":" in v}


def _seal_identity_problem(cert: x509.Certificate, school_code: str,
                           bindings: CertificateBindings | None) -> str | None:
    """Why ``cert`` is not the seal of ``school_code``, or None if it is."""
    if school_code not in _school_identifiers(cert):
        return (f"chứng thư «{_cn(cert)}» không phải chứng thư tổ chức (con dấu số) của trường "
                f"mã {school_code}")
    if bindings is not None and bindings.owner(fingerprint(cert)) != f"school:{school_code}":
        return f"chứng thư «{_cn(cert)}» chưa được đăng ký là con dấu số của trường {school_code}"
    return None


def _cn(cert: x509.Certificate) -> str:
    native = cert.subject.native
    return str(native.get("common_name") or cert.subject.human_friendly)


# ------------------------------------------------------------------------------------------
# Verifying
# ------------------------------------------------------------------------------------------


def verify_transfer_package(data: bytes, *, trust_roots: Iterable[x509.Certificate],
                            bindings: CertificateBindings | None = None) -> TransferCheck:
    """Check a package with no network at all: the manifest signature (seal of the issuing
    school, chain to ``trust_roots``, stored revocation data, timestamp), every member
    against the manifest, and every record with the offline record verifier.

    Never raises for a bad package: whatever is wrong becomes a :class:`TransferProblem`.
    """
    roots = list(trust_roots)
    verified_at = datetime.now(UTC).isoformat(timespec="seconds")
    problems: list[TransferProblem] = []
    members = _read_zip(data, problems)
    if members is None:
        return TransferCheck(False, None, None, None, None, None, None, None, None, False,
                             tuple(problems), (), verified_at)

    manifest_bytes = members.get(MANIFEST)
    manifest: dict[str, Any] | None = None
    if manifest_bytes is None:
        problems.append(TransferProblem("manifest_missing", f"Gói thiếu tệp {MANIFEST}.", MANIFEST))
    else:
        manifest = _parse_manifest(manifest_bytes, problems)

    sig = _SignatureOutcome()
    signer_problems: list[TransferProblem] = []
    p7s = members.get(SIGNATURE)
    validation = _load_validation(members, problems)
    if p7s is None:
        problems.append(TransferProblem("signature_missing",
                                        f"Gói thiếu chữ ký của manifest ({SIGNATURE}).", SIGNATURE))
    elif manifest_bytes is not None:
        sig = asyncio.run(_check_signature(manifest_bytes, p7s, validation, roots))
        problems += sig.problems
        if manifest is not None:
            signer_problems = _signer_problems(sig, manifest, bindings)
            problems += signer_problems

    records: list[RecordResult] = []
    if manifest is not None:
        records = _check_members(manifest, members, roots)
        for r in records:
            problems += r.problems
        # Without a readable manifest every member would be "unlisted": that says nothing
        # the manifest problem has not said already.
        listed = {MANIFEST, SIGNATURE}
        for e in manifest["records"]:
            listed |= {e["file"], e["report"]["file"]}
        for name in members:
            if name not in listed and not name.startswith(VALIDATION_DIR):
                problems.append(TransferProblem(
                    "unlisted_file", f"Tệp «{name}» có trong gói nhưng không được liệt kê trong "
                    f"{MANIFEST} (tệp lạ, không thuộc gói đã ký).", name))

    m = manifest or {}
    return TransferCheck(
        ok=not problems, package_id=m.get("package_id"), issued_at=m.get("issued_at"),
        issuing_school_code=m.get("issuing_school_code"),
        issuing_school_name=m.get("issuing_school_name"), student_code=m.get("student_code"),
        signer_name=_cn(sig.cert) if sig.cert is not None else None,
        signer_cert_sha256=fingerprint(sig.cert) if sig.cert is not None else None,
        signed_at=sig.signed_at.isoformat() if sig.signed_at else None,
        manifest_signature_ok=sig.ok and manifest is not None and not signer_problems,
        problems=tuple(problems), records=tuple(records), verified_at=verified_at)


def _read_zip(data: bytes, problems: list[TransferProblem]) -> dict[str, bytes] | None:
    """Members by name; a damaged member is reported by name and left out, a package that is
    not a ZIP at all (or one that would take too much to inflate) yields None."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        problems.append(TransferProblem("not_a_package",
                                        f"Tệp không phải gói chuyển trường (ZIP) đọc được: {exc}."))
        return None
    with zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS or sum(i.file_size for i in infos) > _MAX_UNCOMPRESSED:
            problems.append(TransferProblem("package_too_large",
                                            "Gói có quá nhiều tệp hoặc quá lớn để kiểm tra."))
            return None
        out: dict[str, bytes] = {}
        for name, n in Counter(i.filename for i in infos).items():
            if n > 1:
                problems.append(TransferProblem(
                    "duplicate_member", f"Gói có {n} tệp cùng tên «{name}»: không rõ tệp nào "
                    "là tệp đã ký.", name))
        for info in infos:
            name = info.filename
            if not _safe_member_name(name):
                problems.append(TransferProblem("unsafe_member",
                                                f"Tên tệp «{name}» trong gói không hợp lệ.", name))
                continue
            if name in out:
                continue
            try:
                out[name] = zf.read(info)
            except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as exc:
                problems.append(TransferProblem(
                    "member_damaged", f"Tệp «{name}» trong gói bị hỏng hoặc đã bị sửa "
                    f"(không đọc được: {exc}).", name))
    return out


def _safe_member_name(name: str) -> bool:
    parts = name.split("/")
    return (bool(name) and not name.startswith("/") and "\\" not in name
            and all(p not in ("", ".", "..") for p in parts))


def _parse_manifest(raw: bytes, problems: list[TransferProblem]) -> dict[str, Any] | None:
    """The manifest if it is readable and well formed; its shape is checked so that the
    member checks below can trust field types (not content: that is the signature's job)."""
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(TransferProblem("manifest_unreadable",
                                        f"{MANIFEST} không đọc được (không phải JSON UTF-8): {exc}.",
                                        MANIFEST))
        return None
    text_keys = ("schema", "package_id", "issued_at", "issuing_school_code",
                 "issuing_school_name", "student_code")
    ok = isinstance(m, dict) and all(isinstance(m.get(k), str) for k in text_keys)
    ok = ok and isinstance(m.get("records"), list) and all(_entry_ok(e) for e in m["records"])
    if not ok:
        problems.append(TransferProblem("manifest_malformed",
                                        f"{MANIFEST} thiếu trường bắt buộc hoặc sai kiểu dữ liệu.",
                                        MANIFEST))
        return None
    if m["schema"] != SCHEMA:
        problems.append(TransferProblem("manifest_schema", f"{MANIFEST} có định dạng "
                                        f"«{m['schema']}», không phải {SCHEMA}.", MANIFEST))
        return None
    if canonical_json(m) != raw:
        problems.append(TransferProblem("manifest_not_canonical", f"{MANIFEST} không ở dạng JSON "
                                        "chuẩn hoá (đã bị soạn lại sau khi phát hành).", MANIFEST))
    return m


def _entry_ok(e: Any) -> bool:
    if not isinstance(e, dict) or not isinstance(e.get("report"), dict):
        return False
    texts = ("record_id", "kind", "school_code", "school_year", "file", "sha256")
    return (all(isinstance(e.get(k), str) for k in texts) and isinstance(e.get("size"), int)
            and isinstance(e["report"].get("file"), str)
            and isinstance(e["report"].get("sha256"), str)
            and isinstance(e["report"].get("size"), int))


@dataclass
class _ValidationData:
    certs: list[x509.Certificate] = field(default_factory=list)
    ocsps: list[ocsp.OCSPResponse] = field(default_factory=list)
    crls: list[crl.CertificateList] = field(default_factory=list)


def _load_validation(members: dict[str, bytes], problems: list[TransferProblem]
                     ) -> _ValidationData:
    """Parse ``validation/*.der`` fully now, so a damaged one is named here rather than
    surfacing as an anonymous parse error inside the path validator."""
    out = _ValidationData()
    kinds: dict[str, Any] = {"ocsp-": (ocsp.OCSPResponse, out.ocsps),
                             "crl-": (crl.CertificateList, out.crls),
                             "cert-": (x509.Certificate, out.certs)}
    for name, der in sorted(members.items()):
        if not name.startswith(VALIDATION_DIR):
            continue
        base = name[len(VALIDATION_DIR):]
        kind = next((k for k in kinds if base.startswith(k) and base.endswith(".der")), None)
        if kind is None:
            problems.append(TransferProblem(
                "validation_unknown", f"Tệp «{name}» trong thư mục {VALIDATION_DIR} không phải "
                "dữ liệu xác minh (OCSP, CRL hay chứng thư).", name))
            continue
        cls, target = kinds[kind]
        try:
            obj = cls.load(der)
            obj.native  # noqa: B018 — force a full parse
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(TransferProblem(
                "validation_damaged", f"Dữ liệu xác minh «{name}» bị hỏng hoặc đã bị sửa: {exc}.",
                name))
            continue
        target.append(obj)
    return out


@dataclass
class _SignatureOutcome:
    ok: bool = False
    cert: x509.Certificate | None = None
    signed_at: datetime | None = None
    problems: list[TransferProblem] = field(default_factory=list)


def _sig_problem(code: str, text: str) -> TransferProblem:
    return TransferProblem(code, f"Chữ ký manifest ({SIGNATURE}): {text}", SIGNATURE)


async def _check_signature(manifest: bytes, p7s: bytes, vd: _ValidationData,
                           roots: list[x509.Certificate]) -> _SignatureOutcome:
    """The detached CMS: intact over the manifest bytes, cryptographically valid, trusted at
    the TSA's time with the stored revocation data only, and timestamped by a trusted TSA."""
    out = _SignatureOutcome()
    try:
        ci = cms.ContentInfo.load(p7s)
        if ci["content_type"].native != "signed_data":
            raise ValueError("không phải SignedData")
        sd = ci["content"]
        if len(sd["signer_infos"]) != 1:
            raise ValueError(f"có {len(sd['signer_infos'])} người ký, cần đúng một")
        signer_info = extract_signer_info(sd)
        out.cert = extract_certificate_info(sd).signer_cert
        attached = sd["encap_content_info"]["content"].native is not None
        tsts = list(extract_tst_data_iter(signer_info, signed=False))
        if tsts:
            tst_info = tsts[0]["encap_content_info"]["content"].parsed
            if not isinstance(tst_info, tsp.TSTInfo):
                raise ValueError("dấu thời gian không chứa TSTInfo")
            out.signed_at = tst_info["gen_time"].native.astimezone(UTC)
    except (ValueError, TypeError, KeyError, AttributeError, SignatureValidationError) as exc:
        out.problems.append(_sig_problem("manifest_signature_unreadable",
                                         f"không đọc được chữ ký: {exc}."))
        return out
    if attached:
        out.problems.append(_sig_problem("manifest_signature_attached",
                                         "chữ ký phải tách rời (detached) khỏi manifest."))
    if out.signed_at is None:
        out.problems.append(_sig_problem("manifest_not_timestamped",
                                         "thiếu dấu thời gian của TSA trên chữ ký."))

    def context() -> ValidationContext:
        # Validation at the TSA's time: revocation data fetched just after signing speaks
        # for that moment, however long ago it was (see the module docstring).
        return ValidationContext(
            trust_roots=roots, other_certs=vd.certs, ocsps=vd.ocsps, crls=vd.crls,
            allow_fetching=False, revocation_mode="require", retroactive_revinfo=True,
            moment=out.signed_at)

    vc, ts_vc = context(), context()
    try:
        status = await async_validate_detached_cms(
            manifest, sd, signer_validation_context=vc, ts_validation_context=ts_vc,
            key_usage_settings=KeyUsageConstraints(key_usage={"non_repudiation"}))
    except (SignatureValidationError, ValueError, TypeError, KeyError) as exc:
        out.problems.append(_sig_problem("manifest_signature_invalid",
                                         f"không kiểm tra được chữ ký: {exc}."))
        return out
    finally:
        await vc.aclose()
        await ts_vc.aclose()
    if not status.intact:
        out.problems.append(_sig_problem(
            "manifest_signature_invalid", f"chữ ký không khớp nội dung {MANIFEST} — manifest "
            "đã bị sửa sau khi ký (băm SHA-256 khác)."))
    elif not status.valid:
        out.problems.append(_sig_problem("manifest_signature_invalid",
                                         "giá trị chữ ký không hợp lệ (chữ ký bị sửa)."))
    if status.intact and status.valid and not status.trusted:
        # (pyHanko does not judge trust of a signature that is not intact: nothing to add)
        why = status.trust_problem_indic.name if status.trust_problem_indic else "không rõ"
        revoked = status.revocation_details is not None
        out.problems.append(_sig_problem(
            "manifest_signer_untrusted",
            f"chứng thư «{_cn(status.signing_cert)}» "
            + ("đã bị thu hồi" if revoked else "không dẫn về CA gốc tin cậy, hoặc không xác định "
               "được tình trạng thu hồi từ dữ liệu xác minh kèm theo gói")
            + f" ({why})."))
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        why = ts.trust_problem_indic.name if ts.trust_problem_indic else "không khớp chữ ký"
        out.problems.append(_sig_problem("manifest_timestamp_invalid",
                                         f"dấu thời gian không hợp lệ hoặc không tin cậy ({why})."))
    out.ok = not out.problems
    return out


def _signer_problems(sig: _SignatureOutcome, manifest: dict[str, Any],
                     bindings: CertificateBindings | None) -> list[TransferProblem]:
    """The signer must be the issuing school's seal, and sign when the manifest says."""
    out: list[TransferProblem] = []
    code = manifest.get("issuing_school_code")
    if sig.cert is not None and isinstance(code, str):
        problem = _seal_identity_problem(sig.cert, code, bindings)
        if problem:
            out.append(_sig_problem("signer_not_school_seal",
                                    f"người ký không phải con dấu số của trường phát hành: {problem}."))
    issued = manifest.get("issued_at")
    if sig.signed_at is not None and isinstance(issued, str):
        try:
            at = datetime.fromisoformat(issued.replace("Z", "+00:00"))
        except ValueError:
            at = None
        if (at is None or at.tzinfo is None or sig.signed_at < at - _ISSUE_SKEW_BEFORE
                or sig.signed_at > at + _ISSUE_SKEW_AFTER):
            out.append(TransferProblem(
                "issued_at_mismatch", f"Thời điểm phát hành ghi trong {MANIFEST} ({issued}) không "
                f"khớp dấu thời gian của chữ ký ({sig.signed_at.isoformat()}).", MANIFEST))
    return out


def _check_members(manifest: dict[str, Any], members: dict[str, bytes],
                   roots: list[x509.Certificate]) -> list[RecordResult]:
    """Each listed record and report against its size and SHA-256, and each record PDF
    through the offline record verifier (sealed records verify from their own DSS)."""
    verifier = Verifier(roots, online=False)
    student = manifest["student_code"]
    results: list[RecordResult] = []
    seen: set[str] = set()
    for e in manifest["records"]:
        rid, fname, rep = e["record_id"], e["file"], e["report"]
        probs: list[TransferProblem] = []

        def problem(code: str, text: str, member: str | None, rid: str = rid,
                    probs: list[TransferProblem] = probs) -> None:
            probs.append(TransferProblem(code, f"Hồ sơ {rid}: {text}", member, rid))

        if rid in seen:
            problem("record_duplicate", f"được liệt kê nhiều lần trong {MANIFEST}.", MANIFEST)
        seen.add(rid)
        pdf = members.get(fname)
        sha_ok = False
        verdict: str | None = None
        if pdf is None:
            problem("record_missing", f"tệp «{fname}» được liệt kê trong {MANIFEST} nhưng không có "
                    "trong gói (hoặc không đọc được).", fname)
        else:
            sha_ok = sha256_hex(pdf) == e["sha256"] and len(pdf) == e["size"]
            if not sha_ok:
                problem("record_altered", f"tệp «{fname}» đã bị thay đổi (SHA-256 khác giá trị ghi "
                        f"trong {MANIFEST}).", fname)
            try:
                report = verifier.verify(pdf)
            except HsdtError as exc:
                problem("record_invalid", f"tệp «{fname}» không phải hồ sơ đọc được: {exc.message}",
                        fname)
            else:
                verdict = report.verdict
                if not report.valid:
                    problem("record_invalid", f"tệp «{fname}» không hợp lệ: "
                            + "; ".join(report.problems), fname)
                facts = {"record_id": (report.record_id, rid), "kind": (report.kind, e["kind"]),
                         "school_code": (report.school_code, e["school_code"]),
                         "school_year": (report.school_year, e["school_year"]),
                         "student_code": (report.student_code, student)}
                wrong = [f"{k} «{got}» ≠ «{want}»" for k, (got, want) in facts.items() if got != want]
                if wrong:
                    problem("record_mismatch", f"nội dung tệp «{fname}» không khớp {MANIFEST}: "
                            + ", ".join(wrong) + ".", fname)
        report_raw = members.get(rep["file"])
        rep_ok = False
        if report_raw is None:
            problem("report_missing", f"thiếu báo cáo xác minh «{rep['file']}».", rep["file"])
        else:
            rep_ok = sha256_hex(report_raw) == rep["sha256"] and len(report_raw) == rep["size"]
            if not rep_ok:
                problem("report_altered", f"báo cáo xác minh «{rep['file']}» đã bị thay đổi "
                        f"(SHA-256 khác giá trị ghi trong {MANIFEST}).", rep["file"])
        results.append(RecordResult(
            record_id=rid, kind=e["kind"], school_code=e["school_code"],
            school_year=e["school_year"], file=fname, present=pdf is not None,
            sha256_matches=sha_ok, report_matches=rep_ok, verdict=verdict, problems=tuple(probs)))
    return results
