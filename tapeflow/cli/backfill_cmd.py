"""The `tapeflow backfill` command (registered on the app when this module is imported)."""

from __future__ import annotations

from tapeflow.cli.app import app  # noqa: F401 - commands below register on it
