"""A batch of frames of one topic decoded at once: blocks where possible, one by one where not.

`decode_batch(codec, frames, expect)` gives the same records and the same `DecodeError`s, frame
for frame, as calling `codec.decode(frame, expect)` on each (tests/unit/test_batch_decode.py
checks it on mutated frames), only faster:

- frames are grouped by the schema id in their header; a group whose writer schema is laid
  out as this version's (`Codec.writer_of`) and that holds at least `min_block` frames is
  read as one Avro block by polars (`schemas.batch_reader.read_block`, with the checks that
  make it exact);
- everything else is decoded one by one by the codec: frames without a valid header, unknown
  or foreign schema ids, small groups (a block costs about 1.4 ms however few frames it holds,
  measured: more than decoding 100 frames one by one), other writer versions (schema
  resolution: evolution keeps working, several writer ids in one batch included), and every
  frame of a block that fails or does not pass the checks, so each bad frame becomes its own
  dead letter with its own reason. A failed block is split in halves, each read as a block
  again while it holds `min_block` frames or more, so one bad frame among thousands does not
  send them all down the slow path.

Records come back as columns (one list per field) in core units, in input order, with the
input position of each: integer microseconds for timestamps, integer scale-8 units for
decimals. Only records whose fields are all of the kinds the block reader measures can be read
in blocks (Trade, Quote); others are always decoded one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

import polars as pl

from schemas.batch_reader import read_block
from schemas.catalogue import current_schema
from schemas.codec import HEADER_LEN, MAGIC, Codec, DecodeError

MIN_BLOCK = 128
"""Fewest frames worth a block (bench/decode_batch.py: the crossover is about 100)."""


class DecodedBatch(NamedTuple):
    rows: list[int]
    """The input position of each decoded record, ascending."""
    columns: dict[str, list[Any]]
    """Each field of the decoded records in core units (`columns_schema`), aligned with
    `rows`; arrays of strings as sequences."""
    failures: list[tuple[int, DecodeError]]
    """(input position, why) of every frame that did not decode, in input order."""

    def __len__(self) -> int:
        return len(self.rows)


def _dtype(avro_type: Any) -> pl.DataType:
    if isinstance(avro_type, list):
        return _dtype(next(t for t in avro_type if t != "null"))
    if avro_type == "string":
        return pl.String()
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return pl.List(_dtype(avro_type["items"]))
    if isinstance(avro_type, dict) and avro_type.get("type") == "string":
        return pl.String()
    return pl.Int64()  # long, int, timestamp-micros (µs), decimal (scale-8 units)


def columns_schema(record: str) -> dict[str, pl.DataType]:
    """The columns of a decoded batch of `record`: its fields in core units (as polars types:
    Int64 microseconds and scale-8 units, String, List(String))."""
    return {f["name"]: _dtype(f["type"]) for f in current_schema(record)["fields"]}


@cache
def _reader_schema(record: str) -> tuple[dict[str, Any], list[str]]:
    """This version's schema of `record` and its field names (read from disk once)."""
    schema = current_schema(record)
    return schema, [f["name"] for f in schema["fields"]]


def decode_batch(codec: Codec, frames: Sequence[bytes | None], expect: str, *,
                 min_block: int = MIN_BLOCK) -> DecodedBatch:
    """Decode `frames` (Confluent-framed Avro values of a topic carrying `expect` records)."""
    schema, names = _reader_schema(expect)
    groups, single = _by_schema_id(frames)
    blocks = _Blocks(schema, names, frames, min_block)
    for schema_id, rows in groups.items():
        if len(rows) >= min_block and _laid_out_as(codec, schema_id, expect):
            blocks.read(rows)
        else:
            single.extend(rows)
    parts = blocks.parts
    single.extend(blocks.single)
    failures: list[tuple[int, DecodeError]] = []
    if single:
        single.sort()
        done: list[int] = []
        records: list[Any] = []
        for i in single:
            try:
                records.append(codec.decode(frames[i], expect=expect))  # type: ignore[arg-type]
                done.append(i)
            except DecodeError as exc:
                failures.append((i, exc))
        if records:
            parts.append((done, [list(col) for col in zip(*records, strict=True)]))
    return DecodedBatch(*_merged(parts, names), failures)


class _Blocks:
    """Reads groups of frames as blocks, collecting the decoded parts and the frames left to
    be decoded one by one."""

    def __init__(self, schema: dict[str, Any], names: list[str],
                 frames: Sequence[bytes | None], min_block: int) -> None:
        self.schema = schema
        self.names = names
        self.frames = frames
        self.min_block = min_block
        self.parts: list[tuple[list[int], list[list[Any]]]] = []
        self.single: list[int] = []

    def read(self, rows: list[int]) -> None:
        """Read `rows` as one block; when the block fails, each half as a block while halves
        hold `min_block` frames or more (a bad frame among thousands then costs a few blocks
        and at most about `min_block` frames decoded one by one, not the whole batch); the
        rest one by one."""
        frames = self.frames
        block = read_block(self.schema, [frames[i][HEADER_LEN:] for i in rows])  # type: ignore[index]
        if block is not None:
            read, left_out = block
            if left_out:
                self.single.extend(rows[i] for i in left_out)
                out = set(left_out)
                rows = [r for i, r in enumerate(rows) if i not in out]
            self.parts.append((rows, [read[name].to_list() for name in self.names]))
        elif len(rows) >= 2 * self.min_block:
            half = len(rows) // 2
            self.read(rows[:half])
            self.read(rows[half:])
        else:
            self.single.extend(rows)


def _by_schema_id(frames: Sequence[bytes | None]) -> tuple[dict[int, list[int]], list[int]]:
    """The positions of the frames of each schema id, and of the frames without a valid
    header. (The common case, one id for the whole batch, costs one slice per frame.)"""
    heads = [b"" if f is None else f[:HEADER_LEN] for f in frames]
    first = heads[0] if heads else b""
    if len(first) == HEADER_LEN and first[0] == MAGIC and heads.count(first) == len(heads):
        return {int.from_bytes(first[1:], "big"): list(range(len(heads)))}, []
    groups: dict[int, list[int]] = {}
    single: list[int] = []
    for i, head in enumerate(heads):
        if len(head) < HEADER_LEN or head[0] != MAGIC:
            single.append(i)
        else:
            groups.setdefault(int.from_bytes(head[1:], "big"), []).append(i)
    return groups, single


def _merged(parts: list[tuple[list[int], list[list[Any]]]], names: list[str]
            ) -> tuple[list[int], dict[str, list[Any]]]:
    """The parts' rows and columns as one, in input order."""
    if not parts:
        return [], {name: [] for name in names}
    if len(parts) == 1:
        rows, cols = parts[0]
        return rows, dict(zip(names, cols, strict=True))
    rows = [r for part_rows, _ in parts for r in part_rows]
    cols = [[v for _, part_cols in parts for v in part_cols[j]] for j in range(len(names))]
    order = sorted(range(len(rows)), key=rows.__getitem__)
    return ([rows[i] for i in order],
            {name: [col[i] for i in order] for name, col in zip(names, cols, strict=True)})


def _laid_out_as(codec: Codec, schema_id: int, expect: str) -> bool:
    """Whether frames of `schema_id` are `expect` records laid out as this version's schema
    (anything else, unknown ids included, is left to the one-by-one path and its reasons)."""
    try:
        name, current = codec.writer_of(schema_id)
    except DecodeError:
        return False
    return name == expect and current
