"""Progress bars for catching up on a log (``--progress``), drawn by tqdm on stderr.

Stderr and never stdout: alerts go to stdout as JSON lines by default, and a
bar there would corrupt them for whatever reads the stream. The CLI turns
bars on when stderr is a terminal, or when ``--progress`` asks (a CI log that
wants to see a long catch-up move); ``--no-progress`` turns them off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

from tqdm import tqdm

from monitor.audit import Progress

__all__ = ["progress_bars"]


def progress_bars(stream: IO[str] | None = None) -> Callable[[str, int], Progress]:
    """A factory for :func:`monitor.audit.audit_log`: one bar per pass, labelled with the origin."""

    def bar(origin: str, entries: int) -> Progress:
        out = stream if stream is not None else sys.stderr
        return tqdm(
            total=entries,
            desc=origin,
            unit=" entries",
            unit_scale=True,
            dynamic_ncols=True,
            # A terminal redraws in place; a file gets a line now and then.
            mininterval=0.2 if out.isatty() else 5.0,
            file=out,
        )

    return bar
