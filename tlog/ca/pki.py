"""The CA's key material: root, intermediate and CT log key, kept in the data directory.

Files (keys are PKCS#8 PEM, mode 0600, refused when others can read them, see
``tlog.keys``; certificates are PEM, mode 0644):

* ``ca-root-key.pem`` / ``ca-root.pem``: ECDSA P-384 root, self-signed, 10 years,
  critical BasicConstraints CA:TRUE pathlen 1, critical KeyUsage
  keyCertSign+cRLSign, SubjectKeyIdentifier.
* ``ca-intermediate-key.pem`` / ``ca-intermediate.pem``: ECDSA P-384 issuing CA,
  signed by the root, critical BasicConstraints CA:TRUE pathlen 0, critical
  KeyUsage keyCertSign+cRLSign, EKU codeSigning (as Fulcio's intermediates have,
  for clients that chain EKUs), SKI and AKI.
* ``ct-log-key.pem``: ECDSA P-256 key signing the embedded SCTs; its log ID is
  SHA-256 of its DER SubjectPublicKeyInfo.

sigstore clients require the issuing CA to be ECDSA or RSA (never Ed25519) with
a critical CA BasicConstraints and keyCertSign (``sigstore._utils.cert_is_ca``);
loading checks this, so a hand-made intermediate fails at start-up, not at
verification time in somebody's CI.

Missing files are generated on first start. The root key may be absent once the
intermediate exists: operators are expected to move it offline. Generation runs
under an exclusive ``flock`` on ``.ca-init.lock`` in the data directory, so
several worker processes starting together agree on one PKI; files are created
with ``link()`` and never overwritten, and a half-finished generation (a crash
between two files) resumes from what is on disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlog.keys import KeyFileError, load_or_create_ecdsa, log_id_of, read_private_key, spki_der, write_private_key

ROOT_KEY_FILE = "ca-root-key.pem"
ROOT_CERT_FILE = "ca-root.pem"
INTERMEDIATE_KEY_FILE = "ca-intermediate-key.pem"
INTERMEDIATE_CERT_FILE = "ca-intermediate.pem"
CT_LOG_KEY_FILE = "ct-log-key.pem"
LOCK_FILE = ".ca-init.lock"

ROOT_COMMON_NAME = "tlog root"
INTERMEDIATE_COMMON_NAME = "tlog intermediate"
#: Ten years (with the leap days) for both CA certificates; the intermediate is
#: clipped to the root's notAfter when it is issued later.
ROOT_VALIDITY = timedelta(days=3653)
INTERMEDIATE_VALIDITY = timedelta(days=3653)

_SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

_CURVE_HASHES: dict[str, type[_SignatureHash]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


class PKIError(KeyFileError):
    """The CA's certificates and keys are missing, malformed or do not fit together."""


def signature_hash_for(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> _SignatureHash:
    """The WebPKI pairing of curve and hash: P-256/SHA-256, P-384/SHA-384, P-521/SHA-512."""
    try:
        return _CURVE_HASHES[key.curve.name]()
    except KeyError:
        raise PKIError(f"unsupported CA curve {key.curve.name}; use P-256, P-384 or P-521") from None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def make_root_certificate(
    key: ec.EllipticCurvePrivateKey, *, organization: str = "tlog", now: datetime | None = None
) -> x509.Certificate:
    """A self-signed root: CA:TRUE pathlen 1 and keyCertSign+cRLSign (both critical), SKI."""
    now = now or _now()
    name = _name(ROOT_COMMON_NAME, organization)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, signature_hash_for(key))
    )


def subject_key_identifier(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    """The certificate's SKI extension, or the RFC 5280 method-1 value if it has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def make_intermediate_certificate(
    public_key: ec.EllipticCurvePublicKey,
    *,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    organization: str = "tlog",
    now: datetime | None = None,
) -> x509.Certificate:
    """The issuing CA: CA:TRUE pathlen 0, keyCertSign+cRLSign (critical), EKU codeSigning, SKI, AKI."""
    now = now or _now()
    not_after = min(now + INTERMEDIATE_VALIDITY, root_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(INTERMEDIATE_COMMON_NAME, organization))
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(subject_key_identifier(root_cert)),
            critical=False,
        )
        .sign(root_key, signature_hash_for(root_key))
    )


def _read_ca_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = read_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"key file {path} holds an Ed25519 key; sigstore clients only accept ECDSA or RSA CAs")
    signature_hash_for(key)  # refuse curves other than P-256/384/521
    return key


def _read_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PKIError(f"certificate file {path} does not exist") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise PKIError(f"certificate file {path} is not a PEM certificate: {exc}") from None
    if len(certs) != 1:
        raise PKIError(f"certificate file {path} must hold exactly one certificate, found {len(certs)}")
    return certs[0]


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate (mode 0644) atomically, never replacing an existing file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, cert.public_bytes(serialization.Encoding.PEM))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:  # written meanwhile by a process not holding our lock; keep theirs
        pass
    finally:
        tmp.unlink()


def _load_or_generate_ca_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        try:
            write_private_key(path, ec.generate_private_key(ec.SECP384R1()))
        except FileExistsError:
            pass
    return _read_ca_key(path)


@contextmanager
def _init_lock(data_dir: Path) -> Iterator[None]:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _same_key(private_key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    return spki_der(private_key.public_key()) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class CAKeys:
    """The CA's certificates and keys, checked for consistency on construction.

    ``root_key`` is None when the root is kept offline; only the intermediate
    signs leaves.
    """

    root_cert: x509.Certificate
    intermediate_cert: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    ct_key: ec.EllipticCurvePrivateKey
    root_key: ec.EllipticCurvePrivateKey | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        inter, root = self.intermediate_cert, self.root_cert
        if self.root_key is not None and not _same_key(self.root_key, root):
            raise PKIError(f"{ROOT_KEY_FILE} does not hold the key of the root certificate {ROOT_CERT_FILE}")
        if not isinstance(self.intermediate_key, ec.EllipticCurvePrivateKey):
            raise PKIError("the intermediate key must be an ECDSA key")
        signature_hash_for(self.intermediate_key)
        if not _same_key(self.intermediate_key, inter):
            raise PKIError(
                f"{INTERMEDIATE_KEY_FILE} does not hold the key of the intermediate certificate "
                f"{INTERMEDIATE_CERT_FILE}"
            )
        try:
            inter.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PKIError(
                f"the intermediate certificate ({inter.subject.rfc4514_string()}) was not issued by the root "
                f"certificate ({root.subject.rfc4514_string()}): {str(exc) or type(exc).__name__}"
            ) from None
        try:
            bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
            ku = inter.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound as exc:
            raise PKIError(f"the intermediate certificate lacks {exc.oid.dotted_string}; it cannot be a CA") from None
        if not (bc.critical and bc.value.ca and ku.key_cert_sign):
            raise PKIError(
                "the intermediate certificate must have a critical BasicConstraints CA:TRUE and KeyUsage "
                "keyCertSign (sigstore clients refuse other issuers)"
            )
        if inter.not_valid_after_utc <= datetime.now(timezone.utc):
            raise PKIError(f"the intermediate certificate expired at {inter.not_valid_after_utc.isoformat()}")
        if not isinstance(self.ct_key, ec.EllipticCurvePrivateKey) or not isinstance(self.ct_key.curve, ec.SECP256R1):
            raise PKIError("the CT log key must be an ECDSA P-256 key")

    # -- derived values -------------------------------------------------------------

    @property
    def intermediate_spki_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the issuing CA; its SHA-256 is the SCT issuer key hash."""
        return spki_der(self.intermediate_key.public_key())

    @property
    def issuer_key_hash(self) -> bytes:
        return hashlib.sha256(self.intermediate_spki_der).digest()

    @property
    def ct_public_key_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the CT log key (``ctlogs[].publicKey.rawBytes``)."""
        return spki_der(self.ct_key.public_key())

    @property
    def ct_log_id(self) -> bytes:
        """SHA-256 of the CT key's SPKI: the SCT ``log_id`` and ``ctlogs[].logId.keyId``."""
        return log_id_of(self.ct_key.public_key())

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        """The CA chain, issuing CA first: (intermediate, root)."""
        return (self.intermediate_cert, self.root_cert)

    # -- files ------------------------------------------------------------------------

    @classmethod
    def load(cls, data_dir: Path) -> CAKeys:
        """Load existing key material; nothing is generated."""
        data_dir = Path(data_dir)
        root_key_path = data_dir / ROOT_KEY_FILE
        ct_path = data_dir / CT_LOG_KEY_FILE
        if not ct_path.exists():
            raise PKIError(f"key file {ct_path} does not exist")
        ct_key = read_private_key(ct_path)
        if not isinstance(ct_key, ec.EllipticCurvePrivateKey):
            raise PKIError(f"key file {ct_path} must hold an ECDSA P-256 key")
        return cls(
            root_cert=_read_cert(data_dir / ROOT_CERT_FILE),
            intermediate_cert=_read_cert(data_dir / INTERMEDIATE_CERT_FILE),
            intermediate_key=_read_ca_key(data_dir / INTERMEDIATE_KEY_FILE),
            ct_key=ct_key,
            root_key=_read_ca_key(root_key_path) if root_key_path.exists() else None,
        )

    @classmethod
    def load_or_create(cls, data_dir: Path, organization: str = "tlog") -> CAKeys:
        """Load the CA, generating whatever is missing first (see the module docstring).

        ``organization`` becomes the O= of newly generated CA certificates;
        existing certificates are left as they are. Raises :class:`PKIError`
        when existing files cannot be completed (an intermediate certificate
        without its key, a missing root certificate, no root key to issue a
        missing intermediate) or do not fit together.
        """
        data_dir = Path(data_dir)
        required = (ROOT_CERT_FILE, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, CT_LOG_KEY_FILE)
        if not all((data_dir / name).exists() for name in required):
            data_dir.mkdir(parents=True, exist_ok=True)
            with _init_lock(data_dir):
                _create_missing(data_dir, organization)
        return cls.load(data_dir)


def _create_missing(data_dir: Path, organization: str) -> None:
    root_key_path = data_dir / ROOT_KEY_FILE
    root_cert_path = data_dir / ROOT_CERT_FILE
    inter_key_path = data_dir / INTERMEDIATE_KEY_FILE
    inter_cert_path = data_dir / INTERMEDIATE_CERT_FILE

    if not root_cert_path.exists():
        if inter_cert_path.exists():
            raise PKIError(
                f"{inter_cert_path} exists but the root certificate {root_cert_path} is missing; restore it "
                "(generating a new root would not match the intermediate)"
            )
        root_key = _load_or_generate_ca_key(root_key_path)
        _write_cert(root_cert_path, make_root_certificate(root_key, organization=organization))

    if not inter_cert_path.exists():
        if not root_key_path.exists():
            raise PKIError(
                f"the intermediate certificate {inter_cert_path} is missing and the root key {root_key_path} "
                "is not available to issue one; bring the root key back online or restore the intermediate"
            )
        root_key = _read_ca_key(root_key_path)
        root_cert = _read_cert(root_cert_path)
        if not _same_key(root_key, root_cert):
            raise PKIError(f"{root_key_path} does not hold the key of the root certificate {root_cert_path}")
        inter_key = _load_or_generate_ca_key(inter_key_path)
        _write_cert(
            inter_cert_path,
            make_intermediate_certificate(
                inter_key.public_key(), root_cert=root_cert, root_key=root_key, organization=organization
            ),
        )
    elif not inter_key_path.exists():
        raise PKIError(f"{inter_cert_path} exists but its key {inter_key_path} is missing")

    load_or_create_ecdsa(data_dir / CT_LOG_KEY_FILE)
