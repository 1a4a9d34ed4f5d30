from __future__ import annotations

import pytest
from pydantic import ValidationError

from tradecast.devices.schemas import DeviceCreate


@pytest.mark.parametrize(
    ("offered", "stored"),
    [
        ("  MT5 main \n", "MT5 main"),
        ("Cafe\u0301", "Caf\u00e9"),  # decomposed é is stored composed (NFC)
        ("終端 1", "終端 1"),
        ("👩\u200d💻 desk", "👩\u200d💻 desk"),  # emoji joined with a zero-width joiner
        ("x" * 64, "x" * 64),
        ("é" * 64, "é" * 64),  # the limit counts characters, not bytes
        ("  " + "y" * 64 + "  ", "y" * 64),  # trimmed before the length is checked
    ],
)
def test_names_are_trimmed_and_normalised(offered: str, stored: str) -> None:
    assert DeviceCreate(device_name=offered).device_name == stored


@pytest.mark.parametrize(
    "name",
    [
        "",
        " \t ",
        "x" * 65,
        "bell\x07",
        "del\x7f",
        "next\x85line",
        "bidi\u202espoof",
        "zero\u200bwidth",
        "bom\ufeff",
        "line\u2028separator",
    ],
)
def test_empty_overlong_and_invisible_character_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        DeviceCreate(device_name=name)
    assert [error["loc"] for error in raised.value.errors()] == [("device_name",)]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        DeviceCreate.model_validate({"device_name": "ok", "secret": "chosen by the client"})
