"""The `tapeflow` command: the one entry point, and the only core module that may import I/O.

Settings are built here once (flags over `TAPEFLOW_*` variables over defaults) and passed down.
Errors a user can cause end in one line on stderr and a non-zero exit, not a traceback
(`TAPEFLOW_DEBUG=1` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import sys

# Each module below registers its commands on `app` when imported.
from tapeflow.cli import (  # noqa: F401
    alerts_cmd,
    backfill_cmd,
    chart_cmd,
    query_cmd,
    reconcile_cmd,
    status_cmd,
)
from tapeflow.cli.app import app
from tapeflow.cli.logs import configure_logging

__all__ = ["app", "main"]


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the user or the environment", not "a bug"."""
    from confluent_kafka import KafkaException
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from jobs.local.kafka_broker import LocalServiceError
    from jobs.migrate import MigrationError
    from schemas.catalogue import UnknownSchemaError
    from schemas.compat import IncompatibleSchemaError
    from sinks.kafka.producer import DeliveryError
    from tapeflow.core.fixedpoint import FixedPointError
    from tapeflow.errors import StoreUnavailableError

    return (LocalServiceError, MigrationError, StoreUnavailableError, DeliveryError,
            UnknownSchemaError, IncompatibleSchemaError, FixedPointError, ValidationError,
            SettingsError, KafkaException, FileNotFoundError, PermissionError, TimeoutError)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__name__ == "ValidationError":
        errors: list[dict[str, object]] = list(getattr(exc, "errors", list)())
        if errors:
            first = errors[0]
            loc = first.get("loc", ())
            where = ".".join(str(p) for p in loc) if isinstance(loc, tuple) else str(loc)
            return f"invalid setting {where}: {first.get('msg', text)}"
    return text.splitlines()[0] if "\n" in text and len(text) > 400 else text


def main() -> None:
    level = configure_logging()
    if level == "WARNING":
        # librdkafka reports transient broker states (a coordinator still loading) as warnings
        # and retries them itself; errors still show.
        logging.getLogger("tapeflow.kafka").setLevel(logging.ERROR)
    try:
        app()  # standalone: usage errors are printed and exit 2 by typer itself
    except Exception as exc:
        if os.environ.get("TAPEFLOW_DEBUG") or not isinstance(exc, _user_errors()):
            raise
        print(f"tapeflow: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
