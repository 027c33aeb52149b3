"""Where the tests find things: the repository root (subprocesses run from there), the home of
the test services (`.tapeflow/test`: the local Kafka broker and embedded Postgres) and the test
Kafka port. Used by tests/conftest.py's fixtures and by the tests that start commands or a
broker of their own."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_HOME = REPO / ".tapeflow" / "test"
TEST_KAFKA_PORT = int(os.environ.get("TAPEFLOW_TEST_KAFKA_PORT", "19092"))
