"""Worker processes log in to the same SoftHSM2 token at the same moment without breaking it.

SoftHSM2 (the test stand-in for the school's HSM) rewrites its token file on login; two
processes logging in at once were seen to fail with GeneralError and then
UserPinNotInitialized for the rest of the process's life. The workers serialise logins
(:meth:`hsdt.workers.context.SigningContext.key_for`); this test is the race, repeated.
"""

from __future__ import annotations

import multiprocessing as mp
import time

from workerkit import ClassFixture

from hsdt.domain.plans import FieldAssignment, Role
from hsdt.workflow import signing_sequence


def _login_rounds(pki_dir: str, fields: list[FieldAssignment], start_at: float, rounds: int,
                  out: mp.Queue) -> None:  # type: ignore[type-arg]
    from hsdt.workers import context

    errors: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(rounds):
        try:
            ctx = context.signing_context(pki_dir)
            for f in fields:
                key = ctx.key_for(f)
                assert key is not None and key.backend == "pkcs11"
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            context.reset()
    out.put(errors)


def test_concurrent_logins_to_the_token(school_class: ClassFixture) -> None:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    hsm_fields = [f for f in signing_sequence(school_class.records[0])
                  if f.role in (Role.SCHOOL_SEAL, Role.PRINCIPAL)]
    assert len(hsm_fields) == 2
    start_at = time.time() + 4.0  # after every process has imported what it needs
    procs = [ctx.Process(target=_login_rounds,
                         args=(str(school_class.pki.workdir), hsm_fields, start_at, 8, out))
             for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == [[], [], []]
