"""The verification QR code printed on a record: the record's public verification URL.

A reader holding the paper (or a PDF printed from it) scans it and gets the public answer —
authentic, current or superseded — without being shown anything the page does not already
show. The code is drawn as one SVG path of whole modules, so WeasyPrint writes it as vector
paths (sharp at any print resolution) and the same URL always gives the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import qrcode
import qrcode.constants
from markupsafe import Markup

from hsdt.domain.errors import HsdtError

VERIFY_BASE_URL_ENV = "HSDT_VERIFY_BASE_URL"
DEFAULT_VERIFY_BASE_URL = "https://hsdt.example.vn"
# Four modules of white around the code, as ISO/IEC 18004 asks: the page around it is
# white too, but the margin must not depend on what the template puts next to it.
QUIET_ZONE = 4


@dataclass(frozen=True)
class VerifyMark:
    """What the template prints: the URL (for the text layer), its host, and the QR code."""

    url: str
    host: str
    svg: Markup


def resolve_verify_base_url(configured: str | None = None) -> str:
    """The base URL of the public verification page: ``configured``, else the environment
    variable ``HSDT_VERIFY_BASE_URL``, else the placeholder default.

    Printed on every record for decades, so it is checked here: http(s), a host, no query or
    fragment (they would be silently cut by many scanners).
    """
    base = (configured or os.environ.get(VERIFY_BASE_URL_ENV) or DEFAULT_VERIFY_BASE_URL).strip()
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise HsdtError(f"Địa chỉ xác minh công khai «{base}» không hợp lệ: cần dạng "
                        "https://tên-miền[/đường-dẫn], không có ?… hay #….", code="config")
    return base.rstrip("/")


def verify_url(base: str, record_id: str) -> str:
    """``{base}/v/{record_id}``: the public verification address of one record."""
    return f"{base}/v/{quote(record_id, safe='')}"


def qr_svg(data: str, *, css_class: str = "qr") -> Markup:
    """``data`` as an inline SVG QR code (error correction M: a smudge or a fold is survived)."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=0)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < n and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    side = n + 2 * QUIET_ZONE
    return Markup(
        f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="-{QUIET_ZONE} -{QUIET_ZONE} {side} {side}" shape-rendering="crispEdges" '
        f'role="img" aria-label="Mã QR xác minh hồ sơ">'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>')


def verify_mark(base: str, record_id: str) -> VerifyMark:
    url = verify_url(base, record_id)
    return VerifyMark(url=url, host=urlsplit(url).netloc, svg=qr_svg(url))
