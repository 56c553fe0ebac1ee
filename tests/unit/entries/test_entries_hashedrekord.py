"""hashedrekord 0.0.1: canonical bodies, verification per key type, rejections."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from tlog.entries import MAX_BODY_SIZE, CanonicalEntry, canonicalize, search_key_for_public_key
from tlog.errors import BadRequest

ARTIFACT = b"hello, transparency log\n"
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

# --------------------------------------------------------------------------
# Key and certificate material
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def self_signed(private_key: Any, *, extra_extension: x509.ExtensionType | None = None) -> x509.Certificate:
    """A Fulcio-like leaf: empty subject, critical SAN with e-mail and URI."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")]))
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        # Deliberately already expired: validity is not the log's business.
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.RFC822Name("Alice@Example.COM"),
                    x509.UniformResourceIdentifier("https://github.com/Org/Repo/.github/workflows/x.yml@refs/heads/main"),
                ]
            ),
            critical=True,
        )
    )
    if extra_extension is not None:
        builder = builder.add_extension(extra_extension, critical=False)
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, algorithm)


def spki_pem(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def sign_digest(private_key: Any, digest: bytes, algorithm: str = "sha256") -> bytes:
    """Sign as hashedrekord clients do: over the prehashed artifact digest."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(digest, ec.ECDSA(Prehashed(HASHES[algorithm]())))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(digest, padding.PKCS1v15(), Prehashed(HASHES[algorithm]()))
    return private_key.sign(digest)  # Ed25519: the digest bytes are the message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request(signature: bytes, pem: bytes, digest: bytes, algorithm: str = "sha256") -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "signature": {"content": b64(signature), "publicKey": {"content": b64(pem)}},
            "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
        },
    }


def expected_body(signature: bytes, pem: bytes, digest: bytes, algorithm: str = "sha256") -> bytes:
    """The canonical body, written out by hand (keys in RFC 8785 order)."""
    return (
        '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":'
        f'{{"algorithm":"{algorithm}","value":"{digest.hex()}"}}}},"signature":'
        f'{{"content":"{b64(signature)}","publicKey":{{"content":"{b64(pem)}"}}}}}}}}'
    ).encode()


def digest_of(data: bytes, algorithm: str = "sha256") -> bytes:
    return hashlib.new(algorithm, data).digest()


@pytest.fixture(scope="module")
def p256_cert_request(keys: dict[str, Any]) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    key = keys["p256"]
    pem = cert_pem(self_signed(key))
    digest = digest_of(ARTIFACT)
    sig = sign_digest(key, digest)
    return request(sig, pem, digest), sig, pem, digest


# --------------------------------------------------------------------------
# Accepted entries
# --------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["p256", "p384", "p521", "ed25519", "rsa2048"])
@pytest.mark.parametrize("form", ["key", "cert"])
def test_valid_entry_for_each_key_type(keys: dict[str, Any], key_name: str, form: str) -> None:
    key = keys[key_name]
    pem = spki_pem(key) if form == "key" else cert_pem(self_signed(key))
    digest = digest_of(ARTIFACT)
    sig = sign_digest(key, digest)

    entry = canonicalize(request(sig, pem, digest))

    assert isinstance(entry, CanonicalEntry)
    assert (entry.kind, entry.api_version, entry.attestation) == ("hashedrekord", "0.0.1", None)
    assert entry.body == expected_body(sig, pem, digest)
    assert f"sha256:{digest.hex()}" in entry.search_keys
    assert "pubkey:sha256:" + hashlib.sha256(pem).hexdigest() in entry.search_keys
    if form == "cert":
        assert "email:alice@example.com" in entry.search_keys
        assert "uri:https://github.com/Org/Repo/.github/workflows/x.yml@refs/heads/main" in entry.search_keys
    else:
        assert not any(k.startswith(("email:", "uri:")) for k in entry.search_keys)
    assert list(entry.search_keys) == sorted(set(entry.search_keys))


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("key_name", ["p256", "p384", "rsa2048", "ed25519"])
def test_each_digest_algorithm(keys: dict[str, Any], algorithm: str, key_name: str) -> None:
    key = keys[key_name]
    digest = digest_of(ARTIFACT, algorithm)
    sig = sign_digest(key, digest, algorithm)
    entry = canonicalize(request(sig, spki_pem(key), digest, algorithm))
    assert entry.body == expected_body(sig, spki_pem(key), digest, algorithm)
    assert f"{algorithm}:{digest.hex()}" in entry.search_keys


def test_sigstore_python_request_rebuilds_identically(p256_cert_request: Any) -> None:
    """sigstore-python's verifier rebuilds the body from the bundle (interop §4.3).

    It uses base64(cryptography PEM of the leaf), base64(signature) and
    sha256 + lowercase hex; model equality must hold, and we also want byte
    equality with the RFC 8785 serialisation of that rebuilt model.
    """
    req, sig, pem, digest = p256_cert_request
    entry = canonicalize(req)
    leaf = x509.load_pem_x509_certificate(pem)
    rebuilt = {
        "kind": "hashedrekord",
        "apiVersion": "0.0.1",
        "spec": {
            "signature": {
                "content": base64.b64encode(sig).decode(),
                "publicKey": {"content": base64.b64encode(leaf.public_bytes(serialization.Encoding.PEM)).decode()},
            },
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(ARTIFACT).hexdigest()}},
        },
    }
    assert json.loads(entry.body) == rebuilt
    assert entry.body == rfc8785.dumps(rebuilt)


def test_body_is_canonical_whatever_the_input_spelling(keys: dict[str, Any]) -> None:
    """Upper-case hex, CRLF PEM with surrounding whitespace, extra keys, null data.content."""
    key = keys["p256"]
    pem = cert_pem(self_signed(key))
    digest = digest_of(ARTIFACT)
    sig = sign_digest(key, digest)
    messy_pem = b"\n  " + pem.replace(b"\n", b"\r\n") + b"\n\n"
    req = request(sig, messy_pem, digest)
    req["spec"]["data"]["hash"]["value"] = digest.hex().upper()
    req["spec"]["data"]["content"] = None
    req["spec"]["signature"]["format"] = "x509"
    req["extra"] = {"ignored": True}
    assert canonicalize(req).body == expected_body(sig, pem, digest)


def test_expired_certificate_is_accepted(p256_cert_request: Any) -> None:
    req, *_ = p256_cert_request
    cert = x509.load_pem_x509_certificate(base64.b64decode(req["spec"]["signature"]["publicKey"]["content"]))
    assert cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc)
    canonicalize(req)


def test_search_key_for_public_key_matches_entry(keys: dict[str, Any], p256_cert_request: Any) -> None:
    req, _, pem, _ = p256_cert_request
    entry = canonicalize(req)
    cert = x509.load_pem_x509_certificate(pem)
    assert search_key_for_public_key(pem) in entry.search_keys
    assert search_key_for_public_key(cert.public_bytes(serialization.Encoding.DER)) in entry.search_keys
    key = keys["rsa2048"]
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert search_key_for_public_key(der) == search_key_for_public_key(spki_pem(key))
    with pytest.raises(BadRequest):
        search_key_for_public_key(b"garbage")


# --------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------


def mutate(req: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Deep-copy ``req`` and set (or with ``...``, delete) the dotted ``path``."""
    out = json.loads(json.dumps(req))
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


GOOD_HEX = "ab" * 32


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("kind", ..., "kind: missing"),
        ("kind", 7, "kind: expected a string, got number"),
        ("apiVersion", ..., "apiVersion: missing"),
        ("apiVersion", None, "apiVersion: missing"),
        ("kind", "rekord", "unsupported kind 'rekord'; supported: hashedrekord 0.0.1, dsse 0.0.1"),
        ("apiVersion", "0.0.2", "unsupported apiVersion '0.0.2' for kind 'hashedrekord'; supported: 0.0.1"),
        ("spec", ..., "spec: missing"),
        ("spec", [], "spec: expected an object, got array"),
        ("spec.signature", ..., "spec.signature: missing"),
        ("spec.signature", "x", "spec.signature: expected an object, got string"),
        ("spec.signature.content", ..., "spec.signature.content: missing"),
        ("spec.signature.content", 1.5, "spec.signature.content: expected a string, got number"),
        ("spec.signature.content", "", "spec.signature.content: empty"),
        ("spec.signature.content", "not base64!", "spec.signature.content: not valid base64"),
        ("spec.signature.content", "YWJj ZA==", "spec.signature.content: not valid base64"),
        ("spec.signature.content", "YWJjZA", "spec.signature.content: not valid base64"),
        ("spec.signature.content", "YWJj-_==", "spec.signature.content: not valid base64"),
        ("spec.signature.content", "A" * (MAX_BODY_SIZE + 4), "spec.signature.content: too large"),
        ("spec.signature.publicKey", ..., "spec.signature.publicKey: missing"),
        ("spec.signature.publicKey", True, "spec.signature.publicKey: expected an object, got boolean"),
        ("spec.signature.publicKey.content", ..., "spec.signature.publicKey.content: missing"),
        ("spec.signature.publicKey.content", {}, "spec.signature.publicKey.content: expected a string, got object"),
        ("spec.signature.publicKey.content", "%%%", "spec.signature.publicKey.content: not valid base64"),
        ("spec.data", ..., "spec.data: missing"),
        ("spec.data", 3, "spec.data: expected an object, got number"),
        ("spec.data.content", "aGVsbG8=", "spec.data.content: not supported"),
        ("spec.data.hash", ..., "spec.data.hash: missing"),
        ("spec.data.hash", "sha256:" + GOOD_HEX, "spec.data.hash: expected an object, got string"),
        ("spec.data.hash.algorithm", ..., "spec.data.hash.algorithm: missing"),
        ("spec.data.hash.algorithm", "md5", "spec.data.hash.algorithm: unsupported hash algorithm 'md5'"),
        ("spec.data.hash.algorithm", "SHA256", "spec.data.hash.algorithm: unsupported hash algorithm 'SHA256'"),
        ("spec.data.hash.value", ..., "spec.data.hash.value: missing"),
        ("spec.data.hash.value", ["ab"], "spec.data.hash.value: expected a string, got array"),
        ("spec.data.hash.value", "zz" * 32, "spec.data.hash.value: not a hex string"),
        ("spec.data.hash.value", "ab" * 31, "spec.data.hash.value: expected 64 hex characters, got 62"),
        ("spec.data.hash.value", "ab" * 48, "spec.data.hash.value: expected 64 hex characters, got 96"),
        ("spec.data.hash.value", " " + "ab" * 31 + "a", "spec.data.hash.value: not a hex string"),
    ],
)
def test_field_rejections(p256_cert_request: Any, path: str, value: Any, message: str) -> None:
    req, *_ = p256_cert_request
    with pytest.raises(BadRequest) as caught:
        canonicalize(mutate(req, path, value))
    assert message in caught.value.message
    assert caught.value.http_status == 400


@pytest.mark.parametrize("value", [None, [], "x", 1, 2.5, True, ["kind"]])
def test_top_level_must_be_object(value: Any) -> None:
    with pytest.raises(BadRequest, match="proposed entry: expected a JSON object"):
        canonicalize(value)


def test_unsupported_kind_message_lists_supported() -> None:
    with pytest.raises(BadRequest) as caught:
        canonicalize({"kind": "intoto", "apiVersion": "0.0.2", "spec": {}})
    assert caught.value.message == "unsupported kind 'intoto'; supported: hashedrekord 0.0.1, dsse 0.0.1"


def test_error_message_escapes_and_truncates_client_text() -> None:
    with pytest.raises(BadRequest) as caught:
        canonicalize({"kind": "\ud800" + "k" * 500, "apiVersion": "0.0.1", "spec": {}})
    assert caught.value.message.isascii()
    assert len(caught.value.message) < 200


def _with_key(digest: bytes, private_key: Any, pem: bytes | None = None) -> dict[str, Any]:
    return request(sign_digest(private_key, digest), pem if pem is not None else spki_pem(private_key), digest)


def test_rsa_1024_rejected() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    digest = digest_of(ARTIFACT)
    with pytest.raises(BadRequest, match=r"unsupported key type: RSA-1024"):
        canonicalize(_with_key(digest, small))
    with pytest.raises(BadRequest, match=r"unsupported key type: RSA-1024"):
        canonicalize(_with_key(digest, small, cert_pem(self_signed(small))))


def test_secp256k1_rejected() -> None:
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(BadRequest, match=r"unsupported key type: ECDSA on curve secp256k1"):
        canonicalize(_with_key(digest_of(ARTIFACT), k1))


def test_dsa_rejected() -> None:
    key = dsa.generate_private_key(key_size=2048)
    pem = spki_pem(key)
    req = request(b"\x30\x00", pem, digest_of(ARTIFACT))
    with pytest.raises(BadRequest, match=r"unsupported key type: DSA"):
        canonicalize(req)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"not a pem at all", "expected exactly one PEM block"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PEM public key"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid X.509 certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "unsupported PEM type 'PRIVATE KEY'"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid PEM block"),
        (b"\xff\xfe-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PEM block"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\ntrailing", "not a valid PEM block"),
    ],
)
def test_garbage_public_key_rejected(pem: bytes, message: str) -> None:
    digest = digest_of(ARTIFACT)
    with pytest.raises(BadRequest) as caught:
        canonicalize(request(b"sig", pem, digest))
    assert caught.value.message.startswith("spec.signature.publicKey.content: ")
    assert message in caught.value.message


def test_certificate_chain_rejected(keys: dict[str, Any]) -> None:
    pem = cert_pem(self_signed(keys["p256"])) + cert_pem(self_signed(keys["p384"]))
    digest = digest_of(ARTIFACT)
    with pytest.raises(BadRequest, match="expected exactly one PEM block"):
        canonicalize(request(sign_digest(keys["p256"], digest), pem, digest))


@pytest.mark.parametrize("key_name", ["p256", "p384", "ed25519", "rsa2048"])
def test_wrong_signature_rejected(keys: dict[str, Any], key_name: str) -> None:
    key = keys[key_name]
    digest = digest_of(ARTIFACT)
    sig = bytearray(sign_digest(key, digest))
    sig[-1] ^= 1
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(request(bytes(sig), spki_pem(key), digest))


@pytest.mark.parametrize("key_name", ["p256", "ed25519", "rsa2048"])
def test_digest_mismatch_rejected(keys: dict[str, Any], key_name: str) -> None:
    key = keys[key_name]
    sig = sign_digest(key, digest_of(b"another artifact"))
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(request(sig, spki_pem(key), digest_of(ARTIFACT)))


def test_signature_by_other_key_rejected(keys: dict[str, Any]) -> None:
    digest = digest_of(ARTIFACT)
    sig = sign_digest(keys["p384"], digest)
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(request(sig, cert_pem(self_signed(keys["p256"])), digest))


def test_ecdsa_signature_over_full_message_is_not_prehashed(keys: dict[str, Any]) -> None:
    """A signature over sha256(sha256(artifact)) must not pass as one over the digest."""
    key = keys["p256"]
    digest = digest_of(ARTIFACT)
    sig = key.sign(digest, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(BadRequest, match="^signature verification failed"):
        canonicalize(request(sig, spki_pem(key), digest))


def test_oversized_body_rejected(keys: dict[str, Any]) -> None:
    """Every field within its own limit, the canonical body over 65535 bytes."""
    key = keys["p256"]
    big = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x00" * 50_000)
    pem = cert_pem(self_signed(key, extra_extension=big))
    digest = digest_of(ARTIFACT)
    with pytest.raises(BadRequest) as caught:
        canonicalize(request(sign_digest(key, digest), pem, digest))
    assert "limit is 65535 bytes" in caught.value.message


def test_body_just_under_limit_accepted(keys: dict[str, Any]) -> None:
    key = keys["p256"]
    digest = digest_of(ARTIFACT)
    sig = sign_digest(key, digest)

    def body_size(pad: int) -> int:
        big = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x00" * pad)
        req = request(sig, cert_pem(self_signed(key, extra_extension=big)), digest)
        try:
            return len(canonicalize(req).body)
        except BadRequest as exc:
            assert "limit is 65535 bytes" in exc.message
            return MAX_BODY_SIZE + 1

    # base64(PEM(DER)) grows ~16/9 per DER byte; step down until it fits.
    pad = 36_700
    while (size := body_size(pad)) > MAX_BODY_SIZE:
        pad -= 64
    assert MAX_BODY_SIZE - 200 < size <= MAX_BODY_SIZE
