"""pyHanko's ``generic.read_object`` for the common case, on a window of bytes.

pyHanko reads a PDF object token by token through the stream's ``read``/``seek``: four or
five calls and a dispatch for every name, number and reference. Verifying a sealed record
parses some four thousand such values per file, and parsing was a third of the modification
analysis. This reader reads the object's bytes once (a window, widened if the object is
longer) and walks names, numbers, references, booleans, nulls, arrays and dictionaries
with compiled patterns, producing the very objects pyHanko produces — same types, values,
``container_ref`` and the stream left at the same position. An array of nothing but
numbers (a font's widths: hundreds per font) is taken in one match and one split, and a
literal string of plain bytes and simple escapes (:data:`ESCAPED_STRING`) in one match.

Everything else goes to pyHanko's own code: a hex string, or a literal string with any
other escape or running past the window, is read by its reader at its position; a
stream's payload by pyHanko's payload reader; and anything unusual — a comment, a
duplicate key, a malformed token, the end of the data, a content stream — makes the whole
object be read again by the original from its start, which answers (or fails) exactly as
it always has. ``tests/test_speedups_tokeniser.py`` compares the two on every
object of real records and on arbitrary token soup.
"""

from __future__ import annotations

import codecs
import re
from io import BytesIO
from typing import IO, Any

from pyhanko.pdf_utils import generic, misc

_original_read_object = generic.read_object
_NO = generic.ContentOpReading.NO
_WINDOW = 4096
_MAX_WINDOW = 1 << 20

_SKIP = re.compile(b"[" + re.escape(misc.PDF_WHITESPACE) + b"]*")  # comments are not handled here
_NAME = re.compile(b"/([^" + re.escape(misc.PDF_WHITESPACE + misc.PDF_DELIMITERS) + b"]*)")
_NUMBER_RUN = re.compile(rb"[+,\-.0-9]*")  # what pyHanko's number reader takes in
_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
_REF = re.compile(rb"([0-9]+)[ \t\n\r\x0c]+([0-9]+)[ \t\n\r\x0c]+R")
# An array of nothing but numbers (a font's widths, a box, a matrix): digits, signs, points
# and whitespace up to the closing bracket. Without an 'R' no reference can start inside it,
# and without a '%' no comment; each whitespace-separated token is then what pyHanko's number
# reader would take in (its run of [+,-.0-9] stops at whitespace and at ']').
_NUMBERS_ARRAY = re.compile(b"\\[([+\\-.0-9" + re.escape(misc.PDF_WHITESPACE) + b"]*)\\]")
_TOKEN = re.compile(b"[^" + re.escape(misc.PDF_WHITESPACE) + b"]+")
# A literal string's body of plain bytes and of escapes whose meaning is the same in PDF (as
# pyHanko reads them) and for codecs.escape_decode: three octal digits up to \377, and
# \n \r \t \b \f \\. Anything else (a parenthesis, an escaped one, a line continuation,
# a short or an overflowing octal, an escape pyHanko accepts or refuses) stops the match.
ESCAPED_STRING = re.compile(rb"(?:[^\\()]+|\\(?:[0-3][0-7][0-7]|[nrtbf\\]))*")


class _Bail(Exception):
    """Not the common case: the original reads the whole object."""


class _NeedMore(Exception):
    """The object goes on past the window: read a wider one."""


class _Reader:
    def __init__(self, stream: IO[bytes], start: int, data: bytes, at_eof: bool,
                 container_ref: Any) -> None:
        self.stream, self.start, self.data, self.at_eof = stream, start, data, at_eof
        self.container_ref = container_ref
        self.handler = container_ref.get_pdf_handler()

    def need(self, end: int) -> None:
        """The bytes up to ``end`` are needed to decide: there, or the original decides."""
        if end > len(self.data):
            raise _Bail if self.at_eof else _NeedMore

    def skip(self, pos: int) -> int:
        pos = _SKIP.match(self.data, pos).end()  # type: ignore[union-attr]
        self.need(pos + 1)
        if self.data[pos] == 0x25:  # '%': a comment
            raise _Bail
        return pos

    def value(self, pos: int) -> tuple[Any, int]:
        """pyHanko's ``read_object`` (outside content streams) at ``pos``."""
        data = self.data
        self.need(pos + 1)
        c = data[pos]
        if c == 0x2F:  # '/'
            obj, pos = self.name(pos)
        elif c == 0x3C:  # '<'
            self.need(pos + 2)
            if data[pos + 1] == 0x3C:
                entries, pos, _payload = self.dictionary(pos, nested=True)
                obj = generic.DictionaryObject(entries)
            else:
                obj, pos = self.delegated(pos)
        elif c == 0x5B:  # '['
            obj, pos = self.array(pos)
        elif c == 0x74:  # 't'
            self.need(pos + 4)
            if data[pos:pos + 4] != b"true":
                raise _Bail
            obj, pos = generic.BooleanObject(True), pos + 4
        elif c == 0x66:  # 'f'
            self.need(pos + 5)
            if data[pos:pos + 5] != b"false":
                raise _Bail
            obj, pos = generic.BooleanObject(False), pos + 5
        elif c == 0x6E:  # 'n'
            self.need(pos + 4)
            if data[pos:pos + 4] != b"null":
                raise _Bail
            obj, pos = generic.NullObject(), pos + 4
        elif c == 0x28:  # '('
            obj, pos = self.string(pos)
        elif 0x30 <= c <= 0x39:  # a digit: a reference if the next 20 bytes say so
            self.need(pos + 20)
            ref = _REF.match(data, pos, pos + 20)
            if generic.INDIRECT_PATTERN.match(data[pos:pos + 20]) is not None:
                if ref is None or int(ref.group(1)) <= 0:
                    raise _Bail  # pyHanko's own reading of the odd ones (and its errors)
                obj = generic.IndirectObject(int(ref.group(1)), int(ref.group(2)), self.handler)
                pos = ref.end()
            else:
                obj, pos = self.number(pos)
        elif c in (0x2B, 0x2D, 0x2E):  # '+', '-', '.'
            obj, pos = self.number(pos)
        else:
            raise _Bail
        obj.container_ref = self.container_ref
        return obj, pos

    def name(self, pos: int) -> tuple[generic.NameObject, int]:
        m = _NAME.match(self.data, pos)
        assert m is not None  # data[pos] is '/'
        self.need(m.end() + 1)  # the delimiter after it is in the window
        try:
            return generic._decode_name(m.group(1)), m.end()
        except Exception as exc:  # pyHanko's error, at pyHanko's position
            raise _Bail from exc

    def number(self, pos: int) -> tuple[Any, int]:
        end = _NUMBER_RUN.match(self.data, pos).end()  # type: ignore[union-attr]
        if end == len(self.data) and not self.at_eof:
            raise _NeedMore
        token = self.data[pos:end]
        if _INT.fullmatch(token):
            return generic.NumberObject(token.decode("ascii")), end
        if _FLOAT.fullmatch(token):
            return generic.FloatObject(token.decode("ascii")), end
        raise _Bail

    def array(self, pos: int) -> tuple[generic.ArrayObject, int]:
        numbers = _NUMBERS_ARRAY.match(self.data, pos)
        if numbers is not None:
            arr = self.numbers(numbers.group(1))
            if arr is not None:
                return arr, numbers.end()
        arr = generic.ArrayObject()
        pos += 1
        while True:
            pos = self.skip(pos)
            if self.data[pos] == 0x5D:  # ']'
                return arr, pos + 1
            item, pos = self.value(pos)
            arr.append(item)

    def numbers(self, body: bytes) -> generic.ArrayObject | None:
        """The numbers of an array's ``body``, as :meth:`value` reads each; None if a token
        is not a number (the element by element reading then refuses it, as pyHanko does)."""
        items = []
        container = self.container_ref
        for token in _TOKEN.findall(body):
            if token.isdigit() or _INT.fullmatch(token):
                item = generic.NumberObject(token.decode("ascii"))
            elif _FLOAT.fullmatch(token):
                item = generic.FloatObject(token.decode("ascii"))
            else:
                return None
            item.container_ref = container
            items.append(item)
        return generic.ArrayObject(items)

    def dictionary(self, pos: int, nested: bool
                   ) -> tuple[dict[generic.NameObject, Any], int, bool]:
        """The entries, the position after the dictionary, and whether a stream payload
        follows (only ever at the top: a nested one goes to the original)."""
        data: dict[generic.NameObject, Any] = {}
        pos += 2
        while True:
            pos = self.skip(pos)
            if self.data[pos] == 0x3E:  # '>': pyHanko takes the next byte with it
                self.need(pos + 2)
                pos += 2
                break
            if self.data[pos] != 0x2F:
                raise _Bail  # not a key: pyHanko's error
            key, pos = self.name(pos)
            pos = self.skip(pos)
            value, pos = self.value(pos)
            if key in data:
                raise _Bail  # pyHanko warns, or refuses in strict mode
            data[key] = value
        # pyHanko looks for a stream payload after every dictionary
        after = pos
        ahead = _SKIP.match(self.data, pos).end()  # type: ignore[union-attr]
        if ahead == len(self.data) and not self.at_eof:
            raise _NeedMore
        if ahead < len(self.data) and self.data[ahead] == 0x25:
            raise _Bail
        if self.data[ahead:ahead + 1] == b"s":
            self.need(ahead + 6)
            if self.data[ahead:ahead + 6] == b"stream":
                if nested:
                    raise _Bail
                return data, after, True
        return data, after, False

    def string(self, pos: int) -> tuple[Any, int]:
        """A literal string, as pyHanko's ``read_string_from_stream`` reads it, when it
        ends in the window with nothing inside but plain bytes and the escapes
        :data:`ESCAPED_STRING` allows (a record's dates, names and reasons); any other to
        pyHanko's reader, at its place in the stream."""
        end = ESCAPED_STRING.match(self.data, pos + 1).end()  # type: ignore[union-attr]
        if end < len(self.data) and self.data[end] == 0x29:  # ')'
            body = self.data[pos + 1:end]
            if 0x5C in body:  # '\\'
                body = codecs.escape_decode(body)[0]
            return generic.pdf_string(body), end + 1
        return self.delegated(pos)

    def delegated(self, pos: int) -> tuple[Any, int]:
        """A value pyHanko's own reader reads (a string): at its place in the stream.

        A string that runs past the window (a signature's /Contents: 20 000 hex digits)
        widens the window to what was read and a little beyond, rather than having the
        whole object, and that string, read again."""
        self.stream.seek(self.start + pos)
        obj = _original_read_object(self.stream, self.container_ref)
        end = self.stream.tell() - self.start
        if end > len(self.data) and not self.at_eof:
            self.widen(end + _WINDOW)
        self.need(end)
        return obj, end

    def widen(self, size: int) -> None:
        """Read on from the stream until the window holds ``size`` bytes, or the data ends."""
        self.stream.seek(self.start + len(self.data))
        more = self.stream.read(size - len(self.data))
        self.data += more
        self.at_eof = len(self.data) < size


def read_object(stream: IO[bytes], container_ref: Any, as_metadata_stream: bool = False,
                in_content_stream: generic.ContentOpReading = _NO) -> Any:
    """pyHanko's ``generic.read_object``; see the module's docstring."""
    if in_content_stream is not _NO or not isinstance(stream, BytesIO):
        return _original_read_object(stream, container_ref, as_metadata_stream, in_content_stream)
    start = stream.tell()
    window = _WINDOW
    while True:
        data = stream.read(window)
        reader = _Reader(stream, start, data, len(data) < window, container_ref)
        try:
            if data[:2] == b"<<":
                entries, end, payload_follows = reader.dictionary(0, nested=False)
                if payload_follows:  # pyHanko's payload reader, from after the dictionary
                    stream.seek(start + end)
                    payload = generic._maybe_read_stream_payload(stream, entries, reader.handler)
                    obj = _stream_object(entries, payload, as_metadata_stream)
                    obj.container_ref = container_ref
                    return obj
                obj = generic.DictionaryObject(entries)
                obj.container_ref = container_ref
            else:
                obj, end = reader.value(0)
            stream.seek(start + end)
            return obj
        except _NeedMore:
            window *= 8
            if window <= _MAX_WINDOW:
                stream.seek(start)
                continue
        except _Bail:
            pass
        stream.seek(start)
        return _original_read_object(stream, container_ref, as_metadata_stream, in_content_stream)


def _stream_object(data: dict[generic.NameObject, Any], payload: bytes | None,
                   as_metadata_stream: bool) -> Any:
    if payload is None:  # 'stream' not followed as pyHanko expects: a dictionary after all
        return generic.DictionaryObject(data)
    cls: type[generic.StreamObject] = generic.StreamObject
    if as_metadata_stream:
        try:
            from pyhanko.pdf_utils.metadata.xmp_xml import MetadataStream
            cls = MetadataStream
        except ImportError:  # pragma: no cover - as pyHanko
            pass
    return cls(data, encoded_data=payload)
