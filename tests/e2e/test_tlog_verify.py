"""`tlog verify` on what our own stack produces, end to end.

A real `tlog serve --dev-oidc --witnesses ...` with a real witness over HTTP;
unmodified sigstore-python signs (hashedrekord) and attests (DSSE) against
the trust config `tlog trust-config` exports; `tlog verify` then checks the
bundles offline. Tampering with each part fails at the step that owns it.
Finally a C2SP tlog-proof built from the log's API (entry, inclusion proof,
cosigned /checkpoint) meets a 1-of-1 witness policy and fails a 2-of-2 one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import LiveServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.api.state import Services
from tlog.checkpoint import Checkpoint
from tlog.config import Settings
from tlog.note import CosignatureV1Signer, Note, vkey

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))
from witness_testlib import WitnessServer

pytestmark = pytest.mark.slow


def tlog_cli(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def tlog_verify(*args: str) -> tuple[int, dict[str, Any]]:
    res = subprocess.run([sys.executable, "-m", "tlog.cli", "verify", *args, "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode in (0, 1), res.stdout + res.stderr
    return res.returncode, json.loads(res.stdout)


def sigstore(trust: Path, *args: str, attempts: int = 3) -> None:
    """Run the sigstore CLI. Signing is retried: this file tests verification,
    and a busy machine running the suite in parallel can make the server
    answer 503 (SQLite lock contention) now and then."""
    for attempt in range(attempts):
        res = subprocess.run([sys.executable, "-m", "sigstore", "--trust-config", str(trust), *args], capture_output=True, text=True, timeout=180)
        if res.returncode == 0 or attempt == attempts - 1:
            break
        time.sleep(1)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("verify-stack")
    settings = Settings(data_dir=tmp / "data", origin="verify.example/log")
    # Create the log first to learn its vkeys, as an operator would from `tlog info`.
    svc = Services.open(settings, migrate=True)
    log_vkeys = svc.log.vkeys
    svc.engine.dispose()
    witness = WitnessServer(tmp / "witness", [log_vkeys[1]])  # the Ed25519 checkpoint key
    witnesses = tmp / "witnesses.txt"
    witnesses.write_text(f"{witness.url} {witness.key.vkey}\n")
    # One worker: several workers creating the dev issuer's state at once can race.
    server = LiveServer(settings, workers=1, extra_args=("--dev-oidc", "--witnesses", str(witnesses))).start()
    trust = tmp / "trust.json"
    trust.write_text(tlog_cli("trust-config", "--url", server.url, "--data-dir", str(settings.data_dir)))
    try:
        yield {"server": server, "witness": witness, "trust": trust, "data_dir": settings.data_dir, "tmp": tmp, "log_vkeys": log_vkeys}
    finally:
        server.stop()
        witness.stop()


def token(stack: dict[str, Any], subject: str) -> str:
    return tlog_cli("dev-token", "--data-dir", str(stack["data_dir"]), "--subject", subject).strip()


def identity(stack: dict[str, Any], who: str) -> list[str]:
    return ["--cert-identity", who, "--cert-oidc-issuer", stack["server"].url + "/oidc"]


def sign(stack: dict[str, Any], name: str, content: bytes, who: str = "alice@example.com") -> tuple[Path, Path]:
    artifact = stack["tmp"] / name
    artifact.write_bytes(content)
    sigstore(stack["trust"], "sign", "--identity-token", token(stack, who), str(artifact))
    return artifact, Path(str(artifact) + ".sigstore.json")


@pytest.fixture(scope="module")
def signed(stack: dict[str, Any]) -> dict[str, Any]:
    """Alice signs a release after bob signed something: her entry has a
    non-empty proof, and bob's certificate is valid at her signing time."""
    _, other_bundle = sign(stack, "bob.txt", b"bob's\n", who="bob@example.com")
    artifact, bundle = sign(stack, "release.txt", b"release 1.0\n")
    doc = json.loads(bundle.read_bytes())
    assert doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"], "want a proof with hashes"
    return {"artifact": artifact, "bundle": bundle, "doc": doc, "other": json.loads(other_bundle.read_bytes())}


def verify_doc(stack: dict[str, Any], doc: dict[str, Any], artifact: Path, *extra: str, who: str = "alice@example.com") -> tuple[int, dict[str, Any]]:
    path = stack["tmp"] / f"tampered-{time.monotonic_ns()}.sigstore.json"
    path.write_text(json.dumps(doc))
    return tlog_verify(str(path), str(artifact), "--trust-config", str(stack["trust"]), *identity(stack, who), *extra)


def test_signed_bundle_verifies(stack: dict[str, Any], signed: dict[str, Any]) -> None:
    code, report = tlog_verify(str(signed["bundle"]), str(signed["artifact"]), "--trust-config", str(stack["trust"]), *identity(stack, "alice@example.com"))
    assert code == 0, report
    assert {s["status"] for s in report["steps"]} == {"pass"}
    assert report["facts"]["kind"] == "hashedrekord"
    # The human-readable form, too.
    res = subprocess.run(
        [sys.executable, "-m", "tlog.cli", "verify", str(signed["bundle"]), str(signed["artifact"]), "--trust-config", str(stack["trust"]), *identity(stack, "alice@example.com")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0
    assert "\u2713 checkpoint signed by verify.example/log (" in res.stdout


def test_attested_bundle_verifies(stack: dict[str, Any]) -> None:
    artifact = stack["tmp"] / "pkg-1.0.tar.gz"
    artifact.write_bytes(b"\x1f\x8b" + b"fake tarball" * 10)
    predicate = stack["tmp"] / "predicate.json"
    predicate.write_text(json.dumps({"buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}}, "runDetails": {"builder": {"id": "https://example.com/ci"}}}))
    sigstore(
        stack["trust"], "attest", "--identity-token", token(stack, "carol@example.com"),
        "--predicate-type", "https://slsa.dev/provenance/v1", "--predicate", str(predicate), str(artifact),
    )  # fmt: skip
    bundle = Path(str(artifact) + ".sigstore.json")
    code, report = tlog_verify(str(bundle), str(artifact), "--trust-config", str(stack["trust"]), *identity(stack, "carol@example.com"))
    assert code == 0, report
    assert report["facts"]["kind"] == "dsse"

    # A changed payload no longer matches the signature nor the logged payload hash.
    doc = json.loads(bundle.read_bytes())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/ci"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    code, report = verify_doc(stack, doc, artifact, who="carol@example.com")
    assert code == 1 and set(report["failed"]) == {"signature", "entry-body"}

    # Another artifact is not the statement's subject.
    code, report = tlog_verify(str(bundle), str(predicate), "--trust-config", str(stack["trust"]), *identity(stack, "carol@example.com"))
    assert code == 1 and report["failed"] == ["artifact"]


def _flip(value: str, index: int = -1) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["verificationMaterial"]["tlogEntries"][0]  # type: ignore[no-any-return]


def _tamper_set(doc: dict[str, Any], _: dict[str, Any]) -> None:
    promise = _entry(doc)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip(promise["signedEntryTimestamp"])


def _tamper_proof_hash(doc: dict[str, Any], _: dict[str, Any]) -> None:
    hashes = _entry(doc)["inclusionProof"]["hashes"]
    hashes[0] = _flip(hashes[0])


def _tamper_checkpoint_signature(doc: dict[str, Any], _: dict[str, Any]) -> None:
    checkpoint = _entry(doc)["inclusionProof"]["checkpoint"]
    text, _, lines = checkpoint["envelope"].rpartition("\n\n")
    first, *rest = lines.split("\n")
    prefix, b64 = first.rsplit(" ", 1)
    checkpoint["envelope"] = text + "\n\n" + "\n".join([f"{prefix} {_flip(b64)}", *rest])


def _tamper_certificate(doc: dict[str, Any], _: dict[str, Any]) -> None:
    cert = doc["verificationMaterial"]["certificate"]
    cert["rawBytes"] = _flip(cert["rawBytes"])  # a bit of the CA's signature on it


def _swap_certificate(doc: dict[str, Any], other: dict[str, Any]) -> None:
    doc["verificationMaterial"]["certificate"] = other["verificationMaterial"]["certificate"]


TAMPERING = {
    "SET": (_tamper_set, {"set"}),
    "proof hash": (_tamper_proof_hash, {"inclusion"}),
    "checkpoint signature": (_tamper_checkpoint_signature, {"checkpoint"}),
    "certificate bytes": (_tamper_certificate, {"certificate-chain", "entry-body"}),
    "certificate of another signer": (_swap_certificate, {"identity", "signature", "entry-body"}),
}


@pytest.mark.parametrize("what", list(TAMPERING))
def test_tampered_bundle_fails_at_its_step(stack: dict[str, Any], signed: dict[str, Any], what: str) -> None:
    edit, expected = TAMPERING[what]
    doc = json.loads(json.dumps(signed["doc"]))
    edit(doc, signed["other"])
    code, report = verify_doc(stack, doc, signed["artifact"])
    assert code == 1
    assert set(report["failed"]) == expected, [(s["step"], s["detail"]) for s in report["steps"] if s["status"] == "fail"]


def test_tampered_artifact_fails_at_artifact(stack: dict[str, Any], signed: dict[str, Any]) -> None:
    tampered = stack["tmp"] / "release-tampered.txt"
    tampered.write_bytes(b"release 1.0 (with a backdoor)\n")
    code, report = tlog_verify(str(signed["bundle"]), str(tampered), "--trust-config", str(stack["trust"]), *identity(stack, "alice@example.com"))
    assert code == 1 and report["failed"] == ["artifact"]


def test_wrong_identity_fails_at_identity(stack: dict[str, Any], signed: dict[str, Any]) -> None:
    code, report = tlog_verify(str(signed["bundle"]), str(signed["artifact"]), "--trust-config", str(stack["trust"]), *identity(stack, "mallory@example.com"))
    assert code == 1 and report["failed"] == ["identity"]


# --- C2SP tlog-proof with witness cosignatures ----------------------------------------------


def _cosigned_checkpoint(url: str, witness_name: str, size: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    note = ""
    while time.monotonic() < deadline:
        note = requests.get(url + "/checkpoint", timeout=10).text
        parsed = Note.parse(note)
        if Checkpoint.from_text(parsed.text).size >= size and any(s.name == witness_name for s in parsed.signatures):
            return note
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of size >= {size} cosigned by {witness_name} within {timeout}s: {note!r}")


def _proof_for(url: str, index: int, checkpoint: str) -> tuple[bytes, str]:
    """The entry's bytes and a tlog-proof file for it in the checkpoint's tree."""
    size = Checkpoint.from_text(Note.parse(checkpoint).text).size
    deadline = time.monotonic() + 30
    while True:
        (entry,) = requests.get(url + "/api/v1/log/entries", params={"logIndex": index}, timeout=10).json().values()
        proof = entry["verification"]["inclusionProof"]
        if proof["treeSize"] == size or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert proof["treeSize"] == size, "the tree grew past the cosigned checkpoint"
    lines = ["c2sp.org/tlog-proof@v1", f"index {proof['logIndex']}"]
    lines += [base64.b64encode(bytes.fromhex(h)).decode() for h in proof["hashes"]]
    return base64.b64decode(entry["body"]), "\n".join(lines) + "\n\n" + checkpoint


def test_tlog_proof_with_witness_quorum(stack: dict[str, Any], signed: dict[str, Any]) -> None:
    url = stack["server"].url
    witness_key = stack["witness"].key
    index = int(_entry(signed["doc"])["logIndex"])
    size = requests.get(url + "/api/v1/log", timeout=10).json()["treeSize"]
    checkpoint = _cosigned_checkpoint(url, witness_key.name, size)
    body, proof_text = _proof_for(url, index, checkpoint)
    assert body == base64.b64decode(_entry(signed["doc"])["canonicalizedBody"])
    tmp = stack["tmp"]
    proof = tmp / "release.tlog-proof"
    proof.write_text(proof_text)
    entry = tmp / "release.entry.json"
    entry.write_bytes(body)

    log_ed25519 = stack["log_vkeys"][1]
    one = tmp / "one.policy"
    one.write_text(f"log {log_ed25519}\nwitness w1 {witness_key.vkey}\nquorum w1\n")
    code, report = tlog_verify(str(proof), str(entry), "--policy", str(one))
    assert code == 0, report
    assert [s["step"] for s in report["steps"]] == ["proof", "leaf", "checkpoint", "witnesses", "inclusion"]

    # The same with the log key from the trust config (the ECDSA Rekor v1 key) and only witnesses in the policy.
    witnesses_only = tmp / "witnesses-only.policy"
    witnesses_only.write_text(f"witness w1 {witness_key.vkey}\nquorum w1\n")
    code, report = tlog_verify(str(proof), str(entry), "--trust-config", str(stack["trust"]), "--policy", str(witnesses_only))
    assert code == 0, report

    # And by leaf hash instead of the entry's bytes.
    leaf = next(s for s in report["steps"] if s["step"] == "leaf")["detail"].split()[1]
    code, _ = tlog_verify(str(proof), "--leaf-hash", leaf, "--policy", str(one))
    assert code == 0

    # A second witness that never cosigned: 2-of-2 is not met.
    absent = CosignatureV1Signer("witness.test/absent", Ed25519PrivateKey.generate()).verifier()
    two = tmp / "two.policy"
    two.write_text(f"log {log_ed25519}\nwitness w1 {witness_key.vkey}\nwitness w2 {vkey(absent)}\ngroup both all w1 w2\nquorum both\n")
    code, report = tlog_verify(str(proof), str(entry), "--policy", str(two))
    assert code == 1 and report["failed"] == ["witnesses"]

    # Another entry's bytes are not at that index.
    other = tmp / "other.entry.json"
    other.write_bytes(body.replace(b'"sha256"', b'"sha256" '))
    code, report = tlog_verify(str(proof), str(other), "--policy", str(one))
    assert code == 1 and report["failed"] == ["inclusion"]
