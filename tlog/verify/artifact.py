"""The artifact and its signature: the artifact's digest must be the one the
bundle signed, and the signature must verify with the certificate's key.

* message signatures (hashedrekord): an ECDSA (or RSA) signature over the
  artifact digest, i.e. prehashed;
* DSSE envelopes: a signature over PAE(payloadType, payload), and an in-toto
  statement whose subject digest is the artifact's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from tlog.verify.bundle import Bundle
from tlog.verify.signatures import signature_ok

__all__ = ["Artifact", "ArtifactError", "check_dsse_artifact", "check_dsse_signature", "check_message_artifact", "check_message_signature", "parse_digest"]

#: Bundle HashAlgorithm names -> hashlib names.
BUNDLE_HASHES = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}
_HASH_CLASSES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_DIGEST_RE = re.compile(r"(sha256|sha384|sha512):([0-9a-fA-F]+)")
IN_TOTO = "application/vnd.in-toto+json"


class ArtifactError(ValueError):
    """The artifact does not match, or a signature does not verify."""


def parse_digest(text: str) -> tuple[str, bytes]:
    """``sha256:<hex>`` (or sha384/sha512) to ``(algorithm, digest bytes)``."""
    match = _DIGEST_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"digest {text!r} is not <sha256|sha384|sha512>:<hex>")
    algorithm, value = match.group(1), bytes.fromhex(match.group(2))
    if len(value) != hashlib.new(algorithm).digest_size:
        raise ValueError(f"a {algorithm} digest is {hashlib.new(algorithm).digest_size} bytes, not {len(value)}")
    return algorithm, value


@dataclass(frozen=True)
class Artifact:
    """What is being verified: a file, or only its digest (``--digest``)."""

    path: Path | None = None
    digest: tuple[str, bytes] | None = None

    def digest_with(self, algorithm: str) -> bytes:
        if self.path is not None:
            h = hashlib.new(algorithm)
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return h.digest()
        assert self.digest is not None
        if self.digest[0] != algorithm:
            raise ArtifactError(f"the bundle uses {algorithm}, but --digest gives {self.digest[0]}")
        return self.digest[1]

    def describe(self) -> str:
        return str(self.path) if self.path is not None else "the given digest"


def check_message_artifact(bundle: Bundle, artifact: Artifact) -> tuple[str, tuple[str, bytes]]:
    """Compare the artifact's digest with the bundle's ``messageDigest``.

    Returns the description and ``(algorithm, digest)`` the signature covers:
    the bundle's recorded digest, now known to be the artifact's.
    """
    message = bundle.message_signature
    assert message is not None
    if message.digest is None:
        digest = artifact.digest_with("sha256")
        return f"sha256:{digest.hex()} (the bundle records no digest)", ("sha256", digest)
    algorithm = BUNDLE_HASHES.get(message.digest_algorithm or "")
    if algorithm is None:
        raise ArtifactError(f"unsupported messageDigest algorithm {message.digest_algorithm!r}")
    actual = artifact.digest_with(algorithm)
    if actual != message.digest:
        raise ArtifactError(
            f"{artifact.describe()} has digest {algorithm}:{actual.hex()}, the bundle signed {algorithm}:{message.digest.hex()}"
        )
    return f"{algorithm}:{actual.hex()} is the digest the bundle signed", (algorithm, message.digest)


def check_message_signature(bundle: Bundle, digest: tuple[str, bytes]) -> None:
    assert bundle.message_signature is not None
    algorithm, value = digest
    key = bundle.certificate.public_key()
    if not signature_ok(key, bundle.message_signature.signature, value, _HASH_CLASSES[algorithm](), prehashed=True):
        raise ArtifactError(f"the signature over {algorithm}:{value.hex()[:16]}… does not verify with the certificate's key")


def check_dsse_signature(bundle: Bundle) -> None:
    envelope = bundle.dsse
    assert envelope is not None
    if len(envelope.signatures) != 1:
        raise ArtifactError(f"expected one DSSE signature, found {len(envelope.signatures)}")
    if not signature_ok(bundle.certificate.public_key(), envelope.signature, envelope.pae()):
        raise ArtifactError("the DSSE signature over PAE(payloadType, payload) does not verify with the certificate's key")


def check_dsse_artifact(bundle: Bundle, artifact: Artifact) -> str:
    """The envelope's in-toto statement must name the artifact's digest."""
    envelope = bundle.dsse
    assert envelope is not None
    if envelope.payload_type != IN_TOTO:
        raise ArtifactError(f"payload type {envelope.payload_type!r} is not an in-toto statement")
    try:
        statement = json.loads(envelope.payload)
    except ValueError as exc:
        raise ArtifactError("the DSSE payload is not JSON") from exc
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list) or not subjects:
        raise ArtifactError("the in-toto statement has no subjects")
    algorithm = artifact.digest[0] if artifact.path is None and artifact.digest else "sha256"
    digest = artifact.digest_with(algorithm).hex()
    for subject in subjects:
        if (
            isinstance(subject, dict)
            and isinstance(subject.get("digest"), dict)
            and str(subject["digest"].get(algorithm, "")).lower() == digest
        ):
            return f"is in-toto subject {subject.get('name', '?')!r} ({algorithm}:{digest})"
    raise ArtifactError(f"no in-toto subject has {algorithm}:{digest}")
