"""Each speed-up of :mod:`hsdt.signing._speedups` gives exactly what the original gives."""

from __future__ import annotations

import dataclasses
import io
from functools import partial
from typing import Any

import pikepdf
import pytest
from asn1crypto import cms, x509
from conftest import World
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfReadError, PdfStreamError
from pyhanko.pdf_utils.reader import PdfFileReader, RawPdfPath
from pyhanko.pdf_utils.xref import XRefSectionData
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffResult,
    FieldComparisonSpec,
    ModificationLevel,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.rules.form_field_rules import SigFieldModificationRule
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm
from pyhanko.sign.validation import generic_cms
from pyhanko_certvalidator import ValidationContext, validate
from pyhanko_certvalidator.errors import CRLValidationIndeterminateError, OCSPValidationError
from pyhanko_certvalidator.revinfo import validate_ocsp
from test_diff_analysis import _page_content_changed, _write

from hsdt.signing import _revision_views, _speedups, parsed, verification


@pytest.mark.parametrize("raw", [
    b"<48656c6c6f> rest", b"<>", b"<4 8\n65\r\n6C\t6c 6F>", b"<ABC>", b"<" + b"00" * 70_000 + b">x",
    b"<feff00480069>", b"<486>", b"<4>", b"< >", b"<\x00 48>",
])
def test_same_result_and_position(raw: bytes) -> None:
    a, b = io.BytesIO(raw), io.BytesIO(raw)
    assert _speedups.read_hex_string_from_stream(a) == _speedups._original(b)
    assert a.tell() == b.tell()


@pytest.mark.parametrize("raw", [b"<48zz>", b"<4865", b"<4g>", b"<48 6g 1>", b"<4g", b"<48-65>",
                                 b"<486\xff>", b"<" + b"00" * 70_000 + b"x>"])
def test_same_errors(raw: bytes) -> None:
    outcomes = []
    for reader in (_speedups.read_hex_string_from_stream, _speedups._original):
        with pytest.raises(PdfStreamError) as caught:
            reader(io.BytesIO(raw))
        outcomes.append(str(caught.value))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("value", ["Nguyễn Thị Thư", "  HSDT   Test  Root CA ", "ÅNGSTRÖM", "Ｈｏàng"])
def test_name_preparation_is_the_original(value: str) -> None:
    assert _speedups._cached_prep(x509.NameTypeAndValue(), value) == _speedups._original_prep(None, value)


# -- modification analysis: the reader's speed-ups against pyHanko's own functions ----------

def _same(a: Any, b: Any) -> bool:
    """Deep equality of two parsed PDF objects: types, values, references, stream bytes."""
    if type(a) is not type(b):
        return False
    if isinstance(a, generic.StreamObject) and a.encoded_data != b.encoded_data:
        return False
    if isinstance(a, generic.DictionaryObject):
        return list(a) == list(b) and all(_same(a.raw_get(k), b.raw_get(k)) for k in a)
    if isinstance(a, generic.ArrayObject):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, generic.IndirectObject):
        return a.reference == b.reference
    return bool(a == b)


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:  # the same error, word for word, is part of the contract
        return ("error", type(exc), str(exc))


def _readers(pdf: bytes) -> tuple[PdfFileReader, PdfFileReader]:
    return PdfFileReader(io.BytesIO(pdf), strict=False), PdfFileReader(io.BytesIO(pdf), strict=False)


def _all_refs(reader: PdfFileReader) -> set[generic.Reference]:
    return {generic.Reference(i, g, reader) for rev in range(reader.xrefs.total_revisions)
            for i, g in reader.xrefs.get_xref_data(rev).explicit_refs_in_revision}


def test_historical_objects_are_the_originals(sealed: bytes) -> None:
    ours, theirs = _readers(sealed)
    refs = _all_refs(ours)
    for rev in range(ours.xrefs.total_revisions):
        for ref in refs:
            if ours.xrefs.get_historical_ref(ref, rev) is None:
                continue
            mine = _speedups.get_object(ours, ref, rev)
            assert _same(mine, _speedups._original_get_object(theirs, ref, rev)), (ref, rev)
            # parsed once: pyHanko's own reader parses an old version again on every request
            assert _speedups.get_object(ours, ref, rev) is mine


@pytest.mark.parametrize(("ours", "theirs", "with_revision"), [
    (_speedups.get_last_change, _speedups._original_last_change, False),
    (_speedups.get_introducing_revision, _speedups._original_introducing, False),
    (_speedups.get_historical_ref, _speedups._original_historical_ref, True),
], ids=["last_change", "introducing_revision", "historical_ref"])
def test_xref_lookups_are_the_originals(sealed: bytes, ours: Any, theirs: Any,
                                        with_revision: bool) -> None:
    mine, orig = _readers(_page_annotated(sealed))  # an object rewritten after signing, too
    revisions = range(-1, mine.xrefs.total_revisions + 1) if with_revision else [None]
    for ref in [*_all_refs(mine), generic.Reference(999_999, 0, mine),
                generic.Reference(1, 5, mine)]:
        for rev in revisions:
            at = () if rev is None else (rev,)
            expected = _outcome(partial(theirs, orig.xrefs, ref, *at))
            for _ in range(2):  # computed, then remembered
                assert _outcome(partial(ours, mine.xrefs, ref, *at)) == expected, (ref, rev)


def test_each_objects_place_in_each_revision_is_read_once(sealed: bytes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    refs, revisions = _all_refs(reader), reader.xrefs.total_revisions
    read: list[int] = []
    original = XRefSectionData.try_resolve
    monkeypatch.setattr(XRefSectionData, "try_resolve",
                        lambda section, ref: (read.append(1), original(section, ref))[1])
    for rev in range(revisions):
        for ref in refs:
            reader.xrefs.get_historical_ref(ref, rev)
            reader.xrefs.get_last_change(ref)
            reader.xrefs.get_introducing_revision(ref)
    # at most once per section and object (not at all where the section has no entry for
    # it); pyHanko's own scans ask several times that many for every call
    assert len(refs) <= len(read) <= revisions * len(refs)


def _page_annotated(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    page["/Annots"].append(w.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Annot"), pdf_name("/Subtype"): pdf_name("/Square"),
        pdf_name("/Rect"): generic.ArrayObject(map(generic.FloatObject, (250, 600, 290, 615)))})))
    w.update_container(page["/Annots"] if isinstance(page.raw_get("/Annots"), generic.IndirectObject)
                       else page)
    return _write(w)


def _content_overwritten(pdf: bytes) -> bytes:
    """An update that rewrites an object the page already had (its content stream)."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    contents = page.raw_get("/Contents")
    first = contents[0] if isinstance(contents, generic.ArrayObject) else contents
    stream = first.get_object()
    stream._data = b"BT /F1 12 Tf 300 500 Td (10) Tj ET"  # the tampering
    stream._encoded_data = None
    w.mark_update(first)
    return _write(w)


def _visits(top: tuple[Any, ...]) -> set[int]:
    """The identities of every visit of a walk (the walk before is held, so they stay put)."""
    found, stack = set(), list(top)
    while stack:
        v = stack.pop()
        found.add(id(v))
        stack.extend(v.children)
    return found


_TAMPERINGS = {"sealed": lambda pdf: pdf, "annotated": _page_annotated,
               "content_overwritten": _content_overwritten, "content_added": _page_content_changed}


@pytest.mark.parametrize("tampering", list(_TAMPERINGS))
def test_reverse_xref_map_is_the_original(sealed: bytes, tampering: str) -> None:
    pdf = _TAMPERINGS[tampering](sealed)
    ours, theirs = _readers(pdf)
    refs = _all_refs(ours) | {generic.Reference(999_999, 0, ours)}
    carried_over = []
    for rev in range(ours.xrefs.total_revisions):
        mine, orig = ours.get_historical_resolver(rev), theirs.get_historical_resolver(rev)
        before = dict(ours.__dict__.get(_speedups._WALKS, {}))
        _speedups.load_reverse_xref_cache(mine)
        _speedups._original_lut(orig)
        built = mine._indirect_object_access_cache
        assert isinstance(built, _speedups._PathsByRef)  # paths made objects only when asked for
        expected = orig._indirect_object_access_cache
        assert expected is not None
        assert list(built.materialised().items()) == list(expected.items()), rev
        for ref in refs:
            assert mine._get_usages_of_ref(ref) == orig._get_usages_of_ref(ref), (rev, ref)
        walk, prior = ours.__dict__[_speedups._WALKS][rev], before.get(rev - 1)
        if prior is not None and _visits(walk.top) & _visits(prior.top):
            carried_over.append(rev)
    # Each signature's revision (its field, value and appearance) is the walk before with
    # the field walked again; the first signature's and the seal's rewrite the catalog.
    signatures = ours.xrefs.total_revisions - (2 if tampering == "sealed" else 3)
    assert set(range(2, 2 + signatures - 1)) <= set(carried_over), carried_over


def test_revisions_out_of_order_are_walked_whole(sealed: bytes) -> None:
    ours, theirs = _readers(sealed)
    for rev in (5, 3, 4, 9, 8):
        mine, orig = ours.get_historical_resolver(rev), theirs.get_historical_resolver(rev)
        _speedups.load_reverse_xref_cache(mine)
        _speedups._original_lut(orig)
        assert list(mine._indirect_object_access_cache.materialised().items()) == list(
            orig._indirect_object_access_cache.items()), rev


def test_a_damaged_object_fails_the_map_as_in_pyhanko(sealed: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """pyHanko stands a bare null in for an unreadable object-stream entry; copying it into
    a revision's view fails, and so must the walk that no longer copies."""
    info = PdfFileReader(io.BytesIO(sealed), strict=False).trailer.raw_get("/Info").idnum
    for build in (_speedups._original_lut, _speedups.load_reverse_xref_cache):
        reader = PdfFileReader(io.BytesIO(sealed), strict=False)
        read = reader._read_object

        def damaged(ref: generic.Reference, marker: Any, read: Any = read, **kw: Any) -> Any:
            return generic.NullObject() if ref.idnum == info else read(ref, marker, **kw)

        monkeypatch.setattr(reader, "_read_object", damaged)
        with pytest.raises(PdfReadError, match="No container reference"):
            build(reader.get_historical_resolver(3))


def _bound(a: Any, b: Any, ours: tuple[Any, ...], theirs: tuple[Any, ...]) -> bool:
    """Deep equality of two copies made by two revision views, bindings included: each
    ``container_ref`` and each reference must point at the same party on both sides (the
    view, or the reader behind it)."""
    def party(pdf: Any, side: tuple[Any, ...]) -> Any:
        return next((i for i, p in enumerate(side) if p is pdf), repr(pdf))

    def same_ref(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is y
        return type(x) is type(y) and x == y and party(x.pdf, ours) == party(y.pdf, theirs)

    if type(a) is not type(b) or not same_ref(a.container_ref, b.container_ref):
        return False
    if isinstance(a, generic.StreamObject) and a.encoded_data != b.encoded_data:
        return False
    if isinstance(a, generic.DictionaryObject):
        return list(a) == list(b) and all(_bound(a.raw_get(k), b.raw_get(k), ours, theirs)
                                          for k in a)
    if isinstance(a, generic.ArrayObject):
        return len(a) == len(b) and all(_bound(x, y, ours, theirs)
                                        for x, y in zip(a, b, strict=True))
    if isinstance(a, generic.IndirectObject):
        return same_ref(a.reference, b.reference)
    return bool(a == b)


def _pyhankos_own(monkeypatch: pytest.MonkeyPatch, fn: Any) -> Any:
    """``fn()`` with every speed-up undone (pyHanko's methods call each other by name)."""
    with monkeypatch.context() as m:
        for where, name, _ours, theirs in _speedups.PATCHES:
            m.setattr(where, name, theirs)
        return fn()


@pytest.mark.parametrize("tampering", list(_TAMPERINGS))
def test_revision_views_copy_and_collect_as_pyhanko(sealed: bytes, tampering: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every object of every revision, copied into the revision's view and walked for its
    dependencies (all of them, and those since the revision), as pyHanko's own methods do."""
    pdf = _TAMPERINGS[tampering](sealed)
    ours, theirs = _readers(pdf)
    refs = sorted(_all_refs(ours), key=lambda r: r.idnum)
    for rev in range(ours.xrefs.total_revisions):
        mine = ours.get_historical_resolver(rev)
        orig = _pyhankos_own(monkeypatch, partial(theirs.get_historical_resolver, rev))
        sides = (mine, ours), (orig, theirs)
        for since in (None, rev):
            assert mine.collect_dependencies(mine.trailer_view, since) == _pyhankos_own(
                monkeypatch, partial(orig.collect_dependencies, orig.trailer_view, since))
        for ref in refs:
            if ours.xrefs.get_historical_ref(ref, rev) is None:
                continue
            copy = mine(ref)
            expected = _pyhankos_own(monkeypatch, partial(
                orig, generic.Reference(ref.idnum, ref.generation, theirs)))
            assert _bound(copy, expected, *sides), (ref, rev)
            for since in (None, rev, rev + 1):
                got = _outcome(partial(mine.collect_dependencies, copy, since))
                assert got == _pyhankos_own(monkeypatch, partial(
                    _outcome, partial(orig.collect_dependencies, expected, since))), (ref, rev, since)


def test_a_view_of_a_damaged_object_fails_as_in_pyhanko(sealed: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An object stream entry pyHanko could not read stands in as a bare null (no container
    reference): copying it, or a dictionary holding it, fails with pyHanko's own error."""
    def damaged_reader() -> tuple[PdfFileReader, int]:
        reader = PdfFileReader(io.BytesIO(sealed), strict=False)
        info = reader.trailer.raw_get("/Info").idnum
        read = reader._read_object

        def damaged(ref: generic.Reference, marker: Any, **kw: Any) -> Any:
            return generic.NullObject() if ref.idnum == info else read(ref, marker, **kw)

        reader._read_object = damaged  # type: ignore[method-assign]
        return reader, info

    def attempt() -> Any:
        reader, info = damaged_reader()
        view = reader.get_historical_resolver(3)
        orphan = generic.DictionaryObject({pdf_name("/A"): generic.NullObject()})
        orphan.container_ref = generic.Reference(info, 0, reader)
        return (_outcome(lambda: view(generic.Reference(info, 0, reader))),
                _outcome(lambda: view._subsume_object(orphan)))

    mine = attempt()
    assert mine == _pyhankos_own(monkeypatch, attempt)
    assert all(o[0] == "error" and "No container reference" in o[2] for o in mine), mine


# -- within one verification: name comparisons and certificate validations ------------------

_NAMES = [x509.Name.build({"common_name": "Nguyễn  Thị Thư", "country_name": "VN"}),
          x509.Name.build({"common_name": "nguyễn thị thư", "country_name": "VN"}),
          x509.Name.build({"common_name": "Nguyễn Thị Thu", "country_name": "VN"}),
          x509.Name.build({"organization_name": "Nguyễn Thị Thư", "country_name": "VN"})]


def test_name_comparisons_are_the_originals_and_last_one_block() -> None:
    expected = [[_speedups._original_name_eq(a, b) for b in _NAMES] for a in _NAMES]
    assert expected[0][1] and not expected[0][2] and not expected[0][3]
    assert _speedups._name_memo.get() is None
    with _speedups.name_comparisons_remembered():
        for _ in range(2):  # computed, then remembered
            assert [[a == b for b in _NAMES] for a in _NAMES] == expected
            assert [[a != b for b in _NAMES] for a in _NAMES] == [[not e for e in r] for r in expected]
        assert _speedups._name_memo.get()
    assert _speedups._name_memo.get() is None  # nothing outlives the verification
    assert [[a == b for b in _NAMES] for a in _NAMES] == expected


def test_only_contexts_that_fetch_nothing_remember_validations(world: World) -> None:
    offline = ValidationContext(trust_roots=world.pki.trust_roots(), allow_fetching=False)
    online = ValidationContext(trust_roots=world.pki.trust_roots(), allow_fetching=True)
    _speedups.remember_validations(offline)
    _speedups.remember_validations(online)
    assert _speedups._VALIDATIONS in offline.__dict__ and _speedups._VALIDATIONS not in online.__dict__


def _report(world: World, pdf: bytes) -> dict[str, Any]:
    data = world.verifier(online=False).verify(pdf).to_json()
    data.pop("verified_at")
    return data


@pytest.mark.parametrize("tampering", list(_TAMPERINGS))
def test_verification_reports_are_the_same_without_the_speedups(
        world: World, sealed: bytes, tampering: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = _TAMPERINGS[tampering](sealed)
    validations: list[bytes] = []
    original = _speedups._original_validate_cert_usage

    async def counted(cert: x509.Certificate, *args: Any, **kwargs: Any) -> Any:
        validations.append(cert.dump())
        return await original(cert, *args, **kwargs)

    monkeypatch.setattr(_speedups, "_original_validate_cert_usage", counted)
    ours = _report(world, pdf)
    # one validation per certificate and context: the TSA's is not redone for every timestamp
    assert len(validations) == len(set(validations)) + 1  # the TSA's: signatures', archive's
    assert ours["verdict"] == ("valid" if tampering == "sealed" else "invalid")
    # Everything pyHanko's own: each speed-up undone, nothing parsed shared.
    for where, name, _ours, theirs in _speedups.PATCHES:
        monkeypatch.setattr(where, name, theirs)
    monkeypatch.setattr(generic_cms, "validate_cert_usage", counted)
    monkeypatch.setattr(parsed, "load", lambda kind, der: kind.load(der))
    assert _report(world, pdf) == ours


_XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
        b'<?xpacket end="w"?>')
_PACKETS = {
    "xmp": _XMP,
    "not_xml": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed></x:xmpmeta>",
    "entity": b'<!DOCTYPE x [<!ENTITY e "grade 10">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
    "not_xmp": b"<html><body>10</body></html>",
    "not_a_stream": b"",
}


def _metadata_ref(packet: str) -> generic.Reference:
    """The /Metadata reference of a one-page PDF's first revision, as the rule is given it."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    if packet == "not_a_stream":
        pdf.Root.Metadata = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Metadata))
    else:
        pdf.Root.Metadata = pdf.make_stream(_PACKETS[packet], Type=pikepdf.Name.Metadata,
                                            Subtype=pikepdf.Name.XML)
    out = io.BytesIO()
    pdf.save(out, fix_metadata_version=False)  # the packet as written, not rewritten
    reader = PdfFileReader(io.BytesIO(out.getvalue()), strict=False)
    return reader.get_historical_resolver(0).root.get_value_as_reference("/Metadata")


def _xmp_outcome(check: Any, ref: generic.Reference) -> str | None:
    try:
        check(ref)
    except Exception as exc:  # what is raised is what is compared
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("packet", list(_PACKETS))
def test_xmp_check_is_the_original_and_a_passed_packet_is_not_parsed_again(
        packet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _xmp_outcome(_speedups._original_well_formed_xml, _metadata_ref(packet))
    assert (expected is None) == (packet == "xmp")
    parsed_by_lxml: list[generic.Reference] = []
    original = _speedups._original_well_formed_xml

    def counted(ref: generic.Reference) -> None:
        parsed_by_lxml.append(ref)
        original(ref)

    monkeypatch.setattr(_speedups, "_original_well_formed_xml", counted)
    ref = _metadata_ref(packet)
    assert [_xmp_outcome(_speedups.is_well_formed_xml, ref) for _ in range(3)] == [expected] * 3
    # Passed once, remembered for the file; anything else goes to pyHanko every time.
    assert len(parsed_by_lxml) == (1 if expected is None else 3)
    assert _xmp_outcome(_speedups.is_well_formed_xml, _metadata_ref(packet)) == expected
    assert len(parsed_by_lxml) == (2 if expected is None else 4)  # another file: checked again


def _cms_of(sealed: bytes) -> list[cms.SignedData]:
    """Every SignedData of a sealed record: each signature, its timestamp token, and each
    archive timestamp."""
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    found: list[cms.SignedData] = []
    for sig in reader.embedded_signatures:
        found.append(sig.signed_data)
        token = sig.signer_info["unsigned_attrs"]
        for attr in (token if token.native else []):
            if attr["type"].native == "signature_time_stamp_token":
                found += [t["content"] for t in attr["values"]]
    return found


def test_certificates_of_a_cms_are_pyhankos_as_shared_objects(sealed: bytes) -> None:
    every = _cms_of(sealed)
    assert len(every) > 20  # signatures, their timestamps, the archive timestamps
    for signed_data in every:
        ours = _speedups.extract_certificate_info(signed_data)
        theirs = _speedups._original_certificate_info(signed_data)
        assert ours.signer_cert.dump() == theirs.signer_cert.dump()
        assert [c.dump() for c in ours.other_certs] == [c.dump() for c in theirs.other_certs]
        assert ours.attribute_certs == theirs.attribute_certs
        assert ours.signer_cert is parsed.load(x509.Certificate, theirs.signer_cert.dump())
    # A CMS without its signer's certificate is refused the same way.
    stripped = every[0].copy()
    signer_der = _speedups._original_certificate_info(stripped).signer_cert.dump()
    stripped["certificates"] = [c for c in stripped["certificates"] if c.chosen.dump() != signer_der]
    assert _outcome(lambda: _speedups.extract_certificate_info(stripped)) \
        == _outcome(lambda: _speedups._original_certificate_info(stripped))
    assert _outcome(lambda: _speedups.extract_certificate_info(stripped))[0] == "error"


def test_a_cms_certificate_set_seen_before_with_the_same_signer_is_not_searched_again(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed._local, "memos", {}, raising=False)  # this thread's, emptied
    searched: list[int] = []
    search = _speedups._partition_certs
    monkeypatch.setattr(_speedups, "_partition_certs",
                        lambda certs, info: (searched.append(1), search(certs, info))[1])
    every = _cms_of(sealed)
    first = [_speedups.extract_certificate_info(sd) for sd in every]
    again = [_speedups.extract_certificate_info(sd) for sd in _cms_of(sealed)]  # parsed afresh
    kinds = {(sd["certificates"].contents, sd["signer_infos"][0]["sid"].dump()) for sd in every}
    assert len(searched) == len(kinds) < len(every)  # the TSA's set, once for all its tokens
    for ours, before, signed_data in zip(again, first, every, strict=True):
        theirs = _speedups._original_certificate_info(signed_data)
        assert ours.signer_cert is before.signer_cert and ours.signer_cert.dump() == theirs.signer_cert.dump()
        assert [c.dump() for c in ours.other_certs] == [c.dump() for c in theirs.other_certs]
    # The same set naming another of its certificates as the signer: that one's answer.
    other = every[0].copy()
    named = first[0].other_certs[0]
    other["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value={"issuer": named.issuer, "serial_number": named.serial_number})
    assert _speedups.extract_certificate_info(other).signer_cert.dump() == named.dump() \
        == _speedups._original_certificate_info(other).signer_cert.dump()
    # A signer not in the set is refused each time, as pyHanko refuses it.
    stranger = every[0].copy()
    stranger["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        name="issuer_and_serial_number", value={"issuer": named.issuer, "serial_number": 1})
    for _ in range(2):
        assert _outcome(lambda: _speedups.extract_certificate_info(stranger)) \
            == _outcome(lambda: _speedups._original_certificate_info(stranger))
    assert _outcome(lambda: _speedups.extract_certificate_info(stranger))[0] == "error"


def test_an_ocsp_responder_is_checked_once_per_context_and_a_refusal_every_time(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []  # every request for the check
    checked: list[int] = []  # the ones pyHanko-certvalidator answered
    original = _speedups._original_ocsp_provenance

    async def counted(responder: x509.Certificate, issuer: Any, vc: ValidationContext,
                      *rest: Any) -> None:
        checked.append(id(vc))
        await original(responder, issuer, vc, *rest)

    async def asking(**kwargs: Any) -> None:  # pyHanko-certvalidator names every argument
        asked.append(1)
        await _speedups.validate_delegated_ocsp_provenance(**kwargs)

    monkeypatch.setattr(_speedups, "_original_ocsp_provenance", counted)
    monkeypatch.setattr(validate_ocsp, "_validate_delegated_ocsp_provenance", asking)
    assert world.verifier(online=False).verify(sealed).valid
    assert len(asked) >= 10 and len(checked) == len(set(checked)) < len(asked)  # once per context

    async def refusing(*args: Any, **kwargs: Any) -> None:
        checked.append(0)
        raise OCSPValidationError("the responder may not answer for this CA (test)")

    asked.clear()
    checked.clear()
    monkeypatch.setattr(_speedups, "_original_ocsp_provenance", refusing)
    refused = _report(world, sealed)
    assert len(checked) == len(asked) > 1  # a refusal is not remembered
    # The same report as with every request refused by pyHanko-certvalidator itself (the
    # signers' CRLs still speak for them: revocation is checked by OCSP or CRL).
    monkeypatch.setattr(validate_ocsp, "_validate_delegated_ocsp_provenance", refusing)
    assert _report(world, sealed) == refused


def test_a_cas_crl_check_is_made_once_per_context_and_a_refusal_every_time(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[int, bytes]] = []  # every check the paths ask for: context, certificate
    checked: list[tuple[int, bytes]] = []  # the ones pyHanko-certvalidator answered
    original = _speedups._original_verify_crl

    async def counted(cert: x509.Certificate, path: Any, vc: ValidationContext, *rest: Any) -> None:
        checked.append((id(vc), cert.dump()))
        await original(cert, path, vc, *rest)

    async def asking(cert: x509.Certificate, path: Any, vc: ValidationContext, *rest: Any,
                     **kwargs: Any) -> None:
        asked.append((id(vc), cert.dump()))
        await _speedups.verify_crl(cert, path, vc, *rest, **kwargs)

    monkeypatch.setattr(_speedups, "_original_verify_crl", counted)
    monkeypatch.setattr(validate, "verify_crl", asking)
    assert world.verifier(online=False).verify(sealed).valid
    # the CA's status, asked for on every signer's path, is checked once per context
    assert len(asked) >= 13 and len(checked) == len(set(checked)) == len(set(asked)) < len(asked)

    async def refusing(cert: x509.Certificate, path: Any, vc: ValidationContext, *rest: Any,
                       **kwargs: Any) -> None:
        checked.append((id(vc), cert.dump()))
        raise CRLValidationIndeterminateError("the CRLs say nothing about it (test)", failures=[],
                                              suspect_stale=None)

    asked.clear()
    checked.clear()
    monkeypatch.setattr(_speedups, "_original_verify_crl", refusing)
    refused = _report(world, sealed)
    assert refused["verdict"] == "invalid" and len(checked) == len(asked) >= 13  # never kept
    # The same report as with every check refused by pyHanko-certvalidator itself.
    monkeypatch.setattr(validate, "verify_crl", refusing)
    assert _report(world, sealed) == refused


def test_a_cms_signing_certificate_is_checked_once_and_a_refusal_every_time(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    every = _cms_of(sealed)
    signers = [_speedups._original_certificate_info(sd).signer_cert for sd in every]
    attrs = [sd["signer_infos"][0]["signed_attrs"] for sd in every]
    # Same outcome as pyHanko's for each CMS's own signer (passes) and for another
    # signer's certificate (refused: the digest in the attribute names someone else).
    for i, (cert, signed_attrs) in enumerate(zip(signers, attrs, strict=True)):
        other = next(c for c in signers if c.dump() != cert.dump())
        for candidate, expected in ((cert, "ok"), (other, "error")):
            ours = _outcome(partial(_speedups.check_signing_certificate, candidate, signed_attrs))
            theirs = _outcome(partial(_speedups._original_signing_certificate, candidate,
                                      signed_attrs))
            assert ours == theirs and ours[0] == expected, i
    # In a verification, pyHanko asks three times per CMS; it answers once per CMS, and a
    # refusal (never kept) is asked of it every time.
    answered: list[bytes] = []
    original = _speedups._original_signing_certificate

    def counted(cert: x509.Certificate, signed_attrs: cms.CMSAttributes) -> None:
        answered.append(signed_attrs.contents)
        original(cert, signed_attrs)

    monkeypatch.setattr(_speedups, "_original_signing_certificate", counted)
    monkeypatch.setattr(_speedups, "_signing_certificates_passed", {})
    asked: list[int] = []
    monkeypatch.setattr(generic_cms, "_check_signing_certificate",
                        lambda *a: (asked.append(1), _speedups.check_signing_certificate(*a))[1])
    assert world.verifier(online=False).verify(sealed).valid
    assert len(answered) == len(set(answered)) == len(every) < len(asked)
    answered.clear()
    stranger = next(c for c in signers if c.dump() != signers[0].dump())
    for _ in range(2):
        with pytest.raises(Exception, match="Signing certificate attribute does not match"):
            _speedups.check_signing_certificate(stranger, attrs[0])
    assert len(answered) == 2


def _signatures(pdf: bytes) -> list[Any]:
    return list(PdfFileReader(io.BytesIO(pdf)).embedded_signatures)


def test_what_each_signature_covers_is_hashed_once_and_digested_as_pyhanko_does(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fed: list[int] = []
    feed = _speedups._feed
    monkeypatch.setattr(_speedups, "_feed", lambda md, stream, start, count: (
        fed.append(count), feed(md, stream, start, count))[1])
    tampered = bytearray(sealed)
    tampered[sealed.index(b"stream", 2000) + 40] ^= 1  # a stream of the first revision: all cover it
    for pdf in (sealed, bytes(tampered)):
        ours, theirs = _signatures(pdf), _signatures(pdf)
        assert len(ours) >= 16  # 15 signatures and the archive timestamp
        fed.clear()
        digests = [_speedups.compute_digest(s) for s in ours]
        assert digests == [_speedups._original_compute_digest(s) for s in theirs]
        assert len(pdf) // 2 < sum(fed) < 1.1 * len(pdf)  # pyHanko's: over ten times the file
        assert [_speedups.compute_digest(s) for s in ours] == digests  # kept, as pyHanko does
    assert digests != [_speedups.compute_digest(s) for s in _signatures(sealed)]


def test_a_signature_out_of_file_order_or_past_the_end_is_hashed_by_pyhanko(sealed: bytes) -> None:
    ours, theirs = _signatures(sealed), _signatures(sealed)
    last, first = ours[-1], ours[0]
    assert _speedups.compute_digest(last) == _speedups._original_compute_digest(theirs[-1])
    assert _speedups.compute_digest(first) == _speedups._original_compute_digest(theirs[0])
    odd, theirs_odd = _signatures(sealed)[1], _signatures(sealed)[1]
    for s in (odd, theirs_odd):  # a range that runs past the end of the file
        s.byte_range = generic.ArrayObject([*list(s.byte_range)[:3], generic.NumberObject(len(sealed))])
    assert _speedups.compute_digest(odd) == _speedups._original_compute_digest(theirs_odd)


def test_a_reference_is_made_as_pyhankos_frozen_dataclass_makes_it() -> None:
    assert generic.Reference.__init__ is _speedups._reference_init
    for args, kwargs in (((5,), {}), ((5, 2), {}), ((5, 0, "pdf"), {}),
                         ((), {"idnum": 7, "pdf": "x"}), ((8,), {"generation": 1})):
        ours = generic.Reference(*args, **kwargs)
        theirs = object.__new__(generic.Reference)
        _speedups._original_reference_init(theirs, *args, **kwargs)
        assert vars(ours) == vars(theirs) and ours == theirs and hash(ours) == hash(theirs)
        assert repr(ours) == repr(theirs) and ours.pdf is theirs.pdf
        with pytest.raises(dataclasses.FrozenInstanceError):
            ours.idnum = 1  # type: ignore[misc]
    bare = object.__new__(generic.Reference)
    assert _outcome(partial(generic.Reference.__init__, bare)) == _outcome(
        partial(_speedups._original_reference_init, bare))  # idnum is required, same words


def test_a_file_without_encryption_is_remembered_as_such_and_an_encrypted_one_never(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    original = _speedups._original_encrypt_dict

    class Counting:
        @staticmethod
        def fget(reader: PdfFileReader) -> Any:
            asked.append(1)
            return original.fget(reader)

    monkeypatch.setattr(_speedups, "_original_encrypt_dict", Counting)
    reader = PdfFileReader(io.BytesIO(sealed))
    assert [reader.encrypt_dict for _ in range(5)] == [None] * 5 and len(asked) == 1
    reader.trailer["/Encrypt"] = generic.DictionaryObject({pdf_name("/Filter"): pdf_name("/Standard")})
    with pytest.raises(PdfReadError, match="indirect reference"):  # pyHanko's answer: asked again
        _ = reader.encrypt_dict
    asked.clear()
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(sealed)) as doc:
        doc.save(out, encryption=pikepdf.Encryption(owner="chu", user="", R=4))
    encrypted = PdfFileReader(out)
    found = [encrypted.encrypt_dict for _ in range(3)]
    assert all(d is not None and d["/Filter"] == "/Standard" for d in found) and len(asked) == 3


def _xref_view(reader: PdfFileReader) -> list[Any]:
    sections = reader.xrefs._xref_sections
    return [(s.meta_info, sorted(s.xref_data.explicit_refs_in_revision),
             dict(s.xref_data.xrefs_in_objstm), dict(s.xref_data.standard_xrefs)) for s in sections]


def test_xref_streams_read_as_pyhanko_reads_them(sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyhanko.pdf_utils.xref import XRefBuilder
    token_by_token: list[int] = []
    original_reader = generic.DictionaryObject.read_from_stream
    with monkeypatch.context() as m:
        m.setattr(generic.DictionaryObject, "read_from_stream", staticmethod(
            lambda *a, **k: (token_by_token.append(1), original_reader(*a, **k))[1]))
        ours = PdfFileReader(io.BytesIO(sealed), strict=False)
    assert not token_by_token  # every xref dictionary read by the window reader
    with monkeypatch.context() as m:
        m.setattr(XRefBuilder, "_read_xref_stream_object", _speedups._original_xref_stream_object)
        theirs = PdfFileReader(io.BytesIO(sealed), strict=False)
    assert len(_xref_view(ours)) == 17 and _xref_view(ours) == _xref_view(theirs)
    for rev in range(17):
        assert _same(ours.trailer.flatten(rev), theirs.trailer.flatten(rev))
    # The last xref stream's dictionary damaged: refused in pyHanko's words either way.
    at = sealed.rindex(b"/Type /XRef") if b"/Type /XRef" in sealed else sealed.rindex(b"/Type/XRef")
    start = sealed.rindex(b"<<", 0, at)
    for damaged in (sealed[:start] + b"[[" + sealed[start + 2:],
                    sealed[:start] + b"<</Type /NotXRef" + sealed[start + 2:]):
        mine = _outcome(lambda d=damaged: PdfFileReader(io.BytesIO(d), strict=True))
        with monkeypatch.context() as m:
            m.setattr(XRefBuilder, "_read_xref_stream_object", _speedups._original_xref_stream_object)
            original = _outcome(lambda d=damaged: PdfFileReader(io.BytesIO(d), strict=True))
        assert mine[0] == original[0] == "error" and mine[1:] == original[1:]


# -- the signature-field rule: fields a revision does not write --------------------------

def _signed_field_changed(pdf: bytes) -> bytes:
    """An update that rewrites a field signed earlier (its tooltip changed)."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    first = w.root["/AcroForm"]["/Fields"].raw_get(0)
    first.get_object()["/TU"] = generic.TextStringObject("đã sửa")
    w.mark_update(first)
    return _write(w)


def _signed_field_restated(pdf: bytes) -> bytes:
    """An update that writes a signed field again, unchanged: compared, not passed over."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    w.mark_update(w.root["/AcroForm"]["/Fields"].raw_get(1))
    return _write(w)


def _field_reached_oddly(pdf: bytes) -> bytes:
    """An update that gives a signed field, which it does not write, a path pyHanko's
    annotation-path check fails on (as a page's kid), then one more update: in that last
    pair the field's paths are new, and must be checked again (and fail) although the
    field passed in every pair before."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    page["/Kids"] = generic.ArrayObject([w.root["/AcroForm"]["/Fields"].raw_get(0)])
    w.update_container(page)
    return _signed_field_restated(_write(w))


_FIELD_TAMPERINGS = {**_TAMPERINGS, "signed_field_changed": _signed_field_changed,
                     "signed_field_restated": _signed_field_restated,
                     "field_reached_oddly": _field_reached_oddly}


def _pair_outcome(reader: PdfFileReader, rev: int) -> tuple[Any, list[Any]]:
    """What pyHanko's standard policy says of revision ``rev`` against the one before (its
    result, or its error), and the form updates it met on the way."""
    rule = verification._RecordingFormRule(DEFAULT_DIFF_POLICY.form_rule)
    policy = StandardDiffPolicy(global_rules=DEFAULT_DIFF_POLICY.global_rules, form_rule=rule)
    outcome: Any
    try:
        result = policy.apply(reader.get_historical_resolver(rev - 1),
                              reader.get_historical_resolver(rev))
        outcome = (result.modification_level, result.changed_form_fields)
    except Exception as exc:  # the errors are what is compared
        outcome = (type(exc).__name__, str(exc))
    return outcome, rule.updates


def _field_outcomes(pdf: bytes, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Each pair of consecutive revisions, judged with the rule as installed and with
    pyHanko's own: (ours, theirs)."""
    ours, theirs = _readers(pdf)
    pairs = []
    for rev in range(1, ours.xrefs.total_revisions):
        mine = _pair_outcome(ours, rev)
        with monkeypatch.context() as m:
            m.setattr(SigFieldModificationRule, "check_form_field",
                      _revision_views.original_check_signature_field)
            pairs.append((mine, _pair_outcome(theirs, rev)))
    return pairs


def _as_result(outcome: Any) -> Any:
    """A pair's outcome (see :func:`_pair_outcome`) as the policy gave it."""
    if isinstance(outcome[0], str):
        return SuspiciousModification(outcome[1])
    return DiffResult(*outcome)


_LOCKS = [(None, None), (FieldMDPSpec(FieldMDPAction.ALL), None), (None, MDPPerm.FILL_FORMS),
          (FieldMDPSpec(FieldMDPAction.ALL), MDPPerm.NO_CHANGES)]


@pytest.mark.parametrize("tampering", list(_FIELD_TAMPERINGS))
def test_fields_a_revision_does_not_write_are_judged_as_pyhanko_judges_them(
        sealed: bytes, tampering: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = _FIELD_TAMPERINGS[tampering](sealed)
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    for rev, ((ours, our_updates), (theirs, their_updates)) in enumerate(
            _field_outcomes(pdf, monkeypatch), start=1):
        assert ours == theirs, (tampering, rev)
        # What is left out is only what cannot matter: updates of fields this revision does
        # not write, valid when locked and when certifying.
        written = _revision_views.written_in(reader.xrefs, rev)
        assert written is not None
        left_out = list(their_updates)
        for update in our_updates:
            left_out.remove(update)
        assert all(u.updated_ref.idnum not in written and u.valid_when_locked
                   and u.valid_when_certifying for u in left_out), (tampering, rev)
        for locks in _LOCKS:  # and under every signature's locks, the same judgement
            judged = [verification._RevisionAnalysis(_as_result(outcome), tuple(updates)).under(*locks)
                      for outcome, updates in ((ours, our_updates), (theirs, their_updates))]
            assert [repr(j) for j in judged] == [repr(judged[1])] * 2, (tampering, rev, locks)
    if tampering == "signed_field_changed":
        assert "/TU" in str(theirs) and "differ" in str(theirs)  # the last pair: refused
    if tampering == "signed_field_restated":
        assert theirs[0] is ModificationLevel.LTA_UPDATES  # compared, found the same
    if tampering == "field_reached_oddly":
        assert theirs[0] == "ValueError"  # the last pair: the new path fails pyHanko's check


_FIELD_PATHS = {
    "annotation": [("/Root", "/Pages", "/Kids", 0, "/Annots", 3)],
    "form only": [("/Root", "/AcroForm", "/Fields", 3)],
    "structure tree": [("/Root", "/StructTreeRoot", "/K", 0, "/K", 2, "/K", "/Obj")],
    # pyHanko's annotation-path check unpacks past the end of this one: a ValueError
    "nested page-tree kids": [("/Root", "/Pages", "/Kids", 0, "/Kids", 1)],
    "several": [("/Root", "/AcroForm", "/Fields", 3), ("/Root", "/Pages", "/Kids", 0, "/Annots", 3)],
    "none": [],
}


@pytest.mark.parametrize("paths", list(_FIELD_PATHS))
def test_the_expected_contexts_of_a_field_fail_where_pyhankos_fail(
        sealed: bytes, paths: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """For a field a revision does not write, only the failures of expected_contexts matter
    (its contexts are dropped): the check that skips building them fails exactly where it
    fails, with the same error, and passes where it passes."""
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    old = reader.get_historical_resolver(3)
    field = old.root["/AcroForm"].raw_get("/Fields").get_object().raw_get(3).reference
    usages = {RawPdfPath(*p) for p in _FIELD_PATHS[paths]}
    monkeypatch.setattr(old, "_get_usages_of_ref", lambda ref: usages if ref == field else set())
    spec = FieldComparisonSpec("/Sig", field, field, RawPdfPath("/Root", "/AcroForm", "/Fields", 3))
    outcomes = []
    for check in (FieldComparisonSpec.expected_contexts, _revision_views._check_expected_contexts):
        try:
            check(spec)
            outcomes.append(None)
        except Exception as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is not None) == (paths == "nested page-tree kids")


def test_a_field_a_revision_does_not_write_is_not_compared_again(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[str] = []
    original = SigFieldModificationRule.compare_fields

    def counting(self: Any, spec: Any) -> bool:
        compared.append(spec.new_field_ref)
        return original(self, spec)

    monkeypatch.setattr(SigFieldModificationRule, "compare_fields", counting)
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    _pair_outcome(reader, reader.xrefs.total_revisions - 3)  # a signature's revision
    assert len(compared) == 1  # the field it signs; pyHanko compares all fifteen


def test_a_fields_paths_are_checked_again_only_where_a_revision_reaches_them(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[int] = []
    original = _revision_views._check_expected_contexts

    def counting(spec: FieldComparisonSpec) -> None:
        checked.append(spec.old_field_ref.idnum)  # type: ignore[union-attr]
        original(spec)

    monkeypatch.setattr(_revision_views, "_check_expected_contexts", counting)
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    fields = len(reader.get_historical_resolver(1).root["/AcroForm"]["/Fields"])
    per_pair: list[list[int]] = []
    for rev in range(2, reader.xrefs.total_revisions):
        before = len(checked)
        _pair_outcome(reader, rev)
        per_pair.append(checked[before:])
    # The first pair's older revision was walked whole: every field the newer one does not
    # write is checked. After that, a signature's pair checks again only the field its
    # older revision signed, whose paths that revision wrote anew (pyHanko checks all
    # fourteen in every pair).
    assert len(per_pair[0]) == fields - 1
    for rev, again in enumerate(per_pair[1:-1], start=3):
        written = _revision_views.written_in(reader.xrefs, rev - 1)
        assert written is not None and len(again) == 1 and again[0] in written, (rev, again)


def test_a_field_that_fails_fails_alike(sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyHanko's path checks raise on some odd structures: for a field a revision does not
    # write, the error must surface as it does in pyHanko, at the same field.
    original = FieldComparisonSpec._old_annotation_paths
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    odd = reader.root["/AcroForm"]["/Fields"].raw_get(2).reference.idnum

    def failing(self: FieldComparisonSpec) -> Any:
        if self.old_field_ref is not None and self.old_field_ref.idnum == odd:
            raise ValueError(f"odd path to {self.old_field_ref}")
        return original(self)

    monkeypatch.setattr(FieldComparisonSpec, "_old_annotation_paths", failing)
    pairs = _field_outcomes(sealed, monkeypatch)
    assert all(ours == theirs for (ours, _), (theirs, _) in pairs)
    assert sum(ours[0] == "ValueError" for (ours, _), _ in pairs) >= len(pairs) - 4


def test_a_stream_for_a_field_is_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    field = pdf.make_indirect(pikepdf.Stream(pdf, b"", pikepdf.Dictionary(
        FT=pikepdf.Name.Sig, T=pikepdf.String("s1"), Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Widget, Rect=[0, 0, 0, 0])))
    pdf.Root.AcroForm = pdf.make_indirect(pikepdf.Dictionary(Fields=pikepdf.Array([field])))
    out = io.BytesIO()
    pdf.save(out)
    w = IncrementalPdfFileWriter(io.BytesIO(out.getvalue()))
    w.set_info(generic.DictionaryObject({pdf_name("/Title"): generic.TextStringObject("x")}))
    (ours, _), (theirs, _) = _field_outcomes(_write(w), monkeypatch)[0]
    assert ours == theirs and "Unexpected stream" in theirs[1]


# -- listing the form's fields: each field read as parsed, not copied -----------------------

def _field_with_kids_added(pdf: bytes) -> bytes:
    """A text field with two widget kids, appended to the form: read through the view."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    parent = generic.DictionaryObject({pdf_name("/FT"): pdf_name("/Tx"),
                                       pdf_name("/T"): generic.TextStringObject("ghi_chu")})
    parent_ref = w.add_object(parent)
    kids = generic.ArrayObject()
    for i in range(2):
        kids.append(w.add_object(generic.DictionaryObject({
            pdf_name("/T"): generic.TextStringObject(f"dong{i}"), pdf_name("/Parent"): parent_ref})))
    parent[pdf_name("/Kids")] = kids
    fields = w.root["/AcroForm"]["/Fields"]
    fields.append(parent_ref)
    w.update_container(fields)
    return _write(w)


def _field_not_a_dictionary(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    fields = w.root["/AcroForm"]["/Fields"]
    fields.append(w.add_object(generic.ArrayObject([generic.NumberObject(1)])))
    w.update_container(fields)
    return _write(w)


def _field_name_indirect(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    fields = w.root["/AcroForm"]["/Fields"]
    field = fields[0].get_object()
    field[pdf_name("/T")] = w.add_object(generic.TextStringObject("ten"))
    w.update_container(field)
    return _write(w)


_LISTINGS = {**_FIELD_TAMPERINGS, "field_with_kids": _field_with_kids_added,
             "field_not_a_dictionary": _field_not_a_dictionary,
             "field_name_indirect": _field_name_indirect}


def _listed(list_fields: Any, old: Any, new: Any) -> Any:
    path = RawPdfPath("/Root", "/AcroForm", "/Fields")
    try:
        return [(name, spec.field_type, spec.old_field_ref, spec.new_field_ref, spec.old_canonical_path)
                for name, spec in list_fields(old.root["/AcroForm"]["/Fields"],
                                              new.root["/AcroForm"]["/Fields"], old_path=path)]
    except Exception as exc:  # the errors are what is compared
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("tampering", list(_LISTINGS))
def test_the_form_s_fields_are_listed_as_pyhanko_lists_them(sealed: bytes, tampering: str) -> None:
    pdf = _LISTINGS[tampering](sealed)
    ours, theirs = _readers(pdf)
    last = ours.xrefs.total_revisions - 1
    pairs = [(rev - 1, rev) for rev in range(2, last + 1)] + [(1, last), (3, 2)]
    outcomes = []
    for a, b in pairs:
        mine = _listed(_revision_views.list_fields, ours.get_historical_resolver(a),
                       ours.get_historical_resolver(b))
        outcomes.append(mine)
        assert mine == _listed(_revision_views.original_list_fields, theirs.get_historical_resolver(a),
                               theirs.get_historical_resolver(b)), (tampering, a, b)
    if tampering == "field_with_kids":
        assert any(n == "ghi_chu.dong1" for n, *_ in outcomes[-3])  # the kids, listed by name
    if tampering == "field_not_a_dictionary":
        assert outcomes[-3] == ("SuspiciousModification", "Fields must be dictionary objects")
    if tampering == "field_name_indirect":
        assert outcomes[-3] == ("SuspiciousModification", "Names must be strings")


def test_listing_the_fields_copies_no_field_into_the_revisions(sealed: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(sealed), strict=False)
    old, new = reader.get_historical_resolver(5), reader.get_historical_resolver(6)
    listed = list(_revision_views.list_fields(old.root["/AcroForm"]["/Fields"],
                                              new.root["/AcroForm"]["/Fields"], old_path=None))
    assert len(listed) == 15
    fields = {spec.new_field_ref for _, spec in listed}
    assert not fields & set(old.cache) and not fields & set(new.cache)
    # pyHanko's own listing copies each of them into both revisions' views
    list(_revision_views.original_list_fields(old.root["/AcroForm"]["/Fields"],
                                              new.root["/AcroForm"]["/Fields"], old_path=None))
    assert fields <= set(old.cache) and fields <= set(new.cache)
