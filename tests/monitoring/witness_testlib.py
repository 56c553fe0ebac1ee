"""Test helpers for the witness tests: an in-memory log that signs checkpoints
and builds real RFC 6962 consistency proofs (tlog.merkle), and body builders.

Imported by tests/monitoring/test_witness_*.py (same directory, pytest's default
"prepend" import mode) and by the multi-process worker script.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flask import Flask
from werkzeug.serving import make_server

from monitor.witness import WitnessConfig, WitnessState, load_or_create_key, witness_blueprint
from tlog.checkpoint import Checkpoint, sign_checkpoint
from tlog.merkle import CompactRange, consistency, hash_leaf, root_from_leaf_hashes
from tlog.note import ECDSASigner, Ed25519Signer, NoteSigner, vkey

NOW = 1_700_000_000


def fixed_clock(value: float = NOW):  # type: ignore[no-untyped-def]
    return lambda: value


class FakeLog:
    """A log under test: a list of leaf hashes, a signer, and proofs built the
    way the real log builds them (tlog.merkle.consistency(...).rehash)."""

    def __init__(
        self,
        origin: str = "example.com/log",
        *,
        key: Ed25519PrivateKey | None = None,
        signer: NoteSigner | None = None,
        branch: bytes = b"main",
    ) -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
        self.signer: NoteSigner = signer or Ed25519Signer(origin, self.key)
        self.branch = branch
        self.leaves: list[bytes] = []

    @property
    def vkey(self) -> str:
        return vkey(self.signer.verifier())  # type: ignore[attr-defined]

    def grow_to(self, size: int) -> FakeLog:
        while len(self.leaves) < size:
            self.leaves.append(hash_leaf(b"%s leaf %d" % (self.branch, len(self.leaves))))
        return self

    def fork(self, at: int, branch: bytes) -> FakeLog:
        """Same origin and key, same first ``at`` leaves, different ones after."""
        other = FakeLog(self.origin, key=self.key, signer=self.signer, branch=branch)
        other.leaves = list(self.leaves[:at])
        return other

    def root(self, size: int) -> bytes:
        self.grow_to(size)
        cr = CompactRange()
        cr.extend(self.leaves[:size])
        return cr.root()

    def checkpoint(self, size: int, *, extensions: tuple[str, ...] = (), signers: Sequence[NoteSigner] | None = None) -> bytes:
        cp = Checkpoint(origin=self.origin, size=size, root_hash=self.root(size), extensions=extensions)
        return sign_checkpoint(cp, list(signers) if signers is not None else [self.signer])

    def proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 6962 consistency proof from size1 to size2 (empty for 0 or equal sizes)."""
        if size1 == 0 or size1 == size2:
            return []
        self.grow_to(size2)
        nodes = consistency(size1=size1, size2=size2)
        hashes = [root_from_leaf_hashes(self.leaves[n.begin : n.end]) for n in nodes.ids]
        return nodes.rehash(hashes)


def body(old: int | str, proof: Sequence[bytes], signed_checkpoint: bytes) -> bytes:
    lines = [f"old {old}\n".encode()]
    lines += [base64.b64encode(h) + b"\n" for h in proof]
    return b"".join(lines) + b"\n" + signed_checkpoint


def ecdsa_log(origin: str, key_name: str) -> FakeLog:
    """A Rekor-v1-style log: origin differs from the (ECDSA) key name."""
    key = ec.derive_private_key(0x5EED, ec.SECP256R1())
    return FakeLog(origin, signer=ECDSASigner(key_name, key))


class WitnessServer:
    def __init__(self, state_dir: Path, log_vkeys: list[str]) -> None:
        self.key = load_or_create_key(state_dir, name="witness.test/w1")
        config = WitnessConfig.from_vkeys(log_vkeys)
        app = Flask("witness")
        app.register_blueprint(witness_blueprint(config, WitnessState.open(state_dir), self.key))
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
