"""monitor.client against a real ``tlog serve``: tiles and Rekor v1 must agree."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import monitor_testlib as lib
import speclient
from conftest import LiveServer, free_port

from monitor.client import (
    LogClient,
    LogUnreachable,
    ProtocolError,
    parse_bundle,
    tile_path,
)
from tlog.merkle import hash_leaf

SIZE = 1000  # three full bundles and a partial one of 232


@pytest.fixture(scope="module")
def static_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = lib.build_log(tmp_path_factory.mktemp("static") / "log", SIZE)
    server = lib.serve(settings)
    try:
        yield server
    finally:
        gc.collect()  # close the tests' idle keep-alive connections: gunicorn waits for them
        server.stop()


def test_tile_paths() -> None:
    assert tile_path(0) == "000"
    assert tile_path(1234067) == "x001/x234/067"
    assert tile_path(5, 17) == "005.p/17"
    assert tile_path(1000, 1) == "x001/000.p/1"


def test_parse_bundle() -> None:
    data = b"\x00\x03abc\x00\x00\x00\x01z"
    assert parse_bundle(data, 3) == [b"abc", b"", b"z"]
    with pytest.raises(ProtocolError, match="holds 3 entries, want 4"):
        parse_bundle(data, 4)
    with pytest.raises(ProtocolError, match="inside an entry"):
        parse_bundle(b"\x00\x05abc", 1)
    with pytest.raises(ProtocolError, match="length prefix"):
        parse_bundle(b"\x00\x01a\x00", 2)


def test_auto_detects_tiles_and_both_apis_serve_the_same_checkpoint(static_log: LiveServer) -> None:
    auto = LogClient(static_log.url)
    assert auto.mode == "auto"
    cp = auto.checkpoint()
    assert auto.mode == "tiles"
    rekor = LogClient(static_log.url, mode="rekor")
    assert rekor.checkpoint() == cp
    key = speclient.LogKey.from_pem(auto.public_key_pem())
    assert speclient.verify_checkpoint(cp.decode(), key).size == SIZE


def test_consistency_proofs_from_tiles_equal_the_logs_own(static_log: LiveServer) -> None:
    """Proofs computed client-side from hash tiles are byte-identical to /api/v1/log/proof."""
    tiles = LogClient(static_log.url, mode="tiles")
    rekor = LogClient(static_log.url, mode="rekor")
    rng = random.Random(7)
    pairs = [(1, SIZE), (255, 256), (256, 512), (257, SIZE), (511, 768), (SIZE - 1, SIZE), (7, 9)]
    pairs += [tuple(sorted(rng.sample(range(1, SIZE + 1), 2))) for _ in range(40)]  # type: ignore[misc]
    for size1, size2 in pairs:
        proof = tiles.consistency_proof(size1, size2)
        assert proof == rekor.consistency_proof(size1, size2), (size1, size2)
        speclient.verify_consistency(size1, size2, _root(static_log, size1), _root(static_log, size2), proof)
    assert tiles.consistency_proof(0, 5) == [] and tiles.consistency_proof(5, 5) == []


def _root(server: LiveServer, size: int) -> bytes:
    # The root of any size, from the log's own proof endpoint.
    resp = requests.get(f"{server.url}/api/v1/log/proof", params={"firstSize": 1, "lastSize": size}, timeout=10)
    return bytes.fromhex(resp.json()["rootHash"])


def test_entries_from_bundles_and_from_rekor_are_the_same(static_log: LiveServer) -> None:
    tiles = LogClient(static_log.url, mode="tiles", parallel=3)
    rekor = LogClient(static_log.url, mode="rekor", parallel=2)
    want = speclient.fetch_all_entries(static_log.url, SIZE)
    assert [b for _, b in tiles.entries(0, SIZE)] == want
    assert list(tiles.entries(300, 700)) == list(enumerate(want))[300:700]
    assert list(rekor.entries(950, SIZE)) == list(enumerate(want))[950:]
    assert list(tiles.entries(SIZE, SIZE)) == []
    # Leaf hashes from the level-0 tiles agree with hashing the bodies.
    assert [h for _, h in tiles.leaf_hashes(990, SIZE, SIZE)] == [hash_leaf(b) for b in want[990:]]


def test_partial_tiles_that_are_gone_fall_back_to_full_ones(static_log: LiveServer) -> None:
    """A log may delete a partial tile or bundle once the full one exists (c2sp.org/tlog-tiles):
    the client then cuts what it needs from the full one."""
    want = speclient.fetch_all_entries(static_log.url, SIZE)[:600]
    expected_proof = LogClient(static_log.url, mode="rekor").consistency_proof(300, 600)
    def drop_partials_with_a_full_tile(path: str, body: bytes) -> bytes | None:
        gone = ".p/" in path and path.startswith(("/tile/0/", "/tile/entries/"))
        return None if gone else body

    with lib.tampering_proxy(static_log.url, drop_partials_with_a_full_tile) as url:
        session = lib.CountingSession()
        client = LogClient(url, session, mode="tiles")
        assert [b for _, b in client.entries(0, 600)] == want  # 002.p/88 is gone: cut from 002
        assert client.consistency_proof(300, 600) == expected_proof
    assert "tile/entries/002.p/88" in session.paths and "tile/entries/002" in session.paths
    assert any(".p/" in p for p in session.paths if p.startswith("tile/0/"))


def test_errors_are_classified(static_log: LiveServer, tmp_path: Path) -> None:
    down = LogClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(LogUnreachable):
        down.checkpoint()
    client = LogClient(static_log.url, mode="tiles")
    with pytest.raises(ProtocolError, match="HTTP 404"):
        list(client.entries(0, SIZE + 256))  # beyond the tree: the log has no such bundle
    rekor = LogClient(static_log.url, mode="rekor")
    with pytest.raises(ProtocolError, match="left out"):
        list(rekor.entries(SIZE - 1, SIZE + 1))


def test_user_agent(static_log: LiveServer) -> None:
    session = requests.Session()
    client = LogClient(static_log.url, session)
    assert client.session.headers["User-Agent"].startswith("tlog-monitor/")
