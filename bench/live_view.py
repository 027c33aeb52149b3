"""How long a new execution takes to change the account's P&L on an open live-view page.

Runs `tapeflow run all --serve` as a subprocess against the local services (as
bench/trading_flow.py does), opens the accounts page in the system's headless Chromium, then
produces `--round-trips` buy-then-sell round trips for one account, one at a time: each sell
changes the account's realised P&L by a known amount. For each, three times on one clock
(the machine's wall clock; the page's `Date.now()` reads the same one):

- produced: after the producer's flush returned;
- stored (the baseline): when the accounts row in Postgres shows the new P&L, polled every
  5 ms by this script, i.e. what the trading flow alone costs;
- on the page: when the page's cell showed it (a MutationObserver's `Date.now()`).

Prints p50/p95/max of both, and the live view's own share (page minus stored). The issue's
target: on the page within 1 s.

    uv run python bench/live_view.py --round-trips 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Error as PlaywrightError

from bench.bench_kafka import bench_broker
from bench.trading_common import REPO, bench_settings, flow_env, postgres_dsn, prepare
from jobs.local.ports import free_port
from schemas.catalogue import TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import Side
from tapeflow.services.postgres import connect_postgres
from tests.support.browser import chromium
from tests.support.trading_builders import OrderSim

WATCH = """([sel]) => { window.changes = [];
  const seen = (el) => window.changes.push([el.textContent, Date.now()]);
  new MutationObserver(() => { const el = document.querySelector(sel); if (el) seen(el); })
    .observe(document.querySelector('#accounts tbody'),
             { childList: true, subtree: true, characterData: true }); }"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Deployment:
    """`tapeflow run all --serve` on the local services, one account's executions in."""

    def __init__(self, tmp: Path, bootstrap: str) -> None:
        self.account = f"LVB{uuid.uuid4().hex[:6].upper()}"
        dsn = postgres_dsn()
        settings = bench_settings(bootstrap, dsn, tmp, 2)
        prepare(settings, dsn, []).wait()
        self.port = free_port()
        self.log = tmp / "run.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tapeflow.cli", "run", "all", "--serve"], cwd=REPO,
                env={**flow_env(settings), "TAPEFLOW_WEB_PORT": str(self.port)}, stdout=out,
                stderr=subprocess.STDOUT)
        self.writer = KafkaWriter(settings.kafka_config())
        self.codec = Codec(LocalCatalogue.load())
        self.topic = settings.topic(TOPIC_EXECUTIONS)
        self.pg = connect_postgres(dsn, settings.postgres.schema, autocommit=True)
        self.ts = time.time_ns() // 1000

    def trade(self, order_id: str, side: Side, px: int) -> float:
        """An order for 10 and its fill; returns when the producer's flush returned (ms)."""
        self.ts += 1
        sim = OrderSim(order_id, 10 * ONE, side, self.account, "BENCH", ts=self.ts)
        for report in (sim.new(), sim.fill(10 * ONE, px)):
            self.writer.send(self.topic, self.codec.encode(report), key=self.account)
        self.writer.flush()
        return time.time() * 1000

    def stored(self, pnl: Decimal) -> float:
        """When Postgres shows the realised P&L (ms), polled every 5 ms."""
        while True:
            row = self.pg.execute("SELECT realised_pnl FROM accounts WHERE account_id = %s",
                                  (self.account,)).fetchone()
            if row is not None and row[0] == pnl:
                return time.time() * 1000
            time.sleep(0.005)

    def open_accounts(self, browser: Any) -> Any:
        page = browser.new_page()
        deadline = time.monotonic() + 120
        while True:
            try:
                page.goto(f"http://127.0.0.1:{self.port}/accounts")
                page.wait_for_selector(f"#acct-{self.account}", timeout=5_000)
                break
            except PlaywrightError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"no live view: {self.log.read_text()[-2000:]}") from None
        page.wait_for_function("document.getElementById('status').textContent === 'live'")
        page.evaluate(WATCH, [f"#acct-{self.account} td.realised"])
        return page

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.pg.close()


def measure(dep: Deployment, page: Any, round_trips: int) -> tuple[list[float], list[float]]:
    """(stored, page) latencies in ms of `round_trips` closing sells."""
    stores, pages = [], []
    for i in range(round_trips):
        produced = dep.trade(f"s{i}", Side.SELL, 101 * ONE)  # closes the open 10: +10
        pnl = Decimal(10 * (i + 1))
        stores.append(dep.stored(pnl) - produced)
        want = f"{pnl:.8f}"
        page.wait_for_function("([want]) => window.changes.some(([t]) => t === want)",
                               arg=[want], timeout=30_000)
        pages.append(min(at for text, at in page.evaluate("window.changes") if text == want)
                     - produced)
        dep.trade(f"b{i}", Side.BUY, 100 * ONE)  # reopen for the next round trip
        dep.stored(pnl)
    return stores, pages


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p95": round(pct(values, 0.95), 1),
            "max": round(max(values), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_broker(Path(tmp)) as bootstrap:
        dep = Deployment(Path(tmp), bootstrap)
        try:
            dep.trade("warm", Side.BUY, 100 * ONE)
            with chromium() as browser:
                stores, pages = measure(dep, dep.open_accounts(browser), args.round_trips)
        finally:
            dep.close()
    print(json.dumps({
        "round_trips": args.round_trips, "stored_ms": summary(stores),
        "page_ms": summary(pages),
        "live_view_share_ms": summary([p - s for p, s in zip(pages, stores, strict=True)]),
    }, indent=2))


if __name__ == "__main__":
    main()
