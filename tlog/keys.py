"""Key files: generated on first start into the data directory, mode 0600.

The log signs with two keys:

* an ECDSA P-256 key for Rekor v1 compatibility (signed entry timestamps and
  the checkpoint signature sigstore clients check); the log ID is SHA-256 of
  its DER SubjectPublicKeyInfo;
* an Ed25519 key for the C2SP checkpoint signature that witnesses verify.

A key file that other users can read is refused: a leaked log key lets anyone
sign a second history.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog.errors import TlogError

ECDSA_KEY_FILE = "log-ecdsa-p256.pem"
ED25519_KEY_FILE = "log-ed25519.pem"


class KeyFileError(TlogError):
    """A key file is missing, unreadable, of the wrong type or too permissive."""


def spki_der(public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def log_id_of(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Rekor's log ID: SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).digest()


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    """Write a PKCS#8 PEM key that only the owner can read, atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    # link() instead of rename(): it fails if a key appeared meanwhile (another
    # process starting up), where rename() would silently replace that key.
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()


def read_private_key(path: Path) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    """Load a PEM private key, refusing files readable or writable by others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key file {path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise KeyFileError(f"key file {path} holds a {type(key).__name__}; expected ECDSA or Ed25519")
    return key


def load_or_create_ecdsa(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        try:
            write_private_key(path, ec.generate_private_key(ec.SECP256R1()))
        except FileExistsError:  # another process won the race; use its key
            pass
    return _as_ecdsa(read_private_key(path), path)


def _as_ecdsa(key: object, path: Path) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"key file {path} must hold an ECDSA P-256 key")
    return key


def load_or_create_ed25519(path: Path) -> ed25519.Ed25519PrivateKey:
    if not path.exists():
        try:
            write_private_key(path, ed25519.Ed25519PrivateKey.generate())
        except FileExistsError:
            pass
    return _as_ed25519(read_private_key(path), path)


def _as_ed25519(key: object, path: Path) -> ed25519.Ed25519PrivateKey:
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"key file {path} must hold an Ed25519 key")
    return key


@dataclass(frozen=True)
class LogKeys:
    """The log's signing keys and the identifiers derived from them."""

    ecdsa: ec.EllipticCurvePrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    @property
    def log_id(self) -> bytes:
        return log_id_of(self.ecdsa.public_key())

    @property
    def public_key_pem(self) -> bytes:
        return self.ecdsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def read(cls, directory: Path) -> LogKeys:
        """Existing keys under their default file names in ``directory`` (a retired
        shard's, or a rotation's next ones); nothing is generated."""
        ecdsa_path, ed_path = directory / ECDSA_KEY_FILE, directory / ED25519_KEY_FILE
        return cls(
            ecdsa=_as_ecdsa(read_private_key(ecdsa_path), ecdsa_path),
            ed25519=_as_ed25519(read_private_key(ed_path), ed_path),
        )

    @classmethod
    def load(
        cls, data_dir: Path, *, ecdsa_path: Path | None = None, ed25519_path: Path | None = None
    ) -> LogKeys:
        """Load the keys, generating any default-path key that does not exist yet.

        Explicitly given paths must exist: generating a key in a place the
        operator named would hide a typo behind a new, untrusted log key.
        """
        if ecdsa_path is not None and not ecdsa_path.exists():
            raise KeyFileError(f"key file {ecdsa_path} does not exist")
        if ed25519_path is not None and not ed25519_path.exists():
            raise KeyFileError(f"key file {ed25519_path} does not exist")
        return cls(
            ecdsa=load_or_create_ecdsa(ecdsa_path or data_dir / ECDSA_KEY_FILE),
            ed25519=load_or_create_ed25519(ed25519_path or data_dir / ED25519_KEY_FILE),
        )
