"""The CSC test double itself, exercised over HTTP with httpx (no product code involved).

One double (its own process and SoftHSM2 token) serves the module; each test starts from
``reset()``. Keys are the test PKI's: a teacher's RSA-2048 identity and the EC P-256
``ec_p256_ok`` identity, both from their PKCS#12 files. A missing component (softhsm2-util, the
SoftHSM2 module) makes the fixture raise with its name: these tests fail then, never skip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from hsdt.signing import testpki

from .csc_double import (
    E_BASE64_HASH,
    E_DIGEST_LENGTH,
    E_EMPTY_HASH,
    E_HASH_NOT_AUTHORIZED,
    E_INVALID_CREDENTIAL,
    E_INVALID_SAD,
    E_KEY_DISABLED,
    E_NUMSIG_TOO_HIGH,
    E_NUMSIG_VALUE,
    E_OTP,
    E_PIN,
    E_SAD_EXPIRED,
    ECDSA_WITH_SHA256,
    RSA_ENCRYPTION,
    SHA256_OID,
    SHA256_WITH_RSA,
    CredentialSpec,
    CscServer,
    CscServerError,
    P12Key,
    running_csc,
    start_csc,
)

USER, PASSWORD = "gv-001@truong", "mat-khau-1"
OTHER_USER, OTHER_PASSWORD = "gv-002@truong", "mat-khau-2"
RSA_ID, EC_ID, OFF_ID, OTHER_ID = "cred-rsa", "cred-ec", "cred-off", "cred-other"
RSA_PIN, EC_PIN, EC_OTP = "123456", "654321", "112233"
MULTISIGN = 50


def _software_people(world: Any) -> list[testpki.Identity]:
    people = [i for i in world.pki.people() if i.p12_path is not None]
    assert len(people) >= 2, "the test PKI should have at least two teachers with software keys"
    return people


@pytest.fixture(scope="module")
def server(world: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CscServer]:
    pki: testpki.TestPKI = world.pki
    first, second = _software_people(world)[:2]
    ec_ok = pki.identity("ec_p256_ok")
    assert ec_ok.p12_path is not None and first.p12_path is not None
    specs = [
        CredentialSpec.from_identity(first, credential_id=RSA_ID, user_id=USER, password=PASSWORD,
                                     pin=RSA_PIN),
        CredentialSpec(credential_id=EC_ID, user_id=USER, password=PASSWORD, pin=EC_PIN, otp=EC_OTP,
                       key=P12Key(ec_ok.p12_path, testpki.SOFTWARE_P12_PASSPHRASE),
                       cert=ec_ok.cert, chain=[c.dump() for c in ec_ok.chain], multisign=5),
        CredentialSpec(credential_id=OFF_ID, user_id=USER, password=PASSWORD, pin=RSA_PIN,
                       key=(first.p12_path, testpki.SOFTWARE_P12_PASSPHRASE),
                       status="disabled"),
        CredentialSpec.from_identity(second, credential_id=OTHER_ID, user_id=OTHER_USER,
                                     password=OTHER_PASSWORD, pin="0000"),
    ]
    before = os.environ.get("SOFTHSM2_CONF")
    with running_csc(tmp_path_factory.mktemp("csc"), specs, multisign=MULTISIGN) as srv:
        assert os.environ.get("SOFTHSM2_CONF") == before, "running_csc must not touch this process"
        yield srv


@pytest.fixture
def csc(server: CscServer) -> CscServer:
    server.reset()
    return server


# --- helpers ---------------------------------------------------------------------------------


def post(csc: CscServer, method: str, body: dict[str, Any] | None = None, *, version: int = 1,
         token: str | None = None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(csc.url(method, version), json=body if body is not None else {},
                      headers=headers, timeout=10, **kw)


def login(csc: CscServer, user: str = USER, password: str = PASSWORD, version: int = 1) -> str:
    r = post(csc, "auth/login", {"rememberMe": False}, version=version, auth=(user, password))
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert isinstance(token, str) and token
    return token


def digests(n: int, tag: str = "") -> list[bytes]:
    return [hashlib.sha256(f"học bạ {tag} {i}".encode()).digest() for i in range(n)]


def b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode("ascii") for h in items]


def refused(r: httpx.Response, status: int, error: str, description: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    if description is not None:
        assert body["error_description"] == description, body


def authorize_v1(csc: CscServer, token: str, cred: str, hs: list[bytes] | None, n: int | None = None,
                 pin: str = RSA_PIN, otp: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"credentialID": cred, "numSignatures": n if n is not None else len(hs or [])}
    if hs is not None:
        body["hash"] = b64(hs)
    body["PIN"] = pin
    if otp is not None:
        body["OTP"] = otp
    return post(csc, "credentials/authorize", body, token=token)


def sign_v1(csc: CscServer, token: str, cred: str, sad: str, hs: list[bytes],
            sign_algo: str = RSA_ENCRYPTION, client: httpx.Client | None = None) -> httpx.Response:
    body = {"credentialID": cred, "SAD": sad, "hash": b64(hs), "hashAlgo": SHA256_OID,
            "signAlgo": sign_algo}
    if client is not None:
        return client.post(csc.url("signatures/signHash"), json=body,
                           headers={"Authorization": f"Bearer {token}"})
    return post(csc, "signatures/signHash", body, token=token)


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


def verify(cert_b64: str, digest: bytes, signature: bytes) -> None:
    public = x509.load_der_x509_certificate(base64.b64decode(cert_b64)).public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def cert_of(csc: CscServer, token: str, cred: str) -> str:
    r = post(csc, "credentials/info", {"credentialID": cred}, token=token)
    assert r.status_code == 200, r.text
    certs: list[str] = r.json()["cert"]["certificates"]
    assert len(certs) == 1
    return certs[0]


# --- service, sessions ------------------------------------------------------------------------


def test_info_v1_and_v2_need_no_authentication(csc: CscServer) -> None:
    v1 = post(csc, "info")
    assert v1.status_code == 200
    assert v1.json()["specs"] == "1.0.4.0"
    assert v1.json()["authType"] == ["basic"]
    assert {"auth/login", "credentials/authorize", "signatures/signHash"} <= set(v1.json()["methods"])
    v2 = post(csc, "info", version=2)
    assert v2.json()["specs"] == "2.0.0.2"
    assert v2.json()["authType"] == ["basic", "oauth2client"]
    assert v2.json()["oauth2"] == csc.base_url
    assert httpx.get(csc.url("info"), timeout=10).status_code == 405
    assert post(csc, "credentials/nothing").status_code == 404
    assert httpx.post(f"{csc.base_url}/elsewhere", json={}, timeout=10).status_code == 404
    refused(post(csc, "info", {"lang": "vi-VN", "bogus": 1}), 400, "invalid_request",
            "Invalid parameter bogus")


def test_login_bearer_expiry_and_revoke(csc: CscServer) -> None:
    refused(post(csc, "auth/login", auth=(USER, "sai")), 400, "authentication_error")
    refused(post(csc, "auth/login", auth=("nobody", PASSWORD)), 400, "authentication_error")
    refused(post(csc, "auth/login"), 401, "invalid_request")
    token = login(csc)
    assert post(csc, "credentials/list", token=token).status_code == 200
    refused(post(csc, "credentials/list"), 401, "invalid_token")
    refused(post(csc, "credentials/list", {"bogus": 1}), 401, "invalid_token")  # authentication first
    refused(post(csc, "credentials/list", token="not-a-token"), 401, "invalid_token")
    malformed = httpx.post(csc.url("credentials/list"), content=b"{not json",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    refused(malformed, 400, "invalid_request")
    refused(post(csc, "credentials/list", {"maxResults": True}, token=token), 400, "invalid_request",
            "Invalid parameter maxResults")
    assert post(csc, "credentials/list", token=token, version=2).status_code == 200

    refused(post(csc, "auth/revoke", {}, token=token), 400, "invalid_request",
            "Missing (or invalid type) string parameter token")
    assert post(csc, "auth/revoke", {"token": token}, token=token).status_code == 204
    refused(post(csc, "credentials/list", token=token), 401, "invalid_token")

    token = login(csc)
    csc.expire_tokens()
    refused(post(csc, "credentials/list", token=token), 401, "invalid_token",
            "The access token is expired")

    remembered = post(csc, "auth/login", {"rememberMe": True}, auth=(USER, PASSWORD)).json()
    again = post(csc, "auth/login", {"refresh_token": remembered["refresh_token"]})
    assert again.status_code == 200
    assert post(csc, "credentials/list", token=again.json()["access_token"]).status_code == 200


def test_oauth2_client_credentials(csc: CscServer) -> None:
    form = {"grant_type": "client_credentials", "client_id": USER, "client_secret": PASSWORD}
    r = httpx.post(csc.oauth2_token_url, data=form, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    assert r.json()["expires_in"] == 3600
    token = r.json()["access_token"]
    assert post(csc, "credentials/list", token=token, version=2).json()["credentialIDs"] == [
        RSA_ID, EC_ID, OFF_ID]
    refused(httpx.post(csc.oauth2_token_url, data={**form, "client_secret": "sai"}, timeout=10),
            401, "invalid_client")
    refused(httpx.post(csc.oauth2_token_url, data={**form, "grant_type": "password"}, timeout=10),
            400, "unsupported_grant_type")
    refused(httpx.post(csc.oauth2_token_url, json=form, timeout=10), 400, "invalid_request")
    basic = httpx.post(csc.oauth2_token_url, data={"grant_type": "client_credentials"},
                       auth=(OTHER_USER, OTHER_PASSWORD), timeout=10)
    assert basic.status_code == 200, basic.text
    assert [e["api"] for e in csc.calls("oauth2/token")] == ["oauth2"] * 5


# --- credentials ------------------------------------------------------------------------------


def test_list_shows_only_the_owners_credentials(csc: CscServer) -> None:
    token, other = login(csc), login(csc, OTHER_USER, OTHER_PASSWORD)
    assert post(csc, "credentials/list", token=token).json() == {"credentialIDs": [RSA_ID, EC_ID, OFF_ID]}
    assert post(csc, "credentials/list", token=other).json() == {"credentialIDs": [OTHER_ID]}
    assert post(csc, "credentials/list", {"userID": USER}, token=token).status_code == 200
    refused(post(csc, "credentials/list", {"userID": OTHER_USER}, token=token), 400, "invalid_request")

    page1 = post(csc, "credentials/list", {"maxResults": 2}, token=token).json()
    assert page1["credentialIDs"] == [RSA_ID, EC_ID]
    page2 = post(csc, "credentials/list", {"maxResults": 2, "pageToken": page1["nextPageToken"]},
                 token=token).json()
    assert page2 == {"credentialIDs": [OFF_ID]}

    v2 = post(csc, "credentials/list", {"credentialInfo": True, "certificates": "chain", "authInfo": True,
                                        "onlyValid": True}, version=2, token=token).json()
    assert v2["credentialIDs"] == [RSA_ID, EC_ID]  # the disabled key is not valid for signing
    assert v2["onlyValid"] is True
    infos = {i["credentialID"]: i for i in v2["credentialInfos"]}
    assert [o["id"] for o in infos[EC_ID]["auth"]["objects"]] == ["PIN", "OTP"]
    assert [o["id"] for o in infos[RSA_ID]["auth"]["objects"]] == ["PIN"]
    assert len(infos[EC_ID]["cert"]["certificates"]) >= 2


def test_credential_info_v1(csc: CscServer, world: Any) -> None:
    token = login(csc)
    plain = post(csc, "credentials/info", {"credentialID": RSA_ID}, token=token).json()
    assert plain["key"] == {"status": "enabled", "algo": [RSA_ENCRYPTION, SHA256_WITH_RSA], "len": 2048}
    assert plain["authMode"] == "explicit"
    assert plain["multisign"] == MULTISIGN
    assert "PIN" not in plain and "OTP" not in plain and "issuerDN" not in plain["cert"]
    assert len(plain["cert"]["certificates"]) == 1
    first = _software_people(world)[0]
    assert base64.b64decode(plain["cert"]["certificates"][0]) == first.cert.dump()

    full = post(csc, "credentials/info", {"credentialID": EC_ID, "certificates": "chain",
                                          "certInfo": True, "authInfo": True}, token=token).json()
    ec_ok = world.pki.identity("ec_p256_ok")
    assert [base64.b64decode(c) for c in full["cert"]["certificates"]] == [
        ec_ok.cert.dump(), *[c.dump() for c in ec_ok.chain]]
    assert full["key"]["len"] == 256 and full["key"]["curve"] == "1.2.840.10045.3.1.7"
    assert ECDSA_WITH_SHA256 in full["key"]["algo"]
    assert full["cert"]["status"] == "valid"
    assert full["cert"]["serialNumber"] == format(ec_ok.cert.serial_number, "X")
    assert full["cert"]["validTo"].endswith("Z") and len(full["cert"]["validTo"]) == 15
    assert full["PIN"]["presence"] == "true"
    assert full["OTP"] == {"presence": "true", "type": "offline", "format": "N", "label": "OTP",
                           "ID": "hsdt-test-otp", "provider": "HSĐT test CSC", "description": "Mã OTP"}
    assert full["multisign"] == 5
    assert post(csc, "credentials/info", {"credentialID": RSA_ID, "authInfo": True},
                token=token).json()["OTP"] == {"presence": "false"}
    none = post(csc, "credentials/info", {"credentialID": RSA_ID, "certificates": "none"}, token=token)
    assert none.json()["cert"] == {"status": "valid"}

    for cred in (OTHER_ID, "no-such-credential"):
        refused(post(csc, "credentials/info", {"credentialID": cred}, token=token), 400,
                "invalid_request", E_INVALID_CREDENTIAL)
    refused(post(csc, "credentials/info", {}, token=token), 400, "invalid_request",
            "Missing (or invalid type) string parameter credentialID")
    refused(post(csc, "credentials/info", {"credentialID": RSA_ID, "certificates": "all"}, token=token),
            400, "invalid_request", "Invalid parameter certificates")


def test_credential_info_v2(csc: CscServer) -> None:
    token = login(csc, version=2)
    info = post(csc, "credentials/info", {"credentialID": EC_ID, "authInfo": True}, version=2,
                token=token).json()
    assert info["auth"]["mode"] == "explicit"
    assert info["auth"]["objects"] == [
        {"type": "Password", "id": "PIN", "format": "N", "label": "PIN", "description": "Mã PIN của khoá ký"},
        {"type": "Password", "id": "OTP", "format": "N", "label": "OTP", "description": "Mã OTP"}]
    assert "PIN" not in info and "authMode" not in info
    assert post(csc, "credentials/info", {"credentialID": OFF_ID}, version=2,
                token=token).json()["key"]["status"] == "disabled"


# --- authorize --------------------------------------------------------------------------------


def test_authorize_checks_pin_otp_and_counts(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(3)
    ok = authorize_v1(csc, token, RSA_ID, hs)
    assert ok.status_code == 200, ok.text
    assert ok.json()["expiresIn"] == 300 and ok.json()["SAD"]
    refused(authorize_v1(csc, token, RSA_ID, hs, pin="000000"), 400, "invalid_pin", E_PIN)
    refused(post(csc, "credentials/authorize", {"credentialID": RSA_ID, "numSignatures": 1}, token=token),
            400, "invalid_request", "Missing (or invalid type) string parameter PIN")
    refused(post(csc, "credentials/authorize", {"credentialID": RSA_ID, "numSignatures": 1, "PIN": 123456},
                 token=token), 400, "invalid_request", "Invalid parameter PIN")

    refused(authorize_v1(csc, token, EC_ID, hs, pin=EC_PIN), 400, "invalid_otp", E_OTP)
    refused(authorize_v1(csc, token, EC_ID, hs, pin=EC_PIN, otp="000000"), 400, "invalid_otp", E_OTP)
    refused(authorize_v1(csc, token, EC_ID, hs, pin="1", otp=EC_OTP), 400, "invalid_pin", E_PIN)
    assert authorize_v1(csc, token, EC_ID, hs, pin=EC_PIN, otp=EC_OTP).status_code == 200

    refused(authorize_v1(csc, token, RSA_ID, None, n=0), 400, "invalid_request", E_NUMSIG_VALUE)
    refused(authorize_v1(csc, token, RSA_ID, None, n=MULTISIGN + 1), 400, "invalid_request",
            E_NUMSIG_TOO_HIGH)
    refused(authorize_v1(csc, token, EC_ID, digests(6), pin=EC_PIN, otp=EC_OTP), 400, "invalid_request",
            E_NUMSIG_TOO_HIGH)  # the EC credential's own multisign is 5
    refused(post(csc, "credentials/authorize", {"credentialID": RSA_ID, "numSignatures": "2",
                                                "PIN": RSA_PIN}, token=token),
            400, "invalid_request", "Missing (or invalid type) integer parameter numSignatures")
    refused(authorize_v1(csc, token, RSA_ID, hs, n=4), 400, "invalid_request", "Invalid parameter hash")
    refused(authorize_v1(csc, token, RSA_ID, [b"short"]), 400, "invalid_request", E_DIGEST_LENGTH)
    refused(authorize_v1(csc, token, OFF_ID, hs), 400, "invalid_request", E_KEY_DISABLED)
    refused(authorize_v1(csc, token, OTHER_ID, hs, pin="0000"), 400, "invalid_request", E_INVALID_CREDENTIAL)
    # v2 names on the v1 endpoint are refused rather than silently ignored.
    refused(post(csc, "credentials/authorize", {"credentialID": RSA_ID, "numSignatures": 3,
                                                "hashes": b64(hs), "PIN": RSA_PIN}, token=token),
            400, "invalid_request", "Invalid parameter hashes")


def test_authorize_v2_auth_data(csc: CscServer) -> None:
    token = login(csc, version=2)
    hs = digests(2)

    def authorize(auth_data: Any, **extra: Any) -> httpx.Response:
        body = {"credentialID": EC_ID, "numSignatures": 2, "hashes": b64(hs),
                "hashAlgorithmOID": SHA256_OID, "authData": auth_data, **extra}
        return post(csc, "credentials/authorize", body, version=2, token=token)

    pin, otp = {"id": "PIN", "value": EC_PIN}, {"id": "OTP", "value": EC_OTP}
    assert authorize([pin, otp]).status_code == 200
    refused(authorize([{"id": "PIN", "value": "0"}, otp]), 400, "invalid_pin", E_PIN)
    refused(authorize([pin]), 400, "invalid_otp", E_OTP)
    refused(authorize([pin, {"id": "OTP", "value": "0"}]), 400, "invalid_otp", E_OTP)
    refused(authorize([pin, otp, {"id": "FACE", "value": "x"}]), 400, "invalid_request",
            "Invalid parameter authData")
    refused(authorize([pin, otp], hashAlgorithmOID="1.3.14.3.2.26"), 400, "invalid_request",
            "Invalid parameter hashAlgorithmOID")
    refused(post(csc, "credentials/authorize", {"credentialID": EC_ID, "numSignatures": 2,
                                                "hashes": b64(hs), "authData": [pin, otp]},
                 version=2, token=token),
            400, "invalid_request", "Missing (or invalid type) string parameter hashAlgorithmOID")
    refused(post(csc, "credentials/authorize", {"credentialID": EC_ID, "numSignatures": 2, "PIN": EC_PIN},
                 version=2, token=token), 400, "invalid_request", "Invalid parameter PIN")


# --- signHash ---------------------------------------------------------------------------------


def test_sign_hash_rsa_v1_signatures_verify(csc: CscServer) -> None:
    token = login(csc)
    cert = cert_of(csc, token, RSA_ID)
    hs = digests(3, "rsa")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    r = sign_v1(csc, token, RSA_ID, sad, hs[:2])
    assert r.status_code == 200, r.text
    signatures = [base64.b64decode(s) for s in r.json()["signatures"]]
    assert len(signatures) == 2
    for h, s in zip(hs[:2], signatures, strict=True):
        verify(cert, h, s)
    with pytest.raises(InvalidSignature):
        verify(cert, hs[1], signatures[0])  # same order as the request
    # sha256WithRSAEncryption implies the hash: hashAlgo may be left out.
    body = {"credentialID": RSA_ID, "SAD": sad, "hash": b64(hs[2:]), "signAlgo": SHA256_WITH_RSA}
    r = post(csc, "signatures/signHash", body, token=token)
    assert r.status_code == 200, r.text
    verify(cert, hs[2], base64.b64decode(r.json()["signatures"][0]))


def test_sign_hash_ec_v2_signatures_verify(csc: CscServer) -> None:
    token = login(csc, version=2)
    info = post(csc, "credentials/info", {"credentialID": EC_ID}, version=2, token=token).json()
    cert = info["cert"]["certificates"][0]
    hs = digests(4, "ec")
    r = post(csc, "credentials/authorize", {
        "credentialID": EC_ID, "numSignatures": 4, "hashes": b64(hs), "hashAlgorithmOID": SHA256_OID,
        "authData": [{"id": "PIN", "value": EC_PIN}, {"id": "OTP", "value": EC_OTP}]}, version=2, token=token)
    sad = r.json()["SAD"]
    body = {"credentialID": EC_ID, "SAD": sad, "hashes": b64(hs), "hashAlgorithmOID": SHA256_OID,
            "signAlgo": ECDSA_WITH_SHA256, "operationMode": "S"}
    r = post(csc, "signatures/signHash", body, version=2, token=token)
    assert r.status_code == 200, r.text
    signatures = [base64.b64decode(s) for s in r.json()["signatures"]]
    assert signatures[0][0] == 0x30, "ECDSA signatures are DER ECDSA-Sig-Value"
    for h, s in zip(hs, signatures, strict=True):
        verify(cert, h, s)
    refused(post(csc, "signatures/signHash", body | {"SAD": "x"}, version=2, token=token), 400,
            "invalid_request", E_INVALID_SAD)


def test_sign_hash_refuses_bad_parameters(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(2, "bad")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    base = {"credentialID": RSA_ID, "SAD": sad, "hash": b64(hs[:1]), "hashAlgo": SHA256_OID,
            "signAlgo": RSA_ENCRYPTION}
    cases: list[tuple[dict[str, Any], str]] = [
        (base | {"signAlgo": ECDSA_WITH_SHA256}, "Invalid parameter signAlgo"),
        (without(base, "signAlgo"), "Missing (or invalid type) string parameter signAlgo"),
        (without(base, "hashAlgo"), "Missing (or invalid type) string parameter hashAlgo"),
        (base | {"hashAlgo": "1.3.14.3.2.26"}, "Invalid parameter hashAlgo"),
        (base | {"hash": ["not base64!"]}, E_BASE64_HASH),
        (base | {"hash": b64([b"0" * 20])}, E_DIGEST_LENGTH),
        (base | {"hash": []}, E_EMPTY_HASH),
        (without(base, "hash"), "Missing (or invalid type) array parameter hash"),
        (without(base, "SAD"), "Missing (or invalid type) string parameter SAD"),
        (base | {"hashes": base["hash"]}, "Invalid parameter hashes"),
        (base | {"signAlgoParams": "AA=="}, "Invalid parameter signAlgoParams"),
    ]
    for body, description in cases:
        refused(post(csc, "signatures/signHash", body, token=token), 400, "invalid_request", description)
    # None of the refusals spent the SAD.
    assert sign_v1(csc, token, RSA_ID, sad, hs).status_code == 200
    assert all(e["status"] == 400 for e in csc.calls("signatures/signHash")[:-1])


def test_sad_is_bound_to_its_hashes_count_credential_and_user(csc: CscServer) -> None:
    token, other = login(csc), login(csc, OTHER_USER, OTHER_PASSWORD)
    hs = digests(3, "scope")
    sad = authorize_v1(csc, token, RSA_ID, hs[:2]).json()["SAD"]
    refused(sign_v1(csc, token, RSA_ID, sad, [hs[2]]), 400, "invalid_request", E_HASH_NOT_AUTHORIZED)
    refused(sign_v1(csc, token, RSA_ID, sad, [hs[0], hs[0]]), 400, "invalid_request", E_HASH_NOT_AUTHORIZED)
    refused(sign_v1(csc, other, OTHER_ID, sad, [hs[0]]), 400, "invalid_request", E_INVALID_SAD)
    refused(sign_v1(csc, other, RSA_ID, sad, [hs[0]]), 400, "invalid_request", E_INVALID_CREDENTIAL)
    assert sign_v1(csc, token, RSA_ID, sad, [hs[0]]).status_code == 200
    refused(sign_v1(csc, token, RSA_ID, sad, [hs[0]]), 400, "invalid_request", E_HASH_NOT_AUTHORIZED)
    assert sign_v1(csc, token, RSA_ID, sad, [hs[1]]).status_code == 200
    # Every authorised signature made: the SAD is gone.
    refused(sign_v1(csc, token, RSA_ID, sad, [hs[1]]), 400, "invalid_request", E_INVALID_SAD)

    # Without a hash list the SAD is good for numSignatures hashes, whichever they are.
    free = authorize_v1(csc, token, RSA_ID, None, n=2).json()["SAD"]
    refused(sign_v1(csc, token, RSA_ID, free, hs), 400, "invalid_request", E_HASH_NOT_AUTHORIZED)
    assert sign_v1(csc, token, RSA_ID, free, hs[:2]).status_code == 200
    refused(sign_v1(csc, token, RSA_ID, free, hs[2:]), 400, "invalid_request", E_INVALID_SAD)


def test_sad_expiry(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(1, "expiry")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    csc.expire_sads()
    refused(sign_v1(csc, token, RSA_ID, sad, hs), 400, "invalid_request", E_SAD_EXPIRED)

    csc.settings(sad_ttl_s=1)
    r = authorize_v1(csc, token, RSA_ID, hs)
    assert r.json()["expiresIn"] == 1
    time.sleep(1.2)
    refused(sign_v1(csc, token, RSA_ID, r.json()["SAD"], hs), 400, "invalid_request", E_SAD_EXPIRED)


def test_disabled_between_authorize_and_sign(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(1, "disable")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    csc.set_status(RSA_ID, "disabled")
    refused(sign_v1(csc, token, RSA_ID, sad, hs), 400, "invalid_request", E_KEY_DISABLED)
    csc.reset()
    token = login(csc)
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    assert sign_v1(csc, token, RSA_ID, sad, hs).status_code == 200


# --- observability and faults -----------------------------------------------------------------


def test_log_records_one_authorize_for_a_whole_batch(csc: CscServer) -> None:
    token = login(csc)
    post(csc, "credentials/list", token=token)
    post(csc, "credentials/info", {"credentialID": RSA_ID}, token=token)
    assert all(e["hashes"] == 0 for e in csc.log()), "no hash was sent yet"
    hs = digests(40, "batch")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    assert sign_v1(csc, token, RSA_ID, sad, hs).status_code == 200
    log = csc.log()
    assert [e["method"] for e in log] == ["auth/login", "credentials/list", "credentials/info",
                                          "credentials/authorize", "signatures/signHash"]
    authorize = csc.calls("credentials/authorize")
    assert [(e["credentialID"], e["numSignatures"], e["hashes"], e["status"]) for e in authorize] == [
        (RSA_ID, 40, 40, 200)]
    assert [(e["hashes"], e["status"]) for e in csc.calls("signatures/signHash")] == [(40, 200)]
    assert [e["seq"] for e in log] == [1, 2, 3, 4, 5]


def test_fail_next_then_success(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(1, "fault")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    csc.fail_next(2, status=503, methods=["signatures/signHash"])
    assert post(csc, "credentials/list", token=token).status_code == 200  # not a matching method
    for _ in range(2):
        refused(sign_v1(csc, token, RSA_ID, sad, hs), 503, "server_error")
    r = sign_v1(csc, token, RSA_ID, sad, hs)
    assert r.status_code == 200, r.text
    assert [(e["status"], e["fault"]) for e in csc.calls("signatures/signHash")] == [
        (503, True), (503, True), (200, False)]

    csc.fail_next(1)  # any method, HTTP 500
    refused(post(csc, "info"), 500, "server_error")
    assert post(csc, "info").status_code == 200


def test_dropped_connection_is_a_transport_error(csc: CscServer) -> None:
    token = login(csc)
    hs = digests(3, "drop")
    sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
    csc.drop_after_signatures(1)
    with httpx.Client(timeout=10) as client:
        assert sign_v1(csc, token, RSA_ID, sad, hs[:1], client=client).status_code == 200
        with pytest.raises(httpx.TransportError):
            sign_v1(csc, token, RSA_ID, sad, hs[1:2], client=client)
        # The dropped request did nothing: the same hash signs now, once.
        assert sign_v1(csc, token, RSA_ID, sad, hs[1:2], client=client).status_code == 200
    assert [(e["status"], e["dropped"]) for e in csc.calls("signatures/signHash")] == [
        (200, False), (0, True), (200, False)]

    # drop_consumes: the provider signed and spent the SAD, only the answer was lost.
    csc.drop_after_signatures(0, consumes=True)
    with pytest.raises(httpx.TransportError):
        sign_v1(csc, token, RSA_ID, sad, hs[2:])
    refused(sign_v1(csc, token, RSA_ID, sad, hs[2:]), 400, "invalid_request", E_INVALID_SAD)


def test_restart_forgets_sessions(csc: CscServer) -> None:
    token = login(csc)
    csc.restart()
    try:
        assert csc.running
        refused(post(csc, "credentials/list", token=token), 401, "invalid_token")
        token = login(csc)
        hs = digests(1, "restart")
        sad = authorize_v1(csc, token, RSA_ID, hs).json()["SAD"]
        assert sign_v1(csc, token, RSA_ID, sad, hs).status_code == 200  # the token's keys survived
    finally:
        csc.reset()


def test_a_certificate_that_does_not_match_its_key_is_refused(world: Any, tmp_path: Path) -> None:
    first, second = _software_people(world)[:2]
    assert first.p12_path is not None
    spec = CredentialSpec(credential_id="mismatch", user_id=USER, password=PASSWORD, pin=RSA_PIN,
                          key=P12Key(first.p12_path, testpki.SOFTWARE_P12_PASSPHRASE), cert=second.cert)
    with pytest.raises(CscServerError, match="mismatch: the certificate does not match"):
        start_csc(tmp_path, [spec])
