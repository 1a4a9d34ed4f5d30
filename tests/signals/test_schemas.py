"""The validation rules of a published signal (SPEC §4), as a publisher meets them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.helpers import Api, LoggedIn, assert_problem
from tests.producers.conftest import ProducerKey, Producers
from tests.signals.test_router import SIGNALS, limit_buy
from tradecast.kit import clock


@pytest.fixture
async def admin(api: Api) -> LoggedIn:
    return await api.admin()


async def post_raw(api: Api, admin: LoggedIn, raw: str) -> Any:
    """Post JSON text exactly as given: numbers a JSON encoder would not write."""
    return await api.client.post(
        SIGNALS,
        content=raw.encode(),
        headers={**admin.headers, "Content-Type": "application/json"},
    )


async def rejected_fields(api: Api, admin: LoggedIn, body: dict[str, Any]) -> list[str]:
    response = await api.client.post(SIGNALS, json=body, headers=admin.headers)
    problem = assert_problem(response, 422, "validation_error")
    return [error["field"] for error in problem["errors"]]


async def accepted(api: Api, admin: LoggedIn, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post(SIGNALS, json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def market(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"instrument": "EURUSD", "side": "buy", "order_type": "market"}
    body.update(overrides)
    return body


# --- instrument, side, order type ---------------------------------------------------------


@pytest.mark.parametrize(
    "instrument", ["", "eurusd", "EURUSD.m", "EUR/USD", "EUR USD", "A" * 33, "ÉURUSD", 42, None]
)
async def test_bad_instrument_is_rejected(api: Api, admin: LoggedIn, instrument: Any) -> None:
    assert await rejected_fields(api, admin, limit_buy(instrument=instrument)) == ["instrument"]


@pytest.mark.parametrize("instrument", ["A", "XAUUSD.PRO", "BTC-USD_1", "9" * 32])
async def test_instrument_characters_and_length_accepted(
    api: Api, admin: LoggedIn, instrument: str
) -> None:
    assert (await accepted(api, admin, limit_buy(instrument=instrument)))["instrument"] == (
        instrument
    )


async def test_side_and_order_type_must_be_known(api: Api, admin: LoggedIn) -> None:
    body = limit_buy(side="hold", order_type="fill_or_kill")
    assert await rejected_fields(api, admin, body) == ["side", "order_type"]


async def test_unknown_fields_are_rejected(api: Api, admin: LoggedIn) -> None:
    # A mistyped "stoploss" must not silently publish a signal without its stop.
    assert await rejected_fields(api, admin, limit_buy(stoploss="1.09")) == ["stoploss"]


async def test_missing_required_fields_are_each_reported(api: Api, admin: LoggedIn) -> None:
    assert await rejected_fields(api, admin, {}) == ["instrument", "side", "order_type"]


# --- entry price --------------------------------------------------------------------------


@pytest.mark.parametrize("order_type", ["limit", "stop"])
async def test_entry_price_is_required_unless_market(
    api: Api, admin: LoggedIn, order_type: str
) -> None:
    body = limit_buy(order_type=order_type)
    del body["entry_price"]
    assert await rejected_fields(api, admin, body) == ["entry_price"]


async def test_market_order_needs_no_entry_price(api: Api, admin: LoggedIn) -> None:
    signal = await accepted(api, admin, market())
    assert signal["entry_price"] is None
    assert signal["stop_loss"] is None
    assert signal["take_profit"] is None
    assert signal["volume"] is None


# --- exact decimals -----------------------------------------------------------------------


async def test_price_string_round_trips_exactly(api: Api, admin: LoggedIn) -> None:
    signal = await accepted(api, admin, limit_buy(entry_price="1.10005"))
    assert signal["entry_price"] == "1.10005"
    read = await api.client.get(f"{SIGNALS}/{signal['id']}", headers=admin.headers)
    assert read.json()["entry_price"] == "1.10005"


async def test_json_numbers_are_taken_exactly_not_as_floats(api: Api, admin: LoggedIn) -> None:
    # 20 significant digits: a binary float would round both of these.
    raw = json.dumps(market(volume="V", stop_loss="S"))
    raw = raw.replace('"V"', "123456789012.12345678").replace('"S"', "0.10000001")
    response = await post_raw(api, admin, raw)
    assert response.status_code == 201, response.text
    assert response.json()["volume"] == "123456789012.12345678"
    assert response.json()["stop_loss"] == "0.10000001"


async def test_numbers_and_strings_come_out_as_canonical_strings(api: Api, admin: LoggedIn) -> None:
    raw = json.dumps(limit_buy(volume="V")).replace('"V"', "2")
    response = await post_raw(api, admin, raw)
    assert response.json()["volume"] == "2"
    signal = await accepted(api, admin, limit_buy(entry_price="1.100050", volume="1.00"))
    assert (signal["entry_price"], signal["volume"]) == ("1.10005", "1")


@pytest.mark.parametrize(
    "price",
    [
        "1.123456789",  # 9 decimal places
        "1234567890123",  # 13 integer digits
        "1e400",
        "1E-5",
        "NaN",
        "Infinity",
        "-1.1",
        "0",
        "0.000000000",
        "",
        " 1.1",
        "1,1",
        "0x10",
        "1_000",
        "١٢",  # Arabic-Indic digits, which Decimal() would accept
        True,
        [],
    ],
)
async def test_bad_prices_are_rejected_not_rounded(api: Api, admin: LoggedIn, price: Any) -> None:
    assert await rejected_fields(api, admin, market(volume=price)) == ["volume"]


@pytest.mark.parametrize(
    "number", ["1.123456789", "1e400", "-5", "0", "1234567890123.5", "1e-9", "1" + "0" * 60]
)
async def test_bad_json_numbers_are_rejected(api: Api, admin: LoggedIn, number: str) -> None:
    raw = json.dumps(market(volume="V")).replace('"V"', number)
    problem = assert_problem(await post_raw(api, admin, raw), 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["volume"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_number_literals_are_rejected(
    api: Api, admin: LoggedIn, literal: str
) -> None:
    raw = json.dumps(market(volume="V")).replace('"V"', literal)
    assert_problem(await post_raw(api, admin, raw), 422, "validation_error")


@pytest.mark.parametrize("number", ["1." + "0" * 10_000 + "1", "1" + "0" * 5_000])
async def test_overlong_number_is_rejected_before_parsing(
    api: Api, admin: LoggedIn, number: str
) -> None:
    raw = json.dumps(market(volume="V")).replace('"V"', number)
    assert_problem(await post_raw(api, admin, raw), 422, "validation_error")


async def test_eight_places_and_twelve_digits_are_the_limits(api: Api, admin: LoggedIn) -> None:
    signal = await accepted(api, admin, market(volume="999999999999.99999999"))
    assert signal["volume"] == "999999999999.99999999"
    smallest = await accepted(api, admin, market(volume="0.00000001"))
    assert smallest["volume"] == "0.00000001"


async def test_producer_prices_are_exact_through_a_signed_request(
    producers: Producers, producer: ProducerKey
) -> None:
    raw = json.dumps(limit_buy(entry_price="E")).replace('"E"', "1.10005")
    response = await producers.send(
        producer,
        "POST",
        SIGNALS,
        content=raw.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["entry_price"] == "1.10005"


# --- stop loss and take profit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "overrides", "fields"),
    [
        ("buy", {"stop_loss": "1.2"}, ["stop_loss"]),
        ("buy", {"stop_loss": "1.10005"}, ["stop_loss"]),
        ("buy", {"take_profit": "1.0"}, ["take_profit"]),
        ("buy", {"take_profit": "1.10005"}, ["take_profit"]),
        ("buy", {"stop_loss": "1.2", "take_profit": "1.0"}, ["stop_loss", "take_profit"]),
        ("sell", {"stop_loss": "1.0", "take_profit": "1.2"}, ["stop_loss", "take_profit"]),
        ("sell", {"stop_loss": "1.2", "take_profit": "1.10005"}, ["take_profit"]),
    ],
)
async def test_stops_must_sit_on_the_right_side_of_entry(
    api: Api, admin: LoggedIn, side: str, overrides: dict[str, str], fields: list[str]
) -> None:
    body = {
        "instrument": "EURUSD",
        "side": side,
        "order_type": "limit",
        "entry_price": "1.10005",
        **overrides,
    }
    assert await rejected_fields(api, admin, body) == fields


async def test_sell_with_mirrored_stops_is_accepted(api: Api, admin: LoggedIn) -> None:
    body = limit_buy(side="sell", stop_loss="1.11", take_profit="1.09")
    signal = await accepted(api, admin, body)
    assert (signal["stop_loss"], signal["take_profit"]) == ("1.11", "1.09")


async def test_market_order_checks_take_profit_against_stop_loss(api: Api, admin: LoggedIn) -> None:
    assert await rejected_fields(api, admin, market(stop_loss="1.2", take_profit="1.1")) == [
        "take_profit"
    ]
    assert await rejected_fields(
        api, admin, market(side="sell", stop_loss="1.1", take_profit="1.2")
    ) == ["take_profit"]
    await accepted(api, admin, market(stop_loss="1.1", take_profit="1.2"))
    await accepted(api, admin, market(stop_loss="1.1"))


async def test_market_order_with_a_reference_price_checks_against_it(
    api: Api, admin: LoggedIn
) -> None:
    body = market(entry_price="1.5", stop_loss="1.6")
    assert await rejected_fields(api, admin, body) == ["stop_loss"]


# --- expiry and external id ---------------------------------------------------------------


async def test_explicit_expiry_is_kept_in_utc(api: Api, admin: LoggedIn) -> None:
    local = (clock.utcnow() + timedelta(hours=3)).astimezone(timezone(timedelta(hours=2)))
    signal = await accepted(api, admin, limit_buy(expires_at=local.isoformat()))
    returned = datetime.fromisoformat(signal["expires_at"].replace("Z", "+00:00"))
    assert returned == local
    assert returned.utcoffset() == timedelta(0)


@pytest.mark.parametrize("when", ["naive", "past", "now", "garbage"])
async def test_expiry_must_be_aware_and_in_the_future(api: Api, admin: LoggedIn, when: str) -> None:
    now = clock.utcnow()
    value = {
        "naive": (now + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
        "past": (now - timedelta(seconds=1)).isoformat(),
        "now": (now - timedelta(milliseconds=1)).isoformat(),
        "garbage": "tomorrow",
    }[when]
    assert await rejected_fields(api, admin, limit_buy(expires_at=value)) == ["expires_at"]


@pytest.mark.parametrize("external_id", ["", "x" * 65, "line\nbreak", 7])
async def test_bad_external_id_is_rejected(api: Api, admin: LoggedIn, external_id: Any) -> None:
    assert await rejected_fields(api, admin, limit_buy(external_id=external_id)) == ["external_id"]


async def test_external_id_of_64_characters_is_accepted(api: Api, admin: LoggedIn) -> None:
    signal = await accepted(api, admin, limit_buy(external_id="ü" * 64))
    assert signal["external_id"] == "ü" * 64


async def test_every_broken_rule_is_reported_at_once(api: Api, admin: LoggedIn) -> None:
    body = {
        "instrument": "eur",
        "side": "buy",
        "order_type": "limit",
        "volume": "-1",
        "external_id": "",
    }
    fields = await rejected_fields(api, admin, body)
    assert fields == ["instrument", "entry_price", "volume", "external_id"]
