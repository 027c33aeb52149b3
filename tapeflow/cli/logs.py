"""Log set-up of the `tapeflow` command: text lines, or one JSON object per line.

`TAPEFLOW_LOG_LEVEL` (default WARNING) and `TAPEFLOW_LOG_FORMAT` (`text` or `json`) are read
here, before any command runs, so the settings object's own validation is logged the same
way. JSON lines carry ts (UTC, ISO-8601), level, logger, message, and the exception when
there is one, for log shippers that index fields.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def configure_logging() -> str:
    """Configure the root logger from the environment; returns the level name."""
    level = os.environ.get("TAPEFLOW_LOG_LEVEL", "WARNING").upper()
    handler = logging.StreamHandler()
    if os.environ.get("TAPEFLOW_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    return level
