"""Verifier loading, key-type policy and signature verification.

A *verifier* is what a client submits to prove who signed: a PEM
SubjectPublicKeyInfo (``PUBLIC KEY``) or a PEM X.509 ``CERTIFICATE`` carrying
such a key. Its *canonical* form is cryptography's re-encoding of the parsed
object (64-character base64 lines, ``\\n``, trailing newline), which is what
sigstore-python sends and what it re-derives when it checks a body, and what
Rekor stores (``pki/x509.PublicKey.CanonicalValue``).

Accepted keys (sigstore's algorithm registry, minus the exotic):
ECDSA P-256/P-384/P-521, Ed25519, RSA 2048–8192 bits. Certificates are only
unwrapped here: neither their validity period nor their chain is checked (the
log must accept Fulcio certificates that expire minutes later; chain policy is
the verifier's business).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tlog.entries import identity
from tlog.entries import show as _show
from tlog.errors import BadRequest

SupportedKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 2048
#: Bounds the CPU a single verification can cost; sigstore itself stops at 4096.
MAX_RSA_BITS = 8192

SUPPORTED_KEYS = f"ECDSA P-256/P-384/P-521, Ed25519, RSA {MIN_RSA_BITS}-{MAX_RSA_BITS} bits"

#: hashedrekord digest algorithms: name -> (hash factory, digest size in bytes).
DIGESTS: dict[str, tuple[type[hashes.HashAlgorithm], int]] = {
    "sha256": (hashes.SHA256, 32),
    "sha384": (hashes.SHA384, 48),
    "sha512": (hashes.SHA512, 64),
}

# The hash each curve is specified with for DSSE (sigstore algorithm registry).
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n.*?-----END \1-----", re.S)


@dataclass(frozen=True, slots=True)
class Verifier:
    """A parsed, policy-checked verifier.

    ``canonical_pem`` is the re-encoded PEM of ``certificate`` if one was
    submitted, else of the public key. ``identities`` are the certificate's
    ``email:``/``uri:`` search keys (empty for a bare key).
    """

    key: SupportedKey
    canonical_pem: bytes
    certificate: x509.Certificate | None
    identities: tuple[str, ...]

    def search_keys(self) -> list[str]:
        """``pubkey:sha256:<hex>`` followed by the identity keys."""
        return [public_key_search_key(self.canonical_pem), *self.identities]


def public_key_search_key(canonical_pem: bytes) -> str:
    """``pubkey:sha256:<hex of SHA-256(canonical PEM)>``."""
    return "pubkey:sha256:" + hashlib.sha256(canonical_pem).hexdigest()


def load_verifier(pem: bytes, path: str) -> Verifier:
    """Parse one PEM certificate or public key and apply the key-type policy.

    ``path`` names the JSON field the PEM came from, for error messages.
    """
    label, block = _single_pem_block(pem, path)
    certificate: x509.Certificate | None = None
    key: object
    if label == b"CERTIFICATE":
        try:
            certificate = x509.load_pem_x509_certificate(block)
            key = certificate.public_key()
        except Exception:  # cryptography raises ValueError, UnsupportedAlgorithm, ...
            raise BadRequest(f"{path}: not a valid X.509 certificate") from None
    elif label == b"PUBLIC KEY":
        try:
            key = serialization.load_pem_public_key(block)
        except Exception:
            raise BadRequest(f"{path}: not a valid PEM public key") from None
    else:
        raise BadRequest(
            f"{path}: unsupported PEM type {_show(label.decode('ascii'))}; "
            "expected CERTIFICATE or PUBLIC KEY"
        )

    supported = check_key_type(key, path)
    if certificate is None:
        canonical = _spki_pem(supported)
        identities: tuple[str, ...] = ()
    else:
        # cryptography keeps the DER it parsed, so this is the submitted
        # certificate byte for byte, re-wrapped as standard PEM.
        canonical = certificate.public_bytes(serialization.Encoding.PEM)
        identities = tuple(identity.certificate_search_keys(certificate, path))
    return Verifier(
        key=supported, canonical_pem=canonical, certificate=certificate, identities=identities
    )


def check_key_type(key: object, path: str) -> SupportedKey:
    """Return ``key`` if the log accepts its type, else raise BadRequest."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASH:
            raise BadRequest(
                f"{path}: unsupported key type: ECDSA on curve {key.curve.name}; "
                f"supported: {SUPPORTED_KEYS}"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise BadRequest(
                f"{path}: unsupported key type: RSA-{key.key_size} "
                f"(RSA keys must have {MIN_RSA_BITS}-{MAX_RSA_BITS} bits)"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise BadRequest(
        f"{path}: unsupported key type: {_key_type_name(key)}; supported: {SUPPORTED_KEYS}"
    )


def verify_prehashed(verifier: Verifier, signature: bytes, digest: bytes, algorithm: str) -> bool:
    """Check a hashedrekord signature over an artifact *digest*.

    ECDSA (DER) and RSA PKCS#1 v1.5 sign the digest as a prehashed value of
    ``algorithm``. Ed25519 has no prehashed mode in cryptography, so the digest
    bytes are verified as the message (pure Ed25519 over the digest).
    ``digest`` must already have the algorithm's length.
    """
    hash_cls = DIGESTS[algorithm][0]
    key = verifier.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hash_cls())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hash_cls()))
        else:
            key.verify(signature, digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_message(verifier: Verifier, signature: bytes, message: bytes) -> bool:
    """Check a signature over a whole message (the DSSE PAE).

    ECDSA uses the curve's registry hash (SHA-256/384/512 for P-256/384/521);
    for P-384 and P-521 SHA-256 is also accepted, because Rekor's Go verifier
    (``signature.LoadVerifier(key, crypto.SHA256)``) hashes with SHA-256
    whatever the curve. RSA is PKCS#1 v1.5 with SHA-256, Ed25519 is pure.
    """
    key = verifier.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            curve_hash = _CURVE_HASH[key.curve.name]
            try:
                key.verify(signature, message, ec.ECDSA(curve_hash()))
            except InvalidSignature:
                if curve_hash is hashes.SHA256:
                    raise
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def canonical_pem_any(data: bytes, path: str) -> bytes:
    """Canonical PEM of a PEM or DER certificate or SubjectPublicKeyInfo.

    Used by the search API; applies no key-type policy.
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise BadRequest(f"{path}: expected a certificate or public key")
    data = bytes(data)
    if b"-----BEGIN" in data:
        label, block = _single_pem_block(data, path)
        try:
            if label == b"CERTIFICATE":
                certificate = x509.load_pem_x509_certificate(block)
                return certificate.public_bytes(serialization.Encoding.PEM)
            if label == b"PUBLIC KEY":
                return _spki_pem(serialization.load_pem_public_key(block))
        except Exception:
            raise BadRequest(f"{path}: not a valid PEM certificate or public key") from None
        raise BadRequest(f"{path}: unsupported PEM type; expected CERTIFICATE or PUBLIC KEY")
    try:
        return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)
    except Exception:
        pass
    try:
        return _spki_pem(serialization.load_der_public_key(data))
    except Exception:
        raise BadRequest(f"{path}: not a valid certificate or public key") from None


def _spki_pem(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _single_pem_block(data: bytes, path: str) -> tuple[bytes, bytes]:
    """Return (label, block) for data holding exactly one PEM block.

    Only surrounding whitespace is tolerated: a chain or trailing junk is
    rejected rather than silently truncated to its first block.
    """
    if data.count(b"-----BEGIN ") != 1 or data.count(b"-----END ") != 1:
        raise BadRequest(f"{path}: expected exactly one PEM block (a certificate or a public key)")
    block = data.strip()
    match = _PEM_RE.fullmatch(block)
    if match is None:
        raise BadRequest(f"{path}: not a valid PEM block")
    return match.group(1), block


def _key_type_name(key: object) -> str:
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519"
    if isinstance(key, x448.X448PublicKey):
        return "X448"
    return type(key).__name__
