"""When the next integration batch starts (tlog.sequencer.batch_due)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlog.sequencer import batch_due


def test_a_lone_entry_never_waits() -> None:
    assert batch_due(now=100.0, last_start=99.999, last_size=1, pending=1, interval=0.5) == 0.0
    assert batch_due(now=100.0, last_start=99.999, last_size=0, pending=1, interval=0.5) == 0.0


def test_a_batch_as_large_as_the_last_starts_at_once() -> None:
    assert batch_due(now=100.0, last_start=99.999, last_size=30, pending=30, interval=0.5) == 0.0
    assert batch_due(now=100.0, last_start=99.999, last_size=30, pending=45, interval=0.5) == 0.0


def test_a_smaller_batch_waits_out_the_interval_at_most() -> None:
    assert batch_due(now=100.0, last_start=99.996, last_size=30, pending=12, interval=0.010) == pytest.approx(0.006)
    assert batch_due(now=100.0, last_start=99.98, last_size=30, pending=12, interval=0.010) == 0.0


def test_no_interval_never_waits() -> None:
    assert batch_due(now=5.0, last_start=5.0, last_size=100, pending=1, interval=0.0) == 0.0


@given(
    now=st.floats(0, 1e6),  # time.monotonic() values
    ago=st.floats(0, 10),
    last_size=st.integers(0, 10_000),
    pending=st.integers(1, 10_000),
    interval=st.floats(0, 1),
)
def test_the_wait_is_bounded_by_the_interval(now: float, ago: float, last_size: int, pending: int, interval: float) -> None:
    wait = batch_due(now, now - ago, last_size, pending, interval)
    assert 0.0 <= wait <= interval
    if pending >= last_size:
        assert wait == 0.0
    elif ago < interval:
        assert abs((now + wait) - (now - ago + interval)) < 1e-6  # starts one interval after the last
