"""Storage failures, made real: a database that crashes, a disk that fills up.

Nothing here is mocked. Each test breaks real storage under a real server and
checks what users see and what is left in the database:

1. **PostgreSQL crashes and comes back.** A private cluster (``initdb`` into a
   temporary directory, unix socket only; the machine's shared cluster is never
   touched) is killed with ``pg_ctl stop -m immediate`` under concurrent
   writers, then started again while ``tlog serve`` keeps running.
2. **PostgreSQL's disk fills up.** The tlog tables live in a tablespace on a
   tiny tmpfs, so inserts fail with SQLSTATE 53100 "could not extend file: No
   space left on device"; then the tmpfs is made larger.
3. **SQLite reaches its size limit.** ``PRAGMA max_page_count``, set on every
   pooled connection by an engine event of this test, makes inserts fail with
   SQLITE_FULL ("database or disk is full") in the middle of a batch.
4. **SQLite's filesystem fills up.** The database file sits on a tiny tmpfs; in
   WAL mode the dirty pages are written at COMMIT, so the failure (ENOSPC, i.e.
   SQLITE_FULL) lands in the sequencer's commit itself.

What must hold every time:

* the failing requests get a 503 ``{"code": 503, "message": ...}`` with a
  clear message ("storage is full" / "storage is unavailable") and
  ``Retry-After``, quickly (no 500, no hang);
* nothing is half-written: every table agrees with one batch boundary
  (:func:`assert_consistent` rebuilds every node and every signed root from
  the entry bodies), and on a full disk the refused entries are *not* in the
  log (resubmitted later, they get 201, not 409);
* every acknowledged entry is intact (``check_history``);
* service resumes by itself, without restarting tlog, when storage returns.

Tests 1, 2 and 4 need root (or the right capabilities) to run ``initdb`` as the
``postgres`` user and to mount a tmpfs; where that is impossible they skip
with the reason, except that ``TLOG_REQUIRE_POSTGRES=1`` (CI) turns a
PostgreSQL skip into a failure.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import event

import speclient
from conftest import LiveServer
from test_live_server import check_history
from tlog.config import Settings

pytestmark = pytest.mark.slow

Ack = tuple[str, int, str, str]  # (uuid, logIndex, body, checkpoint) as check_history wants them

#: A 503 must come back at least this fast: the failure is detected, not waited out.
FAST = 5.0


# --- these tests hammer from one address: no rate limits ---------------------------------

_RATE_LIMITS = ("submission_rate_limit", "signing_rate_limit", "read_rate_limit", "identity_rate_limit")


def unlimited(settings: Settings) -> Settings:
    """``settings`` with every per-client rate limit off (where this version has them)."""
    return settings.replace(**{f: "none" for f in _RATE_LIMITS if hasattr(Settings, f)})


def unlimited_args() -> tuple[str, ...]:
    """The same for ``tlog serve``."""
    return tuple(a for f in _RATE_LIMITS if hasattr(Settings, f) for a in ("--" + f.replace("_", "-"), "none"))


# --- what a failing request must look like ----------------------------------------------


def assert_503(resp: Any, *words: str) -> str:
    """A Rekor-shaped 503 with Retry-After whose message names the storage problem.

    ``resp`` is a ``requests`` response or a Flask test response.
    """
    body = resp.json() if isinstance(resp, requests.Response) else resp.get_json()
    assert resp.status_code == 503, (resp.status_code, body)
    assert set(body) == {"code", "message"} and body["code"] == 503, body
    message = body["message"]
    assert "storage" in message and all(w in message for w in words), message
    assert int(resp.headers["Retry-After"]) >= 1
    return str(message)


def ack_of(entry_response: dict[str, Any], key: speclient.LogKey) -> Ack:
    uuid, entry, _ = speclient.verify_entry(entry_response, key)
    return uuid, entry["logIndex"], entry["body"], entry["verification"]["inclusionProof"]["checkpoint"]


def signing_request() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "storage-test")]))
        .sign(key, hashes.SHA256())
    )
    return {"certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()}


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until it returns True; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


# --- what the database must look like ---------------------------------------------------


def assert_consistent(url: str) -> dict[str, int]:
    """Every tree in the database sits exactly on a batch boundary.

    Rebuilds each tree from its entry bodies and checks: indexes are dense and
    match the latest signed head; ``nodes`` holds exactly the perfect subtrees
    of that size (2n - popcount(n) of them) with the right hashes; every signed
    head's root is the root of its prefix; every search key points at an entry
    and every entry has one. A batch written in part would break one of these.
    Returns the tree sizes by purpose.
    """
    engine = sa.create_engine(url)
    sizes = {}
    try:
        with engine.connect() as conn:
            for tree, purpose in conn.execute(sa.text("SELECT id, purpose FROM trees")).all():
                p = {"t": tree}
                rows = conn.execute(
                    sa.text("SELECT log_index, leaf_hash, body FROM entries WHERE tree = :t ORDER BY log_index"), p
                ).all()
                n = len(rows)
                assert [r[0] for r in rows] == list(range(n)), f"{purpose}: indexes are not dense"
                leaves = [speclient.leaf_hash(bytes(r[2])) for r in rows]
                assert [bytes(r[1]) for r in rows] == leaves, f"{purpose}: a stored leaf hash is wrong"
                heads = conn.execute(sa.text("SELECT size, root_hash FROM tree_heads WHERE tree = :t ORDER BY size"), p).all()
                assert heads and heads[-1][0] == n, f"{purpose}: {n} entries but the latest head has size {heads[-1][0]}"
                for size, root in heads:
                    assert speclient.root_of(leaves[:size]) == bytes(root), f"{purpose}: head {size} has a wrong root"
                # Every perfect subtree, bottom up: level l holds floor(n / 2**l) nodes,
                # keyed (level << 48) | index as in tlog.storage.models.node_key.
                expected: dict[int, bytes] = {}
                level, height = leaves, 0
                while level:
                    expected.update({(height << 48) | i: h for i, h in enumerate(level)})
                    level = [speclient.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
                    height += 1
                assert len(expected) == 2 * n - n.bit_count()
                stored = {k: bytes(h) for k, h in conn.execute(sa.text("SELECT key, hash FROM nodes WHERE tree = :t"), p).all()}
                assert stored == expected, f"{purpose}: nodes do not match the {n} entries"
                indexed = {i for (i,) in conn.execute(sa.text("SELECT DISTINCT log_index FROM search_index WHERE tree = :t"), p)}
                assert indexed == set(range(n)), f"{purpose}: search index does not match the entries"
                sizes[purpose] = n
    finally:
        engine.dispose()
    return sizes


# --- real broken storage: a private PostgreSQL, a tiny filesystem ----------------------


def _skip_or_fail_postgres(reason: str) -> None:
    if os.environ.get("TLOG_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"TLOG_REQUIRE_POSTGRES=1 but a private PostgreSQL cannot run here: {reason}")
    pytest.skip(f"a private PostgreSQL cannot run here: {reason}")


def _pg_bindir() -> Path | None:
    candidates = []
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and all((Path(c) / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    return None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of this test: its own data directory, a
    unix socket in a private directory, no TCP, trust authentication.

    PostgreSQL refuses to run as root, so as root the server runs as the
    ``postgres`` OS user (``runuser``) in a directory that user owns.
    """

    SUPERUSER = "tlog_test_admin"

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            _skip_or_fail_postgres("no initdb/pg_ctl/postgres found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
        self.bin = bindir
        self.as_user: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                _skip_or_fail_postgres("running as root and there is no 'postgres' OS user to run the server as")
            if shutil.which("runuser") is None:
                _skip_or_fail_postgres("running as root and runuser(1) is missing")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp_path: that is private to root (0700), and the
        # server runs as another user.
        self.base = Path(tempfile.mkdtemp(prefix="tlog-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.sockets.mkdir()
        self.uid, self.gid = (owner.pw_uid, owner.pw_gid) if owner else (os.getuid(), os.getgid())
        for d in (self.base, self.sockets):
            os.chown(d, self.uid, self.gid)
            d.chmod(0o755)
        self.running = False
        try:
            self._run("initdb", "-D", self.data, "-U", self.SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        except subprocess.CalledProcessError as exc:
            self.cleanup()
            _skip_or_fail_postgres(f"initdb failed: {exc.stderr.strip() or exc.stdout.strip()}")

    def _run(self, tool: str, *args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*self.as_user, str(self.bin / tool), *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout, cwd=self.base)

    def start(self) -> None:
        # fsync=off: what these tests break is the server *process* (and the
        # disk's free space), never the machine; the kernel keeps what was
        # written, so an acknowledged commit survives `-m immediate` anyway,
        # and crash recovery does not wait for the disk.
        opts = f"-k {self.sockets} -c listen_addresses='' -c max_connections=100 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-l", self.base / "server.log", "-o", opts, "-w", "-t", "30", "start")
        self.running = True

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once,
        without a checkpoint, as after a crash; the next start runs recovery."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        self.running = False

    def sql(self, statement: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=str(self.sockets), user=self.SUPERUSER, dbname=dbname, autocommit=True, connect_timeout=5) as c:
            c.execute(statement)  # type: ignore[arg-type]

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.SUPERUSER}@/{dbname}?host={self.sockets}"

    def log(self) -> str:
        p = self.base / "server.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def cleanup(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.crash()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
    except subprocess.CalledProcessError as exc:
        log = pg.log()
        pg.cleanup()
        _skip_or_fail_postgres(f"pg_ctl start failed: {exc.stderr.strip()}\n{log}")
    try:
        yield pg
    finally:
        pg.cleanup()


class TinyFilesystem:
    """A size-limited tmpfs: writes past its size fail with ENOSPC, as on a full
    disk. ``resize`` grows or shrinks it in place (``mount -o remount``)."""

    def __init__(self, where: Path, size: int, *, uid: int = 0, gid: int = 0) -> None:
        self.path = where
        where.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0700,uid={uid},gid={gid}"
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tlog-test-tmpfs", str(where)], capture_output=True, text=True, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            pytest.skip(f"cannot mount a tmpfs to fill up (needs root / CAP_SYS_ADMIN): {detail.strip()}")

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], capture_output=True, text=True, check=True, timeout=10)

    def unmount(self) -> None:
        if subprocess.run(["umount", str(self.path)], check=False, capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True, timeout=30)  # busy: detach


# --- load -------------------------------------------------------------------------------


class Writers:
    """Threads that submit fresh entries until stopped, recording every answer."""

    def __init__(self, url: str, key: speclient.LogKey, count: int) -> None:
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.acknowledged: list[Ack] = []
        self.refused: list[tuple[float, str]] = []  # (seconds, message) of each 503
        self.unexpected: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _run(self, i: int) -> None:
        session = requests.Session()
        identity = speclient.make_identity(f"writer{i}@example.com")
        while not self.stop.is_set():
            req, _ = speclient.hashedrekord(identity)
            started = time.monotonic()
            try:
                resp = session.post(self.url + "/api/v1/log/entries", json=req, timeout=60)
            except requests.RequestException as exc:
                self.unexpected.append(f"no answer: {exc}")
                continue
            elapsed = time.monotonic() - started
            if resp.status_code == 201:
                self.acknowledged.append(ack_of(resp.json(), self.key))
            elif resp.status_code == 503:
                try:
                    self.refused.append((elapsed, assert_503(resp)))
                except AssertionError as exc:
                    self.unexpected.append(f"bad 503: {exc}")
                time.sleep(0.05)
            else:
                self.unexpected.append(f"{resp.status_code} {resp.text[:300]}")


def fresh_get(url: str, **kw: Any) -> requests.Response:
    """A request on a new connection each time, so that the answers come from
    every worker process in turn, not only the one a kept-alive connection sticks to."""
    with requests.Session() as s:
        return s.get(url, timeout=30, headers={"Connection": "close"}, **kw)


def fresh_post(url: str, **kw: Any) -> requests.Response:
    with requests.Session() as s:
        return s.post(url, timeout=30, headers={"Connection": "close", **kw.pop("headers", {})}, **kw)


# --- 1. PostgreSQL crashes and comes back ------------------------------------------------


@pytest.mark.postgres
def test_postgres_crash_under_load_then_recovery(tmp_path: Path, private_postgres: PrivatePostgres) -> None:
    from tlog.ca.devoidc import DevIssuer

    pg = private_postgres
    pg.sql('CREATE DATABASE "tlog"')
    settings = Settings(data_dir=tmp_path / "data", database_url=pg.url("tlog"), origin="pgcrash.example/log")
    server = LiveServer(settings, workers=2, threads=8, extra_args=("--dev-oidc", *unlimited_args())).start()
    try:
        url = server.url
        key = speclient.LogKey.from_pem(requests.get(url + "/api/v1/log/publicKey", timeout=30).content)
        dev = DevIssuer.load(settings.data_dir)
        acknowledged = speclient.submit_many(url, 5, "before@example.com")
        assert fresh_post(url + "/api/v2/signingCert", json=signing_request(), headers={"Authorization": "Bearer " + dev.mint("ca@example.com")}).status_code == 200

        with Writers(url, key, 4) as writers:
            time.sleep(0.5)
            pg.crash()  # under load: batches in flight die with their connections
            crashed_at = time.monotonic()

            # While the database is down, everything that needs it answers 503
            # quickly, with a message that says what is wrong: writes, reads, the CA.
            for _ in range(3):  # fresh connections: reach both workers
                probes = [
                    fresh_post(url + "/api/v1/log/entries", json=speclient.hashedrekord(speclient.make_identity())[0]),
                    fresh_get(url + "/api/v1/log"),
                    fresh_get(url + "/api/v1/log/entries", params={"logIndex": 0}),
                    fresh_post(url + "/api/v1/log/entries/retrieve", json={"logIndexes": [0]}),
                    fresh_get(url + "/checkpoint"),
                    fresh_get(url + "/tile/entries/000.p/1"),
                    fresh_get(url + "/certificates/checkpoint"),
                    fresh_post(url + "/api/v2/signingCert", json=signing_request(), headers={"Authorization": "Bearer " + dev.mint("ca@example.com")}),
                ]
                for resp in probes:
                    assert resp.elapsed.total_seconds() < FAST, (resp.url, resp.elapsed)
                    assert "unavailable" in assert_503(resp), resp.url
            assert fresh_get(url + "/healthz").status_code == 200  # the server itself is fine
            time.sleep(max(0.0, 1.5 - (time.monotonic() - crashed_at)))
            down_for = time.monotonic() - crashed_at

            # The database comes back; tlog is not restarted and resumes by itself.
            pg.start()
            restarted_at = time.monotonic()
            identity = speclient.make_identity("after@example.com")

            def accepts_writes() -> bool:
                resp = fresh_post(url + "/api/v1/log/entries", json=speclient.hashedrekord(identity)[0])
                if resp.status_code == 201:
                    acknowledged.append(ack_of(resp.json(), key))
                    return True
                assert_503(resp)  # nothing but a clean 503 in the meantime
                return False

            wait_for("writes after PostgreSQL returned", accepts_writes, timeout=10)
            resumed_after = time.monotonic() - restarted_at
            time.sleep(0.3)  # the writers keep going on the recovered database

        print(f"\nPostgreSQL down {down_for:.1f}s; writes resumed {resumed_after:.2f}s after it was back; "
              f"writers: {len(writers.acknowledged)} acknowledged, {len(writers.refused)} refused with 503 "
              f"(slowest {max((s for s, _ in writers.refused), default=0):.2f}s): {sorted({m for _, m in writers.refused})}")  # fmt: skip
        assert not writers.unexpected, writers.unexpected[:5]
        assert writers.refused, "the writers never saw the outage"
        assert max(s for s, _ in writers.refused) < FAST, "a refused submission hung"
        assert all("unavailable" in m for _, m in writers.refused), {m for _, m in writers.refused}
        acknowledged += writers.acknowledged

        # Everything works again, on every worker: writes, reads, the CA.
        acknowledged += speclient.submit_many(url, 5, "later@example.com")
        for _ in range(4):
            assert fresh_get(url + "/api/v1/log").status_code == 200
            assert fresh_get(url + "/certificates/checkpoint").status_code == 200
        assert fresh_post(url + "/api/v2/signingCert", json=signing_request(), headers={"Authorization": "Bearer " + dev.mint("ca@example.com")}).status_code == 200

        # Every acknowledged entry is there, where and as it was acknowledged.
        # Entries whose answer was lost in the crash may exist too (exact=False).
        check_history(url, acknowledged, exact=False)
    finally:
        server.stop()
    sizes = assert_consistent(pg.url("tlog"))
    assert sizes["entries"] >= len(acknowledged) and sizes["certificates"] >= 2


# --- 2. PostgreSQL's disk fills up -------------------------------------------------------


@pytest.mark.postgres
def test_postgres_disk_full_then_more_space(tmp_path: Path, private_postgres: PrivatePostgres) -> None:
    pg = private_postgres
    # The tlog tables go to a tablespace on a tiny tmpfs; the WAL stays on the
    # big disk, so PostgreSQL fails single statements with 53100 disk_full
    # (a full WAL disk would be a PANIC and a restart instead: test 1).
    tiny = TinyFilesystem(pg.base / "tiny", 64 << 20, uid=pg.uid, gid=pg.gid)
    try:
        pg.sql(f"CREATE TABLESPACE tiny LOCATION '{tiny.path}'")
        pg.sql('CREATE DATABASE "tlog"')
        pg.sql('ALTER DATABASE "tlog" SET default_tablespace = tiny')
        settings = Settings(data_dir=tmp_path / "data", database_url=pg.url("tlog"), origin="pgfull.example/log")
        server = LiveServer(settings, workers=2, threads=4, extra_args=unlimited_args()).start()
        try:
            fill_up_and_recover(server.url, pg.url("tlog"), tiny, headroom=64 << 10)
        finally:
            server.stop()
        assert "No space left on device" in pg.log()
    finally:
        pg.crash()
        tiny.unmount()


def fill_up_and_recover(url: str, db_url: str, fs: TinyFilesystem, *, headroom: int) -> None:
    """On a live server whose database lives on ``fs``: shrink ``fs`` to what is
    used plus ``headroom``, submit until the disk is full, check the refusals and
    the database, give space back, check that service resumes by itself."""
    key = speclient.LogKey.from_pem(requests.get(url + "/api/v1/log/publicKey", timeout=30).content)
    acknowledged = speclient.submit_many(url, 5, "before@example.com")
    fs.resize(fs.used() + headroom)

    session = requests.Session()
    identity = speclient.make_identity("filler@example.com")
    refused: list[dict[str, Any]] = []
    for _ in range(2000):
        req, _ = speclient.hashedrekord(identity)
        resp = session.post(url + "/api/v1/log/entries", json=req, timeout=30)
        if resp.status_code == 201:
            acknowledged.append(ack_of(resp.json(), key))
            continue
        assert resp.elapsed.total_seconds() < FAST
        print("\nfirst refusal:", assert_503(resp))
        assert "full" in assert_503(resp)
        refused.append(req)
        break
    assert refused, f"the disk never filled up ({len(acknowledged)} entries)"
    # A concurrent burst while full: batches of several entries fail as a whole.
    with ThreadPoolExecutor(8) as pool:
        burst = [speclient.hashedrekord(speclient.make_identity(f"burst{i}@example.com"))[0] for i in range(16)]
        for req, resp in zip(burst, pool.map(lambda r: requests.post(url + "/api/v1/log/entries", json=r, timeout=30), burst)):
            if resp.status_code == 201:  # a small batch that still fitted
                acknowledged.append(ack_of(resp.json(), key))
            else:
                assert "full" in assert_503(resp)
                refused.append(req)
    print(f"\n{len(acknowledged)} entries acknowledged, then {len(refused)} refused: storage is full")

    # Reads still work, and the database holds whole batches only.
    assert session.get(url + "/api/v1/log", timeout=30).json()["treeSize"] == len(acknowledged)
    assert assert_consistent(db_url)["entries"] == len(acknowledged)

    # Space comes back; no restart. The refused entries were never written:
    # they are accepted now as new entries (201, not 409).
    fs.resize(fs.used() + (64 << 20))
    for req in refused:
        resp = session.post(url + "/api/v1/log/entries", json=req, timeout=30)
        assert resp.status_code == 201, (resp.status_code, resp.text)
        acknowledged.append(ack_of(resp.json(), key))
    acknowledged += speclient.submit_many(url, 3, "after@example.com")
    # The log holds exactly the acknowledged entries: nothing refused slipped in.
    check_history(url, acknowledged, exact=True)
    assert assert_consistent(db_url)["entries"] == len(acknowledged)


# --- 3. SQLite reaches PRAGMA max_page_count ---------------------------------------------


def test_sqlite_full_at_max_page_count(tmp_path: Path) -> None:
    """In-process (the limit must be set on the server's own connections): the
    app and its sequencer thread, driven through Flask's test client."""
    from tlog.api.app import create_app

    db_file = tmp_path / "db" / "tlog.db"
    settings = unlimited(
        Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{db_file}",
            origin="sqlitefull.example/log",
            dev_oidc=True,
            public_url="http://127.0.0.1:1",
        )
    )
    app = create_app(settings)
    engine = app.extensions["tlog"].engine
    # SQLite's size limit is per connection: apply the current one at every
    # checkout from the pool (so raising it needs no restart, as freeing disk
    # space would not).
    limit = {"pages": 1 << 30}

    @event.listens_for(engine, "checkout")
    def _apply_limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

    client = app.test_client()
    key = speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)
    dev = app.extensions["tlog"].ca.dev_issuer
    identity = speclient.make_identity("sqlite@example.com")

    def submit(req: dict[str, Any]) -> Any:
        return app.test_client().post("/api/v1/log/entries", json=req)

    def issue() -> Any:
        token = dev.mint("ca@example.com")
        return client.post("/api/v2/signingCert", json=signing_request(), headers={"Authorization": f"Bearer {token}"})

    def page_count() -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())

    try:
        acknowledged = [ack_of(submit(speclient.hashedrekord(identity)[0]).get_json(), key) for _ in range(5)]
        assert issue().status_code == 200
        limit["pages"] = page_count() + 6

        refused: list[dict[str, Any]] = []
        for _ in range(500):
            req = speclient.hashedrekord(identity)[0]
            resp = submit(req)
            if resp.status_code != 201:
                assert "full" in assert_503(resp)
                refused.append(req)
                break
            acknowledged.append(ack_of(resp.get_json(), key))
        assert refused, "the database never filled up"
        # Concurrent submissions while full: multi-entry batches, each failing
        # as a whole, half-way through its inserts.
        burst = [speclient.hashedrekord(speclient.make_identity(f"b{i}@example.com"))[0] for i in range(24)]
        with ThreadPoolExecutor(12) as pool:
            for req, resp in zip(burst, pool.map(submit, burst)):
                if resp.status_code == 201:
                    acknowledged.append(ack_of(resp.get_json(), key))
                else:
                    assert "full" in assert_503(resp)
                    refused.append(req)
        assert len(refused) > 1
        # The CA's certificate log shares the database. Its entries are smaller,
        # so a few may still fit; then it is refused as well.
        certificates = 1
        for _ in range(100):
            resp = issue()
            if resp.status_code != 200:
                assert "full" in assert_503(resp)
                break
            certificates += 1
        else:
            raise AssertionError("the CA never ran out of space")
        # Reads still work; the database holds whole batches only.
        assert client.get("/api/v1/log").get_json()["treeSize"] == len(acknowledged)
        assert assert_consistent(settings.database_url or "") == {"entries": len(acknowledged), "certificates": certificates}

        # The limit goes up: service resumes, no restart. The refused entries
        # were never written: they are new entries now (201, not 409).
        limit["pages"] = 1 << 30
        for req in refused:
            resp = submit(req)
            assert resp.status_code == 201, resp.get_json()
            acknowledged.append(ack_of(resp.get_json(), key))
        assert issue().status_code == 200
        assert assert_consistent(settings.database_url or "") == {"entries": len(acknowledged), "certificates": certificates + 1}
    finally:
        engine.dispose()

    # And a real server on the same file rebuilds exactly what was acknowledged.
    server = LiveServer(settings.replace(dev_oidc=False), workers=1, threads=4, extra_args=unlimited_args()).start()
    try:
        check_history(server.url, acknowledged, exact=True)
    finally:
        server.stop()


# --- 4. SQLite's filesystem fills up (ENOSPC in COMMIT) ----------------------------------


def test_sqlite_disk_full_then_more_space(tmp_path: Path) -> None:
    fs = TinyFilesystem(tmp_path / "tiny", 64 << 20)
    try:
        settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{fs.path / 'tlog.db'}", origin="diskfull.example/log")
        server = LiveServer(settings, workers=2, threads=4, extra_args=unlimited_args()).start()
        try:
            fill_up_and_recover(server.url, settings.database_url or "", fs, headroom=32 << 10)
        finally:
            server.stop()
        assert "database or disk is full" in server.log()
    finally:
        fs.unmount()


# --- 5. SQLite locked by another process --------------------------------------------------

_HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # SQLite's single write lock, held
print("locked", flush=True)
time.sleep(600)
"""


def test_sqlite_locked_by_another_process(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock: submissions wait, answer 503
    after ``submit_timeout`` (reads go on), and once the lock is gone the waiting
    batch is written; a retry learns the entry's fate (409 with its location)."""
    import sys

    from tlog.api.app import create_app

    db_file = tmp_path / "db" / "tlog.db"
    settings = unlimited(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{db_file}", origin="locked.example/log", ca=False, submit_timeout=2.0)
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        key = speclient.LogKey.from_pem(client.get("/api/v1/log/publicKey").data)
        identity = speclient.make_identity("locked@example.com")
        acknowledged = [ack_of(client.post("/api/v1/log/entries", json=speclient.hashedrekord(identity)[0]).get_json(), key) for _ in range(3)]

        holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(db_file)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            req = speclient.hashedrekord(identity)[0]
            started = time.monotonic()
            resp = client.post("/api/v1/log/entries", json=req)
            assert time.monotonic() - started < 2.0 + FAST
            body = resp.get_json()
            assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1, body
            assert "not integrated within 2s" in body["message"] and "retry" in body["message"], body
            # Readers are not blocked by a writer (WAL).
            assert client.get("/api/v1/log").get_json()["treeSize"] == 3
        finally:
            holder.kill()  # dies holding the lock: the OS releases it
            holder.wait()
            assert holder.stdout is not None
            holder.stdout.close()

        # The batch that waited for the lock goes through; its answer was lost.
        def written() -> bool:
            return bool(client.get("/api/v1/log").get_json()["treeSize"] == 4)

        wait_for("the waiting batch", written, timeout=10)
        retry = client.post("/api/v1/log/entries", json=req)
        assert retry.status_code == 409, retry.get_json()
        entry = client.get(retry.headers["Location"]).get_json()
        acknowledged.append(ack_of(entry, key))
        assert acknowledged[-1][1] == 3
        assert assert_consistent(settings.database_url or "")["entries"] == 4
    finally:
        app.extensions["tlog"].engine.dispose()
