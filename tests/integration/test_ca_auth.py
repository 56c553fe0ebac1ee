"""CA authentication against a live ``tlog serve`` and a real OIDC issuer, both over HTTP.

The issuer is a small Flask app on a loopback port serving OIDC discovery and
a JWKS that each test controls (keys rotated, endpoint down). ``tlog serve``
trusts it through ``--oidc-issuers`` and fetches its keys the way it fetches
GitHub's or Google's. Tokens are signed here with the issuer's keys; nothing
in the server is stubbed.

The server runs one gunicorn worker: the JWKS cache is per process, and with
two workers which cache a request reaches would be the kernel's choice.
Times are real; waits are kept to a few seconds by choosing ``exp`` relative
to the server's leeway and by waiting out exactly one refresh interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
import speclient
from conftest import LiveServer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, jsonify
from jwt.algorithms import ECAlgorithm
from werkzeug.serving import BaseWSGIServer, make_server

from tlog.ca.oidc import DEFAULT_LEEWAY, DEFAULT_REFRESH_INTERVAL
from tlog.config import Settings

pytestmark = pytest.mark.slow

SIGNING_CERT = "/api/v2/signingCert"
EMAIL = "alice@example.com"


class OIDCIssuer:
    """An OIDC issuer on a loopback port: discovery, a JWKS of ``keys``, and a switch to take the JWKS down."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.jwks_status = 200
        self.hits = {"discovery": 0, "jwks": 0}
        app = Flask("test-oidc-issuer")
        app.add_url_rule("/.well-known/openid-configuration", "discovery", self._discovery)
        app.add_url_rule("/jwks", "jwks", self._jwks)
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _discovery(self) -> Response:
        self.hits["discovery"] += 1
        return jsonify(
            {"issuer": self.url, "jwks_uri": self.url + "/jwks", "id_token_signing_alg_values_supported": ["ES256"]}
        )

    def _jwks(self) -> Response:
        self.hits["jwks"] += 1
        if self.jwks_status != 200:
            return Response("the key service is down", status=self.jwks_status)
        keys = [
            {**ECAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "ES256"}
            for kid, k in self.keys.items()
        ]
        return jsonify({"keys": keys})

    def add_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return self.keys[kid]

    def token(self, kid: str, *, key: ec.EllipticCurvePrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "sub": EMAIL,
            "email": EMAIL,
            "email_verified": True,
            "aud": "sigstore",
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode(body | claims, key or self.keys[kid], algorithm="ES256", headers={"kid": kid})

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()


def sign(server: LiveServer, token: str, body: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        server.url + SIGNING_CERT, json=body or speclient.csr_request(), headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def leaf_of(resp: requests.Response) -> x509.Certificate:
    assert resp.status_code == 200, resp.text
    pem = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
    return x509.load_pem_x509_certificate(pem.encode())


def issued_by(leaf: x509.Certificate, issuer: OIDCIssuer) -> bool:
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name
    )
    raw_issuer = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")).value
    return san == [EMAIL] and raw_issuer.value == issuer.url.encode()  # type: ignore[attr-defined]


def certificate_log(server: LiveServer) -> str:
    """The certificate log's signed checkpoint: unchanged exactly when nothing was appended."""
    resp = requests.get(server.url + "/certificates/checkpoint", timeout=30)
    assert resp.status_code == 200
    return resp.text


def size_of(checkpoint: str) -> int:
    return int(checkpoint.split("\n")[1])


def refused(resp: requests.Response, status: int, words: str) -> None:
    """The error shape every refusal has, with ``words`` in its message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message"} and body["code"] == status, body
    assert words in body["message"], body["message"]


# --- one server, one issuer per test --------------------------------------------------------


ISSUERS = ("expiry", "rotation", "jwks-down", "outage")


@pytest.fixture(scope="module")
def issuers() -> Iterator[dict[str, OIDCIssuer]]:
    """The allow-listed issuers, one per test so that each has its own JWKS cache entry, and one unlisted."""
    running = {name: OIDCIssuer() for name in (*ISSUERS, "unlisted")}
    try:
        yield running
    finally:
        for issuer in running.values():
            issuer.stop()


@pytest.fixture(scope="module")
def server(issuers: dict[str, OIDCIssuer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("ca-auth")
    config = tmp / "issuers.yaml"
    config.write_text("issuers:\n" + "".join(f"  - url: {issuers[n].url}\n    type: email\n" for n in ISSUERS))
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'tlog.db'}", origin="test.example/log")
    live = LiveServer(settings, workers=1, threads=4, extra_args=("--oidc-issuers", str(config))).start()
    try:
        yield live
    finally:
        live.stop()


# --- the tests --------------------------------------------------------------------------------


def test_token_replayed_after_expiry_is_refused(server: LiveServer, issuers: dict[str, OIDCIssuer]) -> None:
    """Accepted while valid; the same request presented again after exp + leeway is 401 and appends nothing."""
    issuer = issuers["expiry"]
    issuer.add_key("k1")
    assert issued_by(leaf_of(sign(server, issuer.token("k1"))), issuer)  # keys fetched, server warm

    # exp is already past, but within the server's leeway for 4 more seconds:
    # the token is valid now and expired once exp + leeway has gone by.
    now = int(time.time())
    exp = now - int(DEFAULT_LEEWAY) + 4
    token = issuer.token("k1", iat=now - 120, exp=exp)
    request = speclient.csr_request()
    assert issued_by(leaf_of(sign(server, token, request)), issuer)
    before = certificate_log(server)

    time.sleep(max(0.0, exp + DEFAULT_LEEWAY + 1 - time.time()))
    refused(sign(server, token, request), 401, "token expired")
    refused(sign(server, token), 401, "token expired")  # a fresh key changes nothing
    assert certificate_log(server) == before


def test_jwks_rotation(server: LiveServer, issuers: dict[str, OIDCIssuer]) -> None:
    """A new key is fetched when a token names it; a removed key is refused once the set has been refetched."""
    issuer = issuers["rotation"]
    old_key = issuer.add_key("k1")
    old_token = issuer.token("k1")
    assert issued_by(leaf_of(sign(server, old_token)), issuer)
    first_fetch = time.time()
    assert issuer.hits["jwks"] == 1

    # The issuer rotates: k2 in, k1 out. The cached set (300 s) still names only
    # k1, so a token signed with k2 makes the server refetch; refetches of one
    # issuer are at least a refresh interval apart, so wait that out first.
    del issuer.keys["k1"]
    issuer.add_key("k2")
    time.sleep(max(0.0, first_fetch + DEFAULT_REFRESH_INTERVAL + 1 - time.time()))
    before = certificate_log(server)
    assert issued_by(leaf_of(sign(server, issuer.token("k2"))), issuer)
    assert issuer.hits["jwks"] == 2
    assert size_of(certificate_log(server)) == size_of(before) + 1

    # After that refresh the old key is gone: a fresh token signed with it is refused.
    after = certificate_log(server)
    refused(sign(server, issuer.token("k1", key=old_key)), 401, "unknown signing key id 'k1'")
    refused(sign(server, old_token), 401, "unknown signing key id 'k1'")
    assert issuer.hits["jwks"] == 2  # no refetch so soon after the last one
    assert certificate_log(server) == after


@pytest.mark.parametrize("down", ["jwks-down", "outage"])
def test_issuer_down_fails_closed(server: LiveServer, issuers: dict[str, OIDCIssuer], down: str) -> None:
    """The JWKS endpoint answering 503, or the whole issuer gone: 503 naming the issuer, nothing issued."""
    issuer = issuers[down]
    issuer.add_key("k1")
    token = issuer.token("k1")  # a valid token: only the keys to check it are missing
    if down == "jwks-down":
        issuer.jwks_status = 503
        reason = "JWKS at " + issuer.url + "/jwks: HTTP 503"
    else:
        issuer.stop()
        reason = "discovery document at " + issuer.url
    before = certificate_log(server)
    for _ in range(2):  # the second answer comes from the remembered failure, still closed
        resp = sign(server, token)
        refused(resp, 503, f"OIDC issuer {issuer.url} is unavailable")
        assert reason in resp.json()["message"], resp.json()["message"]
        assert int(resp.headers["Retry-After"]) >= 1
    assert certificate_log(server) == before


def test_issuer_not_in_the_allow_list(server: LiveServer, issuers: dict[str, OIDCIssuer]) -> None:
    """A well-formed token from a working issuer the CA does not trust is refused, and its keys are never fetched.

    The status is 403, which README and the OpenAPI description document for
    an issuer that is not allowed (401 is for tokens that fail verification).
    """
    stranger = issuers["unlisted"]
    stranger.add_key("k1")
    before = certificate_log(server)
    refused(sign(server, stranger.token("k1")), 403, f"issuer {stranger.url} is not allowed")
    assert stranger.hits == {"discovery": 0, "jwks": 0}
    assert certificate_log(server) == before
