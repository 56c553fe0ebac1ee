"""Checking one signature with one public key, whatever its type: ECDSA (DER
signatures), RSA PKCS#1 v1.5 or Ed25519, over a message or over a digest
(prehashed)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["default_hash", "signature_ok"]


def default_hash(public_key: object) -> hashes.HashAlgorithm | None:
    """The hash Sigstore pairs with a key: by curve for ECDSA, SHA-256 for RSA."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(public_key.curve.name, hashes.SHA256())
    if isinstance(public_key, rsa.RSAPublicKey):
        return hashes.SHA256()
    return None


def signature_ok(
    public_key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None = None,
    *,
    prehashed: bool = False,
) -> bool:
    """True if ``signature`` verifies over ``data`` (or over the digest
    ``data`` when ``prehashed``). ``hash_algorithm`` defaults to
    :func:`default_hash`; Ed25519 ignores it and cannot be prehashed."""
    algorithm = hash_algorithm or default_hash(public_key)
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            if prehashed:
                return False
            public_key.verify(signature, data)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            assert algorithm is not None
            chosen = Prehashed(algorithm) if prehashed else algorithm
            public_key.verify(signature, data, ec.ECDSA(chosen))
        elif isinstance(public_key, rsa.RSAPublicKey):
            assert algorithm is not None
            chosen = Prehashed(algorithm) if prehashed else algorithm
            public_key.verify(signature, data, padding.PKCS1v15(), chosen)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
