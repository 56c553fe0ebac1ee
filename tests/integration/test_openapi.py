"""``tlog/api/openapi.yaml`` is valid OpenAPI 3.0, complete, and true to the server.

* the document validates as OpenAPI 3.0 and its examples match their schemas;
* every Flask route is documented with its methods, and every documented
  operation is routed, on a server with everything on (the CA, which is the
  default, and the development OIDC issuer); without the CA or the dev
  issuer, their documented paths answer the documented 404;
* live responses, success and error alike, on SQLite and PostgreSQL, match the
  documented status codes, headers, media types and schemas; requests the
  server accepts match the documented request schemas, and requests that break
  a documented schema are refused.

OpenAPI 3.0 schema objects are turned into JSON Schema draft 4 (``$ref``
inlined, ``nullable`` expanded, annotation-only keywords dropped) and checked
with ``jsonschema``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import jwt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from openapi_spec_validator import OpenAPIV30SpecValidator
from openapi_spec_validator import validate as validate_openapi
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

import speclient
from tlog.api import openapi
from tlog.ca.devoidc import DevIssuer
from tlog.checkpoint import open_checkpoint
from tlog.config import Settings
from tlog.errors import Unavailable
from tlog.note import ECDSAVerifier

DOC: dict[str, Any] = openapi.document()
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: Methods Flask adds to every rule by itself; not documented per operation.
AUTOMATIC = {"HEAD", "OPTIONS"}
#: Keywords that only annotate (or that draft 4 spells differently) and are dropped.
ANNOTATIONS = {"nullable", "discriminator", "example", "examples", "readOnly", "writeOnly", "xml", "externalDocs", "deprecated"}


# --- the document as JSON Schema ------------------------------------------------------


def deref(node: Any) -> Any:
    """Follow a local ``$ref`` (repeatedly) to the object it names."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema object as an equivalent self-contained JSON Schema draft 4."""
    schema = deref(schema)
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "properties":
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = json_schema(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [json_schema(sub) for sub in value]
        else:
            out[key] = value
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def validate(instance: Any, schema: Any, what: str) -> None:
    validator = jsonschema.Draft4Validator(json_schema(schema))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        details = "\n".join(f"  at {list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])
        raise AssertionError(f"{what} does not match its documented schema:\n{details}")


def is_valid(instance: Any, schema: Any) -> bool:
    return jsonschema.Draft4Validator(json_schema(schema)).is_valid(instance)


ENTRY_BODY = {"$ref": "#/components/schemas/EntryBody"}


def check_entry_bodies(instance: Any, what: str) -> None:
    """Every log entry's decoded ``body`` matches the documented ``EntryBody``."""
    if isinstance(instance, list):
        for item in instance:
            check_entry_bodies(item, what)
    elif isinstance(instance, dict):
        if {"body", "integratedTime", "logID", "logIndex", "verification"} <= set(instance) and isinstance(instance["body"], str):
            validate(json.loads(base64.b64decode(instance["body"])), ENTRY_BODY, f"{what}: decoded body")
        else:
            for value in instance.values():
                check_entry_bodies(value, what)


# --- operations -----------------------------------------------------------------------


def operations() -> list[tuple[str, str]]:
    return [(path, method) for path, item in DOC["paths"].items() for method in item if method in HTTP_METHODS]


def parameters(path: str, method: str) -> list[dict[str, Any]]:
    item = DOC["paths"][path]
    return [deref(p) for p in item.get("parameters", []) + item[method].get("parameters", [])]


def template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join(".+" if p.startswith("{") else re.escape(p) for p in parts) + r"\Z")


def literal_length(template: str) -> int:
    return len(re.sub(r"\{[^}]+\}", "", template))


def documented_path(path: str, method: str | None) -> str | None:
    """The most specific documented template that matches ``path`` (and has ``method``)."""
    matches = [
        t for t, item in DOC["paths"].items() if (method is None or method in item) and template_regex(t).match(path)
    ]
    return max(matches, key=literal_length) if matches else None


def example_url(path: str, method: str) -> str:
    url = path
    for p in parameters(path, method):
        if p["in"] == "path":
            assert "example" in p, f"path parameter {p['name']} of {path} has no example"
            url = url.replace("{" + p["name"] + "}", str(p["example"]))
    assert "{" not in url, url
    return url


# --- a test client that checks every exchange against the document --------------------


class CheckedClient:
    """Flask's test client; each response (and each accepted request) must match the document."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.seen: set[tuple[str, str, int]] = set()

    def get(self, url: str, **kw: Any) -> Any:
        return self.open("get", url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.open("post", url, **kw)

    def open(self, method: str, url: str, **kw: Any) -> Any:
        resp = self.client.open(url, method=method.upper(), **kw)
        path = urlsplit(url).path
        template = documented_path(path, method)
        what = f"{method.upper()} {url[:120]} -> {resp.status_code}"
        if template is None:
            # Not an operation: 405 for a documented path, else 404.
            if documented_path(path, None) is not None:
                assert resp.status_code == 405, what
                response = deref({"$ref": "#/components/responses/MethodNotAllowed"})
            else:
                assert resp.status_code == 404, what
                response = deref({"$ref": "#/components/responses/NotFound"})
        else:
            op = DOC["paths"][template][method]
            responses = op["responses"]
            assert str(resp.status_code) in responses, f"{what}: status not documented for {method.upper()} {template}"
            response = deref(responses[str(resp.status_code)])
            self.seen.add((template, method, resp.status_code))
            if "json" in kw and (resp.status_code < 300 or resp.status_code == 409):
                validate(kw["json"], op["requestBody"]["content"]["application/json"]["schema"], f"{what}: request body")
        check_response(resp, response, what)
        return resp


def check_response(resp: Any, response: dict[str, Any], what: str) -> None:
    for name, header in response.get("headers", {}).items():
        header = deref(header)
        if header.get("required"):
            assert name in resp.headers, f"{what}: missing header {name}"
        if name in resp.headers:
            value: Any = resp.headers[name]
            if deref(header["schema"]).get("type") == "integer":
                assert value.isdigit(), f"{what}: header {name}: {value!r}"
                value = int(value)
            validate(value, header["schema"], f"{what}: header {name}")
    content = response.get("content")
    if not content:
        assert not resp.data, f"{what}: undocumented body"
        return
    assert resp.mimetype in content, f"{what}: media type {resp.mimetype} not in {list(content)}"
    schema = deref(content[resp.mimetype]["schema"])
    if resp.mimetype == "application/json":
        body = json.loads(resp.data)
        validate(body, schema, what)
        check_entry_bodies(body, what)
    elif schema.get("format") == "binary":
        assert schema.get("minLength", 0) <= len(resp.data) <= schema.get("maxLength", len(resp.data)), what
    else:
        validate(resp.data.decode("utf-8"), schema, what)


#: The server's public URL, on which the dev issuer's URLs are built. Nothing
#: listens there and nothing needs to: the server trusts the dev issuer's keys
#: in-process, so verifying its tokens makes no HTTP request.
DEV_PUBLIC_URL = "http://127.0.0.1:1"


def create_app(settings: Settings):  # type: ignore[no-untyped-def]
    from tlog.api.app import create_app as create

    return create(settings)


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    """Everything on: the signing CA (the default) and the development OIDC issuer."""
    app = create_app(settings.replace(dev_oidc=True, public_url=DEV_PUBLIC_URL))
    assert app.extensions["tlog"].ca is not None and app.extensions["tlog"].ca.dev_issuer is not None
    yield app
    app.extensions["tlog"].engine.dispose()


@pytest.fixture
def api(client) -> CheckedClient:  # type: ignore[no-untyped-def]
    return CheckedClient(client)


# --- (a) the document itself ----------------------------------------------------------


def test_document_is_valid_openapi_3_0() -> None:
    assert re.fullmatch(r"3\.0\.\d+", DOC["openapi"])
    validate_openapi(DOC, cls=OpenAPIV30SpecValidator)


def _examples(node: Any, where: str) -> list[tuple[str, Any, Any]]:
    """(where, example, schema) for every example in the document."""
    found = []
    if isinstance(node, dict):
        if "example" in node and "$ref" not in node:
            schema = node["schema"] if "schema" in node else node
            found.append((where, node["example"], schema))
        if "schema" in node and isinstance(node.get("examples"), dict):
            for name, ex in node["examples"].items():
                found.append((f"{where}/examples/{name}", deref(ex)["value"], node["schema"]))
        for key, value in node.items():
            if key not in ("example", "examples"):
                found.extend(_examples(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_examples(value, f"{where}/{i}"))
    return found


def test_every_example_matches_its_schema() -> None:
    examples = _examples(DOC, "#")
    assert len(examples) > 30
    for where, example, schema in examples:
        validate(example, schema, f"example {where}")
        check_entry_bodies(example, f"example {where}")


def test_every_operation_documents_its_errors_as_error_objects() -> None:
    error = deref({"$ref": "#/components/schemas/Error"})
    for path, method in operations():
        responses = DOC["paths"][path][method]["responses"]
        for status, response in responses.items():
            response = deref(response)
            if int(status) >= 400:
                schema = deref(response["content"]["application/json"]["schema"])
                base, code = schema["allOf"]
                assert deref(base) is error, (path, method, status)
                assert code["properties"]["code"]["enum"] == [int(status)], (path, method, status)


# --- (b) routes and documented paths agree --------------------------------------------


def app_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(rule, METHOD) of every route of ``app``."""
    return {
        (rule.rule, m)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("explorer.")
        for m in (rule.methods or set()) - AUTOMATIC
    }


def routed_operations(app) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """The routes the documented operations reach, and the operations that reach none."""
    adapter = app.url_map.bind("localhost")
    routed, unrouted = set(), []
    for path, method in operations():
        url = example_url(path, method)
        try:
            rule, _ = adapter.match(url, method=method.upper(), return_rule=True)
        except (HTTPException, RequestRedirect):
            unrouted.append((path, method))
            continue
        routed.add((rule.rule, method.upper()))
    return routed, unrouted


def test_every_route_is_documented_and_every_documented_operation_is_routed(app) -> None:  # type: ignore[no-untyped-def]
    routed, unrouted = routed_operations(app)
    assert not unrouted, f"documented operations that are not routed: {unrouted}"
    routes = app_routes(app)
    undocumented = routes - routed
    assert not undocumented, f"routes missing from openapi.yaml: {sorted(undocumented)}"
    assert routed == routes
    # The app really has everything on: CA, certificate log and dev issuer.
    for route in (("/api/v2/signingCert", "POST"), ("/certificates/checkpoint", "GET"), ("/oidc/github/jwks", "GET")):
        assert route in routes, route


def test_served_documents_are_the_file(api) -> None:  # type: ignore[no-untyped-def]
    as_yaml = api.get("/api/v1/openapi.yaml")
    assert as_yaml.status_code == 200 and as_yaml.mimetype == "application/yaml"
    assert as_yaml.data.decode() == openapi.document_text()
    assert yaml.safe_load(as_yaml.data) == DOC
    as_json = api.get("/api/v1/openapi.json")
    assert as_json.status_code == 200
    assert as_json.get_json() == DOC


# --- (c) live responses match the document --------------------------------------------


STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "pkg-1.0.tar.gz", "digest": {"sha256": "cd" * 32}}],
    "predicateType": "https://example.com/predicate/v1",
    "predicate": {"ok": True},
}


def test_empty_log(api) -> None:  # type: ignore[no-untyped-def]
    assert api.get("/api/v1/log").get_json()["treeSize"] == 0
    assert api.get("/checkpoint").status_code == 200
    assert api.get("/api/v1/log/publicKey").status_code == 200
    assert api.get("/healthz").get_json() == {"status": "ok"}
    assert api.get("/metrics").status_code == 200
    assert api.get("/api/v1/log/proof?lastSize=1").status_code == 400
    assert api.get("/api/v1/log/entries?logIndex=0").status_code == 404
    assert api.get("/tile/0/000.p/1").status_code == 404
    assert api.get("/tile/entries/000").status_code == 404
    assert api.post("/api/v1/index/retrieve", json={"email": "a@example.com"}).get_json() == []
    assert api.post("/api/v1/log/entries/retrieve", json={"logIndexes": [0]}).get_json() == []


def test_successful_exchanges(app, api) -> None:  # type: ignore[no-untyped-def]
    alice = speclient.make_identity("alice@example.com", uri="https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main")
    bob = speclient.make_identity("bob@example.com")
    requests_ = [speclient.hashedrekord(alice)[0], speclient.hashedrekord(bob, b"shared")[0], speclient.hashedrekord(alice, b"shared")[0]]
    uuids = []
    for req in requests_:
        resp = api.post("/api/v1/log/entries", json=req)
        assert resp.status_code == 201, resp.get_json()
        uuids.append(resp.headers["ETag"])
    dsse_req = speclient.dsse(bob, STATEMENT)
    resp = api.post("/api/v1/log/entries", json=dsse_req)
    assert resp.status_code == 201, resp.get_json()
    uuids.append(resp.headers["ETag"])
    dup = api.post("/api/v1/log/entries", json=requests_[0])
    assert dup.status_code == 409 and dup.headers["ETag"] == uuids[0]
    assert api.post("/api/v1/log/entries", json=dsse_req).status_code == 409

    info = api.get("/api/v1/log").get_json()
    assert info["treeSize"] == 4
    for i, uuid in enumerate(uuids):
        for url in (f"/api/v1/log/entries?logIndex={i}", f"/api/v1/log/entries/{uuid}", f"/api/v1/log/entries/{uuid[16:].upper()}"):
            assert next(iter(api.get(url).get_json())) == uuid
    for first in range(1, 5):
        for last in range(first, 5):
            assert api.get(f"/api/v1/log/proof?firstSize={first}&lastSize={last}").status_code == 200
    assert api.get("/api/v1/log/proof?lastSize=4").status_code == 200
    assert api.get(f"/api/v1/log/proof?lastSize=3&treeID={info['treeID']}").status_code == 200
    assert api.get(f"/api/v1/log/publicKey?treeID={info['treeID']}").status_code == 200
    assert api.get("/api/v1/log/publicKey?treeID=1").status_code == 404

    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        for query in (
            {"entryUUIDs": [uuids[0], uuids[1][16:]]},
            {"logIndexes": [3, 0, 99]},
            {"entries": [requests_[2], dsse_req]},
            {"entryUUIDs": [uuids[0]], "logIndexes": [1], "entries": None},
        ):
            resp = api.post(path, json=query)
            assert resp.status_code == 200 and resp.get_json(), query

    shared = speclient.hashedrekord(alice, b"shared")[1].hex()
    pem = base64.b64encode(alice.cert_pem).decode()
    for query, want in (
        ({"hash": "sha256:" + shared}, [uuids[1], uuids[2]]),
        ({"hash": shared.upper()}, [uuids[1], uuids[2]]),
        ({"hash": "cd" * 32}, [uuids[3]]),
        ({"email": "ALICE@example.com"}, [uuids[0], uuids[2]]),
        ({"identity": "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main"}, [uuids[0], uuids[2]]),
        ({"identity": "bob@example.com"}, [uuids[1], uuids[3]]),
        ({"publicKey": {"format": "x509", "content": pem}}, [uuids[0], uuids[2]]),
        ({"email": "bob@example.com", "hash": shared, "operator": "and"}, [uuids[1]]),
        ({"email": "nobody@example.com", "hash": None, "operator": None}, []),
    ):
        assert api.post("/api/v1/index/retrieve", json=query).get_json() == want, query

    assert api.get("/checkpoint").data.decode() == info["signedTreeHead"]
    assert "tlog_http_requests_total" in api.get("/metrics").data.decode()
    assert len(api.get("/tile/0/000.p/4").data) == 4 * 32
    assert len(api.get("/tile/0/000.p/2").data) == 2 * 32
    assert api.get("/tile/entries/000.p/4").status_code == 200
    assert api.get("/tile/entries/000.p/1").status_code == 200


def test_full_tiles(app, api) -> None:  # type: ignore[no-untyped-def]
    from tlog import entries
    from tlog.sequencer import integrate

    ident = speclient.make_identity()
    batch = [entries.canonicalize(speclient.hashedrekord(ident)[0]) for _ in range(257)]
    integrate(app.extensions["tlog"].log, batch)
    full = api.get("/tile/0/000")
    assert full.status_code == 200 and full.headers["Cache-Control"].endswith("immutable")
    assert api.get("/tile/0/001.p/1").status_code == 200
    assert api.get("/tile/1/000.p/1").status_code == 200
    assert api.get("/tile/entries/000").status_code == 200
    assert api.get("/tile/entries/001.p/1").status_code == 200
    for url in ("/tile/0/001", "/tile/1/000", "/tile/0/001.p/2", "/tile/entries/001", "/tile/0/x001/000"):
        assert api.get(url).status_code == 404, url
    assert len(api.get("/api/v1/log/entries?logIndex=256").get_json()) == 1


def _mutate(req: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(req)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


_DELETE = object()
_ENTRY_SCHEMA = {"$ref": "#/components/schemas/ProposedEntry"}
_SEARCH_INDEX = {"$ref": "#/components/schemas/SearchIndex"}
_SEARCH_LOG = {"$ref": "#/components/schemas/SearchLogQuery"}


def test_error_responses(app, api) -> None:  # type: ignore[no-untyped-def]
    ident = speclient.make_identity()
    first, _ = speclient.hashedrekord(ident)
    assert api.post("/api/v1/log/entries", json=first).status_code == 201
    req, digest = speclient.hashedrekord(ident)
    dsse_req = speclient.dsse(ident, STATEMENT)
    other_tree = "f" * 16 + "ab" * 32

    for url, status in [
        ("/api/v1/log/entries", 400),
        ("/api/v1/log/entries?logIndex=", 400),
        ("/api/v1/log/entries?logIndex=-1", 400),
        ("/api/v1/log/entries?logIndex=abc", 400),
        ("/api/v1/log/entries?logIndex=1e3", 400),
        ("/api/v1/log/entries?logIndex=99999999999999999999", 400),
        ("/api/v1/log/entries?logIndex=7", 404),
        ("/api/v1/log/entries/xyz", 400),
        ("/api/v1/log/entries/retrieve", 400),
        ("/api/v1/log/entries/" + "ab" * 32, 404),
        ("/api/v1/log/entries/" + other_tree, 404),
        ("/api/v1/log/proof", 400),
        ("/api/v1/log/proof?lastSize=0", 400),
        ("/api/v1/log/proof?lastSize=5", 400),
        ("/api/v1/log/proof?firstSize=2&lastSize=1", 400),
        ("/api/v1/log/proof?firstSize=x&lastSize=1", 400),
        ("/api/v1/log/proof?lastSize=1&treeID=42", 404),
        ("/api/v1/log/proof?lastSize=1&treeID=4x", 400),
        ("/api/v1/nothing", 404),
        ("/tile", 404),
        ("/tile/entries/001", 404),
        ("/tile/0/000", 404),
        ("/tile/0/000.p/2", 404),
        ("/tile/0/0", 400),
        ("/tile/0/x000/001", 400),
        ("/tile/0/000.p/0", 400),
        ("/tile/0/000.p/007", 400),
        ("/tile/0/000.p/256", 400),
        ("/tile/64/000", 400),
        ("/tile/01/000", 400),
        ("/tile/abc/000", 400),
        ("/tile/entries/x000/001", 400),
        ("/tile/entries/000.p/256", 400),
    ]:
        resp = api.get(url)
        assert resp.status_code == status, (url, resp.data)

    for method, url in [("delete", "/api/v1/log/entries"), ("put", "/api/v1/log"), ("get", "/api/v1/index/retrieve"),
                        ("post", "/checkpoint"), ("post", "/tile/0/000"), ("patch", "/api/v1/log/entries/retrieve/")]:
        resp = api.open(method, url)
        assert resp.status_code == 405, (method, url)

    # (request, whether the documented request schema already rejects it)
    bad_entries: list[tuple[Any, bool]] = [
        ([req], True),
        (_mutate(req, "kind", _DELETE), True),
        (_mutate(req, "kind", 5), True),
        (_mutate(req, "kind", "rekord"), True),
        (_mutate(req, "apiVersion", "0.0.2"), True),
        (_mutate(req, "spec", "x"), True),
        (_mutate(req, "spec.signature", _DELETE), True),
        (_mutate(req, "spec.signature.content", 12), True),
        (_mutate(req, "spec.signature.content", "not base64!"), True),
        (_mutate(req, "spec.signature.publicKey.content", "%%%"), True),
        (_mutate(req, "spec.data.hash.value", "zz" * 32), True),
        (_mutate(req, "spec.data.hash.value", "ab" * 16), True),
        (_mutate(req, "spec.data.hash.algorithm", "md5"), True),
        (_mutate(req, "spec.data.content", "aGVsbG8="), True),
        (_mutate(req, "spec.data.hash.value", "00" * 32), False),  # signature does not verify
        (_mutate(req, "spec.signature.publicKey.content", base64.b64encode(b"not a PEM").decode()), False),
        (_mutate(dsse_req, "spec.payloadHash", {"algorithm": "sha256", "value": digest.hex()}), True),
        (_mutate(dsse_req, "spec.signatures", [{"signature": "AAAA", "verifier": "AAAA"}]), True),
        (_mutate(dsse_req, "spec.proposedContent.verifiers", []), True),
        (_mutate(dsse_req, "spec.proposedContent.envelope", "{"), False),
    ]
    for body, schema_rejects in bad_entries:
        resp = api.post("/api/v1/log/entries", json=body)
        assert resp.status_code == 400, (body, resp.get_json())
        assert is_valid(body, _ENTRY_SCHEMA) is not schema_rejects, (body, resp.get_json())
    for data in (b"{not json", b"", b"\xff\xfe", b"[" * 60_000 + b"]" * 60_000, b"null"):
        resp = api.post("/api/v1/log/entries", data=data, content_type="application/json")
        assert resp.status_code == 400, data[:20]
    big = json.dumps({"kind": "hashedrekord", "pad": "x" * (200 * 1024)})
    for path in ("/api/v1/log/entries", "/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/", "/api/v1/index/retrieve"):
        resp = api.post(path, data=big, content_type="application/json")
        assert resp.status_code == 413 and "131072" in resp.get_json()["message"], path

    bad_index_queries: list[tuple[Any, bool]] = [
        ({}, True),
        ({"operator": "and"}, True),
        ({"hash": None}, True),
        ({"hash": "md5:abc"}, True),
        ({"hash": "sha1:" + "ab" * 20}, True),
        ({"hash": 5}, True),
        ({"email": "no-at-sign"}, True),
        ({"email": "a@b", "operator": "xor"}, True),
        ({"identity": ""}, True),
        ({"publicKey": {"format": "pgp", "content": "AA=="}}, True),
        ({"publicKey": {"format": "x509", "content": "!!"}}, True),
        ({"publicKey": {"format": "x509", "url": "http://169.254.169.254/"}}, True),
        ({"publicKey": {"format": "x509", "content": "AAAA"}}, False),  # base64 of no key
        ({"subject": "https://example.com"}, True),
        ([1], True),
    ]
    for query, schema_rejects in bad_index_queries:
        resp = api.post("/api/v1/index/retrieve", json=query)
        assert resp.status_code == 400, (query, resp.get_json())
        assert is_valid(query, _SEARCH_INDEX) is not schema_rejects, query

    bad_log_queries: list[tuple[Any, bool]] = [
        ({}, True),
        ({"entryUUIDs": []}, True),
        ({"logIndexes": "0"}, True),
        ({"logIndexes": [-1]}, True),
        ({"logIndexes": [True]}, True),
        ({"logIndexes": list(range(101))}, True),
        ({"logIndexes": list(range(60)), "entryUUIDs": ["ab" * 32] * 41}, False),  # over 100 in total
        ({"entryUUIDs": [7]}, True),
        ({"entryUUIDs": ["xyz"]}, True),
        ({"entries": [{"kind": "nope"}]}, True),
        ({"entries": [_mutate(req, "spec.data.hash.value", "00" * 32)]}, False),
        ({"logIndexes": [0], "bogus": 1}, True),
        ("[]", True),
    ]
    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        for query, schema_rejects in bad_log_queries:
            resp = api.post(path, json=query)
            assert resp.status_code == 400, (query, resp.get_json())
            assert is_valid(query, _SEARCH_LOG) is not schema_rejects, query
        # An 80-hex UUID of another tree is left out like any unknown entry.
        resp = api.post(path, json={"entryUUIDs": [other_tree], "logIndexes": [0]})
        assert resp.status_code == 200 and len(resp.get_json()) == 1


def test_server_side_failures(app, api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["tlog"]

    def unavailable(*_a: Any, **_k: Any) -> Any:
        raise Unavailable("the log is overloaded; retry shortly", retry_after=3)

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(svc.sequencer, "submit", unavailable)
    resp = api.post("/api/v1/log/entries", json=speclient.hashedrekord(speclient.make_identity())[0])
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "3"

    monkeypatch.setattr(svc.log, "latest_head", broken)
    monkeypatch.setattr(svc.log, "latest_cosigned_head", broken)
    monkeypatch.setattr(svc.log, "entry_by_index", broken)
    monkeypatch.setattr(svc.log, "tile", broken)
    for url in ("/api/v1/log", "/checkpoint", "/api/v1/log/entries?logIndex=0", "/tile/0/000"):
        resp = api.get(url)
        assert resp.status_code == 500 and resp.get_json()["message"] == "internal server error", url


def test_documented_request_examples_are_accepted(api) -> None:  # type: ignore[no-untyped-def]
    """The request examples carry real signatures: the server takes them as they are."""
    body = DOC["paths"]["/api/v1/log/entries"]["post"]["requestBody"]["content"]["application/json"]
    for name, example in body["examples"].items():
        resp = api.post("/api/v1/log/entries", json=deref(example)["value"])
        assert resp.status_code == 201, (name, resp.get_json())
    search = DOC["paths"]["/api/v1/index/retrieve"]["post"]["requestBody"]["content"]["application/json"]
    for name, example in search["examples"].items():
        assert api.post("/api/v1/index/retrieve", json=example["value"]).status_code == 200, name
    found = api.post("/api/v1/index/retrieve", json=search["examples"]["byHash"]["value"]).get_json()
    assert len(found) == 2  # the hashedrekord entry and the DSSE statement's subject


# --- (d) the signing CA, its certificate log and the development issuer ------------------

SIGNING_CERT = "/api/v2/signingCert"
_SIGNING_REQUEST = {"$ref": "#/components/schemas/CreateSigningCertificateRequest"}
#: Operations served only with the CA, and only with the dev issuer: (method, example URL).
CA_OPERATIONS = [
    ("post", SIGNING_CERT),
    ("get", "/api/v2/trustBundle"),
    ("get", "/api/v2/configuration"),
    ("get", "/certificates/checkpoint"),
    ("get", "/certificates/tile/0/000"),
    ("get", "/certificates/tile/0/000.p/1"),
    ("get", "/certificates/tile/entries/000"),
    ("get", "/certificates/tile/entries/000.p/1"),
]
DEV_OPERATIONS = [
    ("get", "/oidc/.well-known/openid-configuration"),
    ("get", "/oidc/jwks"),
    ("get", "/oidc/github/.well-known/openid-configuration"),
    ("get", "/oidc/github/jwks"),
]
FULCIO_EXTENSION_ISSUER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def dev_issuer(app) -> DevIssuer:  # type: ignore[no-untyped-def]
    dev = app.extensions["tlog"].ca.dev_issuer
    assert dev is not None
    return dev  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def csr_for(key: Any, *, encoding: serialization.Encoding = serialization.Encoding.PEM) -> str:
    """``certificateSigningRequest`` as sigstore-python builds it: base64 of a PEM CSR."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ignored@example.com")]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return b64(csr.public_bytes(encoding))


def public_key_request(key: ec.EllipticCurvePrivateKey, challenge: str, *, algorithm: str | None = "ECDSA") -> dict[str, Any]:
    """``publicKeyRequest``: the PEM key and an ECDSA P-256/SHA-256 signature over ``challenge``."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    public_key: dict[str, Any] = {"content": pem}
    if algorithm is not None:
        public_key["algorithm"] = algorithm
    return {"publicKey": public_key, "proofOfPossession": b64(key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256())))}


def check_issued(resp: Any, key: Any, *, issuer: str, email: str | None = None, uri: str | None = None) -> x509.Certificate:
    """A 200 whose chain is [leaf, intermediate, root], the leaf certifying ``key`` for the identity."""
    assert resp.status_code == 200, resp.get_json()
    pems = resp.get_json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    leaf, intermediate, root = (x509.load_pem_x509_certificate(p.encode()) for p in pems)
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert spki(leaf.public_key()) == spki(key)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.RFC822Name) == ([email] if email else [])
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == ([uri] if uri else [])
    assert leaf.extensions.get_extension_for_oid(FULCIO_EXTENSION_ISSUER).value.value == issuer.encode()
    leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"))  # the embedded SCT
    return leaf


def tree_size(checkpoint: str) -> int:
    return int(checkpoint.split("\n")[1])


def test_signing_certificate_with_a_csr(app, api) -> None:  # type: ignore[no-untyped-def]
    dev = dev_issuer(app)
    key = new_key()
    # sigstore-python's request: the token in the header, a base64 PEM CSR in the body.
    headers = {**bearer(dev.mint("alice@example.com")), "Accept": "application/pem-certificate-chain"}
    resp = api.post(SIGNING_CERT, json={"certificateSigningRequest": csr_for(key)}, headers=headers)
    check_issued(resp, key, issuer=dev.email_issuer, email="alice@example.com")
    chain = resp.get_json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert [{"certificates": chain[1:]}] == api.get("/api/v2/trustBundle").get_json()["chains"]

    # The token in credentials instead, a DER CSR, and an explicit null for the other key form.
    body = {
        "credentials": {"oidcIdentityToken": dev.mint("alice@example.com")},
        "certificateSigningRequest": csr_for(key, encoding=serialization.Encoding.DER),
        "publicKeyRequest": None,
    }
    check_issued(api.post(SIGNING_CERT, json=body), key, issuer=dev.email_issuer, email="alice@example.com")

    # A GitHub-Actions-shaped token gets the workflow identity.
    github = dev.mint("octo-org/octo-repo", type="github")
    resp = api.post(SIGNING_CERT, json={"certificateSigningRequest": csr_for(key)}, headers=bearer(github))
    workflow = "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    check_issued(resp, key, issuer=dev.github_issuer, uri=workflow)


def test_signing_certificate_with_a_public_key_request(app, api) -> None:  # type: ignore[no-untyped-def]
    dev = dev_issuer(app)
    challenge = {i["issuerUrl"]: i["challengeClaim"] for i in api.get("/api/v2/configuration").get_json()["issuers"]}
    assert challenge[dev.email_issuer] == "email" and challenge[dev.github_issuer] == "sub"

    # Email issuer: the proof of possession signs the email address (ECDSA P-256, SHA-256).
    key = new_key()
    token = dev.mint("alice@example.com")
    body = {"credentials": {"oidcIdentityToken": token}, "publicKeyRequest": public_key_request(key, "alice@example.com")}
    check_issued(api.post(SIGNING_CERT, json=body), key, issuer=dev.email_issuer, email="alice@example.com")
    for algorithm in (None, "PUBLIC_KEY_ALGORITHM_UNSPECIFIED"):
        body = {"publicKeyRequest": public_key_request(key, "alice@example.com", algorithm=algorithm)}
        check_issued(api.post(SIGNING_CERT, json=body, headers=bearer(token)), key, issuer=dev.email_issuer, email="alice@example.com")

    # GitHub issuer: it signs the token's sub.
    github = dev.mint("octo-org/octo-repo", type="github")
    sub = jwt.decode(github, options={"verify_signature": False})["sub"]
    assert sub == "repo:octo-org/octo-repo:ref:refs/heads/main"
    body = {"publicKeyRequest": public_key_request(key, sub)}
    workflow = "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    check_issued(api.post(SIGNING_CERT, json=body, headers=bearer(github)), key, issuer=dev.github_issuer, uri=workflow)
    # ... and a signature over anything else (here the repository) is no proof.
    body = {"publicKeyRequest": public_key_request(key, "octo-org/octo-repo")}
    assert api.post(SIGNING_CERT, json=body, headers=bearer(github)).status_code == 400


def test_documented_signing_requests_are_accepted(app, api) -> None:  # type: ignore[no-untyped-def]
    """The examples carry a real CSR and a real proof of possession; only the token expires."""
    dev = dev_issuer(app)
    token = dev.mint("alice@example.com")
    examples = DOC["paths"][SIGNING_CERT]["post"]["requestBody"]["content"]["application/json"]["examples"]
    csr = copy.deepcopy(deref(examples["csr"])["value"])
    resp = api.post(SIGNING_CERT, json=csr, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    pkr = copy.deepcopy(deref(examples["publicKeyRequest"])["value"])
    pkr["credentials"]["oidcIdentityToken"] = token
    resp = api.post(SIGNING_CERT, json=pkr)
    key = serialization.load_pem_public_key(pkr["publicKeyRequest"]["publicKey"]["content"].encode())
    check_issued(resp, key, issuer=dev.email_issuer, email="alice@example.com")


def _tampered_der_csr(key: Any) -> str:
    der = bytearray(base64.b64decode(csr_for(key, encoding=serialization.Encoding.DER)))
    der[-1] ^= 0x01  # the last byte of the signature's s: still DER, no longer valid
    return b64(bytes(der))


def test_signing_certificate_errors(app, api) -> None:  # type: ignore[no-untyped-def]
    dev = dev_issuer(app)
    key = new_key()
    good = {"certificateSigningRequest": csr_for(key)}
    alice = dev.mint("alice@example.com")
    stranger = DevIssuer("https://issuer.example.com", new_key()).mint("mallory@example.com")

    # 401: no usable token.
    for headers, body in [
        ({}, good),
        ({}, {**good, "credentials": None}),
        ({}, {**good, "credentials": {"oidcIdentityToken": ""}}),
        ({"Authorization": "Basic " + b64(b"alice:secret")}, good),
        ({"Authorization": "Bearer"}, good),
        (bearer("not-a-jwt"), good),
        (bearer(alice[: alice.rindex(".") + 1] + "A" * 86), good),  # signature replaced
        (bearer(dev.mint("alice@example.com", audience="somebody-else")), good),
        (bearer(dev.mint("alice@example.com", issued_at=time.time() - 3600)), good),  # expired
        (bearer(dev.mint("alice@example.com", issued_at=time.time() + 3600)), good),  # not yet valid
        (bearer(jwt.encode({"iss": dev.email_issuer, "sub": "a@example.com"}, "s" * 32, algorithm="HS256")), good),
    ]:
        resp = api.post(SIGNING_CERT, json=body, headers=headers)
        assert resp.status_code == 401, (headers, body, resp.get_json())

    # 403: a verified token this CA will not certify.
    for token in (stranger, dev.mint("bob@example.com", extra_claims={"email_verified": False})):
        resp = api.post(SIGNING_CERT, json=good, headers=bearer(token))
        assert resp.status_code == 403, resp.get_json()
    assert "not allowed" in api.post(SIGNING_CERT, json=good, headers=bearer(stranger)).get_json()["message"]

    # 400: the token is fine, the request is not. (request, whether the documented schema rejects it)
    pkr = public_key_request(key, "alice@example.com")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    bad_requests: list[tuple[Any, bool]] = [
        ({}, True),
        ({"certificateSigningRequest": None, "publicKeyRequest": None}, True),
        ({**good, "publicKeyRequest": pkr}, True),
        ({"certificate_signing_request": good["certificateSigningRequest"]}, True),
        ({**good, "extra": 1}, True),
        ({"certificateSigningRequest": "not base64!"}, True),
        ({"certificateSigningRequest": 5}, True),
        ({"certificateSigningRequest": b64(b"not a CSR at all")}, False),
        ({"certificateSigningRequest": _tampered_der_csr(key)}, False),
        ({"certificateSigningRequest": csr_for(weak)}, False),  # RSA-1024
        ({"publicKeyRequest": public_key_request(key, "bob@example.com")}, False),  # signs the wrong email
        ({"publicKeyRequest": {**pkr, "publicKey": {**pkr["publicKey"], "algorithm": "ED25519"}}}, False),
        ({"publicKeyRequest": {**pkr, "publicKey": {**pkr["publicKey"], "algorithm": 2}}}, True),
        ({"publicKeyRequest": {**pkr, "publicKey": {"content": "not a PEM key"}}}, False),
        ({"publicKeyRequest": {**pkr, "publicKey": {"content": 5}}}, True),
        ({"publicKeyRequest": {"publicKey": pkr["publicKey"]}}, True),
        ({"publicKeyRequest": {**pkr, "proofOfPossession": "!!"}}, True),
        ({"publicKeyRequest": "x"}, True),
        ([good], True),
    ]
    for body, schema_rejects in bad_requests:
        resp = api.post(SIGNING_CERT, json=body, headers=bearer(alice))
        assert resp.status_code == 400, (body, resp.get_json())
        assert is_valid(body, _SIGNING_REQUEST) is not schema_rejects, body
    resp = api.post(SIGNING_CERT, json={**good, "credentials": {"oidcIdentityToken": 5}})
    assert resp.status_code == 400 and not is_valid({**good, "credentials": {"oidcIdentityToken": 5}}, _SIGNING_REQUEST)
    for data in (b"{not json", b"", b"\xff\xfe", b"null"):
        resp = api.post(SIGNING_CERT, data=data, content_type="application/json", headers=bearer(alice))
        assert resp.status_code == 400, data

    resp = api.post(SIGNING_CERT, data=json.dumps({**good, "pad": "x" * (200 * 1024)}), content_type="application/json")
    assert resp.status_code == 413 and "131072" in resp.get_json()["message"]

    for method, url in [("get", SIGNING_CERT), ("put", SIGNING_CERT), ("post", "/api/v2/trustBundle"),
                        ("delete", "/api/v2/configuration"), ("post", "/certificates/checkpoint"),
                        ("post", "/oidc/jwks"), ("put", "/oidc/github/.well-known/openid-configuration")]:
        assert api.open(method, url).status_code == 405, (method, url)

    # Nothing refused was certified: the certificate log is still empty.
    assert tree_size(api.get("/certificates/checkpoint").data.decode()) == 0


def _dead_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_signing_certificate_issuer_unavailable(settings: Settings, tmp_path: Path) -> None:
    issuer = _dead_url() + "/oidc"
    config = tmp_path / "issuers.yaml"
    config.write_text(f"issuers:\n  - url: {issuer}\n    type: email\n", encoding="utf-8")
    app = create_app(settings.replace(oidc_issuers=config))
    try:
        api = CheckedClient(app.test_client())
        assert api.get("/api/v2/configuration").get_json() == {
            "issuers": [{"issuerUrl": issuer, "audience": "sigstore", "challengeClaim": "email"}]
        }
        token = DevIssuer(issuer, new_key()).mint("alice@example.com")
        for _ in range(2):  # the second is answered from the failure, without waiting for the issuer
            resp = api.post(SIGNING_CERT, json={"certificateSigningRequest": csr_for(new_key())}, headers=bearer(token))
            assert resp.status_code == 503, resp.get_json()
            assert issuer in resp.get_json()["message"] and int(resp.headers["Retry-After"]) >= 1
        assert tree_size(api.get("/certificates/checkpoint").data.decode()) == 0
    finally:
        app.extensions["tlog"].engine.dispose()


def test_trust_bundle_and_configuration(app, api) -> None:  # type: ignore[no-untyped-def]
    dev = dev_issuer(app)
    [chain] = api.get("/api/v2/trustBundle").get_json()["chains"]
    intermediate, root = (x509.load_pem_x509_certificate(p.encode()) for p in chain["certificates"])
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    for cert in (intermediate, root):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca

    issuers = api.get("/api/v2/configuration").get_json()["issuers"]
    assert [(i["issuerUrl"], i["challengeClaim"]) for i in issuers] == [
        ("https://token.actions.githubusercontent.com", "sub"),
        ("https://gitlab.com", "sub"),
        ("https://accounts.google.com", "email"),
        ("https://oauth2.sigstore.dev/auth", "email"),
        (dev.email_issuer, "email"),
        (dev.github_issuer, "sub"),
    ]
    assert {i["audience"] for i in issuers} == {"sigstore"}
    assert dev.email_issuer == DEV_PUBLIC_URL + "/oidc"


def test_certificate_log(app, api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    ca = app.extensions["tlog"].ca
    dev = dev_issuer(app)
    assert tree_size(api.get("/certificates/checkpoint").data.decode()) == 0
    for url in ("/certificates/tile/0/000.p/1", "/certificates/tile/entries/000.p/1",
                "/certificates/tile/0/000", "/certificates/tile/entries/000"):
        assert api.get(url).status_code == 404, url

    key = new_key()
    token = dev.mint("alice@example.com")
    first = check_issued(api.post(SIGNING_CERT, json={"certificateSigningRequest": csr_for(key)}, headers=bearer(token)),
                         key, issuer=dev.email_issuer, email="alice@example.com")
    ders = [first.public_bytes(serialization.Encoding.DER)]

    checkpoint = api.get("/certificates/checkpoint").data.decode()
    origin, size, root_hash = checkpoint.split("\n")[:3]
    assert origin == settings.origin + "/certificates" and size == "1"
    # One leaf: the root is the RFC 6962 leaf hash of the DER certificate itself.
    assert base64.b64decode(root_hash) == speclient.leaf_hash(ders[0])
    assert api.get("/certificates/tile/0/000.p/1").data == speclient.leaf_hash(ders[0])
    assert api.get("/certificates/tile/entries/000.p/1").data == len(ders[0]).to_bytes(2, "big") + ders[0]
    # Signed by the CT key (key hint: its log ID) and the Ed25519 key.
    open_checkpoint(checkpoint, [ECDSAVerifier(origin, ca.keys.ct_key.public_key())])
    signatures = checkpoint.split("\n\n", 1)[1].splitlines()
    assert len(signatures) == 2
    assert base64.b64decode(signatures[0].rsplit(" ", 1)[1])[:4] == ca.keys.ct_log_id[:4]

    body = {"publicKeyRequest": public_key_request(key, "alice@example.com")}
    second = check_issued(api.post(SIGNING_CERT, json=body, headers=bearer(token)), key, issuer=dev.email_issuer, email="alice@example.com")
    ders.append(second.public_bytes(serialization.Encoding.DER))
    assert tree_size(api.get("/certificates/checkpoint").data.decode()) == 2
    assert api.get("/certificates/tile/0/000.p/2").data == b"".join(speclient.leaf_hash(d) for d in ders)
    assert api.get("/certificates/tile/entries/000.p/2").data == b"".join(len(d).to_bytes(2, "big") + d for d in ders)
    assert api.get("/certificates/tile/entries/000.p/1").data == len(ders[0]).to_bytes(2, "big") + ders[0]

    for url, status in [
        ("/certificates/tile/0/000.p/3", 404),
        ("/certificates/tile/1/000.p/1", 404),
        ("/certificates/tile/0/000", 404),
        ("/certificates/tile/entries/000", 404),
        ("/certificates/tile/entries/000.p/3", 404),
        ("/certificates/tile/0/0", 400),
        ("/certificates/tile/0/000.p/0", 400),
        ("/certificates/tile/0/x000/000", 400),
        ("/certificates/tile/64/000", 400),
        ("/certificates/tile/entries/000.p/256", 400),
        ("/certificates/nothing", 404),
    ]:
        assert api.get(url).status_code == status, url

    # The entry log is a different tree and saw none of it.
    assert api.get("/api/v1/log").get_json()["treeSize"] == 0
    assert tree_size(api.get("/checkpoint").data.decode()) == 0


def test_dev_issuer_discovery_and_keys(app, api) -> None:  # type: ignore[no-untyped-def]
    dev = dev_issuer(app)
    for issuer, token in ((dev.email_issuer, dev.mint("alice@example.com")),
                          (dev.github_issuer, dev.mint("octo-org/octo-repo", type="github"))):
        document = api.get(urlsplit(issuer).path + "/.well-known/openid-configuration").get_json()
        assert document["issuer"] == issuer and document["jwks_uri"] == issuer + "/jwks"
        jwks = api.get(urlsplit(document["jwks_uri"]).path).get_json()
        assert jwks == dev.jwks()
        # Everything a verifier needs to check the issuer's tokens is served.
        key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key=key, algorithms=document["id_token_signing_alg_values_supported"],
                            audience="sigstore", issuer=document["issuer"])
        assert set(claims) <= set(document["claims_supported"])


def test_ca_and_dev_paths_answer_404_when_off(settings: Settings) -> None:
    """Without --dev-oidc (the default), and with --no-ca: fewer routes, all documented, the rest 404."""
    for changes, absent in (({}, DEV_OPERATIONS), ({"ca": False}, CA_OPERATIONS + DEV_OPERATIONS)):
        app = create_app(settings.replace(**changes))
        try:
            routed, unrouted = routed_operations(app)
            assert app_routes(app) == routed, changes
            assert sorted(unrouted) == sorted((documented_path(url, method), method) for method, url in absent), changes
            api = CheckedClient(app.test_client())
            for method, url in absent:
                assert api.open(method, url).status_code == 404, (changes, method, url)
        finally:
            app.extensions["tlog"].engine.dispose()


def test_rate_limit_refusals_are_documented(settings: Settings) -> None:
    """A 429 (reads, submissions) matches the document: JSON error and Retry-After."""
    app = create_app(settings.replace(read_rate_limit="2/minute", submission_rate_limit="1/minute", rate_limit_exempt=()))
    try:
        api = CheckedClient(app.test_client())
        env = {"REMOTE_ADDR": "192.0.2.7"}
        statuses = [api.get("/api/v1/log", environ_base=env).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        statuses = [api.get("/checkpoint", environ_base=env).status_code for _ in range(1)]
        assert statuses == [429]  # the same per-address budget for every read
        body = speclient.hashedrekord(speclient.make_identity())[0]
        first = api.post("/api/v1/log/entries", json=body, environ_base=env)
        second = api.post("/api/v1/log/entries", json=speclient.hashedrekord(speclient.make_identity())[0], environ_base=env)
        assert (first.status_code, second.status_code) == (201, 429)
        assert int(second.headers["Retry-After"]) >= 1
        assert ("/api/v1/log/entries", "post", 429) in api.seen and ("/api/v1/log", "get", 429) in api.seen
    finally:
        app.extensions["tlog"].engine.dispose()
