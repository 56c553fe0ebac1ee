"""A forked log: one key, two histories sharing a prefix. After cosigning
branch A, the witness must never cosign anything on branch B (422), whatever
proof it is offered, and must stay on branch A."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from witness_testlib import FakeLog, body, fixed_clock

from monitor.witness import (
    BadProof,
    Conflict,
    WitnessConfig,
    WitnessKey,
    WitnessState,
    load_or_create_key,
    process_add_checkpoint,
)

COMMON = 5  # leaves shared by both branches
N = 9  # size of branch A the witness cosigned
M = 21  # a larger size on branch B


@pytest.fixture
def branches() -> tuple[FakeLog, FakeLog]:
    a = FakeLog("example.com/forked", branch=b"A").grow_to(M)
    b = a.fork(COMMON, b"B").grow_to(M)
    assert a.root(COMMON) == b.root(COMMON)
    assert a.root(N) != b.root(N) and a.root(M) != b.root(M)
    return a, b


@pytest.fixture
def witness(tmp_path: Path, branches: tuple[FakeLog, FakeLog]):  # type: ignore[no-untyped-def]
    a, _ = branches
    config = WitnessConfig.from_vkeys([a.vkey])
    state = WitnessState.open(tmp_path)
    key: WitnessKey = load_or_create_key(tmp_path, name="witness.example/fork")

    def add(data: bytes) -> bytes:
        return process_add_checkpoint(data, config, state, key, fixed_clock())

    # Both branches are validly signed by the same log key.
    add(body(0, [], a.checkpoint(COMMON)))
    add(body(COMMON, a.proof(COMMON, N), a.checkpoint(N)))
    return add, state


def assert_still_on_a(state: WitnessState, a: FakeLog) -> None:
    stored = state.latest(a.origin)
    assert stored is not None
    assert (stored.size, stored.root_hash) == (N, a.root(N))


def test_branch_b_larger_is_refused_with_any_proof(witness, branches) -> None:  # type: ignore[no-untyped-def]
    add, state = witness
    a, b = branches
    proofs = {
        "B's own proof from N": b.proof(N, M),
        "A's proof from N (to A's size M)": a.proof(N, M),
        "B's proof from the common prefix": b.proof(COMMON, M),
        "empty": [],
    }
    # And proofs of the right length made of arbitrary hashes.
    length = len(b.proof(N, M))
    for i in range(5):
        proofs[f"random #{i}"] = [os.urandom(32) for _ in range(length)]
    for why, proof in proofs.items():
        with pytest.raises(BadProof):
            add(body(N, proof, b.checkpoint(M)))
        assert_still_on_a(state, a), why


def test_branch_b_same_size_is_refused(witness, branches) -> None:  # type: ignore[no-untyped-def]
    add, state = witness
    a, b = branches
    with pytest.raises(BadProof, match="different root hash"):
        add(body(N, [], b.checkpoint(N)))
    assert_still_on_a(state, a)


def test_branch_b_from_the_common_prefix_is_a_conflict_not_a_rollback(witness, branches) -> None:  # type: ignore[no-untyped-def]
    """B's history is consistent with size COMMON, but the witness is past it."""
    add, state = witness
    a, b = branches
    with pytest.raises(Conflict) as err:
        add(body(COMMON, b.proof(COMMON, M), b.checkpoint(M)))
    assert err.value.size == N
    assert_still_on_a(state, a)


def test_branch_a_keeps_growing_and_refusals_are_kept_as_evidence(witness, branches) -> None:  # type: ignore[no-untyped-def]
    add, state = witness
    a, b = branches
    with pytest.raises(BadProof):
        add(body(N, b.proof(N, M), b.checkpoint(M)))
    with pytest.raises(BadProof):
        add(body(N, [], b.checkpoint(N)))
    add(body(N, a.proof(N, M), a.checkpoint(M)))
    stored = state.latest(a.origin)
    assert stored is not None and (stored.size, stored.root_hash) == (M, a.root(M))
    evidence = state.evidence(a.origin)
    assert len(evidence) == 2
    assert all(e.request.endswith(b.checkpoint(e_size)) for e, e_size in zip(evidence, (M, N), strict=True))


def test_evidence_is_capped_per_origin(witness, branches, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import monitor.witness

    monkeypatch.setattr(monitor.witness, "MAX_EVIDENCE_PER_ORIGIN", 2)
    add, state = witness
    _, b = branches
    for size in (N, M, M + 1):
        with pytest.raises(BadProof):
            add(body(N, b.proof(N, size), b.checkpoint(size)))
    assert len(state.evidence(b.origin)) == 2
