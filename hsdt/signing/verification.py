"""Verification of a record: every signature, the plan, the data lock and the PDF/A claims.

The result is data (frozen dataclasses with Vietnamese reasons and machine codes); the CLI
and API only render it. The verifier fails closed: a record is valid only when every check
ran and passed, never by default.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pikepdf
from asn1crypto import x509
from pikepdf.models.metadata import decode_pdf_date
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffResult,
    ModificationLevel,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError, ValidationInfoReadingError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko_certvalidator import ValidationContext

from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import ResolvedPlan
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import fingerprint
from hsdt.signing.record_state import RecordState, read_record


class _ConsecutiveDiffPolicy(StandardDiffPolicy):
    """pyHanko's standard rules, applied once per pair of consecutive revisions.

    The stock policy compares each signed revision with every later one, which is
    quadratic in the number of signatures (15 on a học bạ page: most of the time of a
    verification). Every change is introduced by exactly one revision, so judging each
    revision against its predecessor — with the same rules, and the locks in force for
    the signature under review — sees the same changes; results are cached across the
    signatures of one document.
    """

    def __init__(self) -> None:
        super().__init__(global_rules=DEFAULT_DIFF_POLICY.global_rules,
                         form_rule=DEFAULT_DIFF_POLICY.form_rule)
        self._cache: dict[tuple[int, str], DiffResult | SuspiciousModification] = {}
        self._resolvers: dict[int, HistoricalResolver] = {}

    def _resolver(self, reader: PdfFileReader, rev: int) -> HistoricalResolver:
        # A resolver indexes its revision's object graph once; building one per comparison
        # was half the cost of the analysis.
        if rev not in self._resolvers:
            self._resolvers[rev] = reader.get_historical_resolver(rev)
        return self._resolvers[rev]

    def review_file(self, reader: PdfFileReader, base_revision: int | HistoricalResolver,
                    field_mdp_spec: FieldMDPSpec | None = None, doc_mdp: MDPPerm | None = None
                    ) -> DiffResult | SuspiciousModification:
        base = base_revision if isinstance(base_revision, int) else base_revision.revision
        level = ModificationLevel.NONE
        changed: set[str] = set()
        for rev in range(base + 1, reader.xrefs.total_revisions):
            # apply() reads doc_mdp only to warn about level 3; the verdict for the DocMDP
            # level is taken by the caller, so one result per (revision, field lock) serves all.
            key = (rev, repr(field_mdp_spec))
            result = self._cache.get(key)
            if result is None:
                try:
                    result = self.apply(old=self._resolver(reader, rev - 1),
                                        new=self._resolver(reader, rev),
                                        field_mdp_spec=field_mdp_spec, doc_mdp=doc_mdp)
                except SuspiciousModification as exc:
                    result = exc
                self._cache[key] = result
            if isinstance(result, SuspiciousModification):
                return result
            level = max(level, result.modification_level)
            changed |= result.changed_form_fields
        return DiffResult(level, changed)


# What each field may see after it was signed, in pyHanko's modification levels.
_ALLOWED_AFTER = {True: ModificationLevel.LTA_UPDATES, False: ModificationLevel.FORM_FILLING}


@dataclass(frozen=True)
class SignatureCheck:
    field: str
    label: str | None
    role: str | None
    assignee: str | None
    signer_name: str
    cert_sha256: str
    signing_time: str | None  # ISO 8601 UTC, from the signature's timestamp
    intact: bool
    valid: bool
    trusted: bool
    timestamped: bool
    revocation_checked: bool
    modification_level: str
    bound_to_assignee: bool | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TimestampCheck:
    field: str
    time: str | None
    intact: bool
    valid: bool
    trusted: bool
    modification_level: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerificationReport:
    verdict: Literal["valid", "invalid"]
    record_id: str
    kind: str
    school_code: str
    school_year: str
    student_code: str
    student_name: str
    plan_title: str
    signatures: tuple[SignatureCheck, ...]
    archive_timestamps: tuple[TimestampCheck, ...]
    plan_complete: bool
    plan_missing: tuple[str, ...]
    sealed: bool
    pdfa_part: str | None
    pdfa_conformance: str | None
    data_matches_xmp: bool
    metadata_consistent: bool
    problems: tuple[str, ...]
    verified_at: str
    network_used: bool
    codes: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verifier:
    """Verifies records against trust anchors and the certificate bindings.

    ``online``: fetch OCSP/CRL for records not sealed yet. A sealed record is verified
    from its own DSS with the network off, as an archivist will years from now.
    """

    trust_roots: list[x509.Certificate]
    bindings: CertificateBindings | None = None
    online: bool = True

    def verify(self, pdf: bytes) -> VerificationReport:
        state = read_record(pdf)
        return asyncio.run(self._verify(state, pdf))

    async def _verify(self, state: RecordState, pdf: bytes) -> VerificationReport:
        problems: list[str] = []
        codes: list[str] = []
        sealed = bool(state.doc_timestamps)
        vc, revocation = self._context(state, sealed)
        diff = _ConsecutiveDiffPolicy()
        try:
            sig_checks = [await self._check_signature(s, state.plan, vc, revocation, diff)
                          for s in state.signatures]
            ts_checks = [await self._check_timestamp(t, vc, diff) for t in state.doc_timestamps]
        finally:
            await vc.aclose()
        for c in sig_checks:
            problems += [f"Chữ ký «{c.label or c.field}»: {p}" for p in c.problems]
        for t in ts_checks:
            problems += [f"Dấu thời gian lưu trữ «{t.field}»: {p}" for p in t.problems]
        if any(c.problems for c in sig_checks) or any(t.problems for t in ts_checks):
            codes.append("signature_invalid")
        order_problems = _order_problems(state, sig_checks)
        if order_problems:
            codes.append("plan_order")
            problems += order_problems
        done = {c.field for c in sig_checks}
        missing = tuple(f"{f.label} ({f.assignee_name})" for f in state.plan.fields
                        if f.name not in done)
        if missing:
            codes.append("plan_incomplete")
            problems.append("Kế hoạch ký chưa hoàn tất; còn thiếu: " + ", ".join(missing) + ".")
        if not sealed:
            codes.append("not_sealed")
            problems.append("Hồ sơ chưa được niêm phong dài hạn (chưa có dấu thời gian lưu trữ).")
        if not state.lock_matches:
            codes.append("data_lock_mismatch")
            problems.append("Dữ liệu nhúng trong hồ sơ không khớp SHA-256 ghi trong XMP.")
        part, conformance, mismatches = _pdfa_claims(pdf)
        consistent = not mismatches
        if (part, conformance) != ("3", "B"):
            codes.append("pdfa_claim")
            problems.append(f"Hồ sơ không khai báo PDF/A-3b (khai báo: {part}{conformance}).")
        if not consistent:
            codes.append("metadata_inconsistent")
            problems.append("Siêu dữ liệu XMP và từ điển Info không thống nhất: "
                            + "; ".join(mismatches) + ".")
        return VerificationReport(
            verdict="valid" if not problems else "invalid",
            record_id=state.record_id, kind=str(state.data.get("kind")),
            school_code=str(state.data["school"]["code"]),
            school_year=str(state.data["school_year"]),
            student_code=str(state.data["student"]["code"]),
            student_name=str(state.data["student"]["full_name"]),
            plan_title=state.plan.spec.title, signatures=tuple(sig_checks),
            archive_timestamps=tuple(ts_checks), plan_complete=not missing, plan_missing=missing,
            sealed=sealed, pdfa_part=part, pdfa_conformance=conformance,
            data_matches_xmp=state.lock_matches, metadata_consistent=consistent,
            problems=tuple(problems), verified_at=datetime.now(UTC).isoformat(timespec="seconds"),
            network_used=self.online and not sealed, codes=tuple(codes),
        )

    def _context(self, state: RecordState, sealed: bool) -> tuple[ValidationContext, bool]:
        """The context and whether it can establish revocation status at all: from the DSS
        of a sealed record, or online; offline without a DSS it cannot (and says so)."""
        kwargs: dict[str, Any] = {"trust_roots": self.trust_roots, "revocation_mode": "require",
                                  "retroactive_revinfo": True}
        if sealed:
            try:
                dss = DocumentSecurityStore.read_dss(state.reader)
            except ValidationInfoReadingError:
                dss = None
            if dss is not None:
                return dss.as_validation_context({**kwargs, "allow_fetching": False}), True
        if not self.online:
            kwargs["revocation_mode"] = "soft-fail"
        return ValidationContext(**kwargs, allow_fetching=self.online), self.online

    async def _check_signature(self, sig: EmbeddedPdfSignature, plan: ResolvedPlan,
                               vc: ValidationContext, revocation: bool,
                               diff: StandardDiffPolicy) -> SignatureCheck:
        name = str(sig.field_name)
        problems: list[str] = []
        try:
            fa = plan.field(name)
        except HsdtError:
            fa = None
            problems.append("ô chữ ký không thuộc kế hoạch ký của loại hồ sơ này")
        cert = sig.signer_cert
        try:
            st = await async_validate_pdf_signature(sig, signer_validation_context=vc,
                                                    ts_validation_context=vc, diff_policy=diff)
        except (SignatureValidationError, ValueError) as exc:
            return SignatureCheck(name, fa.label if fa else None, fa.role if fa else None,
                                  fa.assignee if fa else None, _cn(cert), fingerprint(cert), None,
                                  False, False, False, False, False, "UNKNOWN", None,
                                  (f"không kiểm tra được: {exc}",))
        ts = st.timestamp_validity
        level = st.modification_level
        if not st.intact:
            problems.append("nội dung đã bị thay đổi sau khi ký (băm không khớp)")
        elif not st.valid:
            problems.append("giá trị chữ ký không hợp lệ")
        if not st.trusted:
            sub = st.trust_problem_indic.name if st.trust_problem_indic else "không rõ"
            problems.append(f"chứng thư số không tin cậy hoặc bị thu hồi ({sub})")
        if ts is None:
            problems.append("thiếu dấu thời gian (PAdES B-T)")
        elif not (ts.intact and ts.valid and ts.trusted):
            problems.append("dấu thời gian của chữ ký không hợp lệ")
        if st.docmdp_ok is False or (level is not None and level > _ALLOWED_AFTER[False]):
            problems.append(f"có thay đổi không được phép sau khi ký "
                            f"({_LEVEL_VI.get(level, str(level))})")
        if st.coverage is not None and st.coverage.name not in ("ENTIRE_FILE", "ENTIRE_REVISION"):
            problems.append("chữ ký không bao phủ toàn bộ tài liệu")
        bound: bool | None = None
        if self.bindings is not None and fa is not None:
            bound = self.bindings.owner(fingerprint(cert)) == fa.assignee
            if not bound:
                problems.append(f"chứng thư không thuộc về người được giao ký ({fa.assignee_name})")
        return SignatureCheck(
            field=name, label=fa.label if fa else None, role=fa.role.value if fa else None,
            assignee=fa.assignee if fa else None, signer_name=_cn(cert),
            cert_sha256=fingerprint(cert),
            signing_time=ts.timestamp.astimezone(UTC).isoformat() if ts else None,
            intact=st.intact, valid=st.valid, trusted=st.trusted, timestamped=ts is not None,
            revocation_checked=bool(st.trusted) and revocation, modification_level=_level_name(level),
            bound_to_assignee=bound, problems=tuple(problems))

    async def _check_timestamp(self, sig: EmbeddedPdfSignature, vc: ValidationContext,
                               diff: StandardDiffPolicy) -> TimestampCheck:
        problems: list[str] = []
        try:
            st = await async_validate_pdf_timestamp(sig, validation_context=vc, diff_policy=diff)
        except (SignatureValidationError, ValueError) as exc:
            return TimestampCheck(str(sig.field_name), None, False, False, False, "UNKNOWN",
                                  (f"không kiểm tra được: {exc}",))
        if not (st.intact and st.valid):
            problems.append("dấu thời gian bị thay đổi hoặc không hợp lệ")
        if not st.trusted:
            problems.append("dấu thời gian không dẫn về CA tin cậy")
        level = st.modification_level
        if level is not None and level > ModificationLevel.LTA_UPDATES:
            problems.append(f"có thay đổi sau dấu thời gian ({_LEVEL_VI.get(level, str(level))})")
        return TimestampCheck(str(sig.field_name), st.timestamp.astimezone(UTC).isoformat(),
                              st.intact, st.valid, st.trusted, _level_name(level), tuple(problems))


_LEVEL_VI = {
    ModificationLevel.NONE: "không thay đổi",
    ModificationLevel.LTA_UPDATES: "chỉ bổ sung dữ liệu xác minh dài hạn",
    ModificationLevel.FORM_FILLING: "chỉ điền biểu mẫu và ký",
    ModificationLevel.ANNOTATIONS: "thêm chú thích (annotation)",
    ModificationLevel.OTHER: "sửa nội dung tài liệu",
}


def _level_name(level: ModificationLevel | None) -> str:
    return level.name if level is not None else "UNKNOWN"


def _cn(cert: x509.Certificate) -> str:
    native = cert.subject.native
    return str(native.get("common_name") or cert.subject.human_friendly)


def _order_problems(state: RecordState, checks: list[SignatureCheck]) -> list[str]:
    """Signatures must follow the plan's stages, and nothing may follow the lock."""
    out: list[str] = []
    stage = -1
    locked_by: str | None = None
    for c in checks:
        try:
            fa = state.plan.field(c.field)
        except HsdtError:
            if locked_by is not None:
                out.append(f"Chữ ký «{c.field}» được thêm sau khi {locked_by} đã khoá hồ sơ.")
            continue
        if locked_by is not None:
            out.append(f"«{fa.label}» được ký sau khi {locked_by} đã khoá hồ sơ.")
        if fa.stage < stage:
            out.append(f"«{fa.label}» được ký sai thứ tự kế hoạch ký.")
        if fa.certify and c is not checks[0]:
            out.append("Chữ ký chứng thực của nhà trường phải là chữ ký đầu tiên.")
        stage = max(stage, fa.stage)
        if fa.lock_all:
            locked_by = fa.assignee_name
    return out


def _pdfa_claims(pdf: bytes) -> tuple[str | None, str | None, list[str]]:
    """PDF/A part and conformance claimed, and every Info entry that disagrees with XMP."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        meta = doc.open_metadata()
        part = meta.get("pdfaid:part")
        conf = meta.get("pdfaid:conformance")
        info = doc.docinfo
        mismatches: list[str] = []
        for info_key, xmp_key in (("/Producer", "pdf:Producer"), ("/Title", "dc:title")):
            iv = str(info.get(info_key)) if info_key in info else None
            xv = meta.get(xmp_key)
            if iv is not None and xv is not None and str(iv) != str(xv):
                mismatches.append(f"{info_key} «{iv}» ≠ {xmp_key} «{xv}»")
        for info_key, xmp_key in (("/ModDate", "xmp:ModifyDate"),
                                  ("/CreationDate", "xmp:CreateDate")):
            iv, xv = info.get(info_key), meta.get(xmp_key)
            if not _same_instant(iv, xv):
                mismatches.append(f"{info_key} «{iv}» ≠ {xmp_key} «{xv}»")
    return (str(part) if part is not None else None,
            str(conf) if conf is not None else None, mismatches)


def _same_instant(info_date: Any, xmp_date: Any) -> bool:
    if info_date is None or xmp_date is None:
        return info_date is None and xmp_date is None
    try:
        a = decode_pdf_date(str(info_date))
        b = datetime.fromisoformat(str(xmp_date))
    except ValueError:
        return False
    return abs((a - b).total_seconds()) < 1
