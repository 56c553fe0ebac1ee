"""RFC 3161 timestamps: the real staging one, and responses built here from
scratch (a tiny DER writer and a test TSA), cross-checked with rfc3161-client."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from verify_testlib import REKOR_V2, STAGING_ROOT

from tlog.verify import der, load_trust_root
from tlog.verify.timestamp import TimestampError, verify_timestamp
from tlog.verify.trust import CertificateAuthority, Validity

UTC = datetime.UTC
GEN_TIME = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
MESSAGE = b"the artifact signature"


# --- a minimal DER writer ----------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))


def integer(n: int) -> bytes:
    raw = n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True)
    return tlv(0x02, raw)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = [40 * arcs[0] + arcs[1], *arcs[2:]]
    out = b""
    for arc in body:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(chunk)
    return tlv(0x06, out)


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def gentime(when: datetime.datetime) -> bytes:
    return tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


SHA256 = "2.16.840.1.101.3.4.2.1"
TST_INFO = "1.2.840.113549.1.9.16.1.4"


# --- a test TSA ------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa(*, rsa_key: bool = False, eku_critical: bool = True) -> tuple[object, x509.Certificate, x509.Certificate]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    start, end = datetime.datetime(2025, 1, 1, tzinfo=UTC), datetime.datetime(2026, 1, 1, tzinfo=UTC)
    root = (
        x509.CertificateBuilder().subject_name(_name("test tsa root")).issuer_name(_name("test tsa root"))
        .public_key(root_key.public_key()).serial_number(1).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    key = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP384R1())
    leaf = (
        x509.CertificateBuilder().subject_name(_name("test tsa")).issuer_name(root.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    return key, leaf, root


def authority(leaf: x509.Certificate, root: x509.Certificate, **validity: datetime.datetime) -> CertificateAuthority:
    return CertificateAuthority("test tsa", "", (leaf, root), Validity(validity.get("start"), validity.get("end")))


def make_response(
    key: object,
    cert: x509.Certificate,
    *,
    message: bytes = MESSAGE,
    when: datetime.datetime = GEN_TIME,
    status: int = 0,
    by_key_id: bool = False,
    embed: bool = True,
    bad_digest_attr: bool = False,
) -> bytes:
    tst = seq(integer(1), oid("1.3.6.1.4.1.57264.2"), seq(seq(oid(SHA256)), octets(hashlib.sha256(message).digest())), integer(42), gentime(when))
    digest = b"\x00" * 32 if bad_digest_attr else hashlib.sha256(tst).digest()
    attrs = [
        seq(oid("1.2.840.113549.1.9.3"), set_(oid(TST_INFO))),
        seq(oid("1.2.840.113549.1.9.4"), set_(octets(digest))),
    ]
    attrs_set = set_(*attrs)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(attrs_set, padding.PKCS1v15(), hashes.SHA256())
        sig_alg = "1.2.840.113549.1.1.11"
    else:
        signature = key.sign(attrs_set, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        sig_alg = "1.2.840.10045.4.3.2"
    if by_key_id:
        sid = tlv(0x80, cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    else:
        sid = seq(cert.issuer.public_bytes(), integer(cert.serial_number))
    signer_info = seq(
        integer(3 if by_key_id else 1), sid, seq(oid(SHA256)), tlv(0xA0, attrs_set[2:] if attrs_set[1] < 0x80 else der.parse(attrs_set).value),
        seq(oid(sig_alg)), octets(signature),
    )  # fmt: skip
    certs = tlv(0xA0, cert.public_bytes(serialization.Encoding.DER)) if embed else b""
    signed_data = seq(integer(3), set_(seq(oid(SHA256))), seq(oid(TST_INFO), tlv(0xA0, octets(tst))), certs, set_(signer_info))
    token = seq(oid("1.2.840.113549.1.7.2"), tlv(0xA0, signed_data))
    return seq(seq(integer(status)), token) if status in (0, 1) else seq(seq(integer(status)))


@pytest.fixture(scope="module")
def tsa():  # type: ignore[no-untyped-def]
    return make_tsa()


def _rfc3161_client_accepts(response: bytes, leaf: x509.Certificate, root: x509.Certificate, message: bytes) -> bool:
    from rfc3161_client import VerifierBuilder, decode_timestamp_response
    from rfc3161_client.errors import VerificationError

    verifier = VerifierBuilder().tsa_certificate(leaf).add_root_certificate(root).build()
    try:
        return bool(verifier.verify_message(decode_timestamp_response(response), message))
    except (VerificationError, ValueError):
        return False


def test_generated_response_verifies_here_and_in_rfc3161_client(tsa) -> None:  # type: ignore[no-untyped-def]
    key, leaf, root = tsa
    response = make_response(key, leaf)
    result = verify_timestamp(response, MESSAGE, [authority(leaf, root)])
    assert result.time == GEN_TIME and result.serial == 42
    assert _rfc3161_client_accepts(response, leaf, root, MESSAGE)


def test_rsa_tsa_and_key_id_signer_without_embedded_certs() -> None:
    key, leaf, root = make_tsa(rsa_key=True)
    response = make_response(key, leaf, by_key_id=True, embed=False)
    assert verify_timestamp(response, MESSAGE, [authority(leaf, root)]).time == GEN_TIME


def test_granted_with_mods_is_accepted(tsa) -> None:  # type: ignore[no-untyped-def]
    key, leaf, root = tsa
    assert verify_timestamp(make_response(key, leaf, status=1), MESSAGE, [authority(leaf, root)])


@pytest.mark.parametrize(
    ("kwargs", "message", "error"),
    [
        ({}, b"another signature", "message imprint"),
        ({"status": 2}, MESSAGE, "did not grant"),
        ({"bad_digest_attr": True}, MESSAGE, "messageDigest"),
        ({"when": datetime.datetime(2026, 6, 1, tzinfo=UTC)}, MESSAGE, "does not chain"),
    ],
)
def test_rejected_responses(tsa, kwargs, message, error) -> None:  # type: ignore[no-untyped-def]
    key, leaf, root = tsa
    response = make_response(key, leaf, **kwargs)
    with pytest.raises(TimestampError, match=error):
        verify_timestamp(response, message, [authority(leaf, root)])
    assert not _rfc3161_client_accepts(response, leaf, root, message)


def test_signed_by_another_key(tsa) -> None:  # type: ignore[no-untyped-def]
    _, leaf, root = tsa
    response = make_response(ec.generate_private_key(ec.SECP384R1()), leaf)
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_timestamp(response, MESSAGE, [authority(leaf, root)])


def test_untrusted_tsa(tsa) -> None:  # type: ignore[no-untyped-def]
    key, leaf, _ = tsa
    _, other_leaf, other_root = make_tsa()
    with pytest.raises(TimestampError, match="another certificate"):
        verify_timestamp(make_response(key, leaf), MESSAGE, [authority(other_leaf, other_root)])


def test_tsa_eku_must_be_critical() -> None:
    key, leaf, root = make_tsa(eku_critical=False)
    with pytest.raises(TimestampError, match="not critical"):
        verify_timestamp(make_response(key, leaf), MESSAGE, [authority(leaf, root)])


def test_gen_time_outside_the_authority_validity(tsa) -> None:  # type: ignore[no-untyped-def]
    key, leaf, root = tsa
    late = authority(leaf, root, start=datetime.datetime(2025, 7, 1, tzinfo=UTC))
    with pytest.raises(TimestampError, match="outside"):
        verify_timestamp(make_response(key, leaf), MESSAGE, [late])


def test_the_first_accepting_authority_wins(tsa) -> None:  # type: ignore[no-untyped-def]
    key, leaf, root = tsa
    _, other_leaf, other_root = make_tsa()
    assert verify_timestamp(make_response(key, leaf), MESSAGE, [authority(other_leaf, other_root), authority(leaf, root)])


def test_garbage_is_malformed() -> None:
    with pytest.raises(TimestampError, match="malformed"):
        verify_timestamp(b"\x30\x03\x02\x01", MESSAGE, [])


# --- the real staging timestamp ------------------------------------------------------------


def _real() -> tuple[bytes, bytes]:
    doc = json.loads(REKOR_V2.read_bytes())
    response = base64.b64decode(doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"])
    return response, base64.b64decode(doc["messageSignature"]["signature"])


def test_real_staging_timestamp() -> None:
    response, signature = _real()
    tsas = load_trust_root(STAGING_ROOT).timestamp_authorities
    result = verify_timestamp(response, signature, tsas)
    assert result.time == datetime.datetime(2025, 6, 9, 11, 57, 38, tzinfo=UTC)
    assert _rfc3161_client_accepts(response, tsas[0].chain[0], tsas[0].chain[-1], signature)


def test_every_single_byte_flip_of_the_real_timestamp_is_rejected_or_harmless() -> None:
    """Flipping any byte either breaks verification or leaves the verified
    time and signer unchanged (bytes outside what is signed, e.g. an unsigned
    embedded certificate's padding, cannot change the result)."""
    response, signature = _real()
    tsas = load_trust_root(STAGING_ROOT).timestamp_authorities
    good = verify_timestamp(response, signature, tsas)
    for i in range(len(response)):
        mutated = bytearray(response)
        mutated[i] ^= 0x01
        try:
            result = verify_timestamp(bytes(mutated), signature, tsas)
        except TimestampError:
            continue
        assert result == good, i
