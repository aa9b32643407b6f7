"""Finishing WeasyPrint's PDF before it is written: fields, metadata, associated files.

Everything happens on WeasyPrint's in-memory object graph (a ``finisher``), so the record is
written once, as one fresh, non-incremental file: there is no second parse and save, and the
first signature later starts from a clean revision.

What is changed and why:

- signature fields: WeasyPrint cannot make them; one empty field per plan field, over the
  border box of the element ``sig-<name>``; PDF/A needs each widget printable (F=4) with a
  normal appearance (an empty form XObject, the same one for every field);
- /AcroForm with /SigFlags 0: pyHanko sets the flags when it signs;
- associated files: the MIME subtypes are set explicitly (WeasyPrint guesses from the system's
  MIME database, which differs between machines) and the catalog /AF lists each filespec
  once (WeasyPrint 70 adds every filespec twice: once from the name tree, once from its
  object scan);
- XMP and the Info dictionary are replaced by ours, which agree field by field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydyf

from hsdt.renderers._xmp import DocInfo

# Annotation flag "Print" (PDF 32000-1, 12.5.3); PDF/A forbids Hidden, Invisible, NoView.
ANNOT_PRINT = 4
PX_TO_PT = 0.75  # 72 points per inch / 96 CSS px per inch


@dataclass(frozen=True)
class FieldPlacement:
    """One signature field to add: where (page, CSS px box) and what to call it."""

    name: str
    tooltip: str
    page: int
    css_box: tuple[float, float, float, float]  # x1, y1, x2, y2 in CSS px, from top-left
    # The plan's final signature locks the whole record (FieldMDP /All, DocMDP P=1). The lock
    # is declared in the form itself: adding it at signing time would be a change that the
    # earlier signatures' modification analysis rejects.
    lock_all: bool = False


def pdf_rect(css_box: Sequence[float], page_height_px: float) -> tuple[float, ...]:
    """CSS px from the top-left → PDF points from the bottom-left, rounded to 0.01 pt so the
    numbers written are short and stable."""
    x1, y1, x2, y2 = css_box
    return (round(x1 * PX_TO_PT, 2), round((page_height_px - y2) * PX_TO_PT, 2),
            round(x2 * PX_TO_PT, 2), round((page_height_px - y1) * PX_TO_PT, 2))


def pdf_date(xmp_date: str) -> str:
    """``2026-01-15T08:00:00+00:00`` → ``D:20260115080000+00'00'`` (same instant, same zone)."""
    date, time = xmp_date[:19].split("T")
    tz = xmp_date[19:]
    zone = "Z" if tz in ("", "Z") else f"{tz[:3]}'{tz[4:6]}'"
    return "D:" + date.replace("-", "") + time.replace(":", "") + zone


class Finisher:
    """The ``finisher`` callable given to ``Document.write_pdf``."""

    def __init__(self, *, fields: Sequence[FieldPlacement], info: DocInfo, xmp: bytes,
                 attachment_types: Mapping[str, str],
                 attachment_descriptions: Mapping[str, str]) -> None:
        self.fields = fields
        self.info = info
        self.xmp = xmp
        self.attachment_types = attachment_types
        self.attachment_descriptions = attachment_descriptions

    def __call__(self, document: Any, pdf: pydyf.PDF) -> None:
        self._associated_files(pdf)
        self._metadata(pdf)
        self._signature_fields(document, pdf)

    # -- associated files -------------------------------------------------------------------
    def _associated_files(self, pdf: pydyf.PDF) -> None:
        seen: set[str] = set()
        for obj in pdf.objects:
            if not isinstance(obj, dict) or obj.get("Type") != "/Filespec":
                continue
            name = obj["UF"].string
            if name not in self.attachment_types:
                raise ValueError(f"unexpected attachment {name!r}")
            seen.add(name)
            stream = _deref(pdf, obj["EF"]["F"])
            stream.extra["Subtype"] = pydyf.name(self.attachment_types[name]).decode("ascii")
            obj["Desc"] = pydyf.String(self.attachment_descriptions.get(name, ""))
            if obj.get("AFRelationship") != "/Source":
                raise ValueError(f"attachment {name!r} lost its /AFRelationship /Source")
        if seen != set(self.attachment_types):
            raise ValueError(f"attachments missing from the PDF: "
                             f"{sorted(set(self.attachment_types) - seen)}")
        af = pdf.catalog.get("AF")
        if af is not None:
            pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(af))

    # -- metadata ---------------------------------------------------------------------------
    def _metadata(self, pdf: pydyf.PDF) -> None:
        meta = _deref(pdf, pdf.catalog["Metadata"])
        meta.stream = [self.xmp]
        # Left uncompressed: XMP is meant to be findable by tools that do not parse PDF.
        meta.compress = False
        meta.extra.pop("Filter", None)
        i = self.info
        pdf.info.clear()
        pdf.info.update({
            "Title": pydyf.String(i.title),
            "Author": pydyf.String(i.author),
            "Subject": pydyf.String(i.subject),
            "Creator": pydyf.String(i.creator),
            "Producer": pydyf.String(i.producer),
            "CreationDate": pydyf.String(pdf_date(i.created)),
            "ModDate": pydyf.String(pdf_date(i.modified)),
        })

    # -- signature fields -------------------------------------------------------------------
    def _signature_fields(self, document: Any, pdf: pydyf.PDF) -> None:
        kids = pdf.pages["Kids"]  # flat: [number, 0, "R", number, 0, "R", …]
        fields = pydyf.Array()
        # One empty appearance for every unsigned field: it draws nothing at any size, and
        # each signature replaces its field's with its own. One object instead of one per
        # field, which every verification of every revision would otherwise parse and walk.
        empty = pydyf.Stream([], pydyf.Dictionary({
            "Type": "/XObject", "Subtype": "/Form", "BBox": pydyf.Array([0, 0, 1, 1]),
            "Resources": pydyf.Dictionary(),
        }))
        if self.fields:
            pdf.add_object(empty)
        for f in self.fields:
            page = pdf.objects[kids[3 * f.page]]
            page_ref = page.reference
            x1, y1, x2, y2 = pdf_rect(f.css_box, document.pages[f.page].height)
            widget = pydyf.Dictionary({
                "Type": "/Annot",
                "Subtype": "/Widget",
                "FT": "/Sig",
                "T": pydyf.String(f.name),
                "TU": pydyf.String(f.tooltip),
                "F": ANNOT_PRINT,
                "Rect": pydyf.Array([x1, y1, x2, y2]),
                "P": page_ref,
                "AP": pydyf.Dictionary({"N": empty.reference}),
            })
            if f.lock_all:
                widget["Lock"] = pydyf.Dictionary({
                    "Type": "/SigFieldLock", "Action": "/All", "P": 1})
            pdf.add_object(widget)
            if "Annots" not in page:
                page["Annots"] = pydyf.Array()
            page["Annots"].append(widget.reference)
            fields.append(widget.reference)
        if fields:
            form = pydyf.Dictionary({"Fields": fields, "SigFlags": 0})
            pdf.add_object(form)
            pdf.catalog["AcroForm"] = form.reference


def _deref(pdf: pydyf.PDF, ref: Any) -> Any:
    """pydyf references are bytes like ``b"12 0 R"``."""
    if isinstance(ref, bytes | str):
        number = int(ref.split()[0])
        return pdf.objects[number]
    return ref
