"""What the synthetic market writes to Kafka: topics, record kinds, and undecodable values.

A market is one stream of messages over three topics; each stream position holds a trade, a
quote, an execution report, or `Garbage` (bytes a broken producer would write). The kind
codes say which of the market's lists a position points into (`Market.codes`), so they are
part of the Parquet labels too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from tapeflow.core.models import ExecutionReport, Quote, Trade

TOPIC_TRADES = "md.trades"
TOPIC_QUOTES = "md.quotes"
TOPIC_EXECUTIONS = "oms.executions"

HEADER_LEN = 5
"""Confluent frame header: magic byte 0 and a 4-byte schema id."""

# Arrival codes: which list a stream position points into.
CODE_TRADE = 0
CODE_QUOTE = 1
CODE_EXECUTION = 2
CODE_GARBAGE = 3
KIND_NAMES = ("trade", "quote", "execution", "garbage")
TOPICS = (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS)

Record = Trade | Quote | ExecutionReport


class Garbage(NamedTuple):
    """A value on `topic` that must not decode: the pipeline dead-letters it.

    `raw` is the value as produced, except for the `truncated_body` variant, whose bytes depend
    on the schema ids of the codec in use: there `raw` is empty and `frame(encode)` returns the
    encoded `truncated` record with its last `cut` bytes removed (header always kept).
    """

    topic: str
    raw: bytes
    key: str
    variant: str
    """The decode error it must produce (`Reason.BAD_MAGIC`, ...)."""
    truncated: Record | None = None
    cut: int = 0

    def frame(self, encode: Callable[[Record], bytes]) -> bytes:
        """The bytes to produce, given the codec's Confluent-framing encoder."""
        if self.truncated is None:
            return self.raw
        full = encode(self.truncated)
        keep = max(len(full) - self.cut, HEADER_LEN + 1)
        return full[: min(keep, len(full) - 1)]
