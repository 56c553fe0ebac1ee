"""The signing certificate: its chain to a trusted CA at a verified time,
its embedded SCT, the Sigstore leaf profile, and the signer identity.

The chain is built with ``cryptography.x509.verification`` (WebPKI rules)
with the extended key usage left to :func:`check_leaf_profile`, as Fulcio
leaves carry codeSigning, not clientAuth. Every certificate of every CA that
is valid at the verified time is a trust anchor, so intermediates must be
listed in the trusted root (bundles carry only the leaf).
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from tlog.verify import der
from tlog.verify.signatures import signature_ok
from tlog.verify.trust import CertificateAuthority, LogInstance, TrustRoot

__all__ = [
    "CertificateError",
    "check_identity",
    "check_leaf_profile",
    "describe",
    "issuer_of",
    "san_values",
    "verify_chain",
    "verify_sct",
]

OIDC_ISSUER = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OTHERNAME_SAN = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


class CertificateError(ValueError):
    """The certificate fails a check."""


def describe(cert: x509.Certificate) -> str:
    """A short name: the subject CN, or else the organisation, or the serial."""
    for oid in (x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return f"serial {cert.serial_number:x}"


def _usable(ca: CertificateAuthority, when: datetime.datetime) -> bool:
    return ca.validity.contains(when)


def verify_chain(
    leaf: x509.Certificate, trust: TrustRoot, when: datetime.datetime
) -> list[x509.Certificate]:
    """The verified chain ``[leaf, issuer, ..., anchor]`` at ``when``.

    Raises :class:`CertificateError` if no path leads to a CA of the trusted
    root that is valid at ``when``, or the leaf is not valid then.
    """
    anchors: list[x509.Certificate] = []
    for ca in trust.certificate_authorities:
        if _usable(ca, when):
            anchors.extend(c for c in ca.chain if c not in anchors)
    if not anchors:
        raise CertificateError(f"no certificate authority of the trust config is valid at {when.isoformat()}")
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(leaf, []).chain)
    except (X509VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise CertificateError(f"no valid path to a trusted CA at {when.isoformat()}: {exc}") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bc.critical and bc.value.ca and ku.key_cert_sign


def issuer_of(chain: Sequence[x509.Certificate]) -> x509.Certificate:
    """The certificate that issued ``chain[0]``, skipping a CT pre-issuer."""
    if len(chain) < 2:
        raise CertificateError("the chain has no issuer")
    issuer = chain[1]
    try:
        eku = issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in eku and len(chain) > 2:
            issuer = chain[2]
    except x509.ExtensionNotFound:
        pass
    return issuer


@dataclass(frozen=True)
class VerifiedSCT:
    log: LogInstance
    timestamp: datetime.datetime


def verify_sct(cert: x509.Certificate, chain: Sequence[x509.Certificate], trust: TrustRoot) -> VerifiedSCT:
    """Check the one embedded precertificate SCT against the trusted CT logs."""
    try:
        scts = list(cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value)
    except x509.ExtensionNotFound as exc:
        raise CertificateError("the certificate has no embedded SCT") from exc
    if len(scts) != 1:
        raise CertificateError(f"expected one embedded SCT, found {len(scts)}")
    sct = scts[0]
    if sct.entry_type is not LogEntryType.PRE_CERTIFICATE:
        raise CertificateError("the embedded SCT is not for a precertificate")
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise CertificateError("the SCT is not signed over SHA-256")
    log = trust.ctlog(sct.log_id)
    if log is None:
        raise CertificateError(f"the SCT's CT log {sct.log_id.hex()[:16]}… is not in the trust config")
    issuer = issuer_of(chain)
    if not _is_ca(issuer):
        raise CertificateError(f"the issuer {describe(issuer)} is not a CA (critical basicConstraints CA, keyCertSign)")
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise CertificateError("the issuer key is neither ECDSA nor RSA")
    issuer_key_hash = hashlib.sha256(
        issuer_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = cert.tbs_precertificate_bytes
    timestamp = sct.timestamp.replace(tzinfo=datetime.UTC)
    millis = int(timestamp.timestamp() * 1000)
    signed = (
        struct.pack(">BBQH", sct.version.value, 0, millis, sct.entry_type.value)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(sct.extension_bytes))
        + sct.extension_bytes
    )
    if not signature_ok(log.public_key, sct.signature, signed, log.hash_algorithm):
        raise CertificateError(f"the SCT signature from {log.host} does not verify")
    return VerifiedSCT(log, timestamp)


def check_leaf_profile(cert: x509.Certificate) -> None:
    """X.509 v3, not a CA, KeyUsage digitalSignature, EKU codeSigning."""
    if cert.version is not x509.Version.v3:
        raise CertificateError("the certificate is not X.509 v3")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise CertificateError("the signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateError("the certificate has no key usage") from exc
    if not ku.digital_signature:
        raise CertificateError("the key usage lacks digitalSignature")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateError("the certificate has no extended key usage") from exc
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateError("the extended key usage lacks codeSigning")


def san_values(cert: x509.Certificate) -> list[str]:
    """Every identity the SAN names: emails, URIs and Sigstore otherNames."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
    values += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_SAN:
            try:
                values.append(der.parse(other.value).value.decode("utf-8"))
            except (der.DERError, UnicodeDecodeError):
                continue
    return values


def oidc_issuer(cert: x509.Certificate) -> tuple[str, str] | None:
    """``(issuer, oid)`` from extension ``.1.1`` (raw bytes), or else ``.1.8`` (DER UTF8String)."""
    try:
        raw = cert.extensions.get_extension_for_oid(OIDC_ISSUER).value
        return bytes(raw.value).decode("utf-8"), OIDC_ISSUER.dotted_string  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        pass
    except UnicodeDecodeError as exc:
        raise CertificateError("the OIDC issuer extension is not UTF-8") from exc
    try:
        raw = cert.extensions.get_extension_for_oid(OIDC_ISSUER_V2).value
    except x509.ExtensionNotFound:
        return None
    try:
        tlv = der.parse(bytes(raw.value))  # type: ignore[attr-defined]
        if tlv.tag != 0x0C:
            raise CertificateError("the OIDC issuer (v2) extension is not a UTF8String")
        return tlv.value.decode("utf-8"), OIDC_ISSUER_V2.dotted_string
    except (der.DERError, UnicodeDecodeError) as exc:
        raise CertificateError("the OIDC issuer (v2) extension is malformed") from exc


def check_identity(cert: x509.Certificate, identity: str, issuer: str) -> str:
    """Require the SAN to name ``identity`` and the OIDC issuer extension to
    equal ``issuer``, both exactly. Returns the OID the issuer came from."""
    found = oidc_issuer(cert)
    if found is None:
        raise CertificateError("the certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.1)")
    value, oid = found
    names = san_values(cert)
    problems = []
    if identity not in names:
        problems.append(f"the certificate is for {', '.join(names) or 'no identity'}, not {identity}")
    if value != issuer:
        problems.append(f"the OIDC issuer is {value}, not {issuer}")
    if problems:
        raise CertificateError("; ".join(problems))
    return oid
