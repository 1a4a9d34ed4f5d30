from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tradecast.kit.decimals import loads_exact

BODY = '{"price": 1.10005, "size": 2, "note": "é"}'


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_a_body_parses_the_same_in_every_json_encoding(encoding: str) -> None:
    parsed = loads_exact(BODY.encode(encoding))
    assert parsed == {"price": Decimal("1.10005"), "size": 2, "note": "é"}
    assert isinstance(parsed["price"], Decimal)


@pytest.mark.parametrize(
    "body", [b'{"price": NaN}', b'{"price": Infinity}', b"[1e" + b"9" * 70 + b"]"]
)
def test_constants_and_overlong_numbers_are_refused(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_exact(body)


def test_invalid_utf8_is_not_json() -> None:
    with pytest.raises(UnicodeDecodeError):
        loads_exact(b'{"note": "\xff"}')
