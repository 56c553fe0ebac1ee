"""Sigstore bundles (``dev.sigstore.bundle.v1.Bundle``, protobuf JSON) read
into plain values: version, signing certificate, log entries, RFC 3161
timestamps and content (a message signature or a DSSE envelope).

Parsing checks shape only; nothing here is trusted until the steps in
:mod:`tlog.verify.sigstore` have verified it. Field names are accepted in the
protobuf JSON camelCase and in snake_case; 64-bit integers as JSON strings or
numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509

__all__ = [
    "MEDIA_TYPES",
    "Bundle",
    "BundleError",
    "DsseEnvelope",
    "InclusionProof",
    "LogEntry",
    "MessageSignature",
    "parse_bundle",
]

#: Every bundle media type spelling in use, and the format version it means.
MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


class BundleError(ValueError):
    """The bundle is not well formed."""


def _field(doc: dict[str, Any], name: str, default: Any = None) -> Any:
    """``doc[name]`` under its camelCase or snake_case spelling."""
    if name in doc:
        return doc[name]
    snake = _SNAKE.sub("_", name).lower()
    return doc.get(snake, default)


def _obj(doc: dict[str, Any], name: str, what: str, *, required: bool = True) -> dict[str, Any] | None:
    value = _field(doc, name)
    if value is None:
        if required:
            raise BundleError(f"{what}: {name} is missing")
        return None
    if not isinstance(value, dict):
        raise BundleError(f"{what}: {name} is not an object")
    return value


def b64(value: Any, what: str, error: type[Exception] = BundleError) -> bytes:
    """Standard base64 from a JSON document (bundle or trust config); ``error`` names the document's error class."""
    if not isinstance(value, str):
        raise error(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc


def u64(value: Any, what: str) -> int:
    """A protobuf uint64: a decimal string (canonical) or a JSON number."""
    if isinstance(value, bool):
        raise BundleError(f"{what} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise BundleError(f"{what} is not an unsigned integer")
    if not 0 <= number < 1 << 64:
        raise BundleError(f"{what} is out of range")
    return number


@dataclass(frozen=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class LogEntry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int | None
    signed_entry_timestamp: bytes | None
    inclusion_proof: InclusionProof | None
    body: bytes

    @property
    def kind_version(self) -> str:
        return f"{self.kind} {self.version}"


@dataclass(frozen=True)
class MessageSignature:
    digest_algorithm: str | None
    digest: bytes | None
    signature: bytes


@dataclass(frozen=True)
class DsseEnvelope:
    payload: bytes
    payload_type: str
    signatures: tuple[bytes, ...]

    @property
    def signature(self) -> bytes:
        return self.signatures[0]

    def pae(self) -> bytes:
        """DSSE v1 pre-authentication encoding of the payload."""
        kind = self.payload_type.encode()
        return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(self.payload), self.payload)


@dataclass(frozen=True)
class Bundle:
    media_type: str
    version: str
    certificate: x509.Certificate
    extra_certificates: tuple[x509.Certificate, ...]
    entries: tuple[LogEntry, ...]
    timestamps: tuple[bytes, ...]
    message_signature: MessageSignature | None
    dsse: DsseEnvelope | None

    @property
    def signature(self) -> bytes:
        """The signature bytes a TSA timestamped: the message or DSSE signature."""
        if self.dsse is not None:
            return self.dsse.signature
        assert self.message_signature is not None
        return self.message_signature.signature


def _certificate(raw: Any, what: str) -> x509.Certificate:
    if not isinstance(raw, dict):
        raise BundleError(f"{what} is not an object")
    der = b64(_field(raw, "rawBytes"), f"{what}.rawBytes")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise BundleError(f"{what} is not a DER X.509 certificate") from exc


def _inclusion_proof(doc: dict[str, Any] | None, what: str) -> InclusionProof | None:
    if doc is None:
        return None
    checkpoint_doc = _field(doc, "checkpoint")
    checkpoint = None
    if checkpoint_doc is not None:
        if not isinstance(checkpoint_doc, dict):
            raise BundleError(f"{what}.checkpoint is not an object")
        envelope = _field(checkpoint_doc, "envelope")
        if envelope is not None and not isinstance(envelope, str):
            raise BundleError(f"{what}.checkpoint.envelope is not a string")
        checkpoint = envelope or None
    hashes = _field(doc, "hashes") or []
    if not isinstance(hashes, list):
        raise BundleError(f"{what}.hashes is not a list")
    return InclusionProof(
        log_index=u64(_field(doc, "logIndex"), f"{what}.logIndex"),
        tree_size=u64(_field(doc, "treeSize"), f"{what}.treeSize"),
        root_hash=b64(_field(doc, "rootHash"), f"{what}.rootHash"),
        hashes=tuple(b64(h, f"{what}.hashes[{i}]") for i, h in enumerate(hashes)),
        checkpoint=checkpoint,
    )


def _log_entry(doc: Any, what: str) -> LogEntry:
    if not isinstance(doc, dict):
        raise BundleError(f"{what} is not an object")
    log_id = _obj(doc, "logId", what)
    kind_version = _obj(doc, "kindVersion", what)
    assert log_id is not None and kind_version is not None
    promise = _obj(doc, "inclusionPromise", what, required=False)
    integrated = _field(doc, "integratedTime")
    body = _field(doc, "canonicalizedBody")
    if body is None:
        raise BundleError(f"{what}: canonicalizedBody is missing")
    return LogEntry(
        log_index=u64(_field(doc, "logIndex"), f"{what}.logIndex"),
        log_id=b64(_field(log_id, "keyId"), f"{what}.logId.keyId"),
        kind=str(_field(kind_version, "kind", "")),
        version=str(_field(kind_version, "version", "")),
        integrated_time=u64(integrated, f"{what}.integratedTime") if integrated not in (None, "") else None,
        signed_entry_timestamp=(
            b64(_field(promise, "signedEntryTimestamp"), f"{what}.inclusionPromise.signedEntryTimestamp")
            if promise is not None
            else None
        ),
        inclusion_proof=_inclusion_proof(_obj(doc, "inclusionProof", what, required=False), f"{what}.inclusionProof"),
        body=b64(body, f"{what}.canonicalizedBody"),
    )


def parse_bundle(data: bytes | str) -> Bundle:
    """Parse a bundle's JSON. Raises :class:`BundleError` naming the problem."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BundleError("not a JSON object")
    media_type = _field(doc, "mediaType")
    if media_type not in MEDIA_TYPES:
        raise BundleError(f"unknown bundle media type {media_type!r}")
    version = MEDIA_TYPES[media_type]
    material = _obj(doc, "verificationMaterial", "bundle")
    assert material is not None

    extra: tuple[x509.Certificate, ...] = ()
    if version == "0.3":
        raw_cert = _field(material, "certificate")
        if raw_cert is None:
            if _field(material, "publicKey") is not None:
                raise BundleError("the bundle names a public key, not a certificate; only keyless (certificate) bundles are supported")
            raise BundleError("a v0.3 bundle needs verificationMaterial.certificate")
        certificate = _certificate(raw_cert, "verificationMaterial.certificate")
    else:
        chain = _obj(material, "x509CertificateChain", "verificationMaterial", required=False)
        if chain is None:
            if _field(material, "publicKey") is not None:
                raise BundleError("the bundle names a public key, not a certificate; only keyless (certificate) bundles are supported")
            raise BundleError(f"a v{version} bundle needs verificationMaterial.x509CertificateChain")
        certs = _field(chain, "certificates") or []
        if not isinstance(certs, list) or not certs:
            raise BundleError("verificationMaterial.x509CertificateChain has no certificates")
        parsed = [_certificate(c, f"x509CertificateChain.certificates[{i}]") for i, c in enumerate(certs)]
        certificate, extra = parsed[0], tuple(parsed[1:])

    raw_entries = _field(material, "tlogEntries") or []
    if not isinstance(raw_entries, list):
        raise BundleError("verificationMaterial.tlogEntries is not a list")
    entries = tuple(_log_entry(e, f"tlogEntries[{i}]") for i, e in enumerate(raw_entries))

    timestamps: list[bytes] = []
    tvd = _obj(material, "timestampVerificationData", "verificationMaterial", required=False)
    if tvd is not None:
        for i, item in enumerate(_field(tvd, "rfc3161Timestamps") or []):
            if not isinstance(item, dict):
                raise BundleError(f"rfc3161Timestamps[{i}] is not an object")
            timestamps.append(b64(_field(item, "signedTimestamp"), f"rfc3161Timestamps[{i}].signedTimestamp"))

    message = _obj(doc, "messageSignature", "bundle", required=False)
    envelope = _obj(doc, "dsseEnvelope", "bundle", required=False)
    if (message is None) == (envelope is None):
        raise BundleError("a bundle holds exactly one of messageSignature and dsseEnvelope")
    message_signature = dsse = None
    if message is not None:
        digest_doc = _obj(message, "messageDigest", "messageSignature", required=False)
        message_signature = MessageSignature(
            digest_algorithm=str(_field(digest_doc, "algorithm", "")) if digest_doc else None,
            digest=b64(_field(digest_doc, "digest"), "messageSignature.messageDigest.digest") if digest_doc else None,
            signature=b64(_field(message, "signature"), "messageSignature.signature"),
        )
    else:
        assert envelope is not None
        sigs = _field(envelope, "signatures") or []
        if not isinstance(sigs, list) or not sigs:
            raise BundleError("dsseEnvelope has no signatures")
        dsse = DsseEnvelope(
            payload=b64(_field(envelope, "payload"), "dsseEnvelope.payload"),
            payload_type=str(_field(envelope, "payloadType", "")),
            signatures=tuple(b64(_field(s, "sig"), f"dsseEnvelope.signatures[{i}].sig") for i, s in enumerate(sigs)),
        )
    return Bundle(
        media_type=media_type,
        version=version,
        certificate=certificate,
        extra_certificates=extra,
        entries=entries,
        timestamps=tuple(timestamps),
        message_signature=message_signature,
        dsse=dsse,
    )
