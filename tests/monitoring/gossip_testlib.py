"""Helpers for tests/monitoring/test_gossip_*.py: real forked logs, an independent
follower that fills a real monitor state store, gossip nodes served over HTTP
on loopback, a consistency-proof fetcher over the Rekor v1 API, and an
in-memory tree for edge cases.

Every state the gossip code reads comes from a real ``monitor.state.StateStore``
filled by :func:`record`, which saves only what verified, as the monitor's audit
does: a stand-in store would let a test pass on states the daemon never writes.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import speclient
from flask import Flask
from werkzeug.serving import make_server

from monitor.gossip import gossip_blueprint
from monitor.state import LogState, StateStore
from monitor.verify import Pins, open_checkpoint
from tlog.checkpoint import Checkpoint, sign_checkpoint
from tlog.config import Settings
from tlog.entries import canonicalize
from tlog.keys import LogKeys
from tlog.merkle import EMPTY_ROOT, CompactRange, hash_children, hash_leaf
from tlog.note import (
    ECDSASigner,
    Ed25519Signer,
    Ed25519Verifier,
    NoteSigner,
    vkey,
)
from tlog.sequencer import integrate

ORIGIN = "fork.example/log"


class ListSink:
    """An alert sink that keeps what it is given (``emit`` is all gossip needs)."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    def emit(self, alert: dict[str, Any]) -> bool:
        self.alerts.append(alert)
        return True

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["type"] == kind]


# --- real logs ---------------------------------------------------------------------------


def log_vkeys(data_dir: Path, origin: str = ORIGIN) -> tuple[str, ...]:
    """The vkeys an operator pins for the log in ``data_dir`` (both of its checkpoint keys)."""
    keys = LogKeys.load(data_dir)
    return (vkey(ECDSASigner(origin, keys.ecdsa).verifier()), vkey(Ed25519Signer(origin, keys.ed25519).verifier()))


def add_entries(data_dir: Path, count: int, email: str, origin: str = ORIGIN) -> None:
    """Create the log in ``data_dir`` if needed and integrate ``count`` fresh hashedrekord entries."""
    from tlog.api.app import create_app

    app = create_app(Settings(data_dir=data_dir, origin=origin))
    svc = app.extensions["tlog"]
    try:
        if count:
            ident = speclient.make_identity(email)
            batch = [canonicalize(speclient.hashedrekord(ident)[0]) for _ in range(count)]
            integrate(svc.log, batch)
    finally:
        svc.engine.dispose()


def fork(base: Path, prefix: int, a_extra: int, b_extra: int) -> tuple[Path, Path]:
    """Two data dirs with the same keys and origin: ``prefix`` shared entries, then
    ``a_extra`` entries only in A and ``b_extra`` (different) entries only in B."""
    a, b = base / "log-a" / "data", base / "log-b" / "data"
    add_entries(a, prefix, "common@example.com")
    shutil.copytree(a, b)
    add_entries(a, a_extra, "branch-a@example.com")
    add_entries(b, b_extra, "branch-b@example.com")
    return a, b


def record(
    store: StateStore, url: str, note: str, vkeys: Sequence[str], leaves: Callable[[int], Sequence[bytes]]
) -> LogState:
    """Save in ``store`` what the monitor's audit saves once ``note`` verified with the
    pinned ``vkeys`` and the log's first ``size`` leaf hashes, ``leaves(size)``, hashed
    to its root.

    As in ``monitor.audit``, the signature is checked (``monitor.verify.open_checkpoint``)
    before the leaves are asked for, and the state keeps the keys that signed, so gossip
    reads what a daemon would have stored. Asserts instead of saving anything that fails.
    """
    new = open_checkpoint(note, Pins(vkeys=tuple(vkeys)))
    hashes = leaves(new.size)
    assert len(hashes) == new.size, f"{len(hashes)} leaves for a checkpoint of size {new.size}"
    edge = CompactRange()
    edge.extend(hashes)
    assert (edge.root() if new.size else EMPTY_ROOT) == new.root_hash, "the leaves do not hash to the checkpoint"
    old = store.get(new.origin)
    state = LogState(
        origin=new.origin,
        url=url,
        size=new.size,
        root_hash=new.root_hash,
        checkpoint=new.note,
        vkeys=tuple(dict.fromkeys((old.vkeys if old is not None else ()) + new.vkeys)),
        edge=tuple(edge.hashes),
        entries_audited=(old.entries_audited if old is not None else 0) + new.size,
    )
    assert store.compare_and_swap(new.origin, old.size if old is not None else None, state)
    return state


def follow(store: StateStore, log_url: str, vkeys: Sequence[str]) -> LogState:
    """Fetch the log's current checkpoint and every entry, independently of the monitor's
    client, and :func:`record` them in ``store``."""
    note = requests.get(log_url + "/checkpoint", timeout=30).text

    def leaves(size: int) -> list[bytes]:
        return [hash_leaf(body) for body in speclient.fetch_all_entries(log_url, size)]

    return record(store, log_url, note, vkeys, leaves)


def rekor_proof_fetcher(log_url: str, calls: list[tuple[str, int, int]] | None = None):  # type: ignore[no-untyped-def]
    """``proof_fetcher`` over ``GET /api/v1/log/proof``: an HTTP error is the log refusing;
    connection problems propagate as ``requests`` exceptions (inconclusive)."""

    def fetch(origin: str, size1: int, size2: int) -> list[bytes]:
        if calls is not None:
            calls.append((origin, size1, size2))
        resp = requests.get(
            log_url + "/api/v1/log/proof", params={"firstSize": size1, "lastSize": size2}, timeout=30
        )
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return [bytes.fromhex(h) for h in resp.json()["hashes"]]

    return fetch


# --- gossip nodes over HTTP ----------------------------------------------------------------


@dataclass
class Node:
    url: str
    server: Any
    thread: threading.Thread


@contextmanager
def serve_gossip(store: StateStore) -> Iterator[Node]:
    """A Flask app with the gossip blueprint for ``store``, served on a loopback port."""
    app = Flask("gossip-node")
    app.register_blueprint(gossip_blueprint(store))
    with serve_app(app) as node:
        yield node


@contextmanager
def serve_app(app: Flask) -> Iterator[Node]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Node(f"http://127.0.0.1:{server.server_port}", server, thread)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- an in-memory tree for edge cases ------------------------------------------------------


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hash_children(mth(leaves[:k]), mth(leaves[k:]))


def consistency_proof(leaves: Sequence[bytes], m: int) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(m, D[n])."""

    def subproof(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if whole else [mth(d)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return subproof(m, d[:k], whole) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    return subproof(m, leaves, True)


class MemoryLog:
    """Leaf hashes and an Ed25519 signer: signs checkpoints of any prefix, and forks."""

    def __init__(self, origin: str, signer: NoteSigner, leaves: list[bytes] | None = None) -> None:
        self.origin = origin
        self.signer = signer
        self.leaves = leaves or []

    @classmethod
    def create(cls, origin: str = "mem.example/log") -> MemoryLog:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(origin, Ed25519Signer(origin, Ed25519PrivateKey.generate()))

    @property
    def vkey(self) -> str:
        verifier = self.signer.verifier()  # type: ignore[attr-defined]
        assert isinstance(verifier, Ed25519Verifier)
        return vkey(verifier)

    def grow(self, n: int, tag: bytes = b"main") -> MemoryLog:
        for _ in range(n):
            self.leaves.append(hash_leaf(b"%s %d" % (tag, len(self.leaves))))
        return self

    def fork(self) -> MemoryLog:
        return MemoryLog(self.origin, self.signer, list(self.leaves))

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        from tlog.merkle import EMPTY_ROOT

        return mth(self.leaves[:size]) if size else EMPTY_ROOT

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> str:
        size = len(self.leaves) if size is None else size
        cp = Checkpoint(self.origin, size, self.root(size) if root is None else root)
        return sign_checkpoint(cp, [self.signer]).decode()

    def proofs(self, calls: list[tuple[str, int, int]] | None = None):  # type: ignore[no-untyped-def]
        def fetch(origin: str, size1: int, size2: int) -> list[bytes]:
            if calls is not None:
                calls.append((origin, size1, size2))
            if size2 > len(self.leaves):
                raise LookupError(f"tree size {size2} is beyond this log's {len(self.leaves)}")
            return consistency_proof(self.leaves[:size2], size1)

        return fetch


def remember(store: StateStore, mem: MemoryLog, size: int | None = None, url: str = "http://log.invalid") -> LogState:
    """:func:`record` ``mem`` up to ``size`` (all of it by default) in ``store``, as a monitor
    that audited it there would have."""
    size = len(mem.leaves) if size is None else size
    return record(store, url, mem.checkpoint(size), (mem.vkey,), lambda n: mem.leaves[:n])


def audited(directory: Path, mem: MemoryLog, size: int | None = None) -> StateStore:
    """A new real state store in ``directory`` whose monitor has audited ``mem`` up to ``size``."""
    store = StateStore(directory)
    remember(store, mem, size)
    return store
