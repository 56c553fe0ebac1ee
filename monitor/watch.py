"""Identity watching: which log entries name an identity, key or certificate we care about.

The watchlist is sigstore/rekor-monitor's ``monitoredValues`` configuration
(``pkg/notifications`` ``ConfigMonitoredValues``, ``pkg/identity``,
``pkg/fulcio/extensions``), so a rekor-monitor config file can be reused as is::

    monitoredValues:
      certIdentities:
        - certSubject: alice@example\\.com            # regex over the certificate's SANs
        - certSubject: https://github\\.com/org/repo/\\.github/workflows/.*
          issuers:                                     # regexes over the OIDC issuer
            - https://token\\.actions\\.githubusercontent\\.com
      subjects:                                        # regexes over SANs, any issuer
        - bob@example\\.com
      fingerprints:                                    # SHA-256 hex, see below
        - 6f1c...e0
      oidMatchers:                                     # exact extension values
        fulcioExtensions:
          source-repository-uri: [https://github.com/org/repo]
        oidExtensions:
          - objectIdentifier: [1, 3, 6, 1, 4, 1, 57264, 1, 9]
            extensionValues: [https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main]
        customExtensions:
          - objectIdentifier: 1.3.6.1.4.1.57264.1.11
            extensionValues: [self-hosted]

The file may also be the bare mapping (``certIdentities: ...`` at the top).
With the ``monitoredValues:`` wrapper, rekor-monitor's other top-level keys
(``startIndex``, ``outputIdentities``, notification settings, ...) are accepted
and ignored; anything else is an error. Inside ``monitoredValues`` parsing is
strict: unknown keys, wrong types, empty values, duplicate keys, invalid OIDs
and regexes that do not compile all raise :class:`WatchConfigError` naming the
path of the offending value (``monitoredValues.certIdentities[1].issuers[0]``).
Scalars are read as YAML 1.2 strings (``yes``, ``0123`` and ``1e3`` stay the
text written), as Go's yaml.v3 does when it fills a string field. rekor-monitor's
older list form of ``oidMatchers`` (``[{objectIdentifier, extensionValues}]``)
is accepted too, and an ``oid`` key may stand for ``objectIdentifier``.

Matching semantics (read from rekor-monitor; deviations are marked *ours*):

* **Regexes are searches, not full matches.** rekor-monitor compiles with Go's
  ``regexp.Compile`` and calls ``MatchString``, which is unanchored:
  ``alice@example\\.com`` also matches ``malice@example.com.evil``. We do the
  same (``re.search``), so a rekor-monitor config raises at least the alerts it
  raised there; write ``^...$`` for an exact match. Patterns are RE2 syntax
  run by Python's ``re``: ``\\z``, ``\\Q...\\E``, ``(?<name>...)`` and POSIX
  classes such as ``[[:alpha:]]`` are translated; RE2 features Python lacks
  (``\\pL``, the ``U`` flag) are reported as config errors. Python's ``re``
  backtracks, so avoid nested quantifiers such as ``(a+)+``.
* ``certIdentities``: a certificate matches when one of its SANs (DNS, e-mail,
  IP, URI and the Fulcio otherName ``1.3.6.1.4.1.57264.1.7``, in that order)
  matches ``certSubject`` and, if ``issuers`` is non-empty, its OIDC issuer
  matches one of them. The issuer is extension ``1.3.6.1.4.1.57264.1.8`` (a DER
  string) or else ``.1.1`` (raw bytes). *Ours:* rekor-monitor skips a
  certificate without an issuer extension even when no issuers are listed; we
  match it, so a self-signed certificate claiming a watched identity is
  reported.
* ``subjects``: regexes over the same SANs, with no issuer condition (rekor's
  x509 ``Subjects()`` are the certificate's SANs; the README only mentions SSH
  and PGP keys, whose e-mail addresses are their subjects). Bare public keys,
  the only other verifiers hashedrekord and dsse entries carry here, have no
  subjects, so ``subjects`` never match them.
* ``fingerprints``: lowercase hex SHA-256. rekor (``pkg/pki/x509``
  ``Identities``) fingerprints a certificate by its DER encoding and a bare key
  by its DER SubjectPublicKeyInfo. *Ours:* a certificate's SubjectPublicKeyInfo
  fingerprint is checked too, so one watched key is found in every certificate
  issued for it. Configured values are compared case-insensitively and may use
  ``:`` separators; values that are not 64 hex digits (SSH or PGP fingerprints
  in a shared config) are kept but can never match a hashedrekord or dsse entry.
* ``oidMatchers``: exact string comparison with the extension's value.
  ``.1.1``-``.1.6`` (Fulcio's deprecated raw extensions) are compared as raw
  UTF-8; every other OID as a DER string (UTF8String, PrintableString,
  IA5String, ...), falling back to the raw bytes when it is not one, as
  rekor-monitor does. ``fulcioExtensions`` names: ``issuer`` (both ``.1.1`` and
  ``.1.8``), ``github-workflow-{trigger,sha,name,repository,ref}``
  (``.1.2``-``.1.6``), ``build-signer-uri`` (``.1.9``) ... through
  ``source-repository-visibility-at-signing`` (``.1.22``); see
  :data:`FULCIO_EXTENSION_NAMES`. *Ours:* values given for one OID in several
  sections are merged (rekor-monitor keeps only the last section's).

Entries: Rekor v1 canonical bodies of kind ``hashedrekord``/``rekord``
(``spec.signature.publicKey.content``) and ``dsse``
(``spec.signatures[].verifier``), each a base64 PEM certificate or public key;
and, for the CA's certificate log, a body that is a DER certificate. Anything
else, or anything that fails to parse, gives no match; :meth:`Watchlist.match`
never raises.

Performance: the outcome of every distinct verifier string is cached (an LRU
of :data:`DEFAULT_CACHE_SIZE`), so a certificate is parsed and matched once
however many entries carry it, and the per-entry cost is one ``json.loads``
and a dictionary lookup. An empty watchlist returns at once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from monitor.config_files import read_config_text
from tlog.ca.identity import der_tlv

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "FULCIO_EXTENSION_NAMES",
    "EntryBody",
    "Match",
    "VerifierInfo",
    "WatchConfigError",
    "Watchlist",
    "decode_entry",
]

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 4096
"""Distinct verifiers (certificates or keys) whose match outcome is remembered."""

_ARC = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = _ARC + "1"
OID_OTHERNAME = _ARC + "7"
OID_ISSUER_V2 = _ARC + "8"

#: ``fulcioExtensions`` keys (rekor-monitor's ``FulcioExtensions`` yaml names) -> OIDs.
FULCIO_EXTENSION_NAMES: dict[str, tuple[str, ...]] = {
    "issuer": (OID_ISSUER_V1, OID_ISSUER_V2),
    "github-workflow-trigger": (_ARC + "2",),
    "github-workflow-sha": (_ARC + "3",),
    "github-workflow-name": (_ARC + "4",),
    "github-workflow-repository": (_ARC + "5",),
    "github-workflow-ref": (_ARC + "6",),
    "build-signer-uri": (_ARC + "9",),
    "build-signer-digest": (_ARC + "10",),
    "runner-environment": (_ARC + "11",),
    "source-repository-uri": (_ARC + "12",),
    "source-repository-digest": (_ARC + "13",),
    "source-repository-ref": (_ARC + "14",),
    "source-repository-identifier": (_ARC + "15",),
    "source-repository-owner-uri": (_ARC + "16",),
    "source-repository-owner-identifier": (_ARC + "17",),
    "build-config-uri": (_ARC + "18",),
    "build-config-digest": (_ARC + "19",),
    "build-trigger": (_ARC + "20",),
    "run-invocation-uri": (_ARC + "21",),
    "source-repository-visibility-at-signing": (_ARC + "22",),
}

#: Fulcio's deprecated extensions hold raw UTF-8, not a DER string.
_RAW_VALUE_OIDS = frozenset(_ARC + str(n) for n in range(1, 7))

_MONITORED_KEYS = ("certIdentities", "subjects", "fingerprints", "oidMatchers")
#: rekor-monitor's other top-level config keys (``IdentityMonitorConfiguration``), ignored here.
_REKOR_MONITOR_KEYS = frozenset(
    {
        "startIndex",
        "endIndex",
        "outputIdentities",
        "outputIdentitiesFormat",
        "logInfoFile",
        "identityMetadataFile",
        "githubIssue",
        "emailNotificationSMTP",
        "emailNotificationMailgun",
        "emailNotificationSendGrid",
        "caRootsFile",
        "caIntermediatesFile",
        "ctShards",
    }
)
_MAX_CONFIG_BYTES = 4 << 20
_OID_TEXT = re.compile(r"[0-9]+(\.[0-9]+)+")
_HEX = re.compile(r"[0-9a-f]+")


class WatchConfigError(ValueError):
    """The watchlist file is unreadable or not a valid ``monitoredValues`` configuration."""


# ---------------------------------------------------------------------------
# Matches.


@dataclass(frozen=True)
class Match:
    """One watchlist rule matching one verifier (certificate or key) of one entry.

    ``kind`` is ``identity`` (``certIdentities`` or ``subjects``: ``value`` is
    the SAN), ``fingerprint`` (``value`` is the SHA-256 hex, ``fingerprint_of``
    says of what) or ``oid`` (``value`` is the extension value, ``oid`` its
    OID). ``rule`` names the watchlist entry (``certIdentities[0]``).
    ``san``, ``issuer`` and ``certificate_sha256`` describe the certificate
    (empty / None for a bare key); ``public_key_sha256`` is the
    SubjectPublicKeyInfo fingerprint when the key could be read.
    """

    log_index: int
    kind: str
    value: str
    rule: str
    entry_kind: str
    verifier: str
    san: tuple[str, ...] = ()
    issuer: str | None = None
    oid: str | None = None
    fingerprint_of: str | None = None
    certificate_sha256: str | None = None
    public_key_sha256: str | None = None

    def to_alert(self, origin: str | None = None) -> dict[str, Any]:
        """The alert dict for the monitor's alert sink; ``origin`` is added when given."""
        if self.kind == "fingerprint":
            what = f"{self.fingerprint_of} fingerprint {self.value}"
        elif self.kind == "oid":
            what = f"extension {self.oid} = {self.value!r}"
        else:
            what = f"SAN {self.value!r}" + (f" (issuer {self.issuer})" if self.issuer else "")
        where = f" of {origin}" if origin else ""
        evidence: dict[str, Any] = {
            "kind": self.kind,
            "rule": self.rule,
            "value": self.value,
            "entry_kind": self.entry_kind,
            "verifier": self.verifier,
            "san": list(self.san),
            "issuer": self.issuer,
        }
        if self.oid is not None:
            evidence["oid"] = self.oid
        if self.fingerprint_of is not None:
            evidence["fingerprint_of"] = self.fingerprint_of
        if self.certificate_sha256 is not None:
            evidence["certificate_sha256"] = self.certificate_sha256
        if self.public_key_sha256 is not None:
            evidence["public_key_sha256"] = self.public_key_sha256
        alert: dict[str, Any] = {
            "type": "identity_match",
            "log_index": self.log_index,
            "message": f"log entry {self.log_index}{where} ({self.entry_kind}) matches {self.rule}: {what}",
            "evidence": evidence,
        }
        if origin is not None:
            alert["origin"] = origin
        return alert


@dataclass(frozen=True)
class _Hit:
    """A match without its log index and entry kind: what the verifier cache stores."""

    kind: str
    value: str
    rule: str
    verifier: str
    san: tuple[str, ...]
    issuer: str | None
    oid: str | None = None
    fingerprint_of: str | None = None
    certificate_sha256: str | None = None
    public_key_sha256: str | None = None


# ---------------------------------------------------------------------------
# Rules.


@dataclass(frozen=True)
class _CertIdentityRule:
    name: str
    subject: re.Pattern[str]
    issuers: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class _SubjectRule:
    name: str
    pattern: re.Pattern[str]


class Watchlist:
    """Parsed ``monitoredValues``; :meth:`match` finds them in log entries.

    Build with :meth:`load` (a file), :meth:`from_yaml`, :meth:`from_mapping`
    or :meth:`empty`. Thread-safe (the cache is ``functools.lru_cache``).
    """

    def __init__(
        self,
        *,
        cert_identities: Iterable[_CertIdentityRule] = (),
        subjects: Iterable[_SubjectRule] = (),
        fingerprints: Mapping[str, str] | None = None,
        oid_matchers: Mapping[str, frozenset[str]] | None = None,
        source: str = "watchlist",
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.cert_identities: tuple[_CertIdentityRule, ...] = tuple(cert_identities)
        self.subjects: tuple[_SubjectRule, ...] = tuple(subjects)
        #: normalized fingerprint -> rule name
        self.fingerprints: dict[str, str] = dict(fingerprints or {})
        #: dotted OID -> accepted values
        self.oid_matchers: dict[str, frozenset[str]] = dict(oid_matchers or {})
        self.source = source
        self._needs_cert = bool(self.cert_identities or self.subjects or self.oid_matchers)
        self._active = bool(self._needs_cert or self.fingerprints)
        self._evaluate = functools.lru_cache(maxsize=cache_size)(self._evaluate_uncached)

    # -- construction -------------------------------------------------------

    @classmethod
    def empty(cls) -> Watchlist:
        """A watchlist that matches nothing (and costs nothing)."""
        return cls(source="empty watchlist")

    @classmethod
    def load(cls, path: str | Path, *, cache_size: int = DEFAULT_CACHE_SIZE) -> Watchlist:
        """Parse a rekor-monitor config file. Raises :class:`WatchConfigError`."""
        text = read_config_text(path, what="watchlist", max_bytes=_MAX_CONFIG_BYTES, error=WatchConfigError)
        return cls.from_yaml(text, source=str(path), cache_size=cache_size)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "watchlist", cache_size: int = DEFAULT_CACHE_SIZE) -> Watchlist:
        """Parse YAML text (same rules as :meth:`load`)."""
        try:
            data = yaml.load(text, Loader=_StringLoader)
        except yaml.YAMLError as exc:
            raise WatchConfigError(f"{source}: invalid YAML: {exc}") from None
        return cls.from_mapping(data, source=source, cache_size=cache_size)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "watchlist", cache_size: int = DEFAULT_CACHE_SIZE) -> Watchlist:
        """Build from already-parsed YAML/JSON data (a ``monitoredValues`` wrapper or the bare mapping)."""
        if not isinstance(data, dict):
            raise WatchConfigError(f"{source}: the watchlist must be a mapping, not {_type_name(data)}")
        if "monitoredValues" in data:
            stray = sorted(str(k) for k in data if k != "monitoredValues" and k not in _REKOR_MONITOR_KEYS)
            if stray:
                raise WatchConfigError(
                    f"{source}: unknown top-level key(s) {', '.join(map(repr, stray))} "
                    f"(expected 'monitoredValues' and rekor-monitor's run settings)"
                )
            ignored = sorted(str(k) for k in data if k != "monitoredValues")
            if ignored:
                log.info("%s: ignoring rekor-monitor setting(s) %s", source, ", ".join(ignored))
            values, where = data["monitoredValues"], "monitoredValues"
            if values is None:
                values = {}
        else:
            values, where = data, ""
            if not any(k in data for k in _MONITORED_KEYS):
                known = ", ".join(("monitoredValues", *_MONITORED_KEYS))
                found = ", ".join(repr(str(k)) for k in list(data)[:5]) or "nothing"
                raise WatchConfigError(f"{source}: expected one of {known} at the top level, found {found}")
        parser = _Parser(source)
        return parser.parse(values, where, cache_size)

    # -- introspection ------------------------------------------------------

    def __bool__(self) -> bool:
        return self._active

    def __len__(self) -> int:
        return (
            len(self.cert_identities)
            + len(self.subjects)
            + len(self.fingerprints)
            + sum(len(v) for v in self.oid_matchers.values())
        )

    def __repr__(self) -> str:
        return (
            f"Watchlist({self.source!r}: {len(self.cert_identities)} certIdentities, {len(self.subjects)} subjects, "
            f"{len(self.fingerprints)} fingerprints, {len(self.oid_matchers)} OIDs)"
        )

    def cache_info(self) -> Any:
        """``functools`` cache statistics of the verifier cache."""
        return self._evaluate.cache_info()

    # -- matching -----------------------------------------------------------

    def match(self, body: bytes, log_index: int) -> list[Match]:
        """Every rule matching a verifier of the entry ``body`` (a Rekor v1 canonical body).

        Never raises: an unparseable body, or one of a kind without
        certificates or keys, has no matches.
        """
        if not self._active:
            return []
        try:
            entry = decode_entry(body)
        except Exception:  # noqa: BLE001 - garbage from a log must not stop the monitor
            return []
        entry_kind, verifiers = entry.kind, entry.verifiers
        if not verifiers:
            return []
        out: list[Match] = []
        for verifier in verifiers:
            try:
                hits = self._evaluate(verifier)
            except Exception:
                log.debug("watchlist: matching a verifier failed", exc_info=True)
                continue
            for hit in hits:
                out.append(
                    Match(
                        log_index=log_index,
                        kind=hit.kind,
                        value=hit.value,
                        rule=hit.rule,
                        entry_kind=entry_kind,
                        verifier=hit.verifier,
                        san=hit.san,
                        issuer=hit.issuer,
                        oid=hit.oid,
                        fingerprint_of=hit.fingerprint_of,
                        certificate_sha256=hit.certificate_sha256,
                        public_key_sha256=hit.public_key_sha256,
                    )
                )
        return out

    def _evaluate_uncached(self, verifier: str | bytes) -> tuple[_Hit, ...]:
        try:
            info = VerifierInfo.parse(verifier, need_cert_details=self._needs_cert)
        except Exception:
            log.debug("unparseable verifier in log entry", exc_info=True)
            return ()
        if info is None:
            return ()
        return tuple(self._hits(info))

    def _hits(self, info: VerifierInfo) -> Iterable[_Hit]:
        common = {
            "verifier": info.kind,
            "san": info.sans,
            "issuer": info.issuer,
            "certificate_sha256": info.certificate_sha256,
            "public_key_sha256": info.public_key_sha256,
        }
        if self.fingerprints:
            for fp, of in ((info.certificate_sha256, "certificate"), (info.public_key_sha256, "public_key")):
                if fp is not None and fp in self.fingerprints:
                    yield _Hit("fingerprint", fp, self.fingerprints[fp], fingerprint_of=of, **common)
        if info.kind != "certificate":
            return
        for rule in self.cert_identities:
            if rule.issuers and (info.issuer is None or not any(p.search(info.issuer) for p in rule.issuers)):
                continue
            for san in info.sans:
                if rule.subject.search(san):
                    yield _Hit("identity", san, rule.name, **common)
                    break
        for srule in self.subjects:
            for san in info.sans:
                if srule.pattern.search(san):
                    yield _Hit("identity", san, srule.name, **common)
                    break
        if self.oid_matchers:
            issuer_values: set[str] = set()
            for oid in (OID_ISSUER_V2, *[o for o in self.oid_matchers if o != OID_ISSUER_V2]):
                values = self.oid_matchers.get(oid)
                if not values:
                    continue
                value = info.extension_text(oid)
                if value is None or value not in values:
                    continue
                if oid in (OID_ISSUER_V1, OID_ISSUER_V2):
                    # One issuer, two encodings: report it once.
                    if value in issuer_values:
                        continue
                    issuer_values.add(value)
                yield _Hit("oid", value, f"oidMatchers {oid}", oid=oid, **common)


# ---------------------------------------------------------------------------
# Entry bodies and verifiers.


@dataclass(frozen=True)
class EntryBody:
    """What the watchers read from one entry: its kind, its distinct verifiers (base64
    PEM strings, or a DER certificate for the certificate log) and its canonical spec."""

    kind: str
    verifiers: tuple[str | bytes, ...]
    spec: Mapping[str, Any] = field(default_factory=dict)


def decode_entry(body: bytes) -> EntryBody:
    """Decode a canonical body (or a DER certificate); raises on garbage.

    Shared with :mod:`monitor.publisher_watch`, which reads dsse entries' specs.
    """
    if body[:1] == b"0":  # 0x30: a DER SEQUENCE, the certificate log's entries
        return EntryBody("x509", (bytes(body),))
    doc = json.loads(body)
    kind = doc["kind"]
    spec = doc["spec"]
    found: list[str | bytes] = []
    if kind in ("hashedrekord", "rekord"):
        content = spec["signature"]["publicKey"]["content"]
        if isinstance(content, str):
            found.append(content)
    elif kind == "dsse":
        for sig in spec.get("signatures") or ():
            verifier = sig.get("verifier") if isinstance(sig, dict) else None
            if isinstance(verifier, str) and verifier not in found:
                found.append(verifier)
    return EntryBody(str(kind), tuple(found), spec if isinstance(spec, dict) else {})


@dataclass(frozen=True)
class VerifierInfo:
    """A verifier (certificate or bare key) as the watchers match it: fingerprints,
    SANs, OIDC issuer and raw extensions. Shared with :mod:`monitor.publisher_watch`."""

    kind: str  # "certificate" | "public_key"
    certificate_sha256: str | None
    public_key_sha256: str | None
    sans: tuple[str, ...] = ()
    issuer: str | None = None
    extensions: Mapping[str, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, verifier: str | bytes, *, need_cert_details: bool) -> VerifierInfo | None:
        """A base64 PEM certificate or key, or DER certificate bytes; None for other PEM
        labels; raises on garbage. Without ``need_cert_details`` only the fingerprints."""
        if isinstance(verifier, bytes):
            return cls._from_certificate(x509.load_der_x509_certificate(verifier), need_cert_details)
        pem = base64.b64decode(verifier, validate=True)
        start = pem.find(b"-----BEGIN ")
        if start < 0:
            return None
        label = pem[start + 11 : pem.find(b"-----", start + 11)]
        if label == b"CERTIFICATE":
            return cls._from_certificate(x509.load_pem_x509_certificate(pem[start:]), need_cert_details)
        if label == b"PUBLIC KEY":
            key = serialization.load_pem_public_key(pem[start:])
            der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return cls("public_key", None, hashlib.sha256(der).hexdigest())
        return None

    @classmethod
    def _from_certificate(cls, cert: x509.Certificate, need_details: bool) -> VerifierInfo:
        cert_fp = cert.fingerprint(hashes.SHA256()).hex()
        try:
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            key_fp: str | None = hashlib.sha256(spki).hexdigest()
        except Exception:  # noqa: BLE001 - an unsupported key type still has a certificate fingerprint
            key_fp = None
        if not need_details:
            return cls("certificate", cert_fp, key_fp)
        try:
            exts = cert.extensions
        except Exception:
            log.debug("certificate %s has unparseable extensions", cert_fp, exc_info=True)
            return cls("certificate", cert_fp, key_fp)
        raw: dict[str, bytes] = {}
        sans: list[str] = []
        for ext in exts:
            oid = ext.oid.dotted_string
            value = ext.value
            if isinstance(value, x509.UnrecognizedExtension):
                raw[oid] = value.value
            else:
                try:
                    raw[oid] = value.public_bytes()
                except Exception:  # noqa: BLE001 - not re-encodable; not matchable by OID
                    log.debug("extension %s of certificate %s cannot be re-encoded", oid, cert_fp)
            if isinstance(value, x509.SubjectAlternativeName):
                sans = _san_strings(value)
        issuer = None
        if OID_ISSUER_V2 in raw:
            issuer = _der_string(raw[OID_ISSUER_V2])
        if not issuer and OID_ISSUER_V1 in raw:
            issuer = raw[OID_ISSUER_V1].decode("utf-8", "replace") or None
        return cls("certificate", cert_fp, key_fp, tuple(sans), issuer or None, raw)

    def extension_text(self, oid: str) -> str | None:
        """Extension ``oid`` as text (a DER string, or raw UTF-8 for ``.1.1``-``.1.6``), or None."""
        value = self.extensions.get(oid)
        if value is None:
            return None
        if oid not in _RAW_VALUE_OIDS:
            text = _der_string(value)
            if text is not None:
                return text or None
        return value.decode("utf-8", "replace") or None


def _san_strings(san: x509.SubjectAlternativeName) -> list[str]:
    """SANs in cryptoutils.GetSubjectAlternateNames order: DNS, e-mail, IP, URI, Fulcio otherName."""
    groups: dict[str, list[str]] = {"dns": [], "email": [], "ip": [], "uri": [], "other": []}
    for name in san:
        if isinstance(name, x509.DNSName):
            groups["dns"].append(name.value)
        elif isinstance(name, x509.RFC822Name):
            groups["email"].append(name.value)
        elif isinstance(name, x509.IPAddress):
            groups["ip"].append(str(name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            groups["uri"].append(name.value)
        elif isinstance(name, x509.OtherName) and name.type_id.dotted_string == OID_OTHERNAME:
            value = name.value
            if value[:1] == b"\xa0":  # [0] EXPLICIT wrapper, if the library kept it
                inner = der_tlv(value)
                value = inner[1] if inner else b""
            text = _der_string(value)
            if text:
                groups["other"].append(text)
    return [s for group in groups.values() for s in group]


_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # T61String (Go decodes it as Latin-1 too)
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1B: "utf-8",  # GeneralString
    0x1E: "utf-16-be",  # BMPString
}


def _der_string(data: bytes) -> str | None:
    """Decode one DER string (the types Go's asn1.Unmarshal puts in a string); None otherwise."""
    tlv = der_tlv(data)
    if tlv is None or tlv[0] not in _STRING_CODECS:
        return None
    try:
        return tlv[1].decode(_STRING_CODECS[tlv[0]])
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------
# Config parsing.


class _StringLoader(yaml.SafeLoader):
    """SafeLoader reading every plain scalar but null as a string (YAML 1.2-like, as yaml.v3 fills
    string fields) and refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                duplicate = False
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            try:
                seen.add(key)
            except TypeError:
                pass
        return super().construct_mapping(node, deep=deep)


_StringLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, where: str, message: str) -> WatchConfigError:
        return WatchConfigError(f"{self.source}: {where or 'the watchlist'}: {message}")

    @staticmethod
    def join(where: str, key: str | int) -> str:
        if isinstance(key, int):
            return f"{where}[{key}]"
        return f"{where}.{key}" if where else key

    def mapping(self, value: Any, where: str, allowed: Iterable[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(where, f"must be a mapping, not {_type_name(value)}")
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise self.error(
                    self.join(where, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
                )
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(where, f"must be a list, not {_type_name(value)}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.error(where, f"must be a string, not {_type_name(value)}")
        if not value:
            raise self.error(where, "must not be empty")
        return value

    def regex(self, value: Any, where: str) -> re.Pattern[str]:
        pattern = self.text(value, where)
        try:
            translated = _translate_re2(pattern)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return re.compile(translated)
        except (re.error, ValueError, Warning) as exc:
            raise self.error(where, f"invalid regular expression {pattern!r}: {exc}") from None

    def oid(self, value: Any, where: str) -> str:
        if isinstance(value, list):
            parts = []
            for i, arc in enumerate(value):
                ok = (isinstance(arc, str) and arc.isascii() and arc.isdigit()) or (
                    isinstance(arc, int) and not isinstance(arc, bool) and arc >= 0
                )
                if not ok:
                    raise self.error(self.join(where, i), f"OID arc must be a non-negative integer, not {arc!r}")
                parts.append(str(int(arc)))
            text = ".".join(parts)
        elif isinstance(value, str):
            text = value.strip()
        else:
            raise self.error(where, f"must be an OID (dotted string or list of integers), not {_type_name(value)}")
        if not _OID_TEXT.fullmatch(text):
            raise self.error(where, f"{text!r} is not an object identifier (at least two dot-separated integers)")
        arcs = [int(a) for a in text.split(".")]
        if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
            raise self.error(where, f"{text!r} is not a valid object identifier")
        return ".".join(map(str, arcs))

    def values(self, value: Any, where: str) -> list[str]:
        items = self.items(value, where)
        if not items:
            raise self.error(where, "must list at least one value")
        return [self.text(v, self.join(where, i)) for i, v in enumerate(items)]

    def parse(self, data: Any, where: str, cache_size: int) -> Watchlist:
        mv = self.mapping(data, where, _MONITORED_KEYS)

        cert_identities = []
        key = self.join(where, "certIdentities")
        for i, item in enumerate(self.items(mv.get("certIdentities"), key)):
            at = self.join(key, i)
            entry = self.mapping(item, at, ("certSubject", "issuers"))
            if not isinstance(item, dict):
                raise self.error(at, f"must be a mapping, not {_type_name(item)}")
            if "certSubject" not in entry:
                raise self.error(at, "certSubject is required")
            subject = self.regex(entry["certSubject"], self.join(at, "certSubject"))
            issuers_at = self.join(at, "issuers")
            issuers = tuple(
                self.regex(v, self.join(issuers_at, j)) for j, v in enumerate(self.items(entry.get("issuers"), issuers_at))
            )
            cert_identities.append(_CertIdentityRule(f"certIdentities[{i}]", subject, issuers))

        subjects = []
        key = self.join(where, "subjects")
        for i, item in enumerate(self.items(mv.get("subjects"), key)):
            subjects.append(_SubjectRule(f"subjects[{i}]", self.regex(item, self.join(key, i))))

        fingerprints: dict[str, str] = {}
        key = self.join(where, "fingerprints")
        for i, item in enumerate(self.items(mv.get("fingerprints"), key)):
            text = self.text(item, self.join(key, i)).strip()
            normalized = text.lower().replace(":", "")
            if not (_HEX.fullmatch(normalized) and len(normalized) == 64):
                log.warning(
                    "%s: %s %r is not a SHA-256 hex fingerprint; it cannot match hashedrekord or dsse entries",
                    self.source,
                    self.join(key, i),
                    text,
                )
                normalized = text
            fingerprints.setdefault(normalized, f"fingerprints[{i}]")

        oid_values: dict[str, set[str]] = {}
        key = self.join(where, "oidMatchers")
        matchers = mv.get("oidMatchers")
        if isinstance(matchers, list):  # rekor-monitor's older list form
            self._oid_list(matchers, key, oid_values, dotted_ok=True)
        else:
            om = self.mapping(matchers, key, ("oidExtensions", "fulcioExtensions", "customExtensions"))
            self._oid_list(self.items(om.get("oidExtensions"), self.join(key, "oidExtensions")),
                           self.join(key, "oidExtensions"), oid_values, dotted_ok=True)  # fmt: skip
            fe_at = self.join(key, "fulcioExtensions")
            fe = self.mapping(om.get("fulcioExtensions"), fe_at, FULCIO_EXTENSION_NAMES)
            for name, vals in fe.items():
                parsed = self.values(vals, self.join(fe_at, name))
                for oid in FULCIO_EXTENSION_NAMES[name]:
                    oid_values.setdefault(oid, set()).update(parsed)
            self._oid_list(self.items(om.get("customExtensions"), self.join(key, "customExtensions")),
                           self.join(key, "customExtensions"), oid_values, dotted_ok=True)  # fmt: skip

        watchlist = Watchlist(
            cert_identities=cert_identities,
            subjects=subjects,
            fingerprints=fingerprints,
            oid_matchers={oid: frozenset(v) for oid, v in oid_values.items()},
            source=self.source,
            cache_size=cache_size,
        )
        if not watchlist:
            raise self.error(where, "no values to monitor (certIdentities, subjects, fingerprints or oidMatchers)")
        return watchlist

    def _oid_list(self, items: list[Any], where: str, out: dict[str, set[str]], *, dotted_ok: bool) -> None:
        for i, item in enumerate(items):
            at = self.join(where, i)
            entry = self.mapping(item, at, ("objectIdentifier", "oid", "extensionValues"))
            if not isinstance(item, dict):
                raise self.error(at, f"must be a mapping, not {_type_name(item)}")
            if "objectIdentifier" in entry and "oid" in entry:
                raise self.error(at, "give objectIdentifier or oid, not both")
            oid_key = "oid" if "oid" in entry else "objectIdentifier"
            if oid_key not in entry:
                raise self.error(at, "objectIdentifier is required")
            oid = self.oid(entry[oid_key], self.join(at, oid_key))
            if "extensionValues" not in entry:
                raise self.error(at, "extensionValues is required")
            out.setdefault(oid, set()).update(self.values(entry["extensionValues"], self.join(at, "extensionValues")))


# RE2 -> Python ``re``.

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_POSIX = re.compile(r"\[:(\^?)([a-z]+):\]")


def _translate_re2(pattern: str) -> str:
    """Rewrite the RE2 constructs Python's ``re`` spells differently; raise ValueError for ones it lacks."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "z" and not in_class:
                out.append("\\Z")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            posix = _POSIX.match(pattern, i)
            if posix:
                negated, name = posix.groups()
                if name not in _POSIX_CLASSES:
                    raise ValueError(f"unknown POSIX class [:{name}:]")
                if negated:
                    raise ValueError(f"negated POSIX class [:^{name}:] is not supported")
                out.append(_POSIX_CLASSES[name])
                i = posix.end()
                continue
            if c == "]" and i > class_start:
                in_class = False
                out.append(c)
            elif c in "[&~|":
                out.append("\\" + c)  # literal in RE2 classes; set operators in Python's future
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            class_start = i  # a ']' right here is a literal
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?<", i) and i + 3 < n and (pattern[i + 3].isalpha() or pattern[i + 3] == "_"):
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)
