"""Hostile input: fuzz every endpoint; zero 5xx, and rejected input changes nothing.

Three layers, each on SQLite and PostgreSQL (fewer examples on PostgreSQL):

* **Hypothesis fuzzing** through the Flask test client of a server with
  everything on (the entry log, the CA and the development OIDC issuer):
  arbitrary JSON and arbitrary bytes to every POST endpoint, structured
  mutations of valid requests (hashedrekord, dsse and its envelope, both
  searches, both forms of ``signingCert``), validly *signed* entries and
  tokens that carry hostile content (SANs, in-toto subjects, token claims),
  and arbitrary paths, query strings and methods on every GET endpoint.
  Properties of every response: the status is below 500; an error's body is
  exactly ``{"code": <status>, "message": <text>}``; and anything but a 2xx
  from one of the two writing endpoints leaves :func:`snapshot` (row counts of
  every table and the latest checkpoint of both trees) unchanged. GET and HEAD
  never change it, whatever they answer.
* **Schemathesis** over our own OpenAPI document (``/api/v1/openapi.json``),
  every operation, positive and negative data: no server errors, documented
  status codes, content types, headers and response schemas, and
  schema-invalid requests refused.
* **Limits**, each with a test: body size, JSON nesting depth, items per
  batch request and results per index search, absurd string lengths, and
  request time (gunicorn's worker timeout and PostgreSQL's statement timeout).

The fuzzers draw inside the test (``run_fuzz``), so the fixtures (a fresh
database, seeded once) are set up once per test and the properties compare the
state before and after each example rather than relying on a fresh database.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, Phase, assume, given
from hypothesis import example as hexample
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import speclient
from tlog.config import Settings

#: The dev issuer's ``iss`` is built on this; nothing listens there (the app
#: trusts the dev issuer's keys in-process).
PUBLIC_URL = "http://127.0.0.1:1"
#: Every table of the schema: both trees (entries and certificates) live in them.
TABLES = ("trees", "entries", "nodes", "tree_heads", "search_index", "cosignatures", "attestations")
#: The only endpoints that may change the log, and only when they answer 2xx.
WRITERS = {"/api/v1/log/entries", "/api/v2/signingCert"}
POST_ENDPOINTS = [
    "/api/v1/log/entries",
    "/api/v1/log/entries/retrieve",
    "/api/v1/log/entries/retrieve/",
    "/api/v1/index/retrieve",
    "/api/v2/signingCert",
]
GET_ENDPOINTS = [
    "/api/v1/log",
    "/api/v1/log/publicKey",
    "/api/v1/log/proof",
    "/api/v1/log/entries",
    "/checkpoint",
    "/certificates/checkpoint",
    "/api/v2/trustBundle",
    "/api/v2/configuration",
    "/oidc/.well-known/openid-configuration",
    "/oidc/jwks",
    "/oidc/github/.well-known/openid-configuration",
    "/oidc/github/jwks",
    "/healthz",
    "/metrics",
    "/api/v1/openapi.json",
    "/api/v1/openapi.yaml",
]
DEFAULT_BODY_LIMIT = 128 * 1024
IN_TOTO = "https://in-toto.io/Statement/v1"


# --- fixtures ---------------------------------------------------------------------------


def _without_rate_limits(settings: Settings) -> Settings:
    """The fuzzers send thousands of requests from one address in seconds: rate
    limits (where this build has them) would answer 429 and hide the handlers."""
    names = {f.name for f in dataclasses.fields(settings)}
    off = ("submission_rate_limit", "signing_rate_limit", "read_rate_limit", "identity_rate_limit")
    return settings.replace(**{n: None for n in off if n in names})


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    """Everything on: the entry log, the CA and the dev OIDC issuer (trusted in-process)."""
    from tlog.api.app import create_app

    app = create_app(_without_rate_limits(settings.replace(dev_oidc=True, public_url=PUBLIC_URL)))
    yield app
    app.extensions["tlog"].engine.dispose()


def is_postgres(app) -> bool:  # type: ignore[no-untyped-def]
    return app.extensions["tlog"].engine.dialect.name == "postgresql"


def examples(app, n: int) -> int:  # type: ignore[no-untyped-def]
    """``n`` examples on SQLite; a fifth (at least 10) on PostgreSQL, where each costs more."""
    return max(10, n // 5) if is_postgres(app) else n


def snapshot(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Row counts of every table and the latest checkpoint of every tree: all visible state."""
    engine = app.extensions["tlog"].engine
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
        heads = conn.execute(
            sa.text(
                "SELECT h.tree, h.size, h.checkpoint FROM tree_heads h "
                "WHERE h.size = (SELECT max(size) FROM tree_heads m WHERE m.tree = h.tree) ORDER BY h.tree"
            )
        ).all()
    return {"counts": counts, "heads": [tuple(h) for h in heads]}


def csr_b64(key: ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "alice@example.com")]))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def world(app):  # type: ignore[no-untyped-def]
    """Both trees seeded (two entries, one certificate) and a valid request of every kind to mutate."""
    client = app.test_client()
    dev = app.extensions["tlog"].ca.dev_issuer
    ident = speclient.make_identity("alice@example.com", uri="https://github.com/org/repo/.github/workflows/r.yml@refs/heads/main")
    seed, seed_digest = speclient.hashedrekord(ident)
    resp = client.post("/api/v1/log/entries", json=seed)
    assert resp.status_code == 201, resp.data
    uuid = next(iter(resp.get_json()))
    statement = {"_type": IN_TOTO, "subject": [{"name": "a", "digest": {"sha256": seed_digest.hex()}}], "predicateType": "x", "predicate": {}}
    assert client.post("/api/v1/log/entries", json=speclient.dsse(ident, statement)).status_code == 201

    token = dev.mint("alice@example.com")
    cert_key = ec.generate_private_key(ec.SECP256R1())
    resp = client.post("/api/v2/signingCert", json={"certificateSigningRequest": csr_b64(cert_key)}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.data

    # A hashedrekord signed with a bare public key rather than a certificate.
    bare, _ = speclient.hashedrekord(ident)
    bare["spec"]["signature"]["publicKey"]["content"] = base64.b64encode(public_key_pem(ident.key).encode()).decode()
    fresh_dsse = speclient.dsse(ident, {**statement, "predicate": {"n": 1}})
    pop_key = ec.generate_private_key(ec.SECP256R1())
    pop = pop_key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    cert_b64 = base64.b64encode(ident.cert_pem).decode()
    templates: dict[str, tuple[str, dict[str, Any]]] = {
        "hashedrekord": ("/api/v1/log/entries", speclient.hashedrekord(ident)[0]),
        "hashedrekord-bare-key": ("/api/v1/log/entries", bare),
        "dsse": ("/api/v1/log/entries", fresh_dsse),
        "dsse-envelope": ("/api/v1/log/entries", json.loads(fresh_dsse["spec"]["proposedContent"]["envelope"])),
        "retrieve": (
            "/api/v1/log/entries/retrieve",
            {"entryUUIDs": [uuid, uuid[16:]], "logIndexes": [0, 1], "entries": [copy.deepcopy(seed)]},
        ),
        "index": (
            "/api/v1/index/retrieve",
            {
                "hash": "sha256:" + seed_digest.hex(),
                "publicKey": {"format": "x509", "content": cert_b64},
                "email": "alice@example.com",
                "identity": "https://github.com/org/repo/.github/workflows/r.yml@refs/heads/main",
                "operator": "and",
            },
        ),
        "signingCert-csr": (
            "/api/v2/signingCert",
            {"credentials": {"oidcIdentityToken": token}, "certificateSigningRequest": csr_b64(cert_key)},
        ),
        "signingCert-publicKey": (
            "/api/v2/signingCert",
            {
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {
                    "publicKey": {"algorithm": "ECDSA", "content": public_key_pem(pop_key)},
                    "proofOfPossession": base64.b64encode(pop).decode(),
                },
            },
        ),
    }
    return {"uuid": uuid, "ident": ident, "dev": dev, "token": token, "templates": templates, "fresh_dsse": fresh_dsse}


# --- the properties ---------------------------------------------------------------------


class Checker:
    """Sends requests and checks the properties every response must have."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.client = app.test_client()
        self.state = snapshot(app)
        self.requests = 0
        self.statuses: dict[int, int] = {}

    def open(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.client.open(path, method=method, **kwargs)
        self.check(method, path, resp.status_code, resp.data, resp.mimetype)
        return resp

    def check(self, method: str, path: str, status: int, data: bytes, mimetype: str | None) -> None:
        what = f"{method} {path[:200]}"
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status < 500, f"{what} answered {status}: {data[:500]!r}"
        if status >= 400 and method != "HEAD":
            check_error_body(status, data, mimetype, what)
        before, self.state = self.state, snapshot(self.app)  # one failure must not fail every later example
        if method == "POST" and path in WRITERS and 200 <= status < 300:
            if self.state != before:
                check_search_keys_fit(self.app)
        else:
            assert self.state == before, f"{what} answered {status} but changed the log:\nbefore {before}\nafter  {self.state}"


def check_search_keys_fit(app) -> None:  # type: ignore[no-untyped-def]
    """Every stored search key fits PostgreSQL's ``search_index.key`` (VARCHAR(512), no NUL),
    checked on SQLite too, which would store anything."""
    with app.extensions["tlog"].engine.connect() as conn:
        bad = [k for (k,) in conn.execute(sa.text("SELECT key FROM search_index")) if len(k) > 512 or "\x00" in k]
    assert not bad, f"search keys PostgreSQL cannot store: {[k[:80] for k in bad]}"


def check_error_body(status: int, data: bytes, mimetype: str | None, what: str) -> None:
    assert mimetype == "application/json", f"{what} answered {status} with {mimetype}: {data[:300]!r}"
    body = json.loads(data)
    assert isinstance(body, dict) and set(body) == {"code", "message"}, f"{what}: error body {body!r}"
    assert body["code"] == status, f"{what}: code {body['code']} in a {status} response"
    assert isinstance(body["message"], str) and body["message"], f"{what}: empty message"


def run_fuzz(app, n: int, strategy: st.SearchStrategy[Any], test: Callable[[Any], None], explicit: tuple[Any, ...] = ()) -> None:  # type: ignore[no-untyped-def]
    """Run ``test`` on ``n`` examples of ``strategy`` (fewer on PostgreSQL), inside this test's fixtures,
    after the ``explicit`` examples (regressions: inputs that once got a 5xx)."""

    @given(strategy)
    @hsettings(
        max_examples=examples(app, n),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no "explain": it hides the example
    )
    def fuzz(example: Any) -> None:
        test(example)

    for e in explicit:
        fuzz = hexample(e)(fuzz)
    fuzz()


# --- strategies -------------------------------------------------------------------------

#: Names the server looks for, so that arbitrary objects often hit real fields.
FIELD_NAMES = [
    "kind", "apiVersion", "spec", "signature", "content", "publicKey", "data", "hash", "algorithm", "value",
    "proposedContent", "envelope", "verifiers", "signatures", "envelopeHash", "payloadHash", "payload",
    "payloadType", "sig", "keyid", "entryUUIDs", "logIndexes", "entries", "email", "identity", "operator",
    "format", "url", "credentials", "oidcIdentityToken", "certificateSigningRequest", "publicKeyRequest",
    "proofOfPossession", "subject", "digest", "_type",
]  # fmt: skip
#: Strings with meaning somewhere in the server, or trouble for parsers and databases.
NASTY_STRINGS = [
    "", " ", "\x00", "\ud800", "\udfff", "\ufeff", "NaN", "Infinity", "-Infinity", "-0", "1e999", "0x10", "null",
    "hashedrekord", "dsse", "0.0.1", "0.0.2", "sha256", "sha384", "sha512", "md5", "x509", "pgp", "and", "or",
    "alice@example.com", "@", "a@b\x00", "sha256:" + "a" * 64, "a" * 64, "A" * 96, "0" * 80, "AAAA", "====",
    "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K", "-----BEGIN PUBLIC KEY-----\n", "application/vnd.in-toto+json",
    "Bearer", "' OR 1=1 --", "%00", "../../etc/passwd", "\u202e", "\U0001f600",
]  # fmt: skip
BIG_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**100, -(10**100)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(NASTY_STRINGS),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12), st.sampled_from(NASTY_STRINGS))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)

#: Raw JSON literals ``json.dumps`` never writes: Python's extensions (NaN,
#: Infinity), numbers too long for ``int()`` or too large for a float, and
#: number spellings JSON forbids.
RAW_LITERALS = [
    "NaN", "Infinity", "-Infinity", "1" * 5000, "-" + "9" * 4301, "1e99999", "-1e99999", "1E400", "0." + "0" * 400 + "1",
    "-0", "01", "+1", ".5", "1.", "0x10", "true", "null", '"\\ud800"', '"\\u0000"', '"\\uDFFF\\uD800"',
]  # fmt: skip
_MARK = "\x00raw{}\x00"


def _with_raw_literals(value: Any, picks: list[int]) -> str:
    text = json.dumps(value)
    for i in picks:
        text = text.replace(json.dumps(_MARK.format(i)), RAW_LITERALS[i], 1)
    return text


#: JSON texts, some with raw literals in them: a value with markers in place
#: of scalars, then each marker replaced by its literal.
raw_json_texts = st.one_of(
    json_values.map(json.dumps),
    st.sampled_from(RAW_LITERALS),
    st.lists(st.integers(0, len(RAW_LITERALS) - 1), min_size=1, max_size=3).flatmap(
        lambda picks: st.recursive(
            st.sampled_from([_MARK.format(i) for i in picks]) | scalars,
            lambda c: st.lists(c, min_size=1, max_size=3) | st.dictionaries(keys, c, min_size=1, max_size=3),
            max_leaves=6,
        ).map(lambda v: _with_raw_literals(v, picks))
    ),
)

CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "application/json; charset=utf-16", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "multipart/form-data", "application/octet-stream", "", "*/*",
    "application/json; boundary", ";;;", "application/yaml",
]  # fmt: skip
#: Raw request bodies: random bytes, broken UTF-8, UTF-16 JSON, form and multipart shapes.
raw_bodies = st.one_of(
    st.binary(max_size=600),
    raw_json_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode("utf-16")),
    json_values.map(lambda v: b"\xef\xbb\xbf" + json.dumps(v).encode()),  # UTF-8 BOM
    st.sampled_from([b"a=1&b=2", b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n', b"\x00" * 64, b"{" * 40, b"[" * 200]),
)

_TILE_CHARS = "0123456789x/.p"
tile_levels = st.one_of(
    st.integers(-3, 70).map(str),
    st.sampled_from(["00", "01", "1e1", "+1", "٣", "²", "0x1", " 0", "64", "63"]),
    st.text(alphabet="0123456789x.-", max_size=5),
)
tile_indexes = st.one_of(
    st.integers(0, 10**12).map(speclient.encode_tile_index),
    st.builds(lambda n, w: speclient.encode_tile_index(n) + f".p/{w}", st.integers(0, 10**6), st.integers(-1, 300)),
    st.lists(st.text(alphabet="0123456789x", min_size=0, max_size=5), min_size=1, max_size=8).map("/".join),
    st.text(alphabet=_TILE_CHARS, max_size=30),
    st.just("x000/" * 40 + "000"),
    st.just("x999/" * 30 + "999.p/255"),
)
#: Path segments: hex-ish (UUID-like), anything, and percent-encoded broken UTF-8.
segments = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", max_size=90),
    st.integers(0, 100).map(lambda n: "0" * n),
    st.text(max_size=30),
    st.sampled_from(NASTY_STRINGS),
)


def encode_segment(segment: str) -> str:
    return quote(segment.encode("utf-8", "surrogatepass"), safe="")


query_values = st.one_of(
    st.integers(-5, 5).map(str),
    st.integers().map(str),
    st.sampled_from(["", "0", "1", "2", "3", "00", "01", "+1", " 1", "1 ", "1.0", "1e3", "٣", "²", "9" * 19, "9" * 20, str(2**63), str(2**63 - 1), "-0", "true", "\x00"]),
    st.text(max_size=20),
)
query_names = st.one_of(st.sampled_from(["logIndex", "firstSize", "lastSize", "treeID", "uuid"]), st.text(max_size=8))
query_strings = st.lists(st.tuples(query_names, query_values), max_size=4).map(
    lambda pairs: "&".join(f"{encode_segment(k)}={encode_segment(v)}" for k, v in pairs)
)


@st.composite
def get_requests(draw: st.DrawFn, uuid: str) -> tuple[str, str]:
    """(method, path with query) for every GET endpoint, with hostile parts."""
    kind = draw(st.sampled_from(["fixed", "uuid", "tile", "bundle", "cert-tile", "cert-bundle", "random"]))
    if kind == "fixed":
        path = draw(st.sampled_from(GET_ENDPOINTS))
    elif kind == "uuid":
        seg = draw(st.one_of(segments, st.sampled_from([uuid, uuid[16:], uuid.upper(), "f" * 16 + uuid[16:], uuid + "0", uuid[:-1]])))
        path = "/api/v1/log/entries/" + encode_segment(seg)
    elif kind in ("tile", "cert-tile"):
        prefix = "/certificates" if kind == "cert-tile" else ""
        path = f"{prefix}/tile/{encode_segment(draw(tile_levels))}/{quote(draw(tile_indexes), safe='/')}"
    elif kind in ("bundle", "cert-bundle"):
        prefix = "/certificates" if kind == "cert-bundle" else ""
        path = f"{prefix}/tile/entries/{quote(draw(tile_indexes), safe='/')}"
    else:
        path = "/" + "/".join(encode_segment(s) for s in draw(st.lists(segments, max_size=5)))
        if path.startswith("//"):  # the test client would take what follows for a host name
            path = "/x" + path
    query = draw(query_strings)
    method = draw(st.sampled_from(["GET"] * 6 + ["HEAD", "OPTIONS", "DELETE", "PUT", "PATCH"]))
    return method, path + ("?" + query if query else "")


# --- mutations of valid requests ----------------------------------------------------------


def node_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (tuples of keys and indexes) to every node of a JSON document, root first."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += node_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += node_paths(v, (*prefix, i))
    return out


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def string_tweaks(s: str) -> st.SearchStrategy[str]:
    """Near misses of a valid string: cut, extended, one character changed, re-encoded."""
    options = [
        st.integers(0, max(0, len(s) - 1)).map(lambda i: s[:i]),
        st.text(max_size=8).map(lambda t: s + t),
        st.tuples(st.integers(0, max(0, len(s) - 1)), st.characters()).map(lambda p: s[: p[0]] + p[1] + s[p[0] + 1 :]),
        st.just(s.upper()),
        st.just(s * 3),
        st.just(s + "="),
        st.just(" " + s),
    ]
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:
        raw = None
    if raw:
        options += [
            st.integers(0, len(raw) - 1).map(lambda i: base64.b64encode(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :]).decode()),
            st.just(base64.urlsafe_b64encode(raw).decode().rstrip("=")),
            st.just(base64.b64encode(raw[: len(raw) // 2]).decode()),
            st.just(base64.b64encode(raw.replace(b"\n", b"\r\n")).decode()),
        ]
    return st.one_of(options)


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with 1 to 3 mutations: replace a node, drop a member or item, add a member."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(node_paths(doc)))
        node = get_at(doc, path)
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "replace":
            new = draw(string_tweaks(node) if isinstance(node, str) and draw(st.booleans()) else json_values)
            if not path:
                doc = new
            else:
                get_at(doc, path[:-1])[path[-1]] = new
        elif op == "delete" and path:
            del get_at(doc, path[:-1])[path[-1]]
        elif op == "add" and isinstance(node, dict):
            node[draw(keys)] = draw(json_values)
        elif op == "add" and isinstance(node, list):
            node.insert(draw(st.integers(0, len(node))), draw(json_values))
    return doc


# === 1. Hypothesis fuzzing ===============================================================


def test_arbitrary_json_to_every_post_endpoint(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)
    strategy = st.tuples(st.sampled_from(POST_ENDPOINTS), raw_json_texts, st.sampled_from(["application/json", "text/plain", ""]))

    def test(example: tuple[str, str, str]) -> None:
        path, text, content_type = example
        checker.open("POST", path, data=text.encode("utf-8", "surrogatepass"), content_type=content_type)

    run_fuzz(app, 600, strategy, test, explicit=tuple((p, t, "application/json") for p in POST_ENDPOINTS for t in ("1" * 5000, '{"logIndexes": [' + "9" * 4400 + "]}", "NaN", '{"a": -Infinity}')))


def test_arbitrary_bytes_with_any_content_type(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)
    strategy = st.tuples(st.sampled_from(POST_ENDPOINTS), raw_bodies, st.sampled_from(CONTENT_TYPES))

    def test(example: tuple[str, bytes, str]) -> None:
        path, body, content_type = example
        checker.open("POST", path, data=body, content_type=content_type)

    run_fuzz(app, 300, strategy, test)


def test_mutated_valid_requests(app, world) -> None:  # type: ignore[no-untyped-def]
    """Every valid request shape, with nodes replaced, dropped or added; sometimes still valid."""
    checker = Checker(app)
    templates = world["templates"]
    fresh_dsse = world["fresh_dsse"]

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, Any, dict[str, str]]:
        name = draw(st.sampled_from(sorted(templates)))
        path, template = templates[name]
        body = draw(mutated(template))
        if name == "dsse-envelope":  # the envelope is a JSON string inside the request
            outer = copy.deepcopy(fresh_dsse)
            outer["spec"]["proposedContent"]["envelope"] = json.dumps(body)
            body = outer
        headers: dict[str, str] = {}
        if path == "/api/v2/signingCert" and draw(st.booleans()):
            token = world["token"]
            headers["Authorization"] = draw(
                st.one_of(
                    st.just(f"Bearer {token}"),
                    string_tweaks(f"Bearer {token}"),
                    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
                    st.sampled_from(["Bearer", "Bearer ", "bearer " + token, "Basic " + token, "Bearer  " + token + " x"]),
                ).filter(lambda h: "\r" not in h and "\n" not in h)  # the client cannot send those
            )
        return path, body, headers

    def test(example: tuple[str, Any, dict[str, str]]) -> None:
        path, body, headers = example
        checker.open("POST", path, data=json.dumps(body), content_type="application/json", headers=headers)

    run_fuzz(app, 600, requests(), test)


def test_mutated_proposed_entries_in_searches(app, world) -> None:  # type: ignore[no-untyped-def]
    """A proposed entry inside ``entries`` of a search is checked exactly as a submission: never a 5xx."""
    checker = Checker(app)
    proposed = [t for name, (_p, t) in world["templates"].items() if name in ("hashedrekord", "hashedrekord-bare-key", "dsse")]
    strategy = st.sampled_from(proposed).flatmap(mutated)

    def test(entry: Any) -> None:
        checker.open("POST", "/api/v1/log/entries/retrieve", json={"entries": [entry]})

    run_fuzz(app, 200, strategy, test)


def test_every_get_endpoint_with_hostile_paths_and_queries(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)

    def test(example: tuple[str, str]) -> None:
        method, url = example
        checker.open(method, url)

    run_fuzz(app, 800, get_requests(world["uuid"]), test)
    assert checker.statuses.get(200), checker.statuses  # the generator does reach real content


# --- validly signed entries and tokens that carry hostile content -------------------------

ia5_text = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=1200),
    st.sampled_from(["a" * 600 + "@example.com", "a\x00b@example.com", "https://example.com/" + "p" * 1100, "@", "x\x00"]),
)
digest_values = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", max_size=1100),
    st.sampled_from(["a" * 64, "A" * 128, "a" * 1024, "a" * 1025, ""]),
    json_values,
)
algorithms = st.one_of(
    st.sampled_from(["sha256", "sha384", "sha512", "sha1", "SHA256", "gitCommit", "sha3_512", "a" * 32, "a" * 33, "md5", ""]),
    st.text(max_size=40),
)
subjects = st.lists(
    st.one_of(
        st.fixed_dictionaries({"name": st.text(max_size=20), "digest": st.dictionaries(algorithms, digest_values, max_size=4)}),
        json_values,
    ),
    max_size=5,
)
statements = st.one_of(
    st.fixed_dictionaries({"_type": st.just(IN_TOTO), "subject": subjects, "predicateType": st.text(max_size=20), "predicate": json_values}),
    json_values,
)


def test_signed_dsse_with_hostile_statements(app, world) -> None:  # type: ignore[no-untyped-def]
    """Correctly signed DSSE envelopes whose in-toto statements are anything at all."""
    checker = Checker(app)
    ident = world["ident"]

    def test(statement: Any) -> None:
        checker.open("POST", "/api/v1/log/entries", json=speclient.dsse(ident, statement))

    long_digest = {"_type": IN_TOTO, "subject": [{"name": "a", "digest": {"sha3_512": "a" * 1024}}], "predicateType": "x", "predicate": {}}
    run_fuzz(app, 150, statements, test, explicit=(long_digest,))


def test_signed_hashedrekord_with_hostile_certificate_sans(app, world) -> None:  # type: ignore[no-untyped-def]
    """Correctly signed entries whose certificate's email and URI SANs are odd or enormous."""
    checker = Checker(app)
    strategy = st.tuples(ia5_text, st.none() | ia5_text)

    def test(sans: tuple[str, str | None]) -> None:
        email, uri = sans
        try:
            ident = speclient.make_identity(email, uri=uri)
        except ValueError:
            assume(False)  # a SAN cryptography itself will not encode
        req, _digest = speclient.hashedrekord(ident)
        resp = checker.open("POST", "/api/v1/log/entries", json=req)
        if resp.status_code == 201:  # and what was stored can be searched for without a 5xx
            checker.open("POST", "/api/v1/index/retrieve", json={"email": email[:320] if "@" in email else "a@b", "identity": uri or "x"})

    run_fuzz(app, 120, strategy, test, explicit=(("a" * 600 + "@example.com", None), ("a\x00b@example.com", None), ("a@example.com", "https://example.com/" + "p" * 1100)))


GITHUB_CLAIMS = ["repository", "ref", "job_workflow_ref", "workflow_ref", "sha", "event_name", "repository_owner", "run_id", "environment"]
claim_names = st.one_of(st.sampled_from(["email", "sub", "email_verified", "aud", "exp", "iat", "nbf", "iss", "jti", *GITHUB_CLAIMS]), st.text(max_size=10))
claim_values = st.one_of(
    json_values,
    ia5_text,
    st.text(max_size=600),
    st.text(alphabet="abcxyz0123/._-@", min_size=1, max_size=700),  # valid in a URI SAN, often too long to index
    st.just(time.time()),
    st.integers(-(2**70), 2**70),
)


def test_signed_tokens_with_hostile_claims(app, world) -> None:  # type: ignore[no-untyped-def]
    """Tokens correctly signed by a trusted issuer whose claims are anything at all."""
    checker = Checker(app)
    dev = world["dev"]
    csr = world["templates"]["signingCert-csr"][1]["certificateSigningRequest"]
    strategy = st.tuples(st.sampled_from(["email", "github"]), st.dictionaries(claim_names, claim_values, min_size=1, max_size=3))

    def test(example: tuple[str, dict[str, Any]]) -> None:
        kind, claims = example
        subject = "alice@example.com" if kind == "email" else "org/repo"
        try:
            token = dev.mint(subject, type=kind, extra_claims=claims)
        except (TypeError, ValueError, OverflowError):
            assume(False)
        checker.open("POST", "/api/v2/signingCert", json={"certificateSigningRequest": csr}, headers={"Authorization": f"Bearer {token}"})

    lone_surrogate = "\udfff"  # a JSON string may escape one; it has no UTF-8 encoding (was a 500)
    run_fuzz(app, 150, strategy, test, explicit=(
        ("github", {"job_workflow_ref": "org/repo/" + "a" * 600}),
        ("github", {"job_workflow_ref": "org/repo/" + lone_surrogate}),
        ("email", {"sub": lone_surrogate}),
    ))  # fmt: skip


@pytest.mark.parametrize(("kind", "claims", "where"), [
    ("github", {"job_workflow_ref": "org/repo/\udfff"}, "job_workflow_ref"),  # a claim the certificate carries (was a 500)
    ("email", {"unused": {"deep": ["\ud800"]}}, "unused.deep[0]"),  # or any other
])  # fmt: skip
def test_tokens_whose_payload_escapes_a_lone_surrogate_are_refused(app, world, kind: str, claims: dict[str, Any], where: str) -> None:  # type: ignore[no-untyped-def]
    """A correctly signed token whose claims hold half a surrogate pair: 401 naming the claim, no certificate."""
    checker = Checker(app)
    subject = "alice@example.com" if kind == "email" else "org/repo"
    token = world["dev"].mint(subject, type=kind, extra_claims=claims)
    csr = world["templates"]["signingCert-csr"][1]["certificateSigningRequest"]
    resp = checker.open("POST", "/api/v2/signingCert", json={"certificateSigningRequest": csr}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, resp.data[:300]
    message = resp.get_json()["message"]
    assert "lone UTF-16 surrogate" in message and f"in the payload, {where} " in message, message


def test_headers_and_methods(app, world) -> None:  # type: ignore[no-untyped-def]
    """Odd headers (Content-Length lies, encodings, duplicated auth) and every method on every path."""
    checker = Checker(app)
    header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
    strategy = st.tuples(
        st.sampled_from(POST_ENDPOINTS + GET_ENDPOINTS),
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
        st.dictionaries(st.sampled_from(["Authorization", "Content-Encoding", "Accept", "Transfer-Encoding", "X-Forwarded-For", "Expect"]), header_values, max_size=3),
        json_values,
    )

    def test(example: tuple[str, str, dict[str, str], Any]) -> None:
        path, method, headers, body = example
        kwargs: dict[str, Any] = {"headers": headers}
        if method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            kwargs.update(data=json.dumps(body), content_type="application/json")
        checker.open(method, path, **kwargs)

    run_fuzz(app, 300, strategy, test)


# === 2. Schemathesis against our OpenAPI document ============================================


def test_schemathesis_every_operation(app, world) -> None:  # type: ignore[no-untyped-def]
    """Schemathesis, from ``/api/v1/openapi.json``, over every operation, positive and negative data.

    Checks: not_a_server_error, status_code_conformance, content_type_conformance,
    response_headers_conformance, response_schema_conformance and
    negative_data_rejection, plus this file's own properties (error shape, no
    state change unless a writer answered 2xx). positive_data_acceptance is
    left out: schema-valid requests are routinely refused for reasons no schema
    can state (a signature that does not verify, a size beyond the tree).
    """
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as openapi_checks

    from tlog.api import openapi

    checks = [
        not_a_server_error,
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_headers_conformance,
        openapi_checks.response_schema_conformance,
        openapi_checks.negative_data_rejection,
    ]
    # A body over the size limit is refused with 413, which schemathesis does not count as a refusal.
    rejections = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": rejections}}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    checker = Checker(app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # Schemathesis parses an application/yaml body as YAML; our document
        # describes GET /api/v1/openapi.yaml as the YAML text (a string), as
        # test_openapi checks it. The JSON twin's schema is checked here.
        op_checks = [c for c in checks if not (operation.path == "/api/v1/openapi.yaml" and c is openapi_checks.response_schema_conformance)]
        # Negative data needs something to break; the trailing-slash twin of
        # /api/v1/log/entries/retrieve shares its schema, so positive data is enough there.
        has_input = any(True for _ in operation.iter_parameters()) or any(True for _ in operation.body)
        twin = operation.path == "/api/v1/log/entries/retrieve/"
        # Generating request bodies for these schemas is slow (about 0.3 s a case): fewer of them.
        n = 10 if operation.method.upper() == "POST" else 25
        for mode in [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input and not twin else []):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hsettings(
                max_examples=n if not is_postgres(app) else max(5, n // 3),
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                response = case.call()
                case.validate_response(response, checks=op_checks)  # noqa: B023 - run() is called right below
                content_type = response.headers.get("content-type", [None])[0]
                mimetype = content_type.split(";")[0].strip() if content_type else None
                checker.check(case.method.upper(), case.formatted_path, response.status_code, response.content, mimetype)

            try:
                run()
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    # Every documented operation but the document itself, which schemathesis leaves out.
    documented = sum(1 for item in openapi.document()["paths"].values() for m in item if m in ("get", "post"))
    assert operations == documented - 1, (operations, documented)
    assert not failures, "\n\n".join(failures)


# === 3. Limits ==============================================================================


def test_body_size_limit_names_the_limit(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)
    over = b'{"pad": "' + b"x" * DEFAULT_BODY_LIMIT + b'"}'
    at = b"{}" + b" " * (DEFAULT_BODY_LIMIT - 2)
    for path in POST_ENDPOINTS:
        resp = checker.open("POST", path, data=over, content_type="application/json")
        assert resp.status_code == 413, (path, resp.data)
        assert f"{DEFAULT_BODY_LIMIT} bytes" in resp.get_json()["message"]
        # Without a Content-Length (a chunked upload, as gunicorn passes it on),
        # werkzeug stops reading at the limit: that must be a 413 too, not a parsed prefix.
        resp = checker.client.open(
            path,
            method="POST",
            input_stream=io.BytesIO(over),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        checker.check("POST", path, resp.status_code, resp.data, resp.mimetype)
        assert resp.status_code == 413, (path, resp.data)
        # Exactly at the limit is not refused for its size.
        resp = checker.open("POST", path, data=at, content_type="application/json")
        assert resp.status_code != 413, (path, resp.data)


def nested(depth: int) -> str:
    """JSON ``depth`` containers deep, arrays and objects alternating: ``{"a": [{"a": [1]}]}``."""
    inner = "1"
    for i in range(depth):
        inner = f'{{"a": {inner}}}' if i % 2 else f"[{inner}]"
    return inner


def test_json_nesting_depth_limit(app, world) -> None:  # type: ignore[no-untyped-def]
    from tlog.api.schemas import MAX_JSON_DEPTH

    assert MAX_JSON_DEPTH == 32
    checker = Checker(app)
    for path in POST_ENDPOINTS:
        resp = checker.open("POST", path, data=nested(MAX_JSON_DEPTH), content_type="application/json")
        assert resp.status_code == 400 and "nested" not in resp.get_json()["message"], (path, resp.data)
        for depth in (MAX_JSON_DEPTH + 1, 200, 5000, 20_000):
            resp = checker.open("POST", path, data=nested(depth), content_type="application/json")
            message = resp.get_json()["message"]
            assert resp.status_code == 400 and "nested" in message and str(MAX_JSON_DEPTH) in message, (path, depth, message)
    # A valid request is well within the limit: a proposed entry inside a search is 7 deep.
    resp = checker.open("POST", "/api/v1/log/entries/retrieve", json={"entries": [world["templates"]["hashedrekord"][1]]})
    assert resp.status_code == 200, resp.data


def test_retrieve_batch_limits(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)
    uuid = world["uuid"]
    ok = checker.open("POST", "/api/v1/log/entries/retrieve", json={"entryUUIDs": [uuid] * 50, "logIndexes": [0] * 50})
    assert ok.status_code == 200 and len(ok.get_json()) == 100
    for query in (
        {"logIndexes": list(range(101))},
        {"entryUUIDs": [uuid] * 101},
        {"entryUUIDs": [uuid] * 50, "logIndexes": [0] * 51},
        {"entryUUIDs": [uuid] * 40, "logIndexes": [0] * 40, "entries": [world["templates"]["hashedrekord"][1]] * 21},
    ):
        resp = checker.open("POST", "/api/v1/log/entries/retrieve", json=query)
        assert resp.status_code == 400 and "100" in resp.get_json()["message"], resp.data
    # Indexes are int64, as documented: one past the largest is refused, not looked up.
    assert checker.open("POST", "/api/v1/log/entries/retrieve", json={"logIndexes": [2**63 - 1]}).get_json() == []
    resp = checker.open("POST", "/api/v1/log/entries/retrieve", json={"logIndexes": [2**63]})
    assert resp.status_code == 400 and "logIndexes[0]" in resp.get_json()["message"], resp.data


def test_index_search_result_limit(settings) -> None:  # type: ignore[no-untyped-def]
    """An index search answers at most ``max_search_results`` UUIDs, the oldest first."""
    from tlog.api.app import create_app

    app = create_app(_without_rate_limits(settings.replace(max_search_results=3)))
    try:
        checker = Checker(app)
        ident = speclient.make_identity("many@example.com")
        for _ in range(5):
            assert checker.open("POST", "/api/v1/log/entries", json=speclient.hashedrekord(ident)[0]).status_code == 201
        first3 = [next(iter(checker.open("GET", f"/api/v1/log/entries?logIndex={i}").get_json())) for i in range(3)]
        for query in ({"email": "many@example.com"}, {"email": "many@example.com", "operator": "and", "identity": "many@example.com"}):
            found = checker.open("POST", "/api/v1/index/retrieve", json=query).get_json()
            assert found == first3, query
    finally:
        app.extensions["tlog"].engine.dispose()


HUGE = 100 * 1024
#: (path, body, a word the message must contain): strings far beyond any real value, or
#: that no database column can hold, each refused with a 4xx that does not echo them.
ABSURD_STRINGS: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v1/index/retrieve", {"email": "a" * HUGE + "@example.com"}, "email"),
    ("/api/v1/index/retrieve", {"email": "a@" + "b" * 320}, "email"),
    ("/api/v1/index/retrieve", {"identity": "https://" + "a" * HUGE}, "identity"),
    ("/api/v1/index/retrieve", {"identity": "x" * 1025}, "identity"),
    ("/api/v1/index/retrieve", {"hash": "sha256:" + "a" * HUGE}, "hash"),
    ("/api/v1/index/retrieve", {"publicKey": {"format": "x509", "content": "QUFB" * (HUGE // 4)}}, "publicKey"),
    ("/api/v1/index/retrieve", {"email": "a\x00@example.com"}, "email"),
    ("/api/v1/index/retrieve", {"identity": "https://example.com/\x00"}, "identity"),
    ("/api/v1/index/retrieve", {"email": "\ud800@example.com"}, "email"),
    ("/api/v1/index/retrieve", {"identity": "\udfff"}, "identity"),
    ("/api/v1/log/entries/retrieve", {"entryUUIDs": ["a" * HUGE]}, "uuid"),
    ("/api/v1/log/entries", {"kind": "k" * HUGE, "apiVersion": "0.0.1", "spec": {}}, "kind"),
    ("/api/v2/signingCert", {"certificateSigningRequest": "QUFB" * (HUGE // 4)}, "too large"),
    ("/api/v2/signingCert", {"credentials": {"oidcIdentityToken": "e" * HUGE}, "certificateSigningRequest": "QUFB"}, "token"),
]


def test_absurd_strings_are_refused(app, world) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(app)
    bearer = {"Authorization": f"Bearer {world['token']}"}
    for path, body, words in ABSURD_STRINGS:
        headers = bearer if path == "/api/v2/signingCert" and "credentials" not in body else {}
        resp = checker.open("POST", path, data=json.dumps(body), content_type="application/json", headers=headers)
        assert 400 <= resp.status_code < 500, (path, resp.data[:300])
        message = resp.get_json()["message"]
        assert words.lower() in message.lower(), (path, message[:300])
        assert len(message) < 2000, f"{path}: an error message must not echo an absurd input back in full"


def test_request_time_gunicorn_kills_stuck_workers(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    """``tlog serve`` runs gunicorn with a 60 s worker timeout: a worker stuck longer is killed
    and replaced. A slow query is cut off well before that (see the statement timeout)."""
    from tlog import server
    from tlog.storage import db

    captured: dict[str, Any] = {}

    class FakeGunicorn:
        def __init__(self, _factory: Any, options: dict[str, Any]) -> None:
            captured.update(options)

        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "GunicornApp", FakeGunicorn)
    # serve() points PROMETHEUS_MULTIPROC_DIR at a directory it removes on return:
    # put the variable back as it was, or /metrics fails in every later test of this process.
    # (setenv first: delenv of an absent variable records nothing to undo.)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    server.serve(settings, host="127.0.0.1", port=1, workers=1, threads=1, access_log=False)
    assert captured["timeout"] == 60
    assert captured["graceful_timeout"] <= captured["timeout"]
    assert db.PG_STATEMENT_TIMEOUT_MS / 1000 < captured["timeout"]


@pytest.mark.postgres
def test_postgres_statement_timeout(postgres_url) -> None:  # type: ignore[no-untyped-def]
    """Every connection from ``create_engine`` has a statement timeout: a slow query raises."""
    from tlog.storage import db

    engine = db.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == f"{db.PG_STATEMENT_TIMEOUT_MS // 1000}s"
    finally:
        engine.dispose()
    quick = db.create_engine(postgres_url, statement_timeout_ms=300)
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"), quick.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(15)"))
        assert time.monotonic() - started < 5
        with quick.connect() as conn:  # the pool goes on serving
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        quick.dispose()


@pytest.mark.postgres
def test_postgres_slow_query_answers_503(monkeypatch, tmp_path, postgres_url) -> None:  # type: ignore[no-untyped-def]
    """A request whose query runs past the statement timeout gets a 503 with Retry-After, not a hung worker."""
    from tlog.api.app import create_app
    from tlog.storage import db

    monkeypatch.setattr(db, "PG_STATEMENT_TIMEOUT_MS", 300)
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=postgres_url, origin="slow.example/log"))
    try:
        svc = app.extensions["tlog"]
        real = svc.log.latest_cosigned_head

        def slow_head() -> Any:
            with svc.engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_sleep(15)"))
            return real()

        monkeypatch.setattr(svc.log, "latest_cosigned_head", slow_head)
        client = app.test_client()
        started = time.monotonic()
        resp = client.get("/api/v1/log")
        assert time.monotonic() - started < 5
        assert resp.status_code == 503 and resp.headers["Retry-After"], resp.data
        check_error_body(503, resp.data, resp.mimetype, "GET /api/v1/log")
        monkeypatch.setattr(svc.log, "latest_cosigned_head", real)
        assert client.get("/api/v1/log").status_code == 200
    finally:
        app.extensions["tlog"].engine.dispose()


LONE_SURROGATE_BODIES: list[tuple[str, str, str]] = [
    # (path, JSON text, the place the message must name); was a 500 on the CA's public key
    ("/api/v2/signingCert", '{"publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": "\\udfff"}, "proofOfPossession": "AA=="}}', "publicKeyRequest.publicKey.content"),
    ("/api/v2/signingCert", '{"certificateSigningRequest": "\\ud800QUFB"}', "certificateSigningRequest"),
    ("/api/v1/log/entries", '{"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": {"signature": {"content": "\\udc00"}}}', "spec.signature.content"),
    ("/api/v1/log/entries/retrieve", '{"entryUUIDs": ["ab", "\\udbff"]}', "entryUUIDs[1]"),
    ("/api/v1/index/retrieve", '{"\\ud800": "x"}', "a member name in the top-level object"),
]


@pytest.mark.parametrize(("path", "text", "where"), LONE_SURROGATE_BODIES)
def test_lone_surrogates_in_request_bodies_are_400(app, world, path: str, text: str, where: str) -> None:  # type: ignore[no-untyped-def]
    """JSON may escape half of a UTF-16 surrogate pair; the result is no Unicode character and has
    no UTF-8 encoding. Every request body is refused with a 400 naming where it is (RFC 7493 2.1);
    an escaped pair (an emoji) is fine."""
    checker = Checker(app)
    headers = {"Authorization": f"Bearer {world['token']}"} if path == "/api/v2/signingCert" else {}
    resp = checker.open("POST", path, data=text, content_type="application/json", headers=headers)
    assert resp.status_code == 400, resp.data[:300]
    message = resp.get_json()["message"]
    assert "lone UTF-16 surrogate" in message and where in message, message
    paired = text.replace("\\udfff", "\\ud83d\\ude00").replace("\\ud800", "\\ud83d\\ude00")
    paired = paired.replace("\\udc00", "\\ud83d\\ude00").replace("\\udbff", "\\ud83d\\ude00")
    resp = checker.open("POST", path, data=paired, content_type="application/json", headers=headers)
    assert resp.status_code < 500 and "surrogate" not in resp.get_json().get("message", ""), resp.data[:300]
