"""Records → deterministic PDF/A-3b with empty signature fields, source data and XMP.

Public face of the package::

    render_record(record, plan) -> bytes          # one record, shared default renderer
    Renderer().render(record, plan) -> bytes       # reuse for many records (a class)
    Renderer().render_layout(record, plan)         # + where each signature field sits

Reading a rendered record back lives in :mod:`hsdt.renderers.metadata`
(``read_record_metadata``, ``embedded_files``, ``associated_files``, ``signature_fields``).
Everything else in this package is internal.
"""

from __future__ import annotations

import threading

from hsdt.domain.plans import ResolvedPlan
from hsdt.domain.records import Record
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
    "PDF_VARIANT",
    "RECORD_JSON",
    "RECORD_XML",
    "RECORD_XML_NS",
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


def render_record(record: Record, plan: ResolvedPlan) -> bytes:
    """The record as PDF/A-3b bytes: same record and plan, same bytes."""
    return default_renderer().render(record, plan)
