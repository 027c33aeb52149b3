"""The `tapeflow alerts` command (registered on the app when this module is imported)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.cli.options import Follow, Symbols
from tapeflow.text import terminal_safe


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    account: Annotated[
        list[str] | None, typer.Option(help="Only this account's alerts (repeatable).")
    ] = None,
    symbol: Symbols = None,
    rule: Annotated[
        list[str] | None, typer.Option(help="Only this rule, e.g. position_limit (repeatable).")
    ] = None,
    desk: Annotated[
        list[str] | None,
        typer.Option(help="Read this desk's alert topic instead of risk.alerts (repeatable): "
                     "what a desk's principal may read (TAPEFLOW_ACCESS_DESKS)."),
    ] = None,
    severity: Annotated[
        str, typer.Option(help="Minimum severity: info < warning < critical.")
    ] = "info",
    follow: Follow = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest alert the topic holds.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(help="Start at alerts published at/after this time: ISO-8601 (UTC if no "
                     "zone) or a duration back from now, e.g. 15m, 2h, 1d."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Consumer group of this subscriber; a restart with the same group "
                     "resumes after the last alert printed (default: named after the user "
                     "and the filters)."),
    ] = None,
) -> None:
    """Print risk alerts from the alert topic (or a desk's) as JSON lines, filtered;
    resumable.

    Without --follow, stops at the end of what the topic holds now. A new subscriber starts
    at the end unless given --from-beginning or --start; a known one (same --group, or the
    same user, filters and desks) resumes after the last line it printed. Delivery is
    at-least-once: see docs/alerts.md. The broker decides which topics and groups this
    subscriber's principal may read (docs/security.md); its groups are named after it.
    TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS further limits what is printed, whatever the flags.

    Example: tapeflow alerts --desk desk-a --severity warning --follow
    """
    from jobs.alerts import AlertFilter, StartAt, alert_json, parse_since, refused_accounts
    from jobs.alerts import subscribe as subscribe_alerts

    if from_beginning and start is not None:
        raise typer.BadParameter("--from-beginning and --start exclude each other")
    try:
        wanted = AlertFilter.of(accounts=account or (), symbols=symbol or (), rules=rule or (),
                                min_severity=severity)
    except ValueError:
        raise typer.BadParameter(
            f"--severity takes info, warning or critical, not {severity!r}") from None
    position = StartAt("beginning") if from_beginning else StartAt()
    if start is not None:
        try:
            when = parse_since(start, datetime.now(UTC))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        position = StartAt("time", ts_ms=int(when.timestamp() * 1000))
    from jobs.local.services import ensure_kafka

    settings = ensure_kafka(settings_of(ctx), start=False)
    refused = refused_accounts(wanted, settings.access.alerts_allowed_accounts)
    if refused:
        raise typer.BadParameter(
            f"--account {', '.join(sorted(refused))}: not among the accounts this subscriber "
            "may read (TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS)")
    out = sys.stdout
    shown = terminal_safe if out.isatty() else str  # JSON for programs; no escapes obeyed
    try:
        subscription = subscribe_alerts(settings, wanted, desks=desk or (), group=group,
                                        start=position, follow=follow,
                                        warn=lambda line: typer.echo(line, err=True))
    except ValueError as exc:
        raise typer.BadParameter(f"--desk: {exc}") from None
    printed = True
    try:
        for alert in subscription:
            printed = False
            out.write(shown(alert_json(alert)) + "\n")
            out.flush()  # written before the next iteration commits its position
            printed = True
    except KeyboardInterrupt:
        pass  # Ctrl-C: every line fully printed is committed on the way out
    finally:
        subscription.close(commit_last=printed)
