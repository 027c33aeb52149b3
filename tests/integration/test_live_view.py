"""The live view in a real headless browser (the system's Chromium), against a real deployment:
`tapeflow run all --serve` in its own process (market and trading flows, the embedded
ClickHouse it holds, the session's Postgres and broker), records produced to the topics as an
OMS and a feed would, and pages that must change without being reloaded.

Acceptance of issue 16: the pages load; a new execution on the topic changes the account's
P&L on the page (pushed: the page is not reloaded; how fast is measured by bench/live_view.py,
not asserted here); a new alert appears; a candle appears and then updates when a late trade
corrects it; a viewer of one desk sees no other desk's account, position or alert, on the
pages or through the API.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jobs.alerts import iso_utc
from jobs.init import grant_access
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import Side, Trade
from tapeflow.settings import Settings
from tapeflow.web.access import hash_password
from tests.support.browser import chromium, screenshot
from tests.support.kafka_env import child_env
from tests.support.locations import REPO
from tests.support.trading_builders import OrderSim

RUN = uuid.uuid4().hex[:6].upper()
ACC_A, ACC_B = f"LV{RUN}A", f"LV{RUN}B"
SYMBOL = f"LV{RUN}"
PASSWORDS = {"ops": "ops-secret", "alice": "alice-secret"}
WAIT_MS = 30_000
"""How long a page may take to show a pushed change before the test fails: generous, because
the suite shares two cores; the latency itself is measured by bench/live_view.py."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    settings: Settings
    url: str
    writer: KafkaWriter
    codec: Codec
    log: Path
    now_us: int

    def send(self, topic: str, key: str, record: Any) -> None:
        self.writer.send(self.settings.topic(topic), self.codec.encode(record), key=key)
        self.writer.flush()

    def get(self, path: str, viewer: str) -> tuple[int, Any]:
        token = base64.b64encode(f"{viewer}:{PASSWORDS[viewer]}".encode()).decode()
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read()
                kind = answer.headers.get("Content-Type", "")
                return answer.status, json.loads(body) if "json" in kind else body
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except urllib.error.URLError:
            return 0, None  # not listening (yet)


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap: str, kafka_auth: dict[str, Any], postgres_dsn: str,
               session_id: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("live")
    viewers = root / "viewers.json"
    viewers.write_text(json.dumps({
        "ops": {"password_scrypt": hash_password(PASSWORDS["ops"]), "desks": "*"},
        "alice": {"password_scrypt": hash_password(PASSWORDS["alice"]), "desks": ["desk-a"]},
    }))
    desks = f"desk-a={ACC_A};desk-b={ACC_B}"
    port = _free_port()
    settings = Settings(
        _env_file=None, home=root / "home", kafka_bootstrap=kafka_bootstrap,
        postgres_dsn=postgres_dsn, clickhouse_dsn=f"chdb://{root / 'chdb'}",
        clickhouse_database=f"tf_{session_id}", postgres_schema=f"tf_{session_id}",
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.", kafka_partitions=2,
        access_desks=desks, **kafka_auth)
    grant_access(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update({
        **child_env(settings),
        "TAPEFLOW_KAFKA_PARTITIONS": "2",
        "TAPEFLOW_ACCESS_DESKS": desks,
        "TAPEFLOW_ACCESS_VIEWERS_FILE": str(viewers),
        "TAPEFLOW_WEB_PORT": str(port),
    })
    tapeflow = [sys.executable, "-m", "tapeflow.cli"]
    init = subprocess.run([*tapeflow, "init"], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)
    assert init.returncode == 0, init.stderr[-2000:]
    log = root / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*tapeflow, "run", "all", "--serve"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deployment = Deployment(settings, f"http://127.0.0.1:{port}",
                            KafkaWriter(settings.kafka_config()), Codec(LocalCatalogue.load()),
                            log, time.time_ns() // 1000)
    try:
        deadline = time.monotonic() + 120
        while deployment.get("/api/symbols", "ops")[0] != 200:
            assert proc.poll() is None, f"run all --serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no live view: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield deployment
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def _page(browser: Any, deployment: Deployment, viewer: str, path: str) -> Any:
    context = browser.new_context(
        http_credentials={"username": viewer, "password": PASSWORDS[viewer]},
        viewport={"width": 1280, "height": 900}, timezone_id="Europe/London")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    page.goto(deployment.url + path)
    return page


def _live(page: Any) -> None:
    """Wait until the page follows the event stream (its status says so)."""
    page.wait_for_function("document.getElementById('status')?.textContent === 'live'",
                           timeout=WAIT_MS)


def _cell(page: Any, selector: str) -> Decimal | None:
    text = page.eval_on_selector(selector, "el => el.textContent") \
        if page.query_selector(selector) else None
    return Decimal(text) if text else None


def _wait_cell(page: Any, selector: str, expected: str) -> None:
    """Wait for the exact decimal `expected` in the cell (compared as decimals, not floats)."""
    page.wait_for_function(
        "([sel, want]) => { const el = document.querySelector(sel);"
        " return el !== null && el.textContent.trim() !== '' &&"
        " el.textContent.replace(/0+$/, '').replace(/\\.$/, '') === want; }",
        arg=[selector, expected], timeout=WAIT_MS)


def test_a_new_execution_changes_the_accounts_pnl_on_the_open_page(
        deployment: Deployment, browser: Any) -> None:
    now = deployment.now_us
    buy = OrderSim(f"{RUN}-b1", 10 * ONE, Side.BUY, ACC_A, SYMBOL, limit_price=100 * ONE,
                   ts=now)
    for report in (buy.new(), buy.fill(10 * ONE, 100 * ONE)):
        deployment.send(TOPIC_EXECUTIONS, ACC_A, report)
    page = _page(browser, deployment, "ops", "/accounts")
    _live(page)
    row = f"#acct-{ACC_A}"
    page.wait_for_selector(row, timeout=WAIT_MS)
    _wait_cell(page, f"{row} td.realised", "0")
    page.evaluate("window.loadedAt = performance.timeOrigin")

    sell = OrderSim(f"{RUN}-s1", 10 * ONE, Side.SELL, ACC_A, SYMBOL, limit_price=105 * ONE,
                    ts=now + 1_000_000)
    for report in (sell.new(), sell.fill(10 * ONE, 105 * ONE)):
        deployment.send(TOPIC_EXECUTIONS, ACC_A, report)
    _wait_cell(page, f"{row} td.realised", "50")  # (105 - 100) x 10, exact
    # pushed, not reloaded: the same document (a reload would reset timeOrigin)
    assert page.evaluate("window.loadedAt === performance.timeOrigin")
    assert page.errors == []


def test_a_new_alert_appears_on_the_open_page(deployment: Deployment, browser: Any) -> None:
    page = _page(browser, deployment, "ops", "/alerts")
    _live(page)
    big = OrderSim(f"{RUN}-big", 2_000_000 * ONE, Side.BUY, ACC_A, SYMBOL,
                   limit_price=1 * ONE, ts=deployment.now_us + 2_000_000)
    deployment.send(TOPIC_EXECUTIONS, ACC_A, big.new())  # above any max_order_qty
    page.wait_for_function(
        "([acct]) => [...document.querySelectorAll('#alerts tbody tr')].some(tr => {"
        " const a = JSON.parse(tr.dataset.alert);"
        " return a.account_id === acct && a.rule === 'order_size'; })",
        arg=[ACC_A], timeout=WAIT_MS)
    assert page.errors == []


def _trade(seq: int, ts_us: int, price: str, size: int = 100) -> Trade:
    return Trade(SYMBOL, "XNAS", ts_us, seq, int(Decimal(price) * ONE), size * ONE)


def test_a_candle_appears_and_a_late_trade_updates_it(deployment: Deployment,
                                                      browser: Any) -> None:
    page = _page(browser, deployment, "ops", f"/symbols/{SYMBOL}?interval=1s")
    _live(page)
    # The first second of a minute that ended two minutes ago: the 1 s candle closes by the
    # watermark, the 1 min one by the idle close soon after (the symbols page lists 1 min ones).
    second = (deployment.now_us // 60_000_000 - 2) * 60_000_000
    for seq, (ts, price) in enumerate([(second + 100_000, "10.00"), (second + 200_000, "10.10"),
                                       (second + 7_000_000, "10.05")], start=1):
        deployment.send(TOPIC_TRADES, SYMBOL, _trade(seq, ts, price))
    # the watermark (7 s - 5 s lateness) closes the first second: 2 trades, high 10.10
    row = f"#candles tr[id='candle-{iso_utc(second)}']"
    page.wait_for_function(
        "([sel]) => document.querySelector(sel)?.cells[7].textContent === '2'",
        arg=[row], timeout=WAIT_MS)
    assert _cell(page, f"{row} td:nth-child(3)") == Decimal("10.10")
    # a late trade in the closed second: the candle is corrected on the page, in place
    deployment.send(TOPIC_TRADES, SYMBOL, _trade(4, second + 300_000, "10.20"))
    page.wait_for_function(
        "([sel]) => document.querySelector(sel)?.cells[7].textContent === '3'",
        arg=[row], timeout=WAIT_MS)
    assert _cell(page, f"{row} td:nth-child(3)") == Decimal("10.20")  # the new high
    assert _cell(page, f"{row} td:nth-child(5)") == Decimal("10.20")  # and close: latest ts
    assert page.errors == []


def _alert_ids(page: Any, account: str) -> set[str]:
    return set(page.evaluate(
        "(acct) => [...document.querySelectorAll('#alerts tbody tr')]"
        ".map(tr => JSON.parse(tr.dataset.alert)).filter(a => a.account_id === acct)"
        ".map(a => a.alert_id)", account))


def test_a_viewer_of_one_desk_sees_no_other_desks_data(deployment: Deployment,
                                                       browser: Any) -> None:
    ops = _page(browser, deployment, "ops", "/alerts")
    alice = _page(browser, deployment, "alice", "/alerts")
    _live(ops)
    _live(alice)
    ts = deployment.now_us + 3_000_000
    other = OrderSim(f"{RUN}-bigB", 2_000_000 * ONE, Side.BUY, ACC_B, SYMBOL,
                     limit_price=1 * ONE, ts=ts)
    deployment.send(TOPIC_EXECUTIONS, ACC_B, other.new())
    fill_b = OrderSim(f"{RUN}-bB", 5 * ONE, Side.BUY, ACC_B, SYMBOL, limit_price=100 * ONE,
                      ts=ts)
    for report in (fill_b.new(), fill_b.fill(5 * ONE, 100 * ONE)):
        deployment.send(TOPIC_EXECUTIONS, ACC_B, report)
    mine = OrderSim(f"{RUN}-big2", 3_000_000 * ONE, Side.BUY, ACC_A, SYMBOL,
                    limit_price=1 * ONE, ts=ts + 1)
    deployment.send(TOPIC_EXECUTIONS, ACC_A, mine.new())
    ops.wait_for_function(
        "([a, b, mine]) => { const rows = [...document.querySelectorAll('#alerts tbody tr')]"
        ".map(tr => JSON.parse(tr.dataset.alert));"
        " return rows.some(r => r.account_id === a && JSON.stringify(r).includes(mine))"
        " && rows.some(r => r.account_id === b); }", arg=[ACC_A, ACC_B, mine.order_id],
        timeout=WAIT_MS)
    alice.wait_for_function(
        "(a) => [...document.querySelectorAll('#alerts tbody tr')].some(tr =>"
        " JSON.parse(tr.dataset.alert).account_id === a)", arg=ACC_A, timeout=WAIT_MS)
    assert _alert_ids(ops, ACC_B)
    assert _alert_ids(alice, ACC_B) == set()
    shown = set(alice.evaluate("[...document.querySelectorAll('#alerts tbody tr')]"
                               ".map(tr => JSON.parse(tr.dataset.alert).account_id)"))
    assert shown == {ACC_A}  # nor alerts of other accounts, nor ones without an account

    # the stored views: the API and the pages answer alice with desk-a only
    status, accounts = deployment.get("/api/accounts", "alice")
    assert status == 200 and {a["account_id"] for a in accounts} == {ACC_A}
    status, all_accounts = deployment.get("/api/accounts", "ops")
    assert status == 200 and {ACC_A, ACC_B} <= {a["account_id"] for a in all_accounts}
    assert deployment.get(f"/api/accounts/{ACC_B}/positions", "alice")[0] == 404
    assert deployment.get(f"/accounts/{ACC_B}", "alice")[0] == 404
    status, alerts = deployment.get("/api/alerts", "alice")
    assert status == 200 and alerts and {a["account_id"] for a in alerts} == {ACC_A}
    page = _page(browser, deployment, "alice", "/accounts")
    _live(page)
    page.wait_for_selector(f"#acct-{ACC_A}", timeout=WAIT_MS)
    assert page.query_selector(f"#acct-{ACC_B}") is None
    assert page.eval_on_selector_all("#accounts tbody tr", "rows => rows.length") == 1
    # a stranger, or alice with a wrong password, gets 401 and nothing else
    token = base64.b64encode(b"alice:wrong").decode()
    request = urllib.request.Request(deployment.url + "/api/accounts",
                                     headers={"Authorization": f"Basic {token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(deployment.url + "/events", timeout=30)
    assert anonymous.value.code == 401


PAGES = [("accounts", "/accounts", f"#acct-{ACC_A}"),
         ("account", f"/accounts/{ACC_A}", f"#pos-{SYMBOL}"),
         ("alerts", "/alerts", "#alerts tbody tr"),
         ("symbols", "/symbols", f"#symbols a[href='/symbols/{SYMBOL}']"),
         ("symbol", f"/symbols/{SYMBOL}?interval=1s", "#candles tbody tr"),
         ("health", "/health", "#services tbody tr")]


@pytest.mark.parametrize(("name", "path", "content"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_loads_with_its_data(deployment: Deployment, browser: Any, name: str,
                                        path: str, content: str) -> None:
    """Runs after the tests above have put data in every view (and takes the screenshots of
    docs/live-view.md when TAPEFLOW_TEST_SCREENSHOTS is set)."""
    page = _page(browser, deployment, "ops", path)
    page.wait_for_selector(content, timeout=WAIT_MS)
    assert page.title().startswith("Tapeflow")
    # times in UTC, with the viewer's local time beside them (the browser is in London)
    if name in ("accounts", "alerts", "symbol"):
        assert "UTC" in page.inner_text("main")
        page.wait_for_selector("span.local", timeout=WAIT_MS)
    page.wait_for_timeout(300)  # let the chart and the flash settle for the picture
    screenshot(page, f"live-{name}")
    assert page.errors == []
