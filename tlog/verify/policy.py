"""C2SP transparency log policies (``c2sp.org/tlog-policy``): which logs may
sign a checkpoint, which witnesses may cosign it, and the quorum of
cosignatures a checkpoint needs to be accepted.

::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <name>...
    quorum <name>|none

Parsing follows the spec strictly: names are defined before use in one
namespace shared by witnesses and groups (``none`` is reserved), a name is a
group member at most once, ``1 <= k <= n``, no two logs and no two witnesses
wrap the same public key, and there is exactly one quorum line.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tlog.note import (
    CosignatureV1Verifier,
    Note,
    NoteError,
    VKeyVerifier,
    verifier_from_vkey,
)

__all__ = [
    "CosignatureCheck",
    "Group",
    "Policy",
    "PolicyError",
    "QuorumError",
    "Witness",
    "check_cosignatures",
    "parse_policy",
    "require_quorum",
]

NONE = "none"
_WS = re.compile(rb"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]*")
MAX_ENTRIES = 1024


class PolicyError(ValueError):
    """The policy file is malformed; the message names the line."""


@dataclass(frozen=True)
class Witness:
    name: str
    verifier: VKeyVerifier
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[VKeyVerifier, ...]
    witnesses: dict[str, Witness]
    groups: dict[str, Group]
    quorum: str
    log_urls: tuple[str | None, ...] = ()

    def witnessed(self, name: str, cosigned: Iterable[str]) -> bool:
        """Whether witness or group ``name`` witnessed, given the witnesses that cosigned."""
        done = set(cosigned)
        if name == NONE:
            return True
        if name in self.witnesses:
            return name in done
        group = self.groups[name]
        return sum(self.witnessed(m, done) for m in group.members) >= group.threshold

    def satisfied(self, cosigned: Iterable[str]) -> bool:
        return self.witnessed(self.quorum, cosigned)

    def describe(self, name: str | None = None) -> str:
        """The rule a name stands for, e.g. ``2 of (w1, w2, any of (w3, w4))``."""
        name = self.quorum if name is None else name
        if name == NONE:
            return "no cosignatures"
        if name in self.witnesses:
            return name
        group = self.groups[name]
        inner = ", ".join(self.describe(m) for m in group.members)
        return f"{group.threshold} of ({inner})"


def _text(token: bytes) -> str:
    return token.decode("utf-8", errors="surrogateescape")


def _key_material(verifier: VKeyVerifier) -> bytes:
    return verifier.vkey_material[1:]


def parse_policy(data: bytes | str) -> Policy:
    """Parse a policy file. Raises :class:`PolicyError`."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    for i, octet in enumerate(raw):
        if octet < 0x20 and octet not in (0x09, 0x0A) or octet == 0x7F:
            raise PolicyError(f"byte {i}: control character 0x{octet:02x} is not allowed")
    logs: list[VKeyVerifier] = []
    log_urls: list[str | None] = []
    witnesses: dict[str, Witness] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None

    def defined(name: str) -> bool:
        return name in witnesses or name in groups

    for number, line in enumerate(raw.split(b"\n"), start=1):
        stripped = line.strip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            continue
        if len(logs) + len(witnesses) + len(groups) >= MAX_ENTRIES:
            raise PolicyError(f"line {number}: more than {MAX_ENTRIES} definitions")
        keyword, *args = [_text(t) for t in _WS.split(stripped)]
        where = f"line {number} ({keyword})"
        try:
            if keyword == "log":
                if len(args) not in (1, 2):
                    raise PolicyError(f"{where}: want 'log <vkey> [<url>]'")
                verifier = verifier_from_vkey(args[0])
                if any(_key_material(v) == _key_material(verifier) for v in logs):
                    raise PolicyError(f"{where}: duplicate log key")
                logs.append(verifier)
                log_urls.append(args[1] if len(args) == 2 else None)
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise PolicyError(f"{where}: want 'witness <name> <vkey> [<url>]'")
                name = args[0]
                if name == NONE or defined(name):
                    raise PolicyError(f"{where}: name {name!r} is reserved or already defined")
                verifier = verifier_from_vkey(args[1])
                if any(_key_material(w.verifier) == _key_material(verifier) for w in witnesses.values()):
                    raise PolicyError(f"{where}: duplicate witness key")
                witnesses[name] = Witness(name, verifier, args[2] if len(args) == 3 else None)
            elif keyword == "group":
                if len(args) < 3:
                    raise PolicyError(f"{where}: want 'group <name> all|any|<k> <name>...'")
                name, k_text, *members = args
                if name == NONE or defined(name):
                    raise PolicyError(f"{where}: name {name!r} is reserved or already defined")
                for member in members:
                    if member == NONE or not defined(member):
                        raise PolicyError(f"{where}: member {member!r} is not a witness or group defined above")
                if len(set(members)) != len(members):
                    raise PolicyError(f"{where}: a member is listed twice")
                if k_text == "all":
                    k = len(members)
                elif k_text == "any":
                    k = 1
                elif _DECIMAL.fullmatch(k_text) and int(k_text) <= len(members):
                    k = int(k_text)
                else:
                    raise PolicyError(f"{where}: threshold {k_text!r} is not all, any or 1..{len(members)}")
                groups[name] = Group(name, k, tuple(members))
            elif keyword == "quorum":
                if len(args) != 1:
                    raise PolicyError(f"{where}: want 'quorum <name>'")
                if quorum is not None:
                    raise PolicyError(f"{where}: a second quorum line")
                if args[0] != NONE and not defined(args[0]):
                    raise PolicyError(f"{where}: {args[0]!r} is not a witness or group defined above")
                quorum = args[0]
            else:
                raise PolicyError(f"{where}: unknown keyword")
        except NoteError as exc:
            raise PolicyError(f"{where}: {exc}") from exc
    if quorum is None:
        raise PolicyError("the policy has no quorum line")
    return Policy(tuple(logs), witnesses, groups, quorum, tuple(log_urls))


@dataclass
class CosignatureCheck:
    """Which policy witnesses cosigned a checkpoint note."""

    valid: dict[str, int | None] = field(default_factory=dict)  # witness -> cosignature time
    invalid: list[str] = field(default_factory=list)


def check_cosignatures(note: Note, policy: Policy) -> CosignatureCheck:
    """Verify every signature line from a policy witness (matched by key name
    and key ID). A line that matches but does not verify is recorded in
    ``invalid``; the spec says such a note should be rejected."""
    result = CosignatureCheck()
    message = note.message
    for name, witness in policy.witnesses.items():
        verifier = witness.verifier
        for sig in note.signatures:
            if sig.name != verifier.name or sig.key_id != verifier.key_id:
                continue
            if isinstance(verifier, CosignatureV1Verifier):
                when = verifier.verify_timestamp(message, sig.signature)
                ok = when is not None
            else:
                when, ok = None, verifier.verify(message, sig.signature)
            if ok:
                result.valid.setdefault(name, when)
            elif name not in result.invalid:
                result.invalid.append(name)
    return result


class QuorumError(ValueError):
    """A checkpoint is not cosigned as the policy requires."""


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    return " at " + datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def require_quorum(note: Note, policy: Policy) -> str:
    """Check the policy's quorum over ``note``'s cosignatures; returns a
    description on success, raises :class:`QuorumError` otherwise."""
    check = check_cosignatures(note, policy)
    if check.invalid:
        raise QuorumError(f"the cosignature of {', '.join(check.invalid)} does not verify")
    cosigned = ", ".join(f"{name}{_when(ts)}" for name, ts in check.valid.items()) or "none"
    if not policy.satisfied(check.valid):
        raise QuorumError(f"quorum not met: the policy needs {policy.describe()}; cosigned by {cosigned}")
    if policy.quorum == NONE:
        return f"not required (quorum none); cosigned by {cosigned}"
    return f"meet the quorum {policy.describe()}: cosigned by {cosigned}"
