"""Reading a rendered record back: XMP properties, embedded files, signature fields.

Verification code (archive ingest, the public verifier, tests) imports these instead of
re-implementing PDF parsing; they read any revision, including one pyHanko has signed and
whose XMP it has re-serialised (properties may then be written as attributes or elements,
with other prefixes: everything here is matched by namespace URI, never by prefix).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pikepdf
from lxml import etree
from pikepdf.models.metadata import decode_pdf_date

from hsdt.renderers._xmp import (
    HSDT_PREFIX,
    NS_DC,
    NS_HSDT,
    NS_PDF,
    NS_PDFAID,
    NS_RDF,
    NS_XMP,
)

PREFIXES = {NS_PDFAID: "pdfaid", NS_DC: "dc", NS_XMP: "xmp", NS_PDF: "pdf", NS_HSDT: HSDT_PREFIX}


@dataclass(frozen=True)
class AssociatedFile:
    """A file listed in the catalog /AF (PDF/A-3 associated file)."""

    name: str
    relationship: str  # e.g. "Source"
    mime_type: str  # e.g. "application/json"
    data: bytes


@dataclass(frozen=True)
class SignatureFieldInfo:
    name: str
    page: int  # index, 0-based
    rect: tuple[float, float, float, float]  # PDF points, normalised x1 < x2, y1 < y2
    tooltip: str
    signed: bool
    flags: int


def register_xmp_namespace() -> None:
    """Make lxml (which pyHanko uses to re-serialise XMP when it signs) write the hsdt schema
    with its declared prefix ``hsdt`` instead of ``ns0``: PDF/A extension schemas are
    declared with a prefix, and validators compare it."""
    etree.register_namespace(HSDT_PREFIX, NS_HSDT)


# At import: whoever reads records with this module usually also signs them with pyHanko.
register_xmp_namespace()


def _open(pdf: bytes) -> pikepdf.Pdf:
    return pikepdf.Pdf.open(io.BytesIO(pdf))


def xmp_bytes(pdf: bytes) -> bytes:
    """The raw XMP packet of the catalog /Metadata stream."""
    with _open(pdf) as doc:
        return _xmp_of(doc)


def _xmp_of(doc: pikepdf.Pdf) -> bytes:
    if "/Metadata" not in doc.Root:
        raise ValueError("the PDF has no XMP metadata (catalog /Metadata)")
    return bytes(doc.Root.Metadata.read_bytes())


def xmp_properties(pdf: bytes) -> dict[str, str]:
    """Simple XMP properties keyed ``prefix:name`` for the known schemas (pdfaid, dc, xmp,
    pdf, hsdt). Language alternatives and sequences give their first entry."""
    return _properties(xmp_bytes(pdf))


def read_record_metadata(pdf: bytes) -> dict[str, str]:
    """The hsdt XMP fields (documentId, kind, studentCode, schoolCode, schoolName,
    schoolYear, dataSha256, bundleSha256), keyed without prefix."""
    return _record_fields(xmp_bytes(pdf))


def _record_fields(packet: bytes) -> dict[str, str]:
    prefix = HSDT_PREFIX + ":"
    return {k[len(prefix):]: v for k, v in _properties(packet).items() if k.startswith(prefix)}


def _properties(packet: bytes) -> dict[str, str]:
    start = packet.find(b"<x:xmpmeta")
    if start < 0:
        start = packet.find(b"<rdf:RDF")
    end_tag = packet.rfind(b"</x:xmpmeta>")
    body = packet[start:end_tag + len(b"</x:xmpmeta>")] if end_tag > 0 else packet[start:]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(body, parser=parser)
    out: dict[str, str] = {}
    for desc in root.iter(f"{{{NS_RDF}}}Description"):
        for attr, value in desc.attrib.items():
            key = _key(attr)
            if key:
                out.setdefault(key, value)
        for child in desc:
            if not isinstance(child.tag, str):
                continue
            key = _key(child.tag)
            if key:
                out.setdefault(key, _simple_value(child))
    return out


def _key(tag: str) -> str | None:
    q = etree.QName(tag)
    prefix = PREFIXES.get(q.namespace or "")
    return f"{prefix}:{q.localname}" if prefix else None


def _simple_value(el: Any) -> str:
    li = el.find(f".//{{{NS_RDF}}}li")
    if li is not None:
        return str(li.text or "")
    return str(el.text or "")


def embedded_files(pdf: bytes) -> dict[str, bytes]:
    """Every file in the /EmbeddedFiles name tree, by name."""
    with _open(pdf) as doc:
        return _files_of(doc)


def _files_of(doc: pikepdf.Pdf) -> dict[str, bytes]:
    return {name: bytes(spec.get_file().read_bytes()) for name, spec in doc.attachments.items()}


@dataclass(frozen=True)
class PdfaClaims:
    """The PDF/A part and conformance a file claims in its XMP, and every document Info
    entry that disagrees with its XMP counterpart (a PDF/A reader requires them equal)."""

    part: str | None
    conformance: str | None
    mismatches: tuple[str, ...]


@dataclass(frozen=True)
class RecordContents:
    """What a record says about itself outside its signatures: its embedded files by name,
    its hsdt XMP fields (as :func:`read_record_metadata`), its PDF/A claims."""

    files: dict[str, bytes]
    fields: dict[str, str]
    pdfa: PdfaClaims


def read_record_contents(pdf: bytes) -> RecordContents:
    """:func:`embedded_files`, :func:`read_record_metadata` and the PDF/A claims, from one
    reading of the file (each of them opens it: a few milliseconds per record)."""
    with _open(pdf) as doc:
        return RecordContents(_files_of(doc), _record_fields(_xmp_of(doc)), _pdfa_claims(doc))


def _pdfa_claims(doc: pikepdf.Pdf) -> PdfaClaims:
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
    for info_key, xmp_key in (("/ModDate", "xmp:ModifyDate"), ("/CreationDate", "xmp:CreateDate")):
        iv, xv = info.get(info_key), meta.get(xmp_key)
        if not _same_instant(iv, xv):
            mismatches.append(f"{info_key} «{iv}» ≠ {xmp_key} «{xv}»")
    return PdfaClaims(str(part) if part is not None else None,
                      str(conf) if conf is not None else None, tuple(mismatches))


def _same_instant(info_date: Any, xmp_date: Any) -> bool:
    if info_date is None or xmp_date is None:
        return info_date is None and xmp_date is None
    try:
        a = decode_pdf_date(str(info_date))
        b = datetime.fromisoformat(str(xmp_date))
    except ValueError:
        return False
    return abs((a - b).total_seconds()) < 1


def associated_files(pdf: bytes) -> list[AssociatedFile]:
    """The files the catalog /AF lists, in order (a PDF/A-3 reader's view of the data)."""
    out: list[AssociatedFile] = []
    with _open(pdf) as doc:
        for spec in doc.Root.get("/AF", pikepdf.Array()):
            stream = spec.EF.F
            subtype = str(stream.get("/Subtype", "/application/octet-stream"))[1:]
            name = str(spec.get("/UF", spec.get("/F", "")))
            rel = str(spec.get("/AFRelationship", "/Unspecified"))[1:]
            out.append(AssociatedFile(name, rel, subtype, bytes(stream.read_bytes())))
    return out


def signature_fields(pdf: bytes) -> dict[str, SignatureFieldInfo]:
    """Signature fields of the AcroForm (merged field/widget dictionaries), by full name."""
    out: dict[str, SignatureFieldInfo] = {}
    with _open(pdf) as doc:
        pages = {p.obj.objgen: i for i, p in enumerate(doc.pages)}
        form = doc.Root.get("/AcroForm")
        if form is None:
            return out
        for field in form.get("/Fields", pikepdf.Array()):
            if field.get("/FT") != pikepdf.Name.Sig:
                continue
            x1, y1, x2, y2 = (float(v) for v in field.Rect)
            page_ref = field.get("/P")
            out[str(field.T)] = SignatureFieldInfo(
                name=str(field.T),
                page=pages.get(page_ref.objgen, -1) if page_ref is not None else -1,
                rect=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)),
                tooltip=str(field.get("/TU", "")),
                signed="/V" in field,
                flags=int(field.get("/F", 0)),
            )
    return out
