"""Certificates and revocation answers parsed once per encoding (:mod:`hsdt.signing.parsed`),
and the DSS read once per verification (``verification._DssEvidence``)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import pytest
from asn1crypto import x509
from conftest import World
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore

from hsdt.domain.plans import Role
from hsdt.signing import parsed
from hsdt.signing.verification import _DssEvidence


def _certs(sealed: bytes) -> list[bytes]:
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    return [c.dump() for c in dss.load_certs()]


def test_one_object_per_encoding_within_a_thread(sealed: bytes) -> None:
    der = _certs(sealed)[0]
    first = parsed.load(x509.Certificate, der)
    assert parsed.load(x509.Certificate, bytes(der)) is first  # another bytes object, same DER
    assert first.dump() == der == x509.Certificate.load(der).dump()
    other: list[x509.Certificate] = []
    t = threading.Thread(target=lambda: other.append(parsed.load(x509.Certificate, der)))
    t.start()
    t.join()
    assert other[0] is not first and other[0].dump() == der  # parsed lazily: not shared


def test_the_cache_is_bounded(sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed, "LIMIT", 2)
    monkeypatch.setattr(parsed._local, "cache", OrderedDict(), raising=False)
    a, b, c = _certs(sealed)[:3]
    first = parsed.load(x509.Certificate, a)
    parsed.load(x509.Certificate, b)
    parsed.load(x509.Certificate, a)  # a used last: b goes first
    parsed.load(x509.Certificate, c)
    assert list(parsed._local.cache) == [(x509.Certificate, a), (x509.Certificate, c)]
    assert parsed.load(x509.Certificate, a) is first
    assert parsed.load(x509.Certificate, b) is not None  # parsed again: it had gone


def test_dss_evidence_is_what_pyhanko_reads(sealed: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(sealed))
    ours = _DssEvidence.read(reader)
    assert ours is not None
    vc = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {"allow_fetching": False, "trust_roots": []})
    theirs_certs = [c.dump() for c in DocumentSecurityStore.read_dss(reader).load_certs()]
    assert [c.dump() for c in ours.certs] == theirs_certs
    # the context keeps revocation answers in an order of its own
    assert sorted(o.dump() for o in ours.ocsps) == sorted(o.dump() for o in vc.ocsps)
    assert sorted(c.dump() for c in ours.crls) == sorted(c.dump() for c in vc.crls)
    assert len(ours.certs) > 5 and ours.ocsps and ours.crls
    again = _DssEvidence.read(PdfFileReader(io.BytesIO(sealed)))
    assert again is not None and all(a is b for a, b in zip(again.certs, ours.certs, strict=True))


def test_a_record_without_dss_has_no_evidence(world: World) -> None:
    signed = world.sign_until(world.records[1], stop=lambda f: f.role is Role.PRINCIPAL)
    assert _DssEvidence.read(PdfFileReader(io.BytesIO(signed))) is None
