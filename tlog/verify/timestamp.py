"""RFC 3161 signed timestamps, verified against a trusted root's timestamp
authorities without any CMS library: the response is walked with
:mod:`tlog.verify.der` and the signature checked with ``cryptography``.

What is checked (RFC 3161 §2.4.2, RFC 5652 §5.4 and §5.6):

* the response status is *granted* (0) or *grantedWithMods* (1);
* the token is CMS SignedData around an ``id-ct-TSTInfo`` with exactly one
  SignerInfo, whose signed attributes carry that content type and the
  digest of the TSTInfo;
* the signer identifier names the TSA certificate (``certChain[0]``), and a
  certificate embedded under that identifier is that very certificate;
* the signature over the DER SET OF signed attributes verifies with the TSA
  certificate's key;
* the message imprint is the hash of the timestamped bytes (SHA-256/384/512);
* the TSA certificate chains to the authority's last certificate at
  ``genTime``, with a critical extended key usage of exactly timeStamping;
* ``genTime`` lies inside the authority's ``validFor``.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from tlog.verify import der
from tlog.verify.signatures import signature_ok
from tlog.verify.trust import CertificateAuthority

__all__ = ["TimestampError", "VerifiedTimestamp", "verify_timestamp"]

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"

_DIGESTS = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
}
# Signature algorithm OIDs that fix their own hash.
_SIGNATURE_HASHES = {
    "1.2.840.10045.4.3.2": hashes.SHA256,  # ecdsa-with-SHA256
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
    "1.2.840.113549.1.1.11": hashes.SHA256,  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
# Signature algorithm OIDs that take the SignerInfo's digest algorithm.
_KEY_ONLY = {"1.2.840.10045.2.1", "1.2.840.113549.1.1.1", "1.3.101.112"}

MAX_TIMESTAMPS = 32


class TimestampError(ValueError):
    """A timestamp is malformed or does not verify."""


@dataclass(frozen=True)
class VerifiedTimestamp:
    time: datetime.datetime
    authority: str
    serial: int


@dataclass(frozen=True)
class _Token:
    status: int
    tst_info_der: bytes
    digest_oid: str
    signed_attrs_der: bytes
    attributes: dict[str, list[der.TLV]]
    signature_oid: str
    signature: bytes
    sid_issuer_serial: tuple[bytes, int] | None
    sid_key_id: bytes | None
    embedded: tuple[bytes, ...]
    imprint_oid: str
    imprint: bytes
    gen_time: datetime.datetime
    serial: int


def _algorithm_oid(tlv: der.TLV, what: str) -> str:
    children = tlv.expect(der.SEQUENCE, what).children()
    if not children:
        raise TimestampError(f"{what} is empty")
    return children[0].oid()


def _parse(response: bytes) -> _Token:
    resp = der.parse(response).expect(der.SEQUENCE, "TimeStampResp").children()
    if not resp:
        raise TimestampError("empty TimeStampResp")
    status = resp[0].expect(der.SEQUENCE, "PKIStatusInfo").children()[0].integer()
    if status not in (0, 1):
        raise TimestampError(f"the TSA did not grant the timestamp (status {status})")
    if len(resp) < 2:
        raise TimestampError("TimeStampResp has no timeStampToken")
    content_info = resp[1].expect(der.SEQUENCE, "ContentInfo").children()
    if content_info[0].oid() != _SIGNED_DATA:
        raise TimestampError("the token is not CMS SignedData")
    signed_data = content_info[1].expect(0xA0, "ContentInfo.content").children()[0]
    parts = signed_data.expect(der.SEQUENCE, "SignedData").children()
    # version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
    encap = parts[2].expect(der.SEQUENCE, "EncapsulatedContentInfo").children()
    if encap[0].oid() != _TST_INFO:
        raise TimestampError("the signed content is not a TSTInfo")
    if len(encap) < 2:
        raise TimestampError("the TSTInfo is missing (detached content)")
    tst_info_der = encap[1].expect(0xA0, "eContent").children()[0].octets()
    embedded: list[bytes] = []
    rest = parts[3:]
    if rest and rest[0].tag == 0xA0:
        embedded = [c.raw for c in rest[0].children() if c.tag == der.SEQUENCE]
        rest = rest[1:]
    if rest and rest[0].tag == 0xA1:
        rest = rest[1:]
    if len(rest) != 1:
        raise TimestampError("SignedData has no signerInfos")
    signer_infos = rest[0].expect(der.SET, "signerInfos").children()
    if len(signer_infos) != 1:
        raise TimestampError(f"expected exactly one SignerInfo, found {len(signer_infos)}")
    si = signer_infos[0].expect(der.SEQUENCE, "SignerInfo").children()
    sid = si[1]
    issuer_serial = key_id = None
    if sid.tag == der.SEQUENCE:
        issuer, serial = sid.children()
        issuer_serial = (issuer.raw, serial.integer())
    elif sid.tag == 0x80:
        key_id = sid.value
    else:
        raise TimestampError("unknown SignerIdentifier")
    digest_oid = _algorithm_oid(si[2], "SignerInfo.digestAlgorithm")
    if si[3].tag != 0xA0:
        raise TimestampError("the SignerInfo has no signed attributes")
    attributes: dict[str, list[der.TLV]] = {}
    for attr in si[3].children():
        oid_tlv, values = attr.expect(der.SEQUENCE, "Attribute").children()
        oid = oid_tlv.oid()
        if oid in attributes:
            raise TimestampError(f"signed attribute {oid} appears twice")
        attributes[oid] = values.expect(der.SET, "AttributeValues").children()
    signature_oid = _algorithm_oid(si[4], "SignerInfo.signatureAlgorithm")
    signature = si[5].octets()

    tst = der.parse(tst_info_der).expect(der.SEQUENCE, "TSTInfo").children()
    if tst[0].integer() != 1:
        raise TimestampError("TSTInfo version is not 1")
    imprint_alg, imprint = tst[2].expect(der.SEQUENCE, "MessageImprint").children()
    return _Token(
        status=status,
        tst_info_der=tst_info_der,
        digest_oid=digest_oid,
        # The signature covers the attributes as a DER SET OF: same bytes, SET tag.
        signed_attrs_der=bytes([der.SET]) + si[3].raw[1:],
        attributes=attributes,
        signature_oid=signature_oid,
        signature=signature,
        sid_issuer_serial=issuer_serial,
        sid_key_id=key_id,
        embedded=tuple(embedded),
        imprint_oid=_algorithm_oid(imprint_alg, "MessageImprint.hashAlgorithm"),
        imprint=imprint.octets(),
        gen_time=tst[4].generalized_time(),
        serial=tst[3].integer(),
    )


def _names_certificate(token: _Token, cert: x509.Certificate) -> bool:
    if token.sid_issuer_serial is not None:
        issuer_der, serial = token.sid_issuer_serial
        return serial == cert.serial_number and issuer_der == cert.issuer.public_bytes()
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return False
    return ski == token.sid_key_id


def _check_tsa_eku(cert: x509.Certificate) -> None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampError("the TSA certificate has no extended key usage") from exc
    if not ext.critical:
        raise TimestampError("the TSA certificate's extended key usage is not critical")
    if list(ext.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError("the TSA certificate's extended key usage is not exactly timeStamping")


def _verify_chain(authority: CertificateAuthority, when: datetime.datetime) -> None:
    leaf, *intermediates = authority.chain
    root = intermediates.pop() if intermediates else None
    if root is None:
        raise TimestampError(f"timestamp authority {authority.name} lists fewer than 2 certificates")
    _check_tsa_eku(leaf)
    ee_policy = ExtensionPolicy.permit_all()
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except (X509VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise TimestampError(f"the TSA certificate does not chain to {authority.name} at {when.isoformat()}: {exc}") from exc


def _verify_with(token: _Token, message: bytes, authority: CertificateAuthority) -> VerifiedTimestamp:
    tsa_cert = authority.chain[0]
    if not _names_certificate(token, tsa_cert):
        raise TimestampError(f"signed by another certificate than {authority.name}'s TSA certificate")
    for raw in token.embedded:
        try:
            embedded = x509.load_der_x509_certificate(raw)
        except (ValueError, x509.InvalidVersion):
            continue
        if _names_certificate(token, embedded) and embedded != tsa_cert:
            raise TimestampError("the embedded signing certificate is not the trusted TSA certificate")

    if token.digest_oid not in _DIGESTS:
        raise TimestampError(f"unsupported digest algorithm {token.digest_oid}")
    digest_name, digest_cls = _DIGESTS[token.digest_oid]
    content_type = token.attributes.get(_ATTR_CONTENT_TYPE)
    if not content_type or len(content_type) != 1 or content_type[0].oid() != _TST_INFO:
        raise TimestampError("the contentType signed attribute is not id-ct-TSTInfo")
    digest_attr = token.attributes.get(_ATTR_MESSAGE_DIGEST)
    if not digest_attr or len(digest_attr) != 1:
        raise TimestampError("the messageDigest signed attribute is missing")
    if digest_attr[0].octets() != hashlib.new(digest_name, token.tst_info_der).digest():
        raise TimestampError("the messageDigest signed attribute does not match the TSTInfo")

    if token.signature_oid in _SIGNATURE_HASHES:
        sig_hash = _SIGNATURE_HASHES[token.signature_oid]()
    elif token.signature_oid in _KEY_ONLY:
        sig_hash = digest_cls()
    else:
        raise TimestampError(f"unsupported signature algorithm {token.signature_oid}")
    if not signature_ok(tsa_cert.public_key(), token.signature, token.signed_attrs_der, sig_hash):
        raise TimestampError("the TSA's signature does not verify")

    if token.imprint_oid not in _DIGESTS:
        raise TimestampError(f"unsupported message imprint algorithm {token.imprint_oid}")
    imprint_name, _ = _DIGESTS[token.imprint_oid]
    if token.imprint != hashlib.new(imprint_name, message).digest():
        raise TimestampError("the message imprint is not the hash of the signature")

    _verify_chain(authority, token.gen_time)
    if not authority.validity.contains(token.gen_time):
        raise TimestampError(
            f"genTime {token.gen_time.isoformat()} is outside {authority.name}'s validity {authority.validity.describe()}"
        )
    return VerifiedTimestamp(time=token.gen_time, authority=authority.name, serial=token.serial)


def verify_timestamp(
    response: bytes, message: bytes, authorities: Sequence[CertificateAuthority]
) -> VerifiedTimestamp:
    """Verify a DER ``TimeStampResp`` over ``message`` (the bytes that were
    timestamped) with the first authority that accepts it.

    Raises :class:`TimestampError` with the reasons each authority gave.
    """
    try:
        token = _parse(response)
    except (der.DERError, IndexError, ValueError) as exc:
        raise TimestampError(f"malformed timestamp response: {exc}") from exc
    if not authorities:
        raise TimestampError("the trust config has no timestamp authorities")
    reasons = []
    for authority in authorities:
        try:
            return _verify_with(token, message, authority)
        except (TimestampError, der.DERError, ValueError) as exc:
            reasons.append(f"{authority.name}: {exc}")
    raise TimestampError("; ".join(reasons))
