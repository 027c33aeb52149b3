"""Dead letters of the stores and their replay plan, without services (issue 14).

- The refused rows a `store_refused` letter carries read back exactly: every value type the
  row mappers make (text with NUL, controls and lone surrogates, exact decimals, aware
  datetimes, integers up to 2^63, lists, None), for Postgres dict rows and ClickHouse value rows
  (a hypothesis property over generated rows).
- A letter's identity is its origin for a record that did not decode, and its content for a
  store's refusal, so the same letter twice on the topic is one letter; the replay plan sends
  each identity once, skips what the ledger holds and what holds nothing to re-inject.
The same through the real services: tests/integration/test_dlq.py, test_poison_rows.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.dlq import Letters, Selection, identity, parse_position, plan, target
from sinks.dead_letters import StoreDeadLetters, rows_from_json, rows_to_json
from sources.kafka.dlq_reader import StoredLetter
from tapeflow.core.models import DeadLetter

TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
VALUES = st.recursive(
    st.none() | TEXT | st.integers(-(2**63), 2**63 - 1)
    | st.decimals(allow_nan=False, allow_infinity=False, places=8)
    # hypothesis takes naive bounds and adds the zone itself
    | st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2299, 12, 31),  # noqa: DTZ001
                   timezones=st.just(UTC)),
    lambda inner: st.lists(inner, max_size=4), max_leaves=6)


@given(st.lists(st.tuples(st.sampled_from(["orders", "positions"]),
                          st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES)),
                max_size=4))
def test_postgres_rows_read_back_exactly(rows: list[tuple[str, dict[str, Any]]]) -> None:
    assert rows_from_json(rows_to_json("postgres", rows)) == ("postgres", rows)


@given(st.lists(st.tuples(st.just("trades"), st.lists(VALUES, max_size=6)), max_size=4))
def test_clickhouse_rows_read_back_exactly(rows: list[tuple[str, list[Any]]]) -> None:
    assert rows_from_json(rows_to_json("clickhouse", rows)) == ("clickhouse", rows)


def test_the_text_is_ascii_json_and_bad_raw_is_refused() -> None:
    raw = rows_to_json("postgres", [("orders", {"symbol": "P\x00Q\ud800", "px": Decimal("1.5"),
                                                "ts": datetime(2026, 1, 5, tzinfo=UTC)})])
    assert raw.isascii() and b'"px":{"decimal":"1.5"}' in raw
    for bad in (b"", b"{}", b'{"store": "mysql", "rows": []}', b"\xff"):
        with pytest.raises(ValueError, match="not the rows of a store letter"):
            rows_from_json(bad)
    with pytest.raises(TypeError, match="naive datetime"):
        rows_to_json("postgres", [("orders", {"ts": datetime(2026, 1, 5)})])  # noqa: DTZ001


class Sent:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def send(self, topic: str, value: bytes, key: Any = None) -> None:
        self.values.append(value)

    def flush(self) -> None:
        return


def test_a_store_letter_never_raises_even_when_its_rows_have_no_json_form() -> None:
    sent = Sent()
    letters = StoreDeadLetters(sent, "t.dlq", lambda letter: repr(letter).encode(),  # type: ignore[arg-type]
                               "postgres", wall_us=lambda: 7)
    letters.refused([("orders", {"x": object()})], "Postgres refused orders: ...")
    letters.refused([("orders", {"x": 1})], "Postgres refused orders: ...")
    letters.unstorable("Postgres: 9e99 does not fit NUMERIC(18, 8)")
    assert len(sent.values) == 3 and letters.sent == 3
    assert b"the rows could not be kept" in sent.values[0]
    assert b"unstorable_value" in sent.values[2]


def _stored(offset: int, letter: DeadLetter, key: str = "k") -> StoredLetter:
    return StoredLetter(0, offset, key, letter)


FRAME = DeadLetter("p.md.trades", 2, 41, "unknown_schema_id", "unknown schema id 77", b"\0x", 9)
ROWS = rows_to_json("postgres", [("orders", {"order_id": "O1"})])
STORE = DeadLetter("postgres", -1, -1, "store_refused", "CheckViolation", ROWS, 10)
EMPTY = DeadLetter("p.md.trades", 2, 42, "too_short", "0 bytes", b"", 11)
UNSTORABLE = DeadLetter("postgres", -1, -1, "unstorable_value", "9e99", b"", 12)


def test_identity_target_and_plan() -> None:
    twice = [_stored(0, FRAME), _stored(5, FRAME), _stored(1, STORE), _stored(6, STORE),
             _stored(2, EMPTY), _stored(3, UNSTORABLE)]
    assert identity(twice[0]) == identity(twice[1]) == "p.md.trades/2/41"
    assert identity(twice[2]).startswith("store_refused:")
    assert identity(twice[2]) == identity(twice[3]) != identity(_stored(1, STORE._replace(
        raw=rows_to_json("postgres", [("orders", {"order_id": "O2"})]))))
    assert [target(s) for s in twice] == ["p.md.trades", "p.md.trades", "postgres",
                                         "postgres", None, None]
    todo, report = plan(Letters(twice, replayed=set()))
    assert [s.offset for s in todo] == [0, 1]  # each identity once
    assert report.already == 2 and dict(report.nothing) == {"too_short": 1,
                                                            "unstorable_value": 1}
    todo, report = plan(Letters(twice, replayed={identity(twice[0])}))
    assert [s.offset for s in todo] == [1] and report.already == 3


@pytest.mark.parametrize(("selection", "offsets"), [
    (Selection(), [0, 1, 2, 3]),
    (Selection(reasons=frozenset({"store_refused"})), [1]),
    (Selection(sources=frozenset({"md.trades"})), [0, 2]),  # without the prefix
    (Selection(sources=frozenset({"p.md.trades", "postgres"})), [0, 1, 2, 3]),
    (Selection(positions=frozenset({(0, 2)})), [2]),
    (Selection(start_us=10, end_us=12), [1, 2]),
])
def test_a_selection_picks_letters(selection: Selection, offsets: list[int]) -> None:
    letters = [_stored(i, letter) for i, letter in enumerate((FRAME, STORE, EMPTY, UNSTORABLE))]
    assert [s.offset for s in letters if selection.matches(s, "p.")] == offsets


def test_a_letter_position_is_partition_colon_offset() -> None:
    assert parse_position("3:1200") == (3, 1200)
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        parse_position("3-1200")


def test_letters_summarise_by_reason_and_source() -> None:
    letters = Letters([_stored(i, letter) for i, letter in
                       enumerate((FRAME, FRAME._replace(offset=43), STORE, EMPTY))],
                      replayed={"p.md.trades/2/41"})
    rows = letters.summary().to_dicts()
    assert rows[0]["reason"] == "unknown_schema_id" and rows[0]["letters"] == 2
    assert (rows[0]["replayed"], rows[0]["replayable"]) == (1, 2)
    assert rows[0]["first"] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=9)
    each = letters.each().to_dicts()
    assert [r["letter"] for r in each] == ["0:0", "0:1", "0:2", "0:3"]
    assert each[2]["origin"] == "" and each[0]["origin"] == "2:41"
