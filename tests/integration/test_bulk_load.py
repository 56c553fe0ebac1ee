"""``tlog load``: bulk loading through the sequencer's integration path.

Checked with the independent verifier in tests/speclient.py: every loaded
entry is a real hashedrekord whose signature verifies, indexes are dense, the
signed root is the RFC 6962 root of exactly those bodies, each batch signed one
checkpoint, and the server then carries on with normal submissions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

import speclient
from conftest import LiveServer
from tlog.config import Settings

ORIGIN = "test.example/log"


def run_load(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tlog.cli", "load", "--data-dir", str(settings.data_dir), "--origin", ORIGIN, *args]
    if settings.database_url:
        cmd += ["--database-url", settings.database_url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def heads(settings: Settings) -> list[int]:
    """Sizes of the signed heads of the entry log, read straight from the database."""
    engine = sa.create_engine(settings.database_url or f"sqlite:///{settings.data_dir / 'tlog.db'}")
    try:
        with engine.connect() as conn:
            tree = conn.execute(sa.text("SELECT id FROM trees WHERE purpose = 'entries'")).scalar_one()
            sizes = conn.execute(sa.text("SELECT size FROM tree_heads WHERE tree = :t ORDER BY size"), {"t": tree}).scalars().all()
            indexes = conn.execute(
                sa.text("SELECT count(*), min(log_index), max(log_index) FROM entries WHERE tree = :t"), {"t": tree}
            ).one()
    finally:
        engine.dispose()
    count, lo, hi = indexes
    if count:
        assert (lo, hi) == (0, count - 1), f"indexes are not dense: {count} entries in [{lo}, {hi}]"
    return list(sizes)


def stored_log(settings: Settings) -> tuple[list[bytes], speclient.ParsedCheckpoint]:
    """Entry bodies in index order and the latest checkpoint (signature verified), read from the database."""
    key = serialization.load_pem_private_key((settings.data_dir / "log-ecdsa-p256.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    engine = sa.create_engine(settings.database_url or f"sqlite:///{settings.data_dir / 'tlog.db'}")
    try:
        with engine.connect() as conn:
            tree = conn.execute(sa.text("SELECT id FROM trees WHERE purpose = 'entries'")).scalar_one()
            bodies = conn.execute(sa.text("SELECT body FROM entries WHERE tree = :t ORDER BY log_index"), {"t": tree}).scalars().all()
            checkpoint = conn.execute(
                sa.text("SELECT checkpoint FROM tree_heads WHERE tree = :t ORDER BY size DESC LIMIT 1"), {"t": tree}
            ).scalar_one()
    finally:
        engine.dispose()
    return [bytes(b) for b in bodies], speclient.verify_checkpoint(checkpoint, speclient.LogKey(key.public_key()))


def verify_hashedrekord_body(body: bytes) -> None:
    """The entry's signature verifies over its digest with its own public key (no tlog code involved)."""
    spec = json.loads(body)["spec"]
    pem = base64.b64decode(spec["signature"]["publicKey"]["content"])
    if b"CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert spec["data"]["hash"]["algorithm"] == "sha256"
    key.verify(
        base64.b64decode(spec["signature"]["content"]),
        bytes.fromhex(spec["data"]["hash"]["value"]),
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )


def verified_head(url: str) -> tuple[speclient.LogKey, speclient.ParsedCheckpoint]:
    key = speclient.LogKey.from_pem(requests.get(url + "/api/v1/log/publicKey", timeout=10).content)
    head = requests.get(url + "/api/v1/log", timeout=10).json()
    return key, speclient.verify_checkpoint(head["signedTreeHead"], key)


def test_synthetic_load_then_serve(settings: Settings) -> None:
    proc = run_load(settings, "--count", "2000", "--batch", "500")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "added 2,000 entries" in proc.stdout, proc.stdout
    assert heads(settings) == [0, 500, 1000, 1500, 2000]  # one signed checkpoint per batch

    server = LiveServer(settings).start()
    try:
        key, cp = verified_head(server.url)
        assert cp.size == 2000 and cp.origin == ORIGIN
        bodies = speclient.fetch_all_entries(server.url, 2000)
        assert speclient.root_of([speclient.leaf_hash(b) for b in bodies]) == cp.root
        assert len(set(bodies)) == 2000
        for body in bodies:
            verify_hashedrekord_body(body)
        # Proofs served for loaded entries verify against the same head.
        for index in random.Random(7).sample(range(2000), 5):
            resp = requests.get(f"{server.url}/api/v1/log/entries", params={"logIndex": index}, timeout=10)
            _uuid, entry, entry_cp = speclient.verify_entry(resp.json(), key)
            assert entry["logIndex"] == index and entry_cp.root == cp.root

        # Normal submissions carry on on top of the loaded log.
        req, _digest = speclient.hashedrekord(speclient.make_identity("after-load@example.com"))
        resp = requests.post(server.url + "/api/v1/log/entries", json=req, timeout=30)
        assert resp.status_code == 201, resp.text
        _uuid, entry, new_cp = speclient.verify_entry(resp.json(), key)
        assert entry["logIndex"] == 2000 and new_cp.size == 2001
        proof = requests.get(server.url + "/api/v1/log/proof", params={"firstSize": 2000, "lastSize": 2001}, timeout=10)
        speclient.verify_consistency(2000, 2001, cp.root, new_cp.root, [bytes.fromhex(h) for h in proof.json()["hashes"]])
    finally:
        server.stop()
    assert heads(settings)[-1] == 2001


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'db' / 'tlog.db'}", origin=ORIGIN)


def write_proposed(path: Path, entries: list[dict], extra: dict[int, str] | None = None) -> None:
    """One proposed entry per line; ``extra`` puts raw text at given (1-based) line numbers."""
    lines = [json.dumps(e) for e in entries]
    for n, text in sorted((extra or {}).items()):
        lines.insert(n - 1, text)
    path.write_text("".join(line + "\n" for line in lines))


def test_load_from_file(sqlite_settings: Settings, tmp_path: Path) -> None:
    identity = speclient.make_identity("file@example.com")
    proposed = [speclient.hashedrekord(identity)[0] for _ in range(25)]
    source = tmp_path / "entries.jsonl"
    # A blank line is skipped; line numbers in errors still count it.
    write_proposed(source, proposed, {6: ""})
    proc = run_load(sqlite_settings, "--source", str(source), "--batch", "10", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert heads(sqlite_settings) == [0, 10, 20, 25]

    # Loading the same file again adds nothing: every entry is already there.
    proc = run_load(sqlite_settings, "--source", str(source), "--batch", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "added 0 entries (25 already present)" in proc.stdout, proc.stdout
    assert heads(sqlite_settings)[-1] == 25

    bodies, cp = stored_log(sqlite_settings)
    assert cp.size == 25 and speclient.root_of([speclient.leaf_hash(b) for b in bodies]) == cp.root
    for body, sent in zip(bodies, proposed, strict=True):  # in file order, the submitted signature and digest
        logged = json.loads(body)["spec"]
        assert logged["signature"]["content"] == sent["spec"]["signature"]["content"]
        assert logged["data"]["hash"] == sent["spec"]["data"]["hash"]
        verify_hashedrekord_body(body)


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [("{not json", "not valid JSON"), ("tampered", "signature verification failed")],
)
def test_bad_line_is_refused_and_its_batch_not_written(sqlite_settings: Settings, tmp_path: Path, bad_line: str, expected: str) -> None:
    identity = speclient.make_identity("bad@example.com")
    proposed = [speclient.hashedrekord(identity)[0] for _ in range(29)]
    if bad_line == "tampered":  # a valid-looking entry whose signature is over another digest
        other = speclient.hashedrekord(identity)[0]
        other["spec"]["data"]["hash"]["value"] = hashlib.sha256(os.urandom(8)).hexdigest()
        bad_line = json.dumps(other)
    source = tmp_path / "bad.jsonl"
    write_proposed(source, proposed, {27: bad_line})
    proc = run_load(sqlite_settings, "--source", str(source), "--batch", "10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{source}:27: " in proc.stderr and expected in proc.stderr, proc.stderr
    assert "20 entries of earlier batches were added" in proc.stderr, proc.stderr
    # Lines 1-20 made two batches; the batch of lines 21-30 holding line 27 left no trace.
    assert heads(sqlite_settings) == [0, 10, 20]


def test_sets_option_stores_each_loaded_entrys_set(sqlite_settings: Settings) -> None:
    proc = run_load(sqlite_settings, "--count", "4", "--batch", "2", "--sets")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_load(sqlite_settings, "--count", "2")  # the default stores none
    assert proc.returncode == 0, proc.stdout + proc.stderr
    engine = sa.create_engine(sqlite_settings.database_url)  # type: ignore[arg-type]
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT log_index, signed_entry_timestamp IS NOT NULL FROM entries ORDER BY log_index"))
            assert [tuple(r) for r in rows] == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 0), (5, 0)]
    finally:
        engine.dispose()


def test_usage_errors(sqlite_settings: Settings, tmp_path: Path) -> None:
    proc = run_load(sqlite_settings)
    assert proc.returncode == 2 and "--count is required" in proc.stderr, proc.stderr
    proc = run_load(sqlite_settings, "--source", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "neither 'synthetic' nor a readable file" in proc.stderr, proc.stderr


def test_synthetic_fast_path_is_byte_identical_to_canonicalize() -> None:
    """The loader's template body equals what the API would store, and its signature verifies."""
    from tlog import bulk
    from tlog.entries import canonicalize

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem_b64 = base64.b64encode(pem).decode()
    pubkey_key = "pubkey:sha256:" + hashlib.sha256(pem).hexdigest()
    for _ in range(300):
        digest = os.urandom(32)
        signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        ref = canonicalize(bulk.synthetic_proposed(digest, signature, pem_b64))
        assert bulk.fast_hashedrekord(digest, signature, pem_b64, pubkey_key) == (ref.body, ref.search_keys)

    # And the generator itself (which also re-checks one entry per chunk against canonicalize).
    batches = list(bulk.synthetic_batches(250, 100, processes=1))
    assert [len(b) for b in batches] == [100, 100, 50]
    for entry in batches[0] + batches[-1]:
        ref = canonicalize(json.loads(_proposed_from_body(entry.body)))
        assert (ref.body, ref.search_keys) == (entry.body, entry.search_keys)
        verify_hashedrekord_body(entry.body)


def _proposed_from_body(body: bytes) -> str:
    """A canonical hashedrekord body is itself a valid proposed entry."""
    return body.decode()


def test_extend_levels_matches_visitor() -> None:
    """CompactRange.extend_levels creates exactly the nodes extend() shows a visitor, and the same range."""
    from tlog.merkle import CompactRange

    rng = random.Random(3)
    leaves = [rng.randbytes(32) for _ in range(700)]
    for _ in range(400):
        begin = rng.choice([0, 0, 0, rng.randrange(200)])
        mid = begin + rng.randrange(300)
        end = mid + rng.randrange(200)
        a, b = CompactRange(begin, begin), CompactRange(begin, begin)
        a.extend(leaves[begin:mid])
        b.extend(leaves[begin:mid])
        seen: list[tuple[int, int, bytes]] = []
        a.extend(leaves[mid:end], lambda node, h, keep=seen.append: keep((node.level, node.index, h)))
        levels = b.extend_levels(leaves[mid:end])
        got = [(level, first + i, h) for level, (first, hs) in enumerate(levels) for i, h in enumerate(hs)]
        assert sorted(got) == sorted(seen), (begin, mid, end)
        assert a == b, (begin, mid, end)
    with pytest.raises(ValueError):
        CompactRange().extend_levels([b"\x00" * 32, b"short"])
    c = CompactRange()
    with pytest.raises(TypeError):
        c.extend_levels([bytearray(32)])  # type: ignore[list-item]
    assert c.end == 0  # all or nothing
