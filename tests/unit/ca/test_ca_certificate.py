"""Leaf issuance: Fulcio's profile field by field, the embedded SCT, and sigstore-python's own checks.

The SCT is checked three ways: by hand from RFC 6962 (struct + cryptography),
by ``sigstore._internal.sct.verify_sct`` with a CT key ring holding our key
(what ``sigstore sign`` and ``verify`` run), and the chain by
``cryptography.x509.verification`` configured as sigstore 4.5.1's
``Verifier._verify_chain_at_time`` configures it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.x509.certificate_transparency import LogEntryType, SignatureAlgorithm, Version
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import CTKeyring, Keyring
from sigstore._utils import cert_is_leaf
from sigstore.errors import VerificationError
from sigstore.verify.policy import Identity as SigstoreIdentityPolicy
from sigstore.verify.policy import OIDCIssuerV2
from sigstore_models.common.v1 import PublicKey

from tlog.ca.certificate import CertificateAuthority, IssuedCertificate, check_subject_public_key
from tlog.ca.pki import CAKeys
from tlog.errors import BadRequest, Internal

ISSUER = "https://token.actions.githubusercontent.com"
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def utf8string(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return b"\x0c" + bytes([len(raw)]) + raw


@dataclass(frozen=True)
class Identity:
    """Same shape as ``tlog.ca.identity.Identity`` (the CA takes it structurally)."""

    san_type: str
    san: str
    issuer: str
    extensions: tuple[tuple[str, bytes], ...]


def identity(
    san_type: str = "email", san: str = "alice@example.test", issuer: str = ISSUER, **extra: bytes
) -> Identity:
    exts = [("1.3.6.1.4.1.57264.1.1", issuer.encode()), ("1.3.6.1.4.1.57264.1.8", utf8string(issuer))]
    exts += [(oid.replace("_", "."), value) for oid, value in extra.items()]
    return Identity(san_type, san, issuer, tuple(exts))


WORKFLOW = "https://github.com/octo/repo/.github/workflows/release.yml@refs/tags/v1"
GITHUB_IDENTITY = Identity(
    "uri",
    WORKFLOW,
    ISSUER,
    (
        ("1.3.6.1.4.1.57264.1.1", ISSUER.encode()),
        ("1.3.6.1.4.1.57264.1.2", b"push"),
        ("1.3.6.1.4.1.57264.1.8", utf8string(ISSUER)),
        ("1.3.6.1.4.1.57264.1.9", utf8string(WORKFLOW)),
        ("1.3.6.1.4.1.57264.1.12", utf8string("https://github.com/octo/repo")),
        ("1.3.6.1.4.1.57264.1.14", utf8string("refs/tags/v1")),
    ),
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> CAKeys:
    return CAKeys.load_or_create(Path(tmp_path_factory.mktemp("ca")), organization="example.test")


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> FixedClock:
    return FixedClock(datetime.now(timezone.utc).replace(microsecond=654_321))


@pytest.fixture(scope="module")
def ca(keys: CAKeys, clock: FixedClock) -> CertificateAuthority:
    return CertificateAuthority(keys, clock=clock)


@pytest.fixture(scope="module")
def subject_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def issued(ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey) -> IssuedCertificate:
    return ca.issue(subject_key.public_key(), identity())


def ct_keyring(*public_keys: ec.EllipticCurvePublicKey) -> CTKeyring:
    return CTKeyring(
        Keyring(
            [
                # As the trusted root's JSON has it: base64 SPKI, P-256 labelled SHA-256.
                PublicKey.model_validate_json(
                    json.dumps(
                        {
                            "rawBytes": base64.b64encode(
                                k.public_bytes(
                                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                                )
                            ).decode(),
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        }
                    )
                )
                for k in public_keys
            ]
        )
    )


def sigstore_chain_verifier(trusted: list[x509.Certificate], at: datetime):  # type: ignore[no-untyped-def]
    """sigstore 4.5.1 ``Verifier._verify_chain_at_time``: WebPKI policies with the EKU check relaxed."""
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    return (
        PolicyBuilder()
        .store(Store(trusted))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )


class TestLeafProfile:
    def test_version_subject_issuer(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        leaf = issued.certificate
        assert leaf.version == x509.Version.v3
        assert len(leaf.subject) == 0
        assert leaf.subject.public_bytes() == b"\x30\x00"  # empty RDNSequence
        assert leaf.issuer == keys.intermediate_cert.subject

    def test_serial_random_positive_160_bits(
        self, ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        serials = [ca.issue(subject_key.public_key(), identity()).certificate.serial_number for _ in range(20)]
        assert len(set(serials)) == 20
        assert all(0 < s < 2**159 for s in serials)  # fits the 20-octet limit, always positive
        assert max(s.bit_length() for s in serials) > 150

    def test_validity_exactly_ten_minutes_from_now_truncated(
        self, issued: IssuedCertificate, clock: FixedClock
    ) -> None:
        leaf = issued.certificate
        assert leaf.not_valid_before_utc == clock.now.replace(microsecond=0)
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)

    def test_extension_order_and_criticality(self, issued: IssuedCertificate) -> None:
        got = [(ext.oid.dotted_string, ext.critical) for ext in issued.certificate.extensions]
        assert got == [
            (ExtensionOID.KEY_USAGE.dotted_string, True),
            (ExtensionOID.EXTENDED_KEY_USAGE.dotted_string, False),
            (ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string, False),
            (ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string, False),
            (ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string, True),
            ("1.3.6.1.4.1.57264.1.1", False),
            ("1.3.6.1.4.1.57264.1.8", False),
            (SCT_OID.dotted_string, False),
        ]

    def test_key_usage_digital_signature_only(self, issued: IssuedCertificate) -> None:
        ku = issued.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature
        assert not any(
            (
                ku.content_commitment,
                ku.key_encipherment,
                ku.data_encipherment,
                ku.key_agreement,
                ku.key_cert_sign,
                ku.crl_sign,
            )
        )

    def test_eku_code_signing(self, issued: IssuedCertificate) -> None:
        eku = issued.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]

    def test_ski_and_aki(
        self, issued: IssuedCertificate, keys: CAKeys, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        exts = issued.certificate.extensions
        ski = exts.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key())
        aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        inter_ski = keys.intermediate_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == inter_ski.digest
        assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None

    def test_email_san(self, issued: IssuedCertificate) -> None:
        san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert list(san) == [x509.RFC822Name("alice@example.test")]

    def test_uri_san_and_github_extensions(
        self, ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        leaf = ca.issue(subject_key.public_key(), GITHUB_IDENTITY).certificate
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(WORKFLOW)]
        fulcio = [
            (e.oid.dotted_string, e.critical, e.value.value) for e in leaf.extensions if "57264" in e.oid.dotted_string
        ]
        assert fulcio == [(oid, False, value) for oid, value in GITHUB_IDENTITY.extensions]

    def test_identity_extension_bytes_exact(self, issued: IssuedCertificate) -> None:
        exts = issued.certificate.extensions
        v1 = exts.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"))
        v2 = exts.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"))
        assert v1.value.value == ISSUER.encode()  # raw, not DER-wrapped
        assert v2.value.value == b"\x0c" + bytes([len(ISSUER)]) + ISSUER.encode()  # DER UTF8String
        # And in the DER itself: extnValue OCTET STRING directly around the raw issuer bytes.
        der = issued.certificate.public_bytes(serialization.Encoding.DER)
        assert b"\x04" + bytes([len(ISSUER)]) + ISSUER.encode() in der

    def test_signed_by_intermediate_with_sha384(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        leaf = issued.certificate
        assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        leaf.verify_directly_issued_by(keys.intermediate_cert)

    def test_public_key_is_the_requested_one(
        self, issued: IssuedCertificate, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        assert issued.certificate.public_key() == subject_key.public_key()

    def test_sigstore_leaf_and_identity_policies(self, issued: IssuedCertificate) -> None:
        assert cert_is_leaf(issued.certificate)
        SigstoreIdentityPolicy(identity="alice@example.test", issuer=ISSUER).verify(issued.certificate)
        OIDCIssuerV2(ISSUER).verify(issued.certificate)
        with pytest.raises(VerificationError):
            SigstoreIdentityPolicy(identity="alice@example.test", issuer="https://other.example").verify(
                issued.certificate
            )

    def test_validity_parameter(self, keys: CAKeys, clock: FixedClock, subject_key: ec.EllipticCurvePrivateKey) -> None:
        leaf = (
            CertificateAuthority(keys, validity=timedelta(minutes=3), clock=clock)
            .issue(subject_key.public_key(), identity())
            .certificate
        )
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=3)
        with pytest.raises(ValueError):
            CertificateAuthority(keys, validity=timedelta(0))


class TestEmbeddedSCT:
    def test_exactly_one_sct_v1_precert_sha256(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        ext = issued.certificate.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
        assert not ext.critical
        (sct,) = list(ext.value)
        assert sct.version == Version.v1
        assert sct.entry_type == LogEntryType.PRE_CERTIFICATE
        assert isinstance(sct.signature_hash_algorithm, hashes.SHA256)
        assert sct.signature_algorithm == SignatureAlgorithm.ECDSA
        assert sct.log_id == hashlib.sha256(keys.ct_public_key_der).digest()
        assert sct.extension_bytes == b""

    def test_raw_sct_bytes(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        """Take the SCT straight out of the extension's DER and read it by the RFC."""
        ext = issued.certificate.extensions.get_extension_for_oid(SCT_OID)
        extn_value = ext.value.public_bytes()
        assert extn_value[0] == 0x04  # OCTET STRING around the TLS list
        tls_list = extn_value[2:] if extn_value[1] < 0x80 else extn_value[2 + (extn_value[1] & 0x7F) :]
        (list_len, sct_len) = struct.unpack_from("!HH", tls_list)
        assert list_len == len(tls_list) - 2 and sct_len == list_len - 2  # exactly one SCT
        sct = tls_list[4:]
        assert sct == issued.sct
        version, log_id, timestamp, ext_len, hash_alg, sig_alg = struct.unpack_from("!B32sQHBB", sct)
        assert (version, ext_len, hash_alg, sig_alg) == (0, 0, 4, 3)
        assert log_id == keys.ct_log_id
        assert timestamp == issued.sct_timestamp_ms

    def test_sct_signature_by_the_rfc(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        """RFC 6962 §3.2 digitally-signed input, rebuilt here with struct only."""
        leaf = issued.certificate
        (sct,) = list(leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value)
        intermediate_spki = keys.intermediate_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        tbs = leaf.tbs_precertificate_bytes
        timestamp_ms = round(sct.timestamp.replace(tzinfo=timezone.utc).timestamp() * 1000)
        assert timestamp_ms == issued.sct_timestamp_ms
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)
            + hashlib.sha256(intermediate_spki).digest()
            + struct.pack("!I", len(tbs))[1:]
            + tbs
            + struct.pack("!H", 0)
        )
        keys.ct_key.public_key().verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))

    def test_precert_tbs_is_the_leaf_tbs_without_the_sct(self, issued: IssuedCertificate) -> None:
        leaf = issued.certificate
        ext = leaf.extensions.get_extension_for_oid(SCT_OID)
        encoded_ext = ext.value.public_bytes()
        # Removing the SCT extension shrinks the TBS by its encoding and nothing else.
        assert len(leaf.tbs_certificate_bytes) > len(leaf.tbs_precertificate_bytes) + len(encoded_ext)
        assert encoded_ext not in leaf.tbs_precertificate_bytes

    def test_sct_timestamp_not_before_not_before(self, issued: IssuedCertificate, clock: FixedClock) -> None:
        not_before_ms = int(issued.certificate.not_valid_before_utc.timestamp()) * 1000
        assert not_before_ms <= issued.sct_timestamp_ms < not_before_ms + 1000
        assert issued.sct_timestamp_ms == int(clock.now.timestamp() * 1000)

    def test_sigstore_verify_sct_accepts_it(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        # At sign time the chain is the Fulcio response minus the leaf.
        verify_sct(issued.certificate, list(issued.chain[1:]), ct_keyring(keys.ct_key.public_key()))
        # A wrong key-id hint is fine: the key ring then tries every key.
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        verify_sct(issued.certificate, list(issued.chain[1:]), ct_keyring(other, keys.ct_key.public_key()))

    def test_sigstore_verify_sct_rejects_wrong_issuer_or_key(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        with pytest.raises(VerificationError, match="invalid signature"):
            verify_sct(issued.certificate, [keys.root_cert], ct_keyring(keys.ct_key.public_key()))
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        with pytest.raises(VerificationError, match="invalid signature"):
            verify_sct(issued.certificate, list(issued.chain[1:]), ct_keyring(other))


class TestChain:
    def test_chain_and_pem(self, issued: IssuedCertificate, ca: CertificateAuthority, keys: CAKeys) -> None:
        assert issued.chain == (issued.certificate, keys.intermediate_cert, keys.root_cert)
        assert len(issued.chain_pem) == 3
        for pem, cert in zip(issued.chain_pem, issued.chain, strict=True):
            assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
            assert x509.load_pem_x509_certificate(pem.encode()) == cert
        assert issued.pem == issued.chain_pem[0]
        assert list(issued.chain_pem[1:]) == ca.chain_pem
        assert ca.chain_der() == [
            c.public_bytes(serialization.Encoding.DER) for c in (keys.intermediate_cert, keys.root_cert)
        ]

    def test_verifies_with_sigstore_trust_bundle(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        """sigstore puts every trusted-root certificate in the Store; bundles carry only the leaf."""
        at = issued.certificate.not_valid_before_utc + timedelta(minutes=1)
        verified = sigstore_chain_verifier([keys.intermediate_cert, keys.root_cert], at).verify(issued.certificate, [])
        assert verified.chain[1:] == [keys.intermediate_cert]
        assert verified.subjects == [x509.RFC822Name("alice@example.test")]

    def test_verifies_to_root_through_untrusted_intermediate(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        at = issued.certificate.not_valid_before_utc + timedelta(minutes=1)
        verified = sigstore_chain_verifier([keys.root_cert], at).verify(issued.certificate, [keys.intermediate_cert])
        assert verified.chain == [issued.certificate, keys.intermediate_cert, keys.root_cert]

    def test_not_valid_outside_ten_minutes(self, issued: IssuedCertificate, keys: CAKeys) -> None:
        at = issued.certificate.not_valid_after_utc + timedelta(seconds=1)
        with pytest.raises(x509.verification.VerificationError):
            sigstore_chain_verifier([keys.intermediate_cert, keys.root_cert], at).verify(issued.certificate, [])

    def test_uri_leaf_verifies(
        self, ca: CertificateAuthority, keys: CAKeys, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        leaf = ca.issue(subject_key.public_key(), GITHUB_IDENTITY).certificate
        at = leaf.not_valid_before_utc + timedelta(minutes=1)
        sigstore_chain_verifier([keys.intermediate_cert, keys.root_cert], at).verify(leaf, [])
        verify_sct(leaf, [keys.intermediate_cert, keys.root_cert], ct_keyring(keys.ct_key.public_key()))
        SigstoreIdentityPolicy(identity=WORKFLOW, issuer=ISSUER).verify(leaf)


ACCEPTED_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
    "rsa3072": lambda: rsa.generate_private_key(65537, 3072),
    "rsa4096": lambda: rsa.generate_private_key(65537, 4096),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


class TestSubjectKeys:
    @pytest.mark.parametrize("kind", sorted(ACCEPTED_KEYS))
    def test_accepted(self, kind: str, ca: CertificateAuthority, keys: CAKeys) -> None:
        public_key = ACCEPTED_KEYS[kind]().public_key()
        issued = ca.issue(public_key, identity())
        leaf = issued.certificate
        assert leaf.public_key() == public_key
        ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(public_key)
        verify_sct(leaf, list(issued.chain[1:]), ct_keyring(keys.ct_key.public_key()))
        at = leaf.not_valid_before_utc + timedelta(minutes=1)
        sigstore_chain_verifier([keys.intermediate_cert, keys.root_cert], at).verify(leaf, [])

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()).public_key(), id="p192"),
            pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()).public_key(), id="secp256k1"),
            pytest.param(lambda: rsa.generate_private_key(65537, 1024).public_key(), id="rsa1024"),
            pytest.param(lambda: dsa.generate_private_key(2048).public_key(), id="dsa2048"),
            pytest.param(lambda: ed448.Ed448PrivateKey.generate().public_key(), id="ed448"),
            pytest.param(lambda: x25519.X25519PrivateKey.generate().public_key(), id="x25519"),
            pytest.param(lambda: b"not a key", id="bytes"),
        ],
    )
    def test_refused(self, make, ca: CertificateAuthority) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(BadRequest, match="unsupported public key type"):
            ca.issue(make(), identity())

    def test_rsa_too_large_refused(self) -> None:
        big = rsa.RSAPublicNumbers(65537, (1 << 8191) + 1).public_key()  # 8192-bit modulus, no keygen
        assert big.key_size == 8192
        with pytest.raises(BadRequest, match="RSA-8192"):
            check_subject_public_key(big)


class TestRefusals:
    @pytest.mark.parametrize(
        ("exts", "match"),
        [
            ((("1.3.6.1.4.1.57264.1.8", utf8string(ISSUER)),), "1.3.6.1.4.1.57264.1.1 must be present"),
            ((("1.3.6.1.4.1.57264.1.1", utf8string(ISSUER)),), "raw issuer"),
            (
                (("1.3.6.1.4.1.57264.1.1", ISSUER.encode()), ("1.3.6.1.4.1.57264.1.8", ISSUER.encode())),
                "DER UTF8String",
            ),
            (
                (("1.3.6.1.4.1.57264.1.1", ISSUER.encode()), ("1.3.6.1.4.1.57264.1.1", ISSUER.encode())),
                "twice",
            ),
            ((("1.3.6.1.4.1.57264.1.1", ISSUER.encode()), ("2.5.29.19", b"\x30\x00")), "Fulcio's arc"),
            ((("1.3.6.1.4.1.57264.1.1", ISSUER),), "must be bytes"),
        ],
    )
    def test_bad_identity_extensions_are_internal_errors(
        self,
        exts: tuple[tuple[str, bytes], ...],
        match: str,
        ca: CertificateAuthority,
        subject_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        with pytest.raises(Internal, match=match):
            ca.issue(subject_key.public_key(), Identity("email", "a@example.test", ISSUER, exts))

    @pytest.mark.parametrize(
        ("san_type", "san"), [("email", ""), ("email", "jürgen@example.test"), ("uri", "https://exämple.test/x")]
    )
    def test_unencodable_san_is_bad_request(
        self, san_type: str, san: str, ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        with pytest.raises(BadRequest):
            ca.issue(subject_key.public_key(), identity(san_type, san))

    def test_unknown_san_type(self, ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey) -> None:
        with pytest.raises(Internal, match="SAN type"):
            ca.issue(subject_key.public_key(), identity("dns", "example.test"))

    def test_intermediate_expiring_within_the_leaf_validity(
        self, keys: CAKeys, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        late = FixedClock(keys.intermediate_cert.not_valid_after_utc - timedelta(minutes=5))
        with pytest.raises(Internal, match="expires"):
            CertificateAuthority(keys, clock=late).issue(subject_key.public_key(), identity())

    def test_naive_clock_refused(self, keys: CAKeys, subject_key: ec.EllipticCurvePrivateKey) -> None:
        naive = FixedClock(datetime.now())  # noqa: DTZ005 - the point of the test
        with pytest.raises(ValueError, match="timezone-aware"):
            CertificateAuthority(keys, clock=naive).issue(subject_key.public_key(), identity())

    def test_tbs_mismatch_fails_loudly(
        self, keys: CAKeys, clock: FixedClock, subject_key: ec.EllipticCurvePrivateKey
    ) -> None:
        """If the throwaway first signature changed the TBS (here: an RSA AlgorithmIdentifier), refuse."""
        ca = CertificateAuthority(keys, clock=clock)
        ca._tbs_probe_key = rsa.generate_private_key(65537, 2048)  # type: ignore[assignment]
        with pytest.raises(Internal, match="precertificate TBS"):
            ca.issue(subject_key.public_key(), identity())


def test_takes_the_real_identity_class(ca: CertificateAuthority, subject_key: ec.EllipticCurvePrivateKey) -> None:
    """``tlog.ca.identity.Identity`` satisfies the structural type ``issue`` takes."""
    real = pytest.importorskip("tlog.ca.identity")
    ident = real.Identity(
        san_type="email",
        san="alice@example.test",
        issuer=ISSUER,
        extensions=(
            ("1.3.6.1.4.1.57264.1.1", ISSUER.encode()),
            ("1.3.6.1.4.1.57264.1.8", real.der_utf8string(ISSUER)),
        ),
    )
    leaf = ca.issue(subject_key.public_key(), ident).certificate
    SigstoreIdentityPolicy(identity="alice@example.test", issuer=ISSUER).verify(leaf)
    OIDCIssuerV2(ISSUER).verify(leaf)
