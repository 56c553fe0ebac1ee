"""``tlog-monitor`` as cron and CI run it: subprocesses, exit statuses, JSON alert lines."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from werkzeug.serving import make_server

import monitor_testlib as lib
import speclient
from conftest import free_port

from monitor.state import StateStore
from tlog.note import Ed25519Signer, verifier_from_vkey, vkey


def test_forked_log_is_caught_by_once(tmp_path: Path) -> None:
    """The acceptance test: one log, copied (keys and database), two different
    continuations; the monitor follows copy A, then the same URL serves copy B."""
    base = lib.build_log(tmp_path / "a", 200)
    copy_b = lib.fork_log(base.data_dir, tmp_path / "b")
    lib.append(base, 30)
    lib.append(copy_b, 60)
    state = str(tmp_path / "state")

    server = lib.serve(base)
    port = server.port
    try:
        status, alerts, stderr = lib.run_monitor("--log", server.url, "--state-dir", state, "--once")
        assert (status, alerts) == (0, []), stderr
    finally:
        server.stop()

    server = lib.serve(copy_b, port=port)  # same URL, same origin, same keys, other history
    try:
        status, alerts, stderr = lib.run_monitor("--log", server.url, "--state-dir", state, "--once")
        assert status == 1, stderr
        (alert,) = alerts
        assert alert["type"] == "inconsistent" and alert["origin"] == lib.ORIGIN and alert["log"] == server.url
        assert alert["time"].endswith("Z") and "does not verify" in alert["message"]
        key = speclient.LogKey.from_pem(requests.get(server.url + "/api/v1/log/publicKey", timeout=10).content)
        old = speclient.verify_checkpoint(alert["evidence"]["old_checkpoint"], key)
        new = speclient.verify_checkpoint(alert["evidence"]["new_checkpoint"], key)
        assert (old.size, new.size) == (230, 260)
        assert alert["evidence"]["proof"]  # the proof that failed, for anyone to re-check

        # Still failing on the next run: the state never moved onto the fork.
        status, alerts, _ = lib.run_monitor("--log", server.url, "--state-dir", state, "--once", "--api", "rekor")
        assert status == 1 and [a["type"] for a in alerts] == ["inconsistent"]
    finally:
        server.stop()
    saved = StateStore(state).get(lib.ORIGIN)
    assert saved is not None and saved.size == 230


def test_unreachable_log_alerts_after_the_threshold(tmp_path: Path) -> None:
    good = lib.serve(lib.build_log(tmp_path / "log", 20))
    down = f"http://127.0.0.1:{free_port()}"
    try:
        started = time.monotonic()
        status, alerts, stderr = lib.run_monitor(
            "--log", down, "--log", good.url, "--state-dir", str(tmp_path / "state"), "--once",
            "--unreachable-threshold", "3", "--retry-delay", "0.05", "--timeout", "2", "-v",
        )  # fmt: skip
    finally:
        good.stop()
    assert status == 3, stderr
    (alert,) = alerts
    assert alert["type"] == "unreachable" and alert["log"] == down and alert["evidence"]["attempts"] == 3
    assert stderr.count("unreachable (attempt") == 3
    assert time.monotonic() - started < 30
    # The reachable log was still audited and saved.
    saved = StateStore(tmp_path / "state").get(lib.ORIGIN)
    assert saved is not None and saved.size == 20


def test_restart_resumes_from_state(tmp_path: Path) -> None:
    """Two --once runs: the second fetches only the bundles holding new entries."""
    settings = lib.build_log(tmp_path / "log", 600)
    server = lib.serve(settings, access_log=True)
    state = str(tmp_path / "state")
    try:
        assert lib.run_monitor("--log", server.url, "--state-dir", state, "--once")[0] == 0
        first = _bundles(server.log())
        lib.append(settings, 20)
        assert lib.run_monitor("--log", server.url, "--state-dir", state, "--once")[0] == 0
        second = _bundles(server.log())[len(first) :]
        assert lib.run_monitor("--log", server.url, "--state-dir", state, "--once")[0] == 0  # not grown
        third = _bundles(server.log())[len(first) + len(second) :]
    finally:
        server.stop()
    assert sorted(first) == ["000", "001", "002.p/88"]  # fetched in parallel: any order
    assert second == ["002.p/108"]
    assert third == []
    saved = StateStore(state).get(lib.ORIGIN)
    assert saved is not None and (saved.size, saved.entries_audited) == (620, 620)


def _bundles(server_log: str) -> list[str]:
    return [line.split("/tile/entries/")[1].split()[0] for line in server_log.splitlines() if "GET /tile/entries/" in line]


class Receiver:
    """A webhook endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        from flask import Flask, request

        self.bodies: list[dict[str, Any]] = []
        app = Flask("receiver")

        @app.post("/hook")
        def hook() -> str:
            self.bodies.append(request.get_json())
            return "ok"

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()


def test_alerts_file_and_webhook_on_a_bad_key(tmp_path: Path) -> None:
    settings = lib.build_log(tmp_path / "log", 5)
    server = lib.serve(settings)
    receiver = Receiver()
    alerts_file = tmp_path / "alerts" / "alerts.jsonl"
    try:
        # Pin an Ed25519 key the log does not sign with (same name, other key).
        wrong = vkey(Ed25519Signer(lib.ORIGIN, _ed25519(b"\x09" * 32)).verifier())
        status, stdout_alerts, stderr = lib.run_monitor(
            "--log", server.url, "--state-dir", str(tmp_path / "state"), "--once",
            "--log-key", f"{server.url}={wrong}", "--alerts", str(alerts_file), "--webhook", receiver.url,
        )  # fmt: skip
    finally:
        server.stop()
        receiver.close()
    assert status == 1, stderr
    assert stdout_alerts == []  # alerts went to the file
    (alert,) = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert alert["type"] == "bad_signature" and wrong in alert["evidence"]["pinned"]
    assert receiver.bodies == [alert]


def test_pinned_keys_from_log_key_and_trust_config(tmp_path: Path) -> None:
    settings = lib.build_log(tmp_path / "log", 40)
    server = lib.serve(settings)
    try:
        # The log's own Ed25519 checkpoint key as a C2SP vkey.
        ed_key = serialization.load_pem_private_key((settings.data_dir / "log-ed25519.pem").read_bytes(), None)
        good = vkey(Ed25519Signer(lib.ORIGIN, ed_key).verifier())  # type: ignore[arg-type]
        status, alerts, stderr = lib.run_monitor(
            "--log", server.url, "--state-dir", str(tmp_path / "s1"), "--once", "--log-key", f"{server.url}={good}"
        )
        assert (status, alerts) == (0, []), stderr
        assert StateStore(tmp_path / "s1").get(lib.ORIGIN).vkeys == (good,)  # type: ignore[union-attr]

        # A sigstore trust config: the logs to audit and their ECDSA keys.
        pem = requests.get(server.url + "/api/v1/log/publicKey", timeout=10).content
        spki = serialization.load_pem_public_key(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        config = tmp_path / "trust.json"
        config.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
                                      "trustedRoot": {"tlogs": [{"baseUrl": server.url + "/",
                                                                 "publicKey": {"rawBytes": base64.b64encode(spki).decode()}}]}}))  # fmt: skip
        status, alerts, stderr = lib.run_monitor("--trust-config", str(config), "--state-dir", str(tmp_path / "s2"), "--once")
        assert (status, alerts) == (0, []), stderr
        saved = StateStore(tmp_path / "s2").get(lib.ORIGIN)
        assert saved is not None and saved.size == 40
    finally:
        server.stop()


def test_usage_errors_and_vkey(tmp_path: Path) -> None:
    status, _, stderr = lib.run_monitor("--log", "http://127.0.0.1:1", "--once")
    assert status == 2 and "--state-dir is required" in stderr
    status, _, stderr = lib.run_monitor("--state-dir", str(tmp_path), "--once")
    assert status == 2 and "--log" in stderr
    status, _, stderr = lib.run_monitor("--state-dir", str(tmp_path), "--log", "http://x", "--log-key", "nonsense")
    assert status == 2 and "URL=VKEY" in stderr
    proc = subprocess.run([lib.MONITOR, "vkey", "--state-dir", str(tmp_path / "w")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    verifier_from_vkey(proc.stdout.strip())  # a well-formed C2SP vkey
    again = subprocess.run([lib.MONITOR, "vkey", "--state-dir", str(tmp_path / "w")], capture_output=True, text=True, timeout=60)
    assert again.stdout == proc.stdout  # stable across runs


def test_progress_bar_goes_to_stderr_and_never_into_the_alerts(tmp_path: Path) -> None:
    settings = lib.build_log(tmp_path / "log", 300)
    watch = tmp_path / "watch.yaml"
    watch.write_text("certIdentities:\n  - certSubject: ^builder@example\\.com$\n")  # every entry: 300 alerts on stdout
    server = lib.serve_fast(settings)
    try:
        args = ("--log", server.url, "--once", "--watch", str(watch))
        status, alerts, stderr = lib.run_monitor(*args, "--state-dir", str(tmp_path / "a"), "--progress")
        assert status == 0, stderr
        # run_monitor parsed every stdout line as JSON: the bar left stdout alone.
        assert len(alerts) == 300 and {a["type"] for a in alerts} == {"identity_match"}
        assert f"{lib.ORIGIN}: 100%" in stderr and "300/300" in stderr, stderr

        # Not a terminal and not asked for: no bar.
        status, alerts, stderr = lib.run_monitor(*args, "--state-dir", str(tmp_path / "b"))
        assert status == 0 and len(alerts) == 300 and "300/300" not in stderr, stderr

        # stderr a terminal (alerts going to a file): a bar without asking; --no-progress silences it.
        for extra, expect_bar in (((), True), (("--no-progress",), False)):
            state = tmp_path / f"tty{len(extra)}"
            controller, terminal = pty.openpty()
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal's size
            with open(tmp_path / "stdout.txt", "wb") as stdout:
                proc = subprocess.Popen(
                    [lib.MONITOR, *args, "--state-dir", str(state), *extra], stdout=stdout, stderr=terminal
                )
            os.close(terminal)
            shown = b""
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the monitor exited and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            os.close(controller)
            assert proc.wait(timeout=120) == 0, shown
            assert (b"300/300" in shown) == expect_bar, shown
            assert len((tmp_path / "stdout.txt").read_text().splitlines()) == 300
    finally:
        server.stop()


def test_listen_serves_metrics_while_the_loop_runs(tmp_path: Path) -> None:
    settings = lib.build_log(tmp_path / "log", 300)
    server = lib.serve(settings)
    port = free_port()
    proc = subprocess.Popen(
        [lib.MONITOR, "--log", server.url, "--state-dir", str(tmp_path / "state"), "--interval", "0.2",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        metrics = _wait_for(f"http://127.0.0.1:{port}/metrics", f'tlog_monitor_verified_size{{origin="{lib.ORIGIN}"}} 300.0')
        assert 'tlog_monitor_alerts_total{type="inconsistent"} 0.0' in metrics
        lib.append(settings, 7)  # the loop picks it up on its own
        _wait_for(f"http://127.0.0.1:{port}/metrics", f'tlog_monitor_verified_size{{origin="{lib.ORIGIN}"}} 307.0')
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["status"] == "ok" and health["logs"][server.url] in ("verified", "unchanged")
        logs = requests.get(f"http://127.0.0.1:{port}/logs", timeout=5).json()
        assert [(entry["origin"], entry["size"]) for entry in logs] == [(lib.ORIGIN, 307)]
        # The witness is wired in, and cosigns the log whose key the monitor pinned.
        origin_hash = hashlib.sha256(lib.ORIGIN.encode()).hexdigest()
        assert requests.get(f"http://127.0.0.1:{port}/{origin_hash}/checkpoint", timeout=5).status_code == 404
        checkpoint = requests.get(server.url + "/checkpoint", timeout=5).content
        resp = requests.post(f"http://127.0.0.1:{port}/add-checkpoint", data=b"old 0\n\n" + checkpoint, timeout=5)
        assert resp.status_code == 200, resp.text
        assert resp.text.startswith("\u2014 ")
        assert requests.get(f"http://127.0.0.1:{port}/{origin_hash}/checkpoint", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        finally:
            server.stop()
    assert proc.returncode == 0


def _wait_for(url: str, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=2).text
            if needle in last:
                return last
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared at {url}; last answer:\n{last}")


def _ed25519(seed: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed)
