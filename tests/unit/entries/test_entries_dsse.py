"""dsse 0.0.1: body shape and hashes, PAE verification, in-toto indexing, rejections."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from tlog.entries import canonicalize
from tlog.errors import BadRequest

IN_TOTO = "application/vnd.in-toto+json"
SUBJECT_SHA256 = "A1" * 32  # upper case on purpose: keys are lower-cased


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def leaf_cert(private_key: Any) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")]))
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.RFC822Name("Bob@Example.org"), x509.UniformResourceIdentifier("https://ci.example/wf")]
            ),
            critical=True,
        )
        .sign(private_key, algorithm)
    )


def verifier_b64(private_key: Any, *, as_cert: bool = True) -> str:
    if as_cert:
        return b64(leaf_cert(private_key).public_bytes(serialization.Encoding.PEM))
    return b64(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign_pae(private_key: Any, message: bytes, ec_hash: hashes.HashAlgorithm | None = None) -> bytes:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(message, ec.ECDSA(ec_hash or hashes.SHA256()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return private_key.sign(message)


def statement(subjects: list[Any] | None = None) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subjects
            if subjects is not None
            else [{"name": "pkg.whl", "digest": {"sha256": SUBJECT_SHA256, "SHA512": "cd" * 64}}],
            "predicateType": "https://example.com/predicate/v1",
            "predicate": {},
        }
    ).encode()


def envelope(payload: bytes, sigs: list[bytes], payload_type: str = IN_TOTO) -> str:
    # Shaped like sigstore-python's: compact, no keyid.
    return json.dumps(
        {"payload": b64(payload), "payloadType": payload_type, "signatures": [{"sig": b64(s)} for s in sigs]},
        separators=(",", ":"),
    )


def dsse_request(envelope_text: str, verifiers: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {"envelope": envelope_text, "verifiers": verifiers},
            "signatures": None,
            "envelopeHash": None,
            "payloadHash": None,
        },
    }


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def signed(p256: ec.EllipticCurvePrivateKey) -> tuple[dict[str, Any], bytes, bytes, str, str]:
    """A sigstore-python-shaped attest request: (request, payload, sig, envelope, verifier)."""
    payload = statement()
    sig = sign_pae(p256, pae(IN_TOTO, payload))
    env = envelope(payload, [sig])
    ver = verifier_b64(p256)
    return dsse_request(env, [ver]), payload, sig, env, ver


# --------------------------------------------------------------------------
# Accepted entries
# --------------------------------------------------------------------------


def test_sigstore_python_shaped_request(signed: Any) -> None:
    req, payload, sig, env, ver = signed
    entry = canonicalize(req)

    envelope_hash = hashlib.sha256(env.encode()).hexdigest()
    payload_hash = hashlib.sha256(payload).hexdigest()
    assert entry.body == (
        '{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256","value":"'
        + envelope_hash
        + '"},"payloadHash":{"algorithm":"sha256","value":"'
        + payload_hash
        + '"},"signatures":[{"signature":"'
        + b64(sig)
        + '","verifier":"'
        + ver
        + '"}]}}'
    ).encode()
    assert (entry.kind, entry.api_version, entry.attestation) == ("dsse", "0.0.1", payload)
    assert "proposedContent" not in json.loads(entry.body)["spec"]


def test_body_matches_what_sigstore_python_checks(signed: Any) -> None:
    """_validate_dsse_v001_entry_body: payloadHash, and signatures rebuilt from the bundle."""
    req, payload, sig, _, ver = signed
    spec = json.loads(canonicalize(req).body)["spec"]
    assert spec["payloadHash"] == {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
    assert spec["signatures"] == [{"signature": b64(sig), "verifier": ver}]
    # The verifier stored is byte-identical to verifiers[0] as sent.
    assert spec["signatures"][0]["verifier"] == req["spec"]["proposedContent"]["verifiers"][0]


def test_search_keys(signed: Any) -> None:
    req, payload, _, env, ver = signed
    keys = canonicalize(req).search_keys
    assert list(keys) == sorted(set(keys))
    assert "sha256:" + hashlib.sha256(payload).hexdigest() in keys
    assert "sha256:" + hashlib.sha256(env.encode()).hexdigest() in keys
    assert "pubkey:sha256:" + hashlib.sha256(base64.b64decode(ver)).hexdigest() in keys
    assert "email:bob@example.org" in keys
    assert "uri:https://ci.example/wf" in keys
    # in-toto subject digests, lower-cased
    assert "sha256:" + SUBJECT_SHA256.lower() in keys
    assert "sha512:" + "cd" * 64 in keys


def test_server_fields_may_be_absent(signed: Any) -> None:
    req, *_ = signed
    bare = json.loads(json.dumps(req))
    for name in ("signatures", "envelopeHash", "payloadHash"):
        del bare["spec"][name]
    bare["spec"]["signatures"] = []
    assert canonicalize(bare).body == canonicalize(req).body


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ecdsa_curves_use_registry_hash(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    payload = b"not a statement"
    registry_hash = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}
    sig = sign_pae(key, pae("text/plain", payload), registry_hash[curve.name])
    canonicalize(dsse_request(envelope(payload, [sig], "text/plain"), [verifier_b64(key, as_cert=False)]))


def test_p384_with_sha256_accepted_like_rekor() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    sig = sign_pae(key, pae(IN_TOTO, b"x"), hashes.SHA256())
    canonicalize(dsse_request(envelope(b"x", [sig]), [verifier_b64(key)]))


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ed25519_and_rsa(kind: str) -> None:
    key: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    payload = statement()
    sig = sign_pae(key, pae(IN_TOTO, payload))
    entry = canonicalize(dsse_request(envelope(payload, [sig]), [verifier_b64(key, as_cert=False)]))
    assert json.loads(entry.body)["spec"]["signatures"][0]["signature"] == b64(sig)


def test_multiple_signatures_sorted_and_matched_to_their_verifier() -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    payload = statement()
    sigs = [sign_pae(k, pae(IN_TOTO, payload)) for k in keys]
    verifiers = [verifier_b64(k) for k in keys]
    entry = canonicalize(dsse_request(envelope(payload, sigs), list(reversed(verifiers))))
    stored = json.loads(entry.body)["spec"]["signatures"]
    assert [s["signature"] for s in stored] == sorted(b64(s) for s in sigs)
    by_sig = {b64(s): v for s, v in zip(sigs, verifiers)}
    assert all(by_sig[s["signature"]] == s["verifier"] for s in stored)


def test_duplicate_signature_stored_once(signed: Any) -> None:
    _, payload, sig, _, ver = signed
    entry = canonicalize(dsse_request(envelope(payload, [sig, sig]), [ver]))
    assert len(json.loads(entry.body)["spec"]["signatures"]) == 1


def test_unused_verifier_not_indexed(signed: Any) -> None:
    _, payload, sig, env, ver = signed
    other = ec.generate_private_key(ec.SECP256R1())
    other_b64 = verifier_b64(other, as_cert=False)
    entry = canonicalize(dsse_request(env, [other_b64, ver]))
    assert "pubkey:sha256:" + hashlib.sha256(base64.b64decode(other_b64)).hexdigest() not in entry.search_keys
    assert json.loads(entry.body)["spec"]["signatures"][0]["verifier"] == ver


def test_keyid_tolerated(signed: Any, p256: ec.EllipticCurvePrivateKey) -> None:
    _, payload, sig, _, ver = signed
    for keyid in (None, "", "abc"):
        env = json.dumps({"payload": b64(payload), "payloadType": IN_TOTO, "signatures": [{"sig": b64(sig), "keyid": keyid}]})
        canonicalize(dsse_request(env, [ver]))


def test_envelope_hash_is_over_the_string_as_sent(signed: Any) -> None:
    _, payload, sig, _, ver = signed
    pretty = json.dumps(
        {"payloadType": IN_TOTO, "payload": b64(payload), "signatures": [{"sig": b64(sig)}]}, indent=2
    )
    spec = json.loads(canonicalize(dsse_request(pretty, [ver])).body)["spec"]
    assert spec["envelopeHash"]["value"] == hashlib.sha256(pretty.encode()).hexdigest()


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe not json",
        b"[1, 2]",
        b'{"subject": "nope"}',
        b'{"subject": [1, {"digest": "x"}, {"digest": {"sha256": "short"}}, {"digest": {"sha256": 5}}]}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_statement_indexed_best_effort(p256: ec.EllipticCurvePrivateKey, payload: bytes) -> None:
    sig = sign_pae(p256, pae(IN_TOTO, payload))
    entry = canonicalize(dsse_request(envelope(payload, [sig]), [verifier_b64(p256)]))
    assert not [k for k in entry.search_keys if k.startswith("sha256:") and k.endswith("short")]
    assert entry.attestation == payload


def test_non_in_toto_payload_not_parsed(p256: ec.EllipticCurvePrivateKey) -> None:
    payload = statement()
    sig = sign_pae(p256, pae("application/json", payload))
    entry = canonicalize(dsse_request(envelope(payload, [sig], "application/json"), [verifier_b64(p256)]))
    assert "sha256:" + SUBJECT_SHA256.lower() not in entry.search_keys


# --------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------


def with_spec(req: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(req))
    for name, value in changes.items():
        if value is ...:
            del out["spec"][name]
        else:
            out["spec"][name] = value
    return out


def with_proposed(req: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(req))
    for name, value in changes.items():
        if value is ...:
            del out["spec"]["proposedContent"][name]
        else:
            out["spec"]["proposedContent"][name] = value
    return out


def with_envelope(req: dict[str, Any], **changes: Any) -> dict[str, Any]:
    env = json.loads(req["spec"]["proposedContent"]["envelope"])
    for name, value in changes.items():
        if value is ...:
            del env[name]
        else:
            env[name] = value
    return with_proposed(req, envelope=json.dumps(env))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("signatures", [{"signature": "AAAA", "verifier": "AAAA"}]),
        ("envelopeHash", {"algorithm": "sha256", "value": "ab" * 32}),
        ("payloadHash", {"algorithm": "sha256", "value": "ab" * 32}),
        ("payloadHash", {}),
        ("envelopeHash", "x"),
    ],
)
def test_server_computed_fields_rejected(signed: Any, name: str, value: Any) -> None:
    with pytest.raises(BadRequest, match=rf"^spec\.{name}: must be null or absent in a request"):
        canonicalize(with_spec(signed[0], **{name: value}))


def test_apiversion_rejected(signed: Any) -> None:
    req = dict(signed[0], apiVersion="0.0.2")
    with pytest.raises(BadRequest, match=r"unsupported apiVersion '0.0.2' for kind 'dsse'; supported: 0.0.1"):
        canonicalize(req)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: with_spec(r, proposedContent=...), "spec.proposedContent: missing"),
        (lambda r: with_spec(r, proposedContent="x"), "spec.proposedContent: expected an object, got string"),
        (lambda r: with_proposed(r, envelope=...), "spec.proposedContent.envelope: missing"),
        (lambda r: with_proposed(r, envelope={"payload": "x"}), "spec.proposedContent.envelope: expected a string, got object"),
        (lambda r: with_proposed(r, envelope=""), "spec.proposedContent.envelope: empty"),
        (lambda r: with_proposed(r, envelope="{not json"), "spec.proposedContent.envelope: not valid JSON"),
        (lambda r: with_proposed(r, envelope='{"payload": NaN}'), "spec.proposedContent.envelope: not valid JSON"),
        (lambda r: with_proposed(r, envelope="[" * 50_000), "spec.proposedContent.envelope: not valid JSON"),
        (lambda r: with_proposed(r, envelope="[]"), "spec.proposedContent.envelope: expected a JSON object, got array"),
        (lambda r: with_proposed(r, envelope='{"a":"\ud800"}'), "spec.proposedContent.envelope: not valid Unicode"),
        (lambda r: with_envelope(r, payload=...), "spec.proposedContent.envelope.payload: missing"),
        (lambda r: with_envelope(r, payload=12), "spec.proposedContent.envelope.payload: expected a string, got number"),
        (lambda r: with_envelope(r, payload="@@@@"), "spec.proposedContent.envelope.payload: not valid base64"),
        (lambda r: with_envelope(r, payload=""), "spec.proposedContent.envelope.payload: empty"),
        (lambda r: with_envelope(r, payloadType=...), "spec.proposedContent.envelope.payloadType: missing"),
        (lambda r: with_envelope(r, payloadType=[]), "spec.proposedContent.envelope.payloadType: expected a string, got array"),
        (lambda r: with_envelope(r, payloadType="\udc00"), "spec.proposedContent.envelope.payloadType: not valid Unicode"),
        (lambda r: with_envelope(r, signatures=...), "spec.proposedContent.envelope.signatures: missing"),
        (lambda r: with_envelope(r, signatures={}), "spec.proposedContent.envelope.signatures: expected an array, got object"),
        (lambda r: with_envelope(r, signatures=[]), "spec.proposedContent.envelope.signatures: at least one signature is required"),
        (lambda r: with_envelope(r, signatures=[{"sig": "AAAA"}] * 17), "spec.proposedContent.envelope.signatures: 17 signatures; at most 16"),
        (lambda r: with_envelope(r, signatures=["AAAA"]), "spec.proposedContent.envelope.signatures[0]: expected an object, got string"),
        (lambda r: with_envelope(r, signatures=[{}]), "spec.proposedContent.envelope.signatures[0].sig: missing"),
        (lambda r: with_envelope(r, signatures=[{"sig": True}]), "spec.proposedContent.envelope.signatures[0].sig: expected a string, got boolean"),
        (lambda r: with_envelope(r, signatures=[{"sig": "A==="}]), "spec.proposedContent.envelope.signatures[0].sig: not valid base64"),
        (lambda r: with_envelope(r, signatures=[{"sig": "AAAA", "keyid": 3}]), "spec.proposedContent.envelope.signatures[0].keyid: expected a string, got number"),
        (lambda r: with_proposed(r, verifiers=...), "spec.proposedContent.verifiers: missing"),
        (lambda r: with_proposed(r, verifiers="AAAA"), "spec.proposedContent.verifiers: expected an array, got string"),
        (lambda r: with_proposed(r, verifiers=[]), "spec.proposedContent.verifiers: at least one verifier is required"),
        (lambda r: with_proposed(r, verifiers=["AAAA"] * 17), "spec.proposedContent.verifiers: 17 verifiers; at most 16"),
        (lambda r: with_proposed(r, verifiers=[None]), "spec.proposedContent.verifiers[0]: expected a string, got null"),
        (lambda r: with_proposed(r, verifiers=["!!"]), "spec.proposedContent.verifiers[0]: not valid base64"),
        (lambda r: with_proposed(r, verifiers=[b64(b"garbage")]), "spec.proposedContent.verifiers[0]: expected exactly one PEM block"),
    ],
)
def test_rejections(signed: Any, build: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        canonicalize(build(signed[0]))
    assert message in caught.value.message


def test_unsupported_verifier_key_rejected(signed: Any) -> None:
    ver = verifier_b64(ec.generate_private_key(ec.SECP256K1()), as_cert=False)
    with pytest.raises(BadRequest, match=r"verifiers\[1\]: unsupported key type: ECDSA on curve secp256k1"):
        canonicalize(with_proposed(signed[0], verifiers=[signed[4], ver]))


def test_signature_not_matching_any_verifier(signed: Any) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(BadRequest) as caught:
        canonicalize(with_proposed(signed[0], verifiers=[verifier_b64(other)]))
    assert caught.value.message == (
        "signature verification failed: spec.proposedContent.envelope.signatures[0] "
        "is not verified by any key in spec.proposedContent.verifiers"
    )


def test_every_signature_must_verify(signed: Any, p256: ec.EllipticCurvePrivateKey) -> None:
    _, payload, sig, _, ver = signed
    stranger = sign_pae(ec.generate_private_key(ec.SECP256R1()), pae(IN_TOTO, payload))
    with pytest.raises(BadRequest, match=r"signatures\[1\] is not verified"):
        canonicalize(dsse_request(envelope(payload, [sig, stranger]), [ver]))


def test_signature_over_payload_instead_of_pae_rejected(p256: ec.EllipticCurvePrivateKey) -> None:
    payload = statement()
    sig = p256.sign(payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(dsse_request(envelope(payload, [sig]), [verifier_b64(p256)]))


def test_payload_type_is_bound_by_pae(signed: Any) -> None:
    req = with_envelope(signed[0], payloadType="application/json")
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(req)


def test_oversized_dsse_body_rejected() -> None:
    """16 signatures, each verified by its own ~3.5 KB certificate: ~80 KB of body."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(16)]
    big = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x00" * 2500)
    payload = b"payload"
    sigs = [sign_pae(k, pae(IN_TOTO, payload)) for k in keys]
    verifiers = []
    for k in keys:
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))
            .public_key(k.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now)
            .add_extension(big, critical=False)
            .sign(k, hashes.SHA256())
        )
        verifiers.append(b64(cert.public_bytes(serialization.Encoding.PEM)))
    with pytest.raises(BadRequest, match="limit is 65535 bytes"):
        canonicalize(dsse_request(envelope(payload, sigs), verifiers))
