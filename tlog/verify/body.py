"""The log entry body must record exactly this bundle's signature,
certificate and digest. Without this check a bundle could pair a genuine
log entry with other materials (CVE-2022-36056).

Supported bodies: ``hashedrekord`` 0.0.1 and ``dsse`` 0.0.1 (Rekor v1), and
``hashedrekord`` 0.0.2 (Rekor v2, which also records DSSE envelopes as a
hashedrekord over the PAE). Values are compared decoded (certificates as DER,
signatures and digests as bytes), not as JSON text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tlog.verify.bundle import Bundle, LogEntry

__all__ = ["SUPPORTED", "BodyMismatch", "check_body", "key_details_of"]

SUPPORTED = {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1")}

_V2_HASHES = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


class BodyMismatch(ValueError):
    """The body records other materials than the bundle, or is malformed."""


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            raise BodyMismatch(f"the entry body has no {'.'.join(path)}")
        doc = doc[key]
    return doc


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BodyMismatch(f"the entry body's {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyMismatch(f"the entry body's {what} is not base64") from exc


def _pem_cert(value: Any, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_b64(value, what))
    except ValueError as exc:
        raise BodyMismatch(f"the entry body's {what} is not a PEM certificate") from exc


def key_details_of(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384", "secp521r1": "PKIX_ECDSA_P521_SHA_512"}.get(
            key.curve.name, "UNKNOWN"
        )
    if isinstance(key, rsa.RSAPublicKey):
        return f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    return "UNKNOWN"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def parse_body(entry: LogEntry) -> dict[str, Any]:
    try:
        doc = json.loads(entry.body)
    except ValueError as exc:
        raise BodyMismatch("the entry body is not JSON") from exc
    if not isinstance(doc, dict):
        raise BodyMismatch("the entry body is not a JSON object")
    if doc.get("kind") != entry.kind or doc.get("apiVersion") != entry.version:
        raise BodyMismatch(
            f"the body is {doc.get('kind')} {doc.get('apiVersion')}, the bundle says {entry.kind} {entry.version}"
        )
    return doc


def _hashedrekord_v001(doc: dict[str, Any], bundle: Bundle, digest: tuple[str, bytes]) -> None:
    assert bundle.message_signature is not None
    spec = _get(doc, "spec")
    problems = []
    if _b64(_get(spec, "signature", "content"), "signature.content") != bundle.message_signature.signature:
        problems.append("signature")
    if _der(_pem_cert(_get(spec, "signature", "publicKey", "content"), "signature.publicKey.content")) != _der(bundle.certificate):
        problems.append("certificate")
    algorithm, value = digest
    if _get(spec, "data", "hash", "algorithm") != algorithm or _get(spec, "data", "hash", "value") != value.hex():
        problems.append("digest")
    if problems:
        raise BodyMismatch(f"the entry records another {' and '.join(problems)} than the bundle")


def _hashedrekord_v002(doc: dict[str, Any], bundle: Bundle, digest: tuple[str, bytes]) -> None:
    spec = _get(doc, "spec", "hashedRekordV002")
    problems = []
    if _b64(_get(spec, "signature", "content"), "signature.content") != bundle.signature:
        problems.append("signature")
    verifier = _get(spec, "signature", "verifier")
    raw = _b64(_get(verifier, "x509Certificate", "rawBytes"), "verifier.x509Certificate.rawBytes")
    if raw != _der(bundle.certificate) or verifier.get("keyDetails") != key_details_of(bundle.certificate):
        problems.append("certificate")
    algorithm, value = digest
    recorded = _V2_HASHES.get(_get(spec, "data", "algorithm"))
    if recorded != algorithm or _b64(_get(spec, "data", "digest"), "data.digest") != value:
        problems.append("digest")
    if problems:
        raise BodyMismatch(f"the entry records another {' and '.join(problems)} than the bundle")


def _dsse_v001(doc: dict[str, Any], bundle: Bundle) -> None:
    if bundle.dsse is None:
        raise BodyMismatch("a dsse entry needs a bundle with a dsseEnvelope")
    spec = _get(doc, "spec")
    problems = []
    payload_hash = _get(spec, "payloadHash")
    if payload_hash.get("algorithm") != "sha256" or payload_hash.get("value") != hashlib.sha256(bundle.dsse.payload).hexdigest():
        problems.append("payload")
    signatures = _get(spec, "signatures")
    if not isinstance(signatures, list) or len(signatures) != len(bundle.dsse.signatures):
        problems.append("signatures")
    else:
        for recorded, sig in zip(signatures, bundle.dsse.signatures, strict=True):
            if _b64(_get(recorded, "signature"), "signatures[].signature") != sig:
                problems.append("signature")
                break
            if _der(_pem_cert(_get(recorded, "verifier"), "signatures[].verifier")) != _der(bundle.certificate):
                problems.append("certificate")
                break
    if problems:
        raise BodyMismatch(f"the entry records another {' and '.join(problems)} than the bundle")


def check_body(entry: LogEntry, bundle: Bundle, digest: tuple[str, bytes] | None) -> str:
    """Check the body against the bundle; ``digest`` is ``(algorithm, bytes)``
    of the signed message for a message signature. Returns a description."""
    doc = parse_body(entry)
    kind = (entry.kind, entry.version)
    if kind == ("hashedrekord", "0.0.1"):
        if bundle.message_signature is None or digest is None:
            raise BodyMismatch("a hashedrekord 0.0.1 entry needs a bundle with a messageSignature")
        _hashedrekord_v001(doc, bundle, digest)
        return "records this signature, certificate and digest"
    if kind == ("hashedrekord", "0.0.2"):
        if bundle.dsse is not None:
            if len(bundle.dsse.signatures) != 1:
                raise BodyMismatch("a DSSE envelope logged as hashedrekord 0.0.2 must have exactly one signature")
            algorithm = {"PKIX_ECDSA_P384_SHA_384": "sha384", "PKIX_ECDSA_P521_SHA_512": "sha512"}.get(
                key_details_of(bundle.certificate), "sha256"
            )
            _hashedrekord_v002(doc, bundle, (algorithm, hashlib.new(algorithm, bundle.dsse.pae()).digest()))
            return "records this DSSE signature, certificate and envelope digest"
        if digest is None:
            raise BodyMismatch("no message digest to compare with the entry")
        _hashedrekord_v002(doc, bundle, digest)
        return "records this signature, certificate and digest"
    if kind == ("dsse", "0.0.1"):
        _dsse_v001(doc, bundle)
        return "records this envelope's payload hash, signatures and certificate"
    raise BodyMismatch(f"unsupported entry type {entry.kind} {entry.version}")
