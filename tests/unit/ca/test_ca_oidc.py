"""Token verification over real loopback HTTP: the dev issuer, and a scriptable
issuer whose discovery document and JWKS each test controls (rotation,
outages, garbage). No mocks of ``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, Response, jsonify
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from werkzeug.serving import BaseWSGIServer, make_server

from tlog.ca.devoidc import DEV_KEY_FILE, DEV_STATE_FILE, DevIssuer, dev_issuer_url, flask_blueprint, jwk_thumbprint
from tlog.ca.identity import OID_ISSUER, OID_SOURCE_REPOSITORY_URI, der_utf8string
from tlog.ca.issuers import IssuerConfig, IssuersConfig
from tlog.ca.oidc import TokenVerifier
from tlog.errors import BadRequest, Forbidden, Unauthorized, Unavailable
from tlog.keys import KeyFileError

T0 = 1_700_000_000.0


class Clock:
    """A controllable clock shared by the verifier and the token minting."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LiveServer:
    """A Flask app on a free loopback port, served by werkzeug in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval keeps shutdown() (once per test) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey, kid: str | None) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(pub, as_dict=True)
    elif isinstance(pub, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(pub, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(pub, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    return jwk


class FakeIssuer:
    """An OIDC issuer on loopback whose answers the test scripts."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.keys: dict[str | None, PrivateKey] = {}
        self.extra_jwks: list[dict[str, Any]] = []
        self.discovery_issuer: str | None = None  # None: the real URL
        self.discovery_body: Any = None  # replaces the whole document if set
        self.jwks_body: Any = None  # replaces the whole JWKS if set
        self.status = 200
        self.hits = {"discovery": 0, "jwks": 0}
        app = Flask("fake-issuer")
        app.add_url_rule("/.well-known/openid-configuration", "discovery", self._discovery)
        app.add_url_rule("/jwks", "jwks", self._jwks)
        self.server = LiveServer(app)
        self.url = self.server.url
        self.server.start()

    def _answer(self, document: Any) -> Response:
        if self.status != 200:
            return Response("upstream trouble", status=self.status)
        if isinstance(document, (str, bytes)):
            return Response(document, mimetype="application/json")
        return jsonify(document)

    def _discovery(self) -> Response:
        self.hits["discovery"] += 1
        if self.discovery_body is not None:
            return self._answer(self.discovery_body)
        return self._answer({"issuer": self.discovery_issuer or self.url, "jwks_uri": self.url + "/jwks"})

    def _jwks(self) -> Response:
        self.hits["jwks"] += 1
        if self.jwks_body is not None:
            return self._answer(self.jwks_body)
        keys = [public_jwk(key, kid) for kid, key in self.keys.items()]
        return self._answer({"keys": keys + self.extra_jwks})

    def add_key(self, kid: str | None = "k1", key: PrivateKey | None = None) -> PrivateKey:
        self.keys[kid] = key or ec.generate_private_key(ec.SECP256R1())
        return self.keys[kid]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "alice@example.com",
            "aud": "sigstore",
            "iat": now,
            "exp": now + 600,
            "email": "alice@example.com",
            "email_verified": True,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, kid: str | None = "k1", *, key: PrivateKey | None = None, alg: str = "ES256", **overrides: Any
    ) -> str:
        headers = {"kid": kid} if kid is not None else {}
        signing_key = key or self.keys[kid]
        return jwt.encode(self.claims(**overrides), signing_key, algorithm=alg, headers=headers)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(clock: Clock) -> Iterator[FakeIssuer]:
    fake = FakeIssuer(clock)
    yield fake
    fake.server.stop()


def verifier_for(fake: FakeIssuer, clock: Clock, **kwargs: Any) -> TokenVerifier:
    config = IssuersConfig((IssuerConfig(url=fake.url, type="email", jwks_url=kwargs.pop("jwks_url", None)),))
    return TokenVerifier(config, clock=clock, http_timeout=2.0, **kwargs)


@pytest.fixture
def verifier(issuer: FakeIssuer, clock: Clock) -> Iterator[TokenVerifier]:
    issuer.add_key("k1")
    v = verifier_for(issuer, clock)
    yield v
    v.close()


# -- the development issuer, served over HTTP ------------------------------------


@pytest.fixture
def dev_server(tmp_path: Path, clock: Clock) -> Iterator[DevIssuer]:
    app = Flask("tlog-dev-oidc-test")
    server = LiveServer(app)
    dev = DevIssuer.load_or_create(tmp_path, dev_issuer_url(server.url))
    dev = DevIssuer(dev.issuer_url, dev.key, clock)
    app.register_blueprint(flask_blueprint(dev))
    server.start()
    yield dev
    server.stop()


def test_dev_issuer_email_token_verifies_over_http(dev_server: DevIssuer, clock: Clock) -> None:
    verifier = TokenVerifier(IssuersConfig(tuple(dev_server.issuer_configs())), clock=clock)
    claims, issuer = verifier.verify(dev_server.mint("alice@example.com"))
    assert (issuer.url, issuer.type) == (dev_server.email_issuer, "email")
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is True
    identity = verifier.identity(dev_server.mint("alice@example.com"))
    assert (identity.san_type, identity.san, identity.issuer) == ("email", "alice@example.com", dev_server.email_issuer)
    verifier.close()


def test_dev_issuer_github_token_verifies_over_http(dev_server: DevIssuer, clock: Clock) -> None:
    verifier = TokenVerifier(IssuersConfig(tuple(dev_server.issuer_configs())), clock=clock)
    token = dev_server.mint("octo-org/octo-repo", type="github", extra_claims={"environment": "prod"})
    claims, issuer = verifier.verify(token)
    assert (issuer.url, issuer.type) == (dev_server.github_issuer, "github-workflow")
    assert claims["sub"] == "repo:octo-org/octo-repo:environment:prod"
    identity = verifier.identity(token)
    assert identity.san == "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    assert identity.extension(OID_ISSUER) == dev_server.github_issuer.encode()
    assert identity.extension(OID_SOURCE_REPOSITORY_URI) == der_utf8string("https://github.com/octo-org/octo-repo")
    verifier.close()


def test_dev_issuer_serves_discovery_and_jwks(dev_server: DevIssuer) -> None:
    import requests

    for iss in (dev_server.email_issuer, dev_server.github_issuer):
        with requests.get(iss + "/.well-known/openid-configuration", timeout=5) as response:
            doc = response.json()
        assert doc["issuer"] == iss and doc["jwks_uri"] == iss + "/jwks"
        assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
        with requests.get(doc["jwks_uri"], timeout=5) as response:
            assert response.json() == dev_server.jwks()


def test_trusted_keys_need_no_http(tmp_path: Path, clock: Clock) -> None:
    dev = DevIssuer.load_or_create(tmp_path, dev_issuer_url(dead_url()))  # nothing listens there
    dev = DevIssuer(dev.issuer_url, dev.key, clock)
    config = IssuersConfig(tuple(dev.issuer_configs()))
    verifier = TokenVerifier(config, clock=clock, trusted_keys=dev.trusted_keys())
    assert verifier.identity(dev.mint("alice@example.com")).san == "alice@example.com"
    assert verifier.verify(dev.mint("octo-org/octo-repo", type="github"))[1].type == "github-workflow"
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {"iss": dev.email_issuer, "sub": "a", "aud": "sigstore", "iat": int(T0), "exp": int(T0) + 60},
        other,
        algorithm="ES256",
        headers={"kid": "not-the-dev-kid"},
    )
    with pytest.raises(Unauthorized, match="unknown signing key id 'not-the-dev-kid'"):
        verifier.verify(token)
    with pytest.raises(ValueError, match="not in the issuer allow-list"):
        TokenVerifier(IssuersConfig(), trusted_keys=dev.trusted_keys())
    verifier.close()


def test_trusted_keys_accept_a_pyjwkset(tmp_path: Path, clock: Clock) -> None:
    dev = DevIssuer(dev_issuer_url(dead_url()), ec.generate_private_key(ec.SECP256R1()), clock)
    keyset = jwt.PyJWKSet.from_dict(dev.jwks())
    verifier = TokenVerifier(
        IssuersConfig(tuple(dev.issuer_configs())), clock=clock, trusted_keys={dev.email_issuer: keyset}
    )
    assert verifier.verify(dev.mint("alice@example.com"))[0]["sub"] == "alice@example.com"


def test_dev_issuer_files(tmp_path: Path) -> None:
    dev = DevIssuer.load_or_create(tmp_path, "http://127.0.0.1:8080/oidc/")
    assert dev.issuer_url == "http://127.0.0.1:8080/oidc"
    key_file = tmp_path / DEV_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads((tmp_path / DEV_STATE_FILE).read_text()) == {"issuer": "http://127.0.0.1:8080/oidc"}
    jwk = dev.public_jwk
    assert jwk["kid"] == jwk_thumbprint(jwk) == dev.kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    again = DevIssuer.load_or_create(tmp_path, "http://127.0.0.1:8080/oidc")
    assert again.kid == dev.kid  # the key is kept
    loaded = DevIssuer.load(tmp_path)
    assert (loaded.issuer_url, loaded.kid) == (dev.issuer_url, dev.kid)
    header = jwt.get_unverified_header(loaded.mint("bob@example.com"))
    assert (header["alg"], header["kid"]) == ("ES256", dev.kid)
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyFileError, match="accessible by other users"):
        DevIssuer.load(tmp_path)


def test_dev_tokens_are_accepted_by_the_sigstore_client(tmp_path: Path) -> None:
    # sigstore-python parses the token itself before sending it (aud, iat,
    # exp, nbf, sub); minted with the real clock, both kinds must pass.
    from sigstore.oidc import IdentityToken

    dev = DevIssuer.load_or_create(tmp_path, "http://127.0.0.1:8080/oidc")
    email = IdentityToken(dev.mint("alice@example.com"))
    assert (email.identity, email.issuer) == ("alice@example.com", dev.email_issuer)
    github = IdentityToken(dev.mint("octo-org/octo-repo", type="github"))
    assert (github.identity, github.issuer) == ("repo:octo-org/octo-repo:ref:refs/heads/main", dev.github_issuer)


def test_jwk_thumbprint_rfc7638_example() -> None:
    # RFC 7638 §3.1: the example RSA key and its published thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
        "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE"
        "gU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_dev_issuer_mint_validates_input(tmp_path: Path) -> None:
    dev = DevIssuer("http://127.0.0.1:1/oidc", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="not an e-mail"):
        dev.mint("alice")
    with pytest.raises(ValueError, match="not a GitHub repository"):
        dev.mint("no-slash", type="github")
    with pytest.raises(ValueError, match="lifetime"):
        dev.mint("alice@example.com", lifetime=0)


# -- accepted tokens --------------------------------------------------------------


def test_valid_token(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    claims, config = verifier.verify(issuer.token())
    assert claims["email"] == "alice@example.com" and config.url == issuer.url
    assert issuer.hits == {"discovery": 1, "jwks": 1}
    verifier.verify(issuer.token())
    assert issuer.hits == {"discovery": 1, "jwks": 1}  # cached


def test_audience_list_containing_the_client_id(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    assert verifier.verify(issuer.token(aud=["other", "sigstore"]))[0]["aud"] == ["other", "sigstore"]


def test_expiry_within_leeway_is_accepted(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    token = issuer.token(exp=int(clock()) - 10)
    verifier.verify(token)  # leeway 30 s
    clock.advance(25)
    with pytest.raises(Unauthorized, match="token expired"):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        ("RS256", lambda: rsa.generate_private_key(65537, 2048)),
        ("RS512", lambda: rsa.generate_private_key(65537, 2048)),
        ("PS256", lambda: rsa.generate_private_key(65537, 2048)),
        ("PS384", lambda: rsa.generate_private_key(65537, 2048)),
        ("ES384", lambda: ec.generate_private_key(ec.SECP384R1())),
        ("ES512", lambda: ec.generate_private_key(ec.SECP521R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
    ],
)
def test_allowed_algorithms(issuer: FakeIssuer, clock: Clock, alg: str, make_key: Any) -> None:
    # The JWKs carry no "alg", so an RSA key must serve RS* and PS* alike.
    issuer.add_key("k", make_key())
    verifier = verifier_for(issuer, clock)
    assert verifier.verify(issuer.token("k", alg=alg))[0]["sub"] == "alice@example.com"
    verifier.close()


def test_token_without_kid_tries_every_key(issuer: FakeIssuer, clock: Clock) -> None:
    issuer.add_key("a")
    second = issuer.add_key("b")
    verifier = verifier_for(issuer, clock)
    assert verifier.verify(issuer.token(None, key=second))[0]["sub"] == "alice@example.com"
    with pytest.raises(Unauthorized, match="token signature invalid"):
        verifier.verify(issuer.token(None, key=ec.generate_private_key(ec.SECP256R1())))
    verifier.close()


def test_jwks_url_override_skips_discovery(issuer: FakeIssuer, clock: Clock) -> None:
    issuer.add_key("k1")
    issuer.discovery_body = "this discovery document is broken"
    verifier = verifier_for(issuer, clock, jwks_url=issuer.url + "/jwks")
    verifier.verify(issuer.token())
    assert issuer.hits == {"discovery": 0, "jwks": 1}
    verifier.close()


def test_unusable_jwks_entries_are_skipped(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    issuer.extra_jwks = [
        {"kty": "oct", "k": b64url(b"secret"), "kid": "k1"},
        {**public_jwk(ec.generate_private_key(ec.SECP256R1()), "k1"), "use": "enc"},
        {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "kid": "k1"},
        "not a key",
    ]
    verifier.verify(issuer.token())


# -- refused tokens ---------------------------------------------------------------


def test_forged_token_same_kid_other_key(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    forged = issuer.token(key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(Unauthorized, match="token signature invalid") as info:
        verifier.verify(forged)
    assert info.value.http_status == 401


def test_tampered_payload(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    header, _, signature = issuer.token().split(".")
    payload = b64url(json.dumps(issuer.claims(email="mallory@example.com")).encode())
    with pytest.raises(Unauthorized, match="token signature invalid"):
        verifier.verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(issuer: FakeIssuer, verifier: TokenVerifier, alg: str) -> None:
    token = unsigned({"alg": alg, "kid": "k1", "typ": "JWT"}, issuer.claims()) + "."
    with pytest.raises(Unauthorized, match="algorithm none not allowed"):
        verifier.verify(token)
    assert issuer.hits["jwks"] == 0


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_the_public_key_as_secret(issuer: FakeIssuer, verifier: TokenVerifier, alg: str) -> None:
    # The classic key-confusion forgery: HMAC keyed with the issuer's public PEM.
    public_pem = issuer.keys["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": alg, "kid": "k1", "typ": "JWT"}, issuer.claims())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(public_pem, signing_input.encode(), digest).digest()
    with pytest.raises(Unauthorized, match="HMAC algorithms are not allowed"):
        verifier.verify(f"{signing_input}.{b64url(mac)}")


@pytest.mark.parametrize("alg", ["ES256K", "RS1", "foo", ""])
def test_other_algorithms_are_refused(issuer: FakeIssuer, verifier: TokenVerifier, alg: str) -> None:
    token = unsigned({"alg": alg, "kid": "k1"}, issuer.claims()) + "." + b64url(b"sig")
    with pytest.raises(Unauthorized, match="not allowed|no alg"):
        verifier.verify(token)


def test_algorithm_that_does_not_fit_the_key(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    # kid k1 is a P-256 key; an RS256 token naming it must not be tried with it.
    token = issuer.token(key=rsa.generate_private_key(65537, 2048), alg="RS256")
    with pytest.raises(Unauthorized, match="cannot verify algorithm RS256"):
        verifier.verify(token)
    # Nor may an ES384 token be checked with a P-256 key.
    token = issuer.token(key=ec.generate_private_key(ec.SECP384R1()), alg="ES384")
    with pytest.raises(Unauthorized, match="cannot verify algorithm ES384"):
        verifier.verify(token)


def test_weak_rsa_key_is_refused(issuer: FakeIssuer, clock: Clock) -> None:
    weak = rsa.generate_private_key(65537, 1024)
    issuer.add_key("weak", weak)
    verifier = verifier_for(issuer, clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the short key when signing
        token = issuer.token("weak", alg="RS256")
    with pytest.raises(Unauthorized, match="signing key is unusable"):
        verifier.verify(token)
    verifier.close()


def test_expired(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    token = issuer.token(iat=int(clock()) - 2000, exp=int(clock()) - 1400)
    with pytest.raises(Unauthorized, match="token expired"):
        verifier.verify(token)


def test_not_yet_valid_nbf(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    token = issuer.token(nbf=int(clock()) + 120)
    with pytest.raises(Unauthorized, match=r"token not yet valid \(nbf\)"):
        verifier.verify(token)
    clock.advance(100)  # now within the 30 s leeway
    verifier.verify(token)


def test_iat_in_the_future(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    with pytest.raises(Unauthorized, match=r"token not yet valid: issued in the future \(iat\)"):
        verifier.verify(issuer.token(iat=int(clock()) + 120, exp=int(clock()) + 720))


def test_wrong_audience(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    for aud in ("other", ["a", "b"], "Sigstore"):
        with pytest.raises(Unauthorized, match="wrong audience"):
            verifier.verify(issuer.token(aud=aud))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud"])
def test_missing_required_claim(issuer: FakeIssuer, verifier: TokenVerifier, claim: str) -> None:
    with pytest.raises(Unauthorized, match=f"missing the '{claim}' claim"):
        verifier.verify(issuer.token(**{claim: None}))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_non_numeric_times(issuer: FakeIssuer, verifier: TokenVerifier, claim: str) -> None:
    with pytest.raises(Unauthorized, match="malformed token|invalid token"):
        verifier.verify(issuer.token(**{claim: "soon"}))


def test_unlisted_issuer(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    token = issuer.token(iss="https://evil.example")
    with pytest.raises(Forbidden, match="issuer https://evil.example is not allowed") as info:
        verifier.verify(token)
    assert info.value.http_status == 403
    assert issuer.hits == {"discovery": 0, "jwks": 0}


def test_unverified_email_is_forbidden(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    token = issuer.token(email_verified=False)
    verifier.verify(token)  # a valid token ...
    with pytest.raises(Forbidden, match="email not verified"):
        verifier.identity(token)  # ... but no e-mail identity


def test_missing_identity_claims(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    with pytest.raises(BadRequest, match="'email' claim"):
        verifier.identity(issuer.token(email=None))


def test_github_missing_claims(issuer: FakeIssuer, clock: Clock) -> None:
    issuer.add_key("k1")
    config = IssuersConfig((IssuerConfig(url=issuer.url, type="github-workflow"),))
    verifier = TokenVerifier(config, clock=clock)
    with pytest.raises(BadRequest, match="'job_workflow_ref' claim"):
        verifier.identity(issuer.token(sub="repo:o/r:ref:refs/heads/main", repository="o/r"))
    verifier.close()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "!!!.???.###",
        unsigned({"alg": "ES256", "kid": "k1"}, {}).split(".")[0] + "." + b64url(b"not json") + ".c2ln",
        b64url(b"not json") + "." + b64url(b"{}") + ".c2ln",
        unsigned({"alg": "ES256", "kid": "k1"}, {}).split(".")[0] + "." + b64url(b"[1,2]") + ".c2ln",
        unsigned({"alg": "ES256", "kid": 7}, {"iss": "x"}) + ".c2ln",
        unsigned({"kid": "k1"}, {"iss": "x"}) + ".c2ln",
        unsigned({"alg": "ES256", "kid": "k1"}, {"sub": "no iss"}) + ".c2ln",
        "e" * 70_000 + ".a.b",
    ],
)
def test_garbage_tokens(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthorized, match="malformed token") as info:
        verifier.verify(token)
    assert info.value.http_status == 401


def test_non_string_token(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized, match="malformed token"):
        verifier.verify(None)  # type: ignore[arg-type]


def es256(signing_input: str, key: PrivateKey) -> str:
    """A compact JWS signature, made here rather than by PyJWT so that the input can be odd."""
    return b64url(ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), key))


def test_token_parsed_once_gives_the_same_claims(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    """The claims returned are the payload's, exactly; what PyJWT's decoder would return."""
    token = issuer.token(extra={"nested": [1, {"a": None}]}, amr=["pwd"])
    claims, _ = verifier.verify(token)
    assert claims == jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize("part", [0, 1, 2])
def test_non_canonical_base64url_is_refused(issuer: FakeIssuer, verifier: TokenVerifier, part: int) -> None:
    """A last character with stray low bits decodes to the same bytes: refused (as in GHSA-hxm8-2xgr-2p9m)."""
    # A claim of the right length leaves the payload with spare bits, as the header and signature have.
    segments = next(t.split(".") for n in range(4) if len((t := issuer.token(pad="x" * n)).split(".")[1]) % 4)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = {2: 4, 3: 2}[len(segments[part]) % 4]
    last = segments[part][-1]
    segments[part] = segments[part][:-1] + alphabet[alphabet.index(last) | (1 << unused_bits) - 1]
    assert segments[part][-1] != last
    with pytest.raises(Unauthorized, match="malformed token: the (header|payload|signature) is not canonical"):
        verifier.verify(".".join(segments))


@pytest.mark.parametrize("bad", ["+", "/", " ", "==="])
def test_base64url_alphabet_only(issuer: FakeIssuer, verifier: TokenVerifier, bad: str) -> None:
    header, payload, signature = issuer.token().split(".")
    with pytest.raises(Unauthorized, match="malformed token: the payload is not base64url"):
        verifier.verify(f"{header}.{payload[:8]}{bad}{payload[8:]}.{signature}")


def test_padding_is_tolerated_as_pyjwt_does(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    """Some issuers pad segments (AWS ALB); PyJWT accepts it, and so did this verifier when it used PyJWT."""
    header = b64url(json.dumps({"alg": "ES256", "kid": "k1"}).encode())
    payload = b64url(json.dumps(issuer.claims()).encode())
    header += "=" * (-len(header) % 4)
    payload += "=" * (-len(payload) % 4)
    assert header.endswith("=") or payload.endswith("=")
    signing_input = f"{header}.{payload}"
    claims, _ = verifier.verify(f"{signing_input}.{es256(signing_input, issuer.keys['k1'])}")
    assert claims["sub"] == "alice@example.com"


def test_non_ascii_token(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized, match="malformed token: not base64url"):
        verifier.verify("ä.b.c")


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1},
        {"alg": "ES256", "kid": "k1", "crit": ["b64"], "b64": False},
        {"alg": "ES256", "kid": "k1", "b64": False},
    ],
    ids=["crit", "b64-false-critical", "b64-false"],
)
def test_critical_header_extensions_are_refused(
    issuer: FakeIssuer, verifier: TokenVerifier, header: dict[str, Any]
) -> None:
    """RFC 7515 §4.1.11: a recipient that does not implement a critical extension must refuse the token."""
    signing_input = unsigned(header, issuer.claims())
    with pytest.raises(Unauthorized, match="critical header extensions"):
        verifier.verify(f"{signing_input}.{es256(signing_input, issuer.keys['k1'])}")


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"aud": ["sigstore", 7]}, "aud claim is not a string or a list of strings"),
        ({"aud": {"sigstore": True}}, "aud claim is not a string or a list of strings"),
        ({"sub": 12345}, "sub claim is not a string"),
        ({"jti": 1}, "jti claim is not a string"),
    ],
)
def test_claim_types(issuer: FakeIssuer, verifier: TokenVerifier, claims: dict[str, Any], words: str) -> None:
    with pytest.raises(Unauthorized, match=words):
        verifier.verify(issuer.token(**claims))


def test_signature_is_checked_before_the_claims(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    """A forged token learns nothing about which claim would have failed."""
    forged = issuer.token(key=ec.generate_private_key(ec.SECP256R1()), aud="someone-else")
    with pytest.raises(Unauthorized, match="token signature invalid"):
        verifier.verify(forged)


# -- key rotation -----------------------------------------------------------------


def test_key_rotation(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    old = issuer.token("k1")
    verifier.verify(old)
    assert issuer.hits["jwks"] == 1

    # The issuer adds k2 and starts signing with it: an unknown kid triggers a
    # refresh (the set was fetched more than the 10 s refresh interval ago).
    clock.advance(11)
    issuer.add_key("k2")
    verifier.verify(issuer.token("k2"))
    assert issuer.hits["jwks"] == 2

    # The issuer retires k1. Until the cache expires it still verifies ...
    del issuer.keys["k1"]
    clock.advance(60)
    verifier.verify(old)
    # ... and once the cache expires and the set is refetched, it is gone.
    clock.advance(300)
    with pytest.raises(Unauthorized, match="unknown signing key id 'k1'"):
        verifier.verify(old)
    assert issuer.hits["jwks"] == 3
    verifier.verify(issuer.token("k2"))


def test_unknown_kid_refresh_is_rate_limited(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    verifier.verify(issuer.token())
    clock.advance(11)
    stranger = ec.generate_private_key(ec.SECP256R1())
    for kid in ("x1", "x2", "x3"):
        with pytest.raises(Unauthorized, match=f"unknown signing key id '{kid}'"):
            verifier.verify(issuer.token(kid, key=stranger))
    assert issuer.hits["jwks"] == 2  # one refresh for the first unknown kid only
    # A key rotated in during the quiet period is picked up once it is over.
    issuer.add_key("k2")
    with pytest.raises(Unauthorized, match="unknown signing key id 'k2'"):
        verifier.verify(issuer.token("k2"))
    clock.advance(11)
    verifier.verify(issuer.token("k2"))
    assert issuer.hits["jwks"] == 3


# -- issuer outages and garbage: fail closed --------------------------------------


def test_issuer_unreachable(clock: Clock) -> None:
    url = dead_url()
    verifier = TokenVerifier(IssuersConfig((IssuerConfig(url=url, type="email"),)), clock=clock, http_timeout=2.0)
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {"iss": url, "sub": "a", "aud": "sigstore", "iat": int(T0), "exp": int(T0) + 60},
        key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    with pytest.raises(Unavailable, match=f"OIDC issuer {url} is unavailable") as info:
        verifier.verify(token)
    assert info.value.http_status == 503
    verifier.close()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: setattr(f, "status", 500), "HTTP 500"),
        (lambda f: setattr(f, "status", 404), "HTTP 404"),
        (lambda f: setattr(f, "discovery_body", "{not json"), "not JSON"),
        (lambda f: setattr(f, "discovery_body", "[1, 2]"), "not a JSON object"),
        (lambda f: setattr(f, "discovery_body", {"issuer": f.url}), "no usable jwks_uri"),
        (lambda f: setattr(f, "discovery_body", {"issuer": f.url, "jwks_uri": "ftp://x/jwks"}), "no usable jwks_uri"),
        (lambda f: setattr(f, "jwks_body", "{not json"), "not JSON"),
        (lambda f: setattr(f, "jwks_body", {"nokeys": []}), "no 'keys' list"),
        (lambda f: setattr(f, "jwks_body", {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "no usable signing keys"),
        (lambda f: setattr(f, "jwks_body", "x" * (2 * 1024 * 1024)), "larger than"),
    ],
)
def test_issuer_answering_garbage_is_unavailable(issuer: FakeIssuer, verifier: TokenVerifier, setup: Any, message: str) -> None:
    token = issuer.token()
    setup(issuer)
    with pytest.raises(Unavailable, match=message) as info:
        verifier.verify(token)
    assert issuer.url in info.value.message
    assert info.value.http_status == 503


def test_discovery_issuer_mismatch_is_refused(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    issuer.discovery_issuer = "https://accounts.google.com"
    with pytest.raises(Unavailable, match="discovery document names issuer 'https://accounts.google.com'"):
        verifier.verify(issuer.token())
    assert issuer.hits["jwks"] == 0  # its keys were never fetched
    issuer.discovery_issuer = issuer.url + "/"  # exact match only
    with pytest.raises(Unavailable, match="discovery document names issuer"):
        verifier.verify(issuer.token())


def test_outage_with_a_cached_jwks(issuer: FakeIssuer, verifier: TokenVerifier, clock: Clock) -> None:
    verifier.verify(issuer.token())
    issuer.status = 503  # the issuer goes down

    # Within the cache lifetime, tokens signed with cached keys still verify ...
    clock.advance(100)
    verifier.verify(issuer.token())
    # ... but a kid that would need a refresh cannot be decided: 503, not 401.
    issuer.add_key("k2")
    with pytest.raises(Unavailable, match="HTTP 503"):
        verifier.verify(issuer.token("k2"))

    # Once the cache has expired nothing verifies, and retries are spaced out.
    clock.advance(300)
    with pytest.raises(Unavailable, match="HTTP 503"):
        verifier.verify(issuer.token())
    hits = dict(issuer.hits)
    with pytest.raises(Unavailable, match="HTTP 503"):
        verifier.verify(issuer.token())
    assert issuer.hits == hits  # failed fast, no new request within the refresh interval

    # The issuer recovers; after the interval the next token verifies.
    issuer.status = 200
    clock.advance(11)
    verifier.verify(issuer.token("k2"))
    verifier.verify(issuer.token("k1"))


def test_concurrent_cold_start_fetches_once(issuer: FakeIssuer, verifier: TokenVerifier) -> None:
    tokens = [issuer.token(sub=f"user-{i}") for i in range(8)]
    barrier = threading.Barrier(len(tokens))
    results: list[object] = []

    def work(token: str) -> None:
        barrier.wait()
        try:
            results.append(verifier.verify(token)[0]["sub"])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)) == sorted(f"user-{i}" for i in range(8))
    assert issuer.hits == {"discovery": 1, "jwks": 1}
