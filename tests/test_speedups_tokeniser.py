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

from hsdt.signing import _fastparse, _speedups

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


_UTF16_NAME = "(" + "".join(f"\\{b:03o}" for b in "\ufeffGV Ngô Thị Hằng".encode("utf-16-be")) + ")"


@pytest.mark.parametrize("data", [
    b"()", b"(abc) x", b"(D:20261129)", b"(a(b)c)", b"(a\\)b)", b"(a\\nb)", b"(\\101)", b"(abc",
    b"(", b"", b"(" + b"x" * 200 + b")", b"(\xfe\xff\x00A)", b"(a\\\nb)",
    # escapes of every kind, as pyHanko reads them
    _UTF16_NAME.encode("ascii") + b" 0 R", b"(sig\\055subject\\137TOAN)", b"(\\000\\377\\n\\r\\t\\b\\f\\\\)",
    b"(\\0)", b"(\\12)", b"(\\1234)", b"(\\0128)", b"(\\8)", b"(\\19)", b"(\\400)", b"(\\777)", b"(\\q)",
    b"(\\a\\v)", b"(\\x41)", b"(\\( \\) \\/ \\% \\< \\> \\[ \\] \\# \\_ \\& \\$ \\ )", b"(a\\\r\nb)",
    b"(a\\\n\nb)", b"(a\\\r\rb)", b"(\\101(x)\\102)", b"(\\101", b"(\\10", b"(\\", b"(\\101\\",
    b"(" + b"\\000A" * 5000 + b")", b"(" + b"\\101" * 4095 + b"x)", b"(\\101" + b"x" * 17000 + b")"])
def test_read_string_literal(data: bytes) -> None:
    _same_outcome(_speedups._read_string_literal_bytes, _speedups._original_string_literal, data)


def test_a_records_escaped_strings_are_decoded_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (_UTF16_NAME.encode("ascii"), b"(sig\\055subject\\137TOAN)", b"(\\000\\n\\\\)"):
        expected = _outcome(_speedups._original_string_literal, data)
        with monkeypatch.context() as m:
            m.setattr(_speedups, "_original_string_literal",
                      lambda _s: pytest.fail("read byte by byte"))  # type: ignore[no-untyped-call]
            assert _outcome(_speedups._read_string_literal_bytes, data) == expected


_ESCAPES = st.sampled_from([b"\\000", b"\\377", b"\\055", b"\\n", b"\\\\", b"\\(", b"\\)", b"\\0",
                            b"\\7", b"\\9", b"\\400", b"\\\n", b"\\\r\n", b"\\q", b"(", b")", b"a",
                            b"\\", b"\xe1"])


@settings(max_examples=400, deadline=None)
@given(body=st.lists(_ESCAPES | st.binary(max_size=2), max_size=40).map(b"".join))
def test_arbitrary_escaped_strings(body: bytes) -> None:
    _same_outcome(_speedups._read_string_literal_bytes, _speedups._original_string_literal,
                  b"(" + body + b") tail")


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
    _same_outcome(_speedups._read_string_literal_bytes, _speedups._original_string_literal,
                  b"(" + data)


@contextmanager
def _pyhankos_own_tokeniser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as m:
        for where, name, _ours, theirs in _speedups.PATCHES:
            m.setattr(where, name, theirs)
        yield


def _same_read(a: Any, b: Any) -> bool:
    """Deep equality of two parsed objects, their ``container_ref`` included."""
    if type(a) is not type(b) or a.container_ref != b.container_ref:
        return False
    if isinstance(a, generic.StreamObject) and a.encoded_data != b.encoded_data:
        return False
    if isinstance(a, generic.DictionaryObject):
        return list(a) == list(b) and all(
            type(k1) is type(k2) and k1.container_ref == k2.container_ref
            for k1, k2 in zip(a, b, strict=True)) and all(
            _same_read(a.raw_get(k), b.raw_get(k)) for k in a)
    if isinstance(a, generic.ArrayObject):
        return len(a) == len(b) and all(_same_read(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, generic.IndirectObject):
        return a.reference == b.reference
    if isinstance(a, generic.FloatObject):
        return str(a) == str(b)
    return bool(a == b)


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
    # the page's ~60 objects, then four per signature and the seal's DSS and timestamp
    assert len(ours) == len(theirs) > 150
    for a, b in zip(ours, theirs, strict=True):
        assert _same(a, b) and _same_read(a, b)


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


# -- whole objects: the window reader against pyHanko's read_object ---------------------------

# Mostly well-formed syntax (so that the window reader, not its fallback, is what is
# compared), with odd tokens, comments and odd whitespace now and then.
_WS = st.sampled_from([b" ", b" ", b"\n", b"\r\n", b"", b"\t", b"\x00", b"\x0c"])
_ODD_WS = st.sampled_from([b"%c\n", b"\x0b", b"  \n "])
_CLEAN = st.sampled_from([
    b"/Type", b"/Annot", b"/A#20B", b"/", b"12", b"-3", b"+4", b".5", b"1.", b"-0.25", b"0", b"007",
    b"3 0 R", b"12 0 R", b"5 2 R", b"8 1\nR", b"1 0  R", b"4 0 R/N", b"true", b"false", b"null",
    b"(a b)", b"(a\\)b)", b"()", b"<414243>", b"<>"])
_ODD = st.sampled_from([
    b"/x(", b"1.2.3", b"1,5", b"-", b"0 0 R", b"1\x0b0 R", b"1 0\x00R", b"6 3\x0bR", b"2 1 Rx",
    b"tru", b"nul", b"<4>", b"]", b">>", b"{", b"R", b"stream", b"99999999999 0 R", b"/\xc3\xa9"])


def _syntax(odd: bool, depth: int = 3) -> st.SearchStrategy[bytes]:
    ws = st.one_of(*[_WS] * 6, _ODD_WS) if odd else _WS
    atoms = st.one_of(*[_CLEAN] * 6, _ODD) if odd else _CLEAN
    leaf = st.tuples(ws, atoms).map(b"".join)
    if depth == 0:
        return leaf
    inner = _syntax(odd, depth - 1)
    arrays = st.lists(st.tuples(inner, ws).map(b"".join), max_size=6).map(
        lambda xs: b"[" + b"".join(xs) + b"]")
    keys = st.integers(0, 99).map(lambda i: b"/K%d" % i)
    if odd:
        keys = st.one_of(keys, st.sampled_from([b"/Length", b"/Z#41", b"K", b"/K1"]))
    pairs = st.tuples(ws, keys, ws, inner).map(b"".join)
    ends = st.sampled_from([b">>", b">>", b">x", b">", b"> >"]) if odd else st.just(b">>")
    dicts = st.tuples(st.lists(pairs, max_size=4), ws, ends).map(
        lambda d: b"<<" + b"".join(d[0]) + d[1] + d[2])
    return st.one_of(leaf, arrays, arrays, dicts, dicts)


_OBJECTS = st.one_of(_syntax(False), _syntax(False), _syntax(True))


@contextmanager
def _all_originals() -> Iterator[None]:
    """pyHanko's and asn1crypto's own functions throughout (nested reads included)."""
    saved = [(where, name, getattr(where, name)) for where, name, _o, _t in _speedups.PATCHES]
    for where, name, _ours, theirs in _speedups.PATCHES:
        setattr(where, name, theirs)
    try:
        yield
    finally:
        for where, name, value in saved:
            setattr(where, name, value)


def _read(ours: bool, data: bytes, reader: PdfFileReader, meta: bool) -> tuple[Any, int]:
    """What reading ``data`` as an object gives (or raises), and where it leaves the stream:
    with every speed-up, or with none."""
    stream = io.BytesIO(data)
    container = generic.Reference(7, 0, reader)
    try:
        if ours:
            result: Any = _fastparse.read_object(stream, container, as_metadata_stream=meta)
        else:
            with _all_originals():
                result = generic.read_object(stream, container, as_metadata_stream=meta)
    except Exception as exc:  # the errors are what is compared
        return (type(exc).__name__, str(exc)), stream.tell()
    return result, stream.tell()


@pytest.fixture(scope="module")
def handler(sealed: bytes) -> PdfFileReader:
    return PdfFileReader(io.BytesIO(sealed), strict=False)


_TAILS = st.sampled_from([b"\nendobj" + b" " * 30, b"\nendobj" + b" " * 30,
                          b" stream\r\nabcd\nendstream\nendobj" + b" " * 30,
                          b"", b" ", b"stream\nab", b"%c\nstream\nabcd\nendstream", b" s",
                          b" 1 0 R", b"x" * 5000])


@settings(max_examples=400, deadline=None)
@given(body=_OBJECTS, tail=_TAILS, meta=st.booleans())
def test_whole_objects_read_as_pyhanko_reads_them(handler: PdfFileReader, body: bytes,
                                                  tail: bytes, meta: bool) -> None:
    data = body.lstrip(b" \t\r\n\x00\x0c") + tail  # an object starts at its first byte
    ours, theirs = _read(True, data, handler, meta), _read(False, data, handler, meta)
    assert ours[1] == theirs[1], data
    if isinstance(theirs[0], tuple) and len(theirs[0]) == 2 and isinstance(theirs[0][0], str):
        assert ours[0] == theirs[0], data
    else:
        assert _same_read(ours[0], theirs[0]), data


@pytest.mark.parametrize("size", [10, 4090, 4100, 40_000, 2_000_000])
def test_objects_longer_than_the_window(handler: PdfFileReader, size: int) -> None:
    numbers = b" ".join(b"%d" % (i % 977) for i in range(size // 4))
    for data in (b"[" + numbers + b"]", b"<</W [" + numbers + b"] /N 1 0 R>> tail",
                 b"<</Length 5>>stream\nabcde\nendstream", numbers[: size // 2]):
        ours, theirs = _read(True, data, handler, False), _read(False, data, handler, False)
        assert ours[1] == theirs[1] and _same_read(ours[0], theirs[0])


def test_a_signature_value_is_read_in_one_window(sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    refs = [s.sig_field.raw_get("/V").reference
            for s in PdfFileReader(io.BytesIO(sealed)).embedded_signatures]
    assert len(refs) >= 16
    windows: list[int] = []
    original_init = _fastparse._Reader.__init__

    def counted(self: Any, *args: Any) -> None:
        windows.append(1)
        original_init(self, *args)

    monkeypatch.setattr(_fastparse._Reader, "__init__", counted)
    ours, theirs = PdfFileReader(io.BytesIO(sealed)), PdfFileReader(io.BytesIO(sealed))
    for ref in refs:
        windows.clear()
        value = ours.get_object(ref)
        assert len(windows) == 1  # widened in place, not read again from the start
        assert len(value["/Contents"]) * 2 > _fastparse._WINDOW
        with monkeypatch.context() as m:
            m.setattr(generic, "read_object", _fastparse._original_read_object)
            expected = theirs.get_object(ref)
        assert list(value) == list(expected) and all(
            value.raw_get(k) == expected.raw_get(k) for k in value)


def _reads_alike(handler: PdfFileReader, data: bytes) -> tuple[Any, Any]:
    """Read ``data`` with the window reader and with pyHanko's own: the same object (or the
    same error) and the same position after. Both results, for further checks."""
    ours, theirs = _read(True, data, handler, False), _read(False, data, handler, False)
    assert ours[1] == theirs[1], data
    if isinstance(theirs[0], tuple):
        assert ours[0] == theirs[0], data
    else:
        assert _same_read(ours[0], theirs[0]), data
    return ours[0], theirs[0]


_NUMBER_TOKENS = st.sampled_from([b"0", b"7", b"612", b"-3", b"+4", b"2.5", b"-.5", b".75", b"5.",
                                  b"007", b"1.2.3", b"1,5", b"-", b"+", b".", b"1-2", b"3+",
                                  b"99999999999999999999", b"1e5", b"R", b"0 R", b"%c\n"])
_NUMBER_GAPS = st.sampled_from([b" ", b" ", b"\n", b"\r\n", b"\t", b"\x0c", b"\x00", b"  ", b"\x0b",
                                b""])


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.tuples(_NUMBER_GAPS, _NUMBER_TOKENS).map(b"".join), max_size=12),
       gap=_NUMBER_GAPS, tail=st.sampled_from([b"", b"]", b" R", b" 0 R", b"\nendobj ", b"x" * 40]),
       nested=st.booleans())
def test_arrays_of_numbers_read_as_pyhanko_reads_them(handler: PdfFileReader, tokens: list[bytes],
                                                      gap: bytes, tail: bytes, nested: bool) -> None:
    array = b"[" + b"".join(tokens) + gap + b"]"
    _reads_alike(handler, (b"<</W " + array + b" /N 3>>" if nested else array) + tail)


def _calls_of(monkeypatch: pytest.MonkeyPatch, method: str) -> list[int]:
    """The positions the window reader's ``method`` is called at, from now on."""
    calls: list[int] = []
    original = getattr(_fastparse._Reader, method)

    def counting(self: Any, pos: int) -> Any:
        calls.append(pos)
        return original(self, pos)

    monkeypatch.setattr(_fastparse._Reader, method, counting)
    return calls


def test_an_array_of_numbers_is_read_in_one_go(handler: PdfFileReader,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # A font's widths are hundreds of numbers; read one value at a time they were a
    # quarter of what parsing a record cost.
    widths = b"[3 [260] 11 [346 346.5 -2] 15 [250 310 250] 19 [" + b" ".join([b"559"] * 300) + b"]]"
    calls = _calls_of(monkeypatch, "value")
    ours = _read(True, b"<</W " + widths + b">>", handler, False)
    monkeypatch.undo()
    assert _same_read(ours[0], _read(False, b"<</W " + widths + b">>", handler, False)[0])
    assert len(calls) == 1 + 8  # the /W array and its 8 elements, 4 of them arrays of numbers


@settings(max_examples=400, deadline=None)
@given(body=st.lists(_ESCAPES | st.binary(max_size=2), max_size=40).map(b"".join),
       tail=st.sampled_from([b"", b")", b" /N 3>>", b"\\", b"x" * 40]), nested=st.booleans())
def test_strings_in_objects_read_as_pyhanko_reads_them(handler: PdfFileReader, body: bytes,
                                                       tail: bytes, nested: bool) -> None:
    string = b"(" + body + b")"
    ours, theirs = _reads_alike(
        handler, (b"<</T " + string + b" /N 3>>" if nested else b"[" + string + b" 1]") + tail)
    if not isinstance(theirs, tuple):
        for a, b in zip(_strings_of(ours), _strings_of(theirs), strict=True):
            assert (a.original_bytes, a.autodetected_encoding) == (b.original_bytes,
                                                                   b.autodetected_encoding)


def _strings_of(obj: Any) -> list[Any]:
    if isinstance(obj, generic.DictionaryObject):
        return [s for v in obj.values() for s in _strings_of(v)]
    if isinstance(obj, generic.ArrayObject):
        return [s for v in obj for s in _strings_of(v)]
    return [obj] if isinstance(obj, generic.TextStringObject) else []


def test_a_records_strings_are_read_in_the_window(handler: PdfFileReader,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A sealed record holds some two hundred literal strings (dates, names, reasons, the
    # destinations' names); each went back to the stream and pyHanko's dispatch.
    data = (b"<</T " + _UTF16_NAME.encode("ascii") + b" /M (D:20261129101500+07'00')"
            b" /Reason (sig\\055subject\\137TOAN) /Dests [(sig-homeroom) 3 0 R] /E ()>>")
    delegated = _calls_of(monkeypatch, "delegated")
    ours = _read(True, data, handler, False)
    assert delegated == []
    for odd in (b"(a\\\nb)", b"(a(b)c)", b"(\\q)", b"(\\12)", b"(" + b"x" * 5000 + b")"):
        before = len(delegated)
        _read(True, b"[" + odd + b"]", handler, False)
        assert len(delegated) == before + 1, odd  # pyHanko's reader, at its place
    monkeypatch.undo()
    theirs = _read(False, data, handler, False)
    assert ours[1] == theirs[1] and _same_read(ours[0], theirs[0])
    assert ours[0]["/T"] == "GV Ngô Thị Hằng"
