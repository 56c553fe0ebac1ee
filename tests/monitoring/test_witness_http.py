"""The witness over real HTTP (werkzeug server on loopback, in a thread): the
blueprint's status codes, bodies and content types, GET checkpoint, and the
``submit_checkpoint`` client logs use."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from werkzeug.serving import make_server
from witness_testlib import NOW, FakeLog, body, fixed_clock

from monitor.witness import (
    CONTENT_TYPE_SIZE,
    MAX_BODY_SIZE,
    WitnessConfig,
    WitnessKey,
    WitnessState,
    load_or_create_key,
    origin_hash,
    vkey,
    witness_blueprint,
)
from tlog.checkpoint import Checkpoint, add_signatures, open_checkpoint, sign_checkpoint
from tlog.witnessing import Witness as LogWitness
from tlog.witnessing import WitnessClient
from tlog.witnessing import WitnessError as LogWitnessError
from tlog.note import (
    CosignatureV1Signer,
    Note,
    NoteSignature,
    cosignature_timestamp,
    open_note,
    parse_signature_lines,
    verifier_from_vkey,
)


@dataclass
class Witness:
    url: str
    key: WitnessKey
    state: WitnessState
    log: FakeLog
    config: WitnessConfig

    def post(self, data: bytes, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        return requests.post(self.url + "/add-checkpoint", data=data, timeout=30, **kwargs)


def serve(app: Flask) -> tuple[str, object, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server, thread


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Witness]:
    log = FakeLog("example.com/log")
    config = WitnessConfig.from_vkeys([log.vkey])
    key = load_or_create_key(tmp_path, name="witness.example/http")
    state = WitnessState.open(tmp_path)
    app = Flask(__name__)
    app.register_blueprint(witness_blueprint(config, state, key, clock=fixed_clock(), url_prefix="/w"))
    url, server, thread = serve(app)
    try:
        yield Witness(url + "/w", key, state, log, config)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join()


def assert_text_error(resp: requests.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text.endswith("\n") and len(resp.text.strip()) > 5  # says what is wrong


# --- Status codes over HTTP ---------------------------------------------


def test_200_cosignature_verifies_with_the_printed_vkey(witness: Witness) -> None:
    signed = witness.log.checkpoint(5)
    resp = witness.post(body(0, [], signed))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    (sig,) = parse_signature_lines(resp.content)
    verifier = verifier_from_vkey(vkey(witness.key))
    note, verified = open_note(signed + resp.content, [verifier])
    assert verified == [sig] and cosignature_timestamp(sig.signature) == NOW


def test_404_unknown_origin(witness: Witness) -> None:
    assert_text_error(witness.post(body(0, [], FakeLog("nobody.example/log").checkpoint(1))), 404)


def test_403_no_trusted_signature(witness: Witness) -> None:
    impostor = FakeLog(witness.log.origin, key=Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    assert_text_error(witness.post(body(0, [], impostor.checkpoint(1))), 403)


def test_403_known_key_bad_signature(witness: Witness) -> None:
    note = Note.parse(witness.log.checkpoint(2))
    sig = note.signatures[0]
    broken = Note(note.text, (NoteSignature(sig.name, sig.key_id, sig.signature[::-1]),)).to_bytes()
    assert_text_error(witness.post(body(0, [], broken)), 403)


def test_400_old_larger_than_size_and_malformed(witness: Witness) -> None:
    assert_text_error(witness.post(body(3, [], witness.log.checkpoint(2))), 400)
    assert_text_error(witness.post(b"old 0\n"), 400)
    assert_text_error(witness.post(b"old 01\n\n" + witness.log.checkpoint(2)), 400)


def test_409_body_and_content_type(witness: Witness) -> None:
    resp = witness.post(body(4, witness.log.proof(4, 6), witness.log.checkpoint(6)))
    assert resp.status_code == 409
    assert resp.headers["Content-Type"] == CONTENT_TYPE_SIZE
    assert resp.content == b"0\n"
    assert witness.post(body(0, [], witness.log.checkpoint(6))).status_code == 200
    resp = witness.post(body(0, [], witness.log.checkpoint(9)))
    assert (resp.status_code, resp.headers["Content-Type"], resp.content) == (409, CONTENT_TYPE_SIZE, b"6\n")


def test_422_each_case(witness: Witness) -> None:
    log = witness.log
    empty_bad = sign_checkpoint(Checkpoint(log.origin, 0, b"\x01" * 32), [log.signer])
    assert_text_error(witness.post(body(0, [], empty_bad)), 422)
    assert_text_error(witness.post(body(0, [b"\x02" * 32], log.checkpoint(4))), 422)
    assert witness.post(body(0, [], log.checkpoint(4))).status_code == 200
    assert_text_error(witness.post(body(4, [b"\x03" * 32], log.checkpoint(9))), 422)
    assert_text_error(witness.post(body(4, [], log.fork(1, b"x").checkpoint(4))), 422)
    stored = witness.state.latest(log.origin)
    assert stored is not None and stored.size == 4


def test_413_too_large(witness: Witness) -> None:
    data = body(0, [], witness.log.checkpoint(1))
    assert_text_error(witness.post(data + b"x" * (MAX_BODY_SIZE + 1 - len(data))), 413)


def test_413_too_large_without_content_length(witness: Witness) -> None:
    data = body(0, [], witness.log.checkpoint(1)) + b"x" * (2 * MAX_BODY_SIZE)
    chunks = (data[i : i + 4096] for i in range(0, len(data), 4096))  # chunked transfer encoding
    assert_text_error(witness.post(chunks), 413)  # type: ignore[arg-type]


def test_get_on_add_checkpoint_is_405(witness: Witness) -> None:
    assert requests.get(witness.url + "/add-checkpoint", timeout=10).status_code == 405


# --- GET checkpoint -------------------------------------------------------


def test_get_checkpoint(witness: Witness) -> None:
    log = witness.log
    url = f"{witness.url}/{origin_hash(log.origin)}/checkpoint"
    assert hashlib.sha256(log.origin.encode()).hexdigest() in url
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 404

    assert witness.post(body(0, [], log.checkpoint(7))).status_code == 200
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    # The log's signature and the witness's cosignature, over the checkpoint.
    checkpoint, _, _ = open_checkpoint(resp.content, [log.signer.verifier()])  # type: ignore[attr-defined]
    assert (checkpoint.size, checkpoint.root_hash) == (7, log.root(7))
    open_note(resp.content, [witness.key.verifier()])

    assert witness.post(body(7, log.proof(7, 11), log.checkpoint(11))).status_code == 200
    checkpoint, _, _ = open_checkpoint(requests.get(url, timeout=10).content, [witness.key.verifier()])
    assert checkpoint.size == 11


@pytest.mark.parametrize("path", ["/" + "A" * 64 + "/checkpoint", "/abc/checkpoint", "/" + "0" * 64 + "/checkpoint"])
def test_get_checkpoint_404s(witness: Witness, path: str) -> None:
    resp = requests.get(witness.url + path, timeout=10)
    assert resp.status_code == 404


# --- Concurrency over HTTP ------------------------------------------------


def test_concurrent_posts_never_leave_the_state_below_an_accepted_size(witness: Witness) -> None:
    log = witness.log.grow_to(64)
    assert witness.post(body(0, [], log.checkpoint(1))).status_code == 200

    def attempt(target: int) -> int | None:
        """Post target from whatever size the witness reports, until done."""
        old = 1
        with requests.Session() as s:
            while old < target:
                resp = s.post(
                    witness.url + "/add-checkpoint",
                    data=body(old, log.proof(old, target), log.checkpoint(target)),
                    timeout=30,
                )
                if resp.status_code == 409:
                    old = int(resp.text)
                    continue
                assert resp.status_code == 200, resp.text
                # Persisted before the reply.
                stored = WitnessState(witness.state.path).latest(log.origin)
                assert stored is not None and stored.size >= target
                return target
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        accepted = [r for r in pool.map(attempt, range(2, 65)) if r is not None]
    stored = witness.state.latest(log.origin)
    assert stored is not None and stored.size == max(accepted) == 64


# --- The client logs use (tlog.witnessing) ------------------------------------


def client_for(witness: Witness) -> WitnessClient:
    return WitnessClient(LogWitness(witness.url, witness.key.verifier()))


def size_of(signed: bytes) -> int:
    return Checkpoint.from_text(Note.parse(signed).text).size


def test_client_first_time(witness: Witness) -> None:
    signed = witness.log.checkpoint(3)
    cosig = client_for(witness).add_checkpoint(signed, 3, lambda old: [])
    assert cosig.name == "witness.example/http"
    # What a log does with it: append to its checkpoint, and clients verify.
    note = add_signatures(signed, [cosig])
    open_note(note, [witness.key.verifier()])


def test_client_retries_once_from_the_witness_size(witness: Witness) -> None:
    log = witness.log
    client_for(witness).add_checkpoint(log.checkpoint(5), 5, lambda old: [])
    asked: list[int] = []

    def proof_for(old: int) -> list[bytes]:
        asked.append(old)
        return [] if old == 0 else log.proof(old, 12)

    # A fresh client (a restarted log) thinks the witness is at 0; the witness says 5.
    client = client_for(witness)
    client.add_checkpoint(log.checkpoint(12), 12, proof_for)
    assert asked == [0, 5] and client.known_size == 12
    stored = witness.state.latest(log.origin)
    assert stored is not None and stored.size == 12


def test_client_witness_ahead_of_the_log(witness: Witness) -> None:
    log = witness.log
    client_for(witness).add_checkpoint(log.checkpoint(9), 9, lambda old: [])
    with pytest.raises(LogWitnessError, match="beyond ours"):
        client_for(witness).add_checkpoint(log.checkpoint(4), 4, lambda old: [])


def test_client_refusals(witness: Witness) -> None:
    with pytest.raises(LogWitnessError, match="404"):
        client_for(witness).add_checkpoint(FakeLog("nobody.example/log").checkpoint(1), 1, lambda old: [])
    client = client_for(witness)
    client.add_checkpoint(witness.log.checkpoint(4), 4, lambda old: [])
    forked = witness.log.fork(2, b"evil")
    with pytest.raises(LogWitnessError, match="422"):
        client.add_checkpoint(forked.checkpoint(6), 6, lambda old: witness.log.proof(old, 6))


def test_client_unreachable() -> None:
    lonely = WitnessClient(LogWitness("http://127.0.0.1:9", CosignatureV1Signer("w.example", Ed25519PrivateKey.generate()).verifier()), timeout=2)
    with pytest.raises(requests.RequestException):
        lonely.add_checkpoint(FakeLog().checkpoint(1), 1, lambda old: [])


def test_client_keeps_only_its_witness_cosignature(tmp_path: Path) -> None:
    """A witness answering with extra lines: lines of other keys are ignored; a
    bad line from the witness's own key is an error."""
    log = FakeLog()
    real = CosignatureV1Signer("w.example", Ed25519PrivateKey.from_private_bytes(b"\x05" * 32), clock=fixed_clock())
    other = CosignatureV1Signer("x.example", Ed25519PrivateKey.from_private_bytes(b"\x06" * 32), clock=fixed_clock())
    text = Note.parse(log.checkpoint(2)).text.encode()
    good = NoteSignature(real.name, real.key_id, real.sign(text))
    foreign = NoteSignature(other.name, other.key_id, other.sign(text))
    bad = NoteSignature(real.name, real.key_id, real.sign(b"something else\n"))
    replies = {"/good/add-checkpoint": foreign.line() + good.line(), "/bad/add-checkpoint": bad.line()}

    app = Flask(__name__)

    @app.post("/<which>/add-checkpoint")
    def fake(which: str) -> str:
        return replies[f"/{which}/add-checkpoint"]

    url, server, thread = serve(app)
    try:
        got = WitnessClient(LogWitness(url + "/good", real.verifier())).add_checkpoint(log.checkpoint(2), 2, lambda old: [])
        assert got == good
        with pytest.raises(LogWitnessError, match="no valid cosignature"):
            WitnessClient(LogWitness(url + "/bad", real.verifier())).add_checkpoint(log.checkpoint(2), 2, lambda old: [])
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join()


# --- Hostile bodies ----------------------------------------------------------


def _mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a line dropped, duplicated, swapped or replaced, a byte flipped, or cut short."""
    lines = valid.split(b"\n")
    n = len(lines)
    index = st.integers(0, n - 1)
    edits = st.one_of(
        index.map(lambda i: lines[:i] + lines[i + 1 :]),
        index.map(lambda i: lines[: i + 1] + lines[i:]),
        st.tuples(index, index).map(lambda ij: [lines[ij[1]] if k == ij[0] else lines[ij[0]] if k == ij[1] else x for k, x in enumerate(lines)]),
        st.tuples(index, st.binary(max_size=80)).map(lambda ib: lines[: ib[0]] + [ib[1]] + lines[ib[0] + 1 :]),
    ).map(b"\n".join)
    flips = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
        lambda pb: valid[: pb[0]] + bytes([valid[pb[0]] ^ pb[1]]) + valid[pb[0] + 1 :]
    )
    return st.one_of(edits, flips, st.integers(0, len(valid)).map(lambda k: valid[:k]))


def test_hostile_bodies_get_4xx_and_refusals_leave_the_cosigned_checkpoint(witness: Witness) -> None:
    """Random bytes and mutations of a valid request: never a 5xx, and whatever is
    refused leaves the witness's latest cosigned checkpoint for the log as it was."""
    assert witness.post(body(0, [], witness.log.checkpoint(8))).status_code == 200
    valid = body(8, witness.log.proof(8, 13), witness.log.checkpoint(13))
    origin = witness.log.origin

    @given(st.one_of(st.binary(max_size=600), _mutated(valid)))
    @hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(data: bytes) -> None:
        before = witness.state.latest(origin)
        resp = witness.post(data)
        assert resp.status_code < 500, (data[:300], resp.status_code, resp.text[:300])
        if resp.status_code != 200:
            assert witness.state.latest(origin) == before, (data[:300], resp.status_code)

    check()
    # The valid request itself still goes through (unless a mutation equal to it already did).
    assert witness.post(valid).status_code in (200, 409)
