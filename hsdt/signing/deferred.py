"""Deferred signing: the server prepares a signature, a key it never sees signs it.

A teacher's key lives in a USB token on their PC (or in a remote signing service), so the
server cannot call ``async_sign_raw`` itself. Signing is split in two halves:

1. :meth:`DeferredSigner.prepare` runs every check :meth:`RecordSigner.sign` runs (data
   lock, plan order, certificate bound to the field's assignee, key strength, validity,
   trust and revocation online) *before* anything leaves the server, builds the
   incremental update with the same Vietnamese appearance and locks as a server signature,
   digests the byte range and computes the CMS signed attributes (PAdES: content type,
   message digest, signing-certificate-v2; no signingTime, as pyHanko does for PAdES).
   The client signs the DER of those attributes.
2. :meth:`DeferredSigner.complete` checks the returned value against the certificate's key
   over exactly those attributes (a forged or mismatched value is never embedded), checks
   the record has not moved on and the certificate is still acceptable, builds the CMS,
   obtains the signature timestamp (PAdES B-T) and fills the reserved space.

Between the halves the server keeps a :class:`DeferredState`: explicit bytes, not a pickle
of pyHanko objects. It pins the record by SHA-256 and holds only what the record does not
already contain — the appended revision with its signature placeholder cut out, the signed
attributes, the certificate and the byte-range digest — so a state is a few tens of KB and
survives a restart. ``complete`` takes the current record bytes: the state is useless
without them, and comparing them is how a record that changed meanwhile is refused.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from asn1crypto import cms, x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsdt.domain.errors import SigningRefused
from hsdt.domain.plans import FieldAssignment
from hsdt.signing.appearance import VN_TZ
from hsdt.signing.keys import SigningKey, fingerprint
from hsdt.signing.pades import RecordSigner, _writer

DEFAULT_TTL = timedelta(minutes=15)
"""How long a preparation may wait for its signature value. Long enough for a teacher to
sign a class of 40 on a token in one sitting, short enough that the certificate checks made
at preparation (and repeated at completion) describe the moment of signing."""

DIGEST_ALGORITHM = "sha256"
_RESERVE_MARGIN = 1024  # bytes of DER beyond the dry-run CMS: TST sizes vary a little
_MAGIC = b"HSDT-DEFERRED\n"
_VERSION = 1
_HEADER_LEN = struct.Struct(">I")

Mechanism = Literal["rsassa_pkcs1v15", "ecdsa"]
_PKCS11_MECHANISM: dict[str, str] = {"rsassa_pkcs1v15": "SHA256_RSA_PKCS", "ecdsa": "ECDSA_SHA256"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _corrupt(detail: str) -> SigningRefused:
    return SigningRefused(f"Dữ liệu chuẩn bị ký không hợp lệ hoặc đã bị hỏng ({detail}); "
                          "hãy chuẩn bị ký lại.", code="preparation_invalid")


def _mechanism_for(cert: x509.Certificate) -> Mechanism:
    algo = cert.public_key.algorithm
    if algo == "rsa":
        return "rsassa_pkcs1v15"
    if algo == "ec":
        return "ecdsa"
    # check_key_strength refuses other key types first; this is the last line.
    raise SigningRefused(f"Loại khoá {algo} không được chấp nhận (chỉ RSA hoặc ECDSA).",
                         code="weak_key")


def _max_signature_len(cert: x509.Certificate) -> int:
    """Bytes of the largest raw signature this key can produce (sizes the placeholder)."""
    n = (cert.public_key.bit_size + 7) // 8
    return n if cert.public_key.algorithm == "rsa" else 2 * n + 9  # DER ECDSA-Sig-Value


@dataclass(frozen=True)
class DeferredState:
    """Everything :meth:`DeferredSigner.complete` needs, and nothing the record holds.

    Invariants are checked when built, so a state read back from storage is either usable
    or refused as ``preparation_invalid`` — never half-trusted.
    """

    id: str
    record_id: str
    field_name: str
    created_at: datetime
    expires_at: datetime
    record_sha256: str  # hex SHA-256 of the record bytes the preparation was built on
    record_length: int
    expected_data_sha256: str | None
    digest_algorithm: str
    signature_mechanism: Mechanism
    cert: bytes  # DER
    chain: tuple[bytes, ...]  # DER, issuers to embed in the CMS
    signed_attrs: bytes  # DER of the SET OF attributes: exactly what the client signs
    document_digest: bytes  # digest of the prepared file over its /ByteRange
    reserved_start: int  # absolute offsets of "<00…00>" in the prepared file
    reserved_end: int
    increment: bytes = field(repr=False)  # prepared[record_length:] without the placeholder

    def __post_init__(self) -> None:
        if self.digest_algorithm != DIGEST_ALGORITHM:
            raise _corrupt(f"thuật toán băm {self.digest_algorithm}")
        if self.signature_mechanism not in _PKCS11_MECHANISM:
            raise _corrupt(f"cơ chế ký {self.signature_mechanism}")
        if len(self.document_digest) != hashlib.sha256().digest_size:
            raise _corrupt("độ dài mã băm tài liệu")
        if len(self.record_sha256) != 64:
            raise _corrupt("mã băm hồ sơ")
        if not (self.record_length <= self.reserved_start < self.reserved_end
                and self.reserved_start - self.record_length <= len(self.increment)):
            raise _corrupt("vị trí vùng chữ ký")
        if (self.reserved_end - self.reserved_start) % 2:
            raise _corrupt("kích thước vùng chữ ký")
        if self.created_at.tzinfo is None or self.expires_at.tzinfo is None:
            raise _corrupt("thời điểm không có múi giờ")
        if self.expires_at < self.created_at:
            raise _corrupt("hạn dùng trước thời điểm chuẩn bị")

    # -- the prepared file ----------------------------------------------------------------
    @property
    def reserved_hex_digits(self) -> int:
        return self.reserved_end - self.reserved_start - 2

    def prepared_pdf(self, record: bytes) -> bytes:
        """The file as it was when its byte range was digested: record + the new revision
        with an empty (all-zero) signature placeholder."""
        cut = self.reserved_start - self.record_length
        placeholder = b"<" + b"0" * self.reserved_hex_digits + b">"
        return record + self.increment[:cut] + placeholder + self.increment[cut:]

    # -- bytes in, bytes out --------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """``MAGIC | u32 header length | JSON header | increment | SHA-256 of all before``.

        The increment (a few KB to ~20 KB: the appearance's font subset dominates) is kept
        raw; the small fields are JSON so that an operator can read a stored state. The
        trailing digest catches storage corruption, not an attacker: whoever can rewrite
        the state store can also rewrite the records.
        """
        header = {
            "v": _VERSION, "id": self.id, "record_id": self.record_id,
            "field_name": self.field_name,
            "created_at": self.created_at.isoformat(), "expires_at": self.expires_at.isoformat(),
            "record_sha256": self.record_sha256, "record_length": self.record_length,
            "expected_data_sha256": self.expected_data_sha256,
            "digest_algorithm": self.digest_algorithm,
            "signature_mechanism": self.signature_mechanism,
            "cert": _b64(self.cert), "chain": [_b64(c) for c in self.chain],
            "signed_attrs": _b64(self.signed_attrs),
            "document_digest": self.document_digest.hex(),
            "reserved_start": self.reserved_start, "reserved_end": self.reserved_end,
        }
        raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        body = _MAGIC + _HEADER_LEN.pack(len(raw)) + raw + self.increment
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> DeferredState:
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _HEADER_LEN.size + 32:
            raise _corrupt("không phải trạng thái ký hoãn")
        body, check = data[:-32], data[-32:]
        if hashlib.sha256(body).digest() != check:
            raise _corrupt("mã kiểm tra không khớp")
        at = len(_MAGIC)
        (n,) = _HEADER_LEN.unpack_from(body, at)
        at += _HEADER_LEN.size
        try:
            h: dict[str, Any] = json.loads(body[at:at + n].decode("utf-8"))
            if h.get("v") != _VERSION:
                raise _corrupt(f"phiên bản {h.get('v')!r}")
            return cls(
                id=str(h["id"]), record_id=str(h["record_id"]), field_name=str(h["field_name"]),
                created_at=datetime.fromisoformat(h["created_at"]),
                expires_at=datetime.fromisoformat(h["expires_at"]),
                record_sha256=str(h["record_sha256"]), record_length=int(h["record_length"]),
                expected_data_sha256=h["expected_data_sha256"],
                digest_algorithm=str(h["digest_algorithm"]),
                signature_mechanism=h["signature_mechanism"],
                cert=_unb64(h["cert"]), chain=tuple(_unb64(c) for c in h["chain"]),
                signed_attrs=_unb64(h["signed_attrs"]),
                document_digest=bytes.fromhex(h["document_digest"]),
                reserved_start=int(h["reserved_start"]), reserved_end=int(h["reserved_end"]),
                increment=body[at + n:],
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise _corrupt(f"đầu mục: {exc}") from None


@dataclass(frozen=True)
class PreparedSignature:
    """What ``prepare`` returns: the client's part, and the state the server keeps.

    The client signs :attr:`to_be_signed` with :attr:`signature_mechanism` over
    :attr:`digest_algorithm` — with PKCS#11, mechanism :attr:`pkcs11_mechanism` over the
    bytes themselves; a service that signs hashes (CSC ``signHash``) gets
    :attr:`to_be_signed_digest`. An ECDSA value may come back DER-encoded or as raw
    ``r || s`` (what PKCS#11 tokens return).
    """

    id: str
    record_id: str
    field_name: str
    record_sha256: str
    to_be_signed: bytes
    digest_algorithm: str
    signature_mechanism: Mechanism
    expires_at: datetime
    state: bytes = field(repr=False)

    @property
    def to_be_signed_digest(self) -> bytes:
        return hashlib.sha256(self.to_be_signed).digest()

    @property
    def pkcs11_mechanism(self) -> str:
        """Name of the python-pkcs11 ``Mechanism`` (``CKM_…`` without the prefix)."""
        return _PKCS11_MECHANISM[self.signature_mechanism]

    def for_client(self) -> dict[str, str]:
        """JSON for the signing agent. The state is not in it: it stays on the server."""
        return {
            "id": self.id, "record_id": self.record_id, "field_name": self.field_name,
            "to_be_signed": _b64(self.to_be_signed),
            "to_be_signed_sha256": self.to_be_signed_digest.hex(),
            "digest_algorithm": self.digest_algorithm,
            "signature_mechanism": self.signature_mechanism,
            "pkcs11_mechanism": self.pkcs11_mechanism,
            "expires_at": self.expires_at.isoformat(),
        }


class DeferredSigner:
    """Both halves of deferred signing, on top of one :class:`RecordSigner`.

    The record signer supplies the rules (one ``check_can_sign`` for both paths), the stamp
    and metadata (``pdf_signer_for``), the event loop and the TSA client. Not thread-safe,
    like the record signer. ``clock`` decides expiry; it defaults to the environment's.
    """

    def __init__(self, signer: RecordSigner, *, ttl: timedelta = DEFAULT_TTL,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.signer = signer
        self.ttl = ttl
        self.clock = clock or signer.env.clock
        self._reserved: dict[str, int] = {}  # cert fingerprint → hex digits to reserve
        # (record SHA-256, field, expected data lock) → the field, for records whose checks
        # drawn from the file itself passed at preparation: see complete().
        self._file_checked: dict[tuple[str, str, str | None], FieldAssignment] = {}

    # -- first half -----------------------------------------------------------------------
    def prepare(self, pdf: bytes, field_name: str, signer_cert: x509.Certificate,
                chain: list[x509.Certificate], *, expected_data_sha256: str | None = None
                ) -> PreparedSignature:
        """Check, build the new revision, and return what the client's key must sign.

        Every refusal happens here, before any byte goes to the client: a teacher is never
        asked to sign what would be rejected.
        """
        # 1. The same rules as a server signature, in the same order.
        record_state, target = self.signer.check_can_sign(pdf, field_name, signer_cert, chain,
                                                          expected_data_sha256=expected_data_sha256)
        record_sha256 = hashlib.sha256(pdf).hexdigest()
        self._remember(record_sha256, field_name, expected_data_sha256, target)
        mechanism = _mechanism_for(signer_cert)
        now = self.clock()
        # 2. The signer pyHanko drives: it knows the certificate and the size of a
        #    signature, never a signature value (that arrives in the second half).
        ext = ExternalSigner(signer_cert, SimpleCertificateStore.from_certs(chain),
                             signature_value=_max_signature_len(signer_cert))
        name = SigningKey("external", ext, signer_cert, chain).subject_name
        pdf_signer = self.signer.pdf_signer_for(record_state, target, ext, name, now)
        fp = fingerprint(signer_cert)

        async def _prepare() -> tuple[PreparedByteRangeDigest, bytes, cms.CMSAttributes]:
            # pyHanko's async_digest_doc_for_signing, step by step, to size tightly.
            session = pdf_signer.init_signing_session(_writer(pdf), existing_fields_only=True)
            info = await session.perform_presign_validation(session.pdf_out)
            reserved = self._reserved.get(fp)
            if reserved is None:
                tight = await session.estimate_signature_container_size(info, tight=True)
                reserved = self._reserved[fp] = tight + 2 * _RESERVE_MARGIN
            tbs = session.prepare_tbs_document(validation_info=info, bytes_reserved=reserved)
            digest, output = tbs.digest_tbs_document()
            # 3. The signed attributes, as PdfTBSDocument.perform_signature would make them.
            attrs = await ext.signed_attrs(
                digest.document_digest, session.md_algorithm,
                attr_settings=PdfCMSSignedAttributes(
                    signing_time=session.system_time,
                    cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec),
                use_pades=session.use_pades, timestamper=session.timestamper)
            output.seek(0)
            return digest, output.read(), attrs

        digest, prepared, attrs = self.signer.run(_prepare())
        # 4. Keep only what the record does not already hold.
        start, end = digest.reserved_region_start, digest.reserved_region_end
        if not prepared.startswith(pdf) or start < len(pdf):
            raise SigningError("pyHanko's incremental update did not keep the record as prefix")
        if prepared[start:end] != b"<" + b"0" * (end - start - 2) + b">":
            raise SigningError("signature placeholder not where pyHanko said it was")
        increment = prepared[len(pdf):start] + prepared[end:]
        tbs = attrs.dump()
        ds = DeferredState(
            id=secrets.token_hex(16), record_id=record_state.record_id, field_name=field_name,
            created_at=now, expires_at=now + self.ttl,
            record_sha256=record_sha256, record_length=len(pdf),
            expected_data_sha256=expected_data_sha256, digest_algorithm=DIGEST_ALGORITHM,
            signature_mechanism=mechanism, cert=signer_cert.dump(),
            chain=tuple(c.dump() for c in chain), signed_attrs=tbs,
            document_digest=digest.document_digest, reserved_start=start, reserved_end=end,
            increment=increment)
        return PreparedSignature(
            id=ds.id, record_id=ds.record_id, field_name=field_name,
            record_sha256=ds.record_sha256, to_be_signed=tbs, digest_algorithm=DIGEST_ALGORITHM,
            signature_mechanism=mechanism, expires_at=ds.expires_at, state=ds.to_bytes())

    def _remember(self, record_sha256: str, field_name: str, expected: str | None,
                  target: FieldAssignment) -> None:
        if len(self._file_checked) >= _FILE_CHECKS_KEPT:
            self._file_checked.pop(next(iter(self._file_checked)))  # the oldest
        self._file_checked[(record_sha256, field_name, expected)] = target

    # -- second half ----------------------------------------------------------------------
    def complete(self, state: bytes | DeferredState, signature_value: bytes, *,
                 record: bytes) -> bytes:
        """Embed the client's signature value and a timestamp; return the signed record.

        ``record`` is the record as it is stored now. Nothing is written anywhere: on any
        refusal the caller still has the unchanged record (and may retry with the same
        state until it expires).
        """
        ds = state if isinstance(state, DeferredState) else DeferredState.from_bytes(state)
        # 1. Still in time.
        if self.clock() > ds.expires_at:
            raise SigningRefused(
                f"Phiên chuẩn bị ký đã hết hạn lúc "
                f"{ds.expires_at.astimezone(VN_TZ):%H:%M:%S ngày %d/%m/%Y} (GMT+7); "
                "hãy chuẩn bị ký lại.", code="preparation_expired")
        # 2. The record is the one the preparation was built on: a signature that landed in
        #    between would be cut off by ours (an incremental update covers the whole file).
        if hashlib.sha256(record).hexdigest() != ds.record_sha256 or len(record) != ds.record_length:
            raise SigningRefused(
                "Hồ sơ đã thay đổi kể từ khi chuẩn bị ký (có chữ ký khác vừa được thêm); "
                "hãy chuẩn bị ký lại trên phiên bản mới.", code="record_changed")
        # 3. The state is coherent: the digest the attributes commit to is the digest of
        #    the file we are about to complete.
        prepared = ds.prepared_pdf(record)
        attrs = cms.CMSAttributes.load(ds.signed_attrs)
        if _byte_range_digest(prepared, ds) != ds.document_digest or (
                _message_digest(attrs) != ds.document_digest):
            raise _corrupt("mã băm tài liệu không khớp")
        cert = x509.Certificate.load(ds.cert)
        chain = [x509.Certificate.load(c) for c in ds.chain]
        # 4. The value is a signature by this certificate's key over these attributes.
        value = _verify_signature_value(cert, ds.signature_mechanism, ds.signed_attrs,
                                        signature_value)
        # 5. The rules again: the record bytes are the same, but bindings, revocation and
        #    time may have moved (revocation is cached per batch, as for server signing).
        #    What the file itself decides (data lock, field, plan order, form lock) is a
        #    function of its bytes: when this process checked these very bytes at preparation,
        #    only the certificate is judged again — no second parse of the record.
        target = self._file_checked.get((ds.record_sha256, ds.field_name, ds.expected_data_sha256))
        if target is None:
            self.signer.check_can_sign(record, ds.field_name, cert, chain,
                                       expected_data_sha256=ds.expected_data_sha256)
        else:
            self.signer.check_certificate_for(cert, chain, target)
        # 6. CMS with the signature timestamp (B-T), into the reserved space.
        ext = ExternalSigner(cert, SimpleCertificateStore.from_certs(chain), signature_value=value)
        signed_cms = self.signer.run(ext.async_sign_prescribed_attributes(
            ds.digest_algorithm, attrs, timestamper=self.signer.timestamper))
        der = signed_cms.dump()
        if 2 * len(der) > ds.reserved_hex_digits:
            raise SigningError(f"CMS of {len(der)} bytes does not fit the "
                               f"{ds.reserved_hex_digits // 2} reserved")
        out = io.BytesIO(prepared)
        PreparedByteRangeDigest(ds.document_digest, ds.reserved_start,
                                ds.reserved_end).fill_with_cms(out, der)
        return out.getvalue()


_FILE_CHECKS_KEPT = 4096
"""Preparations remembered per process: a few classes' worth; older ones are parsed again."""


def _byte_range_digest(prepared: bytes, ds: DeferredState) -> bytes:
    h = hashlib.new(ds.digest_algorithm)
    h.update(memoryview(prepared)[:ds.reserved_start])
    h.update(memoryview(prepared)[ds.reserved_end:])
    return h.digest()


def _message_digest(attrs: cms.CMSAttributes) -> bytes | None:
    for attr in attrs:
        if attr["type"].native == "message_digest":
            return bytes(attr["values"][0].native)
    return None


def _verify_signature_value(cert: x509.Certificate, mechanism: Mechanism, tbs: bytes,
                            value: bytes) -> bytes:
    """Return the value to embed (ECDSA normalised to DER) or refuse it.

    Checked here because nothing downstream would: pyHanko embeds whatever bytes it is
    given, and a record carrying a broken signature in a teacher's field could not be
    signed again in that field.
    """
    key = pyca_x509.load_der_x509_certificate(cert.dump()).public_key()
    algo = hashes.SHA256()
    candidates = [value]
    try:
        if isinstance(key, rsa.RSAPublicKey) and mechanism == "rsassa_pkcs1v15":
            key.verify(value, tbs, padding.PKCS1v15(), algo)
            return value
        if isinstance(key, ec.EllipticCurvePublicKey) and mechanism == "ecdsa":
            n = (key.curve.key_size + 7) // 8
            if len(value) == 2 * n:  # raw r || s from a PKCS#11 token
                candidates.insert(0, encode_dss_signature(int.from_bytes(value[:n], "big"),
                                                          int.from_bytes(value[n:], "big")))
            for der in candidates:
                try:
                    key.verify(der, tbs, ec.ECDSA(algo))
                    return der
                except (InvalidSignature, ValueError):
                    continue
    except (InvalidSignature, ValueError):
        pass
    raise SigningRefused(
        "Giá trị chữ ký gửi về không khớp với chứng thư số và dữ liệu đã chuẩn bị "
        "(sai khoá, sai dữ liệu hoặc bị sửa); không nhúng vào hồ sơ.", code="bad_signature_value")
