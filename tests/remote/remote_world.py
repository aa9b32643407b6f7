"""A service with a class of 40 rendered and certified, and teachers linked to remote providers.

Shared by the CSC and the phone-approval tests. Each test takes its own subject teacher
(GV004–GV011 teach one subject each in the sample class), so that what one test signs does
not change what another finds waiting.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from api.service_world import Service, build_service
from sqlalchemy import select

from hsdt.db.models import Certificate, DocumentRevision, SignatureStep, StepState, User
from hsdt.domain.sample import sample_bundle
from hsdt.service import remote_signing
from hsdt.signing import testpki
from hsdt.signing.remote.providers import RemoteSigningConfig
from hsdt.signing.verification import Verifier

STUDENTS = 40


def build_class_service(pki: testpki.TestPKI, root: Path, db_url: str | None = None) -> Service:
    return build_service(pki, sample_bundle(seed=5, students=STUDENTS), root, db_url=db_url)


def configure(svc: Service, providers: Mapping[str, Mapping[str, Any]]) -> None:
    svc.ctx.remote = RemoteSigningConfig.model_validate({"providers": providers})


def link(svc: Service, who: str, provider: str, account: str, credential_id: str | None = None) -> None:
    remote_signing.link_account(svc.ctx, svc.user(who).id, provider, account, credential_id)


def bind_extra_certificate(svc: Service, who: str, ident: testpki.Identity) -> None:
    """Register one more certificate to ``who`` (as an administrator would: the CA may still
    have revoked it, or its key may be too weak — the signing rules must catch that)."""
    with svc.sessions() as s, s.begin():
        user = s.scalars(select(User).where(User.username == svc.username(who))).one()
        if s.scalars(select(Certificate).where(Certificate.der == ident.cert.dump())).first() is None:
            s.add(Certificate.from_der(ident.cert.dump(), user=user))


def teacher_steps(svc: Service, who: str) -> list[SignatureStep]:
    """Every step assigned to ``who`` in the current revisions."""
    with svc.sessions() as s:
        user = s.scalars(select(User).where(User.username == svc.username(who))).one()
        steps = list(s.scalars(select(SignatureStep).where(SignatureStep.assignee_user_id == user.id)
                               .order_by(SignatureStep.id)))
        for st in steps:
            s.expunge(st)
        return steps


def signed_count(svc: Service, who: str) -> int:
    return sum(1 for st in teacher_steps(svc, who) if st.state is StepState.SIGNED)


def current_pdfs(svc: Service) -> dict[str, bytes]:
    """Record id → the current PDF of each revision."""
    with svc.sessions() as s:
        revs = list(s.scalars(select(DocumentRevision)))
        return {r.document.record_id: svc.ctx.workspace.get(r.pdf_sha256 or "") for r in revs}


def assert_signed_and_intact(svc: Service, who: str, tmp: Path) -> None:
    """Every record signed by ``who`` verifies (our verifier and poppler's ``pdfsig``)."""
    steps = [st for st in teacher_steps(svc, who) if st.state is StepState.SIGNED]
    assert steps
    pdfs = current_pdfs(svc)
    verifier = Verifier(svc.pki.trust_roots(), None, online=False)
    with svc.sessions() as s:
        by_rev = {r.id: r.document.record_id for r in s.scalars(select(DocumentRevision))}
    for st in steps:
        record_id = by_rev[st.revision_id]
        pdf = pdfs[record_id]
        report = verifier.verify(pdf)
        fields = [sig for sig in report.signatures if sig.field == st.field_name]
        assert len(fields) == 1, (record_id, st.field_name)
        sig = fields[0]
        assert sig.intact and sig.valid and sig.trusted and sig.timestamped, (record_id, sig.problems)
        assert all(x.intact and x.valid for x in report.signatures), record_id
        path = tmp / f"{record_id}.pdf"
        path.write_bytes(pdf)
        out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
        assert out.count("Signature is Valid") == len(report.signatures), out
        assert "Signature is Invalid" not in out, out
