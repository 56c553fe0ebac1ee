"""Fulcio v2 ``signingCert`` requests: where the token is, and whose key to certify.

Fulcio accepts two forms of proof that the caller holds the private key:

* ``certificateSigningRequest``: base64 of a PEM PKCS#10 CSR; its
  self-signature is the proof (this is what sigstore-python sends);
* ``publicKeyRequest {publicKey {algorithm, content}, proofOfPossession}``: a
  PEM public key and a base64 signature over the token's challenge claim (the
  email for email identities, else ``sub``).

Pure functions: bytes and dicts in, a verified public key out, ``BadRequest``
(or ``Unauthorized`` for a missing token) naming the problem otherwise.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tlog.ca.certificate import SubjectPublicKey, check_subject_public_key
from tlog.errors import BadRequest, Unauthorized

_POP_HASH = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}
#: Largest PEM we parse for a CSR or public key; real ones are well under 4 KiB.
MAX_KEY_MATERIAL = 16 * 1024


def bearer_token(authorization: str | None, body: dict[str, Any]) -> str:
    """The OIDC token from ``Authorization: Bearer`` or ``credentials.oidcIdentityToken``."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <OIDC identity token>'")
        return token.strip()
    creds = body.get("credentials")
    if creds is not None:
        if not isinstance(creds, dict) or not isinstance(creds.get("oidcIdentityToken"), str):
            raise BadRequest("credentials.oidcIdentityToken must be a string")
        if creds["oidcIdentityToken"].strip():
            return str(creds["oidcIdentityToken"]).strip()
    raise Unauthorized("no OIDC identity token: send 'Authorization: Bearer <token>' or credentials.oidcIdentityToken")


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a non-empty base64 string")
    if len(value) > MAX_KEY_MATERIAL * 2:
        raise BadRequest(f"{what} is too large")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None


def key_from_csr(value: Any) -> SubjectPublicKey:
    """The public key of a base64-encoded PEM (or DER) CSR whose self-signature verifies."""
    raw = _b64(value, "certificateSigningRequest")
    try:
        csr = x509.load_pem_x509_csr(raw) if raw.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_csr(raw)
    except ValueError as exc:
        raise BadRequest(f"certificateSigningRequest is not a PKCS#10 CSR: {exc}") from None
    try:
        key = check_subject_public_key(csr.public_key())
        valid = csr.is_signature_valid
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise BadRequest(f"certificateSigningRequest: unsupported public key or signature: {exc}") from None
    if not valid:
        raise BadRequest("certificateSigningRequest signature is invalid: it does not prove possession of the key")
    return key


def key_from_public_key_request(value: Any, challenge: str) -> SubjectPublicKey:
    """The key of a ``publicKeyRequest`` whose proof of possession signs ``challenge``."""
    if not isinstance(value, dict):
        raise BadRequest("publicKeyRequest must be an object")
    pk = value.get("publicKey")
    if not isinstance(pk, dict) or not isinstance(pk.get("content"), str):
        raise BadRequest("publicKeyRequest.publicKey.content must be a PEM public key string")
    content = pk["content"].encode()
    if len(content) > MAX_KEY_MATERIAL:
        raise BadRequest("publicKeyRequest.publicKey.content is too large")
    try:
        key = check_subject_public_key(serialization.load_pem_public_key(content))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadRequest(f"publicKeyRequest.publicKey.content is not a PEM public key: {exc}") from None
    algorithm = pk.get("algorithm")
    expected = {ec.EllipticCurvePublicKey: "ECDSA", rsa.RSAPublicKey: "RSA_PSS", ed25519.Ed25519PublicKey: "ED25519"}
    if algorithm not in (None, "", "PUBLIC_KEY_ALGORITHM_UNSPECIFIED"):
        want = next(v for k, v in expected.items() if isinstance(key, k))
        if algorithm != want and not (want == "RSA_PSS" and algorithm == "RSA"):
            raise BadRequest(f"publicKeyRequest.publicKey.algorithm {algorithm!r} does not match the key ({want})")
    proof = _b64(value.get("proofOfPossession"), "publicKeyRequest.proofOfPossession")
    if not _verifies(key, proof, challenge.encode()):
        raise BadRequest("proofOfPossession does not verify: it must be a signature over the token's subject with this key")
    return key


def _verifies(key: SubjectPublicKey, sig: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, message, ec.ECDSA(_POP_HASH[key.curve.name]()))
        else:
            try:
                key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(
                    sig, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256()
                )
        return True
    except (InvalidSignature, ValueError):
        return False
