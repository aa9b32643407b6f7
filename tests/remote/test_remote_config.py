"""Remote-signing configuration and the CSC client on its own: what an administrator writes,
what the service refuses at start, and the CSC v2 OAuth2 / EC path that the class tests
(CSC v1/v2 with HTTP Basic, RSA) do not take."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from hsdt.service.config import ServiceConfigError, _remote_signing
from hsdt.signing.remote.common import RemoteSigningError
from hsdt.signing.remote.csc import CscClient
from hsdt.signing.remote.providers import CscProviderConfig, SmartCaProviderConfig, load_config

from .csc_double import CredentialSpec, running_csc

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "remote_signing.example.toml"


def test_the_example_configuration_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg.get("mysign"), CscProviderConfig) and cfg.get("mysign").csc_version == 1
    smartca = cfg.get("smartca")
    assert isinstance(smartca, SmartCaProviderConfig) and smartca.poll_max_interval_s == 60
    with pytest.raises(RemoteSigningError, match=r"Không có .* «viettel» \(có: mysign, smartca\)"):
        cfg.get("viettel")


def test_a_secret_is_read_from_the_variable_the_file_names(monkeypatch: pytest.MonkeyPatch) -> None:
    smartca = load_config(EXAMPLE).get("smartca")
    assert isinstance(smartca, SmartCaProviderConfig)
    monkeypatch.delenv("HSDT_SMARTCA_SP_PASSWORD", raising=False)
    with pytest.raises(RemoteSigningError, match="HSDT_SMARTCA_SP_PASSWORD"):
        smartca.provider("smartca")
    monkeypatch.setenv("HSDT_SMARTCA_SP_PASSWORD", "x")
    monkeypatch.setenv("HSDT_SMARTCA_CALLBACK_SECRET", "y")
    smartca.provider("smartca").close()


@pytest.mark.parametrize(("text", "named"), [
    ('[providers.a]\nkind = "csc"\ndisplay_name = "A"\nbase_url = "ftp://x"\n', "providers.a.csc.base_url"),
    ('[providers.a]\nkind = "csc"\ndisplay_name = "A"\nbase_url = "https://x"\ncsc_version = 3\n',
     "csc_version"),
    ('[providers.a]\nkind = "pigeon"\n', "providers.a"),
    ('[providers.a]\nkind = "smartca"\ndisplay_name = "A"\nbase_url = "https://x"\nsp_id = "s"\n',
     "sp_password_env"),
    ("[providers.a\n", "không phải TOML hợp lệ"),
])
def test_a_wrong_file_stops_the_service_naming_what_is_wrong(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "remote.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ServiceConfigError, match="HSDT_REMOTE_SIGNING") as err:
        _remote_signing({"HSDT_REMOTE_SIGNING": str(path)})
    assert named in str(err.value)
    with pytest.raises(ServiceConfigError, match="Không tìm thấy"):
        _remote_signing({"HSDT_REMOTE_SIGNING": str(tmp_path / "absent.toml")})
    assert _remote_signing({}).providers == {}


def test_csc_v2_with_oauth2_client_credentials_and_an_ec_key(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ident = world.pki.identity("ec_p256_ok")
    spec = CredentialSpec.from_identity(ident, credential_id="ec-1", user_id="hsdt-school", password="s3cret",
                                        pin="1234")
    digests = [hashlib.sha256(f"hồ sơ {i}".encode()).digest() for i in range(5)]
    with running_csc(tmp_path, [spec]) as csc, CscClient(csc.base_url, version=2, auth="oauth2_client") as c:
        assert str(c.info()["specs"]).startswith("2.")  # the service answers as CSC v2
        with pytest.raises(RemoteSigningError):
            c.login("hsdt-school", "wrong")
        c.login("hsdt-school", "s3cret")
        assert c.list_credentials() == ["ec-1"]
        cred = c.credential("ec-1")
        assert cred.fingerprint == ident.fingerprint_sha256 and cred.cert.public_key.algorithm == "ec"
        assert not cred.needs_otp
        sad = c.authorize("ec-1", digests, "1234")
        values = c.sign_hashes("ec-1", sad, digests, "ec")
        key = x509.load_der_x509_certificate(ident.cert.dump()).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        for digest, value in zip(digests, values, strict=True):
            key.verify(value, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        assert [e["api"] for e in csc.calls("signatures/signHash")] == ["v2"]
