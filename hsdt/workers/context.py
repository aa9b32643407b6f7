"""What a worker process keeps open between tasks: signers, keys, archives.

Opening a key on the HSM, an aiohttp session to the TSA and OCSP, a certificate check, the
font subsets of a signature appearance — each costs far more than one signature, so a
worker process opens them once and reuses them for every record it is given (the same
reason :class:`~hsdt.signing.pades.RecordSigner` serves a whole batch). Everything here is
per process and created lazily *inside* the pool process: nothing is opened before Celery
forks, so no PKCS#11 session or socket is ever shared between processes.

After a transient fault the task calls :func:`reset` so the retry starts from fresh
sessions (a TSA connection or an HSM session that failed once is not trusted again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hsdt.archive.factory import open_store
from hsdt.archive.ingest import Archive
from hsdt.archive.store import ObjectStore
from hsdt.domain.plans import FieldAssignment, Role
from hsdt.heap import freeze_long_lived
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import SigningKey
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import Verifier
from hsdt.workers.files import exclusive

ARCHIVE_LOCK = "workers.lock"
_log = logging.getLogger(__name__)


@dataclass
class SigningContext:
    """One test-PKI's keys and signers in this process.

    The embedded default keeps every key the demo needs on the server: the school seal and
    the principal on SoftHSM2, the teachers' in PKCS#12 files. In production only the seal
    (HSM) is server-side; :meth:`key_for` answers ``None`` for a field whose key the server
    does not hold, and the record waits for that person's deferred signature.
    """

    pki: testpki.TestPKI
    signer: RecordSigner
    _renewer: RecordSigner | None = None
    keys: dict[str, SigningKey] = field(default_factory=dict)

    @property
    def env(self) -> SigningEnvironment:
        return self.signer.env

    def key_for(self, f: FieldAssignment) -> SigningKey | None:
        return self.key_named(testpki.SEAL if f.role is Role.SCHOOL_SEAL else f.assignee)

    def open_keys(self) -> list[SigningKey]:
        """Open every key the server holds for this PKI (the seal and the people's; not the
        negative test cases)."""
        keys = []
        for ident in self.pki.identities():
            key = self.key_named(ident.name) if ident.kind != "negative" else None
            if key is not None:
                keys.append(key)
        return keys

    def key_named(self, name: str) -> SigningKey | None:
        if os.environ.get("SOFTHSM2_CONF") != str(self.pki.softhsm_conf):
            # Something in this process pointed SoftHSM2 at another token directory (tests
            # do), which re-initialises the library: sessions opened before are gone.
            for stale in [n for n, k in self.keys.items() if k.backend == "pkcs11"]:
                del self.keys[stale]
        if name not in self.keys:
            try:
                ident = self.pki.identity(name)
            except KeyError:
                return None
            from hsdt.demo import open_identity

            if ident.on_hsm:
                # SoftHSM2 rewrites its token file when a user logs in; two processes logging
                # in at the same moment corrupt each other's view of the token (GeneralError,
                # then UserPinNotInitialized until the library is re-initialised). Logins are
                # once per process, so serialising them across processes costs nothing.
                with exclusive(self.pki.softhsm_conf.parent / "login.lock"):
                    self.keys[name] = open_identity(self.pki, ident)
            else:
                self.keys[name] = open_identity(self.pki, ident)
        return self.keys[name]

    @property
    def renewer(self) -> RecordSigner:
        """A signer whose timestamps come from the long-lived archive TSA (renewal)."""
        if self._renewer is None:
            env = SigningEnvironment(self.pki.trust_roots(), self.pki.archive_tsa_url,
                                     self.env.bindings)
            self._renewer = RecordSigner(env)
        return self._renewer

    def close(self) -> None:
        hsm = [k for k in self.keys.values() if k.backend == "pkcs11"]
        if hsm:  # the last session's close logs out: the same token file write as a login
            with exclusive(self.pki.softhsm_conf.parent / "login.lock"):
                for k in hsm:
                    with contextlib.suppress(Exception):
                        k.close()
        for closer in (*[k.close for k in self.keys.values() if k.backend != "pkcs11"],
                       self.signer.close, *([self._renewer.close] if self._renewer else [])):
            with contextlib.suppress(Exception):
                closer()
        self.keys.clear()


_signing: dict[str, SigningContext] = {}


def warm_up(pki_dir: Path | None = None) -> None:
    """The one-time costs of a process's first record, paid when the process starts.

    A fresh process's first record cost about a second more than the next ones: the stamp
    font cut to the Vietnamese repertoire, WeasyPrint's fonts and the template compiled,
    and, for each key the server holds, opening it, asking about its certificate (trust and
    revocation, remembered for a few minutes) and cutting its holder's stamp font.
    Each worker process pays them once either way; paid here, they are not in the time of
    the first class the worker is given. Keys are opened in the pool process itself, after
    the fork (see above). Nothing here stops a worker: what fails is logged, and the task
    that needs it fails with the reason and is retried, as it would have without a warm-up.
    """
    from hsdt.domain.bundles import lock_bundle
    from hsdt.domain.records import records_for
    from hsdt.domain.sample import sample_bundle
    from hsdt.signing import appearance
    from hsdt.workflow import render

    started = time.perf_counter()
    try:
        appearance.warm_up([])
        record = records_for(lock_bundle(sample_bundle(seed=1, students=1), "khởi động worker"))[0]
        render(record)
    except Exception:  # a worker that cannot render still seals, archives and audits
        _log.error("Không kết xuất thử được hồ sơ mẫu khi khởi động; "
                   "các tác vụ kết xuất sẽ báo lỗi cụ thể.", exc_info=True)
    keys: list[SigningKey] = []
    if pki_dir is not None:
        # A warm-up never stops a worker: the task that needs a key, or finds its
        # certificate refused, says why — and a refused certificate is asked about again.
        try:
            ctx = signing_context(str(pki_dir))
            keys = ctx.open_keys()
        except Exception:
            _log.warning("Không mở trước được khoá ký trong %s (sẽ mở khi cần).", pki_dir,
                         exc_info=True)
        for key in keys:
            try:
                ctx.signer.check_trust(key.cert, key.chain)
            except Exception as exc:
                _log.warning("Chứng thư của %s chưa kiểm tra trước được: %s", key.subject_name, exc)
        appearance.warm_up([key.subject_name for key in keys])
    freeze_long_lived()
    _log.info("Tiến trình worker đã khởi động sẵn: phông chữ, mẫu hồ sơ, %d khoá ký (%.1f s).",
              len(keys), time.perf_counter() - started)


def signing_context(pki_dir: str) -> SigningContext:
    ctx = _signing.get(pki_dir)
    if ctx is None:
        pki = testpki.load(Path(pki_dir))
        env = SigningEnvironment(pki.trust_roots(), pki.tsa_url, CertificateBindings(pki.bindings()))
        ctx = _signing[pki_dir] = SigningContext(pki, RecordSigner(env))
    return ctx


_archives: dict[tuple[str, str | None], Archive] = {}


@contextlib.contextmanager
def archive_lock(archive_root: str | Path) -> Iterator[None]:
    """Serialise the archive's writers across worker processes.

    :class:`~hsdt.archive.ingest.Archive` is crash-safe and idempotent for one writer, but
    two processes could interleave its check-then-append (both see a record missing, both
    log it) and its :meth:`~hsdt.archive.ingest.Archive.recover` could index another
    process's event while that process is still committing it. Every worker takes this lock
    around opening an archive and around each write; the lock file sits in the archive root
    because that is the one place every worker of that archive shares.
    """
    root = Path(archive_root)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / ARCHIVE_LOCK):
        yield


def _store(archive_root: Path) -> tuple[ObjectStore, object]:
    return open_store(archive_root)


def _trust(pki_dir: str | None) -> tuple[list, CertificateBindings | None]:  # type: ignore[type-arg]
    from hsdt.signing.trust import load_trust_roots

    roots = load_trust_roots([])
    bindings = None
    if pki_dir is not None:
        pki = testpki.load(Path(pki_dir))
        roots += pki.trust_roots()
        bindings = CertificateBindings(pki.bindings())
    return roots, bindings


def archive_for(archive_root: str, pki_dir: str | None) -> Archive:
    """This process's :class:`Archive` for the root. Call with :func:`archive_lock` held:
    opening runs the archive's crash recovery, which writes."""
    key = (str(archive_root), pki_dir)
    archive = _archives.get(key)
    if archive is None:
        roots, bindings = _trust(pki_dir)
        store, retain_until = _store(Path(archive_root))
        verifier = Verifier(trust_roots=roots, bindings=bindings, online=False)
        archive = Archive(store, Path(archive_root), verifier, retain_until=retain_until)
        _archives[key] = archive
    return archive


def reset(*, pki_dir: str | None = None, archive_root: str | None = None,
          reinitialize_pkcs11: bool = False) -> None:
    """Close and forget cached resources (all of them when called without arguments).

    ``reinitialize_pkcs11``: also finalise and re-initialise the PKCS#11 library of each
    closed context, for a token fault that may have left the library's view of the token
    broken (closing sessions alone does not clear it). Every other session of that library
    in this process becomes invalid, so only a token fault asks for it.
    """
    everything = pki_dir is None and archive_root is None
    for key in [k for k in _signing if everything or k == pki_dir]:
        ctx = _signing.pop(key)
        ctx.close()
        if reinitialize_pkcs11:
            _reinitialize(ctx.pki.pkcs11_lib)
    for akey in [k for k in _archives if everything or k[0] == str(archive_root)]:
        archive = _archives.pop(akey)
        with contextlib.suppress(Exception):
            archive.close()
            archive.log.close()


def _reinitialize(lib_path: str) -> None:
    import sys

    pkcs11_mod = sys.modules.get("pkcs11")
    if pkcs11_mod is None:
        return  # never loaded in this process: nothing to repair
    with contextlib.suppress(Exception):
        pkcs11_mod.lib(lib_path).reinitialize()
