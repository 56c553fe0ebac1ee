"""A small strict DER reader: enough ASN.1 to walk an RFC 3161 timestamp
response (CMS SignedData around a TSTInfo).

Only single-byte tags and definite, minimally encoded lengths are accepted
(DER); anything else is a :class:`DERError`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

__all__ = ["TLV", "DERError", "parse"]

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30
SET = 0x31
GENERALIZED_TIME = 0x18


class DERError(ValueError):
    """The bytes are not the DER structure expected."""


@dataclass(frozen=True)
class TLV:
    """One element: its identifier byte, content bytes and whole encoding."""

    tag: int
    value: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[TLV]:
        if not self.constructed:
            raise DERError(f"element with tag 0x{self.tag:02x} is not constructed")
        out = []
        pos = 0
        while pos < len(self.value):
            tlv, pos = _read(self.value, pos)
            out.append(tlv)
        return out

    def expect(self, tag: int, what: str) -> TLV:
        if self.tag != tag:
            raise DERError(f"{what}: expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self

    def integer(self) -> int:
        self.expect(INTEGER, "INTEGER")
        if not self.value:
            raise DERError("empty INTEGER")
        if len(self.value) > 1 and (
            (self.value[0] == 0 and not self.value[1] & 0x80) or (self.value[0] == 0xFF and self.value[1] & 0x80)
        ):
            raise DERError("INTEGER is not minimally encoded")
        return int.from_bytes(self.value, "big", signed=True)

    def oid(self) -> str:
        self.expect(OID, "OBJECT IDENTIFIER")
        return decode_oid(self.value)

    def octets(self) -> bytes:
        return self.expect(OCTET_STRING, "OCTET STRING").value

    def generalized_time(self) -> datetime.datetime:
        self.expect(GENERALIZED_TIME, "GeneralizedTime")
        return decode_generalized_time(self.value)


def _read(data: bytes, pos: int) -> tuple[TLV, int]:
    start = pos
    if pos + 2 > len(data):
        raise DERError("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags are not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DERError("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if data[pos] == 0 or length < 0x80:
            raise DERError("length is not minimally encoded")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("element runs past the end of its container")
    return TLV(tag, data[pos:end], data[start:end]), end


def parse(data: bytes) -> TLV:
    """Parse exactly one element spanning all of ``data``."""
    tlv, end = _read(bytes(data), 0)
    if end != len(data):
        raise DERError(f"{len(data) - end} trailing bytes after the element")
    return tlv


def decode_oid(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise DERError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    current = 0
    for byte in value:
        if current == 0 and byte == 0x80:
            raise DERError("OBJECT IDENTIFIER arc is not minimally encoded")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def decode_generalized_time(value: bytes) -> datetime.datetime:
    """``YYYYMMDDHHMMSS[.f+]Z`` (the DER form) to an aware UTC datetime."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DERError("GeneralizedTime is not ASCII") from exc
    if not text.endswith("Z") or len(text) < 15:
        raise DERError(f"GeneralizedTime {text!r} is not in UTC (YYYYMMDDHHMMSSZ)")
    main, fraction = text[:14], text[14:-1]
    if not main.isdigit():
        raise DERError(f"GeneralizedTime {text!r} is malformed")
    micro = 0
    if fraction:
        if not (fraction.startswith(".") and fraction[1:].isdigit() and not fraction.endswith("0")):
            raise DERError(f"GeneralizedTime {text!r} has a malformed fraction")
        micro = int((fraction[1:] + "000000")[:6])
    try:
        return datetime.datetime(
            int(main[0:4]), int(main[4:6]), int(main[6:8]), int(main[8:10]), int(main[10:12]), int(main[12:14]),
            micro, tzinfo=datetime.UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise DERError(f"GeneralizedTime {text!r} is not a valid time") from exc
