"""Turn stored log data into plain values the explorer templates display.

Everything decoded here came from a submitter: bodies, certificates, SAN and
extension values are attacker-controlled. The functions return ``str``
values only (never markup); the templates autoescape them. Decoding never
raises for malformed input: what cannot be decoded is reported as text.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from tlog.ca import identity as fulcio
from tlog.ca.sct import SCT_LIST_OID
from tlog.note import (
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Note,
    NoteError,
    cosignature_timestamp,
    ecdsa_key_id,
    key_id_for,
)

#: Fulcio's certificate extensions (``1.3.6.1.4.1.57264.1.*``): OID -> (name, encoding).
#: ``raw`` values are the UTF-8 bytes themselves, ``der`` ones a DER UTF8String.
FULCIO_EXTENSIONS: dict[str, tuple[str, str]] = {
    fulcio.OID_ISSUER: ("Issuer (deprecated)", "raw"),
    fulcio.OID_GITHUB_WORKFLOW_TRIGGER: ("GitHub Workflow Trigger (deprecated)", "raw"),
    fulcio.OID_GITHUB_WORKFLOW_SHA: ("GitHub Workflow SHA (deprecated)", "raw"),
    fulcio.OID_GITHUB_WORKFLOW_NAME: ("GitHub Workflow Name (deprecated)", "raw"),
    fulcio.OID_GITHUB_WORKFLOW_REPOSITORY: ("GitHub Workflow Repository (deprecated)", "raw"),
    fulcio.OID_GITHUB_WORKFLOW_REF: ("GitHub Workflow Ref (deprecated)", "raw"),
    "1.3.6.1.4.1.57264.1.7": ("OtherName SAN", "der"),
    fulcio.OID_ISSUER_V2: ("Issuer (V2)", "der"),
    fulcio.OID_BUILD_SIGNER_URI: ("Build Signer URI", "der"),
    fulcio.OID_BUILD_SIGNER_DIGEST: ("Build Signer Digest", "der"),
    fulcio.OID_RUNNER_ENVIRONMENT: ("Runner Environment", "der"),
    fulcio.OID_SOURCE_REPOSITORY_URI: ("Source Repository URI", "der"),
    fulcio.OID_SOURCE_REPOSITORY_DIGEST: ("Source Repository Digest", "der"),
    fulcio.OID_SOURCE_REPOSITORY_REF: ("Source Repository Ref", "der"),
    fulcio.OID_SOURCE_REPOSITORY_IDENTIFIER: ("Source Repository Identifier", "der"),
    fulcio.OID_SOURCE_REPOSITORY_OWNER_URI: ("Source Repository Owner URI", "der"),
    fulcio.OID_SOURCE_REPOSITORY_OWNER_IDENTIFIER: ("Source Repository Owner Identifier", "der"),
    fulcio.OID_BUILD_CONFIG_URI: ("Build Config URI", "der"),
    fulcio.OID_BUILD_CONFIG_DIGEST: ("Build Config Digest", "der"),
    fulcio.OID_BUILD_TRIGGER: ("Build Trigger", "der"),
    fulcio.OID_RUN_INVOCATION_URI: ("Run Invocation URI", "der"),
    fulcio.OID_SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING: ("Source Repository Visibility At Signing", "der"),
    fulcio.OID_DEPLOYMENT_ENVIRONMENT: ("Deployment Environment", "der"),
    fulcio.OID_TOKEN_SUBJECT: ("Token Subject", "der"),
}

_STANDARD_EXTENSIONS = {
    ExtensionOID.KEY_USAGE.dotted_string: "Key Usage",
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string: "Extended Key Usage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string: "Subject Key Identifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string: "Authority Key Identifier",
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string: "Subject Alternative Name",
    ExtensionOID.BASIC_CONSTRAINTS.dotted_string: "Basic Constraints",
    SCT_LIST_OID: "CT Precertificate SCTs",
}

_EKU_NAMES = {
    "1.3.6.1.5.5.7.3.3": "codeSigning",
    "1.3.6.1.5.5.7.3.1": "serverAuth",
    "1.3.6.1.5.5.7.3.2": "clientAuth",
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.8": "timeStamping",
}

#: Longest text shown for one decoded value; the rest is cut with a note.
MAX_VALUE_CHARS = 4096


# --- small helpers ---------------------------------------------------------------------


def utc(seconds: float | None) -> str:
    """``2024-05-01 12:34:56 UTC`` for POSIX seconds; '' for None or nonsense."""
    if seconds is None:
        return ""
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str) -> str:
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"… ({len(text) - MAX_VALUE_CHARS} more characters)"
    return text


def _printable(raw: bytes) -> str:
    """UTF-8 text, with undecodable bytes and control characters made visible."""
    text = raw.decode("utf-8", "backslashreplace")
    return _clip("".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text))


der_utf8string_value = fulcio.der_utf8string_value


def fingerprint(data: bytes) -> str:
    """``SHA256:<hex>`` of ``data``."""
    return "SHA256:" + hashlib.sha256(data).hexdigest()


# --- keys and certificates -------------------------------------------------------------


@dataclass
class KeyInfo:
    type: str
    fingerprint: str  # of the DER SubjectPublicKeyInfo
    pem: str


@dataclass
class ExtensionInfo:
    oid: str
    name: str
    critical: bool
    value: str
    fulcio: bool = False


@dataclass
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    emails: list[str]
    uris: list[str]
    other_sans: list[str]
    signature_algorithm: str
    fingerprint: str  # of the DER certificate
    key: KeyInfo
    extensions: list[ExtensionInfo]
    oidc_issuer: str | None
    pem: str
    problems: list[str] = field(default_factory=list)

    @property
    def identities(self) -> list[str]:
        return [*self.emails, *self.uris, *self.other_sans]


@dataclass
class SignerInfo:
    """One verifier of an entry: a certificate (with its key) or a bare public key."""

    certificate: CertificateInfo | None
    key: KeyInfo | None
    problem: str | None = None

    @property
    def identity(self) -> str:
        if self.certificate is not None:
            names = self.certificate.identities
            return ", ".join(names) if names else "(certificate without SAN)"
        if self.key is not None:
            return f"{self.key.type} key {self.key.fingerprint[:23]}…"
        return "(undecodable verifier)"


def key_type(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        curves = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {curves.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size} bits"
    return type(key).__name__


def describe_key(key: Any) -> KeyInfo:
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return KeyInfo(type=key_type(key), fingerprint=fingerprint(spki), pem=pem)


def _name_text(name: x509.Name) -> str:
    try:
        text = name.rfc4514_string()
    except Exception:  # noqa: BLE001 - malformed attribute values
        return "(undecodable name)"
    return _printable(text.encode()) if text else "(empty)"


def _extension_value(ext: x509.Extension[Any]) -> str:
    value = ext.value
    if isinstance(value, x509.KeyUsage):
        flags = []
        for attr in (
            "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign",
        ):  # fmt: skip
            if getattr(value, attr):
                flags.append(attr)
        if value.key_agreement:
            flags += [a for a in ("encipher_only", "decipher_only") if getattr(value, a)]
        return ", ".join(flags) or "(none)"
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(_EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in value)
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest.hex(":")
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier.hex(":") if value.key_identifier else "(no key identifier)"
    if isinstance(value, x509.BasicConstraints):
        return f"CA: {value.ca}" + (f", path length {value.path_length}" if value.path_length is not None else "")
    if isinstance(value, x509.SubjectAlternativeName):
        return ", ".join(_general_name(n) for n in value)
    if isinstance(value, x509.PrecertificateSignedCertificateTimestamps):
        scts = [f"log {s.log_id.hex()[:16]}… at {s.timestamp:%Y-%m-%d %H:%M:%S} UTC" for s in value]
        return f"{len(scts)} SCT(s): " + "; ".join(scts)
    if isinstance(value, x509.UnrecognizedExtension):
        return _hex_dump(value.value)
    return _clip(str(value))


def _hex_dump(raw: bytes) -> str:
    return _clip(raw.hex(":")) if raw else "(empty)"


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.RFC822Name):
        return "email:" + _printable(name.value.encode())
    if isinstance(name, x509.UniformResourceIdentifier):
        return "URI:" + _printable(name.value.encode())
    if isinstance(name, x509.DNSName):
        return "DNS:" + _printable(name.value.encode())
    if isinstance(name, x509.OtherName):
        decoded = _decode_other_name(name.value)
        return f"otherName {name.type_id.dotted_string}: " + (decoded if decoded is not None else _hex_dump(name.value))
    return _clip(str(name))


def _decode_other_name(raw: bytes) -> str | None:
    # Fulcio's username SAN: otherName [0] EXPLICIT UTF8String; cryptography hands us the [0] wrapper.
    if len(raw) >= 2 and raw[0] == 0xA0:
        inner = raw[2:] if raw[1] < 0x80 else raw[2 + (raw[1] & 0x7F) :]
        text = der_utf8string_value(inner)
        return None if text is None else _printable(text.encode())
    return None


def describe_extension(ext: x509.Extension[Any]) -> ExtensionInfo:
    oid = ext.oid.dotted_string
    if oid in FULCIO_EXTENSIONS:
        name, encoding = FULCIO_EXTENSIONS[oid]
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
        if encoding == "raw":
            value = _printable(raw)
        else:
            text = der_utf8string_value(raw)
            value = _printable(text.encode()) if text is not None else "(not a DER UTF8String) " + _hex_dump(raw)
        return ExtensionInfo(oid, name, ext.critical, value, fulcio=True)
    try:
        value = _extension_value(ext)
    except Exception as exc:  # noqa: BLE001 - a malformed extension is shown, not fatal
        value = f"(cannot decode: {type(exc).__name__})"
    name = _STANDARD_EXTENSIONS.get(oid) or getattr(ext.oid, "_name", None) or "Unknown extension"
    if name == "Unknown OID":
        name = "Unknown extension"
    return ExtensionInfo(oid, name, ext.critical, value)


def describe_certificate(cert: x509.Certificate) -> CertificateInfo:
    problems: list[str] = []
    emails: list[str] = []
    uris: list[str] = []
    others: list[str] = []
    extensions: list[ExtensionInfo] = []
    oidc_issuer = None
    try:
        exts = list(cert.extensions)
    except Exception as exc:  # noqa: BLE001 - duplicate or unparsable extensions
        exts = []
        problems.append(f"the certificate's extensions cannot be parsed ({type(exc).__name__})")
    for ext in exts:
        info = describe_extension(ext)
        extensions.append(info)
        if isinstance(ext.value, x509.SubjectAlternativeName):
            for name in ext.value:
                if isinstance(name, x509.RFC822Name):
                    emails.append(_printable(name.value.encode()))
                elif isinstance(name, x509.UniformResourceIdentifier):
                    uris.append(_printable(name.value.encode()))
                else:
                    others.append(_general_name(name))
        if info.oid == fulcio.OID_ISSUER_V2 or (info.oid == fulcio.OID_ISSUER and oidc_issuer is None):
            oidc_issuer = info.value
    try:
        algorithm = cert.signature_algorithm_oid._name
    except Exception:  # noqa: BLE001
        algorithm = "(unknown)"
    try:
        key = describe_key(cert.public_key())
    except Exception as exc:  # noqa: BLE001 - an unsupported key type
        key = KeyInfo(type=f"(unsupported key: {type(exc).__name__})", fingerprint="", pem="")
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateInfo(
        subject=_name_text(cert.subject),
        issuer=_name_text(cert.issuer),
        serial=f"{cert.serial_number:x}",
        not_before=utc(cert.not_valid_before_utc.timestamp()),
        not_after=utc(cert.not_valid_after_utc.timestamp()),
        emails=emails,
        uris=uris,
        other_sans=others,
        signature_algorithm=algorithm,
        fingerprint=fingerprint(der),
        key=key,
        extensions=extensions,
        oidc_issuer=oidc_issuer,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        problems=problems,
    )


def describe_verifier(pem_b64: object) -> SignerInfo:
    """A verifier as stored in a body: base64 of a PEM certificate or public key."""
    if not isinstance(pem_b64, str):
        return SignerInfo(None, None, "the verifier is not a base64 string")
    try:
        pem = base64.b64decode(pem_b64, validate=True)
    except (binascii.Error, ValueError):
        return SignerInfo(None, None, "the verifier is not valid base64")
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return SignerInfo(None, None, "the certificate cannot be parsed")
        info = describe_certificate(cert)
        return SignerInfo(info, info.key)
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return SignerInfo(None, None, "the public key cannot be parsed")
    return SignerInfo(None, describe_key(key))


# --- entries ---------------------------------------------------------------------------


@dataclass
class EntryInfo:
    kind: str
    api_version: str
    signers: list[SignerInfo]
    #: (label, "<alg>:<hex>") digests named by the body, each searchable.
    digests: list[tuple[str, str]]
    pretty_body: str
    problem: str | None = None

    @property
    def identity(self) -> str:
        names = [s.identity for s in self.signers]
        return "; ".join(dict.fromkeys(names)) if names else "—"


def describe_body(body: bytes, *, purpose: str) -> EntryInfo:
    """Decode one log entry body; ``purpose`` is the tree's ("entries" or "certificates")."""
    if purpose == "certificates":
        return _describe_certificate_body(body)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return EntryInfo("?", "?", [], [], _printable(body), "the body is not JSON")
    pretty = _clip_body(json.dumps(doc, indent=2, ensure_ascii=False))
    if not isinstance(doc, dict):
        return EntryInfo("?", "?", [], [], pretty, "the body is not a JSON object")
    kind, version, spec = doc.get("kind"), doc.get("apiVersion"), doc.get("spec")
    kind_s = kind if isinstance(kind, str) else "?"
    version_s = version if isinstance(version, str) else "?"
    if not isinstance(spec, dict):
        return EntryInfo(kind_s, version_s, [], [], pretty, "the body has no spec object")
    signers: list[SignerInfo] = []
    digests: list[tuple[str, str]] = []
    if kind == "hashedrekord":
        signature = spec.get("signature") if isinstance(spec.get("signature"), dict) else {}
        public_key = signature.get("publicKey") if isinstance(signature.get("publicKey"), dict) else {}
        signers.append(describe_verifier(public_key.get("content")))
        digests += _digest(spec.get("data", {}).get("hash") if isinstance(spec.get("data"), dict) else None, "Artifact")
    elif kind == "dsse":
        for sig in spec.get("signatures") or []:
            if isinstance(sig, dict):
                signers.append(describe_verifier(sig.get("verifier")))
        digests += _digest(spec.get("payloadHash"), "Payload")
        digests += _digest(spec.get("envelopeHash"), "Envelope")
    return EntryInfo(kind_s, version_s, signers, digests, pretty)


def _clip_body(text: str) -> str:
    limit = 256 * 1024
    return text if len(text) <= limit else text[:limit] + "\n… (cut)"


def _digest(obj: object, label: str) -> list[tuple[str, str]]:
    if not isinstance(obj, dict):
        return []
    alg, value = obj.get("algorithm"), obj.get("value")
    if not isinstance(alg, str) or not isinstance(value, str):
        return []
    return [(label, f"{_printable(alg.encode())}:{_printable(value.encode())}")]


def _describe_certificate_body(body: bytes) -> EntryInfo:
    try:
        cert = x509.load_der_x509_certificate(body)
    except ValueError:
        return EntryInfo("x509", "1", [], [], _hex_dump(body), "the body is not a DER certificate")
    info = describe_certificate(cert)
    digest = ("Certificate", "sha256:" + hashlib.sha256(body).hexdigest())
    return EntryInfo("x509", "1", [SignerInfo(info, info.key)], [digest], info.pem)


# --- checkpoints -----------------------------------------------------------------------


@dataclass
class SignatureLineInfo:
    line: str
    name: str
    key_id: str
    role: str  # "log", "witness" or "unknown"
    label: str
    timestamp: str = ""


@dataclass
class CheckpointInfo:
    note: str
    text: str
    origin: str
    size: str
    root_b64: str
    extensions: list[str]
    signatures: list[SignatureLineInfo]
    problem: str | None = None

    @property
    def witness_count(self) -> int:
        return sum(1 for s in self.signatures if s.role == "witness")


@dataclass(frozen=True)
class KnownKey:
    """A signer the explorer can name: the log's own keys and configured witnesses."""

    name: str
    key_id: bytes
    role: str
    label: str


def log_known_keys(origin: str, ecdsa_public: ec.EllipticCurvePublicKey, ed25519_public: ed25519.Ed25519PublicKey) -> list[KnownKey]:
    spki = ecdsa_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = ed25519_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [
        KnownKey(origin, ecdsa_key_id(spki), "log", "log signature (ECDSA P-256, Rekor v1)"),
        KnownKey(origin, key_id_for(origin, SIG_TYPE_ED25519, raw), "log", "log signature (Ed25519, C2SP)"),
    ]


def witness_known_keys(witnesses: Iterable[tuple[str, str, bytes]]) -> list[KnownKey]:
    """``(url, name, key ID)`` of configured witnesses."""
    return [KnownKey(name, key_id, "witness", f"witness cosignature ({url})") for url, name, key_id in witnesses]


def describe_checkpoint(note_text: str, known: list[KnownKey]) -> CheckpointInfo:
    """Split a signed checkpoint and label each signature line. Nothing is verified here."""
    try:
        note = Note.parse(note_text)
    except NoteError as exc:
        return CheckpointInfo(note_text, "", "", "", "", [], [], f"the checkpoint does not parse: {exc}")
    lines = note.text.split("\n")[:-1]
    origin, size, root = (lines + ["", "", ""])[:3]
    sigs = []
    for sig in note.signatures:
        line = sig.line().rstrip("\n")
        match = next((k for k in known if k.name == sig.name and k.key_id == sig.key_id), None)
        timestamp = ""
        if len(sig.signature) == 72:
            try:
                timestamp = utc(cosignature_timestamp(sig.signature))
            except NoteError:
                timestamp = ""
        if match is not None:
            role, label = match.role, match.label
        elif timestamp:
            role, label = "witness", "witness cosignature (cosignature/v1, timestamped Ed25519)"
        elif sig.name == origin:
            role, label = "unknown", "signature under the log's name by an unknown key"
        else:
            role, label = "witness", "signature by another key (not checked here)"
        sigs.append(SignatureLineInfo(line, sig.name, sig.key_id.hex(), role, label, timestamp))
    return CheckpointInfo(note_text, note.text, origin, size, root, lines[3:], sigs)


def cosignature_key_id(name: str, raw_public_key: bytes) -> bytes:
    return key_id_for(name, SIG_TYPE_COSIGNATURE_V1, raw_public_key)
