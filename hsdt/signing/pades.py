"""PAdES signing of records: B-T for every person's signature, B-LTA for the final seal.

One :class:`RecordSigner` serves a whole batch: it keeps one event loop and one HTTP
session for the TSA, OCSP and CRL, checks each certificate once per batch, remembers how
large each signer's CMS turned out (so the next signature reserves exactly that, instead
of signing twice to find out), and builds each signer's font subset once.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asn1crypto import cms, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.signers.pdf_signer import (
    PdfSignatureMetadata,
    PdfSigner,
    PdfTimeStamper,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore, collect_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

from hsdt.domain.errors import SigningRefused
from hsdt.domain.plans import FieldAssignment, Role
from hsdt.signing import policy
from hsdt.signing.appearance import VietnameseStampStyle, stamp_lines
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey, fingerprint
from hsdt.signing.record_state import RecordState, read_record, require_data_lock

_RESERVE_MARGIN = 1024  # TST sizes vary a little between tokens
_CERT_CHECK_TTL_S = 300.0
_SEAL_COLOR = (0.7, 0.0, 0.0)
_PERSON_COLOR = (0.0, 0.0, 0.55)
_T = TypeVar("_T")


@dataclass
class SigningEnvironment:
    """The outside world a signer depends on, chosen by configuration."""

    trust_roots: list[x509.Certificate]
    tsa_url: str
    bindings: CertificateBindings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer that leaves the document's metadata as the renderer wrote it.

    pyHanko rewrites the whole XMP packet and the Info dictionary on every increment (new
    ModDate and Producer, stamped separately, so the two can disagree — PDF/A forbids
    that). A signature or a timestamp does not change what the record says, so neither is
    touched: they stay consistent by construction, and each of the sixteen revisions of a
    record is some 8 KB smaller.
    """
    w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    w._update_meta = lambda: None  # type: ignore[method-assign]
    return w


class RecordSigner:
    """Signs records according to their plan. Not thread-safe: one per worker thread."""

    def __init__(self, env: SigningEnvironment) -> None:
        self.env = env
        self._runner = asyncio.Runner()
        self._session = LazySession()
        self._timestamper = HTTPTimeStamper(env.tsa_url, session=self._session)
        self._vc: ValidationContext | None = None
        self._checked: dict[str, float] = {}  # certificate SHA-256 → when found good
        self._reserved: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        async def _close() -> None:
            await self._session.close()
            if self._vc is not None:
                await self._vc.aclose()
        self._runner.run(_close())
        self._runner.close()

    def __enter__(self) -> RecordSigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def validation_context(self) -> ValidationContext:
        """Online context, revocation required: what we sign on must be checked, not assumed."""
        if self._vc is None:
            backend = AIOHttpFetcherBackend(session=self._session)
            self._vc = ValidationContext(
                trust_roots=self.env.trust_roots, allow_fetching=True,
                revocation_mode="require", fetcher_backend=backend)
        return self._vc

    # -- checks ----------------------------------------------------------------------------
    def check_certificate(self, key: SigningKey, assignee_field: policy.FieldAssignment) -> None:
        self.check_certificate_for(key.cert, key.chain, assignee_field)

    def check_certificate_for(self, cert: x509.Certificate, chain: list[x509.Certificate],
                              assignee_field: policy.FieldAssignment) -> None:
        """The certificate checks of :meth:`check_certificate` from the certificate alone: a
        key held outside the server (deferred signing) is judged by the same rules."""
        policy.check_binding(cert, assignee_field, self.env.bindings)
        policy.check_key_strength(cert)
        policy.check_validity_period(cert, self.env.clock())
        self.check_trust(cert, chain)

    def check_trust(self, cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
        """Trust anchor and revocation status, online. A certificate found good is not
        asked about again for a few minutes (its holder signs a class in a row); one found
        revoked or untrusted is refused every time it is presented."""
        now = self.env.clock().timestamp()
        checked_at = self._checked.get(fingerprint(cert))
        if checked_at is not None and now - checked_at < _CERT_CHECK_TTL_S:
            return
        self._runner.run(policy.check_trust_and_revocation(
            cert, chain, self.validation_context()))
        self._checked[fingerprint(cert)] = now

    def check_can_sign(self, pdf: bytes, field_name: str, cert: x509.Certificate,
                       chain: list[x509.Certificate], *, expected_data_sha256: str | None = None
                       ) -> tuple[RecordState, FieldAssignment]:
        """Every check :meth:`sign` makes before signing, without needing the private key.

        Data lock, field, plan order, certificate (binding, strength, validity, trust and
        revocation online), and the form's own lock for a locking field — in that order, so
        a refusal names the first rule broken. Returns the parsed record and its field so
        the caller does not parse the PDF again.
        """
        state = read_record(pdf)
        require_data_lock(state, expected_data_sha256)
        target = state.plan.field(field_name)
        if field_name not in state.field_names:
            raise SigningRefused(f"Hồ sơ không có ô chữ ký «{field_name}».", code="unknown_field")
        policy.check_plan_order(state.plan, target, list(state.filled_fields))
        self.check_certificate_for(cert, chain, target)
        if target.lock_all:
            _require_field_lock(state.reader, field_name)
        return state, target

    def pdf_signer_for(self, state: RecordState, target: FieldAssignment, signer: Signer,
                       signer_name: str, now: datetime) -> PdfSigner:
        """The PAdES B-T signer for one field: metadata, DocMDP/lock and the Vietnamese stamp.

        Shared by :meth:`sign` and deferred signing so that a signature made with a key in a
        teacher's USB token looks and locks exactly like one made on the server.
        """
        meta = PdfSignatureMetadata(
            field_name=target.name, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
            certify=target.certify,
            docmdp_permissions=MDPPerm.NO_CHANGES if target.lock_all else MDPPerm.FILL_FORMS,
            reason=f"{target.label} — {state.plan.spec.title}",
            location=state.data.get("school", {}).get("name"),
            name=target.assignee_name,
        )
        is_seal = target.role is Role.SCHOOL_SEAL
        style = VietnameseStampStyle(stamp_lines(signer_name, now),
                                     _SEAL_COLOR if is_seal else _PERSON_COLOR)
        return PdfSigner(meta, signer, timestamper=self._timestamper, stamp_style=style)

    @property
    def timestamper(self) -> HTTPTimeStamper:
        """The batch's TSA client (one HTTP session, dummy response cached for sizing)."""
        return self._timestamper

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on this signer's event loop, where its HTTP session lives."""
        return self._runner.run(coro)

    # -- signing ---------------------------------------------------------------------------
    def sign(self, pdf: bytes, field_name: str, key: SigningKey, *,
             expected_data_sha256: str | None = None) -> bytes:
        """Add one PAdES B-T signature in ``field_name``, if the plan and the key allow it."""
        state, target = self.check_can_sign(pdf, field_name, key.cert, key.chain,
                                            expected_data_sha256=expected_data_sha256)
        now = self.env.clock()
        w = _writer(pdf)
        signer = self.pdf_signer_for(state, target, key.signer, key.subject_name, now)
        # First signature of a key: pyHanko sizes the CMS with a dry run; later ones reserve
        # what the first actually needed.
        reserved = self._reserved.get(key.fingerprint)
        out = self._runner.run(signer.async_sign_pdf(w, existing_fields_only=True,
                                                     bytes_reserved=reserved))
        result = out.getvalue()
        if key.fingerprint not in self._reserved:
            # bytes_reserved counts hex digits: two per byte of DER
            self._reserved[key.fingerprint] = 2 * (_cms_size(result) + _RESERVE_MARGIN)
        return result

    def renew(self, pdf: bytes) -> bytes:
        """Add the validation data of the newest archive timestamp, then a new one over it all
        (PAdES LTA renewal). The input is not modified: the result is a new version."""
        state = read_record(pdf)
        stamps = state.doc_timestamps
        if not stamps:
            raise SigningRefused("Hồ sơ chưa được niêm phong, không thể gia hạn.", code="not_sealed")
        vc = self.validation_context()
        paths = self._runner.run(collect_validation_info(stamps[-1], vc))
        w = _writer(pdf)
        DocumentSecurityStore.supply_dss_in_writer(w, None, paths=paths, validation_context=vc)
        return self._archive_timestamp(w, f"ArchiveTimestamp{len(stamps) + 1}")

    def seal(self, pdf: bytes, *, expected_data_sha256: str | None = None) -> bytes:
        """B-LTA: every certificate and revocation response in the DSS, then a document
        timestamp over all of it. Only a record whose plan is complete is sealed."""
        state = read_record(pdf)
        require_data_lock(state, expected_data_sha256)
        done = set(state.filled_fields)
        missing = [f for f in state.plan.fields if f.name not in done]
        if missing:
            names = ", ".join(f"{f.label} ({f.assignee_name})" for f in missing[:5])
            raise SigningRefused(f"Chưa đủ chữ ký để niêm phong; còn thiếu: {names}.",
                                 code="plan_incomplete")
        if done - {f.name for f in state.plan.fields}:
            raise SigningRefused("Hồ sơ đã được niêm phong.", code="sealed")
        vc = self.validation_context()

        async def _collect() -> list:  # type: ignore[type-arg]
            paths = []
            for sig in state.signatures:
                paths += await collect_validation_info(sig, vc)
            return paths

        paths = self._runner.run(_collect())
        w = _writer(pdf)
        DocumentSecurityStore.supply_dss_in_writer(w, None, paths=paths, validation_context=vc)
        return self._archive_timestamp(w, "ArchiveTimestamp1")

    def _archive_timestamp(self, w: IncrementalPdfFileWriter, field_name: str) -> bytes:
        # The TSA's own validation data goes into the same revision, before the timestamp:
        # the file then ends with the document timestamp, covered entirely.
        stamper = PdfTimeStamper(self._timestamper, field_name=field_name)
        out = self._runner.run(stamper.async_timestamp_pdf(
            w, md_algorithm="sha256", validation_context=self.validation_context(),
            bytes_reserved=12_000,
            dss_settings=TimestampDSSContentSettings(update_before_ts=True, include_vri=False)))
        return out.getvalue()


def renewal_due(pdf: bytes, now: datetime, margin: timedelta,
                retired_digests: frozenset[str] = frozenset({"md5", "sha1"})) -> str | None:
    """Why the record's evidence needs a new archive timestamp, or None if it does not.

    Due when the newest archive timestamp's TSA certificate expires within ``margin`` (after
    that nobody can prove when the evidence existed), or when its digest algorithm has been
    retired by policy.
    """
    state = read_record(pdf)
    stamps = state.doc_timestamps
    if not stamps:
        return "hồ sơ chưa có dấu thời gian lưu trữ"
    last = stamps[-1]
    tsa = last.signer_cert
    expires = tsa["tbs_certificate"]["validity"]["not_after"].native
    if expires - margin <= now:
        return f"chứng thư TSA của dấu thời gian lưu trữ mới nhất hết hạn ngày {expires:%d/%m/%Y}"
    algo = last.signer_info["digest_algorithm"]["algorithm"].native
    if algo in retired_digests:
        return f"thuật toán băm {algo} của dấu thời gian lưu trữ đã bị loại bỏ"
    return None


def _require_field_lock(reader: PdfFileReader, field_name: str) -> None:
    """The principal's field must declare FieldMDP /All with DocMDP P=1 in the form itself:
    a lock added at signing time would count as a change to the earlier signatures."""
    for ref in reader.root["/AcroForm"]["/Fields"]:
        fld = ref.get_object()
        if fld.get("/T") == field_name:
            lock = fld.get("/Lock")
            if lock is not None and lock.get("/Action") == "/All" and lock.get("/P") == 1:
                return
    raise SigningRefused(f"Ô «{field_name}» không khai báo khoá toàn bộ hồ sơ trong biểu mẫu; "
                         "hãy kết xuất lại hồ sơ.", code="form_without_lock")


def _cms_size(pdf: bytes) -> int:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    last = reader.embedded_signatures[-1]
    return len(cms.ContentInfo.load(last.pkcs7_content, strict=False).dump())
