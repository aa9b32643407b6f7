"""Signer backends behind one interface: a pyHanko ``Signer`` plus the certificate facts
that plan enforcement needs.

pyHanko already has the right primitive (``async_sign_raw``); a backend only decides where
the key lives. ``software`` keeps a PKCS#12 key in memory (demos and tests only);
``pkcs11`` reaches a token or HSM and the private key never leaves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsdt.domain.errors import SigningRefused

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


class SoftwareKeySigner(Signer):
    """A key held in memory, parsed once (pyHanko's SimpleSigner re-parses it per signature)."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
        super().__init__(signing_cert=cert, cert_registry=SimpleCertificateStore.from_certs(chain))
        self._key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False
                             ) -> bytes:
        algo = _HASHES[digest_algorithm.lower()]()
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algo)
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(algo))
        raise SigningError(f"Unsupported key type {type(self._key).__name__}")


@dataclass
class SigningKey:
    """One person's (or the school's) key, ready to sign many records."""

    backend: str  # "software" | "pkcs11"
    signer: Signer
    cert: x509.Certificate
    chain: list[x509.Certificate]
    _closer: Any = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def subject_name(self) -> str:
        name = self.cert.subject.native
        return str(name.get("common_name") or self.cert.subject.human_friendly)

    def close(self) -> None:
        if self._closer is not None:
            closer, self._closer = self._closer, None
            try:
                closer()
            except Exception as exc:
                # A PKCS#11 session already invalidated (the library was re-initialised, the
                # token removed) is as closed as it gets; anything else is a real error.
                if type(exc).__name__ not in ("SessionHandleInvalid", "SessionClosed",
                                              "CryptokiNotInitialised"):
                    raise

    def __enter__(self) -> SigningKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_software_key(p12_path: Path, passphrase: bytes | None) -> SigningKey:
    """Load a PKCS#12 file (demos and tests: production keys live on tokens or HSMs)."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(p12_path.read_bytes(), passphrase)
    except FileNotFoundError:
        raise SigningRefused(f"Không tìm thấy tệp khoá {p12_path}.", code="key_missing") from None
    except ValueError:
        raise SigningRefused(f"Không mở được tệp khoá {p12_path}: sai mật khẩu hoặc tệp hỏng.",
                             code="key_unreadable") from None
    if cert is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningRefused(f"Tệp {p12_path} không chứa khoá RSA/ECDSA kèm chứng thư.",
                             code="key_unreadable")
    as_asn1 = lambda c: x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))  # noqa: E731
    chain = [as_asn1(c) for c in extra or []]
    a_cert = as_asn1(cert)
    return SigningKey("software", SoftwareKeySigner(key, a_cert, chain), a_cert, chain)


_LOGINS: list[Any] = []
"""Sessions that logged in to a token; kept open so that the login lasts (see below)."""


def open_pkcs11_key(lib_path: str, token_label: str, pin: str, key_label: str,
                    cert: x509.Certificate, chain: list[x509.Certificate],
                    env: dict[str, str] | None = None) -> SigningKey:
    """Open a session on a token and sign with the key labelled ``key_label``.

    The certificate is given by the caller (the registry of bound certificates), so a token
    that holds the key but another certificate cannot slip a different identity in.
    """
    import pkcs11
    from pyhanko.sign.pkcs11 import PKCS11Signer

    for k, v in (env or {}).items():
        os.environ.setdefault(k, v)
    try:
        lib = pkcs11.lib(lib_path)
        token = lib.get_token(token_label=token_label)
        with contextlib.suppress(pkcs11.exceptions.UserAlreadyLoggedIn):
            _LOGINS.append(token.open(user_pin=pin))
        # Login is per application, not per session, and python-pkcs11 logs the whole
        # application out when a session that logged in is closed — which would invalidate
        # every other key of this process on the token (the seal and the principal on one
        # HSM, a service's seal and a worker's). So the session that logged in is kept for
        # the life of the process and each key works in a session of its own that joins the
        # logged-in state and closes without logging anybody out.
        session = token.open()
    except pkcs11.exceptions.NoSuchToken:
        raise SigningRefused(
            f"Không thấy thiết bị ký (token) «{token_label}». Hãy cắm token "
            "và kiểm tra đường dẫn thư viện PKCS#11.", code="token_missing") from None
    except pkcs11.exceptions.PinIncorrect:
        raise SigningRefused("Mã PIN của token không đúng.", code="pin_incorrect") from None
    except (pkcs11.exceptions.PKCS11Error, RuntimeError, OSError) as exc:
        raise SigningRefused(f"Không mở được token «{token_label}» ({lib_path}): {exc!r}",
                             code="token_error") from exc
    signer = PKCS11Signer(session, key_label=key_label, signing_cert=cert, ca_chain=chain)
    return SigningKey("pkcs11", signer, cert, chain, _closer=session.close)
