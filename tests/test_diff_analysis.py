"""The verifier's modification analysis gives every signature what pyHanko itself gives.

The verifier analyses each revision once, against its predecessor, and applies each
signature's own locks (FieldMDP, DocMDP) to that shared analysis
(``verification._ConsecutiveDiffPolicy``); the reader underneath runs with the speed-ups of
``hsdt.signing._speedups``. The references here are computed by pyHanko alone, with its own
reader functions put back:

- pyHanko's stock analysis (each signed revision against every later one): the same
  results, message for message, on a complete record and where a field is added after
  signing; where a record was tampered with, the same signatures refused or more;
- the same per-revision comparison without any memo (``StandardDiffPolicy.apply`` called
  afresh for every signature and every pair): the same results everywhere.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import World
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign import fields
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffPolicy,
    DiffResult,
    ModificationLevel,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm

from hsdt.signing import _speedups
from hsdt.signing.verification import _ConsecutiveDiffPolicy

Finding = tuple[str, int, str, tuple[Any, ...], bool | None]


@pytest.fixture
def pyhanko_alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Call the returned function to put pyHanko's own reader functions back."""

    def undo() -> None:
        for where, name, _ours, theirs in _speedups.PATCHES:
            monkeypatch.setattr(where, name, theirs)

    yield undo


class _PerPairUnmemoised(StandardDiffPolicy):
    """Each revision against its predecessor, ``apply`` run afresh for every signature."""

    def __init__(self) -> None:
        super().__init__(global_rules=DEFAULT_DIFF_POLICY.global_rules,
                         form_rule=DEFAULT_DIFF_POLICY.form_rule)

    def review_file(self, reader: PdfFileReader, base_revision: int | HistoricalResolver,
                    field_mdp_spec: FieldMDPSpec | None = None, doc_mdp: MDPPerm | None = None
                    ) -> DiffResult | SuspiciousModification:
        base = base_revision if isinstance(base_revision, int) else base_revision.revision
        level, changed = ModificationLevel.NONE, set()
        for rev in range(base + 1, reader.xrefs.total_revisions):
            try:
                result = self.apply(reader.get_historical_resolver(rev - 1),
                                    reader.get_historical_resolver(rev), field_mdp_spec, doc_mdp)
            except SuspiciousModification as exc:
                return exc
            level = max(level, result.modification_level)
            changed |= result.changed_form_fields
        return DiffResult(level, changed)


def _message(exc: SuspiciousModification) -> str:
    # Paths listed in a message come from a set: their order is not part of the finding.
    lines = []
    for line in str(exc).splitlines():
        head, sep, tail = line.partition(" is also used in ")
        if sep:
            body, _, end = tail.rpartition(" in the prior")
            line = head + sep + ", ".join(sorted(re.split(r"(?<=\)), ", body))) + " in the prior" + end
        lines.append(line)
    return "\n".join(lines)


def _findings(pdf: bytes, policy: DiffPolicy | None) -> list[Finding]:
    """Per signature: field, signed revision, coverage, analysis result, DocMDP verdict."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    out: list[Finding] = []
    for sig in reader.embedded_signatures:
        sig.compute_integrity_info(diff_policy=policy)
        summary = sig.summarise_integrity_info()
        diff = summary["diff_result"]
        result: tuple[Any, ...]
        if isinstance(diff, DiffResult):
            result = ("ok", diff.modification_level.name, tuple(sorted(diff.changed_form_fields)))
        else:
            result = ("refused", _message(diff))
        out.append((str(sig.field_name), sig.signed_revision, summary["coverage"].name, result,
                    summary["docmdp_ok"]))
    return out


def _refused(findings: list[Finding]) -> set[str]:
    return {f[0] for f in findings if f[3][0] == "refused"}


def _write(w: IncrementalPdfFileWriter) -> bytes:
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _page_content_changed(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    extra = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 300 500 Td (10) Tj ET"))
    contents = page.raw_get("/Contents")
    arr = contents if isinstance(contents, generic.ArrayObject) else generic.ArrayObject([contents])
    arr.append(extra)
    page[pdf_name("/Contents")] = arr
    w.update_container(page)
    return _write(w)


def _annotation_added(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    annot = w.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Annot"), pdf_name("/Subtype"): pdf_name("/FreeText"),
        pdf_name("/Rect"): generic.ArrayObject(map(generic.FloatObject, (250, 600, 290, 615))),
        pdf_name("/Contents"): generic.TextStringObject("10,0"),
        pdf_name("/F"): generic.NumberObject(4),
    }))
    page["/Annots"].append(annot)
    w.update_container(page["/Annots"] if isinstance(page.raw_get("/Annots"), generic.IndirectObject)
                       else page)
    return _write(w)


def _dss_removed(pdf: bytes) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    del w.root["/DSS"]
    w.update_root()
    return _write(w)


def _visible_field_added(pdf: bytes) -> bytes:
    """A new visible signature field: refused under the certification (DocMDP) signature
    and under the principal's lock, allowed under a plain approval signature."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    fields.append_signature_field(w, fields.SigFieldSpec("Extra", box=(20, 20, 120, 60)))
    return _write(w)


@pytest.fixture(scope="module")
def signed(world: World) -> bytes:
    """Every signature of the plan, not sealed."""
    return world.sign_until(world.records[2])


def test_same_as_pyhanko_on_a_complete_record(sealed: bytes,
                                              pyhanko_alone: Callable[[], None]) -> None:
    ours = _findings(sealed, _ConsecutiveDiffPolicy())
    pyhanko_alone()
    assert ours == _findings(sealed, None)
    assert ours == _findings(sealed, _PerPairUnmemoised())
    assert all(f[3][0] == "ok" for f in ours) and len(ours) == 16


def test_each_signature_judged_under_its_own_locks(signed: bytes,
                                                   pyhanko_alone: Callable[[], None]) -> None:
    pdf = _visible_field_added(signed)
    ours = {f[0]: f for f in _findings(pdf, _ConsecutiveDiffPolicy())}
    assert "only allowed after an approval signature" in ours["seal"][3][1]
    assert "form field Extra is locked" in ours["principal"][3][1]
    # A plain approval signature allows a new signature field, even though the
    # certification signature, analysed first, does not.
    approvals = [f for name, f in ours.items() if name not in ("seal", "principal")]
    assert approvals and all(f[3][:2] == ("ok", "FORM_FILLING") for f in approvals)
    pyhanko_alone()
    assert list(ours.values()) == _findings(pdf, None)
    assert list(ours.values()) == _findings(pdf, _PerPairUnmemoised())


@pytest.mark.parametrize("tamper", [_page_content_changed, _annotation_added, _dss_removed],
                         ids=lambda f: f.__name__.strip("_"))
def test_same_as_the_unmemoised_analysis_on_tampered_records(
        sealed: bytes, tamper: Callable[[bytes], bytes],
        pyhanko_alone: Callable[[], None]) -> None:
    pdf = tamper(sealed)
    ours = _findings(pdf, _ConsecutiveDiffPolicy())
    assert _refused(ours)
    pyhanko_alone()
    assert ours == _findings(pdf, _PerPairUnmemoised())
    # pyHanko's stock analysis words its reasons differently (it compares with the signed
    # revision, not the previous one) and refuses no signature this one accepts.
    assert _refused(_findings(pdf, None)) <= _refused(ours)


def test_one_analysis_per_file(signed: bytes, sealed: bytes) -> None:
    """A policy handed another file forgets the first one's revisions: here revision 16 is a
    forbidden change in the first file and the seal in the second."""
    policy = _ConsecutiveDiffPolicy()
    assert _refused(_findings(_page_content_changed(signed), policy))
    assert _findings(sealed, policy) == _findings(sealed, _ConsecutiveDiffPolicy())
    assert not _refused(_findings(sealed, policy))
