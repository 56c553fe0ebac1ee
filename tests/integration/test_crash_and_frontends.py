"""kill -9 in the middle of concurrent writes, and several frontends sharing one database."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

import speclient
from conftest import LiveServer
from test_live_server import check_history

pytestmark = pytest.mark.slow


def hammer(urls: list[str], stop: threading.Event, acknowledged: list, errors: list, seed: int) -> None:  # type: ignore[type-arg]
    """Submit until told to stop; record only what the server acknowledged with 201."""
    rng = random.Random(seed)
    session = requests.Session()
    identity = speclient.make_identity(f"w{seed}@example.com")
    key = None
    while not stop.is_set():
        url = rng.choice(urls)
        req, _ = speclient.hashedrekord(identity)
        try:
            if key is None:
                key = speclient.LogKey.from_pem(session.get(url + "/api/v1/log/publicKey", timeout=10).content)
            resp = session.post(url + "/api/v1/log/entries", json=req, timeout=30)
        except requests.RequestException:
            time.sleep(0.05)  # the server is down (killed); keep trying until told to stop
            continue
        if resp.status_code == 201:
            uuid, entry, _ = speclient.verify_entry(resp.json(), key)
            acknowledged.append((uuid, entry["logIndex"], entry["body"], entry["verification"]["inclusionProof"]["checkpoint"]))
        elif resp.status_code not in (503,):
            errors.append((resp.status_code, resp.text))


def test_sigkill_under_load_loses_nothing(settings, database_url) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the server (master and workers) at a random moment under 16
    concurrent clients, restart, repeat: 10 times on SQLite, 5 on PostgreSQL."""
    acknowledged: list = []  # type: ignore[type-arg]
    errors: list = []  # type: ignore[type-arg]
    rng = random.Random(1234)
    rounds = 10 if database_url.startswith("sqlite") else 5
    for round_ in range(rounds):
        server = LiveServer(settings).start()
        stop = threading.Event()
        threads = [
            threading.Thread(target=hammer, args=([server.url], stop, acknowledged, errors, round_ * 100 + i))
            for i in range(16)
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.5))
        server.kill()  # SIGKILL to master and workers, mid-flight
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert len(acknowledged) > 50
    server = LiveServer(settings).start()
    try:
        check_history(server.url, acknowledged, exact=False)
    finally:
        server.stop()


def test_four_frontends_share_one_postgres_database(tmp_path, postgres_url) -> None:  # type: ignore[no-untyped-def]
    from tlog.config import Settings

    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, origin="shared.example/log")
    frontends = [LiveServer(settings, workers=1, threads=8).start() for _ in range(4)]
    urls = [f.url for f in frontends]
    try:
        acknowledged: list = []  # type: ignore[type-arg]
        errors: list = []  # type: ignore[type-arg]
        stop = threading.Event()
        threads = [threading.Thread(target=hammer, args=(urls, stop, acknowledged, errors, i)) for i in range(16)]
        for t in threads:
            t.start()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        assert len(acknowledged) > 50
        for url in urls:
            check_history(url, acknowledged)
        assert len({requests.get(url + "/checkpoint").text for url in urls}) == 1
    finally:
        for f in frontends:
            f.stop()
