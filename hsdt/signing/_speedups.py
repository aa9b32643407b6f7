"""Measured speed-ups for the libraries verification spends its time in.

1. pyHanko's PDF tokeniser reads a byte at a time in Python. Each signature's /Contents is
a hex string of 15–25 thousand digits, and a record's objects hold thousands of names,
numbers and runs of whitespace. The hex-string reader (:func:`read_hex_string_from_stream`)
finds the closing '>' with one search, drops whitespace with one translate, and decodes
with binascii; the whitespace skipper, the delimiter and number scanners and the name
decoder (1b) search chunks with one-byte patterns, where the cut into chunks cannot change
the answer, and hand anything unusual (a comment, an escape in a name, an odd argument)
to the original. The same results, positions and errors, measured several times faster.
Literal strings whose escapes mean the same to ``codecs.escape_decode`` are decoded at
once (:func:`_read_string_literal_bytes`). Whole objects are read from a window of bytes
(:mod:`hsdt.signing._fastparse`), the xref streams' dictionaries too
(:func:`read_xref_stream_object`), and an object stream's header once per stream
(:func:`get_object_from_stream`).
2. A cache for asn1crypto's name string preparation (see :func:`_cached_prep`), and,
within one verification, for the comparison of distinguished names
(:func:`name_comparisons_remembered`).
3. Four for pyHanko's modification analysis, which was most of a sealed record's
verification: each revision's objects are parsed once instead of once per revision that
looks at them (:func:`get_object`), the revisions that wrote an object are looked up
once (:func:`_history`), and the map of paths to every object of a revision is
built from the parsed objects instead of from a per-revision copy of each, and carried
over from the revision before where that revision's writes allow
(:func:`load_reverse_xref_cache`); each revision view's copies of objects and its walk for
their dependencies skip the per-node overhead (:mod:`hsdt.signing._revision_views`); an
XMP packet that passed the metadata rule's XML check is not parsed again for the next pair
of revisions (:func:`is_well_formed_xml`); a signature field that the newer of two
consecutive revisions does not write is not compared again, only checked where the
comparison could fail (:func:`_revision_views.check_signature_field`); and the tens of
thousands of references the views make are made without a call per field
(:func:`_reference_init`).
4. Within one verification, the result of validating the same certificate for the same
use with the same validation context (:func:`remember_validations`): the TSA's
certificate is otherwise validated again, revocation evidence and all, for each of the
sixteen timestamps of a sealed record; and that the same delegated OCSP responder may
answer for the same CA (:func:`validate_delegated_ocsp_provenance`), checked otherwise
for each signer's response.
5. The certificates a signature carries, as the thread's shared object for each encoding
(:func:`extract_certificate_info`, :mod:`hsdt.signing.parsed`); the check that a CMS's
signing-certificate attribute names its signer's certificate, once per CMS
(:func:`check_signing_certificate`).
6. The digest of what each signature covers, from one hash along the file
(:func:`compute_digest`); that a file has no encryption dictionary (:func:`_encrypt_dict`).
7. Answers asn1crypto and pyHanko-certvalidator compute again for values that do not
change (:mod:`hsdt.signing._asn1_memo`).

Installed once, on import of :mod:`hsdt.signing`, from one table (:data:`PATCHES`);
`tests/test_speedups.py` and `tests/test_speedups_tokeniser.py` check each against the
original, and a whole verification report against one made with every original. pyHanko
is pinned (pyproject.toml): several mirror the code of that version, and the tests compare
their results with it on real records.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from io import BytesIO
from typing import IO, Any, NamedTuple, NoReturn, cast

from asn1crypto import cms, core, x509
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.misc import PdfStreamError
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.pdf_utils.xref import XRefBuilder, XRefCache, read_object_header
from pyhanko.sign.diff_analysis import form_rules_api
from pyhanko.sign.diff_analysis.rules.form_field_rules import SigFieldModificationRule
from pyhanko.sign.diff_analysis.rules.metadata_rules import MetadataUpdateRule
from pyhanko.sign.general import SignedDataCerts, _partition_certs, extract_signer_info
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation import utils as validation_utils
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import PKIXValidationParams, ValidationContext, sig_validate, validate
from pyhanko_certvalidator._state import ValProcState
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy
from pyhanko_certvalidator.registry import LazyPathIterator
from pyhanko_certvalidator.revinfo import validate_ocsp
from pyhanko_certvalidator.util import CancelableAsyncIterator, get_pyca_cryptography_hash

from hsdt.signing import _asn1_memo, _fastparse, _revision_views, parsed

_original = generic.read_hex_string_from_stream
_HEX_END = re.compile(rb">")
_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")
_CHUNK = 1 << 16
_LOOKAHEAD = 64


def _scan(stream: IO[bytes], pattern: re.Pattern[bytes], limit: int | None = None,
          chunk: int = _LOOKAHEAD) -> tuple[bytes, int | None]:
    """The bytes from the stream's position to the first match of ``pattern``, and where
    that match starts (relative to the position), or None if the stream ended, or ``limit``
    bytes were read, first. ``pattern`` matches one byte, so how the stream is cut into
    chunks cannot change the answer. The stream is left after what was read: callers seek."""
    parts: list[bytes] = []
    taken = 0
    while True:
        want = chunk if limit is None else min(chunk, limit - taken)
        data = stream.read(want) if want > 0 else b""
        if not data:
            return b"".join(parts), None
        m = pattern.search(data)
        if m is not None:
            parts.append(data[:m.start()])
            return b"".join(parts), taken + m.start()
        parts.append(data)
        taken += len(data)


def read_hex_string_from_stream(stream: IO[bytes]) -> generic.ByteStringObject | generic.TextStringObject:
    stream.read(1)  # the opening '<'
    start = stream.tell()
    before, at = _scan(stream, _HEX_END, chunk=_CHUNK)
    digits = before.translate(None, misc.PDF_WHITESPACE)
    if at is None:  # pyHanko meets the first wrong byte, or else the end, as it reads on
        _refuse_hex(digits, "Stream ended prematurely")
    stream.seek(start + at + 1)
    if len(digits) % 2:
        digits += b"0"
    try:  # unhexlify takes hex digits only: what it accepts is what pyHanko accepts
        value = binascii.unhexlify(digits)
    except binascii.Error:
        _refuse_hex(digits, "")
    return generic.pdf_string(value)


def _refuse_hex(digits: bytes, otherwise: str) -> NoReturn:
    bad = _NOT_HEX.search(digits)
    raise PdfStreamError("Unexpected token in hex string: " + repr(bad.group(0)) if bad
                         else otherwise)


# -- 1b. the tokeniser's byte-at-a-time loops -------------------------------------------------

_original_read_non_whitespace = misc.read_non_whitespace
_original_read_until_class = misc._read_until_class
_original_read_until_regex = misc.read_until_regex
_original_decode_name = generic._decode_name
_NON_WHITESPACE = re.compile(b"[^" + re.escape(misc.PDF_WHITESPACE) + b"]")
_NUMBER_END = generic.NumberObject.NumberPattern
# printable ASCII, no delimiter, no '#' escape (whitespace is outside !-~ already)
_PLAIN_NAME = re.compile(b"[^\\x00-\\x20\\x7f-\\xff" + re.escape(misc.PDF_DELIMITERS + b"#") + b"]*")
_class_patterns: dict[bytes, re.Pattern[bytes]] = {}


def read_non_whitespace(stream: IO[bytes], seek_back: bool = False,
                        allow_eof: bool = False) -> bytes:
    """pyHanko's ``misc.read_non_whitespace`` (the next byte that is not PDF whitespace),
    finding it with one search instead of a read per byte; a comment goes to the original,
    from where it starts."""
    start = stream.tell()
    at = _scan(stream, _NON_WHITESPACE)[1]
    if at is None:
        if allow_eof:
            return b""
        raise PdfStreamError("Stream ended prematurely")
    stream.seek(start + at)
    tok = stream.read(1)
    if tok == b"%":
        stream.seek(start + at)
        return cast(bytes, _original_read_non_whitespace(stream, seek_back, allow_eof))
    if seek_back:
        stream.seek(start + at)
    return tok


def _read_until_class(class_chars: bytes, stream: IO[bytes],
                      maxchars: int | None = None) -> tuple[bytes, bool]:
    """pyHanko's ``misc._read_until_class`` (the bytes before the next one of
    ``class_chars``, which is consumed; whether the stream ended first), by searching
    chunks instead of reading a byte at a time. A ``maxchars`` below 1 goes to the original
    (which fails on 0)."""
    if maxchars is not None and maxchars < 1:
        return cast(tuple[bytes, bool], _original_read_until_class(class_chars, stream, maxchars))
    pattern = _class_patterns.get(class_chars)
    if pattern is None:
        pattern = _class_patterns[class_chars] = re.compile(
            b"[" + b"".join(re.escape(bytes((c,))) for c in class_chars) + b"]")
    start = stream.tell()
    before, at = _scan(stream, pattern, maxchars)
    if at is None:  # the stream ended, or maxchars were read (then it is where it should be)
        return before, maxchars is None or len(before) < maxchars
    stream.seek(start + at + 1)
    return before, False


def read_until_regex(stream: IO[bytes], regex: re.Pattern[bytes],
                     ignore_eof: bool = False) -> bytes:
    """pyHanko's ``misc.read_until_regex``. The original searches 16-byte chunks one at a
    time; for the number tokeniser's pattern, a single byte class, the chunk size cannot
    change the answer, so that one is searched in larger chunks. Any other pattern goes to
    the original."""
    if regex is not _NUMBER_END:
        return cast(bytes, _original_read_until_regex(stream, regex, ignore_eof))
    start = stream.tell()
    before, at = _scan(stream, regex)
    if at is None:
        if ignore_eof:
            return before
        raise PdfStreamError("Stream has ended unexpectedly")
    stream.seek(start + at)
    return before


_original_string_literal = generic._read_string_literal_bytes
_STRING_SPECIAL = re.compile(rb"[()\\]")
_ESCAPED_STRING = _fastparse.ESCAPED_STRING
_STRING_WINDOW = 1 << 14


def _read_string_literal_bytes(stream: IO[bytes]) -> bytes:
    """pyHanko's ``generic._read_string_literal_bytes`` (a literal string's bytes).

    A string with no parenthesis or backslash inside — a date, a name, a reason — is the
    bytes up to its ')'. A string with escapes (the UTF-16 names, reasons and field names
    of a Vietnamese record escape every other byte, ``\\000``) is decoded at once by
    ``codecs.escape_decode`` when every escape in it is one that means the same there as in
    pyHanko's reader, byte by byte (some 45 µs a string, a hundred strings per record).
    Any other string goes to the original, from its start.
    """
    opening = stream.tell()
    stream.read(1)  # the '(' (the original takes it unchecked too)
    start = stream.tell()
    before, at = _scan(stream, _STRING_SPECIAL)
    if at is not None:
        stream.seek(start + at)
        special = stream.read(1)
        if special == b")":
            return before
        if special == b"\\":
            stream.seek(start)
            window = stream.read(_STRING_WINDOW)
            end = _ESCAPED_STRING.match(window).end()  # type: ignore[union-attr]
            if end < len(window) and window[end] == 0x29:  # ')'
                stream.seek(start + end + 1)
                return cast(bytes, codecs.escape_decode(window[:end])[0])
    stream.seek(opening)
    return cast(bytes, _original_string_literal(stream))


def _decode_name(name_bytes: bytes) -> generic.NameObject:
    """pyHanko's ``generic._decode_name``: a name of printable ASCII without escapes is the
    name itself; anything else (escapes, bytes that must be escaped) goes to the original,
    with its errors."""
    if _PLAIN_NAME.fullmatch(name_bytes):
        return generic.NameObject("/" + name_bytes.decode("ascii"))
    return cast(generic.NameObject, _original_decode_name(name_bytes))


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


_original_name_eq = x509.Name.__eq__
_name_memo: ContextVar[dict[tuple[bytes, bytes], bool] | None] = ContextVar("hsdt_name_memo",
                                                                            default=None)


def _name_eq(self: x509.Name, other: object) -> bool:
    """asn1crypto's RFC 5280 name comparison, remembered by the two names' DER encodings
    while :func:`name_comparisons_remembered` is in force (the original otherwise).

    Verifying a record compares the same few issuer names thousands of times (signer
    lookup in each CMS, path building, revocation matching), each time walking both names
    and preparing every attribute. The result depends on the two encodings only.
    """
    memo = _name_memo.get()
    if memo is None or not isinstance(other, x509.Name):
        return cast(bool, _original_name_eq(self, other))
    key = (self.dump(), other.dump())
    found = memo.get(key)
    if found is None:
        found = memo[key] = cast(bool, _original_name_eq(self, other))
    return found


@contextmanager
def name_comparisons_remembered() -> Iterator[None]:
    """Remember name comparisons for the duration of the block (one verification): never
    longer, so that nothing a verification computed outlives it."""
    token = _name_memo.set({})
    try:
        yield
    finally:
        _name_memo.reset(token)


_original_reference_init = generic.Reference.__init__


def _reference_init(self: generic.Reference, idnum: int, generation: int = 0,
                    pdf: object = None) -> None:
    """``Reference(idnum, generation, pdf)``, pyHanko's frozen dataclass, its three fields
    stored as the generated ``__init__`` stores them, without a call of
    ``object.__setattr__`` for each (the one way around the frozen ``__setattr__``).

    Every indirect reference of every object of every revision view is a new Reference:
    tens of thousands per record, half their cost in those calls. Nothing else differs:
    the same fields, defaults and values, and assignment is still refused.
    """
    fields = self.__dict__
    fields["idnum"] = idnum
    fields["generation"] = generation
    fields["pdf"] = pdf


_reference_init.__qualname__ = "Reference.__init__"  # as errors name it


# -- 3. modification analysis -----------------------------------------------------------------

_original_get_object = PdfFileReader.get_object
_original_lut = HistoricalResolver._load_reverse_xref_cache


def get_object(self: PdfFileReader, ref: generic.Reference, revision: int | None = None,
               never_decrypt: bool = False, transparent_decrypt: bool = True,
               as_metadata_stream: bool = False) -> Any:
    """pyHanko's ``PdfFileReader.get_object``, with historical values cached too.

    pyHanko caches the current value of each object but parses a historical one again on
    every request ("never cache historical refs"), because its cache is keyed by the
    object's number alone. The analysis of a record with 17 revisions asks for the same
    few old versions about 150 times. This cache is keyed by where the version is written
    in this reader's own file (the xref entry: an offset or a place in an object stream),
    so a version is only ever served for exactly the bytes it was parsed from; it lives on
    the reader, i.e. for one file.
    """
    if revision is None:
        return _original_get_object(self, ref, None, never_decrypt, transparent_decrypt,
                                    as_metadata_stream)
    if ref in self.xrefs.xref_stream_refs:
        never_decrypt = True
    marker = self.xrefs.get_historical_ref(ref, revision)
    if marker is None:  # not in this revision: pyHanko warns and substitutes null (or fails)
        return _original_get_object(self, ref, revision, never_decrypt, transparent_decrypt,
                                    as_metadata_stream)
    cache: dict[tuple[Any, ...], Any] = self.__dict__.setdefault("_hsdt_historical", {})
    key = (ref.idnum, ref.generation, marker, never_decrypt, as_metadata_stream)
    obj = cache.get(key)
    if obj is None:
        obj = self._read_object(ref, marker, never_decrypt=never_decrypt,
                                as_metadata_stream=as_metadata_stream)
        cache[key] = obj  # before decryption, as pyHanko caches current values
    if transparent_decrypt and isinstance(obj, generic.DecryptedObjectProxy):
        obj = obj.decrypted
    return obj


_HISTORIES = "_hsdt_histories"
_History = tuple[tuple[int, Any], ...]


def _history(xrefs: XRefCache, ref: generic.Reference) -> _History | None:
    """Where each revision's xref section puts ``ref`` (pyHanko's ``try_resolve``), for the
    sections that know it, oldest first: what the three lookups below read, one revision at
    a time, on every call.

    pyHanko scans the sections on every call, catching a KeyError for each section without
    the object, and modification analysis asks for every object it touches at every
    revision it compares: tens of thousands of scans of 17 sections per record. The
    sections are read once, when the file is opened, and never change, so each object's
    history is read once per table. A section that fails otherwise than with "not here"
    (``None``: no history) leaves the object to pyHanko's lookups, which meet it in their
    own order.
    """
    memo: dict[tuple[int, int], _History] = xrefs.__dict__.setdefault(_HISTORIES, {})
    key = (ref.idnum, ref.generation)
    found = memo.get(key)
    if found is None:
        entries: list[tuple[int, Any]] = []
        try:
            idnum = ref.idnum
            for revision, section in enumerate(xrefs._xref_sections):
                data = section.xref_data
                if (data.hybrid is None and idnum not in data.xrefs_in_objstm
                        and idnum not in data.standard_xrefs and idnum not in data.freed):
                    continue  # try_resolve's every branch would raise KeyError: not here
                try:  # noqa: SIM105 - a context manager per section costs more than the lookup
                    entries.append((revision, data.try_resolve(ref)))
                except KeyError:
                    pass  # not in this section
        except Exception:
            return None
        found = memo[key] = tuple(entries)
    return found


_original_last_change = XRefCache.get_last_change
_original_introducing = XRefCache.get_introducing_revision
_original_historical_ref = XRefCache.get_historical_ref


def get_last_change(self: XRefCache, ref: generic.Reference) -> int:
    """pyHanko's: the newest revision whose section knows ``ref`` (freed included)."""
    history = _history(self, ref)
    if history is None:
        return cast(int, _original_last_change(self, ref))
    if not history:
        raise KeyError(ref)
    return history[-1][0]


def get_introducing_revision(self: XRefCache, ref: generic.Reference) -> int:
    """pyHanko's: the oldest revision whose section gives ``ref`` a place."""
    history = _history(self, ref)
    if history is None:
        return cast(int, _original_introducing(self, ref))
    for revision, place in history:
        if place is not None:
            return revision
    raise KeyError(ref)


def get_historical_ref(self: XRefCache, ref: generic.Reference, revision: int) -> Any:
    """pyHanko's: where the newest section up to ``revision`` that knows ``ref`` puts it."""
    history = _history(self, ref)
    if history is None:
        return _original_historical_ref(self, ref, revision)
    place = None
    for written, where in history:
        if written > revision:
            break
        place = where
    return place


_original_from_stream = PdfFileReader._get_object_from_stream
_OBJSTM_TABLES = "_hsdt_objstm_tables"


def _objstm_table(reader: PdfFileReader, stmnum: int, stream: generic.StreamObject
                  ) -> list[tuple[Any, Any]] | None:
    """The (object number, offset) pairs of an object stream's header, read as pyHanko
    reads them, once per stream object; None if reading them fails anywhere (then the
    original, which may stop before the failure, answers)."""
    tables: dict[int, tuple[generic.StreamObject, list[tuple[Any, Any]] | None]] = \
        reader.__dict__.setdefault(_OBJSTM_TABLES, {})
    found = tables.get(stmnum)
    if found is not None and found[0] is stream:
        return found[1]
    table: list[tuple[Any, Any]] | None = []
    try:
        data = BytesIO(stream.read_data(DecodePurpose.OBJECT_STREAM))
        for _ in range(stream["/N"]):
            misc.read_non_whitespace(data, seek_back=True)
            objnum = generic.NumberObject.read_from_stream(data)
            misc.read_non_whitespace(data, seek_back=True)
            offset = generic.NumberObject.read_from_stream(data)
            misc.read_non_whitespace(data, seek_back=True)
            table.append((objnum, offset))
    except Exception:  # any failure: the original reads it, and fails as it does
        table = None
    tables[stmnum] = (stream, table)
    return table


def get_object_from_stream(self: PdfFileReader, idnum: int, stmnum: int, idx: int) -> Any:
    """pyHanko's ``PdfFileReader._get_object_from_stream``: one object of an object stream.

    The original reads the stream's header from the start, pair by pair, for every object
    it is asked for: an object stream of N objects costs N² header reads, two thirds of a
    record's first-signature revision. Here the header is read once per stream (with the
    same functions) and the object is read from its offset as the original reads it. Any
    other path — an index out of range, a header that does not read, strict-mode
    complaints, an object that fails to parse or is a stream or a reference — goes to the
    original, which answers (or fails) as it always has.
    """
    stream = generic.Reference(stmnum, 0, self).get_object()
    if not (isinstance(stream, generic.StreamObject) and stream.get("/Type") == "/ObjStm"
            and isinstance(stream.get("/N"), int) and 0 <= idx < stream["/N"]):
        return _original_from_stream(self, idnum, stmnum, idx)
    table = _objstm_table(self, stmnum, stream)
    if table is None:
        return _original_from_stream(self, idnum, stmnum, idx)
    for i, (objnum, offset) in enumerate(table):
        if objnum != idnum:
            continue
        if self.strict and idx != i:
            break
        data = BytesIO(stream.read_data(DecodePurpose.OBJECT_STREAM))
        data.seek(stream["/First"] + offset)
        try:
            obj = generic.read_object(data, generic.Reference(idnum, 0, self))
        except (misc.PdfStreamError, misc.PdfReadError):
            break
        if isinstance(obj, (generic.StreamObject, generic.IndirectObject)):
            break
        generic.read_non_whitespace(data, seek_back=True, allow_eof=True)
        return obj
    return _original_from_stream(self, idnum, stmnum, idx)


_IND, _DICT, _ARR = generic.IndirectObject, generic.DictionaryObject, generic.ArrayObject
_TRAVERSED = (_IND, _DICT, _ARR)
_STRUCT_TREE_ROOT = ("/Root", "/StructTreeRoot")
_Path = tuple[str | int, ...]


class _PathsByRef(dict[generic.Reference, set[RawPdfPath]]):
    """The reverse xref map of one revision's walk, each ref's paths found when first asked
    for.

    pyHanko only ever reads this map through ``HistoricalResolver._get_usages_of_ref``
    (truth test, then ``map[ref]``, a missing ref meaning no usages), and asks for the few
    refs the next revision writes. Gathering every path of every object into sets of
    RawPdfPath, revision after revision, was a tenth of the analysis, and gathering them
    as tuples still walked the whole tree each revision. A ref's paths are found instead
    by going down only into the visits whose subtree holds its object number
    (:attr:`_Visit.ids`). :meth:`materialised` gives the whole map, in the walk's order, as
    pyHanko builds it.
    """

    def __init__(self, top: tuple[_Visit, ...], view: HistoricalResolver) -> None:
        super().__init__()
        self._top = top
        self._view = view

    def __missing__(self, ref: generic.Reference) -> set[RawPdfPath]:
        idnum, generation = ref.idnum, ref.generation
        found: set[_Path] = set()
        stack = [v for v in self._top if idnum in v.ids]
        while stack:
            v = stack.pop()
            if v.ref.idnum == idnum and v.ref.generation == generation:
                found.add(v.path)
            stack.extend(c for c in v.children if idnum in c.ids)
        if not found:
            raise KeyError(ref)
        converted = self[ref] = {RawPdfPath(*p) for p in found}
        return converted

    def __bool__(self) -> bool:
        return bool(self._top)

    def materialised(self) -> dict[generic.Reference, set[RawPdfPath]]:
        collected: dict[generic.Reference, set[_Path]] = {}
        stack = list(reversed(self._top))
        while stack:  # in the walk's order (pre-order), as pyHanko fills its map
            v = stack.pop()
            paths = collected.get(v.ref)
            if paths is None:
                collected[generic.Reference(v.ref.idnum, v.ref.generation, self._view)] = paths = set()
            paths.add(v.path)
            stack.extend(reversed(v.children))
        return {ref: {RawPdfPath(*p) for p in paths} for ref, paths in collected.items()}


def _page_tree_refs(pages: Any, path: _Path) -> Iterator[tuple[generic.Reference, _Path]]:
    # pyHanko's _collect_page_tree_refs, with paths as tuples
    for ix, kid in enumerate(pages["/Kids"]):
        kid_path = (*path, "/Kids", ix)
        if isinstance(kid, _IND):
            yield kid.reference, kid_path
        kid = kid.get_object()
        if kid.get("/Type", None) == "/Pages":
            yield from _page_tree_refs(kid, kid_path)


def _struct_tree_refs(elem: Any) -> Iterator[generic.Reference]:
    # pyHanko's _collect_struct_tree_refs
    try:
        children = elem["/K"]
    except KeyError:
        return
    if not isinstance(children, _ARR):
        children = (children,)
    for child in children:
        child_ref = None
        if isinstance(child, _IND):
            child_ref = child.reference
            child = child.get_object()
        if not isinstance(child, _DICT):
            continue
        try:
            if child["/Type"] != "/StructElem":
                continue
        except KeyError:
            pass
        if child_ref is not None:
            yield child_ref
        yield from _struct_tree_refs(child)


class _Visit(NamedTuple):
    """One step of the walk onto an indirect object: at ``path``, and what it found there.

    ``entered`` is False where the walk recorded the path but did not go in (the page or
    the structure tree reached from elsewhere; a cycle is not even recorded). ``ids`` holds the object numbers
    of every visit in this subtree, this one's included: a subtree none of whose objects a
    revision writes is the same in that revision (see :func:`load_reverse_xref_cache`).
    """

    ref: generic.Reference
    path: _Path
    in_struct: bool
    entered: bool
    children: tuple[_Visit, ...]
    ids: frozenset[int]


class _Walk(NamedTuple):
    """One revision's whole walk, kept on the reader for the next revision to start from.
    Besides the objects' values, the walk depends on the page tree and the structure tree
    (its pruning rules) and on the trailer's references (where it starts)."""

    start: list[tuple[_Path, generic.Reference, bool]]
    page_tree: dict[generic.Reference, _Path]
    struct_tree: set[generic.Reference]
    top: tuple[_Visit, ...]
    # The object numbers whose paths may differ from the walk before's: everything in the
    # subtrees walked again, before and after. None for a walk made whole.
    touched: frozenset[int] | None


_WALKS = _revision_views.WALKS


def load_reverse_xref_cache(self: HistoricalResolver) -> None:
    """pyHanko's ``HistoricalResolver._load_reverse_xref_cache``: every path from the trailer
    to every object of this revision, by the same walk and the same pruning rules.

    The original fetches each object through the resolver, which first deep-copies it into
    the revision's view (rebinding its references); it does so for every object of every
    revision compared, and walks every number of every font's width table. Only the shape
    of the objects matters for the paths, and it is the same in the parsed object as in
    its copy, so this walk reads the parsed value of each object in this revision (what
    the resolver would copy) and skips values that cannot lead to a reference. The paths
    of each object become RawPdfPath sets only when asked for (:class:`_PathsByRef`).
    Encrypted files, where values can be lazily decrypted proxies, take the original.

    Consecutive revisions share almost all of their walk: a signature writes its field,
    its value and its appearance, and nothing else. The walk is kept as a tree of visits
    (:class:`_Visit`); the next revision's walk is this tree with the subtrees through an
    object that revision writes walked again. That is the same walk, visit for visit and
    in the same order, because a visit's subtree depends only on the values of the objects
    in it, on the path and the objects above it (the cycle guard), and on the page and the
    structure trees and the trailer, and the reuse is taken only when those three are
    unchanged. Anything else (the first revision, revisions asked for out of order, a
    changed page tree, freed objects, hybrid files) is walked whole.
    """
    if self._indirect_object_access_cache is not None:
        return
    reader, revision = self.reader, self.revision
    if reader.encrypted:
        _original_lut(self)
        return
    xrefs = reader.xrefs

    def enter(ref: generic.Reference, path: _Path, seen: set[generic.Reference],
              in_struct: bool) -> _Visit | None:
        if ref in seen:  # no cycles within one path: not even recorded
            return None
        own = frozenset((ref.idnum,))
        obj = _revision_views.revision_value(self, ref)
        # enter the page tree only through its own path, the structure tree only from its
        # root (pyHanko's rules against combinatorial blow-up)
        if page_tree.get(ref, path) != path or (not in_struct and ref in struct_tree):
            return _Visit(ref, path, in_struct, False, (), own)
        seen.add(ref)
        found: list[_Visit] = []
        contents(obj, path, seen, in_struct, found, enter)
        seen.discard(ref)
        return _Visit(ref, path, in_struct, True, tuple(found),
                      own.union(*(v.ids for v in found)))

    def contents(obj: Any, path: _Path, seen: set[generic.Reference], in_struct: bool,
                 found: list[_Visit], enter: Any) -> None:
        if isinstance(obj, _DICT):
            at_struct_root = path == _STRUCT_TREE_ROOT
            for k, v in obj.items():
                if k == "/Parent" or (in_struct and k == "/P"):
                    continue
                if isinstance(v, _TRAVERSED):
                    sub, struct = (*path, k), in_struct or (at_struct_root and k == "/K")
                    if isinstance(v, _IND):
                        if (visit := enter(v.reference, sub, seen, struct)) is not None:
                            found.append(visit)
                    else:
                        contents(v, sub, seen, struct, found, enter)
        elif isinstance(obj, _ARR):
            for ix, v in enumerate(obj):
                if isinstance(v, _TRAVERSED):
                    if isinstance(v, _IND):
                        if (visit := enter(v.reference, (*path, ix), seen, in_struct)) is not None:
                            found.append(visit)
                    else:
                        contents(v, (*path, ix), seen, in_struct, found, enter)

    touched: set[int] = set()

    def renewed(v: _Visit, written: frozenset[int], seen: set[generic.Reference]) -> _Visit:
        if v.ids.isdisjoint(written):
            return v
        if v.ref.idnum in written:
            again = enter(v.ref, v.path, seen, v.in_struct)
            assert again is not None  # the same ancestors: no cycle now either
            touched.update(v.ids)
            touched.update(again.ids)
            return again
        seen.add(v.ref)  # entered: a visit not entered holds its own number only
        kids = tuple(renewed(c, written, seen) for c in v.children)
        seen.discard(v.ref)
        return v._replace(children=kids, ids=frozenset((v.ref.idnum,)).union(*(c.ids for c in kids)))

    def glance(ref: generic.Reference, path: _Path, seen: set[generic.Reference],
               in_struct: bool) -> _Visit | None:
        return _Visit(ref, path, in_struct, False, (), frozenset())

    try:
        pages_ref = self.root.raw_get("/Pages")
        pages_path: _Path = ("/Root", "/Pages")
        page_tree: dict[generic.Reference, _Path] = {}
        if isinstance(pages_ref, _IND):
            page_tree[pages_ref.reference] = pages_path
        for ref, path in _page_tree_refs(pages_ref.get_object(), pages_path):
            if ref in page_tree:
                raise misc.PdfReadError("Circular reference in page tree in mapping stage")
            page_tree[ref] = path
        struct_tree: set[generic.Reference] = set()
        try:
            for ref in _struct_tree_refs(self.root.raw_get("/StructTreeRoot").get_object()):
                if ref in struct_tree:
                    raise misc.PdfReadError("Circular reference in structure tree in mapping stage")
                struct_tree.add(ref)
        except KeyError:
            pass
        starts: list[_Visit] = []
        contents(self.trailer_view, (), set(), False, starts, glance)
        start = [(v.path, v.ref, v.in_struct) for v in starts]
        walks: dict[int, _Walk] = reader.__dict__.setdefault(_WALKS, {})
        prior = walks.get(revision - 1)
        written = _revision_views.written_in(xrefs, revision)
        if (prior is not None and written is not None and prior.start == start
                and prior.page_tree == page_tree and prior.struct_tree == struct_tree):
            top = tuple(renewed(v, written, set()) for v in prior.top)
            changed: frozenset[int] | None = frozenset(touched)
        else:
            found: list[_Visit] = []
            contents(self.trailer_view, (), set(), False, found, enter)
            top = tuple(found)
            changed = None
        walks.clear()  # the walk of the revision before is needed, no other
        walks[revision] = _Walk(start, page_tree, struct_tree, top, changed)
        self._indirect_object_access_cache = _PathsByRef(top, self)
    finally:
        # The visitors call themselves through their closure cells: a cycle that holds
        # the revision's copies until a full garbage collection, unless broken here.
        enter = contents = renewed = None  # type: ignore[assignment]


_original_well_formed_xml = MetadataUpdateRule.is_well_formed_xml
_WELL_FORMED_XMP = "_hsdt_well_formed_xmp"


def is_well_formed_xml(metadata_ref: generic.Reference) -> None:
    """pyHanko's ``MetadataUpdateRule.is_well_formed_xml`` (the XMP stream is a stream of
    well-formed XML, without entities, rooted at x:xmpmeta), its success remembered per file
    by the stream's decoded bytes.

    The rule checks the old and the new revision's metadata for every pair of revisions,
    and a record's signatures leave its XMP as the renderer wrote it: the same packet was
    parsed by lxml some thirty times per verification. The check reads nothing but those
    bytes, so the same bytes pass again; anything that does not pass (or cannot be read)
    goes to the original every time, and fails as it does.
    """
    stream = metadata_ref.get_object()
    reader = getattr(metadata_ref.pdf, "reader", None)
    if not isinstance(stream, generic.StreamObject) or not isinstance(reader, PdfFileReader):
        _original_well_formed_xml(metadata_ref)
        return
    try:
        data = stream.read_data(DecodePurpose.XMP_METADATA)
    except Exception:  # the original reads it again and says why
        _original_well_formed_xml(metadata_ref)
        return
    passed: set[bytes] = reader.__dict__.setdefault(_WELL_FORMED_XMP, set())
    if data not in passed:
        _original_well_formed_xml(metadata_ref)  # raises SuspiciousModification if not
        passed.add(data)


# -- 4. certificate validation within one verification ------------------------------------------

_original_validate_cert_usage = generic_cms.validate_cert_usage
_VALIDATIONS = "_hsdt_validations"


def remember_validations(vc: ValidationContext) -> None:
    """Let pyHanko's certificate validations with ``vc`` be remembered for as long as ``vc``
    lives (the verifier makes a context per verification, so: one verification).

    Only for a context that fetches nothing (certificates, OCSP, CRLs): then what a
    validation sees is fixed when the context is made (trust anchors, the certificates
    and revocation evidence given, the validation time), except for the certificates
    registered since, which are part of the key (see :func:`validate_cert_usage`). A
    context that fetches is left alone: asking again may legitimately answer otherwise.
    """
    if not vc.fetching_allowed and vc.certificate_registry.fetcher is None:
        vc.__dict__[_VALIDATIONS] = {}


async def validate_cert_usage(cert: x509.Certificate, validation_context: ValidationContext,
                              key_usage_settings: KeyUsageConstraints,
                              paths: CancelableAsyncIterator[ValidationPath],
                              pkix_validation_params: PKIXValidationParams | None = None) -> Any:
    """pyHanko's ``generic_cms.validate_cert_usage`` (path building, PKIX validation with
    revocation checks, key usage), its outcome remembered in a context prepared by
    :func:`remember_validations`.

    The key is everything the outcome depends on: the certificate's DER, the key usage
    required, the PKIX parameters, and the certificates the context knows (it only ever
    registers more, so their number identifies the set). Only paths pyHanko builds itself
    from the context are remembered, not an explicitly given path. A failure is
    remembered like a success (pyHanko returns both as a result); an exception is not.
    """
    memo: dict[tuple[Any, ...], Any] | None = validation_context.__dict__.get(_VALIDATIONS)
    if memo is None or not isinstance(paths, LazyPathIterator):
        return await _original_validate_cert_usage(cert, validation_context, key_usage_settings,
                                                   paths, pkix_validation_params)
    key = (cert.dump(), repr(key_usage_settings), repr(pkix_validation_params),
           len(validation_context.certificate_registry.certs))
    found = memo.get(key)
    if found is None:
        found = memo[key] = await _original_validate_cert_usage(
            cert, validation_context, key_usage_settings, paths, pkix_validation_params)
    else:
        await paths.cancel()  # as pyHanko does once it has its path
    return found


_original_ocsp_provenance = validate_ocsp._validate_delegated_ocsp_provenance


async def validate_delegated_ocsp_provenance(
        responder_cert: x509.Certificate, issuer: Authority, validation_context: ValidationContext,
        ee_path: ValidationPath, proc_state: ValProcState) -> None:
    """pyHanko-certvalidator's check that a delegated OCSP responder may answer for
    ``issuer``, its success remembered in a context prepared by :func:`remember_validations`
    for a responder whose certificate says it needs no revocation check (id-pkix-ocsp-nocheck).

    Each signer's OCSP response in a record comes from the same responder for the same CA,
    and the check validates the responder's certificate afresh for each: a new validation
    context, then a path of one certificate under ``issuer``, with no revocation check.
    What that validation sees is the responder's certificate, the issuer's name and key,
    and the context's time, algorithm policy and tolerance (fixed for the context). So a
    second request with the same three is answered as the first — after the same
    recursion guard, and with the same record of the responder's path in the context —
    and anything else, or a check that failed, goes to the original every time.
    """
    memo: dict[tuple[Any, ...], Any] | None = validation_context.__dict__.get(_VALIDATIONS)
    if (memo is None or responder_cert.ocsp_no_check_value is None
            or proc_state.check_path_verif_recursion(responder_cert)):
        await _original_ocsp_provenance(responder_cert, issuer, validation_context, ee_path,
                                        proc_state)
        return
    key = ("ocsp_nocheck_responder", responder_cert.dump(), issuer.name.dump(),
           issuer.public_key.dump())
    if key not in memo:
        await _original_ocsp_provenance(responder_cert, issuer, validation_context, ee_path,
                                        proc_state)  # raises if the responder may not answer
        memo[key] = True
        return
    chain = validate_ocsp._delegated_ocsp_response_path(responder_cert, issuer, ee_path)
    validation_context.record_validation(responder_cert, chain)  # as the original does


_original_verify_crl = validate.verify_crl


async def verify_crl(cert: x509.Certificate | cms.AttributeCertificateV2, path: ValidationPath,
                     validation_context: ValidationContext, use_deltas: bool = True,
                     proc_state: ValProcState | None = None) -> None:
    """pyHanko-certvalidator's CRL check of ``cert`` on ``path``, its success remembered in a
    context prepared by :func:`remember_validations`.

    Every signer's path in a record runs through the school's CA, whose status the root's
    CRL gives: the same check, with the same CRL, once per signature (thirteen times a
    record, in one context). What it sees is the certificate, its place in the path (the
    authority that issued it, and the path up to it, from which a CRL issuer's path is
    made), the CRLs the context holds and the context's time and policies (fixed for the
    context: it fetches nothing). The validation path stack (``proc_state``) only guards
    the first search for a CRL's issuer, which pyHanko-certvalidator then records in the
    context and does not search again; otherwise it names the certificate in errors. So a
    second check with the same certificate and path up to it passes as the first did; a
    check that fails goes to the original every time, and fails with its own error.
    """
    memo: dict[tuple[Any, ...], Any] | None = validation_context.__dict__.get(_VALIDATIONS)
    key = _crl_check_key(cert, path, use_deltas) if memo is not None else None
    if memo is None or key is None:
        await _original_verify_crl(cert, path, validation_context, use_deltas, proc_state)
    elif key not in memo:
        await _original_verify_crl(cert, path, validation_context, use_deltas, proc_state)
        memo[key] = True


def _crl_check_key(cert: object, path: ValidationPath, use_deltas: bool) -> tuple[Any, ...] | None:
    """The certificate, the trust anchor and the certificates from it down to ``cert``; None
    unless ``cert`` is a public-key certificate on ``path``."""
    if not isinstance(cert, x509.Certificate):
        return None
    der = cert.dump()
    above: list[bytes] = []
    for c in path.iter_certs(include_root=False):
        above.append(c.dump())
        if above[-1] == der:
            return ("crl", der, path.trust_anchor.authority.hashable, tuple(above), use_deltas)
    return None


# -- 5. certificates carried in signatures, parsed once per encoding -------------------------

_original_certificate_info = generic_cms.extract_certificate_info


def extract_certificate_info(signed_data: cms.SignedData) -> SignedDataCerts:
    """pyHanko's ``extract_certificate_info`` (the signer's certificate and the others a CMS
    carries), each certificate the thread's shared object for its encoding
    (:mod:`hsdt.signing.parsed`), and the answer kept for the same certificates and signer.

    Every signature of a record carries its signer's chain, and every timestamp the TSA's:
    the same few certificates, parsed afresh from each CMS, so that path building and
    revocation matching computed their names' hashes and key identifiers again for every
    signature of every record. The shared object has the same encoding, hence the same
    value. pyHanko's own code below, but for that substitution, which comes before the
    signer is looked for: the search compares each certificate's issuer and serial number,
    already parsed in a shared object and parsed afresh in a new one.

    The answer depends on two encodings only: the CMS's certificate set and its signer's
    identifier (as pyHanko reads it: the CMS's one signer info). The same two again — the
    same teacher's signature on the next record, the TSA's next timestamp — get the same
    shared certificates without the set being parsed or searched again. A refusal (no
    signer's certificate) is not kept, nor a set with attribute certificates (those are
    the CMS's own objects, not shared).
    """
    kept: dict[tuple[bytes, bytes], tuple[x509.Certificate, tuple[x509.Certificate, ...]]] = \
        parsed.thread_memo(_CERTIFICATE_INFOS)
    try:
        # the set's content octets as read (its dump would parse and re-encode every one)
        key: tuple[bytes, bytes] | None = (signed_data["certificates"].contents or b"",
                                           extract_signer_info(signed_data)["sid"].dump())
    except Exception:  # a CMS pyHanko refuses: it says why, in its own order, below
        key = None
    found = kept.get(key) if key is not None else None
    if found is not None:
        return SignedDataCerts(signer_cert=found[0], other_certs=list(found[1]), attribute_certs=[])
    certs: list[x509.Certificate] = []
    attr_certs: list[cms.AttributeCertificateV2] = []
    for c in signed_data["certificates"]:
        cert = c.chosen.untag()
        if c.name == "certificate":
            certs.append(parsed.load(x509.Certificate, cert.dump()))
        elif c.name == "v2_attr_cert":
            attr_certs.append(cert)
    signer_info = extract_signer_info(signed_data)
    signer_cert, other_certs = _partition_certs(certs, signer_info)
    if key is not None and not attr_certs:
        _asn1_memo.remember(kept, key, (signer_cert, tuple(other_certs)), CERTIFICATE_INFOS_KEPT)
    return SignedDataCerts(signer_cert=signer_cert, other_certs=other_certs,
                           attribute_certs=attr_certs)


_CERTIFICATE_INFOS = "certificate_infos"
CERTIFICATE_INFOS_KEPT = 4096
"""CMS certificate sets kept per thread (all forgotten at once when full): a school's signers."""


_original_signing_certificate = generic_cms._check_signing_certificate
_signing_certificates_passed: dict[tuple[bytes, bytes], None] = {}
SIGNING_CERTIFICATES_KEPT = 4096
"""Passed checks kept (all of them forgotten at once when full): a batch's worth of CMSs."""


def check_signing_certificate(cert: x509.Certificate, signed_attrs: cms.CMSAttributes) -> None:
    """pyHanko's check that a CMS's signing-certificate attribute names ``cert`` (ESS
    certificate identifier: the certificate's digest, its issuer and serial number), made
    once per CMS for a certificate that passes.

    pyHanko checks it when it picks the signer's certificate, again when it checks the
    signature's integrity (on a deep copy of the signed attributes), and the signature
    path asks for the signer's certificate twice: three checks per CMS, 31 CMSs per sealed
    record, each one finding the attribute among the signed ones, hashing the certificate
    and comparing the issuer's name afresh. The outcome depends on two encodings only, the
    certificate's and the signed attributes' (which hold the signature's own message
    digest, so they name one CMS). A refusal is not kept: the original refuses again,
    with its own error.
    """
    try:
        key = (cert.dump(), signed_attrs.contents or b"")
    except Exception:  # a damaged value: the original refuses it in its own way
        _original_signing_certificate(cert, signed_attrs)
        return
    if key in _signing_certificates_passed:
        return
    _original_signing_certificate(cert, signed_attrs)  # raises if it does not match
    _asn1_memo.remember(_signing_certificates_passed, key, None, SIGNING_CERTIFICATES_KEPT)


# -- the xref streams, read when a file is opened ----------------------------------------------

_original_xref_stream_object = XRefBuilder._read_xref_stream_object


def read_xref_stream_object(self: XRefBuilder) -> tuple[generic.Reference, generic.StreamObject]:
    """pyHanko's ``XRefBuilder._read_xref_stream_object``, its dictionary read by the window
    reader (:mod:`hsdt.signing._fastparse`) like every other object's.

    pyHanko reads an xref stream's dictionary with its own token-by-token reader (where
    every value means a read of a fresh window): 17 of them each time a sealed record is
    opened. For a dictionary (``<<``) both readers give the same object; anything else is
    read by pyHanko's, which refuses it in its own words. The rest is pyHanko's code.
    """
    stream = self.stream
    idnum, generation = read_object_header(stream, strict=self.strict)
    xrefstream_ref = generic.Reference(idnum, generation, pdf=self.handler)
    at = stream.tell()
    dictionary = stream.read(2) == b"<<"
    stream.seek(at)
    if dictionary:
        xrefstream = _fastparse.read_object(stream, xrefstream_ref)
    else:
        xrefstream = generic.StreamObject.read_from_stream(stream, xrefstream_ref)
    xrefstream.container_ref = xrefstream_ref
    assert xrefstream.raw_get("/Type") == "/XRef"
    return xrefstream_ref, xrefstream


# -- the reader's encryption dictionary --------------------------------------------------------

_original_encrypt_dict = PdfFileReader.encrypt_dict
_UNENCRYPTED = "_hsdt_unencrypted"


def _encrypt_dict(self: PdfFileReader) -> generic.DictionaryObject | None:
    """pyHanko's ``PdfFileReader.encrypt_dict``, its "none" remembered while the trailer
    stays as it was.

    The reader asks for it (through ``security_handler``) for every object it reads, and
    each time looks for /Encrypt in every revision's trailer, each miss an exception: 17
    revisions on a sealed record. A file without one is remembered as such for as long as
    the trailer has the same revisions and no new /Encrypt entry (a writer adds those);
    an encrypted file is asked every time, as before.
    """
    trailer = self.trailer
    state = (id(trailer), len(trailer._trailer_revisions))
    if self.__dict__.get(_UNENCRYPTED) == state and "/Encrypt" not in trailer._new_changes:
        return None
    found = cast(generic.DictionaryObject | None, _original_encrypt_dict.fget(self))  # type: ignore[attr-defined]
    if found is None and "/Encrypt" not in trailer._new_changes:
        self.__dict__[_UNENCRYPTED] = state
    return found


# -- 6. what the signatures of one file cover, hashed once --------------------------------------

_original_compute_digest = EmbeddedPdfSignature.compute_digest
_PREFIXES = "_hsdt_signed_prefixes"
_READ = 1 << 16


class _Prefix:
    """A hash of the file's first ``length`` bytes, grown as later signatures ask."""

    __slots__ = ("hasher", "length")

    def __init__(self, algorithm: str) -> None:
        self.hasher = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        self.length = 0


def _feed(md: hashes.Hash, stream: IO[bytes], start: int, count: int) -> None:
    stream.seek(start)
    while count > 0:
        chunk = stream.read(min(count, _READ))
        md.update(chunk)
        count -= len(chunk)


def compute_digest(self: EmbeddedPdfSignature, hash_algo: str | None = None) -> bytes:
    """pyHanko's digest of what a signature covers (its /ByteRange), each revision's bytes
    hashed once per file rather than once per signature that covers them.

    A signature covers the file from its start to its /Contents, then from the end of its
    /Contents to the end of its revision, and a later revision contains every earlier one
    byte for byte: 31 signatures and timestamps on a sealed record hashed some ten
    megabytes of a half-megabyte file. Here one hash runs along the file; each signature
    takes a copy of it where its /Contents begins and adds the rest of its revision. The
    digest is the same function of the same bytes. Anything else — a byte range not of the
    form [0 a b c] with the file holding all of it, a signature asked for out of file order,
    an algorithm pyHanko's own hashing would refuse — goes to pyHanko.
    """
    algorithm = hash_algo or self.external_md_algorithm
    found = self.external_digests.get(algorithm)
    if found is not None:
        return found
    stream = self.reader.stream
    byte_range = list(self.byte_range)
    if len(byte_range) != 4 or not all(type(n) is generic.NumberObject for n in byte_range):
        return cast(bytes, _original_compute_digest(self, hash_algo))
    zero, before, start, after = (int(n) for n in byte_range)
    size = stream.seek(0, 2)
    prefixes: dict[str, _Prefix] = self.reader.__dict__.setdefault(_PREFIXES, {})
    prefix = prefixes.get(algorithm)
    if prefix is None:
        try:
            prefix = prefixes[algorithm] = _Prefix(algorithm)
        except Exception:  # pyHanko says what it makes of the algorithm
            return cast(bytes, _original_compute_digest(self, hash_algo))
    if (zero != 0 or before < prefix.length or start < before or after < 0
            or start + after > size):
        return cast(bytes, _original_compute_digest(self, hash_algo))
    _feed(prefix.hasher, stream, prefix.length, before - prefix.length)
    prefix.length = before
    md = prefix.hasher.copy()
    _feed(md, stream, start, after)
    digest = self.external_digests[algorithm] = md.finalize()
    return digest


PATCHES: list[tuple[Any, str, Any, Any]] = [
    # (where, name, ours, pyHanko's or asn1crypto's own)
    (generic, "read_hex_string_from_stream", read_hex_string_from_stream, _original),
    (misc, "read_non_whitespace", read_non_whitespace, _original_read_non_whitespace),
    (generic, "read_non_whitespace", read_non_whitespace, _original_read_non_whitespace),
    (misc, "_read_until_class", _read_until_class, _original_read_until_class),
    (misc, "read_until_regex", read_until_regex, _original_read_until_regex),
    (generic, "read_until_regex", read_until_regex, _original_read_until_regex),
    (generic, "_decode_name", _decode_name, _original_decode_name),
    (generic, "_read_string_literal_bytes", _read_string_literal_bytes, _original_string_literal),
    (generic, "read_object", _fastparse.read_object, _fastparse._original_read_object),
    (x509.NameTypeAndValue, "_ldap_string_prep", _cached_prep, _original_prep),
    (x509.Name, "__eq__", _name_eq, _original_name_eq),
    (generic.Reference, "__init__", _reference_init, _original_reference_init),
    (PdfFileReader, "get_object", get_object, _original_get_object),
    (XRefBuilder, "_read_xref_stream_object", read_xref_stream_object,
     _original_xref_stream_object),
    (PdfFileReader, "encrypt_dict", property(_encrypt_dict, doc=_original_encrypt_dict.__doc__),
     _original_encrypt_dict),
    (PdfFileReader, "_get_object_from_stream", get_object_from_stream, _original_from_stream),
    (HistoricalResolver, "_load_reverse_xref_cache", load_reverse_xref_cache, _original_lut),
    (HistoricalResolver, "_subsume_object", _revision_views.subsume_object,
     _revision_views.original_subsume),
    (HistoricalResolver, "_collect_indirect_references",
     _revision_views.collect_indirect_references, _revision_views.original_collect),
    (XRefCache, "get_last_change", get_last_change, _original_last_change),
    (XRefCache, "get_introducing_revision", get_introducing_revision, _original_introducing),
    (XRefCache, "get_historical_ref", get_historical_ref, _original_historical_ref),
    (generic_cms, "validate_cert_usage", validate_cert_usage, _original_validate_cert_usage),
    (generic_cms, "extract_certificate_info", extract_certificate_info,
     _original_certificate_info),
    (generic_cms, "_check_signing_certificate", check_signing_certificate,
     _original_signing_certificate),
    (EmbeddedPdfSignature, "compute_digest", compute_digest, _original_compute_digest),
    (validate, "verify_crl", verify_crl, _original_verify_crl),
    (validate_ocsp, "_validate_delegated_ocsp_provenance", validate_delegated_ocsp_provenance,
     _original_ocsp_provenance),
    (core.ObjectIdentifier, "dotted", _asn1_memo.dotted, _asn1_memo.original_dotted),
    (x509.Name, "hashable", _asn1_memo.name_hashable, _asn1_memo.original_name_hashable),
    (DisallowWeakAlgorithmsPolicy, "signature_algorithm_allowed",
     _asn1_memo.signature_algorithm_allowed, _asn1_memo.original_signature_algorithm_allowed),
    (sig_validate, "_validate_raw", _asn1_memo.validate_raw, _asn1_memo.original_validate_raw),
    # validation only (signing builds attributes, and pyHanko's own module stays as it is)
    (generic_cms, "find_cms_attribute_iter", _asn1_memo.find_cms_attribute_iter,
     _asn1_memo.original_attribute_iter),
    (generic_cms, "find_unique_cms_attribute", _asn1_memo.find_unique_cms_attribute,
     _asn1_memo.original_unique_attribute),
    (validation_utils, "find_unique_cms_attribute", _asn1_memo.find_unique_cms_attribute,
     _asn1_memo.original_unique_attribute),
    (MetadataUpdateRule, "is_well_formed_xml", staticmethod(is_well_formed_xml),
     staticmethod(_original_well_formed_xml)),
    (SigFieldModificationRule, "check_form_field", _revision_views.check_signature_field,
     _revision_views.original_check_signature_field),
    (form_rules_api, "_list_fields", _revision_views.list_fields,
     _revision_views.original_list_fields),
]
"""Every speed-up, in one table: :func:`install` puts ours in, and the tests put the
originals back to compare."""


def install() -> None:
    for where, name, ours, _original_value in PATCHES:
        setattr(where, name, ours)
