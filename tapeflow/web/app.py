"""The live view's web application: pages, a small JSON API, and one server-sent-event stream.

Pages are static HTML with a little JavaScript (no build step): they read their first state
from `/api/...` and then follow `/events`, which the server pushes. Every answer passes the
viewer's access rule first (`tapeflow.web.access`): an account a viewer may not read is not in
a list, its page is 404 and its events never reach that viewer's stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jobs.query_params import QueryInputError
from jobs.status import run_status
from tapeflow.errors import UserError
from tapeflow.settings import Settings
from tapeflow.web.access import Viewer, Viewers
from tapeflow.web.live import Hub
from tapeflow.web.reads import StoreReads

STATIC = Path(__file__).resolve().parent / "static"
KEEPALIVE_S = 15.0
PAGES = {"accounts": "accounts.html", "account": "account.html", "alerts": "alerts.html",
         "symbols": "symbols.html", "symbol": "symbol.html", "health": "health.html"}


def _viewer(request: Request) -> Viewer | None:
    viewers: Viewers = request.app.state.viewers
    return viewers.authenticate(request.headers.get("authorization"))


def _unauthorised() -> Response:
    return Response("authentication required", status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="tapeflow"'})


def guarded(handler: Callable[[Request, Viewer], Any]) -> Callable[[Request], Any]:
    """Authenticate first; user errors become 400 with their one line."""
    async def endpoint(request: Request) -> Response:
        viewer = await run_in_threadpool(_viewer, request)
        if viewer is None:
            return _unauthorised()
        try:
            result: Response = await handler(request, viewer)
        except (QueryInputError, UserError) as exc:
            return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)
        return result
    return endpoint


def page(name: str) -> Callable[[Request], Any]:
    async def serve(request: Request, viewer: Viewer) -> Response:
        account = request.path_params.get("account")
        if account is not None and not viewer.may_see(account):
            return Response("not found", status_code=404)
        return FileResponse(STATIC / PAGES[name], headers={"Cache-Control": "no-store"})
    return guarded(serve)


async def api_accounts(request: Request, viewer: Viewer) -> Response:
    reads: StoreReads = request.app.state.reads
    return JSONResponse(await run_in_threadpool(reads.accounts, viewer.accounts))


async def api_positions(request: Request, viewer: Viewer) -> Response:
    account = request.path_params["account"]
    if not viewer.may_see(account):
        return JSONResponse({"error": "no such account"}, status_code=404)
    reads: StoreReads = request.app.state.reads
    return JSONResponse(await run_in_threadpool(reads.positions, account, viewer.accounts))


async def api_alerts(request: Request, viewer: Viewer) -> Response:
    reads: StoreReads = request.app.state.reads
    return JSONResponse(await run_in_threadpool(reads.alerts, viewer.accounts))


async def api_symbols(request: Request, viewer: Viewer) -> Response:
    reads: StoreReads = request.app.state.reads
    return JSONResponse(await run_in_threadpool(reads.symbols))


async def api_symbol(request: Request, viewer: Viewer) -> Response:
    reads: StoreReads = request.app.state.reads
    symbol = request.path_params["symbol"]
    summary = await run_in_threadpool(reads.symbol_summary, symbol)
    summary["candles"] = await run_in_threadpool(
        reads.candles, symbol, request.query_params.get("interval", "1m"),
        request.query_params.get("start"), request.query_params.get("end"))
    return JSONResponse(summary)


async def api_health(request: Request, viewer: Viewer) -> Response:
    settings: Settings = request.app.state.settings
    report = await run_in_threadpool(run_status, settings, 2.0)
    return JSONResponse({
        "ok": report.ok,
        "services": [{"name": s.name, "address": s.address, "ok": s.ok, "detail": s.detail}
                     for s in report.services],
        "lags": [{"group": lag.group, "topic": lag.topic, "lag": lag.lag,
                  "partitions": lag.partitions} for lag in report.lags],
        "latest": {k: (v.isoformat() if v is not None else None)
                   for k, v in report.latest.items()},
    })


async def events(request: Request, viewer: Viewer) -> Response:
    """Server-sent events for this viewer: `kind` (account, position, alert, candle) and
    optionally `symbol` and `account` narrow the stream."""
    hub: Hub = request.app.state.hub
    kinds = set(filter(None, request.query_params.get("kinds", "").split(",")))
    symbol = request.query_params.get("symbol")
    account = request.query_params.get("account")

    def accept(event: dict[str, Any]) -> bool:
        return (viewer.accepts(event) and (not kinds or event["kind"] in kinds)
                and (symbol is None or event.get("symbol") == symbol)
                and (account is None or event.get("account_id") == account))

    key, queue = hub.subscribe(accept)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {event['kind']}\ndata: {json.dumps(event)}\n\n".encode()
        finally:
            hub.unsubscribe(key)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def root(request: Request) -> Response:
    return RedirectResponse("/accounts")


def create_app(settings: Settings, hub: Hub, reads: StoreReads, viewers: Viewers) -> Starlette:
    app = Starlette(routes=[
        Route("/", root),
        Route("/accounts", page("accounts")),
        Route("/accounts/{account}", page("account")),
        Route("/alerts", page("alerts")),
        Route("/symbols", page("symbols")),
        Route("/symbols/{symbol}", page("symbol")),
        Route("/health", page("health")),
        Route("/api/accounts", guarded(api_accounts)),
        Route("/api/accounts/{account}/positions", guarded(api_positions)),
        Route("/api/alerts", guarded(api_alerts)),
        Route("/api/symbols", guarded(api_symbols)),
        Route("/api/symbols/{symbol}", guarded(api_symbol)),
        Route("/api/health", guarded(api_health)),
        Route("/events", guarded(events)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
    app.state.settings = settings
    app.state.hub = hub
    app.state.reads = reads
    app.state.viewers = viewers
    return app
