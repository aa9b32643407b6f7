"""The học bạ year page as rendered: PDF/A-3b structure, data, metadata and signature fields.

Real tools only (WeasyPrint, pikepdf, pyHanko, poppler, qpdf). A missing command-line tool
fails the test with the package to install; it never skips.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import json
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from lxml import etree

from hsdt.domain.bundles import lock_bundle
from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import FieldAssignment, ResolvedPlan, Role, resolve_plan
from hsdt.domain.records import Record, record_for, records_for
from hsdt.domain.sample import sample_bundle
from hsdt.domain.schema import LockedBundle, Promotion, Term, TermRatings
from hsdt.renderers import (
    Renderer,
    parse_record_xml,
    record_xml,
    render_record,
)
from hsdt.renderers.metadata import (
    PdfaClaims,
    associated_files,
    embedded_files,
    read_record_contents,
    read_record_metadata,
    signature_fields,
    xmp_bytes,
    xmp_properties,
)
from hsdt.settings import FONTS_DIR, plan_for

MM = 72 / 25.4
LOCKED_AT = dt.datetime(2026, 6, 1, 8, 30, 0, tzinfo=dt.UTC)
SUBJECT_NAMES_WITH_DIACRITICS = ["Khoa học tự nhiên", "Giáo dục công dân", "Lịch sử và Địa lí",
                                 "Hoạt động trải nghiệm, hướng nghiệp"]


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: apt-get install {package}")
    return path


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, check=False, timeout=60)


def plan_of(rec: Record) -> ResolvedPlan:
    return resolve_plan(plan_for(rec.kind), rec.data, {s.code: s.name for s in rec.subjects()})


@pytest.fixture(scope="module")
def locked() -> LockedBundle:
    return lock_bundle(sample_bundle(seed=1, students=6), "Nguyễn Thị Thư ký", now=LOCKED_AT)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def record(locked: LockedBundle) -> Record:
    return records_for(locked)[0]


@pytest.fixture(scope="module")
def plan(record: Record) -> ResolvedPlan:
    return plan_of(record)


@pytest.fixture(scope="module")
def pdf(record: Record, plan: ResolvedPlan) -> bytes:
    return render_record(record, plan)


@pytest.fixture()
def pdf_file(pdf: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "record.pdf"
    path.write_bytes(pdf)
    return path


# -- structure and text ---------------------------------------------------------------------

def test_qpdf_finds_no_errors(pdf_file: Path) -> None:
    result = run(tool("qpdf", "qpdf"), "--check", str(pdf_file))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "No syntax or stream encoding errors found" in out
    assert "WARNING" not in out + result.stderr.decode()


def test_text_has_name_and_subjects_with_diacritics(pdf_file: Path, record: Record) -> None:
    result = run(tool("pdftotext", "poppler-utils"), "-enc", "UTF-8", str(pdf_file), "-")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode("utf-8")
    # The text layer must carry the composed Vietnamese letters, exactly as the data has them.
    assert unicodedata.is_normalized("NFC", text)
    lines = {line.strip() for line in text.splitlines()}
    assert record.student.full_name in text
    for subject in record.subjects():
        assert subject.name in lines, subject.name
    for name in SUBJECT_NAMES_WITH_DIACRITICS:
        assert name in lines
    for phrase in ("HỌC BẠ", "TRUNG HỌC CƠ SỞ", "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                   "Độc lập – Tự do – Hạnh phúc", "HIỆU TRƯỞNG", "(Ký, ghi rõ họ tên và đóng dấu)",
                   "GIÁO VIÊN CHỦ NHIỆM", "(Ký và ghi rõ họ tên)", "ngày …… tháng …… năm ……"):
        assert phrase in text, phrase
    born = dt.date.fromisoformat(record.student.date_of_birth).strftime("%d/%m/%Y")
    assert born in text


def test_scores_print_with_decimal_comma(pdf_file: Path, record: Record) -> None:
    text = run(tool("pdftotext", "poppler-utils"), "-enc", "UTF-8", str(pdf_file),
               "-").stdout.decode()
    first = next(r for r in record.student.results if r.year_average is not None)
    assert f"{first.year_average}".replace(".", ",") in text
    assert "Đ" in {line.strip() for line in text.splitlines()}


def test_one_a4_page(pdf: bytes) -> None:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 1
        box = [float(v) for v in doc.pages[0].MediaBox]
        assert box[0] == box[1] == 0
        assert abs(box[2] - 210 * MM) < 0.5 and abs(box[3] - 297 * MM) < 0.5
        assert doc.pdf_version == "1.7"


def test_fonts_are_embedded_and_only_bundled(pdf: bytes) -> None:
    from fontTools.ttLib import TTFont

    bundled_versions = {TTFont(p)["name"].getDebugName(5) for p in FONTS_DIR.glob("*.ttf")}
    seen = 0
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        resources = [doc.pages[0].Resources]
        for annot in doc.pages[0].get("/Annots", []):
            resources.append(annot.AP.N.get("/Resources", pikepdf.Dictionary()))
        for res in resources:
            for font in res.get("/Font", {}).values():
                seen += 1
                descendant = font.DescendantFonts[0] if "/DescendantFonts" in font else font
                descriptor = descendant.FontDescriptor
                program = next((descriptor[k] for k in ("/FontFile", "/FontFile2", "/FontFile3")
                                if k in descriptor), None)
                assert program is not None, f"font {font.BaseFont} is not embedded"
                assert "HSDT-Serif" in str(font.BaseFont), font.BaseFont
                embedded = TTFont(io.BytesIO(program.read_bytes()))
                assert embedded["name"].getDebugName(5) in bundled_versions
    assert seen >= 3  # regular, bold, italic


# -- determinism ----------------------------------------------------------------------------

def test_same_record_same_bytes(pdf: bytes, record: Record, plan: ResolvedPlan) -> None:
    # A fresh renderer (new font configuration, new stylesheet) must not change a byte.
    assert Renderer().render(record, plan) == pdf
    assert render_record(record, plan) == pdf


def test_same_bytes_in_another_process(pdf: bytes) -> None:
    """Workers are separate processes with their own hash seeds and font caches."""
    import os
    import sys

    script = (
        "import datetime as dt, hashlib, sys\n"
        "from hsdt.domain.bundles import lock_bundle\n"
        "from hsdt.domain.plans import resolve_plan\n"
        "from hsdt.domain.records import records_for\n"
        "from hsdt.domain.sample import sample_bundle\n"
        "from hsdt.renderers import render_record\n"
        "from hsdt.settings import plan_for\n"
        f"locked = lock_bundle(sample_bundle(seed=1, students=6), 'Nguyễn Thị Thư ký',"
        f" now=dt.datetime.fromisoformat('{LOCKED_AT.isoformat()}'))\n"
        "rec = records_for(locked)[0]\n"
        "plan = resolve_plan(plan_for(rec.kind), rec.data,"
        " {s.code: s.name for s in rec.subjects()})\n"
        "sys.stdout.write(hashlib.sha256(render_record(rec, plan)).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env,
                            cwd="/", check=False, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == hashlib.sha256(pdf).hexdigest()


def test_other_student_other_bytes(pdf: bytes, locked: LockedBundle,
                                   renderer: Renderer) -> None:
    other = records_for(locked)[1]
    other_pdf = renderer.render(other, plan_of(other))
    assert other_pdf != pdf
    assert read_record_metadata(other_pdf)["studentCode"] == other.student.code


def test_no_wall_clock_in_output(pdf: bytes, record: Record) -> None:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert str(doc.docinfo.CreationDate) == "D:20260601083000+00'00'"
        for spec in doc.Root.AF:
            params = spec.EF.F.Params
            assert str(params.CreationDate) == str(params.ModDate) == "D:20260601083000Z"
        ids = [bytes(x) for x in doc.trailer.ID]
    assert ids[0] == record.data_sha256[:32].encode()


# -- XMP and Info -----------------------------------------------------------------------------

def test_xmp_hsdt_fields(pdf: bytes, record: Record) -> None:
    assert read_record_metadata(pdf) == {
        "documentId": record.record_id,
        "kind": "hoc_ba_thcs",
        "studentCode": record.student.code,
        "schoolCode": record.bundle.school.code,
        "schoolName": record.bundle.school.name,
        "schoolYear": record.bundle.school_year,
        "dataSha256": record.data_sha256,
        "bundleSha256": record.data["bundle_lock"]["sha256"],
    }
    props = xmp_properties(pdf)
    assert props["pdfaid:part"] == "3"
    assert props["pdfaid:conformance"] == "B"
    assert record.student.full_name in props["dc:title"]


def test_xmp_extension_schema_describes_every_hsdt_property(pdf: bytes) -> None:
    rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    schema_ns = "http://www.aiim.org/pdfa/ns/schema#"
    prop_ns = "http://www.aiim.org/pdfa/ns/property#"
    packet = xmp_bytes(pdf)
    root = etree.fromstring(packet[packet.index(b"<x:xmpmeta"):packet.rindex(b"</x:xmpmeta>")
                                   + len(b"</x:xmpmeta>")])
    schemas = root.findall(f".//{{{schema_ns}}}namespaceURI/..")
    hsdt = [s for s in schemas if s.findtext(f"{{{schema_ns}}}prefix") == "hsdt"]
    assert len(hsdt) == 1
    namespace = hsdt[0].findtext(f"{{{schema_ns}}}namespaceURI")
    described = {li.findtext(f"{{{prop_ns}}}name"): li.findtext(f"{{{prop_ns}}}valueType")
                 for li in hsdt[0].iter(f"{{{rdf}}}li")
                 if li.find(f"{{{prop_ns}}}name") is not None}
    used = {etree.QName(el).localname for el in root.iter(f"{{{namespace}}}*")}
    assert used == set(described) == set(read_record_metadata(pdf))
    assert set(described.values()) == {"Text"}
    # Every property prefix in use is declared by the extension schema or is a PDF/A
    # predefined schema.
    declared = {el.prefix for el in root.iter() if isinstance(el.tag, str)}
    assert declared <= {"x", "rdf", "pdfaid", "dc", "xmp", "pdf", "hsdt", "pdfaExtension",
                        "pdfaSchema", "pdfaProperty"}


def _xmp_date_to_utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def _pdf_date_to_utc(value: str) -> dt.datetime:
    body = value.removeprefix("D:")
    stamp = dt.datetime.strptime(body[:14], "%Y%m%d%H%M%S")
    zone = body[14:]
    if zone in ("", "Z"):
        offset = dt.timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return (stamp - offset).replace(tzinfo=dt.UTC)


def test_info_dictionary_agrees_with_xmp(pdf: bytes) -> None:
    props = xmp_properties(pdf)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        info = {str(k): str(v) for k, v in doc.docinfo.items()}
    assert info["/Title"] == props["dc:title"]
    assert info["/Author"] == props["dc:creator"]
    assert info["/Subject"] == props["dc:description"]
    assert info["/Creator"] == props["xmp:CreatorTool"]
    assert info["/Producer"] == props["pdf:Producer"]
    assert _pdf_date_to_utc(info["/CreationDate"]) == _xmp_date_to_utc(props["xmp:CreateDate"])
    assert _pdf_date_to_utc(info["/ModDate"]) == _xmp_date_to_utc(props["xmp:ModifyDate"])
    assert _xmp_date_to_utc(props["xmp:CreateDate"]) == LOCKED_AT
    assert set(info) <= {"/Title", "/Author", "/Subject", "/Keywords", "/Creator", "/Producer",
                         "/CreationDate", "/ModDate", "/Trapped"}


# -- embedded data --------------------------------------------------------------------------

def test_embedded_json_is_the_record_data(pdf: bytes, record: Record) -> None:
    files = embedded_files(pdf)
    assert set(files) == {"record.json", "record.xml"}
    assert files["record.json"] == record.data_bytes
    assert hashlib.sha256(files["record.json"]).hexdigest() == read_record_metadata(pdf)[
        "dataSha256"]
    assert parse_record_xml(files["record.xml"]) == json.loads(files["record.json"])
    assert files["record.xml"] == record_xml(record.data)


def test_associated_files_are_source_and_listed_once(pdf: bytes) -> None:
    files = associated_files(pdf)
    assert [(f.name, f.relationship, f.mime_type) for f in files] == [
        ("record.json", "Source", "application/json"),
        ("record.xml", "Source", "application/xml"),
    ]
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        af = [spec.objgen for spec in doc.Root.AF]
        assert len(af) == len(set(af)) == 2
        names = doc.Root.Names.EmbeddedFiles.Names
        in_tree = {names[i + 1].objgen for i in range(0, len(names), 2)}
        assert in_tree == set(af)
        for spec in doc.Root.AF:
            assert spec.F == spec.UF
            assert "/Desc" in spec


def test_record_xml_round_trips_awkward_values() -> None:
    data: dict[str, Any] = {
        "empty_obj": {}, "empty_list": [], "none": None, "yes": True, "no": False,
        "int": 7, "float": 1.5, "text": "a < b & \"c\" > d\r\n\tĐạt", "blank": "",
        "1bad key": "x", "xmlish": "y", "nested": [{"a": [1, [2, None]]}, "s"],
    }
    xml = record_xml(data)
    assert parse_record_xml(xml) == data
    assert xml == record_xml(dict(reversed(list(data.items()))))  # key order does not matter
    with pytest.raises(ValueError):
        record_xml({"bad": "\x01"})


# -- signature fields -----------------------------------------------------------------------

def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_every_plan_field_is_an_empty_signature_field(pdf: bytes, plan: ResolvedPlan) -> None:
    fields = signature_fields(pdf)
    assert set(fields) == {f.name for f in plan.fields}
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        media = [float(v) for v in doc.pages[0].MediaBox]
        form = doc.Root.AcroForm
        assert int(form.SigFlags) == 0
        assert "/NeedAppearances" not in form
        annots = {a.objgen for a in doc.pages[0].Annots}
        for widget in form.Fields:
            assert (widget.FT, widget.Subtype) == (pikepdf.Name.Sig, pikepdf.Name.Widget)
            assert "/V" not in widget
            assert widget.objgen in annots  # the widget is on the page it claims
            assert widget.P.objgen == doc.pages[0].obj.objgen
            flags = int(widget.F)
            assert flags & 4 and not flags & (1 | 2 | 32)  # Print; not Invisible/Hidden/NoView
            appearance = widget.AP.N
            assert isinstance(appearance, pikepdf.Stream)
            assert appearance.Subtype == pikepdf.Name.Form and "/BBox" in appearance
            assert set(widget.AP.keys()) == {"/N"}
    for f in plan.fields:
        info = fields[f.name]
        assert not info.signed and info.page == 0
        assert f.assignee_name in info.tooltip and f.label in info.tooltip
        x1, y1, x2, y2 = info.rect
        assert media[0] <= x1 < x2 <= media[2] and media[1] <= y1 < y2 <= media[3]
        w, h = (x2 - x1) / MM, (y2 - y1) / MM
        expected = (32, 7) if f.role is Role.SUBJECT_TEACHER else (60, 22)
        assert abs(w - expected[0]) < 0.5 and abs(h - expected[1]) < 0.5, (f.name, w, h)
    for a, b in itertools.combinations(fields.values(), 2):
        assert not _overlap(a.rect, b.rect), (a.name, b.name)


def test_layout_export_matches_the_fields(record: Record, plan: ResolvedPlan,
                                          renderer: Renderer, pdf: bytes) -> None:
    rendered = renderer.render_layout(record, plan)
    assert rendered.pdf == pdf
    fields = signature_fields(pdf)
    for name, box in rendered.boxes.items():
        assert box.rect == pytest.approx(fields[name].rect, abs=0.01)
        x1, y1, x2, y2 = box.css_box
        assert (x2 - x1) * 0.75 == pytest.approx(box.rect[2] - box.rect[0], abs=0.02)
        assert (y2 - y1) * 0.75 == pytest.approx(box.rect[3] - box.rect[1], abs=0.02)
    # The principal's block sits at the right of the signature row, the seal next to it.
    p, s, h = (fields[n].rect for n in ("principal", "seal", "homeroom"))
    assert h[2] <= s[0] and s[2] <= p[0]
    assert p[1] == pytest.approx(s[1]) == pytest.approx(h[1])


def test_pyhanko_sees_the_fields_and_can_sign_one(pdf: bytes) -> None:
    """The contract with the signing package: pyHanko finds every empty field, signs one in
    an incremental update, and the hsdt XMP survives its rewrite of the metadata."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.fields import enumerate_sig_fields

    reader = PdfFileReader(io.BytesIO(pdf))
    found = {name: value for name, value, _ in enumerate_sig_fields(reader)}
    assert set(found) == set(signature_fields(pdf)) and all(v is None for v in found.values())

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trường THCS Lê Quý Đôn")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        cert_registry=None)  # type: ignore[arg-type]
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)),
                           signers.PdfSignatureMetadata(field_name="seal"), signer=signer)
    signed = out.getvalue()
    assert signed.startswith(pdf)  # incremental: the rendered revision is untouched
    assert signature_fields(signed)["seal"].signed
    assert read_record_metadata(signed) == read_record_metadata(pdf)
    assert b'xmlns:hsdt="urn:hsdt:xmp:1/"' in xmp_bytes(signed)  # declared prefix kept


# -- layouts beyond the sample ---------------------------------------------------------------

def test_longest_free_texts_still_fit_one_page(locked: LockedBundle, renderer: Renderer) -> None:
    student = locked.bundle.students[2].model_copy(update={
        "full_name": "Công Tằng Tôn Nữ Thị Phương Thảo Nguyễn Hoàng Bảo",
        "place_of_birth": "Xã Nậm Chảy, huyện Mường Khương, tỉnh Lào Cai",
        "remark": ("Em chăm ngoan, lễ phép, tích cực tham gia các hoạt động của lớp. " * 20)[:1000],
        "awards": ["Học sinh Giỏi", "Giải Nhất cuộc thi Khoa học kĩ thuật cấp tỉnh dành cho "
                   "học sinh trung học", "Giấy khen Cháu ngoan Bác Hồ"],
        "promotion": Promotion.KIEM_TRA_LAI,
        "summer_result": ("Kiểm tra lại môn Toán đạt 6,5 điểm; được lên lớp. " * 8)[:300],
    })
    rec = record_for(locked, student)
    pdf = renderer.render(rec, plan_of(rec))
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 1
    assert len(signature_fields(pdf)) == len(plan_of(rec).fields)


def test_first_term_record_renders_with_empty_year_columns(renderer: Renderer) -> None:
    bundle = sample_bundle(seed=3, students=2)
    students = []
    for s in bundle.students:
        results = [r.model_copy(update={"hk2": None, "year_average": None, "rating_hk2": None,
                                        "rating_year": None}) for r in s.results]
        students.append(s.model_copy(update={
            "results": results, "promotion": None, "summer_result": None,
            "conduct": TermRatings(hk1=s.conduct.hk1),
            "learning": TermRatings(hk1=s.learning.hk1)}))
    hk1 = lock_bundle(bundle.model_copy(update={"term": Term.HK1, "students": students}),
                      "Nguyễn Thị Thư ký", now=LOCKED_AT)
    rec = records_for(hk1)[0]
    pdf = renderer.render(rec, plan_of(rec))
    assert read_record_metadata(pdf)["documentId"].endswith(f".HK1.{rec.student.code}")
    assert embedded_files(pdf)["record.json"] == rec.data_bytes


def test_plan_field_without_a_box_is_refused(record: Record, plan: ResolvedPlan,
                                             renderer: Renderer) -> None:
    extra = FieldAssignment("vice_principal", 3, Role.PRINCIPAL, "GV001", "Hoàng Văn Thụ",
                            "Phó hiệu trưởng")
    wider = dataclasses.replace(plan, fields=(*plan.fields, extra))
    with pytest.raises(HsdtError) as err:
        renderer.render(record, wider)
    assert err.value.code == "render_layout"
    assert "vice_principal" in err.value.message


def test_record_whose_digest_does_not_match_its_data_is_refused(
        record: Record, plan: ResolvedPlan, renderer: Renderer) -> None:
    stale = dataclasses.replace(record, data_sha256="0" * 64)
    with pytest.raises(HsdtError) as err:
        renderer.render(stale, plan)
    assert err.value.code == "render_data"


def test_record_contents_are_read_in_one_opening(pdf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = pikepdf.Pdf.open
    monkeypatch.setattr(pikepdf.Pdf, "open", lambda *a, **k: (opened.append(1), real_open(*a, **k))[1])
    contents = read_record_contents(pdf)
    assert len(opened) == 1
    monkeypatch.undo()
    assert contents.files == embedded_files(pdf)
    assert contents.fields == read_record_metadata(pdf)
    assert contents.pdfa == PdfaClaims("3", "B", ())


def test_pdfa_claims_name_each_info_entry_that_disagrees_with_xmp(pdf: bytes) -> None:
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        doc.docinfo["/Title"] = pikepdf.String("Một tiêu đề khác")
        doc.docinfo["/ModDate"] = pikepdf.String("D:19990101000000Z")
        out = io.BytesIO()
        doc.save(out)  # leaves the XMP as it was
    claims = read_record_contents(out.getvalue()).pdfa
    assert (claims.part, claims.conformance) == ("3", "B")
    assert [m.split(" ")[0] for m in claims.mismatches] == ["/Title", "/ModDate"]
    assert "Một tiêu đề khác" in claims.mismatches[0]
