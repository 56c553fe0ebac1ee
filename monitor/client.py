"""HTTP client for one log: checkpoint, consistency proofs, entries, public key.

Two APIs, chosen per log (``mode``):

* ``tiles`` - C2SP tlog-tiles (``c2sp.org/tlog-tiles``): ``GET /checkpoint``,
  hash tiles ``/tile/<L>/<N>[.p/<W>]`` from which consistency proofs are
  computed here, and entry bundles ``/tile/entries/<N>[.p/<W>]``;
* ``rekor`` - Rekor v1: ``GET /api/v1/log`` (``signedTreeHead``),
  ``GET /api/v1/log/proof`` and ``POST /api/v1/log/entries/retrieve``;
* ``auto`` (default) - tiles if ``/checkpoint`` answers, else rekor.

Every answer is parsed strictly into bytes; nothing here decides whether it is
*true* (that is :mod:`monitor.verify`). Failures come in two kinds, which the
daemon treats differently: :class:`LogUnreachable` (connection errors,
timeouts, 5xx and 429: retry later) and :class:`ProtocolError` (a malformed
or missing answer from a reachable log: report it).

Entries are fetched a few requests ahead on a small thread pool (``parallel``)
and yielded in order, one bundle or batch at a time, so memory stays flat
whatever the log size.
"""

from __future__ import annotations

import base64
import binascii
import collections
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from tlog.merkle import HASH_SIZE, NodeID, consistency, hash_children

__all__ = [
    "BUNDLE_WIDTH",
    "MODES",
    "USER_AGENT",
    "LogClient",
    "LogUnreachable",
    "ProtocolError",
    "RetrievedEntry",
    "parse_bundle",
    "tile_path",
]

log = logging.getLogger(__name__)

USER_AGENT = "tlog-monitor/0.1"
MODES = ("auto", "tiles", "rekor")
TILE_HEIGHT = 8
BUNDLE_WIDTH = 1 << TILE_HEIGHT
#: Rekor's /api/v1/log/entries/retrieve takes at most this many log indexes.
REKOR_BATCH = 100
MAX_CHECKPOINT_SIZE = 1 << 20
_TILE_CACHE = 256  # tiles of 8 KiB

T = TypeVar("T")


class LogUnreachable(Exception):
    """The log did not answer usefully right now (network, timeout, 5xx, 429): retry later."""


class ProtocolError(Exception):
    """The log answered, but not as its API says it must (bad status, malformed body)."""


@dataclass(frozen=True)
class RetrievedEntry:
    """One entry as the Rekor API serves it: UUID, index, body and, for dsse entries,
    the base64 ``attestation.data`` (the DSSE payload; None when the log sent none)."""

    uuid: str
    log_index: int
    body: bytes
    attestation: str | None = None


def tile_path(index: int, width: int = BUNDLE_WIDTH) -> str:
    """``N`` as 3-digit groups, all but the last prefixed with ``x``, then ``.p/W`` if partial."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if not index:
            break
    path = "/".join(["x" + g for g in reversed(groups[1:])] + [groups[0]])
    return path if width == BUNDLE_WIDTH else f"{path}.p/{width}"


def parse_bundle(data: bytes, width: int) -> list[bytes]:
    """Split an entry bundle (entries each prefixed by a big-endian uint16 length).

    Raises :class:`ProtocolError` unless it holds exactly ``width`` entries.
    """
    out: list[bytes] = []
    append = out.append
    pos, n = 0, len(data)
    while pos < n:
        if pos + 2 > n:
            raise ProtocolError("entry bundle ends inside a length prefix")
        end = pos + 2 + ((data[pos] << 8) | data[pos + 1])
        if end > n:
            raise ProtocolError("entry bundle ends inside an entry")
        append(data[pos + 2 : end])
        pos = end
    if len(out) != width:
        raise ProtocolError(f"entry bundle holds {len(out)} entries, want {width}")
    return out


class LogClient:
    """One log at ``url``; see the module docstring.

    ``session`` may be shared (it is used from the prefetch threads too);
    ``timeout`` is per request, in seconds; ``parallel`` is how many entry
    requests may be in flight at once.
    """

    def __init__(
        self,
        url: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        *,
        mode: str = "auto",
        parallel: int = 4,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self._mode = mode
        #: Global log index of the active shard's first entry (Rekor API), once known.
        self._index_offset: int | None = None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(10, self.parallel))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        if str(session.headers.get("User-Agent", "")).startswith("python-requests"):
            session.headers["User-Agent"] = USER_AGENT
        self.session = session
        self._tiles: collections.OrderedDict[tuple[int, int, int], bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LogClient({self.url!r}, mode={self._mode!r})"

    def close(self) -> None:
        """Close the session's connections (a shared session is closed for all its users)."""
        self.session.close()

    @property
    def mode(self) -> str:
        """``tiles``, ``rekor``, or ``auto`` until the first checkpoint was fetched."""
        return self._mode

    # --- HTTP -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, none_if_404: bool = False, **kw: Any) -> requests.Response | None:
        url = self.url + path
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kw)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise LogUnreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        except requests.RequestException as exc:
            raise ProtocolError(f"{method} {url}: {exc}") from None
        status = resp.status_code
        if status == 200:
            return resp
        if status >= 500 or status == 429:
            raise LogUnreachable(f"{method} {url}: HTTP {status}")
        if status == 404 and none_if_404:
            return None
        raise ProtocolError(f"{method} {url}: HTTP {status}: {resp.text[:200]}")

    def _get(self, path: str, **kw: Any) -> requests.Response:
        resp = self._request("GET", path, **kw)
        assert resp is not None
        return resp

    def _json(self, resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise ProtocolError(f"{resp.request.method} {resp.url}: the answer is not JSON") from None

    # --- checkpoint and key ---------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The log's latest signed checkpoint note (unverified)."""
        if self._mode in ("auto", "tiles"):
            resp = self._request("GET", "/checkpoint", none_if_404=self._mode == "auto")
            if resp is not None:
                self._mode = "tiles"
                return self._checkpoint_bytes(resp.content)
            log.info("%s has no /checkpoint; using the Rekor v1 API", self.url)
            self._mode = "rekor"
        body = self._json(self._get("/api/v1/log"))
        sth = body.get("signedTreeHead") if isinstance(body, dict) else None
        if not isinstance(sth, str):
            raise ProtocolError(f"GET {self.url}/api/v1/log: no signedTreeHead string")
        self._index_offset = _index_offset(body)
        return self._checkpoint_bytes(sth.encode("utf-8"))

    def _offset(self) -> int:
        """The active shard's index offset, from ``GET /api/v1/log`` if no checkpoint read told it yet."""
        if self._index_offset is None:
            self._index_offset = _index_offset(self._json(self._get("/api/v1/log")))
        return self._index_offset

    @staticmethod
    def _checkpoint_bytes(data: bytes) -> bytes:
        if len(data) > MAX_CHECKPOINT_SIZE:
            raise ProtocolError(f"checkpoint of {len(data)} bytes is too large")
        return data

    def public_key_pem(self) -> bytes:
        """The log's PEM public key from ``/api/v1/log/publicKey`` (unverified)."""
        return self._get("/api/v1/log/publicKey").content

    # --- consistency proofs ---------------------------------------------------------------

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The proof that the tree of ``size1`` is a prefix of that of ``size2``.

        Precondition: ``0 <= size1 <= size2`` and ``size2`` is the size of a
        verified checkpoint (only tiles that checkpoint covers are fetched).
        Empty when ``size1`` is 0 or equal to ``size2``.
        """
        if not 0 <= size1 <= size2:
            raise ValueError(f"invalid consistency sizes: size1={size1}, size2={size2}")
        if size1 == 0 or size1 == size2:
            return []
        if self._mode == "rekor":
            body = self._json(self._get("/api/v1/log/proof", params={"firstSize": size1, "lastSize": size2}))
            hashes = body.get("hashes") if isinstance(body, dict) else None
            if not isinstance(hashes, list):
                raise ProtocolError(f"consistency proof {size1}->{size2}: no hashes list")
            return [_hex_hash(h, f"consistency proof {size1}->{size2}") for h in hashes]
        nodes = consistency(size1=size1, size2=size2)
        return nodes.rehash(self.node_hashes(nodes.ids, size2))

    def node_hashes(self, ids: Sequence[NodeID], size: int) -> list[bytes]:
        """The hashes of perfect nodes of the tree of ``size``, from its hash tiles.

        A node at height ``h`` lives in tile level ``L = h // 8``; when ``h % 8``
        is not 0 it is not stored, so it is folded from the ``2**(h % 8)``
        level-``8L`` hashes under it, which all sit in one tile.
        """
        out = []
        for node in ids:
            level, rest = divmod(node.level, TILE_HEIGHT)
            first = node.index << rest
            tile_index, offset = divmod(first, BUNDLE_WIDTH)
            width = min(BUNDLE_WIDTH, (size >> (TILE_HEIGHT * level)) - tile_index * BUNDLE_WIDTH)
            count = 1 << rest
            if node.end > size or offset + count > width:
                raise ValueError(f"node {node} is not perfect in the tree of size {size}")
            tile = self.tile(level, tile_index, width)
            hashes = [tile[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(offset, offset + count)]
            while len(hashes) > 1:
                hashes = [hash_children(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
            out.append(hashes[0])
        return out

    def tile(self, level: int, index: int, width: int) -> bytes:
        """Hash tile ``level/index`` of ``width`` hashes (cached; tiles never change).

        A partial tile that is gone (the log may delete it once the full tile
        exists) is cut from the full tile.
        """
        key = (level, index, width)
        with self._lock:
            cached = self._tiles.get(key)
            if cached is not None:
                self._tiles.move_to_end(key)
                return cached
        path = f"/tile/{level}/{tile_path(index, width)}"
        resp = self._request("GET", path, none_if_404=width < BUNDLE_WIDTH)
        if resp is None:
            resp = self._get(f"/tile/{level}/{tile_path(index)}")
            data = resp.content[: width * HASH_SIZE]
        else:
            data = resp.content
        if len(data) != width * HASH_SIZE:
            raise ProtocolError(f"tile {path} is {len(data)} bytes, want {width * HASH_SIZE}")
        with self._lock:
            self._tiles[key] = data
            while len(self._tiles) > _TILE_CACHE:
                self._tiles.popitem(last=False)
        return data

    def leaf_hashes(self, begin: int, end: int, size: int) -> Iterator[tuple[int, bytes]]:
        """``(index, leaf hash)`` for ``[begin, end)`` from the level-0 tiles of the tree of ``size``."""
        for n in range(begin // BUNDLE_WIDTH, (end + BUNDLE_WIDTH - 1) // BUNDLE_WIDTH):
            width = min(BUNDLE_WIDTH, size - n * BUNDLE_WIDTH)
            tile = self.tile(0, n, width)
            for i in range(max(begin, n * BUNDLE_WIDTH), min(end, n * BUNDLE_WIDTH + width)):
                j = i - n * BUNDLE_WIDTH
                yield i, tile[j * HASH_SIZE : (j + 1) * HASH_SIZE]

    # --- entries --------------------------------------------------------------------------

    def entries(self, begin: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(index, body)`` of every entry in ``[begin, end)``, in order.

        ``end`` must be the size of a verified checkpoint: the last bundle is
        fetched as a partial bundle of that width.
        """
        for start, bodies in self.entry_batches(begin, end):
            for i, body in enumerate(bodies, start):
                yield i, body

    def entry_batches(self, begin: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
        """Like :meth:`entries`, a bundle (or a Rekor batch) at a time: ``(first index, bodies)``."""
        if not 0 <= begin <= end:
            raise ValueError(f"invalid entry range [{begin}, {end})")
        if begin == end:
            return
        if self._mode == "rekor":
            jobs = [
                _bind(self._rekor_batch, i, min(i + REKOR_BATCH, end)) for i in range(begin, end, REKOR_BATCH)
            ]
        else:
            jobs = [
                _bind(self._bundle, n, begin, end)
                for n in range(begin // BUNDLE_WIDTH, (end + BUNDLE_WIDTH - 1) // BUNDLE_WIDTH)
            ]
        yield from self._prefetched(jobs)

    def _bundle(self, n: int, begin: int, end: int) -> tuple[int, list[bytes]]:
        first = n * BUNDLE_WIDTH
        width = min(BUNDLE_WIDTH, end - first)
        resp = self._request("GET", f"/tile/entries/{tile_path(n, width)}", none_if_404=width < BUNDLE_WIDTH)
        if resp is None:  # the partial bundle is gone: the log grew past it
            bodies = parse_bundle(self._get(f"/tile/entries/{tile_path(n)}").content, BUNDLE_WIDTH)[:width]
        else:
            bodies = parse_bundle(resp.content, width)
        skip = max(0, begin - first)
        return first + skip, bodies[skip:] if skip else bodies

    def _rekor_batch(self, begin: int, end: int) -> tuple[int, list[bytes]]:
        wanted = list(range(begin, end))
        found = self.retrieve(wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise ProtocolError(f"entries/retrieve left out {len(missing)} entries, first {missing[0]}")
        return begin, [found[i].body for i in wanted]

    def retrieve(self, indexes: Sequence[int]) -> dict[int, RetrievedEntry]:
        """The entries at tree positions ``indexes`` from ``POST /api/v1/log/entries/retrieve``.

        Asks :data:`REKOR_BATCH` indexes per request. Rekor's log indexes are
        global: past a key rotation (a new shard) the active tree's leaf ``i``
        is global index ``offset + i``; the answer is keyed by tree position.
        Indexes the log left out are absent from the answer; an index not
        asked for, a malformed entry or a malformed ``attestation`` member is
        a :class:`ProtocolError`.
        """
        offset = self._offset()
        out: dict[int, RetrievedEntry] = {}
        for i in range(0, len(indexes), REKOR_BATCH):
            chunk = list(indexes[i : i + REKOR_BATCH])
            resp = self._request("POST", "/api/v1/log/entries/retrieve", json={"logIndexes": [offset + j for j in chunk]})
            assert resp is not None
            answer = self._json(resp)
            if not isinstance(answer, list):
                raise ProtocolError("entries/retrieve did not answer a list")
            asked = set(chunk)
            for item in answer:
                entry = _retrieved_entry(item, offset)
                if entry.log_index not in asked:
                    raise ProtocolError(f"entries/retrieve answered index {entry.log_index!r}, not asked for")
                out[entry.log_index] = entry
        return out

    def _prefetched(self, jobs: Sequence[Callable[[], T]]) -> Iterator[T]:
        """Run ``jobs`` up to ``parallel`` at a time, yielding results in order."""
        if self.parallel == 1 or len(jobs) == 1:
            for job in jobs:
                yield job()
            return
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="tlog-monitor-fetch")
        pending: collections.deque[Future[T]] = collections.deque()
        it: Iterator[Callable[[], T]] = iter(jobs)
        try:
            for job in _take(it, 2 * self.parallel):
                pending.append(pool.submit(job))
            while pending:
                result = pending.popleft().result()
                for job in _take(it, 1):
                    pending.append(pool.submit(job))
                yield result
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)


def _retrieved_entry(item: Any, offset: int) -> RetrievedEntry:
    if not isinstance(item, dict) or len(item) != 1:
        raise ProtocolError("entries/retrieve: an item is not a {uuid: entry} object")
    ((uuid, entry),) = item.items()
    try:
        index = entry["logIndex"]
        body = base64.b64decode(entry["body"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise ProtocolError("entries/retrieve: an entry has no logIndex or base64 body") from None
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProtocolError(f"entries/retrieve: logIndex {index!r} is not an integer")
    index -= offset  # the position in the active shard's tree
    attestation = entry.get("attestation")
    if attestation is not None:
        # Decoding the data is the caller's business: a payload that is not
        # base64 is evidence about that entry, not a broken API.
        data = attestation.get("data") if isinstance(attestation, dict) else None
        if not isinstance(data, str):
            raise ProtocolError(f"entries/retrieve: entry {index}'s attestation has no data string")
        attestation = data
    return RetrievedEntry(str(uuid), index, body, attestation)


def _take(it: Iterator[T], n: int) -> Iterable[T]:
    for _ in range(n):
        try:
            yield next(it)
        except StopIteration:
            return


def _bind(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    return lambda: fn(*args)


def _hex_hash(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE:
        raise ProtocolError(f"{what}: {value!r} is not a hex SHA-256 hash")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ProtocolError(f"{what}: {value!r} is not a hex SHA-256 hash") from None


def _index_offset(log_info: dict[str, Any]) -> int:
    """Entries in the frozen shards before the active one (Rekor's ``inactiveShards``)."""
    shards = log_info.get("inactiveShards") or []
    if not isinstance(shards, list):
        raise ProtocolError("GET /api/v1/log: inactiveShards is not a list")
    total = 0
    for shard in shards:
        size = shard.get("treeSize") if isinstance(shard, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError("GET /api/v1/log: an inactive shard has no treeSize")
        total += size
    return total
