"""`--processes N`: every child of a local cluster builds exactly its parent's settings.

The children are real processes started by `spawn_local_cluster` (running a stand-in module
that writes what it built instead of a dataflow). The parent's settings come from everywhere a
setting can: the environment, a flag overriding the environment, a `*_FILE` secret, a
variable of an earlier version, and values given in code (as `tapeflow run` does with the
embedded Postgres's DSN, which no variable holds). Before, a secret given in code never
reached the children, and a child of a run on the embedded Postgres built other settings.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tapeflow.runtime.cluster import child_environment, spawn_local_cluster
from tapeflow.settings import Settings
from tests.support.child_settings import revealed
from tests.support.locations import REPO

DSN = "postgresql://tapeflow:pg pw#1@db.internal:5432/tapeflow"
SASL = "sasl-secret-from-a-file"
REGISTRY = "reg-user:reg-secret-in-env"


pytestmark = pytest.mark.filterwarnings("ignore:TAPEFLOW_SEQ_WINDOW is now called")


@pytest.fixture
def parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "sasl").write_text(SASL + "\n")
    monkeypatch.chdir(REPO)  # the children import the repository's packages from here
    monkeypatch.setenv("TAPEFLOW_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "sasl"))
    monkeypatch.setenv("TAPEFLOW_SCHEMA_REGISTRY_BASIC_AUTH", REGISTRY)
    monkeypatch.setenv("TAPEFLOW_KAFKA_BOOTSTRAP", "from-env:9092")
    monkeypatch.setenv("TAPEFLOW_SEQ_WINDOW", "512")  # an earlier version's name
    monkeypatch.setenv("TAPEFLOW_TEST_CHILD_DIR", str(tmp_path))
    settings = Settings(_env_file=None).with_overrides(
        home=tmp_path / "home", kafka_bootstrap="from-flag:9092", postgres_dsn=DSN,
        market_merge_wait_s=12.5, trading_initial_cash="250000.5",
        access_alerts_allowed_accounts=frozenset({"A1", "B2"}), metrics_port=0,
        sink_retry_deadline_s=42.0, clickhouse_database="tf_children")
    assert settings.kafka.sasl_password is not None
    assert settings.market.seq_window == 512
    return settings


def test_every_child_builds_the_parents_settings(parent: Settings, tmp_path: Path) -> None:
    handlers = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    code = spawn_local_cluster(parent, "market", 2, child_args=["--no-recovery"],
                               recovery=False, shard=None, module="tests.support.child_settings")
    assert code == 0
    want = revealed(parent)
    for process_id in (0, 1):
        child = json.loads((tmp_path / f"child-{process_id}.json").read_text())
        assert child["settings"] == want, process_id
        assert child["argv"][:2] == ["run", "market"] and "--no-recovery" in child["argv"]
    # The parent's signal handlers are its own again once the children have exited.
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers


def test_secrets_reach_children_as_private_files_only(parent: Settings) -> None:
    with child_environment(parent) as env:
        files = {k: Path(v) for k, v in env.items()
                 if k.startswith("TAPEFLOW_") and k.endswith("_FILE")}
        assert set(files) == {"TAPEFLOW_KAFKA_SASL_PASSWORD_FILE", "TAPEFLOW_POSTGRES_DSN_FILE",
                              "TAPEFLOW_SCHEMA_REGISTRY_BASIC_AUTH_FILE"}
        for path in files.values():
            assert path.stat().st_mode & 0o077 == 0  # this user only
            assert path.parent.stat().st_mode & 0o077 == 0
        for secret in (DSN, SASL, REGISTRY):
            assert not any(secret in value for value in env.values())
        assert "TAPEFLOW_SCHEMA_REGISTRY_BASIC_AUTH" not in env  # no variable and _FILE twin
    assert not any(path.exists() for path in files.values())  # gone with the children
    assert os.environ["TAPEFLOW_SCHEMA_REGISTRY_BASIC_AUTH"] == REGISTRY  # ours untouched
