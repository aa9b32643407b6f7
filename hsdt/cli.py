"""`hsdt` — the command line. Thin: every rule lives in the packages below.

Exit codes of `hsdt verify`: 0 valid, 1 not valid, 2 unusable input. Other commands exit
1 on a refusal (with the reason in Vietnamese) and 2 on unreadable input.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hsdt import cli_vi
from hsdt.domain.errors import BundleRejected, HsdtError, UnusableInput, os_reason

cli_vi.install()
app = typer.Typer(help="HSĐT — hồ sơ điện tử: học bạ, ký số theo trình tự, lưu trữ bất biến.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
archive_app = typer.Typer(help="Kho lưu trữ chỉ ghi một lần.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="In kết quả dạng JSON (cho máy đọc)")]


def _fail(exc: HsdtError) -> typer.Exit:
    err.print(f"[red]Lỗi:[/] {escape(exc.message)}")
    return typer.Exit(2 if isinstance(exc, UnusableInput) else 1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableInput(f"Không đọc được tệp {path}: {os_reason(exc)}.") from None


def _readable_file(path: Path) -> bool:
    """A regular file this process may read (a stat, not a read: a batch may be thousands)."""
    return path.is_file() and os.access(path, os.R_OK)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write next to the target and rename, so a failure never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _progress(*, transient: bool = True):  # type: ignore[no-untyped-def]
    """The bar long commands show: what is being done, how far, for how long."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=transient)


@app.command()
def sample(out: Annotated[Path, typer.Option(help="Tệp JSON sẽ ghi")],
           seed: int = 2026, students: int = 40) -> None:
    """Tạo dữ liệu mẫu của một lớp THCS (tên tiếng Việt, đủ môn, phân công giáo viên)."""
    from hsdt.domain.bundles import bundle_json
    from hsdt.domain.sample import sample_bundle

    bundle = sample_bundle(seed=seed, students=students)
    _write_atomic(out, json.dumps(bundle_json(bundle), ensure_ascii=False, indent=2).encode())
    console.print(f"Đã ghi {len(bundle.students)} học sinh lớp {bundle.class_.name} vào {out}")


@app.command()
def render(bundle: Annotated[Path, typer.Argument(
               metavar="DỮ_LIỆU", help="Tệp dữ liệu lớp (JSON) đã kiểm tra hoặc đã khoá")],
           out: Annotated[Path, typer.Option(help="Thư mục kết quả")],
           by: Annotated[str, typer.Option(help="Người khoá dữ liệu")] = "",
           ) -> None:
    """Kiểm tra, khoá (nếu chưa khoá) và kết xuất học bạ PDF/A-3b cho cả lớp."""
    from hsdt.domain.bundles import locked_json, read_bundle_file
    from hsdt.domain.records import records_for
    from hsdt.workflow import render as render_one

    try:
        locked = read_bundle_file(_read(bundle), by or os.environ.get("USER", "hsdt"))
        records = records_for(locked)
        outputs = [(f"{r.student.code}.pdf", render_one(r)) for r in records]
    except BundleRejected as exc:
        raise _fail(exc) from None
    except HsdtError as exc:
        raise _fail(exc) from None
    # Everything rendered in memory first: a bad record leaves no partial class on disk.
    _write_atomic(out / "bundle.locked.json", locked_json(locked))
    for name, pdf in outputs:
        _write_atomic(out / name, pdf)
    console.print(f"Đã kết xuất {len(outputs)} học bạ vào {out} "
                  f"(khoá dữ liệu SHA-256 {locked.lock.sha256[:16]}…)")


@app.command()
def sign(file: Annotated[Path, typer.Argument(metavar="TỆP_PDF", help="Hồ sơ cần ký")],
         field: Annotated[str, typer.Option(help="Tên ô chữ ký, ví dụ subject_TOAN")],
         out: Annotated[Path | None, typer.Option(help="Tệp kết quả (mặc định: ghi đè)")] = None,
         pki: Annotated[Path | None, typer.Option(help="Thư mục PKI thử nghiệm")] = None,
         identity: Annotated[str | None, typer.Option("--as", help="Danh tính trong PKI")] = None,
         p12: Annotated[Path | None, typer.Option(help="Tệp PKCS#12 (phần mềm)")] = None,
         passphrase: Annotated[str | None, typer.Option(envvar="HSDT_P12_PASSPHRASE")] = None,
         pkcs11_lib: Annotated[str | None, typer.Option(envvar="HSDT_PKCS11_LIB")] = None,
         token: Annotated[str | None, typer.Option(help="Nhãn token PKCS#11")] = None,
         key_label: Annotated[str | None, typer.Option(help="Nhãn khoá trên token")] = None,
         cert: Annotated[Path | None, typer.Option(help="Chứng thư (PEM/DER) của khoá")] = None,
         pin: Annotated[str | None, typer.Option(envvar="HSDT_PKCS11_PIN")] = None,
         tsa: Annotated[str | None, typer.Option(help="URL dịch vụ cấp dấu thời gian")] = None,
         trust: Annotated[list[Path] | None, typer.Option(help="CA gốc tin cậy (PEM)")] = None,
         bindings: Annotated[Path | None, typer.Option(help="Sổ đăng ký chứng thư")] = None,
         ) -> None:
    """Ký một ô chữ ký của hồ sơ (PAdES B-T), đúng thứ tự kế hoạch ký."""
    from hsdt.signing.pades import RecordSigner

    pdf = _read(file)
    try:
        with ExitStack() as stack:
            env, key = _signing_setup(stack, pki, identity, p12, passphrase, pkcs11_lib, token,
                                      key_label, cert, pin, tsa, trust, bindings)
            with RecordSigner(env) as signer:
                signed = signer.sign(pdf, field, key)
    except HsdtError as exc:
        raise _fail(exc) from None
    _write_atomic(out or file, signed)
    console.print(f"Đã ký ô «{field}» → {out or file}")


@app.command()
def seal(file: Annotated[Path, typer.Argument(metavar="TỆP_PDF", help="Hồ sơ đã ký đủ")],
         out: Annotated[Path | None, typer.Option()] = None,
         pki: Annotated[Path | None, typer.Option(help="Thư mục PKI thử nghiệm")] = None,
         tsa: Annotated[str | None, typer.Option()] = None,
         trust: Annotated[list[Path] | None, typer.Option()] = None,
         bindings: Annotated[Path | None, typer.Option()] = None) -> None:
    """Niêm phong dài hạn (PAdES B-LTA): DSS đầy đủ rồi dấu thời gian tài liệu."""
    from hsdt.signing.pades import RecordSigner

    pdf = _read(file)
    try:
        with ExitStack() as stack:
            env, _ = _signing_setup(stack, pki, None, None, None, None, None, None, None, None,
                                    tsa, trust, bindings)
            with RecordSigner(env) as signer:
                sealed = signer.seal(pdf)
    except HsdtError as exc:
        raise _fail(exc) from None
    _write_atomic(out or file, sealed)
    console.print(f"Đã niêm phong → {out or file}")


@app.command()
def verify(file: Annotated[Path | None, typer.Argument(metavar="TỆP_PDF",
                                                      help="Tệp PDF cần xác minh")] = None,
           as_json: JsonOpt = False,
           trust: Annotated[list[Path] | None, typer.Option(help="CA gốc tin cậy (PEM)")] = None,
           pki: Annotated[Path | None, typer.Option(help="Thư mục PKI thử nghiệm")] = None,
           bindings: Annotated[Path | None, typer.Option(help="Sổ đăng ký chứng thư")] = None,
           offline: Annotated[bool, typer.Option(help="Không truy cập mạng")] = False,
           public: Annotated[bool, typer.Option(
               "--public", help="Chỉ trả lời công khai (xác thực hay không), đối chiếu với kho")] = False,
           root: Annotated[Path | None, typer.Option("--root", help="Kho lưu trữ (cho --public)")] = None,
           record_id: Annotated[str | None, typer.Option(help="Mã hồ sơ (cho --public)")] = None,
           ) -> None:
    """Xác minh hồ sơ: chữ ký, kế hoạch ký, khoá dữ liệu, PDF/A. Mã thoát 0/1/2.

    Với --public: câu trả lời công khai (như trang mà mã QR mở), không lộ điểm, ngày sinh
    hay mã học sinh.
    """
    from hsdt.signing.report_text import report_text
    from hsdt.signing.verification import Verifier

    try:
        if public:
            if root is None or (file is None and record_id is None):
                raise UnusableInput("--public cần --root và một tệp PDF hoặc --record-id.")
            archive = _open_archive(root, trust, pki, bindings)
            answer = archive.public(record_id=record_id,
                                    pdf=_read(file) if file is not None else None)
            if as_json:
                print(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
            else:
                console.print(answer.message, highlight=False, markup=False)
                for label, value in answer.facts():
                    console.print(f"  {label}: {value}", highlight=False, markup=False)
            raise typer.Exit(0 if answer.authentic else 1)
        if file is None:
            raise UnusableInput("Cần tệp PDF để xác minh.")
        roots, binds = _trust(trust, pki, bindings)
        report = Verifier(roots, binds, online=not offline).verify(_read(file))
    except UnusableInput as exc:
        if as_json:
            print(json.dumps({"verdict": "unusable", "error": exc.message}, ensure_ascii=False))
        else:
            err.print(f"[red]Không dùng được tệp:[/] {escape(exc.message)}")
        raise typer.Exit(2) from None
    except HsdtError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        console.print(report_text(report), highlight=False, markup=False)
    raise typer.Exit(0 if report.valid else 1)


RootOpt = Annotated[Path, typer.Option("--root", help="Thư mục kho lưu trữ")]
PkiOpt = Annotated[Path | None, typer.Option(help="Thư mục PKI thử nghiệm")]
TrustOpt = Annotated[list[Path] | None, typer.Option(help="CA gốc tin cậy (PEM)")]
BindOpt = Annotated[Path | None, typer.Option(help="Sổ đăng ký chứng thư")]


def _open_archive(root: Path, trust: list[Path] | None, pki: Path | None, bindings: Path | None,  # type: ignore[no-untyped-def]
                  verify_processes: int = 1, *, create: bool = False):
    """The archive at ``root``; only an ingest (``create``) may start one there."""
    from hsdt.archive.factory import open_store
    from hsdt.archive.ingest import Archive, require_archive
    from hsdt.signing.verification import Verifier

    if not create:
        require_archive(root)  # before anything is created there
    roots, binds = _trust(trust, pki, bindings)
    store, retain_until = open_store(root)
    # The index and the transparency log live in --root in both cases (PostgreSQL and a
    # replicated log in the service issue); the records themselves in the chosen store.
    return Archive(store, root, Verifier(roots, binds, online=False), retain_until=retain_until,
                   verify_processes=verify_processes)


# Files read, verified and committed together: memory stays bounded on a school's whole year,
# and what is done is logged and indexed chunk by chunk, not only at the very end.
INGEST_CHUNK = 64


@archive_app.command("ingest")
def archive_ingest(files: Annotated[list[Path], typer.Argument(
                       metavar="TỆP_PDF", help="Một hay nhiều tệp hồ sơ PDF")],
                   root: RootOpt, pki: PkiOpt = None, trust: TrustOpt = None,
                   bindings: BindOpt = None,
                   processes: Annotated[int | None, typer.Option(
                       help="Số tiến trình xác minh (mặc định: số lõi CPU)")] = None) -> None:
    """Xác minh rồi lưu hồ sơ vào kho chỉ ghi một lần (nhiều tệp: xác minh song song)."""
    import os

    from hsdt.signing.report_text import local_date

    if processes is not None and processes < 1:
        raise _fail(UnusableInput("--processes phải từ 1 trở lên."))
    try:
        single = _read(files[0]) if len(files) == 1 else None  # one file: its error, as usual
        if single is None and not any(_readable_file(f) for f in files):
            # Nothing to ingest: say so before an archive is made at --root for nothing.
            raise UnusableInput(f"Không đọc được tệp nào trong {len(files)} tệp đã cho (không "
                                f"có, không phải tệp hoặc không có quyền đọc), ví dụ "
                                f"«{files[0]}». Không có gì được lưu.")
        workers = min(processes or os.cpu_count() or 1, len(files), INGEST_CHUNK)
        archive = _open_archive(root, trust, pki, bindings, verify_processes=workers,
                                create=True)
    except HsdtError as exc:
        raise _fail(exc) from None
    stored = failed = 0
    bar = _progress()

    def refused(f: Path, reason: str) -> None:
        nonlocal failed
        failed += 1
        bar.console.print(f"[red]✗ {escape(str(f))}[/red]: {escape(reason)}")

    try:
        with bar:
            task = bar.add_task(f"Xác minh và lưu ({workers} tiến trình xác minh)",
                                total=len(files))
            for start in range(0, len(files), INGEST_CHUNK):
                chunk: list[tuple[Path, bytes]] = []
                for f in files[start:start + INGEST_CHUNK]:
                    try:
                        chunk.append((f, single if single is not None else _read(f)))
                    except UnusableInput as exc:
                        refused(f, exc.message)
                done = start + len(files[start:start + INGEST_CHUNK]) - len(chunk)

                def verified(n: int, done: int = done) -> None:
                    bar.update(task, completed=done + n)

                outcomes = archive.ingest_many([pdf for _, pdf in chunk], progress=verified)
                if single is not None and outcomes[0].error is not None:
                    raise outcomes[0].error
                for (f, _), outcome in zip(chunk, outcomes, strict=True):
                    entry = outcome.entry
                    if outcome.error is not None or entry is None:
                        refused(f, outcome.error.message if outcome.error is not None
                                else "không rõ lý do")
                        continue
                    stored += 1
                    bar.console.print(
                        f"Đã lưu {entry.record_id} (lần {entry.revision}) → {entry.key}, nhật ký "
                        f"#{entry.log_index}, giữ đến {local_date(entry.retain_until)}",
                        highlight=False)
    except HsdtError as exc:
        if stored:
            err.print(f"{stored} hồ sơ đã vào kho trước khi dừng; chạy lại cùng lệnh sẽ lưu "
                      "phần còn lại (hồ sơ đã lưu không bị lưu lần nữa).")
        raise _fail(exc) from None
    finally:
        archive.close()
    if len(files) > 1:
        console.print(f"{stored}/{len(files)} hồ sơ đã vào kho"
                      + (f"; {failed} hồ sơ bị từ chối hoặc chưa lưu được (chạy lại an toàn: "
                         "hồ sơ đã lưu không bị lưu lần nữa)." if failed else "."))
    if failed:
        raise typer.Exit(1)


@archive_app.command("search")
def archive_search(root: RootOpt,
                   student: Annotated[str | None, typer.Option(help="Mã định danh học sinh")] = None,
                   school: Annotated[str | None, typer.Option(help="Mã trường")] = None,
                   year: Annotated[str | None, typer.Option(help="Năm học, ví dụ 2025-2026")] = None,
                   kind: Annotated[str | None, typer.Option(help="Loại hồ sơ")] = None,
                   as_json: JsonOpt = False) -> None:
    """Tìm hồ sơ trong kho theo học sinh, trường, năm học, loại."""
    from dataclasses import asdict

    from rich.table import Table

    from hsdt.archive.index import ArchiveIndex
    from hsdt.archive.ingest import require_archive

    try:
        require_archive(root)
    except HsdtError as exc:
        raise _fail(exc) from None
    found = ArchiveIndex(root / "index.sqlite3").search(student_code=student, school_code=school,
                                                        school_year=year, kind=kind)
    if as_json:
        print(json.dumps([asdict(e) for e in found], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(found)} hồ sơ")
    # The id is what `archive get` takes: folded onto two lines on a narrow terminal, never cut.
    table.add_column("Mã hồ sơ", overflow="fold")
    for col in ("Lần", "Năm học", "SHA-256", "Trạng thái"):
        table.add_column(col)
    for e in found:
        status = "hiện hành" if e.current else f"đã thay bằng {e.superseded_by[:12]}…"
        table.add_row(e.record_id, str(e.revision), e.school_year, e.sha256[:16] + "…", status)
    console.print(table)


@archive_app.command("get")
def archive_get(sha_or_record: Annotated[str, typer.Argument(
                    metavar="MÃ_HỒ_SƠ", help="Mã hồ sơ, hoặc SHA-256 của một bản đã lưu")],
                root: RootOpt,
                out: Annotated[Path, typer.Option(help="Thư mục ghi PDF và báo cáo")],
                pki: PkiOpt = None, trust: TrustOpt = None, bindings: BindOpt = None) -> None:
    """Lấy hồ sơ (bản mới nhất) kèm báo cáo xác minh mới lập, không dùng mạng: JSON, HTML, PDF."""
    from hsdt.signing.report_html import report_html, report_pdf
    from hsdt.signing.report_text import report_text

    try:
        archive = _open_archive(root, trust, pki, bindings)
        entry = archive.index.by_sha(sha_or_record) or archive.current(sha_or_record)
        if entry is None:
            raise HsdtError(f"Không tìm thấy hồ sơ «{sha_or_record}» trong kho.", code="not_found")
        pdf = archive.get(entry)
        report = archive.report(entry)
    except HsdtError as exc:
        raise _fail(exc) from None
    # record ids contain dots: build names by appending, never with_suffix()
    def named(ext: str) -> Path:
        return out / f"{entry.record_id}{ext}"

    _write_atomic(named(".pdf"), pdf)
    _write_atomic(named(".report.json"), json.dumps(report.to_json(), ensure_ascii=False,
                                                     indent=2).encode())
    _write_atomic(named(".report.html"), report_html(report).encode())
    _write_atomic(named(".report.pdf"), report_pdf(report))
    console.print(report_text(report), highlight=False, markup=False)
    console.print(f"Đã ghi {named('.pdf')} và báo cáo (JSON, HTML, PDF).", highlight=False)
    raise typer.Exit(0 if report.valid else 1)


@archive_app.command("renew")
def archive_renew(root: RootOpt, tsa: Annotated[str | None, typer.Option(help="URL TSA lưu trữ")] = None,
                  margin_days: Annotated[int, typer.Option(
                      help="Gia hạn khi chứng thư TSA còn dưới N ngày")] = 730,
                  pki: PkiOpt = None, trust: TrustOpt = None, bindings: BindOpt = None) -> None:
    """Gia hạn dấu thời gian lưu trữ cho mọi hồ sơ đến hạn; bản cũ vẫn được giữ nguyên."""
    from datetime import UTC, datetime, timedelta

    from hsdt.archive.index import ArchiveEntry
    from hsdt.signing.pades import RecordSigner, SigningEnvironment, renewal_due

    renewed = failed = 0
    latest: dict[str, ArchiveEntry] = {}
    try:
        with ExitStack() as stack:
            archive = _open_archive(root, trust, pki, bindings)
            roots, binds = _trust(trust, pki, bindings)
            if pki is not None:
                from hsdt.signing import testpki

                p = testpki.load(pki)
                stack.enter_context(_serve(p))
                tsa = tsa or p.archive_tsa_url
            if tsa is None:
                raise HsdtError("Cần URL dịch vụ cấp dấu thời gian (--tsa).", code="tsa_missing")
            signer = stack.enter_context(RecordSigner(SigningEnvironment(roots, tsa, binds)))
            now = datetime.now(UTC)
            for e in archive.index.all():
                latest[e.record_id] = e  # log order: the last one is the newest version
            bar = stack.enter_context(_progress())
            task = bar.add_task("Xem hạn bằng chứng", total=len(latest))
            for entry in latest.values():
                reason = renewal_due(archive.get(entry), now, timedelta(days=margin_days))
                if reason is not None:
                    try:
                        new = archive.renew(entry, signer.renew)
                        renewed += 1
                        bar.console.print(f"Đã gia hạn {new.record_id} ({reason}).", highlight=False)
                    except HsdtError as exc:
                        failed += 1
                        bar.console.print(f"[red]✗ Gia hạn thất bại[/] {escape(exc.message)}",
                                          highlight=False)
                bar.advance(task)
    except HsdtError as exc:
        raise _fail(exc) from None
    seen = f"đã xem {len(latest)} hồ sơ; gia hạn khi chứng thư TSA còn dưới {margin_days} ngày"
    if not renewed and not failed:
        console.print(f"Không có hồ sơ nào đến hạn gia hạn ({seen}).", highlight=False)
    else:
        console.print(f"Đã gia hạn {renewed} hồ sơ ({seen})"
                      + (f"; {failed} hồ sơ gia hạn thất bại, chưa có gì được ghi cho chúng — "
                         "chạy lại lệnh này để thử lại." if failed else "."), highlight=False)
    raise typer.Exit(1 if failed else 0)


audit_app = typer.Typer(help="Kiểm toán kho lưu trữ.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("log")
def audit_log_cmd(root: RootOpt, pki: PkiOpt = None, trust: TrustOpt = None,
                  bindings: BindOpt = None,
                  heads: Annotated[Path | None, typer.Option(
                      help="Tệp đầu cây lưu giữ riêng (từ «hsdt audit heads»): nhật ký phải nối "
                           "tiếp từng đầu cây trong đó")] = None,
                  log_key: Annotated[Path | None, typer.Option(
                      help="Khoá công khai nhật ký đã ghim (PEM, từ «hsdt audit heads --key-out»)")
                  ] = None,
                  as_json: JsonOpt = False) -> None:
    """Đối chiếu nhật ký minh bạch, chỉ mục và kho; nêu từng chỗ sai lệch. Mã thoát 0 sạch, 1 có lỗi."""
    from hsdt.archive.audit import audit_log, findings_json
    from hsdt.archive.tlog import TreeHeadError, load_public_key, parse_tree_heads
    from hsdt.signing.report_text import local_time

    try:
        # The auditor's own files first: a bad one is bad input, and nothing is opened.
        try:
            kept = parse_tree_heads(_read(heads).decode("utf-8", "replace")) if heads else []
        except TreeHeadError as exc:
            raise UnusableInput(f"Tệp đầu cây lưu giữ {heads} không đọc được: {exc.message}") from None
        try:
            pinned = load_public_key(_read(log_key), f"Tệp {log_key}") if log_key else None
        except TreeHeadError as exc:
            raise UnusableInput(exc.message) from None
        if heads and not kept:
            raise UnusableInput(f"Tệp đầu cây lưu giữ {heads} không có đầu cây nào.")
        archive = _open_archive(root, trust, pki, bindings)
        findings = audit_log(archive, kept, pinned)
        size, records = archive.log.size, len(archive.index.log_indexes())  # no rows re-read
        tree_root = archive.log.root().hex()
    except HsdtError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(findings_json(findings), ensure_ascii=False, indent=2))
    elif not findings:
        # The counts and the root say what "clean" covered; an auditor compares the root with
        # the tree heads they keep.
        console.print(f"[green]Kho sạch:[/] {size} mục nhật ký, {records} hồ sơ trong chỉ mục "
                      "và các đối tượng trong kho khớp nhau.\n"
                      f"Gốc cây nhật ký ở kích thước {size}: {tree_root}", highlight=False)
        if kept:
            newest = max(kept, key=lambda h: h.size)
            console.print(f"Nhật ký nối tiếp đủ {len(kept)} đầu cây lưu giữ riêng (lớn nhất: "
                          f"kích thước {newest.size}, ký lúc "
                          f"{local_time(newest.timestamp.isoformat())})"
                          + (", ký bằng khoá đã ghim." if pinned else "."), highlight=False)
    else:
        for f in findings:
            console.print(f"[red]✗[/] ({f.code}) {escape(f.message)}", highlight=False)
    raise typer.Exit(1 if findings else 0)


@audit_app.command("heads")
def audit_heads_cmd(root: RootOpt,
                    out: Annotated[Path, typer.Option(
                        "--out", help="Tệp JSON Lines nhận các đầu cây đã ký")],
                    key_out: Annotated[Path | None, typer.Option(
                        help="Ghi khoá công khai của nhật ký (PEM) vào đây để ghim")] = None,
                    pki: PkiOpt = None, trust: TrustOpt = None, bindings: BindOpt = None) -> None:
    """Xuất các đầu cây đã ký của nhật ký để Sở hoặc kiểm toán viên lưu giữ ngoài kho."""
    from hsdt.archive.tlog import parse_tree_heads, public_key_fingerprint, public_key_pem
    from hsdt.signing.report_text import local_time

    try:
        archive = _open_archive(root, trust, pki, bindings)
        archive.log.signed_tree_head()  # a head at today's size, if there is none yet
        exported = archive.log.export_tree_heads()
        heads = parse_tree_heads(exported)  # what the file holds, as said below
        public_key = archive.log.require_public_key()
        _write_atomic(out, exported.encode("utf-8"))
        if key_out is not None:
            _write_atomic(key_out, public_key_pem(public_key))
    except OSError as exc:
        raise _fail(UnusableInput(f"Không ghi được tệp: {os_reason(exc)}.")) from None
    except HsdtError as exc:
        raise _fail(exc) from None
    newest = heads[-1]
    console.print(
        f"Đã xuất {len(heads)} đầu cây → {out}\n"
        f"Mới nhất: kích thước {newest.size}, ký lúc {local_time(newest.timestamp.isoformat())}, "
        f"gốc {newest.root_hash.hex()}\n"
        f"Khoá công khai của nhật ký (Ed25519), SHA-256: {public_key_fingerprint(public_key)}"
        + (f" → {key_out}" if key_out is not None else "") + "\n"
        "Hãy lưu tệp này ở nơi khác kho (Sở, kiểm toán viên). Lần kiểm toán sau: "
        f"hsdt audit log --root {root} --heads {out}"
        + (f" --log-key {key_out}" if key_out is not None else ""), highlight=False)


@audit_app.command("fixity")
def audit_fixity_cmd(root: RootOpt,
                     sample: Annotated[int | None, typer.Option(help="Kiểm tra ngẫu nhiên N hồ sơ")] = None,
                     limit: Annotated[int | None, typer.Option(help="Tối đa N hồ sơ lần này")] = None,
                     pki: PkiOpt = None, trust: TrustOpt = None, bindings: BindOpt = None) -> None:
    """Đọc lại và băm lại các đối tượng (quét tiếp từ chỗ dừng, hoặc lấy mẫu)."""
    from hsdt.archive.audit import fixity_audit

    try:
        run = fixity_audit(_open_archive(root, trust, pki, bindings), sample=sample, limit=limit)
    except HsdtError as exc:
        raise _fail(exc) from None
    for f in run.failures:
        console.print(f"[red]✗[/] ({f.code}) {escape(f.message)}", highlight=False)
    done = "đã quét hết" if run.completed_sweep else "sẽ quét tiếp lần sau"
    console.print(f"Đã kiểm tra {run.checked} hồ sơ, {len(run.failures)} lỗi; {done}.")
    raise typer.Exit(1 if run.failures else 0)


@app.command()
def demo(out: Annotated[Path | None, typer.Option(help="Giữ PDF, dữ liệu, báo cáo ở đây")] = None,
         students: int = 40, seed: int = 2026) -> None:
    """Chạy toàn bộ vòng đời cho một lớp 40 học sinh, không cần máy chủ nào."""
    from hsdt.demo import run_demo

    try:
        result = run_demo(out, students=students, seed=seed, console=console)
    except HsdtError as exc:
        raise _fail(exc) from None
    if result.verified != result.records:
        err.print(f"[red]Chỉ {result.verified}/{result.records} hồ sơ xác minh hợp lệ.[/]")
        raise typer.Exit(1)


def _trust(trust: list[Path] | None, pki: Path | None, bindings: Path | None):  # type: ignore[no-untyped-def]
    from hsdt.signing.bindings import CertificateBindings
    from hsdt.signing.trust import load_trust_roots

    roots = load_trust_roots(trust or [])
    binds = CertificateBindings.load(bindings) if bindings else None
    if pki is not None:
        from hsdt.signing import testpki

        p = testpki.load(pki)
        roots += p.trust_roots()
        binds = binds or CertificateBindings(p.bindings())
    if not roots:
        raise HsdtError("Chưa có CA gốc tin cậy nào: đặt tệp PEM trong config/trust/ hoặc dùng "
                        "--trust.", code="no_trust_roots")
    return roots, binds


def _serve(p):  # type: ignore[no-untyped-def]
    """Serve the test PKI's TSA/OCSP/CRL for this command, unless something already does."""
    import contextlib

    from hsdt.signing import testpki

    try:
        testpki.check_services(p, timeout=2.0)
        return contextlib.nullcontext(p)
    except testpki.TestPKIError:
        return testpki.serve(p)


def _signing_setup(stack, pki, identity, p12, passphrase, pkcs11_lib, token, key_label,  # type: ignore[no-untyped-def]
                   cert, pin, tsa, trust, bindings):
    from hsdt.signing.keys import open_pkcs11_key, open_software_key
    from hsdt.signing.pades import SigningEnvironment
    from hsdt.signing.trust import load_cert

    roots, binds = _trust(trust, pki, bindings)
    if binds is None:
        raise HsdtError("Cần sổ đăng ký chứng thư (--bindings) để biết chứng thư thuộc về ai.",
                        code="bindings_missing")
    key = None
    if pki is not None:
        from hsdt.demo import open_identity
        from hsdt.signing import testpki

        p = testpki.load(pki)
        stack.enter_context(_serve(p))
        tsa = tsa or p.tsa_url
        if identity:
            key = stack.enter_context(open_identity(p, p.identity(identity)))
    if key is None and p12 is not None:
        key = stack.enter_context(open_software_key(p12, passphrase.encode() if passphrase
                                                    else None))
    elif key is None and pkcs11_lib and token and key_label and cert and pin:
        key = stack.enter_context(open_pkcs11_key(pkcs11_lib, token, pin, key_label,
                                                  load_cert(cert), []))
    if tsa is None:
        raise HsdtError("Cần URL dịch vụ cấp dấu thời gian (--tsa).", code="tsa_missing")
    from hsdt.signing.pades import SigningEnvironment as _Env  # noqa: F401
    return SigningEnvironment(trust_roots=roots, tsa_url=tsa, bindings=binds), key


transfer_app = typer.Typer(help="Hồ sơ chuyển trường.", no_args_is_help=True)
app.add_typer(transfer_app, name="transfer")


@transfer_app.command("issue")
def transfer_issue(student: Annotated[str, typer.Option(help="Mã định danh học sinh")], root: RootOpt,
                   out: Annotated[Path, typer.Option(help="Tệp gói hồ sơ (.zip)")],
                   pki: PkiOpt = None, trust: TrustOpt = None, bindings: BindOpt = None) -> None:
    """Lập gói hồ sơ chuyển trường: mọi học bạ của học sinh, báo cáo, danh mục ký bằng dấu số."""
    from hsdt.archive.transfer import issue_transfer_package

    try:
        archive = _open_archive(root, trust, pki, bindings)
        latest: dict[str, object] = {}
        for e in archive.index.search(student_code=student, current_only=True):
            latest[e.record_id] = e  # log order: keep the newest version of each record
        if not latest:
            raise HsdtError(f"Kho không có hồ sơ nào của học sinh {student}.", code="not_found")
        if pki is None:
            raise HsdtError("Cần khoá dấu số của trường (--pki trong bản thử nghiệm).",
                            code="seal_missing")
        from hsdt.demo import open_identity
        from hsdt.signing import testpki

        p = testpki.load(pki)
        with _serve(p), open_identity(p, p.identity("seal")) as seal:
            records = [archive.get(e) for e in latest.values()]  # type: ignore[arg-type]
            package = issue_transfer_package(
                records, seal=seal, tsa_url=p.tsa_url, trust_roots=p.trust_roots(),
                issuing_school_code=p.school_code, issuing_school_name=p.school_name,
                student_code=student)
    except HsdtError as exc:
        raise _fail(exc) from None
    _write_atomic(out, package)
    console.print(f"Đã lập gói {out} gồm {len(latest)} hồ sơ của học sinh {student}:",
                  highlight=False)
    for e in latest.values():
        console.print(f"  {e.record_id} (lần {e.revision}, năm học {e.school_year})",  # type: ignore[attr-defined]
                      highlight=False)
    console.print("Trường nhận kiểm tra gói bằng: hsdt transfer verify "
                  f"{out.name}", highlight=False)


@transfer_app.command("verify")
def transfer_verify(package: Annotated[Path, typer.Argument(
                        metavar="GÓI", help="Tệp gói hồ sơ chuyển trường (.zip)")],
                    pki: PkiOpt = None, trust: TrustOpt = None,
                    bindings: BindOpt = None,
                    as_json: JsonOpt = False) -> None:
    """Kiểm tra gói hồ sơ chuyển trường, không cần mạng; nêu rõ từng chỗ sai. Mã thoát 0/1/2."""
    from hsdt.archive.transfer import verify_transfer_package

    try:
        roots, _ = _trust(trust, pki, bindings)
        check = verify_transfer_package(_read(package), trust_roots=roots)
    except HsdtError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(check.to_json(), ensure_ascii=False, indent=2))
    else:
        console.print(_transfer_summary(check), highlight=False)
    raise typer.Exit(0 if check.ok else 1)


def _transfer_summary(check):  # type: ignore[no-untyped-def]
    """What the receiving school reads: the verdict, who issued the package and when, each
    record with its own verdict, then every problem found (the package's claims are shown
    even when they failed, marked as such, so the clerk knows what was presented)."""
    from rich.text import Text

    from hsdt.signing.report_text import local_time

    verdict = {"valid": "hợp lệ", "invalid": "không hợp lệ",
               "indeterminate": "chưa xác định (cần gia hạn bằng chứng)"}
    out = Text()
    if check.ok:
        out.append(f"Gói hồ sơ chuyển trường HỢP LỆ: {len(check.records)} hồ sơ.\n", "green")
    else:
        out.append(f"Gói hồ sơ chuyển trường KHÔNG HỢP LỆ: {len(check.problems)} vấn đề.\n", "red")
    claimed = "" if check.manifest_signature_ok else " (chưa xác thực được)"
    if check.student_code:
        out.append(f"  Học sinh: mã định danh {check.student_code}{claimed}\n")
    if check.issuing_school_name or check.issuing_school_code:
        out.append(f"  Trường cấp: {check.issuing_school_name or ''} "
                   f"({check.issuing_school_code or '?'}){claimed}\n")
    if check.signer_name:
        out.append(f"  Dấu số: {check.signer_name}, "
                   f"{'đúng' if check.manifest_signature_ok else 'KHÔNG hợp lệ'}"
                   + (f", lúc {local_time(check.signed_at)}" if check.signed_at else "") + "\n")
    for r in check.records:
        mark, style = ("✓", "green") if r.ok else ("✗", "red")
        out.append(f"  {mark} ", style)
        out.append(f"{r.record_id} — năm học {r.school_year}, trường {r.school_code}: "
                   f"{verdict.get(r.verdict or '', 'không kiểm tra được')}\n")
    for line in check.messages():
        out.append("  ✗ ", "red")
        out.append(line + "\n")
    out.append(f"Kiểm tra lúc {local_time(check.verified_at)}, không dùng mạng.")
    return out


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context) -> None:
    """Chạy một worker Celery (cần HSDT_BROKER_URL: Redis hoặc RabbitMQ). Mọi tuỳ chọn của
    `celery worker` đều dùng được, ví dụ --concurrency 2."""
    from hsdt.workers.cli import run_worker
    from hsdt.workers.settings import WorkerConfigError

    try:
        run_worker(list(ctx.args))
    except WorkerConfigError as exc:
        err.print(f"[red]Lỗi:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


# -- the service and the teacher's agent -----------------------------------------------------
@app.command()
def serve(host: Annotated[str, typer.Option(help="Địa chỉ lắng nghe")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Cổng lắng nghe")] = 8000,
          log_level: Annotated[str, typer.Option(help="Mức nhật ký của uvicorn")] = "info") -> None:
    """Chạy API REST của dịch vụ (uvicorn), cấu hình từ các biến HSDT_… (xem hsdt/settings.py).

    Cơ sở dữ liệu được nâng cấp lược đồ trước khi nhận yêu cầu. Tài liệu API: /docs.
    """
    import uvicorn

    from hsdt.api.app import create_app
    from hsdt.service.config import context_from_env

    try:
        ctx = context_from_env()
    except HsdtError as exc:
        raise _fail(exc) from None
    try:
        if not ctx.seal_keys:
            err.print("[yellow]Lưu ý:[/] máy chủ không giữ khoá con dấu của trường nào (HSDT_SEAL_*): "
                      "yêu cầu niêm phong sẽ bị từ chối.")
        console.print(f"HSĐT phục vụ tại http://{host}:{port} (tài liệu API: /docs)", highlight=False)
        uvicorn.run(create_app(ctx), host=host, port=port, log_level=log_level)
    finally:
        ctx.close()


@app.command()
def openapi(out: Annotated[Path | None, typer.Option(help="Tệp JSON sẽ ghi (mặc định: in ra)")] = None
            ) -> None:
    """Xuất đặc tả OpenAPI của API REST (bản công bố: docs/openapi.json)."""
    from hsdt.service.config import openapi_json

    text = openapi_json()
    if out is None:
        sys.stdout.write(text)
        return
    _write_atomic(out, text.encode())
    console.print(f"Đã ghi đặc tả OpenAPI vào {out}", highlight=False)


def _secret(prompt: str, from_stdin: bool, what: str) -> str:
    """A secret read once: one line of stdin (scripted use) or a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UnusableInput(f"Không đọc được {what} từ stdin (hết dữ liệu).")
        return line.rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True))


@app.command()
def agent(server: Annotated[str, typer.Option(envvar="HSDT_SERVER_URL",
                                              help="Địa chỉ máy chủ HSĐT, ví dụ https://hsdt.truong.edu.vn")],
          user: Annotated[str, typer.Option(help="Tên đăng nhập")],
          password_stdin: Annotated[bool, typer.Option(
              "--password-stdin", help="Đọc mật khẩu từ dòng đầu của stdin")] = False,
          pkcs11_lib: Annotated[str | None, typer.Option(
              envvar="HSDT_PKCS11_LIB", help="Thư viện PKCS#11 của token")] = None,
          token_label: Annotated[str | None, typer.Option(help="Nhãn token")] = None,
          key_label: Annotated[str | None, typer.Option(help="Nhãn khoá (và chứng thư) trên token")] = None,
          chain: Annotated[Path | None, typer.Option(
              help="Chứng thư trung gian (PEM/DER) gửi kèm chữ ký từ token")] = None,
          p12: Annotated[Path | None, typer.Option(help="Tệp PKCS#12 (khoá phần mềm) thay cho token")] = None,
          pin_stdin: Annotated[bool, typer.Option(
              "--pin-stdin", help="Đọc mã PIN (hoặc mật khẩu tệp PKCS#12) từ stdin, sau mật khẩu")] = False,
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Không hỏi xác nhận")] = False,
          provider: Annotated[str | None, typer.Option(
              help="Ký qua nhà cung cấp ký số từ xa (tên nhà trường cấu hình, ví dụ mysign, smartca) "
                   "thay cho token")] = None) -> None:
    """Ký mọi ô đang chờ bạn trên máy chủ: xem danh sách, xác nhận, nhập PIN một lần. Mã thoát 1 nếu có lỗi.

    Khoá bí mật không rời token (hay dịch vụ ký từ xa); máy chủ HSĐT không lưu mã PIN.
    """
    if provider is not None:
        _agent_remote(server, user, provider, password_stdin=password_stdin, pin_stdin=pin_stdin, yes=yes)
        return

    from hsdt.agent import ApiClient, open_file_key, open_token_key, read_certificates, run_agent
    from hsdt.domain.errors import SigningRefused
    from hsdt.signing.keys import SigningKey

    try:
        if p12 is not None and (token_label or key_label):
            raise UnusableInput("Chọn một loại khoá: --p12, hoặc --token-label với --key-label.")
        if p12 is None and not (pkcs11_lib and token_label and key_label):
            raise UnusableInput("Cần khoá ký: --p12 TỆP, hoặc token với --pkcs11-lib (hay HSDT_PKCS11_LIB), "
                                "--token-label và --key-label.")
        if p12 is not None and not p12.is_file():
            raise UnusableInput(f"Không có tệp khoá {p12}.")
        intermediates = []
        if chain is not None:
            try:
                intermediates = read_certificates(chain)
            except OSError as exc:
                raise UnusableInput(f"Không đọc được tệp chứng thư {chain}: {os_reason(exc)}.") from None
            except ValueError as exc:
                raise UnusableInput(f"Tệp {chain} không phải chứng thư PEM/DER: {exc}") from None
        password = _secret("Mật khẩu", password_stdin, "mật khẩu")
    except HsdtError as exc:
        raise _fail(exc) from None

    pin: list[str] = []
    asked: list[bool] = []
    progress = _progress(transient=False)
    task: list[object] = []

    def confirm(items: list[dict[str, object]]) -> bool:
        progress.stop()
        console.print(_pending_table(items))
        asked.append(True)
        if not yes and not typer.confirm(f"Ký {len(items)} ô này?", default=False):
            return False
        if not pin:  # asked once, before the first signature, never again
            what = "mật khẩu tệp PKCS#12" if p12 is not None else "mã PIN của token"
            pin.append(_secret("Mật khẩu tệp khoá" if p12 is not None else "Mã PIN", pin_stdin, what))
        task[:] = [progress.add_task("Đang ký", total=len(items))]
        progress.start()
        return True

    def on_progress(name: str, n: int, total: int) -> None:
        progress.update(task[0], completed=n, description=name)  # type: ignore[arg-type]

    def open_key() -> SigningKey:
        try:
            if p12 is not None:
                return open_file_key(p12, pin[0])
            assert pkcs11_lib and token_label and key_label
            return open_token_key(pkcs11_lib, token_label, key_label, pin[0], intermediates)
        except HsdtError:
            raise
        except Exception as exc:  # the token library's own errors (no such token, no device…)
            raise SigningRefused(f"Không mở được khoá ký trên token «{token_label}»: "
                                 f"{type(exc).__name__} {exc}", code="token_error") from None

    client = ApiClient(server)
    try:
        full_name = client.sign_in(user, password)
        console.print(f"Đã đăng nhập: {full_name}", highlight=False)
        result = run_agent(client, open_key, confirm=confirm, on_progress=on_progress)
    except HsdtError as exc:
        progress.stop()
        raise _fail(exc) from None
    finally:
        client.close()
    progress.stop()
    if not result.signed and not result.failed:
        console.print("Đã huỷ: không ký ô nào." if asked else "Không có ô chữ ký nào đang chờ bạn.")
        return
    for name, reason in result.failed.items():
        err.print(f"[red]✗[/] {escape(name)}: {escape(reason)}", highlight=False)
    summary = f"Đã ký {len(result.signed)} ô chữ ký"
    summary += f", {len(result.failed)} ô không ký được." if result.failed else ", không có lỗi."
    console.print(summary, style="red" if result.failed else "green", highlight=False)
    raise typer.Exit(1 if result.failed else 0)


def _pending_table(items: list[dict[str, object]]) -> object:
    from rich.table import Table

    table = Table(title=f"{len(items)} ô chữ ký đang chờ bạn")
    for col in ("Hồ sơ", "Mã học sinh", "Lớp", "Ô ký"):
        table.add_column(col)
    for it in items:
        table.add_row(str(it["record_id"]), str(it["student_code"]), str(it.get("class_name", "")),
                      str(it["field_name"]))
    return table


def _agent_remote(server: str, user: str, provider: str, *, password_stdin: bool, pin_stdin: bool,
                  yes: bool) -> None:
    """``hsdt agent --provider``: the class through a remote-signing service, one approval."""
    from datetime import datetime

    from hsdt.agent import ApiClient, provider_named, sign_remote_approval, sign_remote_csc
    from hsdt.signing.appearance import VN_TZ

    try:
        password = _secret("Mật khẩu", password_stdin, "mật khẩu")
    except HsdtError as exc:
        raise _fail(exc) from None
    client = ApiClient(server, timeout=300)
    try:
        full_name = client.sign_in(user, password)
        console.print(f"Đã đăng nhập: {full_name}", highlight=False)
        prov = provider_named(client, provider)
        items = [p for p in client.pending() if not p.get("awaiting_approval_until")]
        if not items:
            console.print("Không có ô chữ ký nào đang chờ bạn.")
            return
        console.print(_pending_table(items))
        for it in items:
            if it.get("remote_note"):
                err.print(f"[yellow]![/] {escape(str(it['record_id']))}: lần trước chưa ký được — "
                          f"{escape(str(it['remote_note']))}", highlight=False)
        if not yes and not typer.confirm(f"Ký {len(items)} ô này qua {prov['display_name']}?", default=False):
            console.print("Đã huỷ: không ký ô nào.")
            return
        ids = [int(it["step_id"]) for it in items]
        if prov["kind"] == "csc":
            out = sign_remote_csc(client, prov, ids,
                                  ask=lambda prompt, what: _secret(prompt, pin_stdin, what))
        else:
            def sent(batch: dict[str, object]) -> None:
                until = batch.get("expires_at")
                when = (datetime.fromisoformat(str(until)).astimezone(VN_TZ).strftime(" (trước %H:%M)")
                        if until else "")
                console.print(f"Đã gửi {batch['pending']} ô chữ ký sang {prov['display_name']}. Hãy mở ứng "
                              f"dụng trên điện thoại và xác nhận{when}; đang chờ…", highlight=False)

            out = sign_remote_approval(client, prov, ids, on_sent=sent)
    except HsdtError as exc:
        raise _fail(exc) from None
    finally:
        client.close()
    not_signed = [i for i in out["items"] if i["outcome"] != "signed"]
    for it in not_signed:
        err.print(f"[red]✗[/] {escape(str(it['record_id']))}/{escape(str(it['field_name']))}: "
                  f"{escape(str(it['message'] or it['code']))}", highlight=False)
    if out.get("approval_state") in ("rejected", "expired"):
        console.print("Không có gì được ký: " + ("bạn đã từ chối trên điện thoại."
                      if out["approval_state"] == "rejected" else "hết thời gian chờ xác nhận."),
                      style="red", highlight=False)
    summary = f"Đã ký {out['signed']} ô chữ ký qua {prov['display_name']}"
    summary += f", {len(not_signed)} ô chưa ký được." if not_signed else ", không có lỗi."
    console.print(summary, style="red" if not_signed else "green", highlight=False)
    raise typer.Exit(1 if not_signed else 0)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
