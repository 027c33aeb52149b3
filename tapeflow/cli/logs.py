"""Log set-up of the `tapeflow` command: text lines, or one JSON object per line.

From the runtime settings (`TAPEFLOW_LOG_LEVEL`, default WARNING; `TAPEFLOW_LOG_FORMAT`, text
or json). JSON lines carry ts (UTC, ISO-8601), level, logger, message, and the exception when
there is one, for log shippers that index fields (JSON escapes control characters itself; text
lines escape them: docs/query.md, "Output is data").
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from tapeflow.settings import RuntimeSettings
from tapeflow.text import terminal_lines

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """Text lines whose data is shown, never obeyed: a log line quotes symbols, accounts and
    records, which may hold terminal control characters (`tapeflow.text`). A traceback keeps
    its line breaks."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_lines(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(runtime: RuntimeSettings) -> str:
    """Configure the root logger; returns the level name."""
    handler = logging.StreamHandler()
    if runtime.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=runtime.log_level, handlers=[handler])
    if runtime.log_level == "WARNING":
        # librdkafka reports transient broker states (a coordinator still loading) as warnings
        # and retries them itself; errors still show.
        logging.getLogger("tapeflow.kafka").setLevel(logging.ERROR)
    return runtime.log_level
