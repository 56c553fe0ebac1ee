"""The monitor against the whole stack: an identity signing through the CA with the
real sigstore client is reported by `tlog-monitor --watch`, and a forked log is
refused by a witness that its other branch already convinced."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import monitor_testlib as lib
from conftest import LiveServer
from witness_testlib import WitnessServer
from tlog.api.state import Services
from tlog.config import Settings
from monitor.witness import vkey

pytestmark = pytest.mark.slow


def tlog_cli(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_watched_identity_signing_through_the_ca_is_reported(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", origin="watch.example/log")
    server = LiveServer(settings, extra_args=("--dev-oidc",)).start()
    try:
        trust = tmp_path / "trust.json"
        trust.write_text(tlog_cli("trust-config", "--url", server.url, "--data-dir", str(settings.data_dir)))
        signed_index = {}
        for who in ("bystander@example.com", "release-bot@example.com", "other@example.com"):
            artifact = tmp_path / f"{who}.txt"
            artifact.write_text(f"signed by {who}\n")
            token = tlog_cli("dev-token", "--data-dir", str(settings.data_dir), "--subject", who).strip()
            res = subprocess.run(
                [sys.executable, "-m", "sigstore", "--trust-config", str(trust), "sign", "--identity-token", token, str(artifact)],
                capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
            bundle = json.loads((tmp_path / f"{who}.txt.sigstore.json").read_text())
            signed_index[who] = int(bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"])

        watch = tmp_path / "watch.yaml"
        watch.write_text(
            "monitoredValues:\n"
            "  certIdentities:\n"
            "    - certSubject: ^release-bot@example\\.com$\n"
            f"      issuers: [^{server.url}/oidc$]\n"
        )
        alerts = tmp_path / "alerts.jsonl"
        res = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "--log", server.url, "--state-dir", str(tmp_path / "state"),
             "--once", "--watch", str(watch), "--alerts", str(alerts)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr  # a match is news, not a verification failure
        found = [json.loads(line) for line in alerts.read_text().splitlines()]
        assert [a["type"] for a in found] == ["identity_match"]
        assert found[0]["log_index"] == signed_index["release-bot@example.com"]
        assert "release-bot@example.com" in json.dumps(found[0]["evidence"])
    finally:
        server.stop()


def test_forked_log_is_refused_by_the_witness(tmp_path: Path) -> None:
    """Same keys, two histories from a common prefix: the witness cosigns the first
    branch it sees and refuses the other, which then carries no cosignature."""
    branch_a = lib.build_log(tmp_path / "a", 20)
    branch_b = lib.fork_log(branch_a.data_dir, tmp_path / "b")
    lib.append(branch_a, 5)
    lib.append(branch_b, 9)
    svc = Services.open(branch_a, migrate=False)
    log_vkeys = svc.log.vkeys
    svc.engine.dispose()
    witness = WitnessServer(tmp_path / "witness", [log_vkeys[1]])
    witnesses = tmp_path / "witnesses.txt"
    witnesses.write_text(f"{witness.url} {vkey(witness.key)}\n")
    try:
        a = LiveServer(branch_a, extra_args=("--witnesses", str(witnesses))).start()
        try:
            deadline = time.monotonic() + 20
            while witness.key.name not in requests.get(a.url + "/checkpoint", timeout=10).text:
                assert time.monotonic() < deadline, "branch A was never cosigned"
                time.sleep(0.2)
        finally:
            a.stop()
        b = LiveServer(branch_b, extra_args=("--witnesses", str(witnesses))).start()
        try:
            time.sleep(3)  # several collection rounds
            assert witness.key.name not in requests.get(b.url + "/checkpoint", timeout=10).text
            assert "422" in b.log()  # the collector logs the witness's refusal
        finally:
            b.stop()
    finally:
        witness.stop()
