"""The verification report: an ordered list of named steps, each passed,
failed or not checked, rendered as text (one line per step) or as JSON.

A step that could not run because an earlier one failed is *skipped*, not
failed, so a single fault shows up as a single ✗ at the step that caught it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Status", "Step", "StepFailed"]


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


_MARKS = {Status.PASS: "\u2713", Status.FAIL: "\u2717", Status.SKIP: "-"}


class StepFailed(Exception):
    """Raised inside :meth:`Report.step` to fail that step with ``detail``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Step:
    """One check. ``name`` is the stable identifier (``checkpoint``, ``set``,
    ...); ``title`` the words shown to people; ``detail`` continues the title
    when the step passed ("checkpoint signed by ...") and gives the reason
    when it failed or was skipped."""

    name: str
    title: str
    status: Status
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        mark = _MARKS[self.status]
        if self.status is Status.PASS:
            return f"{mark} {self.title} {self.detail}"
        return f"{mark} {self.title}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.name, "title": self.title, "status": self.status.value, "detail": self.detail}
        if self.facts:
            out["facts"] = self.facts
        return out


class _Outcome:
    """What a step body sets: the pass detail and machine-readable facts."""

    def __init__(self) -> None:
        self.detail = ""
        self.facts: dict[str, Any] = {}

    def ok(self, detail: str, **facts: Any) -> None:
        self.detail = detail
        self.facts.update(facts)


@dataclass
class Report:
    """The outcome of verifying one input."""

    kind: str
    subject: str
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True only if at least one step ran and none failed."""
        return bool(self.steps) and all(s.status is not Status.FAIL for s in self.steps)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status is Status.FAIL]

    def get(self, name: str) -> Step | None:
        for s in self.steps:
            if s.name == name:
                return s
        return None

    def status(self, name: str) -> Status | None:
        s = self.get(name)
        return s.status if s else None

    def passed(self, name: str) -> bool:
        return self.status(name) is Status.PASS

    def add(self, name: str, title: str, status: Status, detail: str, **facts: Any) -> Step:
        step = Step(name, title, status, detail, dict(facts))
        self.steps.append(step)
        return step

    def skip(self, name: str, title: str, reason: str) -> Step:
        return self.add(name, title, Status.SKIP, reason)

    def fail(self, name: str, title: str, reason: str, **facts: Any) -> Step:
        return self.add(name, title, Status.FAIL, reason, **facts)

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[_Outcome]:
        """Run a check: the body calls ``out.ok(detail)`` on success or raises
        :class:`StepFailed`. Any other exception also fails the step, with its
        message: malformed input must surface as a failed check, not a crash."""
        out = _Outcome()
        try:
            yield out
        except StepFailed as exc:
            self.add(name, title, Status.FAIL, exc.detail, **out.facts)
            return
        except Exception as exc:  # noqa: BLE001 - malformed input must fail the step, not crash
            self.add(name, title, Status.FAIL, _describe(exc), **out.facts)
            return
        self.add(name, title, Status.PASS, out.detail or "verified", **out.facts)

    def render(self) -> str:
        lines = [f"{self.kind}: {self.subject}"]
        lines += [s.line for s in self.steps]
        if self.ok:
            lines.append("OK: every check passed")
        else:
            names = ", ".join(s.name for s in self.failed)
            lines.append(f"FAILED: {len(self.failed)} check(s) failed ({names})")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "ok": self.ok,
            "failed": [s.name for s in self.failed],
            "steps": [s.to_json() for s in self.steps],
            "facts": self.facts,
        }


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, ValueError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
