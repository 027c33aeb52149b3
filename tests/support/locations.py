"""Where the tests find things: the repository root (subprocesses run from there), the home of
the test services (`.tapeflow/test`: embedded Postgres; the authenticated Kafka broker in
`.tapeflow/test/scram`, apart from the unauthenticated broker of earlier versions) and the test
Kafka port. Used by tests/conftest.py's fixtures and by the tests that start commands or a
broker of their own."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_HOME = REPO / ".tapeflow" / "test"
TEST_KAFKA_HOME = TEST_HOME / "scram"
TEST_KAFKA_PORT = int(os.environ.get("TAPEFLOW_TEST_KAFKA_PORT", "19192"))
"""The test broker's port (its controller listens on the next). Not 19092: an earlier
version's unauthenticated test broker may still be listening there."""
