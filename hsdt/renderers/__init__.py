"""Records → deterministic PDF/A-3b with empty signature fields, source data and XMP.

Public face of the package::

    render_record(record, plan) -> bytes          # one record, shared default renderer
    Renderer().render(record, plan) -> bytes       # reuse for many records (a class)
    Renderer().render_layout(record, plan)         # + where each signature field sits
    verify_url(base, record_id) -> str             # the URL the page's QR code carries

Each of them takes ``verify_base_url`` (default: ``HSDT_VERIFY_BASE_URL``, else
``https://hsdt.example.vn``): the base of the public verification URL in the QR code.

Reading a rendered record back lives in :mod:`hsdt.renderers.metadata`
(``read_record_metadata``, ``embedded_files``, ``associated_files``, ``signature_fields``).
Everything else in this package is internal.
"""

from __future__ import annotations

import threading

from hsdt.domain.plans import ResolvedPlan
from hsdt.domain.records import Record
from hsdt.renderers._qr import DEFAULT_VERIFY_BASE_URL, VERIFY_BASE_URL_ENV, verify_url
from hsdt.renderers._renderer import (
    PDF_VARIANT,
    RECORD_JSON,
    RECORD_XML,
    RenderedRecord,
    Renderer,
    SignatureBox,
    record_metadata,
)
from hsdt.renderers._xml import RECORD_XML_NS, parse_record_xml, record_xml
from hsdt.renderers.metadata import (
    associated_files,
    embedded_files,
    read_record_metadata,
    signature_fields,
)

__all__ = [
    "DEFAULT_VERIFY_BASE_URL",
    "PDF_VARIANT",
    "RECORD_JSON",
    "RECORD_XML",
    "RECORD_XML_NS",
    "VERIFY_BASE_URL_ENV",
    "RenderedRecord",
    "Renderer",
    "SignatureBox",
    "associated_files",
    "default_renderer",
    "embedded_files",
    "parse_record_xml",
    "read_record_metadata",
    "record_metadata",
    "record_xml",
    "render_record",
    "signature_fields",
    "verify_url",
]

_default: Renderer | None = None
_default_lock = threading.Lock()


def default_renderer() -> Renderer:
    """The process-wide renderer: building one costs a stylesheet parse and font loading."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Renderer()
        return _default


def render_record(record: Record, plan: ResolvedPlan, *,
                  verify_base_url: str | None = None) -> bytes:
    """The record as PDF/A-3b bytes: same record, plan and verification base URL, same bytes."""
    return default_renderer().render(record, plan, verify_base_url=verify_base_url)
