"""Prices and sizes as exact decimals across the JSON boundary.

JSON numbers are parsed straight into ``Decimal`` (never through a binary
float), JSON strings must be plain decimal notation, and every value is held
to what ``NUMERIC(20, 8)`` stores: at most 12 integer digits and 8 decimal
places (money, ``MoneyAmount``: 16 and 2, as ``NUMERIC(18, 2)`` stores).
Too many digits are rejected, never rounded. Out, a value is the
canonical decimal text: plain notation, no trailing zeros (``"1.10005"``,
not ``"1.10005000"`` as PostgreSQL would hand it back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

MAX_INTEGER_DIGITS = 12
MAX_DECIMAL_PLACES = 8
# Settled money, NUMERIC(18, 2).
MONEY_INTEGER_DIGITS = 16
MONEY_DECIMAL_PLACES = 2
# Longer than any value that can pass the limits above: refuse before parsing.
MAX_NUMBER_TEXT = 64
# ASCII digits only: Decimal() would also take other scripts' digits, such as "١٢".
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _refuse_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity, which are not JSON and not prices.
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _refuse_overlong(text: str) -> None:
    if len(text) > MAX_NUMBER_TEXT:
        raise json.JSONDecodeError("number too long", text[:MAX_NUMBER_TEXT], 0)


def _exact_number(text: str) -> Decimal:
    _refuse_overlong(text)
    return Decimal(text)


def _bounded_int(text: str) -> int:
    _refuse_overlong(text)
    return int(text)


# Made once: ``json.loads`` given these hooks builds a new decoder on every call.
_DECODER = json.JSONDecoder(
    parse_float=_exact_number, parse_int=_bounded_int, parse_constant=_refuse_constant
)


def loads_exact(body: bytes) -> Any:
    """``json.loads`` with numbers that have a fraction or exponent kept as ``Decimal``:
    the body's encoding found as ``json.loads`` finds it (UTF-8, -16 or -32)."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """A route whose JSON body keeps every number exact (``route_class=`` of a router)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_handler


def _decimal_places(value: Decimal) -> int:
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError("must be a finite number")
    trailing_zeros = 0
    for digit in reversed(digits):
        if digit:
            break
        trailing_zeros += 1
    return max(0, -(exponent + trailing_zeros))


def parse_positive_decimal(value: object) -> Decimal:
    """A positive decimal within ``NUMERIC(20, 8)``, from a JSON string or number."""
    return _bounded_positive(value, MAX_INTEGER_DIGITS, MAX_DECIMAL_PLACES, "1.10005")


def parse_money(value: object) -> Decimal:
    """A positive amount of money within ``NUMERIC(18, 2)``: whole cents, never rounded."""
    return _bounded_positive(value, MONEY_INTEGER_DIGITS, MONEY_DECIMAL_PLACES, "50.00")


def _bounded_positive(value: object, integer_digits: int, places: int, example: str) -> Decimal:
    # bool is an int subclass, and a float has already lost the digits it was sent with.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("must be a decimal number, as a JSON string or number")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_TEXT or not _PLAIN_DECIMAL.fullmatch(value):
            raise ValueError(f'must be a plain decimal such as "{example}"')
        value = Decimal(value)
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number <= 0:
        raise ValueError("must be greater than 0")
    # adjusted() is the exponent of the leading digit: no arithmetic, so no overflow on 1e999999.
    if number.adjusted() >= integer_digits:
        raise ValueError(f"must have at most {integer_digits} digits before the point")
    if _decimal_places(number) > places:
        raise ValueError(f"must have at most {places} decimal places")
    return Decimal(decimal_text(number))


def decimal_text(value: Decimal) -> str:
    """Plain notation without trailing zeros: the one text form of a value."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


PositiveDecimal = Annotated[
    Decimal,
    PlainValidator(parse_positive_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,8})?$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": (
                "Positive decimal: at most 12 digits before and 8 after the point. "
                "Send it as a string to be sure no client rounds it on the way."
            ),
            "examples": ["1.10005"],
        }
    ),
]
DecimalText = Annotated[Decimal, PlainSerializer(decimal_text, return_type=str)]
MoneyAmount = Annotated[
    Decimal,
    PlainValidator(parse_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,16}(\.\d{1,2})?$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": (
                "Positive amount of money: at most 16 digits before and 2 after the point. "
                "Send it as a string to be sure no client rounds it on the way."
            ),
            "examples": ["50.00"],
        }
    ),
]
