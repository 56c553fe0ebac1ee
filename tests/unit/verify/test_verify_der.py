"""The strict DER reader used for RFC 3161 timestamps."""

from __future__ import annotations

import datetime

import pytest

from tlog.verify import der


def test_nested_sequence() -> None:
    tlv = der.parse(bytes.fromhex("3006020101020102"))
    assert [c.integer() for c in tlv.children()] == [1, 2]


def test_long_length() -> None:
    body = b"\x04\x81\x80" + b"x" * 0x80
    assert der.parse(body).octets() == b"x" * 0x80


@pytest.mark.parametrize(
    ("hexdata", "error"),
    [
        ("0481", "truncated|bad length"),
        ("048105" + "00" * 5, "minimally"),  # long form for a short length
        ("0480", "indefinite"),
        ("0403aabb", "past the end"),
        ("0401aabb", "trailing"),
        ("1f0100", "multi-byte"),
        ("02020001", "minimally"),
        ("0200", "empty INTEGER"),
    ],
)
def test_rejects_non_der(hexdata: str, error: str) -> None:
    with pytest.raises(der.DERError, match=error):
        tlv = der.parse(bytes.fromhex(hexdata))
        tlv.integer()


def test_oid() -> None:
    assert der.parse(bytes.fromhex("06092a864886f70d010702")).oid() == "1.2.840.113549.1.7.2"
    assert der.parse(bytes.fromhex("0603551d25")).oid() == "2.5.29.37"
    with pytest.raises(der.DERError):
        der.decode_oid(b"\x2a\x80")
    with pytest.raises(der.DERError):
        der.decode_oid(b"\x2a\x80\x01")


def test_negative_integer() -> None:
    assert der.parse(bytes.fromhex("0201ff")).integer() == -1
    assert der.parse(bytes.fromhex("020200ff")).integer() == 255


def test_generalized_time() -> None:
    utc = datetime.UTC
    assert der.decode_generalized_time(b"20250609115738Z") == datetime.datetime(2025, 6, 9, 11, 57, 38, tzinfo=utc)
    assert der.decode_generalized_time(b"20250609115738.25Z").microsecond == 250000
    for bad in (b"20250609115738", b"20250609115738.250Z", b"2025060911573Z", b"20251309115738Z", b"2025060911573xZ"):
        with pytest.raises(der.DERError):
            der.decode_generalized_time(bad)


def test_expect_and_constructed() -> None:
    with pytest.raises(der.DERError, match="expected tag"):
        der.parse(b"\x04\x00").expect(0x30, "SEQUENCE")
    with pytest.raises(der.DERError, match="not constructed"):
        der.parse(b"\x04\x00").children()
