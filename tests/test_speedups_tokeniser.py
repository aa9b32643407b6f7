"""The tokeniser's speed-ups (:mod:`hsdt.signing._speedups`, 1b) give what pyHanko's own
functions give: the same value, the same position after, the same errors — on crafted
input at every chunk boundary, on arbitrary bytes, and on every object of real records."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import ObjStreamRef

from hsdt.signing import _speedups

_WS = misc.PDF_WHITESPACE
_CLASSES = [misc.PDF_WHITESPACE, misc.PDF_WHITESPACE + misc.PDF_DELIMITERS]


def _outcome(fn: Callable[[io.BytesIO], Any], data: bytes) -> tuple[Any, int | None]:
    """What ``fn`` returns (or raises, by type and message) and where it leaves the stream."""
    stream = io.BytesIO(data)
    try:
        result: Any = fn(stream)
    except Exception as exc:  # the errors are what is compared
        return (type(exc).__name__, str(exc)), stream.tell()
    return result, stream.tell()


def _same_outcome(ours: Callable[[io.BytesIO], Any], theirs: Callable[[io.BytesIO], Any],
                  data: bytes) -> None:
    assert _outcome(ours, data) == _outcome(theirs, data), data


# Inputs around the 64-byte chunks the speed-ups read, with comments and the end of stream.
_EDGES = [b"", b"x", b" ", b"  \n\r\t\x0c\x00 x", b"%c\n  y", b" %a\r\n%b\n\tz", b" " * 63 + b"q",
          b" " * 64 + b"q", b" " * 65 + b"q", b" " * 200, b" " * 130 + b"%c\n" + b" " * 70 + b"r",
          b"abc def", b"a" * 63 + b" ", b"a" * 64 + b"/", b"a" * 65 + b"(", b"a" * 300,
          b"12.5 0 R", b"-3]", b"+.5>", b"1" * 70 + b" ", b"1" * 128, b"Name#20x/", b"A#4", b"\xe9t"]


@pytest.mark.parametrize("data", _EDGES)
@pytest.mark.parametrize("seek_back", [False, True])
@pytest.mark.parametrize("allow_eof", [False, True])
def test_read_non_whitespace(data: bytes, seek_back: bool, allow_eof: bool) -> None:
    _same_outcome(lambda s: _speedups.read_non_whitespace(s, seek_back, allow_eof),
                  lambda s: _speedups._original_read_non_whitespace(s, seek_back, allow_eof), data)


@pytest.mark.parametrize("data", _EDGES)
@pytest.mark.parametrize("classes", _CLASSES, ids=["whitespace", "delimiters"])
@pytest.mark.parametrize("maxchars", [None, 0, 1, 5, 64, 65, 100])
def test_read_until_class(data: bytes, classes: bytes, maxchars: int | None) -> None:
    _same_outcome(lambda s: _speedups._read_until_class(classes, s, maxchars),
                  lambda s: _speedups._original_read_until_class(classes, s, maxchars), data)


@pytest.mark.parametrize("data", _EDGES)
@pytest.mark.parametrize("ignore_eof", [False, True])
@pytest.mark.parametrize("regex", [generic.NumberObject.NumberPattern, re.compile(b"ab")],
                         ids=["number", "other"])
def test_read_until_regex(data: bytes, ignore_eof: bool, regex: re.Pattern[bytes]) -> None:
    _same_outcome(lambda s: _speedups.read_until_regex(s, regex, ignore_eof),
                  lambda s: _speedups._original_read_until_regex(s, regex, ignore_eof), data)


@pytest.mark.parametrize("name", [b"Type", b"Annot", b"A#20B", b"a#2", b"a#zz", b"\xc3\xa9t\xc3\xa9",
                                  b"\xe9", b"x y", b"a(b", b"a/b", b"", b"~!", b"\x7f"])
def test_decode_name(name: bytes) -> None:
    _same_outcome(lambda s: _speedups._decode_name(s.read()),
                  lambda s: _speedups._original_decode_name(s.read()), name)


_TOKENS = st.sampled_from([b" ", b"\n", b"\r\n", b"\x00", b"%note\n", b"/", b"(", b")", b"<",
                           b">", b"[", b"]", b"#", b"12", b".5", b"-", b"R", b"abc", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(data=st.lists(_TOKENS | st.binary(max_size=3), max_size=60).map(b"".join),
       maxchars=st.sampled_from([None, 0, 3, 70]))
def test_arbitrary_bytes(data: bytes, maxchars: int | None) -> None:
    _same_outcome(lambda s: _speedups.read_non_whitespace(s, True, True),
                  lambda s: _speedups._original_read_non_whitespace(s, True, True), data)
    for classes in _CLASSES:
        _same_outcome(lambda s, c=classes: _speedups._read_until_class(c, s, maxchars),
                      lambda s, c=classes: _speedups._original_read_until_class(c, s, maxchars),
                      data)
    pattern = generic.NumberObject.NumberPattern
    _same_outcome(lambda s: _speedups.read_until_regex(s, pattern, True),
                  lambda s: _speedups._original_read_until_regex(s, pattern, True), data)
    _same_outcome(lambda s: _speedups._decode_name(s.read()),
                  lambda s: _speedups._original_decode_name(s.read()), data)


@contextmanager
def _pyhankos_own_tokeniser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as m:
        for module in (misc, generic):
            m.setattr(module, "read_non_whitespace", _speedups._original_read_non_whitespace)
            m.setattr(module, "read_until_regex", _speedups._original_read_until_regex)
        m.setattr(misc, "_read_until_class", _speedups._original_read_until_class)
        m.setattr(generic, "_decode_name", _speedups._original_decode_name)
        yield


def _every_object(pdf: bytes) -> list[Any]:
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    return [reader.get_object(ref, rev) for rev in range(reader.xrefs.total_revisions)
            for ref in sorted(reader.xrefs.explicit_refs_in_revision(rev), key=lambda r: r.idnum)]


def test_every_object_of_a_sealed_record_reads_the_same(sealed: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from test_speedups import _same

    ours = _every_object(sealed)
    with _pyhankos_own_tokeniser(monkeypatch):
        theirs = _every_object(sealed)
    assert len(ours) == len(theirs) > 200
    for a, b in zip(ours, theirs, strict=True):
        assert _same(a, b)


# -- object streams: the header read once per stream ------------------------------------------

def _in_object_streams(reader: PdfFileReader) -> list[tuple[int, int, int]]:
    found = []
    for rev in range(reader.xrefs.total_revisions):
        for ref in reader.xrefs.explicit_refs_in_revision(rev):
            marker = reader.xrefs.get_historical_ref(ref, rev)
            if isinstance(marker, ObjStreamRef):
                found.append((ref.idnum, marker.obj_stream_id, marker.ix_in_stream))
    return found


def _result(fn: Callable[..., Any], *args: Any) -> Any:
    """What ``fn(*args)`` returns, or the type and message of what it raises."""
    try:
        return fn(*args)
    except Exception as exc:  # the errors are what is compared
        return (type(exc).__name__, str(exc))


def test_objects_in_object_streams_read_the_same(sealed: bytes) -> None:
    from test_speedups import _same

    ours, theirs = (PdfFileReader(io.BytesIO(sealed), strict=False) for _ in range(2))
    wanted = _in_object_streams(ours)
    assert len(wanted) > 20
    first_id, first_stream = wanted[0][:2]
    for idnum, stmnum, ix in [*wanted, (999_999, first_stream, 0), (first_id, first_stream, 10_000)]:
        a = _result(_speedups.get_object_from_stream, ours, idnum, stmnum, ix)
        b = _result(_speedups._original_from_stream, theirs, idnum, stmnum, ix)
        assert type(a) is type(b) and _same(a, b), (idnum, stmnum, ix)
    assert ours.__dict__[_speedups._OBJSTM_TABLES]  # the headers were read once and kept


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("header", [b"5 0 6 10 7 x", b"5 0 5 10 7 20", b"5 0 6 10", b"5 0 6 1.5 7 20"],
                         ids=["bad_token", "repeated_number", "short", "float_offset"])
def test_an_odd_object_stream_reads_as_in_pyhanko(sealed: bytes, strict: bool, header: bytes) -> None:
    body = b"<</A 1>> " + b"[2 3] " + b"(x) " + b" " * 20
    stream = generic.StreamObject({pdf_name("/Type"): pdf_name("/ObjStm"),
                                   pdf_name("/N"): generic.NumberObject(3),
                                   pdf_name("/First"): generic.NumberObject(len(header) + 1)},
                                  stream_data=header + b" " + body)
    outcomes = []
    for fn in (_speedups.get_object_from_stream, _speedups._original_from_stream):
        reader = PdfFileReader(io.BytesIO(sealed), strict=strict)
        reader.cache_indirect_object(0, 900_000, stream)
        outcomes.append([_result(fn, reader, i, 900_000, x)
                         for i, x in [(5, 0), (6, 1), (7, 2), (5, 1), (8, 0)]])
    ours, theirs = outcomes
    assert [(type(a), a) for a in ours] == [(type(b), b) for b in theirs]
