#!/usr/bin/env python3
"""Benchmark ``tlog serve`` over HTTP: submissions, proofs, certificates, and the framework's ceiling.

Run it as ``scripts/bench`` (sets up .venv) or ``.venv/bin/python scripts/bench.py``.

Per backend (SQLite, then PostgreSQL when one answers on /var/run/postgresql)
it starts ``tlog serve`` with its *default* workers and threads on a fresh
log and measures POST /api/v1/log/entries, GET /api/v1/log/entries?logIndex=
(inclusion proof + SET) and GET /api/v1/log/proof (consistency); then it
starts ``tlog serve --dev-oidc`` on a fresh data dir and database and
measures POST /api/v2/signingCert with pre-minted tokens and pre-built CSRs
(token verification, issuance, SCT and the certificate-log append are all
timed). A trivial Flask app under the same gunicorn settings gives the
ceiling both are compared with. A random sample of every kind of response is
then checked by the independent verifier in tests/speclient.py (and
certificates against the trust config): a fast wrong log is worthless.

The load generator is closed-loop: a connection sends its next request as
soon as the previous response is complete. It is callback-driven asyncio
(``asyncio.Protocol``: no coroutine, no HTTP library per request) over
keep-alive HTTP/1.1, with every request serialised to bytes beforehand, split
over ``--clients`` forked processes. Against a bare asyncio responder it
sustains >40k req/s per process, ten times what gunicorn does here. On a
small machine the client steals CPU from the server whatever it is written
in, so each row shows the CPU used by the server, its PostgreSQL backends,
the client and everything else (other jobs make figures noisy), in % of a core.

The results go to a JSON file and, with matplotlib, to a PNG of the same stem
(``--png``): the rates against the ceiling, and their share of it against the
goals. ``--plot-only JSON`` redraws a saved results file without measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from array import array
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() and VENV_PYTHON.exists():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # tlog, gunicorn and psycopg live there

sys.path.insert(0, str(ROOT / "tests"))
import speclient  # noqa: E402  (the independent verifier: nothing of tlog's own is trusted)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

PG_SOCKET_DIR = os.environ.get("TLOG_TEST_PG_HOST", "/var/run/postgresql")
HOST = "127.0.0.1"
ORIGIN = "bench.example/tlog"
_TICK = os.sysconf("SC_CLK_TCK")

# --- load generator --------------------------------------------------------------------


class _Run:
    """One client process's share of a measurement: its requests, deadline and tallies."""

    def __init__(self, reqs: list[bytes], unique: bool, expect: int, sample: int) -> None:
        self.reqs, self.unique, self.expect, self.sample = reqs, unique, expect, sample
        self.next, self.end_at, self.last, self.ok, self.errors = 0, 0.0, 0.0, 0, 0
        self.latencies = array("d")
        self.samples: list[tuple[int, bytes]] = []  # reservoir of (request index, response body)
        self.error_samples: list[str] = []
        self.rng = random.Random(os.getpid())

    def take(self) -> int | None:
        if time.monotonic() >= self.end_at or (self.unique and self.next >= len(self.reqs)):
            return None
        self.next += 1
        return (self.next - 1) % len(self.reqs)

    def record(self, i: int, latency: float, status: int, body: bytes) -> None:
        self.last = time.monotonic()
        self.latencies.append(latency)
        if status != self.expect:
            self.fail(f"HTTP {status}: {body[:300]!r}")
            return
        self.ok += 1
        if len(self.samples) < self.sample:
            self.samples.append((i, body))
        elif (j := self.rng.randrange(self.ok)) < self.sample:
            self.samples[j] = (i, body)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


class _Conn(asyncio.Protocol):
    """A keep-alive connection with one request in flight, driven by callbacks alone."""

    def __init__(self, run: _Run) -> None:
        self.run, self.buf, self.need, self.i = run, bytearray(), -1, None
        self.finished = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def go(self) -> None:
        self.i = self.run.take()
        if self.i is None:
            self.transport.close()
            return
        self.t0 = time.monotonic()
        self.transport.write(self.run.reqs[self.i])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:  # still reading the headers
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            p = head.find(b"\r\ncontent-length:")
            if p < 0:  # gunicorn+Flask always send a length; anything else deserves a look
                self.run.fail(f"response without Content-Length: {head[:200]!r}")
                self.i = None
                self.transport.close()
                return
            q = head.find(b"\r\n", p + 17)
            self.status, self.body_at = int(head[9:12]), end + 4
            self.need = self.body_at + int(head[p + 17 : q if q >= 0 else None])
        if len(buf) < self.need:
            return
        assert self.i is not None
        self.run.record(self.i, time.monotonic() - self.t0, self.status, bytes(buf[self.body_at : self.need]))
        del buf[: self.need]
        self.need = -1
        self.go()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.i is not None:
            self.run.fail(f"connection lost mid-request: {exc or 'closed by server'}")
        if not self.finished.done():
            self.finished.set_result(None)


def _client_main(pipe, port: int, reqs: list[bytes], conns: int, unique: bool, expect: int, sample: int) -> None:  # type: ignore[no-untyped-def]
    async def main() -> dict:
        loop = asyncio.get_running_loop()
        run = _Run(reqs, unique, expect, sample)
        protos = [(await loop.create_connection(lambda: _Conn(run), HOST, port))[1] for _ in range(conns)]
        pipe.send("ready")  # connections are open before the clock starts
        start_at, run.end_at = pipe.recv()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = sum(os.times()[:2])
        for p in protos:
            p.go()
        await asyncio.gather(*(p.finished for p in protos))
        return {"ok": run.ok, "errors": run.errors, "error_samples": run.error_samples, "samples": run.samples,
                "latencies": run.latencies.tobytes(), "last": run.last, "cpu": sum(os.times()[:2]) - cpu0,
                "taken": run.next}  # fmt: skip

    try:
        pipe.send(asyncio.run(main()))
    except Exception:  # noqa: BLE001 - the parent reports it
        pipe.send({"crash": traceback.format_exc()})


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid``, those of every thread (tlog serve's writer is spawned by a watcher thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_snapshot(pids: list[int], children: bool = False) -> dict[int, float]:
    """CPU seconds used so far by each live process of ``pids`` (and their children: gunicorn workers)."""
    if children:
        pids = pids + child_pids(pids[0])
    out = {}
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    # A process gone by the second snapshot counts for nothing: a lower bound.
    return sum(t - before.get(p, 0.0) for p, t in after.items())


def machine_busy() -> float:
    """CPU seconds the whole machine has spent neither idle nor waiting for I/O."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


def run_load(port: int, reqs: list[bytes], *, concurrency: int, duration: float, clients: int, server_pid: int,
             db_pids=list, unique: bool = False, expect: int = 200, sample: int = 200) -> dict:  # type: ignore[no-untyped-def]  # fmt: skip
    """Drive ``reqs`` (cycled, or each at most once if ``unique``) at ``concurrency`` for ``duration`` s."""
    k = min(clients, concurrency)
    ctx = mp.get_context("fork")  # children inherit the pre-built requests without pickling
    procs, pipes = [], []
    for c in range(k):
        mine, theirs = ctx.Pipe()
        conns = concurrency // k + (c < concurrency % k)
        procs.append(ctx.Process(target=_client_main, args=(theirs, port, reqs[c::k], conns, unique, expect, sample), daemon=True))
        procs[-1].start()
        pipes.append(mine)
    if bad := [m for m in (pipe.recv() for pipe in pipes) if m != "ready"]:
        raise RuntimeError(f"load client failed to start: {bad[0]}")
    start = time.monotonic() + 0.05
    srv0, db0, busy0 = cpu_snapshot([server_pid], True), cpu_snapshot(db_pids()), machine_busy()
    for pipe in pipes:
        pipe.send((start, start + duration))
    parts = [pipe.recv() for pipe in pipes]
    wall = time.monotonic() - start
    srv, busy = cpu_used(srv0, cpu_snapshot([server_pid], True)), machine_busy() - busy0
    db, cli = cpu_used(db0, cpu_snapshot(db_pids())), sum(r.get("cpu", 0) for r in parts)
    for p in procs:
        p.join()
    if crashed := [r["crash"] for r in parts if "crash" in r]:
        raise RuntimeError("load client crashed:\n" + crashed[0])
    lat = sorted(x for r in parts for x in array("d", r["latencies"]))
    n = len(lat)
    elapsed = max([r["last"] for r in parts if r["last"]] or [start]) - start
    samples = [(c + i * k, body) for c, r in enumerate(parts) for i, body in r["samples"]]
    return {
        "requests": n, "ok": sum(r["ok"] for r in parts), "errors": sum(r["errors"] for r in parts),
        "seconds": elapsed, "rate": n / elapsed if elapsed > 0 else 0.0,
        "p50_ms": lat[(n - 1) // 2] * 1000 if n else 0.0, "p99_ms": lat[int(0.99 * (n - 1))] * 1000 if n else 0.0,
        "server_cpu_pct": 100 * srv / wall, "db_cpu_pct": 100 * db / wall, "client_cpu_pct": 100 * cli / wall,
        "other_cpu_pct": max(0.0, 100 * (busy - srv - db - cli) / wall),
        "error_samples": [e for r in parts for e in r["error_samples"]],
        "samples": random.sample(samples, min(sample, len(samples))),
        # One past the highest request index sent: a unique series continues from there.
        "consumed": max((c + (r["taken"] - 1) * k + 1 for c, r in enumerate(parts) if r["taken"]), default=0),
    }  # fmt: skip


def http_request(method: str, path: str, port: int, body: bytes = b"", headers: tuple[str, ...] = ("Accept: application/json",)) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n" + "".join(h + "\r\n" for h in headers)
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# --- servers, databases, request bodies ------------------------------------------------


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()  # type: ignore[no-any-return]


class Server:
    """A gunicorn master (tlog serve or the ceiling app) on a free port, in its own process group."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.log_path, self.url = log_path, f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        self.logf = open(self.log_path, "ab")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                http_get(self.url + "/healthz")
                return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"server did not come up (exit code {self.proc.returncode}):\n{self.log_path.read_text()}")

    def __exit__(self, *exc: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole group: master and workers
            with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
                if self.proc.poll() is None:
                    os.killpg(self.pid, sig)
                self.proc.wait(timeout=20)
                break
        self.logf.close()


@contextlib.contextmanager
def postgres_database():  # type: ignore[no-untyped-def]
    """Yield (SQLAlchemy URL, server version, backend pids) of a fresh database, or (None, why not, None)."""
    import psycopg

    try:
        admin = psycopg.connect(host=PG_SOCKET_DIR, dbname="postgres", autocommit=True, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        yield None, f"no PostgreSQL server reachable over {PG_SOCKET_DIR}: {exc}".strip(), None
        return
    name = f"tlog_bench_{secrets.token_hex(4)}"
    with admin:
        version = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            sql = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
            yield f"postgresql+psycopg:///{name}?host={PG_SOCKET_DIR}", version, lambda: [r[0] for r in admin.execute(sql, (name,))]
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BodyPool:
    """Unique signed hashedrekord request bodies, signed before any clock runs.

    Every log starts at the beginning of the pool: bodies need only be unique
    within one log, and signing them once saves time.
    """

    def __init__(self) -> None:
        self.identities = [speclient.make_identity(f"bench{i}@example.com") for i in range(32)]
        self.bodies: list[bytes] = []

    def get(self, start: int, count: int) -> list[bytes]:
        while len(self.bodies) < start + count:
            req, _digest = speclient.hashedrekord(self.identities[len(self.bodies) % len(self.identities)])
            self.bodies.append(json.dumps(req).encode())
        return self.bodies[start : start + count]


class CertRequestPool:
    """Unique ``POST /api/v2/signingCert`` requests, each with a fresh token and a fresh key.

    Built before the clock runs (only the server's work is timed): the token is
    minted by the server's development issuer (its key is in the data
    directory, as for ``tlog dev-token``), the request is what sigstore-python
    sends (a CSR of a new P-256 key with an empty subject and BasicConstraints
    CA:FALSE, base64 PEM, token as ``Authorization: Bearer``). Identities
    alternate between e-mail and GitHub Actions and are never reused, so every
    request pays the full check and issuance and the per-identity rate limit
    (300/minute by default) never applies. ``expected[i]`` is what request i's
    certificate must say: (SAN, issuer, DER SubjectPublicKeyInfo), taken from
    the token and key here, not from anything the server says.
    """

    def __init__(self, data_dir: Path) -> None:
        # Minting only: nothing tlog's code says is trusted when verifying.
        from tlog.ca.devoidc import DevIssuer

        self.dev = DevIssuer.load(data_dir)
        self.bodies: list[tuple[str, bytes]] = []  # (token, JSON body)
        self.expected: list[tuple[str, str, bytes]] = []

    def get(self, port: int, start: int, count: int) -> list[bytes]:
        while len(self.bodies) < start + count:
            n = len(self.bodies)
            token = self.dev.mint(f"bench{n}@example.com") if n % 2 == 0 else self.dev.mint(f"bench-org/repo-{n}", type="github")
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            san = claims["email"] if n % 2 == 0 else "https://github.com/" + claims["job_workflow_ref"]
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))  # fmt: skip
            body = json.dumps({"certificateSigningRequest": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()})
            spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            self.bodies.append((token, body.encode()))
            self.expected.append((san, claims["iss"], spki))
        headers = ("Accept: application/pem-certificate-chain",)
        return [http_request("POST", "/api/v2/signingCert", port, body, (*headers, f"Authorization: Bearer {token}"))
                for token, body in self.bodies[start : start + count]]  # fmt: skip


CEILING_APP = """\
from flask import Flask, jsonify, request
app = Flask(__name__)

@app.post("/echo")
def echo():
    return jsonify({"ok": True, "fields": len(request.get_json())}), 201

@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
"""


def ceiling_command(directory: Path, workers: int, threads: int) -> list[str]:
    """gunicorn serving :data:`CEILING_APP` (written into ``directory``) with tlog serve's settings; ``{port}`` to fill."""
    (directory / "ceiling_app.py").write_text(CEILING_APP)
    return [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", str(workers), "--threads", str(threads),
            "--bind", HOST + ":{port}", "--keep-alive", "5", "--timeout", "60", "--chdir", str(directory), "ceiling_app:app"]  # fmt: skip


def serve_defaults() -> tuple[int, int]:
    """``tlog serve``'s default workers and threads on this machine (the CLI's own defaults)."""
    from tlog.cli import serve
    from tlog.server import default_workers

    return default_workers(), next(o.default for o in serve.params if o.name == "threads")


# --- verification ----------------------------------------------------------------------


class Verifier:
    """Checks sampled responses with tests/speclient.py and tallies the outcome per kind."""

    def __init__(self, url: str) -> None:
        self.url, self.key = url, speclient.LogKey.from_pem(http_get(url + "/api/v1/log/publicKey"))
        self.roots: dict[int, bytes] = {}  # tree size -> root, from verified checkpoints only
        self.tally: dict[str, list[int]] = {}
        self.failures: list[str] = []

    def check(self, kind: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
        t = self.tally.setdefault(kind, [0, 0])
        try:
            fn(*args)
            t[0] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
        t[1] += 1

    def _remember(self, cp: speclient.ParsedCheckpoint) -> None:
        if self.roots.setdefault(cp.size, cp.root) != cp.root:
            raise speclient.VerificationError(f"two different roots signed for size {cp.size}: a fork")

    def submission(self, request_body: bytes, response: bytes) -> None:
        _uuid, entry, cp = speclient.verify_entry(json.loads(response), self.key)
        self._remember(cp)
        logged = json.loads(speclient.base64.b64decode(entry["body"]))["spec"]
        sent = json.loads(request_body)["spec"]
        if (logged["data"]["hash"], logged["signature"]["content"]) != (sent["data"]["hash"], sent["signature"]["content"]):
            raise speclient.VerificationError("the logged entry is not the one submitted")

    def final_head(self, acknowledged: int) -> None:
        head = json.loads(http_get(self.url + "/api/v1/log"))
        self.final = speclient.verify_checkpoint(head["signedTreeHead"], self.key)
        self._remember(self.final)
        if self.final.size != acknowledged:  # no entry lost, none invented
            raise speclient.VerificationError(f"tree size {self.final.size} but {acknowledged} submissions got 201")

    def inclusion(self, index: int, response: bytes) -> None:
        _uuid, entry, cp = speclient.verify_entry(json.loads(response), self.key)
        if entry["logIndex"] != index or (cp.size, cp.root) != (self.final.size, self.final.root):
            raise speclient.VerificationError(f"entry {index}: wrong index or not proven against the final head")

    def consistency(self, first: int, response: bytes) -> None:
        body = json.loads(response)
        if body["rootHash"] != self.final.root.hex():
            raise speclient.VerificationError("rootHash is not the final root")
        proof = [bytes.fromhex(h) for h in body["hashes"]]
        speclient.verify_consistency(first, self.final.size, self.roots[first], self.final.root, proof)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type, call-arg]
    if cert.issuer != issuer.subject:
        raise speclient.VerificationError("issuer name is not the issuing CA's subject")


class CAVerifier:
    """Checks sampled certificates against what a client trusts: the ``tlog trust-config`` output.

    The trust config's CA chain must be the one ``/api/v2/trustBundle`` serves;
    each sampled leaf must chain to its root by signature, carry one SCT that
    verifies with its CT key over the precertificate (RFC 6962 §3.2), and
    certify the request's key for the token's identity. At the end the
    certificate log must hold exactly the certificates that got a 200.
    """

    SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
    ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
    EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

    def __init__(self, url: str, trust_config: dict) -> None:
        self.url, self.tally, self.failures = url, {}, []  # type: ignore[var-annotated]
        self.leaves: list[bytes] = []  # DER of every sampled leaf that verified
        ca = trust_config["trustedRoot"]["certificateAuthorities"][0]["certChain"]["certificates"]
        self.chain = [base64.b64decode(c["rawBytes"]) for c in ca]  # DER (intermediate, root)
        served = json.loads(http_get(url + "/api/v2/trustBundle"))["chains"][0]["certificates"]
        if [_der(x509.load_pem_x509_certificate(c.encode())) for c in served] != self.chain:
            raise speclient.VerificationError("/api/v2/trustBundle is not the trust config's CA chain")
        ct_spki = base64.b64decode(trust_config["trustedRoot"]["ctlogs"][0]["publicKey"]["rawBytes"])
        self.ct_key = serialization.load_der_public_key(ct_spki)
        self.ct_log_id = hashlib.sha256(ct_spki).digest()
        self.issuer_key_hash = hashlib.sha256(_spki(x509.load_der_x509_certificate(self.chain[0]))).digest()

    check = Verifier.check

    def certificate(self, expected: tuple[str, str, bytes], response: bytes) -> None:
        san, iss, spki = expected
        pems = json.loads(response)["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        if len(pems) != 3:
            raise speclient.VerificationError(f"a chain of {len(pems)} certificates, not leaf, intermediate, root")
        leaf, inter, root = (x509.load_pem_x509_certificate(p.encode()) for p in pems)
        if [_der(inter), _der(root)] != self.chain:
            raise speclient.VerificationError("the chain is not the trust config's")
        _signed_by(leaf, inter)
        _signed_by(inter, root)
        _signed_by(root, root)
        start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
        if not start <= datetime.now(timezone.utc) <= end or end - start != timedelta(minutes=10):
            raise speclient.VerificationError("the leaf is not a current 10-minute certificate")
        if _spki(leaf) != spki:
            raise speclient.VerificationError("the leaf certifies another key than the CSR's")
        names = [n.value for n in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
        if names != [san]:
            raise speclient.VerificationError(f"SAN {names} is not the token's identity {san!r}")
        if leaf.extensions.get_extension_for_oid(self.ISSUER_OID).value.value != iss.encode():  # type: ignore[attr-defined]
            raise speclient.VerificationError("the issuer extension is not the token's iss")
        scts = list(leaf.extensions.get_extension_for_oid(self.SCT_OID).value)  # type: ignore[call-overload]
        if len(scts) != 1 or scts[0].log_id != self.ct_log_id:
            raise speclient.VerificationError("not exactly one SCT from the trust config's CT log")
        sct, tbs = scts[0], leaf.tbs_precertificate_bytes
        ms = (sct.timestamp.replace(tzinfo=timezone.utc) - self.EPOCH) // timedelta(milliseconds=1)
        signed = (b"\x00\x00" + ms.to_bytes(8, "big") + b"\x00\x01" + self.issuer_key_hash + len(tbs).to_bytes(3, "big") + tbs
                  + len(sct.extension_bytes).to_bytes(2, "big") + sct.extension_bytes)  # fmt: skip
        self.ct_key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
        self.leaves.append(_der(leaf))

    def certificate_log(self, acknowledged: int) -> None:
        """Exactly the certificates that got a 200 are in the certificate log, under a verified checkpoint."""
        cp = speclient.verify_checkpoint(http_get(self.url + "/certificates/checkpoint").decode(), speclient.LogKey(self.ct_key))  # type: ignore[arg-type]
        if cp.size != acknowledged:
            raise speclient.VerificationError(f"certificate log size {cp.size} but {acknowledged} certificates were issued")
        logged = speclient.fetch_all_entries(self.url + "/certificates", cp.size)
        if speclient.root_of([speclient.leaf_hash(d) for d in logged]) != cp.root:
            raise speclient.VerificationError("the certificate log's entries do not hash to its checkpoint's root")
        if missing := set(self.leaves) - set(logged):
            raise speclient.VerificationError(f"{len(missing)} sampled certificates are not in the certificate log")


# --- the benchmark ---------------------------------------------------------------------


def machine_info() -> dict:
    def field(path: str, prefix: str) -> str:
        lines = Path(path).read_text().splitlines() if Path(path).exists() else []
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), "0")

    rel = Path("/etc/os-release").read_text().splitlines() if Path("/etc/os-release").exists() else []
    pretty = next((ln.split("=", 1)[1].strip('"') for ln in rel if ln.startswith("PRETTY_NAME=")), platform.system())
    import gunicorn

    return {
        "cpu": field("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
        "ram_gib": round(int(field("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1),
        "os": f"{pretty}, kernel {platform.release()}", "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version, "gunicorn": gunicorn.__version__,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }  # fmt: skip


COLUMNS = "backend:<8 test:<11 conc:>4 requests:>8 secs:>5 rate/s:>7 p50_ms:>7 p99_ms:>7 errors:>6 ÷ceiling:>8 srvCPU%:>7 dbCPU%:>6 cliCPU%:>7 other%:>6"
HEADER = " ".join(format(c.split(":")[0].replace("_", " "), c.split(":")[1]) for c in COLUMNS.split())


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a, self.pool, self.ok = args, BodyPool(), True
        self.rows: list[dict] = []
        self.ceiling: dict[int, float] = {}
        self.verification: dict[str, dict] = {}
        self.db_pids = list  # PostgreSQL backends serving the log under test, if any

    def measure(self, server: Server, backend: str, test: str, reqs: list[bytes], conc: int, **kw: object) -> dict:
        """One table row: a timed run, under py-spy if asked."""
        a, prof = self.a, None
        if a.profile:  # wall-clock and per thread: the log's request threads mostly wait
            out = a.out.parent / f"profile-{backend}-{test}-c{conc}.txt"
            prof = subprocess.Popen([Path(sys.executable).parent / "py-spy", "record", "--pid", str(server.pid), "--subprocesses",
                                     "--idle", "--threads", "--rate", "200", "--duration", str(max(1, round(a.duration))),
                                     "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        res = run_load(server.port, reqs, concurrency=conc, duration=a.duration, clients=a.clients,
                       server_pid=server.pid, db_pids=self.db_pids, sample=a.sample, **kw)  # type: ignore[arg-type]
        if prof:
            prof.wait()
        r = {"backend": backend, "test": test, "concurrency": conc}
        r |= {k: v for k, v in res.items() if k not in ("samples", "error_samples", "consumed")}
        if test != "ceiling" and conc in self.ceiling:
            r["vs_ceiling"] = r["rate"] / self.ceiling[conc]
        self.rows.append(r)
        cells = [backend, test, conc, r["requests"], f"{r['seconds']:.1f}", f"{r['rate']:.0f}", f"{r['p50_ms']:.1f}",
                 f"{r['p99_ms']:.1f}", r["errors"], f"{r['vs_ceiling']:.2f}" if "vs_ceiling" in r else "",
                 *(f"{r[k + '_cpu_pct']:.0f}" for k in ("server", "db", "client", "other"))]  # fmt: skip
        print(" ".join(format(str(v), c.split(":")[1]) for v, c in zip(cells, COLUMNS.split())), flush=True)
        if res["errors"]:
            self.ok = False
            for e in res["error_samples"]:
                print(f"      error: {e}")
        if r["client_cpu_pct"] > 80:
            print("      warning: the load generator used >80% of a core; it may be the bottleneck (try --clients)")
        if r["other_cpu_pct"] > 25:
            print(f"      warning: other processes used {r['other_cpu_pct']:.0f}% of a core meanwhile; expect noise")
        return res

    def framework_ceiling(self, tmp: Path, workers: int, threads: int) -> None:
        with Server(ceiling_command(tmp, workers, threads), tmp / "ceiling.log") as srv:
            # The same ~1 KB signed bodies the log gets, so both parse the same JSON.
            reqs = [http_request("POST", "/echo", srv.port, b) for b in self.pool.get(0, 1000)]
            run_load(srv.port, reqs, concurrency=max(self.a.concurrency), duration=self.a.warmup,
                     clients=self.a.clients, server_pid=srv.pid, expect=201)  # fmt: skip
            for c in self.a.concurrency:
                self.ceiling[c] = self.measure(srv, "flask", "ceiling", reqs, c, expect=201)["rate"]

    def log_backend(self, backend: str, tmp: Path, database_url: str | None, db_pids=list) -> None:  # type: ignore[no-untyped-def]
        a, self.db_pids = self.a, db_pids
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--host", HOST, "--port", "{port}",
               "--data-dir", str(tmp / f"data-{backend}"), "--origin", ORIGIN, *a.serve_args]  # fmt: skip
        with Server(cmd + (["--database-url", database_url] if database_url else []), tmp / f"{backend}.log") as srv:
            used = acked = 0  # bodies handed out so far, and 201s: the log must end up holding exactly `acked`
            submitted: list[tuple[bytes, bytes]] = []  # sampled (request, response)
            best = 0.0
            for c in [0, *a.concurrency]:  # 0: warm every worker, pool and cache; not a row
                # Enough pre-signed bodies for this point at up to 3x the best rate yet.
                count = int(max(best * 3, 2500) * a.duration) + 200
                bodies = self.pool.get(used, count)
                reqs = [http_request("POST", "/api/v1/log/entries", srv.port, b) for b in bodies]
                if c == 0:
                    res = run_load(srv.port, reqs, concurrency=max(a.concurrency), duration=a.warmup,
                                   clients=a.clients, server_pid=srv.pid, unique=True, expect=201)  # fmt: skip
                else:
                    res = self.measure(srv, backend, "submit", reqs, c, unique=True, expect=201)
                    best = max(best, res["rate"])
                    if res["requests"] >= count:
                        print(f"      note: used up all {count} pre-signed bodies in {res['seconds']:.1f} s")
                used += res["consumed"]  # a few bodies below this may be unsent: never reuse them
                acked += res["ok"]
                submitted += [(bodies[i], body) for i, body in res["samples"]]

            v = Verifier(srv.url)
            for req, resp in random.sample(submitted, min(a.sample * len(a.concurrency), len(submitted))):
                v.check("submissions", v.submission, req, resp)
            v.check("final tree head", v.final_head, acked)
            if not hasattr(v, "final"):
                raise SystemExit(f"cannot verify the final tree head: {v.failures}")
            size = v.final.size
            incl_args = [random.randrange(size) for _ in range(20_000)]
            # firstSize is random among the checkpoints verified above, so every
            # sampled consistency proof can be checked against a trusted root.
            known = [s for s in v.roots if 0 < s < size] or [max(1, size // 2)]
            cons_args = [random.choice(known) for _ in range(20_000)]
            for test, path, args, check in (
                ("inclusion", "/api/v1/log/entries?logIndex={}", incl_args, v.inclusion),
                ("consistency", f"/api/v1/log/proof?firstSize={{}}&lastSize={size}", cons_args, v.consistency),
            ):
                reqs = [http_request("GET", path.format(x), srv.port) for x in args]
                for c in a.proof_concurrency:
                    for i, body in self.measure(srv, backend, test, reqs, c)["samples"]:
                        v.check(f"{test} proofs", check, args[i], body)

        self.report(backend, v, "", f"log size {size}")

    def ca_backend(self, backend: str, tmp: Path, database_url: str | None, db_pids=list) -> None:  # type: ignore[no-untyped-def]
        """POST /api/v2/signingCert against ``tlog serve --dev-oidc`` (defaults otherwise) on a fresh data dir and database."""
        a, self.db_pids = self.a, db_pids
        data_dir = tmp / f"ca-{backend}"
        where = ["--data-dir", str(data_dir)] + (["--database-url", database_url] if database_url else [])
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--dev-oidc", "--host", HOST, "--port", "{port}", "--origin", ORIGIN,
               *where, *a.serve_args]  # fmt: skip
        with Server(cmd, tmp / f"ca-{backend}.log") as srv:
            # What a client trusts: the CA chain and CT key as `tlog trust-config` publishes them.
            trust = subprocess.run([sys.executable, "-m", "tlog.cli", "trust-config", "--url", srv.url, *where],
                                   check=True, capture_output=True, text=True).stdout  # fmt: skip
            v = CAVerifier(srv.url, json.loads(trust))
            pool = CertRequestPool(data_dir)
            used = acked = 0
            best = 0.0
            for c in [0, *a.concurrency]:  # 0: warm every worker; not a row
                count = int(max(best * 3, 1500) * (a.warmup if c == 0 else a.duration)) + 200
                t = time.monotonic()
                reqs = pool.get(srv.port, used, count)
                if time.monotonic() - t > 1:
                    print(f"      (minted {len(pool.bodies) - used} tokens and CSRs in {time.monotonic() - t:.1f} s, untimed)", flush=True)
                if c == 0:
                    res = run_load(srv.port, reqs, concurrency=max(a.concurrency), duration=a.warmup,
                                   clients=a.clients, server_pid=srv.pid, unique=True)  # fmt: skip
                else:
                    res = self.measure(srv, backend, "signingCert", reqs, c, unique=True)
                    best = max(best, res["rate"])
                    if res["requests"] >= count:
                        print(f"      note: used up all {count} pre-minted requests in {res['seconds']:.1f} s")
                for i, body in res["samples"]:
                    v.check("certificates", v.certificate, pool.expected[used + i], body)
                used += res["consumed"]
                acked += res["ok"]
            v.check("certificate log", v.certificate_log, acked)

        self.report(backend, v, "CA", f"certificate log size {acked}")

    def report(self, backend: str, v: Verifier | CAVerifier, part: str, size: str) -> None:
        """Record and print what a verifier checked; any failure fails the run."""
        prefix = f"{part} " if part else ""
        self.verification.setdefault(backend, {}).update(
            {prefix + k: {"verified": t[0], "checked": t[1]} for k, t in v.tally.items()}
        )
        good, total = sum(t[0] for t in v.tally.values()), sum(t[1] for t in v.tally.values())
        detail = ", ".join(f"{t[0]}/{t[1]} {k}" for k, t in v.tally.items())
        print(f"  {backend}{' ' + part if part else ''}: verified {good}/{total} ({detail}); {size}")
        for f in v.failures[:10]:
            print(f"      FAILED {f}")
        self.ok &= good == total


# --- plot ------------------------------------------------------------------------------

TEST_NAMES = {"submit": "submissions", "inclusion": "inclusion", "consistency": "consistency", "signingCert": "certificates"}
BACKEND_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# The goals: a share of the framework ceiling at the same concurrency, and for certificates an absolute rate.
GOALS_VS_CEILING = {("submit", "sqlite"): 0.5, ("submit", "postgres"): 0.3} | {
    (t, b): 0.7 for t in ("inclusion", "consistency") for b in BACKEND_NAMES}  # fmt: skip
GOALS_RATE = {("signingCert", b): 1000 for b in BACKEND_NAMES}


def results_date(results: dict, path: Path) -> str:
    """When a results file was measured: its "date", the timestamp in its name, or when it was written."""
    if results.get("date"):
        return str(results["date"])[:10]
    if m := re.search(r"(\d{4})(\d{2})(\d{2})-\d{6}", path.name):
        return "-".join(m.groups())
    return time.strftime("%Y-%m-%d", time.localtime(path.stat().st_mtime))


def write_plot(results: dict, json_path: Path, png: Path | None) -> bool:
    """Plot ``results`` (saved as ``json_path``) to ``png``, by default next to the JSON with the same stem."""
    png = png or json_path.with_suffix(".png")
    if done := plot_results(results, png, results_date(results, json_path)):
        print(f"plot written to {png}")
    return done


def plot_results(results: dict, png: Path, date: str = "") -> bool:
    """Draw a results file as ``png``: each test's rate against the Flask ceiling, and its share of it against the goals.

    One group of bars per test and backend, one bar per concurrency; the
    ceiling at that concurrency is the grey outline around each bar. Returns
    False (with a note) when matplotlib is missing or there is nothing to draw.
    """
    try:
        import matplotlib
    except ImportError:
        print(f"note: matplotlib is not installed, so no plot ({png})")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import StrMethodFormatter

    rows = results["results"]
    ceiling = {r["concurrency"]: r["rate"] for r in rows if r["test"] == "ceiling"}
    measured = {(r["test"], r["backend"], r["concurrency"]): r for r in rows if r["test"] != "ceiling"}
    rank = {k: i for i, k in enumerate([*TEST_NAMES, *BACKEND_NAMES])}
    groups = sorted({k[:2] for k in measured}, key=lambda g: (rank.get(g[0], 99), g[0], rank.get(g[1], 99), g[1]))
    if not groups:
        print(f"note: no measurements to plot ({png})")
        return False
    concs = sorted({c for *_, c in measured})
    palette = plt.get_cmap("viridis")
    color = {c: palette(0.15 + 0.65 * i / max(1, len(concs) - 1)) for i, c in enumerate(concs)}
    width = 0.8 / max(len([c for c in concs if (*g, c) in measured]) for g in groups)
    goal_color, ceiling_color = "#c0392b", "#888888"

    labels = []  # (axes, x, bar height, text, concurrency): placed once the layout is known
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8.4), sharex=True, gridspec_kw={"height_ratios": [1.25, 1]})
    for gi, g in enumerate(groups):
        here = [c for c in concs if (*g, c) in measured]
        for k, c in enumerate(here):
            x, r = gi + (k - (len(here) - 1) / 2) * width, measured[(*g, c)]
            if c in ceiling:  # the same concurrency's ceiling, as an outline the bar fills part of
                top.bar(x, ceiling[c], width * 0.92, fill=False, edgecolor=ceiling_color, linewidth=0.8, zorder=1)
            top.bar(x, r["rate"], width * 0.92, color=color[c], zorder=2)
            labels.append((top, x, r["rate"], f"{r['rate']:,.0f}", c))
            share = r.get("vs_ceiling", r["rate"] / ceiling[c] if c in ceiling else None)
            if share is not None:
                bottom.bar(x, share, width * 0.92, color=color[c], zorder=2)
                labels.append((bottom, x, share, f"{share:.2f}", c))

    def goal_segments(ax, goals: dict, fmt: str) -> None:  # type: ignore[no-untyped-def]
        """A dashed line over each run of adjacent groups that share a goal, labelled once at its left end."""
        gi = 0
        while gi < len(groups):
            goal, end = goals.get(groups[gi]), gi
            while goal is not None and end + 1 < len(groups) and goals.get(groups[end + 1]) == goal:
                end += 1
            if goal is not None:
                ax.hlines(goal, gi - 0.47, end + 0.47, colors=goal_color, linestyles="--", linewidth=1.4, zorder=3)
                ax.annotate(fmt.format(goal), (gi - 0.45, goal), xytext=(0, 3), textcoords="offset points", color=goal_color,
                            fontsize=8, va="bottom", zorder=5, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.5})  # fmt: skip
            gi = end + 1

    goal_segments(top, GOALS_RATE, "goal {:,} certs/s")
    goal_segments(bottom, GOALS_VS_CEILING, "goal {:.1f}")
    highest = max([*ceiling.values(), *(r["rate"] for r in measured.values()), *GOALS_RATE.values()])
    top.set_ylim(0, highest * 1.1)
    bottom.set_ylim(0, max([1.0, *(r.get("vs_ceiling", 0) for r in measured.values())]) * 1.08)
    top.set_ylabel("requests/s")
    bottom.set_ylabel("rate ÷ Flask ceiling")
    top.set_title("throughput, against the Flask ceiling at the same concurrency (grey outline)", fontsize=10)
    bottom.set_title("share of the ceiling, against the goals", fontsize=10)
    bottom.set_xticks(range(len(groups)))
    bottom.set_xticklabels([f"{BACKEND_NAMES.get(b, b)}\n{TEST_NAMES.get(t, t)}" for t, b in groups], fontsize=8.5)
    bottom.set_xlim(-0.55, len(groups) - 0.45)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.spines[["top", "right"]].set_visible(False)
        for gi in range(1, len(groups)):  # a rule between kinds of test
            if groups[gi][0] != groups[gi - 1][0]:
                ax.axvline(gi - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
    top.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))

    handles = [Patch(color=color[c], label=f"{c} client{'s' * (c != 1)}") for c in concs]
    ceil = " / ".join(f"{ceiling[c]:,.0f}" for c in sorted(ceiling))
    handles.append(Patch(fill=False, edgecolor=ceiling_color, label=f"Flask ceiling ({ceil} req/s)"))
    handles.append(Line2D([], [], color=goal_color, linestyle="--", label="goal"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8.5, frameon=False, bbox_to_anchor=(0.5, 0.96))
    m, args = results.get("machine", {}), results.get("args", {})
    what = [f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores", f"{results.get('workers', '?')} workers × {results.get('threads', '?')} threads"]
    what += [f"{args['duration']:g} s per point"] if args.get("duration") else []
    fig.suptitle("tlog serve over HTTP: " + ", ".join(what + ([date] if date else [])), fontsize=10.5, y=0.99)
    fig.tight_layout(rect=(0, 0, 1, 0.945))
    for ax, x, h, text, c in labels:  # vertical, inside the bar's top where it fits, else above it
        per_px = ax.get_ylim()[1] / ax.get_window_extent().height
        inside = h / per_px > (len(text) * 0.62 * 7.5 + 8) / 72 * fig.dpi
        dark = sum(color[c][:3]) < 1.6
        ax.text(x, h - 3 * per_px if inside else h + 3 * per_px, text, ha="center", va="top" if inside else "bottom",
                rotation=90, fontsize=7.5, color="white" if inside and dark else "black", zorder=4)  # fmt: skip
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, help="seconds per measurement (default 10, or 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="a few seconds per point, for smoke tests")
    p.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    p.add_argument("--concurrency", default="1,16,64", help="submission and ceiling concurrencies (default 1,16,64)")
    p.add_argument("--proof-concurrency", default="16,64", help="proof concurrencies (default 16,64)")
    p.add_argument("--tests", default="log,ca", help="log (submissions and proofs), ca (signingCert), or both (default log,ca)")
    p.add_argument("--workers", type=int, help="tlog serve --workers (default: its own default), also for the ceiling")
    p.add_argument("--threads", type=int, help="tlog serve --threads (default: its own default), also for the ceiling")
    p.add_argument("--clients", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--sample", type=int, default=200, help="responses verified per measurement (default 200)")
    p.add_argument("--profile", action="store_true", help="py-spy each point into bench-results/ (slows the server)")
    p.add_argument("--out", type=Path, help="JSON results (default bench-results/bench-<timestamp>.json)")
    p.add_argument("--png", type=Path, help="the plot of the results (default: the JSON's path with .png; needs matplotlib)")
    p.add_argument("--plot-only", type=Path, metavar="JSON", help="only draw the plot of this saved results file, and exit")
    a = p.parse_args()
    if a.plot_only:
        return 0 if write_plot(json.loads(a.plot_only.read_text()), a.plot_only, a.png) else 1
    a.duration = a.duration or (2.0 if a.quick else 10.0)
    a.warmup = min(1.0, a.duration / 4)
    a.concurrency = [int(c) for c in a.concurrency.split(",")]
    a.proof_concurrency = [int(c) for c in a.proof_concurrency.split(",")]
    a.tests = sorted(set(a.tests.split(",")))
    if not a.tests or set(a.tests) - {"log", "ca"}:
        p.error("--tests takes log, ca or log,ca")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    a.out = a.out or ROOT / "bench-results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    a.out.parent.mkdir(parents=True, exist_ok=True)

    default_workers, default_threads = serve_defaults()
    workers, threads = a.workers or default_workers, a.threads or default_threads
    a.serve_args = ["--workers", str(workers), "--threads", str(threads)]
    bench = Bench(a)
    with contextlib.ExitStack() as stack:
        pg_url, pg_info, pg_pids = (None, "--sqlite-only", None) if a.sqlite_only else stack.enter_context(postgres_database())
        machine = machine_info() | {"postgresql": pg_info if pg_url else None}
        print("machine:\n" + "".join(f"  {k:<11} {v if v is not None else '-'}\n" for k, v in machine.items()), end="")
        print(f"settings: tlog serve {workers} workers x {threads} threads (gthread); {a.duration:g} s "
              f"per point; {a.clients} load-generator processes; {a.sample} responses verified per point")  # fmt: skip
        if not pg_url:
            print(f"PostgreSQL skipped: {pg_info}")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlog-bench-")))
        t = time.monotonic()
        bench.pool.get(0, int(1000 * a.duration) if "log" in a.tests else 1000)  # the rest is topped up between points
        print(f"pre-signed {len(bench.pool.bodies)} hashedrekord bodies in {time.monotonic() - t:.1f} s\n\n{HEADER}")
        bench.framework_ceiling(tmp, workers, threads)
        if "log" in a.tests:
            bench.log_backend("sqlite", tmp, None)
        if "ca" in a.tests:
            bench.ca_backend("sqlite", tmp, None)
        if pg_url and "log" in a.tests:
            bench.log_backend("postgres", tmp, pg_url, pg_pids)
        if pg_url and "ca" in a.tests:  # a database of its own: the CA server makes its own keys
            ca_url, _version, ca_pids = stack.enter_context(postgres_database())
            bench.ca_backend("postgres", tmp, ca_url, ca_pids)

    print("\nsummary:")
    units = {"submit": "entries/s", "inclusion": "inclusion proofs/s", "consistency": "consistency proofs/s", "signingCert": "certificates/s"}
    for backend in bench.verification:
        parts = []
        for test, unit in units.items():
            if rows := [r for r in bench.rows if (r["backend"], r["test"]) == (backend, test)]:
                parts.append(f"{unit} " + ", ".join(f"{r['rate']:.0f} at c={r['concurrency']}" for r in rows))
        print(f"  {backend}: " + "; ".join(parts))
    results = {
        "date": started, "machine": machine, "workers": workers, "threads": threads,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "results": bench.rows, "verification": bench.verification, "ok": bench.ok,
    }  # fmt: skip
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {a.out}")
    write_plot(results, a.out, a.png)
    if not bench.ok:
        print("FAILED: errors or unverified responses (see above)")
    return 0 if bench.ok else 1


if __name__ == "__main__":
    sys.exit(main())
