"""Watchlist matching on entry bodies made by the real server code, with certificates
issued by our real CA for identities from real (dev issuer) OIDC tokens."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
import speclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from monitor.watch import Match, Watchlist
from tlog.ca.certificate import CertificateAuthority
from tlog.ca.devoidc import DevIssuer
from tlog.ca.issuers import IssuersConfig
from tlog.ca.oidc import TokenVerifier
from tlog.ca.pki import CAKeys
from tlog.entries import canonicalize

DEV_URL = "http://127.0.0.1:1/oidc"
EMAIL_ISSUER = DEV_URL
GITHUB_ISSUER = DEV_URL + "/github"
STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "a.tar.gz", "digest": {"sha256": "ab" * 32}}],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {},
}


@dataclass
class FulcioCA:
    ca: CertificateAuthority
    dev: DevIssuer
    verifier: TokenVerifier

    def identity(self, subject: str, *, type: str = "email", **claims: Any) -> speclient.Identity:
        """A fresh key and a leaf our CA issues for a token the dev issuer minted for ``subject``."""
        token = self.dev.mint(subject, type=type, extra_claims=claims or None)  # type: ignore[arg-type]
        identity = self.verifier.identity(token)
        key = ec.generate_private_key(ec.SECP256R1())
        return speclient.Identity(key, self.ca.issue(key.public_key(), identity).certificate)


@pytest.fixture(scope="module")
def fulcio(tmp_path_factory: pytest.TempPathFactory) -> FulcioCA:
    tmp = tmp_path_factory.mktemp("ca")
    dev = DevIssuer.load_or_create(tmp, DEV_URL)
    verifier = TokenVerifier(IssuersConfig(tuple(dev.issuer_configs())), trusted_keys=dev.trusted_keys())
    return FulcioCA(CertificateAuthority(CAKeys.load_or_create(tmp)), dev, verifier)


@pytest.fixture(scope="module")
def alice(fulcio: FulcioCA) -> speclient.Identity:
    return fulcio.identity("alice@example.com")


@pytest.fixture(scope="module")
def octo(fulcio: FulcioCA) -> speclient.Identity:
    return fulcio.identity("octo/repo", type="github")


def hashedrekord_body(identity: speclient.Identity) -> bytes:
    return canonicalize(speclient.hashedrekord(identity)[0]).body


def dsse_body(identity: speclient.Identity) -> bytes:
    return canonicalize(speclient.dsse(identity, STATEMENT)).body


def key_only_body(identity: speclient.Identity) -> bytes:
    """A hashedrekord whose verifier is the bare public key, not a certificate."""
    request, _ = speclient.hashedrekord(identity)
    pem = identity.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    request["spec"]["signature"]["publicKey"]["content"] = base64.b64encode(pem).decode()
    return canonicalize(request).body


def wl(text: str, **kwargs: Any) -> Watchlist:
    return Watchlist.from_yaml(text, source="test", **kwargs)


def cert_sha256(identity: speclient.Identity) -> str:
    return hashlib.sha256(identity.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def spki_sha256(identity: speclient.Identity) -> str:
    der = identity.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def self_signed(
    sans: list[x509.GeneralName], extensions: list[tuple[str, bytes]] = ()  # type: ignore[assignment]
) -> speclient.Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(ObjectIdentifier(oid), value), critical=False)
    return speclient.Identity(key, builder.sign(key, hashes.SHA256()))


# --- certificate identities ---------------------------------------------------------


def test_email_identity_with_issuer(alice: speclient.Identity) -> None:
    body = hashedrekord_body(alice)
    watch = wl(
        r"""
monitoredValues:
  certIdentities:
    - certSubject: ^alice@example\.com$
      issuers: [^http://127\.0\.0\.1:1/oidc$]
"""
    )
    (match,) = watch.match(body, 7)
    assert match.kind == "identity"
    assert match.value == "alice@example.com"
    assert match.rule == "certIdentities[0]"
    assert match.issuer == EMAIL_ISSUER
    assert match.san == ("alice@example.com",)
    assert match.entry_kind == "hashedrekord"
    assert match.verifier == "certificate"
    assert match.log_index == 7
    assert match.certificate_sha256 == cert_sha256(alice)


def test_issuer_filtering(alice: speclient.Identity, octo: speclient.Identity) -> None:
    alice_body, octo_body = hashedrekord_body(alice), hashedrekord_body(octo)
    other_issuer = wl(
        r"""
certIdentities:
  - certSubject: alice@example\.com
    issuers: [https://accounts\.google\.com, https://github\.com/login]
"""
    )
    assert other_issuer.match(alice_body, 0) == []
    any_issuer = wl("certIdentities:\n  - certSubject: alice@example\\.com\n")
    assert [m.issuer for m in any_issuer.match(alice_body, 0)] == [EMAIL_ISSUER]
    # The GitHub-type identity: SAN is the workflow URI, issuer the /github issuer.
    github = wl(
        r"""
certIdentities:
  - certSubject: ^https://github\.com/octo/repo/\.github/workflows/release\.yml@refs/heads/main$
    issuers: [/oidc/github$]
  - certSubject: ^https://github\.com/octo/
    issuers: [/oidc$]
"""
    )
    assert [(m.rule, m.issuer) for m in github.match(octo_body, 1)] == [("certIdentities[0]", GITHUB_ISSUER)]
    assert github.match(alice_body, 1) == []


def test_regexes_are_unanchored_like_rekor_monitor(fulcio: FulcioCA) -> None:
    mallory = hashedrekord_body(fulcio.identity("malice@example.com.evil.test"))
    unanchored = wl("certIdentities:\n  - certSubject: alice@example\\.com\n")
    anchored = wl("certIdentities:\n  - certSubject: ^alice@example\\.com$\n")
    assert [m.value for m in unanchored.match(mallory, 0)] == ["malice@example.com.evil.test"]
    assert anchored.match(mallory, 0) == []


def test_subject_alternatives_and_case(alice: speclient.Identity) -> None:
    body = hashedrekord_body(alice)
    assert wl("subjects: ['(?i)^ALICE@EXAMPLE\\.COM$']\n").match(body, 0)
    assert not wl("subjects: ['^ALICE@EXAMPLE\\.COM$']\n").match(body, 0)
    assert wl("subjects: ['^(bob|alice)@example\\.com$']\n").match(body, 0)


def test_issuer_falls_back_to_the_raw_v1_extension() -> None:
    ident = self_signed([x509.RFC822Name("dave@example.com")], [("1.3.6.1.4.1.57264.1.1", b"https://issuer.v1")])
    body = hashedrekord_body(ident)
    (m,) = wl("certIdentities:\n  - certSubject: dave@\n    issuers: ['^https://issuer\\.v1$']\n").match(body, 0)
    assert m.issuer == "https://issuer.v1"
    # .1.8 wins over .1.1 when both are present.
    both = self_signed(
        [x509.RFC822Name("dave@example.com")],
        [("1.3.6.1.4.1.57264.1.1", b"https://old"), ("1.3.6.1.4.1.57264.1.8", b"\x0c\x0bhttps://new")],
    )
    (m,) = wl("certIdentities:\n  - certSubject: dave@\n").match(hashedrekord_body(both), 0)
    assert m.issuer == "https://new"


def test_certificate_without_issuer() -> None:
    # A self-signed certificate claiming a watched identity: reported when no
    # issuer is required (rekor-monitor would skip it), not when one is.
    body = hashedrekord_body(speclient.make_identity("alice@example.com", uri="https://alice.example/ci"))
    (m,) = wl("certIdentities:\n  - certSubject: ^alice@example\\.com$\n").match(body, 0)
    assert m.issuer is None and m.san == ("alice@example.com", "https://alice.example/ci")
    assert wl("certIdentities:\n  - certSubject: alice\n    issuers: ['.*']\n").match(body, 0) == []
    # subjects match any certificate's SANs, issuer or not.
    (m,) = wl("subjects: ['^https://alice\\.example/']\n").match(body, 0)
    assert (m.kind, m.rule, m.value) == ("identity", "subjects[0]", "https://alice.example/ci")


def test_all_san_types_and_fulcio_othername() -> None:
    ident = self_signed(
        [
            x509.DNSName("build.example.com"),
            x509.RFC822Name("ops@example.com"),
            x509.UniformResourceIdentifier("spiffe://example.com/ci"),
            x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), b"\x0c\x0cuser!gitlab1"),
        ]
    )
    body = hashedrekord_body(ident)
    found = {m.value for m in wl("subjects: ['.']\n").match(body, 0)}
    assert found == {"build.example.com"}  # one match per rule: the first SAN that matches
    (m,) = wl("subjects: ['^user!gitlab1$']\n").match(body, 0)
    assert m.san == ("build.example.com", "ops@example.com", "spiffe://example.com/ci", "user!gitlab1")


# --- fingerprints ---------------------------------------------------------------------


def test_certificate_fingerprints(alice: speclient.Identity) -> None:
    body = hashedrekord_body(alice)
    (m,) = wl(f"fingerprints: ['{cert_sha256(alice).upper()}']\n").match(body, 3)
    assert (m.kind, m.value, m.fingerprint_of, m.rule) == ("fingerprint", cert_sha256(alice), "certificate", "fingerprints[0]")
    # Ours: the certificate's key is fingerprinted too.
    (m,) = wl(f"fingerprints: ['{spki_sha256(alice)}']\n").match(body, 3)
    assert (m.value, m.fingerprint_of) == (spki_sha256(alice), "public_key")
    assert wl(f"fingerprints: ['{'00' * 32}']\n").match(body, 3) == []


def test_bare_public_key_entries(alice: speclient.Identity) -> None:
    body = key_only_body(alice)
    (m,) = wl(f"fingerprints: ['{spki_sha256(alice)}']\n").match(body, 0)
    assert (m.verifier, m.fingerprint_of, m.san, m.issuer, m.certificate_sha256) == ("public_key", "public_key", (), None, None)
    # A bare key has no SANs: subjects and identities cannot match it.
    assert wl("subjects: ['.*']\ncertIdentities:\n  - certSubject: '.*'\n").match(body, 0) == []


# --- OID matchers ---------------------------------------------------------------------


def test_fulcio_extensions_of_a_github_certificate(octo: speclient.Identity) -> None:
    body = hashedrekord_body(octo)
    watch = wl(
        """
monitoredValues:
  oidMatchers:
    fulcioExtensions:
      source-repository-uri: [https://github.com/octo/repo]
      runner-environment: [self-hosted]
      github-workflow-repository: [octo/repo]
    oidExtensions:
      - objectIdentifier: [1, 3, 6, 1, 4, 1, 57264, 1, 9]
        extensionValues:
          - https://github.com/octo/repo/.github/workflows/release.yml@refs/heads/main
    customExtensions:
      - objectIdentifier: 1.3.6.1.4.1.57264.1.14
        extensionValues: [refs/heads/main]
"""
    )
    got = {(m.oid, m.value) for m in watch.match(body, 9)}
    assert got == {
        ("1.3.6.1.4.1.57264.1.12", "https://github.com/octo/repo"),  # DER UTF8String
        ("1.3.6.1.4.1.57264.1.5", "octo/repo"),  # deprecated raw bytes
        ("1.3.6.1.4.1.57264.1.9", "https://github.com/octo/repo/.github/workflows/release.yml@refs/heads/main"),
        ("1.3.6.1.4.1.57264.1.14", "refs/heads/main"),
    }
    assert all(m.kind == "oid" and m.rule == f"oidMatchers {m.oid}" for m in watch.match(body, 9))


def test_oid_values_are_exact(octo: speclient.Identity, fulcio: FulcioCA) -> None:
    body = hashedrekord_body(octo)
    assert wl("oidMatchers:\n  fulcioExtensions:\n    source-repository-uri: [https://github.com/octo]\n").match(body, 0) == []
    assert wl("oidMatchers:\n  fulcioExtensions:\n    source-repository-uri: ['https://github.com/octo/.*']\n").match(body, 0) == []
    other = hashedrekord_body(fulcio.identity("octo/other", type="github"))
    owner = wl("oidMatchers:\n  fulcioExtensions:\n    source-repository-owner-uri: [https://github.com/octo]\n")
    assert len(owner.match(body, 0)) == 1 and len(owner.match(other, 0)) == 1


def test_issuer_matcher_reports_once(octo: speclient.Identity) -> None:
    (m,) = wl(f"oidMatchers:\n  fulcioExtensions:\n    issuer: ['{GITHUB_ISSUER}']\n").match(hashedrekord_body(octo), 0)
    assert (m.oid, m.value) == ("1.3.6.1.4.1.57264.1.8", GITHUB_ISSUER)


def test_non_fulcio_and_non_string_extensions() -> None:
    ident = self_signed(
        [x509.RFC822Name("e@example.com")],
        [("1.2.3.4.5", b"\x13\x05print"), ("1.2.3.4.6", b"raw value")],
    )
    watch = wl(
        "oidMatchers:\n  customExtensions:\n"
        "    - {objectIdentifier: 1.2.3.4.5, extensionValues: [print]}\n"
        "    - {objectIdentifier: 1.2.3.4.6, extensionValues: [raw value]}\n"
    )
    assert {m.value for m in watch.match(hashedrekord_body(ident), 0)} == {"print", "raw value"}


# --- entry kinds ----------------------------------------------------------------------


def test_dsse_entries(octo: speclient.Identity) -> None:
    body = dsse_body(octo)
    assert json.loads(body)["kind"] == "dsse"
    watch = wl(
        f"""
certIdentities:
  - certSubject: ^https://github\\.com/octo/repo/
fingerprints: ['{cert_sha256(octo)}']
oidMatchers:
  fulcioExtensions:
    build-trigger: [push]
"""
    )
    matches = watch.match(body, 11)
    assert sorted(m.kind for m in matches) == ["fingerprint", "identity", "oid"]
    assert {m.entry_kind for m in matches} == {"dsse"}


def test_certificate_log_entries(fulcio: FulcioCA) -> None:
    # The CA's certificate log stores each issued leaf as DER.
    ident = fulcio.identity("carol@example.com")
    der = ident.cert.public_bytes(serialization.Encoding.DER)
    (m,) = wl("subjects: ['^carol@']\n").match(der, 2)
    assert (m.entry_kind, m.value, m.issuer) == ("x509", "carol@example.com", EMAIL_ISSUER)


def test_non_matching_entries(alice: speclient.Identity, octo: speclient.Identity) -> None:
    watch = wl(
        f"""
certIdentities:
  - certSubject: ^bob@example\\.com$
subjects: [nobody]
fingerprints: ['{'ab' * 32}']
oidMatchers:
  fulcioExtensions:
    source-repository-uri: [https://github.com/someone/else]
"""
    )
    for body in (hashedrekord_body(alice), dsse_body(alice), hashedrekord_body(octo), key_only_body(octo)):
        assert watch.match(body, 0) == []


GARBAGE = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"0",
    b"0\x82\x01\x00garbage",
    b'{"kind": "hashedrekord"}',
    b'{"kind": "hashedrekord", "spec": []}',
    b'{"kind": "hashedrekord", "spec": {"signature": {"publicKey": {"content": 5}}}}',
    b'{"kind": "hashedrekord", "spec": {"signature": {"publicKey": {"content": "not base64!"}}}}',
    b'{"kind": "hashedrekord", "spec": {"signature": {"publicKey": {"content": "' + base64.b64encode(b"junk") + b'"}}}}',
    b'{"kind": "hashedrekord", "spec": {"signature": {"publicKey": {"content": "'
    + base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    + b'"}}}}',
    b'{"kind": "hashedrekord", "spec": {"signature": {"publicKey": {"content": "'
    + base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    + b'"}}}}',
    b'{"kind": "dsse", "spec": {"signatures": [1, {"verifier": null}, {"verifier": "@@"}]}}',
    b'{"kind": "dsse", "spec": {"signatures": {"verifier": "x"}}}',
    b'{"kind": "rekord", "spec": null}',
    b'{"kind": "intoto", "spec": {}}',
    b"[" * 100_000,
    bytes(range(256)),
    "\u00e9".encode("utf-16"),
]


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_bodies_never_match_or_raise(body: bytes) -> None:
    watch = wl("subjects: ['.*']\nfingerprints: ['" + "ab" * 32 + "']\noidMatchers:\n  customExtensions:\n"
               "    - {objectIdentifier: 1.2.3, extensionValues: [x]}\n")  # fmt: skip
    assert watch.match(body, 0) == []


# --- alerts and performance -------------------------------------------------------------


def test_alert_shape(alice: speclient.Identity) -> None:
    body = hashedrekord_body(alice)
    (m,) = wl("certIdentities:\n  - certSubject: ^alice@\n").match(body, 42)
    alert = m.to_alert()
    assert alert["type"] == "identity_match"
    assert alert["log_index"] == 42
    assert "42" in alert["message"] and "alice@example.com" in alert["message"] and "certIdentities[0]" in alert["message"]
    ev = alert["evidence"]
    assert ev["kind"] == "identity" and ev["value"] == "alice@example.com" and ev["san"] == ["alice@example.com"]
    assert ev["issuer"] == EMAIL_ISSUER and ev["certificate_sha256"] == cert_sha256(alice)
    assert ev["public_key_sha256"] == spki_sha256(alice)
    assert "origin" not in alert
    json.dumps(alert)  # JSON-serialisable as is
    with_origin = m.to_alert("log.example/entries")
    assert with_origin["origin"] == "log.example/entries" and "log.example/entries" in with_origin["message"]
    assert isinstance(m, Match)


def test_verifiers_are_parsed_once(alice: speclient.Identity) -> None:
    bodies = [hashedrekord_body(alice) for _ in range(5)] + [dsse_body(alice)]
    watch = wl("subjects: ['^alice@']\n")
    for i, body in enumerate(bodies * 10):
        assert len(watch.match(body, i)) == 1
    info = watch.cache_info()
    assert info.misses == 1 and info.hits == len(bodies) * 10 - 1


def test_throughput_floor(fulcio: FulcioCA, alice: speclient.Identity, octo: speclient.Identity) -> None:
    """Catch-up must keep up with the log: far above the monitor's 20k entries/s budget
    on a fast machine; here only a loose floor so slow CI does not flake."""
    idents = [alice, octo, fulcio.identity("bob@example.com"), speclient.make_identity("x@example.com")]
    bodies = [hashedrekord_body(idents[i % 4]) if i % 3 else dsse_body(idents[i % 4]) for i in range(200)]
    watch = wl(
        f"""
certIdentities:
  - {{certSubject: '^alice@example\\.com$', issuers: ['oidc$']}}
subjects: ['^x@']
fingerprints: ['{cert_sha256(octo)}']
oidMatchers:
  fulcioExtensions:
    source-repository-uri: [https://github.com/octo/repo]
"""
    )
    n = 20_000
    started = time.perf_counter()
    matched = sum(len(watch.match(bodies[i % 200], i)) for i in range(n))
    rate = n / (time.perf_counter() - started)
    assert matched > 0
    assert rate > 5_000, f"{rate:.0f} entries/s"


def test_empty_watchlist_skips_all_work(alice: speclient.Identity) -> None:
    calls: list[object] = []
    empty = Watchlist.empty()
    empty._evaluate = lambda v: calls.append(v) or ()  # type: ignore[method-assign]
    assert empty.match(hashedrekord_body(alice), 0) == []
    assert calls == []

