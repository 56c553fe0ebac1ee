"""Key rotation: freeze the entry log's active shard and start a new one.

A log key cannot be swapped under a live tree: every checkpoint and SET the
log ever handed out names the old key, and a monitor pinned to it must be
able to keep verifying the old history. So a rotation, like Rekor's sharding,
starts a *new tree* with a new origin and new keys, and freezes the old tree
at its last signed checkpoint. The old shard stays readable (its entries keep
their global indexes, proofs and SETs under the old keys); the new shard
continues the global index after it.

The steps, each safe to crash after (running ``tlog rotate`` again finishes
an interrupted rotation):

1. copy the current keys to ``<data dir>/shards/<tree ID>/`` (the frozen
   shard still needs them to sign on reads the SETs of entries stored without
   one), and the Ed25519 key to ``certificate-log-ed25519.pem`` when the CA's
   certificate log exists, so that log keeps its checkpoint key;
2. generate the new keys into ``<data dir>/next-keys/``;
3. in one transaction under the entry log's writer lock: mark the current
   tree frozen and create the new tree with its signed empty checkpoint.
   This commit is the point of no return. A server still running on the old
   keys can no longer write (its sequencer finds the tree frozen and answers
   503 until it is restarted);
4. move the new keys over the active key files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy.engine import Engine

from tlog.errors import TlogError
from tlog.keys import (
    ECDSA_KEY_FILE,
    ED25519_KEY_FILE,
    LogKeys,
    read_private_key,
    spki_der,
    write_private_key,
)
from tlog.log import insert_new_tree, validate_origin
from tlog.shards import ENTRIES, retired_keys_dir
from tlog.storage import store
from tlog.storage.db import write_transaction
from tlog.storage.store import TreeInfo

log = logging.getLogger(__name__)

NEXT_KEYS_DIR = "next-keys"
#: The certificate log's checkpoint key once the entry log's Ed25519 key has rotated away from it.
CERTIFICATE_LOG_ED25519_FILE = "certificate-log-ed25519.pem"
CERTIFICATES = "certificates"


class RotationError(TlogError):
    """The rotation cannot start or continue; nothing further was changed."""


@dataclasses.dataclass(frozen=True)
class Rotation:
    frozen: TreeInfo
    frozen_size: int
    active: TreeInfo


def rotate(engine: Engine, data_dir: Path, *, origin: str | None) -> Rotation:
    """Freeze the active shard and start a new one with new keys and ``origin``.

    With ``origin=None`` only an interrupted rotation is finished.
    """
    active_paths = (data_dir / ECDSA_KEY_FILE, data_dir / ED25519_KEY_FILE)
    next_dir = data_dir / NEXT_KEYS_DIR
    with engine.connect() as conn:
        current = store.get_tree(conn, purpose=ENTRIES)
        trees = store.list_trees(conn)
    if current is None:
        raise RotationError("there is no entry log to rotate yet: start `tlog serve` once first")
    keys = LogKeys.read(data_dir)

    if keys.log_id != current.log_id:
        # The tree was created (step 3) but the keys were not moved (step 4).
        pending = _read_keys(next_dir)
        if pending is None or pending.log_id != current.log_id:
            raise RotationError(
                f"the active shard {current.origin!r} has log ID {current.log_id.hex()}, which matches neither "
                f"{active_paths[0]} nor {next_dir}: restore the shard's keys before rotating"
            )
        _install(next_dir, active_paths)
        previous = [t for t in trees if t.purpose == ENTRIES and t.id < current.id][-1]
        log.info("finished the interrupted rotation to %r", current.origin)
        return Rotation(previous, _size(engine, previous), current)
    if origin is None:
        raise RotationError("no rotation to finish; give --origin to start one")
    origin = validate_origin(origin)
    if any(t.origin == origin for t in trees):
        raise RotationError(f"origin {origin!r} is already used by a shard; every shard needs its own origin")

    # (1) Keep the keys the frozen shard is signed with.
    _write_keys(retired_keys_dir(data_dir, current), keys)
    if any(t.purpose == CERTIFICATES for t in trees) and not (data_dir / CERTIFICATE_LOG_ED25519_FILE).exists():
        write_private_key(data_dir / CERTIFICATE_LOG_ED25519_FILE, keys.ed25519)

    # (2) The new keys, out of the way until the database agrees.
    new_keys = _read_keys(next_dir)
    if new_keys is None or any(t.log_id == new_keys.log_id for t in trees):
        new_keys = LogKeys(ecdsa=ec.generate_private_key(ec.SECP256R1()), ed25519=ed25519.Ed25519PrivateKey.generate())
        _write_keys(next_dir, new_keys, replace=True)

    # (3) Freeze and create, atomically, under the writer lock.
    now = int(time.time() * 1000)
    with write_transaction(engine, current.id) as conn:
        latest = store.get_tree(conn, purpose=ENTRIES)
        if latest is None or latest.id != current.id or store.is_frozen(conn, current.id):
            raise RotationError("another rotation ran at the same time; run `tlog info` and try again")
        head = store.latest_head(conn, current.id)
        assert head is not None
        store.freeze_tree(conn, current.id, now)
        created = insert_new_tree(conn, new_keys, purpose=ENTRIES, origin=origin, now_ms=now)

    # (4) Make the new keys the active ones.
    _install(next_dir, active_paths)
    log.info("rotated: %r frozen at size %d; new shard %r", current.origin, head.size, origin)
    return Rotation(dataclasses.replace(current, frozen_at=now), head.size, created)


def _size(engine: Engine, info: TreeInfo) -> int:
    with engine.connect() as conn:
        head = store.latest_head(conn, info.id)
    return head.size if head else 0


def _read_keys(directory: Path) -> LogKeys | None:
    if not all((directory / name).exists() for name in (ECDSA_KEY_FILE, ED25519_KEY_FILE)):
        return None
    return LogKeys.read(directory)


def _write_keys(directory: Path, keys: LogKeys, *, replace: bool = False) -> None:
    """Write both keys 0600 into ``directory``; an identical key already there is kept."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, key in ((ECDSA_KEY_FILE, keys.ecdsa), (ED25519_KEY_FILE, keys.ed25519)):
        path = directory / name
        if path.exists():
            if not replace and _same_key(read_private_key(path), key):
                continue
            if not replace:
                raise RotationError(f"{path} exists and holds a different key; refusing to overwrite it")
            path.unlink()
        write_private_key(path, key)
    _fsync_dir(directory)


def _same_key(a: object, b: object) -> bool:
    """Same private key: compared through the public key, which identifies it."""
    return type(a) is type(b) and spki_der(a.public_key()) == spki_der(b.public_key())  # type: ignore[attr-defined]


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install(next_dir: Path, active_paths: tuple[Path, Path]) -> None:
    """Move the new keys over the active ones (rename is atomic per file), then drop ``next_dir``."""
    for name, target in zip((ECDSA_KEY_FILE, ED25519_KEY_FILE), active_paths):
        src = next_dir / name
        if src.exists():
            os.replace(src, target)
    _fsync_dir(active_paths[0].parent)
    try:
        next_dir.rmdir()
    except OSError:
        pass
