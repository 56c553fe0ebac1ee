"""Leaf issuance in Fulcio's certificate profile, with one embedded RFC 6962 SCT.

The leaf (interop notes §3.5, Fulcio ``pkg/ca``), extensions in the order Go's
``x509.CreateCertificate`` writes them for Fulcio:

* version 3, empty subject, random positive serial (159 bits of randomness);
* notBefore = now truncated to the second, notAfter = notBefore + 10 minutes;
* KeyUsage digitalSignature, **critical**;
* ExtendedKeyUsage codeSigning, **non-critical** (verifiers reject it critical);
* SubjectKeyIdentifier of the subject key; AuthorityKeyIdentifier = the
  intermediate's SKI (required by the WebPKI policy sigstore verifies with);
* SubjectAltName, one rfc822Name or URI, **critical** (the subject is empty);
* the identity's Fulcio extensions (``1.3.6.1.4.1.57264.1.*``), non-critical,
  with exactly the bytes given (``.1.1`` raw UTF-8, ``.1.8``+ DER UTF8String);
* the SCT list ``1.3.6.1.4.1.11129.2.4.2``, non-critical, last.

The SCT covers the final leaf's TBSCertificate with only the SCT extension
removed, so the leaf is built twice from one builder (same serial, validity and
extension order): once without the SCT to obtain those TBS bytes, then with the
SCT appended. The first signature is thrown away, so it is made with a cheap
throwaway P-256 key using the same hash: ECDSA AlgorithmIdentifiers name only
the hash (``ecdsa-with-SHA384``), never the curve, so the TBS bytes are the
ones the intermediate's signature would give. This saves one P-384 signature
per certificate; the check that ``tbs_precertificate_bytes`` of the final leaf
equals the signed TBS proves it on every issuance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from tlog.ca.identity import der_utf8string
from tlog.ca.pki import CAKeys, signature_hash_for, subject_key_identifier
from tlog.ca.sct import SCT_LIST_OID, sct_list_extension_value, sign_precert_sct
from tlog.errors import BadRequest, Internal

#: Fulcio's own arc; identity extensions must live under it.
FULCIO_OID_PREFIX = "1.3.6.1.4.1.57264.1."
ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"
ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"

DEFAULT_VALIDITY = timedelta(minutes=10)

SubjectPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_RSA_BITS = (2048, 4096)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EMPTY_NAME = x509.Name([])
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_CODE_SIGNING = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
_SCT_LIST_OID = ObjectIdentifier(SCT_LIST_OID)


class IdentityLike(Protocol):
    """What issuance needs from ``tlog.ca.identity.Identity`` (structural, to keep imports one-way)."""

    @property
    def san_type(self) -> str: ...  # "email" or "uri"

    @property
    def san(self) -> str: ...

    @property
    def issuer(self) -> str: ...

    @property
    def extensions(self) -> Sequence[tuple[str, bytes]]: ...  # (dotted OID, extnValue bytes)


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf and the chain that goes with it, leaf first."""

    certificate: x509.Certificate
    #: (leaf, intermediate, root)
    chain: tuple[x509.Certificate, ...]
    #: PEM text of ``chain``, leaf first: Fulcio's ``chain.certificates``.
    chain_pem: tuple[str, ...]
    #: The TLS-encoded SCT embedded in the leaf.
    sct: bytes
    sct_timestamp_ms: int

    @property
    def pem(self) -> str:
        return self.chain_pem[0]


def check_subject_public_key(key: object) -> SubjectPublicKey:
    """Accept what Fulcio does: ECDSA P-256/384/521, RSA 2048-4096 bits, Ed25519; else ``BadRequest``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_CURVES:
            raise BadRequest(f"unsupported public key type: ECDSA {key.curve.name} (use P-256, P-384 or P-521)")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not _RSA_BITS[0] <= key.key_size <= _RSA_BITS[1]:
            raise BadRequest(f"unsupported public key type: RSA-{key.key_size} (use 2048 to 4096 bits)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise BadRequest(f"unsupported public key type: {type(key).__name__}")


def _identity_extensions(identity: IdentityLike) -> list[x509.UnrecognizedExtension]:
    """The identity's extensions as given, after checks that catch encoding bugs (``Internal``).

    ``.1.1`` must be present and hold the raw issuer URL; ``.1.8``, if present,
    its DER UTF8String: swapping the two encodings breaks one client or another.
    """
    out: list[x509.UnrecognizedExtension] = []
    values: dict[str, bytes] = {}
    for oid, value in identity.extensions:
        if not oid.startswith(FULCIO_OID_PREFIX):
            raise Internal(f"identity extension {oid} is not under Fulcio's arc {FULCIO_OID_PREFIX}")
        if oid in values:
            raise Internal(f"identity extension {oid} appears twice")
        if not isinstance(value, bytes):
            raise Internal(f"identity extension {oid} value must be bytes, not {type(value).__name__}")
        values[oid] = value
        out.append(x509.UnrecognizedExtension(ObjectIdentifier(oid), value))
    if values.get(ISSUER_V1_OID) != identity.issuer.encode("utf-8"):
        raise Internal(f"identity extension {ISSUER_V1_OID} must be present and hold the raw issuer URL")
    if ISSUER_V2_OID in values and values[ISSUER_V2_OID] != der_utf8string(identity.issuer):
        raise Internal(f"identity extension {ISSUER_V2_OID} must hold the issuer URL as a DER UTF8String")
    return out


def _subject_alt_name(identity: IdentityLike) -> x509.SubjectAlternativeName:
    if not identity.san:
        raise BadRequest("the identity has an empty subject alternative name")
    try:
        if identity.san_type == "email":
            name: x509.GeneralName = x509.RFC822Name(identity.san)
        elif identity.san_type == "uri":
            name = x509.UniformResourceIdentifier(identity.san)
        else:
            raise Internal(f"unknown SAN type {identity.san_type!r} (expected 'email' or 'uri')")
    except ValueError as exc:
        raise BadRequest(f"cannot put {identity.san_type} {identity.san!r} in a certificate: {exc}") from None
    return x509.SubjectAlternativeName([name])


def _extension(value: x509.ExtensionType, *, critical: bool) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(value.oid, critical, value)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class CertificateAuthority:
    """Issues Fulcio-profile leaves from the intermediate in ``keys``.

    ``clock`` returns the current time as an aware datetime (tests pass a fake).
    Thread-safe: issuance reads only immutable state.
    """

    def __init__(
        self,
        keys: CAKeys,
        *,
        validity: timedelta = DEFAULT_VALIDITY,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if validity <= timedelta(0):
            raise ValueError("certificate validity must be positive")
        self.keys = keys
        self.validity = validity
        self._clock = clock
        inter = keys.intermediate_cert
        self._issuer_name = inter.subject
        self._hash = signature_hash_for(keys.intermediate_key)
        self._issuer_spki_der = keys.intermediate_spki_der
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(subject_key_identifier(inter))
        self._aki = _extension(aki, critical=False)
        self._usage_extensions = (_extension(_LEAF_KEY_USAGE, critical=True), _extension(_CODE_SIGNING, critical=False))
        self._ca_chain = keys.chain
        self._ca_chain_pem = tuple(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in keys.chain)
        # Signs only the throwaway first build (see the module docstring).
        self._tbs_probe_key = ec.generate_private_key(ec.SECP256R1())

    @property
    def chain_pem(self) -> list[str]:
        """PEM of the CA chain, issuing CA first: (intermediate, root). The trust bundle."""
        return list(self._ca_chain_pem)

    def chain_der(self) -> list[bytes]:
        """DER of (intermediate, root): ``certificateAuthorities[].certChain`` in the trusted root."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self._ca_chain]

    def issue(self, public_key: object, identity: IdentityLike) -> IssuedCertificate:
        """Certify ``public_key`` for ``identity``.

        Raises ``BadRequest`` for an unsupported key or a SAN that cannot be
        encoded, ``Internal`` for malformed identity extensions, an intermediate
        that expires within the leaf's validity, or a TBS mismatch (a bug).
        """
        subject_key = check_subject_public_key(public_key)
        san = _subject_alt_name(identity)
        identity_extensions = _identity_extensions(identity)

        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the CA clock must return timezone-aware datetimes")
        not_before = now.astimezone(timezone.utc).replace(microsecond=0)
        not_after = not_before + self.validity
        if not_after > self.keys.intermediate_cert.not_valid_after_utc:
            raise Internal(
                "the intermediate CA certificate expires at "
                f"{self.keys.intermediate_cert.not_valid_after_utc.isoformat()}, before a new leaf would"
            )
        # The SCT is stamped with the same clock reading: never before notBefore.
        timestamp_ms = (now - _EPOCH) // timedelta(milliseconds=1)

        # The builder is made whole from its constructor: each add_extension()
        # copies the list and checks it for a duplicate OID (quadratic; 20-40 us
        # of the ~340 us an issue() took here). The identity extensions were
        # checked for duplicates above and sit under Fulcio's arc, apart from
        # the others.
        extensions = [
            *self._usage_extensions,
            _extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False),
            self._aki,
            _extension(san, critical=True),
            *(_extension(e, critical=False) for e in identity_extensions),
        ]

        def build(extensions: list[x509.Extension[x509.ExtensionType]]) -> x509.CertificateBuilder:
            return x509.CertificateBuilder(
                issuer_name=self._issuer_name,
                subject_name=_EMPTY_NAME,
                public_key=subject_key,
                serial_number=serial,
                not_valid_before=not_before.replace(tzinfo=None),  # naive UTC, as the setters store it
                not_valid_after=not_after.replace(tzinfo=None),
                extensions=extensions,
            )

        serial = x509.random_serial_number()
        tbs = build(extensions).sign(self._tbs_probe_key, self._hash).tbs_certificate_bytes
        sct = sign_precert_sct(self.keys.ct_key, self._issuer_spki_der, tbs, timestamp_ms)
        sct_list = x509.UnrecognizedExtension(_SCT_LIST_OID, sct_list_extension_value([sct]))
        leaf = build([*extensions, _extension(sct_list, critical=False)]).sign(self.keys.intermediate_key, self._hash)
        if leaf.tbs_precertificate_bytes != tbs:
            # Never ship a certificate whose SCT does not verify.
            raise Internal("the issued certificate's precertificate TBS differs from the one the SCT signs")

        leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return IssuedCertificate(
            certificate=leaf,
            chain=(leaf, *self._ca_chain),
            chain_pem=(leaf_pem, *self._ca_chain_pem),
            sct=sct,
            sct_timestamp_ms=timestamp_ms,
        )
