"""`hsdt demo`: a class of records through their whole life on one machine, no servers.

Uses the local test PKI (TSA/OCSP/CRL on loopback), SoftHSM2 for the school seal and the
principal, software keys for the teachers, and the local WORM archive.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hsdt.archive.ingest import Archive
from hsdt.archive.store import LocalWormStore
from hsdt.domain.bundles import lock_bundle, locked_json
from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import FieldAssignment, Role
from hsdt.domain.records import records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey, open_pkcs11_key, open_software_key
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import Verifier
from hsdt.workflow import render, sign_all, signing_sequence


def open_identity(pki: testpki.TestPKI, ident: testpki.Identity) -> SigningKey:
    if ident.on_hsm:
        assert ident.pkcs11_key_label is not None
        pki.activate_softhsm()
        return open_pkcs11_key(pki.pkcs11_lib, pki.token_label, pki.user_pin,
                               ident.pkcs11_key_label, ident.cert, list(ident.chain),
                               env=pki.env())
    assert ident.p12_path is not None
    return open_software_key(ident.p12_path, testpki.SOFTWARE_P12_PASSPHRASE)


@dataclass
class DemoResult:
    records: int
    archived: int
    verified: int
    seconds: float
    out: Path


def run_demo(out: Path | None = None, *, students: int = 40, seed: int = 2026,
             console: Console | None = None) -> DemoResult:
    console = console or Console()
    with ExitStack() as stack:
        if out is None:
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hsdt-demo-")))
        out.mkdir(parents=True, exist_ok=True)
        return _run(out, students, seed, console, stack)


def _run(out: Path, students: int, seed: int, console: Console, stack: ExitStack) -> DemoResult:
    t0 = time.perf_counter()
    bundle = sample_bundle(seed=seed, students=students)
    locked = lock_bundle(bundle, "Văn thư nhà trường (demo)")
    (out / "bundle.locked.json").write_bytes(locked_json(locked))
    records = records_for(locked)
    console.print(f"[bold]Lớp {bundle.class_.name}[/] — {bundle.school.name}, năm học "
                  f"{bundle.school_year}: {len(records)} học sinh, dữ liệu đã khoá "
                  f"(SHA-256 {locked.lock.sha256[:16]}…)")

    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    with console.status("Tạo hạ tầng khoá thử nghiệm (CA, TSA, OCSP, CRL, SoftHSM2)…"):
        pki = testpki.provision(out / "pki", people, bundle.school.code, bundle.school.name,
                                hsm_people={bundle.school.principal_id})
        stack.enter_context(testpki.serve(pki, mode="subprocess"))
    keys: dict[str, SigningKey] = {}

    def key_for(f: FieldAssignment) -> SigningKey:
        name = "seal" if f.role is Role.SCHOOL_SEAL else f.assignee
        if name not in keys:
            keys[name] = stack.enter_context(open_identity(pki, pki.identity(name)))
        return keys[name]

    env = SigningEnvironment(trust_roots=pki.trust_roots(), tsa_url=pki.tsa_url,
                             bindings=CertificateBindings(pki.bindings()))
    signer = stack.enter_context(RecordSigner(env))
    verifier = Verifier(trust_roots=pki.trust_roots(), bindings=env.bindings, online=False)
    archive = stack.enter_context(closing(Archive(LocalWormStore(out / "archive"), out / "archive",
                                                   verifier)))
    pdf_dir, report_dir = out / "records", out / "reports"
    pdf_dir.mkdir(exist_ok=True)
    report_dir.mkdir(exist_ok=True)

    rows = []
    failures: list[tuple[object, str]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        t_render = progress.add_task("Kết xuất PDF/A-3b", total=len(records))
        rendered = []
        for rec in records:
            rendered.append(render(rec))
            progress.advance(t_render)
        n_sigs = len(records) * len(signing_sequence(records[0]))
        t_sign = progress.add_task("Ký số theo kế hoạch", total=n_sigs)
        t_arch = progress.add_task("Niêm phong, lưu trữ, xác minh", total=len(records))
        for rec, pdf in zip(records, rendered, strict=True):
            # One record failing must not lose the others: keep what it produced, say why,
            # and go on with the class.
            sealed = b""
            try:
                sealed = sign_all(signer, rec, pdf, key_for,
                                  on_signature=lambda _f: progress.advance(t_sign))
                entry, report = archive.ingest(sealed)
            except HsdtError as exc:
                failures.append((rec, exc.message))
                rejected = out / "rejected"
                rejected.mkdir(exist_ok=True)
                (rejected / f"{rec.student.code}.pdf").write_bytes(sealed or pdf)
                (rejected / f"{rec.student.code}.txt").write_text(exc.message, encoding="utf-8")
                progress.console.print(f"[red]Lỗi[/] {rec.student.full_name}: {exc.message}")
                progress.advance(t_arch)
                continue
            fname = f"{rec.student.code}.pdf"
            (pdf_dir / fname).write_bytes(sealed)
            (report_dir / f"{rec.student.code}.json").write_text(
                json.dumps(report.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
            rows.append((rec, len(sealed), report, entry))
            progress.advance(t_arch)
    # Read everything back from the archive and verify again, as an archivist would.
    verified = sum(1 for e in archive.entries() if verifier.verify(archive.get(e)).valid)
    elapsed = time.perf_counter() - t0
    table = Table(title=f"Kết quả: {len(rows)} học bạ", show_lines=False)
    for col in ("STT", "Học sinh", "Mã định danh", "Chữ ký", "Kích thước", "Xác minh"):
        table.add_column(col)
    for i, (rec, size, report, _entry) in enumerate(rows, 1):
        table.add_row(str(i), rec.student.full_name, rec.student.code,
                      str(len(report.signatures)), f"{size / 1024:.0f} KB",
                      "[green]hợp lệ[/]" if report.valid else "[red]không hợp lệ[/]")
    console.print(table)
    if failures:
        console.print(f"[red]{len(failures)} hồ sơ không hoàn tất[/]; xem thư mục "
                      f"{out / 'rejected'}.")
    console.print(f"Đã lưu trữ {len(rows)} hồ sơ, đọc lại và xác minh hợp lệ {verified}/"
                  f"{len(rows)} — {elapsed:.1f} giây. Thư mục: {out}")
    return DemoResult(records=len(records), archived=len(rows), verified=verified,
                      seconds=elapsed, out=out)
