"""The fast hex-string reader gives exactly what pyHanko's own reader gives."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.misc import PdfStreamError

from hsdt.signing import _speedups


@pytest.mark.parametrize("raw", [
    b"<48656c6c6f> rest", b"<>", b"<4 8\n65\r\n6C\t6c 6F>", b"<ABC>", b"<" + b"00" * 70_000 + b">x",
    b"<feff00480069>",
])
def test_same_result_and_position(raw: bytes) -> None:
    a, b = io.BytesIO(raw), io.BytesIO(raw)
    assert _speedups.read_hex_string_from_stream(a) == _speedups._original(b)
    assert a.tell() == b.tell()


@pytest.mark.parametrize("raw", [b"<48zz>", b"<4865"])
def test_same_errors(raw: bytes) -> None:
    for reader in (_speedups.read_hex_string_from_stream, _speedups._original):
        with pytest.raises(PdfStreamError):
            reader(io.BytesIO(raw))


@pytest.mark.parametrize("value", ["Nguyễn Thị Thư", "  HSDT   Test  Root CA ", "ÅNGSTRÖM", "Ｈｏàng"])
def test_name_preparation_is_the_original(value: str) -> None:
    from asn1crypto import x509

    assert _speedups._cached_prep(x509.NameTypeAndValue(), value) == _speedups._original_prep(None, value)
