"""The `tapeflow` command's application object and its global options.

Each command lives in a module of its own (`tapeflow/cli/*_cmd.py`) and is thin: parse, take
the settings, call a job or the runtime, print. Commands import their jobs lazily so that
`tapeflow --help` and shell completion stay fast.

Conventions every command follows: one spelling per idea (`tapeflow.cli.options`); errors a
user can cause end in one line, `tapeflow: error: ...`, and exit code 2 (the same as a usage
error); exit code 1 is kept for "the command worked and found a problem" (reconcile found
breaks, status found a service down).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaException
from pydantic import ValidationError
from pydantic_settings import SettingsError
from typer.core import TyperGroup

from tapeflow import __version__
from tapeflow.errors import StoreError, UserError
from tapeflow.settings import Settings
from tapeflow.text import terminal_safe

EXIT_ERROR = 2
"""Exit code of an error: a usage error (click's own), a user error, a store error."""

EXPECTED = (UserError, StoreError, OSError, KafkaException, ValidationError, SettingsError)
"""Errors that mean "the user or the environment", not "a bug": Tapeflow's user and store
errors, and the environment's (a missing file, a refused permission, a broker that refused,
a setting's value refused)."""


def one_line(exc: BaseException) -> str:
    """The message of an error, as one line for the terminal."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            group = exc.title.removesuffix("Settings").lower()
            name = f"{group}_{where}" if group and group != "runtime" else where
            name = name.rstrip("_") or group  # a check across the group's knobs has no loc
            return f"invalid setting {name}: {first.get('msg', '')}"
    text = str(exc).strip() or type(exc).__name__
    # A message may quote data (a symbol, a file's value): shown, never obeyed.
    return terminal_safe(text.splitlines()[0])


def debug_enabled(ctx: typer.Context | None = None) -> bool:
    """TAPEFLOW_DEBUG: show tracebacks (read before the settings exist: their own errors)."""
    settings = getattr(ctx, "obj", None)
    if isinstance(settings, Settings):
        return settings.runtime.debug
    return os.environ.get("TAPEFLOW_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


class TapeflowGroup(TyperGroup):
    """The command group: an expected error of any command becomes one line and exit 2."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except EXPECTED as exc:
            if debug_enabled(ctx):
                raise
            typer.echo(f"tapeflow: error: {one_line(exc)}", err=True)
            sys.exit(EXIT_ERROR)


app = typer.Typer(
    cls=TapeflowGroup,
    name="tapeflow",
    help="Streaming pipeline for trading platforms: clean ticks, exact candles, positions, "
    "P&L and risk alerts.\n\nSettings come from flags, then TAPEFLOW_* variables (the "
    "README lists them all), then defaults that run everything locally.\n\n"
    "Example: tapeflow demo",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is plain: "[...]" must not be read as markup
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tapeflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Local state directory (TAPEFLOW_HOME).")
    ] = None,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (TAPEFLOW_KAFKA_BOOTSTRAP).")
    ] = None,
    topic_prefix: Annotated[
        str | None,
        typer.Option(help="Prefix for every topic name (TAPEFLOW_KAFKA_TOPIC_PREFIX)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """Store addresses are not flags: a DSN holds a password, and flags land in the process
    table. Set TAPEFLOW_CLICKHOUSE_DSN / TAPEFLOW_POSTGRES_DSN, or their *_FILE twins."""
    from jobs.local.kafka_credentials import with_local_credentials

    settings: Settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    # The local broker's generated credentials, when this home has them and nothing else
    # is configured (jobs/local/kafka_credentials.py).
    ctx.obj = with_local_credentials(settings.with_overrides(
        home=home, kafka_bootstrap=kafka_bootstrap, kafka_topic_prefix=topic_prefix))


def settings_of(ctx: typer.Context, **overrides: Any) -> Settings:
    """The command's settings: the global ones with this command's flags applied."""
    settings: Settings = ctx.obj
    return settings.with_overrides(**overrides)
