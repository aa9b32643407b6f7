"""Shared fixtures: a real test PKI served on loopback, SoftHSM2 keys, rendered records.

Nothing is mocked: the TSA, OCSP responder and CRL are certomancer's, over HTTP on
127.0.0.1; the school seal's and the principal's keys live in a SoftHSM2 token. A missing
component makes the fixture fail with its name — tests never skip for it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import settings

from hsdt.demo import open_identity
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.plans import FieldAssignment, Role
from hsdt.domain.records import Record, records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import Verifier
from hsdt.workflow import render, signing_sequence

# The property tests (the tokeniser against pyHanko's, the ASN.1 memo) draw the same examples
# on every run of the suite, so that a landing is judged on what was judged before; a new
# failure is found by exploring on purpose: HYPOTHESIS_PROFILE=explore (random draws).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

REQUIRED_TOOLS = {"pdfsig": "poppler-utils", "pdftotext": "poppler-utils", "qpdf": "qpdf",
                  "softhsm2-util": "softhsm2"}


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in REQUIRED_TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError("Thiếu công cụ bắt buộc cho bộ kiểm thử: " + ", ".join(missing)
                                + ". Chạy `make test` để cài tự động.")


@dataclass
class World:
    pki: testpki.TestPKI
    records: list[Record]
    env: SigningEnvironment
    signer: RecordSigner
    keys: dict[str, SigningKey]

    def key(self, name: str) -> SigningKey:
        if os.environ.get("SOFTHSM2_CONF") != str(self.pki.softhsm_conf):
            # Another test switched SoftHSM2 to its own token directory, which restarts the
            # library and invalidates our sessions: open the token keys again.
            for stale in [n for n, k in self.keys.items() if k.backend == "pkcs11"]:
                del self.keys[stale]
        if name not in self.keys:
            self.keys[name] = open_identity(self.pki, self.pki.identity(name))
        return self.keys[name]

    def key_for(self, f: FieldAssignment) -> SigningKey:
        return self.key("seal" if f.role is Role.SCHOOL_SEAL else f.assignee)

    def verifier(self, online: bool = False) -> Verifier:
        return Verifier(self.pki.trust_roots(), self.env.bindings, online=online)

    def sign_until(self, record: Record, stop: Callable[[FieldAssignment], bool] | None = None
                   ) -> bytes:
        """Render and sign the plan in order, stopping before the first field where stop()."""
        pdf = render(record)
        for f in signing_sequence(record):
            if stop is not None and stop(f):
                return pdf
            pdf = self.signer.sign(pdf, f.name, self.key_for(f),
                                   expected_data_sha256=record.data_sha256)
        return pdf

    def sealed(self, record: Record) -> bytes:
        """The record signed by every field of its plan, then sealed (B-LTA)."""
        return self.signer.seal(self.sign_until(record), expected_data_sha256=record.data_sha256)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    bundle = sample_bundle(seed=5, students=4)
    records = records_for(lock_bundle(bundle, "Văn thư kiểm thử"))
    homeroom = bundle.class_.homeroom_teacher_id
    # Negative-case certificates are bound to the homeroom teacher, whose subject field
    # opens right after the seal.
    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    pki = testpki.provision(tmp_path_factory.mktemp("pki"), people, bundle.school.code,
                            bundle.school.name, hsm_people={bundle.school.principal_id},
                            negatives_for=homeroom)
    with testpki.serve(pki):
        env = SigningEnvironment(pki.trust_roots(), pki.tsa_url,
                                 CertificateBindings(pki.bindings()))
        with RecordSigner(env) as signer:
            w = World(pki, records, env, signer, {})
            yield w
            for k in w.keys.values():
                k.close()


@pytest.fixture(scope="session")
def sealed(world: World) -> bytes:
    """A fully signed and sealed record (the first student)."""
    return world.sealed(world.records[0])
