"""The web explorer's views through Flask's test client (no browser).

Covers what the browser tests do not need a browser for: every search kind,
friendly 400/404 pages, escaping of attacker-controlled certificate values,
the security headers, checkpoint signature labels, and that the data the
in-browser check reads is itself consistent (checked here in Python with the
spec client, independently of the server's code).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import markupsafe
import pytest
import speclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ObjectIdentifier

from tlog.ca.identity import der_utf8string
from tlog.config import Settings

FULCIO = "1.3.6.1.4.1.57264.1."
XSS = '<script>alert("pwned")</script>'


# --- helpers shared with test_explorer_browser.py -----------------------------------------


def self_signed(
    key: ec.EllipticCurvePrivateKey,
    *,
    email: str | None = None,
    uri: str | None = None,
    fulcio: tuple[tuple[str, bytes], ...] = (),
) -> x509.Certificate:
    """A short-lived self-signed certificate with the given SANs and raw Fulcio extensions."""
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = []
    if email:
        sans.append(x509.RFC822Name(email))
    if uri:
        sans.append(x509.UniformResourceIdentifier(uri))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "explorer test")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
    )
    for oid, value in fulcio:
        builder = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier(oid), value), critical=False)
    return builder.sign(key, hashes.SHA256())


def hashedrekord_for(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, artifact: bytes | None = None) -> tuple[dict[str, Any], bytes]:
    return speclient.hashedrekord(speclient.Identity(key, cert), artifact)


def xss_identity() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate whose SANs and Fulcio extensions all carry markup."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(
        key,
        email="xss@example.com",
        uri="https://example.com/" + XSS.replace(" ", "%20"),
        fulcio=(
            (FULCIO + "1", XSS.encode()),
            (FULCIO + "12", der_utf8string(XSS)),
            (FULCIO + "14", der_utf8string("refs/heads/<img src=x onerror=alert(1)>")),
        ),
    )
    return key, cert


def verify_data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="verify-data">(.*?)</script>', page, re.DOTALL)
    assert m, "no verify-data block"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def dev_settings(settings: Settings) -> Settings:
    return settings.replace(dev_oidc=True)


@pytest.fixture
def dev_app(dev_settings: Settings):  # type: ignore[no-untyped-def]
    from tlog.api.app import create_app

    app = create_app(dev_settings)
    yield app
    app.extensions["tlog"].engine.dispose()


@pytest.fixture
def dev_client(dev_app):  # type: ignore[no-untyped-def]
    return dev_app.test_client()


def submit(client, request: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/log/entries", json=request)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    ((uuid, entry),) = resp.get_json().items()
    return {"uuid": uuid, **entry}


def github_certificate(app, client) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:  # type: ignore[no-untyped-def]
    """A real Fulcio-profile certificate from our CA for a GitHub Actions dev token."""
    token = app.extensions["tlog"].ca.dev_issuer.mint("octo-org/octo-repo", type="github")
    subject = jwt.decode(token, options={"verify_signature": False})["sub"]
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    resp = client.post(
        "/api/v2/signingCert",
        json={
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": pem},
                "proofOfPossession": base64.b64encode(key.sign(subject.encode(), ec.ECDSA(hashes.SHA256()))).decode(),
            }
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    leaf = resp.get_json()["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
    return key, x509.load_pem_x509_certificate(leaf.encode())


def page(client, url: str, status: int = 200) -> str:  # type: ignore[no-untyped-def]
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.get_data(as_text=True)[-500:])
    assert resp.mimetype == "text/html"
    return resp.get_data(as_text=True)


# --- tests ------------------------------------------------------------------------------------


def test_home_shows_checkpoint_and_recent_entries(client) -> None:  # type: ignore[no-untyped-def]
    empty = page(client, "/explorer/")
    assert "The log is empty." in empty
    emails = [f"user{i}@example.com" for i in range(3)]
    for email in emails:
        submit(client, speclient.hashedrekord(speclient.make_identity(email))[0])
    text = page(client, "/explorer/")
    assert "test.example/log" in text
    assert '<dd id="tree-size">3</dd>' in text
    assert "log signature (ECDSA P-256, Rekor v1)" in text and "log signature (Ed25519, C2SP)" in text
    assert "No witness cosignatures on this checkpoint." in text
    # Newest first, each linking to its entry page.
    positions = [text.index(e) for e in reversed(emails)]
    assert positions == sorted(positions)
    for i in range(3):
        assert f'href="/explorer/entry/{i}"' in text
    checkpoint = client.get("/checkpoint").get_data(as_text=True)
    assert html.escape(checkpoint.split("\n\n")[0], quote=False) in text


def _cosign(app, name: str, witness_key: ed25519.Ed25519PrivateKey) -> str:  # type: ignore[no-untyped-def]
    """Store a real cosignature/v1 line on the latest head, as the collector would."""
    from tlog.note import CosignatureV1Signer, Note, NoteSignature
    from tlog.storage import store

    tlog = app.extensions["tlog"].log
    head = tlog.latest_head()
    signer = CosignatureV1Signer(name, witness_key)
    sig = NoteSignature(name, signer.key_id, signer.sign(Note.parse(head.checkpoint).message))
    with tlog.engine.begin() as conn:
        store.insert_cosignature(conn, tlog.tree, head.size, f"{name}+{signer.key_id.hex()}", sig.line().rstrip("\n"), int(time.time() * 1000))
    return signer.key_id.hex()


def test_search_finds_entries_every_way(dev_app, dev_client) -> None:  # type: ignore[no-untyped-def]
    identity = speclient.make_identity("Alice@Example.com", uri="https://ci.example.com/workflows/build@refs/heads/main")
    request, digest = speclient.hashedrekord(identity)
    first = submit(dev_client, request)
    other = submit(dev_client, speclient.hashedrekord(speclient.make_identity("bob@example.com"))[0])
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "pkg.tar.gz", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }
    attestation = submit(dev_client, speclient.dsse(identity, statement))

    def indexes(q: str) -> list[int]:
        text = page(dev_client, "/explorer/search?" + urlencode({"q": q}))
        return [int(i) for i in re.findall(r'class="entry-link" href="/explorer/entry/(\d+)"', text)]

    assert indexes(digest.hex()) == [first["logIndex"]]
    assert indexes("sha256:" + digest.hex().upper()) == [first["logIndex"]]
    assert indexes("  sha256:" + digest.hex() + "  ") == [first["logIndex"]]
    assert indexes("alice@example.com") == [first["logIndex"], attestation["logIndex"]]
    assert indexes("ALICE@EXAMPLE.COM") == [first["logIndex"], attestation["logIndex"]]
    assert indexes("https://ci.example.com/workflows/build@refs/heads/main") == [first["logIndex"], attestation["logIndex"]]
    assert indexes("sha256:" + "ab" * 32) == [attestation["logIndex"]]  # the in-toto subject
    assert indexes(str(other["logIndex"])) == [other["logIndex"]]
    assert indexes(other["uuid"]) == [other["logIndex"]]  # the 80-hex UUID
    assert indexes(other["uuid"][16:]) == [other["logIndex"]]  # the leaf hash alone
    assert indexes("99") == []
    assert indexes("1" * 64) == []  # all digits, but a digest
    assert indexes("nobody@example.com") == []
    assert "0 results for email nobody@example.com" in page(dev_client, "/explorer/search?q=nobody@example.com")
    # An empty query shows the search form.
    assert 'id="q-big"' in page(dev_client, "/explorer/search")
    assert 'id="q-big"' in page(dev_client, "/explorer/search?q=+")


@pytest.mark.parametrize(
    "query",
    [
        "hello",
        "sha256:abcd",
        "sha384:" + "a" * 64,
        "a" * 63,
        "not an@email",
        "https://exa mple.com",
        "9" * 25,
        "-1",
        "x" * 3000,
    ],
)
def test_bad_queries_get_a_friendly_400(client, query: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/explorer/search", query_string={"q": query})
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    text = resp.get_data(as_text=True)
    assert "<h1>Bad request</h1>" in text and 'id="error-message"' in text
    assert "Traceback" not in text


def test_unknown_and_malformed_entry_pages(client) -> None:  # type: ignore[no-untyped-def]
    submit(client, speclient.hashedrekord(speclient.make_identity())[0])
    assert "no entry at logIndex 1" in page(client, "/explorer/entry/1", 404)
    assert "<h1>Not found</h1>" in page(client, "/explorer/entry/12345678901234567", 404)
    assert "<h1>Bad request</h1>" in page(client, "/explorer/entry/abc", 400)
    assert "<h1>Bad request</h1>" in page(client, "/explorer/entry/-1", 400)
    assert "<h1>Bad request</h1>" in page(client, "/explorer/entry/" + "9" * 30, 400)
    page(client, "/explorer/entry/0", 200)
    # The rest of the API keeps answering JSON.
    assert client.get("/api/v1/log/entries?logIndex=5").mimetype == "application/json"


def test_certificate_log_pages_need_the_ca(settings: Settings) -> None:
    from tlog.api.app import create_app

    app = create_app(settings.replace(ca=False))
    try:
        client = app.test_client()
        assert "no certificate log" in page(client, "/explorer/certificates/", 404)
        assert "Certificate log" not in page(client, "/explorer/")
    finally:
        app.extensions["tlog"].engine.dispose()


def test_entry_page_decodes_a_fulcio_certificate(dev_app, dev_client) -> None:  # type: ignore[no-untyped-def]
    key, cert = github_certificate(dev_app, dev_client)
    entry = submit(dev_client, hashedrekord_for(key, cert)[0])
    text = page(dev_client, f"/explorer/entry/{entry['logIndex']}")
    san = "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    assert san in text
    issuer = dev_app.extensions["tlog"].ca.dev_issuer.github_issuer
    for oid, name, value in [
        (FULCIO + "1", "Issuer (deprecated)", issuer),
        (FULCIO + "8", "Issuer (V2)", issuer),
        (FULCIO + "12", "Source Repository URI", "https://github.com/octo-org/octo-repo"),
        (FULCIO + "9", "Build Signer URI", san),
        (FULCIO + "11", "Runner Environment", "github-hosted"),
    ]:
        row = re.search(rf'<tr class="fulcio" data-oid="{re.escape(oid)}">(.*?)</tr>', text, re.DOTALL)
        assert row, oid
        assert name in row.group(1) and f"<code>{oid}</code>" in row.group(1) and str(markupsafe.escape(value)) in row.group(1)
    assert "Key Usage" in text and "digital_signature" in text and "codeSigning" in text
    assert "CT Precertificate SCTs" in text and "1 SCT(s)" in text
    assert f"{cert.serial_number:x}" in text
    assert "ECDSA P-256" in text
    # The issuance is in the certificate log, searchable by the same identity.
    certs = page(dev_client, "/explorer/certificates/search?q=" + san)
    found = re.findall(r'href="/explorer/certificates/entry/(\d+)"', certs)
    assert found
    cert_page = page(dev_client, f"/explorer/certificates/entry/{found[0]}")
    assert "Source Repository URI" in cert_page and "x509 1" in cert_page
    der_digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert found == re.findall(r'href="/explorer/certificates/entry/(\d+)"', page(dev_client, "/explorer/certificates/search?q=" + der_digest))


def test_bare_key_entries_show_type_and_fingerprint(client) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha384(b"artifact").digest()
    from cryptography.hazmat.primitives.asymmetric import utils

    sig = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    submit(
        client,
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {"content": base64.b64encode(sig).decode(), "publicKey": {"content": base64.b64encode(spki).decode()}},
                "data": {"hash": {"algorithm": "sha384", "value": digest.hex()}},
            },
        },
    )
    text = page(client, "/explorer/entry/0")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert "Signer: public key" in text and "ECDSA P-384" in text
    assert "SHA256:" + hashlib.sha256(der).hexdigest() in text
    assert "sha384:" + digest.hex() in text
    assert "ECDSA P-384 key SHA256:" in page(client, "/explorer/")


def test_attacker_controlled_values_are_escaped(client) -> None:  # type: ignore[no-untyped-def]
    key, cert = xss_identity()
    submit(client, hashedrekord_for(key, cert)[0])
    for url in ("/explorer/", "/explorer/entry/0", "/explorer/search?q=xss@example.com"):
        text = page(client, url)
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "alert(" in text, url  # the value is shown, escaped
    entry = page(client, "/explorer/entry/0")
    assert str(markupsafe.escape(XSS)) in entry  # .1.1 (raw) and .1.12 (DER) decoded, escaped
    assert entry.count(str(markupsafe.escape(XSS))) >= 2
    assert "&lt;img src=x onerror=alert(1)&gt;" in entry
    # The only script elements are ours: the verifier and its JSON data block.
    assert re.findall(r"<script[^>]*>", entry) == [
        '<script src="/explorer/static/verify.js" defer>',
        '<script type="application/json" id="verify-data">',
    ]


def test_markup_in_a_query_is_escaped(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/explorer/search", query_string={"q": "<b>x</b>@example.com"})
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;@example.com" in text
    resp = client.get("/explorer/search", query_string={"q": "<script>"})
    assert resp.status_code == 400 and "<script>\"" not in resp.get_data(as_text=True)
    assert 'value="&lt;script&gt;"' in resp.get_data(as_text=True)


def test_security_headers_and_no_external_resources(client) -> None:  # type: ignore[no-untyped-def]
    submit(client, speclient.hashedrekord(speclient.make_identity())[0])
    for url in ("/explorer/", "/explorer/entry/0", "/explorer/search?q=0", "/explorer/entry/9", "/explorer/static/verify.js"):
        resp = client.get(url)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        text = resp.get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', text), url
        assert " style=" not in text and " onclick=" not in text
    assert client.get("/explorer/static/explorer.css").status_code == 200
    assert client.get("/explorer/static/verify.js").mimetype in ("text/javascript", "application/javascript")


def test_embedded_verification_data_checks_out(client) -> None:  # type: ignore[no-untyped-def]
    """What verify.js reads is consistent: check it here with the independent spec client."""
    key_pem = client.get("/api/v1/log/publicKey").data
    log_key = speclient.LogKey.from_pem(key_pem)
    for i in range(5):
        submit(client, speclient.hashedrekord(speclient.make_identity(f"u{i}@example.com"))[0])
    for index in range(5):
        data = verify_data(page(client, f"/explorer/entry/{index}"))
        body = base64.b64decode(data["body"])
        leaf = speclient.leaf_hash(body)
        assert leaf.hex() == data["leafHash"]
        cp = speclient.verify_checkpoint(
            data["checkpoint"], log_key, ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(data["ed25519"]))
        )
        assert cp.origin == data["origin"] and cp.size == data["treeSize"] == 5
        proof = [bytes.fromhex(h) for h in data["proof"]]
        assert speclient.root_from_inclusion(index, 5, leaf, proof) == cp.root
        assert base64.b64decode(data["ecdsaSpki"]) == log_key.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def test_witness_cosignatures_labelled(tmp_path: Path, settings: Settings) -> None:
    from tlog.api.app import create_app
    from tlog.note import CosignatureV1Verifier, vkey

    known_key, stranger_key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    witnesses = tmp_path / "witnesses.txt"
    witnesses.write_text(f"http://witness.invalid {vkey(CosignatureV1Verifier('witness.example/w1', known_key.public_key()))}\n")
    app = create_app(settings.replace(witnesses=witnesses))
    try:
        client = app.test_client()
        submit(client, speclient.hashedrekord(speclient.make_identity())[0])
        known_id = _cosign(app, "witness.example/w1", known_key)
        stranger_id = _cosign(app, "stranger.example/w9", stranger_key)
        text = page(client, "/explorer/")
        assert "2 witness cosignatures on this checkpoint." in text
        assert "witness cosignature (http://witness.invalid)" in text and known_id in text
        assert "witness cosignature (cosignature/v1, timestamped Ed25519)" in text and stranger_id in text
        assert text.count('class="sig-witness"') == 2 and text.count('class="sig-log"') == 2
        entry = page(client, "/explorer/entry/0")
        assert "witness.example/w1" in verify_data(entry)["checkpoint"]
        assert "2 witness cosignatures on this checkpoint." in entry
    finally:
        app.extensions["tlog"].engine.dispose()
