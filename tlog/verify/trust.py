"""The trust material a verifier starts from: a Sigstore TrustedRoot, given
bare or inside a ClientTrustConfig (``sigstore --trust-config`` format).

Only what verification needs is read: the transparency logs' and CT logs'
keys (``tlogs``/``ctlogs``), the certificate authorities' chains and the
timestamp authorities' chains, each with its validity window. Unknown fields
are ignored, so trusted roots from newer clients still load.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tlog.verify.bundle import b64

__all__ = [
    "CertificateAuthority",
    "LogInstance",
    "TrustConfigError",
    "TrustRoot",
    "hash_for_key_details",
    "load_trust_root",
    "parse_trust_root",
]

CLIENT_TRUST_CONFIG_PREFIX = "application/vnd.dev.sigstore.clienttrustconfig"
TRUSTED_ROOT_PREFIX = "application/vnd.dev.sigstore.trustedroot"

#: keyDetails -> the hash a signature with that key uses (None: pure Ed25519).
_KEY_DETAILS_HASH: dict[str, type[hashes.HashAlgorithm] | None] = {
    "PKIX_ECDSA_P256_SHA_256": hashes.SHA256,
    "PKIX_ECDSA_P384_SHA_384": hashes.SHA384,
    "PKIX_ECDSA_P521_SHA_512": hashes.SHA512,
    "PKIX_RSA_PKCS1V15_2048_SHA256": hashes.SHA256,
    "PKIX_RSA_PKCS1V15_3072_SHA256": hashes.SHA256,
    "PKIX_RSA_PKCS1V15_4096_SHA256": hashes.SHA256,
    "PKCS1_RSA_PKCS1V5": hashes.SHA256,
    "PKIX_RSA_PKCS1V5": hashes.SHA256,
    "PKIX_ED25519": None,
}

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class TrustConfigError(ValueError):
    """The trust config cannot be read or does not hold what is needed."""


def hash_for_key_details(key_details: str) -> hashes.HashAlgorithm | None:
    """The signature hash that ``keyDetails`` names; ``TrustConfigError`` if unknown."""
    if key_details not in _KEY_DETAILS_HASH:
        raise TrustConfigError(f"unsupported keyDetails {key_details!r}")
    algorithm = _KEY_DETAILS_HASH[key_details]
    return algorithm() if algorithm else None


def parse_time(value: str) -> datetime.datetime:
    """RFC 3339 with a zone (``Z`` or an offset), to an aware UTC datetime."""
    if not isinstance(value, str):
        raise TrustConfigError(f"timestamp {value!r} is not a string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise TrustConfigError(f"timestamp {value!r} is not RFC 3339") from exc
    if when.tzinfo is None:
        raise TrustConfigError(f"timestamp {value!r} has no time zone")
    return when.astimezone(datetime.UTC)


@dataclass(frozen=True)
class Validity:
    start: datetime.datetime | None
    end: datetime.datetime | None

    @classmethod
    def parse(cls, doc: Mapping[str, Any] | None) -> Validity:
        if not doc:
            return cls(None, None)
        start = parse_time(doc["start"]) if doc.get("start") else None
        end = parse_time(doc["end"]) if doc.get("end") else None
        return cls(start, end)

    def contains(self, when: datetime.datetime) -> bool:
        if self.start is not None and when < self.start:
            return False
        return not (self.end is not None and when > self.end)

    def describe(self) -> str:
        start = self.start.isoformat() if self.start else "-inf"
        end = self.end.isoformat() if self.end else "+inf"
        return f"[{start}, {end}]"


def _b64(value: Any, what: str) -> bytes:
    return b64(value, what, TrustConfigError)


@dataclass(frozen=True)
class LogInstance:
    """A transparency log or CT log: its key, key ID and validity."""

    base_url: str
    spki: bytes
    key_details: str
    log_id: bytes
    validity: Validity

    @property
    def public_key(self) -> PublicKey:
        key = serialization.load_der_public_key(self.spki)
        if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
            raise TrustConfigError(f"{self.base_url}: unsupported key type {type(key).__name__}")
        return key

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm | None:
        return hash_for_key_details(self.key_details)

    @property
    def spki_hash(self) -> bytes:
        return hashlib.sha256(self.spki).digest()

    @property
    def host(self) -> str:
        """The URL without scheme (``rekor.sigstore.dev``, ``ctfe.sigstore.dev/2022``)."""
        parsed = urlparse(self.base_url)
        return (parsed.netloc + parsed.path).rstrip("/") or self.base_url

    def matches(self, key_id: bytes) -> bool:
        """True if ``key_id`` names this log: its logId, or SHA-256 of its key."""
        return key_id in (self.log_id, self.spki_hash)

    @classmethod
    def parse(cls, doc: Mapping[str, Any], what: str) -> LogInstance:
        key = doc.get("publicKey") or {}
        spki = _b64(key.get("rawBytes"), f"{what} publicKey.rawBytes")
        details = key.get("keyDetails", "")
        hash_for_key_details(details)
        try:
            serialization.load_der_public_key(spki)
        except ValueError as exc:
            raise TrustConfigError(f"{what}: publicKey.rawBytes is not a DER SubjectPublicKeyInfo") from exc
        log_id_doc = doc.get("logId") or {}
        log_id = _b64(log_id_doc["keyId"], f"{what} logId.keyId") if log_id_doc.get("keyId") else hashlib.sha256(spki).digest()
        return cls(
            base_url=str(doc.get("baseUrl", "")),
            spki=spki,
            key_details=details,
            log_id=log_id,
            validity=Validity.parse(key.get("validFor")),
        )


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA (or TSA): its chain as listed (issuing certificate first) and validity."""

    name: str
    uri: str
    chain: tuple[x509.Certificate, ...]
    validity: Validity

    @classmethod
    def parse(cls, doc: Mapping[str, Any], what: str) -> CertificateAuthority:
        subject = doc.get("subject") or {}
        raw = ((doc.get("certChain") or {}).get("certificates")) or []
        if not raw:
            raise TrustConfigError(f"{what} has no certificates")
        chain = []
        for i, item in enumerate(raw):
            der = _b64(item.get("rawBytes"), f"{what} certificate {i}")
            try:
                chain.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise TrustConfigError(f"{what} certificate {i} is not a DER X.509 certificate") from exc
        return cls(
            name=str(subject.get("commonName") or subject.get("organization") or what),
            uri=str(doc.get("uri", "")),
            chain=tuple(chain),
            validity=Validity.parse(doc.get("validFor")),
        )


@dataclass(frozen=True)
class TrustRoot:
    tlogs: tuple[LogInstance, ...]
    ctlogs: tuple[LogInstance, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]
    #: log keys left out because their keyDetails is not supported
    ignored: tuple[str, ...] = ()

    def tlog(self, key_id: bytes) -> LogInstance | None:
        """The transparency log a bundle's ``logId.keyId`` names, if trusted."""
        for log in self.tlogs:
            if log.log_id == key_id:
                return log
        for log in self.tlogs:
            if log.spki_hash == key_id:
                return log
        return None

    def ctlog(self, key_id: bytes) -> LogInstance | None:
        for log in self.ctlogs:
            if log.matches(key_id):
                return log
        return None


def parse_trust_root(doc: Any) -> TrustRoot:
    """Read a ClientTrustConfig or a bare TrustedRoot (already JSON-decoded)."""
    if not isinstance(doc, dict):
        raise TrustConfigError("trust config is not a JSON object")
    media_type = str(doc.get("mediaType", ""))
    if "trustedRoot" in doc or media_type.startswith(CLIENT_TRUST_CONFIG_PREFIX):
        root = doc.get("trustedRoot")
        if not isinstance(root, dict):
            raise TrustConfigError("ClientTrustConfig has no trustedRoot object")
        doc = root
        media_type = str(doc.get("mediaType", ""))
    if media_type and not media_type.startswith(TRUSTED_ROOT_PREFIX):
        raise TrustConfigError(f"unknown trust config media type {media_type!r}")
    if not any(k in doc for k in ("tlogs", "certificateAuthorities", "ctlogs")):
        raise TrustConfigError("not a TrustedRoot: no tlogs, certificateAuthorities or ctlogs")
    ignored: list[str] = []

    def logs(field: str) -> tuple[LogInstance, ...]:
        out = []
        for i, item in enumerate(doc.get(field) or []):
            details = ((item or {}).get("publicKey") or {}).get("keyDetails", "")
            if details not in _KEY_DETAILS_HASH:
                # As sigstore clients do: a key of an unknown or deprecated
                # type is left out, not an error for the whole trust root.
                ignored.append(f"{field}[{i}] ({details or 'no keyDetails'})")
                continue
            out.append(LogInstance.parse(item, f"{field}[{i}]"))
        return tuple(out)

    try:
        return TrustRoot(
            tlogs=logs("tlogs"),
            ctlogs=logs("ctlogs"),
            certificate_authorities=tuple(
                CertificateAuthority.parse(d, f"certificateAuthorities[{i}]")
                for i, d in enumerate(doc.get("certificateAuthorities") or [])
            ),
            timestamp_authorities=tuple(
                CertificateAuthority.parse(d, f"timestampAuthorities[{i}]")
                for i, d in enumerate(doc.get("timestampAuthorities") or [])
            ),
            ignored=tuple(ignored),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise TrustConfigError(f"malformed trusted root: {exc}") from exc


def load_trust_root(path: Path) -> TrustRoot:
    try:
        doc = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise TrustConfigError(f"cannot read trust config {path}: {exc}") from exc
    return parse_trust_root(doc)
