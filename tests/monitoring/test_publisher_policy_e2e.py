"""The trusted-publisher watch end to end: a real ``tlog serve --dev-oidc``, PEP 740
attestations made by unmodified pypi-attestations / sigstore-python with tokens
from the dev issuer, and ``tlog-monitor --publisher-policy`` auditing the log."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monitor_testlib as lib
import pytest
import requests
from conftest import LiveServer

from monitor.alerts import AlertSink
from monitor.audit import audit_log
from monitor.client import LogClient
from monitor.metrics import MonitorMetrics
from monitor.publisher_watch import PublisherWatch
from monitor.state import StateStore
from tlog.ca.devoidc import DevIssuer
from tlog.config import Settings

pytestmark = pytest.mark.slow

ORIGIN = "pypi.test/log"
TRUSTED_REPO = "octo-org/octo-repo"


@dataclass
class Stack:
    server: LiveServer
    trust: Path
    dev: DevIssuer
    tmp: Path
    policy: Path
    #: (kind, package, distribution, signer identity, alert expected) per signature, in log order
    signed: list[tuple[str, str, str, str, bool]]


def make_dist(path: Path) -> Path:
    """A tiny wheel (a real zip with dist-info) or sdist (bytes are enough to attest)."""
    if path.suffix == ".whl":
        name, version = path.name.split("-")[:2]
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
            zf.writestr(f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    else:
        path.write_bytes(b"\x1f\x8b" + path.name.encode() * 10)
    return path


def github_token(dev: DevIssuer, repository: str, *, workflow: str = "release.yml", **claims: str) -> str:
    ref = f"{repository}/.github/workflows/{workflow}@refs/heads/main"
    return dev.mint(repository, type="github", extra_claims={"workflow_ref": ref, "job_workflow_ref": ref, **claims})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from pypi_attestations import Attestation, Distribution
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    tmp = tmp_path_factory.mktemp("pep740")
    settings = Settings(data_dir=tmp / "data", origin=ORIGIN)
    server = LiveServer(settings, workers=1, threads=4, extra_args=("--dev-oidc",)).start()
    try:
        trust = tmp / "trust.json"
        trust.write_text(
            subprocess.run(
                [sys.executable, "-m", "tlog.cli", "trust-config", "--url", server.url, "--data-dir", str(settings.data_dir)],
                capture_output=True, text=True, timeout=120, check=True,
            ).stdout
        )  # fmt: skip
        dev = DevIssuer.load(settings.data_dir)
        config = ClientTrustConfig.from_json(trust.read_text())
        config.force_tlog_version = 1  # our log speaks Rekor v1
        signing = SigningContext.from_trust_config(config)
        signed: list[tuple[str, str, str, str, bool]] = []

        def attest(filename: str, token: str, package: str, who: str, *, alert: bool) -> None:
            dist = Distribution.from_file(make_dist(tmp / filename))
            with signing.signer(IdentityToken(token)) as signer:
                Attestation.sign(signer, dist)
            signed.append(("dsse", package, filename, who, alert))

        def workflow_san(repo: str, workflow: str = "release.yml") -> str:
            return f"https://github.com/{repo}/.github/workflows/{workflow}@refs/heads/main"

        # The trusted publisher, for both distributions of a release.
        trusted = github_token(dev, TRUSTED_REPO, environment="pypi")
        attest("sampleproject-1.0-py3-none-any.whl", trusted, "sampleproject", workflow_san(TRUSTED_REPO), alert=False)
        attest("sampleproject-1.0.tar.gz", trusted, "sampleproject", workflow_san(TRUSTED_REPO), alert=False)
        # Impostors: another repository of the same name, another workflow of the
        # right repository, the right workflow outside its environment, an e-mail.
        attest("sampleproject-1.0-py3-none-any.whl", github_token(dev, "evil-org/octo-repo", environment="pypi"),
               "sampleproject", workflow_san("evil-org/octo-repo"), alert=True)  # fmt: skip
        attest("sampleproject-1.1-py3-none-any.whl", github_token(dev, TRUSTED_REPO, workflow="nightly.yml", environment="pypi"),
               "sampleproject", workflow_san(TRUSTED_REPO, "nightly.yml"), alert=True)  # fmt: skip
        attest("sampleproject-1.1.tar.gz", github_token(dev, TRUSTED_REPO), "sampleproject", workflow_san(TRUSTED_REPO), alert=True)
        attest("SampleProject-1.2.tar.gz", dev.mint("mallory@example.com"), "sampleproject", "mallory@example.com", alert=True)
        # An e-mail publisher signing its own package; anyone signing an unwatched one.
        attest("otherpkg-2.0-py3-none-any.whl", dev.mint("bob@example.com"), "otherpkg", "bob@example.com", alert=False)
        attest("unwatched-1.0-py3-none-any.whl", dev.mint("mallory@example.com"), "unwatched", "mallory@example.com", alert=False)
        # A plain signature over a wheel's bytes: a hashedrekord names no file.
        with signing.signer(IdentityToken(dev.mint("mallory@example.com"))) as signer:
            signer.sign_artifact((tmp / "sampleproject-1.0-py3-none-any.whl").read_bytes())
        signed.append(("hashedrekord", "sampleproject", "", "mallory@example.com", False))

        policy = tmp / "policy.yaml"
        policy.write_text(
            f"""\
packages:
  SampleProject:
    - kind: github
      repository: {TRUSTED_REPO}
      workflow: release.yml
      environment: pypi
      issuer: {dev.github_issuer}
  otherpkg:
    - kind: identity
      issuer: {dev.email_issuer}
      identity: bob@example.com
"""
        )
        yield Stack(server, trust, dev, tmp, policy, signed)
    finally:
        server.stop()


def expected_alerts(stack: Stack) -> list[tuple[int, str, str, str]]:
    """(log index, package, distribution, signer) of every signature the policy forbids."""
    return [(i, package, name, who) for i, (_kind, package, name, who, alert) in enumerate(stack.signed) if alert]


def dsse_indexes(stack: Stack) -> list[int]:
    return [i for i, (kind, *_rest) in enumerate(stack.signed) if kind == "dsse"]


def seen(alerts: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    return [
        (a["log_index"], a["evidence"]["package"], a["evidence"]["distribution"], a["evidence"]["signer"]["identity"])
        for a in alerts
    ]


def run(stack: Stack, state: Path, *extra: str, url: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    return lib.run_monitor(
        "--log", url or stack.server.url, "--state-dir", str(state), "--once",
        "--trust-config", str(stack.trust), "--publisher-policy", str(stack.policy), *extra,
    )  # fmt: skip


def test_only_unexpected_publishers_are_reported(stack: Stack) -> None:
    want = expected_alerts(stack)
    assert len(want) == 4  # evil-org, nightly.yml, no environment, mallory
    state = stack.tmp / "state-tiles"
    status, alerts, stderr = run(stack, state)
    assert status == 0, stderr
    assert all(a["type"] == "unexpected_publisher" for a in alerts), alerts
    assert seen(alerts) == want, stderr
    for alert in alerts:
        ev = alert["evidence"]
        assert alert["origin"] == ev["origin"] == ORIGIN and alert["log"] == stack.server.url
        assert len(ev["uuid"]) == 80 and ev["subject_digest"]["sha256"]
        assert ev["expected_publishers"][0]["repository"] == TRUSTED_REPO
        entry = requests.get(f"{stack.server.url}/api/v1/log/entries/{ev['uuid']}", timeout=10).json()
        assert entry[ev["uuid"]]["logIndex"] == alert["log_index"]

    # Findings are reported once: the next pass starts where this one ended.
    status, alerts, stderr = run(stack, state)
    assert (status, alerts) == (0, []), stderr

    # The Rekor API (entries from entries/retrieve, not tiles) finds the same.
    status, alerts, stderr = run(stack, stack.tmp / "state-rekor", "--api", "rekor")
    assert status == 0 and seen(alerts) == want, stderr


class RecordingSession(requests.Session):
    """Records the logIndexes of every entries/retrieve request."""

    def __init__(self) -> None:
        super().__init__()
        self.retrieved: list[list[int]] = []
        self._lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if str(url).endswith("/api/v1/log/entries/retrieve"):
            with self._lock:
                self.retrieved.append(list(kwargs["json"]["logIndexes"]))
        return super().request(method, url, *args, **kwargs)


def test_attestations_are_fetched_for_dsse_entries_only_in_one_batch(stack: Stack) -> None:
    session = RecordingSession()
    client = LogClient(stack.server.url, session, mode="tiles")
    metrics = MonitorMetrics()
    alerts = AlertSink(stack.tmp / "inproc-alerts.jsonl")
    alerts.listeners.append(metrics.on_alert)
    try:
        result = audit_log(
            client, StateStore(stack.tmp / "state-inproc"), None, None, alerts,
            metrics=metrics, checks=[PublisherWatch.load(stack.policy)],
        )  # fmt: skip
    finally:
        alerts.close()
    assert result.status == "verified", result.message
    assert session.retrieved == [dsse_indexes(stack)]
    written = [json.loads(line) for line in (stack.tmp / "inproc-alerts.jsonl").read_text().splitlines()]
    assert seen(written) == expected_alerts(stack)
    assert b'tlog_monitor_alerts_total{type="unexpected_publisher"} 4.0' in metrics.render()


def test_a_log_serving_another_statement_is_caught(stack: Stack) -> None:
    forged = base64.b64encode(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "harmless-1.0.tar.gz", "digest": {"sha256": "00" * 32}}],
                "predicateType": "https://docs.pypi.org/attestations/publish/v1",
                "predicate": None,
            }
        ).encode()
    ).decode()

    def swap(path: str, body: bytes) -> bytes:
        if path != "/api/v1/log/entries/retrieve":
            return body
        answer = json.loads(body)
        for item in answer:
            for entry in item.values():
                if "attestation" in entry:
                    entry["attestation"]["data"] = forged
        return json.dumps(answer).encode()

    with lib.tampering_proxy(stack.server.url, swap) as url:
        status, alerts, stderr = run(stack, stack.tmp / "state-forged", url=url)
    assert status == 1, stderr  # evidence against the log: --once fails
    assert [(a["type"], a["log_index"]) for a in alerts] == [("attestation_mismatch", i) for i in dsse_indexes(stack)]
    assert all(a["evidence"]["payload_hash"] != a["evidence"]["attestation_sha256"] for a in alerts)


def test_a_log_that_lost_a_statement_is_reported(stack: Stack) -> None:
    def drop(path: str, body: bytes) -> bytes:
        if path != "/api/v1/log/entries/retrieve":
            return body
        answer = json.loads(body)
        for item in answer:
            for entry in item.values():
                if entry["logIndex"] == 0:
                    entry.pop("attestation", None)
        return json.dumps(answer).encode()

    with lib.tampering_proxy(stack.server.url, drop) as url:
        status, alerts, stderr = run(stack, stack.tmp / "state-dropped", url=url)
    assert status == 0, stderr
    assert [a["type"] for a in alerts] == ["attestation_missing"] + ["unexpected_publisher"] * 4
    assert alerts[0]["log_index"] == 0 and alerts[0]["evidence"]["payload_hash"]
