"""Two measured speed-ups for the libraries verification spends its time in.

1. A faster hex-string reader for pyHanko's PDF parser.

pyHanko reads a PDF hex string one token at a time in Python. Each signature's /Contents
is a hex string of 15–25 thousand digits, so a record with 15 signatures spends a large
part of every signing step and every verification just tokenising them. This reader
finds the closing '>' with one search, drops whitespace with one translate, and decodes
with binascii: the same result and the same errors, measured several times faster.
2. A cache for asn1crypto's name string preparation (see :func:`_cached_prep`).

Installed once, on import of :mod:`hsdt.signing`; `tests/test_speedups.py` checks both
against the originals.
"""

from __future__ import annotations

import binascii
import functools
import re
from typing import IO, cast

from asn1crypto import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError

_original = generic.read_hex_string_from_stream
_WHITESPACE = b" \t\r\n\x0c\x00"
_HEX = re.compile(rb"[0-9A-Fa-f]*")
_CHUNK = 1 << 16


def read_hex_string_from_stream(stream: IO[bytes]) -> generic.ByteStringObject | generic.TextStringObject:
    stream.read(1)  # the opening '<'
    start = stream.tell()
    parts: list[bytes] = []
    consumed = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            raise PdfStreamError("Unexpected end of stream in hex string")
        end = chunk.find(b">")
        if end >= 0:
            parts.append(chunk[:end])
            consumed += end
            break
        parts.append(chunk)
        consumed += len(chunk)
    stream.seek(start + consumed + 1)
    digits = b"".join(parts).translate(None, _WHITESPACE)
    if not _HEX.fullmatch(digits):
        bad = re.search(rb"[^0-9A-Fa-f]", digits)
        raise PdfStreamError("Unexpected token in hex string: "
                             + repr(bad.group(0) if bad else digits[:1]))
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


_original_prep = x509.NameTypeAndValue._ldap_string_prep


@functools.lru_cache(maxsize=16384)
def _ldap_string_prep(value: str) -> str:
    return cast(str, _original_prep(None, value))


def _cached_prep(self: x509.NameTypeAndValue, value: str) -> str:
    """RFC 4518 string preparation of a name attribute, cached by value.

    asn1crypto caches it per parsed object only, and verification parses the same few
    certificates again for every signature (from each CMS, from the DSS): comparing the
    issuer names of Vietnamese certificates (NFKC normalisation, character tables) was a
    tenth of a record's verification. The function is pure (it does not read ``self``).
    """
    return _ldap_string_prep(value)


def install() -> None:
    generic.read_hex_string_from_stream = read_hex_string_from_stream  # type: ignore[assignment]
    x509.NameTypeAndValue._ldap_string_prep = _cached_prep  # type: ignore[method-assign]
