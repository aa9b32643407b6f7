"""Per-step benchmarks on a few records: render, sign (software / PKCS#11), seal, verify."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.profiling import Profile
from bench.report import BenchError, Reporter
from hsdt.demo import open_identity
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.plans import FieldAssignment, Role
from hsdt.domain.records import Record, records_for
from hsdt.domain.sample import sample_bundle
from hsdt.renderers import Renderer
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import Verifier
from hsdt.workflow import plan_of, signing_sequence

T = TypeVar("T")


@dataclass
class Options:
    records: int = 7
    """Records signed end to end; the first one carries every key's first signature."""
    render_runs: int = 7
    verify_runs: int = 7
    profile: bool = False
    seed: int = 2026


@dataclass
class _Samples:
    render: list[float] = field(default_factory=list)
    sw_steady: list[float] = field(default_factory=list)
    sw_first: list[float] = field(default_factory=list)
    hsm_steady: dict[str, list[float]] = field(default_factory=dict)  # by field name
    hsm_first: dict[str, float] = field(default_factory=dict)
    homeroom: list[float] = field(default_factory=list)
    seal: list[float] = field(default_factory=list)
    seal_first: float = 0.0
    verify: list[float] = field(default_factory=list)
    by_position: dict[int, list[float]] = field(default_factory=dict)  # steady sw, by order
    rendered_size: list[int] = field(default_factory=list)
    sealed_size: list[int] = field(default_factory=list)
    tsa: list[float] = field(default_factory=list)
    to_json: list[float] = field(default_factory=list)
    pages: set[int] = field(default_factory=set)
    signatures_per_record: int = 0
    profiles: list[str] = field(default_factory=list)  # comment lines, printed last


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def _page_count(pdf: bytes) -> int:
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return len(doc.pages)


@contextmanager
def _pki(workdir: Path, seed: int, students: int) -> Iterator[tuple[testpki.TestPKI, list[Record]]]:
    """The sample class, its test PKI (principal and seal on SoftHSM2), served out of process."""
    bundle = sample_bundle(seed=seed, students=students)
    locked = lock_bundle(bundle, "hsdt bench")
    records = records_for(locked)
    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    try:
        pki = testpki.provision(workdir, people, bundle.school.code, bundle.school.name,
                                hsm_people={bundle.school.principal_id})
    except testpki.TestPKIError as exc:
        raise BenchError(f"could not provision the test PKI in {workdir}: {exc}") from exc
    try:
        with testpki.serve(pki, mode="subprocess"):
            yield pki, records
    except testpki.TestPKIError as exc:
        raise BenchError(f"test PKI services: {exc}") from exc


def run(workdir: Path, rep: Reporter, opts: Options) -> None:
    needed = 3 if opts.profile else 2
    if opts.records < needed:
        raise BenchError(f"need at least {needed} records (the first one only warms the keys up"
                         f"{', the last is profiled' if opts.profile else ''})")
    s = _Samples()
    t0 = time.perf_counter()
    with _pki(workdir / "pki", opts.seed, opts.records) as (pki, records):
        rep.comment(f"setup: sample class of {len(records)} records, test PKI provisioned and "
                    f"served (subprocess) in {time.perf_counter() - t0:.1f} s")
        _bench_tsa(pki, s)
        rendered = _bench_render(records, s, opts)
        sealed = _bench_sign(pki, records, rendered, s, opts)
        _bench_verify(pki, sealed, s, rep, opts)
    _print(rep, s, opts)


# -- TSA -------------------------------------------------------------------------------------
def _bench_tsa(pki: testpki.TestPKI, s: _Samples, runs: int = 10) -> None:
    """A bare RFC 3161 request to the loopback TSA: the floor under every B-T signature."""
    import hashlib
    import urllib.request

    from asn1crypto import tsp

    req = tsp.TimeStampReq({"version": 1, "cert_req": True, "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"},
        "hashed_message": hashlib.sha256(b"hsdt bench").digest()}}).dump()

    def ask() -> bytes:
        http = urllib.request.Request(pki.tsa_url, data=req, method="POST",
                                      headers={"Content-Type": "application/timestamp-query"})
        with urllib.request.urlopen(http, timeout=10) as resp:
            return bytes(resp.read())

    ask()
    for _ in range(runs):
        s.tsa.append(_timed(ask)[1])


# -- render ----------------------------------------------------------------------------------
def _bench_render(records: list[Record], s: _Samples, opts: Options) -> list[bytes]:
    renderer = Renderer()
    plans = [plan_of(r) for r in records]
    renderer.render(records[0], plans[0])  # warm-up: stylesheet, fonts
    for i in range(opts.render_runs):
        k = i % len(records)
        pdf, dt = _timed(renderer.render, records[k], plans[k])
        s.render.append(dt)
        s.pages.add(_page_count(pdf))
    out = [renderer.render(r, p) for r, p in zip(records, plans, strict=True)]
    s.rendered_size = [len(p) for p in out]
    return out


# -- sign and seal ---------------------------------------------------------------------------
def _bench_sign(pki: testpki.TestPKI, records: list[Record], rendered: list[bytes],
                s: _Samples, opts: Options) -> list[bytes]:
    env = SigningEnvironment(trust_roots=pki.trust_roots(), tsa_url=pki.tsa_url,
                             bindings=CertificateBindings(pki.bindings()))
    sealed: list[bytes] = []
    prof_sign = Profile() if opts.profile else None
    prof_seal = Profile() if opts.profile else None
    with ExitStack() as stack:
        keys: dict[str, SigningKey] = {}

        def key_for(f: FieldAssignment) -> SigningKey:
            name = "seal" if f.role is Role.SCHOOL_SEAL else f.assignee
            if name not in keys:
                try:
                    ident = pki.identity(name)
                    keys[name] = stack.enter_context(open_identity(pki, ident))
                except Exception as exc:
                    raise BenchError(f"cannot open the key of {name!r} "
                                     f"(SoftHSM2 at {pki.pkcs11_lib}?): {exc}") from exc
            return keys[name]

        signer = stack.enter_context(RecordSigner(env))
        used: set[str] = set()  # key fingerprints that have signed once in this RecordSigner
        # With --profile the last record is signed under cProfile and not timed.
        todo = list(zip(records, rendered, strict=True))
        for idx, (rec, pdf) in enumerate(todo):
            profiled = opts.profile and idx == len(todo) - 1
            seq = signing_sequence(rec)
            s.signatures_per_record = len(seq)
            pos = 0
            for f in seq:
                key = key_for(f)
                first = key.fingerprint not in used
                if profiled and prof_sign is not None and f.role is Role.SUBJECT_TEACHER:
                    with prof_sign.running():
                        pdf = signer.sign(pdf, f.name, key, expected_data_sha256=rec.data_sha256)
                    continue
                pdf, dt = _timed(signer.sign, pdf, f.name, key,
                                 expected_data_sha256=rec.data_sha256)
                used.add(key.fingerprint)
                if key.backend == "pkcs11":
                    if first:
                        s.hsm_first[f.name] = dt
                    else:
                        s.hsm_steady.setdefault(f.name, []).append(dt)
                elif first:
                    s.sw_first.append(dt)
                elif f.role is Role.SUBJECT_TEACHER:
                    s.sw_steady.append(dt)
                    s.by_position.setdefault(pos, []).append(dt)
                elif f.role is Role.HOMEROOM_TEACHER:
                    s.homeroom.append(dt)
                if f.role is Role.SUBJECT_TEACHER:
                    pos += 1
            if profiled and prof_seal is not None:
                with prof_seal.running():
                    pdf = signer.seal(pdf, expected_data_sha256=rec.data_sha256)
            else:
                pdf, dt = _timed(signer.seal, pdf, expected_data_sha256=rec.data_sha256)
                if idx == 0:
                    s.seal_first = dt  # warm-up: first DSS collection in this RecordSigner
                else:
                    s.seal.append(dt)
            sealed.append(pdf)
            s.sealed_size.append(len(pdf))
    if prof_sign is not None:
        s.profiles += prof_sign.digest("RecordSigner.sign, subject-teacher fields, software key, "
                                       "steady state")
    if prof_seal is not None:
        s.profiles += prof_seal.digest("RecordSigner.seal (B-LTA)")
    return sealed


# -- verify ----------------------------------------------------------------------------------
def _bench_verify(pki: testpki.TestPKI, sealed: list[bytes], s: _Samples, rep: Reporter,
                  opts: Options) -> None:
    verifier = Verifier(trust_roots=pki.trust_roots(),
                        bindings=CertificateBindings(pki.bindings()), online=False)
    report = verifier.verify(sealed[0])  # warm-up, and a check that the record is what we think
    if not report.valid:
        raise BenchError("the sealed record does not verify: " + "; ".join(report.problems[:3]))
    n_sigs = len(report.signatures)
    rep.comment(f"verified record: {n_sigs} signatures + {len(report.archive_timestamps)} "
                "archive timestamp(s), valid")
    for i in range(opts.verify_runs):
        pdf = sealed[i % len(sealed)]
        _, dt = _timed(verifier.verify, pdf)
        s.verify.append(dt)
    # The report as JSON, as the archive and the demo store it (twice per record in the demo).
    _, dt = _timed(report.to_json)
    s.to_json.append(dt)
    for _ in range(2 if dt > 1.0 else opts.verify_runs - 1):
        s.to_json.append(_timed(report.to_json)[1])
    if opts.profile:
        prof = Profile()
        for pdf in sealed[:3]:
            with prof.running():
                verifier.verify(pdf)
        s.profiles += prof.digest("Verifier(online=False).verify, sealed record")


# -- output ----------------------------------------------------------------------------------
def _print(rep: Reporter, s: _Samples, opts: Options) -> None:
    pages = "/".join(str(p) for p in sorted(s.pages))
    rep.timing("render.page", s.render,
               what=f"Renderer reused, one record ({pages} page(s)) per run, after a warm-up")
    rep.timing("sign.visible_bt.software", s.sw_steady,
               what="subject-teacher fields, PKCS#12 key already used once in this RecordSigner, "
                    "incl. TSA round trip")
    hsm_all = [x for xs in s.hsm_steady.values() for x in xs]
    fields = ", ".join(f"{k}: {1000 * sorted(v)[len(v) // 2]:.0f} ms (n={len(v)})"
                       for k, v in sorted(s.hsm_steady.items()))
    rep.timing("sign.visible_bt.pkcs11", hsm_all,
               what=f"SoftHSM2 key, seal's and principal's fields; by field: {fields}")
    rep.timing("sign.first_signature.software", s.sw_first,
               what="each software key's first signature in a fresh RecordSigner: certificate "
                    "+ OCSP/CRL check, CMS size estimate (the first of all also warms pyHanko up)")
    rep.timing("seal.b_lta", s.seal,
               what="DSS (certs, OCSP, CRLs) + document timestamp, on a fully signed record; "
                    f"the first seal of the RecordSigner ({1000 * s.seal_first:.0f} ms) left out")
    rep.timing("verify.sealed_record", s.verify,
               what="Verifier(online=False) on a fully signed, sealed record")
    slow = " — only 3 runs, it is slow" if len(s.to_json) == 3 else ""
    rep.timing("verify.report_to_json", s.to_json,
               what=f"VerificationReport.to_json() of a sealed record's report{slow}")
    sizes = sorted(s.sealed_size)
    size, unsigned = sizes[len(sizes) // 2], sorted(s.rendered_size)[len(s.rendered_size) // 2]
    rep.figure("record.size_sealed", size / 1024, "KB")
    per_sig = (size - unsigned) / 1024 / max(s.signatures_per_record, 1)
    rep.comment(f"  median of n={len(sizes)}; {s.signatures_per_record} signatures + B-LTA seal; "
                f"unsigned record {unsigned / 1024:.0f} KB, so ≈ {per_sig:.0f} KB per signature "
                f"(first record {s.sealed_size[0] / 1024:.0f} KB: first signatures reserve more)")
    rep.timing("tsa.roundtrip", s.tsa,
               what="bare RFC 3161 request to the loopback test TSA (certomancer, own process): "
                    "part of every B-T signature")
    # Context that explains the figures without being a headline.
    if s.hsm_first:
        firsts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in s.hsm_first.items())
        rep.comment(f"pkcs11 first signatures (not in the median): {firsts}")
    if s.homeroom:
        med = sorted(s.homeroom)[len(s.homeroom) // 2]
        rep.comment(f"homeroom field (software key, steady): {1000 * med:.0f} ms "
                    f"(n={len(s.homeroom)})")
    if s.by_position:
        first_pos, last_pos = min(s.by_position), max(s.by_position)
        med = {p: 1000 * sorted(v)[len(v) // 2] for p, v in s.by_position.items()}
        rep.comment(f"software signature by position among the subject fields: "
                    f"#{first_pos + 1} {med[first_pos]:.0f} ms … #{last_pos + 1} "
                    f"{med[last_pos]:.0f} ms (the file grows with each signature)")
    if opts.profile:
        rep.comment("--profile: the last record was signed under cProfile and left out of the "
                    "sign/seal medians")
        for line in s.profiles:
            rep.comment(line)
