"""`tapeflow serve` on its own, beside flows that run elsewhere (issue 16: "with servers,
`tapeflow serve` runs on its own"): it answers from the stores it is given, and a mistake in
its viewers file is one line and exit code 2, before it listens."""

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
from pathlib import Path

from jobs.init import init_postgres
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tapeflow.web.access import hash_password
from tests.support.kafka_env import child_env
from tests.support.locations import REPO


def _env(settings: Settings, chdb: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    return {**env, **child_env(settings), "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{chdb}", **extra}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, auth: str) -> tuple[int, object]:
    token = base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except urllib.error.URLError:
        return 0, None


def test_serve_answers_from_the_stores_it_is_given(settings: Settings, tmp_path: Path) -> None:
    chdb = tmp_path / "chdb"
    code = subprocess.run([sys.executable, "-c", (
        "import sys; from jobs.init import init_clickhouse; from tapeflow.settings import "
        "Settings; init_clickhouse(Settings(clickhouse_dsn=sys.argv[1], "
        "clickhouse_database=sys.argv[2]))"), f"chdb://{chdb}", settings.clickhouse.database],
        cwd=REPO, check=False).returncode
    assert code == 0
    assert settings.postgres.dsn is not None
    dsn = settings.postgres.dsn.get_secret_value()
    init_postgres(settings, dsn)
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        conn.execute("INSERT INTO accounts (account_id, cash, realised_pnl, unrealised_pnl, "
                     "commissions, equity, peak_equity, ts_last, version) VALUES ('SRV1', "
                     "1000, 0, 0, 0, 1000, 1000, now(), 1) ON CONFLICT DO NOTHING")
        conn.commit()
    viewers = tmp_path / "viewers.json"
    viewers.write_text(json.dumps({"bob": {"password_scrypt": hash_password("pw"),
                                           "accounts": ["SRV1"]}}))
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tapeflow.cli", "serve", "--port", str(port)], cwd=REPO,
        env=_env(settings, chdb, TAPEFLOW_ACCESS_VIEWERS_FILE=str(viewers)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while (answer := _get(f"{url}/api/accounts", "bob:pw"))[0] != 200:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "tapeflow serve did not answer"
            time.sleep(0.3)
        assert [a["account_id"] for a in answer[1]] == ["SRV1"]  # type: ignore[index]
        assert _get(f"{url}/api/symbols", "bob:pw") == (200, [])
        assert _get(f"{url}/api/accounts", "bob:nope")[0] == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_viewer_of_an_unknown_desk_stops_serve_with_one_line(settings: Settings,
                                                               tmp_path: Path) -> None:
    viewers = tmp_path / "viewers.json"
    viewers.write_text(json.dumps({"eve": {"password_scrypt": "x", "desks": ["nowhere"]}}))
    done = subprocess.run(
        [sys.executable, "-m", "tapeflow.cli", "serve", "--port", str(_port())], cwd=REPO,
        env=_env(settings, tmp_path / "chdb", TAPEFLOW_ACCESS_VIEWERS_FILE=str(viewers)),
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tapeflow: error: viewers file {viewers}: viewer eve: no desk nowhere in "
        "TAPEFLOW_ACCESS_DESKS"]
