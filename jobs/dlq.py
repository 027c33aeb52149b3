"""Dead letters: what the dead-letter topic holds, by reason, and re-injecting the ones whose cause
is fixed (`tapeflow dlq list|replay`; docs/bad-input.md, "Dead letters: list and replay").

Where a letter goes back to depends on what it is:
- a record that did not decode, or that the core could not process (`unknown_schema_id`,
  `nul_byte`, `process_error`, ...): its raw bytes to the topic it came from, under its original
  key and Kafka timestamp, so the flow reads it as it read it the first time (the stream's
  receive time is the Kafka timestamp). The flow then judges it again: a record the cause no
  longer affects goes through, one it still affects is a new dead letter;
- rows a store refused (`store_refused`): to that store, through the sinks' own writers and
  idempotent statements (version-guarded upserts, first-wins inserts, ReplacingMergeTree keys);
  rows refused again stay dead letters and are reported, not recorded as replayed;
- `unstorable_value` letters and letters without raw bytes hold nothing to re-inject.

Replaying is idempotent, like every sink: each letter has an identity (`identity`), and a
replay records the identities it re-injected in Postgres (`dlq_replays`, first wins) after the
re-injected records are acknowledged; a later replay skips them, and the same letter written
twice to the topic (at least once) is re-injected once. A replay killed between sending and
recording may send a letter again on the next run, which the flows absorb like any redelivery
(an exec_id applied once; a trade seen twice is a `duplicate_seq` rejection).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from schemas.catalogue import TOPIC_DLQ
from schemas.codec import Codec, codec_for
from sinks.dead_letters import STORE_REFUSED, STORES, rows_from_json
from sources.kafka.dlq_reader import DeadLetters, StoredLetter, read_dead_letters
from tapeflow.errors import UserError
from tapeflow.services.postgres import connect_postgres
from tapeflow.services.postgres_sql import statement
from tapeflow.settings import Settings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DlqError(UserError, ValueError):
    """A selection or a store state the command cannot work with; one line."""


def identity(stored: StoredLetter) -> str:
    """What makes two letters the same letter: the origin of a record that did not decode
    (topic/partition/offset), else a digest of what the letter holds (a store's refusal has
    no origin offset: a row is not one input message)."""
    letter = stored.letter
    if letter.reason != STORE_REFUSED and letter.topic and letter.offset >= 0:
        return f"{letter.topic}/{letter.partition}/{letter.offset}"
    digest = hashlib.sha256()
    for part in (letter.topic, letter.reason, letter.detail):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(letter.raw)
    return f"{letter.reason}:{digest.hexdigest()[:32]}"


def target(stored: StoredLetter) -> str | None:
    """Where a replay sends the letter: a store, a topic, or None (nothing to re-inject)."""
    letter = stored.letter
    if letter.reason == STORE_REFUSED:
        return letter.topic if letter.topic in STORES and letter.raw else None
    if letter.topic and letter.topic not in STORES and letter.raw:
        return letter.topic
    return None


def parse_position(text: str) -> tuple[int, int]:
    """"PARTITION:OFFSET" (as `dlq list --letters` shows a letter's place) -> (p, o)."""
    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise DlqError(f"--letter takes PARTITION:OFFSET as `tapeflow dlq list --letters` "
                       f"shows it, not {text!r}")
    return int(partition), int(offset)


@dataclass(frozen=True)
class Selection:
    """Which letters a command works on; empty fields select everything."""

    reasons: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    """Topics (with or without the deployment's prefix) or stores the letters came from."""
    positions: frozenset[tuple[int, int]] = frozenset()
    """(partition, offset) of letters on the dead-letter topic."""
    start_us: int | None = None
    end_us: int | None = None
    """The letters' time (`ts`): [start, end)."""

    @property
    def everything(self) -> bool:
        return not (self.reasons or self.sources or self.positions
                    or self.start_us is not None or self.end_us is not None)

    def matches(self, stored: StoredLetter, prefix: str = "") -> bool:
        letter = stored.letter
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.sources and not (letter.topic in self.sources
                                 or letter.topic.removeprefix(prefix) in self.sources):
            return False
        if self.positions and (stored.partition, stored.offset) not in self.positions:
            return False
        if self.start_us is not None and letter.ts < self.start_us:
            return False
        return self.end_us is None or letter.ts < self.end_us


@dataclass
class Letters:
    """The letters a command selected, with what the ledger says about them."""

    selected: list[StoredLetter]
    replayed: set[str]
    undecodable: int = 0

    def summary(self) -> pl.DataFrame:
        """One row per (reason, source): how many letters, how many replayed, first and last."""
        groups: dict[tuple[str, str], list[StoredLetter]] = {}
        for stored in self.selected:
            groups.setdefault((stored.letter.reason, stored.letter.topic), []).append(stored)
        rows = [{"reason": reason, "source": source, "letters": len(items),
                 "replayed": sum(identity(s) in self.replayed for s in items),
                 "replayable": sum(target(s) is not None for s in items),
                 "first": _time(min(s.letter.ts for s in items)),
                 "last": _time(max(s.letter.ts for s in items))}
                for (reason, source), items in groups.items()]
        rows.sort(key=lambda r: (-int(r["letters"]), str(r["reason"]), str(r["source"])))
        return pl.DataFrame(rows, schema=_SUMMARY_SCHEMA)

    def each(self) -> pl.DataFrame:
        """One row per letter, in topic order."""
        rows = [{"letter": f"{s.partition}:{s.offset}", "time": _time(s.letter.ts),
                 "reason": s.letter.reason, "source": s.letter.topic,
                 "origin": (f"{s.letter.partition}:{s.letter.offset}"
                            if s.letter.offset >= 0 else ""),
                 "key": s.key, "replayed": identity(s) in self.replayed,
                 "bytes": len(s.letter.raw), "detail": s.letter.detail}
                for s in self.selected]
        return pl.DataFrame(rows, schema=_EACH_SCHEMA)


_SUMMARY_SCHEMA = {"reason": pl.String, "source": pl.String, "letters": pl.Int64,
                   "replayed": pl.Int64, "replayable": pl.Int64,
                   "first": pl.Datetime("us", "UTC"), "last": pl.Datetime("us", "UTC")}
_EACH_SCHEMA = {"letter": pl.String, "time": pl.Datetime("us", "UTC"), "reason": pl.String,
                "source": pl.String, "origin": pl.String, "key": pl.String,
                "replayed": pl.Boolean, "bytes": pl.Int64, "detail": pl.String}


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def read_letters(settings: Settings, selection: Selection, codec: Codec | None = None
                 ) -> Letters:
    """The selected letters of this deployment's dead-letter topic, and the ledger."""
    codec = codec or codec_for(settings)
    found: DeadLetters = read_dead_letters(
        settings.kafka_config(), settings.topic(TOPIC_DLQ),
        lambda raw: codec.decode(raw, expect="DeadLetter"))
    prefix = settings.kafka.topic_prefix
    selected = [s for s in found.letters if selection.matches(s, prefix)]
    return Letters(selected, replayed_ids(settings), found.undecodable)


def _dsn(settings: Settings) -> str:
    if settings.postgres.dsn is None:
        raise DlqError("no Postgres DSN: set TAPEFLOW_POSTGRES_DSN (the command line starts "
                       "the embedded Postgres when it is unset)")
    return settings.postgres.dsn.get_secret_value()


def replayed_ids(settings: Settings) -> set[str]:
    """The identities of the letters replayed so far (the `dlq_replays` ledger)."""
    try:
        with connect_postgres(_dsn(settings), settings.postgres.schema) as conn:
            return {row[0] for row in conn.execute(statement("select_dlq_replays"))}
    except psycopg.errors.UndefinedTable:
        raise DlqError("Postgres has no dlq_replays table yet: run `tapeflow init` (it "
                       "applies the migration that adds it)") from None


def record_replayed(settings: Settings, done: Iterable[StoredLetter]) -> None:
    """Add letters to the ledger (first wins: a letter recorded before keeps its row)."""
    rows = [{"letter_id": identity(s), "reason": s.letter.reason, "source": s.letter.topic,
             "target": target(s) or "", "dlq_partition": s.partition, "dlq_offset": s.offset}
            for s in done]
    if not rows:
        return
    with connect_postgres(_dsn(settings), settings.postgres.schema) as conn, \
            conn.transaction(), conn.cursor() as cur:
        cur.executemany(statement("insert_dlq_replay"), rows)


@dataclass
class ReplayReport:
    """What a replay did, by target."""

    sent: Counter[str] = field(default_factory=Counter)
    """Letters re-injected, by target (a topic or a store)."""
    already: int = 0
    """Selected letters replayed before (or twice on the topic): skipped."""
    refused: list[tuple[StoredLetter, str]] = field(default_factory=list)
    """Store letters the store refused again, with its reason."""
    nothing: Counter[str] = field(default_factory=Counter)
    """Letters with nothing to re-inject, by reason."""
    dry_run: bool = False

    def lines(self) -> list[str]:
        verb = "would re-inject" if self.dry_run else "re-injected"
        out = [f"{verb} {n} letter(s) into {where}" for where, n in sorted(self.sent.items())]
        if not self.sent:
            out.append(f"{verb} nothing")
        if self.already:
            out.append(f"skipped {self.already} letter(s) replayed before")
        out += [f"not replayable: {n} {reason} letter(s) hold nothing to re-inject"
                for reason, n in sorted(self.nothing.items())]
        out += [f"refused again by {s.letter.topic}: letter {s.partition}:{s.offset}: {why}"
                for s, why in self.refused]
        return out


def plan(letters: Letters) -> tuple[list[StoredLetter], ReplayReport]:
    """The letters a replay sends (each identity once, none replayed before) and the report
    of what it skips."""
    report = ReplayReport()
    todo: dict[str, StoredLetter] = {}
    for stored in letters.selected:
        ident = identity(stored)
        if target(stored) is None:
            report.nothing[stored.letter.reason] += 1
        elif ident in letters.replayed or ident in todo:
            report.already += 1
        else:
            todo[ident] = stored
    return list(todo.values()), report


def rows_of(stored: StoredLetter) -> list[tuple[str, Any]]:
    """The refused rows a store letter holds, as (table, row) pairs."""
    return rows_from_json(stored.letter.raw)[1]
