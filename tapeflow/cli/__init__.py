"""The `tapeflow` command: the one entry point.

Settings are built here once (flags over `TAPEFLOW_*` variables over defaults) and passed
down. Errors of Tapeflow's family (`tapeflow.errors`: user errors and store errors) and the
environment's (a missing file, a refused permission) end in one line on stderr and exit code
2, not a traceback (`tapeflow.cli.app.TapeflowGroup`); `TAPEFLOW_DEBUG=true` shows the
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

# Each module below registers its commands on `app` when imported.
from tapeflow.cli import (  # noqa: F401
    alerts_cmd,
    backfill_cmd,
    chart_cmd,
    dev_cmd,
    dlq_cmd,
    query_cmd,
    reconcile_cmd,
    run_cmd,
    serve_cmd,
    setup_cmd,
    status_cmd,
)
from tapeflow.cli.app import EXIT_ERROR, EXPECTED, app, debug_enabled, one_line
from tapeflow.cli.logs import configure_logging
from tapeflow.settings import Settings

__all__ = ["app", "main"]


def main() -> None:
    try:
        settings = Settings()
    except EXPECTED as exc:
        if debug_enabled():
            raise
        print(f"tapeflow: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    configure_logging(settings.runtime)
    app(obj=settings)  # standalone: usage errors are printed and exit 2 by click itself
