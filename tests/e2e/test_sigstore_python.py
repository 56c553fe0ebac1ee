"""Unmodified sigstore-python 4.5.1 and pypi-attestations 0.0.30 against a real `tlog serve`.

Everything crosses real HTTP on loopback: the client asks our CA for a
certificate with a token from the development issuer, submits to our log,
and verifies the bundle offline against the trust config `tlog trust-config`
exports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import LiveServer
from tlog.config import Settings

pytestmark = pytest.mark.slow

SIGSTORE = [sys.executable, "-m", "sigstore"]


def tlog_cli(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def sigstore(trust: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGSTORE, "--trust-config", str(trust), *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One server (SQLite) with the CA and the dev issuer, and its trust config."""
    tmp = tmp_path_factory.mktemp("stack")
    settings = Settings(data_dir=tmp / "data", origin="e2e.example/log")
    server = LiveServer(settings, extra_args=("--dev-oidc",)).start()
    # The dev issuer's URL follows the server's public URL, which has the random port.
    trust = tmp / "trust.json"
    trust.write_text(tlog_cli("trust-config", "--url", server.url, "--data-dir", str(settings.data_dir)))
    try:
        yield {"server": server, "trust": trust, "data_dir": settings.data_dir, "tmp": tmp}
    finally:
        server.stop()


def dev_token(stack, subject: str, kind: str = "email") -> str:  # type: ignore[no-untyped-def]
    return tlog_cli("dev-token", "--data-dir", str(stack["data_dir"]), "--subject", subject, "--type", kind).strip()


def test_sign_and_verify_identity(stack) -> None:  # type: ignore[no-untyped-def]
    artifact = stack["tmp"] / "artifact.txt"
    artifact.write_text("hello, transparency\n")
    token = dev_token(stack, "alice@example.com")
    signed = sigstore(stack["trust"], "sign", "--identity-token", token, str(artifact))
    assert signed.returncode == 0, signed.stderr
    bundle = json.loads((stack["tmp"] / "artifact.txt.sigstore.json").read_text())
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "hashedrekord"

    issuer = stack["server"].url + "/oidc"
    ok = sigstore(stack["trust"], "verify", "identity", "--cert-identity", "alice@example.com", "--cert-oidc-issuer", issuer, str(artifact))
    assert ok.returncode == 0, ok.stderr

    wrong_identity = sigstore(stack["trust"], "verify", "identity", "--cert-identity", "mallory@example.com", "--cert-oidc-issuer", issuer, str(artifact))
    assert wrong_identity.returncode != 0

    wrong_issuer = sigstore(stack["trust"], "verify", "identity", "--cert-identity", "alice@example.com", "--cert-oidc-issuer", "https://accounts.google.com", str(artifact))
    assert wrong_issuer.returncode != 0

    tampered = stack["tmp"] / "tampered.txt"
    tampered.write_text("hello, transparency!\n")
    bad = sigstore(
        stack["trust"], "verify", "identity", "--bundle", str(stack["tmp"] / "artifact.txt.sigstore.json"),
        "--cert-identity", "alice@example.com", "--cert-oidc-issuer", issuer, str(tampered),
    )  # fmt: skip
    assert bad.returncode != 0


def test_attest_and_verify(stack) -> None:  # type: ignore[no-untyped-def]
    artifact = stack["tmp"] / "pkg.tar.gz"
    artifact.write_bytes(b"\x1f\x8b" + b"fake tarball" * 10)
    predicate = stack["tmp"] / "predicate.json"
    predicate.write_text(
        json.dumps(
            {
                "buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}},
                "runDetails": {"builder": {"id": "https://example.com/ci"}},
            }
        )
    )
    token = dev_token(stack, "bob@example.com")
    res = sigstore(
        stack["trust"], "attest", "--identity-token", token,
        "--predicate-type", "https://slsa.dev/provenance/v1", "--predicate", str(predicate), str(artifact),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    bundle = json.loads((stack["tmp"] / "pkg.tar.gz.sigstore.json").read_text())
    tlog_entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert tlog_entry["kindVersion"]["kind"] == "dsse"
    ok = sigstore(stack["trust"], "verify", "identity", "--cert-identity", "bob@example.com", "--cert-oidc-issuer", stack["server"].url + "/oidc", str(artifact))
    assert ok.returncode == 0, ok.stderr

    # The log returns, as the entry's attestation, exactly the statement sigstore-python signed.
    resp = requests.get(stack["server"].url + "/api/v1/log/entries", params={"logIndex": tlog_entry["logIndex"]}, timeout=10)
    (logged,) = resp.json().values()
    signed = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    assert base64.b64decode(logged["attestation"]["data"]) == signed
    subject = json.loads(signed)["subject"]
    assert subject[0]["digest"]["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()


def test_github_actions_identity(stack) -> None:  # type: ignore[no-untyped-def]
    artifact = stack["tmp"] / "gh.txt"
    artifact.write_text("built in CI\n")
    token = dev_token(stack, "octo-org/octo-repo", "github")
    res = sigstore(stack["trust"], "sign", "--identity-token", token, str(artifact))
    assert res.returncode == 0, res.stderr
    identity = "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    ok = sigstore(stack["trust"], "verify", "identity", "--cert-identity", identity, "--cert-oidc-issuer", stack["server"].url + "/oidc/github", str(artifact))
    assert ok.returncode == 0, ok.stderr


def make_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("sampleproject/__init__.py", "VERSION = '1.0'\n")
        zf.writestr("sampleproject-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: sampleproject\nVersion: 1.0\n")
    return path


def test_pep740_attestation_with_pypi_attestations(stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pypi_attestations import Attestation, Distribution
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier, policy

    wheel = make_wheel(stack["tmp"] / "sampleproject-1.0-py3-none-any.whl")
    dist = Distribution.from_file(wheel)
    config = ClientTrustConfig.from_json(stack["trust"].read_text())
    config.force_tlog_version = 1
    ctx = SigningContext.from_trust_config(config)
    with ctx.signer(IdentityToken(dev_token(stack, "octo-org/octo-repo", "github"))) as signer:
        attestation = Attestation.sign(signer, dist)

    # pypi-attestations can only verify against the public instances; hand it ours.
    verifier = Verifier(trusted_root=config.trusted_root)
    monkeypatch.setattr("pypi_attestations._impl.Verifier.production", staticmethod(lambda *a, **k: verifier))
    identity = policy.Identity(
        identity="https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
        issuer=stack["server"].url + "/oidc/github",
    )
    predicate_type, _ = attestation.verify(identity, dist)
    assert predicate_type == "https://docs.pypi.org/attestations/publish/v1"

    # The same attestation does not verify for another distribution.
    other = make_wheel(stack["tmp"] / "sampleproject-1.1-py3-none-any.whl")
    with pytest.raises(Exception):
        attestation.verify(identity, Distribution.from_file(other))
