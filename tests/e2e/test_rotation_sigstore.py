"""A key rotation seen by unmodified sigstore-python: bundles signed before and
after `tlog rotate` both verify against the trust config exported afterwards
(which lists both shard keys), with sigstore-python and with `tlog verify`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import LiveServer
from tlog.config import Settings

pytestmark = pytest.mark.slow


def tlog_cli(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def sigstore(trust: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigstore", "--trust-config", str(trust), *args], capture_output=True, text=True, timeout=180
    )


def sign(server: LiveServer, data_dir: Path, trust: Path, artifact: Path, who: str) -> dict:  # type: ignore[type-arg]
    token = tlog_cli("dev-token", "--data-dir", str(data_dir), "--subject", who).strip()
    for attempt in range(3):  # a busy CI machine can make the log answer 503 now and then
        res = sigstore(trust, "sign", "--identity-token", token, str(artifact))
        if res.returncode == 0:
            break
        time.sleep(1)
    assert res.returncode == 0, res.stderr
    return json.loads(Path(str(artifact) + ".sigstore.json").read_text())  # type: ignore[no-any-return]


def test_bundles_from_both_shards_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, origin="rotate.example/log-1")
    server = LiveServer(settings, workers=1, extra_args=("--dev-oidc",)).start()
    try:
        trust_before = tmp_path / "trust-before.json"
        trust_before.write_text(tlog_cli("trust-config", "--url", server.url, "--data-dir", str(data_dir)))
        old_artifact = tmp_path / "old.txt"
        old_artifact.write_text("signed before the rotation\n")
        old = sign(server, data_dir, trust_before, old_artifact, "alice@example.com")
        second = tmp_path / "second.txt"
        second.write_text("also before\n")
        sign(server, data_dir, trust_before, second, "alice@example.com")
    finally:
        server.stop()

    out = tlog_cli("rotate", "--data-dir", str(data_dir), "--origin", "rotate.example/log-2")
    assert "frozen: rotate.example/log-1" in out

    # Same port: the dev issuer's URL (in the first certificate) follows the public URL.
    restarted = LiveServer(settings.replace(origin="rotate.example/log-2"), workers=1, extra_args=("--dev-oidc",))
    restarted.port, restarted.url = server.port, server.url
    restarted.start()
    try:
        trust = tmp_path / "trust.json"
        trust.write_text(tlog_cli("trust-config", "--url", restarted.url, "--data-dir", str(data_dir)))
        assert len(json.loads(trust.read_text())["trustedRoot"]["tlogs"]) == 2
        new_artifact = tmp_path / "new.txt"
        new_artifact.write_text("signed after the rotation\n")
        new = sign(restarted, data_dir, trust, new_artifact, "bob@example.com")

        old_entry, new_entry = old["verificationMaterial"]["tlogEntries"][0], new["verificationMaterial"]["tlogEntries"][0]
        assert old_entry["logId"] != new_entry["logId"]
        assert int(new_entry["logIndex"]) == 2 and int(new_entry["inclusionProof"]["logIndex"]) == 0
        assert "rotate.example/log-2" in new_entry["inclusionProof"]["checkpoint"]["envelope"]

        info = requests.get(restarted.url + "/api/v1/log", timeout=10).json()
        assert [s["treeSize"] for s in info["inactiveShards"]] == [2]

        issuer = restarted.url + "/oidc"
        for artifact, who in ((old_artifact, "alice@example.com"), (new_artifact, "bob@example.com")):
            ok = sigstore(trust, "verify", "identity", "--cert-identity", who, "--cert-oidc-issuer", issuer, str(artifact))
            assert ok.returncode == 0, (artifact, ok.stderr)
            res = subprocess.run(
                [sys.executable, "-m", "tlog.cli", "verify", str(artifact) + ".sigstore.json", str(artifact),
                 "--trust-config", str(trust), "--cert-identity", who, "--cert-oidc-issuer", issuer],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert res.returncode == 0, res.stdout + res.stderr

        # The pre-rotation trust config does not know the new shard's key.
        refused = sigstore(trust_before, "verify", "identity", "--cert-identity", "bob@example.com", "--cert-oidc-issuer", issuer, str(new_artifact))
        assert refused.returncode != 0
    finally:
        restarted.stop()
