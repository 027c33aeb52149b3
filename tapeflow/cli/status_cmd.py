"""The `tapeflow status` command (registered on the app when this module is imported)."""

from __future__ import annotations

from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.text import terminal_lines


@app.command()
def status(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(min=0.5, help="Seconds to wait for each service.")]
    = 5.0,
) -> None:
    """Say whether each service answers, how far behind the flows are, and how fresh the data
    is; exit 1 when a service does not answer.

    Example: tapeflow status
    """
    from jobs.status import run_status

    report = run_status(settings_of(ctx), timeout_s=timeout)
    for line in report.lines():
        typer.echo(terminal_lines(line))
    raise typer.Exit(0 if report.ok else 1)
