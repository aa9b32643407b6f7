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

from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.pdf_utils.xref import XRefCache
from pyhanko.sign.diff_analysis import FieldComparisonContext, FieldComparisonSpec, FormUpdate
from pyhanko.sign.diff_analysis.commons import assert_not_stream
from pyhanko.sign.diff_analysis.policy_api import ModificationLevel
from pyhanko.sign.diff_analysis.rules.form_field_rules import SigFieldModificationRule

original_subsume = HistoricalResolver._subsume_object
original_collect = HistoricalResolver._collect_indirect_references  # for the patch table
original_check_signature_field = SigFieldModificationRule.check_form_field

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


def written_in(xrefs: XRefCache, revision: int) -> frozenset[int] | None:
    """The object numbers ``revision`` writes, when that alone says which objects it can
    have changed: no object freed in it (pyHanko refuses that anyway), and no hybrid
    cross-reference section anywhere (where an object's entry may come from the section
    after its own). None otherwise."""
    sections = xrefs._xref_sections
    if revision < 1 or any(s.xref_data.hybrid is not None for s in sections):
        return None
    data = sections[revision].xref_data
    if data.freed:
        return None
    return frozenset(idnum for idnum, _ in data.explicit_refs_in_revision)


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
            old_field, new_field = spec.old_field, spec.new_field
            if old_field:  # as the original: an empty dictionary is not compared
                assert_not_stream(old_field)
                assert_not_stream(new_field)
                _check_expected_contexts(spec)
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
