"""The Fulcio-compatible CA over HTTP: issuance, identities, refusals, the certificate log.

Every test goes through the Flask test client (or, for concurrency, a real
gunicorn server) with real keys and real signatures: the tokens come from the
built-in development issuer (trusted in-process, so nothing is fetched over
HTTP), the CSRs and proofs of possession are signed with fresh keys, and the
checks on what comes back (chain signatures, DER UTF8Strings, SCTs, checkpoint
signatures, tile hashes) are done here, independently of the server's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

import speclient
from conftest import LiveServer, free_port
from tlog.config import Settings

#: The dev issuer's ``iss`` follows the public URL; nothing listens there and
#: nothing needs to: the app trusts the dev issuer's keys in-process.
PUBLIC_URL = "http://127.0.0.1:1"
DEV_EMAIL_ISSUER = PUBLIC_URL + "/oidc"
DEV_GITHUB_ISSUER = PUBLIC_URL + "/oidc/github"

SIGNING_CERT = "/api/v2/signingCert"
FULCIO_ARC = "1.3.6.1.4.1.57264.1."
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    """Overrides conftest's ``app``: the CA with the dev issuer trusted in-process."""
    from tlog.api.app import create_app

    app = create_app(settings.replace(dev_oidc=True, public_url=PUBLIC_URL))
    yield app
    app.extensions["tlog"].engine.dispose()


@pytest.fixture
def dev(app):  # type: ignore[no-untyped-def]
    issuer = app.extensions["tlog"].ca.dev_issuer
    assert issuer is not None
    assert issuer.email_issuer == DEV_EMAIL_ISSUER and issuer.github_issuer == DEV_GITHUB_ISSUER
    return issuer


# --- request building -------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: Any, algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    """A CSR as sigstore-python builds it: empty subject, BasicConstraints CA:FALSE (critical)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, algorithm or hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_body(key: Any) -> dict[str, Any]:
    return {"certificateSigningRequest": b64(csr_pem(key))}


def public_key_pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pkr_body(key: ec.EllipticCurvePrivateKey, challenge: str) -> dict[str, Any]:
    proof = key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))
    return {"publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": public_key_pem(key)}, "proofOfPossession": b64(proof)}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_credentials(body: dict[str, Any], token: str) -> dict[str, Any]:
    return {"credentials": {"oidcIdentityToken": token}, **body}


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def hand_made_jwt(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    return signing_input.decode() + "." + b64url(sign(signing_input))


# --- response checking ------------------------------------------------------------------


def chain_of(resp: Any) -> list[x509.Certificate]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    pems = resp.get_json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def issue(client, token: str, key: Any | None = None) -> list[x509.Certificate]:  # type: ignore[no-untyped-def]
    return chain_of(client.post(SIGNING_CERT, json=csr_body(key or p256()), headers=bearer(token)))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """``cert``'s signature verifies with ``issuer``'s (ECDSA) public key; raises otherwise."""
    public_key = issuer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    assert cert.issuer == issuer.subject


def decode_der_utf8string(value: bytes) -> str:
    """An ASN.1 UTF8String in DER, decoded by hand: tag 0x0C, minimal definite length, UTF-8."""
    assert value[0] == 0x0C, f"tag {value[0]:#04x} is not UTF8String"
    first = value[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        assert 1 <= count <= 4 and value[2] != 0, "non-minimal long-form length"
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
        assert length >= 0x80, "long form used for a short length"
    assert len(value) == offset + length, "length does not cover exactly the contents"
    return value[offset:].decode("utf-8")


def fulcio_extensions(cert: x509.Certificate) -> dict[str, bytes]:
    """``{dotted OID: extnValue}`` of the Fulcio-arc extensions, all of which must be non-critical."""
    out = {}
    for ext in cert.extensions:
        if ext.oid.dotted_string.startswith(FULCIO_ARC):
            assert not ext.critical, ext.oid.dotted_string
            assert isinstance(ext.value, x509.UnrecognizedExtension)
            out[ext.oid.dotted_string] = ext.value.value
    return out


def check_sct(leaf: x509.Certificate, intermediate: x509.Certificate, ct_spki: bytes) -> None:
    """Exactly one embedded SCT, from the CT key, whose signature covers the precertificate (RFC 6962 §3.2)."""
    sct_ext = leaf.extensions.get_extension_for_oid(SCT_LIST_OID)
    assert not sct_ext.critical
    scts = list(sct_ext.value)
    assert len(scts) == 1
    (sct,) = scts
    assert sct.log_id == hashlib.sha256(ct_spki).digest()
    assert sct.entry_type == x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE
    tbs = leaf.tbs_precertificate_bytes
    # Integer arithmetic: a float round trip can be off by a millisecond.
    timestamp_ms = (sct.timestamp.replace(tzinfo=timezone.utc) - EPOCH) // timedelta(milliseconds=1)
    signed = (
        b"\x00\x00"  # v1, certificate_timestamp
        + struct.pack(">Q", timestamp_ms)
        + b"\x00\x01"  # precert_entry
        + hashlib.sha256(spki(intermediate.public_key())).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + len(sct.extension_bytes).to_bytes(2, "big")
        + sct.extension_bytes
    )
    ct_key = serialization.load_der_public_key(ct_spki)
    assert isinstance(ct_key, ec.EllipticCurvePublicKey)
    ct_key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))


def check_leaf_profile(chain: list[x509.Certificate], app) -> x509.Certificate:  # type: ignore[no-untyped-def]
    """The Fulcio profile every leaf must have; returns the leaf."""
    assert len(chain) == 3
    leaf, intermediate, root = chain
    check_signed_by(leaf, intermediate)
    check_signed_by(intermediate, root)
    check_signed_by(root, root)
    assert leaf.subject == x509.Name([])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    now = datetime.now(timezone.utc)
    assert now - timedelta(seconds=60) <= leaf.not_valid_before_utc <= now + timedelta(seconds=1)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is True
    assert len(list(san.value)) == 1
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical is False
    assert list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.value.digital_signature and not ku.value.key_cert_sign
    bc = intermediate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    check_sct(leaf, intermediate, app.extensions["tlog"].ca.keys.ct_public_key_der)
    return leaf


# --- certificate-log state --------------------------------------------------------------


def log_state(app, client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What a refusal must not change: the certificate checkpoint and every table's row count."""
    resp = client.get("/certificates/checkpoint")
    assert resp.status_code == 200
    engine = app.extensions["tlog"].engine
    with engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("trees", "entries", "nodes", "tree_heads", "search_index")
        }
    return {"checkpoint": resp.get_data(as_text=True), "counts": counts}


def ct_log_key(app) -> speclient.LogKey:  # type: ignore[no-untyped-def]
    """The CT key as ``tlog trust-config`` publishes it: the ctlogs[0] key whose SPKI hash is its logId."""
    from tlog.trustconfig import client_trust_config

    svc = app.extensions["tlog"]
    config = client_trust_config("http://127.0.0.1:1", svc.shards, svc.ca.keys, operator="test")
    ctlog = config["trustedRoot"]["ctlogs"][0]
    raw = base64.b64decode(ctlog["publicKey"]["rawBytes"])
    assert hashlib.sha256(raw).digest() == base64.b64decode(ctlog["logId"]["keyId"])
    assert raw == svc.ca.keys.ct_public_key_der
    key = serialization.load_der_public_key(raw)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return speclient.LogKey(key)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from(">H", data, offset)
        out.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    assert offset == len(data)
    return out


# --- 1. both request forms ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["csr", "publicKeyRequest"])
@pytest.mark.parametrize("token_in", ["authorization", "credentials"])
def test_issuance_request_forms(app, client, dev, form: str, token_in: str) -> None:  # type: ignore[no-untyped-def]
    email = "alice@example.com"
    token = dev.mint(email)
    key = p256()
    body = csr_body(key) if form == "csr" else pkr_body(key, email)
    if token_in == "authorization":
        resp = client.post(SIGNING_CERT, json=body, headers=bearer(token))
    else:
        resp = client.post(SIGNING_CERT, json=with_credentials(body, token))
    chain = chain_of(resp)
    leaf = check_leaf_profile(chain, app)
    # The certified key is ours, the identity is the token's e-mail.
    assert spki(leaf.public_key()) == spki(key.public_key())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [email]
    ext = fulcio_extensions(leaf)
    assert ext[FULCIO_ARC + "1"] == DEV_EMAIL_ISSUER.encode()
    assert decode_der_utf8string(ext[FULCIO_ARC + "8"]) == DEV_EMAIL_ISSUER
    assert decode_der_utf8string(ext[FULCIO_ARC + "24"]) == email
    assert set(ext) == {FULCIO_ARC + "1", FULCIO_ARC + "8", FULCIO_ARC + "24"}


def test_public_key_request_for_github_identity_proves_sub(app, client, dev) -> None:  # type: ignore[no-untyped-def]
    """For a non-email identity the proof of possession signs the token's ``sub``."""
    token = dev.mint("octo-org/octo-repo", type="github")
    sub = unverified_claims(token)["sub"]
    key = p256()
    leaf = check_leaf_profile(chain_of(client.post(SIGNING_CERT, json=pkr_body(key, sub), headers=bearer(token))), app)
    assert spki(leaf.public_key()) == spki(key.public_key())
    # Signing the e-mail-style challenge (or anything but sub) is refused.
    resp = client.post(SIGNING_CERT, json=pkr_body(key, "octo-org/octo-repo"), headers=bearer(token))
    assert resp.status_code == 400 and "proofOfPossession" in resp.get_json()["message"]


# --- 2. GitHub Actions identity -----------------------------------------------------------


GITHUB_EXTRA = {
    "ref": "refs/tags/v1.2.3",
    "environment": "release",
    "event_name": "workflow_dispatch",
    "run_id": "9876543210",
    "run_attempt": "2",
    "runner_environment": "self-hosted",
    "repository_visibility": "private",
    # A reusable workflow in another repository, long enough that its DER
    # UTF8String needs the long-form length (> 127 bytes).
    "job_workflow_ref": "octo-org/shared-release-workflows/.github/workflows/"
    + "build-sign-and-publish-python-distributions-with-provenance.yml@refs/tags/v1.2.3",
    "job_workflow_sha": "0123456789abcdef0123456789abcdef01234567",
    # Distinct from sha and job_workflow_sha, so a swapped mapping shows.
    "workflow_sha": "fedcba9876543210fedcba9876543210fedcba98",
    "workflow": "Release pipeline",
}


def expected_github_extensions(claims: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Fulcio's mapping (config/identity/config.yaml), written out: (raw .1.1-.1.6, DER .1.8-.1.24)."""
    gh = "https://github.com/"
    raw = {
        "1": claims["iss"],
        "2": claims["event_name"],
        "3": claims["sha"],
        "4": claims["workflow"],
        "5": claims["repository"],
        "6": claims["ref"],
    }
    der = {
        "8": claims["iss"],
        "9": gh + claims["job_workflow_ref"],
        "10": claims["job_workflow_sha"],
        "11": claims["runner_environment"],
        "12": gh + claims["repository"],
        "13": claims["sha"],
        "14": claims["ref"],
        "15": claims["repository_id"],
        "16": gh + claims["repository_owner"],
        "17": claims["repository_owner_id"],
        "18": gh + claims["workflow_ref"],
        "19": claims["workflow_sha"],
        "20": claims["event_name"],
        "21": f"{gh}{claims['repository']}/actions/runs/{claims['run_id']}/attempts/{claims['run_attempt']}",
        "22": claims["repository_visibility"],
        "24": claims["sub"],
    }
    if claims.get("environment"):
        der["23"] = claims["environment"]
    return raw, der


@pytest.mark.parametrize("extra", [GITHUB_EXTRA, {}], ids=["tag-environment-reusable", "defaults"])
def test_github_actions_extensions(app, client, dev, extra: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    token = dev.mint("octo-org/octo-repo", type="github", extra_claims=extra)
    claims = unverified_claims(token)
    assert claims["iss"] == DEV_GITHUB_ISSUER
    leaf = check_leaf_profile(issue(client, token), app)

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["https://github.com/" + claims["job_workflow_ref"]]
    assert san.get_values_for_type(x509.RFC822Name) == []

    ext = fulcio_extensions(leaf)
    raw, der_values = expected_github_extensions(claims)
    for n, value in raw.items():
        assert ext[FULCIO_ARC + n] == value.encode("utf-8"), f".1.{n}"
    for n, value in der_values.items():
        assert decode_der_utf8string(ext[FULCIO_ARC + n]) == value, f".1.{n}"
    assert set(ext) == {FULCIO_ARC + n for n in (*raw, *der_values)}
    if extra:
        assert len(ext[FULCIO_ARC + "9"]) > 2 + 127 and ext[FULCIO_ARC + "9"][1] == 0x81  # long form exercised
        assert claims["ref"] == "refs/tags/v1.2.3" and claims["sub"] == "repo:octo-org/octo-repo:environment:release"
    else:
        assert FULCIO_ARC + "23" not in ext  # no environment claim: no .1.23


# --- 3. refusals ----------------------------------------------------------------------------


def _forged(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    claims = unverified_claims(dev.mint("alice@example.com"))
    token = jwt.encode(claims, p256(), algorithm="ES256", headers={"kid": dev.kid, "typ": "JWT"})
    return {"json": csr_body(p256()), "headers": bearer(token)}


def _alg_none(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    claims = unverified_claims(dev.mint("alice@example.com"))
    token = hand_made_jwt({"alg": "none", "typ": "JWT", "kid": dev.kid}, claims, lambda _: b"")
    return {"json": csr_body(p256()), "headers": bearer(token)}


def _hs256_public_key_secret(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    claims = unverified_claims(dev.mint("alice@example.com"))
    secret = public_key_pem(dev.key).encode()
    token = hand_made_jwt(
        {"alg": "HS256", "typ": "JWT", "kid": dev.kid}, claims, lambda msg: hmac.new(secret, msg, hashlib.sha256).digest()
    )
    return {"json": csr_body(p256()), "headers": bearer(token)}


def _token(**mint: Any) -> Callable[[Any], dict[str, Any]]:
    """A CSR request with a dev token minted with ``mint``; callables among the values are called
    at request time (so times are relative to the test, not to collection)."""

    def build(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        args = {k: v() if callable(v) else v for k, v in mint.items()}
        return {"json": csr_body(p256()), "headers": bearer(dev.mint("alice@example.com", **args))}

    return build


def _unlisted_issuer(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {
        "iss": "https://unlisted.example.com",
        "sub": "alice@example.com",
        "email": "alice@example.com",
        "email_verified": True,
        "aud": "sigstore",
        "iat": now,
        "exp": now + 600,
    }
    token = jwt.encode(claims, p256(), algorithm="ES256", headers={"kid": "some-key"})
    return {"json": csr_body(p256()), "headers": bearer(token)}


def _tampered_csr(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    csr = x509.load_pem_x509_csr(csr_pem(p256()))
    raw = bytearray(csr.public_bytes(serialization.Encoding.DER))
    # The DER ends with the ECDSA signature's s INTEGER: flipping its last bit
    # keeps the structure and breaks the signature.
    raw[-1] ^= 0x01
    broken = x509.load_der_x509_csr(bytes(raw))
    assert not broken.is_signature_valid
    pem = broken.public_bytes(serialization.Encoding.PEM)
    return {"json": {"certificateSigningRequest": b64(pem)}, "headers": bearer(dev.mint("alice@example.com"))}


def _csr_with_key(make_key: Callable[[], Any]) -> Callable[[Any], dict[str, Any]]:
    def build(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"json": csr_body(make_key()), "headers": bearer(dev.mint("alice@example.com"))}

    return build


def _pop_signs_other(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"json": pkr_body(p256(), "mallory@example.com"), "headers": bearer(dev.mint("alice@example.com"))}


def _both_forms(dev) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    key = p256()
    body = {**csr_body(key), **pkr_body(key, "alice@example.com")}
    return {"json": body, "headers": bearer(dev.mint("alice@example.com"))}


REFUSALS: list[tuple[str, Callable[[Any], dict[str, Any]], int, str]] = [
    # (id, request builder(dev) -> client.post kwargs, status, words the message must contain)
    ("forged-signature", _forged, 401, "signature invalid"),
    ("alg-none", _alg_none, 401, "algorithm none not allowed"),
    ("hs256-public-key-as-secret", _hs256_public_key_secret, 401, "HMAC algorithms are not allowed"),
    ("expired", _token(issued_at=lambda: time.time() - 3600, lifetime=600), 401, "expired"),
    ("nbf-in-future", _token(extra_claims=lambda: {"nbf": int(time.time()) + 3600}), 401, "nbf"),
    ("iat-in-future", _token(issued_at=lambda: time.time() + 3600), 401, "issued in the future"),
    ("wrong-audience", _token(audience="not-sigstore"), 401, "audience"),
    ("unlisted-issuer", _unlisted_issuer, 403, "issuer https://unlisted.example.com is not allowed"),
    ("email-not-verified", _token(extra_claims={"email_verified": False}), 403, "email not verified"),
    ("missing-token", lambda dev: {"json": csr_body(p256())}, 401, "no OIDC identity token"),
    ("malformed-authorization", lambda dev: {"json": csr_body(p256()), "headers": {"Authorization": "Basic YWxpY2U6cHc="}}, 401, "Authorization header"),
    ("empty-bearer", lambda dev: {"json": csr_body(p256()), "headers": {"Authorization": "Bearer "}}, 401, "Authorization header"),
    ("garbage-token", lambda dev: {"json": csr_body(p256()), "headers": bearer("this-is-not-a-jwt")}, 401, "malformed token"),
    ("garbage-token-three-parts", lambda dev: {"json": csr_body(p256()), "headers": bearer("abc.def.ghi")}, 401, "malformed token"),
    ("csr-bad-self-signature", _tampered_csr, 400, "signature is invalid"),
    ("csr-rsa-1024", _csr_with_key(lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024)), 400, "RSA-1024"),
    ("csr-secp256k1", _csr_with_key(lambda: ec.generate_private_key(ec.SECP256K1())), 400, "secp256k1"),
    ("pop-signs-something-else", _pop_signs_other, 400, "proofOfPossession does not verify"),
    ("both-forms", _both_forms, 400, "not both"),
    ("neither-form", lambda dev: {"json": {}, "headers": bearer(dev.mint("alice@example.com"))}, 400, "needs certificateSigningRequest or publicKeyRequest"),
    ("unknown-field", lambda dev: {"json": {**csr_body(p256()), "extra": 1}, "headers": bearer(dev.mint("alice@example.com"))}, 400, "unknown field(s) in signing request: extra"),
    ("body-not-json", lambda dev: {"data": b"certificateSigningRequest=abc", "content_type": "application/json", "headers": bearer(dev.mint("alice@example.com"))}, 400, "not valid JSON"),
    ("body-not-object", lambda dev: {"json": [csr_body(p256())], "headers": bearer(dev.mint("alice@example.com"))}, 400, "object"),
]  # fmt: skip


@pytest.mark.parametrize(("builder", "status", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_reason_and_change_nothing(app, client, dev, builder, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    # One good issuance first, so "unchanged" is checked against a non-empty log.
    issue(client, dev.mint("seed@example.com"))
    before = log_state(app, client)
    assert before["checkpoint"].split("\n")[1] == "1"

    resp = client.post(SIGNING_CERT, **builder(dev))
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert 400 <= resp.status_code < 500
    body = resp.get_json()
    assert set(body) == {"code", "message"}
    assert body["code"] == status
    assert words in body["message"], body["message"]
    assert log_state(app, client) == before


# --- 4. an issuer that is down --------------------------------------------------------------


def test_unreachable_issuer_fails_closed(settings: Settings, tmp_path: Path) -> None:
    from tlog.api.app import create_app

    port = free_port()  # bound and released: nothing listens there
    issuer = f"http://127.0.0.1:{port}"
    issuers_file = tmp_path / "issuers.yaml"
    issuers_file.write_text(f"issuers:\n  - url: {issuer}\n    type: email\n")
    app = create_app(settings.replace(oidc_issuers=issuers_file))
    try:
        client = app.test_client()
        assert [i["issuerUrl"] for i in client.get("/api/v2/configuration").get_json()["issuers"]] == [issuer]
        before = log_state(app, client)
        now = int(time.time())
        claims = {"iss": issuer, "sub": "alice@example.com", "email": "alice@example.com", "email_verified": True,
                  "aud": "sigstore", "iat": now, "exp": now + 600}  # fmt: skip
        token = jwt.encode(claims, p256(), algorithm="ES256", headers={"kid": "k1"})
        for _ in range(2):  # the second answer comes from the remembered failure, still 503
            resp = client.post(SIGNING_CERT, json=csr_body(p256()), headers=bearer(token))
            assert resp.status_code == 503, resp.get_data(as_text=True)
            body = resp.get_json()
            assert body["code"] == 503
            assert issuer in body["message"] and "unavailable" in body["message"], body["message"]
            assert int(resp.headers["Retry-After"]) >= 1
        assert log_state(app, client) == before
    finally:
        app.extensions["tlog"].engine.dispose()


# --- 5. the certificate log ------------------------------------------------------------------


def test_certificate_log_holds_exactly_the_issued_certificates(app, client, dev) -> None:  # type: ignore[no-untyped-def]
    key = ct_log_key(app)
    empty = speclient.verify_checkpoint(client.get("/certificates/checkpoint").get_data(as_text=True), key)
    assert empty.size == 0

    leaves: list[bytes] = []
    tokens = [
        dev.mint("alice@example.com"),
        dev.mint("octo-org/octo-repo", type="github"),
        dev.mint("bob@example.com"),
        dev.mint("octo-org/other-repo", type="github", extra_claims={"environment": "prod"}),
        dev.mint("carol@example.com"),
    ]
    for i, token in enumerate(tokens):
        k = p256()
        if i % 2:
            claims = unverified_claims(token)
            challenge = claims["email"] if "email" in claims else claims["sub"]
            chain = chain_of(client.post(SIGNING_CERT, json=with_credentials(pkr_body(k, challenge), token)))
        else:
            chain = issue(client, token, k)
        leaves.append(der(chain[0]))
    n = len(leaves)

    resp = client.get("/certificates/checkpoint")
    assert resp.headers["Content-Type"].startswith("text/plain")
    cp = speclient.verify_checkpoint(resp.get_data(as_text=True), key)
    assert cp.origin == "test.example/log/certificates"
    assert cp.size == n
    # The signature line is named after the origin.
    assert resp.get_data(as_text=True).split("\n\n")[1].startswith(f"\u2014 {cp.origin} ")

    bundle = client.get(f"/certificates/tile/entries/000.p/{n}")
    assert bundle.status_code == 200
    assert parse_entry_bundle(bundle.data) == leaves

    tile = client.get(f"/certificates/tile/0/000.p/{n}")
    assert tile.status_code == 200
    leaf_hashes = [speclient.leaf_hash(d) for d in leaves]
    assert tile.data == b"".join(leaf_hashes)
    assert speclient.root_of(leaf_hashes) == cp.root

    # The tile for one more entry does not exist yet; the entry log is untouched.
    assert client.get(f"/certificates/tile/entries/000.p/{n + 1}").status_code == 404
    assert client.get("/checkpoint").get_data(as_text=True).split("\n")[1] == "0"

    # Nothing serves certificates as Rekor LogEntries, so none was given a SET.
    with app.extensions["tlog"].engine.connect() as conn:
        sets = conn.execute(
            sa.text("SELECT e.signed_entry_timestamp FROM entries e JOIN trees t ON t.id = e.tree WHERE t.purpose = 'certificates'")
        ).scalars().all()
    assert sets == [None] * n


# --- 6. trust bundle and configuration --------------------------------------------------------


def test_trust_bundle_is_the_issuing_chain(app, client, dev) -> None:  # type: ignore[no-untyped-def]
    chain = issue(client, dev.mint("alice@example.com"))
    resp = client.get("/api/v2/trustBundle")
    assert resp.status_code == 200
    chains = resp.get_json()["chains"]
    assert len(chains) == 1
    bundle = [x509.load_pem_x509_certificate(p.encode()) for p in chains[0]["certificates"]]
    assert [der(c) for c in bundle] == [der(c) for c in chain[1:]]
    intermediate, root = bundle
    check_signed_by(intermediate, root)
    assert root.subject == root.issuer


def test_configuration_lists_the_issuers(app, client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v2/configuration")
    assert resp.status_code == 200
    issuers = {i["issuerUrl"]: i for i in resp.get_json()["issuers"]}
    configured = app.extensions["tlog"].ca.issuers.issuers
    assert set(issuers) == {i.url for i in configured}
    assert len(resp.get_json()["issuers"]) == len(configured)
    for entry in issuers.values():
        assert entry["audience"] == "sigstore"
    expected = {
        DEV_EMAIL_ISSUER: "email",
        DEV_GITHUB_ISSUER: "sub",
        "https://token.actions.githubusercontent.com": "sub",
        "https://gitlab.com": "sub",
        "https://accounts.google.com": "email",
        "https://oauth2.sigstore.dev/auth": "email",
    }
    assert {url: issuers[url]["challengeClaim"] for url in expected} == expected


# --- 7. concurrency on a real server --------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_issuance_on_live_server(settings: Settings) -> None:
    from tlog.ca.devoidc import DevIssuer
    from tlog.ca.pki import CAKeys

    server = LiveServer(settings, extra_args=("--dev-oidc",)).start()
    try:
        dev_issuer = DevIssuer.load(settings.data_dir)
        assert dev_issuer.email_issuer == server.url + "/oidc"

        def one(i: int) -> tuple[int, bytes]:
            if i % 2:
                token = dev_issuer.mint(f"octo-org/repo-{i}", type="github")
            else:
                token = dev_issuer.mint(f"user{i}@example.com")
            pem = csr_pem(p256())
            resp = requests.post(server.url + SIGNING_CERT, json={"certificateSigningRequest": b64(pem)}, headers=bearer(token), timeout=60)
            if resp.status_code != 200:
                return resp.status_code, resp.text.encode()
            leaf = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
            return 200, der(x509.load_pem_x509_certificate(leaf.encode()))

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(32)))
        assert [status for status, _ in results] == [200] * 32, [r for r in results if r[0] != 200]
        leaves = [d for _, d in results]
        assert len(set(leaves)) == 32
        assert len({x509.load_der_x509_certificate(d).serial_number for d in leaves}) == 32

        ct_key = serialization.load_der_public_key(CAKeys.load(settings.data_dir).ct_public_key_der)
        assert isinstance(ct_key, ec.EllipticCurvePublicKey)
        cp = speclient.verify_checkpoint(requests.get(server.url + "/certificates/checkpoint", timeout=30).text, speclient.LogKey(ct_key))
        assert cp.size == 32
        logged = parse_entry_bundle(requests.get(server.url + "/certificates/tile/entries/000.p/32", timeout=30).content)
        assert sorted(logged) == sorted(leaves)
        assert speclient.root_of([speclient.leaf_hash(d) for d in logged]) == cp.root
    finally:
        server.stop()


def test_the_ca_deploys_on_its_own(settings: Settings) -> None:
    """`tlog serve --no-log`: the CA and its certificate log, without the entry log's API."""
    from tlog.api.app import create_app

    ca_only = create_app(settings.replace(log=False, dev_oidc=True, public_url="http://127.0.0.1:1"))
    try:
        client = ca_only.test_client()
        token = ca_only.extensions["tlog"].ca.dev_issuer.mint("solo@example.com")
        resp = client.post(SIGNING_CERT, json={"certificateSigningRequest": b64(csr_pem(p256()))}, headers=bearer(token))
        assert resp.status_code == 200, resp.get_json()
        assert client.get("/certificates/checkpoint").data.split(b"\n")[1] == b"1"
        for path in ("/api/v1/log", "/checkpoint", "/api/v1/log/publicKey"):
            assert client.get(path).status_code == 404, path
    finally:
        ca_only.extensions["tlog"].engine.dispose()
