"""JSON log lines: one parseable object per record, with the fields log shippers index."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from tapeflow.cli.logs import JsonFormatter


def test_a_record_is_one_json_object_with_ts_level_logger_message() -> None:
    record = logging.LogRecord("tapeflow.x", logging.WARNING, __file__, 1,
                               'broker "%s" is slow: %d ms', ("b1", 250), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "tapeflow.x"
    assert entry["message"] == 'broker "b1" is slow: 250 ms'
    assert entry["ts"].endswith("+00:00")


def test_an_exception_is_kept_inside_the_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: bad" in json.loads(line)["exception"]


def test_the_cli_logs_json_when_asked() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import logging, sys; sys.argv=['tapeflow', '--help'];"
         "from tapeflow.cli.logs import configure_logging;"
         "from tapeflow.settings import Settings; configure_logging(Settings().runtime);"
         "logging.getLogger('tapeflow.t').warning('hello %s', 'world')"],
        capture_output=True, text=True, check=True, timeout=60,
        env={"TAPEFLOW_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"})
    assert json.loads(done.stderr.strip())["message"] == "hello world"
