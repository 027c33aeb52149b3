"""A tiny Confluent-compatible schema registry over real HTTP, for outage tests.

It serves the repository's catalogue (`schemas/catalogue.json`: the same ids and schemas) with
the few endpoints Tapeflow's codec uses: `GET /schemas/ids/{id}` (404 with error code 40403 for
an id it does not hold, as a real registry answers) and `POST /subjects/{subject}` (the lookup
of a schema's id). It can be switched off while running: `down` closes every connection without
an answer (a registry restarting, a proxy with no backend), `hang` holds each request for
`hang_s` before closing it (a registry that stopped answering: the client's timeout decides).
Requests are counted by path, so a test can see what was asked, and answered, how often.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from schemas.catalogue import CATALOGUE_FILE

Mode = Literal["up", "down", "hang"]


class RegistryServer:
    """The registry's state: its schemas, its mode, and the requests it received."""

    def __init__(self) -> None:
        doc = json.loads(CATALOGUE_FILE.read_text())
        self.schemas: dict[int, tuple[str, str]] = {
            int(e["id"]): (e["subject"], (CATALOGUE_FILE.parent / e["file"]).read_text())
            for e in doc["schemas"]}
        self.mode: Mode = "up"
        self.hang_s = 2.0
        self.requests: Counter[str] = Counter()
        """Every request by "METHOD /path"."""
        self.answers: Counter[str] = Counter()
        """Requests answered (with a status, found or not) by "METHOD /path"."""
        self.unanswered = 0
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._http is not None
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for one request, as a Confluent registry answers it."""
        route = path.split("?", 1)[0].strip("/").split("/")
        if method == "GET" and route[:2] == ["schemas", "ids"] and route[2:3]:
            found = self.schemas.get(int(route[2])) if route[2].isdigit() else None
            if found is None:
                return 404, {"error_code": 40403, "message": f"Schema {route[2]} not found"}
            return 200, {"schema": found[1]}
        if method == "POST" and route[0] == "subjects" and len(route) == 2:
            wanted = json.loads(json.loads(body)["schema"])
            for schema_id, (subject, text) in sorted(self.schemas.items()):
                if subject == route[1] and json.loads(text) == wanted:
                    return 200, {"subject": subject, "id": schema_id, "version": 1,
                                 "schema": text}
            return 404, {"error_code": 40403, "message": "Schema not found"}
        return 404, {"error_code": 404, "message": f"no route {method} {path}"}

    def start(self) -> None:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with registry._lock:
                    registry.requests[f"{method} {self.path.split('?', 1)[0]}"] += 1
                    mode = registry.mode
                if mode != "up":
                    with registry._lock:
                        registry.unanswered += 1
                    if mode == "hang":
                        time.sleep(registry.hang_s)
                    self.close_connection = True  # no status line, no body: no answer
                    return
                status, payload = registry.answer(method, self.path, body)
                with registry._lock:
                    registry.answers[f"{method} {self.path.split('?', 1)[0]}"] += 1
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the test reads `requests`

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def set_mode(self, mode: Mode) -> None:
        with self._lock:
            self.mode = mode

    def answered(self, what: str) -> int:
        """How many requests "METHOD /path" got an answer."""
        with self._lock:
            return self.answers[what]


@contextmanager
def registry_server() -> Iterator[RegistryServer]:
    server = RegistryServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
