"""The detailed verification report (chains, revocation evidence, timestamps, archive evidence)
and its forms for people: Vietnamese text, HTML, and PDF read back by poppler.

A sealed record is verified with the network off, from its own DSS, as an archivist would.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import unicodedata
from dataclasses import replace
from pathlib import Path

import pikepdf
import pytest
from asn1crypto import x509
from conftest import World

from hsdt.signing import verification
from hsdt.signing.keys import fingerprint
from hsdt.signing.report_html import REPORT_JSON, report_html, report_pdf
from hsdt.signing.report_text import report_text
from hsdt.signing.verification import (
    ArchiveEvidence,
    CertificateInfo,
    FixityCheck,
    VerificationReport,
)
from hsdt.workflow import plan_of

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def report(world: World, sealed: bytes) -> VerificationReport:
    return world.verifier(online=False).verify(sealed)


@pytest.fixture(scope="module")
def flipped_report(world: World, sealed: bytes) -> VerificationReport:
    data = bytearray(sealed)
    pos = data.index(b"stream", 2000) + 40  # inside a compressed stream of the first revision
    data[pos] ^= 0x01
    return world.verifier(online=False).verify(bytes(data))


@pytest.fixture(scope="module")
def archived(report: VerificationReport) -> VerificationReport:
    sth = {"tree_size": 5, "root_hash": "ab" * 32, "timestamp": 1767225600000,
           "signature": "cd" * 64}
    return report.with_archive(ArchiveEvidence(
        object_key="records/hoc_ba_thcs/3f/3f00.pdf", version_id="v-0001",
        retain_until="9999-12-31T23:59:59+00:00",
        fixity=(FixityCheck("2026-01-15T02:00:00+00:00", "success"),
                FixityCheck("2026-07-15T02:00:00+00:00", "success")),
        log_index=3, tree_size=5, root_hash="ab" * 32,
        inclusion_proof=("01" * 32, "02" * 32, "03" * 32), signed_tree_head=json.dumps(sth)))


# -- the data -------------------------------------------------------------------------------

def test_every_chain_ends_at_the_test_root(world: World, report: VerificationReport) -> None:
    assert report.valid, report.problems
    root = fingerprint(world.pki.root)
    assert len(report.signatures) == 15
    for s in report.signatures:
        assert s.chain[0].sha256 == s.cert_sha256 and s.chain[0].subject_cn == s.signer_name
        assert s.chain[-1].sha256 == root and s.chain[-1].trust_anchor
        assert [c.trust_anchor for c in s.chain].count(True) == 1
        assert s.chain[1].sha256 == fingerprint(world.pki.intermediate)
        for child, parent in zip(s.chain, s.chain[1:], strict=False):
            assert child.issuer == parent.subject  # each certificate issued by the next one
        for c in s.chain:
            assert HEX64.fullmatch(c.sha256) and re.fullmatch(r"[0-9A-F]+", c.serial)
            assert c.not_before < c.not_after
    for t in report.archive_timestamps:
        assert t.tsa_name and t.chain[-1].sha256 == root
        assert t.tsa_cert_sha256 == fingerprint(world.pki.tsa_cert())


def test_each_certificate_is_described_once_and_as_its_encoding_says(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    described: list[tuple[str, bool]] = []
    original = verification._describe

    def counted(cert: x509.Certificate, trust_anchor: bool) -> CertificateInfo:
        described.append((fingerprint(cert), trust_anchor))
        return original(cert, trust_anchor)

    monkeypatch.setattr(verification, "_describe", counted)
    monkeypatch.setattr(verification, "_CERT_INFOS", {})
    first = world.verifier(online=False).verify(sealed)
    infos = {c for s in first.signatures for c in s.chain} | \
        {c for t in [*first.archive_timestamps, *(s.timestamp for s in first.signatures)]
         if t is not None for c in t.chain}
    assert len(described) == len(set(described)) == len(infos) > 10  # once per certificate
    again = world.verifier(online=False).verify(sealed)
    assert len(described) == len(infos)  # the next record's are already described
    # ... and described as a fresh description describes them
    monkeypatch.setattr(verification, "_CERT_INFOS", {})
    fresh = world.verifier(online=False).verify(sealed)
    assert [s.chain for s in again.signatures] == [s.chain for s in fresh.signatures]
    assert [t.chain for t in again.archive_timestamps] == [t.chain for t in fresh.archive_timestamps]


def test_revocation_evidence_comes_from_the_records_dss(report: VerificationReport) -> None:
    assert report.validation_data is not None and report.validation_data.source == "dss"
    assert report.validation_data.dss_ocsp_responses > 0 and report.validation_data.dss_crls > 0
    assert not report.network_used
    for s in report.signatures:
        about = {e.cert_sha256 for e in s.revocation}
        # every certificate of the path but the anchor has evidence about it
        assert about == {c.sha256 for c in s.chain if not c.trust_anchor}, s.field
        leaf_ocsp = [e for e in s.revocation if e.kind == "ocsp" and e.cert_sha256 == s.cert_sha256]
        assert leaf_ocsp, s.field
        for e in s.revocation:
            assert e.status == "good" and e.source == "dss" and HEX64.fullmatch(e.sha256)
            assert e.issuer and e.this_update
            if e.kind == "ocsp":
                assert e.produced_at is not None
        assert s.timestamp is not None and s.timestamp.time == s.signing_time
        assert s.timestamp.tsa_name and s.timestamp.revocation
    for t in report.archive_timestamps:
        assert t.revocation and all(e.source == "dss" for e in t.revocation)


def test_role_and_modification_analysis(world: World, report: VerificationReport) -> None:
    plan = plan_of(world.records[0])
    by_field = {f.name: f for f in plan.fields}
    first, last = report.signatures[0], report.signatures[-1]
    assert first.certify and first.stage == 0 and first.role == "school_seal"
    assert last.field == "principal" and last.stage == max(f.stage for f in plan.fields)
    assert last.changed_fields == ()  # nothing filled in after the principal's lock
    assert set(first.changed_fields) == set(by_field) - {"seal"}
    for s in report.signatures:
        assert s.assignee_name == by_field[s.field].assignee_name
        assert s.coverage == "ENTIRE_REVISION" and s.docmdp_ok is True
        assert s.digest_algorithm == "sha256" and s.claimed_signing_time


def test_json_keeps_old_keys_and_carries_the_archive(archived: VerificationReport) -> None:
    data = json.loads(json.dumps(archived.to_json(), ensure_ascii=False))
    assert {"verdict", "record_id", "signatures", "archive_timestamps", "plan_complete",
            "problems", "codes", "network_used"} <= set(data)
    sig = data["signatures"][0]
    assert {"field", "signer_name", "cert_sha256", "signing_time", "intact", "trusted",
            "timestamped", "revocation_checked", "modification_level", "chain", "revocation",
            "timestamp"} <= set(sig)
    assert data["archive"]["log_index"] == 3 and len(data["archive"]["inclusion_proof"]) == 3
    assert data["archive"]["fixity"][0] == {"time": "2026-01-15T02:00:00+00:00",
                                            "outcome": "success"}


def test_archive_evidence_refuses_what_cannot_be_checked() -> None:
    with pytest.raises(ValueError):
        ArchiveEvidence("k", "v", "2030-01-01T00:00:00+00:00", root_hash="not hex")
    with pytest.raises(ValueError):
        ArchiveEvidence("k", "v", "2030-01-01T00:00:00+00:00", log_index=5, tree_size=5)
    with pytest.raises(ValueError):
        ArchiveEvidence("k", "v", "2030-01-01T00:00:00+00:00", signed_tree_head="[1, 2]")


# -- for people -----------------------------------------------------------------------------

def _signer_names(report: VerificationReport) -> set[str]:
    return {s.signer_name for s in report.signatures}


def test_html_states_the_verdict_and_every_signer(archived: VerificationReport) -> None:
    html = report_html(archived)
    assert unicodedata.is_normalized("NFC", html)
    assert '<html lang="vi">' in html
    assert 'class="simple valid"' in html and "HỢP LỆ" in html and "KHÔNG HỢP LỆ" not in html
    for name in _signer_names(archived):
        assert name in html, name
    assert any(unicodedata.normalize("NFD", n) != n for n in _signer_names(archived))  # diacritics
    assert "HSDT Test Root CA" in html and "gốc tin cậy" in html
    assert "HSDT Test OCSP Responder" in html and "HSDT Test TSA" in html
    assert "(GMT+7)" in html
    # archive evidence, when the archive supplied it
    assert "Bằng chứng lưu trữ" in html and "ab" * 32 in html and "v-0001" in html
    assert "Bằng chứng lưu trữ" not in report_html(replace(archived, archive=None))


def test_invalid_record_is_red_with_its_reason(flipped_report: VerificationReport) -> None:
    assert not flipped_report.valid
    html = report_html(flipped_report)
    assert 'class="simple invalid"' in html and "KHÔNG HỢP LỆ" in html
    assert "bị thay đổi sau khi ký" in html
    assert "#b71c1c" in html  # the red of the invalid verdict
    text = report_text(flipped_report)
    assert text.startswith("KẾT QUẢ XÁC MINH: KHÔNG HỢP LỆ") and "bị thay đổi sau khi ký" in text


def test_pdf_reads_back_with_poppler(archived: VerificationReport, tmp_path: Path) -> None:
    pdf = report_pdf(archived)
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          check=True).stdout.decode()
    flat = " ".join(text.split())
    assert "KẾT QUẢ XÁC MINH HỒ SƠ" in flat and "HỢP LỆ" in flat
    assert archived.signatures[1].signer_name in flat
    assert "Trang 1/" in flat
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        # only the bundled font: the report looks the same on every machine
        fonts = {str(f.BaseFont) for page in doc.pages
                 for f in page.Resources.get("/Font", {}).values()}
        assert fonts and all("HSDT-Serif" in f for f in fonts), fonts
        assert doc.open_metadata().get("pdfaid:part") == "3"
        attached = doc.attachments[REPORT_JSON].get_file().read_bytes()
    assert json.loads(attached)["record_id"] == archived.record_id


def test_invalid_pdf_says_so(flipped_report: VerificationReport, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(report_pdf(flipped_report))
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          check=True).stdout.decode()
    assert "KHÔNG HỢP LỆ" in text and "bị thay đổi sau khi ký" in " ".join(text.split())


def test_text_report_shows_chain_and_evidence(report: VerificationReport) -> None:
    text = report_text(report)
    assert text.startswith("KẾT QUẢ XÁC MINH: HỢP LỆ")
    assert text.count("chuỗi chứng thư:") == len(report.signatures)
    assert "HSDT Test Root CA (gốc tin cậy)" in text
    assert "lưu trong hồ sơ (DSS): tất cả cho biết chưa bị thu hồi" in text
    assert "Dữ liệu xác minh trong hồ sơ (DSS)" in text
