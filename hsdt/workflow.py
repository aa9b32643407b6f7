"""The record's whole life as one sequence of steps — the single place where the parts meet.

The CLI, the demo, the benchmarks and (later) the Celery tasks all call these functions,
so a rule is never re-implemented by a caller. Each step takes and returns plain bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from hsdt.domain.plans import FieldAssignment, ResolvedPlan, resolve_plan
from hsdt.domain.records import Record
from hsdt.renderers import render_record
from hsdt.settings import plan_for
from hsdt.signing.keys import SigningKey
from hsdt.signing.pades import RecordSigner


def plan_of(record: Record) -> ResolvedPlan:
    names = {s.code: s.name for s in record.subjects()}
    return resolve_plan(plan_for(record.kind), record.data, names)


def render(record: Record) -> bytes:
    return render_record(record, plan_of(record))


def signing_sequence(record: Record) -> list[FieldAssignment]:
    """The plan's fields in an order that satisfies it (stage by stage)."""
    return sorted(plan_of(record).fields, key=lambda f: f.stage)


def sign_all(signer: RecordSigner, record: Record, pdf: bytes,
             key_for: Callable[[FieldAssignment], SigningKey],
             on_signature: Callable[[FieldAssignment], None] | None = None) -> bytes:
    """Run the whole plan on one record, then seal it (B-LTA)."""
    for f in signing_sequence(record):
        pdf = signer.sign(pdf, f.name, key_for(f), expected_data_sha256=record.data_sha256)
        if on_signature:
            on_signature(f)
    return signer.seal(pdf, expected_data_sha256=record.data_sha256)
