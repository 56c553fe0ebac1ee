"""RFC 6962 SCTs: the byte layout, written out again here from the RFC, and the x509 extension value."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.certificate_transparency import LogEntryType, SignatureAlgorithm, Version
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from tlog.ca.sct import (
    SCT_LIST_OID,
    parse_sct,
    parse_sct_list_extension_value,
    precert_signature_input,
    sct_list_extension_value,
    sign_precert_sct,
    verify_precert_sct,
)

CT_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER_KEY = ec.generate_private_key(ec.SECP384R1())


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


ISSUER_SPKI = spki(ISSUER_KEY.public_key())
TBS = bytes(range(256)) * 3


def rfc6962_signed_data(timestamp_ms: int, issuer_spki: bytes, tbs: bytes) -> bytes:
    """RFC 6962 §3.2 ``digitally-signed`` struct for a precert_entry, from the RFC text."""
    return (
        struct.pack("!B", 0)  # sct_version v1
        + struct.pack("!B", 0)  # signature_type certificate_timestamp
        + struct.pack("!Q", timestamp_ms)
        + struct.pack("!H", 1)  # entry_type precert_entry
        + hashlib.sha256(issuer_spki).digest()  # issuer_key_hash[32]
        + struct.pack("!I", len(tbs))[1:]  # opaque TBSCertificate<1..2^24-1>
        + tbs
        + struct.pack("!H", 0)  # CtExtensions, empty
    )


def split_sct(sct: bytes) -> dict[str, object]:
    """RFC 6962 §3.2 SignedCertificateTimestamp, parsed field by field with struct."""
    version, log_id, timestamp, ext_len = struct.unpack_from("!B32sQH", sct)
    off = 1 + 32 + 8 + 2
    extensions = sct[off : off + ext_len]
    off += ext_len
    hash_alg, sig_alg, sig_len = struct.unpack_from("!BBH", sct, off)
    off += 4
    signature = sct[off : off + sig_len]
    assert off + sig_len == len(sct), "no trailing bytes"
    return dict(
        version=version,
        log_id=log_id,
        timestamp=timestamp,
        extensions=extensions,
        hash_alg=hash_alg,
        sig_alg=sig_alg,
        signature=signature,
    )


class TestSignPrecertSCT:
    def test_layout_and_signature_from_the_rfc(self) -> None:
        ts = 1_700_000_000_123
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, ts)
        fields = split_sct(sct)
        assert fields["version"] == 0
        assert fields["log_id"] == hashlib.sha256(spki(CT_KEY.public_key())).digest()
        assert fields["timestamp"] == ts
        assert fields["extensions"] == b""
        assert fields["hash_alg"] == 4  # sha256
        assert fields["sig_alg"] == 3  # ecdsa
        CT_KEY.public_key().verify(
            fields["signature"],  # type: ignore[arg-type]
            rfc6962_signed_data(ts, ISSUER_SPKI, TBS),
            ec.ECDSA(hashes.SHA256()),
        )

    def test_signature_input_matches_the_rfc(self) -> None:
        issuer_key_hash = hashlib.sha256(ISSUER_SPKI).digest()
        got = precert_signature_input(timestamp_ms=42, issuer_key_hash=issuer_key_hash, tbs_precert=TBS)
        assert got == rfc6962_signed_data(42, ISSUER_SPKI, TBS)
        # The fixed prefix, spelled out: v1, certificate_timestamp, ts=42, precert_entry.
        assert got[:12] == bytes.fromhex("0000000000000000002a0001")
        assert got[12:44] == issuer_key_hash
        assert got[44:47] == len(TBS).to_bytes(3, "big")
        assert got[-2:] == b"\x00\x00"

    def test_verify_round_trip(self) -> None:
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 7)
        parsed = verify_precert_sct(CT_KEY.public_key(), sct, issuer_spki_der=ISSUER_SPKI, tbs_precert=TBS)
        assert parsed.timestamp_ms == 7 and parsed.version == 0

    def test_wrong_issuer_tbs_or_key_fails(self) -> None:
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 7)
        other_issuer = spki(ec.generate_private_key(ec.SECP384R1()).public_key())
        with pytest.raises(InvalidSignature):
            verify_precert_sct(CT_KEY.public_key(), sct, issuer_spki_der=other_issuer, tbs_precert=TBS)
        with pytest.raises(InvalidSignature):
            verify_precert_sct(CT_KEY.public_key(), sct, issuer_spki_der=ISSUER_SPKI, tbs_precert=TBS[:-1] + b"\x00")
        other_ct = ec.generate_private_key(ec.SECP256R1()).public_key()
        with pytest.raises(ValueError, match="log ID"):
            verify_precert_sct(other_ct, sct, issuer_spki_der=ISSUER_SPKI, tbs_precert=TBS)

    def test_tampered_timestamp_fails(self) -> None:
        sct = bytearray(sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 7))
        sct[40] ^= 1  # last byte of the timestamp
        with pytest.raises(InvalidSignature):
            verify_precert_sct(CT_KEY.public_key(), bytes(sct), issuer_spki_der=ISSUER_SPKI, tbs_precert=TBS)

    @pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1()])
    def test_ct_key_must_be_p256(self, curve: ec.EllipticCurve) -> None:
        with pytest.raises(ValueError, match="P-256"):
            sign_precert_sct(ec.generate_private_key(curve), ISSUER_SPKI, TBS, 1)

    def test_field_ranges(self) -> None:
        with pytest.raises(ValueError, match="64 bits"):
            sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 2**64)
        with pytest.raises(ValueError, match="64 bits"):
            sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, -1)
        with pytest.raises(ValueError, match="24 bits"):
            sign_precert_sct(CT_KEY, ISSUER_SPKI, b"\x00" * 2**24, 1)
        with pytest.raises(ValueError, match="24 bits"):
            sign_precert_sct(CT_KEY, ISSUER_SPKI, b"", 1)

    def test_parse_rejects_malformed(self) -> None:
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 7)
        with pytest.raises(ValueError, match="trailing"):
            parse_sct(sct + b"\x00")
        with pytest.raises(ValueError, match="truncated"):
            parse_sct(sct[:-1])
        with pytest.raises(ValueError, match="truncated"):
            parse_sct(sct[:20])
        with pytest.raises(ValueError, match="version"):
            parse_sct(b"\x01" + sct[1:])

    @settings(max_examples=25, deadline=None)
    @given(ts=st.integers(0, 2**64 - 1), tbs=st.binary(min_size=1, max_size=300))
    def test_round_trip_property(self, ts: int, tbs: bytes) -> None:
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, tbs, ts)
        assert split_sct(sct)["timestamp"] == ts
        CT_KEY.public_key().verify(
            split_sct(sct)["signature"],  # type: ignore[arg-type]
            rfc6962_signed_data(ts, ISSUER_SPKI, tbs),
            ec.ECDSA(hashes.SHA256()),
        )


class TestSCTListExtension:
    def test_exact_bytes_short_form(self) -> None:
        scts = [b"\xaa" * 5, b"\xbb" * 3]
        value = sct_list_extension_value(scts)
        tls_list = b"\x00\x0c" + b"\x00\x05" + b"\xaa" * 5 + b"\x00\x03" + b"\xbb" * 3
        assert value == b"\x04" + bytes([len(tls_list)]) + tls_list

    def test_exact_bytes_long_form(self) -> None:
        # One P-256 SCT is ~120 bytes (short-form DER length); two need the long form.
        one = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 1)
        two = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, 2)
        value = sct_list_extension_value([one, two])
        body = struct.pack("!H", len(one)) + one + struct.pack("!H", len(two)) + two
        tls_list = struct.pack("!H", len(body)) + body
        assert 127 < len(tls_list) < 256
        assert value == b"\x04\x81" + bytes([len(tls_list)]) + tls_list
        assert parse_sct_list_extension_value(value) == [one, two]
        single = sct_list_extension_value([one])
        assert single == b"\x04" + bytes([len(one) + 4]) + struct.pack("!HH", len(one) + 2, len(one)) + one

    def test_parse_inverse(self) -> None:
        scts = [b"\x01" * 300, b"\x02" * 2, b"\x03"]
        assert parse_sct_list_extension_value(sct_list_extension_value(scts)) == scts

    def test_empty_or_oversized_refused(self) -> None:
        with pytest.raises(ValueError):
            sct_list_extension_value([])
        with pytest.raises(ValueError):
            sct_list_extension_value([b""])
        with pytest.raises(ValueError):
            sct_list_extension_value([b"\x00" * 70_000])

    def test_cryptography_reads_it_as_an_sct_list(self) -> None:
        """The value goes into ``UnrecognizedExtension`` and parses back as RFC 6962 SCTs."""
        ts = 1_700_000_000_123
        sct = sign_precert_sct(CT_KEY, ISSUER_SPKI, TBS, ts)
        now = datetime(2025, 1, 1, tzinfo=timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(x509.Name([]))
            .public_key(CT_KEY.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + timedelta(minutes=1))
            .add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier(SCT_LIST_OID), sct_list_extension_value([sct])),
                critical=False,
            )
            .sign(ISSUER_KEY, hashes.SHA384())
        )
        ext = cert.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
        assert not ext.critical
        (parsed,) = list(ext.value)
        assert parsed.version == Version.v1
        assert parsed.entry_type == LogEntryType.PRE_CERTIFICATE
        assert parsed.log_id == hashlib.sha256(spki(CT_KEY.public_key())).digest()
        assert parsed.timestamp == datetime.fromtimestamp(ts / 1000, timezone.utc).replace(tzinfo=None)
        assert isinstance(parsed.signature_hash_algorithm, hashes.SHA256)
        assert parsed.signature_algorithm == SignatureAlgorithm.ECDSA
        assert parsed.signature == split_sct(sct)["signature"]
        assert parsed.extension_bytes == b""
        assert ext.value.public_bytes() == sct_list_extension_value([sct])
