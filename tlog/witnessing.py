"""Collecting witness cosignatures for the log's checkpoints (C2SP tlog-witness, client side).

A witness cosigns a checkpoint only if it is consistent with the last one it
cosigned for this log, so a log whose checkpoints carry cosignatures from
independent witnesses cannot show two histories without a witness noticing.

The collector runs once per server (a thread of the writer process, tlog.writer):
whenever the log has a new signed head it submits it to every configured
witness with a consistency proof from the size that witness last cosigned,
verifies the returned cosignature with the witness's key, and stores it. The
``/checkpoint`` endpoint then serves the head with every cosignature collected
for it. A witness that is down only delays its cosignature.

The witnesses file lists one witness per line, ``<submission URL> <vkey>``::

    # name+keyid+key of each witness, as `tlog-monitor vkey` prints it
    https://witness.example.org  witness.example.org+1f2e3d4c+BE...
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tlog.errors import TlogError
from tlog.log import TransparencyLog
from tlog.note import CosignatureV1Verifier, Note, NoteError, NoteSignature, parse_signature_lines, verifier_from_vkey
from tlog.storage import store

log = logging.getLogger(__name__)

#: Largest witness response we read; a cosignature line is about 120 bytes.
_MAX_RESPONSE = 64 * 1024


class WitnessConfigError(TlogError):
    """The witnesses file is malformed."""


class WitnessError(Exception):
    """A witness refused a checkpoint or answered something unusable."""


@dataclass(frozen=True)
class Witness:
    url: str
    verifier: CosignatureV1Verifier

    @property
    def key(self) -> str:
        """``<name>+<hex key ID>``: how cosignatures are filed per witness."""
        return f"{self.verifier.name}+{self.verifier.key_id.hex()}"


def load_witnesses(path: Path) -> list[Witness]:
    witnesses = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            raise WitnessConfigError(f"{path}:{number}: expected '<witness URL> <vkey>'")
        try:
            verifier = verifier_from_vkey(parts[1])
        except NoteError as exc:
            raise WitnessConfigError(f"{path}:{number}: bad vkey: {exc}") from None
        if not isinstance(verifier, CosignatureV1Verifier):
            raise WitnessConfigError(f"{path}:{number}: the vkey is not a cosignature/v1 (Ed25519) witness key")
        witnesses.append(Witness(parts[0].rstrip("/"), verifier))
    return witnesses


@dataclass
class WitnessClient:
    """Talks to one witness and remembers the size it last cosigned for us."""

    witness: Witness
    session: requests.Session = field(default_factory=requests.Session)
    timeout: float = 10.0
    known_size: int = 0

    def add_checkpoint(self, checkpoint: bytes, size: int, proof_for: Callable[[int], list[bytes]]) -> NoteSignature:
        """Submit ``checkpoint`` (of ``size``); return the verified cosignature.

        A 409 tells us the size the witness actually holds; we retry once
        with a proof from there (the usual case after a restart).
        """
        old = self.known_size if self.known_size <= size else 0
        for _attempt in range(2):
            body = f"old {old}\n".encode()
            body += b"".join(base64.b64encode(h) + b"\n" for h in proof_for(old))
            body += b"\n" + checkpoint
            resp = self.session.post(
                self.witness.url + "/add-checkpoint", data=body, timeout=self.timeout, headers={"Content-Type": "text/plain"}
            )
            text = resp.content[:_MAX_RESPONSE].decode("utf-8", "replace")
            if resp.status_code == 409 and resp.headers.get("Content-Type", "").startswith("text/x.tlog.size"):
                stated = text.strip()
                if not stated.isdigit() or int(stated) > size:
                    raise WitnessError(f"{self.witness.url} holds size {stated!r}, beyond ours ({size})")
                old = int(stated)
                continue
            if resp.status_code != 200:
                raise WitnessError(f"{self.witness.url} answered {resp.status_code}: {text.strip()[:200]}")
            signature = self._verified(checkpoint, text)
            self.known_size = size
            return signature
        raise WitnessError(f"{self.witness.url} kept answering 409")

    def _verified(self, checkpoint: bytes, body: str) -> NoteSignature:
        message = Note.parse(checkpoint).text.encode()
        try:
            lines = parse_signature_lines(body)
        except NoteError as exc:
            raise WitnessError(f"{self.witness.url} returned no cosignature lines: {exc}") from None
        v = self.witness.verifier
        for sig in lines:
            if sig.name == v.name and sig.key_id == v.key_id and v.verify(message, sig.signature):
                return sig
        raise WitnessError(f"{self.witness.url} returned no valid cosignature from {self.witness.key}")


class CosignatureCollector:
    """Submits each new head to every witness and stores the cosignatures."""

    def __init__(self, tlog: TransparencyLog, witnesses: list[Witness], *, interval: float = 1.0) -> None:
        self.tlog = tlog
        self.clients = [WitnessClient(w) for w in witnesses]
        self.interval = interval
        self._stop = threading.Event()

    def run_once(self) -> int:
        """Collect what is missing for the latest head; returns how many cosignatures were stored."""
        head = self.tlog.latest_head()
        with self.tlog.engine.connect() as conn:
            done = store.cosigning_witnesses(conn, self.tlog.tree, head.size)

        def proof_for(old: int) -> list[bytes]:
            if old in (0, head.size):
                return []
            return self.tlog.consistency_proof(size1=old, size2=head.size)[1]

        stored = 0
        for client in self.clients:
            if client.witness.key in done:
                continue
            try:
                sig = client.add_checkpoint(head.checkpoint.encode(), head.size, proof_for)
            except (requests.RequestException, WitnessError, TlogError) as exc:
                log.warning("witness %s: %s", client.witness.url, exc)
                continue
            now = int(time.time() * 1000)
            with self.tlog.engine.begin() as conn:
                line = sig.line().rstrip("\n")
                stored += store.insert_cosignature(conn, self.tlog.tree, head.size, client.witness.key, line, now)
        return stored

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep collecting; the next round may succeed
                log.exception("cosignature collection failed")
            self._stop.wait(self.interval)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="tlog-witness-collector", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
