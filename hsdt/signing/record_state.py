"""What a record PDF says about itself: its data, its data lock, its plan and who signed.

Read fresh from the bytes every time, because the PDF is the only source of truth that
travels with the record: a signing step, the seal and the verifier all start here.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import SigningRefused, UnusableInput
from hsdt.domain.plans import ResolvedPlan, resolve_plan
from hsdt.domain.subjects import subjects_for
from hsdt.renderers.metadata import PdfaClaims, read_record_contents
from hsdt.settings import plan_for

DATA_FILE = "record.json"


@dataclass(frozen=True)
class RecordState:
    reader: PdfFileReader
    data: dict[str, Any]
    data_bytes: bytes
    data_sha256: str  # computed from the embedded bytes
    xmp: dict[str, str]
    plan: ResolvedPlan
    field_names: tuple[str, ...]
    filled_fields: tuple[str, ...]  # signature fields that hold a value (signed or stamped)
    pdfa: PdfaClaims

    @property
    def record_id(self) -> str:
        return str(self.data.get("record_id", ""))

    @property
    def lock_matches(self) -> bool:
        return self.data_sha256 == self.xmp.get("dataSha256") and (
            self.data.get("bundle_lock", {}).get("sha256") == self.xmp.get("bundleSha256"))

    @cached_property
    def _all_signatures(self) -> list[EmbeddedPdfSignature]:
        return list(self.reader.embedded_signatures)  # parses every CMS: read once

    @property
    def signatures(self) -> list[EmbeddedPdfSignature]:
        """Approval and certification signatures in file order."""
        return [s for s in self._all_signatures if s.sig_object_type != "/DocTimeStamp"]

    @property
    def doc_timestamps(self) -> list[EmbeddedPdfSignature]:
        return [s for s in self._all_signatures if s.sig_object_type == "/DocTimeStamp"]

    def release(self) -> None:
        """Let go of everything parsed from the file, once nothing more will be read.

        pyHanko's reader, its view of each revision and each signature refer to one another,
        and through their caches to the tens of thousands of objects a verification parses
        (each object refers back to its reader). Such cycles are freed only by a full
        garbage collection, which also walks everything else alive: one every few records,
        up to a tenth of an archive's ingest time. Emptying the reader, its revision views
        and the signatures breaks every cycle, so the objects go by reference counting as
        soon as the verification's frames do. The state is unusable afterwards.
        """
        reader = self.reader
        # The signatures are the reader's own list (``_all_signatures`` copies it).
        holders: list[object] = [*(getattr(reader, "_embedded_signatures", None) or ()),
                                 *getattr(reader, "_historical_resolver_cache", {}).values(),
                                 reader.xrefs, reader]
        for holder in holders:
            vars(holder).clear()


def read_record(pdf: bytes) -> RecordState:
    """Parse a record PDF; raise :class:`UnusableInput` if it is not one of ours at all."""
    if not pdf.startswith(b"%PDF-"):
        raise UnusableInput("Tệp không phải PDF.")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        contents = read_record_contents(pdf)
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnusableInput(f"Không đọc được tệp PDF: {exc}") from exc
    raw, xmp = contents.files.get(DATA_FILE), contents.fields
    if raw is None:
        raise UnusableInput("PDF không chứa dữ liệu hồ sơ (record.json): không phải hồ sơ HSĐT.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableInput(f"Dữ liệu hồ sơ nhúng trong PDF bị hỏng: {exc}") from exc
    try:
        spec = plan_for(data["kind"])
        names = {s.code: s.name for s in subjects_for(data["level"]).values()}
        plan = resolve_plan(spec, data, names)
    except (KeyError, TypeError) as exc:
        raise UnusableInput(f"Dữ liệu hồ sơ thiếu thông tin để lập kế hoạch ký: {exc}") from exc
    fields, filled = _signature_fields(reader)
    return RecordState(reader=reader, data=data, data_bytes=raw, data_sha256=sha256_hex(raw),
                       xmp=xmp, plan=plan, field_names=fields, filled_fields=filled,
                       pdfa=contents.pdfa)


def _signature_fields(reader: PdfFileReader) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the signature fields and of those already filled, without parsing any CMS
    (reading every /Contents is most of the cost of a signing step otherwise)."""
    names: list[str] = []
    filled: list[str] = []
    form = reader.root.get("/AcroForm")
    if form is None:
        return (), ()
    for ref in form.get_object().get("/Fields", []):
        fld = ref.get_object()
        if fld.get("/FT") != "/Sig":
            continue
        name = str(fld.get("/T", ""))
        names.append(name)
        if "/V" in fld:
            filled.append(name)
    return tuple(names), tuple(filled)


def require_data_lock(state: RecordState, expected_data_sha256: str | None) -> None:
    """Refuse to sign a record whose embedded data does not match its lock."""
    if not state.lock_matches:
        raise SigningRefused(
            "Dữ liệu nhúng trong hồ sơ không khớp với mã khoá dữ liệu (SHA-256 trong XMP): "
            "hồ sơ đã bị sửa hoặc hỏng, không được ký.", code="data_lock_mismatch")
    if expected_data_sha256 is not None and expected_data_sha256 != state.data_sha256:
        raise SigningRefused(
            "Hồ sơ không được tạo từ bộ dữ liệu đã khoá hiện hành (SHA-256 khác): "
            "dữ liệu đã thay đổi sau khi khoá, cần kết xuất lại.", code="data_lock_mismatch")
