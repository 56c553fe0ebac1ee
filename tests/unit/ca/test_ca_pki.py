"""CA key material: generation on first start, file modes, reloading, and refusal of bad PKIs."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from sigstore._utils import cert_is_ca

from tlog.ca.pki import (
    CT_LOG_KEY_FILE,
    INTERMEDIATE_CERT_FILE,
    INTERMEDIATE_KEY_FILE,
    ROOT_CERT_FILE,
    ROOT_KEY_FILE,
    CAKeys,
    PKIError,
    make_intermediate_certificate,
    make_root_certificate,
)
from tlog.keys import KeyFileError, write_private_key

KEY_FILES = (ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE, CT_LOG_KEY_FILE)
CERT_FILES = (ROOT_CERT_FILE, INTERMEDIATE_CERT_FILE)


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def snapshot(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in KEY_FILES + CERT_FILES if (data_dir / name).exists()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keys(data_dir: Path) -> CAKeys:
    return CAKeys.load_or_create(data_dir, organization="example.test")


class TestGeneration:
    def test_creates_all_files_keys_private(self, data_dir: Path, keys: CAKeys) -> None:
        for name in KEY_FILES:
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
        for name in CERT_FILES:
            mode = stat.S_IMODE((data_dir / name).stat().st_mode)
            assert mode & 0o022 == 0, name  # nobody else may write a certificate
        assert keys.root_key is not None
        leftovers = [p.name for p in data_dir.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []

    def test_files_round_trip(self, data_dir: Path, keys: CAKeys) -> None:
        assert (data_dir / ROOT_CERT_FILE).read_bytes() == keys.root_cert.public_bytes(serialization.Encoding.PEM)
        assert (data_dir / INTERMEDIATE_CERT_FILE).read_bytes() == keys.intermediate_cert.public_bytes(
            serialization.Encoding.PEM
        )
        loaded = serialization.load_pem_private_key((data_dir / CT_LOG_KEY_FILE).read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        assert spki(loaded.public_key()) == spki(keys.ct_key.public_key())

    def test_root_profile(self, keys: CAKeys) -> None:
        root = keys.root_cert
        assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
        assert isinstance(root.public_key().curve, ec.SECP384R1)
        assert root.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        assert root.subject == root.issuer
        assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tlog root"
        assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "example.test"
        root.verify_directly_issued_by(root)
        assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=3650)
        assert root.serial_number > 0

        bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 1
        ku = root.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
        ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert not ski.critical
        assert ski.value == x509.SubjectKeyIdentifier.from_public_key(root.public_key())  # type: ignore[arg-type]
        assert cert_is_ca(root)

    def test_intermediate_profile(self, keys: CAKeys) -> None:
        inter, root = keys.intermediate_cert, keys.root_cert
        assert isinstance(inter.public_key(), ec.EllipticCurvePublicKey)
        assert isinstance(inter.public_key().curve, ec.SECP384R1)
        assert inter.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        inter.verify_directly_issued_by(root)
        assert inter.issuer == root.subject
        assert inter.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "example.test"
        assert inter.not_valid_after_utc <= root.not_valid_after_utc
        assert inter.not_valid_before_utc >= root.not_valid_before_utc

        bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = inter.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
        eku = inter.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
        ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert ski.value == x509.SubjectKeyIdentifier.from_public_key(keys.intermediate_key.public_key())
        aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert not aki.critical and aki.value.key_identifier == root_ski.digest
        # sigstore's own test for an issuing CA (SCT verification refuses anything else).
        assert cert_is_ca(inter)

    def test_ct_key_and_derived_ids(self, keys: CAKeys) -> None:
        assert isinstance(keys.ct_key.curve, ec.SECP256R1)
        ct_spki = spki(keys.ct_key.public_key())
        assert keys.ct_public_key_der == ct_spki
        assert keys.ct_log_id == hashlib.sha256(ct_spki).digest()
        inter_spki = spki(keys.intermediate_cert.public_key())  # type: ignore[arg-type]
        assert keys.intermediate_spki_der == inter_spki
        assert keys.issuer_key_hash == hashlib.sha256(inter_spki).digest()
        assert keys.chain == (keys.intermediate_cert, keys.root_cert)

    def test_three_distinct_keys(self, keys: CAKeys) -> None:
        assert keys.root_key is not None
        spkis = {spki(k.public_key()) for k in (keys.root_key, keys.intermediate_key, keys.ct_key)}
        assert len(spkis) == 3


class TestReload:
    def test_second_start_loads_without_rewriting(self, data_dir: Path, keys: CAKeys) -> None:
        before = snapshot(data_dir)
        mtimes = {name: (data_dir / name).stat().st_mtime_ns for name in before}
        again = CAKeys.load_or_create(data_dir, organization="something else")
        assert snapshot(data_dir) == before
        assert {name: (data_dir / name).stat().st_mtime_ns for name in before} == mtimes
        assert again.root_cert == keys.root_cert and again.intermediate_cert == keys.intermediate_cert
        assert again.ct_log_id == keys.ct_log_id

    def test_load_without_generation(self, data_dir: Path, keys: CAKeys, tmp_path: Path) -> None:
        assert CAKeys.load(data_dir).intermediate_cert == keys.intermediate_cert
        with pytest.raises(KeyFileError):
            CAKeys.load(tmp_path / "empty")
        assert not (tmp_path / "empty").exists()

    def test_root_key_offline(self, data_dir: Path, keys: CAKeys, tmp_path: Path) -> None:
        shutil.move(data_dir / ROOT_KEY_FILE, tmp_path / "offline-root-key.pem")
        loaded = CAKeys.load_or_create(data_dir)
        assert loaded.root_key is None
        assert loaded.intermediate_cert == keys.intermediate_cert
        assert not (data_dir / ROOT_KEY_FILE).exists()  # never regenerated

    def test_missing_intermediate_reissued_from_root(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / INTERMEDIATE_CERT_FILE).unlink()
        (data_dir / INTERMEDIATE_KEY_FILE).unlink()
        loaded = CAKeys.load_or_create(data_dir)
        assert loaded.root_cert == keys.root_cert
        assert loaded.intermediate_cert != keys.intermediate_cert
        loaded.intermediate_cert.verify_directly_issued_by(keys.root_cert)

    def test_resumes_after_crash_with_only_root_key(self, data_dir: Path) -> None:
        root_key = ec.generate_private_key(ec.SECP384R1())
        write_private_key(data_dir / ROOT_KEY_FILE, root_key)
        loaded = CAKeys.load_or_create(data_dir)
        assert spki(loaded.root_cert.public_key()) == spki(root_key.public_key())  # type: ignore[arg-type]

    def test_resumes_after_crash_with_intermediate_key_but_no_cert(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / INTERMEDIATE_CERT_FILE).unlink()
        loaded = CAKeys.load_or_create(data_dir)
        assert spki(loaded.intermediate_key.public_key()) == spki(keys.intermediate_key.public_key())
        loaded.intermediate_cert.verify_directly_issued_by(keys.root_cert)

    def test_concurrent_first_start_agrees_on_one_pki(self, data_dir: Path) -> None:
        barrier = threading.Barrier(8)
        results: list[CAKeys] = []
        errors: list[BaseException] = []

        def start() -> None:
            barrier.wait()
            try:
                results.append(CAKeys.load_or_create(data_dir))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({r.root_cert.fingerprint(hashes.SHA256()) for r in results}) == 1
        assert len({r.intermediate_cert.fingerprint(hashes.SHA256()) for r in results}) == 1
        assert len({r.ct_log_id for r in results}) == 1


class TestRefusals:
    @pytest.mark.parametrize("name", KEY_FILES)
    def test_permissive_key_file_refused(self, data_dir: Path, keys: CAKeys, name: str) -> None:
        os.chmod(data_dir / name, 0o644)
        with pytest.raises(KeyFileError, match="chmod 600"):
            CAKeys.load_or_create(data_dir)

    def test_intermediate_without_key(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / INTERMEDIATE_KEY_FILE).unlink()
        with pytest.raises(PKIError, match="its key .* is missing"):
            CAKeys.load_or_create(data_dir)
        assert not (data_dir / INTERMEDIATE_KEY_FILE).exists()

    def test_missing_intermediate_with_root_offline(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / ROOT_KEY_FILE).unlink()
        (data_dir / INTERMEDIATE_CERT_FILE).unlink()
        with pytest.raises(PKIError, match="root key .* is not available"):
            CAKeys.load_or_create(data_dir)

    def test_missing_root_certificate(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / ROOT_CERT_FILE).unlink()
        with pytest.raises(PKIError, match="root certificate .* is missing"):
            CAKeys.load_or_create(data_dir)

    def test_intermediate_from_another_root(self, data_dir: Path, keys: CAKeys, tmp_path: Path) -> None:
        other = tmp_path / "other"
        CAKeys.load_or_create(other)
        for name in (INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE):
            (data_dir / name).unlink()
            shutil.copy2(other / name, data_dir / name)
        with pytest.raises(PKIError, match="not issued by the root"):
            CAKeys.load_or_create(data_dir)

    def test_intermediate_key_does_not_match_certificate(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / INTERMEDIATE_KEY_FILE).unlink()
        write_private_key(data_dir / INTERMEDIATE_KEY_FILE, ec.generate_private_key(ec.SECP384R1()))
        with pytest.raises(PKIError, match="does not hold the key of the intermediate"):
            CAKeys.load_or_create(data_dir)

    def test_root_key_does_not_match_certificate(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / ROOT_KEY_FILE).unlink()
        write_private_key(data_dir / ROOT_KEY_FILE, ec.generate_private_key(ec.SECP384R1()))
        with pytest.raises(PKIError, match="does not hold the key of the root"):
            CAKeys.load_or_create(data_dir)

    def test_ed25519_intermediate_key_refused(self, data_dir: Path) -> None:
        write_private_key(data_dir / INTERMEDIATE_KEY_FILE, ed25519.Ed25519PrivateKey.generate())
        with pytest.raises(PKIError, match="Ed25519"):
            CAKeys.load_or_create(data_dir)

    def test_ct_key_must_be_p256(self, data_dir: Path) -> None:
        write_private_key(data_dir / CT_LOG_KEY_FILE, ec.generate_private_key(ec.SECP384R1()))
        with pytest.raises(KeyFileError, match="P-256"):
            CAKeys.load_or_create(data_dir)

    def test_garbage_certificate(self, data_dir: Path, keys: CAKeys) -> None:
        (data_dir / INTERMEDIATE_CERT_FILE).write_text("not a certificate\n")
        with pytest.raises(PKIError, match="not a PEM certificate|exactly one certificate"):
            CAKeys.load_or_create(data_dir)

    def test_intermediate_that_is_not_a_ca(self, keys: CAKeys) -> None:
        assert keys.root_key is not None
        now = datetime.now(timezone.utc)
        not_ca = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a CA")]))
            .issuer_name(keys.root_cert.subject)
            .public_key(keys.intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=False)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
            .sign(keys.root_key, hashes.SHA384())
        )
        with pytest.raises(PKIError, match="critical BasicConstraints"):
            CAKeys(keys.root_cert, not_ca, keys.intermediate_key, keys.ct_key, keys.root_key)

    def test_expired_intermediate(self, keys: CAKeys) -> None:
        assert keys.root_key is not None
        old_root = make_root_certificate(keys.root_key, now=datetime.now(timezone.utc) - timedelta(days=4000))
        expired = make_intermediate_certificate(
            keys.intermediate_key.public_key(),
            root_cert=old_root,
            root_key=keys.root_key,
            now=old_root.not_valid_before_utc,
        )
        assert expired.not_valid_after_utc == old_root.not_valid_after_utc  # clipped to the root
        with pytest.raises(PKIError, match="expired"):
            CAKeys(old_root, expired, keys.intermediate_key, keys.ct_key, keys.root_key)
