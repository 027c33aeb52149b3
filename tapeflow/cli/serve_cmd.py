"""`tapeflow serve`: the live view for the desk (docs/live-view.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (TAPEFLOW_WEB_HOST, default "
                                 "127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (TAPEFLOW_WEB_PORT, default 8080).")
    ] = None,
    hash_password: Annotated[
        bool, typer.Option("--hash-password", help="Read a password on stdin, print its hash "
                           "for the viewers file, and exit.")
    ] = False,
) -> None:
    """Serve the live view: accounts and positions, alerts, candles and health, pushed to the
    browser as they change.

    With ClickHouse embedded (chdb://), a running flow holds the store: serve from that
    process instead, `tapeflow run all --serve` (or `tapeflow demo --serve`).

    Example: tapeflow serve --port 8080
    """
    if hash_password:
        import sys

        from tapeflow.web.access import hash_password as hashed

        typer.echo(hashed(sys.stdin.readline().rstrip("\n")))
        return
    from jobs.local.services import ensure_postgres
    from tapeflow.web.server import LiveView

    settings = ensure_postgres(settings_of(ctx, web_host=host, web_port=port))
    view = LiveView(settings)
    typer.echo(f"live view on {view.url} (Ctrl-C stops)")
    view.serve_forever()
