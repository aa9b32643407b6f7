"""The service's :class:`ServiceContext` built from the environment (``hsdt serve``).

Every variable is documented in :mod:`hsdt.settings`. What the service cannot run without
(a trust anchor, a TSA) is refused here, at start, with a Vietnamese message naming the
variable — not at the first request. The database is brought to the newest schema first.

- database: ``HSDT_DATABASE_URL`` (:mod:`hsdt.db.engine`), migrated with
  :func:`hsdt.db.migrate.upgrade`;
- trust anchors: ``config/trust/*.pem`` (:func:`hsdt.signing.trust.load_trust_roots`) plus
  ``HSDT_TRUST_ROOTS`` (files, separated by ``os.pathsep``);
- ``HSDT_TSA_URL``: the time-stamping service of B-T signatures and seals;
- ``HSDT_WORK_DIR`` (default ``var/work``): working copies of records between signatures;
- ``HSDT_ARCHIVE_ROOT`` (default ``var/archive``): index and log of the archive, and the
  records themselves with the local store (``HSDT_ARCHIVE_BACKEND``, :mod:`hsdt.archive.factory`);
- the school seal on the server's HSM (optional): ``HSDT_SEAL_SCHOOL``, ``HSDT_SEAL_TOKEN_LABEL``,
  ``HSDT_SEAL_KEY_LABEL``, ``HSDT_SEAL_CHAIN`` (intermediates, PEM/DER), ``HSDT_PKCS11_LIB``,
  ``HSDT_PKCS11_PIN``;
- ``HSDT_TEST_PKI_DIR`` (tests and demos only): the test PKI's anchors, TSA and seal key;
- ``HSDT_BROKER_URL``: set, the heavy steps go to Celery workers (:mod:`hsdt.workers.settings`);
- ``HSDT_REMOTE_SIGNING``: the remote-signing providers (:mod:`hsdt.signing.remote.providers`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hsdt.domain.errors import HsdtError, os_reason
from hsdt.service.context import ServiceContext
from hsdt.signing.keys import SigningKey
from hsdt.signing.remote.providers import RemoteSigningConfig

DEFAULT_WORK_DIR = "var/work"
DEFAULT_ARCHIVE_ROOT = "var/archive"
SEAL_VARIABLES = ("HSDT_SEAL_SCHOOL", "HSDT_SEAL_TOKEN_LABEL", "HSDT_SEAL_KEY_LABEL")


class ServiceConfigError(HsdtError):
    """The environment does not describe a service that can run; the message says what is missing."""

    code = "bad_config"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _paths(value: str | None) -> list[Path]:
    return [Path(p) for p in (value or "").split(os.pathsep) if p.strip()]


def seal_key_openers(env: Mapping[str, str]) -> dict[str, Callable[[], SigningKey]]:
    """School code → opener of its seal key on the HSM, from ``HSDT_SEAL_*`` (none set: {})."""
    seal = {name: _get(env, name) for name in SEAL_VARIABLES}
    if not any(seal.values()):
        return {}
    missing = [name for name, value in seal.items() if value is None]
    lib, pin = _get(env, "HSDT_PKCS11_LIB"), env.get("HSDT_PKCS11_PIN") or None
    missing += [name for name, value in (("HSDT_PKCS11_LIB", lib), ("HSDT_PKCS11_PIN", pin)) if value is None]
    if missing:
        raise ServiceConfigError("Cấu hình khoá con dấu của trường chưa đủ: thiếu " + ", ".join(missing)
                                 + ". Đặt đủ các biến này, hoặc bỏ hết HSDT_SEAL_* nếu máy chủ "
                                   "không giữ con dấu.")
    if lib is not None and not Path(lib).exists():
        raise ServiceConfigError(f"HSDT_PKCS11_LIB trỏ tới «{lib}» nhưng không có tệp thư viện PKCS#11 đó.")
    chain = []
    chain_file = _get(env, "HSDT_SEAL_CHAIN")
    if chain_file is not None:
        from hsdt.agent import read_certificates

        try:
            chain = read_certificates(Path(chain_file))
        except OSError as exc:
            raise ServiceConfigError(f"Không đọc được HSDT_SEAL_CHAIN «{chain_file}»: "
                                     f"{os_reason(exc)}.") from None
        except ValueError as exc:
            raise ServiceConfigError(f"HSDT_SEAL_CHAIN «{chain_file}» không phải chứng thư PEM/DER: "
                                     f"{exc}") from None
    token_label, key_label = seal["HSDT_SEAL_TOKEN_LABEL"] or "", seal["HSDT_SEAL_KEY_LABEL"] or ""
    assert lib is not None and pin is not None

    def open_seal() -> SigningKey:
        from hsdt.agent import open_token_key

        return open_token_key(lib, token_label, key_label, pin, chain)

    return {seal["HSDT_SEAL_SCHOOL"] or "": open_seal}


def _test_pki(env: Mapping[str, str]) -> Any:
    pki_dir = _get(env, "HSDT_TEST_PKI_DIR")
    if pki_dir is None:
        return None
    from hsdt.signing import testpki

    try:
        return testpki.load(Path(pki_dir))
    except (OSError, testpki.TestPKIError) as exc:
        raise ServiceConfigError(f"HSDT_TEST_PKI_DIR «{pki_dir}» không phải PKI thử nghiệm dùng được: "
                                 f"{exc}") from None


def context_from_env(environ: Mapping[str, str] | None = None, *, migrate: bool = True) -> ServiceContext:
    """The service's context from ``environ`` (default: the process environment).

    Raises :class:`ServiceConfigError` (Vietnamese message) for a configuration that cannot work,
    and :class:`hsdt.domain.errors.UnusableInput` for an unreadable certificate file.
    """
    env = os.environ if environ is None else environ
    from hsdt.archive.factory import open_store
    from hsdt.archive.ingest import Archive
    from hsdt.db.engine import database_url, make_engine, session_factory
    from hsdt.signing.trust import load_trust_roots
    from hsdt.signing.verification import Verifier
    from hsdt.workers.context import archive_lock

    pki = _test_pki(env)
    extra = _paths(env.get("HSDT_TRUST_ROOTS"))
    for path in extra:
        if not path.is_file():
            raise ServiceConfigError(f"HSDT_TRUST_ROOTS: không có tệp chứng thư «{path}».")
    roots = load_trust_roots(extra)
    if pki is not None:
        roots += pki.trust_roots()
    if not roots:
        raise ServiceConfigError("Chưa có CA gốc tin cậy nào: đặt tệp PEM trong config/trust/ "
                                 "(HSDT_CONFIG_DIR) hoặc liệt kê tệp trong HSDT_TRUST_ROOTS.")
    tsa_url = _get(env, "HSDT_TSA_URL") or (pki.tsa_url if pki is not None else None)
    if tsa_url is None:
        raise ServiceConfigError("Chưa đặt HSDT_TSA_URL: cần URL dịch vụ cấp dấu thời gian (TSA) "
                                 "để ký PAdES B-T và niêm phong hồ sơ.")
    if not tsa_url.startswith(("http://", "https://")):
        raise ServiceConfigError(f"HSDT_TSA_URL phải là URL http:// hoặc https:// (đang là «{tsa_url}»).")

    seal_keys = seal_key_openers(env)
    if pki is not None and pki.school_code not in seal_keys:
        from hsdt.demo import open_identity
        from hsdt.workers.files import exclusive

        def open_test_seal() -> SigningKey:
            # SoftHSM2 rewrites its token file on login: processes log in one at a time.
            with exclusive(pki.softhsm_conf.parent / "login.lock"):
                return open_identity(pki, pki.seal)

        seal_keys[pki.school_code] = open_test_seal

    url = database_url(_get(env, "HSDT_DATABASE_URL"))
    try:
        if migrate:
            from hsdt.db.migrate import upgrade

            upgrade(url)
        engine = make_engine(url)
    except Exception as exc:  # any driver or migration failure: say which database
        raise ServiceConfigError(
            f"Không mở hoặc nâng cấp được cơ sở dữ liệu {url.render_as_string(hide_password=True)} "
            f"(HSDT_DATABASE_URL): {type(exc).__name__}: {exc}") from None

    work_dir = Path(_get(env, "HSDT_WORK_DIR") or DEFAULT_WORK_DIR)
    archive_root = Path(_get(env, "HSDT_ARCHIVE_ROOT") or DEFAULT_ARCHIVE_ROOT)
    for name, folder in (("HSDT_WORK_DIR", work_dir), ("HSDT_ARCHIVE_ROOT", archive_root)):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceConfigError(f"Không tạo được thư mục {name} «{folder}»: {os_reason(exc)}.") from None

    def archive() -> Archive:
        store, retain_until = open_store(archive_root)
        return Archive(store, archive_root, Verifier(roots, None, online=False), retain_until=retain_until)

    dispatcher = None
    from hsdt.workers.settings import WorkerSettings

    worker_settings = WorkerSettings.from_env(env)
    if not worker_settings.eager:
        from hsdt.service.dispatch import CeleryDispatcher
        from hsdt.workers.app import create_app

        dispatcher = CeleryDispatcher(create_app(worker_settings))

    return ServiceContext(sessions=session_factory(engine), trust_roots=roots, tsa_url=tsa_url,
                          workspace_root=work_dir, seal_keys=seal_keys, archive_factory=archive,
                          archive_lock=lambda: archive_lock(archive_root), dispatcher=dispatcher,
                          remote=_remote_signing(env))


def describing_context() -> ServiceContext:
    """A context that serves nothing (no database, no keys): enough to describe the API."""
    import tempfile

    from sqlalchemy.orm import sessionmaker

    return ServiceContext(sessions=sessionmaker(), trust_roots=[], tsa_url="",
                          workspace_root=Path(tempfile.gettempdir()))


def openapi_json() -> str:
    """The published OpenAPI document (``docs/openapi.json``), byte for byte."""
    import json

    from hsdt.api.app import create_app

    spec = create_app(describing_context()).openapi()
    return json.dumps(spec, ensure_ascii=False, indent=2) + "\n"


def _remote_signing(env: Mapping[str, str]) -> RemoteSigningConfig:
    """``HSDT_REMOTE_SIGNING``: the providers' TOML file (none: no remote signing)."""
    from hsdt.signing.remote.common import RemoteSigningError
    from hsdt.signing.remote.providers import load_config

    path = _get(env, "HSDT_REMOTE_SIGNING")
    try:
        return load_config(Path(path) if path else None)
    except RemoteSigningError as exc:
        raise ServiceConfigError(f"HSDT_REMOTE_SIGNING: {exc.message}") from None
