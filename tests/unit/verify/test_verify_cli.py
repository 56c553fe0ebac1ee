"""`tlog verify`: output, --json, and exit status 0 / 1 (a check failed) / 2 (usage)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from verify_testlib import (
    PRODUCTION_ROOT,
    REAL,
    STAGING_ROOT,
    WHEEL,
    WHEEL_ARTIFACT,
    WHEEL_IDENTITY,
    WHEEL_ISSUER,
    flip_b64,
)

from tlog.cli import main

IDENTITY = ["--cert-identity", WHEEL_IDENTITY, "--cert-oidc-issuer", WHEEL_ISSUER]
WHEEL_ARGS = [str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", str(PRODUCTION_ROOT), *IDENTITY]


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["verify", *args])


def test_production_wheel_passes() -> None:
    result = invoke(*WHEEL_ARGS)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Sigstore bundle: {WHEEL}"
    assert any(line.startswith("\u2713 checkpoint signed by rekor.sigstore.dev (c0d23d6a)") for line in lines)
    assert any(line.startswith("\u2713 SET verifies") for line in lines)
    assert lines[-1] == "OK: every check passed"
    assert len(lines) == 2 + 13  # header, 13 steps, verdict


def test_json_report() -> None:
    result = invoke(*WHEEL_ARGS, "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["kind"] == "Sigstore bundle"
    assert {s["status"] for s in doc["steps"]} == {"pass"}
    assert doc["facts"]["logIndex"] == 79605083


def test_failure_exits_1_and_names_the_step(tmp_path: Path) -> None:
    doc = json.loads(WHEEL.read_bytes())
    promise = doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    promise["signedEntryTimestamp"] = flip_b64(promise["signedEntryTimestamp"])
    bad = tmp_path / "bad.sigstore"
    bad.write_text(json.dumps(doc))
    result = invoke(str(bad), str(WHEEL_ARTIFACT), "--trust-config", str(PRODUCTION_ROOT), *IDENTITY)
    assert result.exit_code == 1
    assert "\u2717 SET: signature does not verify" in result.output.splitlines()
    assert result.output.splitlines()[-1] == "FAILED: 1 check(s) failed (set)"
    as_json = json.loads(invoke(str(bad), str(WHEEL_ARTIFACT), "--trust-config", str(PRODUCTION_ROOT), *IDENTITY, "--json").output)
    assert as_json["ok"] is False and as_json["failed"] == ["set"]


def test_invalid_real_bundle_exits_1() -> None:
    bundle = REAL / "invalid" / "bundle_invalid_version.txt.sigstore"
    result = invoke(str(bundle), str(REAL / "invalid" / "bundle_invalid_version.txt"), "--trust-config", str(STAGING_ROOT), "--cert-identity", "a@b", "--cert-oidc-issuer", "https://x")
    assert result.exit_code == 1
    assert "\u2717 bundle: unknown bundle media type 'this is completely wrong'" in result.output


def test_digest_instead_of_artifact() -> None:
    bundle = REAL / "production" / "Python-3.12.5.tgz.sigstore"
    digest = base64.b64decode(json.loads(bundle.read_bytes())["messageSignature"]["messageDigest"]["digest"]).hex()
    ok = invoke(str(bundle), "--digest", f"sha256:{digest}", "--trust-config", str(PRODUCTION_ROOT), "--cert-identity", "thomas@python.org", "--cert-oidc-issuer", "https://accounts.google.com")
    assert ok.exit_code == 0, ok.output
    bad = invoke(str(bundle), "--digest", "sha256:" + "00" * 32, "--trust-config", str(PRODUCTION_ROOT), "--cert-identity", "thomas@python.org", "--cert-oidc-issuer", "https://accounts.google.com")
    assert bad.exit_code == 1 and "\u2717 artifact" in bad.output


def test_client_trust_config_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "trust.json"
    config.write_text(json.dumps({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(PRODUCTION_ROOT.read_bytes()),
        "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
    }))  # fmt: skip
    assert invoke(str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", str(config), *IDENTITY).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(WHEEL), str(WHEEL_ARTIFACT), *IDENTITY], "--trust-config is required"),
        ([str(WHEEL), "--trust-config", str(PRODUCTION_ROOT), *IDENTITY], "ARTIFACT or its --digest"),
        ([*WHEEL_ARGS, "--digest", "sha256:" + "00" * 32], "exactly one"),
        ([str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", str(PRODUCTION_ROOT)], "--cert-identity and --cert-oidc-issuer are both required"),
        ([str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", str(PRODUCTION_ROOT), "--cert-identity", "x"], "both required"),
        ([str(WHEEL), "--digest", "sha1:00", "--trust-config", str(PRODUCTION_ROOT), *IDENTITY], "--digest"),
        ([str(WHEEL), "--digest", "sha256:00", "--trust-config", str(PRODUCTION_ROOT), *IDENTITY], "32 bytes"),
        ([*WHEEL_ARGS, "--leaf-hash", "00" * 32], "--leaf-hash applies to tlog-proofs"),
        ([str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", str(WHEEL), *IDENTITY], "--trust-config"),
        ([str(WHEEL), str(WHEEL_ARTIFACT), "--trust-config", "/nonexistent.json", *IDENTITY], "does not exist"),
        (["/nonexistent.sigstore"], "does not exist"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bad_policy_is_a_usage_error(tmp_path: Path) -> None:
    policy = tmp_path / "p"
    policy.write_text("quorum nobody\n")
    result = invoke(*WHEEL_ARGS, "--policy", str(policy))
    assert result.exit_code == 2 and "not a witness or group" in result.output


def test_tlog_proof_usage_errors(tmp_path: Path) -> None:
    proof = tmp_path / "x.tlog-proof"
    proof.write_text("c2sp.org/tlog-proof@v1\nindex 0\n\nx\n")
    entry = tmp_path / "entry"
    entry.write_bytes(b"e")
    policy = tmp_path / "p"
    policy.write_text("quorum none\n")
    assert "ARTIFACT or its --leaf-hash" in invoke(str(proof), "--policy", str(policy)).output
    assert "log key is needed" in invoke(str(proof), str(entry), "--policy", str(policy)).output
    assert "apply to Sigstore bundles" in invoke(str(proof), str(entry), "--trust-config", str(PRODUCTION_ROOT), "--digest", "sha256:00").output
    assert invoke(str(proof), "--leaf-hash", "zz", "--trust-config", str(PRODUCTION_ROOT)).exit_code == 2
    # Well-formed usage, malformed proof: a verification failure.
    assert invoke(str(proof), str(entry), "--trust-config", str(PRODUCTION_ROOT)).exit_code == 1


def test_real_process_exit_codes() -> None:
    """The console entry point, as users run it."""
    ok = subprocess.run([sys.executable, "-m", "tlog.cli", "verify", *WHEEL_ARGS], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    usage = subprocess.run([sys.executable, "-m", "tlog.cli", "verify", str(WHEEL)], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2


def test_policy_on_a_bundle_checks_its_checkpoint_cosignatures(tmp_path: Path) -> None:
    """The public bundle's checkpoint carries only Rekor's own signature: a
    policy without witnesses accepts it, one that needs a witness does not."""
    none = tmp_path / "none.policy"
    none.write_text("quorum none\n")
    ok = invoke(*WHEEL_ARGS, "--policy", str(none))
    assert ok.exit_code == 0 and "\u2713 witness cosignatures not required (quorum none)" in ok.output
    witness = tmp_path / "witness.policy"
    witness.write_text(
        "witness w1 witness.example/w1+567cde09+BG56HN0psLeP0Tr0xVmP7/TvKpcWbjym8uT7/M2AUFvx\nquorum w1\n"
    )
    bad = invoke(*WHEEL_ARGS, "--policy", str(witness), "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.output)["failed"] == ["witnesses"]
