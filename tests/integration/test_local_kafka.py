"""`tapeflow dev kafka start|stop|status`: the project's own broker, idempotent, authenticated
by default (SASL/SCRAM and ACLs, generated credentials readable by their owner only), and
unauthenticated when a developer asks for PLAINTEXT."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from jobs.local.kafka_broker import ensure_jars, jars_dir
from jobs.local.kafka_credentials import ADMIN_USER, LocalCredentials
from tapeflow.services.kafka import broker_answers, check_access
from tapeflow.services.kafka_access import Grant


def _free_port_pair() -> int:
    """A port p with p+1 also free (the broker's controller listens on p+1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def _tapeflow(args: list[str], home: Path, port: int,
              **extra: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("tapeflow")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")},
           "TAPEFLOW_HOME": str(home), "TAPEFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", **extra}
    return subprocess.run([str(exe), *args], env=env, cwd=home, capture_output=True,
                          text=True, check=False, timeout=180)


def _dev_kafka(action: str, home: Path, port: int,
               **extra: str) -> subprocess.CompletedProcess[str]:
    name = extra.pop("NAME", None)
    return _tapeflow(["dev", "kafka", action, *([name] if name else [])], home, port, **extra)


def test_start_is_idempotent_and_stop_stops(tmp_path: Path) -> None:
    port = _free_port_pair()
    assert _dev_kafka("status", tmp_path, port).returncode == 1

    first = _dev_kafka("start", tmp_path, port)
    assert first.returncode == 0, first.stderr
    assert f"answering at 127.0.0.1:{port}" in first.stdout
    assert "authenticated (SASL/SCRAM, ACLs)" in first.stdout
    pid = (tmp_path / "kafka" / "broker.pid").read_text()

    # Generated credentials, readable by their owner only; the config holds the broker's own.
    credentials = LocalCredentials(tmp_path / "kafka" / "credentials")
    assert (credentials.dir.stat().st_mode & 0o777) == 0o700
    files = sorted(credentials.dir.iterdir())
    assert {p.name for p in files} >= {ADMIN_USER, "tapeflow-market", "tapeflow-trading"}
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in files)
    assert ((tmp_path / "kafka" / "server.properties").stat().st_mode & 0o777) == 0o600
    # The broker answers its admin, and drops a client without credentials.
    bootstrap = f"127.0.0.1:{port}"
    assert broker_answers(credentials.client_config(bootstrap))
    assert not broker_answers({"bootstrap.servers": bootstrap})
    # A flow's check of its rights on a broker this new: the group coordinator is still
    # settling (NOT_COORDINATOR at first), and the check waits for it instead of failing.
    check_access(credentials.client_config(bootstrap),
                 [("tapeflow-all", Grant(ADMIN_USER, "group", "tapeflow-all", "literal", "read"))])

    started = time.monotonic()
    again = _dev_kafka("start", tmp_path, port)
    assert again.returncode == 0 and f"pid {pid}" in again.stdout
    assert time.monotonic() - started < 20  # it found the running broker, it did not restart

    status = _dev_kafka("status", tmp_path, port)
    assert status.returncode == 0 and "answering" in status.stdout

    # The commands of this home find the credentials by themselves; explicit ones win.
    found = _tapeflow(["status"], tmp_path, port)
    assert re.search(r"ok +kafka", found.stdout), found.stdout + found.stderr
    other = _tapeflow(["status"], tmp_path, port, TAPEFLOW_KAFKA_SASL_USERNAME="nobody")
    assert re.search(r"DOWN +kafka", other.stdout), other.stdout
    added = _dev_kafka("add-user", tmp_path, port, NAME="risk-a")
    assert added.returncode == 0, added.stderr
    assert ((credentials.dir / "risk-a").stat().st_mode & 0o777) == 0o600
    assert broker_answers(credentials.client_config(bootstrap, "risk-a"))

    assert "stopped" in _dev_kafka("stop", tmp_path, port).stdout
    assert _dev_kafka("status", tmp_path, port).returncode == 1
    assert "no local Kafka broker" in _dev_kafka("stop", tmp_path, port).stdout


def test_plaintext_when_asked_and_an_unauthenticated_storage_is_not_reused(
        tmp_path: Path) -> None:
    port = _free_port_pair()
    plain = {"TAPEFLOW_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    started = _dev_kafka("start", tmp_path, port, **plain)
    try:
        assert started.returncode == 0, started.stderr
        assert "unauthenticated (PLAINTEXT, no ACLs), as asked" in started.stdout
        assert broker_answers({"bootstrap.servers": f"127.0.0.1:{port}"})
        assert not (tmp_path / "kafka" / "credentials").exists()
    finally:
        assert "stopped" in _dev_kafka("stop", tmp_path, port, **plain).stdout

    refused = _dev_kafka("start", tmp_path, port)  # authenticated, on that storage: no
    assert refused.returncode == 2
    assert refused.stderr.startswith("tapeflow: error: the local broker's storage ")
    assert "was created without authentication" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_jar_cache_is_reused() -> None:
    ensure_jars()
    marker = jars_dir() / ".complete"
    before = marker.stat().st_mtime_ns
    started = time.monotonic()
    assert ensure_jars() == jars_dir()
    assert time.monotonic() - started < 1.0
    assert marker.stat().st_mtime_ns == before
    assert any(p.name.startswith("kafka_2.13-4.") for p in jars_dir().iterdir())
