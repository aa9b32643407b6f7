"""Verification of a record: every signature, the plan, the data lock and the PDF/A claims.

The result is data (frozen dataclasses with Vietnamese reasons and machine codes); the CLI
and API only render it. The verifier fails closed: a record is valid only when every check
ran and passed, never by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, TypeVar, cast

from asn1crypto import crl, ocsp, x509
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.misc import PdfReadError, get_and_apply
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffResult,
    ModificationLevel,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.form_rules_api import FormUpdate, FormUpdatingRule
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.path import ValidationPath

from hsdt.domain.canonical import as_plain
from hsdt.domain.errors import HsdtError, UnusableInput
from hsdt.domain.plans import ResolvedPlan
from hsdt.signing import _asn1_memo, _speedups, parsed
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import fingerprint
from hsdt.signing.record_state import RecordState, read_record

_diff_log = logging.getLogger("pyhanko.sign.diff_analysis.policies")


class _RecordingFormRule(FormUpdatingRule):
    """pyHanko's form rule, keeping every form update it reports, in order."""

    def __init__(self, rule: FormUpdatingRule) -> None:
        super().__init__(field_rules=rule.field_rules,
                         ignored_acroform_keys=rule.ignored_acroform_keys)
        self.updates: list[FormUpdate] = []

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterator[tuple[ModificationLevel, FormUpdate]]:
        for level, update in super().apply(old, new):
            self.updates.append(update)
            yield level, update


@dataclass(frozen=True)
class _RevisionAnalysis:
    """pyHanko's judgement of one revision against its predecessor, before any signature's
    locks are applied: what :meth:`StandardDiffPolicy.apply` returns (or raises) with no
    FieldMDP and no DocMDP in force, and the form updates it met on the way, in order."""

    result: DiffResult | SuspiciousModification
    form_updates: tuple[FormUpdate, ...]

    def under(self, field_mdp_spec: FieldMDPSpec | None, doc_mdp: MDPPerm | None
              ) -> DiffResult | SuspiciousModification:
        """What ``apply`` gives with these locks in force.

        ``apply`` reads the locks in one place only: in its loop over the form updates,
        each update is refused if it touches a locked field (unless valid when locked) or,
        under a DocMDP (certification) signature, if it is not valid after certification;
        the first refusal ends the analysis. Everything else it computes is the same with
        or without locks. Replaying the recorded updates in the same order with the same
        tests and messages (pyHanko 0.38's, which is pinned) therefore gives the same
        result, for each signature's own locks.
        """
        for update in self.form_updates:
            name = update.field_name
            if (name is not None and not update.valid_when_locked and field_mdp_spec is not None
                    and field_mdp_spec.is_locked(name)):
                return SuspiciousModification(
                    f"Update of {update.updated_ref} is not allowed "
                    f"because the form field {name} is locked.")
            if doc_mdp is not None and not update.valid_when_certifying:
                return SuspiciousModification(
                    f"Update of {update.updated_ref} is only allowed "
                    f"after an approval signature, not a certification signature.")
        return self.result


class _ConsecutiveDiffPolicy(StandardDiffPolicy):
    """pyHanko's standard rules, applied once per pair of consecutive revisions.

    The stock policy compares each signed revision with every later one, which is
    quadratic in the number of signatures (15 on a học bạ page). Here each revision is
    judged against its predecessor, with the same rules. This is not the same comparison
    as pyHanko's (it is empirically at least as strict: it also refuses, for the earlier
    signatures, a deleted DSS or a signature value moved to another field, which the
    stock analysis lets through); it is the analysis this verifier already used.

    What one pair gives does not depend on the signature under review except through
    that signature's locks (FieldMDP, DocMDP), so each pair is analysed once per file and
    the locks are applied per signature (:meth:`_RevisionAnalysis.under`). One instance
    serves one file: results are kept per revision of the reader they came from, and
    dropped if another reader is passed.
    """

    def __init__(self) -> None:
        super().__init__(global_rules=DEFAULT_DIFF_POLICY.global_rules,
                         form_rule=DEFAULT_DIFF_POLICY.form_rule)
        self._reader: PdfFileReader | None = None
        self._revisions: dict[int, _RevisionAnalysis] = {}

    def _analysis(self, reader: PdfFileReader, rev: int) -> _RevisionAnalysis:
        if reader is not self._reader:
            self._reader, self._revisions = reader, {}
        found = self._revisions.get(rev)
        if found is None:
            form_rule = DEFAULT_DIFF_POLICY.form_rule
            assert form_rule is not None  # the default policy always judges the form
            recorder = _RecordingFormRule(form_rule)
            policy = StandardDiffPolicy(global_rules=DEFAULT_DIFF_POLICY.global_rules,
                                        form_rule=recorder)
            result: DiffResult | SuspiciousModification
            try:
                result = policy.apply(old=reader.get_historical_resolver(rev - 1),
                                      new=reader.get_historical_resolver(rev))
            except SuspiciousModification as exc:
                result = exc
            found = self._revisions[rev] = _RevisionAnalysis(result, tuple(recorder.updates))
        return found

    def review_file(self, reader: PdfFileReader, base_revision: int | HistoricalResolver,
                    field_mdp_spec: FieldMDPSpec | None = None, doc_mdp: MDPPerm | None = None
                    ) -> DiffResult | SuspiciousModification:
        base = base_revision if isinstance(base_revision, int) else base_revision.revision
        if doc_mdp == MDPPerm.ANNOTATE:  # as StandardDiffPolicy.apply warns
            _diff_log.warning("StandardDiffPolicy was not designed to support DocMDP level 3 "
                              "(MDPPerm.ANNOTATE). Unexpected validation results may occur.")
        level = ModificationLevel.NONE
        changed: set[str] = set()
        for rev in range(base + 1, reader.xrefs.total_revisions):
            result = self._analysis(reader, rev).under(field_mdp_spec, doc_mdp)
            if isinstance(result, SuspiciousModification):
                return result
            level = max(level, result.modification_level)
            changed |= result.changed_form_fields
        return DiffResult(level, changed)


# What each field may see after it was signed, in pyHanko's modification levels.
_ALLOWED_AFTER = {True: ModificationLevel.LTA_UPDATES, False: ModificationLevel.FORM_FILLING}


@dataclass(frozen=True)
class CertificateInfo:
    """One certificate of a validation path, with what an archivist needs to look it up again
    (serial and issuer, as a CA's register lists it; SHA-256, as a DSS or a browser shows it).

    Times are ISO 8601 UTC. ``trust_anchor`` marks the certificate the path ends at.
    """

    subject_cn: str
    subject: str
    issuer_cn: str
    issuer: str
    serial: str  # hexadecimal, as CAs print it
    sha256: str
    not_before: str
    not_after: str
    trust_anchor: bool = False


@dataclass(frozen=True)
class RevocationEvidence:
    """An OCSP response or a CRL that speaks about one certificate of a path.

    ``source`` says where the verifier found it: ``dss`` — in the record's own Document
    Security Store (what makes a sealed record verifiable with the network off); ``online`` —
    fetched from the CA during this verification. ``status`` is what the evidence says about
    the certificate: ``good`` (OCSP good, or not listed on the CRL), ``revoked``, ``unknown``.
    """

    kind: Literal["ocsp", "crl"]
    cert_subject_cn: str
    cert_sha256: str
    issuer: str  # the OCSP responder, or the CRL issuer
    produced_at: str | None  # OCSP producedAt; None for a CRL
    this_update: str | None
    next_update: str | None
    status: Literal["good", "revoked", "unknown"]
    source: Literal["dss", "online"]
    sha256: str  # of the DER response or CRL, to find it in the DSS
    revoked_at: str | None = None


@dataclass(frozen=True)
class TimestampInfo:
    """The RFC 3161 timestamp of a signature: who vouches for the time, and their path."""

    tsa_name: str
    time: str  # ISO 8601 UTC
    tsa_cert_sha256: str
    intact: bool
    valid: bool
    trusted: bool
    chain: tuple[CertificateInfo, ...] = ()
    revocation: tuple[RevocationEvidence, ...] = ()


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
    # -- the detailed report (EU DSS style); empty when the signature could not be parsed --
    stage: int | None = None  # index of the plan stage the field belongs to
    assignee_name: str | None = None
    certify: bool = False  # the certification (DocMDP) signature of the school
    claimed_signing_time: str | None = None  # the signer's own /M: a claim, not evidence
    digest_algorithm: str | None = None
    signature_algorithm: str | None = None
    chain: tuple[CertificateInfo, ...] = ()  # signer first, trust anchor last
    revocation: tuple[RevocationEvidence, ...] = ()
    timestamp: TimestampInfo | None = None
    coverage: str | None = None  # ENTIRE_FILE / ENTIRE_REVISION / CONTIGUOUS_BLOCK_FROM_START
    docmdp_ok: bool | None = None
    changed_fields: tuple[str, ...] = ()  # form fields filled in after this signature

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
    tsa_name: str | None = None
    tsa_cert_sha256: str | None = None
    chain: tuple[CertificateInfo, ...] = ()
    revocation: tuple[RevocationEvidence, ...] = ()


@dataclass(frozen=True)
class ValidationData:
    """What long-term validation material the record carries in its DSS, and where the
    revocation status used for this verification came from (``dss``, ``online``, or
    ``none`` when an unsealed record was verified offline)."""

    source: Literal["dss", "online", "none"]
    dss_certificates: int = 0
    dss_ocsp_responses: int = 0
    dss_crls: int = 0


@dataclass(frozen=True)
class FixityCheck:
    time: str  # ISO 8601 UTC
    outcome: str  # PREMIS eventOutcome: "success" / "failure"


_HEX = frozenset("0123456789abcdef")


def _is_hex(value: str) -> bool:
    return bool(value) and set(value.lower()) <= _HEX


@dataclass(frozen=True)
class ArchiveEvidence:
    """What the archive adds to a record's verification: where it is kept write-once, its
    fixity history and its place in the transparency log. The archive fills it in
    (:meth:`VerificationReport.with_archive`); the verifier itself knows nothing of storage.

    ``signed_tree_head`` is the log's signed tree head as JSON text, kept verbatim so that a
    reader can check the log's signature on exactly what the archive showed.
    """

    object_key: str
    version_id: str
    retain_until: str
    fixity: tuple[FixityCheck, ...] = ()
    log_index: int | None = None
    tree_size: int | None = None
    root_hash: str | None = None
    inclusion_proof: tuple[str, ...] = ()
    signed_tree_head: str | None = None

    def __post_init__(self) -> None:
        # Evidence that cannot be checked is no evidence: refuse malformed proofs early.
        if self.root_hash is not None and not _is_hex(self.root_hash):
            raise ValueError("root_hash phải là chuỗi hex")
        if not all(_is_hex(h) for h in self.inclusion_proof):
            raise ValueError("inclusion_proof phải là danh sách chuỗi hex")
        if self.log_index is not None and self.tree_size is not None and not (
                0 <= self.log_index < self.tree_size):
            raise ValueError("log_index phải nằm trong cây (0 ≤ log_index < tree_size)")
        if self.signed_tree_head is not None and not isinstance(
                json.loads(self.signed_tree_head), dict):
            raise ValueError("signed_tree_head phải là một đối tượng JSON")


@dataclass(frozen=True)
class VerificationReport:
    verdict: Literal["valid", "invalid", "indeterminate"]
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
    school_name: str = ""
    validation_data: ValidationData | None = None
    archive: ArchiveEvidence | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    def with_archive(self, evidence: ArchiveEvidence) -> VerificationReport:
        """The same report with the archive's evidence attached (reports are immutable)."""
        return replace(self, archive=evidence)

    def to_json(self) -> dict[str, Any]:
        return cast(dict[str, Any], as_plain(self))  # dataclasses.asdict, faster


_P = TypeVar("_P", x509.Certificate, ocsp.OCSPResponse, crl.CertificateList)


@dataclass(frozen=True)
class _DssEvidence:
    """What a record's DSS holds, parsed: read once per verification, for every context.

    The certificates are those pyHanko's ``as_validation_context`` gives (one per issuer
    and serial, in the DSS's order); each is the thread's shared object for its encoding
    (:mod:`hsdt.signing.parsed`), as are the OCSP responses and CRLs.
    """

    certs: tuple[x509.Certificate, ...]
    ocsps: tuple[ocsp.OCSPResponse, ...]
    crls: tuple[crl.CertificateList, ...]

    @classmethod
    def read(cls, reader: PdfFileReader) -> _DssEvidence | None:
        """What pyHanko's ``DocumentSecurityStore.read_dss`` reads (the same entries, in its
        order, with its errors), each value parsed once and shared: pyHanko's reader
        parses every certificate afresh to key it by issuer and serial, and reads each
        OCSP response and CRL twice."""
        try:
            dss = reader.root["/DSS"]
            certs: dict[str, x509.Certificate] = {}
            for ref in get_and_apply(dss, "/Certs", list, default=[]):
                cert = parsed.load(x509.Certificate,
                                   ref.get_object().read_data(DecodePurpose.CERTIFICATE))
                certs[cert.issuer_serial] = cert  # one per issuer and serial, as pyHanko keeps
            ocsps = _load(ocsp.OCSPResponse, DecodePurpose.OCSP_RESPONSE,
                          get_and_apply(dss, "/OCSPs", list, default=[]))
            crls = _load(crl.CertificateList, DecodePurpose.CRL,
                         get_and_apply(dss, "/CRLs", list, default=[]))
            with contextlib.suppress(KeyError):
                dict(dss["/VRI"])  # read as pyHanko reads it (and refuses a malformed one)
        except (KeyError, ValueError):  # no DSS (pyHanko: NoDSSFoundError), or a damaged value
            return None
        return cls(tuple(certs.values()), ocsps, crls)

    @cached_property
    def digests(self) -> frozenset[str]:
        """SHA-256 of each OCSP response and CRL: what the record carries, as the report
        tells it from evidence fetched today."""
        return frozenset(_sha256(o.dump()) for o in [*self.ocsps, *self.crls])


def _load(kind: type[_P], purpose: DecodePurpose, refs: Iterable[Any]) -> tuple[_P, ...]:
    """The streams ``refs`` point to, decoded and parsed (shared by encoding)."""
    return tuple(parsed.load(kind, ref.get_object().read_data(purpose)) for ref in refs)


_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` without its Ctrl-C handler.

    ``asyncio.run`` installs a SIGINT handler that names the running task, and takes it
    out again when the task is done; Python's ``signal`` module then fails to read that
    handler as one of its constants and formats it for the error it discards, the task's
    result included: a whole verification report written out as text (some 100 KB), twice
    per record. Here the loop is run and shut down as ``asyncio.run`` does, and Ctrl-C
    simply raises KeyboardInterrupt from wherever the verification is.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            if left:  # none, unless the verification failed midway
                for task in left:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


@dataclass
class Verifier:
    """Verifies records against trust anchors and the certificate bindings.

    ``online``: fetch OCSP/CRL for records not sealed yet. A sealed record is verified
    from its own DSS with the network off, as an archivist will years from now.
    """

    trust_roots: list[x509.Certificate]
    bindings: CertificateBindings | None = None
    online: bool = True
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def verify(self, pdf: bytes) -> VerificationReport:
        state = read_record(pdf)
        with _speedups.name_comparisons_remembered():  # for this verification only
            try:
                return _run(self._verify(state))
            except PdfReadError as exc:
                # Objects are parsed when first read: a damaged one surfaces only here.
                raise UnusableInput(f"Không đọc được tệp PDF (cấu trúc hỏng): {exc}") from exc
            finally:
                state.release()  # the report holds nothing of the reader's

    async def _verify(self, state: RecordState) -> VerificationReport:
        problems: list[str] = []
        codes: list[str] = []
        stamps = state.doc_timestamps
        sealed = bool(stamps)
        now = self.clock()
        # Long-term validation (PAdES LTA): each archive timestamp proves that what it covers
        # existed at its time. The signatures and the first DSS are judged at the first
        # archive timestamp's time, each archive timestamp at the time of the next one, and
        # the newest at its own time — provided its TSA certificate is still valid today.
        # Judged at today's date instead, every record would fail once its certificates and
        # revocation data aged, which is exactly what the archive timestamps are there for.
        times = [_tst_time(t) for t in stamps]
        dss = _DssEvidence.read(state.reader)
        vc, revocation, vdata, dss_digests = self._context(state, sealed, dss,
                                                           times[0] if times else None)
        evidence = _RevocationIndex(vc, dss_digests)
        diff = _ConsecutiveDiffPolicy()
        ts_contexts: list[ValidationContext] = []
        try:
            sig_checks = [await self._check_signature(s, state.plan, vc, revocation, diff, evidence)
                          for s in state.signatures]
            ts_checks = []
            for k, t in enumerate(stamps):
                moment = times[k + 1] if k + 1 < len(times) else times[k]
                tvc = self._context(state, True, dss, moment)[0]
                ts_contexts.append(tvc)
                ts_checks.append(await self._check_timestamp(t, tvc, diff,
                                                             _RevocationIndex(tvc, dss_digests)))
        finally:
            await vc.aclose()
            for tvc in ts_contexts:
                await tvc.aclose()
        renewal = _renewal_needed(stamps[-1], now) if stamps else None
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
        part, conformance, mismatches = state.pdfa.part, state.pdfa.conformance, state.pdfa.mismatches
        consistent = not mismatches
        if (part, conformance) != ("3", "B"):
            codes.append("pdfa_claim")
            problems.append(f"Hồ sơ không khai báo PDF/A-3b (khai báo: {part}{conformance}).")
        if not consistent:
            codes.append("metadata_inconsistent")
            problems.append("Siêu dữ liệu XMP và từ điển Info không thống nhất: "
                            + "; ".join(mismatches) + ".")
        verdict: Literal["valid", "invalid", "indeterminate"] = "valid" if not problems else "invalid"
        if renewal is not None:
            codes.append("renewal_needed")
            if not problems:
                # Nothing is wrong with the record: its evidence has aged past what it proves.
                verdict = "indeterminate"
            problems.append(renewal)
        return VerificationReport(
            verdict=verdict,
            record_id=state.record_id, kind=str(state.data.get("kind")),
            school_code=str(state.data["school"]["code"]),
            school_year=str(state.data["school_year"]),
            student_code=str(state.data["student"]["code"]),
            student_name=str(state.data["student"]["full_name"]),
            plan_title=state.plan.spec.title, signatures=tuple(sig_checks),
            archive_timestamps=tuple(ts_checks), plan_complete=not missing, plan_missing=missing,
            sealed=sealed, pdfa_part=part, pdfa_conformance=conformance,
            data_matches_xmp=state.lock_matches, metadata_consistent=consistent,
            problems=tuple(problems), verified_at=now.isoformat(timespec="seconds"),
            network_used=self.online and not sealed, codes=tuple(codes),
            school_name=str(state.data["school"].get("name", "")), validation_data=vdata,
        )

    def _context(self, state: RecordState, sealed: bool, dss: _DssEvidence | None,
                 moment: datetime | None = None
                 ) -> tuple[ValidationContext, bool, ValidationData, frozenset[str]]:
        """The context; whether it can establish revocation status at all (from the DSS of a
        sealed record, or online; offline without a DSS it cannot, and says so); what the DSS
        holds; and the digests of the DSS's OCSP responses and CRLs, so that the report can
        tell evidence the record carries from evidence fetched today."""
        # The anchors as the thread's shared objects (hsdt.signing.parsed), like the
        # certificates of the signatures and the DSS that paths are built from.
        roots = [parsed.load(x509.Certificate, root.dump()) for root in self.trust_roots]
        kwargs: dict[str, Any] = {"trust_roots": roots, "revocation_mode": "require",
                                  "retroactive_revinfo": True}
        counts: dict[str, int] = {}
        if dss is not None:
            counts = {"dss_certificates": len(dss.certs), "dss_ocsp_responses": len(dss.ocsps),
                      "dss_crls": len(dss.crls)}
        if sealed and dss is not None:
            point = {"moment": moment} if moment is not None else {}
            # What pyHanko's DocumentSecurityStore.as_validation_context builds, from the
            # evidence read once for the whole verification.
            vc = ValidationContext(**kwargs, allow_fetching=False, **point,
                                   other_certs=list(dss.certs), ocsps=list(dss.ocsps),
                                   crls=list(dss.crls))
            _speedups.remember_validations(vc)  # this context, so this verification only
            return vc, True, ValidationData("dss", **counts), dss.digests
        if not self.online:
            kwargs["revocation_mode"] = "soft-fail"
        source: Literal["online", "none"] = "online" if self.online else "none"
        vc = ValidationContext(**kwargs, allow_fetching=self.online)
        _speedups.remember_validations(vc)  # a no-op when it fetches
        return vc, self.online, ValidationData(source, **counts), frozenset()

    async def _check_signature(self, sig: EmbeddedPdfSignature, plan: ResolvedPlan,
                               vc: ValidationContext, revocation: bool,
                               diff: StandardDiffPolicy, evidence: _RevocationIndex
                               ) -> SignatureCheck:
        name = str(sig.field_name)
        problems: list[str] = []
        try:
            fa = plan.field(name)
        except HsdtError:
            fa = None
            problems.append("ô chữ ký không thuộc kế hoạch ký của loại hồ sơ này")
        cert = sig.signer_cert
        role_facts: dict[str, Any] = {}
        if fa is not None:
            role_facts = {"stage": fa.stage, "assignee_name": fa.assignee_name,
                          "certify": fa.certify}
        try:
            st = await async_validate_pdf_signature(sig, signer_validation_context=vc,
                                                    ts_validation_context=vc, diff_policy=diff)
        except (SignatureValidationError, ValueError) as exc:
            return SignatureCheck(name, fa.label if fa else None, fa.role.value if fa else None,
                                  fa.assignee if fa else None, _cn(cert), fingerprint(cert), None,
                                  False, False, False, False, False, "UNKNOWN", None,
                                  (*problems, f"không kiểm tra được: {exc}"),
                                  chain=(_cert_info(cert),), **role_facts)
        ts = st.timestamp_validity
        level = st.modification_level
        if not st.intact:
            problems.append("nội dung đã bị thay đổi sau khi ký (băm không khớp)")
        elif not st.valid:
            problems.append("giá trị chữ ký không hợp lệ")
        # pyHanko judges trust only for an intact, valid signature; saying "untrusted" for a
        # broken one would send the reader after the wrong cause.
        if st.intact and st.valid and not st.trusted:
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
        path = _Path.of(st.validation_path, cert)
        changed = st.diff_result.changed_form_fields if isinstance(st.diff_result, DiffResult) else ()
        return SignatureCheck(
            field=name, label=fa.label if fa else None, role=fa.role.value if fa else None,
            assignee=fa.assignee if fa else None, signer_name=_cn(cert),
            cert_sha256=fingerprint(cert),
            signing_time=ts.timestamp.astimezone(UTC).isoformat() if ts else None,
            intact=st.intact, valid=st.valid, trusted=st.trusted, timestamped=ts is not None,
            revocation_checked=bool(st.trusted) and revocation, modification_level=_level_name(level),
            bound_to_assignee=bound, problems=tuple(problems), **role_facts,
            claimed_signing_time=_iso(st.signer_reported_dt),
            digest_algorithm=st.md_algorithm, signature_algorithm=st.pkcs7_signature_mechanism,
            chain=path.infos(), revocation=evidence.for_path(path),
            timestamp=_timestamp_info(ts, evidence) if ts is not None else None,
            coverage=st.coverage.name if st.coverage is not None else None,
            docmdp_ok=st.docmdp_ok, changed_fields=tuple(sorted(str(f) for f in changed)))

    async def _check_timestamp(self, sig: EmbeddedPdfSignature, vc: ValidationContext,
                               diff: StandardDiffPolicy, evidence: _RevocationIndex
                               ) -> TimestampCheck:
        problems: list[str] = []
        try:
            st = await async_validate_pdf_timestamp(sig, validation_context=vc, diff_policy=diff)
        except (SignatureValidationError, ValueError) as exc:
            return TimestampCheck(str(sig.field_name), None, False, False, False, "UNKNOWN",
                                  (f"không kiểm tra được: {exc}",))
        if not (st.intact and st.valid):
            problems.append("dấu thời gian bị thay đổi hoặc không hợp lệ")
        elif not st.trusted:
            problems.append("dấu thời gian không dẫn về CA tin cậy")
        level = st.modification_level
        if level is not None and level > ModificationLevel.LTA_UPDATES:
            problems.append(f"có thay đổi sau dấu thời gian ({_LEVEL_VI.get(level, str(level))})")
        path = _Path.of(st.validation_path, st.signing_cert)
        return TimestampCheck(str(sig.field_name), st.timestamp.astimezone(UTC).isoformat(),
                              st.intact, st.valid, st.trusted, _level_name(level), tuple(problems),
                              tsa_name=_cn(st.signing_cert),
                              tsa_cert_sha256=fingerprint(st.signing_cert), chain=path.infos(),
                              revocation=evidence.for_path(path))


# -- the detailed report: paths and revocation evidence ------------------------------------

def _sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t is not None else None


def _serial_hex(n: int) -> str:
    h = f"{n:X}"
    return h if len(h) % 2 == 0 else "0" + h


_CERT_INFOS: dict[tuple[bytes, bool], CertificateInfo] = {}
CERT_INFOS_KEPT = 4096
"""Certificate descriptions kept (all forgotten at once when full): a school's signers and CAs."""


def _cert_info(cert: x509.Certificate, trust_anchor: bool = False) -> CertificateInfo:
    """The report's description of ``cert``, made once per encoding: the same CA, TSA and
    signers' certificates are on every path of every record of a school, and the description
    (names, serial, digest, validity) is read from the encoding alone."""
    key = (cert.dump(), trust_anchor)
    found = _CERT_INFOS.get(key)
    if found is None:
        found = _asn1_memo.remember(_CERT_INFOS, key, _describe(cert, trust_anchor), CERT_INFOS_KEPT)
    return found


def _describe(cert: x509.Certificate, trust_anchor: bool) -> CertificateInfo:
    validity = cert["tbs_certificate"]["validity"]
    return CertificateInfo(
        subject_cn=_cn(cert), subject=cert.subject.human_friendly,
        issuer_cn=_name_cn(cert.issuer), issuer=cert.issuer.human_friendly,
        serial=_serial_hex(cert.serial_number), sha256=fingerprint(cert),
        not_before=validity["not_before"].native.astimezone(UTC).isoformat(),
        not_after=validity["not_after"].native.astimezone(UTC).isoformat(),
        trust_anchor=trust_anchor)


@dataclass(frozen=True)
class _Path:
    """A validated path as certificates (signer first) and as report entries."""

    certs: tuple[x509.Certificate, ...]
    anchor_index: int | None  # position of the trust anchor's certificate, if it has one

    @classmethod
    def of(cls, path: ValidationPath | None, leaf: x509.Certificate) -> _Path:
        """The path pyHanko validated; only the signer's certificate when no path to a trust
        anchor could be built (the report then says why)."""
        if path is None:
            return cls((leaf,), None)
        certs = list(path.iter_certs(include_root=True))
        certs.reverse()
        authority = path.trust_anchor.authority
        anchor = authority.certificate if isinstance(authority, AuthorityWithCert) else None
        index = next((i for i, c in enumerate(certs)
                      if anchor is not None and c.dump() == anchor.dump()), None)
        return cls(tuple(certs), index)

    def infos(self) -> tuple[CertificateInfo, ...]:
        return tuple(_cert_info(c, trust_anchor=i == self.anchor_index)
                     for i, c in enumerate(self.certs))

    def checked(self) -> list[tuple[x509.Certificate, x509.Certificate | None]]:
        """Each certificate whose revocation status matters (all but the trust anchor: an
        anchor is trusted by configuration, not by a CA's word), with its issuer."""
        return [(c, self.certs[i + 1] if i + 1 < len(self.certs) else None)
                for i, c in enumerate(self.certs) if i != self.anchor_index]


def _timestamp_info(ts: TimestampSignatureStatus, evidence: _RevocationIndex) -> TimestampInfo:
    path = _Path.of(ts.validation_path, ts.signing_cert)
    return TimestampInfo(tsa_name=_cn(ts.signing_cert),
                         time=ts.timestamp.astimezone(UTC).isoformat(),
                         tsa_cert_sha256=fingerprint(ts.signing_cert), intact=ts.intact,
                         valid=ts.valid, trusted=ts.trusted, chain=path.infos(),
                         revocation=evidence.for_path(path))


@dataclass(frozen=True)
class _OcspEntry:
    name_hash: bytes
    key_hash: bytes
    hash_algo: str
    serial: int
    status: Literal["good", "revoked", "unknown"]
    revoked_at: str | None
    this_update: str | None
    next_update: str | None
    produced_at: str | None
    responder: str
    sha256: str


@dataclass(frozen=True)
class _CrlEntry:
    issuer: x509.Name
    issuer_text: str
    revoked: dict[int, str | None]
    this_update: str | None
    next_update: str | None
    sha256: str


class _RevocationIndex:
    """The OCSP responses and CRLs the validation context holds, indexed once, so each
    certificate of each path can be given the evidence that speaks about it.

    pyHanko does not say which response it relied on; what it requires (revocation mode
    "require") is that one exists and is acceptable, so listing every response about the
    certificate is complete and honest. The pool only grows (online fetching), so new
    entries are indexed as they appear.
    """

    def __init__(self, vc: ValidationContext, dss_digests: frozenset[str]) -> None:
        self._vc = vc
        self._dss = dss_digests
        self._ocsp: list[_OcspEntry] = []
        self._crl: list[_CrlEntry] = []
        self._seen: set[str] = set()
        # The response and CRL objects already looked at, held so that their ids stay
        # theirs: each is encoded and hashed once, not once per signature of the record.
        self._looked_at: dict[int, object] = {}
        # What was found about a certificate under an issuer, by the two objects' ids (both
        # held): the CA's and the TSA's certificates are on every path of a record, and the
        # shared parsed objects (hsdt.signing.parsed) make them the same objects each time.
        # Emptied whenever the pool grows.
        self._found: dict[tuple[int, int], tuple[object, object, list[RevocationEvidence]]] = {}

    def _refresh(self) -> None:
        known = len(self._seen)
        for resp in self._vc.ocsps:
            if self._new(resp) and (digest := _sha256(resp.dump())) not in self._seen:
                self._seen.add(digest)
                self._ocsp += _ocsp_entries(resp, digest)
        for cl in self._vc.crls:
            if self._new(cl) and (digest := _sha256(cl.dump())) not in self._seen:
                self._seen.add(digest)
                self._crl.append(_crl_entry(cl, digest))
        if len(self._seen) != known:  # the pool grew: what was found may be incomplete
            self._found.clear()

    def _new(self, obj: object) -> bool:
        if id(obj) in self._looked_at:
            return False
        self._looked_at[id(obj)] = obj
        return True

    def for_path(self, path: _Path) -> tuple[RevocationEvidence, ...]:
        self._refresh()
        out: list[RevocationEvidence] = []
        for cert, issuer in path.checked():
            key = (id(cert), id(issuer))
            known = self._found.get(key)
            if known is None:
                known = self._found[key] = (cert, issuer, self._about(cert, issuer))
            out += known[2]
        return tuple(out)

    def _about(self, cert: x509.Certificate, issuer: x509.Certificate | None
               ) -> list[RevocationEvidence]:
        found: list[RevocationEvidence] = []
        cn, fp = _cn(cert), fingerprint(cert)
        for o in self._ocsp:
            if o.serial != cert.serial_number or o.name_hash != _name_hash(cert.issuer, o.hash_algo):
                continue
            if issuer is not None and o.key_hash != _key_hash(issuer, o.hash_algo):
                continue
            found.append(RevocationEvidence(
                kind="ocsp", cert_subject_cn=cn, cert_sha256=fp, issuer=o.responder,
                produced_at=o.produced_at, this_update=o.this_update, next_update=o.next_update,
                status=o.status, source=self._source(o.sha256), sha256=o.sha256,
                revoked_at=o.revoked_at))
        for c in self._crl:
            if c.issuer != cert.issuer:
                continue
            revoked = cert.serial_number in c.revoked
            found.append(RevocationEvidence(
                kind="crl", cert_subject_cn=cn, cert_sha256=fp, issuer=c.issuer_text,
                produced_at=None, this_update=c.this_update, next_update=c.next_update,
                status="revoked" if revoked else "good", source=self._source(c.sha256),
                sha256=c.sha256, revoked_at=c.revoked.get(cert.serial_number)))
        # OCSP first (the direct answer), then CRLs; oldest first within each.
        found.sort(key=lambda e: (e.kind != "ocsp", e.produced_at or e.this_update or ""))
        return found

    def _source(self, digest: str) -> Literal["dss", "online"]:
        return "dss" if digest in self._dss else "online"


def _name_hash(name: x509.Name, algo: str) -> bytes:
    return hashlib.new(algo, name.dump()).digest()


def _key_hash(cert: x509.Certificate, algo: str) -> bytes:
    return hashlib.new(algo, bytes(cert.public_key["public_key"])).digest()


def _ocsp_entries(resp: ocsp.OCSPResponse, digest: str) -> list[_OcspEntry]:
    if resp["response_status"].native != "successful":
        return []
    basic = resp["response_bytes"]["response"].parsed
    tbs = basic["tbs_response_data"]
    rid = tbs["responder_id"]
    if rid.name == "by_name":
        responder = _name_cn(rid.chosen)
    else:
        key = rid.chosen.native
        signer = next((c for c in basic["certs"] or [] if c.public_key.sha1 == key), None)
        responder = _cn(signer) if signer is not None else f"khoá {key.hex()}"
    out: list[_OcspEntry] = []
    for single in tbs["responses"]:
        cid = single["cert_id"]
        status = single["cert_status"]
        state: Literal["good", "revoked", "unknown"] = (
            status.name if status.name in ("good", "revoked") else "unknown")  # type: ignore[assignment]
        revoked_at = (_iso(status.chosen["revocation_time"].native)
                      if status.name == "revoked" else None)
        out.append(_OcspEntry(
            name_hash=cid["issuer_name_hash"].native, key_hash=cid["issuer_key_hash"].native,
            hash_algo=cid["hash_algorithm"]["algorithm"].native,
            serial=cid["serial_number"].native, status=state, revoked_at=revoked_at,
            this_update=_iso(single["this_update"].native),
            next_update=_iso(single["next_update"].native),
            produced_at=_iso(tbs["produced_at"].native), responder=responder, sha256=digest))
    return out


def _crl_entry(cl: crl.CertificateList, digest: str) -> _CrlEntry:
    tbs = cl["tbs_cert_list"]
    revoked: dict[int, str | None] = {}
    for rc in tbs["revoked_certificates"] or []:
        revoked[rc["user_certificate"].native] = _iso(rc["revocation_date"].native)
    nxt = tbs["next_update"].native
    return _CrlEntry(issuer=tbs["issuer"], issuer_text=_name_cn(tbs["issuer"]),
                     revoked=revoked, this_update=_iso(tbs["this_update"].native),
                     next_update=_iso(nxt) if isinstance(nxt, datetime) else None,
                     sha256=digest)


_LEVEL_VI = {
    ModificationLevel.NONE: "không thay đổi",
    ModificationLevel.LTA_UPDATES: "chỉ bổ sung dữ liệu xác minh dài hạn",
    ModificationLevel.FORM_FILLING: "chỉ điền biểu mẫu và ký",
    ModificationLevel.ANNOTATIONS: "thêm chú thích (annotation)",
    ModificationLevel.OTHER: "sửa nội dung tài liệu",
}


def _tst_time(sig: EmbeddedPdfSignature) -> datetime:
    """The time an archive timestamp attests (genTime of its token)."""
    info = sig.signed_data["encap_content_info"]["content"].parsed
    return info["gen_time"].native


def _renewal_needed(newest: EmbeddedPdfSignature, now: datetime) -> str | None:
    """The newest archive timestamp protects the record only while its TSA certificate is
    valid; after that the record is not forged, but its evidence must be renewed."""
    cert = newest.signer_cert
    expires = cert["tbs_certificate"]["validity"]["not_after"].native
    if expires <= now:
        return (f"Cần gia hạn bằng chứng lưu trữ: chứng thư của dấu thời gian lưu trữ mới nhất "
                f"đã hết hạn ngày {expires:%d/%m/%Y}. Không phát hiện dấu hiệu giả mạo, nhưng "
                "không thể chứng minh thời điểm tồn tại của hồ sơ sau ngày đó.")
    return None


def _level_name(level: ModificationLevel | None) -> str:
    return level.name if level is not None else "UNKNOWN"


def _cn(cert: x509.Certificate) -> str:
    return _name_cn(cert.subject)


def _name_cn(name: x509.Name) -> str:
    native = name.native
    cn = native.get("common_name") if isinstance(native, dict) else None
    return str(cn or name.human_friendly)


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


