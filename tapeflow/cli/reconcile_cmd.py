"""The `tapeflow reconcile` command (registered on the app when this module is imported)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.text import terminal_lines


@app.command("reconcile")
def reconcile(
    ctx: typer.Context,
    day: Annotated[
        str, typer.Option("--date", help="The UTC date to reconcile, YYYY-MM-DD (as of its end).")
    ],
    alerts: Annotated[
        bool, typer.Option(help="Raise a reconciliation_break alert per break.")
    ] = True,
    statement: Annotated[
        Path | None, typer.Option(
            help="A broker or clearing statement (CSV or Parquet: account_id, symbol, "
                 "quantity, cash, currency) to compare positions and cash with.")
    ] = None,
    oms_orders: Annotated[
        Path | None, typer.Option(
            help="The OMS's final order state (CSV or Parquet: order_id, account_id, cum_qty, "
                 "status) to compare Tapeflow's orders with.")
    ] = None,
) -> None:
    """Rebuild positions and cash from the ClickHouse audit trail and compare them exactly
    with Postgres, and with outside records when given; print and record every break; exit 1
    when there is any.

    Compared as of the end of the date (UTC); positions and accounts with fills after it are
    skipped (Postgres holds only the current state). See docs/reconcile.md.

    Example: tapeflow reconcile --date 2026-01-05 --statement broker-2026-01-05.csv
    """
    from jobs.local.services import resolve
    from jobs.reconcile import run_reconcile

    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"--date takes YYYY-MM-DD, not {day!r}") from None
    # The broker is needed only when there are breaks to alert on: not probed up front.
    settings = resolve(settings_of(ctx), kafka=False)
    report = run_reconcile(settings, when, raise_alerts=alerts, statement_file=statement,
                           oms_orders_file=oms_orders)
    for line in report.lines():
        typer.echo(terminal_lines(line))
    raise typer.Exit(1 if report.breaks else 0)
