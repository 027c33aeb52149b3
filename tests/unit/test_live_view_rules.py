"""The live view's rules without a server: who sees what (the alert subscriptions' rule, by
desk), how events are shaped (times the page matches by string equality, exact decimals), the
hub's fan-out, and the md.candles wire record."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.alerts import iso_utc
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec, EncodeError
from tapeflow.core.fixedpoint import MAX_UNITS, ONE
from tapeflow.core.market.candle_buckets import Candle
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.core.risk import permitted
from tapeflow.errors import UserError
from tapeflow.web.access import LOCAL, Viewer, Viewers, hash_password
from tapeflow.web.events import alert_event, candle_event
from tapeflow.web.live import Hub, jsonable

CODEC = Codec(LocalCatalogue.load())
DESKS = {"desk-a": frozenset({"A1", "A2"}), "desk-b": frozenset({"B1"})}


def _basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def viewers(tmp_path: Path) -> Viewers:
    path = tmp_path / "viewers.json"
    path.write_text(json.dumps({
        "alice": {"password_scrypt": hash_password("a-pw"), "desks": ["desk-a"]},
        "ops": {"password_scrypt": hash_password("o-pw"), "desks": "*"},
        "carol": {"password_scrypt": hash_password("c-pw"), "desks": ["desk-b"],
                  "accounts": ["X9"]},
    }))
    return Viewers.load(path, DESKS)


def test_a_viewer_sees_the_accounts_of_its_desks(viewers: Viewers) -> None:
    alice = viewers.authenticate(_basic("alice", "a-pw"))
    carol = viewers.authenticate(_basic("carol", "c-pw"))
    ops = viewers.authenticate(_basic("ops", "o-pw"))
    assert alice is not None and alice.accounts == {"A1", "A2"}
    assert carol is not None and carol.accounts == {"B1", "X9"}
    assert ops is not None and ops.accounts is None
    assert alice.may_see("A1") and not alice.may_see("B1") and not alice.may_see(None)
    assert ops.may_see("B1") and ops.may_see(None)


@pytest.mark.parametrize("header", [
    None, "", "Bearer x", _basic("alice", "wrong"), _basic("mallory", "a-pw"),
    "Basic not-base64!", "Basic " + base64.b64encode(b"\xff\xfe").decode()])
def test_no_viewer_without_the_right_password(viewers: Viewers, header: str | None) -> None:
    assert viewers.authenticate(header) is None


def test_without_a_viewers_file_one_local_viewer_sees_everything() -> None:
    open_viewers = Viewers.load(None)
    assert open_viewers.open and open_viewers.authenticate(None) is LOCAL
    assert LOCAL.may_see("anything") and LOCAL.may_see(None)


@pytest.mark.parametrize(("content", "message"), [
    ({"v": {"password_scrypt": "x", "desks": ["desk-z"]}}, "no desk desk-z"),
    ({"v": {"password_scrypt": "x", "desks": "desk-a"}}, "lists of names"),
    ({"v": {"desks": ["desk-a"]}}, "expected"),
    ([], "expected"),
])
def test_a_wrong_viewers_file_is_one_line(tmp_path: Path, content: object,
                                          message: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UserError, match=message) as caught:
        Viewers.load(path, DESKS)
    assert "\n" not in str(caught.value)


def _alert(account: str | None) -> RiskAlert:
    return RiskAlert("id", "order_size", Severity.WARNING, account, "XYZ", 1, ONE, ONE, "m", "e")


accounts = st.sampled_from(["A1", "A2", "B1", "X9", ""]) | st.none()


@given(accounts, st.none() | st.frozensets(st.sampled_from(["A1", "A2", "B1", "X9"])))
def test_a_viewer_is_refused_exactly_what_a_subscriber_is(account: str | None,
                                                           allowed: frozenset[str] | None
                                                           ) -> None:
    viewer = Viewer("v", allowed)
    assert viewer.may_see(account) == permitted(_alert(account), allowed)
    assert viewer.accepts(alert_event(_alert(account))) == permitted(_alert(account), allowed)


def test_market_data_reaches_every_viewer() -> None:
    candle = Candle("XYZ", 0, 1_000_000, ONE, ONE, ONE, ONE, ONE, ONE * ONE, ONE, 1, 1)
    assert Viewer("nobody", frozenset()).accepts(candle_event(candle))


@given(st.integers(min_value=-2_208_988_800_000_000, max_value=10_413_791_999_999_999))
def test_event_times_equal_the_api_rows_times(us: int) -> None:
    """The page replaces a candle row by its bucket string: the API's (a datetime from a store,
    with or without a zone) and the event's (integer µs) must be the same string."""
    aware = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    assert iso_utc(us) == jsonable(aware) == jsonable(aware.replace(tzinfo=None))


def test_decimals_and_big_versions_travel_as_exact_strings() -> None:
    candle = Candle("XYZ", 60_000_000, 60_000_000, 187_12345678, 190 * ONE, 180 * ONE,
                    None, 3 * ONE, 10**30 + 1, 18_712_345_678, 3, 2**60 + 1)
    event = candle_event(candle)
    assert (event["open"], event["close"], event["interval"]) == ("187.12345678", None, "1m")
    assert event["version"] == str(2**60 + 1)
    assert jsonable(Decimal("0.10000000")) == "0.10000000"
    assert jsonable(2**53) == str(2**53) and jsonable(2**53 - 1) == 2**53 - 1


def test_the_hub_gives_each_viewer_what_it_accepts_and_drops_a_slow_ones_oldest() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        hub = Hub(max_queue=3)
        _, evens = hub.subscribe(lambda e: e["n"] % 2 == 0)
        _, every = hub.subscribe(lambda e: True)
        for n in range(8):
            hub.publish({"kind": "x", "n": n})
        await asyncio.sleep(0)  # the loop runs the call_soon_threadsafe offers
        drain = [[q.get_nowait()["n"] for _ in range(q.qsize())] for q in (evens, every)]
        return drain[0], drain[1]

    evens, every = asyncio.run(scenario())
    assert evens == [2, 4, 6]  # 0 dropped: its own queue was full
    assert every == [5, 6, 7]


@given(st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
       st.integers(min_value=-MAX_UNITS, max_value=MAX_UNITS),
       st.none() | st.integers(min_value=1, max_value=MAX_UNITS))
def test_a_candle_round_trips_on_the_wire(notional: int, vwap: int, price: int | None) -> None:
    candle = Candle("XYZ", 1_700_000_000_000_000, 1_000_000, price, price, price, price, ONE,
                    notional, vwap, 7, (1 << 40) + 7)
    assert CODEC.decode(CODEC.encode(candle), expect="Candle") == candle


@pytest.mark.parametrize("candle", [
    Candle("XYZ", 0, 1_000_000, None, None, None, None, ONE, 10**38, ONE, 1, 1),
    Candle("XYZ", 0, 1_000_000, MAX_UNITS + 1, None, None, None, ONE, 0, ONE, 1, 1),
])
def test_a_candle_beyond_its_decimals_is_refused(candle: Candle) -> None:
    with pytest.raises(EncodeError, match="precision"):
        CODEC.encode(candle)
