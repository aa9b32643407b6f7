"""The project's local test PKI: certificates, keys on SoftHSM2, and live TSA/OCSP/CRL services.

Why this exists: signing and verification must be exercised against *real* components (see
DESIGN.md §4) — a CA hierarchy, a time-stamping authority, OCSP and CRLs reachable over HTTP,
and a PKCS#11 token — yet ``hsdt demo`` and every test must run on a bare machine with no
network. This module builds all of that inside one working directory:

* :func:`provision` generates a root CA, an intermediate CA, a TSA certificate (critical
  ``timeStamping`` EKU), a delegated OCSP responder, the school seal certificate and one
  certificate per :class:`Person`, plus *negative-case* identities used by refusal tests
  (``expired``, ``not_yet_valid``, ``revoked``, ``weak_rsa``, ``weak_ec``, ``ec_p256_ok``,
  ``untrusted``). Certificates are made by certomancer from a configuration written to
  ``workdir/certomancer.yml``; the seal key and the keys of ``hsm_people`` are generated inside
  a SoftHSM2 token and never leave it (certomancer only sees their public keys).
* :func:`serve` runs certomancer's aiohttp Animator on ``127.0.0.1:{port}`` so that the URLs
  baked into the certificates (AIA, CRL distribution points, TSA) answer.

This is test material: private keys of software identities sit unencrypted in ``keys/`` and
the PINs are constants. Never point production configuration at it.

Workdir layout::

    manifest.json        what was provisioned (reuse check, port, identities)
    bindings.json        certificate SHA-256 fingerprint -> person id / "school:<code>"
    certomancer.yml      the PKI definition with absolute dates (``certomancer animate`` works)
    keys/                software private keys (PEM, PKCS#8) and HSM public keys
    certs/<label>.cert.pem
    p12/<label>.p12      software identities, passphrase SOFTWARE_P12_PASSPHRASE
    crl/<ca>.crl         CRL snapshots taken at provisioning time (the Animator serves fresh ones)
    softhsm/softhsm2.conf, softhsm/tokens/
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from asn1crypto import algos, keys, ocsp, pem, tsp, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "ARCH_LABEL",
    "NEGATIVE_CASES",
    "SEAL",
    "SOFTWARE_P12_PASSPHRASE",
    "SO_PIN",
    "TOKEN_LABEL",
    "USER_PIN",
    "Identity",
    "Person",
    "TestPKI",
    "TestPKIError",
    "check_services",
    "default_pkcs11_lib",
    "load",
    "ocsp_status",
    "provision",
    "serve",
]

# --------------------------------------------------------------------------------------------
# Constants (exported: tests and the demo need them to open keys)
# --------------------------------------------------------------------------------------------

SOFTWARE_P12_PASSPHRASE = b"hsdt-test"
"""Passphrase of every software PKCS#12 file written by :func:`provision`."""

TOKEN_LABEL = "HSDT-TEST"
"""Label of the SoftHSM2 token; tokens are selected by label because slot numbers change."""

USER_PIN = "1234"
"""User PIN of the test token."""

SO_PIN = "12345678"
"""Security-officer PIN of the test token."""

SEAL = "seal"
"""Identity name (and PKCS#11 key label) of the school seal."""

NEGATIVE_CASES: tuple[str, ...] = (
    "expired",
    "not_yet_valid",
    "revoked",
    "weak_rsa",
    "weak_ec",
    "ec_p256_ok",
    "untrusted",
)
"""Names of the identities made for refusal tests (``ec_p256_ok`` is the one that must pass)."""

ARCH_LABEL = "hsdt"
"""certomancer architecture label; it is the first path segment of every service URL."""

DEFAULT_SOFTHSM2_LIB = "/usr/lib/softhsm/libsofthsm2.so"
PKCS11_LIB_ENV = "HSDT_PKCS11_LIB"
"""Environment variable that overrides the SoftHSM2 PKCS#11 module path."""

MANIFEST_VERSION = 2
"""Bumped whenever the layout or contents change, so that old workdirs are rebuilt."""

# How long a provisioned PKI is reused before it is rebuilt. ``not_yet_valid`` starts 30 days
# after provisioning, so reuse must stop well before that; the other windows are years long.
_REUSE_WINDOW = dt.timedelta(days=14)
_NOT_YET_VALID_OFFSET = dt.timedelta(days=30)

# Service labels inside the certomancer architecture.
_TSA = "tsa"
_OCSP = "intermediate-ocsp"
_CRL_ROOT = "root-crl"
_CRL_INTERMEDIATE = "intermediate-crl"
_CRL_UNTRUSTED = "untrusted-root-crl"
_REPO_ROOT = "root-repo"
_REPO_INTERMEDIATE = "intermediate-repo"
_REPO_UNTRUSTED = "untrusted-root-repo"

# certomancer labels of the infrastructure certificates (also their entity and key labels).
_ROOT = "root"
_INTERMEDIATE = "intermediate"
_TSA_CERT = "tsa"
_OCSP_CERT = "ocsp-responder"
_UNTRUSTED_ROOT = "untrusted-root"
# A second, long-lived hierarchy for archive timestamps: renewal tests move the clock decades
# ahead, past every certificate of the main hierarchy, and the last archive timestamp must
# still be verifiable then (as a national archive TSA's would be).
_ARCHIVE_ROOT = "archive-root"
_ARCHIVE_TSA_CERT = "archive-tsa"
_ARCHIVE_TSA = "archive-tsa"
_CRL_ARCHIVE = "archive-root-crl"
_REPO_ARCHIVE = "archive-root-repo"
_CA_LABELS = (_ROOT, _INTERMEDIATE, _TSA_CERT, _OCSP_CERT, _UNTRUSTED_ROOT, _ARCHIVE_ROOT,
              _ARCHIVE_TSA_CERT)

# characters allowed in an ASN.1 PrintableString (X.520 serialNumber must use it)
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")


class TestPKIError(RuntimeError):
    """Raised when the test PKI cannot be built, loaded or served; the message names the part."""

    __test__ = False  # not a pytest test class


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """Somebody who gets a personal signing certificate (teacher, principal, …).

    ``full_name`` is the Vietnamese name with diacritics; it becomes the certificate's CN
    (UTF8String). ``person_id`` is the identifier the signing service binds certificates to.
    """

    person_id: str
    full_name: str

    def __post_init__(self) -> None:
        if not self.person_id or not self.person_id.strip():
            raise ValueError("Person.person_id must not be empty")
        if not self.full_name or not self.full_name.strip():
            raise ValueError("Person.full_name must not be empty")


IdentityKind = Literal["person", "seal", "negative"]


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key, as a signer would use it.

    Exactly one of ``p12_path`` (software key in a PKCS#12 file, passphrase
    :data:`SOFTWARE_P12_PASSPHRASE`) and ``pkcs11_key_label`` (key inside the SoftHSM2 token;
    the certificate is stored in the token under the same label and id) is set.
    """

    name: str
    """``"seal"``, a person id, or one of :data:`NEGATIVE_CASES`."""
    kind: IdentityKind
    person_id: str | None
    """The person this certificate is bound to (``None`` for the seal)."""
    full_name: str
    cert: x509.Certificate
    cert_path: Path
    chain: tuple[x509.Certificate, ...]
    """Issuer certificates to embed next to ``cert``, excluding the project's trust root
    (for ``untrusted`` it is its own foreign root)."""
    fingerprint_sha256: str
    """Lowercase hex SHA-256 of the certificate's DER encoding."""
    binding: str
    """What :meth:`TestPKI.bindings` maps this certificate to: person id or ``school:<code>``."""
    p12_path: Path | None = None
    pkcs11_key_label: str | None = None
    pkcs11_key_id: bytes | None = None

    @property
    def on_hsm(self) -> bool:
        """True when the private key lives in the SoftHSM2 token."""
        return self.pkcs11_key_label is not None


@dataclass(frozen=True)
class TestPKI:
    """A provisioned test PKI in ``workdir`` (see :func:`provision` and :func:`load`).

    Cheap to construct from the manifest; certificates are read from ``certs/`` once.
    """

    __test__ = False  # its name starts with "Test": keep pytest from collecting it

    workdir: Path
    port: int
    school_code: str
    school_name: str
    created_at: dt.datetime
    pkcs11_lib: str
    token_label: str = TOKEN_LABEL
    user_pin: str = USER_PIN
    so_pin: str = SO_PIN
    weak_ec_skipped: str | None = None
    """Why ``weak_ec`` was not made, or ``None`` when it exists."""
    _identities: Mapping[str, Identity] = field(default_factory=dict, repr=False)
    _by_person: Mapping[str, str] = field(default_factory=dict, repr=False)
    _root: x509.Certificate | None = field(default=None, repr=False)
    _intermediate: x509.Certificate | None = field(default=None, repr=False)

    # --- locations -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:{port}``: the external URL prefix baked into the certificates."""
        return f"http://{self.host}:{self.port}"

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/{ARCH_LABEL}/tsa/{_TSA}"

    @property
    def archive_tsa_url(self) -> str:
        """The long-lived archive TSA (certificate valid 40 years, its own root 60)."""
        return f"{self.base_url}/{ARCH_LABEL}/tsa/{_ARCHIVE_TSA}"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/{ARCH_LABEL}/ocsp/{_OCSP}"

    @property
    def crl_url(self) -> str:
        """URL of the intermediate CA's latest CRL (DER)."""
        return f"{self.base_url}/{ARCH_LABEL}/crls/{_CRL_INTERMEDIATE}/latest.crl"

    @property
    def root_crl_url(self) -> str:
        return f"{self.base_url}/{ARCH_LABEL}/crls/{_CRL_ROOT}/latest.crl"

    @property
    def config_path(self) -> Path:
        """certomancer configuration (``certomancer --config … animate --aiohttp`` accepts it)."""
        return self.workdir / "certomancer.yml"

    @property
    def manifest_path(self) -> Path:
        return self.workdir / "manifest.json"

    @property
    def bindings_path(self) -> Path:
        return self.workdir / "bindings.json"

    @property
    def root_cert_path(self) -> Path:
        return self.workdir / "certs" / f"{_ROOT}.cert.pem"

    @property
    def intermediate_cert_path(self) -> Path:
        return self.workdir / "certs" / f"{_INTERMEDIATE}.cert.pem"

    @property
    def tsa_cert_path(self) -> Path:
        return self.workdir / "certs" / f"{_TSA_CERT}.cert.pem"

    @property
    def crl_path(self) -> Path:
        """Snapshot of the intermediate CA's CRL taken at provisioning time."""
        return self.workdir / "crl" / f"{_INTERMEDIATE}.crl"

    @property
    def softhsm_conf(self) -> Path:
        return self.workdir / "softhsm" / "softhsm2.conf"

    @property
    def softhsm_token_dir(self) -> Path:
        return self.workdir / "softhsm" / "tokens"

    # --- certificates --------------------------------------------------------------------

    @property
    def root(self) -> x509.Certificate:
        if self._root is None:
            object.__setattr__(self, "_root", _read_cert(self.root_cert_path))
        assert self._root is not None
        return self._root

    @property
    def intermediate(self) -> x509.Certificate:
        if self._intermediate is None:
            object.__setattr__(self, "_intermediate", _read_cert(self.intermediate_cert_path))
        assert self._intermediate is not None
        return self._intermediate

    def trust_roots(self) -> list[x509.Certificate]:
        """The trust anchors to give a ``ValidationContext``: the project's root and the
        long-lived archive root (never the untrusted one)."""
        return [self.root, _read_cert(self.workdir / "certs" / f"{_ARCHIVE_ROOT}.cert.pem")]

    def tsa_cert(self) -> x509.Certificate:
        return _read_cert(self.tsa_cert_path)

    def identity(self, name_or_person_id: str) -> Identity:
        """Look up ``"seal"``, a negative case name, or a person id."""
        key = name_or_person_id
        if key in self._identities:
            return self._identities[key]
        if key in self._by_person:
            return self._identities[self._by_person[key]]
        known = ", ".join(sorted(self._identities))
        if key == "weak_ec" and self.weak_ec_skipped:
            raise KeyError(f"weak_ec was not provisioned: {self.weak_ec_skipped}")
        raise KeyError(f"no identity {key!r} in the test PKI (known: {known})")

    def identities(self) -> list[Identity]:
        return list(self._identities.values())

    @property
    def seal(self) -> Identity:
        return self.identity(SEAL)

    def people(self) -> list[Identity]:
        return [i for i in self._identities.values() if i.kind == "person"]

    def bindings(self) -> dict[str, str]:
        """Certificate SHA-256 fingerprint → person id, or ``"school:<code>"`` for the seal.

        Covers every identity, negative cases included, so that a refusal test fails for the
        reason it tests (expiry, weak key…) and not because the certificate is unknown.
        """
        return {i.fingerprint_sha256: i.binding for i in self._identities.values()}

    # --- SoftHSM2 ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment a process needs to see this PKI's token.

        SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised (``C_Initialize``),
        i.e. the first time ``pkcs11.lib(...)`` is called in a process: set it before that
        (``os.environ.update(pki.env())``), or call :meth:`activate_softhsm`.
        """
        return {"SOFTHSM2_CONF": str(self.softhsm_conf)}

    def activate_softhsm(self) -> None:
        """Point this process's SoftHSM2 at this PKI's token directory.

        Sets ``SOFTHSM2_CONF``; if python-pkcs11 already initialised the library with another
        configuration, re-initialises it (which invalidates sessions opened before).
        """
        global _ACTIVE_SOFTHSM_CONF
        conf = str(self.softhsm_conf)
        previous_env = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = conf
        pkcs11_mod = sys.modules.get("pkcs11")
        loaded = getattr(pkcs11_mod, "_loaded", {}) if pkcs11_mod is not None else {}
        lib = loaded.get(self.pkcs11_lib)
        if lib is not None:
            in_use = _ACTIVE_SOFTHSM_CONF if _ACTIVE_SOFTHSM_CONF is not None else previous_env
            if in_use != conf:
                lib.reinitialize()
        _ACTIVE_SOFTHSM_CONF = conf


_ACTIVE_SOFTHSM_CONF: str | None = None


def default_pkcs11_lib() -> str:
    """The SoftHSM2 module: ``$HSDT_PKCS11_LIB`` or Debian's path."""
    return os.environ.get(PKCS11_LIB_ENV, DEFAULT_SOFTHSM2_LIB)


# --------------------------------------------------------------------------------------------
# Provisioning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """One end-entity certificate to issue (internal plan)."""

    name: str
    label: str  # certomancer cert/entity/key label; also the file stem
    kind: IdentityKind
    person_id: str | None
    full_name: str
    binding: str
    subject: dict[str, str]
    valid_from: dt.datetime
    valid_to: dt.datetime
    key: Literal["rsa2048", "rsa1024", "p224", "p256", "hsm"]
    issuer: str = _INTERMEDIATE
    revoked_since: dt.datetime | None = None


def provision(
    workdir: Path,
    people: Sequence[Person],
    school_code: str,
    school_name: str,
    *,
    hsm_people: Collection[str] = (),
    port: int | None = None,
    negatives_for: str | None = None,
    pkcs11_lib: str | None = None,
    force: bool = False,
) -> TestPKI:
    """Build (or reuse) a complete test PKI in ``workdir``.

    ``hsm_people`` are person ids whose keys are generated in the SoftHSM2 token (the seal's
    key always is). ``port`` is the loopback port the services will answer on; it is baked
    into every certificate, so it is chosen now (a free one when ``None``) and kept in the
    manifest. ``negatives_for`` is the person the negative-case certificates are bound to
    (default: the first of ``people``).

    A workdir that already holds a complete PKI for the same inputs, made less than two weeks
    ago, is reused as is (a warm call only reads the manifest and certificates). ``force``
    rebuilds regardless.
    """
    workdir = Path(workdir).resolve()
    people = list(people)
    if not people:
        raise ValueError("provision() needs at least one person (negative cases bind to one)")
    ids = [p.person_id for p in people]
    if len(set(ids)) != len(ids):
        raise ValueError("person ids must be unique")
    reserved = {SEAL, *NEGATIVE_CASES}
    clash = reserved.intersection(ids)
    if clash:
        raise ValueError(f"person ids may not use reserved identity names: {sorted(clash)}")
    unknown_hsm = set(hsm_people) - set(ids)
    if unknown_hsm:
        raise ValueError(f"hsm_people not among people: {sorted(unknown_hsm)}")
    if negatives_for is None:
        negatives_for = people[0].person_id
    elif negatives_for not in ids:
        raise ValueError(f"negatives_for={negatives_for!r} is not among people")
    lib = pkcs11_lib or default_pkcs11_lib()

    request = {
        "version": MANIFEST_VERSION,
        "school_code": school_code,
        "school_name": school_name,
        "people": [{"person_id": p.person_id, "full_name": p.full_name} for p in people],
        "hsm_people": sorted(hsm_people),
        "negatives_for": negatives_for,
    }

    workdir.mkdir(parents=True, exist_ok=True)
    with _locked(workdir / ".provision.lock"):
        if not force:
            existing = _try_reuse(workdir, request, port, lib)
            if existing is not None:
                return existing
        chosen_port = port if port is not None else _free_loopback_port()
        _build(workdir, request, chosen_port, lib)
        return load(workdir, pkcs11_lib=lib)


def load(workdir: Path, *, pkcs11_lib: str | None = None) -> TestPKI:
    """Open a PKI made earlier by :func:`provision` (reads ``manifest.json``)."""
    workdir = Path(workdir).resolve()
    manifest_path = workdir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except FileNotFoundError as e:
        raise TestPKIError(f"no test PKI manifest at {manifest_path}") from e
    if manifest.get("version") != MANIFEST_VERSION:
        raise TestPKIError(
            f"{manifest_path} has version {manifest.get('version')!r}, "
            f"expected {MANIFEST_VERSION}: provision again"
        )
    root = _read_cert(workdir / "certs" / f"{_ROOT}.cert.pem")
    intermediate = _read_cert(workdir / "certs" / f"{_INTERMEDIATE}.cert.pem")
    untrusted_root = _read_cert(workdir / "certs" / f"{_UNTRUSTED_ROOT}.cert.pem")
    identities: dict[str, Identity] = {}
    by_person: dict[str, str] = {}
    for name, entry in manifest["identities"].items():
        cert_path = workdir / entry["cert"]
        cert = _read_cert(cert_path)
        chain = (untrusted_root,) if entry["issuer"] == _UNTRUSTED_ROOT else (intermediate,)
        key_id = entry.get("pkcs11_key_id")
        ident = Identity(
            name=name,
            kind=entry["kind"],
            person_id=entry["person_id"],
            full_name=entry["full_name"],
            cert=cert,
            cert_path=cert_path,
            chain=chain,
            fingerprint_sha256=hashlib.sha256(cert.dump()).hexdigest(),
            binding=entry["binding"],
            p12_path=workdir / entry["p12"] if entry.get("p12") else None,
            pkcs11_key_label=entry.get("pkcs11_key_label"),
            pkcs11_key_id=bytes.fromhex(key_id) if key_id else None,
        )
        identities[name] = ident
        if ident.kind == "person" and ident.person_id is not None:
            by_person[ident.person_id] = name
    return TestPKI(
        workdir=workdir,
        port=int(manifest["port"]),
        school_code=manifest["school_code"],
        school_name=manifest["school_name"],
        created_at=dt.datetime.fromisoformat(manifest["created_at"]),
        pkcs11_lib=pkcs11_lib or manifest.get("pkcs11_lib") or default_pkcs11_lib(),
        weak_ec_skipped=manifest.get("weak_ec_skipped"),
        _identities=identities,
        _by_person=by_person,
        _root=root,
        _intermediate=intermediate,
    )


def _try_reuse(
    workdir: Path, request: Mapping[str, Any], port: int | None, lib: str
) -> TestPKI | None:
    """Return the existing PKI when it was made for the same inputs and is still usable."""
    try:
        manifest = json.loads((workdir / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if any(manifest.get(k) != v for k, v in request.items()):
        return None
    if port is not None and manifest.get("port") != port:
        return None
    try:
        created = dt.datetime.fromisoformat(manifest["created_at"])
    except (KeyError, ValueError):
        return None
    now = _now()
    if not (created - dt.timedelta(hours=1) <= now <= created + _REUSE_WINDOW):
        return None
    needed = [workdir / "certomancer.yml", workdir / "bindings.json"]
    for entry in manifest.get("identities", {}).values():
        needed.append(workdir / entry["cert"])
        if entry.get("p12"):
            needed.append(workdir / entry["p12"])
    token_dir = workdir / "softhsm" / "tokens"
    if (
        not all(p.is_file() for p in needed)
        or not (workdir / "softhsm" / "softhsm2.conf").is_file()
    ):
        return None
    if not token_dir.is_dir() or not any(token_dir.iterdir()):
        return None
    try:
        return load(workdir, pkcs11_lib=lib)
    except (TestPKIError, OSError, ValueError, KeyError):
        return None


def _build(workdir: Path, request: Mapping[str, Any], port: int, lib: str) -> None:
    """Cold path: wipe what a previous build left, then make keys, token, certs, files."""
    for sub in ("keys", "certs", "p12", "crl", "softhsm"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    for f in ("manifest.json", "bindings.json", "certomancer.yml"):
        (workdir / f).unlink(missing_ok=True)
    for sub in ("keys", "certs", "p12", "crl"):
        (workdir / sub).mkdir(parents=True)

    now = _now()
    people = [Person(**p) for p in request["people"]]
    hsm_people = set(request["hsm_people"])
    school_code: str = request["school_code"]
    school_name: str = request["school_name"]
    neg_person = next(p for p in people if p.person_id == request["negatives_for"])

    slots = _plan_slots(now, people, hsm_people, school_code, school_name, neg_person)

    # 1. SoftHSM2 token and the keys that must never leave it
    _init_softhsm(workdir, lib)
    hsm_slots = [s for s in slots if s.key == "hsm"]
    hsm_labels = {s.label: _pkcs11_label(s) for s in hsm_slots}
    pubkeys = _hsm_call(
        workdir,
        lib,
        {"op": "keygen", "labels": list(hsm_labels.values())},
    )
    for slot in hsm_slots:
        rsa_pub_der = base64.b64decode(pubkeys[hsm_labels[slot.label]])
        spki = keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "rsa"},
                "public_key": keys.RSAPublicKey.load(rsa_pub_der),
            }
        )
        (workdir / "keys" / f"{slot.label}.pub.pem").write_bytes(
            pem.armor("PUBLIC KEY", spki.dump())
        )

    # 2. software keys (CA, services, software people, negative cases)
    weak_ec_skipped: str | None = None
    for label in _CA_LABELS:
        _write_key(workdir / "keys" / f"{label}.key.pem", rsa.generate_private_key(65537, 2048))
    for slot in slots:
        if slot.key == "hsm":
            continue
        try:
            key = _make_software_key(slot.key)
        except Exception as e:  # pragma: no cover - depends on the OpenSSL build
            if slot.name != "weak_ec":
                raise
            weak_ec_skipped = f"EC P-224 key generation refused by this OpenSSL build: {e}"
            continue
        _write_key(workdir / "keys" / f"{slot.label}.key.pem", key)
    if weak_ec_skipped:
        slots = [s for s in slots if s.name != "weak_ec"]

    # 3. certificates via certomancer
    config = _certomancer_config(now, port, slots, school_name)
    _write_yaml(workdir / "certomancer.yml", config)
    with _fast_certomancer_crypto():
        identities = _issue(workdir, config, slots, hsm_labels, lib)

    # From now on certomancer reads the issued certificates from certs/ instead of re-signing
    # them: the Animator starts faster and is guaranteed to serve exactly these bytes.
    for spec_label, spec in config["pki-architectures"][ARCH_LABEL]["certs"].items():
        spec["certificate-file"] = f"certs/{spec_label}.cert.pem"
    _write_yaml(workdir / "certomancer.yml", config)

    bindings = {e["fingerprint_sha256"]: e["binding"] for e in identities.values()}
    _write_json(workdir / "bindings.json", bindings)
    manifest = {
        **request,
        "created_at": now.isoformat(),
        "port": port,
        "pkcs11_lib": lib,
        "token_label": TOKEN_LABEL,
        "weak_ec_skipped": weak_ec_skipped,
        "identities": identities,
    }
    # written last: its presence means the build completed
    _write_json(workdir / "manifest.json", manifest)


def _issue(
    workdir: Path,
    config: dict[str, Any],
    slots: Sequence[_Slot],
    hsm_labels: Mapping[str, str],
    lib: str,
) -> dict[str, dict[str, Any]]:
    """Have certomancer sign every certificate; write PEMs, PKCS#12 files, CRL snapshots.

    Returns the manifest's ``identities`` section. Certificates of HSM keys are also stored
    in the token, under the key's label and id, so a PKCS#11 signer finds them there.
    """
    arch = _arch_from_config(workdir, config)
    from certomancer.registry import CertLabel, ServiceLabel

    def dump_cert(label: str) -> x509.Certificate:
        cert = arch.get_cert(CertLabel(label))
        (workdir / "certs" / f"{label}.cert.pem").write_bytes(pem.armor("CERTIFICATE", cert.dump()))
        return cert

    for label in _CA_LABELS:
        dump_cert(label)
    identities: dict[str, dict[str, Any]] = {}
    to_token: list[dict[str, str]] = []
    for slot in slots:
        cert = dump_cert(slot.label)
        entry: dict[str, Any] = {
            "label": slot.label,
            "kind": slot.kind,
            "person_id": slot.person_id,
            "full_name": slot.full_name,
            "binding": slot.binding,
            "issuer": slot.issuer,
            "cert": f"certs/{slot.label}.cert.pem",
            "fingerprint_sha256": hashlib.sha256(cert.dump()).hexdigest(),
        }
        if slot.key == "hsm":
            p11_label = hsm_labels[slot.label]
            entry["pkcs11_key_label"] = p11_label
            entry["pkcs11_key_id"] = p11_label.encode("utf-8").hex()
            to_token.append(_token_cert_item(p11_label, cert))
        else:
            chain = [arch.get_cert(c) for c in arch.get_chain(CertLabel(slot.label))]
            (workdir / "p12" / f"{slot.label}.p12").write_bytes(
                _pkcs12(workdir / "keys" / f"{slot.label}.key.pem", cert, chain)
            )
            entry["p12"] = f"p12/{slot.label}.p12"
        identities[slot.name] = entry

    # CA certificates in the token too, so a PKCS#11 signer can pull its chain from there
    to_token.append(
        _token_cert_item("hsdt-intermediate-ca", arch.get_cert(CertLabel(_INTERMEDIATE)))
    )
    to_token.append(_token_cert_item("hsdt-root-ca", arch.get_cert(CertLabel(_ROOT))))
    _hsm_call(workdir, lib, {"op": "import_certs", "certs": to_token})

    # CRL snapshots (the Animator computes fresh ones on request)
    registry = arch.service_registry
    for repo, stem in ((_CRL_INTERMEDIATE, _INTERMEDIATE), (_CRL_ROOT, _ROOT)):
        crl_obj = registry.get_crl(ServiceLabel(repo), at_time=_now())
        (workdir / "crl" / f"{stem}.crl").write_bytes(crl_obj.dump())
    return identities


def _plan_slots(
    now: dt.datetime,
    people: Sequence[Person],
    hsm_people: Collection[str],
    school_code: str,
    school_name: str,
    neg: Person,
) -> list[_Slot]:
    """Decide every end-entity certificate: subject, validity window, key kind, issuer."""
    valid_from = now - dt.timedelta(days=1)
    valid_to = now + dt.timedelta(days=730)
    slots = [
        _Slot(
            name=SEAL,
            label="seal",
            kind="seal",
            person_id=None,
            full_name=school_name,
            binding=f"school:{school_code}",
            subject=_org_subject(school_code, school_name),
            valid_from=valid_from,
            valid_to=valid_to,
            key="hsm",
        )
    ]
    for i, p in enumerate(people, start=1):
        slots.append(
            _Slot(
                name=p.person_id,
                label=f"person-{i:03d}",
                kind="person",
                person_id=p.person_id,
                full_name=p.full_name,
                binding=p.person_id,
                subject=_person_subject(p, school_name),
                valid_from=valid_from,
                valid_to=valid_to,
                key="hsm" if p.person_id in hsm_people else "rsa2048",
            )
        )

    def negative(name: str, **kw: Any) -> _Slot:
        base: dict[str, Any] = {
            "name": name,
            "label": f"neg-{name.replace('_', '-')}",
            "kind": "negative",
            "person_id": neg.person_id,
            "full_name": neg.full_name,
            "binding": neg.person_id,
            "subject": _person_subject(neg, school_name, variant=name),
            "valid_from": valid_from,
            "valid_to": valid_to,
            "key": "rsa2048",
        }
        base.update(kw)
        return _Slot(**base)

    slots += [
        negative(
            "expired",
            valid_from=now - dt.timedelta(days=730),
            valid_to=now - dt.timedelta(days=30),
        ),
        negative(
            "not_yet_valid",
            valid_from=now + _NOT_YET_VALID_OFFSET,
            valid_to=now + _NOT_YET_VALID_OFFSET + dt.timedelta(days=730),
        ),
        # revoked an hour after issuance, i.e. ~23 h before provisioning: every CRL the
        # Animator computes (thisUpdate = now rounded down to the hour) already lists it
        negative("revoked", revoked_since=valid_from + dt.timedelta(hours=1)),
        negative("weak_rsa", key="rsa1024"),
        negative("weak_ec", key="p224"),
        negative("ec_p256_ok", key="p256"),
        negative("untrusted", issuer=_UNTRUSTED_ROOT),
    ]
    return slots


def _person_subject(p: Person, school_name: str, variant: str | None = None) -> dict[str, str]:
    """Subject DN of a person: CN = full name (UTF8String), UID (+ serialNumber) = person id."""
    subject = {
        "country_name": "VN",
        "organization_name": school_name,
        "common_name": p.full_name,
        "user_id": p.person_id,
    }
    if _PRINTABLE.fullmatch(p.person_id):
        subject["serial_number"] = p.person_id
    if variant is not None:
        # distinct DNs keep the negative cases apart in validators' caches and in logs
        subject["organizational_unit_name"] = f"HSDT test case: {variant}"
    return subject


def _org_subject(school_code: str, school_name: str) -> dict[str, str]:
    """Subject DN of the school seal: O = CN = school name, UID (+ serialNumber) = school code."""
    subject = {
        "country_name": "VN",
        "organization_name": school_name,
        "common_name": school_name,
        "user_id": school_code,
        "organizational_unit_name": f"Mã trường: {school_code}",
    }
    if _PRINTABLE.fullmatch(school_code):
        subject["serial_number"] = school_code
    return subject


def _pkcs11_label(slot: _Slot) -> str:
    return SEAL if slot.kind == "seal" else str(slot.person_id)


def _make_software_key(kind: str) -> Any:
    if kind == "rsa2048":
        return rsa.generate_private_key(65537, 2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(65537, 1024)
    if kind == "p224":
        return ec.generate_private_key(ec.SECP224R1())
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(kind)


def _write_key(path: Path, key: Any) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _pkcs12(key_path: Path, cert: x509.Certificate, chain: Sequence[x509.Certificate]) -> bytes:
    """PKCS#12 with key, certificate and issuer chain, encrypted with the test passphrase.

    Done here rather than with certomancer's ``package_pkcs12``, which re-validates the RSA
    key (slow) and has no say over the friendly name.
    """
    from cryptography import x509 as pyca_x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(
        key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return pkcs12.serialize_key_and_certificates(
        name=key_path.name.removesuffix(".key.pem").encode("utf-8"),
        key=key,
        cert=pyca_x509.load_der_x509_certificate(cert.dump()),
        cas=[pyca_x509.load_der_x509_certificate(c.dump()) for c in chain],
        encryption_algorithm=serialization.BestAvailableEncryption(SOFTWARE_P12_PASSPHRASE),
    )


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def _ee_extensions(ocsp_service: str | None, crl_repo: str, cert_repo: str) -> list[dict[str, Any]]:
    """AIA (OCSP + caIssuers) and CRL distribution point for an end-entity certificate."""
    aia_params: dict[str, Any] = {"ca-issuer-links": [{"repo": cert_repo}]}
    if ocsp_service is not None:
        aia_params["ocsp-responder-names"] = [ocsp_service]
    return [
        {
            "id": "crl_distribution_points",
            "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": [crl_repo]}},
        },
        {
            "id": "authority_information_access",
            "smart-value": {"schema": "aia-urls", "params": aia_params},
        },
    ]


def _signing_ku() -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": ["digital_signature", "non_repudiation"]},
    }


def _certomancer_config(
    now: dt.datetime, port: int, slots: Sequence[_Slot], school_name: str
) -> dict[str, Any]:
    """The certomancer configuration with absolute dates (so reloading yields the same certs).

    Every CA key is RSA with PKCS#1 v1.5 signatures, which are deterministic: the Animator,
    reloading this file in another process, produces byte-identical certificates.
    """
    ca_org = "HSDT Test PKI (không dùng cho thực tế)"
    entities: dict[str, dict[str, str]] = {
        _ROOT: {
            "country_name": "VN",
            "organization_name": ca_org,
            "common_name": "HSDT Test Root CA",
        },
        _INTERMEDIATE: {
            "country_name": "VN",
            "organization_name": ca_org,
            "common_name": "HSDT Test Issuing CA",
        },
        _TSA_CERT: {
            "country_name": "VN",
            "organization_name": ca_org,
            "common_name": "HSDT Test TSA",
        },
        _OCSP_CERT: {
            "country_name": "VN",
            "organization_name": ca_org,
            "common_name": "HSDT Test OCSP Responder",
        },
        _UNTRUSTED_ROOT: {
            "country_name": "VN",
            "organization_name": "Untrusted Test Authority",
            "common_name": "Untrusted Root CA (not in the HSDT trust store)",
        },
    }
    entities[_ARCHIVE_ROOT] = {"country_name": "VN", "organization_name": "HSDT Test PKI",
                               "common_name": "HSDT Test Archive Root CA"}
    entities[_ARCHIVE_TSA_CERT] = {"country_name": "VN", "organization_name": "HSDT Test PKI",
                                   "common_name": "HSDT Test Archive TSA"}
    key_entries: dict[str, dict[str, Any]] = {
        label: {"path": f"{label}.key.pem"} for label in _CA_LABELS
    }
    ca_from = now - dt.timedelta(days=800)
    certs: dict[str, dict[str, Any]] = {
        _ROOT: {
            "subject": _ROOT,
            "issuer": _ROOT,
            "validity": {
                "valid-from": _iso(ca_from),
                "valid-to": _iso(now + dt.timedelta(days=3650)),
            },
            "profiles": ["simple-ca"],
        },
        _INTERMEDIATE: {
            "subject": _INTERMEDIATE,
            "issuer": _ROOT,
            "validity": {
                "valid-from": _iso(ca_from + dt.timedelta(days=1)),
                "valid-to": _iso(now + dt.timedelta(days=3000)),
            },
            "profiles": [{"id": "simple-ca", "params": {"max-path-len": 0}}],
            "extensions": _ee_extensions(None, _CRL_ROOT, _REPO_ROOT),
        },
        _TSA_CERT: {
            "subject": _TSA_CERT,
            "issuer": _INTERMEDIATE,
            "validity": {
                "valid-from": _iso(now - dt.timedelta(days=1)),
                "valid-to": _iso(now + dt.timedelta(days=1095)),
            },
            "extensions": [
                {
                    "id": "key_usage",
                    "critical": True,
                    "smart-value": {"schema": "key-usage", "params": ["digital_signature"]},
                },
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                *_ee_extensions(_OCSP, _CRL_INTERMEDIATE, _REPO_INTERMEDIATE),
            ],
        },
        _OCSP_CERT: {
            "subject": _OCSP_CERT,
            "issuer": _INTERMEDIATE,
            "validity": {
                "valid-from": _iso(now - dt.timedelta(days=1)),
                "valid-to": _iso(now + dt.timedelta(days=1095)),
            },
            # key usage, critical ocspSigning EKU and id-pkix-ocsp-nocheck
            "profiles": ["ocsp-responder"],
            "extensions": _ee_extensions(_OCSP, _CRL_INTERMEDIATE, _REPO_INTERMEDIATE),
        },
        _UNTRUSTED_ROOT: {
            "subject": _UNTRUSTED_ROOT,
            "issuer": _UNTRUSTED_ROOT,
            "validity": {
                "valid-from": _iso(ca_from),
                "valid-to": _iso(now + dt.timedelta(days=3650)),
            },
            "profiles": ["simple-ca"],
        },
        _ARCHIVE_ROOT: {
            "subject": _ARCHIVE_ROOT,
            "issuer": _ARCHIVE_ROOT,
            "validity": {
                "valid-from": _iso(ca_from),
                "valid-to": _iso(now + dt.timedelta(days=365 * 60)),
            },
            "profiles": ["simple-ca"],
        },
        _ARCHIVE_TSA_CERT: {
            "subject": _ARCHIVE_TSA_CERT,
            "issuer": _ARCHIVE_ROOT,
            "validity": {
                "valid-from": _iso(now - dt.timedelta(days=1)),
                "valid-to": _iso(now + dt.timedelta(days=365 * 40)),
            },
            "extensions": [
                {
                    "id": "key_usage",
                    "critical": True,
                    "smart-value": {"schema": "key-usage", "params": ["digital_signature"]},
                },
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                *_ee_extensions(None, _CRL_ARCHIVE, _REPO_ARCHIVE),
            ],
        },
    }
    for slot in slots:
        entities[slot.label] = slot.subject
        if slot.key == "hsm":
            key_entries[slot.label] = {"path": f"{slot.label}.pub.pem", "public-only": True}
        else:
            key_entries[slot.label] = {"path": f"{slot.label}.key.pem"}
        if slot.issuer == _UNTRUSTED_ROOT:
            ext = _ee_extensions(None, _CRL_UNTRUSTED, _REPO_UNTRUSTED)
        else:
            ext = _ee_extensions(_OCSP, _CRL_INTERMEDIATE, _REPO_INTERMEDIATE)
        spec: dict[str, Any] = {
            "subject": slot.label,
            "issuer": slot.issuer,
            "validity": {"valid-from": _iso(slot.valid_from), "valid-to": _iso(slot.valid_to)},
            "extensions": [_signing_ku(), *ext],
        }
        if slot.revoked_since is not None:
            spec["revocation"] = {
                "revoked-since": _iso(slot.revoked_since),
                "reason": "key_compromise",
            }
        certs[slot.label] = spec

    services = {
        "ocsp": {
            _OCSP: {
                "for-issuer": _INTERMEDIATE,
                "responder-cert": _OCSP_CERT,
                "signing-key": _OCSP_CERT,
            }
        },
        "crl-repo": {
            _CRL_ROOT: {
                "for-issuer": _ROOT,
                "signing-key": _ROOT,
                "simulated-update-schedule": "P1D",
            },
            _CRL_INTERMEDIATE: {
                "for-issuer": _INTERMEDIATE,
                "signing-key": _INTERMEDIATE,
                "simulated-update-schedule": "PT1H",
            },
            _CRL_UNTRUSTED: {
                "for-issuer": _UNTRUSTED_ROOT,
                "signing-key": _UNTRUSTED_ROOT,
                "simulated-update-schedule": "P1D",
            },
            _CRL_ARCHIVE: {
                "for-issuer": _ARCHIVE_ROOT,
                "signing-key": _ARCHIVE_ROOT,
                "simulated-update-schedule": "P1D",
            },
        },
        "cert-repo": {
            _REPO_ROOT: {"for-issuer": _ROOT, "publish-issued-certs": True},
            _REPO_INTERMEDIATE: {"for-issuer": _INTERMEDIATE, "publish-issued-certs": True},
            _REPO_UNTRUSTED: {"for-issuer": _UNTRUSTED_ROOT, "publish-issued-certs": True},
            _REPO_ARCHIVE: {"for-issuer": _ARCHIVE_ROOT, "publish-issued-certs": True},
        },
        "time-stamping": {
            _TSA: {
                "signing-cert": _TSA_CERT,
                "signing-key": _TSA_CERT,
                "certs-to-embed": [_INTERMEDIATE],
            },
            _ARCHIVE_TSA: {
                "signing-cert": _ARCHIVE_TSA_CERT,
                "signing-key": _ARCHIVE_TSA_CERT,
                "certs-to-embed": [],
            },
        },
    }
    return {
        "external-url-prefix": f"http://127.0.0.1:{port}",
        "keysets": {ARCH_LABEL: {"path-prefix": "keys", "keys": key_entries}},
        "pki-architectures": {
            ARCH_LABEL: {
                "keyset": ARCH_LABEL,
                "entities": entities,
                "certs": certs,
                "services": services,
            }
        },
    }


def _certomancer(workdir: Path, config: Mapping[str, Any]) -> Any:
    """A ``CertomancerConfig`` with lazily loaded keys.

    ``CertomancerConfig.from_file`` parses every private key up front (two OpenSSL RSA
    consistency checks per key, ~50 ms each); lazily, only the keys a request needs are read.
    """
    from certomancer.registry import CertomancerConfig

    return CertomancerConfig(
        dict(config),
        key_search_dir=str(workdir),
        lazy_load_keys=True,
        config_search_dir=str(workdir),
    )


def _arch_from_config(workdir: Path, config: Mapping[str, Any]) -> Any:
    from certomancer.registry import ArchLabel

    return _certomancer(workdir, config).get_pki_arch(ArchLabel(ARCH_LABEL))


def _load_archs(workdir: Path) -> dict[Any, Any]:
    """All architectures of ``workdir/certomancer.yml`` (what the Animator serves)."""
    config = yaml.safe_load((workdir / "certomancer.yml").read_text("utf-8"))
    return dict(_certomancer(workdir, config).pki_archs)


@contextlib.contextmanager
def _fast_certomancer_crypto() -> Iterator[None]:
    """Let certomancer skip OpenSSL's RSA private-key check while we provision.

    certomancer re-parses the issuer's private key for every signature, and cryptography
    checks RSA keys on every load (~26 ms for RSA-2048): that was over half of a cold build.
    The keys were generated by this module seconds ago, so the check proves nothing here.
    Signatures are unchanged (same key, same deterministic PKCS#1 v1.5 padding).
    """
    from certomancer import crypto_utils
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    cache: dict[bytes, Any] = {}

    def load_der(der: bytes) -> Any:
        key = cache.get(der)
        if key is None:
            key = serialization.load_der_private_key(
                der, password=None, unsafe_skip_rsa_key_validation=True
            )
            cache[der] = key
        return key

    class _Backend(crypto_utils.PycaCryptographyBackend):
        def load_private_key(
            self, key_bytes: bytes, password: bytes | None
        ) -> tuple[keys.PrivateKeyInfo, keys.PublicKeyInfo]:
            loader = (
                serialization.load_pem_private_key
                if pem.detect(key_bytes)
                else serialization.load_der_private_key
            )
            key = loader(key_bytes, password=password, unsafe_skip_rsa_key_validation=True)
            priv = keys.PrivateKeyInfo.load(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            pub = keys.PublicKeyInfo.load(
                key.public_key().public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                )
            )
            return priv, pub

        def generic_sign(
            self,
            private_key: keys.PrivateKeyInfo,
            tbs_bytes: bytes,
            sd_algo: algos.SignedDigestAlgorithm,
        ) -> bytes:
            if sd_algo.signature_algo == "rsassa_pkcs1v15":
                key = load_der(private_key.dump())
                digest = getattr(hashes, sd_algo.hash_algo.upper())()
                return bytes(key.sign(tbs_bytes, padding.PKCS1v15(), digest))
            return bytes(super().generic_sign(private_key, tbs_bytes, sd_algo))

    previous = crypto_utils.CRYPTO_BACKEND
    crypto_utils.CRYPTO_BACKEND = _Backend()
    try:
        yield
    finally:
        crypto_utils.CRYPTO_BACKEND = previous


# --- SoftHSM2 ---------------------------------------------------------------------------------

# Run in a child process: SoftHSM2 binds to SOFTHSM2_CONF at C_Initialize, and python-pkcs11
# keeps one initialised library per path for the life of a process. Doing token work in a
# child leaves the caller's process free to use whichever token configuration it wants.
_HSM_HELPER = r"""
import base64, json, sys
import pkcs11
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
from pkcs11.util.rsa import encode_rsa_public_key

req = json.load(sys.stdin)
lib = pkcs11.lib(req["lib"])
token = lib.get_token(token_label=req["token_label"])
out = {}
with token.open(rw=True, user_pin=req["user_pin"]) as session:
    if req["op"] == "keygen":
        for label in req["labels"]:
            for old in list(session.get_objects({Attribute.LABEL: label})):
                old.destroy()
            pub, _priv = session.generate_keypair(
                KeyType.RSA, 2048, id=label.encode("utf-8"), label=label, store=True,
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )
            out[label] = base64.b64encode(encode_rsa_public_key(pub)).decode("ascii")
    elif req["op"] == "import_certs":
        for item in req["certs"]:
            query = {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: item["label"]}
            for old in list(session.get_objects(query)):
                old.destroy()
            session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: item["label"],
                Attribute.ID: bytes.fromhex(item["id"]),
                Attribute.SUBJECT: base64.b64decode(item["subject"]),
                Attribute.VALUE: base64.b64decode(item["der"]),
            })
    else:
        raise SystemExit("unknown op " + req["op"])
json.dump(out, sys.stdout)
"""


def _softhsm_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SOFTHSM2_CONF"] = str(workdir / "softhsm" / "softhsm2.conf")
    return env


def _init_softhsm(workdir: Path, lib: str) -> None:
    """Write a private softhsm2.conf + token dir and initialise the token by label."""
    if not Path(lib).is_file():
        raise TestPKIError(
            f"SoftHSM2 PKCS#11 module not found at {lib}: install the Debian package "
            f"'softhsm2' (or set {PKCS11_LIB_ENV})"
        )
    util = shutil.which("softhsm2-util")
    if util is None:
        raise TestPKIError("softhsm2-util not found: install the Debian package 'softhsm2'")
    hsm_dir = workdir / "softhsm"
    token_dir = hsm_dir / "tokens"
    token_dir.mkdir(parents=True)
    (hsm_dir / "softhsm2.conf").write_text(
        "# written by hsdt.signing.testpki: test token, not for production\n"
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n",
        "utf-8",
    )
    proc = subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ],
        env=_softhsm_env(workdir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise TestPKIError(
            f"SoftHSM2: softhsm2-util --init-token failed ({proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )


def _hsm_call(workdir: Path, lib: str, request: dict[str, Any]) -> dict[str, str]:
    payload = {**request, "lib": lib, "token_label": TOKEN_LABEL, "user_pin": USER_PIN}
    proc = subprocess.run(
        [sys.executable, "-c", _HSM_HELPER],
        input=json.dumps(payload),
        env=_softhsm_env(workdir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise TestPKIError(
            f"SoftHSM2 ({request['op']} via python-pkcs11) failed: {proc.stderr.strip()[-2000:]}"
        )
    result: dict[str, str] = json.loads(proc.stdout or "{}")
    return result


def _token_cert_item(label: str, cert: x509.Certificate) -> dict[str, str]:
    return {
        "label": label,
        "id": label.encode("utf-8").hex(),
        "subject": base64.b64encode(cert.subject.dump()).decode("ascii"),
        "der": base64.b64encode(cert.dump()).decode("ascii"),
    }


# --- small helpers ------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def _write_yaml(path: Path, obj: Any) -> None:
    path.write_text(yaml.safe_dump(obj, allow_unicode=True, sort_keys=False), "utf-8")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", "utf-8")
    tmp.replace(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise provisioning of one workdir across processes (pytest-xdist, demo + tests)."""
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Serving: certomancer's aiohttp Animator
# --------------------------------------------------------------------------------------------


class _ThreadedAnimator:
    """The aiohttp Animator on its own event loop in a daemon thread.

    A thread (rather than a subprocess) starts in a few milliseconds and needs nothing on
    PATH; pyHanko's aiohttp clients in the caller's thread talk to it over real TCP.
    """

    def __init__(self, pki: TestPKI, *, web_ui: bool) -> None:
        self.pki = pki
        self.web_ui = web_ui
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"certomancer-animator:{self.pki.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TestPKIError(
                f"certomancer Animator did not start on {self.pki.base_url} within {timeout}s"
            )
        if self._error is not None:
            raise TestPKIError(
                f"certomancer Animator could not listen on {self.pki.base_url}: {self._error}"
            ) from self._error

    def _run(self) -> None:
        from aiohttp import web
        from certomancer.integrations.aiohttp_animator import build_animator_app

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        runner: web.AppRunner | None = None
        try:
            self._fast = _fast_certomancer_crypto()
            self._fast.__enter__()
            app = build_animator_app(_load_archs(self.pki.workdir), with_web_ui=self.web_ui)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.pki.host, self.pki.port, reuse_address=True)
            loop.run_until_complete(site.start())
        except BaseException as e:
            self._error = e
            if runner is not None:
                loop.run_until_complete(runner.cleanup())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._thread is None:
            return
        # after a failed start the thread cleans up and ends by itself: just wait for it
        if self._error is None and self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class _SubprocessAnimator:
    """``certomancer --config … animate --aiohttp --port N`` as a child process."""

    def __init__(self, pki: TestPKI, *, web_ui: bool) -> None:
        self.pki = pki
        self.web_ui = web_ui
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = pki.workdir / "animator.log"

    def start(self, timeout: float) -> None:
        cmd = [sys.executable, "-m", "hsdt.signing.testpki", str(self.pki.workdir),
               "--port", str(self.pki.port)]
        if self.web_ui:
            cmd.append("--web-ui")
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestPKIError(
                    f"certomancer Animator subprocess exited with {self.proc.returncode}; "
                    f"log: {self._log.read_text('utf-8', 'replace')[-2000:]}"
                )
            try:
                with socket.create_connection((self.pki.host, self.pki.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TestPKIError(
            f"certomancer Animator subprocess did not listen on {self.pki.base_url} "
            f"within {timeout}s; log: {self._log.read_text('utf-8', 'replace')[-2000:]}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def serve(
    pki: TestPKI,
    *,
    mode: Literal["thread", "subprocess"] = "thread",
    timeout: float = 15.0,
    web_ui: bool = False,
    check: bool = True,
) -> Iterator[TestPKI]:
    """Serve TSA, OCSP, CRLs and the certificate repository on ``127.0.0.1:{pki.port}``.

    On entry the server is started and, with ``check``, every component is exercised once
    (CRL download, CA certificate fetch, an OCSP query for the seal, a timestamp request);
    a component that does not answer raises :class:`TestPKIError` naming it and its URL.
    The server is stopped on exit.
    """
    server: _ThreadedAnimator | _SubprocessAnimator
    if mode == "thread":
        server = _ThreadedAnimator(pki, web_ui=web_ui)
    elif mode == "subprocess":
        server = _SubprocessAnimator(pki, web_ui=web_ui)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    try:
        server.start(timeout)
        if check:
            check_services(pki, timeout=timeout)
        yield pki
    finally:
        server.stop()


def check_services(pki: TestPKI, *, timeout: float = 10.0) -> None:
    """Call each served component once; raise :class:`TestPKIError` naming the one that fails."""
    from asn1crypto import crl as asn1_crl

    def fetch(component: str, url: str, body: bytes | None = None, ctype: str = "") -> bytes:
        req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
        if ctype:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return bytes(resp.read())
        except (urllib.error.URLError, OSError) as e:
            raise TestPKIError(f"test PKI {component} at {url} did not answer: {e}") from e

    try:
        asn1_crl.CertificateList.load(fetch("CRL distribution point", pki.crl_url)).native  # noqa: B018
    except ValueError as e:
        raise TestPKIError(f"test PKI CRL at {pki.crl_url} returned garbage: {e}") from e
    ca_url = f"{pki.base_url}/{ARCH_LABEL}/certs/{_REPO_INTERMEDIATE}/ca.crt"
    if fetch("certificate repository (caIssuers)", ca_url) != pki.intermediate.dump():
        raise TestPKIError(
            f"test PKI certificate repository at {ca_url} serves a different intermediate "
            f"certificate than {pki.intermediate_cert_path}: is another PKI on port {pki.port}?"
        )
    status = ocsp_status(pki, pki.seal, timeout=timeout)
    if status != "good":
        raise TestPKIError(f"test PKI OCSP responder at {pki.ocsp_url} says {status} for the seal")
    ts_req = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(b"hsdt testpki probe").digest(),
            },
            "cert_req": True,
        }
    )
    raw = fetch("TSA", pki.tsa_url, ts_req.dump(), "application/timestamp-query")
    try:
        ts_status = tsp.TimeStampResp.load(raw)["status"]["status"].native
    except ValueError as e:
        raise TestPKIError(f"test PKI TSA at {pki.tsa_url} returned garbage: {e}") from e
    if ts_status not in ("granted", "granted_with_mods"):
        raise TestPKIError(f"test PKI TSA at {pki.tsa_url} answered status {ts_status}")


def ocsp_status(pki: TestPKI, ident: Identity, *, timeout: float = 10.0) -> str:
    """Ask the served OCSP responder about ``ident``: ``"good"``, ``"revoked"`` or ``"unknown"``.

    Does not verify the response signature; validators do that. Meant for tests and the demo.
    """
    issuer = ident.chain[0] if ident.chain else pki.intermediate
    cert_id = ocsp.CertId(
        {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha1"}),
            "issuer_name_hash": hashlib.sha1(issuer.subject.dump()).digest(),
            "issuer_key_hash": issuer.public_key.sha1,
            "serial_number": ident.cert.serial_number,
        }
    )
    req = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cert_id}]}})
    http_req = urllib.request.Request(
        pki.ocsp_url,
        data=req.dump(),
        method="POST",
        headers={"Content-Type": "application/ocsp-request"},
    )
    try:
        with urllib.request.urlopen(http_req, timeout=timeout) as resp:
            raw = resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise TestPKIError(f"test PKI OCSP responder at {pki.ocsp_url} did not answer: {e}") from e
    parsed = ocsp.OCSPResponse.load(raw)
    if parsed["response_status"].native != "successful":
        raise TestPKIError(
            f"test PKI OCSP responder at {pki.ocsp_url} answered {parsed['response_status'].native}"
        )
    single = parsed.basic_ocsp_response["tbs_response_data"]["responses"][0]
    return str(single["cert_status"].name)


def _serve_main(argv: Sequence[str]) -> None:
    """``python -m hsdt.signing.testpki WORKDIR``: serve a provisioned PKI until stopped.

    The subprocess mode of :func:`serve` runs this rather than certomancer's own CLI so that
    the responders keep their keys parsed (see :func:`_fast_certomancer_crypto`): the TSA
    then answers in a few milliseconds instead of ~30, and does not compete with the
    signing process for its interpreter lock.
    """
    from aiohttp import web
    from certomancer.integrations.aiohttp_animator import build_animator_app

    pki = load(Path(argv[0]))
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else pki.port
    with _fast_certomancer_crypto():
        app = build_animator_app(_load_archs(pki.workdir), with_web_ui="--web-ui" in argv)
        web.run_app(app, host=pki.host, port=port, access_log=None, print=None,
                    reuse_address=True, handle_signals=True)


if __name__ == "__main__":
    _serve_main(sys.argv[1:])
