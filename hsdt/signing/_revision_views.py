"""pyHanko's per-revision views (``HistoricalResolver``): copying an object into a view, and
collecting the references an object depends on — the same results, less work per node;
what a revision writes (:func:`written_in`), and the signature-field rule's comparison of
fields a revision does not write (:func:`check_signature_field`).

Modification analysis looks at every revision through its own view, and each view copies
every object it is asked for so that references inside resolve within that revision; the
orphan search and the form rules then walk those copies to collect dependencies. The two
functions run for every number and name of every object touched, once per revision, and
most of their time went on what is the same for every node of a plain file: an
``isinstance`` ladder, and a fresh ``Reference`` built for each number and name only to be
thrown away (pyHanko never copies those, nor changes their ``container_ref``).

Here the node types the reader produces are recognised by exact type. Anything else — an
encrypted object's proxy, a subclass, a node without a plain object reference as its
container (pyHanko raises "No container reference available" for those) — goes to pyHanko's
own method, node by node, so its results and its errors are unchanged. Traversal order is
pyHanko's, so the view's cache fills in the same order and the same error surfaces first.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from typing import Any

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.pdf_utils.xref import XRefCache
from pyhanko.sign.diff_analysis import (
    FieldComparisonContext,
    FieldComparisonSpec,
    FormUpdate,
    SuspiciousModification,
    form_rules_api,
)
from pyhanko.sign.diff_analysis.commons import assert_not_stream
from pyhanko.sign.diff_analysis.policy_api import ModificationLevel
from pyhanko.sign.diff_analysis.rules.form_field_rules import SigFieldModificationRule

WALKS = "_hsdt_walks"  # a reader's latest reverse-xref walk, by revision (hsdt.signing._speedups)
_PATHS_PASSED = "_hsdt_paths_passed"  # per field: the latest revision its paths were checked in
_WRITTEN = "_hsdt_written"  # on a reader's XRefCache: written_in, by revision
original_subsume = HistoricalResolver._subsume_object
original_collect = HistoricalResolver._collect_indirect_references  # for the patch table
original_check_signature_field = SigFieldModificationRule.check_form_field
original_list_fields = form_rules_api._list_fields
_reader_log = logging.getLogger("pyhanko.pdf_utils.reader")

_REF = generic.Reference
_IND = generic.IndirectObject
_DICT = generic.DictionaryObject
_STREAM = generic.StreamObject
_ARR = generic.ArrayObject
# What pyHanko's copy returns as it is (its last branch), and its walk does not enter.
_LEAVES = frozenset({generic.NumberObject, generic.FloatObject, generic.NameObject,
                     generic.BooleanObject, generic.NullObject, generic.TextStringObject,
                     generic.ByteStringObject})
# What it copies, binding the copy to the view.
_COPIED = frozenset({_IND, _DICT, _STREAM, _ARR})


def subsume_object(self: HistoricalResolver, obj: Any) -> Any:
    """``HistoricalResolver._subsume_object``: ``obj`` with every reference bound to this view."""
    cls = obj.__class__
    if cls not in _LEAVES and cls not in _COPIED:
        return original_subsume(self, obj)
    container = obj.container_ref
    if container.__class__ is not _REF:
        return original_subsume(self, obj)
    if cls in _LEAVES:
        return obj
    if cls is _IND:
        return _IND(obj.idnum, obj.generation, self)
    result: Any
    if cls is _ARR:
        result = _ARR([_child(self, v) for v in obj])
    elif cls is _DICT:
        result = _DICT({k: _child(self, v) for k, v in obj.items()})
    else:
        result = _STREAM({k: _child(self, v) for k, v in obj.items()},
                         encoded_data=obj.encoded_data)
    result.container_ref = _REF(container.idnum, container.generation, self)
    return result


def _child(self: HistoricalResolver, v: Any) -> Any:
    if v.__class__ in _LEAVES and v.container_ref.__class__ is _REF:
        return v  # the common case, without a call
    return self._subsume_object(v)


def collect_indirect_references(self: HistoricalResolver, obj: Any, seen: set[generic.Reference],
                                since_revision: int | None = None) -> None:
    """``HistoricalResolver._collect_indirect_references``: every reference ``obj`` reaches,
    into ``seen``; with ``since_revision``, only through objects introduced since then."""
    cls = obj.__class__
    if cls in _LEAVES:
        return
    if cls is _IND or (cls not in _COPIED and isinstance(obj, _IND)):
        ref = obj.reference
        if ref in seen:
            return
        if since_revision is not None \
                and self.reader.xrefs.get_introducing_revision(ref) < since_revision:
            return  # an older object: nothing new can be found below it
        seen.add(ref)
        obj = self(ref)
        cls = obj.__class__
    values: Any
    if cls is _DICT or cls is _STREAM or (cls is not _ARR and isinstance(obj, _DICT)):
        values = obj.values()
    elif cls is _ARR or isinstance(obj, _ARR):
        values = obj
    else:
        return
    for v in values:
        if v.__class__ not in _LEAVES:
            self._collect_indirect_references(v, seen, since_revision)


def revision_value(view: HistoricalResolver, ref: generic.Reference) -> Any:
    """What ``view.get_object(ref)`` would copy into the revision's view (or the copy, once
    made): the object as parsed, its references still the reader's. For reading what the
    copy would hold where the binding of its references does not matter (a walk that only
    follows paths, a field's name and type). Not for encrypted files, whose parsed values
    can be proxies decrypted on access."""
    obj = view.cache.get(ref)
    if obj is not None:
        return obj
    reader, revision = view.reader, view.revision
    try:
        last_change = reader.xrefs.get_last_change(ref)
    except KeyError:
        _reader_log.warning(f"Could not determine history of {ref} in xref sections")
        last_change = None
    if last_change is not None and last_change <= revision:
        obj = reader.get_object(ref, transparent_decrypt=False)
    else:
        obj = reader.get_object(ref, revision, transparent_decrypt=False)
    if obj.container_ref is None:
        # A placeholder for a damaged object stream entry: the view's copy fails on it ("No
        # container reference available"), and so must whatever reads it here.
        return view(ref)
    return obj


def _field_dict(ref: generic.Reference) -> generic.DictionaryObject | None:
    """A form field's dictionary as its revision's view would copy it, without the copy,
    for reading the field's own entries (its name, type, kids, whether it is a stream):
    the parsed dictionary, or None where the caller must ask the view as pyHanko does (an
    encrypted file; an object that is not a dictionary, whose errors are pyHanko's)."""
    view = ref.pdf
    if type(view) is HistoricalResolver and not view.reader.encrypted:
        obj = revision_value(view, ref)
        if isinstance(obj, _DICT):
            return obj
    return None


def written_in(xrefs: XRefCache, revision: int) -> frozenset[int] | None:
    """The object numbers ``revision`` writes, when that alone says which objects it can
    have changed: no object freed in it (pyHanko refuses that anyway), and no hybrid
    cross-reference section anywhere (where an object's entry may come from the section
    after its own). None otherwise."""
    known: dict[int, frozenset[int] | None] = xrefs.__dict__.setdefault(_WRITTEN, {})
    if revision in known:
        return known[revision]
    sections = xrefs._xref_sections
    found: frozenset[int] | None = None
    if revision >= 1 and not any(s.xref_data.hybrid is not None for s in sections):
        data = sections[revision].xref_data
        if not data.freed:
            found = frozenset(idnum for idnum, _ in data.explicit_refs_in_revision)
    known[revision] = found  # the sections are read once, with the file: asked for each field
    return found


def check_signature_field(self: SigFieldModificationRule, fq_name: str, spec: FieldComparisonSpec,
                          context: FieldComparisonContext
                          ) -> Iterator[tuple[ModificationLevel, FormUpdate]]:
    """``SigFieldModificationRule.check_form_field``, without the comparison of a signature
    field that the newer of two consecutive revisions does not write.

    Each revision of a sealed record writes one of its fifteen signature fields, and
    pyHanko compares all fifteen in every pair of revisions: a tenth of a verification.
    For a field the newer revision does not write, both revisions hold the very same
    dictionary, so the original's comparisons find the same keys and equal values (every
    equality of pyHanko's objects is structural) and can only fail where the dictionary is
    a stream; what it then yields is one update per expected context, for the field's own
    reference, valid when locked and when certifying, at the LTA level. A reference the
    revision does not write is in none of the sets the policy checks (it explains written
    references only, and unlocks nothing), so those updates change nothing in its result.
    What can fail still runs, in the original's order: the two fields are read, refused if
    streams, and their expected contexts computed (pyHanko's path checks can raise on odd
    structures: :func:`_check_expected_contexts`). Anything else — another rule, another
    spec, non-consecutive revisions, freed objects, hybrid files — is the original's.
    """
    old, new, ref = context.old, context.new, spec.new_field_ref
    if (type(self) is SigFieldModificationRule and type(spec) is FieldComparisonSpec
            and spec.field_type == "/Sig" and ref is not None and spec.old_field_ref == ref
            and old.reader is new.reader and old.revision == new.revision - 1):
        written = written_in(new.reader.xrefs, new.revision)
        if written is not None and ref.idnum not in written:
            # (an empty dictionary read as parsed asks the view too: the same empty copy)
            old_field = _field_dict(spec.old_field_ref) or spec.old_field
            new_field = _field_dict(ref) or spec.new_field
            if old_field:  # as the original: an empty dictionary is not compared
                assert_not_stream(old_field)
                assert_not_stream(new_field)
                if not _paths_passed_before(old, ref):
                    _check_expected_contexts(spec)
                _paths_passed(old, ref)
                return
    yield from original_check_signature_field(self, fq_name, spec, context)


def _check_expected_contexts(spec: FieldComparisonSpec) -> None:
    """What of ``FieldComparisonSpec.expected_contexts`` can raise, for a caller that drops
    its result: the field's paths in the older revision, each checked for the shape of a
    page annotation (pyHanko's check fails on some odd paths), and the search of the
    structure tree. The rest only wraps paths in contexts (frozen dataclasses, which cannot
    fail) and hashes them into a set, for each of fourteen fields in every pair of
    revisions."""
    if spec.old_field_ref is None:
        return
    spec._old_annotation_paths()
    spec._find_in_structure_tree()


def _paths_passed_before(old: HistoricalResolver, ref: generic.Reference) -> bool:
    """Whether ``ref``'s paths in ``old`` are the ones its check passed with in the revision
    before, so that checking them again can only pass again.

    The check reads nothing but the field's paths (:func:`_check_expected_contexts`), and
    they differ from the revision before's only where ``old``'s reverse-xref walk went
    again: the subtrees under the objects that revision writes, as they were and as they
    are (:attr:`_Walk.touched`). Every other visit, with its path, is the walk before's.
    A walk made whole, or none on record for ``old``, says nothing, and the check runs.
    Fourteen of a record's fifteen fields are checked in each pair of revisions; this
    leaves, in each, those a signature's revision reaches: its own field, mostly.
    """
    state = old.reader.__dict__
    walk = state.get(WALKS, {}).get(old.revision)
    if walk is None or walk.touched is None or ref.idnum in walk.touched:
        return False
    passed: dict[tuple[int, int], int] = state.get(_PATHS_PASSED, {})
    return passed.get((ref.idnum, ref.generation)) == old.revision - 1


def _paths_passed(old: HistoricalResolver, ref: generic.Reference) -> None:
    state = old.reader.__dict__
    state.setdefault(_PATHS_PASSED, {})[(ref.idnum, ref.generation)] = old.revision


def list_fields(old_fields: generic.PdfObject | None, new_fields: generic.PdfObject | None,
                old_path: RawPdfPath | None, parent_name: str = "", inherited_ft: Any = None
                ) -> Generator[tuple[str, FieldComparisonSpec], None, None]:
    """pyHanko's ``form_rules_api._list_fields`` (the fields of two revisions by name), with
    each field's dictionary read as parsed rather than copied into the revision's view.

    Every pair of revisions lists every field of both: each of a record's fifteen
    signature fields was copied into each revision's view (a deep copy of its
    dictionary, its rectangle, its appearance entries) to read its name, its type and
    whether it has kids — a twentieth of a verification. Those entries are the same
    objects in the copy (names and strings are not copied), a field with kids is read
    through the view as before (its kids must be the view's), and the copy is still made
    by whichever rule compares the field. The rest is pyHanko's code, line for line.
    """

    def _make_list(lst: generic.PdfObject | None, exc: type[Exception]
                   ) -> Iterator[tuple[str, tuple[Any, generic.Reference, Any, int]]]:
        if not isinstance(lst, generic.ArrayObject):
            raise exc("Field list is not an array.")
        names_seen = set()

        for ix, field_ref in enumerate(lst):
            if not isinstance(field_ref, generic.IndirectObject):
                raise exc("Fields must be indirect objects")

            field = _field_dict(field_ref.reference)
            if field is None or "/Kids" in field:  # kids are read through the view, as pyHanko does
                field = field_ref.get_object()
            if not isinstance(field, generic.DictionaryObject):
                raise exc("Fields must be dictionary objects")

            try:
                name = field.raw_get("/T")
            except KeyError:
                continue
            if not isinstance(name, (generic.TextStringObject, generic.ByteStringObject)):
                raise exc("Names must be strings")
            if name in names_seen:
                raise exc("Duplicate field name")
            elif "." in name:
                raise exc("Partial names must not contain periods")
            names_seen.add(name)

            fq_name = parent_name + "." + name if parent_name else name
            try:
                field_type = field.raw_get("/FT")
            except KeyError:
                field_type = inherited_ft

            try:
                kids = field["/Kids"]
            except KeyError:
                kids = generic.ArrayObject()

            if not kids and field_type is None:
                raise exc(f"Field type of terminal field {fq_name!r} could not be determined")
            yield fq_name, (field_type, field_ref.reference, kids, ix)

    old_fields_by_name = dict(_make_list(old_fields, misc.PdfReadError))
    new_fields_by_name = dict(_make_list(new_fields, SuspiciousModification))

    names: set[str] = set()
    names.update(old_fields_by_name.keys())
    names.update(new_fields_by_name.keys())

    for field_name in names:
        try:
            old_field_type, old_field_ref, old_kids, field_index = old_fields_by_name[field_name]
        except KeyError:
            old_field_type = old_field_ref = None
            old_kids = generic.ArrayObject()
            field_index = None

        try:
            new_field_type, new_field_ref, new_kids, _ = new_fields_by_name[field_name]
        except KeyError:
            new_field_type = new_field_ref = None
            new_kids = generic.ArrayObject()

        if old_field_ref and new_field_ref and (new_field_type != old_field_type):
            raise SuspiciousModification(f"Update changed field type of {field_name}")
        common_ft = old_field_type or new_field_type
        field_path = (old_path + field_index
                      if field_index is not None and old_path is not None else None)
        yield (field_name, FieldComparisonSpec(field_type=common_ft, old_field_ref=old_field_ref,
                                               new_field_ref=new_field_ref,
                                               old_canonical_path=field_path))

        # recursively descend into /Kids if necessary
        if old_kids or new_kids:
            yield from list_fields(old_kids, new_kids, parent_name=field_name,
                                   old_path=field_path + "/Kids" if field_path is not None else None,
                                   inherited_ft=common_ft)
