"""Record → PDF/A-3b bytes: Jinja2 → WeasyPrint → finisher (fields, XMP, associated files).

A :class:`Renderer` holds what is expensive and does not change between records — the Jinja2
environment, the parsed stylesheet and the font configuration with the bundled fonts loaded
— so a worker that renders a class of 40 pays for them once.

Every page carries a QR code with the record's public verification URL,
``{verify_base_url}/v/{record_id}``. The base URL is part of the output: the same record
rendered with another base is another PDF. It comes from the ``verify_base_url`` argument,
else the environment variable ``HSDT_VERIFY_BASE_URL`` (read when the renderer is built),
else ``https://hsdt.example.vn``.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pydyf
import weasyprint
from weasyprint.text.fonts import FontConfiguration

import hsdt
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import ResolvedPlan
from hsdt.domain.records import HOC_BA_THCS, Record
from hsdt.renderers._pdf import FieldPlacement, Finisher, pdf_rect
from hsdt.renderers._qr import resolve_verify_base_url, verify_mark
from hsdt.renderers._view import build_view
from hsdt.renderers._xml import record_xml
from hsdt.renderers._xmp import DocInfo, xmp_packet
from hsdt.settings import TEMPLATES_DIR

PDF_VARIANT = "pdf/a-3b"
RECORD_JSON = "record.json"
RECORD_XML = "record.xml"
ATTACHMENT_TYPES = {RECORD_JSON: "application/json", RECORD_XML: "application/xml"}
ATTACHMENT_DESCRIPTIONS = {
    RECORD_JSON: "Dữ liệu nguồn của hồ sơ (JSON chuẩn hoá, SHA-256 ghi trong XMP hsdt:dataSha256)",
    RECORD_XML: "Dữ liệu nguồn của hồ sơ (XML, urn:hsdt:record:1), cùng nội dung với record.json",
}
PRODUCER = (f"HSĐT {hsdt.__version__} "
            f"(WeasyPrint {weasyprint.__version__}, pydyf {pydyf.__version__})")
CREATOR = f"HSĐT {hsdt.__version__}"


@dataclass(frozen=True)
class _Kind:
    template: str
    stylesheet: str
    title: str  # document title prefix, e.g. "Học bạ trung học cơ sở"


KINDS: dict[str, _Kind] = {
    HOC_BA_THCS: _Kind("hoc_ba_thcs.html", "hoc_ba_thcs.css", "Học bạ trung học cơ sở"),
}


@dataclass(frozen=True)
class SignatureBox:
    """Where a signature field sits: page index, CSS px box (top-left origin) and PDF rect."""

    name: str
    page: int
    css_box: tuple[float, float, float, float]
    rect: tuple[float, float, float, float]  # PDF points, bottom-left origin: x1, y1, x2, y2


@dataclass(frozen=True)
class RenderedRecord:
    """A rendered record and the layout facts a caller may want without re-parsing it."""

    pdf: bytes
    boxes: dict[str, SignatureBox]
    page_size: tuple[float, float]  # points


class Renderer:
    """Renders records; build one per process and reuse it (see module docstring).

    WeasyPrint shares font state between renders, so one renderer renders one record at a
    time (a lock); run several processes for parallelism.
    """

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, *,
                 verify_base_url: str | None = None) -> None:
        self.verify_base_url = resolve_verify_base_url(verify_base_url)
        self._dir = templates_dir.resolve()
        self._base_url = self._dir.as_uri() + "/"
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self._dir)),
            autoescape=True, undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )
        self._font_config = FontConfiguration()
        self._css: dict[str, weasyprint.CSS] = {}
        self._lock = threading.Lock()

    def _stylesheet(self, kind: _Kind) -> weasyprint.CSS:
        css = self._css.get(kind.stylesheet)
        if css is None:
            css = weasyprint.CSS(filename=str(self._dir / kind.stylesheet),
                                 base_url=self._base_url, font_config=self._font_config)
            self._css[kind.stylesheet] = css
        return css

    def html(self, record: Record, plan: ResolvedPlan, *, compact: bool = False,
             verify_base_url: str | None = None) -> str:
        """The page as HTML (for debugging a layout in a browser, with the CSS beside it)."""
        kind = _kind_for(record, plan)
        base = resolve_verify_base_url(verify_base_url) if verify_base_url else self.verify_base_url
        return self._env.get_template(kind.template).render(
            title=_title(kind, record), compact=compact,
            verify=verify_mark(base, record.record_id), **build_view(record, plan))

    def _layout(self, record: Record, plan: ResolvedPlan, kind: _Kind,
                verify_base_url: str | None) -> Any:
        """Lay the page out; when long free texts push it past one page, lay it out again in
        the compact style (only those records pay for a second layout)."""
        for compact in (False, True):
            html = self.html(record, plan, compact=compact, verify_base_url=verify_base_url)
            document = weasyprint.HTML(
                string=html, base_url=self._base_url,
            ).render(font_config=self._font_config, stylesheets=[self._stylesheet(kind)],
                     pdf_variant=PDF_VARIANT)
            if len(document.pages) == 1:
                return document
        raise HsdtError(
            f"Trang học bạ của {record.student.full_name} dài {len(document.pages)} trang A4, "
            "mẫu chỉ cho phép một trang: hãy rút gọn nhận xét, khen thưởng hoặc kết quả hè.",
            code="render_overflow")

    def render(self, record: Record, plan: ResolvedPlan, *,
               verify_base_url: str | None = None) -> bytes:
        """The record as PDF/A-3b bytes; the same record, plan and verification base URL
        always give the same bytes. ``verify_base_url`` overrides the renderer's own."""
        return self.render_layout(record, plan, verify_base_url=verify_base_url).pdf

    def render_layout(self, record: Record, plan: ResolvedPlan, *,
                      verify_base_url: str | None = None) -> RenderedRecord:
        """Like :meth:`render`, plus where each signature field was put."""
        kind = _kind_for(record, plan)
        data_bytes = record.data_bytes
        if sha256_hex(data_bytes) != record.data_sha256:
            # The XMP would then vouch for data the PDF does not carry.
            raise HsdtError("Dữ liệu hồ sơ không khớp SHA-256 đã ghi (hồ sơ bị sửa sau khi cắt?).",
                            code="render_data")
        with self._lock:
            document = self._layout(record, plan, kind, verify_base_url)
            boxes = _signature_boxes(document, plan)
            locked_at = record.data["bundle_lock"]["locked_at"]
            when = datetime.strptime(locked_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            info = _doc_info(kind, record, when)
            hsdt_props = record_metadata(record)
            finisher = Finisher(
                fields=[FieldPlacement(b.name, _tooltip(plan, b.name), b.page, b.css_box,
                                       lock_all=plan.field(b.name).lock_all)
                        for b in boxes.values()],
                info=info, xmp=xmp_packet(info, hsdt_props),
                attachment_types=ATTACHMENT_TYPES,
                attachment_descriptions=ATTACHMENT_DESCRIPTIONS)
            naive = when.replace(tzinfo=None)  # WeasyPrint formats it as D:…Z itself
            attachments = [
                weasyprint.Attachment(file_obj=io.BytesIO(data), name=name,
                                      description=ATTACHMENT_DESCRIPTIONS[name],
                                      created=naive, modified=naive, relationship="Source")
                for name, data in ((RECORD_JSON, data_bytes),
                                   (RECORD_XML, record_xml(record.data)))]
            pdf = document.write_pdf(
                pdf_variant=PDF_VARIANT, attachments=attachments, finisher=finisher,
                # First /ID element: stable per record (survives re-layouts); second: per
                # content (pydyf hashes the objects). Both deterministic.
                pdf_identifier=record.data_sha256[:32].encode("ascii"))
            page = document.pages[0]
            size = (round(page.width * 0.75, 2), round(page.height * 0.75, 2))
        return RenderedRecord(pdf=pdf, boxes=boxes, page_size=size)


def record_metadata(record: Record) -> dict[str, str]:
    """The hsdt XMP properties of a record (what :func:`read_record_metadata` reads back)."""
    d = record.data
    return {
        "documentId": record.record_id,
        "kind": record.kind,
        "studentCode": d["student"]["code"],
        "schoolCode": d["school"]["code"],
        "schoolName": d["school"]["name"],
        "schoolYear": d["school_year"],
        "dataSha256": record.data_sha256,
        "bundleSha256": d["bundle_lock"]["sha256"],
    }


def _kind_for(record: Record, plan: ResolvedPlan) -> _Kind:
    kind = KINDS.get(record.kind)
    if kind is None:
        raise HsdtError(f"Chưa có mẫu in cho loại hồ sơ «{record.kind}».", code="unknown_kind")
    if plan.spec.kind != record.kind:
        raise HsdtError(f"Kế hoạch ký «{plan.spec.kind}» không dành cho hồ sơ «{record.kind}».",
                        code="plan_mismatch")
    return kind


def _title(kind: _Kind, record: Record) -> str:
    d = record.data
    return (f"{kind.title} – {d['student']['full_name']} – lớp {d['class']['name']} – "
            f"năm học {d['school_year']}")


def _doc_info(kind: _Kind, record: Record, when: datetime) -> DocInfo:
    d = record.data
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return DocInfo(
        title=_title(kind, record),
        author=d["school"]["name"],
        subject=(f"{kind.title}, năm học {d['school_year']}: học sinh {d['student']['full_name']}"
                 f" (mã định danh {d['student']['code']}), {d['school']['name']}"),
        creator=CREATOR, producer=PRODUCER, created=stamp, modified=stamp)


def _tooltip(plan: ResolvedPlan, name: str) -> str:
    f = plan.field(name)
    return f"{f.label}: {f.assignee_name}"


def _signature_boxes(document: Any, plan: ResolvedPlan) -> dict[str, SignatureBox]:
    boxes: dict[str, SignatureBox] = {}
    for f in plan.fields:
        anchor = f"sig-{f.name}"
        for i, page in enumerate(document.pages):
            if anchor in page.anchors:
                x1, y1, x2, y2 = (float(v) for v in page.anchors[anchor])
                rect = pdf_rect((x1, y1, x2, y2), page.height)
                boxes[f.name] = SignatureBox(f.name, i, (x1, y1, x2, y2),
                                             (rect[0], rect[1], rect[2], rect[3]))
                break
        else:
            raise HsdtError(f"Mẫu in không có ô chữ ký «{anchor}» cho trường «{f.name}».",
                            code="render_layout")
    return boxes
