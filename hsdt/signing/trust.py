"""Trust anchors and certificates from files (PEM or DER)."""

from __future__ import annotations

from pathlib import Path

from asn1crypto import pem, x509

from hsdt.domain.errors import UnusableInput, os_reason
from hsdt.settings import config_dir


def load_cert(path: Path) -> x509.Certificate:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnusableInput(f"Không đọc được chứng thư {path}: {os_reason(exc)}.") from None
    if pem.detect(raw):
        _, _, raw = pem.unarmor(raw)
    try:
        cert = x509.Certificate.load(raw)
        cert.native  # noqa: B018 — force a full parse so a bad file fails here
    except ValueError as exc:
        raise UnusableInput(f"Tệp {path} không phải chứng thư X.509: {exc}") from None
    return cert


def load_trust_roots(extra: list[Path]) -> list[x509.Certificate]:
    """The configured anchors (config/trust/*.pem) plus any given explicitly."""
    paths = sorted((config_dir() / "trust").glob("*.pem")) + list(extra)
    return [load_cert(p) for p in paths]
