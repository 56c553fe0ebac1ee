"""monitor.audit against real logs: growth, restarts, forks, bad keys, tampered entries."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import monitor_testlib as lib
import speclient

from monitor.alerts import AlertSink
from monitor.audit import audit_log
from monitor.client import LogClient
from monitor.metrics import MonitorMetrics
from monitor.state import StateStore
from monitor.verify import Pins
from tlog.config import Settings


@dataclass
class Env:
    settings: Settings
    server: lib.InProcessServer
    store: StateStore
    alerts_path: Path

    def client(self, mode: str = "auto", session: Any = None, url: str | None = None) -> LogClient:
        return LogClient(url or self.server.url, session, mode=mode)

    def audit(self, client: LogClient | None = None, pins: Pins | None = None, watcher: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        return audit_log(client or self.client(), self.store, pins, watcher, AlertSink(self.alerts_path), **kw)

    def alerts(self) -> list[dict[str, Any]]:
        if not self.alerts_path.exists():
            return []
        return [json.loads(line) for line in self.alerts_path.read_text().splitlines()]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = lib.build_log(tmp_path / "log", 0)
    e = Env(settings, lib.serve_fast(settings), StateStore(tmp_path / "state"), tmp_path / "alerts.jsonl")
    try:
        yield e
    finally:
        e.server.stop()  # tests may swap in another server on the same port


@pytest.mark.parametrize("mode", ["tiles", "rekor"])
def test_empty_log_then_growth_across_passes(env: Env, mode: str) -> None:
    client = env.client(mode)
    first = env.audit(client)
    assert first.status == "verified" and first.new_size == 0 and first.entries == 0
    state = env.store.get(lib.ORIGIN)
    assert state is not None and state.size == 0 and state.url == env.server.url
    (pinned,) = state.vkeys  # the log's ECDSA key, pinned on first use under the origin's name
    assert pinned.startswith(lib.ORIGIN + "+")

    assert env.audit(client).status == "unchanged"  # not grown
    for grow in (1, 255, 300, 1):  # across bundle boundaries, partial bundles, single entries
        size = lib.append(env.settings, grow)
        result = env.audit(client)
        assert result.status == "verified", result.message
        assert (result.old_size, result.new_size, result.entries) == (size - grow, size, grow)
    state = env.store.get(lib.ORIGIN)
    assert state is not None and state.size == 557 and state.entries_audited == 557
    assert env.alerts() == []


def test_restart_resumes_from_the_saved_state(env: Env, tmp_path: Path) -> None:
    lib.append(env.settings, 700)
    session = lib.CountingSession()
    assert env.audit(env.client(session=session)).status == "verified"
    assert session.count("tile/entries/") == 3  # 000, 001, 002.p/188

    lib.append(env.settings, 100)
    # A new process: new store object and client on the same state directory.
    store = StateStore(tmp_path / "state")
    session = lib.CountingSession()
    result = audit_log(LogClient(env.server.url, session), store, None, None, AlertSink(env.alerts_path))
    assert result.status == "verified" and (result.old_size, result.new_size) == (700, 800)
    # Only the bundle holding the new entries (002.p/188 grew into 003.p/32 via 002), never from zero.
    assert sorted(p for p in session.paths if p.startswith("tile/entries/")) == ["tile/entries/002", "tile/entries/003.p/32"]
    assert session.count("api/v1/log/publicKey") == 0  # the key is pinned, not fetched again
    state = store.get(lib.ORIGIN)
    assert state is not None and state.entries_audited == 800


def test_mode_switch_keeps_verifying_the_same_tree(env: Env) -> None:
    lib.append(env.settings, 300)
    assert env.audit(env.client("rekor")).status == "verified"
    lib.append(env.settings, 50)
    assert env.audit(env.client("tiles")).status == "verified"
    lib.append(env.settings, 50)
    assert env.audit(env.client("rekor")).new_size == 400


def test_checkpoint_signed_by_another_key_is_bad_signature(env: Env, tmp_path: Path) -> None:
    lib.append(env.settings, 10)
    assert env.audit().status == "verified"
    env.server.stop()
    # Same origin, same URL, fresh keys: an impostor (or a silent key change).
    impostor = lib.build_log(tmp_path / "impostor", 12)
    env.server = lib.serve_fast(impostor, port=env.server.port)
    result = env.audit()
    assert result.status == "failed" and result.alert_type == "bad_signature"
    (alert,) = env.alerts()
    assert alert["type"] == "bad_signature" and alert["origin"] == lib.ORIGIN and alert["log"] == env.server.url
    assert alert["evidence"]["checkpoint"].startswith(lib.ORIGIN + "\n12\n")
    state = env.store.get(lib.ORIGIN)
    assert state is not None and state.size == 10  # not advanced, key not replaced


def test_tampered_checkpoint_signature(env: Env) -> None:
    lib.append(env.settings, 3)

    def flip_signature(path: str, body: bytes) -> bytes:
        if path != "/checkpoint":
            return body
        text, sigs = body.split(b"\n\n")
        first, rest = sigs.split(b"\n", 1)
        name, b64 = first.rsplit(b" ", 1)
        raw = bytearray(base64.b64decode(b64))
        raw[-1] ^= 1
        return text + b"\n\n" + name + b" " + base64.b64encode(bytes(raw)) + b"\n" + rest

    with lib.tampering_proxy(env.server.url, flip_signature) as url:
        result = env.audit(env.client(url=url))
    assert result.alert_type == "bad_signature"
    assert env.store.get(lib.ORIGIN) is None


def test_trust_config_pins_the_key(env: Env, tmp_path: Path) -> None:
    lib.append(env.settings, 5)
    pem = env.client().public_key_pem()
    spki = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    session = lib.CountingSession()
    assert env.audit(env.client(session=session), Pins(spkis=(spki,))).status == "verified"
    assert session.count("api/v1/log/publicKey") == 0  # pinned from the config, not fetched

    other = lib.build_log(tmp_path / "other", 0)
    other_pem = (other.data_dir / "log-ecdsa-p256.pem").read_bytes()
    other_spki = serialization.load_pem_private_key(other_pem, None).public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fresh = StateStore(tmp_path / "fresh-state")
    result = audit_log(env.client(), fresh, Pins(spkis=(other_spki,)), None, AlertSink(env.alerts_path))
    assert result.alert_type == "bad_signature"
    assert fresh.all() == []


@pytest.mark.parametrize("mode", ["tiles", "rekor"])
def test_tampered_entry_bundle_is_detected(env: Env, mode: str) -> None:
    """A server whose entries do not match its signed tree: one byte of entry 300 changed."""
    lib.append(env.settings, 520)
    target = 300

    def tamper(path: str, body: bytes) -> bytes:
        if path == "/tile/entries/001":  # entries 256..511, each prefixed by a uint16 length
            pos = 0
            for _ in range(target - 256):
                pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
            i = pos + 2 + 40
            return body[:i] + bytes([body[i] ^ 0x20]) + body[i + 1 :]
        if path == "/api/v1/log/entries/retrieve":
            items = json.loads(body)
            for item in items:
                (entry,) = item.values()
                if entry["logIndex"] == target:
                    raw = bytearray(base64.b64decode(entry["body"]))
                    raw[40] ^= 0x20
                    entry["body"] = base64.b64encode(bytes(raw)).decode()
            return json.dumps(items).encode()
        return body

    with lib.tampering_proxy(env.server.url, tamper) as url:
        result = env.audit(env.client(mode, url=url))
    assert result.status == "failed" and result.alert_type == "inconsistent"
    (alert,) = env.alerts()
    assert alert["evidence"]["check"] == "entries"
    if mode == "tiles":  # located through the log's own level-0 tile
        assert alert["log_index"] == target
    assert env.store.get(lib.ORIGIN) is None  # nothing saved after a failed pass
    # The honest server passes.
    assert env.audit().status == "verified"


def test_forked_log_is_inconsistent(tmp_path: Path) -> None:
    """Same keys and origin, two histories from a common prefix: every ordering of sizes is caught."""
    base = lib.build_log(tmp_path / "base", 300)
    forks = {name: lib.fork_log(base.data_dir, tmp_path / name) for name in ("a", "bigger", "same", "smaller")}
    lib.append(forks["a"], 50)
    lib.append(forks["bigger"], 80)
    lib.append(forks["same"], 50)
    lib.append(forks["smaller"], 10)
    server = lib.serve_fast(forks["a"])
    port = server.port
    try:
        store = StateStore(tmp_path / "state")
        assert audit_log(LogClient(server.url), store, None, None, AlertSink(tmp_path / "a.jsonl")).status == "verified"
        checks = {}
        for name in ("bigger", "same", "smaller"):
            server.stop()
            server = lib.serve_fast(forks[name], port=port)
            alerts = tmp_path / f"{name}.jsonl"
            result = audit_log(LogClient(server.url), store, None, None, AlertSink(alerts))
            assert result.alert_type == "inconsistent", name
            (alert,) = [json.loads(line) for line in alerts.read_text().splitlines()]
            checks[name] = alert["evidence"]["check"]
            state = store.get(lib.ORIGIN)
            assert state is not None and state.size == 350  # never advanced onto a fork
            # Both checkpoints in the evidence carry the log's valid signature.
            key = speclient.LogKey.from_pem(LogClient(server.url).public_key_pem())
            old = speclient.verify_checkpoint(alert["evidence"]["old_checkpoint"], key)
            new = speclient.verify_checkpoint(alert["evidence"]["new_checkpoint"], key)
            assert old.origin == new.origin == lib.ORIGIN and old.root != new.root
    finally:
        server.stop()
    assert checks == {"bigger": "consistency_proof", "same": "same_size_different_root", "smaller": "rollback"}


class FakeMatch:
    def __init__(self, index: int) -> None:
        self.index = index

    def to_alert(self) -> dict[str, Any]:
        return {"log_index": self.index, "message": f"watched key in entry {self.index}", "evidence": {"rule": "r0"}}


class EveryHundredth:
    def __init__(self) -> None:
        self.seen = 0

    def match(self, body: bytes, log_index: int) -> list[FakeMatch]:
        self.seen += 1
        assert json.loads(body)["kind"] == "hashedrekord"
        return [FakeMatch(log_index)] if log_index % 100 == 0 else []


def test_watcher_sees_every_entry_once_and_matches_become_alerts(env: Env) -> None:
    lib.append(env.settings, 250)
    watcher = EveryHundredth()
    metrics = MonitorMetrics()
    result = env.audit(watcher=watcher, metrics=metrics)
    assert result.status == "verified" and watcher.seen == 250
    lib.append(env.settings, 60)
    assert env.audit(watcher=watcher).status == "verified" and watcher.seen == 310
    alerts = env.alerts()
    assert [(a["type"], a["log_index"], a["origin"]) for a in alerts] == [
        ("identity_match", i, lib.ORIGIN) for i in (0, 100, 200, 300)
    ]
    assert alerts[0]["evidence"] == {"rule": "r0"} and alerts[0]["log"] == env.server.url
    rendered = metrics.render().decode()
    assert f'tlog_monitor_verified_size{{origin="{lib.ORIGIN}"}} 250.0' in rendered
    assert f'tlog_monitor_lag_entries{{origin="{lib.ORIGIN}"}} 0.0' in rendered


def test_log_moves_to_another_url(env: Env) -> None:
    lib.append(env.settings, 20)
    assert env.audit().status == "verified"
    with lib.tampering_proxy(env.server.url, lambda _path, body: body) as mirror:
        result = env.audit(env.client(url=mirror))
        assert result.status == "unchanged"
        state = env.store.get(lib.ORIGIN)
        assert state is not None and state.url == mirror and state.size == 20


def test_another_log_at_a_pinned_url_is_refused(env: Env, tmp_path: Path) -> None:
    """Same keys, new origin, at the URL we follow: the pins of that URL (named
    after the old origin) do not cover it, and nothing is trusted on first use."""
    assert env.audit().status == "verified"
    env.server.stop()
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    for name in ("log-ecdsa-p256.pem", "log-ed25519.pem"):
        (other_dir / name).write_bytes((env.settings.data_dir / name).read_bytes())
        (other_dir / name).chmod(0o600)
    other = lib.build_log(other_dir, 5, origin="other.test/log")
    env.server = lib.serve_fast(other, port=env.server.port)
    result = env.audit()
    assert result.alert_type == "bad_signature" and result.origin == "other.test/log"
    assert [s.origin for s in env.store.all()] == [lib.ORIGIN]


def test_first_contact_without_a_public_key_endpoint(env: Env) -> None:
    def no_key(path: str, body: bytes) -> bytes | None:
        return None if path == "/api/v1/log/publicKey" else body

    with lib.tampering_proxy(env.server.url, no_key) as url:
        result = env.audit(env.client(url=url))
    assert result.status == "protocol_error" and "--log-key" in result.message
    assert [a["type"] for a in env.alerts()] == ["protocol_error"]
