"""Shared helpers for the tlog.verify tests: the real Sigstore bundles in
../shared/testdata/real, their expected outcomes (read from that folder's
README tables), and small tampering helpers."""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from tlog.verify import Artifact, Report, load_trust_root, verify_bundle
from tlog.verify.certificate import oidc_issuer, san_values

ROOT = Path(__file__).resolve().parents[3]
REAL = ROOT.parent / "shared" / "testdata" / "real"
PRODUCTION_ROOT = REAL / "production" / "trusted_root.json"
STAGING_ROOT = REAL / "staging" / "trusted_root.json"

WHEEL = REAL / "production" / "bundle_v3_github.whl.sigstore"
WHEEL_ARTIFACT = REAL / "production" / "bundle_v3_github.whl"
WHEEL_IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
WHEEL_ISSUER = "https://token.actions.githubusercontent.com"
REKOR_V2 = REAL / "staging" / "staging-rekor-v2.txt.sigstore.json"


@dataclass(frozen=True)
class RealCase:
    bundle: Path
    trust_root: Path
    identity: str | None
    issuer: str | None
    #: the steps that must fail (empty: the bundle must verify)
    fails: frozenset[str]
    #: steps that are reported as skipped on success
    skipped: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return f"{self.bundle.parent.name}/{self.bundle.name}"

    @property
    def artifact(self) -> Artifact:
        """The artifact beside the bundle; for the CPython tarball (not
        included) the digest the bundle itself records."""
        path = Path(re.sub(r"\.sigstore(\.json)?$", "", str(self.bundle)))
        if path.exists():
            return Artifact(path=path)
        doc = json.loads(self.bundle.read_bytes())
        return Artifact(digest=("sha256", base64.b64decode(doc["messageSignature"]["messageDigest"]["digest"])))


def readme_tables() -> dict[str, dict[str, list[list[str]]]]:
    """``{section: {bundle file: [cells]}}`` from the README's tables."""
    text = (REAL / "README.md").read_text()
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].split("/")[0].strip()
            out[section] = {}
        elif line.startswith("| `") and section:
            cells = [c.strip() for c in line.strip("|").split("|")]
            name = re.match(r"`([^`]+)`", cells[0]).group(1)  # type: ignore[union-attr]
            out[section][name] = [c.strip("`") for c in cells[1:]]
    return out  # type: ignore[return-value]


def certificate_of(bundle: Path) -> x509.Certificate:
    doc = json.loads(bundle.read_bytes())
    material = doc["verificationMaterial"]
    raw = material["certificate"] if "certificate" in material else material["x509CertificateChain"]["certificates"][0]
    return x509.load_der_x509_certificate(base64.b64decode(raw["rawBytes"]))


def own_identity(bundle: Path) -> tuple[str, str]:
    """The SAN and OIDC issuer the bundle's certificate names."""
    cert = certificate_of(bundle)
    found = oidc_issuer(cert)
    assert found is not None
    return san_values(cert)[0], found[0]


# Rows of the README's "invalid/" table, and the step each must fail at.
INVALID_STEPS = {
    "bundle_cve_2022_36056.txt.sigstore": "entry-body",
    "bundle_no_checkpoint.txt.sigstore": "checkpoint",
    "bundle_v3_no_signed_time.txt.sigstore.json": "time",
    "bundle_invalid_version.txt.sigstore": "bundle",
    "bundle_no_log_entry.txt.sigstore": "log-entry",
}
# bundle_v3_no_signed_time is production material (its log ID is
# rekor.sigstore.dev's, its certificate from fulcio.sigstore.dev), so it is
# checked against the production root: then its only fault is the missing time.
INVALID_ROOTS = {"bundle_v3_no_signed_time.txt.sigstore.json": PRODUCTION_ROOT}
# Steps a valid bundle legitimately reports as skipped.
EXPECTED_SKIPS = {
    "Python-3.12.5.tgz.sigstore": frozenset({"checkpoint"}),  # v0.1 bundle: SET only, no checkpoint
    "staging-rekor-v2.txt.sigstore.json": frozenset({"set"}),  # Rekor v2: TSA time instead
}


def real_cases() -> list[RealCase]:
    tables = readme_tables()
    cases = []
    for section, root in (("production", PRODUCTION_ROOT), ("staging", STAGING_ROOT)):
        for name, cells in tables[section].items():
            cases.append(
                RealCase(REAL / section / name, root, cells[0], cells[1], frozenset(), EXPECTED_SKIPS.get(name, frozenset()))
            )
    for name in tables["invalid"]:
        bundle = REAL / "invalid" / name
        try:
            identity, issuer = own_identity(bundle)
        except (KeyError, ValueError):
            identity, issuer = "nobody@example.com", "https://example.com"
        cases.append(
            RealCase(bundle, INVALID_ROOTS.get(name, STAGING_ROOT), identity, issuer, frozenset({INVALID_STEPS[name]}))
        )
    return cases


def run_case(case: RealCase, data: bytes | None = None, **overrides: Any) -> Report:
    kwargs: dict[str, Any] = {
        "trust": load_trust_root(case.trust_root),
        "artifact": case.artifact,
        "identity": case.identity,
        "issuer": case.issuer,
    }
    kwargs.update(overrides)
    return verify_bundle(case.bundle.read_bytes() if data is None else data, **kwargs)


def failed(report: Report) -> set[str]:
    return {s.name for s in report.failed}


def load(path: Path) -> dict[str, Any]:
    return copy.deepcopy(json.loads(path.read_bytes()))


def dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def flip_b64(value: str, index: int = -1) -> str:
    """Flip one bit of the decoded bytes at ``index``, re-encode."""
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()
