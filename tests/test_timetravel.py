"""Time travel: 20 years on, past every certificate's expiry, with the network off.

A renewed record (its evidence re-timestamped by the long-lived archive TSA) still verifies
from its own DSS; a record nobody renewed is reported as needing renewal, not as forged.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from conftest import World
from freezegun import freeze_time

from hsdt.signing.pades import RecordSigner, SigningEnvironment, renewal_due


def _network_off(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Refuse (and record) every connection from here on."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("mạng bị tắt trong kiểm thử")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_renewed_record_outlives_every_certificate(world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rec = world.records[1]
    sealed = world.sealed(rec)
    env = SigningEnvironment(world.pki.trust_roots(), world.pki.archive_tsa_url, world.env.bindings)
    with RecordSigner(env) as archive_signer:
        renewed = archive_signer.renew(sealed)
    future = datetime.now(UTC) + timedelta(days=365 * 20 + 10)
    main_hierarchy = [world.pki.root, world.pki.intermediate, world.pki.tsa_cert(),
                      world.pki.identity("seal").cert,
                      world.pki.identity(rec.bundle.school.principal_id).cert]
    assert all(c["tbs_certificate"]["validity"]["not_after"].native < future for c in main_hierarchy)
    assert renewal_due(sealed, future, timedelta(0)) is not None
    verifier = world.verifier(online=False)
    attempts = _network_off(monkeypatch)
    with freeze_time(future):
        new = verifier.verify(renewed)
        old = verifier.verify(sealed)
    assert attempts == []  # nothing was fetched: the records' own evidence sufficed
    assert new.valid, new.problems
    assert len(new.archive_timestamps) == 2 and all(s.trusted for s in new.signatures)
    assert old.verdict == "indeterminate" and "renewal_needed" in old.codes, old.problems
    assert all(s.intact and s.valid and s.trusted for s in old.signatures)  # not forged
    assert "signature_invalid" not in old.codes
    assert any("Cần gia hạn" in p for p in old.problems)
