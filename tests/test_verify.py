"""Verification of sealed records: independent readers agree, and tampering is caught."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from conftest import World
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from typer.testing import CliRunner

from hsdt.cli import app
from hsdt.signing import testpki, verification
from hsdt.signing.verification import VerificationReport


def _cli_verify(world: World, pdf: bytes, tmp_path: Path, *extra: str) -> tuple[int, str]:
    f = tmp_path / "record.pdf"
    f.write_bytes(pdf)
    r = CliRunner().invoke(app, ["verify", str(f), "--pki", str(world.pki.workdir), *extra])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def test_sealed_record_verifies_with_network_off(world: World, sealed: bytes,
                                                 tmp_path: Path) -> None:
    report = world.verifier(online=False).verify(sealed)
    assert report.valid, report.problems
    assert report.sealed and report.plan_complete and report.data_matches_xmp
    assert len(report.signatures) == 15 and len(report.archive_timestamps) == 1
    for s in report.signatures:
        assert s.intact and s.valid and s.trusted and s.timestamped and s.revocation_checked
        assert s.bound_to_assignee is True
        assert re.fullmatch(r"[0-9a-f]{64}", s.cert_sha256)
    code, out = _cli_verify(world, sealed, tmp_path, "--json", "--offline")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "valid" and data["pdfa_part"] == "3"
    assert {"field", "signer_name", "cert_sha256", "signing_time", "intact", "trusted",
            "timestamped", "revocation_checked", "modification_level"} <= set(
                data["signatures"][0])
    code, out = _cli_verify(world, sealed, tmp_path, "--offline")
    assert code == 0 and "HỢP LỆ" in out and "Ký bởi" not in out


@pytest.mark.parametrize("damaged", [False, True], ids=["sealed", "byte_flipped"])
def test_a_verification_leaves_no_cycles_behind(world: World, sealed: bytes,
                                                damaged: bool) -> None:
    """What a verification parses is freed by reference counting as soon as it returns, not
    left in reference cycles (reader ↔ revision views ↔ signatures ↔ ~28 000 parsed
    objects) for a full garbage collection to walk every few records of an ingest."""
    import gc

    pdf = sealed
    if damaged:
        data = bytearray(sealed)
        data[data.index(b"stream", 2000) + 40] ^= 0x01  # in a stream of the first revision
        pdf = bytes(data)
    verifier = world.verifier(online=False)
    verifier.verify(sealed)  # caches that live on (parsed certificates) are in place
    gc.collect()
    gc.disable()
    try:
        report = verifier.verify(pdf)
        left = gc.collect()
    finally:
        gc.enable()
    assert report.valid is not damaged
    assert left < 100, f"{left} objects in reference cycles after one verification"


def test_independent_readers_agree(world: World, sealed: bytes, tmp_path: Path) -> None:
    f = tmp_path / "sealed.pdf"
    f.write_bytes(sealed)
    sig = subprocess.run(["pdfsig", str(f)], capture_output=True, text=True)
    # 15 signatures; poppler does not validate the document timestamp (TOOLCHAIN.md)
    assert sig.stdout.count("Signature is Valid") == 15, sig.stdout
    assert "ArchiveTimestamp1" in sig.stdout
    assert "Signature is Invalid" not in sig.stdout
    qpdf = subprocess.run(["qpdf", "--check", str(f)], capture_output=True, text=True)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr
    assert "No syntax or stream encoding errors" in qpdf.stdout
    text = subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True,
                          text=True).stdout
    rec = world.records[0]
    assert rec.student.full_name in text
    for s in rec.subjects():
        first_line = s.name.split(" (")[0]
        assert first_line in " ".join(text.split()), first_line


def test_still_pdfa_and_metadata_consistent_after_signing(sealed: bytes) -> None:
    with pikepdf.open(io.BytesIO(sealed)) as doc:
        meta = doc.open_metadata()
        assert meta.get("pdfaid:part") == "3" and meta.get("pdfaid:conformance") == "B"
        assert str(doc.docinfo["/Producer"]) == meta.get("pdf:Producer")
        assert str(doc.docinfo["/Title"]) == meta.get("dc:title")
        mod = pikepdf.models.metadata.decode_pdf_date(str(doc.docinfo["/ModDate"]))
        from datetime import datetime
        assert mod == datetime.fromisoformat(meta.get("xmp:ModifyDate"))
        assert "urn:hsdt:xmp:1/" in str(doc.Root.Metadata.read_bytes())


def _write(w: IncrementalPdfFileWriter) -> bytes:
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _expect_invalid(world: World, pdf: bytes, tmp_path: Path, *needles: str) -> None:
    code, out = _cli_verify(world, pdf, tmp_path, "--offline")
    assert code == 1, out
    flat = " ".join(out.split())
    for n in needles:
        assert n in flat, flat


def test_flipped_byte_in_signed_range(world: World, sealed: bytes, tmp_path: Path) -> None:
    data = bytearray(sealed)
    pos = data.index(b"stream", 2000) + 40  # inside a compressed stream of the first revision
    data[pos] ^= 0x01
    _expect_invalid(world, bytes(data), tmp_path, "bị thay đổi sau khi ký")


def test_incremental_update_changing_page_content(world: World, sealed: bytes,
                                                  tmp_path: Path) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(sealed))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    extra = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 300 500 Td (10) Tj ET"))
    contents = page.raw_get("/Contents")
    arr = contents if isinstance(contents, generic.ArrayObject) else generic.ArrayObject(
        [contents])
    arr.append(extra)
    page[pdf_name("/Contents")] = arr
    w.update_container(page)
    _expect_invalid(world, _write(w), tmp_path, "sửa nội dung tài liệu")


def test_annotation_over_a_grade(world: World, sealed: bytes, tmp_path: Path) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(sealed))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    annot = w.add_object(generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Annot"), pdf_name("/Subtype"): pdf_name("/FreeText"),
        pdf_name("/Rect"): generic.ArrayObject(map(generic.FloatObject, (250, 600, 290, 615))),
        pdf_name("/Contents"): generic.TextStringObject("10,0"),
        pdf_name("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g"),
        pdf_name("/F"): generic.NumberObject(4),
    }))
    page["/Annots"].append(annot)
    w.update_container(page["/Annots"] if isinstance(page.raw_get("/Annots"),
                                                      generic.IndirectObject) else page)
    _expect_invalid(world, _write(w), tmp_path, "thay đổi không được phép")


def test_signature_added_after_the_principals_lock(world: World, tmp_path: Path) -> None:
    rec = world.records[3]
    locked = world.sign_until(rec)  # principal signed: P=1
    ident = world.pki.identity(rec.bundle.class_.homeroom_teacher_id)
    signer = signers.SimpleSigner.load_pkcs12(str(ident.p12_path),
                                              passphrase=testpki.SOFTWARE_P12_PASSPHRASE)
    w = IncrementalPdfFileWriter(io.BytesIO(locked))
    out = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Extra", subfilter=fields.SigSeedSubFilter.PADES),
        signer, timestamper=HTTPTimeStamper(world.pki.tsa_url),
        new_field_spec=fields.SigFieldSpec("Extra"),
    ).sign_pdf(w)
    _expect_invalid(world, out.getvalue(), tmp_path, "khoá hồ sơ")


def test_record_cut_back_to_an_earlier_revision(world: World, sealed: bytes,
                                                tmp_path: Path) -> None:
    reader = PdfFileReader(io.BytesIO(sealed))
    homeroom = next(s for s in reader.embedded_signatures if s.field_name == "homeroom")
    br = homeroom.byte_range
    cut = sealed[: br[2] + br[3]]
    report = world.verifier(online=True).verify(cut)
    assert all(s.intact and s.trusted for s in report.signatures)
    assert not report.plan_complete and not report.valid
    _expect_invalid(world, cut, tmp_path, "chưa hoàn tất", "Hiệu trưởng")


@pytest.mark.parametrize("content", [b"not a pdf at all", b"%PDF-1.7\n%broken"])
def test_unusable_input_exits_2(world: World, content: bytes, tmp_path: Path) -> None:
    code, _ = _cli_verify(world, content, tmp_path)
    assert code == 2


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p / "khong-co.pdf", "không có tệp hay thư mục này"),
    (lambda p: p, "đây là một thư mục, không phải tệp"),
], ids=["missing", "directory"])
def test_a_file_that_cannot_be_read_is_named_in_vietnamese(world: World, tmp_path: Path,
                                                            make, reason: str) -> None:  # type: ignore[no-untyped-def]
    """The system's reason in the clerk's language, not "No such file or directory"."""
    path = make(tmp_path)
    r = CliRunner().invoke(app, ["verify", str(path), "--pki", str(world.pki.workdir)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert f"Không đọc được tệp {path}: {reason}." in said


def test_a_verification_never_writes_its_report_out_as_text(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio.run``'s Ctrl-C handler made Python's ``signal`` module format the finished
    task, whole report included (~100 KB of text, twice per record, 1 ms); the verifier's
    own loop runner does not install one."""
    formatted: list[int] = []  # counted: Python's reprlib would swallow an exception

    def counted(self: VerificationReport) -> str:
        formatted.append(1)
        return "VerificationReport(...)"

    monkeypatch.setattr(VerificationReport, "__repr__", counted)
    report = world.verifier(online=False).verify(sealed)
    assert report.valid and formatted == []


def test_revocation_evidence_is_looked_up_once_per_certificate_and_issuer(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA's and the TSA's certificates are on every path of a record: what the DSS says
    about each is found once per context, and the report is the one made by looking it up
    for every path."""
    index = verification._RevocationIndex
    original = index._about
    looked: list[int] = []

    def counted(self: Any, cert: Any, issuer: Any) -> Any:
        looked.append(1)
        return original(self, cert, issuer)

    def every_time(self: Any, path: Any) -> tuple[Any, ...]:
        self._refresh()
        return tuple(e for cert, issuer in path.checked() for e in self._about(cert, issuer))

    monkeypatch.setattr(index, "_about", counted)
    remembered = world.verifier(online=False).verify(sealed).to_json()
    once = len(looked)
    looked.clear()
    monkeypatch.setattr(index, "for_path", every_time)
    looked_up_each_time = world.verifier(online=False).verify(sealed).to_json()
    assert once < len(looked) / 2
    remembered.pop("verified_at")
    looked_up_each_time.pop("verified_at")
    assert remembered == looked_up_each_time
