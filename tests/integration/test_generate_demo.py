"""`tapeflow generate` and `tapeflow demo` against the real services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from jobs.demo import run_demo
from jobs.generate import MarketRequest, run_generate
from tapeflow.config import Settings

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tapeflow")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env={**os.environ, "TAPEFLOW_HOME": str(cwd / ".tf")})


def test_generate_seed_7_twice_gives_byte_identical_parquet(tmp_path: Path) -> None:
    for name in ("a", "b"):
        done = _cli("generate", "--seed", "7", "--minutes", "0.5", "--out", str(tmp_path / name),
                    cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"trades.parquet", "quotes.parquet", "executions.parquet"} <= set(files_a)
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = _cli("generate", "--seed", "8", "--minutes", "0.5", "--out", str(tmp_path / "c"),
                 cwd=tmp_path)
    assert other.returncode == 0
    assert (tmp_path / "c" / "trades.parquet").read_bytes() != \
        (tmp_path / "a" / "trades.parquet").read_bytes()


def test_generate_without_a_destination_is_a_one_line_usage_error(tmp_path: Path) -> None:
    done = _cli("generate", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--out" in done.stderr


def test_generate_to_kafka_produces_every_record(settings: Settings) -> None:
    from jobs.init import create_topics

    create_topics(settings)
    report = run_generate(settings, MarketRequest(minutes=0.2), out=None, kafka=True)
    total = sum(report.produced.values())
    assert total == report.summary["records"]
    assert report.produced[settings.topic("md.trades")] > 0


def test_demo_reads_back_what_it_produced(settings: Settings) -> None:
    lines = list(run_demo(settings, minutes=0.2, seed=3))
    text = "\n".join(lines)
    summary = re.search(r"trades ([\d,]+), quotes ([\d,]+), executions ([\d,]+), "
                        r"garbage ([\d,]+)", text)
    assert summary, text
    trades, quotes, executions, garbage = (int(g.replace(",", "")) for g in summary.groups())
    decoded = {m.group(1): (int(m.group(2).replace(",", "")), int(m.group(3)))
               for m in re.finditer(r"(md\.trades|md\.quotes|oms\.executions): ([\d,]+) decoded,"
                                    r" (\d+) for the DLQ", text)}
    assert decoded["md.trades"][0] == trades
    assert decoded["md.quotes"][0] == quotes
    assert decoded["oms.executions"][0] == executions
    assert sum(dead for _, dead in decoded.values()) == garbage


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
    assert done.returncode == 1
    assert done.stderr.startswith(f"tapeflow: error: no Kafka broker answers at 127.0.0.1:{port}")
    assert "tapeflow dev kafka start" in done.stderr
    assert "Traceback" not in done.stderr
