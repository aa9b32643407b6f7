"""Who is who at a school: staff codes → accounts, and certificate bindings.

Bundles and plans name people by the school's own ids (``GV001``); :func:`staff_user_ids`
turns those into accounts (for :meth:`hsdt.db.models.SignatureStep.from_plan`), and
:func:`bindings_for_school` gives the certificate registry in the form the signing code
already takes.

:class:`hsdt.signing.bindings.CertificateBindings` maps a fingerprint to the plan's name for
its owner: a school-local teacher id (``GV001``), or ``school:<code>`` for the seal. Here the
same map is built for one school from :class:`~hsdt.db.models.Certificate` rows and the
school's :class:`~hsdt.db.models.StaffCode` entries, leaving out certificates revoked here or
outside their validity at ``at`` — so signing and verification need not know where the
registry lives.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from hsdt.db.models import Certificate, OrgUnit, StaffCode
from hsdt.db.types import utcnow
from hsdt.domain.plans import seal_assignee
from hsdt.signing.bindings import CertificateBindings


def staff_user_ids(session: Session, school: OrgUnit) -> dict[str, int]:
    """The school's staff codes and the account each one belongs to."""
    rows = session.execute(select(StaffCode.code, StaffCode.user_id).where(StaffCode.school_id == school.id))
    return {code: user_id for code, user_id in rows}


def bindings_for_school(session: Session, school: OrgUnit, at: datetime | None = None) -> CertificateBindings:
    """The school's registry: its staff's certificates and its seal's, usable at ``at``."""
    when = at or utcnow()
    usable = and_(Certificate.revoked.is_(False), Certificate.not_before <= when,
                  Certificate.not_after > when)
    staff = session.execute(
        select(Certificate.fingerprint, StaffCode.code)
        .join(StaffCode, StaffCode.user_id == Certificate.user_id)
        .where(StaffCode.school_id == school.id, usable)).all()
    seal = session.scalars(select(Certificate.fingerprint).where(Certificate.school_id == school.id, usable))
    mapping = {fp: code for fp, code in staff}
    mapping.update({fp: seal_assignee(school.code) for fp in seal})
    return CertificateBindings(mapping)
