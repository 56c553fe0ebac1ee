"""Reading the monitor's small YAML configuration files (watchlist, publisher policy).

Both are operator-written files read at start: bounded in size, UTF-8, and
every failure is a usage error naming the file rather than a traceback.
"""

from __future__ import annotations

from pathlib import Path


def read_config_text(path: str | Path, *, what: str, max_bytes: int, error: type[Exception]) -> str:
    """The text of ``path``; ``error`` (the caller's usage-error class) names ``what`` went wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8") from None
