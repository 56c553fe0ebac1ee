"""RFC 6962 signed certificate timestamps for embedded precertificate entries.

The CA is its own CT log: every leaf carries exactly one SCT, signed by the CT
log key over the leaf's TBSCertificate without the SCT-list extension. This is
what sigstore clients check at signing and verification time
(``sigstore/_internal/sct.py::verify_sct``).

Wire formats (RFC 6962 §3.2 and §3.3, TLS presentation language):

``SignedCertificateTimestamp``::

    sct_version      1 byte   v1 = 0
    log_id          32 bytes  SHA-256 of the CT key's DER SubjectPublicKeyInfo
    timestamp        8 bytes  milliseconds since the epoch, big-endian
    extensions       2-byte length + bytes (always empty here)
    hash_algorithm   1 byte   sha256 = 4
    sig_algorithm    1 byte   ecdsa = 3
    signature        2-byte length + DER ECDSA signature

The signature covers (``digitally-signed`` input, precert_entry)::

    sct_version 0x00 | signature_type 0x00 (certificate_timestamp) | timestamp u64
    | entry_type 0x0001 (precert_entry) | issuer_key_hash[32] | u24 len | TBS
    | u16 extensions length (0x0000)

``SignedCertificateTimestampList`` is ``u16 total length`` followed by each SCT
as ``u16 length | SCT``; the x509 extension's extnValue is a DER OCTET STRING
wrapping that list.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tlog.keys import log_id_of

#: OID of the embedded SCT-list extension (RFC 6962 §3.3).
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"

SCT_VERSION_V1 = 0
SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP = 0
ENTRY_TYPE_PRECERT = 1
HASH_SHA256 = 4
SIGNATURE_ECDSA = 3

_MAX_U16 = 0xFFFF
_MAX_U24 = 0xFFFFFF
_MAX_U64 = 0xFFFF_FFFF_FFFF_FFFF


def precert_signature_input(*, timestamp_ms: int, issuer_key_hash: bytes, tbs_precert: bytes) -> bytes:
    """The RFC 6962 ``digitally-signed`` input for a precert_entry SCT (no SCT extensions).

    Raises ``ValueError`` if a field does not fit its wire width.
    """
    if len(issuer_key_hash) != 32:
        raise ValueError(f"issuer key hash must be 32 bytes, got {len(issuer_key_hash)}")
    if not 0 <= timestamp_ms <= _MAX_U64:
        raise ValueError(f"SCT timestamp {timestamp_ms} does not fit in 64 bits")
    if not 0 < len(tbs_precert) <= _MAX_U24:
        raise ValueError(f"TBSCertificate length {len(tbs_precert)} does not fit in 24 bits")
    return b"".join(
        (
            struct.pack(
                ">BBQH", SCT_VERSION_V1, SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP, timestamp_ms, ENTRY_TYPE_PRECERT
            ),
            issuer_key_hash,
            len(tbs_precert).to_bytes(3, "big"),
            tbs_precert,
            b"\x00\x00",  # CtExtensions: empty
        )
    )


def _require_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    # The trusted root labels the CT key PKIX_ECDSA_P256_SHA_256 and sigstore
    # verifies with the hash the label names, so only P-256/SHA-256 interoperates.
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise ValueError("the CT log key must be an ECDSA P-256 key")


class SCTSigner:
    """Signs precert SCTs with one CT key for one issuing CA.

    What does not vary between certificates (the log ID, the issuer key hash,
    the key checks) is computed once here rather than per SCT.
    """

    def __init__(self, ct_key: ec.EllipticCurvePrivateKey, issuer_spki_der: bytes) -> None:
        _require_p256(ct_key)
        self._key = ct_key
        self._log_id = log_id_of(ct_key.public_key())
        self._issuer_key_hash = hashlib.sha256(issuer_spki_der).digest()
        self._ecdsa = ec.ECDSA(hashes.SHA256())

    def sign(self, tbs_precert: bytes, timestamp_ms: int) -> bytes:
        """The TLS-encoded ``SignedCertificateTimestamp`` over ``tbs_precert`` at ``timestamp_ms``."""
        signed = precert_signature_input(
            timestamp_ms=timestamp_ms, issuer_key_hash=self._issuer_key_hash, tbs_precert=tbs_precert
        )
        signature = self._key.sign(signed, self._ecdsa)
        return b"".join(
            (
                bytes([SCT_VERSION_V1]),
                self._log_id,
                struct.pack(">QH", timestamp_ms, 0),  # timestamp, empty extensions
                struct.pack(">BBH", HASH_SHA256, SIGNATURE_ECDSA, len(signature)),
                signature,
            )
        )


def sign_precert_sct(
    ct_key: ec.EllipticCurvePrivateKey, issuer_spki_der: bytes, tbs_precert: bytes, timestamp_ms: int
) -> bytes:
    """Sign an SCT for a precertificate entry; returns the TLS-encoded ``SignedCertificateTimestamp``.

    ``issuer_spki_der`` is the DER SubjectPublicKeyInfo of the CA that signs the
    final certificate; ``tbs_precert`` is that certificate's TBSCertificate
    without the SCT-list extension (``Certificate.tbs_precertificate_bytes``).
    One-off form of :class:`SCTSigner`.
    """
    return SCTSigner(ct_key, issuer_spki_der).sign(tbs_precert, timestamp_ms)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def sct_list_extension_value(scts: list[bytes]) -> bytes:
    """The extnValue contents of the SCT-list extension: DER OCTET STRING of the TLS list.

    Pass the result to ``x509.UnrecognizedExtension(ObjectIdentifier(SCT_LIST_OID), value)``:
    cryptography writes an ``UnrecognizedExtension`` value verbatim inside the
    extension's own OCTET STRING, so the inner OCTET STRING must be here.
    (``x509.PrecertificateSignedCertificateTimestamps`` cannot be built from
    bytes, only parsed.)
    """
    if not scts:
        raise ValueError("an SCT list must hold at least one SCT")
    serialized = b""
    for sct in scts:
        if not 0 < len(sct) <= _MAX_U16:
            raise ValueError(f"SCT length {len(sct)} does not fit in 16 bits")
        serialized += struct.pack(">H", len(sct)) + sct
    if len(serialized) > _MAX_U16:
        raise ValueError(f"SCT list length {len(serialized)} does not fit in 16 bits")
    tls_list = struct.pack(">H", len(serialized)) + serialized
    return b"\x04" + _der_length(len(tls_list)) + tls_list


@dataclass(frozen=True)
class ParsedSCT:
    """The fields of a v1 ``SignedCertificateTimestamp``."""

    version: int
    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    hash_algorithm: int
    signature_algorithm: int
    signature: bytes


def parse_sct(data: bytes) -> ParsedSCT:
    """Parse a TLS-encoded v1 SCT; ``ValueError`` if it is truncated, has trailing bytes or is not v1."""
    if len(data) < 1 + 32 + 8 + 2:
        raise ValueError("SCT is truncated")
    version = data[0]
    if version != SCT_VERSION_V1:
        raise ValueError(f"unsupported SCT version {version}")
    log_id = data[1:33]
    (timestamp_ms, ext_len) = struct.unpack_from(">QH", data, 33)
    pos = 43
    extensions = data[pos : pos + ext_len]
    pos += ext_len
    if len(extensions) != ext_len or len(data) < pos + 4:
        raise ValueError("SCT is truncated")
    hash_algorithm, signature_algorithm, sig_len = struct.unpack_from(">BBH", data, pos)
    pos += 4
    signature = data[pos : pos + sig_len]
    if len(signature) != sig_len:
        raise ValueError("SCT signature is truncated")
    if pos + sig_len != len(data):
        raise ValueError("trailing bytes after the SCT")
    return ParsedSCT(version, log_id, timestamp_ms, extensions, hash_algorithm, signature_algorithm, signature)


def verify_precert_sct(
    ct_public_key: ec.EllipticCurvePublicKey, sct: bytes, *, issuer_spki_der: bytes, tbs_precert: bytes
) -> ParsedSCT:
    """Check a precert SCT made by :func:`sign_precert_sct`; returns it parsed.

    Raises ``ValueError`` for a malformed SCT, a different log ID or algorithm,
    and ``cryptography.exceptions.InvalidSignature`` for a bad signature.
    """
    _require_p256(ct_public_key)
    parsed = parse_sct(sct)
    if parsed.log_id != log_id_of(ct_public_key):
        raise ValueError("SCT log ID does not match the CT key")
    if (parsed.hash_algorithm, parsed.signature_algorithm) != (HASH_SHA256, SIGNATURE_ECDSA):
        raise ValueError(
            f"SCT algorithms ({parsed.hash_algorithm}, {parsed.signature_algorithm}) are not (sha256, ecdsa)"
        )
    if parsed.extensions:
        raise ValueError("SCT extensions are not supported")
    signed = precert_signature_input(
        timestamp_ms=parsed.timestamp_ms,
        issuer_key_hash=hashlib.sha256(issuer_spki_der).digest(),
        tbs_precert=tbs_precert,
    )
    ct_public_key.verify(parsed.signature, signed, ec.ECDSA(hashes.SHA256()))
    return parsed


def parse_sct_list_extension_value(value: bytes) -> list[bytes]:
    """Inverse of :func:`sct_list_extension_value`: the SCTs inside an extnValue."""
    if len(value) < 2 or value[0] != 0x04:
        raise ValueError("SCT list extension value is not a DER OCTET STRING")
    if value[1] < 0x80:
        header, length = 2, value[1]
    else:
        n = value[1] & 0x7F
        header, length = 2 + n, int.from_bytes(value[2 : 2 + n], "big")
    tls_list = value[header:]
    if len(tls_list) != length or length < 2:
        raise ValueError("SCT list extension value has a bad length")
    (total,) = struct.unpack_from(">H", tls_list)
    if total != len(tls_list) - 2:
        raise ValueError("SCT list length does not match its contents")
    scts: list[bytes] = []
    pos = 2
    while pos < len(tls_list):
        if pos + 2 > len(tls_list):
            raise ValueError("SCT list is truncated")
        (n,) = struct.unpack_from(">H", tls_list, pos)
        sct = tls_list[pos + 2 : pos + 2 + n]
        if len(sct) != n:
            raise ValueError("SCT list is truncated")
        scts.append(sct)
        pos += 2 + n
    return scts
