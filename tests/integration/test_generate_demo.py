"""`tapeflow generate` and `tapeflow demo` against the real services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from jobs.generate import MarketRequest, run_generate
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tapeflow")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env={**os.environ, "TAPEFLOW_HOME": str(cwd / ".tf")})


def test_generate_seed_7_twice_gives_byte_identical_parquet(tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = _cli("generate", "--seed", "7", "--minutes", "0.5", "--output",
                    str(tmp_path / name), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"trades.parquet", "quotes.parquet", "executions.parquet"} <= set(files_a)
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = _cli("generate", "--seed", "8", "--minutes", "0.5", "--output", str(tmp_path / "c"),
                 cwd=tmp_path)
    assert other.returncode == 0
    assert (tmp_path / "c" / "trades.parquet").read_bytes() != \
        (tmp_path / "a" / "trades.parquet").read_bytes()


def test_generate_without_a_destination_is_a_one_line_usage_error(tmp_path: Path) -> None:
    done = _cli("generate", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--output" in done.stderr


def test_generate_to_kafka_produces_every_record(settings: Settings) -> None:
    from jobs.init import create_topics

    create_topics(settings)
    report = run_generate(settings, MarketRequest(minutes=0.2), out=None, kafka=True)
    total = sum(report.produced.values())
    assert total == report.summary["records"]
    assert report.produced[settings.topic("md.trades")] > 0


def test_demo_runs_the_flows_and_accounts_for_every_tick(settings: Settings) -> None:
    """Every generated trade and quote ends up clean or rejected with a reason: none is lost."""
    from tapeflow.cli.demo import run_demo

    own = settings.with_overrides(clickhouse_database=f"{settings.clickhouse.database}_demo",
                                  postgres_schema=f"{settings.postgres.schema}_demo")
    text = "\n".join(run_demo(own, minutes=0.2, seed=3))
    generated = re.search(r"([\d,]+) trades, ([\d,]+) quotes", text)
    ticks = re.search(r"ticks: ([\d,]+) clean trades, ([\d,]+) clean quotes", text)
    assert generated and ticks, text
    trades, quotes = (int(g.replace(",", "")) for g in generated.groups())
    clean_trades, clean_quotes = (int(g.replace(",", "")) for g in ticks.groups())
    rejected = {kind: 0 for kind in ("trade", "quote")}
    for kind, _reason, n in re.findall(r"rejected (trade|quote) +(\w+) +([\d,]+)", text):
        rejected[kind] += int(n.replace(",", ""))
    assert clean_trades + rejected["trade"] == trades
    assert clean_quotes + rejected["quote"] == quotes
    assert "ran the market and trading flows" in text
    assert re.search(r"candles: [1-9][\d,]* of 1 s", text)


def test_an_unreachable_broker_is_a_one_line_error(tmp_path: Path) -> None:
    """Only `demo` starts the local broker; other commands say what is missing."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tapeflow")), "--kafka-bootstrap",
         f"127.0.0.1:{port}", "generate", "--kafka", "--minutes", "0.1"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "TAPEFLOW_HOME": str(tmp_path / ".tf")},
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"tapeflow: error: no Kafka broker answers at 127.0.0.1:{port}")
    assert "tapeflow dev kafka start" in done.stderr
    assert "Traceback" not in done.stderr
