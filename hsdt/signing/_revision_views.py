"""pyHanko's per-revision views (``HistoricalResolver``): copying an object into a view, and
collecting the references an object depends on — the same results, less work per node.

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

from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver

original_subsume = HistoricalResolver._subsume_object
original_collect = HistoricalResolver._collect_indirect_references  # for the patch table

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
