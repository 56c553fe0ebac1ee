"""A real ``tlog serve`` (gunicorn, several workers) under concurrent writers from several processes."""

from __future__ import annotations

import base64
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
import requests

import speclient
from conftest import LiveServer

pytestmark = pytest.mark.slow


def check_history(url: str, acknowledged: list[tuple[str, int, str, str]], *, exact: bool = True) -> None:
    """The whole tree rebuilds from its entries to the signed root (so indexes are
    dense), every acknowledged entry is where it was acknowledged with the same
    body, and every checkpoint handed out is consistent with the current one.

    ``exact`` also requires that the log holds nothing but the acknowledged
    entries (not true after a crash, which can lose answers but not entries).
    """
    session = requests.Session()
    key = speclient.LogKey.from_pem(session.get(url + "/api/v1/log/publicKey").content)
    info = session.get(url + "/api/v1/log").json()
    final = speclient.verify_checkpoint(info["signedTreeHead"], key)
    bodies = speclient.fetch_all_entries(url, final.size)
    assert speclient.root_of([speclient.leaf_hash(b) for b in bodies]) == final.root
    indexes = sorted(i for _, i, _, _ in acknowledged)
    assert len(set(indexes)) == len(indexes), "an index was acknowledged twice"
    if exact:
        assert indexes == list(range(final.size))
    for uuid, index, body, _ in acknowledged:
        assert bodies[index] == base64.b64decode(body)
        got = session.get(f"{url}/api/v1/log/entries?logIndex={index}").json()
        assert list(got) == [uuid]
        assert got[uuid]["body"] == body
        speclient.verify_entry(got, key)
    seen = {}
    for _, _, _, cp_text in acknowledged:
        cp = speclient.verify_checkpoint(cp_text, key)
        seen[cp.size] = cp.root
    for size, root in seen.items():
        proof = session.get(f"{url}/api/v1/log/proof", params={"firstSize": size, "lastSize": final.size}).json()
        speclient.verify_consistency(size, final.size, root, final.root, [bytes.fromhex(h) for h in proof["hashes"]])


def test_concurrent_writers_from_several_processes(live_server: LiveServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        futures = [pool.submit(speclient.submit_many, live_server.url, 30, f"p{i}@example.com") for i in range(4)]
        acknowledged = [row for f in futures for row in f.result()]
    assert len(acknowledged) == 120
    check_history(live_server.url, acknowledged)
    # /metrics aggregates every worker process.
    text = requests.get(live_server.url + "/metrics").text
    assert "tlog_entries_integrated_total 120.0" in text, text
    assert "tlog_tree_size 120.0" in text
    # Batching happened: fewer signed heads than entries.
    sizes = {speclient.verify_checkpoint(cp, speclient.LogKey.from_pem(requests.get(live_server.url + "/api/v1/log/publicKey").content)).size for *_, cp in acknowledged}
    assert len(sizes) <= 120


def test_same_entry_raced_by_many_clients_lands_once(live_server: LiveServer) -> None:
    req, _ = speclient.hashedrekord(speclient.make_identity())

    def post(_: int) -> requests.Response:
        return requests.post(live_server.url + "/api/v1/log/entries", json=req, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, range(16)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(409) == 15, codes
    created = next(r for r in responses if r.status_code == 201)
    uuid = next(iter(created.json()))
    assert all(r.headers["Location"].endswith(uuid) for r in responses)
    assert requests.get(live_server.url + "/api/v1/log").json()["treeSize"] == 1


def test_restart_of_the_server_keeps_everything(settings) -> None:  # type: ignore[no-untyped-def]
    server = LiveServer(settings).start()
    try:
        acknowledged = speclient.submit_many(server.url, 10, "r@example.com")
    finally:
        server.stop()
    server = LiveServer(settings).start()
    try:
        check_history(server.url, acknowledged)
        more = speclient.submit_many(server.url, 5, "r2@example.com")
        check_history(server.url, acknowledged + more)
        body = base64.b64decode(more[0][2])
        assert b"hashedrekord" in body
    finally:
        server.stop()
